//! How an instant message reaches an account: over the `sip` channel of each of its
//! devices (opened when there is none); when a channel cannot be opened, through that
//! device's DHT inbox; and notices and invitations that reached no device over a channel
//! are kept and sent again every [`RETRY_EVERY`](super::RETRY_EVERY) and when the account
//! shows up.

use pamoja_channel::sip::{self, Route};
use pamoja_identity::{Certificate, DeviceId};

use super::{ChannelId, Core, Io, Ticket};
use crate::instant::Instant as Im;

/// What waits for a `sip` channel being opened to a device.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    /// Its chain (for the DHT inbox fallback).
    chain: Vec<Certificate>,
    /// The account.
    account: String,
    /// Messages to send once it is up.
    messages: Vec<Im>,
    /// Calls to place once it is up.
    calls: Vec<Ticket>,
}

impl Core {
    /// Sends `m` to every device of `account` (looked up first).
    pub(super) fn deliver(&mut self, account: &str, m: Im) {
        self.after_lookup(account, super::AfterLookup::Deliver(m));
    }

    pub(super) fn deliver_to(&mut self, account: &str, chains: &[Vec<Certificate>], m: Im) {
        if chains.is_empty() {
            self.keep_undelivered(account, m);
            return;
        }
        for chain in chains {
            let device = chain[0].public_key().device_id();
            if let Some(ch) = self.sips.get(&device).copied() {
                self.send_im(ch, account, &m);
            } else {
                self.ensure_sip(chain, account);
                if let Some(w) = self.opening.get_mut(&device) {
                    w.messages.push(m.clone());
                }
            }
        }
    }

    /// A notice or invitation that reached no device: kept (one per conversation; a
    /// fetch takes the whole history anyway).
    pub(super) fn keep_undelivered(&mut self, account: &str, m: Im) {
        let conv = match &m {
            Im::NewCommit { conversation, .. } | Im::Invite { conversation, .. } => {
                conversation.clone()
            }
            _ => return,
        };
        self.undelivered
            .entry((account.to_owned(), conv))
            .or_insert(m);
    }

    /// Opens a `sip` channel to the device of `chain` unless one is up or opening.
    pub(super) fn ensure_sip(&mut self, chain: &[Certificate], account: &str) {
        let device = chain[0].public_key().device_id();
        if self.sips.contains_key(&device) || self.opening.contains_key(&device) {
            return;
        }
        self.opening.insert(
            device,
            Waiting {
                chain: chain.to_vec(),
                account: account.to_owned(),
                ..Waiting::default()
            },
        );
        self.io.push_back(Io::OpenSip {
            chain: chain.to_vec(),
        });
    }

    /// A `sip` channel to `device` is up: what waited for it goes.
    pub(super) fn sip_opened(&mut self, device: DeviceId, channel: ChannelId) {
        let Some(w) = self.opening.remove(&device) else {
            return;
        };
        for m in &w.messages {
            self.send_im(channel, &w.account, m);
        }
        for t in w.calls {
            self.place_on(t, channel, &w.account, true);
        }
    }

    /// A `sip` channel could not be opened: messages go through the device's DHT inbox
    /// (and are kept for later), calls fail.
    pub(super) fn on_channel_failed(&mut self, device: DeviceId, reason: &str) {
        let Some(w) = self.opening.remove(&device) else {
            return;
        };
        tracing::info!(
            "{}: no link to {device} ({reason}); through the DHT inbox",
            w.account
        );
        for m in w.messages {
            let (mime, body) = m.encode();
            let id = self.random_u64();
            if let Some(c) = w.chain.first() {
                self.io.push_back(Io::PutInbox {
                    device: c.public_key().clone(),
                    id,
                    mime: mime.to_owned(),
                    body,
                });
            }
            self.keep_undelivered(&w.account, m);
        }
        for t in w.calls {
            self.unreachable(t, &w.account, format!("link: {reason}"));
        }
    }

    fn unreachable(&mut self, t: Ticket, account: &str, reason: String) {
        let e = match account.parse() {
            Ok(account) => crate::error::ClientError::Unreachable { account, reason },
            Err(_) => crate::error::ClientError::InvalidId(crate::id::InvalidId::account(account)),
        };
        self.reply(t, Err(e));
    }

    /// Sends `m` on a `sip` channel as a SIP MESSAGE.
    pub(super) fn send_im(&mut self, channel: ChannelId, to: &str, m: &Im) {
        let (mime, body) = m.encode();
        let route = Route {
            from: self.me.clone(),
            to: to.to_owned(),
            local: std::net::SocketAddr::new(self.ice_addr, 0),
            remote: std::net::SocketAddr::new(self.ice_addr, 0),
        };
        let id = format!("{:016x}", self.random_u64());
        let unix = self.unix.max(0) as u64;
        let random = &mut self.random;
        let msg = sip::message_with_random(&route, mime, &body, &id, unix, &mut |n| {
            let mut b = vec![0u8; n];
            random.fill(&mut b);
            hex::encode(b)
        });
        self.io.push_back(Io::Send {
            channel,
            data: msg.to_bytes(),
        });
    }

    /// Tells the members of a conversation (not us, not `except`) about a new commit.
    pub(super) fn notify(&mut self, conversation: &str, commit: &str, except: Option<&str>) {
        for account in self.members.to_notify(conversation, &self.me, except) {
            let notice = Im::NewCommit {
                conversation: conversation.into(),
                commit: commit.into(),
                device: self.device.clone(),
            };
            self.deliver(&account, notice);
        }
    }

    /// Sends `m` over the `sip` channels already open with members of a conversation
    /// (typing and read receipts go no other way, as with jamid). Returns how many.
    pub(super) fn tell_linked(&mut self, conversation: &str, m: &Im) -> usize {
        let mut targets: Vec<(ChannelId, String)> = self
            .sips
            .values()
            .filter_map(|ch| {
                let a = self.channels.get(ch)?.account.clone()?;
                self.members
                    .not_banned(conversation, &a)
                    .then_some((*ch, a))
            })
            .collect();
        targets.sort();
        for (ch, a) in &targets {
            self.send_im(*ch, a, m);
        }
        targets.len()
    }

    /// Calls the first device of `account` whose `sip` channel is up, else opens one to
    /// the first device and calls once it is up.
    pub(super) fn call_devices(&mut self, t: Ticket, account: &str, chains: &[Vec<Certificate>]) {
        for chain in chains {
            let device = chain[0].public_key().device_id();
            if let Some(ch) = self.sips.get(&device).copied() {
                self.place_on(t, ch, account, false);
                return;
            }
        }
        let Some(chain) = chains.first() else {
            return self.unreachable(t, account, "no device found".into());
        };
        let device = chain[0].public_key().device_id();
        self.ensure_sip(chain, account);
        if let Some(w) = self.opening.get_mut(&device) {
            w.calls.push(t);
        }
    }
}
