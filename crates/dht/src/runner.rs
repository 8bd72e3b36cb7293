//! A tokio runner: one UDP socket and a [`Node`], driven in a task, with an async API shaped
//! like OpenDHT's `DhtRunner`.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use crate::commands::Cmd;
pub use crate::commands::{ListenEvent, NodeStats};
use crate::infohash::InfoHash;
use crate::message::ValueQuery;
use crate::node::{Config, Event, Node, OpId};
use crate::value::Value;

enum Sink {
    Get(mpsc::UnboundedSender<Value>),
    Put(oneshot::Sender<usize>),
    Listen(mpsc::UnboundedSender<ListenEvent>),
}

/// A running node. Dropping it stops the node.
pub struct Runner {
    cmds: mpsc::UnboundedSender<Cmd>,
    local: SocketAddr,
    id: InfoHash,
    /// Whether the node knows a good node, as the task last saw; `None` in proxy mode.
    joined: Option<watch::Receiver<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A listen in progress; values arrive on [`Listen::next`]. Dropping it cancels the listen.
pub struct Listen {
    rx: mpsc::UnboundedReceiver<ListenEvent>,
    op: OpId,
    cmds: mpsc::UnboundedSender<Cmd>,
}

impl Listen {
    /// The next event; `None` once the runner stopped.
    pub async fn next(&mut self) -> Option<ListenEvent> {
        self.rx.recv().await
    }
}

impl Drop for Listen {
    fn drop(&mut self) {
        let _ = self.cmds.send(Cmd::Cancel(self.op));
    }
}

/// The runner stopped.
fn stopped() -> io::Error {
    io::Error::other("DHT runner stopped")
}

/// How often [`Runner::joined`] asks a proxy for its node's counters.
const PROXY_JOIN_POLL: Duration = Duration::from_millis(250);

impl Runner {
    /// Binds a UDP socket on `addr` (use a loopback or namespace address in tests) and starts
    /// the node.
    pub async fn bind(addr: SocketAddr, config: Config) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr).await?;
        Self::from_std(socket.into_std()?, config)
    }

    /// Starts the node on an already bound socket (for example one created inside a network
    /// namespace).
    pub fn from_std(socket: std::net::UdpSocket, config: Config) -> io::Result<Self> {
        Self::from_node(socket, Node::new(config))
    }

    /// Runs `node` on an already bound socket: a node built by the caller, for example with
    /// its own random source ([`Node::with_random`]) or restored from a saved state.
    pub fn from_node(socket: std::net::UdpSocket, node: Node) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(socket)?;
        let local = socket.local_addr()?;
        let id = node.id();
        let (tx, rx) = mpsc::unbounded_channel();
        let (joined_tx, joined) = watch::channel(false);
        let task = tokio::spawn(run(socket, node, rx, joined_tx));
        Ok(Self {
            cmds: tx,
            local,
            id,
            joined: Some(joined),
            task,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// A runner that does everything through the DHT proxy at `url` (`http://host:port`)
    /// instead of a UDP socket: gets, puts, listens and stats are REST requests; there is no
    /// local node (bootstrap does nothing, [`Runner::inspect`] fails), and a put counts as
    /// stored on one node when the proxy accepted it. Only with the `proxy` feature.
    #[cfg(feature = "proxy")]
    pub fn proxy(url: &str) -> io::Result<Self> {
        let base = crate::proxy::client::parse_url(url)?;
        let id = InfoHash::random();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(crate::proxy::client::run(base, rx, id));
        Ok(Self {
            cmds: tx,
            local: SocketAddr::from(([0, 0, 0, 0], 0)),
            id,
            joined: None,
            task,
        })
    }

    /// The node id.
    pub fn id(&self) -> InfoHash {
        self.id
    }

    /// Joins the network through the node at `addr`.
    pub fn bootstrap(&self, addr: SocketAddr) {
        let _ = self.cmds.send(Cmd::Bootstrap(addr));
    }

    /// Every value found at `key` (the lookup ends when the closest nodes answered).
    pub async fn get(&self, key: InfoHash) -> io::Result<Vec<Value>> {
        let mut rx = self.get_stream(key, None)?;
        let mut out = Vec::new();
        while let Some(v) = rx.recv().await {
            out.push(v);
        }
        Ok(out)
    }

    /// Values found at `key` as they arrive; the channel closes when the lookup ends.
    pub fn get_stream(
        &self,
        key: InfoHash,
        query: Option<ValueQuery>,
    ) -> io::Result<mpsc::UnboundedReceiver<Value>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.cmds
            .send(Cmd::Get(key, query, tx))
            .map_err(|_| stopped())?;
        Ok(rx)
    }

    /// Stores `value` at `key`; returns how many nodes acknowledged it.
    pub async fn put(&self, key: InfoHash, value: Value) -> io::Result<usize> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Put(key, value, tx))
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }

    /// Listens at `key`.
    pub async fn listen(&self, key: InfoHash, query: Option<ValueQuery>) -> io::Result<Listen> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (op_tx, op_rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Listen(key, query, tx, op_tx))
            .map_err(|_| stopped())?;
        let op = op_rx.await.map_err(|_| stopped())?;
        Ok(Listen {
            rx,
            op,
            cmds: self.cmds.clone(),
        })
    }

    /// Runs `f` on the node (routing table, storage, operations) and returns what it returns.
    pub async fn inspect<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Node, Instant) -> R + Send + 'static,
    ) -> io::Result<R> {
        let (tx, rx) = oneshot::channel();
        let job = Box::new(move |node: &Node, now: Instant| {
            let _ = tx.send(f(node, now));
        });
        self.cmds.send(Cmd::Inspect(job)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }

    /// Routing and storage counters.
    pub async fn stats(&self) -> io::Result<NodeStats> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(Cmd::Stats(tx)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }

    /// Waits until the node knows at least one good node (`good4 + good6 > 0` in
    /// [`Runner::stats`]): it has joined the network. Returns at once when it already has.
    ///
    /// The runner's task signals the moment, nothing is polled; in proxy mode the proxy's
    /// counters are asked for every 250 ms. Fails with [`io::ErrorKind::TimedOut`] after
    /// `timeout`, or with an error when the runner stopped.
    pub async fn joined(&self, timeout: Duration) -> io::Result<()> {
        let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "no DHT node answered in time");
        match &self.joined {
            Some(joined) => {
                let mut joined = joined.clone();
                match tokio::time::timeout(timeout, joined.wait_for(|j| *j)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(_)) => Err(stopped()),
                    Err(_) => Err(timed_out()),
                }
            }
            None => {
                let deadline = tokio::time::Instant::now() + timeout;
                loop {
                    let asked = tokio::time::timeout_at(deadline, self.stats()).await;
                    match asked {
                        Ok(Ok(s)) if s.good4 + s.good6 > 0 => return Ok(()),
                        Err(_) => return Err(timed_out()),
                        // The proxy did not answer or knows no good node yet.
                        Ok(_) if self.cmds.is_closed() => return Err(stopped()),
                        Ok(_) => {}
                    }
                    if tokio::time::Instant::now() + PROXY_JOIN_POLL > deadline {
                        return Err(timed_out());
                    }
                    tokio::time::sleep(PROXY_JOIN_POLL).await;
                }
            }
        }
    }
}

