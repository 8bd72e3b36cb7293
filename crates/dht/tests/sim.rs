//! An in-process network of sans-IO nodes with virtual time, latency and loss.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pamoja_dht::node::{Config, Event, Node, OpId};
use pamoja_dht::{InfoHash, Value};

/// A small deterministic PRNG (xorshift) so runs are reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A datagram in flight: (delivery time, sequence, destination index, source, bytes).
type InFlight = Reverse<(Instant, u64, usize, SocketAddr, Vec<u8>)>;

struct Sim {
    now: Instant,
    nodes: Vec<Node>,
    addrs: Vec<SocketAddr>,
    by_addr: HashMap<SocketAddr, usize>,
    queue: BinaryHeap<InFlight>,
    seq: u64,
    loss_permille: u64,
    rng: Rng,
    events: Vec<(usize, Event)>,
    datagrams: u64,
    /// Links deliver in order, like UDP on one path usually does.
    last_delivery: HashMap<(usize, usize), Instant>,
}

impl Sim {
    fn new(n: usize, loss_permille: u64, seed: u64) -> Self {
        let mut nodes = Vec::new();
        let mut addrs = Vec::new();
        let mut by_addr = HashMap::new();
        for i in 0..n {
            let addr: SocketAddr = format!(
                "127.{}.{}.{}:4222",
                (i / 62500) % 250,
                (i / 250) % 250,
                i % 250 + 1
            )
            .parse()
            .unwrap();
            nodes.push(Node::new(Config::default()));
            by_addr.insert(addr, i);
            addrs.push(addr);
        }
        Self {
            now: Instant::now(),
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
        }
    }

    fn flush(&mut self, i: usize) {
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
            self.events.push((i, e));
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        for i in 0..self.nodes.len() {
            self.flush(i);
        }
        loop {
            let next_packet = self.queue.peek().map(|Reverse((t, ..))| *t);
            let (timer_node, next_timer) = self
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| n.poll_timeout().map(|t| (i, t)))
                .min_by_key(|(_, t)| *t)
                .map_or((None, None), |(i, t)| (Some(i), Some(t)));
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
                let Reverse((_, _, to, from, data)) = self.queue.pop().unwrap();
                self.nodes[to].handle_datagram(self.now, from, &data);
                self.flush(to);
            } else if let Some(i) = timer_node {
                self.nodes[i].handle_timeout(self.now);
                self.flush(i);
            }
        }
    }

    fn take_events(&mut self, node: usize, op: OpId) -> Vec<Event> {
        let (mine, rest): (Vec<_>, Vec<_>) = self.events.drain(..).partition(|(i, e)| {
            *i == node
                && match e {
                    Event::Value { op: o, .. }
                    | Event::GetDone { op: o, .. }
                    | Event::PutDone { op: o, .. } => *o == op,
                    Event::Expired { op: o, .. } | Event::Listening { op: o, .. } => *o == op,
                }
        });
        self.events = rest;
        mine.into_iter().map(|(_, e)| e).collect()
    }
}

fn network(n: usize, loss_permille: u64, seed: u64) -> Sim {
    let mut sim = Sim::new(n, loss_permille, seed);
    let boot = sim.addrs[0];
    for i in 1..n {
        let now = sim.now;
        sim.nodes[i].bootstrap(now, boot);
        sim.flush(i);
        sim.run_for(Duration::from_millis(20));
    }
    sim.run_for(Duration::from_secs(30));
    sim
}

/// Puts `keys` values through random nodes and reads each back from another random node.
fn put_get(sim: &mut Sim, keys: usize) -> (usize, usize) {
    let n = sim.nodes.len() as u64;
    let mut expected = Vec::new();
    for k in 0..keys {
        let key = InfoHash::get(format!("key {k}").as_bytes());
        let from = sim.rng.below(n) as usize;
        let now = sim.now;
        let op = sim.nodes[from].put(now, key, Value::new(format!("value {k}")));
        sim.flush(from);
        expected.push((key, op, from, format!("value {k}")));
    }
    sim.run_for(Duration::from_secs(15));
    let mut stored = 0;
    for (_, op, from, _) in &expected {
        let ev = sim.take_events(*from, *op);
        if ev
            .iter()
            .any(|e| matches!(e, Event::PutDone { stored, .. } if *stored > 0))
        {
            stored += 1;
        }
    }
    let mut ops = Vec::new();
    for (key, _, from, data) in &expected {
        let mut reader = sim.rng.below(n) as usize;
        if reader == *from {
            reader = (reader + 1) % n as usize;
        }
        let now = sim.now;
        let op = sim.nodes[reader].get(now, *key, None);
        sim.flush(reader);
        ops.push((reader, op, data.clone()));
    }
    sim.run_for(Duration::from_secs(15));
    let mut found = 0;
    for (reader, op, data) in ops {
        let ev = sim.take_events(reader, op);
        let done = ev.iter().any(|e| matches!(e, Event::GetDone { .. }));
        let has = ev
            .iter()
            .any(|e| matches!(e, Event::Value { value, .. } if value.data == data.as_bytes()));
        if done && has {
            found += 1;
        }
    }
    (stored, found)
}

