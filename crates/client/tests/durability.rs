//! The account's files through crashes, full disks and clones gone wrong: the next start
//! always finds the previous state (or the new one), never a part of a file or nothing.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use pamoja_client::contacts::Contacts;
use pamoja_client::{Client, Config, Event, Events};
use pamoja_dht::{Config as DhtConfig, Runner};
use pamoja_identity::{Account, Archive};

/// Set in the child process of [`a_writer_killed_mid_save_leaves_old_or_new_files`]: the
/// directory it saves into, over and over, until it is killed.
const CHILD: &str = "PAMOJA_DURABILITY_CHILD";

async fn start(account: Account, dir: &Path, boot: SocketAddr) -> (Client, Events) {
    Client::start(
        account,
        Config {
            data_dir: dir.to_owned(),
            bootstrap: vec![boot],
            ice_addr: "127.0.0.1".parse().unwrap(),
        },
    )
    .await
    .unwrap()
}

/// A contact list of `n` contacts (ids derived from `n`, so each save differs).
fn contacts(n: usize) -> Contacts {
    let mut c = Contacts::default();
    for i in 0..n {
        c.add(
            &format!("{:040x}", i * 7919 + n),
            &format!("{i:040x}"),
            i as i64,
        );
    }
    c
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:\t0\t")))
}

/// Skips (on a developer's machine) or fails (in CI) a test that needs root.
fn needs_root(what: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "CI: {what} needs root");
    eprintln!("skipped: {what} needs root");
    false
}

#[test]
fn a_writer_killed_mid_save_leaves_old_or_new_files() {
    if let Some(dir) = std::env::var_os(CHILD) {
        // The child: saves bigger and bigger states until killed.
        let dir = Path::new(&dir);
        let archive = Archive::read_file(&dir.join("archive.gz"), None).unwrap();
        for n in (200..).step_by(50) {
            contacts(n).save(dir).unwrap();
            archive.write_file(&dir.join("archive.gz"), None).unwrap();
        }
        return;
    }
    let account = Account::create(|_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    account
        .archive()
        .write_file(&dir.path().join("archive.gz"), None)
        .unwrap();
    contacts(100).save(dir.path()).unwrap();
    let me = std::env::current_exe().unwrap();
    let mut sizes = std::collections::BTreeSet::new();
    for round in 0..12u64 {
        let mut child = std::process::Command::new(&me)
            .args([
                "--exact",
                "a_writer_killed_mid_save_leaves_old_or_new_files",
                "--nocapture",
            ])
            .env(CHILD, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150 + 37 * round));
        child.kill().unwrap(); // SIGKILL: no destructor, no flush
        child.wait().unwrap();
        // Whatever moment it died at, both files read whole.
        let c = Contacts::load(dir.path()).expect("the contacts read after a kill");
        let n = c.contacts.len();
        assert!(n >= 100 && n % 50 == 0, "a whole save: {n} contacts");
        sizes.insert(n);
        let a = Archive::read_file(&dir.path().join("archive.gz"), None)
            .expect("the archive reads after a kill");
        assert_eq!(a, *account.archive());
    }
    eprintln!("contact counts found after the kills: {sizes:?}");
    assert!(sizes.len() > 1, "the child saved between kills");
    // A killed writer's temporary files stay behind and harm nothing: the account starts.
    let temporaries = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        })
        .count();
    eprintln!("temporary files left by killed writers: {temporaries}");
    // And one such file for sure, cut short, as a writer killed mid-write leaves it.
    let whole = std::fs::read(dir.path().join(Contacts::CONTACTS_FILE)).unwrap();
    std::fs::write(
        dir.path().join(".contacts.999-0-0badf00d.tmp"),
        &whole[..whole.len() / 2],
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let boot = Runner::bind("127.0.0.1:0".parse().unwrap(), DhtConfig::default())
            .await
            .unwrap();
        let again = Account::from_archive(
            Archive::read_file(&dir.path().join("archive.gz"), None).unwrap(),
        )
        .unwrap();
        let (client, _ev) = start(again, dir.path(), boot.local_addr()).await;
        let last = Contacts::load(dir.path()).unwrap().contacts.len();
        assert_eq!(client.contacts().len(), last);
        client.shutdown().await;
    });
}