async fn run(
    socket: UdpSocket,
    mut node: Node,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    joined: watch::Sender<bool>,
) {
    let mut sinks: HashMap<OpId, Sink> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        // Cheap when joined: the search stops at the first good node.
        let now = Instant::now();
        let good = node.routing_nodes().any(|n| n.is_good(now));
        joined.send_if_modified(|j| std::mem::replace(j, good) != good);
        while let Some(t) = node.poll_transmit() {
            if let Err(e) = socket.send_to(&t.data, t.to).await {
                tracing::debug!("send to {}: {e}", t.to);
            }
        }
        while let Some(ev) = node.poll_event() {
            match ev {
                Event::Value { op, value } => match sinks.get(&op) {
                    Some(Sink::Get(tx)) => {
                        let _ = tx.send(value);
                    }
                    Some(Sink::Listen(tx)) => {
                        let _ = tx.send(ListenEvent::Value(value));
                    }
                    _ => {}
                },
                Event::Expired { op, id } => {
                    if let Some(Sink::Listen(tx)) = sinks.get(&op) {
                        let _ = tx.send(ListenEvent::Expired(id));
                    }
                }
                Event::GetDone { op, .. } => {
                    sinks.remove(&op);
                }
                Event::PutDone { op, stored } => {
                    if let Some(Sink::Put(tx)) = sinks.remove(&op) {
                        let _ = tx.send(stored);
                    }
                }
                Event::Listening { .. } => {}
            }
        }
        let deadline = node
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    node.handle_datagram(Instant::now(), from, &buf[..n]);
                }
            }
            cmd = cmds.recv() => {
                let Some(cmd) = cmd else { break };
                let now = Instant::now();
                match cmd {
                    Cmd::Bootstrap(addr) => node.bootstrap(now, addr),
                    Cmd::Get(key, q, tx) => {
                        let op = node.get(now, key, q);
                        sinks.insert(op, Sink::Get(tx));
                    }
                    Cmd::Put(key, v, tx) => {
                        let op = node.put(now, key, v);
                        sinks.insert(op, Sink::Put(tx));
                    }
                    Cmd::Listen(key, q, tx, op_tx) => {
                        let op = node.listen(now, key, q);
                        sinks.insert(op, Sink::Listen(tx));
                        let _ = op_tx.send(op);
                    }
                    Cmd::Cancel(op) => {
                        node.cancel(op);
                        sinks.remove(&op);
                    }
                    Cmd::Inspect(f) => f(&node, now),
                    Cmd::Stats(tx) => {
                        let (good4, nodes4, good6, nodes6) = node.node_counts(now);
                        let (keys, values) = node.storage_counts();
                        let _ = tx.send(NodeStats { id: node.id(), good4, nodes4, good6, nodes6, keys, values, counters: node.counters() });
                    }
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                node.handle_timeout(Instant::now());
            }
        }
    }
}
