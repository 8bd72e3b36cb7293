//! Call signalling with a real jamid (Debian 20230206) in the lab, both ways: the SIP dialog
//! of pamoja-media on a `sip` channel of pamoja-channel, and SDP in jamid's shape.
//!
//! Pamoja → jamid (auto-answer): INVITE with our offer, jamid's 100 and 200 with its
//! answer (read by our SDP model: session-level ICE credentials, Opus at 104 chosen from
//! our offer, its own SRTP key, RTCP at port + 1, candidates of components 1 and 2), our
//! ACK; jamid reports the call CURRENT; our BYE ends it on both sides.
//!
//! jamid → Pamoja: jamid's INVITE and offer read by our model; 100, 180, our 200 with an
//! answer by jamid's codec rule; jamid's ACK; CURRENT; jamid hangs up and our dialog ends.
//!
//! Both ways the media then flow: a second, UDP, ICE session with components numbered as
//! jamid numbers them, then SRTP-protected Opus both ways. jamid's microphone is a 660 Hz
//! tone from a PulseAudio server of its own; ours is 440 Hz. Checked: we authenticate and
//! decode jamid's Opus and hear 660 Hz; jamid's speaker plays 440 Hz at the level we sent;
//! jamid's receiver reports count our packets.

mod channel_lab;
mod client_lab;
mod common;

use channel_lab::{device_chain, setup};

use std::time::{Duration, Instant};

use pamoja::channel::link::LinkEvent;
use pamoja::channel::sip::{SipMessage, SipReader, StartLine};
use pamoja::client::media::{
    AudioConfig, AudioSource, candidate_lines, remote_ice, rtp_port, run_audio,
};
use pamoja::ice::agent::Role;
use pamoja::ice::media::MediaSession;
use pamoja::ice::session::Options;
use pamoja::identity::Account;
use pamoja::media::Suite;
use pamoja::media::audio::analyse_windows;
use pamoja::media::dialog::{Dialog, EndReason, Endpoint, Event};
use pamoja::media::negotiate::{self, Capability, Local, Negotiated};
use pamoja::media::sdp::{Codec, Sdp};
use pamoja::media::stream::{MediaStream, StreamConfig};
use pamoja_lab::{LAB_ADDR, Lab, Signal, available};

/// The tone of jamid's microphone (ours is 440 Hz).
const JAMID_TONE: u32 = 660;
/// Our tone.
const OUR_TONE: f64 = 440.0;

/// One call lab at a time: two jamids setting up calls at once stall more often.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What our side of a call saw.
#[derive(Debug, Default)]
struct Report {
    /// Status codes received, in order.
    codes: Vec<u16>,
    /// The peer's SDP (its answer to our INVITE, or its offer).
    remote_sdp: Vec<u8>,
    /// The SDP we sent.
    local_sdp: String,
    ringing: bool,
    confirmed: bool,
    end: Option<EndReason>,
    /// What the media stream did, when it ran.
    audio: Option<Heard>,
}

fn endpoint(account: &Account, peer: &str) -> Endpoint {
    let device = account.device().expect("device");
    Endpoint {
        account: account.jami_id().to_string(),
        device: device.cert.short_device_id().to_string(),
        display_name: Some("Pamoja".into()),
        peer: peer.into(),
        local: format!("{LAB_ADDR}:40000").parse().unwrap(),
        remote: format!("{LAB_ADDR}:40001").parse().unwrap(),
    }
}

