//! A call's audio stream survives a peer that misbehaves on its own media path: garbage
//! datagrams, forged and replayed SRTP, a new SSRC, and a flood of RTCP, all from the peer's
//! checked address. Each is dropped and counted; the good packets around them are still
//! decoded, and the stream keeps sending.

use std::time::{Duration, Instant, SystemTime};

use pamoja_client::media::{AudioConfig, AudioSource, run_audio};
use pamoja_ice::agent::Role;
use pamoja_ice::media::MediaSession;
use pamoja_ice::session::Options;
use pamoja_media::audio::{OpusEncoder, Tone};
use pamoja_media::stream::{MediaStream, StreamConfig};
use pamoja_media::{Crypto, Suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_forgeries_and_floods_cost_only_what_they_are() {
    let opts = || Options::udp(vec!["127.0.0.1:0".parse().unwrap()]);
    let a = MediaSession::gather(Role::Controlling, opts(), 2)
        .await
        .unwrap();
    let b = MediaSession::gather(Role::Controlled, opts(), 2)
        .await
        .unwrap();
    let (da, db) = (a.local_description().clone(), b.local_description().clone());
    let (ca, cb) = tokio::join!(a.connect(db), b.connect(da));
    let (ca, cb) = (ca.unwrap(), cb.unwrap());
    let (a_key, b_key) = (
        Crypto::random(Suite::AesCm128HmacSha1_80),
        Crypto::random(Suite::AesCm128HmacSha1_80),
    );
    let mut a_cfg = StreamConfig::new(104, 48_000, a_key.clone(), b_key.clone());
    a_cfg.accept = vec![104, 101];
    let mut a_comps = ca.into_components().into_iter();
    let (a_rtp, a_rtcp) = (a_comps.next().unwrap(), a_comps.next().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let a_task = tokio::spawn(run_audio(
        a_rtp,
        a_rtcp,
        MediaStream::new(a_cfg, Instant::now()),
        AudioConfig {
            source: AudioSource::Tone(440.0, 0.3),
            record: true,
            ..AudioConfig::new(AudioSource::Tone(440.0, 0.3))
        },
        async {
            let _ = stop_rx.await;
        },
    ));

    // B: a peer driven by hand, with the right keys.
    let mut b_comps = cb.into_components().into_iter();
    let (mut b_rtp, b_rtcp) = (b_comps.next().unwrap(), b_comps.next().unwrap());
    let mut b_stream = MediaStream::new(
        StreamConfig::new(104, 48_000, b_key.clone(), a_key.clone()),
        Instant::now(),
    );
    let mut enc = OpusEncoder::new().unwrap();
    let mut tone = Tone::new(660.0, 0.3);
    let mut good = 0u64;
    let mut sent = Vec::new();
    let tick = Duration::from_millis(20);
    for round in 0..150u32 {
        let packet = enc.encode(&tone.frame()).unwrap();
        let p = b_stream.send(&packet, 960, false, Instant::now()).unwrap();
        b_rtp.send(&p).await.unwrap();
        good += 1;
        sent.push(p.clone());
        match round {
            // Garbage of every size, RTP-looking or not.
            30 => {
                for n in [0usize, 1, 11, 12, 13, 40, 1400] {
                    b_rtp.send(&vec![0x80; n]).await.unwrap();
                    b_rtp.send(&vec![0x5a; n.max(1)]).await.unwrap();
                }
            }
            // Forged: the next packet with a flipped payload bit, ahead of the real one;
            // replays of old ones.
            50 => {
                let packet = enc.encode(&tone.frame()).unwrap();
                let next = b_stream.send(&packet, 960, false, Instant::now()).unwrap();
                let mut f = next.clone();
                f[20] ^= 0x01;
                b_rtp.send(&f).await.unwrap();
                b_rtp.send(&next).await.unwrap();
                good += 1;
                for old in &sent[40..45] {
                    b_rtp.send(old).await.unwrap();
                }
            }
            // A flood of RTCP: valid reports and garbage, 2,000 of them.
            70 => {
                for i in 0..1000 {
                    let r = b_stream.rtcp(Instant::now(), SystemTime::now());
                    b_rtcp.send(&r).await.unwrap();
                    b_rtcp
                        .send(&[0x80, 200, 0xff, 0xff, i as u8])
                        .await
                        .unwrap();
                }
            }
            // The peer restarts its sender: a new SSRC under the same key.
            100 => {
                b_stream = MediaStream::new(
                    StreamConfig::new(104, 48_000, b_key.clone(), a_key.clone()),
                    Instant::now(),
                );
            }
            _ => {}
        }
        // Drain what A sends so its queue never fills.
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(1), b_rtp.recv()).await {
        }
        tokio::time::sleep(tick).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = stop_tx.send(());
    let report = a_task.await.unwrap().unwrap();
    let s = &report.stats;
    eprintln!(
        "{s:?} decoded {} concealed {}",
        report.frames_decoded, report.frames_concealed
    );
    // Every good packet taken, none of the bad ones.
    assert_eq!(s.rx_packets, good, "{s:?}");
    assert_eq!(report.frames_decoded, good);
    assert!(s.srtp_in.auth_failed >= 3, "the forgery and garbage: {s:?}");
    assert!(s.srtp_in.replayed >= 5, "the replays: {s:?}");
    assert!(s.rx_malformed >= 4, "the garbage: {s:?}");
    assert_eq!(s.ssrc_changes, 1, "{s:?}");
    // The flood is read (what the socket and queues kept of it) and costs nothing else.
    assert!(s.rtcp_received + s.rtcp_malformed >= 200, "{s:?}");
    assert!(s.rtcp_malformed >= 100, "{s:?}");
    // A kept sending all along: about one packet per 20 ms of the ~3.2 s.
    assert!(s.tx_packets >= 120, "{s:?}");
    // The new source's packets were decoded too: its tone is in the last half second.
    let tail = &report.recorded[report.recorded.len() - 24_000..];
    let (hz, _) = pamoja_media::audio::analyse(tail);
    assert!((hz - 660.0).abs() < 10.0, "{hz}");
}
