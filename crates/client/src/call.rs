//! Calls: one task per call drives its SIP dialog on the peer's `sip` channel, its media
//! ICE session and its audio and video, and reports `call_state`, `call_media` and
//! `call_stats` events.
//!
//! The dialog itself is pamoja-media's state machine; this task feeds it the messages the
//! account's `sip` channel reader routes to it by Call-ID, writes what it wants sent, and
//! runs its timers. Once the offer and answer are through, the media start: ICE over UDP
//! (the offerer controlling), then an Opus stream ([`crate::media::run_audio`]) and a VP8
//! one when both sides want video, until the dialog ends.
//!
//! Every later offer and answer (a re-INVITE from either side: hold, unhold, video added or
//! dropped) sets the media up anew, as jamid does towards a peer whose User-Agent it does
//! not know: a new ICE session with new credentials, new SRTP keys, the streams restarted
//! once the new ICE session is up. The old streams run until then, and the call's figures
//! add up over all of them. Mute is local, as jamid's: silence is sent.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pamoja_channel::link::ChannelSender;
use pamoja_channel::sip::SipMessage;
use pamoja_ice::agent::Role;
use pamoja_ice::media::MediaSession;
use pamoja_ice::session::Options;
use pamoja_media::control::{self, Control};
use pamoja_media::dialog::{self, Dialog, DialogError, EndReason, Endpoint, Event as DialogEvent};
use pamoja_media::negotiate::{self, Capability, Local, Negotiated};
use pamoja_media::sdp::{Codec, Direction, Sdp};
use pamoja_media::stream::{MediaStream, StreamConfig};
use tokio::sync::{mpsc, watch};

use crate::event::{CallState, CallStats, Event, VideoCallStats};
use crate::id::CallId;
use crate::media::{
    AudioConfig, AudioReport, AudioSource, MediaError, VideoConfig, VideoReport, candidate_lines,
    remote_ice, rtp_port, run_audio, run_video,
};

/// How long a call that we ended waits for the peer's answer to our BYE or CANCEL.
pub const LINGER: Duration = Duration::from_secs(2);

/// How long media ICE may take (jamid's own limit is 35 s).
pub const MEDIA_TIMEOUT: Duration = Duration::from_secs(35);

/// jamid sets its SIP transport up as a `sip` channel opens; an INVITE in that same instant
/// can stall it for good, so an INVITE on a fresh channel waits this long.
pub const FRESH_CHANNEL_PAUSE: Duration = Duration::from_millis(500);

/// What a call sends and keeps.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// What we send as audio.
    pub source: AudioSource,
    /// Write what we hear to this WAV file (mono, 48 kHz) when the call ends.
    pub record_wav: Option<PathBuf>,
    /// Opus bitrate, bit/s.
    pub bitrate: u32,
    /// Video (a VP8 test pattern) as well, when given.
    pub video: Option<VideoConfig>,
}

impl Default for CallOptions {
    /// Silence at 48 kb/s, nothing recorded.
    fn default() -> Self {
        Self {
            source: AudioSource::Silence,
            record_wav: None,
            bitrate: 48_000,
            video: None,
        }
    }
}

/// What reaches a call's task.
#[derive(Debug)]
pub(crate) enum Command {
    /// A SIP message of its dialog.
    Sip(SipMessage),
    /// Answer (an incoming call).
    Answer(CallOptions),
    /// Hang up, cancel or decline.
    HangUp,
    /// The media ICE session connected.
    MediaUp,
    /// The media could not start.
    MediaFailed(String),
    /// Our video stream lost a picture: ask the peer for a key frame.
    AskKeyFrame,
    /// Hold (`true`) or resume the call: a re-INVITE.
    Hold(bool),
    /// Mute our audio (`true`) or not: local, silence is sent.
    Mute(bool),
    /// Add video (with this configuration) or drop it (`None`): a re-INVITE.
    Video(Option<VideoConfig>),
    /// Press a key: a SIP INFO `application/dtmf-relay`.
    Dtmf(char),
}

/// The keys DTMF carries.
pub const DTMF_KEYS: &str = "0123456789*#ABCD";

/// How long a key press we send lasts (ms), as jamid's.
const DTMF_DURATION_MS: u32 = 160;

/// What a call's task needs of its account.
#[derive(Clone)]
pub(crate) struct Context {
    /// Our account id.
    pub me: String,
    /// Our device's short id (for `Contact`).
    pub device: String,
    /// Where our ICE host candidates are.
    pub ice_addr: IpAddr,
    /// The account's events.
    pub events: mpsc::UnboundedSender<Event>,
}

