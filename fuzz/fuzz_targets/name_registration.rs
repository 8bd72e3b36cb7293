//! cargo-fuzz entry of `name_registration`: the target itself is `fuzz/targets/name_registration.rs`, which the
//! corpus replay test (`tests/fuzz_corpora.rs`) runs too.
#![no_main]

#[path = "../targets/mod.rs"]
#[allow(dead_code)]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::name_registration::run(data));
