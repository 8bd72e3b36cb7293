//! What a running account reports.

use serde_json::{Value as Json, json};

/// An event of a running account (see [`crate::Client`]). [`Event::to_json`] gives the
/// one-line JSON form the `jami run` example prints.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Someone asks to become a contact.
    TrustRequest {
        /// Their Jami ID.
        from: String,
        /// The one-to-one conversation they created.
        conversation: String,
        /// The display name of the profile they sent, if any.
        name: Option<String>,
        /// When it arrived, Unix seconds.
        received: i64,
    },
    /// A contact was added, or confirmed by the other side.
    ContactAdded {
        /// The contact's Jami ID.
        id: String,
        /// Whether both sides agreed.
        confirmed: bool,
        /// The one-to-one conversation.
        conversation: String,
    },
    /// A contact was removed (or banned).
    ContactRemoved {
        /// The contact's Jami ID.
        id: String,
        /// Whether banned.
        banned: bool,
    },
    /// An invitation to a group conversation.
    ConversationRequest {
        /// The conversation.
        conversation: String,
        /// Who invites.
        from: String,
        /// Its details (`title`, `mode`...).
        metadatas: serde_json::Map<String, Json>,
    },
    /// A conversation is here: created, or cloned and joined.
    ConversationReady {
        /// The conversation.
        conversation: String,
    },
    /// A new message (commit) of a conversation, ours or fetched.
    Message {
        /// The conversation.
        conversation: String,
        /// Commit id.
        id: String,
        /// Author's account, when it resolves.
        author: Option<String>,
        /// Author's device.
        device: String,
        /// `text/plain`, `member`, `merge`...
        kind: String,
        /// The commit's JSON body (`null` for merges).
        body: Json,
        /// Commit time, Unix seconds.
        timestamp: i64,
    },
    /// A member is typing, or stopped.
    Typing {
        /// The conversation.
        conversation: String,
        /// Who.
        from: String,
        /// Typing or not.
        on: bool,
    },
    /// A member displayed a message.
    Displayed {
        /// The conversation.
        conversation: String,
        /// Who.
        from: String,
        /// The commit displayed.
        message: String,
    },
    /// A contact's presence changed.
    Presence {
        /// The contact.
        contact: String,
        /// `offline`, `reachable` or `connected`.
        status: &'static str,
    },
    /// Progress of a long transfer (a first clone).
    Progress {
        /// The conversation.
        conversation: String,
        /// Bytes received so far.
        bytes: u64,
    },
    /// A call changed state: `calling` (our INVITE is out), `ringing` (the peer rings),
    /// `incoming` (a peer calls us; answer or hang up), `connecting` (answered, media ICE
    /// running), `current` (media flowing), `hold` (media flowing again after a
    /// re-INVITE, held by us), `ended` (with a reason).
    CallState {
        /// The call (its SIP Call-ID).
        call: String,
        /// The peer's account.
        peer: String,
        /// The new state.
        state: &'static str,
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
        call: String,
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
        call: String,
        /// The key: `0`-`9`, `*`, `#`, `A`-`D`.
        key: char,
    },
    /// A fetched history was refused: nothing of it was merged.
    SyncRefused {
        /// The conversation.
        conversation: String,
        /// The device fetched from.
        device: String,
        /// Why.
        reason: String,
    },
}

/// A call's media figures (the `call_stats` event).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallStats {
    /// The call.
    pub call: String,
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

