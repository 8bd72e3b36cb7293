//! Password and raw-key encryption as opendht does it (Jami archives use it).
//!
//! * Key stretching: Argon2i (v1.3, 16 passes, 64 MiB, 1 lane, 32 bytes) over the password
//!   and a 16-byte salt, then SHA-256 of that output is the AES-256 key.
//! * With a password: `salt(16) ‖ IV(12) ‖ AES-256-GCM ciphertext ‖ tag(16)`.
//! * With a raw key (16, 24 or 32 bytes): `IV(12) ‖ ciphertext ‖ tag(16)`. No AAD.

use argon2::{Algorithm, Argon2, Params, Version};
use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::digest;

use crate::error::{Error, Result};

/// Length of the random salt put in front of password-encrypted data.
pub const SALT_LEN: usize = 16;
/// Length of the AES-GCM IV.
pub const IV_LEN: usize = 12;
/// Length of the AES-GCM tag.
pub const TAG_LEN: usize = 16;
/// Argon2 memory cost in KiB (64 MiB).
pub const ARGON2_MEMORY_KIB: u32 = 64 * 1024;
/// Argon2 passes.
pub const ARGON2_PASSES: u32 = 16;

/// Argon2i cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub passes: u32,
}

impl Cost {
    /// The cost opendht and Jami use: 64 MiB, 16 passes.
    pub const JAMI: Cost = Cost {
        memory_kib: ARGON2_MEMORY_KIB,
        passes: ARGON2_PASSES,
    };
}

/// Derives the 32-byte AES key from a password and salt (Argon2i then SHA-256).
pub fn stretch_key(password: &[u8], salt: &[u8]) -> Result<[u8; 32]> {
    stretch_key_cost(password, salt, Cost::JAMI)
}

/// [`stretch_key`] with other Argon2i costs (for fuzzing and tests; Jami uses [`Cost::JAMI`]).
pub fn stretch_key_cost(password: &[u8], salt: &[u8], cost: Cost) -> Result<[u8; 32]> {
    let params = Params::new(cost.memory_kib, cost.passes, 1, Some(32))
        .map_err(|e| Error::Key(e.to_string()))?;
    let mut raw = [0u8; 32];
    Argon2::new(Algorithm::Argon2i, Version::V0x13, params)
        .hash_password_into(password, salt, &mut raw)
        .map_err(|e| Error::Key(e.to_string()))?;
    let mut key = [0u8; 32];
    key.copy_from_slice(digest::digest(&digest::SHA256, &raw).as_ref());
    Ok(key)
}

fn aead_key(key: &[u8]) -> Result<LessSafeKey> {
    let alg = match key.len() {
        16 => &aead::AES_128_GCM,
        24 => &aead::AES_192_GCM,
        32 => &aead::AES_256_GCM,
        n => {
            return Err(Error::Key(format!(
                "AES key must be 16, 24 or 32 bytes, not {n}"
            )));
        }
    };
    Ok(LessSafeKey::new(
        UnboundKey::new(alg, key).map_err(|_| Error::Key("bad AES key".into()))?,
    ))
}

/// Encrypts with a raw AES key: `IV ‖ ciphertext ‖ tag`.
pub fn encrypt_with_key(key: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
    let key = aead_key(key)?;
    let mut iv = [0u8; IV_LEN];
    aws_lc_rs::rand::fill(&mut iv).map_err(|_| Error::Key("no randomness".into()))?;
    let mut buf = plain.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(iv), Aad::empty(), &mut buf)
        .map_err(|_| Error::Key("encryption failed".into()))?;
    let mut out = Vec::with_capacity(IV_LEN + buf.len());
    out.extend_from_slice(&iv);
    out.extend_from_slice(&buf);
    Ok(out)
}

