//! The tokio driver: sockets, TCP connections and a TURN allocation around one [`Agent`].
//!
//! ```no_run
//! # async fn demo(remote_text: String) -> Result<(), pamoja_ice::session::IceError> {
//! use pamoja_ice::agent::Role;
//! use pamoja_ice::candidate::IceMessage;
//! use pamoja_ice::session::{Options, Session};
//!
//! // Host candidates are the addresses given: name the interface, not 0.0.0.0.
//! let opts = Options::udp(vec!["192.0.2.10:0".parse().unwrap()]);
//! let session = Session::gather(Role::Controlled, opts).await?;
//! let ours = session.local_description().to_text(); // give it to the peer
//! let theirs = IceMessage::parse(&remote_text).unwrap();
//! let mut conn = session.connect(theirs).await?;
//! conn.send(b"hello").await?;
//! let reply = conn.recv().await;
//! # Ok(()) }
//! ```
//!
//! One task owns everything: it gathers candidates (host sockets, a server-reflexive address
//! from a STUN server, a relayed address from a TURN server over UDP or TCP), runs the
//! checks when the peer's description arrives, and afterwards carries application data on
//! the selected pair, keeps consent and the TURN allocation alive. ICE over TCP (RFC 6544)
//! uses a listening socket per `passive` candidate and connects out from `active` ones; every
//! packet on a connection is RFC 4571 framed. A [`Connection`] hands out the data: one
//! datagram per [`Connection::recv`] over UDP, one frame per call over TCP.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};

use crate::agent::{Agent, Config, Credentials, Event, Failure, Input, Role, SelectedPair, State};
use crate::candidate::{Candidate, IceMessage, Kind, TcpType, Transport};
use crate::client::{
    Binding, ClientError, TurnClient, TurnEvent, TurnInput, connection_bound, stream_message_len,
};
use crate::framing::{Deframer, frame};
use crate::pipe::Pipe;

/// Why a session could not be set up or connected.
#[derive(Debug, thiserror::Error)]
pub enum IceError {
    /// A socket could not be opened.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// The STUN or TURN server failed us.
    #[error("{server}: {error}")]
    Server {
        /// The server.
        server: SocketAddr,
        /// What went wrong.
        error: ClientError,
    },
    /// Connectivity checks found no pair.
    #[error("ICE negotiation failed: {0:?}")]
    Failed(Failure),
    /// Neither a host, reflexive nor relayed candidate could be gathered.
    #[error("no candidate could be gathered")]
    NoCandidates,
    /// The session's task ended.
    #[error("the ICE session is closed")]
    Closed,
}

/// A TURN server to allocate a relayed address on.
#[derive(Debug, Clone)]
pub struct TurnServer {
    /// Its address.
    pub addr: SocketAddr,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Reach it over TCP (the relay is still UDP).
    pub tcp: bool,
}

/// What to gather.
#[derive(Debug, Clone)]
pub struct Options {
    /// Local addresses to open host candidates on (port 0 for any).
    pub bind: Vec<SocketAddr>,
    /// Use UDP (media) or TCP (device links, RFC 6544).
    pub transport: Transport,
    /// A STUN server for a server-reflexive candidate (UDP sessions; a TCP session learns
    /// its public address from the TURN server).
    pub stun: Option<SocketAddr>,
    /// A TURN server for a relayed candidate: a UDP relay for UDP sessions; a TCP relay
    /// (RFC 6062, reached over TCP) for TCP sessions, offered as `tcptype passive`.
    pub turn: Option<TurnServer>,
    /// Gathering gives up on a server after this long (5 s).
    pub gather_timeout: Duration,
    /// Checks give up after this long without a selected pair (30 s).
    pub connect_timeout: Duration,
    /// Offer and check only the relayed candidate (the TURN server must be given): the
    /// peer never learns our addresses.
    pub relay_only: bool,
    /// Agent timing.
    pub config: Config,
    /// The component negotiated (1; a media session numbers its components across streams).
    pub component: u32,
    /// Credentials to answer to (fresh ones when `None`); the components of one media
    /// session share theirs.
    pub credentials: Option<Credentials>,
}

