//! RTCP (RFC 3550 section 6) as jamid's FFmpeg speaks it: sender and receiver reports with
//! their report blocks, SDES CNAME, BYE, and the REMB feedback (PT 206, FMT 15) jamid uses
//! as a bitrate signal. jamid sends RTCP in clear on the RTCP component of each stream.
//!
//! [`parse`] reads a compound packet into its parts; a part it does not know is kept as
//! [`Rtcp::Other`], and anything malformed ends the parse with `None`.

/// One report block of an SR or RR: what the reporter received from `ssrc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source reported on.
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost since the start (24-bit signed: duplicates can make it negative).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles << 16 | sequence).
    pub highest_seq: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from `ssrc`.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    /// Packets the reporter says it received when the sender's first sequence number was
    /// `first_seq`: expected (from `first_seq` up to the extended highest) minus lost.
    pub fn received_since(&self, first_seq: u16) -> u64 {
        let expected = (self.highest_seq as i64) - (first_seq as i64) + 1;
        (expected - self.cumulative_lost as i64).max(0) as u64
    }

    fn read(b: &[u8]) -> Self {
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let lost = word(4) & 0x00ff_ffff;
        // Sign-extend 24 bits.
        let cumulative_lost = ((lost << 8) as i32) >> 8;
        Self {
            ssrc: word(0),
            fraction_lost: b[4],
            cumulative_lost,
            highest_seq: word(8),
            jitter: word(12),
            last_sr: word(16),
            delay_since_last_sr: word(20),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        let lost = (self.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff;
        out.extend_from_slice(&(((self.fraction_lost as u32) << 24) | lost).to_be_bytes());
        out.extend_from_slice(&self.highest_seq.to_be_bytes());
        out.extend_from_slice(&self.jitter.to_be_bytes());
        out.extend_from_slice(&self.last_sr.to_be_bytes());
        out.extend_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }
}

/// The sender information of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// NTP timestamp (seconds since 1900 << 32 | fraction).
    pub ntp: u64,
    /// The same instant in the RTP clock.
    pub rtp_timestamp: u32,
    /// Packets sent since the start.
    pub packets: u32,
    /// Payload bytes sent since the start.
    pub octets: u32,
}

/// One part of a compound RTCP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rtcp {
    /// Sender report (200).
    SenderReport {
        /// The sender.
        ssrc: u32,
        /// What it sent.
        info: SenderInfo,
        /// What it received.
        reports: Vec<ReportBlock>,
    },
    /// Receiver report (201).
    ReceiverReport {
        /// The reporter.
        ssrc: u32,
        /// What it received.
        reports: Vec<ReportBlock>,
    },
    /// Source description (202): the CNAME of each chunk that has one.
    SourceDescription(Vec<(u32, String)>),
    /// Goodbye (203).
    Bye(Vec<u32>),
    /// Receiver estimated maximum bitrate (206, FMT 15).
    Remb {
        /// The sender of the feedback.
        sender: u32,
        /// Bits per second.
        bitrate: u64,
        /// Sources it applies to.
        ssrcs: Vec<u32>,
    },
    /// Any other packet type, as its type and body.
    Other(u8, Vec<u8>),
}

const SR: u8 = 200;
const RR: u8 = 201;
const SDES: u8 = 202;
const BYE: u8 = 203;
const PSFB: u8 = 206;

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

fn blocks(body: &[u8], count: usize) -> Option<Vec<ReportBlock>> {
    let b = body.get(..24 * count)?;
    Some(b.chunks_exact(24).map(ReportBlock::read).collect())
}

fn sdes(body: &[u8], count: usize) -> Option<Vec<(u32, String)>> {
    let mut out = Vec::new();
    let mut at = 0;
    for _ in 0..count {
        let ssrc = u32_at(body, at)?;
        at += 4;
        let mut cname = None;
        loop {
            let kind = *body.get(at)?;
            if kind == 0 {
                // Items end with a null; the chunk is padded to a word.
                at = (at + 4) & !3;
                break;
            }
            let len = *body.get(at + 1)? as usize;
            let value = body.get(at + 2..at + 2 + len)?;
            if kind == 1 {
                cname = Some(String::from_utf8_lossy(value).into_owned());
            }
            at += 2 + len;
        }
        if let Some(c) = cname {
            out.push((ssrc, c));
        }
    }
    Some(out)
}

fn remb(body: &[u8]) -> Option<Rtcp> {
    let sender = u32_at(body, 0)?;
    if body.get(8..12)? != b"REMB" {
        return None;
    }
    let b = body.get(12..16)?;
    let n = b[0] as usize;
    let exp = b[1] >> 2;
    let mantissa = (((b[1] & 3) as u64) << 16) | ((b[2] as u64) << 8) | b[3] as u64;
    let ssrcs = (0..n)
        .map(|i| u32_at(body, 16 + 4 * i))
        .collect::<Option<Vec<_>>>()?;
    Some(Rtcp::Remb {
        sender,
        bitrate: mantissa.checked_shl(exp as u32).unwrap_or(u64::MAX),
        ssrcs,
    })
}

