//! Audio of a call: Opus frames (RFC 7587: 20 ms at 48 kHz), synthetic sources, WAV files,
//! and the measurements the tests make of what came out.
//!
//! ```
//! use pamoja_media::audio::{FRAME_SAMPLES, OpusDecoder, OpusEncoder, Tone, analyse};
//!
//! let mut tone = Tone::new(440.0, 0.3);
//! let mut enc = OpusEncoder::new().unwrap();
//! let mut dec = OpusDecoder::new().unwrap();
//! let mut out = Vec::new();
//! for _ in 0..50 {
//!     let packet = enc.encode(&tone.frame()).unwrap();
//!     out.extend(dec.decode(Some(&packet)).unwrap());
//! }
//! let (hz, level) = analyse(&out[FRAME_SAMPLES * 5..]);
//! assert!((hz - 440.0).abs() < 5.0 && level > 0.15, "{hz} {level}");
//! ```

use std::f64::consts::TAU;
use std::path::Path;

/// The RTP clock and sampling rate of Opus.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in a 20 ms frame (mono).
pub const FRAME_SAMPLES: usize = 960;

/// What the audio codec or a file refused.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// libopus refused.
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
    /// A WAV file could not be read or written.
    #[error("wav: {0}")]
    Wav(#[from] hound::Error),
    /// A WAV file in a shape we do not read.
    #[error("unsupported WAV: {0}")]
    Unsupported(String),
}

/// An Opus encoder for calls: mono, 48 kHz, VoIP tuning, in-band FEC on.
pub struct OpusEncoder {
    inner: opus::Encoder,
    buf: Vec<u8>,
}

impl OpusEncoder {
    /// An encoder at 48 kb/s, as jamid's default.
    pub fn new() -> Result<Self, AudioError> {
        let mut inner =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)?;
        inner.set_bitrate(opus::Bitrate::Bits(48_000))?;
        inner.set_inband_fec(true)?;
        Ok(Self {
            inner,
            buf: vec![0; 1500],
        })
    }

    /// Sets the bitrate (6 kb/s to 510 kb/s, Opus's range).
    pub fn set_bitrate(&mut self, bits_per_second: u32) -> Result<(), AudioError> {
        let b = bits_per_second.clamp(6_000, 510_000) as i32;
        Ok(self.inner.set_bitrate(opus::Bitrate::Bits(b))?)
    }

    /// Sets the packet loss the peer reports (percent), which tunes FEC.
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), AudioError> {
        Ok(self
            .inner
            .set_packet_loss_perc(i32::from(percent.min(100)))?)
    }

    /// Encodes one 20 ms frame ([`FRAME_SAMPLES`] mono samples).
    pub fn encode(&mut self, frame: &[i16]) -> Result<Vec<u8>, AudioError> {
        let n = self.inner.encode(frame, &mut self.buf)?;
        Ok(self.buf[..n].to_vec())
    }
}

/// An Opus decoder: mono output at 48 kHz, whatever the peer encoded (jamid sends stereo
/// or mono packets under `opus/48000/2`).
pub struct OpusDecoder {
    inner: opus::Decoder,
    buf: Vec<i16>,
}

impl OpusDecoder {
    /// A decoder.
    pub fn new() -> Result<Self, AudioError> {
        Ok(Self {
            inner: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)?,
            // 120 ms, the longest Opus packet.
            buf: vec![0; 5760],
        })
    }

    /// Decodes a packet; `None` conceals one lost 20 ms frame.
    pub fn decode(&mut self, packet: Option<&[u8]>) -> Result<Vec<i16>, AudioError> {
        let n = match packet {
            Some(p) => self.inner.decode(p, &mut self.buf, false)?,
            None => self
                .inner
                .decode(&[], &mut self.buf[..FRAME_SAMPLES], false)?,
        };
        Ok(self.buf[..n].to_vec())
    }
}

/// A sine tone, frame by frame.
#[derive(Debug, Clone)]
pub struct Tone {
    step: f64,
    phase: f64,
    amplitude: f64,
}

impl Tone {
    /// A tone of `hz` at `amplitude` (0 to 1 of full scale).
    pub fn new(hz: f64, amplitude: f64) -> Self {
        Self {
            step: TAU * hz / f64::from(SAMPLE_RATE),
            phase: 0.0,
            amplitude: amplitude.clamp(0.0, 1.0),
        }
    }

    /// The next 20 ms.
    pub fn frame(&mut self) -> Vec<i16> {
        (0..FRAME_SAMPLES)
            .map(|_| {
                let v = self.phase.sin() * self.amplitude * f64::from(i16::MAX);
                self.phase = (self.phase + self.step) % TAU;
                v as i16
            })
            .collect()
    }
}

/// The dominant frequency (Hz, from interpolated rising zero crossings) and RMS level (0 to
/// 1 of full scale) of mono 48 kHz samples. A frequency of 0 means fewer than two crossings.
pub fn analyse(samples: &[i16]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    let sq: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sq / samples.len() as f64).sqrt() / f64::from(i16::MAX);
    let mut first = None;
    let mut last = 0.0;
    let mut n = 0u64;
    for (i, w) in samples.windows(2).enumerate() {
        let (a, b) = (f64::from(w[0]), f64::from(w[1]));
        if a < 0.0 && b >= 0.0 {
            let t = i as f64 + (-a) / (b - a);
            first.get_or_insert(t);
            last = t;
            n += 1;
        }
    }
    let hz = match first {
        Some(f) if n >= 2 && last > f => (n - 1) as f64 * f64::from(SAMPLE_RATE) / (last - f),
        _ => 0.0,
    };
    (hz, rms)
}

