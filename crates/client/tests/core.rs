//! The communicator's rules, several cores wired together in memory: no socket, no sleep,
//! virtual time (see `core/sim.rs`). These run inside a network namespace with no
//! interface up.

#[path = "core/sim.rs"]
mod sim;

use std::time::Duration;

use pamoja_channel::sip::{self, Route};
use pamoja_client::core::calls::CallCommand;
use pamoja_client::core::{ChannelId, Command, Input, Io, Reply};
use pamoja_client::instant::Instant as Im;
use pamoja_client::{CallId, CallState, ConversationId, Event, JamiId, MessageId, Settings};
use sim::World;

/// A `sip` channel's route from account `from` to account `to`.
fn route(from: &str, to: &str) -> Route {
    Route {
        from: from.into(),
        to: to.into(),
        local: "10.0.0.2:1".parse().unwrap(),
        remote: "10.0.0.1:1".parse().unwrap(),
    }
}

/// The bytes of a MESSAGE from `from` to `to` saying `from` types in `conv`.
fn typing_message(from: &str, to: &str, conv: &ConversationId, id: &str) -> Vec<u8> {
    let (mime, body) = Im::Composing {
        conversation: conv.to_string(),
        active: true,
    }
    .encode();
    sip::message(&route(from, to), mime, &body, id, 1).to_bytes()
}

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn conversation_of(r: Result<Reply, String>) -> ConversationId {
    match r {
        Ok(Reply::Conversation(c)) => c,
        other => panic!("expected a conversation, got {other:?}"),
    }
}

/// A asks B, B accepts: the one-to-one conversation both hold.
fn befriend(w: &mut World, a: usize, b: usize) -> ConversationId {
    let b_id = w.id(b);
    let conv = conversation_of(w.ask(a, Command::AddContact(b_id)));
    let a_id = w.id(a);
    assert!(
        w.run_until(secs(30), |w| w.nodes[b].saw(
            |e| matches!(e, Event::TrustRequest { from, conversation, .. } if *from == a_id && *conversation == conv)
        )),
        "the trust request arrives"
    );
    assert_eq!(
        conversation_of(w.ask(b, Command::AcceptContact(a_id))),
        conv
    );
    let b_id = w.id(b);
    assert!(
        w.run_until(secs(60), |w| {
            w.nodes[a].saw(
                |e| matches!(e, Event::ContactAdded { id, confirmed: true, .. } if *id == b_id),
            ) && w.nodes[b].saw(
                |e| matches!(e, Event::ConversationReady { conversation } if *conversation == conv),
            )
        }),
        "confirmed on both sides"
    );
    conv
}

fn send(w: &mut World, n: usize, conv: &ConversationId, text: &str) -> MessageId {
    match w.ask(
        n,
        Command::SendMessage {
            conversation: conv.clone(),
            text: text.into(),
        },
    ) {
        Ok(Reply::Commit(id)) => id,
        other => panic!("not posted: {other:?}"),
    }
}

fn has_text(w: &World, n: usize, conv: &ConversationId, text: &str) -> bool {
    w.nodes[n].texts(conv).iter().any(|t| t == text)
}

#[test]
fn contacts_add_accept_and_talk_both_ways() {
    let mut w = World::new(&["alice", "bob"]);
    w.online(A);
    w.online(B);
    let conv = befriend(&mut w, A, B);
    send(&mut w, A, &conv, "hello bob");
    assert!(w.run_until(secs(30), |w| has_text(w, B, &conv, "hello bob")));
    send(&mut w, B, &conv, "hello alice");
    assert!(w.run_until(secs(30), |w| has_text(w, A, &conv, "hello alice")));
    // Each side lists the other as a confirmed contact.
    let b_id = w.id(B);
    let c = &w.nodes[A].core.contacts().contacts[&b_id.to_string()];
    assert!(c.confirmed);
    assert_eq!(c.conversation_id, conv.as_str());
}

