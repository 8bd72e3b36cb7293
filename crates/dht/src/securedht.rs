//! [`SecureDht`]: a [`Runner`] with an identity, as OpenDHT's `SecureDht` over its `Dht`.
//!
//! It publishes its certificate (at both locations, see [`crate::secure`]), puts signed values
//! (with the next `seq` when it already owns one at that id) and values encrypted to another
//! key found by id, and its gets and listens hand out only what checks: signed values whose
//! signature verifies, values encrypted to this identity (decrypted), and plain values. What
//! is dropped is counted in [`SecureCounters`].

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use pamoja_identity::{Certificate, PrivateKey, PublicKey};

use crate::infohash::InfoHash;
use crate::message::{ValueQuery, WhereValue};
use crate::runner::{ListenEvent, Runner};
use crate::secure::{self, SecureError};
use crate::value::Field;
use crate::value::Value;

/// A value that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The value (decrypted if it was encrypted).
    pub value: Value,
    /// Key id of its signer, for signed (and encrypted) values.
    pub owner: Option<InfoHash>,
    /// It was encrypted to this identity.
    pub encrypted: bool,
}

/// Values dropped by gets and listens, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SecureCounters {
    /// Signed values whose signature did not verify (or whose owner was no key).
    pub bad_signature: u64,
    /// Encrypted values this identity could not decrypt or that failed their checks.
    pub not_for_us: u64,
}

/// Most public keys [`SecureDht`] caches.
pub const KEYS_CACHED: usize = 4096;

/// A runner with an identity.
pub struct SecureDht {
    runner: Arc<Runner>,
    key: PrivateKey,
    chain: Vec<Certificate>,
    keys: Mutex<HashMap<InfoHash, PublicKey>>,
    counters: Mutex<SecureCounters>,
}

