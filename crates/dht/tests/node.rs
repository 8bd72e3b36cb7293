//! One node driven datagram by datagram: the protocol rules that are easier to see up close
//! than in a simulated network (rate limits, blacklisting, legacy listen pushes, tokens).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pamoja_dht::message::{Body, Message, MessageKind, Method, ValueEntry};
use pamoja_dht::node::{Config, Event, Node};
use pamoja_dht::ratelimit::{GLOBAL_PER_SEC, SOURCE_PER_SEC};
use pamoja_dht::{InfoHash, Value};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The replies among what the node wants to send.
fn replies(n: &mut Node) -> usize {
    sent(n)
        .iter()
        .filter(|(_, m)| m.kind == MessageKind::Reply)
        .count()
}

/// Everything the node wants to send, decoded.
fn sent(n: &mut Node) -> Vec<(SocketAddr, Message)> {
    std::iter::from_fn(|| n.poll_transmit())
        .filter_map(|t| Message::decode(&t.data).ok().map(|m| (t.to, m)))
        .collect()
}

fn events(n: &mut Node) -> Vec<Event> {
    std::iter::from_fn(|| n.poll_event()).collect()
}

fn query(tid: u32, method: Method, body: Body) -> Vec<u8> {
    Message::new(tid, MessageKind::Query(method), body).encode()
}

fn reply(tid: u32, body: Body) -> Vec<u8> {
    Message::new(tid, MessageKind::Reply, body).encode()
}

/// A write token for `from`, asked with a `find`.
fn token(n: &mut Node, now: Instant, from: SocketAddr, id: InfoHash) -> Vec<u8> {
    let find = Body {
        id,
        target: Some(InfoHash::random()),
        ..Body::default()
    };
    n.handle_datagram(now, from, &query(1, Method::Find, find));
    sent(n)
        .into_iter()
        .find_map(|(_, m)| m.body.token)
        .expect("a find reply carries a token")
}

#[test]
fn one_source_is_held_to_its_quota_and_the_rest_to_the_global_one() {
    let t0 = Instant::now();
    let ping = |i: u32| {
        query(
            i,
            Method::Ping,
            Body {
                id: InfoHash::random(),
                ..Body::default()
            },
        )
    };
    let mut n = Node::new(Config::default());
    for i in 0..5000 {
        n.handle_datagram(t0, addr("10.0.0.1:4000"), &ping(i));
    }
    assert_eq!(replies(&mut n), SOURCE_PER_SEC as usize);
    assert_eq!(n.counters().rate_limited, 5000 - u64::from(SOURCE_PER_SEC));
    // Another address is still answered, and a second later the first one is too.
    n.handle_datagram(t0, addr("10.0.0.2:4000"), &ping(1));
    assert_eq!(replies(&mut n), 1);
    n.handle_datagram(t0 + Duration::from_secs(1), addr("10.0.0.1:4000"), &ping(2));
    assert_eq!(replies(&mut n), 1);

    // Many sources together: the global quota.
    let mut n = Node::new(Config::default());
    for i in 0..20_000u32 {
        let from = SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 4000));
        n.handle_datagram(t0, from, &ping(i));
    }
    assert_eq!(replies(&mut n), GLOBAL_PER_SEC as usize);

    // Replies are never limited, and limits can be turned off (`dhtnode -U`).
    let mut n = Node::new(Config {
        rate_limit: None,
        ..Config::default()
    });
    for i in 0..5000 {
        n.handle_datagram(t0, addr("10.0.0.1:4000"), &ping(i));
    }
    assert_eq!(replies(&mut n), 5000);
    assert_eq!(n.counters().rate_limited, 0);
}

/// Bootstraps `n` from a scripted peer at `peer`, answering its ping and its first `find`
/// with `token` (or none). Returns the peer's id.
fn join_scripted_peer(
    n: &mut Node,
    now: Instant,
    peer: SocketAddr,
    token: Option<Vec<u8>>,
) -> InfoHash {
    let peer_id = InfoHash::random();
    n.bootstrap(now, peer);
    let (_, ping) = sent(n).pop().expect("bootstrap ping");
    let pong = Body {
        id: peer_id,
        seen_addr: Some(peer.ip()),
        ..Body::default()
    };
    n.handle_datagram(now, peer, &reply(ping.tid, pong));
    let (_, find) = sent(n)
        .into_iter()
        .find(|(_, m)| m.kind == MessageKind::Query(Method::Find))
        .expect("a find of our own id");
    let answer = Body {
        id: peer_id,
        token,
        ..Body::default()
    };
    n.handle_datagram(now, peer, &reply(find.tid, answer));
    peer_id
}

