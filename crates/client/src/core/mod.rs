//! The account as a pure state machine: inputs in, I/O requests and events out.
//!
//! [`Core`] holds every rule of the communicator that is not a wire format: who may fetch
//! a conversation, when and from whom we fetch, whom a new commit is told to and how
//! (a `sip` channel, else the device's DHT inbox, else later), what a trust request does
//! to the contact list, when presence changes, how a `sip` channel's requests are
//! answered and routed to calls. It does no I/O and reads no clock: time comes with each
//! call, randomness and the message-id memory are handed in at construction.
//!
//! # Call order
//!
//! ```text
//! let mut core = Core::new(config, state, random, seen);
//! core.start(now);
//! loop {
//!     while let Some(io) = core.poll_io() { /* execute it; results come back as Input */ }
//!     while let Some(event) = core.poll_event() { /* hand it to the user */ }
//!     // wait for the next input, or until core.poll_timeout()
//!     core.handle(now, input);      // or core.handle_timeout(now) when the timer fired
//! }
//! ```
//!
//! - [`Core::start`] once, before anything else: it asks for the announcement, listens to
//!   every peer and catches up with them.
//! - After every [`Core::handle`] or [`Core::handle_timeout`], drain [`Core::poll_io`] and
//!   [`Core::poll_event`]; the order between the two queues does not matter, the order
//!   within each does.
//! - [`Core::poll_timeout`] changes after each call; ask again each time round.
//! - `now` never goes backwards; `unix` is the wall clock at `now`, seconds.
//!
//! Every [`Io`] that has a result names the [`Input`] that brings it; results may come in
//! any order, and I/O that never answers costs only what waits on it.

pub mod calls;
mod contacts;
mod delivery;
mod io;
mod members;
mod repos;
mod sip;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use pamoja_identity::{Certificate, DeviceId, JamiId};

use crate::id::ConversationId;
use serde_json::{Value as Json, json};

pub(crate) use io::device_of;
pub use io::{ChannelId, Command, GitOp, GitOutcome, Input, Io, Reply, StateFile, Ticket};
pub use members::Members;
pub use sip::accepts_channel;

use crate::config::Settings;
use crate::contacts::Contacts;
use crate::error::ClientError;
use crate::event::Event;
use crate::instant::Instant as Im;
use crate::presence::{Presence, Status};

/// How often our device announcement is put again (announcements live ten minutes).
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(240);
/// How often contacts' announcements are looked up again, for presence.
pub const PRESENCE_EVERY: Duration = Duration::from_secs(60);
/// How often notices that could not be delivered are tried again.
pub const RETRY_EVERY: Duration = Duration::from_secs(15);
/// How long after serving a pack we fetch back from the peer (it may have merged).
pub const FETCH_BACK_AFTER: Duration = Duration::from_secs(1);
/// How many times a clone is tried (waiting 2, 4, 8 s between tries).
pub const CLONE_TRIES: u32 = 3;

/// Random bytes, handed to the core (the OS generator in the shell, a seeded one in
/// tests).
pub trait Random: Send {
    /// Fills `buf`.
    fn fill(&mut self, buf: &mut [u8]);
}

/// The memory of message ids already handled (a message jamid sends both over a `sip`
/// channel and the DHT inbox, or again after a restart, is handled once).
pub trait SeenIds: Send {
    /// Records `id`: `true` the first time.
    fn first_time(&mut self, id: &str) -> bool;
}

/// Who the account is and where it runs.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Our Jami ID (40 hex digits).
    pub me: String,
    /// Our device id (64 hex digits).
    pub device: String,
    /// Our device's short id (40 hex digits), as SIP `Contact` headers name it.
    pub short_device: String,
    /// The address our SIP messages name.
    pub ice_addr: IpAddr,
}

/// What the account kept in its data directory, read by the shell at start.
#[derive(Debug, Default)]
pub struct State {
    /// Contacts and pending trust requests.
    pub contacts: Contacts,
    /// Settings.
    pub settings: Settings,
    /// Invitations waiting for an answer.
    pub conv_requests: BTreeMap<String, ConvRequest>,
    /// The conversations held with their members.
    pub members: Members,
}

/// An invitation to a conversation waiting for an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvRequest {
    /// Who invites.
    pub from: String,
    /// Its details.
    pub metadatas: serde_json::Map<String, Json>,
    /// When it came, Unix seconds.
    pub received: i64,
}

