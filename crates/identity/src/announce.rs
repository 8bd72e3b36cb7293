//! The device receipt and the DeviceAnnouncement, and the signed DHT value that carries it.
//!
//! A DeviceAnnouncement is the msgpack map `{"dev": bin(20 short device id), "pk": bin(device
//! SPKI)}`, put on the DHT at the Jami ID as a value signed by the account key. The receipt is
//! the JSON text `{"id":…,"dev":…,"eth":…,"announce":base64(packed value)}`, signed (RSA
//! PKCS#1 v1.5, SHA-512) by the account key; jamid keeps both in the account configuration.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::{Error, Result, malformed};
use crate::id::{JamiId, ShortDeviceId};
use crate::key::{PrivateKey, PublicKey, SignatureHash};
use crate::msgpack::{self, Reader};

/// Value type id of plain user data (what announcements use).
pub const USER_DATA_TYPE: u64 = 0;

/// A device's announcement: its short id and public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAnnouncement {
    /// The device's short id.
    pub dev: ShortDeviceId,
    /// The device's public key.
    pub pk: PublicKey,
}

impl DeviceAnnouncement {
    /// The announcement of a device key.
    pub fn new(device_key: &PublicKey) -> Self {
        Self {
            dev: device_key.short_device_id(),
            pk: device_key.clone(),
        }
    }

    /// msgpack bytes: `{"dev": bin(20), "pk": bin(SPKI)}`.
    pub fn pack(&self) -> Vec<u8> {
        let mut out = Vec::new();
        msgpack::map(&mut out, 2);
        msgpack::str(&mut out, "dev");
        msgpack::bin(&mut out, self.dev.as_bytes());
        msgpack::str(&mut out, "pk");
        msgpack::bin(&mut out, self.pk.spki_der());
        out
    }

    /// Parses the msgpack map; keys may come in any order, unknown keys are skipped.
    pub fn unpack(data: &[u8]) -> Result<Self> {
        let mut r = Reader::new(data);
        let (mut dev, mut pk) = (None, None);
        for _ in 0..r.map_len()? {
            match r.str()? {
                "dev" => {
                    dev = Some(
                        ShortDeviceId::from_slice(r.bin()?)
                            .ok_or_else(|| malformed("announcement", "dev is not 20 bytes"))?,
                    )
                }
                "pk" => pk = Some(PublicKey::from_spki_der(r.bin()?)?),
                _ => r.skip()?,
            }
        }
        let (Some(dev), Some(pk)) = (dev, pk) else {
            return Err(malformed("announcement", "missing dev or pk"));
        };
        if pk.short_device_id() != dev {
            return Err(Error::Mismatch(
                "announcement dev is not the hash of pk".into(),
            ));
        }
        Ok(Self { dev, pk })
    }
}

/// A signed DHT value as opendht packs it: `{"id", "dat": {"body": {"seq", "owner", ["to"],
/// "type", "data", ["utype"]}, "sig"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedValue {
    /// Value id (0 until the DHT assigns one).
    pub id: u64,
    /// Sequence number.
    pub seq: u64,
    /// The signer's public key.
    pub owner: PublicKey,
    /// Recipient key id, for encrypted values.
    pub to: Option<[u8; 20]>,
    /// Value type id.
    pub value_type: u64,
    /// Payload.
    pub data: Vec<u8>,
    /// User type string.
    pub user_type: String,
    /// RSA PKCS#1 v1.5 SHA-512 signature over the packed body.
    pub signature: Vec<u8>,
}

impl SignedValue {
    /// Signs `data` with `key`.
    pub fn sign(key: &PrivateKey, value_type: u64, data: Vec<u8>) -> Result<Self> {
        let mut v = Self {
            id: 0,
            seq: 0,
            owner: key.public_key().clone(),
            to: None,
            value_type,
            data,
            user_type: String::new(),
            signature: Vec::new(),
        };
        v.signature = key.sign(SignatureHash::Sha512, &v.pack_body())?;
        Ok(v)
    }