impl Options {
    /// UDP host candidates on `bind`, nothing else.
    pub fn udp(bind: Vec<SocketAddr>) -> Self {
        Self {
            bind,
            transport: Transport::Udp,
            stun: None,
            turn: None,
            gather_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(30),
            relay_only: false,
            config: Config::default(),
            component: 1,
            credentials: None,
        }
    }

    /// TCP host candidates (`passive` on a listening socket, `active` with port 9) on `bind`.
    pub fn tcp(bind: Vec<SocketAddr>) -> Self {
        Self {
            transport: Transport::Tcp,
            ..Self::udp(bind)
        }
    }
}

/// Where a TCP connection's reader sends data frames once its pair carries a stream: set by
/// the driver when the pair is selected, cleared when consent is lost.
type DirectSlot = Arc<std::sync::Mutex<Option<mpsc::Sender<Vec<u8>>>>>;

/// One of our TCP connections, as the driver holds it: its writer and its reader's slot.
type TcpConn = (mpsc::Sender<Vec<u8>>, DirectSlot);

/// The selected TCP connection's writer, and the frames its reader hands over directly.
type Direct = (mpsc::Sender<Vec<u8>>, mpsc::Receiver<Vec<u8>>);

/// Whether a frame is a STUN message (RFC 8489: top bits 00, the magic cookie); everything
/// else on a selected pair is data.
fn is_stun(f: &[u8]) -> bool {
    f.len() >= 20 && f[0] & 0xc0 == 0 && f[4..8] == [0x21, 0x12, 0xa4, 0x42]
}

/// Who waits for the outcome of the checks.
type Waiter = oneshot::Sender<Result<(SelectedPair, Option<Direct>), IceError>>;

enum Command {
    Remote(IceMessage, Waiter),
    Send(Vec<u8>),
}

enum Incoming {
    Udp(usize, SocketAddr, Vec<u8>),
    /// A frame on a TCP connection: (local base, remote).
    Tcp(SocketAddr, SocketAddr, Vec<u8>),
    /// A connection is up: (local base, remote) and its writer.
    TcpUp(SocketAddr, SocketAddr, mpsc::Sender<Vec<u8>>, DirectSlot),
    /// The connection's reader sends data frames straight to the user from now on.
    Switched,
    TcpDown(SocketAddr, SocketAddr),
    TurnTcp(Vec<u8>),
}

/// A gathered session, ready to connect to a peer.
pub struct Session {
    description: IceMessage,
    commands: mpsc::Sender<Command>,
    data: mpsc::Receiver<Vec<u8>>,
    relayed: Option<(SocketAddr, SocketAddr)>,
    connect_timeout: Duration,
}

/// A connected component: the selected pair and its data.
pub struct Connection {
    selected: SelectedPair,
    commands: mpsc::Sender<Command>,
    data: mpsc::Receiver<Vec<u8>>,
    /// On a TCP pair: its writer, and the frames its reader hands over once `data` ended.
    direct: Option<Direct>,
}

impl Session {
    /// Opens the sockets and gathers candidates, then keeps them alive in a task.
    pub async fn gather(role: Role, opts: Options) -> Result<Self, IceError> {
        let (incoming_tx, incoming) = mpsc::channel(1024);
        let component = opts.component.clamp(1, 256);
        let credentials = opts.credentials.clone().unwrap_or_else(Credentials::random);
        let mut agent = Agent::for_component(role, opts.config.clone(), credentials, component);
        let mut udp = Vec::new();
        let mut listeners = Vec::new();
        for (i, addr) in opts.bind.iter().enumerate() {
            match opts.transport {
                Transport::Udp => {
                    let s = Arc::new(UdpSocket::bind(addr).await?);
                    let base = s.local_addr()?;
                    if !opts.relay_only {
                        let c = Candidate::local(
                            Kind::Host,
                            Transport::Udp,
                            None,
                            base,
                            base.ip(),
                            65535 - i as u32,
                        );
                        agent.add_local_candidate(c, base);
                    }
                    spawn_udp_reader(i, s.clone(), incoming_tx.clone());
                    udp.push(s);
                }
                Transport::Tcp => {
                    let l = TcpListener::bind(addr).await?;
                    let base = l.local_addr()?;
                    let c = Candidate::local(
                        Kind::Host,
                        Transport::Tcp,
                        Some(TcpType::Passive),
                        base,
                        base.ip(),
                        65535,
                    );
                    agent.add_local_candidate(c, base);
                    let active = SocketAddr::new(base.ip(), 9);
                    let c = Candidate::local(
                        Kind::Host,
                        Transport::Tcp,
                        Some(TcpType::Active),
                        active,
                        base.ip(),
                        65534,
                    );
                    agent.add_local_candidate(c, active);
                    listeners.push(base);
                    spawn_acceptor(l, incoming_tx.clone());
                }
            }
        }
        let mut driver = Driver {
            agent,
            udp,
            tcp: HashMap::new(),
            connecting: HashMap::new(),
            incoming_tx,
            turn: None,
            turn_server: None,
            turn_tcp: None,
            relayed: None,
            waiter: None,
            data_tx: None,
        };
        let mut incoming = incoming;
        let relayed = driver.gather_servers(&opts, &mut incoming).await?;
        if driver.agent.local_candidates().next().is_none() {
            return Err(IceError::NoCandidates);
        }
        let description = driver.agent.local_description();
        let (commands, commands_rx) = mpsc::channel(256);
        let (data_tx, data) = mpsc::channel(1024);
        driver.data_tx = Some(data_tx);
        tokio::spawn(driver.run(incoming, commands_rx));
        Ok(Self {
            description,
            commands,
            data,
            relayed,
            connect_timeout: opts.connect_timeout,
        })
    }

