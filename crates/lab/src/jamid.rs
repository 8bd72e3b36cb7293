//! Driving a real jamid over its private D-Bus session.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use zbus::zvariant::{Structure, Value};
use zbus::{Connection, MatchRule, MessageStream};

use crate::{LabError, Result};

const SERVICE: &str = "cx.ring.Ring";
const CM_IFACE: &str = "cx.ring.Ring.ConfigurationManager";
const CALL_IFACE: &str = "cx.ring.Ring.CallManager";
const VIDEO_IFACE: &str = "cx.ring.Ring.VideoManager";

#[zbus::proxy(
    interface = "cx.ring.Ring.ConfigurationManager",
    default_service = "cx.ring.Ring",
    default_path = "/cx/ring/Ring/ConfigurationManager",
    gen_blocking = false
)]
trait ConfigurationManager {
    #[zbus(name = "addAccount")]
    fn add_account(&self, details: HashMap<&str, &str>) -> zbus::Result<String>;
    #[zbus(name = "removeAccount")]
    fn remove_account(&self, account: &str) -> zbus::Result<()>;
    #[zbus(name = "getAccountDetails")]
    fn get_account_details(&self, account: &str) -> zbus::Result<HashMap<String, String>>;
    #[zbus(name = "getVolatileAccountDetails")]
    fn get_volatile_account_details(&self, account: &str) -> zbus::Result<HashMap<String, String>>;
    #[zbus(name = "exportToFile")]
    fn export_to_file(&self, account: &str, path: &str, password: &str) -> zbus::Result<bool>;
    #[zbus(name = "exportOnRing")]
    fn export_on_ring(&self, account: &str, password: &str) -> zbus::Result<bool>;
    #[zbus(name = "revokeDevice")]
    fn revoke_device(&self, account: &str, password: &str, device: &str) -> zbus::Result<bool>;
    #[zbus(name = "getKnownRingDevices")]
    fn get_known_ring_devices(&self, account: &str) -> zbus::Result<HashMap<String, String>>;
    #[zbus(name = "registerName")]
    fn register_name(&self, account: &str, password: &str, name: &str) -> zbus::Result<bool>;
    #[zbus(name = "lookupName")]
    fn lookup_name(&self, account: &str, nameserver: &str, name: &str) -> zbus::Result<bool>;
    #[zbus(name = "lookupAddress")]
    fn lookup_address(&self, account: &str, nameserver: &str, address: &str) -> zbus::Result<bool>;
    #[zbus(name = "addContact")]
    fn add_contact(&self, account: &str, uri: &str) -> zbus::Result<()>;
    #[zbus(name = "sendTrustRequest")]
    fn send_trust_request(&self, account: &str, to: &str, payload: &[u8]) -> zbus::Result<()>;
    #[zbus(name = "acceptTrustRequest")]
    fn accept_trust_request(&self, account: &str, from: &str) -> zbus::Result<bool>;
    #[zbus(name = "sendTextMessage")]
    fn send_text_message(
        &self,
        account: &str,
        to: &str,
        payloads: HashMap<&str, &str>,
    ) -> zbus::Result<u64>;
    #[zbus(name = "startConversation")]
    fn start_conversation(&self, account: &str) -> zbus::Result<String>;
    #[zbus(name = "sendMessage")]
    fn send_message(
        &self,
        account: &str,
        conversation: &str,
        message: &str,
        commit: &str,
        flag: i32,
    ) -> zbus::Result<()>;
    #[zbus(name = "addConversationMember")]
    fn add_conversation_member(
        &self,
        account: &str,
        conversation: &str,
        uri: &str,
    ) -> zbus::Result<()>;
    #[zbus(name = "acceptConversationRequest")]
    fn accept_conversation_request(&self, account: &str, conversation: &str) -> zbus::Result<()>;
    #[zbus(name = "getConversations")]
    fn get_conversations(&self, account: &str) -> zbus::Result<Vec<String>>;
    #[zbus(name = "getContacts")]
    fn get_contacts(&self, account: &str) -> zbus::Result<Vec<HashMap<String, String>>>;
    #[zbus(name = "setIsComposing")]
    fn set_is_composing(&self, account: &str, uri: &str, composing: bool) -> zbus::Result<()>;
    #[zbus(name = "setMessageDisplayed")]
    fn set_message_displayed(
        &self,
        account: &str,
        uri: &str,
        message: &str,
        status: i32,
    ) -> zbus::Result<bool>;
    #[zbus(name = "setNoiseSuppressState")]
    fn set_noise_suppress_state(&self, state: &str) -> zbus::Result<()>;
    #[zbus(name = "setAccountDetails")]
    fn set_account_details(&self, account: &str, details: HashMap<&str, &str>) -> zbus::Result<()>;
    #[zbus(name = "loadConversationMessages")]
    fn load_conversation_messages(
        &self,
        account: &str,
        conversation: &str,
        from: &str,
        n: u32,
    ) -> zbus::Result<u32>;
    #[zbus(name = "getCodecList")]
    fn get_codec_list(&self) -> zbus::Result<Vec<u32>>;
    #[zbus(name = "getCodecDetails")]
    fn get_codec_details(&self, account: &str, codec: u32)
    -> zbus::Result<HashMap<String, String>>;
    #[zbus(name = "setActiveCodecList")]
    fn set_active_codec_list(&self, account: &str, list: &[u32]) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "cx.ring.Ring.CallManager",
    default_service = "cx.ring.Ring",
    default_path = "/cx/ring/Ring/CallManager",
    gen_blocking = false
)]
trait CallManager {
    #[zbus(name = "placeCall")]
    fn place_call(&self, account: &str, to: &str) -> zbus::Result<String>;
    #[zbus(name = "accept")]
    fn accept(&self, account: &str, call: &str) -> zbus::Result<bool>;
    #[zbus(name = "refuse")]
    fn refuse(&self, account: &str, call: &str) -> zbus::Result<bool>;
    #[zbus(name = "hangUp")]
    fn hang_up(&self, account: &str, call: &str) -> zbus::Result<bool>;
    #[zbus(name = "getCallDetails")]
    fn get_call_details(&self, account: &str, call: &str) -> zbus::Result<HashMap<String, String>>;
    #[zbus(name = "getCallList")]
    fn get_call_list(&self, account: &str) -> zbus::Result<Vec<String>>;
    #[zbus(name = "placeCallWithMedia")]
    fn place_call_with_media(
        &self,
        account: &str,
        to: &str,
        media: &[HashMap<&str, &str>],
    ) -> zbus::Result<String>;
    #[zbus(name = "playDTMF")]
    fn play_dtmf(&self, key: &str) -> zbus::Result<()>;
    #[zbus(name = "muteLocalMedia")]
    fn mute_local_media(
        &self,
        account: &str,
        call: &str,
        media_type: &str,
        mute: bool,
    ) -> zbus::Result<bool>;
    #[zbus(name = "hold")]
    fn hold(&self, account: &str, call: &str) -> zbus::Result<bool>;
    #[zbus(name = "unhold")]
    fn unhold(&self, account: &str, call: &str) -> zbus::Result<bool>;
}

