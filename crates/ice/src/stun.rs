//! STUN messages (RFC 8489): a 20-byte header (type, length, magic cookie, transaction id)
//! and type-length-value attributes padded to 4 bytes.
//!
//! [`Message::decode`] checks the framing and keeps every attribute, known or not, with its
//! offset, so that [`Message::check_integrity`] and [`Message::check_fingerprint`] can verify
//! the bytes as they arrived. [`Builder`] writes a message and appends MESSAGE-INTEGRITY
//! and FINGERPRINT last, as RFC 8489 orders them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use aws_lc_rs::hmac;

use crate::random::Random;

/// The magic cookie of every RFC 5389/8489 message.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Header size.
pub const HEADER_LEN: usize = 20;
/// XOR of the CRC-32 in FINGERPRINT.
const FINGERPRINT_XOR: u32 = 0x5354_554e;

/// Binding, the method of connectivity checks and address discovery.
pub const BINDING: u16 = 0x001;

/// Attribute types used here.
pub mod attr {
    /// MAPPED-ADDRESS.
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    /// USERNAME.
    pub const USERNAME: u16 = 0x0006;
    /// MESSAGE-INTEGRITY (HMAC-SHA1).
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    /// ERROR-CODE.
    pub const ERROR_CODE: u16 = 0x0009;
    /// UNKNOWN-ATTRIBUTES.
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    /// REALM.
    pub const REALM: u16 = 0x0014;
    /// NONCE.
    pub const NONCE: u16 = 0x0015;
    /// MESSAGE-INTEGRITY-SHA256.
    pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
    /// XOR-MAPPED-ADDRESS.
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    /// PRIORITY (ICE).
    pub const PRIORITY: u16 = 0x0024;
    /// USE-CANDIDATE (ICE).
    pub const USE_CANDIDATE: u16 = 0x0025;
    /// SOFTWARE.
    pub const SOFTWARE: u16 = 0x8022;
    /// FINGERPRINT.
    pub const FINGERPRINT: u16 = 0x8028;
    /// ICE-CONTROLLED.
    pub const ICE_CONTROLLED: u16 = 0x8029;
    /// ICE-CONTROLLING.
    pub const ICE_CONTROLLING: u16 = 0x802A;
}

/// Why bytes are not a STUN message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    /// Shorter than a header, or than the length it announces.
    #[error("truncated STUN message")]
    Truncated,
    /// The two top bits are set, or the magic cookie is wrong: not STUN.
    #[error("not a STUN message")]
    NotStun,
    /// The announced length is not a multiple of 4, or does not match the datagram.
    #[error("bad STUN length")]
    BadLength,
    /// An attribute runs past the end.
    #[error("attribute past the end")]
    BadAttribute,
}

/// The class of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A request.
    Request,
    /// An indication (no answer).
    Indication,
    /// A success response.
    Success,
    /// An error response.
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Self::Request => 0x000,
            Self::Indication => 0x010,
            Self::Success => 0x100,
            Self::Error => 0x110,
        }
    }

    fn from_type(t: u16) -> Self {
        match t & 0x110 {
            0x000 => Self::Request,
            0x010 => Self::Indication,
            0x100 => Self::Success,
            _ => Self::Error,
        }
    }
}

/// The 16-bit message type: class bits interleaved with the 12-bit method.
fn message_type(class: Class, method: u16) -> u16 {
    let m = method & 0x0FFF;
    (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | class.bits()
}

fn method_of(t: u16) -> u16 {
    (t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2)
}

/// One attribute as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Type.
    pub kind: u16,
    /// Value, without padding.
    pub value: Vec<u8>,
    /// Offset of the attribute header in the message.
    pub offset: usize,
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Class.
    pub class: Class,
    /// Method (12 bits).
    pub method: u16,
    /// Transaction id.
    pub transaction: [u8; 12],
    /// Attributes in order.
    pub attributes: Vec<Attribute>,
}

fn pad(n: usize) -> usize {
    (4 - n % 4) % 4
}

