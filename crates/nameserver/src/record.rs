//! Registrations and lookup answers, as jamid writes and reads them.
//!
//! A registration names the Jami ID (`addr`), the account's Ethereum address (`owner`), the
//! account public key (`publickey`: base64 of its PEM text followed by one NUL byte, as GnuTLS
//! exports it) and `signature`: base64 of an RSA PKCS#1 v1.5 SHA-512 signature by the account
//! key over the lower-cased name. The key's SHA-1 (of its SubjectPublicKeyInfo) must be `addr`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use pamoja_identity::{Account, PublicKey, SignatureHash};
use serde::{Deserialize, Serialize};

use crate::name::Name;

/// Why a registration or a lookup answer is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A field is missing or not in its format.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The public key is not the key of `addr`.
    #[error("the public key does not match the address")]
    KeyMismatch,
    /// The signature does not verify over the name.
    #[error("the signature does not verify")]
    BadSignature,
}

/// The body of `POST /name/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// Jami ID, 40 hex digits.
    pub addr: String,
    /// Ethereum address of the account, 40 hex digits.
    pub owner: String,
    /// base64 signature over the lower-cased name.
    pub signature: String,
    /// base64 of the account public key's PEM text and a NUL byte.
    pub publickey: String,
}

fn is_hex40(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Strips the `0x` some servers put before addresses.
pub fn strip_0x(s: &str) -> &str {
    s.strip_prefix("0x").unwrap_or(s)
}

/// Reads a base64 public key (PEM or DER inside) as jamid does.
fn public_key(b64: &str) -> Result<PublicKey, RecordError> {
    let raw = B64
        .decode(b64.trim())
        .map_err(|_| RecordError::Malformed("publickey"))?;
    PublicKey::from_pem_or_der(&raw).map_err(|_| RecordError::Malformed("publickey"))
}

/// Checks that `key` is the key of `addr` and signed `name`.
fn check_signed(
    name: &Name,
    addr: &str,
    key: &PublicKey,
    signature: &str,
) -> Result<(), RecordError> {
    if !key.jami_id().to_string().eq_ignore_ascii_case(addr) {
        return Err(RecordError::KeyMismatch);
    }
    let sig = B64
        .decode(signature.trim())
        .map_err(|_| RecordError::Malformed("signature"))?;
    key.verify(SignatureHash::Sha512, name.as_str().as_bytes(), &sig)
        .map_err(|_| RecordError::BadSignature)
}

impl Registration {
    /// A registration of `name` for `account`, signed as jamid signs it.
    pub fn sign(account: &Account, name: &Name) -> pamoja_identity::Result<Self> {
        let key = account.account_key();
        let signature = key.sign(SignatureHash::Sha512, name.as_str().as_bytes())?;
        let mut pem = key.public_key().to_pem().into_bytes();
        pem.push(0);
        Ok(Self {
            addr: account.jami_id().to_string(),
            owner: account
                .eth_key()
                .map(|k| k.address_hex())
                .unwrap_or_default(),
            signature: B64.encode(signature),
            publickey: B64.encode(pem),
        })
    }

    /// The request body exactly as jamid writes it: these keys in this order, no spaces.
    pub fn to_json(&self) -> String {
        // Every field is hex or base64: nothing to escape.
        format!(
            r#"{{"addr":"{}","owner":"{}","signature":"{}","publickey":"{}"}}"#,
            self.addr, self.owner, self.signature, self.publickey
        )
    }

    /// Checks the registration of `name`: formats, that the key is the key of `addr`, and the
    /// signature over the name. Returns the key.
    pub fn verify(&self, name: &Name) -> Result<PublicKey, RecordError> {
        if !is_hex40(strip_0x(&self.addr)) {
            return Err(RecordError::Malformed("addr"));
        }
        if !self.owner.is_empty() && !is_hex40(strip_0x(&self.owner)) {
            return Err(RecordError::Malformed("owner"));
        }
        let key = public_key(&self.publickey)?;
        check_signed(name, strip_0x(&self.addr), &key, &self.signature)?;
        Ok(key)
    }
}

/// The answer to `GET /name/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRecord {
    /// The name.
    #[serde(default)]
    pub name: String,
    /// The Jami ID (possibly with `0x`).
    #[serde(default)]
    pub addr: String,
    /// The registration's public key, when the server gives it.
    #[serde(default)]
    pub publickey: String,
    /// The registration's signature, when the server gives it.
    #[serde(default)]
    pub signature: String,
}

impl NameRecord {
    /// What jamid accepts: the address (without `0x`); when the answer carries both a key and
    /// a signature, the key must be the address's and the signature valid over `name`.
    /// `Ok(None)` for an empty address.
    pub fn check(&self, name: &Name) -> Result<Option<String>, RecordError> {
        let addr = strip_0x(&self.addr);
        if addr.is_empty() {
            return Ok(None);
        }
        if !self.publickey.is_empty() && !self.signature.is_empty() {
            let key = public_key(&self.publickey)?;
            check_signed(name, addr, &key, &self.signature)?;
        }
        Ok(Some(addr.to_ascii_lowercase()))
    }
}

/// The answer to `GET /addr/{addr}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrRecord {
    /// The name registered for the address.
    #[serde(default)]
    pub name: String,
}
