//! Calls: each call's SIP dialog (pamoja-media's state machine) on the peer's `sip`
//! channel, and the rules around it: the offer and answer built from a gathered media
//! session, what we want (hold, mute, video) against what the last offer and answer
//! agreed, re-INVITEs when they differ (crossing ones retried after RFC 3261's random wait),
//! INFOs one at a time (DTMF, recording and mute states, key frames), the peer's states
//! read, the 500 ms pause before an INVITE on a fresh channel, and the two seconds we wait
//! for the peer's answer to our BYE or CANCEL.
//!
//! Media are I/O: the core asks the shell to gather a media session ([`Io::GatherMedia`]),
//! to start the streams of an offer and answer on it ([`Io::StartMedia`]) and to stop them
//! ([`Io::StopMedia`]); each later offer and answer sets the media up anew, as jamid does
//! towards a User-Agent it does not know.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pamoja_channel::random::SeededRandom;
use pamoja_channel::sip::SipMessage;
use pamoja_media::control::{self, Control};
use pamoja_media::dialog::{self, Dialog, DialogError, EndReason, Endpoint, Event as DialogEvent};
use pamoja_media::negotiate::{self, Capability, Local, Negotiated};
use pamoja_media::sdp::{Codec, Direction, Sdp};

use super::{ChannelId, Core, Io, Reply, Ticket};
use crate::event::{CallState, CallStats, Event};
use crate::id::CallId;

/// How long a call that we ended waits for the peer's answer to our BYE or CANCEL.
pub const LINGER: Duration = Duration::from_secs(2);

/// jamid sets its SIP transport up as a `sip` channel opens; an INVITE in that same instant
/// can stall it for good, so an INVITE on a fresh channel waits this long.
pub const FRESH_CHANNEL_PAUSE: Duration = Duration::from_millis(500);

/// The keys DTMF carries.
pub const DTMF_KEYS: &str = "0123456789*#ABCD";

/// Calls at once (each holds media sockets and codecs): INVITEs past this get 486.
pub const MAX_CALLS: usize = 8;
/// Calls at once with one peer account.
pub const MAX_CALLS_PER_PEER: usize = 2;

/// How long a key press we send lasts (ms), as jamid's.
const DTMF_DURATION_MS: u32 = 160;

/// The payload type we offer VP8 at (jamid's: video from 96 in its order, H.264 first).
pub const VP8_PT: u8 = 97;

/// A media session gathered by the shell, named by the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GatherId(pub u64);

/// What a gathered media session offers: its ICE credentials, and per section the RTP
/// port and the candidate lines.
#[derive(Debug, Clone, Default)]
pub struct LocalMedia {
    /// ICE user fragment.
    pub ufrag: String,
    /// ICE password.
    pub pwd: String,
    /// The RTP port of each section (RTCP is the next one).
    pub ports: Vec<u16>,
    /// The `a=candidate` lines of each section.
    pub candidates: Vec<Vec<String>>,
}

/// What a call's media report back.
#[derive(Debug, Clone)]
pub enum MediaNews {
    /// The media ICE session is up: streams flow.
    Up,
    /// The media could not start.
    Failed(String),
    /// Our video stream lost a picture: ask the peer for a key frame.
    AskKeyFrame,
}

/// A command about a call in progress.
#[derive(Debug, Clone)]
pub enum CallCommand {
    /// Answer an incoming call.
    Answer {
        /// We send and take video.
        video: bool,
        /// We record what we receive (the peer is told).
        records: bool,
    },
    /// Hang up, cancel or decline.
    HangUp,
    /// Hold (`true`) or resume: a re-INVITE.
    Hold(bool),
    /// Mute our audio (`true`) or not: local, silence is sent; the peer is told.
    Mute(bool),
    /// Add video or drop it: a re-INVITE.
    Video(bool),
    /// Press a key (`0`-`9`, `*`, `#`, `A`-`D`).
    Dtmf(char),
}

/// What a gathered session is for.
#[derive(Debug)]
pub(super) enum Purpose {
    /// The first offer of a call we place.
    Place {
        ticket: Ticket,
        channel: ChannelId,
        peer: String,
        fresh: bool,
        video: bool,
    },
    /// Our answer to the first offer.
    Answer { call: String },
    /// Our re-offer (hold and video wanted).
    Reoffer {
        call: String,
        sections: Vec<String>,
        wanted: (bool, bool),
    },
    /// Our answer to the peer's re-offer.
    Reanswer { call: String, offer: Sdp },
}

