//! The git smart protocol (version 0, upload-pack only), as conversations are fetched over a
//! `git://<device>/<conversation>` channel: a server answering fetches from a repository,
//! and a client fetching into one, over any byte stream.
//!
//! Both sides follow jamid's `GitServer` and libgit2's client closely enough to talk to
//! either: the server advertises every reference with `side-band side-band-64k
//! no-progress include-tag`, honours one `want`, ACKs the first `have` it holds (and again
//! after `done`, where libgit2 waits for one ACK or NAK), always
//! sends the pack on side-band 1 in pkt-lines of at most 65,520 bytes, and starts over after
//! each pack (several sessions run on one channel). The client writes its whole request in
//! one write (jamid's server cannot read a pkt-line split across writes), takes any mix of
//! `ACK`/`NAK` lines before the pack, and refuses packs over 256 MiB.
//!
//! [`UploadPack`] and [`FetchState`] are the protocol as state machines over bytes; [`serve`]
//! and [`fetch`] drive them over an `AsyncRead + AsyncWrite` stream.

use std::path::{Path, PathBuf};

use git2::{Oid, Repository};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{Error, Result};

/// Largest pack a fetch accepts (jamid's limit).
pub const MAX_PACK: usize = 256 * 1024 * 1024;

/// Largest side-band pkt-line the server writes (band byte included).
pub const MAX_BAND_PKT: usize = 65_520;

/// One pkt-line: 4 hex digits of length (counting themselves), then `data`.
pub fn pkt(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:04x}", data.len() + 4).into_bytes();
    out.extend_from_slice(data);
    out
}

/// The flush packet.
pub const FLUSH: &[u8] = b"0000";

/// A packet read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pkt {
    /// `0000`.
    Flush,
    /// A line's payload.
    Data(Vec<u8>),
}

/// Splits a byte stream into packets.
#[derive(Debug, Default)]
pub struct PktReader {
    buf: Vec<u8>,
}

impl PktReader {
    /// Adds bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole packet; an error for a length that is not 4 hex digits or is 1 to 3.
    pub fn next_pkt(&mut self) -> Result<Option<Pkt>> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = std::str::from_utf8(&self.buf[..4])
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok())
            .ok_or_else(|| Error::Protocol("bad pkt-line length".into()))?;
        if len == 0 {
            self.buf.drain(..4);
            return Ok(Some(Pkt::Flush));
        }
        if len < 4 {
            return Err(Error::Protocol(format!("pkt-line length {len}")));
        }
        if self.buf.len() < len {
            return Ok(None);
        }
        let data = self.buf[4..len].to_vec();
        self.buf.drain(..len);
        Ok(Some(Pkt::Data(data)))
    }
}

fn oid_at(line: &[u8], prefix: &str) -> Option<Oid> {
    let rest = line.strip_prefix(prefix.as_bytes())?;
    let hex = std::str::from_utf8(rest.get(..40)?).ok()?;
    Oid::from_str(hex).ok()
}

/// The server side of one channel: reads requests, writes advertisements, ACKs and packs.
#[derive(Debug, Default)]
pub struct UploadPack {
    reader: PktReader,
    want: Option<Oid>,
    haves: Vec<Oid>,
    common: Option<Oid>,
    /// Wanted commits sent so far (one per session).
    pub served: Vec<Oid>,
}

