//! The account archive (`archive.gz`), read and written exactly as jamid does.
//!
//! The content is one compact JSON object. On disk it is either gzip of that JSON (no
//! password) or `salt ‖ IV ‖ AES-256-GCM(zlib(JSON)) ‖ tag` (with a password, see
//! [`crate::password`]). Keys this crate does not know are kept, in order, through a
//! read-modify-write.

use std::io::{Read, Write};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use flate2::Compression;
use serde_json::{Map, Value};

use crate::cert::Certificate;
use crate::crl::RevocationList;
use crate::error::{Error, Result};
use crate::key::PrivateKey;
use crate::password;

/// Archive key of the account private key (base64 of PKCS#8 PEM).
pub const KEY_ACCOUNT_KEY: &str = "ringAccountKey";
/// Archive key of the account certificate chain (base64 of PEM: account, then CA).
pub const KEY_ACCOUNT_CERT: &str = "ringAccountCert";
/// Archive key of the CA private key.
pub const KEY_CA_KEY: &str = "ringCaKey";
/// Archive key of the Ethereum secret (base64 of 32 bytes).
pub const KEY_ETH_KEY: &str = "ethKey";
/// Archive key of the account CRL (base64 of DER).
pub const KEY_CRL: &str = "ringAccountCRL";
/// Archive key holding the current device's private key file (base64 of its PEM).
pub const KEY_DEVICE_KEY: &str = "TLS.privateKeyFile";
/// Archive key holding the current device's certificate file (base64 of the PEM chain).
pub const KEY_DEVICE_CERT: &str = "TLS.certificateFile";
/// Archive key where Pamoja keeps the certificates of the account's other devices
/// (an object: device id → base64 of PEM). jamid ignores it.
pub const KEY_PAMOJA_DEVICES: &str = "pamoja.devices";

/// Decompressed archives larger than this are refused (jamid's are about 30 KB).
pub const MAX_JSON_LEN: u64 = 64 * 1024 * 1024;

const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// An account archive: the JSON object, with typed accessors for the keys Jami defines.
///
/// It holds private keys: its `Debug` form names the keys present and shows no value, and
/// every text it holds is overwritten with zeros when it is dropped.
#[derive(Clone, PartialEq, Default)]
pub struct Archive {
    json: Map<String, Value>,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("keys", &self.json.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Drop for Archive {
    fn drop(&mut self) {
        fn wipe(v: &mut Value) {
            match v {
                Value::String(s) => zeroize::Zeroize::zeroize(s),
                Value::Array(a) => a.iter_mut().for_each(wipe),
                Value::Object(o) => o.values_mut().for_each(wipe),
                _ => {}
            }
        }
        self.json.values_mut().for_each(wipe);
    }
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the JSON text of an archive.
    pub fn from_json(text: &[u8]) -> Result<Self> {
        match serde_json::from_slice::<Value>(text) {
            Ok(Value::Object(json)) => Ok(Self { json }),
            Ok(_) => Err(Error::NotAnArchive("JSON is not an object".into())),
            Err(e) => Err(Error::NotAnArchive(format!("invalid JSON: {e}"))),
        }
    }

    /// Compact JSON text, keys in their original order.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.json).unwrap_or_default()
    }

    /// Decodes the bytes of an archive file. `password` is `None` or empty for a plain gzip
    /// archive. Like jamid, a gzip layer around encrypted data is undone first.
    pub fn decode(data: &[u8], password: Option<&str>) -> Result<Self> {
        let password = password.filter(|p| !p.is_empty());
        let mut data = data.to_vec();
        // gzip (once or twice) around JSON or around the encrypted bytes; an encrypted
        // archive whose random salt merely looks like gzip's magic is kept as it is.
        if data.starts_with(&GZIP_MAGIC) {
            if let Ok(inflated) = inflate(&data) {
                data = inflated;
                if data.starts_with(&GZIP_MAGIC) {
                    data = inflate(&data)?;
                }
                if let Ok(a) = Self::from_json(&data) {
                    return Ok(a);
                }
            }
        }
        match password {
            Some(pw) => {
                let plain = password::decrypt_with_password(pw.as_bytes(), &data)?;
                Self::from_json(&inflate(&plain)?)
            }
            // A JSON text is a plain archive (or a broken one); encrypted archives are
            // random bytes, which may start with `{` by chance, so only text is read as JSON.
            None if std::str::from_utf8(&data).is_ok() => {
                if looks_like_json(&data) {
                    Self::from_json(&data)
                } else {
                    Err(Error::NotAnArchive("a text file".into()))
                }
            }
            None if data.len() > password::SALT_LEN + password::IV_LEN + password::TAG_LEN => {
                Err(Error::PasswordNeeded)
            }
            None => Err(Error::NotAnArchive(format!(
                "{} bytes, neither gzip nor encrypted",
                data.len()
            ))),
        }
    }

    /// Encodes the archive file: gzip without a password, encrypted zlib with one.
    pub fn encode(&self, password: Option<&str>) -> Result<Vec<u8>> {
        let json = self.to_json();
        match password.filter(|p| !p.is_empty()) {
            None => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
                gz.write_all(&json)
                    .and_then(|_| gz.finish())
                    .map_err(|e| Error::Key(e.to_string()))
            }
            Some(pw) => {
                let mut z = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
                let packed = z
                    .write_all(&json)
                    .and_then(|_| z.finish())
                    .map_err(|e| Error::Key(e.to_string()))?;
                password::encrypt_with_password(pw.as_bytes(), &packed)
            }
        }
    }