/// The media of a call as the core sees them.
#[derive(Debug, Clone)]
struct Media {
    /// The kinds of the sections of the offer and answer they run.
    sections: Vec<String>,
    /// A video stream runs.
    video: bool,
    /// The peer holds the call.
    peer_hold: bool,
}

/// One call.
pub(super) struct Call {
    dialog: Dialog,
    channel: ChannelId,
    peer: String,
    /// We want the call held, our audio muted, video.
    hold: bool,
    muted: bool,
    video: bool,
    /// We write what we receive (the peer is told).
    records: bool,
    /// Hold and video as the last offer and answer set them.
    agreed: (bool, bool),
    /// Caller: the session gathered for the offer, and the offer.
    offer: Option<(GatherId, Sdp)>,
    /// Our re-INVITE in flight: its session, offer, and the hold and video it asks for.
    reoffer: Option<(GatherId, Sdp, (bool, bool))>,
    /// A session is being gathered for this call.
    gathering: bool,
    /// When to try a re-INVITE again (after a 491, or while another request is out).
    retry_at: Option<Instant>,
    /// Nothing is sent before this (a fresh channel).
    send_after: Option<Instant>,
    /// INFO bodies to send, one request at a time.
    infos: VecDeque<(&'static str, String)>,
    told_recording: bool,
    peer_recording: bool,
    peer_muted: bool,
    media: Option<Media>,
    /// We ended it: the reason, and until when we wait for the peer's answer.
    linger: Option<Instant>,
    /// It is over: the reason, waiting for the media's figures.
    finishing: Option<String>,
}

impl Call {
    /// A call on `channel` with `peer` (an account id) whose dialog is `dialog`: nothing
    /// wanted, offered or agreed yet.
    fn new(dialog: Dialog, channel: ChannelId, peer: &str) -> Self {
        Self {
            dialog,
            channel,
            peer: peer.to_owned(),
            hold: false,
            muted: false,
            video: false,
            records: false,
            agreed: (false, false),
            offer: None,
            reoffer: None,
            gathering: false,
            retry_at: None,
            send_after: None,
            infos: VecDeque::new(),
            told_recording: false,
            peer_recording: false,
            peer_muted: false,
            media: None,
            linger: None,
            finishing: None,
        }
    }
}

/// Our side of a call's SDP: a section per kind of `sections`, in order: audio (Opus,
/// DTMF), video (VP8) enabled when `video` (else a refused section), anything else refused;
/// each `sendonly` when we `hold`.
pub(crate) fn local(
    addr: IpAddr,
    media: &LocalMedia,
    sections: &[String],
    hold: bool,
    video: bool,
) -> Local {
    let direction = if hold {
        Direction::SendOnly
    } else {
        Direction::SendRecv
    };
    let capabilities = sections
        .iter()
        .map(|kind| {
            let (codecs, enabled) = match kind.as_str() {
                "audio" => (vec![Codec::opus(), Codec::telephone_event()], true),
                "video" => (vec![Codec::vp8(VP8_PT)], video),
                _ => (vec![], false),
            };
            Capability {
                direction,
                enabled,
                ..Capability::new(kind, codecs)
            }
        })
        .collect();
    Local {
        addr,
        ice: (media.ufrag.clone(), media.pwd.clone()),
        capabilities,
    }
}

/// The sections of an offer: audio, and video when asked.
pub(crate) fn first_sections(video: bool) -> Vec<String> {
    let mut s = vec!["audio".to_owned()];
    if video {
        s.push("video".into());
    }
    s
}

/// Whether the peer holds the call: every section it kept says it receives nothing
/// (`sendonly` or `inactive`), as jamid reads it.
pub(crate) fn peer_holds(remote: &Sdp) -> bool {
    let kept: Vec<_> = remote.media.iter().filter(|m| m.port != 0).collect();
    !kept.is_empty() && kept.iter().all(|m| !m.direction().receives())
}

fn reason_text(r: &EndReason) -> String {
    match r {
        EndReason::Local => "local".into(),
        EndReason::HungUp => "hung_up".into(),
        EndReason::Cancelled => "cancelled".into(),
        EndReason::Busy => "busy".into(),
        EndReason::Declined => "declined".into(),
        EndReason::Timeout => "timeout".into(),
        EndReason::Failed(code, why) => format!("failed: {code} {why}"),
    }
}

/// A negotiated stream's codec name (`opus/48000/2`, `VP8/90000`).
pub(crate) fn codec_name(s: &negotiate::Stream) -> Option<String> {
    let send = s.send.as_ref()?;
    Some(match send.channels {
        Some(ch) => format!("{}/{}/{}", send.name, send.clock, ch),
        None => format!("{}/{}", send.name, send.clock),
    })
}

/// Whether media can run on `negotiated` (what the shell's streams need): ICE
/// credentials, an Opus audio stream with both keys, and VP8 if video runs. Whether a
/// video stream runs.
pub(crate) fn check_media(negotiated: &Negotiated, want_video: bool) -> Result<bool, String> {
    if negotiated.remote_ice.is_none() {
        return Err("no ICE credentials in the peer's SDP".into());
    }
    let keys = |s: &negotiate::Stream| -> Result<String, String> {
        let name = codec_name(s).ok_or("no codec to send with")?;
        s.local_crypto.as_ref().ok_or("no local key")?;
        s.remote_crypto.as_ref().ok_or("no key from the peer")?;
        Ok(name)
    };
    let audio = negotiated
        .streams
        .iter()
        .find(|s| s.enabled && s.kind == "audio")
        .ok_or("no audio stream")?;
    let codec = keys(audio)?;
    if !codec.to_ascii_lowercase().starts_with("opus/") {
        return Err(format!("the peer sends {codec}, not Opus"));
    }
    match negotiated
        .streams
        .iter()
        .find(|s| s.enabled && s.kind == "video")
        .filter(|_| want_video)
    {
        Some(v) => {
            let name = keys(v)?;
            if !name.starts_with("VP8/") {
                return Err(format!("the peer sends {name} video, not VP8"));
            }
            Ok(true)
        }
        None => Ok(false),
    }
}

impl Call {
    fn wanted(&self) -> (bool, bool) {
        (self.hold, self.video)
    }
}

impl Core {
    fn endpoint(&self, peer: &str) -> Endpoint {
        Endpoint {
            account: self.me.clone(),
            device: self.short_device.clone(),
            display_name: None,
            peer: peer.to_owned(),
            local: SocketAddr::new(self.ice_addr, 0),
            remote: SocketAddr::new(self.ice_addr, 0),
        }
    }