impl UploadPack {
    /// Feeds bytes from the client; returns what to write back (possibly nothing).
    pub fn handle(&mut self, repo: &Repository, input: &[u8]) -> Result<Vec<u8>> {
        self.reader.push(input);
        let mut out = Vec::new();
        while let Some(p) = self.reader.next_pkt()? {
            match p {
                Pkt::Data(line) if line.starts_with(b"git-upload-pack ") => {
                    out.extend(advertisement(repo)?);
                }
                Pkt::Data(line) if line.starts_with(b"want ") => {
                    self.want = oid_at(&line, "want ");
                }
                Pkt::Data(line) if line.starts_with(b"have ") => {
                    if let Some(h) = oid_at(&line, "have ") {
                        self.haves.push(h);
                        if self.common.is_none() && repo.find_commit(h).is_ok() {
                            self.common = Some(h);
                            out.extend(pkt(format!("ACK {h}\n").as_bytes()));
                        }
                    }
                }
                Pkt::Flush => {
                    if !self.haves.is_empty() && self.common.is_none() {
                        out.extend(pkt(b"NAK\n"));
                    }
                }
                Pkt::Data(line) if line.starts_with(b"done") => {
                    // libgit2 (without multi_ack) reads exactly one ACK or NAK after `done`,
                    // even when it had its ACK already.
                    match self.common {
                        Some(c) => out.extend(pkt(format!("ACK {c}\n").as_bytes())),
                        None => out.extend(pkt(b"NAK\n")),
                    }
                    if let Some(want) = self.want.take() {
                        out.extend(send_pack(repo, want, &self.haves)?);
                        self.served.push(want);
                    }
                    self.haves.clear();
                    self.common = None;
                }
                // shallow, deepen, filter...: not supported, ignored as jamid does.
                Pkt::Data(_) => {}
            }
        }
        Ok(out)
    }
}

/// Every reference, `HEAD` first with the capabilities.
fn advertisement(repo: &Repository) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let head = repo.refname_to_id("HEAD")?;
    let mut first = format!("{head} HEAD").into_bytes();
    first.push(0);
    first.extend_from_slice(b"side-band side-band-64k no-progress include-tag\n");
    out.extend(pkt(&first));
    for r in repo.references()? {
        let r = r?;
        if let (Some(name), Some(id)) = (r.name(), r.target()) {
            out.extend(pkt(format!("{id} {name}\n").as_bytes()));
        }
    }
    out.extend_from_slice(FLUSH);
    Ok(out)
}

/// The pack of what `want` reaches and `haves` do not, on side-band 1, then a flush.
fn send_pack(repo: &Repository, want: Oid, haves: &[Oid]) -> Result<Vec<u8>> {
    let mut walk = repo.revwalk()?;
    walk.push(want)?;
    for h in haves {
        if repo.find_commit(*h).is_ok() {
            walk.hide(*h)?;
        }
    }
    let mut pb = repo.packbuilder()?;
    // The delta search on every core (0: as many threads as the machine has).
    pb.set_threads(0);
    pb.insert_walk(&mut walk)?;
    let mut buf = git2::Buf::new();
    pb.write_buf(&mut buf)?;
    let mut out = Vec::with_capacity(buf.len() + buf.len() / 60_000 * 5 + 16);
    for chunk in buf.chunks(MAX_BAND_PKT - 5) {
        let mut line = Vec::with_capacity(chunk.len() + 1);
        line.push(1);
        line.extend_from_slice(chunk);
        out.extend(pkt(&line));
    }
    out.extend_from_slice(FLUSH);
    Ok(out)
}

/// Serves fetches of the repository at `dir` on `stream` until the client closes it;
/// returns the commits sent, one per session.
pub async fn serve<S>(dir: &Path, stream: S) -> Result<Vec<Oid>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    serve_with(dir, stream, |_| {}).await
}

/// [`serve`], calling `served` with the wanted commit each time a pack went out (a peer
/// that fetched something new from us may have merged it with commits of its own).
pub async fn serve_with<S>(
    dir: &Path,
    mut stream: S,
    mut served: impl FnMut(Oid),
) -> Result<Vec<Oid>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let repo = Repository::open(dir)?;
    let mut server = UploadPack::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(server.served);
        }
        let before = server.served.len();
        let start = std::time::Instant::now();
        let out = server.handle(&repo, &buf[..n])?;
        if !out.is_empty() {
            stream.write_all(&out).await?;
            stream.flush().await?;
        }
        tracing::debug!(
            "git serve {}: read {n} bytes, answered {} bytes in {:?}",
            dir.display(),
            out.len(),
            start.elapsed()
        );
        for o in &server.served[before..] {
            served(*o);
        }
    }
}

