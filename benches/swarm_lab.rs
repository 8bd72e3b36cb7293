//! Conversations side by side with jamid (Debian 20230206) in the lab, on the same
//! repository: jamid posts messages over D-Bus (`sendMessage`, timed to its
//! `messageReceived` signal) while we post the same number into a conversation of our own;
//! then the last 50 messages are loaded from jamid's repository by jamid
//! (`loadConversationMessages` to its `conversationLoaded` signal) and by us (opening the
//! repository in jamid's data directory), and that history is validated by us. Last, each
//! takes in the other's history over a device link: we clone jamid's conversation (fetch,
//! validation, checkout) and post as many messages into it; jamid, told of them, fetches
//! them from us, validates and merges them (timed from our notice to its signal for our last
//! message). Medians are
//! printed and written to `target/criterion/swarm_lab.json`. Needs root, dhtnode and jamid.
//!
//! `cargo bench --bench swarm_lab`

#[path = "../tests/channel_lab/mod.rs"]
mod channel_lab;
mod common;

use std::time::{Duration, Instant};

use pamoja::identity::Account;
use pamoja::swarm::{Conversation, Mode, Signer};
use pamoja_lab::Lab;

const POSTS: usize = 500;

fn posts() -> usize {
    std::env::var("SWARM_LAB_POSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(POSTS)
}
const LOADS: usize = 21;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Some(why) = pamoja_lab::missing_prerequisites() {
        eprintln!("swarm_lab skipped: {why}");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let n_posts = posts();
    rt.block_on(async {
        let mut lab = Lab::new().expect("lab");
        lab.start_dhtnode(4222).await.expect("dhtnode");
        let jamid = lab.start_jamid("bench").await.expect("jamid");
        let account = jamid.add_account(4222, &[]).await.expect("account");
        jamid
            .wait_registered(&account, Duration::from_secs(120))
            .await
            .expect("registered");
        let conv = jamid
            .start_conversation(&account)
            .await
            .expect("conversation");

        // jamid posts.
        let t0 = Instant::now();
        let mut jamid_post = Vec::with_capacity(n_posts);
        for i in 0..n_posts {
            let t = Instant::now();
            jamid
                .post_conversation_message(&account, &conv, &format!("message {i}"), "", 0)
                .await
                .expect("sendMessage, then messageReceived");
            jamid_post.push(t.elapsed().as_secs_f64() * 1e3);
            if i % 100 == 0 {
                eprintln!("swarm_lab: jamid posted {i}");
            }
        }
        let jamid_post_total = t0.elapsed().as_secs_f64();

        // We post as many, into a conversation of ours.
        let ours = Account::create(|_| {}).expect("account");
        let signer = Signer::of(&ours, "bench").expect("signer");
        let own = lab.dir().join("ours");
        let c = Conversation::create(&own, &signer, Mode::InvitesOnly, None).expect("create");
        let t0 = Instant::now();
        let mut our_post = Vec::with_capacity(n_posts);
        for i in 0..n_posts {
            let t = Instant::now();
            c.post(&signer, &format!("message {i}")).expect("post");
            our_post.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let our_post_total = t0.elapsed().as_secs_f64();

        // The last 50 of jamid's conversation, by jamid and by us.
        let mut jamid_load = Vec::new();
        for _ in 0..LOADS {
            let t = Instant::now();
            let m = jamid
                .load_conversation(&account, &conv, 50)
                .await
                .expect("load");
            assert_eq!(m.len(), 50);
            jamid_load.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let dir = jamid
            .account_dir(&account)
            .join("conversations")
            .join(&conv);
        let theirs = Conversation::open(&dir).expect("jamid's repository");
        let mut our_load = Vec::new();
        for _ in 0..LOADS {
            let t = Instant::now();
            let m = theirs.messages(None, Some(50)).expect("messages");
            assert_eq!(m.len(), 50);
            our_load.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let t = Instant::now();
        let n = theirs.verify().expect("jamid's history validates");
        let validate_ms = t.elapsed().as_secs_f64() * 1e3;

        // Taking in a fetched history, both ways over a device link: we clone jamid's
        // conversation (fetch, validation, checkout), join it and post POSTS messages; jamid
        // is told, fetches them from our device, validates and merges them (timed to its
        // signal for our last message).
        let member = Account::create(|_| {}).expect("account");
        let member_id = member.jami_id().to_string();
        jamid
            .add_conversation_member(&account, &conv, &member_id)
            .await
            .expect("addConversationMember");
        let jami_id = jamid.jami_id(&account).await.expect("id");
        let device = jamid.device_id(&account).await.expect("device").to_lowercase();
        let texts: Vec<String> = (0..n_posts).map(|i| format!("from Pamoja {i}")).collect();
        let last = texts[n_posts - 1].clone();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let from = jamid.signals().len();
        let thread = channel_lab::member(
            &lab,
            member,
            channel_lab::Peer {
                jami_id,
                device,
                conversation: conv.clone(),
            },
            lab.dir().join("member"),
            texts,
            done_rx,
        );
        let got = jamid
            .wait_signal(from, Duration::from_secs(300), |s| {
                s.name == "messageReceived"
                    && matches!(s.args.get(2), Some(pamoja_lab::Arg::Map(m))
                        if m.get("body") == Some(&last))
            })
            .await;
        let received = Instant::now();
        let _ = done_tx.send(());
        let membership = tokio::task::spawn_blocking(move || thread.join().expect("thread"))
            .await
            .expect("join")
            .expect("lab")
            .expect("our member device");
        got.expect("jamid took our commits");
        let jamid_take_ms = received.duration_since(membership.notified).as_secs_f64() * 1e3;
        let our_take_ms = membership.clone_time.as_secs_f64() * 1e3;

        let (jp, op) = (median(jamid_post.clone()), median(our_post.clone()));
        let (jl, ol) = (median(jamid_load.clone()), median(our_load.clone()));
        println!(
            "post: Pamoja {op:.1} ms, jamid {jp:.1} ms a message, ratio {:.2}",
            op / jp
        );
        println!(
            "load last 50: Pamoja {ol:.2} ms, jamid {jl:.2} ms, ratio {:.3}",
            ol / jl
        );
        println!("validate jamid's {n} commits: {validate_ms:.0} ms");
        println!(
            "take in a fetched history of ~{n_posts} commits over a link: Pamoja {our_take_ms:.0} ms, \
             jamid {jamid_take_ms:.0} ms, ratio {:.2}",
            our_take_ms / jamid_take_ms
        );
        let out = serde_json::json!({
            "posts": n_posts,
            "jamid_post_median_ms": jp,
            "pamoja_post_median_ms": op,
            "jamid_post_total_s": jamid_post_total,
            "pamoja_post_total_s": our_post_total,
            "post_ratio": op / jp,
            "jamid_load_median_ms": jl,
            "pamoja_load_median_ms": ol,
            "load_ratio": ol / jl,
            "validated_commits": n,
            "pamoja_validate_ms": validate_ms,
            "pamoja_take_fetched_ms": our_take_ms,
            "jamid_take_fetched_ms": jamid_take_ms,
            "take_fetched_ratio": our_take_ms / jamid_take_ms,
        });
        std::fs::write(
            common::results_dir().join("swarm_lab.json"),
            serde_json::to_vec_pretty(&out).unwrap(),
        )
        .expect("results");
    });
}
