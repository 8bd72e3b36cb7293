//! Commit messages: one flat JSON object, written as jamid's jsoncpp writes it.
//!
//! jamid writes the message of every commit but merges as compact JSON with keys sorted by
//! byte order, non-ASCII escaped as `\uXXXX` (surrogate pairs above the BMP), no trailing
//! newline; every value is a string except the initial commit's `mode`, an integer. Readers
//! only need a JSON parser; [`Body::encode`] gives the same bytes as jamid for the same body.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One value of a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// A string (every field but `mode`).
    Str(String),
    /// An integer (`mode` of the initial commit).
    Int(i64),
}

/// The `type` of a commit, as jamid names them.
pub mod types {
    /// The root commit.
    pub const INITIAL: &str = "initial";
    /// A text message (also reactions, with `react-to`).
    pub const TEXT: &str = "text/plain";
    /// An edit of an earlier text message (`edit` names it).
    pub const EDIT: &str = "application/edited-message";
    /// A membership change (`action`, `uri`).
    pub const MEMBER: &str = "member";
    /// A vote to ban or unban (the path says which).
    pub const VOTE: &str = "vote";
    /// `profile.vcf` changed.
    pub const PROFILE: &str = "application/update-profile";
    /// A call ended (one-to-one) or started/ended (group).
    pub const CALL: &str = "application/call-history+json";
    /// A file was offered (the file is not in git).
    pub const DATA_TRANSFER: &str = "application/data-transfer+json";
}

/// A commit message body: keys in byte order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Body(pub BTreeMap<String, Field>);

impl Body {
    fn with(pairs: &[(&str, &str)]) -> Self {
        Self(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Field::Str((*v).to_owned())))
                .collect(),
        )
    }

    /// The root commit's body: `{"mode": mode, "type": "initial"}`, plus `invited` for a
    /// one-to-one conversation.
    pub fn initial(mode: u8, invited: Option<&str>) -> Self {
        let mut b = Self::with(&[("type", types::INITIAL)]);
        b.0.insert("mode".into(), Field::Int(i64::from(mode)));
        if let Some(i) = invited {
            b.0.insert("invited".into(), Field::Str(i.to_owned()));
        }
        b
    }

    /// A text message, optionally replying to commit `reply_to`.
    pub fn text(body: &str, reply_to: Option<&str>) -> Self {
        let mut b = Self::with(&[("type", types::TEXT), ("body", body)]);
        if let Some(r) = reply_to {
            b.0.insert("reply-to".into(), Field::Str(r.to_owned()));
        }
        b
    }

    /// A reaction (`body` is the emoji) to commit `to`.
    pub fn reaction(emoji: &str, to: &str) -> Self {
        Self::with(&[("type", types::TEXT), ("body", emoji), ("react-to", to)])
    }

    /// An edit of commit `edited` (jamid 2023's form; an empty body deletes).
    pub fn edit(body: &str, edited: &str) -> Self {
        Self::with(&[("type", types::EDIT), ("body", body), ("edit", edited)])
    }

    /// A membership change: `action` is `add`, `join`, `remove`, `ban` or `unban`.
    pub fn member(action: &str, uri: &str) -> Self {
        Self::with(&[("type", types::MEMBER), ("action", action), ("uri", uri)])
    }

    /// A vote about `uri` (what the vote is about is in the file path).
    pub fn vote(uri: &str) -> Self {
        Self::with(&[("type", types::VOTE), ("uri", uri)])
    }

    /// `profile.vcf` changed.
    pub fn profile_update() -> Self {
        Self::with(&[("type", types::PROFILE)])
    }

    /// A one-to-one call that ended after `duration_ms` (0 when never answered).
    pub fn call_ended(to: &str, duration_ms: u64) -> Self {
        Self::with(&[
            ("type", types::CALL),
            ("to", to),
            ("duration", &duration_ms.to_string()),
        ])
    }

    /// A file offered: transfer id, name, size, SHA3-512 (128 hex).
    pub fn data_transfer(tid: u64, name: &str, size: u64, sha3: &str) -> Self {
        Self::with(&[
            ("type", types::DATA_TRANSFER),
            ("tid", &tid.to_string()),
            ("displayName", name),
            ("totalSize", &size.to_string()),
            ("sha3sum", sha3),
        ])
    }

    /// A string field.
    pub fn get(&self, key: &str) -> Option<&str> {
        match self.0.get(key)? {
            Field::Str(s) => Some(s),
            Field::Int(_) => None,
        }
    }

    /// The `type` (empty when missing, as jamid reads it).
    pub fn kind(&self) -> &str {
        self.get("type").unwrap_or("")
    }

    /// The `mode` of an initial commit.
    pub fn mode(&self) -> Option<i64> {
        match self.0.get("mode")? {
            Field::Int(i) => Some(*i),
            Field::Str(_) => None,
        }
    }

    /// The message text, as jamid writes it.
    pub fn encode(&self) -> String {
        let mut out = String::from("{");
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            quote(&mut out, k);
            out.push(':');
            match v {
                Field::Str(s) => quote(&mut out, s),
                Field::Int(n) => {
                    let _ = write!(out, "{n}");
                }
            }
        }
        out.push('}');
        out
    }

    /// Reads a commit message: `None` unless it is a JSON object. Nested values (which jamid
    /// cannot read either) are skipped; numbers other than integers too.
    pub fn parse(message: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(message).ok()?;
        let obj = v.as_object()?;
        let mut b = Self::default();
        for (k, v) in obj {
            let f = match v {
                serde_json::Value::String(s) => Field::Str(s.clone()),
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(i) => Field::Int(i),
                    None => continue,
                },
                _ => continue,
            };
            b.0.insert(k.clone(), f);
        }
        Some(b)
    }
}

/// Appends `s` as a JSON string the way jsoncpp does by default.
fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (c as u32) >= 0x7f => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsoncpp_form() {
        assert_eq!(
            Body::initial(2, None).encode(),
            r#"{"mode":2,"type":"initial"}"#
        );
        let id = "a".repeat(40);
        assert_eq!(
            Body::initial(0, Some(&id)).encode(),
            format!(r#"{{"invited":"{id}","mode":0,"type":"initial"}}"#)
        );
        assert_eq!(
            Body::text("é \"q\"\n😀", None).encode(),
            r#"{"body":"\u00e9 \"q\"\n\ud83d\ude00","type":"text/plain"}"#
        );
        // Keys in byte order: "react-to" < "type".
        assert_eq!(
            Body::reaction("👍", "c0ffee").encode(),
            r#"{"body":"\ud83d\udc4d","react-to":"c0ffee","type":"text/plain"}"#
        );
    }

    #[test]
    fn parse_round_trip_and_kinds() {
        for b in [
            Body::initial(1, None),
            Body::text("héllo", Some("abc")),
            Body::edit("", "abc"),
            Body::member("join", "abc"),
            Body::data_transfer(7, "a.png", 10, "00"),
            Body::call_ended("abc", 0),
        ] {
            assert_eq!(Body::parse(&b.encode()).unwrap(), b);
        }
        assert_eq!(
            Body::parse(r#"{"mode":3,"type":"initial"}"#)
                .unwrap()
                .mode(),
            Some(3)
        );
        assert_eq!(Body::parse("Merge commit 'x'"), None);
        assert_eq!(Body::parse(r#"{"body":"x"}"#).unwrap().kind(), "");
    }
}
