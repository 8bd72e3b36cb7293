//! Two Pamoja accounts on a loopback DHT become contacts and talk.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pamoja_client::{Client, Config, Event, Events, JamiId, Settings};
use pamoja_dht::{Config as DhtConfig, Runner};
use pamoja_identity::Account;

async fn bootstrap() -> Runner {
    Runner::bind("127.0.0.1:0".parse().unwrap(), DhtConfig::default())
        .await
        .unwrap()
}

async fn start(account: Account, dir: &std::path::Path, boot: SocketAddr) -> (Client, Events) {
    Client::start(
        account,
        Config {
            data_dir: dir.to_owned(),
            bootstrap: vec![boot],
            ice_addr: "127.0.0.1".parse().unwrap(),
        },
    )
    .await
    .unwrap()
}

/// The first event `pick` accepts, within `secs`.
async fn wait_for<T>(ev: &mut Events, secs: u64, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let e = tokio::time::timeout_at(deadline, ev.next())
            .await
            .expect("timed out waiting for an event")
            .expect("events ended");
        eprintln!("event: {e:?}");
        if let Some(t) = pick(&e) {
            return t;
        }
    }
}

fn text_of(e: &Event) -> Option<(Option<JamiId>, String)> {
    match e {
        Event::Message {
            kind, body, author, ..
        } if kind == "text/plain" => {
            Some((*author, body.get("body").unwrap_or_default().to_owned()))
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accounts_add_each_other_and_talk() {
    let boot = bootstrap().await;
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, mut a_ev) = start(
        Account::create(|_| {}).unwrap(),
        a_dir.path(),
        boot.local_addr(),
    )
    .await;
    let (b, mut b_ev) = start(
        Account::create(|_| {}).unwrap(),
        b_dir.path(),
        boot.local_addr(),
    )
    .await;
    a.set_settings(Settings {
        display_name: "Ann".into(),
        ..Settings::default()
    })
    .await
    .unwrap();

    let t0 = Instant::now();
    let conv = a.add_contact(&b.jami_id()).await.unwrap();
    let (from, name) = wait_for(&mut b_ev, 60, |e| match e {
        Event::TrustRequest {
            from,
            conversation,
            name,
            ..
        } if *conversation == conv => Some((*from, name.clone())),
        _ => None,
    })
    .await;
    assert_eq!(from, a.jami_id());
    assert_eq!(name.as_deref(), Some("Ann"));
    assert_eq!(b.trust_requests().len(), 1);
    assert_eq!(b.accept_contact(&a.jami_id()).await.unwrap(), conv);
    wait_for(&mut a_ev, 60, |e| match e {
        Event::ContactAdded {
            id,
            confirmed: true,
            conversation,
        } if *id == b.jami_id() => {
            assert_eq!(*conversation, conv);
            Some(())
        }
        _ => None,
    })
    .await;
    let confirmed = t0.elapsed();
    wait_for(&mut b_ev, 60, |e| {
        matches!(e, Event::ConversationReady { conversation } if *conversation == conv)
            .then_some(())
    })
    .await;
    eprintln!("contact add -> confirmed: {confirmed:?}");
    assert!(b.conversations().contains(&conv));
    let la = a.contacts();
    assert_eq!(la.len(), 1);
    assert_eq!(la[0].state.as_str(), "confirmed");

    // B joined: A fetches the join commit after B's notice.
    wait_for(&mut a_ev, 60, |e| match e {
        Event::Message { kind, author, .. } if kind == "member" && *author == Some(b.jami_id()) => {
            Some(())
        }
        _ => None,
    })
    .await;

    // Messages both ways, in order.
    for i in 0..3 {
        a.send_message(&conv, &format!("a{i}")).await.unwrap();
    }
    for i in 0..3 {
        let (author, text) = wait_for(&mut b_ev, 60, |e| {
            text_of(e).filter(|(a, _)| *a != Some(b.jami_id()))
        })
        .await;
        assert_eq!((author, text), (Some(a.jami_id()), format!("a{i}")));
    }
    let sent = Instant::now();
    b.send_message(&conv, "héllo back").await.unwrap();
    let (_, text) = wait_for(&mut a_ev, 60, |e| {
        text_of(e).filter(|(au, _)| *au == Some(b.jami_id()))
    })
    .await;
    assert_eq!(text, "héllo back");
    eprintln!("post -> shown: {:?}", sent.elapsed());
    let la = a.load(&conv, 50).unwrap();
    let lb = b.load(&conv, 50).unwrap();
    assert_eq!(la, lb, "both sides hold the same history");

    // Typing and read receipts both ways; none with the setting off.
    assert!(a.set_typing(&conv, true).await.unwrap() >= 1);
    let on = wait_for(&mut b_ev, 30, |e| match e {
        Event::Typing { from, on, .. } if *from == a.jami_id() => Some(*on),
        _ => None,
    })
    .await;
    assert!(on);
    let last = match la.last() {
        Some(Event::Message { id, .. }) => id.clone(),
        other => panic!("{other:?}"),
    };
    b.set_displayed(&conv, &last).await.unwrap();
    let seen = wait_for(&mut a_ev, 30, |e| match e {
        Event::Displayed { from, message, .. } if *from == b.jami_id() => Some(message.clone()),
        _ => None,
    })
    .await;
    assert_eq!(seen, last);
    a.set_settings(Settings {
        typing: false,
        read_receipts: false,
        ..Settings::default()
    })
    .await
    .unwrap();
    assert_eq!(a.set_typing(&conv, true).await.unwrap(), 0);
    assert_eq!(a.set_displayed(&conv, &last).await.unwrap(), 0);

    // What a restart picks up is on disk: contacts, settings, conversations.
    drop(a);
    drop(a_ev);
    let contacts = pamoja_client::contacts::Contacts::load(a_dir.path()).unwrap();
    assert!(contacts.contacts[&b.jami_id().to_string()].confirmed);
    let settings = std::fs::read_to_string(a_dir.path().join("settings.json")).unwrap();
    assert!(settings.contains("\"typing\":false"), "{settings}");
    assert!(
        a_dir
            .path()
            .join("conversations")
            .join(conv.as_str())
            .join(".git")
            .exists()
    );
}