#[test]
fn a_node_answering_without_a_token_is_blacklisted() {
    let t0 = Instant::now();
    let mut n = Node::new(Config::default());
    let peer = addr("127.0.0.9:4222");
    let peer_id = join_scripted_peer(&mut n, t0, peer, None);
    assert_eq!(n.counters().blacklisted, 1);
    // What it says from now on is ignored, and it is handed out to nobody.
    let ping = Body {
        id: peer_id,
        ..Body::default()
    };
    n.handle_datagram(t0, peer, &query(7, Method::Ping, ping));
    assert!(sent(&mut n).is_empty());
    assert_eq!(n.counters().from_blacklisted, 1);
    assert_eq!(n.node_counts(t0).0 + n.node_counts(t0).1, 0);

    // The same exchange with a token keeps the peer.
    let mut n = Node::new(Config::default());
    let peer_id = join_scripted_peer(&mut n, t0, peer, Some(vec![7; 32]));
    assert_eq!(n.counters().blacklisted, 0);
    let ping = Body {
        id: peer_id,
        ..Body::default()
    };
    n.handle_datagram(t0, peer, &query(7, Method::Ping, ping));
    assert_eq!(replies(&mut n), 1);
}

#[test]
fn legacy_listeners_get_unsolicited_replies_and_u_pushes() {
    let t0 = Instant::now();
    let mut n = Node::new(Config::default());
    let key = InfoHash::get(b"legacy");
    let listener = addr("127.0.0.2:5000");
    let listener_id = InfoHash::random();
    let tok = token(&mut n, t0, listener, listener_id);
    // A listen without `ve`: protocol version 0.
    let listen = Body {
        id: listener_id,
        key: Some(key),
        token: Some(tok),
        sid: Some(77),
        version: Some(0),
        ..Body::default()
    };
    n.handle_datagram(t0, listener, &query(3, Method::Listen, listen));
    let confirm = sent(&mut n);
    assert!(matches!(&confirm[..], [(to, m)] if *to == listener && m.kind == MessageKind::Reply));

    let putter = addr("127.0.0.3:5000");
    let putter_id = InfoHash::random();
    let tok = token(&mut n, t0, putter, putter_id);
    let value = Value {
        id: 42,
        value_type: 5,
        ..Value::new("short-lived")
    };
    let put = Body {
        id: putter_id,
        key: Some(key),
        values: vec![ValueEntry::Inline(value.clone())],
        token: Some(tok),
        ..Body::default()
    };
    n.handle_datagram(t0, putter, &query(5, Method::Put, put));
    let out = sent(&mut n);
    let push = out
        .iter()
        .find(|(to, _)| *to == listener)
        .map(|(_, m)| m)
        .expect("the listener is told");
    assert_eq!(push.kind, MessageKind::Reply, "a version 0 push is a reply");
    assert_eq!(push.tid, 77, "whose tid is the listen's sid");
    assert_eq!(push.body.values, vec![ValueEntry::Inline(value)]);
    assert!(push.body.token.is_some());

    // Type 5 lives 60 s; its expiry is a `u` message.
    n.handle_timeout(t0 + Duration::from_secs(61));
    let out = sent(&mut n);
    let (_, gone) = out
        .iter()
        .find(|(to, m)| *to == listener && m.kind != MessageKind::Query(Method::Ping))
        .expect("the listener is told of the expiry");
    assert_eq!(gone.kind, MessageKind::LegacyUpdate);
    assert_eq!(gone.tid, 77);
    assert_eq!(gone.body.expired, vec![42]);
}

