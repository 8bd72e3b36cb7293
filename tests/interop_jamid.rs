//! pamoja-identity against a real jamid (Debian jami-daemon 20230206) in a private lab:
//! jamid's archives are read by Pamoja, Pamoja's archives are imported by jamid, and a device
//! revocation done by jamid is seen by Pamoja.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use der::{Encode, Tagged};
use pamoja::identity::announce::Receipt;
use pamoja::identity::{Account, Archive, Certificate, ChainError, Error, RevocationList};
use pamoja_lab::{Jamid, Lab, available};

const BOOTSTRAP_PORT: u16 = 4222;
const REGISTER_TIMEOUT: Duration = Duration::from_secs(120);

fn device_chain(jamid: &Jamid, account: &str) -> Vec<Certificate> {
    let pem =
        std::fs::read(jamid.account_dir(account).join("ring_device.crt")).expect("ring_device.crt");
    Certificate::chain_from_pem_or_der(&pem).expect("jamid's device chain parses")
}

/// The receipt jamid keeps in the account's config.yml: (receipt JSON, signature).
fn jamid_receipt(jamid: &Jamid, account: &str) -> (String, Vec<u8>) {
    use base64::Engine;
    let yml =
        std::fs::read_to_string(jamid.account_dir(account).join("config.yml")).expect("config.yml");
    let value = |key: &str| -> String {
        let line = yml
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("{key} not in config.yml"));
        // A YAML double-quoted scalar with only JSON-compatible escapes.
        serde_json::from_str::<String>(line.trim().trim_start_matches("!!binary ").trim())
            .expect("quoted scalar")
    };
    let text = value("ringAccountReceipt:");
    let sig = base64::engine::general_purpose::STANDARD
        .decode(value("ringAccountReceiptSignature:"))
        .expect("base64");
    (text, sig)
}

/// When `PAMOJA_VECTORS_OUT` names a directory, the jamid output a test reads is copied there
/// (this is how `crates/identity/tests/vectors/` was captured).
fn capture(name: &str, data: &[u8]) {
    if let Some(dir) = std::env::var_os("PAMOJA_VECTORS_OUT") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    }
}

async fn registered(lab: &Lab, jamid: &Jamid, account: &str) {
    if let Err(e) = jamid.wait_registered(account, REGISTER_TIMEOUT).await {
        panic!(
            "{e}\n--- jamid log ---\n{}",
            lab.log_tail(&format!("jamid-{}", jamid.name()), 60)
        );
    }
}

/// The parts of a certificate's profile that must be the same in jamid's and Pamoja's.
fn profile(c: &Certificate) -> String {
    let tbs = &c.x509().tbs_certificate;
    let subject: Vec<String> = tbs
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .map(|atv| format!("{}:tag{:?}", atv.oid, atv.value.tag()))
        .collect();
    let exts: Vec<String> = c
        .extensions()
        .iter()
        .map(|e| {
            // The SKI value is the key's own id; compare its length, the rest byte for byte.
            let value = if e.extn_id.to_string() == "2.5.29.14" {
                format!("{} bytes", e.extn_value.as_bytes().len())
            } else {
                hex_of(e.extn_value.as_bytes())
            };
            format!("{} critical={} {}", e.extn_id, e.critical, value)
        })
        .collect();
    let days = c
        .not_after()
        .duration_since(c.not_before())
        .unwrap()
        .as_secs()
        / 86400;
    format!(
        "version={:?} cn={:?} subject={subject:?} issuer_is_parent_subject sig={} params={} days={days} exts={exts:?}",
        tbs.version,
        c.subject_cn(),
        c.x509().signature_algorithm.oid,
        c.x509()
            .signature_algorithm
            .parameters
            .to_der()
            .map(|d| hex_of(&d))
            .unwrap_or_default(),
    )
}

