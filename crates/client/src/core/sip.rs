//! Channels: which ones we accept and serve, how a `sip` channel's requests are answered
//! and routed (to a call by its Call-ID, an INVITE to a new call, a MESSAGE to the
//! instant-message rules), and what an instant message does.
//!
//! The sender of an instant message on a `sip` channel is the account the link's TLS
//! certificate authenticated, not the SIP `From` header: a message whose `From` names
//! another account is dropped.

use pamoja_channel::sip::{self, SipReader, StartLine};
use pamoja_identity::DeviceId;

use super::{ChannelId, ConvRequest, Core, Io, cid, is_hex_id};
use crate::event::Event;
use crate::instant::Instant as Im;

/// An open channel.
pub(super) struct Chan {
    pub(super) device: DeviceId,
    pub(super) account: Option<String>,
    /// The SIP reader of a `sip` channel (`None`: a `git://` channel being served).
    reader: Option<SipReader>,
}

/// Whether a channel a peer opens is accepted at all: `sip` and `git://` (which
/// conversation, and whether the peer may read it, is decided when it is up).
pub fn accepts_channel(name: &str) -> bool {
    name == "sip" || name.starts_with("git://")
}

impl Core {
    /// A SIP tag from the core's randomness.
    fn sip_tag(&mut self) -> String {
        format!("{:016x}", self.random_u64())
    }

    /// The account of a device we know (its `sip` channel, or a lookup).
    fn account_of_device(&self, device: &DeviceId) -> Option<String> {
        if let Some(a) = self
            .sips
            .get(device)
            .and_then(|ch| self.channels.get(ch)?.account.clone())
        {
            return Some(a);
        }
        self.devices
            .iter()
            .find(|(_, chains)| {
                chains
                    .iter()
                    .any(|c| c[0].public_key().device_id() == *device)
            })
            .map(|(a, _)| a.clone())
    }

    pub(super) fn on_channel_up(
        &mut self,
        channel: ChannelId,
        device: DeviceId,
        account: Option<String>,
        name: &str,
    ) {
        let account = account
            .filter(|a| !a.is_empty())
            .or_else(|| self.account_of_device(&device));
        if let Some(a) = &account {
            if self.contacts.is_banned(a) {
                tracing::info!("channel {name:?} from banned account {a}: closed");
                self.io.push_back(Io::Close(channel));
                return;
            }
        }
        if name == "sip" {
            self.channels.insert(
                channel,
                Chan {
                    device,
                    account: account.clone(),
                    reader: Some(SipReader::default()),
                },
            );
            self.sips.insert(device, channel);
            if let Some(a) = &account {
                let change = self.presence.linked(a, &device.to_string(), true, self.now);
                if let Some(s) = change {
                    self.emit_for(a, |contact| Event::Presence { contact, status: s });
                }
                // Both sides fetch what they share when a `sip` channel comes up.
                for conv in self.members.shared_with(a) {
                    self.fetch(&conv, device, Some(a));
                }
            }
            self.sip_opened(device, channel);
        } else if let Some(rest) = name.strip_prefix("git://") {
            let conv = rest.rsplit('/').next().unwrap_or_default().to_owned();
            let allowed = is_hex_id(&conv, 40)
                && account
                    .as_deref()
                    .is_some_and(|a| self.members.may_read(&conv, a));
            if !allowed {
                tracing::info!(
                    "git channel for {conv:?} from {device} ({account:?}): not a member, closed"
                );
                self.io.push_back(Io::Close(channel));
                return;
            }
            self.channels.insert(
                channel,
                Chan {
                    device,
                    account: account.clone(),
                    reader: None,
                },
            );
            self.io.push_back(Io::Serve {
                channel,
                conversation: cid(&conv),
                device,
                account: account.as_deref().and_then(super::jid),
            });
        } else {
            tracing::info!("channel {name:?} from {device}: not ours, closed");
            self.io.push_back(Io::Close(channel));
        }
    }

    pub(super) fn on_channel_closed(&mut self, channel: ChannelId) {
        let Some(c) = self.channels.remove(&channel) else {
            return;
        };
        if c.reader.is_none() {
            return;
        }
        if self.sips.get(&c.device) == Some(&channel) {
            self.sips.remove(&c.device);
        }
        if let Some(a) = c.account {
            let change = self
                .presence
                .linked(&a, &c.device.to_string(), false, self.now);
            if let Some(s) = change {
                self.emit_for(&a, |contact| Event::Presence { contact, status: s });
            }
        }
    }