#[test]
fn every_value_is_found_without_loss() {
    let mut sim = network(200, 0, 0x9e3779b97f4a7c15);
    let (stored, found) = put_get(&mut sim, 100);
    assert_eq!(stored, 100);
    assert_eq!(found, 100, "get success at 0% loss");
    let (good, known, ..) = sim.nodes[150].node_counts(sim.now);
    assert!(
        good >= 8 && known >= 20,
        "routing table filled: {good} good of {known}"
    );
}

#[test]
fn values_are_found_with_five_percent_loss() {
    let mut sim = network(200, 50, 0x2545f4914f6cdd1d);
    let (_, found) = put_get(&mut sim, 100);
    assert!(found >= 99, "get success at 5% loss: {found}/100");
}

#[test]
fn large_values_travel_in_fragments() {
    let mut sim = network(30, 0, 7);
    let key = InfoHash::get(b"big");
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let now = sim.now;
    let op = sim.nodes[3].put(now, key, Value::new(data.clone()));
    sim.flush(3);
    sim.run_for(Duration::from_secs(10));
    assert!(
        sim.take_events(3, op)
            .iter()
            .any(|e| matches!(e, Event::PutDone { stored, .. } if *stored > 0))
    );
    let now = sim.now;
    let op = sim.nodes[20].get(now, key, None);
    sim.flush(20);
    sim.run_for(Duration::from_secs(10));
    let ev = sim.take_events(20, op);
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Value { value, .. } if value.data == data)),
        "{ev:?}"
    );
}

#[test]
fn listen_sees_new_values_and_other_networks_stay_apart() {
    let mut sim = network(30, 0, 11);
    let key = InfoHash::get(b"listened");
    let now = sim.now;
    let lop = sim.nodes[5].listen(now, key, None);
    sim.flush(5);
    sim.run_for(Duration::from_secs(5));
    let now = sim.now;
    sim.nodes[9].put(now, key, Value::new("hello"));
    sim.flush(9);
    sim.run_for(Duration::from_secs(5));
    let ev = sim.take_events(5, lop);
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Value { value, .. } if value.data == b"hello")),
        "{ev:?}"
    );

    // A node of another network id learns nothing from this one.
    let mut other = Node::new(Config {
        network: 42,
        ..Config::default()
    });
    let now = sim.now;
    other.bootstrap(now, sim.addrs[0]);
    let ping = other.poll_transmit().unwrap();
    sim.nodes[0].handle_datagram(now, "127.9.9.9:4222".parse().unwrap(), &ping.data);
    assert!(
        sim.nodes[0].poll_transmit().is_none(),
        "a node of network 42 gets no answer"
    );
}

#[test]
fn values_expire_at_their_type_lifetime() {
    let mut sim = network(30, 0, 13);
    let key = InfoHash::get(b"short-lived");
    let now = sim.now;
    // Type 5 (ICE candidates) lives one minute, type 0 ten.
    sim.nodes[2].put(
        now,
        key,
        Value {
            value_type: 5,
            ..Value::new("ice")
        },
    );
    sim.nodes[2].put(now, key, Value::new("user data"));
    sim.flush(2);
    let lop = sim.nodes[7].listen(now, key, None);
    sim.flush(7);
    let found = |sim: &mut Sim, reader: usize| -> Vec<Vec<u8>> {
        let now = sim.now;
        let op = sim.nodes[reader].get(now, key, None);
        sim.flush(reader);
        sim.run_for(Duration::from_secs(5));
        let mut data: Vec<Vec<u8>> = sim
            .take_events(reader, op)
            .into_iter()
            .filter_map(|e| {
                if let Event::Value { value, .. } = e {
                    Some(value.data)
                } else {
                    None
                }
            })
            .collect();
        data.sort();
        data
    };
    sim.run_for(Duration::from_secs(50));
    assert_eq!(
        found(&mut sim, 20),
        vec![b"ice".to_vec(), b"user data".to_vec()]
    );
    sim.run_for(Duration::from_secs(10)); // 65 s after the put
    assert_eq!(found(&mut sim, 21), vec![b"user data".to_vec()]);
    let listened = sim.take_events(7, lop);
    assert!(
        listened.iter().any(|e| matches!(e, Event::Expired { .. })),
        "the listener is told: {listened:?}"
    );
    sim.run_for(Duration::from_secs(540)); // 10 min 10 s after the put
    assert!(found(&mut sim, 22).is_empty());
    assert!(
        sim.nodes.iter().all(|n| n.storage_counts().1 == 0),
        "every node dropped them"
    );
}

#[test]
fn thousand_nodes() {
    let mut sim = network(1000, 0, 0xdeadbeef);
    let before = sim.datagrams;
    let (stored, found) = put_get(&mut sim, 200);
    let per_op = (sim.datagrams - before) as f64 / 400.0;
    assert_eq!(stored, 200);
    assert_eq!(found, 200, "get success at 0% loss in 1,000 nodes");
    assert!(per_op < 200.0, "{per_op:.0} datagrams per operation");
}