/// Writes what the dialog wants sent, one message per channel write.
async fn flush(d: &mut Dialog, ch: &mut pamoja::channel::link::Channel) -> Result<(), String> {
    while let Some(m) = d.poll_transmit() {
        ch.send(&m.to_bytes()).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Reads messages from the channel into the dialog until `done` says so or 60 s pass.
async fn drive(
    d: &mut Dialog,
    ch: &mut pamoja::channel::link::Channel,
    reader: &mut SipReader,
    report: &mut Report,
    hangup: &mut tokio::sync::mpsc::UnboundedReceiver<()>,
    done: impl Fn(&Report) -> bool,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        flush(d, ch).await?;
        while let Some(e) = d.poll_event() {
            match e {
                Event::Ringing => report.ringing = true,
                Event::Answered { sdp } => report.remote_sdp = sdp,
                Event::Confirmed => report.confirmed = true,
                Event::Ended(r) => report.end = Some(r),
                _ => {}
            }
        }
        flush(d, ch).await?;
        if done(report) {
            return Ok(());
        }
        tokio::select! {
            data = ch.recv() => {
                reader.push(&data.ok_or("sip channel closed")?);
                while let Some(m) = reader.next_message() {
                    let m = m.map_err(|e| e.to_string())?;
                    if let StartLine::Response { code, .. } = m.start {
                        report.codes.push(code);
                    }
                    d.handle(&m, Instant::now());
                }
            }
            Some(()) = hangup.recv() => d.hangup().map_err(|e| e.to_string())?,
            _ = tokio::time::sleep_until(deadline) => return Err(format!("stalled: {report:?}")),
        }
    }
}

/// Our device calls account `to` with a 440 Hz tone, and hangs up when told; returns what
/// it saw and heard.
fn pamoja_caller(
    account: Account,
    lab: &Lab,
    to: String,
    mut hangup: tokio::sync::mpsc::UnboundedReceiver<()>,
) -> std::thread::JoinHandle<pamoja_lab::Result<Result<Report, String>>> {
    lab.netns().spawn_inside(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (manager, runner, dht) = setup(&account).await?;
            let chain = device_chain(&runner, &dht, &to).await?;
            // The media session first: its candidates go into the offer.
            let opts = Options::udp(vec![format!("{LAB_ADDR}:0").parse().unwrap()]);
            let session = MediaSession::gather(Role::Controlling, opts, 2)
                .await
                .map_err(|e| e.to_string())?;
            let local = audio_only(&session);
            let offer_sdp = negotiate::offer(
                &local,
                |i| rtp_port(&session, i),
                |i| candidate_lines(&session, i),
            );
            let offer = offer_sdp.to_text();
            let mut ch = manager
                .channel(&chain, "sip", "audioCall")
                .await
                .map_err(|e| e.to_string())?;
            // jamid sets its SIP transport up as the channel opens; an INVITE in the same
            // instant can stall it, so give it a moment, as its own caller's set-up does.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut report = Report {
                local_sdp: offer.clone(),
                ..Report::default()
            };
            let mut d = Dialog::invite(endpoint(&account, &to), offer.as_bytes(), Instant::now());
            let mut reader = SipReader::default();
            drive(
                &mut d,
                &mut ch,
                &mut reader,
                &mut report,
                &mut hangup,
                |r| !r.remote_sdp.is_empty() || r.end.is_some(),
            )
            .await?;
            // Answered: ICE as the controlling side, then the tone, until the call ends.
            let answer = Sdp::parse(&String::from_utf8_lossy(&report.remote_sdp))
                .map_err(|e| e.to_string())?;
            let negotiated = negotiate::answered(&offer_sdp, &answer);
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let media = tokio::spawn(audio(session, negotiated, stop_rx));
            drive(
                &mut d,
                &mut ch,
                &mut reader,
                &mut report,
                &mut hangup,
                |r| {
                    // Over, and the answer to our BYE (or CANCEL) is in.
                    r.end.is_some() && r.codes.last() == Some(&200) && r.codes.len() >= 2
                },
            )
            .await?;
            let _ = stop_tx.send(());
            report.audio = Some(media.await.map_err(|e| e.to_string())??);
            Ok(report)
        })
    })
}

/// Our side of the SDP: audio only (Opus, DTMF), the session's ICE credentials.
fn audio_only(session: &MediaSession) -> Local {
    Local {
        addr: LAB_ADDR.parse().unwrap(),
        ice: (
            session.local_description().ufrag.clone(),
            session.local_description().pwd.clone(),
        ),
        capabilities: vec![Capability::new(
            "audio",
            vec![Codec::opus(), Codec::telephone_event()],
        )],
    }
}

/// What our side heard, in brief.
#[derive(Debug)]
struct Heard {
    stats: pamoja::media::stream::StreamStats,
    frames_decoded: u64,
    frames_concealed: u64,
    /// Frequency and level of the last seconds heard.
    tone: (f64, f64),
}

