//! The DHT side of the shell: announcements, device lookups, listens, inbox values.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use pamoja_channel::inbox::{ImMessage, InboxItem, inbox_key};
use pamoja_dht::runner::ListenEvent;
use pamoja_dht::{InfoHash, Value, secure};
use pamoja_identity::announce::DeviceAnnouncement;
use pamoja_identity::{Certificate, PublicKey};

use super::{Shared, unix_now};
use crate::core::Input;
use crate::trust::{self, TrustRequest};

/// How long a device lookup waits for announcements.
const LOOKUP_WAIT: Duration = Duration::from_secs(8);

fn key_of(id: &str) -> io::Result<InfoHash> {
    id.parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("bad id {id}")))
}

/// Puts our device announcement (signed by the account) and the account's CRL at our
/// Jami ID, and our certificate chain at our short id.
pub(super) async fn announce(s: &Shared) -> io::Result<()> {
    s.dht.publish_certificate().await?;
    let device = s
        .account
        .device()
        .ok_or_else(|| io::Error::other("no device key"))?;
    let mut ann = Value {
        id: 1,
        data: DeviceAnnouncement::new(device.cert.public_key()).pack(),
        ..Value::default()
    };
    secure::sign(&mut ann, s.account.account_key()).map_err(io::Error::other)?;
    let key = key_of(&s.me.to_string())?;
    s.runner.put(key, ann).await?;
    if let Some(crl) = s.account.crl() {
        let mut data = Vec::new();
        pamoja_identity::msgpack::bin(&mut data, crl.der());
        s.runner
            .put(
                key,
                Value {
                    id: 2,
                    data,
                    ..Value::default()
                },
            )
            .await?;
    }
    Ok(())
}

/// The short id of the device a value at `key` announces, when the account `key` signed it.
fn announced_device(v: &Value, key: InfoHash) -> Option<InfoHash> {
    let owner = secure::verify(v).ok()?;
    if secure::key_id(&owner) != key {
        return None;
    }
    let ann = DeviceAnnouncement::unpack(&v.data).ok()?;
    ann.dev.to_string().parse().ok()
}

/// The device chains account `id` announces; waits up to [`LOOKUP_WAIT`] for the first.
pub(super) async fn devices_of(s: &Shared, id: &str) -> Vec<Vec<Certificate>> {
    let Ok(key) = key_of(id) else {
        return Vec::new();
    };
    let mut found: Vec<Vec<Certificate>> = Vec::new();
    let deadline = tokio::time::Instant::now() + LOOKUP_WAIT;
    loop {
        for v in s.runner.get(key).await.unwrap_or_default() {
            let Some(short) = announced_device(&v, key) else {
                continue;
            };
            if let Ok(Some(chain)) = s.dht.find_certificate(short).await {
                if !found.iter().any(|c| c[0].der() == chain[0].der()) {
                    found.push(chain);
                }
            }
        }
        if !found.is_empty() || tokio::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Looks up an account's announcements (presence).
pub(super) async fn announcements(s: &Shared, account: &str) {
    let Ok(key) = key_of(account) else { return };
    for v in s.runner.get(key).await.unwrap_or_default() {
        if let Some(short) = announced_device(&v, key) {
            s.input(Input::Announced {
                account: account.to_owned(),
                device: short.to_string(),
                fresh: false,
            });
        }
    }
}

/// Listens to an account's announcements for as long as the account runs.
pub(super) async fn listen(s: &Arc<Shared>, account: &str) {
    let Ok(key) = key_of(account) else { return };
    let Ok(mut listen) = s.runner.listen(key, None).await else {
        return;
    };
    while let Some(ev) = listen.next().await {
        if let ListenEvent::Value(v) = ev {
            if let Some(short) = announced_device(&v, key) {
                s.input(Input::Announced {
                    account: account.to_owned(),
                    device: short.to_string(),
                    fresh: true,
                });
            }
        }
    }
}

pub(super) async fn put_trust(s: &Shared, device: &PublicKey, t: &TrustRequest) {
    match t.seal(s.dht.private_key(), device) {
        Ok(v) => {
            if let Err(e) = s.runner.put(inbox_key(device), v).await {
                tracing::warn!("trust request not put: {e}");
            }
        }
        Err(e) => tracing::warn!("trust request not sealed: {e}"),
    }
}

pub(super) async fn put_inbox(s: &Shared, device: &PublicKey, id: u64, mime: &str, body: &str) {
    let im = ImMessage::new(id, mime, body, unix_now());
    match im.seal(s.dht.private_key(), device) {
        Ok(v) => {
            if let Err(e) = s.runner.put(inbox_key(device), v).await {
                tracing::info!("inbox message not put: {e}");
            }
        }
        Err(e) => tracing::warn!("inbox message not sealed: {e}"),
    }
}

/// A value of our inbox: an instant message (once per id) or a trust request.
pub(super) fn on_inbox(s: &Shared, item: InboxItem) {
    match item {
        InboxItem::Message(r) => {
            s.input(Input::Inbox {
                id: r.message.message_id(),
                from: r.from.to_string(),
                device: r.device,
                mime: r.message.content_type().to_owned(),
                body: r.message.msg.clone(),
            });
        }
        InboxItem::Value(d) if d.value.value_type == trust::VALUE_TYPE => {
            match TrustRequest::decode(&d.value.data) {
                Ok(request) => s.input(Input::Trust {
                    from: d.from.to_string(),
                    device: d.owner.spki_der().to_vec(),
                    request,
                }),
                Err(e) => tracing::info!("trust request from {} unreadable: {e}", d.from),
            }
        }
        InboxItem::Value(_) => {}
    }
}
