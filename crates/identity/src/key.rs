//! RSA keys through aws-lc-rs: generation, PKCS#8 PEM/DER, signatures.
//!
//! jamid writes private keys as unencrypted PKCS#8 PEM (`BEGIN PRIVATE KEY`) and public keys
//! as DER SubjectPublicKeyInfo; both are what this module reads and writes.

use std::fmt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _, UnparsedPublicKey, VerificationAlgorithm};
use der::Decode;

use crate::error::{Error, Result, malformed};
use crate::id::{DeviceId, JamiId, ShortDeviceId};
use crate::pem;

/// Size of the keys Jami generates.
pub const JAMI_KEY_BITS: usize = 4096;

/// Hash used with RSA PKCS#1 v1.5 signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureHash {
    /// SHA-256.
    Sha256,
    /// SHA-384 (what GnuTLS picks to sign certificates with an RSA-4096 key).
    Sha384,
    /// SHA-512 (DHT values, receipts, CRLs).
    Sha512,
}

impl SignatureHash {
    fn signing(self) -> &'static dyn signature::RsaEncoding {
        match self {
            Self::Sha256 => &signature::RSA_PKCS1_SHA256,
            Self::Sha384 => &signature::RSA_PKCS1_SHA384,
            Self::Sha512 => &signature::RSA_PKCS1_SHA512,
        }
    }

    fn verifying(self) -> &'static dyn VerificationAlgorithm {
        match self {
            Self::Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Self::Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Self::Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        }
    }
}

/// An RSA private key.
pub struct PrivateKey {
    pair: KeyPair,
    pkcs8: Vec<u8>,
    public: PublicKey,
}

impl PrivateKey {
    /// Generates a fresh RSA-4096 key (e = 65537), as Jami does for every identity.
    pub fn generate() -> Result<Self> {
        let pair = KeyPair::generate(KeySize::Rsa4096)
            .map_err(|_| Error::Key("RSA key generation failed".into()))?;
        let der: Pkcs8V1Der<'static> = pair
            .as_der()
            .map_err(|_| Error::Key("PKCS#8 export failed".into()))?;
        Self::from_pkcs8_der(der.as_ref())
    }

    /// Reads an unencrypted PKCS#8 DER private key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let pair = KeyPair::from_pkcs8(der).map_err(|e| malformed("private key", e))?;
        let spki: PublicKeyX509Der<'static> = pair
            .public_key()
            .as_der()
            .map_err(|_| Error::Key("public key export failed".into()))?;
        let public = PublicKey::from_spki_der(spki.as_ref())?;
        Ok(Self {
            pair,
            pkcs8: der.to_vec(),
            public,
        })
    }

    /// Reads a private key in PEM (`PRIVATE KEY`, PKCS#8) or DER form.
    pub fn from_pem_or_der(data: &[u8]) -> Result<Self> {
        if pem::is_pem(data) {
            let blocks = pem::decode_all("private key", data)?;
            let (label, der) = blocks
                .into_iter()
                .next()
                .ok_or_else(|| malformed("private key", "empty"))?;
            match label.as_str() {
                "PRIVATE KEY" => Self::from_pkcs8_der(&der),
                "RSA PRIVATE KEY" => {
                    let pair = KeyPair::from_der(&der).map_err(|e| malformed("private key", e))?;
                    let pkcs8: Pkcs8V1Der<'static> = pair
                        .as_der()
                        .map_err(|_| Error::Key("PKCS#8 export failed".into()))?;
                    Self::from_pkcs8_der(pkcs8.as_ref())
                }
                other => Err(malformed(
                    "private key",
                    format!("unexpected PEM label {other:?}"),
                )),
            }
        } else {
            Self::from_pkcs8_der(data)
        }
    }

    /// PKCS#8 DER.
    pub fn to_pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), as in `ring_device.key` and archives.
    pub fn to_pem(&self) -> String {
        pem::encode("PRIVATE KEY", &self.pkcs8)
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `msg` with RSA PKCS#1 v1.5 and the given hash.
    pub fn sign(&self, hash: SignatureHash, msg: &[u8]) -> Result<Vec<u8>> {
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(hash.signing(), &SystemRandom::new(), msg, &mut sig)
            .map_err(|_| Error::Key("signing failed".into()))?;
        Ok(sig)
    }
}

impl Drop for PrivateKey {
    /// The PKCS#8 copy is overwritten with zeros (aws-lc clears the key pair's own memory
    /// when it frees it).
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.pkcs8);
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// An RSA public key, kept as its DER SubjectPublicKeyInfo.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    spki: Vec<u8>,
    pkcs1: Vec<u8>,
}

