//! SDES key exchange (RFC 4568): the `a=crypto` attribute of an SDP media section.
//!
//! jamid writes one line per media section, `a=crypto:1 AES_CM_128_HMAC_SHA1_80
//! inline:<base64 of key ‖ salt>`, with no lifetime and no MKI, and takes the first line of
//! a peer's section whose suite it knows. Each side encrypts with the key of its **own**
//! SDP.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

use crate::srtp::{MasterKey, Suite};

/// One `a=crypto` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    /// The tag (jamid always writes 1).
    pub tag: u32,
    /// The suite.
    pub suite: Suite,
    /// Master key and salt of the sender of this SDP.
    pub key: MasterKey,
}

/// Why an `a=crypto` value was not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Not `<tag> <suite> <key-params>`.
    #[error("malformed crypto attribute")]
    Malformed,
    /// A suite we do not implement (F8, AEAD, ...).
    #[error("unsupported crypto suite {0}")]
    UnsupportedSuite(String),
    /// The key is not `inline:` base64 of 30 bytes, or carries an MKI.
    #[error("unusable key parameter")]
    BadKey,
}

impl Crypto {
    /// Tag 1, `suite`, a fresh random key.
    pub fn random(suite: Suite) -> Self {
        Self {
            tag: 1,
            suite,
            key: MasterKey::random(),
        }
    }

    /// Reads the value of an `a=crypto` attribute (what follows `a=crypto:`). A lifetime
    /// after `|` is ignored, as jamid does; an MKI is refused (SRTP here has none).
    pub fn parse(value: &str) -> Result<Self, CryptoError> {
        let mut parts = value.split_ascii_whitespace();
        let tag = parts
            .next()
            .and_then(|t| t.parse().ok())
            .ok_or(CryptoError::Malformed)?;
        let suite_name = parts.next().ok_or(CryptoError::Malformed)?;
        let suite = Suite::from_name(suite_name)
            .ok_or_else(|| CryptoError::UnsupportedSuite(suite_name.into()))?;
        let params = parts.next().ok_or(CryptoError::Malformed)?;
        // Several key parameters may be joined by ';': the first is used.
        let first = params.split(';').next().unwrap_or_default();
        let inline = first.strip_prefix("inline:").ok_or(CryptoError::BadKey)?;
        let mut fields = inline.split('|');
        let b64 = fields.next().unwrap_or_default();
        for f in fields {
            if f.contains(':') {
                return Err(CryptoError::BadKey);
            }
        }
        let raw = STANDARD
            .decode(b64)
            .or_else(|_| STANDARD_NO_PAD.decode(b64))
            .map_err(|_| CryptoError::BadKey)?;
        let key = MasterKey::from_bytes(&raw).ok_or(CryptoError::BadKey)?;
        Ok(Self { tag, suite, key })
    }

    /// The attribute value, as jamid writes it (padded base64: 40 characters).
    pub fn to_value(&self) -> String {
        format!(
            "{} {} inline:{}",
            self.tag,
            self.suite.name(),
            STANDARD.encode(self.key.to_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_jamid_shape() {
        let c = Crypto::random(Suite::AesCm128HmacSha1_80);
        let v = c.to_value();
        assert!(v.starts_with("1 AES_CM_128_HMAC_SHA1_80 inline:"));
        assert_eq!(v.len(), "1 AES_CM_128_HMAC_SHA1_80 inline:".len() + 40);
        assert_eq!(Crypto::parse(&v).unwrap(), c);
    }

    #[test]
    fn rfc4568_example_with_lifetime() {
        let c = Crypto::parse(
            "1 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20",
        )
        .unwrap();
        assert_eq!(c.suite, Suite::AesCm128HmacSha1_32);
        assert_eq!(&c.key.key[..4], b"70xw");
    }

    #[test]
    fn refusals() {
        assert_eq!(Crypto::parse(""), Err(CryptoError::Malformed));
        assert_eq!(
            Crypto::parse("x AES_CM_128_HMAC_SHA1_80 inline:a"),
            Err(CryptoError::Malformed)
        );
        assert_eq!(
            Crypto::parse("1 F8_128_HMAC_SHA1_80 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj"),
            Err(CryptoError::UnsupportedSuite("F8_128_HMAC_SHA1_80".into()))
        );
        assert_eq!(
            Crypto::parse("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA"),
            Err(CryptoError::BadKey)
        );
        assert_eq!(
            Crypto::parse(
                "1 AES_CM_128_HMAC_SHA1_80 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:4"
            ),
            Err(CryptoError::BadKey)
        );
        assert_eq!(
            Crypto::parse("1 AES_CM_128_HMAC_SHA1_80 NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj"),
            Err(CryptoError::BadKey)
        );
    }
}
