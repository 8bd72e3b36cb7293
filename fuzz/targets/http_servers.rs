//! The HTTP servers' handlers fed arbitrary requests: the DHT proxy's REST API and the name
//! server's. The input is `[method][path length][path][body]`. No panic, every request
//! answered (within a second: the proxy's DHT has no peers to wait for).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use tower::ServiceExt;

const METHODS: &[&str] = &[
    "GET",
    "POST",
    "PUT",
    "OPTIONS",
    "SUBSCRIBE",
    "DELETE",
    "LISTEN",
];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

fn routers() -> &'static (axum::Router, axum::Router) {
    static R: OnceLock<(axum::Router, axum::Router)> = OnceLock::new();
    R.get_or_init(|| {
        runtime().block_on(async {
            let runner = pamoja_dht::Runner::bind(
                "127.0.0.1:0".parse().expect("an address"),
                pamoja_dht::Config::default(),
            )
            .await
            .expect("a runner");
            let proxy = pamoja_dht::proxy::server::router(
                Arc::new(runner),
                pamoja_dht::proxy::server::ProxyConfig::default(),
            );
            let store = pamoja_nameserver::store::Store::open("sqlite::memory:")
                .await
                .expect("a store");
            let names = pamoja_nameserver::server::router(
                store,
                pamoja_nameserver::server::Config::default(),
            );
            (proxy, names)
        })
    })
}

/// One input.
pub fn run(data: &[u8]) {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let Some((&n, rest)) = rest.split_first() else {
        return;
    };
    let (path, body) = rest.split_at(rest.len().min(usize::from(n)));
    let path = format!("/{}", String::from_utf8_lossy(path).trim_start_matches('/'));
    let (proxy, names) = routers();
    for router in [proxy, names] {
        let Ok(mut req) = Request::builder()
            .method(METHODS[usize::from(m) % METHODS.len()])
            .uri(path.as_str())
            .header("content-type", "application/json")
            .body(Body::from(body.to_vec()))
        else {
            return;
        };
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 4000))));
        let answered = runtime().block_on(async {
            tokio::time::timeout(Duration::from_secs(1), router.clone().oneshot(req)).await
        });
        assert!(answered.is_ok(), "{path}: no answer within a second");
    }
}
