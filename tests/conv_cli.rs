//! The `jami conv` command line contract: a conversation created, posted to, listed and
//! verified from the shell; a commit slipped in with plain git is found and named.

use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::jami_bin;

fn jami(args: &[&str]) -> Output {
    Command::new(jami_bin())
        .args(args)
        .env("PAMOJA_PASSWORD", "")
        .output()
        .expect("run jami")
}

fn lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "jami failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect()
}

#[test]
fn new_post_log_verify() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("me.gz");
    let conv = dir.path().join("conv");
    let (a, c) = (archive.to_str().unwrap(), conv.to_str().unwrap());
    let me = lines(&jami(&["account", "new", "--archive", a]));
    let jami_id = me[0]["jami_id"].as_str().unwrap().to_owned();

    let created = lines(&jami(&["conv", "new", "--archive", a, "--dir", c]));
    let id = created[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 40);
    assert_eq!(created[0]["mode"], 2);
    let first = lines(&jami(&["conv", "post", c, "première", "--archive", a]));
    lines(&jami(&["conv", "post", c, "second", "--archive", a]));

    let log = lines(&jami(&["conv", "log", c]));
    assert_eq!(log.len(), 3);
    assert_eq!(log[0]["body"], "second");
    assert_eq!(log[1]["body"], "première");
    assert_eq!(log[1]["id"], first[0]["id"]);
    assert_eq!(log[2]["type"], "initial");
    assert_eq!(log[2]["id"], id.as_str());
    for m in &log {
        assert_eq!(m["author"], jami_id.as_str());
        assert_eq!(m["device"].as_str().unwrap().len(), 64);
        assert!(m["timestamp"].as_i64().unwrap() > 1_700_000_000);
        for k in ["id", "author", "device", "type", "body", "timestamp"] {
            assert!(m.get(k).is_some(), "{k} missing in {m}");
        }
    }
    let last = lines(&jami(&["conv", "log", c, "--last", "1"]));
    assert_eq!(last.len(), 1);
    assert_eq!(last[0]["body"], "second");

    let ok = lines(&jami(&["conv", "verify", c]));
    assert_eq!(ok[0], serde_json::json!({"valid": true, "commits": 3}));

    // A commit made with plain git: unsigned, by no device of the conversation.
    let git = Command::new("git")
        .args(["-C", c, "-c", "user.name=x", "-c", "user.email=nobody"])
        .args([
            "commit",
            "--allow-empty",
            "-q",
            "-m",
            r#"{"body":"sneaky","type":"text/plain"}"#,
        ])
        .status()
        .expect("git");
    assert!(git.success());
    let out = jami(&["conv", "verify", c]);
    assert!(!out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["commit"].as_str().unwrap().len(), 40);
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("no device certificate"),
        "{v}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("jami: error: invalid commit"), "{err}");

    // Errors: a directory that is not empty, a bad mode.
    assert!(
        !jami(&["conv", "new", "--archive", a, "--dir", c])
            .status
            .success()
    );
    assert!(
        !jami(&[
            "conv",
            "new",
            "--archive",
            a,
            "--dir",
            "/nonexistent/x",
            "--mode",
            "9"
        ])
        .status
        .success()
    );
}