/// The audio stream of a negotiated call: ICE with the peer, then our 440 Hz tone out and
/// the peer's Opus in, until `stop`.
async fn audio(
    session: MediaSession,
    negotiated: Negotiated,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<Heard, String> {
    let remote = remote_ice(&negotiated).ok_or("no ICE credentials in the peer's SDP")?;
    let stream = negotiated
        .streams
        .iter()
        .find(|s| s.enabled && s.kind == "audio")
        .ok_or("no audio stream")?;
    let send = stream.send.clone().ok_or("no codec to send with")?;
    let mut config = StreamConfig::new(
        send.pt,
        send.clock,
        stream.local_crypto.clone().ok_or("no local key")?,
        stream.remote_crypto.clone().ok_or("no key from the peer")?,
    );
    config.accept = stream.receive.iter().map(|c| c.pt).collect();
    let t = Instant::now();
    let conn = tokio::time::timeout(Duration::from_secs(40), session.connect(remote))
        .await
        .map_err(|_| "media ICE timed out")?
        .map_err(|e| format!("media ICE: {e}"))?;
    eprintln!("media ICE connected in {:?}", t.elapsed());
    let mut comps = conn.into_components().into_iter();
    let (rtp, rtcp) = (comps.next().ok_or("rtp")?, comps.next().ok_or("rtcp")?);
    let ms = MediaStream::new(config, Instant::now());
    let r = run_audio(
        rtp,
        rtcp,
        ms,
        AudioConfig {
            source: AudioSource::Tone(OUR_TONE, 0.3),
            record: true,
            // jamid (FFmpeg's RTP demuxer) sends a receiver report per 280 kB received:
            // every 40 s at Opus's usual 48 kb/s, every 4 or 5 s at its highest bitrate.
            bitrate: 510_000,
            ..AudioConfig::new(AudioSource::Silence)
        },
        async {
            let _ = stop.await;
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    // The last seconds heard (the first may still be settling).
    let tail = &r.recorded[r.recorded.len().saturating_sub(48_000 * 5)..];
    Ok(Heard {
        stats: r.stats,
        frames_decoded: r.frames_decoded,
        frames_concealed: r.frames_concealed,
        tone: analyse_windows(tail),
    })
}

/// Our device takes the first INVITE on a `sip` channel from jamid, rings, answers with
/// jamid's codec rule, and runs the dialog until it ends.
fn pamoja_callee(
    account: Account,
    lab: &Lab,
    peer: String,
) -> std::thread::JoinHandle<pamoja_lab::Result<Result<Report, String>>> {
    lab.netns().spawn_inside(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (mut manager, _runner, _dht) = setup(&account).await?;
            let mut link = tokio::time::timeout(Duration::from_secs(120), manager.accept())
                .await
                .map_err(|_| "jamid never connected")?
                .ok_or("manager stopped")?;
            let mut ch = loop {
                let LinkEvent::Channel(ch) =
                    tokio::time::timeout(Duration::from_secs(60), link.next_event())
                        .await
                        .map_err(|_| "no sip channel from jamid")?
                        .ok_or("link closed")?;
                if ch.name == "sip" {
                    break ch;
                }
            };
            let mut reader = SipReader::default();
            let invite: SipMessage = loop {
                if let Some(m) = reader.next_message() {
                    let m = m.map_err(|e| e.to_string())?;
                    match &m.start {
                        StartLine::Request { method, .. } if method == "INVITE" => break m,
                        _ => continue,
                    }
                }
                let data = tokio::time::timeout(Duration::from_secs(60), ch.recv())
                    .await
                    .map_err(|_| "no INVITE from jamid")?
                    .ok_or("sip channel closed")?;
                reader.push(&data);
            };
            let mut d = Dialog::incoming(endpoint(&account, &peer), &invite, Instant::now())
                .map_err(|e| e.to_string())?;
            let offer = Sdp::parse(&String::from_utf8_lossy(d.remote_offer()))
                .map_err(|e| e.to_string())?;
            // Audio by jamid's rule, the other sections refused; two components for it.
            let opts = Options::udp(vec![format!("{LAB_ADDR}:0").parse().unwrap()]);
            let session = MediaSession::gather(Role::Controlled, opts, 2)
                .await
                .map_err(|e| e.to_string())?;
            let (answer_sdp, negotiated) = negotiate::answer(
                &offer,
                &audio_only(&session),
                |i| rtp_port(&session, i),
                |i| candidate_lines(&session, i),
            )
            .map_err(|e| e.to_string())?;
            let answer = answer_sdp.to_text();
            let mut report = Report {
                remote_sdp: invite.body.clone(),
                local_sdp: answer.clone(),
                ..Report::default()
            };
            d.ring().map_err(|e| e.to_string())?;
            flush(&mut d, &mut ch).await?;
            d.accept(answer.as_bytes(), Instant::now())
                .map_err(|e| e.to_string())?;
            flush(&mut d, &mut ch).await?;
            // The answer is out: ICE as the controlled side, then audio until the end.
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let media = tokio::spawn(audio(session, negotiated, stop_rx));
            let (_keep, mut never) = tokio::sync::mpsc::unbounded_channel();
            drive(&mut d, &mut ch, &mut reader, &mut report, &mut never, |r| {
                r.end.is_some()
            })
            .await?;
            let _ = stop_tx.send(());
            report.audio = Some(media.await.map_err(|e| e.to_string())??);
            Ok(report)
        })
    })
}

/// Both directions of audio with jamid: jamid's Opus authenticated and decoded at its
/// tone, our tone on jamid's speaker, our packets counted by jamid's receiver reports.
fn check_audio(heard: &Heard, speaker: &[i16]) {
    let s = &heard.stats;
    assert!(s.tx_packets >= 150, "{heard:?}");
    assert_eq!(s.srtp_in.auth_failed, 0, "{heard:?}");
    assert!(
        heard.frames_decoded >= 100,
        "jamid's Opus decoded: {heard:?}"
    );
    assert!(
        heard.frames_concealed * 10 <= heard.frames_decoded,
        "at most a tenth concealed on the lab link: {heard:?}"
    );
    let (hz, level) = heard.tone;
    assert!(
        (hz - f64::from(JAMID_TONE)).abs() <= 5.0 && level > 0.01,
        "jamid's tone heard at {hz:.1} Hz, level {level:.3}"
    );
    let remote = s.remote_received.expect("a receiver report from jamid");
    assert!(
        remote >= 50 && remote <= s.tx_packets,
        "jamid reports {remote} of our {} packets",
        s.tx_packets
    );
    let tail = &speaker[speaker.len().saturating_sub(48_000 * 5)..];
    let (hz, level) = analyse_windows(tail);
    eprintln!(
        "jamid's speaker: {hz:.1} Hz, level {level:.3} ({} samples)",
        speaker.len()
    );
    assert!(
        (hz - OUR_TONE).abs() <= 5.0 && level > 0.01,
        "our tone on jamid's speaker at {hz:.1} Hz, level {level:.3}"
    );
}

