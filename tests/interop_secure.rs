//! SecureDht values between Pamoja and OpenDHT 2.4.12, both ways, on a lab DHT:
//!
//! * a python3-opendht node with an identity (a SecureDht node) publishes its certificate; we
//!   find it at SHA-1 of its key and use its key to encrypt to it. It returns our signed value
//!   with our key as owner, and our encrypted value decrypted; it drops a value whose signature
//!   was tampered with and one encrypted to someone else.
//! * the real `dhtnode -i` puts a signed value (`s`) and a value encrypted to our key (`e`,
//!   which finds the certificate we published): we verify the one and decrypt the other.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use std::sync::Arc;

use pamoja::dht::secure::{self, SecureError};
use pamoja::dht::securedht::SecureDht;
use pamoja::dht::{InfoHash, Runner, Value};
use pamoja::identity::{Account, PrivateKey, PublicKey};
use pamoja_lab::{DHTNODE, Lab, available};

const BOOTSTRAP: &str = "127.0.0.1:4222";

const SECURE_NODE: &str = r#"
import json, os, sys
import opendht as dht
ident = dht.Identity.generate("pamoja-secure-test", dht.Identity(), 2048)
r = dht.DhtRunner()
r.run(id=ident, port=0, ipv4="127.0.0.1")
r.bootstrap("127.0.0.1", "4222")
print(json.dumps({"key_id": ident.publickey.getId().toString().decode()
                  if isinstance(ident.publickey.getId().toString(), bytes)
                  else ident.publickey.getId().toString(),
                  "cert": ident.certificate.toString()}), flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] != "get":
        break
    out = []
    for v in r.get(dht.InfoHash(cmd["key"].encode())):
        owner = v.owner.toString()
        out.append({"id": v.id, "data": bytes(v.data).decode("utf-8", "replace"),
                    "owner": owner.decode() if isinstance(owner, bytes) else owner,
                    "text": str(v)})
    print(json.dumps(out), flush=True)
sys.stdout.flush()
os._exit(0)
"#;

/// A python3-opendht SecureDht node, driven line by line; stopped by PID on drop.
struct SecureNode {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl SecureNode {
    fn start(lab: &Lab) -> (Self, serde_json::Value) {
        let script = lab.dir().join("secure_node.py");
        std::fs::write(&script, SECURE_NODE).unwrap();
        let mut child = lab
            .netns()
            .command("/usr/bin/python3")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let hello = serde_json::from_str(&line).expect("identity line");
        (
            Self {
                child,
                stdin,
                stdout,
            },
            hello,
        )
    }

