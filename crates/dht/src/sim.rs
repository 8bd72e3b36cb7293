//! An in-process network of sans-IO nodes with virtual time, latency and loss: for tests,
//! scale runs and benchmarks. Nothing here touches a socket or the real clock.
//!
//! ```
//! use std::time::Duration;
//! use pamoja_dht::sim::Sim;
//! let mut sim = Sim::bootstrapped(50, 0, 1);
//! let report = sim.put_get(20);
//! assert_eq!(report.found, 20);
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::infohash::InfoHash;
use crate::node::{Config, Event, Node, OpId};
use crate::random::SeededRandom;
use crate::value::Value;

/// A small deterministic PRNG (xorshift) so runs are reproducible.
#[derive(Debug)]
pub struct Rng(pub u64);
impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A datagram in flight: (delivery time, sequence, destination index, source, bytes).
type InFlight = Reverse<(Instant, u64, usize, SocketAddr, Vec<u8>)>;

/// The simulated network.
#[derive(Debug)]
pub struct Sim {
    /// Virtual time.
    pub now: Instant,
    /// The nodes.
    pub nodes: Vec<Node>,
    /// Their addresses.
    pub addrs: Vec<SocketAddr>,
    by_addr: HashMap<SocketAddr, usize>,
    queue: BinaryHeap<InFlight>,
    seq: u64,
    loss_permille: u64,
    /// The random source (latency, loss, choices).
    pub rng: Rng,
    events: Vec<(usize, Instant, Event)>,
    /// Datagrams sent so far.
    pub datagrams: u64,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Links deliver in order, like UDP on one path usually does.
    last_delivery: HashMap<(usize, usize), Instant>,
    /// Nodes that are off: they neither receive nor run timers.
    down: HashSet<usize>,
}

/// The Unix time (seconds) at which a simulation starts, for every node: 2023-11-14.
pub const SIM_UNIX_START: u64 = 1_700_000_000;

impl Sim {
    /// `n` nodes, `loss_permille` of datagrams lost, seeded randomness (the nodes' own too:
    /// the same seed gives the same run).
    pub fn new(n: usize, loss_permille: u64, seed: u64) -> Self {
        Self::with_config(n, loss_permille, seed, |_| Config::default())
    }

    /// Like [`Sim::new`], node `i` configured with `config(i)`.
    pub fn with_config(
        n: usize,
        loss_permille: u64,
        seed: u64,
        config: impl Fn(usize) -> Config,
    ) -> Self {
        let mut nodes = Vec::new();
        let mut addrs = Vec::new();
        let mut by_addr = HashMap::new();
        let now = Instant::now();
        // A fixed wall clock: runs are reproduced byte for byte.
        let unix = std::time::UNIX_EPOCH + Duration::from_secs(SIM_UNIX_START);
        for i in 0..n {
            // 127.a.b.c: loopback addresses, one per node, never sent to (all in memory).
            let octet = |x: usize| (x % 250) as u8;
            let ip = std::net::Ipv4Addr::new(127, octet(i / 62500), octet(i / 250), octet(i) + 1);
            let addr = SocketAddr::from((ip, 4222));
            // Each node's randomness follows from the seed; Unix time moves with virtual time.
            let mut node_seed = [0u8; 32];
            node_seed[..8].copy_from_slice(&seed.to_le_bytes());
            node_seed[8..16].copy_from_slice(&(i as u64).to_le_bytes());
            let mut node = Node::with_random(config(i), SeededRandom::new(node_seed));
            node.set_unix_time(now, unix);
            nodes.push(node);
            by_addr.insert(addr, i);
            addrs.push(addr);
        }
        Self {
            now,
            nodes,
            addrs,
            by_addr,
            queue: BinaryHeap::new(),
            seq: 0,
            loss_permille,
            rng: Rng(seed),
            events: Vec::new(),
            datagrams: 0,
            last_delivery: HashMap::new(),
            timers: BinaryHeap::new(),
            down: HashSet::new(),
        }
    }

    /// Turns node `i` off (it hears nothing and does nothing) or back on.
    pub fn set_down(&mut self, i: usize, down: bool) {
        if down {
            self.down.insert(i);
        } else {
            self.down.remove(&i);
            let now = self.now;
            self.nodes[i].handle_timeout(now);
            self.flush(i);
        }
    }

    /// Collects what node `i` wants to send and report.
    pub fn flush(&mut self, i: usize) {
        while let Some(t) = self.nodes[i].poll_transmit() {
            self.datagrams += 1;
            if self.rng.below(1000) < self.loss_permille {
                continue;
            }
            let Some(&to) = self.by_addr.get(&t.to) else {
                continue;
            };
            let mut at = self.now + Duration::from_millis(5 + self.rng.below(45));
            let last = self.last_delivery.entry((i, to)).or_insert(at);
            at = at.max(*last);
            *last = at;
            self.seq += 1;
            self.queue
                .push(Reverse((at, self.seq, to, self.addrs[i], t.data)));
        }
        while let Some(e) = self.nodes[i].poll_event() {
            self.events.push((i, self.now, e));
        }
        if let Some(t) = self.nodes[i].poll_timeout() {
            self.timers.push(Reverse((t, i)));
        }
    }

