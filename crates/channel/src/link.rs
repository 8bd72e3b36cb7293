//! The link manager: DHT rendezvous, ICE over TCP, TLS and the multiplexed socket, driven by
//! tokio on top of the pure pieces of this crate.
//!
//! [`Manager::connect`] reaches a device: it gathers ICE-TCP candidates (controlled), puts
//! an encrypted [`PeerConnectionRequest`] at the device's `peer:` key, waits up to 30 s for the
//! answer on its own key, runs ICE, then TLS as the **server**. A device that gets a request
//! checks the signer's certificate (found on the DHT), answers with its own candidates
//! (controlling), runs ICE and TLS as the **client**; the new [`Link`] comes out of
//! [`Manager::accept`]. On a link, [`Link::open`] asks for a named channel, and channels the
//! peer opens arrive as [`LinkEvent::Channel`] when the policy accepts their name (by default
//! `sip` only; everything else is declined). Request ids are remembered, so a replayed request
//! is ignored.
//!
//! Before answering or dialling, the peer's chain is checked as jamid checks it, with the
//! revocation lists its account published at its Jami ID and our bans; a refused device gets
//! no link, and [`Manager::refusals`] keeps why (each refusal is also logged).
//!
//! [`Manager::channel`] is the usual entry: it opens a channel to a device over the link
//! already up with it (whoever made it), and makes one only when there is none.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use pamoja_dht::InfoHash;
use pamoja_dht::runner::{ListenEvent, Runner};
use pamoja_dht::secure;
use pamoja_dht::securedht::SecureDht;
use pamoja_ice::agent::Role;
use pamoja_ice::candidate::IceMessage;
use pamoja_ice::pipe::Pipe;
use pamoja_ice::session::{Options as IceOptions, Session};
use pamoja_identity::{Certificate, DeviceId, JamiId, PublicKey, RevocationList};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{mpsc, oneshot};

use crate::mux::{Limits, Mux, MuxEvent};
use crate::request::{PeerConnectionRequest, long_key, short_key};
use crate::seen::Seen;
use crate::sip::{SipMessage, SipReader, StartLine};
use crate::tls::{Expected, Identity, PeerRefused, client_config, server_config, server_name};

/// Which `peer:` keys a device uses to meet others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendezvous {
    /// `SHA1("peer:" + 40-hex short id)`: jamid 2023 (Debian).
    Short,
    /// `SHA1("peer:" + 64-hex device id)`: current Jami.
    Long,
    /// Listen on both; dial on both.
    Both,
}

/// How the manager works.
#[derive(Debug, Clone)]
pub struct Options {
    /// Local addresses for ICE-TCP host candidates.
    pub ice_bind: Vec<SocketAddr>,
    /// Rendezvous keys.
    pub rendezvous: Rendezvous,
    /// How long a request waits for its answer (30 s, as jamid).
    pub answer_timeout: Duration,
    /// TLS handshake limit (40 s, as jamid).
    pub tls_timeout: Duration,
    /// Channel names the peer may open (default: `sip`).
    pub accept: fn(&str) -> bool,
    /// Accounts whose devices are refused.
    pub banned_accounts: Vec<JamiId>,
    /// Devices refused.
    pub banned_devices: Vec<DeviceId>,
    /// Where request ids are remembered (jamid shares one persistent set between request
    /// ids and message ids); by default a set of this manager's own.
    pub seen: Option<Arc<Mutex<Seen>>>,
    /// A directory keeping every revocation list seen (one DER file each, by account):
    /// a device once seen revoked stays refused across runs, even when the DHT no longer
    /// answers with its list. `None`: kept in memory for the manager's life only.
    pub crl_dir: Option<std::path::PathBuf>,
}

impl Options {
    /// ICE-TCP on `ice_bind`, both rendezvous keys, jamid's timeouts.
    pub fn new(ice_bind: Vec<SocketAddr>) -> Self {
        Self {
            ice_bind,
            rendezvous: Rendezvous::Both,
            answer_timeout: Duration::from_secs(30),
            tls_timeout: Duration::from_secs(40),
            accept: |name| name == "sip",
            banned_accounts: Vec::new(),
            banned_devices: Vec::new(),
            seen: None,
            crl_dir: None,
        }
    }
}

