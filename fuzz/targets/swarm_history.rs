//! History validation on arbitrary repositories: the input becomes a chain of commits (each
//! chunk a file's content and a commit message, some chunks naming Jami's paths), then
//! the validator walks it as it walks a peer's fetched history. No panic.

use git2::{Repository, Signature};
use pamoja_swarm::validate;

const PATHS: &[&str] = &[
    "admins/a.crt",
    "members/a.crt",
    "devices/d.crt",
    "invited/x",
    "banned/members/a.crt",
    "CRLs/a",
    "profile.vcf",
    "f",
];

/// One input.
pub fn run(data: &[u8]) {
    let dir = tempfile::tempdir().expect("a directory");
    let repo = Repository::init(dir.path()).expect("a repository");
    let sig = Signature::new(
        "fuzz",
        "fuzz@example.invalid",
        &git2::Time::new(1_700_000_000, 0),
    )
    .expect("a signature");
    let mut parent: Option<git2::Oid> = None;
    let mut base = None;
    for (i, chunk) in data.chunks(24).take(8).enumerate() {
        let path = PATHS[usize::from(chunk.first().copied().unwrap_or(0)) % PATHS.len()];
        let mut index = repo.index().expect("an index");
        if let Some(p) = parent {
            let tree = repo
                .find_commit(p)
                .expect("parent")
                .tree()
                .expect("its tree");
            index.read_tree(&tree).expect("read");
        }
        let blob = repo.blob(chunk).expect("a blob");
        let entry = git2::IndexEntry {
            ctime: git2::IndexTime::new(0, 0),
            mtime: git2::IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            file_size: chunk.len() as u32,
            id: blob,
            flags: path.len() as u16,
            flags_extended: 0,
            path: path.as_bytes().to_vec(),
        };
        index.add(&entry).expect("an entry");
        let tree = repo
            .find_tree(index.write_tree_to(&repo).expect("a tree"))
            .expect("the tree");
        // git cannot hold a NUL in a commit message: the harness drops them.
        let message = String::from_utf8_lossy(chunk).replace('\0', "");
        let parents: Vec<git2::Commit> = parent
            .iter()
            .map(|p| repo.find_commit(*p).expect("parent"))
            .collect();
        let refs: Vec<&git2::Commit> = parents.iter().collect();
        let id = repo
            .commit(None, &sig, &sig, &message, &tree, &refs)
            .expect("a commit");
        if i == 1 {
            base = parent;
        }
        parent = Some(id);
    }
    if let Some(tip) = parent {
        let _ = validate::history(&repo, None, tip);
        let _ = validate::history(&repo, base, tip);
    }
}
