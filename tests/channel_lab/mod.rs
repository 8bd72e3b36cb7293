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

/// Serves one channel a peer opened: git upload-pack on `git://`, 200 OK to SIP requests.
pub async fn serve_channel(ch: pamoja::channel::link::Channel, repo: &std::path::Path) {
    if ch.name.starts_with("git://") {
        let repo = repo.to_owned();
        tokio::spawn(async move {
            let _ = pamoja::swarm::git::serve(&repo, ch.into_stream()).await;
        });
    } else if ch.name == "sip" {
        tokio::spawn(async move {
            let mut ch = ch;
            let mut reader = pamoja::channel::sip::SipReader::default();
            while let Some(d) = ch.recv().await {
                reader.push(&d);
                while let Some(Ok(m)) = reader.next_message() {
                    if matches!(m.start, pamoja::channel::sip::StartLine::Request { .. }) {
                        let ok = pamoja::channel::sip::response(&m, 200, "OK").to_bytes();
                        if ch.send(&ok).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// A jamid device and one of its conversations.
pub struct Peer {
    /// Its account (40 hex).
    pub jami_id: String,
    /// Its device (64 hex).
    pub device: String,
    /// The conversation.
    pub conversation: String,
}

/// What [`member`] did.
pub struct Membership {
    /// How long the clone took on the open channel (fetch, validation, checkout).
    pub clone_time: Duration,
    /// Our last commit.
    pub head: String,
    /// When jamid was told of it.
    pub notified: std::time::Instant,
}

/// Our device in the lab as a member of a jamid conversation that invited `account`: clones it
/// from jamid's device into `dir` over a `git://` channel, joins, posts `texts`, tells jamid
/// with an `application/im-gitmessage-id` MESSAGE, then serves jamid's fetches until `done`
/// fires (or two minutes pass).
pub fn member(
    lab: &pamoja_lab::Lab,
    account: Account,
    peer: Peer,
    dir: std::path::PathBuf,
    texts: Vec<String>,
    done: tokio::sync::oneshot::Receiver<()>,
) -> std::thread::JoinHandle<pamoja_lab::Result<Result<Membership, String>>> {
    use pamoja::channel::link::{Incoming, LinkEvent};
    use pamoja::channel::sip;
    lab.netns().spawn_inside(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let (mut manager, runner, dht) =
                setup_accepting(&account, |n| n == "sip" || n.starts_with("git://")).await?;
            let chain = device_chain(&runner, &dht, &peer.jami_id).await?;
            let ch = manager
                .channel(
                    &chain,
                    &format!("git://{}/{}", peer.device, peer.conversation),
                    "",
                )
                .await
                .map_err(|e| e.to_string())?;
            // Timed from here: the link is up, as jamid's is when it fetches from us.
            let t = std::time::Instant::now();
            let mut stream = ch.into_stream();
            let c = pamoja::swarm::git::clone(&dir, &mut stream, &peer.conversation, &peer.device)
                .await
                .map_err(|e| e.to_string())?;
            let clone_time = t.elapsed();
            let signer =
                pamoja::swarm::Signer::of(&account, "pamoja").map_err(|e| e.to_string())?;
            c.join(&signer).map_err(|e| e.to_string())?;
            let mut head = c.head().map_err(|e| e.to_string())?;
            for text in &texts {
                head = c.post(&signer, text).map_err(|e| e.to_string())?;
            }
            // Tell jamid, as jamid tells members.
            let mut sip_ch = manager
                .channel(&chain, "sip", "application/im-gitmessage-id")
                .await
                .map_err(|e| e.to_string())?;
            let body = serde_json::json!({"id": peer.conversation, "commit": head.to_string(),
                "deviceId": signer.device.device_id().to_string()})
            .to_string();
            let route = sip::Route {
                from: account.jami_id().to_string(),
                to: peer.jami_id.clone(),
                local: format!("{LAB_ADDR}:1").parse().unwrap(),
                remote: format!("{LAB_ADDR}:2").parse().unwrap(),
            };
            let m = sip::message(
                &route,
                "application/im-gitmessage-id",
                &body,
                &sip::new_message_id(),
                0,
            );
            let notified = std::time::Instant::now();
            sip_ch
                .sip_request(&mut sip::SipReader::default(), &m, Duration::from_secs(30))
                .await
                .map_err(|e| e.to_string())?;
            // Serve jamid's git channels (and answer its SIP) until told to stop.
            let mut done = done;
            let deadline = tokio::time::sleep(Duration::from_secs(120));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    inc = manager.next_incoming() => match inc {
                        Some(Incoming::Link(mut link)) => {
                            let served = dir.clone();
                            tokio::spawn(async move {
                                while let Some(LinkEvent::Channel(ch)) = link.next_event().await {
                                    serve_channel(ch, &served).await;
                                }
                            });
                        }
                        Some(Incoming::Channel(_, ch)) => serve_channel(ch, &dir).await,
                        None => break,
                    },
                    _ = &mut done => break,
                    _ = &mut deadline => break,
                }
            }
            Ok(Membership {
                clone_time,
                head: head.to_string(),
                notified,
            })
        })
    })
}
