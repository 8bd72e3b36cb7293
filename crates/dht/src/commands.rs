//! What a [`Runner`](crate::runner::Runner) asks of the task driving it, and what comes
//! back: shared by the UDP runner and the proxy client, neither of which depends on the other.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::infohash::InfoHash;
use crate::message::ValueQuery;
use crate::node::{Counters, Node, OpId};
use crate::value::Value;

/// What a listen reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenEvent {
    /// A value (present when the listen started, or new).
    Value(Value),
    /// A value expired or was removed.
    Expired(u64),
}

/// Counters of a running node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStats {
    /// Node id.
    pub id: InfoHash,
    /// Good IPv4 nodes known.
    pub good4: usize,
    /// IPv4 nodes known.
    pub nodes4: usize,
    /// Good IPv6 nodes known.
    pub good6: usize,
    /// IPv6 nodes known.
    pub nodes6: usize,
    /// Keys stored here.
    pub keys: usize,
    /// Values stored here.
    pub values: usize,
    /// What the node refused (rate limits, blacklist) and republished.
    pub counters: Counters,
}

/// A function run on the node by [`Runner::inspect`](crate::runner::Runner::inspect).
type Inspection = Box<dyn FnOnce(&Node, Instant) + Send>;

pub(crate) enum Cmd {
    Bootstrap(SocketAddr),
    Get(InfoHash, Option<ValueQuery>, mpsc::UnboundedSender<Value>),
    Put(InfoHash, Value, oneshot::Sender<usize>),
    Listen(
        InfoHash,
        Option<ValueQuery>,
        mpsc::UnboundedSender<ListenEvent>,
        oneshot::Sender<OpId>,
    ),
    Cancel(OpId),
    Stats(oneshot::Sender<NodeStats>),
    Inspect(Inspection),
}
