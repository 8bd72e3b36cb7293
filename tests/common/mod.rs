//! Helpers shared by the integration tests.

use std::path::PathBuf;
use std::process::Command;

/// The `jami` example binary; `PAMOJA_JAMI_BIN` names another build of it (to measure an
/// earlier version side by side, e.g. in `benches/client_lab.rs`).
#[allow(dead_code)]
pub fn jami_bin() -> PathBuf {
    match std::env::var_os("PAMOJA_JAMI_BIN") {
        Some(p) => PathBuf::from(p),
        None => example_bin("jami"),
    }
}

/// An example binary, built (or brought up to date) once per test run with the same profile.
pub fn example_bin(name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = built.iter().find(|(n, _)| n == name) {
        return p.clone();
    }
    let path = {
        let mut dir = std::env::current_exe().expect("test executable path");
        dir.pop();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "--example", name]);
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        assert!(cmd.status().expect("cargo build").success());
        dir.join("examples").join(name)
    };
    built.push((name.to_owned(), path.clone()));
    path
}

/// One of our DHT nodes inside `lab`'s namespace, bootstrapped from the lab's dhtnode on
/// 127.0.0.1:4222 and connected to it.
#[allow(dead_code)]
pub async fn lab_node(lab: &pamoja_lab::Lab) -> pamoja::dht::Runner {
    use std::time::{Duration, Instant};
    let socket = lab
        .netns()
        .udp_socket("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let runner = pamoja::dht::Runner::from_std(socket, pamoja::dht::Config::default()).unwrap();
    runner.bootstrap("127.0.0.1:4222".parse().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while runner.stats().await.unwrap().good4 == 0 {
        assert!(
            Instant::now() < deadline,
            "never connected to the lab's dhtnode"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    runner
}

/// `jami account new` into `dir`, returning the archive path and its Jami ID.
#[allow(dead_code)]
pub fn new_archive(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, String) {
    let path = dir.join(name);
    let out = std::process::Command::new(jami_bin())
        .args(["account", "new", "--archive"])
        .arg(&path)
        .env("PAMOJA_PASSWORD", "")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (path, v["jami_id"].as_str().unwrap().to_owned())
}