    fn seeded(&mut self) -> SeededRandom {
        let mut seed = [0u8; 32];
        self.random.fill(&mut seed);
        SeededRandom::new(seed)
    }

    fn gather(&mut self, purpose: Purpose, streams: usize, controlling: bool) {
        self.next_gather += 1;
        let g = GatherId(self.next_gather);
        self.gathers.insert(g, purpose);
        self.io.push_back(Io::GatherMedia {
            gather: g,
            components: 2 * streams.max(1) as u32,
            controlling,
        });
    }

    fn call_state(&mut self, call: &str, state: CallState, reason: Option<String>) {
        let Some(peer) = self.calls.get(call).map(|c| c.peer.clone()) else {
            return;
        };
        self.emit_for(&peer, |peer| Event::CallState {
            call: CallId::trusted(call),
            peer,
            state,
            reason,
        });
    }

    fn media_event(&mut self, call: &str) {
        let Some(c) = self.calls.get(call) else {
            return;
        };
        let Some(m) = &c.media else { return };
        self.events.push_back(Event::CallMedia {
            call: CallId::trusted(call),
            hold: c.hold,
            peer_hold: m.peer_hold,
            muted: c.muted,
            video: m.video,
            peer_recording: c.peer_recording,
            peer_muted: c.peer_muted,
        });
    }

    /// Places a call on a `sip` channel: a media session is gathered for the offer first.
    pub(super) fn place_on(&mut self, ticket: Ticket, channel: ChannelId, peer: &str, fresh: bool) {
        let (video, records) = self.placing.remove(&ticket).unwrap_or((false, false));
        self.placing_records.insert(ticket, records);
        self.gather(
            Purpose::Place {
                ticket,
                channel,
                peer: peer.to_owned(),
                fresh,
                video,
            },
            first_sections(video).len(),
            true,
        );
    }

    /// A call is known: kept, and the shell told.
    fn call_started(
        &mut self,
        id: &str,
        call: Call,
        peer: pamoja_identity::JamiId,
        auto_answer: bool,
        ticket: Option<Ticket>,
    ) {
        self.calls.insert(id.to_owned(), call);
        self.io.push_back(Io::CallStarted {
            call: CallId::trusted(id),
            peer,
            auto_answer,
            ticket,
        });
    }

