//! The embeddable Jami communicator.
//!
//! Two people add each other and talk; every device of every member ends up with the same
//! history, even when they were never online at the same time. This crate composes the
//! others into that:
//!
//! - [`trust`]: the `TrustRequest` values put at a contact's device inbox on the DHT, to ask
//!   and to confirm;
//! - [`contacts`]: the contact list and the pending requests, in jamid's files;
//! - [`instant`]: the instant messages members exchange over `sip` channels (new-commit
//!   notices, typing indicators, read receipts, invitations);
//! - [`presence`]: who is reachable (announced on the DHT) and connected (linked);
//! - [`client`]: the running account: commands in ([`Client`]'s methods), events out
//!   ([`Events`]); conversations kept as swarm repositories in the data directory, served over
//!   `git://` channels and fetched from peers when they announce new commits, each fetched
//!   history validated before it is merged;
//! - [`call`]: a task per call: its SIP dialog on the peer's `sip` channel, its media ICE
//!   session, its audio and video; hold, mute and video added or dropped through
//!   re-INVITEs; `call_state`, `call_media` and `call_stats` events;
//! - [`media`]: the I/O edge of a call's media: the media ICE session in SDP, and the Opus
//!   and VP8 streams pumped over its RTP and RTCP components (tones, WAV and raw video
//!   files, test patterns as sources; WAV and raw video files, or nothing, as sinks).
//!
//! The pure modules hold the formats and the rules; [`client`] holds the I/O.

pub mod call;
pub mod client;
pub mod contacts;
pub mod event;
pub mod instant;
pub mod media;
pub mod presence;
pub mod trust;

pub use call::CallOptions;
pub use client::{Client, ClientError, Config, ContactInfo, Events, Settings};
pub use event::{CallStats, Event, VideoCallStats};
