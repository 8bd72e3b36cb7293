//! OpenDHT's SecureDht value rules: signed values, values encrypted to a key, and where
//! certificates live.
//!
//! * Signing sets `owner` (the signer's DER SubjectPublicKeyInfo) and signs the packed body
//!   with RSA PKCS#1 v1.5 over SHA-512.
//! * Encrypting sets `to` (the recipient's key id, SHA-1 of its SPKI), signs, and encrypts the
//!   packed `dat` map (`{"body", "sig"}`): with RSA PKCS#1 v1.5 alone when it fits in one block,
//!   else an RSA-wrapped AES-256 key followed by `IV ‖ AES-GCM ciphertext ‖ tag`. Decryption
//!   also accepts what old OpenDHT encryptors wrote (the tag computed with the plaintext as
//!   associated data), as OpenDHT 2.4.12 does.
//! * A certificate is published as a value of type 8, id 1, at SHA-1 of its key's SPKI (what
//!   OpenDHT 2.4.12 reads) and at SHA-1 of SHA-256 of it (what OpenDHT 3.7.2 and later read).
//!
//! Pure functions: a node or an application applies them to what it puts and gets.

use aws_lc_rs::cipher::{AES_128, AES_192, AES_256, DecryptingKey, DecryptionContext};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{
    Pkcs1PrivateDecryptingKey, Pkcs1PublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
};
use pamoja_identity::password;
use pamoja_identity::{Certificate, PrivateKey, PublicKey, SignatureHash};

use crate::infohash::InfoHash;
use crate::value::Value;

/// The value type certificates are published with.
pub const CERTIFICATE_TYPE: u16 = 8;
/// The id of a certificate value.
pub const CERTIFICATE_VALUE_ID: u64 = 1;

/// Why a value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecureError {
    /// The value carries no owner or no signature.
    #[error("value is not signed")]
    NotSigned,
    /// The owner is not an RSA public key.
    #[error("owner is not a usable public key")]
    BadOwner,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// The value is not encrypted.
    #[error("value is not encrypted")]
    NotEncrypted,
    /// Encrypted to another key.
    #[error("encrypted for someone else")]
    NotForUs,
    /// The ciphertext is cut short, or its inner value is malformed.
    #[error("malformed encrypted value: {0}")]
    Malformed(&'static str),
    /// A key could not be used.
    #[error("key: {0}")]
    Key(String),
}

/// The key id OpenDHT gives a public key: SHA-1 of its SPKI (`to`, certificate location).
pub fn key_id(key: &PublicKey) -> InfoHash {
    InfoHash::get(key.spki_der())
}

/// OpenDHT 3.7.2+'s certificate location: SHA-1 of the 32-byte SHA-256 of the SPKI.
pub fn long_key_location(key: &PublicKey) -> InfoHash {
    let long = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.spki_der());
    InfoHash::get(long.as_ref())
}

/// Signs `value` with `key`: sets `owner`, keeps `seq`, fills `signature`.
pub fn sign(value: &mut Value, key: &PrivateKey) -> Result<(), SecureError> {
    if value.cypher.is_some() {
        return Err(SecureError::Malformed(
            "an encrypted value cannot be signed",
        ));
    }
    value.owner = Some(key.public_key().spki_der().to_vec());
    let mut body = Vec::new();
    value.pack_body(&mut body);
    value.signature = key
        .sign(SignatureHash::Sha512, &body)
        .map_err(|e| SecureError::Key(e.to_string()))?;
    Ok(())
}

/// Checks a signed value; returns its owner's key.
pub fn verify(value: &Value) -> Result<PublicKey, SecureError> {
    let owner = value.owner.as_deref().ok_or(SecureError::NotSigned)?;
    if value.signature.is_empty() {
        return Err(SecureError::NotSigned);
    }
    let key = PublicKey::from_spki_der(owner).map_err(|_| SecureError::BadOwner)?;
    let mut body = Vec::new();
    value.pack_body(&mut body);
    key.verify(SignatureHash::Sha512, &body, &value.signature)
        .map_err(|_| SecureError::BadSignature)?;
    Ok(key)
}

/// The `seq` a signed put of value `id` by `owner` takes, given the values found at its key:
/// one more than the highest this owner signed there with that id (an edit), else `seq`.
/// Values that do not verify are not counted.
pub fn next_seq<'a>(
    found: impl IntoIterator<Item = &'a Value>,
    id: u64,
    owner: &InfoHash,
    seq: u16,
) -> u16 {
    found
        .into_iter()
        .filter(|v| v.id == id && v.owner_id().as_ref() == Some(owner))
        .filter(|v| verify(v).is_ok())
        .map(|v| v.seq.saturating_add(1))
        .fold(seq, u16::max)
}

