//! Contacts and messages side by side with jamid (Debian 20230206) in one lab run.
//!
//! - Contact add -> confirmed: jamid -> jamid (`addContact` and `sendTrustRequest`, the peer's
//!   `acceptTrustRequest`, until the asker's `contactAdded` says confirmed), Pamoja -> jamid,
//!   jamid -> Pamoja and Pamoja -> Pamoja (`jami run --data` on both sides: `contact.add`,
//!   `contact.accept`, until the asker's `contact_added` with `confirmed`). One pair each,
//!   so one time each.
//! - Message latency post -> shown in a one-to-one conversation: jamid -> jamid
//!   (`sendMessage` to the other's `messageReceived`), Pamoja -> jamid (`conv.send` to jamid's
//!   `messageReceived`) and jamid -> Pamoja (`sendMessage` to the `message` event); medians
//!   of `ROUNDS` messages each.
//!
//! Results are printed and written to `target/criterion/client_lab.json`. Needs root,
//! dhtnode and jamid.
//!
//! `cargo bench --bench client_lab`

#[path = "../tests/client_lab/mod.rs"]
mod client_lab;
mod common;
#[path = "../tests/common/mod.rs"]
mod tcommon;

use std::time::{Duration, Instant};

use client_lab::JamiRun;
use pamoja_lab::{Arg, Jamid, Lab};
use serde_json::json;

const ROUNDS: usize = 11;
const LONG: Duration = Duration::from_secs(180);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn jamid_account(lab: &mut Lab, name: &str) -> (Jamid, String, String) {
    let j = lab.start_jamid(name).await.expect("jamid");
    let a = j.add_account(4222, &[]).await.expect("account");
    j.wait_registered(&a, LONG).await.expect("registered");
    let id = j.jami_id(&a).await.expect("id");
    (j, a, id)
}

/// `asker` adds `peer` (jamid both); ms to confirmation, and the conversation.
async fn jamid_to_jamid(a: &(Jamid, String, String), b: &(Jamid, String, String)) -> (f64, String) {
    let (ma, mb) = (a.0.signals().len(), b.0.signals().len());
    let t = Instant::now();
    // As Jami's clients do: addContact, then sendTrustRequest.
    a.0.add_contact(&a.1, &b.2).await.expect("addContact");
    a.0.send_trust_request(&a.1, &b.2, b"")
        .await
        .expect("sendTrustRequest");
    b.0.wait_signal(mb, LONG, |s| {
        s.name == "incomingTrustRequest" && s.str(2) == a.2
    })
    .await
    .expect("request");
    b.0.accept_trust_request(&b.1, &a.2).await.expect("accept");
    a.0.wait_signal(ma, LONG, |s| {
        s.name == "contactAdded" && s.str(1) == b.2 && s.args.get(2) == Some(&Arg::Bool(true))
    })
    .await
    .expect("confirmed");
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let ready =
        b.0.wait_signal(mb, LONG, |s| s.name == "conversationReady")
            .await
            .expect("conversation on the accepting side");
    (ms, ready.str(1).to_owned())
}

