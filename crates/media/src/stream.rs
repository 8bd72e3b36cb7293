//! One negotiated stream's RTP session: what goes out (SRTP with our key, plain RTCP sender
//! reports) and what comes in (the peer's SRTP under its key, its reports), with the figures
//! a call shows.
//!
//! ```
//! use std::time::{Instant, SystemTime};
//! use pamoja_media::stream::{MediaStream, StreamConfig};
//! use pamoja_media::{Crypto, Suite};
//!
//! let (a_key, b_key) = (Crypto::random(Suite::AesCm128HmacSha1_80), Crypto::random(Suite::AesCm128HmacSha1_80));
//! let now = Instant::now();
//! let mut a = MediaStream::new(StreamConfig::new(104, 48_000, a_key.clone(), b_key.clone()), now);
//! let mut b = MediaStream::new(StreamConfig::new(104, 48_000, b_key, a_key), now);
//! for _ in 0..3 {
//!     let packet = a.send(b"an Opus frame", 960, false, now).unwrap();
//!     let frame = b.receive(&packet, now).unwrap();
//!     assert_eq!(frame.payload, b"an Opus frame");
//! }
//! assert_eq!(b.stats().rx_packets, 3);
//! // A's sender report tells B what A sent; B's report tells A what B got.
//! let sr = a.rtcp(now, SystemTime::now());
//! b.receive_rtcp(&sr, now);
//! let rr = b.rtcp(now, SystemTime::now());
//! a.receive_rtcp(&rr, now);
//! assert_eq!(a.stats().remote_received, Some(3));
//! ```
//!
//! The stream is a state machine with no I/O: the caller sends what [`MediaStream::send`]
//! and [`MediaStream::rtcp`] return on the stream's RTP and RTCP components, and hands it
//! what arrives there. RTCP is plain, as jamid sends and expects it; RTP is SRTP both ways.
//! Anything malformed, replayed, forged or of an unexpected payload type is dropped and
//! counted; a peer that changes its SSRC gets fresh reception statistics.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pamoja_channel::random::{OsRandom, Random};

use crate::rtcp::{self, ReportBlock, Rtcp, SenderInfo};
use crate::rtp::RtpPacket;
use crate::sdes::Crypto;
use crate::srtp::{Srtp, SrtpError, SrtpStats};
use crate::stats::{ReceiverStats, ntp_time};

/// Average time between our RTCP reports (jamid's FFmpeg sends about one a second).
pub const RTCP_INTERVAL: Duration = Duration::from_secs(1);

/// What a stream needs from the negotiation.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Payload type we send with (the first codec of the peer's section).
    pub payload_type: u8,
    /// Payload types we accept (our section's codecs); empty accepts any.
    pub accept: Vec<u8>,
    /// RTP clock rate of the codec (48 kHz for Opus, 90 kHz for video).
    pub clock_rate: u32,
    /// Our key: what we protect with (the `a=crypto` of our SDP).
    pub local: Crypto,
    /// The peer's key: what we unprotect with (its `a=crypto`).
    pub remote: Crypto,
    /// Our CNAME in source descriptions.
    pub cname: String,
}

impl StreamConfig {
    /// A stream sending `payload_type` at `clock_rate`, accepting any payload type.
    pub fn new(payload_type: u8, clock_rate: u32, local: Crypto, remote: Crypto) -> Self {
        Self {
            payload_type,
            accept: Vec::new(),
            clock_rate,
            local,
            remote,
            cname: "pamoja".into(),
        }
    }
}

/// A media packet from the peer, authenticated and decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Payload type.
    pub payload_type: u8,
    /// Marker bit (the last packet of a video frame).
    pub marker: bool,
    /// Sequence number.
    pub sequence: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// The sender's SSRC.
    pub ssrc: u32,
    /// The payload.
    pub payload: Vec<u8>,
}

