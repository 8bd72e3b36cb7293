//! The sans-IO node: datagrams and time in, datagrams, timers and events out.
//!
//! ```text
//! node.handle_datagram(now, from, bytes);     // a datagram arrived
//! node.handle_timeout(now);                   // poll_timeout() passed
//! while let Some(t) = node.poll_transmit() {} // send these
//! while let Some(e) = node.poll_event() {}    // values found, operations done
//! ```
//! Nothing here touches a socket or a clock: tests and simulations drive it with virtual time.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;

use crate::blacklist::Blacklist;
use crate::infohash::InfoHash;
use crate::message::{
    Body, FRAGMENT_SIZE, FieldReply, Fragment, MAX_INLINE_BYTES, MAX_INLINE_VALUES, Message,
    MessageKind, Method, NodeInfo, ValueEntry, ValueQuery, WANT_V4, WANT_V6,
};
use crate::random::{OsRandom, Random};
use crate::ratelimit::{Limits, RateLimiter};
use crate::routing::{K, RoutingTable};
use crate::storage::{DEFAULT_STORAGE_LIMIT, Storage, StoreOutcome, lifetime};
use crate::value::Value;

/// Nodes tracked per search (`SEARCH_NODES`).
pub const SEARCH_NODES: usize = 14;
/// Requests in flight per search (`MAX_REQUESTED_SEARCH_NODES`).
pub const ALPHA: usize = 4;
/// Nodes a listen is sent to (`LISTEN_NODES`).
pub const LISTEN_NODES: usize = 4;
/// Listens are re-sent this often (`LISTEN_EXPIRE_TIME` − 10 s).
pub const LISTEN_REFRESH: Duration = Duration::from_secs(20);
/// A listener registered with us is dropped this long after its last listen.
pub const LISTENER_EXPIRE: Duration = Duration::from_secs(10 * 60);
/// Most listeners one source (an IPv4 address or an IPv6 /64) may register with us.
pub const MAX_LISTENERS_PER_SOURCE: usize = 1024;
/// Most listeners on one key.
pub const MAX_LISTENERS_PER_KEY: usize = 1024;
/// Most listeners in all.
pub const MAX_LISTENERS: usize = 65_536;
/// Base retransmission delay (`MAX_RESPONSE_TIME`).
pub const RESPONSE_TIME: Duration = Duration::from_secs(1);
/// Transmissions of a request before it expires.
pub const MAX_SENDS: u8 = 3;
/// Largest time a fragmented message may take to arrive.
pub const RX_MAX_PACKET_TIME: Duration = Duration::from_secs(10);
/// Most bytes of fragmented values one message may announce.
pub const MAX_PARTIAL_BYTES: usize = 128 * 1024;
/// Most fragmented messages being reassembled at once.
pub const MAX_PARTIALS: usize = 256;
/// Token length.
pub const TOKEN_SIZE: usize = 32;
/// Write-token refusals (401) a node may give before it is taken for expired.
pub const MAX_AUTH_ERRORS: u8 = 3;
/// First delay before bootstrap addresses are pinged again, while no node answers.
pub const BOOTSTRAP_RETRY: Duration = Duration::from_secs(10);
/// Longest delay between bootstrap attempts.
pub const BOOTSTRAP_RETRY_MAX: Duration = Duration::from_secs(24 * 3600);
/// How often stored keys are checked for republishing (`MAX_STORAGE_MAINTENANCE_EXPIRE_TIME`).
pub const STORAGE_MAINTENANCE: Duration = Duration::from_secs(10 * 60);

/// Node configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Node id (random when `None`).
    pub id: Option<InfoHash>,
    /// Network id: nodes of other networks are ignored.
    pub network: u32,
    /// Total storage limit in bytes.
    pub storage_limit: usize,
    /// Quotas on incoming requests; `None` turns rate limiting off (`dhtnode -U`).
    pub rate_limit: Option<Limits>,
    /// Republish stored values to the nodes closest to their key when this node is no longer
    /// among them, then drop them (OpenDHT's `maintain_storage`; off by default there too).
    pub maintain_storage: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            id: None,
            network: 0,
            storage_limit: DEFAULT_STORAGE_LIMIT,
            rate_limit: Some(Limits::default()),
            maintain_storage: false,
        }
    }
}

/// What a node refused, since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Requests dropped by the rate limiter.
    pub rate_limited: u64,
    /// Packets ignored because their sender is blacklisted.
    pub from_blacklisted: u64,
    /// Nodes blacklisted (a `get`/`find` reply without a write token).
    pub blacklisted: u64,
    /// Values republished by storage maintenance.
    pub republished: u64,
    /// Signed values refused because their signature did not verify.
    pub bad_signatures: u64,
    /// Values refused because one with the same id is stored and they may not replace it:
    /// another owner, or an older or equal `seq` (a replay).
    pub refused_edits: u64,
    /// Values refused for their size, the storage limits, or because they had expired.
    pub refused_other: u64,
}

/// Round-trip times seen on first transmissions, smoothed as TCP does (RFC 6298), to decide
/// how long a search waits for a node before asking another. Retransmissions keep OpenDHT's
/// fixed schedule: this only makes searches move on sooner.
#[derive(Debug)]
struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
}

impl Default for RttEstimator {
    fn default() -> Self {
        Self {
            srtt: None,
            rttvar: Duration::ZERO,
        }
    }
}

impl RttEstimator {
    /// Least and most a search waits for one node.
    const MIN_PATIENCE: Duration = Duration::from_millis(50);

    fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    fn patience(&self) -> Duration {
        match self.srtt {
            None => RESPONSE_TIME,
            Some(srtt) => (srtt + self.rttvar * 4).clamp(Self::MIN_PATIENCE, RESPONSE_TIME),
        }
    }
}

/// Sizes of a node's internal tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateSizes {
    /// Requests awaiting a reply.
    pub pending: usize,
    /// Fragmented messages being reassembled.
    pub partials: usize,
    /// Operations in progress.
    pub searches: usize,
    /// Remote listeners registered here.
    pub listeners: usize,
    /// Nodes in the routing tables.
    pub nodes: usize,
    /// Values stored.
    pub values: usize,
    /// Datagrams and events not yet polled.
    pub queued: usize,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// Bytes.
    pub data: Vec<u8>,
}

/// Identifies an operation started on the node.
pub type OpId = u64;

/// What the node reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A value found by a get, or pushed to a listen (each id once per operation).
    Value {
        /// The operation.
        op: OpId,
        /// The value.
        value: Value,
    },
    /// A listened value expired or was removed.
    Expired {
        /// The operation.
        op: OpId,
        /// Its id.
        id: u64,
    },
    /// A get finished: the closest nodes all answered (or failed).
    GetDone {
        /// The operation.
        op: OpId,
        /// How many nodes answered.
        replied: usize,
    },
    /// A put finished.
    PutDone {
        /// The operation.
        op: OpId,
        /// How many nodes acknowledged storing the value.
        stored: usize,
    },
    /// A listen is in place on this many nodes.
    Listening {
        /// The operation.
        op: OpId,
        /// Nodes that confirmed.
        nodes: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CandState {
    Fresh,
    Asked,
    /// Asked, and silent longer than a few round trips: the search asks more nodes in the
    /// meantime, but still waits for this one (it may be loaded or rate limiting us).
    Slow,
    /// Silent through two transmissions: the search no longer waits for it, but still takes
    /// a late answer.
    Gone,
    Replied(Option<Vec<u8>>),
    Failed,
}

#[derive(Debug, Clone)]
struct Candidate {
    id: InfoHash,
    addr: SocketAddr,
    state: CandState,
}

#[derive(Debug)]
enum OpKind {
    Get {
        query: Option<ValueQuery>,
    },
    Put {
        value: Value,
        created: i64,
        acked: usize,
        pending: usize,
        sent: bool,
        /// Started by storage maintenance: no event for the caller.
        quiet: bool,
    },
    Listen {
        sid: u32,
        query: Option<ValueQuery>,
        confirmed: HashSet<InfoHash>,
        next_refresh: Option<Instant>,
    },
    /// A find of our own id to fill the routing table.
    Refresh,
}

#[derive(Debug)]
struct Search {
    key: InfoHash,
    kind: OpKind,
    candidates: Vec<Candidate>,
    seen: HashSet<u64>,
    done: bool,
}

#[derive(Debug)]
struct Pending {
    to: SocketAddr,
    node: Option<InfoHash>,
    method: Method,
    op: Option<OpId>,
    data: Vec<u8>,
    fragments: Vec<Vec<u8>>,
    sends: u8,
    deadline: Instant,
    /// Replies expected (a put gets one per value).
    replies_left: usize,
    /// When it was first sent (round trips are measured on first transmissions only).
    sent_at: Instant,
    /// For search requests: when the search stops waiting and asks another node.
    slow_at: Option<Instant>,
}

#[derive(Debug)]
struct Listener {
    addr: SocketAddr,
    node: InfoHash,
    sid: u32,
    /// Listen protocol version: 0 (absent) is pushed to with unsolicited replies.
    version: u32,
    query: Option<ValueQuery>,
    expires: Instant,
}

#[derive(Debug)]
struct Partial {
    msg: Message,
    buffers: Vec<(usize, Vec<u8>)>,
    deadline: Instant,
}

/// An OpenDHT-compatible node.
#[derive(Debug)]
pub struct Node {
    id: InfoHash,
    network: u32,
    table4: RoutingTable,
    table6: RoutingTable,
    storage: Storage,
    secrets: [u64; 2],
    next_rotation: Option<Instant>,
    next_tid: u32,
    pending: HashMap<u32, Pending>,
    searches: HashMap<OpId, Search>,
    next_op: OpId,
    listeners: HashMap<InfoHash, Vec<Listener>>,
    /// Listeners registered per source ([`crate::ratelimit::source`]), and in all.
    listener_sources: HashMap<std::net::IpAddr, usize>,
    listener_count: usize,
    partials: HashMap<(SocketAddr, u32), Partial>,
    next_maintenance: Option<Instant>,
    next_storage_maintenance: Option<Instant>,
    maintain_storage: bool,
    rate_limit: Option<Limits>,
    limiter: Option<RateLimiter>,
    blacklist: Blacklist,
    auth_errors: HashMap<InfoHash, u8>,
    bootstrap_addrs: Vec<SocketAddr>,
    /// Our addresses as repliers saw them, most recent first, a few at most.
    reported: Vec<IpAddr>,
    next_bootstrap: Option<Instant>,
    bootstrap_delay: Duration,
    rtt: RttEstimator,
    counters: Counters,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    random: Box<dyn Random>,
    /// An instant and the Unix time then (seconds since the epoch, signed): where Unix time
    /// is reckoned from, if the caller gave it ([`Node::set_unix_time`]).
    unix_anchor: Option<(Instant, i128)>,
}

fn system_unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Seconds since the epoch at `t`, negative before it.
fn unix_secs(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::from(d.as_secs()),
        Err(e) => -i128::from(e.duration().as_secs()),
    }
}

