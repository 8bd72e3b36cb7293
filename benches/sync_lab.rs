//! The first sync of a 10,000-message conversation from jamid (Debian 20230206), to Pamoja
//! and, side by side in the same lab run, to another jamid.
//!
//! jamid `j` starts a group conversation and invites two Pamoja accounts. The first joins,
//! stops (j is restarted then, with its data), and has 10,000 text messages written into its repository as signed commits
//! (pamoja-swarm, its own device key); restarted, it posts one more, and `j` fetches and
//! validates all 10,001 from it. With the writer stopped for good:
//!
//! - Pamoja: a fresh `jami run` process of the second account answers its invitation
//!   (`conv.accept`): clone from `j`, validate, join, until `conversation_ready`.
//! - jamid: jamid `k`, invited by `j` with the others at the start, accepts
//!   (`acceptConversationRequest`), until its `conversationReady`.
//!
//! For each, the time and the peak resident memory of the receiving process (`VmHWM`), with
//! its resident memory just before (`VmRSS`). Both are checked to hold all 10,001 messages.
//! Results are printed and written to `target/criterion/sync_lab.json`. Needs root, dhtnode
//! and jamid; takes several minutes (jamid's validation of 10,000 commits dominates).
//!
//! `cargo bench --bench sync_lab`

#[path = "../tests/client_lab/mod.rs"]
mod client_lab;
mod common;
#[path = "../tests/common/mod.rs"]
mod tcommon;

use std::time::{Duration, Instant};

use client_lab::JamiRun;
use pamoja::identity::account::Account;
use pamoja::identity::archive::Archive;
use pamoja::swarm::{Conversation, Signer};
use pamoja_lab::{Arg, Jamid, Lab};
use serde_json::json;

/// Messages written before the sync (one more is posted live).
const MESSAGES: usize = 10_000;
const LONG: Duration = Duration::from_secs(1800);

/// A `/proc/PID/status` field in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn is_text(s: &pamoja_lab::Signal, text: &str) -> bool {
    s.name == "messageReceived"
        && matches!(s.args.get(2), Some(Arg::Map(m)) if m.get("body").map(String::as_str) == Some(text))
}

async fn jamid_account(lab: &mut Lab, name: &str) -> (Jamid, String, String) {
    let j = lab.start_jamid(name).await.expect("jamid");
    let a = j.add_account(4222, &[]).await.expect("account");
    j.wait_registered(&a, Duration::from_secs(180))
        .await
        .expect("registered");
    let id = j.jami_id(&a).await.expect("id");
    (j, a, id)
}

