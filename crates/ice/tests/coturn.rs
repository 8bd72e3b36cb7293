//! STUN and TURN against a real coturn (Debian's `turnserver`), started by each test on
//! loopback and stopped by its PID: a Binding request gets our address back; a TURN
//! allocation with long-term credentials relays data both ways between two of our sockets,
//! with indications and with a channel; two of our agents connect through relayed
//! candidates (TURN over UDP and over TCP); a TCP relay (RFC 6062) connects out and accepts
//! in; wrong credentials are a clear error.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use pamoja_ice::stun::{BINDING, Builder, Class, Message, attr};
use pamoja_ice::turn::{self, Credentials};
use pamoja_lab::Coturn;

const LOOPBACK: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// coturn on loopback with relays from `min_port`; `None` (skip) where it is not installed,
/// a failure in CI.
fn start_coturn(test: &str, min_port: u16) -> Option<(Coturn, u16)> {
    if !pamoja_lab::coturn_available(test) {
        return None;
    }
    let c = Coturn::start(LOOPBACK, None, min_port, &["--allow-loopback-peers"]).unwrap();
    let port = c.addr().port();
    Some((c, port))
}

#[test]
fn binding_with_coturn() {
    let Some((_server, port)) = start_coturn("binding_with_coturn", 49100) else {
        return;
    };
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let me = socket.local_addr().unwrap();
    let transaction = Builder::random_transaction();
    let request = Builder::new(Class::Request, BINDING, transaction)
        .attr(attr::SOFTWARE, b"pamoja test")
        .fingerprint();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1500];
    let answer = loop {
        assert!(Instant::now() < deadline, "coturn never answered");
        socket.send_to(&request, ("127.0.0.1", port)).unwrap();
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            break buf[..n].to_vec();
        }
    };
    let m = Message::decode(&answer).unwrap();
    assert_eq!((m.class, m.method), (Class::Success, BINDING));
    assert_eq!(m.transaction, transaction);
    assert_eq!(m.mapped_address(), Some(me));
    assert!(m.check_fingerprint(&answer), "coturn's FINGERPRINT checks");
    // A request without the magic cookie framing is not ours to decode.
    assert!(Message::decode(&answer[..answer.len() - 1]).is_err());
}

/// Sends `request` until an answer with its transaction id comes back.
fn ask(socket: &UdpSocket, server: u16, request: &[u8]) -> (Message, Vec<u8>) {
    let want = Message::decode(request).unwrap().transaction;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1500];
    loop {
        assert!(Instant::now() < deadline, "coturn never answered");
        socket.send_to(request, ("127.0.0.1", server)).unwrap();
        while let Ok((n, _)) = socket.recv_from(&mut buf) {
            if let Ok(m) = Message::decode(&buf[..n]) {
                if m.transaction == want {
                    return (m, buf[..n].to_vec());
                }
            }
        }
    }
}

/// Receives until `pred` accepts a datagram.
fn receive<T>(socket: &UdpSocket, pred: impl Fn(&[u8], std::net::SocketAddr) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1500];
    loop {
        assert!(Instant::now() < deadline, "nothing relayed");
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            if let Some(t) = pred(&buf[..n], from) {
                return t;
            }
        }
    }
}

