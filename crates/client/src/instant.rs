//! The bodies of the instant messages members exchange over `sip` channels: new-commit
//! notices, typing indicators (RFC 3994), read receipts (RFC 5438 IMDN) and invitations,
//! written as jamid writes them and read as tolerantly as jamid reads them.

use serde_json::{Value as Json, json};

/// "A new commit is in conversation X": fetch it from the device named.
pub const MIME_GIT: &str = "application/im-gitmessage-id";
/// Typing indicator.
pub const MIME_COMPOSING: &str = "application/im-iscomposing+xml";
/// Read receipt.
pub const MIME_IMDN: &str = "message/imdn+xml";
/// Invitation to a conversation.
pub const MIME_INVITE_JSON: &str = "application/invite+json";
/// "Please invite me again to this conversation".
pub const MIME_INVITE: &str = "application/invite";

/// What an instant message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instant {
    /// Commit `commit` of `conversation` can be fetched from `device`.
    NewCommit {
        /// The conversation.
        conversation: String,
        /// The new head.
        commit: String,
        /// The device to fetch from (64 hex digits).
        device: String,
    },
    /// The sender is typing (or stopped) in `conversation`.
    Composing {
        /// The conversation (empty for the old non-swarm form).
        conversation: String,
        /// Typing or not.
        active: bool,
    },
    /// The sender displayed `message` of `conversation`.
    Displayed {
        /// The conversation.
        conversation: String,
        /// The commit id displayed.
        message: String,
    },
    /// An invitation to `conversation`, with its details (`title`, `mode`...).
    Invite {
        /// The conversation.
        conversation: String,
        /// Its details.
        metadatas: serde_json::Map<String, Json>,
    },
    /// The sender asks to be invited to `conversation` again.
    NeedInvite {
        /// The conversation.
        conversation: String,
    },
}

/// The first run of word characters between `open` and `close`, spaces around it allowed
/// (jamid reads these XML bodies with regular expressions, not an XML parser).
fn between<'a>(body: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = body.find(open)? + open.len();
    let rest = &body[start..];
    let end = rest.find(close)?;
    let inner = rest[..end].trim();
    (!inner.is_empty()
        && inner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    .then_some(inner)
}

impl Instant {
    /// The MIME type and body to send.
    pub fn encode(&self) -> (&'static str, String) {
        match self {
            Self::NewCommit {
                conversation,
                commit,
                device,
            } => (
                MIME_GIT,
                json!({"commit": commit, "deviceId": device, "id": conversation}).to_string(),
            ),
            Self::Composing {
                conversation,
                active,
            } => (
                MIME_COMPOSING,
                format!(
                    "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<isComposing><state>{}</state>{}</isComposing>",
                    if *active { "active" } else { "idle" },
                    if conversation.is_empty() {
                        String::new()
                    } else {
                        format!("<conversation>{conversation}</conversation>")
                    }
                ),
            ),
            Self::Displayed {
                conversation,
                message,
            } => (
                MIME_IMDN,
                format!(
                    "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<imdn><message-id>{message}</message-id>\n<conversation>{conversation}</conversation><display-notification><status><displayed/></status></display-notification>\n</imdn>"
                ),
            ),
            Self::Invite {
                conversation,
                metadatas,
            } => (
                MIME_INVITE_JSON,
                json!({"conversationId": conversation, "metadatas": metadatas}).to_string(),
            ),
            Self::NeedInvite { conversation } => (MIME_INVITE, conversation.clone()),
        }
    }

    /// Reads a body of MIME type `mime`; `None` for other types and for bodies that do not
    /// say what they must.
    pub fn decode(mime: &str, body: &str) -> Option<Self> {
        match mime {
            MIME_GIT => {
                let j: Json = serde_json::from_str(body).ok()?;
                let s = |k: &str| j.get(k)?.as_str().map(str::to_owned);
                Some(Self::NewCommit {
                    conversation: s("id")?,
                    commit: s("commit")?,
                    device: s("deviceId")?,
                })
            }
            MIME_COMPOSING => Some(Self::Composing {
                active: between(body, "<state>", "</state>") == Some("active"),
                conversation: between(body, "<conversation>", "</conversation>")
                    .unwrap_or_default()
                    .to_owned(),
            }),
            MIME_IMDN => {
                let message = between(body, "<message-id>", "</message-id>")?.to_owned();
                let status = between(body, "<status><", "/></status>").or_else(|| {
                    let s = body.find("<status>")? + 8;
                    let rest = body[s..].trim_start().strip_prefix('<')?;
                    let e = rest.find("/>")?;
                    Some(&rest[..e])
                })?;
                if status != "displayed" {
                    return None;
                }
                Some(Self::Displayed {
                    conversation: between(body, "<conversation>", "</conversation>")?.to_owned(),
                    message,
                })
            }
            MIME_INVITE_JSON => {
                let j: Json = serde_json::from_str(body).ok()?;
                Some(Self::Invite {
                    conversation: j.get("conversationId")?.as_str()?.to_owned(),
                    metadatas: j
                        .get("metadatas")
                        .and_then(Json::as_object)
                        .cloned()
                        .unwrap_or_default(),
                })
            }
            MIME_INVITE => {
                let c = body.trim();
                (c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit())).then(|| {
                    Self::NeedInvite {
                        conversation: c.to_owned(),
                    }
                })
            }
            _ => None,
        }
    }
}