/// Text messages jamid holds in `conv` (loaded back, newest first), and the newest body.
async fn jamid_texts(j: &(Jamid, String, String), conv: &str) -> (usize, String) {
    let msgs =
        j.0.load_conversation(&j.1, conv, (MESSAGES + 100) as u32)
            .await
            .expect("loadConversationMessages");
    let texts: Vec<_> = msgs
        .iter()
        .filter(|m| m.get("type").map(String::as_str) == Some("text/plain"))
        .collect();
    let last = texts
        .first()
        .and_then(|m| m.get("body"))
        .cloned()
        .unwrap_or_default();
    (texts.len(), last)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Some(why) = pamoja_lab::missing_prerequisites() {
        eprintln!("sync_lab skipped: {why}");
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
        let mut j = jamid_account(&mut lab, "j").await;
        let k = jamid_account(&mut lab, "k").await;
        let (archive1, id1) = tcommon::new_archive(lab.dir(), "writer.gz");
        let (archive2, id2) = tcommon::new_archive(lab.dir(), "reader.gz");
        let (data1, data2) = (lab.dir().join("writer"), lab.dir().join("reader"));

        // j's group, with both Pamoja accounts invited; the writer joins.
        let conv = j.0.start_conversation(&j.1).await.expect("startConversation");
        let mut p1 = JamiRun::start(&lab, &jami, &archive1, &data1);
        let mut p2 = JamiRun::start(&lab, &jami, &archive2, &data2);
        p1.wait(60, |e| e["event"] == "ready").await;
        p2.wait(60, |e| e["event"] == "ready").await;
        let m = j.0.signals().len();
        j.0.add_conversation_member(&j.1, &conv, &id1).await.expect("invite writer");
        j.0.add_conversation_member(&j.1, &conv, &id2).await.expect("invite reader");
        let mk = k.0.signals().len();
        j.0.add_conversation_member(&j.1, &conv, &k.2).await.expect("invite k");
        k.0.wait_signal(mk, Duration::from_secs(180), |s| {
            s.name == "conversationRequestReceived" && s.str(1) == conv
        })
        .await
        .expect("k's invitation");
        p1.wait(180, |e| e["event"] == "conversation_request" && e["conversation"] == conv.as_str())
            .await;
        p2.wait(180, |e| e["event"] == "conversation_request" && e["conversation"] == conv.as_str())
            .await;
        p1.cmd(json!({"cmd": "conv.accept", "conversation": conv})).await;
        p1.wait(180, |e| e["event"] == "conversation_ready" && e["conversation"] == conv.as_str())
            .await;
        j.0.wait_signal(m, Duration::from_secs(180), |s| {
            s.name == "messageReceived"
                && matches!(s.args.get(2), Some(Arg::Map(mm))
                    if mm.get("type").map(String::as_str) == Some("member")
                        && mm.get("uri") == Some(&id1)
                        && mm.get("action").map(String::as_str) == Some("join"))
        })
        .await
        .expect("the writer's join reaches j");
        drop(p1);
        drop(p2);
        // jamid 20230206 can keep a fetch that a vanishing peer cut as "already fetching" and
        // the dead link as "already connected" for good; a restarted j (same data) starts
        // clean, as it would after any restart.
        lab.stop_jamid(&j.0);
        j.0 = lab.restart_jamid("j").await.expect("restart j");
        j.0.wait_registered(&j.1, Duration::from_secs(180))
            .await
            .expect("j registered again");

        // 10,000 signed commits, written as the writer's device.
        let account = Account::from_archive(Archive::read_file(&archive1, None).expect("archive"))
            .expect("account");
        let signer = Signer::of(&account, "pamoja").expect("signer");
        let c = Conversation::open(&data1.join("conversations").join(&conv)).expect("repository");
        let t = Instant::now();
        for i in 0..MESSAGES {
            c.post(&signer, &format!("message {i} of the long conversation"))
                .expect("commit");
            if (i + 1) % 1000 == 0 {
                eprintln!("written {} commits ({:.1} s)", i + 1, t.elapsed().as_secs_f64());
            }
        }
        let write_s = t.elapsed().as_secs_f64();
        drop(c);

        // j fetches and validates them from the writer.
        let mut p1 = JamiRun::start(&lab, &jami, &archive1, &data1);
        p1.wait(60, |e| e["event"] == "ready").await;
        let last = "the last message, posted live";
        let m = j.0.signals().len();
        let t = Instant::now();
        p1.cmd(json!({"cmd": "conv.send", "conversation": conv, "body": last})).await;
        j.0.wait_signal(m, LONG, |s| is_text(s, last))
            .await
            .expect("j fetched the long history");
        let jamid_fetch_s = t.elapsed().as_secs_f64();
        eprintln!("j fetched {MESSAGES} + 1 messages from Pamoja in {jamid_fetch_s:.1} s");
        drop(p1);
        let (n, newest) = jamid_texts(&j, &conv).await;
        assert_eq!((n, newest.as_str()), (MESSAGES + 1, last), "j's copy");

        // First sync to Pamoja: a fresh process answers its invitation.
        let mut p2 = JamiRun::start(&lab, &jami, &archive2, &data2);
        p2.wait(60, |e| e["event"] == "ready").await;
        let rss_p = status_kib(p2.pid(), "VmRSS");
        let t = Instant::now();
        p2.cmd(json!({"cmd": "conv.accept", "conversation": conv})).await;
        p2.wait(LONG.as_secs(), |e| {
            e["event"] == "conversation_ready" && e["conversation"] == conv.as_str()
        })
        .await;
        let pamoja_s = t.elapsed().as_secs_f64();
        let hwm_p = status_kib(p2.pid(), "VmHWM");
        let progress = p2.all.iter().filter(|e| e["event"] == "progress").count();
        let loaded = p2
            .cmd(json!({"cmd": "conv.load", "conversation": conv, "last": MESSAGES + 100}))
            .await;
        let texts: Vec<_> = loaded["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter(|m| m["type"] == "text/plain")
            .collect();
        assert_eq!(texts.len(), MESSAGES + 1, "Pamoja's copy");
        assert_eq!(texts.last().unwrap()["body"]["body"], last);
        eprintln!(
            "Pamoja: first sync {pamoja_s:.1} s, RSS {:.1} -> peak {:.1} MiB, {progress} progress events",
            mib(rss_p),
            mib(hwm_p)
        );
        drop(p2);

        // First sync to another jamid (invited with the others at the start), from the same j.
        let mk = k.0.signals().len();
        let rss_j = status_kib(k.0.pid(), "VmRSS");
        let t = Instant::now();
        k.0.accept_conversation_request(&k.1, &conv).await.expect("accept");
        k.0.wait_signal(mk, LONG, |s| s.name == "conversationReady" && s.str(1) == conv)
            .await
            .expect("k's conversationReady");
        let jamid_s = t.elapsed().as_secs_f64();
        let hwm_j = status_kib(k.0.pid(), "VmHWM");
        let (n, newest) = jamid_texts(&k, &conv).await;
        assert_eq!((n, newest.as_str()), (MESSAGES + 1, last), "k's copy");
        eprintln!(
            "jamid: first sync {jamid_s:.1} s, RSS {:.1} -> peak {:.1} MiB",
            mib(rss_j),
            mib(hwm_j)
        );

        println!(
            "first sync of {} messages from jamid: Pamoja {pamoja_s:.1} s ({:.2}x), jamid {jamid_s:.1} s; peak RSS Pamoja {:.1} MiB (from {:.1}), jamid {:.1} MiB (from {:.1})",
            MESSAGES + 1,
            pamoja_s / jamid_s,
            mib(hwm_p),
            mib(rss_p),
            mib(hwm_j),
            mib(rss_j)
        );
        println!("writing {MESSAGES} signed commits (Pamoja): {write_s:.1} s; jamid fetching them from Pamoja: {jamid_fetch_s:.1} s");
        let out = json!({
            "messages": MESSAGES + 1,
            "first_sync_s": {"pamoja": pamoja_s, "jamid": jamid_s},
            "rss_before_mib": {"pamoja": mib(rss_p), "jamid": mib(rss_j)},
            "peak_rss_mib": {"pamoja": mib(hwm_p), "jamid": mib(hwm_j)},
            "progress_events": progress,
            "pamoja_write_s": write_s,
            "jamid_fetch_from_pamoja_s": jamid_fetch_s,
        });
        std::fs::create_dir_all(common::results_dir()).expect("results dir");
        std::fs::write(
            common::results_dir().join("sync_lab.json"),
            serde_json::to_vec_pretty(&out).unwrap(),
        )
        .expect("write results");
    });
}