/// Reads a compound RTCP packet; `None` when any part is malformed.
pub fn parse(mut data: &[u8]) -> Option<Vec<Rtcp>> {
    let mut out = Vec::new();
    if data.is_empty() {
        return None;
    }
    while !data.is_empty() {
        if data.len() < 4 || data[0] >> 6 != 2 {
            return None;
        }
        let count = (data[0] & 0x1f) as usize;
        let pt = data[1];
        let len = 4 * (u16::from_be_bytes([data[2], data[3]]) as usize + 1);
        let part = data.get(..len)?;
        let mut body = &part[4..];
        if data[0] & 0x20 != 0 {
            let pad = *body.last()? as usize;
            body = body.get(..body.len().checked_sub(pad)?)?;
        }
        out.push(match pt {
            SR => Rtcp::SenderReport {
                ssrc: u32_at(body, 0)?,
                info: SenderInfo {
                    ntp: ((u32_at(body, 4)? as u64) << 32) | u32_at(body, 8)? as u64,
                    rtp_timestamp: u32_at(body, 12)?,
                    packets: u32_at(body, 16)?,
                    octets: u32_at(body, 20)?,
                },
                reports: blocks(body.get(24..)?, count)?,
            },
            RR => Rtcp::ReceiverReport {
                ssrc: u32_at(body, 0)?,
                reports: blocks(body.get(4..)?, count)?,
            },
            SDES => Rtcp::SourceDescription(sdes(body, count)?),
            BYE => Rtcp::Bye(
                (0..count)
                    .map(|i| u32_at(body, 4 * i))
                    .collect::<Option<_>>()?,
            ),
            PSFB if count == 15 => remb(body)?,
            _ => Rtcp::Other(pt, body.to_vec()),
        });
        data = &data[len..];
    }
    Some(out)
}

fn header(out: &mut Vec<u8>, count: usize, pt: u8) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0x80 | (count as u8 & 0x1f), pt, 0, 0]);
    at
}

fn finish(out: &mut [u8], at: usize) {
    let words = ((out.len() - at) / 4 - 1) as u16;
    out[at + 2..at + 4].copy_from_slice(&words.to_be_bytes());
}

impl Rtcp {
    /// Appends this part to `out` (at most 31 report blocks or sources are written).
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Rtcp::SenderReport {
                ssrc,
                info,
                reports,
            } => {
                let reports = &reports[..reports.len().min(31)];
                let at = header(out, reports.len(), SR);
                out.extend_from_slice(&ssrc.to_be_bytes());
                out.extend_from_slice(&info.ntp.to_be_bytes());
                out.extend_from_slice(&info.rtp_timestamp.to_be_bytes());
                out.extend_from_slice(&info.packets.to_be_bytes());
                out.extend_from_slice(&info.octets.to_be_bytes());
                reports.iter().for_each(|r| r.write(out));
                finish(out, at);
            }
            Rtcp::ReceiverReport { ssrc, reports } => {
                let reports = &reports[..reports.len().min(31)];
                let at = header(out, reports.len(), RR);
                out.extend_from_slice(&ssrc.to_be_bytes());
                reports.iter().for_each(|r| r.write(out));
                finish(out, at);
            }
            Rtcp::SourceDescription(chunks) => {
                let chunks = &chunks[..chunks.len().min(31)];
                let at = header(out, chunks.len(), SDES);
                for (ssrc, cname) in chunks {
                    out.extend_from_slice(&ssrc.to_be_bytes());
                    let c = &cname.as_bytes()[..cname.len().min(255)];
                    out.push(1);
                    out.push(c.len() as u8);
                    out.extend_from_slice(c);
                    // The null item, then padding to a word.
                    out.push(0);
                    while (out.len() - at) % 4 != 0 {
                        out.push(0);
                    }
                }
                finish(out, at);
            }
            Rtcp::Bye(ssrcs) => {
                let ssrcs = &ssrcs[..ssrcs.len().min(31)];
                let at = header(out, ssrcs.len(), BYE);
                ssrcs
                    .iter()
                    .for_each(|s| out.extend_from_slice(&s.to_be_bytes()));
                finish(out, at);
            }
            Rtcp::Remb {
                sender,
                bitrate,
                ssrcs,
            } => {
                let ssrcs = &ssrcs[..ssrcs.len().min(255)];
                let at = header(out, 15, PSFB);
                out.extend_from_slice(&sender.to_be_bytes());
                out.extend_from_slice(&0u32.to_be_bytes());
                out.extend_from_slice(b"REMB");
                let mut exp = 0u32;
                while (bitrate >> exp) > 0x3ffff {
                    exp += 1;
                }
                let m = bitrate >> exp;
                out.push(ssrcs.len() as u8);
                out.push(((exp as u8) << 2) | ((m >> 16) as u8 & 3));
                out.push((m >> 8) as u8);
                out.push(m as u8);
                ssrcs
                    .iter()
                    .for_each(|s| out.extend_from_slice(&s.to_be_bytes()));
                finish(out, at);
            }
            Rtcp::Other(pt, body) => {
                let at = header(out, 0, *pt);
                out.extend_from_slice(body);
                while (out.len() - at) % 4 != 0 {
                    out.push(0);
                }
                finish(out, at);
            }
        }
    }
}