fn crl_profile(crl: &RevocationList) -> String {
    let tbs = &crl.x509().tbs_cert_list;
    let exts: Vec<String> = tbs
        .crl_extensions
        .iter()
        .flatten()
        .map(|e| format!("{} critical={}", e.extn_id, e.critical))
        .collect();
    let entries: Vec<String> = tbs
        .revoked_certificates
        .iter()
        .flatten()
        .map(|r| {
            format!(
                "{} ext={}",
                hex_of(r.serial_number.as_bytes()),
                r.crl_entry_extensions.is_some()
            )
        })
        .collect();
    format!(
        "version={:?} sig={} issuer={} next_update={:?} exts={exts:?} entries={entries:?} number_len={}",
        tbs.version,
        crl.x509().signature_algorithm.oid,
        tbs.issuer,
        tbs.next_update.map(|t| t.to_unix_duration()),
        crl.number().map(|n| n.len()).unwrap_or(0) <= 8,
    )
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn jami_show(archive: &Path, password: &str, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(common::jami_bin())
        .args(["account", "show", "--archive", archive.to_str().unwrap()])
        .args(extra)
        .env("PAMOJA_PASSWORD", password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jamid_archives_are_read_by_pamoja() {
    if !available("jamid_archives_are_read_by_pamoja") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.start_dhtnode(BOOTSTRAP_PORT).await.unwrap();
    let jamid = lab.start_jamid("a").await.unwrap();
    let ours = Account::create(|_| {}).unwrap();

    for password in ["", "S3cret pass"] {
        let acc = jamid
            .add_account(
                BOOTSTRAP_PORT,
                &[
                    ("Account.alias", "reader"),
                    ("Account.archivePassword", password),
                ],
            )
            .await
            .unwrap();
        registered(&lab, &jamid, &acc).await;
        let jami_id = jamid.jami_id(&acc).await.unwrap();
        let device_id = jamid.device_id(&acc).await.unwrap();
        let path = lab.dir().join(format!("export-{}.gz", password.len()));
        jamid.export_to_file(&acc, &path, password).await.unwrap();

        let bytes = std::fs::read(&path).unwrap();
        let tag = if password.is_empty() {
            "plain"
        } else {
            "password"
        };
        capture(&format!("jamid-export-{tag}.gz"), &bytes);
        capture(
            &format!("jamid-ids-{tag}.json"),
            serde_json::json!({"jami_id": jami_id, "device_id": device_id, "password": password})
                .to_string()
                .as_bytes(),
        );
        if password.is_empty() {
            assert_eq!(
                &bytes[..3],
                &[0x1f, 0x8b, 0x08],
                "jamid writes plain archives as gzip"
            );
        } else {
            assert_ne!(&bytes[..3], &[0x1f, 0x8b, 0x08]);
            assert!(matches!(
                Archive::decode(&bytes, None),
                Err(Error::PasswordNeeded)
            ));
            assert!(matches!(
                Archive::decode(&bytes, Some("wrong")),
                Err(Error::Decrypt)
            ));
        }
        let archive = Archive::decode(&bytes, Some(password)).unwrap();
        assert!(archive.json().len() > 20, "jamid exports its settings too");
        let account = Account::from_archive(archive.clone()).unwrap();
        assert_eq!(account.jami_id().to_string(), jami_id);
        let device = account.device().expect("export holds the exporting device");
        assert_eq!(device.id().to_string(), device_id);
        account
            .verify_device(&device.cert, SystemTime::now())
            .unwrap();
        assert!(account.eth_key().is_some(), "jamid stores an Ethereum key");

        // jamid's receipt and DeviceAnnouncement verify with Pamoja, and name the same
        // Ethereum address Pamoja computes from the archive's key.
        let (text, sig) = jamid_receipt(&jamid, &acc);
        capture(&format!("jamid-receipt-{tag}.json"), text.as_bytes());
        capture(&format!("jamid-receipt-{tag}.sig"), &sig);
        let receipt = Receipt::verify(
            &text,
            &sig,
            account.account_key().public_key(),
            device.key.public_key(),
        )
        .unwrap();
        assert_eq!(receipt.eth, account.eth_key().unwrap().address_hex());
        // Pamoja builds the same receipt text for that device (the announcement's signature
        // is randomised only through the key, so the bytes match as well).
        let (ours_text, _) = account.receipt().unwrap();
        assert_eq!(ours_text, text);

        // The chain jamid keeps on disk is the one in the export: device, account, CA.
        let chain = device_chain(&jamid, &acc);
        assert_eq!(chain.len(), 3);
        assert_eq!(chain[0], device.cert);
        assert_eq!(&chain[1], account.account_cert());
        assert_eq!(Some(&chain[2]), account.ca_cert());

        // Pamoja issues certificates with the same profile as jamid.
        assert_eq!(
            profile(&chain[0]),
            profile(&ours.device().unwrap().cert),
            "device certificate profile"
        );
        assert_eq!(
            profile(&chain[1]),
            profile(ours.account_cert()),
            "account certificate profile"
        );
        assert_eq!(
            profile(&chain[2]),
            profile(ours.ca_cert().unwrap()),
            "CA certificate profile"
        );
        let ca_profile = profile(&chain[2]);
        assert!(
            ca_profile.contains("2.5.29.19 critical=true 30030101ff"),
            "{ca_profile}"
        );
        assert!(
            ca_profile.contains("days=3650") && ca_profile.contains("sig=1.2.840.113549.1.1.12"),
            "{ca_profile}"
        );

        // A read-modify-write keeps every key jamid wrote.
        let rewritten =
            Archive::decode(&archive.encode(Some(password)).unwrap(), Some(password)).unwrap();
        assert_eq!(rewritten.to_json(), archive.to_json());

        // The command line sees the same ids.
        let shown = jami_show(&path, password, &[]);
        assert_eq!(shown["jami_id"], jami_id.as_str());
        assert_eq!(shown["device_id"], device_id.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pamoja_archives_are_imported_by_jamid() {
    if !available("pamoja_archives_are_imported_by_jamid") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.start_dhtnode(BOOTSTRAP_PORT).await.unwrap();
    let jamid = lab.start_jamid("b").await.unwrap();

    for password in ["", "pamoja pw"] {
        let account = Account::create(|_| {}).unwrap();
        let path = lab.dir().join(format!("pamoja-{}.gz", password.len()));
        account.archive().write_file(&path, Some(password)).unwrap();
        let path_str = path.to_str().unwrap();
        let acc = jamid
            .add_account(
                BOOTSTRAP_PORT,
                &[
                    ("Account.archivePath", path_str),
                    ("Account.archivePassword", password),
                ],
            )
            .await
            .unwrap();
        registered(&lab, &jamid, &acc).await;
        assert_eq!(
            jamid.jami_id(&acc).await.unwrap(),
            account.jami_id().to_string()
        );

        // jamid made its own device under our account; Pamoja validates that device's chain.
        let chain = device_chain(&jamid, &acc);
        assert_eq!(
            chain[0].device_id().to_string(),
            jamid.device_id(&acc).await.unwrap()
        );
        assert_eq!(
            &chain[1],
            account.account_cert(),
            "jamid kept Pamoja's account certificate"
        );
        account.verify_device(&chain[0], SystemTime::now()).unwrap();
        let (text, sig) = jamid_receipt(&jamid, &acc);
        let receipt = Receipt::verify(
            &text,
            &sig,
            account.account_key().public_key(),
            chain[0].public_key(),
        )
        .unwrap();
        assert_eq!(
            receipt.eth,
            account.eth_key().unwrap().address_hex(),
            "jamid derives the same Ethereum address"
        );

        // And it announced that device on the lab's DHT.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let d = jamid.volatile_details(&acc).await.unwrap();
            if d.get("Account.deviceAnnounced").map(String::as_str) == Some("true") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "device never announced: {d:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_revoked_by_jamid_is_seen_by_pamoja() {
    if !available("device_revoked_by_jamid_is_seen_by_pamoja") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.start_dhtnode(BOOTSTRAP_PORT).await.unwrap();
    let first = lab.start_jamid("first").await.unwrap();
    let second = lab.start_jamid("second").await.unwrap();

    let acc1 = first
        .add_account(BOOTSTRAP_PORT, &[("Account.archivePassword", "")])
        .await
        .unwrap();
    registered(&lab, &first, &acc1).await;
    let jami_id = first.jami_id(&acc1).await.unwrap();
    let dev1 = first.device_id(&acc1).await.unwrap();

    // Link a second device through the DHT with a PIN.
    let pin = first
        .export_on_ring(&acc1, "", Duration::from_secs(60))
        .await
        .unwrap();
    let acc2 = second
        .add_account(
            BOOTSTRAP_PORT,
            &[
                ("Account.archivePIN", &pin),
                ("Account.archivePassword", ""),
            ],
        )
        .await
        .unwrap();
    registered(&lab, &second, &acc2).await;
    assert_eq!(second.jami_id(&acc2).await.unwrap(), jami_id);
    let dev2 = second.device_id(&acc2).await.unwrap();
    assert_ne!(dev1, dev2);

    // The first device must know the second one's certificate before it can revoke it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !first
        .known_devices(&acc1)
        .await
        .unwrap()
        .contains_key(&dev2)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "first device never saw the second"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = first
        .revoke_device(&acc1, "", &dev2, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(status, 0, "deviceRevocationEnded status");

    let export = lab.dir().join("after-revocation.gz");
    first.export_to_file(&acc1, &export, "").await.unwrap();
    capture("jamid-export-revoked.gz", &std::fs::read(&export).unwrap());
    let account = Account::from_archive(Archive::read_file(&export, None).unwrap()).unwrap();
    let crl = account.crl().expect("the export carries the account's CRL");
    crl.verify_signature(account.account_key().public_key())
        .unwrap();

    let cert2 = device_chain(&second, &acc2).remove(0);
    capture("jamid-revoked-device.pem", cert2.to_pem().as_bytes());
    capture(
        "jamid-ids-revoked.json",
        serde_json::json!({"jami_id": jami_id, "device_id": dev1, "revoked": dev2})
            .to_string()
            .as_bytes(),
    );

    // Pamoja's CRL for the same revocation has jamid's profile.
    let jamid_crl = crl_profile(crl);
    let ours_crl = RevocationList::sign(
        account.account_cert(),
        account.account_key(),
        None,
        &[&cert2],
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(crl_profile(&ours_crl), jamid_crl);
    // Re-signing increments the number, as jamid does.
    let resigned = RevocationList::sign(
        account.account_cert(),
        account.account_key(),
        Some(crl),
        &[],
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(resigned.revoked_serials(), crl.revoked_serials());
    assert_ne!(resigned.number(), crl.number());
    assert_eq!(cert2.device_id().to_string(), dev2);
    assert!(account.is_revoked(&cert2));
    match account.verify_device(&cert2, SystemTime::now()) {
        Err(Error::Chain(ChainError::Revoked)) => {}
        other => panic!("revoked device accepted: {other:?}"),
    }
    let own = &account.device().unwrap().cert;
    assert_eq!(own.device_id().to_string(), dev1);
    account.verify_device(own, SystemTime::now()).unwrap();

    // The command line reports it, given the revoked device's certificate.
    let cert_path = lab.dir().join("second.crt");
    std::fs::write(&cert_path, cert2.to_pem()).unwrap();
    let shown = jami_show(&export, "", &["--device-cert", cert_path.to_str().unwrap()]);
    assert_eq!(shown["jami_id"], jami_id.as_str());
    assert_eq!(shown["revoked"], serde_json::json!([dev2]));
    assert_eq!(shown["devices"], serde_json::json!([dev1]));
    assert_eq!(
        shown["revoked_serials"],
        serde_json::json!([cert2.serial_hex()])
    );
}
