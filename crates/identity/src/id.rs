//! Typed identifiers: the Jami ID, the device id and the short device id.
//!
//! All three are hashes of a public key's DER SubjectPublicKeyInfo:
//! the Jami ID is SHA-1 of the account key, the device id SHA-256 of the device key, the
//! short device id SHA-1 of the device key. Their text form is lowercase hex.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;

/// An id string was not the hex of the expected length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} hex characters, got {got:?}")]
pub struct ParseIdError {
    expected: usize,
    got: String,
}

macro_rules! hash_id {
    ($(#[$doc:meta])* $name:ident, $len:expr, $alg:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// Wraps raw hash bytes.
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The raw hash bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Hashes a DER SubjectPublicKeyInfo into this id.
            pub fn of_spki(spki_der: &[u8]) -> Self {
                let d = digest::digest($alg, spki_der);
                let mut out = [0u8; $len];
                out.copy_from_slice(d.as_ref());
                Self(out)
            }

            /// Reads a slice of exactly [`Self::LEN`] bytes.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; $len]>::try_from(bytes).ok().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, ParseIdError> {
                let err = || ParseIdError { expected: 2 * $len, got: s.chars().take(80).collect() };
                if s.len() != 2 * $len {
                    return Err(err());
                }
                let mut out = [0u8; $len];
                hex::decode_to_slice(s, &mut out).map_err(|_| err())?;
                Ok(Self(out))
            }
        }
    };
}

hash_id!(
    /// The Jami ID of an account: SHA-1 of the account key's SubjectPublicKeyInfo (40 hex).
    /// It is also the DHT key where the account's devices are announced.
    JamiId, 20, &digest::SHA1_FOR_LEGACY_USE_ONLY
);
hash_id!(
    /// A device id: SHA-256 of the device key's SubjectPublicKeyInfo (64 hex), as jamid shows
    /// it over D-Bus (`Account.deviceID`).
    DeviceId, 32, &digest::SHA256
);
hash_id!(
    /// A short device id: SHA-1 of the device key's SubjectPublicKeyInfo (40 hex). It is the
    /// device certificate's UID and the `dev` field of announcements and receipts.
    ShortDeviceId, 20, &digest::SHA1_FOR_LEGACY_USE_ONLY
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let id = JamiId::of_spki(b"abc");
        // SHA-1("abc")
        assert_eq!(id.to_string(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(id.to_string().parse::<JamiId>().unwrap(), id);
        assert!("a9993e".parse::<JamiId>().is_err());
        assert!(
            "zz993e364706816aba3e25717850c26c9cd0d89d"
                .parse::<JamiId>()
                .is_err()
        );
        let dev = DeviceId::of_spki(b"abc");
        assert_eq!(
            dev.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(dev.to_string()[..40].parse::<DeviceId>().is_err());
    }
}