fn xor_address(value: &[u8], transaction: &[u8; 12]) -> Option<SocketAddr> {
    if value.len() < 4 {
        return None;
    }
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = u16::from_be_bytes([value[2], value[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
    match (value[1], value.len()) {
        (1, 8) => {
            let mut a = [0u8; 4];
            for i in 0..4 {
                a[i] = value[4 + i] ^ cookie[i];
            }
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port))
        }
        (2, 20) => {
            let mut mask = [0u8; 16];
            mask[..4].copy_from_slice(&cookie);
            mask[4..].copy_from_slice(transaction);
            let mut a = [0u8; 16];
            for i in 0..16 {
                a[i] = value[4 + i] ^ mask[i];
            }
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), port))
        }
        _ => None,
    }
}

fn encode_xor_address(addr: &SocketAddr, transaction: &[u8; 12]) -> Vec<u8> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let mut out = vec![0];
    match addr.ip() {
        IpAddr::V4(a) => {
            out.push(1);
            out.extend_from_slice(&port.to_be_bytes());
            out.extend(a.octets().iter().zip(cookie).map(|(x, c)| x ^ c));
        }
        IpAddr::V6(a) => {
            out.push(2);
            out.extend_from_slice(&port.to_be_bytes());
            let mask: Vec<u8> = cookie.iter().chain(transaction).copied().collect();
            out.extend(a.octets().iter().zip(mask).map(|(x, m)| x ^ m));
        }
    }
    out
}

/// HMAC-SHA1 (or SHA-256) over `data` up to `offset`, with the header's length field set as
/// if the message ended right after an attribute of `mac_len` bytes there.
fn integrity_over(data: &[u8], offset: usize, mac_len: usize, sha256: bool, key: &[u8]) -> Vec<u8> {
    let mut head = data[..offset].to_vec();
    let len = (offset - HEADER_LEN + 4 + mac_len) as u16;
    head[2..4].copy_from_slice(&len.to_be_bytes());
    let alg = if sha256 {
        hmac::HMAC_SHA256
    } else {
        hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY
    };
    hmac::sign(&hmac::Key::new(alg, key), &head)
        .as_ref()
        .to_vec()
}

fn fingerprint_over(data: &[u8], offset: usize) -> u32 {
    let mut head = data[..offset].to_vec();
    let len = (offset - HEADER_LEN + 8) as u16;
    head[2..4].copy_from_slice(&len.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&head);
    crc.sum() ^ FINGERPRINT_XOR
}

impl Message {
    /// True when `data` looks like STUN (top bits clear, magic cookie): to tell STUN from
    /// media or other traffic sharing a socket.
    pub fn is_stun(data: &[u8]) -> bool {
        data.len() >= HEADER_LEN && data[0] & 0xC0 == 0 && data[4..8] == MAGIC_COOKIE.to_be_bytes()
    }

