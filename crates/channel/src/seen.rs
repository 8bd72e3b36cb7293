//! Message ids already delivered.
//!
//! jamid retries a message until it is acknowledged, and may send the same message both as a
//! DHT inbox value and over a `sip` channel, with one id (16 hex digits: the SIP `Message-ID`
//! and the `ImMessage` id). [`Seen`] remembers the ids already handed to the user, optionally
//! in a file (one id per line) so that a restart does not deliver them again. It keeps the
//! newest `capacity` ids.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Default number of ids kept.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Longest id kept (longer ones are refused, so a peer cannot grow the file).
pub const MAX_ID_LEN: usize = 128;

/// A bounded set of message ids, optionally saved in a file.
#[derive(Debug)]
pub struct Seen {
    ids: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
    file: Option<(PathBuf, File)>,
    appended: usize,
}

impl Seen {
    /// An in-memory set keeping the newest `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        Self {
            ids: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            file: None,
            appended: 0,
        }
    }

    /// A set saved in `path` (created when missing), loaded from it.
    pub fn open(path: &Path, capacity: usize) -> io::Result<Self> {
        let mut s = Self::new(capacity);
        match File::open(path) {
            Ok(f) => {
                // A line that is not UTF-8 (a torn write, a bad disk) is skipped, not fatal.
                for line in BufReader::new(f).split(b'\n') {
                    let Ok(id) = String::from_utf8(line?) else {
                        continue;
                    };
                    let id = id.trim();
                    if !id.is_empty() && id.len() <= MAX_ID_LEN {
                        s.remember(id.to_owned());
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        s.file = Some((path.to_owned(), f));
        s.compact()?;
        Ok(s)
    }

    /// Whether `id` was seen.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Records `id`: `true` when it is new (deliver it), `false` when seen before or when the
    /// id is empty or longer than [`MAX_ID_LEN`] (never remembered: deliver, cannot dedup).
    pub fn insert(&mut self, id: &str) -> io::Result<bool> {
        if id.is_empty() || id.len() > MAX_ID_LEN || id.contains(['\n', '\r']) {
            return Ok(true);
        }
        if self.ids.contains(id) {
            return Ok(false);
        }
        self.remember(id.to_owned());
        if let Some((_, f)) = &mut self.file {
            writeln!(f, "{id}")?;
            self.appended += 1;
            if self.appended > self.capacity {
                self.compact()?;
            }
        }
        Ok(true)
    }

    /// Number of ids kept.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no id is kept.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn remember(&mut self, id: String) {
        if self.ids.insert(id.clone()) {
            self.order.push_back(id);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
    }

    /// Rewrites the file with the ids kept, durably (a temporary file of its own, synced,
    /// renamed over the file).
    fn compact(&mut self) -> io::Result<()> {
        let Some((path, _)) = &self.file else {
            return Ok(());
        };
        let path = path.clone();
        let mut all = String::new();
        for id in &self.order {
            all.push_str(id);
            all.push('\n');
        }
        pamoja_identity::durable::replace(&path, all.as_bytes(), 0o600)?;
        let f = OpenOptions::new().append(true).open(&path)?;
        self.file = Some((path, f));
        self.appended = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_each_and_bounded() {
        let mut s = Seen::new(2);
        assert!(s.insert("a").unwrap());
        assert!(!s.insert("a").unwrap());
        assert!(s.insert("b").unwrap());
        assert!(s.insert("c").unwrap());
        assert_eq!(s.len(), 2);
        assert!(!s.contains("a"), "the oldest is forgotten");
        assert!(s.insert("").unwrap() && s.insert("").unwrap());
        assert!(!s.is_empty() && !s.contains(""));
        let long = "x".repeat(MAX_ID_LEN + 1);
        assert!(s.insert(&long).unwrap() && !s.contains(&long));
    }

    #[test]
    fn survives_a_restart_and_stays_small() {
        let dir = std::env::temp_dir().join(format!("pamoja-seen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("seen");
        let _ = std::fs::remove_file(&path);
        {
            let mut s = Seen::open(&path, 3).unwrap();
            for id in ["1", "2", "3", "4", "5", "6", "7", "8"] {
                assert!(s.insert(id).unwrap());
            }
        }
        let s = Seen::open(&path, 3).unwrap();
        assert!(s.contains("8") && s.contains("6") && !s.contains("5"));
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(lines, 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_line_is_skipped_and_a_tmp_sibling_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seen");
        // A line that is not UTF-8 used to stop the start-up.
        std::fs::write(&path, b"aa\n\xff\xfe\nbb\n").unwrap();
        // A sibling named as compaction's temporary file used to be truncated.
        let sibling = dir.path().join("seen.tmp");
        std::fs::write(&sibling, b"someone else's").unwrap();
        let mut s = Seen::open(&path, 2).unwrap();
        assert!(s.contains("aa") && s.contains("bb"));
        for id in ["c", "d", "e"] {
            s.insert(id).unwrap();
        }
        assert_eq!(std::fs::read(&sibling).unwrap(), b"someone else's");
        drop(s);
        let s = Seen::open(&path, 2).unwrap();
        assert!(s.contains("e") && s.contains("d") && !s.contains("aa"));
    }
}
