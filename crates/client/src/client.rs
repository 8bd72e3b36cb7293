//! The running account: DHT, links, inbox, conversations, and the events they bring.
//!
//! [`Client::start`] opens (or creates) the data directory, joins the DHT, announces the
//! device, and then:
//!
//! - listens at the device inbox for trust requests (and their confirmations) and for
//!   messages jamid sends there when it has no link;
//! - accepts links; serves `git://<our device>/<conversation>` channels with the
//!   conversation's repository, and reads SIP `MESSAGE`s on `sip` channels (new-commit
//!   notices, typing, read receipts, invitations);
//! - fetches from the device a notice names, validates what came, merges it, and reports
//!   each new message; a refused history leaves ours as it was and is reported;
//! - watches the announcements of contacts and members: when one comes online, a `sip`
//!   channel is opened to it and every conversation shared with it is fetched both ways
//!   (each side fetches when a `sip` channel comes up, as jamid does), so a member offline
//!   at posting time catches up from any other member's device.
//!
//! Data directory layout: `archive.gz` (the account), `contacts` and
//! `incomingTrustRequests` (jamid's formats), `settings.json`, `convRequests.json`, `seen`
//! (message ids), `conversations/<id>/` (the git repositories).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pamoja_channel::inbox::{ImMessage, Inbox, InboxItem, inbox_key};
use pamoja_channel::link::{
    Channel, ChannelSender, Dialer, Incoming, Manager, Options, Rendezvous,
};
use pamoja_channel::seen::{self, Seen};
use pamoja_channel::sip::{self, Route, SipMessage, SipReader, StartLine};
use pamoja_channel::tls::Identity;
use pamoja_dht::runner::ListenEvent;
use pamoja_dht::securedht::SecureDht;
use pamoja_dht::{Config as DhtConfig, InfoHash, Runner, Value, secure};
use pamoja_identity::announce::DeviceAnnouncement;
use pamoja_identity::{Account, Certificate, DeviceId, PrivateKey};
use pamoja_swarm::{Conversation, Mode, Pulled, Role, Signer};
use serde_json::{Value as Json, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

use crate::call::{self, CallOptions};
use crate::contacts::{ContactState, Contacts, PendingRequest, write_atomic};
use crate::event::Event;
use crate::instant::{self, Instant as Im};
use crate::presence::{Presence, Status};
use crate::trust::{self, TrustRequest};

/// How often our device announcement is put again (announcements live ten minutes).
const ANNOUNCE_EVERY: Duration = Duration::from_secs(240);
/// How often contacts' announcements are looked up again, for presence.
const PRESENCE_EVERY: Duration = Duration::from_secs(60);
/// How often notices that could not be delivered are tried again.
const RETRY_EVERY: Duration = Duration::from_secs(15);
/// Longest one delivery attempt may take.
const DELIVER_LIMIT: Duration = Duration::from_secs(90);
/// How long a device lookup waits for announcements.
const LOOKUP_WAIT: Duration = Duration::from_secs(8);
/// How long after serving a pack we fetch back from the peer.
const FETCH_BACK_AFTER: Duration = Duration::from_secs(1);
/// Longest a fetch may take (a first clone has no limit).
const FETCH_LIMIT: Duration = Duration::from_secs(300);
/// Bytes between two progress events of a transfer.
const PROGRESS_STEP: u64 = 1 << 20;

/// What can go wrong with a command.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Files, sockets.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A conversation repository.
    #[error("conversation: {0}")]
    Swarm(#[from] pamoja_swarm::Error),
    /// The account archive.
    #[error("account: {0}")]
    Identity(#[from] pamoja_identity::Error),
    /// Bad input: unknown conversation, malformed id...
    #[error("{0}")]
    Invalid(String),
    /// The DHT had no bootstrap node answering.
    #[error("no DHT node answered at {0}")]
    NoBootstrap(SocketAddr),
}

type Result<T> = std::result::Result<T, ClientError>;

/// What the user may switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The name in our profile (sent with trust requests).
    pub display_name: String,
    /// Send read receipts, and report those received.
    pub read_receipts: bool,
    /// Send typing indicators, and report those received.
    pub typing: bool,
    /// Answer incoming calls at once (with the options of [`Client::set_call_options`]).
    pub auto_answer: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            display_name: String::new(),
            read_receipts: true,
            typing: true,
            auto_answer: false,
        }
    }
}

impl Settings {
    fn to_json(&self) -> Json {
        json!({"display_name": self.display_name, "read_receipts": self.read_receipts,
            "typing": self.typing, "auto_answer": self.auto_answer})
    }

    fn from_json(j: &Json) -> Self {
        let d = Self::default();
        Self {
            display_name: j["display_name"].as_str().unwrap_or_default().to_owned(),
            read_receipts: j["read_receipts"].as_bool().unwrap_or(d.read_receipts),
            typing: j["typing"].as_bool().unwrap_or(d.typing),
            auto_answer: j["auto_answer"].as_bool().unwrap_or(d.auto_answer),
        }
    }
}

/// Where and how an account runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The data directory (created when missing).
    pub data_dir: PathBuf,
    /// DHT nodes to join.
    pub bootstrap: Vec<SocketAddr>,
    /// The address for ICE host candidates (the one peers reach us at).
    pub ice_addr: IpAddr,
}

/// A contact as [`Client::contacts`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactInfo {
    /// Jami ID.
    pub id: String,
    /// Pending, confirmed, banned...
    pub state: ContactState,
    /// The one-to-one conversation.
    pub conversation: String,
    /// When added, Unix seconds.
    pub added: i64,
    /// Presence now.
    pub presence: Status,
}

/// The stream of events of a running account.
pub struct Events(mpsc::UnboundedReceiver<Event>);

