//! Contacts and conversations with a real jamid (Debian 20230206), driven through
//! `jami run --data` (commands on stdin, events on stdout) inside the lab's namespace.
//!
//! - jamid sends a trust request, Pamoja accepts: jamid reports the contact confirmed, both
//!   hold the same one-to-one conversation, messages go both ways and both list the same
//!   history in the same order.
//! - Pamoja sends a trust request, jamid accepts: the same checks; then typing indicators and
//!   read receipts both ways, and none from Pamoja once they are switched off.
//! - A jamid whose history was rewritten on disk is refused: Pamoja keeps its own and says why.

mod client_lab;
mod common;

use client_lab::JamiRun;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pamoja_lab::{Arg, Lab, available};
use serde_json::json;

struct Setup {
    lab: Lab,
    jamid: pamoja_lab::Jamid,
    account: String,
    jamid_id: String,
    our_id: String,
    archive: PathBuf,
    data: PathBuf,
}

async fn setup(name: &str) -> Setup {
    let mut lab = Lab::new().unwrap();
    lab.start_dhtnode(4222).await.unwrap();
    let jamid = lab.start_jamid(name).await.unwrap();
    let account = jamid.add_account(4222, &[]).await.unwrap();
    jamid
        .wait_registered(&account, Duration::from_secs(120))
        .await
        .unwrap();
    let jamid_id = jamid.jami_id(&account).await.unwrap();
    let (archive, our_id) = common::new_archive(lab.dir(), "pamoja.gz");
    let data = lab.dir().join("pamoja-data");
    Setup {
        lab,
        jamid,
        account,
        jamid_id,
        our_id,
        archive,
        data,
    }
}

/// Pamoja asks jamid, jamid accepts, jamid's join reaches Pamoja; the conversation id.
async fn befriend(s: &Setup, p: &mut JamiRun) -> String {
    p.wait(60, |e| e["event"] == "ready").await;
    p.cmd(json!({"cmd": "settings", "display_name": "Pamoja User"}))
        .await;
    let mark = s.jamid.signals().len();
    let t = Instant::now();
    let r = p.cmd(json!({"cmd": "contact.add", "to": s.jamid_id})).await;
    let conv = r["conversation"].as_str().unwrap().to_owned();
    let req = s
        .jamid
        .wait_signal(mark, Duration::from_secs(120), |sig| {
            sig.name == "incomingTrustRequest" && sig.str(2) == s.our_id
        })
        .await
        .unwrap();
    assert_eq!(req.str(1), conv);
    assert!(
        matches!(req.args.get(3), Some(Arg::Bytes(b)) if String::from_utf8_lossy(b).contains("FN:Pamoja User")),
        "{req:?}"
    );
    assert!(
        s.jamid
            .accept_trust_request(&s.account, &s.our_id)
            .await
            .unwrap()
    );
    p.wait(120, |e| {
        e["event"] == "contact_added" && e["id"] == s.jamid_id.as_str() && e["confirmed"] == true
    })
    .await;
    eprintln!(
        "contact add -> confirmed (pamoja -> jamid): {:?}",
        t.elapsed()
    );
    s.jamid
        .wait_signal(mark, Duration::from_secs(120), |sig| {
            sig.name == "conversationReady" && sig.str(1) == conv
        })
        .await
        .unwrap();
    // jamid cloned from us and joined: its join commit reaches us.
    p.wait(120, |e| {
        e["event"] == "message" && e["type"] == "member" && e["author"] == s.jamid_id.as_str()
    })
    .await;
    conv
}

