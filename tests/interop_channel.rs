//! Device links with a real jamid (Debian 20230206) in the lab, both ways.
//!
//! jamid → Pamoja: jamid finds our device through our signed DeviceAnnouncement and our
//! certificate on the DHT, puts an encrypted connection request at our `peer:` key (2023
//! short id); then it is pjnath's ICE over TCP against our agent (we control), GnuTLS
//! (server) against rustls (client), its multiplexed socket against ours, and a SIP MESSAGE
//! on the `sip` channel that we answer with 200 OK.
//!
//! Pamoja → jamid: we find jamid's device the same way, send the request, run ICE
//! controlled and TLS as the server, open a `sip` channel and send a MESSAGE: jamid answers
//! 200 OK and emits `incomingAccountMessage` with our Jami ID and the text.

mod channel_lab;
mod common;

use channel_lab::{device_chain, publish, setup};

use std::time::Duration;

use pamoja::channel::inbox::{Inbox, Received};
use pamoja::channel::link::LinkEvent;
use pamoja::channel::sip::{self, SipReader, StartLine};
use pamoja::identity::Account;
use pamoja_lab::{LAB_ADDR, Lab, available};

/// Our device inside the lab's namespace: publishes what jamid needs, accepts one link and
/// returns the SIP MESSAGEs it gets on it (each answered 200 OK), up to the one whose body
/// is `last`.
fn pamoja_device(
    account: Account,
    lab: &Lab,
    sip_open: std::sync::mpsc::Sender<()>,
    last: String,
) -> std::thread::JoinHandle<pamoja_lab::Result<Result<Vec<sip::TextMessage>, String>>> {
    lab.netns().spawn_inside(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (mut manager, _runner, _dht) = setup(&account).await?;
            let mut link = tokio::time::timeout(Duration::from_secs(120), manager.accept())
                .await
                .map_err(|_| "jamid never connected")?
                .ok_or("manager stopped")?;
            loop {
                let event = tokio::time::timeout(Duration::from_secs(60), link.next_event())
                    .await
                    .map_err(|_| "no sip channel from jamid")?
                    .ok_or("link closed")?;
                let LinkEvent::Channel(mut ch) = event;
                if ch.name != "sip" {
                    continue;
                }
                let _ = sip_open.send(());
                let mut reader = SipReader::default();
                let mut got = Vec::new();
                loop {
                    while let Some(m) = reader.next_message() {
                        let m = m.map_err(|e| e.to_string())?;
                        if let StartLine::Request { method, .. } = &m.start {
                            ch.send(&sip::response(&m, 200, "OK").to_bytes())
                                .await
                                .map_err(|e| e.to_string())?;
                            if method == "MESSAGE" {
                                let t = sip::read_message(&m).ok_or("unreadable MESSAGE")?;
                                let done = t.body == last;
                                got.push(t);
                                if done {
                                    return Ok(got);
                                }
                            }
                        }
                    }
                    let data = tokio::time::timeout(Duration::from_secs(60), ch.recv())
                        .await
                        .map_err(|_| "no SIP from jamid")?
                        .ok_or("sip channel closed")?;
                    reader.push(&data);
                }
            }
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jamid_sends_a_text_to_pamoja() {
    if !available("jamid_sends_a_text_to_pamoja") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.start_dhtnode(4222).await.unwrap();
    let ours = Account::create(|_| {}).unwrap();
    let our_id = ours.jami_id().to_string();
    let (open_tx, open_rx) = std::sync::mpsc::channel();
    // Unicode first, then a body near jamid's 8,000-byte SIP limit on the same link.
    let first = "hello from jamid, 世界";
    let second = format!("a second message, over the same link: {}", "é".repeat(3500));
    let device = pamoja_device(ours, &lab, open_tx, second.clone());
    let jamid = lab.start_jamid("sender").await.unwrap();
    let account = jamid.add_account(4222, &[]).await.unwrap();
    jamid
        .wait_registered(&account, Duration::from_secs(120))
        .await
        .unwrap();
    let jamid_id = jamid.jami_id(&account).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The first message makes jamid look for our devices and ask for a `sip` channel (it
    // also drops a copy in our DHT inbox); once the channel is open, the next message goes
    // over it.
    let msg_id = jamid
        .send_text_message(&account, &our_id, "text/plain", first)
        .await
        .unwrap();
    assert_ne!(msg_id, 0, "jamid refused to send");
    let opened =
        tokio::task::spawn_blocking(move || open_rx.recv_timeout(Duration::from_secs(120)))
            .await
            .unwrap();
    assert!(opened.is_ok(), "jamid never opened a sip channel to us");
    tokio::time::sleep(Duration::from_secs(2)).await;
    jamid
        .send_text_message(&account, &our_id, "text/plain", &second)
        .await
        .unwrap();
    let got = tokio::task::spawn_blocking(move || device.join().unwrap().unwrap())
        .await
        .unwrap();
    let got = match got {
        Ok(m) => m,
        Err(e) => {
            let log = lab.log_tail("jamid-sender", 5000);
            let relevant: Vec<&str> = log
                .lines()
                .filter(|l| {
                    let l = l.to_lowercase();
                    ["sip", "channel", "tls", "ice", "message", "socket", "peer"]
                        .iter()
                        .any(|k| l.contains(k))
                })
                .collect();
            panic!("{e}\n--- jamid ---\n{}", relevant.join("\n"))
        }
    };
    // The first may have gone through the DHT inbox only (not read here); the second came
    // over the link the first one opened.
    let last = got.last().unwrap();
    assert_eq!(last.from, jamid_id);
    assert_eq!(last.body.len(), second.len());
    assert_eq!(last.content_type, "text/plain");
    assert!(
        got.iter().all(|m| m.body == first || m.body == second),
        "{got:?}"
    );
    assert!(
        got.iter()
            .all(|m| m.id.as_deref().is_some_and(|i| i.len() == 16)),
        "{got:?}"
    );
}

/// Our device inside the lab, reachable only through its DHT inbox (it answers no connection
/// request): returns the first inbox message it gets, after acknowledging it.
fn pamoja_inbox_only(
    account: Account,
    lab: &Lab,
    ready: std::sync::mpsc::Sender<()>,
) -> std::thread::JoinHandle<pamoja_lab::Result<Result<Received, String>>> {
    lab.netns().spawn_inside(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (_runner, dht, identity) = publish(&account).await?;
            let own = identity.chain[0].public_key().clone();
            let mut inbox = Inbox::start(dht, own).await.map_err(|e| e.to_string())?;
            let _ = ready.send(());
            let got = tokio::time::timeout(Duration::from_secs(120), inbox.next())
                .await
                .map_err(|_| "nothing came to the inbox")?
                .ok_or("the inbox listener stopped")?;
            // Keep the node up while the acknowledgement spreads.
            tokio::time::sleep(Duration::from_secs(15)).await;
            Ok(got)
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jamid_inbox_message_is_received_and_acknowledged() {
    if !available("jamid_inbox_message_is_received_and_acknowledged") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.start_dhtnode(4222).await.unwrap();
    let ours = Account::create(|_| {}).unwrap();
    let our_id = ours.jami_id().to_string();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let device = pamoja_inbox_only(ours, &lab, ready_tx);
    let jamid = lab.start_jamid("inbox").await.unwrap();
    let account = jamid.add_account(4222, &[]).await.unwrap();
    jamid
        .wait_registered(&account, Duration::from_secs(120))
        .await
        .unwrap();
    let jamid_id = jamid.jami_id(&account).await.unwrap();
    let jamid_device = jamid.device_id(&account).await.unwrap().to_lowercase();
    tokio::task::spawn_blocking(move || ready_rx.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("our device is on the DHT");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let from = jamid.signals().len();
    // Unicode and a body near jamid's 8,000-byte SIP limit, as one DHT value.
    let text = format!("through the inbox, 世界 {}", "z".repeat(7000));
    let token = jamid
        .send_text_message(&account, &our_id, "text/plain", &text)
        .await
        .unwrap();
    assert_ne!(token, 0, "jamid refused to send");
    let got = tokio::task::spawn_blocking(move || device.join().unwrap().unwrap())
        .await
        .unwrap();
    let got = match got {
        Ok(m) => m,
        Err(e) => panic!("{e}\n--- jamid ---\n{}", lab.log_tail("jamid-inbox", 80)),
    };
    assert_eq!(got.from.to_string(), jamid_id);
    assert_eq!(got.device.to_string(), jamid_device);
    assert_eq!(got.message.msg, text);
    assert_eq!(got.message.content_type(), "text/plain");
    assert_eq!(
        got.message.id, token,
        "the inbox id is jamid's message token"
    );
    // Our acknowledgement reached jamid: the message is marked sent (state 2).
    let status = jamid
        .wait_signal(from, Duration::from_secs(30), |s| {
            s.name == "accountMessageStatusChanged"
                && s.str(3) == token.to_string()
                && s.int(4) != Some(1)
        })
        .await;
    let status = match status {
        Ok(s) => s,
        Err(e) => panic!("{e:?}\n--- jamid ---\n{}", lab.log_tail("jamid-inbox", 80)),
    };
    assert_eq!(status.int(4), Some(2), "{status:?}");
}

/// Our device inside the lab: finds the jamid device of account `to` (its announcement, then
/// its certificate), links to it, opens a `sip` channel and sends `texts` one after the
/// other on it; returns the status codes of jamid's answers.
fn pamoja_sender(
    account: Account,
    lab: &Lab,
    to: String,
    texts: Vec<String>,
) -> std::thread::JoinHandle<pamoja_lab::Result<Result<Vec<u16>, String>>> {
    lab.netns().spawn_inside(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (manager, runner, dht) = setup(&account).await?;
            let chain = device_chain(&runner, &dht, &to).await?;
            let mut ch = manager
                .channel(&chain, "sip", "text/plain")
                .await
                .map_err(|e| e.to_string())?;
            let route = sip::Route {
                from: account.jami_id().to_string(),
                to: to.clone(),
                local: format!("{LAB_ADDR}:1").parse().unwrap(),
                remote: format!("{LAB_ADDR}:2").parse().unwrap(),
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let mut reader = SipReader::default();
            let mut codes = Vec::new();
            for text in &texts {
                let m = sip::message(&route, "text/plain", text, &sip::new_message_id(), now);
                let r = ch
                    .sip_request(&mut reader, &m, Duration::from_secs(30))
                    .await
                    .map_err(|e| format!("no answer from jamid: {e}"))?;
                if let StartLine::Response { code, .. } = r.start {
                    codes.push(code);
                }
            }
            Ok(codes)
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pamoja_sends_a_text_to_jamid() {
    if !available("pamoja_sends_a_text_to_jamid") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.start_dhtnode(4222).await.unwrap();
    let jamid = lab.start_jamid("receiver").await.unwrap();
    let account = jamid.add_account(4222, &[]).await.unwrap();
    jamid
        .wait_registered(&account, Duration::from_secs(120))
        .await
        .unwrap();
    let jamid_id = jamid.jami_id(&account).await.unwrap();
    let ours = Account::create(|_| {}).unwrap();
    let our_id = ours.jami_id().to_string();
    // Unicode, then a 7,000-byte body on the same channel.
    let texts = vec![
        "hello from pamoja, 世界".to_owned(),
        format!("a second one, same link: {}", "ß".repeat(3500)),
    ];
    let from = jamid.signals().len();
    let sender = pamoja_sender(ours, &lab, jamid_id, texts.clone());
    let codes = tokio::task::spawn_blocking(move || sender.join().unwrap().unwrap())
        .await
        .unwrap();
    let codes = match codes {
        Ok(c) => c,
        Err(e) => panic!("{e}\n--- jamid ---\n{}", lab.log_tail("jamid-receiver", 60)),
    };
    assert_eq!(codes, vec![200, 200]);
    for text in &texts {
        let signal = jamid
            .wait_signal(from, Duration::from_secs(30), |s| {
                s.name == "incomingAccountMessage" && format!("{:?}", s.args[3]).contains(text)
            })
            .await
            .unwrap();
        // (account, from, message id, payloads)
        assert_eq!(signal.str(1), our_id, "{signal:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jami_send_and_jami_run_with_jamid() {
    if !available("jami_send_and_jami_run_with_jamid") {
        return;
    }
    let jami = common::jami_bin();
    let mut lab = Lab::new().unwrap();
    lab.start_dhtnode(4222).await.unwrap();
    let jamid = lab.start_jamid("cli").await.unwrap();
    let account = jamid.add_account(4222, &[]).await.unwrap();
    jamid
        .wait_registered(&account, Duration::from_secs(120))
        .await
        .unwrap();
    let jamid_id = jamid.jami_id(&account).await.unwrap();
    let jamid_device = jamid.device_id(&account).await.unwrap().to_lowercase();
    let (archive, our_id) = common::new_archive(lab.dir(), "ours.gz");
    let online = |cmd: &str| {
        let mut c = lab.netns().command(jami.to_str().unwrap());
        c.arg(cmd)
            .arg("--archive")
            .arg(&archive)
            .args(["--bootstrap", "127.0.0.1:4222", "--ice-addr", LAB_ADDR])
            .env("PAMOJA_PASSWORD", "");
        c
    };

    // jami send: delivered to jamid's device; jamid emits the message.
    let from = jamid.signals().len();
    let mut send = online("send");
    send.args(["--to", &jamid_id, "sent by jami send"]);
    let out = tokio::task::spawn_blocking(move || send.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["delivered"], serde_json::json!([jamid_device]), "{v}");
    let signal = jamid
        .wait_signal(from, Duration::from_secs(30), |s| {
            s.name == "incomingAccountMessage"
        })
        .await
        .unwrap();
    assert_eq!(signal.str(1), our_id);
    assert!(format!("{:?}", signal.args[3]).contains("sent by jami send"));

    // jami run: jamid's first message comes through the inbox (acknowledged) or a link it
    // asks for at the same time; once the link is up, the next one comes over it.
    let mut run = online("run");
    run.args(["--timeout", "170"])
        .stdout(std::process::Stdio::piped());
    let mut child = run.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (line_tx, line_rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = line_tx.send(serde_json::from_str(&l).expect("one JSON object a line"));
        }
    });
    let mut events = Events {
        rx: line_rx,
        all: Vec::new(),
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    let first = "first, to open the link";
    jamid
        .send_text_message(&account, &our_id, "text/plain", first)
        .await
        .unwrap();
    let m = events
        .wait(Duration::from_secs(120), |e| e["body"] == first)
        .await;
    assert_eq!(m["event"], "message");
    assert_eq!(m["from"], jamid_id.as_str());
    assert_eq!(m["device"], jamid_device.as_str());
    assert_eq!(m["type"], "text/plain");
    assert!(m["via"] == "dht" || m["via"] == "sip", "{m}");
    let c = events
        .wait(Duration::from_secs(120), |e| e["event"] == "connected")
        .await;
    assert_eq!(c["device"], jamid_device.as_str());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = "hello jami run, 世界";
    jamid
        .send_text_message(&account, &our_id, "text/plain", second)
        .await
        .unwrap();
    let m = events
        .wait(Duration::from_secs(60), |e| e["body"] == second)
        .await;
    assert_eq!(m["from"], jamid_id.as_str());
    assert_eq!(m["via"], "sip", "{m}");
    // SIGTERM stops it cleanly; each message was printed once.
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    while let Ok(e) = events.rx.try_recv() {
        events.all.push(e);
    }
    for body in [first, second] {
        let n = events.all.iter().filter(|e| e["body"] == body).count();
        assert_eq!(n, 1, "{body:?} printed {n} times: {:?}", events.all);
    }
    let mut seen = archive.clone().into_os_string();
    seen.push(".seen");
    let ids = std::fs::read_to_string(&seen).unwrap();
    assert!(ids.lines().count() >= 2, "{ids}");
}

/// `jami run`'s events as they come, and every one read so far.
struct Events {
    rx: tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    all: Vec<serde_json::Value>,
}

impl Events {
    /// The first event (already read or to come within `timeout`) that matches `pred`.
    async fn wait(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        if let Some(e) = self.all.iter().find(|e| pred(e)) {
            return e.clone();
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let e = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no such event; got {:?}", self.all))
                .unwrap_or_else(|| panic!("jami run stopped; got {:?}", self.all));
            self.all.push(e.clone());
            if pred(&e) {
                return e;
            }
        }
    }
}
