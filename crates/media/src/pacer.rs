//! Pacing of a video stream's packets, and the rate of its key-frame requests: the two
//! timing rules of a call's video sender and receiver, as state machines driven by time.
//!
//! A VP8 picture is one burst of packets; on a narrow link that burst would sit in front of
//! the audio. [`Pacer`] spreads the packets at [`PACING_FACTOR`] times the target bitrate:
//! packets go in as they are made, come out through [`Pacer::poll_transmit`] as the budget
//! that time earns allows, and a queue far behind its link drops its oldest rather than
//! grow (each drop counted). [`KeyFrameRequests`] lets a receiver ask for a key frame after
//! a loss at most once per [`KEY_FRAME_REQUEST_INTERVAL`], jamid's own limit.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Packets leave at this multiple of the target bitrate.
pub const PACING_FACTOR: f64 = 1.25;
/// How often a pacer with packets waiting wants to be polled.
pub const PACING_STEP: Duration = Duration::from_millis(5);
/// Budget a pacer may save while idle, in bytes (two full packets).
const MAX_BUDGET: f64 = 3000.0;
/// A packet may leave on a budget short of its size once the budget reaches this much
/// (one full packet), so a low bitrate does not hold a big packet back forever.
const FULL_PACKET: f64 = 1500.0;

/// Spreads packets over time at a bitrate.
#[derive(Debug)]
pub struct Pacer {
    queue: VecDeque<Vec<u8>>,
    max_queue: usize,
    budget: f64,
    last: Option<Instant>,
    dropped: u64,
}

impl Pacer {
    /// A pacer holding at most `max_queue` packets.
    pub fn new(max_queue: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            max_queue: max_queue.max(1),
            budget: 0.0,
            last: None,
            dropped: 0,
        }
    }

    /// Queues a packet; past the limit, the oldest is dropped.
    pub fn push(&mut self, packet: Vec<u8>) {
        self.queue.push_back(packet);
        while self.queue.len() > self.max_queue {
            self.queue.pop_front();
            self.dropped += 1;
        }
    }

    /// The next packet due at `now` with the target `bitrate` (bit/s), if any.
    pub fn poll_transmit(&mut self, now: Instant, bitrate: u64) -> Option<Vec<u8>> {
        let front = self.queue.front()?.len() as f64;
        let elapsed = self
            .last
            .map_or(PACING_STEP, |l| now.saturating_duration_since(l));
        self.last = Some(now);
        let earned = bitrate as f64 * PACING_FACTOR / 8.0 * elapsed.as_secs_f64();
        self.budget = (self.budget + earned).min(MAX_BUDGET.max(front));
        if front > self.budget && self.budget < FULL_PACKET {
            return None;
        }
        self.budget -= front;
        self.queue.pop_front()
    }

    /// When to poll again: in a pacing step while packets wait.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        (!self.queue.is_empty()).then(|| now + PACING_STEP)
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no packet waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Packets dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// The shortest time between two key-frame requests of a receiver (jamid's).
pub const KEY_FRAME_REQUEST_INTERVAL: Duration = Duration::from_secs(1);

/// Decides when a receiver that lost a picture asks for a key frame.
#[derive(Debug, Default)]
pub struct KeyFrameRequests {
    last: Option<Instant>,
    sent: u64,
}

impl KeyFrameRequests {
    /// A picture was lost at `now`: whether to ask for a key frame now.
    pub fn on_loss(&mut self, now: Instant) -> bool {
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < KEY_FRAME_REQUEST_INTERVAL)
        {
            return false;
        }
        self.last = Some(now);
        self.sent += 1;
        true
    }

    /// Requests decided so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a pacer at 5 ms steps until it is empty: when each packet left.
    fn drain(p: &mut Pacer, start: Instant, bitrate: u64) -> Vec<Duration> {
        let mut out = Vec::new();
        let mut now = start;
        while !p.is_empty() {
            while p.poll_transmit(now, bitrate).is_some() {
                out.push(now - start);
            }
            now = p.poll_timeout(now).unwrap_or(now);
        }
        out
    }

    #[test]
    fn a_burst_leaves_at_the_paced_rate() {
        let start = Instant::now();
        let mut p = Pacer::new(100);
        // A 60 kB picture at 1 Mb/s: 1.25 Mb/s paced, so about 384 ms, not all at once.
        for _ in 0..50 {
            p.push(vec![0; 1200]);
        }
        let sent = drain(&mut p, start, 1_000_000);
        assert_eq!(sent.len(), 50);
        let took = sent.last().unwrap().as_secs_f64();
        assert!((0.33..0.45).contains(&took), "{took} s");
        // Never more than three packets in one step.
        let mut per_step = std::collections::HashMap::new();
        for t in &sent {
            *per_step.entry(*t).or_insert(0) += 1;
        }
        assert!(per_step.values().all(|&n| n <= 3), "{per_step:?}");
        assert_eq!(p.poll_timeout(start), None);
    }

    #[test]
    fn a_low_bitrate_still_moves_big_packets_and_a_full_queue_drops_the_oldest() {
        let start = Instant::now();
        let mut p = Pacer::new(3);
        for i in 0..5u8 {
            p.push(vec![i; 1400]);
        }
        assert_eq!((p.len(), p.dropped()), (3, 2));
        // At the lowest bitrate, packets of 1400 bytes still leave, one as the budget
        // reaches a full packet.
        let first = {
            let mut now = start;
            loop {
                if let Some(pk) = p.poll_transmit(now, 200_000) {
                    break (pk, now - start);
                }
                now += PACING_STEP;
            }
        };
        assert_eq!(first.0[0], 2, "the oldest two were dropped");
        assert!(first.1 <= Duration::from_millis(60), "{:?}", first.1);
        // Idle time earns at most a small saving: no burst after a pause.
        let mut q = Pacer::new(100);
        q.poll_transmit(start, 6_000_000);
        for _ in 0..10 {
            q.push(vec![0; 1200]);
        }
        let later = start + Duration::from_secs(10);
        let mut burst = 0;
        while q.poll_transmit(later, 6_000_000).is_some() {
            burst += 1;
        }
        assert!(burst <= 3, "{burst} packets at once after a pause");
    }

    #[test]
    fn key_frames_are_asked_for_at_most_once_a_second() {
        let t = Instant::now();
        let mut k = KeyFrameRequests::default();
        assert!(k.on_loss(t));
        assert!(!k.on_loss(t + Duration::from_millis(300)));
        assert!(!k.on_loss(t + Duration::from_millis(999)));
        assert!(k.on_loss(t + Duration::from_secs(1)));
        assert_eq!(k.sent(), 2);
    }
}
