//! Repository changes the core asks for ([`GitOp`]), run on the blocking pool or over a
//! `git://` channel.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pamoja_identity::DeviceId;
use pamoja_swarm::{Conversation, Pulled, Signer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Shared;
use crate::core::{GitOp, GitOutcome, Input, is_hex_id};
use crate::error::ClientError;
use crate::id::{ConversationId, MessageId};
use crate::instant;

/// Longest a fetch may take (a first clone has no limit).
const FETCH_LIMIT: Duration = Duration::from_secs(300);
/// Bytes between two progress reports of a clone.
const PROGRESS_STEP: u64 = 1 << 20;

type Result<T> = std::result::Result<T, ClientError>;

/// The directory of a conversation.
pub(super) fn conv_dir(data: &Path, id: &str) -> PathBuf {
    data.join("conversations").join(id)
}

/// Opens a conversation we hold.
pub(super) fn open(data: &Path, id: &str) -> Result<Conversation> {
    if !is_hex_id(id, 40) || !conv_dir(data, id).join(".git").exists() {
        return Err(ClientError::UnknownConversation(crate::core::cid(id)));
    }
    Ok(Conversation::open(&conv_dir(data, id))?)
}

/// The conversations held (their ids, sorted).
pub(super) fn conversation_ids(data: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(data.join("conversations")) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| is_hex_id(n, 40) && conv_dir(data, n).join(".git").exists())
        .collect();
    v.sort();
    v
}

/// Removes what a killed process left half made: `.new-*` (creations) and `.clone-*`
/// (clones) under `conversations/`, never a conversation's own directory.
pub(super) fn remove_leftovers(data: &Path) {
    let Ok(rd) = std::fs::read_dir(data.join("conversations")) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".new-") || name.starts_with(".clone-") {
            tracing::info!("removing the unfinished {name}");
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ClientError::Io(io::Error::other(e)))?
}

/// Runs a change of `conversation` (`None`: a creation).
pub(super) async fn run(
    shared: Arc<Shared>,
    conversation: Option<ConversationId>,
    op: GitOp,
) -> Result<GitOutcome> {
    let conversation = conversation.map(|c| c.as_str().to_owned());
    let data = shared.data.clone();
    let signer = shared.signer.clone();
    match op {
        GitOp::Create { mode, invited } => {
            let mut r = [0u8; 8];
            aws_lc_rs::rand::fill(&mut r).map_err(|_| io::Error::other("no randomness"))?;
            blocking(move || {
                let tmp = data
                    .join("conversations")
                    .join(format!(".new-{}", hex::encode(r)));
                let invited = invited.map(|i| i.to_string());
                let c = Conversation::create(&tmp, &signer, mode, invited.as_deref())?;
                let id = c.id()?;
                let members = c.members()?;
                drop(c);
                std::fs::rename(&tmp, conv_dir(&data, &id))?;
                Ok(GitOutcome {
                    created: Some(crate::core::cid(&id)),
                    members,
                    ..GitOutcome::default()
                })
            })
            .await
        }
        GitOp::History => {
            let conv =
                conversation.ok_or(ClientError::Io(io::Error::other("no conversation named")))?;
            blocking(move || {
                let c = open(&data, &conv)?;
                let mut commits = c.messages(None, None)?;
                commits.reverse();
                Ok(GitOutcome {
                    commits,
                    ..GitOutcome::default()
                })
            })
            .await
        }
        GitOp::Post(_)
        | GitOp::AddMember(_)
        | GitOp::Join
        | GitOp::Leave
        | GitOp::VoteBan(_)
        | GitOp::Remove => {
            let conv =
                conversation.ok_or(ClientError::Io(io::Error::other("no conversation named")))?;
            blocking(move || commit(&data, &signer, &conv, op)).await
        }
        GitOp::Fetch {
            device,
            account: _,
            chain,
        } => {
            let conv =
                conversation.ok_or(ClientError::Io(io::Error::other("no conversation named")))?;
            fetch(&shared, &conv, &device, chain).await
        }
        GitOp::Clone { chains } => {
            let conv =
                conversation.ok_or(ClientError::Io(io::Error::other("no conversation named")))?;
            clone(&shared, &conv, chains).await
        }
    }
}

/// A change of ours: the new commits and the members after it.
fn commit(data: &Path, signer: &Signer, conv: &str, op: GitOp) -> Result<GitOutcome> {
    if op == GitOp::Remove {
        std::fs::remove_dir_all(conv_dir(data, conv))?;
        return Ok(GitOutcome::default());
    }
    let c = open(data, conv)?;
    let ids = match &op {
        GitOp::Post(text) => vec![c.post(signer, text)?],
        GitOp::AddMember(id) => vec![c.add_member(signer, &id.to_string())?],
        GitOp::Join => vec![c.join(signer)?],
        GitOp::Leave => vec![c.leave(signer)?],
        GitOp::VoteBan(id) => c.vote_ban(signer, &id.to_string())?,
        _ => Vec::new(),
    };
    let commits = ids
        .into_iter()
        .map(|id| c.message(id))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(GitOutcome {
        commits,
        members: c.members()?,
        ..GitOutcome::default()
    })
}