/// Why a link could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Network or DHT failure.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// No answer to the request in time.
    #[error("no answer from the device on the DHT")]
    NoAnswer,
    /// ICE found no path.
    #[error("ICE: {0}")]
    Ice(#[from] pamoja_ice::session::IceError),
    /// TLS failed; with the reason when the peer's certificate was refused.
    #[error("TLS: {what}{}", refused.as_ref().map(|r| format!(" ({r})")).unwrap_or_default())]
    Tls {
        /// What failed.
        what: String,
        /// Why the peer's certificate was refused, when it was.
        refused: Option<PeerRefused>,
    },
    /// The connection request could not be sealed or sent.
    #[error("request: {0}")]
    Request(#[from] crate::request::RequestError),
    /// The peer declined the channel.
    #[error("channel {0:?} declined")]
    Declined(String),
    /// The link is closed.
    #[error("link closed")]
    Closed,
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// A link to our own device was asked for.
    #[error("that is this device")]
    OwnDevice,
    /// The peer sent something that is not SIP.
    #[error("SIP: {0}")]
    Sip(String),
}

struct Inner {
    dht: Arc<SecureDht>,
    runner: Arc<Runner>,
    identity: Identity,
    opts: Options,
    /// Answers awaited: request id → where to deliver (answer, signer).
    /// Answers awaited: request id → the device asked and where to deliver.
    pending: Mutex<HashMap<u64, (DeviceId, oneshot::Sender<PeerConnectionRequest>)>>,
    /// Request ids seen, as 16-hex (requests are handled once).
    seen: Arc<Mutex<Seen>>,
    links: mpsc::Sender<Link>,
    /// Links up, by device (weak: a link lives while its `Link` or a channel of it does).
    by_device: Mutex<HashMap<DeviceId, mpsc::WeakSender<Cmd>>>,
    /// One link creation at a time per device.
    dialing: Mutex<HashMap<DeviceId, Arc<tokio::sync::Mutex<()>>>>,
    /// Channels peers open on links made by [`Manager::channel`].
    channels_in: mpsc::Sender<(DeviceId, Channel)>,
    /// The latest refusals, newest last.
    refusals: Mutex<VecDeque<(DeviceId, PeerRefused)>>,
    /// Accounts and devices refused, changed at run time by [`Dialer::set_banned`].
    bans: Mutex<Bans>,
    /// Revocation lists seen, by account (signature checked); see [`Options::crl_dir`].
    crls: Mutex<HashMap<JamiId, Vec<RevocationList>>>,
    /// Requests being answered: at most [`MAX_ANSWERS`], one per device.
    answering: Mutex<std::collections::HashSet<DeviceId>>,
}

#[derive(Default)]
struct Bans {
    accounts: std::collections::HashSet<JamiId>,
    devices: std::collections::HashSet<DeviceId>,
}

/// How many lists are kept per account (the ones revoking most).
const CRLS_KEPT: usize = 4;

/// How many refusals [`Manager::refusals`] remembers.
pub const REFUSALS_KEPT: usize = 64;

/// Connection requests answered at once (each gathers ICE candidates and may run a TLS
/// handshake); more wait for none: they are dropped, and their senders retry as jamid does.
pub const MAX_ANSWERS: usize = 8;

impl Inner {
    fn refused(&self, device: DeviceId, why: PeerRefused) {
        tracing::warn!("refusing device {device}: {why}");
        if let Ok(mut r) = self.refusals.lock() {
            if r.len() == REFUSALS_KEPT {
                r.pop_front();
            }
            r.push_back((device, why));
        }
    }

    /// What we expect of `device`, whose account certificate is `account` (when known): its
    /// account's revocation lists as published on the DHT, and our bans.
    /// Every list we know of, the DHT's and those seen before: a list missing from the
    /// DHT (expired, or hidden from us) does not let a revoked device back in.
    async fn expected(&self, device: &PublicKey, account: Option<&Certificate>) -> Expected {
        let mut e = Expected::device(device.clone());
        if let Ok(b) = self.bans.lock() {
            e.banned_accounts = b.accounts.iter().copied().collect();
            e.banned_devices = b.devices.iter().copied().collect();
        }
        if let Some(account) = account {
            for crl in account_crls(&self.runner, account).await {
                self.learn_crl(&account.jami_id(), crl);
            }
            e.crls = self
                .crls
                .lock()
                .ok()
                .and_then(|m| m.get(&account.jami_id()).cloned())
                .unwrap_or_default();
        }
        e
    }

    /// Keeps `crl` (already checked as signed by `account`) among the known lists, and in
    /// [`Options::crl_dir`] when it is new.
    fn learn_crl(&self, account: &JamiId, crl: RevocationList) {
        let Ok(mut m) = self.crls.lock() else { return };
        let lists = m.entry(*account).or_default();
        if lists.iter().any(|l| l.der() == crl.der()) {
            return;
        }
        if let Some(dir) = &self.opts.crl_dir {
            let dir = dir.join(account.to_string());
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, crl.der());
            let name: String = digest.as_ref()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let saved = std::fs::create_dir_all(&dir).and_then(|()| {
                pamoja_identity::durable::replace(
                    &dir.join(format!("{name}.der")),
                    crl.der(),
                    0o644,
                )
            });
            if let Err(e) = saved {
                tracing::warn!("revocation list of {account} not saved: {e}");
            }
        }
        lists.push(crl);
        lists.sort_by_key(|l| std::cmp::Reverse(l.revoked_serials().len()));
        lists.truncate(CRLS_KEPT);
    }

    fn remember(&self, link: &Link) {
        if let Ok(mut m) = self.by_device.lock() {
            m.retain(|_, w| w.strong_count() > 0);
            m.insert(link.device, link.cmds.downgrade());
        }
    }

    /// The command queue of a live link to `device`.
    fn live(&self, device: &DeviceId) -> Option<mpsc::Sender<Cmd>> {
        let m = self.by_device.lock().ok()?;
        m.get(device)?.upgrade().filter(|c| !c.is_closed())
    }
}

