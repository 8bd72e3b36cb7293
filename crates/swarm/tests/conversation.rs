//! Conversations written and checked: creation in each mode, members, messages in display
//! order; and a forged history for each rule, rejected with its reason.

use std::path::Path;
use std::sync::OnceLock;

use base64::Engine as _;
use git2::{Oid, Repository, Signature};
use pamoja_identity::key::SignatureHash;
use pamoja_identity::{Account, PrivateKey};
use pamoja_swarm::body::Body;
use pamoja_swarm::conversation::{BRANCH, SIGNATURE_FIELD};
use pamoja_swarm::{Conversation, Mode, Signer};

fn accounts() -> &'static (Account, Account, Account) {
    static A: OnceLock<(Account, Account, Account)> = OnceLock::new();
    A.get_or_init(|| {
        (
            Account::create(|_| {}).unwrap(),
            Account::create(|_| {}).unwrap(),
            Account::create(|_| {}).unwrap(),
        )
    })
}

fn signer(a: &Account, name: &str) -> Signer {
    Signer::of(a, name).unwrap()
}

/// A group conversation with alice (admin) and bob (member) and a few messages.
fn group(dir: &Path) -> (Conversation, Signer, Signer) {
    let (alice, bob, _) = accounts();
    let (a, b) = (signer(alice, "Alice <A>"), signer(bob, ""));
    let c = Conversation::create(dir, &a, Mode::InvitesOnly, None).unwrap();
    c.post(&a, "hello, 世界 😀").unwrap();
    c.add_member(&a, &bob.jami_id().to_string()).unwrap();
    c.join(&b).unwrap();
    c.post(&b, "hi alice").unwrap();
    (c, a, b)
}

/// Writes a commit by hand: `files` added (or removed with `None`) on top of `parents[0]`'s
/// tree, authored by device `device`, signed with `key` (none: unsigned), `main` moved to it.
fn forge(
    repo: &Repository,
    parents: &[Oid],
    device: &str,
    files: &[(&str, Option<&[u8]>)],
    message: &str,
    key: Option<&PrivateKey>,
) -> Oid {
    let base = repo.find_commit(parents[0]).unwrap().tree().unwrap();
    let mut index = git2::Index::new().unwrap();
    index.read_tree(&base).unwrap();
    for (path, data) in files {
        match data {
            Some(d) => {
                let blob = repo.blob(d).unwrap();
                let entry = git2::IndexEntry {
                    ctime: git2::IndexTime::new(0, 0),
                    mtime: git2::IndexTime::new(0, 0),
                    dev: 0,
                    ino: 0,
                    mode: 0o100644,
                    uid: 0,
                    gid: 0,
                    file_size: d.len() as u32,
                    id: blob,
                    flags: 0,
                    flags_extended: 0,
                    path: path.as_bytes().to_vec(),
                };
                index.add(&entry).unwrap();
            }
            None => index.remove_path(Path::new(path)).unwrap(),
        }
    }
    let tree = repo.find_tree(index.write_tree_to(repo).unwrap()).unwrap();
    let who = Signature::new("x", device, &git2::Time::new(1_700_000_000, 0)).unwrap();
    let ps: Vec<git2::Commit> = parents
        .iter()
        .map(|p| repo.find_commit(*p).unwrap())
        .collect();
    let refs: Vec<&git2::Commit> = ps.iter().collect();
    let buf = repo
        .commit_create_buffer(&who, &who, message, &tree, &refs)
        .unwrap();
    let content = buf.as_str().unwrap();
    let id = match key {
        Some(k) => {
            let sig = k.sign(SignatureHash::Sha512, content.as_bytes()).unwrap();
            let sig = base64::engine::general_purpose::STANDARD.encode(sig);
            repo.commit_signed(content, &sig, Some(SIGNATURE_FIELD))
                .unwrap()
        }
        None => repo
            .odb()
            .unwrap()
            .write(git2::ObjectType::Commit, content.as_bytes())
            .unwrap(),
    };
    repo.reference(BRANCH, id, true, "forged").unwrap();
    id
}

/// Makes a forged commit on top of a head.
type Forger<'a> = Box<dyn Fn(&Repository, Oid) -> Oid + 'a>;

