//! cargo-fuzz entry of `swarm_history`: the target itself is `fuzz/targets/swarm_history.rs`, which the
//! corpus replay test (`tests/fuzz_corpora.rs`) runs too.
#![no_main]

#[path = "../targets/mod.rs"]
#[allow(dead_code)]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::swarm_history::run(data));
