//! cargo-fuzz entry of `media_decode`: the target itself is `fuzz/targets/media_decode.rs`, which the
//! corpus replay test (`tests/fuzz_corpora.rs`) runs too.
#![no_main]

#[path = "../targets/mod.rs"]
#[allow(dead_code)]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::media_decode::run(data));
