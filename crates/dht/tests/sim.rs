//! An in-process network of sans-IO nodes with virtual time, latency and loss.

use std::time::Duration;

use pamoja_dht::node::{Config, Event, Node};
use pamoja_dht::sim::Sim;
use pamoja_dht::{InfoHash, Value};

fn network(n: usize, loss_permille: u64, seed: u64) -> Sim {
    Sim::bootstrapped(n, loss_permille, seed)
}

fn put_get(sim: &mut Sim, keys: usize) -> (usize, usize) {
    let r = sim.put_get(keys);
    (r.stored, r.found)
}

#[test]
fn every_value_is_found_without_loss() {
    let mut sim = network(200, 0, 0x9e3779b97f4a7c15);
    let (stored, found) = put_get(&mut sim, 100);
    assert_eq!(stored, 100);
    assert_eq!(found, 100, "get success at 0% loss");
    let (good, known, ..) = sim.nodes[150].node_counts(sim.now);
    assert!(
        good >= 8 && known >= 20,
        "routing table filled: {good} good of {known}"
    );
}

#[test]
fn values_are_found_with_five_percent_loss() {
    let mut sim = network(200, 50, 0x2545f4914f6cdd1d);
    let (_, found) = put_get(&mut sim, 100);
    // The goal is 99.9 % (docs/benchmarks.md has the 10,000-node figure); this guards the
    // current level against regressions.
    assert!(found >= 97, "get success at 5% loss: {found}/100");
}

#[test]
fn large_values_travel_in_fragments() {
    let mut sim = network(30, 0, 7);
    let key = InfoHash::get(b"big");
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let now = sim.now;
    let op = sim.nodes[3].put(now, key, Value::new(data.clone()));
    sim.flush(3);
    sim.run_for(Duration::from_secs(10));
    assert!(
        sim.take_events(3, op)
            .iter()
            .any(|e| matches!(e, Event::PutDone { stored, .. } if *stored > 0))
    );
    let now = sim.now;
    let op = sim.nodes[20].get(now, key, None);
    sim.flush(20);
    sim.run_for(Duration::from_secs(10));
    let ev = sim.take_events(20, op);
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Value { value, .. } if value.data == data)),
        "{ev:?}"
    );
}

#[test]
fn listen_sees_new_values_and_other_networks_stay_apart() {
    let mut sim = network(30, 0, 11);
    let key = InfoHash::get(b"listened");
    let now = sim.now;
    let lop = sim.nodes[5].listen(now, key, None);
    sim.flush(5);
    sim.run_for(Duration::from_secs(5));
    let now = sim.now;
    sim.nodes[9].put(now, key, Value::new("hello"));
    sim.flush(9);
    sim.run_for(Duration::from_secs(5));
    let ev = sim.take_events(5, lop);
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Value { value, .. } if value.data == b"hello")),
        "{ev:?}"
    );

    // A node of another network id learns nothing from this one.
    let mut other = Node::new(Config {
        network: 42,
        ..Config::default()
    });
    let now = sim.now;
    other.bootstrap(now, sim.addrs[0]);
    let ping = other.poll_transmit().unwrap();
    sim.nodes[0].handle_datagram(now, "127.9.9.9:4222".parse().unwrap(), &ping.data);
    assert!(
        sim.nodes[0].poll_transmit().is_none(),
        "a node of network 42 gets no answer"
    );
}

#[test]
fn values_expire_at_their_type_lifetime() {
    let mut sim = network(30, 0, 13);
    let key = InfoHash::get(b"short-lived");
    let now = sim.now;
    // Type 5 (ICE candidates) lives one minute, type 0 ten.
    sim.nodes[2].put(
        now,
        key,
        Value {
            value_type: 5,
            ..Value::new("ice")
        },
    );
    sim.nodes[2].put(now, key, Value::new("user data"));
    sim.flush(2);
    let lop = sim.nodes[7].listen(now, key, None);
    sim.flush(7);
    let found = |sim: &mut Sim, reader: usize| -> Vec<Vec<u8>> {
        let now = sim.now;
        let op = sim.nodes[reader].get(now, key, None);
        sim.flush(reader);
        sim.run_for(Duration::from_secs(5));
        let mut data: Vec<Vec<u8>> = sim
            .take_events(reader, op)
            .into_iter()
            .filter_map(|e| {
                if let Event::Value { value, .. } = e {
                    Some(value.data)
                } else {
                    None
                }
            })
            .collect();
        data.sort();
        data
    };
    sim.run_for(Duration::from_secs(50));
    assert_eq!(
        found(&mut sim, 20),
        vec![b"ice".to_vec(), b"user data".to_vec()]
    );
    sim.run_for(Duration::from_secs(10)); // 65 s after the put
    assert_eq!(found(&mut sim, 21), vec![b"user data".to_vec()]);
    let listened = sim.take_events(7, lop);
    assert!(
        listened.iter().any(|e| matches!(e, Event::Expired { .. })),
        "the listener is told: {listened:?}"
    );
    sim.run_for(Duration::from_secs(540)); // 10 min 10 s after the put
    assert!(found(&mut sim, 22).is_empty());
    assert!(
        sim.nodes.iter().all(|n| n.storage_counts().1 == 0),
        "every node dropped them"
    );
}

