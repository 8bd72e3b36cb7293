//! The ICE agent (RFC 8445, RFC 6544 for TCP) as a sans-IO state machine, with the timing of
//! jamid's pjnath fork.
//!
//! The agent owns no socket. It is fed what arrives ([`Agent::handle_input`]) and the time
//! ([`Agent::handle_timeout`]), and hands back what to send ([`Agent::poll_transmit`]), what
//! happened ([`Agent::poll_event`]) and when to wake it ([`Agent::poll_timeout`]). A
//! [`Transmit`] names the local *base* address it leaves from and the remote address; the
//! driver maps that to a socket, a TCP connection (opened from an `active` candidate, or
//! accepted on a `passive` one), or a TURN relay whose relayed address is the base.
//!
//! What it does:
//!
//! * pairs local and remote candidates of the same transport and address family (TCP:
//!   `active` with `passive`, `so` with `so`; pairs whose local side is `passive` are pruned,
//!   as pjnath does: that side only answers), orders them by RFC 8445 pair priority, and
//!   checks one every `Ta` (50 ms), triggered checks first;
//! * a check is a Binding request with `USERNAME` `remote:local`, `PRIORITY`, the role
//!   attribute and its tie-breaker, `MESSAGE-INTEGRITY` under the remote password and
//!   `FINGERPRINT`; it is sent again after 500 ms, doubling, 7 times in all (pjnath does
//!   this over TCP too);
//! * incoming checks are answered only when they carry our ufrag, a valid integrity under our
//!   password and a `PRIORITY` (pjnath silently ignores one without it); an unknown source is a
//!   peer-reflexive candidate; each answered check triggers our own check of that pair;
//!   role conflicts are settled by tie-breaker (487 or a role switch, RFC 8445 §7.3.1.1);
//! * regular nomination: the controlling agent waits 400 ms after its first valid pair (and,
//!   when that pair is relayed, up to 2 s while a better one is still being checked), then
//!   checks the best valid pair
//!   again with `USE-CANDIDATE`; the controlled agent selects a
//!   pair when a `USE-CANDIDATE` check arrives on a pair whose own check succeeded (or when
//!   that check later succeeds), and fails after 10 s without nomination;
//! * after selection, consent freshness (RFC 7675): a check on the selected pair every 5 s
//!   (± 20 %), and failure when none was answered for 30 s.
//!
//! Only a pair whose own check succeeded can be selected; application data is accepted only
//! on a pair that passed a check in one direction or the other (ours answered, or the
//! peer's authenticated by our password).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::candidate::{Candidate, IceMessage, Kind, TcpType, Transport, foundation, priority};
use crate::random::{OsRandom, Random};
use crate::stun::{BINDING, Builder, Class, Message, attr};

/// Which side of the negotiation we are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Decides which pair is used (Jami: the side answering a connection request).
    Controlling,
    /// Follows the controlling agent's nomination (Jami: the side asking).
    Controlled,
}

/// Timing and identity of an agent; the defaults are jamid's.
#[derive(Debug, Clone)]
pub struct Config {
    /// Pacing of ordinary checks (`PJ_ICE_TA_VAL`, 50 ms).
    pub ta: Duration,
    /// First retransmission timeout of a check (500 ms), doubled after each retransmission.
    pub rto: Duration,
    /// Transmissions of a check before it fails (7).
    pub max_transmits: u32,
    /// Wait after the last transmission before a check fails (1.5 s: about 33 s in all).
    pub final_wait: Duration,
    /// Controlling side: wait after the first valid pair before nominating (400 ms).
    pub nomination_delay: Duration,
    /// Controlling side: skip `nomination_delay` when no better pair is left to check (a
    /// call's media on a LAN: pjnath does the same). Off by default: device links over TCP
    /// keep the delay, which their passive side needs to settle its connections.
    pub nominate_when_settled: bool,
    /// Controlling side: when the best valid pair is relayed, keep waiting after
    /// `nomination_delay` while a better pair is still being checked, up to this long after
    /// the first valid pair (2 s): a hole punch often needs one retransmission, and a relayed
    /// pair answers first.
    pub nomination_patience: Duration,
    /// Controlled side: fail when nothing was nominated this long after the checks
    /// started; controlling side: keep waiting for incoming checks this long after its own
    /// checks all failed (10 s).
    pub nomination_timeout: Duration,
    /// Consent checks on the selected pair (5 s, randomised by ± 20 %).
    pub consent_interval: Duration,
    /// Consent is lost after this long without an answer (30 s).
    pub consent_timeout: Duration,
    /// `SOFTWARE` attribute of our requests and answers.
    pub software: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ta: Duration::from_millis(50),
            rto: Duration::from_millis(500),
            max_transmits: 7,
            final_wait: Duration::from_millis(1500),
            nomination_delay: Duration::from_millis(400),
            nominate_when_settled: false,
            nomination_patience: Duration::from_secs(2),
            nomination_timeout: Duration::from_secs(10),
            consent_interval: Duration::from_secs(5),
            consent_timeout: Duration::from_secs(30),
            software: Some(concat!("pamoja-ice ", env!("CARGO_PKG_VERSION")).to_owned()),
        }
    }
}

/// The agent's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Local candidates are being added; no remote description yet.
    New,
    /// Connectivity checks are running.
    Checking,
    /// A pair was selected; data may flow on it.
    Completed,
    /// No pair could be selected, or consent was lost.
    Failed,
}

/// Why the agent failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Every check failed and no peer check arrived in time.
    ChecksFailed,
    /// Controlled side: the controlling agent never nominated a pair.
    NominationTimeout,
    /// The selected pair stopped answering consent checks.
    ConsentLost,
}

/// A checked pair, as reported when it is selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedPair {
    /// Our candidate.
    pub local: Candidate,
    /// The peer's candidate (peer-reflexive when it was learnt from a check).
    pub remote: Candidate,
}

/// What the agent reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A pair passed its check (both ways for a selected pair).
    PairSucceeded(SelectedPair),
    /// The pair data now flows on.
    Selected(SelectedPair),
    /// The role changed after a conflict.
    RoleChanged(Role),
    /// The agent gave up.
    Failed(Failure),
}

/// Bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Transport.
    pub transport: Transport,
    /// The local base address to send from: a UDP socket, a TCP candidate (the `active`
    /// one's port is 9: connect from that address), a passive socket's accepted
    /// connection, or a TURN relayed address.
    pub local: SocketAddr,
    /// Destination.
    pub remote: SocketAddr,
    /// Payload (a STUN message, or application data; unframed).
    pub data: Vec<u8>,
}

