//! Validation of a conversation's history, commit by commit.
//!
//! The rules are jamid's (section 4 of the swarm notes: who may change which file for each
//! kind of commit), made stricter where jamid trusts too much; a history a correct jamid
//! writes still passes:
//!
//! * every commit, the root included, carries a `signature` header that verifies with the
//!   key of `devices/<author e-mail>.crt` in the tree (the parent's tree for a removal);
//! * that device certificate's long id is its file name, it is signed by the account
//!   certificate found in `members/` or `admins/`, and both were valid at the commit time;
//! * changed files are every path the diff touches, binary files included;
//! * a profile update needs an admin in the parent's tree (not in the local member list), a
//!   removal is by the removed account or an admin, a join is by the joining account, the
//!   admins counted for a ban are those of the parent's tree, and in an
//!   "admin invites only" conversation only admins add;
//! * a merge may only combine its parents: no path differs from both;
//! * a fetched history is checked in full: every commit reachable from the candidate head
//!   and not from ours.
//!
//! [`history`] is a pure function of the repository's objects: it reads, never writes.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use git2::{Commit, Delta, DiffOptions, Oid, Repository, Sort, Tree};
use pamoja_identity::Certificate;
use pamoja_identity::key::PublicKey;
use pamoja_identity::key::SignatureHash;

use crate::body::{Body, types};
use crate::format::{Mode, SIGNATURE_FIELD};

/// A commit that fails validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("commit {commit}: {reason}")]
pub struct Invalid {
    /// The commit id (empty when the history could not be read at all).
    pub commit: String,
    /// Why.
    pub reason: String,
}

impl Invalid {
    /// A failure to read the repository.
    pub fn other(e: impl std::fmt::Display) -> Self {
        Self {
            commit: String::new(),
            reason: e.to_string(),
        }
    }
}

type Check = std::result::Result<(), String>;

/// A single-parent commit under check: its tree, its parent's, what changed, who wrote it.
struct Step<'a> {
    repo: &'a Repository,
    tree: &'a Tree<'a>,
    parent: &'a Tree<'a>,
    files: &'a [(String, Delta)],
    /// `devices/<author device>.crt`.
    own_device: &'a str,
    /// The author's account.
    uri: &'a str,
}

/// Checks the commits reachable from `tip` and not from `base` (every commit when `base` is
/// `None`), oldest first; returns how many were checked, or the first invalid one.
///
/// The rules are checked in that order on this thread; the RSA signatures of a long history
/// are verified on other threads meanwhile, and the first invalid commit is reported as a
/// check of one commit after the other would report it.
pub fn history(repo: &Repository, base: Option<Oid>, tip: Oid) -> Result<usize, Invalid> {
    Ok(walk(repo, base, tip)?.0)
}