    /// Our ufrag, password and candidates, for the peer.
    pub fn local_description(&self) -> &IceMessage {
        &self.description
    }

    /// The TURN allocation's (relayed, mapped) addresses, when one was made.
    pub fn relayed(&self) -> Option<(SocketAddr, SocketAddr)> {
        self.relayed
    }

    /// Runs the checks against the peer's description until a pair is selected.
    pub async fn connect(self, remote: IceMessage) -> Result<Connection, IceError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Remote(remote, tx))
            .await
            .map_err(|_| IceError::Closed)?;
        let (selected, direct) = tokio::time::timeout(self.connect_timeout, rx)
            .await
            .map_err(|_| IceError::Failed(Failure::ChecksFailed))?
            .map_err(|_| IceError::Closed)??;
        Ok(Connection {
            selected,
            commands: self.commands,
            data: self.data,
            direct,
        })
    }
}

impl Connection {
    /// The pair data flows on.
    pub fn selected(&self) -> &SelectedPair {
        &self.selected
    }

    /// Sends one datagram (UDP) or frame (TCP) to the peer.
    pub async fn send(&self, data: &[u8]) -> Result<(), IceError> {
        if let Some((w, _)) = &self.direct {
            if data.len() > crate::framing::MAX_FRAME {
                return Err(IceError::Closed);
            }
            return w.send(data.to_vec()).await.map_err(|_| IceError::Closed);
        }
        self.commands
            .send(Command::Send(data.to_vec()))
            .await
            .map_err(|_| IceError::Closed)
    }

    /// The next datagram or frame from the peer; `None` once the session ended (consent
    /// lost).
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        if let Some(d) = self.data.recv().await {
            return Some(d);
        }
        // Frames that came through the driver are done; the rest come straight.
        self.direct.as_mut()?.1.recv().await
    }

    /// The connection as a byte stream, for ICE over TCP: reads give the concatenation of
    /// the peer's data frames (frame boundaries mean nothing there, as with jamid's TLS),
    /// writes become frames of at most 65,535 bytes. Dropping the stream ends the session.
    /// Over TCP, data goes straight between the stream and the connection's socket tasks;
    /// the session keeps answering STUN (consent) on the same connection, and reads end
    /// when consent is lost.
    pub fn into_stream(self) -> Pipe<Vec<u8>> {
        let Connection {
            commands,
            data,
            direct,
            ..
        } = self;
        match direct {
            // TCP: frames go to the connection's writer and come from its reader, without
            // passing through the driver (which keeps answering STUN, for consent).
            Some((writer, frames)) => Pipe::new(
                data,
                writer,
                |b: &[u8]| b.to_vec(),
                crate::framing::MAX_FRAME,
                None,
            )
            .then_read(frames)
            .keep(commands),
            None => {
                let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
                // Through the driver: one task forwards writes as commands.
                tokio::spawn(async move {
                    while let Some(b) = rx.recv().await {
                        if commands.send(Command::Send(b)).await.is_err() {
                            return;
                        }
                    }
                });
                Pipe::new(
                    data,
                    tx,
                    |b: &[u8]| b.to_vec(),
                    crate::framing::MAX_FRAME,
                    None,
                )
            }
        }
    }
}

