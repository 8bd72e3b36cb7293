//! A conversation's repository, as jamid keeps it: a non-bare git repository on `main`, whose
//! work tree holds the members' certificates, written one signed commit at a time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use git2::{Oid, Repository, RepositoryInitOptions, Signature, Sort};
use pamoja_identity::key::SignatureHash;
use pamoja_identity::{Account, Certificate, PrivateKey};

use crate::body::Body;
use crate::validate::{self, Invalid};
use crate::{Error, Result};

pub use crate::format::{BRANCH, Mode, SIGNATURE_FIELD};

/// What a device needs to write commits: its key and certificate, its account's chain, and
/// the name written as author.
pub struct Signer {
    /// The device key.
    pub key: PrivateKey,
    /// The device certificate.
    pub device: Certificate,
    /// The account certificate, then its issuer (the Jami CA), as written in `admins/`.
    pub account_chain: Vec<Certificate>,
    /// Display name (author name; `<` and `>` removed, the device id when empty).
    pub name: String,
}

impl Signer {
    /// The signer of an account's own device.
    pub fn of(account: &Account, name: &str) -> Result<Self> {
        let d = account
            .device()
            .ok_or_else(|| Error::Identity("the account holds no device key".into()))?;
        let mut account_chain = vec![account.account_cert().clone()];
        account_chain.extend(account.ca_cert().cloned());
        Ok(Self {
            key: PrivateKey::from_pkcs8_der(d.key.to_pkcs8_der())
                .map_err(|e| Error::Identity(e.to_string()))?,
            device: d.cert.clone(),
            account_chain,
            name: name.to_owned(),
        })
    }

    fn account_id(&self) -> String {
        self.account_chain[0].jami_id().to_string()
    }

    fn device_id(&self) -> String {
        self.device.device_id().to_string()
    }

    fn author(&self, time: i64) -> Result<Signature<'static>> {
        let mut name: String = self
            .name
            .chars()
            .filter(|c| *c != '<' && *c != '>')
            .collect();
        if name.trim().is_empty() {
            name = self.device_id();
        }
        Ok(Signature::new(
            &name,
            &self.device_id(),
            &git2::Time::new(time, 0),
        )?)
    }
}

/// What `profile.vcf` says of a conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// `FN`.
    pub title: Option<String>,
    /// `DESCRIPTION`.
    pub description: Option<String>,
    /// `PHOTO` (base64, as the client gives it).
    pub avatar: Option<String>,
    /// `RDV_ACCOUNT`: the account hosting calls.
    pub rdv_account: Option<String>,
    /// `RDV_DEVICE`: the device hosting calls.
    pub rdv_device: Option<String>,
}

/// One commit as a message of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Commit id.
    pub id: String,
    /// The author's account (from the device certificate in the tree), if it resolves.
    pub author: Option<String>,
    /// The author's device (the commit's author e-mail).
    pub device: String,
    /// `type` of the body, `merge` for a merge.
    pub kind: String,
    /// The body (empty for merges).
    pub body: Body,
    /// Commit time, Unix seconds.
    pub timestamp: i64,
    /// Parent ids.
    pub parents: Vec<String>,
}

/// What [`Conversation::pull`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pulled {
    /// The remote head was already in our history.
    UpToDate,
    /// Our `main` moved forward to the remote head.
    FastForward,
    /// The histories had diverged: a signed merge commit joins them.
    Merged(Oid),
}

/// The accounts of device certificates already read, by the id of the tree entry holding
/// them: the messages of a long history read each device's certificate once.
#[derive(Default)]
struct Authors(RefCell<HashMap<Oid, Option<String>>>);

impl Authors {
    /// [`validate::account_of_device`].
    fn of(&self, repo: &Repository, tree: &git2::Tree, device: &str) -> Option<String> {
        let entry = tree
            .get_path(Path::new(&format!("devices/{device}.crt")))
            .ok()?;
        self.0
            .borrow_mut()
            .entry(entry.id())
            .or_insert_with(|| validate::account_of_device(repo, tree, device))
            .clone()
    }
}