/// What waits for an account's devices to be looked up.
#[derive(Debug, Clone)]
enum AfterLookup {
    /// Put our trust request (for this conversation) at each device.
    TrustRequest(String),
    /// Put a confirmation at each device.
    Confirm(String),
    /// Send an instant message to each device.
    Deliver(Im),
    /// Open a `sip` channel to each device (both sides then fetch).
    CatchUp,
    /// Clone a conversation from the account's devices (the try number).
    Clone(String, u32),
    /// Call the first device a `sip` channel reaches.
    Call(Ticket),
}

/// A timer's purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Timer {
    Announce,
    Presence,
    Retry,
    FetchBack {
        conversation: String,
        device: DeviceId,
        account: Option<String>,
    },
    CloneAgain {
        conversation: String,
        account: String,
        tries: u32,
    },
}

/// A command that waits for a repository change.
#[derive(Debug, Clone)]
enum AfterGit {
    /// Reply with the conversation, and make `id` a contact.
    ContactConversation(Ticket, String),
    /// Reply with the new group's id.
    Group(Ticket),
    /// Reply with the commit id.
    Commit(Ticket),
    /// An invitation: reply with the commit, then invite the account.
    Invited(Ticket, String),
    /// Reply done.
    Done(Ticket),
    /// A clone from an account's devices (the try number).
    Clone {
        /// The account cloned from.
        account: String,
        /// Tries so far.
        tries: u32,
    },
}

/// The communicator's rules, without I/O. See the [module documentation](self) for the
/// call order.
pub struct Core {
    me: String,
    device: String,
    ice_addr: IpAddr,
    random: Box<dyn Random>,
    seen: Box<dyn SeenIds>,
    now: Instant,
    unix: i64,
    contacts: Contacts,
    settings: Settings,
    presence: Presence,
    conv_requests: BTreeMap<String, ConvRequest>,
    members: Members,
    /// Device chains found per account.
    devices: HashMap<String, Vec<Vec<Certificate>>>,
    /// Accounts whose announcements we listen to.
    watched: HashSet<String>,
    /// Accounts whose devices are being looked up, and what waits for them.
    lookups: HashMap<String, Vec<AfterLookup>>,
    /// Open channels.
    channels: HashMap<ChannelId, sip::Chan>,
    /// The `sip` channel of each linked device.
    sips: HashMap<DeviceId, ChannelId>,
    /// Devices a `sip` channel is being opened to, with what waits for it.
    opening: HashMap<DeviceId, delivery::Waiting>,
    /// Notices that could not be delivered, per (account, conversation).
    undelivered: BTreeMap<(String, String), Im>,
    /// Calls in progress, by Call-ID.
    calls: HashMap<String, calls::Call>,
    /// Media sessions being gathered, and what for.
    gathers: HashMap<calls::GatherId, calls::Purpose>,
    next_gather: u64,
    /// Calls being placed: video and recording, by ticket.
    placing: HashMap<Ticket, (bool, bool)>,
    placing_records: HashMap<Ticket, bool>,
    /// What calls answered automatically send: video, recorded.
    auto_answer_media: (bool, bool),
    /// Our device's short id (SIP `Contact`).
    short_device: String,
    /// Conversations with a repository change under way, and the changes waiting.
    busy: HashMap<String, VecDeque<(GitOp, Option<AfterGit>)>>,
    /// Commands waiting for a repository change, by conversation (in order).
    after_git: HashMap<String, VecDeque<Option<AfterGit>>>,
    /// Creations under way, in order.
    creating: VecDeque<AfterGit>,
    timers: Vec<(Instant, Timer)>,
    io: VecDeque<Io>,
    events: VecDeque<Event>,
}

/// A conversation id the core holds or checked.
pub(crate) fn cid(s: &str) -> ConversationId {
    ConversationId::trusted(s.to_ascii_lowercase())
}

