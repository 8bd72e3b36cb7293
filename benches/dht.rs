//! DHT datagram codec: decode and encode rates of typical OpenDHT messages.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pamoja::dht::message::{Body, Message, MessageKind, Method, NodeInfo, ValueEntry};
use pamoja::dht::{InfoHash, Value};

fn messages() -> Vec<(&'static str, Message)> {
    let base = |kind, body| Message::new(0x12da2ad7, kind, body);
    let nodes: Vec<NodeInfo> = (0..8u8)
        .map(|i| NodeInfo {
            id: InfoHash([i; 20]),
            addr: format!("127.0.0.{}:4222", i + 1).parse().unwrap(),
        })
        .collect();
    vec![
        (
            "ping",
            base(
                MessageKind::Query(Method::Ping),
                Body {
                    id: InfoHash([1; 20]),
                    ..Body::default()
                },
            ),
        ),
        (
            "get_reply_8_nodes_3_values",
            base(
                MessageKind::Reply,
                Body {
                    id: InfoHash([2; 20]),
                    seen_addr: Some("127.0.0.1".parse().unwrap()),
                    nodes4: nodes,
                    token: Some(vec![7; 32]),
                    values: (1..=3)
                        .map(|i| {
                            ValueEntry::Inline(Value {
                                id: i,
                                ..Value::new(vec![b'x'; 100])
                            })
                        })
                        .collect(),
                    ..Body::default()
                },
            ),
        ),
    ]
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("dht_codec");
    for (name, msg) in messages() {
        let bytes = msg.encode();
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| Message::decode(black_box(&bytes)).unwrap())
        });
        g.bench_function(format!("encode_{name}"), |b| {
            b.iter(|| black_box(&msg).encode())
        });
    }
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
