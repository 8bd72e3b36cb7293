//! The `nameserver` example and the `jami name` commands, on loopback: JSON on stdout with
//! jamid's status numbers, exit 0 only for success, the SQLite file created on first run and
//! kept across restarts.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{example_bin, jami_bin};

/// The `nameserver` example on a free loopback port; stopped by its PID on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(db: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(example_bin("nameserver"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--db", &format!("sqlite:{}", db.display())])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nameserver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("/usr/bin/kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn jami(args: &[&str]) -> Output {
    Command::new(jami_bin())
        .args(args)
        .env_remove("PAMOJA_PASSWORD")
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "one JSON line: {text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn register_and_look_up_names() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("alice.gz");
    let a = archive.to_str().unwrap();
    let made = jami(&["account", "new", "--archive", a]);
    assert!(made.status.success());
    let id = json(&made)["jami_id"].as_str().unwrap().to_owned();

    let db = dir.path().join("names.db");
    assert!(!db.exists());
    {
        let server = Server::start(&db);
        assert!(db.exists(), "the SQLite file is created on first run");
        let url = server.url.as_str();
        let out = jami(&[
            "name",
            "register",
            "Alice_W",
            "--archive",
            a,
            "--server",
            url,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = json(&out);
        assert_eq!(v["status"], 0);
        assert_eq!(v["state"], "registered");
        assert_eq!(v["address"], id.as_str());

        let v = json(&jami(&["name", "lookup", "alice_w", "--server", url]));
        assert_eq!(
            (v["status"].as_u64(), v["address"].as_str()),
            (Some(0), Some(id.as_str()))
        );
        let v = json(&jami(&["name", "address", &id, "--server", url]));
        assert_eq!(
            (v["status"].as_u64(), v["name"].as_str()),
            (Some(0), Some("alice_w"))
        );

        // Not found: status 2, non-zero exit, the JSON still on stdout and one line on stderr.
        let out = jami(&["name", "lookup", "nobody-here", "--server", url]);
        assert!(!out.status.success());
        assert_eq!(json(&out)["status"], 2);
        assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
        // Invalid name: registration status 2, nothing sent.
        let out = jami(&["name", "register", "ab", "--archive", a, "--server", url]);
        assert!(!out.status.success());
        assert_eq!(json(&out)["state"], "invalid_name");
        // Unreachable server: status 3 for a lookup.
        let out = jami(&[
            "name",
            "lookup",
            "alice_w",
            "--server",
            "http://127.0.0.1:9",
        ]);
        assert_eq!(json(&out)["status"], 3);
    }
    // A restarted server on the same file still knows the name.
    let server = Server::start(&db);
    let v = json(&jami(&[
        "name",
        "lookup",
        "alice_w",
        "--server",
        &server.url,
    ]));
    assert_eq!(v["address"], id.as_str());
    // name@host syntax: the server comes from the query.
    let host = server.url.trim_start_matches("http://");
    let v = json(&jami(&[
        "name",
        "lookup",
        &format!("alice_w@{host}"),
        "--server",
        "http://127.0.0.1:9",
    ]));
    assert_eq!(v["status"], 0);
}
