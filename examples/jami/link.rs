//! `jami run` and `jami send`: an account online on the DHT, and text messages over device
//! links (ICE over TCP, TLS, the `sip` channel), one JSON object per line.
//!
//! ```text
//! jami run --archive PATH --bootstrap HOST:PORT [--timeout S] [--exit-after N]
//!     {"event": "connected", "device": DEVICE_ID}        (a device linked to us; messages can flow)
//!     {"event": "message", "from": JAMI_ID, "device": DEVICE_ID, "type": "text/plain", "body": "...", "via": "sip"|"dht"}
//! jami send --archive PATH --bootstrap HOST:PORT --to JAMI_ID TEXT
//!     {"delivered": [DEVICE_ID, ...]}      exit 0 when at least one device answered 200
//! ```
//! `jami run` reads messages from links (`"via": "sip"`) and from the device's DHT inbox
//! (`"via": "dht"`, acknowledged as jamid expects), and prints each message id once: the ids
//! already printed are kept in `<archive>.seen`, so a message jamid sends both ways, or again
//! after a restart, is printed once.
//!
//! ICE host candidates use the address the system routes the bootstrap node through, or
//! `--ice-addr`.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use pamoja::channel::inbox::Inbox;
use pamoja::channel::link::{Channel, LinkEvent, Manager};
use pamoja::channel::seen::Seen;
use pamoja::channel::sip::{self, Route, SipReader, StartLine};
use pamoja::client::net;
use pamoja::dht::Runner;
use pamoja::dht::securedht::SecureDht;
use pamoja::identity::{Account, Certificate, JamiId};
use serde_json::{Value as Json, json};
use tokio::sync::mpsc;

/// Where the account goes online.
#[derive(Args)]
pub struct Online {
    /// The account's archive (password from PAMOJA_PASSWORD).
    #[arg(long)]
    pub archive: PathBuf,
    /// A DHT node to join, HOST:PORT.
    #[arg(long)]
    pub bootstrap: String,
    /// Address for ICE host candidates (default: the one routed towards the bootstrap node).
    #[arg(long = "ice-addr")]
    pub ice_addr: Option<IpAddr>,
}

/// `jami run` options.
#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    online: Online,
    /// Stop after this many seconds.
    #[arg(long)]
    timeout: Option<f64>,
    /// Stop after printing this many events.
    #[arg(long = "exit-after")]
    exit_after: Option<usize>,
    /// Run the full communicator with its data in DIR: commands on stdin, events on
    /// stdout, one JSON object per line (see docs/jami-run.md).
    #[arg(long)]
    data: Option<PathBuf>,
}

/// `jami send` options.
#[derive(Args)]
pub struct SendArgs {
    #[command(flatten)]
    online: Online,
    /// The recipient's Jami ID.
    #[arg(long)]
    to: String,
    /// The text.
    text: String,
}

struct Device {
    account: Account,
    runner: Arc<Runner>,
    dht: Arc<SecureDht>,
    manager: Manager,
    ice_addr: IpAddr,
    seen: SeenIds,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn online(o: &Online) -> Result<Device> {
    let account = super::open(&o.archive)?;
    let bootstrap: SocketAddr = o
        .bootstrap
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {}", o.bootstrap))?
        .next()
        .ok_or_else(|| anyhow!("cannot resolve {}", o.bootstrap))?;
    let ice_addr = match o.ice_addr {
        Some(a) => a,
        None => net::local_addr_towards(bootstrap)?,
    };
    // Request ids and message ids, remembered together across runs (as jamid does).
    let online = net::go_online(
        &account,
        net::OnlineOptions {
            bootstrap: vec![bootstrap],
            ice_addr,
            seen_file: Some(net::seen_file_beside(&o.archive)),
            accept: |name| name == "sip",
            banned: Vec::new(),
            crl_dir: None,
        },
    )
    .await?;
    Ok(Device {
        account,
        runner: online.runner,
        dht: online.dht,
        manager: online.manager,
        ice_addr,
        seen: online.seen,
    })
}

/// Message ids already printed, shared by the links and the inbox.
type SeenIds = Arc<Mutex<Seen>>;

/// Whether message `id` is new (and remembers it); messages without an id are new.
fn first_time(seen: &SeenIds, id: Option<&str>) -> bool {
    let Some(id) = id else { return true };
    match seen.lock() {
        Ok(mut s) => s.insert(id).unwrap_or_else(|e| {
            eprintln!("jami: cannot save message ids: {e}");
            true
        }),
        Err(_) => true,
    }
}

/// Reads SIP from a channel: answers each request 200 and reports its MESSAGEs, each from
/// the account the link authenticated (`account`; a MESSAGE naming another sender is
/// dropped, as the client drops it).
async fn serve_sip(
    mut ch: Channel,
    device: String,
    account: Option<String>,
    out: mpsc::Sender<Json>,
    seen: SeenIds,
) {
    let mut reader = SipReader::default();
    while let Some(data) = ch.recv().await {
        reader.push(&data);
        while let Some(m) = reader.next_message() {
            let Ok(m) = m else { return };
            if !matches!(m.start, StartLine::Request { .. }) {
                continue;
            }
            if ch
                .send(&sip::response(&m, 200, "OK").to_bytes())
                .await
                .is_err()
            {
                return;
            }
            let read = match &account {
                Some(a) => sip::read_message_from(&m, a),
                None => sip::read_message(&m).map(Ok),
            };
            if let Some(read) = read {
                let t = match read {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::warn!("{device}: {e}: dropped");
                        continue;
                    }
                };
                if !first_time(&seen, t.id.as_deref()) {
                    continue;
                }
                let _ = out
                    .send(json!({"event": "message", "from": t.from, "device": device,
                        "type": t.content_type, "body": t.body, "via": "sip"}))
                    .await;
            }
        }
    }
}