/// Whether jamid's conversation holds a text `body`, polled for up to `secs`.
async fn jamid_has(
    jamid: &pamoja_lab::Jamid,
    account: &str,
    conv: &str,
    body: &str,
    secs: u64,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Ok(ms) = jamid.load_conversation(account, conv, 100).await {
            if ms
                .iter()
                .any(|m| m.get("body").map(String::as_str) == Some(body))
            {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_members_catch_up_and_forged_history_is_refused() {
    if !available("offline_members_catch_up_and_forged_history_is_refused") {
        return;
    }
    let mut s = setup("offline").await;
    let mut p = JamiRun::start(&s.lab, &common::jami_bin(), &s.archive, &s.data);
    let conv = befriend(&s, &mut p).await;

    // jamid is stopped; Pamoja posts; jamid, started again on the same data, gets it.
    s.lab.stop_jamid(&s.jamid);
    let away = "posted while jamid was stopped";
    p.cmd(json!({"cmd": "conv.send", "conversation": conv, "body": away}))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.jamid = s.lab.restart_jamid("offline").await.unwrap();
    s.jamid
        .wait_registered(&s.account, Duration::from_secs(120))
        .await
        .unwrap();
    let t = Instant::now();
    assert!(
        jamid_has(&s.jamid, &s.account, &conv, away, 150).await,
        "jamid never got the message posted while it was stopped"
    );
    eprintln!("jamid back -> has the message: {:?}", t.elapsed());

    // Pamoja is stopped; jamid posts; Pamoja, started again on the same data, gets it.
    drop(p);
    let missed = "posted while pamoja was stopped";
    s.jamid
        .post_conversation_message(&s.account, &conv, missed, "", 0)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut p = JamiRun::start(&s.lab, &common::jami_bin(), &s.archive, &s.data);
    p.wait(60, |e| e["event"] == "ready").await;
    let t = Instant::now();
    let m = p
        .wait(150, |e| {
            e["event"] == "message" && e["body"]["body"] == missed
        })
        .await;
    eprintln!("pamoja back -> has the message: {:?}", t.elapsed());
    let original = m["id"].as_str().unwrap().to_owned();
    let contacts = p.cmd(json!({"cmd": "contact.list"})).await;
    assert_eq!(
        contacts["contacts"][0]["confirmed"], true,
        "kept across the restart"
    );

    // jamid's history is rewritten on disk (its last text, re-made unsigned with another
    // body); jamid then posts on top of it and tells us. We refuse, keep ours, and say why.
    {
        let dir = s
            .jamid
            .account_dir(&s.account)
            .join("conversations")
            .join(&conv);
        let repo = git2::Repository::open(&dir).unwrap();
        let head = repo.head().unwrap().peel_to_commit().unwrap();
        assert_eq!(head.id().to_string(), original);
        let parents: Vec<git2::Commit> = head.parents().collect();
        let refs: Vec<&git2::Commit> = parents.iter().collect();
        let forged = repo
            .commit(
                None,
                &head.author(),
                &head.committer(),
                &head.message().unwrap().replace(missed, "forged words"),
                &head.tree().unwrap(),
                &refs,
            )
            .unwrap();
        repo.reference("refs/heads/main", forged, true, "rewritten")
            .unwrap();
    }
    s.jamid
        .post_conversation_message(&s.account, &conv, "after the rewrite", "", 0)
        .await
        .unwrap();
    let is_refusal =
        |e: &serde_json::Value| e["event"] == "sync_refused" && e["conversation"] == conv.as_str();
    let refused = match p.try_wait(60, is_refusal).await {
        Some(e) => e,
        None => {
            // jamid's notice of its new commit did not reach us (under load it can keep
            // sending on the link of our previous process). A Pamoja that starts fetches
            // from the members' devices as its links come up: the rewritten history must be
            // refused then.
            eprintln!("no notice from jamid in 60 s; restarting Pamoja");
            drop(p);
            p = JamiRun::start(&s.lab, &common::jami_bin(), &s.archive, &s.data);
            p.wait(60, |e| e["event"] == "ready").await;
            p.wait(150, is_refusal).await
        }
    };
    eprintln!("refused: {}", refused["reason"]);
    assert!(!refused["reason"].as_str().unwrap().is_empty());
    let r = p
        .cmd(json!({"cmd": "conv.load", "conversation": conv, "last": 100}))
        .await;
    let bodies: Vec<&str> = r["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["body"]["body"].as_str())
        .collect();
    assert!(bodies.contains(&missed), "{bodies:?}");
    assert!(!bodies.contains(&"forged words"), "{bodies:?}");
    assert!(!bodies.contains(&"after the rewrite"), "{bodies:?}");
}

/// Posts from both sides and checks both list the same history, in the same order.
async fn talk(s: &Setup, p: &mut JamiRun, conv: &str) {
    let jamid = &s.jamid;
    jamid
        .post_conversation_message(&s.account, conv, "hello from jamid, ünïcode ✓", "", 0)
        .await
        .unwrap();
    let t = Instant::now();
    p.wait(60, |e| {
        e["event"] == "message"
            && e["conversation"] == conv
            && e["body"]["body"] == "hello from jamid, ünïcode ✓"
            && e["author"] == s.jamid_id.as_str()
    })
    .await;
    eprintln!("jamid -> pamoja, post -> shown: {:?}", t.elapsed());

    let mark = jamid.signals().len();
    let t = Instant::now();
    let sent = p
        .cmd(json!({"cmd": "conv.send", "conversation": conv, "body": "hello from pamoja"}))
        .await;
    let commit = sent["message"].as_str().unwrap().to_owned();
    let sig = jamid
        .wait_signal(mark, Duration::from_secs(60), |sig| {
            sig.name == "messageReceived"
                && sig.str(1) == conv
                && matches!(sig.args.get(2), Some(Arg::Map(m)) if m.get("id") == Some(&commit))
        })
        .await
        .unwrap();
    eprintln!("pamoja -> jamid, post -> shown: {:?}", t.elapsed());
    let Some(Arg::Map(m)) = sig.args.get(2) else {
        unreachable!()
    };
    assert_eq!(m.get("body").map(String::as_str), Some("hello from pamoja"));
    assert_eq!(m.get("author").map(String::as_str), Some(s.our_id.as_str()));

    // Both list the same commits in the same order (once both heads agree).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let theirs: Vec<String> = jamid
            .load_conversation(&s.account, conv, 100)
            .await
            .unwrap()
            .iter()
            .filter_map(|m| m.get("id").cloned())
            .collect();
        let r = p
            .cmd(json!({"cmd": "conv.load", "conversation": conv, "last": 100}))
            .await;
        let mut ours: Vec<String> = r["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect();
        ours.reverse();
        if ours == theirs {
            assert!(ours.contains(&commit));
            assert_eq!(
                ours.last().map(String::as_str),
                Some(conv),
                "initial commit last"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "histories differ:\n jamid {theirs:?}\n ours {ours:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jamid_asks_pamoja_accepts_and_they_talk() {
    if !available("jamid_asks_pamoja_accepts_and_they_talk") {
        return;
    }
    let s = setup("asks").await;
    let mut p = JamiRun::start(&s.lab, &common::jami_bin(), &s.archive, &s.data);
    p.wait(60, |e| e["event"] == "ready").await;

    let mark = s.jamid.signals().len();
    s.jamid
        .send_trust_request(
            &s.account,
            &s.our_id,
            b"BEGIN:VCARD\r\nVERSION:2.1\r\nFN:Jamid User\r\nEND:VCARD\r\n",
        )
        .await
        .unwrap();
    let req = p
        .wait(120, |e| {
            e["event"] == "trust_request" && e["from"] == s.jamid_id.as_str()
        })
        .await;
    assert_eq!(req["name"], "Jamid User");
    let conv = req["conversation"].as_str().unwrap().to_owned();
    let listed = p.cmd(json!({"cmd": "contact.requests"})).await;
    assert_eq!(listed["requests"][0]["from"], s.jamid_id.as_str());

    let r = p
        .cmd(json!({"cmd": "contact.accept", "from": s.jamid_id}))
        .await;
    assert_eq!(r["conversation"], conv.as_str());
    s.jamid
        .wait_signal(mark, Duration::from_secs(120), |sig| {
            sig.name == "contactAdded"
                && sig.str(1) == s.our_id
                && sig.args.get(2) == Some(&Arg::Bool(true))
        })
        .await
        .unwrap();
    p.wait(120, |e| {
        e["event"] == "conversation_ready" && e["conversation"] == conv.as_str()
    })
    .await;
    assert!(
        s.jamid
            .conversations(&s.account)
            .await
            .unwrap()
            .contains(&conv)
    );
    let list = p.cmd(json!({"cmd": "conv.list"})).await;
    assert!(
        list["conversations"]
            .as_array()
            .unwrap()
            .contains(&json!(conv))
    );
    let contacts = p.cmd(json!({"cmd": "contact.list"})).await;
    assert_eq!(contacts["contacts"][0]["id"], s.jamid_id.as_str());
    assert_eq!(contacts["contacts"][0]["confirmed"], true);
    // jamid lists us as a confirmed contact with the same conversation.
    let theirs = s.jamid.contacts(&s.account).await.unwrap();
    let us = theirs
        .iter()
        .find(|c| c.get("id") == Some(&s.our_id))
        .expect("jamid lists us");
    assert_eq!(
        us.get("confirmed").map(String::as_str),
        Some("true"),
        "{us:?}"
    );
    assert_eq!(us.get("conversationId"), Some(&conv), "{us:?}");

    talk(&s, &mut p, &conv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pamoja_asks_jamid_accepts_typing_and_receipts() {
    if !available("pamoja_asks_jamid_accepts_typing_and_receipts") {
        return;
    }
    let s = setup("accepts").await;
    let mut p = JamiRun::start(&s.lab, &common::jami_bin(), &s.archive, &s.data);
    let conv = befriend(&s, &mut p).await;
    talk(&s, &mut p, &conv).await;

    // Typing, both ways.
    let mark = s.jamid.signals().len();
    let r = p
        .cmd(json!({"cmd": "typing", "conversation": conv, "on": true}))
        .await;
    assert!(r["sent"].as_u64().unwrap() >= 1, "{r}");
    s.jamid
        .wait_signal(mark, Duration::from_secs(30), |sig| {
            sig.name == "composingStatusChanged"
                && sig.str(1) == conv
                && sig.str(2) == s.our_id
                && sig.int(3) == Some(1)
        })
        .await
        .unwrap();
    s.jamid
        .set_is_composing(&s.account, &conv, true)
        .await
        .unwrap();
    p.wait(30, |e| {
        e["event"] == "typing" && e["from"] == s.jamid_id.as_str() && e["on"] == true
    })
    .await;

    // Read receipts, both ways.
    let theirs = p
        .all
        .iter()
        .rev()
        .find(|e| {
            e["event"] == "message"
                && e["author"] == s.jamid_id.as_str()
                && e["type"] == "text/plain"
        })
        .and_then(|e| e["id"].as_str())
        .unwrap()
        .to_owned();
    let r = p
        .cmd(json!({"cmd": "displayed", "conversation": conv, "message": theirs}))
        .await;
    assert!(r["sent"].as_u64().unwrap() >= 1, "{r}");
    s.jamid
        .wait_signal(mark, Duration::from_secs(30), |sig| {
            sig.name == "accountMessageStatusChanged"
                && sig.str(1) == conv
                && sig.str(2) == s.our_id
                && sig.str(3) == theirs
                && sig.int(4) == Some(3)
        })
        .await
        .unwrap();
    let ours = p
        .all
        .iter()
        .rev()
        .find(|e| e["event"] == "reply" && e["cmd"] == "conv.send")
        .and_then(|e| e["message"].as_str())
        .unwrap()
        .to_owned();
    assert!(
        s.jamid
            .set_message_displayed(&s.account, &conv, &ours)
            .await
            .unwrap()
    );
    let d = p
        .wait(30, |e| {
            e["event"] == "displayed" && e["from"] == s.jamid_id.as_str()
        })
        .await;
    assert_eq!(d["message"], ours.as_str());

    // Switched off: nothing goes out.
    p.cmd(json!({"cmd": "settings", "typing": false, "read_receipts": false}))
        .await;
    let mark = s.jamid.signals().len();
    let r = p
        .cmd(json!({"cmd": "typing", "conversation": conv, "on": true}))
        .await;
    assert_eq!(r["sent"], 0);
    let r = p
        .cmd(json!({"cmd": "displayed", "conversation": conv, "message": theirs}))
        .await;
    assert_eq!(r["sent"], 0);
    // A message sent after them arrives: had they gone out, they would be before it.
    let r = p
        .cmd(json!({"cmd": "conv.send", "conversation": conv, "body": "after the switch"}))
        .await;
    let last = r["message"].as_str().unwrap().to_owned();
    s.jamid
        .wait_signal(mark, Duration::from_secs(60), |sig| {
            sig.name == "messageReceived"
                && matches!(sig.args.get(2), Some(Arg::Map(m)) if m.get("id") == Some(&last))
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let leaked: Vec<_> = s
        .jamid
        .signals()
        .into_iter()
        .skip(mark)
        .filter(|sig| {
            (sig.name == "composingStatusChanged" && sig.str(2) == s.our_id)
                || (sig.name == "accountMessageStatusChanged"
                    && sig.str(2) == s.our_id
                    && sig.int(4) == Some(3))
        })
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
    // Texts seen by Pamoja, in order.
    let texts = p.texts();
    assert!(
        texts
            .iter()
            .any(|(a, t)| a == &s.jamid_id && t.starts_with("hello from jamid"))
    );
}

/// Accepts the invitation jamid `j` got to `conv` and waits until it cloned and joined.
async fn join_group(j: &pamoja_lab::Jamid, account: &str, conv: &str, mark: usize) {
    j.wait_signal(mark, Duration::from_secs(120), |sig| {
        sig.name == "conversationRequestReceived" && sig.str(1) == conv
    })
    .await
    .unwrap();
    j.accept_conversation_request(account, conv).await.unwrap();
    j.wait_signal(mark, Duration::from_secs(120), |sig| {
        sig.name == "conversationReady" && sig.str(1) == conv
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jamids_never_online_together_talk_through_pamoja() {
    if !available("two_jamids_never_online_together_talk_through_pamoja") {
        return;
    }
    let mut s = setup("ann").await;
    let mut p = JamiRun::start(&s.lab, &common::jami_bin(), &s.archive, &s.data);
    p.wait(60, |e| e["event"] == "ready").await;
    let conv = p.cmd(json!({"cmd": "conv.create"})).await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();

    // Ann joins, then goes away.
    let mark = s.jamid.signals().len();
    p.cmd(json!({"cmd": "conv.invite", "conversation": conv, "to": s.jamid_id}))
        .await;
    join_group(&s.jamid, &s.account, &conv, mark).await;
    let ann_id = s.jamid_id.clone();
    p.wait(120, |e| {
        e["event"] == "message" && e["type"] == "member" && e["author"] == ann_id.as_str()
    })
    .await;
    s.lab.stop_jamid(&s.jamid);

    // Bob joins while Ann is away, posts, and goes away.
    let bob = s.lab.start_jamid("bob").await.unwrap();
    let bob_account = bob.add_account(4222, &[]).await.unwrap();
    bob.wait_registered(&bob_account, Duration::from_secs(120))
        .await
        .unwrap();
    let bob_id = bob.jami_id(&bob_account).await.unwrap();
    let mark = bob.signals().len();
    p.cmd(json!({"cmd": "conv.invite", "conversation": conv, "to": bob_id}))
        .await;
    join_group(&bob, &bob_account, &conv, mark).await;
    let from_bob = "from Bob, while Ann is away";
    bob.post_conversation_message(&bob_account, &conv, from_bob, "", 0)
        .await
        .unwrap();
    p.wait(120, |e| {
        e["event"] == "message" && e["body"]["body"] == from_bob
    })
    .await;
    s.lab.stop_jamid(&bob);
    drop(bob);

    // Ann comes back: Bob's message reaches her through Pamoja. She answers and goes away.
    s.jamid = s.lab.restart_jamid("ann").await.unwrap();
    s.jamid
        .wait_registered(&s.account, Duration::from_secs(120))
        .await
        .unwrap();
    let t = Instant::now();
    assert!(
        jamid_has(&s.jamid, &s.account, &conv, from_bob, 150).await,
        "Ann never got Bob's message"
    );
    eprintln!("Ann back -> has Bob's message: {:?}", t.elapsed());
    let from_ann = "from Ann, while Bob is away";
    s.jamid
        .post_conversation_message(&s.account, &conv, from_ann, "", 0)
        .await
        .unwrap();
    p.wait(120, |e| {
        e["event"] == "message" && e["body"]["body"] == from_ann
    })
    .await;
    s.lab.stop_jamid(&s.jamid);

    // Bob comes back: Ann's message reaches him through Pamoja.
    let bob = s.lab.restart_jamid("bob").await.unwrap();
    bob.wait_registered(&bob_account, Duration::from_secs(120))
        .await
        .unwrap();
    let t = Instant::now();
    assert!(
        jamid_has(&bob, &bob_account, &conv, from_ann, 150).await,
        "Bob never got Ann's message"
    );
    eprintln!("Bob back -> has Ann's message: {:?}", t.elapsed());
}
