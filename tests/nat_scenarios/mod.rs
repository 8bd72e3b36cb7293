//! ICE scenarios in the NAT lab, shared by the tests (which assert the selected path) and
//! the benchmark (which times them): two of our agents, each in its own namespace behind
//! the NAT the scenario asks for, with coturn on the lab's wan as STUN and TURN server.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pamoja::ice::agent::{Role, SelectedPair};
use pamoja::ice::candidate::{IceMessage, Transport};
use pamoja::ice::session::{Options, Session, TurnServer};
use pamoja_lab::{Coturn, Nat, NatLab, Netns, TURN_USER, WAN_SERVER};

/// What a scenario observed on one side.
#[derive(Debug)]
pub struct Side {
    /// The pair the agent selected.
    pub selected: SelectedPair,
    /// From the start of gathering to the selected pair.
    pub to_nomination: Duration,
    /// From receiving the peer's description to the selected pair.
    pub checks: Duration,
    /// Messages received from the peer after connecting.
    pub received: Vec<Vec<u8>>,
}

/// One side of a scenario.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    /// How it reaches the wan.
    pub nat: Nat,
    /// Its router drops UDP.
    pub block_udp: bool,
}

/// Why the NAT lab cannot run here, if it cannot (then the caller skips, or fails in CI).
pub fn missing() -> Option<String> {
    if let Some(why) = pamoja_lab::nat_lab_missing() {
        return Some(why);
    }
    if !std::path::Path::new(pamoja_lab::TURNSERVER).exists() {
        return Some("coturn is not installed".into());
    }
    None
}

/// Starts coturn on the wan as STUN and TURN server.
pub fn start_coturn(wan: &Netns) -> Coturn {
    // As production servers are configured: no relaying to private addresses (in the lab,
    // sending there fails, and coturn then drops the allocation).
    Coturn::start(
        WAN_SERVER.into(),
        Some(wan),
        50000,
        &["--denied-peer-ip=10.0.0.0-10.255.255.255"],
    )
    .expect("coturn in the lab")
}

/// Options of a peer at `addr` in the lab: STUN and TURN on the wan for UDP.
pub fn options(addr: std::net::IpAddr, transport: Transport, turn: SocketAddr) -> Options {
    let bind = vec![std::net::SocketAddr::new(addr, 0)];
    let mut o = match transport {
        Transport::Udp => Options::udp(bind),
        Transport::Tcp => Options::tcp(bind),
    };
    if transport == Transport::Udp {
        o.stun = Some(turn);
    }
    o.turn = Some(TurnServer {
        addr: turn,
        username: TURN_USER.0.into(),
        password: TURN_USER.1.into(),
        tcp: transport == Transport::Tcp,
    });
    o.gather_timeout = Duration::from_secs(3);
    o.connect_timeout = Duration::from_secs(20);
    o
}

fn run_side(
    role: Role,
    opts: Options,
    tx: mpsc::Sender<String>,
    rx: mpsc::Receiver<String>,
    tag: u8,
) -> Result<Side, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let start = Instant::now();
        let session = Session::gather(role, opts)
            .await
            .map_err(|e| e.to_string())?;
        tx.send(session.local_description().to_text()).unwrap();
        let remote = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
            .await
            .unwrap()
            .map_err(|_| "no description from the peer".to_string())?;
        let remote = IceMessage::parse(&remote).ok_or("bad description")?;
        let checks_start = Instant::now();
        let mut conn = session.connect(remote).await.map_err(|e| e.to_string())?;
        let to_nomination = start.elapsed();
        let checks = checks_start.elapsed();
        for i in 0..5u8 {
            conn.send(&[tag, i]).await.map_err(|e| e.to_string())?;
        }
        let mut received = Vec::new();
        while received.len() < 5 {
            match tokio::time::timeout(Duration::from_secs(5), conn.recv()).await {
                Ok(Some(d)) => received.push(d),
                _ => break,
            }
        }
        // Let the peer read ours before this side's sockets close.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(Side {
            selected: conn.selected().clone(),
            to_nomination,
            checks,
            received,
        })
    })
}

/// Runs one scenario: A (controlling) and B (controlled) in `lab`, over `transport`.
pub fn run(a: Host, b: Host, transport: Transport) -> (Side, Side) {
    let mut lab = NatLab::new().expect("NAT lab");
    let coturn = start_coturn(lab.wan());
    let pa = lab.add_peer(a.nat, a.block_udp).expect("peer a");
    let pb = lab.add_peer(b.nat, b.block_udp).expect("peer b");
    let (tx_a, rx_b) = mpsc::channel();
    let (tx_b, rx_a) = mpsc::channel();
    let (oa, ob) = (
        options(pa.addr, transport, coturn.addr()),
        options(pb.addr, transport, coturn.addr()),
    );
    let ha = pa
        .ns
        .spawn_inside(move || run_side(Role::Controlling, oa, tx_a, rx_a, b'a'));
    let hb = pb
        .ns
        .spawn_inside(move || run_side(Role::Controlled, ob, tx_b, rx_b, b'b'));
    let ra = ha.join().expect("side a").expect("netns a");
    let rb = hb.join().expect("side b").expect("netns b");
    (ra.expect("side a"), rb.expect("side b"))
}
