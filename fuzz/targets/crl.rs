//! Revocation lists, DER or PEM.
use pamoja_identity::RevocationList;

/// One input.
pub fn run(data: &[u8]) {
    if let Ok(crl) = RevocationList::from_pem_or_der(data) {
        let _ = crl.revoked_serials();
        let _ = crl.number();
        let _ = crl.to_pem();
    }
}
