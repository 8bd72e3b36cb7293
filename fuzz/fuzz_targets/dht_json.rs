//! cargo-fuzz entry of `dht_json`: the target itself is `fuzz/targets/dht_json.rs`, which the
//! corpus replay test (`tests/fuzz_corpora.rs`) runs too.
#![no_main]

#[path = "../targets/mod.rs"]
#[allow(dead_code)]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::dht_json::run(data));
