//! The media side of calls, for the shell: a media session gathered for an offer or an
//! answer, the streams of an offer and answer started on it (ICE, then Opus and VP8 in tasks
//! of their own), stopped, and their figures.
//!
//! The call itself (its SIP dialog, hold, mute, video wanted and agreed, re-INVITEs,
//! INFOs) is [`crate::core::calls`]: this module only runs what the core asks.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pamoja_ice::agent::Role;
use pamoja_ice::media::MediaSession;
use pamoja_ice::session::Options;
use pamoja_media::negotiate::{self, Negotiated};
use pamoja_media::stream::{MediaStream, StreamConfig};
use tokio::sync::{mpsc, watch};

use crate::core::calls::{LocalMedia, MediaNews};
use crate::event::{CallStats, VideoCallStats};
use crate::id::CallId;
use crate::media::{
    AudioConfig, AudioReport, AudioSource, MediaError, VideoConfig, VideoReport, candidate_lines,
    remote_ice, rtp_port, run_audio, run_video,
};

pub use crate::core::calls::{DTMF_KEYS, FRESH_CHANNEL_PAUSE, LINGER, VP8_PT};

/// How long media ICE may take (jamid's own limit is 35 s).
pub const MEDIA_TIMEOUT: Duration = Duration::from_secs(35);

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

/// A video recording starts empty when video is configured; the media sessions of the
/// call (one per offer and answer) then add to it.
pub(crate) fn fresh_recording(video: Option<&VideoConfig>) {
    if let Some(path) = video.and_then(|v| v.record_file.as_ref()) {
        let _ = std::fs::remove_file(path);
    }
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

/// Gathers a media session (`components` UDP components on `ice_addr`) and what it offers.
pub(crate) async fn gather(
    ice_addr: IpAddr,
    components: u32,
    controlling: bool,
) -> Result<(MediaSession, LocalMedia), String> {
    let role = if controlling {
        Role::Controlling
    } else {
        Role::Controlled
    };
    let opts = Options::udp(vec![SocketAddr::new(ice_addr, 0)]);
    let session = MediaSession::gather(role, opts, components.max(2))
        .await
        .map_err(|e| format!("media: {e}"))?;
    let d = session.local_description();
    let sections = (components.max(2) / 2) as usize;
    let local = LocalMedia {
        ufrag: d.ufrag.clone(),
        pwd: d.pwd.clone(),
        ports: (0..sections).map(|i| rtp_port(&session, i)).collect(),
        candidates: (0..sections)
            .map(|i| candidate_lines(&session, i))
            .collect(),
    };
    Ok((session, local))
}

/// Whether a call with these options writes what it receives (the peer is told).
pub(crate) fn records(options: &CallOptions) -> bool {
    options.record_wav.is_some()
        || options
            .video
            .as_ref()
            .is_some_and(|v| v.record_file.is_some())
}

/// A call's media, once started: the task and how to stop it.
pub(crate) struct Media {
    task: tokio::task::JoinHandle<MediaResult>,
    stop: watch::Sender<bool>,
    /// Key frames the peer asks for, for the video stream.
    pub(crate) key_frames: Option<mpsc::UnboundedSender<()>>,
    started: Instant,
    codec: String,
    video_codec: Option<String>,
    record_wav: Option<PathBuf>,
}

/// What a call's media task gives back: the audio's figures, and the video's if it ran.
type MediaResult = Result<(AudioReport, Option<VideoReport>), MediaError>;

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

/// Starts the media of `negotiated` on `session`: ICE, then audio (and video when
/// `video`); reports to `news` when ICE is up or failed, and when the video stream wants a
/// key frame. The `previous` media, if any, run until the new ICE session is up; their
/// figures are then added to the new ones'.
#[allow(clippy::too_many_arguments)]
pub(crate) fn start(
    mut session: MediaSession,
    negotiated: &Negotiated,
    options: &CallOptions,
    hold: bool,
    video: bool,
    muted: watch::Receiver<bool>,
    news: mpsc::UnboundedSender<MediaNews>,
    previous: Option<Media>,
) -> Result<Media, String> {
    let remote = remote_ice(negotiated).ok_or("no ICE credentials in the peer's SDP")?;
    let audio = negotiated
        .streams
        .iter()
        .find(|s| s.enabled && s.kind == "audio")
        .ok_or("no audio stream")?;
    let (audio_config, codec) = stream_config(audio)?;
    let video_stream = negotiated
        .streams
        .iter()
        .find(|s| s.enabled && s.kind == "video")
        .filter(|_| video && options.video.is_some());
    let video_setup = match video_stream {
        Some(v) => {
            let (c, name) = stream_config(v)?;
            Some((v.index, c, name, v.direction.sends() && !hold))
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
        send: audio.direction.sends() && !hold,
        muted: Some(muted),
    };
    let video_config = options.video.clone().unwrap_or_default();
    let (key_tx, key_rx) = mpsc::unbounded_channel::<()>();
    let (ask_tx, mut ask_rx) = mpsc::unbounded_channel::<()>();
    let video_codec = video_setup.as_ref().map(|v| v.2.clone());
    let has_video = video_setup.is_some();
    let forward = news.clone();
    tokio::spawn(async move {
        while ask_rx.recv().await.is_some() {
            if forward.send(MediaNews::AskKeyFrame).is_err() {
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
                let _ = news.send(MediaNews::Failed(format!("ICE: {e}")));
                return Err(MediaError::Closed);
            }
            Err(_) => {
                let _ = news.send(MediaNews::Failed("ICE timed out".into()));
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
        let _ = news.send(MediaNews::Up);
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
    })
}

/// Stops a call's media; their figures (the recording written when asked).
pub(crate) async fn stop(call: &CallId, m: Media) -> Option<CallStats> {
    let duration = m.started.elapsed().as_secs_f64();
    let _ = m.stop.send(true);
    let Ok(Ok((report, video))) = m.task.await else {
        return None;
    };
    if let Some(path) = &m.record_wav {
        if let Err(e) = pamoja_media::audio::write_wav(path, &report.recorded) {
            tracing::warn!("{}: {e}", path.display());
        }
    }
    let s = &report.stats;
    Some(CallStats {
        call: call.clone(),
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
        rx_srtp_dropped: s.srtp_in.auth_failed + s.srtp_in.replayed + s.srtp_in.truncated,
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
    })
}
