//! jamid's DHT fallback for account messages: the device inbox.
//!
//! When jamid 2023 has no `sip` channel to a device, it also puts the message on the DHT as an
//! OpenDHT `ImMessage` (value type 3), signed by its device key and encrypted to the
//! recipient's, at `SHA1("inbox:" + <recipient's 40-hex short id>)`, then listens there. The
//! recipient acknowledges by putting an `ImMessage` with the same `id` and an empty body at
//! that same key (its own inbox), encrypted to the sender. Current Jami removed this path;
//! links and the `sip` channel carry everything.
//!
//! The payload is a msgpack map `{"id": u64, "msg": str, "date": int, "status": int,
//! "datatype": str, "metadatas": {str: str}}`, written in that order.
//!
//! This module is pure: [`ImMessage`] encodes, seals and opens values. The listener that
//! answers them lives with the DHT runner, in [`Inbox`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use pamoja_dht::secure::{self, SecureError};
use pamoja_dht::securedht::SecureDht;
use pamoja_dht::{InfoHash, Value};
use pamoja_identity::msgpack::{self, Reader};
use pamoja_identity::{Certificate, DeviceId, JamiId, PrivateKey, PublicKey};
use tokio::sync::mpsc;

use crate::tls::{Expected, PeerRefused};

/// OpenDHT's value type id for `ImMessage`.
pub const VALUE_TYPE: u16 = 3;

/// Largest body read from the DHT (a DHT value holds at most 64 KiB anyway).
pub const MAX_BODY: usize = 64 * 1024;

/// Why a value is not an inbox message for us.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboxError {
    /// The payload is not the msgpack map of an `ImMessage`.
    #[error("malformed inbox message: {0}")]
    Malformed(&'static str),
    /// The value has another type, or names no signer.
    #[error("not an inbox message")]
    NotAMessage,
    /// Decryption or signature check failed.
    #[error(transparent)]
    Secure(#[from] SecureError),
}

/// An `ImMessage`: a text for a device, or the acknowledgement of one (empty `msg`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImMessage {
    /// The sender's message token; its 16-hex form is the `Message-ID` of the same message
    /// sent over SIP.
    pub id: u64,
    /// The body.
    pub msg: String,
    /// The sender's clock, seconds since 1970.
    pub date: i64,
    /// OpenDHT's `ImStatus` (0 none, 1 typing, 2 received, 3 read).
    pub status: u8,
    /// The MIME type of `msg` (empty means `text/plain`).
    pub datatype: String,
    /// Extra key/values.
    pub metadatas: BTreeMap<String, String>,
}

impl ImMessage {
    /// A message with `body` of type `datatype`, dated `date`.
    pub fn new(id: u64, datatype: &str, body: &str, date: i64) -> Self {
        Self {
            id,
            msg: body.to_owned(),
            date,
            datatype: datatype.to_owned(),
            ..Self::default()
        }
    }

    /// The acknowledgement jamid expects: same id, no body, dated `date`.
    pub fn ack(&self, date: i64) -> Self {
        Self {
            id: self.id,
            date,
            ..Self::default()
        }
    }

    /// The id as jamid writes message ids (16 lowercase hex digits).
    pub fn message_id(&self) -> String {
        format!("{:016x}", self.id)
    }

    /// The MIME type, `text/plain` when none is given.
    pub fn content_type(&self) -> &str {
        if self.datatype.is_empty() {
            "text/plain"
        } else {
            &self.datatype
        }
    }

