//! DHT values, packed as OpenDHT 2.4.12 packs them.
//!
//! `{"id": u64, "dat": {"body": {["seq", "owner", ["to"]], "type", "data", ["utype"]}, ["sig"]}, ["p"]}`;
//! an encrypted value has `dat` = the ciphertext (`bin`). OpenDHT 4.x may add `pt` (push type),
//! which is accepted and ignored.

use pamoja_identity::msgpack::{self, DecodeError, Kind, Reader};

use crate::infohash::InfoHash;

/// Largest value OpenDHT stores (`MAX_VALUE_SIZE`).
pub const MAX_VALUE_SIZE: usize = 64 * 1024;

/// A value stored on the DHT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Value {
    /// Value id (non-zero on the wire; the same (key, id) is the same slot).
    pub id: u64,
    /// Value type id (decides the lifetime and the storage policy).
    pub value_type: u16,
    /// Payload.
    pub data: Vec<u8>,
    /// Free-form user type, e.g. `text/plain`.
    pub user_type: String,
    /// Sequence number of a signed value.
    pub seq: u16,
    /// Signer's public key (DER SubjectPublicKeyInfo) for a signed value.
    pub owner: Option<Vec<u8>>,
    /// Recipient key id of a value encrypted for someone.
    pub recipient: Option<InfoHash>,
    /// RSA signature over the packed body.
    pub signature: Vec<u8>,
    /// Ciphertext of an encrypted value (then the other body fields are inside it).
    pub cypher: Option<Vec<u8>>,
    /// Priority (0 = high, 1 = normal); a push-notification hint.
    pub priority: u64,
}

/// Value fields that queries select and filter on (`Value::Field`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    /// 1: the value id.
    Id = 1,
    /// 2: the value type.
    ValueType = 2,
    /// 3: the owner's public key (its SHA-1 id in filters).
    OwnerPk = 3,
    /// 4: the sequence number.
    SeqNum = 4,
    /// 5: the user type.
    UserType = 5,
}

impl Field {
    /// From the wire number.
    pub fn from_u64(n: u64) -> Option<Self> {
        Some(match n {
            1 => Self::Id,
            2 => Self::ValueType,
            3 => Self::OwnerPk,
            4 => Self::SeqNum,
            5 => Self::UserType,
            _ => return None,
        })
    }
}

impl Value {
    /// A plain value of type 0 (user data).
    pub fn new(data: impl Into<Vec<u8>>) -> Self {
        Self {
            data: data.into(),
            ..Self::default()
        }
    }

    /// True for a signed value.
    pub fn is_signed(&self) -> bool {
        self.owner.is_some()
    }

    /// The owner's key id (SHA-1 of its SPKI), if signed.
    pub fn owner_id(&self) -> Option<InfoHash> {
        self.owner.as_deref().map(InfoHash::get)
    }

    /// Size as OpenDHT counts it for storage limits.
    pub fn size(&self) -> usize {
        self.cypher.as_ref().map_or(0, Vec::len)
            + self.data.len()
            + self.signature.len()
            + self.user_type.len()
    }

    /// What keeping the value costs a node, in bytes: [`Value::size`] (what OpenDHT counts
    /// against its limits) plus the owner's key, the recipient and a fixed share for the
    /// value's own record, so that values with no data still cost what they hold.
    pub fn footprint(&self) -> usize {
        /// The record of a stored value (its fields, the slot and its expiration).
        const RECORD: usize = 160;
        self.size()
            + self.owner.as_ref().map_or(0, Vec::len)
            + self.recipient.map_or(0, |_| 20)
            + RECORD
    }

    /// The packed body, which the signature covers.
    pub fn pack_body(&self, out: &mut Vec<u8>) {
        let signed = self.owner.is_some();
        let len = if signed {
            if self.recipient.is_some() { 5 } else { 4 }
        } else {
            2
        } + u32::from(!self.user_type.is_empty());
        msgpack::map(out, len);
        if let Some(owner) = &self.owner {
            msgpack::str(out, "seq");
            msgpack::uint(out, u64::from(self.seq));
            msgpack::str(out, "owner");
            msgpack::bin(out, owner);
            if let Some(to) = &self.recipient {
                msgpack::str(out, "to");
                msgpack::bin(out, &to.0);
            }
        }
        msgpack::str(out, "type");
        msgpack::uint(out, u64::from(self.value_type));
        msgpack::str(out, "data");
        msgpack::bin(out, &self.data);
        if !self.user_type.is_empty() {
            msgpack::str(out, "utype");
            msgpack::str(out, &self.user_type);
        }
    }

    /// Packs the whole value.
    pub fn pack(&self, out: &mut Vec<u8>) {
        msgpack::map(out, 2 + u32::from(self.priority != 0));
        msgpack::str(out, "id");
        msgpack::uint(out, self.id);
        msgpack::str(out, "dat");
        match &self.cypher {
            Some(c) => msgpack::bin(out, c),
            None => {
                msgpack::map(out, 1 + u32::from(self.owner.is_some()));
                msgpack::str(out, "body");
                self.pack_body(out);
                if self.owner.is_some() {
                    msgpack::str(out, "sig");
                    msgpack::bin(out, &self.signature);
                }
            }
        }
        if self.priority != 0 {
            msgpack::str(out, "p");
            msgpack::uint(out, self.priority);
        }
    }

