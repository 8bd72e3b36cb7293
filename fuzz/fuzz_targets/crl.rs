#![no_main]
//! Revocation lists, DER or PEM.
use libfuzzer_sys::fuzz_target;
use pamoja_identity::RevocationList;

fuzz_target!(|data: &[u8]| {
    if let Ok(crl) = RevocationList::from_pem_or_der(data) {
        let _ = crl.revoked_serials();
        let _ = crl.number();
        let _ = crl.to_pem();
    }
});
