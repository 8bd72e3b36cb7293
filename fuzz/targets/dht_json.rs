//! DHT values as the proxy's JSON: whatever reads as a value writes back to JSON that reads
//! as the same value. No panic.

use pamoja_dht::json::{from_json, to_json};

/// One input.
pub fn run(data: &[u8]) {
    let Ok(j) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(mut v) = from_json(&j) {
        let again = from_json(&to_json(&v)).expect("our JSON reads back");
        // As OpenDHT, we write `to` only for a signed value (an unsigned one carries it only
        // into the proxy's `/encrypt`).
        if v.owner.is_none() {
            v.recipient = None;
        }
        // The owner is normalised to DER; everything else is kept.
        assert_eq!(again, v);
    }
}
