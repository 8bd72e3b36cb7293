//! The I/O edge of a call's media: the media ICE session described in SDP, and an audio
//! stream pumped over its components.
//!
//! The signalling (pamoja-media's dialog) and the negotiation (its `negotiate`) decide
//! what flows; this module moves it: it turns a [`MediaSession`]'s candidates into SDP
//! lines and the peer's SDP candidates back into an [`IceMessage`], and runs an Opus
//! stream over the RTP and RTCP components of a connected session: a frame every 20 ms from
//! an [`AudioSource`], the peer's frames through a jitter buffer and decoded (losses
//! concealed), reports both ways.

use std::time::{Duration, Instant, SystemTime};

use pamoja_ice::candidate::{Candidate, IceMessage};
use pamoja_ice::media::MediaSession;
use pamoja_ice::session::Connection;
use pamoja_media::audio::{AudioError, FRAME_SAMPLES, OpusDecoder, OpusEncoder, Tone};
use pamoja_media::jitter::{JitterBuffer, Playout};
use pamoja_media::negotiate::Negotiated;
use pamoja_media::stream::{MediaStream, StreamStats};

/// Our candidate lines for stream `index` (components `2 * index + 1` and `+ 2`, as jamid
/// numbers them), for the SDP.
pub fn candidate_lines(session: &MediaSession, index: usize) -> Vec<String> {
    let (rtp, rtcp) = (2 * index as u32 + 1, 2 * index as u32 + 2);
    session
        .local_description()
        .candidates
        .iter()
        .filter(|c| c.component == rtp || c.component == rtcp)
        .map(Candidate::to_string)
        .collect()
}

/// The port of our first RTP candidate of stream `index`, for its `m=` line.
pub fn rtp_port(session: &MediaSession, index: usize) -> u16 {
    let rtp = 2 * index as u32 + 1;
    session
        .local_description()
        .candidates
        .iter()
        .find(|c| c.component == rtp)
        .map_or(9, |c| c.addr.port())
}

/// The peer's ICE credentials and candidates of every enabled stream (components numbered
/// across streams), or `None` when its SDP had no session-level credentials.
pub fn remote_ice(negotiated: &Negotiated) -> Option<IceMessage> {
    let (ufrag, pwd) = negotiated.remote_ice.clone()?;
    let candidates = negotiated
        .streams
        .iter()
        .filter(|s| s.enabled)
        .flat_map(|s| s.remote_candidates.iter())
        .filter_map(|(component, line)| {
            let mut c = Candidate::parse(line)?;
            c.component = *component;
            Some(c)
        })
        .collect();
    Some(IceMessage {
        ufrag,
        pwd,
        candidates,
    })
}

/// Frames the audio jitter buffer holds before it plays (60 ms).
pub const JITTER_DEPTH: usize = 3;
/// Frames it holds at most (200 ms); the oldest go first.
pub const JITTER_MAX: usize = 10;

/// What a call sends as audio.
#[derive(Debug, Clone)]
pub enum AudioSource {
    /// A sine tone: frequency (Hz) and amplitude (0 to 1).
    Tone(f64, f64),
    /// Samples (mono, 48 kHz), played once, then silence.
    Samples(Vec<i16>),
    /// Silence.
    Silence,
}

impl AudioSource {
    fn frames(self) -> Box<dyn Iterator<Item = Vec<i16>> + Send> {
        match self {
            Self::Tone(hz, amp) => {
                let mut t = Tone::new(hz, amp);
                Box::new(std::iter::repeat_with(move || t.frame()))
            }
            Self::Samples(s) => {
                let chunks: Vec<Vec<i16>> = s
                    .chunks(FRAME_SAMPLES)
                    .map(|c| {
                        let mut v = c.to_vec();
                        v.resize(FRAME_SAMPLES, 0);
                        v
                    })
                    .collect();
                Box::new(
                    chunks
                        .into_iter()
                        .chain(std::iter::repeat_with(|| vec![0; FRAME_SAMPLES])),
                )
            }
            Self::Silence => Box::new(std::iter::repeat_with(|| vec![0; FRAME_SAMPLES])),
        }
    }
}