#[test]
fn a_declined_request_is_forgotten_and_a_ban_refuses_everything() {
    let mut w = World::new(&["alice", "bob"]);
    w.online(A);
    w.online(B);
    let b_id = w.id(B);
    let a_id = w.id(A);
    conversation_of(w.ask(A, Command::AddContact(b_id)));
    assert!(w.run_until(secs(30), |w| {
        w.nodes[B].saw(|e| matches!(e, Event::TrustRequest { .. }))
    }));
    assert_eq!(w.ask(B, Command::DeclineContact(a_id)), Ok(Reply::Done));
    assert!(w.nodes[B].core.contacts().requests.is_empty());
    assert!(
        w.ask(B, Command::DeclineContact(a_id)).is_err(),
        "nothing left to decline"
    );

    // Bob bans Alice: her requests are ignored, her channels closed.
    assert_eq!(
        w.ask(
            B,
            Command::RemoveContact {
                id: a_id,
                ban: true
            }
        ),
        Ok(Reply::Done)
    );
    assert_eq!(w.nodes[B].core.banned(), vec![a_id.to_string()]);
    assert!(
        w.nodes[B].link_bans.contains(&a_id),
        "the link layer was told to refuse her"
    );
    let before = w.nodes[B].events.len();
    w.command(A, Command::AddContact(b_id));
    w.run_until(secs(120), |_| false);
    assert!(
        !w.nodes[B].events[before..]
            .iter()
            .any(|e| matches!(e, Event::TrustRequest { .. })),
        "a banned account's request is dropped"
    );
    let dev = w.nodes[A].device;
    w.nodes[B].core.handle(
        w.now,
        0,
        Input::ChannelUp {
            channel: ChannelId(77),
            device: dev,
            account: Some(a_id),
            name: "sip".into(),
        },
    );
    assert!(
        std::iter::from_fn(|| w.nodes[B].core.poll_io())
            .any(|io| matches!(io, Io::Close(ChannelId(77)))),
        "a banned account's channel is closed"
    );
    // Lifting the ban lets a request through again.
    assert_eq!(w.ask(B, Command::UnbanContact(a_id)), Ok(Reply::Done));
    assert!(w.nodes[B].core.banned().is_empty());
    assert!(w.nodes[B].link_bans.is_empty(), "and to accept her again");
}

/// Alice's group with Bob and Carol.
fn group_of_three(w: &mut World) -> ConversationId {
    let conv = conversation_of(w.ask(A, Command::CreateGroup));
    for n in [B, C] {
        let id = w.id(n);
        assert!(matches!(
            w.ask(
                A,
                Command::Invite {
                    conversation: conv.clone(),
                    id
                }
            ),
            Ok(Reply::Commit(_))
        ));
        assert!(w.run_until(secs(60), |w| w.nodes[n].saw(
            |e| matches!(e, Event::ConversationRequest { conversation, .. } if *conversation == conv)
        )));
        assert_eq!(
            w.ask(n, Command::AcceptConversation(conv.clone())),
            Ok(Reply::Done)
        );
        assert!(w.run_until(secs(60), |w| w.nodes[n].core.members().holds(conv.as_str())));
    }
    let (b, c) = (w.id(B), w.id(C));
    assert!(w.run_until(secs(60), |w| {
        w.nodes[A]
            .core
            .members()
            .takes_part(conv.as_str(), &b.to_string())
            && w.nodes[A]
                .core
                .members()
                .takes_part(conv.as_str(), &c.to_string())
    }));
    conv
}

#[test]
fn a_message_reaches_every_member_of_a_group() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    for n in [A, B, C] {
        w.online(n);
    }
    let conv = group_of_three(&mut w);
    send(&mut w, A, &conv, "to all");
    assert!(w.run_until(secs(60), |w| has_text(w, B, &conv, "to all")
        && has_text(w, C, &conv, "to all")));
    send(&mut w, C, &conv, "from carol");
    assert!(
        w.run_until(secs(60), |w| has_text(w, A, &conv, "from carol")
            && has_text(w, B, &conv, "from carol"))
    );
    // Each message is reported once on each device.
    for n in [A, B, C] {
        let texts = w.nodes[n].texts(&conv);
        assert_eq!(
            texts.iter().filter(|t| *t == "to all").count(),
            1,
            "{texts:?}"
        );
    }
}

#[test]
fn an_offline_member_catches_up_through_a_third() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    for n in [A, B, C] {
        w.online(n);
    }
    let conv = group_of_three(&mut w);
    w.offline(C);
    send(&mut w, A, &conv, "while carol slept");
    assert!(w.run_until(secs(60), |w| has_text(w, B, &conv, "while carol slept")));
    // Alice leaves the network before Carol comes back: Bob has the message.
    w.offline(A);
    w.online(C);
    assert!(
        w.run_until(secs(300), |w| has_text(w, C, &conv, "while carol slept")),
        "carol fetched from bob"
    );
}

