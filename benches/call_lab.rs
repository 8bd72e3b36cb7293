//! Audio and video calls side by side with jamid (Debian 20230206) in one lab run.
//!
//! - Call setup: placing the call -> the caller reports it current (media flowing after
//!   ICE), to the same jamid that answers by itself: jamid -> jamid (`placeCall` to the
//!   caller's `CURRENT`) and Pamoja -> jamid (`jami run --data`: `call` to its
//!   `call_state` `current`); medians of `ROUNDS` calls each.
//! - CPU per active audio call: the caller process's CPU time (user + system, from
//!   /proc/PID/stat) over `HOLD` seconds of a call in progress, as a share of one core:
//!   jamid's (its audio goes through PulseAudio, resampling and its audio processor) and
//!   `jami run`'s (a synthetic tone, Opus both ways, SRTP, RTCP); medians over the calls.
//!
//! - CPU per active video call: the same for calls with video, jamid -> jamid and
//!   Pamoja -> jamid, both callers sending the same raw video file (a moving test pattern,
//!   320x240 at 15 frames a second, YUV4MPEG2) as VP8: jamid through its `file://` video
//!   source with only Opus and VP8 active on the caller's account, `jami run` through its
//!   `send_video` field. The callee, without a camera in the lab, sends no video back and
//!   decodes the caller's (checked through its `decodingStarted` signal).
//!
//! Every jamid has a PulseAudio server of its own whose microphone plays a tone, so both
//! ends really send audio. Results are printed and written to
//! `target/criterion/call_lab.json`. Needs root, dhtnode, jamid and PulseAudio.
//!
//! `cargo bench --bench call_lab`

#[path = "../tests/client_lab/mod.rs"]
mod client_lab;
mod common;
#[path = "../tests/common/mod.rs"]
mod tcommon;

use std::time::{Duration, Instant};

use client_lab::JamiRun;
use pamoja_lab::{Jamid, Lab};
use serde_json::json;

const ROUNDS: usize = 5;
const HOLD: Duration = Duration::from_secs(10);
const LONG: Duration = Duration::from_secs(120);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// CPU ticks (user + system) of a process so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process stat");
    // Fields after the command (in parentheses, which may hold spaces).
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn ticks_per_second() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100.0)
}

/// Percent of one core `pid` used over `HOLD`.
async fn cpu_share(pid: u32) -> f64 {
    let before = cpu_ticks(pid);
    tokio::time::sleep(HOLD).await;
    let ticks = cpu_ticks(pid) - before;
    ticks as f64 / ticks_per_second() / HOLD.as_secs_f64() * 100.0
}

