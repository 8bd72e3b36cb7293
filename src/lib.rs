//! # Pamoja
//!
//! Rust libraries that speak the protocols of [Jami](https://jami.net), the peer-to-peer
//! communicator, byte for byte. This facade re-exports each library as a module:
//!
//! * [`identity`]: Jami accounts, certificates, revocation lists, archives.
//! * [`dht`]: an OpenDHT-compatible node, its secure layer and proxy.
//! * [`nameserver`]: the name server, client and server.
//! * [`ice`]: NAT traversal: STUN, TURN, ICE over UDP and TCP.
//! * [`channel`]: device links: rendezvous, TLS, multiplexed channels, SIP messages.
//! * [`swarm`]: conversations on git.
//! * [`client`]: the communicator: contacts, presence, conversations, receipts.
//! * [`media`]: calls: SIP dialogs, SDP, SDES, RTP, RTCP, SRTP.

#![forbid(unsafe_code)]

pub use pamoja_channel as channel;
pub use pamoja_client as client;
pub use pamoja_dht as dht;
pub use pamoja_ice as ice;
pub use pamoja_identity as identity;
pub use pamoja_media as media;
pub use pamoja_nameserver as nameserver;
pub use pamoja_swarm as swarm;
