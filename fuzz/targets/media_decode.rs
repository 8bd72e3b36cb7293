//! A call peer's media payloads through the decoders: Opus packets, and VP8 frames (key
//! frames declaring any size). No panic, no picture over the size allowed.

use pamoja_media::audio::OpusDecoder;
use pamoja_media::video::{MAX_DECODED_PIXELS, Vp8Decoder};

/// One input.
pub fn run(data: &[u8]) {
    let mut opus = OpusDecoder::new().expect("an Opus decoder");
    let _ = opus.decode(Some(data));
    let _ = opus.decode(None);
    let mut vp8 = Vp8Decoder::new().expect("a VP8 decoder");
    if let Ok(Some(p)) = vp8.decode(data) {
        assert!(p.width * p.height <= MAX_DECODED_PIXELS);
    }
}
