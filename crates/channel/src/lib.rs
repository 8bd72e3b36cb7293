//! # pamoja-channel: device-to-device links with Jami
//!
//! Everything a Jami device says to another device travels over one link: a rendezvous
//! through encrypted DHT values, ICE over TCP, TLS 1.3 with the Jami certificate chain, and a
//! multiplexed socket carrying named channels; the simplest thing that crosses it is a SIP
//! MESSAGE on the `sip` channel. This crate holds those layers as pure code, driven by bytes
//! and time:
//!
//! * [`request`]: the connection request and its answer (`PeerConnectionRequest`), signed
//!   and encrypted DHT values at `SHA1("peer:" + device id)`, for the 2023 (short id) and
//!   2026 (long id) keys;
//! * [`mux`]: the multiplexed socket: msgpack frames, channel requests, accept/decline,
//!   close, version and beacons, with limits so that a bad peer costs only its link;
//! * [`random`]: where the multiplexed socket's randomness comes from (`pamoja_ice`'s);
//! * [`sip`]: MESSAGE requests and their answers as jamid writes and reads them, and a
//!   reader for the `sip` channel's stream;
//! * [`tls`]: rustls configurations for both roles, presenting our device chain and checking
//!   the peer's as jamid does (the expected device, the chain, revocation, bans);
//! * [`inbox`]: jamid 2023's DHT fallback for messages (`ImMessage` values at
//!   `SHA1("inbox:" + device id)`) and their acknowledgements;
//! * [`seen`]: the message ids already delivered, so that a message that comes both ways
//!   (or again after a restart) is reported once;
//! * [`link`]: the tokio edge: a manager that meets devices on the DHT, runs ICE over TCP
//!   (`pamoja-ice`) and TLS, and hands out links whose channels are byte pipes.
//!
//! # The drive loop
//!
//! A link's multiplexed socket is [`mux::Mux`], a state machine over the TLS stream's bytes;
//! [`link`] runs one per link in a tokio task:
//!
//! ```text
//! let mut mux = Mux::with_random(limits, OsRandom);
//! let ch = mux.open("sip")?;                           // or accept/decline what the peer opens
//! loop {
//!     while let Some(bytes) = mux.poll_transmit() { tls.write_all(&bytes) }
//!     while let Some(e) = mux.poll_event() { /* channel opened, data, closed */ }
//!     // wait for TLS bytes, or until mux.poll_timeout() (beacons)
//!     mux.handle_bytes(&bytes_read);
//!     mux.handle_timeout(now);
//! }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod inbox;
pub mod link;
pub mod mux;
pub mod request;
pub use pamoja_ice::random;
pub mod seen;
pub mod sip;
pub mod tls;