/// OID of rsaEncryption.
pub(crate) const RSA_ENCRYPTION: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

impl PublicKey {
    /// Reads a DER SubjectPublicKeyInfo holding an RSA key.
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        let spki =
            spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|e| malformed("public key", e))?;
        if spki.algorithm.oid != RSA_ENCRYPTION {
            return Err(malformed(
                "public key",
                format!("not an RSA key ({})", spki.algorithm.oid),
            ));
        }
        let pkcs1 = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| malformed("public key", "bit string with unused bits"))?
            .to_vec();
        Ok(Self {
            spki: der.to_vec(),
            pkcs1,
        })
    }

    /// Reads a public key in PEM (`PUBLIC KEY`) or DER (SubjectPublicKeyInfo) form. Trailing
    /// NUL bytes after PEM text (GnuTLS exports one) are ignored.
    pub fn from_pem_or_der(data: &[u8]) -> Result<Self> {
        let trimmed = match data.iter().rposition(|b| *b != 0) {
            Some(end) => &data[..=end],
            None => data,
        };
        if pem::is_pem(trimmed) {
            let blocks = pem::decode_all("public key", trimmed)?;
            match blocks.into_iter().next() {
                Some((label, der)) if label == "PUBLIC KEY" => Self::from_spki_der(&der),
                Some((label, _)) => Err(malformed(
                    "public key",
                    format!("unexpected PEM label {label:?}"),
                )),
                None => Err(malformed("public key", "empty")),
            }
        } else {
            Self::from_spki_der(data)
        }
    }

    /// PEM text (`-----BEGIN PUBLIC KEY-----`, ending with a newline).
    pub fn to_pem(&self) -> String {
        pem::encode("PUBLIC KEY", &self.spki)
    }

    /// DER SubjectPublicKeyInfo (what every Jami id hashes).
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// PKCS#1 RSAPublicKey DER.
    pub fn pkcs1_der(&self) -> &[u8] {
        &self.pkcs1
    }

    /// Verifies an RSA PKCS#1 v1.5 signature.
    pub fn verify(&self, hash: SignatureHash, msg: &[u8], sig: &[u8]) -> Result<()> {
        UnparsedPublicKey::new(hash.verifying(), &self.pkcs1)
            .verify(msg, sig)
            .map_err(|_| Error::BadSignature)
    }

    /// SHA-1 of the SPKI, read as a Jami ID (meaningful for an account key).
    pub fn jami_id(&self) -> JamiId {
        JamiId::of_spki(&self.spki)
    }

    /// SHA-256 of the SPKI, read as a device id (meaningful for a device key).
    pub fn device_id(&self) -> DeviceId {
        DeviceId::of_spki(&self.spki)
    }

    /// SHA-1 of the SPKI, read as a short device id.
    pub fn short_device_id(&self) -> ShortDeviceId {
        ShortDeviceId::of_spki(&self.spki)
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
        #[derive(der::Sequence)]
        struct RsaPub<'a> {
            n: der::asn1::UintRef<'a>,
            _e: der::asn1::UintRef<'a>,
        }
        RsaPub::from_der(&self.pkcs1)
            .map(|k| k.n.as_bytes().len() * 8)
            .unwrap_or(0)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(sha1 {})", self.jami_id())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// One RSA-4096 key shared by unit tests (generation takes about a second).
    pub(crate) fn test_key(n: usize) -> &'static PrivateKey {
        static KEYS: OnceLock<Vec<PrivateKey>> = OnceLock::new();
        &KEYS.get_or_init(|| (0..3).map(|_| PrivateKey::generate().unwrap()).collect())[n]
    }

    #[test]
    fn generate_sign_verify_round_trip() {
        let k = test_key(0);
        assert_eq!(k.public_key().bits(), 4096);
        let sig = k.sign(SignatureHash::Sha512, b"hello").unwrap();
        assert_eq!(sig.len(), 512);
        k.public_key()
            .verify(SignatureHash::Sha512, b"hello", &sig)
            .unwrap();
        assert!(
            k.public_key()
                .verify(SignatureHash::Sha512, b"hellO", &sig)
                .is_err()
        );
        assert!(
            k.public_key()
                .verify(SignatureHash::Sha384, b"hello", &sig)
                .is_err()
        );
        let again = PrivateKey::from_pem_or_der(k.to_pem().as_bytes()).unwrap();
        assert_eq!(again.public_key(), k.public_key());
        assert!(k.to_pem().starts_with("-----BEGIN PRIVATE KEY-----\n"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(PrivateKey::from_pem_or_der(b"garbage").is_err());
        assert!(PublicKey::from_spki_der(&[0x30, 0x03, 0x02, 0x01]).is_err());
    }
}
