//! The C++ SecureDht peer of `tests/peers/opendht_peer.cpp` (Debian's libopendht-dev),
//! compiled once per target directory and driven line by line. Shared by the interop tests
//! and the secure DHT benchmark.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// Compiles the peer (when its source is newer than the binary) into `target_dir`; `Err`
/// with the reason when g++ or libopendht-dev is missing or the build fails.
pub fn build(target_dir: &Path) -> Result<PathBuf, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/opendht_peer.cpp");
    let bin = target_dir.join("opendht_peer");
    let fresh = match (std::fs::metadata(&src), std::fs::metadata(&bin)) {
        (Ok(s), Ok(b)) => b.modified().ok() >= s.modified().ok(),
        _ => false,
    };
    if fresh {
        return Ok(bin);
    }
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "opendht"])
        .output()
        .map_err(|e| format!("pkg-config: {e}"))?;
    if !flags.status.success() {
        return Err("libopendht-dev is not installed (pkg-config opendht)".into());
    }
    let flags = String::from_utf8_lossy(&flags.stdout).into_owned();
    std::fs::create_dir_all(target_dir).map_err(|e| e.to_string())?;
    let out = Command::new("g++")
        .args(["-std=c++17", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .args(flags.split_whitespace())
        .args(["-lgnutls", "-lpthread"])
        .output()
        .map_err(|e| format!("g++: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "g++ failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(bin)
}

/// A running peer; stopped by PID on drop.
pub struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    /// Starts `cmd` (the peer's binary with its bootstrap arguments, possibly inside a
    /// namespace).
    pub fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("opendht peer");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
        }
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.stdout.read_line(&mut l).expect("peer output");
        assert!(!l.is_empty(), "the opendht peer exited");
        l.trim_end().to_owned()
    }

    /// Sends a command and returns its one-line answer.
    pub fn ask(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.line()
    }

    /// Sends a command whose answer is lines up to `end`.
    #[allow(dead_code)]
    pub fn ask_lines(&mut self, cmd: &str) -> Vec<String> {
        writeln!(self.stdin, "{cmd}").unwrap();
        let mut out = Vec::new();
        loop {
            let l = self.line();
            if l == "end" {
                return out;
            }
            out.push(l);
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