/// What [`Manager::next_incoming`] brings.
pub enum Incoming {
    /// A link a peer made to us.
    Link(Link),
    /// A channel a peer opened on a link we made, with the peer's device.
    Channel(DeviceId, Channel),
}

/// A device's link manager.
pub struct Manager {
    inner: Arc<Inner>,
    incoming: mpsc::Receiver<Link>,
    incoming_channels: mpsc::Receiver<(DeviceId, Channel)>,
    _listens: Vec<tokio::task::JoinHandle<()>>,
}

impl Manager {
    /// Starts listening for connection requests at our `peer:` key(s). `dht` must carry the
    /// same identity (its certificate should be published so peers can check us).
    pub async fn start(dht: Arc<SecureDht>, identity: Identity, opts: Options) -> io::Result<Self> {
        let (links, incoming) = mpsc::channel(16);
        let seen = opts
            .seen
            .clone()
            .unwrap_or_else(|| Arc::new(Mutex::new(Seen::new(crate::seen::DEFAULT_CAPACITY))));
        let (channels_in, incoming_channels) = mpsc::channel(64);
        let me = identity.chain[0].public_key().clone();
        let mut keys = Vec::new();
        if opts.rendezvous != Rendezvous::Long {
            keys.push(short_key(&me));
        }
        if opts.rendezvous != Rendezvous::Short {
            keys.push(long_key(&me.device_id()));
        }
        let bans = Bans {
            accounts: opts.banned_accounts.iter().copied().collect(),
            devices: opts.banned_devices.iter().copied().collect(),
        };
        let crls = opts.crl_dir.as_deref().map(load_crls).unwrap_or_default();
        let inner = Arc::new(Inner {
            bans: Mutex::new(bans),
            answering: Mutex::default(),
            crls: Mutex::new(crls),
            runner: dht.runner().clone(),
            dht,
            identity,
            opts,
            pending: Mutex::default(),
            seen,
            links,
            by_device: Mutex::default(),
            refusals: Mutex::default(),
            dialing: Mutex::default(),
            channels_in,
        });
        let mut listens = Vec::new();
        for key in keys {
            let listen = inner.runner.listen(key, None).await?;
            listens.push(tokio::spawn(listen_requests(inner.clone(), listen)));
        }
        Ok(Self {
            inner,
            incoming,
            incoming_channels,
            _listens: listens,
        })
    }

    /// Whatever a peer brings next: a new link, or a channel on a link made by
    /// [`Manager::channel`].
    pub async fn next_incoming(&mut self) -> Option<Incoming> {
        tokio::select! {
            Some(l) = self.incoming.recv() => Some(Incoming::Link(l)),
            Some((d, c)) = self.incoming_channels.recv() => Some(Incoming::Channel(d, c)),
            else => None,
        }
    }

    /// The next channel a peer opened on a link made by [`Manager::channel`], with its
    /// device.
    pub async fn accept_channel(&mut self) -> Option<(DeviceId, Channel)> {
        self.incoming_channels.recv().await
    }

    /// The latest devices refused, with why (at most [`REFUSALS_KEPT`], oldest first); each
    /// is also logged.
    pub fn refusals(&self) -> Vec<(DeviceId, PeerRefused)> {
        self.inner
            .refusals
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The number of links up.
    pub fn links_up(&self) -> usize {
        self.inner
            .by_device
            .lock()
            .map(|m| {
                m.values()
                    .filter(|w| w.upgrade().is_some_and(|c| !c.is_closed()))
                    .count()
            })
            .unwrap_or(0)
    }

    /// The next link a peer opened to us.
    pub async fn accept(&mut self) -> Option<Link> {
        self.incoming.recv().await
    }

    /// A handle that opens links and channels, to share between tasks while this manager
    /// keeps taking what peers bring.
    pub fn dialer(&self) -> Dialer {
        Dialer {
            inner: self.inner.clone(),
        }
    }

    /// Opens a channel named `name` to the device of certificate `peer`; see
    /// [`Dialer::channel`].
    pub async fn channel(
        &self,
        peer: &[Certificate],
        name: &str,
        conn_type: &str,
    ) -> Result<Channel, LinkError> {
        self.dialer().channel(peer, name, conn_type).await
    }

    /// Opens a link to the device of certificate `peer`; see [`Dialer::connect`].
    pub async fn connect(&self, peer: &[Certificate], conn_type: &str) -> Result<Link, LinkError> {
        self.dialer().connect(peer, conn_type).await
    }
}

/// The dialling half of a [`Manager`]: cheap to clone, usable from any task.
#[derive(Clone)]
pub struct Dialer {
    inner: Arc<Inner>,
}

impl Dialer {
    /// Opens a channel named `name` on the link already up with `device` (made by either
    /// side); [`LinkError::Closed`] when there is none.
    pub async fn open_linked(&self, device: &DeviceId, name: &str) -> Result<Channel, LinkError> {
        let cmds = self.inner.live(device).ok_or(LinkError::Closed)?;
        open_on(&cmds, name).await
    }

