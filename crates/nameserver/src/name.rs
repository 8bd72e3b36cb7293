//! Names: what jamid accepts, and which server a `name@host` query goes to.

use std::fmt;

/// The server jamid uses when an account names none.
pub const DEFAULT_SERVER: &str = "https://ns.jami.net";

/// A name breaking the rules: 3 to 32 of `a-z A-Z 0-9 - _`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid name {0:?}: 3 to 32 letters, digits, '-' or '_'")]
pub struct InvalidName(pub String);

/// A valid name, lower-cased (as it is sent, signed and stored).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    /// Checks `text` against jamid's rule (`^[a-zA-Z0-9-_]{3,32}$`) and lower-cases it.
    pub fn parse(text: &str) -> Result<Self, InvalidName> {
        let ok = (3..=32).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(text.to_ascii_lowercase()))
        } else {
            Err(InvalidName(text.to_owned()))
        }
    }

    /// The lower-cased name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Normalises a server as jamid does: no trailing `/`, `http://` when no scheme is given.
pub fn server_url(server: &str) -> String {
    let s = server.trim().trim_end_matches('/');
    if s.is_empty() {
        DEFAULT_SERVER.to_owned()
    } else if s.contains("://") {
        s.to_owned()
    } else {
        format!("http://{s}")
    }
}

/// Splits a lookup query the way jamid does: `name@host[:port]` asks `host[:port]` for `name`;
/// anything else (after an optional `scheme:` prefix) is a name for `default_server`.
/// Returns (server URL, name text).
pub fn split_query(query: &str, default_server: &str) -> (String, String) {
    // An optional `scheme:` or `scheme://` prefix (letters only).
    let rest = match query.find(':') {
        Some(i) if i > 0 && query[..i].bytes().all(|b| b.is_ascii_alphabetic()) => {
            let after = &query[i + 1..];
            after.strip_prefix("//").unwrap_or(after)
        }
        _ => query,
    };
    if let Some((user, host)) = rest.split_once('@') {
        let user_ok = (1..=64).contains(&user.len())
            && user
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if user_ok && !host.is_empty() {
            return (server_url(host), user.to_owned());
        }
    }
    (server_url(default_server), rest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jamid_name_rules() {
        assert_eq!(
            Name::parse("Proto_Test-1").unwrap().as_str(),
            "proto_test-1"
        );
        assert!(Name::parse("ab").is_err());
        assert!(Name::parse("x").is_err());
        assert!(Name::parse(&"a".repeat(33)).is_err());
        assert!(Name::parse(&"a".repeat(32)).is_ok());
        assert!(Name::parse("bad name").is_err());
        assert!(Name::parse("émile").is_err());
        assert!(Name::parse("a.b.c").is_err());
    }

    #[test]
    fn queries_pick_their_server() {
        assert_eq!(
            split_query("proto_test-1@127.0.0.1:8099", DEFAULT_SERVER),
            ("http://127.0.0.1:8099".into(), "proto_test-1".into())
        );
        assert_eq!(
            split_query("alice", "http://127.0.0.1:8099/"),
            ("http://127.0.0.1:8099".into(), "alice".into())
        );
        assert_eq!(
            split_query("jami:alice", "127.0.0.1:8099"),
            ("http://127.0.0.1:8099".into(), "alice".into())
        );
        assert_eq!(
            split_query("alice@https://ns.example.org", "x"),
            ("https://ns.example.org".into(), "alice".into())
        );
        assert_eq!(server_url(""), DEFAULT_SERVER);
    }
}
