//! Errors of the identity layer.

use crate::id::DeviceId;

/// Everything that can go wrong while reading, writing or checking an identity.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key could not be generated, parsed or used.
    #[error("key error: {0}")]
    Key(String),
    /// DER or PEM input is malformed.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being decoded (certificate, CRL, key, ...).
        what: &'static str,
        /// Why it was rejected.
        detail: String,
    },
    /// The password is wrong or the encrypted data was altered.
    #[error("decryption failed: wrong password or corrupted data")]
    Decrypt,
    /// Encrypted data is too short to hold salt, IV and tag.
    #[error("encrypted data too short ({0} bytes)")]
    EncryptedTooShort(usize),
    /// The archive is not a Jami account archive.
    #[error("not a Jami account archive: {0}")]
    NotAnArchive(String),
    /// A required key of the archive is missing.
    #[error("archive has no `{0}`")]
    MissingField(&'static str),
    /// The archive is encrypted and no password was given.
    #[error("archive is encrypted: a password is needed")]
    PasswordNeeded,
    /// Chain validation failed.
    #[error("certificate chain rejected: {0}")]
    Chain(#[from] ChainError),
    /// No certificate of that device is known.
    #[error("unknown device {0}")]
    UnknownDevice(DeviceId),
    /// A signature did not verify.
    #[error("bad signature")]
    BadSignature,
    /// Something in a signed structure does not match what it should.
    #[error("mismatch: {0}")]
    Mismatch(String),
    /// Reading or writing a file failed.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file concerned.
        path: std::path::PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
}

/// Why a device ← account ← CA chain was rejected. Each reason is its own variant so callers
/// (and tests) can tell them apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// A certificate's issuer name is not its parent's subject.
    #[error("{cert}: issuer does not match the subject of its parent")]
    WrongIssuer {
        /// Which certificate of the chain.
        cert: &'static str,
    },
    /// A certificate's signature does not verify with its parent's key.
    #[error("{cert}: signature does not verify")]
    BadSignature {
        /// Which certificate of the chain.
        cert: &'static str,
    },
    /// A certificate's notAfter is in the past.
    #[error("{cert}: expired")]
    Expired {
        /// Which certificate of the chain.
        cert: &'static str,
    },
    /// A certificate's notBefore is in the future.
    #[error("{cert}: not yet valid")]
    NotYetValid {
        /// Which certificate of the chain.
        cert: &'static str,
    },
    /// The device certificate is listed in the account's CRL.
    #[error("device certificate revoked by the account")]
    Revoked,
    /// The CRL is not signed by the account key.
    #[error("revocation list not signed by the account")]
    BadCrl,
    /// The account certificate's UID is not the SHA-1 of its key.
    #[error("{cert}: UID is not the hash of its public key")]
    IdMismatch {
        /// Which certificate of the chain.
        cert: &'static str,
    },
    /// An issuer lacks CA basic constraints (or keyCertSign usage).
    #[error("{cert}: not a certificate authority")]
    NotCa {
        /// Which certificate of the chain.
        cert: &'static str,
    },
    /// A signature algorithm the chain uses is not accepted (e.g. SHA-1).
    #[error("{cert}: unsupported signature algorithm")]
    UnsupportedAlgorithm {
        /// Which certificate of the chain.
        cert: &'static str,
    },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn malformed(what: &'static str, detail: impl std::fmt::Display) -> Error {
    Error::Malformed {
        what,
        detail: detail.to_string(),
    }
}
