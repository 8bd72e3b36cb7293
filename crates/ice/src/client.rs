//! Clients of a STUN or TURN server, as sans-IO state machines: a Binding request that learns
//! our server-reflexive address ([`Binding`]), and a TURN allocation ([`TurnClient`],
//! RFC 8656) that asks for a relayed address with long-term credentials, keeps it refreshed,
//! installs permissions, binds channels and carries data to and from peers.
//!
//! Both produce the bytes to send to the server and take what the server sent; the driver
//! owns the socket. Over UDP requests are retransmitted (500 ms, doubling, 7 times); over
//! TCP (`reliable`) they are sent once and a stream of messages is split with
//! [`stream_message_len`].

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::stun::{self, BINDING, Builder, Class, Message, attr};
use crate::turn::{self, Credentials};

/// Why a server exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// No answer after every retransmission.
    #[error("no answer from the server")]
    Timeout,
    /// The server refused our user name or password.
    #[error("the server refused the credentials ({0})")]
    Unauthorized(String),
    /// Any other error answer.
    #[error("the server answered {0} {1}")]
    Refused(u16, String),
    /// A success answer without the address it must carry.
    #[error("malformed answer from the server")]
    Malformed,
}

/// Whether the server's answer to a ConnectionBind with `transaction` (read from the data
/// connection) is a success: `Some(true)` bound, `Some(false)` refused, `None` not that answer.
pub fn connection_bound(transaction: &[u8; 12], answer: &[u8]) -> Option<bool> {
    let m = Message::decode(answer).ok()?;
    (m.transaction == *transaction && m.method == turn::CONNECTION_BIND)
        .then_some(m.class == Class::Success)
}

/// The length of the next complete STUN message or ChannelData frame at the start of a TCP
/// byte stream from a STUN/TURN server (ChannelData is padded to 4 bytes there), or `None`
/// until enough bytes arrived.
pub fn stream_message_len(buf: &[u8]) -> Option<usize> {
    if buf.len() < 4 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    let total = if buf[0] & 0xC0 == 0x40 {
        4 + len.div_ceil(4) * 4
    } else {
        stun::HEADER_LEN + len
    };
    (buf.len() >= total).then_some(total)
}

#[derive(Debug, Clone)]
struct Transaction {
    id: [u8; 12],
    bytes: Vec<u8>,
    transmits: u32,
    interval: Duration,
    next: Instant,
}

const RTO: Duration = Duration::from_millis(500);
const MAX_TRANSMITS: u32 = 7;
const RELIABLE_TIMEOUT: Duration = Duration::from_secs(8);

impl Transaction {
    fn new(now: Instant, id: [u8; 12], bytes: Vec<u8>, reliable: bool) -> Self {
        Self {
            id,
            bytes,
            transmits: 1,
            interval: RTO,
            next: now + if reliable { RELIABLE_TIMEOUT } else { RTO },
        }
    }

    /// `Some(bytes)` to send again, `None` to wait; `Err` when it timed out.
    fn on_timeout(&mut self, now: Instant, reliable: bool) -> Result<Option<Vec<u8>>, ()> {
        if now < self.next {
            return Ok(None);
        }
        if reliable || self.transmits >= MAX_TRANSMITS {
            return Err(());
        }
        self.transmits += 1;
        self.interval *= 2;
        self.next = now
            + if self.transmits >= MAX_TRANSMITS {
                RTO * 3
            } else {
                self.interval
            };
        Ok(Some(self.bytes.clone()))
    }
}

/// One Binding request to a STUN server.
#[derive(Debug)]
pub struct Binding {
    tx: Transaction,
    reliable: bool,
    out: VecDeque<Vec<u8>>,
    result: Option<Result<SocketAddr, ClientError>>,
}

