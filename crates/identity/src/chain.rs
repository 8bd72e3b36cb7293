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

fn check_signature(
    name: &'static str,
    child: &Certificate,
    parent: &Certificate,
) -> Result<(), ChainError> {
    if child.signature_hash().is_none() {
        return Err(ChainError::UnsupportedAlgorithm { cert: name });
    }
    child
        .verify_signature(parent.public_key())
        .map_err(|_| ChainError::BadSignature { cert: name })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cert::{CN_ACCOUNT, CN_CA, CN_DEVICE, VALIDITY};
    use crate::key::tests::test_key;

    struct Fixture {
        ca: Certificate,
        account: Certificate,
        device: Certificate,
    }

    fn fixture(now: SystemTime) -> Fixture {
        let (ca_key, acc_key, dev_key) = (test_key(0), test_key(1), test_key(2));
        let ca = Certificate::issue(ca_key.public_key(), CN_CA, None, ca_key, true, now).unwrap();
        let account = Certificate::issue(
            acc_key.public_key(),
            CN_ACCOUNT,
            Some(&ca),
            ca_key,
            true,
            now,
        )
        .unwrap();
        let device = Certificate::issue(
            dev_key.public_key(),
            CN_DEVICE,
            Some(&account),
            acc_key,
            false,
            now,
        )
        .unwrap();
        Fixture {
            ca,
            account,
            device,
        }
    }

    fn check(f: &Fixture, crl: Option<&RevocationList>, now: SystemTime) -> Result<(), ChainError> {
        verify_device_chain(&f.device, &f.account, Some(&f.ca), crl, now)
    }

    #[test]
    fn valid_chain() {
        let now = SystemTime::now();
        let f = fixture(now);
        check(&f, None, now).unwrap();
        verify_device_chain(&f.device, &f.account, None, None, now).unwrap();
    }

    #[test]
    fn wrong_issuer() {
        let now = SystemTime::now();
        let f = fixture(now);
        // The device is checked against the CA instead of its account.
        assert_eq!(
            verify_device_chain(&f.device, &f.ca, None, None, now),
            Err(ChainError::WrongIssuer { cert: "device" })
        );
        // An account of another CA (same names, other key) is rejected by name or signature.
        let other_ca_key = test_key(2);
        let other_ca = Certificate::issue(
            other_ca_key.public_key(),
            CN_CA,
            None,
            other_ca_key,
            true,
            now,
        )
        .unwrap();
        assert_eq!(
            verify_device_chain(&f.device, &f.account, Some(&other_ca), None, now),
            Err(ChainError::WrongIssuer { cert: "account" })
        );
    }

    #[test]
    fn bad_signature() {
        let now = SystemTime::now();
        let f = fixture(now);
        let mut der = f.device.der().to_vec();
        let last = der.len() - 1;
        der[last] ^= 1;
        let tampered = Certificate::from_der(&der).unwrap();
        assert_eq!(
            verify_device_chain(&tampered, &f.account, Some(&f.ca), None, now),
            Err(ChainError::BadSignature { cert: "device" })
        );
        // Signed by the right name but the wrong key.
        let forged = Certificate::issue(
            test_key(2).public_key(),
            CN_DEVICE,
            Some(&f.account),
            test_key(0),
            false,
            now,
        )
        .unwrap();
        assert_eq!(
            verify_device_chain(&forged, &f.account, Some(&f.ca), None, now),
            Err(ChainError::BadSignature { cert: "device" })
        );
    }

    #[test]
    fn expired_and_not_yet_valid() {
        let now = SystemTime::now();
        let f = fixture(now);
        assert_eq!(
            check(&f, None, now + VALIDITY + Duration::from_secs(10)),
            Err(ChainError::Expired { cert: "device" })
        );
        assert_eq!(
            check(&f, None, now - Duration::from_secs(3600)),
            Err(ChainError::NotYetValid { cert: "device" })
        );
        // Only the account is expired.
        let old = now - VALIDITY - Duration::from_secs(86400);
        let acc_key = test_key(1);
        let old_account = Certificate::issue(
            acc_key.public_key(),
            CN_ACCOUNT,
            Some(&f.ca),
            test_key(0),
            true,
            old,
        )
        .unwrap();
        assert_eq!(
            verify_device_chain(&f.device, &old_account, None, None, now),
            Err(ChainError::Expired { cert: "account" })
        );
    }

    #[test]
    fn revoked_by_crl() {
        let now = SystemTime::now();
        let f = fixture(now);
        let crl = RevocationList::sign(&f.account, test_key(1), None, &[&f.device], now).unwrap();
        assert_eq!(check(&f, Some(&crl), now), Err(ChainError::Revoked));
        // A CRL that revokes something else lets the device through.
        let other = Certificate::issue(
            test_key(0).public_key(),
            CN_DEVICE,
            Some(&f.account),
            test_key(1),
            false,
            now,
        )
        .unwrap();
        let crl = RevocationList::sign(&f.account, test_key(1), None, &[&other], now).unwrap();
        check(&f, Some(&crl), now).unwrap();
        // A CRL not signed by the account is refused.
        let forged =
            RevocationList::sign(&f.account, test_key(2), None, &[&f.device], now).unwrap();
        assert_eq!(check(&f, Some(&forged), now), Err(ChainError::BadCrl));
    }

    #[test]
    fn jami_id_not_hash_of_key() {
        let now = SystemTime::now();
        let f = fixture(now);
        let acc_key = test_key(1);
        let wrong_uid = "0".repeat(40);
        let account = Certificate::issue_with_uid(
            acc_key.public_key(),
            CN_ACCOUNT,
            &wrong_uid,
            Some(&f.ca),
            test_key(0),
            true,
            now,
        )
        .unwrap();
        let device = Certificate::issue(
            test_key(2).public_key(),
            CN_DEVICE,
            Some(&account),
            acc_key,
            false,
            now,
        )
        .unwrap();
        assert_eq!(
            verify_device_chain(&device, &account, Some(&f.ca), None, now),
            Err(ChainError::IdMismatch { cert: "account" })
        );
    }

    #[test]
    fn issuer_without_ca_constraints() {
        let now = SystemTime::now();
        let f = fixture(now);
        let acc_key = test_key(1);
        let not_ca = Certificate::issue(
            acc_key.public_key(),
            CN_ACCOUNT,
            Some(&f.ca),
            test_key(0),
            false,
            now,
        )
        .unwrap();
        let device = Certificate::issue(
            test_key(2).public_key(),
            CN_DEVICE,
            Some(&not_ca),
            acc_key,
            false,
            now,
        )
        .unwrap();
        assert_eq!(
            verify_device_chain(&device, &not_ca, Some(&f.ca), None, now),
            Err(ChainError::NotCa { cert: "account" })
        );
        // A CA certificate that is not a CA.
        let ca_key = test_key(0);
        let plain_ca =
            Certificate::issue(ca_key.public_key(), CN_CA, None, ca_key, false, now).unwrap();
        assert_eq!(
            verify_device_chain(&f.device, &f.account, Some(&plain_ca), None, now),
            Err(ChainError::NotCa { cert: "ca" })
        );
    }
}