async fn run(args: RunArgs) -> Result<()> {
    let mut device = online(&args.online).await?;
    let seen = device.seen.clone();
    let (tx, mut rx) = mpsc::channel::<Json>(64);
    let own = device
        .account
        .device()
        .ok_or_else(|| anyhow!("the archive holds no device key"))?
        .cert
        .public_key()
        .clone();
    let mut inbox = Inbox::start(device.dht.clone(), own).await?;
    let deadline = args
        .timeout
        .map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut printed = 0usize;
    loop {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            link = device.manager.accept() => {
                let Some(mut link) = link else { return Ok(()) };
                let id = link.device().to_string();
                let account = link.account().map(ToString::to_string);
                let out = tx.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    // Connected: the device opened its `sip` channel, messages can flow.
                    let mut announced = false;
                    while let Some(LinkEvent::Channel(ch)) = link.next_event().await {
                        if ch.name == "sip" {
                            if !announced {
                                announced = true;
                                let _ = out.send(json!({"event": "connected", "device": id})).await;
                            }
                            tokio::spawn(serve_sip(
                                ch,
                                id.clone(),
                                account.clone(),
                                out.clone(),
                                seen.clone(),
                            ));
                        }
                    }
                });
            }
            m = inbox.next() => {
                let Some(m) = m else { return Ok(()) };
                if first_time(&seen, Some(&m.message.message_id())) {
                    let _ = tx
                        .send(json!({"event": "message", "from": m.from.to_string(),
                            "device": m.device.to_string(), "type": m.message.content_type(),
                            "body": m.message.msg, "via": "dht"}))
                        .await;
                }
            }
            ev = rx.recv() => {
                let Some(ev) = ev else { return Ok(()) };
                println!("{ev}");
                printed += 1;
                if args.exit_after.is_some_and(|n| printed >= n) {
                    return Ok(());
                }
            }
            _ = sleep => return Ok(()),
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

async fn send_to_device(d: &Device, chain: &[Certificate], to: &str, text: &str) -> Result<()> {
    let mut ch = d.manager.channel(chain, "sip", "text/plain").await?;
    let route = Route {
        from: d.account.jami_id().to_string(),
        to: to.to_owned(),
        local: SocketAddr::new(d.ice_addr, 0),
        remote: SocketAddr::new(d.ice_addr, 0),
    };
    let m = sip::message(
        &route,
        "text/plain",
        text,
        &sip::new_message_id(),
        unix_now(),
    );
    let answer = ch
        .sip_request(&mut SipReader::default(), &m, Duration::from_secs(30))
        .await?;
    match answer.start {
        StartLine::Response { code: 200, .. } => Ok(()),
        StartLine::Response { code, reason } => bail!("answered {code} {reason}"),
        StartLine::Request { .. } => bail!("no answer"),
    }
}

async fn send(args: SendArgs) -> Result<Json> {
    let to: JamiId = args
        .to
        .parse()
        .map_err(|_| anyhow!("--to must be a Jami ID (40 hex digits)"))?;
    let d = online(&args.online).await?;
    let chains = net::devices_of(&d.runner, &d.dht, &to, Duration::from_secs(10)).await;
    if chains.is_empty() {
        bail!("no device of {to} found on the DHT");
    }
    let mut delivered = Vec::new();
    for chain in &chains {
        let dev = chain[0].device_id().to_string();
        match tokio::time::timeout(
            Duration::from_secs(60),
            send_to_device(&d, chain, &args.to, &args.text),
        )
        .await
        {
            Ok(Ok(())) => delivered.push(dev),
            Ok(Err(e)) => eprintln!("jami: device {dev}: {e:#}"),
            Err(_) => eprintln!("jami: device {dev}: timed out"),
        }
    }
    let v = json!({"delivered": delivered});
    if delivered.is_empty() {
        println!("{v}");
        bail!("no device of {to} accepted the message");
    }
    Ok(v)
}

/// Runs `jami run` (events printed as they come; `Null` at the end).
pub fn run_cmd(args: RunArgs) -> Result<Json> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match args.data.clone() {
        Some(dir) => rt.block_on(super::client::run(
            &args.online.archive,
            &args.online.bootstrap,
            args.online.ice_addr,
            &dir,
            args.timeout,
        ))?,
        None => rt.block_on(run(args))?,
    }
    Ok(Json::Null)
}

/// Runs `jami send`.
pub fn send_cmd(args: SendArgs) -> Result<Json> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(send(args))
}
