//! A 16-node network of Pamoja `dhtnode`s beside a 16-node network of OpenDHT 2.4.12
//! `dhtnode`s, driven the same way, in one run:
//!
//! * `dht_network/{pamoja,dhtnode}_16`: put+get pairs per second. One client node (Pamoja's
//!   runner) joins each network and runs batches of 256 pairs, 32 at a time: put a new key,
//!   then get it back (at least 99 % of the gets must find their value).
//! * resident memory of a node holding the network's routing table and 10,000 values, put
//!   straight to it: written to `target/criterion/dht_rss.json` and printed.
//!
//! Both networks run with rate limits off (`-U`) so that they measure capacity, each in its
//! own network id, inside a private network namespace (needs root and Debian's `dhtnode`).
//! Run: `cargo bench --bench dht_network; python3 scripts/bench-report.py`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use pamoja::dht::message::{Body, Message, MessageKind, Method, ValueEntry};
use pamoja::dht::{Config, InfoHash, Runner, Value};
use pamoja_lab::{DHTNODE, Lab, missing_prerequisites};
use tokio::net::UdpSocket;

const NODES: u16 = 16;
const BATCH: usize = 256;
const CONCURRENCY: usize = 32;
const STORED: usize = 10_000;

struct Network {
    name: &'static str,
    pids: Vec<u32>,
    client: Runner,
}

fn our_dhtnode() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--example", "dhtnode"])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the dhtnode example failed");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or(root.join("target"), PathBuf::from);
    target.join("release/examples/dhtnode")
}

async fn start(
    lab: &mut Lab,
    name: &'static str,
    program: &str,
    base_port: u16,
    network: u32,
) -> Network {
    let net = network.to_string();
    let boot = format!("127.0.0.1:{base_port}");
    let mut pids = Vec::new();
    for i in 0..NODES {
        let port = base_port + i;
        let mut args = vec!["-s", "-U", "-n", &net];
        if i > 0 {
            args.extend(["-b", &boot]);
        }
        let pid = lab
            .start_udp_service(&format!("{name}-{port}"), program, &args, port)
            .await
            .expect("node starts");
        pids.push(pid);
    }
    let socket = lab
        .netns()
        .udp_socket("127.0.0.1:0".parse().unwrap())
        .expect("client socket");
    let client = Runner::from_std(
        socket,
        Config {
            network,
            rate_limit: None,
            ..Config::default()
        },
    )
    .expect("client runner");
    client.bootstrap(boot.parse().unwrap());
    Network { name, pids, client }
}

/// Runs `BATCH` put+get pairs on fresh keys, `CONCURRENCY` at a time; returns how many gets
/// found their value.
async fn batch(client: &Runner, round: u64) -> usize {
    use futures_util::stream::{self, StreamExt};
    stream::iter(0..BATCH)
        .map(|i| async move {
            let key = InfoHash::get(format!("bench {round} {i}").as_bytes());
            let data = format!("value {round} {i}");
            let stored = client.put(key, Value::new(data.clone())).await.unwrap_or(0);
            if stored == 0 {
                return false;
            }
            let found = client.get(key).await.unwrap_or_default();
            found.iter().any(|v| v.data == data.as_bytes())
        })
        .buffer_unordered(CONCURRENCY)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Puts `STORED` values straight to the node at `to` (a token from `find`, then `put`s of
/// 16 values each, 64 messages in flight at most). Returns the values acknowledged.
async fn fill(socket: &UdpSocket, to: SocketAddr, network: u32) -> usize {
    let id = InfoHash::random();
    let msg = |tid, method, body| {
        Message::new(tid, MessageKind::Query(method), body)
            .in_network(network)
            .encode()
    };
    let find = Body {
        id,
        target: Some(InfoHash::random()),
        ..Body::default()
    };
    let mut buf = vec![0u8; 65536];
    let mut token = None;
    for _ in 0..5 {
        socket
            .send_to(&msg(1, Method::Find, find.clone()), to)
            .await
            .unwrap();
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await
        {
            token = Message::decode(&buf[..n]).ok().and_then(|m| m.body.token);
            if token.is_some() {
                break;
            }
        }
    }
    let token = token.expect("the node gives a token");
    let mut acked = 0;
    let mut next = 0;
    let mut in_flight = 0;
    let per_message = 16;
    let started = Instant::now();
    while (next < STORED || in_flight > 0) && started.elapsed() < Duration::from_secs(120) {
        while next < STORED && in_flight < 64 {
            let values = (next..(next + per_message).min(STORED))
                .map(|i| {
                    ValueEntry::Inline(Value {
                        id: i as u64 + 1,
                        ..Value::new(format!(
                            "stored value number {i:08} ........................"
                        ))
                    })
                })
                .collect();
            let put = Body {
                id,
                key: Some(InfoHash::get(
                    format!("rss key {}", next / per_message).as_bytes(),
                )),
                values,
                token: Some(token.clone()),
                ..Body::default()
            };
            socket
                .send_to(&msg(2 + next as u32, Method::Put, put), to)
                .await
                .unwrap();
            next += per_message;
            in_flight += per_message;
        }
        match tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                if let Ok(m) = Message::decode(&buf[..n]) {
                    if m.kind == MessageKind::Reply && m.body.vid.is_some() {
                        acked += 1;
                        in_flight -= 1;
                    }
                }
            }
            // Lost datagrams: stop waiting for them.
            _ => in_flight = 0,
        }
    }
    acked
}

