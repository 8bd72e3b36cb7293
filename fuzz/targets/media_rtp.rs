//! RTP and RTCP from a peer, and what reads their payloads: statistics, the jitter buffer,
//! VP8 reassembly.
use std::time::Instant;

use pamoja_media::jitter::JitterBuffer;
use pamoja_media::stats::ReceiverStats;
use pamoja_media::vp8::Depacketizer;
use pamoja_media::{RtpPacket, rtcp};

/// One input.
pub fn run(data: &[u8]) {
    let now = Instant::now();
    if let Some(parts) = rtcp::parse(data) {
        let written = rtcp::write(&parts);
        let _ = rtcp::parse(&written);
    }
    let mut stats = None::<ReceiverStats>;
    let mut jitter = JitterBuffer::new(3, 50);
    let mut vp8 = Depacketizer::new(1 << 16);
    // The input as a run of length-prefixed packets.
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let n = (n as usize).min(tail.len());
        let (p, next) = tail.split_at(n);
        rest = next;
        let Some(r) = RtpPacket::parse(p) else {
            continue;
        };
        stats
            .get_or_insert_with(|| ReceiverStats::new(r.ssrc, r.sequence, 48000, now))
            .on_packet(r.sequence, r.timestamp, r.payload.len(), now);
        jitter.push(r.sequence, r.timestamp, r.payload);
        let _ = jitter.pop();
        let _ = vp8.push(r.sequence, r.timestamp, r.marker, r.payload);
    }
    if let Some(s) = &mut stats {
        let _ = s.report_block(now);
    }
}
