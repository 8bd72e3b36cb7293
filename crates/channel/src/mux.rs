//! jamid's multiplexed socket: named channels over one TLS stream, as a sans-IO state
//! machine.
//!
//! The stream is a concatenation of msgpack arrays `[channel: uint, payload: bin]` (a `str`
//! payload is read too), payloads of at most 65,535 bytes. Channel 0 carries control
//! objects: channel requests `[name, channel, state]` with state 0 request, 1 accept,
//! 2 decline; channel 0xFFFF carries protocol maps: `{"v": 1}` (sent by both sides at
//! start) and beacons `{"p": true}` / `{"p": false}` (answer within 3 s or the link is
//! dropped). An empty payload on an application channel closes it.
//!
//! ```text
//! 92 cd ff ff c4 04 81 a1 76 01          version 1 on 0xFFFF
//! 92 00 c4 09 93 a3 73 69 70 cd 12 34 00 request "sip" on channel 0x1234
//! 92 cd 12 34 c4 03 61 62 63             "abc" on 0x1234
//! ```
//!
//! [`Mux`] is fed the decrypted stream ([`Mux::handle_bytes`]) and time, and hands back bytes
//! to encrypt and send ([`Mux::poll_transmit`]) and [`MuxEvent`]s. Garbage costs only this
//! link: a stream that is not msgpack, a frame header announcing more than a frame can hold,
//! or more channels than [`Limits::max_channels`] end it with [`MuxEvent::Failed`].

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use pamoja_identity::msgpack::{self, Kind, Reader};

use crate::random::{OsRandom, Random};

/// The control channel.
pub const CONTROL: u16 = 0;
/// The protocol channel (version, beacons).
pub const PROTOCOL: u16 = 0xFFFF;
/// Largest payload of one frame.
pub const MAX_PAYLOAD: usize = 65_535;
/// The multiplexed socket version we speak.
pub const VERSION: u64 = 1;
/// How long a beacon waits for its answer.
pub const BEACON_TIMEOUT: Duration = Duration::from_millis(3000);

/// Why a link failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MuxError {
    /// The stream is not msgpack frames.
    #[error("malformed stream: {0}")]
    Malformed(&'static str),
    /// The peer opened more channels than allowed.
    #[error("too many channels")]
    TooManyChannels,
    /// A beacon went unanswered.
    #[error("beacon not answered in 3 s")]
    BeaconLost,
    /// Writing on a channel that is not open.
    #[error("channel {0} is not open")]
    NotOpen(u16),
}

/// What the link reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MuxEvent {
    /// The peer's socket version.
    Version(u64),
    /// The peer asks to open a channel: answer with [`Mux::accept`] or [`Mux::decline`].
    Request {
        /// Channel number the peer chose.
        channel: u16,
        /// Channel name (`sip`, `git://...`).
        name: String,
    },
    /// A channel we asked for was accepted.
    Opened {
        /// Channel number.
        channel: u16,
        /// Its name.
        name: String,
    },
    /// A channel we asked for was declined.
    Declined {
        /// Channel number.
        channel: u16,
        /// Its name.
        name: String,
    },
    /// Data on an open channel.
    Data {
        /// Channel number.
        channel: u16,
        /// The payload (one frame).
        data: Vec<u8>,
    },
    /// The peer closed a channel.
    Closed {
        /// Channel number.
        channel: u16,
    },
    /// The link is unusable; drop it.
    Failed(MuxError),
}

/// Bounds on what one peer may make us hold.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Channels requested or open at once (1,024).
    pub max_channels: usize,
    /// Bytes buffered waiting for the rest of a frame (256 KiB).
    pub max_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_channels: 1024,
            max_buffer: 256 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// We asked; no answer yet.
    Asked,
    /// The peer asked; we did not answer yet.
    Offered,
    Open,
}

#[derive(Debug, Clone)]
struct Channel {
    name: String,
    state: State,
}

/// One frame: `[channel, bin(payload)]`, smallest encodings (as jamid writes them).
pub fn frame(channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    msgpack::array(&mut out, 2);
    msgpack::uint(&mut out, u64::from(channel));
    msgpack::bin(&mut out, payload);
    out
}

