//! The call contract of the `jami` command line, between two Pamoja accounts on a loopback
//! DHT: `jami call` to a `jami run --data` that answers by itself (`settings` with
//! `auto_answer`), with video, and `jami run`'s `call`, `answer` and `hangup` commands
//! between two `jami run`s. Checked: the `call_state` events, the final `call_stats` object with its
//! fields, and the tones each side recorded.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pamoja::media::audio::{analyse_windows, read_wav};
use serde_json::{Value as Json, json};

mod common;
use common::{jami_bin, new_archive};

/// `jami run --data` on loopback, its events read on a thread.
struct Run {
    child: Child,
    rx: std::sync::mpsc::Receiver<Json>,
    all: Vec<Json>,
    next_id: u64,
}

impl Run {
    fn start(archive: &Path, data: &Path, boot: &str) -> Self {
        let mut child = Command::new(jami_bin())
            .arg("run")
            .arg("--archive")
            .arg(archive)
            .arg("--data")
            .arg(data)
            .args([
                "--bootstrap",
                boot,
                "--ice-addr",
                "127.0.0.1",
                "--timeout",
                "300",
            ])
            .env("PAMOJA_PASSWORD", "")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
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

    fn wait(&mut self, secs: u64, pred: impl Fn(&Json) -> bool) -> Json {
        if let Some(e) = self.all.iter().find(|e| pred(e)) {
            return e.clone();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let e = self
                .rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no such event; got {:#?}", self.all));
            self.all.push(e.clone());
            if pred(&e) {
                return e;
            }
        }
    }

    /// Like [`Run::wait`], among the events from index `from` of `all` on only.
    fn wait_from(&mut self, from: usize, secs: u64, pred: impl Fn(&Json) -> bool) -> Json {
        if let Some(e) = self.all.iter().skip(from).find(|e| pred(e)) {
            return e.clone();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let e = self.rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no such event; got {:#?}",
                    &self.all[from.min(self.all.len())..]
                )
            });
            self.all.push(e.clone());
            if pred(&e) {
                return e;
            }
        }
    }

