//! An account on the network: joining the DHT, announcing a device, finding the devices an
//! account announces, accepting and dialing links. [`Client`](crate::Client) is built on
//! this; so is a program that needs only links and messages (`jami run` without a data
//! directory, `jami send`).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pamoja_channel::link::{Manager, Options, Rendezvous};
use pamoja_channel::seen::{self, Seen};
use pamoja_channel::tls::Identity;
use pamoja_dht::securedht::SecureDht;
use pamoja_dht::{Config as DhtConfig, InfoHash, Runner, Value, secure};
use pamoja_identity::announce::DeviceAnnouncement;
use pamoja_identity::{Account, Certificate, JamiId, PrivateKey};

use crate::error::ClientError;

/// How long joining the DHT may take (the runner pings the bootstrap nodes again after
/// 10 s when the first ping goes unanswered).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How a device goes online.
#[derive(Debug, Clone)]
pub struct OnlineOptions {
    /// DHT nodes to join (at least one).
    pub bootstrap: Vec<SocketAddr>,
    /// The address for ICE host candidates.
    pub ice_addr: IpAddr,
    /// A file keeping the ids of connection requests and messages already handled
    /// across runs (`None`: kept in memory).
    pub seen_file: Option<std::path::PathBuf>,
    /// Channel names accepted from peers.
    pub accept: fn(&str) -> bool,
    /// Accounts whose devices are refused.
    pub banned: Vec<JamiId>,
    /// Where revocation lists seen are kept across runs (`None`: in memory).
    pub crl_dir: Option<std::path::PathBuf>,
}

/// A device online: its DHT runner, its secure DHT, its link manager.
pub struct Online {
    /// The DHT runner (joined).
    pub runner: Arc<Runner>,
    /// The DHT with the device's identity (signed, encrypted values, certificates).
    pub dht: Arc<SecureDht>,
    /// The link manager (accepts and dials links).
    pub manager: Manager,
    /// Request and message ids already handled.
    pub seen: Arc<Mutex<Seen>>,
    /// Our device's chain: device, account, CA.
    pub chain: Vec<Certificate>,
}

/// Joins the DHT, publishes the device's certificate and announcement (and the account's
/// revocation list), and starts the link manager.
pub async fn go_online(account: &Account, options: OnlineOptions) -> Result<Online, ClientError> {
    let device = account.device().ok_or(ClientError::NoDeviceKey)?;
    let first = *options
        .bootstrap
        .first()
        .ok_or(ClientError::NoBootstrapGiven)?;
    let any = if first.is_ipv4() {
        IpAddr::from([0, 0, 0, 0])
    } else {
        IpAddr::from([0u16; 8])
    };
    let runner = Runner::bind(SocketAddr::new(any, 0), DhtConfig::default()).await?;
    for b in &options.bootstrap {
        runner.bootstrap(*b);
    }
    runner
        .joined(JOIN_TIMEOUT)
        .await
        .map_err(|_| ClientError::NoBootstrap(first))?;
    let runner = Arc::new(runner);
    let mut chain = vec![device.cert.clone(), account.account_cert().clone()];
    chain.extend(account.ca_cert().cloned());
    let key = || PrivateKey::from_pkcs8_der(device.key.to_pkcs8_der());
    let dht = Arc::new(SecureDht::new(runner.clone(), key()?, chain.clone()));
    announce(&runner, &dht, account).await?;
    let seen = Arc::new(Mutex::new(match &options.seen_file {
        Some(path) => Seen::open(path, seen::DEFAULT_CAPACITY)?,
        None => Seen::new(seen::DEFAULT_CAPACITY),
    }));
    let mut opts = Options::new(vec![SocketAddr::new(options.ice_addr, 0)]);
    opts.rendezvous = Rendezvous::Both;
    opts.seen = Some(seen.clone());
    opts.accept = options.accept;
    opts.banned_accounts = options.banned;
    opts.crl_dir = options.crl_dir;
    let manager = Manager::start(
        dht.clone(),
        Identity {
            key: key()?,
            chain: chain.clone(),
        },
        opts,
    )
    .await?;
    // Our own account's revocations apply to our own devices, DHT or not.
    if let Some(crl) = account.crl() {
        manager
            .dialer()
            .add_crl(account.account_cert(), crl.clone());
    }
    Ok(Online {
        runner,
        dht,
        manager,
        seen,
        chain,
    })
}

fn key_of(id: &JamiId) -> InfoHash {
    InfoHash(*id.as_bytes())
}

/// Puts our device certificate at its short id, our device announcement (signed by the
/// account) and the account's CRL at our Jami ID, as jamid does.
pub async fn announce(runner: &Runner, dht: &SecureDht, account: &Account) -> io::Result<()> {
    dht.publish_certificate().await?;
    let device = account
        .device()
        .ok_or_else(|| io::Error::other("no device key"))?;
    let mut ann = Value {
        id: 1,
        data: DeviceAnnouncement::new(device.cert.public_key()).pack(),
        ..Value::default()
    };
    secure::sign(&mut ann, account.account_key()).map_err(io::Error::other)?;
    let key = key_of(&account.jami_id());
    runner.put(key, ann).await?;
    if let Some(crl) = account.crl() {
        let mut data = Vec::new();
        pamoja_identity::msgpack::bin(&mut data, crl.der());
        runner
            .put(
                key,
                Value {
                    id: 2,
                    data,
                    ..Value::default()
                },
            )
            .await?;
    }
    Ok(())
}

/// The short id of the device a value at `account`'s key announces, when the account
/// signed it.
pub fn announced_device(v: &Value, account: &JamiId) -> Option<InfoHash> {
    let key = key_of(account);
    let owner = secure::verify(v).ok()?;
    if secure::key_id(&owner) != key {
        return None;
    }
    let ann = DeviceAnnouncement::unpack(&v.data).ok()?;
    ann.dev.to_string().parse().ok()
}

/// The short ids of the devices `account` announces now.
pub async fn announced_devices(runner: &Runner, account: &JamiId) -> Vec<InfoHash> {
    runner
        .get(key_of(account))
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|v| announced_device(v, account))
        .collect()
}

/// The certificate chains of the devices `account` announces, each checked against the
/// account (its account certificate is the account's); waits up to `wait` for the first.
pub async fn devices_of(
    runner: &Runner,
    dht: &SecureDht,
    account: &JamiId,
    wait: Duration,
) -> Vec<Vec<Certificate>> {
    let mut found: Vec<Vec<Certificate>> = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        for short in announced_devices(runner, account).await {
            if let Ok(Some(chain)) = dht.find_certificate(short).await {
                let of_account = chain.get(1).is_some_and(|a| a.jami_id() == *account);
                if of_account && !found.iter().any(|c| c[0].der() == chain[0].der()) {
                    found.push(chain);
                }
            }
        }
        if !found.is_empty() || tokio::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The address the system would use towards `peer` (for ICE host candidates when none is
/// given).
pub fn local_addr_towards(peer: SocketAddr) -> io::Result<IpAddr> {
    let any = if peer.is_ipv4() {
        IpAddr::from([0, 0, 0, 0])
    } else {
        IpAddr::from([0u16; 8])
    };
    let probe = std::net::UdpSocket::bind((any, 0))?;
    probe.connect(peer)?;
    Ok(probe.local_addr()?.ip())
}

/// `<archive>.seen`: where `jami run` keeps handled ids beside an archive.
pub fn seen_file_beside(archive: &Path) -> std::path::PathBuf {
    let mut p = archive.as_os_str().to_owned();
    p.push(".seen");
    p.into()
}