    /// Decodes one message (a whole datagram, or one frame of a stream).
    pub fn decode(data: &[u8]) -> Result<Self, StunError> {
        if data.len() < HEADER_LEN {
            return Err(StunError::Truncated);
        }
        if !Self::is_stun(data) {
            return Err(StunError::NotStun);
        }
        let t = u16::from_be_bytes([data[0], data[1]]);
        let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
        if len % 4 != 0 {
            return Err(StunError::BadLength);
        }
        if data.len() < HEADER_LEN + len {
            return Err(StunError::Truncated);
        }
        if data.len() != HEADER_LEN + len {
            return Err(StunError::BadLength);
        }
        let mut transaction = [0u8; 12];
        transaction.copy_from_slice(&data[8..20]);
        let mut attributes = Vec::new();
        let mut at = HEADER_LEN;
        while at < data.len() {
            if at + 4 > data.len() {
                return Err(StunError::BadAttribute);
            }
            let kind = u16::from_be_bytes([data[at], data[at + 1]]);
            let n = usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]]));
            let end = at + 4 + n;
            if end > data.len() {
                return Err(StunError::BadAttribute);
            }
            attributes.push(Attribute {
                kind,
                value: data[at + 4..end].to_vec(),
                offset: at,
            });
            at = (end + pad(n)).min(data.len());
        }
        Ok(Self {
            class: Class::from_type(t),
            method: method_of(t),
            transaction,
            attributes,
        })
    }

    /// The first attribute of `kind`.
    pub fn get(&self, kind: u16) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.kind == kind)
    }

    /// USERNAME as text.
    pub fn username(&self) -> Option<&str> {
        std::str::from_utf8(&self.get(attr::USERNAME)?.value).ok()
    }

    /// An XOR-encoded address attribute (XOR-MAPPED-ADDRESS, TURN's XOR-PEER-ADDRESS and
    /// XOR-RELAYED-ADDRESS).
    pub fn xor_address(&self, kind: u16) -> Option<SocketAddr> {
        xor_address(&self.get(kind)?.value, &self.transaction)
    }

    /// XOR-MAPPED-ADDRESS (or, from old servers, MAPPED-ADDRESS).
    pub fn mapped_address(&self) -> Option<SocketAddr> {
        if let Some(a) = self.get(attr::XOR_MAPPED_ADDRESS) {
            return xor_address(&a.value, &self.transaction);
        }
        let v = &self.get(attr::MAPPED_ADDRESS)?.value;
        let port = u16::from_be_bytes([*v.get(2)?, *v.get(3)?]);
        match (v.get(1)?, v.len()) {
            (1, 8) => Some(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(v[4], v[5], v[6], v[7])),
                port,
            )),
            (2, 20) => {
                let b: [u8; 16] = v[4..20].try_into().ok()?;
                Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(b)), port))
            }
            _ => None,
        }
    }

    /// Comprehension-required attributes (types below 0x8000) not in `known`: a request
    /// carrying any must be answered with error 420 and UNKNOWN-ATTRIBUTES listing them.
    pub fn unknown_required(&self, known: &[u16]) -> Vec<u16> {
        let mut out: Vec<u16> = self
            .attributes
            .iter()
            .map(|a| a.kind)
            .filter(|k| *k < 0x8000 && !known.contains(k))
            .collect();
        out.dedup();
        out
    }

    /// A 32-bit attribute (PRIORITY).
    pub fn u32_attr(&self, kind: u16) -> Option<u32> {
        Some(u32::from_be_bytes(
            self.get(kind)?.value.as_slice().try_into().ok()?,
        ))
    }

    /// A 64-bit attribute (ICE-CONTROLLED, ICE-CONTROLLING).
    pub fn u64_attr(&self, kind: u16) -> Option<u64> {
        Some(u64::from_be_bytes(
            self.get(kind)?.value.as_slice().try_into().ok()?,
        ))
    }

    /// ERROR-CODE as (code, reason).
    pub fn error_code(&self) -> Option<(u16, String)> {
        let v = &self.get(attr::ERROR_CODE)?.value;
        if v.len() < 4 {
            return None;
        }
        let code = u16::from(v[2] & 0x7) * 100 + u16::from(v[3]);
        Some((code, String::from_utf8_lossy(&v[4..]).into_owned()))
    }

    /// Checks MESSAGE-INTEGRITY (HMAC-SHA1) or, when present instead,
    /// MESSAGE-INTEGRITY-SHA256, of the bytes `data` this message was decoded from, with
    /// `key` (the ICE password, or the long-term key). False when absent.
    pub fn check_integrity(&self, data: &[u8], key: &[u8]) -> bool {
        let (a, sha256) = match (
            self.get(attr::MESSAGE_INTEGRITY),
            self.get(attr::MESSAGE_INTEGRITY_SHA256),
        ) {
            (Some(a), _) => (a, false),
            (None, Some(a)) => (a, true),
            (None, None) => return false,
        };
        let want = if sha256 { 32 } else { 20 };
        if a.value.len() != want || a.offset > data.len() {
            return false;
        }
        let mac = integrity_over(data, a.offset, want, sha256, key);
        aws_lc_rs::constant_time::verify_slices_are_equal(&mac, &a.value).is_ok()
    }

    /// Checks FINGERPRINT, which must be the last attribute. False when absent.
    pub fn check_fingerprint(&self, data: &[u8]) -> bool {
        let Some(a) = self
            .attributes
            .last()
            .filter(|a| a.kind == attr::FINGERPRINT)
        else {
            return false;
        };
        let Ok(v) = <[u8; 4]>::try_from(a.value.as_slice()) else {
            return false;
        };
        a.offset <= data.len() && fingerprint_over(data, a.offset) == u32::from_be_bytes(v)
    }
}

/// Writes a message.
#[derive(Debug, Clone)]
pub struct Builder {
    buf: Vec<u8>,
    transaction: [u8; 12],
}

