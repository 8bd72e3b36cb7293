//! What peers send the communicator as instant messages and trust requests: a message body
//! under each content type jamid uses (the first byte picks one), and trust-request
//! payloads. No panic; a trust request that decodes encodes to one that decodes the same.

use pamoja_client::instant::Instant;
use pamoja_client::trust::TrustRequest;

const TYPES: &[&str] = &[
    "application/im-gitmessage-id",
    "application/invite+json",
    "application/invite",
    "application/x-ring-composing",
    "application/x-ring-composing+xml",
    "message/imdn+xml",
    "application/data-transfer+json",
    "text/plain",
    "application/confOrder+json",
];

/// One input.
pub fn run(data: &[u8]) {
    if let Some((&pick, rest)) = data.split_first() {
        let body = String::from_utf8_lossy(rest);
        let _ = Instant::decode(TYPES[usize::from(pick) % TYPES.len()], &body);
    }
    if let Ok(t) = TrustRequest::decode(data) {
        let again = TrustRequest::decode(&t.encode()).expect("ours decodes");
        assert_eq!(again, t);
    }
}