/// One text from `from` until `to` reports it; ms.
async fn jamid_message(
    from: &(Jamid, String, String),
    to: &(Jamid, String, String),
    conv: &str,
    text: &str,
) -> f64 {
    let m = to.0.signals().len();
    let t = Instant::now();
    from.0
        .send_conversation_message(&from.1, conv, text, "", 0)
        .await
        .expect("sendMessage");
    to.0.wait_signal(m, LONG, |s| {
        s.name == "messageReceived"
            && matches!(s.args.get(2), Some(Arg::Map(mm)) if mm.get("body").map(String::as_str) == Some(text))
    })
    .await
    .expect("messageReceived");
    t.elapsed().as_secs_f64() * 1e3
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Some(why) = pamoja_lab::missing_prerequisites() {
        eprintln!("client_lab skipped: {why}");
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
        let ja = jamid_account(&mut lab, "a").await;
        let jb = jamid_account(&mut lab, "b").await;
        let jc = jamid_account(&mut lab, "c").await;

        // jamid -> jamid.
        let (add_jj, conv_ab) = jamid_to_jamid(&ja, &jb).await;
        eprintln!("contact add -> confirmed, jamid -> jamid: {add_jj:.0} ms");
        // Let both ends settle (join fetched) before timing messages.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut jj = Vec::new();
        for i in 0..ROUNDS {
            jj.push(jamid_message(&ja, &jb, &conv_ab, &format!("jj {i}")).await);
        }

        // Pamoja -> jamid.
        let (archive, our_id) = tcommon::new_archive(lab.dir(), "p1.gz");
        let mut p = JamiRun::start(&lab, &jami, &archive, &lab.dir().join("p1"));
        p.wait(60, |e| e["event"] == "ready").await;
        let m = ja.0.signals().len();
        let t = Instant::now();
        let conv_pa = p.cmd(json!({"cmd": "contact.add", "to": ja.2})).await["conversation"]
            .as_str()
            .unwrap()
            .to_owned();
        ja.0.wait_signal(m, LONG, |s| s.name == "incomingTrustRequest" && s.str(2) == our_id)
            .await
            .expect("request");
        ja.0.accept_trust_request(&ja.1, &our_id).await.expect("accept");
        p.wait(180, |e| e["event"] == "contact_added" && e["confirmed"] == true)
            .await;
        let add_pj = t.elapsed().as_secs_f64() * 1e3;
        eprintln!("contact add -> confirmed, Pamoja -> jamid: {add_pj:.0} ms");
        p.wait(180, |e| e["event"] == "message" && e["type"] == "member" && e["author"] == ja.2.as_str())
            .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (mut pj, mut jp) = (Vec::new(), Vec::new());
        for i in 0..ROUNDS {
            let text = format!("pj {i}");
            let m = ja.0.signals().len();
            let t = Instant::now();
            p.cmd(json!({"cmd": "conv.send", "conversation": conv_pa, "body": text}))
                .await;
            ja.0.wait_signal(m, LONG, |s| {
                s.name == "messageReceived"
                    && matches!(s.args.get(2), Some(Arg::Map(mm)) if mm.get("body") == Some(&text))
            })
            .await
            .expect("messageReceived");
            pj.push(t.elapsed().as_secs_f64() * 1e3);
            let text = format!("jp {i}");
            let t = Instant::now();
            ja.0.send_conversation_message(&ja.1, &conv_pa, &text, "", 0)
                .await
                .expect("sendMessage");
            p.wait(180, |e| e["event"] == "message" && e["body"]["body"] == text.as_str())
                .await;
            jp.push(t.elapsed().as_secs_f64() * 1e3);
        }

        // jamid -> Pamoja (another jamid, so both ends are new to each other).
        let m = jc.0.signals().len();
        let t = Instant::now();
        jc.0.add_contact(&jc.1, &our_id).await.expect("addContact");
        jc.0.send_trust_request(&jc.1, &our_id, b"").await.expect("sendTrustRequest");
        p.wait(180, |e| e["event"] == "trust_request" && e["from"] == jc.2.as_str())
            .await;
        p.cmd(json!({"cmd": "contact.accept", "from": jc.2})).await;
        jc.0.wait_signal(m, LONG, |s| {
            s.name == "contactAdded" && s.str(1) == our_id && s.args.get(2) == Some(&Arg::Bool(true))
        })
        .await
        .expect("confirmed");
        let add_jp = t.elapsed().as_secs_f64() * 1e3;
        eprintln!("contact add -> confirmed, jamid -> Pamoja: {add_jp:.0} ms");

        // Pamoja -> Pamoja.
        let (archive2, id2) = tcommon::new_archive(lab.dir(), "p2.gz");
        let mut q = JamiRun::start(&lab, &jami, &archive2, &lab.dir().join("p2"));
        q.wait(60, |e| e["event"] == "ready").await;
        let t = Instant::now();
        p.cmd(json!({"cmd": "contact.add", "to": id2})).await;
        q.wait(180, |e| e["event"] == "trust_request").await;
        q.cmd(json!({"cmd": "contact.accept", "from": our_id})).await;
        p.wait(180, |e| {
            e["event"] == "contact_added" && e["id"] == id2.as_str() && e["confirmed"] == true
        })
        .await;
        let add_pp = t.elapsed().as_secs_f64() * 1e3;
        eprintln!("contact add -> confirmed, Pamoja -> Pamoja: {add_pp:.0} ms");

        let (jj, pj, jp) = (median(jj), median(pj), median(jp));
        println!("message post -> shown (median of {ROUNDS}): jamid->jamid {jj:.1} ms, Pamoja->jamid {pj:.1} ms ({:.2}x), jamid->Pamoja {jp:.1} ms ({:.2}x)", pj / jj, jp / jj);
        println!("contact add -> confirmed: jamid->jamid {add_jj:.0} ms, Pamoja->jamid {add_pj:.0} ms ({:.2}x), jamid->Pamoja {add_jp:.0} ms ({:.2}x), Pamoja->Pamoja {add_pp:.0} ms", add_pj / add_jj, add_jp / add_jj);
        let out = json!({
            "rounds": ROUNDS,
            "message_ms": {"jamid_to_jamid": jj, "pamoja_to_jamid": pj, "jamid_to_pamoja": jp},
            "contact_confirmed_ms": {"jamid_to_jamid": add_jj, "pamoja_to_jamid": add_pj,
                "jamid_to_pamoja": add_jp, "pamoja_to_pamoja": add_pp},
        });
        std::fs::create_dir_all(common::results_dir()).expect("results dir");
        std::fs::write(
            common::results_dir().join("client_lab.json"),
            serde_json::to_vec_pretty(&out).unwrap(),
        )
        .expect("write results");
    });
}
