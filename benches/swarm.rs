//! Conversations at size: post 10,000 signed messages, validate that history of 10,000
//! commits as a fetch would, and load the last 50 messages of a 100,000-commit
//! conversation. Medians are printed and written to `target/criterion/swarm.json`; the
//! side-by-side figures against jamid come from `cargo bench --bench swarm_lab`.
//!
//! The 100,000-commit history is written once (unsigned commits in jamid's layout: loading
//! reads messages and does not check signatures) and kept under `target/` between runs.
//!
//! `cargo bench --bench swarm`

mod common;

use std::path::Path;
use std::time::Instant;

use pamoja::identity::Account;
use pamoja::swarm::body::Body;
use pamoja::swarm::conversation::BRANCH;
use pamoja::swarm::{Conversation, Mode, Signer, validate};

const POSTS: usize = 10_000;
const BIG: usize = 100_000;
const RUNS: usize = 7;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A conversation of `n` commits on top of a real initial commit, written fast.
fn big_conversation(dir: &Path, signer: &Signer, n: usize) {
    let c = Conversation::create(dir, signer, Mode::InvitesOnly, None).expect("create");
    let repo = c.repo();
    let mut parent = repo.find_commit(c.head().unwrap()).unwrap();
    let tree = parent.tree().unwrap();
    let who = git2::Signature::now("bench", &signer.device.device_id().to_string()).unwrap();
    for i in 0..n {
        let body = Body::text(&format!("message {i}"), None).encode();
        let id = repo
            .commit(None, &who, &who, &body, &tree, &[&parent])
            .unwrap();
        parent = repo.find_commit(id).unwrap();
        if i % 20_000 == 0 {
            eprintln!("swarm: writing the {n}-commit conversation: {i}");
        }
    }
    repo.reference(BRANCH, parent.id(), true, "bench").unwrap();
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    eprintln!("swarm: creating an account");
    let account = Account::create(|_| {}).expect("account");
    let signer = Signer::of(&account, "bench").expect("signer");
    let scratch = tempfile::tempdir().expect("scratch");

    // Post 10,000 signed messages.
    let dir = scratch.path().join("posted");
    let c = Conversation::create(&dir, &signer, Mode::InvitesOnly, None).expect("create");
    let t0 = Instant::now();
    let mut per_post = Vec::with_capacity(POSTS);
    for i in 0..POSTS {
        let t = Instant::now();
        c.post(&signer, &format!("message {i}, with some words in it"))
            .expect("post");
        per_post.push(t.elapsed().as_secs_f64() * 1e3);
        if i % 2000 == 0 {
            eprintln!("swarm: posted {i}");
        }
    }
    let post_total = t0.elapsed().as_secs_f64();

    // Validate those 10,000 commits, as a fetch into an empty history.
    let head = c.head().unwrap();
    let mut validate_s = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let n = validate::history(c.repo(), None, head).expect("valid");
        assert_eq!(n, POSTS + 1);
        validate_s.push(t.elapsed().as_secs_f64());
    }

    // Load the last 50 of 100,000.
    let big = common::target_dir().join("swarm-bench-100k");
    if !big.join(".git").exists() {
        let _ = std::fs::remove_dir_all(&big);
        big_conversation(&big, &signer, BIG);
    }
    let c = Conversation::open(&big).expect("open");
    let mut load_ms = Vec::new();
    for _ in 0..RUNS * 3 {
        let t = Instant::now();
        let m = c.messages(None, Some(50)).expect("messages");
        assert_eq!(m.len(), 50);
        load_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }

    let out = serde_json::json!({
        "posts": POSTS,
        "post_total_s": post_total,
        "post_median_ms": median(per_post),
        "validate_commits": POSTS + 1,
        "validate_median_s": median(validate_s.clone()),
        "validate_runs_s": validate_s,
        "load_last_50_of": BIG,
        "load_median_ms": median(load_ms.clone()),
        "load_runs_ms": load_ms,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
    std::fs::write(
        common::results_dir().join("swarm.json"),
        serde_json::to_vec_pretty(&out).unwrap(),
    )
    .expect("results");
}
