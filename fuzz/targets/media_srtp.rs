//! SRTP packets from a peer: refused or unprotected, never a panic; a refused packet is left
//! as it was.
use pamoja_media::{MasterKey, Srtp, Suite};

/// One input.
pub fn run(data: &[u8]) {
    let key = MasterKey::from_bytes(&[7u8; 30]).unwrap();
    for suite in [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32] {
        let mut rx = Srtp::new(suite, &key);
        let mut p = data.to_vec();
        if rx.unprotect(&mut p).is_err() {
            assert_eq!(p, data);
        }
        // And what we protect from the same bytes reads back.
        let mut tx = Srtp::new(suite, &key);
        let mut rx = Srtp::new(suite, &key);
        let mut q = data.to_vec();
        if tx.protect(&mut q).is_ok() {
            rx.unprotect(&mut q).expect("our own packet");
            assert_eq!(q, data);
        }
    }
}
