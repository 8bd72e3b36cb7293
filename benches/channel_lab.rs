//! Time from sending a text message to its `200 OK`, in the jamid lab (network namespace,
//! dhtnode, Debian's jamid on private D-Bus sessions): a Pamoja device sending to a jamid
//! account, side by side with one jamid sending to another in the same lab and run.
//!
//! jamid → jamid is timed from the `sendTextMessage` D-Bus call to the
//! `accountMessageStatusChanged` signal that marks the message sent (jamid emits it on the
//! `200 OK`); Pamoja → jamid from the MESSAGE written to the `200 OK` read. The first
//! message of each sender also opens the link (DHT rendezvous, ICE-TCP, TLS) and is reported
//! apart; the others reuse the link. Medians are printed and written to
//! `target/criterion/channel_lab.json`. Needs root, dhtnode and jamid.
//!
//! `cargo bench --bench channel_lab`

#[path = "../tests/channel_lab/mod.rs"]
mod channel_lab;
mod common;

use std::time::{Duration, Instant};

use pamoja::channel::sip::{self, Route, SipReader, StartLine};
use pamoja::identity::Account;
use pamoja_lab::{LAB_ADDR, Lab};

const MESSAGES: usize = 21;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Our device sends `MESSAGES` texts to account `to`; the time of each, in ms (the first
/// includes making the link).
fn pamoja_sends(lab: &Lab, to: String) -> Result<Vec<f64>, String> {
    let ours = Account::create(|_| {}).map_err(|e| e.to_string())?;
    let handle = lab.netns().spawn_inside(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let (manager, runner, dht) = channel_lab::setup(&ours).await?;
            let chain = channel_lab::device_chain(&runner, &dht, &to).await?;
            let route = Route {
                from: ours.jami_id().to_string(),
                to: to.clone(),
                local: format!("{LAB_ADDR}:1").parse().unwrap(),
                remote: format!("{LAB_ADDR}:2").parse().unwrap(),
            };
            let mut times = Vec::new();
            let t0 = Instant::now();
            let mut ch = manager
                .channel(&chain, "sip", "text/plain")
                .await
                .map_err(|e| e.to_string())?;
            let mut reader = SipReader::default();
            for i in 0..MESSAGES {
                let m = sip::message(
                    &route,
                    "text/plain",
                    &format!("message {i}"),
                    &sip::new_message_id(),
                    unix_now(),
                );
                let t = if i == 0 { t0 } else { Instant::now() };
                let r = ch
                    .sip_request(&mut reader, &m, Duration::from_secs(30))
                    .await
                    .map_err(|e| e.to_string())?;
                if !matches!(r.start, StartLine::Response { code: 200, .. }) {
                    return Err(format!("answered {:?}", r.start));
                }
                times.push(t.elapsed().as_secs_f64() * 1e3);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(times)
        })
    });
    handle
        .join()
        .map_err(|_| "the sender thread panicked".to_string())?
        .map_err(|e| e.to_string())?
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Some(why) = pamoja_lab::missing_prerequisites() {
        eprintln!("channel_lab skipped: {why}");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut lab = Lab::new().expect("lab");
        lab.start_dhtnode(4222).await.expect("dhtnode");
        let a = lab.start_jamid("a").await.expect("jamid a");
        let b = lab.start_jamid("b").await.expect("jamid b");
        let acc_a = a.add_account(4222, &[]).await.expect("account a");
        let acc_b = b.add_account(4222, &[]).await.expect("account b");
        for (j, acc) in [(&a, &acc_a), (&b, &acc_b)] {
            j.wait_registered(acc, Duration::from_secs(120))
                .await
                .expect("registered");
        }
        let id_b = b.jami_id(&acc_b).await.expect("id");
        tokio::time::sleep(Duration::from_secs(2)).await;

        // jamid a → jamid b.
        let mut jamid_times = Vec::new();
        for i in 0..MESSAGES {
            let from = a.signals().len();
            let t = Instant::now();
            let token = a
                .send_text_message(&acc_a, &id_b, "text/plain", &format!("message {i}"))
                .await
                .expect("sendTextMessage");
            let sent = a
                .wait_signal(from, Duration::from_secs(60), |s| {
                    s.name == "accountMessageStatusChanged"
                        && s.str(3) == token.to_string()
                        && s.int(4) == Some(2)
                })
                .await;
            if let Err(e) = sent {
                panic!(
                    "jamid a: message {i} not sent: {e:?}\n{}",
                    lab.log_tail("jamid-a", 40)
                );
            }
            jamid_times.push(t.elapsed().as_secs_f64() * 1e3);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // Pamoja → jamid b.
        let ours = tokio::task::block_in_place(|| pamoja_sends(&lab, id_b.clone()));
        let ours = match ours {
            Ok(t) => t,
            Err(e) => panic!("pamoja: {e}\n{}", lab.log_tail("jamid-b", 40)),
        };

        let (m_ours, m_jamid) = (
            median(ours[1..].to_vec()),
            median(jamid_times[1..].to_vec()),
        );
        println!(
            "send to 200 OK over a link: Pamoja {m_ours:.2} ms, jamid {m_jamid:.2} ms, ratio {:.2}",
            m_ours / m_jamid
        );
        println!(
            "first message (link made): Pamoja {:.0} ms, jamid {:.0} ms",
            ours[0], jamid_times[0]
        );
        let out = serde_json::json!({
            "messages": MESSAGES,
            "pamoja_ms": ours,
            "jamid_ms": jamid_times,
            "median_pamoja_ms": m_ours,
            "median_jamid_ms": m_jamid,
            "ratio": m_ours / m_jamid,
            "first_pamoja_ms": ours[0],
            "first_jamid_ms": jamid_times[0],
        });
        let path = common::results_dir().join("channel_lab.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&out).unwrap()).expect("results");
    });
}
