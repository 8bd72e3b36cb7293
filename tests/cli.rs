//! The `jami account` command line contract: JSON on stdout, one line on stderr on error,
//! input files untouched when something is wrong.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::jami_bin;

fn jami(password: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(jami_bin());
    cmd.args(args);
    match password {
        Some(p) => cmd.env("PAMOJA_PASSWORD", p),
        None => cmd.env_remove("PAMOJA_PASSWORD"),
    };
    cmd.output().expect("run jami")
}

fn ok_json(out: Output) -> Value {
    assert!(
        out.status.success(),
        "jami failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().count(),
        1,
        "one JSON object on one line: {text}"
    );
    serde_json::from_str(&text).unwrap()
}

/// Asserts a failure: non-zero status, nothing on stdout, exactly one line on stderr.
fn failed(out: Output) -> String {
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    assert!(err.starts_with("jami: error: "), "{err}");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn is_hex(v: &Value, len: usize) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

#[test]
fn new_show_add_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.gz");
    let b = dir.path().join("b.gz");
    let created = ok_json(jami(None, &["account", "new", "--archive", s(&a)]));
    assert!(is_hex(&created["jami_id"], 40));
    assert!(is_hex(&created["device_id"], 64));
    assert_eq!(created["archive"], s(&a));
    // Creating over an existing file is refused and leaves it alone.
    let before = std::fs::read(&a).unwrap();
    failed(jami(None, &["account", "new", "--archive", s(&a)]));
    assert_eq!(std::fs::read(&a).unwrap(), before);

    let shown = ok_json(jami(None, &["account", "show", "--archive", s(&a)]));
    assert_eq!(shown["jami_id"], created["jami_id"]);
    assert_eq!(shown["device_id"], created["device_id"]);
    assert_eq!(shown["devices"], serde_json::json!([created["device_id"]]));
    assert_eq!(shown["revoked"], serde_json::json!([]));

    let added = ok_json(jami(
        None,
        &["account", "add-device", "--archive", s(&a), "--out", s(&b)],
    ));
    assert_eq!(added["jami_id"], created["jami_id"]);
    assert_ne!(added["device_id"], created["device_id"]);
    let shown_b = ok_json(jami(None, &["account", "show", "--archive", s(&b)]));
    assert_eq!(shown_b["jami_id"], created["jami_id"]);
    assert_eq!(shown_b["device_id"], added["device_id"]);
    let shown = ok_json(jami(None, &["account", "show", "--archive", s(&a)]));
    assert_eq!(shown["devices"].as_array().unwrap().len(), 2);

    let dev = added["device_id"].as_str().unwrap();
    ok_json(jami(
        None,
        &[
            "account",
            "revoke-device",
            "--archive",
            s(&a),
            "--device",
            dev,
        ],
    ));
    let shown = ok_json(jami(None, &["account", "show", "--archive", s(&a)]));
    assert_eq!(shown["revoked"], serde_json::json!([dev]));
    assert_eq!(shown["devices"], serde_json::json!([created["device_id"]]));
    assert_eq!(shown["revoked_serials"].as_array().unwrap().len(), 1);

    // An unknown device cannot be revoked; the archive is untouched.
    let before = std::fs::read(&a).unwrap();
    let err = failed(jami(
        None,
        &[
            "account",
            "revoke-device",
            "--archive",
            s(&a),
            "--device",
            &"ab".repeat(32),
        ],
    ));
    assert!(err.contains("unknown device"), "{err}");
    failed(jami(
        None,
        &[
            "account",
            "revoke-device",
            "--archive",
            s(&a),
            "--device",
            "xyz",
        ],
    ));
    assert_eq!(std::fs::read(&a).unwrap(), before);
}

#[test]
fn password_from_environment_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.gz");
    let created = ok_json(jami(
        Some("s3cret"),
        &["account", "new", "--archive", s(&a)],
    ));
    let original = std::fs::read(&a).unwrap();
    assert_ne!(
        &original[..3],
        &[0x1f, 0x8b, 0x08],
        "an encrypted archive is not gzip"
    );

    let shown = ok_json(jami(
        Some("s3cret"),
        &["account", "show", "--archive", s(&a)],
    ));
    assert_eq!(shown["jami_id"], created["jami_id"]);

    let err = failed(jami(
        Some("wrong"),
        &["account", "show", "--archive", s(&a)],
    ));
    assert!(err.contains("wrong password"), "{err}");
    let err = failed(jami(None, &["account", "show", "--archive", s(&a)]));
    assert!(err.contains("password"), "{err}");
    let err = failed(jami(Some(""), &["account", "show", "--archive", s(&a)]));
    assert!(err.contains("password"), "{err}");
    failed(jami(
        Some("wrong"),
        &[
            "account",
            "add-device",
            "--archive",
            s(&a),
            "--out",
            s(&dir.path().join("x.gz")),
        ],
    ));
    failed(jami(
        Some("wrong"),
        &[
            "account",
            "revoke-device",
            "--archive",
            s(&a),
            "--device",
            &"ab".repeat(32),
        ],
    ));
    assert!(!dir.path().join("x.gz").exists());

    // Truncated and corrupted copies.
    let t = dir.path().join("truncated.gz");
    std::fs::write(&t, &original[..original.len() / 2]).unwrap();
    failed(jami(
        Some("s3cret"),
        &["account", "show", "--archive", s(&t)],
    ));
    let c = dir.path().join("corrupt.gz");
    let mut bytes = original.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&c, &bytes).unwrap();
    failed(jami(
        Some("s3cret"),
        &["account", "show", "--archive", s(&c)],
    ));
    failed(jami(
        Some("s3cret"),
        &[
            "account",
            "add-device",
            "--archive",
            s(&c),
            "--out",
            s(&dir.path().join("y.gz")),
        ],
    ));
    assert_eq!(std::fs::read(&c).unwrap(), bytes);

    // Not an archive at all, and a missing file.
    let n = dir.path().join("notes.txt");
    std::fs::write(&n, "hello, this is not an archive\n").unwrap();
    let err = failed(jami(None, &["account", "show", "--archive", s(&n)]));
    assert!(err.contains("not a Jami account archive"), "{err}");
    let gz = dir.path().join("other.gz");
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"[1,2,3]").unwrap();
        std::fs::write(&gz, e.finish().unwrap()).unwrap();
    }
    failed(jami(None, &["account", "show", "--archive", s(&gz)]));
    let err = failed(jami(
        None,
        &[
            "account",
            "show",
            "--archive",
            s(&dir.path().join("missing.gz")),
        ],
    ));
    assert!(err.contains("No such file"), "{err}");

    // Unwritable output: the account archive is not modified.
    let err = failed(jami(
        Some("s3cret"),
        &[
            "account",
            "add-device",
            "--archive",
            s(&a),
            "--out",
            "/nonexistent-dir/new.gz",
        ],
    ));
    assert!(err.contains("/nonexistent-dir/new.gz"), "{err}");
    assert_eq!(std::fs::read(&a).unwrap(), original);
}
