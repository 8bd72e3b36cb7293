//! 160-bit ids: node ids and keys, with the XOR metric.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;

/// A 20-byte OpenDHT id (node id or key). Text form: 40 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// Length in bytes.
    pub const LEN: usize = 20;

    /// SHA-1 of `data` (OpenDHT's `InfoHash::get`).
    pub fn get(data: &[u8]) -> Self {
        let d = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, data);
        let mut out = [0u8; 20];
        out.copy_from_slice(d.as_ref());
        Self(out)
    }

    /// Parses 40 hex digits, or hashes any other text with SHA-1, as OpenDHT's dhtnode does.
    pub fn from_key_text(text: &str) -> Self {
        text.parse().unwrap_or_else(|_| Self::get(text.as_bytes()))
    }

    /// A uniformly random id.
    pub fn random() -> Self {
        Self::random_from(&mut crate::random::OsRandom)
    }

    /// A uniformly random id drawn from `random`.
    pub fn random_from(random: &mut dyn crate::random::Random) -> Self {
        let mut out = [0u8; 20];
        random.fill(&mut out);
        Self(out)
    }

    /// Reads exactly 20 bytes.
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        <[u8; 20]>::try_from(b).ok().map(Self)
    }

    /// True for the all-zero id, which OpenDHT treats as "absent".
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 20]
    }

    /// XOR distance to `other`.
    pub fn distance(&self, other: &InfoHash) -> [u8; 20] {
        let mut d = [0u8; 20];
        for (i, x) in d.iter_mut().enumerate() {
            *x = self.0[i] ^ other.0[i];
        }
        d
    }

    /// Orders `a` and `b` by their XOR distance to `self`.
    pub fn xor_cmp(&self, a: &InfoHash, b: &InfoHash) -> Ordering {
        self.distance(a).cmp(&self.distance(b))
    }

    /// Number of leading bits `self` and `other` share.
    pub fn common_bits(&self, other: &InfoHash) -> u32 {
        let d = self.distance(other);
        for (i, byte) in d.iter().enumerate() {
            if *byte != 0 {
                return i as u32 * 8 + byte.leading_zeros();
            }
        }
        160
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &hex::encode(self.0)[..12])
    }
}

/// The text was not 40 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a 40-hex-digit id")]
pub struct ParseInfoHashError;

impl FromStr for InfoHash {
    type Err = ParseInfoHashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 20];
        if s.len() != 40 {
            return Err(ParseInfoHashError);
        }
        hex::decode_to_slice(s, &mut out).map_err(|_| ParseInfoHashError)?;
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_and_metric() {
        assert_eq!(
            InfoHash::get(b"hello").to_string(),
            "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
        );
        assert_eq!(InfoHash::from_key_text("hello"), InfoHash::get(b"hello"));
        let h = InfoHash::from_key_text("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
        assert_eq!(h, InfoHash::get(b"hello"));
        let zero = InfoHash::default();
        let mut one = [0u8; 20];
        one[19] = 1;
        let mut top = [0u8; 20];
        top[0] = 0x80;
        assert_eq!(zero.xor_cmp(&InfoHash(one), &InfoHash(top)), Ordering::Less);
        assert_eq!(zero.common_bits(&InfoHash(one)), 159);
        assert_eq!(zero.common_bits(&InfoHash(top)), 0);
        assert_eq!(zero.common_bits(&zero), 160);
    }
}