/// A conversation repository.
pub struct Conversation {
    repo: Repository,
    /// The authors of the messages read so far, by device certificate.
    authors: Authors,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Conversation {
    /// Creates a conversation in `dir` (which must be missing or empty): the initial commit
    /// with the creator as admin, its device certificate, and for a one-to-one conversation
    /// the invited account.
    pub fn create(dir: &Path, signer: &Signer, mode: Mode, invited: Option<&str>) -> Result<Self> {
        if dir.exists() && dir.read_dir()?.next().is_some() {
            return Err(Error::NotEmpty(dir.to_owned()));
        }
        if (mode == Mode::OneToOne) != invited.is_some() {
            return Err(Error::Invalid(
                "a one-to-one conversation names exactly one invited account".into(),
            ));
        }
        let mut opts = RepositoryInitOptions::new();
        opts.initial_head("main");
        let repo = Repository::init_opts(dir, &opts)?;
        let c = Self {
            repo,
            authors: Authors::default(),
        };
        let chain: Vec<&Certificate> = signer.account_chain.iter().collect();
        c.write_file(
            &format!("admins/{}.crt", signer.account_id()),
            Certificate::chain_to_pem(&chain).as_bytes(),
        )?;
        c.write_file(
            &format!("devices/{}.crt", signer.device_id()),
            signer.device.to_pem().as_bytes(),
        )?;
        if let Some(i) = invited {
            c.write_file(&format!("invited/{i}"), b"")?;
        }
        c.commit_index(
            signer,
            &Body::initial(mode as u8, invited).encode(),
            unix_now(),
        )?;
        Ok(c)
    }

    /// Opens an existing conversation.
    pub fn open(dir: &Path) -> Result<Self> {
        Ok(Self {
            repo: Repository::open(dir)?,
            authors: Authors::default(),
        })
    }

    /// The git repository.
    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// The conversation id: the root commit's id.
    pub fn id(&self) -> Result<String> {
        let mut walk = self.repo.revwalk()?;
        walk.push(self.head()?)?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
        let root = walk.next().ok_or(Error::Empty)??;
        Ok(root.to_string())
    }

    /// The tip of `main`.
    pub fn head(&self) -> Result<Oid> {
        Ok(self.repo.refname_to_id(BRANCH)?)
    }

    fn workdir(&self) -> Result<PathBuf> {
        self.repo
            .workdir()
            .map(Path::to_owned)
            .ok_or_else(|| Error::Invalid("a bare repository".into()))
    }

    /// Writes a file in the work tree and stages it.
    fn write_file(&self, path: &str, data: &[u8]) -> Result<()> {
        let full = self.workdir()?.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&full, data)?;
        let mut index = self.repo.index()?;
        index.add_path(Path::new(path))?;
        index.write()?;
        Ok(())
    }

