//! `jami conv`: swarm conversations in a directory, as jamid keeps them.
//!
//! ```text
//! jami conv new --archive PATH --dir DIR [--mode N] [--invite JAMI_ID]
//!     {"id": CONVERSATION_ID, "dir": DIR, "mode": N}
//! jami conv post DIR TEXT --archive PATH
//!     {"id": COMMIT_ID}
//! jami conv log DIR [--last N]
//!     one object per message, newest first:
//!     {"id", "author", "device", "type", "body", "timestamp", "parents"}
//! jami conv verify DIR
//!     {"valid": true, "commits": N}; or exit 1 with the first invalid commit and why
//! ```

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Subcommand;
use pamoja::swarm::{Conversation, Mode, Signer};
use serde_json::{Value, json};

#[derive(Subcommand)]
pub enum ConvCmd {
    /// Create a conversation in DIR (missing or empty).
    New {
        /// The account's archive (password from PAMOJA_PASSWORD).
        #[arg(long)]
        archive: PathBuf,
        /// Where the conversation's repository goes.
        #[arg(long)]
        dir: PathBuf,
        /// 0 one-to-one (with --invite), 1 admin invites only, 2 invites only, 3 public.
        #[arg(long, default_value_t = 2)]
        mode: u8,
        /// The other account of a one-to-one conversation.
        #[arg(long)]
        invite: Option<String>,
    },
    /// Post a text message.
    Post {
        /// The conversation's directory.
        dir: PathBuf,
        /// The text.
        text: String,
        /// The account's archive.
        #[arg(long)]
        archive: PathBuf,
    },
    /// Print the messages, newest first, one JSON object per line.
    Log {
        /// The conversation's directory.
        dir: PathBuf,
        /// Only the last N.
        #[arg(long)]
        last: Option<usize>,
    },
    /// Check every commit (signatures, certificates, who changed what).
    Verify {
        /// The conversation's directory.
        dir: PathBuf,
    },
}

fn signer(archive: &std::path::Path) -> Result<Signer> {
    let account = super::open(archive)?;
    Ok(Signer::of(&account, "")?)
}

/// Runs a `conv` command.
pub fn run(cmd: ConvCmd) -> Result<Value> {
    match cmd {
        ConvCmd::New {
            archive,
            dir,
            mode,
            invite,
        } => {
            let Some(m) = Mode::from_i64(i64::from(mode)) else {
                bail!("--mode must be 0, 1, 2 or 3");
            };
            if let Some(i) = &invite {
                if i.len() != 40 || !i.bytes().all(|b| b.is_ascii_hexdigit()) {
                    bail!("--invite must be a Jami ID (40 hex digits)");
                }
            }
            let c = Conversation::create(&dir, &signer(&archive)?, m, invite.as_deref())?;
            Ok(json!({"id": c.id()?, "dir": dir, "mode": mode}))
        }
        ConvCmd::Post { dir, text, archive } => {
            let c = Conversation::open(&dir)?;
            let id = c.post(&signer(&archive)?, &text)?;
            Ok(json!({"id": id.to_string()}))
        }
        ConvCmd::Log { dir, last } => {
            let c = Conversation::open(&dir)?;
            for m in c.messages(None, last)? {
                println!(
                    "{}",
                    json!({"id": m.id, "author": m.author, "device": m.device, "type": m.kind,
                        "body": m.body.get("body"), "timestamp": m.timestamp,
                        "parents": m.parents})
                );
            }
            Ok(Value::Null)
        }
        ConvCmd::Verify { dir } => {
            let c = Conversation::open(&dir)?;
            match c.verify() {
                Ok(n) => Ok(json!({"valid": true, "commits": n})),
                Err(e) => {
                    println!(
                        "{}",
                        json!({"valid": false, "commit": e.commit, "reason": e.reason})
                    );
                    bail!("invalid commit {}: {}", e.commit, e.reason)
                }
            }
        }
    }
}
