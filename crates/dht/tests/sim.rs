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
    assert!(found >= 99, "get success at 5% loss: {found}/100");
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