    /// The bytes the signature covers.
    pub fn pack_body(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let len = 4 + u32::from(self.to.is_some()) + u32::from(!self.user_type.is_empty());
        msgpack::map(&mut out, len);
        msgpack::str(&mut out, "seq");
        msgpack::uint(&mut out, self.seq);
        msgpack::str(&mut out, "owner");
        msgpack::bin(&mut out, self.owner.spki_der());
        if let Some(to) = &self.to {
            msgpack::str(&mut out, "to");
            msgpack::bin(&mut out, to);
        }
        msgpack::str(&mut out, "type");
        msgpack::uint(&mut out, self.value_type);
        msgpack::str(&mut out, "data");
        msgpack::bin(&mut out, &self.data);
        if !self.user_type.is_empty() {
            msgpack::str(&mut out, "utype");
            msgpack::str(&mut out, &self.user_type);
        }
        out
    }

    /// The whole packed value.
    pub fn pack(&self) -> Vec<u8> {
        let mut out = Vec::new();
        msgpack::map(&mut out, 2);
        msgpack::str(&mut out, "id");
        msgpack::uint(&mut out, self.id);
        msgpack::str(&mut out, "dat");
        msgpack::map(&mut out, 2);
        msgpack::str(&mut out, "body");
        out.extend(self.pack_body());
        msgpack::str(&mut out, "sig");
        msgpack::bin(&mut out, &self.signature);
        out
    }

    /// Parses a packed signed value (does not check the signature: see [`Self::verify`]).
    pub fn unpack(data: &[u8]) -> Result<Self> {
        let mut r = Reader::new(data);
        let mut id = 0;
        let mut body = None;
        let mut sig = None;
        for _ in 0..r.map_len()? {
            match r.str()? {
                "id" => id = r.uint()?,
                "dat" => {
                    for _ in 0..r.map_len()? {
                        match r.str()? {
                            "body" => body = Some(Self::unpack_body(&mut r)?),
                            "sig" => sig = Some(r.bin()?.to_vec()),
                            _ => r.skip()?,
                        }
                    }
                }
                _ => r.skip()?,
            }
        }
        let mut v = body.ok_or_else(|| malformed("value", "no signed body"))?;
        v.id = id;
        v.signature = sig.ok_or_else(|| malformed("value", "no signature"))?;
        Ok(v)
    }

    fn unpack_body(r: &mut Reader<'_>) -> Result<Self> {
        let (mut seq, mut owner, mut to, mut ty, mut data, mut utype) =
            (0, None, None, None, None, String::new());
        for _ in 0..r.map_len()? {
            match r.str()? {
                "seq" => seq = r.uint()?,
                "owner" => owner = Some(PublicKey::from_spki_der(r.bin()?)?),
                "to" => {
                    to = Some(
                        <[u8; 20]>::try_from(r.bin()?)
                            .map_err(|_| malformed("value", "to is not 20 bytes"))?,
                    )
                }
                "type" => ty = Some(r.uint()?),
                "data" => data = Some(r.bin()?.to_vec()),
                "utype" => utype = r.str()?.to_owned(),
                _ => r.skip()?,
            }
        }
        Ok(Self {
            id: 0,
            seq,
            owner: owner.ok_or_else(|| malformed("value", "no owner"))?,
            to,
            value_type: ty.ok_or_else(|| malformed("value", "no type"))?,
            data: data.ok_or_else(|| malformed("value", "no data"))?,
            user_type: utype,
            signature: Vec::new(),
        })
    }

    /// Verifies the signature with the owner key.
    pub fn verify(&self) -> Result<()> {
        self.owner
            .verify(SignatureHash::Sha512, &self.pack_body(), &self.signature)
    }
}

/// The device receipt: which account a device belongs to, signed by the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The account's Jami ID.
    pub id: JamiId,
    /// The device's short id.
    pub dev: ShortDeviceId,
    /// The account's Ethereum address (40 hex).
    pub eth: String,
    /// The packed, account-signed DeviceAnnouncement value.
    pub announce: Vec<u8>,
}

