//! A 16-node network of Pamoja `dhtnode`s beside a 16-node network of OpenDHT 2.4.12
//! `dhtnode`s, driven the same way, in one run:
//!
//! * `dht_network/{pamoja,dhtnode}_16`: put+get rounds, each node driven through its
//!   interactive prompt (the same commands, `p` and `g`, to both kinds): a round puts 256 new
//!   keys spread over the 16 nodes, all at once, then gets each from another node (at least
//!   99 % of the gets must print their value).
//! * resident memory of a node holding the network's routing table and 10,000 values, put
//!   straight to it: written to `target/criterion/dht_rss.json` and printed.
//!
//! Both networks run with rate limits off (`-U`) so that they measure capacity, each in its
//! own network id, inside a private network namespace (needs root and Debian's `dhtnode`).
//! Run: `cargo bench --bench dht_network; python3 scripts/bench-report.py`.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use pamoja::dht::message::{Body, Message, MessageKind, Method, ValueEntry};
use pamoja::dht::{InfoHash, Value};
use pamoja_lab::{DHTNODE, Lab, missing_prerequisites};
use tokio::net::UdpSocket;

mod common;

const NODES: u16 = 16;
const BATCH: usize = 256;
const STORED: usize = 10_000;
const ONE_PER_KEY: usize = 5_000;

struct Network {
    name: &'static str,
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Network {
    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Waits for `n` lines starting with `prefix`; returns every line read meanwhile.
    fn wait_for(&self, prefix: &str, n: usize) -> Vec<String> {
        let mut seen = Vec::new();
        let mut matched = 0;
        let deadline = Instant::now() + Duration::from_secs(120);
        while matched < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("{}: {matched} of {n} {prefix:?} lines", self.name));
            if line.starts_with(prefix) {
                matched += 1;
            }
            seen.push(line);
        }
        seen
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Every node was started here: stop each by its PID.
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn our_dhtnode() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--example", "dhtnode"])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the dhtnode example failed");
    common::target_dir().join("release/examples/dhtnode")
}

/// Starts 16 nodes of `program` at their prompt, node 0 on `base_port`, the others
/// bootstrapping from it; every output line goes to one channel.
fn start(lab: &Lab, name: &'static str, program: &str, base_port: u16, network: u32) -> Network {
    let net = network.to_string();
    let boot = format!("127.0.0.1:{base_port}");
    let (tx, lines) = mpsc::channel();
    let mut children = Vec::new();
    let mut stdins = Vec::new();
    for i in 0..NODES {
        let port = (base_port + i).to_string();
        let mut cmd = lab.netns().command(program);
        cmd.args(["-U", "-n", &net, "-p", &port]);
        if i > 0 {
            cmd.args(["-b", &boot]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node starts");
        stdins.push(child.stdin.take().unwrap());
        let out = BufReader::new(child.stdout.take().unwrap());
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line.trim_start_matches(">> ").to_owned()).is_err() {
                    break;
                }
            }
        });
        children.push(child);
        // Let node 0 bind before the others bootstrap from it.
        std::thread::sleep(Duration::from_millis(if i == 0 { 500 } else { 50 }));
    }
    Network {
        name,
        children,
        stdins,
        lines,
    }
}

