//! The connection request a device puts on the DHT to reach another device, and its answer
//! (jamid's `PeerConnectionRequest`).
//!
//! The payload is a msgpack map `{"id": u64, "ice_msg": str, "isAnswer": bool, "connType":
//! str}`; it travels as the `data` of a value of type 0 with user type `peer_request`, signed
//! by the sender's device key and encrypted to the recipient's device key, put at
//! `SHA1("peer:" + <recipient id>)`: the 40-hex short id for jamid 2023 (Debian), the 64-hex
//! long id for current Jami. Requests and answers both go to the recipient's key; the
//! answer carries the request's `id`. Nothing in the payload names the sender: that is the
//! value's signer.

use pamoja_dht::secure::{self, SecureError};
use pamoja_dht::{InfoHash, Value};
use pamoja_identity::msgpack::{self, Reader};
use pamoja_identity::{DeviceId, PrivateKey, PublicKey};

/// The user type of connection request values.
pub const USER_TYPE: &str = "peer_request";

/// Largest `id`: jamid draws them in [1, 2^53].
pub const MAX_ID: u64 = 1 << 53;

/// Why bytes or a value are not a connection request for us.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The payload is not the msgpack map of a request.
    #[error("malformed connection request: {0}")]
    Malformed(&'static str),
    /// The value is not a connection request (type, user type, recipient).
    #[error("not a connection request")]
    NotARequest,
    /// Decryption or signature check failed.
    #[error(transparent)]
    Secure(#[from] SecureError),
}

/// A connection request, or the answer to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConnectionRequest {
    /// Random id in [1, 2^53]; the answer repeats it.
    pub id: u64,
    /// ICE ufrag, password and candidates in pjnath's text (see `pamoja_ice::candidate`).
    pub ice_msg: String,
    /// An answer rather than a request.
    pub is_answer: bool,
    /// Why the connection is wanted (`""`, `"sync"`, a MIME type...); answers send `""`.
    pub conn_type: String,
}

impl PeerConnectionRequest {
    /// A new request with a random id.
    pub fn new(ice_msg: String, conn_type: &str) -> Self {
        let mut b = [0u8; 8];
        crate::random::Random::fill(&mut crate::random::OsRandom, &mut b);
        Self {
            id: u64::from_le_bytes(b) % MAX_ID + 1,
            ice_msg,
            is_answer: false,
            conn_type: conn_type.to_owned(),
        }
    }

    /// The answer to this request, carrying our ICE text.
    pub fn answer(&self, ice_msg: String) -> Self {
        Self {
            id: self.id,
            ice_msg,
            is_answer: true,
            conn_type: String::new(),
        }
    }

