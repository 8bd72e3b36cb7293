//! # pamoja-ice: NAT traversal for Jami
//!
//! Two Jami devices behind NATs reach each other with ICE (RFC 8445; over TCP, RFC 6544, for
//! device links), using STUN to learn their public addresses and TURN relays when nothing else
//! works. This crate starts at the bottom:
//!
//! * [`stun`]: the STUN message codec (RFC 8489): header, attributes with their padding,
//!   XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY (HMAC-SHA1) and MESSAGE-INTEGRITY-SHA256, and
//!   FINGERPRINT; checked against the RFC 5769 test vectors;
//! * [`candidate`]: candidates and the connection manager's ICE message in pjnath's text
//!   format, parsed the way pjnath scans it;
//! * [`turn`]: TURN's methods and attributes, long-term credentials, ChannelData;
//! * [`framing`]: RFC 4571 length-prefixed frames of ICE over TCP;
//! * [`agent`]: the ICE agent as a state machine driven by datagrams, frames and time;
//! * [`client`]: STUN Binding and TURN client state machines (with RFC 6062 TCP relays);
//! * [`session`]: the tokio edge: sockets, gathering, and a [`session::Connection`] once a
//!   pair is selected;
//! * [`media`]: a call's media session, one UDP component per RTP and RTCP flow of each
//!   stream, numbered across streams as jamid does;
//! * [`pipe`]: a byte stream over the message queues of such a driver;
//! * [`random`]: where the state machines' randomness comes from.
//!
//! # The drive loop
//!
//! The agent does no I/O and reads no clock; a driver (the tokio one in [`session`], or a
//! test with virtual time) moves bytes and time through it:
//!
//! ```text
//! let mut agent = Agent::with_random(Role::Controlling, config, OsRandom);
//! agent.add_local_candidate(candidate, base);          // each gathered candidate
//! agent.set_remote(now, &remote_description);          // from the peer's ICE message
//! loop {
//!     while let Some(t) = agent.poll_transmit() { /* send t.data from t.local to t.remote */ }
//!     while let Some(e) = agent.poll_event() { /* selected pair, failed, data... */ }
//!     // wait for a datagram or frame, or until agent.poll_timeout()
//!     agent.handle_input(now, ...);                     // bytes that came in
//!     agent.handle_timeout(now);                        // the timer fired
//! }
//! ```
//! The STUN and TURN clients in [`client`] follow the same contract.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod candidate;
pub mod client;
pub mod framing;
pub mod media;
pub mod pipe;
pub mod random;
pub mod session;
pub mod stun;
pub mod turn;
