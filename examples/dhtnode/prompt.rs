//! The interactive prompt: OpenDHT's `dhtnode` commands, answered in its words so that what
//! people script against one works against the other. Commands run concurrently: a `p` or
//! `g` prints its result when it completes, and the next line is read at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use pamoja::dht::runner::{ListenEvent, Runner};
use pamoja::dht::storage::lifetime;
use pamoja::dht::{InfoHash, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinHandle;

const HELP: &str = "\
Pamoja dhtnode commands (as OpenDHT's):
  h, help          this help
  x, exit, quit    stop the node
  ll               node information and counters
  lr               routing tables
  ld [key]         storage (of one key)
  ls               operations in progress
  la               our addresses as other nodes see them
  b host[:port]    bootstrap through a node
  g key            get
  l key            listen (prints a token)
  cl key token     cancel a listen
  p key value      put (text/plain)
  pp key value     permanent put (re-put before it expires)
  cpp key id       cancel a permanent put (id in hex, as printed by pp)
key: 40 hex digits, or any text (hashed with SHA-1)";

/// Formats a duration the way OpenDHT's tools do.
fn took(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1e3 {
        format!("{us:.1} us")
    } else if us < 1e6 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// A value as OpenDHT prints one.
pub fn show(v: &Value) -> String {
    let mut s = format!("Value[id:{:x} ", v.id);
    if v.is_signed() {
        s.push_str(&format!("signed (v{}) ", v.seq));
    }
    if v.user_type.is_empty() {
        s.push_str("data:");
    } else {
        s.push_str(&format!("data({}):", v.user_type));
    }
    if v.user_type == "text/plain" {
        s.push_str(&format!("\"{}\"", String::from_utf8_lossy(&v.data)));
    } else if v.data.len() < 1024 {
        s.push_str(&hex::encode(&v.data));
    } else {
        s.push_str(&format!("{} bytes", v.data.len()));
    }
    s.push(']');
    s
}

/// Parses a key as OpenDHT's dhtnode does, saying so when it was hashed.
fn key(text: &str) -> InfoHash {
    let k = InfoHash::from_key_text(text);
    if text.parse::<InfoHash>().is_err() {
        println!("Using h({text}) = {k}");
    }
    k
}

fn text_value(text: &str) -> Value {
    Value {
        user_type: "text/plain".into(),
        ..Value::new(text)
    }
}

async fn put(runner: &Runner, k: InfoHash, value: Value) {
    let start = Instant::now();
    let id = value.id;
    let ok = runner.put(k, value).await.unwrap_or(0) > 0;
    let verdict = if ok { "success" } else { "failure" };
    println!(
        "Put: {verdict}, took {}. Value ID: {id:x}",
        took(start.elapsed())
    );
}

/// Runs the prompt until `x` or the end of input.
pub async fn run(runner: Arc<Runner>) -> Result<()> {
    println!(
        "OpenDHT node {} running on port {}",
        runner.id(),
        runner.local_addr().port()
    );
    println!(" (type 'h' or 'help' for a list of possible commands)");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
    let mut listens: HashMap<u64, JoinHandle<()>> = HashMap::new();
    let mut permanent: HashMap<(InfoHash, u64), JoinHandle<()>> = HashMap::new();
    let mut next_token = 1u64;
    while let Some(line) = lines.next_line().await? {
        let mut words = line.split_whitespace();
        let op = words.next().unwrap_or("");
        let arg1 = words.next();
        let rest: Vec<&str> = words.collect();
        let spawn = |f: JoinHandle<()>| tasks.lock().unwrap().push(f);
        match (op, arg1) {
            ("", _) => {}
            ("x" | "exit" | "quit", _) => break,
            ("h" | "help", _) => println!("{HELP}"),
            ("ll", _) => {
                let s = runner.stats().await?;
                let ops = runner.inspect(|n, _| n.operations().count()).await?;
                println!(
                    "OpenDHT node {} running on port {}",
                    s.id,
                    runner.local_addr().port()
                );
                println!("{ops} ongoing operations");
                println!("Storage has {} values in {} keys", s.values, s.keys);
                println!("IPv4 stats:\n  good {}, known {}", s.good4, s.nodes4);
                println!("IPv6 stats:\n  good {}, known {}", s.good6, s.nodes6);
                let c = s.counters;
                println!(
                    "Refused: {} rate limited, {} from blacklisted nodes ({} blacklisted)",
                    c.rate_limited, c.from_blacklisted, c.blacklisted
                );
            }
            ("lr", _) => {
                let nodes = runner
                    .inspect(|n, now| {
                        n.routing_nodes()
                            .map(|r| {
                                let state = if r.is_good(now) {
                                    "good"
                                } else if r.expired {
                                    "expired"
                                } else {
                                    "dubious"
                                };
                                format!("{} {} {state}", r.id, r.addr)
                            })
                            .collect::<Vec<_>>()
                    })
                    .await?;
                println!("Routing tables ({} nodes):", nodes.len());
                for n in nodes {
                    println!("  {n}");
                }
            }
            ("ld", filter) => {
                let filter = filter.map(key);
                let lines = runner
                    .inspect(move |n, _| {
                        n.stored()
                            .filter(|(k, _)| filter.is_none_or(|f| f == **k))
                            .map(|(k, values)| {
                                let mut s = format!("Storage {k} {} values:", values.len());
                                for v in values {
                                    s.push_str(&format!("\n\t{}", show(v)));
                                }
                                s
                            })
                            .collect::<Vec<_>>()
                    })
                    .await?;
                for l in lines {
                    println!("{l}");
                }
            }
            ("ls", _) => {
                let ops = runner
                    .inspect(|n, _| {
                        n.operations()
                            .map(|(op, k, what)| format!("  [{op}] {what} {k}"))
                            .collect::<Vec<_>>()
                    })
                    .await?;
                println!("{} operations:", ops.len());
                for o in ops {
                    println!("{o}");
                }
            }
            ("la", _) => {
                let addrs = runner.inspect(|n, _| n.public_addresses().to_vec()).await?;
                println!("Reported public addresses:");
                for a in addrs {
                    println!("{a}");
                }
            }
            ("b", Some(host)) => match crate::resolve(host) {
                Ok(addr) => runner.bootstrap(addr),
                Err(e) => println!("Can't bootstrap: {e}"),
            },
            ("g", Some(k)) => {
                let k = key(k);
                let runner = runner.clone();
                spawn(tokio::spawn(async move {
                    let start = Instant::now();
                    let Ok(mut rx) = runner.get_stream(k, None) else {
                        return;
                    };
                    let mut total = 0;
                    while let Some(v) = rx.recv().await {
                        total += 1;
                        println!(
                            "Get: found 1 value(s) after {} (total {total})",
                            took(start.elapsed())
                        );
                        println!("\t{}", show(&v));
                    }
                    println!(
                        "Get: completed, took {} (total {total})",
                        took(start.elapsed())
                    );
                }));
            }
            ("l", Some(k)) => {
                let k = key(k);
                let token = next_token;
                next_token += 1;
                let mut listen = runner.listen(k, None).await?;
                println!("Listening, token: {token}");
                listens.insert(
                    token,
                    tokio::spawn(async move {
                        while let Some(ev) = listen.next().await {
                            match ev {
                                ListenEvent::Value(v) => {
                                    println!("Listen: found 1 values");
                                    println!("\t{}", show(&v));
                                }
                                ListenEvent::Expired(id) => {
                                    println!("Listen: found 1 values expired");
                                    println!("\tValue[id:{id:x}]");
                                }
                            }
                        }
                    }),
                );
            }
            ("cl", Some(_)) => match rest.first().and_then(|t| t.parse::<u64>().ok()) {
                Some(token) => match listens.remove(&token) {
                    Some(task) => {
                        task.abort();
                        println!("Listen cancelled");
                    }
                    None => println!("No listen with token {token}"),
                },
                None => println!("Syntax error: cl key token"),
            },
            ("p", Some(k)) if !rest.is_empty() => {
                let (k, value) = (key(k), text_value(&rest.join(" ")));
                let runner = runner.clone();
                spawn(tokio::spawn(async move { put(&runner, k, value).await }));
            }
            ("pp", Some(k)) if !rest.is_empty() => {
                let k = key(k);
                let mut value = text_value(&rest.join(" "));
                value.id = rand_id();
                let id = value.id;
                let runner = runner.clone();
                // Put again a little before each expiry, until cancelled.
                let every = lifetime(value.value_type).saturating_sub(Duration::from_secs(30));
                permanent.insert(
                    (k, id),
                    tokio::spawn(async move {
                        loop {
                            put(&runner, k, value.clone()).await;
                            tokio::time::sleep(every).await;
                        }
                    }),
                );
            }
            ("cpp", Some(k)) => {
                let k = key(k);
                match rest.first().and_then(|t| u64::from_str_radix(t, 16).ok()) {
                    Some(id) => match permanent.remove(&(k, id)) {
                        Some(task) => {
                            task.abort();
                            println!("Permanent put cancelled");
                        }
                        None => println!("No permanent put {id:x} at {k}"),
                    },
                    None => println!("Syntax error: cpp key id"),
                }
            }
            ("s" | "e" | "q" | "il" | "ii" | "a", _) => {
                println!("Not supported by this node: {op}");
            }
            ("b" | "g" | "l" | "cl" | "p" | "pp" | "cpp", _) => {
                println!("Syntax error: missing argument (type 'h' for help)");
            }
            _ => {
                println!("Unknown command: {op}");
                println!(" (type 'h' or 'help' for a list of possible commands)");
            }
        }
    }
    // Let gets and puts still running finish (input ended, as when commands are piped in).
    // A node that reaches nobody keeps them queued: give up after a while.
    let pending: Vec<JoinHandle<()>> = std::mem::take(&mut *tasks.lock().unwrap());
    let all = futures_util::future::join_all(pending);
    if tokio::time::timeout(Duration::from_secs(30), all)
        .await
        .is_err()
    {
        println!("Operations still pending at exit");
    }
    for (_, t) in listens
        .into_iter()
        .chain(permanent.into_iter().map(|(k, t)| (k.1, t)))
    {
        t.abort();
    }
    Ok(())
}

fn rand_id() -> u64 {
    let random = InfoHash::random();
    let mut b = [0u8; 8];
    b.copy_from_slice(&random.0[..8]);
    u64::from_le_bytes(b).max(1)
}