    /// Refuses (`banned`) or accepts again the devices of `account`, for every link made
    /// from now on, by either side. Links already up stay: their channels are the caller's
    /// to close.
    pub fn set_banned(&self, account: JamiId, banned: bool) {
        if let Ok(mut b) = self.inner.bans.lock() {
            if banned {
                b.accounts.insert(account);
            } else {
                b.accounts.remove(&account);
            }
        }
    }

    /// Keeps `crl` as a revocation list of `account` (our own account's, say, known from
    /// its archive), when `account` signed it; it applies to every link made from now on.
    pub fn add_crl(&self, account: &Certificate, crl: RevocationList) -> bool {
        let ok =
            crl.is_issued_by_name(account) && crl.verify_signature(account.public_key()).is_ok();
        if ok {
            self.inner.learn_crl(&account.jami_id(), crl);
        }
        ok
    }

    /// Whether a link to `device` is up (made by either side).
    pub fn is_linked(&self, device: &DeviceId) -> bool {
        self.inner.live(device).is_some()
    }

    /// Opens a channel named `name` to the device of certificate `peer`, over the link
    /// already up with that device when there is one (made by either side), else over a new
    /// link (`conn_type` says why). A link made here lives while one of its channels does;
    /// channels the peer opens on it come out of [`Manager::accept_channel`].
    pub async fn channel(
        &self,
        peer: &[Certificate],
        name: &str,
        conn_type: &str,
    ) -> Result<Channel, LinkError> {
        let device = peer
            .first()
            .ok_or(LinkError::Closed)?
            .public_key()
            .device_id();
        let gate = self
            .inner
            .dialing
            .lock()
            .map(|mut d| d.entry(device).or_default().clone())
            .map_err(|_| LinkError::Closed)?;
        let _one_at_a_time = gate.lock().await;
        if let Some(cmds) = self.inner.live(&device) {
            match open_on(&cmds, name).await {
                // A link that is gone or silent: make a new one.
                Err(LinkError::Closed | LinkError::Timeout) => {}
                other => return other,
            }
        }
        let Link {
            device,
            cmds,
            mut events,
            ..
        } = self.connect(peer, conn_type).await?;
        let to_manager = self.inner.channels_in.clone();
        tokio::spawn(async move {
            while let Some(LinkEvent::Channel(ch)) = events.recv().await {
                if to_manager.send((device, ch)).await.is_err() {
                    return;
                }
            }
        });
        open_on(&cmds, name).await
    }

    /// Opens a link to the device of certificate `peer` (its chain, device first, as found on
    /// the DHT); `conn_type` says why (`""`, `"text/plain"`...).
    pub async fn connect(&self, peer: &[Certificate], conn_type: &str) -> Result<Link, LinkError> {
        let inner = &self.inner;
        let device = peer.first().ok_or(LinkError::Closed)?.public_key().clone();
        if device.spki_der() == inner.identity.chain[0].public_key().spki_der() {
            return Err(LinkError::OwnDevice);
        }
        let expected = inner.expected(&device, peer.get(1)).await;
        let refs: Vec<&[u8]> = peer.iter().map(Certificate::der).collect();
        if let Err(why) = expected.check(&refs, SystemTime::now()) {
            inner.refused(device.device_id(), why.clone());
            return Err(LinkError::Tls {
                what: "peer refused before dialling".into(),
                refused: Some(why),
            });
        }
        let session = Session::gather(
            Role::Controlled,
            IceOptions::tcp(inner.opts.ice_bind.clone()),
        )
        .await?;
        let request = PeerConnectionRequest::new(session.local_description().to_text(), conn_type);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = inner.pending.lock() {
            p.insert(request.id, (device.device_id(), tx));
        }
        let sealed = request.seal(&inner.identity.key, &device)?;
        let mut keys = Vec::new();
        if inner.opts.rendezvous != Rendezvous::Long {
            keys.push(short_key(&device));
        }
        if inner.opts.rendezvous != Rendezvous::Short {
            keys.push(long_key(&device.device_id()));
        }
        for key in keys {
            inner.runner.put(key, sealed.clone()).await?;
        }
        let answer = tokio::time::timeout(inner.opts.answer_timeout, rx).await;
        if let Ok(mut p) = inner.pending.lock() {
            p.remove(&request.id);
        }
        let answer = answer
            .map_err(|_| LinkError::NoAnswer)?
            .map_err(|_| LinkError::NoAnswer)?;
        let remote = IceMessage::parse(&answer.ice_msg).ok_or(LinkError::NoAnswer)?;
        let conn = session.connect(remote).await?;
        // The side that asked is the TLS server.
        let (config, refused) =
            server_config(&inner.identity, expected).map_err(|e| LinkError::Tls {
                what: e.to_string(),
                refused: None,
            })?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let tls = tokio::time::timeout(inner.opts.tls_timeout, acceptor.accept(conn.into_stream()))
            .await
            .map_err(|_| LinkError::Tls {
                what: "handshake timed out".into(),
                refused: None,
            })?
            .map_err(|e| {
                let why = refused.lock().ok().and_then(|r| r.clone());
                if let Some(w) = &why {
                    inner.refused(device.device_id(), w.clone());
                }
                LinkError::Tls {
                    what: e.to_string(),
                    refused: why,
                }
            })?;
        let account = account_of(tls.get_ref().1.peer_certificates());
        let mut link = Link::start(tls, device.device_id(), inner.opts.accept);
        link.account = account;
        inner.remember(&link);
        Ok(link)
    }
}

/// The lists kept in `dir` (`<account>/<name>.der`). Their issuer and signature are checked
/// against the account's certificate each time one is used ([`Expected::check`]).
fn load_crls(dir: &std::path::Path) -> HashMap<JamiId, Vec<RevocationList>> {
    let mut m: HashMap<JamiId, Vec<RevocationList>> = HashMap::new();
    let Ok(accounts) = std::fs::read_dir(dir) else {
        return m;
    };
    for a in accounts.flatten() {
        let Some(account) = a
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<JamiId>().ok())
        else {
            continue;
        };
        let Ok(files) = std::fs::read_dir(a.path()) else {
            continue;
        };
        for f in files.flatten() {
            if f.path().extension().is_some_and(|e| e == "der") {
                match std::fs::read(f.path()).map(|d| RevocationList::from_der(&d)) {
                    Ok(Ok(crl)) => m.entry(account).or_default().push(crl),
                    _ => tracing::warn!("{}: not a revocation list, ignored", f.path().display()),
                }
            }
        }
    }
    m
}