    /// The msgpack payload, keys in OpenDHT's order.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.msg.len() + self.datatype.len() + 64);
        msgpack::map(&mut out, 6);
        msgpack::str(&mut out, "id");
        msgpack::uint(&mut out, self.id);
        msgpack::str(&mut out, "msg");
        msgpack::str(&mut out, &self.msg);
        msgpack::str(&mut out, "date");
        msgpack::int(&mut out, self.date);
        msgpack::str(&mut out, "status");
        msgpack::uint(&mut out, u64::from(self.status));
        msgpack::str(&mut out, "datatype");
        msgpack::str(&mut out, &self.datatype);
        msgpack::str(&mut out, "metadatas");
        msgpack::map(&mut out, self.metadatas.len() as u32);
        for (k, v) in &self.metadatas {
            msgpack::str(&mut out, k);
            msgpack::str(&mut out, v);
        }
        out
    }

    /// Reads a payload: keys in any order, unknown keys skipped, missing ones defaulted, text
    /// that is not UTF-8 repaired (as jamid does); `id` must be there.
    pub fn decode(data: &[u8]) -> Result<Self, InboxError> {
        let bad = InboxError::Malformed;
        let text = |r: &mut Reader, what| {
            r.bytes()
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(MAX_BODY)]).into_owned())
                .map_err(|_| bad(what))
        };
        let mut r = Reader::new(data);
        let n = r.map_len().map_err(|_| bad("not a map"))?;
        let mut m = Self::default();
        let mut id = None;
        for _ in 0..n {
            let key = r.str().map_err(|_| bad("key"))?;
            match key {
                "id" => id = Some(r.uint().map_err(|_| bad("id"))?),
                "msg" => m.msg = text(&mut r, "msg")?,
                "datatype" => m.datatype = text(&mut r, "datatype")?,
                "date" => m.date = r.int().map_err(|_| bad("date"))?,
                "status" => {
                    m.status = u8::try_from(r.uint().map_err(|_| bad("status"))?)
                        .map_err(|_| bad("status"))?
                }
                "metadatas" => {
                    let len = r.map_len().map_err(|_| bad("metadatas"))?;
                    for _ in 0..len {
                        let k = text(&mut r, "metadatas")?;
                        let v = text(&mut r, "metadatas")?;
                        m.metadatas.insert(k, v);
                    }
                }
                _ => r.skip().map_err(|_| bad("value"))?,
            }
        }
        m.id = id.ok_or(bad("no id"))?;
        Ok(m)
    }

    /// The DHT value carrying this message from `from` to the device key `to`: type 3,
    /// signed, then encrypted (a fresh random value id).
    pub fn seal(&self, from: &PrivateKey, to: &PublicKey) -> Result<Value, InboxError> {
        let mut b = [0u8; 8];
        aws_lc_rs::rand::fill(&mut b).map_err(|_| SecureError::Key("no randomness".into()))?;
        let v = Value {
            id: u64::from_le_bytes(b).max(1),
            value_type: VALUE_TYPE,
            data: self.encode(),
            ..Value::default()
        };
        Ok(secure::encrypt(&v, from, to)?)
    }

    /// Opens a value found at an inbox key: decrypts it with `key`, checks its signature and
    /// type. Returns the message and its signer's key.
    pub fn open(value: &Value, key: &PrivateKey) -> Result<(Self, PublicKey), InboxError> {
        let inner = secure::decrypt(value, key)?;
        Self::from_checked(&inner)
    }

    /// Reads a value that was already decrypted and verified.
    pub fn from_checked(inner: &Value) -> Result<(Self, PublicKey), InboxError> {
        if inner.value_type != VALUE_TYPE {
            return Err(InboxError::NotAMessage);
        }
        let owner = inner
            .owner
            .as_deref()
            .and_then(|o| PublicKey::from_pem_or_der(o).ok())
            .ok_or(InboxError::NotAMessage)?;
        Ok((Self::decode(&inner.data)?, owner))
    }
}

/// Where messages to a device are put: `SHA1("inbox:" + short id)`.
pub fn inbox_key(device: &PublicKey) -> InfoHash {
    InfoHash::get(format!("inbox:{}", secure::key_id(device)).as_bytes())
}

/// A message that came through our inbox, from a device whose chain checked.
#[derive(Debug, Clone)]
pub struct Received {
    /// The sender's account.
    pub from: JamiId,
    /// The sender's device.
    pub device: DeviceId,
    /// The message.
    pub message: ImMessage,
}