fn is_state(s: &Signal, call: Option<&str>, state: &str) -> bool {
    s.name == "callStateChanged" && call.is_none_or(|c| s.str(1) == c) && s.str(2) == state
}

/// jamid's SDP, as our model reads it: what a Pamoja peer relies on.
fn check_jamid_sdp(text: &[u8]) -> Sdp {
    let s = Sdp::parse(&String::from_utf8_lossy(text)).expect("jamid's SDP parses");
    let (ufrag, pwd) = s.ice_credentials().expect("session-level ICE credentials");
    assert!(!ufrag.is_empty() && pwd.len() >= 22, "{ufrag} {pwd}");
    let audio = s.media.iter().find(|m| m.kind == "audio").expect("audio");
    assert_eq!(audio.proto, "RTP/SAVP");
    assert_eq!(audio.codecs().first(), Some(&Codec::opus()), "{audio:?}");
    assert_eq!(audio.rtcp_port(), Some(audio.port + 1));
    let crypto = audio.crypto().expect("a usable a=crypto");
    assert_eq!(crypto.suite, Suite::AesCm128HmacSha1_80);
    let comps: Vec<&str> = audio
        .candidates()
        .iter()
        .filter_map(|c| c.split_ascii_whitespace().nth(1))
        .collect();
    assert!(comps.contains(&"1") && comps.contains(&"2"), "{comps:?}");
    s
}