impl Context {
    fn endpoint(&self, peer: &str) -> Endpoint {
        Endpoint {
            account: self.me.clone(),
            device: self.device.clone(),
            display_name: None,
            peer: peer.to_owned(),
            local: SocketAddr::new(self.ice_addr, 0),
            remote: SocketAddr::new(self.ice_addr, 0),
        }
    }

    fn state(&self, call: &str, peer: &str, state: CallState, reason: Option<String>) {
        let Ok(peer) = peer.parse() else {
            tracing::warn!("{call}: the peer {peer:?} is no Jami ID");
            return;
        };
        let _ = self.events.send(Event::CallState {
            call: CallId::trusted(call),
            peer,
            state,
            reason,
        });
    }

    /// A media ICE session for `streams` sections (two components each).
    async fn media_session(&self, role: Role, streams: usize) -> Result<MediaSession, String> {
        let opts = Options::udp(vec![SocketAddr::new(self.ice_addr, 0)]);
        MediaSession::gather(role, opts, 2 * streams.max(1) as u32)
            .await
            .map_err(|e| format!("media: {e}"))
    }
}

/// The payload type we offer VP8 at (jamid's: video from 96 in its order, H.264 first).
pub const VP8_PT: u8 = 97;

/// Our side of a call's SDP: a section per kind of `sections`, in order: audio (Opus,
/// DTMF), video (VP8) enabled when `video` (else a refused section), anything else refused;
/// each `sendonly` when we `hold`.
fn local(
    ctx: &Context,
    session: &MediaSession,
    sections: &[String],
    hold: bool,
    video: bool,
) -> Local {
    let d = session.local_description();
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
        addr: ctx.ice_addr,
        ice: (d.ufrag.clone(), d.pwd.clone()),
        capabilities,
    }
}

/// A video recording starts empty when video is configured; the media sessions of the
/// call (one per offer and answer) then add to it.
fn fresh_recording(video: Option<&VideoConfig>) {
    if let Some(path) = video.and_then(|v| v.record_file.as_ref()) {
        let _ = std::fs::remove_file(path);
    }
}

/// The sections of an offer: audio, and video when asked.
fn first_sections(video: bool) -> Vec<String> {
    let mut s = vec!["audio".to_owned()];
    if video {
        s.push("video".into());
    }
    s
}

/// Whether the peer holds the call: every section it kept says it receives nothing
/// (`sendonly` or `inactive`), as jamid reads it.
fn peer_holds(remote: &Sdp) -> bool {
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

/// What a call's media task gives back: the audio's figures, and the video's if it ran.
type MediaResult = Result<(AudioReport, Option<VideoReport>), MediaError>;

/// A call's media, once started: the task and how to stop it.
struct Media {
    task: tokio::task::JoinHandle<MediaResult>,
    stop: watch::Sender<bool>,
    /// Key frames the peer asks for (its INFO), for the video stream.
    key_frames: Option<mpsc::UnboundedSender<()>>,
    started: Instant,
    codec: String,
    video_codec: Option<String>,
    record_wav: Option<PathBuf>,
    /// The kinds of the sections of the offer and answer it runs.
    sections: Vec<String>,
    /// Whether a video stream runs, and whether the peer holds the call.
    video: bool,
    peer_hold: bool,
}

/// What a media task gave back, or why it gave nothing.
fn joined<T>(r: Result<Result<T, MediaError>, tokio::task::JoinError>) -> Result<T, MediaError> {
    r.map_err(|_| MediaError::Closed)?
}

/// Adds a later session's figures to an earlier one's.
fn absorb(
    earlier: Option<(AudioReport, Option<VideoReport>)>,
    (audio, video): (AudioReport, Option<VideoReport>),
) -> (AudioReport, Option<VideoReport>) {
    let Some((mut a, v)) = earlier else {
        return (audio, video);
    };
    a.absorb(audio);
    let v = match (v, video) {
        (Some(mut v), Some(later)) => {
            v.absorb(later);
            Some(v)
        }
        (v, later) => v.or(later),
    };
    (a, v)
}

/// A negotiated stream's RTP settings: ours to send with, the peer's to accept.
fn stream_config(s: &negotiate::Stream) -> Result<(StreamConfig, String), String> {
    let send = s.send.clone().ok_or("no codec to send with")?;
    let mut config = StreamConfig::new(
        send.pt,
        send.clock,
        s.local_crypto.clone().ok_or("no local key")?,
        s.remote_crypto.clone().ok_or("no key from the peer")?,
    );
    config.accept = s.receive.iter().map(|c| c.pt).collect();
    let name = match send.channels {
        Some(ch) => format!("{}/{}/{}", send.name, send.clock, ch),
        None => format!("{}/{}", send.name, send.clock),
    };
    Ok((config, name))
}

/// How a call's media are to run.
struct Plan<'a> {
    options: &'a CallOptions,
    /// We hold the call: nothing is sent.
    hold: bool,
    muted: watch::Receiver<bool>,
    /// The peer's SDP (for its hold).
    remote: &'a Sdp,
}

