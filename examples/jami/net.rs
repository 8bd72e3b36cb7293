//! `jami net`: what a STUN or TURN server sees of this machine.
//!
//! ```text
//! jami net stun --server HOST:PORT [--tcp]                 -> {"mapped": "ip:port"}
//! jami net turn --server HOST:PORT --user USER [--tcp] [--hold]
//!                                          -> {"relayed": "ip:port", "mapped": "ip:port"}
//! ```
//! The TURN password comes from `PAMOJA_TURN_PASSWORD`. With `--hold` the allocation is kept
//! refreshed until SIGTERM (or Ctrl-C), then released.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use pamoja::ice::client::{Binding, TurnClient, TurnEvent, stream_message_len};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

#[derive(Subcommand)]
pub enum NetCmd {
    /// Our address as a STUN server sees it.
    Stun {
        /// The STUN server.
        #[arg(long)]
        server: String,
        /// Ask over TCP instead of UDP.
        #[arg(long)]
        tcp: bool,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
    /// Allocate a relayed address on a TURN server (password from PAMOJA_TURN_PASSWORD).
    Turn {
        /// The TURN server.
        #[arg(long)]
        server: String,
        /// User name.
        #[arg(long)]
        user: String,
        /// Reach the server over TCP instead of UDP.
        #[arg(long)]
        tcp: bool,
        /// Keep the allocation refreshed until SIGTERM.
        #[arg(long)]
        hold: bool,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
}

/// A connection to a STUN/TURN server: datagrams, or a TCP stream of messages.
enum Link {
    Udp(UdpSocket, SocketAddr),
    Tcp(TcpStream, Vec<u8>),
}

impl Link {
    async fn open(server: &str, tcp: bool, deadline: tokio::time::Instant) -> Result<Self> {
        let addr = tokio::net::lookup_host(server)
            .await
            .with_context(|| format!("cannot resolve {server}"))?
            .next()
            .ok_or_else(|| anyhow!("cannot resolve {server}"))?;
        if tcp {
            let s = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
                .await
                .map_err(|_| anyhow!("{addr}: no answer (TCP connect timed out)"))?
                .with_context(|| format!("{addr}: cannot connect"))?;
            Ok(Self::Tcp(s, Vec::new()))
        } else {
            let bind: SocketAddr = if addr.is_ipv4() {
                "0.0.0.0:0".parse()?
            } else {
                "[::]:0".parse()?
            };
            Ok(Self::Udp(UdpSocket::bind(bind).await?, addr))
        }
    }

    fn reliable(&self) -> bool {
        matches!(self, Self::Tcp(..))
    }

    async fn send(&mut self, b: &[u8]) -> Result<()> {
        match self {
            Self::Udp(s, a) => {
                s.send_to(b, *a).await?;
            }
            Self::Tcp(s, _) => s.write_all(b).await?,
        }
        Ok(())
    }

    /// The next message from the server.
    async fn recv(&mut self) -> Result<Vec<u8>> {
        match self {
            Self::Udp(s, a) => {
                let mut buf = vec![0u8; 2048];
                loop {
                    // ICMP errors (nothing listening) show up as receive errors.
                    let (n, from) = s
                        .recv_from(&mut buf)
                        .await
                        .with_context(|| format!("{a}: unreachable"))?;
                    if from == *a {
                        return Ok(buf[..n].to_vec());
                    }
                }
            }
            Self::Tcp(s, buf) => loop {
                if let Some(len) = stream_message_len(buf) {
                    return Ok(buf.drain(..len).collect());
                }
                let mut chunk = [0u8; 2048];
                let n = s.read(&mut chunk).await?;
                if n == 0 {
                    bail!("the server closed the connection");
                }
                buf.extend_from_slice(&chunk[..n]);
            },
        }
    }

    fn server(&self) -> String {
        match self {
            Self::Udp(_, a) => a.to_string(),
            Self::Tcp(s, _) => s
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "server".into()),
        }
    }
}

async fn stun(server: &str, tcp: bool, timeout: Duration) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut link = Link::open(server, tcp, deadline).await?;
    let mut b = Binding::new(Instant::now(), link.reliable());
    loop {
        while let Some(p) = b.poll_transmit() {
            link.send(&p).await?;
        }
        if let Some(r) = b.result() {
            let mapped = r
                .clone()
                .map_err(|e| anyhow!("STUN server {}: {e}", link.server()))?;
            return Ok(json!({"mapped": mapped.to_string()}));
        }
        let wake = b
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or(deadline)
            .min(deadline);
        tokio::select! {
            m = link.recv() => { b.handle_input(&m?); }
            _ = tokio::time::sleep_until(wake) => {
                if wake >= deadline {
                    bail!("STUN server {}: no answer within {}s", link.server(), timeout.as_secs());
                }
                b.handle_timeout(Instant::now());
            }
        }
    }
}

async fn turn(server: &str, user: &str, tcp: bool, hold: bool, timeout: Duration) -> Result<Value> {
    let password = std::env::var("PAMOJA_TURN_PASSWORD").unwrap_or_default();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut link = Link::open(server, tcp, deadline).await?;
    let mut c = TurnClient::new(Instant::now(), user, &password, link.reliable());
    let mut result = None;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        while let Some(p) = c.poll_transmit() {
            link.send(&p).await?;
        }
        while let Some(e) = c.poll_event() {
            match e {
                TurnEvent::Allocated {
                    relayed, mapped, ..
                } => {
                    let v = json!({"relayed": relayed.to_string(), "mapped": mapped.to_string()});
                    if !hold {
                        c.close(Instant::now());
                        while let Some(p) = c.poll_transmit() {
                            link.send(&p).await?;
                        }
                        return Ok(v);
                    }
                    // Print now: the allocation lives on until SIGTERM.
                    println!("{v}");
                    result = Some(v);
                }
                TurnEvent::Failed(e) => bail!("TURN server {}: {e}", link.server()),
                _ => {}
            }
        }
        if c.is_closed() {
            bail!("TURN server {}: the allocation ended", link.server());
        }
        let limit = if result.is_some() {
            None
        } else {
            Some(deadline)
        };
        let wake = [c.poll_timeout().map(tokio::time::Instant::from_std), limit]
            .into_iter()
            .flatten()
            .min();
        let sleep = async {
            match wake {
                Some(w) => tokio::time::sleep_until(w).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            m = link.recv() => { c.handle_input(Instant::now(), &m?); }
            _ = sleep => {
                if result.is_none() && wake.is_some_and(|w| w >= deadline) {
                    bail!("TURN server {}: no answer within {}s", link.server(), timeout.as_secs());
                }
                c.handle_timeout(Instant::now());
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    // Released on the way out; the JSON was printed when the allocation was made.
    c.close(Instant::now());
    while let Some(p) = c.poll_transmit() {
        let _ = link.send(&p).await;
    }
    Ok(Value::Null)
}

/// Runs a `net` command; `Null` when the output was already printed.
pub fn run(cmd: NetCmd) -> Result<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cmd {
        NetCmd::Stun {
            server,
            tcp,
            timeout,
        } => rt.block_on(stun(&server, tcp, Duration::from_secs(timeout))),
        NetCmd::Turn {
            server,
            user,
            tcp,
            hold,
            timeout,
        } => rt.block_on(turn(
            &server,
            &user,
            tcp,
            hold,
            Duration::from_secs(timeout),
        )),
    }
}