/// How an audio stream runs.
#[derive(Debug, Clone)]
pub struct AudioConfig {
    /// What to send.
    pub source: AudioSource,
    /// Keep what is heard in [`AudioReport::recorded`].
    pub record: bool,
    /// Opus bitrate in bit/s (48 kb/s by default, as jamid).
    pub bitrate: u32,
    /// Whether to send at all (not when the call is held).
    pub send: bool,
    /// While this says `true`, silence is sent instead of the source (mute is local, as
    /// jamid's: packets still flow).
    pub muted: Option<tokio::sync::watch::Receiver<bool>>,
}

impl AudioConfig {
    /// Sends `source` at 48 kb/s, records nothing.
    pub fn new(source: AudioSource) -> Self {
        Self {
            source,
            record: false,
            bitrate: 48_000,
            send: true,
            muted: None,
        }
    }
}

/// What an audio stream did.
#[derive(Debug, Clone, Default)]
pub struct AudioReport {
    /// The stream's figures (packets, bytes, loss, jitter, what the peer got).
    pub stats: StreamStats,
    /// Opus frames decoded from the peer's packets.
    pub frames_decoded: u64,
    /// Frames concealed for packets that never came.
    pub frames_concealed: u64,
    /// What was heard (mono, 48 kHz), when recording.
    pub recorded: Vec<i16>,
    /// The longest time between two of the peer's audio packets (after the first).
    pub longest_gap: std::time::Duration,
}

impl AudioReport {
    /// Adds what a later session of the same call's audio did (after a re-INVITE).
    pub fn absorb(&mut self, later: AudioReport) {
        self.stats.absorb(&later.stats);
        self.frames_decoded += later.frames_decoded;
        self.frames_concealed += later.frames_concealed;
        self.recorded.extend(later.recorded);
        self.longest_gap = self.longest_gap.max(later.longest_gap);
    }
}

/// Why an audio stream stopped early.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The codec failed.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// A component's session ended (consent lost).
    #[error("the media session ended")]
    Closed,
    /// The video codec failed.
    #[error("video: {0}")]
    Video(String),
}

/// Runs an Opus stream over its RTP and RTCP connections until `stop` resolves: a frame of
/// the configured source every 20 ms; the peer's packets through a jitter buffer
/// ([`JITTER_DEPTH`] frames deep), a frame played every 20 ms, decoded or, where a packet
/// never came in time, concealed (and kept when recording); a report about every second.
/// Returns what happened.
pub async fn run_audio(
    mut rtp: Connection,
    mut rtcp: Connection,
    mut stream: MediaStream,
    config: AudioConfig,
    stop: impl std::future::Future<Output = ()>,
) -> Result<AudioReport, MediaError> {
    let mut encoder = OpusEncoder::new()?;
    encoder.set_bitrate(config.bitrate)?;
    let mut decoder = OpusDecoder::new()?;
    let record = config.record;
    let mut frames = config.source.frames();
    let mut report = AudioReport::default();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut jitter = JitterBuffer::new(JITTER_DEPTH, JITTER_MAX);
    let mut last_ssrc: Option<u32> = None;
    let mut last_arrival: Option<Instant> = None;
    tokio::pin!(stop);
    loop {
        let rtcp_due = tokio::time::Instant::from_std(stream.poll_timeout());
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                if config.send {
                    let muted = config.muted.as_ref().is_some_and(|m| *m.borrow());
                    let frame = if muted {
                        vec![0; FRAME_SAMPLES]
                    } else {
                        frames.next().unwrap_or_else(|| vec![0; FRAME_SAMPLES])
                    };
                    let packet = encoder.encode(&frame)?;
                    if let Ok(p) = stream.send(&packet, FRAME_SAMPLES as u32, false, Instant::now()) {
                        rtp.send(&p).await.map_err(|_| MediaError::Closed)?;
                    }
                }
                // Playout: one frame a period from the jitter buffer, a missing one
                // concealed by the decoder.
                let pcm = match jitter.pop() {
                    Playout::Filling => continue,
                    Playout::Missing => {
                        report.frames_concealed += 1;
                        decoder.decode(None)?
                    }
                    Playout::Frame(_, payload) => match decoder.decode(Some(&payload)) {
                        Ok(pcm) => {
                            report.frames_decoded += 1;
                            pcm
                        }
                        // A packet libopus refuses is the peer's problem: skip it.
                        Err(_) => continue,
                    },
                };
                if record {
                    report.recorded.extend(pcm);
                }
            }
            _ = tokio::time::sleep_until(rtcp_due) => {
                let r = stream.rtcp(Instant::now(), SystemTime::now());
                rtcp.send(&r).await.map_err(|_| MediaError::Closed)?;
            }
            d = rtp.recv() => {
                let d = d.ok_or(MediaError::Closed)?;
                let now = Instant::now();
                let Some(f) = stream.receive(&d, now) else { continue };
                if f.payload_type == 101 {
                    continue; // telephone-event
                }
                if let Some(prev) = last_arrival {
                    report.longest_gap = report.longest_gap.max(now.duration_since(prev));
                }
                last_arrival = Some(now);
                // A new source starts its own numbering: what the old one left is played
                // out, and the new one gets a buffer of its own.
                if last_ssrc.is_some_and(|s| s != f.ssrc) {
                    play_out(&mut jitter, &mut decoder, &mut report, record);
                    jitter = JitterBuffer::new(JITTER_DEPTH, JITTER_MAX);
                }
                last_ssrc = Some(f.ssrc);
                jitter.push(f.sequence, f.timestamp, &f.payload);
            }
            d = rtcp.recv() => {
                let d = d.ok_or(MediaError::Closed)?;
                stream.receive_rtcp(&d, Instant::now());
                if let Some(loss) = stream.stats().remote_fraction_lost {
                    let _ = encoder.set_expected_loss((u32::from(loss) * 100 / 256) as u8);
                }
            }
        }
    }
    // The end of the stream: what is still buffered is played out.
    play_out(&mut jitter, &mut decoder, &mut report, record);
    report.stats = stream.stats();
    Ok(report)
}