/// Where a fetch stands.
#[derive(Debug)]
pub enum FetchState {
    /// Waiting for the reference advertisement.
    Refs,
    /// Request sent; acknowledgements, then the pack.
    Pack(Oid),
    /// Done: the remote head, and whether a pack came.
    Done(Oid, Option<Vec<u8>>),
}

#[derive(Clone, Copy)]
enum Phase {
    Refs,
    Pack(Oid),
    Done,
}

/// The client side of one fetch session.
pub struct Fetch {
    reader: PktReader,
    state: FetchState,
    head: Option<Oid>,
    pack: Vec<u8>,
    /// Pack bytes received so far, taken or not.
    received: usize,
}

impl Fetch {
    /// A fetch of conversation `conversation` from device `device`; the first bytes to write.
    pub fn start(conversation: &str, device: &str) -> (Self, Vec<u8>) {
        let mut req = format!("git-upload-pack /{conversation}").into_bytes();
        req.push(0);
        req.extend_from_slice(format!("host={device}").as_bytes());
        req.push(0);
        (
            Self {
                reader: PktReader::default(),
                state: FetchState::Refs,
                head: None,
                pack: Vec::new(),
                received: 0,
            },
            pkt(&req),
        )
    }

    /// Feeds bytes from the server; returns what to write (possibly nothing). `have` says
    /// which commits we hold (newest first; at most 256 are sent).
    pub fn handle(
        &mut self,
        input: &[u8],
        have: &[Oid],
        holds: impl Fn(Oid) -> bool,
    ) -> Result<Vec<u8>> {
        self.reader.push(input);
        let mut out = Vec::new();
        while let Some(p) = self.reader.next_pkt()? {
            let phase = match &self.state {
                FetchState::Refs => Phase::Refs,
                FetchState::Pack(h) => Phase::Pack(*h),
                FetchState::Done(..) => Phase::Done,
            };
            match (phase, p) {
                (Phase::Refs, Pkt::Data(line)) => {
                    let text = String::from_utf8_lossy(&line);
                    let text = text.split('\0').next().unwrap_or("").trim_end();
                    if let Some((id, name)) = text.split_once(' ') {
                        if name == "refs/heads/main" || (name == "HEAD" && self.head.is_none()) {
                            self.head = Oid::from_str(id).ok();
                        }
                    }
                }
                (Phase::Refs, Pkt::Flush) => {
                    let head = self
                        .head
                        .ok_or_else(|| Error::Protocol("no main branch advertised".into()))?;
                    if holds(head) {
                        out.extend_from_slice(FLUSH);
                        self.state = FetchState::Done(head, None);
                        return Ok(out);
                    }
                    // One write: want, flush, haves, done.
                    out.extend(pkt(format!("want {head} side-band-64k\n").as_bytes()));
                    out.extend_from_slice(FLUSH);
                    for h in have.iter().take(256) {
                        out.extend(pkt(format!("have {h}\n").as_bytes()));
                    }
                    out.extend(pkt(b"done\n"));
                    self.state = FetchState::Pack(head);
                }
                (Phase::Pack(_), Pkt::Data(line))
                    if line.starts_with(b"ACK ") || line.starts_with(b"NAK") => {}
                (Phase::Pack(_), Pkt::Data(line)) => match line.first() {
                    Some(1) => {
                        if self.received + line.len() > MAX_PACK {
                            return Err(Error::Protocol("pack over 256 MiB".into()));
                        }
                        self.received += line.len() - 1;
                        self.pack.extend_from_slice(&line[1..]);
                    }
                    Some(2) => {}
                    Some(3) => {
                        return Err(Error::Protocol(format!(
                            "server error: {}",
                            String::from_utf8_lossy(&line[1..])
                        )));
                    }
                    _ => return Err(Error::Protocol("unexpected line before the pack".into())),
                },
                (Phase::Pack(head), Pkt::Flush) => {
                    self.state = FetchState::Done(head, Some(std::mem::take(&mut self.pack)));
                    return Ok(out);
                }
                (Phase::Done, _) => break,
            }
        }
        Ok(out)
    }

