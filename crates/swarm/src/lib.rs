//! # pamoja-swarm: Jami conversations on git
//!
//! In Jami every conversation is a git repository that each member's devices hold in full:
//! the members' certificates live in its tree (`admins/`, `members/`, `devices/`,
//! `invited/`), and every message is a commit whose message is a small JSON object, signed
//! with the author device's key in a `signature` header. This crate reads and writes such
//! repositories as jamid does, on libgit2 (`git2`):
//!
//! * [`body`]: commit messages as jamid's jsoncpp writes them (sorted keys, `\uXXXX`
//!   escapes), for every type jamid 2023 commits;
//! * [`conversation`]: create a conversation (each mode), commit signed messages as a
//!   device, list messages in display order, take in a fetched history (validated first,
//!   then fast-forward or a signed merge, as jamid);
//! * [`validate`]: the rules a history must follow, checked commit by commit: jamid's, plus
//!   the signature and the device → account chain that jamid 2023 does not check.
//!
//! * [`git`]: the git smart protocol (upload-pack, and fetch) over any byte stream, as
//!   conversations travel on `git://` channels.
//!
//!
//! # Driving a fetch
//!
//! The git protocol is two state machines, [`git::Fetch`] (the client) and
//! [`git::UploadPack`] (the server), fed with the bytes of any stream; [`git::fetch`],
//! [`git::clone`] and [`git::serve`] drive them over an async stream. A fetched history is
//! taken in only after it validates: its objects wait outside the object database
//! ([`git::quarantine_dir`]) until `pull` accepts them, and a refused history leaves none.
//!
//! ```text
//! let head = git::fetch(&dir, &mut stream, conversation, device).await?;  // quarantined
//! match Conversation::open(&dir)?.pull(&signer, head)? {                 // validated, moved in
//!     Pulled::UpToDate => {}
//!     Pulled::FastForward | Pulled::Merged(_) => { /* new messages: messages(..) */ }
//! }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::PathBuf;

pub mod body;
pub mod conversation;
mod format;
pub mod git;
pub mod validate;

pub use body::Body;
pub use conversation::{Conversation, Message, Mode, Profile, Pulled, Role, Signer};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// libgit2 failed.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// File system.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Keys or certificates.
    #[error("identity: {0}")]
    Identity(String),
    /// A conversation cannot be created there.
    #[error("{} is not empty", .0.display())]
    NotEmpty(PathBuf),
    /// The repository has no commit.
    #[error("the conversation has no commit")]
    Empty,
    /// A request that makes no sense.
    #[error("{0}")]
    Invalid(String),
    /// A fetched history failed validation; nothing was changed.
    #[error("rejected: {0}")]
    Rejected(validate::Invalid),
    /// The git protocol went wrong.
    #[error("git protocol: {0}")]
    Protocol(String),
    /// The histories conflict on this path; nothing was merged.
    #[error("conflict on {0}")]
    Conflict(String),
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