/// A minimal vCard with a display name, as trust request payloads carry profiles.
pub fn vcard(display_name: &str) -> Vec<u8> {
    format!("BEGIN:VCARD\r\nVERSION:2.1\r\nFN:{display_name}\r\nEND:VCARD\r\n").into_bytes()
}

/// The display name (`FN`) of a vCard payload, trimmed of the `\r` jamid leaves.
pub fn vcard_name(payload: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(payload);
    text.lines().find_map(|l| {
        let l = l.trim_end_matches('\r');
        let v = l.strip_prefix("FN:").or_else(|| {
            let (k, v) = l.split_once(':')?;
            k.starts_with("FN;").then_some(v)
        })?;
        Some(v.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn bodies_as_jamid_writes_them() {
        let (m, b) = Instant::Composing {
            conversation: C.into(),
            active: true,
        }
        .encode();
        assert_eq!(m, MIME_COMPOSING);
        assert_eq!(
            b,
            format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<isComposing><state>active</state><conversation>{C}</conversation></isComposing>"
            )
        );
        let (m, b) = Instant::Displayed {
            conversation: C.into(),
            message: "ab".repeat(20),
        }
        .encode();
        assert_eq!(m, MIME_IMDN);
        assert!(
            b.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<imdn><message-id>abab")
        );
        assert!(b.ends_with(
            "<display-notification><status><displayed/></status></display-notification>\n</imdn>"
        ));
        for i in [
            Instant::Composing {
                conversation: C.into(),
                active: false,
            },
            Instant::Displayed {
                conversation: C.into(),
                message: "cd".repeat(20),
            },
            Instant::NewCommit {
                conversation: C.into(),
                commit: "ef".repeat(20),
                device: "01".repeat(32),
            },
            Instant::NeedInvite {
                conversation: C.into(),
            },
        ] {
            let (m, b) = i.encode();
            assert_eq!(Instant::decode(m, &b), Some(i));
        }
    }

    #[test]
    fn tolerant_reading() {
        // jamid's pretty-printed JSON and spaced XML.
        let j = format!(
            "{{\n\t\"commit\" : \"{}\",\n\t\"deviceId\" : \"{}\",\n\t\"id\" : \"{C}\"\n}}",
            "a".repeat(40),
            "b".repeat(64)
        );
        assert!(matches!(
            Instant::decode(MIME_GIT, &j),
            Some(Instant::NewCommit { .. })
        ));
        let x = format!(
            "<imdn><message-id> abc </message-id><conversation>{C}</conversation><status> <displayed/> </status></imdn>"
        );
        assert_eq!(
            Instant::decode(MIME_IMDN, &x),
            Some(Instant::Displayed {
                conversation: C.into(),
                message: "abc".into()
            })
        );
        assert_eq!(
            Instant::decode(
                MIME_IMDN,
                "<imdn><message-id>a</message-id><status><delivered/></status></imdn>"
            ),
            None
        );
        assert_eq!(Instant::decode(MIME_GIT, "{"), None);
        assert_eq!(Instant::decode(MIME_INVITE, "nope"), None);
        assert_eq!(Instant::decode("text/plain", "hi"), None);
        let inv = format!(
            "{{\"conversationId\":\"{C}\",\"metadatas\":{{\"mode\":\"2\",\"title\":\"t\"}}}}"
        );
        match Instant::decode(MIME_INVITE_JSON, &inv) {
            Some(Instant::Invite {
                conversation,
                metadatas,
            }) => {
                assert_eq!(conversation, C);
                assert_eq!(metadatas["mode"], "2");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn vcards() {
        assert_eq!(vcard_name(&vcard("Ann é")).as_deref(), Some("Ann é"));
        assert_eq!(
            vcard_name(b"BEGIN:VCARD\nFN;CHARSET=UTF-8:Bo\r\n").as_deref(),
            Some("Bo")
        );
        assert_eq!(vcard_name(b"\xff\xfe"), None);
    }
}
