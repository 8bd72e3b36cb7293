//! msgpack signed values, device announcements and receipts.
use pamoja_identity::announce::{DeviceAnnouncement, Receipt, SignedValue};

/// One input.
pub fn run(data: &[u8]) {
    if let Ok(v) = SignedValue::unpack(data) {
        let _ = v.verify();
        let _ = DeviceAnnouncement::unpack(&v.data);
    }
    let _ = DeviceAnnouncement::unpack(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Receipt::from_json(text);
    }
}