    /// Reads and decodes an archive file.
    pub fn read_file(path: &Path, password: Option<&str>) -> Result<Self> {
        let data = std::fs::read(path).map_err(|error| Error::Io {
            path: path.into(),
            error,
        })?;
        Self::decode(&data, password)
    }

    /// Encodes and writes an archive file durably, mode 0600: a temporary file of this
    /// writer's own, synced, renamed over `path`, the directory synced ([`crate::durable`]).
    /// On any failure the previous file stays as it was.
    pub fn write_file(&self, path: &Path, password: Option<&str>) -> Result<()> {
        let data = self.encode(password)?;
        crate::durable::replace(path, &data, 0o600).map_err(|error| Error::Io {
            path: path.into(),
            error,
        })
    }

    /// The raw JSON object.
    pub fn json(&self) -> &Map<String, Value> {
        &self.json
    }

    /// The raw JSON object, mutable.
    pub fn json_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.json
    }

    /// A string value.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.json.get(key).and_then(Value::as_str)
    }

    /// Sets a string value (kept in place if the key exists, appended otherwise).
    pub fn set_str(&mut self, key: &str, value: impl Into<String>) {
        self.json
            .insert(key.to_owned(), Value::String(value.into()));
    }

    fn get_b64(&self, key: &'static str) -> Result<Option<Vec<u8>>> {
        match self.get_str(key) {
            None | Some("") => Ok(None),
            Some(s) => decode_b64(s)
                .map(Some)
                .ok_or_else(|| crate::error::malformed(key, "invalid base64")),
        }
    }

    fn set_b64(&mut self, key: &str, bytes: &[u8]) {
        self.set_str(key, STANDARD.encode(bytes));
    }

    /// The account private key.
    pub fn account_key(&self) -> Result<PrivateKey> {
        PrivateKey::from_pem_or_der(
            &self
                .get_b64(KEY_ACCOUNT_KEY)?
                .ok_or(Error::MissingField(KEY_ACCOUNT_KEY))?,
        )
    }

    /// Sets the account private key.
    pub fn set_account_key(&mut self, key: &PrivateKey) {
        self.set_b64(KEY_ACCOUNT_KEY, key.to_pem().as_bytes());
    }

    /// The account certificate chain (account first, then its CA).
    pub fn account_chain(&self) -> Result<Vec<Certificate>> {
        let pem = self
            .get_b64(KEY_ACCOUNT_CERT)?
            .ok_or(Error::MissingField(KEY_ACCOUNT_CERT))?;
        Certificate::chain_from_pem_or_der(&pem)
    }

    /// Sets the account certificate chain.
    pub fn set_account_chain(&mut self, chain: &[&Certificate]) {
        self.set_b64(
            KEY_ACCOUNT_CERT,
            Certificate::chain_to_pem(chain).as_bytes(),
        );
    }

    /// The CA private key, when the archive has it.
    pub fn ca_key(&self) -> Result<Option<PrivateKey>> {
        self.get_b64(KEY_CA_KEY)?
            .map(|d| PrivateKey::from_pem_or_der(&d))
            .transpose()
    }

    /// Sets the CA private key.
    pub fn set_ca_key(&mut self, key: &PrivateKey) {
        self.set_b64(KEY_CA_KEY, key.to_pem().as_bytes());
    }

    /// The Ethereum secret (empty when absent).
    pub fn eth_secret(&self) -> Result<Vec<u8>> {
        Ok(self.get_b64(KEY_ETH_KEY)?.unwrap_or_default())
    }

    /// Sets the Ethereum secret.
    pub fn set_eth_secret(&mut self, secret: &[u8]) {
        self.set_b64(KEY_ETH_KEY, secret);
    }

    /// The account's revocation list, if any device was revoked.
    pub fn crl(&self) -> Result<Option<RevocationList>> {
        self.get_b64(KEY_CRL)?
            .map(|d| RevocationList::from_pem_or_der(&d))
            .transpose()
    }

    /// Sets the account's revocation list.
    pub fn set_crl(&mut self, crl: &RevocationList) {
        self.set_b64(KEY_CRL, crl.der());
    }

    /// The private key of the device that saved the archive, if present.
    pub fn device_key(&self) -> Result<Option<PrivateKey>> {
        self.get_b64(KEY_DEVICE_KEY)?
            .map(|d| PrivateKey::from_pem_or_der(&d))
            .transpose()
    }

    /// The certificate chain of the device that saved the archive, if present.
    pub fn device_chain(&self) -> Result<Option<Vec<Certificate>>> {
        self.get_b64(KEY_DEVICE_CERT)?
            .map(|d| Certificate::chain_from_pem_or_der(&d))
            .transpose()
    }

    /// Sets the device key and chain of the device this archive belongs to.
    pub fn set_device(&mut self, key: &PrivateKey, chain: &[&Certificate]) {
        self.set_b64(KEY_DEVICE_KEY, key.to_pem().as_bytes());
        self.set_b64(KEY_DEVICE_CERT, Certificate::chain_to_pem(chain).as_bytes());
    }

    /// Certificates of the account's other devices recorded by Pamoja.
    pub fn known_device_certs(&self) -> Result<Vec<Certificate>> {
        let Some(obj) = self.json.get(KEY_PAMOJA_DEVICES).and_then(Value::as_object) else {
            return Ok(Vec::new());
        };
        obj.values()
            .map(|v| {
                let pem = v
                    .as_str()
                    .and_then(decode_b64)
                    .ok_or_else(|| crate::error::malformed(KEY_PAMOJA_DEVICES, "invalid base64"))?;
                Certificate::chain_from_pem_or_der(&pem)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| crate::error::malformed(KEY_PAMOJA_DEVICES, "no certificate"))
            })
            .collect()
    }

    /// Records another device's certificate.
    pub fn add_known_device_cert(&mut self, cert: &Certificate) {
        let entry = self
            .json
            .entry(KEY_PAMOJA_DEVICES)
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        if let Value::Object(m) = entry {
            m.insert(
                cert.device_id().to_string(),
                Value::String(STANDARD.encode(cert.to_pem())),
            );
        }
    }
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    let s: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD
        .decode(&s)
        .or_else(|_| STANDARD_NO_PAD.decode(s.trim_end_matches('=')))
        .ok()
}

