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

fn free_port(ip: IpAddr, ns: Option<&Netns>) -> Result<u16> {
    let probe = move || -> std::io::Result<u16> {
        // Free for both UDP and TCP.
        loop {
            let u = std::net::UdpSocket::bind((ip, 0))?;
            let port = u.local_addr()?.port();
            if std::net::TcpListener::bind((ip, port)).is_ok() {
                return Ok(port);
            }
        }
    };
    Ok(match ns {
        Some(ns) => ns.run_inside(probe)??,
        None => probe()?,
    })
}

impl Coturn {
    /// Starts coturn on `ip` (a free port, UDP and TCP) with STUN, long-term credentials for
    /// [`TURN_USER`], relays on `ip` from `min_port` (40 ports), and `extra` arguments; inside
    /// `ns` when given. Returns once it accepts TCP connections.
    pub fn start(ip: IpAddr, ns: Option<&Netns>, min_port: u16, extra: &[&str]) -> Result<Self> {
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
        let c = Self {
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
