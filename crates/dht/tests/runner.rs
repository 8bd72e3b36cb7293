//! Runners on real UDP sockets on loopback: a small IPv6 network (`::1`) puts and gets.

use std::time::Duration;

use pamoja_dht::{Config, InfoHash, Runner, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_network_on_loopback() {
    let first = match Runner::bind("[::1]:0".parse().unwrap(), Config::default()).await {
        Ok(r) => r,
        Err(e) => {
            // Only a machine without IPv6 loopback lands here.
            assert!(
                std::env::var_os("CI").is_none(),
                "no IPv6 loopback in CI: {e}"
            );
            eprintln!("SKIPPED an_ipv6_network_on_loopback: {e}");
            return;
        }
    };
    let mut nodes = vec![first];
    for _ in 0..5 {
        let r = Runner::bind("[::1]:0".parse().unwrap(), Config::default())
            .await
            .unwrap();
        r.bootstrap(nodes[0].local_addr());
        nodes.push(r);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let key = InfoHash::get(b"over ipv6");
    let stored = nodes[2].put(key, Value::new("v6 value")).await.unwrap();
    assert!(stored > 0);
    let found = nodes[5].get(key).await.unwrap();
    assert!(found.iter().any(|v| v.data == b"v6 value"), "{found:?}");
    let s = nodes[5].stats().await.unwrap();
    assert!(s.good6 > 0 && s.nodes4 == 0, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_is_signalled_once_a_node_answers() {
    let lone = Runner::bind("127.0.0.1:0".parse().unwrap(), Config::default())
        .await
        .unwrap();
    let err = lone.joined(Duration::from_millis(200)).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);

    // A node of our own making, with a seeded random source.
    let node = pamoja_dht::Node::with_random(
        Config::default(),
        pamoja_dht::random::SeededRandom::new([5; 32]),
    );
    let id = node.id();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let other = Runner::from_node(socket, node).unwrap();
    assert_eq!(other.id(), id);
    other.bootstrap(lone.local_addr());
    let t0 = std::time::Instant::now();
    other.joined(Duration::from_secs(10)).await.unwrap();
    // The answer to the bootstrap ping is enough: far less than a maintenance period.
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    let s = other.stats().await.unwrap();
    assert!(s.good4 > 0, "{s:?}");
    // Already joined: at once.
    other.joined(Duration::ZERO).await.unwrap();
}

#[cfg(feature = "proxy")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_through_an_unreachable_proxy_times_out() {
    // Nothing listens on port 1.
    let client = Runner::proxy("http://127.0.0.1:1").unwrap();
    let t0 = std::time::Instant::now();
    let err = client.joined(Duration::from_millis(600)).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
}
