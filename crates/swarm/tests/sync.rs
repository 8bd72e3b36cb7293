//! Two Pamoja devices sync a conversation through the git protocol over an in-memory duplex
//! stream: a clone, concurrent posts on both sides, fetches both ways (two sessions on one
//! stream), validation, a merge; and a forged history refused without a trace in `main`.

use std::path::Path;

use pamoja_identity::{Account, PrivateKey};
use pamoja_swarm::body::Body;
use pamoja_swarm::conversation::{BRANCH, SIGNATURE_FIELD};
use pamoja_swarm::{Conversation, Error, Mode, Pulled, Signer, git};

/// A server for the repository at `dir` on one end of a fresh duplex; the other end.
fn serve(
    dir: &Path,
) -> (
    tokio::io::DuplexStream,
    tokio::task::JoinHandle<Vec<git2::Oid>>,
) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let dir = dir.to_owned();
    let task = tokio::spawn(async move { git::serve(&dir, server).await.unwrap() });
    (client, task)
}

/// Fetched histories waiting in quarantine in the repository at `dir`.
fn waiting(dir: &Path) -> usize {
    std::fs::read_dir(dir.join(".git/objects/incoming")).map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_post_fetch_merge_both_ways() {
    let (alice, bob) = (
        Account::create(|_| {}).unwrap(),
        Account::create(|_| {}).unwrap(),
    );
    let (a, b) = (
        Signer::of(&alice, "alice").unwrap(),
        Signer::of(&bob, "bob").unwrap(),
    );
    let a_dev = a.device.device_id().to_string();
    let b_dev = b.device.device_id().to_string();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ca = Conversation::create(da.path(), &a, Mode::InvitesOnly, None).unwrap();
    ca.post(&a, "welcome").unwrap();
    ca.add_member(&a, &bob.jami_id().to_string()).unwrap();
    let conv = ca.id().unwrap();

    // Bob clones from alice's device.
    let bob_dir = db.path().join(&conv);
    let (mut to_alice, served) = serve(da.path());
    let cb = git::clone(&bob_dir, &mut to_alice, &conv, &a_dev)
        .await
        .unwrap();
    assert_eq!(cb.head().unwrap(), ca.head().unwrap());
    assert!(
        bob_dir
            .join(format!("admins/{}.crt", alice.jami_id()))
            .exists()
    );
    cb.join(&b).unwrap();

    // Both post at once.
    ca.post(&a, "alice: one").unwrap();
    ca.post(&a, "alice: two").unwrap();
    cb.post(&b, "bob: one, 世界").unwrap();

    // Alice fetches from bob: diverged, merged.
    let (mut to_bob, _bob_served) = serve(&bob_dir);
    let head = git::fetch(da.path(), &mut to_bob, &conv, &b_dev)
        .await
        .unwrap();
    assert_eq!(head, cb.head().unwrap());
    assert!(matches!(ca.pull(&a, head).unwrap(), Pulled::Merged(_)));
    // Bob fetches from alice on the same stream as his clone (a second session): forward.
    let head = git::fetch(&bob_dir, &mut to_alice, &conv, &a_dev)
        .await
        .unwrap();
    assert_eq!(cb.pull(&b, head).unwrap(), Pulled::FastForward);
    assert_eq!(ca.head().unwrap(), cb.head().unwrap());
    // Accepted histories moved into the object database: seen by a fresh open, nothing
    // left waiting.
    for dir in [da.path(), bob_dir.as_path()] {
        let fresh = git2::Repository::open(dir).unwrap();
        assert!(fresh.find_commit(head).is_ok());
        assert_eq!(waiting(dir), 0, "{}", dir.display());
    }
    let n = ca.verify().unwrap();
    assert_eq!(cb.verify().unwrap(), n);
    // Nothing new: the fetch is a flush, the head unchanged.
    let again = git::fetch(&bob_dir, &mut to_alice, &conv, &a_dev)
        .await
        .unwrap();
    assert_eq!(again, cb.head().unwrap());
    drop(to_alice);
    assert_eq!(served.await.unwrap().len(), 2, "two packs on one stream");

    // Bob forges a commit that makes him admin; alice fetches it but keeps her history.
    let before = ca.head().unwrap();
    let repo = cb.repo();
    let parent = repo.find_commit(cb.head().unwrap()).unwrap();
    let mut index = repo.index().unwrap();
    std::fs::write(bob_dir.join(format!("admins/{}.crt", bob.jami_id())), "x").unwrap();
    index
        .add_path(Path::new(&format!("admins/{}.crt", bob.jami_id())))
        .unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let who = git2::Signature::now("bob", &b_dev).unwrap();
    let buf = repo
        .commit_create_buffer(
            &who,
            &who,
            &Body::text("I am admin", None).encode(),
            &tree,
            &[&parent],
        )
        .unwrap();
    let key = PrivateKey::from_pkcs8_der(bob.device().unwrap().key.to_pkcs8_der()).unwrap();
    let sig = key
        .sign(
            pamoja_identity::key::SignatureHash::Sha512,
            buf.as_str().unwrap().as_bytes(),
        )
        .unwrap();
    let sig = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, sig);
    let forged = repo
        .commit_signed(buf.as_str().unwrap(), &sig, Some(SIGNATURE_FIELD))
        .unwrap();
    repo.reference(BRANCH, forged, true, "forged").unwrap();
    let head = git::fetch(da.path(), &mut to_bob, &conv, &b_dev)
        .await
        .unwrap();
    assert_eq!(head, forged);
    match ca.pull(&a, head) {
        Err(Error::Rejected(why)) => assert_eq!(why.commit, forged.to_string()),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(ca.head().unwrap(), before);
    assert_eq!(ca.verify().unwrap(), n);
    // Nothing of the refused history stays on disk: not in the object database, not in
    // quarantine.
    let fresh = git2::Repository::open(da.path()).unwrap();
    assert!(
        fresh.find_commit(forged).is_err(),
        "the forged commit stayed"
    );
    assert_eq!(waiting(da.path()), 0);

    // A clone of that history is refused and leaves nothing behind.
    let (mut to_bob2, _) = serve(&bob_dir);
    let carol_dir = da.path().join("carol-clone");
    match git::clone(&carol_dir, &mut to_bob2, &conv, &b_dev).await {
        Err(Error::Rejected(_)) => {}
        other => panic!("expected a rejection, got {:?}", other.map(|_| ())),
    }
    assert!(!carol_dir.exists());
}