#[test]
fn listens_take_legacy_pushes_and_adopt_confirmation_tokens() {
    let t0 = Instant::now();
    let mut n = Node::new(Config::default());
    let peer = addr("127.0.0.9:4222");
    let peer_id = join_scripted_peer(&mut n, t0, peer, Some(vec![1; 32]));
    sent(&mut n);
    let key = InfoHash::get(b"watched");
    let op = n.listen(t0, key, None);
    let (_, find) = sent(&mut n).pop().expect("a find for the listen");
    let answer = Body {
        id: peer_id,
        token: Some(vec![2; 32]),
        ..Body::default()
    };
    n.handle_datagram(t0, peer, &reply(find.tid, answer));
    let (_, listen) = sent(&mut n)
        .into_iter()
        .find(|(_, m)| m.kind == MessageKind::Query(Method::Listen))
        .expect("a listen request");
    assert_eq!(listen.body.token, Some(vec![2; 32]));
    let sid = listen.body.sid.expect("a socket id");
    // OpenDHT 4.x confirms with a new token: the next refresh uses it.
    let confirm = Body {
        id: peer_id,
        token: Some(vec![3; 32]),
        ..Body::default()
    };
    n.handle_datagram(t0, peer, &reply(listen.tid, confirm));
    assert!(events(&mut n).contains(&Event::Listening { op, nodes: 1 }));

    // A version 0 push: an unsolicited reply with tid = sid.
    let value = Value {
        id: 9,
        ..Value::new("pushed")
    };
    let push = Body {
        id: peer_id,
        token: Some(vec![3; 32]),
        values: vec![ValueEntry::Inline(value.clone())],
        ..Body::default()
    };
    n.handle_datagram(t0, peer, &reply(sid, push.clone()));
    assert_eq!(
        events(&mut n),
        vec![Event::Value {
            op,
            value: value.clone()
        }]
    );
    // The same from a node the listen was not sent to is ignored.
    let spoof = Body {
        id: InfoHash::random(),
        values: vec![ValueEntry::Inline(Value {
            id: 10,
            ..Value::new("spoofed")
        })],
        ..push
    };
    n.handle_datagram(t0, addr("127.0.0.66:4222"), &reply(sid, spoof));
    assert!(events(&mut n).is_empty());
    // A `u` push of expired ids.
    let gone = Body {
        id: peer_id,
        expired: vec![9],
        ..Body::default()
    };
    let u = Message::new(sid, MessageKind::LegacyUpdate, gone).encode();
    n.handle_datagram(t0, peer, &u);
    assert_eq!(events(&mut n), vec![Event::Expired { op, id: 9 }]);

    // The refresh 20 s later is a listen with the confirmation's token, no new lookup.
    let t1 = t0 + Duration::from_secs(21);
    n.handle_timeout(t1);
    let out = sent(&mut n);
    assert!(
        !out.iter()
            .any(|(_, m)| m.kind == MessageKind::Query(Method::Find) && m.body.target == Some(key)),
        "{out:?}"
    );
    let relisten = out
        .iter()
        .find(|(_, m)| m.kind == MessageKind::Query(Method::Listen))
        .map(|(_, m)| m)
        .unwrap_or_else(|| panic!("the listen is refreshed: {out:?}"));
    assert_eq!(relisten.body.token, Some(vec![3; 32]));
    assert_eq!(relisten.body.sid, Some(sid));
}

#[test]
fn a_refused_listen_token_is_fetched_again() {
    let t0 = Instant::now();
    let mut n = Node::new(Config::default());
    let peer = addr("127.0.0.9:4222");
    let peer_id = join_scripted_peer(&mut n, t0, peer, Some(vec![1; 32]));
    sent(&mut n);
    let key = InfoHash::get(b"watched");
    n.listen(t0, key, None);
    let (_, find) = sent(&mut n).pop().unwrap();
    let answer = Body {
        id: peer_id,
        token: Some(vec![2; 32]),
        ..Body::default()
    };
    n.handle_datagram(t0, peer, &reply(find.tid, answer));
    let (_, listen) = sent(&mut n)
        .into_iter()
        .find(|(_, m)| m.kind == MessageKind::Query(Method::Listen))
        .unwrap();
    let refused = Message::new(
        listen.tid,
        MessageKind::Error(401, "Listen with wrong token".into()),
        Body {
            id: peer_id,
            ..Body::default()
        },
    )
    .encode();
    n.handle_datagram(t0, peer, &refused);
    let out = sent(&mut n);
    assert!(
        out.iter()
            .any(|(to, m)| *to == peer && m.kind == MessageKind::Query(Method::Find)),
        "a new token is asked for: {out:?}"
    );
}

