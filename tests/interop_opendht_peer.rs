//! SecureDht both ways with a C++ peer built on Debian's libopendht (2.4.12), in the lab: it
//! puts signed and encrypted values that our node verifies and decrypts, and reads ours the
//! same way; each side finds the other's certificate at both locations (SHA-1 of the key, as
//! 2.4.12 publishes, and SHA-1 of its SHA-256, as 3.7.2+ does).

mod common;
mod peers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pamoja::dht::securedht::SecureDht;
use pamoja::dht::{InfoHash, Value, secure};
use pamoja::identity::{Account, PrivateKey};
use pamoja_lab::{Lab, available};

fn peer_binary(test: &str) -> Option<std::path::PathBuf> {
    let dir = std::env::current_exe().unwrap();
    let target = dir.parent().unwrap().parent().unwrap().to_path_buf();
    match peers::build(&target) {
        Ok(bin) => Some(bin),
        Err(why) if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) => {
            panic!("{test}: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED {test}: {why} (scripts/install-deps)");
            None
        }
    }
}

/// Retries `f` until it gives `Some`, for up to 30 s (the DHT needs a moment).
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(t) = f().await {
            return t;
        }
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_and_encrypted_with_a_libopendht_peer() {
    if !available("signed_and_encrypted_with_a_libopendht_peer") {
        return;
    }
    let Some(bin) = peer_binary("signed_and_encrypted_with_a_libopendht_peer") else {
        return;
    };
    let mut lab = Lab::new().unwrap();
    lab.start_dhtnode(4222).await.unwrap();
    let runner = Arc::new(common::lab_node(&lab).await);
    let account = Account::create(|_| {}).unwrap();
    let device = account.device().expect("a device");
    let key = PrivateKey::from_pkcs8_der(device.key.to_pkcs8_der()).unwrap();
    let sd = std::sync::Arc::new(SecureDht::new(
        runner.clone(),
        key,
        vec![device.cert.clone(), account.account_cert().clone()],
    ));
    let my_id = sd.key_id();
    let my_long = secure::long_key_location(device.cert.public_key());
    assert!(sd.publish_certificate().await.unwrap() > 0);

    let mut cmd = lab.netns().command(bin.to_str().unwrap());
    cmd.args(["127.0.0.1", "4222"]);
    let mut peer = tokio::task::block_in_place(|| peers::Peer::start(cmd));
    let ids = tokio::task::block_in_place(|| peer.ask("id"));
    let mut parts = ids.split_whitespace().skip(1);
    let their_id: InfoHash = parts.next().unwrap().parse().unwrap();
    let their_long: InfoHash = parts.next().unwrap().parse().unwrap();

    // Its certificate, at the 2.4.12 location it publishes on start...
    let chain = eventually("the peer's certificate at its key id", || async {
        sd.find_certificate(their_id).await.unwrap()
    })
    .await;
    assert_eq!(secure::key_id(chain[0].public_key()), their_id);
    // ...and at the 3.7.2+ location once it puts it there.
    assert_eq!(
        tokio::task::block_in_place(|| peer.ask("publish_long")),
        "ok 1"
    );
    let chain = eventually("the peer's certificate at its long location", || async {
        sd.find_certificate(their_long).await.unwrap()
    })
    .await;
    assert_eq!(secure::key_id(chain[0].public_key()), their_id);
    // Ours, found by the peer: findCertificate at our key id, and a get at our long location.
    assert_eq!(
        tokio::task::block_in_place(|| peer.ask(&format!("find_cert {my_id}"))),
        format!("cert {my_id}")
    );
    let at_long = tokio::task::block_in_place(|| peer.ask_lines(&format!("get_cert_at {my_long}")));
    assert!(at_long.contains(&format!("cert {my_id}")), "{at_long:?}");

    // The peer signs; we verify.
    let k1 = InfoHash::get(b"signed by libopendht");
    assert_eq!(
        tokio::task::block_in_place(|| peer.ask(&format!("put_signed {k1} signed by opendht"))),
        "ok 1"
    );
    let got = eventually("the peer's signed value", || async {
        sd.get(k1)
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.value.data == b"signed by opendht")
    })
    .await;
    assert_eq!(got.owner, Some(their_id));
    assert!(!got.encrypted);
    // The peer encrypts to us; we decrypt.
    let k2 = InfoHash::get(b"encrypted by libopendht");
    assert_eq!(
        tokio::task::block_in_place(
            || peer.ask(&format!("put_encrypted {k2} {my_id} secret for pamoja"))
        ),
        "ok 1"
    );
    let got = eventually("the peer's encrypted value", || async {
        sd.get(k2).await.unwrap().into_iter().find(|c| c.encrypted)
    })
    .await;
    assert_eq!(got.value.data, b"secret for pamoja");
    assert_eq!(got.owner, Some(their_id));

    // We sign; the peer's SecureDht returns it with our key as owner.
    let k3 = InfoHash::get(b"signed by pamoja for libopendht");
    assert!(
        sd.put_signed(k3, Value::new("signed by pamoja"))
            .await
            .unwrap()
            > 0
    );
    let lines = tokio::task::block_in_place(|| peer.ask_lines(&format!("get {k3}")));
    assert!(
        lines.contains(&format!("value {my_id} 0 {}", hex("signed by pamoja"))),
        "{lines:?}"
    );
    // We encrypt to the peer; it decrypts.
    let k4 = InfoHash::get(b"encrypted by pamoja for libopendht");
    assert!(
        sd.put_encrypted(k4, their_id, Value::new("secret for opendht"))
            .await
            .unwrap()
            > 0
    );
    let lines = tokio::task::block_in_place(|| peer.ask_lines(&format!("get {k4}")));
    assert!(
        lines.contains(&format!("value {my_id} 1 {}", hex("secret for opendht"))),
        "{lines:?}"
    );
    // A value encrypted to someone else never reaches the peer's caller.
    let k5 = InfoHash::get(b"encrypted to nobody here");
    assert!(
        sd.put_encrypted(k5, my_id, Value::new("not for the peer"))
            .await
            .unwrap()
            > 0
    );
    let lines = tokio::task::block_in_place(|| peer.ask_lines(&format!("get {k5}")));
    assert!(lines.is_empty(), "{lines:?}");
}