#[test]
fn thousand_nodes() {
    let mut sim = network(1000, 0, 0xdeadbeef);
    let r = sim.put_get(200);
    assert_eq!(r.stored, 200);
    assert_eq!(r.found, 200, "get success at 0% loss in 1,000 nodes");
    assert!(
        r.datagrams_per_get < 200.0,
        "{:.0} datagrams per get",
        r.datagrams_per_get
    );
    assert!(
        r.get_time_quantile(0.99) < Duration::from_secs(2),
        "{:?}",
        r.get_time_quantile(0.99)
    );
}

/// 100,000 malformed, truncated, oversized or spoofed datagrams at the bootstrap node while it
/// serves gets: every legitimate get still succeeds and the node's state stays bounded.
#[test]
fn storm_of_bad_datagrams() {
    use pamoja_dht::message::{Body, Fragment, Message, MessageKind, Method, ValueEntry};
    let mut sim = network(50, 0, 99);
    let good = sim.put_get(20);
    assert_eq!(good.found, 20);
    let mut during = Vec::new();
    let valid_get = Message::new(
        1,
        MessageKind::Query(Method::Get),
        Body {
            id: InfoHash::random(),
            key: Some(InfoHash::random()),
            ..Body::default()
        },
    )
    .encode();
    for round in 0..100u32 {
        for j in 0..1000u32 {
            let i = round * 1000 + j;
            let r = sim.rng.next_u64();
            let from = format!(
                "10.{}.{}.{}:{}",
                (r >> 8) & 255,
                (r >> 16) & 255,
                (r >> 24) & 255,
                1 + (r >> 32) % 60000
            )
            .parse()
            .unwrap();
            let datagram = match i % 6 {
                // Random bytes.
                0 => (0..(r % 200) as usize)
                    .map(|k| (r >> (k % 56)) as u8)
                    .collect(),
                // Truncated valid messages.
                1 => valid_get[..(r as usize % valid_get.len())].to_vec(),
                // Oversized garbage.
                2 => vec![(r & 255) as u8; 60_000],
                // Spoofed fragmented headers that never complete.
                3 => Message::new(
                    r as u32,
                    MessageKind::Query(Method::Put),
                    Body {
                        id: InfoHash::random(),
                        key: Some(InfoHash::random()),
                        values: vec![ValueEntry::Size(60_000)],
                        token: Some(vec![0; 32]),
                        ..Body::default()
                    },
                )
                .encode(),
                // Orphan fragments.
                4 => Message::new(
                    r as u32,
                    MessageKind::ValueData(vec![Fragment {
                        index: 0,
                        offset: 0,
                        data: vec![1; 1000],
                    }]),
                    Body::default(),
                )
                .encode(),
                // Spoofed puts with forged tokens and listens from made-up nodes.
                _ => Message::new(
                    r as u32,
                    MessageKind::Query(if r % 2 == 0 {
                        Method::Put
                    } else {
                        Method::Listen
                    }),
                    Body {
                        id: InfoHash::random(),
                        key: Some(InfoHash::random()),
                        values: vec![ValueEntry::Inline(Value {
                            id: r | 1,
                            ..Value::new("spam")
                        })],
                        token: Some(vec![(r & 255) as u8; 32]),
                        sid: Some(r as u32),
                        ..Body::default()
                    },
                )
                .encode(),
            };
            let now = sim.now;
            sim.nodes[0].handle_datagram(now, from, &datagram);
        }
        // A legitimate get goes on during the storm.
        let reader = 1 + (sim.rng.next_u64() % 49) as usize;
        let k = round % 20;
        let now = sim.now;
        let op = sim.nodes[reader].get(now, InfoHash::get(format!("key {k}").as_bytes()), None);
        sim.flush(reader);
        during.push((reader, op, format!("value {k}")));
        // Replies to made-up senders go nowhere.
        sim.flush(0);
        sim.run_for(Duration::from_millis(100));
        let sizes = sim.nodes[0].state_sizes();
        assert!(
            sizes.partials <= 4096 && sizes.nodes <= 161 * 8 * 2 && sizes.listeners == 0,
            "{sizes:?}"
        );
        assert!(sizes.values <= 20 + 1, "forged puts stored: {sizes:?}");
    }
    sim.run_for(Duration::from_secs(5));
    for (reader, op, data) in during {
        let ev = sim.take_events(reader, op);
        assert!(
            ev.iter()
                .any(|e| matches!(e, Event::Value { value, .. } if value.data == data.as_bytes())),
            "a get during the storm failed: {ev:?}"
        );
    }
    let after = sim.put_get(20);
    assert_eq!(after.found, 20, "legitimate gets after the storm");
}

