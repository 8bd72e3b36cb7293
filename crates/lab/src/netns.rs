//! A private network namespace set up as Debian's jamid needs it.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{LAB_ADDR, LabError, Result};

/// A named network namespace, deleted on drop.
pub struct Netns {
    name: String,
}

fn run(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| LabError::Setup {
            cmd: format!("ip {}", args.join(" ")),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(LabError::Setup {
            cmd: format!("ip {}", args.join(" ")),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

impl Netns {
    /// Creates `pamoja-<pid>-<n>` with loopback up, a veth pair (`lab0` holding
    /// [`LAB_ADDR`]/24, `lab1`) and IPv6 disabled.
    pub fn create() -> Result<Self> {
        let ns = Self::bare()?;
        let n = ns.name.as_str();
        run(&[
            "-n", n, "link", "add", "lab0", "type", "veth", "peer", "name", "lab1",
        ])?;
        run(&[
            "-n",
            n,
            "addr",
            "add",
            &format!("{LAB_ADDR}/24"),
            "dev",
            "lab0",
        ])?;
        run(&["-n", n, "link", "set", "lab0", "up"])?;
        run(&["-n", n, "link", "set", "lab1", "up"])?;
        Ok(ns)
    }

    /// Creates `pamoja-<pid>-<n>` with only loopback up and IPv6 disabled; links are added
    /// with [`Netns::ip`].
    pub fn bare() -> Result<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "pamoja-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        run(&["netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        ns.sysctl(&[
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.lo.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ])?;
        Ok(ns)
    }

    /// Runs `ip -n <this namespace> args...`.
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Sets kernel parameters inside the namespace (`sysctl -qw`).
    pub fn sysctl(&self, settings: &[&str]) -> Result<()> {
        self.check(self.command("sysctl").arg("-qw").args(settings), "sysctl")
    }

    /// Runs a command built by [`Netns::command`] and fails with its stderr.
    pub fn check(&self, cmd: &mut Command, what: &str) -> Result<()> {
        let out = cmd.output().map_err(|e| LabError::Setup {
            cmd: what.into(),
            detail: e.to_string(),
        })?;
        if !out.status.success() {
            return Err(LabError::Setup {
                cmd: what.into(),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(())
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace (`ip netns exec` execs it, so the
    /// child's PID is the program's).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }
}

impl Netns {
    /// Runs `f` on a thread that has entered the namespace, and returns its result. Sockets
    /// created there stay in the namespace wherever they are used afterwards, so a test
    /// process can run its own node next to the real peers.
    pub fn run_inside<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R> {
        self.spawn_inside(f).join().map_err(|_| LabError::Setup {
            cmd: "setns thread".into(),
            detail: "panicked".into(),
        })?
    }

    /// Starts `f` on a thread that has entered the namespace (see [`Netns::run_inside`]) and
    /// returns its handle.
    pub fn spawn_inside<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> std::thread::JoinHandle<Result<R>> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || -> Result<R> {
            let fd = std::fs::File::open(&path)?;
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&fd),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .map_err(|e| LabError::Setup {
                cmd: format!("setns {path}"),
                detail: e.to_string(),
            })?;
            Ok(f())
        })
    }

    /// A UDP socket bound to `addr` inside the namespace.
    pub fn udp_socket(&self, addr: std::net::SocketAddr) -> Result<std::net::UdpSocket> {
        Ok(self.run_inside(move || std::net::UdpSocket::bind(addr))??)
    }

    /// A TCP listener bound to `addr` inside the namespace (it stays in it).
    pub fn tcp_listener(&self, addr: std::net::SocketAddr) -> Result<std::net::TcpListener> {
        Ok(self.run_inside(move || std::net::TcpListener::bind(addr))??)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(&["netns", "del", &self.name]);
    }
}
