//! The I/O edge: one task owns the [`Core`](crate::core::Core) and runs what it asks.
//!
//! [`Client::start`] reads the data directory, joins the DHT, starts the link manager and
//! the inbox, builds the core, and spawns the driver:
//!
//! ```text
//! loop {
//!     run every Io the core asks for   (DHT, links, channels, git, calls, files)
//!     hand every event to Events
//!     wait: an input (a command, a result, a channel's bytes) or the core's timeout
//!     core.handle(now, unix, input)    or core.handle_timeout(now, unix)
//! }
//! ```
//!
//! Results of I/O come back to the driver as [`Input`]s on one channel. Nothing here
//! decides anything about the protocol: it dials, reads, writes and runs git.

mod dht;
mod git;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pamoja_channel::link::{Channel, Dialer, Incoming};
use pamoja_channel::seen::Seen;
use pamoja_dht::Runner;
use pamoja_dht::securedht::SecureDht;
use pamoja_identity::{Account, DeviceId, JamiId};
use pamoja_swarm::{Role, Signer};
use tokio::sync::{mpsc, oneshot, watch};

use crate::call::{self, CallOptions};
use crate::config::{Config, Settings};
use crate::contacts::{ContactState, Contacts, PendingRequest, write_atomic};
use crate::core::calls::{CallCommand, GatherId, MediaNews};
use crate::core::{
    ChannelId, Command, Core, CoreConfig, Input, Io, Members, Random, Reply, SeenIds, State,
    StateFile, Ticket, decode_conv_requests,
};
use crate::error::ClientError;
use crate::event::Event;
use crate::id::{CallId, ConversationId, MessageId};
use crate::presence::Status;
use pamoja_ice::media::MediaSession;

type Result<T> = std::result::Result<T, ClientError>;

/// A contact as [`Client::contacts`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactInfo {
    /// Jami ID.
    pub id: JamiId,
    /// Pending, confirmed, banned...
    pub state: ContactState,
    /// The one-to-one conversation.
    pub conversation: ConversationId,
    /// When added, Unix seconds.
    pub added: i64,
    /// Presence now.
    pub presence: Status,
}

/// How many events wait for the application before the account waits for it.
pub const EVENTS_BOUND: usize = 4096;

/// The stream of events of a running account (bounded: an account whose events are not
/// read waits). Also a [`Stream`](futures_util::Stream).
pub struct Events(mpsc::Receiver<Event>);

impl Events {
    /// The next event; `None` once the account stopped.
    pub async fn next(&mut self) -> Option<Event> {
        self.0.recv().await
    }
}

impl futures_util::Stream for Events {
    type Item = Event;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Event>> {
        self.0.poll_recv(cx)
    }
}

/// What a running account is connected to (see [`Client::connectivity`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Connectivity {
    /// DHT nodes known good.
    pub dht_nodes: usize,
    /// `sip` channels up (devices linked).
    pub sip_links: usize,
}

/// The operating system's random generator.
struct OsRandom;

impl Random for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        if aws_lc_rs::rand::fill(buf).is_err() {
            // Never zeroes: a time-derived fill, and the failure logged.
            tracing::error!("the system random generator failed");
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (t >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151);
            }
        }
    }
}

/// The shared message-id memory (the link manager dedups connection requests with it).
struct SharedSeen(Arc<Mutex<Seen>>);

impl SeenIds for SharedSeen {
    fn first_time(&mut self, id: &str) -> bool {
        self.0
            .lock()
            .map(|mut s| s.insert(id).unwrap_or(true))
            .unwrap_or(true)
    }
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A channel the shell holds for the core.
enum Held {
    /// A `sip` channel: its writer (in order) and the sender calls use.
    Sip {
        writer: mpsc::UnboundedSender<Vec<u8>>,
        reader: tokio::task::JoinHandle<()>,
    },
    /// A `git://` channel waiting for the core's word.
    Git(Channel),
}

/// The media side of a call, held by the shell.
struct CallMedia {
    /// What it sends and keeps.
    options: CallOptions,
    /// Our audio muted (silence sent).
    muted: watch::Sender<bool>,
    /// Its streams, once started.
    media: Option<call::Media>,
}

/// Inputs from `sip` channels waiting for the core, in all.
const SIP_INPUTS: usize = 256;

/// Conversations served to peers at once (each on a blocking thread); more wait their turn.
const SERVES: usize = 4;

/// What the driver and the I/O tasks share.
pub(crate) struct Shared {
    core: Mutex<Core>,
    inputs: mpsc::UnboundedSender<Input>,
    /// What `sip` channels bring, bounded: a peer sending faster than the core handles
    /// waits (its channel's backlog fills, then the link closes that channel).
    sip_inputs: mpsc::Sender<Input>,
    /// Conversations served at once ([`SERVES`]).
    serves: Arc<tokio::sync::Semaphore>,
    replies: Mutex<HashMap<Ticket, oneshot::Sender<Result<Reply>>>>,
    next_ticket: AtomicU64,
    next_channel: AtomicU64,
    account: Account,
    pub(crate) signer: Arc<Signer>,
    me: JamiId,
    device: DeviceId,
    pub(crate) data: PathBuf,
    runner: Arc<Runner>,
    dht: Arc<SecureDht>,
    pub(crate) dialer: Dialer,
    ice_addr: IpAddr,
    channels: Mutex<HashMap<ChannelId, Held>>,
    /// The media side of each call: its options, mute switch, running streams.
    call_media: Mutex<HashMap<String, CallMedia>>,
    /// Media sessions gathered for the core, by its name for them.
    gathers: Mutex<HashMap<GatherId, MediaSession>>,
    /// What calls answered automatically send and keep.
    call_options: Mutex<CallOptions>,
    pending_calls: Mutex<HashMap<Ticket, CallOptions>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    connectivity: watch::Sender<Connectivity>,
    stop: tokio::sync::Notify,
}

/// A running account. Methods are the commands; [`Events`] brings what happens. Dropping
/// the client stops every task it started.
pub struct Client {
    shared: Arc<Shared>,
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Ok(t) = self.shared.tasks.lock() {
            for h in t.iter() {
                h.abort();
            }
        }
        if let Ok(mut chans) = self.shared.channels.lock() {
            for (_, h) in chans.drain() {
                if let Held::Sip { reader, .. } = h {
                    reader.abort();
                }
            }
        }
    }
}