#[test]
fn a_forged_history_is_refused_and_nothing_of_it_merged() {
    let mut w = World::new(&["alice", "bob"]);
    w.online(A);
    w.online(B);
    let conv = befriend(&mut w, A, B);
    send(&mut w, A, &conv, "genuine");
    assert!(w.run_until(secs(30), |w| has_text(w, B, &conv, "genuine")));
    // Bob's repository gets a commit no device signed, then Bob posts on top of it.
    let dir = w.nodes[B].dir.join("conversations").join(conv.as_str());
    sim::forge_commit(&dir, "forged");
    send(&mut w, B, &conv, "after the forgery");
    let b_dev = w.nodes[B].device.to_string();
    assert!(w.run_until(secs(60), |w| {
        w.nodes[A].saw(|e| matches!(e, Event::SyncRefused { device, .. } if *device == b_dev))
    }));
    assert!(!has_text(&w, A, &conv, "forged"));
    assert!(!has_text(&w, A, &conv, "after the forgery"));
    let repo =
        git2::Repository::open(w.nodes[A].dir.join("conversations").join(conv.as_str())).unwrap();
    let head = repo
        .revparse_single("main")
        .unwrap()
        .peel_to_commit()
        .unwrap();
    assert!(!head.message().unwrap_or_default().contains("forged"));
}

#[test]
fn typing_and_read_receipts_off_and_on() {
    let mut w = World::new(&["alice", "bob"]);
    w.online(A);
    w.online(B);
    let conv = befriend(&mut w, A, B);
    let msg = send(&mut w, A, &conv, "read me");
    assert!(w.run_until(secs(30), |w| has_text(w, B, &conv, "read me")));
    // The sip channel is up both ways once they talked.
    let r = w.ask(
        B,
        Command::SetTyping {
            conversation: conv.clone(),
            on: true,
        },
    );
    assert_eq!(r, Ok(Reply::Count(1)));
    let b_id = w.id(B);
    assert!(w.run_until(secs(5), |w| {
        w.nodes[A].saw(|e| matches!(e, Event::Typing { from, on: true, .. } if *from == b_id))
    }));
    let r = w.ask(
        B,
        Command::SetDisplayed {
            conversation: conv.clone(),
            message: msg.clone(),
        },
    );
    assert_eq!(r, Ok(Reply::Count(1)));
    assert!(w.run_until(secs(5), |w| {
        w.nodes[A].saw(|e| matches!(e, Event::Displayed { message, .. } if *message == msg))
    }));
    // Bob turns both off: nothing is sent.
    let off = Settings {
        typing: false,
        read_receipts: false,
        ..Settings::default()
    };
    assert_eq!(w.ask(B, Command::SetSettings(off.clone())), Ok(Reply::Done));
    assert_eq!(
        w.ask(
            B,
            Command::SetTyping {
                conversation: conv.clone(),
                on: false
            }
        ),
        Ok(Reply::Count(0))
    );
    assert_eq!(
        w.ask(
            B,
            Command::SetDisplayed {
                conversation: conv.clone(),
                message: msg.clone()
            }
        ),
        Ok(Reply::Count(0))
    );
    // Alice turns hers off: what she receives is not reported.
    assert_eq!(w.ask(A, Command::SetSettings(off)), Ok(Reply::Done));
    assert_eq!(
        w.ask(B, Command::SetSettings(Settings::default())),
        Ok(Reply::Done)
    );
    let before = w.nodes[A].events.len();
    assert_eq!(
        w.ask(
            B,
            Command::SetTyping {
                conversation: conv.clone(),
                on: true
            }
        ),
        Ok(Reply::Count(1))
    );
    w.run_until(secs(5), |_| false);
    assert!(
        !w.nodes[A].events[before..]
            .iter()
            .any(|e| matches!(e, Event::Typing { .. })),
        "typing not reported when off"
    );
}

