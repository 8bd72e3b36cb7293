//! Helpers shared by the benchmarks.

use std::path::PathBuf;

/// Where criterion keeps its results (`target/criterion`, or under `CARGO_TARGET_DIR`);
/// side-by-side figures that are not criterion's go there too.
#[allow(dead_code)]
pub fn results_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::var_os("CARGO_TARGET_DIR")
        .map_or(root.join("target"), PathBuf::from)
        .join("criterion");
    std::fs::create_dir_all(&out).expect("results directory");
    out
}

/// The `target` directory.
#[allow(dead_code)]
pub fn target_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("CARGO_TARGET_DIR").map_or(root.join("target"), PathBuf::from)
}
