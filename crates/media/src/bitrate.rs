//! Video bitrate adaptation between [`MIN_BITRATE`] and [`MAX_BITRATE`], from what the
//! receiver reports, following jamid's rules:
//!
//! * loss: the `fraction lost` of the receiver reports of the last two seconds, weighted;
//!   at 5 % or more the bitrate is multiplied by `1 - loss% / 150`; nothing changes within
//!   two seconds of a change, nor while the reported jitter is over one second;
//! * jamid's REMB signals: `0x6803` asks to go down to 85 %, `0x7378` up by 5 %;
//! * with little loss (under 2 %) and no change for a second, we go up by 5 %, as jamid's
//!   receiver asks of it on normal use.
//!
//! Pure: reports and the time go in, the bitrate to give the encoder comes out.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Lowest video bitrate, in bits per second.
pub const MIN_BITRATE: u64 = 200_000;
/// Highest video bitrate, in bits per second.
pub const MAX_BITRATE: u64 = 6_000_000;
/// jamid's REMB value that means "decrease".
pub const REMB_DECREASE: u64 = 0x6803;
/// jamid's REMB value that means "increase".
pub const REMB_INCREASE: u64 = 0x7378;

const WINDOW: Duration = Duration::from_secs(2);
const HOLD: Duration = Duration::from_secs(2);
const LOSS_THRESHOLD: f64 = 5.0;
/// The shortest time between two steps up (and between two delay-driven steps down).
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Queueing delay (round trip over the lowest seen) past which the link is taken as
/// over-used.
pub const DELAY_THRESHOLD: Duration = Duration::from_millis(100);

/// The bitrate controller of one video stream.
#[derive(Debug, Clone)]
pub struct BitrateController {
    bitrate: u64,
    /// (when, loss in %) of recent receiver reports.
    losses: VecDeque<(Instant, f64)>,
    changed: Option<Instant>,
    /// The lowest round trip seen: the link's own, without queues.
    base_rtt: Option<Duration>,
}

impl BitrateController {
    /// Starts at `initial` (clamped to the range).
    pub fn new(initial: u64) -> Self {
        Self {
            bitrate: initial.clamp(MIN_BITRATE, MAX_BITRATE),
            losses: VecDeque::new(),
            changed: None,
            base_rtt: None,
        }
    }

    /// The bitrate the encoder should use now.
    pub fn bitrate(&self) -> u64 {
        self.bitrate
    }

    fn set(&mut self, b: f64, now: Instant) -> bool {
        let b = (b as u64).clamp(MIN_BITRATE, MAX_BITRATE);
        if b == self.bitrate {
            return false;
        }
        self.bitrate = b;
        self.changed = Some(now);
        true
    }

    fn held(&self, now: Instant, hold: Duration) -> bool {
        self.changed
            .is_some_and(|t| now.saturating_duration_since(t) < hold)
    }

    /// The loss of the last two seconds, the newest reports weighing most; `None` without
    /// reports.
    pub fn recent_loss(&self, now: Instant) -> Option<f64> {
        let (mut sum, mut weights) = (0.0, 0.0);
        for (t, loss) in &self.losses {
            let age = now.saturating_duration_since(*t).as_secs_f64();
            let w = (WINDOW.as_secs_f64() - age).max(0.0) + 0.1;
            sum += w * loss;
            weights += w;
        }
        (weights > 0.0).then(|| sum / weights)
    }

