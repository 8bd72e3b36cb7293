//! `jami call`: places one call, prints its events as JSON lines, hangs up after
//! `--duration` seconds of media, and prints the call's figures last.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use pamoja::client::media::{AudioSource, VideoConfig};
use pamoja::client::{CallOptions, CallState, Event};
use serde_json::{Value as Json, json};

use crate::link::Online;

/// `jami call` options.
#[derive(Args)]
pub struct CallArgs {
    #[command(flatten)]
    online: Online,
    /// The Jami ID to call.
    #[arg(long)]
    to: String,
    /// Video too: a VP8 test pattern (320x240, 15 frames a second) each way.
    #[arg(long)]
    video: bool,
    /// Send this WAV file (48 kHz, 16-bit) instead of a 440 Hz tone.
    #[arg(long = "send-wav")]
    send_wav: Option<PathBuf>,
    /// Write what is heard to this WAV file (mono, 48 kHz).
    #[arg(long = "record-wav")]
    record_wav: Option<PathBuf>,
    /// Send the pictures of this raw video file (YUV4MPEG2, 4:2:0; looped) instead of the
    /// test pattern. Implies --video.
    #[arg(long = "send-video")]
    send_video: Option<PathBuf>,
    /// Write the pictures received to this raw video file (YUV4MPEG2). Implies --video.
    #[arg(long = "record-video")]
    record_video: Option<PathBuf>,
    /// Seconds of media before hanging up.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Keep the account's data here (default: a temporary directory).
    #[arg(long)]
    data: Option<PathBuf>,
}

/// Runs `jami call`.
pub fn call_cmd(args: CallArgs) -> Result<Json> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(call(args))
}

async fn call(args: CallArgs) -> Result<Json> {
    if !(args.duration > 0.0 && args.duration < 86_400.0) {
        bail!("--duration must be between 0 and 86400 seconds");
    }
    let source = match &args.send_wav {
        Some(p) => AudioSource::Samples(
            pamoja::media::audio::read_wav(p)
                .with_context(|| format!("cannot read {}", p.display()))?,
        ),
        None => AudioSource::Tone(440.0, 0.3),
    };
    if let Some(p) = &args.send_video {
        // Refused now, with its reason, rather than when the call's video starts.
        pamoja::media::y4m::read_file(p, 1)
            .with_context(|| format!("cannot read {}", p.display()))?;
    }
    let video = args.video || args.send_video.is_some() || args.record_video.is_some();
    let options = CallOptions {
        source,
        record_wav: args.record_wav.clone(),
        video: video.then(|| VideoConfig {
            measure: args.send_video.is_none(),
            source_file: args.send_video.clone(),
            record_file: args.record_video.clone(),
            ..VideoConfig::default()
        }),
        ..CallOptions::default()
    };
    let tmp = tempfile::tempdir()?;
    let data = args.data.clone().unwrap_or_else(|| tmp.path().to_owned());
    let o = &args.online;
    let (client, mut events) =
        crate::client::start(&o.archive, &o.bootstrap, o.ice_addr, &data).await?;
    let to: pamoja::client::JamiId = args.to.parse().map_err(|e| anyhow!("--to: {e}"))?;
    let call = client.place_call(&to, options).await?;
    println!(
        "{}",
        json!({"event": "call_placed", "call": call.to_string(), "to": args.to, "video": args.video})
    );
    let mut hang_up_at: Option<tokio::time::Instant> = None;
    let mut reached_current = false;
    let mut stats: Option<Json> = None;
    loop {
        let hang_up = async {
            match hang_up_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            e = events.next() => {
                let e = e.ok_or_else(|| anyhow!("the account stopped"))?;
                match &e {
                    Event::CallState { call: c, state, reason, .. } if *c == call => {
                        println!("{}", crate::json::event(&e));
                        match *state {
                            CallState::Current => {
                                reached_current = true;
                                hang_up_at = Some(
                                    tokio::time::Instant::now()
                                        + Duration::from_secs_f64(args.duration),
                                );
                            }
                            CallState::Ended => {
                                if !reached_current {
                                    bail!(
                                        "the call ended before its media flowed: {}",
                                        reason.as_deref().unwrap_or("?")
                                    );
                                }
                                return Ok(stats.unwrap_or(Json::Null));
                            }
                            _ => {}
                        }
                    }
                    Event::CallStats(s) if s.call == call => stats = Some(crate::json::event(&e)),
                    _ => {}
                }
            }
            _ = hang_up => {
                hang_up_at = None;
                client.hang_up(&call).await?;
            }
            _ = tokio::signal::ctrl_c() => client.hang_up(&call).await?,
        }
    }
}