/// Writes a compound packet of `parts`.
pub fn write(parts: &[Rtcp]) -> Vec<u8> {
    let mut out = Vec::new();
    parts.iter().for_each(|p| p.write(&mut out));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> ReportBlock {
        ReportBlock {
            ssrc: 0x1234_5678,
            fraction_lost: 13,
            cumulative_lost: -2,
            highest_seq: (1 << 16) | 5,
            jitter: 77,
            last_sr: 0xaabb_ccdd,
            delay_since_last_sr: 65536,
        }
    }

    #[test]
    fn compound_round_trip() {
        let parts = vec![
            Rtcp::SenderReport {
                ssrc: 1,
                info: SenderInfo {
                    ntp: 0x0102_0304_0506_0708,
                    rtp_timestamp: 960,
                    packets: 50,
                    octets: 4000,
                },
                reports: vec![block()],
            },
            Rtcp::SourceDescription(vec![(1, "pamoja".into())]),
            Rtcp::ReceiverReport {
                ssrc: 2,
                reports: vec![block(), ReportBlock::default()],
            },
            Rtcp::Remb {
                sender: 0x1234_5678,
                bitrate: 1_500_000,
                ssrcs: vec![0x2345_678b],
            },
            Rtcp::Bye(vec![1, 2]),
            Rtcp::Other(204, b"APP!data".to_vec()),
        ];
        let bytes = write(&parts);
        assert_eq!(bytes.len() % 4, 0);
        let back = parse(&bytes).unwrap();
        // REMB keeps 18 bits of mantissa: 1.5 Mb/s is exact (366 << 12).
        assert_eq!(back, parts);
    }

    #[test]
    fn jamid_remb_signals() {
        // jamid's "decrease" REMB: mantissa 0x6803, exponent 0.
        let p = [
            0x8f, 0xce, 0x00, 0x05, 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0, b'R', b'E', b'M', b'B',
            0x01, 0x00, 0x68, 0x03, 0x23, 0x45, 0x67, 0x8b,
        ];
        assert_eq!(
            parse(&p).unwrap(),
            vec![Rtcp::Remb {
                sender: 0x1234_5678,
                bitrate: 0x6803,
                ssrcs: vec![0x2345_678b]
            }]
        );
        let mut out = Vec::new();
        Rtcp::Remb {
            sender: 0x1234_5678,
            bitrate: 0x7378,
            ssrcs: vec![0x2345_678b],
        }
        .write(&mut out);
        assert_eq!(&out[16..20], &[0x01, 0x00, 0x73, 0x78]);
    }

    #[test]
    fn received_count_from_a_report() {
        // First sequence 65000, highest extended 1<<16 | 99: 636 expected, 6 lost.
        let b = ReportBlock {
            highest_seq: (1 << 16) | 99,
            cumulative_lost: 6,
            ..Default::default()
        };
        assert_eq!(b.received_since(65000), 630);
    }

    #[test]
    fn malformed_compounds_are_none() {
        assert!(parse(&[]).is_none());
        assert!(parse(&[0x80, 201, 0]).is_none());
        // Length past the end.
        assert!(parse(&[0x80, 201, 0, 9, 0, 0, 0, 1]).is_none());
        // Two report blocks announced, none there.
        assert!(parse(&[0x82, 201, 0, 1, 0, 0, 0, 1]).is_none());
        // Version 1.
        assert!(parse(&[0x40, 201, 0, 1, 0, 0, 0, 1]).is_none());
        // An SDES item running past the end.
        assert!(parse(&[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 200, b'a', 0]).is_none());
        // A REMB whose padding cuts it inside its bitrate field.
        assert!(
            parse(&[
                0xaf, 0xce, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0, b'R', b'E', b'M', b'B', 1, 0, 0, 2
            ])
            .is_none()
        );
        // Padding bigger than the part.
        assert!(parse(&[0xa0, 203, 0, 1, 0, 0, 0, 9]).is_none());
    }
}