/// [`analyse`] over quarter-second windows, as medians: a tone's frequency and level even
/// when some windows were disturbed (an echo canceller at work, a burst of loss).
pub fn analyse_windows(samples: &[i16]) -> (f64, f64) {
    let mut hz = Vec::new();
    let mut level = Vec::new();
    for w in samples.chunks(SAMPLE_RATE as usize / 4) {
        if w.len() == SAMPLE_RATE as usize / 4 {
            let (h, l) = analyse(w);
            hz.push(h);
            level.push(l);
        }
    }
    (median(&mut hz), median(&mut level))
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The longest run of silence (|sample| below `threshold`) in `samples`, in milliseconds at
/// 48 kHz: a gap in audio that should have flowed.
pub fn longest_gap_ms(samples: &[i16], threshold: i16) -> f64 {
    let mut longest = 0usize;
    let mut run = 0usize;
    for &s in samples {
        if s.unsigned_abs() < threshold.unsigned_abs() {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest as f64 * 1000.0 / f64::from(SAMPLE_RATE)
}

/// Reads a WAV file as mono 48 kHz 16-bit samples (other channel counts are mixed down;
/// other rates are refused).
pub fn read_wav(path: &Path) -> Result<Vec<i16>, AudioError> {
    let mut r = hound::WavReader::open(path)?;
    let spec = r.spec();
    if spec.sample_rate != SAMPLE_RATE
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
        || spec.channels == 0
    {
        return Err(AudioError::Unsupported(format!(
            "{} Hz, {} bits, {} channels (want 48000 Hz 16-bit PCM)",
            spec.sample_rate, spec.bits_per_sample, spec.channels
        )));
    }
    let all: Vec<i16> = r.samples::<i16>().collect::<Result<_, _>>()?;
    let ch = usize::from(spec.channels);
    Ok(all
        .chunks(ch)
        .map(|c| (c.iter().map(|&s| i32::from(s)).sum::<i32>() / ch as i32) as i16)
        .collect())
}

/// Writes mono 48 kHz 16-bit samples to a WAV file.
pub fn write_wav(path: &Path, samples: &[i16]) -> Result<(), AudioError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    for &s in samples {
        w.write_sample(s)?;
    }
    w.finalize()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_is_measured_at_its_frequency_and_level() {
        let mut t = Tone::new(1000.0, 0.5);
        let s: Vec<i16> = (0..50).flat_map(|_| t.frame()).collect();
        let (hz, level) = analyse(&s);
        assert!((hz - 1000.0).abs() < 0.5, "{hz}");
        // A sine's RMS is its peak over sqrt(2).
        assert!((level - 0.5 / 2f64.sqrt()).abs() < 0.01, "{level}");
        assert_eq!(analyse(&[]), (0.0, 0.0));
        // A disturbed second among four still gives the tone.
        let mut s: Vec<i16> = (0..200).flat_map(|_| t.frame()).collect();
        let mut other = Tone::new(1700.0, 0.1);
        let noise: Vec<i16> = (0..50).flat_map(|_| other.frame()).collect();
        s[48_000..96_000].copy_from_slice(&noise);
        let (hz, level) = analyse_windows(&s);
        assert!((hz - 1000.0).abs() < 0.5, "{hz}");
        assert!((level - 0.5 / 2f64.sqrt()).abs() < 0.01, "{level}");
        assert_eq!(analyse_windows(&s[..100]), (0.0, 0.0));
        assert_eq!(analyse(&[5; 100]).0, 0.0);
    }

    #[test]
    fn opus_round_trip_keeps_the_tone_and_conceals_losses() {
        let mut t = Tone::new(440.0, 0.3);
        let mut enc = OpusEncoder::new().unwrap();
        enc.set_expected_loss(5).unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        let mut out = Vec::new();
        for i in 0..100 {
            let p = enc.encode(&t.frame()).unwrap();
            assert!(p.len() < 400, "{}", p.len());
            let lost = i % 10 == 7;
            let pcm = dec.decode(if lost { None } else { Some(&p) }).unwrap();
            assert_eq!(pcm.len(), FRAME_SAMPLES);
            out.extend(pcm);
        }
        let (hz, level) = analyse(&out[FRAME_SAMPLES * 10..]);
        assert!((hz - 440.0).abs() < 5.0, "{hz}");
        assert!(level > 0.15 && level < 0.3, "{level}");
        assert!(longest_gap_ms(&out[FRAME_SAMPLES * 10..], 300) < 20.0);
        // A code-3 packet claiming 63 frames (over 120 ms) is refused, not decoded.
        assert!(dec.decode(Some(&[0xff; 3])).is_err());
    }

    #[test]
    fn wav_round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.wav");
        let s: Vec<i16> = Tone::new(300.0, 0.2).frame();
        write_wav(&p, &s).unwrap();
        assert_eq!(read_wav(&p).unwrap(), s);
        let q = dir.path().join("8k.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        hound::WavWriter::create(&q, spec)
            .unwrap()
            .finalize()
            .unwrap();
        assert!(matches!(read_wav(&q), Err(AudioError::Unsupported(_))));
        assert!(read_wav(&dir.path().join("missing.wav")).is_err());
    }

    #[test]
    fn gaps_are_found() {
        let mut s = Tone::new(440.0, 0.5).frame();
        s.extend(vec![0i16; 4800]);
        s.extend(Tone::new(440.0, 0.5).frame());
        let g = longest_gap_ms(&s, 100);
        assert!((100.0..102.0).contains(&g), "{g}");
    }
}
