//! The client side: lookups by name and by address, and registration, with results in the
//! status codes jamid reports on D-Bus, and a cache of what was found (registrations never
//! change owner, so entries do not expire).
//!
//! Plain `http://` servers only: a local or private server. `https://` (the public
//! `ns.jami.net`) is refused with [`Lookup::Error`] until TLS comes with the channel layer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use pamoja_identity::Account;

use crate::name::{Name, server_url, split_query};
use crate::record::{AddrRecord, NameRecord, Registration};

/// Longest a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read.
const MAX_ANSWER: usize = 64 * 1024;
/// Most names cached per client.
const CACHE_ENTRIES: usize = 10_000;

/// The result of a lookup, with jamid's status numbers ([`Lookup::code`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// 0: the address (for a name) or the name (for an address).
    Found(String),
    /// 1: the query is not a valid name, or the answer does not check.
    InvalidResponse,
    /// 2: not registered.
    NotFound,
    /// 3: the server could not be reached or failed.
    Error(String),
}

impl Lookup {
    /// jamid's `registeredNameFound` status.
    pub fn code(&self) -> u8 {
        match self {
            Self::Found(_) => 0,
            Self::InvalidResponse => 1,
            Self::NotFound => 2,
            Self::Error(_) => 3,
        }
    }
}

/// The result of a registration, with jamid's status numbers ([`Registered::code`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// 0: registered (or already registered to this account).
    Success,
    /// 1: the account could not sign (no usable key).
    InvalidCredentials,
    /// 2: the name breaks the rules; nothing was sent.
    InvalidName,
    /// 3: the name (or this account's address) is taken.
    AlreadyTaken,
    /// 4: anything else, with the reason.
    Error(String),
}

impl Registered {
    /// jamid's `nameRegistrationEnded` status.
    pub fn code(&self) -> u8 {
        match self {
            Self::Success => 0,
            Self::InvalidCredentials => 1,
            Self::InvalidName => 2,
            Self::AlreadyTaken => 3,
            Self::Error(_) => 4,
        }
    }
}

#[derive(Default)]
struct Cache {
    addr_of: HashMap<(String, String), String>,
    name_of: HashMap<(String, String), String>,
}

impl Cache {
    fn insert(&mut self, server: &str, name: &str, addr: &str) {
        if self.addr_of.len() >= CACHE_ENTRIES {
            self.addr_of.clear();
            self.name_of.clear();
        }
        self.addr_of
            .insert((server.to_owned(), name.to_owned()), addr.to_owned());
        self.name_of
            .insert((server.to_owned(), addr.to_owned()), name.to_owned());
    }
}

/// A name server client.
pub struct Client {
    server: String,
    http: HttpClient<HttpConnector, Full<Bytes>>,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server)
            .finish()
    }
}

impl Client {
    /// A client of `server` (`http://host:port`; no scheme means `http://`; empty means
    /// jamid's default server).
    pub fn new(server: &str) -> Self {
        Self {
            server: server_url(server),
            http: HttpClient::builder(TokioExecutor::new()).build_http(),
            cache: Mutex::default(),
        }
    }

    /// The server asked by default.
    pub fn server(&self) -> &str {
        &self.server
    }