/// [`history`], and the first commit walked (the conversation's root when `base` is `None`).
pub(crate) fn walk(
    repo: &Repository,
    base: Option<Oid>,
    tip: Oid,
) -> Result<(usize, Oid), Invalid> {
    let mut walk = repo.revwalk().map_err(Invalid::other)?;
    walk.push(tip).map_err(Invalid::other)?;
    if let Some(b) = base {
        walk.hide(b).map_err(Invalid::other)?;
    }
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
        .map_err(Invalid::other)?;
    // A topological walk reads the whole graph before it gives its first commit: the errors
    // come then, as they came from `root_of`'s walk before any commit was checked.
    let ids: Vec<Oid> = walk.collect::<Result<_, _>>().map_err(Invalid::other)?;
    let root = match (base, ids.first()) {
        // The same walk as `root_of`'s: the same first commit.
        (None, Some(first)) => repo.find_commit(*first).map_err(Invalid::other)?,
        _ => root_of(repo, tip).map_err(Invalid::other)?,
    };
    let first = ids.first().copied().unwrap_or(tip);
    let workers = if ids.len() >= PARALLEL_FROM {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8)) - 1
    } else {
        0
    };
    if workers == 0 {
        // One commit after the other, each signature verified in its turn.
        let mut certs = Certs::default();
        for id in &ids {
            let signed = repo.extract_signature(id, Some(SIGNATURE_FIELD));
            let c = repo.find_commit(*id).map_err(Invalid::other)?;
            let mut verify = |job: Job| job.check();
            check_commit(repo, &c, signed, &root, &mut certs, &mut verify).map_err(|reason| {
                Invalid {
                    commit: id.to_string(),
                    reason,
                }
            })?;
        }
        return Ok((ids.len(), first));
    }
    let bad = AtomicUsize::new(usize::MAX);
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Job)>(QUEUE);
    let rx = Mutex::new(rx);
    // Verifies queued signatures until the queue closes; `bad` keeps the first that fails.
    let work = || {
        loop {
            let Ok((at, job)) = rx.lock().map_err(drop).and_then(|r| r.recv().map_err(drop)) else {
                return;
            };
            if at < bad.load(Ordering::Relaxed) && job.check().is_err() {
                bad.fetch_min(at, Ordering::Relaxed);
            }
        }
    };
    let stopped = std::thread::scope(|s| {
        for _ in 0..workers {
            // A worker that cannot start leaves its share to this thread.
            let _ = std::thread::Builder::new().spawn_scoped(s, work);
        }
        let mut certs = Certs::default();
        let mut stopped = None;
        for (at, id) in ids.iter().enumerate() {
            if bad.load(Ordering::Relaxed) < at {
                break;
            }
            let signed = repo.extract_signature(id, Some(SIGNATURE_FIELD));
            let c = match repo.find_commit(*id) {
                Ok(c) => c,
                Err(e) => {
                    stopped = Some((at, Invalid::other(e)));
                    break;
                }
            };
            // Queued when a worker can take it, else verified here.
            let mut verify = |job: Job| {
                if let Err(std::sync::mpsc::TrySendError::Full((_, job))) = tx.try_send((at, job)) {
                    if job.check().is_err() {
                        bad.fetch_min(at, Ordering::Relaxed);
                    }
                }
                Ok(())
            };
            if let Err(reason) = check_commit(repo, &c, signed, &root, &mut certs, &mut verify) {
                stopped = Some((
                    at,
                    Invalid {
                        commit: id.to_string(),
                        reason,
                    },
                ));
                break;
            }
        }
        drop(tx);
        work();
        stopped
    });
    // A commit fails on its signature before its rules (and the rules that come before its
    // signature never queue it).
    let bad = bad.into_inner();
    match stopped {
        Some((at, _)) if bad <= at => Err(bad_signature(ids[bad])),
        Some((_, e)) => Err(e),
        None if bad < ids.len() => Err(bad_signature(ids[bad])),
        None => Ok((ids.len(), first)),
    }
}

/// Histories from this many commits have their signatures verified on several threads.
const PARALLEL_FROM: usize = 64;

/// Signatures waiting for a worker, at most.
const QUEUE: usize = 256;

fn bad_signature(id: Oid) -> Invalid {
    Invalid {
        commit: id.to_string(),
        reason: BAD_SIGNATURE.into(),
    }
}

const BAD_SIGNATURE: &str = "bad signature";

/// A commit's signature to verify: the author device's key, the signed bytes, the signature.
struct Job {
    key: Arc<PublicKey>,
    signed: Vec<u8>,
    sig: Vec<u8>,
}

impl Job {
    fn check(&self) -> Check {
        self.key
            .verify(SignatureHash::Sha512, &self.signed, &self.sig)
            .map_err(|_| BAD_SIGNATURE.to_string())
    }
}

/// The root commit of `tip`'s history.
fn root_of<'r>(repo: &'r Repository, tip: Oid) -> Result<Commit<'r>, git2::Error> {
    let mut walk = repo.revwalk()?;
    walk.push(tip)?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
    let id = walk
        .next()
        .ok_or_else(|| git2::Error::from_str("no commit"))??;
    repo.find_commit(id)
}

fn blob(repo: &Repository, tree: &Tree, path: &str) -> Option<Vec<u8>> {
    let e = tree.get_path(Path::new(path)).ok()?;
    let b = e.to_object(repo).ok()?.peel_to_blob().ok()?;
    Some(b.content().to_vec())
}

