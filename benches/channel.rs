//! Device links between two Pamoja devices on loopback: the throughput of one channel (ICE
//! over TCP, TLS 1.3, the multiplexer) for a 1 GiB transfer, side by side with a plain TCP
//! socket on the same path in the same run (and TLS alone over that socket, to tell the cost of
//! encryption from the rest); and the heap 1,000 open channels on one link
//! cost (counted by a global allocator wrapper, both ends of each channel). Medians of 5 runs are printed and written to `target/criterion/channel.json`.
//!
//! `cargo bench --bench channel`

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pamoja::channel::link::{LinkEvent, Manager, Options, Rendezvous};
use pamoja::channel::tls::{Expected, Identity, client_config, server_config, server_name};
use pamoja::dht::securedht::SecureDht;
use pamoja::dht::{Config, Runner};
use pamoja::identity::{Account, PrivateKey};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Counts the bytes allocated and not yet freed, for the memory per channel.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same layout as given.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as `dealloc` and `alloc`.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const RUNS: usize = 5;
const SIZE: u64 = 1 << 30;
const CHANNELS: usize = 1000;

fn identity(account: &Account) -> Identity {
    let d = account.device().expect("a device");
    Identity {
        key: PrivateKey::from_pkcs8_der(d.key.to_pkcs8_der()).expect("key"),
        chain: vec![d.cert.clone(), account.account_cert().clone()],
    }
}

async fn device(account: &Account, runner: Arc<Runner>) -> Manager {
    let id = identity(account);
    let key = PrivateKey::from_pkcs8_der(id.key.to_pkcs8_der()).expect("key");
    let dht = Arc::new(SecureDht::new(runner, key, id.chain.clone()));
    dht.publish_certificate().await.expect("certificate put");
    let mut o = Options::new(vec!["127.0.0.1:0".parse().unwrap()]);
    o.rendezvous = Rendezvous::Short;
    Manager::start(dht, id, o).await.expect("manager")
}

/// A TCP connection on loopback, both ends.
async fn tcp_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (c, s) = tokio::join!(tokio::net::TcpStream::connect(addr), l.accept());
    (c.unwrap(), s.unwrap().0)
}

/// Writes `SIZE` bytes into `w` and closes it while `r` reads them all; the elapsed time.
async fn transfer<W, R>(mut w: W, mut r: R) -> Duration
where
    W: AsyncWrite + Unpin + Send + 'static,
    R: AsyncRead + Unpin,
{
    let t0 = Instant::now();
    let writer = tokio::spawn(async move {
        let chunk = vec![0x5au8; 256 * 1024];
        let mut left = SIZE;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            w.write_all(&chunk[..n]).await.expect("write");
            left -= n as u64;
        }
        w.shutdown().await.expect("shutdown");
        // Kept open until the reader is done: closing with unread bytes (TLS session
        // tickets) would reset the connection.
        w
    });
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    loop {
        let n = r.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    let elapsed = t0.elapsed();
    drop(writer.await.expect("writer"));
    assert_eq!(got, SIZE, "every byte arrived");
    elapsed
}