fn looks_like_json(data: &[u8]) -> bool {
    data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Inflates zlib or gzip data (auto-detected, as zlib's `inflateInit2(32 + 15)` does).
fn inflate(data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let limit = MAX_JSON_LEN + 1;
    let r = if data.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(data)
            .take(limit)
            .read_to_end(&mut out)
    } else {
        flate2::read::ZlibDecoder::new(data)
            .take(limit)
            .read_to_end(&mut out)
    };
    r.map_err(|e| Error::NotAnArchive(format!("bad compressed data: {e}")))?;
    if out.len() as u64 > MAX_JSON_LEN {
        return Err(Error::NotAnArchive("decompressed archive too large".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Archive {
        Archive::from_json(
            br#"{"zeta":"1","ringAccountKey":"","alpha":{"x":[1,2]},"Account.alias":"me"}"#,
        )
        .unwrap()
    }

    #[test]
    fn writers_of_one_archive_never_share_a_temporary_file() {
        // Two writers in one process used to share `.archive.gz.tmp<pid>`: one of them
        // failed (or, without create_new, wrote into the other's file).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("archive.gz");
        std::thread::scope(|s| {
            let writers: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        for _ in 0..50 {
                            sample().write_file(&path, None).unwrap();
                        }
                    })
                })
                .collect();
            for w in writers {
                w.join().unwrap();
            }
        });
        assert_eq!(Archive::read_file(&path, None).unwrap(), sample());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn plain_round_trip_keeps_unknown_keys_in_order() {
        let a = sample();
        let bytes = a.encode(None).unwrap();
        assert_eq!(&bytes[..3], &GZIP_MAGIC);
        let b = Archive::decode(&bytes, None).unwrap();
        assert_eq!(b.to_json(), a.to_json());
        assert_eq!(
            String::from_utf8(b.to_json()).unwrap(),
            r#"{"zeta":"1","ringAccountKey":"","alpha":{"x":[1,2]},"Account.alias":"me"}"#
        );
    }

    #[test]
    fn encrypted_round_trip_and_errors() {
        let a = sample();
        let bytes = a.encode(Some("secret")).unwrap();
        assert_ne!(&bytes[..3], &GZIP_MAGIC);
        assert_eq!(Archive::decode(&bytes, Some("secret")).unwrap(), a);
        assert!(matches!(
            Archive::decode(&bytes, Some("wrong")),
            Err(Error::Decrypt)
        ));
        assert!(matches!(
            Archive::decode(&bytes, None),
            Err(Error::PasswordNeeded)
        ));
        // An encrypted archive whose random salt starts with `{` still asks for a password.
        let mut brace = bytes.clone();
        brace[0] = b'{';
        assert!(matches!(
            Archive::decode(&brace, None),
            Err(Error::PasswordNeeded)
        ));
        // Nor one whose salt starts like gzip's magic: it is still taken as encrypted
        // (here refused with the password, since its salt was altered).
        let mut gzip_like = bytes.clone();
        gzip_like[..3].copy_from_slice(&GZIP_MAGIC);
        assert!(matches!(
            Archive::decode(&gzip_like, None),
            Err(Error::PasswordNeeded)
        ));
        assert!(matches!(
            Archive::decode(&gzip_like, Some("secret")),
            Err(Error::Decrypt)
        ));
        // gzip around the encrypted bytes is undone first, as jamid does.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&bytes).unwrap();
        assert_eq!(
            Archive::decode(&gz.finish().unwrap(), Some("secret")).unwrap(),
            a
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Archive::decode(b"", None).is_err());
        assert!(Archive::decode(b"[1,2]", None).is_err());
        assert!(Archive::decode(&GZIP_MAGIC, None).is_err());
        let bytes = sample().encode(None).unwrap();
        assert!(Archive::decode(&bytes[..bytes.len() / 2], None).is_err());
        assert!(matches!(
            Archive::decode(&[0u8; 10], Some("pw")),
            Err(Error::EncryptedTooShort(10))
        ));
    }
}