fn has(tree: &Tree, path: &str) -> bool {
    tree.get_path(Path::new(path)).is_ok()
}

fn cert(repo: &Repository, tree: &Tree, path: &str) -> Option<Vec<Certificate>> {
    Certificate::chain_from_pem_or_der(&blob(repo, tree, path)?).ok()
}

/// The account of device `device` according to `devices/<device>.crt` in `tree` (its
/// issuer's UID).
pub fn account_of_device(repo: &Repository, tree: &Tree, device: &str) -> Option<String> {
    let c = cert(repo, tree, &format!("devices/{device}.crt"))?;
    c.first()?.issuer_uid().filter(|u| !u.is_empty())
}

/// Certificates already read and chains already verified during one walk, by the ids of
/// the blobs that hold them: a history of thousands of commits by a few devices parses and
/// verifies each device's chain once.
#[derive(Default)]
struct Certs {
    parsed: HashMap<Oid, Option<Certificate>>,
    /// (device blob, account blob) pairs whose signature checked out.
    verified: HashSet<(Oid, Oid)>,
    /// The users found valid in a tree (but for the time), by tree and device: the commits
    /// that keep their parent's tree look their author up once.
    users: HashMap<(Oid, String), User>,
}

/// A device found in a tree, its chain checked.
#[derive(Clone)]
struct User {
    /// The device key.
    key: Arc<PublicKey>,
    /// Its account.
    uri: String,
    /// When the device certificate, then the account certificate, expire.
    until: (SystemTime, SystemTime),
}

impl Certs {
    /// The first certificate at `path` in `tree`, and its blob id.
    fn first(&mut self, repo: &Repository, tree: &Tree, path: &str) -> Option<(Oid, Certificate)> {
        let id = tree.get_path(Path::new(path)).ok()?.id();
        let c = self
            .parsed
            .entry(id)
            .or_insert_with(|| cert(repo, tree, path).and_then(|c| c.into_iter().next()));
        Some((id, c.clone()?))
    }
}

/// The device and account behind a commit: jamid's `isValidUserAtCommit`, plus the chain.
fn valid_user(
    repo: &Repository,
    tree: &Tree,
    device: &str,
    time: i64,
    certs: &mut Certs,
) -> Result<(Arc<PublicKey>, String), String> {
    let key = (tree.id(), device.to_owned());
    let user = match certs.users.get(&key) {
        Some(u) => u.clone(),
        None => {
            let u = user_in(repo, tree, device, certs)?;
            certs.users.insert(key, u.clone());
            u
        }
    };
    let at = UNIX_EPOCH + std::time::Duration::from_secs(time.max(0) as u64);
    if user.until.0 < at || user.until.1 < at {
        return Err("a certificate had expired at the commit time".into());
    }
    Ok((user.key, user.uri))
}

/// [`valid_user`] but for the time: the device certificate at its place in `tree`, the
/// account certificate of a member or admin, the device's signed by the account's.
fn user_in(
    repo: &Repository,
    tree: &Tree,
    device: &str,
    certs: &mut Certs,
) -> Result<User, String> {
    let path = format!("devices/{device}.crt");
    let (dev_blob, dev) = certs
        .first(repo, tree, &path)
        .ok_or_else(|| format!("no device certificate {path}"))?;
    if dev.device_id().to_string() != device {
        return Err(format!("{path} holds the certificate of another device"));
    }
    let uri = dev
        .issuer_uid()
        .filter(|u| !u.is_empty())
        .ok_or("the device certificate names no account")?;
    let member = format!("members/{uri}.crt");
    let (acc_blob, acc) = certs
        .first(repo, tree, &member)
        .or_else(|| certs.first(repo, tree, &format!("admins/{uri}.crt")))
        .ok_or_else(|| format!("account {uri} is not a member"))?;
    if acc.jami_id().to_string() != uri {
        return Err(format!(
            "the certificate of member {uri} is another account's"
        ));
    }
    if !certs.verified.contains(&(dev_blob, acc_blob)) {
        dev.verify_signature(acc.public_key())
            .map_err(|_| format!("device {device} is not signed by account {uri}"))?;
        certs.verified.insert((dev_blob, acc_blob));
    }
    Ok(User {
        key: Arc::new(dev.public_key().clone()),
        uri,
        until: (dev.not_after(), acc.not_after()),
    })
}