/// Starts the media of `negotiated` on `session`: ICE, then audio (and video when both
/// sides have it); tells the call's task through `me` when ICE is up or failed. The
/// `previous` media, if any, run until the new ICE session is up; their figures are then
/// added to the new ones'.
fn start_media(
    mut session: MediaSession,
    negotiated: &Negotiated,
    plan: Plan<'_>,
    me: mpsc::UnboundedSender<Command>,
    previous: Option<Media>,
) -> Result<Media, String> {
    let options = plan.options;
    let remote = remote_ice(negotiated).ok_or("no ICE credentials in the peer's SDP")?;
    let audio = negotiated
        .streams
        .iter()
        .find(|s| s.enabled && s.kind == "audio")
        .ok_or("no audio stream")?;
    let (audio_config, codec) = stream_config(audio)?;
    if !codec.to_ascii_lowercase().starts_with("opus/") {
        return Err(format!("the peer sends {codec}, not Opus"));
    }
    let video = negotiated
        .streams
        .iter()
        .find(|s| s.enabled && s.kind == "video")
        .filter(|_| options.video.is_some());
    let video_setup = match video {
        Some(v) => {
            let (c, name) = stream_config(v)?;
            if !name.starts_with("VP8/") {
                return Err(format!("the peer sends {name} video, not VP8"));
            }
            Some((v.index, c, name, v.direction.sends() && !plan.hold))
        }
        None => None,
    };
    // Only the components of streams that run are checked.
    let last_stream = video_setup
        .as_ref()
        .map_or(audio.index, |v| v.0.max(audio.index));
    session.truncate(2 * last_stream as u32 + 2);
    let audio_index = audio.index;
    let (stop, stopped) = watch::channel(false);
    let audio_run = AudioConfig {
        source: options.source.clone(),
        record: options.record_wav.is_some(),
        bitrate: options.bitrate,
        send: audio.direction.sends() && !plan.hold,
        muted: Some(plan.muted),
    };
    let video_config = options.video.clone().unwrap_or_default();
    let (key_tx, key_rx) = mpsc::unbounded_channel::<()>();
    let (ask_tx, mut ask_rx) = mpsc::unbounded_channel::<()>();
    let video_codec = video_setup.as_ref().map(|v| v.2.clone());
    let has_video = video_setup.is_some();
    let forward = me.clone();
    tokio::spawn(async move {
        while ask_rx.recv().await.is_some() {
            if forward.send(Command::AskKeyFrame).is_err() {
                return;
            }
        }
    });
    let started = previous.as_ref().map_or_else(Instant::now, |p| p.started);
    let video_codec = video_codec.or_else(|| previous.as_ref().and_then(|p| p.video_codec.clone()));
    let task = tokio::spawn(async move {
        let conn = match tokio::time::timeout(MEDIA_TIMEOUT, session.connect(remote)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                let _ = me.send(Command::MediaFailed(format!("ICE: {e}")));
                return Err(MediaError::Closed);
            }
            Err(_) => {
                let _ = me.send(Command::MediaFailed("ICE timed out".into()));
                return Err(MediaError::Closed);
            }
        };
        // The new session is up: the old streams end here.
        let earlier = match previous {
            Some(p) => {
                let _ = p.stop.send(true);
                p.task.await.ok().and_then(Result::ok)
            }
            None => None,
        };
        let _ = me.send(Command::MediaUp);
        let mut comps: Vec<Option<_>> = conn.into_components().into_iter().map(Some).collect();
        let mut take = |i: usize| {
            comps
                .get_mut(i)
                .and_then(Option::take)
                .ok_or(MediaError::Closed)
        };
        let (rtp, rtcp) = (take(2 * audio_index)?, take(2 * audio_index + 1)?);
        let until_stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        // Audio and video are tasks of their own: encoding or decoding a picture never
        // holds an audio frame back.
        let audio = tokio::spawn(run_audio(
            rtp,
            rtcp,
            MediaStream::new(audio_config, Instant::now()),
            audio_run,
            until_stopped(stopped.clone()),
        ));
        let now = match video_setup {
            Some((vi, vc, _, send)) => {
                let (vrtp, vrtcp) = (take(2 * vi)?, take(2 * vi + 1)?);
                let video = tokio::spawn(run_video(
                    vrtp,
                    vrtcp,
                    MediaStream::new(vc, Instant::now()),
                    video_config,
                    send,
                    key_rx,
                    ask_tx,
                    until_stopped(stopped.clone()),
                ));
                let (a, v) = tokio::join!(audio, video);
                (joined(a)?, Some(joined(v)?))
            }
            None => (joined(audio.await)?, None),
        };
        Ok(absorb(earlier, now))
    });
    Ok(Media {
        task,
        stop,
        key_frames: has_video.then_some(key_tx),
        started,
        codec,
        video_codec,
        record_wav: options.record_wav.clone(),
        sections: negotiated.streams.iter().map(|s| s.kind.clone()).collect(),
        video: has_video,
        peer_hold: peer_holds(plan.remote),
    })
}