    /// Removes a file from the work tree and the index.
    fn remove_file(&self, path: &str) -> Result<()> {
        let root = self.workdir()?;
        let full = root.join(path);
        if full.exists() {
            std::fs::remove_file(&full)?;
        }
        // Directories left empty go too (git does not keep them).
        let mut dir = full.parent();
        while let Some(d) = dir {
            if d == root || std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        let mut index = self.repo.index()?;
        index.remove_path(Path::new(path))?;
        index.write()?;
        Ok(())
    }

    /// Invites account `uri` (an empty `invited/<uri>` file and a `member`/`add` commit).
    pub fn add_member(&self, signer: &Signer, uri: &str) -> Result<Oid> {
        self.write_file(&format!("invited/{uri}"), b"")?;
        self.commit(signer, &Body::member("add", uri))
    }

    /// Joins as `signer`'s account, which must be invited: its invitation goes, its account
    /// certificate (with the CA) comes into `members/`.
    pub fn join(&self, signer: &Signer) -> Result<Oid> {
        let uri = signer.account_id();
        self.remove_file(&format!("invited/{uri}"))?;
        let chain: Vec<&Certificate> = signer.account_chain.iter().collect();
        self.write_file(
            &format!("members/{uri}.crt"),
            Certificate::chain_to_pem(&chain).as_bytes(),
        )?;
        self.commit(signer, &Body::member("join", &uri))
    }

    /// Moves a file in the work tree and the index.
    fn move_file(&self, from: &str, to: &str) -> Result<()> {
        let data = std::fs::read(self.workdir()?.join(from))?;
        self.remove_file(from)?;
        self.write_file(to, &data)
    }

    /// Files directly under `dir` of the work tree.
    fn list(&self, dir: &str) -> Result<Vec<String>> {
        let full = self.workdir()?.join(dir);
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(full) {
            for e in rd {
                let e = e?;
                if e.file_type()?.is_file() {
                    out.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Leaves the conversation as `signer`'s account: its member (or admin) certificate and
    /// its devices' go, in a `member`/`remove` commit (authored from the tree before it).
    pub fn leave(&self, signer: &Signer) -> Result<Oid> {
        let uri = signer.account_id();
        for kind in ["members", "admins"] {
            let f = format!("{kind}/{uri}.crt");
            if self.workdir()?.join(&f).exists() {
                self.remove_file(&f)?;
            }
        }
        for d in self.list("devices")? {
            if self.device_account("devices", &d)?.as_deref() == Some(uri.as_str()) {
                self.remove_file(&format!("devices/{d}"))?;
            }
        }
        self.commit_index(signer, &Body::member("remove", &uri).encode(), unix_now())
    }

    /// Votes, as an admin, to ban account `uri` (a member, an admin or an invited account);
    /// once at least half of the admins voted, the ban is carried out: its certificate and
    /// its devices' move to `banned/`, the votes go. Returns the commits made.
    pub fn vote_ban(&self, signer: &Signer, uri: &str) -> Result<Vec<Oid>> {
        let kind = ["members", "admins"]
            .into_iter()
            .find(|k| {
                self.workdir()
                    .is_ok_and(|w| w.join(format!("{k}/{uri}.crt")).exists())
            })
            .or_else(|| {
                self.workdir()
                    .is_ok_and(|w| w.join(format!("invited/{uri}")).exists())
                    .then_some("invited")
            })
            .ok_or_else(|| Error::Invalid(format!("{uri} is not in the conversation")))?;
        self.vote(signer, "ban", kind, uri)
    }

    /// Votes, as an admin, to let banned account `uri` back; carried out as
    /// [`Conversation::vote_ban`].
    pub fn vote_unban(&self, signer: &Signer, uri: &str) -> Result<Vec<Oid>> {
        let kind = ["members", "admins"]
            .into_iter()
            .find(|k| {
                self.workdir()
                    .is_ok_and(|w| w.join(format!("banned/{k}/{uri}.crt")).exists())
            })
            .ok_or_else(|| Error::Invalid(format!("{uri} is not banned")))?;
        self.vote(signer, "unban", kind, uri)
    }

    fn vote(&self, signer: &Signer, action: &str, kind: &str, uri: &str) -> Result<Vec<Oid>> {
        let me = signer.account_id();
        let dir = format!("votes/{action}/{kind}/{uri}");
        self.write_file(&format!("{dir}/{me}"), b"")?;
        let mut made = vec![self.commit(signer, &Body::vote(uri))?];
        let admins = self.list("admins")?;
        let votes = self
            .list(&dir)?
            .into_iter()
            .filter(|v| admins.contains(&format!("{v}.crt")))
            .count();
        if admins.is_empty() || votes * 2 < admins.len() {
            return Ok(made);
        }
        for v in self.list(&dir)? {
            self.remove_file(&format!("{dir}/{v}"))?;
        }
        let cert = if kind == "invited" {
            uri.to_owned()
        } else {
            format!("{uri}.crt")
        };
        if action == "ban" {
            self.move_file(&format!("{kind}/{cert}"), &format!("banned/{kind}/{cert}"))?;
            for d in self.list("devices")? {
                if self.device_account("devices", &d)?.as_deref() == Some(uri) {
                    self.move_file(&format!("devices/{d}"), &format!("banned/devices/{d}"))?;
                }
            }
        } else {
            self.move_file(&format!("banned/{kind}/{cert}"), &format!("{kind}/{cert}"))?;
            for d in self.list("banned/devices")? {
                if self.device_account("banned/devices", &d)?.as_deref() == Some(uri) {
                    self.move_file(&format!("banned/devices/{d}"), &format!("devices/{d}"))?;
                }
            }
        }
        made.push(self.commit(signer, &Body::member(action, uri))?);
        Ok(made)
    }

    /// The account of a device certificate file in the work tree.
    fn device_account(&self, dir: &str, file: &str) -> Result<Option<String>> {
        let data = std::fs::read(self.workdir()?.join(dir).join(file))?;
        Ok(Certificate::chain_from_pem_or_der(&data)
            .ok()
            .and_then(|c| c.first()?.issuer_uid()))
    }

    /// Rewrites `profile.vcf` (title, description, avatar in base64, the default host of
    /// calls), as jamid writes it, and commits the change; needs an admin.
    pub fn update_profile(&self, signer: &Signer, infos: &Profile) -> Result<Oid> {
        let mut lines = vec!["BEGIN:VCARD".to_owned(), "VERSION:2.1".to_owned()];
        if let Some(t) = &infos.title {
            lines.push(format!("FN:{t}"));
        }
        if let Some(d) = &infos.description {
            lines.push(format!("DESCRIPTION:{d}"));
        }
        lines.push(match &infos.avatar {
            Some(a) => format!("PHOTO;ENCODING=BASE64:{a}"),
            None => "PHOTO;ENCODING=BASE64".to_owned(),
        });
        if let Some(a) = &infos.rdv_account {
            lines.push(format!("RDV_ACCOUNT:{a}"));
        }
        lines.push(String::new());
        if let Some(d) = &infos.rdv_device {
            lines.push(format!("RDV_DEVICE:{d}"));
        }
        lines.push(String::new());
        lines.push("END:VCARD".to_owned());
        self.write_file("profile.vcf", lines.join("\n").as_bytes())?;
        self.commit(signer, &Body::profile_update())
    }

    /// Commits the index with `message`, signed, on top of `main`.
    fn commit_index(&self, signer: &Signer, message: &str, time: i64) -> Result<Oid> {
        let mut index = self.repo.index()?;
        let tree = self.repo.find_tree(index.write_tree()?)?;
        let parent = match self.repo.refname_to_id(BRANCH) {
            Ok(id) => Some(self.repo.find_commit(id)?),
            Err(_) => None,
        };
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        let id = self.write_signed(signer, message, &tree, &parents, time)?;
        self.repo.reference(BRANCH, id, true, "commit")?;
        Ok(id)
    }

    /// Writes a commit object signed by `signer` (the `signature` header over the commit's
    /// content, as jamid signs it); moves no reference.
    fn write_signed(
        &self,
        signer: &Signer,
        message: &str,
        tree: &git2::Tree,
        parents: &[&git2::Commit],
        time: i64,
    ) -> Result<Oid> {
        let who = signer.author(time)?;
        let buf = self
            .repo
            .commit_create_buffer(&who, &who, message, tree, parents)?;
        let content = buf
            .as_str()
            .ok_or_else(|| Error::Invalid("commit buffer is not UTF-8".into()))?;
        let sig = signer
            .key
            .sign(SignatureHash::Sha512, content.as_bytes())
            .map_err(|e| Error::Identity(e.to_string()))?;
        let sig = base64::engine::general_purpose::STANDARD.encode(sig);
        Ok(self
            .repo
            .commit_signed(content, &sig, Some(SIGNATURE_FIELD))?)
    }

    /// Commits `body` as `signer` (adding its device certificate first when the tree lacks
    /// it, as jamid does).
    pub fn commit(&self, signer: &Signer, body: &Body) -> Result<Oid> {
        self.commit_at(signer, body, unix_now())
    }

    /// [`Conversation::commit`] with a given commit time.
    pub fn commit_at(&self, signer: &Signer, body: &Body, time: i64) -> Result<Oid> {
        let dev = format!("devices/{}.crt", signer.device_id());
        let head = self.repo.find_commit(self.head()?)?;
        if head.tree()?.get_path(Path::new(&dev)).is_err() {
            self.write_file(&dev, signer.device.to_pem().as_bytes())?;
        }
        self.commit_index(signer, &body.encode(), time)
    }

    /// Posts a text message.
    pub fn post(&self, signer: &Signer, text: &str) -> Result<Oid> {
        self.commit(signer, &Body::text(text, None))
    }

    /// The messages in display order (newest first: topological, then by time), at most
    /// `limit`, starting at `from` (inclusive) or at the head.
    pub fn messages(&self, from: Option<Oid>, limit: Option<usize>) -> Result<Vec<Message>> {
        let start = from.map_or_else(|| self.head(), Ok)?;
        if let Some(n) = limit {
            // The newest page of a linear stretch of history is that stretch, whatever the
            // rest of the graph: no need to sort the whole history (which a topological
            // walk does before giving its first commit).
            let mut out = Vec::with_capacity(n);
            let mut c = Some(self.repo.find_commit(start)?);
            while let Some(commit) = c {
                if out.len() >= n {
                    return Ok(out);
                }
                match commit.parent_count() {
                    0 => {
                        out.push(self.message(commit.id())?);
                        return Ok(out);
                    }
                    1 => {
                        out.push(self.message(commit.id())?);
                        c = Some(commit.parent(0)?);
                    }
                    // A merge within the page: the full walk decides the order.
                    _ => break,
                }
            }
            if out.len() >= n {
                return Ok(out);
            }
        }
        let mut walk = self.repo.revwalk()?;
        walk.push(start)?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)?;
        let mut out = Vec::new();
        for id in walk {
            if limit.is_some_and(|n| out.len() >= n) {
                break;
            }
            out.push(self.message(id?)?);
        }
        Ok(out)
    }

    /// Up to `n` messages before commit `id` (exclusive), in display order: the page that
    /// follows one that ended at `id`.
    pub fn messages_before(&self, id: Oid, n: usize) -> Result<Vec<Message>> {
        let mut walk = self.repo.revwalk()?;
        walk.push(self.head()?)?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)?;
        let mut out = Vec::new();
        let mut seen = false;
        for c in walk {
            let c = c?;
            if seen {
                if out.len() >= n {
                    break;
                }
                out.push(self.message(c)?);
            } else if c == id {
                seen = true;
            }
        }
        if !seen {
            return Err(Error::Invalid(format!("{id} is not in the conversation")));
        }
        Ok(out)
    }

    /// One commit as a message.
    pub fn message(&self, id: Oid) -> Result<Message> {
        let c = self.repo.find_commit(id)?;
        let device = c.author().email().unwrap_or("").to_owned();
        let text = c.message().unwrap_or("");
        let merge = c.parent_count() > 1;
        let body = if merge {
            Body::default()
        } else {
            Body::parse(text).unwrap_or_default()
        };
        Ok(Message {
            id: id.to_string(),
            author: self.authors.of(&self.repo, &c.tree()?, &device),
            kind: if merge {
                "merge".into()
            } else {
                body.kind().to_owned()
            },
            device,
            body,
            timestamp: c.time().seconds(),
            parents: c.parent_ids().map(|p| p.to_string()).collect(),
        })
    }

    /// Takes in the history that ends at `remote` (objects of the repository, or fetched
    /// into [`crate::git::quarantine_dir`] by [`crate::git::fetch`]): every commit of it
    /// that we do not have is validated first, and nothing changes when one fails (the
    /// quarantined objects are deleted; accepted, they move into the object database).
    /// Then, as jamid: nothing to do, a fast-forward, or a signed merge commit `Merge commit
    /// '<remote>'` (a conflict on `profile.vcf` takes the side whose head id sorts last; any
    /// other conflict refuses).
    pub fn pull(&self, signer: &Signer, remote: Oid) -> Result<Pulled> {
        let quarantine = crate::git::quarantine_dir(&self.repo, remote);
        let quarantined = quarantine.is_dir();
        // Quarantined objects are read through a second handle on the repository, so that
        // ours never refers to the quarantine once it is gone.
        let view = if quarantined {
            let r = Repository::open(self.repo.path())?;
            r.odb()?.add_disk_alternate(&quarantine.to_string_lossy())?;
            Some(r)
        } else {
            None
        };
        let checked = view.as_ref().unwrap_or(&self.repo);
        let head = self.head()?;
        let verdict = if head == remote || checked.graph_descendant_of(head, remote)? {
            Ok(false)
        } else {
            validate::history(checked, Some(head), remote).map(|_| true)
        };
        drop(view);
        match verdict {
            Ok(false) => {
                if quarantined {
                    std::fs::remove_dir_all(&quarantine)?;
                }
                return Ok(Pulled::UpToDate);
            }
            Err(e) => {
                if quarantined {
                    std::fs::remove_dir_all(&quarantine)?;
                }
                return Err(Error::Rejected(e));
            }
            Ok(true) if quarantined => crate::git::admit(&self.repo, &quarantine)?,
            Ok(true) => {}
        }
        if self.repo.graph_descendant_of(remote, head)? {
            let target = self.repo.find_commit(remote)?;
            self.repo.reference(BRANCH, remote, true, "fast-forward")?;
            self.repo.checkout_tree(
                target.as_object(),
                Some(git2::build::CheckoutBuilder::new().force()),
            )?;
            self.repo.index()?.read_tree(&target.tree()?)?;
            return Ok(Pulled::FastForward);
        }
        let ours = self.repo.find_commit(head)?;
        let theirs = self.repo.find_commit(remote)?;
        let mut index = self.repo.merge_commits(&ours, &theirs, None)?;
        if index.has_conflicts() {
            let conflicts: Vec<git2::IndexConflict> =
                index.conflicts()?.collect::<std::result::Result<_, _>>()?;
            for c in conflicts {
                let (Some(_), Some(our), Some(their)) = (c.ancestor, c.our, c.their) else {
                    return Err(Error::Conflict(
                        "a file added or removed on both sides".into(),
                    ));
                };
                let path = String::from_utf8_lossy(&our.path).into_owned();
                if path != "profile.vcf" {
                    return Err(Error::Conflict(path));
                }
                let pick = if remote.to_string() > head.to_string() {
                    their
                } else {
                    our
                };
                index.remove_path(Path::new(&path))?;
                let mut entry = pick;
                entry.flags &= !0x3000; // stage 0
                index.add(&entry)?;
            }
        }
        let tree = self.repo.find_tree(index.write_tree_to(&self.repo)?)?;
        let message = format!("Merge commit '{remote}'");
        let id = self.write_signed(signer, &message, &tree, &[&ours, &theirs], unix_now())?;
        self.repo.reference(BRANCH, id, true, "merge")?;
        let merged = self.repo.find_commit(id)?;
        self.repo.checkout_tree(
            merged.as_object(),
            Some(git2::build::CheckoutBuilder::new().force()),
        )?;
        self.repo.index()?.read_tree(&tree)?;
        self.repo.index()?.write()?;
        Ok(Pulled::Merged(id))
    }

    /// Checks every commit of `main`, oldest first, with the rules of [`validate`]; the
    /// first that fails, with why.
    pub fn verify(&self) -> std::result::Result<usize, Invalid> {
        validate::history(&self.repo, None, self.head().map_err(Invalid::other)?)
    }
}

/// An account's place in a conversation, from the tree of `main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `admins/<uri>.crt`.
    Admin,
    /// `members/<uri>.crt`.
    Member,
    /// `invited/<uri>`.
    Invited,
    /// Under `banned/`.
    Banned,
}

impl Role {
    /// The name jamid gives the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
            Self::Invited => "invited",
            Self::Banned => "banned",
        }
    }
}

