//! The core's vocabulary: what goes in ([`Input`]) and what it asks the shell to do ([`Io`]).
//!
//! Every variant of [`Io`] is one piece of I/O; its result, if it has one, comes back as
//! the [`Input`] named in its documentation. The shell may run several at once and feed
//! their results back in any order: the core never assumes an order between two results.

use pamoja_identity::{Certificate, DeviceId, JamiId, PublicKey, ShortDeviceId};
use pamoja_swarm::{Message, Mode, Role};

use crate::config::Settings;
use crate::error::ClientError;
use crate::event::CallStats;
use crate::id::{CallId, ConversationId, MessageId};
use pamoja_media::negotiate::Negotiated;

use super::calls::{CallCommand, GatherId, LocalMedia, MediaNews};
use crate::trust::TrustRequest;

/// A channel the shell holds, named by a number the shell gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(pub u64);

/// A command waiting for its reply (see [`Io::Reply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub u64);

/// What the user asks of the account.
#[derive(Debug, Clone)]
pub enum Command {
    /// Ask an account to become a contact ([`Reply::Conversation`]).
    AddContact(JamiId),
    /// Accept a trust request ([`Reply::Conversation`]).
    AcceptContact(JamiId),
    /// Decline a trust request.
    DeclineContact(JamiId),
    /// Remove a contact, banning it or not.
    RemoveContact {
        /// The contact.
        id: JamiId,
        /// Refuse its devices from now on.
        ban: bool,
    },
    /// Lift a ban.
    UnbanContact(JamiId),
    /// Replace the settings.
    SetSettings(Settings),
    /// Post a text ([`Reply::Commit`]).
    SendMessage {
        /// The conversation.
        conversation: ConversationId,
        /// The text.
        text: String,
    },
    /// Tell the linked members we type, or stopped ([`Reply::Count`]).
    SetTyping {
        /// The conversation.
        conversation: ConversationId,
        /// Typing or not.
        on: bool,
    },
    /// Tell the linked members we displayed a message ([`Reply::Count`]).
    SetDisplayed {
        /// The conversation.
        conversation: ConversationId,
        /// The commit displayed.
        message: MessageId,
    },
    /// Create a group conversation ([`Reply::Conversation`]).
    CreateGroup,
    /// Invite an account to a group conversation ([`Reply::Commit`]).
    Invite {
        /// The conversation.
        conversation: ConversationId,
        /// The account invited.
        id: JamiId,
    },
    /// Accept an invitation: the conversation is cloned from the inviter and joined.
    AcceptConversation(ConversationId),
    /// Leave a conversation.
    Leave(ConversationId),
    /// Vote an account out of a conversation we administer.
    RemoveMember {
        /// The conversation.
        conversation: ConversationId,
        /// The account.
        id: JamiId,
    },
    /// Call an account: the first device a `sip` channel reaches is called
    /// ([`Reply::Call`]).
    PlaceCall {
        /// The account called.
        to: JamiId,
        /// With video.
        video: bool,
        /// We record what we receive (the peer is told).
        records: bool,
    },
    /// A command about a call in progress ([`Reply::Done`]).
    Call(CallId, CallCommand),
    /// What calls answered automatically send: video or not, recorded or not.
    AutoAnswerMedia {
        /// With video.
        video: bool,
        /// Recorded.
        records: bool,
    },
}

/// The answer to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Done, nothing to say.
    Done,
    /// A conversation.
    Conversation(ConversationId),
    /// A commit.
    Commit(MessageId),
    /// How many devices were told.
    Count(usize),
    /// A call placed.
    Call(CallId),
}

/// A repository change the core asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitOp {
    /// Create a conversation (no id yet: [`GitOutcome::created`] names it).
    Create {
        /// Its mode.
        mode: Mode,
        /// The one invited (one-to-one conversations).
        invited: Option<JamiId>,
    },
    /// Post a text.
    Post(String),
    /// Add a member (the `add` commit).
    AddMember(JamiId),
    /// Join a conversation we are invited to.
    Join,
    /// Leave it.
    Leave,
    /// Vote an account out.
    VoteBan(JamiId),
    /// Fetch from a device, validate what came and merge it.
    Fetch {
        /// The device.
        device: DeviceId,
        /// Its account, when known (left out of the notices that follow).
        account: Option<JamiId>,
        /// Its certificate chain when known (else the link must be up, or the
        /// repository knows the device).
        chain: Option<Vec<Certificate>>,
    },
    /// Clone the conversation from the first of these devices that serves it.
    Clone {
        /// The devices' certificate chains.
        chains: Vec<Vec<Certificate>>,
    },
    /// Delete our copy (a clone that does not invite us).
    Remove,
    /// Read the whole history, oldest first (after a clone, once the conversation is
    /// ready).
    History,
}