    /// Runs the network for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next_packet = self.queue.peek().map(|Reverse((t, ..))| *t);
            // Timers are kept in a heap; an entry is stale once the node's deadline moved.
            while let Some(Reverse((t, i))) = self.timers.peek().copied() {
                if self.nodes[i].poll_timeout() == Some(t) {
                    break;
                }
                self.timers.pop();
            }
            let (timer_node, next_timer) = self
                .timers
                .peek()
                .map_or((None, None), |Reverse((t, i))| (Some(*i), Some(*t)));
            let next = match (next_packet, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).unwrap_or(end),
            };
            if next > end {
                self.now = end;
                return;
            }
            self.now = self.now.max(next);
            if next_packet == Some(next) {
                if let Some(Reverse((_, _, to, from, data))) = self.queue.pop() {
                    if self.down.contains(&to) {
                        continue;
                    }
                    self.nodes[to].handle_datagram(self.now, from, &data);
                    self.flush(to);
                }
            } else if let Some(i) = timer_node {
                self.timers.pop();
                if self.down.contains(&i) {
                    continue;
                }
                self.nodes[i].handle_timeout(self.now);
                self.flush(i);
            }
        }
    }

    /// Removes and returns the events of operation `op` on node `node`.
    pub fn take_events(&mut self, node: usize, op: OpId) -> Vec<Event> {
        self.take_timed_events(node, op)
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }

    /// [`Self::take_events`] with the virtual time each event was reported.
    pub fn take_timed_events(&mut self, node: usize, op: OpId) -> Vec<(Instant, Event)> {
        let of_op = |e: &Event| match e {
            Event::Value { op: o, .. }
            | Event::GetDone { op: o, .. }
            | Event::PutDone { op: o, .. } => *o == op,
            Event::Expired { op: o, .. } | Event::Listening { op: o, .. } => *o == op,
        };
        let (mine, rest): (Vec<_>, Vec<_>) = self
            .events
            .drain(..)
            .partition(|(i, _, e)| *i == node && of_op(e));
        self.events = rest;
        mine.into_iter().map(|(_, t, e)| (t, e)).collect()
    }
}

/// What [`Sim::put_get`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Puts acknowledged by at least one node.
    pub stored: usize,
    /// Gets that finished with the value.
    pub found: usize,
    /// Virtual time from each successful get to its completion.
    pub get_times: Vec<Duration>,
    /// Datagrams sent during the get phase, per get.
    pub datagrams_per_get: f64,
}

impl Report {
    /// The `q`-quantile (0..=1) of the get times.
    pub fn get_time_quantile(&self, q: f64) -> Duration {
        let mut t = self.get_times.clone();
        t.sort();
        t.get(((t.len().saturating_sub(1)) as f64 * q).round() as usize)
            .copied()
            .unwrap_or_default()
    }
}

impl Sim {
    /// `n` nodes, each bootstrapped from node 0 in turn (20 ms apart), then 30 s to settle.
    pub fn bootstrapped(n: usize, loss_permille: u64, seed: u64) -> Self {
        let mut sim = Sim::new(n, loss_permille, seed);
        sim.join_all();
        sim
    }

    /// Bootstraps every node from node 0 in turn (20 ms apart), then lets 30 s pass.
    pub fn join_all(&mut self) {
        let boot = self.addrs[0];
        for i in 1..self.nodes.len() {
            let now = self.now;
            self.nodes[i].bootstrap(now, boot);
            self.flush(i);
            self.run_for(Duration::from_millis(20));
        }
        self.run_for(Duration::from_secs(30));
    }

    /// Puts `keys` values through random nodes, then reads each back from another random node.
    pub fn put_get(&mut self, keys: usize) -> Report {
        let n = self.nodes.len() as u64;
        let mut expected = Vec::new();
        for k in 0..keys {
            let key = InfoHash::get(format!("key {k}").as_bytes());
            let from = self.rng.below(n) as usize;
            let now = self.now;
            let op = self.nodes[from].put(now, key, Value::new(format!("value {k}")));
            self.flush(from);
            expected.push((key, op, from, format!("value {k}")));
        }
        self.run_for(Duration::from_secs(30));
        let mut stored = 0;
        for (_, op, from, _) in &expected {
            if self
                .take_events(*from, *op)
                .iter()
                .any(|e| matches!(e, Event::PutDone { stored, .. } if *stored > 0))
            {
                stored += 1;
            }
        }
        let before = self.datagrams;
        let mut ops = Vec::new();
        for (key, _, from, data) in &expected {
            let mut reader = self.rng.below(n) as usize;
            if reader == *from {
                reader = (reader + 1) % n as usize;
            }
            let now = self.now;
            let op = self.nodes[reader].get(now, *key, None);
            self.flush(reader);
            ops.push((reader, op, now, data.clone()));
        }
        self.run_for(Duration::from_secs(30));
        let mut found = 0;
        let mut get_times = Vec::new();
        for (reader, op, started, data) in ops {
            let ev = self.take_timed_events(reader, op);
            let done = ev
                .iter()
                .find_map(|(t, e)| matches!(e, Event::GetDone { .. }).then_some(*t));
            let has = ev.iter().any(
                |(_, e)| matches!(e, Event::Value { value, .. } if value.data == data.as_bytes()),
            );
            if let (Some(t), true) = (done, has) {
                found += 1;
                get_times.push(t.duration_since(started));
            }
        }
        let datagrams_per_get = (self.datagrams - before) as f64 / keys.max(1) as f64;
        Report {
            stored,
            found,
            get_times,
            datagrams_per_get,
        }
    }
}