/// The revocation lists an account published at its Jami ID (values whose data is a msgpack
/// `bin` holding a DER CRL), kept when the account certificate signed them.
pub async fn account_crls(runner: &Runner, account: &Certificate) -> Vec<RevocationList> {
    let Ok(key) = account.jami_id().to_string().parse::<InfoHash>() else {
        return Vec::new();
    };
    let Ok(values) = runner.get(key).await else {
        return Vec::new();
    };
    values
        .iter()
        .filter_map(|v| {
            let der = pamoja_identity::msgpack::Reader::new(&v.data).bin().ok()?;
            let crl = RevocationList::from_der(der).ok()?;
            (crl.is_issued_by_name(account) && crl.verify_signature(account.public_key()).is_ok())
                .then_some(crl)
        })
        .collect()
}

/// Asks a link (by its command queue) for a channel.
async fn open_on(cmds: &mpsc::Sender<Cmd>, name: &str) -> Result<Channel, LinkError> {
    let (tx, rx) = oneshot::channel();
    cmds.send(Cmd::Open(name.to_owned(), tx))
        .await
        .map_err(|_| LinkError::Closed)?;
    match tokio::time::timeout(OPEN_TIMEOUT, rx).await {
        Ok(r) => r.map_err(|_| LinkError::Closed)?,
        Err(_) => {
            // A peer that does not answer may be gone: a beacon ends the link if so.
            let _ = cmds.send(Cmd::Beacon).await;
            Err(LinkError::Timeout)
        }
    }
}

/// How long a channel request waits for the peer's answer.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// Frames a channel's reader finds queued for it (at most 64 KiB each).
const READER_QUEUE: usize = 16;

/// How far behind the peer a channel's reader may fall, in bytes not yet read (beyond the
/// 16 frames its queue holds): past this the channel is closed, with a warning. A link's
/// task never waits for a channel's reader, so one channel nobody reads cannot stop the
/// link's other channels, its beacons or our sends.
pub const CHANNEL_BACKLOG: usize = 8 << 20;

/// How long one write to the peer may wait (a peer that stops reading): then the link ends.
pub const WRITE_STALL: Duration = Duration::from_secs(30);

/// What the link's task holds of a channel the peer sends on: a queue that never blocks the
/// task, and the bytes queued not yet taken by the channel's forwarder.
struct Inbound {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
}

impl Inbound {
    /// A channel's inbound side, and the bounded queue its reader reads: a task forwards
    /// from one to the other, so that waiting on a slow reader is that task's, not the link's.
    fn new() -> (Self, mpsc::Receiver<Vec<u8>>) {
        use std::sync::atomic::Ordering;
        let (tx, data) = mpsc::channel(READER_QUEUE);
        let (utx, mut urx) = mpsc::unbounded_channel::<Vec<u8>>();
        let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let q = queued.clone();
        tokio::spawn(async move {
            while let Some(d) = urx.recv().await {
                q.fetch_sub(d.len(), Ordering::Relaxed);
                if tx.send(d).await.is_err() {
                    return;
                }
            }
        });
        (Self { tx: utx, queued }, data)
    }

    /// Queues `data`; `false` (nothing queued) when the reader is [`CHANNEL_BACKLOG`] behind.
    fn push(&self, data: Vec<u8>) -> bool {
        use std::sync::atomic::Ordering;
        let n = data.len();
        if self.queued.load(Ordering::Relaxed) + n > CHANNEL_BACKLOG {
            return false;
        }
        self.queued.fetch_add(n, Ordering::Relaxed);
        let _ = self.tx.send(data);
        true
    }
}