/// A call in progress: its dialog, the channel it runs on, its media.
struct Call {
    ctx: Context,
    dialog: Dialog,
    peer: String,
    channel: ChannelSender,
    commands: mpsc::UnboundedReceiver<Command>,
    me: mpsc::UnboundedSender<Command>,
    media: Option<Media>,
    /// What the call sends and keeps (video: whether we want video, and how).
    options: CallOptions,
    /// We want the call held.
    hold: bool,
    muted: watch::Sender<bool>,
    /// Hold and video as the last offer and answer set them (or tried to: a refused
    /// re-INVITE is not tried again).
    agreed: (bool, bool),
    /// Caller: the session gathered for the offer, and the offer.
    offer: Option<(MediaSession, Sdp)>,
    /// Our re-INVITE in flight: its session, offer, and the hold and video it asks for.
    reoffer: Option<(MediaSession, Sdp, (bool, bool))>,
    /// When to try a re-INVITE again (after a 491, or while another request is out).
    retry_at: Option<Instant>,
    /// INFO bodies (content type, body) to send, one request at a time.
    infos: std::collections::VecDeque<(&'static str, String)>,
    /// We told the peer that we record the call.
    told_recording: bool,
    /// What the peer told us: it records, it muted.
    peer_recording: bool,
    peer_muted: bool,
}

/// How long to wait before another re-INVITE after one crossed the peer's (RFC 3261
/// 14.1 asks for a random wait; the owner of the Call-ID waits longer).
fn glare_wait(caller: bool) -> Duration {
    let mut b = [0u8; 1];
    let _ = aws_lc_rs::rand::fill(&mut b);
    let ms = u64::from(b[0]) * 8; // 0 to 2 s
    Duration::from_millis(if caller { 2100 + ms } else { ms })
}

impl Call {
    fn new(
        ctx: Context,
        dialog: Dialog,
        peer: String,
        channel: ChannelSender,
        options: CallOptions,
    ) -> (Self, mpsc::UnboundedSender<Command>) {
        fresh_recording(options.video.as_ref());
        let (me, commands) = mpsc::unbounded_channel();
        let video = options.video.is_some();
        let call = Self {
            ctx,
            dialog,
            peer,
            channel,
            commands,
            me: me.clone(),
            media: None,
            options,
            hold: false,
            muted: watch::channel(false).0,
            agreed: (false, video),
            offer: None,
            reoffer: None,
            retry_at: None,
            infos: Default::default(),
            told_recording: false,
            peer_recording: false,
            peer_muted: false,
        };
        (call, me)
    }

    async fn flush(&mut self) -> Result<(), String> {
        while let Some(m) = self.dialog.poll_transmit() {
            self.channel
                .send(&m.to_bytes())
                .await
                .map_err(|e| format!("sip channel: {e}"))?;
        }
        Ok(())
    }

    /// What hold and video we want now.
    fn wanted(&self) -> (bool, bool) {
        (self.hold, self.options.video.is_some())
    }

    fn plan<'a>(&'a self, remote: &'a Sdp) -> Plan<'a> {
        Plan {
            options: &self.options,
            hold: self.hold,
            muted: self.muted.subscribe(),
            remote,
        }
    }

    fn media_event(&self) {
        let Some(m) = &self.media else { return };
        let _ = self.ctx.events.send(Event::CallMedia {
            call: CallId::trusted(self.dialog.call_id()),
            hold: self.hold,
            peer_hold: m.peer_hold,
            muted: *self.muted.borrow(),
            video: m.video,
            peer_recording: self.peer_recording,
            peer_muted: self.peer_muted,
        });
    }

    /// Whether this call writes what it receives somewhere (the peer is told, as jamid
    /// tells its peers).
    fn records(&self) -> bool {
        self.options.record_wav.is_some()
            || self
                .options
                .video
                .as_ref()
                .is_some_and(|v| v.record_file.is_some())
    }