/// One node id, two routing tables: IPv4 and IPv6 nodes are kept apart and a `find` that
/// wants both families gets both lists (`n4` of 26-byte entries, `n6` of 38-byte ones).
#[test]
fn ipv4_and_ipv6_tables_share_one_id() {
    use pamoja_dht::message::{WANT_V4, WANT_V6};
    let t0 = Instant::now();
    let mut n = Node::new(Config::default());
    let peers: Vec<(SocketAddr, InfoHash)> = (1..=3)
        .map(|i| (addr(&format!("127.0.0.{i}:4222")), InfoHash::random()))
        .chain((1..=3).map(|i| (addr(&format!("[2001:db8::{i}]:4222")), InfoHash::random())))
        .collect();
    for (i, (from, id)) in peers.iter().enumerate() {
        let ping = Body {
            id: *id,
            ..Body::default()
        };
        n.handle_datagram(t0, *from, &query(100 + i as u32, Method::Ping, ping));
        // The newcomer is pinged back; its answer confirms it.
        for (to, m) in sent(&mut n) {
            if to == *from && m.kind == MessageKind::Query(Method::Ping) {
                let pong = Body {
                    id: *id,
                    seen_addr: Some(to.ip()),
                    ..Body::default()
                };
                n.handle_datagram(t0, *from, &reply(m.tid, pong));
            }
        }
    }
    let (good4, _, good6, _) = n.node_counts(t0);
    assert_eq!((good4, good6), (3, 3));
    let find = Body {
        id: InfoHash::random(),
        target: Some(InfoHash::random()),
        want: vec![WANT_V4, WANT_V6],
        ..Body::default()
    };
    n.handle_datagram(t0, addr("127.0.0.9:5000"), &query(7, Method::Find, find));
    let (_, answer) = sent(&mut n)
        .into_iter()
        .find(|(_, m)| m.kind == MessageKind::Reply)
        .expect("an answer");
    assert_eq!(answer.body.nodes4.len(), 3);
    assert_eq!(answer.body.nodes6.len(), 3);
    assert!(answer.body.nodes4.iter().all(|x| x.addr.is_ipv4()));
    assert!(answer.body.nodes6.iter().all(|x| x.addr.is_ipv6()));
    // Without `w`, a requester gets its own family only.
    let find = Body {
        id: InfoHash::random(),
        target: Some(InfoHash::random()),
        ..Body::default()
    };
    n.handle_datagram(
        t0,
        addr("[2001:db8::9]:5000"),
        &query(8, Method::Find, find),
    );
    let (_, answer) = sent(&mut n)
        .into_iter()
        .find(|(_, m)| m.kind == MessageKind::Reply)
        .expect("an answer");
    assert_eq!((answer.body.nodes4.len(), answer.body.nodes6.len()), (0, 3));
}

/// The storing side keeps a signed value only when its signature verifies, lets only its
/// owner edit it with a higher `seq`, and never goes back to an older one.
#[test]
fn signed_values_are_stored_only_when_they_verify() {
    use pamoja_dht::secure;
    use pamoja_identity::PrivateKey;
    let t0 = Instant::now();
    let mut n = Node::new(Config::default());
    let from = addr("127.0.0.2:5000");
    let id = InfoHash::random();
    let tok = token(&mut n, t0, from, id);
    let key = InfoHash::get(b"owned");
    let owner = PrivateKey::generate().unwrap();
    let thief = PrivateKey::generate().unwrap();
    let put = |n: &mut Node, v: Value| {
        let body = Body {
            id,
            key: Some(key),
            values: vec![ValueEntry::Inline(v)],
            token: Some(tok.clone()),
            ..Body::default()
        };
        n.handle_datagram(t0, from, &query(9, Method::Put, body));
        // Acknowledged either way.
        assert!(sent(n).iter().any(|(_, m)| m.body.vid == Some(5)));
    };
    let stored = |n: &Node| -> Vec<(Vec<u8>, u16)> {
        n.stored()
            .flat_map(|(_, vs)| vs.into_iter().map(|v| (v.data.clone(), v.seq)))
            .collect()
    };
    let signed = |k: &PrivateKey, data: &str, seq: u16| {
        let mut v = Value {
            id: 5,
            seq,
            ..Value::new(data)
        };
        secure::sign(&mut v, k).unwrap();
        v
    };
    // A forged signature is not stored.
    let mut forged = signed(&owner, "original", 0);
    forged.data = b"forged".to_vec();
    put(&mut n, forged);
    assert!(stored(&n).is_empty());
    assert_eq!(n.counters().bad_signatures, 1);
    put(&mut n, signed(&owner, "original", 0));
    assert_eq!(stored(&n), vec![(b"original".to_vec(), 0)]);
    // Another key cannot edit it, even with a higher seq; a bad signature with the owner's
    // key and a higher seq neither.
    put(&mut n, signed(&thief, "stolen", 5));
    let mut spoofed = signed(&owner, "original", 0);
    spoofed.seq = 7;
    put(&mut n, spoofed);
    assert_eq!(stored(&n), vec![(b"original".to_vec(), 0)]);
    // The owner edits with a higher seq; replaying the older one changes nothing.
    put(&mut n, signed(&owner, "edited", 1));
    assert_eq!(stored(&n), vec![(b"edited".to_vec(), 1)]);
    put(&mut n, signed(&owner, "original", 0));
    assert_eq!(stored(&n), vec![(b"edited".to_vec(), 1)]);
    // Each refusal counted with its reason: the thief's edit and the replay.
    assert_eq!(n.counters().bad_signatures, 2);
    assert_eq!(n.counters().refused_edits, 2);
}