impl Conversation {
    /// Every account named in the tree of `main`, with its role (a banned account once, as
    /// banned).
    pub fn members(&self) -> Result<Vec<(String, Role)>> {
        let tree = self.repo.find_commit(self.head()?)?.tree()?;
        let mut out: Vec<(String, Role)> = Vec::new();
        let mut names = |dir: &str, role: Role| -> Result<()> {
            let Ok(entry) = tree.get_path(Path::new(dir)) else {
                return Ok(());
            };
            let Ok(sub) = self.repo.find_tree(entry.id()) else {
                return Ok(());
            };
            for e in sub.iter() {
                let Some(name) = e.name() else { continue };
                let uri = name.strip_suffix(".crt").unwrap_or(name);
                if e.kind() == Some(git2::ObjectType::Blob)
                    && uri.len() == 40
                    && uri.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    out.retain(|(u, _)| u != uri);
                    out.push((uri.to_owned(), role));
                }
            }
            Ok(())
        };
        names("invited", Role::Invited)?;
        names("members", Role::Member)?;
        names("admins", Role::Admin)?;
        for sub in ["invited", "members", "admins"] {
            names(&format!("banned/{sub}"), Role::Banned)?;
        }
        Ok(out)
    }

    /// The certificate chain (device, account, CA) of `device` (64 hex digits) as the tree of
    /// `main` holds it, when that device wrote to the conversation.
    pub fn device_chain(&self, device: &str) -> Option<Vec<Certificate>> {
        let tree = self.repo.find_commit(self.head().ok()?).ok()?.tree().ok()?;
        let blob = |path: &str| -> Option<Vec<u8>> {
            let e = tree.get_path(Path::new(path)).ok()?;
            Some(self.repo.find_blob(e.id()).ok()?.content().to_vec())
        };
        let dev = Certificate::chain_from_pem_or_der(&blob(&format!("devices/{device}.crt"))?)
            .ok()?
            .into_iter()
            .next()?;
        let account = crate::validate::account_of_device(&self.repo, &tree, device)?;
        let pem = blob(&format!("admins/{account}.crt"))
            .or_else(|| blob(&format!("members/{account}.crt")))?;
        let mut chain = vec![dev];
        chain.extend(Certificate::chain_from_pem_or_der(&pem).ok()?);
        Some(chain)
    }
}