/// Renames an unreadable state file to `<name>.bad-<unix time>` beside it, and logs so.
fn set_aside<T>(data: &std::path::Path, name: &str) -> Option<T> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let kept = data.join(format!("{name}.bad-{secs}"));
    match std::fs::rename(data.join(name), &kept) {
        Ok(()) => tracing::warn!("{name} is unreadable: kept as {}", kept.display()),
        Err(e) => tracing::warn!("{name} is unreadable and could not be set aside: {e}"),
    }
    None
}

fn read_state(data: &std::path::Path) -> Result<State> {
    let read = |name: &str| std::fs::read(data.join(name)).ok();
    let contacts = Contacts::decode(
        read(Contacts::CONTACTS_FILE).as_deref(),
        read(Contacts::REQUESTS_FILE).as_deref(),
    )?;
    // An unreadable file is not taken for an empty one (the next save would overwrite it):
    // it is set aside, named in the log, and the account starts with the defaults.
    let settings = read("settings.json")
        .and_then(|b| match serde_json::from_slice::<serde_json::Value>(&b) {
            Ok(j) if j.is_object() => Some(Settings::from_json(&j)),
            _ => set_aside(data, "settings.json"),
        })
        .unwrap_or_default();
    let conv_requests = read("convRequests.json")
        .and_then(|b| decode_conv_requests(&b).or_else(|| set_aside(data, "convRequests.json")))
        .unwrap_or_default();
    git::remove_leftovers(data);
    let mut members = Members::default();
    for id in git::conversation_ids(data) {
        match git::open(data, &id).and_then(|c| Ok(c.members()?)) {
            Ok(ms) => members.set(&id, ms),
            Err(e) => tracing::warn!("conversation {id} not readable: {e}"),
        }
    }
    Ok(State {
        contacts,
        settings,
        conv_requests,
        members,
    })
}

