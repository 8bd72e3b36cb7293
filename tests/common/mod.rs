//! Helpers shared by the integration tests.

use std::path::PathBuf;
use std::process::Command;

/// The example binary, built (or brought up to date) once per test run with the same profile.
pub fn jami_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let mut dir = std::env::current_exe().expect("test executable path");
        dir.pop();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "--example", "jami"]);
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        assert!(cmd.status().expect("cargo build").success());
        dir.join("examples").join("jami")
    })
    .clone()
}
