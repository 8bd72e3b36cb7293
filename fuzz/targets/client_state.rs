//! The account's files as the communicator reads them at start-up (they may be cut short,
//! or written by another program): the contact list and trust requests (msgpack), the
//! settings and the conversation requests (JSON). No panic.

use pamoja_client::Settings;
use pamoja_client::contacts::Contacts;
use pamoja_client::core::decode_conv_requests;

/// One input.
pub fn run(data: &[u8]) {
    if let Ok(c) = Contacts::decode(Some(data), None) {
        for id in c.contacts.keys() {
            let _ = c.active(id);
        }
    }
    let _ = Contacts::decode(None, Some(data));
    if let Ok(j) = serde_json::from_slice::<serde_json::Value>(data) {
        let s = Settings::from_json(&j);
        assert_eq!(Settings::from_json(&s.to_json()), s);
    }
    let _ = decode_conv_requests(data);
}
