//! pjnath's ICE text as a real jamid writes it: two jamids in the lab become contacts, which
//! makes one connect to the other's device (connection manager, ICE over TCP). Each logs the
//! candidate lines it received from the other ("Add remote candidate: ..."), written by
//! pjnath. Our parser must read every one of them as jamid did, and our writer must give the
//! same line back.
//!
//! With `PAMOJA_VECTORS_OUT` set, the lines are saved there (this is how
//! `crates/ice/tests/vectors/jamid-candidates.txt` was captured).

use std::time::Duration;

use pamoja::ice::candidate::{Candidate, TcpType, Transport};
use pamoja_lab::{Jamid, Lab, available};

fn remote_candidates(lab: &Lab, jamid: &Jamid) -> Vec<String> {
    let log = std::fs::read_to_string(lab.dir().join(format!("jamid-{}.log", jamid.name())))
        .unwrap_or_default();
    log.lines()
        .filter_map(|l| {
            l.split_once("Add remote candidate: ")
                .map(|(_, c)| c.trim().to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jamid_candidate_lines_parse_and_round_trip() {
    if !available("jamid_candidate_lines_parse_and_round_trip") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.start_dhtnode(4222).await.unwrap();
    let alice = lab.start_jamid("alice").await.unwrap();
    let bob = lab.start_jamid("bob").await.unwrap();
    let a = alice.add_account(4222, &[]).await.unwrap();
    let b = bob.add_account(4222, &[]).await.unwrap();
    for (j, acc) in [(&alice, &a), (&bob, &b)] {
        j.wait_registered(acc, Duration::from_secs(120))
            .await
            .unwrap();
    }
    let a_id = alice.jami_id(&a).await.unwrap();
    let b_id = bob.jami_id(&b).await.unwrap();
    // As Jami's clients do: add the contact, then send the trust request.
    alice.add_contact(&a, &b_id).await.unwrap();
    alice.send_trust_request(&a, &b_id, b"").await.unwrap();
    if let Err(e) = bob
        .wait_signal(0, Duration::from_secs(60), |s| {
            s.name == "incomingTrustRequest" && s.str(2) == a_id
        })
        .await
    {
        let names: Vec<String> = bob
            .signals()
            .iter()
            .map(|s| format!("{} {:?}", s.name, s.args))
            .collect();
        panic!(
            "{e}: bob's signals {names:#?}\n--- alice ---\n{}\n--- bob ---\n{}",
            lab.log_tail("jamid-alice", 40),
            lab.log_tail("jamid-bob", 40)
        );
    }
    assert!(bob.accept_trust_request(&b, &a_id).await.unwrap());
    // Bob joins the conversation: his device connects to Alice's.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let (seen_by_alice, seen_by_bob) = loop {
        let (x, y) = (
            remote_candidates(&lab, &alice),
            remote_candidates(&lab, &bob),
        );
        if !x.is_empty() && !y.is_empty() {
            break (x, y);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no ICE exchange between the jamids\n--- alice ---\n{}\n--- bob ---\n{}",
            lab.log_tail("jamid-alice", 40),
            lab.log_tail("jamid-bob", 40)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let lines: Vec<String> = seen_by_alice.into_iter().chain(seen_by_bob).collect();
    if let Some(dir) = std::env::var_os("PAMOJA_VECTORS_OUT") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(dir.join("jamid-candidates.txt"), text).unwrap();
    }
    check_pjnath_lines(&lines);
}

/// Every line jamid accepted from pjnath is read by us and written back identically; the
/// rules they follow (foundations, priorities, port 9) are checked offline on the captured
/// lines in crates/ice/tests/vectors.rs.
fn check_pjnath_lines(lines: &[String]) {
    let mut passive = 0;
    for line in lines {
        let c = Candidate::parse(line).unwrap_or_else(|| panic!("jamid's line {line:?}"));
        assert_eq!(c.to_string(), *line, "our writer gives jamid's line back");
        assert_eq!(
            c.transport,
            Transport::Tcp,
            "the connection manager is TCP only"
        );
        passive += usize::from(c.tcp_type == Some(TcpType::Passive));
    }
    assert!(passive > 0, "a passive candidate to connect to");
}
