//! A Pamoja device in the jamid lab: what it publishes on the DHT, its link manager, and
//! finding a jamid account's device. Shared by the interop tests and the lab benchmarks;
//! call from a thread that entered the lab's namespace.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use pamoja::channel::link::{Manager, Options, Rendezvous};
use pamoja::channel::tls::Identity;
use pamoja::dht::securedht::SecureDht;
use pamoja::dht::{Config, InfoHash, Runner, Value, secure};
use pamoja::identity::announce::DeviceAnnouncement;
use pamoja::identity::{Account, Certificate, PrivateKey};
use pamoja_lab::LAB_ADDR;

/// Our device's DHT node, certificate and signed announcement (inside the lab: call from a
/// thread that entered its namespace). Returns the runner, the secure DHT and the device's
/// TLS identity.
pub async fn publish(account: &Account) -> Result<(Arc<Runner>, Arc<SecureDht>, Identity), String> {
    let runner = Runner::bind("127.0.0.1:0".parse().unwrap(), Config::default())
        .await
        .map_err(|e| e.to_string())?;
    runner.bootstrap("127.0.0.1:4222".parse().unwrap());
    while runner.stats().await.map_err(|e| e.to_string())?.good4 == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let runner = Arc::new(runner);
    let device = account.device().ok_or("no device")?;
    let mut chain = vec![device.cert.clone(), account.account_cert().clone()];
    chain.extend(account.ca_cert().cloned());
    let key = || PrivateKey::from_pkcs8_der(device.key.to_pkcs8_der()).unwrap();
    let dht = Arc::new(SecureDht::new(runner.clone(), key(), chain.clone()));
    dht.publish_certificate().await.map_err(|e| e.to_string())?;
    // The signed announcement at our Jami ID.
    let mut ann = Value {
        id: 1,
        data: DeviceAnnouncement::new(device.cert.public_key()).pack(),
        ..Value::default()
    };
    secure::sign(&mut ann, account.account_key()).map_err(|e| e.to_string())?;
    let jami_id: InfoHash = account.jami_id().to_string().parse().unwrap();
    runner.put(jami_id, ann).await.map_err(|e| e.to_string())?;
    Ok((runner, dht, Identity { key: key(), chain }))
}

/// [`publish`], and a link manager answering connection requests.
pub async fn setup(account: &Account) -> Result<(Manager, Arc<Runner>, Arc<SecureDht>), String> {
    setup_accepting(account, |name| name == "sip").await
}

/// [`setup`], accepting the channels whose names `accept` says yes to.
pub async fn setup_accepting(
    account: &Account,
    accept: fn(&str) -> bool,
) -> Result<(Manager, Arc<Runner>, Arc<SecureDht>), String> {
    let (runner, dht, identity) = publish(account).await?;
    let mut opts = Options::new(vec![format!("{LAB_ADDR}:0").parse().unwrap()]);
    opts.rendezvous = Rendezvous::Both;
    opts.accept = accept;
    let manager = Manager::start(dht.clone(), identity, opts)
        .await
        .map_err(|e| e.to_string())?;
    Ok((manager, runner, dht))
}

/// The certificate chain of the device account `to` (40 hex) announces, waiting up to 60 s
/// for it to show up on the DHT.
pub async fn device_chain(
    runner: &Runner,
    dht: &SecureDht,
    to: &str,
) -> Result<Vec<Certificate>, String> {
    let jami_id: InfoHash = to.parse().map_err(|_| "bad id")?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let values = runner.get(jami_id).await.map_err(|e| e.to_string())?;
        let dev = values.iter().find_map(|v| {
            let owner = secure::verify(v).ok()?;
            (secure::key_id(&owner) == jami_id).then_some(())?;
            DeviceAnnouncement::unpack(&v.data).ok()
        });
        if let Some(d) = dev {
            let short: InfoHash = d.dev.to_string().parse().map_err(|_| "bad device id")?;
            if let Some(c) = dht
                .find_certificate(short)
                .await
                .map_err(|e| e.to_string())?
            {
                return Ok(c);
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err("the device was not found on the DHT".into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
