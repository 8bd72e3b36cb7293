//! The embeddable Jami communicator.
//!
//! Two people add each other and talk; every device of every member ends up with the same
//! history, even when they were never online at the same time. This crate composes the
//! others into that, in two halves:
//!
//! - [`core`]: the account as a pure state machine ([`core::Core`]). Inputs in (commands,
//!   DHT values, channels up and down, bytes of `sip` channels, results of fetches), I/O
//!   requests ([`core::Io`]) and [`Event`]s out, time passed in, randomness handed in. It
//!   holds the rules: contacts and trust requests, presence, membership, how notices are
//!   delivered, when conversations are fetched and from whom, who is served, and each
//!   call's SIP dialog (offer and answer, hold, mute, video, re-INVITEs and their glare,
//!   DTMF and other INFOs).
//! - `shell`: [`Client`], one tokio task that owns the core and runs what it asks: the
//!   DHT runner, the link manager and the inbox, git on the blocking pool, call media, the
//!   data directory's files. It decides nothing.
//!
//! The formats and rules it builds on, each pure: [`trust`] (the `TrustRequest` values),
//! [`contacts`] (jamid's contact files), [`instant`] (new-commit notices, typing, read
//! receipts, invitations), [`presence`] (reachable and connected). Call media, for the
//! shell: [`call`] gathers a media ICE session and runs the streams an offer and answer
//! agreed on it, [`media`] pumps Opus and VP8 over RTP.
//!
//! # Driving it
//!
//! ```no_run
//! # async fn run(account: pamoja_identity::Account) -> Result<(), pamoja_client::ClientError> {
//! use pamoja_client::{Client, Config, Event};
//! let config = Config {
//!     data_dir: "alice".into(),
//!     bootstrap: vec!["127.0.0.1:4222".parse().unwrap()],
//!     ice_addr: "127.0.0.1".parse().unwrap(),
//! };
//! let (client, mut events) = Client::start(account, config).await?;
//! let bob = "0123456789abcdef0123456789abcdef01234567".parse()?;
//! let conversation = client.add_contact(&bob).await?;
//! while let Some(event) = events.next().await {
//!     if let Event::ContactAdded { confirmed: true, .. } = event {
//!         client.send_message(&conversation, "hello").await?;
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Embedding the core alone (a simulator, another runtime): see [`core`]'s call order.

pub mod call;
mod config;
pub mod contacts;
pub mod core;
mod error;
pub mod event;
mod id;
pub mod instant;
pub mod media;
pub mod net;
pub mod presence;
mod shell;
pub mod trust;

pub use call::CallOptions;
pub use config::{Config, Settings};
pub use error::ClientError;
pub use event::{CallState, CallStats, Event, VideoCallStats};
pub use id::{CallId, ConversationId, InvalidId, MessageId};
pub use pamoja_identity::{DeviceId, JamiId};
pub use presence::Status;
pub use shell::{Client, Connectivity, ContactInfo, EVENTS_BOUND, Events};