/// The length of the msgpack object at the start of `buf`: `Ok(None)` while incomplete,
/// `Err` for bytes that can never be msgpack (0xc1) or nesting deeper than 32.
pub fn object_len(buf: &[u8]) -> Result<Option<usize>, MuxError> {
    fn be(buf: &[u8], at: usize, n: usize) -> Option<usize> {
        let b = buf.get(at..at + n)?;
        Some(b.iter().fold(0usize, |acc, x| (acc << 8) | usize::from(*x)))
    }
    // (position, objects still to read) without recursion.
    let mut pos = 0usize;
    let mut pending: u64 = 1;
    let mut depth = 0usize;
    while pending > 0 {
        let Some(&t) = buf.get(pos) else {
            return Ok(None);
        };
        pending -= 1;
        let (head, body, children): (usize, usize, u64) = match t {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (1, 0, 0),
            0x80..=0x8f => (1, 0, u64::from(t & 0x0f) * 2),
            0x90..=0x9f => (1, 0, u64::from(t & 0x0f)),
            0xa0..=0xbf => (1, usize::from(t & 0x1f), 0),
            0xc1 => return Err(MuxError::Malformed("0xc1")),
            0xc4 | 0xd9 => match be(buf, pos + 1, 1) {
                Some(n) => (2, n, 0),
                None => return Ok(None),
            },
            0xc5 | 0xda => match be(buf, pos + 1, 2) {
                Some(n) => (3, n, 0),
                None => return Ok(None),
            },
            0xc6 | 0xdb => match be(buf, pos + 1, 4) {
                Some(n) => (5, n, 0),
                None => return Ok(None),
            },
            0xc7 => match be(buf, pos + 1, 1) {
                Some(n) => (3, n, 0),
                None => return Ok(None),
            },
            0xc8 => match be(buf, pos + 1, 2) {
                Some(n) => (4, n, 0),
                None => return Ok(None),
            },
            0xc9 => match be(buf, pos + 1, 4) {
                Some(n) => (6, n, 0),
                None => return Ok(None),
            },
            0xca => (5, 0, 0),
            0xcb => (9, 0, 0),
            0xcc | 0xd0 => (2, 0, 0),
            0xcd | 0xd1 => (3, 0, 0),
            0xce | 0xd2 => (5, 0, 0),
            0xcf | 0xd3 => (9, 0, 0),
            0xd4 => (3, 0, 0),
            0xd5 => (4, 0, 0),
            0xd6 => (6, 0, 0),
            0xd7 => (10, 0, 0),
            0xd8 => (18, 0, 0),
            0xdc => match be(buf, pos + 1, 2) {
                Some(n) => (3, 0, n as u64),
                None => return Ok(None),
            },
            0xdd => match be(buf, pos + 1, 4) {
                Some(n) => (5, 0, n as u64),
                None => return Ok(None),
            },
            0xde => match be(buf, pos + 1, 2) {
                Some(n) => (3, 0, n as u64 * 2),
                None => return Ok(None),
            },
            0xdf => match be(buf, pos + 1, 4) {
                Some(n) => (5, 0, n as u64 * 2),
                None => return Ok(None),
            },
        };
        if children > 0 {
            depth += 1;
            if depth > 32 {
                return Err(MuxError::Malformed("nesting"));
            }
        }
        pos = pos.saturating_add(head).saturating_add(body);
        pending = pending.saturating_add(children);
        if pending > 1 << 20 {
            return Err(MuxError::Malformed("too many elements"));
        }
    }
    Ok((pos <= buf.len()).then_some(pos))
}

/// A frame read from the stream: `Some((channel, payload))`, or `None` for an object of
/// another shape (jamid logs and skips those).
fn read_frame(obj: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut r = Reader::new(obj);
    if r.array_len().ok()? != 2 {
        return None;
    }
    let channel = u16::try_from(r.uint().ok()?).ok()?;
    let payload = r.bytes().ok()?;
    (payload.len() <= MAX_PAYLOAD).then(|| (channel, payload.to_vec()))
}

/// The multiplexed socket of one link.
#[derive(Debug)]
pub struct Mux {
    limits: Limits,
    buf: Vec<u8>,
    channels: HashMap<u16, Channel>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<MuxEvent>,
    peer_version: Option<u64>,
    beacon_deadline: Option<Instant>,
    failed: bool,
    skipped: u64,
    random: Box<dyn Random>,
}

impl Mux {
    /// A new link; our version map is queued at once.
    pub fn new(limits: Limits) -> Self {
        Self::with_random(limits, OsRandom)
    }