fn rejected(c: &Conversation, id: Oid, why: &str) {
    let e = c.verify().expect_err("a forged history passed");
    assert_eq!(e.commit, id.to_string(), "{e}");
    assert!(
        e.reason.contains(why),
        "expected {why:?}, got {:?}",
        e.reason
    );
}

#[test]
fn a_group_conversation_reads_back_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (c, a, _) = group(dir.path());
    let (alice, bob, _) = accounts();
    assert_eq!(c.verify().unwrap(), 5);
    let log = c.messages(None, None).unwrap();
    let kinds: Vec<&str> = log.iter().map(|m| m.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["text/plain", "member", "member", "text/plain", "initial"]
    );
    assert_eq!(log[0].body.get("body"), Some("hi alice"));
    assert_eq!(
        log[0].author.as_deref(),
        Some(bob.jami_id().to_string().as_str())
    );
    assert_eq!(log[3].body.get("body"), Some("hello, 世界 😀"));
    assert_eq!(
        log[4].author.as_deref(),
        Some(alice.jami_id().to_string().as_str())
    );
    assert_eq!(c.id().unwrap(), log[4].id);
    // The last N, and from a given commit.
    assert_eq!(c.messages(None, Some(2)).unwrap().len(), 2);
    let from: Oid = log[3].id.parse().unwrap();
    assert_eq!(c.messages(Some(from), None).unwrap().len(), 2);
    // jamid's layout and message text.
    let repo = c.repo();
    let head = repo.find_commit(c.head().unwrap()).unwrap();
    let tree = head.tree().unwrap();
    for p in [
        format!("admins/{}.crt", alice.jami_id()),
        format!("members/{}.crt", bob.jami_id()),
        format!("devices/{}.crt", a.device.device_id()),
    ] {
        assert!(tree.get_path(Path::new(&p)).is_ok(), "{p}");
    }
    let root = repo.find_commit(log[4].id.parse().unwrap()).unwrap();
    assert_eq!(root.message(), Some(r#"{"mode":2,"type":"initial"}"#));
    assert_eq!(root.author().name(), Some("Alice A"));
    assert_eq!(
        head.author().name(),
        Some(bob.device().unwrap().cert.device_id().to_string().as_str())
    );
    let (sig, _) = repo
        .extract_signature(&head.id(), Some("signature"))
        .unwrap();
    assert_eq!(sig.len(), 684, "RSA-4096 signature, base64 on one line");
}

#[test]
fn one_to_one_names_the_invited_account() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob, _) = accounts();
    let a = signer(alice, "alice");
    let bob_id = bob.jami_id().to_string();
    let c = Conversation::create(dir.path(), &a, Mode::OneToOne, Some(&bob_id)).unwrap();
    let root = c.repo().find_commit(c.head().unwrap()).unwrap();
    assert_eq!(
        root.message().unwrap(),
        format!(r#"{{"invited":"{bob_id}","mode":0,"type":"initial"}}"#)
    );
    assert!(dir.path().join(format!("invited/{bob_id}")).exists());
    c.join(&signer(bob, "bob")).unwrap();
    assert_eq!(c.verify().unwrap(), 2);
    assert!(
        Conversation::create(dir.path(), &a, Mode::Public, None).is_err(),
        "not empty"
    );
}

