//! Rate limiting of incoming requests, as OpenDHT does it: a global quota and a quota per
//! source (an IPv4 address, or an IPv6 /64; the port does not matter).
//!
//! OpenDHT keeps the time of every request of the last second; this keeps a token bucket per
//! source instead: the same sustained rate and the same one-second burst, in constant memory
//! per source. Sources are tracked up to [`MAX_SOURCES`]; idle ones are forgotten.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::time::Instant;

/// OpenDHT's default global quota, requests per second (`MAX_REQUESTS_PER_SEC`).
pub const GLOBAL_PER_SEC: u32 = 8192;
/// OpenDHT's default quota per source: an eighth of the global one.
pub const SOURCE_PER_SEC: u32 = GLOBAL_PER_SEC / 8;
/// Most sources tracked at once. Past this, new sources are held to the global quota only.
pub const MAX_SOURCES: usize = 16_384;

/// Requests per second allowed in total and per source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// All sources together.
    pub global: u32,
    /// One IPv4 address or IPv6 /64.
    pub per_source: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            global: GLOBAL_PER_SEC,
            per_source: SOURCE_PER_SEC,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(quota: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(quota),
            last: now,
        }
    }

    fn refill(&mut self, quota: u32, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(quota)).min(f64::from(quota));
        self.last = now;
    }

    fn take(&mut self, quota: u32, now: Instant) -> bool {
        self.refill(quota, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The source a request is counted against.
/// The source an address counts as: an IPv4 address, or the /64 of an IPv6 one.
pub fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(a) => {
            let s = a.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
    }
}

/// Global and per-source request quotas.
#[derive(Debug)]
pub struct RateLimiter {
    limits: Limits,
    global: Bucket,
    sources: HashMap<IpAddr, Bucket>,
    since_prune: u32,
}

impl RateLimiter {
    /// A limiter with full quotas at `now`.
    pub fn new(limits: Limits, now: Instant) -> Self {
        Self {
            limits,
            global: Bucket::full(limits.global, now),
            sources: HashMap::new(),
            since_prune: 0,
        }
    }

    /// Counts one request from `ip`; false when it is over quota and must be dropped.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.since_prune += 1;
        if self.since_prune >= self.limits.per_source || self.sources.len() >= MAX_SOURCES {
            self.prune(now);
        }
        let key = source(ip);
        let quota = self.limits.per_source;
        let tracked = self.sources.len();
        let per_source_ok = match self.sources.entry(key) {
            Entry::Occupied(mut b) => b.get_mut().take(quota, now),
            Entry::Vacant(slot) if tracked < MAX_SOURCES => {
                slot.insert(Bucket::full(quota, now)).take(quota, now)
            }
            Entry::Vacant(_) => true,
        };
        per_source_ok && self.global.take(self.limits.global, now)
    }

    /// Forgets sources whose quota is whole again.
    fn prune(&mut self, now: Instant) {
        self.since_prune = 0;
        let quota = self.limits.per_source;
        self.sources.retain(|_, b| {
            b.refill(quota, now);
            b.tokens < f64::from(quota)
        });
    }

    /// Sources tracked.
    pub fn sources(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_source_is_held_to_its_quota() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(Limits::default(), t0);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let allowed = (0..5000).filter(|_| r.allow(ip, t0)).count();
        assert_eq!(allowed, SOURCE_PER_SEC as usize);
        // Another source is not affected.
        assert!(r.allow("10.0.0.2".parse().unwrap(), t0));
        // Half a second later, half the quota is back.
        let t1 = t0 + Duration::from_millis(500);
        let allowed = (0..5000).filter(|_| r.allow(ip, t1)).count();
        assert_eq!(allowed, SOURCE_PER_SEC as usize / 2);
    }

    #[test]
    fn ipv6_sources_are_grouped_by_prefix() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(Limits::default(), t0);
        let allowed = (0..2000u16)
            .filter(|i| r.allow(format!("2001:db8:1:2::{i:x}").parse().unwrap(), t0))
            .count();
        assert_eq!(allowed, SOURCE_PER_SEC as usize);
        assert!(r.allow("2001:db8:1:3::1".parse().unwrap(), t0));
    }

    #[test]
    fn many_sources_share_the_global_quota_and_memory_stays_bounded() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(Limits::default(), t0);
        let allowed = (0..100_000u32)
            .filter(|i| r.allow(IpAddr::from(i.to_be_bytes()), t0))
            .count();
        assert_eq!(allowed, GLOBAL_PER_SEC as usize);
        assert!(r.sources() <= MAX_SOURCES);
        // A second later the idle sources are forgotten and the quota is whole.
        let t1 = t0 + Duration::from_secs(1);
        assert!(r.allow("10.9.9.9".parse().unwrap(), t1));
        assert!(r.sources() < 100);
    }
}