/// Handles values at one of our `peer:` keys: answers to our requests, and new requests.
async fn listen_requests(inner: Arc<Inner>, mut listen: pamoja_dht::runner::Listen) {
    while let Some(ev) = listen.next().await {
        let ListenEvent::Value(v) = ev else { continue };
        // RSA decryption and a signature check: on the blocking pool, one value at a time.
        let (i, value_type) = (inner.clone(), v.value_type);
        let opened =
            tokio::task::spawn_blocking(move || PeerConnectionRequest::open(&v, &i.identity.key))
                .await;
        let Ok(Ok((req, signer))) = opened else {
            continue;
        };
        if req.is_answer {
            // Matched on (device, id): an answer from another key leaves the request waiting.
            let from = signer.device_id();
            let waiter = inner
                .pending
                .lock()
                .ok()
                .and_then(|mut p| match p.get(&req.id) {
                    Some((d, _)) if *d == from => p.remove(&req.id).map(|(_, w)| w),
                    _ => None,
                });
            match waiter {
                Some(w) => {
                    let _ = w.send(req);
                }
                None => tracing::debug!("answer {} from {from}: no such request", req.id),
            }
            continue;
        }
        let fresh = inner
            .seen
            .lock()
            .map(|mut s| s.insert(&format!("{:016x}", req.id)).unwrap_or(true))
            .unwrap_or(false);
        if !fresh {
            continue;
        }
        let device = signer.device_id();
        let admitted = inner
            .answering
            .lock()
            .is_ok_and(|mut a| a.len() < MAX_ANSWERS && !a.contains(&device) && a.insert(device));
        if !admitted {
            tracing::info!(
                "connection request {} from {device}: dropped (one answer per device, {MAX_ANSWERS} at once)",
                req.id
            );
            continue;
        }
        let i = inner.clone();
        tokio::spawn(async move {
            answer(i.clone(), req, signer, value_type).await;
            if let Ok(mut a) = i.answering.lock() {
                a.remove(&device);
            }
        });
    }
}

/// Answers a request: checks the signer's certificate, answers on its key, ICE, TLS client.
async fn answer(inner: Arc<Inner>, req: PeerConnectionRequest, signer: PublicKey, _type: u16) {
    let id = secure::key_id(&signer);
    let Ok(Some(chain)) = inner.dht.find_certificate(id).await else {
        tracing::info!(
            "connection request {} from {id}: no certificate found",
            req.id
        );
        return;
    };
    let refs: Vec<&[u8]> = chain.iter().map(Certificate::der).collect();
    let expected = inner.expected(&signer, chain.get(1)).await;
    if let Err(why) = expected.check(&refs, SystemTime::now()) {
        inner.refused(signer.device_id(), why);
        return;
    }
    let Ok(session) = Session::gather(
        Role::Controlling,
        IceOptions::tcp(inner.opts.ice_bind.clone()),
    )
    .await
    else {
        return;
    };
    let Some(remote) = IceMessage::parse(&req.ice_msg) else {
        return;
    };
    let reply = req.answer(session.local_description().to_text());
    let Ok(sealed) = reply.seal(&inner.identity.key, &signer) else {
        return;
    };
    let mut keys = Vec::new();
    if inner.opts.rendezvous != Rendezvous::Long {
        keys.push(short_key(&signer));
    }
    if inner.opts.rendezvous != Rendezvous::Short {
        keys.push(long_key(&signer.device_id()));
    }
    for key in keys {
        let _ = inner.runner.put(key, sealed.clone()).await;
    }
    let Ok(conn) = session.connect(remote).await else {
        tracing::info!("connection request {}: ICE failed", req.id);
        return;
    };
    let Ok((config, refused)) = client_config(&inner.identity, expected) else {
        return;
    };
    let connector = tokio_rustls::TlsConnector::from(config);
    let tls = tokio::time::timeout(
        inner.opts.tls_timeout,
        connector.connect(server_name(), conn.into_stream()),
    )
    .await;
    match tls {
        Ok(Ok(tls)) => {
            let account = account_of(tls.get_ref().1.peer_certificates());
            let mut link = Link::start(tls, signer.device_id(), inner.opts.accept);
            link.account = account;
            inner.remember(&link);
            let _ = inner.links.send(link).await;
        }
        Ok(Err(e)) => match refused.lock().ok().and_then(|r| r.clone()) {
            Some(why) => inner.refused(signer.device_id(), why),
            None => tracing::warn!("TLS with {id} failed: {e}"),
        },
        Err(_) => tracing::warn!("TLS with {id} timed out"),
    }
}