/// Decodes every frame a jitter buffer still holds (a stream that ended or changed source).
fn play_out(
    jitter: &mut JitterBuffer,
    decoder: &mut OpusDecoder,
    report: &mut AudioReport,
    record: bool,
) {
    for (_, payload) in jitter.drain() {
        if let Ok(pcm) = decoder.decode(Some(&payload)) {
            report.frames_decoded += 1;
            if record {
                report.recorded.extend(pcm);
            }
        }
    }
}

/// How a video stream runs: a VP8 test pattern out, the peer's VP8 in.
#[derive(Debug, Clone)]
pub struct VideoConfig {
    /// Picture width (even).
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frames a second.
    pub fps: u32,
    /// Starting bitrate, bit/s; it then follows the peer's reports within
    /// [`pamoja_media::bitrate::MIN_BITRATE`] and [`pamoja_media::bitrate::MAX_BITRATE`].
    pub bitrate: u32,
    /// Compare each picture received with the test pattern it should be (a peer sending
    /// [`pamoja_media::video::test_pattern`] at the same rate) and report the PSNR.
    pub measure: bool,
    /// Send [`pamoja_media::video::busy_pattern`] instead: pictures that use every bit the
    /// encoder is allowed (to load a link); not measured.
    pub busy: bool,
    /// Send the pictures of this raw video file (YUV4MPEG2, 4:2:0) instead, over and over,
    /// at its own size and rate (its first [`MAX_FILE_FRAMES`] pictures).
    pub source_file: Option<std::path::PathBuf>,
    /// Write the pictures received to this raw video file (YUV4MPEG2), as they are
    /// decoded; pictures of another size than the first are left out.
    pub record_file: Option<std::path::PathBuf>,
}

/// Pictures of a video file that are sent, at most (about 35 MB at 320x240).
pub const MAX_FILE_FRAMES: usize = 300;

impl Default for VideoConfig {
    /// 320x240 at 15 frames a second, starting at 500 kb/s.
    fn default() -> Self {
        Self {
            width: 320,
            height: 240,
            fps: 15,
            bitrate: 500_000,
            measure: false,
            busy: false,
            source_file: None,
            record_file: None,
        }
    }
}

