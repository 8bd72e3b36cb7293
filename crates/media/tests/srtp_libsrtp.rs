//! SRTP against libsrtp2: what one side protects, the other unprotects, byte for byte the
//! same, for both of jamid's suites and across a sequence-number wrap.

mod libsrtp;

use libsrtp::LibSrtp;
use pamoja_media::{MasterKey, RtpPacket, Srtp, SrtpError, Suite};

const SUITES: [(Suite, u32); 2] = [
    (Suite::AesCm128HmacSha1_80, 80),
    (Suite::AesCm128HmacSha1_32, 32),
];

fn packets(ssrc: u32) -> Vec<Vec<u8>> {
    // 65530 ..= 65535, then 0 ..= 5 with the rollover counter at 1; sizes 1 to 1,200 bytes.
    (0..12u32)
        .map(|i| {
            let seq = (65530 + i) as u16;
            let payload: Vec<u8> = (0..(1 + i as usize * 109)).map(|b| b as u8).collect();
            RtpPacket::write(i % 3 == 0, 104, seq, i * 960, ssrc, &payload)
        })
        .collect()
}

#[test]
fn ours_and_libsrtp_protect_alike_and_read_each_other() {
    let Some(mut lib) = LibSrtp::start("libsrtp2 interop") else {
        return;
    };
    for (suite, bits) in SUITES {
        let key = MasterKey::random();
        assert_eq!(
            lib.cmd(&format!("key {bits} {}", hex::encode(key.to_bytes()))),
            "ok"
        );
        let (mut tx, mut rx) = (Srtp::new(suite, &key), Srtp::new(suite, &key));
        for plain in packets(0x5eed_0001) {
            // Same key, same packet, same index: the same bytes.
            let mut ours = plain.clone();
            tx.protect(&mut ours).unwrap();
            let theirs = lib.cmd(&format!("protect {}", hex::encode(&plain)));
            assert_eq!(theirs, hex::encode(&ours), "{suite:?}: protect differs");
            // libsrtp reads ours, we read libsrtp's.
            let back = lib.cmd(&format!("unprotect {}", hex::encode(&ours)));
            assert_eq!(back, hex::encode(&plain), "{suite:?}: libsrtp read ours");
            let mut theirs = hex::decode(theirs).unwrap();
            rx.unprotect(&mut theirs).unwrap();
            assert_eq!(theirs, plain);
        }
        assert_eq!(rx.stats().unprotected, 12);
    }
}

#[test]
fn libsrtp_refuses_what_we_refuse() {
    let Some(mut lib) = LibSrtp::start("libsrtp2 interop") else {
        return;
    };
    let key = MasterKey::random();
    assert_eq!(
        lib.cmd(&format!("key 80 {}", hex::encode(key.to_bytes()))),
        "ok"
    );
    let mut rx = Srtp::new(Suite::AesCm128HmacSha1_80, &key);
    let plain = RtpPacket::write(false, 104, 7, 0, 42, b"a frame");
    let protected = hex::decode(lib.cmd(&format!("protect {}", hex::encode(&plain)))).unwrap();
    let mut forged = protected.clone();
    forged[13] ^= 4;
    assert!(
        lib.cmd(&format!("unprotect {}", hex::encode(&forged)))
            .starts_with("error")
    );
    assert_eq!(rx.unprotect(&mut forged), Err(SrtpError::AuthFailed));
    assert!(
        !lib.cmd(&format!("unprotect {}", hex::encode(&protected)))
            .starts_with("error")
    );
    rx.unprotect(&mut protected.clone()).unwrap();
    assert!(
        lib.cmd(&format!("unprotect {}", hex::encode(&protected)))
            .starts_with("error")
    );
    assert_eq!(
        rx.unprotect(&mut protected.clone()),
        Err(SrtpError::Replayed)
    );
}