    /// The outcome once done.
    pub fn state(&self) -> &FetchState {
        &self.state
    }

    /// The pack bytes received since the last call, which the fetch then no longer holds
    /// (the pack of [`FetchState::Done`] is what came after): a driver can index a pack while
    /// it arrives.
    pub fn take_pack(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pack)
    }
}

/// Where a fetched pack waits until its history is validated: its own `pack/` directory
/// under `objects/incoming/<head>`, outside the object database (git's "quarantine").
/// [`crate::Conversation::pull`] moves it in when the history is accepted and deletes it
/// when not, so a refused history leaves no object behind.
pub fn quarantine_dir(repo: &Repository, head: Oid) -> PathBuf {
    incoming_dir(repo).join(head.to_string())
}

fn incoming_dir(repo: &Repository) -> PathBuf {
    repo.path().join("objects").join("incoming")
}

/// Fetches `main` of conversation `conversation` from device `device` over `stream` into
/// the repository at `dir`; returns the remote head. The pack is indexed as it arrives into
/// [`quarantine_dir`], not into the object database, and nothing else changes: validate and
/// merge with [`crate::Conversation::pull`], which moves the objects in only if the history
/// is accepted.
pub async fn fetch<S>(dir: &Path, stream: &mut S, conversation: &str, device: &str) -> Result<Oid>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let repo = Repository::open(dir)?;
    let have: Vec<Oid> = match repo.refname_to_id(crate::conversation::BRANCH) {
        Ok(head) => {
            let mut walk = repo.revwalk()?;
            walk.push(head)?;
            walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME)?;
            walk.take(256).collect::<std::result::Result<_, _>>()?
        }
        Err(_) => Vec::new(),
    };
    let (mut f, first) = Fetch::start(conversation, device);
    stream.write_all(&first).await?;
    stream.flush().await?;
    let mut buf = vec![0u8; 64 * 1024];
    let odb = repo.odb()?;
    // A directory of this fetch's own; renamed to the head's quarantine once complete.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let partial = incoming_dir(&repo).join(format!(
        "partial-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let result = async {
        let mut indexer: Option<git2::Indexer<'_>> = None;
        loop {
            if let FetchState::Done(head, pack) = f.state() {
                let head = *head;
                if let Some(pack) = pack {
                    let mut w = match indexer.take() {
                        Some(w) => w,
                        None => open_indexer(&odb, &partial)?,
                    };
                    std::io::Write::write_all(&mut w, pack)?;
                    w.commit()?;
                    let q = quarantine_dir(&repo, head);
                    if q.exists() {
                        std::fs::remove_dir_all(&q)?;
                    }
                    std::fs::rename(&partial, &q)?;
                    odb.add_disk_alternate(&q.to_string_lossy())?;
                }
                if repo.find_commit(head).is_err() {
                    let _ = std::fs::remove_dir_all(quarantine_dir(&repo, head));
                    return Err(Error::Protocol("the pack lacks the advertised head".into()));
                }
                return Ok(head);
            }
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(Error::Protocol("the server closed the stream".into()));
            }
            let out = f.handle(&buf[..n], &have, |o| repo.find_commit(o).is_ok())?;
            if !out.is_empty() {
                stream.write_all(&out).await?;
                stream.flush().await?;
            }
            let part = f.take_pack();
            if !part.is_empty() {
                let w = match &mut indexer {
                    Some(w) => w,
                    None => indexer.insert(open_indexer(&odb, &partial)?),
                };
                std::io::Write::write_all(w, &part)?;
            }
        }
    }
    .await;
    if partial.exists() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    result
}

