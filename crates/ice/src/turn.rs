//! TURN (RFC 8656) pieces on top of [`crate::stun`]: the methods and attributes, the
//! long-term credential key, and ChannelData framing. A TURN exchange is STUN messages:
//!
//! 1. Allocate (REQUESTED-TRANSPORT UDP) → 401 with REALM and NONCE;
//! 2. Allocate again with USERNAME, REALM, NONCE and MESSAGE-INTEGRITY under
//!    [`long_term_key`] → XOR-RELAYED-ADDRESS and LIFETIME;
//! 3. CreatePermission (XOR-PEER-ADDRESS), then Send/Data indications, or ChannelBind and
//!    ChannelData;
//! 4. Refresh with LIFETIME 0 to deallocate.

use std::net::SocketAddr;

use md5::{Digest, Md5};

use crate::stun::{Builder, Class, Message};

/// Allocate.
pub const ALLOCATE: u16 = 0x003;
/// Refresh.
pub const REFRESH: u16 = 0x004;
/// Send (indication).
pub const SEND: u16 = 0x006;
/// Data (indication).
pub const DATA: u16 = 0x007;
/// CreatePermission.
pub const CREATE_PERMISSION: u16 = 0x008;
/// ChannelBind.
pub const CHANNEL_BIND: u16 = 0x009;
/// Connect (RFC 6062): open a TCP connection from the relay to a peer.
pub const CONNECT: u16 = 0x00A;
/// ConnectionBind (RFC 6062): attach a new client data connection to a peer connection.
pub const CONNECTION_BIND: u16 = 0x00B;
/// ConnectionAttempt (RFC 6062, indication): a peer connected to the relayed address.
pub const CONNECTION_ATTEMPT: u16 = 0x00C;

/// TURN attribute types.
pub mod attr {
    /// CHANNEL-NUMBER.
    pub const CHANNEL_NUMBER: u16 = 0x000C;
    /// LIFETIME (seconds).
    pub const LIFETIME: u16 = 0x000D;
    /// XOR-PEER-ADDRESS.
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    /// DATA.
    pub const DATA: u16 = 0x0013;
    /// XOR-RELAYED-ADDRESS.
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    /// REQUESTED-TRANSPORT.
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    /// CONNECTION-ID (RFC 6062).
    pub const CONNECTION_ID: u16 = 0x002A;
}

/// REQUESTED-TRANSPORT's value for UDP (protocol 17).
pub const TRANSPORT_UDP: [u8; 4] = [17, 0, 0, 0];
/// REQUESTED-TRANSPORT's value for TCP (protocol 6, RFC 6062).
pub const TRANSPORT_TCP: [u8; 4] = [6, 0, 0, 0];

/// The long-term credential key: MD5 of `username:realm:password`.
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(format!("{username}:{realm}:{password}").as_bytes());
    h.finalize().into()
}

/// Long-term credentials as a server asked for them (its REALM and NONCE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Realm from the server.
    pub realm: String,
    /// Nonce from the server.
    pub nonce: Vec<u8>,
    /// [`long_term_key`] of them.
    pub key: [u8; 16],
}

impl Credentials {
    /// From a 401 (or 438 stale nonce) answer: its REALM and NONCE with our user and password.
    pub fn from_challenge(answer: &Message, username: &str, password: &str) -> Option<Self> {
        let realm = String::from_utf8(answer.get(crate::stun::attr::REALM)?.value.clone()).ok()?;
        let nonce = answer.get(crate::stun::attr::NONCE)?.value.clone();
        Some(Self {
            key: long_term_key(username, &realm, password),
            username: username.to_owned(),
            realm,
            nonce,
        })
    }

    /// Adds USERNAME, REALM and NONCE, then MESSAGE-INTEGRITY, and returns the bytes (with
    /// FINGERPRINT).
    pub fn sign(&self, b: Builder) -> Vec<u8> {
        b.attr(crate::stun::attr::USERNAME, self.username.as_bytes())
            .attr(crate::stun::attr::REALM, self.realm.as_bytes())
            .attr(crate::stun::attr::NONCE, &self.nonce)
            .integrity(&self.key)
            .fingerprint()
    }
}

/// An Allocate request for a UDP relay (unauthenticated: the first of the two).
pub fn allocate(transaction: [u8; 12]) -> Builder {
    Builder::new(Class::Request, ALLOCATE, transaction)
        .attr(attr::REQUESTED_TRANSPORT, &TRANSPORT_UDP)
}

/// An Allocate request for a TCP relay (RFC 6062; over a TCP connection to the server).
pub fn allocate_tcp(transaction: [u8; 12]) -> Builder {
    Builder::new(Class::Request, ALLOCATE, transaction)
        .attr(attr::REQUESTED_TRANSPORT, &TRANSPORT_TCP)
}