    async fn request(
        &self,
        method: Method,
        url: &str,
        body: Option<String>,
    ) -> Result<(StatusCode, Bytes), String> {
        if !url.starts_with("http://") {
            return Err(format!("only http:// servers are supported: {url}"));
        }
        let req = Request::builder()
            .method(method)
            .uri(url)
            .header("user-agent", "Pamoja")
            .header("accept", "*/*")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let res = self.http.request(req).await.map_err(|e| e.to_string())?;
            let status = res.status();
            let body = Limited::new(res.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no answer from {url} in {} s", REQUEST_TIMEOUT.as_secs()))?
    }

    /// Looks up a name (`name`, or `name@host[:port]` to ask another server). The answer's
    /// signature is checked when the server gives one.
    pub async fn lookup_name(&self, query: &str) -> Lookup {
        let (server, text) = split_query(query, &self.server);
        let Ok(name) = Name::parse(&text) else {
            return Lookup::InvalidResponse;
        };
        let key = (server.clone(), name.as_str().to_owned());
        if let Some(addr) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.addr_of.get(&key).cloned())
        {
            return Lookup::Found(addr);
        }
        let url = format!("{server}/name/{name}");
        match self.request(Method::GET, &url, None).await {
            Ok((status, body)) if status.is_success() => {
                let Ok(record) = serde_json::from_slice::<NameRecord>(&body) else {
                    return Lookup::InvalidResponse;
                };
                match record.check(&name) {
                    Ok(Some(addr)) => {
                        if let Ok(mut c) = self.cache.lock() {
                            c.insert(&server, name.as_str(), &addr);
                        }
                        Lookup::Found(addr)
                    }
                    Ok(None) => Lookup::NotFound,
                    Err(_) => Lookup::InvalidResponse,
                }
            }
            Ok((status, _)) if status.is_client_error() => Lookup::NotFound,
            Ok((status, _)) => Lookup::Error(format!("server answered {status}")),
            Err(e) => Lookup::Error(e),
        }
    }

    /// Looks up the name registered for a Jami ID.
    pub async fn lookup_address(&self, addr: &str) -> Lookup {
        let addr = addr.trim().to_ascii_lowercase();
        if addr.len() != 40 || !addr.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Lookup::InvalidResponse;
        }
        let key = (self.server.clone(), addr.clone());
        if let Some(name) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.name_of.get(&key).cloned())
        {
            return Lookup::Found(name);
        }
        let url = format!("{}/addr/{addr}", self.server);
        match self.request(Method::GET, &url, None).await {
            // Only exactly 200 counts, as in jamid.
            Ok((StatusCode::OK, body)) => match serde_json::from_slice::<AddrRecord>(&body) {
                Ok(r) if r.name.is_empty() => Lookup::NotFound,
                Ok(r) => {
                    if let Ok(mut c) = self.cache.lock() {
                        c.insert(&self.server, &r.name, &addr);
                    }
                    Lookup::Found(r.name)
                }
                Err(_) => Lookup::InvalidResponse,
            },
            Ok((status, _)) if status.is_client_error() => Lookup::NotFound,
            Ok((status, _)) => Lookup::Error(format!("server answered {status}")),
            Err(e) => Lookup::Error(e),
        }
    }

    /// Registers `name` for `account` (signed with its account key, as jamid does).
    pub async fn register(&self, account: &Account, name: &str) -> Registered {
        let Ok(name) = Name::parse(name) else {
            return Registered::InvalidName;
        };
        let addr = account.jami_id().to_string();
        let key = (self.server.clone(), name.as_str().to_owned());
        if let Some(known) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.addr_of.get(&key).cloned())
        {
            return if known == addr {
                Registered::Success
            } else {
                Registered::AlreadyTaken
            };
        }
        let Ok(reg) = Registration::sign(account, &name) else {
            return Registered::InvalidCredentials;
        };
        let url = format!("{}/name/{name}", self.server);
        match self.request(Method::POST, &url, Some(reg.to_json())).await {
            Ok((status, body)) if status.is_success() => {
                let ok = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["success"].as_bool())
                    .unwrap_or(false);
                if ok {
                    if let Ok(mut c) = self.cache.lock() {
                        c.insert(&self.server, name.as_str(), &addr);
                    }
                    Registered::Success
                } else {
                    Registered::Error("the server did not confirm".into())
                }
            }
            Ok((status, _))
                if status == StatusCode::FORBIDDEN
                    || (status.is_client_error()
                        && status != StatusCode::BAD_REQUEST
                        && status != StatusCode::UNAUTHORIZED) =>
            {
                Registered::AlreadyTaken
            }
            Ok((status, body)) => Registered::Error(format!(
                "server answered {status}: {}",
                String::from_utf8_lossy(&body)
            )),
            Err(e) => Registered::Error(e),
        }
    }
}