/// Heap bytes in use, once the runtime had a moment to settle.
async fn heap_bytes() -> usize {
    tokio::time::sleep(Duration::from_millis(200)).await;
    LIVE.load(Ordering::Relaxed)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut nodes: Vec<Arc<Runner>> = Vec::new();
        for i in 0..3 {
            let r = Runner::bind("127.0.0.1:0".parse().unwrap(), Config::default())
                .await
                .expect("node");
            if i > 0 {
                r.bootstrap(nodes[0].local_addr());
            }
            nodes.push(Arc::new(r));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        eprintln!("channel: creating two accounts");
        let alice = Account::create(|_| {}).expect("account");
        let bob = Account::create(|_| {}).expect("account");
        let a = device(&alice, nodes[1].clone()).await;
        let mut b = device(&bob, nodes[2].clone()).await;
        let bob_chain = vec![
            bob.device().unwrap().cert.clone(),
            bob.account_cert().clone(),
        ];
        let (first, b_link) = tokio::join!(a.channel(&bob_chain, "sip", ""), b.accept());
        let first = first.expect("a link");
        let mut b_link = b_link.expect("bob's side of the link");
        let Some(LinkEvent::Channel(_b_first)) = b_link.next_event().await else {
            panic!("no channel")
        };

        // TLS alone: the same rustls configurations straight over a TCP connection.
        let tls_client = client_config(
            &identity(&alice),
            Expected::device(bob.device().unwrap().cert.public_key().clone()),
        )
        .expect("client config")
        .0;
        let tls_server = server_config(
            &identity(&bob),
            Expected::device(alice.device().unwrap().cert.public_key().clone()),
        )
        .expect("server config")
        .0;
        let (mut ours, mut plain, mut tls) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..RUNS {
            let ch = a.channel(&bob_chain, "sip", "").await.expect("channel");
            let Some(LinkEvent::Channel(theirs)) = b_link.next_event().await else {
                panic!("no channel")
            };
            let t = transfer(ch.into_stream(), theirs.into_stream()).await;
            ours.push(SIZE as f64 / t.as_secs_f64());

            let (c, s) = tcp_pair().await;
            let t = transfer(c, s).await;
            plain.push(SIZE as f64 / t.as_secs_f64());

            let (c, s) = tcp_pair().await;
            let connector = tokio_rustls::TlsConnector::from(tls_client.clone());
            let acceptor = tokio_rustls::TlsAcceptor::from(tls_server.clone());
            let (c, s) = tokio::join!(connector.connect(server_name(), c), acceptor.accept(s));
            let t = transfer(c.expect("TLS client"), s.expect("TLS server")).await;
            tls.push(SIZE as f64 / t.as_secs_f64());
            eprintln!(
                "channel: run {}: link {:.0} MB/s, plain TCP {:.0} MB/s, TLS over TCP {:.0} MB/s",
                run + 1,
                ours[run] / 1e6,
                plain[run] / 1e6,
                tls[run] / 1e6
            );
        }

        // 1,000 channels open at once on the link (both ends live in this process).
        let before = heap_bytes().await;
        let mut held = Vec::with_capacity(CHANNELS * 2);
        for _ in 0..CHANNELS {
            let ch = a.channel(&bob_chain, "sip", "").await.expect("channel");
            let Some(LinkEvent::Channel(theirs)) = b_link.next_event().await else {
                panic!("no channel")
            };
            ch.send(b"x").await.expect("send");
            held.push((ch, theirs));
        }
        for (_, theirs) in &mut held {
            assert_eq!(theirs.recv().await.as_deref(), Some(&b"x"[..]));
        }
        let after = heap_bytes().await;
        let per_channel = after.saturating_sub(before) as f64 / CHANNELS as f64;
        drop(held);
        drop(first);

        let (m_ours, m_plain, m_tls) = (
            median(ours.clone()),
            median(plain.clone()),
            median(tls.clone()),
        );
        println!(
            "channel throughput, 1 GiB: link {:.0} MB/s, plain TCP {:.0} MB/s, ratio {:.2}",
            m_ours / 1e6,
            m_plain / 1e6,
            m_ours / m_plain
        );
        println!(
            "TLS 1.3 alone over TCP: {:.0} MB/s ({:.2} of plain TCP)",
            m_tls / 1e6,
            m_tls / m_plain
        );
        println!(
            "{CHANNELS} channels on one link: {:.1} KiB of heap per channel (both ends)",
            per_channel / 1024.0
        );
        let out = serde_json::json!({
            "bytes": SIZE,
            "runs": RUNS,
            "link_bytes_per_s": ours,
            "plain_tcp_bytes_per_s": plain,
            "median_link_bytes_per_s": m_ours,
            "median_plain_tcp_bytes_per_s": m_plain,
            "tls_over_tcp_bytes_per_s": tls,
            "median_tls_over_tcp_bytes_per_s": m_tls,
            "ratio": m_ours / m_plain,
            "ratio_to_tls_over_tcp": m_ours / m_tls,
            "channels": CHANNELS,
            "heap_bytes_before": before,
            "heap_bytes_after": after,
            "bytes_per_channel_both_ends": per_channel,
        });
        let path = common::results_dir().join("channel.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&out).unwrap()).expect("results");
    });
}