#[test]
fn turn_relay_with_coturn() {
    let Some((_server, port)) = start_coturn("turn_relay_with_coturn", 49160) else {
        return;
    };
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&client, &peer] {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
    }
    let peer_addr = peer.local_addr().unwrap();
    let tid = Builder::random_transaction;

    // Unauthenticated: 401 with the realm and a nonce.
    let (challenge, _) = ask(&client, port, &turn::allocate(tid()).fingerprint());
    assert_eq!(challenge.class, Class::Error);
    assert_eq!(challenge.error_code().map(|e| e.0), Some(401));
    let creds = Credentials::from_challenge(&challenge, "alice", "secret").expect("realm, nonce");
    assert_eq!(creds.realm, "pamoja.test");
    // A wrong password is refused.
    let wrong = Credentials::from_challenge(&challenge, "alice", "nope").unwrap();
    let (refused, _) = ask(&client, port, &wrong.sign(turn::allocate(tid())));
    assert_eq!(refused.class, Class::Error);

    let (allocated, raw) = ask(&client, port, &creds.sign(turn::allocate(tid())));
    assert_eq!(
        allocated.class,
        Class::Success,
        "{:?}",
        allocated.error_code()
    );
    assert!(
        allocated.check_integrity(&raw, &creds.key),
        "coturn signs with our key"
    );
    let relayed = allocated
        .xor_address(turn::attr::XOR_RELAYED_ADDRESS)
        .expect("a relayed address");
    assert_eq!(
        allocated.mapped_address(),
        Some(client.local_addr().unwrap())
    );

    let (ok, _) = ask(
        &client,
        port,
        &creds.sign(turn::create_permission(tid(), &peer_addr)),
    );
    assert_eq!(ok.class, Class::Success);

    // Peer -> relay -> us, as a Data indication; us -> relay -> peer with a Send indication.
    peer.send_to(b"from the peer", relayed).unwrap();
    let (from, data) = receive(&client, |b, _| {
        turn::data_indication(&Message::decode(b).ok()?)
    });
    assert_eq!((from, data.as_slice()), (peer_addr, &b"from the peer"[..]));
    client
        .send_to(
            &turn::send(tid(), &peer_addr, b"to the peer"),
            ("127.0.0.1", port),
        )
        .unwrap();
    let (data, from) = receive(&peer, |b, from| Some((b.to_vec(), from)));
    assert_eq!((data.as_slice(), from), (&b"to the peer"[..], relayed));

    // A channel: ChannelData both ways.
    let (ok, _) = ask(
        &client,
        port,
        &creds.sign(turn::channel_bind(tid(), 0x4000, &peer_addr)),
    );
    assert_eq!(ok.class, Class::Success);
    peer.send_to(b"over the channel", relayed).unwrap();
    let data = receive(&client, |b, _| {
        let (ch, d) = turn::parse_channel_data(b)?;
        (ch == 0x4000).then(|| d.to_vec())
    });
    assert_eq!(data, b"over the channel");
    client
        .send_to(
            &turn::channel_data(0x4000, b"and back"),
            ("127.0.0.1", port),
        )
        .unwrap();
    let data = receive(&peer, |b, _| Some(b.to_vec()));
    assert_eq!(data, b"and back");

    // Deallocate.
    let (ok, _) = ask(&client, port, &creds.sign(turn::refresh(tid(), 0)));
    assert_eq!(ok.class, Class::Success);
}

fn relay_options(port: u16, tcp: bool, password: &str) -> pamoja_ice::session::Options {
    let mut o = pamoja_ice::session::Options::udp(vec!["127.0.0.1:0".parse().unwrap()]);
    o.turn = Some(pamoja_ice::session::TurnServer {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        username: "alice".into(),
        password: password.into(),
        tcp,
    });
    o.relay_only = true;
    o
}

/// Two of our agents that only offer relayed candidates connect through coturn and data
/// flows both ways on the relayed pair; `tcp` reaches coturn over TCP.
async fn agents_relay(test: &str, tcp: bool, min_port: u16) {
    use pamoja_ice::agent::Role;
    use pamoja_ice::candidate::Kind;
    use pamoja_ice::session::Session;
    let Some((_server, port)) = start_coturn(test, min_port) else {
        return;
    };
    let sa = Session::gather(Role::Controlling, relay_options(port, tcp, "secret"))
        .await
        .unwrap();
    let sb = Session::gather(Role::Controlled, relay_options(port, tcp, "secret"))
        .await
        .unwrap();
    let (ra, ma) = sa.relayed().unwrap();
    assert_eq!(ra.ip().to_string(), "127.0.0.1");
    assert_eq!(ma.ip().to_string(), "127.0.0.1");
    let da = sa.local_description().clone();
    let db = sb.local_description().clone();
    assert!(da.candidates.iter().all(|c| c.kind == Kind::Relay));
    let (a, b) = tokio::join!(sa.connect(db), sb.connect(da));
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.selected().local.kind, Kind::Relay);
    assert_eq!(a.selected().remote.kind, Kind::Relay);
    assert_eq!(b.selected().local.addr, a.selected().remote.addr);
    for i in 0..10u8 {
        a.send(&[i; 500]).await.unwrap();
        b.send(&[i; 50]).await.unwrap();
    }
    for i in 0..10u8 {
        let got = tokio::time::timeout(Duration::from_secs(5), b.recv()).await;
        assert_eq!(got.unwrap().unwrap(), vec![i; 500]);
        let got = tokio::time::timeout(Duration::from_secs(5), a.recv()).await;
        assert_eq!(got.unwrap().unwrap(), vec![i; 50]);
    }
}

#[tokio::test]
async fn agents_relay_through_coturn_over_udp() {
    agents_relay("agents_relay_through_coturn_over_udp", false, 49300).await;
}

#[tokio::test]
async fn agents_relay_through_coturn_over_tcp() {
    agents_relay("agents_relay_through_coturn_over_tcp", true, 49400).await;
}

