//! Video of a call: VP8 (libvpx) encoding and decoding of I420 frames, a synthetic test
//! pattern, and PSNR to measure what came out.
//!
//! ```
//! use pamoja_media::video::{Vp8Decoder, Vp8Encoder, psnr, test_pattern};
//!
//! let mut enc = Vp8Encoder::new(320, 240, 1_000_000, 30).unwrap();
//! let mut dec = Vp8Decoder::new().unwrap();
//! for i in 0..10 {
//!     let frame = test_pattern(320, 240, i);
//!     for packet in enc.encode(&frame, i == 0).unwrap() {
//!         if let Some(out) = dec.decode(&packet.data).unwrap() {
//!             assert!(psnr(&frame, &out) > 30.0);
//!         }
//!     }
//! }
//! ```
//!
//! The encoder is set up as a call's: real-time deadline at jamid's speed setting
//! ([`CPU_USED`]), constant bitrate with jamid's frame dropping and undershoot, no lag,
//! error resilient, key frames kept small
//! ([`MAX_INTRA_BITRATE_PCT`]), a key frame at least every few seconds, and its bitrate can change between
//! frames (the bitrate controller's decisions). libvpx is reached through `env-libvpx-sys`;
//! the only `unsafe` code of the crate lives here, each call's contract stated beside it.

use std::ffi::c_void;
use std::mem::MaybeUninit;
use std::ptr;

use vpx_sys as vpx;

/// A raw picture: 8-bit I420, planes Y (width x height), then U and V (half size each
/// way, rounded up), tightly packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct I420Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Y, U, V planes.
    pub data: Vec<u8>,
}

impl I420Frame {
    /// Bytes of an I420 picture of this size.
    pub fn size(width: u32, height: u32) -> usize {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        w * h + 2 * cw * ch
    }

    fn planes(&self) -> [(&[u8], usize, usize); 3] {
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (y, rest) = self.data.split_at(w * h);
        let (u, v) = rest.split_at(cw * ch);
        [(y, w, h), (u, cw, ch), (v, cw, ch)]
    }
}

