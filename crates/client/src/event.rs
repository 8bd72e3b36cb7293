//! What a running account reports.

use pamoja_identity::JamiId;
use pamoja_swarm::Body;
use serde_json::Value as Json;

use crate::id::{CallId, ConversationId, MessageId};
use crate::presence::Status;

/// Where a call stands (see [`Event::CallState`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallState {
    /// Our INVITE is out.
    Calling,
    /// The peer rings.
    Ringing,
    /// A peer calls us: answer or hang up.
    Incoming,
    /// Answered, media ICE running.
    Connecting,
    /// Media flowing.
    Current,
    /// Media flowing again after a re-INVITE, held by us.
    Hold,
    /// Over (the event's `reason` says why).
    Ended,
}

impl CallState {
    /// The lower-case name (`calling`, `ringing`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Calling => "calling",
            Self::Ringing => "ringing",
            Self::Incoming => "incoming",
            Self::Connecting => "connecting",
            Self::Current => "current",
            Self::Hold => "hold",
            Self::Ended => "ended",
        }
    }
}

/// An event of a running account (see [`crate::Client`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Someone asks to become a contact.
    TrustRequest {
        /// Their Jami ID.
        from: JamiId,
        /// The one-to-one conversation they created.
        conversation: ConversationId,
        /// The display name of the profile they sent, if any.
        name: Option<String>,
        /// When it arrived, Unix seconds.
        received: i64,
    },
    /// A contact was added, or confirmed by the other side.
    ContactAdded {
        /// The contact's Jami ID.
        id: JamiId,
        /// Whether both sides agreed.
        confirmed: bool,
        /// The one-to-one conversation.
        conversation: ConversationId,
    },
    /// A contact was removed (or banned).
    ContactRemoved {
        /// The contact's Jami ID.
        id: JamiId,
        /// Whether banned.
        banned: bool,
    },
    /// An invitation to a group conversation.
    ConversationRequest {
        /// The conversation.
        conversation: ConversationId,
        /// Who invites.
        from: JamiId,
        /// Its details (`title`, `mode`...).
        metadatas: serde_json::Map<String, Json>,
    },
    /// A conversation is here: created, or cloned and joined.
    ConversationReady {
        /// The conversation.
        conversation: ConversationId,
    },
    /// A new message (commit) of a conversation, ours or fetched.
    Message {
        /// The conversation.
        conversation: ConversationId,
        /// Commit id.
        id: MessageId,
        /// Author's account, when it resolves.
        author: Option<JamiId>,
        /// Author's device.
        device: String,
        /// `text/plain`, `member`, `merge`...
        kind: String,
        /// The commit's body (empty for merges).
        body: Body,
        /// Commit time, Unix seconds.
        timestamp: i64,
    },
    /// A member is typing, or stopped.
    Typing {
        /// The conversation.
        conversation: ConversationId,
        /// Who.
        from: JamiId,
        /// Typing or not.
        on: bool,
    },
    /// A member displayed a message.
    Displayed {
        /// The conversation.
        conversation: ConversationId,
        /// Who.
        from: JamiId,
        /// The commit displayed.
        message: MessageId,
    },
    /// A contact's presence changed.
    Presence {
        /// The contact.
        contact: JamiId,
        /// Offline, reachable or connected.
        status: Status,
    },
    /// Progress of a long transfer (a first clone).
    Progress {
        /// The conversation.
        conversation: ConversationId,
        /// Bytes received so far.
        bytes: u64,
    },
    /// A call changed state.
    CallState {
        /// The call (its SIP Call-ID).
        call: CallId,
        /// The peer's account.
        peer: JamiId,
        /// The new state.
        state: CallState,
        /// Why it ended: `local`, `hung_up`, `cancelled`, `busy`, `declined`, `timeout`,
        /// `failed: CODE REASON`, or `media: ...`.
        reason: Option<String>,
    },
    /// A call's media figures, sent when the call ends.
    CallStats(CallStats),
    /// What a call's media are now: sent whenever its media (re)start after an offer and
    /// answer (the first, or a re-INVITE from either side), when we mute or unmute, and when
    /// the peer says it records or mutes.
    CallMedia {
        /// The call.
        call: CallId,
        /// We hold the call (nothing sent).
        hold: bool,
        /// The peer holds it: every section of its SDP says it receives nothing.
        peer_hold: bool,
        /// Our audio is muted (silence is sent, as jamid does).
        muted: bool,
        /// A video stream runs.
        video: bool,
        /// The peer says it records the call (its `recording_state` INFO).
        peer_recording: bool,
        /// The peer says it muted its audio (its `mute_state` INFO).
        peer_muted: bool,
    },
    /// The peer pressed a key (a SIP INFO `application/dtmf-relay`).
    CallDtmf {
        /// The call.
        call: CallId,
        /// The key: `0`-`9`, `*`, `#`, `A`-`D`.
        key: char,
    },
    /// A fetched history was refused: nothing of it was merged.
    SyncRefused {
        /// The conversation.
        conversation: ConversationId,
        /// The device fetched from.
        device: String,
        /// Why.
        reason: String,
    },
}

