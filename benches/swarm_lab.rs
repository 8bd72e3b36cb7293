//! Conversations side by side with jamid (Debian 20230206) in the lab, on the same
//! repository: jamid posts messages over D-Bus (`sendMessage`, timed to its
//! `messageReceived` signal) while we post the same number into a conversation of our own;
//! then the last 50 messages are loaded from jamid's repository by jamid
//! (`loadConversationMessages` to its `conversationLoaded` signal) and by us (opening the
//! repository in jamid's data directory), and that history is validated by us. Medians are
//! printed and written to `target/criterion/swarm_lab.json`. Needs root, dhtnode and jamid.
//!
//! `cargo bench --bench swarm_lab`

mod common;

use std::time::{Duration, Instant};

use pamoja::identity::Account;
use pamoja::swarm::{Conversation, Mode, Signer};
use pamoja_lab::Lab;

const POSTS: usize = 500;
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
        let mut jamid_post = Vec::with_capacity(POSTS);
        for i in 0..POSTS {
            let from = jamid.signals().len();
            let t = Instant::now();
            jamid
                .send_conversation_message(&account, &conv, &format!("message {i}"), "", 0)
                .await
                .expect("sendMessage");
            jamid
                .wait_signal(from, Duration::from_secs(30), |s| {
                    s.name == "messageReceived"
                })
                .await
                .expect("messageReceived");
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
        let mut our_post = Vec::with_capacity(POSTS);
        for i in 0..POSTS {
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
        let out = serde_json::json!({
            "posts": POSTS,
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
        });
        std::fs::write(
            common::results_dir().join("swarm_lab.json"),
            serde_json::to_vec_pretty(&out).unwrap(),
        )
        .expect("results");
    });
}
