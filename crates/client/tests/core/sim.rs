//! An in-memory world for cores: several accounts, a DHT that is a map, links that are
//! queues, git exchanged over in-memory pipes, and a clock that jumps to the next timer.
//! No socket, no sleep: a test runs as fast as the cores decide.
//!
//! Each [`Node`] is one device: its [`Core`], its data directory (the conversation
//! repositories, real git on disk), and the events it reported. The [`World`] runs the
//! [`Io`] every core asks for and feeds the results back as [`Input`]s, in order.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pamoja_client::Event;
use pamoja_client::core::calls::{LocalMedia, MediaNews};
use pamoja_client::core::{
    ChannelId, Command, Core, CoreConfig, GitOp, GitOutcome, Input, Io, Members, Random, Reply,
    SeenIds, State, Ticket,
};
use pamoja_client::{CallId, ClientError, ConversationId, JamiId};
use pamoja_identity::{Account, Certificate, DeviceId};
use pamoja_swarm::{Conversation, Pulled, Signer};

/// A seeded generator (splitmix64): the same seed, the same run.
pub struct Seeded(pub u64);

impl Random for Seeded {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            *b = (z ^ (z >> 31)) as u8;
        }
    }
}

/// Message ids seen, in memory.
#[derive(Default)]
pub struct SeenSet(std::collections::HashSet<String>);

impl SeenIds for SeenSet {
    fn first_time(&mut self, id: &str) -> bool {
        self.0.insert(id.to_owned())
    }
}

/// One device of one account.
pub struct Node {
    pub core: Core,
    pub account: Account,
    pub signer: Signer,
    pub chain: Vec<Certificate>,
    pub device: DeviceId,
    pub dir: PathBuf,
    pub online: bool,
    /// Every event reported, in order.
    pub events: Vec<Event>,
    /// Replies to commands, by ticket.
    pub replies: HashMap<Ticket, Result<Reply, String>>,
    /// Our end of each channel: the peer node and its end.
    pub channels: HashMap<ChannelId, (usize, ChannelId)>,
    /// Media started: the call, held, with video.
    pub media_starts: Vec<(CallId, bool, bool)>,
    /// `git://` channels waiting for our word: the fetching node, its conversation and
    /// the operation waiting for the bytes.
    pub pending_serve: HashMap<ChannelId, PendingFetch>,
    /// Accounts whose links this node's link layer refuses ([`Io::Ban`]).
    pub link_bans: std::collections::HashSet<JamiId>,
}

/// A fetch or clone waiting for the serving core to accept its channel.
pub struct PendingFetch {
    pub client: usize,
    pub conversation: String,
    pub op: GitOp,
}

impl Node {
    pub fn jami_id(&self) -> JamiId {
        self.account.jami_id()
    }

    /// The text bodies of the messages reported for `conv`, in order.
    pub fn texts(&self, conv: &ConversationId) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Message {
                    conversation,
                    kind,
                    body,
                    ..
                } if conversation == conv && kind == "text/plain" => {
                    body.get("body").map(str::to_owned)
                }
                _ => None,
            })
            .collect()
    }

    /// Whether an event matching `f` was reported.
    pub fn saw(&self, f: impl Fn(&Event) -> bool) -> bool {
        self.events.iter().any(f)
    }
}

/// The world the nodes live in.
pub struct World {
    pub nodes: Vec<Node>,
    start: Instant,
    pub now: Instant,
    unix0: i64,
    /// What every node did, as (node, input), in order.
    queue: VecDeque<(usize, Input)>,
    /// Values at each device's inbox not yet taken (the device was offline).
    inbox: HashMap<DeviceId, Vec<Input>>,
    /// Who listens to which account's announcements.
    listeners: HashMap<String, Vec<usize>>,
    /// Devices announced per account (node indexes).
    announced: HashMap<String, Vec<usize>>,
    next_channel: u64,
    next_ticket: u64,
    rt: tokio::runtime::Runtime,
    _tmp: tempfile::TempDir,
}

