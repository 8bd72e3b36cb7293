//! The contact list and the pending trust requests, in jamid's file formats.
//!
//! `contacts` is a msgpack map from the contact's 20-byte Jami ID to
//! `{added, removed, confirmed, banned, conversationId}` (written in that order);
//! `incomingTrustRequests` maps the sender's Jami ID to
//! `{device, conversationId, received, payload}`. A contact is active while
//! `added > removed`, and banned when removed with the `banned` flag. Both files are
//! replaced atomically (written beside, then renamed).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use pamoja_identity::msgpack::{self, Reader};

/// A contact's state as users see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactState {
    /// We asked (or were asked and accepted); the other side has not confirmed yet.
    Pending,
    /// Both sides agreed.
    Confirmed,
    /// Removed and refused.
    Banned,
    /// Removed.
    Removed,
}

impl ContactState {
    /// The lower-case name used in events and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Banned => "banned",
            Self::Removed => "removed",
        }
    }
}

/// One entry of the contact list (jamid's `Contact`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Contact {
    /// When the contact was added, seconds since 1970.
    pub added: i64,
    /// When it was removed, seconds since 1970 (0: never).
    pub removed: i64,
    /// Whether the other side confirmed.
    pub confirmed: bool,
    /// Whether the removal was a ban.
    pub banned: bool,
    /// The one-to-one conversation with this contact.
    pub conversation_id: String,
}

impl Contact {
    /// Whether the contact is in the list (added after its last removal).
    pub fn is_active(&self) -> bool {
        self.added > self.removed
    }

    /// Whether the contact is banned.
    pub fn is_banned(&self) -> bool {
        !self.is_active() && self.banned
    }

    /// The state users see.
    pub fn state(&self) -> ContactState {
        if self.is_banned() {
            ContactState::Banned
        } else if !self.is_active() {
            ContactState::Removed
        } else if self.confirmed {
            ContactState::Confirmed
        } else {
            ContactState::Pending
        }
    }

    /// jamid's merge of two views of one contact: the newer `added` (with its conversation),
    /// the newer `removed` (with its ban), confirmed if either is.
    pub fn merge(&mut self, other: &Contact) {
        if other.added > self.added {
            self.added = other.added;
            self.conversation_id = other.conversation_id.clone();
        }
        if other.removed > self.removed {
            self.removed = other.removed;
            self.banned = other.banned;
        }
        self.confirmed |= other.confirmed;
    }

    fn encode(&self, out: &mut Vec<u8>) {
        msgpack::map(out, 5);
        msgpack::str(out, "added");
        msgpack::int(out, self.added);
        msgpack::str(out, "removed");
        msgpack::int(out, self.removed);
        msgpack::str(out, "confirmed");
        msgpack::bool(out, self.confirmed);
        msgpack::str(out, "banned");
        msgpack::bool(out, self.banned);
        msgpack::str(out, "conversationId");
        msgpack::str(out, &self.conversation_id);
    }

    fn decode(r: &mut Reader) -> Result<Self, &'static str> {
        let n = r.map_len().map_err(|_| "contact")?;
        let mut c = Self::default();
        for _ in 0..n {
            match r.str().map_err(|_| "key")? {
                "added" => c.added = r.int().map_err(|_| "added")?,
                "removed" => c.removed = r.int().map_err(|_| "removed")?,
                "confirmed" => c.confirmed = r.bool().map_err(|_| "confirmed")?,
                "banned" => c.banned = r.bool().map_err(|_| "banned")?,
                "conversationId" => {
                    c.conversation_id = r.str().map_err(|_| "conversationId")?.to_owned()
                }
                _ => r.skip().map_err(|_| "value")?,
            }
        }
        Ok(c)
    }
}

/// A trust request waiting for our answer (jamid's `TrustRequest` record).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PendingRequest {
    /// The sending device's public key (SPKI DER).
    pub device: Vec<u8>,
    /// The conversation offered.
    pub conversation_id: String,
    /// When it arrived, seconds since 1970.
    pub received: i64,
    /// The sender's profile.
    pub payload: Vec<u8>,
}

impl PendingRequest {
    fn encode(&self, out: &mut Vec<u8>) {
        msgpack::map(out, 4);
        msgpack::str(out, "device");
        msgpack::bin(out, &self.device);
        msgpack::str(out, "conversationId");
        msgpack::str(out, &self.conversation_id);
        msgpack::str(out, "received");
        msgpack::int(out, self.received);
        msgpack::str(out, "payload");
        msgpack::bin(out, &self.payload);
    }

