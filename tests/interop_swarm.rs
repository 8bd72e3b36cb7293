//! Conversations written by a real jamid (Debian 20230206): it creates a conversation and
//! posts messages (a reply, an edit) over D-Bus; we open its repository in its data
//! directory, every commit validates under our rules (signatures and certificate chains
//! included, which jamid itself does not check), and the messages we list are the ones
//! jamid returns from `loadConversationMessages`, in the same order; and our encoder writes
//! each message body byte for byte as jamid did.

use std::time::Duration;

mod channel_lab;

use pamoja::swarm::{Conversation, git};
use pamoja_lab::{Lab, available};

/// A lab with a dhtnode and one registered jamid account named `name`.
async fn jamid_lab(name: &str) -> (Lab, pamoja_lab::Jamid, String) {
    let mut lab = Lab::new().unwrap();
    lab.start_dhtnode(4222).await.unwrap();
    let jamid = lab.start_jamid(name).await.unwrap();
    let account = jamid.add_account(4222, &[]).await.unwrap();
    jamid
        .wait_registered(&account, Duration::from_secs(120))
        .await
        .unwrap();
    (lab, jamid, account)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jamid_conversations_validate_and_read_the_same() {
    if !available("jamid_conversations_validate_and_read_the_same") {
        return;
    }
    let (_lab, jamid, account) = jamid_lab("swarm").await;
    let jami_id = jamid.jami_id(&account).await.unwrap();
    let conv = jamid.start_conversation(&account).await.unwrap();
    assert_eq!(conv.len(), 40, "{conv}");

    let texts = [
        "first",
        "deuxième, 世界 😀",
        "third, with \"quotes\" and \\",
    ];
    for t in texts {
        jamid
            .post_conversation_message(&account, &conv, t, "", 0)
            .await
            .unwrap();
    }
    let loaded = jamid.load_conversation(&account, &conv, 100).await.unwrap();
    // A reply to the first message and an edit of the second.
    let id_of = |body: &str| {
        loaded
            .iter()
            .find(|m| m.get("body").map(String::as_str) == Some(body))
            .and_then(|m| m.get("id").cloned())
            .unwrap()
    };
    let (first, second) = (id_of(texts[0]), id_of(texts[1]));
    for (text, commit, flag) in [("a reply", &first, 0), ("deuxième, edited", &second, 1)] {
        jamid
            .post_conversation_message(&account, &conv, text, commit, flag)
            .await
            .unwrap();
    }
    let loaded = jamid.load_conversation(&account, &conv, 100).await.unwrap();

    let dir = jamid
        .account_dir(&account)
        .join("conversations")
        .join(&conv);
    let c = Conversation::open(&dir).unwrap();
    assert_eq!(c.id().unwrap(), conv);
    let n = c
        .verify()
        .unwrap_or_else(|e| panic!("jamid's history rejected: {e}"));
    assert_eq!(n, 1 + texts.len() + 2);
    let ours = c.messages(None, None).unwrap();
    assert_eq!(ours.len(), loaded.len(), "{loaded:?}");
    for (m, j) in ours.iter().zip(&loaded) {
        assert_eq!(Some(&m.id), j.get("id"), "{j:?}");
        assert_eq!(Some(&m.kind), j.get("type"), "{j:?}");
        assert_eq!(
            m.author.as_deref(),
            j.get("author").map(String::as_str),
            "{j:?}"
        );
        assert_eq!(m.author.as_deref(), Some(jami_id.as_str()));
        assert_eq!(Some(&m.timestamp.to_string()), j.get("timestamp"), "{j:?}");
        for key in ["body", "reply-to", "edit"] {
            assert_eq!(
                m.body.get(key),
                j.get(key).map(String::as_str),
                "{key} of {j:?}"
            );
        }
        // Our writer gives jamid's bytes for the same body (jsoncpp's escapes and order).
        let raw = c
            .repo()
            .find_commit(m.id.parse().unwrap())
            .unwrap()
            .message()
            .unwrap()
            .to_owned();
        assert_eq!(m.body.encode(), raw);
    }
    let kinds: Vec<&str> = ours.iter().map(|m| m.kind.as_str()).collect();
    assert!(kinds.contains(&"application/edited-message"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"initial"));
}

/// Pamoja clones a conversation from jamid over a `git://<jamid device>/<conversation>`
/// channel of a device link: jamid's `GitServer` answers our fetch, and the history it sends
/// validates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pamoja_clones_a_conversation_from_jamid_over_a_git_channel() {
    if !available("pamoja_clones_a_conversation_from_jamid_over_a_git_channel") {
        return;
    }
    let (lab, jamid, account) = jamid_lab("gitserver").await;
    let jami_id = jamid.jami_id(&account).await.unwrap();
    let device = jamid.device_id(&account).await.unwrap().to_lowercase();
    let conv = jamid.start_conversation(&account).await.unwrap();
    for t in ["one", "two, 世界"] {
        jamid
            .post_conversation_message(&account, &conv, t, "", 0)
            .await
            .unwrap();
    }
    let loaded = jamid.load_conversation(&account, &conv, 100).await.unwrap();

    let ours = pamoja::identity::Account::create(|_| {}).unwrap();
    let target = lab.dir().join("clone");
    let (to, dir, conv2, dev2) = (
        jami_id.clone(),
        target.clone(),
        conv.clone(),
        device.clone(),
    );
    let cloned = lab.netns().spawn_inside(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (manager, runner, dht) = channel_lab::setup(&ours).await?;
            let chain = channel_lab::device_chain(&runner, &dht, &to).await?;
            let ch = manager
                .channel(&chain, &format!("git://{dev2}/{conv2}"), "")
                .await
                .map_err(|e| e.to_string())?;
            let mut stream = ch.into_stream();
            let c = tokio::time::timeout(
                Duration::from_secs(60),
                git::clone(&dir, &mut stream, &conv2, &dev2),
            )
            .await
            .map_err(|_| "the clone timed out".to_string())?
            .map_err(|e| e.to_string())?;
            Ok::<_, String>(c.head().map_err(|e| e.to_string())?.to_string())
        })
    });
    let head = tokio::task::spawn_blocking(move || cloned.join().unwrap().unwrap())
        .await
        .unwrap();
    let head = match head {
        Ok(h) => h,
        Err(e) => panic!(
            "{e}\n--- jamid ---\n{}",
            lab.log_tail("jamid-gitserver", 60)
        ),
    };
    assert_eq!(Some(&head), loaded[0].get("id"));
    let c = Conversation::open(&target).unwrap();
    assert_eq!(c.id().unwrap(), conv);
    assert_eq!(c.verify().unwrap(), 3);
    let listed: Vec<String> = c
        .messages(None, None)
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    let theirs: Vec<String> = loaded.iter().filter_map(|m| m.get("id").cloned()).collect();
    assert_eq!(listed, theirs);
}

