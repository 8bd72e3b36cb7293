//! Name server input: a registration body and a lookup answer, as the server and the client
//! read them. Checks: no panic; a registration that verifies names the address of its key.

use pamoja_nameserver::name::{Name, split_query};
use pamoja_nameserver::record::{NameRecord, Registration};

/// One input.
pub fn run(data: &[u8]) {
    // First byte: length of the name; then the name; then the JSON body.
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (head, body) = rest.split_at(rest.len().min(usize::from(n % 48)));
    let text = String::from_utf8_lossy(head);
    let _ = split_query(&text, "http://127.0.0.1:8099");
    let name = Name::parse(&text).unwrap_or_else(|_| Name::parse("fuzzed").unwrap());
    if let Ok(reg) = serde_json::from_slice::<Registration>(body) {
        if let Ok(key) = reg.verify(&name) {
            assert!(
                key.jami_id()
                    .to_string()
                    .eq_ignore_ascii_case(reg.addr.trim_start_matches("0x"))
            );
        }
        let _ = reg.to_json();
    }
    if let Ok(rec) = serde_json::from_slice::<NameRecord>(body) {
        let _ = rec.check(&name);
    }
}
