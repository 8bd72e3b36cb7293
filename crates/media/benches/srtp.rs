//! SRTP protect and unprotect, AES_CM_128_HMAC_SHA1_80, on 128-byte and 1,200-byte RTP
//! packets: Pamoja (aws-lc-rs) side by side with libsrtp2 (Debian's libsrtp2-dev, driven
//! by `tests/libsrtp/srtp_ref.c`, which times its own loop so process start-up and pipes
//! are not counted). Both sides number their packets upwards on one stream, as a call
//! does; for unprotect the packets are protected first, untimed.
//!
//! `cargo bench -p pamoja-media --bench srtp`, then `python3 scripts/bench-report.py`.

#[path = "../tests/libsrtp/mod.rs"]
mod libsrtp;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use libsrtp::LibSrtp;
use pamoja_media::{MasterKey, RtpPacket, Srtp, Suite};

const BATCH: u64 = 4096;

/// One stream: a sender, a receiver and the next sequence number.
struct Stream {
    tx: Srtp,
    rx: Srtp,
    seq: u16,
    size: usize,
}

impl Stream {
    fn new(size: usize) -> Self {
        let key = MasterKey::random();
        Self {
            tx: Srtp::new(Suite::AesCm128HmacSha1_80, &key),
            rx: Srtp::new(Suite::AesCm128HmacSha1_80, &key),
            seq: 0,
            size,
        }
    }

    fn packets(&mut self, n: u64) -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| {
                self.seq = self.seq.wrapping_add(1);
                RtpPacket::write(
                    false,
                    111,
                    self.seq,
                    0,
                    0x1122_3344,
                    &vec![0xab; self.size - 12],
                )
            })
            .collect()
    }

    fn protect(&mut self, n: u64) -> Duration {
        let mut spent = Duration::ZERO;
        let mut left = n;
        while left > 0 {
            let mut batch = self.packets(left.min(BATCH));
            left -= batch.len() as u64;
            let t = Instant::now();
            for p in &mut batch {
                self.tx.protect(p).expect("protect");
            }
            spent += t.elapsed();
        }
        spent
    }

    fn unprotect(&mut self, n: u64) -> Duration {
        let mut spent = Duration::ZERO;
        let mut left = n;
        while left > 0 {
            let mut batch = self.packets(left.min(BATCH));
            left -= batch.len() as u64;
            for p in &mut batch {
                self.tx.protect(p).expect("protect");
            }
            let t = Instant::now();
            for p in &mut batch {
                self.rx.unprotect(p).expect("unprotect");
            }
            spent += t.elapsed();
        }
        spent
    }
}

fn srtp(c: &mut Criterion) {
    let lib = LibSrtp::start("the libsrtp2 side of the SRTP benchmark").map(RefCell::new);
    for size in [128usize, 1200] {
        for op in ["protect", "unprotect"] {
            let mut g = c.benchmark_group(format!("srtp_{op}_{size}"));
            let mut s = Stream::new(size);
            g.bench_function("pamoja", |b| {
                b.iter_custom(|n| match op {
                    "protect" => s.protect(n),
                    _ => s.unprotect(n),
                })
            });
            if let Some(l) = &lib {
                g.bench_function("libsrtp2", |b| {
                    b.iter_custom(|n| {
                        let ns = l.borrow_mut().cmd(&format!("bench {op} 80 {size} {n}"));
                        Duration::from_nanos(ns.parse().expect("nanoseconds"))
                    })
                });
            }
            g.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = srtp
}
criterion_main!(benches);