/// What a repository change did.
#[derive(Debug, Clone, Default)]
pub struct GitOutcome {
    /// The id of a conversation just created.
    pub created: Option<ConversationId>,
    /// The commits that are new on `main`, oldest first (the whole history for
    /// [`GitOp::History`]).
    pub commits: Vec<Message>,
    /// The members of the conversation now.
    pub members: Vec<(String, Role)>,
    /// For a fetch: the new head when `main` moved (a merge commit of ours, or the
    /// remote head).
    pub moved_to: Option<MessageId>,
    /// Devices that failed to serve a clone, and why.
    pub refused: Vec<(String, String)>,
}

/// A file of the data directory the core keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFile {
    /// `contacts` and `incomingTrustRequests` (jamid's formats).
    Contacts,
    /// `settings.json`.
    Settings,
    /// `convRequests.json`.
    ConvRequests,
}

/// What happened outside the core.
#[derive(Debug)]
pub enum Input {
    /// A command of the user.
    Command(Ticket, Command),
    /// Result of [`Io::LookupDevices`]: the device chains announced at an account's key
    /// (device certificate first).
    Devices {
        /// The account.
        account: JamiId,
        /// The chains found (possibly none).
        chains: Vec<Vec<Certificate>>,
    },
    /// An announcement of a device of `account` (its short id) was seen; `fresh` when it
    /// was just put (a listen), not found by a lookup.
    Announced {
        /// The account.
        account: JamiId,
        /// The device's short id.
        device: ShortDeviceId,
        /// Just put.
        fresh: bool,
    },
    /// A channel is up: one a peer opened, or one of [`Io::OpenSip`].
    ChannelUp {
        /// The shell's name for it.
        channel: ChannelId,
        /// The device at the other end.
        device: DeviceId,
        /// Its account, as the link's TLS certificate says (`None`: not known).
        account: Option<JamiId>,
        /// The channel's name (`sip`, `git://...`).
        name: String,
    },
    /// [`Io::OpenSip`] failed.
    ChannelFailed {
        /// The device.
        device: DeviceId,
        /// Why.
        reason: String,
    },
    /// Bytes read on a channel.
    ChannelData {
        /// The channel.
        channel: ChannelId,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A channel closed (either side).
    ChannelClosed(ChannelId),
    /// An instant message from the DHT inbox.
    Inbox {
        /// Its id (a message is handled once, whichever way it came).
        id: String,
        /// The sender's account.
        from: JamiId,
        /// Its device.
        device: DeviceId,
        /// Content type.
        mime: String,
        /// Body.
        body: String,
    },
    /// A trust request (or confirmation) from the DHT inbox.
    Trust {
        /// The sender's account.
        from: JamiId,
        /// The sending device's key (DER).
        device: Vec<u8>,
        /// The request.
        request: TrustRequest,
    },
    /// A peer fetched from us on a `git://` channel ([`Io::Serve`]).
    Served {
        /// The conversation.
        conversation: ConversationId,
        /// The peer's device.
        device: DeviceId,
        /// Its account.
        account: Option<JamiId>,
    },
    /// Result of [`Io::Git`].
    Git {
        /// The conversation (the temporary name of a creation is not given).
        conversation: Option<ConversationId>,
        /// The operation.
        op: GitOp,
        /// What it did.
        result: Result<GitOutcome, ClientError>,
    },
    /// Bytes of a clone received so far.
    Progress {
        /// The conversation.
        conversation: ConversationId,
        /// Bytes.
        bytes: u64,
    },
    /// Result of [`Io::GatherMedia`] (`None`: no session could be gathered).
    MediaGathered {
        /// The session.
        gather: GatherId,
        /// What it offers.
        local: Option<LocalMedia>,
    },
    /// News of a call's media.
    CallMedia {
        /// The call.
        call: CallId,
        /// What happened.
        news: MediaNews,
    },
    /// Result of [`Io::StopMedia`]: the media's figures (`None`: none ran).
    CallReport {
        /// The call.
        call: CallId,
        /// The figures.
        stats: Option<CallStats>,
    },
}

/// What the core asks the shell to do.
#[derive(Debug)]
pub enum Io {
    /// Answer a command.
    Reply(Ticket, Result<Reply, ClientError>),
    /// Put our device announcement, certificate and CRL on the DHT.
    Announce,
    /// Look up the devices an account announces: [`Input::Devices`].
    LookupDevices(JamiId),
    /// Look up an account's announcements: an [`Input::Announced`] each (not fresh).
    LookupAnnouncements(JamiId),
    /// Listen to an account's announcements: an [`Input::Announced`] (fresh) each.
    Listen(JamiId),
    /// Seal a trust request for a device and put it at its inbox.
    PutTrust {
        /// The device's key.
        device: PublicKey,
        /// The request.
        request: TrustRequest,
    },
    /// Seal an instant message for a device and put it at its inbox.
    PutInbox {
        /// The device's key.
        device: PublicKey,
        /// Message id.
        id: u64,
        /// Content type.
        mime: String,
        /// Body.
        body: String,
    },
    /// Open a `sip` channel to the device of `chain`: [`Input::ChannelUp`] or
    /// [`Input::ChannelFailed`].
    OpenSip {
        /// Device certificate first.
        chain: Vec<Certificate>,
    },
    /// Send bytes on a channel.
    Send {
        /// The channel.
        channel: ChannelId,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Close a channel.
    Close(ChannelId),
    /// Refuse (`banned`) or accept again links from the devices of an account, from now on.
    Ban {
        /// The account.
        account: JamiId,
        /// Refused or not.
        banned: bool,
    },
    /// Serve a conversation's repository on a `git://` channel: [`Input::Served`] each
    /// time the peer fetched.
    Serve {
        /// The channel.
        channel: ChannelId,
        /// The conversation.
        conversation: ConversationId,
        /// The peer's device.
        device: DeviceId,
        /// Its account.
        account: Option<JamiId>,
    },
    /// Change a repository: [`Input::Git`].
    Git {
        /// The conversation (`None` for a creation).
        conversation: Option<ConversationId>,
        /// The change.
        op: GitOp,
    },
    /// Write one of the account's files.
    Persist {
        /// Which.
        file: StateFile,
        /// Its new content (for [`StateFile::Contacts`]: `contacts`, then
        /// `incomingTrustRequests` in `extra`).
        data: Vec<u8>,
        /// The second file's content, when the state has two.
        extra: Option<Vec<u8>>,
    },
    /// Gather a media session (UDP ICE, `components` components): [`Input::MediaGathered`].
    GatherMedia {
        /// Its name.
        gather: GatherId,
        /// Two per section (RTP and RTCP).
        components: u32,
        /// The ICE role: controlling (the offerer) or controlled.
        controlling: bool,
    },
    /// Start a call's media on a gathered session: ICE, then the streams; the previous
    /// media of the call run until the new ICE session is up. [`Input::CallMedia`] says
    /// when they are up, or failed.
    StartMedia {
        /// The call.
        call: CallId,
        /// The session.
        gather: GatherId,
        /// The offer and answer.
        negotiated: Negotiated,
        /// We hold the call: nothing is sent.
        hold: bool,
        /// A video stream runs.
        video: bool,
    },
    /// Stop a call's media: [`Input::CallReport`].
    StopMedia(CallId),
    /// A gathered session is not needed.
    DropMedia(GatherId),
    /// The peer asks for a key frame of our video.
    KeyFrame(CallId),
    /// Mute our audio in a call, or not.
    SetMuted {
        /// The call.
        call: CallId,
        /// Muted.
        muted: bool,
    },
    /// A call exists (the media options of the command that placed it, by its ticket, or
    /// of auto-answer, apply).
    CallStarted {
        /// The call.
        call: CallId,
        /// The peer's account.
        peer: JamiId,
        /// Answered automatically.
        auto_answer: bool,
        /// The command that placed it.
        ticket: Option<Ticket>,
    },
    /// A call is over and reported: its media state can go.
    CallEnded(CallId),
}

/// Device id of the first certificate of a chain.
pub(crate) fn device_of(chain: &[Certificate]) -> Option<DeviceId> {
    chain.first().map(|c| c.public_key().device_id())
}