/// Moves the packs of a quarantine ([`quarantine_dir`]) into the object database of
/// `repo`, unchecked: for a caller that validated the history itself, or that removes the
/// whole repository when it does not validate (as [`clone`] does).
/// [`crate::Conversation::pull`] is the checked way.
pub fn admit(repo: &Repository, quarantine: &Path) -> Result<()> {
    let packs = repo.path().join("objects").join("pack");
    std::fs::create_dir_all(&packs)?;
    // The index last: a pack is only seen once its index is there.
    let mut files: Vec<PathBuf> = std::fs::read_dir(quarantine.join("pack"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.sort_by_key(|p| p.extension().is_some_and(|e| e == "idx"));
    for f in files {
        if let Some(name) = f.file_name() {
            std::fs::rename(&f, packs.join(name))?;
        }
    }
    std::fs::remove_dir_all(quarantine)?;
    repo.odb()?.refresh()?;
    Ok(())
}

/// An indexer writing a pack into `dir/pack` (created), resolving thin-pack bases from `odb`.
fn open_indexer<'a>(odb: &git2::Odb<'a>, dir: &Path) -> Result<git2::Indexer<'a>> {
    std::fs::create_dir_all(dir.join("pack"))?;
    Ok(git2::Indexer::new(Some(odb), &dir.join("pack"), 0, true)?)
}