/// The account of a TLS peer: the issuer certificate that follows the device's.
fn account_of(certs: Option<&[rustls::pki_types::CertificateDer<'_>]>) -> Option<JamiId> {
    let der = certs?.get(1)?;
    Certificate::from_der(der.as_ref())
        .ok()
        .map(|c| c.jami_id())
}

/// What handles ask of a link's task.
enum Cmd {
    Open(String, oneshot::Sender<Result<Channel, LinkError>>),
    /// Send on a channel, with the outcome.
    Send(u16, Vec<u8>, oneshot::Sender<Result<(), LinkError>>),
    /// Send on a channel (a stream's write).
    Data(u16, Vec<u8>),
    Close(u16),
    Beacon,
}

/// What a link reports.
pub enum LinkEvent {
    /// The peer opened a channel (the policy accepted its name).
    Channel(Channel),
}

/// A link to one device: TLS over ICE, carrying channels.
pub struct Link {
    device: DeviceId,
    account: Option<JamiId>,
    cmds: mpsc::Sender<Cmd>,
    events: mpsc::Receiver<LinkEvent>,
}

/// The sending half of a [`Channel`], cheap to clone.
#[derive(Clone)]
pub struct ChannelSender {
    id: u16,
    cmds: mpsc::Sender<Cmd>,
}

impl ChannelSender {
    /// Sends bytes, as [`Channel::send`].
    pub async fn send(&self, data: &[u8]) -> Result<(), LinkError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Send(self.id, data.to_vec(), tx))
            .await
            .map_err(|_| LinkError::Closed)?;
        rx.await.map_err(|_| LinkError::Closed)?
    }

    /// Whether both handles send on the same channel.
    pub fn same_channel(&self, other: &ChannelSender) -> bool {
        self.id == other.id && self.cmds.same_channel(&other.cmds)
    }

    /// Whether the link under the channel is gone.
    pub fn is_closed(&self) -> bool {
        self.cmds.is_closed()
    }
}

/// One channel of a link.
pub struct Channel {
    /// Channel number.
    pub id: u16,
    /// Its name.
    pub name: String,
    data: mpsc::Receiver<Vec<u8>>,
    cmds: mpsc::Sender<Cmd>,
}

impl Channel {
    /// Sends bytes (in frames of at most 65,535 bytes).
    pub async fn send(&self, data: &[u8]) -> Result<(), LinkError> {
        self.sender().send(data).await
    }

    /// A handle that sends on this channel from another task.
    pub fn sender(&self) -> ChannelSender {
        ChannelSender {
            id: self.id,
            cmds: self.cmds.clone(),
        }
    }

    /// The next frame from the peer; `None` once the channel or the link closed.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        self.data.recv().await
    }

    /// Sends a SIP request in one write (as jamid needs) and returns the final response to
    /// it, read with `reader` (the channel's reader, kept by the caller across requests).
    /// Provisional responses and requests from the peer that arrive meanwhile are skipped.
    pub async fn sip_request(
        &mut self,
        reader: &mut SipReader,
        request: &SipMessage,
        timeout: Duration,
    ) -> Result<SipMessage, LinkError> {
        self.send(&request.to_bytes()).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            while let Some(m) = reader.next_message() {
                let m = m.map_err(|e| LinkError::Sip(e.to_string()))?;
                if let StartLine::Response { code, .. } = m.start {
                    if code >= 200 {
                        return Ok(m);
                    }
                }
            }
            let data = tokio::time::timeout_at(deadline, self.recv())
                .await
                .map_err(|_| LinkError::Timeout)?
                .ok_or(LinkError::Closed)?;
            reader.push(&data);
        }
    }

    /// Closes the channel.
    pub async fn close(self) {
        let _ = self.cmds.send(Cmd::Close(self.id)).await;
    }

    /// This channel as a byte stream ([`AsyncRead`] + [`AsyncWrite`]): what is written goes
    /// out in frames of at most 64 KiB, what the peer sends is read in order. A channel has no
    /// half-close: shutting the write side down (or dropping the stream) closes the channel
    /// both ways, and reads end once either side closed it. Backpressure: writes wait while
    /// the link's queue is full; a reader that falls [`CHANNEL_BACKLOG`] bytes behind the
    /// peer loses the channel (its reads end after what was queued), the link goes on.
    pub fn into_stream(self) -> ChannelStream {
        let Channel { id, data, cmds, .. } = self;
        ChannelStream(Pipe::new(
            data,
            cmds,
            move |b: &[u8]| Cmd::Data(id, b.to_vec()),
            crate::mux::MAX_PAYLOAD,
            Some(Cmd::Close(id)),
        ))
    }
}

/// A channel as a byte stream (see [`Channel::into_stream`]).
pub struct ChannelStream(Pipe<Cmd>);