    /// Sends the next queued INFO when no other request is out.
    fn send_infos(&mut self) {
        while let Some((content_type, body)) = self.infos.front() {
            match self
                .dialog
                .info(content_type, body.as_bytes(), Instant::now())
            {
                Ok(()) => {
                    self.infos.pop_front();
                }
                // Another request is out, or our answer is not yet acknowledged: this one
                // waits for that.
                Err(DialogError::Pending) => return,
                Err(_) if self.dialog.state() != dialog::State::Terminated => return,
                Err(_) => {
                    self.infos.clear();
                    return;
                }
            }
        }
    }

    /// Sends a re-INVITE when what we want differs from what was agreed and nothing else
    /// is under way.
    async fn renegotiate_if_wanted(&mut self) -> Result<(), String> {
        let now = Instant::now();
        if self.media.is_none()
            || self.reoffer.is_some()
            || self.dialog.state() != dialog::State::Confirmed
            || self.wanted() == self.agreed
            || self.retry_at.is_some_and(|t| now < t)
        {
            return Ok(());
        }
        self.retry_at = None;
        let wanted = self.wanted();
        let mut sections = self
            .media
            .as_ref()
            .map(|m| m.sections.clone())
            .unwrap_or_default();
        if wanted.1 && !sections.iter().any(|k| k == "video") {
            sections.push("video".into());
        }
        let session = self
            .ctx
            .media_session(Role::Controlling, sections.len())
            .await?;
        let offer = negotiate::offer(
            &local(&self.ctx, &session, &sections, wanted.0, wanted.1),
            |i| rtp_port(&session, i),
            |i| candidate_lines(&session, i),
        );
        match self.dialog.reinvite(offer.to_text().as_bytes(), now) {
            Ok(()) => self.reoffer = Some((session, offer, wanted)),
            // An INFO is out: the re-INVITE follows it.
            Err(DialogError::Pending) => {
                self.retry_at = Some(now + Duration::from_millis(200));
            }
            Err(e) => tracing::info!("{}: no re-INVITE: {e}", self.dialog.call_id()),
        }
        Ok(())
    }

    /// Answers the peer's re-INVITE: a new ICE session, our answer, the media restarted.
    async fn take_offer(&mut self, sdp: &[u8]) -> Result<(), String> {
        let offer = match Sdp::parse(&String::from_utf8_lossy(sdp)) {
            Ok(o) if !o.media.is_empty() => o,
            // No offer (the peer asks for ours) or an unreadable one: refused, kept as is.
            _ => {
                let _ = self.dialog.refuse_offer(488, "Not Acceptable Here");
                return Ok(());
            }
        };
        let video = self.options.video.is_some();
        let sections = first_sections(true);
        let session = self
            .ctx
            .media_session(Role::Controlled, offer.media.len().min(2))
            .await?;
        let answered = negotiate::answer(
            &offer,
            &local(&self.ctx, &session, &sections, self.hold, video),
            |i| rtp_port(&session, i),
            |i| candidate_lines(&session, i),
        );
        let Ok((answer, negotiated)) = answered else {
            let _ = self.dialog.refuse_offer(488, "Not Acceptable Here");
            return Ok(());
        };
        self.dialog
            .answer_offer(answer.to_text().as_bytes(), Instant::now())
            .map_err(|e| e.to_string())?;
        self.flush().await?;
        self.agreed = self.wanted();
        let previous = self.media.take();
        let media = start_media(
            session,
            &negotiated,
            self.plan(&offer),
            self.me.clone(),
            previous,
        )?;
        self.media = Some(media);
        Ok(())
    }

    /// Acts on the peer's INFO: a key frame asked for, its recording or mute state, a key
    /// pressed.
    fn take_info(&mut self, content_type: &str, body: &[u8]) {
        let body = String::from_utf8_lossy(body);
        if content_type.eq_ignore_ascii_case(control::DTMF_RELAY) {
            if let Some((key, _)) =
                control::parse_dtmf(&body).filter(|(k, _)| DTMF_KEYS.contains(*k))
            {
                let _ = self.ctx.events.send(Event::CallDtmf {
                    call: CallId::trusted(self.dialog.call_id()),
                    key,
                });
            }
            return;
        }
        if !content_type.eq_ignore_ascii_case(control::MEDIA_CONTROL) {
            return;
        }
        match Control::parse(&body) {
            Some(Control::KeyFrame { .. }) => {
                if let Some(k) = self.media.as_ref().and_then(|m| m.key_frames.as_ref()) {
                    let _ = k.send(());
                }
            }
            Some(Control::Recording(on)) if on != self.peer_recording => {
                self.peer_recording = on;
                self.media_event();
            }
            Some(Control::Mute(on)) if on != self.peer_muted => {
                self.peer_muted = on;
                self.media_event();
            }
            _ => {}
        }
    }