/// What [`Agent::handle_input`] made of bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A STUN message for the agent (answered or matched), or bytes it dropped.
    Consumed,
    /// Application data on a checked pair.
    Data(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PairState {
    Waiting,
    InProgress,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone)]
struct Check {
    transaction: [u8; 12],
    request: Vec<u8>,
    transmits: u32,
    next: Instant,
    interval: Duration,
    nominating: bool,
    consent: bool,
}

#[derive(Debug, Clone)]
struct Pair {
    local: usize,
    remote: usize,
    state: PairState,
    check: Option<Check>,
    /// The peer sent USE-CANDIDATE on this pair (we are controlled).
    nominated_by_peer: bool,
    /// We answered an authenticated check of the peer on this pair: its remote address
    /// knows our password, so its data is accepted even before our own check succeeds.
    answered: bool,
}

#[derive(Debug, Clone)]
struct Local {
    candidate: Candidate,
    base: SocketAddr,
}

/// An agent's identity towards the peer: several agents sharing one (the components of a
/// media session) answer to the same `ufrag:pwd` and settle role conflicts alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Username fragment.
    pub ufrag: String,
    /// Password.
    pub pwd: String,
    /// Tie-breaker for role conflicts.
    pub tie_breaker: u64,
}

impl Credentials {
    /// Fresh credentials: 8 and 24 lower-case hex characters, as pjnath writes them, and a
    /// random tie-breaker.
    pub fn random() -> Self {
        Self::generate(&mut OsRandom)
    }

    /// Fresh credentials as [`Credentials::random`] makes them, drawn from `random`.
    pub fn generate(random: &mut dyn Random) -> Self {
        Self {
            ufrag: random_hex(random, 8),
            pwd: random_hex(random, 24),
            tie_breaker: random.next_u64(),
        }
    }
}

/// The ICE agent of one component.
#[derive(Debug)]
pub struct Agent {
    config: Config,
    role: Role,
    component: u32,
    tie_breaker: u64,
    ufrag: String,
    pwd: String,
    remote_ufrag: Option<String>,
    remote_pwd: Option<String>,
    locals: Vec<Local>,
    remotes: Vec<Candidate>,
    pairs: Vec<Pair>,
    triggered: VecDeque<usize>,
    early: Vec<(Transport, SocketAddr, SocketAddr, u32, bool)>,
    state: State,
    started: Option<Instant>,
    next_check: Option<Instant>,
    nominate_at: Option<Instant>,
    first_valid: Option<Instant>,
    nominating: bool,
    selected: Option<usize>,
    last_consent: Option<Instant>,
    next_consent: Option<Instant>,
    all_failed_at: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    random: Box<dyn Random>,
}

fn random_hex(random: &mut dyn Random, n: usize) -> String {
    let mut b = vec![0u8; n.div_ceil(2)];
    random.fill(&mut b);
    let mut s: String = b.iter().map(|x| format!("{x:02x}")).collect();
    s.truncate(n);
    s
}

/// RFC 8445 §6.1.2.3 pair priority.
pub fn pair_priority(controlling: u32, controlled: u32) -> u64 {
    let (g, d) = (u64::from(controlling), u64::from(controlled));
    (1u64 << 32) * g.min(d) + 2 * g.max(d) + u64::from(g > d)
}

impl Agent {
    /// A new agent with fresh credentials (8 and 24 lower-case hex characters, as pjnath)
    /// and a random tie-breaker.
    pub fn new(role: Role, config: Config) -> Self {
        Self::with_random(role, config, OsRandom)
    }

    /// An agent as [`Agent::new`] makes it, drawing its credentials, tie-breaker,
    /// transaction ids and timer jitter from `random`: two agents given generators in the
    /// same state and the same inputs send the same bytes.
    pub fn with_random(role: Role, config: Config, mut random: impl Random + 'static) -> Self {
        let credentials = Credentials::generate(&mut random);
        Self::for_component_with_random(role, config, credentials, 1, random)
    }

    /// An agent for `component` (1-256) answering to `credentials`: one of the agents of a
    /// media session, whose components share credentials and each have sockets of their
    /// own. It pairs only the peer's candidates of the same component.
    pub fn for_component(
        role: Role,
        config: Config,
        credentials: Credentials,
        component: u32,
    ) -> Self {
        Self::for_component_with_random(role, config, credentials, component, OsRandom)
    }