impl Event {
    /// The event's name (`"event"` in its JSON form).
    pub fn name(&self) -> &'static str {
        match self {
            Self::TrustRequest { .. } => "trust_request",
            Self::ContactAdded { .. } => "contact_added",
            Self::ContactRemoved { .. } => "contact_removed",
            Self::ConversationRequest { .. } => "conversation_request",
            Self::ConversationReady { .. } => "conversation_ready",
            Self::Message { .. } => "message",
            Self::Typing { .. } => "typing",
            Self::Displayed { .. } => "displayed",
            Self::Presence { .. } => "presence",
            Self::Progress { .. } => "progress",
            Self::SyncRefused { .. } => "sync_refused",
            Self::CallState { .. } => "call_state",
            Self::CallStats(_) => "call_stats",
            Self::CallMedia { .. } => "call_media",
            Self::CallDtmf { .. } => "call_dtmf",
        }
    }

    /// One JSON object: `{"event": NAME, ...fields}`.
    pub fn to_json(&self) -> Json {
        let mut j = match self {
            Self::TrustRequest {
                from,
                conversation,
                name,
                received,
            } => {
                json!({"from": from, "conversation": conversation, "name": name, "received": received})
            }
            Self::ContactAdded {
                id,
                confirmed,
                conversation,
            } => json!({"id": id, "confirmed": confirmed, "conversation": conversation}),
            Self::ContactRemoved { id, banned } => json!({"id": id, "banned": banned}),
            Self::ConversationRequest {
                conversation,
                from,
                metadatas,
            } => json!({"conversation": conversation, "from": from, "metadatas": metadatas}),
            Self::ConversationReady { conversation } => json!({"conversation": conversation}),
            Self::Message {
                conversation,
                id,
                author,
                device,
                kind,
                body,
                timestamp,
            } => json!({"conversation": conversation, "id": id, "author": author,
                "device": device, "type": kind, "body": body, "timestamp": timestamp}),
            Self::Typing {
                conversation,
                from,
                on,
            } => json!({"conversation": conversation, "from": from, "on": on}),
            Self::Displayed {
                conversation,
                from,
                message,
            } => json!({"conversation": conversation, "from": from, "message": message}),
            Self::Presence { contact, status } => json!({"contact": contact, "status": status}),
            Self::Progress {
                conversation,
                bytes,
            } => json!({"conversation": conversation, "bytes": bytes}),
            Self::SyncRefused {
                conversation,
                device,
                reason,
            } => json!({"conversation": conversation, "device": device, "reason": reason}),
            Self::CallState {
                call,
                peer,
                state,
                reason,
            } => json!({"call": call, "peer": peer, "state": state, "reason": reason}),
            Self::CallMedia {
                call,
                hold,
                peer_hold,
                muted,
                video,
                peer_recording,
                peer_muted,
            } => json!({
                "call": call, "hold": hold, "peer_hold": peer_hold, "muted": muted, "video": video,
                "peer_recording": peer_recording, "peer_muted": peer_muted
            }),
            Self::CallDtmf { call, key } => json!({"call": call, "key": key.to_string()}),
            Self::CallStats(s) => json!({
                "call": s.call, "codec": s.codec,
                "tx_packets": s.tx_packets, "tx_bytes": s.tx_bytes,
                "rx_packets": s.rx_packets, "rx_bytes": s.rx_bytes,
                "rx_audio_frames_decoded": s.rx_audio_frames_decoded,
                "rx_audio_frames_concealed": s.rx_audio_frames_concealed,
                "rx_lost": s.rx_lost, "rx_jitter_ms": s.rx_jitter_ms,
                "rx_audio_longest_gap_ms": s.rx_audio_longest_gap_ms,
                "rx_srtp_dropped": s.rx_srtp_dropped,
                "remote_received": s.remote_received, "duration_s": s.duration_s,
                "rtt_ms": s.rtt_ms,
                "video": s.video.as_ref().map(|v| json!({
                    "codec": v.codec, "tx_packets": v.tx_packets, "tx_frames": v.tx_frames,
                    "tx_key_frames": v.tx_key_frames, "rx_packets": v.rx_packets,
                    "rx_lost": v.rx_lost, "rx_frames_decoded": v.rx_frames_decoded,
                    "key_frame_requests_sent": v.key_frame_requests_sent,
                    "key_frame_requests_received": v.key_frame_requests_received,
                    "psnr_min": v.psnr_min, "psnr_mean": v.psnr_mean,
                    "bitrate_min_kbps": v.bitrate_min_kbps, "bitrate_max_kbps": v.bitrate_max_kbps,
                    "bitrate_last_kbps": v.bitrate_last_kbps,
                })),
            }),
        };
        if let Json::Object(m) = &mut j {
            m.insert("event".into(), Json::from(self.name()));
        }
        j
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form() {
        let e = Event::Typing {
            conversation: "c".into(),
            from: "f".into(),
            on: true,
        };
        assert_eq!(
            e.to_json(),
            json!({"event": "typing", "conversation": "c", "from": "f", "on": true})
        );
        let e = Event::ContactAdded {
            id: "a".into(),
            confirmed: false,
            conversation: "c".into(),
        };
        assert_eq!(e.to_json()["event"], "contact_added");
        assert_eq!(e.to_json()["confirmed"], false);
    }
}
