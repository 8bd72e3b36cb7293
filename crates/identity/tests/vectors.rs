//! Byte-exact output of a real jamid (Debian jami-daemon 20230206), captured with
//! `PAMOJA_VECTORS_OUT=crates/identity/tests/vectors cargo test --test interop_jamid`:
//! exports with and without a password, the receipt jamid signed, and an export after jamid
//! revoked a linked device. These tests run anywhere, without jamid.

use std::path::Path;
use std::time::{Duration, SystemTime};

use pamoja_identity::announce::Receipt;
use pamoja_identity::{Account, Archive, Certificate, ChainError, Error, RevocationList};

fn vector(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn ids(tag: &str) -> serde_json::Value {
    serde_json::from_slice(&vector(&format!("jamid-ids-{tag}.json"))).unwrap()
}

/// A time inside the certificates' validity, so these tests keep passing after they expire.
fn during(account: &Account) -> SystemTime {
    account.device().unwrap().cert.not_before() + Duration::from_secs(86400)
}

fn check_export(tag: &str, password: Option<&str>) -> Account {
    let expected = ids(tag);
    let archive = Archive::decode(&vector(&format!("jamid-export-{tag}.gz")), password).unwrap();
    let account = Account::from_archive(archive.clone()).unwrap();
    assert_eq!(
        account.jami_id().to_string(),
        expected["jami_id"].as_str().unwrap()
    );
    let device = account.device().unwrap();
    assert_eq!(
        device.id().to_string(),
        expected["device_id"].as_str().unwrap()
    );
    account
        .verify_device(&device.cert, during(&account))
        .unwrap();
    assert_eq!(
        account.account_cert().subject_uid(),
        Some(account.jami_id().to_string())
    );
    assert_eq!(
        device.cert.subject_uid(),
        Some(device.cert.short_device_id().to_string())
    );

    // The receipt jamid signed verifies, names the archive's Ethereum address, and is
    // byte for byte the one Pamoja builds.
    let text = String::from_utf8(vector(&format!("jamid-receipt-{tag}.json"))).unwrap();
    let sig = vector(&format!("jamid-receipt-{tag}.sig"));
    let receipt = Receipt::verify(
        &text,
        &sig,
        account.account_key().public_key(),
        device.key.public_key(),
    )
    .unwrap();
    assert_eq!(receipt.eth, account.eth_key().unwrap().address_hex());
    assert_eq!(account.receipt().unwrap().0, text);
    let mut bad = sig.clone();
    bad[0] ^= 1;
    assert!(
        Receipt::verify(
            &text,
            &bad,
            account.account_key().public_key(),
            device.key.public_key()
        )
        .is_err()
    );

    // Nothing is lost in a read-modify-write.
    let again = Archive::decode(&archive.encode(password).unwrap(), password).unwrap();
    assert_eq!(again.to_json(), archive.to_json());
    account
}

#[test]
fn jamid_export_without_password() {
    let bytes = vector("jamid-export-plain.gz");
    assert_eq!(&bytes[..3], &[0x1f, 0x8b, 0x08]);
    check_export("plain", None);
}

#[test]
fn jamid_export_with_password() {
    let password = ids("password")["password"].as_str().unwrap().to_owned();
    check_export("password", Some(&password));
    let bytes = vector("jamid-export-password.gz");
    assert!(matches!(
        Archive::decode(&bytes, None),
        Err(Error::PasswordNeeded)
    ));
    assert!(matches!(
        Archive::decode(&bytes, Some("not it")),
        Err(Error::Decrypt)
    ));
}

#[test]
fn jamid_revocation() {
    let expected = ids("revoked");
    let account =
        Account::from_archive(Archive::decode(&vector("jamid-export-revoked.gz"), None).unwrap())
            .unwrap();
    assert_eq!(
        account.jami_id().to_string(),
        expected["jami_id"].as_str().unwrap()
    );
    let crl = account.crl().expect("CRL in the export");
    crl.verify_signature(account.account_key().public_key())
        .unwrap();
    assert!(crl.is_issued_by_name(account.account_cert()));
    let tbs = &crl.x509().tbs_cert_list;
    assert_eq!(tbs.version, x509_cert::Version::V2);
    assert_eq!(
        crl.x509().signature_algorithm.oid.to_string(),
        "1.2.840.113549.1.1.13"
    );
    assert_eq!(
        tbs.next_update,
        Some(
            account
                .account_cert()
                .x509()
                .tbs_certificate
                .validity
                .not_after
        )
    );
    assert_eq!(tbs.crl_extensions.as_ref().map(Vec::len), Some(1));

    let revoked = Certificate::chain_from_pem_or_der(&vector("jamid-revoked-device.pem"))
        .unwrap()
        .remove(0);
    assert_eq!(
        revoked.device_id().to_string(),
        expected["revoked"].as_str().unwrap()
    );
    assert!(account.is_revoked(&revoked));
    match account.verify_device(&revoked, during(&account)) {
        Err(Error::Chain(ChainError::Revoked)) => {}
        other => panic!("revoked device accepted: {other:?}"),
    }
    let own = &account.device().unwrap().cert;
    assert_eq!(
        own.device_id().to_string(),
        expected["device_id"].as_str().unwrap()
    );
    account.verify_device(own, during(&account)).unwrap();

    // jamid wrote this device's serial and the cRLNumber as negative INTEGERs.
    assert!(
        revoked.serial().as_bytes()[0] & 0x80 != 0,
        "negative serial"
    );
    let number = crl.number().unwrap();
    assert!(number[0] & 0x80 != 0, "negative cRLNumber");
    // Pamoja re-signs jamid's CRL: same entries, number + 1.
    let resigned = RevocationList::sign(
        account.account_cert(),
        account.account_key(),
        Some(crl),
        &[],
        during(&account),
    )
    .unwrap();
    assert!(resigned.lists(&revoked));
    resigned
        .verify_signature(account.account_key().public_key())
        .unwrap();
    let as_i128 = |b: &[u8]| {
        b.iter()
            .fold(if b[0] & 0x80 != 0 { -1i128 } else { 0 }, |a, &x| {
                (a << 8) | i128::from(x)
            })
    };
    assert_eq!(as_i128(&resigned.number().unwrap()), as_i128(&number) + 1);
}
