//! Conversation input from peers: commit message bodies and the git protocol's packets as a
//! fetching client reads them (reference advertisement, ACK/NAK, side-band pack). No panic;
//! a body that parses writes back to one that parses the same.

use pamoja_swarm::body::Body;
use pamoja_swarm::git::{Fetch, PktReader};

/// One input.
pub fn run(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(b) = Body::parse(text) {
            assert_eq!(Body::parse(&b.encode()), Some(b));
        }
    }
    let mut r = PktReader::default();
    r.push(data);
    for _ in 0..64 {
        match r.next_pkt() {
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    let (mut f, _) = Fetch::start(&"a".repeat(40), &"b".repeat(64));
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let _ = f.handle(&data[..split], &[], |_| false);
    let _ = f.handle(&data[split..], &[], |_| false);
}
