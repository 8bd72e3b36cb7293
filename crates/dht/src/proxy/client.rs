//! The proxy client: a [`Runner`](crate::runner::Runner) that does everything through a DHT
//! proxy's REST API instead of a UDP socket ([`Runner::proxy`](crate::runner::Runner::proxy)),
//! as OpenDHT's `DhtProxyClient` does for devices that cannot keep a DHT socket alive.
//!
//! Gets stream `GET /key/:hash`; puts `POST /key/:hash`; listens hold `GET /key/:hash/listen`
//! open (and open it again after a second when it drops); stats come from `GET /node/info`.
//! Only `http://` proxies.

use std::collections::HashMap;
use std::io;

use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Bytes};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value as Json;
use tokio::sync::mpsc;

use crate::commands::{Cmd, ListenEvent, NodeStats};
use crate::infohash::InfoHash;
use crate::json::{from_json, to_json};
use crate::node::{Counters, OpId};

type Http = HttpClient<HttpConnector, Full<Bytes>>;

/// Longest line accepted from a proxy (a value is at most 64 KB, base64 and JSON around it).
const MAX_LINE: usize = 256 * 1024;

/// Checks and normalises a proxy URL (`http://host:port`, no trailing slash).
pub fn parse_url(url: &str) -> io::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "proxy URL must be http://"))?;
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad proxy URL {url:?}"),
        ));
    }
    Ok(format!("http://{rest}"))
}

async fn request(
    http: &Http,
    method: Method,
    url: &str,
    body: Option<String>,
) -> io::Result<hyper::Response<hyper::body::Incoming>> {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .header("user-agent", "RESTinio client")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(io::Error::other)?;
    http.request(req).await.map_err(io::Error::other)
}

/// Reads a streamed body line by line and hands each JSON value to `each`; stops early when
/// `each` returns false.
async fn lines(
    mut body: hyper::body::Incoming,
    mut each: impl FnMut(Json) -> bool,
) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    while !body.is_end_stream() {
        let Some(frame) = body.frame().await else {
            break;
        };
        let frame = frame.map_err(io::Error::other)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let Some(n) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=n).collect();
            if let Ok(j) = serde_json::from_slice::<Json>(&line) {
                if !each(j) {
                    return Ok(());
                }
            }
        }
        if buf.len() > MAX_LINE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
    }
    Ok(())
}

/// The command loop of a proxy-backed runner.
pub(crate) async fn run(base: String, mut cmds: mpsc::UnboundedReceiver<Cmd>, id: InfoHash) {
    let http: Http = HttpClient::builder(TokioExecutor::new()).build_http();
    let mut listens: HashMap<OpId, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut next_op: OpId = 1;
    while let Some(cmd) = cmds.recv().await {
        match cmd {
            // A proxy client has no routing table to bootstrap.
            Cmd::Bootstrap(_) => {}
            Cmd::Get(key, _query, tx) => {
                let (http, url) = (http.clone(), format!("{base}/key/{key}"));
                tokio::spawn(async move {
                    if let Ok(resp) = request(&http, Method::GET, &url, None).await {
                        if resp.status() == StatusCode::OK {
                            let _ = lines(resp.into_body(), |j| {
                                if let Ok(v) = from_json(&j) {
                                    return tx.send(v).is_ok();
                                }
                                true
                            })
                            .await;
                        }
                    }
                });
            }
            Cmd::Put(key, value, tx) => {
                let (http, url) = (http.clone(), format!("{base}/key/{key}"));
                tokio::spawn(async move {
                    let body = to_json(&value).to_string();
                    let ok = match request(&http, Method::POST, &url, Some(body)).await {
                        Ok(resp) => resp.status() == StatusCode::OK,
                        Err(_) => false,
                    };
                    // The proxy's node stored it: it does not say on how many nodes.
                    let _ = tx.send(usize::from(ok));
                });
            }
            Cmd::Listen(key, _query, tx, op_tx) => {
                let op = next_op;
                next_op += 1;
                let _ = op_tx.send(op);
                let (http, url) = (http.clone(), format!("{base}/key/{key}/listen"));
                listens.insert(op, tokio::spawn(listen(http, url, tx)));
            }
            Cmd::Cancel(op) => {
                if let Some(task) = listens.remove(&op) {
                    task.abort();
                }
            }
            // There is no local node to look at.
            Cmd::Inspect(_) => {}
            Cmd::Stats(tx) => {
                let (http, url) = (http.clone(), format!("{base}/node/info"));
                tokio::spawn(async move {
                    if let Some(stats) = node_info(&http, &url, id).await {
                        let _ = tx.send(stats);
                    }
                });
            }
        }
    }
    for task in listens.into_values() {
        task.abort();
    }
}

async fn listen(http: Http, url: String, tx: mpsc::UnboundedSender<ListenEvent>) {
    while !tx.is_closed() {
        if let Ok(resp) = request(&http, Method::GET, &url, None).await {
            if resp.status() == StatusCode::OK {
                let _ = lines(resp.into_body(), |j| {
                    let expired = j.get("expired").and_then(Json::as_bool) == Some(true);
                    if let Ok(v) = from_json(&j) {
                        let event = if expired {
                            ListenEvent::Expired(v.id)
                        } else {
                            ListenEvent::Value(v)
                        };
                        return tx.send(event).is_ok();
                    }
                    true
                })
                .await;
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

async fn node_info(http: &Http, url: &str, id: InfoHash) -> Option<NodeStats> {
    let resp = request(http, Method::GET, url, None).await.ok()?;
    if resp.status() != StatusCode::OK {
        return None;
    }
    let body = http_body_util::Limited::new(resp.into_body(), 64 * 1024)
        .collect()
        .await
        .ok()?
        .to_bytes();
    let j: Json = serde_json::from_slice(&body).ok()?;
    let count = |fam: &str, field: &str| {
        j.get(fam)
            .and_then(|s| s.get(field))
            .and_then(Json::as_u64)
            .unwrap_or(0) as usize
    };
    let node_id = j
        .get("node_id")
        .and_then(Json::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(id);
    Some(NodeStats {
        id: node_id,
        good4: count("ipv4", "good"),
        nodes4: count("ipv4", "good") + count("ipv4", "dubious"),
        good6: count("ipv6", "good"),
        nodes6: count("ipv6", "good") + count("ipv6", "dubious"),
        keys: 0,
        values: 0,
        counters: Counters::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            parse_url("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(parse_url("https://proxy.example").is_err());
        assert!(parse_url("127.0.0.1:8080").is_err());
        assert!(parse_url("http://").is_err());
    }
}
