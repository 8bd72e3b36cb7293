//! cargo-fuzz entry of `dht_secure`: the target itself is `fuzz/targets/dht_secure.rs`, which the
//! corpus replay test (`tests/fuzz_corpora.rs`) runs too.
#![no_main]

#[path = "../targets/mod.rs"]
#[allow(dead_code)]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::dht_secure::run(data));
