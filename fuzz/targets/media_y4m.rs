//! Raw video files given to a call as a source: any bytes are read or refused, never a
//! panic, and a picture read is whole.
use pamoja_media::video::I420Frame;
use pamoja_media::y4m::Y4mReader;

/// One input.
pub fn run(data: &[u8]) {
    let Ok(mut r) = Y4mReader::new(data) else {
        return;
    };
    let h = r.header();
    while let Ok(Some(p)) = r.next_frame() {
        assert_eq!(p.data.len(), I420Frame::size(h.width, h.height));
    }
}
