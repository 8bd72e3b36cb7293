//! VP8 over RTP (RFC 7741): the payload descriptor, splitting an encoded frame into packets,
//! and putting frames back together from packets that may come late, twice or not at all.
//!
//! We write the descriptor as jamid's FFmpeg muxer does: `X` and `I` set, a 7-bit picture
//! id, `S` on a frame's first packet, partition id 0. Any valid descriptor is read.

/// The descriptor of one VP8 RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Descriptor {
    /// `N`: a frame nothing else refers to.
    pub non_reference: bool,
    /// `S`: the packet starts a partition.
    pub start: bool,
    /// `PID`: the partition index.
    pub partition: u8,
    /// The picture id, when written (7 or 15 bits).
    pub picture_id: Option<u16>,
    /// `TL0PICIDX`, when written.
    pub tl0_pic_idx: Option<u8>,
    /// `TID`/`Y`/`KEYIDX` byte, when written.
    pub tid_keyidx: Option<u8>,
    /// Length of the descriptor in bytes.
    pub len: usize,
}

impl Descriptor {
    /// Reads the descriptor at the start of `payload`; `None` when it runs past the end.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let b0 = *payload.first()?;
        let mut d = Descriptor {
            non_reference: b0 & 0x20 != 0,
            start: b0 & 0x10 != 0,
            partition: b0 & 0x07,
            ..Default::default()
        };
        let mut at = 1;
        if b0 & 0x80 != 0 {
            let x = *payload.get(at)?;
            at += 1;
            if x & 0x80 != 0 {
                let p = *payload.get(at)?;
                at += 1;
                d.picture_id = Some(if p & 0x80 != 0 {
                    let lo = *payload.get(at)?;
                    at += 1;
                    (((p & 0x7f) as u16) << 8) | lo as u16
                } else {
                    p as u16
                });
            }
            if x & 0x40 != 0 {
                d.tl0_pic_idx = Some(*payload.get(at)?);
                at += 1;
            }
            if x & 0x30 != 0 {
                d.tid_keyidx = Some(*payload.get(at)?);
                at += 1;
            }
        }
        d.len = at;
        Some(d)
    }
}

/// Splits encoded frames into RTP payloads of at most `max` bytes (descriptor included).
#[derive(Debug, Clone)]
pub struct Packetizer {
    max: usize,
    picture_id: u8,
}

impl Packetizer {
    /// Payloads of at most `max` bytes (at least 4: three of descriptor, one of data).
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(4),
            picture_id: 0,
        }
    }

    /// The payloads of one frame, in order; the last one goes with the RTP marker bit.
    pub fn packetize(&mut self, frame: &[u8]) -> Vec<Vec<u8>> {
        let pid = self.picture_id & 0x7f;
        self.picture_id = self.picture_id.wrapping_add(1);
        let room = self.max - 3;
        let mut out = Vec::new();
        let mut chunks = frame.chunks(room).peekable();
        let mut first = true;
        if chunks.peek().is_none() {
            return out;
        }
        for c in chunks {
            let mut p = Vec::with_capacity(3 + c.len());
            p.push(if first { 0x90 } else { 0x80 });
            p.push(0x80);
            p.push(pid);
            p.extend_from_slice(c);
            out.push(p);
            first = false;
        }
        out
    }
}

/// Whether a frame (its first bytes) is a key frame: bit 0 of the VP8 frame tag is 0.
pub fn is_key_frame(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 1 == 0)
}

/// What [`Depacketizer::push`] gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Depacketized {
    /// Nothing yet.
    Pending,
    /// A whole frame.
    Frame {
        /// The encoded frame.
        data: Vec<u8>,
        /// Its RTP timestamp.
        timestamp: u32,
        /// Whether it is a key frame.
        key: bool,
    },
    /// A frame was lost or cut: ask for a key frame (the decoder cannot go on until one).
    Lost,
}

/// Puts frames back together. A frame is kept only when its packets run from one with `S`
/// and partition 0 to one with the marker bit, sequence numbers without a gap.
#[derive(Debug, Default)]
pub struct Depacketizer {
    current: Option<Partial>,
    /// Refuse frames bigger than this (a peer's garbage costs at most this much memory).
    max_frame: usize,
    waiting_key: bool,
}

#[derive(Debug)]
struct Partial {
    timestamp: u32,
    next_seq: u16,
    data: Vec<u8>,
}