async fn lab_with_jamid(
    name: &str,
    extra: &[(&str, &str)],
) -> (Lab, pamoja_lab::Jamid, String, String) {
    let mut lab = Lab::new().unwrap();
    lab.start_dhtnode(4222).await.unwrap();
    // A sound card whose microphone plays jamid's tone.
    lab.start_pulseaudio(name, JAMID_TONE).await.unwrap();
    let jamid = lab.start_jamid(name).await.unwrap();
    // A steady tone would be suppressed as noise.
    jamid.set_noise_suppression(false).await.unwrap();
    let account = jamid.add_account(4222, extra).await.unwrap();
    jamid
        .wait_registered(&account, Duration::from_secs(120))
        .await
        .unwrap();
    let id = jamid.jami_id(&account).await.unwrap();
    (lab, jamid, account, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pamoja_calls_jamid_and_hangs_up() {
    if !available("pamoja_calls_jamid_and_hangs_up") {
        return;
    }
    let _serial = SERIAL.lock().await;
    let (mut lab, mut jamid, account, jamid_id) =
        lab_with_jamid("callee", &[("Account.autoAnswer", "true")]).await;
    let mut attempt = 0;
    let (our_id, caller, hangup_tx, current, mark, t) = loop {
        attempt += 1;
        let ours = Account::create(|_| {}).unwrap();
        let our_id = ours.jami_id().to_string();
        let (hangup_tx, hangup_rx) = tokio::sync::mpsc::unbounded_channel();
        let mark = jamid.signals().len();
        let t = Instant::now();
        let caller = pamoja_caller(ours, &lab, jamid_id.clone(), hangup_rx);
        let current = jamid
            .wait_signal(mark, Duration::from_secs(40), |s| {
                is_state(s, None, "CURRENT")
            })
            .await;
        match current {
            Ok(s) => break (our_id, caller, hangup_tx, s, mark, t),
            Err(e) if attempt == 1 => {
                // jamid 20230206 now and then takes an INVITE in ("New incoming call") and
                // then neither answers nor logs anything again. Such a jamid is restarted
                // (same data) and called once more, by a new caller; the stalled caller ends
                // on its own.
                eprintln!(
                    "jamid did not answer our INVITE ({e}); restarting it and calling again\n{}",
                    lab.log_tail("jamid-callee", 5)
                );
                lab.stop_jamid(&jamid);
                jamid = lab.restart_jamid("callee").await.unwrap();
                jamid
                    .wait_registered(&account, Duration::from_secs(120))
                    .await
                    .unwrap();
            }
            Err(e) => panic!("{e}\n--- jamid ---\n{}", lab.log_tail("jamid-callee", 80)),
        }
    };
    eprintln!("INVITE -> CURRENT on jamid: {:?}", t.elapsed());
    let call = current.str(1).to_owned();
    // jamid took the caller from our From header, checked against the channel's certificate.
    let details = jamid.call_details(&account, &call).await.unwrap();
    assert!(
        details
            .get("PEER_NUMBER")
            .is_some_and(|p| p.contains(&our_id)),
        "{details:?}"
    );
    // Some seconds of media both ways; what jamid plays is recorded meanwhile.
    let speaker = lab
        .record_speaker("callee", Duration::from_secs(12))
        .await
        .unwrap();
    hangup_tx.send(()).unwrap();
    let report = tokio::task::spawn_blocking(move || caller.join().unwrap().unwrap())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}\n--- jamid ---\n{}", lab.log_tail("jamid-callee", 60)));
    let heard = report.audio.as_ref().expect("the media ran");
    eprintln!("media: {heard:?}");
    check_audio(heard, &speaker);
    // 100 Trying, then 200 OK with jamid's answer; then 200 to our BYE.
    assert_eq!(report.codes.first(), Some(&100), "{report:?}");
    assert!(report.codes.windows(1).any(|c| c[0] == 200), "{report:?}");
    assert_eq!(report.end, Some(EndReason::Local));
    let answer = check_jamid_sdp(&report.remote_sdp);
    // jamid picked Opus from our offer, with its own key.
    let ours = Sdp::parse(&report.local_sdp).unwrap();
    assert_ne!(answer.media[0].crypto(), ours.media[0].crypto());
    jamid
        .wait_signal(mark, Duration::from_secs(30), |s| {
            is_state(s, Some(&call), "OVER")
        })
        .await
        .expect("jamid ends the call after our BYE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jamid_calls_pamoja_and_hangs_up() {
    if !available("jamid_calls_pamoja_and_hangs_up") {
        return;
    }
    let _serial = SERIAL.lock().await;
    let (mut lab, jamid, account, jamid_id) = lab_with_jamid("caller", &[]).await;
    let ours = Account::create(|_| {}).unwrap();
    let our_id = ours.jami_id().to_string();
    let callee = pamoja_callee(ours, &lab, jamid_id);
    // Our device publishes itself first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mark = jamid.signals().len();
    let t = Instant::now();
    let call = jamid.place_call(&account, &our_id).await.unwrap();
    assert!(!call.is_empty());
    let current = jamid
        .wait_signal(mark, Duration::from_secs(120), |s| {
            is_state(s, Some(&call), "CURRENT")
        })
        .await;
    if let Err(e) = current {
        panic!("{e}\n--- jamid ---\n{}", lab.log_tail("jamid-caller", 80));
    }
    eprintln!("placeCall -> CURRENT: {:?}", t.elapsed());
    let speaker = lab
        .record_speaker("caller", Duration::from_secs(12))
        .await
        .unwrap();
    assert!(jamid.hang_up(&account, &call).await.unwrap());
    let report = tokio::task::spawn_blocking(move || callee.join().unwrap().unwrap())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}\n--- jamid ---\n{}", lab.log_tail("jamid-caller", 60)));
    let heard = report.audio.as_ref().expect("the media ran");
    eprintln!("media: {heard:?}");
    check_audio(heard, &speaker);
    assert!(report.confirmed, "jamid's ACK: {report:?}");
    assert_eq!(report.end, Some(EndReason::HungUp));
    check_jamid_sdp(&report.remote_sdp);
    jamid
        .wait_signal(mark, Duration::from_secs(30), |s| {
            is_state(s, Some(&call), "OVER")
        })
        .await
        .expect("jamid's call is over");
}

/// `jami call` inside the lab, from a new account, to `jamid_id` (jamid `name` in the lab's
/// logs), recording what it hears to `heard`: its JSON lines. Fails with jamid's log tail
/// when the command fails.
async fn jami_call(
    lab: &Lab,
    name: &str,
    jamid_id: &str,
    dir: &std::path::Path,
    heard: &std::path::Path,
    extra: &[&str],
) -> Vec<serde_json::Value> {
    let (archive, _) = common::new_archive(dir, "me.gz");
    let mut cmd = lab.netns().command(common::jami_bin().to_str().unwrap());
    cmd.arg("call")
        .arg("--archive")
        .arg(&archive)
        .args(["--bootstrap", "127.0.0.1:4222", "--ice-addr", LAB_ADDR])
        .args(["--to", jamid_id])
        .args(extra)
        .arg("--record-wav")
        .arg(heard)
        .env("PAMOJA_PASSWORD", "");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "jami call: {}\n--- jamid ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        lab.log_tail(name, 60)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect()
}

/// `jami call` (the command line) calls a jamid that answers by itself: the call's events,
/// and a `call_stats` object whose figures say audio flowed both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jami_call_command_calls_jamid() {
    if !available("jami_call_command_calls_jamid") {
        return;
    }
    let _serial = SERIAL.lock().await;
    let (lab, jamid, _account, jamid_id) =
        lab_with_jamid("answers", &[("Account.autoAnswer", "true")]).await;
    let dir = tempfile::tempdir().unwrap();
    let heard = dir.path().join("heard.wav");
    let mark = jamid.signals().len();
    let lines = jami_call(
        &lab,
        "jamid-answers",
        &jamid_id,
        dir.path(),
        &heard,
        &["--duration", "5"],
    )
    .await;
    eprintln!("{lines:#?}");
    let states: Vec<&str> = lines
        .iter()
        .filter(|e| e["event"] == "call_state")
        .filter_map(|e| e["state"].as_str())
        .collect();
    assert!(states.contains(&"current"), "{lines:#?}");
    assert_eq!(states.last(), Some(&"ended"));
    let stats = lines.last().unwrap();
    assert_eq!(stats["event"], "call_stats");
    assert_eq!(stats["codec"], "opus/48000/2");
    // 5 s at 50 packets a second; jamid's own audio starts a moment after ICE.
    for k in ["tx_packets", "rx_packets", "rx_audio_frames_decoded"] {
        assert!(stats[k].as_u64().unwrap_or(0) >= 100, "{k}: {stats}");
    }
    // At 48 kb/s jamid's first receiver report comes after ~40 s: none yet in 5 s.
    assert!(stats.get("remote_received").is_some(), "{stats}");
    // jamid's 660 Hz microphone, heard through the recording.
    let samples = pamoja::media::audio::read_wav(&heard).unwrap();
    let (hz, level) = analyse_windows(&samples[samples.len().saturating_sub(48_000 * 3)..]);
    assert!(
        (hz - f64::from(JAMID_TONE)).abs() <= 5.0 && level > 0.01,
        "{hz} Hz, level {level}"
    );
    // jamid saw our account call and the call end.
    jamid
        .wait_signal(mark, Duration::from_secs(30), |s| is_state(s, None, "OVER"))
        .await
        .expect("jamid's call is over");
}

