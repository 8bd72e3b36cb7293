//! An audio jitter buffer: packets in as they arrive (late, twice, out of order), frames out
//! at the decoder's pace, one per call of [`JitterBuffer::pop`], with a hole where a packet
//! never came so the decoder conceals it (packet-loss concealment).
//!
//! The buffer first fills to its depth (a few frames of delay), then plays in sequence
//! order. A packet behind the play point is late and dropped; a buffer over its maximum
//! drops its oldest frames. Every such decision is counted.

use std::collections::BTreeMap;

/// What the decoder gets for one frame period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Still filling (or refilling after running dry): play silence.
    Filling,
    /// The next frame: its RTP timestamp and payload.
    Frame(u32, Vec<u8>),
    /// The next frame is missing: conceal it.
    Missing,
}

/// Counters of a jitter buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Frames played.
    pub played: u64,
    /// Frames concealed (never arrived in time).
    pub concealed: u64,
    /// Packets that came after their turn.
    pub late: u64,
    /// Packets received twice.
    pub duplicates: u64,
    /// Frames dropped because the buffer was full.
    pub overflow: u64,
    /// Times the buffer ran dry and filled again.
    pub underruns: u64,
}

/// A jitter buffer for one audio stream.
#[derive(Debug)]
pub struct JitterBuffer {
    depth: usize,
    max: usize,
    frames: BTreeMap<u64, (u32, Vec<u8>)>,
    /// Extended sequence number of the next frame to play; `None` while filling.
    next: Option<u64>,
    highest: Option<u64>,
    stats: JitterStats,
}

impl JitterBuffer {
    /// Plays once `depth` frames are in (e.g. 3 × 20 ms); holds at most `max` frames.
    pub fn new(depth: usize, max: usize) -> Self {
        let depth = depth.max(1);
        Self {
            depth,
            max: max.max(depth + 1),
            frames: BTreeMap::new(),
            next: None,
            highest: None,
            stats: JitterStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame waits.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The extended sequence number of `seq`, near the highest seen.
    fn extend(&self, seq: u16) -> u64 {
        let Some(h) = self.highest else {
            // Room below the first packet for ones that were overtaken.
            return (1 << 16) | seq as u64;
        };
        let base = h & !0xffff;
        let candidates = [base.wrapping_sub(1 << 16), base, base + (1 << 16)];
        candidates
            .iter()
            .map(|b| b | seq as u64)
            .min_by_key(|c| c.abs_diff(h))
            .unwrap_or(base | seq as u64)
    }

    /// Takes a packet.
    pub fn push(&mut self, seq: u16, timestamp: u32, payload: &[u8]) {
        let ext = self.extend(seq);
        if self.next.is_some_and(|n| ext < n) {
            self.stats.late += 1;
            return;
        }
        if self.frames.contains_key(&ext) {
            self.stats.duplicates += 1;
            return;
        }
        self.frames.insert(ext, (timestamp, payload.to_vec()));
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        while self.frames.len() > self.max {
            if let Some((k, _)) = self.frames.pop_first() {
                self.stats.overflow += 1;
                if let Some(n) = &mut self.next {
                    *n = (*n).max(k + 1);
                }
            }
        }
    }

    /// Everything still waiting, in sequence order (the end of a stream: nothing more will
    /// come to fill the holes). The buffer is empty and filling afterwards.
    pub fn drain(&mut self) -> Vec<(u32, Vec<u8>)> {
        self.next = None;
        let frames = std::mem::take(&mut self.frames);
        self.stats.played += frames.len() as u64;
        frames.into_values().collect()
    }

    /// The frame for the next period.
    pub fn pop(&mut self) -> Playout {
        let next = match self.next {
            Some(n) => n,
            None => {
                if self.frames.len() < self.depth {
                    return Playout::Filling;
                }
                let Some((&first, _)) = self.frames.first_key_value() else {
                    return Playout::Filling;
                };
                first
            }
        };
        if let Some((ts, data)) = self.frames.remove(&next) {
            self.next = Some(next + 1);
            self.stats.played += 1;
            return Playout::Frame(ts, data);
        }
        if self.frames.is_empty() {
            // Ran dry: fill again before playing, so one late burst does not become a
            // stream of concealed frames.
            self.next = None;
            self.stats.underruns += 1;
            self.stats.concealed += 1;
            return Playout::Missing;
        }
        self.next = Some(next + 1);
        self.stats.concealed += 1;
        Playout::Missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(p: &Playout) -> Option<u32> {
        match p {
            Playout::Frame(ts, _) => Some(*ts),
            _ => None,
        }
    }

    #[test]
    fn reorders_conceals_and_drops_late_ones() {
        let mut b = JitterBuffer::new(3, 50);
        // 65534, 0 (overtook 65535), 65535, 2 (1 lost), 3.
        for seq in [65534u16, 0, 65535, 2, 3] {
            b.push(seq, seq as u32 * 960, &[seq as u8]);
        }
        let out: Vec<Playout> = (0..5).map(|_| b.pop()).collect();
        assert_eq!(frame(&out[0]), Some(65534 * 960));
        assert_eq!(frame(&out[1]), Some(65535 * 960));
        assert_eq!(frame(&out[2]), Some(0));
        assert_eq!(out[3], Playout::Missing);
        assert_eq!(frame(&out[4]), Some(2 * 960));
        // 1 arrives now: late; 3 again: a duplicate of the one waiting.
        b.push(1, 960, &[1]);
        b.push(3, 3 * 960, &[3]);
        let s = b.stats();
        assert_eq!((s.played, s.concealed, s.late, s.duplicates), (4, 1, 1, 1));
        assert_eq!(frame(&b.pop()), Some(3 * 960));
    }

    #[test]
    fn fills_first_refills_after_running_dry_and_counts_duplicates() {
        let mut b = JitterBuffer::new(2, 10);
        assert_eq!(b.pop(), Playout::Filling);
        b.push(10, 0, b"a");
        assert_eq!(b.pop(), Playout::Filling);
        b.push(10, 0, b"a");
        b.push(11, 960, b"b");
        assert_eq!(b.stats().duplicates, 1);
        assert_eq!(b.pop(), Playout::Frame(0, b"a".to_vec()));
        assert_eq!(b.pop(), Playout::Frame(960, b"b".to_vec()));
        assert_eq!(b.pop(), Playout::Missing);
        assert_eq!(b.stats().underruns, 1);
        b.push(12, 1920, b"c");
        assert_eq!(b.pop(), Playout::Filling);
        b.push(13, 2880, b"d");
        assert_eq!(frame(&b.pop()), Some(1920));
    }

    #[test]
    fn a_flood_is_bounded() {
        let mut b = JitterBuffer::new(3, 20);
        for seq in 0..1000u16 {
            b.push(seq, 0, &[0; 100]);
        }
        assert_eq!(b.len(), 20);
        assert_eq!(b.stats().overflow, 980);
        // Play resumes at the oldest kept frame.
        assert_eq!(b.pop(), Playout::Frame(0, vec![0; 100]));
        assert_eq!(b.len(), 19);
    }

    #[test]
    fn what_is_left_drains_in_order() {
        let mut j = JitterBuffer::new(3, 10);
        for seq in [7u16, 5, 6] {
            j.push(seq, u32::from(seq) * 960, &[seq as u8]);
        }
        j.push(9, 9 * 960, &[9]);
        let left: Vec<u8> = j.drain().into_iter().map(|(_, p)| p[0]).collect();
        assert_eq!(left, vec![5, 6, 7, 9]);
        assert!(j.is_empty());
        assert_eq!(j.pop(), Playout::Filling);
    }
}
