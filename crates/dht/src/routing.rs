//! Kademlia routing table for one address family: buckets by shared prefix with the own id.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::infohash::InfoHash;

/// Bucket size, replication factor, nodes returned (`TARGET_NODES`).
pub const K: usize = 8;
/// A node is good if it replied within this time...
pub const NODE_GOOD_TIME: Duration = Duration::from_secs(120 * 60);
/// ...and was heard from within this time.
pub const NODE_EXPIRE_TIME: Duration = Duration::from_secs(10 * 60);

/// A node in a full bucket is pinged at most this often.
pub const PING_INTERVAL: Duration = Duration::from_secs(10);

/// A known node.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its id.
    pub id: InfoHash,
    /// Its address.
    pub addr: SocketAddr,
    /// Last time it sent anything.
    pub last_seen: Instant,
    /// Last time it answered one of our requests.
    pub last_reply: Option<Instant>,
    /// A request to it timed out since its last packet.
    pub expired: bool,
    /// When we last pinged it to check it is still there.
    pub pinged: Option<Instant>,
    /// Another address that claimed its id, and when we pinged it there: the node moves
    /// only once that address answers.
    pub moving: Option<(SocketAddr, Instant)>,
}

impl Node {
    /// Good: not expired, replied within 120 min, heard from within 10 min.
    pub fn is_good(&self, now: Instant) -> bool {
        !self.expired
            && self
                .last_reply
                .is_some_and(|t| now.duration_since(t) < NODE_GOOD_TIME)
            && now.duration_since(self.last_seen) < NODE_EXPIRE_TIME
    }
}

/// The routing table: 161 buckets indexed by the number of leading bits shared with our id.
#[derive(Debug)]
pub struct RoutingTable {
    own: InfoHash,
    buckets: Vec<Vec<Node>>,
}

