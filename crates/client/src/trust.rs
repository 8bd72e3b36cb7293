//! Trust requests: the `TrustRequest` value a device puts at a contact's device inbox.
//!
//! OpenDHT value type 4 (seven days), signed by the sender's device key and encrypted to the
//! recipient device's key, put at `SHA1("inbox:" + recipient short id)`. The payload is a
//! msgpack map written in OpenDHT's order: `service` (always `"cx.ring"`), `conversationId`
//! (the one-to-one conversation), `payload` (the sender's vCard, bytes), `confirm` (false
//! for a request, true for the answer of one who accepted).

use pamoja_dht::Value;
use pamoja_dht::secure::{self, SecureError};
use pamoja_identity::msgpack::{self, Reader};
use pamoja_identity::{PrivateKey, PublicKey};

/// OpenDHT's value type id for `TrustRequest`.
pub const VALUE_TYPE: u16 = 4;

/// The only service jamid answers.
pub const SERVICE: &str = "cx.ring";

/// jamid warns above this payload size and drops the payload when re-sending.
pub const MAX_PAYLOAD: usize = 64_000;

/// A contact request, or the confirmation of one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrustRequest {
    /// `"cx.ring"` for Jami.
    pub service: String,
    /// The one-to-one conversation the sender holds with the recipient.
    pub conversation_id: String,
    /// The sender's profile (a vCard), empty in confirmations.
    pub payload: Vec<u8>,
    /// Whether this confirms a request the recipient sent.
    pub confirm: bool,
}

/// Why a payload is not a trust request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// Not the msgpack map of a `TrustRequest`.
    #[error("malformed trust request: {0}")]
    Malformed(&'static str),
    /// Sealing failed.
    #[error(transparent)]
    Secure(#[from] SecureError),
}

impl TrustRequest {
    /// A request for the conversation `conversation_id`, with our profile.
    pub fn request(conversation_id: &str, payload: Vec<u8>) -> Self {
        Self {
            service: SERVICE.into(),
            conversation_id: conversation_id.into(),
            payload,
            confirm: false,
        }
    }

    /// The answer that accepts a request for `conversation_id`.
    pub fn confirmation(conversation_id: &str) -> Self {
        Self {
            service: SERVICE.into(),
            conversation_id: conversation_id.into(),
            payload: Vec::new(),
            confirm: true,
        }
    }

    /// The msgpack payload, keys in OpenDHT's order.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.payload.len() + 96);
        msgpack::map(&mut out, 4);
        msgpack::str(&mut out, "service");
        msgpack::str(&mut out, &self.service);
        msgpack::str(&mut out, "conversationId");
        msgpack::str(&mut out, &self.conversation_id);
        msgpack::str(&mut out, "payload");
        msgpack::bin(&mut out, &self.payload);
        msgpack::str(&mut out, "confirm");
        msgpack::bool(&mut out, self.confirm);
        out
    }

    /// Reads a payload: keys in any order, unknown keys skipped, missing ones defaulted.
    pub fn decode(data: &[u8]) -> Result<Self, TrustError> {
        let bad = TrustError::Malformed;
        let mut r = Reader::new(data);
        let n = r.map_len().map_err(|_| bad("not a map"))?;
        let mut t = Self::default();
        for _ in 0..n {
            match r.str().map_err(|_| bad("key"))? {
                "service" => t.service = r.str().map_err(|_| bad("service"))?.to_owned(),
                "conversationId" => {
                    t.conversation_id = r.str().map_err(|_| bad("conversationId"))?.to_owned()
                }
                "payload" => t.payload = r.bytes().map_err(|_| bad("payload"))?.to_vec(),
                "confirm" => t.confirm = r.bool().map_err(|_| bad("confirm"))?,
                _ => r.skip().map_err(|_| bad("value"))?,
            }
        }
        if !r.remaining().is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(t)
    }

    /// The DHT value carrying this request from `from` to the device key `to`: type 4,
    /// signed, then encrypted (a fresh random value id).
    pub fn seal(&self, from: &PrivateKey, to: &PublicKey) -> Result<Value, TrustError> {
        let mut b = [0u8; 8];
        let _ = aws_lc_rs::rand::fill(&mut b);
        let v = Value {
            id: u64::from_le_bytes(b).max(1),
            value_type: VALUE_TYPE,
            data: self.encode(),
            ..Value::default()
        };
        Ok(secure::encrypt(&v, from, to)?)
    }

    /// Whether the conversation id is one a swarm can have (40 hex digits).
    pub fn has_valid_conversation(&self) -> bool {
        self.conversation_id.len() == 40
            && self.conversation_id.bytes().all(|b| b.is_ascii_hexdigit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_in_opendht_order_and_back() {
        let t = TrustRequest::request(&"ab".repeat(20), b"BEGIN:VCARD\r\nFN:x\r\n".to_vec());
        let b = t.encode();
        assert_eq!(
            &b[..9],
            &[0x84, 0xa7, b's', b'e', b'r', b'v', b'i', b'c', b'e']
        );
        assert_eq!(*b.last().unwrap(), 0xc2, "confirm false last");
        assert_eq!(TrustRequest::decode(&b).unwrap(), t);
        let c = TrustRequest::confirmation(&"ab".repeat(20));
        assert_eq!(*c.encode().last().unwrap(), 0xc3);
        assert!(c.has_valid_conversation());
        assert!(!TrustRequest::request("x", vec![]).has_valid_conversation());
    }

    #[test]
    fn tolerant_reader_and_bad_input() {
        let mut b = Vec::new();
        msgpack::map(&mut b, 2);
        msgpack::str(&mut b, "extra");
        msgpack::uint(&mut b, 3);
        msgpack::str(&mut b, "confirm");
        msgpack::bool(&mut b, true);
        let t = TrustRequest::decode(&b).unwrap();
        assert!(t.confirm && t.service.is_empty());
        for bad in [&[][..], &[0x81, 0xa7], &[0x92, 1, 2], &[0x80, 0x00]] {
            assert!(TrustRequest::decode(bad).is_err(), "{bad:?}");
        }
    }
}
