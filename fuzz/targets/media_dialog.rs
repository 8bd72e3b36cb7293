//! SIP from a peer inside a call: bytes split into messages and fed to a call dialog, which
//! answers what it must and never panics.
use std::time::{Duration, Instant};

use pamoja_channel::sip::SipReader;
use pamoja_media::dialog::{Dialog, Endpoint};

const ALICE: &str = "0123456789abcdef0123456789abcdef01234567";
const BOB: &str = "89abcdef0123456789abcdef0123456789abcdef";

/// One input.
pub fn run(data: &[u8]) {
    let now = Instant::now();
    let ep = Endpoint {
        account: ALICE.into(),
        device: "aa".repeat(20),
        display_name: None,
        peer: BOB.into(),
        local: "10.0.0.1:1".parse().unwrap(),
        remote: "10.0.0.2:2".parse().unwrap(),
    };
    let mut d = Dialog::invite(ep, b"v=0\r\n", now);
    let mut reader = SipReader::default();
    reader.push(data);
    while let Some(m) = reader.next_message() {
        let Ok(mut m) = m else { break };
        // Let messages reach the dialog whatever Call-ID they carry.
        for h in &mut m.headers {
            if h.0.eq_ignore_ascii_case("Call-ID") {
                h.1 = d.call_id().to_owned();
            }
        }
        d.handle(&m, now);
        while d.poll_transmit().is_some() {}
        while d.poll_event().is_some() {}
        let _ = d.reinvite(b"v=0\r\n", now);
        let _ = d.info("application/media_control+xml", b"<x/>", now);
    }
    d.handle_timeout(now + Duration::from_secs(600));
    let _ = d.hangup();
}