    fn decode(r: &mut Reader) -> Result<Self, &'static str> {
        let n = r.map_len().map_err(|_| "request")?;
        let mut p = Self::default();
        for _ in 0..n {
            match r.str().map_err(|_| "key")? {
                "device" => p.device = r.bytes().map_err(|_| "device")?.to_vec(),
                "conversationId" => {
                    p.conversation_id = r.str().map_err(|_| "conversationId")?.to_owned()
                }
                "received" => p.received = r.int().map_err(|_| "received")?,
                "payload" => p.payload = r.bytes().map_err(|_| "payload")?.to_vec(),
                _ => r.skip().map_err(|_| "value")?,
            }
        }
        Ok(p)
    }
}

/// Writes a map keyed by 20-byte ids given as 40 hex digits (keys that are not are skipped).
fn encode_map<T>(m: &BTreeMap<String, T>, one: impl Fn(&T, &mut Vec<u8>)) -> Vec<u8> {
    let keys: Vec<(&String, [u8; 20])> = m
        .keys()
        .filter_map(|k| {
            let mut b = [0u8; 20];
            hex::decode_to_slice(k, &mut b).ok().map(|()| (k, b))
        })
        .collect();
    let mut out = Vec::new();
    msgpack::map(&mut out, keys.len() as u32);
    for (k, b) in keys {
        msgpack::bin(&mut out, &b);
        one(&m[k], &mut out);
    }
    out
}

fn decode_map<T>(
    data: &[u8],
    one: impl Fn(&mut Reader) -> Result<T, &'static str>,
) -> io::Result<BTreeMap<String, T>> {
    let bad = |w: &str| io::Error::new(io::ErrorKind::InvalidData, format!("malformed {w}"));
    let mut r = Reader::new(data);
    let n = r.map_len().map_err(|_| bad("map"))?;
    let mut m = BTreeMap::new();
    for _ in 0..n {
        let k = r.bytes().map_err(|_| bad("key"))?;
        let v = one(&mut r).map_err(bad)?;
        if k.len() == 20 {
            m.insert(hex::encode(k), v);
        }
    }
    Ok(m)
}

/// Replaces `path` with `data` durably (the previous content stays until the new one is on
/// disk; see [`pamoja_identity::durable`]).
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    pamoja_identity::durable::replace(path, data, 0o600)
}