/// One round: `BATCH` puts of new keys spread over the nodes' prompts, then a get of each
/// from another node. Returns how many gets printed their value.
fn round(net: &mut Network, round: u64) -> usize {
    // Drop what earlier rounds left behind.
    while net.lines.try_recv().is_ok() {}
    for i in 0..BATCH {
        let node = i % NODES as usize;
        writeln!(net.stdins[node], "p bench-{round}-{i} v-{round}-{i}").unwrap();
    }
    net.wait_for("Put: ", BATCH);
    for i in 0..BATCH {
        let node = (i + 5) % NODES as usize;
        writeln!(net.stdins[node], "g bench-{round}-{i}").unwrap();
    }
    let lines = net.wait_for("Get: completed", BATCH);
    let found: HashSet<&str> = lines
        .iter()
        .filter_map(|l| l.split("data(text/plain):\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .filter(|v| v.starts_with(&format!("v-{round}-")))
        .collect();
    found.len()
}

/// A write token from the node at `to`, asked for by a `find` from node id `id`.
async fn token_of(socket: &UdpSocket, to: SocketAddr, network: u32, id: InfoHash) -> Vec<u8> {
    let find = Message::new(
        1,
        MessageKind::Query(Method::Find),
        Body {
            id,
            target: Some(InfoHash::random()),
            ..Body::default()
        },
    )
    .in_network(network)
    .encode();
    let mut buf = vec![0u8; 65536];
    for _ in 0..5 {
        socket.send_to(&find, to).await.unwrap();
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await
        {
            if let Some(token) = Message::decode(&buf[..n]).ok().and_then(|m| m.body.token) {
                return token;
            }
        }
    }
    panic!("the node at {to} gives no token")
}

/// CPU seconds (user + system) a process used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|x| x.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Puts `count` values straight to the node at `to` (a token from `find`, then `put`s of
/// `per_message` values each at one key, 64 messages in flight at most). Returns the values
/// acknowledged.
async fn fill(
    socket: &UdpSocket,
    to: SocketAddr,
    network: u32,
    count: usize,
    per_message: usize,
    label: &str,
) -> usize {
    let id = InfoHash::random();
    let msg = |tid, method, body| {
        Message::new(tid, MessageKind::Query(method), body)
            .in_network(network)
            .encode()
    };
    let token = token_of(socket, to, network, id).await;
    let mut buf = vec![0u8; 65536];
    let mut acked = 0;
    let mut next = 0;
    let mut in_flight = 0;
    let started = Instant::now();
    while (next < count || in_flight > 0) && started.elapsed() < Duration::from_secs(120) {
        while next < count && in_flight < 64 {
            let values = (next..(next + per_message).min(count))
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
                    format!("{label} key {}", next / per_message).as_bytes(),
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
                        in_flight = in_flight.saturating_sub(1);
                    }
                }
            }
            // Lost datagrams: stop waiting for them.
            _ => in_flight = 0,
        }
    }
    acked
}

