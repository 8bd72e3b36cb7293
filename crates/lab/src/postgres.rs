//! A private PostgreSQL server for tests and benchmarks: a fresh cluster in a temporary
//! directory, listening only on a Unix socket there (no TCP at all), run as the `postgres`
//! user through `setpriv`, and stopped by its PID when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running private PostgreSQL server.
pub struct Postgres {
    child: Child,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

const SETPRIV: &str = "/usr/bin/setpriv";

impl Postgres {
    /// The newest installed server's `bin` directory (Debian: `/usr/lib/postgresql/N/bin`).
    pub fn bin_dir() -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("postgres").exists() && b.join("initdb").exists())
            .collect();
        found.sort();
        found.pop()
    }

    /// Why a private server cannot run here, if it cannot.
    pub fn missing() -> Option<String> {
        if Self::bin_dir().is_none() {
            return Some("PostgreSQL server binaries not installed (package postgresql)".into());
        }
        if !Path::new(SETPRIV).exists() {
            return Some("setpriv not installed (package util-linux)".into());
        }
        if !rustix::process::geteuid().is_root() {
            return Some("not root (the server runs as the postgres user)".into());
        }
        None
    }

    /// Starts a server, or says why it cannot: a test calls this after [`crate::available`]
    /// style checks and fails in CI, skips elsewhere.
    pub fn start() -> Result<Self, String> {
        if let Some(why) = Self::missing() {
            return Err(why);
        }
        let bin = Self::bin_dir().ok_or("no PostgreSQL")?;
        let dir = tempfile::Builder::new()
            .prefix("pamoja-pg.")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let chown = Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir.path())
            .status()
            .map_err(|e| e.to_string())?;
        if !chown.success() {
            return Err("cannot give the data directory to postgres".into());
        }
        let data = dir.path().join("data");
        let init = as_postgres(&bin, "initdb")
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data)
            .output()
            .map_err(|e| e.to_string())?;
        if !init.status.success() {
            return Err(format!("initdb: {}", String::from_utf8_lossy(&init.stderr)));
        }
        let child = as_postgres(&bin, "postgres")
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=", "-c", "max_connections=50", "-k"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let pg = Self { child, dir, bin };
        let socket = pg.dir.path().join(".s.PGSQL.5432");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if socket.exists() && pg.psql("SELECT 1").is_ok() {
                return Ok(pg);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err("postgres did not accept connections in 20 s".into())
    }

    /// The URL of the `postgres` database (for sqlx and libpq).
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@localhost/postgres?host={}",
            self.dir.path().display()
        )
    }

    /// Runs one SQL command with `psql`.
    pub fn psql(&self, sql: &str) -> Result<(), String> {
        let out = as_postgres(&self.bin, "psql")
            .arg("-h")
            .arg(self.dir.path())
            .args(["-U", "postgres", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The server's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

fn as_postgres(bin: &Path, program: &str) -> Command {
    let mut c = Command::new(SETPRIV);
    c.args([
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--",
    ])
    .arg(bin.join(program));
    c
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's fast shutdown; only the server started here is signalled.
        let _ = Command::new("/usr/bin/kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
