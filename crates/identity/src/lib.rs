//! # pamoja-identity: Jami accounts
//!
//! A Jami account is three RSA-4096 identities: a self-signed **CA**, the **account**
//! certificate it signs, and one certificate per **device**, signed by the account. The
//! account's **Jami ID** is the SHA-1 of its public key; a device is known by the SHA-256
//! ([`DeviceId`]) and the SHA-1 ([`ShortDeviceId`]) of its key. Everything an account owns
//! travels in an **archive** (`archive.gz`): JSON, gzip-compressed, or encrypted with a
//! password (Argon2i + AES-256-GCM).
//!
//! This crate reads and writes all of it byte-compatibly with Debian's jamid (jami-daemon
//! 20230206, opendht 2.4.12):
//!
//! * [`key`]: RSA keys through aws-lc-rs, PKCS#8 PEM/DER, PKCS#1 v1.5 signatures;
//! * [`cert`]: X.509 certificates with Jami's exact profile (and jamid's negative serials);
//! * [`crl`]: revocation lists, as jamid signs them to revoke a device;
//! * [`chain`]: device ← account ← CA validation, each failure its own [`ChainError`];
//! * [`password`]: opendht's password and raw-key AES-GCM encryption;
//! * [`archive`]: the archive container and JSON, unknown keys kept;
//! * [`account`]: create an account, add and revoke devices, read and save archives;
//! * [`announce`]: the device receipt and the signed DeviceAnnouncement;
//! * [`eth`]: the legacy Ethereum key and address;
//! * [`durable`]: files replaced so that a crash leaves the old or the new content.
//!
//! ```no_run
//! use pamoja_identity::{Account, Archive};
//! let account = Account::create(|_step| {})?;
//! account.archive().write_file("archive.gz".as_ref(), Some("secret"))?;
//! let again = Account::from_archive(Archive::read_file("archive.gz".as_ref(), Some("secret"))?)?;
//! assert_eq!(again.jami_id(), account.jami_id());
//! # Ok::<(), pamoja_identity::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod account;
pub mod announce;
pub mod archive;
pub mod cert;
pub mod chain;
pub mod crl;
pub mod durable;
pub mod error;
pub mod eth;
pub mod id;
pub mod key;
pub mod msgpack;
pub mod password;
mod pem;

pub use account::{Account, Device, Step};
pub use archive::Archive;
pub use cert::Certificate;
pub use chain::verify_device_chain;
pub use crl::RevocationList;
pub use error::{ChainError, Error, Result};
pub use id::{DeviceId, JamiId, ParseIdError, ShortDeviceId};
pub use key::{PrivateKey, PublicKey, SignatureHash};