#[test]
fn a_peer_that_vanishes_mid_fetch_is_fetched_from_later() {
    let mut w = World::new(&["alice", "bob"]);
    w.online(A);
    w.online(B);
    let conv = befriend(&mut w, A, B);
    send(&mut w, A, &conv, "first");
    assert!(w.run_until(secs(30), |w| has_text(w, B, &conv, "first")));
    // Alice posts; Bob's fetch is asked for, and Alice vanishes before serving it.
    let _ = w.command(
        A,
        Command::SendMessage {
            conversation: conv.clone(),
            text: "second".into(),
        },
    );
    let asked = w.run_until(secs(30), |w| !w.nodes[A].pending_serve.is_empty());
    assert!(asked, "bob asked alice for the new commit");
    w.offline(A);
    w.run_until(secs(30), |_| false);
    assert!(!has_text(&w, B, &conv, "second"));
    // Bob's core is not stuck: when Alice is back, the fetch runs.
    w.online(A);
    assert!(w.run_until(secs(300), |w| has_text(w, B, &conv, "second")));
}

#[test]
fn a_stranger_is_not_served_a_conversation() {
    let mut w = World::new(&["alice", "bob", "mallory"]);
    w.online(A);
    w.online(B);
    let conv = befriend(&mut w, A, B);
    let (m_dev, m_id) = (w.nodes[C].device, w.id(C));
    let (b_dev, b_id) = (w.nodes[B].device, w.id(B));
    let name = format!("git://{}/{conv}", w.nodes[A].device);
    let now = w.now;
    let core = &mut w.nodes[A].core;
    core.handle(
        now,
        0,
        Input::ChannelUp {
            channel: ChannelId(900),
            device: m_dev,
            account: Some(m_id),
            name: name.clone(),
        },
    );
    core.handle(
        now,
        0,
        Input::ChannelUp {
            channel: ChannelId(901),
            device: b_dev,
            account: Some(b_id),
            name,
        },
    );
    let ios: Vec<Io> = std::iter::from_fn(|| core.poll_io()).collect();
    assert!(
        ios.iter().any(|io| matches!(io, Io::Close(ChannelId(900)))),
        "{ios:?}"
    );
    assert!(!ios.iter().any(|io| matches!(
        io,
        Io::Serve {
            channel: ChannelId(900),
            ..
        }
    )));
    assert!(
        ios.iter().any(|io| matches!(
            io,
            Io::Serve {
                channel: ChannelId(901),
                ..
            }
        )),
        "a member is served"
    );
}

#[test]
fn a_message_naming_another_sender_is_dropped() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    w.online(A);
    w.online(B);
    let conv = befriend(&mut w, A, B);
    let (b_dev, b_id, c_id, a_id) = (w.nodes[B].device, w.id(B), w.id(C), w.id(A));
    let now = w.now;
    let core = &mut w.nodes[A].core;
    core.handle(
        now,
        0,
        Input::ChannelUp {
            channel: ChannelId(500),
            device: b_dev,
            account: Some(b_id),
            name: "sip".into(),
        },
    );
    let typing = |from: &str, id: &str| typing_message(from, &a_id.to_string(), &conv, id);
    // Bob's link carries a message claiming to be Carol's: dropped.
    core.handle(
        now,
        0,
        Input::ChannelData {
            channel: ChannelId(500),
            data: typing(&c_id.to_string(), "0000000000000001"),
        },
    );
    // The same from Bob himself is reported.
    core.handle(
        now,
        0,
        Input::ChannelData {
            channel: ChannelId(500),
            data: typing(&b_id.to_string(), "0000000000000002"),
        },
    );
    let events: Vec<Event> = std::iter::from_fn(|| core.poll_event()).collect();
    let typing_from: Vec<&JamiId> = events
        .iter()
        .filter_map(|e| match e {
            Event::Typing { from, .. } => Some(from),
            _ => None,
        })
        .collect();
    assert_eq!(typing_from, vec![&b_id], "{events:?}");
}

fn call_of(r: Result<Reply, String>) -> CallId {
    match r {
        Ok(Reply::Call(c)) => c,
        other => panic!("expected a call, got {other:?}"),
    }
}

fn state_seen(w: &World, n: usize, call: &CallId, want: CallState) -> bool {
    w.nodes[n].saw(
        |e| matches!(e, Event::CallState { call: c, state, .. } if c == call && *state == want),
    )
}

