//! cargo-fuzz entry of `ice_agent`: the target itself is `fuzz/targets/ice_agent.rs`, which the
//! corpus replay test (`tests/fuzz_corpora.rs`) runs too.
#![no_main]

#[path = "../targets/mod.rs"]
#[allow(dead_code)]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::ice_agent::run(data));