    /// Runs the dialog until it ends; the reason.
    async fn run(&mut self) -> String {
        let call = self.dialog.call_id().to_owned();
        loop {
            // A link that went down does not hide how the dialog ended.
            let flushed = self.flush().await;
            while let Some(e) = self.dialog.poll_event() {
                match e {
                    DialogEvent::Ringing => {
                        self.ctx.state(&call, &self.peer, CallState::Ringing, None)
                    }
                    DialogEvent::Answered { sdp } => {
                        let Some((session, offer)) = self.offer.take() else {
                            continue;
                        };
                        let answer = match Sdp::parse(&String::from_utf8_lossy(&sdp)) {
                            Ok(a) => a,
                            Err(e) => {
                                let _ = self.dialog.hangup();
                                return format!("media: unreadable answer: {e}");
                            }
                        };
                        let negotiated = negotiate::answered(&offer, &answer);
                        match start_media(
                            session,
                            &negotiated,
                            self.plan(&answer),
                            self.me.clone(),
                            None,
                        ) {
                            Ok(m) => {
                                self.media = Some(m);
                                self.ctx
                                    .state(&call, &self.peer, CallState::Connecting, None);
                            }
                            Err(e) => {
                                let _ = self.dialog.hangup();
                                let _ = self.flush().await;
                                return format!("media: {e}");
                            }
                        }
                    }
                    DialogEvent::Renegotiated { sdp } => {
                        let Some((session, offer, asked)) = self.reoffer.take() else {
                            continue;
                        };
                        self.agreed = asked;
                        let started = Sdp::parse(&String::from_utf8_lossy(&sdp))
                            .map_err(|e| format!("unreadable answer: {e}"))
                            .and_then(|answer| {
                                let negotiated = negotiate::answered(&offer, &answer);
                                let previous = self.media.take();
                                start_media(
                                    session,
                                    &negotiated,
                                    self.plan(&answer),
                                    self.me.clone(),
                                    previous,
                                )
                            });
                        match started {
                            Ok(m) => self.media = Some(m),
                            Err(e) => {
                                let _ = self.dialog.hangup();
                                let _ = self.flush().await;
                                return format!("media: {e}");
                            }
                        }
                    }
                    DialogEvent::RenegotiationFailed(code) => {
                        let asked = self.reoffer.take().map(|r| r.2);
                        if code == 491 {
                            self.retry_at =
                                Some(Instant::now() + glare_wait(self.dialog.is_caller()));
                        } else if let Some(asked) = asked {
                            tracing::info!("{call}: re-INVITE refused ({code})");
                            self.agreed = asked;
                            self.media_event();
                        }
                    }
                    DialogEvent::Info { content_type, body } => {
                        self.take_info(&content_type, &body)
                    }
                    DialogEvent::Offer { sdp } => {
                        if let Err(e) = self.take_offer(&sdp).await {
                            let _ = self.dialog.hangup();
                            let _ = self.flush().await;
                            return format!("media: {e}");
                        }
                    }
                    DialogEvent::Ended(r) => {
                        let _ = self.flush().await;
                        if matches!(r, EndReason::Local) {
                            self.linger().await;
                        }
                        return reason_text(&r);
                    }
                    _ => {}
                }
            }
            self.send_infos();
            if let Err(e) = self.renegotiate_if_wanted().await {
                let _ = self.dialog.hangup();
                let _ = self.flush().await;
                return e;
            }
            if let Err(e) = flushed.and(self.flush().await) {
                return e;
            }
            let timer = [self.dialog.poll_timeout(), self.retry_at]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                c = self.commands.recv() => match c {
                    Some(Command::Sip(m)) => self.dialog.handle(&m, Instant::now()),
                    Some(Command::HangUp) | None => {
                        if self.dialog.hangup().is_err() {
                            return "local".into();
                        }
                    }
                    Some(Command::Answer(options)) => {
                        if let Err(e) = self.answer(options).await {
                            let _ = self.dialog.reject(488, "Not Acceptable Here");
                            let _ = self.flush().await;
                            return e;
                        }
                    }
                    Some(Command::MediaUp) => {
                        let state = if self.hold {
                            CallState::Hold
                        } else {
                            CallState::Current
                        };
                        self.ctx.state(&call, &self.peer, state, None);
                        self.media_event();
                        if self.records() && !self.told_recording {
                            self.told_recording = true;
                            self.infos.push_back((control::MEDIA_CONTROL, Control::Recording(true).to_body()));
                        }
                    }
                    Some(Command::AskKeyFrame) => {
                        let body = Control::KeyFrame { stream: None }.to_body();
                        let _ = self.dialog.info(control::MEDIA_CONTROL, body.as_bytes(), Instant::now());
                    }
                    Some(Command::MediaFailed(e)) => {
                        let _ = self.dialog.hangup();
                        let _ = self.flush().await;
                        return format!("media: {e}");
                    }
                    Some(Command::Hold(h)) => self.hold = h,
                    Some(Command::Mute(m)) => {
                        if self.muted.send_replace(m) != m {
                            // jamid tells its peer when it mutes; so do we.
                            self.infos.push_back((control::MEDIA_CONTROL, Control::Mute(m).to_body()));
                        }
                        self.media_event();
                    }
                    Some(Command::Dtmf(key)) => {
                        self.infos.push_back((control::DTMF_RELAY, control::dtmf_body(key, DTMF_DURATION_MS)));
                    }
                    Some(Command::Video(v)) => {
                        fresh_recording(v.as_ref());
                        self.options.video = v;
                    }
                },
                _ = async {
                    match timer {
                        Some(t) => tokio::time::sleep_until(t.into()).await,
                        None => std::future::pending().await,
                    }
                } => {
                    let now = Instant::now();
                    if self.retry_at.is_some_and(|t| now >= t) {
                        self.retry_at = None;
                    }
                    self.dialog.handle_timeout(now);
                }
            }
        }
    }