/// What libvpx refused.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// A libvpx call failed: which, and its error code.
    #[error("libvpx {0}: error {1}")]
    Codec(&'static str, u32),
    /// A frame whose size does not match the encoder's, or is not I420.
    #[error("bad frame: {0}")]
    BadFrame(String),
    /// A key frame declaring a picture larger than [`MAX_DECODED_PIXELS`] (or wider or
    /// taller than [`MAX_DECODED_SIDE`]): refused before the decoder sees it.
    #[error("a {width}x{height} picture is larger than allowed")]
    TooLarge {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
}

/// The largest picture decoded: 3840x2160 (a 4K screen shared), in pixels.
pub const MAX_DECODED_PIXELS: u32 = 3840 * 2160;
/// The widest or tallest picture decoded.
pub const MAX_DECODED_SIDE: u32 = 4096;

/// The picture size a VP8 key frame declares (RFC 6386 section 9.1: a 3-byte frame tag
/// whose low bit is 0 for key frames, the start code `9d 01 2a`, then 14-bit width and
/// height, little-endian, each with 2 scaling bits above); `None` for other frames.
pub fn key_frame_size(data: &[u8]) -> Option<(u32, u32)> {
    if data.len() < 10 || data[0] & 1 != 0 || data[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u32::from(u16::from_le_bytes([data[6], data[7]]) & 0x3fff);
    let h = u32::from(u16::from_le_bytes([data[8], data[9]]) & 0x3fff);
    Some((w, h))
}

fn check(what: &'static str, e: vpx::vpx_codec_err_t) -> Result<(), VideoError> {
    if e == vpx::vpx_codec_err_t::VPX_CODEC_OK {
        Ok(())
    } else {
        Err(VideoError::Codec(what, e as u32))
    }
}

/// An encoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The VP8 frame.
    pub data: Vec<u8>,
    /// Whether it is a key frame.
    pub key: bool,
}

/// libvpx's speed setting for VP8 in real time (`cpu-used`, -16 to 16, faster when higher):
/// jamid's value, "obtained from testing".
pub const CPU_USED: i32 = 7;

/// The largest key frame, as a percentage of an average frame's share of the bitrate: a
/// key frame asked for after a loss stays a few packets long, so that it has a fair chance
/// of crossing a lossy link whole (WebRTC's encoders cap theirs the same way).
pub const MAX_INTRA_BITRATE_PCT: u32 = 300;

/// A VP8 encoder for calls.
pub struct Vp8Encoder {
    ctx: Box<vpx::vpx_codec_ctx_t>,
    cfg: Box<vpx::vpx_codec_enc_cfg_t>,
    width: u32,
    height: u32,
    pts: i64,
    fps: u32,
}

// SAFETY: the codec context is owned by this value and used only through `&mut self`;
// libvpx contexts may move between threads (they are not tied to the creating thread).
unsafe impl Send for Vp8Encoder {}

impl Vp8Encoder {
    /// An encoder of `width` x `height` pictures at `bitrate` bit/s and `fps` frames a second.
    pub fn new(width: u32, height: u32, bitrate: u32, fps: u32) -> Result<Self, VideoError> {
        if width == 0 || height == 0 || width > 4096 || height > 4096 || width % 2 != 0 {
            return Err(VideoError::BadFrame(format!("{width}x{height}")));
        }
        let fps = fps.clamp(1, 120);
        // SAFETY: the configuration is plain data that libvpx fills in; the zeroed value is
        // only a place for it to write.
        let mut cfg: Box<vpx::vpx_codec_enc_cfg_t> =
            Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
        // SAFETY: a valid interface and a valid place for its default configuration.
        check("config", unsafe {
            vpx::vpx_codec_enc_config_default(vpx::vpx_codec_vp8_cx(), &mut *cfg, 0)
        })?;
        cfg.g_w = width;
        cfg.g_h = height;
        cfg.g_timebase = vpx::vpx_rational {
            num: 1,
            den: fps as i32,
        };
        cfg.rc_target_bitrate = (bitrate / 1000).max(1);
        cfg.rc_end_usage = vpx::vpx_rc_mode::VPX_CBR;
        cfg.g_lag_in_frames = 0;
        cfg.g_error_resilient = 1;
        cfg.kf_max_dist = fps * 5;
        // jamid's: the encoder may drop a picture rather than overshoot its buffer, and
        // aims a little under its target.
        cfg.rc_dropframe_thresh = 25;
        cfg.rc_undershoot_pct = 95;
        cfg.g_threads = 2;
        // SAFETY: as above, a place for the context that init fills in.
        let mut ctx: Box<vpx::vpx_codec_ctx_t> =
            Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
        // SAFETY: the context and configuration outlive the call; the ABI version is the
        // one the bindings were made for.
        check("encoder init", unsafe {
            vpx::vpx_codec_enc_init_ver(
                &mut *ctx,
                vpx::vpx_codec_vp8_cx(),
                &*cfg,
                0,
                vpx::VPX_ENCODER_ABI_VERSION as i32,
            )
        })?;
        // SAFETY: an initialised context; VP8E_SET_CPUUSED takes one int.
        check("cpu-used", unsafe {
            vpx::vpx_codec_control_(
                &mut *ctx,
                vpx::vp8e_enc_control_id::VP8E_SET_CPUUSED as i32,
                CPU_USED as std::os::raw::c_int,
            )
        })?;
        // SAFETY: as above; VP8E_SET_MAX_INTRA_BITRATE_PCT takes one unsigned int.
        check("max intra bitrate", unsafe {
            vpx::vpx_codec_control_(
                &mut *ctx,
                vpx::vp8e_enc_control_id::VP8E_SET_MAX_INTRA_BITRATE_PCT as i32,
                MAX_INTRA_BITRATE_PCT as std::os::raw::c_uint,
            )
        })?;
        Ok(Self {
            ctx,
            cfg,
            width,
            height,
            pts: 0,
            fps,
        })
    }

    /// Changes the target bitrate (bit/s) from the next frame on.
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), VideoError> {
        self.cfg.rc_target_bitrate = (bitrate / 1000).max(1);
        // SAFETY: an initialised context and a configuration it was made with.
        check("set bitrate", unsafe {
            vpx::vpx_codec_enc_config_set(&mut *self.ctx, &*self.cfg)
        })
    }

    /// The target bitrate, bit/s.
    pub fn bitrate(&self) -> u32 {
        self.cfg.rc_target_bitrate * 1000
    }

    /// Encodes one picture (a key frame when `key`); the frames libvpx gives out.
    pub fn encode(
        &mut self,
        frame: &I420Frame,
        key: bool,
    ) -> Result<Vec<EncodedFrame>, VideoError> {
        if frame.width != self.width
            || frame.height != self.height
            || frame.data.len() != I420Frame::size(self.width, self.height)
        {
            return Err(VideoError::BadFrame(format!(
                "{}x{} ({} bytes) for a {}x{} encoder",
                frame.width,
                frame.height,
                frame.data.len(),
                self.width,
                self.height
            )));
        }
        // SAFETY: a zeroed image descriptor that vpx_img_wrap fills in.
        let mut img: vpx::vpx_image_t = unsafe { MaybeUninit::zeroed().assume_init() };
        // SAFETY: the data is a whole I420 picture of the given size (checked above) and
        // outlives the encode call below, which only reads it.
        let wrapped = unsafe {
            vpx::vpx_img_wrap(
                &mut img,
                vpx::vpx_img_fmt::VPX_IMG_FMT_I420,
                self.width,
                self.height,
                1,
                frame.data.as_ptr() as *mut u8,
            )
        };
        if wrapped.is_null() {
            return Err(VideoError::Codec("wrap", 0));
        }
        let flags = if key { vpx::VPX_EFLAG_FORCE_KF as _ } else { 0 };
        // SAFETY: an initialised context and a wrapped image over live data.
        check("encode", unsafe {
            vpx::vpx_codec_encode(
                &mut *self.ctx,
                &img,
                self.pts,
                1,
                flags,
                vpx::VPX_DL_REALTIME as _,
            )
        })?;
        self.pts += 1;
        let mut out = Vec::new();
        let mut iter: vpx::vpx_codec_iter_t = ptr::null();
        loop {
            // SAFETY: iterating the context's output; each packet stays valid until the next
            // call on the context, and its frame bytes are copied out at once.
            let pkt = unsafe { vpx::vpx_codec_get_cx_data(&mut *self.ctx, &mut iter) };
            if pkt.is_null() {
                break;
            }
            // SAFETY: a non-null packet from libvpx; for frame packets the `frame` member
            // of the union is the one written.
            unsafe {
                if (*pkt).kind == vpx::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                    let f = (*pkt).data.frame;
                    let data =
                        std::slice::from_raw_parts(f.buf as *const u8, f.sz as usize).to_vec();
                    out.push(EncodedFrame {
                        data,
                        key: f.flags & vpx::VPX_FRAME_IS_KEY != 0,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Frames a second.
    pub fn fps(&self) -> u32 {
        self.fps
    }
}

impl Drop for Vp8Encoder {
    fn drop(&mut self) {
        // SAFETY: an initialised context, destroyed once.
        unsafe {
            vpx::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

/// A VP8 decoder.
pub struct Vp8Decoder {
    ctx: Box<vpx::vpx_codec_ctx_t>,
}

// SAFETY: as for the encoder: owned, used through `&mut self` only.
unsafe impl Send for Vp8Decoder {}

impl Vp8Decoder {
    /// A decoder.
    pub fn new() -> Result<Self, VideoError> {
        // SAFETY: a place for the context that init fills in.
        let mut ctx: Box<vpx::vpx_codec_ctx_t> =
            Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
        // SAFETY: a valid interface, no configuration (libvpx picks one from the stream).
        check("decoder init", unsafe {
            vpx::vpx_codec_dec_init_ver(
                &mut *ctx,
                vpx::vpx_codec_vp8_dx(),
                ptr::null(),
                0,
                vpx::VPX_DECODER_ABI_VERSION as i32,
            )
        })?;
        Ok(Self { ctx })
    }

    /// Decodes one frame; the picture it shows, if any. A corrupt frame is an error (and
    /// the next key frame recovers).
    pub fn decode(&mut self, data: &[u8]) -> Result<Option<I420Frame>, VideoError> {
        if data.is_empty() || data.len() > u32::MAX as usize {
            return Err(VideoError::BadFrame("empty".into()));
        }
        // A peer's key frame may declare any size up to 16383x16383: the decoder would
        // allocate for it before finding the frame holds nothing.
        if let Some((width, height)) = key_frame_size(data) {
            if width > MAX_DECODED_SIDE
                || height > MAX_DECODED_SIDE
                || width * height > MAX_DECODED_PIXELS
            {
                return Err(VideoError::TooLarge { width, height });
            }
        }
        // SAFETY: the bytes outlive the call, which only reads them.
        check("decode", unsafe {
            vpx::vpx_codec_decode(
                &mut *self.ctx,
                data.as_ptr(),
                data.len() as u32,
                ptr::null_mut::<c_void>(),
                0,
            )
        })?;
        let mut iter: vpx::vpx_codec_iter_t = ptr::null();
        let mut last = None;
        loop {
            // SAFETY: iterating the decoded pictures; each is read (copied) before the next
            // call on the context.
            let img = unsafe { vpx::vpx_codec_get_frame(&mut *self.ctx, &mut iter) };
            if img.is_null() {
                break;
            }
            // SAFETY: a non-null image from libvpx, whose planes hold `d_h` rows of `stride`
            // bytes (half, rounded up, for chroma).
            last = Some(unsafe { copy_image(&*img) });
        }
        Ok(last)
    }
}

impl Drop for Vp8Decoder {
    fn drop(&mut self) {
        // SAFETY: an initialised context, destroyed once.
        unsafe {
            vpx::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

/// Copies a decoded I420 image out of libvpx's buffers.
///
/// # Safety
/// `img` must be a valid 8-bit I420 image from libvpx.
unsafe fn copy_image(img: &vpx::vpx_image_t) -> I420Frame {
    let (w, h) = (img.d_w as usize, img.d_h as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut data = Vec::with_capacity(I420Frame::size(img.d_w, img.d_h));
    for (plane, pw, ph) in [(0usize, w, h), (1, cw, ch), (2, cw, ch)] {
        let stride = img.stride[plane] as usize;
        for row in 0..ph {
            // SAFETY: rows within the plane's height, `pw` bytes within its stride.
            let line =
                unsafe { std::slice::from_raw_parts(img.planes[plane].add(row * stride), pw) };
            data.extend_from_slice(line);
        }
    }
    I420Frame {
        width: img.d_w,
        height: img.d_h,
        data,
    }
}

/// A synthetic picture: smooth gradients with a bright square moving across, different for
/// each `n` (the frame number), so both still and moving parts are coded.
pub fn test_pattern(width: u32, height: u32, n: u32) -> I420Frame {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut data = Vec::with_capacity(I420Frame::size(width, height));
    let side = (w.min(h) / 6).max(2);
    let x0 = (n as usize * 4) % w.saturating_sub(side).max(1);
    let y0 = (n as usize * 2) % h.saturating_sub(side).max(1);
    for y in 0..h {
        for x in 0..w {
            let inside = (x0..x0 + side).contains(&x) && (y0..y0 + side).contains(&y);
            data.push(if inside {
                235
            } else {
                (16 + (x * 200) / w.max(1)) as u8
            });
        }
    }
    for y in 0..ch {
        for _ in 0..cw {
            data.push((64 + (y * 128) / ch.max(1)) as u8);
        }
    }
    for _ in 0..ch {
        for x in 0..cw {
            data.push((192 - (x * 128) / cw.max(1)) as u8);
        }
    }
    I420Frame {
        width,
        height,
        data,
    }
}

/// [`test_pattern`] with fine, changing texture over it: a picture that costs the encoder
/// every bit it is allowed, to load a link.
pub fn busy_pattern(width: u32, height: u32, n: u32) -> I420Frame {
    let mut f = test_pattern(width, height, n);
    let w = width as usize;
    let luma = w * height as usize;
    for (i, px) in f.data[..luma].iter_mut().enumerate() {
        let (x, y) = ((i % w) as u32, (i / w) as u32);
        // A cheap integer hash of (x, y, n): texture that does not repeat between frames.
        let mut h =
            x.wrapping_mul(0x9e37_79b1) ^ y.wrapping_mul(0x85eb_ca77) ^ n.wrapping_mul(0xc2b2_ae3d);
        h ^= h >> 15;
        h = h.wrapping_mul(0x2c1b_3c6d);
        h ^= h >> 12;
        let noise = (h & 0x3f) as i32 - 32;
        *px = (i32::from(*px) + noise).clamp(16, 235) as u8;
    }
    f
}

/// Peak signal-to-noise ratio (dB) of `b` against `a` over all three planes; infinite for
/// identical pictures, 0 for pictures of different sizes.
pub fn psnr(a: &I420Frame, b: &I420Frame) -> f64 {
    if a.width != b.width || a.height != b.height || a.data.len() != b.data.len() {
        return 0.0;
    }
    let mut se = 0f64;
    let mut n = 0usize;
    for ((pa, _, _), (pb, _, _)) in a.planes().iter().zip(b.planes().iter()) {
        for (x, y) in pa.iter().zip(pb.iter()) {
            let d = f64::from(*x) - f64::from(*y);
            se += d * d;
        }
        n += pa.len();
    }
    if se == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0 * 255.0 / (se / n as f64)).log10()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vp8::{Depacketized, Depacketizer, Packetizer};

    #[test]
    fn a_key_frame_declaring_a_huge_picture_is_refused_before_decoding() {
        let mut enc = Vp8Encoder::new(32, 32, 300_000, 30).unwrap();
        let key = enc
            .encode(&test_pattern(32, 32, 0), true)
            .unwrap()
            .remove(0);
        assert!(key.key);
        assert_eq!(key_frame_size(&key.data), Some((32, 32)));
        // The same frame, now declaring 16383x16383.
        let mut huge = key.data.clone();
        huge[6..10].copy_from_slice(&[0xff, 0x3f, 0xff, 0x3f]);
        let mut dec = Vp8Decoder::new().unwrap();
        assert!(matches!(
            dec.decode(&huge),
            Err(VideoError::TooLarge {
                width: 16383,
                height: 16383
            })
        ));
        // 1x1 declared, or 1080p: decoded as ever (the decoder is not spoiled by the refusal).
        assert_eq!(dec.decode(&key.data).unwrap().unwrap().width, 32);
        let mut wide = key.data.clone();
        wide[6..8].copy_from_slice(&4097u16.to_le_bytes());
        assert!(matches!(
            dec.decode(&wide),
            Err(VideoError::TooLarge { .. })
        ));
    }

    #[test]
    fn pattern_survives_encode_packetize_and_decode() {
        let (w, h) = (320, 240);
        let mut enc = Vp8Encoder::new(w, h, 1_500_000, 30).unwrap();
        let mut dec = Vp8Decoder::new().unwrap();
        let mut pk = Packetizer::new(1194);
        let mut dk = Depacketizer::new(1 << 20);
        let mut seq = 0u16;
        let mut worst = f64::INFINITY;
        let mut shown = 0;
        let mut keys = 0;
        for n in 0..60 {
            let src = test_pattern(w, h, n);
            for f in enc.encode(&src, n == 0).unwrap() {
                keys += usize::from(f.key);
                let packets = pk.packetize(&f.data);
                let last = packets.len() - 1;
                for (i, p) in packets.iter().enumerate() {
                    seq = seq.wrapping_add(1);
                    if let Depacketized::Frame { data, key, .. } =
                        dk.push(seq, n * 3000, i == last, p)
                    {
                        assert_eq!(key, f.key);
                        let out = dec.decode(&data).unwrap().expect("a picture");
                        worst = worst.min(psnr(&src, &out));
                        shown += 1;
                    }
                }
            }
        }
        assert_eq!(shown, 60);
        assert!(keys >= 1);
        assert!(worst >= 30.0, "worst PSNR {worst:.1} dB");
    }

    #[test]
    fn busy_pictures_fill_the_budget_and_still_decode() {
        let (w, h) = (320, 240);
        let mut enc = Vp8Encoder::new(w, h, 800_000, 15).unwrap();
        let mut dec = Vp8Decoder::new().unwrap();
        let mut pk = Packetizer::new(1194);
        let mut dk = Depacketizer::new(1 << 20);
        let (mut seq, mut bytes, mut shown) = (0u16, 0usize, 0);
        for n in 0..30 {
            for f in enc.encode(&busy_pattern(w, h, n), n == 0).unwrap() {
                bytes += f.data.len();
                let packets = pk.packetize(&f.data);
                let last = packets.len() - 1;
                for (i, p) in packets.iter().enumerate() {
                    seq = seq.wrapping_add(1);
                    match dk.push(seq, n * 6000, i == last, p) {
                        Depacketized::Frame { data, .. } => {
                            dec.decode(&data).unwrap().expect("a picture");
                            shown += 1;
                        }
                        Depacketized::Lost => panic!("frame {n} packet {i} of {}", packets.len()),
                        Depacketized::Pending => {}
                    }
                }
            }
        }
        assert_eq!(shown, 30);
        // Two seconds at 800 kb/s: the encoder spends most of it.
        let kbps = bytes * 8 / 2 / 1000;
        assert!(kbps > 400, "{kbps} kb/s");
    }

    #[test]
    fn bitrate_changes_and_bad_input_is_refused() {
        let mut enc = Vp8Encoder::new(160, 120, 200_000, 15).unwrap();
        enc.set_bitrate(600_000).unwrap();
        assert_eq!(enc.bitrate(), 600_000);
        assert!(enc.encode(&test_pattern(320, 240, 0), false).is_err());
        assert!(Vp8Encoder::new(0, 10, 1, 1).is_err());
        let mut dec = Vp8Decoder::new().unwrap();
        assert!(dec.decode(&[]).is_err());
        // Truncated frames, a key frame header cut short, noise: refused, not decoded.
        for garbage in [
            &[1u8, 2, 3][..],
            &[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0xff][..],
            &[0xff; 64][..],
        ] {
            assert!(dec.decode(garbage).is_err(), "{garbage:?}");
        }
        let a = test_pattern(64, 48, 1);
        assert_eq!(psnr(&a, &a), f64::INFINITY);
        assert_eq!(psnr(&a, &test_pattern(32, 24, 1)), 0.0);
        assert!(psnr(&a, &test_pattern(64, 48, 9)) < 30.0);
    }
}