/// A value of another type put at our inbox (a trust request, a device sync...), decrypted,
/// its signature checked and its signer's chain checked as a device of `from`.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The sender's account.
    pub from: JamiId,
    /// The sender's device key.
    pub owner: PublicKey,
    /// The decrypted value (its `value_type` says what it holds).
    pub value: Value,
}

/// What comes through the inbox.
#[derive(Debug, Clone)]
pub enum InboxItem {
    /// A message (acknowledged already).
    Message(Received),
    /// A value of another type.
    Value(Delivered),
}

/// Listens at our device's inbox, acknowledges each message and hands it out once.
///
/// A message is handed out only when its signer's certificate chain (found on the DHT)
/// checks as a device of an account, as a link's TLS peer would; others are logged and
/// dropped. The same `id` is handed out once per listener; de-duplication against the `sip`
/// path is the caller's (see [`crate::seen::Seen`]).
pub struct Inbox {
    rx: mpsc::Receiver<InboxItem>,
    task: tokio::task::JoinHandle<()>,
}

impl Inbox {
    /// Starts listening at the inbox of `dht`'s identity (whose certificate chain must be
    /// published for senders to find it).
    pub async fn start(dht: Arc<SecureDht>, own: PublicKey) -> std::io::Result<Self> {
        let key = inbox_key(&own);
        let listen = dht.runner().listen(key, None).await?;
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(serve(dht, key, listen, tx));
        Ok(Self { rx, task })
    }

    /// The next message; `None` when the DHT runner stopped. Values of other types are
    /// skipped (see [`Inbox::next_item`]).
    pub async fn next(&mut self) -> Option<Received> {
        loop {
            if let InboxItem::Message(m) = self.rx.recv().await? {
                return Some(m);
            }
        }
    }