/// Fetches from `device`, validates and merges.
async fn fetch(
    shared: &Arc<Shared>,
    conv: &str,
    dev: &DeviceId,
    chain: Option<Vec<pamoja_identity::Certificate>>,
) -> Result<GitOutcome> {
    let data = shared.data.clone();
    let device = dev.to_string();
    let c = open(&data, conv)?;
    let before = c.head()?;
    let known = c.device_chain(&device);
    drop(c);
    let name = format!("git://{device}/{conv}");
    let ch = match shared.dialer.open_linked(dev, &name).await {
        Ok(ch) => ch,
        Err(_) => {
            let chain = chain
                .or(known)
                .ok_or_else(|| ClientError::UnknownDevice(device.to_owned()))?;
            shared.dialer.channel(&chain, &name, "").await?
        }
    };
    let mut stream = ch.into_stream();
    let dir = conv_dir(&data, conv);
    let (signer, conv) = (shared.signer.clone(), conv.to_owned());
    // The git exchange and the validation run on the blocking pool: libgit2 works there
    // without holding a reactor thread.
    let handle = tokio::runtime::Handle::current();
    blocking(move || {
        let remote = handle
            .block_on(async {
                tokio::time::timeout(
                    FETCH_LIMIT,
                    pamoja_swarm::git::fetch(&dir, &mut stream, &conv, &device),
                )
                .await
            })
            .map_err(|_| {
                ClientError::Io(io::Error::new(io::ErrorKind::TimedOut, "fetch timed out"))
            })??;
        drop(stream);
        let c = open(&data, &conv)?;
        let pulled = c
            .pull(&signer, remote)
            .map_err(|e| ClientError::Refused(e.to_string()))?;
        let moved_to = match pulled {
            Pulled::UpToDate => None,
            Pulled::Merged(id) => Some(MessageId::trusted(id.to_string())),
            Pulled::FastForward => Some(MessageId::trusted(remote.to_string())),
        };
        let commits = if moved_to.is_some() {
            new_commits(&c, before)
        } else {
            Vec::new()
        };
        Ok(GitOutcome {
            commits,
            members: c.members()?,
            moved_to,
            ..GitOutcome::default()
        })
    })
    .await
}

/// Clones from the first device that serves the conversation.
async fn clone(
    shared: &Arc<Shared>,
    conv: &str,
    chains: Vec<Vec<pamoja_identity::Certificate>>,
) -> Result<GitOutcome> {
    let mut refused = Vec::new();
    for chain in chains {
        let dev = chain[0].public_key().device_id().to_string();
        let name = format!("git://{dev}/{conv}");
        let ch = match shared
            .dialer
            .channel(&chain, &name, instant::MIME_GIT)
            .await
        {
            Ok(ch) => ch,
            Err(e) => {
                tracing::info!("clone of {conv} from {dev}: {e}");
                continue;
            }
        };
        // The clone is made beside the conversation's directory and moved there only once
        // whole and valid: a failed clone removes its own directory, never the target.
        let dir = conv_dir(&shared.data, conv);
        let mut r = [0u8; 8];
        aws_lc_rs::rand::fill(&mut r).map_err(|_| io::Error::other("no randomness"))?;
        let tmp = shared
            .data
            .join("conversations")
            .join(format!(".clone-{}", hex::encode(r)));
        let inputs = shared.inputs.clone();
        let c2 = conv.to_owned();
        let mut stream = Counting {
            inner: ch.into_stream(),
            bytes: 0,
            next: PROGRESS_STEP,
            report: Box::new(move |bytes| {
                let _ = inputs.send(Input::Progress {
                    conversation: crate::core::cid(&c2),
                    bytes,
                });
            }),
        };
        let handle = tokio::runtime::Handle::current();
        let (c2, d2, tmp2, dir2) = (conv.to_owned(), dev.clone(), tmp.clone(), dir.clone());
        let cloned = tokio::task::spawn_blocking(move || {
            let r = handle.block_on(pamoja_swarm::git::clone(&tmp2, &mut stream, &c2, &d2));
            drop(stream);
            r.map(drop).map_err(ClientError::from).and_then(|()| {
                // A rename over a directory that is not empty fails: what is there stays.
                std::fs::rename(&tmp2, &dir2)?;
                Ok(pamoja_identity::durable::sync_dir(&dir2)?)
            })
        })
        .await
        .map_err(|e| ClientError::Io(io::Error::other(e)))?;
        match cloned {
            Ok(()) => {
                let (data, conv) = (shared.data.clone(), conv.to_owned());
                return blocking(move || {
                    let c = open(&data, &conv)?;
                    Ok(GitOutcome {
                        members: c.members()?,
                        refused,
                        ..GitOutcome::default()
                    })
                })
                .await;
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                refused.push((dev, e.to_string()));
            }
        }
    }
    Err(ClientError::CloneRefused(refused))
}

/// The commits of `main` that `before` does not reach, oldest first.
fn new_commits(c: &Conversation, before: git2::Oid) -> Vec<pamoja_swarm::Message> {
    let repo = c.repo();
    let Ok(head) = c.head() else {
        return Vec::new();
    };
    let Ok(mut walk) = repo.revwalk() else {
        return Vec::new();
    };
    let _ = walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME | git2::Sort::REVERSE);
    if walk.push(head).is_err() || walk.hide(before).is_err() {
        return Vec::new();
    }
    walk.filter_map(|o| c.message(o.ok()?).ok()).collect()
}

/// Counts what a stream reads and reports progress every [`PROGRESS_STEP`] bytes.
struct Counting<S> {
    inner: S,
    bytes: u64,
    next: u64,
    report: Box<dyn Fn(u64) + Send>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.bytes += n;
        if self.bytes >= self.next {
            self.next = self.bytes + PROGRESS_STEP;
            (self.report)(self.bytes);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