/// A call's media figures (the `call_stats` event).
#[derive(Debug, Clone, PartialEq)]
pub struct CallStats {
    /// The call.
    pub call: CallId,
    /// The codec we sent with (`opus/48000/2`).
    pub codec: String,
    /// RTP packets sent.
    pub tx_packets: u64,
    /// Their payload bytes.
    pub tx_bytes: u64,
    /// RTP packets received and authenticated.
    pub rx_packets: u64,
    /// Their payload bytes.
    pub rx_bytes: u64,
    /// Opus frames decoded from them.
    pub rx_audio_frames_decoded: u64,
    /// Frames concealed for lost packets.
    pub rx_audio_frames_concealed: u64,
    /// Packets the peer's sequence numbers say were lost.
    pub rx_lost: i64,
    /// Interarrival jitter, in milliseconds.
    pub rx_jitter_ms: u64,
    /// The longest time without a packet of the peer's audio, in milliseconds.
    pub rx_audio_longest_gap_ms: u64,
    /// Packets dropped by SRTP (forged, replayed, truncated).
    pub rx_srtp_dropped: u64,
    /// Packets the peer's latest receiver report says it got of ours.
    pub remote_received: Option<u64>,
    /// Seconds the media flowed.
    pub duration_s: f64,
    /// The round trip of the peer's latest report on our audio (ms), when it echoed one
    /// of our sender reports.
    pub rtt_ms: Option<u64>,
    /// The video stream's figures, when video flowed.
    pub video: Option<VideoCallStats>,
}

/// A call's video figures (the `video` object of `call_stats`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VideoCallStats {
    /// The codec we sent with (`VP8/90000`).
    pub codec: String,
    /// RTP packets sent.
    pub tx_packets: u64,
    /// Pictures sent.
    pub tx_frames: u64,
    /// Key frames among them.
    pub tx_key_frames: u64,
    /// RTP packets received and authenticated.
    pub rx_packets: u64,
    /// Packets lost on the way to us.
    pub rx_lost: i64,
    /// Pictures received whole and decoded.
    pub rx_frames_decoded: u64,
    /// Key frames we asked for / were asked for (SIP INFO `picture_fast_update`).
    pub key_frame_requests_sent: u64,
    /// Key frames the peer asked us for.
    pub key_frame_requests_received: u64,
    /// Lowest and mean PSNR of the pictures received (dB), when measured against the
    /// test pattern.
    pub psnr_min: Option<f64>,
    /// Mean PSNR.
    pub psnr_mean: Option<f64>,
    /// Our encoder's bitrate over the call: lowest, highest, last (kb/s).
    pub bitrate_min_kbps: u64,
    /// Highest.
    pub bitrate_max_kbps: u64,
    /// Last.
    pub bitrate_last_kbps: u64,
}