/// What a video stream did.
#[derive(Debug, Clone, Default)]
pub struct VideoReport {
    /// The stream's figures.
    pub stats: StreamStats,
    /// Pictures encoded and sent.
    pub frames_sent: u64,
    /// Key frames among them.
    pub key_frames_sent: u64,
    /// Pictures received whole and decoded.
    pub frames_decoded: u64,
    /// Key frames we asked the peer for (after a loss).
    pub key_frame_requests_sent: u64,
    /// Key frames the peer asked us for.
    pub key_frame_requests_received: u64,
    /// Lowest and mean PSNR (dB) of the pictures decoded, when measured.
    pub psnr_min: Option<f64>,
    /// Mean PSNR.
    pub psnr_mean: Option<f64>,
    /// Pictures the PSNR figures are over.
    pub psnr_samples: u64,
    /// The encoder's bitrate over the call: lowest, highest, last (bit/s).
    pub bitrate_min: u64,
    /// Highest.
    pub bitrate_max: u64,
    /// Last.
    pub bitrate_last: u64,
}

impl VideoReport {
    /// Adds what a later session of the same call's video did (after a re-INVITE).
    pub fn absorb(&mut self, later: VideoReport) {
        self.stats.absorb(&later.stats);
        self.frames_sent += later.frames_sent;
        self.key_frames_sent += later.key_frames_sent;
        self.frames_decoded += later.frames_decoded;
        self.key_frame_requests_sent += later.key_frame_requests_sent;
        self.key_frame_requests_received += later.key_frame_requests_received;
        self.psnr_min = match (self.psnr_min, later.psnr_min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let n = self.psnr_samples + later.psnr_samples;
        if n > 0 {
            let sum = self.psnr_mean.unwrap_or(0.0) * self.psnr_samples as f64
                + later.psnr_mean.unwrap_or(0.0) * later.psnr_samples as f64;
            self.psnr_mean = Some(sum / n as f64);
        }
        self.psnr_samples = n;
        self.bitrate_min = self.bitrate_min.min(later.bitrate_min);
        self.bitrate_max = self.bitrate_max.max(later.bitrate_max);
        self.bitrate_last = later.bitrate_last;
    }
}

/// Where received pictures are written, when asked: a YUV4MPEG2 file opened with the first
/// picture's size. A write that fails stops the recording (logged), not the call.
struct Recorder {
    path: Option<std::path::PathBuf>,
    fps: u32,
    out: Option<pamoja_media::y4m::Y4mWriter<std::io::BufWriter<std::fs::File>>>,
}

impl Recorder {
    fn new(path: Option<std::path::PathBuf>, fps: u32) -> Self {
        Self {
            path,
            fps,
            out: None,
        }
    }

    fn write(&mut self, picture: &pamoja_media::video::I420Frame) {
        use pamoja_media::y4m::Y4mHeader;
        if self.out.is_none() {
            let Some(path) = self.path.take() else { return };
            let header = Y4mHeader {
                width: picture.width,
                height: picture.height,
                rate: (self.fps, 1),
            };
            let opened = Self::open(&path, header);
            match opened {
                Ok(w) => self.out = Some(w),
                Err(e) => {
                    tracing::warn!("{}: {e}", path.display());
                    return;
                }
            }
        }
        if let Some(w) = &mut self.out {
            match w.write(picture) {
                Ok(()) => {}
                // Another size: left out.
                Err(pamoja_media::y4m::Y4mError::Format(_)) => {}
                Err(e) => {
                    tracing::warn!("video recording stopped: {e}");
                    self.out = None;
                }
            }
        }
    }

    /// Opens the file: a new one, or one an earlier session of the same call began (after
    /// a re-INVITE), which goes on at its own picture size.
    fn open(
        path: &std::path::Path,
        header: pamoja_media::y4m::Y4mHeader,
    ) -> Result<
        pamoja_media::y4m::Y4mWriter<std::io::BufWriter<std::fs::File>>,
        pamoja_media::y4m::Y4mError,
    > {
        use pamoja_media::y4m::{Y4mReader, Y4mWriter};
        let existing = std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
        if existing {
            let f = std::fs::File::open(path)?;
            let earlier = Y4mReader::new(std::io::BufReader::new(f))?.header();
            let f = std::fs::OpenOptions::new().append(true).open(path)?;
            return Ok(Y4mWriter::resume(std::io::BufWriter::new(f), earlier));
        }
        Y4mWriter::new(
            std::io::BufWriter::new(std::fs::File::create(path)?),
            header,
        )
    }