    /// The packed value as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 64);
        self.pack(&mut out);
        out
    }

    /// Parses a packed value.
    pub fn from_bytes(data: &[u8]) -> Result<Self, DecodeError> {
        Self::unpack(&mut Reader::new(data))
    }

    /// Parses a value at the reader's position.
    pub fn unpack(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut v = Value::default();
        let (mut have_id, mut have_dat, mut have_sig) = (false, false, false);
        let mut body_fields = BodyFields::default();
        for _ in 0..r.map_len()? {
            match r.str()? {
                "id" => {
                    v.id = r.uint()?;
                    have_id = true;
                }
                "dat" => {
                    have_dat = true;
                    match r.peek()? {
                        Kind::Bin => v.cypher = Some(r.bin()?.to_vec()),
                        _ => {
                            for _ in 0..r.map_len()? {
                                match r.str()? {
                                    "body" => body_fields = unpack_body(r, &mut v)?,
                                    "sig" => {
                                        v.signature = r.bytes()?.to_vec();
                                        have_sig = true;
                                    }
                                    _ => r.skip()?,
                                }
                            }
                        }
                    }
                }
                "p" => v.priority = r.uint()?,
                _ => r.skip()?,
            }
        }
        if !have_id || !have_dat {
            return Err(DecodeError("value without id or dat".into()));
        }
        if v.cypher.is_none() {
            if !body_fields.data || !body_fields.value_type {
                return Err(DecodeError("value body without data or type".into()));
            }
            if v.owner.is_some() && (!body_fields.seq || !have_sig) {
                return Err(DecodeError("signed value without seq or sig".into()));
            }
        }
        Ok(v)
    }
}

#[derive(Default)]
struct BodyFields {
    data: bool,
    value_type: bool,
    seq: bool,
}

fn unpack_body(r: &mut Reader<'_>, v: &mut Value) -> Result<BodyFields, DecodeError> {
    let mut f = BodyFields::default();
    for _ in 0..r.map_len()? {
        match r.str()? {
            "seq" => {
                v.seq =
                    u16::try_from(r.uint()?).map_err(|_| DecodeError("seq out of range".into()))?;
                f.seq = true;
            }
            "owner" => v.owner = Some(r.bytes()?.to_vec()),
            "to" => {
                v.recipient = Some(
                    InfoHash::from_slice(r.bytes()?)
                        .ok_or_else(|| DecodeError("to is not 20 bytes".into()))?,
                )
            }
            "type" => {
                v.value_type = u16::try_from(r.uint()?)
                    .map_err(|_| DecodeError("type out of range".into()))?;
                f.value_type = true;
            }
            "data" => {
                v.data = match r.peek()? {
                    Kind::Array => {
                        let n = r.array_len()?;
                        let mut d = Vec::with_capacity(n as usize);
                        for _ in 0..n {
                            d.push(
                                u8::try_from(r.uint()?)
                                    .map_err(|_| DecodeError("data byte out of range".into()))?,
                            );
                        }
                        d
                    }
                    _ => r.bytes()?.to_vec(),
                };
                f.data = true;
            }
            "utype" => v.user_type = String::from_utf8_lossy(r.bytes()?).into_owned(),
            _ => r.skip()?,
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_value_matches_opendht_bytes() {
        // Captured from OpenDHT 2.4.12: id 7, type 0, data "x".
        let v = Value {
            id: 7,
            data: b"x".to_vec(),
            ..Value::default()
        };
        let expected = [
            0x82, 0xa2, b'i', b'd', 0x07, 0xa3, b'd', b'a', b't', 0x81, 0xa4, b'b', b'o', b'd',
            b'y', 0x82, 0xa4, b't', b'y', b'p', b'e', 0x00, 0xa4, b'd', b'a', b't', b'a', 0xc4,
            0x01, b'x',
        ];
        assert_eq!(v.to_bytes(), expected);
        assert_eq!(Value::from_bytes(&expected).unwrap(), v);
        let p = Value {
            priority: 1,
            ..v.clone()
        };
        let bytes = p.to_bytes();
        assert_eq!(bytes[0], 0x83);
        assert_eq!(&bytes[bytes.len() - 3..], &[0xa1, b'p', 0x01]);
        assert_eq!(Value::from_bytes(&bytes).unwrap(), p);
    }

    #[test]
    fn signed_and_encrypted_round_trip() {
        let v = Value {
            id: u64::MAX,
            value_type: 4,
            data: vec![9; 300],
            user_type: "text/plain".into(),
            seq: 3,
            owner: Some(vec![1; 40]),
            recipient: Some(InfoHash([2; 20])),
            signature: vec![5; 512],
            ..Value::default()
        };
        assert_eq!(Value::from_bytes(&v.to_bytes()).unwrap(), v);
        let e = Value {
            id: 5,
            cypher: Some(vec![7; 600]),
            ..Value::default()
        };
        assert_eq!(Value::from_bytes(&e.to_bytes()).unwrap(), e);
    }

    #[test]
    fn malformed_values_are_errors() {
        let v = Value {
            id: 1,
            owner: Some(vec![1; 10]),
            signature: vec![2; 10],
            ..Value::new("abc")
        }
        .to_bytes();
        for n in 0..v.len() {
            assert!(Value::from_bytes(&v[..n]).is_err());
        }
        // A signed body without its signature is refused.
        let mut unsigned = Value {
            id: 1,
            owner: Some(vec![1; 10]),
            ..Value::new("abc")
        };
        unsigned.signature.clear();
        let mut out = Vec::new();
        msgpack::map(&mut out, 2);
        msgpack::str(&mut out, "id");
        msgpack::uint(&mut out, 1);
        msgpack::str(&mut out, "dat");
        msgpack::map(&mut out, 1);
        msgpack::str(&mut out, "body");
        unsigned.pack_body(&mut out);
        assert!(Value::from_bytes(&out).is_err());
    }
}