impl Events {
    /// The next event; `None` once the account stopped.
    pub async fn next(&mut self) -> Option<Event> {
        self.0.recv().await
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn is_hex_id(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A conversation invitation waiting for an answer.
#[derive(Debug, Clone)]
struct ConvRequest {
    from: String,
    metadatas: serde_json::Map<String, Json>,
    received: i64,
}

#[derive(Default)]
struct State {
    contacts: Contacts,
    settings: Settings,
    presence: Presence,
    conv_requests: BTreeMap<String, ConvRequest>,
    /// Device chains found per account.
    devices: HashMap<String, Vec<Vec<Certificate>>>,
    /// Accounts whose announcements we listen to.
    watched: HashSet<String>,
    /// Notices that could not be delivered, per (account, conversation), sent again when the
    /// account shows up.
    undelivered: BTreeMap<(String, String), Im>,
}

struct Inner {
    account: Account,
    signer: Signer,
    me: String,
    device: String,
    data: PathBuf,
    runner: Arc<Runner>,
    dht: Arc<SecureDht>,
    dialer: Dialer,
    ice_addr: IpAddr,
    state: Mutex<State>,
    events: mpsc::UnboundedSender<Event>,
    seen: Arc<Mutex<Seen>>,
    /// Open `sip` channels: device -> (account, sender).
    sips: Mutex<HashMap<DeviceId, (String, ChannelSender)>>,
    /// Calls in progress: Call-ID -> the call's task.
    calls: Mutex<HashMap<String, mpsc::UnboundedSender<call::Command>>>,
    /// How calls are answered (auto-answer included).
    call_options: Mutex<CallOptions>,
    /// One fetch at a time per conversation.
    conv_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// A running account. Methods are the commands; [`Events`] brings what happens. Dropping
/// the client stops every task it started.
pub struct Client {
    inner: Arc<Inner>,
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Ok(t) = self.inner.tasks.lock() {
            for h in t.iter() {
                h.abort();
            }
        }
    }
}

fn accept_channel_name(name: &str) -> bool {
    name == "sip" || name.starts_with("git://")
}

impl Client {
    /// Starts `account` with the data directory and network of `config`. The archive is
    /// kept in the data directory (`archive.gz`) when it is not there yet.
    pub async fn start(account: Account, config: Config) -> Result<(Self, Events)> {
        let data = config.data_dir.clone();
        std::fs::create_dir_all(data.join("conversations"))?;
        let device_key = account
            .device()
            .ok_or_else(|| ClientError::Invalid("the archive holds no device key".into()))?;
        let device_cert = device_key.cert.clone();
        let device_pkcs8 = device_key.key.to_pkcs8_der().to_vec();
        let signer = Signer::of(&account, "pamoja")?;
        let me = account.jami_id().to_string();
        let device = device_cert.public_key().device_id().to_string();
        let mut chain = vec![device_cert.clone(), account.account_cert().clone()];
        chain.extend(account.ca_cert().cloned());
        let key = || PrivateKey::from_pkcs8_der(&device_pkcs8);

        let contacts = Contacts::load(&data)?;
        let settings = match std::fs::read(data.join("settings.json")) {
            Ok(b) => Settings::from_json(&serde_json::from_slice(&b).unwrap_or(Json::Null)),
            Err(_) => Settings::default(),
        };
        let conv_requests = read_conv_requests(&data);
        let seen = Arc::new(Mutex::new(Seen::open(
            &data.join("seen"),
            seen::DEFAULT_CAPACITY,
        )?));

        let first = *config
            .bootstrap
            .first()
            .ok_or_else(|| ClientError::Invalid("no bootstrap node given".into()))?;
        let any = if first.is_ipv4() {
            IpAddr::from([0, 0, 0, 0])
        } else {
            IpAddr::from([0u16; 8])
        };
        let runner = Runner::bind(SocketAddr::new(any, 0), DhtConfig::default()).await?;
        for b in &config.bootstrap {
            runner.bootstrap(*b);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let s = runner.stats().await?;
            if s.good4 + s.good6 > 0 {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ClientError::NoBootstrap(first));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let runner = Arc::new(runner);
        let dht = Arc::new(SecureDht::new(runner.clone(), key()?, chain.clone()));
        let mut opts = Options::new(vec![SocketAddr::new(config.ice_addr, 0)]);
        opts.rendezvous = Rendezvous::Both;
        opts.seen = Some(seen.clone());
        opts.accept = accept_channel_name;
        opts.banned_accounts = contacts
            .contacts
            .iter()
            .filter(|(_, c)| c.is_banned())
            .filter_map(|(id, _)| id.parse().ok())
            .collect();
        let mut manager =
            Manager::start(dht.clone(), Identity { key: key()?, chain }, opts).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            signer,
            me,
            device,
            data,
            runner,
            dht: dht.clone(),
            dialer: manager.dialer(),
            ice_addr: config.ice_addr,
            state: Mutex::new(State {
                contacts,
                settings,
                conv_requests,
                ..State::default()
            }),
            events: tx,
            seen,
            sips: Mutex::default(),
            calls: Mutex::default(),
            call_options: Mutex::default(),
            conv_locks: Mutex::default(),
            tasks: Mutex::default(),
            account,
        });
        inner.announce().await?;
        let mut inbox = Inbox::start(dht, device_cert.public_key().clone()).await?;

        let mut tasks = Vec::new();
        let i = inner.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(item) = inbox.next_item().await {
                i.clone().on_inbox(item).await;
            }
        }));
        let i = inner.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(incoming) = manager.next_incoming().await {
                match incoming {
                    Incoming::Link(mut link) => {
                        let i = i.clone();
                        let device = *link.device();
                        let account = link.account().map(|a| a.to_string()).unwrap_or_default();
                        tokio::spawn(async move {
                            while let Some(pamoja_channel::link::LinkEvent::Channel(ch)) =
                                link.next_event().await
                            {
                                i.clone().on_channel(device, account.clone(), ch);
                            }
                        });
                    }
                    Incoming::Channel(device, ch) => {
                        let account = i.account_of_device(&device);
                        i.clone().on_channel(device, account, ch);
                    }
                }
            }
        }));
        let i = inner.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(ANNOUNCE_EVERY).await;
                if let Err(e) = i.announce().await {
                    tracing::warn!("announcement not put: {e}");
                }
            }
        }));
        let i = inner.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                i.clone().refresh_presence().await;
                tokio::time::sleep(PRESENCE_EVERY).await;
            }
        }));
        let i = inner.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(RETRY_EVERY).await;
                i.retry_undelivered().await;
            }
        }));
        if let Ok(mut t) = inner.tasks.lock() {
            t.extend(tasks);
        }
        // Everyone we share something with: watch them, and catch up with those online.
        let peers = inner.peers();
        for p in peers {
            inner.clone().watch(p);
        }
        Ok((Self { inner }, Events(rx)))
    }

    /// Calls `to` (a Jami ID): the call's id. Its progress comes as
    /// [`Event::CallState`] events, its figures as [`Event::CallStats`] when it ends. The
    /// first device of `to` that a `sip` channel reaches is called.
    pub async fn place_call(&self, to: &str, options: CallOptions) -> Result<String> {
        let i = &self.inner;
        if !is_hex_id(to, 40) {
            return Err(ClientError::Invalid(format!("not a Jami ID: {to:?}")));
        }
        let mut last = String::from("no device found");
        for chain in i.devices_of(to, LOOKUP_WAIT).await {
            let device = chain[0].public_key().device_id();
            let open = i
                .sips
                .lock()
                .ok()
                .and_then(|s| s.get(&device).map(|(_, t)| !t.is_closed()))
                .unwrap_or(false);
            let tx = match i.sip_to(&chain, to).await {
                Ok(tx) => tx,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let done = i.call_done();
            let (id, sender) =
                call::place(i.call_context(), to.to_owned(), tx, !open, options, done)
                    .await
                    .map_err(ClientError::Invalid)?;
            if let Ok(mut c) = i.calls.lock() {
                c.insert(id.clone(), sender);
            }
            return Ok(id);
        }
        Err(ClientError::Invalid(format!("cannot call {to}: {last}")))
    }

    /// Answers incoming call `call` with `options`.
    pub fn answer_call(&self, call: &str, options: CallOptions) -> Result<()> {
        self.call_command(call, call::Command::Answer(options))
    }

    /// Hangs up (or cancels, or declines) call `call`.
    pub fn hang_up(&self, call: &str) -> Result<()> {
        self.call_command(call, call::Command::HangUp)
    }

    /// Holds call `call` (`true`: a re-INVITE marks every stream `sendonly` and we stop
    /// sending) or resumes it (`false`). The media restart once the peer answered and the
    /// new media ICE session is up; a `call_state` (`hold` or `current`) and a `call_media`
    /// event say so.
    pub fn hold(&self, call: &str, hold: bool) -> Result<()> {
        self.call_command(call, call::Command::Hold(hold))
    }

    /// Mutes our audio in call `call` (`true`) or unmutes it. Mute is local, as jamid's:
    /// silence is sent and the peer is not told. A `call_media` event follows.
    pub fn mute(&self, call: &str, muted: bool) -> Result<()> {
        self.call_command(call, call::Command::Mute(muted))
    }

    /// Adds video to call `call` (`Some`: a VP8 stream as `config` says, offered in a
    /// re-INVITE) or drops it (`None`: its section is refused). A `call_media` event says
    /// whether video runs once the peer answered.
    pub fn set_video(&self, call: &str, config: Option<crate::media::VideoConfig>) -> Result<()> {
        self.call_command(call, call::Command::Video(config))
    }

    /// Presses `key` (`0`-`9`, `*`, `#`, `A`-`D`) in call `call`: a SIP INFO
    /// `application/dtmf-relay`, as jamid sends and reads them.
    pub fn send_dtmf(&self, call: &str, key: char) -> Result<()> {
        let key = key.to_ascii_uppercase();
        if !call::DTMF_KEYS.contains(key) {
            return Err(ClientError::Invalid(format!("{key:?} is not a DTMF key")));
        }
        self.call_command(call, call::Command::Dtmf(key))
    }

    /// The calls in progress.
    pub fn calls(&self) -> Vec<String> {
        self.inner
            .calls
            .lock()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// How calls answered automatically run (see [`Settings::auto_answer`]).
    pub fn set_call_options(&self, options: CallOptions) {
        if let Ok(mut o) = self.inner.call_options.lock() {
            *o = options;
        }
    }

    fn call_command(&self, call: &str, c: call::Command) -> Result<()> {
        let sender = self
            .inner
            .calls
            .lock()
            .ok()
            .and_then(|m| m.get(call).cloned())
            .ok_or_else(|| ClientError::Invalid(format!("no call {call:?}")))?;
        sender
            .send(c)
            .map_err(|_| ClientError::Invalid(format!("call {call:?} is over")))
    }

    /// Our Jami ID.
    pub fn jami_id(&self) -> &str {
        &self.inner.me
    }

    /// Our device id (64 hex digits).
    pub fn device_id(&self) -> &str {
        &self.inner.device
    }

    /// The settings now.
    pub fn settings(&self) -> Settings {
        self.inner.state().settings.clone()
    }

    /// Replaces the settings (kept in the data directory).
    pub fn set_settings(&self, settings: Settings) -> Result<()> {
        write_atomic(
            &self.inner.data.join("settings.json"),
            settings.to_json().to_string().as_bytes(),
        )?;
        self.inner.state().settings = settings;
        Ok(())
    }

    /// Asks `id` to become a contact: the one-to-one conversation is created (or reused) and a
    /// trust request with our profile goes to each of its devices (again whenever it comes
    /// online, until it confirms). Returns the conversation id.
    pub async fn add_contact(&self, id: &str) -> Result<String> {
        let inner = &self.inner;
        if !is_hex_id(id, 40) || id == inner.me {
            return Err(ClientError::Invalid(format!("not a contact id: {id}")));
        }
        let existing = inner
            .state()
            .contacts
            .active(id)
            .map(|c| c.conversation_id.clone())
            .filter(|c| inner.conv_dir(c).exists());
        let conversation = match existing {
            Some(c) => c,
            None => inner.create_conversation(Mode::OneToOne, Some(id))?,
        };
        {
            let mut st = inner.state();
            st.contacts.add(id, &conversation, unix_now());
            st.contacts.save(&inner.data)?;
        }
        inner.emit(Event::ContactAdded {
            id: id.into(),
            confirmed: false,
            conversation: conversation.clone(),
        });
        inner.emit(Event::ConversationReady {
            conversation: conversation.clone(),
        });
        inner.clone().watch(id.to_owned());
        let i = inner.clone();
        let to = id.to_owned();
        let conv = conversation.clone();
        tokio::spawn(async move { i.send_trust_request(&to, &conv).await });
        Ok(conversation)
    }

    /// Accepts the trust request of `from`: the contact is confirmed, the confirmation goes
    /// to its devices, and the conversation is cloned from them and joined. Returns the
    /// conversation id.
    pub async fn accept_contact(&self, from: &str) -> Result<String> {
        let inner = &self.inner;
        let req = inner
            .state()
            .contacts
            .requests
            .get(from)
            .cloned()
            .ok_or_else(|| ClientError::Invalid(format!("no trust request from {from}")))?;
        let conversation = req.conversation_id.clone();
        {
            let mut st = inner.state();
            st.contacts.confirm(from, &conversation, unix_now());
            st.contacts.save(&inner.data)?;
        }
        inner.emit(Event::ContactAdded {
            id: from.into(),
            confirmed: true,
            conversation: conversation.clone(),
        });
        inner.clone().watch(from.to_owned());
        let i = inner.clone();
        let peer = from.to_owned();
        let conv = conversation.clone();
        tokio::spawn(async move {
            for chain in i.devices_of(&peer, LOOKUP_WAIT).await {
                if let Some(dev) = chain.first().map(|c| c.public_key().clone()) {
                    i.put_trust(&dev, &TrustRequest::confirmation(&conv)).await;
                }
            }
            i.clone_from_account(&conv, &peer).await;
        });
        Ok(conversation)
    }

    /// Declines the trust request of `from` (it is forgotten).
    pub fn decline_contact(&self, from: &str) -> Result<()> {
        let mut st = self.inner.state();
        if st.contacts.requests.remove(from).is_none() {
            return Err(ClientError::Invalid(format!(
                "no trust request from {from}"
            )));
        }
        st.contacts.save(&self.inner.data)?;
        Ok(())
    }

    /// Removes a contact; with `ban`, its devices are refused from now on.
    pub fn remove_contact(&self, id: &str, ban: bool) -> Result<()> {
        {
            let mut st = self.inner.state();
            st.contacts.remove(id, ban, unix_now());
            st.contacts.save(&self.inner.data)?;
        }
        self.inner.emit(Event::ContactRemoved {
            id: id.into(),
            banned: ban,
        });
        Ok(())
    }

    /// Lifts a ban on `id`.
    pub fn unban_contact(&self, id: &str) -> Result<()> {
        let mut st = self.inner.state();
        st.contacts.unban(id, unix_now());
        st.contacts.save(&self.inner.data)?;
        Ok(())
    }

    /// The contact list, with pending requests we made and presence.
    pub fn contacts(&self) -> Vec<ContactInfo> {
        let st = self.inner.state();
        let now = Instant::now();
        st.contacts
            .contacts
            .iter()
            .map(|(id, c)| ContactInfo {
                id: id.clone(),
                state: c.state(),
                conversation: c.conversation_id.clone(),
                added: c.added,
                presence: st.presence.status(id, now),
            })
            .collect()
    }

    /// Trust requests waiting for an answer: (sender, conversation, received).
    pub fn trust_requests(&self) -> Vec<(String, PendingRequest)> {
        let st = self.inner.state();
        st.contacts
            .requests
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The conversations held (their ids).
    pub fn conversations(&self) -> Vec<String> {
        self.inner.conversation_ids()
    }

    /// The members of a conversation with their roles.
    pub fn members(&self, conversation: &str) -> Result<Vec<(String, Role)>> {
        Ok(self.inner.open(conversation)?.members()?)
    }

    /// Posts `text` to a conversation and tells the members; returns the commit id.
    pub async fn send_message(&self, conversation: &str, text: &str) -> Result<String> {
        let inner = &self.inner;
        let lock = inner.conv_lock(conversation);
        let _g = lock.lock().await;
        let c = inner.open(conversation)?;
        let id = c.post(&inner.signer, text)?;
        let m = c.message(id)?;
        drop(c);
        inner.emit_message(conversation, m);
        inner.clone().notify(conversation, &id.to_string());
        Ok(id.to_string())
    }

    /// The last `last` messages of a conversation, oldest first.
    pub fn load(&self, conversation: &str, last: usize) -> Result<Vec<Event>> {
        let c = self.inner.open(conversation)?;
        let mut ms = c.messages(None, Some(last))?;
        ms.reverse();
        Ok(ms
            .into_iter()
            .map(|m| message_event(conversation, m))
            .collect())
    }

    /// Tells the members we are typing in a conversation (or stopped); nothing is sent when
    /// typing indicators are off.
    pub async fn set_typing(&self, conversation: &str, on: bool) -> Result<usize> {
        if !self.inner.state().settings.typing {
            return Ok(0);
        }
        self.inner.open(conversation)?;
        Ok(self
            .inner
            .tell_connected(
                conversation,
                Im::Composing {
                    conversation: conversation.into(),
                    active: on,
                },
            )
            .await)
    }

    /// Tells the members we displayed `message`; nothing is sent when read receipts are off.
    pub async fn set_displayed(&self, conversation: &str, message: &str) -> Result<usize> {
        if !self.inner.state().settings.read_receipts {
            return Ok(0);
        }
        self.inner.open(conversation)?;
        Ok(self
            .inner
            .tell_connected(
                conversation,
                Im::Displayed {
                    conversation: conversation.into(),
                    message: message.into(),
                },
            )
            .await)
    }

    /// Creates a group conversation (mode 2, "invites only"); returns its id.
    pub fn create_group(&self) -> Result<String> {
        let c = self.inner.create_conversation(Mode::InvitesOnly, None)?;
        self.inner.emit(Event::ConversationReady {
            conversation: c.clone(),
        });
        Ok(c)
    }

    /// Invites `id` to a group conversation: the `add` commit, then the invitation.
    pub async fn invite(&self, conversation: &str, id: &str) -> Result<String> {
        let inner = &self.inner;
        if !is_hex_id(id, 40) {
            return Err(ClientError::Invalid(format!("not an account id: {id}")));
        }
        let commit = {
            let lock = inner.conv_lock(conversation);
            let _g = lock.lock().await;
            let c = inner.open(conversation)?;
            let oid = c.add_member(&inner.signer, id)?;
            let m = c.message(oid)?;
            drop(c);
            inner.emit_message(conversation, m);
            oid.to_string()
        };
        inner.clone().notify(conversation, &commit);
        inner.clone().watch(id.to_owned());
        let i = inner.clone();
        let (conv, to) = (conversation.to_owned(), id.to_owned());
        tokio::spawn(async move {
            let mut metadatas = serde_json::Map::new();
            metadatas.insert("mode".into(), Json::from("2"));
            i.deliver(
                &to,
                Im::Invite {
                    conversation: conv,
                    metadatas,
                },
            )
            .await;
        });
        Ok(commit)
    }

    /// Accepts an invitation to a group conversation: cloned from the inviter and joined.
    pub async fn accept_conversation(&self, conversation: &str) -> Result<()> {
        let req = self
            .inner
            .state()
            .conv_requests
            .remove(conversation)
            .ok_or_else(|| ClientError::Invalid(format!("no invitation to {conversation}")))?;
        self.inner.save_conv_requests();
        let i = self.inner.clone();
        let conv = conversation.to_owned();
        tokio::spawn(async move { i.clone_from_account(&conv, &req.from).await });
        Ok(())
    }

    /// Leaves a conversation (the `remove` commit about ourselves, then the others are told).
    pub async fn leave(&self, conversation: &str) -> Result<()> {
        let inner = &self.inner;
        let id = {
            let lock = inner.conv_lock(conversation);
            let _g = lock.lock().await;
            inner.open(conversation)?.leave(&inner.signer)?
        };
        inner.clone().notify(conversation, &id.to_string());
        Ok(())
    }

    /// Removes `id` from a conversation we administer (a vote, then the ban when the votes
    /// are enough, as jamid does).
    pub async fn remove_member(&self, conversation: &str, id: &str) -> Result<()> {
        let inner = &self.inner;
        let ids = {
            let lock = inner.conv_lock(conversation);
            let _g = lock.lock().await;
            inner.open(conversation)?.vote_ban(&inner.signer, id)?
        };
        if let Some(last) = ids.last() {
            inner.clone().notify(conversation, &last.to_string());
        }
        Ok(())
    }
}

fn message_event(conversation: &str, m: pamoja_swarm::Message) -> Event {
    let body = if m.kind == "merge" {
        Json::Null
    } else {
        serde_json::from_str(&m.body.encode()).unwrap_or(Json::Null)
    };
    Event::Message {
        conversation: conversation.into(),
        id: m.id,
        author: m.author,
        device: m.device,
        kind: m.kind,
        body,
        timestamp: m.timestamp,
    }
}

fn read_conv_requests(data: &Path) -> BTreeMap<String, ConvRequest> {
    let Ok(b) = std::fs::read(data.join("convRequests.json")) else {
        return BTreeMap::new();
    };
    let Ok(Json::Object(m)) = serde_json::from_slice::<Json>(&b) else {
        return BTreeMap::new();
    };
    m.into_iter()
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
        .collect()
}

/// Counts what a stream reads and reports progress every [`PROGRESS_STEP`] bytes.
struct Counting<S> {
    inner: S,
    bytes: u64,
    next: u64,
    report: Box<dyn Fn(u64) + Send>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.bytes += n;
        if self.bytes >= self.next {
            self.next = self.bytes + PROGRESS_STEP;
            (self.report)(self.bytes);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    fn emit_message(&self, conversation: &str, m: pamoja_swarm::Message) {
        self.emit(message_event(conversation, m));
    }

    fn conv_dir(&self, id: &str) -> PathBuf {
        self.data.join("conversations").join(id)
    }

    fn conv_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.conv_locks
            .lock()
            .map(|mut m| m.entry(id.to_owned()).or_default().clone())
            .unwrap_or_default()
    }

    fn open(&self, id: &str) -> Result<Conversation> {
        if !is_hex_id(id, 40) || !self.conv_dir(id).join(".git").exists() {
            return Err(ClientError::Invalid(format!("no conversation {id}")));
        }
        Ok(Conversation::open(&self.conv_dir(id))?)
    }

    fn conversation_ids(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.data.join("conversations")) else {
            return Vec::new();
        };
        let mut v: Vec<String> = rd
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| is_hex_id(n, 40) && self.conv_dir(n).join(".git").exists())
            .collect();
        v.sort();
        v
    }

    fn save_conv_requests(&self) {
        let m: serde_json::Map<String, Json> = self
            .state()
            .conv_requests
            .iter()
            .map(|(k, r)| {
                (
                    k.clone(),
                    json!({"from": r.from, "received": r.received, "metadatas": r.metadatas}),
                )
            })
            .collect();
        if let Err(e) = write_atomic(
            &self.data.join("convRequests.json"),
            Json::Object(m).to_string().as_bytes(),
        ) {
            tracing::warn!("conversation requests not saved: {e}");
        }
    }

    fn create_conversation(&self, mode: Mode, invited: Option<&str>) -> Result<String> {
        let mut r = [0u8; 8];
        let _ = aws_lc_rs::rand::fill(&mut r);
        let tmp = self
            .data
            .join("conversations")
            .join(format!(".new-{}", hex::encode(r)));
        let c = Conversation::create(&tmp, &self.signer, mode, invited)?;
        let id = c.id()?;
        drop(c);
        std::fs::rename(&tmp, self.conv_dir(&id))?;
        Ok(id)
    }

    /// Puts our device announcement (signed by the account) and the account's CRL at our
    /// Jami ID, and our certificate chain at our short id.
    async fn announce(&self) -> io::Result<()> {
        self.dht.publish_certificate().await?;
        let device = self
            .account
            .device()
            .ok_or_else(|| io::Error::other("no device key"))?;
        let mut ann = Value {
            id: 1,
            data: DeviceAnnouncement::new(device.cert.public_key()).pack(),
            ..Value::default()
        };
        secure::sign(&mut ann, self.account.account_key()).map_err(io::Error::other)?;
        let key = self.key_of(&self.me)?;
        self.runner.put(key, ann).await?;
        if let Some(crl) = self.account.crl() {
            let mut data = Vec::new();
            pamoja_identity::msgpack::bin(&mut data, crl.der());
            self.runner
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

    fn key_of(&self, id: &str) -> io::Result<InfoHash> {
        id.parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("bad id {id}")))
    }

    /// Accounts we share something with: contacts (active) and conversation members.
    fn peers(&self) -> Vec<String> {
        let mut out: HashSet<String> = self
            .state()
            .contacts
            .contacts
            .iter()
            .filter(|(_, c)| c.is_active())
            .map(|(id, _)| id.clone())
            .collect();
        for c in self.conversation_ids() {
            if let Ok(conv) = self.open(&c) {
                for (uri, role) in conv.members().unwrap_or_default() {
                    if role != Role::Banned {
                        out.insert(uri);
                    }
                }
            }
        }
        out.remove(&self.me);
        out.into_iter().collect()
    }

    /// The device chains account `id` announces, checked against its Jami ID; waits up to
    /// `wait` for the first. Remembered for later lookups.
    async fn devices_of(&self, id: &str, wait: Duration) -> Vec<Vec<Certificate>> {
        let Ok(key) = self.key_of(id) else {
            return Vec::new();
        };
        let mut found: Vec<Vec<Certificate>> = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            for v in self.runner.get(key).await.unwrap_or_default() {
                let Some(short) = announced_device(&v, key) else {
                    continue;
                };
                if let Ok(Some(chain)) = self.dht.find_certificate(short).await {
                    if chain.get(1).is_some_and(|a| a.jami_id().to_string() == id)
                        && !found.iter().any(|c| c[0].der() == chain[0].der())
                    {
                        found.push(chain);
                    }
                }
            }
            if !found.is_empty() || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if !found.is_empty() {
            self.state().devices.insert(id.to_owned(), found.clone());
        }
        found
    }

    fn account_of_device(&self, device: &DeviceId) -> String {
        if let Ok(s) = self.sips.lock() {
            if let Some((a, _)) = s.get(device) {
                return a.clone();
            }
        }
        let st = self.state();
        st.devices
            .iter()
            .find(|(_, chains)| {
                chains
                    .iter()
                    .any(|c| c[0].public_key().device_id() == *device)
            })
            .map(|(a, _)| a.clone())
            .unwrap_or_default()
    }

    async fn put_trust(&self, device: &pamoja_identity::PublicKey, t: &TrustRequest) {
        match t.seal(self.dht.private_key(), device) {
            Ok(v) => {
                if let Err(e) = self.runner.put(inbox_key(device), v).await {
                    tracing::warn!("trust request not put: {e}");
                }
            }
            Err(e) => tracing::warn!("trust request not sealed: {e}"),
        }
    }

    async fn send_trust_request(&self, to: &str, conversation: &str) {
        let name = self.state().settings.display_name.clone();
        let mut payload = instant::vcard(if name.is_empty() { &self.me } else { &name });
        if payload.len() > trust::MAX_PAYLOAD {
            payload.clear();
        }
        let req = TrustRequest::request(conversation, payload);
        for chain in self.devices_of(to, LOOKUP_WAIT).await {
            self.put_trust(chain[0].public_key(), &req).await;
        }
    }

    /// Listens to the announcements of `id`, for presence (once per account).
    fn watch(self: Arc<Self>, id: String) {
        if id == self.me || !self.state().watched.insert(id.clone()) {
            return;
        }
        let Ok(key) = self.key_of(&id) else { return };
        let i = self.clone();
        let h = tokio::spawn(async move {
            let Ok(mut listen) = i.runner.listen(key, None).await else {
                return;
            };
            while let Some(ev) = listen.next().await {
                if let ListenEvent::Value(v) = ev {
                    if let Some(short) = announced_device(&v, key) {
                        i.clone().seen_device(&id, &short.to_string(), true).await;
                    }
                }
            }
        });
        if let Ok(mut t) = self.tasks.lock() {
            t.push(h);
        }
    }

    /// An announcement of `account`'s device `short` was seen; `fresh` when it was just put
    /// (a device that started again announces itself anew).
    async fn seen_device(self: Arc<Self>, account: &str, short: &str, fresh: bool) {
        let (change, now) = {
            let mut st = self.state();
            let now = Instant::now();
            let change = st.presence.announced(account, short, now);
            (change, st.presence.status(account, now))
        };
        if let Some(s) = change {
            self.emit(Event::Presence {
                contact: account.into(),
                status: s.as_str(),
            });
        }
        if change == Some(Status::Reachable) || (fresh && now == Status::Reachable) {
            let i = self.clone();
            let a = account.to_owned();
            tokio::spawn(async move { i.catch_up(&a).await });
        }
    }

    /// Looks up the announcements of every watched account (presence, with expiry).
    async fn refresh_presence(self: Arc<Self>) {
        let watched: Vec<String> = self.state().watched.iter().cloned().collect();
        for id in watched {
            let Ok(key) = self.key_of(&id) else { continue };
            for v in self.runner.get(key).await.unwrap_or_default() {
                if let Some(short) = announced_device(&v, key) {
                    self.clone()
                        .seen_device(&id, &short.to_string(), false)
                        .await;
                }
            }
        }
        let changes = self.state().presence.tick(Instant::now());
        for (contact, s) in changes {
            self.emit(Event::Presence {
                contact,
                status: s.as_str(),
            });
        }
    }

    /// `account` came online: trust requests it has not confirmed go again, notices it
    /// missed are delivered, and a `sip` channel to each device makes both sides fetch.
    async fn catch_up(self: Arc<Self>, account: &str) {
        let unconfirmed = {
            let st = self.state();
            st.contacts
                .active(account)
                .filter(|c| !c.confirmed)
                .map(|c| c.conversation_id.clone())
        };
        if let Some(conv) = unconfirmed {
            self.send_trust_request(account, &conv).await;
        }
        let missed: Vec<Im> = {
            let mut st = self.state();
            let keys: Vec<_> = st
                .undelivered
                .keys()
                .filter(|(a, _)| a == account)
                .cloned()
                .collect();
            keys.into_iter()
                .filter_map(|k| st.undelivered.remove(&k))
                .collect()
        };
        for chain in self.devices_of(account, LOOKUP_WAIT).await {
            match self.sip_to(&chain, account).await {
                Ok(tx) => {
                    for m in &missed {
                        let _ = self.send_sip(&tx, account, m).await;
                    }
                }
                Err(e) => tracing::info!("no link to a device of {account}: {e}"),
            }
        }
    }

    /// The `sip` channel to the device of `chain`, opened when there is none.
    async fn sip_to(
        self: &Arc<Self>,
        chain: &[Certificate],
        account: &str,
    ) -> Result<ChannelSender> {
        let device = chain[0].public_key().device_id();
        if let Some(tx) = self
            .sips
            .lock()
            .ok()
            .and_then(|s| s.get(&device).map(|(_, t)| t.clone()))
            .filter(|t| !t.is_closed())
        {
            return Ok(tx);
        }
        let ch = self
            .dialer
            .channel(chain, "sip", "")
            .await
            .map_err(|e| ClientError::Invalid(format!("link: {e}")))?;
        let tx = ch.sender();
        self.clone().on_sip(device, account.to_owned(), ch);
        Ok(tx)
    }

    async fn send_sip(&self, tx: &ChannelSender, to: &str, m: &Im) -> Result<()> {
        let (mime, body) = m.encode();
        let route = Route {
            from: self.me.clone(),
            to: to.to_owned(),
            local: SocketAddr::new(self.ice_addr, 0),
            remote: SocketAddr::new(self.ice_addr, 0),
        };
        let msg = sip::message(
            &route,
            mime,
            &body,
            &sip::new_message_id(),
            unix_now() as u64,
        );
        tx.send(&msg.to_bytes())
            .await
            .map_err(|e| ClientError::Invalid(format!("link: {e}")))
    }

    /// Sends `m` to every device of `account`: over a `sip` channel when one can be made,
    /// else through each device's DHT inbox, and again when the account shows up.
    async fn deliver(self: &Arc<Self>, account: &str, m: Im) -> bool {
        let chains = self.devices_of(account, LOOKUP_WAIT).await;
        let mut delivered = false;
        for chain in &chains {
            match self.sip_to(chain, account).await {
                Ok(tx) => delivered |= self.send_sip(&tx, account, &m).await.is_ok(),
                Err(e) => {
                    tracing::info!("{account}: no link ({e}); through the DHT inbox");
                    let (mime, body) = m.encode();
                    let mut r = [0u8; 8];
                    let _ = aws_lc_rs::rand::fill(&mut r);
                    let im = ImMessage::new(u64::from_le_bytes(r), mime, &body, unix_now());
                    let dev = chain[0].public_key();
                    if let Ok(v) = im.seal(self.dht.private_key(), dev) {
                        let _ = self.runner.put(inbox_key(dev), v).await;
                    }
                }
            }
        }
        if !delivered {
            let conv = match &m {
                Im::NewCommit { conversation, .. } | Im::Invite { conversation, .. } => {
                    conversation.clone()
                }
                _ => return false,
            };
            // A notice already waiting says as much: the fetch takes the whole history.
            self.state()
                .undelivered
                .entry((account.to_owned(), conv))
                .or_insert(m);
        }
        delivered
    }

    /// Tries again each notice that could not be delivered (each is kept again on failure).
    async fn retry_undelivered(self: &Arc<Self>) {
        let pending: Vec<((String, String), Im)> = std::mem::take(&mut self.state().undelivered)
            .into_iter()
            .collect();
        for ((account, conv), m) in pending {
            let again = m.clone();
            if tokio::time::timeout(DELIVER_LIMIT, self.deliver(&account, m))
                .await
                .is_err()
            {
                self.state()
                    .undelivered
                    .entry((account, conv))
                    .or_insert(again);
            }
        }
    }

    /// Tells the members of a conversation (not us) about a new commit.
    fn notify(self: Arc<Self>, conversation: &str, commit: &str) {
        self.notify_except(conversation, commit, None)
    }

    /// [`Inner::notify`], leaving out account `except` (where the commit came from).
    fn notify_except(self: Arc<Self>, conversation: &str, commit: &str, except: Option<&str>) {
        let members: Vec<String> = self
            .open(conversation)
            .and_then(|c| Ok(c.members()?))
            .unwrap_or_default()
            .into_iter()
            .filter(|(u, r)| {
                matches!(r, Role::Admin | Role::Member)
                    && *u != self.me
                    && Some(u.as_str()) != except
            })
            .map(|(u, _)| u)
            .collect();
        for m in members {
            let i = self.clone();
            let notice = Im::NewCommit {
                conversation: conversation.into(),
                commit: commit.into(),
                device: self.device.clone(),
            };
            tokio::spawn(async move { i.deliver(&m, notice).await });
        }
    }

    /// Sends `m` over the `sip` channels already open with members of a conversation
    /// (typing and read receipts go no other way, as with jamid). Returns how many devices.
    async fn tell_connected(&self, conversation: &str, m: Im) -> usize {
        let members: HashSet<String> = self
            .open(conversation)
            .and_then(|c| Ok(c.members()?))
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, r)| *r != Role::Banned)
            .map(|(u, _)| u)
            .collect();
        let targets: Vec<(String, ChannelSender)> = self
            .sips
            .lock()
            .map(|s| {
                s.values()
                    .filter(|(a, t)| members.contains(a) && !t.is_closed())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut n = 0;
        for (a, tx) in targets {
            if self.send_sip(&tx, &a, &m).await.is_ok() {
                n += 1;
            }
        }
        n
    }

    /// A channel a peer opened (or one of ours the peer answered on).
    fn on_channel(self: Arc<Self>, device: DeviceId, account: String, ch: Channel) {
        if ch.name == "sip" {
            self.on_sip(device, account, ch);
        } else if let Some(rest) = ch.name.strip_prefix("git://") {
            let conv = rest.rsplit('/').next().unwrap_or_default().to_owned();
            let dir = self.conv_dir(&conv);
            if !is_hex_id(&conv, 40) || !dir.join(".git").exists() {
                tracing::info!("git channel for unknown conversation {conv:?}");
                tokio::spawn(ch.close());
                return;
            }
            tokio::spawn(async move {
                // A peer that fetched something new may have merged it with commits of its
                // own, and jamid does not announce merges: fetch back from it.
                let i = self.clone();
                let (c2, acc) = (conv.clone(), account.clone());
                let back = move |_| {
                    let (i, c, a) = (i.clone(), c2.clone(), acc.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(FETCH_BACK_AFTER).await;
                        let account = (!a.is_empty()).then_some(a.as_str());
                        i.fetch_from(&c, &device.to_string(), account).await;
                    });
                };
                if let Err(e) = pamoja_swarm::git::serve_with(&dir, ch.into_stream(), back).await {
                    tracing::info!("serving {conv}: {e}");
                }
            });
        }
    }

    /// Reads a `sip` channel: each request answered 200, each MESSAGE handled. When it
    /// comes up, the conversations shared with that account are fetched from the device.
    fn on_sip(self: Arc<Self>, device: DeviceId, account: String, mut ch: Channel) {
        let tx = ch.sender();
        if let Ok(mut s) = self.sips.lock() {
            s.insert(device, (account.clone(), tx.clone()));
        }
        let now = Instant::now();
        if !account.is_empty() {
            let change = self
                .state()
                .presence
                .linked(&account, &device.to_string(), true, now);
            if let Some(s) = change {
                self.emit(Event::Presence {
                    contact: account.clone(),
                    status: s.as_str(),
                });
            }
            let i = self.clone();
            let a = account.clone();
            tokio::spawn(async move { i.sync_with(&a, device).await });
        }
        tokio::spawn(async move {
            let mut reader = SipReader::default();
            'read: while let Some(data) = ch.recv().await {
                reader.push(&data);
                while let Some(m) = reader.next_message() {
                    let Ok(m) = m else { break 'read };
                    // A call's messages go to its task; an INVITE starts one.
                    let Some(m) = self.clone().route_call(&account, &tx, m).await else {
                        continue;
                    };
                    if !matches!(m.start, StartLine::Request { .. }) {
                        continue;
                    }
                    if tx
                        .send(&sip::response(&m, 200, "OK").to_bytes())
                        .await
                        .is_err()
                    {
                        break 'read;
                    }
                    let Some(t) = sip::read_message(&m) else {
                        continue;
                    };
                    if let Some(id) = &t.id {
                        let fresh = self
                            .seen
                            .lock()
                            .map(|mut s| s.insert(id).unwrap_or(true))
                            .unwrap_or(true);
                        if !fresh {
                            continue;
                        }
                    }
                    self.clone()
                        .on_instant(&t.from, Some(device), &t.content_type, &t.body);
                }
            }
            if let Ok(mut s) = self.sips.lock() {
                if s.get(&device)
                    .is_some_and(|(_, t)| t.is_closed() || t.same_channel(&tx))
                {
                    s.remove(&device);
                }
            }
            if !account.is_empty() {
                let change = self.state().presence.linked(
                    &account,
                    &device.to_string(),
                    false,
                    Instant::now(),
                );
                if let Some(s) = change {
                    self.emit(Event::Presence {
                        contact: account,
                        status: s.as_str(),
                    });
                }
            }
        });
    }

    fn call_context(&self) -> call::Context {
        call::Context {
            me: self.me.clone(),
            device: self
                .account
                .device()
                .map(|d| d.cert.short_device_id().to_string())
                .unwrap_or_default(),
            ice_addr: self.ice_addr,
            events: self.events.clone(),
        }
    }

    /// A function that forgets call `id` once its task ends.
    fn call_done(self: &Arc<Self>) -> impl FnOnce(&str) + Send + 'static {
        let i = Arc::downgrade(self);
        move |id: &str| {
            if let Some(i) = i.upgrade() {
                if let Ok(mut c) = i.calls.lock() {
                    c.remove(id);
                }
            }
        }
    }

    /// Hands a message of a `sip` channel with `account` to its call (a new one for an
    /// INVITE); gives it back when it belongs to no call.
    async fn route_call(
        self: Arc<Self>,
        account: &str,
        tx: &ChannelSender,
        m: SipMessage,
    ) -> Option<SipMessage> {
        let call_id = m.header("Call-ID").unwrap_or_default().to_owned();
        let known = self
            .calls
            .lock()
            .ok()
            .and_then(|c| c.get(&call_id).cloned());
        if let Some(call) = known {
            let _ = call.send(call::Command::Sip(m));
            return None;
        }
        let is_invite = matches!(&m.start, StartLine::Request { method, .. } if method == "INVITE");
        if !is_invite {
            return Some(m);
        }
        let auto = self.state().settings.auto_answer;
        let options = auto.then(|| {
            self.call_options
                .lock()
                .map(|o| o.clone())
                .unwrap_or_default()
        });
        let done = self.call_done();
        if let Some((id, sender)) = call::incoming(
            self.call_context(),
            account.to_owned(),
            tx.clone(),
            &m,
            options,
            done,
        )
        .await
        {
            if let Ok(mut c) = self.calls.lock() {
                c.insert(id, sender);
            }
        }
        None
    }

    /// A `sip` channel with `device` of `account` came up: fetch every conversation it
    /// shares with us from it.
    async fn sync_with(self: Arc<Self>, account: &str, device: DeviceId) {
        for conv in self.conversation_ids() {
            let shared = self
                .open(&conv)
                .and_then(|c| Ok(c.members()?))
                .unwrap_or_default()
                .iter()
                .any(|(u, r)| u == account && *r != Role::Banned);
            if shared {
                self.clone()
                    .fetch_from(&conv, &device.to_string(), Some(account))
                    .await;
            }
        }
    }

    /// An instant message from account `from` (over SIP from `device`, or the DHT inbox).
    fn on_instant(self: Arc<Self>, from: &str, device: Option<DeviceId>, mime: &str, body: &str) {
        let Some(m) = Im::decode(mime, body) else {
            return;
        };
        match m {
            Im::NewCommit {
                conversation,
                device: dev,
                ..
            } => {
                let member = self
                    .open(&conversation)
                    .and_then(|c| Ok(c.members()?))
                    .map(|ms| ms.iter().any(|(u, r)| u == from && *r != Role::Banned));
                match member {
                    Ok(true) if is_hex_id(&dev, 64) => {
                        let from = from.to_owned();
                        tokio::spawn(async move {
                            self.fetch_from(&conversation, &dev, Some(&from)).await
                        });
                    }
                    Ok(_) => tracing::info!("notice for {conversation} from a non-member"),
                    Err(_) => tracing::info!("notice for unknown conversation {conversation}"),
                }
            }
            Im::Composing {
                conversation,
                active,
            } => {
                if self.state().settings.typing && self.open(&conversation).is_ok() {
                    self.emit(Event::Typing {
                        conversation,
                        from: from.into(),
                        on: active,
                    });
                }
            }
            Im::Displayed {
                conversation,
                message,
            } => {
                if self.state().settings.read_receipts && self.open(&conversation).is_ok() {
                    self.emit(Event::Displayed {
                        conversation,
                        from: from.into(),
                        message,
                    });
                }
            }
            Im::Invite {
                conversation,
                metadatas,
            } => {
                if !is_hex_id(&conversation, 40)
                    || self.open(&conversation).is_ok()
                    || self.state().contacts.is_banned(from)
                {
                    return;
                }
                let fresh = self
                    .state()
                    .conv_requests
                    .insert(
                        conversation.clone(),
                        ConvRequest {
                            from: from.into(),
                            metadatas: metadatas.clone(),
                            received: unix_now(),
                        },
                    )
                    .is_none();
                if fresh {
                    self.save_conv_requests();
                    self.emit(Event::ConversationRequest {
                        conversation,
                        from: from.into(),
                        metadatas,
                    });
                }
            }
            Im::NeedInvite { conversation } => {
                let invited = self
                    .open(&conversation)
                    .and_then(|c| Ok(c.members()?))
                    .map(|ms| ms.iter().any(|(u, r)| u == from && *r != Role::Banned))
                    .unwrap_or(false);
                if invited {
                    let from = from.to_owned();
                    tokio::spawn(async move {
                        let mut metadatas = serde_json::Map::new();
                        metadatas.insert("mode".into(), Json::from("2"));
                        self.deliver(
                            &from,
                            Im::Invite {
                                conversation,
                                metadatas,
                            },
                        )
                        .await;
                    });
                }
            }
        }
        let _ = device;
    }

    async fn on_inbox(self: Arc<Self>, item: InboxItem) {
        match item {
            InboxItem::Message(r) => {
                let id = r.message.message_id();
                let fresh = self
                    .seen
                    .lock()
                    .map(|mut s| s.insert(&id).unwrap_or(true))
                    .unwrap_or(true);
                if fresh {
                    self.on_instant(
                        &r.from.to_string(),
                        Some(r.device),
                        r.message.content_type(),
                        &r.message.msg,
                    );
                }
            }
            InboxItem::Value(d) if d.value.value_type == trust::VALUE_TYPE => {
                let Ok(t) = TrustRequest::decode(&d.value.data) else {
                    return;
                };
                if t.service != trust::SERVICE || !t.has_valid_conversation() {
                    return;
                }
                self.on_trust(&d.from.to_string(), d.owner.spki_der().to_vec(), t)
                    .await;
            }
            InboxItem::Value(_) => {}
        }
    }

    async fn on_trust(self: Arc<Self>, from: &str, device: Vec<u8>, t: TrustRequest) {
        if from == self.me {
            return;
        }
        let now = unix_now();
        enum Then {
            Nothing,
            Confirmed(String),
            Request(PendingRequest),
            AutoConfirm(String),
        }
        let then = {
            let mut st = self.state();
            if st.contacts.is_banned(from) {
                Then::Nothing
            } else if t.confirm {
                match st.contacts.active(from) {
                    Some(c) if !c.confirmed => {
                        st.contacts.confirm(from, &t.conversation_id, now);
                        Then::Confirmed(t.conversation_id.clone())
                    }
                    _ => Then::Nothing,
                }
            } else if let Some(c) = st.contacts.active(from) {
                // Already a contact: answer with a confirmation, as jamid does.
                let conv = c.conversation_id.clone();
                st.contacts.confirm(from, &conv, now);
                Then::AutoConfirm(conv)
            } else if st
                .contacts
                .requests
                .get(from)
                .is_some_and(|r| r.conversation_id == t.conversation_id)
            {
                Then::Nothing
            } else {
                let r = PendingRequest {
                    device,
                    conversation_id: t.conversation_id.clone(),
                    received: now,
                    payload: t.payload.clone(),
                };
                st.contacts.requests.insert(from.to_owned(), r.clone());
                Then::Request(r)
            }
        };
        let save = |s: &Self| {
            if let Err(e) = s.state().contacts.save(&s.data) {
                tracing::warn!("contacts not saved: {e}");
            }
        };
        match then {
            Then::Nothing => {}
            Then::Confirmed(conv) => {
                save(&self);
                self.emit(Event::ContactAdded {
                    id: from.into(),
                    confirmed: true,
                    conversation: conv,
                });
            }
            Then::AutoConfirm(conv) => {
                save(&self);
                for chain in self.devices_of(from, LOOKUP_WAIT).await {
                    self.put_trust(chain[0].public_key(), &TrustRequest::confirmation(&conv))
                        .await;
                }
            }
            Then::Request(r) => {
                save(&self);
                self.clone().watch(from.to_owned());
                self.emit(Event::TrustRequest {
                    from: from.into(),
                    conversation: r.conversation_id,
                    name: instant::vcard_name(&r.payload),
                    received: r.received,
                });
            }
        }
    }

    /// Clones a conversation from the first device of `account` that serves it, joins it
    /// when we are only invited, and tells the others.
    async fn clone_from_account(self: &Arc<Self>, conversation: &str, account: &str) {
        let lock = self.conv_lock(conversation);
        let _g = lock.lock().await;
        if self.open(conversation).is_ok() {
            return;
        }
        for attempt in 0..3 {
            for chain in self.devices_of(account, LOOKUP_WAIT).await {
                let dev = chain[0].public_key().device_id().to_string();
                let name = format!("git://{dev}/{conversation}");
                let ch = match self.dialer.channel(&chain, &name, instant::MIME_GIT).await {
                    Ok(ch) => ch,
                    Err(e) => {
                        tracing::info!("clone of {conversation} from {dev}: {e}");
                        continue;
                    }
                };
                let dir = self.conv_dir(conversation);
                let events = self.events.clone();
                let conv = conversation.to_owned();
                let mut stream = Counting {
                    inner: ch.into_stream(),
                    bytes: 0,
                    next: PROGRESS_STEP,
                    report: Box::new(move |bytes| {
                        let _ = events.send(Event::Progress {
                            conversation: conv.clone(),
                            bytes,
                        });
                    }),
                };
                match pamoja_swarm::git::clone(&dir, &mut stream, conversation, &dev).await {
                    Ok(c) => {
                        drop(stream);
                        self.after_clone(conversation, c);
                        return;
                    }
                    Err(e) => {
                        let _ = std::fs::remove_dir_all(&dir);
                        self.emit(Event::SyncRefused {
                            conversation: conversation.into(),
                            device: dev,
                            reason: e.to_string(),
                        });
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(2 << attempt)).await;
        }
    }

    fn after_clone(self: &Arc<Self>, conversation: &str, c: Conversation) {
        let role = c
            .members()
            .unwrap_or_default()
            .into_iter()
            .find(|(u, _)| *u == self.me)
            .map(|(_, r)| r);
        let joined = match role {
            Some(Role::Invited) => match c.join(&self.signer) {
                Ok(id) => Some(id),
                Err(e) => {
                    tracing::warn!("join of {conversation}: {e}");
                    None
                }
            },
            Some(Role::Admin | Role::Member) => None,
            _ => {
                tracing::warn!("cloned {conversation}, where we are not invited");
                drop(c);
                let _ = std::fs::remove_dir_all(self.conv_dir(conversation));
                return;
            }
        };
        // Ready as soon as it is validated and joined (as jamid's conversationReady); the
        // members are told of our join, then the history follows as message events.
        self.emit(Event::ConversationReady {
            conversation: conversation.into(),
        });
        if let Some(id) = joined {
            self.clone().notify(conversation, &id.to_string());
        }
        for (uri, r) in c.members().unwrap_or_default() {
            if r != Role::Banned {
                self.clone().watch(uri);
            }
        }
        if let Ok(mut ms) = c.messages(None, None) {
            ms.reverse();
            for m in ms {
                self.emit_message(conversation, m);
            }
        }
    }

    /// Fetches a conversation from `device` (64 hex digits), validates what came and merges
    /// it; reports each new message, or why the history was refused.
    async fn fetch_from(self: Arc<Self>, conversation: &str, device: &str, account: Option<&str>) {
        let lock = self.conv_lock(conversation);
        let _g = lock.lock().await;
        let Ok(c) = self.open(conversation) else {
            return;
        };
        let Ok(before) = c.head() else { return };
        let chain = c.device_chain(device);
        drop(c);
        let name = format!("git://{device}/{conversation}");
        let Ok(dev_id) = device.parse::<DeviceId>() else {
            return;
        };
        let ch = match self.dialer.open_linked(&dev_id, &name).await {
            Ok(ch) => Ok(ch),
            Err(_) => {
                let chain = match chain {
                    Some(c) => Some(c),
                    None => match account {
                        Some(a) => self
                            .devices_of(a, LOOKUP_WAIT)
                            .await
                            .into_iter()
                            .find(|c| c[0].public_key().device_id() == dev_id),
                        None => None,
                    },
                };
                match chain {
                    Some(chain) => self.dialer.channel(&chain, &name, "").await,
                    None => {
                        tracing::info!("no certificate for device {device}");
                        return;
                    }
                }
            }
        };
        let mut stream = match ch {
            Ok(ch) => ch.into_stream(),
            Err(e) => {
                tracing::info!("fetch of {conversation} from {device}: {e}");
                return;
            }
        };
        let dir = self.conv_dir(conversation);
        let fetched = tokio::time::timeout(
            FETCH_LIMIT,
            pamoja_swarm::git::fetch(&dir, &mut stream, conversation, device),
        )
        .await;
        let remote = match fetched {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::info!("fetch of {conversation} from {device}: {e}");
                return;
            }
            Err(_) => {
                tracing::info!("fetch of {conversation} from {device}: timed out");
                return;
            }
        };
        drop(stream);
        let Ok(c) = self.open(conversation) else {
            return;
        };
        match c.pull(&self.signer, remote) {
            Ok(Pulled::UpToDate) => {}
            Ok(pulled) => {
                let new = new_commits(&c, before);
                for m in new {
                    self.emit_message(conversation, m);
                }
                for (uri, r) in c.members().unwrap_or_default() {
                    if r != Role::Banned {
                        self.clone().watch(uri);
                    }
                }
                // Our head moved: tell the other members we have it, so that one who was
                // offline when it was posted gets it from us (the "often-online device").
                let head = match pulled {
                    Pulled::Merged(id) => id.to_string(),
                    _ => remote.to_string(),
                };
                drop(c);
                self.clone().notify_except(conversation, &head, account);
            }
            Err(e) => {
                tracing::warn!("history of {conversation} from {device} refused: {e}");
                self.emit(Event::SyncRefused {
                    conversation: conversation.into(),
                    device: device.into(),
                    reason: e.to_string(),
                });
            }
        }
    }
}

/// The commits of `main` that `before` does not reach, oldest first.
fn new_commits(c: &Conversation, before: git2::Oid) -> Vec<pamoja_swarm::Message> {
    let repo = c.repo();
    let Ok(head) = c.head() else {
        return Vec::new();
    };
    let Ok(mut walk) = repo.revwalk() else {
        return Vec::new();
    };
    let _ = walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME | git2::Sort::REVERSE);
    if walk.push(head).is_err() || walk.hide(before).is_err() {
        return Vec::new();
    }
    walk.filter_map(|o| c.message(o.ok()?).ok()).collect()
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