async fn jamid_account(
    lab: &mut Lab,
    name: &str,
    tone: u32,
    extra: &[(&str, &str)],
) -> (Jamid, String, String) {
    lab.start_pulseaudio(name, tone).await.expect("pulseaudio");
    let j = lab.start_jamid(name).await.expect("jamid");
    j.set_noise_suppression(false)
        .await
        .expect("noise suppression off");
    let a = j.add_account(4222, extra).await.expect("account");
    j.wait_registered(&a, LONG).await.expect("registered");
    let id = j.jami_id(&a).await.expect("id");
    (j, a, id)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Some(why) = pamoja_lab::missing_prerequisites() {
        eprintln!("call_lab skipped: {why}");
        return;
    }
    let jami = tcommon::jami_bin();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut lab = Lab::new().expect("lab");
        lab.start_dhtnode(4222).await.expect("dhtnode");
        let callee = jamid_account(&mut lab, "callee", 660, &[("Account.autoAnswer", "true")]).await;
        let caller = jamid_account(&mut lab, "caller", 880, &[]).await;
        // The pictures both callers send in the video rounds: 10 s, looped.
        let video_file = lab.dir().join("pattern.y4m");
        let frames: Vec<_> = (0..150)
            .map(|n| pamoja::media::video::test_pattern(320, 240, n))
            .collect();
        let header = pamoja::media::y4m::Y4mHeader {
            width: 320,
            height: 240,
            rate: (15, 1),
        };
        pamoja::media::y4m::write_file(&video_file, header, &frames).expect("video file");
        // The caller's video is VP8, as ours (jamid would take H.264 first).
        caller
            .0
            .set_codecs(&caller.1, &["opus", "VP8"])
            .await
            .expect("codecs");

        // jamid -> jamid.
        let (mut setup_jj, mut cpu_jj) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let mark = caller.0.signals().len();
            let t = Instant::now();
            let call = caller.0.place_call(&caller.1, &callee.2).await.expect("placeCall");
            caller
                .0
                .wait_signal(mark, LONG, |s| {
                    s.name == "callStateChanged" && s.str(1) == call && s.str(2) == "CURRENT"
                })
                .await
                .expect("jamid's call is current");
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let cpu = cpu_share(caller.0.pid()).await;
            eprintln!("jamid -> jamid #{round}: current after {ms:.0} ms, caller CPU {cpu:.1} %");
            setup_jj.push(ms);
            cpu_jj.push(cpu);
            caller.0.hang_up(&caller.1, &call).await.expect("hangUp");
            caller
                .0
                .wait_signal(mark, LONG, |s| {
                    s.name == "callStateChanged" && s.str(1) == call && s.str(2) == "OVER"
                })
                .await
                .expect("over");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }

        // jamid -> jamid with video from the file. A round whose video the callee never
        // decodes (jamid now and then does not start its decoder) is not counted.
        let mut cpu_jj_video = Vec::new();
        for round in 0..2 * ROUNDS {
            if cpu_jj_video.len() == ROUNDS {
                break;
            }
            let (mark, cmark) = (caller.0.signals().len(), callee.0.signals().len());
            let call = caller
                .0
                .place_video_call(&caller.1, &callee.2, &video_file)
                .await
                .expect("placeCallWithMedia");
            caller
                .0
                .wait_signal(mark, LONG, |s| {
                    s.name == "callStateChanged" && s.str(1) == call && s.str(2) == "CURRENT"
                })
                .await
                .expect("jamid's video call is current");
            let decoding = callee
                .0
                .wait_signal(cmark, Duration::from_secs(20), |s| {
                    s.name == "decodingStarted" && s.str(0) != "local"
                })
                .await;
            if decoding.is_ok() {
                let cpu = cpu_share(caller.0.pid()).await;
                eprintln!("jamid -> jamid with video #{round}: caller CPU {cpu:.1} %");
                cpu_jj_video.push(cpu);
            } else {
                eprintln!("jamid -> jamid with video #{round}: the callee decoded nothing; not counted");
            }
            caller.0.hang_up(&caller.1, &call).await.expect("hangUp");
            caller
                .0
                .wait_signal(mark, LONG, |s| {
                    s.name == "callStateChanged" && s.str(1) == call && s.str(2) == "OVER"
                })
                .await
                .expect("over");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }

        // Pamoja -> jamid.
        let (archive, _) = tcommon::new_archive(lab.dir(), "p.gz");
        let mut p = JamiRun::start(&lab, &jami, &archive, &lab.dir().join("p"));
        p.wait(60, |e| e["event"] == "ready").await;
        let (mut setup_pj, mut cpu_pj) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let t = Instant::now();
            let r = p
                .cmd(json!({"cmd": "call", "to": callee.2, "video": false, "tone": 440.0}))
                .await;
            let call = r["call"].as_str().unwrap().to_owned();
            p.wait(120, |e| {
                e["event"] == "call_state" && e["call"] == call.as_str() && e["state"] == "current"
            })
            .await;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let cpu = cpu_share(p.pid()).await;
            eprintln!("Pamoja -> jamid #{round}: current after {ms:.0} ms, caller CPU {cpu:.1} %");
            setup_pj.push(ms);
            cpu_pj.push(cpu);
            p.cmd(json!({"cmd": "hangup", "call": call})).await;
            let stats = p
                .wait(60, |e| e["event"] == "call_stats" && e["call"] == call.as_str())
                .await;
            assert!(
                stats["rx_audio_frames_decoded"].as_u64().unwrap_or(0) > 0,
                "jamid's audio was decoded: {stats}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }

        // Pamoja -> jamid with video from the same file (jamid, with no camera here, sends
        // none and decodes ours).
        let mut cpu_pj_video = Vec::new();
        for round in 0..ROUNDS {
            let cmark = callee.0.signals().len();
            let r = p
                .cmd(json!({"cmd": "call", "to": callee.2, "tone": 440.0,
                    "send_video": video_file.to_str().unwrap()}))
                .await;
            let call = r["call"].as_str().unwrap().to_owned();
            p.wait(120, |e| {
                e["event"] == "call_state" && e["call"] == call.as_str() && e["state"] == "current"
            })
            .await;
            callee
                .0
                .wait_signal(cmark, LONG, |s| s.name == "decodingStarted" && s.str(0) != "local")
                .await
                .expect("the callee decodes our video");
            let cpu = cpu_share(p.pid()).await;
            eprintln!("Pamoja -> jamid with video #{round}: caller CPU {cpu:.1} %");
            cpu_pj_video.push(cpu);
            p.cmd(json!({"cmd": "hangup", "call": call})).await;
            let stats = p
                .wait(60, |e| e["event"] == "call_stats" && e["call"] == call.as_str())
                .await;
            assert!(
                stats["video"]["tx_frames"].as_u64().unwrap_or(0) > 0,
                "video was sent: {stats}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert!(!cpu_jj_video.is_empty(), "no jamid -> jamid video call was decoded");
        let (cjv, cpv) = (median(cpu_jj_video), median(cpu_pj_video));
        println!(
            "caller CPU per active video call (median): jamid {cjv:.1} % of a core, Pamoja {cpv:.1} % ({:.2}x)",
            cpv / cjv
        );

        let (sjj, spj, cjj, cpj) = (
            median(setup_jj),
            median(setup_pj),
            median(cpu_jj),
            median(cpu_pj),
        );
        println!(
            "call setup -> current (median of {ROUNDS}): jamid->jamid {sjj:.0} ms, Pamoja->jamid {spj:.0} ms ({:.2}x)",
            spj / sjj
        );
        println!(
            "caller CPU per active audio call (median): jamid {cjj:.1} % of a core, Pamoja {cpj:.1} % ({:.2}x)",
            cpj / cjj
        );
        let out = json!({
            "rounds": ROUNDS,
            "hold_s": HOLD.as_secs(),
            "setup_ms": {"jamid_to_jamid": sjj, "pamoja_to_jamid": spj},
            "caller_cpu_percent": {"jamid": cjj, "pamoja": cpj, "jamid_video": cjv, "pamoja_video": cpv},
        });
        std::fs::create_dir_all(common::results_dir()).expect("results dir");
        std::fs::write(
            common::results_dir().join("call_lab.json"),
            serde_json::to_vec_pretty(&out).unwrap(),
        )
        .expect("write results");
    });
}