impl Client {
    /// Starts `account` with the data directory and network of `config`.
    pub async fn start(account: Account, config: Config) -> Result<(Self, Events)> {
        let data = config.data_dir.clone();
        std::fs::create_dir_all(data.join("conversations"))?;
        let device_cert = account
            .device()
            .ok_or(ClientError::NoDeviceKey)?
            .cert
            .clone();
        let signer = Signer::of(&account, "pamoja")?;
        let me = account.jami_id();
        let device = device_cert.public_key().device_id();

        let state = read_state(&data)?;
        let banned: Vec<_> = state
            .contacts
            .contacts
            .iter()
            .filter(|(_, c)| c.is_banned())
            .filter_map(|(id, _)| id.parse().ok())
            .collect();
        let online = crate::net::go_online(
            &account,
            crate::net::OnlineOptions {
                bootstrap: config.bootstrap.clone(),
                ice_addr: config.ice_addr,
                seen_file: Some(data.join("seen")),
                accept: crate::core::accepts_channel,
                banned,
                crl_dir: Some(data.join("crls")),
            },
        )
        .await?;
        let crate::net::Online {
            runner,
            dht,
            mut manager,
            seen,
            ..
        } = online;

        let core = Core::new(
            CoreConfig {
                me: me.to_string(),
                device: device.to_string(),
                short_device: device_cert.short_device_id().to_string(),
                ice_addr: config.ice_addr,
            },
            state,
            Box::new(OsRandom),
            Box::new(SharedSeen(seen)),
            Instant::now(),
            unix_now(),
        );
        let (events_out, events_rx) = mpsc::channel(EVENTS_BOUND);
        let (inputs, mut inputs_rx) = mpsc::unbounded_channel();
        let (sip_inputs, mut sip_rx) = mpsc::channel(SIP_INPUTS);
        let (connectivity, _) = watch::channel(Connectivity::default());
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            inputs,
            sip_inputs,
            serves: Arc::new(tokio::sync::Semaphore::new(SERVES)),
            replies: Mutex::default(),
            next_ticket: AtomicU64::new(1),
            next_channel: AtomicU64::new(1),
            account,
            signer: Arc::new(signer),
            me,
            device,
            data,
            runner,
            dht: dht.clone(),
            dialer: manager.dialer(),
            ice_addr: config.ice_addr,
            channels: Mutex::default(),
            call_media: Mutex::default(),
            gathers: Mutex::default(),
            call_options: Mutex::default(),
            pending_calls: Mutex::default(),
            tasks: Mutex::default(),
            connectivity,
            stop: tokio::sync::Notify::new(),
        });
        let mut inbox =
            pamoja_channel::inbox::Inbox::start(dht, device_cert.public_key().clone()).await?;

        let mut tasks = Vec::new();
        let s = shared.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(item) = inbox.next_item().await {
                dht::on_inbox(&s, item);
            }
        }));
        let s = shared.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(incoming) = manager.next_incoming().await {
                match incoming {
                    Incoming::Link(mut link) => {
                        let s = s.clone();
                        let device = *link.device();
                        let account = link.account().copied();
                        tokio::spawn(async move {
                            while let Some(pamoja_channel::link::LinkEvent::Channel(ch)) =
                                link.next_event().await
                            {
                                s.channel_up(device, account, ch);
                            }
                        });
                    }
                    Incoming::Channel(device, ch) => s.channel_up(device, None, ch),
                }
            }
        }));
        let s = shared.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let dht_nodes = match s.runner.stats().await {
                    Ok(st) => st.good4 + st.good6,
                    Err(_) => 0,
                };
                let sip_links = s
                    .channels
                    .lock()
                    .map(|c| c.values().filter(|h| matches!(h, Held::Sip { .. })).count())
                    .unwrap_or(0);
                let now = Connectivity {
                    dht_nodes,
                    sip_links,
                };
                s.connectivity.send_if_modified(|c| {
                    let changed = *c != now;
                    *c = now;
                    changed
                });
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }));
        shared.lock_core().start(Instant::now(), unix_now());
        let s = shared.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let (events, timeout) = s.drain();
                for e in events {
                    // Backpressure: an application that does not read its events holds
                    // the account (bounded queue), rather than memory growing.
                    if events_out.send(e).await.is_err() {
                        tracing::debug!("events dropped: nobody listens");
                    }
                }
                let sleep = async {
                    match timeout {
                        Some(at) => {
                            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    i = inputs_rx.recv() => match i {
                        Some(input) => {
                            tracing::trace!("input {}", short(&input));
                            s.lock_core().handle(Instant::now(), unix_now(), input)
                        }
                        None => return,
                    },
                    Some(input) = sip_rx.recv() => {
                        tracing::trace!("input {}", short(&input));
                        s.lock_core().handle(Instant::now(), unix_now(), input)
                    }
                    _ = sleep => s.lock_core().handle_timeout(Instant::now(), unix_now()),
                    _ = s.stop.notified() => return,
                }
            }
        }));
        if let Ok(mut t) = shared.tasks.lock() {
            t.extend(tasks);
        }
        Ok((Self { shared }, Events(events_rx)))
    }

    /// Stops the account: calls in progress are hung up (waiting up to two seconds for
    /// their ends to go out), links and tasks end. Events end after the last one.
    pub async fn shutdown(self) {
        let calls = self.calls();
        for c in &calls {
            let _ = self.hang_up(c).await;
        }
        let deadline = tokio::time::Instant::now() + call::LINGER + Duration::from_secs(1);
        while !self.calls().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.shared.stop.notify_one();
        // Drop aborts the tasks and closes the channels.
    }

    /// What the account is connected to now, and each change.
    pub fn connectivity(&self) -> watch::Receiver<Connectivity> {
        self.shared.connectivity.subscribe()
    }

    /// Runs a command through the core and waits for its reply.
    async fn command(&self, c: Command) -> Result<Reply> {
        let t = Ticket(self.shared.next_ticket.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        if let Ok(mut r) = self.shared.replies.lock() {
            r.insert(t, tx);
        }
        self.shared
            .inputs
            .send(Input::Command(t, c))
            .map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)?
    }

    async fn done(&self, c: Command) -> Result<()> {
        self.command(c).await.map(drop)
    }

    async fn conversation_reply(&self, c: Command) -> Result<ConversationId> {
        match self.command(c).await? {
            Reply::Conversation(id) => Ok(id),
            r => Err(unexpected(r)),
        }
    }

    async fn commit_reply(&self, c: Command) -> Result<MessageId> {
        match self.command(c).await? {
            Reply::Commit(id) => Ok(id),
            r => Err(unexpected(r)),
        }
    }

    async fn count_reply(&self, c: Command) -> Result<usize> {
        match self.command(c).await? {
            Reply::Count(n) => Ok(n),
            r => Err(unexpected(r)),
        }
    }

    /// Calls `to`: the call's id. Its progress comes as [`Event::CallState`] events, its
    /// figures as [`Event::CallStats`] when it ends. The first device of `to` that a `sip`
    /// channel reaches is called.
    pub async fn place_call(&self, to: &JamiId, options: CallOptions) -> Result<CallId> {
        let t = Ticket(self.shared.next_ticket.fetch_add(1, Ordering::Relaxed));
        let (video, records) = (options.video.is_some(), call::records(&options));
        if let Ok(mut p) = self.shared.pending_calls.lock() {
            p.insert(t, options);
        }
        let (tx, rx) = oneshot::channel();
        if let Ok(mut r) = self.shared.replies.lock() {
            r.insert(t, tx);
        }
        self.shared
            .inputs
            .send(Input::Command(
                t,
                Command::PlaceCall {
                    to: *to,
                    video,
                    records,
                },
            ))
            .map_err(|_| ClientError::Stopped)?;
        let r = rx.await.map_err(|_| ClientError::Stopped)?;
        if let Ok(mut p) = self.shared.pending_calls.lock() {
            p.remove(&t);
        }
        match r? {
            Reply::Call(id) => Ok(id),
            r => Err(unexpected(r)),
        }
    }

    /// Sets the media options of a call (video recording started afresh).
    fn set_call_media(&self, call: &CallId, f: impl FnOnce(&mut CallOptions)) -> Result<()> {
        let mut m = self
            .shared
            .call_media
            .lock()
            .map_err(|_| ClientError::Stopped)?;
        let c = m
            .get_mut(call.as_str())
            .ok_or_else(|| ClientError::NoCall(call.clone()))?;
        f(&mut c.options);
        call::fresh_recording(c.options.video.as_ref());
        Ok(())
    }

    async fn call_command(&self, call: &CallId, c: CallCommand) -> Result<()> {
        self.done(Command::Call(call.clone(), c)).await
    }

    /// Answers incoming call `call` with `options`.
    pub async fn answer_call(&self, call: &CallId, options: CallOptions) -> Result<()> {
        let (video, records) = (options.video.is_some(), call::records(&options));
        self.set_call_media(call, |o| *o = options)?;
        self.call_command(call, CallCommand::Answer { video, records })
            .await
    }

    /// Hangs up (or cancels, or declines) call `call`.
    pub async fn hang_up(&self, call: &CallId) -> Result<()> {
        self.call_command(call, CallCommand::HangUp).await
    }

    /// Holds call `call` (`true`: a re-INVITE marks every stream `sendonly` and we stop
    /// sending) or resumes it (`false`). The media restart once the peer answered and the
    /// new media ICE session is up; a `call_state` (`hold` or `current`) and a `call_media`
    /// event say so.
    pub async fn hold(&self, call: &CallId, hold: bool) -> Result<()> {
        self.call_command(call, CallCommand::Hold(hold)).await
    }

    /// Mutes our audio in call `call` (`true`) or unmutes it. Mute is local, as jamid's:
    /// silence is sent, and the peer is told. A `call_media` event follows.
    pub async fn mute(&self, call: &CallId, muted: bool) -> Result<()> {
        self.call_command(call, CallCommand::Mute(muted)).await
    }

    /// Adds video to call `call` (`Some`: a VP8 stream as `config` says, offered in a
    /// re-INVITE) or drops it (`None`: its section is refused). A `call_media` event says
    /// whether video runs once the peer answered.
    pub async fn set_video(
        &self,
        call: &CallId,
        config: Option<crate::media::VideoConfig>,
    ) -> Result<()> {
        let on = config.is_some();
        self.set_call_media(call, |o| o.video = config)?;
        self.call_command(call, CallCommand::Video(on)).await
    }

    /// Presses `key` (`0`-`9`, `*`, `#`, `A`-`D`) in call `call`: a SIP INFO
    /// `application/dtmf-relay`, as jamid sends and reads them.
    pub async fn send_dtmf(&self, call: &CallId, key: char) -> Result<()> {
        let key = key.to_ascii_uppercase();
        if !call::DTMF_KEYS.contains(key) {
            return Err(ClientError::NotDtmf(key));
        }
        self.call_command(call, CallCommand::Dtmf(key)).await
    }

    /// The calls in progress.
    pub fn calls(&self) -> Vec<CallId> {
        self.shared.lock_core().calls()
    }

    /// How calls answered automatically run (see [`Settings::auto_answer`]).
    pub fn set_call_options(&self, options: CallOptions) {
        let (video, records) = (options.video.is_some(), call::records(&options));
        if let Ok(mut o) = self.shared.call_options.lock() {
            *o = options;
        }
        let t = Ticket(self.shared.next_ticket.fetch_add(1, Ordering::Relaxed));
        let _ = self.shared.inputs.send(Input::Command(
            t,
            Command::AutoAnswerMedia { video, records },
        ));
    }

    /// Our Jami ID.
    pub fn jami_id(&self) -> JamiId {
        self.shared.me
    }

    /// Our device id.
    pub fn device_id(&self) -> DeviceId {
        self.shared.device
    }

    /// The settings now.
    pub fn settings(&self) -> Settings {
        self.shared.lock_core().settings().clone()
    }

    /// Replaces the settings (kept in the data directory).
    pub async fn set_settings(&self, settings: Settings) -> Result<()> {
        self.done(Command::SetSettings(settings)).await
    }

    /// Asks `id` to become a contact: the one-to-one conversation is created (or reused)
    /// and a trust request with our profile goes to each of its devices (again whenever it
    /// comes online, until it confirms).
    pub async fn add_contact(&self, id: &JamiId) -> Result<ConversationId> {
        self.conversation_reply(Command::AddContact(*id)).await
    }

    /// Accepts the trust request of `from`: the contact is confirmed, the confirmation goes
    /// to its devices, and the conversation is cloned from them and joined.
    pub async fn accept_contact(&self, from: &JamiId) -> Result<ConversationId> {
        self.conversation_reply(Command::AcceptContact(*from)).await
    }

    /// Declines the trust request of `from` (it is forgotten).
    pub async fn decline_contact(&self, from: &JamiId) -> Result<()> {
        self.done(Command::DeclineContact(*from)).await
    }

    /// Removes a contact; with `ban`, its channels close and its requests are dropped.
    pub async fn remove_contact(&self, id: &JamiId, ban: bool) -> Result<()> {
        self.done(Command::RemoveContact { id: *id, ban }).await
    }

    /// Lifts a ban on `id`.
    pub async fn unban_contact(&self, id: &JamiId) -> Result<()> {
        self.done(Command::UnbanContact(*id)).await
    }

    /// The contact list, with pending requests we made and presence.
    pub fn contacts(&self) -> Vec<ContactInfo> {
        let core = self.shared.lock_core();
        let now = Instant::now();
        core.contacts()
            .contacts
            .iter()
            .filter_map(|(id, c)| {
                Some(ContactInfo {
                    id: id.parse().ok()?,
                    state: c.state(),
                    conversation: c.conversation_id.parse().ok()?,
                    added: c.added,
                    presence: core.presence(id, now),
                })
            })
            .collect()
    }

    /// Trust requests waiting for an answer, by sender.
    pub fn trust_requests(&self) -> Vec<(JamiId, PendingRequest)> {
        self.shared
            .lock_core()
            .contacts()
            .requests
            .iter()
            .filter_map(|(k, v)| Some((k.parse().ok()?, v.clone())))
            .collect()
    }

    /// The conversations held.
    pub fn conversations(&self) -> Vec<ConversationId> {
        self.shared
            .lock_core()
            .members()
            .conversations()
            .filter_map(|c| c.parse().ok())
            .collect()
    }

    /// The members of a conversation with their roles.
    pub fn members(&self, conversation: &ConversationId) -> Result<Vec<(JamiId, Role)>> {
        let core = self.shared.lock_core();
        if !core.members().holds(conversation.as_str()) {
            return Err(ClientError::UnknownConversation(conversation.clone()));
        }
        Ok(core
            .members()
            .of(conversation.as_str())
            .into_iter()
            .filter_map(|(u, r)| Some((u.parse().ok()?, r)))
            .collect())
    }

    /// Posts `text` to a conversation and tells the members; returns the commit id.
    pub async fn send_message(
        &self,
        conversation: &ConversationId,
        text: &str,
    ) -> Result<MessageId> {
        self.commit_reply(Command::SendMessage {
            conversation: conversation.clone(),
            text: text.to_owned(),
        })
        .await
    }

    /// The last `last` messages of a conversation, oldest first.
    pub fn load(&self, conversation: &ConversationId, last: usize) -> Result<Vec<Event>> {
        let c = git::open(&self.shared.data, conversation.as_str())?;
        let mut ms = c.messages(None, Some(last))?;
        ms.reverse();
        Ok(ms
            .into_iter()
            .map(|m| crate::core::message_event(conversation.as_str(), m))
            .collect())
    }

    /// Tells the members we are typing in a conversation (or stopped); nothing is sent when
    /// typing indicators are off. Returns how many devices were told.
    pub async fn set_typing(&self, conversation: &ConversationId, on: bool) -> Result<usize> {
        self.count_reply(Command::SetTyping {
            conversation: conversation.clone(),
            on,
        })
        .await
    }

    /// Tells the members we displayed `message`; nothing is sent when read receipts are
    /// off. Returns how many devices were told.
    pub async fn set_displayed(
        &self,
        conversation: &ConversationId,
        message: &MessageId,
    ) -> Result<usize> {
        self.count_reply(Command::SetDisplayed {
            conversation: conversation.clone(),
            message: message.clone(),
        })
        .await
    }

    /// Creates a group conversation (mode 2, "invites only").
    pub async fn create_group(&self) -> Result<ConversationId> {
        self.conversation_reply(Command::CreateGroup).await
    }

    /// Invites `id` to a group conversation: the `add` commit, then the invitation.
    pub async fn invite(&self, conversation: &ConversationId, id: &JamiId) -> Result<MessageId> {
        self.commit_reply(Command::Invite {
            conversation: conversation.clone(),
            id: *id,
        })
        .await
    }

    /// Accepts an invitation to a group conversation: cloned from the inviter and joined.
    pub async fn accept_conversation(&self, conversation: &ConversationId) -> Result<()> {
        self.done(Command::AcceptConversation(conversation.clone()))
            .await
    }

    /// Leaves a conversation (the `remove` commit about ourselves, then the others are
    /// told).
    pub async fn leave(&self, conversation: &ConversationId) -> Result<()> {
        self.done(Command::Leave(conversation.clone())).await
    }

    /// Removes `id` from a conversation we administer (a vote, then the ban when the votes
    /// are enough, as jamid does).
    pub async fn remove_member(&self, conversation: &ConversationId, id: &JamiId) -> Result<()> {
        self.done(Command::RemoveMember {
            conversation: conversation.clone(),
            id: *id,
        })
        .await
    }
}

