//! `dhtnode`: an OpenDHT-compatible node with a command line like OpenDHT's `dhtnode`.
//!
//! ```text
//! dhtnode -p PORT [-n NETID] [-b HOST[:PORT]] -s      run until SIGTERM (service mode)
//! dhtnode -p PORT [-n NETID] [-b HOST[:PORT]]         interactive prompt (h lists commands)
//! dhtnode -b HOST:PORT [-n NETID] get KEY [--timeout S]
//! dhtnode -b HOST:PORT [-n NETID] put KEY TEXT
//! dhtnode -b HOST:PORT [-n NETID] listen KEY --count N [--timeout S]
//! dhtnode -b HOST:PORT [-n NETID] certificate KEY_ID [--timeout S]
//! dhtnode ... --proxyserver PORT [--identity ARCHIVE]  also serve OpenDHT's REST proxy
//! dhtnode --proxyclient http://HOST:PORT ...           no UDP: everything through a proxy
//! ```
//! Scripted `get` and `listen` hand out what a SecureDht node would: signed values only when
//! their signature verifies (printed with `"owner"` and `"signed": true`), values encrypted to
//! the device of `--identity ARCHIVE` decrypted (`"encrypted": true`), plain values as they are.
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
use pamoja::dht::secure;
use pamoja::dht::{Config, InfoHash, Value};
use pamoja::identity::{Account, Archive, Certificate, PrivateKey};
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
    /// An account archive whose device key decrypts values encrypted to it (scripted `get` and
    /// `listen`; password from PAMOJA_PASSWORD).
    #[arg(long)]
    identity: Option<std::path::PathBuf>,
    /// Turn rate limiting of incoming requests off.
    #[arg(short = 'U')]
    no_rate_limit: bool,
    /// Address to bind (the UDP node, and the proxy server).
    #[arg(long = "bind", default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Serve the DHT proxy REST API on this TCP port (of --bind).
    #[arg(long = "proxyserver")]
    proxy_server: Option<u16>,
    /// Use no UDP socket: do everything through the DHT proxy at this URL (http://HOST:PORT).
    #[arg(long = "proxyclient")]
    proxy_client: Option<String>,
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
    /// Print the certificate (chain) published for a public key id (either location).
    Certificate {
        /// 40 hex digits: SHA-1 of the key, or SHA-1 of its SHA-256.
        key_id: String,
        /// Seconds to wait at most.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
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

/// What scripted `get` and `listen` print for a value, as a SecureDht node would hand it out:
/// a signed value only when its signature verifies (with `"owner"` and `"signed": true`), an
/// encrypted one only when `identity` decrypts it (then also `"encrypted": true`), plain values
/// as they are. `None`: dropped.
fn checked_json(v: Value, identity: Option<&PrivateKey>) -> Option<serde_json::Value> {
    let (v, encrypted) = if v.cypher.is_some() {
        (secure::decrypt(&v, identity?).ok()?, true)
    } else {
        (v, false)
    };
    let mut out = value_json(&v);
    if v.is_signed() {
        let owner = secure::verify(&v).ok()?;
        out["owner"] = json!(secure::key_id(&owner).to_string());
        out["signed"] = json!(true);
    }
    if encrypted {
        out["encrypted"] = json!(true);
    }
    Some(out)
}

/// The device key of the archive given with `--identity` (password from `PAMOJA_PASSWORD`).
fn identity_key(path: &std::path::Path) -> Result<PrivateKey> {
    Ok(identity(path)?.0)
}

/// The device key of an archive and its certificate chain (device, account).
fn identity(path: &std::path::Path) -> Result<(PrivateKey, Vec<Certificate>)> {
    let password = std::env::var("PAMOJA_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let archive = Archive::read_file(path, password.as_deref())
        .with_context(|| format!("cannot open {}", path.display()))?;
    let account = Account::from_archive(archive)?;
    let device = account
        .device()
        .ok_or_else(|| anyhow!("{} holds no device key", path.display()))?;
    Ok((
        PrivateKey::from_pkcs8_der(device.key.to_pkcs8_der())?,
        vec![device.cert.clone(), account.account_cert().clone()],
    ))
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
    if let Some(url) = &cli.proxy_client {
        return Runner::proxy(url).with_context(|| format!("proxy {url}"));
    }
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

async fn scripted(runner: &Runner, cmd: &Command, identity: Option<&PrivateKey>) -> Result<()> {
    match cmd {
        Command::Get { key, timeout } => {
            let mut rx = runner.get_stream(InfoHash::from_key_text(key), None)?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(*timeout);
            while let Ok(Some(v)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                if let Some(j) = checked_json(v, identity) {
                    println!("{j}");
                }
            }
            Ok(())
        }
        Command::Certificate { key_id, timeout } => {
            let id: InfoHash = key_id
                .parse()
                .map_err(|_| anyhow!("KEY_ID must be 40 hex digits"))?;
            let mut rx = runner.get_stream(id, None)?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(*timeout);
            while let Ok(Some(v)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                if let Some(chain) = secure::certificate_from_value(&v, &id) {
                    let refs: Vec<&Certificate> = chain.iter().collect();
                    println!(
                        "{}",
                        json!({"id": id.to_string(), "pem": Certificate::chain_to_pem(&refs)})
                    );
                    return Ok(());
                }
            }
            bail!("no certificate found for {id}")
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
                        if let Some(j) = checked_json(v, identity) {
                            println!("{j}");
                            seen += 1;
                        }
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
    if let Some(port) = cli.proxy_server {
        let addr = SocketAddr::new(cli.bind, port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot bind the proxy server on {addr}"))?;
        let config = pamoja::dht::proxy::ProxyConfig::default();
        // With --identity, the proxy also signs and encrypts on behalf of its clients.
        let router = match &cli.identity {
            Some(path) => {
                let (key, chain) = identity(path)?;
                let secure = pamoja::dht::securedht::SecureDht::new(runner.clone(), key, chain);
                let secure = std::sync::Arc::new(secure);
                let publisher = secure.clone();
                tokio::spawn(async move { publisher.publish_certificate().await });
                pamoja::dht::proxy::router_with_identity(secure, config)
            }
            None => pamoja::dht::proxy::router(runner.clone(), config),
        };
        tokio::spawn(pamoja::dht::proxy::serve_router(listener, router));
        eprintln!("dhtnode: DHT proxy on http://{addr}");
    }
    if let Some(cmd) = &cli.command {
        let identity = cli.identity.as_deref().map(identity_key).transpose()?;
        return scripted(&runner, cmd, identity.as_ref()).await;
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
