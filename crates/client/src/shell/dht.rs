//! The DHT side of the shell: announcements, device lookups, listens, inbox values.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use pamoja_channel::inbox::{ImMessage, InboxItem, inbox_key};
use pamoja_dht::InfoHash;
use pamoja_dht::runner::ListenEvent;
use pamoja_identity::{Certificate, JamiId, PublicKey, ShortDeviceId};

use super::{Shared, unix_now};
use crate::core::Input;
use crate::net;
use crate::trust::{self, TrustRequest};

/// How long a device lookup waits for announcements.
const LOOKUP_WAIT: Duration = Duration::from_secs(8);

pub(super) async fn announce(s: &Shared) -> io::Result<()> {
    net::announce(&s.runner, &s.dht, &s.account).await
}

/// The device chains account `id` announces; waits up to [`LOOKUP_WAIT`] for the first.
pub(super) async fn devices_of(s: &Shared, id: &JamiId) -> Vec<Vec<Certificate>> {
    net::devices_of(&s.runner, &s.dht, id, LOOKUP_WAIT).await
}

/// Looks up an account's announcements (presence).
pub(super) async fn announcements(s: &Shared, account: &JamiId) {
    for device in net::announced_devices(&s.runner, account).await {
        s.input(Input::Announced {
            account: *account,
            device: ShortDeviceId::from_bytes(device.0),
            fresh: false,
        });
    }
}

/// Listens to an account's announcements for as long as the account runs.
pub(super) async fn listen(s: &Arc<Shared>, account: &JamiId) {
    let Ok(mut listen) = s.runner.listen(InfoHash(*account.as_bytes()), None).await else {
        return;
    };
    while let Some(ev) = listen.next().await {
        if let ListenEvent::Value(v) = ev {
            if let Some(device) = net::announced_device(&v, account) {
                s.input(Input::Announced {
                    account: *account,
                    device: ShortDeviceId::from_bytes(device.0),
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
                from: r.from,
                device: r.device,
                mime: r.message.content_type().to_owned(),
                body: r.message.msg.clone(),
            });
        }
        InboxItem::Value(d) if d.value.value_type == trust::VALUE_TYPE => {
            match TrustRequest::decode(&d.value.data) {
                Ok(request) => s.input(Input::Trust {
                    from: d.from,
                    device: d.owner.spki_der().to_vec(),
                    request,
                }),
                Err(e) => tracing::info!("trust request from {} unreadable: {e}", d.from),
            }
        }
        InboxItem::Value(_) => {}
    }
}