impl AsyncRead for ChannelStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ChannelStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl Link {
    /// A link over a stream already secured with `device` (TLS done, peer checked): the
    /// multiplexed socket runs on it, and channels the peer asks for are accepted when
    /// `accept` says yes to their name. [`Manager`] makes links this way; this is for other
    /// transports and for tests.
    pub fn over<S>(stream: S, device: DeviceId, accept: fn(&str) -> bool) -> Self
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Self::start(stream, device, accept)
    }

    /// Checks the link is alive (jamid does this when its network changes): a beacon goes
    /// out, and the link ends when no answer comes within 3 s.
    pub async fn beacon(&self) -> Result<(), LinkError> {
        self.cmds
            .send(Cmd::Beacon)
            .await
            .map_err(|_| LinkError::Closed)
    }

    fn start<S>(stream: S, device: DeviceId, accept: fn(&str) -> bool) -> Self
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (cmds, cmd_rx) = mpsc::channel(256);
        let (ev_tx, events) = mpsc::channel(64);
        // The task keeps only a weak handle: once the link and its channels are dropped, it
        // ends and the TLS stream closes.
        tokio::spawn(run_link(stream, cmd_rx, cmds.downgrade(), ev_tx, accept));
        Self {
            device,
            account: None,
            cmds,
            events,
        }
    }

    /// The account the peer's device belongs to, as its TLS certificate chain said (links
    /// made by [`Manager`]; `None` for [`Link::over`]).
    pub fn account(&self) -> Option<&JamiId> {
        self.account.as_ref()
    }

    /// The peer device.
    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    /// Asks the peer for a channel named `name`.
    pub async fn open(&self, name: &str) -> Result<Channel, LinkError> {
        open_on(&self.cmds, name).await
    }

    /// The next event; `None` once the link closed.
    pub async fn next_event(&mut self) -> Option<LinkEvent> {
        self.events.recv().await
    }
}

async fn run_link<S>(
    stream: S,
    mut cmds: mpsc::Receiver<Cmd>,
    cmd_tx: mpsc::WeakSender<Cmd>,
    events: mpsc::Sender<LinkEvent>,
    accept: fn(&str) -> bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut mux = Mux::new(Limits::default());
    let mut opening: HashMap<u16, oneshot::Sender<Result<Channel, LinkError>>> = HashMap::new();
    let mut channels: HashMap<u16, Inbound> = HashMap::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Events first: answering them queues frames, sent right below.
        while let Some(e) = mux.poll_event() {
            match e {
                MuxEvent::Request { channel, name } => {
                    let Some(cmds) = cmd_tx.upgrade() else { return };
                    if accept(&name) {
                        mux.accept(channel);
                        let (inbound, data) = Inbound::new();
                        channels.insert(channel, inbound);
                        let ch = Channel {
                            id: channel,
                            name,
                            data,
                            cmds,
                        };
                        let _ = events.send(LinkEvent::Channel(ch)).await;
                    } else {
                        tracing::info!("declining channel {name:?}");
                        mux.decline(channel);
                    }
                }
                MuxEvent::Opened { channel, name } => {
                    let Some(cmds) = cmd_tx.upgrade() else { return };
                    let (inbound, data) = Inbound::new();
                    channels.insert(channel, inbound);
                    if let Some(w) = opening.remove(&channel) {
                        let _ = w.send(Ok(Channel {
                            id: channel,
                            name,
                            data,
                            cmds,
                        }));
                    }
                }
                MuxEvent::Declined { channel, name } => {
                    if let Some(w) = opening.remove(&channel) {
                        let _ = w.send(Err(LinkError::Declined(name)));
                    }
                }
                MuxEvent::Data { channel, data } => {
                    // Never waits: a reader too far behind loses its channel, not the link.
                    if channels.get(&channel).is_some_and(|c| !c.push(data)) {
                        tracing::warn!(
                            "channel {channel}: its reader is over {CHANNEL_BACKLOG} bytes behind, closed"
                        );
                        channels.remove(&channel);
                        mux.close(channel);
                    }
                }
                MuxEvent::Closed { channel } => {
                    channels.remove(&channel);
                }
                MuxEvent::Version(_) => {}
                MuxEvent::Failed(e) => {
                    tracing::warn!("link failed: {e}");
                    return;
                }
            }
        }
        while let Some(b) = mux.poll_transmit() {
            match tokio::time::timeout(WRITE_STALL, wr.write_all(&b)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::warn!("link: the peer read nothing for {WRITE_STALL:?}, ended");
                    return;
                }
            }
        }
        if tokio::time::timeout(WRITE_STALL, wr.flush()).await.is_err() {
            return;
        }
        let wake = mux.poll_timeout().map(tokio::time::Instant::from_std);
        let sleep = async {
            match wake {
                Some(w) => tokio::time::sleep_until(w).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            n = rd.read(&mut buf) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => mux.handle_bytes(&buf[..n]),
            },
            c = cmds.recv() => match c {
                Some(Cmd::Open(name, w)) => match mux.open(&name) {
                    Ok(ch) => { opening.insert(ch, w); }
                    Err(e) => { let _ = w.send(Err(LinkError::Io(io::Error::other(e)))); }
                },
                Some(Cmd::Send(ch, data, w)) => {
                    let r = mux.send(ch, &data).map_err(|e| LinkError::Io(io::Error::other(e)));
                    let _ = w.send(r);
                }
                Some(Cmd::Close(ch)) => {
                    channels.remove(&ch);
                    mux.close(ch);
                }
                Some(Cmd::Data(ch, data)) => {
                    if mux.send(ch, &data).is_err() {
                        // The channel is gone: the stream's reads have ended too.
                        channels.remove(&ch);
                    }
                }
                Some(Cmd::Beacon) => mux.beacon(Instant::now()),
                None => return,
            },
            _ = sleep => mux.handle_timeout(Instant::now()),
        }
    }
}