impl RoutingTable {
    /// An empty table around `own`.
    pub fn new(own: InfoHash) -> Self {
        Self {
            own,
            buckets: vec![Vec::new(); 161],
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.buckets.iter().map(Vec::len).sum()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of good nodes.
    pub fn good(&self, now: Instant) -> usize {
        self.buckets
            .iter()
            .flatten()
            .filter(|n| n.is_good(now))
            .count()
    }

    /// Records that `id` at `addr` was heard from; `replied` when it answered a request of
    /// ours. Returns a node the caller should ping: a newcomer that has not answered us yet
    /// (to confirm it), or, when a full bucket has no expired node, its stalest unconfirmed
    /// node (at most every 10 s per node). A full bucket only takes a newcomer in place of an
    /// expired node (one whose request timed out): known nodes are kept, as Kademlia prefers,
    /// so a flood of made-up senders cannot push them out.
    pub fn seen(
        &mut self,
        id: InfoHash,
        addr: SocketAddr,
        now: Instant,
        replied: bool,
    ) -> Option<(InfoHash, SocketAddr)> {
        if id == self.own || id.is_zero() {
            return None;
        }
        let b = &mut self.buckets[self.own.common_bits(&id) as usize];
        if let Some(n) = b.iter_mut().find(|n| n.id == id) {
            if n.addr != addr && !replied && n.is_good(now) {
                // A confirmed node moves only once its new address answers a ping of
                // ours: one packet naming its id from elsewhere must not redirect what we
                // send it (eclipsing a key would cost an attacker one packet per node).
                let due = n
                    .moving
                    .is_none_or(|(a, t)| a != addr || now.duration_since(t) > PING_INTERVAL);
                if due {
                    n.moving = Some((addr, now));
                    return Some((id, addr));
                }
                return None;
            }
            n.addr = addr;
            n.moving = None;
            n.last_seen = now;
            n.expired = false;
            if replied {
                n.last_reply = Some(now);
            }
            return None;
        }
        // One address is one node: a new id from an address the table already holds (a
        // sender making up ids, each of which would be pinged and tried) is ignored while
        // that entry is there and not expired.
        if self
            .buckets
            .iter()
            .flatten()
            .any(|n| n.addr == addr && !n.expired)
        {
            return None;
        }
        let b = &mut self.buckets[self.own.common_bits(&id) as usize];
        // A node id maps to one address (an unconfirmed one follows its latest sender, as in
        // OpenDHT; a confirmed one moves only as above). A newcomer that has not answered
        // us yet is returned to be pinged: until it answers it is not handed out to others,
        // so made-up senders stay unconfirmed.
        let node = Node {
            id,
            addr,
            last_seen: now,
            last_reply: replied.then_some(now),
            expired: false,
            pinged: (!replied).then_some(now),
            moving: None,
        };
        let verify = (!replied).then_some((id, addr));
        if b.len() < K {
            b.push(node);
            return verify;
        }
        if let Some(i) = b.iter().position(|n| n.expired) {
            b[i] = node;
            return verify;
        }
        let stale = b
            .iter_mut()
            .filter(|n| {
                !n.is_good(now)
                    && n.pinged
                        .is_none_or(|t| now.duration_since(t) > PING_INTERVAL)
            })
            .min_by_key(|n| n.last_seen)?;
        stale.pinged = Some(now);
        Some((stale.id, stale.addr))
    }

    /// A request to `id` timed out.
    pub fn failed(&mut self, id: &InfoHash) {
        let b = &mut self.buckets[self.own.common_bits(id) as usize];
        if let Some(n) = b.iter_mut().find(|n| &n.id == id) {
            n.expired = true;
        }
    }

    /// Forgets a node.
    pub fn remove(&mut self, id: &InfoHash) {
        let b = &mut self.buckets[self.own.common_bits(id) as usize];
        b.retain(|n| &n.id != id);
    }

    /// Up to `count` nodes closest to `target`; with `alive_only`, only nodes not expired and
    /// heard from within [`NODE_EXPIRE_TIME`].
    pub fn closest(
        &self,
        target: &InfoHash,
        count: usize,
        now: Instant,
        alive_only: bool,
    ) -> Vec<Node> {
        let alive = |n: &Node| !n.expired && now.duration_since(n.last_seen) < NODE_EXPIRE_TIME;
        let mut all: Vec<&Node> = self
            .buckets
            .iter()
            .flatten()
            .filter(|n| !alive_only || alive(n))
            .collect();
        all.sort_by(|a, b| target.xor_cmp(&a.id, &b.id));
        all.into_iter().take(count).cloned().collect()
    }

    /// Buckets worth refreshing: every bucket from the widest down to one past the deepest
    /// non-empty one that holds fewer than `K` nodes. Returns, per bucket, a random target id
    /// in its range.
    pub fn refresh_targets(&self) -> Vec<InfoHash> {
        self.refresh_targets_from(&mut crate::random::OsRandom)
    }

    /// [`RoutingTable::refresh_targets`], the random ids drawn from `random`.
    pub fn refresh_targets_from(&self, random: &mut dyn crate::random::Random) -> Vec<InfoHash> {
        let deepest = self
            .buckets
            .iter()
            .rposition(|b| !b.is_empty())
            .unwrap_or(0);
        (0..=(deepest + 1).min(159))
            .filter(|&i| self.buckets[i].len() < K)
            .map(|i| {
                let mut t = InfoHash::random_from(random);
                // Keep our first i bits, flip bit i.
                for bit in 0..=i {
                    let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
                    let ours = self.own.0[byte] & mask;
                    let want = if bit == i { ours ^ mask } else { ours };
                    t.0[byte] = (t.0[byte] & !mask) | want;
                }
                t
            })
            .collect()
    }

    /// Every node.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.buckets.iter().flatten()
    }

    /// Drops nodes that are expired and not heard from within [`NODE_EXPIRE_TIME`].
    pub fn expire(&mut self, now: Instant) {
        for b in &mut self.buckets {
            b.retain(|n| !(n.expired && now.duration_since(n.last_seen) > NODE_EXPIRE_TIME));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confirmed_node_moves_only_when_its_new_address_answers() {
        let now = Instant::now();
        let mut t = RoutingTable::new(InfoHash([0; 20]));
        let id = InfoHash([7; 20]);
        let (home, elsewhere): (SocketAddr, SocketAddr) = (
            "10.0.0.1:4222".parse().unwrap(),
            "10.6.6.6:4222".parse().unwrap(),
        );
        assert_eq!(t.seen(id, home, now, true), None, "a reply confirms it");
        let addr_of = |t: &RoutingTable| t.nodes().find(|n| n.id == id).unwrap().addr;
        // A query naming its id from elsewhere: the new address is to be pinged, the node
        // stays where it answered.
        let later = now + Duration::from_secs(1);
        assert_eq!(t.seen(id, elsewhere, later, false), Some((id, elsewhere)));
        assert_eq!(addr_of(&t), home);
        assert_eq!(t.closest(&id, 1, later, true)[0].addr, home);
        // More packets from there change nothing and ask no second ping soon.
        for i in 0..100 {
            let at = later + Duration::from_millis(i);
            assert_eq!(t.seen(id, elsewhere, at, false), None);
        }
        assert_eq!(addr_of(&t), home);
        // Its own address keeps it fresh.
        assert_eq!(t.seen(id, home, later, false), None);
        assert_eq!(addr_of(&t), home);
        // The new address answered our ping: now it moves.
        assert_eq!(t.seen(id, elsewhere, later, true), None);
        assert_eq!(addr_of(&t), elsewhere);
    }

    #[test]
    fn one_address_brings_one_node() {
        let t0 = Instant::now();
        let mut t = RoutingTable::new(InfoHash([0; 20]));
        let flooder: SocketAddr = "10.6.6.6:4222".parse().unwrap();
        let pings = (0..1000u32)
            .filter_map(|i| t.seen(InfoHash::get(&i.to_be_bytes()), flooder, t0, false))
            .count();
        // A thousand made-up ids from one socket used to fill every bucket with room and be
        // pinged one by one.
        assert_eq!((t.len(), pings), (1, 1));
        // Once that entry expired (its ping timed out), another id may take the address.
        let first = t.nodes().next().unwrap().id;
        t.failed(&first);
        assert!(t.seen(InfoHash::get(b"next"), flooder, t0, false).is_some());
        // Nodes at other ports of the same host are other nodes.
        let other: SocketAddr = "10.6.6.6:4223".parse().unwrap();
        assert!(t.seen(InfoHash::get(b"other"), other, t0, false).is_some());
    }

    #[test]
    fn closest_and_buckets() {
        let now = Instant::now();
        let own = InfoHash([0; 20]);
        let mut t = RoutingTable::new(own);
        for i in 1..=40u8 {
            let mut id = [0u8; 20];
            id[0] = i;
            t.seen(
                InfoHash(id),
                format!("127.0.0.1:{}", 5000 + u16::from(i))
                    .parse()
                    .unwrap(),
                now,
                true,
            );
        }
        // Buckets by shared prefix: ids 0x20..0x28 (9 ids, 2 shared bits) overflow one bucket.
        assert!(t.len() < 40);
        // Newcomers are returned to be confirmed by a ping; a full bucket keeps its nodes.
        let full = (0..20u8).map(|i| {
            let mut id = [0u8; 20];
            id[0] = 0x40 | i;
            InfoHash(id)
        });
        let mut asked = Vec::new();
        for (i, id) in full.enumerate() {
            if let Some(p) = t.seen(
                id,
                format!("127.0.1.1:{}", 6000 + i).parse().unwrap(),
                now,
                false,
            ) {
                asked.push(p);
            }
        }
        assert!(!asked.is_empty());
        let pinged = asked[0].0;
        t.failed(&pinged);
        let mut newcomer = [0u8; 20];
        newcomer[0] = 0x7f;
        // The newcomer takes the expired node's place and is returned to be confirmed.
        let addr: SocketAddr = "127.0.2.1:1".parse().unwrap();
        assert_eq!(
            t.seen(InfoHash(newcomer), addr, now, false),
            Some((InfoHash(newcomer), addr))
        );
        assert!(
            t.nodes().any(|n| n.id == InfoHash(newcomer)),
            "the expired node made room"
        );
        assert!(!t.nodes().any(|n| n.id == pinged));
        let mut target = [0u8; 20];
        target[0] = 3;
        let c = t.closest(&InfoHash(target), 3, now, true);
        assert_eq!(c[0].id.0[0], 3);
        assert_eq!(c[1].id.0[0], 2);
        assert_eq!(c[2].id.0[0], 1);
        t.failed(&c[0].id);
        assert_eq!(t.closest(&InfoHash(target), 1, now, true)[0].id.0[0], 2);
        for target in t.refresh_targets() {
            let bucket = InfoHash([0; 20]).common_bits(&target) as usize;
            assert!(t.buckets[bucket].len() < K);
        }
        t.seen(InfoHash(target), "127.0.0.1:1".parse().unwrap(), now, false);
        assert_eq!(
            t.closest(&InfoHash(target), 1, now, true)[0].id.0[0],
            3,
            "a packet revives an expired node"
        );
    }
}
