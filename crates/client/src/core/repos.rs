//! Conversations: the commands that change a repository, one change at a time per
//! conversation; fetches (when a member's notice names a new commit, when a `sip`
//! channel comes up, after serving a peer), clones (after accepting a contact or an
//! invitation, tried three times), and what each result brings: messages, members
//! watched, the others told.

use pamoja_identity::DeviceId;
use pamoja_swarm::{Mode, Role};

use super::{
    AfterGit, AfterLookup, CLONE_TRIES, Command, Core, GitOp, GitOutcome, Io, Reply, Ticket, Timer,
    cid,
};
use crate::error::ClientError;
use crate::event::Event;
use crate::id::MessageId;
use crate::instant::Instant as Im;

impl Core {
    pub(super) fn command(&mut self, t: Ticket, c: Command) {
        match c {
            Command::AddContact(id) => self.add_contact(t, &id.to_string()),
            Command::AcceptContact(from) => self.accept_contact(t, &from.to_string()),
            Command::DeclineContact(from) => self.decline_contact(t, &from.to_string()),
            Command::RemoveContact { id, ban } => self.remove_contact(t, &id.to_string(), ban),
            Command::UnbanContact(id) => self.unban_contact(t, &id.to_string()),
            Command::SetSettings(s) => {
                self.settings = s;
                self.persist_settings();
                self.reply(t, Ok(Reply::Done));
            }
            Command::SendMessage { conversation, text } => self.change(
                t,
                conversation.as_str(),
                GitOp::Post(text),
                AfterGit::Commit(t),
            ),
            Command::SetTyping { conversation, on } => {
                let conversation = conversation.to_string();
                let n = if !self.settings.typing {
                    Ok(Reply::Count(0))
                } else if !self.members.holds(&conversation) {
                    Err(no_conversation(&conversation))
                } else {
                    let m = Im::Composing {
                        conversation: conversation.clone(),
                        active: on,
                    };
                    Ok(Reply::Count(self.tell_linked(&conversation, &m)))
                };
                self.reply(t, n);
            }
            Command::SetDisplayed {
                conversation,
                message,
            } => {
                let (conversation, message) = (conversation.to_string(), message.to_string());
                let n = if !self.settings.read_receipts {
                    Ok(Reply::Count(0))
                } else if !self.members.holds(&conversation) {
                    Err(no_conversation(&conversation))
                } else {
                    let m = Im::Displayed {
                        conversation: conversation.clone(),
                        message,
                    };
                    Ok(Reply::Count(self.tell_linked(&conversation, &m)))
                };
                self.reply(t, n);
            }
            Command::CreateGroup => self.git(
                None,
                GitOp::Create {
                    mode: Mode::InvitesOnly,
                    invited: None,
                },
                Some(AfterGit::Group(t)),
            ),
            Command::Invite { conversation, id } => self.change(
                t,
                conversation.as_str(),
                GitOp::AddMember(id),
                AfterGit::Invited(t, id.to_string()),
            ),
            Command::AcceptConversation(id) => {
                let Some(req) = self.conv_requests.remove(id.as_str()) else {
                    return self.reply(t, Err(ClientError::NoInvitation(id)));
                };
                let conversation = id.to_string();
                self.persist_conv_requests();
                self.after_lookup(&req.from, AfterLookup::Clone(conversation, 0));
                self.reply(t, Ok(Reply::Done));
            }
            Command::Leave(conversation) => {
                self.change(t, conversation.as_str(), GitOp::Leave, AfterGit::Done(t))
            }
            Command::RemoveMember { conversation, id } => self.change(
                t,
                conversation.as_str(),
                GitOp::VoteBan(id),
                AfterGit::Done(t),
            ),
            Command::PlaceCall { to, video, records } => {
                self.placing.insert(t, (video, records));
                self.after_lookup(&to.to_string(), AfterLookup::Call(t));
            }
            Command::Call(call, cmd) => {
                let r = self
                    .call_command(call.as_str(), cmd)
                    .map(|()| Reply::Done)
                    .map_err(|()| ClientError::NoCall(call));
                self.reply(t, r);
            }
            Command::AutoAnswerMedia { video, records } => {
                self.auto_answer_media = (video, records);
                self.reply(t, Ok(Reply::Done));
            }
        }
    }

    /// A change of a conversation we hold, or an error when we hold none.
    fn change(&mut self, t: Ticket, conversation: &str, op: GitOp, then: AfterGit) {
        if !self.members.holds(conversation) {
            return self.reply(t, Err(no_conversation(conversation)));
        }
        self.git(Some(conversation.to_owned()), op, Some(then));
    }