/// Floods the node at `to` with `listen` requests for `secs` seconds at `per_sec` (a valid
/// token; a new node id, key and sid each): what a listener costs a node, and whether it
/// bounds them. Returns the requests sent.
async fn listen_flood(
    socket: &UdpSocket,
    to: SocketAddr,
    network: u32,
    secs: u64,
    per_sec: u64,
) -> u64 {
    let msg = |tid, method, body| {
        Message::new(tid, MessageKind::Query(method), body)
            .in_network(network)
            .encode()
    };
    let token = token_of(socket, to, network, InfoHash::random()).await;
    let mut buf = vec![0u8; 65536];
    let start = tokio::time::Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        for _ in 0..per_sec / 100 {
            sent += 1;
            let listen = Body {
                id: InfoHash::random(),
                key: Some(InfoHash::random()),
                sid: Some(sent as u32),
                token: Some(token.clone()),
                ..Body::default()
            };
            let _ = socket
                .send_to(&msg(1_000_000 + sent as u32, Method::Listen, listen), to)
                .await;
        }
        // Drain the answers; pace at per_sec.
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(0), socket.recv(&mut buf)).await
        {}
        tokio::time::sleep_until(start + Duration::from_millis(sent * 1000 / per_sec)).await;
    }
    sent
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
    let lab = Lab::new().expect("lab");
    let mut nets = [
        start(&lab, "pamoja", ours.to_str().unwrap(), 47300, 2),
        start(&lab, "dhtnode", DHTNODE, 47400, 1),
    ];
    std::thread::sleep(Duration::from_secs(15));

    // Memory first, before the rounds fill every node: node 0 of each network after 10,000
    // values were put to it.
    let socket = rt.block_on(async {
        let s = lab
            .netns()
            .udp_socket("127.0.0.1:0".parse().unwrap())
            .expect("socket");
        s.set_nonblocking(true).unwrap();
        UdpSocket::from_std(s).unwrap()
    });
    let mut report = serde_json::Map::new();
    // Node 0: 10,000 values, 16 per key. Node 1: 5,000 values, one per key (a value's own
    // cost, its key's included, dominates).
    let phases = [
        ("", 0usize, STORED, 16usize),
        ("_one_per_key", 1, ONE_PER_KEY, 1),
    ];
    for (suffix, node, count, per_message) in phases {
        for (net, (port, network)) in nets.iter().zip([(47300u16, 2u32), (47400, 1)]) {
            let pids = net.pids();
            let pid = pids[node];
            let port = port + node as u16;
            let before = rss_kib(pid);
            let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let label = format!("rss{suffix}");
            let acked = rt.block_on(fill(&socket, to, network, count, per_message, &label));
            std::thread::sleep(Duration::from_secs(2));
            let after = rss_kib(pid);
            let others: Vec<u64> = pids[2..].iter().map(|p| rss_kib(*p)).collect();
            let mut sorted = others.clone();
            sorted.sort_unstable();
            let median_others = sorted[sorted.len() / 2];
            println!(
                "dht_rss/{}{suffix}: {after} KiB with {acked} values put ({before} KiB before); \
             other nodes median {median_others} KiB",
                net.name
            );
            assert!(
                acked >= count * 95 / 100,
                "{}: {acked} values acknowledged",
                net.name
            );
            report.insert(
                format!("{}{suffix}", net.name),
                serde_json::json!({
                    "rss_kib": after,
                    "rss_before_kib": before,
                    "values_acked": acked,
                    "median_other_nodes_kib": median_others,
                }),
            );
        }
    }
    // A listen flood from one address, within OpenDHT's per-address quota (1,000/s for
    // 60 s), to node 2 of each network; then an honest get through that node.
    for (net, (port, network)) in nets.iter().zip([(47300u16, 2u32), (47400, 1)]) {
        let pid = net.pids()[2];
        let to: SocketAddr = format!("127.0.0.1:{}", port + 2).parse().unwrap();
        let before = rss_kib(pid);
        let cpu_before = cpu_secs(pid);
        let sent = rt.block_on(listen_flood(&socket, to, network, 60, 1000));
        let after = rss_kib(pid);
        let cpu = cpu_secs(pid) - cpu_before;
        println!(
            "dht_listen_flood/{}: {sent} listens in 60 s grew the node from {before} to \
             {after} KiB (+{} KiB), {cpu:.1} CPU s",
            net.name,
            after.saturating_sub(before)
        );
        report.insert(
            format!("{}_listen_flood", net.name),
            serde_json::json!({
                "sent": sent, "rss_before_kib": before, "rss_after_kib": after,
                "cpu_secs": cpu,
            }),
        );
    }
    // Honest puts and gets after the flood: a round on each network. Ours must pass; the
    // reference's outcome is reported (a round that does not finish in 120 s says so).
    for net in &mut nets {
        let name = net.name;
        let found =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| round(net, 1_000_000)));
        match found {
            Ok(found) => {
                println!(
                    "dht_listen_flood/{name}: after the flood, {found} of {BATCH} gets found their value"
                );
                assert!(
                    name != "pamoja" || found >= BATCH * 99 / 100,
                    "{name}: honest gets failed after the flood"
                );
            }
            Err(_) if name != "pamoja" => {
                println!("dht_listen_flood/{name}: after the flood, the round did not finish")
            }
            Err(e) => std::panic::resume_unwind(e),
        }
    }
    let mut group = c.benchmark_group("dht_network");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(40));
    group.warm_up_time(Duration::from_secs(5));
    for net in &mut nets {
        let mut n = 0u64;
        let name = net.name;
        group.bench_function(format!("{name}_16"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let t = Instant::now();
                    let found = round(net, n);
                    total += t.elapsed();
                    assert!(
                        found >= BATCH * 99 / 100,
                        "{name}: only {found} of {BATCH} gets found their value"
                    );
                }
                total
            })
        });
    }
    group.finish();

    std::fs::write(
        common::results_dir().join("dht_rss.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    drop(nets);
    drop(lab);
}

criterion_group!(benches, network_bench);
criterion_main!(benches);
