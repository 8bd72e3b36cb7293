//! The proxy server: OpenDHT's REST API over a [`Runner`], for devices that cannot keep a
//! DHT socket alive (`dhtnode --proxyserver PORT`).
//!
//! | request | answer |
//! |---|---|
//! | `GET /`, `GET /node/info` | `{"node_id", "ipv4": {good, dubious, incoming}, "ipv6": …, "ops", "public_ip"}` |
//! | `GET /node/stats` | `{listenCount, putCount, totalPermanentPuts, pushListenersCount, requestRate, nodeInfo}` |
//! | `GET /key/:hash`, `GET /:hash` | the values found, one JSON object per line, streamed; ends with the lookup |
//! | `POST /key/:hash`, `POST /:hash` | puts the JSON value (`"permanent": …` keeps it on the DHT for 24 h); answers the value stored |
//! | `GET /key/:hash/listen` | current and future values, one per line, `"expired": true` for removals; until the client hangs up |
//! | `OPTIONS /:hash`, `GET /key/:hash/options` | the methods allowed |
//! | `POST /key/:hash/sign`, `POST /key/:hash/encrypt` | with a server identity ([`router_with_identity`]): the server signs the value, or encrypts it to the key id in `"to"`, and puts it |
//!
//! `:hash` is 40 hex digits, or anything else, hashed with SHA-1. Errors are JSON with
//! OpenDHT's words: 400 `{"err:":"Incorrect JSON"}` (sic) or `{"err":"Missing parameters"}`,
//! 413 for a body over the limit, 502 `{"err":"Put failed"}`, 503 when the listener limit or
//! the permanent-put limit is reached, in all or for the client (an IPv4 address or IPv6 /64:
//! one client cannot take every slot). Push notifications (SUBSCRIBE) are not offered: 501.
//!
//! Listeners of one key share one DHT listen: the values it reported are kept and a new
//! listener gets them first. Each listener has a bounded queue; one that does not read is
//! dropped rather than buffered without end.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value as Json, json};
use tokio::sync::mpsc;

use crate::infohash::InfoHash;
use crate::json::{from_json, to_json};
use crate::runner::{ListenEvent, Runner};
use crate::securedht::SecureDht;
use crate::value::Value;

/// Limits of a proxy server.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Largest request body (64 KiB: a DHT value is at most 64 KB on the wire).
    pub max_body: usize,
    /// Listeners open at once, over all keys (10,000).
    pub max_listeners: usize,
    /// Lines queued for one listener before it is dropped as too slow (1,024).
    pub listener_queue: usize,
    /// How long a permanent put is kept on the DHT (24 h, OpenDHT's `OP_TIMEOUT`).
    pub permanent_for: Duration,
    /// How often permanent puts are put again (5 min: before the shortest value lifetime).
    pub republish_every: Duration,
    /// Listeners one client (an IPv4 address or IPv6 /64) may hold open (256).
    pub max_listeners_per_client: usize,
    /// Permanent puts kept, over all clients (10,000) and per client (128).
    pub max_permanent: usize,
    /// See [`ProxyConfig::max_permanent`].
    pub max_permanent_per_client: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            max_body: 64 * 1024,
            max_listeners: 10_000,
            listener_queue: 1024,
            permanent_for: Duration::from_secs(24 * 3600),
            republish_every: Duration::from_secs(300),
            max_listeners_per_client: 256,
            max_permanent: 10_000,
            max_permanent_per_client: 128,
        }
    }
}

/// A listen shared by the listeners of one key.
struct Shared {
    values: HashMap<u64, Value>,
    subscribers: Vec<mpsc::Sender<Bytes>>,
}

struct Inner {
    runner: Arc<Runner>,
    config: ProxyConfig,
    listeners: AtomicUsize,
    puts: AtomicU64,
    requests: AtomicU64,
    shared: Mutex<HashMap<InfoHash, Arc<Mutex<Shared>>>>,
    /// Permanent puts: (key, value id) → (value, until, the client's source).
    permanent: Mutex<HashMap<(InfoHash, u64), Kept>>,
    /// Listeners open per client source.
    listeners_by_client: Mutex<HashMap<IpAddr, usize>>,
    /// The server's identity, for signed and encrypted puts on behalf of clients.
    identity: Option<Arc<SecureDht>>,
}

type AppState = Arc<Inner>;

/// A permanent put: the value, until when, and the client's source.
type Kept = (Value, tokio::time::Instant, IpAddr);

fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    r
}

fn streaming(body: Body) -> Response {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    r
}

/// `:hash` as OpenDHT reads it.
fn key(segment: &str) -> InfoHash {
    InfoHash::from_key_text(segment)
}