fn io_err(e: impl std::fmt::Display) -> ClientError {
    ClientError::Io(std::io::Error::other(e.to_string()))
}

impl World {
    /// A world with one device for each of `names` (accounts made anew).
    pub fn new(names: &[&'static str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let accounts: Vec<Account> = std::thread::scope(|s| {
            let hs: Vec<_> = names
                .iter()
                .map(|_| s.spawn(|| Account::create(|_| {}).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let start = Instant::now();
        let unix0 = 1_800_000_000;
        let mut nodes = Vec::new();
        for (i, (name, account)) in names.iter().zip(accounts).enumerate() {
            let dir = tmp.path().join(name);
            std::fs::create_dir_all(dir.join("conversations")).unwrap();
            let device = account.device().unwrap();
            let mut chain = vec![device.cert.clone(), account.account_cert().clone()];
            chain.extend(account.ca_cert().cloned());
            let config = CoreConfig {
                me: account.jami_id().to_string(),
                device: device.cert.public_key().device_id().to_string(),
                short_device: device.cert.short_device_id().to_string(),
                ice_addr: IpAddr::from([10, 0, 0, i as u8 + 1]),
            };
            let core = Core::new(
                config,
                State::default(),
                Box::new(Seeded(i as u64 + 1)),
                Box::new(SeenSet::default()),
                start,
                unix0,
            );
            nodes.push(Node {
                core,
                signer: Signer::of(&account, name).unwrap(),
                device: device.cert.public_key().device_id(),
                chain,
                account,
                dir,
                online: false,
                events: Vec::new(),
                replies: HashMap::new(),
                channels: HashMap::new(),
                media_starts: Vec::new(),
                pending_serve: HashMap::new(),
                link_bans: Default::default(),
            });
        }
        Self {
            nodes,
            start,
            now: start,
            unix0,
            queue: VecDeque::new(),
            inbox: HashMap::new(),
            listeners: HashMap::new(),
            announced: HashMap::new(),
            next_channel: 1,
            next_ticket: 1,
            rt: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
            _tmp: tmp,
        }
    }

    fn unix(&self) -> i64 {
        self.unix0 + (self.now - self.start).as_secs() as i64
    }

    pub fn id(&self, n: usize) -> JamiId {
        self.nodes[n].jami_id()
    }

    /// The account id of node `n` as the core's strings hold it.
    fn account(&self, n: usize) -> String {
        self.nodes[n].jami_id().to_string()
    }

    /// Node `n` goes online: its core starts (anew after being offline, with what its
    /// data directory holds), and its inbox brings what waited.
    pub fn online(&mut self, n: usize) {
        if self.nodes[n].online {
            return;
        }
        let node = &self.nodes[n];
        let mut members = Members::default();
        if let Ok(rd) = std::fs::read_dir(node.dir.join("conversations")) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                if let Ok(c) = Conversation::open(&e.path()) {
                    members.set(&id, c.members().unwrap());
                }
            }
        }
        let conv_requests = std::fs::read(node.dir.join("convRequests.json"))
            .ok()
            .and_then(|b| pamoja_client::core::decode_conv_requests(&b))
            .unwrap_or_default();
        let state = State {
            contacts: pamoja_client::contacts::Contacts::load(&node.dir).unwrap(),
            members,
            conv_requests,
            ..State::default()
        };
        let settings = node.core.settings().clone();
        let config = CoreConfig {
            me: node.jami_id().to_string(),
            device: node.device.to_string(),
            short_device: node.chain[0].short_device_id().to_string(),
            ice_addr: IpAddr::from([10, 0, 0, n as u8 + 1]),
        };
        let mut core = Core::new(
            config,
            State { settings, ..state },
            Box::new(Seeded(n as u64 + 100 + self.next_ticket)),
            Box::new(SeenSet::default()),
            self.now,
            self.unix(),
        );
        core.start(self.now, self.unix());
        let node = &mut self.nodes[n];
        node.core = core;
        node.online = true;
        let waiting = self.inbox.remove(&node.device).unwrap_or_default();
        for i in waiting {
            self.queue.push_back((n, i));
        }
    }

    /// Node `n` goes offline: its links close on the other side, what it was doing is
    /// lost.
    pub fn offline(&mut self, n: usize) {
        self.nodes[n].online = false;
        let pending: Vec<_> = self.nodes[n].pending_serve.drain().collect();
        for (_, p) in pending {
            let e = Err(io_err("the peer went away"));
            self.git_done(p.client, Some(p.conversation), p.op, e);
        }
        let chans: Vec<_> = self.nodes[n].channels.drain().collect();
        for (_, (peer, theirs)) in chans {
            self.nodes[peer].channels.remove(&theirs);
            self.queue.push_back((peer, Input::ChannelClosed(theirs)));
        }
        self.queue.retain(|(i, _)| *i != n);
        for l in self.listeners.values_mut() {
            l.retain(|i| *i != n);
        }
    }

    /// Hands an input to node `n` (after those already waiting).
    pub fn inject(&mut self, n: usize, input: Input) {
        self.queue.push_back((n, input));
    }

    /// Runs a command on node `n`; its ticket.
    pub fn command(&mut self, n: usize, c: Command) -> Ticket {
        let t = Ticket(self.next_ticket);
        self.next_ticket += 1;
        self.queue.push_back((n, Input::Command(t, c)));
        t
    }

    /// Runs a command to its reply (or panics after `limit` of virtual time).
    pub fn ask(&mut self, n: usize, c: Command) -> Result<Reply, String> {
        let t = self.command(n, c);
        self.run_until(Duration::from_secs(120), |w| {
            w.nodes[n].replies.contains_key(&t)
        });
        self.nodes[n].replies.remove(&t).expect("a reply")
    }

    /// Runs until `done` holds, or `limit` of virtual time passed; whether it held.
    pub fn run_until(&mut self, limit: Duration, done: impl Fn(&World) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            while self.step() {
                if done(self) {
                    return true;
                }
            }
            if done(self) {
                return true;
            }
            let next = self
                .nodes
                .iter()
                .filter(|n| n.online)
                .filter_map(|n| n.core.poll_timeout())
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let (now, unix) = (self.now, self.unix());
                    for node in self.nodes.iter_mut().filter(|n| n.online) {
                        if node.core.poll_timeout().is_some_and(|at| at <= now) {
                            node.core.handle_timeout(now, unix);
                        }
                    }
                }
                _ => {
                    self.now = end;
                    self.settle();
                    return done(self);
                }
            }
        }
    }

    /// Runs every input and every I/O until nothing moves at this instant.
    pub fn settle(&mut self) {
        while self.step() {}
    }

    /// Runs the I/O every core asked for, then one input; whether anything moved.
    pub fn step(&mut self) -> bool {
        let mut moved = false;
        for n in 0..self.nodes.len() {
            if !self.nodes[n].online {
                continue;
            }
            while let Some(e) = self.nodes[n].core.poll_event() {
                self.nodes[n].events.push(e);
            }
            while let Some(io) = self.nodes[n].core.poll_io() {
                moved = true;
                self.execute(n, io);
            }
        }
        if let Some((n, input)) = self.queue.pop_front() {
            moved = true;
            if self.nodes[n].online {
                let (now, unix) = (self.now, self.unix());
                self.nodes[n].core.handle(now, unix, input);
            }
        }
        moved
    }

    fn node_of_device(&self, d: &DeviceId) -> Option<usize> {
        self.nodes.iter().position(|n| n.device == *d)
    }

    fn node_of_account(&self, a: &str) -> Vec<usize> {
        self.announced.get(a).cloned().unwrap_or_default()
    }

    fn deliver_inbox(&mut self, device: &DeviceId, input: Input) {
        match self.node_of_device(device) {
            Some(to) if self.nodes[to].online => self.queue.push_back((to, input)),
            Some(_) => self.inbox.entry(*device).or_default().push(input),
            None => {}
        }
    }

    /// A channel between node `a` (which asked) and node `b`; the two ends.
    fn link(&mut self, a: usize, b: usize) -> (ChannelId, ChannelId) {
        let x = ChannelId(self.next_channel);
        let y = ChannelId(self.next_channel + 1);
        self.next_channel += 2;
        self.nodes[a].channels.insert(x, (b, y));
        self.nodes[b].channels.insert(y, (a, x));
        (x, y)
    }

    fn execute(&mut self, n: usize, io: Io) {
        match io {
            Io::Reply(t, r) => {
                self.nodes[n]
                    .replies
                    .insert(t, r.map_err(|e| e.to_string()));
            }
            Io::Announce => {
                let me = self.account(n);
                let short = self.nodes[n].chain[0].short_device_id();
                let list = self.announced.entry(me.clone()).or_default();
                if !list.contains(&n) {
                    list.push(n);
                }
                for l in self.listeners.get(&me).cloned().unwrap_or_default() {
                    self.queue.push_back((
                        l,
                        Input::Announced {
                            account: me.parse().unwrap(),
                            device: short,
                            fresh: true,
                        },
                    ));
                }
            }
            Io::LookupDevices(account) => {
                let chains = self
                    .node_of_account(&account.to_string())
                    .into_iter()
                    .map(|i| self.nodes[i].chain.clone())
                    .collect();
                self.queue
                    .push_back((n, Input::Devices { account, chains }));
            }
            Io::LookupAnnouncements(account) | Io::Listen(account) => {
                // Announcements live ten minutes on the DHT: an offline device's is still
                // found for a while, as here (the tests run shorter than that).
                for i in self.node_of_account(&account.to_string()) {
                    if !self.nodes[i].online {
                        continue;
                    }
                    let short = self.nodes[i].chain[0].short_device_id();
                    self.queue.push_back((
                        n,
                        Input::Announced {
                            account,
                            device: short,
                            fresh: false,
                        },
                    ));
                }
                let l = self.listeners.entry(account.to_string()).or_default();
                if !l.contains(&n) {
                    l.push(n);
                }
            }
            Io::PutTrust { device, request } => {
                let from = self.account(n).parse().unwrap();
                let input = Input::Trust {
                    from,
                    device: self.nodes[n].chain[0].public_key().spki_der().to_vec(),
                    request,
                };
                self.deliver_inbox(&device.device_id(), input);
            }
            Io::PutInbox {
                device,
                id,
                mime,
                body,
            } => {
                let input = Input::Inbox {
                    id: format!("{id:016x}"),
                    from: self.account(n).parse().unwrap(),
                    device: self.nodes[n].device,
                    mime,
                    body,
                };
                self.deliver_inbox(&device.device_id(), input);
            }
            Io::Ban { account, banned } => {
                if banned {
                    self.nodes[n].link_bans.insert(account);
                } else {
                    self.nodes[n].link_bans.remove(&account);
                }
            }
            Io::OpenSip { chain } => {
                let device = chain[0].public_key().device_id();
                // Either side's link layer refuses an account it bans (the TLS check).
                let refused = |w: &Self, a: usize, b: usize| {
                    w.account(b)
                        .parse()
                        .is_ok_and(|id: JamiId| w.nodes[a].link_bans.contains(&id))
                };
                match self.node_of_device(&device) {
                    Some(b)
                        if self.nodes[b].online && !refused(self, n, b) && !refused(self, b, n) =>
                    {
                        let (x, y) = self.link(n, b);
                        let (a_id, b_id) = (
                            self.account(n).parse().unwrap(),
                            self.account(b).parse().unwrap(),
                        );
                        let a_dev = self.nodes[n].device;
                        self.queue.push_back((
                            b,
                            Input::ChannelUp {
                                channel: y,
                                device: a_dev,
                                account: Some(a_id),
                                name: "sip".into(),
                            },
                        ));
                        self.queue.push_back((
                            n,
                            Input::ChannelUp {
                                channel: x,
                                device,
                                account: Some(b_id),
                                name: "sip".into(),
                            },
                        ));
                    }
                    _ => self.queue.push_back((
                        n,
                        Input::ChannelFailed {
                            device,
                            reason: "unreachable".into(),
                        },
                    )),
                }
            }
            Io::Send { channel, data } => {
                if let Some((peer, theirs)) = self.nodes[n].channels.get(&channel).copied() {
                    self.queue.push_back((
                        peer,
                        Input::ChannelData {
                            channel: theirs,
                            data,
                        },
                    ));
                }
            }
            Io::Close(channel) => {
                if let Some(p) = self.nodes[n].pending_serve.remove(&channel) {
                    self.git_done(p.client, Some(p.conversation), p.op, Err(io_err("refused")));
                }
                if let Some((peer, theirs)) = self.nodes[n].channels.remove(&channel) {
                    self.nodes[peer].channels.remove(&theirs);
                    self.queue.push_back((peer, Input::ChannelClosed(theirs)));
                }
                self.queue.push_back((n, Input::ChannelClosed(channel)));
            }
            Io::Serve { channel, .. } => {
                if let Some(p) = self.nodes[n].pending_serve.remove(&channel) {
                    self.nodes[n].channels.remove(&channel);
                    let result = self.transfer(p.client, n, &p.conversation, &p.op);
                    if result.is_ok() {
                        let (dev, acc) = (self.nodes[p.client].device, self.account(p.client));
                        self.queue.push_back((
                            n,
                            Input::Served {
                                conversation: p.conversation.parse().unwrap(),
                                device: dev,
                                account: Some(acc.parse().unwrap()),
                            },
                        ));
                    }
                    self.git_done(p.client, Some(p.conversation), p.op, result);
                }
            }
            Io::Git { conversation, op } => self.git(n, conversation.map(|c| c.to_string()), op),
            Io::Persist { file, data, extra } => {
                use pamoja_client::core::StateFile;
                let dir = &self.nodes[n].dir;
                match file {
                    StateFile::Contacts => {
                        std::fs::write(dir.join("contacts"), data).unwrap();
                        std::fs::write(dir.join("incomingTrustRequests"), extra.unwrap()).unwrap();
                    }
                    StateFile::Settings => std::fs::write(dir.join("settings.json"), data).unwrap(),
                    StateFile::ConvRequests => {
                        std::fs::write(dir.join("convRequests.json"), data).unwrap()
                    }
                }
            }
            // Media are pretend: a session is gathered at once, its streams are up as soon
            // as they start, and report no figures.
            Io::GatherMedia {
                gather, components, ..
            } => {
                let sections = (components / 2).max(1) as usize;
                let ip = IpAddr::from([10, 0, 0, n as u8 + 1]);
                let local = LocalMedia {
                    ufrag: format!("u{n}g{}", gather.0),
                    pwd: format!("pwd{n}gather{}0123456789abcdef", gather.0),
                    ports: (0..sections).map(|i| 4000 + 2 * i as u16).collect(),
                    candidates: (0..sections)
                        .map(|i| {
                            vec![
                                format!("1 1 UDP 2130706431 {ip} {} typ host", 4000 + 2 * i),
                                format!("1 2 UDP 2130706430 {ip} {} typ host", 4001 + 2 * i),
                            ]
                        })
                        .collect(),
                };
                self.queue.push_back((
                    n,
                    Input::MediaGathered {
                        gather,
                        local: Some(local),
                    },
                ));
            }
            Io::StartMedia {
                call, hold, video, ..
            } => {
                self.nodes[n].media_starts.push((call.clone(), hold, video));
                self.queue.push_back((
                    n,
                    Input::CallMedia {
                        call,
                        news: MediaNews::Up,
                    },
                ));
            }
            Io::StopMedia(call) => self
                .queue
                .push_back((n, Input::CallReport { call, stats: None })),
            Io::DropMedia(_)
            | Io::KeyFrame(_)
            | Io::SetMuted { .. }
            | Io::CallStarted { .. }
            | Io::CallEnded(_) => {}
        }
    }

    fn git_done(
        &mut self,
        n: usize,
        conversation: Option<String>,
        op: GitOp,
        result: Result<GitOutcome, ClientError>,
    ) {
        self.queue.push_back((
            n,
            Input::Git {
                conversation: conversation.map(|c| c.parse().unwrap()),
                op,
                result,
            },
        ));
    }

    fn conv_dir(&self, n: usize, id: &str) -> PathBuf {
        self.nodes[n].dir.join("conversations").join(id)
    }

    /// A repository change of node `n`: local ones at once, fetches and clones once the
    /// serving node's core accepted the channel.
    fn git(&mut self, n: usize, conversation: Option<String>, op: GitOp) {
        let target = match &op {
            GitOp::Fetch { device, .. } => self.node_of_device(device).map(|b| vec![b]),
            GitOp::Clone { chains } => Some(
                chains
                    .iter()
                    .filter_map(|c| self.node_of_device(&c[0].public_key().device_id()))
                    .collect(),
            ),
            _ => None,
        };
        let Some(targets) = target else {
            let r = local_change(&self.nodes[n], conversation.as_deref(), &op);
            return self.git_done(n, conversation, op, r);
        };
        let conv = conversation.clone().unwrap_or_default();
        let Some(&b) = targets.iter().find(|&&b| self.nodes[b].online) else {
            return self.git_done(n, conversation, op, Err(io_err("no device online")));
        };
        // The serving core sees a `git://` channel from us and decides.
        let (_x, y) = self.link(n, b);
        let name = format!("git://{}/{conv}", self.nodes[b].device);
        let (dev, acc) = (self.nodes[n].device, self.account(n));
        self.nodes[b].pending_serve.insert(
            y,
            PendingFetch {
                client: n,
                conversation: conv,
                op,
            },
        );
        self.queue.push_back((
            b,
            Input::ChannelUp {
                channel: y,
                device: dev,
                account: Some(acc.parse().unwrap()),
                name,
            },
        ));
    }

    /// The git exchange of a fetch or clone of node `client` from node `server`, over an
    /// in-memory pipe.
    fn transfer(
        &mut self,
        client: usize,
        server: usize,
        conv: &str,
        op: &GitOp,
    ) -> Result<GitOutcome, ClientError> {
        let dir = self.conv_dir(client, conv);
        let served = self.conv_dir(server, conv);
        let device = self.nodes[server].device.to_string();
        let (mut ours, theirs) = tokio::io::duplex(1 << 16);
        match op {
            GitOp::Fetch { .. } => {
                let c = Conversation::open(&dir)?;
                let before = c.head()?;
                drop(c);
                let remote = self.rt.block_on(async {
                    let (r, _) = tokio::join!(
                        async {
                            let r = pamoja_swarm::git::fetch(&dir, &mut ours, conv, &device).await;
                            drop(ours);
                            r
                        },
                        pamoja_swarm::git::serve(&served, theirs)
                    );
                    r
                })?;
                let c = Conversation::open(&dir)?;
                let pulled = c
                    .pull(&self.nodes[client].signer, remote)
                    .map_err(|e| ClientError::Refused(e.to_string()))?;
                let moved_to = match pulled {
                    Pulled::UpToDate => None,
                    Pulled::Merged(id) => Some(id.to_string().parse().unwrap()),
                    Pulled::FastForward => Some(remote.to_string().parse().unwrap()),
                };
                let mut commits = Vec::new();
                if moved_to.is_some() {
                    let repo = c.repo();
                    let mut walk = repo.revwalk().map_err(io_err)?;
                    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
                        .map_err(io_err)?;
                    walk.push(c.head()?).map_err(io_err)?;
                    walk.hide(before).map_err(io_err)?;
                    for o in walk.flatten() {
                        commits.push(c.message(o)?);
                    }
                }
                Ok(GitOutcome {
                    commits,
                    members: c.members()?,
                    moved_to,
                    ..GitOutcome::default()
                })
            }
            GitOp::Clone { .. } => {
                let c = self.rt.block_on(async {
                    let (r, _) = tokio::join!(
                        async {
                            let r = pamoja_swarm::git::clone(&dir, &mut ours, conv, &device).await;
                            drop(ours);
                            r
                        },
                        pamoja_swarm::git::serve(&served, theirs)
                    );
                    r
                });
                let c = c.map_err(|e| ClientError::CloneRefused(vec![(device, e.to_string())]))?;
                let mut commits = c.messages(None, None)?;
                commits.reverse();
                Ok(GitOutcome {
                    commits,
                    members: c.members()?,
                    ..GitOutcome::default()
                })
            }
            _ => Err(io_err("not a transfer")),
        }
    }
}