/// Clones conversation `conversation` from device `device` over `stream` into `dir` (missing
/// or empty): fetched, every commit validated, then checked out on `main`. On a rejection
/// the directory is removed, as jamid removes a clone that fails.
pub async fn clone<S>(
    dir: &Path,
    stream: &mut S,
    conversation: &str,
    device: &str,
) -> Result<crate::Conversation>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if dir.exists() && dir.read_dir()?.next().is_some() {
        return Err(Error::NotEmpty(dir.to_owned()));
    }
    {
        let mut opts = git2::RepositoryInitOptions::new();
        opts.initial_head("main");
        Repository::init_opts(dir, &opts)?;
    }
    let result = async {
        let head = fetch(dir, stream, conversation, device).await?;
        let repo = Repository::open(dir)?;
        // A refused clone is removed whole: its objects need no quarantine.
        let q = quarantine_dir(&repo, head);
        if q.is_dir() {
            admit(&repo, &q)?;
        }
        // The first commit of the validated walk is the root, the conversation's id.
        let (_, root) = crate::validate::walk(&repo, None, head).map_err(Error::Rejected)?;
        let commit = repo.find_commit(head)?;
        repo.reference(crate::conversation::BRANCH, head, true, "clone")?;
        let c = crate::Conversation::open(dir)?;
        if root.to_string() != conversation {
            return Err(Error::Protocol("another conversation came".into()));
        }
        repo.checkout_tree(
            commit.as_object(),
            Some(git2::build::CheckoutBuilder::new().force()),
        )?;
        let mut index = repo.index()?;
        index.read_tree(&commit.tree()?)?;
        index.write()?;
        Ok(c)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkt_lines() {
        assert_eq!(pkt(b"done\n"), b"0009done\n");
        let mut r = PktReader::default();
        r.push(b"0009do");
        assert_eq!(r.next_pkt().unwrap(), None);
        r.push(b"ne\n00000006a\n");
        assert_eq!(r.next_pkt().unwrap(), Some(Pkt::Data(b"done\n".to_vec())));
        assert_eq!(r.next_pkt().unwrap(), Some(Pkt::Flush));
        assert_eq!(r.next_pkt().unwrap(), Some(Pkt::Data(b"a\n".to_vec())));
        for bad in [&b"zzzz"[..], b"0002"] {
            let mut r = PktReader::default();
            r.push(bad);
            assert!(r.next_pkt().is_err());
        }
    }

    #[test]
    fn negotiation_in_batches_as_libgit2_does() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let sig = git2::Signature::now("t", "t").unwrap();
        let tree = repo
            .find_tree(repo.index().unwrap().write_tree().unwrap())
            .unwrap();
        let root = repo
            .commit(Some("HEAD"), &sig, &sig, "{}", &tree, &[])
            .unwrap();
        let mut up = UploadPack::default();
        // Twenty unknown haves, a flush: NAK.
        let mut req = pkt(format!("want {root}\n").as_bytes());
        req.extend_from_slice(FLUSH);
        for i in 0..20u8 {
            req.extend(pkt(format!(
                "have {}\n",
                Oid::from_bytes(&[i + 1; 20]).unwrap()
            )
            .as_bytes()));
        }
        req.extend_from_slice(FLUSH);
        assert_eq!(up.handle(&repo, &req).unwrap(), pkt(b"NAK\n"));
        // A batch with a common commit: one ACK; then `done`: one more ACK, then the pack.
        let mut req = pkt(format!("have {root}\n").as_bytes());
        req.extend_from_slice(FLUSH);
        let ack = pkt(format!("ACK {root}\n").as_bytes());
        assert_eq!(up.handle(&repo, &req).unwrap(), ack);
        let out = up.handle(&repo, &pkt(b"done\n")).unwrap();
        assert!(out.starts_with(&ack));
        let mut r = PktReader::default();
        r.push(&out[ack.len()..]);
        let Some(Pkt::Data(first)) = r.next_pkt().unwrap() else {
            panic!("no pack")
        };
        assert_eq!(&first[..5], b"\x01PACK");
        assert!(out.ends_with(FLUSH));
        assert_eq!(up.served, vec![root]);
    }

    #[test]
    fn a_pack_taken_as_it_arrives_is_the_whole_pack() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let sig = git2::Signature::now("t", "t").unwrap();
        let tree = repo
            .find_tree(repo.index().unwrap().write_tree().unwrap())
            .unwrap();
        let mut head = repo
            .commit(Some("HEAD"), &sig, &sig, "{}", &tree, &[])
            .unwrap();
        for i in 0..50 {
            let parent = repo.find_commit(head).unwrap();
            head = repo
                .commit(Some("HEAD"), &sig, &sig, &format!("{i}"), &tree, &[&parent])
                .unwrap();
        }
        // The server's answers to one fetch, fed to the client in small pieces.
        let (mut whole, first) = Fetch::start("c", "d");
        let mut up = UploadPack::default();
        let refs = up.handle(&repo, &first).unwrap();
        let request = whole.handle(&refs, &[], |_| false).unwrap();
        let answer = up.handle(&repo, &request).unwrap();
        let (mut parts, _) = Fetch::start("c", "d");
        parts.handle(&refs, &[], |_| false).unwrap();
        whole.handle(&answer, &[], |_| false).unwrap();
        let mut taken = Vec::new();
        for piece in answer.chunks(7) {
            parts.handle(piece, &[], |_| false).unwrap();
            taken.extend(parts.take_pack());
        }
        let (FetchState::Done(h1, Some(p1)), FetchState::Done(h2, Some(rest))) =
            (whole.state(), parts.state())
        else {
            panic!("not done")
        };
        taken.extend_from_slice(rest);
        assert_eq!((*h1, *h2), (head, head));
        assert!(p1.starts_with(b"PACK"));
        assert_eq!(&taken, p1);
    }

    #[test]
    fn request_line_as_jamid_writes_it() {
        let (_, first) = Fetch::start(&"a".repeat(40), &"b".repeat(64));
        assert_eq!(&first[..4], b"0084");
        assert_eq!(first.len(), 0x84);
        assert!(first.ends_with(b"\0"));
    }
}