    fn cmd(&mut self, mut c: Json) -> Json {
        self.next_id += 1;
        let id = self.next_id;
        c["id"] = json!(id);
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{c}").unwrap();
        stdin.flush().unwrap();
        let r = self.wait(60, |e| e["event"] == "reply" && e["id"] == json!(id));
        assert_eq!(r["ok"], true, "{c} -> {r}");
        r
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn state(e: &Json, s: &str) -> bool {
    e["event"] == "call_state" && e["state"] == s
}

fn check_stats(s: &Json) {
    assert_eq!(s["event"], "call_stats");
    assert_eq!(s["codec"], "opus/48000/2", "{s}");
    for k in ["tx_packets", "rx_packets", "rx_audio_frames_decoded"] {
        assert!(s[k].as_u64().unwrap_or(0) >= 100, "{k} in {s}");
    }
    let remote = s["remote_received"].as_u64().expect("remote_received");
    assert!(
        remote >= 50 && remote <= s["tx_packets"].as_u64().unwrap(),
        "{s}"
    );
    assert_eq!(s["rx_srtp_dropped"], 0, "{s}");
}

fn check_tone(path: &Path, hz: f64) {
    let samples = read_wav(path).unwrap();
    assert!(samples.len() > 48_000 * 2, "{} samples", samples.len());
    let (got, level) = analyse_windows(&samples[24_000..]);
    assert!(
        (got - hz).abs() <= 5.0 && level > 0.1,
        "{got} Hz, level {level} (want {hz} Hz)"
    );
}

async fn bootstrap() -> pamoja::dht::Runner {
    pamoja::dht::Runner::bind("127.0.0.1:0".parse().unwrap(), Default::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jami_call_to_an_auto_answering_jami_run() {
    let boot = bootstrap().await;
    let boot = boot.local_addr().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (a_archive, _) = new_archive(dir.path(), "a.gz");
    let (b_archive, b_id) = new_archive(dir.path(), "b.gz");
    let b_heard = dir.path().join("b-heard.wav");
    let a_heard = dir.path().join("a-heard.wav");
    let mut b = Run::start(&b_archive, &dir.path().join("b"), &boot);
    b.wait(30, |e| e["event"] == "ready");
    let r = b.cmd(
        json!({"cmd": "settings", "auto_answer": true, "tone": 660.0,
        "record_wav": b_heard.to_str().unwrap(), "video": true}),
    );
    assert_eq!(r["settings"]["auto_answer"], true);

    let out = tokio::task::spawn_blocking({
        let (a_archive, a_heard, boot) = (a_archive.clone(), a_heard.clone(), boot.clone());
        move || {
            Command::new(jami_bin())
                .arg("call")
                .arg("--archive")
                .arg(&a_archive)
                .args(["--bootstrap", &boot, "--ice-addr", "127.0.0.1"])
                .args(["--to", &b_id, "--duration", "4", "--video"])
                .arg("--record-wav")
                .arg(&a_heard)
                .env("PAMOJA_PASSWORD", "")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "jami call: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Json> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    let states: Vec<&str> = lines
        .iter()
        .filter(|e| e["event"] == "call_state")
        .filter_map(|e| e["state"].as_str())
        .collect();
    assert_eq!(states.first(), Some(&"calling"), "{lines:#?}");
    assert!(states.contains(&"current"), "{lines:#?}");
    assert_eq!(states.last(), Some(&"ended"), "{lines:#?}");
    assert_eq!(lines[0]["event"], "call_placed");
    let last = lines.last().unwrap();
    check_stats(last);
    assert_eq!(last["call"], lines[0]["call"]);
    assert_eq!(lines[0]["video"], true);
    // The test pattern went both ways, whole.
    let v = &last["video"];
    assert_eq!(v["codec"], "VP8/90000", "{last}");
    assert!(v["rx_frames_decoded"].as_u64().unwrap_or(0) >= 40, "{last}");
    assert!(v["psnr_min"].as_f64().unwrap_or(0.0) >= 30.0, "{last}");

    // The answering side saw the call come, flow and end, with its own figures.
    b.wait(30, |e| state(e, "incoming"));
    b.wait(30, |e| state(e, "current"));
    b.wait(30, |e| state(e, "ended") && e["reason"] == "hung_up");
    let s = b.wait(30, |e| e["event"] == "call_stats");
    check_stats(&s);
    assert!(
        s["video"]["rx_frames_decoded"].as_u64().unwrap_or(0) >= 40,
        "{s}"
    );
    check_tone(&b_heard, 440.0);
    check_tone(&a_heard, 660.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jami_run_calls_answers_and_hangs_up() {
    let boot = bootstrap().await;
    let boot = boot.local_addr().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (a_archive, _) = new_archive(dir.path(), "a.gz");
    let (b_archive, b_id) = new_archive(dir.path(), "b.gz");
    let b_heard = dir.path().join("b-heard.wav");
    let mut a = Run::start(&a_archive, &dir.path().join("a"), &boot);
    let mut b = Run::start(&b_archive, &dir.path().join("b"), &boot);
    a.wait(30, |e| e["event"] == "ready");
    b.wait(30, |e| e["event"] == "ready");
    let r = a.cmd(json!({"cmd": "call", "to": b_id, "video": false, "tone": 440.0}));
    let call = r["call"].as_str().unwrap().to_owned();
    assert_eq!(r["video"], false);
    let incoming = b.wait(60, |e| state(e, "incoming"));
    assert_eq!(incoming["call"], call.as_str());
    b.cmd(json!({"cmd": "answer", "call": call, "record_wav": b_heard.to_str().unwrap()}));
    a.wait(30, |e| state(e, "current"));
    b.wait(30, |e| state(e, "current"));
    let listed = a.cmd(json!({"cmd": "call.list"}));
    assert_eq!(listed["calls"], json!([call]));
    tokio::time::sleep(Duration::from_secs(4)).await;
    a.cmd(json!({"cmd": "hangup", "call": call}));
    let s = a.wait(30, |e| e["event"] == "call_stats");
    check_stats(&s);
    assert!(s["video"].is_null(), "an audio call: {s}");
    a.wait(30, |e| state(e, "ended") && e["reason"] == "local");
    b.wait(30, |e| state(e, "ended") && e["reason"] == "hung_up");
    check_tone(&b_heard, 440.0);
    // A call that is over, or never was, is an error reply, not a crash.
    a.cmd(json!({"cmd": "call.list"}));
    a.next_id += 1;
    let id = a.next_id;
    let stdin = a.child.stdin.as_mut().unwrap();
    writeln!(
        stdin,
        "{}",
        json!({"cmd": "hangup", "call": call, "id": id})
    )
    .unwrap();
    stdin.flush().unwrap();
    let r = a.wait(30, |e| e["event"] == "reply" && e["id"] == json!(id));
    assert_eq!(r["ok"], false, "{r}");
}

fn media(e: &Json, field: &str, value: bool) -> bool {
    e["event"] == "call_media" && e[field] == value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jami_run_holds_mutes_and_adds_video() {
    let boot = bootstrap().await;
    let boot = boot.local_addr().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (a_archive, _) = new_archive(dir.path(), "a.gz");
    let (b_archive, b_id) = new_archive(dir.path(), "b.gz");
    let mut a = Run::start(&a_archive, &dir.path().join("a"), &boot);
    let mut b = Run::start(&b_archive, &dir.path().join("b"), &boot);
    a.wait(30, |e| e["event"] == "ready");
    b.wait(30, |e| e["event"] == "ready");
    b.cmd(json!({"cmd": "settings", "auto_answer": true, "tone": 660.0}));
    let r = a.cmd(json!({"cmd": "call", "to": b_id, "tone": 440.0}));
    let call = r["call"].as_str().unwrap().to_owned();
    a.wait(60, |e| state(e, "current"));
    b.wait(30, |e| state(e, "current"));
    let first = a.wait(10, |e| e["event"] == "call_media");
    assert_eq!(
        (
            &first["hold"],
            &first["peer_hold"],
            &first["muted"],
            &first["video"]
        ),
        (&json!(false), &json!(false), &json!(false), &json!(false)),
        "{first}"
    );

    // Hold and resume (each wait looks at the events after the command only).
    let (fa, fb) = (a.all.len(), b.all.len());
    let r = a.cmd(json!({"cmd": "hold", "call": call}));
    assert_eq!(r["hold"], true, "{r}");
    a.wait_from(fa, 30, |e| state(e, "hold"));
    b.wait_from(fb, 30, |e| media(e, "peer_hold", true));
    let (fa, fb) = (a.all.len(), b.all.len());
    a.cmd(json!({"cmd": "unhold", "call": call}));
    a.wait_from(fa, 30, |e| state(e, "current"));
    b.wait_from(fb, 30, |e| media(e, "peer_hold", false));

    // Mute and unmute; A tells B each time, as jamid tells its peers.
    let (fa, fb) = (a.all.len(), b.all.len());
    a.cmd(json!({"cmd": "mute", "call": call, "muted": true}));
    a.wait_from(fa, 10, |e| media(e, "muted", true));
    b.wait_from(fb, 10, |e| media(e, "peer_muted", true));
    let (fa, fb) = (a.all.len(), b.all.len());
    a.cmd(json!({"cmd": "mute", "call": call, "muted": false}));
    a.wait_from(fa, 10, |e| media(e, "muted", false));
    b.wait_from(fb, 10, |e| media(e, "peer_muted", false));
    // And key presses.
    let fb = b.all.len();
    let r = a.cmd(json!({"cmd": "dtmf", "call": call, "key": "7"}));
    assert_eq!(r["key"], "7");
    let k = b.wait_from(fb, 10, |e| e["event"] == "call_dtmf");
    assert_eq!((&k["call"], &k["key"]), (&json!(call), &json!("7")), "{k}");

    // B offers video; A, which has none, refuses it. Then A adds video: both run it.
    let fb = b.all.len();
    b.cmd(json!({"cmd": "video", "call": call, "video": true}));
    let refused = b.wait_from(fb, 30, |e| e["event"] == "call_media");
    assert_eq!(refused["video"], false, "{refused}");
    let (fa, fb) = (a.all.len(), b.all.len());
    a.cmd(json!({"cmd": "video", "call": call, "video": true}));
    a.wait_from(fa, 30, |e| media(e, "video", true));
    b.wait_from(fb, 30, |e| media(e, "video", true));
    tokio::time::sleep(Duration::from_secs(3)).await;
    a.cmd(json!({"cmd": "hangup", "call": call}));
    let s = a.wait(30, |e| e["event"] == "call_stats");
    check_stats(&s);
    let v = &s["video"];
    assert!(v["rx_frames_decoded"].as_u64().unwrap_or(0) >= 20, "{s}");
    assert!(v["psnr_min"].as_f64().unwrap_or(0.0) >= 30.0, "{s}");
    b.wait(30, |e| state(e, "ended") && e["reason"] == "hung_up");
    // A command on a call that does not exist is an error reply.
    a.next_id += 1;
    let id = a.next_id;
    let stdin = a.child.stdin.as_mut().unwrap();
    writeln!(stdin, "{}", json!({"cmd": "hold", "call": call, "id": id})).unwrap();
    stdin.flush().unwrap();
    let r = a.wait(30, |e| e["event"] == "reply" && e["id"] == json!(id));
    assert_eq!(r["ok"], false, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_video_files_both_ways() {
    use pamoja::media::video::test_pattern;
    use pamoja::media::y4m::{Y4mHeader, read_file, write_file};
    let boot = bootstrap().await;
    let boot = boot.local_addr().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (a_archive, _) = new_archive(dir.path(), "a.gz");
    let (b_archive, b_id) = new_archive(dir.path(), "b.gz");
    // Each side sends a file of its own size.
    let file = |name: &str, w: u32, h: u32| {
        let p = dir.path().join(name);
        let header = Y4mHeader {
            width: w,
            height: h,
            rate: (15, 1),
        };
        let frames: Vec<_> = (0..15).map(|n| test_pattern(w, h, n)).collect();
        write_file(&p, header, &frames).unwrap();
        p
    };
    let (a_src, b_src) = (file("a.y4m", 176, 144), file("b.y4m", 160, 120));
    let (a_seen, b_seen) = (dir.path().join("a-seen.y4m"), dir.path().join("b-seen.y4m"));
    let mut b = Run::start(&b_archive, &dir.path().join("b"), &boot);
    b.wait(30, |e| e["event"] == "ready");
    b.cmd(json!({"cmd": "settings", "auto_answer": true,
        "send_video": b_src.to_str().unwrap(), "record_video": b_seen.to_str().unwrap()}));
    // A file that is not a video is refused up front, with its reason.
    let bad = Command::new(jami_bin())
        .arg("call")
        .arg("--archive")
        .arg(&a_archive)
        .args(["--bootstrap", &boot, "--to", &b_id, "--send-video"])
        .arg(&a_archive)
        .env("PAMOJA_PASSWORD", "")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("YUV4MPEG2"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let out = tokio::task::spawn_blocking({
        let (a_archive, a_src, a_seen, boot) = (
            a_archive.clone(),
            a_src.clone(),
            a_seen.clone(),
            boot.clone(),
        );
        move || {
            Command::new(jami_bin())
                .arg("call")
                .arg("--archive")
                .arg(&a_archive)
                .args(["--bootstrap", &boot, "--ice-addr", "127.0.0.1"])
                .args(["--to", &b_id, "--duration", "3"])
                .arg("--send-video")
                .arg(&a_src)
                .arg("--record-video")
                .arg(&a_seen)
                .env("PAMOJA_PASSWORD", "")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "jami call: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    b.wait(30, |e| e["event"] == "call_stats");
    for (seen, size) in [(&a_seen, (160, 120)), (&b_seen, (176, 144))] {
        let (h, frames) = read_file(seen, 1000).unwrap();
        assert_eq!((h.width, h.height), size, "{}", seen.display());
        assert!(
            frames.len() >= 25,
            "{} pictures in {}",
            frames.len(),
            seen.display()
        );
    }
}
