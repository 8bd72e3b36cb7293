//! The ICE agent and the TURN client fed arbitrary input. The input is a script: each step
//! either hands the agent raw bytes from some address, or a well-formed check or answer
//! signed with the right (or a wrong) password and fuzzed attributes, or lets time pass.
//! No panic; and the agent never selects a pair whose check was not answered by a
//! correctly signed success from that very address.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pamoja_ice::agent::{Agent, Config, Role};
use pamoja_ice::candidate::{Candidate, IceMessage, Kind, Transport};
use pamoja_ice::client::TurnClient;
use pamoja_ice::stun::{BINDING, Builder, Class, Message, attr};

const REMOTE_PWD: &str = "00112233445566778899aabb";

/// One input.
pub fn run(data: &[u8]) {
    let now0 = Instant::now();
    let mut now = now0;
    let role = if data.first().is_some_and(|b| b & 1 == 1) {
        Role::Controlling
    } else {
        Role::Controlled
    };
    let mut agent = Agent::new(role, Config::default());
    let local: SocketAddr = "10.0.0.1:5000".parse().unwrap();
    agent.add_local_candidate(
        Candidate::local(Kind::Host, Transport::Udp, None, local, local.ip(), 65535),
        local,
    );
    let remotes: [SocketAddr; 3] = [
        "10.0.0.2:6000".parse().unwrap(),
        "10.0.0.3:6001".parse().unwrap(),
        "192.0.2.1:7".parse().unwrap(),
    ];
    let desc = IceMessage {
        ufrag: "remoteuf".into(),
        pwd: REMOTE_PWD.into(),
        candidates: remotes[..2]
            .iter()
            .map(|a| Candidate::local(Kind::Host, Transport::Udp, None, *a, a.ip(), 65535))
            .collect(),
    };
    agent.set_remote(now, &desc);
    let mut turn = TurnClient::new(now, "user", "pass", false);
    // Transactions the agent sent, by destination; destinations that answered correctly.
    let mut sent: Vec<([u8; 12], SocketAddr)> = Vec::new();
    let mut answered: HashSet<SocketAddr> = HashSet::new();
    let mut i = 1;
    while i + 3 <= data.len() {
        let (op, a, b) = (data[i], data[i + 1], data[i + 2]);
        i += 3;
        while let Some(t) = agent.poll_transmit() {
            if let Ok(m) = Message::decode(&t.data) {
                if m.class == Class::Request {
                    sent.push((m.transaction, t.remote));
                }
            }
        }
        let from = remotes[usize::from(a) % 3];
        match op % 5 {
            0 => {
                // Raw bytes.
                let n = usize::from(b).min(data.len() - i);
                let _ = agent.handle_input(now, Transport::Udp, local, from, &data[i..i + n]);
                let _ = turn.handle_input(now, &data[i..i + n]);
                i += n;
            }
            1 => {
                // A check from the peer, signed with our password or not.
                let key = if b & 1 == 0 {
                    agent.pwd().to_owned()
                } else {
                    "wrong".into()
                };
                let mut m = Builder::new(Class::Request, BINDING, [b; 12]).attr(
                    attr::USERNAME,
                    format!("{}:remoteuf", agent.ufrag()).as_bytes(),
                );
                if b & 2 == 0 {
                    m = m.attr(attr::PRIORITY, &u32::from(b).to_be_bytes());
                }
                if b & 4 != 0 {
                    m = m.attr(attr::USE_CANDIDATE, &[]);
                }
                m = match b & 24 {
                    0 => m.attr(attr::ICE_CONTROLLING, &u64::from(a).to_be_bytes()),
                    8 => m.attr(attr::ICE_CONTROLLED, &u64::from(a).to_be_bytes()),
                    _ => m,
                };
                let bytes = m.integrity(key.as_bytes()).fingerprint();
                let _ = agent.handle_input(now, Transport::Udp, local, from, &bytes);
            }
            2 => {
                // An answer to one of the agent's checks, maybe from the wrong address or
                // with the wrong key, success or error.
                if let Some((tx, to)) = sent.get(usize::from(b) % sent.len().max(1)).copied() {
                    let good_key = a & 1 == 0;
                    let key = if good_key { REMOTE_PWD } else { "nope" };
                    let success = a & 2 == 0;
                    let m = if success {
                        Builder::new(Class::Success, BINDING, tx).xor_mapped_address(&local)
                    } else {
                        Builder::new(Class::Error, BINDING, tx)
                            .error_code(if a & 4 == 0 { 487 } else { 400 }, "x")
                    };
                    let bytes = m.integrity(key.as_bytes()).fingerprint();
                    if good_key && success && from == to {
                        answered.insert(from);
                    }
                    let _ = agent.handle_input(now, Transport::Udp, local, from, &bytes);
                }
            }
            3 => {
                now += Duration::from_millis(u64::from(a) * 16 + u64::from(b));
                agent.handle_timeout(now);
                turn.handle_timeout(now);
            }
            _ => {
                while agent.poll_event().is_some() {}
                while turn.poll_transmit().is_some() {}
                while turn.poll_event().is_some() {}
            }
        }
        if let Some(sel) = agent.selected() {
            assert!(
                answered.contains(&sel.remote.addr),
                "selected {} without a signed answer from it",
                sel.remote.addr
            );
        }
        if agent.poll_timeout().is_some_and(|t| t < now0) {
            panic!("timer in the past");
        }
    }
}