    /// A peer's INVITE on a `sip` channel (refused with 486 past [`MAX_CALLS`] calls, or
    /// [`MAX_CALLS_PER_PEER`] with that peer): a new call that rings (answered at once with
    /// auto-answer).
    pub(super) fn incoming_call(&mut self, channel: ChannelId, peer: &str, invite: &SipMessage) {
        let Some(peer_id) = super::jid(peer) else {
            tracing::info!("INVITE from {peer:?}: not an account");
            return;
        };
        let theirs = self.calls.values().filter(|c| c.peer == peer).count();
        if self.calls.len() >= MAX_CALLS || theirs >= MAX_CALLS_PER_PEER {
            tracing::info!(
                "INVITE from {peer}: busy ({theirs} calls with them, {} in all)",
                self.calls.len()
            );
            self.io.push_back(Io::Send {
                channel,
                data: dialog::refusal(invite, 486, "Busy Here").to_bytes(),
            });
            return;
        }
        let rnd = self.seeded();
        let mut d = match Dialog::incoming_with_random(self.endpoint(peer), invite, self.now, rnd) {
            Ok(d) => d,
            Err(e) => {
                tracing::info!("INVITE refused: {e}");
                self.io.push_back(Io::Send {
                    channel,
                    data: dialog::refusal(invite, 403, "Forbidden").to_bytes(),
                });
                return;
            }
        };
        let _ = d.ring();
        let id = d.call_id().to_owned();
        let auto = self.settings.auto_answer;
        let (video, records) = (self.auto_answer_media.0, self.auto_answer_media.1);
        self.call_started(&id, Call::new(d, channel, peer), peer_id, auto, None);
        self.call_state(&id, CallState::Incoming, None);
        if auto {
            if let Some(c) = self.calls.get_mut(&id) {
                c.records = records;
            }
            self.answer(&id, video);
        }
        self.drive_call(&id);
    }

    fn answer(&mut self, call: &str, video: bool) {
        let Some(c) = self.calls.get_mut(call) else {
            return;
        };
        if c.dialog.state() != dialog::State::Incoming || c.gathering {
            return;
        }
        c.video = video;
        c.agreed.1 = video;
        let offer = match Sdp::parse(&String::from_utf8_lossy(c.dialog.remote_offer())) {
            Ok(o) => o,
            Err(e) => {
                let _ = c.dialog.reject(488, "Not Acceptable Here");
                self.end_call(call, format!("media: unreadable offer: {e}"));
                return;
            }
        };
        c.gathering = true;
        let streams = offer.media.len().min(2);
        self.gather(
            Purpose::Answer {
                call: call.to_owned(),
            },
            streams,
            false,
        );
    }

    /// A command about a call; `Err` when there is no such call.
    pub(super) fn call_command(&mut self, call: &str, cmd: CallCommand) -> Result<(), ()> {
        let Some(c) = self.calls.get_mut(call) else {
            return Err(());
        };
        if c.finishing.is_some() {
            return Err(());
        }
        match cmd {
            CallCommand::Answer { video, records } => {
                c.records = records;
                self.answer(call, video);
            }
            CallCommand::HangUp => {
                if c.dialog.hangup().is_err() {
                    self.end_call(call, "local".into());
                    return Ok(());
                }
            }
            CallCommand::Hold(h) => c.hold = h,
            CallCommand::Mute(m) => {
                if c.muted != m {
                    c.muted = m;
                    // jamid tells its peer when it mutes; so do we.
                    c.infos
                        .push_back((control::MEDIA_CONTROL, Control::Mute(m).to_body()));
                    self.io.push_back(Io::SetMuted {
                        call: CallId::trusted(call),
                        muted: m,
                    });
                }
                self.media_event(call);
            }
            CallCommand::Video(v) => c.video = v,
            CallCommand::Dtmf(key) => c.infos.push_back((
                control::DTMF_RELAY,
                control::dtmf_body(key, DTMF_DURATION_MS),
            )),
        }
        self.drive_call(call);
        Ok(())
    }

    /// A SIP message of a call in progress.
    pub(super) fn call_message(&mut self, call: &str, m: &SipMessage) {
        let now = self.now;
        let Some(c) = self.calls.get_mut(call) else {
            return;
        };
        if c.finishing.is_some() {
            return;
        }
        c.dialog.handle(m, now);
        if c.linger.is_some() {
            // The answer to our BYE or CANCEL, or the ACK of our refusal: done.
            self.flush_call(call);
            self.end_call(call, "local".into());
            return;
        }
        self.drive_call(call);
    }

