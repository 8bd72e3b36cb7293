//! SIP call dialogs (RFC 3261) on a `sip` channel, as jamid runs them: INVITE with an SDP
//! offer, `100 Trying`, `180 Ringing`, `200 OK` with the answer, ACK; BYE, CANCEL, busy and
//! decline; re-INVITEs both ways (hold, video added or removed); in-dialog INFO (keyframe
//! requests, recording state) and MESSAGE.
//!
//! A [`Dialog`] is a pure state machine in the style of quinn-proto: feed it what arrives
//! ([`Dialog::handle`]) and the time ([`Dialog::handle_timeout`]), call its actions, and
//! drain what it wants sent ([`Dialog::poll_transmit`]: one whole SIP message per channel
//! write, as jamid needs) and what happened ([`Dialog::poll_event`]).
//!
//! The channel is reliable, so nothing is retransmitted; a request left unanswered ends
//! the call after [`REQUEST_TIMEOUT`] (RFC 3261's timer B), an INVITE that rings after
//! [`RING_TIMEOUT`].
//!
//! jamid's rules followed here: `From` is `<sip:<account>@ring.dht>` and must be the
//! account of the channel's certificate (checked on incoming INVITEs too: a mismatch is
//! refused with 403); `Contact` names our device; the SDP is `application/sdp`. jamid
//! 20230206 can stall for good when an INVITE reaches it in the very instant its `sip`
//! channel opens: a driver leaves a moment (half a second is plenty) between opening the
//! channel and writing the INVITE.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pamoja_channel::random::{OsRandom, Random};
use pamoja_channel::sip::{SipMessage, StartLine, USER_AGENT};

/// A request without any answer ends the call after this long (RFC 3261 timer B).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(32);
/// An INVITE that has rung (1xx) without a final answer is cancelled after this long.
pub const RING_TIMEOUT: Duration = Duration::from_secs(180);

/// The ends of a dialog: accounts, our device, and the link's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Our account id (40 hex).
    pub account: String,
    /// Our device's short id, written in `Contact`.
    pub device: String,
    /// Display name for `From`/`Contact` (none: omitted).
    pub display_name: Option<String>,
    /// The peer's account id, as its channel certificate says.
    pub peer: String,
    /// Our end of the link.
    pub local: SocketAddr,
    /// The peer's end.
    pub remote: SocketAddr,
}

/// Where a dialog stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// We sent an INVITE, no final answer yet.
    Calling,
    /// An INVITE came in; not answered yet.
    Incoming,
    /// We answered 200 and wait for the ACK.
    Answered,
    /// The call is up.
    Confirmed,
    /// Over.
    Terminated,
}

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// We hung up (BYE sent, CANCEL sent, or we declined).
    Local,
    /// The peer hung up (BYE).
    HungUp,
    /// The peer cancelled its INVITE before we answered.
    Cancelled,
    /// The peer is busy (486, 600).
    Busy,
    /// The peer declined (603).
    Declined,
    /// Any other final failure: the status code and reason.
    Failed(u16, String),
    /// A request went unanswered.
    Timeout,
}

/// What a dialog reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer is ringing (180/183).
    Ringing,
    /// Our INVITE was answered: the SDP answer.
    Answered {
        /// The answer.
        sdp: Vec<u8>,
    },
    /// Our 200 was acknowledged: the call is up.
    Confirmed,
    /// The peer sent a re-INVITE: answer it with [`Dialog::answer_offer`].
    Offer {
        /// The new offer (empty: the peer asks us for an offer).
        sdp: Vec<u8>,
    },
    /// Our re-INVITE was answered.
    Renegotiated {
        /// The answer.
        sdp: Vec<u8>,
    },
    /// Our re-INVITE was refused (491 on a crossing re-INVITE, or another failure); the
    /// previous session stays.
    RenegotiationFailed(u16),
    /// An in-dialog INFO (keyframe requests, recording state, DTMF).
    Info {
        /// Its `Content-Type`.
        content_type: String,
        /// Its body.
        body: Vec<u8>,
    },
    /// An in-dialog MESSAGE (conference information).
    Message {
        /// Its `Content-Type`.
        content_type: String,
        /// Its body.
        body: Vec<u8>,
    },
    /// The call is over.
    Ended(EndReason),
}

/// Why an action or an incoming INVITE was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// Not an INVITE, or one missing Call-ID, From, CSeq or Via.
    #[error("not a usable INVITE: {0}")]
    BadInvite(&'static str),
    /// `From` does not name the account of the channel's certificate.
    #[error("From names {claimed}, the channel belongs to {peer}")]
    WrongSender {
        /// The account in `From`.
        claimed: String,
        /// The account of the channel.
        peer: String,
    },
    /// The action does not fit the dialog's state.
    #[error("not possible in state {0:?}")]
    State(State),
    /// A re-INVITE or other request of ours is still unanswered.
    #[error("a request is still pending")]
    Pending,
}

