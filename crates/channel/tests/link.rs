//! Two Pamoja devices meet on a loopback DHT through the 2026 rendezvous key only, connect
//! with ICE over TCP and TLS, open a `sip` channel and exchange SIP MESSAGEs (Unicode, 7,000
//! bytes) with their 200 OK; a channel name nobody serves is declined.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pamoja_channel::link::{LinkError, LinkEvent, Manager, Options, Rendezvous};
use pamoja_channel::request::{long_key, short_key};
use pamoja_channel::sip::{self, Route, SipMessage, SipReader, StartLine};
use pamoja_channel::tls::Identity;
use pamoja_dht::Runner;
use pamoja_dht::securedht::SecureDht;
use pamoja_identity::{Account, PrivateKey};

async fn device(account: &Account, runner: Arc<Runner>) -> (Arc<SecureDht>, Identity) {
    let d = account.device().unwrap();
    let chain = vec![d.cert.clone(), account.account_cert().clone()];
    let key = || PrivateKey::from_pkcs8_der(d.key.to_pkcs8_der()).unwrap();
    let dht = Arc::new(SecureDht::new(runner, key(), chain.clone()));
    assert!(dht.publish_certificate().await.unwrap() > 0);
    (dht, Identity { key: key(), chain })
}

async fn read_sip(ch: &mut pamoja_channel::link::Channel, reader: &mut SipReader) -> SipMessage {
    loop {
        if let Some(m) = reader.next_message() {
            return m.unwrap();
        }
        let data = tokio::time::timeout(Duration::from_secs(10), ch.recv())
            .await
            .expect("SIP data in time")
            .expect("channel open");
        reader.push(&data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_over_the_long_rendezvous_key() {
    let nodes = common::loopback_dht(3).await;
    let (alice, bob) = (
        Account::create(|_| {}).unwrap(),
        Account::create(|_| {}).unwrap(),
    );
    let (a_dht, a_id) = device(&alice, nodes[1].clone()).await;
    let (b_dht, b_id) = device(&bob, nodes[2].clone()).await;
    let bob_chain = b_id.chain.clone();
    let opts = || {
        let mut o = Options::new(vec!["127.0.0.1:0".parse().unwrap()]);
        o.rendezvous = Rendezvous::Long;
        o
    };
    let a = Manager::start(a_dht, a_id, opts()).await.unwrap();
    let mut b = Manager::start(b_dht, b_id, opts()).await.unwrap();

    let (a_link, b_link) = tokio::join!(a.connect(&bob_chain, "text/plain"), async {
        tokio::time::timeout(Duration::from_secs(40), b.accept())
            .await
            .unwrap()
            .unwrap()
    });
    let a_link = a_link.unwrap();
    let mut b_link = b_link;
    assert_eq!(a_link.device(), &bob_chain[0].device_id());
    assert_eq!(b_link.device(), &alice.device().unwrap().cert.device_id());
    // Only the 2026 key was used.
    let bob_pk = bob_chain[0].public_key();
    assert!(nodes[0].get(short_key(bob_pk)).await.unwrap().is_empty());
    assert!(
        !nodes[0]
            .get(long_key(&bob_pk.device_id()))
            .await
            .unwrap()
            .is_empty()
    );

    // A sip channel, then a MESSAGE each way with its 200 OK.
    let mut a_sip = a_link.open("sip").await.unwrap();
    let Some(LinkEvent::Channel(mut b_sip)) = b_link.next_event().await else {
        panic!("no channel on bob's side");
    };
    assert_eq!(b_sip.name, "sip");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let route = Route {
        from: alice.jami_id().to_string(),
        to: bob.jami_id().to_string(),
        local: "127.0.0.1:1".parse().unwrap(),
        remote: "127.0.0.1:2".parse().unwrap(),
    };
    let (mut ra, mut rb) = (SipReader::default(), SipReader::default());
    for body in ["héllo, 世界 🌍".to_string(), "x".repeat(7000)] {
        let id = sip::new_message_id();
        let m = sip::message(&route, "text/plain", &body, &id, now);
        a_sip.send(&m.to_bytes()).await.unwrap();
        let got = read_sip(&mut b_sip, &mut rb).await;
        let text = sip::read_message(&got).unwrap();
        assert_eq!(text.from, alice.jami_id().to_string());
        assert_eq!(text.body, body);
        assert_eq!(text.id.as_deref(), Some(id.as_str()));
        b_sip
            .send(&sip::response(&got, 200, "OK").to_bytes())
            .await
            .unwrap();
        let ok = read_sip(&mut a_sip, &mut ra).await;
        assert!(matches!(ok.start, StartLine::Response { code: 200, .. }));
    }
    // A channel nobody serves here.
    match a_link.open("vcard://nothing").await {
        Err(LinkError::Declined(name)) => assert_eq!(name, "vcard://nothing"),
        other => panic!("expected a decline, got {:?}", other.map(|c| c.name)),
    }
}

/// Three loopback DHT nodes, and two devices on nodes 1 and 2 with their managers (2023
/// short key only this time).
async fn two_managers() -> (Vec<Arc<Runner>>, Account, Account, Manager, Manager) {
    let nodes = common::loopback_dht(3).await;
    let (alice, bob) = (
        Account::create(|_| {}).unwrap(),
        Account::create(|_| {}).unwrap(),
    );
    let (a_dht, a_id) = device(&alice, nodes[1].clone()).await;
    let (b_dht, b_id) = device(&bob, nodes[2].clone()).await;
    let opts = || {
        let mut o = Options::new(vec!["127.0.0.1:0".parse().unwrap()]);
        o.rendezvous = Rendezvous::Short;
        o
    };
    let a = Manager::start(a_dht, a_id, opts()).await.unwrap();
    let b = Manager::start(b_dht, b_id, opts()).await.unwrap();
    (nodes, alice, bob, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_share_one_link_per_device_and_stream_bytes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_nodes, alice, bob, mut a, mut b) = two_managers().await;
    let bob_chain = vec![
        bob.device().unwrap().cert.clone(),
        bob.account_cert().clone(),
    ];
    let alice_device = alice.device().unwrap().cert.device_id();

    // Two channels to bob: one link.
    let (first, b_link) = tokio::join!(a.channel(&bob_chain, "sip", "text/plain"), async {
        tokio::time::timeout(Duration::from_secs(40), b.accept())
            .await
            .unwrap()
            .unwrap()
    });
    let first = first.unwrap();
    let second = a.channel(&bob_chain, "sip", "").await.unwrap();
    assert_ne!(first.id, second.id);
    assert_eq!(a.links_up(), 1);
    let mut b_link = b_link;
    assert_eq!(b_link.device(), &alice_device);
    let mut got = Vec::new();
    for _ in 0..2 {
        let Some(LinkEvent::Channel(ch)) =
            tokio::time::timeout(Duration::from_secs(10), b_link.next_event())
                .await
                .unwrap()
        else {
            panic!("link closed")
        };
        got.push(ch);
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(2), b.accept())
            .await
            .is_err(),
        "a second link was made"
    );

    // Bob opens a channel back on the same link: alice's manager reports it.
    let back = b_link.open("sip").await.unwrap();
    let (from, mut back_a) = tokio::time::timeout(Duration::from_secs(10), a.accept_channel())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from, bob_chain[0].device_id());
    back.send(b"ping").await.unwrap();
    assert_eq!(back_a.recv().await.unwrap(), b"ping");

    // The first channel as a byte stream: 8 MiB each way at once, in order; then alice
    // shuts down (a channel has no half-close: it closes) and bob reads the end.
    let pattern: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let b_first = got.remove(0);
    assert_eq!(b_first.id, first.id);
    let mut a_stream = first.into_stream();
    let mut b_stream = b_first.into_stream();
    let exchange = |mut s: pamoja_channel::link::ChannelStream, p: Vec<u8>| async move {
        let (mut rd, mut wr) = tokio::io::split(&mut s);
        let mut got = vec![0u8; p.len()];
        let (w, r) = tokio::join!(wr.write_all(&p), rd.read_exact(&mut got));
        w.unwrap();
        r.unwrap();
        (s, got)
    };
    let ((a_back, from_b), (b_back, from_a)) =
        tokio::time::timeout(Duration::from_secs(60), async {
            tokio::join!(
                exchange(a_stream, pattern.clone()),
                exchange(b_stream, pattern.clone())
            )
        })
        .await
        .unwrap();
    assert!(from_a == pattern && from_b == pattern);
    (a_stream, b_stream) = (a_back, b_back);
    a_stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), b_stream.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());
    drop((second, got, back, back_a));
}