/// `jami call --video` to a jamid that answers by itself: jamid takes VP8 from our offer for
/// the video section, asks for a key frame (SIP INFO) and decodes our pictures at their
/// size, and audio keeps flowing both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_and_video_call_with_jamid() {
    if !available("audio_and_video_call_with_jamid") {
        return;
    }
    let _serial = SERIAL.lock().await;
    let (lab, jamid, _account, jamid_id) =
        lab_with_jamid("video", &[("Account.autoAnswer", "true")]).await;
    let dir = tempfile::tempdir().unwrap();
    let heard = dir.path().join("heard.wav");
    let mark = jamid.signals().len();
    let lines = jami_call(
        &lab,
        "jamid-video",
        &jamid_id,
        dir.path(),
        &heard,
        &["--duration", "8", "--video"],
    )
    .await;
    let stats = lines.last().unwrap();
    eprintln!("{stats:#}");
    jamid
        .wait_signal(mark, Duration::from_secs(5), |s| {
            is_state(s, None, "CURRENT")
        })
        .await
        .expect("jamid's call was current");
    // jamid decoded our VP8: its video sink started at our picture size.
    let started = jamid
        .wait_signal(mark, Duration::from_secs(5), |s| {
            s.name == "decodingStarted" && s.str(0) != "local"
        })
        .await
        .expect("jamid decodes our video");
    assert_eq!(
        (started.args.get(2), started.args.get(3)),
        (
            Some(&pamoja_lab::Arg::Int(320)),
            Some(&pamoja_lab::Arg::Int(240))
        ),
        "{started:?}"
    );
    let v = &stats["video"];
    assert_eq!(v["codec"], "VP8/90000", "{stats}");
    assert!(v["tx_frames"].as_u64().unwrap_or(0) >= 60, "{stats}");
    assert!(
        v["key_frame_requests_received"].as_u64().unwrap_or(0) >= 1,
        "jamid's SIP INFO picture_fast_update: {stats}"
    );
    // Audio kept flowing both ways alongside.
    assert!(
        stats["rx_audio_frames_decoded"].as_u64().unwrap_or(0) >= 150,
        "{stats}"
    );
    assert!(stats["tx_packets"].as_u64().unwrap_or(0) >= 150, "{stats}");
    let samples = pamoja::media::audio::read_wav(&heard).unwrap();
    let (hz, _) = analyse_windows(&samples[samples.len().saturating_sub(48_000 * 3)..]);
    assert!((hz - f64::from(JAMID_TONE)).abs() <= 5.0, "{hz} Hz");
}

fn media_event(e: &serde_json::Value, field: &str, value: bool) -> bool {
    e["event"] == "call_media" && e[field] == value
}