/// One argument of a recorded signal.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A byte array.
    Bytes(Vec<u8>),
    /// A string → string map.
    Map(BTreeMap<String, String>),
    /// A list of string → string maps (`aa{ss}`, e.g. conversation messages).
    Maps(Vec<BTreeMap<String, String>>),
    /// Anything else, as text.
    Other(String),
}

impl Arg {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Arg::Str(s) => Some(s),
            _ => None,
        }
    }
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Arg::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// A signal jamid emitted on the ConfigurationManager interface.
#[derive(Debug, Clone)]
pub struct Signal {
    /// The member name, e.g. `registrationStateChanged`.
    pub name: String,
    /// The arguments.
    pub args: Vec<Arg>,
}

impl Signal {
    /// Argument `i` as a string ("" if absent or not a string).
    pub fn str(&self, i: usize) -> &str {
        self.args.get(i).and_then(Arg::as_str).unwrap_or("")
    }
    /// Argument `i` as an integer.
    pub fn int(&self, i: usize) -> Option<i64> {
        self.args.get(i).and_then(Arg::as_int)
    }
}

fn to_arg(v: &Value<'_>) -> Arg {
    match v {
        Value::Str(s) => Arg::Str(s.to_string()),
        Value::ObjectPath(p) => Arg::Str(p.to_string()),
        Value::Bool(b) => Arg::Bool(*b),
        Value::U8(i) => Arg::Int(i64::from(*i)),
        Value::I16(i) => Arg::Int(i64::from(*i)),
        Value::U16(i) => Arg::Int(i64::from(*i)),
        Value::I32(i) => Arg::Int(i64::from(*i)),
        Value::U32(i) => Arg::Int(i64::from(*i)),
        Value::I64(i) => Arg::Int(*i),
        Value::U64(i) => Arg::Int(*i as i64),
        Value::Array(a) if a.element_signature() == &zbus::zvariant::Signature::U8 => Arg::Bytes(
            a.iter()
                .filter_map(|x| if let Value::U8(b) = x { Some(*b) } else { None })
                .collect(),
        ),
        Value::Array(a) if a.element_signature().to_string() == "a{ss}" => {
            let maps: Vec<BTreeMap<String, String>> = a
                .iter()
                .filter_map(|x| match to_arg(x) {
                    Arg::Map(m) => Some(m),
                    _ => None,
                })
                .collect();
            Arg::Maps(maps)
        }
        Value::Dict(d) => {
            let m: Option<HashMap<String, String>> =
                d.try_clone().ok().and_then(|d| HashMap::try_from(d).ok());
            match m {
                Some(m) => Arg::Map(m.into_iter().collect()),
                None => Arg::Other(format!("{v:?}")),
            }
        }
        other => Arg::Other(format!("{other:?}")),
    }
}

