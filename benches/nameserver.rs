//! The name server under load on loopback, with `wrk` as the load generator (2 threads,
//! 64 connections, 10 s per figure), on SQLite and on a private PostgreSQL:
//!
//! * lookups (`GET /name/{name}`) of random names among 10,000 registered, served from the
//!   server's memory of registrations (the normal case: registrations never change) and with
//!   that memory off (every lookup reads the database);
//! * registrations (`POST /name/{name}`): a valid registration posted again and again, each
//!   one fully checked (RSA-4096 signature, key against address) and written (an idempotent
//!   insert), with the rate limit off.
//!
//! Requests per second and p99 latency are printed and written to
//! `target/criterion/nameserver.json`. Run: `cargo bench --bench nameserver` (needs `wrk`; the
//! PostgreSQL figures need root and the `postgresql` package).

use std::process::Command;

use pamoja::identity::Account;
use pamoja::nameserver::name::Name;
use pamoja::nameserver::record::Registration;
use pamoja::nameserver::server::{self, Config};
use pamoja::nameserver::store::Store;
use pamoja_lab::Postgres;
use serde_json::json;

mod common;

const NAMES: usize = 10_000;

const LOOKUP_LUA: &str = r#"
math.randomseed(os.time())
request = function()
  return wrk.format("GET", string.format("/name/user%05d", math.random(1, 10000)))
end
"#;

fn fake(i: usize) -> Registration {
    // Stored as if checked: lookups only read them back.
    Registration {
        addr: format!("{:040x}", i + 1),
        owner: format!("{:040x}", i + 1),
        signature: "c2lnbmF0dXJl".into(),
        publickey: "cHVibGljIGtleQ==".into(),
    }
}

/// Runs wrk; returns (requests per second, p99 latency in ms, non-2xx responses).
fn wrk(url: &str, script: &std::path::Path) -> (f64, f64, u64) {
    let out = Command::new("wrk")
        .args(["-t2", "-c64", "-d10s", "--latency", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let rate = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| {
            let v = v.trim();
            if let Some(us) = v.strip_suffix("us") {
                us.parse::<f64>().unwrap_or(0.0) / 1000.0
            } else if let Some(ms) = v.strip_suffix("ms") {
                ms.parse().unwrap_or(0.0)
            } else if let Some(s) = v.strip_suffix('s') {
                s.parse::<f64>().unwrap_or(0.0) * 1000.0
            } else {
                0.0
            }
        })
        .unwrap_or(0.0);
    let errors = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (rate, p99, errors)
}

fn main() {
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("nameserver bench skipped: wrk is not installed (apt-get install wrk)");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lookup = dir.path().join("lookup.lua");
    std::fs::write(&lookup, LOOKUP_LUA).unwrap();

    let account = Account::create(|_| {}).unwrap();
    let reg = Registration::sign(&account, &Name::parse("bench_owner").unwrap()).unwrap();
    let register = dir.path().join("register.lua");
    std::fs::write(
        &register,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n",
            reg.to_json()
        ),
    )
    .unwrap();

    let pg = match Postgres::start() {
        Ok(pg) => Some(pg),
        Err(why) => {
            eprintln!("PostgreSQL figures skipped: {why}");
            None
        }
    };
    let mut dbs = vec![(
        "sqlite",
        format!("sqlite:{}", dir.path().join("names.db").display()),
    )];
    if let Some(pg) = &pg {
        dbs.push(("postgres", pg.url()));
    }

    let mut report = serde_json::Map::new();
    println!("| database | workload | requests/s | p99 latency | non-2xx |");
    println!("|---|---|---|---|---|");
    for (db, url) in &dbs {
        let store = rt.block_on(Store::open(url)).unwrap();
        rt.block_on(async {
            for i in 0..NAMES {
                store
                    .insert(&format!("user{:05}", i + 1), &fake(i))
                    .await
                    .unwrap();
            }
        });
        for (workload, cache_entries, script, path) in [
            ("lookups, from memory", 100_000, &lookup, ""),
            ("lookups, from the database", 1, &lookup, ""),
            ("registrations", 100_000, &register, "/name/bench_owner"),
        ] {
            let config = Config {
                registrations_per_minute: 0,
                cache_entries,
                ..Config::default()
            };
            let listener = rt
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap();
            let addr = listener.local_addr().unwrap();
            let serving = rt.spawn(server::serve(listener, store.clone(), config));
            let (rate, p99, errors) = wrk(&format!("http://{addr}{path}"), script);
            serving.abort();
            println!("| {db} | {workload} | {rate:.0} | {p99:.2} ms | {errors} |");
            report.insert(
                format!("{db}/{workload}"),
                json!({"requests_per_sec": rate, "p99_ms": p99, "non_2xx": errors}),
            );
        }
    }
    std::fs::write(
        common::results_dir().join("nameserver.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
}
