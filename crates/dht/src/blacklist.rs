//! Addresses whose packets are ignored: nodes that answered a `get` or `find` without a write
//! token, as OpenDHT blacklists them. Bounded, and entries expire, so a node that was restarted
//! behind the same address is heard again after a while.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most addresses held; the oldest entry makes room for a new one.
pub const MAX_BLACKLISTED: usize = 1024;
/// How long an address stays blacklisted.
pub const BLACKLIST_TIME: Duration = Duration::from_secs(60 * 60);

/// Blacklisted addresses and when they were added.
#[derive(Debug, Default)]
pub struct Blacklist {
    entries: HashMap<SocketAddr, Instant>,
}

impl Blacklist {
    /// Adds `addr` at `now`.
    pub fn add(&mut self, addr: SocketAddr, now: Instant) {
        if self.entries.len() >= MAX_BLACKLISTED && !self.entries.contains_key(&addr) {
            self.entries
                .retain(|_, t| now.saturating_duration_since(*t) < BLACKLIST_TIME);
            if self.entries.len() >= MAX_BLACKLISTED {
                if let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, t)| **t)
                    .map(|(a, _)| *a)
                {
                    self.entries.remove(&oldest);
                }
            }
        }
        self.entries.insert(addr, now);
    }

    /// Whether packets from `addr` are to be ignored at `now`.
    pub fn contains(&self, addr: &SocketAddr, now: Instant) -> bool {
        self.entries
            .get(addr)
            .is_some_and(|t| now.saturating_duration_since(*t) < BLACKLIST_TIME)
    }

    /// Addresses held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no address is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_list_is_bounded() {
        let t0 = Instant::now();
        let mut b = Blacklist::default();
        let a: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        b.add(a, t0);
        assert!(b.contains(&a, t0 + Duration::from_secs(10)));
        assert!(!b.contains(&"127.0.0.1:4001".parse().unwrap(), t0));
        assert!(!b.contains(&a, t0 + BLACKLIST_TIME));
        for p in 0..5000u16 {
            b.add(
                SocketAddr::from(([127, 0, 0, 2], p)),
                t0 + Duration::from_millis(p.into()),
            );
        }
        assert_eq!(b.len(), MAX_BLACKLISTED);
        // The newest are kept.
        assert!(b.contains(
            &SocketAddr::from(([127, 0, 0, 2], 4999)),
            t0 + Duration::from_secs(5)
        ));
    }
}