impl Binding {
    /// Starts the request at `now`; `reliable` over TCP.
    pub fn new(now: Instant, reliable: bool) -> Self {
        let id = Builder::random_transaction();
        let bytes = Builder::new(Class::Request, BINDING, id)
            .attr(attr::SOFTWARE, b"pamoja-ice")
            .fingerprint();
        Self {
            tx: Transaction::new(now, id, bytes.clone(), reliable),
            reliable,
            out: VecDeque::from([bytes]),
            result: None,
        }
    }

    /// Bytes for the server.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// When to call [`Binding::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.result.is_none().then_some(self.tx.next)
    }

    /// Retransmits or gives up.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.result.is_some() {
            return;
        }
        match self.tx.on_timeout(now, self.reliable) {
            Ok(Some(b)) => self.out.push_back(b),
            Ok(None) => {}
            Err(()) => self.result = Some(Err(ClientError::Timeout)),
        }
    }

    /// Takes the server's answer; true when it was ours.
    pub fn handle_input(&mut self, data: &[u8]) -> bool {
        let Ok(m) = Message::decode(data) else {
            return false;
        };
        if m.transaction != self.tx.id || self.result.is_some() {
            return false;
        }
        self.result = Some(match m.class {
            Class::Success => m.mapped_address().ok_or(ClientError::Malformed),
            _ => {
                let (code, reason) = m.error_code().unwrap_or((0, String::new()));
                Err(ClientError::Refused(code, reason))
            }
        });
        true
    }

    /// The mapped address, once answered (or the failure).
    pub fn result(&self) -> Option<&Result<SocketAddr, ClientError>> {
        self.result.as_ref()
    }
}

/// What a [`TurnClient`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnEvent {
    /// The allocation exists.
    Allocated {
        /// The relayed transport address peers send to.
        relayed: SocketAddr,
        /// Our address as the server sees it.
        mapped: SocketAddr,
        /// Lifetime granted.
        lifetime: Duration,
    },
    /// The allocation could not be made, or was lost.
    Failed(ClientError),
    /// A permission for a peer's IP address was installed.
    Permission(IpAddr),
    /// A channel was bound to a peer.
    Channel(u16, SocketAddr),
    /// TCP relay (RFC 6062): the relay connected to a peer we asked for with
    /// [`TurnClient::connect`]; bind a new data connection with
    /// [`TurnClient::connection_bind`].
    Connected {
        /// The peer.
        peer: SocketAddr,
        /// The server's id of that connection.
        connection_id: u32,
    },
    /// TCP relay: a peer connected to our relayed address.
    ConnectionAttempt {
        /// The peer.
        peer: SocketAddr,
        /// The server's id of that connection.
        connection_id: u32,
    },
    /// TCP relay: the relay could not connect to a peer.
    ConnectFailed(SocketAddr, ClientError),
}

/// What [`TurnClient::handle_input`] made of bytes from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnInput {
    /// Data a peer sent to our relayed address.
    Data(SocketAddr, Vec<u8>),
    /// A TURN message handled by the client (or dropped).
    Consumed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Allocate,
    Refresh(u32),
    Permission(IpAddr),
    Channel(u16, SocketAddr),
    Connect(SocketAddr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Allocating,
    Allocated,
    Closing,
    Closed,
    Failed,
}

/// Permissions last 300 s; refreshed a minute early.
const PERMISSION_REFRESH: Duration = Duration::from_secs(240);

/// A TURN allocation, from the first Allocate to the last Refresh.
#[derive(Debug)]
pub struct TurnClient {
    username: String,
    password: String,
    reliable: bool,
    tcp_relay: bool,
    creds: Option<Credentials>,
    challenged: u32,
    phase: Phase,
    pending: HashMap<[u8; 12], (Request, Transaction)>,
    relayed: Option<SocketAddr>,
    lifetime: Duration,
    refresh_at: Option<Instant>,
    permissions: HashMap<IpAddr, Option<Instant>>,
    channels: HashMap<SocketAddr, (u16, bool)>,
    next_channel: u16,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<TurnEvent>,
}

