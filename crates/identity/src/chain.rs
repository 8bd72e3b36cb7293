//! Validation of a device ← account ← CA chain, as jamid checks its own and its peers' devices.

use std::time::SystemTime;

use crate::cert::Certificate;
use crate::crl::RevocationList;
use crate::error::ChainError;

/// Checks a device certificate against its account certificate and, when given, the account's
/// CA certificate and revocation list, at time `now`.
///
/// Rules: every certificate is within its validity period; each issuer name matches the parent's
/// subject and each signature verifies with the parent's key (SHA-256/384/512 only); the account
/// certificate (and the CA) are CAs; the account certificate's UID is the SHA-1 of its key (the
/// Jami ID); a CRL must be issued and signed by the account, and must not list the device.
pub fn verify_device_chain(
    device: &Certificate,
    account: &Certificate,
    ca: Option<&Certificate>,
    crl: Option<&RevocationList>,
    now: SystemTime,
) -> Result<(), ChainError> {
    check_time("device", device, now)?;
    check_time("account", account, now)?;
    if account.subject_uid().as_deref() != Some(account.jami_id().to_string().as_str()) {
        return Err(ChainError::IdMismatch { cert: "account" });
    }
    check_link("device", device, "account", account)?;
    match ca {
        Some(ca) => {
            check_time("ca", ca, now)?;
            check_link("account", account, "ca", ca)?;
            if !ca.is_self_issued() {
                return Err(ChainError::WrongIssuer { cert: "ca" });
            }
            check_signature("ca", ca, ca)?;
        }
        None if account.is_self_issued() => check_signature("account", account, account)?,
        None => {}
    }
    if let Some(crl) = crl {
        if !crl.is_issued_by_name(account) || crl.verify_signature(account.public_key()).is_err() {
            return Err(ChainError::BadCrl);
        }
        if crl.lists(device) {
            return Err(ChainError::Revoked);
        }
    }
    Ok(())
}

fn check_time(name: &'static str, cert: &Certificate, now: SystemTime) -> Result<(), ChainError> {
    if now < cert.not_before() {
        return Err(ChainError::NotYetValid { cert: name });
    }
    if now > cert.not_after() {
        return Err(ChainError::Expired { cert: name });
    }
    Ok(())
}

fn check_link(
    child_name: &'static str,
    child: &Certificate,
    parent_name: &'static str,
    parent: &Certificate,
) -> Result<(), ChainError> {
    if !child.is_issued_by_name(parent) {
        return Err(ChainError::WrongIssuer { cert: child_name });
    }
    if !parent.is_ca() {
        return Err(ChainError::NotCa { cert: parent_name });
    }
    check_signature(child_name, child, parent)
}

fn check_signature(name: &'static str, child: &Certificate, parent: &Certificate) -> Result<(), ChainError> {
    if child.signature_hash().is_none() {
        return Err(ChainError::UnsupportedAlgorithm { cert: name });
    }
    child.verify_signature(parent.public_key()).map_err(|_| ChainError::BadSignature { cert: name })
}
