//! Identity benchmarks, each measured side by side with the reference implementation in the
//! same run:
//!
//! * `account_creation/pamoja`: a whole Jami account (three RSA-4096 keys, three
//!   certificates) vs `account_creation/openssl_genpkey_x3`: `openssl genpkey` making three
//!   RSA-4096 keys;
//! * `archive_open/pamoja`: opening a password-protected archive (Argon2i 64 MiB × 16 passes,
//!   AES-256-GCM, inflate, JSON) vs `archive_open/argon2_cffi`: Python's argon2-cffi
//!   computing the same Argon2i hash, in a persistent Python process.
//!
//! `python3 scripts/bench-report.py` prints the medians and ratios from criterion's output.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use pamoja::identity::{Account, Archive};

fn have(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn account_creation(c: &mut Criterion) {
    let mut g = c.benchmark_group("account_creation");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(60))
        .warm_up_time(Duration::from_secs(3));
    g.bench_function("pamoja", |b| {
        b.iter(|| Account::create(|_| {}).expect("account"))
    });
    if have("openssl", &["version"]) {
        g.bench_function("openssl_genpkey_x3", |b| {
            b.iter(|| {
                for _ in 0..3 {
                    let ok = Command::new("openssl")
                        .args([
                            "genpkey",
                            "-algorithm",
                            "RSA",
                            "-pkeyopt",
                            "rsa_keygen_bits:4096",
                            "-out",
                            "/dev/null",
                        ])
                        .stderr(Stdio::null())
                        .status()
                        .expect("openssl")
                        .success();
                    assert!(ok);
                }
            })
        });
    } else {
        eprintln!("openssl not installed: reference skipped");
    }
    g.finish();
}

const PYTHON_ARGON2: &str = r#"
import sys
from argon2.low_level import hash_secret_raw, Type
salt = bytes.fromhex(sys.argv[1])
for line in sys.stdin:
    hash_secret_raw(b"bench password", salt, time_cost=16, memory_cost=65536, parallelism=1,
                    hash_len=32, type=Type.I, version=0x13)
    sys.stdout.write("ok\n"); sys.stdout.flush()
"#;

fn archive_open(c: &mut Criterion) {
    let account = Account::create(|_| {}).expect("account");
    let bytes = account
        .archive()
        .encode(Some("bench password"))
        .expect("encode");
    let mut g = c.benchmark_group("archive_open");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(30))
        .warm_up_time(Duration::from_secs(2));
    g.bench_function("pamoja", |b| {
        b.iter(|| Archive::decode(&bytes, Some("bench password")).expect("decode"))
    });
    if have("/usr/bin/python3", &["-c", "import argon2"]) {
        let salt = hex::encode(&bytes[..16]);
        let mut py = Command::new("/usr/bin/python3")
            .args(["-c", PYTHON_ARGON2, &salt])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut stdin = py.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(py.stdout.take().expect("stdout"));
        g.bench_function("argon2_cffi", |b| {
            b.iter(|| {
                stdin
                    .write_all(b"go\n")
                    .and_then(|_| stdin.flush())
                    .expect("write");
                let mut line = String::new();
                stdout.read_line(&mut line).expect("read");
                assert_eq!(line, "ok\n");
            })
        });
        drop(stdin);
        let _ = py.wait();
    } else {
        eprintln!("python3-argon2 not installed: reference skipped");
    }
    g.finish();
}

criterion_group!(benches, archive_open, account_creation);
criterion_main!(benches);
