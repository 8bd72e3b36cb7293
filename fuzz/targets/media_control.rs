//! SIP INFO bodies from a call's peer: media control XML (key frame requests, mute,
//! recording, orientation) and DTMF. No panic; a control that parses writes back to one
//! that parses the same.

use pamoja_media::control::{Control, parse_dtmf};

/// One input.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Some(c) = Control::parse(&text) {
        assert_eq!(Control::parse(&c.to_body()), Some(c));
    }
    let _ = parse_dtmf(&text);
}
