//! Contacts and trust requests: asking, accepting, declining, removing and banning, and
//! what a trust request or a confirmation from the DHT inbox does.

use pamoja_swarm::Mode;

use super::{AfterGit, AfterLookup, Core, GitOp, Io, Reply, StateFile, Ticket, cid};
use crate::contacts::PendingRequest;
use crate::error::ClientError;
use crate::event::Event;
use crate::instant;
use crate::trust::{self, TrustRequest};

impl Core {
    pub(super) fn persist_contacts(&mut self) {
        let (contacts, requests) = self.contacts.encode();
        self.io.push_back(Io::Persist {
            file: StateFile::Contacts,
            data: contacts,
            extra: Some(requests),
        });
    }

    /// Our trust request for `conversation`, with our profile.
    pub(super) fn trust_request(&self, conversation: &str) -> TrustRequest {
        let name = &self.settings.display_name;
        let mut payload = instant::vcard(if name.is_empty() { &self.me } else { name });
        if payload.len() > trust::MAX_PAYLOAD {
            payload.clear();
        }
        TrustRequest::request(conversation, payload)
    }

    pub(super) fn add_contact(&mut self, t: Ticket, id: &str) {
        if id == self.me {
            return self.reply(t, Err(ClientError::SelfContact));
        }
        let existing = self
            .contacts
            .active(id)
            .map(|c| c.conversation_id.clone())
            .filter(|c| self.members.holds(c));
        match existing {
            Some(conv) => self.contact_added(t, id, &conv),
            None => self.git(
                None,
                GitOp::Create {
                    mode: Mode::OneToOne,
                    invited: super::jid(id),
                },
                Some(AfterGit::ContactConversation(t, id.to_owned())),
            ),
        }
    }

    /// `id` is a contact (not yet confirmed) with `conversation`: saved, told, watched,
    /// and our request goes to its devices.
    pub(super) fn contact_added(&mut self, t: Ticket, id: &str, conversation: &str) {
        self.contacts.add(id, conversation, self.unix);
        self.persist_contacts();
        self.emit_for(id, |id| Event::ContactAdded {
            id,
            confirmed: false,
            conversation: cid(conversation),
        });
        self.events.push_back(Event::ConversationReady {
            conversation: cid(conversation),
        });
        self.watch(id);
        self.after_lookup(id, AfterLookup::TrustRequest(conversation.to_owned()));
        self.reply(t, Ok(Reply::Conversation(cid(conversation))));
    }

    pub(super) fn accept_contact(&mut self, t: Ticket, from: &str) {
        let Some(req) = self.contacts.requests.get(from).cloned() else {
            return self.no_request(t, from);
        };
        let conversation = req.conversation_id.clone();
        self.contacts.confirm(from, &conversation, self.unix);
        self.persist_contacts();
        self.emit_for(from, |id| Event::ContactAdded {
            id,
            confirmed: true,
            conversation: cid(&conversation),
        });
        self.watch(from);
        self.after_lookup(from, AfterLookup::Confirm(conversation.clone()));
        if !self.members.holds(&conversation) {
            self.after_lookup(from, AfterLookup::Clone(conversation.clone(), 0));
        }
        self.reply(t, Ok(Reply::Conversation(cid(&conversation))));
    }

    fn no_request(&mut self, t: Ticket, from: &str) {
        let e = match from.parse() {
            Ok(id) => ClientError::NoTrustRequest(id),
            Err(_) => ClientError::InvalidId(crate::id::InvalidId::account(from)),
        };
        self.reply(t, Err(e));
    }

    pub(super) fn decline_contact(&mut self, t: Ticket, from: &str) {
        if self.contacts.requests.remove(from).is_none() {
            return self.no_request(t, from);
        }
        self.persist_contacts();
        self.reply(t, Ok(Reply::Done));
    }

    pub(super) fn remove_contact(&mut self, t: Ticket, id: &str, ban: bool) {
        self.contacts.remove(id, ban, self.unix);
        self.persist_contacts();
        self.emit_for(id, |id| Event::ContactRemoved { id, banned: ban });
        if ban {
            if let Some(account) = super::jid(id) {
                self.io.push_back(Io::Ban {
                    account,
                    banned: true,
                });
            }
            // Its channels go down now; the link layer refuses its links from now on.
            let gone: Vec<_> = self
                .channels
                .iter()
                .filter(|(_, c)| c.account.as_deref() == Some(id))
                .map(|(ch, _)| *ch)
                .collect();
            for ch in gone {
                self.io.push_back(Io::Close(ch));
            }
        }
        self.reply(t, Ok(Reply::Done));
    }

    pub(super) fn unban_contact(&mut self, t: Ticket, id: &str) {
        self.contacts.unban(id, self.unix);
        if let Some(account) = super::jid(id) {
            self.io.push_back(Io::Ban {
                account,
                banned: false,
            });
        }
        self.persist_contacts();
        self.reply(t, Ok(Reply::Done));
    }

    /// The accounts banned now.
    pub fn banned(&self) -> Vec<String> {
        self.contacts
            .contacts
            .iter()
            .filter(|(_, c)| c.is_banned())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// A trust request (or confirmation) from `from`'s device.
    pub(super) fn on_trust(&mut self, from: &str, device: Vec<u8>, t: TrustRequest) {
        if from == self.me
            || t.service != trust::SERVICE
            || !t.has_valid_conversation()
            || self.contacts.is_banned(from)
        {
            return;
        }
        let now = self.unix;
        if t.confirm {
            if self.contacts.active(from).is_some_and(|c| !c.confirmed) {
                self.contacts.confirm(from, &t.conversation_id, now);
                self.persist_contacts();
                self.emit_for(from, |id| Event::ContactAdded {
                    id,
                    confirmed: true,
                    conversation: cid(&t.conversation_id),
                });
            }
        } else if let Some(c) = self.contacts.active(from) {
            // Already a contact: answer with a confirmation, as jamid does.
            let conv = c.conversation_id.clone();
            self.contacts.confirm(from, &conv, now);
            self.persist_contacts();
            self.after_lookup(from, AfterLookup::Confirm(conv));
        } else if self
            .contacts
            .requests
            .get(from)
            .is_some_and(|r| r.conversation_id == t.conversation_id)
        {
            // The same request again.
        } else if !self.contacts.requests.contains_key(from)
            && self.contacts.requests.len() >= super::MAX_TRUST_REQUESTS
        {
            tracing::warn!(
                "trust request from {from} dropped: {} requests already wait",
                super::MAX_TRUST_REQUESTS
            );
        } else {
            let r = PendingRequest {
                device,
                conversation_id: t.conversation_id.clone(),
                received: now,
                payload: t.payload.clone(),
            };
            self.contacts.requests.insert(from.to_owned(), r.clone());
            self.persist_contacts();
            // No presence listen for a stranger: it starts once the request is accepted.
            self.emit_for(from, |from| Event::TrustRequest {
                from,
                conversation: cid(&r.conversation_id),
                name: instant::vcard_name(&r.payload),
                received: r.received,
            });
        }
    }
}