fn spawn_udp_reader(i: usize, s: Arc<UdpSocket>, tx: mpsc::Sender<Incoming>) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, from)) = s.recv_from(&mut buf).await else {
                // ICMP errors surface as receive errors on some systems: keep reading.
                if tx.is_closed() {
                    return;
                }
                continue;
            };
            if tx
                .send(Incoming::Udp(i, from, buf[..n].to_vec()))
                .await
                .is_err()
            {
                return;
            }
        }
    });
}

/// Connections a passive TCP candidate keeps at once; more are closed as they come, so that a
/// peer opening thousands cannot make the session hold thousands of buffers and tasks
/// (checks need one connection per remote candidate).
pub const MAX_ACCEPTED: usize = 128;

fn spawn_acceptor(l: TcpListener, tx: mpsc::Sender<Incoming>) {
    tokio::spawn(async move {
        let Ok(base) = l.local_addr() else { return };
        // Each accepted connection holds a clone while its reader runs.
        let open = Arc::new(());
        while let Ok((stream, peer)) = l.accept().await {
            if tx.is_closed() {
                return;
            }
            if Arc::strong_count(&open) > MAX_ACCEPTED {
                // Dropped: closed at once.
                continue;
            }
            spawn_framed(
                stream,
                base,
                peer,
                Vec::new(),
                tx.clone(),
                Some(open.clone()),
            );
        }
    });
}

/// A TCP relay's data connection for a peer that connected to our relayed address: bound
/// with ConnectionBind, then a framed connection like an accepted one, on the relayed base.
async fn bind_data_connection(
    server: SocketAddr,
    relayed: SocketAddr,
    peer: SocketAddr,
    id: [u8; 12],
    request: Vec<u8>,
    tx: mpsc::Sender<Incoming>,
) {
    let bound = async {
        let mut s = TcpStream::connect(server).await.ok()?;
        s.write_all(&request).await.ok()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 2048];
        while stream_message_len(&buf).is_none() {
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let len = stream_message_len(&buf)?;
        connection_bound(&id, &buf[..len])?.then(|| (s, buf[len..].to_vec()))
    };
    if let Ok(Some((stream, rest))) = tokio::time::timeout(Duration::from_secs(10), bound).await {
        spawn_framed(stream, relayed, peer, rest, tx, None);
    }
}

/// Reader and writer of one framed connection, known to the driver as (base, peer).
fn spawn_connection(
    stream: TcpStream,
    base: SocketAddr,
    peer: SocketAddr,
    tx: mpsc::Sender<Incoming>,
) {
    spawn_framed(stream, base, peer, Vec::new(), tx, None);
}