/// The other way: jamid invites a Pamoja account; we clone, join and post, then tell jamid
/// of the new commit with a SIP MESSAGE (`application/im-gitmessage-id`) as jamid does. jamid
/// fetches from our device over a `git://` channel we serve, validates our commits with its
/// own rules, merges them and shows our message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jamid_fetches_and_accepts_commits_written_by_pamoja() {
    if !available("jamid_fetches_and_accepts_commits_written_by_pamoja") {
        return;
    }
    let (lab, jamid, account) = jamid_lab("peer").await;
    let jami_id = jamid.jami_id(&account).await.unwrap();
    let device = jamid.device_id(&account).await.unwrap().to_lowercase();
    let conv = jamid.start_conversation(&account).await.unwrap();
    // More than 20 commits, so that jamid's fetch negotiates in batches of haves.
    for i in 0..24 {
        jamid
            .post_conversation_message(&account, &conv, &format!("before {i}"), "", 0)
            .await
            .unwrap();
    }
    let ours = pamoja::identity::Account::create(|_| {}).unwrap();
    let our_id = ours.jami_id().to_string();
    jamid
        .add_conversation_member(&account, &conv, &our_id)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let from = jamid.signals().len();
    let dir = lab.dir().join("ours");
    let text = "written by Pamoja, 世界";
    let (to, conv2, dev2, d2) = (jami_id.clone(), conv.clone(), device.clone(), dir.clone());
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let ours_thread = channel_lab::member(
        &lab,
        ours,
        channel_lab::Peer {
            jami_id: to,
            device: dev2,
            conversation: conv2,
        },
        d2,
        vec![text.to_owned()],
        done_rx,
    );
    // jamid fetched, validated and merged our commits: it reports our message.
    let got = jamid
        .wait_signal(from, Duration::from_secs(90), |s| {
            s.name == "messageReceived"
                && matches!(s.args.get(2), Some(pamoja_lab::Arg::Map(m))
                    if m.get("body").map(String::as_str) == Some(text))
        })
        .await;
    let _ = done_tx.send(());
    let head = tokio::task::spawn_blocking(move || ours_thread.join().unwrap().unwrap())
        .await
        .unwrap()
        .map(|r| r.head);
    let head = match head {
        Ok(h) => h,
        Err(e) => panic!("{e}\n--- jamid ---\n{}", lab.log_tail("jamid-peer", 80)),
    };
    let got = match got {
        Ok(s) => s,
        Err(e) => panic!("{e:?}\n--- jamid ---\n{}", lab.log_tail("jamid-peer", 120)),
    };
    let Some(pamoja_lab::Arg::Map(m)) = got.args.get(2) else {
        unreachable!()
    };
    assert_eq!(m.get("id"), Some(&head));
    assert_eq!(m.get("author"), Some(&our_id));
    let loaded = jamid.load_conversation(&account, &conv, 100).await.unwrap();
    assert_eq!(loaded[0].get("id"), Some(&head), "{loaded:?}");
    assert!(
        loaded
            .iter()
            .any(|m| m.get("action").map(String::as_str) == Some("join")
                && m.get("uri") == Some(&our_id))
    );
    // Our copy of the history and jamid's agree.
    let c = Conversation::open(&dir).unwrap();
    assert_eq!(c.head().unwrap().to_string(), head);
}
