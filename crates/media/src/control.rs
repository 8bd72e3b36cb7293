//! The bodies of in-dialog INFO requests jamid sends and reads.
//!
//! * `application/media_control+xml`: a keyframe request (`picture_fast_update`, at most
//!   one a second), and the recording, mute and voice-activity states;
//! * `application/dtmf-relay`: `Signal=<c>\r\nDuration=<ms>\r\n`.

/// The content type of media control bodies.
pub const MEDIA_CONTROL: &str = "application/media_control+xml";
/// The content type of DTMF bodies.
pub const DTMF_RELAY: &str = "application/dtmf-relay";

/// What a media control body asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Send a keyframe (of video stream `stream` when given).
    KeyFrame {
        /// The `<stream_id>`, if written.
        stream: Option<u32>,
    },
    /// The peer records the call (true) or stopped.
    Recording(bool),
    /// The peer muted (true) or unmuted its audio.
    Mute(bool),
    /// The peer speaks (true) or went quiet.
    VoiceActivity(bool),
    /// The device was turned (degrees).
    Orientation(i32),
}

fn xml(inner: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\" ?><media_control><vc_primitive><to_encoder>{inner}</to_encoder></vc_primitive></media_control>"
    )
}

impl Control {
    /// The body as jamid writes it.
    pub fn to_body(&self) -> String {
        match self {
            Control::KeyFrame { stream: None } => xml("<picture_fast_update/>"),
            Control::KeyFrame { stream: Some(s) } => format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\" ?><media_control><vc_primitive><stream_id>{s}</stream_id><to_encoder><picture_fast_update/></to_encoder></vc_primitive></media_control>"
            ),
            Control::Recording(on) => xml(&format!("<recording_state={}/>", *on as u8)),
            Control::Mute(on) => xml(&format!("<mute_state={}/>", *on as u8)),
            Control::VoiceActivity(on) => xml(&format!("<voice_activity={}/>", *on as u8)),
            Control::Orientation(deg) => xml(&format!("<device_orientation={deg}/>")),
        }
    }

    /// Reads a body the way jamid's substring search does; `None` for anything else.
    pub fn parse(body: &str) -> Option<Self> {
        if !body.contains("<media_control>") {
            return None;
        }
        let value = |key: &str| -> Option<&str> {
            let at = body.find(&format!("<{key}="))? + key.len() + 2;
            let end = body[at..].find("/>")? + at;
            Some(body[at..end].trim())
        };
        if body.contains("picture_fast_update") {
            let stream = body.find("<stream_id>").and_then(|a| {
                let rest = &body[a + "<stream_id>".len()..];
                rest[..rest.find("</stream_id>")?].trim().parse().ok()
            });
            return Some(Control::KeyFrame { stream });
        }
        if let Some(v) = value("recording_state") {
            return Some(Control::Recording(v == "1"));
        }
        if let Some(v) = value("mute_state") {
            return Some(Control::Mute(v == "1"));
        }
        if let Some(v) = value("voice_activity") {
            return Some(Control::VoiceActivity(v == "1"));
        }
        value("device_orientation")?
            .parse()
            .ok()
            .map(Control::Orientation)
    }
}

/// A DTMF relay body: the key and its duration.
pub fn dtmf_body(key: char, duration_ms: u32) -> String {
    format!("Signal={key}\r\nDuration={duration_ms}\r\n")
}

/// Reads a DTMF relay body: the key, and the duration when given.
pub fn parse_dtmf(body: &str) -> Option<(char, Option<u32>)> {
    let mut key = None;
    let mut duration = None;
    for line in body.lines() {
        if let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "Signal" => key = v.trim().chars().next(),
                "Duration" => duration = v.trim().parse().ok(),
                _ => {}
            }
        }
    }
    Some((key?, duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_read_back() {
        for c in [
            Control::KeyFrame { stream: None },
            Control::KeyFrame { stream: Some(1) },
            Control::Recording(true),
            Control::Recording(false),
            Control::Mute(true),
            Control::VoiceActivity(false),
            Control::Orientation(-90),
        ] {
            assert_eq!(Control::parse(&c.to_body()), Some(c));
        }
        assert_eq!(
            Control::KeyFrame { stream: None }.to_body(),
            "<?xml version=\"1.0\" encoding=\"utf-8\" ?><media_control><vc_primitive><to_encoder><picture_fast_update/></to_encoder></vc_primitive></media_control>"
        );
        assert_eq!(Control::parse("<html/>"), None);
        assert_eq!(
            Control::parse("<media_control><device_orientation=x/>"),
            None
        );
    }

    #[test]
    fn dtmf() {
        assert_eq!(parse_dtmf(&dtmf_body('5', 160)), Some(('5', Some(160))));
        assert_eq!(parse_dtmf("Signal=#"), Some(('#', None)));
        assert_eq!(parse_dtmf("nothing"), None);
    }
}