impl TurnClient {
    /// Starts allocating a UDP relay at `now` with long-term credentials; `reliable` when the
    /// connection to the server is TCP.
    pub fn new(now: Instant, username: &str, password: &str, reliable: bool) -> Self {
        let mut c = Self::new_unstarted(username, password, reliable);
        c.request(now, Request::Allocate);
        c
    }

    fn new_unstarted(username: &str, password: &str, reliable: bool) -> Self {
        Self {
            username: username.to_owned(),
            password: password.to_owned(),
            reliable,
            tcp_relay: false,
            creds: None,
            challenged: 0,
            phase: Phase::Allocating,
            pending: HashMap::new(),
            relayed: None,
            lifetime: Duration::from_secs(600),
            refresh_at: None,
            permissions: HashMap::new(),
            channels: HashMap::new(),
            next_channel: 0x4000,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Starts allocating a TCP relay (RFC 6062) at `now`, over a TCP connection to the
    /// server: peers are reached with [`TurnClient::connect`], and each peer connection is
    /// carried by its own client data connection.
    pub fn new_tcp_relay(now: Instant, username: &str, password: &str) -> Self {
        let mut c = Self::new_unstarted(username, password, true);
        c.tcp_relay = true;
        c.request(now, Request::Allocate);
        c
    }

    fn builder(&self, request: Request, id: [u8; 12]) -> Builder {
        match request {
            Request::Allocate if self.tcp_relay => {
                turn::allocate_tcp(id).attr(attr::SOFTWARE, b"pamoja-ice")
            }
            Request::Allocate => turn::allocate(id).attr(attr::SOFTWARE, b"pamoja-ice"),
            Request::Connect(peer) => turn::connect(id, &peer),
            Request::Refresh(lifetime) => turn::refresh(id, lifetime),
            Request::Permission(ip) => turn::create_permission(id, &SocketAddr::new(ip, 0)),
            Request::Channel(n, peer) => turn::channel_bind(id, n, &peer),
        }
    }

    fn request(&mut self, now: Instant, request: Request) {
        let id = Builder::random_transaction();
        let b = self.builder(request, id);
        let bytes = match &self.creds {
            Some(c) => c.sign(b),
            None => b.fingerprint(),
        };
        self.out.push_back(bytes.clone());
        self.pending.insert(
            id,
            (request, Transaction::new(now, id, bytes, self.reliable)),
        );
    }

    /// The relayed address, once allocated.
    pub fn relayed(&self) -> Option<SocketAddr> {
        self.relayed.filter(|_| self.phase == Phase::Allocated)
    }

    /// True once the allocation failed or was released.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed | Phase::Failed)
    }

    /// Bytes for the server.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<TurnEvent> {
        self.events.pop_front()
    }