/// Whether `s` is `len` hex digits.
pub(crate) fn is_hex_id(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Core {
    /// A core for the account of `config`, with what its data directory kept.
    pub fn new(
        config: CoreConfig,
        state: State,
        random: Box<dyn Random>,
        seen: Box<dyn SeenIds>,
        now: Instant,
        unix: i64,
    ) -> Self {
        Self {
            me: config.me,
            device: config.device,
            ice_addr: config.ice_addr,
            random,
            seen,
            now,
            unix,
            contacts: state.contacts,
            settings: state.settings,
            presence: Presence::default(),
            conv_requests: state.conv_requests,
            members: state.members,
            devices: HashMap::new(),
            watched: HashSet::new(),
            lookups: HashMap::new(),
            channels: HashMap::new(),
            sips: HashMap::new(),
            opening: HashMap::new(),
            undelivered: BTreeMap::new(),
            calls: HashMap::new(),
            gathers: HashMap::new(),
            next_gather: 0,
            placing: HashMap::new(),
            placing_records: HashMap::new(),
            auto_answer_media: (false, false),
            short_device: config.short_device,
            busy: HashMap::new(),
            after_git: HashMap::new(),
            creating: VecDeque::new(),
            timers: Vec::new(),
            io: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Goes online: the announcement is put, every account we share something with is
    /// watched and caught up with, and the periodic timers start.
    pub fn start(&mut self, now: Instant, unix: i64) {
        self.tick(now, unix);
        self.io.push_back(Io::Announce);
        self.timers.push((now + ANNOUNCE_EVERY, Timer::Announce));
        self.timers.push((now + PRESENCE_EVERY, Timer::Presence));
        self.timers.push((now + RETRY_EVERY, Timer::Retry));
        for p in self.peers() {
            self.watch(&p);
        }
    }

    /// Handles one input at `now` (`unix`: the wall clock, seconds).
    pub fn handle(&mut self, now: Instant, unix: i64, input: Input) {
        self.tick(now, unix);
        match input {
            Input::Command(t, c) => self.command(t, c),
            Input::Devices { account, chains } => self.on_devices(&account.to_string(), chains),
            Input::Announced {
                account,
                device,
                fresh,
            } => self.on_announced(&account.to_string(), &device.to_string(), fresh),
            Input::ChannelUp {
                channel,
                device,
                account,
                name,
            } => self.on_channel_up(channel, device, account.map(|a| a.to_string()), &name),
            Input::ChannelFailed { device, reason } => self.on_channel_failed(device, &reason),
            Input::ChannelData { channel, data } => self.on_channel_data(channel, &data),
            Input::ChannelClosed(ch) => self.on_channel_closed(ch),
            Input::Inbox {
                id,
                from,
                device,
                mime,
                body,
            } => {
                if self.seen.first_time(&id) {
                    self.on_instant(&from.to_string(), Some(device), &mime, &body);
                }
            }
            Input::Trust {
                from,
                device,
                request,
            } => self.on_trust(&from.to_string(), device, request),
            Input::Served {
                conversation,
                device,
                account,
            } => {
                // A peer that fetched something new may have merged it with commits of
                // its own, and jamid does not announce merges: fetch back from it.
                self.timers.push((
                    now + FETCH_BACK_AFTER,
                    Timer::FetchBack {
                        conversation: conversation.to_string(),
                        device,
                        account: account.map(|a| a.to_string()),
                    },
                ));
            }
            Input::Git {
                conversation,
                op,
                result,
            } => self.on_git(conversation.map(|c| c.to_string()), op, result),
            Input::Progress {
                conversation,
                bytes,
            } => self.events.push_back(Event::Progress {
                conversation,
                bytes,
            }),
            Input::MediaGathered { gather, local } => self.media_gathered(gather, local),
            Input::CallMedia { call, news } => self.call_media(call.as_str(), news),
            Input::CallReport { call, stats } => self.call_report(call.as_str(), stats),
        }
    }

    /// The timers due at `now` fire.
    pub fn handle_timeout(&mut self, now: Instant, unix: i64) {
        self.tick(now, unix);
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.timers)
            .into_iter()
            .partition(|(t, _)| *t <= now);
        self.timers = later;
        self.calls_timeout(now);
        for (_, timer) in due {
            match timer {
                Timer::Announce => {
                    self.io.push_back(Io::Announce);
                    self.timers.push((now + ANNOUNCE_EVERY, Timer::Announce));
                }
                Timer::Presence => {
                    let mut watched: Vec<String> = self.watched.iter().cloned().collect();
                    watched.sort();
                    for id in watched.iter().filter_map(|w| jid(w)) {
                        self.io.push_back(Io::LookupAnnouncements(id));
                    }
                    for (contact, s) in self.presence.tick(now) {
                        self.emit_for(&contact, |contact| Event::Presence { contact, status: s });
                    }
                    self.timers.push((now + PRESENCE_EVERY, Timer::Presence));
                }
                Timer::Retry => {
                    let pending = std::mem::take(&mut self.undelivered);
                    for ((account, _), m) in pending {
                        self.deliver(&account, m);
                    }
                    self.timers.push((now + RETRY_EVERY, Timer::Retry));
                }
                Timer::FetchBack {
                    conversation,
                    device,
                    account,
                } => self.fetch(&conversation, device, account.as_deref()),
                Timer::CloneAgain {
                    conversation,
                    account,
                    tries,
                } => self.after_lookup(&account, AfterLookup::Clone(conversation, tries)),
            }
        }
    }

    /// The next I/O to run.
    pub fn poll_io(&mut self) -> Option<Io> {
        self.io.pop_front()
    }

    /// The next event for the user.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Core::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timers = self.timers.iter().map(|(t, _)| *t).min();
        [timers, self.calls_poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    fn tick(&mut self, now: Instant, unix: i64) {
        self.now = self.now.max(now);
        self.unix = unix;
    }

    // Reads for the user (the shell answers these under its lock).

    /// Our Jami ID.
    pub fn jami_id(&self) -> &str {
        &self.me
    }

    /// The settings now.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Contacts and pending requests.
    pub fn contacts(&self) -> &Contacts {
        &self.contacts
    }

    /// A contact's presence now.
    pub fn presence(&self, id: &str, now: Instant) -> Status {
        self.presence.status(id, now)
    }

    /// The conversations held, with their members.
    pub fn members(&self) -> &Members {
        &self.members
    }

    /// Invitations waiting for an answer.
    pub fn conversation_requests(&self) -> &BTreeMap<String, ConvRequest> {
        &self.conv_requests
    }

    /// The calls in progress.
    pub fn calls(&self) -> Vec<crate::id::CallId> {
        let mut v: Vec<_> = self
            .calls
            .keys()
            .map(|k| crate::id::CallId::trusted(k.clone()))
            .collect();
        v.sort();
        v
    }

    fn reply(&mut self, t: Ticket, r: Result<Reply, ClientError>) {
        self.io.push_back(Io::Reply(t, r));
    }

    fn random_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.random.fill(&mut b);
        u64::from_le_bytes(b)
    }

    /// Accounts we share something with: active contacts and conversation members.
    fn peers(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .contacts
            .contacts
            .iter()
            .filter(|(_, c)| c.is_active())
            .map(|(id, _)| id.clone())
            .chain(self.members.everyone())
            .filter(|id| *id != self.me)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Listens to the announcements of `id`, for presence (once per account).
    fn watch(&mut self, id: &str) {
        let Some(j) = jid(id) else { return };
        if id == self.me || !self.watched.insert(id.to_owned()) {
            return;
        }
        self.io.push_back(Io::Listen(j));
    }

    /// Asks for `account`'s devices, with `then` to do once they are known.
    fn after_lookup(&mut self, account: &str, then: AfterLookup) {
        match self.lookups.get_mut(account) {
            Some(waiting) => waiting.push(then),
            None => {
                let Some(j) = jid(account) else {
                    tracing::info!("no devices to look up for {account:?}: not an account id");
                    return;
                };
                self.lookups.insert(account.to_owned(), vec![then]);
                self.io.push_back(Io::LookupDevices(j));
            }
        }
    }

    fn on_devices(&mut self, account: &str, chains: Vec<Vec<Certificate>>) {
        // Only chains whose account certificate is the account's.
        let mut found: Vec<Vec<Certificate>> = Vec::new();
        for chain in chains {
            let ok = chain.len() >= 2 && chain[1].jami_id().to_string() == account;
            if ok && !found.iter().any(|c| c[0].der() == chain[0].der()) {
                found.push(chain);
            }
        }
        if !found.is_empty() {
            self.devices.insert(account.to_owned(), found.clone());
        }
        let waiting = self.lookups.remove(account).unwrap_or_default();
        for then in waiting {
            match then {
                AfterLookup::TrustRequest(conv) => {
                    let req = self.trust_request(&conv);
                    for chain in &found {
                        self.io.push_back(Io::PutTrust {
                            device: chain[0].public_key().clone(),
                            request: req.clone(),
                        });
                    }
                }
                AfterLookup::Confirm(conv) => {
                    for chain in &found {
                        self.io.push_back(Io::PutTrust {
                            device: chain[0].public_key().clone(),
                            request: crate::trust::TrustRequest::confirmation(&conv),
                        });
                    }
                }
                AfterLookup::Deliver(m) => self.deliver_to(account, &found, m),
                AfterLookup::CatchUp => {
                    for chain in &found {
                        self.ensure_sip(chain, account);
                    }
                }
                AfterLookup::Clone(conv, tries) => {
                    if self.members.holds(&conv) {
                        continue;
                    }
                    if found.is_empty() {
                        self.clone_failed(&conv, account, tries);
                    } else {
                        self.git(
                            Some(conv.clone()),
                            GitOp::Clone {
                                chains: found.clone(),
                            },
                            Some(AfterGit::Clone {
                                account: account.to_owned(),
                                tries,
                            }),
                        );
                    }
                }
                AfterLookup::Call(t) => self.call_devices(t, account, &found),
            }
        }
    }

    fn on_announced(&mut self, account: &str, device: &str, fresh: bool) {
        let now = self.now;
        let change = self.presence.announced(account, device, now);
        let status = self.presence.status(account, now);
        if let Some(s) = change {
            self.emit_for(account, |contact| Event::Presence { contact, status: s });
        }
        if change == Some(Status::Reachable) || (fresh && status == Status::Reachable) {
            self.catch_up(account);
        }
    }

    /// `account` came online: trust requests it has not confirmed go again, notices it
    /// missed are delivered, and a `sip` channel to each device makes both sides fetch.
    fn catch_up(&mut self, account: &str) {
        let unconfirmed = self
            .contacts
            .active(account)
            .filter(|c| !c.confirmed)
            .map(|c| c.conversation_id.clone());
        if let Some(conv) = unconfirmed {
            self.after_lookup(account, AfterLookup::TrustRequest(conv));
        }
        let keys: Vec<_> = self
            .undelivered
            .keys()
            .filter(|(a, _)| a == account)
            .cloned()
            .collect();
        for k in keys {
            if let Some(m) = self.undelivered.remove(&k) {
                self.after_lookup(account, AfterLookup::Deliver(m));
            }
        }
        self.after_lookup(account, AfterLookup::CatchUp);
    }

    /// Emits the event `f` makes of `account`'s typed id (an account string that is not
    /// a Jami ID is logged and nothing is emitted).
    fn emit_for(&mut self, account: &str, f: impl FnOnce(JamiId) -> Event) {
        match account.parse::<JamiId>() {
            Ok(id) => self.events.push_back(f(id)),
            Err(e) => tracing::warn!("event about {account:?} dropped: {e}"),
        }
    }

    fn emit_messages(&mut self, conversation: &str, ms: Vec<pamoja_swarm::Message>) {
        for m in ms {
            self.events.push_back(message_event(conversation, m));
        }
    }

    fn persist_settings(&mut self) {
        let j = self.settings.to_json();
        self.io.push_back(Io::Persist {
            file: StateFile::Settings,
            data: j.to_string().into_bytes(),
            extra: None,
        });
    }

    fn persist_conv_requests(&mut self) {
        let m: serde_json::Map<String, Json> = self
            .conv_requests
            .iter()
            .map(|(k, r)| {
                (
                    k.clone(),
                    json!({"from": r.from, "received": r.received, "metadatas": r.metadatas}),
                )
            })
            .collect();
        self.io.push_back(Io::Persist {
            file: StateFile::ConvRequests,
            data: Json::Object(m).to_string().into_bytes(),
            extra: None,
        });
    }
}

/// Trust requests kept waiting for an answer; past this, new senders' requests are dropped.
pub const MAX_TRUST_REQUESTS: usize = 512;
/// Conversation requests kept waiting, in all and from one sender.
pub const MAX_CONV_REQUESTS: usize = 512;
/// See [`MAX_CONV_REQUESTS`].
pub const MAX_CONV_REQUESTS_PER_SENDER: usize = 16;

/// Reads `convRequests.json` (`None`: not a JSON object).
pub fn decode_conv_requests(b: &[u8]) -> Option<BTreeMap<String, ConvRequest>> {
    let Ok(Json::Object(m)) = serde_json::from_slice::<Json>(b) else {
        return None;
    };
    let requests = m
        .into_iter()
        .filter_map(|(k, v)| {
            Some((
                k,
                ConvRequest {
                    from: v["from"].as_str()?.to_owned(),
                    received: v["received"].as_i64().unwrap_or(0),
                    metadatas: v["metadatas"].as_object().cloned().unwrap_or_default(),
                },
            ))
        })
        .collect();
    Some(requests)
}

/// An account id the core holds as text, typed for [`Io`] (`None`: not an account id).
pub(crate) fn jid(s: &str) -> Option<JamiId> {
    s.parse().ok()
}

/// The event of a message.
pub(crate) fn message_event(conversation: &str, m: pamoja_swarm::Message) -> Event {
    Event::Message {
        conversation: cid(conversation),
        id: crate::id::MessageId::trusted(m.id),
        author: m.author.and_then(|a| a.parse().ok()),
        device: m.device,
        kind: m.kind,
        body: m.body,
        timestamp: m.timestamp,
    }
}
