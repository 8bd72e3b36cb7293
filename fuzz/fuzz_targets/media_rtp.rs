//! cargo-fuzz entry of `media_rtp`: the target itself is `fuzz/targets/media_rtp.rs`, which the
//! corpus replay test (`tests/fuzz_corpora.rs`) runs too.
#![no_main]

#[path = "../targets/mod.rs"]
#[allow(dead_code)]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::media_rtp::run(data));
