//! # pamoja-lab: real Jami peers for interop tests
//!
//! Pamoja's interop tests run the real programs: Debian's `jamid`, `dhtnode` and friends. This
//! crate sets them up the one way Debian's jamid (20230206) works on a recent kernel: inside a
//! private network namespace with loopback up, a veth pair carrying `10.200.0.1/24` (pjnath
//! gathers no ICE candidate on loopback alone) and IPv6 off (jamid blocks in a netlink IPv6
//! dump otherwise). Each jamid gets its own HOME, XDG directories and private D-Bus session;
//! the test drives it over D-Bus ([`Jamid`]) and records its signals.
//!
//! Nothing leaves the namespace: every address the peers can reach is in it. Every process
//! is started by the [`Lab`] and stopped by PID when the lab is dropped (SIGTERM, then SIGKILL
//! after a grace period), and the namespace is deleted.
//!
//! Tests call [`available`] first: where root, `ip`, `jamid` or `dhtnode` is missing, a test
//! is skipped with a message on a developer's machine, and fails when `CI` is set.

#![warn(missing_docs)]

mod coturn;
mod jamid;
mod nat;
mod netns;
mod postgres;
mod process;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use coturn::{Coturn, TURN_USER, TURNSERVER, coturn_available};
pub use jamid::{Arg, Jamid, Signal, lab_account_details};
pub use nat::{Nat, NatLab, Peer, WAN_SERVER, nat_lab_missing};
pub use netns::Netns;
pub use postgres::Postgres;
pub use process::Supervised;

/// Path of Debian's Jami daemon.
pub const JAMID: &str = "/usr/libexec/jamid";
/// Path of OpenDHT's node.
pub const DHTNODE: &str = "/usr/bin/dhtnode";
/// Path of PulseAudio's server (a jamid's sound card in the lab).
pub const PULSEAUDIO: &str = "/usr/bin/pulseaudio";
/// Path of PulseAudio's recorder.
pub const PAREC: &str = "/usr/bin/parec";
/// The lab's address on its veth link.
pub const LAB_ADDR: &str = "10.200.0.1";

/// What can go wrong while setting up or driving the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A command used to set up the lab failed.
    #[error("{cmd}: {detail}")]
    Setup {
        /// The command.
        cmd: String,
        /// What it printed or why it failed.
        detail: String,
    },
    /// A D-Bus call failed.
    #[error("D-Bus: {0}")]
    Dbus(#[from] zbus::Error),
    /// Something did not happen in time.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    /// The peer reported a failure.
    #[error("{0}")]
    Peer(String),
    /// I/O error.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias of this crate.
pub type Result<T, E = LabError> = std::result::Result<T, E>;

/// True when running as root (namespaces need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Why the lab cannot run here, if it cannot.
pub fn missing_prerequisites() -> Option<String> {
    if !is_root() {
        return Some("network namespaces need root".into());
    }
    for bin in [
        JAMID,
        DHTNODE,
        PULSEAUDIO,
        PAREC,
        "/usr/bin/dbus-daemon",
        "/usr/bin/kill",
    ] {
        if !Path::new(bin).exists() {
            return Some(format!("{bin} is not installed"));
        }
    }
    let opendht_py = std::fs::read_dir("/usr/lib/python3/dist-packages")
        .map(|d| {
            d.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("opendht.cpython")
            })
        })
        .unwrap_or(false);
    if !opendht_py {
        return Some("python3-opendht is not installed".into());
    }
    if !Path::new("/usr/sbin/ip").exists() && !Path::new("/usr/bin/ip").exists() {
        return Some("ip (iproute2) is not installed".into());
    }
    None
}

/// True when interop tests can run. When they cannot: panics if the `CI` environment
/// variable is set (a missing peer is a failure there), otherwise prints why the test is
/// skipped and returns false.
pub fn available(test: &str) -> bool {
    match missing_prerequisites() {
        None => true,
        Some(why) if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) => {
            panic!("{test}: interop prerequisites missing in CI: {why}")
        }
        Some(why) => {
            eprintln!("SKIPPED {test}: {why} (install them with scripts/install-deps)");
            false
        }
    }
}