#[test]
fn forged_histories_are_rejected_with_their_reason() {
    let (alice, bob, mallory) = accounts();
    let a_dev = alice.device().unwrap().cert.device_id().to_string();
    let b_dev = bob.device().unwrap().cert.device_id().to_string();
    let m_dev = mallory.device().unwrap().cert.device_id().to_string();
    let key = |acc: &Account| {
        PrivateKey::from_pkcs8_der(acc.device().unwrap().key.to_pkcs8_der()).unwrap()
    };
    let text = Body::text("forged", None).encode();
    let cases: Vec<(&str, Forger)> = vec![
        (
            "bad signature",
            Box::new(|r, h| forge(r, &[h], &a_dev, &[], &text, Some(&key(bob)))),
        ),
        (
            "unsigned",
            Box::new(|r, h| forge(r, &[h], &a_dev, &[], &text, None)),
        ),
        (
            "is not a member",
            Box::new(|r, h| {
                let pem = mallory.device().unwrap().cert.to_pem();
                forge(
                    r,
                    &[h],
                    &m_dev,
                    &[(&format!("devices/{m_dev}.crt"), Some(pem.as_bytes()))],
                    &text,
                    Some(&key(mallory)),
                )
            }),
        ),
        (
            "no device certificate",
            Box::new(|r, h| forge(r, &[h], &"0".repeat(64), &[], &text, Some(&key(bob)))),
        ),
        (
            "may not change admins/",
            Box::new(|r, h| {
                forge(
                    r,
                    &[h],
                    &b_dev,
                    &[(&format!("admins/{}.crt", alice.jami_id()), None)],
                    &text,
                    Some(&key(bob)),
                )
            }),
        ),
        (
            "may not change data.bin",
            Box::new(|r, h| {
                forge(
                    r,
                    &[h],
                    &b_dev,
                    &[("data.bin", Some(&[0u8, 159, 146, 150][..]))],
                    &text,
                    Some(&key(bob)),
                )
            }),
        ),
        (
            "only an admin updates the profile",
            Box::new(|r, h| {
                forge(
                    r,
                    &[h],
                    &b_dev,
                    &[("profile.vcf", Some(b"BEGIN:VCARD"))],
                    &Body::profile_update().encode(),
                    Some(&key(bob)),
                )
            }),
        ),
        (
            "edit of another account's message",
            Box::new(|r, h| {
                // Bob edits alice's first message.
                let mut walk = r.revwalk().unwrap();
                walk.push(h).unwrap();
                walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
                    .unwrap();
                let first_text = walk.nth(1).unwrap().unwrap().to_string();
                forge(
                    r,
                    &[h],
                    &b_dev,
                    &[],
                    &Body::edit("mine now", &first_text).encode(),
                    Some(&key(bob)),
                )
            }),
        ),
        (
            "only the account itself or an admin removes it",
            Box::new(|r, h| {
                // Bob removes alice.
                let uri = alice.jami_id().to_string();
                forge(
                    r,
                    &[h],
                    &b_dev,
                    &[(&format!("admins/{uri}.crt"), None)],
                    &Body::member("remove", &uri).encode(),
                    Some(&key(bob)),
                )
            }),
        ),
        (
            "beyond its parents",
            Box::new(|r, h| {
                let side = forge(
                    r,
                    &[h],
                    &b_dev,
                    &[],
                    &Body::text("side", None).encode(),
                    Some(&key(bob)),
                );
                let parent = r.find_commit(h).unwrap().parent_id(0).unwrap();
                let other = forge(
                    r,
                    &[parent],
                    &a_dev,
                    &[],
                    &Body::text("other", None).encode(),
                    Some(&key(alice)),
                );
                forge(
                    r,
                    &[other, side],
                    &a_dev,
                    &[("extra.txt", Some(b"sneaked in"))],
                    "Merge commit 'x'",
                    Some(&key(alice)),
                )
            }),
        ),
    ];
    for (why, make) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (c, _, _) = group(dir.path());
        let head = c.head().unwrap();
        let bad = make(c.repo(), head);
        rejected(&c, bad, why);
    }

    // Rewritten history: a signed commit whose message was changed after signing.
    let dir = tempfile::tempdir().unwrap();
    let (c, _, _) = group(dir.path());
    let repo = c.repo();
    let head = repo.find_commit(c.head().unwrap()).unwrap();
    let (sig, signed) = repo
        .extract_signature(&head.id(), Some("signature"))
        .unwrap();
    let tampered = std::str::from_utf8(&signed)
        .unwrap()
        .replace("hi alice", "pay mallory");
    let id = repo
        .commit_signed(
            &tampered,
            std::str::from_utf8(&sig).unwrap(),
            Some(SIGNATURE_FIELD),
        )
        .unwrap();
    repo.reference(BRANCH, id, true, "rewritten").unwrap();
    rejected(&c, id, "bad signature");
}

