//! Typed ids of the things an account handles. Accounts and devices are
//! [`JamiId`](pamoja_identity::JamiId) and [`DeviceId`](pamoja_identity::DeviceId).

use std::fmt;
use std::str::FromStr;

/// A string that is not the id it was read as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a {what}: {got:?}")]
pub struct InvalidId {
    what: &'static str,
    got: String,
}

impl InvalidId {
    /// An account id (Jami ID) that did not read.
    pub(crate) fn account(got: &str) -> Self {
        Self {
            what: "Jami ID",
            got: got.chars().take(80).collect(),
        }
    }
}

fn hex40(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $what:expr, $valid:expr, $norm:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// An id the crate already checked.
            pub(crate) fn trusted(s: impl Into<String>) -> Self {
                Self(s.into())
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                let valid: fn(&str) -> bool = $valid;
                let norm: fn(&str) -> String = $norm;
                if valid(s) {
                    Ok(Self(norm(s)))
                } else {
                    Err(InvalidId { what: $what, got: s.chars().take(80).collect() })
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

text_id!(
    /// A conversation: the id of its first commit (40 hex digits).
    ConversationId,
    "conversation id",
    hex40,
    str::to_ascii_lowercase
);

text_id!(
    /// A message of a conversation: its commit id (40 hex digits).
    MessageId,
    "message id",
    hex40,
    str::to_ascii_lowercase
);

text_id!(
    /// A call: its SIP `Call-ID` (printable, at most 256 characters).
    CallId,
    "call id",
    |s: &str| !s.is_empty() && s.len() <= 256 && s.bytes().all(|b| b.is_ascii_graphic()),
    str::to_owned
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_only_what_they_are() {
        let c: ConversationId = "0123456789ABCDEF0123456789abcdef01234567".parse().unwrap();
        assert_eq!(c.as_str(), "0123456789abcdef0123456789abcdef01234567");
        assert!("0123".parse::<ConversationId>().is_err());
        assert!(
            "g123456789abcdef0123456789abcdef01234567"
                .parse::<MessageId>()
                .is_err()
        );
        assert_eq!("AbC@host".parse::<CallId>().unwrap().as_str(), "AbC@host");
        assert!("".parse::<CallId>().is_err());
        assert!("a b".parse::<CallId>().is_err());
        let e = "x".parse::<ConversationId>().unwrap_err();
        assert_eq!(e.to_string(), "not a conversation id: \"x\"");
    }
}