    /// An agent as [`Agent::for_component`] makes it, drawing its transaction ids and timer
    /// jitter from `random`.
    pub fn for_component_with_random(
        role: Role,
        config: Config,
        credentials: Credentials,
        component: u32,
        random: impl Random + 'static,
    ) -> Self {
        Self {
            random: Box::new(random),
            config,
            role,
            component: component.clamp(1, 256),
            tie_breaker: credentials.tie_breaker,
            ufrag: credentials.ufrag,
            pwd: credentials.pwd,
            remote_ufrag: None,
            remote_pwd: None,
            locals: Vec::new(),
            remotes: Vec::new(),
            pairs: Vec::new(),
            triggered: VecDeque::new(),
            early: Vec::new(),
            state: State::New,
            started: None,
            next_check: None,
            nominate_at: None,
            first_valid: None,
            nominating: false,
            selected: None,
            last_consent: None,
            next_consent: None,
            all_failed_at: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Our username fragment.
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// Our password.
    pub fn pwd(&self) -> &str {
        &self.pwd
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Adds a local candidate sent from `base` (a host candidate's own address; the host
    /// socket of a server-reflexive one; a relayed address for a relay candidate).
    /// The candidate is renumbered to the agent's component.
    pub fn add_local_candidate(&mut self, candidate: Candidate, base: SocketAddr) {
        let candidate = if candidate.component == self.component {
            candidate
        } else {
            candidate.for_component(self.component)
        };
        if self.locals.iter().any(|l| l.candidate == candidate) {
            return;
        }
        self.locals.push(Local { candidate, base });
        let li = self.locals.len() - 1;
        for ri in 0..self.remotes.len() {
            self.pair_up(li, ri);
        }
    }

    /// Our local candidates.
    pub fn local_candidates(&self) -> impl Iterator<Item = &Candidate> {
        self.locals.iter().map(|l| &l.candidate)
    }

    /// Our credentials and candidates, as the connection manager's ICE message.
    pub fn local_description(&self) -> IceMessage {
        IceMessage {
            ufrag: self.ufrag.clone(),
            pwd: self.pwd.clone(),
            candidates: self
                .locals
                .iter()
                .filter(|l| l.candidate.kind != Kind::Prflx)
                .map(|l| l.candidate.clone())
                .collect(),
        }
    }

    /// Sets the peer's credentials and candidates and starts the checks at `now`.
    pub fn set_remote(&mut self, now: Instant, remote: &IceMessage) {
        self.remote_ufrag = Some(remote.ufrag.clone());
        self.remote_pwd = Some(remote.pwd.clone());
        for c in &remote.candidates {
            self.add_remote_candidate(c.clone());
        }
        if self.state == State::New {
            self.state = State::Checking;
            self.started = Some(now);
            self.next_check = Some(now);
        }
        for (transport, local, remote, prio, use_candidate) in std::mem::take(&mut self.early) {
            self.on_checked_by_peer(now, transport, local, remote, prio, use_candidate);
        }
    }

    /// The component this agent negotiates.
    pub fn component(&self) -> u32 {
        self.component
    }

    /// Adds one more remote candidate (of this agent's component; others are ignored).
    pub fn add_remote_candidate(&mut self, candidate: Candidate) {
        if candidate.component != self.component || self.remotes.len() >= 256 {
            return;
        }
        if let Some(i) = self
            .remotes
            .iter()
            .position(|r| r.transport == candidate.transport && r.addr == candidate.addr)
        {
            // A signalled candidate replaces a peer-reflexive guess of the same address.
            if self.remotes[i].kind == Kind::Prflx && candidate.kind != Kind::Prflx {
                self.remotes[i] = candidate;
            }
            return;
        }
        self.remotes.push(candidate);
        let ri = self.remotes.len() - 1;
        for li in 0..self.locals.len() {
            self.pair_up(li, ri);
        }
    }

    fn pair_up(&mut self, li: usize, ri: usize) {
        let (l, r) = (&self.locals[li], &self.remotes[ri]);
        let lc = &l.candidate;
        if lc.transport != r.transport || lc.addr.is_ipv4() != r.addr.is_ipv4() {
            return;
        }
        // A server-reflexive candidate is checked from its base, which its host candidate
        // already covers (UDP); a TCP srflx `active` does the same as the host `active`.
        if lc.kind == Kind::Srflx || lc.kind == Kind::Prflx {
            return;
        }
        if lc.transport == Transport::Tcp {
            match (lc.tcp_type, r.tcp_type) {
                (Some(TcpType::Active), Some(TcpType::Passive))
                | (Some(TcpType::So), Some(TcpType::So)) => {}
                // Our passive side only answers; never connect to an active port 9.
                _ => return,
            }
        }
        if self.pairs.len() >= 1024
            || self.pairs.iter().any(|p| {
                self.locals[p.local].base == l.base && self.remotes[p.remote].addr == r.addr
            })
        {
            return;
        }
        self.pairs.push(Pair {
            local: li,
            remote: ri,
            state: PairState::Waiting,
            check: None,
            nominated_by_peer: false,
            answered: false,
        });
        self.all_failed_at = None;
    }

    fn priority_of(&self, p: &Pair) -> u64 {
        let (l, r) = (
            self.locals[p.local].candidate.priority,
            self.remotes[p.remote].priority,
        );
        match self.role {
            Role::Controlling => pair_priority(l, r),
            Role::Controlled => pair_priority(r, l),
        }
    }

    fn selected_pair(&self, pi: usize) -> SelectedPair {
        let p = &self.pairs[pi];
        SelectedPair {
            local: self.locals[p.local].candidate.clone(),
            remote: self.remotes[p.remote].clone(),
        }
    }

    /// The selected pair, once [`State::Completed`].
    pub fn selected(&self) -> Option<SelectedPair> {
        self.selected.map(|i| self.selected_pair(i))
    }

    /// The selected pair's local base address and remote address.
    pub fn selected_path(&self) -> Option<(Transport, SocketAddr, SocketAddr)> {
        let p = &self.pairs[self.selected?];
        let l = &self.locals[p.local];
        Some((l.candidate.transport, l.base, self.remotes[p.remote].addr))
    }

    /// Application data for the peer, on the selected pair; `None` before completion.
    pub fn send(&self, data: &[u8]) -> Option<Transmit> {
        let (transport, local, remote) = self.selected_path()?;
        Some(Transmit {
            transport,
            local,
            remote,
            data: data.to_vec(),
        })
    }

    /// Next thing to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Agent::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Failed {
            return None;
        }
        let mut t: Vec<Instant> = Vec::new();
        if self.state == State::Checking {
            if self.has_waiting() {
                t.extend(self.next_check);
            }
            t.extend(self.nominate_at);
            if let Some(s) = self.started {
                if self.role == Role::Controlled {
                    t.push(s + self.config.nomination_timeout);
                }
            }
            if let Some(f) = self.all_failed_at {
                t.push(f + self.config.nomination_timeout);
            }
        }
        t.extend(self.next_consent);
        if let Some(c) = self.last_consent {
            t.push(c + self.config.consent_timeout);
        }
        t.extend(
            self.pairs
                .iter()
                .filter_map(|p| p.check.as_ref().map(|c| c.next)),
        );
        t.into_iter().min()
    }

    fn has_waiting(&self) -> bool {
        !self.triggered.is_empty() || self.pairs.iter().any(|p| p.state == PairState::Waiting)
    }

    /// Advances timers: paced checks, retransmissions, nomination, consent.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Failed {
            return;
        }
        // Retransmissions and timeouts of running checks.
        for pi in 0..self.pairs.len() {
            let Some(check) = self.pairs[pi].check.as_mut() else {
                continue;
            };
            if now < check.next {
                continue;
            }
            if check.transmits >= self.config.max_transmits {
                let consent = check.consent;
                self.pairs[pi].check = None;
                if !consent {
                    self.pair_failed(pi, now);
                }
                continue;
            }
            check.transmits += 1;
            check.interval *= 2;
            check.next = now
                + if check.transmits >= self.config.max_transmits {
                    self.config.final_wait
                } else {
                    check.interval
                };
            let data = check.request.clone();
            self.push_pair_transmit(pi, data);
        }
        if self.state == State::Checking {
            if self.next_check.is_some_and(|t| now >= t) && self.has_waiting() {
                self.next_check = Some(now + self.config.ta);
                if let Some(pi) = self.next_pair() {
                    self.start_check(pi, now, false, false);
                }
            }
            if self.nominate_at.is_some_and(|t| now >= t) {
                self.nominate_at = None;
                self.nominate(now);
            }
            if self.role == Role::Controlled
                && self
                    .started
                    .is_some_and(|s| now >= s + self.config.nomination_timeout)
            {
                self.fail(Failure::NominationTimeout);
                return;
            }
            if self
                .all_failed_at
                .is_some_and(|f| now >= f + self.config.nomination_timeout)
            {
                self.fail(Failure::ChecksFailed);
                return;
            }
        }
        if self.state == State::Completed {
            if self
                .last_consent
                .is_some_and(|c| now >= c + self.config.consent_timeout)
            {
                self.fail(Failure::ConsentLost);
                return;
            }
            if self.next_consent.is_some_and(|t| now >= t) {
                self.schedule_consent(now);
                if let Some(pi) = self.selected {
                    if self.pairs[pi].check.is_none() {
                        self.start_check(pi, now, false, true);
                    }
                }
            }
        }
    }