fn line(v: &Value, expired: bool) -> Bytes {
    let mut j = to_json(v);
    if expired {
        j["expired"] = json!(true);
    }
    let mut s = j.to_string();
    s.push('\n');
    Bytes::from(s)
}

/// The router of a proxy over `runner`.
pub fn router(runner: Arc<Runner>, config: ProxyConfig) -> Router {
    build(runner, config, None)
}

/// The router of a proxy with an identity: also `POST /key/:hash/sign` and `/encrypt`.
pub fn router_with_identity(secure: Arc<SecureDht>, config: ProxyConfig) -> Router {
    build(secure.runner().clone(), config, Some(secure))
}

fn build(runner: Arc<Runner>, config: ProxyConfig, identity: Option<Arc<SecureDht>>) -> Router {
    let max_body = config.max_body;
    let with_identity = identity.is_some();
    let state = Arc::new(Inner {
        runner,
        config,
        listeners: AtomicUsize::new(0),
        puts: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        shared: Mutex::default(),
        permanent: Mutex::default(),
        listeners_by_client: Mutex::default(),
        identity,
    });
    tokio::spawn(republish(Arc::downgrade(&state)));
    let mut r = Router::new();
    if with_identity {
        r = r
            .route("/key/{hash}/sign", axum::routing::post(put_signed))
            .route("/key/{hash}/encrypt", axum::routing::post(put_encrypted));
    }
    r.route("/", get(node_info))
        .route("/node/info", get(node_info))
        .route("/node/stats", get(node_stats))
        .route(
            "/key/{hash}",
            get(get_values).post(put_value).fallback(fallback),
        )
        .route("/key/{hash}/listen", get(listen))
        .route("/key/{hash}/options", get(options))
        .route(
            "/{hash}",
            get(get_values)
                .post(put_value)
                .options(options)
                .fallback(fallback),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Serves the proxy on `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    runner: Arc<Runner>,
    config: ProxyConfig,
) -> std::io::Result<()> {
    serve_router(listener, router(runner, config)).await
}

/// Serves a router of this module (see [`router_with_identity`]) on `listener`.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

async fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"err": "Not found"}).to_string(),
    )
}

async fn fallback(method: Method) -> Response {
    let m = method.as_str();
    if m == "SUBSCRIBE" || m == "UNSUBSCRIBE" {
        return json_response(
            StatusCode::NOT_IMPLEMENTED,
            json!({"err": "Push notifications are not supported"}).to_string(),
        );
    }
    json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"err": "Method not allowed"}).to_string(),
    )
}

async fn node_info(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    s.requests.fetch_add(1, Ordering::Relaxed);
    match s.runner.stats().await {
        Ok(st) => {
            let stats = |good: usize, all: usize| json!({"good": good, "dubious": all.saturating_sub(good), "incoming": 0});
            let body = json!({
                "node_id": st.id.to_string(),
                "ipv4": stats(st.good4, st.nodes4),
                "ipv6": stats(st.good6, st.nodes6),
                "ops": 0,
                "public_ip": peer.ip().to_string(),
            });
            json_response(StatusCode::OK, body.to_string())
        }
        Err(_) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"err": "Not ready"}).to_string(),
        ),
    }
}

async fn node_stats(State(s): State<AppState>) -> Response {
    s.requests.fetch_add(1, Ordering::Relaxed);
    let permanent = s.permanent.lock().map(|p| p.len()).unwrap_or(0);
    let info = s.runner.stats().await.ok();
    let body = json!({
        "listenCount": s.listeners.load(Ordering::Relaxed),
        "putCount": s.puts.load(Ordering::Relaxed),
        "totalPermanentPuts": permanent,
        "pushListenersCount": 0,
        "requestRate": s.requests.load(Ordering::Relaxed),
        "nodeInfo": info.map(|st| json!({
            "node_id": st.id.to_string(),
            "ipv4": {"good": st.good4, "dubious": st.nodes4.saturating_sub(st.good4), "incoming": 0},
            "ipv6": {"good": st.good6, "dubious": st.nodes6.saturating_sub(st.good6), "incoming": 0},
        })),
    });
    json_response(StatusCode::OK, body.to_string())
}

async fn options() -> Response {
    let mut r = json_response(StatusCode::OK, String::new());
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("OPTIONS, GET, POST, LISTEN"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    r
}

async fn get_values(State(s): State<AppState>, Path(hash): Path<String>) -> Response {
    s.requests.fetch_add(1, Ordering::Relaxed);
    let Ok(rx) = s.runner.get_stream(key(&hash), None) else {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"err": "Not ready"}).to_string(),
        );
    };
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let v = rx.recv().await?;
        Some((Ok::<_, Infallible>(line(&v, false)), rx))
    });
    streaming(Body::from_stream(stream))
}

async fn put_value(
    State(s): State<AppState>,
    Path(hash): Path<String>,
    req: Request<Body>,
) -> Response {
    s.requests.fetch_add(1, Ordering::Relaxed);
    let parts_ext = req.extensions().get::<ConnectInfo<SocketAddr>>().copied();
    let (root, mut value) = match read_value(&s, req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if value.id == 0 {
        value.id =
            u64::from_le_bytes(InfoHash::random().0[..8].try_into().unwrap_or([1; 8])).max(1);
    }
    let k = key(&hash);
    let permanent = root
        .get("permanent")
        .is_some_and(|p| !p.is_null() && p != &json!(false));
    let client = client_of(&parts_ext);
    if permanent && !s.may_keep(k, value.id, client) {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"err": "Too many permanent puts"}).to_string(),
        );
    }
    s.puts.fetch_add(1, Ordering::Relaxed);
    let stored = s.runner.put(k, value.clone()).await.unwrap_or(0);
    if stored == 0 {
        return json_response(
            StatusCode::BAD_GATEWAY,
            json!({"err": "Put failed"}).to_string(),
        );
    }
    if permanent {
        if let Ok(mut p) = s.permanent.lock() {
            let until = tokio::time::Instant::now() + s.config.permanent_for;
            p.insert((k, value.id), (value.clone(), until, client));
        }
    }
    let mut out = to_json(&value).to_string();
    out.push('\n');
    json_response(StatusCode::OK, out)
}

/// The JSON body of a put: `(root, value)`, or the error answer.
async fn read_value(s: &Inner, req: Request<Body>) -> Result<(Json, Value), Response> {
    let body = axum::body::to_bytes(req.into_body(), s.config.max_body)
        .await
        .map_err(|_| {
            json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"err": "Request too large"}).to_string(),
            )
        })?;
    if body.is_empty() {
        return Err(json_response(
            StatusCode::BAD_REQUEST,
            json!({"err": "Missing parameters"}).to_string(),
        ));
    }
    serde_json::from_slice::<Json>(&body)
        .ok()
        .and_then(|j| from_json(&j).ok().map(|v| (j, v)))
        .ok_or_else(|| {
            // OpenDHT's key, colon included.
            json_response(
                StatusCode::BAD_REQUEST,
                json!({"err:": "Incorrect JSON"}).to_string(),
            )
        })
}

async fn put_signed(
    State(s): State<AppState>,
    Path(hash): Path<String>,
    req: Request<Body>,
) -> Response {
    s.requests.fetch_add(1, Ordering::Relaxed);
    let Some(identity) = s.identity.clone() else {
        return not_found().await;
    };
    let (_, mut value) = match read_value(&s, req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    value.signature.clear();
    value.owner = None;
    s.puts.fetch_add(1, Ordering::Relaxed);
    match identity.put_signed_value(key(&hash), value).await {
        Ok((n, signed)) if n > 0 => {
            json_response(StatusCode::OK, format!("{}\n", to_json(&signed)))
        }
        _ => json_response(
            StatusCode::BAD_GATEWAY,
            json!({"err": "Put failed"}).to_string(),
        ),
    }
}

async fn put_encrypted(
    State(s): State<AppState>,
    Path(hash): Path<String>,
    req: Request<Body>,
) -> Response {
    s.requests.fetch_add(1, Ordering::Relaxed);
    let Some(identity) = s.identity.clone() else {
        return not_found().await;
    };
    let (_, mut value) = match read_value(&s, req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(to) = value.recipient.take() else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"err": "No destination found"}).to_string(),
        );
    };
    s.puts.fetch_add(1, Ordering::Relaxed);
    match identity.put_encrypted_value(key(&hash), to, value).await {
        Ok((n, sealed)) if n > 0 => {
            json_response(StatusCode::OK, format!("{}\n", to_json(&sealed)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json_response(
            StatusCode::BAD_REQUEST,
            json!({"err": "No destination found"}).to_string(),
        ),
        _ => json_response(
            StatusCode::BAD_GATEWAY,
            json!({"err": "Put failed"}).to_string(),
        ),
    }
}

/// Puts permanent values again until they are due; stops with the server.
async fn republish(state: std::sync::Weak<Inner>) {
    let every = match state.upgrade() {
        Some(s) => s.config.republish_every,
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(s) = state.upgrade() else { return };
        let now = tokio::time::Instant::now();
        let due: Vec<(InfoHash, Value)> = match s.permanent.lock() {
            Ok(mut p) => {
                p.retain(|_, (_, until, _)| *until > now);
                p.iter()
                    .map(|((k, _), (v, _, _))| (*k, v.clone()))
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        for (k, v) in due {
            let _ = s.runner.put(k, v).await;
        }
    }
}

/// The source a client counts as ([`crate::ratelimit::source`]); unspecified when the
/// server runs without connection info.
fn client_of(info: &Option<ConnectInfo<SocketAddr>>) -> IpAddr {
    info.map_or(IpAddr::from([0, 0, 0, 0]), |c| {
        crate::ratelimit::source(c.0.ip())
    })
}

impl Inner {
    /// Whether a permanent put of `(key, id)` by `client` may be kept: a replacement always,
    /// a new one within the limits.
    fn may_keep(&self, key: InfoHash, id: u64, client: IpAddr) -> bool {
        let Ok(p) = self.permanent.lock() else {
            return false;
        };
        if p.contains_key(&(key, id)) {
            return true;
        }
        let theirs = p.values().filter(|(_, _, c)| *c == client).count();
        p.len() < self.config.max_permanent && theirs < self.config.max_permanent_per_client
    }
}

/// Releases a listener slot when its stream ends.
struct Slot(AppState, IpAddr);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.listeners.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut m) = self.0.listeners_by_client.lock() {
            if let Some(n) = m.get_mut(&self.1) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.1);
                }
            }
        }
    }
}

async fn listen(
    State(s): State<AppState>,
    Path(hash): Path<String>,
    req: Request<Body>,
) -> Response {
    s.requests.fetch_add(1, Ordering::Relaxed);
    let client = client_of(&req.extensions().get::<ConnectInfo<SocketAddr>>().copied());
    let admitted = s.listeners_by_client.lock().is_ok_and(|mut m| {
        let theirs = m.entry(client).or_default();
        if *theirs >= s.config.max_listeners_per_client
            || s.listeners.load(Ordering::Relaxed) >= s.config.max_listeners
        {
            return false;
        }
        *theirs += 1;
        s.listeners.fetch_add(1, Ordering::Relaxed);
        true
    });
    if !admitted {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"err": "Too many listeners"}).to_string(),
        );
    }
    let slot = Slot(s.clone(), client);
    let k = key(&hash);
    let (tx, rx) = mpsc::channel::<Bytes>(s.config.listener_queue);
    {
        // Under the map's lock, so the key's pump cannot end between lookup and joining.
        let Ok(mut all) = s.shared.lock() else {
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"err": "Internal error"}).to_string(),
            );
        };
        let shared = all
            .entry(k)
            .or_insert_with(|| {
                let sh = Arc::new(Mutex::new(Shared {
                    values: HashMap::new(),
                    subscribers: Vec::new(),
                }));
                tokio::spawn(pump(s.clone(), k, sh.clone()));
                sh
            })
            .clone();
        if let Ok(mut sh) = shared.lock() {
            for v in sh.values.values() {
                let _ = tx.try_send(line(v, false));
            }
            sh.subscribers.push(tx);
        };
    }
    let stream = futures_util::stream::unfold((rx, slot), |(mut rx, slot)| async move {
        let b = rx.recv().await?;
        Some((Ok::<_, Infallible>(b), (rx, slot)))
    });
    streaming(Body::from_stream(stream))
}

/// The one DHT listen of a key: fans its events out to the key's listeners and ends when
/// the last one left.
async fn pump(s: AppState, k: InfoHash, shared: Arc<Mutex<Shared>>) {
    let Ok(mut listen) = s.runner.listen(k, None).await else {
        if let Ok(mut all) = s.shared.lock() {
            all.remove(&k);
        }
        return;
    };
    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        let event = tokio::select! {
            e = listen.next() => e,
            _ = check.tick() => {
                // Everyone left: end the DHT listen (dropping it cancels it).
                let mut all = match s.shared.lock() { Ok(a) => a, Err(_) => return };
                let empty = shared.lock().map(|mut sh| {
                    sh.subscribers.retain(|t| !t.is_closed());
                    sh.subscribers.is_empty()
                }).unwrap_or(true);
                if empty {
                    all.remove(&k);
                    return;
                }
                continue;
            }
        };
        let Some(event) = event else { return };
        let Ok(mut sh) = shared.lock() else { return };
        let bytes = match &event {
            ListenEvent::Value(v) => {
                sh.values.insert(v.id, v.clone());
                line(v, false)
            }
            ListenEvent::Expired(id) => match sh.values.remove(id) {
                Some(v) => line(&v, true),
                None => continue,
            },
        };
        // A listener that does not keep up is dropped (its stream ends).
        sh.subscribers.retain(|t| t.try_send(bytes.clone()).is_ok());
    }
}