fn io_err(e: SecureError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl SecureDht {
    /// `runner` with the identity `key`, whose certificate chain (leaf first) is `chain`.
    pub fn new(runner: Arc<Runner>, key: PrivateKey, chain: Vec<Certificate>) -> Self {
        Self {
            runner,
            key,
            chain,
            keys: Mutex::default(),
            counters: Mutex::default(),
        }
    }

    /// The runner underneath.
    pub fn runner(&self) -> &Arc<Runner> {
        &self.runner
    }

    /// This identity's private key (to seal values for others, e.g. acknowledgements).
    pub fn private_key(&self) -> &PrivateKey {
        &self.key
    }

    /// This identity's key id (SHA-1 of its public key).
    pub fn key_id(&self) -> InfoHash {
        secure::key_id(self.key.public_key())
    }

    /// Values dropped so far.
    pub fn counters(&self) -> SecureCounters {
        self.counters.lock().map(|c| *c).unwrap_or_default()
    }

    /// Puts the certificate chain at both locations; returns the nodes that stored it at the
    /// OpenDHT 2.4.12 location.
    pub async fn publish_certificate(&self) -> io::Result<usize> {
        let refs: Vec<&Certificate> = self.chain.iter().collect();
        let v = secure::certificate_value(&refs);
        let pk = self.key.public_key();
        let stored = self.runner.put(secure::key_id(pk), v.clone()).await?;
        self.runner.put(secure::long_key_location(pk), v).await?;
        Ok(stored)
    }

    /// Finds the certificate chain of key id `id` (at either location's id): cache first.
    pub async fn find_certificate(&self, id: InfoHash) -> io::Result<Option<Vec<Certificate>>> {
        if secure::key_id(self.key.public_key()) == id {
            return Ok(Some(self.chain.clone()));
        }
        for v in self.runner.get(id).await? {
            if let Some(chain) = secure::certificate_from_value(&v, &id) {
                self.remember_key(id, chain[0].public_key().clone());
                return Ok(Some(chain));
            }
        }
        Ok(None)
    }

    /// Caches `key` as the key of `id`, keeping at most [`KEYS_CACHED`] (a full cache
    /// drops an entry at random: what peers send cannot grow it).
    fn remember_key(&self, id: InfoHash, key: PublicKey) {
        let Ok(mut keys) = self.keys.lock() else {
            return;
        };
        if keys.len() >= KEYS_CACHED && !keys.contains_key(&id) {
            if let Some(old) = keys.keys().next().copied() {
                keys.remove(&old);
            }
        }
        keys.insert(id, key);
    }

    /// How many public keys are cached.
    pub fn cached_keys(&self) -> usize {
        self.keys.lock().map_or(0, |k| k.len())
    }

    /// The public key of key id `id`: cached, or from its certificate.
    pub async fn find_public_key(&self, id: InfoHash) -> io::Result<Option<PublicKey>> {
        if let Some(k) = self.keys.lock().ok().and_then(|k| k.get(&id).cloned()) {
            return Ok(Some(k));
        }
        Ok(self
            .find_certificate(id)
            .await?
            .map(|c| c[0].public_key().clone()))
    }

    /// Signs `value` and puts it at `key`. When a value with this id owned by this identity is
    /// already there, `seq` becomes one more than its (an edit). Returns the nodes that stored it.
    pub async fn put_signed(&self, key: InfoHash, value: Value) -> io::Result<usize> {
        Ok(self.put_signed_value(key, value).await?.0)
    }

    /// [`SecureDht::put_signed`], also returning the value as signed and put.
    pub async fn put_signed_value(
        &self,
        key: InfoHash,
        mut value: Value,
    ) -> io::Result<(usize, Value)> {
        if value.id == 0 {
            value.id =
                u64::from_le_bytes(InfoHash::random().0[..8].try_into().unwrap_or([1; 8])).max(1);
        }
        let query = ValueQuery {
            select: Vec::new(),
            filter: vec![(Field::Id, WhereValue::Uint(value.id))],
        };
        let mut found = self.runner.get_stream(key, Some(query))?;
        let mut values = Vec::new();
        while let Some(v) = found.recv().await {
            values.push(v);
        }
        value.seq = secure::next_seq(&values, value.id, &self.key_id(), value.seq);
        secure::sign(&mut value, &self.key).map_err(io_err)?;
        let stored = self.runner.put(key, value.clone()).await?;
        Ok((stored, value))
    }

    /// Encrypts `value` to the key of id `to` (found on the DHT) and puts it at `key`.
    pub async fn put_encrypted(
        &self,
        key: InfoHash,
        to: InfoHash,
        value: Value,
    ) -> io::Result<usize> {
        Ok(self.put_encrypted_value(key, to, value).await?.0)
    }

    /// [`SecureDht::put_encrypted`], also returning the encrypted value as put.
    pub async fn put_encrypted_value(
        &self,
        key: InfoHash,
        to: InfoHash,
        value: Value,
    ) -> io::Result<(usize, Value)> {
        let Some(pk) = self.find_public_key(to).await? else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no certificate found for {to}"),
            ));
        };
        let mut value = value;
        if value.id == 0 {
            value.id =
                u64::from_le_bytes(InfoHash::random().0[..8].try_into().unwrap_or([1; 8])).max(1);
        }
        let sealed = secure::encrypt(&value, &self.key, &pk).map_err(io_err)?;
        let stored = self.runner.put(key, sealed.clone()).await?;
        Ok((stored, sealed))
    }

    /// Checks one value: `None` (counted) when it is to be dropped.
    pub fn check(&self, v: Value) -> Option<Checked> {
        if v.cypher.is_some() {
            return match secure::decrypt(&v, &self.key) {
                Ok(d) => Some(Checked {
                    owner: d.owner_id(),
                    value: d,
                    encrypted: true,
                }),
                Err(_) => {
                    if let Ok(mut c) = self.counters.lock() {
                        c.not_for_us += 1;
                    }
                    None
                }
            };
        }
        if v.is_signed() {
            return match secure::verify(&v) {
                Ok(pk) => {
                    let id = secure::key_id(&pk);
                    self.remember_key(id, pk);
                    Some(Checked {
                        owner: Some(id),
                        value: v,
                        encrypted: false,
                    })
                }
                Err(_) => {
                    if let Ok(mut c) = self.counters.lock() {
                        c.bad_signature += 1;
                    }
                    None
                }
            };
        }
        Some(Checked {
            value: v,
            owner: None,
            encrypted: false,
        })
    }

    /// Every value at `key` that checks. The RSA work runs on the blocking pool.
    pub async fn get(self: &Arc<Self>, key: InfoHash) -> io::Result<Vec<Checked>> {
        let values = self.runner.get(key).await?;
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            values.into_iter().filter_map(|v| me.check(v)).collect()
        })
        .await
        .map_err(io::Error::other)
    }

    /// The next listen event that checks (expirations pass through); `None` when it ended.
    /// Each value's signature check or decryption runs on the blocking pool, one at a time.
    pub async fn next_checked(
        self: &Arc<Self>,
        listen: &mut crate::runner::Listen,
    ) -> Option<Result<Checked, u64>> {
        loop {
            match listen.next().await? {
                ListenEvent::Value(v) => {
                    let me = self.clone();
                    if let Ok(Some(c)) = tokio::task::spawn_blocking(move || me.check(v)).await {
                        return Some(Ok(c));
                    }
                }
                ListenEvent::Expired(id) => return Some(Err(id)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_key_cache_stays_bounded() {
        let runner = Runner::bind("127.0.0.1:0".parse().unwrap(), crate::Config::default())
            .await
            .unwrap();
        let key = PrivateKey::generate().unwrap();
        let pk = key.public_key().clone();
        let sd = SecureDht::new(Arc::new(runner), key, Vec::new());
        // Every signed value names its owner: a peer sending values from many keys used to
        // grow the cache without end.
        for i in 0..(KEYS_CACHED as u32 + 500) {
            sd.remember_key(InfoHash::get(&i.to_be_bytes()), pk.clone());
        }
        assert_eq!(sd.cached_keys(), KEYS_CACHED);
    }
}
