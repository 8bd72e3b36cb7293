//! DHT datagrams: decode, and re-encode what decoded; values; saved node state.
use pamoja_dht::message::Message;

/// One input.
pub fn run(data: &[u8]) {
    if let Ok(m) = Message::decode(data) {
        let again = Message::decode(&m.encode()).expect("our own encoding decodes");
        assert_eq!(again.kind, m.kind);
    }
    let _ = pamoja_dht::Value::from_bytes(data);
    let _ = pamoja_dht::Node::restore(
        std::time::Instant::now(),
        pamoja_dht::Config::default(),
        data,
    );
}