/// A running jamid, driven over its private D-Bus session; its signals are recorded from the
/// moment of connection.
pub struct Jamid {
    name: String,
    home: PathBuf,
    pid: u32,
    conn: Connection,
    cm: ConfigurationManagerProxy<'static>,
    calls: CallManagerProxy<'static>,
    signals: Arc<Mutex<Vec<Signal>>>,
    recorder: tokio::task::JoinHandle<()>,
}

impl Drop for Jamid {
    fn drop(&mut self) {
        self.recorder.abort();
    }
}

/// Account settings that keep jamid on the lab's own network: the bootstrap node on
/// loopback, the name server on loopback, and UPnP, TURN, proxy and discovery off.
pub fn lab_account_details(bootstrap_port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("Account.type", "RING".into()),
        ("Account.hostname", format!("127.0.0.1:{bootstrap_port}")),
        ("Account.upnpEnabled", "false".into()),
        ("TURN.enable", "false".into()),
        ("Account.proxyEnabled", "false".into()),
        ("Account.peerDiscovery", "false".into()),
        ("Account.accountDiscovery", "false".into()),
        ("Account.accountPublish", "false".into()),
        ("RingNS.uri", "http://127.0.0.1:8099".into()),
    ]
}

impl Jamid {
    pub(crate) async fn connect(
        name: &str,
        address: &str,
        home: PathBuf,
        pid: u32,
    ) -> Result<Self> {
        let conn = zbus::connection::Builder::address(address)?.build().await?;
        let rule = MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface(CM_IFACE)?
            .build();
        let config_stream = MessageStream::for_match_rule(rule, &conn, Some(4096)).await?;
        let rule = MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface(CALL_IFACE)?
            .build();
        let call_stream = MessageStream::for_match_rule(rule, &conn, Some(4096)).await?;
        let rule = MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface(VIDEO_IFACE)?
            .build();
        let video_stream = MessageStream::for_match_rule(rule, &conn, Some(4096)).await?;
        // The three interfaces' signals, in arrival order.
        let mut stream = futures_util::stream::select(
            futures_util::stream::select(config_stream, call_stream),
            video_stream,
        );
        let signals = Arc::new(Mutex::new(Vec::new()));
        let sink = signals.clone();
        let recorder = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let header = msg.header();
                let Some(member) = header.member() else {
                    continue;
                };
                let args = msg
                    .body()
                    .deserialize::<Structure<'_>>()
                    .map(|s| s.fields().iter().map(to_arg).collect())
                    .unwrap_or_default();
                if let Ok(mut v) = sink.lock() {
                    v.push(Signal {
                        name: member.to_string(),
                        args,
                    });
                }
            }
        });
        let cm = ConfigurationManagerProxy::new(&conn).await?;
        let calls = CallManagerProxy::new(&conn).await?;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let service = zbus::names::BusName::try_from(SERVICE).map_err(zbus::Error::from)?;
        while !dbus
            .name_has_owner(service.clone())
            .await
            .map_err(zbus::Error::from)?
        {
            if tokio::time::Instant::now() > deadline {
                return Err(LabError::Timeout(
                    Duration::from_secs(60),
                    format!("jamid {name} on D-Bus"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            name: name.to_owned(),
            home,
            pid,
            conn,
            cm,
            calls,
            signals,
            recorder,
        })
    }

    /// The daemon's name in the lab.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The daemon's PID.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The daemon's HOME.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The D-Bus connection, for calls this type does not wrap.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The data directory of a local account (`$XDG_DATA_HOME/jami/<account>`).
    pub fn account_dir(&self, account: &str) -> PathBuf {
        self.home.join(".local/share/jami").join(account)
    }

    /// Adds an account with the lab settings ([`lab_account_details`] for a bootstrap node on
    /// `bootstrap_port`) plus `extra`; returns the local account id.
    pub async fn add_account(&self, bootstrap_port: u16, extra: &[(&str, &str)]) -> Result<String> {
        let base = lab_account_details(bootstrap_port);
        let mut details: HashMap<&str, &str> = base.iter().map(|(k, v)| (*k, v.as_str())).collect();
        details.extend(extra.iter().copied());
        Ok(self.cm.add_account(details).await?)
    }

    /// `getAccountDetails`.
    pub async fn details(&self, account: &str) -> Result<HashMap<String, String>> {
        Ok(self.cm.get_account_details(account).await?)
    }

    /// `getVolatileAccountDetails`.
    pub async fn volatile_details(&self, account: &str) -> Result<HashMap<String, String>> {
        Ok(self.cm.get_volatile_account_details(account).await?)
    }

    /// Waits until the account is `REGISTERED` on the DHT; fails early on an error state.
    pub async fn wait_registered(&self, account: &str, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let failed = self.signals().into_iter().find(|s| {
                s.name == "registrationStateChanged"
                    && s.str(0) == account
                    && s.str(1).starts_with("ERROR")
            });
            if let Some(s) = failed {
                return Err(LabError::Peer(format!(
                    "jamid {}: account {account} {} ({})",
                    self.name,
                    s.str(1),
                    s.str(3)
                )));
            }
            match self.volatile_details(account).await {
                Ok(d)
                    if d.get("Account.registrationStatus").map(String::as_str)
                        == Some("REGISTERED") =>
                {
                    return Ok(());
                }
                _ => {}
            }
            if tokio::time::Instant::now() > deadline {
                return Err(LabError::Timeout(
                    timeout,
                    format!("account {account} REGISTERED on jamid {}", self.name),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The account's Jami ID (`Account.username`).
    pub async fn jami_id(&self, account: &str) -> Result<String> {
        self.details(account)
            .await?
            .remove("Account.username")
            .ok_or_else(|| LabError::Peer("no Account.username".into()))
    }

    /// The device id (`Account.deviceID`).
    pub async fn device_id(&self, account: &str) -> Result<String> {
        self.volatile_details(account)
            .await?
            .remove("Account.deviceID")
            .ok_or_else(|| LabError::Peer("no Account.deviceID".into()))
    }

    /// `exportToFile`: writes the account archive to `path`.
    pub async fn export_to_file(&self, account: &str, path: &Path, password: &str) -> Result<()> {
        if self
            .cm
            .export_to_file(account, &path.to_string_lossy(), password)
            .await?
        {
            Ok(())
        } else {
            Err(LabError::Peer(format!(
                "exportToFile({account}) returned false"
            )))
        }
    }

    /// `exportOnRing`: publishes the archive on the DHT; returns the PIN.
    pub async fn export_on_ring(
        &self,
        account: &str,
        password: &str,
        timeout: Duration,
    ) -> Result<String> {
        let mark = self.signals().len();
        self.cm.export_on_ring(account, password).await?;
        let s = self
            .wait_signal(mark, timeout, |s| {
                s.name == "exportOnRingEnded" && s.str(0) == account
            })
            .await?;
        match s.int(1) {
            Some(0) => Ok(s.str(2).to_owned()),
            status => Err(LabError::Peer(format!(
                "exportOnRingEnded status {status:?}"
            ))),
        }
    }

    /// `revokeDevice`; waits for `deviceRevocationEnded` and returns its status (0 = success).
    pub async fn revoke_device(
        &self,
        account: &str,
        password: &str,
        device: &str,
        timeout: Duration,
    ) -> Result<i64> {
        let mark = self.signals().len();
        // The method returns false even on success: only the signal tells.
        self.cm.revoke_device(account, password, device).await?;
        let s = self
            .wait_signal(mark, timeout, |s| {
                s.name == "deviceRevocationEnded" && s.str(0) == account && s.str(1) == device
            })
            .await?;
        s.int(2)
            .ok_or_else(|| LabError::Peer("deviceRevocationEnded without status".into()))
    }

    /// `registerName`: registers `name` at the account's name server; returns the status of
    /// `nameRegistrationEnded` (0 success, 1 wrong password, 2 invalid name, 3 taken, 4 error).
    pub async fn register_name(
        &self,
        account: &str,
        password: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<i64> {
        let mark = self.signals().len();
        self.cm.register_name(account, password, name).await?;
        let s = self
            .wait_signal(mark, timeout, |s| {
                s.name == "nameRegistrationEnded" && s.str(0) == account
            })
            .await?;
        s.int(1)
            .ok_or_else(|| LabError::Peer("nameRegistrationEnded without status".into()))
    }

    /// `lookupName`: (status of `registeredNameFound`, address). Status 0 found, 1 invalid,
    /// 2 not found, 3 error.
    pub async fn lookup_name(
        &self,
        account: &str,
        nameserver: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<(i64, String)> {
        let mark = self.signals().len();
        self.cm.lookup_name(account, nameserver, name).await?;
        let s = self
            .wait_signal(mark, timeout, |s| {
                s.name == "registeredNameFound" && s.str(0) == account
            })
            .await?;
        let status = s
            .int(1)
            .ok_or_else(|| LabError::Peer("registeredNameFound without status".into()))?;
        Ok((status, s.str(2).to_owned()))
    }

    /// `lookupAddress`: (status of `registeredNameFound`, name).
    pub async fn lookup_address(
        &self,
        account: &str,
        nameserver: &str,
        address: &str,
        timeout: Duration,
    ) -> Result<(i64, String)> {
        let mark = self.signals().len();
        self.cm.lookup_address(account, nameserver, address).await?;
        let s = self
            .wait_signal(mark, timeout, |s| {
                s.name == "registeredNameFound" && s.str(0) == account && s.str(2) == address
            })
            .await?;
        let status = s
            .int(1)
            .ok_or_else(|| LabError::Peer("registeredNameFound without status".into()))?;
        Ok((status, s.str(3).to_owned()))
    }

    /// `addContact`: adds `uri` (a Jami ID) as a contact, which creates the one-to-one
    /// conversation; jamid then sends the trust request.
    pub async fn add_contact(&self, account: &str, uri: &str) -> Result<()> {
        Ok(self.cm.add_contact(account, uri).await?)
    }

    /// `sendTrustRequest` with `payload` (a vCard, or empty).
    pub async fn send_trust_request(&self, account: &str, to: &str, payload: &[u8]) -> Result<()> {
        Ok(self.cm.send_trust_request(account, to, payload).await?)
    }

    /// `acceptTrustRequest` from `from` (a Jami ID); jamid then joins the conversation,
    /// which connects its device to the sender's.
    pub async fn accept_trust_request(&self, account: &str, from: &str) -> Result<bool> {
        Ok(self.cm.accept_trust_request(account, from).await?)
    }

    /// `sendTextMessage` with one payload of type `mime`; returns jamid's message id (0 when
    /// it refused to send).
    pub async fn send_text_message(
        &self,
        account: &str,
        to: &str,
        mime: &str,
        body: &str,
    ) -> Result<u64> {
        let payloads = HashMap::from([(mime, body)]);
        Ok(self.cm.send_text_message(account, to, payloads).await?)
    }

    /// `startConversation`: a new group conversation; its id.
    pub async fn start_conversation(&self, account: &str) -> Result<String> {
        Ok(self.cm.start_conversation(account).await?)
    }

    /// `sendMessage`: a text in a conversation (`flag` 0 with `commit` = a reply, 1 = an
    /// edit of `commit`).
    pub async fn send_conversation_message(
        &self,
        account: &str,
        conversation: &str,
        text: &str,
        commit: &str,
        flag: i32,
    ) -> Result<()> {
        Ok(self
            .cm
            .send_message(account, conversation, text, commit, flag)
            .await?)
    }

    /// `addConversationMember`: invites account `uri` (a `member`/`add` commit).
    pub async fn add_conversation_member(
        &self,
        account: &str,
        conversation: &str,
        uri: &str,
    ) -> Result<()> {
        Ok(self
            .cm
            .add_conversation_member(account, conversation, uri)
            .await?)
    }

    /// [`Jamid::send_conversation_message`], then its `messageReceived` signal (the commit
    /// is made).
    pub async fn post_conversation_message(
        &self,
        account: &str,
        conversation: &str,
        text: &str,
        commit: &str,
        flag: i32,
    ) -> Result<()> {
        let from = self.signals().len();
        self.send_conversation_message(account, conversation, text, commit, flag)
            .await?;
        self.wait_signal(from, Duration::from_secs(30), |s| {
            s.name == "messageReceived"
        })
        .await?;
        Ok(())
    }

    /// `loadConversationMessages` then its `conversationLoaded` signal: up to `n` messages
    /// from the newest, in jamid's display order.
    pub async fn load_conversation(
        &self,
        account: &str,
        conversation: &str,
        n: u32,
    ) -> Result<Vec<BTreeMap<String, String>>> {
        let from = self.signals().len();
        let id = self
            .cm
            .load_conversation_messages(account, conversation, "", n)
            .await?;
        let s = self
            .wait_signal(from, Duration::from_secs(30), |s| {
                s.name == "conversationLoaded" && s.int(0) == Some(i64::from(id))
            })
            .await?;
        match s.args.get(3) {
            Some(Arg::Maps(m)) => Ok(m.clone()),
            other => Err(LabError::Peer(format!(
                "conversationLoaded without messages: {other:?}"
            ))),
        }
    }

    /// `acceptConversationRequest`: jamid clones the conversation from the inviter's devices
    /// and joins.
    pub async fn accept_conversation_request(
        &self,
        account: &str,
        conversation: &str,
    ) -> Result<()> {
        Ok(self
            .cm
            .accept_conversation_request(account, conversation)
            .await?)
    }

    /// `getConversations`: the ids of the account's conversations.
    pub async fn conversations(&self, account: &str) -> Result<Vec<String>> {
        Ok(self.cm.get_conversations(account).await?)
    }

    /// `getContacts`: one map per contact (`id`, `added`, `confirmed` or `banned`,
    /// `conversationId`).
    pub async fn contacts(&self, account: &str) -> Result<Vec<HashMap<String, String>>> {
        Ok(self.cm.get_contacts(account).await?)
    }

    /// `setIsComposing` in conversation `conversation` (`swarm:<id>` is built here).
    pub async fn set_is_composing(
        &self,
        account: &str,
        conversation: &str,
        composing: bool,
    ) -> Result<()> {
        Ok(self
            .cm
            .set_is_composing(account, &format!("swarm:{conversation}"), composing)
            .await?)
    }

    /// `setMessageDisplayed` (status 3, displayed) for a commit of `conversation`.
    pub async fn set_message_displayed(
        &self,
        account: &str,
        conversation: &str,
        message: &str,
    ) -> Result<bool> {
        Ok(self
            .cm
            .set_message_displayed(account, &format!("swarm:{conversation}"), message, 3)
            .await?)
    }

    /// `setAccountDetails` with the current details and `changes` applied.
    pub async fn update_details(&self, account: &str, changes: &[(&str, &str)]) -> Result<()> {
        let current = self.details(account).await?;
        let mut map: HashMap<&str, &str> = current
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (k, v) in changes {
            map.insert(k, v);
        }
        Ok(self.cm.set_account_details(account, map).await?)
    }

    /// `getKnownRingDevices`: device id → name.
    pub async fn known_devices(&self, account: &str) -> Result<HashMap<String, String>> {
        Ok(self.cm.get_known_ring_devices(account).await?)
    }

    /// `setNoiseSuppressState`: turns jamid's noise suppression on or off (off for tests
    /// that send a steady tone, which it would suppress as noise).
    pub async fn set_noise_suppression(&self, on: bool) -> Result<()> {
        let state = if on { "true" } else { "false" };
        Ok(self.cm.set_noise_suppress_state(state).await?)
    }

    /// `placeCall`: calls `to` (a Jami id); the call id. Its progress comes as
    /// `callStateChanged(account, call, state, code)` signals.
    pub async fn place_call(&self, account: &str, to: &str) -> Result<String> {
        Ok(self.calls.place_call(account, to).await?)
    }

    /// `placeCallWithMedia`: calls `to` with audio (from the sound card) and video from
    /// `video_file` (jamid's `file://` source: any file FFmpeg reads, looped).
    pub async fn place_video_call(
        &self,
        account: &str,
        to: &str,
        video_file: &Path,
    ) -> Result<String> {
        let source = format!("file://{}", video_file.display());
        let audio = HashMap::from([
            ("MEDIA_TYPE", "MEDIA_TYPE_AUDIO"),
            ("ENABLED", "true"),
            ("MUTED", "false"),
            ("SOURCE", ""),
            ("LABEL", "audio_0"),
        ]);
        let video = HashMap::from([
            ("MEDIA_TYPE", "MEDIA_TYPE_VIDEO"),
            ("ENABLED", "true"),
            ("MUTED", "false"),
            ("SOURCE", source.as_str()),
            ("LABEL", "video_0"),
        ]);
        Ok(self
            .calls
            .place_call_with_media(account, to, &[audio, video])
            .await?)
    }

    /// `setActiveCodecList` with the codecs named (`opus`, `VP8`, `H264`, ...), in that
    /// order; codecs jamid does not have are left out.
    pub async fn set_codecs(&self, account: &str, names: &[&str]) -> Result<()> {
        let mut found = Vec::new();
        for id in self.cm.get_codec_list().await? {
            let d = self.cm.get_codec_details(account, id).await?;
            if let Some(name) = d.get("CodecInfo.name") {
                found.push((name.clone(), id));
            }
        }
        let list: Vec<u32> = names
            .iter()
            .filter_map(|n| found.iter().find(|(f, _)| f == n).map(|(_, id)| *id))
            .collect();
        Ok(self.cm.set_active_codec_list(account, &list).await?)
    }

    /// `accept`: answers an incoming call.
    pub async fn accept_call(&self, account: &str, call: &str) -> Result<bool> {
        Ok(self.calls.accept(account, call).await?)
    }

    /// `refuse`: declines an incoming call.
    pub async fn refuse_call(&self, account: &str, call: &str) -> Result<bool> {
        Ok(self.calls.refuse(account, call).await?)
    }

    /// `hangUp`: ends a call.
    pub async fn hang_up(&self, account: &str, call: &str) -> Result<bool> {
        Ok(self.calls.hang_up(account, call).await?)
    }

    /// `hold` (`true`) or `unhold`: jamid sends a re-INVITE (with a new media ICE session
    /// towards a peer whose User-Agent it does not know).
    pub async fn hold_call(&self, account: &str, call: &str, hold: bool) -> Result<bool> {
        Ok(if hold {
            self.calls.hold(account, call).await?
        } else {
            self.calls.unhold(account, call).await?
        })
    }

    /// `playDTMF`: presses `key` in jamid's current call (a SIP INFO `dtmf-relay`).
    pub async fn press_key(&self, key: char) -> Result<()> {
        Ok(self.calls.play_dtmf(&key.to_string()).await?)
    }

    /// `muteLocalMedia` of the call's audio: jamid sends silence and tells its peer.
    pub async fn mute_audio(&self, account: &str, call: &str, mute: bool) -> Result<bool> {
        Ok(self
            .calls
            .mute_local_media(account, call, "MEDIA_TYPE_AUDIO", mute)
            .await?)
    }

    /// `getCallDetails`: the call's details (`CALL_STATE`, `PEER_NUMBER`, ...).
    pub async fn call_details(&self, account: &str, call: &str) -> Result<HashMap<String, String>> {
        Ok(self.calls.get_call_details(account, call).await?)
    }

    /// `getCallList`: the account's call ids.
    pub async fn calls(&self, account: &str) -> Result<Vec<String>> {
        Ok(self.calls.get_call_list(account).await?)
    }

    /// Every signal recorded so far.
    pub fn signals(&self) -> Vec<Signal> {
        self.signals.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Waits for a signal, among those recorded after index `from`, that matches `pred`.
    pub async fn wait_signal(
        &self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&Signal) -> bool,
    ) -> Result<Signal> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(s) = self.signals().into_iter().skip(from).find(|s| pred(s)) {
                return Ok(s);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(LabError::Timeout(
                    timeout,
                    format!("a signal from jamid {}", self.name),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