/// Only the nodes a listen was sent to can push values into it.
#[test]
fn spoofed_updates_are_ignored() {
    use pamoja_dht::message::{Body, Message, MessageKind, Method, ValueEntry};
    let mut sim = network(20, 0, 5);
    let key = InfoHash::get(b"guarded");
    let now = sim.now;
    let op = sim.nodes[3].listen(now, key, None);
    sim.flush(3);
    sim.run_for(Duration::from_secs(3));
    // A node the listener never asked pushes with the right socket id.
    let sid = sim.nodes[3].listen_sid(op).unwrap();
    let forged = |sid: u32| {
        Message::new(
            9,
            MessageKind::Query(Method::Update),
            Body {
                id: InfoHash::random(),
                key: Some(key),
                sid: Some(sid),
                version: Some(1),
                values: vec![ValueEntry::Inline(Value {
                    id: 42,
                    ..Value::new("forged")
                })],
                ..Body::default()
            },
        )
    };
    let now = sim.now;
    sim.nodes[3].handle_datagram(
        now,
        "127.9.9.9:4222".parse().unwrap(),
        &forged(sid).encode(),
    );
    sim.flush(3);
    let ev = sim.take_events(3, op);
    assert!(
        !ev.iter()
            .any(|e| matches!(e, Event::Value { value, .. } if value.data == b"forged")),
        "{ev:?}"
    );
    // A real put still arrives.
    let now = sim.now;
    sim.nodes[9].put(now, key, Value::new("real"));
    sim.flush(9);
    sim.run_for(Duration::from_secs(5));
    assert!(
        sim.take_events(3, op)
            .iter()
            .any(|e| matches!(e, Event::Value { value, .. } if value.data == b"real"))
    );
}

/// A node saved and restored keeps its id and rejoins through the nodes it knew.
#[test]
fn saved_state_rejoins_without_bootstrap() {
    let mut sim = network(40, 0, 21);
    let state = sim.nodes[17].save_state();
    let id = sim.nodes[17].id();
    let now = sim.now;
    sim.nodes[17] = Node::restore(now, Config::default(), &state).unwrap();
    assert_eq!(sim.nodes[17].id(), id);
    assert_eq!(sim.nodes[17].node_counts(now).0, 0, "nobody confirmed yet");
    sim.flush(17);
    sim.run_for(Duration::from_secs(5));
    let (good, ..) = sim.nodes[17].node_counts(sim.now);
    assert!(good >= 8, "rejoined: {good} good nodes");
    let key = InfoHash::get(b"after restart");
    let now = sim.now;
    sim.nodes[30].put(now, key, Value::new("still here"));
    sim.flush(30);
    sim.run_for(Duration::from_secs(10));
    let now = sim.now;
    let op = sim.nodes[17].get(now, key, None);
    sim.flush(17);
    sim.run_for(Duration::from_secs(10));
    assert!(
        sim.take_events(17, op)
            .iter()
            .any(|e| matches!(e, Event::Value { value, .. } if value.data == b"still here"))
    );
    assert!(
        Node::restore(now, Config::default(), b"\x80").is_err(),
        "a state without id is refused"
    );
    assert!(Node::restore(now, Config::default(), &state[..state.len() - 3]).is_err());
}

/// With storage maintenance, a value outlives the nodes that first held it: a node that holds
/// it but is not among the closest puts it to the closest it knows.
#[test]
fn storage_maintenance_moves_values_to_the_closest_nodes() {
    let key = InfoHash::get(b"long-lived");
    let run = |maintain: bool| {
        let mut sim = Sim::with_config(40, 0, 21, |_| Config {
            maintain_storage: maintain,
            ..Config::default()
        });
        sim.join_all();
        // The putter is the node farthest from the key, so it is not among the holders.
        let mut by_distance: Vec<usize> = (0..40).collect();
        by_distance.sort_by(|a, b| key.xor_cmp(&sim.nodes[*a].id(), &sim.nodes[*b].id()));
        let putter = *by_distance.last().unwrap();
        let now = sim.now;
        let value = Value {
            value_type: 4, // lives 7 days
            ..Value::new("kept")
        };
        sim.nodes[putter].put(now, key, value);
        sim.flush(putter);
        sim.run_for(Duration::from_secs(10));
        // Every node holding it except the putter leaves.
        for &i in &by_distance {
            if i != putter && sim.nodes[i].storage_counts().1 > 0 {
                sim.set_down(i, true);
            }
        }
        sim.run_for(Duration::from_secs(12 * 60));
        let republished = sim.nodes[putter].counters().republished;
        let reader = by_distance[20];
        let now = sim.now;
        let op = sim.nodes[reader].get(now, key, None);
        sim.flush(reader);
        sim.run_for(Duration::from_secs(30));
        let found = sim
            .take_events(reader, op)
            .iter()
            .any(|e| matches!(e, Event::Value { value, .. } if value.data == b"kept"));
        (found, republished, sim.nodes[putter].storage_counts().1)
    };
    let (found, republished, left_at_putter) = run(true);
    assert!(
        found,
        "the value is found at its new holders ({republished}, {left_at_putter})"
    );
    assert_eq!(republished, 1);
    assert_eq!(left_at_putter, 0, "the putter no longer keeps it");
    let (found, republished, _) = run(false);
    assert!(!found, "without maintenance it is lost with its holders");
    assert_eq!(republished, 0);
}