    /// A new link as [`Mux::new`] makes it, drawing the numbers of the channels it opens
    /// from `random`: two sockets given generators in the same state and the same inputs
    /// send the same bytes.
    pub fn with_random(limits: Limits, random: impl Random + 'static) -> Self {
        let mut m = Self {
            random: Box::new(random),
            limits,
            buf: Vec::new(),
            channels: HashMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            peer_version: None,
            beacon_deadline: None,
            failed: false,
            skipped: 0,
        };
        let mut v = Vec::new();
        msgpack::map(&mut v, 1);
        msgpack::str(&mut v, "v");
        msgpack::uint(&mut v, VERSION);
        m.out.push_back(frame(PROTOCOL, &v));
        m
    }

    /// The peer's version, once it sent it.
    pub fn peer_version(&self) -> Option<u64> {
        self.peer_version
    }

    /// Frames skipped because they were not `[uint, bin]`.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Channels requested or open.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// The name of a channel.
    pub fn channel_name(&self, channel: u16) -> Option<&str> {
        self.channels.get(&channel).map(|c| c.name.as_str())
    }

    /// Next bytes to send (already framed).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<MuxEvent> {
        self.events.pop_front()
    }

    /// When to call [`Mux::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.beacon_deadline
    }

    /// Fails the link when a beacon went unanswered.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.beacon_deadline.is_some_and(|d| now >= d) {
            self.beacon_deadline = None;
            self.fail(MuxError::BeaconLost);
        }
    }

    fn fail(&mut self, e: MuxError) {
        if !self.failed {
            self.failed = true;
            self.events.push_back(MuxEvent::Failed(e));
        }
    }

    /// Sends a beacon; the peer must answer within 3 s.
    pub fn beacon(&mut self, now: Instant) {
        self.send_protocol("p", true);
        self.beacon_deadline = Some(now + BEACON_TIMEOUT);
    }

    fn send_protocol(&mut self, key: &str, v: bool) {
        let mut m = Vec::new();
        msgpack::map(&mut m, 1);
        msgpack::str(&mut m, key);
        msgpack::bool(&mut m, v);
        self.out.push_back(frame(PROTOCOL, &m));
    }

    fn control(&mut self, name: &str, channel: u16, state: u8) {
        let mut c = Vec::new();
        msgpack::array(&mut c, 3);
        msgpack::str(&mut c, name);
        msgpack::uint(&mut c, u64::from(channel));
        msgpack::uint(&mut c, u64::from(state));
        self.out.push_back(frame(CONTROL, &c));
    }

    /// Asks the peer for a channel named `name`; returns its number (random, unused).
    pub fn open(&mut self, name: &str) -> Result<u16, MuxError> {
        if self.channels.len() >= self.limits.max_channels {
            return Err(MuxError::TooManyChannels);
        }
        let mut b = [0u8; 2];
        self.random.fill(&mut b);
        let start = u16::from_le_bytes(b);
        let channel = (1..=u16::MAX)
            .map(|i| start.wrapping_add(i))
            .find(|c| *c != CONTROL && *c != PROTOCOL && !self.channels.contains_key(c))
            .ok_or(MuxError::TooManyChannels)?;
        self.channels.insert(
            channel,
            Channel {
                name: name.to_owned(),
                state: State::Asked,
            },
        );
        self.control(name, channel, 0);
        Ok(channel)
    }

    /// Accepts a channel the peer asked for; data may flow at once.
    pub fn accept(&mut self, channel: u16) {
        if let Some(c) = self.channels.get_mut(&channel) {
            if c.state == State::Offered {
                c.state = State::Open;
                let name = c.name.clone();
                self.control(&name, channel, 1);
            }
        }
    }

    /// Declines a channel the peer asked for.
    pub fn decline(&mut self, channel: u16) {
        if let Some(c) = self.channels.get(&channel) {
            if c.state == State::Offered {
                let name = c.name.clone();
                self.channels.remove(&channel);
                self.control(&name, channel, 2);
            }
        }
    }

    /// Sends `data` on an open channel, in frames of at most 65,535 bytes.
    pub fn send(&mut self, channel: u16, data: &[u8]) -> Result<(), MuxError> {
        if !self
            .channels
            .get(&channel)
            .is_some_and(|c| c.state == State::Open)
        {
            return Err(MuxError::NotOpen(channel));
        }
        for chunk in data.chunks(MAX_PAYLOAD) {
            self.out.push_back(frame(channel, chunk));
        }
        Ok(())
    }

    /// Closes a channel (an empty frame); the peer does not answer.
    pub fn close(&mut self, channel: u16) {
        if self.channels.remove(&channel).is_some() {
            self.out.push_back(frame(channel, &[]));
        }
    }

    /// Feeds decrypted bytes from the peer.
    pub fn handle_bytes(&mut self, data: &[u8]) {
        if self.failed {
            return;
        }
        self.buf.extend_from_slice(data);
        let mut at = 0;
        loop {
            match object_len(&self.buf[at..]) {
                Ok(Some(n)) => {
                    let parsed = read_frame(&self.buf[at..at + n]);
                    at += n;
                    match parsed {
                        Some((ch, payload)) => self.on_frame(ch, payload),
                        None => self.skipped += 1,
                    }
                    if self.failed {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.fail(e);
                    return;
                }
            }
        }
        self.buf.drain(..at);
        if self.buf.len() > self.limits.max_buffer {
            self.fail(MuxError::Malformed("frame larger than the buffer limit"));
        }
    }

    fn on_frame(&mut self, channel: u16, payload: Vec<u8>) {
        match channel {
            PROTOCOL => self.on_protocol(&payload),
            CONTROL => self.on_control(&payload),
            ch => {
                let Some(c) = self.channels.get(&ch) else {
                    // Data for an unknown channel is ignored.
                    return;
                };
                if c.state != State::Open {
                    return;
                }
                if payload.is_empty() {
                    self.channels.remove(&ch);
                    self.events.push_back(MuxEvent::Closed { channel: ch });
                } else {
                    self.events.push_back(MuxEvent::Data {
                        channel: ch,
                        data: payload,
                    });
                }
            }
        }
    }

    /// `{"v": n}` or `{"p": bool}`; true when it was one.
    fn protocol_map(&mut self, obj: &[u8]) -> bool {
        let mut r = Reader::new(obj);
        if r.peek() != Ok(Kind::Map) || r.map_len().is_err() {
            return false;
        }
        match r.str() {
            Ok("v") => {
                if let Ok(v) = r.uint() {
                    self.peer_version = Some(v);
                    self.events.push_back(MuxEvent::Version(v));
                }
                true
            }
            Ok("p") => {
                match r.bool() {
                    // A beacon request: answer at once.
                    Ok(true) => self.send_protocol("p", false),
                    Ok(false) => self.beacon_deadline = None,
                    Err(_) => {}
                }
                true
            }
            // Unknown map: ignored.
            _ => true,
        }
    }

    fn on_protocol(&mut self, payload: &[u8]) {
        let mut at = 0;
        while let Ok(Some(n)) = object_len(&payload[at..]) {
            let obj = &payload[at..at + n];
            self.protocol_map(obj);
            at += n;
        }
    }

    fn on_control(&mut self, payload: &[u8]) {
        let mut at = 0;
        while at < payload.len() {
            let Ok(Some(n)) = object_len(&payload[at..]) else {
                return;
            };
            let obj = &payload[at..at + n];
            at += n;
            if self.protocol_map(obj) {
                continue;
            }
            let mut r = Reader::new(obj);
            let parsed = (|| {
                if r.array_len().ok()? != 3 {
                    return None;
                }
                let name = r.str().ok()?.to_owned();
                let channel = u16::try_from(r.uint().ok()?).ok()?;
                let state = r.int().ok()?;
                Some((name, channel, state))
            })();
            // A malformed control object ends this control payload, as jamid.
            let Some((name, channel, state)) = parsed else {
                return;
            };
            self.on_channel_message(name, channel, state);
            if self.failed {
                return;
            }
        }
    }

    fn on_channel_message(&mut self, name: String, channel: u16, state: i64) {
        if channel == CONTROL || channel == PROTOCOL {
            return;
        }
        match state {
            0 => {
                if self.channels.contains_key(&channel) {
                    // jamid keeps the existing channel; so do we.
                    return;
                }
                if self.channels.len() >= self.limits.max_channels {
                    self.fail(MuxError::TooManyChannels);
                    return;
                }
                self.channels.insert(
                    channel,
                    Channel {
                        name: name.clone(),
                        state: State::Offered,
                    },
                );
                self.events.push_back(MuxEvent::Request { channel, name });
            }
            1 => {
                if let Some(c) = self.channels.get_mut(&channel) {
                    if c.state == State::Asked {
                        c.state = State::Open;
                        self.events.push_back(MuxEvent::Opened { channel, name });
                    }
                }
            }
            2 if self
                .channels
                .get(&channel)
                .is_some_and(|c| c.state == State::Asked) =>
            {
                self.channels.remove(&channel);
                self.events.push_back(MuxEvent::Declined { channel, name });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn drain(m: &mut Mux) -> Vec<u8> {
        std::iter::from_fn(|| m.poll_transmit()).flatten().collect()
    }

    fn events(m: &mut Mux) -> Vec<MuxEvent> {
        std::iter::from_fn(|| m.poll_event()).collect()
    }

    /// The bytes of two sockets opening channels both ways, exchanging data and closing,
    /// each drawing from a generator seeded with `seed`.
    fn seeded_run(seed: u8) -> Vec<u8> {
        use crate::random::SeededRandom;
        let mut a = Mux::with_random(Limits::default(), SeededRandom::new([seed; 32]));
        let mut b = Mux::with_random(Limits::default(), SeededRandom::new([seed + 1; 32]));
        let mut wire = Vec::new();
        let mut pump = |a: &mut Mux, b: &mut Mux| {
            let (x, y) = (drain(a), drain(b));
            b.handle_bytes(&x);
            a.handle_bytes(&y);
            wire.extend(x);
            wire.extend(y);
        };
        let mut opened = Vec::new();
        for name in ["sip", "sync", "file://1"] {
            opened.push(a.open(name).unwrap());
            opened.push(b.open(name).unwrap());
        }
        pump(&mut a, &mut b);
        for e in events(&mut a).into_iter().chain(events(&mut b)) {
            assert!(!matches!(e, MuxEvent::Failed(_)), "{e:?}");
        }
        for (i, c) in opened.iter().enumerate() {
            let (ours, theirs) = if i % 2 == 0 {
                (&mut a, &mut b)
            } else {
                (&mut b, &mut a)
            };
            theirs.accept(*c);
            ours.send(*c, b"hello").ok();
        }
        pump(&mut a, &mut b);
        for c in opened {
            a.close(c);
        }
        pump(&mut a, &mut b);
        wire
    }

    #[test]
    fn stays_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Mux>();
    }

    #[test]
    fn same_seed_same_bytes() {
        let first = seeded_run(1);
        assert!(first.len() > 50, "{} bytes", first.len());
        assert_eq!(first, seeded_run(1));
        assert_ne!(first, seeded_run(3));
    }

    #[test]
    fn jamid_byte_examples() {
        let mut m = Mux::new(Limits::default());
        // Our version map, byte for byte.
        assert_eq!(drain(&mut m), hex("92 cd ff ff c4 04 81 a1 76 01"));
        assert_eq!(frame(0x1234, b"abc"), hex("92 cd 12 34 c4 03 61 62 63"));
        assert_eq!(frame(0x1234, b""), hex("92 cd 12 34 c4 00"));
        // The peer's version, a request for "sip" on 0x1234, data, then close.
        m.handle_bytes(&hex("92 cd ff ff c4 04 81 a1 76 01"));
        m.handle_bytes(&hex("92 00 c4 09 93 a3 73 69 70 cd 12 34 00"));
        assert_eq!(
            events(&mut m),
            vec![
                MuxEvent::Version(1),
                MuxEvent::Request {
                    channel: 0x1234,
                    name: "sip".into()
                }
            ]
        );
        m.accept(0x1234);
        assert_eq!(drain(&mut m), hex("92 00 c4 09 93 a3 73 69 70 cd 12 34 01"));
        // Data split anywhere arrives whole.
        let data = hex("92 cd 12 34 c4 03 61 62 63 92 cd 12 34 c4 00");
        for b in &data {
            m.handle_bytes(&[*b]);
        }
        assert_eq!(
            events(&mut m),
            vec![
                MuxEvent::Data {
                    channel: 0x1234,
                    data: b"abc".to_vec()
                },
                MuxEvent::Closed { channel: 0x1234 }
            ]
        );
        assert_eq!(m.channel_count(), 0);
    }

    #[test]
    fn two_muxes_open_talk_and_decline() {
        let (mut a, mut b) = (Mux::new(Limits::default()), Mux::new(Limits::default()));
        let ch = a.open("sip").unwrap();
        assert!(a.send(ch, b"early").is_err(), "not open before the answer");
        let wire = drain(&mut a);
        b.handle_bytes(&wire);
        assert!(events(&mut b).contains(&MuxEvent::Request {
            channel: ch,
            name: "sip".into()
        }));
        b.accept(ch);
        b.send(ch, &vec![9u8; 70_000]).unwrap();
        let wire = drain(&mut b);
        a.handle_bytes(&wire);
        let ev = events(&mut a);
        assert!(ev.contains(&MuxEvent::Opened {
            channel: ch,
            name: "sip".into()
        }));
        // 70,000 bytes came as two frames.
        let sizes: Vec<usize> = ev
            .iter()
            .filter_map(|e| match e {
                MuxEvent::Data { data, .. } => Some(data.len()),
                _ => None,
            })
            .collect();
        assert_eq!(sizes, vec![65_535, 4_465]);
        // A declined request.
        let other = a.open("vcard://x").unwrap();
        b.handle_bytes(&drain(&mut a));
        b.decline(other);
        a.handle_bytes(&drain(&mut b));
        assert!(events(&mut a).contains(&MuxEvent::Declined {
            channel: other,
            name: "vcard://x".into()
        }));
    }

    #[test]
    fn beacons() {
        let t0 = Instant::now();
        let (mut a, mut b) = (Mux::new(Limits::default()), Mux::new(Limits::default()));
        a.beacon(t0);
        b.handle_bytes(&drain(&mut a));
        // b answers {"p": false} on 0xFFFF.
        let answer = drain(&mut b);
        assert!(answer.ends_with(&hex("92 cd ff ff c4 04 81 a1 70 c2")));
        a.handle_bytes(&answer);
        a.handle_timeout(t0 + Duration::from_secs(10));
        assert!(
            !events(&mut a)
                .iter()
                .any(|e| matches!(e, MuxEvent::Failed(_)))
        );
        // Unanswered: the link fails after 3 s.
        a.beacon(t0);
        a.handle_timeout(t0 + Duration::from_millis(2999));
        a.handle_timeout(t0 + Duration::from_millis(3000));
        assert!(events(&mut a).contains(&MuxEvent::Failed(MuxError::BeaconLost)));
    }

    #[test]
    fn garbage_costs_only_this_link() {
        // Not [uint, bin]: skipped. Then a byte that is never msgpack: the link fails.
        let mut m = Mux::new(Limits::default());
        m.handle_bytes(&hex("93 01 02 03 92 a1 78 01"));
        assert_eq!(m.skipped(), 2);
        m.handle_bytes(&[0xc1]);
        assert!(
            events(&mut m)
                .iter()
                .any(|e| matches!(e, MuxEvent::Failed(MuxError::Malformed(_))))
        );
        // A header announcing 4 GB: refused once the buffer limit is passed, not buffered.
        let mut m = Mux::new(Limits {
            max_buffer: 1024,
            ..Limits::default()
        });
        m.handle_bytes(&hex("92 cd 12 34 c6 ff ff ff ff"));
        m.handle_bytes(&vec![0u8; 2000]);
        assert!(
            events(&mut m)
                .iter()
                .any(|e| matches!(e, MuxEvent::Failed(_)))
        );
        // Thousands of channel requests: the link fails at the limit.
        let mut m = Mux::new(Limits {
            max_channels: 10,
            ..Limits::default()
        });
        let mut wire = Vec::new();
        for i in 1..=20u16 {
            let mut c = Vec::new();
            msgpack::array(&mut c, 3);
            msgpack::str(&mut c, "sip");
            msgpack::uint(&mut c, u64::from(i));
            msgpack::uint(&mut c, 0);
            wire.extend(frame(CONTROL, &c));
        }
        m.handle_bytes(&wire);
        let ev = events(&mut m);
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, MuxEvent::Request { .. }))
                .count(),
            10
        );
        assert!(ev.contains(&MuxEvent::Failed(MuxError::TooManyChannels)));
    }

    #[test]
    fn object_lengths() {
        assert_eq!(
            object_len(&hex("92 cd 12 34 c4 03 61 62 63")).unwrap(),
            Some(9)
        );
        assert_eq!(object_len(&hex("92 cd 12 34 c4 03 61")).unwrap(), None);
        assert_eq!(object_len(&hex("81 a1 76 01 ff")).unwrap(), Some(4));
        assert_eq!(object_len(&[]).unwrap(), None);
        assert!(object_len(&[0xc1]).is_err());
        let deep = vec![0x91u8; 40];
        assert!(object_len(&deep).is_err());
    }
}