#[tokio::test]
async fn wrong_turn_password_is_a_clear_error() {
    let Some((_server, port)) = start_coturn("wrong_turn_password_is_a_clear_error", 49500) else {
        return;
    };
    for tcp in [false, true] {
        let err = pamoja_ice::session::Session::gather(
            pamoja_ice::agent::Role::Controlled,
            relay_options(port, tcp, "not-secret"),
        )
        .await
        .err()
        .expect("refused");
        let text = err.to_string();
        assert!(text.contains("refused the credentials"), "{text}");
    }
}

mod tcp_relay {
    //! RFC 6062: a TCP allocation; the relay connects out to a peer, and a peer connects in
    //! to the relayed address; each peer connection rides its own client data connection.

    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    use pamoja_ice::client::{TurnClient, TurnEvent, connection_bound, stream_message_len};

    /// Reads one STUN message from a TCP stream.
    fn read_message(s: &mut TcpStream, buf: &mut Vec<u8>) -> Vec<u8> {
        loop {
            if let Some(n) = stream_message_len(buf) {
                return buf.drain(..n).collect();
            }
            let mut chunk = [0u8; 1500];
            let n = s.read(&mut chunk).expect("read from coturn");
            assert!(n > 0, "coturn closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Runs the client over its control connection until `pick` accepts an event.
    fn drive<T>(
        c: &mut TurnClient,
        s: &mut TcpStream,
        buf: &mut Vec<u8>,
        pick: impl Fn(&TurnEvent) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "no event in time");
            while let Some(p) = c.poll_transmit() {
                s.write_all(&p).unwrap();
            }
            while let Some(e) = c.poll_event() {
                if let Some(t) = pick(&e) {
                    return t;
                }
                assert!(!matches!(e, TurnEvent::Failed(_)), "{e:?}");
            }
            let m = read_message(s, buf);
            c.handle_input(Instant::now(), &m);
        }
    }

    /// A data connection bound to `connection_id`.
    fn bind(c: &TurnClient, port: u16, connection_id: u32) -> TcpStream {
        let mut d = TcpStream::connect(("127.0.0.1", port)).unwrap();
        d.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (tx, req) = c.connection_bind(connection_id).unwrap();
        d.write_all(&req).unwrap();
        let answer = read_message(&mut d, &mut Vec::new());
        assert_eq!(connection_bound(&tx, &answer), Some(true));
        d
    }

    fn echo_both_ways(data: &mut TcpStream, peer: &mut TcpStream) {
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        data.write_all(b"through the relay").unwrap();
        let mut got = [0u8; 17];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"through the relay");
        peer.write_all(b"and back").unwrap();
        let mut got = [0u8; 8];
        data.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"and back");
    }

    #[test]
    fn tcp_relay_connects_out_and_accepts_in() {
        let Some((_server, port)) =
            super::start_coturn("tcp_relay_connects_out_and_accepts_in", 49800)
        else {
            return;
        };
        let mut control = TcpStream::connect(("127.0.0.1", port)).unwrap();
        control
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = Vec::new();
        let mut c = TurnClient::new_tcp_relay(Instant::now(), "alice", "secret");
        let relayed = drive(&mut c, &mut control, &mut buf, |e| match e {
            TurnEvent::Allocated { relayed, .. } => Some(*relayed),
            _ => None,
        });
        // Out: the relay connects to our peer's listening socket.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer_addr = listener.local_addr().unwrap();
        c.connect(Instant::now(), peer_addr);
        let accept = std::thread::spawn(move || listener.accept().unwrap());
        let id = drive(&mut c, &mut control, &mut buf, |e| match e {
            TurnEvent::Connected {
                peer,
                connection_id,
            } if *peer == peer_addr => Some(*connection_id),
            TurnEvent::ConnectFailed(p, e) => panic!("connect to {p} failed: {e}"),
            _ => None,
        });
        let (mut peer_side, seen_from) = accept.join().unwrap();
        assert_eq!(seen_from.ip(), relayed.ip());
        let mut data = bind(&c, port, id);
        echo_both_ways(&mut data, &mut peer_side);
        // In: a peer (already permitted) connects to the relayed address.
        let connecting = std::thread::spawn(move || TcpStream::connect(relayed).unwrap());
        let id = drive(&mut c, &mut control, &mut buf, |e| match e {
            TurnEvent::ConnectionAttempt { connection_id, .. } => Some(*connection_id),
            _ => None,
        });
        let mut data = bind(&c, port, id);
        let mut peer_side = connecting.join().unwrap();
        echo_both_ways(&mut data, &mut peer_side);
    }
}
