//! Events as `jami run` prints them: one JSON object per line, `{"event": NAME, ...}`
//! (docs/jami-run.md).

use pamoja::client::Event;
use serde_json::{Value as Json, json};

/// The event's name (`"event"` in its JSON form).
pub fn name(e: &Event) -> &'static str {
    match e {
        Event::TrustRequest { .. } => "trust_request",
        Event::ContactAdded { .. } => "contact_added",
        Event::ContactRemoved { .. } => "contact_removed",
        Event::ConversationRequest { .. } => "conversation_request",
        Event::ConversationReady { .. } => "conversation_ready",
        Event::Message { .. } => "message",
        Event::Typing { .. } => "typing",
        Event::Displayed { .. } => "displayed",
        Event::Presence { .. } => "presence",
        Event::Progress { .. } => "progress",
        Event::SyncRefused { .. } => "sync_refused",
        Event::CallState { .. } => "call_state",
        Event::CallStats(_) => "call_stats",
        Event::CallMedia { .. } => "call_media",
        Event::CallDtmf { .. } => "call_dtmf",
    }
}

/// One JSON object: `{"event": NAME, ...fields}`.
pub fn event(e: &Event) -> Json {
    let s = |x: &dyn std::fmt::Display| x.to_string();
    let mut j = match e {
        Event::TrustRequest {
            from,
            conversation,
            name,
            received,
        } => json!({"from": s(from), "conversation": s(conversation), "name": name,
            "received": received}),
        Event::ContactAdded {
            id,
            confirmed,
            conversation,
        } => json!({"id": s(id), "confirmed": confirmed, "conversation": s(conversation)}),
        Event::ContactRemoved { id, banned } => json!({"id": s(id), "banned": banned}),
        Event::ConversationRequest {
            conversation,
            from,
            metadatas,
        } => json!({"conversation": s(conversation), "from": s(from), "metadatas": metadatas}),
        Event::ConversationReady { conversation } => json!({"conversation": s(conversation)}),
        Event::Message {
            conversation,
            id,
            author,
            device,
            kind,
            body,
            timestamp,
        } => {
            let body = if kind == "merge" {
                Json::Null
            } else {
                serde_json::from_str(&body.encode()).unwrap_or(Json::Null)
            };
            json!({"conversation": s(conversation), "id": s(id),
                "author": author.map(|a| a.to_string()), "device": device, "type": kind,
                "body": body, "timestamp": timestamp})
        }
        Event::Typing {
            conversation,
            from,
            on,
        } => json!({"conversation": s(conversation), "from": s(from), "on": on}),
        Event::Displayed {
            conversation,
            from,
            message,
        } => json!({"conversation": s(conversation), "from": s(from), "message": s(message)}),
        Event::Presence { contact, status } => {
            json!({"contact": s(contact), "status": status.as_str()})
        }
        Event::Progress {
            conversation,
            bytes,
        } => json!({"conversation": s(conversation), "bytes": bytes}),
        Event::SyncRefused {
            conversation,
            device,
            reason,
        } => json!({"conversation": s(conversation), "device": device, "reason": reason}),
        Event::CallState {
            call,
            peer,
            state,
            reason,
        } => json!({"call": s(call), "peer": s(peer), "state": state.as_str(),
            "reason": reason}),
        Event::CallMedia {
            call,
            hold,
            peer_hold,
            muted,
            video,
            peer_recording,
            peer_muted,
        } => json!({
            "call": s(call), "hold": hold, "peer_hold": peer_hold, "muted": muted,
            "video": video, "peer_recording": peer_recording, "peer_muted": peer_muted
        }),
        Event::CallDtmf { call, key } => json!({"call": s(call), "key": key.to_string()}),
        Event::CallStats(st) => json!({
            "call": s(&st.call), "codec": st.codec,
            "tx_packets": st.tx_packets, "tx_bytes": st.tx_bytes,
            "rx_packets": st.rx_packets, "rx_bytes": st.rx_bytes,
            "rx_audio_frames_decoded": st.rx_audio_frames_decoded,
            "rx_audio_frames_concealed": st.rx_audio_frames_concealed,
            "rx_lost": st.rx_lost, "rx_jitter_ms": st.rx_jitter_ms,
            "rx_audio_longest_gap_ms": st.rx_audio_longest_gap_ms,
            "rx_srtp_dropped": st.rx_srtp_dropped,
            "remote_received": st.remote_received, "duration_s": st.duration_s,
            "rtt_ms": st.rtt_ms,
            "video": st.video.as_ref().map(|v| json!({
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
        m.insert("event".into(), Json::from(name(e)));
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form() {
        let conv = "0123456789abcdef0123456789abcdef01234567";
        let from = "89abcdef0123456789abcdef0123456789abcdef";
        let e = Event::Typing {
            conversation: conv.parse().unwrap(),
            from: from.parse().unwrap(),
            on: true,
        };
        assert_eq!(
            event(&e),
            json!({"event": "typing", "conversation": conv, "from": from, "on": true})
        );
    }
}
