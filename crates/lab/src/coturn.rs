//! coturn (Debian's `turnserver`) as a test STUN/TURN server: on loopback or inside a lab
//! namespace, with a test user, stopped by its PID on drop.

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{LabError, Netns, Result};

/// Path of coturn's server.
pub const TURNSERVER: &str = "/usr/bin/turnserver";

/// The test user every [`Coturn`] knows (long-term credentials, realm `pamoja.test`).
pub const TURN_USER: (&str, &str) = ("alice", "secret");

/// A running coturn.
pub struct Coturn {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// True when coturn can be used; when it cannot: panics where `CI` is set, prints why the
/// test is skipped otherwise.
pub fn coturn_available(test: &str) -> bool {
    if std::path::Path::new(TURNSERVER).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none_or(|v| v.is_empty()),
        "{test}: coturn is missing in CI"
    );
    eprintln!("SKIPPED {test}: coturn not installed (scripts/install-deps)");
    false
}

/// Where the relays of the lab's coturns live (each takes `min_port` and 40 more): listening
/// ports are never taken from there, or a probe could reach another server's relay.
const RELAY_PORTS: std::ops::Range<u16> = 49_000..51_000;

/// Listening ports handed out in this process, never twice (tests start servers at once).
static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

fn free_port(ip: IpAddr, ns: Option<&Netns>) -> Result<u16> {
    let taken: Vec<u16> = HANDED_OUT.lock().map(|v| v.clone()).unwrap_or_default();
    let probe = move || -> std::io::Result<u16> {
        // Free for both UDP and TCP, outside the relay ranges, not handed out already.
        loop {
            let u = std::net::UdpSocket::bind((ip, 0))?;
            let port = u.local_addr()?.port();
            if RELAY_PORTS.contains(&port) || taken.contains(&port) {
                continue;
            }
            if std::net::TcpListener::bind((ip, port)).is_ok() {
                return Ok(port);
            }
        }
    };
    let port = match ns {
        Some(ns) => ns.run_inside(probe)??,
        None => probe()?,
    };
    if let Ok(mut v) = HANDED_OUT.lock() {
        v.push(port);
    }
    Ok(port)
}

impl Coturn {
    /// Starts coturn on `ip` (a free port, UDP and TCP) with STUN, long-term credentials for
    /// [`TURN_USER`], relays on `ip` from `min_port` (40 ports), and `extra` arguments; inside
    /// `ns` when given. Returns once it accepts TCP connections.
    pub fn start(ip: IpAddr, ns: Option<&Netns>, min_port: u16, extra: &[&str]) -> Result<Self> {
        // A server that exits at once (its port taken meanwhile) is started again elsewhere.
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once(ip, ns, min_port, extra) {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| LabError::Peer("coturn did not start".into())))
    }

    fn start_once(ip: IpAddr, ns: Option<&Netns>, min_port: u16, extra: &[&str]) -> Result<Self> {
        let port = free_port(ip, ns)?;
        let dir = tempfile::tempdir()?;
        let mut cmd = match ns {
            Some(ns) => ns.command(TURNSERVER),
            None => Command::new(TURNSERVER),
        };
        cmd.args(["-n", "--no-tls", "--no-dtls", "--no-cli", "--lt-cred-mech"])
            .arg(format!("--user={}:{}", TURN_USER.0, TURN_USER.1))
            .arg("--realm=pamoja.test")
            .arg(format!("--listening-ip={ip}"))
            .arg(format!("--listening-port={port}"))
            .arg(format!("--relay-ip={ip}"))
            .arg(format!("--min-port={min_port}"))
            .arg(format!("--max-port={}", min_port + 40))
            .arg(format!(
                "--pidfile={}",
                dir.path().join("turn.pid").display()
            ))
            .args(["--log-file=stdout", "--simple-log"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().map_err(|e| LabError::Setup {
            cmd: TURNSERVER.into(),
            detail: e.to_string(),
        })?;
        let addr = SocketAddr::new(ip, port);
        let mut c = Self {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let probe = move || {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            };
            let up = match ns {
                Some(ns) => ns.run_inside(probe)?,
                None => probe(),
            };
            // Up, and still ours: a server that could not bind has exited.
            if !c.child_alive()? {
                return Err(LabError::Peer(format!("coturn exited (port {port})")));
            }
            if up {
                return Ok(c);
            }
            if Instant::now() > deadline {
                return Err(LabError::Timeout(
                    Duration::from_secs(10),
                    format!("coturn on {addr}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn child_alive(&mut self) -> std::io::Result<bool> {
        Ok(self.child.try_wait()?.is_none())
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
