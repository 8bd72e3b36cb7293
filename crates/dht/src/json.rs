//! Values as JSON, the way OpenDHT's proxy writes and reads them (`Value::toJson`,
//! `Value(Json)`):
//!
//! ```text
//! {"id": "12345", "type": 0, "data": "<base64>", "utype": "text/plain"}
//! {"id": "1", "sig": "<base64>", "seq": 2, "owner": "-----BEGIN PUBLIC KEY-----...", "type": 3, "data": "..."}
//! {"id": "7", "cypher": "<base64>"}
//! ```
//!
//! The id is a decimal string (a number is accepted too); an encrypted value carries only its
//! id, `cypher` and `prio`; a signed one adds `sig`, `seq`, `owner` (a PEM public key; OpenDHT
//! 2.4.12 ends it with a NUL character, which is accepted) and `to` (hex) when it is addressed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pamoja_identity::PublicKey;
use serde_json::{Map, Value as Json, json};

use crate::infohash::InfoHash;
use crate::value::Value;

/// Why a JSON object is not a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not a JSON object.
    #[error("not a JSON object")]
    NotObject,
    /// A field has the wrong type or encoding.
    #[error("bad field {0:?}")]
    BadField(&'static str),
}

/// The JSON object of `v`.
pub fn to_json(v: &Value) -> Json {
    let mut m = Map::new();
    m.insert("id".into(), json!(v.id.to_string()));
    if let Some(c) = &v.cypher {
        m.insert("cypher".into(), json!(STANDARD.encode(c)));
    } else {
        if !v.signature.is_empty() {
            m.insert("sig".into(), json!(STANDARD.encode(&v.signature)));
        }
        if let Some(owner) = &v.owner {
            m.insert("seq".into(), json!(v.seq));
            let pem = PublicKey::from_pem_or_der(owner)
                .map(|k| k.to_pem())
                .unwrap_or_default();
            m.insert("owner".into(), json!(pem));
            if let Some(to) = &v.recipient {
                m.insert("to".into(), json!(to.to_string()));
            }
        }
        m.insert("type".into(), json!(v.value_type));
        m.insert("data".into(), json!(STANDARD.encode(&v.data)));
        if !v.user_type.is_empty() {
            m.insert("utype".into(), json!(v.user_type));
        }
    }
    if v.priority != 0 {
        m.insert("prio".into(), json!(v.priority));
    }
    Json::Object(m)
}

fn b64(j: &Json, key: &'static str) -> Result<Option<Vec<u8>>, JsonError> {
    match j.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => STANDARD
            .decode(s)
            .map(Some)
            .map_err(|_| JsonError::BadField(key)),
        Some(_) => Err(JsonError::BadField(key)),
    }
}

fn uint(j: &Json, key: &'static str) -> Result<Option<u64>, JsonError> {
    match j.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Number(n)) => n.as_u64().map(Some).ok_or(JsonError::BadField(key)),
        Some(Json::String(s)) => s.parse().map(Some).map_err(|_| JsonError::BadField(key)),
        Some(_) => Err(JsonError::BadField(key)),
    }
}

/// A value from its JSON object.
pub fn from_json(j: &Json) -> Result<Value, JsonError> {
    if !j.is_object() {
        return Err(JsonError::NotObject);
    }
    let mut v = Value {
        id: uint(j, "id")?.unwrap_or(0),
        ..Value::default()
    };
    v.cypher = b64(j, "cypher")?;
    v.priority = uint(j, "prio")?.unwrap_or(0);
    if v.cypher.is_some() {
        // An encrypted value's body is inside the ciphertext: other fields are not its own.
        return Ok(v);
    }
    v.signature = b64(j, "sig")?.unwrap_or_default();
    if let Some(seq) = uint(j, "seq")? {
        v.seq = u16::try_from(seq).map_err(|_| JsonError::BadField("seq"))?;
    }
    match j.get("owner") {
        None | Some(Json::Null) => {}
        Some(Json::String(pem)) => {
            let key = PublicKey::from_pem_or_der(pem.as_bytes())
                .map_err(|_| JsonError::BadField("owner"))?;
            v.owner = Some(key.spki_der().to_vec());
        }
        Some(_) => return Err(JsonError::BadField("owner")),
    }
    match j.get("to") {
        None | Some(Json::Null) => {}
        Some(Json::String(hex)) => {
            v.recipient = Some(
                hex.parse::<InfoHash>()
                    .map_err(|_| JsonError::BadField("to"))?,
            )
        }
        Some(_) => return Err(JsonError::BadField("to")),
    }
    if v.owner.is_none() {
        // `seq` belongs to a signed value's body (OpenDHT packs and writes it only with an
        // owner): on an unsigned one it is dropped, as OpenDHT drops it on the way out.
        // `to` stays: the proxy's `/encrypt` reads it from an unsigned value.
        v.seq = 0;
    }
    if let Some(t) = uint(j, "type")? {
        v.value_type = u16::try_from(t).map_err(|_| JsonError::BadField("type"))?;
    }
    v.data = b64(j, "data")?.unwrap_or_default();
    match j.get("utype") {
        None | Some(Json::Null) => {}
        Some(Json::String(s)) => v.user_type = s.clone(),
        Some(_) => return Err(JsonError::BadField("utype")),
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_value_as_opendht_writes_it() {
        let v = Value {
            id: 42,
            data: b"hello".to_vec(),
            user_type: "text/plain".into(),
            ..Value::default()
        };
        let j = to_json(&v);
        assert_eq!(
            j,
            json!({"id": "42", "type": 0, "data": "aGVsbG8=", "utype": "text/plain"})
        );
        assert_eq!(from_json(&j).unwrap(), v);
        // A numeric id is read too.
        let n = from_json(&json!({"id": 42, "data": "aGVsbG8=", "utype": "text/plain"})).unwrap();
        assert_eq!(n, v);
    }

    #[test]
    fn encrypted_value_carries_only_its_cypher() {
        let v = Value {
            id: 7,
            cypher: Some(vec![1, 2, 3]),
            priority: 1,
            ..Value::default()
        };
        let j = to_json(&v);
        assert_eq!(j, json!({"id": "7", "cypher": "AQID", "prio": 1}));
        assert_eq!(from_json(&j).unwrap(), v);
        // Body fields beside a cypher are not the value's (as OpenDHT writes it back).
        let extra = json!({"id": "7", "cypher": "AQID", "prio": 1, "data": "eA==", "type": 3});
        assert_eq!(from_json(&extra).unwrap(), v);
    }

    #[test]
    fn bad_input_is_an_error() {
        for bad in [
            json!([]),
            json!({"id": "x"}),
            json!({"id": "1", "data": "***"}),
            json!({"id": "1", "owner": "not a key"}),
            json!({"id": "1", "seq": 70000}),
            json!({"id": "1", "to": "zz"}),
            json!({"id": "1", "type": -1}),
        ] {
            assert!(from_json(&bad).is_err(), "{bad}");
        }
    }
}