/// RSA PKCS#1 v1.5 + AES-GCM encryption of `plain` to `to`, as OpenDHT's
/// `PublicKey::encrypt`.
pub fn encrypt_bytes(plain: &[u8], to: &PublicKey) -> Result<Vec<u8>, SecureError> {
    let rsa = PublicEncryptingKey::from_der(to.spki_der())
        .map_err(|e| SecureError::Key(e.to_string()))
        .and_then(|k| {
            Pkcs1PublicEncryptingKey::new(k).map_err(|_| SecureError::Key("RSA key".into()))
        })?;
    let k = rsa.key_size_bytes();
    let mut block = vec![0u8; rsa.ciphertext_size()];
    if plain.len() <= k.saturating_sub(11) {
        rsa.encrypt(plain, &mut block)
            .map_err(|_| SecureError::Key("RSA encryption failed".into()))?;
        return Ok(block);
    }
    let mut aes_key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut aes_key).map_err(|_| SecureError::Key("no randomness".into()))?;
    rsa.encrypt(&aes_key, &mut block)
        .map_err(|_| SecureError::Key("RSA encryption failed".into()))?;
    let sealed =
        password::encrypt_with_key(&aes_key, plain).map_err(|e| SecureError::Key(e.to_string()))?;
    block.extend_from_slice(&sealed);
    Ok(block)
}

/// Decrypts what [`encrypt_bytes`] (or OpenDHT) produced for `key`.
pub fn decrypt_bytes(cypher: &[u8], key: &PrivateKey) -> Result<Vec<u8>, SecureError> {
    let rsa = PrivateDecryptingKey::from_pkcs8(key.to_pkcs8_der())
        .map_err(|e| SecureError::Key(e.to_string()))
        .and_then(|k| {
            Pkcs1PrivateDecryptingKey::new(k).map_err(|_| SecureError::Key("RSA key".into()))
        })?;
    let k = rsa.key_size_bytes();
    if cypher.len() < k {
        return Err(SecureError::Malformed("shorter than one RSA block"));
    }
    let (block, rest) = cypher.split_at(k);
    let mut out = vec![0u8; rsa.min_output_size()];
    let first = rsa
        .decrypt(block, &mut out)
        .map_err(|_| SecureError::NotForUs)?
        .to_vec();
    if rest.is_empty() {
        return Ok(first);
    }
    // A block for another key passes the PKCS#1 padding check now and then (about 1 in
    // 77,000) and yields bytes of any length: not ours either.
    if !matches!(first.len(), 16 | 24 | 32) {
        return Err(SecureError::NotForUs);
    }
    match password::decrypt_with_key(&first, rest) {
        Ok(plain) => Ok(plain),
        Err(_) => legacy_gcm(&first, rest).ok_or(SecureError::NotForUs),
    }
}

/// OpenDHT 2.4.12's fallback for old encryptors, whose GCM tag covered the plaintext as
/// associated data: recover the plaintext with AES-CTR from GCM's first counter block
/// (IV ‖ 00000002), then check the tag with that plaintext as associated data.
fn legacy_gcm(aes_key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
    const IV: usize = 12;
    const TAG: usize = 16;
    if data.len() < IV + TAG {
        return None;
    }
    let (iv, rest) = data.split_at(IV);
    let (ciphertext, _tag) = rest.split_at(rest.len() - TAG);
    let alg = match aes_key.len() {
        16 => &AES_128,
        24 => &AES_192,
        _ => &AES_256,
    };
    let mut counter = [0u8; 16];
    counter[..IV].copy_from_slice(iv);
    counter[15] = 2;
    let ctr =
        DecryptingKey::ctr(aws_lc_rs::cipher::UnboundCipherKey::new(alg, aes_key).ok()?).ok()?;
    let mut plain = ciphertext.to_vec();
    ctr.decrypt(
        &mut plain,
        DecryptionContext::Iv128(FixedLength::from(counter)),
    )
    .ok()?;
    let aead_alg = match aes_key.len() {
        16 => &aead::AES_128_GCM,
        24 => &aead::AES_192_GCM,
        _ => &aead::AES_256_GCM,
    };
    let key = LessSafeKey::new(UnboundKey::new(aead_alg, aes_key).ok()?);
    let mut buf = rest.to_vec();
    let nonce = Nonce::try_assume_unique_for_key(iv).ok()?;
    let opened = key
        .open_in_place(nonce, Aad::from(plain.as_slice()), &mut buf)
        .ok()?;
    Some(opened.to_vec())
}

