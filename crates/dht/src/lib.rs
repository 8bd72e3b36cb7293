//! # pamoja-dht: an OpenDHT-compatible node
//!
//! Every Jami device finds every other through OpenDHT, a Kademlia DHT whose messages are
//! msgpack maps over UDP. This crate speaks that protocol as OpenDHT 2.4.12 does, byte for
//! byte where it matters:
//!
//! * [`message`]: the datagram codec (queries, replies, errors, value fragments);
//! * [`value`]: values as OpenDHT packs them (plain, signed, encrypted);
//! * [`node`]: the sans-IO engine, a state machine fed datagrams and time that returns
//!   datagrams, timers and events (routing tables, searches, storage, tokens, listen);
//! * [`random`]: where the engine's randomness comes from (the system, or a seed; the
//!   same types as pamoja-ice's);
//! * [`ratelimit`] and [`blacklist`]: what a node refuses to hear;
//! * [`discovery`]: OpenDHT's LAN peer discovery (multicast);
//! * [`secure`]: SecureDht's rules: signed values, values encrypted to a key, certificates;
//! * [`securedht`]: a runner with an identity: signed and encrypted puts, checked gets;
//! * [`runner`]: a tokio UDP runner with an async get/put/listen API;
//! * [`sim`]: an in-process network of nodes with virtual time, latency and loss;
//! * `proxy` (with the `proxy` feature, on by default): OpenDHT's REST proxy, server and
//!   client ([`Runner::proxy`](runner::Runner)); without it the crate needs neither axum nor
//!   hyper.
//!
//! # The drive loop
//!
//! [`Node`](node::Node) is the OpenDHT engine without a socket or a clock; [`Runner`] is the
//! tokio task that gives it one UDP socket, and [`sim`] gives many of them virtual time:
//!
//! ```text
//! let mut node = Node::with_random(config, OsRandom);
//! node.set_unix_time(now, SystemTime::now());          // values carry Unix time
//! node.bootstrap(now, bootstrap_addr);
//! let op = node.get(now, key, None);                   // put, listen, cancel alike
//! loop {
//!     while let Some(t) = node.poll_transmit() { socket.send_to(&t.data, t.to) }
//!     while let Some(e) = node.poll_event() { /* values, done, listen pushes */ }
//!     // wait for a datagram, or until node.poll_timeout()
//!     node.handle_datagram(now, from, &datagram);
//!     node.handle_timeout(now);
//! }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod blacklist;
mod commands;
pub mod discovery;
pub mod infohash;
pub mod json;
pub mod message;
pub mod node;
#[cfg(feature = "proxy")]
pub mod proxy;
/// Where the engine's randomness comes from: the same source as pamoja-ice's agent.
pub use pamoja_ice::random;
pub mod ratelimit;
pub mod routing;
pub mod runner;
pub mod secure;
pub mod securedht;
pub mod sim;
pub mod storage;
pub mod value;

pub use infohash::InfoHash;
pub use node::{Config, Counters, Event, Node, OpId, Transmit};
pub use runner::Runner;
pub use value::Value;
