//! The git upload-pack server as a conversation's peer drives it: any bytes as fetch
//! requests (split anywhere) against a small repository. No panic.

use std::sync::OnceLock;

use git2::{Repository, Signature};
use pamoja_swarm::git::UploadPack;

/// A repository with a short history on `main`, made once.
fn repo_dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a directory");
        let repo = Repository::init(dir.path()).expect("a repository");
        let sig = Signature::now("fuzz", "fuzz@example.invalid").expect("a signature");
        let mut parent = None;
        for i in 0..3 {
            let mut tb = repo.treebuilder(None).expect("a tree builder");
            let blob = repo.blob(format!("file {i}").as_bytes()).expect("a blob");
            tb.insert("f", blob, 0o100644).expect("an entry");
            let tree = repo
                .find_tree(tb.write().expect("a tree"))
                .expect("the tree");
            let parents: Vec<git2::Commit> = parent
                .iter()
                .map(|p| repo.find_commit(*p).expect("parent"))
                .collect();
            let refs: Vec<&git2::Commit> = parents.iter().collect();
            let id = repo
                .commit(
                    Some("refs/heads/main"),
                    &sig,
                    &sig,
                    &format!("c{i}"),
                    &tree,
                    &refs,
                )
                .expect("a commit");
            parent = Some(id);
        }
        dir
    })
    .path()
}

/// One input.
pub fn run(data: &[u8]) {
    let repo = Repository::open(repo_dir()).expect("the repository");
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut server = UploadPack::default();
    if server.handle(&repo, &data[..split]).is_ok() {
        let _ = server.handle(&repo, &data[split..]);
    }
}
