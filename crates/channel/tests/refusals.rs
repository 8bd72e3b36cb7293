//! Devices the manager refuses get no link, and the manager says why: an expired device
//! certificate, a device its account revoked (the account's CRL found on the DHT at its Jami
//! ID, as jamid publishes it), a banned account. A good device still gets its link.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pamoja_channel::link::{LinkError, Manager, Options, Rendezvous};
use pamoja_channel::tls::{Identity, PeerRefused};
use pamoja_dht::securedht::SecureDht;
use pamoja_dht::{InfoHash, Runner, Value};
use pamoja_identity::error::ChainError;
use pamoja_identity::{Account, Certificate, PrivateKey, msgpack};

/// A device (key and chain) on `runner`, its certificate published, with a manager.
async fn manager(runner: Arc<Runner>, key: &PrivateKey, chain: Vec<Certificate>) -> Manager {
    manager_with(runner, key, chain, |_| {}).await
}

/// [`manager`], its options changed by `tune`.
async fn manager_with(
    runner: Arc<Runner>,
    key: &PrivateKey,
    chain: Vec<Certificate>,
    tune: impl FnOnce(&mut Options),
) -> Manager {
    let copy = || PrivateKey::from_pkcs8_der(key.to_pkcs8_der()).unwrap();
    let dht = Arc::new(SecureDht::new(runner, copy(), chain.clone()));
    assert!(dht.publish_certificate().await.unwrap() > 0);
    let mut o = Options::new(vec!["127.0.0.1:0".parse().unwrap()]);
    o.rendezvous = Rendezvous::Short;
    o.answer_timeout = Duration::from_secs(5);
    tune(&mut o);
    Manager::start(dht, Identity { key: copy(), chain }, o)
        .await
        .unwrap()
}

/// Puts `account`'s revocation list at its Jami ID, as jamid does.
async fn publish_crl(runner: &Runner, account: &Account) {
    let mut data = Vec::new();
    msgpack::bin(&mut data, account.crl().unwrap().der());
    let at: InfoHash = account.jami_id().to_string().parse().unwrap();
    let value = Value {
        id: 7,
        data,
        ..Value::default()
    };
    runner.put(at, value).await.unwrap();
}

fn no_link(r: Result<(), LinkError>) {
    match r {
        Err(LinkError::NoAnswer) => {}
        Err(e) => panic!("expected no answer, got {e}"),
        Ok(()) => panic!("a refused device got a link"),
    }
}