    fn get(&mut self, key: &InfoHash) -> Vec<serde_json::Value> {
        writeln!(
            self.stdin,
            "{}",
            serde_json::json!({"op": "get", "key": key.to_string()})
        )
        .unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str::<Vec<serde_json::Value>>(&line).expect("values line")
    }
}

impl Drop for SecureNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Gets at `key` until `pred` holds for the values found (the DHT needs a moment).
async fn get_until(runner: &Runner, key: InfoHash, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let values = runner.get(key).await.unwrap();
        if pred(&values) || Instant::now() > deadline {
            return values;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_and_encrypted_values_with_opendht() {
    if !available("signed_and_encrypted_values_with_opendht") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.start_dhtnode(4222).await.unwrap();
    let runner = Arc::new(common::lab_node(&lab).await);
    let account = Account::create(|_| {}).unwrap();
    let me = account.account_key();
    let my_id = secure::key_id(me.public_key());
    let sd = std::sync::Arc::new(SecureDht::new(
        runner.clone(),
        PrivateKey::from_pkcs8_der(me.to_pkcs8_der()).unwrap(),
        vec![account.account_cert().clone()],
    ));
    assert_eq!(sd.key_id(), my_id);
    // Our certificate where OpenDHT 2.4.12 (and 3.7.2+) look for it.
    assert!(sd.publish_certificate().await.unwrap() > 0);

    // 1. The python SecureDht node: its certificate, found at SHA-1 of its key.
    let (mut py, hello) = tokio::task::block_in_place(|| SecureNode::start(&lab));
    let their_id: InfoHash = hello["key_id"].as_str().unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let chain = loop {
        if let Some(c) = sd.find_certificate(their_id).await.unwrap() {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "the python node's certificate is not on the DHT"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let their_key: PublicKey = chain[0].public_key().clone();
    assert_eq!(secure::key_id(&their_key), their_id);
    let from_text = pamoja::identity::Certificate::chain_from_pem_or_der(
        hello["cert"].as_str().unwrap().as_bytes(),
    )
    .unwrap();
    assert_eq!(from_text[0].der(), chain[0].der());

    // Signed by us: OpenDHT returns it with our key as owner; a tampered copy never shows.
    let k1 = InfoHash::get(b"pamoja signed");
    let first = Value {
        id: 77,
        ..Value::new("signed by pamoja")
    };
    assert!(sd.put_signed(k1, first).await.unwrap() > 0);
    let got = tokio::task::block_in_place(|| py.get(&k1));
    assert!(
        got.iter()
            .any(|v| v["data"] == "signed by pamoja" && v["owner"] == my_id.to_string()),
        "{got:?}"
    );
    // An edit of the same value: the next seq, which OpenDHT's storing nodes accept.
    let edit = Value {
        id: 77,
        ..Value::new("edited by pamoja")
    };
    assert!(sd.put_signed(k1, edit).await.unwrap() > 0);
    let got = tokio::task::block_in_place(|| py.get(&k1));
    assert!(
        got.iter().any(|v| v["data"] == "edited by pamoja"
            && v["text"].as_str().unwrap().contains("signed (v1)")),
        "{got:?}"
    );
    let k2 = InfoHash::get(b"pamoja tampered");
    let mut tampered = Value {
        id: 78,
        ..Value::new("signed by pamoja")
    };
    secure::sign(&mut tampered, me).unwrap();
    tampered.data = b"changed after signing".to_vec();
    assert_eq!(secure::verify(&tampered), Err(SecureError::BadSignature));
    assert!(sd.check(tampered.clone()).is_none());
    assert_eq!(sd.counters().bad_signature, 1);
    let _ = runner.put(k2, tampered).await.unwrap();
    let got = tokio::task::block_in_place(|| py.get(&k2));
    assert!(
        got.is_empty(),
        "a bad signature reached OpenDHT's caller: {got:?}"
    );

    // Encrypted to the python node: it decrypts; one encrypted to us stays hidden from it.
    let k3 = InfoHash::get(b"pamoja encrypted");
    let secret = Value {
        id: 79,
        ..Value::new(format!("secret for python {}", "x".repeat(600)))
    };
    assert!(sd.put_encrypted(k3, their_id, secret).await.unwrap() > 0);
    let not_theirs = secure::encrypt(
        &Value {
            id: 80,
            ..Value::new("not for python")
        },
        me,
        me.public_key(),
    )
    .unwrap();
    assert!(runner.put(k3, not_theirs).await.unwrap() > 0);
    let got = tokio::task::block_in_place(|| py.get(&k3));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0]["data"]
            .as_str()
            .unwrap()
            .starts_with("secret for python")
    );
    assert_eq!(got[0]["owner"], my_id.to_string());
    assert!(
        got[0]["text"].as_str().unwrap().contains("decrypted"),
        "{got:?}"
    );
    drop(py);

    // 2. The real dhtnode with an identity signs, and encrypts to our key (it finds the
    // certificate we published).
    let mut child = lab
        .netns()
        .command(DHTNODE)
        .args(["-i", "-p", "4230", "-b", BOOTSTRAP])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_line = |needle: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!("dhtnode -i never printed {needle:?}"),
            }
        }
    };
    let pk_line = wait_line("Public key ID");
    let their_id: InfoHash = pk_line
        .rsplit(' ')
        .next()
        .unwrap()
        .trim()
        .parse()
        .expect("dhtnode's public key id");
    tokio::time::sleep(Duration::from_secs(2)).await;
    writeln!(stdin, "s opendht-signed signed-by-opendht").unwrap();
    let l = tokio::task::block_in_place(|| wait_line("Put signed"));
    assert!(l.contains("success"), "{l}");
    writeln!(stdin, "e opendht-encrypted {my_id} sealed-by-opendht").unwrap();
    let l = tokio::task::block_in_place(|| wait_line("Put encrypted"));
    assert!(l.contains("success"), "{l}");

    let values = get_until(&runner, InfoHash::get(b"opendht-signed"), |v| !v.is_empty()).await;
    let v = values.first().expect("the signed value");
    let owner = secure::verify(v).expect("OpenDHT's signature verifies");
    assert_eq!(secure::key_id(&owner), their_id);
    assert_eq!(v.data, b"signed-by-opendht");
    let checked = sd.get(InfoHash::get(b"opendht-signed")).await.unwrap();
    assert!(
        checked
            .iter()
            .any(|c| c.owner == Some(their_id) && !c.encrypted)
    );

    let values = get_until(&runner, InfoHash::get(b"opendht-encrypted"), |v| {
        !v.is_empty()
    })
    .await;
    let v = values.first().expect("the encrypted value");
    assert!(v.cypher.is_some());
    let opened = secure::decrypt(v, me).expect("we decrypt what OpenDHT encrypted to us");
    assert_eq!(opened.data, b"sealed-by-opendht");
    assert_eq!(opened.owner_id(), Some(their_id));
    assert_eq!(opened.recipient, Some(my_id));
    let checked = sd.get(InfoHash::get(b"opendht-encrypted")).await.unwrap();
    assert!(
        checked.iter().any(|c| c.encrypted
            && c.value.data == b"sealed-by-opendht"
            && c.owner == Some(their_id))
    );
    // Nobody else can.
    let stranger = pamoja::identity::PrivateKey::generate().unwrap();
    assert_eq!(secure::decrypt(v, &stranger), Err(SecureError::NotForUs));

