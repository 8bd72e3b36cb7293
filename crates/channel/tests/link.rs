//! Two Pamoja devices meet on a loopback DHT through the 2026 rendezvous key only, connect
//! with ICE over TCP and TLS, open a `sip` channel and exchange SIP MESSAGEs (Unicode, 7,000
//! bytes) with their 200 OK; a channel name nobody serves is declined.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pamoja_channel::link::{LinkError, LinkEvent, Manager, Options, Rendezvous};
use pamoja_channel::request::{long_key, short_key};
use pamoja_channel::sip::{self, Route, SipMessage, SipReader, StartLine};
use pamoja_channel::tls::Identity;
use pamoja_dht::securedht::SecureDht;
use pamoja_dht::{Config, Runner};
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
    let mut nodes: Vec<Arc<Runner>> = Vec::new();
    for i in 0..3 {
        let r = Runner::bind("127.0.0.1:0".parse().unwrap(), Config::default())
            .await
            .unwrap();
        if i > 0 {
            r.bootstrap(nodes[0].local_addr());
        }
        nodes.push(Arc::new(r));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
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