    /// Asks for a repository change; changes of one conversation run one at a time.
    pub(super) fn git(&mut self, conversation: Option<String>, op: GitOp, then: Option<AfterGit>) {
        let Some(conv) = conversation else {
            if let Some(then) = then {
                self.creating.push_back(then);
            }
            self.io.push_back(Io::Git {
                conversation: None,
                op,
            });
            return;
        };
        match self.busy.get_mut(&conv) {
            Some(queue) => {
                // A fetch from a device already waiting says as much.
                let dup = matches!(&op, GitOp::Fetch { device, .. }
                    if queue.iter().any(|(o, _)| matches!(o, GitOp::Fetch { device: d, .. } if d == device)));
                if !dup {
                    queue.push_back((op, then));
                }
            }
            None => {
                self.busy.insert(conv.clone(), Default::default());
                self.after_git
                    .entry(conv.clone())
                    .or_default()
                    .push_back(then);
                self.io.push_back(Io::Git {
                    conversation: Some(cid(&conv)),
                    op,
                });
            }
        }
    }

    /// Fetches a conversation from `device` of `account`.
    pub(super) fn fetch(&mut self, conversation: &str, device: DeviceId, account: Option<&str>) {
        if !self.members.holds(conversation) {
            return;
        }
        let chain = account.and_then(|a| self.devices.get(a)).and_then(|cs| {
            cs.iter()
                .find(|c| c[0].public_key().device_id() == device)
                .cloned()
        });
        self.git(
            Some(conversation.to_owned()),
            GitOp::Fetch {
                device,
                account: account.and_then(super::jid),
                chain,
            },
            None,
        );
    }

    pub(super) fn clone_failed(&mut self, conversation: &str, account: &str, tries: u32) {
        let tries = tries + 1;
        if tries < CLONE_TRIES {
            self.timers.push((
                self.now + std::time::Duration::from_secs(2 << tries),
                Timer::CloneAgain {
                    conversation: conversation.to_owned(),
                    account: account.to_owned(),
                    tries,
                },
            ));
        } else {
            tracing::info!("{conversation}: no device of {account} served it");
        }
    }

