//! The DHT proxy on loopback: our proxy server over a small network of our nodes, and our
//! proxy client (a runner in proxy mode) through it; OpenDHT's error answers; 1,000
//! concurrent listeners; the listener limit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pamoja_dht::proxy::{ProxyConfig, serve};
use pamoja_dht::{Config, InfoHash, Runner, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Three nodes on loopback and a proxy server over the first; returns them and the proxy's
/// address.
async fn network(config: ProxyConfig) -> (Vec<Arc<Runner>>, SocketAddr) {
    let mut nodes: Vec<Arc<Runner>> = Vec::new();
    for i in 0..3 {
        let r = Runner::bind("127.0.0.1:0".parse().unwrap(), Config::default())
            .await
            .unwrap();
        if i > 0 {
            r.bootstrap(nodes[0].local_addr());
        }
        nodes.push(Arc::new(r));
    }
    // Until the first node knows the others.
    for _ in 0..100 {
        if nodes[0].stats().await.unwrap().good4 >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, nodes[0].clone(), config));
    (nodes, addr)
}

/// One HTTP/1.1 request on a fresh connection; the status line and the whole answer.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    http_from("127.0.0.1", addr, method, path, body).await
}

/// [`http`] from the loopback address `from` (all of 127/8 is this host's).
async fn http_from(
    from: &str,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String) {
    let mut s = connect_from(from, addr).await;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// One client cannot take every listener slot nor pile up permanent puts: past its share
/// it gets 503, and another client is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_gets_its_share_only() {
    let (_nodes, addr) = network(ProxyConfig {
        max_listeners_per_client: 20,
        max_permanent_per_client: 5,
        ..ProxyConfig::default()
    })
    .await;
    let mut held = Vec::new();
    for i in 0..20 {
        let mut s = connect_from("127.0.0.1", addr).await;
        s.write_all(format!("GET /key/k{i}/listen HTTP/1.1\r\nHost: proxy\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        held.push(s);
    }
    let (code, text) = http_from("127.0.0.1", addr, "GET", "/key/more/listen", b"").await;
    assert_eq!(code, 503, "{text}");
    let mut other = connect_from("127.0.0.2", addr).await;
    other
        .write_all(b"GET /key/more/listen HTTP/1.1\r\nHost: proxy\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    other.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200", "another client still listens");
    // Permanent puts: five kept for this client, the sixth refused, another client's kept.
    let put = |i: u32| format!(r#"{{"id": "{i}", "type": 0, "data": "aGk=", "permanent": true}}"#);
    for i in 1..=5 {
        let (code, text) = http_from("127.0.0.1", addr, "POST", "/key/p", put(i).as_bytes()).await;
        assert_eq!(code, 200, "{text}");
    }
    let (code, _) = http_from("127.0.0.1", addr, "POST", "/key/p", put(6).as_bytes()).await;
    assert_eq!(code, 503);
    // Putting one of its own again is a refresh, not a new one.
    let (code, _) = http_from("127.0.0.1", addr, "POST", "/key/p", put(3).as_bytes()).await;
    assert_eq!(code, 200);
    let (code, _) = http_from("127.0.0.2", addr, "POST", "/key/p", put(7).as_bytes()).await;
    assert_eq!(code, 200);
    let (_, stats) = http(addr, "GET", "/node/stats", b"").await;
    assert!(stats.contains("\"totalPermanentPuts\":6"), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_client_through_our_proxy_server() {
    let (nodes, addr) = network(ProxyConfig::default()).await;
    let client = Runner::proxy(&format!("http://{addr}")).unwrap();
    client.joined(Duration::from_secs(5)).await.unwrap();
    // Node info as OpenDHT's client reads it.
    let stats = client.stats().await.unwrap();
    assert_eq!(stats.id, nodes[0].id());
    assert!(stats.good4 >= 2, "{stats:?}");
    // A listen through the proxy sees a value put on the UDP side.
    let key = InfoHash::get(b"proxied");
    let mut listen = client.listen(key, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(nodes[2].put(key, Value::new("from udp")).await.unwrap() > 0);
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(pamoja_dht::runner::ListenEvent::Value(v)) = listen.next().await {
                if v.data == b"from udp" {
                    return v;
                }
            }
        }
    })
    .await
    .expect("the proxied listen saw the value");
    assert_eq!(seen.data, b"from udp");
    // A put through the proxy is found on the UDP side, and a get through the proxy finds
    // what the UDP side put.
    let mut v = Value::new("from the proxy client");
    v.user_type = "text/plain".into();
    assert_eq!(client.put(key, v).await.unwrap(), 1);
    let found = nodes[1].get(key).await.unwrap();
    assert!(
        found
            .iter()
            .any(|x| x.data == b"from the proxy client" && x.user_type == "text/plain")
    );
    let through = client.get(key).await.unwrap();
    assert!(through.iter().any(|x| x.data == b"from udp"), "{through:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_answers_like_opendht() {
    let (_nodes, addr) = network(ProxyConfig {
        max_body: 1024,
        ..ProxyConfig::default()
    })
    .await;
    let (code, text) = http(addr, "GET", "/node/info", b"").await;
    assert_eq!(code, 200);
    assert!(text.contains("\"node_id\"") && text.contains("\"public_ip\":\"127.0.0.1\""));
    assert!(
        text.contains("Access-Control-Allow-Origin: *")
            || text.contains("access-control-allow-origin: *")
    );
    let (code, text) = http(addr, "POST", "/key/abc", b"{not json").await;
    assert_eq!(code, 400);
    assert!(text.contains(r#"{"err:":"Incorrect JSON"}"#), "{text}");
    let (code, text) = http(addr, "POST", "/key/abc", b"").await;
    assert_eq!(code, 400);
    assert!(text.contains(r#"{"err":"Missing parameters"}"#), "{text}");
    let (code, _) = http(addr, "POST", "/key/abc", &vec![b' '; 4096]).await;
    assert_eq!(code, 413);
    let (code, _) = http(addr, "SUBSCRIBE", "/key/abc", b"{}").await;
    assert_eq!(code, 501);
    let (code, _) = http(addr, "GET", "/no/such/path", b"").await;
    assert_eq!(code, 404);
    let (code, text) = http(addr, "OPTIONS", "/abc", b"").await;
    assert_eq!(code, 200);
    assert!(
        text.to_lowercase()
            .contains("access-control-allow-methods: options, get, post, listen")
    );
    // A put, then a get of the same key by its text (hashed with SHA-1) and by its hex.
    let (code, text) = http(
        addr,
        "POST",
        "/key/greeting",
        br#"{"id": "77", "type": 0, "data": "aGVsbG8=", "utype": "text/plain"}"#,
    )
    .await;
    assert_eq!(code, 200, "{text}");
    assert!(text.contains(r#""id":"77""#));
    let hex = InfoHash::get(b"greeting").to_string();
    for path in [
        "/key/greeting".to_string(),
        format!("/key/{hex}"),
        format!("/{hex}"),
    ] {
        let (code, text) = http(addr, "GET", &path, b"").await;
        assert_eq!(code, 200);
        assert!(text.contains(r#""data":"aGVsbG8=""#), "{path}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_listeners_and_the_limit() {
    let (nodes, addr) = network(ProxyConfig {
        max_listeners: 1000,
        max_listeners_per_client: 1000,
        ..ProxyConfig::default()
    })
    .await;
    let mut conns = Vec::new();
    for _ in 0..1000 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /key/crowd/listen HTTP/1.1\r\nHost: proxy\r\n\r\n")
            .await
            .unwrap();
        conns.push(s);
    }
    // Every listener got its answer head, then the server counts 1,000.
    for s in &mut conns {
        let mut head = [0u8; 12];
        tokio::time::timeout(Duration::from_secs(20), s.read_exact(&mut head))
            .await
            .expect("answer")
            .unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
    }
    let (_, stats) = http(addr, "GET", "/node/stats", b"").await;
    assert!(stats.contains("\"listenCount\":1000"), "{stats}");
    // One more is refused while they are all there.
    let (code, text) = http(addr, "GET", "/key/other/listen", b"").await;
    assert_eq!(code, 503, "{text}");
    assert!(text.contains("Too many listeners"));
    // A value put on the DHT reaches every listener (through one shared DHT listen).
    assert!(
        nodes[2]
            .put(InfoHash::get(b"crowd"), Value::new("for everyone"))
            .await
            .unwrap()
            > 0
    );
    let want = b"Zm9yIGV2ZXJ5b25l"; // base64 of the data
    for s in &mut conns {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(want.len()).any(|w| w == want) {
            let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
                .await
                .expect("the value reached every listener")
                .unwrap();
            assert!(n > 0, "listener closed");
            got.extend_from_slice(&buf[..n]);
        }
    }
    // Hanging up frees the slots.
    drop(conns);
    let mut freed = false;
    for _ in 0..100 {
        let (_, stats) = http(addr, "GET", "/node/stats", b"").await;
        if stats.contains("\"listenCount\":0") {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "listener slots released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_with_an_identity_signs_and_encrypts() {
    use pamoja_dht::proxy::{router_with_identity, serve_router};
    use pamoja_dht::secure;
    use pamoja_dht::securedht::SecureDht;
    use pamoja_identity::{Account, PrivateKey};
    let (nodes, plain) = network(ProxyConfig::default()).await;
    let identity = |runner: Arc<Runner>| {
        let account = Account::create(|_| {}).unwrap();
        let device = account.device().unwrap();
        let key = PrivateKey::from_pkcs8_der(device.key.to_pkcs8_der()).unwrap();
        SecureDht::new(
            runner,
            key,
            vec![device.cert.clone(), account.account_cert().clone()],
        )
    };
    let server = Arc::new(identity(nodes[0].clone()));
    let client = Arc::new(identity(nodes[2].clone()));
    assert!(server.publish_certificate().await.unwrap() > 0);
    assert!(client.publish_certificate().await.unwrap() > 0);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_router(
        listener,
        router_with_identity(server.clone(), ProxyConfig::default()),
    ));
    // Signed by the server's identity, found verified over UDP.
    let (code, text) = http(
        addr,
        "POST",
        "/key/signed-here/sign",
        br#"{"data": "c2lnbmVk"}"#,
    )
    .await;
    assert_eq!(code, 200, "{text}");
    assert!(
        text.contains("\"owner\":\"-----BEGIN PUBLIC KEY-----"),
        "{text}"
    );
    let found = nodes[1].get(InfoHash::get(b"signed-here")).await.unwrap();
    let v = found
        .iter()
        .find(|v| v.data == b"signed")
        .expect("the signed value");
    assert_eq!(secure::key_id(&secure::verify(v).unwrap()), server.key_id());
    // Encrypted to the client's key: only the client reads it.
    let body = format!(r#"{{"data": "c2VjcmV0", "to": "{}"}}"#, client.key_id());
    let (code, text) = http(addr, "POST", "/key/sealed-here/encrypt", body.as_bytes()).await;
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("\"cypher\""), "{text}");
    let got = client.get(InfoHash::get(b"sealed-here")).await.unwrap();
    assert!(
        got.iter().any(|c| c.encrypted && c.value.data == b"secret"),
        "{got:?}"
    );
    // Without a destination; and on a proxy without an identity.
    let (code, text) = http(addr, "POST", "/key/x/encrypt", br#"{"data": "eA=="}"#).await;
    assert_eq!(code, 400);
    assert!(text.contains("No destination found"));
    let (code, _) = http(plain, "POST", "/key/x/sign", br#"{"data": "eA=="}"#).await;
    assert_eq!(code, 404);
}