    fn schedule_consent(&mut self, now: Instant) {
        let base = self.config.consent_interval.as_millis() as u64;
        let jitter = self.random.next_u64() % (base * 2 / 5 + 1);
        self.next_consent = Some(now + Duration::from_millis(base * 4 / 5 + jitter));
    }

    fn fail(&mut self, why: Failure) {
        self.state = State::Failed;
        self.events.push_back(Event::Failed(why));
    }

    fn next_pair(&mut self) -> Option<usize> {
        while let Some(pi) = self.triggered.pop_front() {
            if self.pairs[pi].state == PairState::Waiting {
                return Some(pi);
            }
        }
        (0..self.pairs.len())
            .filter(|&i| self.pairs[i].state == PairState::Waiting)
            .max_by_key(|&i| self.priority_of(&self.pairs[i]))
    }

    fn start_check(&mut self, pi: usize, now: Instant, nominating: bool, consent: bool) {
        let (Some(ruf), Some(rpwd)) = (self.remote_ufrag.clone(), self.remote_pwd.clone()) else {
            return;
        };
        let local = &self.locals[self.pairs[pi].local].candidate;
        let mut transaction = [0u8; 12];
        self.random.fill(&mut transaction);
        let prflx_priority = priority(
            Kind::Prflx.preference(),
            local.priority >> 8 & 0xFFFF,
            self.component,
        );
        let mut b = Builder::new(Class::Request, BINDING, transaction)
            .attr(attr::USERNAME, format!("{ruf}:{}", self.ufrag).as_bytes())
            .attr(attr::PRIORITY, &prflx_priority.to_be_bytes());
        b = match self.role {
            Role::Controlling => b.attr(attr::ICE_CONTROLLING, &self.tie_breaker.to_be_bytes()),
            Role::Controlled => b.attr(attr::ICE_CONTROLLED, &self.tie_breaker.to_be_bytes()),
        };
        if nominating {
            b = b.attr(attr::USE_CANDIDATE, &[]);
        }
        if let Some(s) = &self.config.software {
            b = b.attr(attr::SOFTWARE, s.as_bytes());
        }
        let request = b.integrity(rpwd.as_bytes()).fingerprint();
        let pair = &mut self.pairs[pi];
        if !consent {
            pair.state = PairState::InProgress;
        }
        pair.check = Some(Check {
            transaction,
            request: request.clone(),
            transmits: 1,
            next: now + self.config.rto,
            interval: self.config.rto,
            nominating,
            consent,
        });
        self.push_pair_transmit(pi, request);
    }

    fn push_pair_transmit(&mut self, pi: usize, data: Vec<u8>) {
        let p = &self.pairs[pi];
        let l = &self.locals[p.local];
        self.transmits.push_back(Transmit {
            transport: l.candidate.transport,
            local: l.base,
            remote: self.remotes[p.remote].addr,
            data,
        });
    }

    fn pair_failed(&mut self, pi: usize, now: Instant) {
        self.pairs[pi].state = PairState::Failed;
        if self.nominating && self.selected.is_none() {
            // The nominated pair failed: nominate the next best valid pair.
            self.nominating = false;
            self.nominate_at = Some(now);
        }
        if self.state == State::Checking
            && self.pairs.iter().all(|p| p.state == PairState::Failed)
            && self.all_failed_at.is_none()
        {
            self.all_failed_at = Some(now);
        }
    }

    fn nominate(&mut self, now: Instant) {
        if self.role != Role::Controlling || self.selected.is_some() || self.nominating {
            return;
        }
        let best = (0..self.pairs.len())
            .filter(|&i| self.pairs[i].state == PairState::Succeeded)
            .max_by_key(|&i| self.priority_of(&self.pairs[i]));
        if let Some(pi) = best {
            let floor = self.priority_of(&self.pairs[pi]);
            let better_pending = self.pairs.iter().any(|p| {
                matches!(p.state, PairState::Waiting | PairState::InProgress)
                    && self.priority_of(p) > floor
            });
            let first = *self.first_valid.get_or_insert(now);
            // Worth waiting only to avoid a relay: a direct pair found is good enough.
            let relayed = {
                let p = &self.pairs[pi];
                self.locals[p.local].candidate.kind == Kind::Relay
                    || self.remotes[p.remote].kind == Kind::Relay
            };
            if relayed && better_pending && now < first + self.config.nomination_patience {
                self.nominate_at = Some(now + self.config.ta * 2);
                return;
            }
            self.nominating = true;
            self.pairs[pi].check = None;
            self.start_check(pi, now, true, false);
        }
    }

    fn select(&mut self, pi: usize, now: Instant) {
        if self.selected.is_some() || self.state != State::Checking {
            return;
        }
        self.selected = Some(pi);
        self.state = State::Completed;
        self.last_consent = Some(now);
        self.schedule_consent(now);
        // Stop the other checks: the answer to a late one no longer matters.
        for (i, p) in self.pairs.iter_mut().enumerate() {
            if i != pi {
                p.check = None;
            }
        }
        self.events
            .push_back(Event::Selected(self.selected_pair(pi)));
    }