    /// News from a call's media.
    pub(super) fn call_media(&mut self, call: &str, news: MediaNews) {
        let now = self.now;
        let Some(c) = self.calls.get_mut(call) else {
            return;
        };
        if c.finishing.is_some() {
            return;
        }
        match news {
            MediaNews::Up => {
                let state = if c.hold {
                    CallState::Hold
                } else {
                    CallState::Current
                };
                if c.records && !c.told_recording {
                    c.told_recording = true;
                    c.infos
                        .push_back((control::MEDIA_CONTROL, Control::Recording(true).to_body()));
                }
                self.call_state(call, state, None);
                self.media_event(call);
            }
            MediaNews::AskKeyFrame => {
                let body = Control::KeyFrame { stream: None }.to_body();
                let _ = c.dialog.info(control::MEDIA_CONTROL, body.as_bytes(), now);
            }
            MediaNews::Failed(e) => {
                let _ = c.dialog.hangup();
                self.flush_call(call);
                self.end_call(call, format!("media: {e}"));
                return;
            }
        }
        self.drive_call(call);
    }

    /// A media session was gathered (`None`: it could not be).
    pub(super) fn media_gathered(&mut self, g: GatherId, local_media: Option<LocalMedia>) {
        let Some(purpose) = self.gathers.remove(&g) else {
            return;
        };
        let Some(lm) = local_media else {
            match purpose {
                Purpose::Place { ticket, .. } => self.reply(
                    ticket,
                    Err(crate::error::ClientError::Call(
                        "no media session could be gathered".into(),
                    )),
                ),
                Purpose::Answer { call } | Purpose::Reanswer { call, .. } => {
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.gathering = false;
                        let _ = c.dialog.hangup();
                    }
                    self.flush_call(&call);
                    self.end_call(&call, "media: no media session".into());
                }
                Purpose::Reoffer { call, .. } => {
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.gathering = false;
                    }
                }
            }
            return;
        };
        let addr = self.ice_addr;
        let port = |i: usize| lm.ports.get(i).copied().unwrap_or(0);
        let lines = |i: usize| lm.candidates.get(i).cloned().unwrap_or_default();
        match purpose {
            Purpose::Place {
                ticket,
                channel,
                peer,
                fresh,
                video,
            } => {
                let peer_id = match peer.parse::<pamoja_identity::JamiId>() {
                    Ok(p) => p,
                    Err(e) => {
                        self.io.push_back(Io::DropMedia(g));
                        self.reply(ticket, Err(crate::error::ClientError::BadAccountId(e)));
                        return;
                    }
                };
                let sections = first_sections(video);
                let offer =
                    negotiate::offer(&local(addr, &lm, &sections, false, true), port, lines);
                let rnd = self.seeded();
                let d = Dialog::invite_with_random(
                    self.endpoint(&peer),
                    offer.to_text().as_bytes(),
                    self.now,
                    rnd,
                );
                let id = d.call_id().to_owned();
                let records = self.placing_records.remove(&ticket).unwrap_or(false);
                let call = Call {
                    video,
                    records,
                    agreed: (false, video),
                    offer: Some((g, offer)),
                    send_after: fresh.then(|| self.now + FRESH_CHANNEL_PAUSE),
                    ..Call::new(d, channel, &peer)
                };
                self.call_started(&id, call, peer_id, false, Some(ticket));
                self.reply(ticket, Ok(Reply::Call(CallId::trusted(&id))));
                if !fresh {
                    self.call_state(&id, CallState::Calling, None);
                }
                self.drive_call(&id);
            }
            Purpose::Answer { call } => {
                let Some(c) = self.calls.get_mut(&call) else {
                    self.io.push_back(Io::DropMedia(g));
                    return;
                };
                c.gathering = false;
                if c.dialog.state() != dialog::State::Incoming {
                    self.io.push_back(Io::DropMedia(g));
                    return;
                }
                let offer = Sdp::parse(&String::from_utf8_lossy(c.dialog.remote_offer()));
                let answered = offer.as_ref().map_err(|e| e.to_string()).and_then(|o| {
                    negotiate::answer(
                        o,
                        &local(addr, &lm, &first_sections(true), false, c.video),
                        port,
                        lines,
                    )
                    .map_err(|e| e.to_string())
                });
                let (answer, negotiated) = match answered {
                    Ok(a) => a,
                    Err(e) => {
                        let _ = c.dialog.reject(488, "Not Acceptable Here");
                        self.io.push_back(Io::DropMedia(g));
                        self.flush_call(&call);
                        self.end_call(&call, format!("media: {e}"));
                        return;
                    }
                };
                if let Err(e) = c.dialog.accept(answer.to_text().as_bytes(), self.now) {
                    tracing::info!("{call}: answer not sent: {e}");
                    self.io.push_back(Io::DropMedia(g));
                    return;
                }
                c.agreed = c.wanted();
                let remote = offer.unwrap_or_else(|_| answer.clone());
                self.flush_call(&call);
                if self.start_media(&call, g, negotiated, &remote) {
                    self.call_state(&call, CallState::Connecting, None);
                }
                self.drive_call(&call);
            }
            Purpose::Reoffer {
                call,
                sections,
                wanted,
            } => {
                let now = self.now;
                let Some(c) = self.calls.get_mut(&call) else {
                    self.io.push_back(Io::DropMedia(g));
                    return;
                };
                c.gathering = false;
                if c.dialog.state() != dialog::State::Confirmed || c.reoffer.is_some() {
                    self.io.push_back(Io::DropMedia(g));
                    self.drive_call(&call);
                    return;
                }
                let offer = negotiate::offer(
                    &local(addr, &lm, &sections, wanted.0, wanted.1),
                    port,
                    lines,
                );
                match c.dialog.reinvite(offer.to_text().as_bytes(), now) {
                    Ok(()) => c.reoffer = Some((g, offer, wanted)),
                    // An INFO is out: the re-INVITE follows it.
                    Err(DialogError::Pending) => {
                        c.retry_at = Some(now + Duration::from_millis(200));
                        self.io.push_back(Io::DropMedia(g));
                    }
                    Err(e) => {
                        tracing::info!("{call}: no re-INVITE: {e}");
                        self.io.push_back(Io::DropMedia(g));
                    }
                }
                self.drive_call(&call);
            }
            Purpose::Reanswer { call, offer } => {
                let now = self.now;
                let Some(c) = self.calls.get_mut(&call) else {
                    self.io.push_back(Io::DropMedia(g));
                    return;
                };
                c.gathering = false;
                let answered = negotiate::answer(
                    &offer,
                    &local(addr, &lm, &first_sections(true), c.hold, c.video),
                    port,
                    lines,
                );
                let Ok((answer, negotiated)) = answered else {
                    let _ = c.dialog.refuse_offer(488, "Not Acceptable Here");
                    self.io.push_back(Io::DropMedia(g));
                    self.drive_call(&call);
                    return;
                };
                if let Err(e) = c.dialog.answer_offer(answer.to_text().as_bytes(), now) {
                    tracing::info!("{call}: answer to the re-INVITE not sent: {e}");
                    self.io.push_back(Io::DropMedia(g));
                    self.drive_call(&call);
                    return;
                }
                c.agreed = c.wanted();
                self.flush_call(&call);
                self.start_media(&call, g, negotiated, &offer);
                self.drive_call(&call);
            }
        }
    }

    /// Asks the shell to run the media of an offer and answer; `false` (and the call
    /// hung up) when they cannot run.
    fn start_media(
        &mut self,
        call: &str,
        g: GatherId,
        negotiated: Negotiated,
        remote: &Sdp,
    ) -> bool {
        let Some(c) = self.calls.get_mut(call) else {
            return false;
        };
        match check_media(&negotiated, c.video) {
            Ok(video) => {
                c.media = Some(Media {
                    sections: negotiated.streams.iter().map(|s| s.kind.clone()).collect(),
                    video,
                    peer_hold: peer_holds(remote),
                });
                let hold = c.hold;
                self.io.push_back(Io::StartMedia {
                    call: CallId::trusted(call),
                    gather: g,
                    negotiated,
                    hold,
                    video,
                });
                true
            }
            Err(e) => {
                let _ = c.dialog.hangup();
                self.io.push_back(Io::DropMedia(g));
                self.flush_call(call);
                self.end_call(call, format!("media: {e}"));
                false
            }
        }
    }

    /// Sends what the dialog wants sent (unless a fresh channel still waits).
    fn flush_call(&mut self, call: &str) {
        let Some(c) = self.calls.get_mut(call) else {
            return;
        };
        if c.send_after.is_some() {
            return;
        }
        while let Some(m) = c.dialog.poll_transmit() {
            self.io.push_back(Io::Send {
                channel: c.channel,
                data: m.to_bytes(),
            });
        }
    }

    /// Handles what the dialog reports, then sends INFOs and re-INVITEs that are due.
    fn drive_call(&mut self, call: &str) {
        let now = self.now;
        loop {
            let Some(c) = self.calls.get_mut(call) else {
                return;
            };
            if c.finishing.is_some() {
                return;
            }
            let Some(e) = c.dialog.poll_event() else {
                break;
            };
            match e {
                DialogEvent::Ringing => self.call_state(call, CallState::Ringing, None),
                DialogEvent::Answered { sdp } => {
                    let Some((g, offer)) = c.offer.take() else {
                        continue;
                    };
                    let answer = match Sdp::parse(&String::from_utf8_lossy(&sdp)) {
                        Ok(a) => a,
                        Err(e) => {
                            let _ = c.dialog.hangup();
                            self.io.push_back(Io::DropMedia(g));
                            self.flush_call(call);
                            self.end_call(call, format!("media: unreadable answer: {e}"));
                            return;
                        }
                    };
                    let negotiated = negotiate::answered(&offer, &answer);
                    if self.start_media(call, g, negotiated, &answer) {
                        self.call_state(call, CallState::Connecting, None);
                    }
                }
                DialogEvent::Renegotiated { sdp } => {
                    let Some((g, offer, asked)) = c.reoffer.take() else {
                        continue;
                    };
                    c.agreed = asked;
                    match Sdp::parse(&String::from_utf8_lossy(&sdp)) {
                        Ok(answer) => {
                            let negotiated = negotiate::answered(&offer, &answer);
                            self.start_media(call, g, negotiated, &answer);
                        }
                        Err(e) => {
                            let _ = c.dialog.hangup();
                            self.io.push_back(Io::DropMedia(g));
                            self.flush_call(call);
                            self.end_call(call, format!("media: unreadable answer: {e}"));
                            return;
                        }
                    }
                }
                DialogEvent::RenegotiationFailed(code) => {
                    let asked = c.reoffer.take();
                    if let Some((g, _, _)) = &asked {
                        self.io.push_back(Io::DropMedia(*g));
                    }
                    if code == 491 {
                        // RFC 3261 14.1: a random wait, longer for the Call-ID's owner.
                        let caller = c.dialog.is_caller();
                        let mut b = [0u8; 1];
                        self.random.fill(&mut b);
                        let ms = u64::from(b[0]) * 8;
                        let wait = if caller { 2100 + ms } else { ms };
                        if let Some(c) = self.calls.get_mut(call) {
                            c.retry_at = Some(now + Duration::from_millis(wait));
                        }
                    } else if let Some((_, _, asked)) = asked {
                        tracing::info!("{call}: re-INVITE refused ({code})");
                        c.agreed = asked;
                        self.media_event(call);
                    }
                }
                DialogEvent::Info { content_type, body } => {
                    self.take_info(call, &content_type, &body)
                }
                DialogEvent::Offer { sdp } => {
                    match Sdp::parse(&String::from_utf8_lossy(&sdp)) {
                        Ok(o) if !o.media.is_empty() && !c.gathering => {
                            c.gathering = true;
                            let streams = o.media.len().min(2);
                            self.gather(
                                Purpose::Reanswer {
                                    call: call.to_owned(),
                                    offer: o,
                                },
                                streams,
                                false,
                            );
                        }
                        // No offer (the peer asks for ours) or an unreadable one: refused,
                        // kept as is.
                        _ => {
                            let _ = c.dialog.refuse_offer(488, "Not Acceptable Here");
                        }
                    }
                }
                DialogEvent::Ended(r) => {
                    self.flush_call(call);
                    let reason = reason_text(&r);
                    if matches!(r, EndReason::Local) {
                        if let Some(c) = self.calls.get_mut(call) {
                            c.linger = Some(now + LINGER);
                        }
                        return;
                    }
                    self.end_call(call, reason);
                    return;
                }
                _ => {}
            }
        }
        self.send_infos(call);
        self.renegotiate_if_wanted(call);
        self.flush_call(call);
    }

    /// Sends the next queued INFO when no other request is out.
    fn send_infos(&mut self, call: &str) {
        let now = self.now;
        let Some(c) = self.calls.get_mut(call) else {
            return;
        };
        while let Some((content_type, body)) = c.infos.front() {
            match c.dialog.info(content_type, body.as_bytes(), now) {
                Ok(()) => {
                    c.infos.pop_front();
                }
                // Another request is out, or our answer is not yet acknowledged.
                Err(DialogError::Pending) => return,
                Err(_) if c.dialog.state() != dialog::State::Terminated => return,
                Err(_) => {
                    c.infos.clear();
                    return;
                }
            }
        }
    }

    /// Gathers for a re-INVITE when what we want differs from what was agreed and nothing
    /// else is under way.
    fn renegotiate_if_wanted(&mut self, call: &str) {
        let now = self.now;
        let Some(c) = self.calls.get_mut(call) else {
            return;
        };
        if c.media.is_none()
            || c.reoffer.is_some()
            || c.gathering
            || c.linger.is_some()
            || c.dialog.state() != dialog::State::Confirmed
            || c.wanted() == c.agreed
            || c.retry_at.is_some_and(|t| now < t)
        {
            return;
        }
        c.retry_at = None;
        let wanted = c.wanted();
        let mut sections = c
            .media
            .as_ref()
            .map(|m| m.sections.clone())
            .unwrap_or_default();
        if wanted.1 && !sections.iter().any(|k| k == "video") {
            sections.push("video".into());
        }
        c.gathering = true;
        let n = sections.len();
        self.gather(
            Purpose::Reoffer {
                call: call.to_owned(),
                sections,
                wanted,
            },
            n,
            true,
        );
    }

    /// Acts on the peer's INFO: a key frame asked for, its recording or mute state, a key
    /// pressed.
    fn take_info(&mut self, call: &str, content_type: &str, body: &[u8]) {
        let body = String::from_utf8_lossy(body);
        if content_type.eq_ignore_ascii_case(control::DTMF_RELAY) {
            if let Some((key, _)) =
                control::parse_dtmf(&body).filter(|(k, _)| DTMF_KEYS.contains(*k))
            {
                self.events.push_back(Event::CallDtmf {
                    call: CallId::trusted(call),
                    key,
                });
            }
            return;
        }
        if !content_type.eq_ignore_ascii_case(control::MEDIA_CONTROL) {
            return;
        }
        let Some(c) = self.calls.get_mut(call) else {
            return;
        };
        match Control::parse(&body) {
            Some(Control::KeyFrame { .. }) if c.media.as_ref().is_some_and(|m| m.video) => {
                self.io.push_back(Io::KeyFrame(CallId::trusted(call)));
            }
            Some(Control::Recording(on)) if on != c.peer_recording => {
                c.peer_recording = on;
                self.media_event(call);
            }
            Some(Control::Mute(on)) if on != c.peer_muted => {
                c.peer_muted = on;
                self.media_event(call);
            }
            _ => {}
        }
    }

    /// The call is over: its media stop (their figures come back), then it is reported
    /// ended.
    fn end_call(&mut self, call: &str, reason: String) {
        let Some(c) = self.calls.get_mut(call) else {
            return;
        };
        if c.finishing.is_some() {
            return;
        }
        c.finishing = Some(reason);
        c.linger = None;
        if let Some((g, _)) = c.offer.take() {
            self.io.push_back(Io::DropMedia(g));
        }
        if let Some((g, _, _)) = c.reoffer.take() {
            self.io.push_back(Io::DropMedia(g));
        }
        self.io.push_back(Io::StopMedia(CallId::trusted(call)));
    }

    /// The figures of a call's media once stopped (`None`: no media ran): the call is
    /// reported ended and forgotten.
    pub(super) fn call_report(&mut self, call: &str, stats: Option<CallStats>) {
        let Some(reason) = self.calls.get(call).and_then(|c| c.finishing.clone()) else {
            return;
        };
        if let Some(s) = stats {
            self.events.push_back(Event::CallStats(s));
        }
        self.call_state(call, CallState::Ended, Some(reason));
        self.calls.remove(call);
        self.io.push_back(Io::CallEnded(CallId::trusted(call)));
    }

    /// The calls' timers due at `now`.
    pub(super) fn calls_timeout(&mut self, now: Instant) {
        let ids: Vec<String> = self.calls.keys().cloned().collect();
        for id in ids {
            let Some(c) = self.calls.get_mut(&id) else {
                continue;
            };
            if c.finishing.is_some() {
                continue;
            }
            if c.linger.is_some_and(|t| now >= t) {
                self.end_call(&id, "local".into());
                continue;
            }
            if c.retry_at.is_some_and(|t| now >= t) {
                c.retry_at = None;
            }
            let fresh_done = c.send_after.is_some_and(|t| now >= t);
            if fresh_done {
                c.send_after = None;
            }
            c.dialog.handle_timeout(now);
            if fresh_done {
                self.call_state(&id, CallState::Calling, None);
            }
            self.drive_call(&id);
        }
    }

    /// The earliest timer of any call.
    pub(super) fn calls_poll_timeout(&self) -> Option<Instant> {
        self.calls
            .values()
            .filter(|c| c.finishing.is_none())
            .flat_map(|c| [c.dialog.poll_timeout(), c.retry_at, c.send_after, c.linger])
            .flatten()
            .min()
    }

    /// Whether a SIP message's Call-ID is a call of ours.
    pub(super) fn is_call(&self, call: &str) -> bool {
        self.calls.contains_key(call)
    }
}
