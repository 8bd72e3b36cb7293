//! libsrtp2 (Debian's libsrtp2-dev) as a reference process: `srtp_ref.c`, compiled with
//! gcc on first use into Cargo's per-target scratch directory.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

/// The running reference program.
pub struct LibSrtp {
    child: Child,
    out: BufReader<ChildStdout>,
}

/// Built once per process (tests run in parallel threads: a second build would rewrite the
/// binary while the first runs it), under a name of this process's own.
fn build() -> Result<PathBuf, String> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    BUILT.get_or_init(build_once).clone()
}

fn build_once() -> Result<PathBuf, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/libsrtp/srtp_ref.c");
    let bin =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("srtp_ref-{}", std::process::id()));
    let out = Command::new("gcc")
        .args(["-O2", "-Wall", "-o"])
        .arg(&bin)
        .arg(&src)
        .arg("-lsrtp2")
        .output()
        .map_err(|e| format!("gcc: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the libsrtp2 reference failed (is libsrtp2-dev installed?): {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(bin)
}

impl LibSrtp {
    /// Builds and starts the reference. Without libsrtp2: an error in CI (`CI` set), `None`
    /// with a message elsewhere.
    pub fn start(what: &str) -> Option<Self> {
        let bin = match build() {
            Ok(b) => b,
            Err(e) if std::env::var_os("CI").is_some() => panic!("{what}: {e}"),
            Err(e) => {
                eprintln!("{what} skipped (CI is unset): {e}");
                return None;
            }
        };
        let mut child = Command::new(bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start srtp_ref");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        Some(Self { child, out })
    }

    /// Sends one command line and returns the answer line.
    pub fn cmd(&mut self, line: &str) -> String {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("srtp_ref input");
        stdin.flush().expect("flush");
        let mut answer = String::new();
        self.out.read_line(&mut answer).expect("srtp_ref output");
        answer.trim().to_owned()
    }
}

impl Drop for LibSrtp {
    fn drop(&mut self) {
        // Our own child, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