    fn pair_for(
        &mut self,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<usize> {
        self.pairs.iter().position(|p| {
            let l = &self.locals[p.local];
            l.candidate.transport == transport
                && l.base == local
                && self.remotes[p.remote].addr == remote
        })
    }

    /// Feeds bytes that arrived on `local` (the base address they were received on, as in
    /// [`Transmit::local`]) from `remote`.
    pub fn handle_input(
        &mut self,
        now: Instant,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) -> Input {
        if !Message::is_stun(data) {
            return match self.pair_for(transport, local, remote) {
                Some(pi)
                    if (self.pairs[pi].state == PairState::Succeeded
                        || self.pairs[pi].answered)
                        && self.state != State::Failed =>
                {
                    Input::Data(data.to_vec())
                }
                _ => Input::Consumed,
            };
        }
        let Ok(msg) = Message::decode(data) else {
            return Input::Consumed;
        };
        if msg.get(attr::FINGERPRINT).is_some() && !msg.check_fingerprint(data) {
            return Input::Consumed;
        }
        if msg.method != BINDING {
            if msg.class == Class::Request {
                self.answer_error(transport, local, remote, &msg, 400, "Bad Request", false);
            }
            return Input::Consumed;
        }
        match msg.class {
            Class::Request => self.on_request(now, transport, local, remote, &msg, data),
            Class::Success | Class::Error => self.on_response(now, local, remote, &msg, data),
            // Keep-alive indications are accepted and ignored.
            Class::Indication => {}
        }
        Input::Consumed
    }

    #[allow(clippy::too_many_arguments)]
    fn answer_error(
        &mut self,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        msg: &Message,
        code: u16,
        reason: &str,
        sign: bool,
    ) {
        let mut b =
            Builder::new(Class::Error, msg.method, msg.transaction).error_code(code, reason);
        if let Some(s) = &self.config.software {
            b = b.attr(attr::SOFTWARE, s.as_bytes());
        }
        if sign {
            b = b.integrity(self.pwd.as_bytes());
        }
        self.transmits.push_back(Transmit {
            transport,
            local,
            remote,
            data: b.fingerprint(),
        });
    }

    fn on_request(
        &mut self,
        now: Instant,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        msg: &Message,
        data: &[u8],
    ) {
        // Only on a base we have.
        if !self
            .locals
            .iter()
            .any(|l| l.base == local && l.candidate.transport == transport)
        {
            return;
        }
        let Some(user) = msg.username() else {
            self.answer_error(transport, local, remote, msg, 400, "Bad Request", false);
            return;
        };
        let ours = user
            .split_once(':')
            .is_some_and(|(mine, _)| mine == self.ufrag);
        if !ours || !msg.check_integrity(data, self.pwd.as_bytes()) {
            self.answer_error(transport, local, remote, msg, 401, "Unauthorized", false);
            return;
        }
        let Some(prio) = msg.u32_attr(attr::PRIORITY) else {
            // pjnath ignores such a request without answering.
            return;
        };
        let unknown = msg.unknown_required(&[
            attr::USERNAME,
            attr::MESSAGE_INTEGRITY,
            attr::PRIORITY,
            attr::USE_CANDIDATE,
        ]);
        if !unknown.is_empty() {
            let mut b = Builder::new(Class::Error, BINDING, msg.transaction)
                .error_code(420, "Unknown Attribute")
                .unknown_attributes(&unknown);
            b = b.integrity(self.pwd.as_bytes());
            self.transmits.push_back(Transmit {
                transport,
                local,
                remote,
                data: b.fingerprint(),
            });
            return;
        }
        // Role conflicts (RFC 8445 §7.3.1.1).
        if let Some(theirs) = msg.u64_attr(attr::ICE_CONTROLLING) {
            if self.role == Role::Controlling {
                if self.tie_breaker >= theirs {
                    self.answer_error(transport, local, remote, msg, 487, "Role Conflict", true);
                    return;
                }
                self.switch_role(Role::Controlled);
            }
        } else if let Some(theirs) = msg.u64_attr(attr::ICE_CONTROLLED) {
            if self.role == Role::Controlled {
                if self.tie_breaker >= theirs {
                    self.switch_role(Role::Controlling);
                } else {
                    self.answer_error(transport, local, remote, msg, 487, "Role Conflict", true);
                    return;
                }
            }
        }
        let mut b =
            Builder::new(Class::Success, BINDING, msg.transaction).xor_mapped_address(&remote);
        if let Some(s) = &self.config.software {
            b = b.attr(attr::SOFTWARE, s.as_bytes());
        }
        self.transmits.push_back(Transmit {
            transport,
            local,
            remote,
            data: b.integrity(self.pwd.as_bytes()).fingerprint(),
        });
        let use_candidate = msg.get(attr::USE_CANDIDATE).is_some();
        if self.remote_pwd.is_none() {
            // Early check: answered, remembered, triggered once we know the peer.
            if self.early.len() < 64 {
                self.early
                    .push((transport, local, remote, prio, use_candidate));
            }
            return;
        }
        self.on_checked_by_peer(now, transport, local, remote, prio, use_candidate);
    }

    fn switch_role(&mut self, role: Role) {
        self.role = role;
        self.events.push_back(Event::RoleChanged(role));
    }

    fn on_checked_by_peer(
        &mut self,
        now: Instant,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        prio: u32,
        use_candidate: bool,
    ) {
        if self.state == State::Failed {
            return;
        }
        if !self
            .remotes
            .iter()
            .any(|r| r.transport == transport && r.addr == remote)
        {
            // Peer-reflexive candidates count against the same bound as signalled ones.
            if self.remotes.len() >= 256 {
                return;
            }
            let tcp_type = (transport == Transport::Tcp).then_some(TcpType::Active);
            self.remotes.push(Candidate {
                foundation: foundation(Kind::Prflx, remote.ip()),
                component: self.component,
                transport,
                priority: prio,
                addr: remote,
                kind: Kind::Prflx,
                tcp_type,
            });
        }
        let ri = self
            .remotes
            .iter()
            .position(|r| r.transport == transport && r.addr == remote)
            .expect("just added");
        let pi = match self.pair_for(transport, local, remote) {
            Some(pi) => pi,
            None => {
                // A pair the pairing rules did not form (an accepted TCP connection on our
                // passive side, a peer-reflexive source): checked from the base it came in on.
                let Some(li) = self
                    .locals
                    .iter()
                    .position(|l| l.base == local && l.candidate.transport == transport)
                else {
                    return;
                };
                if self.pairs.len() >= 1024 {
                    return;
                }
                self.pairs.push(Pair {
                    local: li,
                    remote: ri,
                    state: PairState::Waiting,
                    check: None,
                    nominated_by_peer: false,
                    answered: false,
                });
                self.all_failed_at = None;
                self.pairs.len() - 1
            }
        };
        self.pairs[pi].answered = true;
        if use_candidate && self.role == Role::Controlled {
            self.pairs[pi].nominated_by_peer = true;
        }
        match self.pairs[pi].state {
            PairState::Succeeded => {
                if self.pairs[pi].nominated_by_peer && self.role == Role::Controlled {
                    self.select(pi, now);
                }
            }
            PairState::InProgress => {
                // The peer just reached us from there: its NAT is open now, so send our
                // pending check again at once instead of waiting for its timer.
                if let Some(c) = self.pairs[pi].check.as_ref().filter(|c| !c.consent) {
                    let data = c.request.clone();
                    self.push_pair_transmit(pi, data);
                }
            }
            PairState::Waiting | PairState::Failed => {
                self.pairs[pi].state = PairState::Waiting;
                self.triggered.push_back(pi);
                if self.state == State::Checking && self.next_check.is_none() {
                    self.next_check = self.started;
                }
            }
        }
    }

    fn on_response(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        msg: &Message,
        data: &[u8],
    ) {
        let Some(pi) = self.pairs.iter().position(|p| {
            p.check
                .as_ref()
                .is_some_and(|c| c.transaction == msg.transaction)
        }) else {
            return;
        };
        let Some(rpwd) = self.remote_pwd.clone() else {
            return;
        };
        if !msg.check_integrity(data, rpwd.as_bytes()) {
            // Forged or corrupted: no state change.
            return;
        }
        let check = self.pairs[pi].check.take().expect("matched");
        if check.consent {
            if msg.class == Class::Success {
                self.last_consent = Some(now);
            }
            return;
        }
        // Non-symmetric answers fail the check (RFC 8445 §7.2.5.2.1).
        let p = &self.pairs[pi];
        if self.locals[p.local].base != local || self.remotes[p.remote].addr != remote {
            self.pair_failed(pi, now);
            return;
        }
        if msg.class == Class::Error {
            match msg.error_code() {
                Some((487, _)) => {
                    let role = match self.role {
                        Role::Controlling => Role::Controlled,
                        Role::Controlled => Role::Controlling,
                    };
                    self.switch_role(role);
                    self.pairs[pi].state = PairState::Waiting;
                    self.triggered.push_back(pi);
                    if check.nominating {
                        self.nominating = false;
                    }
                }
                _ => self.pair_failed(pi, now),
            }
            return;
        }
        let was = self.pairs[pi].state;
        self.pairs[pi].state = PairState::Succeeded;
        if was != PairState::Succeeded {
            self.events
                .push_back(Event::PairSucceeded(self.selected_pair(pi)));
        }
        match self.role {
            Role::Controlling => {
                if check.nominating {
                    self.select(pi, now);
                } else if !self.nominating && self.nominate_at.is_none() {
                    self.first_valid.get_or_insert(now);
                    // Nothing better left to check (a LAN call's single host pair): nominate
                    // at once; otherwise give better pairs the nomination delay.
                    let floor = self.priority_of(&self.pairs[pi]);
                    let better_pending = self.pairs.iter().any(|p| {
                        matches!(p.state, PairState::Waiting | PairState::InProgress)
                            && self.priority_of(p) > floor
                    });
                    let delay = if better_pending || !self.config.nominate_when_settled {
                        self.config.nomination_delay
                    } else {
                        Duration::ZERO
                    };
                    self.nominate_at = Some(now + delay);
                }
            }
            Role::Controlled => {
                if self.pairs[pi].nominated_by_peer {
                    self.select(pi, now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn host(
        addr: &str,
        transport: Transport,
        tcp_type: Option<TcpType>,
    ) -> (Candidate, SocketAddr) {
        let a: SocketAddr = addr.parse().unwrap();
        let c = Candidate::local(Kind::Host, transport, tcp_type, a, a.ip(), 65535);
        (c, a)
    }

    /// Two agents on an in-memory network. `deliver` decides whether a datagram from
    /// `from` to `to` arrives; TCP connections from an active base get an ephemeral port.
    struct Net {
        a: Agent,
        b: Agent,
        now: Instant,
        /// (transport, from base, to) -> (arrives on base, seen as from).
        tcp: HashMap<(SocketAddr, SocketAddr), (SocketAddr, SocketAddr)>,
        next_port: u16,
        delivered: usize,
    }

    impl Net {
        fn new(a: Agent, b: Agent) -> Self {
            Self {
                a,
                b,
                now: Instant::now(),
                tcp: HashMap::new(),
                next_port: 40000,
                delivered: 0,
            }
        }

        fn exchange(&mut self) {
            let da = self.a.local_description();
            let db = self.b.local_description();
            self.a.set_remote(self.now, &db);
            self.b.set_remote(self.now, &da);
        }

        fn owner_is_a(&self, addr: SocketAddr) -> bool {
            self.a
                .locals
                .iter()
                .any(|l| l.base == addr || l.candidate.addr == addr)
        }

        /// Moves packets and time until `until` says stop or `limit` passes; returns data
        /// received by (a, b).
        fn run(
            &mut self,
            limit: Duration,
            mut deliver: impl FnMut(&Transmit) -> bool,
            until: impl Fn(&Agent, &Agent) -> bool,
        ) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
            let end = self.now + limit;
            let mut got = (Vec::new(), Vec::new());
            while self.now < end && !until(&self.a, &self.b) {
                let mut moved = false;
                for from_a in [true, false] {
                    loop {
                        let t = if from_a {
                            self.a.poll_transmit()
                        } else {
                            self.b.poll_transmit()
                        };
                        let Some(t) = t else { break };
                        moved = true;
                        if !deliver(&t) {
                            continue;
                        }
                        let (on, seen) = if t.transport == Transport::Tcp {
                            match self.tcp.get(&(t.local, t.remote)) {
                                Some(x) => *x,
                                None => {
                                    // A new connection from an active base.
                                    self.next_port += 1;
                                    let src = SocketAddr::new(t.local.ip(), self.next_port);
                                    self.tcp.insert((t.local, t.remote), (t.remote, src));
                                    self.tcp.insert((t.remote, src), (t.local, t.remote));
                                    (t.remote, src)
                                }
                            }
                        } else {
                            (t.remote, t.local)
                        };
                        self.delivered += 1;
                        let to_a = self.owner_is_a(on);
                        let agent = if to_a { &mut self.a } else { &mut self.b };
                        if let Input::Data(d) =
                            agent.handle_input(self.now, t.transport, on, seen, &t.data)
                        {
                            if to_a {
                                got.0.push(d);
                            } else {
                                got.1.push(d);
                            }
                        }
                    }
                }
                if !moved {
                    let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                        .into_iter()
                        .flatten()
                        .min()
                        .unwrap_or(end);
                    self.now = next.max(self.now).min(end);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                    if next >= end {
                        break;
                    }
                }
            }
            got
        }
    }

    fn completed(a: &Agent, b: &Agent) -> bool {
        a.state() == State::Completed && b.state() == State::Completed
    }

    fn udp_pair() -> Net {
        let mut a = Agent::new(Role::Controlling, Config::default());
        let mut b = Agent::new(Role::Controlled, Config::default());
        let (c, base) = host("10.0.0.1:5000", Transport::Udp, None);
        a.add_local_candidate(c, base);
        let (c, base) = host("10.0.0.2:6000", Transport::Udp, None);
        b.add_local_candidate(c, base);
        Net::new(a, b)
    }

    /// Every datagram of a whole UDP negotiation and a minute of consent checks, with
    /// agents drawing from generators seeded with `seed`.
    fn seeded_run(seed: u8) -> Vec<Vec<u8>> {
        use crate::random::SeededRandom;
        let mut a = Agent::with_random(
            Role::Controlling,
            Config::default(),
            SeededRandom::new([seed; 32]),
        );
        let mut b = Agent::with_random(
            Role::Controlled,
            Config::default(),
            SeededRandom::new([seed + 1; 32]),
        );
        let (c, base) = host("10.0.0.1:5000", Transport::Udp, None);
        a.add_local_candidate(c, base);
        let (c, base) = host("10.0.0.2:6000", Transport::Udp, None);
        b.add_local_candidate(c, base);
        let mut net = Net::new(a, b);
        net.exchange();
        let mut sent = Vec::new();
        net.run(
            Duration::from_secs(60),
            |t| {
                sent.push(t.data.clone());
                true
            },
            |_, _| false,
        );
        assert!(completed(&net.a, &net.b));
        sent
    }

    #[test]
    fn stays_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Agent>();
    }

    #[test]
    fn same_seed_same_bytes() {
        let first = seeded_run(1);
        assert!(first.len() > 10, "{} datagrams", first.len());
        assert_eq!(first, seeded_run(1));
        assert_ne!(first, seeded_run(3));
    }

    #[test]
    fn settled_agents_nominate_at_once() {
        let config = Config {
            nominate_when_settled: true,
            ..Config::default()
        };
        let mut a = Agent::new(Role::Controlling, config.clone());
        let mut b = Agent::new(Role::Controlled, config);
        let (c, base) = host("10.0.0.1:5000", Transport::Udp, None);
        a.add_local_candidate(c, base);
        let (c, base) = host("10.0.0.2:6000", Transport::Udp, None);
        b.add_local_candidate(c, base);
        let mut net = Net::new(a, b);
        net.exchange();
        let start = net.now;
        net.run(Duration::from_secs(5), |_| true, completed);
        assert!(completed(&net.a, &net.b));
        // The only pair: nothing better to wait for.
        let took = net.now - start;
        assert!(took < Duration::from_millis(300), "{took:?}");
    }

    #[test]
    fn credentials_look_like_pjnath() {
        let a = Agent::new(Role::Controlled, Config::default());
        assert_eq!(a.ufrag().len(), 8);
        assert_eq!(a.pwd().len(), 24);
        assert!(
            a.pwd()
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let text = a.local_description().to_text();
        assert_eq!(IceMessage::parse(&text).unwrap().ufrag, a.ufrag());
    }

    #[test]
    fn udp_hosts_complete_and_carry_data() {
        let mut net = udp_pair();
        net.exchange();
        let start = net.now;
        net.run(Duration::from_secs(5), |_| true, completed);
        assert!(
            completed(&net.a, &net.b),
            "{:?} {:?}",
            net.a.state(),
            net.b.state()
        );
        // Regular nomination: 400 ms after the first valid pair.
        let took = net.now - start;
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(1),
            "{took:?}"
        );
        let (sa, sb) = (net.a.selected().unwrap(), net.b.selected().unwrap());
        assert_eq!(sa.local.addr, sb.remote.addr);
        assert_eq!(sb.local.addr, sa.remote.addr);
        let ta = net.a.send(b"from a").unwrap();
        let tb = net.b.send(b"from b").unwrap();
        net.a.transmits.push_back(ta);
        net.b.transmits.push_back(tb);
        let (got_a, got_b) = net.run(Duration::from_millis(10), |_| true, |_, _| false);
        assert_eq!(got_a, vec![b"from b".to_vec()]);
        assert_eq!(got_b, vec![b"from a".to_vec()]);
    }

    #[test]
    fn tcp_active_to_passive_with_peer_reflexive_source() {
        let mut a = Agent::new(Role::Controlling, Config::default());
        let mut b = Agent::new(Role::Controlled, Config::default());
        for (agent, ip, port) in [(&mut a, "10.0.0.1", 4000), (&mut b, "10.0.0.2", 4001)] {
            let (c, base) = host(
                &format!("{ip}:{port}"),
                Transport::Tcp,
                Some(TcpType::Passive),
            );
            agent.add_local_candidate(c, base);
            let (mut c, base) = host(&format!("{ip}:9"), Transport::Tcp, Some(TcpType::Active));
            c.priority -= 256;
            agent.add_local_candidate(c, base);
        }
        // Pairs: only our active towards their passive.
        assert!(a.local_description().to_text().contains("tcptype active"));
        let mut net = Net::new(a, b);
        net.exchange();
        assert_eq!(net.a.pairs.len(), 1);
        let mut to_port_9 = 0;
        net.run(
            Duration::from_secs(5),
            |t| {
                to_port_9 += usize::from(t.remote.port() == 9);
                true
            },
            completed,
        );
        assert_eq!(to_port_9, 0, "never connect to an active candidate");
        assert!(completed(&net.a, &net.b));
        let (sa, sb) = (net.a.selected().unwrap(), net.b.selected().unwrap());
        assert_eq!(sa.local.tcp_type, Some(TcpType::Active));
        assert_eq!(sa.remote.tcp_type, Some(TcpType::Passive));
        // The passive side learnt the connection's source as peer-reflexive, or selected its
        // own connection to the other passive socket.
        assert_eq!(sb.local.transport, Transport::Tcp);
    }

    #[test]
    fn role_conflict_is_settled() {
        let mut a = Agent::new(Role::Controlling, Config::default());
        let mut b = Agent::new(Role::Controlling, Config::default());
        let (c, base) = host("10.0.0.1:5000", Transport::Udp, None);
        a.add_local_candidate(c, base);
        let (c, base) = host("10.0.0.2:6000", Transport::Udp, None);
        b.add_local_candidate(c, base);
        let mut net = Net::new(a, b);
        net.exchange();
        net.run(Duration::from_secs(5), |_| true, completed);
        assert!(completed(&net.a, &net.b));
        assert_ne!(net.a.role(), net.b.role());
        let changed = std::iter::from_fn(|| net.a.poll_event())
            .chain(std::iter::from_fn(|| net.b.poll_event()))
            .filter(|e| matches!(e, Event::RoleChanged(_)))
            .count();
        assert!(changed >= 1);
    }

    #[test]
    fn forged_answers_and_requests_change_nothing() {
        let mut net = udp_pair();
        net.exchange();
        let now = net.now;
        net.a.handle_timeout(now);
        let check = net.a.poll_transmit().unwrap();
        let msg = Message::decode(&check.data).unwrap();
        // An answer signed with the wrong password.
        let forged = Builder::new(Class::Success, BINDING, msg.transaction)
            .xor_mapped_address(&check.local)
            .integrity(b"not the password")
            .fingerprint();
        let from = check.remote;
        assert_eq!(
            net.a
                .handle_input(now, Transport::Udp, check.local, from, &forged),
            Input::Consumed
        );
        assert!(net.a.pairs[0].check.is_some());
        assert_eq!(net.a.pairs[0].state, PairState::InProgress);
        // A request under the wrong password: 401, no candidate learnt.
        let bad = Builder::new(Class::Request, BINDING, Builder::random_transaction())
            .attr(attr::USERNAME, format!("{}:x", net.a.ufrag()).as_bytes())
            .attr(attr::PRIORITY, &1u32.to_be_bytes())
            .integrity(b"wrong")
            .fingerprint();
        let stranger: SocketAddr = "10.9.9.9:1".parse().unwrap();
        net.a
            .handle_input(now, Transport::Udp, check.local, stranger, &bad);
        let answer = net.a.poll_transmit().unwrap();
        assert_eq!(
            Message::decode(&answer.data)
                .unwrap()
                .error_code()
                .unwrap()
                .0,
            401
        );
        assert_eq!(net.a.remotes.len(), 1);
        // A correct request without PRIORITY: silently ignored.
        let no_prio = Builder::new(Class::Request, BINDING, Builder::random_transaction())
            .attr(attr::USERNAME, format!("{}:x", net.a.ufrag()).as_bytes())
            .integrity(net.a.pwd().as_bytes())
            .fingerprint();
        net.a
            .handle_input(now, Transport::Udp, check.local, stranger, &no_prio);
        assert!(net.a.poll_transmit().is_none());
        assert_eq!(net.a.remotes.len(), 1);
        // Data from an unchecked address never reaches the caller.
        assert_eq!(
            net.a
                .handle_input(now, Transport::Udp, check.local, stranger, b"hello"),
            Input::Consumed
        );
    }

    #[test]
    fn early_checks_are_answered_then_triggered() {
        let mut net = udp_pair();
        // Only b knows a: b's checks reach a before a has b's description.
        let da = net.a.local_description();
        net.b.set_remote(net.now, &da);
        net.run(Duration::from_millis(100), |_| true, |_, _| false);
        assert!(!net.a.early.is_empty());
        let db = net.b.local_description();
        net.a.set_remote(net.now, &db);
        net.run(Duration::from_secs(5), |_| true, completed);
        assert!(completed(&net.a, &net.b));
    }

    #[test]
    fn controlled_side_times_out_without_nomination() {
        let mut net = udp_pair();
        net.exchange();
        // Nothing from a arrives: b never gets a nomination.
        let a_base: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        net.run(
            Duration::from_secs(60),
            |t| t.local != a_base,
            |_, b| b.state() == State::Failed,
        );
        assert_eq!(net.b.state(), State::Failed);
        let ev: Vec<_> = std::iter::from_fn(|| net.b.poll_event()).collect();
        assert!(
            ev.contains(&Event::Failed(Failure::NominationTimeout)),
            "{ev:?}"
        );
        assert_ne!(net.a.state(), State::Completed);
    }

    #[test]
    fn one_way_path_is_never_selected() {
        let mut net = udp_pair();
        net.exchange();
        // b's packets never reach a: a's checks of b are answered to nowhere, so no pair
        // is ever valid for a, and b, controlled, never sees a nomination it can accept.
        let b_base: SocketAddr = "10.0.0.2:6000".parse().unwrap();
        net.run(Duration::from_secs(60), |t| t.local != b_base, |_, _| false);
        assert!(net.a.selected().is_none() && net.b.selected().is_none());
        assert_eq!(net.a.state(), State::Failed);
        assert_eq!(net.b.state(), State::Failed);
    }

    #[test]
    fn consent_is_kept_then_lost() {
        let mut net = udp_pair();
        net.exchange();
        net.run(Duration::from_secs(5), |_| true, completed);
        assert!(completed(&net.a, &net.b));
        // A minute of consent checks on a working path keeps it.
        net.run(Duration::from_secs(60), |_| true, |_, _| false);
        assert!(completed(&net.a, &net.b));
        // Then the path dies: both give up after 30 s.
        net.run(
            Duration::from_secs(60),
            |_| false,
            |a, b| a.state() == State::Failed && b.state() == State::Failed,
        );
        let ev: Vec<_> = std::iter::from_fn(|| net.a.poll_event()).collect();
        assert!(ev.contains(&Event::Failed(Failure::ConsentLost)), "{ev:?}");
    }

    #[test]
    fn pair_priority_as_rfc_8445() {
        assert_eq!(pair_priority(2, 1), (1 << 32) + 4 + 1);
        assert_eq!(pair_priority(1, 2), (1 << 32) + 4);
        assert!(pair_priority(100, 100) > pair_priority(100, 99));
    }
}
