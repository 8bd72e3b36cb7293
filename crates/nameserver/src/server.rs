//! The name server over HTTP: `GET /name/{name}`, `GET /addr/{addr}`, `POST /name/{name}`,
//! with the JSON of the protocol. Errors are JSON too: `{"error": "..."}` with a 4xx status
//! (and `"success": false` on registrations), so jamid maps them to its result codes: 400 bad
//! input, 401 a key or signature that does not check, 409 a name or address already taken,
//! 413 a body too large, 429 too many registrations from one address.
//!
//! Registrations never change: once a name is registered, lookups are served from memory.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::name::Name;
use crate::record::{RecordError, Registration, strip_0x};
use crate::store::{Entry, Inserted, Store};

/// Server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Registrations allowed per client address per minute (also the burst); 0: no limit.
    pub registrations_per_minute: u32,
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Most registrations kept in memory for lookups.
    pub cache_entries: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            registrations_per_minute: 10,
            max_body: 16 * 1024,
            cache_entries: 100_000,
        }
    }
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

struct Inner {
    store: Store,
    config: Config,
    by_name: RwLock<HashMap<String, Arc<Entry>>>,
    by_addr: RwLock<HashMap<String, Arc<Entry>>>,
    limiter: Mutex<HashMap<IpAddr, Bucket>>,
}

type Shared = Arc<Inner>;

fn error(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "error": text }))).into_response()
}

fn refused(status: StatusCode, text: &str) -> Response {
    (
        status,
        axum::Json(json!({ "success": false, "error": text })),
    )
        .into_response()
}

fn lookup_answer(e: &Entry) -> Response {
    axum::Json(json!({
        "name": e.name,
        "addr": e.addr,
        "publickey": e.publickey,
        "signature": e.signature,
    }))
    .into_response()
}

impl Inner {
    fn remember(&self, e: Entry) -> Arc<Entry> {
        let e = Arc::new(e);
        if let (Ok(mut names), Ok(mut addrs)) = (self.by_name.write(), self.by_addr.write()) {
            if names.len() >= self.config.cache_entries {
                names.clear();
                addrs.clear();
            }
            names.insert(e.name.clone(), e.clone());
            addrs.insert(e.addr.clone(), e.clone());
        }
        e
    }