/// A stream's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// RTP packets sent.
    pub tx_packets: u64,
    /// RTP payload bytes sent.
    pub tx_bytes: u64,
    /// RTP packets accepted from the peer.
    pub rx_packets: u64,
    /// Their payload bytes.
    pub rx_bytes: u64,
    /// Packets the peer's sequence numbers say we lost (current source).
    pub rx_lost: i64,
    /// Interarrival jitter of the peer's packets (current source).
    pub rx_jitter: Duration,
    /// Packets the peer's latest report says it received of ours: from its extended
    /// highest sequence number, our first sequence number and its loss count.
    pub remote_received: Option<u64>,
    /// The fraction the peer lost in its latest report's interval, in 1/256.
    pub remote_fraction_lost: Option<u8>,
    /// The interarrival jitter of its latest report, in timestamp units.
    pub remote_jitter: Option<u32>,
    /// Report blocks about our source received so far.
    pub remote_reports: u64,
    /// The peer's latest REMB bitrate, in bit/s.
    pub remote_bitrate: Option<u64>,
    /// The round-trip time of the peer's latest report that echoes one of our sender
    /// reports (RFC 3550 6.4.1: from when we sent it, less the delay the peer says it held
    /// it), measured on our own monotonic clock.
    pub rtt: Option<Duration>,
    /// RTCP packets (compounds) read.
    pub rtcp_received: u64,
    /// RTP packets dropped before SRTP: too short or not RTP.
    pub rx_malformed: u64,
    /// Packets dropped after SRTP for a payload type we did not negotiate.
    pub rx_wrong_payload_type: u64,
    /// RTCP compounds dropped as malformed.
    pub rtcp_malformed: u64,
    /// Times the peer's SSRC changed.
    pub ssrc_changes: u64,
    /// Refusals of SRTP (replay, authentication, truncation, too many sources).
    pub srtp_in: SrtpStats,
}

impl StreamStats {
    /// Adds the figures of a later session of the same stream (after a re-INVITE set it
    /// up anew): counts are summed, the latest reading of the peer's reports is the later
    /// one's.
    pub fn absorb(&mut self, later: &StreamStats) {
        self.tx_packets += later.tx_packets;
        self.tx_bytes += later.tx_bytes;
        self.rx_packets += later.rx_packets;
        self.rx_bytes += later.rx_bytes;
        self.rx_lost += later.rx_lost;
        self.rx_jitter = later.rx_jitter;
        self.remote_received = match (self.remote_received, later.remote_received) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.remote_fraction_lost = later.remote_fraction_lost.or(self.remote_fraction_lost);
        self.remote_jitter = later.remote_jitter.or(self.remote_jitter);
        self.remote_reports += later.remote_reports;
        self.remote_bitrate = later.remote_bitrate.or(self.remote_bitrate);
        self.rtt = later.rtt.or(self.rtt);
        self.rtcp_received += later.rtcp_received;
        self.rx_malformed += later.rx_malformed;
        self.rx_wrong_payload_type += later.rx_wrong_payload_type;
        self.rtcp_malformed += later.rtcp_malformed;
        self.ssrc_changes += later.ssrc_changes;
        let (a, b) = (&mut self.srtp_in, &later.srtp_in);
        a.protected += b.protected;
        a.unprotected += b.unprotected;
        a.truncated += b.truncated;
        a.auth_failed += b.auth_failed;
        a.replayed += b.replayed;
        a.too_many_streams += b.too_many_streams;
    }
}

/// Our sender reports remembered for round-trip times (about 8 s of them).
const SENT_REPORTS_KEPT: usize = 8;

/// The RTP session of one stream.
#[derive(Debug)]
pub struct MediaStream {
    config: StreamConfig,
    ssrc: u32,
    first_seq: u16,
    next_seq: u16,
    /// Timestamp of the next packet, in clock units, from a random start.
    next_ts: u32,
    /// When the last packet went, and its timestamp: the anchor of sender reports.
    last_sent: Option<(Instant, u32)>,
    out: Srtp,
    inn: Srtp,
    receiver: Option<ReceiverStats>,
    stats: StreamStats,
    next_rtcp: Instant,
    /// Our last sender reports: the middle 32 bits of their NTP time (what a peer echoes as
    /// LSR) and when they went.
    sent_reports: VecDeque<(u32, Instant)>,
    /// SSRC, sequence and timestamp starts, and report spacing come from here.
    random: Box<dyn Random>,
}

fn random_u32(random: &mut dyn Random) -> u32 {
    let mut b = [0u8; 4];
    random.fill(&mut b);
    u32::from_be_bytes(b)
}

impl MediaStream {
    /// A stream with a random SSRC, sequence number and timestamp start.
    pub fn new(config: StreamConfig, now: Instant) -> Self {
        Self::with_random(config, now, OsRandom)
    }