    fn finish(self) {
        if let Some(w) = self.out {
            if let Err(e) = w.finish() {
                tracing::warn!("video recording: {e}");
            }
        }
    }
}

/// Video packets waiting for the pacer, at most (about a second at 6 Mb/s).
const MAX_PACED: usize = 600;

/// Runs a VP8 stream over its RTP and RTCP connections until `stop`: the test pattern at
/// the configured rate (a key frame first, and whenever `key_frame_asked` says the peer
/// asked for one), the peer's pictures put together, decoded and, when measuring, compared
/// with the pattern; a lost picture makes the stream ask the peer for a key frame through
/// `ask_key_frame` (at most once a second); the encoder's bitrate follows the peer's
/// receiver reports and REMB signals (jamid's rules, [`BitrateController`](pamoja_media::bitrate::BitrateController)) and the round
/// trips its reports give (a growing queue on the way brings it down). With `send`
/// false (held, or the peer takes no video) nothing is encoded; what comes is still taken.
#[allow(clippy::too_many_arguments)]
pub async fn run_video(
    mut rtp: Connection,
    mut rtcp: Connection,
    mut stream: MediaStream,
    config: VideoConfig,
    send: bool,
    mut key_frame_asked: tokio::sync::mpsc::UnboundedReceiver<()>,
    ask_key_frame: tokio::sync::mpsc::UnboundedSender<()>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<VideoReport, MediaError> {
    use pamoja_media::bitrate::BitrateController;
    use pamoja_media::video::{Vp8Decoder, Vp8Encoder, busy_pattern, psnr, test_pattern};
    use pamoja_media::vp8::{Depacketized, Depacketizer, Packetizer};

    let video = |e: pamoja_media::video::VideoError| MediaError::Video(e.to_string());
    let file = match config.source_file.clone() {
        Some(path) => {
            let read = tokio::task::spawn_blocking(move || {
                pamoja_media::y4m::read_file(&path, MAX_FILE_FRAMES)
                    .map_err(|e| MediaError::Video(format!("{}: {e}", path.display())))
            });
            Some(read.await.map_err(|e| MediaError::Video(e.to_string()))??)
        }
        None => None,
    };
    let (width, height, fps) = match &file {
        Some((h, _)) => (h.width, h.height, h.fps().clamp(1, 60)),
        None => (config.width, config.height, config.fps.clamp(1, 60)),
    };
    let step = 90_000 / fps;
    let mut recorder = Recorder::new(config.record_file.clone(), fps);
    let mut encoder = Vp8Encoder::new(width, height, config.bitrate, fps).map_err(video)?;
    let mut decoder = Vp8Decoder::new().map_err(video)?;
    let mut controller = BitrateController::new(u64::from(config.bitrate));
    // jamid's MTU rule: 1232 - SRTP tag - UDP - IPv4 headers.
    let mut packetizer = Packetizer::new(1194);
    let mut depacketizer = Depacketizer::new(4 << 20);
    let mut report = VideoReport {
        bitrate_min: controller.bitrate(),
        bitrate_max: controller.bitrate(),
        ..VideoReport::default()
    };
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1) / fps);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut frame_no = 0u32;
    let mut key_wanted = true;
    let mut asks = pamoja_media::pacer::KeyFrameRequests::default();
    let mut first_ts: Option<u32> = None;
    let (mut psnr_sum, mut psnr_n) = (0f64, 0u64);
    let mut reports_seen = 0u64;
    let mut asked_open = true;
    // Each picture's packets leave at 1.25 times the target bitrate, so a big picture does
    // not arrive as one burst ahead of the audio on a narrow link; a sender far behind its
    // link drops what is oldest rather than queue it.
    let mut pacer = pamoja_media::pacer::Pacer::new(MAX_PACED);
    let mut next_pace: Option<Instant> = None;
    tokio::pin!(stop);
    loop {
        let rtcp_due = tokio::time::Instant::from_std(stream.poll_timeout());
        // Packets just queued go at once; then at the pacer's steps.
        let pace_due = next_pace
            .filter(|_| !pacer.is_empty())
            .unwrap_or_else(Instant::now);
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick(), if send => {
                let picture = match &file {
                    Some((_, frames)) => frames[frame_no as usize % frames.len()].clone(),
                    None if config.busy => busy_pattern(width, height, frame_no),
                    None => test_pattern(width, height, frame_no),
                };
                frame_no += 1;
                let frames = encoder.encode(&picture, key_wanted).map_err(video)?;
                key_wanted = false;
                for f in frames {
                    report.frames_sent += 1;
                    report.key_frames_sent += u64::from(f.key);
                    let packets = packetizer.packetize(&f.data);
                    let last = packets.len().saturating_sub(1);
                    for (i, p) in packets.iter().enumerate() {
                        let (duration, marker) = if i == last { (step, true) } else { (0, false) };
                        if let Ok(sp) = stream.send(p, duration, marker, Instant::now()) {
                            pacer.push(sp);
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(pace_due.into()), if !pacer.is_empty() => {
                let now = Instant::now();
                while let Some(p) = pacer.poll_transmit(now, controller.bitrate()) {
                    rtp.send(&p).await.map_err(|_| MediaError::Closed)?;
                }
                next_pace = pacer.poll_timeout(now);
            }
            Some(()) = key_frame_asked.recv(), if asked_open => {
                report.key_frame_requests_received += 1;
                key_wanted = true;
            }
            _ = tokio::time::sleep_until(rtcp_due) => {
                let r = stream.rtcp(Instant::now(), SystemTime::now());
                rtcp.send(&r).await.map_err(|_| MediaError::Closed)?;
            }
            d = rtp.recv() => {
                let d = d.ok_or(MediaError::Closed)?;
                let now = Instant::now();
                let Some(f) = stream.receive(&d, now) else { continue };
                match depacketizer.push(f.sequence, f.timestamp, f.marker, &f.payload) {
                    Depacketized::Pending => {}
                    Depacketized::Lost => {
                        if asks.on_loss(now) {
                            report.key_frame_requests_sent += 1;
                            let _ = ask_key_frame.send(());
                        }
                    }
                    Depacketized::Frame { data, timestamp, .. } => {
                        // libvpx decodes on the blocking pool, not on a reactor thread.
                        let Ok((d, decoded)) = tokio::task::spawn_blocking(move || {
                            let r = decoder.decode(&data);
                            (decoder, r)
                        })
                        .await
                        else {
                            return Ok(report);
                        };
                        decoder = d;
                        let Ok(Some(picture)) = decoded else { continue };
                        report.frames_decoded += 1;
                        recorder.write(&picture);
                        // Only pictures of the agreed size are measured: a peer's odd size
                        // must not make us draw a pattern as big as it likes.
                        if config.measure
                            && !config.busy
                            && (picture.width, picture.height) == (config.width, config.height)
                        {
                            let t0 = *first_ts.get_or_insert(timestamp);
                            let n = timestamp.wrapping_sub(t0) / step;
                            let p = psnr(&test_pattern(picture.width, picture.height, n), &picture);
                            let p = p.min(99.0);
                            psnr_sum += p;
                            psnr_n += 1;
                            report.psnr_min = Some(report.psnr_min.map_or(p, |m: f64| m.min(p)));
                        }
                    }
                }
            }
            d = rtcp.recv() => {
                let d = d.ok_or(MediaError::Closed)?;
                let now = Instant::now();
                let parts = stream.receive_rtcp(&d, now);
                let s = stream.stats();
                let mut changed = false;
                if s.remote_reports > reports_seen {
                    reports_seen = s.remote_reports;
                    let jitter = std::time::Duration::from_secs_f64(
                        f64::from(s.remote_jitter.unwrap_or(0)) / 90_000.0,
                    );
                    changed |= controller.on_report(s.remote_fraction_lost.unwrap_or(0), jitter, now);
                    if let Some(rtt) = s.rtt {
                        changed |= controller.on_rtt(rtt, now);
                    }
                }
                for p in parts {
                    if let pamoja_media::rtcp::Rtcp::Remb { bitrate, .. } = p {
                        changed |= controller.on_remb(bitrate, now);
                    }
                }
                if changed {
                    let b = controller.bitrate();
                    encoder.set_bitrate(b as u32).map_err(video)?;
                    report.bitrate_min = report.bitrate_min.min(b);
                    report.bitrate_max = report.bitrate_max.max(b);
                }
            }
        }
        if key_frame_asked.is_closed() && key_frame_asked.is_empty() {
            asked_open = false;
        }
    }
    recorder.finish();
    report.bitrate_last = controller.bitrate();
    report.psnr_mean = (psnr_n > 0).then(|| psnr_sum / psnr_n as f64);
    report.psnr_samples = psnr_n;
    report.stats = stream.stats();
    Ok(report)
}