/// Encrypts `value` to `to`, signed by `from` (OpenDHT's `putEncrypted`): the wire value keeps
/// only the id (and priority), its `dat` is the ciphertext.
pub fn encrypt(value: &Value, from: &PrivateKey, to: &PublicKey) -> Result<Value, SecureError> {
    let mut inner = Value {
        cypher: None,
        recipient: Some(key_id(to)),
        ..value.clone()
    };
    sign(&mut inner, from)?;
    // The `dat` map: {"body": ..., "sig": ...}.
    let mut dat = Vec::new();
    pamoja_identity::msgpack::map(&mut dat, 2);
    pamoja_identity::msgpack::str(&mut dat, "body");
    inner.pack_body(&mut dat);
    pamoja_identity::msgpack::str(&mut dat, "sig");
    pamoja_identity::msgpack::bin(&mut dat, &inner.signature);
    Ok(Value {
        id: value.id,
        priority: value.priority,
        cypher: Some(encrypt_bytes(&dat, to)?),
        ..Value::default()
    })
}

/// Decrypts a value encrypted to `key`: it must name our key as recipient and carry a valid
/// signature by its owner. The result keeps the outer id.
pub fn decrypt(value: &Value, key: &PrivateKey) -> Result<Value, SecureError> {
    let cypher = value.cypher.as_deref().ok_or(SecureError::NotEncrypted)?;
    let dat = decrypt_bytes(cypher, key)?;
    // Parse the `dat` map by wrapping it as a whole value.
    let mut whole = Vec::with_capacity(dat.len() + 16);
    pamoja_identity::msgpack::map(&mut whole, 2);
    pamoja_identity::msgpack::str(&mut whole, "id");
    pamoja_identity::msgpack::uint(&mut whole, value.id);
    pamoja_identity::msgpack::str(&mut whole, "dat");
    whole.extend_from_slice(&dat);
    let mut inner = Value::from_bytes(&whole).map_err(|_| SecureError::Malformed("inner value"))?;
    if inner.cypher.is_some() {
        return Err(SecureError::Malformed("nested encryption"));
    }
    if inner.recipient != Some(key_id(key.public_key())) {
        return Err(SecureError::NotForUs);
    }
    verify(&inner)?;
    inner.priority = value.priority;
    Ok(inner)
}

/// The value that publishes a certificate chain (leaf first), as SecureDht puts it: type 8,
/// id 1, `data` = msgpack `bin` holding the PEM text.
pub fn certificate_value(chain: &[&Certificate]) -> Value {
    let pem = Certificate::chain_to_pem(chain);
    let mut data = Vec::with_capacity(pem.len() + 5);
    pamoja_identity::msgpack::bin(&mut data, pem.as_bytes());
    Value {
        id: CERTIFICATE_VALUE_ID,
        value_type: CERTIFICATE_TYPE,
        data,
        ..Value::default()
    }
}