    /// Bytes of a `sip` channel: each request answered 200 (calls answer their own), each
    /// MESSAGE handled.
    pub(super) fn on_channel_data(&mut self, channel: ChannelId, data: &[u8]) {
        let Some(c) = self.channels.get_mut(&channel) else {
            return;
        };
        let Some(reader) = c.reader.as_mut() else {
            return;
        };
        reader.push(data);
        let mut messages = Vec::new();
        let mut broken = false;
        while let Some(m) = reader.next_message() {
            match m {
                Ok(m) => messages.push(m),
                Err(e) => {
                    tracing::info!("sip channel from {}: {e}", c.device);
                    broken = true;
                    break;
                }
            }
        }
        let (device, account) = (c.device, c.account.clone());
        for m in messages {
            let call_id = m.header("Call-ID").unwrap_or_default().to_owned();
            if self.is_call(&call_id) {
                self.call_message(&call_id, &m);
                continue;
            }
            // A response to no call of ours (a MESSAGE's 200 OK) needs nothing.
            let StartLine::Request { method, .. } = &m.start else {
                continue;
            };
            if method == "INVITE" {
                match &account {
                    Some(a) => {
                        let a = a.clone();
                        self.incoming_call(channel, &a, &m);
                    }
                    None => {
                        let tag = self.sip_tag();
                        self.io.push_back(Io::Send {
                            channel,
                            data: sip::response_with_tag(&m, 403, "Forbidden", &tag).to_bytes(),
                        })
                    }
                }
                continue;
            }
            let tag = self.sip_tag();
            self.io.push_back(Io::Send {
                channel,
                data: sip::response_with_tag(&m, 200, "OK", &tag).to_bytes(),
            });
            let read = match &account {
                Some(a) => sip::read_message_from(&m, a),
                None => sip::read_message(&m).map(Ok),
            };
            let t = match read {
                None => continue,
                Some(Ok(t)) => t,
                Some(Err(e)) => {
                    tracing::warn!("{device}: {e}: dropped");
                    continue;
                }
            };
            if let Some(id) = &t.id {
                if !self.seen.first_time(id) {
                    continue;
                }
            }
            let from = t.from.clone();
            self.on_instant(&from, Some(device), &t.content_type, &t.body);
        }
        if broken {
            self.io.push_back(Io::Close(channel));
        }
    }

    /// An instant message from account `from` (over SIP from `device`, or the DHT inbox).
    pub(super) fn on_instant(
        &mut self,
        from: &str,
        device: Option<DeviceId>,
        mime: &str,
        body: &str,
    ) {
        let Some(m) = Im::decode(mime, body) else {
            return;
        };
        match m {
            Im::NewCommit {
                conversation,
                device: dev,
                ..
            } => {
                if !self.members.holds(&conversation) {
                    tracing::info!("notice for unknown conversation {conversation}");
                } else if !self.members.takes_part(&conversation, from) {
                    tracing::info!("notice for {conversation} from a non-member");
                } else if let Ok(d) = dev.parse::<DeviceId>() {
                    self.fetch(&conversation, d, Some(from));
                }
            }
            Im::Composing {
                conversation,
                active,
            } => {
                if self.settings.typing && self.members.not_banned(&conversation, from) {
                    self.emit_for(from, |from| Event::Typing {
                        conversation: cid(&conversation),
                        from,
                        on: active,
                    });
                }
            }
            Im::Displayed {
                conversation,
                message,
            } => {
                if self.settings.read_receipts && self.members.not_banned(&conversation, from) {
                    match message.parse::<crate::id::MessageId>() {
                        Ok(message) => self.emit_for(from, |from| Event::Displayed {
                            conversation: cid(&conversation),
                            from,
                            message,
                        }),
                        Err(e) => tracing::info!("read receipt from {from}: {e}"),
                    }
                }
            }
            Im::Invite {
                conversation,
                metadatas,
            } => {
                if !is_hex_id(&conversation, 40)
                    || self.members.holds(&conversation)
                    || self.contacts.is_banned(from)
                {
                    return;
                }
                let known = self.conv_requests.contains_key(&conversation);
                let from_them = self
                    .conv_requests
                    .values()
                    .filter(|r| r.from == from)
                    .count();
                if !known
                    && (self.conv_requests.len() >= super::MAX_CONV_REQUESTS
                        || from_them >= super::MAX_CONV_REQUESTS_PER_SENDER)
                {
                    tracing::warn!(
                        "conversation request from {from} dropped: {from_them} of theirs and {} in all already wait",
                        self.conv_requests.len()
                    );
                    return;
                }
                if known {
                    // The same invitation again: nothing to write.
                    return;
                }
                let fresh = self
                    .conv_requests
                    .insert(
                        conversation.clone(),
                        ConvRequest {
                            from: from.into(),
                            metadatas: metadatas.clone(),
                            received: self.unix,
                        },
                    )
                    .is_none();
                if fresh {
                    self.persist_conv_requests();
                    self.watch(from);
                    self.emit_for(from, |from| Event::ConversationRequest {
                        conversation: cid(&conversation),
                        from,
                        metadatas,
                    });
                }
            }
            Im::NeedInvite { conversation } => {
                if self.members.not_banned(&conversation, from) {
                    let mut metadatas = serde_json::Map::new();
                    metadatas.insert("mode".into(), serde_json::Value::from("2"));
                    self.deliver(
                        from,
                        Im::Invite {
                            conversation,
                            metadatas,
                        },
                    );
                }
            }
        }
        let _ = device;
    }
}
