//! SRTP (RFC 3711) as Jami calls use it: AES counter mode with 128-bit keys and HMAC-SHA1
//! authentication, tags of 80 or 32 bits, key-derivation rate 0, no MKI.
//!
//! One [`Srtp`] context holds one direction's session keys, derived from the master key and
//! salt of an `a=crypto` line (see [`crate::sdes`]), and the per-SSRC state RFC 3711 asks
//! for: the rollover counter, the highest sequence number seen and a replay window. A
//! packet that is too short, fails authentication or is a replay is refused with an
//! [`SrtpError`] and counted in [`SrtpStats`]; the context is left as it was.
//!
//! jamid sends and expects **plain** RTCP, so there is no SRTCP here.
//!
//! The crypto is aws-lc-rs's AES-CTR and HMAC-SHA1: the workspace's one crypto backend.

use aws_lc_rs::cipher::{AES_128, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;

use crate::rtp;

/// Length of an SRTP master key.
pub const MASTER_KEY_LEN: usize = 16;
/// Length of an SRTP master salt.
pub const MASTER_SALT_LEN: usize = 14;
/// Packets of the replay window behind the highest one received.
pub const REPLAY_WINDOW: u64 = 64;
/// SSRCs one context follows at most; a further one is refused ([`SrtpError::TooManyStreams`]).
pub const MAX_STREAMS: usize = 32;

/// The crypto suites of SDES that jamid offers and accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// `AES_CM_128_HMAC_SHA1_80`: 10-byte tag (jamid's own choice).
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`: 4-byte tag.
    AesCm128HmacSha1_32,
}

impl Suite {
    /// The suite's name in `a=crypto` lines.
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// The suite named `name` (exact, as jamid compares).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "AES_CM_128_HMAC_SHA1_80" => Some(Suite::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Some(Suite::AesCm128HmacSha1_32),
            _ => None,
        }
    }

    /// Bytes of authentication tag appended to each packet.
    pub fn tag_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 => 4,
        }
    }
}

/// A master key and salt (the 30 bytes of an `inline:` key parameter).
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    /// The master key.
    pub key: [u8; MASTER_KEY_LEN],
    /// The master salt.
    pub salt: [u8; MASTER_SALT_LEN],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Key then salt, as concatenated in `inline:`; `None` unless exactly 30 bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != MASTER_KEY_LEN + MASTER_SALT_LEN {
            return None;
        }
        let mut key = [0; MASTER_KEY_LEN];
        let mut salt = [0; MASTER_SALT_LEN];
        key.copy_from_slice(&b[..MASTER_KEY_LEN]);
        salt.copy_from_slice(&b[MASTER_KEY_LEN..]);
        Some(Self { key, salt })
    }

    /// Fresh random key and salt.
    pub fn random() -> Self {
        let mut b = [0u8; MASTER_KEY_LEN + MASTER_SALT_LEN];
        pamoja_channel::random::Random::fill(&mut pamoja_channel::random::OsRandom, &mut b);
        Self::from_bytes(&b).expect("30 bytes")
    }

    /// Key then salt.
    pub fn to_bytes(&self) -> [u8; MASTER_KEY_LEN + MASTER_SALT_LEN] {
        let mut b = [0; MASTER_KEY_LEN + MASTER_SALT_LEN];
        b[..MASTER_KEY_LEN].copy_from_slice(&self.key);
        b[MASTER_KEY_LEN..].copy_from_slice(&self.salt);
        b
    }
}

/// Why a packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// Not an RTP packet (or shorter than its header and tag).
    #[error("not an RTP packet or truncated")]
    Truncated,
    /// The authentication tag does not match.
    #[error("authentication failed")]
    AuthFailed,
    /// The packet was received before, or is older than the replay window.
    #[error("replayed or too old")]
    Replayed,
    /// The context already follows [`MAX_STREAMS`] SSRCs.
    #[error("too many streams")]
    TooManyStreams,
    /// 2^48 packets were sent on one SSRC: the keys must change.
    #[error("packet index exhausted")]
    Exhausted,
}

/// What a context did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SrtpStats {
    /// Packets protected.
    pub protected: u64,
    /// Packets authenticated and decrypted.
    pub unprotected: u64,
    /// Packets refused as truncated or not RTP.
    pub truncated: u64,
    /// Packets refused for a wrong tag.
    pub auth_failed: u64,
    /// Packets refused as replays.
    pub replayed: u64,
    /// Packets refused for a new SSRC past [`MAX_STREAMS`].
    pub too_many_streams: u64,
}

/// The session keys of one direction, derived as RFC 3711 section 4.3 with labels 0-2.
struct SessionKeys {
    cipher: EncryptingKey,
    salt: [u8; MASTER_SALT_LEN],
    auth: hmac::Key,
}

/// `len` bytes of AES-CM keystream under `key` from the counter block `iv`.
fn keystream(key: &[u8; 16], iv: [u8; 16], len: usize) -> Vec<u8> {
    let k = EncryptingKey::ctr(UnboundCipherKey::new(&AES_128, key).expect("16-byte key"))
        .expect("AES-128-CTR");
    let mut out = vec![0; len];
    k.less_safe_encrypt(&mut out, EncryptionContext::Iv128(FixedLength::from(iv)))
        .expect("CTR takes any length");
    out
}

/// RFC 3711 4.3.1 with a key-derivation rate of 0: `x = (label << 48) XOR master_salt`,
/// keystream from `x * 2^16`.
fn derive(master: &MasterKey, label: u8, len: usize) -> Vec<u8> {
    let mut iv = [0u8; 16];
    iv[..MASTER_SALT_LEN].copy_from_slice(&master.salt);
    iv[7] ^= label;
    keystream(&master.key, iv, len)
}

impl SessionKeys {
    fn rtp(master: &MasterKey) -> Self {
        let cipher_key: [u8; 16] = derive(master, 0, 16).try_into().expect("16 bytes");
        let auth_key = derive(master, 1, 20);
        let salt: [u8; MASTER_SALT_LEN] = derive(master, 2, MASTER_SALT_LEN)
            .try_into()
            .expect("14 bytes");
        Self {
            cipher: EncryptingKey::ctr(
                UnboundCipherKey::new(&AES_128, &cipher_key).expect("16-byte key"),
            )
            .expect("AES-128-CTR"),
            salt,
            auth: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &auth_key),
        }
    }

    /// Applies the keystream of packet `index` of `ssrc` to `payload` (encrypts or decrypts).
    fn crypt(&self, ssrc: u32, index: u64, payload: &mut [u8]) {
        if payload.is_empty() {
            return;
        }
        let mut iv = [0u8; 16];
        iv[..MASTER_SALT_LEN].copy_from_slice(&self.salt);
        for (i, b) in ssrc.to_be_bytes().iter().enumerate() {
            iv[4 + i] ^= b;
        }
        for (i, b) in index.to_be_bytes()[2..].iter().enumerate() {
            iv[8 + i] ^= b;
        }
        self.cipher
            .less_safe_encrypt(payload, EncryptionContext::Iv128(FixedLength::from(iv)))
            .expect("CTR takes any length");
    }

    /// The full HMAC-SHA1 of `authenticated || ROC`.
    fn tag(&self, authenticated: &[u8], roc: u32) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.auth);
        ctx.update(authenticated);
        ctx.update(&roc.to_be_bytes());
        ctx.sign()
    }
}

/// Per-SSRC state.
#[derive(Debug, Clone, Copy)]
struct Stream {
    ssrc: u32,
    /// Highest packet index sent or authenticated (48 bits).
    highest: u64,
    /// Bit `n` set: packet `highest - n` was received.
    window: u64,
}

/// One direction of SRTP: protects what we send, or unprotects what a peer sends.
pub struct Srtp {
    suite: Suite,
    keys: SessionKeys,
    streams: Vec<Stream>,
    stats: SrtpStats,
}

impl std::fmt::Debug for Srtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Srtp")
            .field("suite", &self.suite)
            .field("streams", &self.streams.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// RFC 3711 appendix A: the index of sequence number `seq` given the highest index seen.
fn estimate_index(highest: u64, seq: u16) -> u64 {
    let roc = highest >> 16;
    let s_l = (highest & 0xffff) as i64;
    let seq_i = seq as i64;
    let v = if s_l < 32768 {
        if seq_i - s_l > 32768 {
            roc.wrapping_sub(1)
        } else {
            roc
        }
    } else if s_l - 32768 > seq_i {
        roc + 1
    } else {
        roc
    };
    (v << 16) | seq as u64
}

impl Srtp {
    /// A context for `suite` with the session keys derived from `master`.
    pub fn new(suite: Suite, master: &MasterKey) -> Self {
        Self {
            suite,
            keys: SessionKeys::rtp(master),
            streams: Vec::new(),
            stats: SrtpStats::default(),
        }
    }

    /// The context's suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// What the context did so far.
    pub fn stats(&self) -> SrtpStats {
        self.stats
    }

    fn stream(&mut self, ssrc: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.ssrc == ssrc)
    }

    fn refuse(&mut self, e: SrtpError) -> SrtpError {
        match e {
            SrtpError::Truncated => self.stats.truncated += 1,
            SrtpError::AuthFailed => self.stats.auth_failed += 1,
            SrtpError::Replayed => self.stats.replayed += 1,
            SrtpError::TooManyStreams => self.stats.too_many_streams += 1,
            SrtpError::Exhausted => {}
        }
        e
    }

    /// Encrypts the payload of the RTP packet in `packet` and appends the tag.
    pub fn protect(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        let (hlen, ssrc, seq) = match rtp::header_fields(packet) {
            Some(f) => f,
            None => return Err(self.refuse(SrtpError::Truncated)),
        };
        let index = match self.stream(ssrc) {
            Some(i) => {
                let s = self.streams[i];
                let index = estimate_index(s.highest, seq);
                if index >> 48 != 0 {
                    return Err(SrtpError::Exhausted);
                }
                if index > s.highest {
                    self.streams[i].highest = index;
                }
                index
            }
            None => {
                if self.streams.len() >= MAX_STREAMS {
                    return Err(self.refuse(SrtpError::TooManyStreams));
                }
                // The sender starts its rollover counter at 0.
                self.streams.push(Stream {
                    ssrc,
                    highest: seq as u64,
                    window: 1,
                });
                seq as u64
            }
        };
        self.keys.crypt(ssrc, index, &mut packet[hlen..]);
        let tag = self.keys.tag(packet, (index >> 16) as u32);
        packet.extend_from_slice(&tag.as_ref()[..self.suite.tag_len()]);
        self.stats.protected += 1;
        Ok(())
    }

    /// Checks the tag of the SRTP packet in `packet`, refuses replays, decrypts its payload
    /// and removes the tag. On an error `packet` is unchanged.
    pub fn unprotect(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        let tag_len = self.suite.tag_len();
        let Some(body_len) = packet.len().checked_sub(tag_len) else {
            return Err(self.refuse(SrtpError::Truncated));
        };
        let (hlen, ssrc, seq) = match rtp::header_fields(&packet[..body_len]) {
            Some(f) => f,
            None => return Err(self.refuse(SrtpError::Truncated)),
        };
        let slot = self.stream(ssrc);
        if slot.is_none() && self.streams.len() >= MAX_STREAMS {
            return Err(self.refuse(SrtpError::TooManyStreams));
        }
        // A new stream's first packet is taken at rollover counter 0 (RFC 3711 3.3.1).
        let (index, stream) = match slot {
            Some(i) => {
                let s = self.streams[i];
                (estimate_index(s.highest, seq), Some(s))
            }
            None => (seq as u64, None),
        };
        if index >> 48 != 0 {
            return Err(self.refuse(SrtpError::Replayed));
        }
        if let Some(s) = stream
            && index <= s.highest
        {
            let age = s.highest - index;
            if age >= REPLAY_WINDOW || s.window & (1 << age) != 0 {
                return Err(self.refuse(SrtpError::Replayed));
            }
        }
        let tag = self.keys.tag(&packet[..body_len], (index >> 16) as u32);
        // Constant-time comparison of the truncated tag.
        let diff = tag.as_ref()[..tag_len]
            .iter()
            .zip(&packet[body_len..])
            .fold(0u8, |d, (a, b)| d | (a ^ b));
        if diff != 0 {
            return Err(self.refuse(SrtpError::AuthFailed));
        }
        packet.truncate(body_len);
        self.keys.crypt(ssrc, index, &mut packet[hlen..]);
        match slot {
            Some(i) => {
                let s = &mut self.streams[i];
                if index > s.highest {
                    let shift = index - s.highest;
                    s.window = if shift >= 64 { 0 } else { s.window << shift } | 1;
                    s.highest = index;
                } else {
                    s.window |= 1 << (s.highest - index);
                }
            }
            None => self.streams.push(Stream {
                ssrc,
                highest: index,
                window: 1,
            }),
        }
        self.stats.unprotected += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        hex::decode(s).unwrap()
    }

    fn rfc_master() -> MasterKey {
        MasterKey::from_bytes(&unhex(
            "E1F97A0D3E018BE0D64FA32C06DE4139 0EC675AD498AFEEBB6960B3AABE6",
        ))
        .unwrap()
    }

    #[test]
    fn key_derivation_matches_rfc3711_b3() {
        let m = rfc_master();
        assert_eq!(derive(&m, 0, 16), unhex("C61E7A93744F39EE10734AFE3FF7A087"));
        assert_eq!(derive(&m, 2, 14), unhex("30CBBC08863D8C85D49DB34A9AE1"));
        assert_eq!(
            derive(&m, 1, 20),
            unhex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
        );
    }

    #[test]
    fn keystream_matches_rfc3711_b2() {
        let key: [u8; 16] = unhex("2B7E151628AED2A6ABF7158809CF4F3C")
            .try_into()
            .unwrap();
        let iv: [u8; 16] = unhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000")
            .try_into()
            .unwrap();
        assert_eq!(
            keystream(&key, iv, 48),
            unhex(
                "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB
                 41E95B3BB0A2E8DD477901E4FCA894C0"
            )
        );
    }

    fn packet(ssrc: u32, seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 111];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&1234u32.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn round_trip_both_suites() {
        for suite in [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32] {
            let m = MasterKey::random();
            let (mut tx, mut rx) = (Srtp::new(suite, &m), Srtp::new(suite, &m));
            for seq in [65530u16, 65535, 0, 1, 2] {
                let plain = packet(7, seq, b"some audio frame");
                let mut p = plain.clone();
                tx.protect(&mut p).unwrap();
                assert_eq!(p.len(), plain.len() + suite.tag_len());
                assert_ne!(&p[12..plain.len()], &plain[12..]);
                rx.unprotect(&mut p).unwrap();
                assert_eq!(p, plain);
            }
            assert_eq!(rx.stats().unprotected, 5);
            // After the wrap the rollover counter is 1: the index says so.
            assert_eq!(rx.streams[0].highest, (1 << 16) | 2);
        }
    }

    #[test]
    fn replays_forgeries_and_truncations_are_refused_and_counted() {
        let m = MasterKey::random();
        let (mut tx, mut rx) = (
            Srtp::new(Suite::AesCm128HmacSha1_80, &m),
            Srtp::new(Suite::AesCm128HmacSha1_80, &m),
        );
        let mut sent = Vec::new();
        for seq in 100..200u16 {
            let mut p = packet(9, seq, &[seq as u8; 50]);
            tx.protect(&mut p).unwrap();
            sent.push(p);
        }
        // Out of order inside the window is fine, once.
        let mut late = sent[98].clone();
        rx.unprotect(&mut sent[99].clone()).unwrap();
        rx.unprotect(&mut late).unwrap();
        let mut again = sent[98].clone();
        assert_eq!(rx.unprotect(&mut again), Err(SrtpError::Replayed));
        assert_eq!(again, sent[98], "a refused packet is left untouched");
        // Older than the window.
        assert_eq!(rx.unprotect(&mut sent[0].clone()), Err(SrtpError::Replayed));
        // One flipped bit in the payload, or in the tag.
        let mut bad = sent[50].clone();
        bad[20] ^= 1;
        assert_eq!(rx.unprotect(&mut bad), Err(SrtpError::AuthFailed));
        let mut bad = sent[50].clone();
        *bad.last_mut().unwrap() ^= 0x80;
        assert_eq!(rx.unprotect(&mut bad), Err(SrtpError::AuthFailed));
        // Truncated anywhere.
        for n in [0, 5, 12, 21] {
            let mut t = sent[60][..n].to_vec();
            assert_eq!(rx.unprotect(&mut t), Err(SrtpError::Truncated));
        }
        // A wrong key.
        let mut other = Srtp::new(Suite::AesCm128HmacSha1_80, &MasterKey::random());
        assert_eq!(
            other.unprotect(&mut sent[70].clone()),
            Err(SrtpError::AuthFailed)
        );
        let s = rx.stats();
        assert_eq!(
            (s.unprotected, s.replayed, s.auth_failed, s.truncated),
            (2, 2, 2, 4)
        );
        // The refused packets did not move the window: a genuine one still passes.
        rx.unprotect(&mut sent[97].clone()).unwrap();
    }

    #[test]
    fn ssrcs_past_the_limit_cost_nothing_but_a_refusal() {
        let m = MasterKey::random();
        let (mut tx, mut rx) = (
            Srtp::new(Suite::AesCm128HmacSha1_32, &m),
            Srtp::new(Suite::AesCm128HmacSha1_32, &m),
        );
        for ssrc in 0..MAX_STREAMS as u32 {
            let mut p = packet(ssrc, 1, b"x");
            tx.protect(&mut p).unwrap();
            rx.unprotect(&mut p).unwrap();
        }
        let mut p = packet(1000, 1, b"x");
        assert_eq!(tx.protect(&mut p), Err(SrtpError::TooManyStreams));
        assert_eq!(rx.stats().too_many_streams, 0);
        let mut other = Srtp::new(Suite::AesCm128HmacSha1_32, &m);
        let mut p = packet(1000, 1, b"x");
        other.protect(&mut p).unwrap();
        assert_eq!(rx.unprotect(&mut p), Err(SrtpError::TooManyStreams));
        assert_eq!(rx.stats().too_many_streams, 1);
    }

    #[test]
    fn index_estimation_follows_rfc3711_appendix_a() {
        assert_eq!(estimate_index(10, 12), 12);
        assert_eq!(estimate_index(65535, 3), (1 << 16) | 3);
        assert_eq!(estimate_index((1 << 16) | 3, 65534), 65534);
        assert_eq!(estimate_index((5 << 16) | 40000, 100), (6 << 16) | 100);
    }
}