/// Reads a certificate value (msgpack `bin` around PEM or DER, or bare PEM or DER) and returns
/// the chain if its leaf's key has id `id` (either location's id is accepted).
pub fn certificate_from_value(value: &Value, id: &InfoHash) -> Option<Vec<Certificate>> {
    if value.value_type != CERTIFICATE_TYPE {
        return None;
    }
    let mut r = pamoja_identity::msgpack::Reader::new(&value.data);
    let inner = match r.bin() {
        Ok(b) if r.remaining().is_empty() => b,
        _ => &value.data[..],
    };
    let chain = Certificate::chain_from_pem_or_der(inner).ok()?;
    let leaf = chain.first()?.public_key();
    (key_id(leaf) == *id || long_key_location(leaf) == *id).then_some(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> &'static PrivateKey {
        static KEY: std::sync::OnceLock<PrivateKey> = std::sync::OnceLock::new();
        KEY.get_or_init(|| PrivateKey::generate().unwrap())
    }

    #[test]
    fn signed_values_verify_and_tampering_is_caught() {
        let mut v = Value {
            id: 7,
            seq: 3,
            ..Value::new("signed")
        };
        sign(&mut v, key()).unwrap();
        let back = Value::from_bytes(&v.to_bytes()).unwrap();
        assert_eq!(key_id(&verify(&back).unwrap()), key_id(key().public_key()));
        let mut changed = back.clone();
        changed.data = b"other".to_vec();
        assert_eq!(verify(&changed), Err(SecureError::BadSignature));
        changed = back.clone();
        changed.seq = 4;
        assert_eq!(verify(&changed), Err(SecureError::BadSignature));
        assert_eq!(verify(&Value::new("plain")), Err(SecureError::NotSigned));
        changed = back;
        changed.owner = Some(vec![1, 2, 3]);
        assert_eq!(verify(&changed), Err(SecureError::BadOwner));
    }

    #[test]
    fn edits_take_the_next_seq_of_our_own_values_only() {
        let me = key();
        let mine = secure_id(me);
        let other = PrivateKey::generate().unwrap();
        let signed = |k: &PrivateKey, id, seq| {
            let mut v = Value {
                id,
                seq,
                ..Value::new("v")
            };
            sign(&mut v, k).unwrap();
            v
        };
        let mut forged = signed(me, 5, 40);
        forged.data = b"changed".to_vec();
        let found = [
            signed(me, 5, 3),
            signed(me, 6, 9),
            signed(&other, 5, 20),
            forged,
        ];
        assert_eq!(next_seq(&found, 5, &mine, 0), 4);
        assert_eq!(next_seq(&found, 5, &mine, 7), 7);
        assert_eq!(next_seq(&found, 8, &mine, 0), 0);
    }

    fn secure_id(k: &PrivateKey) -> InfoHash {
        key_id(k.public_key())
    }

    #[test]
    fn encrypted_values_round_trip_only_for_their_recipient() {
        let me = key();
        let other = PrivateKey::generate().unwrap();
        for size in [5usize, 3000] {
            let v = Value {
                id: 42,
                ..Value::new(vec![b'x'; size])
            };
            let e = encrypt(&v, &other, me.public_key()).unwrap();
            let wire = Value::from_bytes(&e.to_bytes()).unwrap();
            assert!(wire.cypher.is_some() && wire.data.is_empty());
            let d = decrypt(&wire, me).unwrap();
            assert_eq!((d.id, d.data.as_slice()), (42, v.data.as_slice()));
            assert_eq!(d.owner_id(), Some(key_id(other.public_key())));
            assert_eq!(decrypt(&wire, &other).unwrap_err(), SecureError::NotForUs);
            // Truncated or altered ciphertexts are refused, never a panic.
            let c = wire.cypher.clone().unwrap();
            for cut in [0, 10, c.len() / 2, c.len() - 1] {
                let t = Value {
                    cypher: Some(c[..cut].to_vec()),
                    ..wire.clone()
                };
                assert!(decrypt(&t, me).is_err());
            }
            let mut flipped = c.clone();
            let last = flipped.len() - 1;
            flipped[last] ^= 1;
            let t = Value {
                cypher: Some(flipped),
                ..wire
            };
            assert!(decrypt(&t, me).is_err());
        }
    }

    #[test]
    fn old_encryptors_tag_is_accepted() {
        use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
        // An old encryptor: GCM with the plaintext as associated data.
        let aes_key = [9u8; 32];
        let iv = [3u8; 12];
        let plain = b"legacy plaintext".to_vec();
        let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &aes_key).unwrap());
        let mut buf = plain.clone();
        k.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(iv),
            Aad::from(plain.as_slice()),
            &mut buf,
        )
        .unwrap();
        let mut data = iv.to_vec();
        data.extend_from_slice(&buf);
        assert!(password::decrypt_with_key(&aes_key, &data).is_err());
        assert_eq!(legacy_gcm(&aes_key, &data), Some(plain));
        data[20] ^= 1;
        assert_eq!(legacy_gcm(&aes_key, &data), None);
    }

    #[test]
    fn certificates_are_found_at_both_locations() {
        let account = pamoja_identity::Account::create(|_| {}).unwrap();
        let cert = account.account_cert();
        let v = certificate_value(&[cert]);
        assert_eq!((v.id, v.value_type), (1, 8));
        assert_eq!(
            &v.data[..3],
            &[
                0xc5,
                ((v.data.len() - 3) >> 8) as u8,
                (v.data.len() - 3) as u8
            ]
        );
        let short = key_id(cert.public_key());
        let long = long_key_location(cert.public_key());
        assert_ne!(short, long);
        assert_eq!(short.to_string(), account.jami_id().to_string());
        for id in [short, long] {
            let chain = certificate_from_value(&v, &id).expect("found");
            assert_eq!(chain[0].der(), cert.der());
        }
        assert!(certificate_from_value(&v, &InfoHash::random()).is_none());
        // Bare PEM is read too.
        let bare = Value {
            data: cert.to_pem().into_bytes(),
            ..v
        };
        assert!(certificate_from_value(&bare, &short).is_some());
    }
}
