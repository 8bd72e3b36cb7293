//! Files replaced durably: after a crash, a power loss or a full disk, a file written with
//! [`replace`] holds its previous content or its new content, never nothing or a part.
//!
//! The new content goes to a temporary file of its own in the same directory (a name no
//! other writer uses: process id, a counter and random bits), is synced to disk, is renamed
//! over the file, and the directory is synced so that the rename itself is on disk before
//! [`replace`] returns. When any step fails the temporary file is removed and the previous
//! file is left as it was. Temporary files a killed writer left behind start with `.` and
//! end with `.tmp`; [`replace`] never touches another writer's.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Replaces `path` with `data` durably; `mode` (Unix permissions) applies to the new file.
pub fn replace(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let tmp = temporary_for(path)?;
    let written = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
        #[cfg(not(unix))]
        let _ = mode;
        let mut f = opts.open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path)
}

/// Syncs the directory holding `path`, so that a rename or a creation in it is on disk.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = parent(path);
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// A fresh temporary name beside `path`, no other writer's: `.<name>.<pid>-<n>-<random>.tmp`.
pub fn temporary_for(path: &Path) -> io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut r = [0u8; 4];
    aws_lc_rs::rand::fill(&mut r).map_err(|_| io::Error::other("no randomness"))?;
    Ok(parent(path).join(format!(
        ".{}.{}-{}-{:08x}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        u32::from_be_bytes(r)
    )))
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        replace(&path, b"one", 0o600).unwrap();
        replace(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn names_never_repeat_and_another_writers_temporary_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let a = temporary_for(&path).unwrap();
        let b = temporary_for(&path).unwrap();
        assert_ne!(a, b);
        // Another writer's temporary file, mid-write: ours does not touch it.
        std::fs::write(&a, b"theirs").unwrap();
        replace(&path, b"ours", 0o600).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"theirs");
    }

    #[test]
    fn a_failed_replace_keeps_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        replace(&path, b"kept", 0o600).unwrap();
        // Renaming over a directory fails: the previous content stays, no temporary remains.
        let d = dir.path().join("d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("x"), b"").unwrap();
        assert!(replace(&d, b"lost", 0o600).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"kept");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