fn network_bench(c: &mut Criterion) {
    if let Some(why) = missing_prerequisites() {
        eprintln!("dht_network skipped: {why}");
        return;
    }
    let ours = our_dhtnode();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut lab = Lab::new().expect("lab");
    let nets = rt.block_on(async {
        let a = start(&mut lab, "pamoja", ours.to_str().unwrap(), 47300, 2).await;
        let b = start(&mut lab, "dhtnode", DHTNODE, 47400, 1).await;
        tokio::time::sleep(Duration::from_secs(15)).await;
        [a, b]
    });

    let mut group = c.benchmark_group("dht_network");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.warm_up_time(Duration::from_secs(5));
    for net in &nets {
        let mut round = 0u64;
        group.bench_function(format!("{}_16", net.name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    let t = Instant::now();
                    let found = rt.block_on(batch(&net.client, round));
                    total += t.elapsed();
                    assert!(
                        found >= BATCH * 99 / 100,
                        "{}: only {found} of {BATCH} gets found their value",
                        net.name
                    );
                }
                total
            })
        });
    }
    group.finish();

    // Memory: node 0 of each network after 10,000 values were put to it.
    let socket = rt.block_on(async {
        let s = lab
            .netns()
            .udp_socket("127.0.0.1:0".parse().unwrap())
            .expect("socket");
        s.set_nonblocking(true).unwrap();
        UdpSocket::from_std(s).unwrap()
    });
    let mut report = serde_json::Map::new();
    for (net, (port, network)) in nets.iter().zip([(47300u16, 2u32), (47400, 1)]) {
        let pid = net.pids[0];
        let before = rss_kib(pid);
        let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let acked = rt.block_on(fill(&socket, to, network));
        std::thread::sleep(Duration::from_secs(2));
        let after = rss_kib(pid);
        let others: Vec<u64> = net.pids[1..].iter().map(|p| rss_kib(*p)).collect();
        let mut sorted = others.clone();
        sorted.sort_unstable();
        let median_others = sorted[sorted.len() / 2];
        println!(
            "dht_rss/{}: {after} KiB with {acked} values put ({before} KiB before); \
             other nodes median {median_others} KiB",
            net.name
        );
        assert!(
            acked >= STORED * 95 / 100,
            "{}: {acked} values acknowledged",
            net.name
        );
        report.insert(
            net.name.into(),
            serde_json::json!({
                "rss_kib": after,
                "rss_before_kib": before,
                "values_acked": acked,
                "median_other_nodes_kib": median_others,
            }),
        );
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::var_os("CARGO_TARGET_DIR")
        .map_or(root.join("target"), PathBuf::from)
        .join("criterion");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("dht_rss.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    drop(nets);
    drop(lab);
}

criterion_group!(benches, network_bench);
criterion_main!(benches);
