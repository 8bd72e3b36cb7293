//! Values stored at keys, with per-type lifetimes and limits.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::infohash::InfoHash;
use crate::value::{MAX_VALUE_SIZE, Value};

/// Values per key at most (`Storage::MAX_VALUES`).
pub const MAX_VALUES_PER_KEY: usize = 65536;
/// Default total storage (`DEFAULT_STORAGE_LIMIT`).
pub const DEFAULT_STORAGE_LIMIT: usize = 64 * 1024 * 1024;

/// Lifetime of a value type (opendht.md §4.4).
pub fn lifetime(value_type: u16) -> Duration {
    Duration::from_secs(match value_type {
        1 | 3 => 5 * 60,
        2 => 15 * 60,
        4 | 8 => 7 * 24 * 3600,
        5 => 60,
        _ => 10 * 60,
    })
}

/// A stored value.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The value.
    pub value: Value,
    /// When it expires.
    pub expiration: Instant,
}

/// What a store did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOutcome {
    /// A new value (listeners are told).
    New,
    /// The same value again: its life was extended.
    Refreshed,
    /// Refused: too big, over the limits, or already expired.
    Refused,
    /// Refused: a value with this id is there and this one may not replace it (another
    /// owner, not signed, or a `seq` that is not newer: a replay).
    RefusedEdit,
}

/// All stored values.
#[derive(Debug, Default)]
pub struct Storage {
    keys: HashMap<InfoHash, Vec<Stored>>,
    total: usize,
    limit: usize,
    /// No value expires before this (a lower bound, exact after [`Storage::expire`]).
    next_expiration: Option<Instant>,
}