    /// The msgpack payload, keys in jamid's order.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.ice_msg.len() + 64);
        msgpack::map(&mut out, 4);
        msgpack::str(&mut out, "id");
        msgpack::uint(&mut out, self.id);
        msgpack::str(&mut out, "ice_msg");
        msgpack::str(&mut out, &self.ice_msg);
        msgpack::str(&mut out, "isAnswer");
        msgpack::bool(&mut out, self.is_answer);
        msgpack::str(&mut out, "connType");
        msgpack::str(&mut out, &self.conn_type);
        out
    }

    /// Reads a payload: keys in any order, unknown keys skipped, missing ones defaulted (as
    /// jamid's reader); `id` and `ice_msg` must be there.
    pub fn decode(data: &[u8]) -> Result<Self, RequestError> {
        let bad = RequestError::Malformed;
        let mut r = Reader::new(data);
        let n = r.map_len().map_err(|_| bad("not a map"))?;
        let (mut id, mut ice, mut is_answer, mut conn_type) = (None, None, false, String::new());
        for _ in 0..n {
            let key = r.str().map_err(|_| bad("key"))?;
            match key {
                "id" => id = Some(r.uint().map_err(|_| bad("id"))?),
                "ice_msg" => ice = Some(r.str().map_err(|_| bad("ice_msg"))?.to_owned()),
                "isAnswer" => is_answer = r.bool().map_err(|_| bad("isAnswer"))?,
                "connType" => conn_type = r.str().map_err(|_| bad("connType"))?.to_owned(),
                _ => r.skip().map_err(|_| bad("value"))?,
            }
        }
        Ok(Self {
            id: id.ok_or(bad("no id"))?,
            ice_msg: ice.ok_or(bad("no ice_msg"))?,
            is_answer,
            conn_type,
        })
    }

    /// The DHT value carrying this request from `from` to the device key `to`: signed,
    /// then encrypted (a fresh random value id).
    pub fn seal(&self, from: &PrivateKey, to: &PublicKey) -> Result<Value, RequestError> {
        let v = Value {
            id: {
                let mut b = [0u8; 8];
                aws_lc_rs::rand::fill(&mut b)
                    .map_err(|_| SecureError::Key("no randomness".into()))?;
                u64::from_le_bytes(b).max(1)
            },
            value_type: 0,
            data: self.encode(),
            user_type: USER_TYPE.to_owned(),
            ..Value::default()
        };
        Ok(secure::encrypt(&v, from, to)?)
    }

    /// Opens a value found at our `peer:` key: decrypts it with our device key, checks its
    /// signature, that it is a connection request and addressed to us. Returns the request
    /// and its signer's key.
    pub fn open(value: &Value, key: &PrivateKey) -> Result<(Self, PublicKey), RequestError> {
        if value.value_type != 0 {
            return Err(RequestError::NotARequest);
        }
        let inner = secure::decrypt(value, key)?;
        if inner.user_type != USER_TYPE || inner.value_type != 0 {
            return Err(RequestError::NotARequest);
        }
        let owner = inner
            .owner
            .as_deref()
            .and_then(|o| PublicKey::from_pem_or_der(o).ok())
            .ok_or(RequestError::NotARequest)?;
        Ok((Self::decode(&inner.data)?, owner))
    }
}

/// Where requests to a device are put, jamid 2023 (Debian): `SHA1("peer:" + short id)`.
pub fn short_key(device: &PublicKey) -> InfoHash {
    InfoHash::get(format!("peer:{}", secure::key_id(device)).as_bytes())
}

/// Where requests to a device are put, current Jami: `SHA1("peer:" + 64-hex device id)`.
pub fn long_key(device: &DeviceId) -> InfoHash {
    InfoHash::get(format!("peer:{device}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip_in_jamid_key_order() {
        let r = PeerConnectionRequest {
            id: 42,
            ice_msg: "ufrag\npwd\n".into(),
            is_answer: false,
            conn_type: "text/plain".into(),
        };
        let b = r.encode();
        // fixmap 4, "id", 42, "ice_msg", ...
        assert_eq!(&b[..5], &[0x84, 0xa2, b'i', b'd', 42]);
        assert_eq!(PeerConnectionRequest::decode(&b).unwrap(), r);
        let a = r.answer("u2\np2\n".into());
        assert_eq!((a.id, a.is_answer, a.conn_type.as_str()), (42, true, ""));
    }

    #[test]
    fn tolerant_reader() {
        // Another key order, an unknown key, no connType.
        let mut b = Vec::new();
        msgpack::map(&mut b, 3);
        msgpack::str(&mut b, "ice_msg");
        msgpack::str(&mut b, "x");
        msgpack::str(&mut b, "extra");
        msgpack::array(&mut b, 0);
        msgpack::str(&mut b, "id");
        msgpack::uint(&mut b, 7);
        let r = PeerConnectionRequest::decode(&b).unwrap();
        assert_eq!((r.id, r.ice_msg.as_str(), r.is_answer), (7, "x", false));
        for bad in [
            &[][..],
            &[0x80],
            &[0x81, 0xa2, b'i', b'd', 0xc0],
            &[0x92, 1, 2],
        ] {
            assert!(PeerConnectionRequest::decode(bad).is_err());
        }
    }

    #[test]
    fn ids_in_jamid_range() {
        for _ in 0..100 {
            let r = PeerConnectionRequest::new(String::new(), "");
            assert!((1..=MAX_ID).contains(&r.id));
        }
    }
}
