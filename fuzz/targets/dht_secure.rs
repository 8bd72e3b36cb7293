//! SecureDht input: values as they come off the wire (signature checks, decryption with a
//! key of ours, certificate values) and LAN discovery datagrams. No panic; whatever verifies
//! really is signed by its owner.

use std::sync::OnceLock;

use pamoja_dht::discovery::Packet;
use pamoja_dht::secure;
use pamoja_dht::{InfoHash, Value};
use pamoja_identity::PrivateKey;

fn key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate().unwrap())
}

/// One input.
pub fn run(data: &[u8]) {
    let _ = Packet::decode(data);
    let Ok(v) = Value::from_bytes(data) else {
        return;
    };
    if let Ok(owner) = secure::verify(&v) {
        assert_eq!(Some(secure::key_id(&owner)), v.owner_id());
    }
    if let Ok(d) = secure::decrypt(&v, key()) {
        assert!(secure::verify(&d).is_ok());
    }
    let _ = secure::certificate_from_value(&v, &InfoHash::get(data));
    if let Some(c) = &v.cypher {
        let _ = secure::decrypt_bytes(c, key());
    }
}
