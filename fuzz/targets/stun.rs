//! STUN and TURN input: messages (with integrity and fingerprint checks and every accessor),
//! ChannelData, ICE candidate text, and RFC 4571 frames. No panic.

use pamoja_ice::candidate::IceMessage;
use pamoja_ice::framing::Deframer;
use pamoja_ice::stun::{Message, attr};
use pamoja_ice::turn;

/// One input.
pub fn run(data: &[u8]) {
    if let Ok(m) = Message::decode(data) {
        let _ = (m.check_integrity(data, b"key"), m.check_fingerprint(data));
        let _ = (m.mapped_address(), m.error_code(), m.username());
        let _ = m.xor_address(turn::attr::XOR_RELAYED_ADDRESS);
        let _ = turn::data_indication(&m);
        let _ = m.unknown_required(&[attr::USERNAME]);
    }
    let _ = turn::parse_channel_data(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(msg) = IceMessage::parse(text) {
            // What we write back scans to the same candidates.
            let again = IceMessage::parse(&msg.to_text()).unwrap();
            assert_eq!(again.candidates, msg.candidates);
        }
    }
    let mut d = Deframer::default();
    d.push(data);
    while d.next_frame().is_some() {}
}