fn random_hex(random: &mut dyn Random, bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    random.fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn branch(random: &mut dyn Random) -> String {
    format!("z9hG4bK{}", random_hex(random, 12))
}

/// The tag parameter of a From or To value.
fn tag_of(v: &str) -> Option<&str> {
    let after = &v[v.rfind('>').map_or(0, |i| i + 1)..];
    after
        .split(';')
        .find_map(|p| p.trim().strip_prefix("tag="))
        .map(|t| t.trim())
}

/// `(number, method)` of a CSeq value.
fn cseq_of(m: &SipMessage) -> Option<(u32, String)> {
    let (n, method) = m.header("CSeq")?.trim().split_once(' ')?;
    Some((n.trim().parse().ok()?, method.trim().to_owned()))
}

/// The URI inside `<>` of a header value (or the value up to `;`).
fn uri_of(v: &str) -> &str {
    match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v.split(';').next().unwrap_or(v).trim(),
    }
}

/// Who sent the request we have not answered yet.
#[derive(Debug, Clone)]
struct PendingIn {
    request: SipMessage,
}

/// A request of ours waiting for its final answer.
#[derive(Debug, Clone)]
struct PendingOut {
    method: String,
    cseq: u32,
    branch: String,
    deadline: Instant,
}

/// One call's SIP dialog.
#[derive(Debug)]
pub struct Dialog {
    ep: Endpoint,
    caller: bool,
    state: State,
    call_id: String,
    local_tag: String,
    remote_tag: Option<String>,
    /// Our From/To URIs as they appear in the dialog's requests.
    local_uri: String,
    remote_uri: String,
    /// Where in-dialog requests go (the peer's Contact).
    remote_target: String,
    local_cseq: u32,
    remote_cseq: Option<u32>,
    /// The incoming INVITE (initial or re-INVITE) we owe an answer.
    pending_in: Option<PendingIn>,
    pending_out: Option<PendingOut>,
    /// The initial INVITE we sent (for CANCEL and ACK of failures).
    invite: Option<SipMessage>,
    /// Our 200 to an INVITE, until its ACK.
    awaiting_ack: Option<Instant>,
    offer: Vec<u8>,
    transmit: VecDeque<SipMessage>,
    events: VecDeque<Event>,
    /// Call-ID, tags and branches come from here.
    random: Box<dyn Random>,
}

impl Dialog {
    fn contact(&self) -> String {
        let name = self
            .ep
            .display_name
            .as_deref()
            .map(|n| format!("\"{n}\" "))
            .unwrap_or_default();
        format!(
            "{name}<sips:{}@{};transport=tls>",
            self.ep.device, self.ep.local
        )
    }

    fn local_party(&self) -> String {
        let name = self
            .ep
            .display_name
            .as_deref()
            .map(|n| format!("\"{n}\" "))
            .unwrap_or_default();
        format!("{name}<{}>", self.local_uri)
    }

    fn via(&self, branch: &str) -> String {
        format!("SIP/2.0/TLS {};rport;branch={branch}", self.ep.local)
    }

    /// Starts a call: the INVITE carrying `sdp` is queued.
    pub fn invite(ep: Endpoint, sdp: &[u8], now: Instant) -> Self {
        Self::invite_with_random(ep, sdp, now, OsRandom)
    }

    /// Starts a call as [`Dialog::invite`] does, drawing the Call-ID, tags and branches
    /// from `random`: two dialogs given generators in the same state and the same inputs
    /// send the same bytes.
    pub fn invite_with_random(
        ep: Endpoint,
        sdp: &[u8],
        now: Instant,
        random: impl Random + 'static,
    ) -> Self {
        let mut random: Box<dyn Random> = Box::new(random);
        let call_id = random_hex(&mut *random, 16);
        let local_tag = random_hex(&mut *random, 8);
        let local_uri = format!("sip:{}@ring.dht", ep.account);
        let remote_uri = format!("sips:{}@{};transport=tls", ep.peer, ep.remote);
        let mut d = Self {
            caller: true,
            state: State::Calling,
            call_id,
            local_tag,
            remote_tag: None,
            remote_target: remote_uri.clone(),
            local_uri,
            remote_uri,
            local_cseq: 1,
            remote_cseq: None,
            pending_in: None,
            pending_out: None,
            invite: None,
            awaiting_ack: None,
            offer: Vec::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            random,
            ep,
        };
        let b = branch(&mut *d.random);
        let req = d.request("INVITE", 1, &b, Some(("application/sdp", sdp)));
        d.pending_out = Some(PendingOut {
            method: "INVITE".into(),
            cseq: 1,
            branch: branch_of(&req).unwrap_or_default(),
            deadline: now + REQUEST_TIMEOUT,
        });
        d.invite = Some(req.clone());
        d.transmit.push_back(req);
        d
    }

    /// Takes an INVITE that arrived on a `sip` channel of `ep.peer`: the dialog, with
    /// `100 Trying` queued. Its offer is [`Dialog::remote_offer`]; answer with
    /// [`Dialog::ring`], [`Dialog::accept`] or [`Dialog::reject`]. An INVITE whose `From`
    /// names another account than the channel's is refused with an error; answer it with
    /// [`refusal`] (403).
    pub fn incoming(ep: Endpoint, invite: &SipMessage, now: Instant) -> Result<Self, DialogError> {
        Self::incoming_with_random(ep, invite, now, OsRandom)
    }

