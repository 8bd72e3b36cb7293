//! Certificates and PEM chains: parsing and every accessor must not panic.
use pamoja_identity::Certificate;

/// One input.
pub fn run(data: &[u8]) {
    if let Ok(chain) = Certificate::chain_from_pem_or_der(data) {
        for c in &chain {
            let _ = (
                c.subject_cn(),
                c.subject_uid(),
                c.is_ca(),
                c.serial_hex(),
                c.not_before(),
                c.not_after(),
            );
            let _ = c.verify_signature(c.public_key());
            let _ = c.public_key().bits();
            if let Some(parent) = chain.last() {
                let _ = pamoja_identity::verify_device_chain(
                    c,
                    parent,
                    None,
                    None,
                    std::time::SystemTime::now(),
                );
            }
        }
    }
}