    /// After we ended the dialog (BYE, CANCEL, decline): wait a moment for the peer's
    /// answer, so that what we sent has reached it before the caller moves on (a program
    /// that exits right after a call would otherwise cut its own BYE).
    async fn linger(&mut self) {
        let deadline = tokio::time::Instant::now() + LINGER;
        while let Ok(Some(c)) = tokio::time::timeout_at(deadline, self.commands.recv()).await {
            // The answer to our BYE or CANCEL, or the ACK of our refusal.
            if let Command::Sip(m) = c {
                self.dialog.handle(&m, Instant::now());
                let _ = self.flush().await;
                return;
            }
        }
    }

    /// Answers an incoming call: our SDP by jamid's rules, then media (controlled side).
    async fn answer(&mut self, options: CallOptions) -> Result<(), String> {
        if self.dialog.state() != dialog::State::Incoming {
            return Ok(());
        }
        fresh_recording(options.video.as_ref());
        self.options = options;
        let offer = Sdp::parse(&String::from_utf8_lossy(self.dialog.remote_offer()))
            .map_err(|e| format!("media: unreadable offer: {e}"))?;
        let video = self.options.video.is_some();
        let session = self
            .ctx
            .media_session(Role::Controlled, offer.media.len().min(2))
            .await?;
        let (answer, negotiated) = negotiate::answer(
            &offer,
            &local(&self.ctx, &session, &first_sections(true), false, video),
            |i| rtp_port(&session, i),
            |i| candidate_lines(&session, i),
        )
        .map_err(|e| format!("media: {e}"))?;
        self.dialog
            .accept(answer.to_text().as_bytes(), Instant::now())
            .map_err(|e| e.to_string())?;
        self.flush().await?;
        self.agreed = self.wanted();
        self.media = Some(start_media(
            session,
            &negotiated,
            self.plan(&offer),
            self.me.clone(),
            None,
        )?);
        self.ctx.state(
            self.dialog.call_id(),
            &self.peer,
            CallState::Connecting,
            None,
        );
        Ok(())
    }