/// Mounts a tmpfs of `size` on `dir` for the life of the guard.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs on {}", dir.display());
        Self(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the file system of `dir` until a write fails with "no space".
fn fill(dir: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0u8; 4096];
    loop {
        match f.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling: {e}"),
        }
    }
    let _ = f.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_saves_and_keeps_the_previous_state() {
    if !needs_root("mounting a tmpfs") {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let _fs = Tmpfs::mount(base.path(), "2m");
    let dir = base.path().join("account");
    std::fs::create_dir(&dir).unwrap();
    let account = Account::create(|_| {}).unwrap();
    account
        .archive()
        .write_file(&dir.join("archive.gz"), None)
        .unwrap();
    let boot = Runner::bind("127.0.0.1:0".parse().unwrap(), DhtConfig::default())
        .await
        .unwrap();
    let peer = Account::create(|_| {}).unwrap().jami_id();
    let again = Account::from_archive(account.archive().clone()).unwrap();
    let (client, _ev) = start(again, &dir, boot.local_addr()).await;
    client.add_contact(&peer).await.unwrap();
    let before = std::fs::read(dir.join(Contacts::CONTACTS_FILE)).unwrap();

    fill(base.path());
    // Saves on the full disk fail; the files keep their last content.
    let other = Account::create(|_| {}).unwrap().jami_id();
    let _ = client.add_contact(&other).await;
    client.shutdown().await;
    assert_eq!(
        std::fs::read(dir.join(Contacts::CONTACTS_FILE)).unwrap(),
        before
    );
    assert!(
        account
            .archive()
            .write_file(&dir.join("archive.gz"), None)
            .is_err(),
        "the disk is full"
    );
    let kept = Archive::read_file(&dir.join("archive.gz"), None).expect("the archive is whole");
    assert_eq!(kept, *account.archive());

    // The next start, disk still full, finds the previous state.
    let (client, _ev) = start(account, &dir, boot.local_addr()).await;
    let ids: Vec<_> = client.contacts().into_iter().map(|c| c.id).collect();
    assert!(
        ids.contains(&peer),
        "the contact saved before the disk filled: {ids:?}"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_into_an_occupied_directory_leaves_it_intact() {
    let boot = Runner::bind("127.0.0.1:0".parse().unwrap(), DhtConfig::default())
        .await
        .unwrap();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, _a_ev) = start(
        Account::create(|_| {}).unwrap(),
        a_dir.path(),
        boot.local_addr(),
    )
    .await;
    let (b, mut b_ev) = start(
        Account::create(|_| {}).unwrap(),
        b_dir.path(),
        boot.local_addr(),
    )
    .await;
    let conv = a.add_contact(&b.jami_id()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while b.trust_requests().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no trust request");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The conversation's directory already holds something of the user's, unreadable.
    let occupied = b_dir.path().join("conversations").join(conv.as_str());
    std::fs::create_dir_all(&occupied).unwrap();
    std::fs::write(occupied.join("precious"), b"mine").unwrap();
    set_mode(&occupied, 0o000);
    assert_eq!(b.accept_contact(&a.jami_id()).await.unwrap(), conv);
    let reason = loop {
        let e = tokio::time::timeout_at(deadline, b_ev.next())
            .await
            .expect("no SyncRefused")
            .expect("events ended");
        if let Event::SyncRefused {
            conversation,
            reason,
            ..
        } = e
        {
            if conversation == conv {
                break reason;
            }
        }
    };
    eprintln!("clone refused: {reason}");
    set_mode(&occupied, 0o755);
    assert_eq!(std::fs::read(occupied.join("precious")).unwrap(), b"mine");
    assert!(!b.conversations().contains(&conv));
    // Nothing of the failed clone is left beside it.
    let left: Vec<_> = std::fs::read_dir(b_dir.path().join("conversations"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    a.shutdown().await;
    b.shutdown().await;
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
