//! The I/O edge of a call's media: the media ICE session described in SDP, and an audio
//! stream pumped over its components.
//!
//! The signalling (pamoja-media's dialog) and the negotiation (its `negotiate`) decide
//! what flows; this module moves it: it turns a [`MediaSession`]'s candidates into SDP
//! lines and the peer's SDP candidates back into an [`IceMessage`], and runs an Opus
//! stream over the RTP and RTCP components of a connected session: a frame every 20 ms from
//! an [`AudioSource`], the peer's frames decoded (losses concealed), reports both ways.

use std::time::{Duration, Instant, SystemTime};

use pamoja_ice::candidate::{Candidate, IceMessage};
use pamoja_ice::media::MediaSession;
use pamoja_ice::session::Connection;
use pamoja_media::audio::{AudioError, FRAME_SAMPLES, OpusDecoder, OpusEncoder, Tone};
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
}

impl AudioConfig {
    /// Sends `source` at 48 kb/s, records nothing.
    pub fn new(source: AudioSource) -> Self {
        Self {
            source,
            record: false,
            bitrate: 48_000,
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
}

/// Runs an Opus stream over its RTP and RTCP connections until `stop` resolves: a frame of
/// the configured source every 20 ms, the peer's frames decoded (and kept when recording),
/// a report about every second. Returns what happened.
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
    let mut last_seq: Option<u16> = None;
    let mut last_ssrc: Option<u32> = None;
    tokio::pin!(stop);
    loop {
        let rtcp_due = tokio::time::Instant::from_std(stream.poll_timeout());
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                let frame = frames.next().unwrap_or_else(|| vec![0; FRAME_SAMPLES]);
                let packet = encoder.encode(&frame)?;
                if let Ok(p) = stream.send(&packet, FRAME_SAMPLES as u32, false, Instant::now()) {
                    rtp.send(&p).await.map_err(|_| MediaError::Closed)?;
                }
            }
            _ = tokio::time::sleep_until(rtcp_due) => {
                let r = stream.rtcp(Instant::now(), SystemTime::now());
                rtcp.send(&r).await.map_err(|_| MediaError::Closed)?;
            }
            d = rtp.recv() => {
                let d = d.ok_or(MediaError::Closed)?;
                let Some(f) = stream.receive(&d, Instant::now()) else { continue };
                if f.payload_type == 101 {
                    continue; // telephone-event
                }
                // Conceal what a forward jump of the sequence says was lost (up to 5 frames);
                // a new source starts its own numbering.
                if let Some(prev) = last_seq.filter(|_| last_ssrc == Some(f.ssrc)) {
                    let gap = f.sequence.wrapping_sub(prev);
                    if gap > 0x8000 {
                        continue; // late: its place was concealed already
                    }
                    for _ in 1..gap.min(6) {
                        let pcm = decoder.decode(None)?;
                        report.frames_concealed += 1;
                        if record {
                            report.recorded.extend(pcm);
                        }
                    }
                }
                last_seq = Some(f.sequence);
                last_ssrc = Some(f.ssrc);
                match decoder.decode(Some(&f.payload)) {
                    Ok(pcm) => {
                        report.frames_decoded += 1;
                        if record {
                            report.recorded.extend(pcm);
                        }
                    }
                    // A packet libopus refuses is the peer's problem: skip it.
                    Err(_) => continue,
                }
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
    report.stats = stream.stats();
    Ok(report)
}