/// Paths that differ between `old` (or nothing) and `new`, binary files included.
fn changed(
    repo: &Repository,
    old: Option<&Tree>,
    new: &Tree,
) -> Result<Vec<(String, Delta)>, String> {
    if old.is_some_and(|o| o.id() == new.id()) {
        // The same tree: nothing differs (a message commit), no diff to set up.
        return Ok(Vec::new());
    }
    let mut opts = DiffOptions::new();
    opts.include_typechange(true);
    let diff = repo
        .diff_tree_to_tree(old, Some(new), Some(&mut opts))
        .map_err(|e| e.to_string())?;
    Ok(diff
        .deltas()
        .filter_map(|d| {
            let f = if d.status() == Delta::Deleted {
                d.old_file()
            } else {
                d.new_file()
            };
            Some((f.path()?.to_str()?.to_owned(), d.status()))
        })
        .collect())
}

/// Checks commit `c`, whose signature header and signed bytes are `signed`; its signature
/// goes to `verify` (which may check it later) after the checks of its author and before
/// the rules.
fn check_commit(
    repo: &Repository,
    c: &Commit,
    signed: Result<(git2::Buf, git2::Buf), git2::Error>,
    root: &Commit,
    certs: &mut Certs,
    verify: &mut dyn FnMut(Job) -> Check,
) -> Check {
    let device = c.author().email().unwrap_or("").to_owned();
    let tree = c.tree().map_err(|e| e.to_string())?;
    let message = c.message().unwrap_or("");
    let body = Body::parse(message);
    let is_remove = c.parent_count() == 1
        && body
            .as_ref()
            .is_some_and(|b| b.kind() == types::MEMBER && b.get("action") == Some("remove"));
    let parent = if c.parent_count() > 0 {
        Some(c.parent(0).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let ptree = match &parent {
        Some(p) => Some(p.tree().map_err(|e| e.to_string())?),
        None => None,
    };
    // Who wrote it, and the signature.
    let user_tree = if is_remove {
        ptree.as_ref().unwrap_or(&tree)
    } else {
        &tree
    };
    let (key, uri) = valid_user(repo, user_tree, &device, c.time().seconds(), certs)?;
    let (sig, signed) = signed.map_err(|_| "unsigned commit".to_string())?;
    let sig = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &*sig)
        .map_err(|_| "the signature is not base64".to_string())?;
    verify(Job {
        key,
        signed: signed.to_vec(),
        sig,
    })?;

    let files = changed(repo, ptree.as_ref(), &tree)?;
    let Some(p) = ptree else {
        return check_initial(repo, &tree, body.as_ref(), &device, &uri, &files);
    };
    if c.parent_count() > 1 {
        return check_merge(repo, c, &tree);
    }
    let body = body.unwrap_or_default();
    let own_device = format!("devices/{device}.crt");
    let step = Step {
        repo,
        tree: &tree,
        parent: &p,
        files: &files,
        own_device: &own_device,
        uri: &uri,
    };
    match body.kind() {
        types::MEMBER => {
            let target = body.get("uri").unwrap_or("");
            match body.get("action").unwrap_or("") {
                "add" => check_add(&step, root, target),
                "join" => check_join(&step, target),
                "remove" => check_remove(&step, target),
                a @ ("ban" | "unban") => check_vote_resolution(&step, target, a),
                a => Err(format!("unknown member action {a:?}")),
            }
        }
        types::VOTE => check_vote(&step, &device),
        types::PROFILE => {
            if !has(&p, &format!("admins/{uri}.crt")) {
                return Err("only an admin updates the profile".into());
            }
            if files.iter().any(|(f, _)| f != "profile.vcf") || files.is_empty() {
                return Err("a profile update changes profile.vcf only".into());
            }
            Ok(())
        }
        types::EDIT => {
            let edited = body.get("edit").unwrap_or("");
            let target = Oid::from_str(edited)
                .ok()
                .and_then(|o| repo.find_commit(o).ok())
                .ok_or_else(|| format!("edit of an unknown commit {edited:?}"))?;
            let t_dev = target.author().email().unwrap_or("").to_owned();
            let t_tree = target.tree().map_err(|e| e.to_string())?;
            if account_of_device(repo, &t_tree, &t_dev).as_deref() != Some(uri.as_str()) {
                return Err("edit of another account's message".into());
            }
            let t_body = Body::parse(target.message().unwrap_or("")).unwrap_or_default();
            if t_body.kind() != types::TEXT {
                return Err("edit of something that is not a text message".into());
            }
            check_user_diff(&step)
        }
        _ => check_user_diff(&step),
    }
}

fn check_initial(
    repo: &Repository,
    tree: &Tree,
    body: Option<&Body>,
    device: &str,
    uri: &str,
    files: &[(String, Delta)],
) -> Check {
    let body = body.ok_or("the initial commit's message is not JSON")?;
    if body.kind() != types::INITIAL {
        return Err("the root commit is not an initial commit".into());
    }
    let mode = body
        .mode()
        .and_then(Mode::from_i64)
        .ok_or("no valid mode in the initial commit")?;
    let invited = body.get("invited");
    if (mode == Mode::OneToOne) != invited.is_some() {
        return Err("a one-to-one conversation names one invited account".into());
    }
    let admin = format!("admins/{uri}.crt");
    let dev = format!("devices/{device}.crt");
    for (f, _) in files {
        let ok = *f == admin
            || *f == dev
            || *f == format!("CRLs/{uri}")
            || invited.is_some_and(|i| *f == format!("invited/{i}"));
        if !ok {
            return Err(format!("the initial commit adds {f}"));
        }
    }
    let acc = cert(repo, tree, &admin).ok_or("no admin certificate in the initial commit")?;
    if acc.first().map(|a| a.jami_id().to_string()).as_deref() != Some(uri) {
        return Err("the admin certificate is another account's".into());
    }
    Ok(())
}

/// What a message commit may change: its own device certificate, or its own member/admin
/// certificate when it already existed (a renewal keeping the account).
fn check_user_diff(s: &Step) -> Check {
    let (repo, tree, p, own_device, uri) = (s.repo, s.tree, s.parent, s.own_device, s.uri);
    for (f, _) in s.files {
        if f == own_device {
            continue;
        }
        if *f == format!("admins/{uri}.crt") || *f == format!("members/{uri}.crt") {
            let first = |t: &Tree| cert(repo, t, f).and_then(|c| c.into_iter().next());
            let old = first(p).ok_or_else(|| format!("{f} is new or unreadable"))?;
            let new = first(tree).ok_or_else(|| format!("{f} was removed or is unreadable"))?;
            if old.jami_id() != new.jami_id() {
                return Err(format!("{f} now holds another account"));
            }
            continue;
        }
        return Err(format!("a message may not change {f}"));
    }
    Ok(())
}

fn check_add(s: &Step, root: &Commit, target: &str) -> Check {
    let (repo, tree, p, files, own_device, uri) =
        (s.repo, s.tree, s.parent, s.files, s.own_device, s.uri);
    let root_body = Body::parse(root.message().unwrap_or("")).unwrap_or_default();
    if root_body.mode() == Some(Mode::OneToOne as i64) {
        let creator = root
            .tree()
            .ok()
            .and_then(|t| account_of_device(repo, &t, root.author().email().unwrap_or("")));
        if root_body.get("invited") != Some(target) && creator.as_deref() != Some(target) {
            return Err("a one-to-one conversation adds only its two accounts".into());
        }
    }
    if root_body.mode() == Some(Mode::AdminInvitesOnly as i64)
        && !has(p, &format!("admins/{uri}.crt"))
    {
        return Err("only an admin invites in this conversation".into());
    }
    if files.is_empty() || files.len() > 3 {
        return Err("an add changes one to three files".into());
    }
    let invite = format!("invited/{target}");
    for (f, _) in files {
        if *f != own_device && *f != invite && *f != format!("CRLs/{uri}") {
            return Err(format!("an add may not change {f}"));
        }
    }
    if target == uri {
        return Err("an account adds itself".into());
    }
    if blob(repo, tree, &invite).is_none_or(|b| !b.is_empty()) {
        return Err(format!("{invite} is missing or not empty"));
    }
    if has(p, &format!("banned/members/{target}.crt")) {
        return Err("the added account is banned".into());
    }
    Ok(())
}

fn check_join(s: &Step, target: &str) -> Check {
    let (repo, tree, p, files, own_device, uri) =
        (s.repo, s.tree, s.parent, s.files, s.own_device, s.uri);
    let invite = format!("invited/{target}");
    let member = format!("members/{target}.crt");
    for (f, _) in files {
        if *f != invite && *f != member && *f != own_device {
            return Err(format!("a join may not change {f}"));
        }
    }
    if !has(p, &invite) || has(tree, &invite) {
        return Err("the joining account was not invited".into());
    }
    if has(p, &member) || !has(tree, &member) {
        return Err("the join does not add the member certificate".into());
    }
    if target != uri {
        return Err("an account joins for another".into());
    }
    let m = cert(repo, tree, &member)
        .and_then(|c| c.into_iter().next())
        .ok_or("unreadable member certificate")?;
    if m.jami_id().to_string() != target {
        return Err("the member certificate is another account's".into());
    }
    Ok(())
}

fn check_remove(s: &Step, target: &str) -> Check {
    let (repo, p, files, own_device, uri) = (s.repo, s.parent, s.files, s.own_device, s.uri);
    if target != uri && !has(p, &format!("admins/{uri}.crt")) {
        return Err("only the account itself or an admin removes it".into());
    }
    for (f, _) in files {
        let fixed = [
            own_device.to_owned(),
            format!("admins/{target}.crt"),
            format!("members/{target}.crt"),
            format!("CRLs/{target}"),
            format!("invited/{target}"),
        ];
        if fixed.contains(f) {
            continue;
        }
        if let Some(x) = f
            .strip_prefix("devices/")
            .and_then(|r| r.strip_suffix(".crt"))
        {
            if account_of_device(repo, p, x).as_deref() == Some(target) || x == target {
                continue;
            }
        }
        return Err(format!("a removal may not change {f}"));
    }
    Ok(())
}

/// The kinds of entries a vote is about.
const VOTE_KINDS: [&str; 4] = ["members", "admins", "invited", "devices"];

/// `votes/<ban|unban>/<kind>/<voted>/<voter>` split.
fn vote_path(f: &str) -> Option<(&str, &str, &str, &str)> {
    let mut it = f.strip_prefix("votes/")?.split('/');
    let (action, kind, voted, voter) = (it.next()?, it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || !matches!(action, "ban" | "unban") || !VOTE_KINDS.contains(&kind) {
        return None;
    }
    Some((action, kind, voted, voter))
}

/// An admin's vote: one empty file under `votes/`, about someone else who is there.
fn check_vote(s: &Step, device: &str) -> Check {
    let (repo, tree, p, files, own_device, uri) =
        (s.repo, s.tree, s.parent, s.files, s.own_device, s.uri);
    if files.len() > 2 {
        return Err("a vote changes at most two files".into());
    }
    if !has(p, &format!("admins/{uri}.crt")) {
        return Err("only an admin votes".into());
    }
    let mut votes = 0;
    for (f, _) in files {
        if f == own_device {
            if has(p, f) {
                return Err("a vote may not replace a device certificate".into());
            }
            continue;
        }
        let (action, kind, voted, voter) =
            vote_path(f).ok_or_else(|| format!("a vote may not change {f}"))?;
        if voter != uri {
            return Err("a vote in another admin's name".into());
        }
        if has(p, f) || blob(repo, tree, f).is_none_or(|b| !b.is_empty()) {
            return Err(format!("{f} is not a new empty vote"));
        }
        if kind == "devices" {
            if voted == device || !has(p, &format!("devices/{voted}.crt")) {
                return Err("a vote about this device or an unknown one".into());
            }
        } else {
            if voted == uri {
                return Err("a vote about oneself".into());
            }
            let present = has(p, &format!("members/{voted}.crt"))
                || has(p, &format!("admins/{voted}.crt"))
                || has(p, &format!("invited/{voted}"));
            if action == "ban" && !present {
                return Err(format!("a ban vote about {voted}, who is not there"));
            }
        }
        votes += 1;
    }
    if votes == 0 && !files.is_empty() {
        return Err("a vote without a vote file".into());
    }
    Ok(())
}

/// A ban or unban carried out: the votes of at least half of the admins (in the parent's
/// tree, not the local state as jamid reads it) are removed, the entries move to or from
/// `banned/`.
fn check_vote_resolution(s: &Step, target: &str, action: &str) -> Check {
    let (repo, p, files, own_device, uri) = (s.repo, s.parent, s.files, s.own_device, s.uri);
    if !has(p, &format!("admins/{uri}.crt")) {
        return Err(format!("only an admin carries out a {action}"));
    }
    let mut voters = std::collections::HashSet::new();
    let mut banned_changed = false;
    for (f, _) in files {
        let fixed = [
            own_device.to_owned(),
            format!("admins/{target}.crt"),
            format!("members/{target}.crt"),
            format!("CRLs/{target}"),
            format!("invited/{target}"),
        ];
        if fixed.contains(f) {
            continue;
        }
        if let Some((a, _, voted, voter)) = vote_path(f) {
            if a != action || voted != target || !has(p, f) || has(s.tree, f) {
                return Err(format!("{f} is not a vote this {action} resolves"));
            }
            voters.insert(voter.to_owned());
            continue;
        }
        if let Some(x) = f
            .strip_prefix("devices/")
            .and_then(|r| r.strip_suffix(".crt"))
        {
            let before = has(p, f);
            let owner = if before {
                account_of_device(repo, p, x)
            } else {
                account_of_device(repo, s.tree, x)
            };
            let ok_side = if action == "ban" { before } else { !before };
            if ok_side && (owner.as_deref() == Some(target) || x == target) {
                continue;
            }
            return Err(format!("a {action} may not change {f}"));
        }
        let banned = [
            format!("banned/members/{target}.crt"),
            format!("banned/admins/{target}.crt"),
            format!("banned/invited/{target}"),
        ];
        let banned_device = f
            .strip_prefix("banned/devices/")
            .and_then(|r| r.strip_suffix(".crt"))
            .is_some();
        if banned.contains(f) || banned_device {
            banned_changed = true;
            continue;
        }
        return Err(format!("a {action} may not change {f}"));
    }
    if !banned_changed {
        return Err(format!("a {action} that moves nothing in banned/"));
    }
    let admins: Vec<String> = p
        .get_path(Path::new("admins"))
        .ok()
        .and_then(|e| e.to_object(repo).ok()?.into_tree().ok())
        .map(|t| {
            t.iter()
                .filter_map(|e| e.name()?.strip_suffix(".crt").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let counted = voters.iter().filter(|v| admins.contains(v)).count();
    if admins.is_empty() || counted * 2 < admins.len() {
        return Err(format!(
            "{counted} of {} admins voted for this {action}",
            admins.len()
        ));
    }
    Ok(())
}

/// A merge only combines its parents: every path of the result is as in one of them.
fn check_merge(repo: &Repository, c: &Commit, tree: &Tree) -> Check {
    let mut per_parent = Vec::new();
    for p in c.parents() {
        let pt = p.tree().map_err(|e| e.to_string())?;
        let files: std::collections::HashSet<String> = changed(repo, Some(&pt), tree)?
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        per_parent.push(files);
    }
    if let Some(first) = per_parent.first() {
        for f in first {
            if per_parent[1..].iter().all(|s| s.contains(f)) {
                return Err(format!("the merge changes {f} beyond its parents"));
            }
        }
    }
    Ok(())
}
