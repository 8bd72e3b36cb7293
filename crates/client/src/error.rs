//! What can go wrong with a command.

use std::io;
use std::net::SocketAddr;

/// What can go wrong with a command.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Files, sockets.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A conversation repository.
    #[error("conversation: {0}")]
    Swarm(#[from] pamoja_swarm::Error),
    /// The account archive.
    #[error("account: {0}")]
    Identity(#[from] pamoja_identity::Error),
    /// Bad input: unknown conversation, malformed id...
    #[error("{0}")]
    Invalid(String),
    /// The DHT had no bootstrap node answering.
    #[error("no DHT node answered at {0}")]
    NoBootstrap(SocketAddr),
    /// A fetched history was refused: nothing of it was merged.
    #[error("history refused: {0}")]
    Refused(String),
    /// No device served a clone: each device tried, and why.
    #[error("no device served the conversation ({} tried)", .0.len())]
    CloneRefused(Vec<(String, String)>),
    /// The account stopped.
    #[error("the account stopped")]
    Stopped,
}