fn last_media(w: &World, n: usize, call: &CallId) -> Option<(bool, bool, bool)> {
    w.nodes[n].events.iter().rev().find_map(|e| match e {
        Event::CallMedia {
            call: c,
            hold,
            peer_hold,
            video,
            ..
        } if c == call => Some((*hold, *peer_hold, *video)),
        _ => None,
    })
}

/// Alice calls Bob, who answers: the call, current on both sides.
fn answered_call(w: &mut World, video: bool) -> CallId {
    let b = w.id(B);
    let call = call_of(w.ask(
        A,
        Command::PlaceCall {
            to: b,
            video,
            records: false,
        },
    ));
    assert!(w.run_until(secs(10), |w| state_seen(w, B, &call, CallState::Incoming)));
    assert!(
        state_seen(w, A, &call, CallState::Ringing)
            || w.run_until(secs(5), |w| state_seen(w, A, &call, CallState::Ringing))
    );
    let r = w.ask(
        B,
        Command::Call(
            call.clone(),
            CallCommand::Answer {
                video,
                records: false,
            },
        ),
    );
    assert_eq!(r, Ok(Reply::Done));
    assert!(w.run_until(secs(10), |w| {
        state_seen(w, A, &call, CallState::Current) && state_seen(w, B, &call, CallState::Current)
    }));
    call
}

#[test]
fn a_call_is_answered_held_resumed_and_hung_up() {
    let mut w = World::new(&["alice", "bob"]);
    w.online(A);
    w.online(B);
    befriend(&mut w, A, B);
    let call = answered_call(&mut w, false);
    assert_eq!(w.nodes[A].core.calls(), vec![call.clone()]);
    assert_eq!(w.nodes[B].core.calls(), vec![call.clone()]);
    // One offer and answer: one media start each side.
    assert_eq!(w.nodes[A].media_starts.len(), 1);
    assert_eq!(w.nodes[B].media_starts.len(), 1);

    // Alice holds: a re-INVITE, new media on both sides, Bob sees the peer hold.
    let r = w.ask(A, Command::Call(call.clone(), CallCommand::Hold(true)));
    assert_eq!(r, Ok(Reply::Done));
    assert!(w.run_until(secs(10), |w| last_media(w, B, &call)
        == Some((false, true, false))
        && state_seen(w, A, &call, CallState::Hold)));
    assert_eq!(
        w.nodes[A].media_starts.last().map(|m| m.1),
        Some(true),
        "our streams held"
    );
    // Resumed.
    w.ask(A, Command::Call(call.clone(), CallCommand::Hold(false)))
        .unwrap();
    assert!(w.run_until(secs(10), |w| last_media(w, B, &call)
        == Some((false, false, false))));
    assert_eq!(w.nodes[A].media_starts.len(), 3);

    // Video added by Bob, then a key press and mute from Alice.
    w.ask(B, Command::Call(call.clone(), CallCommand::Video(true)))
        .unwrap();
    w.ask(A, Command::Call(call.clone(), CallCommand::Video(true)))
        .unwrap();
    assert!(
        w.run_until(secs(20), |w| last_media(w, A, &call).is_some_and(|m| m.2)
            && last_media(w, B, &call).is_some_and(|m| m.2))
    );
    w.ask(A, Command::Call(call.clone(), CallCommand::Dtmf('7')))
        .unwrap();
    assert!(w.run_until(secs(5), |w| {
        w.nodes[B].saw(|e| matches!(e, Event::CallDtmf { key: '7', .. }))
    }));
    w.ask(A, Command::Call(call.clone(), CallCommand::Mute(true)))
        .unwrap();
    assert!(w.run_until(secs(5), |w| w.nodes[B].saw(|e| matches!(
        e,
        Event::CallMedia {
            peer_muted: true,
            ..
        }
    ))));

    // Alice hangs up: ended on both sides, for each its reason.
    w.ask(A, Command::Call(call.clone(), CallCommand::HangUp))
        .unwrap();
    let ended = |w: &World, n: usize, why: &str| {
        w.nodes[n].saw(|e| matches!(e, Event::CallState { call: c, state: CallState::Ended, reason: Some(r), .. } if *c == call && r == why))
    };
    assert!(w.run_until(secs(10), |w| ended(w, A, "local") && ended(w, B, "hung_up")));
    assert!(w.nodes[A].core.calls().is_empty() && w.nodes[B].core.calls().is_empty());
    assert!(
        w.ask(A, Command::Call(call, CallCommand::HangUp)).is_err(),
        "no such call any more"
    );
}