/// A running lab: a network namespace, a scratch directory and the processes started in it.
pub struct Lab {
    // Field order is drop order: processes stop before the namespace goes.
    procs: Vec<Supervised>,
    netns: Netns,
    dir: tempfile::TempDir,
    /// The PulseAudio socket of each jamid that has a sound card.
    pulse: std::collections::HashMap<String, PathBuf>,
}

impl Lab {
    /// Creates the namespace (loopback, veth with [`LAB_ADDR`], IPv6 off) and a scratch dir.
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("pamoja-lab.").tempdir()?;
        let netns = Netns::create()?;
        Ok(Self {
            procs: Vec::new(),
            netns,
            dir,
            pulse: std::collections::HashMap::new(),
        })
    }

    /// The scratch directory (logs, homes, exports).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The namespace.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// Starts a process inside the namespace, its output going to `<dir>/<name>.log`. It is
    /// stopped when the lab is dropped.
    pub fn spawn(
        &mut self,
        name: &str,
        program: &str,
        args: &[&str],
        env: &[(&str, &Path)],
    ) -> Result<u32> {
        let log = self.dir().join(format!("{name}.log"));
        let mut cmd = self.netns.command(program);
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let p = Supervised::spawn(name, cmd, &log)?;
        let pid = p.pid();
        self.procs.push(p);
        Ok(pid)
    }

    /// Starts `dhtnode -s -p PORT` and waits until its UDP socket is bound.
    pub async fn start_dhtnode(&mut self, port: u16) -> Result<u32> {
        self.start_udp_service(&format!("dhtnode-{port}"), DHTNODE, &["-s"], port)
            .await
    }

    /// Starts `program ARGS -p PORT` (a `dhtnode`-like program) and waits until it has bound
    /// UDP port `port`.
    pub async fn start_udp_service(
        &mut self,
        name: &str,
        program: &str,
        args: &[&str],
        port: u16,
    ) -> Result<u32> {
        let port_arg = port.to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-p", &port_arg]);
        let pid = self.spawn(name, program, &all, &[])?;
        let needle = format!(":{port:04X} ");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let bound = std::fs::read_to_string(format!("/proc/{pid}/net/udp"))
                .map(|t| t.contains(&needle))
                .unwrap_or(false);
            if bound {
                return Ok(pid);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(LabError::Timeout(
                    Duration::from_secs(10),
                    format!("{name} on port {port}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts a jamid named `name` with its own HOME and D-Bus session, and connects to it.
    pub async fn start_jamid(&mut self, name: &str) -> Result<Jamid> {
        let home = self.dir().join(format!("jami-{name}"));
        for sub in [".config", ".local/share", ".cache"] {
            std::fs::create_dir_all(home.join(sub))?;
        }
        let bus_path = self.dir().join(format!("bus-{name}"));
        let address = format!("unix:path={}", bus_path.display());
        self.spawn(
            &format!("dbus-{name}"),
            "/usr/bin/dbus-daemon",
            &[
                "--session",
                "--nofork",
                "--nopidfile",
                &format!("--address={address}"),
            ],
            &[],
        )?;
        wait_for_path(&bus_path, Duration::from_secs(10)).await?;
        self.spawn_jamid(name).await
    }

    /// Stops a jamid (by its PID; its D-Bus session stays) so that
    /// [`Lab::restart_jamid`] can start it again on the same data.
    pub fn stop_jamid(&mut self, jamid: &Jamid) {
        let pid = jamid.pid();
        if let Some(p) = self.procs.iter_mut().find(|p| p.pid() == pid) {
            p.stop();
        }
    }

    /// Starts jamid `name` again, with the data and D-Bus session of its first start.
    pub async fn restart_jamid(&mut self, name: &str) -> Result<Jamid> {
        self.spawn_jamid(name).await
    }

    async fn spawn_jamid(&mut self, name: &str) -> Result<Jamid> {
        let home = self.dir().join(format!("jami-{name}"));
        let bus_path = self.dir().join(format!("bus-{name}"));
        let address = format!("unix:path={}", bus_path.display());
        let mut env: Vec<(&str, PathBuf)> = vec![
            ("HOME", home.clone()),
            ("XDG_CONFIG_HOME", home.join(".config")),
            ("XDG_DATA_HOME", home.join(".local/share")),
            ("XDG_CACHE_HOME", home.join(".cache")),
            ("DBUS_SESSION_BUS_ADDRESS", PathBuf::from(&address)),
        ];
        if let Some(socket) = self.pulse.get(name) {
            env.push((
                "PULSE_SERVER",
                PathBuf::from(format!("unix:{}", socket.display())),
            ));
        }
        let env_ref: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
        let pid = self.spawn(
            &format!("jamid-{name}"),
            JAMID,
            &["-c", "-d", "-p"],
            &env_ref,
        )?;
        Jamid::connect(name, &address, home, pid).await
    }

    /// Gives jamid `name` (started after this) a sound card of its own: a PulseAudio
    /// server on a socket in the lab's folder whose microphone is a sine source of
    /// `tone_hz` and whose speaker is a null sink (`speaker`), recordable with
    /// [`Lab::record_speaker`].
    pub async fn start_pulseaudio(&mut self, name: &str, tone_hz: u32) -> Result<PathBuf> {
        let dir = self.dir().join(format!("pulse-{name}"));
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("native");
        let script = dir.join("lab.pa");
        std::fs::write(
            &script,
            format!(
                "load-module module-native-protocol-unix socket={} auth-anonymous=1\n\
                 load-module module-null-sink sink_name=speaker rate=48000\n\
                 load-module module-null-sink sink_name=mic rate=48000\n\
                 load-module module-sine sink=mic frequency={tone_hz}\n\
                 set-default-sink speaker\n\
                 set-default-source mic.monitor\n",
                socket.display()
            ),
        )?;
        let script_arg = format!("--file={}", script.display());
        let env = [
            ("HOME", dir.as_path()),
            ("XDG_RUNTIME_DIR", dir.as_path()),
            ("PULSE_RUNTIME_PATH", dir.as_path()),
            ("PULSE_STATE_PATH", dir.as_path()),
        ];
        self.spawn(
            &format!("pulseaudio-{name}"),
            PULSEAUDIO,
            &[
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--use-pid-file=no",
                "--log-target=stderr",
                &script_arg,
            ],
            &env,
        )?;
        wait_for_path(&socket, Duration::from_secs(10)).await?;
        self.pulse.insert(name.to_owned(), socket.clone());
        Ok(socket)
    }

    /// Records `duration` of what jamid `name` plays on its speaker (mono 48 kHz samples).
    pub async fn record_speaker(&mut self, name: &str, duration: Duration) -> Result<Vec<i16>> {
        let socket = self
            .pulse
            .get(name)
            .cloned()
            .ok_or_else(|| LabError::Setup {
                cmd: "parec".into(),
                detail: format!("jamid {name} has no sound card"),
            })?;
        let out = self.dir().join(format!("speaker-{name}.raw"));
        let file = std::fs::File::create(&out)?;
        let mut child = std::process::Command::new(PAREC)
            .args([
                "--device=speaker.monitor",
                "--format=s16le",
                "--rate=48000",
                "--channels=1",
                "--raw",
            ])
            .env("PULSE_SERVER", format!("unix:{}", socket.display()))
            .stdout(file)
            .stderr(std::process::Stdio::null())
            .spawn()?;
        tokio::time::sleep(duration).await;
        // Our own child, ended by its handle.
        let _ = child.kill();
        let _ = child.wait();
        let bytes = std::fs::read(&out)?;
        Ok(bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect())
    }

    /// The last `lines` lines of a process log, for failure messages.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let text =
            std::fs::read_to_string(self.dir().join(format!("{name}.log"))).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Last started, first stopped: each jamid before its bus, the bootstrap node last.
        while let Some(mut p) = self.procs.pop() {
            p.stop();
        }
        // PAMOJA_LAB_KEEP=1 leaves the scratch directory (logs) behind for a post-mortem.
        if std::env::var_os("PAMOJA_LAB_KEEP").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("lab: kept {}", self.dir.path().display());
        }
    }
}

async fn wait_for_path(path: &Path, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    while !path.exists() {
        if tokio::time::Instant::now() > deadline {
            return Err(LabError::Timeout(timeout, path.display().to_string()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