/// A Connect request towards `peer` (RFC 6062).
pub fn connect(transaction: [u8; 12], peer: &SocketAddr) -> Builder {
    Builder::new(Class::Request, CONNECT, transaction).xor_address(attr::XOR_PEER_ADDRESS, peer)
}

/// A ConnectionBind request for `connection_id`, sent first on a new data connection.
pub fn connection_bind(transaction: [u8; 12], connection_id: u32) -> Builder {
    Builder::new(Class::Request, CONNECTION_BIND, transaction)
        .attr(attr::CONNECTION_ID, &connection_id.to_be_bytes())
}

/// A Refresh request; `lifetime` 0 deallocates.
pub fn refresh(transaction: [u8; 12], lifetime: u32) -> Builder {
    Builder::new(Class::Request, REFRESH, transaction).attr(attr::LIFETIME, &lifetime.to_be_bytes())
}

/// A CreatePermission request for `peer`'s address.
pub fn create_permission(transaction: [u8; 12], peer: &SocketAddr) -> Builder {
    Builder::new(Class::Request, CREATE_PERMISSION, transaction)
        .xor_address(attr::XOR_PEER_ADDRESS, peer)
}

/// A ChannelBind request of `channel` (0x4000..=0x4FFF) to `peer`.
pub fn channel_bind(transaction: [u8; 12], channel: u16, peer: &SocketAddr) -> Builder {
    let mut v = channel.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0]);
    Builder::new(Class::Request, CHANNEL_BIND, transaction)
        .attr(attr::CHANNEL_NUMBER, &v)
        .xor_address(attr::XOR_PEER_ADDRESS, peer)
}

/// A Send indication carrying `data` to `peer`.
pub fn send(transaction: [u8; 12], peer: &SocketAddr, data: &[u8]) -> Vec<u8> {
    Builder::new(Class::Indication, SEND, transaction)
        .xor_address(attr::XOR_PEER_ADDRESS, peer)
        .attr(attr::DATA, data)
        .build()
}

/// The peer and payload of a Data indication.
pub fn data_indication(m: &Message) -> Option<(SocketAddr, Vec<u8>)> {
    if (m.class, m.method) != (Class::Indication, DATA) {
        return None;
    }
    Some((
        m.xor_address(attr::XOR_PEER_ADDRESS)?,
        m.get(attr::DATA)?.value.clone(),
    ))
}

/// A ChannelData message: channel number, length, data (padded to 4 bytes, as over TCP).
pub fn channel_data(channel: u16, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + data.len() + 3);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    out.extend(std::iter::repeat_n(0, (4 - data.len() % 4) % 4));
    out
}

/// Reads a ChannelData message: (channel, data). `None` when the first byte is not in the
/// channel range (0x40..=0x7F) or the length runs past the end.
pub fn parse_channel_data(b: &[u8]) -> Option<(u16, &[u8])> {
    if b.len() < 4 || !(0x40..=0x7F).contains(&b[0]) {
        return None;
    }
    let channel = u16::from_be_bytes([b[0], b[1]]);
    let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
    Some((channel, b.get(4..4 + len)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_term_key_is_md5_of_user_realm_password() {
        // Computed with Python's hashlib.md5(b"alice:pamoja.test:secret").
        assert_eq!(
            hex(&long_term_key("alice", "pamoja.test", "secret")),
            "bf4bd2925773d2fd07d6c4dfeeb5f942"
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn channel_data_frames() {
        let f = channel_data(0x4001, b"hello");
        assert_eq!(&f[..4], &[0x40, 0x01, 0, 5]);
        assert_eq!(f.len(), 12);
        assert_eq!(parse_channel_data(&f), Some((0x4001, &b"hello"[..])));
        assert_eq!(parse_channel_data(&f[..6]), None);
        assert_eq!(parse_channel_data(&[0x00, 0x01, 0, 0]), None);
    }

    #[test]
    fn indications_round_trip() {
        let peer: SocketAddr = "198.51.100.4:5000".parse().unwrap();
        let bytes = send([7; 12], &peer, b"payload");
        let m = Message::decode(&bytes).unwrap();
        assert_eq!((m.class, m.method), (Class::Indication, SEND));
        assert_eq!(m.xor_address(attr::XOR_PEER_ADDRESS), Some(peer));
        assert_eq!(m.get(attr::DATA).unwrap().value, b"payload");
        let data = Builder::new(Class::Indication, DATA, [8; 12])
            .xor_address(attr::XOR_PEER_ADDRESS, &peer)
            .attr(attr::DATA, b"back")
            .build();
        let m = Message::decode(&data).unwrap();
        assert_eq!(data_indication(&m), Some((peer, b"back".to_vec())));
    }
}