/// In-dialog INFOs and re-INVITEs both ways with jamid. jamid learns that we record the call
/// (`remoteRecordingChanged`); its key presses and its mute reach us. Then re-INVITEs, each
/// with a new media ICE session (jamid's way towards a User-Agent it does not know):
/// `jami run` holds and resumes (jamid signals `peerHold`
/// true, then false), adds video (jamid, answering by itself, takes it and decodes our
/// pictures), then jamid holds and resumes (we answer its offers and the media restart);
/// through it all the call stays up, and at the end each side hears the other's tone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_invites_with_jamid_both_ways() {
    if !available("re_invites_with_jamid_both_ways") {
        return;
    }
    let _serial = SERIAL.lock().await;
    let (mut lab, jamid, account, jamid_id) =
        lab_with_jamid("reinvite", &[("Account.autoAnswer", "true")]).await;
    let dir = tempfile::tempdir().unwrap();
    let heard = dir.path().join("heard.wav");
    let (archive, _) = common::new_archive(dir.path(), "me.gz");
    let mut me = client_lab::JamiRun::start(
        &lab,
        &common::jami_bin(),
        &archive,
        &dir.path().join("data"),
    );
    me.wait(60, |e| e["event"] == "ready").await;
    let mark = jamid.signals().len();
    let r = me
        .cmd(
            serde_json::json!({"cmd": "call", "to": jamid_id, "tone": OUR_TONE,
            "record_wav": heard.to_str().unwrap()}),
        )
        .await;
    let call = r["call"].as_str().unwrap().to_owned();
    me.wait(90, |e| {
        e["event"] == "call_state" && e["state"] == "current"
    })
    .await;
    jamid
        .wait_signal(mark, Duration::from_secs(30), |s| {
            is_state(s, None, "CURRENT")
        })
        .await
        .expect("jamid's call is current");
    let jamid_call = jamid
        .calls(&account)
        .await
        .unwrap()
        .pop()
        .expect("jamid's call");
    // We record the call, and tell jamid so, as it tells its own peers.
    jamid
        .wait_signal(mark, Duration::from_secs(30), |s| {
            s.name == "remoteRecordingChanged"
                && s.args.get(2) == Some(&pamoja_lab::Arg::Bool(true))
        })
        .await
        .expect("jamid knows we record");
    // jamid's key presses (its SIP INFO dtmf-relay) reach us.
    let from = me.all.len();
    jamid.press_key('9').await.unwrap();
    let k = me.wait_after(from, 30, |e| e["event"] == "call_dtmf").await;
    assert_eq!(k["key"], "9", "{k}");
    // jamid mutes: it tells us.
    let from = me.all.len();
    assert!(jamid.mute_audio(&account, &jamid_call, true).await.unwrap());
    me.wait_after(from, 30, |e| media_event(e, "peer_muted", true))
        .await;
    assert!(
        jamid
            .mute_audio(&account, &jamid_call, false)
            .await
            .unwrap()
    );
    me.wait_after(from, 30, |e| media_event(e, "peer_muted", false))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // We hold, then resume: jamid sees its peer hold and let go.
    let step = |name: &str| eprintln!("--- {name} ---");
    step("Pamoja holds");
    let (from, jmark) = (me.all.len(), jamid.signals().len());
    me.cmd(serde_json::json!({"cmd": "hold", "call": call}))
        .await;
    me.wait_after(from, 60, |e| {
        e["event"] == "call_state" && e["state"] == "hold"
    })
    .await;
    jamid
        .wait_signal(jmark, Duration::from_secs(30), |s| {
            s.name == "peerHold" && s.args.get(1) == Some(&pamoja_lab::Arg::Bool(true))
        })
        .await
        .expect("jamid sees the hold");
    tokio::time::sleep(Duration::from_secs(2)).await;
    step("Pamoja resumes");
    let (from, jmark) = (me.all.len(), jamid.signals().len());
    me.cmd(serde_json::json!({"cmd": "unhold", "call": call}))
        .await;
    me.wait_after(from, 60, |e| {
        e["event"] == "call_state" && e["state"] == "current"
    })
    .await;
    jamid
        .wait_signal(jmark, Duration::from_secs(30), |s| {
            s.name == "peerHold" && s.args.get(1) == Some(&pamoja_lab::Arg::Bool(false))
        })
        .await
        .expect("jamid sees the resume");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // We add video: jamid (answering by itself) takes it and decodes our pictures.
    step("Pamoja adds video");
    let (from, jmark) = (me.all.len(), jamid.signals().len());
    me.cmd(serde_json::json!({"cmd": "video", "call": call, "video": true}))
        .await;
    me.wait_after(from, 60, |e| media_event(e, "video", true))
        .await;
    let started = jamid
        .wait_signal(jmark, Duration::from_secs(30), |s| {
            s.name == "decodingStarted" && s.str(0) != "local"
        })
        .await
        .expect("jamid decodes our video");
    assert_eq!(
        (started.args.get(2), started.args.get(3)),
        (
            Some(&pamoja_lab::Arg::Int(320)),
            Some(&pamoja_lab::Arg::Int(240))
        ),
        "{started:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // jamid holds, then resumes: each time its re-INVITE brings a new ICE session, which
    // we answer; the media restart on it.
    step("jamid holds");
    let from = me.all.len();
    assert!(jamid.hold_call(&account, &jamid_call, true).await.unwrap());
    me.wait_after(from, 60, |e| e["event"] == "call_media")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    step("jamid resumes");
    let (from, jmark) = (me.all.len(), jamid.signals().len());
    assert!(jamid.hold_call(&account, &jamid_call, false).await.unwrap());
    let resumed = me
        .wait_after(from, 60, |e| e["event"] == "call_media")
        .await;
    assert_eq!(
        resumed["video"], true,
        "video runs on after jamid's offers: {resumed}"
    );
    jamid
        .wait_signal(jmark, Duration::from_secs(30), |s| {
            is_state(s, Some(&jamid_call), "CURRENT")
        })
        .await
        .expect("jamid's call is current again");
    // jamid decodes our VP8 again: it listens for the codec our answer chose (VP8), not
    // the first of its offer (H.264).
    jamid
        .wait_signal(jmark, Duration::from_secs(30), |s| {
            s.name == "decodingStarted" && s.str(0) != "local"
        })
        .await
        .expect("jamid decodes our video after its own re-INVITE");
    // Both hear each other again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let speaker = lab
        .record_speaker("reinvite", Duration::from_secs(3))
        .await
        .unwrap();
    let (hz, level) = analyse_windows(&speaker);
    assert!(
        (hz - OUR_TONE).abs() <= 5.0 && level > 0.01,
        "our tone on jamid's speaker after the re-INVITEs: {hz:.1} Hz, level {level:.3}"
    );
    let from = me.all.len();
    me.cmd(serde_json::json!({"cmd": "hangup", "call": call}))
        .await;
    let stats = me
        .wait_after(from, 30, |e| e["event"] == "call_stats")
        .await;
    eprintln!("{stats:#}");
    jamid
        .wait_signal(mark, Duration::from_secs(30), |s| is_state(s, None, "OVER"))
        .await
        .expect("jamid's call is over");
    assert_eq!(stats["rx_srtp_dropped"], 0, "{stats}");
    // How much jamid's audio flows between the re-INVITEs depends on how fast jamid
    // restarts its media on each (holds and its ICE restarts cost seconds that vary from
    // run to run). What does not vary: after jamid's call is current again and decodes us,
    // the test waits 2 s and records 3 s, so at least those 5 s (250 frames of 20 ms)
    // were heard, and the last 4 s of what we heard are jamid's tone without a gap.
    assert!(
        stats["rx_audio_frames_decoded"].as_u64().unwrap_or(0) >= 250,
        "{stats}"
    );
    assert!(
        stats["video"]["tx_frames"].as_u64().unwrap_or(0) >= 30,
        "{stats}"
    );
    let samples = pamoja::media::audio::read_wav(&heard).unwrap();
    let tail = &samples[samples.len().saturating_sub(48_000 * 4)..];
    let (hz, level) = analyse_windows(tail);
    assert!(
        (hz - f64::from(JAMID_TONE)).abs() <= 5.0 && level > 0.01,
        "jamid's tone after the re-INVITEs: {hz} Hz, level {level}"
    );
    let gap = pamoja::media::audio::longest_gap_ms(tail, 300);
    assert!(
        tail.len() == 48_000 * 4 && gap < 100.0,
        "4 s of jamid's tone after the re-INVITEs, longest gap {gap} ms of {} samples",
        tail.len()
    );
}