impl Builder {
    /// A message of `class` and `method` with `transaction` as its id.
    pub fn new(class: Class, method: u16, transaction: [u8; 12]) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&message_type(class, method).to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf.extend_from_slice(&transaction);
        Self { buf, transaction }
    }

    /// A random 96-bit transaction id.
    pub fn random_transaction() -> [u8; 12] {
        let mut t = [0u8; 12];
        crate::random::OsRandom.fill(&mut t);
        t
    }

    fn set_len(&mut self) {
        let len = (self.buf.len() - HEADER_LEN) as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
    }

    /// Appends an attribute (zero padding).
    pub fn attr(mut self, kind: u16, value: &[u8]) -> Self {
        self.buf.extend_from_slice(&kind.to_be_bytes());
        self.buf
            .extend_from_slice(&(value.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(value);
        self.buf.extend(std::iter::repeat_n(0, pad(value.len())));
        self.set_len();
        self
    }

    /// Appends XOR-MAPPED-ADDRESS.
    pub fn xor_mapped_address(self, addr: &SocketAddr) -> Self {
        self.xor_address(attr::XOR_MAPPED_ADDRESS, addr)
    }

    /// Appends an XOR-encoded address attribute of `kind`.
    pub fn xor_address(self, kind: u16, addr: &SocketAddr) -> Self {
        let v = encode_xor_address(addr, &self.transaction);
        self.attr(kind, &v)
    }

    /// Appends ERROR-CODE.
    pub fn error_code(self, code: u16, reason: &str) -> Self {
        let mut v = vec![0, 0, (code / 100) as u8, (code % 100) as u8];
        v.extend_from_slice(reason.as_bytes());
        self.attr(attr::ERROR_CODE, &v)
    }

    /// Appends UNKNOWN-ATTRIBUTES (for a 420 answer).
    pub fn unknown_attributes(self, kinds: &[u16]) -> Self {
        let v: Vec<u8> = kinds.iter().flat_map(|k| k.to_be_bytes()).collect();
        self.attr(attr::UNKNOWN_ATTRIBUTES, &v)
    }

    /// Appends MESSAGE-INTEGRITY (HMAC-SHA1 with `key`).
    pub fn integrity(mut self, key: &[u8]) -> Self {
        let offset = self.buf.len();
        let mac = integrity_over(&self.buf, offset, 20, false, key);
        self = self.attr(attr::MESSAGE_INTEGRITY, &mac);
        self
    }

    /// Appends MESSAGE-INTEGRITY-SHA256.
    pub fn integrity_sha256(mut self, key: &[u8]) -> Self {
        let offset = self.buf.len();
        let mac = integrity_over(&self.buf, offset, 32, true, key);
        self = self.attr(attr::MESSAGE_INTEGRITY_SHA256, &mac);
        self
    }

    /// Appends FINGERPRINT and returns the bytes.
    pub fn fingerprint(mut self) -> Vec<u8> {
        let offset = self.buf.len();
        let crc = fingerprint_over(&self.buf, offset);
        self = self.attr(attr::FINGERPRINT, &crc.to_be_bytes());
        self.buf
    }

    /// The bytes.
    pub fn build(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 5769 test vectors.
    const PASSWORD: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";
    const TRANSACTION: [u8; 12] = [
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ];
    const REQUEST: [u8; 108] = [
        0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74,
        0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e,
        0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36,
        0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20,
        0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e,
        0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5,
        0x7a, 0x3b, 0xcf,
    ];
    const RESPONSE_V4: [u8; 80] = [
        0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1,
        0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3,
        0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00,
        0x04, 0xc0, 0x7d, 0x4c, 0x96,
    ];

    #[test]
    fn rfc5769_request() {
        let m = Message::decode(&REQUEST).unwrap();
        assert_eq!((m.class, m.method), (Class::Request, BINDING));
        assert_eq!(m.transaction, TRANSACTION);
        assert_eq!(m.username(), Some("evtj:h6vY"));
        assert_eq!(m.u32_attr(attr::PRIORITY), Some(0x6e00_01ff));
        assert_eq!(
            m.u64_attr(attr::ICE_CONTROLLED),
            Some(0x932f_f9b1_5126_3b36)
        );
        assert_eq!(m.get(attr::SOFTWARE).unwrap().value, b"STUN test client");
        assert!(m.check_integrity(&REQUEST, PASSWORD));
        assert!(!m.check_integrity(&REQUEST, b"wrong password"));
        assert!(m.check_fingerprint(&REQUEST));
        let mut bad = REQUEST;
        bad[30] ^= 1;
        let m = Message::decode(&bad).unwrap();
        assert!(!m.check_integrity(&bad, PASSWORD));
        assert!(!m.check_fingerprint(&bad));
    }

    #[test]
    fn rfc5769_ipv4_response() {
        let m = Message::decode(&RESPONSE_V4).unwrap();
        assert_eq!((m.class, m.method), (Class::Success, BINDING));
        assert_eq!(m.mapped_address(), Some("192.0.2.1:32853".parse().unwrap()));
        assert!(m.check_integrity(&RESPONSE_V4, PASSWORD));
        assert!(m.check_fingerprint(&RESPONSE_V4));
    }

    #[test]
    fn built_messages_check_and_round_trip() {
        let t = Builder::random_transaction();
        for addr in ["203.0.113.7:4242", "[2001:db8::5]:9"] {
            let addr: SocketAddr = addr.parse().unwrap();
            for sha256 in [false, true] {
                let b = Builder::new(Class::Success, BINDING, t)
                    .attr(attr::SOFTWARE, b"pamoja")
                    .xor_mapped_address(&addr);
                let b = if sha256 {
                    b.integrity_sha256(b"key")
                } else {
                    b.integrity(b"key")
                };
                let bytes = b.fingerprint();
                let m = Message::decode(&bytes).unwrap();
                assert_eq!(m.mapped_address(), Some(addr));
                assert!(m.check_integrity(&bytes, b"key"));
                assert!(!m.check_integrity(&bytes, b"other"));
                assert!(m.check_fingerprint(&bytes));
            }
        }
        let e = Builder::new(Class::Error, BINDING, t)
            .error_code(487, "Role Conflict")
            .build();
        let m = Message::decode(&e).unwrap();
        assert_eq!(m.class, Class::Error);
        assert_eq!(m.error_code(), Some((487, "Role Conflict".into())));
        // Methods above 0xF survive the bit interleaving (TURN's are 0x003..0x009).
        for method in [0x003, 0x009, 0xABC] {
            let b = Builder::new(Class::Indication, method, t).build();
            let m = Message::decode(&b).unwrap();
            assert_eq!((m.class, m.method), (Class::Indication, method));
        }
    }

    #[test]
    fn unknown_required_attributes_are_named() {
        let m = Message::decode(&REQUEST).unwrap();
        let known = [attr::USERNAME, attr::MESSAGE_INTEGRITY, attr::PRIORITY];
        assert!(m.unknown_required(&known).is_empty());
        let t = Builder::random_transaction();
        let odd = Builder::new(Class::Request, BINDING, t)
            .attr(0x7777, b"x")
            .attr(0x8888, b"optional")
            .build();
        let m = Message::decode(&odd).unwrap();
        assert_eq!(m.unknown_required(&known), vec![0x7777]);
        let answer = Builder::new(Class::Error, BINDING, t)
            .error_code(420, "Unknown Attribute")
            .unknown_attributes(&[0x7777])
            .build();
        let a = Message::decode(&answer).unwrap();
        assert_eq!(a.error_code().unwrap().0, 420);
        assert_eq!(a.get(attr::UNKNOWN_ATTRIBUTES).unwrap().value, [0x77, 0x77]);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(Message::decode(&REQUEST[..10]), Err(StunError::Truncated));
        assert_eq!(Message::decode(&REQUEST[..100]), Err(StunError::Truncated));
        let mut not = REQUEST;
        not[0] = 0x80;
        assert_eq!(Message::decode(&not), Err(StunError::NotStun));
        let mut cookie = REQUEST;
        cookie[5] = 0;
        assert_eq!(Message::decode(&cookie), Err(StunError::NotStun));
        let mut len = REQUEST;
        len[3] = 0x59;
        assert_eq!(Message::decode(&len), Err(StunError::BadLength));
        let mut attr_len = REQUEST;
        attr_len[23] = 0xff;
        assert_eq!(Message::decode(&attr_len), Err(StunError::BadAttribute));
        // Every prefix and every single-byte change decodes or fails, never panics.
        for n in 0..REQUEST.len() {
            let _ = Message::decode(&REQUEST[..n]);
            let mut b = REQUEST;
            b[n] ^= 0xff;
            if let Ok(m) = Message::decode(&b) {
                let _ = (m.check_integrity(&b, PASSWORD), m.check_fingerprint(&b));
                let _ = (m.mapped_address(), m.error_code(), m.username());
            }
        }
    }
}