    /// A receiver report about our stream: its `fraction_lost` (in 1/256) and jitter as a
    /// duration. Returns whether the bitrate changed.
    pub fn on_report(&mut self, fraction_lost: u8, jitter: Duration, now: Instant) -> bool {
        self.losses
            .push_back((now, fraction_lost as f64 * 100.0 / 256.0));
        while self
            .losses
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > WINDOW)
        {
            self.losses.pop_front();
        }
        if jitter > Duration::from_secs(1) {
            return false;
        }
        let Some(loss) = self.recent_loss(now) else {
            return false;
        };
        if loss >= LOSS_THRESHOLD {
            if self.held(now, HOLD) {
                return false;
            }
            return self.set(self.bitrate as f64 * (1.0 - loss / 150.0), now);
        }
        if loss < 2.0 && !self.held(now, PROBE_EVERY) {
            return self.set(self.bitrate as f64 * 1.05, now);
        }
        false
    }

    /// A round trip measured from the peer's report (our own delay measurement, in place of
    /// the REMB a jamid receiver sends only to senders that stamp `abs-send-time`): when it
    /// exceeds the lowest one seen by more than [`DELAY_THRESHOLD`], packets wait in a queue
    /// on the way, and the bitrate goes down as jamid's REMB "decrease" would have it (to
    /// 85 %), at most once a [`PROBE_EVERY`]. Returns whether the bitrate changed.
    pub fn on_rtt(&mut self, rtt: Duration, now: Instant) -> bool {
        let base = *self.base_rtt.get_or_insert(rtt);
        if rtt < base {
            self.base_rtt = Some(rtt);
            return false;
        }
        if rtt - base > DELAY_THRESHOLD && !self.held(now, PROBE_EVERY) {
            return self.set(self.bitrate as f64 * 0.85, now);
        }
        false
    }

    /// A REMB from the peer: jamid's decrease and increase signals; any other value is a
    /// plain estimate, taken as a ceiling. Returns whether the bitrate changed.
    pub fn on_remb(&mut self, bitrate: u64, now: Instant) -> bool {
        match bitrate {
            REMB_DECREASE => self.set(self.bitrate as f64 * 0.85, now),
            REMB_INCREASE => {
                if self.held(now, PROBE_EVERY) {
                    false
                } else {
                    self.set(self.bitrate as f64 * 1.05, now)
                }
            }
            b if b < self.bitrate => self.set(b as f64, now),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_loss_brings_it_down_to_the_floor_and_no_further() {
        let t0 = Instant::now();
        let mut c = BitrateController::new(2_000_000);
        // 10 % loss reported every 500 ms: a cut every two seconds.
        let mut cuts = 0;
        for i in 0..200u64 {
            if c.on_report(
                26,
                Duration::from_millis(20),
                t0 + Duration::from_millis(500 * i),
            ) {
                cuts += 1;
            }
        }
        assert_eq!(c.bitrate(), MIN_BITRATE);
        assert!(cuts > 5);
        // The first cut: 10.2 % -> x (1 - 10.2/150).
        let mut c = BitrateController::new(2_000_000);
        assert!(c.on_report(26, Duration::ZERO, t0));
        assert_eq!(
            c.bitrate(),
            (2_000_000.0 * (1.0 - (26.0 * 100.0 / 256.0) / 150.0)) as u64
        );
        // Held for two seconds.
        assert!(!c.on_report(26, Duration::ZERO, t0 + Duration::from_millis(1900)));
    }

    #[test]
    fn a_clean_link_climbs_to_the_ceiling() {
        let t0 = Instant::now();
        let mut c = BitrateController::new(300_000);
        for i in 0..400u64 {
            c.on_report(0, Duration::ZERO, t0 + Duration::from_millis(500 * i));
        }
        assert_eq!(c.bitrate(), MAX_BITRATE);
    }

    #[test]
    fn jitter_over_a_second_freezes_and_remb_signals_steer() {
        let t0 = Instant::now();
        let mut c = BitrateController::new(1_000_000);
        assert!(!c.on_report(128, Duration::from_millis(1500), t0));
        assert_eq!(c.bitrate(), 1_000_000);
        assert!(c.on_remb(REMB_DECREASE, t0));
        assert_eq!(c.bitrate(), 850_000);
        // An increase right after a change waits a second.
        assert!(!c.on_remb(REMB_INCREASE, t0 + Duration::from_millis(500)));
        assert!(c.on_remb(REMB_INCREASE, t0 + Duration::from_secs(1)));
        assert_eq!(c.bitrate(), 892_500);
        // A plain estimate below is a ceiling; above, nothing.
        assert!(c.on_remb(400_000, t0 + Duration::from_secs(2)));
        assert!(!c.on_remb(9_000_000, t0 + Duration::from_secs(3)));
        assert_eq!(c.bitrate(), 400_000);
        // Moderate loss (3 %) neither cuts nor climbs.
        let mut c = BitrateController::new(1_000_000);
        assert!(!c.on_report(8, Duration::ZERO, t0));
        assert_eq!(c.bitrate(), 1_000_000);
    }

    #[test]
    fn a_growing_round_trip_brings_the_bitrate_down() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut c = BitrateController::new(1_000_000);
        // The link's own round trip, then a little wobble: nothing.
        assert!(!c.on_rtt(ms(40), t0));
        assert!(!c.on_rtt(ms(90), t0 + ms(500)));
        assert!(!c.on_rtt(ms(30), t0 + ms(900)));
        // A queue builds (more than 100 ms over the lowest): down to 85 %, once a second.
        assert!(c.on_rtt(ms(200), t0 + ms(1000)));
        assert_eq!(c.bitrate(), 850_000);
        assert!(!c.on_rtt(ms(250), t0 + ms(1500)));
        assert!(c.on_rtt(ms(250), t0 + ms(2000)));
        assert_eq!(c.bitrate(), 722_500);
        // Never under the floor.
        for i in 0..100u64 {
            c.on_rtt(ms(400), t0 + Duration::from_secs(3 + i));
        }
        assert_eq!(c.bitrate(), MIN_BITRATE);
    }
}