/// The lab itself, checked with jamid alone: one jamid calls another (which answers by
/// itself), and each one's speaker then plays the other's microphone tone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jamid_calls_jamid_and_each_hears_the_other() {
    if !available("jamid_calls_jamid_and_each_hears_the_other") {
        return;
    }
    let _serial = SERIAL.lock().await;
    let (mut lab, callee, _callee_account, callee_id) =
        lab_with_jamid("jj-callee", &[("Account.autoAnswer", "true")]).await;
    const CALLER_TONE: u32 = 880;
    lab.start_pulseaudio("jj-caller", CALLER_TONE)
        .await
        .unwrap();
    let caller = lab.start_jamid("jj-caller").await.unwrap();
    caller.set_noise_suppression(false).await.unwrap();
    let account = caller.add_account(4222, &[]).await.unwrap();
    caller
        .wait_registered(&account, Duration::from_secs(120))
        .await
        .unwrap();
    let mark = caller.signals().len();
    let call = caller.place_call(&account, &callee_id).await.unwrap();
    caller
        .wait_signal(mark, Duration::from_secs(90), |s| {
            is_state(s, Some(&call), "CURRENT")
        })
        .await
        .expect("the caller's call is current");
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (name, tone) in [("jj-callee", CALLER_TONE), ("jj-caller", JAMID_TONE)] {
        // jamid's audio sometimes starts a few seconds after CURRENT: up to three
        // recordings of 3 s, the tone must be in one of them.
        let mut got = Vec::new();
        for _ in 0..3 {
            let heard = lab
                .record_speaker(name, Duration::from_secs(3))
                .await
                .unwrap();
            let (hz, level) = analyse_windows(&heard);
            got.push(format!("{hz:.1} Hz, level {level:.3}"));
            if (hz - f64::from(tone)).abs() <= 5.0 && level > 0.01 {
                break;
            }
            assert!(got.len() < 3, "{name}'s speaker: {got:?} (want {tone} Hz)");
        }
    }
    assert!(caller.hang_up(&account, &call).await.unwrap());
    callee
        .wait_signal(0, Duration::from_secs(30), |s| is_state(s, None, "OVER"))
        .await
        .expect("the callee's call is over");
}
