//! Where the state machines' randomness comes from.
//!
//! The agent draws credentials, tie-breakers, transaction ids and timer jitter from a
//! [`Random`] given at construction, as quinn-proto takes a seed: [`OsRandom`] in
//! production, [`SeededRandom`] where a run must be reproduced byte for byte (tests,
//! simulations, fuzzing). pamoja-dht's node takes the same source (`pamoja_dht::random`).
//!
//! ```
//! use pamoja_ice::random::{Random, SeededRandom};
//!
//! let (mut a, mut b) = (SeededRandom::new([7; 32]), SeededRandom::new([7; 32]));
//! let (mut x, mut y) = ([0u8; 40], [0u8; 40]);
//! a.fill(&mut x);
//! b.fill(&mut y);
//! assert_eq!(x, y);
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::{digest, hmac};

/// A source of random bytes. `Send` and `Sync`, so that the machines holding one stay so.
pub trait Random: Send + Sync {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);

    /// A random `u64`.
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
}

impl<R: Random + ?Sized> Random for Box<R> {
    fn fill(&mut self, buf: &mut [u8]) {
        (**self).fill(buf);
    }
}

impl<R: Random + ?Sized> Random for &mut R {
    fn fill(&mut self, buf: &mut [u8]) {
        (**self).fill(buf);
    }
}

impl fmt::Debug for dyn Random {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn Random")
    }
}

/// The operating system's generator, through aws-lc-rs.
///
/// Should it ever fail, the failure is logged and the bytes come from HMAC-SHA256 keyed
/// with what the process can still gather (the clock in nanoseconds, its id, a counter):
/// never zeroes.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        if aws_lc_rs::rand::fill(buf).is_err() {
            tracing::error!(
                "the system random generator failed; using a generator keyed by clock and process"
            );
            fallback_fill(buf);
        }
    }
}

/// Bytes for when the system generator fails: not zeroes, and different on every call.
fn fallback_fill(buf: &mut [u8]) {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&nanos.to_le_bytes());
    ctx.update(&CALLS.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    ctx.update(&std::process::id().to_le_bytes());
    ctx.update(&(buf.as_ptr() as usize).to_le_bytes());
    let mut seed = [0u8; 32];
    seed.copy_from_slice(ctx.finish().as_ref());
    SeededRandom::new(seed).fill(buf);
}

/// A deterministic generator: HMAC-SHA256 keyed with a 32-byte seed, in counter mode.
///
/// Two generators with the same seed give the same bytes. With a secret, uniformly random
/// seed the output is as unpredictable as HMAC-SHA256 is a pseudo-random function.
#[derive(Clone)]
pub struct SeededRandom {
    key: hmac::Key,
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeededRandom {
    /// A generator whose output is fixed by `seed`.
    pub fn new(seed: [u8; 32]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &seed),
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }
}

impl fmt::Debug for SeededRandom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeededRandom")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Random for SeededRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            if self.used == self.block.len() {
                let tag = hmac::sign(&self.key, &self.counter.to_le_bytes());
                self.block.copy_from_slice(tag.as_ref());
                self.counter = self.counter.wrapping_add(1);
                self.used = 0;
            }
            *b = self.block[self.used];
            self.used += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_is_deterministic_across_split_reads() {
        let mut a = SeededRandom::new([1; 32]);
        let mut b = SeededRandom::new([1; 32]);
        let mut whole = [0u8; 100];
        a.fill(&mut whole);
        let mut parts = [0u8; 100];
        let (x, y) = parts.split_at_mut(33);
        b.fill(x);
        b.fill(y);
        assert_eq!(whole, parts);
        assert_ne!(whole, [0; 100]);
        let mut c = SeededRandom::new([2; 32]);
        let mut other = [0u8; 100];
        c.fill(&mut other);
        assert_ne!(whole, other);
    }

    #[test]
    fn fallback_is_not_zeroes_nor_repeated() {
        let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
        fallback_fill(&mut x);
        fallback_fill(&mut y);
        assert_ne!(x, [0; 32]);
        assert_ne!(x, y);
    }

    #[test]
    fn os_random_fills() {
        let mut x = [0u8; 32];
        OsRandom.fill(&mut x);
        assert_ne!(x, [0; 32]);
    }
}