#[test]
fn a_declined_call_and_crossing_re_invites() {
    let mut w = World::new(&["alice", "bob"]);
    w.online(A);
    w.online(B);
    befriend(&mut w, A, B);
    // Bob declines.
    let b = w.id(B);
    let call = call_of(w.ask(
        A,
        Command::PlaceCall {
            to: b,
            video: false,
            records: false,
        },
    ));
    assert!(w.run_until(secs(10), |w| state_seen(w, B, &call, CallState::Incoming)));
    w.ask(B, Command::Call(call.clone(), CallCommand::HangUp))
        .unwrap();
    assert!(w.run_until(secs(10), |w| w.nodes[A].saw(|e| matches!(e,
        Event::CallState { call: c, state: CallState::Ended, reason: Some(r), .. } if *c == call && r == "declined"))));

    // Glare: both hold at the same instant; the re-INVITEs cross (491) and are tried again
    // after RFC 3261's random waits, until both holds are agreed.
    let call = answered_call(&mut w, false);
    w.command(A, Command::Call(call.clone(), CallCommand::Hold(true)));
    w.command(B, Command::Call(call.clone(), CallCommand::Hold(true)));
    assert!(
        w.run_until(secs(30), |w| last_media(w, A, &call)
            .is_some_and(|m| m.0 && m.1)
            && last_media(w, B, &call).is_some_and(|m| m.0 && m.1)),
        "both held: {:?} {:?}",
        last_media(&w, A, &call),
        last_media(&w, B, &call)
    );
}

#[test]
fn garbage_on_a_sip_channel_costs_that_channel_only() {
    let mut w = World::new(&["alice", "bob"]);
    w.online(A);
    w.online(B);
    let conv = befriend(&mut w, A, B);
    let (b_dev, b_id, a_id) = (w.nodes[B].device, w.id(B), w.id(A));
    // A valid MESSAGE, then cut, mangled and random versions of it, each on a fresh
    // channel from Bob's device.
    let good = typing_message(
        &b_id.to_string(),
        &a_id.to_string(),
        &conv,
        "00000000000000aa",
    );
    let mut seed = 7u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..2000u64 {
        let mut data = good.clone();
        match round % 4 {
            0 => data.truncate((next() % data.len() as u64) as usize),
            1 => {
                for _ in 0..(1 + next() % 8) {
                    let i = (next() % data.len() as u64) as usize;
                    data[i] = next() as u8;
                }
            }
            2 => data = (0..(next() % 300)).map(|_| next() as u8).collect(),
            _ => {
                let i = (next() % data.len() as u64) as usize;
                data.splice(
                    i..i,
                    b"Content-Length: 99999999999999999999\r\n".iter().copied(),
                );
            }
        }
        let ch = ChannelId(10_000 + round);
        let up = Input::ChannelUp {
            channel: ch,
            device: b_dev,
            account: Some(b_id),
            name: "sip".into(),
        };
        w.inject(A, up);
        w.inject(A, Input::ChannelData { channel: ch, data });
        w.inject(A, Input::ChannelClosed(ch));
    }
    w.settle();
    // The account still works: Bob's message comes through.
    send(&mut w, B, &conv, "still here");
    assert!(w.run_until(secs(30), |w| has_text(w, A, &conv, "still here")));
}