/// A change of node `node`'s own repository.
fn local_change(
    node: &Node,
    conversation: Option<&str>,
    op: &GitOp,
) -> Result<GitOutcome, ClientError> {
    let convs = node.dir.join("conversations");
    if let GitOp::Create { mode, invited } = op {
        let tmp = convs.join(".new");
        let invited = invited.map(|i| i.to_string());
        let c = Conversation::create(&tmp, &node.signer, *mode, invited.as_deref())?;
        let id = c.id()?;
        let members = c.members()?;
        drop(c);
        std::fs::rename(&tmp, convs.join(&id))?;
        return Ok(GitOutcome {
            created: Some(id.parse().unwrap()),
            members,
            ..GitOutcome::default()
        });
    }
    let dir = convs.join(conversation.unwrap_or_default());
    if *op == GitOp::Remove {
        std::fs::remove_dir_all(&dir)?;
        return Ok(GitOutcome::default());
    }
    let c = Conversation::open(&dir)?;
    if *op == GitOp::History {
        let mut commits = c.messages(None, None)?;
        commits.reverse();
        return Ok(GitOutcome {
            commits,
            ..GitOutcome::default()
        });
    }
    let ids = match op {
        GitOp::Post(t) => vec![c.post(&node.signer, t)?],
        GitOp::AddMember(id) => vec![c.add_member(&node.signer, &id.to_string())?],
        GitOp::Join => vec![c.join(&node.signer)?],
        GitOp::Leave => vec![c.leave(&node.signer)?],
        GitOp::VoteBan(id) => c.vote_ban(&node.signer, &id.to_string())?,
        _ => Vec::new(),
    };
    let commits = ids
        .into_iter()
        .map(|i| c.message(i))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(GitOutcome {
        commits,
        members: c.members()?,
        ..GitOutcome::default()
    })
}

/// Writes a commit on `main` of a repository that no device signed (a forged history).
pub fn forge_commit(dir: &Path, text: &str) {
    let repo = git2::Repository::open(dir).unwrap();
    let head = repo.head().unwrap().peel_to_commit().unwrap();
    let sig = git2::Signature::now("mallory", "mallory").unwrap();
    let body = format!("{{\"body\":\"{text}\",\"type\":\"text/plain\"}}");
    repo.commit(
        Some("HEAD"),
        &sig,
        &sig,
        &body,
        &head.tree().unwrap(),
        &[&head],
    )
    .unwrap();
}
