//! Two of our agents connect through the tokio driver on loopback: over UDP, over TCP
//! (RFC 6544 with RFC 4571 framing), and data flows both ways on the selected pair.

use pamoja_ice::agent::Role;
use pamoja_ice::candidate::{Kind, TcpType, Transport};
use pamoja_ice::session::{Connection, Options, Session};

async fn connect_pair(a: Options, b: Options) -> (Connection, Connection) {
    let sa = Session::gather(Role::Controlling, a).await.unwrap();
    let sb = Session::gather(Role::Controlled, b).await.unwrap();
    // Through the text format, as the connection manager carries it.
    let da = pamoja_ice::candidate::IceMessage::parse(&sa.local_description().to_text()).unwrap();
    let db = pamoja_ice::candidate::IceMessage::parse(&sb.local_description().to_text()).unwrap();
    let (ca, cb) = tokio::join!(sa.connect(db), sb.connect(da));
    (ca.unwrap(), cb.unwrap())
}

async fn both_ways(a: &mut Connection, b: &mut Connection) {
    for i in 0..20u8 {
        a.send(&[i; 100]).await.unwrap();
        b.send(&[i; 1000]).await.unwrap();
    }
    for i in 0..20u8 {
        assert_eq!(b.recv().await.unwrap(), vec![i; 100]);
        assert_eq!(a.recv().await.unwrap(), vec![i; 1000]);
    }
}

#[tokio::test]
async fn udp_on_loopback() {
    let opts = || Options::udp(vec!["127.0.0.1:0".parse().unwrap()]);
    let (mut a, mut b) = connect_pair(opts(), opts()).await;
    assert_eq!(a.selected().local.kind, Kind::Host);
    assert_eq!(a.selected().local.transport, Transport::Udp);
    assert_eq!(a.selected().remote.addr, b.selected().local.addr);
    both_ways(&mut a, &mut b).await;
}

#[tokio::test]
async fn tcp_on_loopback() {
    let opts = || Options::tcp(vec!["127.0.0.1:0".parse().unwrap()]);
    let (mut a, mut b) = connect_pair(opts(), opts()).await;
    for c in [&a, &b] {
        assert_eq!(c.selected().local.transport, Transport::Tcp);
    }
    // The controlling side connected out from its active candidate to a passive one.
    assert_eq!(a.selected().local.tcp_type, Some(TcpType::Active));
    assert_eq!(a.selected().remote.tcp_type, Some(TcpType::Passive));
    both_ways(&mut a, &mut b).await;
    // Frames up to 65535 bytes.
    a.send(&vec![7; 65535]).await.unwrap();
    assert_eq!(b.recv().await.unwrap().len(), 65535);
}

#[tokio::test]
async fn tcp_as_a_byte_stream() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let opts = || Options::tcp(vec!["127.0.0.1:0".parse().unwrap()]);
    let (a, b) = connect_pair(opts(), opts()).await;
    let (mut a, mut b) = (a.into_stream(), b.into_stream());
    // 1 MiB each way, written in uneven pieces, read back whole.
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let send = data.clone();
    let writer = tokio::spawn(async move {
        for chunk in send.chunks(70_001) {
            a.write_all(chunk).await.unwrap();
        }
        let mut back = vec![0u8; 1 << 20];
        a.read_exact(&mut back).await.unwrap();
        back
    });
    let mut got = vec![0u8; 1 << 20];
    b.read_exact(&mut got).await.unwrap();
    assert_eq!(got, data);
    b.write_all(&got).await.unwrap();
    assert_eq!(writer.await.unwrap(), data);
}

#[tokio::test]
async fn a_flood_of_tcp_connections_is_bounded() {
    use pamoja_ice::session::MAX_ACCEPTED;
    use tokio::io::AsyncReadExt;
    let opts = || Options::tcp(vec!["127.0.0.1:0".parse().unwrap()]);
    let sb = Session::gather(Role::Controlled, opts()).await.unwrap();
    let passive = sb
        .local_description()
        .candidates
        .iter()
        .find(|c| c.tcp_type == Some(TcpType::Passive))
        .unwrap()
        .addr;
    let mut flood = Vec::new();
    for _ in 0..MAX_ACCEPTED + 20 {
        flood.push(tokio::net::TcpStream::connect(passive).await.unwrap());
    }
    // Which ones the session closed: a read ends at once on those.
    let mut reads = tokio::task::JoinSet::new();
    for mut s in flood.drain(..) {
        reads.spawn(async move {
            let mut b = [0u8; 1];
            let r = tokio::time::timeout(std::time::Duration::from_secs(2), s.read(&mut b));
            (matches!(r.await, Ok(Ok(0))), s)
        });
    }
    let mut closed = 0;
    while let Some(r) = reads.join_next().await {
        let (was_closed, s) = r.unwrap();
        closed += usize::from(was_closed);
        flood.push(s);
    }
    assert!(
        closed >= 20,
        "only {closed} of the extra connections were closed"
    );
    assert!(closed <= 20 + 2, "{closed} closed: the bound is too low");
    drop(flood);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Once they are gone, a real peer connects.
    let sa = Session::gather(Role::Controlling, opts()).await.unwrap();
    let da = pamoja_ice::candidate::IceMessage::parse(&sa.local_description().to_text()).unwrap();
    let db = pamoja_ice::candidate::IceMessage::parse(&sb.local_description().to_text()).unwrap();
    let (ca, cb) = tokio::join!(sa.connect(db), sb.connect(da));
    let (mut a, mut b) = (ca.unwrap(), cb.unwrap());
    both_ways(&mut a, &mut b).await;
}
