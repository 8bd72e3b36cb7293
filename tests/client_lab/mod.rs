//! `jami run --data` driven from a test or a benchmark inside the lab's namespace.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use pamoja_lab::{LAB_ADDR, Lab};
use serde_json::{Value as Json, json};

/// `jami run --data` inside the lab, with its event lines.
pub struct JamiRun {
    child: Child,
    rx: tokio::sync::mpsc::UnboundedReceiver<Json>,
    /// Every event read so far.
    pub all: Vec<Json>,
    next_id: u64,
}

impl JamiRun {
    pub fn start(lab: &Lab, jami: &Path, archive: &Path, data: &Path) -> Self {
        let mut c = lab.netns().command(jami.to_str().unwrap());
        c.arg("run")
            .arg("--archive")
            .arg(archive)
            .arg("--data")
            .arg(data)
            .args(["--bootstrap", "127.0.0.1:4222", "--ice-addr", LAB_ADDR])
            .args(["--timeout", "600"])
            .env("PAMOJA_PASSWORD", "")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let v: Json = serde_json::from_str(&l).expect("one JSON object a line");
                let _ = tx.send(v);
            }
        });
        Self {
            child,
            rx,
            all: Vec::new(),
            next_id: 0,
        }
    }

    /// The process id of `jami run` (`ip netns exec` runs it in place).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first event (already read, or to come within `secs`) that `pred` accepts.
    pub async fn wait(&mut self, secs: u64, pred: impl Fn(&Json) -> bool) -> Json {
        match self.try_wait(secs, pred).await {
            Some(e) => e,
            None => panic!("no such event; got {:#?}", self.all),
        }
    }

    /// [`JamiRun::wait`], with `None` when no such event came in time.
    pub async fn try_wait(&mut self, secs: u64, pred: impl Fn(&Json) -> bool) -> Option<Json> {
        if let Some(e) = self.all.iter().find(|e| pred(e)) {
            return Some(e.clone());
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let e = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .ok()?
                .unwrap_or_else(|| panic!("jami run stopped; got {:#?}", self.all));
            self.all.push(e.clone());
            if pred(&e) {
                return Some(e);
            }
        }
    }

    /// The first event from index `from` of [`JamiRun::all`] on (already read, or to come
    /// within `secs`) that `pred` accepts.
    pub async fn wait_after(
        &mut self,
        from: usize,
        secs: u64,
        pred: impl Fn(&Json) -> bool,
    ) -> Json {
        if let Some(e) = self.all.iter().skip(from).find(|e| pred(e)) {
            return e.clone();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let e = match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(e)) => e,
                Ok(None) => panic!("jami run stopped; got {:#?}", self.all),
                Err(_) => panic!(
                    "no such event; got {:#?}",
                    &self.all[from.min(self.all.len())..]
                ),
            };
            self.all.push(e.clone());
            if pred(&e) {
                return e;
            }
        }
    }

    /// Sends a command and returns its (successful) reply.
    pub async fn cmd(&mut self, mut c: Json) -> Json {
        self.next_id += 1;
        let id = self.next_id;
        c["id"] = json!(id);
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{c}").unwrap();
        stdin.flush().unwrap();
        let r = self
            .wait(120, |e| e["event"] == "reply" && e["id"] == json!(id))
            .await;
        assert_eq!(r["ok"], true, "{c} -> {r}");
        r
    }

    /// The text messages seen so far, in order, as (author, body).
    pub fn texts(&self) -> Vec<(String, String)> {
        self.all
            .iter()
            .filter(|e| e["event"] == "message" && e["type"] == "text/plain")
            .map(|e| {
                (
                    e["author"].as_str().unwrap_or_default().to_owned(),
                    e["body"]["body"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

impl Drop for JamiRun {
    fn drop(&mut self) {
        // Our own child, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
