//! The node engine fed arbitrary datagram sequences from a few addresses, with time moving:
//! no panic, and its state stays bounded.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pamoja_dht::node::{Config, Node};

/// One input.
pub fn run(data: &[u8]) {
    let mut node = Node::new(Config::default());
    let start = Instant::now();
    let mut now = start;
    node.bootstrap(now, "127.0.0.1:4222".parse().unwrap());
    // Each record: [source byte][time step][len][bytes...]
    let mut rest = data;
    while rest.len() >= 3 {
        let (src, step, len) = (rest[0], rest[1], rest[2] as usize);
        rest = &rest[3..];
        let take = len.min(rest.len());
        let (packet, tail) = rest.split_at(take);
        rest = tail;
        now += Duration::from_millis(u64::from(step) * 20);
        let from: SocketAddr =
            SocketAddr::from(([127, 0, 0, 1 + src % 8], 4222 + u16::from(src % 3)));
        node.handle_datagram(now, from, packet);
        if node.poll_timeout().is_some_and(|t| t <= now) {
            node.handle_timeout(now);
        }
        while node.poll_transmit().is_some() {}
        while node.poll_event().is_some() {}
    }
    let (keys, values) = node.storage_counts();
    assert!(keys <= values.max(1) && values <= data.len());
}