    /// A stream as [`MediaStream::new`] makes it, drawing its SSRC, sequence number and
    /// timestamp starts and the spacing of its reports from `random`: two streams given
    /// generators in the same state and the same inputs send the same bytes.
    pub fn with_random(config: StreamConfig, now: Instant, random: impl Random + 'static) -> Self {
        let mut random: Box<dyn Random> = Box::new(random);
        let r = random_u32(&mut *random);
        // Start low in the sequence space, as FFmpeg does, so the first ROC is 0 for long.
        let first_seq = (r & 0x7fff) as u16;
        let ssrc = random_u32(&mut *random);
        let next_ts = random_u32(&mut *random);
        Self {
            random,
            out: Srtp::new(config.local.suite, &config.local.key),
            inn: Srtp::new(config.remote.suite, &config.remote.key),
            ssrc,
            first_seq,
            next_seq: first_seq,
            next_ts,
            last_sent: None,
            receiver: None,
            stats: StreamStats::default(),
            next_rtcp: now + RTCP_INTERVAL / 2,
            sent_reports: VecDeque::new(),
            config,
        }
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Our first sequence number.
    pub fn first_sequence(&self) -> u16 {
        self.first_seq
    }

    /// The payload type we send with.
    pub fn payload_type(&self) -> u8 {
        self.config.payload_type
    }

    /// The SRTP packet carrying `payload`, stamped with the current timestamp, which then
    /// advances by `duration` clock units (960 for 20 ms of Opus; 0 between the packets of
    /// one video frame).
    pub fn send(
        &mut self,
        payload: &[u8],
        duration: u32,
        marker: bool,
        now: Instant,
    ) -> Result<Vec<u8>, SrtpError> {
        let ts = self.next_ts;
        let mut p = RtpPacket::write(
            marker,
            self.config.payload_type,
            self.next_seq,
            ts,
            self.ssrc,
            payload,
        );
        self.out.protect(&mut p)?;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_ts = ts.wrapping_add(duration);
        self.last_sent = Some((now, ts));
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += payload.len() as u64;
        Ok(p)
    }

    /// Takes a datagram from the RTP component: the frame when it is authentic, new and of
    /// a negotiated payload type; `None` (counted) otherwise.
    pub fn receive(&mut self, packet: &[u8], now: Instant) -> Option<Frame> {
        if packet.len() < 12 || packet[0] >> 6 != 2 {
            self.stats.rx_malformed += 1;
            return None;
        }
        let mut p = packet.to_vec();
        if self.inn.unprotect(&mut p).is_err() {
            return None;
        }
        let Some(rtp) = RtpPacket::parse(&p) else {
            self.stats.rx_malformed += 1;
            return None;
        };
        if !self.config.accept.is_empty() && !self.config.accept.contains(&rtp.payload_type) {
            self.stats.rx_wrong_payload_type += 1;
            return None;
        }
        let receiver = match &mut self.receiver {
            Some(r) if r.ssrc() == rtp.ssrc => r,
            slot => {
                if slot.is_some() {
                    self.stats.ssrc_changes += 1;
                }
                slot.insert(ReceiverStats::new(
                    rtp.ssrc,
                    rtp.sequence,
                    self.config.clock_rate,
                    now,
                ))
            }
        };
        receiver.on_packet(rtp.sequence, rtp.timestamp, rtp.payload.len(), now);
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += rtp.payload.len() as u64;
        Some(Frame {
            payload_type: rtp.payload_type,
            marker: rtp.marker,
            sequence: rtp.sequence,
            timestamp: rtp.timestamp,
            ssrc: rtp.ssrc,
            payload: rtp.payload.to_vec(),
        })
    }

    /// Takes a datagram from the RTCP component (plain RTCP); the packets it held.
    pub fn receive_rtcp(&mut self, packet: &[u8], now: Instant) -> Vec<Rtcp> {
        let Some(parts) = rtcp::parse(packet) else {
            self.stats.rtcp_malformed += 1;
            return Vec::new();
        };
        self.stats.rtcp_received += 1;
        for part in &parts {
            match part {
                Rtcp::SenderReport {
                    ssrc,
                    info,
                    reports,
                } => {
                    if let Some(r) = self.receiver.as_mut().filter(|r| r.ssrc() == *ssrc) {
                        r.on_sender_report(info.ntp, now);
                    }
                    self.on_reports(reports, now);
                }
                Rtcp::ReceiverReport { reports, .. } => self.on_reports(reports, now),
                Rtcp::Remb { bitrate, .. } => self.stats.remote_bitrate = Some(*bitrate),
                _ => {}
            }
        }
        parts
    }

    fn on_reports(&mut self, reports: &[ReportBlock], now: Instant) {
        if let Some(b) = reports.iter().find(|b| b.ssrc == self.ssrc) {
            self.stats.remote_received = Some(b.received_since(self.first_seq));
            self.stats.remote_fraction_lost = Some(b.fraction_lost);
            self.stats.remote_jitter = Some(b.jitter);
            self.stats.remote_reports += 1;
            // A block echoing one of our sender reports gives the round trip.
            if b.last_sr != 0
                && let Some((_, sent)) = self.sent_reports.iter().find(|(lsr, _)| *lsr == b.last_sr)
            {
                let held = Duration::from_secs_f64(f64::from(b.delay_since_last_sr) / 65536.0);
                if let Some(rtt) = now.saturating_duration_since(*sent).checked_sub(held) {
                    self.stats.rtt = Some(rtt);
                }
            }
        }
    }

    /// When [`MediaStream::rtcp`] should be called next.
    pub fn poll_timeout(&self) -> Instant {
        self.next_rtcp
    }

    /// Our report, due at [`MediaStream::poll_timeout`]: a sender report once we have
    /// sent (else a receiver report), with a block for the peer's source once it sends,
    /// and our CNAME. `wall` is the current wall-clock time, for the NTP timestamp.
    pub fn rtcp(&mut self, now: Instant, wall: SystemTime) -> Vec<u8> {
        // 0.5 to 1.5 intervals, as RFC 3550 randomises them.
        let jitter = random_u32(&mut *self.random) % 1000;
        let spread = RTCP_INTERVAL.mul_f64(0.5 + f64::from(jitter) / 1000.0);
        self.next_rtcp = now + spread;
        let reports: Vec<ReportBlock> = self
            .receiver
            .as_mut()
            .filter(|r| r.received() > 0)
            .map(|r| r.report_block(now))
            .into_iter()
            .collect();
        let report = match self.last_sent {
            Some((at, ts)) => {
                let elapsed = now.saturating_duration_since(at).as_secs_f64();
                let rtp_timestamp =
                    ts.wrapping_add((elapsed * f64::from(self.config.clock_rate)) as u32);
                let unix = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
                let ntp = ntp_time(unix);
                self.sent_reports.push_back(((ntp >> 16) as u32, now));
                while self.sent_reports.len() > SENT_REPORTS_KEPT {
                    self.sent_reports.pop_front();
                }
                Rtcp::SenderReport {
                    ssrc: self.ssrc,
                    info: SenderInfo {
                        ntp,
                        rtp_timestamp,
                        packets: self.stats.tx_packets as u32,
                        octets: self.stats.tx_bytes as u32,
                    },
                    reports,
                }
            }
            None => Rtcp::ReceiverReport {
                ssrc: self.ssrc,
                reports,
            },
        };
        rtcp::write(&[
            report,
            Rtcp::SourceDescription(vec![(self.ssrc, self.config.cname.clone())]),
        ])
    }

    /// The stream's figures so far.
    pub fn stats(&self) -> StreamStats {
        let mut s = self.stats.clone();
        if let Some(r) = &self.receiver {
            s.rx_lost = r.lost();
            s.rx_jitter = r.jitter_duration();
        }
        s.srtp_in = self.inn.stats();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srtp::Suite;

    fn pair(now: Instant) -> (MediaStream, MediaStream) {
        let a_key = Crypto::random(Suite::AesCm128HmacSha1_80);
        let b_key = Crypto::random(Suite::AesCm128HmacSha1_32);
        let mut ca = StreamConfig::new(104, 48_000, a_key.clone(), b_key.clone());
        ca.accept = vec![104, 101];
        let mut cb = StreamConfig::new(104, 48_000, b_key, a_key);
        cb.accept = vec![104, 101];
        (MediaStream::new(ca, now), MediaStream::new(cb, now))
    }

    /// The packets and reports of two streams with fixed keys, drawing from generators
    /// seeded with `seed`.
    fn seeded_streams(seed: u8) -> Vec<Vec<u8>> {
        use crate::srtp::MasterKey;
        use pamoja_channel::random::SeededRandom;
        let key = |b: u8| Crypto {
            tag: 1,
            suite: Suite::AesCm128HmacSha1_80,
            key: MasterKey::from_bytes(&[b; 30]).unwrap(),
        };
        let t0 = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let ca = StreamConfig::new(104, 48_000, key(1), key(2));
        let cb = StreamConfig::new(104, 48_000, key(2), key(1));
        let mut a = MediaStream::with_random(ca, t0, SeededRandom::new([seed; 32]));
        let mut b = MediaStream::with_random(cb, t0, SeededRandom::new([seed + 1; 32]));
        let mut wire = Vec::new();
        for i in 0..20u32 {
            let now = t0 + Duration::from_millis(20 * u64::from(i));
            let p = a.send(&[i as u8; 80], 960, false, now).unwrap();
            b.receive(&p, now).unwrap();
            wire.push(p);
        }
        let now = t0 + Duration::from_secs(1);
        wire.push(a.rtcp(now, wall));
        wire.push(b.rtcp(now, wall));
        assert!(a.poll_timeout() > now);
        wire.push(format!("{:?}", (a.poll_timeout() - now, b.poll_timeout() - now)).into_bytes());
        wire
    }

    #[test]
    fn same_seed_same_bytes() {
        let first = seeded_streams(1);
        assert_eq!(first, seeded_streams(1));
        assert_ne!(first, seeded_streams(3));
    }

    #[test]
    fn frames_flow_and_reports_count_them() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        let mut sent = Vec::new();
        for i in 0..50u32 {
            let now = t0 + Duration::from_millis(20 * i as u64);
            let p = a.send(&[i as u8; 80], 960, false, now).unwrap();
            sent.push(p.clone());
            // Every fifth packet lost on the way.
            if i % 5 == 4 {
                continue;
            }
            let f = b.receive(&p, now).unwrap();
            assert_eq!(f.payload, vec![i as u8; 80]);
            assert_eq!(f.ssrc, a.ssrc());
        }
        let now = t0 + Duration::from_secs(1);
        // A replay and a forgery are refused and counted.
        assert!(b.receive(&sent[0], now).is_none());
        let mut forged = sent[4].clone();
        forged[20] ^= 1;
        assert!(b.receive(&forged, now).is_none());
        assert!(b.receive(&[0u8; 5], now).is_none());
        let bs = b.stats();
        assert_eq!(bs.rx_packets, 40);
        assert_eq!(bs.rx_bytes, 40 * 80);
        assert_eq!(bs.srtp_in.replayed, 1);
        assert_eq!(bs.srtp_in.auth_failed, 1);
        assert_eq!(bs.rx_malformed, 1);
        // Loss at the end is unknown until a later packet; 9 of the middle ones are lost.
        assert_eq!(bs.rx_lost, 9);

        let sr = a.rtcp(now, SystemTime::now());
        let parts = b.receive_rtcp(&sr, now);
        assert!(matches!(
            parts[0],
            Rtcp::SenderReport {
                info: SenderInfo {
                    packets: 50,
                    octets: 4000,
                    ..
                },
                ..
            }
        ));
        let rr = b.rtcp(now + Duration::from_millis(10), SystemTime::now());
        a.receive_rtcp(&rr, now + Duration::from_millis(60));
        let s = a.stats();
        assert_eq!(s.tx_packets, 50);
        assert_eq!(s.remote_received, Some(40));
        // b's report echoes a's sender report; it comes back 60 ms after it went, b having
        // held it 10 ms: a 50 ms round trip.
        let rtt = s.rtt.expect("a round trip").as_secs_f64() * 1e3;
        assert!((49.0..=51.0).contains(&rtt), "{rtt} ms");
        assert!(s.remote_fraction_lost.unwrap() > 0);
        assert!(a.poll_timeout() > now);
    }

    #[test]
    fn unexpected_payload_types_and_new_sources_are_counted() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        a.config.payload_type = 96;
        let p = a.send(b"x", 960, false, t0).unwrap();
        assert!(b.receive(&p, t0).is_none());
        assert_eq!(b.stats().rx_wrong_payload_type, 1);
        a.config.payload_type = 104;
        let p = a.send(b"y", 960, false, t0).unwrap();
        assert!(b.receive(&p, t0).is_some());
        // The peer restarts its sender under a new SSRC with the same key.
        a.ssrc ^= 0x5555;
        let p = a.send(b"z", 960, false, t0).unwrap();
        assert_eq!(b.receive(&p, t0).unwrap().payload, b"z");
        assert_eq!(b.stats().ssrc_changes, 1);
        // Garbage RTCP is counted, not fatal.
        assert!(b.receive_rtcp(&[0x80, 200, 0, 50, 1, 2], t0).is_empty());
        assert_eq!(b.stats().rtcp_malformed, 1);
    }

    #[test]
    fn a_silent_stream_sends_receiver_reports() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        // A source counts once two packets came in order (RFC 3550 A.1's probation).
        for _ in 0..2 {
            let p = a.send(b"x", 960, false, t0).unwrap();
            b.receive(&p, t0).unwrap();
        }
        let rr = b.rtcp(t0, SystemTime::now());
        let parts = rtcp::parse(&rr).unwrap();
        assert!(matches!(&parts[0], Rtcp::ReceiverReport { reports, .. } if reports.len() == 1));
        assert!(matches!(&parts[1], Rtcp::SourceDescription(c) if c[0].1 == "pamoja"));
    }
}