impl Receipt {
    /// Builds and signs the receipt and announcement of `device` under the account `key`.
    /// Returns the receipt JSON text, its signature and the parsed receipt.
    pub fn make(
        account_key: &PrivateKey,
        device: &PublicKey,
        eth_address_hex: &str,
    ) -> Result<(String, Vec<u8>, Self)> {
        let announce = SignedValue::sign(
            account_key,
            USER_DATA_TYPE,
            DeviceAnnouncement::new(device).pack(),
        )?
        .pack();
        let r = Self {
            id: account_key.public_key().jami_id(),
            dev: device.short_device_id(),
            eth: eth_address_hex.to_owned(),
            announce,
        };
        let text = r.to_json();
        let sig = account_key.sign(SignatureHash::Sha512, text.as_bytes())?;
        Ok((text, sig, r))
    }

    /// The exact JSON text jamid writes (fixed key order, no spaces).
    pub fn to_json(&self) -> String {
        format!(
            r#"{{"id":"{}","dev":"{}","eth":"{}","announce":"{}"}}"#,
            self.id,
            self.dev,
            self.eth,
            STANDARD.encode(&self.announce)
        )
    }

    /// Parses receipt JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| malformed("receipt", e))?;
        let field = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .ok_or_else(|| malformed("receipt", format!("no {k}")))
        };
        Ok(Self {
            id: field("id")?.parse().map_err(|e| malformed("receipt", e))?,
            dev: field("dev")?.parse().map_err(|e| malformed("receipt", e))?,
            eth: field("eth")?.to_owned(),
            announce: STANDARD
                .decode(field("announce")?)
                .map_err(|e| malformed("receipt", e))?,
        })
    }

    /// Checks, as jamid does when it loads its own device: the receipt signature verifies with
    /// the account key, `id` is that key's Jami ID, `dev` is the device's short id, and the
    /// announcement is signed by the account key and names the same device.
    pub fn verify(
        text: &str,
        signature: &[u8],
        account: &PublicKey,
        device: &PublicKey,
    ) -> Result<Self> {
        account.verify(SignatureHash::Sha512, text.as_bytes(), signature)?;
        let r = Self::from_json(text)?;
        if r.id != account.jami_id() {
            return Err(Error::Mismatch(
                "receipt id is not the account's Jami ID".into(),
            ));
        }
        if r.dev != device.short_device_id() {
            return Err(Error::Mismatch("receipt dev is not the device".into()));
        }
        let value = SignedValue::unpack(&r.announce)?;
        value.verify()?;
        if value.owner.jami_id() != r.id {
            return Err(Error::Mismatch(
                "announcement not signed by the account".into(),
            ));
        }
        let ann = DeviceAnnouncement::unpack(&value.data)?;
        if ann.dev != r.dev || &ann.pk != device {
            return Err(Error::Mismatch("announcement names another device".into()));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::tests::test_key;

    #[test]
    fn receipt_round_trip_and_tamper() {
        let account = test_key(0);
        let device = test_key(1).public_key();
        let (text, sig, r) =
            Receipt::make(account, device, "00112233445566778899aabbccddeeff00112233").unwrap();
        assert!(text.starts_with(&format!(r#"{{"id":"{}","dev":"{}","eth":"#, r.id, r.dev)));
        Receipt::verify(&text, &sig, account.public_key(), device).unwrap();
        assert!(
            Receipt::verify(&text, &sig, account.public_key(), test_key(2).public_key()).is_err()
        );
        let tampered = text.replace("\"eth\":\"0", "\"eth\":\"1");
        assert!(Receipt::verify(&tampered, &sig, account.public_key(), device).is_err());
        let value = SignedValue::unpack(&r.announce).unwrap();
        value.verify().unwrap();
        let ann = DeviceAnnouncement::unpack(&value.data).unwrap();
        assert_eq!(ann.dev, device.short_device_id());
        // The announcement map of an RSA-4096 key is 583 bytes, as jamid's.
        assert_eq!(value.data.len(), 583);
    }

    #[test]
    fn truncated_values_are_errors() {
        let v = SignedValue::sign(test_key(0), 0, vec![1, 2, 3])
            .unwrap()
            .pack();
        for n in 0..v.len() {
            assert!(SignedValue::unpack(&v[..n]).is_err());
        }
        assert!(SignedValue::unpack(&v).unwrap().verify().is_ok());
    }
}
