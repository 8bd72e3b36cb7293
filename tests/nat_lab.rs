//! ICE through real NATs: each scenario builds its own lab of network namespaces (nftables
//! masquerade routers, coturn on the lab's wan), runs two of our agents in it and checks
//! which path was selected and that data flows both ways on it.

mod nat_scenarios;

use pamoja::ice::candidate::{Kind, TcpType, Transport};
use pamoja_lab::Nat;

use nat_scenarios::{Host, Side};

fn available(test: &str) -> bool {
    match nat_scenarios::missing() {
        None => true,
        Some(why) if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) => {
            panic!("{test}: NAT lab prerequisites missing in CI: {why}")
        }
        Some(why) => {
            eprintln!("SKIPPED {test}: {why} (install them with scripts/install-deps)");
            false
        }
    }
}

const PUBLIC: Host = Host {
    nat: Nat::None,
    block_udp: false,
};
const EIM: Host = Host {
    nat: Nat::EndpointIndependent,
    block_udp: false,
};
const SYMMETRIC: Host = Host {
    nat: Nat::Symmetric,
    block_udp: false,
};

fn data_both_ways(a: &Side, b: &Side) {
    let want = |tag: u8| (0..5u8).map(|i| vec![tag, i]).collect::<Vec<_>>();
    assert_eq!(a.received, want(b'b'));
    assert_eq!(b.received, want(b'a'));
}

fn report(name: &str, a: &Side, b: &Side) {
    eprintln!(
        "{name}: A {} -> {} ({:?}), B {} -> {}; nominated after {} ms (checks {} ms)",
        a.selected.local,
        a.selected.remote.addr,
        a.selected.remote.kind,
        b.selected.local,
        b.selected.remote.addr,
        a.to_nomination.max(b.to_nomination).as_millis(),
        a.checks.max(b.checks).as_millis(),
    );
}

#[test]
fn one_network_direct_hosts() {
    if !available("one_network_direct_hosts") {
        return;
    }
    let (a, b) = nat_scenarios::run(PUBLIC, PUBLIC, Transport::Udp);
    report("one network", &a, &b);
    assert_eq!(a.selected.local.kind, Kind::Host);
    assert_eq!(a.selected.remote.kind, Kind::Host);
    assert_eq!(b.selected.local.kind, Kind::Host);
    data_both_ways(&a, &b);
}

#[test]
fn one_behind_nat_goes_direct() {
    if !available("one_behind_nat_goes_direct") {
        return;
    }
    let (a, b) = nat_scenarios::run(EIM, PUBLIC, Transport::Udp);
    report("one behind NAT", &a, &b);
    for s in [&a, &b] {
        assert_ne!(s.selected.local.kind, Kind::Relay);
        assert_ne!(s.selected.remote.kind, Kind::Relay);
    }
    // B sees A at its router's address, not at A's private one.
    assert!(
        b.selected
            .remote
            .addr
            .ip()
            .to_string()
            .starts_with("100.64.0.")
    );
    data_both_ways(&a, &b);
}

#[test]
fn both_behind_endpoint_independent_nats_punch_through() {
    if !available("both_behind_endpoint_independent_nats_punch_through") {
        return;
    }
    let (a, b) = nat_scenarios::run(EIM, EIM, Transport::Udp);
    report("both behind EIM NATs", &a, &b);
    for s in [&a, &b] {
        assert_ne!(s.selected.local.kind, Kind::Relay, "{:?}", s.selected);
        assert_ne!(s.selected.remote.kind, Kind::Relay, "{:?}", s.selected);
        // The direct path goes to the other router's public address.
        assert!(
            s.selected
                .remote
                .addr
                .ip()
                .to_string()
                .starts_with("100.64.0.")
        );
    }
    data_both_ways(&a, &b);
}

#[test]
fn both_behind_symmetric_nats_use_the_relay() {
    if !available("both_behind_symmetric_nats_use_the_relay") {
        return;
    }
    let (a, b) = nat_scenarios::run(SYMMETRIC, SYMMETRIC, Transport::Udp);
    report("both behind symmetric NATs", &a, &b);
    for s in [&a, &b] {
        let relayed = s.selected.local.kind == Kind::Relay || s.selected.remote.kind == Kind::Relay;
        assert!(relayed, "expected a relayed pair: {:?}", s.selected);
    }
    data_both_ways(&a, &b);
}

#[test]
fn udp_blocked_falls_back_to_tcp() {
    if !available("udp_blocked_falls_back_to_tcp") {
        return;
    }
    let blocked = Host {
        nat: Nat::EndpointIndependent,
        block_udp: true,
    };
    let (a, b) = nat_scenarios::run(blocked, PUBLIC, Transport::Tcp);
    report("UDP blocked, TCP", &a, &b);
    assert_eq!(a.selected.local.transport, Transport::Tcp);
    // A connected out from behind its NAT to B's passive socket.
    assert_eq!(a.selected.local.tcp_type, Some(TcpType::Active));
    assert_eq!(a.selected.remote.tcp_type, Some(TcpType::Passive));
    assert_eq!(b.selected.local.tcp_type, Some(TcpType::Passive));
    data_both_ways(&a, &b);
}

#[test]
fn tcp_behind_symmetric_nats_uses_a_tcp_relay() {
    if !available("tcp_behind_symmetric_nats_uses_a_tcp_relay") {
        return;
    }
    let (a, b) = nat_scenarios::run(SYMMETRIC, SYMMETRIC, Transport::Tcp);
    report("TCP, both behind symmetric NATs", &a, &b);
    // A connects out to B's TCP relay (RFC 6062), which hands B the connection.
    assert_eq!(a.selected.local.tcp_type, Some(TcpType::Active));
    assert_eq!(a.selected.remote.kind, Kind::Relay);
    assert_eq!(b.selected.local.kind, Kind::Relay);
    assert_eq!(b.selected.local.tcp_type, Some(TcpType::Passive));
    data_both_ways(&a, &b);
}

#[test]
fn udp_blocked_really_blocks_udp() {
    if !available("udp_blocked_really_blocks_udp") {
        return;
    }
    // The same router refuses UDP: gathering from behind it cannot reach STUN.
    let mut lab = pamoja_lab::NatLab::new().unwrap();
    let coturn = nat_scenarios::start_coturn(lab.wan());
    let peer = lab.add_peer(Nat::EndpointIndependent, true).unwrap();
    let opts = nat_scenarios::options(peer.addr, Transport::Udp, coturn.addr());
    let err = peer
        .ns
        .run_inside(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(pamoja::ice::session::Session::gather(
                pamoja::ice::agent::Role::Controlled,
                opts,
            ))
            .err()
            .map(|e| e.to_string())
        })
        .unwrap();
    assert!(err.unwrap_or_default().contains("no answer"));
}
