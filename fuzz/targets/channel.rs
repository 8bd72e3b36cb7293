//! Device-link input: the multiplexed socket fed arbitrary streams (split at a fuzzed
//! point), SIP messages and the SIP stream reader, connection-request and inbox-message payloads. No panic;
//! what parses writes back to something that parses the same.

use pamoja_channel::inbox::ImMessage;
use pamoja_channel::mux::{Limits, Mux, MuxEvent};
use pamoja_channel::request::PeerConnectionRequest;
use pamoja_channel::sip::{SipMessage, SipReader};

/// One input.
pub fn run(data: &[u8]) {
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut m = Mux::new(Limits {
        max_channels: 64,
        max_buffer: 70_000,
    });
    m.handle_bytes(&data[..split]);
    m.handle_bytes(&data[split..]);
    while let Some(e) = m.poll_event() {
        if let MuxEvent::Request { channel, .. } = e {
            m.accept(channel);
            let _ = m.send(channel, b"x");
        }
    }
    assert!(m.channel_count() <= 64);

    if let Ok(s) = SipMessage::parse(data) {
        let again = SipMessage::parse(&s.to_bytes()).expect("ours parses");
        assert_eq!(again.body, s.body);
        let _ = s.from_account();
    }
    let mut r = SipReader::default();
    r.push(data);
    for _ in 0..16 {
        match r.next_message() {
            Some(Ok(_)) => {}
            _ => break,
        }
    }

    if let Ok(req) = PeerConnectionRequest::decode(data) {
        assert_eq!(PeerConnectionRequest::decode(&req.encode()).unwrap(), req);
    }
    if let Ok(m) = ImMessage::decode(data) {
        assert_eq!(ImMessage::decode(&m.encode()).unwrap(), m);
    }
}
