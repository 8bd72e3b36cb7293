//! Times the first sync of a large conversation: a fresh repository cloning a conversation
//! of 10,000 signed text messages (two accounts, one device each) from an in-process
//! `git::serve` over a `tokio::io::duplex` pipe, then reading its members and messages.
//!
//! The source conversation is written once (about 20 s) and kept under
//! `target/swarm-clone-10k/` between runs; delete that directory to write it again.
//!
//! Printed, each the median of `RUNS` runs (in milliseconds of wall clock, then of CPU time
//! of the whole process, at the kernel's tick: the CPU time does not depend on what else
//! runs on the machine):
//!
//! * `clone`: [`git::clone`] as a whole (transfer, validation, checkout);
//! * `pack`: the server building the pack alone (in the clone, it overlaps the transfer);
//! * `fetch`: [`git::fetch`] into a fresh repository (pack built, sent, indexed);
//! * `validate`: [`validate::history`] of the fetched history;
//! * `checkout`: the work tree and index written from the head's tree;
//! * `members`: the clone opened again and [`Conversation::members`] read;
//! * `messages`: [`Conversation::messages`] of all, on that fresh repository.
//!
//! `cargo run --release -p pamoja-swarm --example clone_10k [RUNS]`

use std::path::{Path, PathBuf};
use std::time::Instant;

use git2::Repository;
use pamoja_identity::Account;
use pamoja_swarm::{Conversation, Mode, Signer, git, validate};

const POSTS: usize = 10_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Process CPU time (user and system, every thread) in milliseconds, from
/// `/proc/self/stat` (at the kernel's tick, usually 10 ms); 0 where it cannot be read.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<f64>() * 10.0
}

/// A start: wall clock and CPU time.
struct Mark(Instant, f64);

impl Mark {
    fn now() -> Self {
        Self(Instant::now(), cpu_ms())
    }

    /// Wall and CPU milliseconds since the start.
    fn since(&self) -> (f64, f64) {
        (self.0.elapsed().as_secs_f64() * 1e3, cpu_ms() - self.1)
    }
}

/// The cached source conversation; written when missing.
fn source() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let root = target.join("swarm-clone-10k");
    let dir = root.join("source");
    if root.join("done").exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("mkdir");
    eprintln!("clone_10k: creating two accounts");
    let (alice, bob) = (
        Account::create(|_| {}).expect("account"),
        Account::create(|_| {}).expect("account"),
    );
    let a = Signer::of(&alice, "alice").expect("signer");
    let b = Signer::of(&bob, "bob").expect("signer");
    let c = Conversation::create(&dir, &a, Mode::InvitesOnly, None).expect("create");
    c.add_member(&a, &bob.jami_id().to_string()).expect("add");
    c.join(&b).expect("join");
    for i in 0..POSTS - 2 {
        let s = if i % 3 == 2 { &b } else { &a };
        c.post(s, &format!("message {i}, with a few words in it"))
            .expect("post");
        if i % 2000 == 0 {
            eprintln!("clone_10k: posted {i}");
        }
    }
    std::fs::write(root.join("done"), b"").expect("mark");
    dir
}

/// Runs `f` with a client stream whose other end serves the repository at `src`.
async fn with_server<T>(src: &Path, f: impl AsyncFnOnce(&mut tokio::io::DuplexStream) -> T) -> T {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let src = src.to_owned();
    let task = tokio::spawn(async move { git::serve(&src, server).await.expect("serve") });
    let out = f(&mut client).await;
    drop(client);
    task.await.expect("server");
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let src = source();
    let source = Conversation::open(&src).expect("open");
    let head = source.head().expect("head");
    let conv = source.id().expect("id");
    let device = "0".repeat(64);
    let scratch = tempfile::tempdir().expect("scratch");

    let mut times: Vec<(&str, Vec<(f64, f64)>)> = [
        "clone", "pack", "fetch", "validate", "checkout", "members", "messages",
    ]
    .into_iter()
    .map(|n| (n, Vec::new()))
    .collect();
    for run in 0..runs {
        // The whole clone.
        let cloned = scratch.path().join(format!("clone{run}"));
        let t = Mark::now();
        let c = with_server(&src, async |s| {
            git::clone(&cloned, s, &conv, &device).await.expect("clone")
        })
        .await;
        times[0].1.push(t.since());
        assert_eq!(c.head().unwrap(), head);

        // The server's share: the pack alone.
        let repo = Repository::open(&src).expect("open");
        let mut up = git::UploadPack::default();
        let mut req = git::pkt(format!("want {head}\n").as_bytes());
        req.extend_from_slice(git::FLUSH);
        req.extend(git::pkt(b"done\n"));
        let t = Mark::now();
        let out = up.handle(&repo, &req).expect("pack");
        times[1].1.push(t.since());
        if run == 0 {
            eprintln!("clone_10k: the pack is {} KiB", out.len() / 1024);
        }

        // The same steps one by one.
        let dir = scratch.path().join(format!("steps{run}"));
        let mut opts = git2::RepositoryInitOptions::new();
        opts.initial_head("main");
        let repo = Repository::init_opts(&dir, &opts).expect("init");
        let t = Mark::now();
        let got = with_server(&src, async |s| {
            git::fetch(&dir, s, &conv, &device).await.expect("fetch")
        })
        .await;
        git::admit(&repo, &git::quarantine_dir(&repo, head)).expect("admit");
        times[2].1.push(t.since());
        assert_eq!(got, head);
        let t = Mark::now();
        let n = validate::history(&repo, None, head).expect("valid");
        times[3].1.push(t.since());
        assert_eq!(n, POSTS + 1);
        let t = Mark::now();
        let commit = repo.find_commit(head).unwrap();
        repo.reference(pamoja_swarm::conversation::BRANCH, head, true, "clone")
            .unwrap();
        repo.checkout_tree(
            commit.as_object(),
            Some(git2::build::CheckoutBuilder::new().force()),
        )
        .unwrap();
        let mut index = repo.index().unwrap();
        index.read_tree(&commit.tree().unwrap()).unwrap();
        index.write().unwrap();
        times[4].1.push(t.since());

        // Reading the clone, opened again as a client does.
        drop(c);
        let t = Mark::now();
        let c = Conversation::open(&cloned).expect("open");
        let m = c.members().expect("members");
        times[5].1.push(t.since());
        assert_eq!(m.len(), 2);
        let t = Mark::now();
        let all = c.messages(None, None).expect("messages");
        times[6].1.push(t.since());
        assert_eq!(all.len(), POSTS + 1);
        assert!(all.iter().all(|m| m.author.is_some()));
        eprintln!(
            "clone_10k: run {run}: {}",
            times
                .iter()
                .map(|(n, v)| format!("{n} {:.0}/{:.0}", v[run].0, v[run].1))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!("median of {runs} runs, ms (wall, then CPU of every thread):");
    for (n, v) in times {
        let wall = median(v.iter().map(|x| x.0).collect());
        let cpu = median(v.iter().map(|x| x.1).collect());
        println!("  {n:>9} {wall:>8.1} {cpu:>8.0}");
    }
}