/// OpenDHT treats these source addresses as bogus and drops their packets.
fn is_martian(addr: &SocketAddr) -> bool {
    if addr.port() == 0 {
        return true;
    }
    match addr.ip() {
        IpAddr::V4(a) => a.octets()[0] == 0 || a.octets()[0] >= 224,
        IpAddr::V6(a) => {
            let s = a.segments();
            a.is_multicast()
                || (s[0] & 0xffc0) == 0xfe80
                || a.is_unspecified()
                || a.to_ipv4_mapped().is_some()
        }
    }
}

impl Node {
    /// A node with `config`.
    pub fn new(config: Config) -> Self {
        Self::with_random(config, OsRandom)
    }

    /// A node with `config` drawing its randomness (its id when the config has none, token
    /// secrets, transaction ids, value ids, timer jitter) from `random`: two nodes given
    /// generators in the same state, the same Unix time ([`Node::set_unix_time`]) and the
    /// same inputs send the same bytes.
    pub fn with_random(config: Config, random: impl Random + 'static) -> Self {
        let mut random: Box<dyn Random> = Box::new(random);
        let id = config
            .id
            .unwrap_or_else(|| InfoHash::random_from(&mut random));
        let secrets = [random.next_u64(), random.next_u64()];
        let next_tid = random.next_u64() as u32;
        Self {
            random,
            unix_anchor: None,
            id,
            network: config.network,
            table4: RoutingTable::new(id),
            table6: RoutingTable::new(id),
            storage: Storage::new(config.storage_limit),
            secrets,
            next_rotation: None,
            next_tid,
            pending: HashMap::new(),
            searches: HashMap::new(),
            next_op: 1,
            listeners: HashMap::new(),
            listener_sources: HashMap::new(),
            listener_count: 0,
            partials: HashMap::new(),
            next_maintenance: None,
            next_storage_maintenance: None,
            maintain_storage: config.maintain_storage,
            rate_limit: config.rate_limit,
            limiter: None,
            blacklist: Blacklist::default(),
            auth_errors: HashMap::new(),
            bootstrap_addrs: Vec::new(),
            reported: Vec::new(),
            next_bootstrap: None,
            bootstrap_delay: BOOTSTRAP_RETRY,
            rtt: RttEstimator::default(),
            counters: Counters::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Gives the node the Unix time: `unix` is the wall-clock time at `now`. From then on
    /// the node reckons Unix time (the `created` date of the values it puts, the age of
    /// values it stores and republishes) as `unix` plus the time passed since `now`, and
    /// never reads the system clock. Until told, it reads the system clock.
    pub fn set_unix_time(&mut self, now: Instant, unix: SystemTime) {
        self.unix_anchor = Some((now, unix_secs(unix)));
    }

    /// The Unix time at `now`, in seconds: from [`Node::set_unix_time`] if it was called,
    /// else from the system clock.
    pub fn unix_time(&self, now: Instant) -> i64 {
        let Some((at, unix)) = self.unix_anchor else {
            return system_unix_now();
        };
        let after = i128::from(now.saturating_duration_since(at).as_secs());
        let before = i128::from(at.saturating_duration_since(now).as_secs());
        (unix + after - before).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// The node id.
    pub fn id(&self) -> InfoHash {
        self.id
    }

    /// The network id.
    pub fn network(&self) -> u32 {
        self.network
    }

    /// What the node refused or republished so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The nodes of both routing tables.
    pub fn routing_nodes(&self) -> impl Iterator<Item = &crate::routing::Node> {
        self.table4.nodes().chain(self.table6.nodes())
    }

    /// Stored keys and their values.
    pub fn stored(&self) -> impl Iterator<Item = (&InfoHash, Vec<&Value>)> {
        self.storage
            .keys()
            .map(|k| (k, self.storage.stored(k).map(|s| &s.value).collect()))
    }

    /// Operations in progress: id, key and what they do (`get`, `put`, `listen`, `refresh`).
    pub fn operations(&self) -> impl Iterator<Item = (OpId, InfoHash, &'static str)> {
        self.searches.iter().map(|(op, s)| {
            let what = match s.kind {
                OpKind::Get { .. } => "get",
                OpKind::Put { .. } => "put",
                OpKind::Listen { .. } => "listen",
                OpKind::Refresh => "refresh",
            };
            (*op, s.key, what)
        })
    }

    /// This node's addresses as other nodes reported seeing them (`sa`), most recent first.
    pub fn public_addresses(&self) -> &[IpAddr] {
        &self.reported
    }

    /// Counts a request from `from` against the quotas; false when it must be dropped.
    fn rate_ok(&mut self, now: Instant, from: &SocketAddr) -> bool {
        let Some(limits) = self.rate_limit else {
            return true;
        };
        let limiter = self
            .limiter
            .get_or_insert_with(|| RateLimiter::new(limits, now));
        let ok = limiter.allow(from.ip(), now);
        if !ok {
            self.counters.rate_limited += 1;
        }
        ok
    }

    /// (good IPv4 nodes, all IPv4 nodes, good IPv6 nodes, all IPv6 nodes).
    pub fn node_counts(&self, now: Instant) -> (usize, usize, usize, usize) {
        (
            self.table4.good(now),
            self.table4.len(),
            self.table6.good(now),
            self.table6.len(),
        )
    }

    /// (keys, values) stored here.
    pub fn storage_counts(&self) -> (usize, usize) {
        self.storage.counts()
    }

    /// Sizes of the node's internal tables, to watch that they stay bounded.
    pub fn state_sizes(&self) -> StateSizes {
        StateSizes {
            pending: self.pending.len(),
            partials: self.partials.len(),
            searches: self.searches.len(),
            listeners: self.listeners.values().map(Vec::len).sum(),
            nodes: self.table4.len() + self.table6.len(),
            values: self.storage.counts().1,
            queued: self.transmits.len() + self.events.len(),
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let pend = self
            .pending
            .values()
            .map(|p| p.slow_at.map_or(p.deadline, |s| s.min(p.deadline)));
        let parts = self.partials.values().map(|p| p.deadline);
        let listens = self.searches.values().filter_map(|s| match &s.kind {
            OpKind::Listen { next_refresh, .. } => *next_refresh,
            _ => None,
        });
        pend.chain(parts)
            .chain(listens)
            .chain(self.next_maintenance)
            .chain(self.next_bootstrap)
            .chain(self.next_rotation)
            .chain(self.storage.next_expiration())
            .min()
    }

    fn table(&mut self, addr: &SocketAddr) -> &mut RoutingTable {
        if addr.is_ipv4() {
            &mut self.table4
        } else {
            &mut self.table6
        }
    }

    /// Records a node heard from; pings a stale node of a full bucket when the table asks.
    fn node_seen(&mut self, now: Instant, id: InfoHash, addr: SocketAddr, replied: bool) {
        if let Some((stale, stale_addr)) = self.table(&addr).seen(id, addr, now, replied) {
            self.send_request(
                now,
                stale_addr,
                Some(stale),
                Method::Ping,
                self.body(),
                None,
            );
        }
    }

    fn token_for(&self, secret: u64, addr: &SocketAddr) -> Vec<u8> {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&secret.to_le_bytes());
        match addr.ip() {
            IpAddr::V4(a) => ctx.update(&a.octets()),
            IpAddr::V6(a) => ctx.update(&a.octets()),
        }
        ctx.update(&addr.port().to_be_bytes());
        ctx.finish().as_ref().to_vec()
    }

    fn token_ok(&self, token: Option<&[u8]>, addr: &SocketAddr) -> bool {
        let Some(t) = token else { return false };
        t.len() == TOKEN_SIZE && self.secrets.iter().any(|s| self.token_for(*s, addr) == t)
    }

    fn new_tid(&mut self) -> u32 {
        self.next_tid = self.next_tid.wrapping_add(1);
        self.next_tid
    }

    fn msg(&self, tid: u32, kind: MessageKind, body: Body) -> Message {
        Message::new(tid, kind, body).in_network(self.network)
    }

    /// Splits a message's values into inline values or sizes plus fragments.
    fn with_fragments(&self, mut msg: Message) -> (Vec<u8>, Vec<Vec<u8>>) {
        let packed: Vec<Vec<u8>> = msg
            .body
            .values
            .iter()
            .filter_map(|v| match v {
                ValueEntry::Inline(v) => Some(v.to_bytes()),
                ValueEntry::Size(_) => None,
            })
            .collect();
        let total: usize = packed.iter().map(Vec::len).sum();
        if packed.len() < MAX_INLINE_VALUES && total < MAX_INLINE_BYTES {
            return (msg.encode(), Vec::new());
        }
        msg.body.values = packed
            .iter()
            .map(|p| ValueEntry::Size(p.len() as u32))
            .collect();
        let header = msg.encode();
        let mut frags = Vec::new();
        for (i, p) in packed.iter().enumerate() {
            for (n, chunk) in p.chunks(FRAGMENT_SIZE).enumerate() {
                let f = Fragment {
                    index: i as u32,
                    offset: (n * FRAGMENT_SIZE) as u32,
                    data: chunk.to_vec(),
                };
                frags.push(
                    self.msg(msg.tid, MessageKind::ValueData(vec![f]), Body::default())
                        .encode(),
                );
            }
        }
        (header, frags)
    }

    fn send_reply(&mut self, to: SocketAddr, msg: Message) {
        let (header, frags) = self.with_fragments(msg);
        self.transmits.push_back(Transmit { to, data: header });
        self.transmits
            .extend(frags.into_iter().map(|data| Transmit { to, data }));
    }

    fn send_request(
        &mut self,
        now: Instant,
        to: SocketAddr,
        node: Option<InfoHash>,
        method: Method,
        body: Body,
        op: Option<OpId>,
    ) {
        let tid = self.new_tid();
        let replies_left = if method == Method::Put {
            body.values.len().max(1)
        } else {
            1
        };
        let msg = self.msg(tid, MessageKind::Query(method), body);
        let (data, fragments) = self.with_fragments(msg);
        self.transmits.push_back(Transmit {
            to,
            data: data.clone(),
        });
        self.transmits
            .extend(fragments.iter().cloned().map(|data| Transmit { to, data }));
        self.pending.insert(
            tid,
            Pending {
                to,
                node,
                method,
                op,
                data,
                fragments,
                sends: 1,
                deadline: now + RESPONSE_TIME,
                replies_left,
                sent_at: now,
                slow_at: (op.is_some() && matches!(method, Method::Find | Method::Get))
                    .then(|| now + self.rtt.patience()),
            },
        );
    }

    fn body(&self) -> Body {
        Body {
            id: self.id,
            ..Body::default()
        }
    }

    /// Pings `addr` to join the network through it, then looks up our own id.
    ///
    /// While the node knows no good node, the bootstrap addresses are pinged again after 10 s,
    /// then after twice as long each time, up to a day (as OpenDHT does).
    pub fn bootstrap(&mut self, now: Instant, addr: SocketAddr) {
        self.start_maintenance(now);
        if !self.bootstrap_addrs.contains(&addr) {
            self.bootstrap_addrs.push(addr);
        }
        self.bootstrap_delay = BOOTSTRAP_RETRY;
        self.next_bootstrap = Some(now + BOOTSTRAP_RETRY);
        self.send_request(now, addr, None, Method::Ping, self.body(), None);
    }

    fn start_maintenance(&mut self, now: Instant) {
        if self.next_maintenance.is_none() {
            self.next_maintenance = Some(now + Duration::from_secs(60));
            self.next_rotation =
                Some(now + Duration::from_secs(15 * 60 + self.random.next_u64() % (30 * 60)));
        }
    }

    fn start_search(&mut self, now: Instant, key: InfoHash, kind: OpKind) -> OpId {
        self.start_maintenance(now);
        let op = self.next_op;
        self.next_op += 1;
        let candidates = self.initial_candidates(&key, now);
        self.searches.insert(
            op,
            Search {
                key,
                kind,
                candidates,
                seen: HashSet::new(),
                done: false,
            },
        );
        self.step(now, op);
        op
    }

    /// The nodes a search of `key` starts from: the closest this node knows.
    fn initial_candidates(&self, key: &InfoHash, now: Instant) -> Vec<Candidate> {
        let mut candidates: Vec<Candidate> = self
            .table4
            .closest(key, SEARCH_NODES, now, false)
            .into_iter()
            .chain(self.table6.closest(key, SEARCH_NODES, now, false))
            .filter(|n| !n.expired)
            .map(|n| Candidate {
                id: n.id,
                addr: n.addr,
                state: CandState::Fresh,
            })
            .collect();
        candidates.sort_by(|a, b| key.xor_cmp(&a.id, &b.id));
        candidates.truncate(SEARCH_NODES);
        candidates
    }

    /// Starts the searches that were waiting for a first node to ask, now that there is one.
    fn start_waiting_searches(&mut self, now: Instant) {
        let waiting: Vec<OpId> = self
            .searches
            .iter()
            .filter(|(_, s)| s.candidates.is_empty() && !s.done)
            .map(|(op, _)| *op)
            .collect();
        for op in waiting {
            let Some(key) = self.searches.get(&op).map(|s| s.key) else {
                continue;
            };
            let candidates = self.initial_candidates(&key, now);
            if candidates.is_empty() {
                return;
            }
            if let Some(s) = self.searches.get_mut(&op) {
                s.candidates = candidates;
            }
            self.step(now, op);
        }
    }

    /// Looks up `key`; values come as [`Event::Value`], then [`Event::GetDone`]. Values this
    /// node stores itself are reported too.
    pub fn get(&mut self, now: Instant, key: InfoHash, query: Option<ValueQuery>) -> OpId {
        let local: Vec<Value> = self
            .storage
            .get(&key)
            .filter(|v| query.as_ref().is_none_or(|q| q.matches(v)))
            .cloned()
            .collect();
        let op = self.start_search(now, key, OpKind::Get { query });
        if let Some(s) = self.searches.get_mut(&op) {
            for v in local {
                if s.seen.insert(v.id) {
                    self.events.push_back(Event::Value { op, value: v });
                }
            }
        }
        op
    }

    /// Stores `value` on the nodes closest to `key` (a random id is given when 0); reports
    /// [`Event::PutDone`]. The value is also stored locally.
    pub fn put(&mut self, now: Instant, key: InfoHash, mut value: Value) -> OpId {
        if value.id == 0 {
            value.id = self.random.next_u64().max(1);
        }
        self.storage.store(key, value.clone(), now, Duration::ZERO);
        self.start_search(
            now,
            key,
            OpKind::Put {
                value,
                created: self.unix_time(now),
                acked: 0,
                pending: 0,
                sent: false,
                quiet: false,
            },
        )
    }

    /// Listens at `key`: current and new values come as [`Event::Value`], expirations as
    /// [`Event::Expired`], until [`Self::cancel`].
    pub fn listen(&mut self, now: Instant, key: InfoHash, query: Option<ValueQuery>) -> OpId {
        // Drawn at random, not counted: a listen's id is all a push carries of it.
        let sid = loop {
            let sid = self.random.next_u64() as u32;
            let taken = self
                .searches
                .values()
                .any(|s| matches!(s.kind, OpKind::Listen { sid: x, .. } if x == sid));
            if sid != 0 && !taken {
                break sid;
            }
        };
        self.start_search(
            now,
            key,
            OpKind::Listen {
                sid,
                query,
                confirmed: HashSet::new(),
                next_refresh: None,
            },
        )
    }

    /// The node's id and the nodes it knows that have answered it, as bytes to keep across a
    /// restart: msgpack `{"v": 1, "id": bin(20), "n4": bin(compact), "n6": bin(compact)}`.
    pub fn save_state(&self) -> Vec<u8> {
        use pamoja_identity::msgpack;
        let confirmed = |t: &RoutingTable| -> Vec<NodeInfo> {
            t.nodes()
                .filter(|n| n.last_reply.is_some() && !n.expired)
                .map(|n| NodeInfo {
                    id: n.id,
                    addr: n.addr,
                })
                .collect()
        };
        let mut out = Vec::new();
        msgpack::map(&mut out, 4);
        msgpack::str(&mut out, "v");
        msgpack::uint(&mut out, 1);
        msgpack::str(&mut out, "id");
        msgpack::bin(&mut out, &self.id.0);
        msgpack::str(&mut out, "n4");
        crate::message::write_nodes(&mut out, &confirmed(&self.table4));
        msgpack::str(&mut out, "n6");
        crate::message::write_nodes(&mut out, &confirmed(&self.table6));
        out
    }

    /// A node restored from [`Self::save_state`]: same id, and every saved node is pinged to
    /// rejoin the network without a bootstrap address. `config.id` is ignored.
    pub fn restore(
        now: Instant,
        config: Config,
        state: &[u8],
    ) -> Result<Self, pamoja_identity::msgpack::DecodeError> {
        use pamoja_identity::msgpack::{DecodeError, Reader};
        let mut r = Reader::new(state);
        let (mut id, mut nodes) = (None, Vec::new());
        for _ in 0..r.map_len()? {
            match r.str()? {
                "id" => id = InfoHash::from_slice(r.bin()?),
                "n4" => nodes.extend(crate::message::read_nodes(r.bin()?, false)?),
                "n6" => nodes.extend(crate::message::read_nodes(r.bin()?, true)?),
                _ => r.skip()?,
            }
        }
        let id = id.ok_or_else(|| DecodeError("saved state without an id".into()))?;
        let mut node = Node::new(Config {
            id: Some(id),
            ..config
        });
        node.start_maintenance(now);
        for n in nodes {
            if !is_martian(&n.addr) {
                node.node_seen(now, n.id, n.addr, false);
            }
        }
        Ok(node)
    }

    /// The socket id (`sid`) a listen operation gave the storing nodes.
    pub fn listen_sid(&self, op: OpId) -> Option<u32> {
        match self.searches.get(&op)?.kind {
            OpKind::Listen { sid, .. } => Some(sid),
            _ => None,
        }
    }

    /// Stops an operation (a listen stops being refreshed and expires on the remote nodes).
    pub fn cancel(&mut self, op: OpId) {
        self.searches.remove(&op);
        self.pending.retain(|_, p| p.op != Some(op));
    }

    /// Sends one `find` per under-filled bucket, for a random id in its range, to the closest
    /// node we know: this keeps far buckets populated so lookups converge (OpenDHT's
    /// `confirmNodes` does the same).
    fn refresh_buckets(&mut self, now: Instant) {
        for v6 in [false, true] {
            let table = if v6 { &self.table6 } else { &self.table4 };
            if table.is_empty() {
                continue;
            }
            let jobs: Vec<(InfoHash, InfoHash, SocketAddr)> = table
                .refresh_targets_from(&mut *self.random)
                .into_iter()
                .filter_map(|t| {
                    table
                        .closest(&t, 1, now, true)
                        .first()
                        .map(|n| (t, n.id, n.addr))
                })
                .collect();
            for (target, id, addr) in jobs {
                let mut body = self.body();
                body.target = Some(target);
                self.send_request(now, addr, Some(id), Method::Find, body, None);
            }
        }
    }

    fn add_candidates(&mut self, now: Instant, op: OpId, nodes: &[NodeInfo]) {
        let Some(s) = self.searches.get_mut(&op) else {
            return;
        };
        for n in nodes {
            if n.id == self.id
                || is_martian(&n.addr)
                || self.blacklist.contains(&n.addr, now)
                || s.candidates.iter().any(|c| c.id == n.id)
            {
                continue;
            }
            s.candidates.push(Candidate {
                id: n.id,
                addr: n.addr,
                state: CandState::Fresh,
            });
        }
        let key = s.key;
        s.candidates.sort_by(|a, b| key.xor_cmp(&a.id, &b.id));
        // Keep the closest; never drop one we are waiting for.
        let mut kept = 0;
        s.candidates.retain(|c| {
            kept += 1;
            kept <= SEARCH_NODES
                || matches!(
                    c.state,
                    CandState::Asked | CandState::Slow | CandState::Gone
                )
        });
    }

    /// Advances a search: asks more nodes, or finishes.
    fn step(&mut self, now: Instant, op: OpId) {
        let Some(s) = self.searches.get_mut(&op) else {
            return;
        };
        if s.done && !matches!(s.kind, OpKind::Listen { .. }) {
            return;
        }
        if s.candidates.is_empty() {
            // Nobody to ask yet: wait for the node to join (OpenDHT queues operations too).
            return;
        }
        let method = match s.kind {
            OpKind::Get { .. } => Method::Get,
            _ => Method::Find,
        };
        let usable: Vec<usize> = (0..s.candidates.len())
            .filter(|&i| !matches!(s.candidates[i].state, CandState::Failed | CandState::Gone))
            .collect();
        // The K closest usable nodes decide when the search is synced; slow ones among them
        // let as many nodes further away be asked meanwhile.
        let live: Vec<usize> = usable.iter().copied().take(K).collect();
        let slow = live
            .iter()
            .filter(|&&i| s.candidates[i].state == CandState::Slow)
            .count();
        let in_flight = s
            .candidates
            .iter()
            .filter(|c| c.state == CandState::Asked)
            .count();
        let mut to_ask = Vec::new();
        for &i in usable.iter().take(K + slow) {
            if in_flight + to_ask.len() >= ALPHA {
                break;
            }
            if s.candidates[i].state == CandState::Fresh {
                s.candidates[i].state = CandState::Asked;
                to_ask.push((s.candidates[i].id, s.candidates[i].addr));
            }
        }
        let synced = !live.is_empty()
            && live
                .iter()
                .all(|&i| matches!(s.candidates[i].state, CandState::Replied(_)));
        let waiting = s
            .candidates
            .iter()
            .any(|c| matches!(c.state, CandState::Asked | CandState::Slow));
        let exhausted = live.is_empty() && !waiting;
        let key = s.key;
        let query = match &s.kind {
            OpKind::Get { query } => query.clone(),
            _ => None,
        };
        for (id, addr) in to_ask {
            let mut body = self.body();
            match method {
                Method::Get => {
                    body.key = Some(key);
                    body.query = query.clone();
                }
                _ => body.target = Some(key),
            }
            self.send_request(now, addr, Some(id), method, body, Some(op));
        }
        if synced || exhausted {
            self.synced(now, op);
        }
    }

    /// The closest nodes answered: complete gets, send puts and listens.
    fn synced(&mut self, now: Instant, op: OpId) {
        let Some(s) = self.searches.get_mut(&op) else {
            return;
        };
        let replied: Vec<(InfoHash, SocketAddr, Option<Vec<u8>>)> = s
            .candidates
            .iter()
            .filter_map(|c| match &c.state {
                CandState::Replied(t) => Some((c.id, c.addr, t.clone())),
                _ => None,
            })
            .take(K)
            .collect();
        let key = s.key;
        match &mut s.kind {
            OpKind::Get { .. } | OpKind::Refresh => {
                if !s.done {
                    s.done = true;
                    let is_get = matches!(s.kind, OpKind::Get { .. });
                    self.searches.remove(&op);
                    if is_get {
                        self.events.push_back(Event::GetDone {
                            op,
                            replied: replied.len(),
                        });
                    } else {
                        self.refresh_buckets(now);
                    }
                }
            }
            OpKind::Put {
                value,
                created,
                pending,
                sent,
                acked,
                quiet,
            } => {
                if *sent {
                    return;
                }
                *sent = true;
                s.done = true;
                let targets: Vec<_> = replied
                    .into_iter()
                    .filter(|(_, _, t)| t.is_some())
                    .collect();
                *pending = targets.len();
                let (value, created, acked, quiet) = (value.clone(), *created, *acked, *quiet);
                if targets.is_empty() {
                    if !quiet {
                        self.events.push_back(Event::PutDone { op, stored: acked });
                    }
                    self.searches.remove(&op);
                    return;
                }
                for (id, addr, token) in targets {
                    let mut body = self.body();
                    body.key = Some(key);
                    body.values = vec![ValueEntry::Inline(value.clone())];
                    body.created = Some(created);
                    body.token = token;
                    self.send_request(now, addr, Some(id), Method::Put, body, Some(op));
                }
            }
            OpKind::Listen {
                sid,
                query,
                next_refresh,
                ..
            } => {
                s.done = true;
                let (sid, query) = (*sid, query.clone());
                *next_refresh = Some(now + LISTEN_REFRESH);
                for (id, addr, token) in replied
                    .into_iter()
                    .filter(|(_, _, t)| t.is_some())
                    .take(LISTEN_NODES)
                {
                    let mut body = self.body();
                    body.key = Some(key);
                    body.version = Some(1);
                    body.sid = Some(sid);
                    body.token = token;
                    body.query = query.clone();
                    self.send_request(now, addr, Some(id), Method::Listen, body, Some(op));
                }
            }
        }
    }

    /// Feeds a received datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        if is_martian(&from) {
            return;
        }
        if self.blacklist.contains(&from, now) {
            self.counters.from_blacklisted += 1;
            return;
        }
        // A node that only answers (a bootstrap node) still maintains its table.
        self.start_maintenance(now);
        let Ok(msg) = Message::decode(data) else {
            return;
        };
        if msg.network != self.network {
            return;
        }
        if let MessageKind::ValueData(frags) = &msg.kind {
            // Fragments nobody announced count as requests, as in OpenDHT.
            if !self.partials.contains_key(&(from, msg.tid)) {
                self.rate_ok(now, &from);
                return;
            }
            self.on_fragments(now, from, msg.tid, frags);
            return;
        }
        if msg.body.id == self.id || msg.body.id.is_zero() {
            return;
        }
        if matches!(msg.kind, MessageKind::Query(_) | MessageKind::LegacyUpdate)
            && !self.rate_ok(now, &from)
        {
            return;
        }
        if msg
            .body
            .values
            .iter()
            .any(|v| matches!(v, ValueEntry::Size(_)))
        {
            // The values follow in fragments. At most MAX_PARTIAL_BYTES per message and
            // MAX_PARTIALS messages at once, keyed by (sender, tid) as OpenDHT 4.x does.
            let total: usize = msg
                .body
                .values
                .iter()
                .map(|v| match v {
                    ValueEntry::Size(n) => *n as usize,
                    ValueEntry::Inline(_) => 0,
                })
                .sum();
            if total > MAX_PARTIAL_BYTES {
                return;
            }
            let buffers = msg
                .body
                .values
                .iter()
                .map(|v| match v {
                    ValueEntry::Size(n) => (*n as usize, Vec::new()),
                    ValueEntry::Inline(v) => {
                        let b = v.to_bytes();
                        (b.len(), b)
                    }
                })
                .collect();
            if self.partials.len() < MAX_PARTIALS {
                self.partials.insert(
                    (from, msg.tid),
                    Partial {
                        msg,
                        buffers,
                        deadline: now + RX_MAX_PACKET_TIME,
                    },
                );
            }
            return;
        }
        self.process(now, from, msg);
    }

    fn on_fragments(&mut self, now: Instant, from: SocketAddr, tid: u32, frags: &[Fragment]) {
        let Some(p) = self.partials.get_mut(&(from, tid)) else {
            return;
        };
        for f in frags {
            let Some((size, buf)) = p.buffers.get_mut(f.index as usize) else {
                continue;
            };
            if f.offset as usize == buf.len() && buf.len() + f.data.len() <= *size {
                buf.extend_from_slice(&f.data);
            }
        }
        if p.buffers.iter().all(|(size, b)| b.len() == *size) {
            let Some(mut p) = self.partials.remove(&(from, tid)) else {
                return;
            };
            p.msg.body.values = p
                .buffers
                .iter()
                .filter_map(|(_, b)| Value::from_bytes(b).ok())
                .map(ValueEntry::Inline)
                .collect();
            self.process(now, from, p.msg);
        }
    }

    fn process(&mut self, now: Instant, from: SocketAddr, msg: Message) {
        match msg.kind.clone() {
            MessageKind::Query(m) => {
                if !msg.client {
                    self.node_seen(now, msg.body.id, from, false);
                }
                self.on_query(now, from, m, msg);
            }
            MessageKind::Reply => self.on_reply(now, from, msg),
            MessageKind::Error(code, _) => self.on_error(now, from, msg.tid, code),
            MessageKind::LegacyUpdate => self.on_update(from, msg.tid, msg.body),
            MessageKind::ValueData(_) => {}
        }
    }

    /// The nodes a reply lists: the K closest nodes that are alive and have answered one of
    /// our requests. Newcomers are pinged when first heard from, so they qualify within a
    /// round trip, while made-up senders never do.
    fn closest_infos(&self, target: &InfoHash, v6: bool, now: Instant) -> Vec<NodeInfo> {
        let t = if v6 { &self.table6 } else { &self.table4 };
        let confirmed = t
            .closest(target, 4 * K, now, true)
            .into_iter()
            .filter(|n| n.last_reply.is_some());
        confirmed
            .take(K)
            .map(|n| NodeInfo {
                id: n.id,
                addr: n.addr,
            })
            .collect()
    }

    fn on_query(&mut self, now: Instant, from: SocketAddr, method: Method, msg: Message) {
        let tid = msg.tid;
        let b = msg.body;
        let mut reply = Body {
            id: self.id,
            seen_addr: Some(from.ip()),
            ..Body::default()
        };
        let error = |code: u16, text: &str| (code, text.to_owned());
        let result: Result<Vec<Body>, (u16, String)> = match method {
            Method::Ping => Ok(vec![reply]),
            Method::Find | Method::Get => {
                let target = if method == Method::Find {
                    b.target
                } else {
                    b.key
                };
                match target {
                    Some(t) if !t.is_zero() => {
                        let (want4, want6) = if b.want.is_empty() {
                            (from.is_ipv4(), from.is_ipv6())
                        } else {
                            (b.want.contains(&WANT_V4), b.want.contains(&WANT_V6))
                        };
                        if want4 {
                            reply.nodes4 = self.closest_infos(&t, false, now);
                        }
                        if want6 {
                            reply.nodes6 = self.closest_infos(&t, true, now);
                        }
                        reply.token = Some(self.token_for(self.secrets[0], &from));
                        if method == Method::Get {
                            let q = b.query.clone().unwrap_or_default();
                            let found: Vec<&Value> =
                                self.storage.get(&t).filter(|v| q.matches(v)).collect();
                            if !q.select.is_empty() {
                                // Like OpenDHT: nothing matching, no `fileds` key at all.
                                if !found.is_empty() {
                                    reply.fields = Some(FieldReply::build(&q.select, &found));
                                }
                            } else {
                                reply.values =
                                    found.into_iter().cloned().map(ValueEntry::Inline).collect();
                            }
                        }
                        Ok(vec![reply])
                    }
                    _ => Err(error(203, "Get_values with no info_hash")),
                }
            }
            Method::Put => match b.key {
                None => Err(error(203, "Put with no info_hash")),
                Some(k) if k.is_zero() => Err(error(203, "Put with no info_hash")),
                Some(_) if !self.token_ok(b.token.as_deref(), &from) => {
                    Err(error(401, "Put with wrong token"))
                }
                Some(k) => {
                    let unix = self.unix_time(now);
                    let created = b.created.unwrap_or(unix).min(unix);
                    let age = Duration::from_secs(unix.saturating_sub(created).max(0) as u64);
                    let mut replies = Vec::new();
                    let mut bad_id = false;
                    for v in b.values {
                        let ValueEntry::Inline(v) = v else { continue };
                        if v.id == 0 {
                            bad_id = true;
                            continue;
                        }
                        let vid = v.id;
                        // SecureDht's store policy: a signed value is kept only when its
                        // signature verifies (so nobody can edit another's value). Refusals
                        // are still acknowledged, as OpenDHT does.
                        if v.is_signed() && crate::secure::verify(&v).is_err() {
                            self.counters.bad_signatures += 1;
                        } else {
                            match self.storage.store(k, v.clone(), now, age) {
                                StoreOutcome::New => self.notify_listeners(now, k, &v),
                                StoreOutcome::Refreshed => {}
                                StoreOutcome::RefusedEdit => self.counters.refused_edits += 1,
                                StoreOutcome::Refused => self.counters.refused_other += 1,
                            }
                        }
                        replies.push(Body {
                            vid: Some(vid),
                            ..reply.clone()
                        });
                    }
                    if bad_id && replies.is_empty() {
                        Err(error(203, "Put with invalid id"))
                    } else {
                        Ok(replies)
                    }
                }
            },
            Method::Refresh => match b.key {
                Some(k) if !k.is_zero() => {
                    if !self.token_ok(b.token.as_deref(), &from) {
                        Err(error(401, "Put with wrong token"))
                    } else if self.storage.refresh(&k, b.vid.unwrap_or(0), now) {
                        Ok(vec![Body {
                            vid: b.vid,
                            ..reply
                        }])
                    } else {
                        Err(error(404, "Access operation for unknown storage"))
                    }
                }
                _ => Err(error(203, "Put with no info_hash")),
            },
            Method::Listen => match b.key {
                Some(k) if !k.is_zero() => {
                    if !self.token_ok(b.token.as_deref(), &from) {
                        Err(error(401, "Listen with wrong token"))
                    } else {
                        let sid = b.sid.unwrap_or(0);
                        let version = b.version.unwrap_or(0);
                        let source = crate::ratelimit::source(from.ip());
                        let from_source = self.listener_sources.get(&source).copied();
                        let list = self.listeners.entry(k).or_default();
                        let full = list.len() >= MAX_LISTENERS_PER_KEY
                            || self.listener_count >= MAX_LISTENERS
                            || from_source.unwrap_or(0) >= MAX_LISTENERS_PER_SOURCE;
                        // A listen from another address is another listener: one packet
                        // cannot turn someone's pushes towards a third party.
                        let mine = |l: &Listener| {
                            l.node == b.id && l.sid == sid && l.addr.ip() == from.ip()
                        };
                        let is_new = match list.iter_mut().find(|l| mine(l)) {
                            Some(l) => {
                                l.expires = now + LISTENER_EXPIRE;
                                l.addr = from;
                                l.version = version;
                                Some(false)
                            }
                            None if full => None,
                            None => {
                                list.push(Listener {
                                    addr: from,
                                    node: b.id,
                                    sid,
                                    version: b.version.unwrap_or(0),
                                    query: b.query.clone(),
                                    expires: now + LISTENER_EXPIRE,
                                });
                                *self.listener_sources.entry(source).or_default() += 1;
                                self.listener_count += 1;
                                Some(true)
                            }
                        };
                        if list.is_empty() {
                            self.listeners.remove(&k);
                        }
                        match is_new {
                            None => Err(error(403, "Listen refused: too many listeners")),
                            Some(is_new) => {
                                if is_new {
                                    let q = b.query.clone().unwrap_or_default();
                                    let values: Vec<Value> = self
                                        .storage
                                        .get(&k)
                                        .filter(|v| q.matches(v))
                                        .cloned()
                                        .collect();
                                    if !values.is_empty() {
                                        self.push_update(now, from, b.id, k, sid, version, values);
                                    }
                                }
                                Ok(vec![reply])
                            }
                        }
                    }
                }
                _ => Err(error(203, "Listen with no info_hash")),
            },
            Method::Update => {
                if let Some(sid) = b.sid {
                    self.on_update(from, sid, b);
                }
                Ok(vec![reply])
            }
        };
        match result {
            Ok(replies) => {
                for r in replies {
                    let m = self.msg(tid, MessageKind::Reply, r);
                    self.send_reply(from, m);
                }
            }
            Err((code, text)) => {
                let m = self.msg(tid, MessageKind::Error(code, text), self.body());
                self.transmits.push_back(Transmit {
                    to: from,
                    data: m.encode(),
                });
            }
        }
    }

    /// Pushes values to a listener: an `update` request (version 1), or an unsolicited reply
    /// whose tid is the listener's `sid` (version 0).
    #[allow(clippy::too_many_arguments)]
    fn push_update(
        &mut self,
        now: Instant,
        to: SocketAddr,
        node: InfoHash,
        key: InfoHash,
        sid: u32,
        version: u32,
        values: Vec<Value>,
    ) {
        let mut body = self.body();
        body.values = values.into_iter().map(ValueEntry::Inline).collect();
        body.token = Some(self.token_for(self.secrets[0], &to));
        if version == 0 {
            body.seen_addr = Some(to.ip());
            if to.is_ipv4() {
                body.nodes4 = self.closest_infos(&key, false, now);
            } else {
                body.nodes6 = self.closest_infos(&key, true, now);
            }
            let m = self.msg(sid, MessageKind::Reply, body);
            self.send_reply(to, m);
            return;
        }
        body.key = Some(key);
        body.sid = Some(sid);
        body.version = Some(1);
        self.send_request(now, to, Some(node), Method::Update, body, None);
    }

    /// Tells a listener values expired: an `update` request with `exp` (version 1), or a
    /// `u` message whose tid is the listener's `sid` (version 0).
    fn push_expired(&mut self, now: Instant, l: (SocketAddr, InfoHash, u32, u32), ids: &[u64]) {
        let (addr, node, sid, version) = l;
        let mut body = self.body();
        body.token = Some(self.token_for(self.secrets[0], &addr));
        body.expired = ids.to_vec();
        if version == 0 {
            let m = self.msg(sid, MessageKind::LegacyUpdate, body);
            self.transmits.push_back(Transmit {
                to: addr,
                data: m.encode(),
            });
        } else {
            body.sid = Some(sid);
            self.send_request(now, addr, Some(node), Method::Update, body, None);
        }
    }

    fn notify_listeners(&mut self, now: Instant, key: InfoHash, v: &Value) {
        // Our own listens at this key see values stored here at once.
        for (&op, s) in self.searches.iter_mut() {
            if let OpKind::Listen { query, .. } = &s.kind {
                if s.key == key
                    && query.as_ref().is_none_or(|q| q.matches(v))
                    && s.seen.insert(v.id)
                {
                    self.events.push_back(Event::Value {
                        op,
                        value: v.clone(),
                    });
                }
            }
        }
        let targets: Vec<(SocketAddr, InfoHash, u32, u32)> = self
            .listeners
            .get(&key)
            .into_iter()
            .flatten()
            .filter(|l| l.expires > now && l.query.as_ref().is_none_or(|q| q.matches(v)))
            .map(|l| (l.addr, l.node, l.sid, l.version))
            .collect();
        for (addr, node, sid, version) in targets {
            self.push_update(now, addr, node, key, sid, version, vec![v.clone()]);
        }
    }

    /// A storing node pushed values (or expirations) for one of our listens: an `update`
    /// request, or a legacy push whose tid is the listen's `sid`.
    fn on_update(&mut self, from: SocketAddr, sid: u32, b: Body) {
        // Only the nodes this listen was sent to may push to it, from the address it was
        // sent to: the id a packet names is anyone's to write.
        let Some((&op, s)) = self.searches.iter_mut().find(|(_, s)| {
            matches!(s.kind, OpKind::Listen { sid: x, .. } if x == sid)
                && s.candidates.iter().any(|c| c.id == b.id && c.addr == from)
        }) else {
            return;
        };
        for v in b.values {
            if let ValueEntry::Inline(v) = v {
                if s.seen.insert(v.id) {
                    self.events.push_back(Event::Value { op, value: v });
                }
            }
        }
        for id in b.expired {
            if s.seen.remove(&id) {
                self.events.push_back(Event::Expired { op, id });
            }
        }
    }

    fn on_reply(&mut self, now: Instant, from: SocketAddr, msg: Message) {
        let Some(p) = self.pending.get_mut(&msg.tid) else {
            // Not an answer: a legacy listen push carries the listen's sid as its tid.
            if !msg.body.values.is_empty() {
                self.on_update(from, msg.tid, msg.body);
            }
            return;
        };
        if p.to != from || p.node.is_some_and(|n| n != msg.body.id) {
            return;
        }
        if p.sends == 1 {
            let rtt = now.saturating_duration_since(p.sent_at);
            self.rtt.sample(rtt);
        }
        p.replies_left = p.replies_left.saturating_sub(1);
        let done = p.replies_left == 0;
        let (method, op, to_known_node) = (p.method, p.op, p.node.is_some());
        if done {
            self.pending.remove(&msg.tid);
        }
        if matches!(method, Method::Find | Method::Get) && msg.body.token.is_none() {
            // OpenDHT blacklists a node that answers a get or find without a write token,
            // and ignores what the answer says.
            self.blacklist.add(from, now);
            self.counters.blacklisted += 1;
            let id = msg.body.id;
            self.table(&from).remove(&id);
            let Some(op) = op else { return };
            if let Some(s) = self.searches.get_mut(&op) {
                if let Some(c) = s.candidates.iter_mut().find(|c| c.id == id) {
                    c.state = CandState::Failed;
                }
            }
            self.step(now, op);
            return;
        }
        self.node_seen(now, msg.body.id, from, true);
        if let Some(ip) = msg.body.seen_addr {
            if self.reported.first() != Some(&ip) {
                self.reported.retain(|a| *a != ip);
                self.reported.insert(0, ip);
                self.reported.truncate(4);
            }
        }
        let listed: Vec<NodeInfo> = msg
            .body
            .nodes4
            .iter()
            .chain(&msg.body.nodes6)
            .copied()
            .collect();
        for n in listed {
            if n.id != self.id && !is_martian(&n.addr) && !self.blacklist.contains(&n.addr, now) {
                self.node_seen(now, n.id, n.addr, false);
            }
        }
        self.start_waiting_searches(now);
        match method {
            Method::Ping if op.is_none() && !to_known_node => {
                // Bootstrap answered: look up our own id to fill the table.
                let own = self.id;
                self.start_search(now, own, OpKind::Refresh);
            }
            Method::Find | Method::Get => {
                let Some(op) = op else { return };
                let mut nodes = msg.body.nodes4.clone();
                nodes.extend(msg.body.nodes6.iter().copied());
                if let Some(s) = self.searches.get_mut(&op) {
                    if let Some(c) = s.candidates.iter_mut().find(|c| c.id == msg.body.id) {
                        c.state = CandState::Replied(msg.body.token.clone());
                    }
                    if let OpKind::Get { query } = &s.kind {
                        for v in &msg.body.values {
                            if let ValueEntry::Inline(v) = v {
                                if query.as_ref().is_none_or(|q| q.matches(v))
                                    && s.seen.insert(v.id)
                                {
                                    self.events.push_back(Event::Value {
                                        op,
                                        value: v.clone(),
                                    });
                                }
                            }
                        }
                    }
                }
                self.add_candidates(now, op, &nodes);
                self.step(now, op);
            }
            Method::Put => {
                let Some(op) = op else { return };
                if let Some(Search {
                    kind: OpKind::Put { acked, pending, .. },
                    ..
                }) = self.searches.get_mut(&op)
                {
                    if msg.body.vid.is_some() {
                        *acked += 1;
                        *pending = pending.saturating_sub(1);
                    }
                }
                self.check_put_done(op);
            }
            Method::Listen => {
                let Some(op) = op else { return };
                if let Some(Search {
                    kind: OpKind::Listen { confirmed, .. },
                    candidates,
                    ..
                }) = self.searches.get_mut(&op)
                {
                    // OpenDHT 4.x confirms a listen with a fresh token.
                    if let Some(token) = &msg.body.token {
                        if let Some(c) = candidates.iter_mut().find(|c| c.id == msg.body.id) {
                            c.state = CandState::Replied(Some(token.clone()));
                        }
                    }
                    if confirmed.insert(msg.body.id) {
                        let nodes = confirmed.len();
                        self.events.push_back(Event::Listening { op, nodes });
                    }
                }
            }
            _ => {}
        }
    }

    fn check_put_done(&mut self, op: OpId) {
        if let Some(Search {
            kind:
                OpKind::Put {
                    acked,
                    pending,
                    sent: true,
                    quiet,
                    ..
                },
            ..
        }) = self.searches.get(&op)
        {
            if *pending == 0 {
                let (stored, quiet) = (*acked, *quiet);
                self.searches.remove(&op);
                if !quiet {
                    self.events.push_back(Event::PutDone { op, stored });
                }
            }
        }
    }

    fn on_error(&mut self, now: Instant, from: SocketAddr, tid: u32, code: u16) {
        let Some(p) = self.pending.get(&tid) else {
            return;
        };
        if p.to != from {
            return;
        }
        let Some(p) = self.pending.remove(&tid) else {
            return;
        };
        if code == 401 {
            if let Some(id) = p.node {
                // The token was refused: after too many refusals the node is taken for
                // expired; a listen fetches a new token and tries again.
                let errors = self.auth_errors.entry(id).or_default();
                *errors += 1;
                if *errors > MAX_AUTH_ERRORS {
                    self.auth_errors.remove(&id);
                    self.table(&from).failed(&id);
                } else if p.method == Method::Listen {
                    if let Some(s) = p.op.and_then(|op| self.searches.get_mut(&op)) {
                        if let Some(c) = s.candidates.iter_mut().find(|c| c.id == id) {
                            c.state = CandState::Fresh;
                        }
                        s.done = false;
                    }
                    if let Some(op) = p.op {
                        self.step(now, op);
                    }
                    return;
                }
            }
        }
        self.request_failed(now, p, false);
    }

    fn request_failed(&mut self, now: Instant, p: Pending, timed_out: bool) {
        if timed_out {
            if let Some(id) = p.node {
                self.table(&p.to).failed(&id);
            }
        }
        let Some(op) = p.op else { return };
        match p.method {
            Method::Find | Method::Get => {
                if let Some(s) = self.searches.get_mut(&op) {
                    if let Some(c) = s.candidates.iter_mut().find(|c| Some(c.id) == p.node) {
                        c.state = CandState::Failed;
                    }
                }
                self.step(now, op);
            }
            Method::Put => {
                if let Some(Search {
                    kind: OpKind::Put { pending, .. },
                    ..
                }) = self.searches.get_mut(&op)
                {
                    *pending = pending.saturating_sub(1);
                }
                self.check_put_done(op);
            }
            Method::Listen if timed_out => {
                // Listen elsewhere: the next closest node that gave a token.
                if let Some(s) = self.searches.get_mut(&op) {
                    if let Some(c) = s.candidates.iter_mut().find(|c| Some(c.id) == p.node) {
                        c.state = CandState::Failed;
                    }
                    s.done = false;
                }
                self.step(now, op);
            }
            _ => {}
        }
    }

    /// Handles timers: retransmissions, request expiry, listen refresh, maintenance.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        let mut slow = Vec::new();
        let mut gone = Vec::new();
        for p in self.pending.values_mut() {
            if p.slow_at.is_some_and(|t| t <= now) {
                p.slow_at = None;
                if let (Some(op), Some(node)) = (p.op, p.node) {
                    slow.push((op, node));
                }
            }
        }
        for tid in due {
            let Some(p) = self.pending.get_mut(&tid) else {
                continue;
            };
            if p.sends < MAX_SENDS {
                p.sends += 1;
                if p.sends == MAX_SENDS && matches!(p.method, Method::Find | Method::Get) {
                    if let (Some(op), Some(node)) = (p.op, p.node) {
                        gone.push((op, node));
                    }
                }
                p.deadline = now + RESPONSE_TIME * (1 << (p.sends - 1));
                let to = p.to;
                self.transmits.push_back(Transmit {
                    to,
                    data: p.data.clone(),
                });
                let frags = p.fragments.clone();
                self.transmits
                    .extend(frags.into_iter().map(|data| Transmit { to, data }));
            } else if let Some(p) = self.pending.remove(&tid) {
                self.request_failed(now, p, true);
            }
        }
        let marks = slow
            .into_iter()
            .map(|x| (x, CandState::Slow))
            .chain(gone.into_iter().map(|x| (x, CandState::Gone)));
        for ((op, node), mark) in marks {
            if let Some(s) = self.searches.get_mut(&op) {
                if let Some(c) = s
                    .candidates
                    .iter_mut()
                    .find(|c| c.id == node && matches!(c.state, CandState::Asked | CandState::Slow))
                {
                    c.state = mark;
                }
            }
            self.step(now, op);
        }
        self.partials.retain(|_, p| p.deadline > now);
        let refresh: Vec<OpId> = self
            .searches
            .iter()
            .filter(|(_, s)| matches!(&s.kind, OpKind::Listen { next_refresh: Some(t), .. } if *t <= now))
            .map(|(op, _)| *op)
            .collect();
        for op in refresh {
            // Listens are re-sent with the tokens in hand, as OpenDHT does; the closest nodes
            // are looked up again only when too few of them are left to listen to.
            let Some(s) = self.searches.get_mut(&op) else {
                continue;
            };
            if let OpKind::Listen { next_refresh, .. } = &mut s.kind {
                *next_refresh = None;
            }
            let ready = s
                .candidates
                .iter()
                .filter(|c| matches!(c.state, CandState::Replied(Some(_))))
                .count();
            if ready >= LISTEN_NODES.min(s.candidates.len()) && ready > 0 {
                self.synced(now, op);
            } else {
                for c in &mut s.candidates {
                    if !matches!(
                        c.state,
                        CandState::Asked | CandState::Slow | CandState::Gone
                    ) {
                        c.state = CandState::Fresh;
                    }
                }
                s.done = false;
                self.step(now, op);
            }
        }
        if self.storage.next_expiration().is_some_and(|t| t <= now) {
            self.expire_storage(now);
        }
        if self.next_maintenance.is_some_and(|t| t <= now) {
            self.next_maintenance = Some(now + Duration::from_secs(60));
            self.expire_storage(now);
            if self.maintain_storage {
                match self.next_storage_maintenance {
                    Some(t) if t <= now => {
                        self.next_storage_maintenance = Some(now + STORAGE_MAINTENANCE);
                        self.maintain_storage(now);
                    }
                    Some(_) => {}
                    None => self.next_storage_maintenance = Some(now + STORAGE_MAINTENANCE),
                }
            }
            self.refresh_buckets(now);
            let (sources, count) = (&mut self.listener_sources, &mut self.listener_count);
            for list in self.listeners.values_mut() {
                list.retain(|l| {
                    let keep = l.expires > now;
                    if !keep {
                        *count -= 1;
                        let src = crate::ratelimit::source(l.addr.ip());
                        if let Some(n) = sources.get_mut(&src) {
                            *n -= 1;
                            if *n == 0 {
                                sources.remove(&src);
                            }
                        }
                    }
                    keep
                });
            }
            self.listeners.retain(|_, l| !l.is_empty());
            self.table4.expire(now);
            self.table6.expire(now);
        }
        if self.next_bootstrap.is_some_and(|t| t <= now) {
            if self.table4.good(now) + self.table6.good(now) > 0 {
                self.next_bootstrap = None;
            } else {
                self.bootstrap_delay = (self.bootstrap_delay * 2).min(BOOTSTRAP_RETRY_MAX);
                self.next_bootstrap = Some(now + self.bootstrap_delay);
                for addr in self.bootstrap_addrs.clone() {
                    self.send_request(now, addr, None, Method::Ping, self.body(), None);
                }
            }
        }
        if self.next_rotation.is_some_and(|t| t <= now) {
            self.secrets = [self.random.next_u64(), self.secrets[0]];
            self.next_rotation =
                Some(now + Duration::from_secs(15 * 60 + self.random.next_u64() % (30 * 60)));
        }
    }

