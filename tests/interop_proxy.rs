//! The DHT proxy with the real thing, in the lab: our proxy client (the `dhtnode` example with
//! `--proxyclient`) through OpenDHT's own proxy server (`dhtnode --proxyserver`), and a real
//! jamid whose account goes through our proxy server (`Account.proxyEnabled`): it registers,
//! and its signed device announcement is then readable from the UDP DHT.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use pamoja::dht::{InfoHash, Value, secure};
use pamoja::identity::announce::DeviceAnnouncement;
use pamoja_lab::{DHTNODE, Lab, available};

const PROXY: &str = "127.0.0.1:8000";

/// Waits until something accepts TCP connections on `addr` inside the lab.
fn wait_tcp(lab: &Lab, addr: &'static str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lab
        .netns()
        .run_inside(move || std::net::TcpStream::connect(addr).is_ok())
        .unwrap()
    {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET path` on the proxy, from inside the lab.
fn proxy_get(lab: &Lab, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n");
    lab.netns()
        .run_inside(move || {
            let mut s = std::net::TcpStream::connect(PROXY).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_proxy_client_through_opendht_proxy_server() {
    if !available("our_proxy_client_through_opendht_proxy_server") {
        return;
    }
    let bin = common::example_bin("dhtnode");
    let bin = bin.to_str().unwrap().to_owned();
    let mut lab = Lab::new().unwrap();
    lab.start_udp_service(
        "dhtnode-proxy",
        DHTNODE,
        &["-s", "--proxyserver", "8000"],
        4222,
    )
    .await
    .unwrap();
    wait_tcp(&lab, PROXY);
    let node = common::lab_node(&lab).await;
    let url = format!("http://{PROXY}");
    let ours = |args: &[&str]| {
        lab.netns()
            .command("/usr/bin/timeout")
            .arg("60")
            .arg(&bin)
            .args(["--proxyclient", &url])
            .args(args)
            .output()
            .unwrap()
    };
    // Get through OpenDHT's proxy what was put over UDP.
    let key = InfoHash::get(b"proxy-get");
    assert!(node.put(key, Value::new("over udp")).await.unwrap() > 0);
    let out = ours(&["get", &key.to_string(), "--timeout", "5"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\"data\":\"over udp\""),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Put through it; found over UDP.
    let key2 = InfoHash::get(b"proxy-put");
    let out = ours(&["put", &key2.to_string(), "through the proxy"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found = node.get(key2).await.unwrap();
    assert!(
        found.iter().any(|v| v.data == b"through the proxy"),
        "{found:?}"
    );
    // Listen through it: a value put over UDP afterwards arrives.
    let key3 = InfoHash::get(b"proxy-listen");
    let child = lab
        .netns()
        .command("/usr/bin/timeout")
        .arg("60")
        .arg(&bin)
        .args([
            "--proxyclient",
            &url,
            "listen",
            &key3.to_string(),
            "--count",
            "1",
            "--timeout",
            "30",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        node.put(key3, Value::new("pushed to the listener"))
            .await
            .unwrap()
            > 0
    );
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("pushed to the listener"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jamid_registers_through_our_proxy() {
    if !available("jamid_registers_through_our_proxy") {
        return;
    }
    let bin = common::example_bin("dhtnode");
    let bin = bin.to_str().unwrap().to_owned();
    let mut lab = Lab::new().unwrap();
    lab.start_dhtnode(4222).await.unwrap();
    lab.start_udp_service(
        "pamoja-proxy",
        &bin,
        &["-s", "-b", "127.0.0.1:4222", "--proxyserver", "8000"],
        4300,
    )
    .await
    .unwrap();
    wait_tcp(&lab, PROXY);
    let jamid = lab.start_jamid("proxied").await.unwrap();
    let account = jamid
        .add_account(
            4222,
            &[
                ("Account.proxyEnabled", "true"),
                ("Account.proxyServer", PROXY),
            ],
        )
        .await
        .unwrap();
    if let Err(e) = jamid
        .wait_registered(&account, Duration::from_secs(120))
        .await
    {
        panic!(
            "{e}\n--- jamid ---\n{}\n--- proxy ---\n{}",
            lab.log_tail("jamid-proxied", 60),
            lab.log_tail("pamoja-proxy", 20)
        );
    }
    let details = jamid.volatile_details(&account).await.unwrap();
    assert_eq!(
        details.get("Account.proxyServer").map(String::as_str),
        Some(PROXY),
        "{details:?}"
    );
    // It went through us: puts and listens on our proxy.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = proxy_get(&lab, "/node/stats");
        let count = |field: &str| -> u64 {
            stats
                .split(&format!("\"{field}\":"))
                .nth(1)
                .and_then(|r| r.split([',', '}']).next())
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0)
        };
        if count("putCount") > 0 && count("listenCount") > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "jamid never used the proxy: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Its device announcement, put through our proxy, is on the UDP DHT.
    let jami_id: InfoHash = jamid.jami_id(&account).await.unwrap().parse().unwrap();
    let node = common::lab_node(&lab).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let announcement = loop {
        let values = node.get(jami_id).await.unwrap();
        if let Some(a) = values.iter().find_map(|v| {
            let owner = secure::verify(v).ok()?;
            (secure::key_id(&owner) == jami_id).then(|| DeviceAnnouncement::unpack(&v.data).ok())?
        }) {
            break a;
        }
        assert!(
            Instant::now() < deadline,
            "no signed announcement at {jami_id}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        jamid.device_id(&account).await.unwrap().to_lowercase(),
        announcement.pk.device_id().to_string()
    );
}
