//! RTP packets (RFC 3550 section 5): the fixed header, CSRCs, the header extension, padding.
//!
//! [`RtpPacket::parse`] reads any packet a peer sends without panicking: a malformed one is
//! `None`. [`RtpPacket::write`] writes what we send (no CSRC, no extension, no padding, as
//! jamid's FFmpeg muxer).

/// The fixed part of an RTP header.
pub const HEADER_LEN: usize = 12;

/// `(header length, SSRC, sequence number)` of an RTP packet, or `None` when `packet` is not
/// version 2 or shorter than its own header. Padding is part of the payload here (SRTP
/// encrypts it).
pub fn header_fields(packet: &[u8]) -> Option<(usize, u32, u16)> {
    if packet.len() < HEADER_LEN || packet[0] >> 6 != 2 {
        return None;
    }
    let cc = (packet[0] & 0x0f) as usize;
    let mut len = HEADER_LEN + 4 * cc;
    if packet[0] & 0x10 != 0 {
        let ext = packet.get(len..len + 4)?;
        len += 4 + 4 * u16::from_be_bytes([ext[2], ext[3]]) as usize;
    }
    if len > packet.len() {
        return None;
    }
    let seq = u16::from_be_bytes([packet[2], packet[3]]);
    let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
    Some((len, ssrc, seq))
}

/// A parsed RTP packet, borrowing the bytes it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// Marker bit (end of a video frame; start of a talkspurt for audio).
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp, in the payload type's clock.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Contributing sources.
    pub csrcs: Vec<u32>,
    /// The header extension: profile-defined 16 bits, then its words.
    pub extension: Option<(u16, &'a [u8])>,
    /// The payload, padding removed.
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// Reads an RTP packet; `None` if it is not one (wrong version, lengths past the end,
    /// padding longer than the payload).
    pub fn parse(packet: &'a [u8]) -> Option<Self> {
        let (hlen, ssrc, sequence) = header_fields(packet)?;
        let cc = (packet[0] & 0x0f) as usize;
        let csrcs = packet[HEADER_LEN..HEADER_LEN + 4 * cc]
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let extension = if packet[0] & 0x10 != 0 {
            let at = HEADER_LEN + 4 * cc;
            let profile = u16::from_be_bytes([packet[at], packet[at + 1]]);
            Some((profile, &packet[at + 4..hlen]))
        } else {
            None
        };
        let mut end = packet.len();
        if packet[0] & 0x20 != 0 {
            let pad = *packet.last()? as usize;
            if pad == 0 || pad > end - hlen {
                return None;
            }
            end -= pad;
        }
        Some(Self {
            marker: packet[1] & 0x80 != 0,
            payload_type: packet[1] & 0x7f,
            sequence,
            timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            ssrc,
            csrcs,
            extension,
            payload: &packet[hlen..end],
        })
    }

    /// Writes a packet with no CSRC, extension or padding.
    pub fn write(
        marker: bool,
        payload_type: u8,
        sequence: u16,
        timestamp: u32,
        ssrc: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        // Room for an SRTP tag, so protecting does not reallocate.
        let mut p = Vec::with_capacity(HEADER_LEN + payload.len() + 10);
        p.push(0x80);
        p.push(((marker as u8) << 7) | (payload_type & 0x7f));
        p.extend_from_slice(&sequence.to_be_bytes());
        p.extend_from_slice(&timestamp.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }
}

/// Tells RTP from RTCP on a shared port (RFC 5761 section 4): payload types 64-95 (with
/// the marker bit, 192-223) are RTCP.
pub fn is_rtcp(packet: &[u8]) -> bool {
    packet.len() >= 2 && (192..=223).contains(&packet[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_packets_read_back() {
        let p = RtpPacket::write(true, 104, 65535, 960, 0xdeadbeef, b"opus");
        let r = RtpPacket::parse(&p).unwrap();
        assert!(r.marker);
        assert_eq!(
            (r.payload_type, r.sequence, r.timestamp, r.ssrc),
            (104, 65535, 960, 0xdeadbeef)
        );
        assert_eq!(r.payload, b"opus");
        assert!(r.csrcs.is_empty() && r.extension.is_none());
        assert!(!is_rtcp(&p));
    }

    #[test]
    fn csrcs_extension_and_padding() {
        // V=2 P=1 X=1 CC=1; one CSRC; a one-word 0xBEDE extension; 3 bytes of padding.
        let mut p = vec![0xb1, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        p.extend_from_slice(&[0, 0, 0, 4]);
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x32, 1, 2, 3]);
        p.extend_from_slice(b"pay");
        p.extend_from_slice(&[0, 0, 3]);
        let r = RtpPacket::parse(&p).unwrap();
        assert_eq!(r.csrcs, vec![4]);
        assert_eq!(r.extension, Some((0xbede, &[0x32, 1, 2, 3][..])));
        assert_eq!(r.payload, b"pay");
        assert_eq!(header_fields(&p), Some((24, 3, 1)));
    }

    #[test]
    fn malformed_packets_are_none() {
        assert!(RtpPacket::parse(&[]).is_none());
        assert!(RtpPacket::parse(&[0x80; 11]).is_none());
        // Version 1.
        assert!(RtpPacket::parse(&[0x40; 12]).is_none());
        // 15 CSRCs announced, none there.
        assert!(RtpPacket::parse(&[0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_none());
        // An extension longer than the packet.
        let mut p = vec![
            0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xbe, 0xde, 0xff, 0xff,
        ];
        assert!(RtpPacket::parse(&p).is_none());
        p.truncate(13);
        assert!(RtpPacket::parse(&p).is_none());
        // Padding longer than the payload, or zero.
        let mut p = RtpPacket::write(false, 0, 0, 0, 0, b"ab");
        p[0] |= 0x20;
        *p.last_mut().unwrap() = 9;
        assert!(RtpPacket::parse(&p).is_none());
        *p.last_mut().unwrap() = 0;
        assert!(RtpPacket::parse(&p).is_none());
    }
}
