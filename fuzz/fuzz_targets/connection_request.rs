//! cargo-fuzz entry of `connection_request`: the target itself is `fuzz/targets/connection_request.rs`, which the
//! corpus replay test (`tests/fuzz_corpora.rs`) runs too.
#![no_main]

#[path = "../targets/mod.rs"]
#[allow(dead_code)]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::connection_request::run(data));
