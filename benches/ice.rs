//! ICE benchmarks, each measured side by side with its reference in the same run:
//!
//! * `stun_check_encode` / `stun_check_decode`: an ICE connectivity check (Binding request
//!   with USERNAME, PRIORITY, ICE-CONTROLLING, USE-CANDIDATE, MESSAGE-INTEGRITY and
//!   FINGERPRINT) written, then read with its integrity and fingerprint checked, by
//!   `pamoja` and by `pion` (pion/stun, Debian's golang-github-pion-stun-dev, built by this
//!   bench with Debian's Go; its own loop times the operations, so process start-up is not
//!   counted);
//! * `udp_echo_1000x1000`: 1,000 datagrams of 1,000 bytes echoed by the peer (16 in flight)
//!   on a `direct` path between two of our agents on loopback and `via_coturn`, the same
//!   agents connected through relayed candidates on Debian's coturn.
//!
//! `python3 scripts/bench-report.py` prints the medians and ratios.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use pamoja::ice::stun::{BINDING, Builder, Class, Message, attr};

const PWD: &str = "00112233445566778899aabb";

fn check() -> Vec<u8> {
    Builder::new(Class::Request, BINDING, Builder::random_transaction())
        .attr(attr::USERNAME, b"0a1b2c3d:4e5f6a7b")
        .attr(attr::PRIORITY, &1_853_817_087u32.to_be_bytes())
        .attr(
            attr::ICE_CONTROLLING,
            &0x0123_4567_89ab_cdefu64.to_be_bytes(),
        )
        .attr(attr::USE_CANDIDATE, &[])
        .integrity(PWD.as_bytes())
        .fingerprint()
}

/// pion/stun's side, as a persistent process: `None` when Go or pion/stun is missing.
struct Pion {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Pion {
    fn start() -> Option<Self> {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("benches/reference/pion_stun/main.go");
        let bin = common::target_dir().join("pion_stun");
        let built = Command::new("go")
            .args(["build", "-o"])
            .arg(&bin)
            .arg(&src)
            .env("GOPATH", "/usr/share/gocode")
            .env("GO111MODULE", "off")
            .env("GOCACHE", common::target_dir().join("go-cache"))
            .status()
            .is_ok_and(|s| s.success());
        if !built {
            eprintln!(
                "pion/stun reference skipped: needs golang-go and golang-github-pion-stun-dev \
                 (scripts/install-deps --bench)"
            );
            return None;
        }
        let mut child = Command::new(bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let out = BufReader::new(child.stdout.take()?);
        Some(Self { child, out })
    }

    fn run(&mut self, op: &str, n: u64) -> Duration {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{op} {n}").expect("pion input");
        let mut line = String::new();
        self.out.read_line(&mut line).expect("pion output");
        Duration::from_nanos(line.trim().parse().expect("nanoseconds"))
    }
}

impl Drop for Pion {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stun_codec(c: &mut Criterion) {
    let mut pion = Pion::start();
    let wire = check();
    let mut g = c.benchmark_group("stun_check_encode");
    g.bench_function("pamoja", |b| b.iter(check));
    if let Some(p) = pion.as_mut() {
        g.bench_function("pion", |b| b.iter_custom(|n| p.run("encode", n)));
    }
    g.finish();
    let mut g = c.benchmark_group("stun_check_decode");
    g.bench_function("pamoja", |b| {
        b.iter(|| {
            let m = Message::decode(&wire).expect("decode");
            assert!(m.check_integrity(&wire, PWD.as_bytes()));
            assert!(m.check_fingerprint(&wire));
            m
        })
    });
    if let Some(p) = pion.as_mut() {
        g.bench_function("pion", |b| b.iter_custom(|n| p.run("decode", n)));
    }
    g.finish();
}

/// Two connected agents on loopback, direct or through coturn.
async fn connect(
    turn: Option<std::net::SocketAddr>,
) -> (
    pamoja::ice::session::Connection,
    pamoja::ice::session::Connection,
) {
    use pamoja::ice::agent::Role;
    use pamoja::ice::session::{Options, Session, TurnServer};
    let opts = || {
        let mut o = Options::udp(vec!["127.0.0.1:0".parse().unwrap()]);
        if let Some(addr) = turn {
            o.turn = Some(TurnServer {
                addr,
                username: pamoja_lab::TURN_USER.0.into(),
                password: pamoja_lab::TURN_USER.1.into(),
                tcp: false,
            });
            o.relay_only = true;
        }
        o
    };
    let a = Session::gather(Role::Controlling, opts()).await.unwrap();
    let b = Session::gather(Role::Controlled, opts()).await.unwrap();
    let (da, db) = (a.local_description().clone(), b.local_description().clone());
    let (x, y) = tokio::join!(a.connect(db), b.connect(da));
    (x.unwrap(), y.unwrap())
}

/// 1,000 datagrams of 1,000 bytes, 16 in flight, each echoed by the peer.
async fn echo_round(
    a: &mut pamoja::ice::session::Connection,
    b: &mut pamoja::ice::session::Connection,
) {
    let payload = vec![7u8; 1000];
    let (mut sent, mut back) = (0, 0);
    while sent < 16 {
        a.send(&payload).await.unwrap();
        sent += 1;
    }
    while back < 1000 {
        let d = tokio::time::timeout(Duration::from_secs(5), b.recv())
            .await
            .expect("datagram lost")
            .unwrap();
        b.send(&d).await.unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(5), a.recv())
            .await
            .expect("echo lost")
            .unwrap();
        back += 1;
        if sent < 1000 {
            a.send(&payload).await.unwrap();
            sent += 1;
        }
    }
}

fn relay_throughput(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut g = c.benchmark_group("udp_echo_1000x1000");
    g.sample_size(20).measurement_time(Duration::from_secs(20));
    let (mut a, mut b) = rt.block_on(connect(None));
    g.bench_function("direct", |bench| {
        bench.iter(|| rt.block_on(echo_round(&mut a, &mut b)))
    });
    if std::path::Path::new(pamoja_lab::TURNSERVER).exists() {
        let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        let server =
            pamoja_lab::Coturn::start(ip, None, 49900, &["--allow-loopback-peers"]).unwrap();
        let (mut a, mut b) = rt.block_on(connect(Some(server.addr())));
        g.bench_function("via_coturn", |bench| {
            bench.iter(|| rt.block_on(echo_round(&mut a, &mut b)))
        });
    } else {
        eprintln!("coturn not installed: relayed path skipped");
    }
    g.finish();
}

criterion_group!(benches, stun_codec, relay_throughput);
criterion_main!(benches);
