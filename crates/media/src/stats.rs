//! What a receiver knows about one RTP source (RFC 3550 appendix A): sequence numbers
//! extended across wraps with probation of a new source, packets expected and lost, the
//! interarrival jitter, and the report block that says so in an RTCP SR or RR.
//!
//! Time is given by the caller ([`Instant`]s), so the arithmetic is exact in tests.

use std::time::{Duration, Instant};

use crate::rtcp::ReportBlock;

/// A jump of more than this many sequence numbers forward is taken as a restart.
const MAX_DROPOUT: u16 = 3000;
/// Packets this far behind are late ones, not a restart.
const MAX_MISORDER: u16 = 100;
/// Sequential packets needed before a new source counts.
const MIN_SEQUENTIAL: u32 = 2;
const SEQ_MOD: u32 = 1 << 16;

/// Reception statistics of one SSRC.
#[derive(Debug, Clone)]
pub struct ReceiverStats {
    ssrc: u32,
    clock_rate: u32,
    max_seq: u16,
    /// Wraps of the sequence number, shifted left by 16.
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u32,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Bytes of payload received.
    bytes: u64,
    /// `arrival - timestamp` of the previous packet, in timestamp units.
    transit: Option<i64>,
    /// Interarrival jitter, in timestamp units, times 16 (RFC 3550 A.8's integer form).
    jitter16: i64,
    /// Middle 32 bits of the last SR's NTP time, and when it came.
    last_sr: Option<(u32, Instant)>,
    epoch: Instant,
}

impl ReceiverStats {
    /// Statistics for `ssrc`, whose first packet carried `seq`, in a clock of `clock_rate` Hz.
    pub fn new(ssrc: u32, seq: u16, clock_rate: u32, now: Instant) -> Self {
        let mut s = Self {
            ssrc,
            clock_rate: clock_rate.max(1),
            max_seq: seq.wrapping_sub(1),
            cycles: 0,
            base_seq: 0,
            bad_seq: SEQ_MOD + 1,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            bytes: 0,
            transit: None,
            jitter16: 0,
            last_sr: None,
            epoch: now,
        };
        s.init(seq);
        s.max_seq = seq.wrapping_sub(1);
        s
    }

    fn init(&mut self, seq: u16) {
        self.base_seq = seq as u32;
        self.max_seq = seq;
        self.bad_seq = SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// The source.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Takes a packet (`seq`, RTP `timestamp`, `payload` bytes) that arrived at `now`.
    /// Returns false for a packet that does not count: a source still on probation, or a
    /// jump that is not (yet) a restart.
    pub fn on_packet(&mut self, seq: u16, timestamp: u32, payload: usize, now: Instant) -> bool {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            // A new source: it counts once MIN_SEQUENTIAL packets came in order.
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init(seq);
                    self.count(timestamp, payload, now);
                    return true;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return false;
        } else if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += SEQ_MOD;
            }
            self.max_seq = seq;
        } else if udelta as u32 <= SEQ_MOD - MAX_MISORDER as u32 {
            // A big jump: a restart if the next packet follows it.
            if seq as u32 == self.bad_seq {
                self.init(seq);
            } else {
                self.bad_seq = (seq as u32 + 1) & (SEQ_MOD - 1);
                return false;
            }
        }
        // Otherwise a duplicate or a late packet: counted, the maximum stays.
        self.count(timestamp, payload, now);
        true
    }

    fn count(&mut self, timestamp: u32, payload: usize, now: Instant) {
        self.received += 1;
        self.bytes += payload as u64;
        let arrival = (now.saturating_duration_since(self.epoch).as_secs_f64()
            * self.clock_rate as f64) as i64;
        let transit = arrival - timestamp as i64;
        if let Some(prev) = self.transit {
            let mut d = transit - prev;
            // Timestamps wrap at 2^32.
            if d > i64::from(u32::MAX) / 2 {
                d -= 1 << 32;
            } else if d < -(i64::from(u32::MAX) / 2) {
                d += 1 << 32;
            }
            self.jitter16 += d.abs() - ((self.jitter16 + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    /// Extended highest sequence number received.
    pub fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(self.max_seq as u32)
    }

    /// Packets expected since the first counted one.
    pub fn expected(&self) -> u64 {
        (self.extended_max() as u64 + 1).saturating_sub(self.base_seq as u64)
    }

    /// Packets counted (duplicates included, as RFC 3550 counts them).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Payload bytes counted.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Packets lost since the start (negative with duplicates).
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        (self.jitter16 >> 4).max(0) as u32
    }

    /// Interarrival jitter as a duration.
    pub fn jitter_duration(&self) -> Duration {
        Duration::from_secs_f64(self.jitter() as f64 / self.clock_rate as f64)
    }

    /// Notes a sender report of this source (its NTP time) that arrived at `now`.
    pub fn on_sender_report(&mut self, ntp: u64, now: Instant) {
        self.last_sr = Some(((ntp >> 16) as u32, now));
    }

    /// The report block for an SR or RR sent at `now`; the interval's fraction lost starts
    /// again from here.
    pub fn report_block(&mut self, now: Instant) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((mid, at)) => (
                mid,
                (now.saturating_duration_since(at).as_secs_f64() * 65536.0) as u32,
            ),
            None => (0, 0),
        };
        ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: self.lost().clamp(-0x80_0000, 0x7f_ffff) as i32,
            highest_seq: self.extended_max(),
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        }
    }
}