    /// Counts a registration attempt from `ip`'s source (the address, or the /64 of an
    /// IPv6 one: one host holds a whole /64); false when over the limit, or when
    /// [`MAX_SOURCES`] sources are already counted this minute.
    fn allow(&self, ip: IpAddr) -> bool {
        let ip = source(ip);
        let per_minute = self.config.registrations_per_minute;
        if per_minute == 0 {
            return true;
        }
        let quota = f64::from(per_minute);
        let now = Instant::now();
        let Ok(mut buckets) = self.limiter.lock() else {
            return false;
        };
        if buckets.len() >= MAX_SOURCES && !buckets.contains_key(&ip) {
            buckets.retain(|_, b| now.duration_since(b.last).as_secs() < 60);
            if buckets.len() >= MAX_SOURCES {
                return false;
            }
        }
        let b = buckets.entry(ip).or_insert(Bucket {
            tokens: quota,
            last: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * quota / 60.0).min(quota);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

async fn lookup_name(State(s): State<Shared>, Path(name): Path<String>) -> Response {
    let Ok(name) = Name::parse(&name) else {
        return error(StatusCode::BAD_REQUEST, "invalid name");
    };
    if let Some(e) = s
        .by_name
        .read()
        .ok()
        .and_then(|m| m.get(name.as_str()).cloned())
    {
        return lookup_answer(&e);
    }
    match s.store.by_name(name.as_str()).await {
        Ok(Some(e)) => lookup_answer(&s.remember(e)),
        Ok(None) => error(StatusCode::NOT_FOUND, "name not found"),
        Err(e) => {
            tracing::warn!("lookup of {name}: {e}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "database error")
        }
    }
}

async fn lookup_addr(State(s): State<Shared>, Path(addr): Path<String>) -> Response {
    let addr = strip_0x(&addr).to_ascii_lowercase();
    if addr.len() != 40 || !addr.bytes().all(|b| b.is_ascii_hexdigit()) {
        return error(StatusCode::BAD_REQUEST, "invalid address");
    }
    if let Some(e) = s.by_addr.read().ok().and_then(|m| m.get(&addr).cloned()) {
        return axum::Json(json!({ "name": e.name })).into_response();
    }
    match s.store.by_addr(&addr).await {
        Ok(Some(e)) => {
            let e = s.remember(e);
            axum::Json(json!({ "name": e.name })).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "address not found"),
        Err(e) => {
            tracing::warn!("lookup of {addr}: {e}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "database error")
        }
    }
}

/// Sources whose registrations are counted at once.
pub const MAX_SOURCES: usize = 10_000;

/// The source an address counts as: itself, or its /64 for IPv6.
fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(a) => {
            let s = a.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
    }
}

async fn register(
    State(s): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    body: axum::body::Body,
) -> Response {
    // The quota is checked before the body is read: a client over it costs no upload.
    if !s.allow(peer.ip()) {
        return refused(StatusCode::TOO_MANY_REQUESTS, "too many registrations");
    }
    let body = match axum::body::to_bytes(body, s.config.max_body).await {
        Ok(b) => b,
        Err(_) => {
            return refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                "unreadable or oversized body",
            );
        }
    };
    let Ok(name) = Name::parse(&name) else {
        return refused(StatusCode::BAD_REQUEST, "invalid name");
    };
    let reg: Registration = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(_) => return refused(StatusCode::BAD_REQUEST, "malformed registration"),
    };
    // RSA verification is the costly part: off the reactor.
    let checked = {
        let (reg, name) = (reg.clone(), name.clone());
        tokio::task::spawn_blocking(move || reg.verify(&name).map(|_| ())).await
    };
    match checked {
        Ok(Ok(())) => {}
        Ok(Err(RecordError::Malformed(what))) => {
            return refused(StatusCode::BAD_REQUEST, &format!("malformed {what}"));
        }
        Ok(Err(e)) => return refused(StatusCode::UNAUTHORIZED, &e.to_string()),
        Err(_) => return refused(StatusCode::INTERNAL_SERVER_ERROR, "verification failed"),
    }
    match s.store.insert(name.as_str(), &reg).await {
        Ok(Inserted::New | Inserted::Same) => {
            tracing::info!("registered {name} for {}", reg.addr);
            axum::Json(json!({ "success": true })).into_response()
        }
        Ok(Inserted::NameTaken) => refused(StatusCode::CONFLICT, "name already taken"),
        Ok(Inserted::AddressTaken) => refused(StatusCode::CONFLICT, "address already has a name"),
        Err(e) => {
            tracing::warn!("registration of {name}: {e}");
            refused(StatusCode::INTERNAL_SERVER_ERROR, "database error")
        }
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint")
}

/// The HTTP routes over `store`.
pub fn router(store: Store, config: Config) -> Router {
    let max_body = config.max_body;
    let state = Arc::new(Inner {
        store,
        config,
        by_name: RwLock::default(),
        by_addr: RwLock::default(),
        limiter: Mutex::default(),
    });
    Router::new()
        .route("/name/{name}", get(lookup_name).post(register))
        .route("/addr/{addr}", get(lookup_addr))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Serves the name server on `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    config: Config,
) -> std::io::Result<()> {
    let app = router(store, config).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_ipv6_host_is_one_source() {
        let inner = Inner {
            store: Store::open("sqlite::memory:").await.unwrap(),
            config: Config {
                registrations_per_minute: 3,
                ..Config::default()
            },
            by_name: RwLock::default(),
            by_addr: RwLock::default(),
            limiter: Mutex::default(),
        };
        // Each request from another address of the same /64 used to get a fresh quota.
        let allowed = (1..=20u16)
            .filter(|i| inner.allow(IpAddr::from([0x2001, 0xdb8, 1, 2, 0, 0, 0, *i])))
            .count();
        assert_eq!(allowed, 3);
        // Another /64 has its own.
        assert!(inner.allow(IpAddr::from([0x2001, 0xdb8, 1, 3, 0, 0, 0, 1])));
    }
}