/// [`spawn_connection`] with bytes already read from the stream.
fn spawn_framed(
    stream: TcpStream,
    base: SocketAddr,
    peer: SocketAddr,
    already: Vec<u8>,
    tx: mpsc::Sender<Incoming>,
    slot: Option<Arc<()>>,
) {
    let _ = stream.set_nodelay(true);
    let (mut r, mut w) = stream.into_split();
    let (wtx, mut wrx) = mpsc::channel::<Vec<u8>>(256);
    let direct: DirectSlot = Arc::default();
    tokio::spawn(async move {
        while let Some(b) = wrx.recv().await {
            let Some(f) = frame(&b) else { continue };
            if w.write_all(&f).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        let _slot = slot;
        if tx
            .send(Incoming::TcpUp(base, peer, wtx, direct.clone()))
            .await
            .is_err()
        {
            return;
        }
        let mut switched = false;
        let mut d = Deframer::default();
        d.push(&already);
        let mut buf = vec![0u8; 65536];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => d.push(&buf[..n]),
            }
            // Acknowledge at once. A peer whose socket keeps Nagle's algorithm on (jamid's)
            // holds a small write until its previous one is acknowledged; with the kernel's
            // delayed acknowledgements that is 40 ms whenever we have nothing to send back,
            // e.g. between jamid's answer to our new-commit notice and its fetch request.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            let _ = r.as_ref().set_quickack(true);
            while let Some(f) = d.next_frame() {
                let sink = if is_stun(&f) {
                    None
                } else {
                    direct.lock().ok().and_then(|s| s.clone())
                };
                match sink {
                    Some(sink) => {
                        if !switched {
                            // Everything before this went through the driver: it closes
                            // that path once it has passed it on, then reads go on here.
                            switched = true;
                            if tx.send(Incoming::Switched).await.is_err() {
                                return;
                            }
                        }
                        if sink.send(f).await.is_err() {
                            return;
                        }
                    }
                    None => {
                        if tx.send(Incoming::Tcp(base, peer, f)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            if d.pending() > 1 << 20 {
                break;
            }
        }
        let _ = tx.send(Incoming::TcpDown(base, peer)).await;
    });
}

struct Driver {
    agent: Agent,
    udp: Vec<Arc<UdpSocket>>,
    tcp: HashMap<(SocketAddr, SocketAddr), TcpConn>,
    /// Packets waiting for an outgoing connection.
    connecting: HashMap<(SocketAddr, SocketAddr), Vec<Vec<u8>>>,
    incoming_tx: mpsc::Sender<Incoming>,
    turn: Option<TurnClient>,
    turn_server: Option<SocketAddr>,
    turn_tcp: Option<mpsc::Sender<Vec<u8>>>,
    relayed: Option<SocketAddr>,
    waiter: Option<Waiter>,
    data_tx: Option<mpsc::Sender<Vec<u8>>>,
}

impl Driver {
    /// On a selected pair over one of our TCP connections: its writer, and a queue its
    /// reader will hand data frames to.
    fn direct_path(&mut self) -> Option<Direct> {
        let (Transport::Tcp, local, remote) = self.agent.selected_path()? else {
            return None;
        };
        let (writer, slot) = self.tcp.get(&(local, remote))?;
        let (tx, rx) = mpsc::channel(64);
        *slot.lock().ok()? = Some(tx);
        Some((writer.clone(), rx))
    }

    async fn gather_servers(
        &mut self,
        opts: &Options,
        incoming: &mut mpsc::Receiver<Incoming>,
    ) -> Result<Option<(SocketAddr, SocketAddr)>, IceError> {
        let first = self.udp.first().cloned();
        let base = match &first {
            Some(s) => Some(s.local_addr()?),
            None => None,
        };
        let deadline = tokio::time::Instant::now() + opts.gather_timeout;
        if let (Some(server), Some(first), Some(base)) = (opts.stun, &first, base) {
            let mut b = Binding::new(Instant::now(), false);
            loop {
                while let Some(p) = b.poll_transmit() {
                    let _ = first.send_to(&p, server).await;
                }
                if let Some(r) = b.result() {
                    match r {
                        Ok(mapped) => {
                            if *mapped != base && !opts.relay_only {
                                let c = Candidate::local(
                                    Kind::Srflx,
                                    Transport::Udp,
                                    None,
                                    *mapped,
                                    base.ip(),
                                    65535,
                                );
                                self.agent.add_local_candidate(c, base);
                            }
                        }
                        Err(e) => {
                            return Err(IceError::Server {
                                server,
                                error: e.clone(),
                            });
                        }
                    }
                    break;
                }
                let wake = b
                    .poll_timeout()
                    .map(tokio::time::Instant::from_std)
                    .unwrap_or(deadline)
                    .min(deadline);
                tokio::select! {
                    m = incoming.recv() => match m {
                        Some(Incoming::Udp(0, from, d)) if from == server => { b.handle_input(&d); }
                        Some(other) => self.early(other),
                        None => return Err(IceError::Closed),
                    },
                    _ = tokio::time::sleep_until(wake) => {
                        if wake >= deadline {
                            return Err(IceError::Server { server, error: ClientError::Timeout });
                        }
                        b.handle_timeout(Instant::now());
                    }
                }
            }
        }
        let Some(t) = &opts.turn else {
            return Ok(None);
        };
        let server = t.addr;
        self.turn_server = Some(server);
        // A TCP session allocates a TCP relay (RFC 6062), over TCP.
        let tcp_relay = opts.transport == Transport::Tcp;
        if t.tcp || tcp_relay {
            let stream = tokio::time::timeout(opts.gather_timeout, TcpStream::connect(server))
                .await
                .map_err(|_| IceError::Server {
                    server,
                    error: ClientError::Timeout,
                })??;
            let (mut r, mut w) = stream.into_split();
            let (wtx, mut wrx) = mpsc::channel::<Vec<u8>>(256);
            tokio::spawn(async move {
                while let Some(b) = wrx.recv().await {
                    if w.write_all(&b).await.is_err() {
                        return;
                    }
                }
            });
            let tx = self.incoming_tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = vec![0u8; 65536];
                loop {
                    match r.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    while let Some(len) = stream_message_len(&buf) {
                        let m: Vec<u8> = buf.drain(..len).collect();
                        if tx.send(Incoming::TurnTcp(m)).await.is_err() {
                            return;
                        }
                    }
                    if buf.len() > 1 << 20 {
                        return;
                    }
                }
            });
            self.turn_tcp = Some(wtx);
        }
        self.turn = Some(if tcp_relay {
            TurnClient::new_tcp_relay(Instant::now(), &t.username, &t.password)
        } else {
            TurnClient::new(Instant::now(), &t.username, &t.password, t.tcp)
        });
        loop {
            self.flush_turn().await;
            let turn = self.turn.as_mut().expect("set above");
            while let Some(e) = turn.poll_event() {
                match e {
                    TurnEvent::Allocated {
                        relayed, mapped, ..
                    } => {
                        self.relayed = Some(relayed);
                        if tcp_relay {
                            // As pjnath: the relay accepts (passive); our public address
                            // is offered as an active srflx with port 9, which also tells
                            // the peer whom to permit on its own relay.
                            let c = Candidate::local(
                                Kind::Relay,
                                Transport::Tcp,
                                Some(TcpType::Passive),
                                relayed,
                                relayed.ip(),
                                65535,
                            );
                            self.agent.add_local_candidate(c, relayed);
                            let public = SocketAddr::new(mapped.ip(), 9);
                            if !opts.relay_only
                                && self
                                    .agent
                                    .local_candidates()
                                    .all(|c| c.addr.ip() != mapped.ip())
                            {
                                let c = Candidate::local(
                                    Kind::Srflx,
                                    Transport::Tcp,
                                    Some(TcpType::Active),
                                    public,
                                    mapped.ip(),
                                    // The third candidate, after passive and active.
                                    65533,
                                );
                                self.agent.add_local_candidate(c, public);
                            }
                            return Ok(Some((relayed, mapped)));
                        }
                        let c = Candidate::local(
                            Kind::Relay,
                            Transport::Udp,
                            None,
                            relayed,
                            relayed.ip(),
                            65535,
                        );
                        self.agent.add_local_candidate(c, relayed);
                        let Some(base) = base else {
                            return Ok(Some((relayed, mapped)));
                        };
                        if !opts.relay_only
                            && self.agent.local_candidates().all(|c| c.addr != mapped)
                            && mapped != base
                        {
                            let c = Candidate::local(
                                Kind::Srflx,
                                Transport::Udp,
                                None,
                                mapped,
                                base.ip(),
                                65534,
                            );
                            self.agent.add_local_candidate(c, base);
                        }
                        return Ok(Some((relayed, mapped)));
                    }
                    TurnEvent::Failed(error) => return Err(IceError::Server { server, error }),
                    _ => {}
                }
            }
            let wake = turn
                .poll_timeout()
                .map(tokio::time::Instant::from_std)
                .unwrap_or(deadline)
                .min(deadline);
            tokio::select! {
                m = incoming.recv() => match m {
                    Some(m) => self.handle_incoming(m).await,
                    None => return Err(IceError::Closed),
                },
                _ = tokio::time::sleep_until(wake) => {
                    if wake >= deadline {
                        return Err(IceError::Server { server, error: ClientError::Timeout });
                    }
                    if let Some(t) = self.turn.as_mut() { t.handle_timeout(Instant::now()); }
                }
            }
        }
    }

    /// Traffic that arrives while gathering (a fast peer's checks) is handled normally.
    fn early(&mut self, m: Incoming) {
        let now = Instant::now();
        if let Incoming::Udp(i, from, d) = m {
            if let Ok(base) = self.udp[i].local_addr() {
                let _ = self.agent.handle_input(now, Transport::Udp, base, from, &d);
            }
        }
    }

    async fn flush_turn(&mut self) {
        let (Some(turn), Some(server)) = (self.turn.as_mut(), self.turn_server) else {
            return;
        };
        while let Some(p) = turn.poll_transmit() {
            match &self.turn_tcp {
                Some(w) => {
                    let _ = w.send(p).await;
                }
                None => {
                    if let Some(s) = self.udp.first() {
                        let _ = s.send_to(&p, server).await;
                    }
                }
            }
        }
    }

    async fn send_turn(&mut self, bytes: Vec<u8>) {
        let Some(server) = self.turn_server else {
            return;
        };
        match &self.turn_tcp {
            Some(w) => {
                let _ = w.send(bytes).await;
            }
            None => {
                if let Some(s) = self.udp.first() {
                    let _ = s.send_to(&bytes, server).await;
                }
            }
        }
    }

    async fn handle_incoming(&mut self, m: Incoming) {
        let now = Instant::now();
        let reliable = matches!(m, Incoming::Tcp(..));
        let input = match m {
            Incoming::Udp(i, from, d) => {
                if Some(from) == self.turn_server && i == 0 && self.turn_tcp.is_none() {
                    self.turn_input(now, &d)
                } else {
                    let Ok(base) = self.udp[i].local_addr() else {
                        return;
                    };
                    self.agent.handle_input(now, Transport::Udp, base, from, &d)
                }
            }
            Incoming::TurnTcp(d) => self.turn_input(now, &d),
            Incoming::Tcp(base, peer, d) => {
                self.agent.handle_input(now, Transport::Tcp, base, peer, &d)
            }
            Incoming::TcpUp(base, peer, w, direct) => {
                for p in self.connecting.remove(&(base, peer)).unwrap_or_default() {
                    let _ = w.send(p).await;
                }
                self.tcp.insert((base, peer), (w, direct));
                Input::Consumed
            }
            Incoming::Switched => {
                // The frames before the switch have all been passed on.
                self.data_tx = None;
                Input::Consumed
            }
            Incoming::TcpDown(base, peer) => {
                self.tcp.remove(&(base, peer));
                Input::Consumed
            }
        };
        if let Input::Data(d) = input {
            if let Some(tx) = &self.data_tx {
                if reliable {
                    // A byte stream loses nothing: wait for the reader.
                    let _ = tx.send(d).await;
                } else {
                    // Datagrams: drop when the reader is behind, as a socket would.
                    let _ = tx.try_send(d);
                }
            }
        }
    }

    fn turn_input(&mut self, now: Instant, d: &[u8]) -> Input {
        let Some(turn) = self.turn.as_mut() else {
            return Input::Consumed;
        };
        match turn.handle_input(now, d) {
            TurnInput::Data(peer, data) => match self.relayed {
                Some(relayed) => self
                    .agent
                    .handle_input(now, Transport::Udp, relayed, peer, &data),
                None => Input::Consumed,
            },
            TurnInput::Consumed => Input::Consumed,
        }
    }

    async fn transmit(&mut self, t: crate::agent::Transmit) {
        match t.transport {
            Transport::Udp => {
                if Some(t.local) == self.relayed {
                    let Some(turn) = self.turn.as_mut() else {
                        return;
                    };
                    if let Some(b) = turn.send_to(Instant::now(), t.remote, &t.data) {
                        self.flush_turn().await;
                        self.send_turn(b).await;
                    }
                    return;
                }
                for s in &self.udp {
                    if s.local_addr().ok() == Some(t.local) {
                        let _ = s.send_to(&t.data, t.remote).await;
                        return;
                    }
                }
            }
            Transport::Tcp => {
                let key = (t.local, t.remote);
                if let Some((w, _)) = self.tcp.get(&key) {
                    let _ = w.send(t.data).await;
                    return;
                }
                if t.local.port() != 9 {
                    // A passive base only answers on connections the peer opened.
                    return;
                }
                if let Some(q) = self.connecting.get_mut(&key) {
                    if q.len() < 64 {
                        q.push(t.data);
                    }
                    return;
                }
                self.connecting.insert(key, vec![t.data]);
                let tx = self.incoming_tx.clone();
                tokio::spawn(async move {
                    let socket = match t.local {
                        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
                    };
                    let Ok(socket) = socket else { return };
                    if socket.bind(SocketAddr::new(t.local.ip(), 0)).is_err() {
                        return;
                    }
                    match tokio::time::timeout(Duration::from_secs(15), socket.connect(t.remote))
                        .await
                    {
                        Ok(Ok(stream)) => spawn_connection(stream, t.local, t.remote, tx),
                        _ => {
                            let _ = tx.send(Incoming::TcpDown(t.local, t.remote)).await;
                        }
                    }
                });
            }
        }
    }

    async fn pump(&mut self) {
        while let Some(t) = self.agent.poll_transmit() {
            self.transmit(t).await;
        }
        while let Some(e) = self.agent.poll_event() {
            match e {
                Event::Selected(pair) => {
                    if let Some(w) = self.waiter.take() {
                        let direct = self.direct_path();
                        let _ = w.send(Ok((pair, direct)));
                    }
                }
                Event::Failed(f) => {
                    if let Some(w) = self.waiter.take() {
                        let _ = w.send(Err(IceError::Failed(f)));
                    }
                    // Consent lost: the data channels close.
                    self.data_tx = None;
                    for (_, slot) in self.tcp.values() {
                        if let Ok(mut s) = slot.lock() {
                            *s = None;
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(turn) = self.turn.as_mut() {
            // Permissions and channels need nothing more; a lost allocation only removes
            // the relayed path, which consent then reports if it was the selected one. A
            // peer connecting to a TCP relay gets its own data connection.
            while let Some(e) = turn.poll_event() {
                let TurnEvent::ConnectionAttempt {
                    peer,
                    connection_id,
                } = e
                else {
                    continue;
                };
                if let (Some(server), Some(relayed), Some((id, request))) = (
                    self.turn_server,
                    self.relayed,
                    turn.connection_bind(connection_id),
                ) {
                    let tx = self.incoming_tx.clone();
                    tokio::spawn(bind_data_connection(server, relayed, peer, id, request, tx));
                }
            }
        }
        self.flush_turn().await;
    }

    async fn run(
        mut self,
        mut incoming: mpsc::Receiver<Incoming>,
        mut commands: mpsc::Receiver<Command>,
    ) {
        loop {
            self.pump().await;
            if self.agent.state() == State::Failed
                && self.waiter.is_none()
                && self.data_tx.is_none()
            {
                if let Some(t) = self.turn.as_mut() {
                    t.close(Instant::now());
                    self.flush_turn().await;
                }
                return;
            }
            let wake = [
                self.agent.poll_timeout(),
                self.turn.as_ref().and_then(|t| t.poll_timeout()),
            ]
            .into_iter()
            .flatten()
            .min()
            .map(tokio::time::Instant::from_std);
            let sleep = async {
                match wake {
                    Some(w) => tokio::time::sleep_until(w).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                m = incoming.recv() => match m {
                    Some(m) => self.handle_incoming(m).await,
                    None => return,
                },
                c = commands.recv() => match c {
                    Some(Command::Remote(remote, waiter)) => {
                        if let Some(turn) = self.turn.as_mut() {
                            // Permanent permissions for every peer candidate, as pjnath.
                            let ips: Vec<IpAddr> = remote.candidates.iter().map(|c| c.addr.ip()).collect();
                            for ip in ips {
                                turn.permit(Instant::now(), ip);
                            }
                        }
                        self.waiter = Some(waiter);
                        self.agent.set_remote(Instant::now(), &remote);
                    }
                    Some(Command::Send(d)) => {
                        if let Some(t) = self.agent.send(&d) {
                            self.transmit(t).await;
                        }
                    }
                    None => {
                        // Every handle dropped: release the relay and stop.
                        if let Some(t) = self.turn.as_mut() {
                            t.close(Instant::now());
                            self.flush_turn().await;
                        }
                        return;
                    }
                },
                _ = sleep => {
                    let now = Instant::now();
                    self.agent.handle_timeout(now);
                    if let Some(t) = self.turn.as_mut() { t.handle_timeout(now); }
                }
            }
        }
    }
}
