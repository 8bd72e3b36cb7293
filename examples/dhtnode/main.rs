//! `dhtnode`: an OpenDHT-compatible node with a command line like OpenDHT's `dhtnode`.
//!
//! ```text
//! dhtnode -p PORT [-n NETID] [-b HOST[:PORT]] -s      run until SIGTERM (service mode)
//! dhtnode -p PORT [-n NETID] [-b HOST[:PORT]]         interactive prompt (h lists commands)
//! dhtnode -b HOST:PORT [-n NETID] get KEY [--timeout S]
//! dhtnode -b HOST:PORT [-n NETID] put KEY TEXT
//! dhtnode -b HOST:PORT [-n NETID] listen KEY --count N [--timeout S]
//! ```
//! The node binds to `--bind` (default 127.0.0.1): it never listens on the public network
//! unless asked. KEY is 40 hex digits, or any other text hashed with SHA-1. Scripting
//! commands print one JSON object per line: `{"id", "type", "data"}` (or `"data_b64"` when
//! the payload is not UTF-8).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use clap::{Parser, Subcommand};
use pamoja::dht::discovery::{self, Discovery, Mode};
use pamoja::dht::runner::{ListenEvent, Runner};
use pamoja::dht::{Config, InfoHash, Value};
use serde_json::json;

mod prompt;

/// Longest a scripted put waits.
const PUT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Parser)]
#[command(name = "dhtnode", version, about = "OpenDHT-compatible DHT node")]
struct Cli {
    /// UDP port (0: any).
    #[arg(short = 'p', long = "port", default_value_t = 0)]
    port: u16,
    /// Network id.
    #[arg(short = 'n', long = "network", default_value_t = 0)]
    network: u32,
    /// Bootstrap node, HOST[:PORT] (port 4222 by default).
    #[arg(short = 'b', long = "bootstrap")]
    bootstrap: Option<String>,
    /// Service mode: no prompt, run until SIGTERM or SIGINT.
    #[arg(short = 's', long = "service")]
    service: bool,
    /// Find and be found by nodes on the local network (multicast 239.192.0.1:8888).
    #[arg(short = 'D')]
    discovery: bool,
    /// Turn rate limiting of incoming requests off.
    #[arg(short = 'U')]
    no_rate_limit: bool,
    /// Address to bind.
    #[arg(long = "bind", default_value = "127.0.0.1")]
    bind: IpAddr,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print every value at KEY, then exit.
    Get {
        /// 40 hex digits, or text hashed with SHA-1.
        key: String,
        /// Seconds to wait at most.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
    },
    /// Store TEXT at KEY; exit 0 once stored on at least one node.
    Put {
        /// 40 hex digits, or text hashed with SHA-1.
        key: String,
        /// The value.
        text: String,
    },
    /// Print values at KEY as they arrive; exit 0 after COUNT values, non-zero on timeout.
    Listen {
        /// 40 hex digits, or text hashed with SHA-1.
        key: String,
        /// Values to wait for.
        #[arg(long)]
        count: usize,
        /// Seconds to wait at most.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
    },
}

fn value_json(v: &Value) -> serde_json::Value {
    match std::str::from_utf8(&v.data) {
        Ok(text) => json!({"id": v.id, "type": v.value_type, "data": text}),
        Err(_) => {
            json!({"id": v.id, "type": v.value_type, "data_b64": base64::engine::general_purpose::STANDARD.encode(&v.data)})
        }
    }
}

fn resolve(host: &str) -> Result<SocketAddr> {
    let with_port = if host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !host.ends_with(']')
    {
        host.to_owned()
    } else {
        format!("{host}:4222")
    };
    with_port
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow!("cannot resolve {host}"))
}

async fn start(cli: &Cli) -> Result<Runner> {
    let runner = Runner::bind(
        SocketAddr::new(cli.bind, cli.port),
        Config {
            network: cli.network,
            rate_limit: if cli.no_rate_limit {
                None
            } else {
                Config::default().rate_limit
            },
            ..Config::default()
        },
    )
    .await
    .with_context(|| format!("cannot bind {}:{}", cli.bind, cli.port))?;
    if let Some(b) = &cli.bootstrap {
        let addr = resolve(b)?;
        runner.bootstrap(addr);
        // Wait until a node answered (or give up after 5 s and work with what we have).
        let deadline = Instant::now() + Duration::from_secs(5);
        while runner.stats().await?.good4 + runner.stats().await?.good6 == 0
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(runner)
}

async fn scripted(runner: &Runner, cmd: &Command) -> Result<()> {
    match cmd {
        Command::Get { key, timeout } => {
            let mut rx = runner.get_stream(InfoHash::from_key_text(key), None)?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(*timeout);
            while let Ok(Some(v)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                println!("{}", value_json(&v));
            }
            Ok(())
        }
        Command::Put { key, text } => {
            // A node that reaches nobody keeps the put queued (as OpenDHT does): give up
            // after a while.
            let put = runner.put(
                InfoHash::from_key_text(key),
                Value::new(text.as_bytes().to_vec()),
            );
            let stored = tokio::time::timeout(PUT_TIMEOUT, put)
                .await
                .map_err(|_| anyhow!("no node reached in {} s", PUT_TIMEOUT.as_secs()))??;
            if stored == 0 {
                bail!("value not stored on any node");
            }
            Ok(())
        }
        Command::Listen {
            key,
            count,
            timeout,
        } => {
            let mut listen = runner.listen(InfoHash::from_key_text(key), None).await?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(*timeout);
            let mut seen = 0;
            while seen < *count {
                match tokio::time::timeout_at(deadline, listen.next()).await {
                    Ok(Some(ListenEvent::Value(v))) => {
                        println!("{}", value_json(&v));
                        seen += 1;
                    }
                    Ok(Some(ListenEvent::Expired(_))) => {}
                    Ok(None) => bail!("node stopped"),
                    Err(_) => bail!("timeout after {seen} of {count} values"),
                }
            }
            Ok(())
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let runner = std::sync::Arc::new(start(&cli).await?);
    // LAN discovery (-D): multicast on the local link, as OpenDHT's dhtnode -D.
    let _discovery = if cli.discovery {
        let socket = discovery::bind_socket(std::net::Ipv4Addr::UNSPECIFIED)
            .context("cannot open the discovery socket (UDP 8888)")?;
        Some(Discovery::start(
            socket,
            runner.clone(),
            cli.network,
            Mode::Both,
        )?)
    } else {
        None
    };
    if let Some(cmd) = &cli.command {
        return scripted(&runner, cmd).await;
    }
    if cli.service {
        eprintln!("dhtnode: node {} on {}", runner.id(), runner.local_addr());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        return Ok(());
    }
    prompt::run(runner).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dhtnode: error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