/// NTP time (seconds since 1900 in the upper 32 bits, fraction below) of a Unix time.
pub fn ntp_time(unix: Duration) -> u64 {
    const UNIX_TO_NTP: u64 = 2_208_988_800;
    let secs = unix.as_secs() + UNIX_TO_NTP;
    let frac = ((unix.subsec_nanos() as u64) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// Round-trip time from a report block we got back at `now` for our SR: RFC 3550 6.4.1,
/// `now - last_sr - delay` in NTP middle-32-bit units. `None` without an SR reference.
pub fn round_trip(block: &ReportBlock, now_ntp: u64) -> Option<Duration> {
    if block.last_sr == 0 {
        return None;
    }
    let now_mid = (now_ntp >> 16) as u32;
    let rtt = now_mid
        .wrapping_sub(block.last_sr)
        .wrapping_sub(block.delay_since_last_sr);
    // Above half the range: clocks or values are off.
    (rtt < 1 << 31).then(|| Duration::from_secs_f64(rtt as f64 / 65536.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20 ms Opus packets at 48 kHz, arriving exactly on time from `start`.
    fn feed(s: &mut ReceiverStats, t0: Instant, seqs: impl Iterator<Item = u16>) {
        for seq in seqs {
            let n = seq.wrapping_sub(1000) as u32;
            s.on_packet(seq, n * 960, 80, t0 + Duration::from_millis(20 * n as u64));
        }
    }

    #[test]
    fn steady_stream_across_a_wrap_has_no_loss_and_no_jitter() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(7, 65000, 48000, t0);
        for i in 0..2000u32 {
            let seq = (65000 + i) as u16;
            s.on_packet(seq, i * 960, 80, t0 + Duration::from_millis(20 * i as u64));
        }
        // Probation takes the first packet out of the count (RFC 3550 A.1).
        assert_eq!(s.received(), 1999);
        assert_eq!(s.expected(), 1999);
        assert_eq!(s.lost(), 0);
        assert_eq!(s.extended_max(), (1 << 16) + ((65000 + 1999) % 65536));
        assert!(s.jitter() <= 1, "{}", s.jitter());
        let b = s.report_block(t0);
        assert_eq!((b.fraction_lost, b.cumulative_lost), (0, 0));
        assert_eq!(b.received_since(65001), 1999);
    }

    #[test]
    fn loss_fraction_and_cumulative() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(7, 1000, 48000, t0);
        // 1000..1100 with every tenth packet missing (after probation).
        feed(
            &mut s,
            t0,
            (1000..1100u16).filter(|q| q < &1002 || q % 10 != 0),
        );
        let b = s.report_block(t0);
        // 1001..=1099 expected: 99; lost 1010, 1020, ..., 1090: 9.
        assert_eq!(s.expected(), 99);
        assert_eq!(b.cumulative_lost, 9);
        assert_eq!(b.fraction_lost, (9 * 256 / 99) as u8);
        // The next interval without loss reports 0 again, the total stays.
        feed(&mut s, t0, 1100..1150u16);
        let b = s.report_block(t0);
        assert_eq!((b.fraction_lost, b.cumulative_lost), (0, 9));
    }

    #[test]
    fn jitter_follows_rfc3550() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(1, 0, 8000, t0);
        // 20 ms packets (160 ticks) arriving alternately 0 and 10 ms late.
        for i in 0..400u32 {
            let late = if i % 2 == 0 { 0 } else { 10 };
            s.on_packet(
                i as u16,
                i * 160,
                160,
                t0 + Duration::from_millis(20 * i as u64 + late),
            );
        }
        // |D| is 80 ticks every time: J converges to 80.
        assert!((78..=80).contains(&s.jitter()), "{}", s.jitter());
        assert!((9..=10).contains(&s.jitter_duration().as_millis()));
    }

    #[test]
    fn restart_late_packets_and_probation() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(1, 100, 48000, t0);
        // Out-of-order during probation restarts it.
        assert!(!s.on_packet(100, 0, 1, t0));
        assert!(!s.on_packet(105, 0, 1, t0));
        assert!(s.on_packet(106, 0, 1, t0));
        assert!(s.on_packet(107, 0, 1, t0));
        // A late packet counts without moving the maximum.
        assert!(s.on_packet(104, 0, 1, t0));
        assert_eq!(s.extended_max(), 107);
        // A jump of 30,000: ignored once, a restart when the next one follows it.
        assert!(!s.on_packet(30107, 0, 1, t0));
        assert!(s.on_packet(30108, 0, 1, t0));
        assert_eq!(
            (s.extended_max(), s.expected(), s.received()),
            (30108, 1, 1)
        );
    }

    #[test]
    fn round_trip_from_a_report() {
        let ntp = ntp_time(Duration::from_secs(1_700_000_000));
        let block = ReportBlock {
            last_sr: (ntp >> 16) as u32,
            delay_since_last_sr: 65536 / 10,
            ..Default::default()
        };
        // Back 150 ms after our SR, 100 ms of which the peer held it.
        let now = ntp + ((150u64 << 32) / 1000);
        let rtt = round_trip(&block, now).unwrap();
        assert!((49..=51).contains(&rtt.as_millis()), "{rtt:?}");
        assert_eq!(round_trip(&ReportBlock::default(), now), None);
    }
}