    /// Drops expired values and tells listeners (`exp`), local listens included.
    fn expire_storage(&mut self, now: Instant) {
        for (key, ids) in self.storage.expire(now) {
            for (&op, s) in self.searches.iter_mut() {
                if matches!(s.kind, OpKind::Listen { .. }) && s.key == key {
                    for id in &ids {
                        if s.seen.remove(id) {
                            self.events.push_back(Event::Expired { op, id: *id });
                        }
                    }
                }
            }
            let targets: Vec<(SocketAddr, InfoHash, u32, u32)> = self
                .listeners
                .get(&key)
                .into_iter()
                .flatten()
                .map(|l| (l.addr, l.node, l.sid, l.version))
                .collect();
            for l in targets {
                self.push_expired(now, l, &ids);
            }
        }
    }

    /// OpenDHT's `maintain_storage`: for each stored key, when this node is farther from it
    /// than the closest nodes it knows in a family, put the values that still have a while to
    /// live to those nodes. The key is dropped when no family wants it here. (OpenDHT counts a
    /// family with no known node as wanting it, so an IPv4-only node never drops anything;
    /// here a family with no node has no say.)
    fn maintain_storage(&mut self, now: Instant) {
        let keys: Vec<InfoHash> = self.storage.keys().copied().collect();
        for key in keys {
            // Per family: None when no node is known, else whether this node is among the
            // closest to the key.
            let wanted: Vec<Option<bool>> = [&self.table4, &self.table6]
                .into_iter()
                .map(|t| {
                    let closest = t.closest(&key, K, now, true);
                    closest.last().map(|farthest| {
                        key.xor_cmp(&farthest.id, &self.id) != std::cmp::Ordering::Less
                    })
                })
                .collect();
            let unwanted = wanted.contains(&Some(false));
            if unwanted {
                let values: Vec<(Value, Instant)> = self
                    .storage
                    .stored(&key)
                    .filter(|s| s.expiration > now + STORAGE_MAINTENANCE)
                    .map(|s| (s.value.clone(), s.expiration))
                    .collect();
                for (value, expiration) in values {
                    let left = expiration.saturating_duration_since(now);
                    let age = lifetime(value.value_type).saturating_sub(left);
                    let created = self.unix_time(now) - age.as_secs() as i64;
                    self.counters.republished += 1;
                    self.start_search(
                        now,
                        key,
                        OpKind::Put {
                            value,
                            created,
                            acked: 0,
                            pending: 0,
                            sent: false,
                            quiet: true,
                        },
                    );
                }
            }
            if unwanted && !wanted.contains(&Some(true)) {
                self.storage.clear(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_values_expire_on_time() {
        let t0 = Instant::now();
        let mut n = Node::new(Config::default());
        // Stored from the network, so no maintenance timer is running yet.
        let token = n.token_for(n.secrets[0], &"127.0.0.1:5000".parse().unwrap());
        let put = Message::new(
            1,
            MessageKind::Query(Method::Put),
            Body {
                id: InfoHash([9; 20]),
                key: Some(InfoHash([1; 20])),
                values: vec![ValueEntry::Inline(Value {
                    id: 5,
                    value_type: 5,
                    ..Value::new("ice")
                })],
                token: Some(token),
                ..Body::default()
            },
        );
        n.handle_datagram(t0, "127.0.0.1:5000".parse().unwrap(), &put.encode());
        assert!(n.poll_transmit().is_some(), "put acknowledged");
        assert_eq!(n.storage_counts(), (1, 1));
        let next = n.poll_timeout().unwrap();
        assert!(
            next <= t0 + Duration::from_secs(60),
            "{:?}",
            next.duration_since(t0)
        );
        n.handle_timeout(t0 + Duration::from_secs(61));
        assert_eq!(n.storage_counts(), (0, 0));
    }

    /// One address sending 100,000 listens (a valid token, a new node id, key and sid each,
    /// within its request quota) registers at most its share; honest peers still listen and
    /// get.
    #[test]
    fn a_listen_flood_from_one_address_is_bounded() {
        let t0 = Instant::now();
        let mut n = Node::new(Config::default());
        let attacker: SocketAddr = "10.9.9.9:4222".parse().unwrap();
        let token = n.token_for(n.secrets[0], &attacker);
        let listen = |i: u32, token: Vec<u8>| {
            Message::new(
                i,
                MessageKind::Query(Method::Listen),
                Body {
                    id: InfoHash::get(&i.to_be_bytes()),
                    key: Some(InfoHash::get(&(i ^ 0x5555_5555).to_be_bytes())),
                    sid: Some(i),
                    token: Some(token),
                    ..Body::default()
                },
            )
            .encode()
        };
        for i in 0..100_000u32 {
            let now = t0 + Duration::from_millis(u64::from(i));
            n.handle_datagram(now, attacker, &listen(i, token.clone()));
            while n.poll_transmit().is_some() {}
        }
        let kept = n.state_sizes().listeners;
        assert!(
            kept <= MAX_LISTENERS_PER_SOURCE,
            "{kept} listeners from one address"
        );
        // An honest peer elsewhere still gets its listen and its values.
        let now = t0 + Duration::from_secs(101);
        let honest: SocketAddr = "10.1.2.3:4222".parse().unwrap();
        let key = InfoHash::get(b"honest");
        n.put(now, key, Value::new("kept"));
        while n.poll_transmit().is_some() {}
        let token = n.token_for(n.secrets[0], &honest);
        n.handle_datagram(now, honest, &listen(7_000_000, token));
        let get = Message::new(
            9,
            MessageKind::Query(Method::Get),
            Body {
                id: InfoHash([3; 20]),
                key: Some(key),
                ..Body::default()
            },
        );
        n.handle_datagram(now, honest, &get.encode());
        let answers: Vec<Message> = std::iter::from_fn(|| n.poll_transmit())
            .filter_map(|t| Message::decode(&t.data).ok())
            .collect();
        assert!(
            answers
                .iter()
                .all(|m| !matches!(m.kind, MessageKind::Error(..))),
            "honest requests refused: {answers:?}"
        );
        assert!(
            answers.iter().any(|m| m
                .body
                .values
                .iter()
                .any(|v| matches!(v, ValueEntry::Inline(v) if v.data == b"kept".to_vec()))),
            "the honest get is answered with the value"
        );
    }

    /// Delivers what two nodes at `addrs` send each other until they are quiet; every
    /// datagram sent, in order.
    fn exchange(
        nodes: &mut [Node; 2],
        addrs: &[SocketAddr; 2],
        now: Instant,
    ) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut sent = Vec::new();
        loop {
            let mut moved = false;
            for i in 0..2 {
                while let Some(t) = nodes[i].poll_transmit() {
                    moved = true;
                    if let Some(j) = addrs.iter().position(|a| *a == t.to) {
                        nodes[j].handle_datagram(now, addrs[i], &t.data);
                    }
                    sent.push((t.to, t.data));
                }
            }
            if !moved {
                return sent;
            }
        }
    }

    /// Every datagram of two nodes meeting, putting and getting a value, and running their
    /// timers for an hour, the nodes drawing from generators seeded with `seed`.
    fn seeded_run(seed: u8) -> Vec<(SocketAddr, Vec<u8>)> {
        use crate::random::SeededRandom;
        let t0 = Instant::now();
        let unix = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let addrs: [SocketAddr; 2] = [
            "10.0.0.1:4222".parse().unwrap(),
            "10.0.0.2:4222".parse().unwrap(),
        ];
        let mut nodes = [0, 1].map(|i| {
            let mut n = Node::with_random(Config::default(), SeededRandom::new([seed + i; 32]));
            n.set_unix_time(t0, unix);
            n
        });
        let mut sent = Vec::new();
        let mut now = t0;
        let pump = |nodes: &mut [Node; 2], now: Instant, sent: &mut Vec<(SocketAddr, Vec<u8>)>| {
            sent.extend(exchange(nodes, &addrs, now));
        };
        nodes[0].bootstrap(now, addrs[1]);
        pump(&mut nodes, now, &mut sent);
        nodes[0].put(now, InfoHash::get(b"key"), Value::new("hello"));
        pump(&mut nodes, now, &mut sent);
        nodes[1].get(now, InfoHash::get(b"key"), None);
        pump(&mut nodes, now, &mut sent);
        while now < t0 + Duration::from_secs(3600) {
            let next = nodes.iter().filter_map(Node::poll_timeout).min();
            now = next.unwrap_or(now).max(now + Duration::from_millis(1));
            for n in &mut nodes {
                n.handle_timeout(now);
            }
            pump(&mut nodes, now, &mut sent);
        }
        assert_eq!(nodes[0].unix_time(now), 1_700_000_000 + 3600);
        sent
    }

    /// A listen takes pushes only from the node it was sent to, at that node's address: a
    /// push naming that node's id and the listen's `sid` from elsewhere shows nothing.
    #[test]
    fn a_listen_takes_pushes_from_its_storing_node_only() {
        use crate::random::SeededRandom;
        let now = Instant::now();
        let addrs: [SocketAddr; 2] = [
            "10.0.0.1:4222".parse().unwrap(),
            "10.0.0.2:4222".parse().unwrap(),
        ];
        let mut nodes =
            [0u8, 1].map(|i| Node::with_random(Config::default(), SeededRandom::new([i; 32])));
        let pump = |nodes: &mut [Node; 2]| {
            exchange(nodes, &addrs, now);
        };
        nodes[0].bootstrap(now, addrs[1]);
        pump(&mut nodes);
        let key = InfoHash::get(b"key");
        let op = nodes[0].listen(now, key, None);
        pump(&mut nodes);
        let values = |n: &mut Node| {
            std::iter::from_fn(|| n.poll_event())
                .filter(|e| matches!(e, Event::Value { op: o, .. } if *o == op))
                .count()
        };
        values(&mut nodes[0]);
        // The storing node's own push arrives.
        nodes[1].put(now, key, Value::new("honest"));
        pump(&mut nodes);
        assert_eq!(values(&mut nodes[0]), 1, "the honest push is shown");
        // A forged push: the storing node's id and the right sid, from another address.
        let sid = nodes[0].listen_sid(op).unwrap();
        let forged = Message::new(
            nodes[0].new_tid(),
            MessageKind::Query(Method::Update),
            Body {
                id: nodes[1].id(),
                key: Some(key),
                sid: Some(sid),
                values: vec![ValueEntry::Inline(Value {
                    id: 77,
                    ..Value::new("forged")
                })],
                ..Body::default()
            },
        );
        nodes[0].handle_datagram(now, "10.6.6.6:4222".parse().unwrap(), &forged.encode());
        // The same as a legacy push (tid = sid).
        let legacy = Message::new(
            sid,
            MessageKind::LegacyUpdate,
            Body {
                id: nodes[1].id(),
                values: vec![ValueEntry::Inline(Value {
                    id: 78,
                    ..Value::new("forged")
                })],
                ..Body::default()
            },
        );
        nodes[0].handle_datagram(now, "10.6.6.6:4222".parse().unwrap(), &legacy.encode());
        assert_eq!(values(&mut nodes[0]), 0, "no forged value shown");
    }

    #[test]
    fn stays_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Node>();
    }

    #[test]
    fn same_seed_same_bytes() {
        let first = seeded_run(1);
        assert!(first.len() > 10, "{} datagrams", first.len());
        assert_eq!(first, seeded_run(1));
        assert_ne!(first, seeded_run(3));
    }

    #[test]
    fn unix_time_is_reckoned_from_the_callers_clock() {
        let t0 = Instant::now();
        let mut n = Node::with_random(Config::default(), crate::random::SeededRandom::new([0; 32]));
        n.set_unix_time(
            t0 + Duration::from_secs(10),
            UNIX_EPOCH + Duration::from_secs(100),
        );
        assert_eq!(n.unix_time(t0 + Duration::from_secs(15)), 105);
        assert_eq!(n.unix_time(t0), 90);
        n.set_unix_time(t0, UNIX_EPOCH - Duration::from_secs(5));
        assert_eq!(n.unix_time(t0 + Duration::from_secs(2)), -3);
    }
}