    /// The next message or value of another type; `None` when the DHT runner stopped.
    pub async fn next_item(&mut self) -> Option<InboxItem> {
        self.rx.recv().await
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The account of a sender's device, when its chain checks.
async fn sender_account(
    dht: &SecureDht,
    device: &PublicKey,
) -> Result<JamiId, Box<dyn std::error::Error + Send + Sync>> {
    let chain = dht
        .find_certificate(secure::key_id(device))
        .await?
        .ok_or("no certificate published")?;
    let ders: Vec<&[u8]> = chain.iter().map(Certificate::der).collect();
    Expected::device(device.clone())
        .check(&ders, SystemTime::now())
        .map_err(|e: PeerRefused| e.to_string())?;
    let account = chain.get(1).ok_or("no account certificate")?;
    Ok(account.jami_id())
}

/// Entries each of the inbox's "already delivered" sets keeps (the newest).
pub const RECENT_KEPT: usize = 4096;

/// A set that keeps its newest `capacity` entries: what peers send cannot grow it.
struct Recent<K> {
    set: std::collections::HashSet<K>,
    order: std::collections::VecDeque<K>,
    capacity: usize,
}

impl<K: std::hash::Hash + Eq + Clone> Recent<K> {
    fn new(capacity: usize) -> Self {
        Self {
            set: Default::default(),
            order: Default::default(),
            capacity,
        }
    }

    /// `true` when `k` is new (and now kept).
    fn insert(&mut self, k: K) -> bool {
        if !self.set.insert(k.clone()) {
            return false;
        }
        self.order.push_back(k);
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

async fn serve(
    dht: Arc<SecureDht>,
    key: InfoHash,
    mut listen: pamoja_dht::runner::Listen,
    tx: mpsc::Sender<InboxItem>,
) {
    let mut seen = Recent::new(RECENT_KEPT);
    let mut values_seen = Recent::new(RECENT_KEPT);
    while let Some(ev) = dht.next_checked(&mut listen).await {
        let Ok(checked) = ev else { continue };
        if !checked.encrypted {
            continue;
        }
        if checked.value.value_type != VALUE_TYPE {
            let Some(owner) = checked
                .value
                .owner
                .as_deref()
                .and_then(|o| PublicKey::from_pem_or_der(o).ok())
            else {
                continue;
            };
            let digest = InfoHash::get(&checked.value.data);
            if !values_seen.insert((checked.value.value_type, digest, owner.spki_der().to_vec())) {
                continue;
            }
            match sender_account(&dht, &owner).await {
                Ok(from) => {
                    let item = InboxItem::Value(Delivered {
                        from,
                        owner,
                        value: checked.value,
                    });
                    if tx.send(item).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(
                    "inbox: value from device {} refused: {e}",
                    owner.device_id()
                ),
            }
            continue;
        }
        let (message, owner) = match ImMessage::from_checked(&checked.value) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("inbox: dropped a value: {e}");
                continue;
            }
        };
        // Our own acknowledgements come back to us encrypted to the sender: not ours to read.
        if message.msg.is_empty() && message.datatype.is_empty() {
            continue;
        }
        if !seen.insert((message.id, owner.spki_der().to_vec())) {
            continue;
        }
        let from = match sender_account(&dht, &owner).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(
                    "inbox: message {} from device {} refused: {e}",
                    message.message_id(),
                    owner.device_id()
                );
                continue;
            }
        };
        let ack = message.ack(unix_now());
        match ack.seal(dht.private_key(), &owner) {
            Ok(v) => {
                let runner = dht.runner().clone();
                tokio::spawn(async move {
                    if let Err(e) = runner.put(key, v).await {
                        tracing::warn!("inbox: acknowledgement not put: {e}");
                    }
                });
            }
            Err(e) => tracing::warn!("inbox: acknowledgement not sealed: {e}"),
        }
        let r = Received {
            from,
            device: owner.device_id(),
            message,
        };
        if tx.send(InboxItem::Message(r)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delivered_sets_keep_the_newest_only() {
        let mut r = Recent::new(3);
        for i in 0..10_000u32 {
            assert!(r.insert(i));
        }
        assert_eq!((r.set.len(), r.order.len()), (3, 3));
        assert!(!r.insert(9_999), "the newest are still known");
        assert!(r.insert(0), "the oldest were let go");
    }

    #[test]
    fn payload_in_opendht_order_and_back() {
        let mut m = ImMessage::new(0x0102_0304_0506_0708, "text/plain", "héllo", 1_700_000_000);
        m.metadatas.insert("k".into(), "v".into());
        let b = m.encode();
        // fixmap 6, "id", uint64 ...
        assert_eq!(&b[..4], &[0x86, 0xa2, b'i', b'd']);
        assert_eq!(b[4], 0xcf);
        assert_eq!(ImMessage::decode(&b).unwrap(), m);
        assert_eq!(m.message_id(), "0102030405060708");
        let a = m.ack(5);
        assert_eq!((a.id, a.msg.as_str(), a.datatype.as_str()), (m.id, "", ""));
        assert_eq!(a.content_type(), "text/plain");
    }

    #[test]
    fn tolerant_reader() {
        let mut b = Vec::new();
        msgpack::map(&mut b, 3);
        msgpack::str(&mut b, "extra");
        msgpack::array(&mut b, 0);
        msgpack::str(&mut b, "msg");
        msgpack::bin(&mut b, b"a\xffb");
        msgpack::str(&mut b, "id");
        msgpack::uint(&mut b, 9);
        let m = ImMessage::decode(&b).unwrap();
        assert_eq!((m.id, m.msg.as_str()), (9, "a\u{fffd}b"));
        for bad in [
            &[][..],
            &[0x80],
            &[0x81, 0xa2, b'i', b'd', 0xc0],
            &[0x81, 0xa6, b's', b't', b'a', b't', b'u', b's', 0xcd, 1, 0],
            &[0x92, 1, 2],
        ] {
            assert!(ImMessage::decode(bad).is_err(), "{bad:?}");
        }
    }
}