impl Depacketizer {
    /// Frames up to `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self {
            current: None,
            max_frame,
            waiting_key: true,
        }
    }

    /// Takes one RTP packet's fields and payload.
    pub fn push(&mut self, seq: u16, timestamp: u32, marker: bool, payload: &[u8]) -> Depacketized {
        let Some(d) = Descriptor::parse(payload) else {
            return self.lose();
        };
        let data = &payload[d.len..];
        if d.start && d.partition == 0 {
            let lost_one = self.current.take().is_some();
            self.current = Some(Partial {
                timestamp,
                next_seq: seq.wrapping_add(1),
                data: data.to_vec(),
            });
            if lost_one {
                // The previous frame never got its last packet.
                self.waiting_key = true;
                if !marker {
                    return Depacketized::Lost;
                }
            }
        } else {
            let Some(p) = &mut self.current else {
                // The middle of a frame whose start we missed.
                return Depacketized::Pending;
            };
            if p.timestamp != timestamp || p.next_seq != seq {
                return self.lose();
            }
            if p.data.len() + data.len() > self.max_frame {
                return self.lose();
            }
            p.data.extend_from_slice(data);
            p.next_seq = seq.wrapping_add(1);
        }
        if !marker {
            return Depacketized::Pending;
        }
        let Some(p) = self.current.take() else {
            return Depacketized::Pending;
        };
        let key = is_key_frame(&p.data);
        if self.waiting_key && !key {
            return Depacketized::Lost;
        }
        self.waiting_key = false;
        Depacketized::Frame {
            data: p.data,
            timestamp: p.timestamp,
            key,
        }
    }

    fn lose(&mut self) -> Depacketized {
        self.current = None;
        self.waiting_key = true;
        Depacketized::Lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(key: bool, len: usize) -> Vec<u8> {
        let mut f: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        f[0] = if key { 0x10 } else { 0x11 };
        f
    }

    /// (seq, marker, payload) of a frame from `seq`.
    fn packets(p: &mut Packetizer, f: &[u8], seq: u16) -> Vec<(u16, bool, Vec<u8>)> {
        let v = p.packetize(f);
        let n = v.len();
        v.into_iter()
            .enumerate()
            .map(|(i, x)| (seq.wrapping_add(i as u16), i + 1 == n, x))
            .collect()
    }

    #[test]
    fn descriptors_as_ffmpeg_writes_them_and_longer_ones() {
        let mut p = Packetizer::new(1200);
        let v = p.packetize(&frame(true, 3000));
        assert_eq!(v.len(), 3);
        assert_eq!(&v[0][..3], &[0x90, 0x80, 0]);
        assert_eq!(&v[1][..3], &[0x80, 0x80, 0]);
        assert!(v.iter().all(|x| x.len() <= 1200));
        let d = Descriptor::parse(&v[0]).unwrap();
        assert!(d.start && d.partition == 0 && d.picture_id == Some(0) && d.len == 3);
        // 15-bit picture id, TL0PICIDX and TID: 6 bytes.
        let d = Descriptor::parse(&[0x90, 0xf0, 0x81, 0x02, 0x05, 0x40, 0xaa]).unwrap();
        assert_eq!(
            (d.picture_id, d.tl0_pic_idx, d.tid_keyidx, d.len),
            (Some(0x102), Some(5), Some(0x40), 6)
        );
        // Without X: one byte.
        assert_eq!(Descriptor::parse(&[0x10, 1]).unwrap().len, 1);
        // Truncated extensions.
        for bad in [
            &[][..],
            &[0x80],
            &[0x80, 0x80],
            &[0x80, 0x80, 0x80],
            &[0x80, 0x40],
        ] {
            assert_eq!(Descriptor::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn frames_come_back_whole_and_losses_ask_for_a_key_frame() {
        let mut p = Packetizer::new(500);
        let mut d = Depacketizer::new(1 << 20);
        let (k, f1, f2, f3) = (
            frame(true, 1400),
            frame(false, 900),
            frame(false, 1200),
            frame(true, 300),
        );
        let mut seq = 65530u16;
        let mut got = Vec::new();
        for (ts, f) in [(0u32, &k), (3000, &f1)] {
            for (s, m, x) in packets(&mut p, f, seq) {
                got.push(d.push(s, ts, m, &x));
                seq = s.wrapping_add(1);
            }
        }
        let frames: Vec<_> = got
            .iter()
            .filter_map(|g| match g {
                Depacketized::Frame {
                    data,
                    key,
                    timestamp,
                } => Some((data.clone(), *key, *timestamp)),
                _ => None,
            })
            .collect();
        assert_eq!(
            frames,
            vec![(k.clone(), true, 0), (f1.clone(), false, 3000)]
        );
        // f2 loses its middle packet: Lost, and delta frames are refused until a key frame.
        let ps = packets(&mut p, &f2, seq);
        assert_eq!(
            d.push(ps[0].0, 6000, ps[0].1, &ps[0].2),
            Depacketized::Pending
        );
        assert_eq!(d.push(ps[2].0, 6000, ps[2].1, &ps[2].2), Depacketized::Lost);
        seq = seq.wrapping_add(3);
        let ps = packets(&mut p, &f1, seq);
        let last = ps
            .iter()
            .map(|(s, m, x)| d.push(*s, 9000, *m, x))
            .last()
            .unwrap();
        assert_eq!(last, Depacketized::Lost);
        seq = seq.wrapping_add(ps.len() as u16);
        let ps = packets(&mut p, &f3, seq);
        let last = ps
            .iter()
            .map(|(s, m, x)| d.push(*s, 12000, *m, x))
            .last()
            .unwrap();
        assert_eq!(
            last,
            Depacketized::Frame {
                data: f3,
                timestamp: 12000,
                key: true
            }
        );
    }

    #[test]
    fn garbage_and_oversized_frames_cost_nothing() {
        let mut d = Depacketizer::new(1000);
        assert_eq!(d.push(1, 0, true, &[]), Depacketized::Lost);
        assert_eq!(d.push(2, 0, true, &[0x80]), Depacketized::Lost);
        // A continuation without a start.
        assert_eq!(
            d.push(3, 0, false, &[0x80, 0x80, 1, 9]),
            Depacketized::Pending
        );
        // A frame that grows past the limit is dropped.
        let mut p = Packetizer::new(600);
        let ps = packets(&mut p, &frame(true, 2000), 10);
        let out: Vec<_> = ps.iter().map(|(s, m, x)| d.push(*s, 90, *m, x)).collect();
        assert!(out.contains(&Depacketized::Lost));
        assert!(!out.iter().any(|o| matches!(o, Depacketized::Frame { .. })));
        assert!(Packetizer::new(1200).packetize(&[]).is_empty());
    }
}