impl Storage {
    /// Empty storage with a total size limit in bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            keys: HashMap::new(),
            total: 0,
            limit,
            next_expiration: None,
        }
    }

    /// Stores `v` at `key`, created `age` ago.
    pub fn store(&mut self, key: InfoHash, v: Value, now: Instant, age: Duration) -> StoreOutcome {
        let life = lifetime(v.value_type);
        if age >= life || v.size() > MAX_VALUE_SIZE {
            return StoreOutcome::Refused;
        }
        let expiration = now + (life - age);
        self.next_expiration = Some(
            self.next_expiration
                .map_or(expiration, |t| t.min(expiration)),
        );
        // Most keys hold one value: a slot starts with room for exactly one (a Vec's first
        // push would make room for four, and the value record is the bulk of its cost).
        let slot = self
            .keys
            .entry(key)
            .or_insert_with(|| Vec::with_capacity(1));
        if let Some(s) = slot.iter_mut().find(|s| s.value.id == v.id) {
            if s.value == v {
                s.expiration = s.expiration.max(expiration);
                return StoreOutcome::Refreshed;
            }
            // A signed value may be replaced by a newer one from the same owner.
            let newer_same_owner =
                v.owner.is_some() && s.value.owner == v.owner && v.seq > s.value.seq;
            if !newer_same_owner {
                return StoreOutcome::RefusedEdit;
            }
            self.total = self.total - s.value.footprint() + v.footprint();
            *s = Stored {
                value: v,
                expiration,
            };
            return StoreOutcome::New;
        }
        if slot.len() >= MAX_VALUES_PER_KEY || self.total + v.footprint() > self.limit {
            return StoreOutcome::Refused;
        }
        self.total += v.footprint();
        slot.push(Stored {
            value: v,
            expiration,
        });
        StoreOutcome::New
    }

    /// Extends a value's life; false when the key has no storage at all.
    pub fn refresh(&mut self, key: &InfoHash, vid: u64, now: Instant) -> bool {
        let Some(slot) = self.keys.get_mut(key) else {
            return false;
        };
        if let Some(s) = slot.iter_mut().find(|s| s.value.id == vid) {
            s.expiration = s.expiration.max(now + lifetime(s.value.value_type));
        }
        true
    }

    /// Values at `key`.
    pub fn get(&self, key: &InfoHash) -> impl Iterator<Item = &Value> {
        self.keys.get(key).into_iter().flatten().map(|s| &s.value)
    }

    /// True when `key` has values.
    pub fn has(&self, key: &InfoHash) -> bool {
        self.keys.get(key).is_some_and(|v| !v.is_empty())
    }

    /// Removes expired values; returns them by key.
    pub fn expire(&mut self, now: Instant) -> Vec<(InfoHash, Vec<u64>)> {
        let mut gone = Vec::new();
        for (key, slot) in &mut self.keys {
            let before = slot.len();
            let mut ids = Vec::new();
            slot.retain(|s| {
                let keep = s.expiration > now;
                if !keep {
                    ids.push(s.value.id);
                    self.total -= s.value.footprint();
                }
                keep
            });
            if slot.len() != before {
                gone.push((*key, ids));
            }
        }
        self.keys.retain(|_, v| !v.is_empty());
        self.next_expiration = self.keys.values().flatten().map(|s| s.expiration).min();
        gone
    }

    /// When the next value expires (never later than that; possibly earlier after a refresh).
    pub fn next_expiration(&self) -> Option<Instant> {
        self.next_expiration
    }

    /// Keys that hold values.
    pub fn keys(&self) -> impl Iterator<Item = &InfoHash> {
        self.keys.keys()
    }

    /// The values at `key` with their expiration.
    pub fn stored(&self, key: &InfoHash) -> impl Iterator<Item = &Stored> {
        self.keys.get(key).into_iter().flatten()
    }

    /// Drops every value at `key`.
    pub fn clear(&mut self, key: &InfoHash) {
        if let Some(slot) = self.keys.remove(key) {
            self.total -= slot.iter().map(|s| s.value.footprint()).sum::<usize>();
        }
    }

    /// Number of keys and values.
    pub fn counts(&self) -> (usize, usize) {
        (self.keys.len(), self.keys.values().map(Vec::len).sum())
    }

    /// What the stored values cost in bytes ([`Value::footprint`]), against the limit.
    pub fn total_size(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_refresh_and_edits() {
        let now = Instant::now();
        let mut s = Storage::new(1 << 20);
        let k = InfoHash([1; 20]);
        let v = Value {
            id: 1,
            ..Value::new("a")
        };
        assert_eq!(
            s.store(k, v.clone(), now, Duration::ZERO),
            StoreOutcome::New
        );
        assert_eq!(
            s.store(k, v.clone(), now, Duration::ZERO),
            StoreOutcome::Refreshed
        );
        assert_eq!(
            s.store(
                k,
                Value {
                    id: 1,
                    ..Value::new("b")
                },
                now,
                Duration::ZERO
            ),
            StoreOutcome::RefusedEdit
        );
        assert_eq!(
            s.store(
                k,
                Value {
                    id: 2,
                    ..Value::new("c")
                },
                now,
                Duration::from_secs(601)
            ),
            StoreOutcome::Refused
        );
        assert!(s.expire(now + Duration::from_secs(599)).is_empty());
        let gone = s.expire(now + Duration::from_secs(601));
        assert_eq!(gone, vec![(k, vec![1])]);
        assert_eq!(s.counts(), (0, 0));
        assert_eq!(s.total_size(), 0);
        assert!(!s.refresh(&k, 1, now));
        let small = Storage::new(2).store(
            k,
            Value {
                id: 3,
                ..Value::new("abc")
            },
            now,
            Duration::ZERO,
        );
        assert_eq!(small, StoreOutcome::Refused);
    }

    #[test]
    fn values_with_no_data_still_fill_the_storage() {
        // 64 KiB of storage: empty values used to count zero bytes, so any number fit.
        let now = Instant::now();
        let mut s = Storage::new(64 << 10);
        let mut stored = 0;
        for i in 0..100_000u64 {
            let key = InfoHash::get(&i.to_be_bytes());
            let v = Value {
                id: i,
                owner: Some(vec![0; 550]),
                ..Value::default()
            };
            if s.store(key, v, now, Duration::ZERO) == StoreOutcome::New {
                stored += 1;
            }
        }
        assert!(stored < 100, "{stored} empty values in 64 KiB");
        assert!(s.total_size() <= 64 << 10);
    }
}

#[cfg(test)]
mod expiry_tests {
    use super::*;

    #[test]
    fn short_lived_type_expires_after_a_minute() {
        let now = Instant::now();
        let mut s = Storage::new(1 << 20);
        let k = InfoHash([1; 20]);
        s.store(
            k,
            Value {
                id: 1,
                value_type: 5,
                ..Value::new("ice")
            },
            now,
            Duration::ZERO,
        );
        s.store(
            k,
            Value {
                id: 2,
                ..Value::new("user")
            },
            now,
            Duration::ZERO,
        );
        assert_eq!(s.next_expiration(), Some(now + Duration::from_secs(60)));
        assert_eq!(s.expire(now + Duration::from_secs(61)), vec![(k, vec![1])]);
        assert_eq!(s.counts(), (1, 1));
    }
}