/// Fetches `from`'s `main` into `into` as `refs/remotes/<name>/main`; its id.
fn fetch(into: &Conversation, from: &Path, name: &str) -> Oid {
    let mut remote = into
        .repo()
        .remote_anonymous(from.to_str().unwrap())
        .unwrap();
    let spec = format!("+refs/heads/main:refs/remotes/{name}/main");
    remote.fetch(&[&spec], None, None).unwrap();
    into.repo()
        .refname_to_id(&format!("refs/remotes/{name}/main"))
        .unwrap()
}

#[test]
fn two_devices_diverge_merge_and_converge() {
    use pamoja_swarm::Pulled;
    let (alice, bob, _) = accounts();
    let (a, b) = (signer(alice, "alice"), signer(bob, "bob"));
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ca = Conversation::create(da.path(), &a, Mode::InvitesOnly, None).unwrap();
    ca.add_member(&a, &bob.jami_id().to_string()).unwrap();
    // Bob clones (fetch + fast-forward into an empty repository of his).
    git2::Repository::clone(da.path().to_str().unwrap(), db.path()).unwrap();
    let cb = Conversation::open(db.path()).unwrap();
    cb.join(&b).unwrap();
    // Both write at once.
    ca.post(&a, "alice, meanwhile").unwrap();
    cb.post(&b, "bob, meanwhile").unwrap();
    // Alice takes bob's history: diverged, a signed merge.
    let remote = fetch(&ca, db.path(), "bob");
    let Pulled::Merged(m) = ca.pull(&a, remote).unwrap() else {
        panic!("expected a merge")
    };
    let merge = ca.repo().find_commit(m).unwrap();
    assert_eq!(merge.parent_count(), 2);
    assert_eq!(
        merge.message(),
        Some(format!("Merge commit '{remote}'").as_str())
    );
    assert!(
        db.path()
            .join(format!("members/{}.crt", bob.jami_id()))
            .exists()
    );
    assert!(
        da.path()
            .join(format!("members/{}.crt", bob.jami_id()))
            .exists(),
        "work tree follows main"
    );
    // Bob takes alice's: a fast-forward; both hold the same history, valid on both sides.
    let remote = fetch(&cb, da.path(), "alice");
    assert_eq!(cb.pull(&b, remote).unwrap(), Pulled::FastForward);
    assert_eq!(ca.head().unwrap(), cb.head().unwrap());
    assert_eq!(ca.verify().unwrap(), cb.verify().unwrap());
    assert_eq!(cb.pull(&b, remote).unwrap(), Pulled::UpToDate);
    // Pages across the merge and after it follow the full display order.
    let all = cb.messages(None, None).unwrap();
    for n in 1..all.len() {
        assert_eq!(
            cb.messages(None, Some(n)).unwrap(),
            all[..n].to_vec(),
            "page of {n}"
        );
    }
    cb.post(&b, "after the merge").unwrap();
    let all = cb.messages(None, None).unwrap();
    assert_eq!(cb.messages(None, Some(4)).unwrap(), all[..4].to_vec());
    let bodies: Vec<String> = cb
        .messages(None, None)
        .unwrap()
        .iter()
        .filter_map(|m| m.body.get("body").map(str::to_owned))
        .collect();
    assert!(
        bodies.contains(&"alice, meanwhile".into()) && bodies.contains(&"bob, meanwhile".into())
    );

    // A forged commit on bob's side: alice refuses it and keeps her history as it was.
    let before = ca.head().unwrap();
    let b_dev = bob.device().unwrap().cert.device_id().to_string();
    let key = PrivateKey::from_pkcs8_der(bob.device().unwrap().key.to_pkcs8_der()).unwrap();
    forge(
        cb.repo(),
        &[cb.head().unwrap()],
        &b_dev,
        &[(&format!("admins/{}.crt", bob.jami_id()), Some(b"me too"))],
        &Body::text("now I am admin", None).encode(),
        Some(&key),
    );
    let remote = fetch(&ca, db.path(), "bob");
    match ca.pull(&a, remote) {
        Err(pamoja_swarm::Error::Rejected(why)) => {
            assert!(why.reason.contains("admins/"), "{why}")
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(ca.head().unwrap(), before);
    assert_eq!(ca.verify().unwrap(), ca.messages(None, None).unwrap().len());
}

#[test]
fn votes_ban_and_unban_profile_and_pages() {
    let (alice, bob, carol) = accounts();
    let dir = tempfile::tempdir().unwrap();
    let (c, a, b) = group(dir.path());
    let k = signer(carol, "carol");
    let carol_id = carol.jami_id().to_string();
    c.add_member(&a, &carol_id).unwrap();
    c.join(&k).unwrap();
    c.post(&k, "carol here").unwrap();
    // One admin: her vote is enough; carol and her device go to banned/.
    let made = c.vote_ban(&a, &carol_id).unwrap();
    assert_eq!(made.len(), 2, "a vote, then the ban");
    let carol_dev = carol.device().unwrap().cert.device_id().to_string();
    assert!(
        dir.path()
            .join(format!("banned/members/{carol_id}.crt"))
            .exists()
    );
    assert!(
        dir.path()
            .join(format!("banned/devices/{carol_dev}.crt"))
            .exists()
    );
    assert!(!dir.path().join("votes").exists());
    assert_eq!(
        c.messages(None, Some(1)).unwrap()[0].body.get("action"),
        Some("ban")
    );
    c.vote_unban(&a, &carol_id).unwrap();
    assert!(dir.path().join(format!("members/{carol_id}.crt")).exists());
    // Carol leaves: her certificate and device go, and the history stays valid.
    c.leave(&k).unwrap();
    assert!(!dir.path().join(format!("members/{carol_id}.crt")).exists());
    assert!(!dir.path().join(format!("devices/{carol_dev}.crt")).exists());
    assert_eq!(
        c.messages(None, Some(1)).unwrap()[0].body.get("action"),
        Some("remove")
    );
    // The admin updates the profile.
    let p = pamoja_swarm::Profile {
        title: Some("Team".into()),
        ..Default::default()
    };
    c.update_profile(&a, &p).unwrap();
    let vcf = std::fs::read_to_string(dir.path().join("profile.vcf")).unwrap();
    assert_eq!(
        vcf,
        "BEGIN:VCARD\nVERSION:2.1\nFN:Team\nPHOTO;ENCODING=BASE64\n\n\nEND:VCARD"
    );
    let n = c.verify().unwrap();
    assert_eq!(n, c.messages(None, None).unwrap().len());
    // Pages: the three before the newest.
    let all = c.messages(None, None).unwrap();
    let page = c.messages_before(all[0].id.parse().unwrap(), 3).unwrap();
    assert_eq!(page, all[1..4].to_vec());

    // Forged votes and bans.
    let key = |acc: &Account| {
        PrivateKey::from_pkcs8_der(acc.device().unwrap().key.to_pkcs8_der()).unwrap()
    };
    let (a_dev, b_dev) = (
        a.device.device_id().to_string(),
        b.device.device_id().to_string(),
    );
    let alice_id = alice.jami_id().to_string();
    let vote = Body::vote(&carol_id).encode();
    let cases: Vec<(&str, Forger)> = vec![
        (
            "only an admin votes",
            Box::new(|r, h| {
                let bob_id = bob.jami_id().to_string();
                forge(
                    r,
                    &[h],
                    &b_dev,
                    &[(&format!("votes/ban/members/{carol_id}/{bob_id}"), Some(b""))],
                    &vote,
                    Some(&key(bob)),
                )
            }),
        ),
        (
            "a vote about oneself",
            Box::new(|r, h| {
                forge(
                    r,
                    &[h],
                    &a_dev,
                    &[(
                        &format!("votes/ban/admins/{alice_id}/{alice_id}"),
                        Some(b""),
                    )],
                    &Body::vote(&alice_id).encode(),
                    Some(&key(alice)),
                )
            }),
        ),
        (
            "a vote in another admin's name",
            Box::new(|r, h| {
                forge(
                    r,
                    &[h],
                    &a_dev,
                    &[(
                        &format!("votes/ban/members/{carol_id}/{}", "1".repeat(40)),
                        Some(b""),
                    )],
                    &vote,
                    Some(&key(alice)),
                )
            }),
        ),
        (
            "0 of 1 admins voted",
            Box::new(|r, h| {
                forge(
                    r,
                    &[h],
                    &a_dev,
                    &[
                        (&format!("members/{carol_id}.crt"), None),
                        (&format!("banned/members/{carol_id}.crt"), Some(b"x")),
                    ],
                    &Body::member("ban", &carol_id).encode(),
                    Some(&key(alice)),
                )
            }),
        ),
        (
            "only an admin updates the profile",
            Box::new(|r, h| {
                forge(
                    r,
                    &[h],
                    &b_dev,
                    &[("profile.vcf", Some(b"BEGIN:VCARD"))],
                    &Body::profile_update().encode(),
                    Some(&key(bob)),
                )
            }),
        ),
    ];
    for (why, make) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (c, a, _) = group(dir.path());
        c.add_member(&a, &carol_id).unwrap();
        c.join(&signer(carol, "carol")).unwrap();
        let bad = make(c.repo(), c.head().unwrap());
        rejected(&c, bad, why);
    }
}

#[test]
fn only_admins_invite_when_the_mode_says_so() {
    let (alice, bob, carol) = accounts();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (signer(alice, "a"), signer(bob, "b"));
    let c = Conversation::create(dir.path(), &a, Mode::AdminInvitesOnly, None).unwrap();
    c.add_member(&a, &bob.jami_id().to_string()).unwrap();
    c.join(&b).unwrap();
    assert!(c.verify().is_ok());
    let id = c.add_member(&b, &carol.jami_id().to_string()).unwrap();
    rejected(&c, id, "only an admin invites");
}

/// In a long history (signatures verified on several threads), the first invalid commit is
/// reported, and a commit with a bad signature fails on its signature before its rules.
#[test]
fn a_long_history_reports_its_first_invalid_commit() {
    let (alice, bob, _) = accounts();
    let a_dev = alice.device().unwrap().cert.device_id().to_string();
    let key = |acc: &Account| {
        PrivateKey::from_pkcs8_der(acc.device().unwrap().key.to_pkcs8_der()).unwrap()
    };
    let (good, forged) = (key(alice), key(bob));
    let text = Body::text("forged", None).encode();
    let extra: &[(&str, Option<&[u8]>)] = &[("data.bin", Some(b"x"))];
    // `n` valid messages by alice on top of `h`.
    let posts = |r: &Repository, mut h: Oid, n: usize| {
        for _ in 0..n {
            h = forge(r, &[h], &a_dev, &[], &text, Some(&good));
        }
        h
    };
    type Step<'a> = Box<dyn Fn(Oid) -> Oid + 'a>;
    let cases: [(&str, usize); 3] = [
        ("bad signature", 0),
        ("may not change data.bin", 1),
        ("bad signature", 2),
    ];
    for (why, case) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (c, _, _) = group(dir.path());
        let r = c.repo();
        let h = posts(r, c.head().unwrap(), 40);
        let (first, second): (Step, Step) = match case {
            // A bad signature, then a rule broken.
            0 => (
                Box::new(|h| forge(r, &[h], &a_dev, &[], &text, Some(&forged))),
                Box::new(|h| forge(r, &[h], &a_dev, extra, &text, Some(&good))),
            ),
            // A rule broken, then a bad signature.
            1 => (
                Box::new(|h| forge(r, &[h], &a_dev, extra, &text, Some(&good))),
                Box::new(|h| forge(r, &[h], &a_dev, &[], &text, Some(&forged))),
            ),
            // Both on one commit, then both on another.
            _ => (
                Box::new(|h| forge(r, &[h], &a_dev, extra, &text, Some(&forged))),
                Box::new(|h| forge(r, &[h], &a_dev, extra, &text, Some(&forged))),
            ),
        };
        let bad = first(h);
        let h = posts(r, bad, 5);
        let h = second(h);
        posts(r, h, 40);
        rejected(&c, bad, why);
    }
    // A bad signature at the end of a long history.
    let dir = tempfile::tempdir().unwrap();
    let (c, _, _) = group(dir.path());
    let h = posts(c.repo(), c.head().unwrap(), 70);
    let bad = forge(c.repo(), &[h], &a_dev, &[], &text, Some(&forged));
    rejected(&c, bad, "bad signature");
    assert_eq!(
        pamoja_swarm::validate::history(c.repo(), None, h).unwrap(),
        75
    );
}