    // 3. The dhtnode example's view of the same values.
    let bin = common::example_bin("dhtnode");
    let archive = lab.dir().join("me.gz");
    account.archive().write_file(&archive, None).unwrap();
    let device_key = account.device().expect("a device").key.public_key().clone();
    let to_device = secure::encrypt(
        &Value {
            id: 90,
            ..Value::new("for my device")
        },
        me,
        &device_key,
    )
    .unwrap();
    assert!(
        runner
            .put(InfoHash::get(b"to-my-device"), to_device)
            .await
            .unwrap()
            > 0
    );
    let run = |args: &[&str]| {
        let out = lab
            .netns()
            .command("/usr/bin/timeout")
            .arg("60")
            .arg(&bin)
            .args(["-b", BOOTSTRAP])
            .args(args)
            .output()
            .unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (out.status.success(), lines)
    };
    let (ok, lines) = run(&["certificate", &my_id.to_string()]);
    assert!(ok);
    assert_eq!(lines[0]["id"], my_id.to_string());
    assert!(
        lines[0]["pem"]
            .as_str()
            .unwrap()
            .contains(account.account_cert().to_pem().trim())
    );
    let (ok, lines) = run(&[
        "certificate",
        &secure::long_key_location(me.public_key()).to_string(),
    ]);
    assert!(ok && lines.len() == 1, "found at the 3.7.2+ location too");
    let (ok, _) = run(&[
        "certificate",
        &InfoHash::random().to_string(),
        "--timeout",
        "3",
    ]);
    assert!(!ok, "no certificate: non-zero exit");
    let (_, lines) = run(&["get", "opendht-signed", "--timeout", "5"]);
    assert!(
        lines.iter().any(|l| l["data"] == "signed-by-opendht"
            && l["signed"] == true
            && l["owner"] == their_id.to_string()),
        "{lines:?}"
    );
    let (_, lines) = run(&["get", "to-my-device", "--timeout", "5"]);
    assert!(
        lines.is_empty(),
        "encrypted values need --identity: {lines:?}"
    );
    let archive_arg = archive.to_str().unwrap();
    let (_, lines) = run(&[
        "--identity",
        archive_arg,
        "get",
        "to-my-device",
        "--timeout",
        "5",
    ]);
    assert!(
        lines.iter().any(|l| l["data"] == "for my device"
            && l["encrypted"] == true
            && l["owner"] == my_id.to_string()),
        "{lines:?}"
    );

    let _ = child.kill();
    let _ = child.wait();
}

/// A real jamid registers on the lab's DHT: our node finds its signed DeviceAnnouncement at
/// its Jami ID and its device certificate at the device's short id, and checks both against
/// the Jami ID (signature by the account key, chain device -> account -> CA).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jamid_announcement_and_device_certificate() {
    use pamoja::identity::announce::DeviceAnnouncement;
    if !available("jamid_announcement_and_device_certificate") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.start_dhtnode(4222).await.unwrap();
    let jamid = lab.start_jamid("secure").await.unwrap();
    let account = jamid.add_account(4222, &[]).await.unwrap();
    jamid
        .wait_registered(&account, Duration::from_secs(60))
        .await
        .unwrap();
    let jami_id: InfoHash = jamid.jami_id(&account).await.unwrap().parse().unwrap();
    let runner = common::lab_node(&lab).await;

    // The announcement: signed by the account key, found at the Jami ID.
    let values = get_until(&runner, jami_id, |v| {
        v.iter()
            .any(|x| secure::verify(x).is_ok_and(|k| secure::key_id(&k) == jami_id))
    })
    .await;
    let signed = values
        .iter()
        .find(|x| secure::verify(x).is_ok_and(|k| secure::key_id(&k) == jami_id))
        .expect("jamid's DeviceAnnouncement, signed by its account key");
    let announcement = DeviceAnnouncement::unpack(&signed.data).unwrap();
    let dev: InfoHash = announcement.dev.to_string().parse().unwrap();
    // jamid names its device by the long id (SHA-256 of the key the announcement carries).
    assert_eq!(
        jamid.device_id(&account).await.unwrap().to_lowercase(),
        announcement.pk.device_id().to_string()
    );
    assert_eq!(announcement.dev, announcement.pk.short_device_id());

    // The device certificate at the short device id, its chain up to the Jami ID.
    let values = get_until(&runner, dev, |v| {
        v.iter()
            .any(|x| secure::certificate_from_value(x, &dev).is_some())
    })
    .await;
    let chain = values
        .iter()
        .find_map(|x| secure::certificate_from_value(x, &dev))
        .expect("jamid's device certificate on the DHT");
    assert!(chain.len() >= 2, "device and account certificates");
    assert_eq!(chain[0].public_key(), &announcement.pk);
    assert_eq!(chain[1].jami_id().to_string(), jami_id.to_string());
    pamoja::identity::verify_device_chain(
        &chain[0],
        &chain[1],
        chain.get(2),
        None,
        std::time::SystemTime::now(),
    )
    .expect("the device chain verifies");
}
