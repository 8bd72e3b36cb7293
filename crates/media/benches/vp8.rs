//! VP8 encoding of 720p video (1280x720, 30 frames a second, 2 Mb/s, 60 pictures = 2 s of
//! video of [`busy_pattern`], which costs the encoder its whole budget): Pamoja's encoder
//! (libvpx through `env-libvpx-sys`: real-time deadline at jamid's `cpu-used` 7, CBR, no
//! lag, error resilient, two threads) side by side with libvpx's own command-line encoder `vpxenc` with the same
//! settings on the same pictures as a raw I420 file (its time includes its process start
//! and the WebM file it writes). The real-time factor is 2 s over the median.
//!
//! `cargo bench -p pamoja-media --bench vp8`, then `python3 scripts/bench-report.py`.

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use pamoja_media::video::{Vp8Encoder, busy_pattern};

const W: u32 = 1280;
const H: u32 = 720;
const FRAMES: u32 = 60;

fn bench(c: &mut Criterion) {
    let pictures: Vec<_> = (0..FRAMES).map(|n| busy_pattern(W, H, n)).collect();
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("in.yuv");
    let out = dir.path().join("out.webm");
    let mut f = std::fs::File::create(&raw).unwrap();
    for p in &pictures {
        f.write_all(&p.data).unwrap();
    }
    drop(f);
    let vpxenc = Command::new("vpxenc").arg("--help").output().is_ok();

    let mut g = c.benchmark_group("vp8_encode_720p_2s");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.bench_function("pamoja", |b| {
        b.iter(|| {
            let mut enc = Vp8Encoder::new(W, H, 2_000_000, 30).unwrap();
            let mut bytes = 0;
            for (i, p) in pictures.iter().enumerate() {
                for f in enc.encode(p, i == 0).unwrap() {
                    bytes += f.data.len();
                }
            }
            bytes
        })
    });
    if vpxenc {
        g.bench_function("vpxenc", |b| {
            b.iter(|| {
                let s = Command::new("vpxenc")
                    .args(["--quiet", "--codec=vp8", "--rt", "--i420"])
                    .args(["--width=1280", "--height=720", "--fps=30/1"])
                    .args([
                        "--end-usage=cbr",
                        "--target-bitrate=2000",
                        "--lag-in-frames=0",
                    ])
                    .args(["--error-resilient=1", "--threads=2", "--kf-max-dist=150"])
                    .arg(format!("--cpu-used={}", pamoja_media::video::CPU_USED))
                    .arg("-o")
                    .arg(&out)
                    .arg(&raw)
                    .stderr(std::process::Stdio::null())
                    .status()
                    .unwrap();
                assert!(s.success());
            })
        });
    } else {
        eprintln!("vpxenc is not installed (Debian: vpx-tools): no reference measured");
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
