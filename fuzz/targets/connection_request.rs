//! Values at our `peer:` key as a device link opens them: any bytes read as a DHT value,
//! then decrypted with our key and checked as a signed connection request. No panic.

use std::sync::OnceLock;

use pamoja_channel::request::PeerConnectionRequest;
use pamoja_dht::Value;
use pamoja_identity::PrivateKey;

fn key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate().expect("a key"))
}

/// One input.
pub fn run(data: &[u8]) {
    if let Ok(v) = Value::from_bytes(data) {
        let _ = PeerConnectionRequest::open(&v, key());
    }
    let v = Value {
        cypher: Some(data.to_vec()),
        ..Value::default()
    };
    let _ = PeerConnectionRequest::open(&v, key());
}