    /// When to call [`TurnClient::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        self.pending
            .values()
            .map(|(_, t)| t.next)
            .chain(self.refresh_at)
            .chain(self.permissions.values().flatten().copied())
            .min()
    }

    /// Retransmissions, refreshes of the allocation and of permissions.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        let mut failed = Vec::new();
        for (id, (request, tx)) in &mut self.pending {
            match tx.on_timeout(now, self.reliable) {
                Ok(Some(b)) => self.out.push_back(b),
                Ok(None) => {}
                Err(()) => failed.push((*id, *request)),
            }
        }
        for (id, request) in failed {
            self.pending.remove(&id);
            match request {
                Request::Allocate | Request::Refresh(_) => self.fail(ClientError::Timeout),
                Request::Permission(ip) => {
                    self.permissions.remove(&ip);
                }
                Request::Channel(_, peer) => {
                    self.channels.remove(&peer);
                }
                Request::Connect(peer) => self
                    .events
                    .push_back(TurnEvent::ConnectFailed(peer, ClientError::Timeout)),
            }
        }
        if self.phase == Phase::Allocated {
            if self.refresh_at.is_some_and(|t| now >= t) {
                self.refresh_at = None;
                self.request(now, Request::Refresh(self.lifetime.as_secs() as u32));
            }
            let due: Vec<IpAddr> = self
                .permissions
                .iter()
                .filter(|(_, t)| t.is_some_and(|t| now >= t))
                .map(|(ip, _)| *ip)
                .collect();
            for ip in due {
                self.permissions.insert(ip, None);
                self.request(now, Request::Permission(ip));
            }
        }
    }

    fn fail(&mut self, e: ClientError) {
        if !self.is_closed() {
            self.phase = Phase::Failed;
            self.pending.clear();
            self.events.push_back(TurnEvent::Failed(e));
        }
    }

    /// Installs a permission for `peer`'s address (refreshed while the allocation lives).
    pub fn permit(&mut self, now: Instant, peer: IpAddr) {
        if self.phase == Phase::Allocated && !self.permissions.contains_key(&peer) {
            self.permissions.insert(peer, None);
            self.request(now, Request::Permission(peer));
        }
    }

    /// Binds a channel to `peer` (cheaper framing for its data); returns its number.
    pub fn bind_channel(&mut self, now: Instant, peer: SocketAddr) -> Option<u16> {
        if self.phase != Phase::Allocated || self.next_channel > 0x7FFE {
            return None;
        }
        if let Some((n, _)) = self.channels.get(&peer) {
            return Some(*n);
        }
        let n = self.next_channel;
        self.next_channel += 1;
        self.channels.insert(peer, (n, false));
        self.request(now, Request::Channel(n, peer));
        Some(n)
    }

    /// The bytes that carry `data` to `peer` through the relay: ChannelData on a bound
    /// channel, else a Send indication (a permission is requested on first use).
    pub fn send_to(&mut self, now: Instant, peer: SocketAddr, data: &[u8]) -> Option<Vec<u8>> {
        if self.phase != Phase::Allocated {
            return None;
        }
        self.permit(now, peer.ip());
        if let Some((n, true)) = self.channels.get(&peer) {
            let mut b = turn::channel_data(*n, data);
            if self.reliable {
                b.resize(b.len().div_ceil(4) * 4, 0);
            }
            return Some(b);
        }
        Some(turn::send(Builder::random_transaction(), &peer, data))
    }

    /// TCP relay: asks the relay to connect to `peer` (a permission is installed first);
    /// answered by [`TurnEvent::Connected`] or [`TurnEvent::ConnectFailed`].
    pub fn connect(&mut self, now: Instant, peer: SocketAddr) {
        if self.phase == Phase::Allocated && self.tcp_relay {
            self.permit(now, peer.ip());
            self.request(now, Request::Connect(peer));
        }
    }

    /// TCP relay: the ConnectionBind request to send first on a new data connection to the
    /// server, and its transaction id; `None` before the allocation is made. Once the
    /// server answers success on that connection ([`connection_bound`]), the connection
    /// carries the peer's bytes as they are.
    pub fn connection_bind(&self, connection_id: u32) -> Option<([u8; 12], Vec<u8>)> {
        let c = self
            .creds
            .as_ref()
            .filter(|_| self.phase == Phase::Allocated)?;
        let id = Builder::random_transaction();
        Some((id, c.sign(turn::connection_bind(id, connection_id))))
    }

    /// Releases the allocation (Refresh with lifetime 0).
    pub fn close(&mut self, now: Instant) {
        if self.phase == Phase::Allocated {
            self.phase = Phase::Closing;
            self.pending.clear();
            self.request(now, Request::Refresh(0));
        }
    }

    /// Takes bytes from the server.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> TurnInput {
        if let Some((n, payload)) = turn::parse_channel_data(data) {
            return match self.channels.iter().find(|(_, (c, _))| *c == n) {
                Some((peer, _)) => TurnInput::Data(*peer, payload.to_vec()),
                None => TurnInput::Consumed,
            };
        }
        let Ok(m) = Message::decode(data) else {
            return TurnInput::Consumed;
        };
        if m.class == Class::Indication {
            if m.method == turn::CONNECTION_ATTEMPT {
                if let (Some(peer), Some(connection_id)) = (
                    m.xor_address(turn::attr::XOR_PEER_ADDRESS),
                    m.u32_attr(turn::attr::CONNECTION_ID),
                ) {
                    self.events.push_back(TurnEvent::ConnectionAttempt {
                        peer,
                        connection_id,
                    });
                }
                return TurnInput::Consumed;
            }
            if m.method == turn::DATA {
                if let Some((peer, d)) = turn::data_indication(&m) {
                    return TurnInput::Data(peer, d);
                }
            }
            return TurnInput::Consumed;
        }
        if !self.pending.contains_key(&m.transaction) {
            return TurnInput::Consumed;
        }
        // Answers after the challenge must carry our integrity; a forged one changes nothing.
        if let Some(c) = &self.creds {
            if m.get(attr::MESSAGE_INTEGRITY).is_some() && !m.check_integrity(data, &c.key) {
                return TurnInput::Consumed;
            }
        }
        let Some((request, _)) = self.pending.remove(&m.transaction) else {
            return TurnInput::Consumed;
        };
        match m.class {
            Class::Success => self.on_success(now, request, &m),
            _ => self.on_error(now, request, &m),
        }
        TurnInput::Consumed
    }

    fn on_success(&mut self, now: Instant, request: Request, m: &Message) {
        match request {
            Request::Allocate => {
                let (Some(relayed), Some(mapped)) = (
                    m.xor_address(turn::attr::XOR_RELAYED_ADDRESS),
                    m.xor_address(attr::XOR_MAPPED_ADDRESS),
                ) else {
                    self.fail(ClientError::Malformed);
                    return;
                };
                let lifetime =
                    Duration::from_secs(u64::from(m.u32_attr(turn::attr::LIFETIME).unwrap_or(600)));
                self.lifetime = lifetime;
                self.relayed = Some(relayed);
                self.phase = Phase::Allocated;
                self.refresh_at = Some(
                    now + lifetime
                        .saturating_sub(Duration::from_secs(60))
                        .max(lifetime / 2),
                );
                self.events.push_back(TurnEvent::Allocated {
                    relayed,
                    mapped,
                    lifetime,
                });
            }
            Request::Refresh(0) => self.phase = Phase::Closed,
            Request::Refresh(_) => {
                let lifetime = Duration::from_secs(u64::from(
                    m.u32_attr(turn::attr::LIFETIME)
                        .unwrap_or(self.lifetime.as_secs() as u32),
                ));
                self.refresh_at = Some(
                    now + lifetime
                        .saturating_sub(Duration::from_secs(60))
                        .max(lifetime / 2),
                );
            }
            Request::Permission(ip) => {
                self.permissions.insert(ip, Some(now + PERMISSION_REFRESH));
                self.events.push_back(TurnEvent::Permission(ip));
            }
            Request::Channel(n, peer) => {
                self.channels.insert(peer, (n, true));
                self.events.push_back(TurnEvent::Channel(n, peer));
            }
            Request::Connect(peer) => match m.u32_attr(turn::attr::CONNECTION_ID) {
                Some(connection_id) => self.events.push_back(TurnEvent::Connected {
                    peer,
                    connection_id,
                }),
                None => self
                    .events
                    .push_back(TurnEvent::ConnectFailed(peer, ClientError::Malformed)),
            },
        }
    }

    fn on_error(&mut self, now: Instant, request: Request, m: &Message) {
        let (code, reason) = m.error_code().unwrap_or((0, String::new()));
        match code {
            // A challenge (401), or a stale nonce (438): answer it, a few times at most.
            401 | 438 if self.challenged < 3 => {
                let Some(c) = Credentials::from_challenge(m, &self.username, &self.password) else {
                    self.fail(ClientError::Malformed);
                    return;
                };
                if code == 401 && self.creds.is_some() {
                    self.fail(ClientError::Unauthorized(reason));
                    return;
                }
                self.challenged += u32::from(code == 438);
                let id = Builder::random_transaction();
                let b = self.builder(request, id);
                let bytes = c.sign(b);
                self.creds = Some(c);
                self.out.push_back(bytes.clone());
                self.pending.insert(
                    id,
                    (request, Transaction::new(now, id, bytes, self.reliable)),
                );
            }
            401 => self.fail(ClientError::Unauthorized(reason)),
            _ => match request {
                Request::Allocate | Request::Refresh(_) => {
                    self.fail(ClientError::Refused(code, reason))
                }
                Request::Permission(ip) => {
                    self.permissions.remove(&ip);
                }
                Request::Channel(_, peer) => {
                    self.channels.remove(&peer);
                }
                Request::Connect(peer) => self.events.push_back(TurnEvent::ConnectFailed(
                    peer,
                    ClientError::Refused(code, reason),
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal TURN server side, enough to drive the client through its states.
    fn answer(req: &[u8], key: &[u8; 16], relayed: SocketAddr) -> Vec<u8> {
        let m = Message::decode(req).unwrap();
        if m.get(attr::MESSAGE_INTEGRITY).is_none() {
            return Builder::new(Class::Error, m.method, m.transaction)
                .error_code(401, "Unauthorized")
                .attr(attr::REALM, b"lab")
                .attr(attr::NONCE, b"n1")
                .fingerprint();
        }
        assert!(m.check_integrity(req, key));
        let mut b = Builder::new(Class::Success, m.method, m.transaction);
        if m.method == turn::ALLOCATE {
            b = b
                .xor_address(turn::attr::XOR_RELAYED_ADDRESS, &relayed)
                .xor_mapped_address(&"192.0.2.1:1000".parse().unwrap())
                .attr(turn::attr::LIFETIME, &600u32.to_be_bytes());
        }
        b.integrity(key).fingerprint()
    }

    #[test]
    fn allocation_goes_through_challenge_permission_and_channel() {
        let now = Instant::now();
        let key = turn::long_term_key("u", "lab", "p");
        let relayed: SocketAddr = "192.0.2.9:50000".parse().unwrap();
        let mut c = TurnClient::new(now, "u", "p", false);
        let pump = |c: &mut TurnClient| {
            while let Some(req) = c.poll_transmit() {
                if Message::decode(&req).unwrap().class == Class::Request {
                    let a = answer(&req, &key, relayed);
                    c.handle_input(now, &a);
                }
            }
        };
        pump(&mut c);
        assert_eq!(c.relayed(), Some(relayed));
        let peer: SocketAddr = "198.51.100.5:7".parse().unwrap();
        let first = c.send_to(now, peer, b"hi").unwrap();
        assert_eq!(Message::decode(&first).unwrap().method, turn::SEND);
        assert_eq!(c.bind_channel(now, peer), Some(0x4000));
        pump(&mut c);
        let framed = c.send_to(now, peer, b"hi").unwrap();
        assert_eq!(
            turn::parse_channel_data(&framed),
            Some((0x4000, &b"hi"[..]))
        );
        let ev: Vec<_> = std::iter::from_fn(|| c.poll_event()).collect();
        assert!(ev.contains(&TurnEvent::Permission(peer.ip())), "{ev:?}");
        assert!(ev.contains(&TurnEvent::Channel(0x4000, peer)));
        // Data back on the channel.
        assert_eq!(
            c.handle_input(now, &turn::channel_data(0x4000, b"yo")),
            TurnInput::Data(peer, b"yo".to_vec())
        );
        // Refreshes come before the lifetime runs out.
        let t = c.poll_timeout().unwrap();
        assert!(t > now && t <= now + Duration::from_secs(540));
        c.close(now);
        pump(&mut c);
        assert!(c.is_closed());
    }

    #[test]
    fn allocation_and_permissions_are_refreshed_in_time() {
        let t0 = Instant::now();
        let key = turn::long_term_key("u", "lab", "p");
        let relayed: SocketAddr = "192.0.2.9:50000".parse().unwrap();
        let mut c = TurnClient::new(t0, "u", "p", false);
        let answer_all = |c: &mut TurnClient, now: Instant| -> Vec<u16> {
            let mut methods = Vec::new();
            while let Some(req) = c.poll_transmit() {
                let m = Message::decode(&req).unwrap();
                if m.class == Class::Request {
                    methods.push(m.method);
                    c.handle_input(now, &answer(&req, &key, relayed));
                }
            }
            methods
        };
        answer_all(&mut c, t0);
        let peer: IpAddr = "198.51.100.5".parse().unwrap();
        c.permit(t0, peer);
        assert_eq!(answer_all(&mut c, t0), vec![turn::CREATE_PERMISSION]);
        // Walk time for 20 minutes: the 600 s allocation and 300 s permission never lapse.
        let mut now = t0;
        let (mut refreshes, mut permissions) = (0, 0);
        while now < t0 + Duration::from_secs(1200) {
            now = c.poll_timeout().unwrap();
            c.handle_timeout(now);
            for m in answer_all(&mut c, now) {
                refreshes += usize::from(m == turn::REFRESH);
                permissions += usize::from(m == turn::CREATE_PERMISSION);
            }
        }
        assert!(refreshes >= 2, "{refreshes}");
        assert!(permissions >= 4, "{permissions}");
        assert!(c.relayed().is_some());
    }

    #[test]
    fn wrong_password_is_one_clear_failure() {
        let now = Instant::now();
        let mut c = TurnClient::new(now, "u", "wrong", true);
        for _ in 0..2 {
            let req = c.poll_transmit().unwrap();
            let m = Message::decode(&req).unwrap();
            let a = Builder::new(Class::Error, m.method, m.transaction)
                .error_code(401, "Unauthorized")
                .attr(attr::REALM, b"lab")
                .attr(attr::NONCE, b"n1")
                .fingerprint();
            c.handle_input(now, &a);
        }
        assert!(matches!(
            c.poll_event(),
            Some(TurnEvent::Failed(ClientError::Unauthorized(_)))
        ));
        assert!(c.is_closed());
    }

    #[test]
    fn binding_retransmits_then_times_out() {
        let t0 = Instant::now();
        let mut b = Binding::new(t0, false);
        let first = b.poll_transmit().unwrap();
        let mut sent = 1;
        let mut now = t0;
        while b.result().is_none() {
            now = b.poll_timeout().unwrap();
            b.handle_timeout(now);
            while let Some(again) = b.poll_transmit() {
                assert_eq!(again, first);
                sent += 1;
            }
        }
        assert_eq!(sent, 7);
        assert_eq!(b.result(), Some(&Err(ClientError::Timeout)));
        assert!(now - t0 >= Duration::from_secs(32) && now - t0 < Duration::from_secs(40));
    }

    #[test]
    fn stream_split() {
        let stun = Builder::new(Class::Request, BINDING, [1; 12]).fingerprint();
        let cd = turn::channel_data(0x4001, b"abcde");
        let mut buf = stun.clone();
        buf.extend_from_slice(&cd);
        buf.extend_from_slice(&[0, 0, 0]);
        assert_eq!(stream_message_len(&buf), Some(stun.len()));
        assert_eq!(stream_message_len(&buf[stun.len()..]), Some(12));
        assert_eq!(stream_message_len(&buf[..10]), None);
    }
}
