//! Every fuzz target's checked-in corpus (`fuzz/corpus/<target>/`), replayed as an ordinary
//! test: no libFuzzer, the same target code (`fuzz/targets/`). A target without a corpus, or
//! a corpus without its target, fails the test.
//!
//! `PAMOJA_WRITE_SEEDS=1 cargo test --test fuzz_corpora` first writes the seeds this file
//! builds (real certificates, messages and frames) into the corpora, beside what fuzzing
//! found; `scripts/fuzz` runs the targets themselves.

#[path = "../fuzz/targets/mod.rs"]
mod targets;

#[path = "../fuzz/seeds.rs"]
mod seeds;

use std::path::Path;

#[test]
fn every_corpus_replays_without_a_finding() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    if std::env::var_os("PAMOJA_WRITE_SEEDS").is_some() {
        seeds::write(&root);
    }
    let mut total = 0;
    for (name, run) in targets::ALL {
        let dir = root.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{name}: no corpus at {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{name}: empty corpus");
        for input in &inputs {
            let data = std::fs::read(input).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{name}: finding on {}", input.display());
        }
        eprintln!("{name}: {} inputs", inputs.len());
        total += inputs.len();
    }
    for e in std::fs::read_dir(&root).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            targets::ALL.iter().any(|(t, _)| *t == n),
            "corpus {n} has no target"
        );
    }
    eprintln!("{total} inputs replayed");
}
