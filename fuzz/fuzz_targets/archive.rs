//! cargo-fuzz entry of `archive`: the target itself is `fuzz/targets/archive.rs`, which the
//! corpus replay test (`tests/fuzz_corpora.rs`) runs too.
#![no_main]

#[path = "../targets/mod.rs"]
#[allow(dead_code)]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::archive::run(data));
