//! OpenDHT's proxy: a REST API through which a device uses the DHT without a UDP socket of
//! its own ([`server`]), and the client side of it ([`client`]), which a
//! [`Runner`](crate::runner::Runner) uses in proxy mode.

pub mod client;
pub mod server;

pub use server::{ProxyConfig, router, router_with_identity, serve, serve_router};
