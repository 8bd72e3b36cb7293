//! What can go wrong with a command.

use std::io;
use std::net::SocketAddr;

use pamoja_identity::JamiId;

use crate::id::{CallId, ConversationId, InvalidId};

/// What can go wrong with a command. Each variant says what the caller can act on; the
/// lower layers' errors are carried whole.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Files of the data directory, sockets.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A conversation repository.
    #[error("conversation: {0}")]
    Swarm(#[from] pamoja_swarm::Error),
    /// The account archive.
    #[error("account: {0}")]
    Identity(#[from] pamoja_identity::Error),
    /// A device link.
    #[error("link: {0}")]
    Link(#[from] pamoja_channel::link::LinkError),
    /// Text that is not the id it should be.
    #[error("{0}")]
    InvalidId(#[from] InvalidId),
    /// Text that is not an account or device id.
    #[error("{0}")]
    BadAccountId(#[from] pamoja_identity::ParseIdError),
    /// The archive holds no device key (an account that cannot go online).
    #[error("the archive holds no device key")]
    NoDeviceKey,
    /// No bootstrap node was given.
    #[error("no bootstrap node given")]
    NoBootstrapGiven,
    /// The DHT had no bootstrap node answering.
    #[error("no DHT node answered at {0}")]
    NoBootstrap(SocketAddr),
    /// Our own account cannot be our contact.
    #[error("our own account cannot be a contact")]
    SelfContact,
    /// No trust request from this account is waiting.
    #[error("no trust request from {0}")]
    NoTrustRequest(JamiId),
    /// We hold no such conversation.
    #[error("no conversation {0}")]
    UnknownConversation(ConversationId),
    /// No invitation to this conversation is waiting.
    #[error("no invitation to {0}")]
    NoInvitation(ConversationId),
    /// No device of the account could be reached.
    #[error("cannot reach {account}: {reason}")]
    Unreachable {
        /// The account.
        account: JamiId,
        /// Why.
        reason: String,
    },
    /// No device with this id is known (no certificate for it).
    #[error("no certificate for device {0}")]
    UnknownDevice(String),
    /// No call with this id is in progress.
    #[error("no call {0}")]
    NoCall(CallId),
    /// The call ended.
    #[error("call {0} is over")]
    CallOver(CallId),
    /// A key DTMF does not carry.
    #[error("{0:?} is not a DTMF key")]
    NotDtmf(char),
    /// A call could not start (its media).
    #[error("call: {0}")]
    Call(String),
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
