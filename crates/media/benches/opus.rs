//! Opus encoding of 10 s of audio (a 440 Hz tone, mono, 48 kHz, 20 ms frames, 48 kb/s):
//! Pamoja's encoder (libopus through the `opus` crate, VoIP tuning, in-band FEC) side by
//! side with libopus's own command-line tool, `opusenc` (opus-tools), on the same samples
//! as a WAV file (`--bitrate 48 --framesize 20 --speech`; its time includes its process
//! start and the Ogg file it writes). The real-time factor is 10 s over the median.
//!
//! `cargo bench -p pamoja-media --bench opus`, then `python3 scripts/bench-report.py`.

use std::process::Command;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use pamoja_media::audio::{OpusEncoder, Tone, write_wav};

const SECONDS: usize = 10;

fn bench(c: &mut Criterion) {
    let mut tone = Tone::new(440.0, 0.3);
    let frames: Vec<Vec<i16>> = (0..SECONDS * 50).map(|_| tone.frame()).collect();
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("tone.wav");
    let out = dir.path().join("tone.opus");
    write_wav(&wav, &frames.concat()).unwrap();
    let opusenc = Command::new("opusenc").arg("--version").output().is_ok();

    let mut g = c.benchmark_group("opus_encode_10s");
    g.sample_size(20).measurement_time(Duration::from_secs(20));
    g.bench_function("pamoja", |b| {
        b.iter(|| {
            let mut enc = OpusEncoder::new().unwrap();
            let mut bytes = 0;
            for f in &frames {
                bytes += enc.encode(f).unwrap().len();
            }
            bytes
        })
    });
    if opusenc {
        g.bench_function("opusenc", |b| {
            b.iter(|| {
                let s = Command::new("opusenc")
                    .args([
                        "--quiet",
                        "--bitrate",
                        "48",
                        "--framesize",
                        "20",
                        "--speech",
                    ])
                    .arg(&wav)
                    .arg(&out)
                    .status()
                    .unwrap();
                assert!(s.success());
            })
        });
    } else {
        eprintln!("opusenc is not installed (Debian: opus-tools): no reference measured");
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
