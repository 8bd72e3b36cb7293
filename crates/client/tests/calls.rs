//! Two Pamoja accounts on a loopback DHT call each other: a 440 Hz tone sent through a call is
//! recorded at the other end at its frequency and level, both sides report the call's
//! figures, and a declined call ends on both sides.

use std::net::SocketAddr;
use std::time::Duration;

use pamoja_client::media::{AudioSource, VideoConfig};
use pamoja_client::{
    CallId, CallOptions, CallStats, Client, ClientError, Config, Event, Events, JamiId, Settings,
};
use pamoja_dht::{Config as DhtConfig, Runner};
use pamoja_identity::Account;
use pamoja_media::audio::{analyse_windows, longest_gap_ms, read_wav};

async fn start(dir: &std::path::Path, boot: SocketAddr) -> (Client, Events) {
    Client::start(
        Account::create(|_| {}).unwrap(),
        Config {
            data_dir: dir.to_owned(),
            bootstrap: vec![boot],
            ice_addr: "127.0.0.1".parse().unwrap(),
        },
    )
    .await
    .unwrap()
}

/// The first event `pick` accepts, within `secs`.
async fn wait_for<T>(ev: &mut Events, secs: u64, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let e = tokio::time::timeout_at(deadline, ev.next())
            .await
            .expect("timed out waiting for an event")
            .expect("events ended");
        if matches!(e, Event::CallState { .. } | Event::CallStats(_)) {
            eprintln!("event: {e:?}");
        }
        if let Some(t) = pick(&e) {
            return t;
        }
    }
}

fn state_of<'a>(e: &'a Event, want: &str) -> Option<(&'a CallId, Option<&'a str>)> {
    match e {
        Event::CallState {
            call,
            state,
            reason,
            ..
        } if state.as_str() == want => Some((call, reason.as_deref())),
        _ => None,
    }
}