    /// Stops the media and reports the call's figures and its end.
    async fn finish(mut self, reason: String) {
        let call = self.dialog.call_id().to_owned();
        if let Some(m) = self.media.take() {
            let duration = m.started.elapsed().as_secs_f64();
            let _ = m.stop.send(true);
            if let Ok(Ok((report, video))) = m.task.await {
                if let Some(path) = &m.record_wav {
                    if let Err(e) = pamoja_media::audio::write_wav(path, &report.recorded) {
                        tracing::warn!("{}: {e}", path.display());
                    }
                }
                let s = &report.stats;
                let _ = self.ctx.events.send(Event::CallStats(CallStats {
                    call: CallId::trusted(call.clone()),
                    codec: m.codec,
                    tx_packets: s.tx_packets,
                    tx_bytes: s.tx_bytes,
                    rx_packets: s.rx_packets,
                    rx_bytes: s.rx_bytes,
                    rx_audio_frames_decoded: report.frames_decoded,
                    rx_audio_frames_concealed: report.frames_concealed,
                    rx_lost: s.rx_lost,
                    rx_jitter_ms: s.rx_jitter.as_millis() as u64,
                    rx_audio_longest_gap_ms: report.longest_gap.as_millis() as u64,
                    rx_srtp_dropped: s.srtp_in.auth_failed
                        + s.srtp_in.replayed
                        + s.srtp_in.truncated,
                    remote_received: s.remote_received,
                    rtt_ms: s.rtt.map(|r| r.as_millis() as u64),
                    duration_s: (duration * 10.0).round() / 10.0,
                    video: video.map(|v| VideoCallStats {
                        codec: m.video_codec.clone().unwrap_or_default(),
                        tx_packets: v.stats.tx_packets,
                        tx_frames: v.frames_sent,
                        tx_key_frames: v.key_frames_sent,
                        rx_packets: v.stats.rx_packets,
                        rx_lost: v.stats.rx_lost,
                        rx_frames_decoded: v.frames_decoded,
                        key_frame_requests_sent: v.key_frame_requests_sent,
                        key_frame_requests_received: v.key_frame_requests_received,
                        psnr_min: v.psnr_min.map(|p| (p * 10.0).round() / 10.0),
                        psnr_mean: v.psnr_mean.map(|p| (p * 10.0).round() / 10.0),
                        bitrate_min_kbps: v.bitrate_min / 1000,
                        bitrate_max_kbps: v.bitrate_max / 1000,
                        bitrate_last_kbps: v.bitrate_last / 1000,
                    }),
                }));
            }
        }
        self.ctx
            .state(&call, &self.peer, CallState::Ended, Some(reason));
    }
}

/// Places a call to `peer` on `channel` (`fresh`: the channel was opened for it). Returns
/// the call id and the sender that reaches the call's task; the task runs until the call
/// ends, then `done` is called with the call id.
pub(crate) async fn place(
    ctx: Context,
    peer: String,
    channel: ChannelSender,
    fresh: bool,
    options: CallOptions,
    done: impl FnOnce(&str) + Send + 'static,
) -> Result<(String, mpsc::UnboundedSender<Command>), String> {
    let sections = first_sections(options.video.is_some());
    let session = ctx.media_session(Role::Controlling, sections.len()).await?;
    let offer = negotiate::offer(
        &local(&ctx, &session, &sections, false, true),
        |i| rtp_port(&session, i),
        |i| candidate_lines(&session, i),
    );
    let dialog = Dialog::invite(
        ctx.endpoint(&peer),
        offer.to_text().as_bytes(),
        Instant::now(),
    );
    let call = dialog.call_id().to_owned();
    let (mut c, me) = Call::new(ctx, dialog, peer, channel, options);
    c.offer = Some((session, offer));
    let id = call.clone();
    tokio::spawn(async move {
        if fresh {
            tokio::time::sleep(FRESH_CHANNEL_PAUSE).await;
        }
        c.ctx.state(&id, &c.peer, CallState::Calling, None);
        let reason = c.run().await;
        done(&id);
        c.finish(reason).await;
    });
    Ok((call, me))
}

/// Takes an INVITE from `peer` (the account of the channel's certificate): the call's id and
/// sender, or `None` when the INVITE was refused (the refusal is sent). Rings, and answers
/// at once with `auto_answer`.
pub(crate) async fn incoming(
    ctx: Context,
    peer: String,
    channel: ChannelSender,
    invite: &SipMessage,
    auto_answer: Option<CallOptions>,
    done: impl FnOnce(&str) + Send + 'static,
) -> Option<(String, mpsc::UnboundedSender<Command>)> {
    let mut dialog = match Dialog::incoming(ctx.endpoint(&peer), invite, Instant::now()) {
        Ok(d) => d,
        Err(e) => {
            tracing::info!("INVITE refused: {e}");
            let _ = channel
                .send(&dialog::refusal(invite, 403, "Forbidden").to_bytes())
                .await;
            return None;
        }
    };
    let _ = dialog.ring();
    let call = dialog.call_id().to_owned();
    let (mut c, me) = Call::new(ctx, dialog, peer, channel, CallOptions::default());
    if let Some(options) = auto_answer {
        let _ = me.send(Command::Answer(options));
    }
    let id = call.clone();
    tokio::spawn(async move {
        c.ctx.state(&id, &c.peer, CallState::Incoming, None);
        let reason = c.run().await;
        done(&id);
        c.finish(reason).await;
    });
    Some((call, me))
}