/// Decrypts `IV ‖ ciphertext ‖ tag` with a raw AES key.
pub fn decrypt_with_key(key: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let key = aead_key(key)?;
    if data.len() < IV_LEN + TAG_LEN {
        return Err(Error::EncryptedTooShort(data.len()));
    }
    let (iv, rest) = data.split_at(IV_LEN);
    let iv: [u8; IV_LEN] = iv.try_into().map_err(|_| Error::Decrypt)?;
    let mut buf = rest.to_vec();
    let plain = key
        .open_in_place(Nonce::assume_unique_for_key(iv), Aad::empty(), &mut buf)
        .map_err(|_| Error::Decrypt)?;
    Ok(plain.to_vec())
}

/// Encrypts with a password: `salt ‖ IV ‖ ciphertext ‖ tag`, a fresh random salt each time.
pub fn encrypt_with_password(password: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
    let mut salt = [0u8; SALT_LEN];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| Error::Key("no randomness".into()))?;
    let key = stretch_key(password, &salt)?;
    let mut out = salt.to_vec();
    out.extend(encrypt_with_key(&key, plain)?);
    Ok(out)
}

/// Decrypts `salt ‖ IV ‖ ciphertext ‖ tag` with a password.
pub fn decrypt_with_password(password: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    decrypt_with_password_cost(password, data, Cost::JAMI)
}

/// [`decrypt_with_password`] with other Argon2i costs (for fuzzing and tests).
pub fn decrypt_with_password_cost(password: &[u8], data: &[u8], cost: Cost) -> Result<Vec<u8>> {
    if data.len() < SALT_LEN + IV_LEN + TAG_LEN {
        return Err(Error::EncryptedTooShort(data.len()));
    }
    let (salt, rest) = data.split_at(SALT_LEN);
    let key = stretch_key_cost(password, salt, cost)?;
    decrypt_with_key(&key, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip_and_layout() {
        let blob = encrypt_with_password(b"pw", b"hello world").unwrap();
        assert_eq!(blob.len(), SALT_LEN + IV_LEN + 11 + TAG_LEN);
        assert_eq!(decrypt_with_password(b"pw", &blob).unwrap(), b"hello world");
        assert!(matches!(
            decrypt_with_password(b"pW", &blob),
            Err(Error::Decrypt)
        ));
        let mut bad = blob.clone();
        bad[SALT_LEN + IV_LEN] ^= 1;
        assert!(matches!(
            decrypt_with_password(b"pw", &bad),
            Err(Error::Decrypt)
        ));
        assert!(matches!(
            decrypt_with_password(b"pw", &blob[..20]),
            Err(Error::EncryptedTooShort(20))
        ));
    }

    #[test]
    fn argon2i_reference_vector() {
        // Expected output computed with libargon2 (argon2-cffi's hash_secret_raw).
        let params = Params::new(1 << 16, 2, 1, Some(32)).unwrap();
        let mut out = [0u8; 32];
        Argon2::new(Algorithm::Argon2i, Version::V0x13, params)
            .hash_password_into(b"password", b"somesalt", &mut out)
            .unwrap();
        assert_eq!(
            hex::encode(out),
            "c1628832147d9720c5bd1cfd61367078729f6dfb6f8fea9ff98158e0d7816ed0"
        );
    }

    #[test]
    fn stretch_key_matches_libargon2() {
        // SHA-256(argon2i(t=16, m=64 MiB, p=1)), computed with libargon2 and hashlib.
        let key = stretch_key(b"pw", b"0123456789abcdef").unwrap();
        assert_eq!(
            hex::encode(key),
            "0fa7c720fc11bea0006447c35300254c1dc530a7b044d536e5122a451b113513"
        );
    }

    #[test]
    fn raw_key_sizes() {
        for n in [16, 24, 32] {
            let key = vec![7u8; n];
            let blob = encrypt_with_key(&key, b"x").unwrap();
            assert_eq!(decrypt_with_key(&key, &blob).unwrap(), b"x");
        }
        assert!(encrypt_with_key(&[0u8; 20], b"x").is_err());
    }
}
