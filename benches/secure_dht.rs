//! SecureDht throughput, side by side with a C++ peer on Debian's libopendht 2.4.12 in the
//! same run, on one loopback network (a real `dhtnode` as bootstrap, our node, the peer):
//!
//! * `signed_put_get`: put a signed value at a fresh key, then get it back with its
//!   signature verified;
//! * `encrypted_put_get`: put a value encrypted to our own key at a fresh key, then get it
//!   back decrypted.
//!
//! Both sides use RSA-4096 identities, one round after the other (no pipelining). The peer
//! times its own loop (`bench_signed N`), so process overhead is not counted.
//! `python3 scripts/bench-report.py` prints the medians and ratios.

mod common;
#[path = "../tests/peers/mod.rs"]
mod peers;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use pamoja::dht::securedht::SecureDht;
use pamoja::dht::{Config, InfoHash, Runner, Value};
use pamoja::identity::{Account, PrivateKey};

struct Dhtnode(Child);

impl Drop for Dhtnode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bench(c: &mut Criterion) {
    let port = 40000 + (std::process::id() % 20000) as u16;
    let Ok(child) = Command::new("/usr/bin/dhtnode")
        .args(["-s", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        eprintln!("secure_dht skipped: dhtnode is not installed");
        return;
    };
    let _dhtnode = Dhtnode(child);
    std::thread::sleep(Duration::from_millis(500));
    let bootstrap = format!("127.0.0.1:{port}").parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sd = rt.block_on(async {
        let runner = Runner::bind("127.0.0.1:0".parse().unwrap(), Config::default())
            .await
            .unwrap();
        runner.bootstrap(bootstrap);
        while runner.stats().await.unwrap().good4 == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let account = Account::create(|_| {}).unwrap();
        let device = account.device().unwrap();
        let key = PrivateKey::from_pkcs8_der(device.key.to_pkcs8_der()).unwrap();
        let sd = Arc::new(SecureDht::new(
            Arc::new(runner),
            key,
            vec![device.cert.clone(), account.account_cert().clone()],
        ));
        sd.publish_certificate().await.unwrap();
        sd
    });
    let me = sd.key_id();
    let mut peer = match peers::build(&common::target_dir()) {
        Ok(bin) => {
            let mut cmd = Command::new(bin);
            cmd.args(["127.0.0.1", &port.to_string()]);
            let mut p = peers::Peer::start(cmd);
            let _ = p.ask("id");
            std::thread::sleep(Duration::from_secs(2));
            Some(p)
        }
        Err(why) => {
            eprintln!("libopendht peer skipped: {why}");
            None
        }
    };

    let mut g = c.benchmark_group("signed_put_get");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.bench_function("pamoja", |b| {
        b.iter_custom(|n| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    let k = InfoHash::random();
                    assert!(sd.put_signed(k, Value::new("bench value")).await.unwrap() > 0);
                    let got = sd.get(k).await.unwrap();
                    assert!(got.iter().any(|c| c.owner == Some(me)));
                }
                start.elapsed()
            })
        })
    });
    if let Some(p) = peer.as_mut() {
        g.bench_function("libopendht", |b| {
            b.iter_custom(|n| ms(&p.ask(&format!("bench_signed {n}"))))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("encrypted_put_get");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.bench_function("pamoja", |b| {
        b.iter_custom(|n| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    let k = InfoHash::random();
                    let v = Value::new("bench value");
                    assert!(sd.put_encrypted(k, me, v).await.unwrap() > 0);
                    let got = sd.get(k).await.unwrap();
                    assert!(got.iter().any(|c| c.encrypted));
                }
                start.elapsed()
            })
        })
    });
    if let Some(p) = peer.as_mut() {
        g.bench_function("libopendht", |b| {
            b.iter_custom(|n| ms(&p.ask(&format!("bench_encrypted {n}"))))
        });
    }
    g.finish();
}

/// "ms 12.5" → 12.5 ms.
fn ms(line: &str) -> Duration {
    let v: f64 = line
        .strip_prefix("ms ")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("peer answered {line:?}"));
    Duration::from_secs_f64(v / 1000.0)
}

criterion_group!(benches, bench);
criterion_main!(benches);
