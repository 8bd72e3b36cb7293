//! RFC 4571 framing, as ICE-TCP uses it: every packet on the connection (STUN or data) is
//! preceded by its length on two bytes, big-endian.

/// Largest frame payload.
pub const MAX_FRAME: usize = u16::MAX as usize;

/// Prefixes `payload` with its length; `None` when it is longer than [`MAX_FRAME`].
pub fn frame(payload: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(payload.len()).ok()?;
    let mut out = Vec::with_capacity(2 + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Some(out)
}

/// Reassembles frames from a byte stream, whatever the read sizes.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
}

impl Deframer {
    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame's payload, if one has arrived.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        if self.buf.len() < 2 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
        if self.buf.len() < 2 + len {
            return None;
        }
        let payload = self.buf[2..2 + len].to_vec();
        self.buf.drain(..2 + len);
        Some(payload)
    }

    /// Bytes held that do not make a frame yet (bounded by one frame, 65,537 bytes, as long as
    /// frames are taken out).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_any_split() {
        let frames: Vec<Vec<u8>> = vec![b"stun".to_vec(), vec![], vec![7; 3000], b"tls".to_vec()];
        let stream: Vec<u8> = frames.iter().flat_map(|f| frame(f).unwrap()).collect();
        for chunk in [1, 2, 3, 7, 1000, stream.len()] {
            let mut d = Deframer::default();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                d.push(piece);
                while let Some(f) = d.next_frame() {
                    got.push(f);
                }
            }
            assert_eq!(got, frames, "chunks of {chunk}");
            assert_eq!(d.pending(), 0);
        }
        assert!(frame(&vec![0; MAX_FRAME + 1]).is_none());
    }
}