    /// Takes an INVITE as [`Dialog::incoming`] does, drawing our tag and branches from
    /// `random`.
    pub fn incoming_with_random(
        ep: Endpoint,
        invite: &SipMessage,
        now: Instant,
        random: impl Random + 'static,
    ) -> Result<Self, DialogError> {
        let mut random: Box<dyn Random> = Box::new(random);
        let StartLine::Request { method, .. } = &invite.start else {
            return Err(DialogError::BadInvite("a response"));
        };
        if method != "INVITE" {
            return Err(DialogError::BadInvite("not an INVITE"));
        }
        let call_id = invite
            .header("Call-ID")
            .ok_or(DialogError::BadInvite("no Call-ID"))?;
        let from = invite
            .header("From")
            .ok_or(DialogError::BadInvite("no From"))?;
        let to = invite.header("To").ok_or(DialogError::BadInvite("no To"))?;
        let (cseq, _) = cseq_of(invite).ok_or(DialogError::BadInvite("no CSeq"))?;
        invite
            .header("Via")
            .ok_or(DialogError::BadInvite("no Via"))?;
        let claimed = invite.from_account().unwrap_or_default();
        if claimed != ep.peer {
            return Err(DialogError::WrongSender {
                claimed,
                peer: ep.peer.clone(),
            });
        }
        let remote_target = invite
            .header("Contact")
            .map(|c| uri_of(c).to_owned())
            .unwrap_or_else(|| uri_of(from).to_owned());
        let mut d = Self {
            caller: false,
            state: State::Incoming,
            call_id: call_id.to_owned(),
            local_tag: random_hex(&mut *random, 8),
            remote_tag: tag_of(from).map(str::to_owned),
            local_uri: uri_of(to).to_owned(),
            remote_uri: uri_of(from).to_owned(),
            remote_target,
            local_cseq: 0,
            remote_cseq: Some(cseq),
            pending_in: Some(PendingIn {
                request: invite.clone(),
            }),
            pending_out: None,
            invite: None,
            awaiting_ack: None,
            offer: invite.body.clone(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            random,
            ep,
        };
        let _ = now;
        let trying = d.response_to(invite, 100, "Trying", None, false);
        d.transmit.push_back(trying);
        Ok(d)
    }

    /// The dialog's Call-ID (to route a channel's messages to their dialog).
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Whether `m` belongs to this dialog.
    pub fn matches(&self, m: &SipMessage) -> bool {
        m.header("Call-ID") == Some(self.call_id.as_str())
    }

    /// Where the dialog stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether we placed the call.
    pub fn is_caller(&self) -> bool {
        self.caller
    }

    /// The SDP offer of the incoming INVITE.
    pub fn remote_offer(&self) -> &[u8] {
        &self.offer
    }

    /// The next message to write on the channel (one message per write).
    pub fn poll_transmit(&mut self) -> Option<SipMessage> {
        self.transmit.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Dialog::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Terminated {
            return None;
        }
        let a = self.pending_out.as_ref().map(|p| p.deadline);
        match (a, self.awaiting_ack) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Ends the call when a request of ours, or our 200's ACK, went unanswered.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired = self.pending_out.as_ref().is_some_and(|p| now >= p.deadline)
            || self.awaiting_ack.is_some_and(|t| now >= t);
        if !expired || self.state == State::Terminated {
            return;
        }
        let reinvite = self
            .pending_out
            .as_ref()
            .is_some_and(|p| p.method != "INVITE" || self.state == State::Confirmed);
        if self.state == State::Calling {
            self.send_cancel();
        } else if reinvite || self.state == State::Answered {
            let bye = self.in_dialog("BYE", None);
            self.transmit.push_back(bye);
        }
        self.end(EndReason::Timeout);
    }

    /// `180 Ringing` to the incoming INVITE.
    pub fn ring(&mut self) -> Result<(), DialogError> {
        if self.state != State::Incoming {
            return Err(DialogError::State(self.state));
        }
        let req = self.pending_invite()?;
        let r = self.response_to(&req, 180, "Ringing", None, true);
        self.transmit.push_back(r);
        Ok(())
    }

    /// `200 OK` with our SDP answer to the incoming INVITE; the call is up when the ACK
    /// comes.
    pub fn accept(&mut self, sdp: &[u8], now: Instant) -> Result<(), DialogError> {
        if self.state != State::Incoming {
            return Err(DialogError::State(self.state));
        }
        let req = self.pending_invite()?;
        self.pending_in = None;
        let r = self.response_to(&req, 200, "OK", Some(("application/sdp", sdp)), true);
        self.transmit.push_back(r);
        self.state = State::Answered;
        self.awaiting_ack = Some(now + REQUEST_TIMEOUT);
        Ok(())
    }

    /// Refuses the incoming INVITE: 486 Busy Here, 603 Decline, ...
    pub fn reject(&mut self, code: u16, reason: &str) -> Result<(), DialogError> {
        if self.state != State::Incoming {
            return Err(DialogError::State(self.state));
        }
        let req = self.pending_invite()?;
        self.pending_in = None;
        let r = self.response_to(&req, code, reason, None, true);
        self.transmit.push_back(r);
        self.end(EndReason::Local);
        Ok(())
    }

    /// Hangs up: CANCEL before an answer to our INVITE, 603 to an unanswered incoming one,
    /// BYE once up.
    pub fn hangup(&mut self) -> Result<(), DialogError> {
        match self.state {
            State::Calling => {
                self.send_cancel();
                self.end(EndReason::Local);
                Ok(())
            }
            State::Incoming => self.reject(603, "Decline"),
            State::Answered | State::Confirmed => {
                let bye = self.in_dialog("BYE", None);
                self.transmit.push_back(bye);
                self.end(EndReason::Local);
                Ok(())
            }
            State::Terminated => Err(DialogError::State(State::Terminated)),
        }
    }

    /// Sends a re-INVITE with a new offer (hold, unhold, video added or removed).
    pub fn reinvite(&mut self, sdp: &[u8], now: Instant) -> Result<(), DialogError> {
        self.new_request("INVITE", Some(("application/sdp", sdp)), now)
    }

    /// Answers the peer's re-INVITE ([`Event::Offer`]) with our SDP.
    pub fn answer_offer(&mut self, sdp: &[u8], now: Instant) -> Result<(), DialogError> {
        if self.state != State::Confirmed {
            return Err(DialogError::State(self.state));
        }
        let req = self.pending_invite()?;
        self.pending_in = None;
        let r = self.response_to(&req, 200, "OK", Some(("application/sdp", sdp)), true);
        self.transmit.push_back(r);
        self.awaiting_ack = Some(now + REQUEST_TIMEOUT);
        Ok(())
    }

    /// Refuses the peer's re-INVITE ([`Event::Offer`]) with `code` (488 for an offer we
    /// cannot take); the session stays as it was.
    pub fn refuse_offer(&mut self, code: u16, reason: &str) -> Result<(), DialogError> {
        if self.state != State::Confirmed {
            return Err(DialogError::State(self.state));
        }
        let req = self.pending_invite()?;
        self.pending_in = None;
        let r = self.response_to(&req, code, reason, None, true);
        self.transmit.push_back(r);
        Ok(())
    }

    /// Sends an in-dialog INFO (keyframe request, recording state, DTMF).
    pub fn info(
        &mut self,
        content_type: &str,
        body: &[u8],
        now: Instant,
    ) -> Result<(), DialogError> {
        self.new_request("INFO", Some((content_type, body)), now)
    }

    fn new_request(
        &mut self,
        method: &str,
        body: Option<(&str, &[u8])>,
        now: Instant,
    ) -> Result<(), DialogError> {
        if self.state != State::Confirmed {
            return Err(DialogError::State(self.state));
        }
        if self.pending_out.is_some() {
            return Err(DialogError::Pending);
        }
        let req = self.in_dialog(method, body);
        self.pending_out = Some(PendingOut {
            method: method.into(),
            cseq: self.local_cseq,
            branch: branch_of(&req).unwrap_or_default(),
            deadline: now + REQUEST_TIMEOUT,
        });
        self.transmit.push_back(req);
        Ok(())
    }

    fn pending_invite(&self) -> Result<SipMessage, DialogError> {
        self.pending_in
            .as_ref()
            .map(|p| p.request.clone())
            .ok_or(DialogError::State(self.state))
    }

    fn end(&mut self, reason: EndReason) {
        if self.state != State::Terminated {
            self.state = State::Terminated;
            self.pending_out = None;
            self.awaiting_ack = None;
            self.events.push_back(Event::Ended(reason));
        }
    }

    fn send_cancel(&mut self) {
        let Some(inv) = &self.invite else { return };
        let mut headers: Vec<(String, String)> = Vec::new();
        for name in ["Via", "From", "To", "Call-ID"] {
            if let Some(v) = inv.header(name) {
                headers.push((name.into(), v.into()));
            }
        }
        headers.push(("CSeq".into(), "1 CANCEL".into()));
        headers.push(("Max-Forwards".into(), "70".into()));
        headers.push(("User-Agent".into(), USER_AGENT.into()));
        let uri = match &inv.start {
            StartLine::Request { uri, .. } => uri.clone(),
            StartLine::Response { .. } => return,
        };
        self.transmit.push_back(SipMessage {
            start: StartLine::Request {
                method: "CANCEL".into(),
                uri,
            },
            headers,
            body: Vec::new(),
        });
    }

    /// A request of ours with CSeq `cseq` (the initial INVITE, or in-dialog).
    fn request(
        &self,
        method: &str,
        cseq: u32,
        branch: &str,
        body: Option<(&str, &[u8])>,
    ) -> SipMessage {
        let to = match &self.remote_tag {
            Some(t) => format!("<{}>;tag={t}", self.remote_uri),
            None => format!("<{}>", self.remote_uri),
        };
        let mut headers = vec![
            ("Via".to_owned(), self.via(branch)),
            ("Max-Forwards".into(), "70".into()),
            (
                "From".into(),
                format!("{};tag={}", self.local_party(), self.local_tag),
            ),
            ("To".into(), to),
            ("Call-ID".into(), self.call_id.clone()),
            ("CSeq".into(), format!("{cseq} {method}")),
            ("Contact".into(), self.contact()),
            ("User-Agent".into(), USER_AGENT.into()),
        ];
        if method == "INVITE" {
            headers.push((
                "Allow".into(),
                "INVITE, ACK, BYE, CANCEL, INFO, MESSAGE, OPTIONS".into(),
            ));
        }
        let mut body_bytes = Vec::new();
        if let Some((ct, b)) = body {
            headers.push(("Content-Type".into(), ct.into()));
            body_bytes = b.to_vec();
        }
        SipMessage {
            start: StartLine::Request {
                method: method.into(),
                uri: if method == "INVITE" && self.state == State::Calling {
                    self.remote_uri.clone()
                } else {
                    self.remote_target.clone()
                },
            },
            headers,
            body: body_bytes,
        }
    }

    fn in_dialog(&mut self, method: &str, body: Option<(&str, &[u8])>) -> SipMessage {
        self.local_cseq += 1;
        let b = branch(&mut *self.random);
        self.request(method, self.local_cseq, &b, body)
    }

    /// A response to `req`, our tag on `To` when `tagged`.
    fn response_to(
        &self,
        req: &SipMessage,
        code: u16,
        reason: &str,
        body: Option<(&str, &[u8])>,
        tagged: bool,
    ) -> SipMessage {
        let mut headers: Vec<(String, String)> = req
            .headers
            .iter()
            .filter(|(n, _)| {
                let n = n.to_ascii_lowercase();
                n == "via" || n == "v"
            })
            .map(|(_, v)| ("Via".to_owned(), v.clone()))
            .collect();
        for name in ["From", "To", "Call-ID", "CSeq"] {
            if let Some(v) = req.header(name) {
                let v = if name == "To" && tagged && tag_of(v).is_none() {
                    format!("{v};tag={}", self.local_tag)
                } else {
                    v.to_owned()
                };
                headers.push((name.into(), v));
            }
        }
        if (180..300).contains(&code) {
            headers.push(("Contact".into(), self.contact()));
        }
        headers.push(("User-Agent".into(), USER_AGENT.into()));
        let mut body_bytes = Vec::new();
        if let Some((ct, b)) = body {
            headers.push(("Content-Type".into(), ct.into()));
            body_bytes = b.to_vec();
        }
        SipMessage {
            start: StartLine::Response {
                code,
                reason: reason.into(),
            },
            headers,
            body: body_bytes,
        }
    }

    fn ack(&self, cseq: u32, branch: &str) -> SipMessage {
        self.request("ACK", cseq, branch, None)
    }

    /// Takes a message of this dialog from the channel ([`Dialog::matches`] it first).
    pub fn handle(&mut self, m: &SipMessage, now: Instant) {
        if !self.matches(m) {
            return;
        }
        match &m.start {
            StartLine::Response { code, reason } => self.on_response(m, *code, reason, now),
            StartLine::Request { method, .. } => {
                let method = method.clone();
                self.on_request(m, &method, now)
            }
        }
    }

    fn on_response(&mut self, m: &SipMessage, code: u16, reason: &str, now: Instant) {
        let Some((cseq, method)) = cseq_of(m) else {
            return;
        };
        let Some(p) = self.pending_out.clone() else {
            // A retransmitted 200 to an INVITE we already acknowledged: ACK again.
            if method == "INVITE" && (200..300).contains(&code) && self.state == State::Confirmed {
                let b = branch(&mut *self.random);
                let ack = self.ack(cseq, &b);
                self.transmit.push_back(ack);
            }
            return;
        };
        if p.cseq != cseq || p.method != method {
            return;
        }
        if code < 200 {
            if method == "INVITE" {
                if self.state == State::Calling {
                    if let Some(t) = m.header("To").and_then(tag_of) {
                        self.remote_tag = Some(t.to_owned());
                    }
                    if (180..=183).contains(&code) {
                        self.events.push_back(Event::Ringing);
                    }
                }
                if let Some(p) = &mut self.pending_out {
                    p.deadline = now + RING_TIMEOUT;
                }
            }
            return;
        }
        self.pending_out = None;
        if method != "INVITE" {
            // INFO and the like: failures are not fatal, except a dialog the peer forgot.
            if code == 481 || code == 408 {
                self.end(EndReason::Failed(code, reason.into()));
            }
            return;
        }
        let initial = self.state == State::Calling;
        if (200..300).contains(&code) {
            if let Some(t) = m.header("To").and_then(tag_of) {
                self.remote_tag = Some(t.to_owned());
            }
            if let Some(c) = m.header("Contact") {
                self.remote_target = uri_of(c).to_owned();
            }
            let b = branch(&mut *self.random);
            let ack = self.ack(cseq, &b);
            self.transmit.push_back(ack);
            if initial {
                self.state = State::Confirmed;
                self.events.push_back(Event::Answered {
                    sdp: m.body.clone(),
                });
            } else {
                self.events.push_back(Event::Renegotiated {
                    sdp: m.body.clone(),
                });
            }
            return;
        }
        // A final failure: ACK it on the INVITE's own branch.
        if let Some(t) = m.header("To").and_then(tag_of) {
            self.remote_tag = Some(t.to_owned());
        }
        let mut ack = self.ack(cseq, &p.branch);
        if let Some(to) = m.header("To") {
            for h in &mut ack.headers {
                if h.0 == "To" {
                    h.1 = to.to_owned();
                }
            }
        }
        self.transmit.push_back(ack);
        if initial {
            self.end(match code {
                486 | 600 => EndReason::Busy,
                603 => EndReason::Declined,
                487 => EndReason::Local,
                _ => EndReason::Failed(code, reason.into()),
            });
        } else if code == 481 || code == 408 {
            self.end(EndReason::Failed(code, reason.into()));
        } else {
            self.events.push_back(Event::RenegotiationFailed(code));
        }
    }

    fn on_request(&mut self, m: &SipMessage, method: &str, now: Instant) {
        let cseq = cseq_of(m).map(|c| c.0);
        match method {
            "ACK" => {
                if self.awaiting_ack.take().is_some() && self.state == State::Answered {
                    self.state = State::Confirmed;
                    self.events.push_back(Event::Confirmed);
                }
            }
            "CANCEL" => {
                let ok = self.response_to(m, 200, "OK", None, true);
                self.transmit.push_back(ok);
                if self.state == State::Incoming
                    && let Ok(inv) = self.pending_invite()
                {
                    self.pending_in = None;
                    let r = self.response_to(&inv, 487, "Request Terminated", None, true);
                    self.transmit.push_back(r);
                    self.end(EndReason::Cancelled);
                }
            }
            "BYE" => {
                let ok = self.response_to(m, 200, "OK", None, true);
                self.transmit.push_back(ok);
                self.end(EndReason::HungUp);
            }
            _ if self.state == State::Terminated => {
                let r = self.response_to(m, 481, "Call/Transaction Does Not Exist", None, true);
                self.transmit.push_back(r);
            }
            "INVITE" => {
                // A re-INVITE. The first INVITE itself is handled by `incoming`.
                if self
                    .remote_cseq
                    .is_some_and(|c| cseq.is_some_and(|n| n <= c))
                {
                    return;
                }
                self.remote_cseq = cseq;
                if self.state != State::Confirmed
                    || self.pending_in.is_some()
                    || self
                        .pending_out
                        .as_ref()
                        .is_some_and(|p| p.method == "INVITE")
                {
                    // Crossing re-INVITEs: 491, each side tries again later.
                    let r = self.response_to(m, 491, "Request Pending", None, true);
                    self.transmit.push_back(r);
                    return;
                }
                let trying = self.response_to(m, 100, "Trying", None, false);
                self.transmit.push_back(trying);
                self.pending_in = Some(PendingIn { request: m.clone() });
                self.events.push_back(Event::Offer {
                    sdp: m.body.clone(),
                });
            }
            "INFO" | "MESSAGE" => {
                self.remote_cseq = cseq.or(self.remote_cseq);
                let ok = self.response_to(m, 200, "OK", None, true);
                self.transmit.push_back(ok);
                let content_type = m.header("Content-Type").unwrap_or_default().to_owned();
                let body = m.body.clone();
                self.events.push_back(if method == "INFO" {
                    Event::Info { content_type, body }
                } else {
                    Event::Message { content_type, body }
                });
            }
            "OPTIONS" | "UPDATE" | "NOTIFY" => {
                let ok = self.response_to(m, 200, "OK", None, true);
                self.transmit.push_back(ok);
            }
            _ => {
                let r = self.response_to(m, 405, "Method Not Allowed", None, true);
                self.transmit.push_back(r);
            }
        }
        let _ = now;
    }
}

fn branch_of(m: &SipMessage) -> Option<String> {
    m.header("Via")?
        .split(';')
        .find_map(|p| p.trim().strip_prefix("branch="))
        .map(str::to_owned)
}

/// The 403 that answers an INVITE refused by [`Dialog::incoming`] for its sender.
pub fn refusal(invite: &SipMessage, code: u16, reason: &str) -> SipMessage {
    pamoja_channel::sip::response(invite, code, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "0123456789abcdef0123456789abcdef01234567";
    const BOB: &str = "89abcdef0123456789abcdef0123456789abcdef";

    fn ends() -> (Endpoint, Endpoint) {
        let a: SocketAddr = "10.99.0.1:4000".parse().unwrap();
        let b: SocketAddr = "10.99.0.2:5000".parse().unwrap();
        (
            Endpoint {
                account: ALICE.into(),
                device: "aa".repeat(20),
                display_name: Some("Alice".into()),
                peer: BOB.into(),
                local: a,
                remote: b,
            },
            Endpoint {
                account: BOB.into(),
                device: "bb".repeat(20),
                display_name: None,
                peer: ALICE.into(),
                local: b,
                remote: a,
            },
        )
    }

    /// Moves every queued message from `from` to `to` through bytes, as on a channel.
    fn pump(from: &mut Dialog, to: &mut Dialog, now: Instant) -> Vec<String> {
        let mut seen = Vec::new();
        while let Some(m) = from.poll_transmit() {
            let m = SipMessage::parse(&m.to_bytes()).unwrap();
            seen.push(match &m.start {
                StartLine::Request { method, .. } => method.clone(),
                StartLine::Response { code, .. } => code.to_string(),
            });
            to.handle(&m, now);
        }
        seen
    }

    fn events(d: &mut Dialog) -> Vec<Event> {
        std::iter::from_fn(|| d.poll_event()).collect()
    }

    fn call(now: Instant) -> (Dialog, Dialog) {
        let (ea, eb) = ends();
        let mut a = Dialog::invite(ea, b"offer", now);
        let inv = SipMessage::parse(&a.poll_transmit().unwrap().to_bytes()).unwrap();
        assert_eq!(inv.header("Content-Type"), Some("application/sdp"));
        assert_eq!(inv.from_account().as_deref(), Some(ALICE));
        let mut b = Dialog::incoming(eb, &inv, now).unwrap();
        assert_eq!(b.remote_offer(), b"offer");
        assert_eq!(pump(&mut b, &mut a, now), ["100"]);
        b.ring().unwrap();
        assert_eq!(pump(&mut b, &mut a, now), ["180"]);
        assert_eq!(events(&mut a), [Event::Ringing]);
        b.accept(b"answer", now).unwrap();
        assert_eq!(pump(&mut b, &mut a, now), ["200"]);
        assert_eq!(
            events(&mut a),
            [Event::Answered {
                sdp: b"answer".to_vec()
            }]
        );
        assert_eq!(pump(&mut a, &mut b, now), ["ACK"]);
        assert_eq!(events(&mut b), [Event::Confirmed]);
        assert_eq!((a.state(), b.state()), (State::Confirmed, State::Confirmed));
        (a, b)
    }

    /// The bytes of a whole call, re-INVITE and hang-up included, between dialogs drawing
    /// from generators seeded with `seed`.
    fn seeded_call(seed: u8) -> Vec<Vec<u8>> {
        use pamoja_channel::random::SeededRandom;
        let now = Instant::now();
        let (ea, eb) = ends();
        let mut wire = Vec::new();
        let mut moved = |from: &mut Dialog, to: &mut Dialog| {
            while let Some(m) = from.poll_transmit() {
                let bytes = m.to_bytes();
                to.handle(&SipMessage::parse(&bytes).unwrap(), now);
                wire.push(bytes);
            }
        };
        let mut a = Dialog::invite_with_random(ea, b"offer", now, SeededRandom::new([seed; 32]));
        let inv = a.poll_transmit().unwrap();
        let mut b =
            Dialog::incoming_with_random(eb, &inv, now, SeededRandom::new([seed + 1; 32])).unwrap();
        b.accept(b"answer", now).unwrap();
        moved(&mut b, &mut a);
        moved(&mut a, &mut b);
        b.reinvite(b"hold", now).unwrap();
        moved(&mut b, &mut a);
        a.answer_offer(b"held", now).unwrap();
        moved(&mut a, &mut b);
        moved(&mut b, &mut a);
        a.hangup().unwrap();
        moved(&mut a, &mut b);
        moved(&mut b, &mut a);
        assert_eq!(
            (a.state(), b.state()),
            (State::Terminated, State::Terminated)
        );
        let mut all = vec![inv.to_bytes()];
        all.extend(wire);
        all
    }

    #[test]
    fn stays_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Dialog>();
    }

    #[test]
    fn same_seed_same_bytes() {
        let first = seeded_call(1);
        assert!(first.len() >= 8, "{} messages", first.len());
        assert_eq!(first, seeded_call(1));
        assert_ne!(first, seeded_call(3));
    }

    #[test]
    fn call_answer_and_bye() {
        let now = Instant::now();
        let (mut a, mut b) = call(now);
        b.hangup().unwrap();
        assert_eq!(pump(&mut b, &mut a, now), ["BYE"]);
        assert_eq!(events(&mut a), [Event::Ended(EndReason::HungUp)]);
        assert_eq!(pump(&mut a, &mut b, now), ["200"]);
        assert_eq!(events(&mut b), [Event::Ended(EndReason::Local)]);
        assert_eq!(a.state(), State::Terminated);
    }

    #[test]
    fn reinvite_info_and_glare() {
        let now = Instant::now();
        let (mut a, mut b) = call(now);
        // Hold from the callee's side.
        b.reinvite(b"hold", now).unwrap();
        assert_eq!(b.reinvite(b"again", now), Err(DialogError::Pending));
        pump(&mut b, &mut a, now);
        assert_eq!(
            events(&mut a),
            [Event::Offer {
                sdp: b"hold".to_vec()
            }]
        );
        a.answer_offer(b"held", now).unwrap();
        assert_eq!(pump(&mut a, &mut b, now), ["100", "200"]);
        assert_eq!(
            events(&mut b),
            [Event::Renegotiated {
                sdp: b"held".to_vec()
            }]
        );
        assert_eq!(pump(&mut b, &mut a, now), ["ACK"]);
        // A keyframe request.
        a.info("application/media_control+xml", b"<x/>", now)
            .unwrap();
        assert_eq!(pump(&mut a, &mut b, now), ["INFO"]);
        assert_eq!(
            events(&mut b),
            [Event::Info {
                content_type: "application/media_control+xml".into(),
                body: b"<x/>".to_vec()
            }]
        );
        assert_eq!(pump(&mut b, &mut a, now), ["200"]);
        // Crossing re-INVITEs: both get 491, both stay up.
        a.reinvite(b"x", now).unwrap();
        b.reinvite(b"y", now).unwrap();
        let (ma, mb) = (a.poll_transmit().unwrap(), b.poll_transmit().unwrap());
        a.handle(&mb, now);
        b.handle(&ma, now);
        assert_eq!(pump(&mut a, &mut b, now), ["491"]);
        assert_eq!(pump(&mut b, &mut a, now), ["491", "ACK"]);
        assert_eq!(pump(&mut a, &mut b, now), ["ACK"]);
        assert_eq!(events(&mut a), [Event::RenegotiationFailed(491)]);
        assert_eq!(events(&mut b), [Event::RenegotiationFailed(491)]);
        assert_eq!((a.state(), b.state()), (State::Confirmed, State::Confirmed));
        // An offer refused: the offerer is told, and both can go on.
        b.reinvite(b"unreadable", now).unwrap();
        pump(&mut b, &mut a, now);
        assert_eq!(
            events(&mut a),
            [Event::Offer {
                sdp: b"unreadable".to_vec()
            }]
        );
        a.refuse_offer(488, "Not Acceptable Here").unwrap();
        assert_eq!(
            a.refuse_offer(488, "again"),
            Err(DialogError::State(State::Confirmed))
        );
        assert_eq!(pump(&mut a, &mut b, now), ["100", "488"]);
        assert_eq!(events(&mut b), [Event::RenegotiationFailed(488)]);
        assert_eq!(pump(&mut b, &mut a, now), ["ACK"]);
        b.reinvite(b"better", now).unwrap();
        pump(&mut b, &mut a, now);
        assert_eq!(
            events(&mut a),
            [Event::Offer {
                sdp: b"better".to_vec()
            }]
        );
    }

    #[test]
    fn cancel_busy_decline_and_timeouts() {
        let now = Instant::now();
        let (ea, eb) = ends();
        // CANCEL while ringing.
        let mut a = Dialog::invite(ea.clone(), b"o", now);
        let inv = a.poll_transmit().unwrap();
        let mut b = Dialog::incoming(eb.clone(), &inv, now).unwrap();
        b.ring().unwrap();
        pump(&mut b, &mut a, now);
        a.hangup().unwrap();
        assert_eq!(pump(&mut a, &mut b, now), ["CANCEL"]);
        assert_eq!(events(&mut b), [Event::Ended(EndReason::Cancelled)]);
        assert_eq!(pump(&mut b, &mut a, now), ["200", "487"]);
        assert_eq!(
            events(&mut a),
            [Event::Ringing, Event::Ended(EndReason::Local)]
        );
        // Busy and decline, each acknowledged.
        for (code, reason, end) in [
            (486, "Busy Here", EndReason::Busy),
            (603, "Decline", EndReason::Declined),
        ] {
            let mut a = Dialog::invite(ea.clone(), b"o", now);
            let inv = a.poll_transmit().unwrap();
            let mut b = Dialog::incoming(eb.clone(), &inv, now).unwrap();
            b.reject(code, reason).unwrap();
            assert_eq!(pump(&mut b, &mut a, now), ["100", &code.to_string()]);
            assert_eq!(events(&mut a), [Event::Ended(end)]);
            let ack = a.poll_transmit().unwrap();
            assert!(matches!(&ack.start, StartLine::Request { method, .. } if method == "ACK"));
            assert_eq!(
                branch_of(&ack),
                branch_of(&inv),
                "non-2xx ACK on the INVITE's branch"
            );
        }
        // Nobody answers: after timer B the INVITE is cancelled.
        let mut a = Dialog::invite(ea.clone(), b"o", now);
        a.poll_transmit();
        assert_eq!(a.poll_timeout(), Some(now + REQUEST_TIMEOUT));
        a.handle_timeout(now + REQUEST_TIMEOUT);
        assert_eq!(events(&mut a), [Event::Ended(EndReason::Timeout)]);
        assert!(
            matches!(&a.poll_transmit().unwrap().start, StartLine::Request { method, .. } if method == "CANCEL")
        );
        // Our 200 never acknowledged: BYE.
        let mut a = Dialog::invite(ea, b"o", now);
        let inv = a.poll_transmit().unwrap();
        let mut b = Dialog::incoming(eb, &inv, now).unwrap();
        b.accept(b"a", now).unwrap();
        b.poll_transmit();
        b.poll_transmit();
        b.handle_timeout(now + REQUEST_TIMEOUT);
        assert_eq!(events(&mut b), [Event::Ended(EndReason::Timeout)]);
        assert!(
            matches!(&b.poll_transmit().unwrap().start, StartLine::Request { method, .. } if method == "BYE")
        );
    }

    #[test]
    fn an_invite_from_another_account_is_refused() {
        let now = Instant::now();
        let (ea, mut eb) = ends();
        let mut a = Dialog::invite(ea, b"o", now);
        let inv = a.poll_transmit().unwrap();
        eb.peer = "f".repeat(40);
        assert!(matches!(
            Dialog::incoming(eb.clone(), &inv, now),
            Err(DialogError::WrongSender { .. })
        ));
        let mut not_invite = inv.clone();
        not_invite.start = StartLine::Request {
            method: "BYE".into(),
            uri: "x".into(),
        };
        assert!(matches!(
            Dialog::incoming(eb, &not_invite, now),
            Err(DialogError::BadInvite(_))
        ));
        let r = refusal(&inv, 403, "Forbidden");
        assert!(matches!(r.start, StartLine::Response { code: 403, .. }));
    }

    #[test]
    fn stray_and_late_requests() {
        let now = Instant::now();
        let (mut a, mut b) = call(now);
        // An INFO written by a, kept for later.
        a.info("application/dtmf-relay", b"Signal=1", now).unwrap();
        let info = a.poll_transmit().unwrap();
        a.hangup().unwrap();
        assert_eq!(pump(&mut a, &mut b, now), ["BYE"]);
        assert_eq!(events(&mut b), [Event::Ended(EndReason::HungUp)]);
        assert!(
            b.poll_transmit()
                .is_some_and(|m| matches!(m.start, StartLine::Response { code: 200, .. }))
        );
        // A request after the end gets 481.
        b.handle(&info, now);
        assert!(
            b.poll_transmit()
                .is_some_and(|m| matches!(m.start, StartLine::Response { code: 481, .. }))
        );
        // Messages of another call are not this dialog's.
        let (ea, _) = ends();
        let mut other = Dialog::invite(ea, b"o", now);
        let foreign = other.poll_transmit().unwrap();
        assert!(!b.matches(&foreign));
        b.handle(&foreign, now);
        assert!(b.poll_transmit().is_none());
        assert!(events(&mut b).is_empty());
    }
}