    /// The result of a repository change.
    pub(super) fn on_git(
        &mut self,
        conversation: Option<String>,
        op: GitOp,
        result: Result<GitOutcome, ClientError>,
    ) {
        let then = match &conversation {
            None => self.creating.pop_front(),
            Some(c) => self
                .after_git
                .get_mut(c)
                .and_then(|q| q.pop_front())
                .flatten(),
        };
        if let Some(conv) = &conversation {
            if let Ok(o) = &result {
                if !matches!(op, GitOp::Remove) && !o.members.is_empty() {
                    self.members.set(conv, o.members.clone());
                }
            }
            // The next change of this conversation may run.
            let next = self.busy.get_mut(conv).and_then(|q| q.pop_front());
            match next {
                Some((op, then)) => {
                    self.after_git
                        .entry(conv.clone())
                        .or_default()
                        .push_back(then);
                    self.io.push_back(Io::Git {
                        conversation: Some(cid(conv)),
                        op,
                    });
                }
                None => {
                    self.busy.remove(conv);
                    self.after_git.remove(conv);
                }
            }
        }
        match (op, result) {
            (GitOp::Create { .. }, Ok(o)) => {
                let Some(id) = o.created.as_ref().map(ToString::to_string) else {
                    return;
                };
                self.members.set(&id, o.members);
                match then {
                    Some(AfterGit::ContactConversation(t, contact)) => {
                        self.contact_added(t, &contact, &id)
                    }
                    Some(AfterGit::Group(t)) => {
                        self.events.push_back(Event::ConversationReady {
                            conversation: cid(&id),
                        });
                        self.reply(t, Ok(Reply::Conversation(cid(&id))));
                    }
                    _ => {}
                }
            }
            (GitOp::Fetch { account, .. }, Ok(o)) => {
                let conv = conversation.unwrap_or_default();
                self.emit_messages(&conv, o.commits);
                for (uri, r) in o.members {
                    if r != Role::Banned {
                        self.watch(&uri);
                    }
                }
                // Our head moved: tell the other members we have it, so that one who was
                // offline when it was posted gets it from us.
                if let Some(head) = o.moved_to {
                    let account = account.map(|a| a.to_string());
                    self.notify(&conv, head.as_str(), account.as_deref());
                }
            }
            (GitOp::Fetch { device, .. }, Err(e)) => {
                let conv = conversation.unwrap_or_default();
                if let ClientError::Refused(reason) = e {
                    tracing::warn!("history of {conv} from {device} refused: {reason}");
                    self.events.push_back(Event::SyncRefused {
                        conversation: cid(&conv),
                        device: device.to_string(),
                        reason,
                    });
                } else {
                    tracing::info!("fetch of {conv} from {device}: {e}");
                }
            }
            (GitOp::Clone { .. }, result) => {
                let conv = conversation.unwrap_or_default();
                let Some(AfterGit::Clone { account, tries }) = then else {
                    return;
                };
                match result {
                    Ok(o) => {
                        for (device, reason) in &o.refused {
                            self.events.push_back(Event::SyncRefused {
                                conversation: cid(&conv),
                                device: device.clone(),
                                reason: reason.clone(),
                            });
                        }
                        self.after_clone(&conv, o);
                    }
                    Err(e) => {
                        if let ClientError::CloneRefused(refused) = e {
                            for (device, reason) in refused {
                                self.events.push_back(Event::SyncRefused {
                                    conversation: cid(&conv),
                                    device,
                                    reason,
                                });
                            }
                        } else {
                            tracing::info!("clone of {conv}: {e}");
                        }
                        self.clone_failed(&conv, &account, tries);
                    }
                }
            }
            (GitOp::Join, Ok(o)) => {
                let conv = conversation.unwrap_or_default();
                self.conversation_ready(&conv);
                if let Some(id) = o.commits.last().map(|m| m.id.clone()) {
                    self.notify(&conv, &id, None);
                }
            }
            (GitOp::History, Ok(o)) => {
                let conv = conversation.unwrap_or_default();
                self.emit_messages(&conv, o.commits);
            }
            (GitOp::Join, Err(e)) => {
                tracing::warn!("join of {conversation:?}: {e}");
            }
            (GitOp::Remove, _) => {
                if let Some(c) = &conversation {
                    self.members.remove(c);
                }
            }
            (op, Ok(o)) => {
                let conv = conversation.unwrap_or_default();
                let last = o.commits.last().map(|m| m.id.clone());
                // Leaving shows nothing; every other change is a message of ours.
                if !matches!(op, GitOp::Leave | GitOp::VoteBan(_)) {
                    let ms: Vec<_> = o.commits.clone();
                    self.emit_messages(&conv, ms);
                }
                if let Some(id) = &last {
                    self.notify(&conv, id, None);
                }
                match then {
                    Some(AfterGit::Commit(t)) => self.reply(
                        t,
                        Ok(Reply::Commit(MessageId::trusted(last.unwrap_or_default()))),
                    ),
                    Some(AfterGit::Invited(t, id)) => {
                        self.watch(&id);
                        let mut metadatas = serde_json::Map::new();
                        metadatas.insert("mode".into(), serde_json::Value::from("2"));
                        self.deliver(
                            &id,
                            Im::Invite {
                                conversation: conv.clone(),
                                metadatas,
                            },
                        );
                        self.reply(
                            t,
                            Ok(Reply::Commit(MessageId::trusted(last.unwrap_or_default()))),
                        )
                    }
                    Some(AfterGit::Done(t)) => self.reply(t, Ok(Reply::Done)),
                    _ => {}
                }
            }
            (_, Err(e)) => match then {
                Some(
                    AfterGit::Commit(t)
                    | AfterGit::Invited(t, _)
                    | AfterGit::Done(t)
                    | AfterGit::Group(t)
                    | AfterGit::ContactConversation(t, _),
                ) => self.reply(t, Err(e)),
                _ => tracing::warn!("{conversation:?}: {e}"),
            },
        }
    }

    /// A clone came: joined when we are only invited, removed when we are not even that.
    fn after_clone(&mut self, conversation: &str, _o: GitOutcome) {
        match self.members.role(conversation, &self.me) {
            Some(Role::Invited) => {
                self.git(Some(conversation.to_owned()), GitOp::Join, None);
            }
            Some(Role::Admin | Role::Member) => self.conversation_ready(conversation),
            _ => {
                tracing::warn!("cloned {conversation}, where we are not invited");
                self.git(Some(conversation.to_owned()), GitOp::Remove, None);
            }
        }
    }

    /// Ready as soon as it is validated and joined (as jamid's conversationReady); then
    /// the history is read and reported, oldest first. Its members are watched.
    fn conversation_ready(&mut self, conversation: &str) {
        self.events.push_back(Event::ConversationReady {
            conversation: cid(conversation),
        });
        self.git(Some(conversation.to_owned()), GitOp::History, None);
        for (uri, r) in self.members.of(conversation) {
            if r != Role::Banned {
                self.watch(&uri);
            }
        }
    }
}

fn no_conversation(id: &str) -> ClientError {
    ClientError::UnknownConversation(cid(id))
}