fn unexpected(r: Reply) -> ClientError {
    ClientError::Io(std::io::Error::other(format!("unexpected reply {r:?}")))
}

impl Shared {
    fn lock_core(&self) -> std::sync::MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn input(&self, i: Input) {
        let _ = self.inputs.send(i);
    }

    fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        let h = tokio::spawn(f);
        if let Ok(mut t) = self.tasks.lock() {
            t.retain(|h| !h.is_finished());
            t.push(h);
        }
    }

    /// Runs what the core asks for; its events and its next timeout.
    fn drain(self: &Arc<Self>) -> (Vec<Event>, Option<Instant>) {
        let (ios, events, timeout) = {
            let mut core = self.lock_core();
            let mut ios = Vec::new();
            while let Some(io) = core.poll_io() {
                ios.push(io);
            }
            let mut events = Vec::new();
            while let Some(e) = core.poll_event() {
                events.push(e);
            }
            (ios, events, core.poll_timeout())
        };
        for io in ios {
            self.execute(io);
        }
        (events, timeout)
    }

    /// A channel is up (a peer's, or one we opened): held for the core.
    fn channel_up(self: &Arc<Self>, device: DeviceId, account: Option<JamiId>, ch: Channel) {
        let id = ChannelId(self.next_channel.fetch_add(1, Ordering::Relaxed));
        let name = ch.name.clone();
        tracing::debug!("channel {name:?} of {device} up as {id:?}");
        let up = Input::ChannelUp {
            channel: id,
            device,
            account,
            name: name.clone(),
        };
        if name == "sip" {
            // The reader brings the core this channel's news in order: up, data, closed.
            return self.hold_sip(id, ch, up);
        }
        if let Ok(mut c) = self.channels.lock() {
            c.insert(id, Held::Git(ch));
        }
        self.input(up);
    }

    /// Holds a `sip` channel: its writer, and its reader, which hands the core `up`, then
    /// what the peer sends, then the close, through the bounded `sip` queue.
    fn hold_sip(self: &Arc<Self>, id: ChannelId, mut ch: Channel, up: Input) {
        let sender = ch.sender();
        let (writer, mut queue) = mpsc::unbounded_channel::<Vec<u8>>();
        let tx = sender.clone();
        tokio::spawn(async move {
            while let Some(data) = queue.recv().await {
                if let Err(e) = tx.send(&data).await {
                    tracing::info!("sip channel: {e}");
                    return;
                }
            }
        });
        let s = Arc::downgrade(self);
        let queue = self.sip_inputs.clone();
        let (held, go) = oneshot::channel::<()>();
        let reader = tokio::spawn(async move {
            // Held first: what the core answers to `up` finds the channel's writer.
            if go.await.is_err() || queue.send(up).await.is_err() {
                return;
            }
            while let Some(data) = ch.recv().await {
                tracing::debug!("sip: {} bytes in on {id:?}", data.len());
                if queue
                    .send(Input::ChannelData { channel: id, data })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if let Some(s) = s.upgrade() {
                if let Ok(mut c) = s.channels.lock() {
                    c.remove(&id);
                }
                let _ = queue.send(Input::ChannelClosed(id)).await;
            }
        });
        if let Ok(mut c) = self.channels.lock() {
            c.insert(id, Held::Sip { writer, reader });
        }
        let _ = held.send(());
    }

    /// Starts a call's media on a gathered session; their news go to the core.
    fn start_media(
        self: &Arc<Self>,
        call: CallId,
        gather: GatherId,
        negotiated: &pamoja_media::negotiate::Negotiated,
        hold: bool,
        video: bool,
    ) {
        let session = self.gathers.lock().ok().and_then(|mut g| g.remove(&gather));
        let (news, mut news_rx) = mpsc::unbounded_channel();
        let s = self.clone();
        let c = call.clone();
        tokio::spawn(async move {
            while let Some(n) = news_rx.recv().await {
                s.input(Input::CallMedia {
                    call: c.clone(),
                    news: n,
                });
            }
        });
        let Some(session) = session else {
            let _ = news.send(MediaNews::Failed("no media session".into()));
            return;
        };
        let Ok(mut m) = self.call_media.lock() else {
            return;
        };
        let Some(cm) = m.get_mut(call.as_str()) else {
            let _ = news.send(MediaNews::Failed("no such call".into()));
            return;
        };
        let previous = cm.media.take();
        match call::start(
            session,
            negotiated,
            &cm.options,
            hold,
            video,
            cm.muted.subscribe(),
            news.clone(),
            previous,
        ) {
            Ok(media) => cm.media = Some(media),
            Err(e) => {
                let _ = news.send(MediaNews::Failed(e));
            }
        }
    }

    fn resolve(&self, t: Ticket, r: Result<Reply>) {
        if let Some(tx) = self.replies.lock().ok().and_then(|mut m| m.remove(&t)) {
            let _ = tx.send(r);
        }
    }

    /// Runs one I/O request; anything that waits runs in a task of its own.
    fn execute(self: &Arc<Self>, io: Io) {
        tracing::trace!("io {}", short(&io));
        match io {
            Io::Reply(t, r) => self.resolve(t, r),
            Io::Announce => {
                let s = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = dht::announce(&s).await {
                        tracing::warn!("announcement not put: {e}");
                    }
                });
            }
            Io::LookupDevices(account) => {
                let s = self.clone();
                tokio::spawn(async move {
                    let chains = dht::devices_of(&s, &account).await;
                    s.input(Input::Devices { account, chains });
                });
            }
            Io::LookupAnnouncements(account) => {
                let s = self.clone();
                tokio::spawn(async move { dht::announcements(&s, &account).await });
            }
            Io::Listen(account) => {
                let s = self.clone();
                self.spawn(async move { dht::listen(&s, &account).await });
            }
            Io::PutTrust { device, request } => {
                let s = self.clone();
                tokio::spawn(async move { dht::put_trust(&s, &device, &request).await });
            }
            Io::PutInbox {
                device,
                id,
                mime,
                body,
            } => {
                let s = self.clone();
                tokio::spawn(async move { dht::put_inbox(&s, &device, id, &mime, &body).await });
            }
            Io::OpenSip { chain } => {
                let s = self.clone();
                tokio::spawn(async move {
                    let Some(device) = crate::core::device_of(&chain) else {
                        return;
                    };
                    let account = chain.get(1).map(|c| c.jami_id());
                    match s.dialer.channel(&chain, "sip", "").await {
                        Ok(ch) => s.channel_up(device, account, ch),
                        Err(e) => s.input(Input::ChannelFailed {
                            device,
                            reason: e.to_string(),
                        }),
                    }
                });
            }
            Io::Send { channel, data } => {
                tracing::debug!("sip: {} bytes out on {channel:?}", data.len());
                if let Ok(c) = self.channels.lock() {
                    if let Some(Held::Sip { writer, .. }) = c.get(&channel) {
                        let _ = writer.send(data);
                    }
                }
            }
            Io::Ban { account, banned } => self.dialer.set_banned(account, banned),
            Io::Close(channel) => {
                let held = self
                    .channels
                    .lock()
                    .ok()
                    .and_then(|mut c| c.remove(&channel));
                match held {
                    Some(Held::Sip { reader, .. }) => {
                        reader.abort();
                        self.input(Input::ChannelClosed(channel));
                    }
                    Some(Held::Git(ch)) => {
                        tokio::spawn(ch.close());
                    }
                    None => {}
                }
            }
            Io::Serve {
                channel,
                conversation,
                device,
                account,
            } => {
                let held = self
                    .channels
                    .lock()
                    .ok()
                    .and_then(|mut c| c.remove(&channel));
                let Some(Held::Git(ch)) = held else { return };
                tracing::debug!("serving {conversation} to {device} on {channel:?}");
                let s = self.clone();
                tokio::spawn(async move {
                    let dir = git::conv_dir(&s.data, conversation.as_str());
                    let inputs = s.inputs.clone();
                    let conv = conversation.clone();
                    let served = move |_| {
                        let _ = inputs.send(Input::Served {
                            conversation: conv.clone(),
                            device,
                            account,
                        });
                    };
                    // libgit2 builds packs on the blocking pool, a few serves at once.
                    let Ok(_permit) = s.serves.clone().acquire_owned().await else {
                        return;
                    };
                    let handle = tokio::runtime::Handle::current();
                    let stream = ch.into_stream();
                    let r = tokio::task::spawn_blocking(move || {
                        handle.block_on(pamoja_swarm::git::serve_with(&dir, stream, served))
                    })
                    .await;
                    match r {
                        Ok(Err(e)) => tracing::info!("serving {conversation}: {e}"),
                        Err(e) => tracing::warn!("serving {conversation}: {e}"),
                        Ok(Ok(_)) => {}
                    }
                });
            }
            Io::Git { conversation, op } => {
                let s = self.clone();
                tokio::spawn(async move {
                    let result = git::run(s.clone(), conversation.clone(), op.clone()).await;
                    s.input(Input::Git {
                        conversation,
                        op,
                        result,
                    });
                });
            }
            Io::Persist { file, data, extra } => {
                let written = match file {
                    StateFile::Contacts => {
                        write_atomic(&self.data.join(Contacts::CONTACTS_FILE), &data).and_then(
                            |_| {
                                write_atomic(
                                    &self.data.join(Contacts::REQUESTS_FILE),
                                    &extra.unwrap_or_default(),
                                )
                            },
                        )
                    }
                    StateFile::Settings => write_atomic(&self.data.join("settings.json"), &data),
                    StateFile::ConvRequests => {
                        write_atomic(&self.data.join("convRequests.json"), &data)
                    }
                };
                if let Err(e) = written {
                    tracing::warn!("{file:?} not saved: {e}");
                }
            }
            Io::GatherMedia {
                gather,
                components,
                controlling,
            } => {
                let s = self.clone();
                tokio::spawn(async move {
                    let local = match call::gather(s.ice_addr, components, controlling).await {
                        Ok((session, local)) => {
                            if let Ok(mut g) = s.gathers.lock() {
                                g.insert(gather, session);
                            }
                            Some(local)
                        }
                        Err(e) => {
                            tracing::warn!("no media session: {e}");
                            None
                        }
                    };
                    s.input(Input::MediaGathered { gather, local });
                });
            }
            Io::DropMedia(g) => {
                if let Ok(mut gs) = self.gathers.lock() {
                    gs.remove(&g);
                }
            }
            Io::StartMedia {
                call,
                gather,
                negotiated,
                hold,
                video,
            } => self.start_media(call, gather, &negotiated, hold, video),
            Io::StopMedia(call) => {
                let media = self
                    .call_media
                    .lock()
                    .ok()
                    .and_then(|mut m| m.get_mut(call.as_str()).and_then(|c| c.media.take()));
                let s = self.clone();
                tokio::spawn(async move {
                    let stats = match media {
                        Some(m) => call::stop(&call, m).await,
                        None => None,
                    };
                    s.input(Input::CallReport { call, stats });
                });
            }
            Io::KeyFrame(call) => {
                if let Ok(m) = self.call_media.lock() {
                    if let Some(k) = m
                        .get(call.as_str())
                        .and_then(|c| c.media.as_ref())
                        .and_then(|m| m.key_frames.as_ref())
                    {
                        let _ = k.send(());
                    }
                }
            }
            Io::SetMuted { call, muted } => {
                if let Ok(m) = self.call_media.lock() {
                    if let Some(c) = m.get(call.as_str()) {
                        c.muted.send_replace(muted);
                    }
                }
            }
            Io::CallStarted {
                call,
                peer: _,
                auto_answer,
                ticket,
            } => {
                let placed = ticket.and_then(|t| {
                    self.pending_calls
                        .lock()
                        .ok()
                        .and_then(|mut p| p.remove(&t))
                });
                let options = match placed {
                    Some(o) => o,
                    None if auto_answer => self
                        .call_options
                        .lock()
                        .map(|o| o.clone())
                        .unwrap_or_default(),
                    None => CallOptions::default(),
                };
                call::fresh_recording(options.video.as_ref());
                if let Ok(mut m) = self.call_media.lock() {
                    m.insert(
                        call.to_string(),
                        CallMedia {
                            options,
                            muted: watch::channel(false).0,
                            media: None,
                        },
                    );
                }
            }
            Io::CallEnded(call) => {
                if let Ok(mut m) = self.call_media.lock() {
                    m.remove(call.as_str());
                }
            }
        }
    }
}

/// The start of a value's debug form, for trace logs.
fn short(v: &impl std::fmt::Debug) -> String {
    let mut s = format!("{v:?}");
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}
