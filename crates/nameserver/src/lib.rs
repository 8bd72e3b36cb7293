//! # pamoja-nameserver: the Jami name server, both sides
//!
//! Jami users find each other by username: a name server maps names to Jami IDs over a small
//! HTTP JSON protocol (`GET /name/{name}`, `GET /addr/{addr}`, `POST /name/{name}`). A
//! registration is signed with the account key, so a server can check that whoever registers a
//! name owns the Jami ID it points to, and clients can check the answers they get.
//!
//! * [`name`]: the name rules and the `name@host[:port]` syntax jamid accepts;
//! * [`record`]: registrations (built and signed byte for byte as jamid does, and checked),
//!   and lookup answers;
//! * [`client`]: lookups and registration with a cache, results in jamid's status codes;
//! * [`store`]: the registry on SQLite (embedded, the default) or PostgreSQL, one SQL layer;
//! * [`server`]: the HTTP server: every registration checked, first come first served, a
//!   registered name never changes owner, registrations rate limited per client address.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use pamoja_nameserver::client::{Client, Lookup};
//! let client = Client::new("http://127.0.0.1:8099");
//! if let Lookup::Found(addr) = client.lookup_name("alice").await {
//!     println!("alice is {addr}");
//! }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod name;
pub mod record;
pub mod server;
pub mod store;