fn read_or_empty(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The contact list and pending requests of an account, kept in its data directory.
#[derive(Debug, Default)]
pub struct Contacts {
    /// Contacts by Jami ID (40 hex digits).
    pub contacts: BTreeMap<String, Contact>,
    /// Trust requests waiting for an answer, by sender's Jami ID.
    pub requests: BTreeMap<String, PendingRequest>,
}

impl Contacts {
    /// The contact list file's name (as jamid's).
    pub const CONTACTS_FILE: &'static str = "contacts";
    /// The pending requests file's name (as jamid's).
    pub const REQUESTS_FILE: &'static str = "incomingTrustRequests";

    /// Reads both files of `dir` (missing files are empty lists).
    pub fn load(dir: &Path) -> io::Result<Self> {
        let contacts = match read_or_empty(&dir.join(Self::CONTACTS_FILE))? {
            Some(b) => decode_map(&b, Contact::decode)?,
            None => BTreeMap::new(),
        };
        let requests = match read_or_empty(&dir.join(Self::REQUESTS_FILE))? {
            Some(b) => decode_map(&b, PendingRequest::decode)?,
            None => BTreeMap::new(),
        };
        Ok(Self { contacts, requests })
    }

    /// Reads both files from their contents (`None`: missing, an empty list).
    pub fn decode(contacts: Option<&[u8]>, requests: Option<&[u8]>) -> io::Result<Self> {
        Ok(Self {
            contacts: match contacts {
                Some(b) => decode_map(b, Contact::decode)?,
                None => BTreeMap::new(),
            },
            requests: match requests {
                Some(b) => decode_map(b, PendingRequest::decode)?,
                None => BTreeMap::new(),
            },
        })
    }

    /// Both files' contents: `contacts`, then `incomingTrustRequests`.
    pub fn encode(&self) -> (Vec<u8>, Vec<u8>) {
        (
            encode_map(&self.contacts, Contact::encode),
            encode_map(&self.requests, PendingRequest::encode),
        )
    }

    /// Writes both files into `dir`.
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        write_atomic(
            &dir.join(Self::CONTACTS_FILE),
            &encode_map(&self.contacts, Contact::encode),
        )?;
        write_atomic(
            &dir.join(Self::REQUESTS_FILE),
            &encode_map(&self.requests, PendingRequest::encode),
        )
    }

    /// The active contact `id`, if any.
    pub fn active(&self, id: &str) -> Option<&Contact> {
        self.contacts.get(id).filter(|c| c.is_active())
    }

    /// Adds `id` (or re-adds it) with `conversation_id`, unconfirmed unless it already was.
    pub fn add(&mut self, id: &str, conversation_id: &str, now: i64) -> &Contact {
        let c = self.contacts.entry(id.to_owned()).or_default();
        if !c.is_active() {
            c.added = now.max(c.removed + 1);
            c.confirmed = false;
        }
        c.banned = false;
        c.conversation_id = conversation_id.to_owned();
        c
    }

    /// Marks `id` confirmed (adding it when it was not a contact). Returns whether this
    /// changed anything.
    pub fn confirm(&mut self, id: &str, conversation_id: &str, now: i64) -> bool {
        let c = self.contacts.entry(id.to_owned()).or_default();
        let was = c.is_active() && c.confirmed;
        if !c.is_active() {
            c.added = now.max(c.removed + 1);
        }
        if c.conversation_id.is_empty() || !was {
            c.conversation_id = conversation_id.to_owned();
        }
        c.confirmed = true;
        self.requests.remove(id);
        !was
    }

    /// Removes `id`, banning it when `ban`; its pending request goes too.
    pub fn remove(&mut self, id: &str, ban: bool, now: i64) {
        let c = self.contacts.entry(id.to_owned()).or_default();
        c.removed = now.max(c.added + 1);
        c.banned = ban;
        self.requests.remove(id);
    }

    /// Lifts a ban: the contact is added again (unconfirmed).
    pub fn unban(&mut self, id: &str, now: i64) {
        if let Some(c) = self.contacts.get_mut(id) {
            if c.is_banned() {
                c.banned = false;
                c.added = now.max(c.removed + 1);
            }
        }
    }

    /// Whether `id` is banned.
    pub fn is_banned(&self, id: &str) -> bool {
        self.contacts.get(id).is_some_and(Contact::is_banned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn states_and_merge() {
        let mut l = Contacts::default();
        l.add(A, "c1", 100);
        assert_eq!(l.contacts[A].state(), ContactState::Pending);
        assert!(l.confirm(A, "c2", 101));
        assert!(!l.confirm(A, "c2", 102), "already confirmed");
        assert_eq!(l.contacts[A].state(), ContactState::Confirmed);
        assert_eq!(
            l.contacts[A].conversation_id, "c2",
            "a confirmation names the conversation"
        );
        l.remove(A, true, 100);
        assert_eq!(l.contacts[A].state(), ContactState::Banned);
        assert!(l.is_banned(A));
        l.unban(A, 103);
        assert_eq!(l.contacts[A].state(), ContactState::Confirmed);
        let mut a = Contact {
            added: 5,
            conversation_id: "x".into(),
            ..Contact::default()
        };
        a.merge(&Contact {
            added: 7,
            removed: 6,
            banned: true,
            confirmed: true,
            conversation_id: "y".into(),
        });
        assert_eq!(
            (a.added, a.removed, a.banned, a.confirmed),
            (7, 6, true, true)
        );
        assert_eq!(a.conversation_id, "y");
    }

    #[test]
    fn files_as_jamid_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let empty = Contacts::default();
        empty.save(dir.path()).unwrap();
        assert_eq!(std::fs::read(dir.path().join("contacts")).unwrap(), [0x80]);
        let mut l = Contacts::default();
        l.add(A, &"cd".repeat(20), 1_700_000_000);
        l.requests.insert(
            "ff".repeat(20),
            PendingRequest {
                device: vec![1, 2, 3],
                conversation_id: "ee".repeat(20),
                received: 9,
                payload: b"BEGIN:VCARD".to_vec(),
            },
        );
        l.save(dir.path()).unwrap();
        let b = std::fs::read(dir.path().join("contacts")).unwrap();
        // map of 1, bin8 of 20 bytes, then the contact map of 5 starting with "added".
        assert_eq!(&b[..3], &[0x81, 0xc4, 20]);
        assert_eq!(&b[23..30], &[0x85, 0xa5, b'a', b'd', b'd', b'e', b'd']);
        let back = Contacts::load(dir.path()).unwrap();
        assert_eq!(back.contacts, l.contacts);
        assert_eq!(back.requests, l.requests);
        std::fs::write(dir.path().join("contacts"), [0x81, 0xc4]).unwrap();
        assert!(Contacts::load(dir.path()).is_err());
    }
}