#[test]
fn the_same_seed_and_inputs_give_the_same_bytes() {
    use pamoja_client::core::{Core, CoreConfig, State};
    let w = World::new(&["alice", "bob"]);
    let (a_id, b_id, b_dev) = (w.id(A), w.id(B), w.nodes[B].device);
    // One request whose To has no tag: each answer adds one.
    let route = route(&b_id.to_string(), &a_id.to_string());
    let request = sip::message(&route, "text/plain", "hi", "00000000000000ab", 1).to_bytes();
    let run = |seed: u64| -> Vec<Vec<u8>> {
        let config = CoreConfig {
            me: a_id.to_string(),
            device: w.nodes[A].device.to_string(),
            short_device: w.nodes[A].chain[0].short_device_id().to_string(),
            ice_addr: "10.0.0.1".parse().unwrap(),
        };
        let mut core = Core::new(
            config,
            State::default(),
            Box::new(sim::Seeded(seed)),
            Box::new(sim::SeenSet::default()),
            w.now,
            1_800_000_000,
        );
        let ch = ChannelId(1);
        core.handle(
            w.now,
            1_800_000_000,
            Input::ChannelUp {
                channel: ch,
                device: b_dev,
                account: Some(b_id),
                name: "sip".into(),
            },
        );
        core.handle(
            w.now,
            1_800_000_000,
            Input::ChannelData {
                channel: ch,
                data: request.clone(),
            },
        );
        std::iter::from_fn(|| core.poll_io())
            .filter_map(|io| match io {
                Io::Send { data, .. } => Some(data),
                _ => None,
            })
            .collect()
    };
    let (one, again, other) = (run(5), run(5), run(6));
    assert!(!one.is_empty(), "the request is answered");
    assert_eq!(one, again, "no randomness but the source handed in");
    assert_ne!(one, other, "the tag comes from that source");
}

/// A stranger's device floods us with invitations, and many accounts with trust requests:
/// what waits for the user is bounded, and the flood's files are not rewritten per repeat.
#[test]
fn floods_of_requests_are_bounded() {
    use pamoja_client::core::{MAX_CONV_REQUESTS_PER_SENDER, MAX_TRUST_REQUESTS};
    use pamoja_client::trust::TrustRequest;
    let mut w = World::new(&["alice", "mallory"]);
    w.online(A);
    let (m_dev, m_id, a_id) = (w.nodes[B].device, w.id(B), w.id(A));
    let now = w.now;
    let core = &mut w.nodes[A].core;
    core.handle(
        now,
        0,
        Input::ChannelUp {
            channel: ChannelId(900),
            device: m_dev,
            account: Some(m_id),
            name: "sip".into(),
        },
    );
    let route = route(&m_id.to_string(), &a_id.to_string());
    for i in 0..200u32 {
        let (mime, body) = Im::Invite {
            conversation: format!("{i:040x}"),
            metadatas: Default::default(),
        }
        .encode();
        let data =
            sip::message(&route, mime, &body, &format!("{i:016x}"), u64::from(i) + 1).to_bytes();
        core.handle(
            now,
            0,
            Input::ChannelData {
                channel: ChannelId(900),
                data,
            },
        );
    }
    let waiting = core.conversation_requests().len();
    assert_eq!(
        waiting, MAX_CONV_REQUESTS_PER_SENDER,
        "invitations kept from one sender"
    );
    // Trust requests from 600 accounts (the inbox layer checked their signatures).
    for i in 0..600u32 {
        let request = TrustRequest {
            service: "cx.ring".into(),
            conversation_id: format!("{:040x}", i + 1_000),
            payload: Vec::new(),
            confirm: false,
        };
        core.handle(
            now,
            0,
            Input::Trust {
                from: format!("{:040x}", i + 7).parse().unwrap(),
                device: vec![1, 2, 3],
                request,
            },
        );
    }
    assert_eq!(core.contacts().requests.len(), MAX_TRUST_REQUESTS);
    // No presence listen per stranger: only the inviting account's, once.
    let listens: Vec<_> = std::iter::from_fn(|| core.poll_io())
        .filter_map(|io| match io {
            Io::Listen(id) => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(listens, vec![m_id], "listens started for strangers");
}

/// One peer placing call after call: past two calls with it, its INVITEs are refused busy.
#[test]
fn a_flood_of_invites_gets_busy() {
    use pamoja_client::core::calls::MAX_CALLS_PER_PEER;
    let mut w = World::new(&["alice", "bob"]);
    w.online(A);
    w.online(B);
    let b = w.id(B);
    for _ in 0..10 {
        call_of(w.ask(
            A,
            Command::PlaceCall {
                to: b,
                video: false,
                records: false,
            },
        ));
    }
    w.run_until(secs(10), |_| false);
    assert_eq!(w.nodes[B].core.calls().len(), MAX_CALLS_PER_PEER);
    let ended = w.nodes[A]
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::CallState {
                    state: CallState::Ended,
                    ..
                }
            )
        })
        .count();
    assert_eq!(
        ended,
        10 - MAX_CALLS_PER_PEER,
        "the others end on the caller's side"
    );
}