fn chain_of(account: &Account) -> (PrivateKey, Vec<Certificate>) {
    let d = account.device().unwrap();
    (
        PrivateKey::from_pkcs8_der(d.key.to_pkcs8_der()).unwrap(),
        vec![d.cert.clone(), account.account_cert().clone()],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_devices_get_no_link_and_the_reason_is_kept() {
    let nodes = common::loopback_dht(3).await;
    let (bob, dave) = (
        Account::create(|_| {}).unwrap(),
        Account::create(|_| {}).unwrap(),
    );
    let (bob_key, bob_chain) = chain_of(&bob);
    let bob_dht = Arc::new(SecureDht::new(
        nodes[1].clone(),
        PrivateKey::from_pkcs8_der(bob_key.to_pkcs8_der()).unwrap(),
        bob_chain.clone(),
    ));
    bob_dht.publish_certificate().await.unwrap();
    let mut o = Options::new(vec!["127.0.0.1:0".parse().unwrap()]);
    o.rendezvous = Rendezvous::Short;
    o.banned_accounts.push(dave.jami_id());
    let mut bob_m = Manager::start(
        bob_dht,
        Identity {
            key: bob_key,
            chain: bob_chain.clone(),
        },
        o,
    )
    .await
    .unwrap();

    // An expired device certificate of an otherwise good account.
    let mallory = Account::create(|_| {}).unwrap();
    let key = PrivateKey::generate().unwrap();
    let expired = Certificate::issue(
        key.public_key(),
        "Jami device",
        Some(mallory.account_cert()),
        mallory.account_key(),
        false,
        SystemTime::now() - Duration::from_secs(11 * 365 * 86_400),
    )
    .unwrap();
    let m = manager(
        nodes[2].clone(),
        &key,
        vec![expired.clone(), mallory.account_cert().clone()],
    )
    .await;
    no_link(m.connect(&bob_chain, "").await.map(|_| ()));

    // A device its account revoked, the CRL published at the account's Jami ID.
    let mut carol = Account::create(|_| {}).unwrap();
    let dev = carol.add_device().unwrap();
    carol.revoke_device(&dev.cert.device_id()).unwrap();
    publish_crl(&nodes[2], &carol).await;
    let key = PrivateKey::from_pkcs8_der(dev.key.to_pkcs8_der()).unwrap();
    let m = manager(
        nodes[2].clone(),
        &key,
        vec![dev.cert.clone(), carol.account_cert().clone()],
    )
    .await;
    no_link(m.connect(&bob_chain, "").await.map(|_| ()));

    // A banned account: refused when it asks, and bob does not dial it either.
    let (dave_key, dave_chain) = chain_of(&dave);
    let m = manager(nodes[2].clone(), &dave_key, dave_chain.clone()).await;
    no_link(m.connect(&bob_chain, "").await.map(|_| ()));
    match bob_m.connect(&dave_chain, "").await {
        Err(LinkError::Tls {
            refused: Some(PeerRefused::Banned),
            ..
        }) => {}
        other => panic!("expected a refusal, got {:?}", other.err()),
    }

    // Nor its own device.
    assert!(matches!(
        bob_m.connect(&bob_chain, "").await,
        Err(LinkError::OwnDevice)
    ));

    let reasons: Vec<(String, PeerRefused)> = bob_m
        .refusals()
        .into_iter()
        .map(|(d, why)| (d.to_string(), why))
        .collect();
    let why = |cert: &Certificate| {
        reasons
            .iter()
            .find(|(d, _)| *d == cert.device_id().to_string())
            .map(|(_, w)| w.clone())
    };
    assert_eq!(
        why(&expired),
        Some(PeerRefused::Chain(ChainError::Expired { cert: "device" }))
    );
    assert_eq!(
        why(&dev.cert),
        Some(PeerRefused::Chain(ChainError::Revoked))
    );
    assert_eq!(why(&dave_chain[0]), Some(PeerRefused::Banned));
    assert_eq!(bob_m.links_up(), 0);

    // A good device still gets its link.
    let alice = Account::create(|_| {}).unwrap();
    let (alice_key, alice_chain) = chain_of(&alice);
    let a = manager(nodes[2].clone(), &alice_key, alice_chain).await;
    let (link, accepted) = tokio::join!(a.connect(&bob_chain, ""), bob_m.accept());
    assert!(link.is_ok() && accepted.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_seen_once_holds_without_the_dht_and_bans_apply_at_once() {
    let crl_dir = tempfile::tempdir().unwrap();
    let bob = Account::create(|_| {}).unwrap();
    let (bob_key, bob_chain) = chain_of(&bob);
    let mut carol = Account::create(|_| {}).unwrap();
    let dev = carol.add_device().unwrap();
    carol.revoke_device(&dev.cert.device_id()).unwrap();
    let dev_key = PrivateKey::from_pkcs8_der(dev.key.to_pkcs8_der()).unwrap();
    let dev_chain = vec![dev.cert.clone(), carol.account_cert().clone()];
    let keep = |o: &mut Options| o.crl_dir = Some(crl_dir.path().to_owned());

    // On a first network, carol's list is on the DHT: her revoked device is refused.
    let first = common::loopback_dht(3).await;
    publish_crl(&first[2], &carol).await;
    let bob_m = manager_with(first[1].clone(), &bob_key, bob_chain.clone(), keep).await;
    let m = manager(first[2].clone(), &dev_key, dev_chain.clone()).await;
    no_link(m.connect(&bob_chain, "").await.map(|_| ()));
    drop((bob_m, m));

    // Bob runs again on a network where the list is nowhere: the device stays refused.
    let second = common::loopback_dht(3).await;
    let bob_m = manager_with(second[1].clone(), &bob_key, bob_chain.clone(), keep).await;
    let m = manager(second[2].clone(), &dev_key, dev_chain).await;
    no_link(m.connect(&bob_chain, "").await.map(|_| ()));
    assert_eq!(
        bob_m.refusals().last().map(|(_, why)| why.clone()),
        Some(PeerRefused::Chain(ChainError::Revoked))
    );

    // A ban made while running applies to the next link, either way; lifted, links come.
    let erin = Account::create(|_| {}).unwrap();
    let (erin_key, erin_chain) = chain_of(&erin);
    let mut bob_m = bob_m;
    let e = manager(second[2].clone(), &erin_key, erin_chain.clone()).await;
    bob_m.dialer().set_banned(erin.jami_id(), true);
    no_link(e.connect(&bob_chain, "").await.map(|_| ()));
    match bob_m.connect(&erin_chain, "").await {
        Err(LinkError::Tls {
            refused: Some(PeerRefused::Banned),
            ..
        }) => {}
        other => panic!("expected a refusal, got {:?}", other.err()),
    }
    bob_m.dialer().set_banned(erin.jami_id(), false);
    let (link, accepted) = tokio::join!(e.connect(&bob_chain, ""), bob_m.accept());
    assert!(link.is_ok() && accepted.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_connection_requests_is_answered_once_at_a_time() {
    use pamoja_channel::request::{PeerConnectionRequest, short_key};
    use pamoja_dht::runner::ListenEvent;
    use pamoja_ice::agent::Role;
    use pamoja_ice::session::{Options as IceOptions, Session};

    let nodes = common::loopback_dht(3).await;
    let bob = Account::create(|_| {}).unwrap();
    let (bob_key, bob_chain) = chain_of(&bob);
    let _bob_m = manager(nodes[1].clone(), &bob_key, bob_chain.clone()).await;
    let mallory = Account::create(|_| {}).unwrap();
    let (m_key, m_chain) = chain_of(&mallory);
    let m_dht = SecureDht::new(
        nodes[2].clone(),
        PrivateKey::from_pkcs8_der(m_key.to_pkcs8_der()).unwrap(),
        m_chain.clone(),
    );
    m_dht.publish_certificate().await.unwrap();
    // A real ICE description that nobody will ever connect to: each answer stays in flight.
    let ice = Session::gather(
        Role::Controlled,
        IceOptions::tcp(vec!["127.0.0.1:0".parse().unwrap()]),
    )
    .await
    .unwrap()
    .local_description()
    .to_text();
    let mut answers = nodes[2]
        .listen(short_key(m_chain[0].public_key()), None)
        .await
        .unwrap();
    let bob_device = bob_chain[0].public_key();
    for _ in 0..20 {
        let sealed = PeerConnectionRequest::new(ice.clone(), "")
            .seal(&m_key, bob_device)
            .unwrap();
        nodes[2].put(short_key(bob_device), sealed).await.unwrap();
    }
    let mut answered = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, answers.next()).await {
        if let ListenEvent::Value(v) = ev {
            if PeerConnectionRequest::open(&v, &m_key).is_ok_and(|(r, _)| r.is_answer) {
                answered += 1;
            }
        }
    }
    // Twenty requests used to be twenty ICE gatherings and twenty answers at once.
    assert_eq!(answered, 1, "one answer in flight per device");
}