fn stats_of(e: &Event) -> Option<CallStats> {
    match e {
        Event::CallStats(s) => Some(s.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tone_crosses_a_call() {
    let boot = Runner::bind("127.0.0.1:0".parse().unwrap(), DhtConfig::default())
        .await
        .unwrap();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, mut a_ev) = start(a_dir.path(), boot.local_addr()).await;
    let (b, mut b_ev) = start(b_dir.path(), boot.local_addr()).await;
    let heard = b_dir.path().join("heard.wav");
    b.set_settings(Settings {
        auto_answer: true,
        ..Settings::default()
    })
    .await
    .unwrap();
    b.set_call_options(CallOptions {
        source: AudioSource::Tone(660.0, 0.2),
        record_wav: Some(heard.clone()),
        ..CallOptions::default()
    });
    let call = a
        .place_call(
            &b.jami_id(),
            CallOptions {
                source: AudioSource::Tone(440.0, 0.3),
                ..CallOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(a.calls(), vec![call.clone()]);
    wait_for(&mut a_ev, 60, |e| state_of(e, "current").map(|_| ())).await;
    let b_call = wait_for(&mut b_ev, 30, |e| {
        state_of(e, "current").map(|(c, _)| c.to_owned())
    })
    .await;
    assert_eq!(b_call, call, "one Call-ID on both sides");
    tokio::time::sleep(Duration::from_secs(5)).await;
    a.hang_up(&call).await.unwrap();
    let a_stats = wait_for(&mut a_ev, 30, stats_of).await;
    let (_, reason) = wait_for(&mut a_ev, 30, |e| {
        state_of(e, "ended").map(|(c, r)| (c.to_owned(), r.map(str::to_owned)))
    })
    .await;
    assert_eq!(reason.as_deref(), Some("local"));
    let b_stats = wait_for(&mut b_ev, 30, stats_of).await;
    let (_, reason) = wait_for(&mut b_ev, 30, |e| {
        state_of(e, "ended").map(|(c, r)| (c.to_owned(), r.map(str::to_owned)))
    })
    .await;
    assert_eq!(reason.as_deref(), Some("hung_up"));
    assert!(a.calls().is_empty() && b.calls().is_empty());

    // About 50 packets a second each way, all authenticated, the peer's reports agreeing.
    for s in [&a_stats, &b_stats] {
        assert_eq!(s.codec, "opus/48000/2");
        assert!(s.tx_packets >= 200, "{s:?}");
        assert!(s.rx_audio_frames_decoded >= 200, "{s:?}");
        assert_eq!(s.rx_srtp_dropped, 0, "{s:?}");
        let remote = s.remote_received.expect("a receiver report");
        assert!(remote >= 150 && remote <= s.tx_packets, "{s:?}");
    }
    // B heard A's tone at 440 Hz and at the level it was sent (0.3 peak: 0.212 RMS).
    let samples = read_wav(&heard).unwrap();
    assert!(samples.len() >= 48_000 * 4, "{} samples", samples.len());
    let middle = &samples[48_000..samples.len() - 24_000];
    let (hz, level) = analyse_windows(middle);
    assert!((hz - 440.0).abs() <= 5.0, "{hz} Hz");
    assert!((level - 0.212).abs() <= 0.03, "level {level}");
    let gap = longest_gap_ms(middle, 300);
    assert!(gap < 200.0, "a gap of {gap} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_call_ends_on_both_sides() {
    let boot = Runner::bind("127.0.0.1:0".parse().unwrap(), DhtConfig::default())
        .await
        .unwrap();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, mut a_ev) = start(a_dir.path(), boot.local_addr()).await;
    let (b, mut b_ev) = start(b_dir.path(), boot.local_addr()).await;
    let call = a
        .place_call(&b.jami_id(), CallOptions::default())
        .await
        .unwrap();
    wait_for(&mut a_ev, 60, |e| state_of(e, "ringing").map(|_| ())).await;
    let incoming = wait_for(&mut b_ev, 30, |e| {
        state_of(e, "incoming").map(|(c, _)| c.to_owned())
    })
    .await;
    assert_eq!(incoming, call);
    b.hang_up(&incoming).await.unwrap();
    let (_, reason) = wait_for(&mut a_ev, 30, |e| {
        state_of(e, "ended").map(|(c, r)| (c.to_owned(), r.map(str::to_owned)))
    })
    .await;
    assert_eq!(reason.as_deref(), Some("declined"));
    let (_, reason) = wait_for(&mut b_ev, 30, |e| {
        state_of(e, "ended").map(|(c, r)| (c.to_owned(), r.map(str::to_owned)))
    })
    .await;
    assert_eq!(reason.as_deref(), Some("local"));
    // Unknown calls and bad ids are errors, not panics.
    assert!(a.hang_up(&"no-such-call".parse().unwrap()).await.is_err());
    assert!("not-an-id".parse::<JamiId>().is_err());
    // An account with no device on the DHT cannot be reached.
    let nobody: JamiId = "00000000000000000000000000000000000000aa".parse().unwrap();
    assert!(matches!(
        a.place_call(&nobody, CallOptions::default()).await,
        Err(ClientError::Unreachable { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_call_carries_a_test_pattern_and_audio() {
    let boot = Runner::bind("127.0.0.1:0".parse().unwrap(), DhtConfig::default())
        .await
        .unwrap();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, mut a_ev) = start(a_dir.path(), boot.local_addr()).await;
    let (b, mut b_ev) = start(b_dir.path(), boot.local_addr()).await;
    let video = VideoConfig {
        measure: true,
        ..VideoConfig::default()
    };
    b.set_settings(Settings {
        auto_answer: true,
        ..Settings::default()
    })
    .await
    .unwrap();
    b.set_call_options(CallOptions {
        source: AudioSource::Tone(660.0, 0.2),
        video: Some(video.clone()),
        ..CallOptions::default()
    });
    let call = a
        .place_call(
            &b.jami_id(),
            CallOptions {
                source: AudioSource::Tone(440.0, 0.3),
                video: Some(video),
                ..CallOptions::default()
            },
        )
        .await
        .unwrap();
    wait_for(&mut a_ev, 60, |e| state_of(e, "current").map(|_| ())).await;
    wait_for(&mut b_ev, 30, |e| state_of(e, "current").map(|_| ())).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    a.hang_up(&call).await.unwrap();
    let a_stats = wait_for(&mut a_ev, 30, stats_of).await;
    let b_stats = wait_for(&mut b_ev, 30, stats_of).await;
    for s in [&a_stats, &b_stats] {
        eprintln!("{s:?}");
        // About 4 s of media after ICE: 50 frames a second, less the jitter buffer's.
        assert!(
            s.rx_audio_frames_decoded >= 150 && s.rx_audio_longest_gap_ms < 500,
            "audio kept flowing: {s:?}"
        );
        let v = s.video.as_ref().expect("video flowed");
        assert_eq!(v.codec, "VP8/90000");
        // 15 pictures a second for about 5 s.
        assert!(v.tx_frames >= 60 && v.rx_frames_decoded >= 60, "{v:?}");
        assert!(v.tx_key_frames >= 1, "{v:?}");
        let psnr = v.psnr_min.expect("measured");
        assert!(psnr >= 30.0, "PSNR {psnr} dB: {v:?}");
        assert!(
            (200..=6000).contains(&v.bitrate_min_kbps)
                && (200..=6000).contains(&v.bitrate_max_kbps),
            "{v:?}"
        );
    }
}

/// A `call_media` event's (hold, peer_hold, muted, video).
fn media_of(e: &Event) -> Option<(bool, bool, bool, bool)> {
    match e {
        Event::CallMedia {
            hold,
            peer_hold,
            muted,
            video,
            ..
        } => Some((*hold, *peer_hold, *muted, *video)),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_hold_and_video_through_re_invites() {
    let boot = Runner::bind("127.0.0.1:0".parse().unwrap(), DhtConfig::default())
        .await
        .unwrap();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, mut a_ev) = start(a_dir.path(), boot.local_addr()).await;
    let (b, mut b_ev) = start(b_dir.path(), boot.local_addr()).await;
    let heard = b_dir.path().join("heard.wav");
    let video = VideoConfig {
        measure: true,
        ..VideoConfig::default()
    };
    b.set_settings(Settings {
        auto_answer: true,
        ..Settings::default()
    })
    .await
    .unwrap();
    // B takes video when offered; A's first offer has none.
    b.set_call_options(CallOptions {
        source: AudioSource::Tone(660.0, 0.2),
        record_wav: Some(heard.clone()),
        video: Some(video.clone()),
        ..CallOptions::default()
    });
    let call = a
        .place_call(
            &b.jami_id(),
            CallOptions {
                source: AudioSource::Tone(440.0, 0.3),
                ..CallOptions::default()
            },
        )
        .await
        .unwrap();
    wait_for(&mut a_ev, 60, |e| state_of(e, "current").map(|_| ())).await;
    wait_for(&mut b_ev, 30, |e| state_of(e, "current").map(|_| ())).await;
    // The media up, and B records the call: it says so (its INFO may come before or after
    // A's media are up), and A hears of it.
    wait_for(&mut a_ev, 10, |e| match e {
        Event::CallMedia {
            peer_recording: true,
            ..
        } => media_of(e).filter(|m| *m == (false, false, false, false)),
        _ => None,
    })
    .await;
    // Key presses both ways; a key DTMF does not have is refused.
    a.send_dtmf(&call, '5').await.unwrap();
    a.send_dtmf(&call, '#').await.unwrap();
    b.send_dtmf(&call, '*').await.unwrap();
    assert!(a.send_dtmf(&call, 'x').await.is_err());
    let dtmf = |e: &Event| match e {
        Event::CallDtmf { key, .. } => Some(*key),
        _ => None,
    };
    assert_eq!(wait_for(&mut b_ev, 10, dtmf).await, '5');
    assert_eq!(wait_for(&mut b_ev, 10, dtmf).await, '#');
    assert_eq!(wait_for(&mut a_ev, 10, dtmf).await, '*');
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Mute: local, at once; silence reaches B.
    a.mute(&call, true).await.unwrap();
    wait_for(&mut a_ev, 10, |e| {
        media_of(e).filter(|m| *m == (false, false, true, false))
    })
    .await;
    // A says it muted, as jamid does.
    wait_for(&mut b_ev, 10, |e| {
        matches!(
            e,
            Event::CallMedia {
                peer_muted: true,
                ..
            }
        )
        .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.mute(&call, false).await.unwrap();
    wait_for(&mut a_ev, 10, |e| {
        media_of(e).filter(|m| *m == (false, false, false, false))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Hold: a re-INVITE, new ICE, A stops sending; B sees the peer hold.
    a.hold(&call, true).await.unwrap();
    wait_for(&mut a_ev, 30, |e| state_of(e, "hold").map(|_| ())).await;
    wait_for(&mut a_ev, 10, |e| {
        media_of(e).filter(|m| *m == (true, false, false, false))
    })
    .await;
    // (B's events since the call started: the first session's, then the held one's.)
    wait_for(&mut b_ev, 30, |e| media_of(e).filter(|m| m.1)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.hold(&call, false).await.unwrap();
    wait_for(&mut a_ev, 30, |e| state_of(e, "current").map(|_| ())).await;
    wait_for(&mut a_ev, 10, |e| {
        media_of(e).filter(|m| *m == (false, false, false, false))
    })
    .await;
    wait_for(&mut b_ev, 30, |e| media_of(e).filter(|m| !m.1)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Video added by A: B (which wants video) takes it; pictures flow both ways.
    a.set_video(&call, Some(video)).await.unwrap();
    wait_for(&mut a_ev, 30, |e| {
        media_of(e).filter(|m| *m == (false, false, false, true))
    })
    .await;
    wait_for(&mut b_ev, 30, |e| media_of(e).filter(|m| m.3)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // And dropped: its section refused, audio goes on.
    a.set_video(&call, None).await.unwrap();
    wait_for(&mut a_ev, 30, |e| {
        media_of(e).filter(|m| *m == (false, false, false, false))
    })
    .await;
    wait_for(&mut b_ev, 30, |e| media_of(e).filter(|m| !m.3)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    a.hang_up(&call).await.unwrap();
    let a_stats = wait_for(&mut a_ev, 30, stats_of).await;
    let b_stats = wait_for(&mut b_ev, 30, stats_of).await;
    wait_for(&mut b_ev, 30, |e| state_of(e, "ended").map(|_| ())).await;
    // Figures add up over the four media sessions; the video ones over the one with video.
    for s in [&a_stats, &b_stats] {
        assert_eq!(s.rx_srtp_dropped, 0, "{s:?}");
        assert!(s.rx_audio_frames_decoded >= 400, "{s:?}");
        let v = s.video.as_ref().expect("video flowed for a while");
        assert!(v.rx_frames_decoded >= 30, "{v:?}");
        assert!(v.psnr_min.expect("measured") >= 30.0, "{v:?}");
    }
    // While held (2 s and more), A sent nothing: B decoded well under 50 frames a second.
    let expected = b_stats.duration_s * 50.0;
    assert!(
        (b_stats.rx_audio_frames_decoded as f64) < expected - 75.0,
        "B decoded {} frames in {} s",
        b_stats.rx_audio_frames_decoded,
        b_stats.duration_s
    );
    // B heard a silent stretch (the mute) and A's tone again at the end.
    let samples = read_wav(&heard).unwrap();
    let quiet = samples
        .chunks(4800)
        .filter(|w| w.len() == 4800 && pamoja_media::audio::analyse(w).1 < 0.01)
        .count();
    assert!(quiet >= 10, "{quiet} silent tenths of a second");
    let tail = &samples[samples.len().saturating_sub(48_000)..samples.len() - 9600];
    let (hz, level) = analyse_windows(tail);
    assert!(
        (hz - 440.0).abs() <= 5.0 && level > 0.15,
        "{hz} Hz, level {level}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_from_a_file_is_recorded_at_the_other_end() {
    use pamoja_media::video::{psnr, test_pattern};
    use pamoja_media::y4m::{Y4mHeader, read_file, write_file};
    let boot = Runner::bind("127.0.0.1:0".parse().unwrap(), DhtConfig::default())
        .await
        .unwrap();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Three seconds of moving pictures at 176x144, 15 a second.
    let source = a_dir.path().join("source.y4m");
    let header = Y4mHeader {
        width: 176,
        height: 144,
        rate: (15, 1),
    };
    let frames: Vec<_> = (0..45).map(|n| test_pattern(176, 144, n * 3)).collect();
    write_file(&source, header, &frames).unwrap();
    let recorded = b_dir.path().join("seen.y4m");
    let (a, mut a_ev) = start(a_dir.path(), boot.local_addr()).await;
    let (b, mut b_ev) = start(b_dir.path(), boot.local_addr()).await;
    b.set_settings(Settings {
        auto_answer: true,
        ..Settings::default()
    })
    .await
    .unwrap();
    b.set_call_options(CallOptions {
        video: Some(VideoConfig {
            record_file: Some(recorded.clone()),
            ..VideoConfig::default()
        }),
        ..CallOptions::default()
    });
    let call = a
        .place_call(
            &b.jami_id(),
            CallOptions {
                video: Some(VideoConfig {
                    source_file: Some(source),
                    ..VideoConfig::default()
                }),
                ..CallOptions::default()
            },
        )
        .await
        .unwrap();
    wait_for(&mut a_ev, 60, |e| state_of(e, "current").map(|_| ())).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    a.hang_up(&call).await.unwrap();
    let a_stats = wait_for(&mut a_ev, 30, stats_of).await;
    wait_for(&mut b_ev, 30, stats_of).await;
    assert!(
        a_stats.video.as_ref().is_some_and(|v| v.tx_frames >= 45),
        "{a_stats:?}"
    );
    // B wrote what it decoded: the file's pictures, at their size, each close to one of
    // the pictures sent.
    let (got, seen) = read_file(&recorded, 1000).unwrap();
    assert_eq!((got.width, got.height), (176, 144));
    assert!(seen.len() >= 40, "{} pictures recorded", seen.len());
    let worst = seen
        .iter()
        .map(|p| frames.iter().map(|f| psnr(f, p)).fold(0.0, f64::max))
        .fold(f64::INFINITY, f64::min);
    assert!(
        worst >= 30.0,
        "the worst picture is {worst:.1} dB from any sent"
    );
}
