//! Raw video files: YUV4MPEG2 (`.y4m`), the plain container of uncompressed pictures that
//! FFmpeg, libvpx's tools and jamid's file source all read.
//!
//! A file is one header line (`YUV4MPEG2 W320 H240 F15:1 Ip A1:1 C420jpeg`), then for each
//! picture a `FRAME` line and the picture's Y, U and V planes. Only 4:2:0 chroma is taken
//! (`C420`, `C420jpeg`, `C420paldv`, `C420mpeg2`, or no `C` at all), which is what VP8
//! encodes; anything else is refused with a reason, never a panic.

use std::io::{BufRead, Read, Write};

use crate::video::I420Frame;

/// Longest header or `FRAME` line read.
const MAX_LINE: usize = 1024;
/// Largest picture side taken (libvpx's own limit).
const MAX_SIDE: u32 = 16_383;

/// Why a file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum Y4mError {
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Not a YUV4MPEG2 file, or one we do not take.
    #[error("not a usable YUV4MPEG2 file: {0}")]
    Format(String),
}

/// What a file's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Y4mHeader {
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frame rate as a fraction (numerator, denominator); 25:1 when not given.
    pub rate: (u32, u32),
}

impl Y4mHeader {
    /// Frames a second, rounded, at least 1.
    pub fn fps(&self) -> u32 {
        (self.rate.0 / self.rate.1.max(1)).max(1)
    }
}

fn bad(why: impl Into<String>) -> Y4mError {
    Y4mError::Format(why.into())
}

/// Reads one line (without its `\n`), refusing one longer than [`MAX_LINE`]; `None` at the
/// end of the input.
fn line(r: &mut impl BufRead) -> Result<Option<Vec<u8>>, Y4mError> {
    let mut out = Vec::new();
    let n = r.take(MAX_LINE as u64 + 1).read_until(b'\n', &mut out)?;
    if n == 0 {
        return Ok(None);
    }
    if out.last() != Some(&b'\n') {
        return Err(bad(if n > MAX_LINE {
            "a line too long"
        } else {
            "a truncated line"
        }));
    }
    out.pop();
    Ok(Some(out))
}

/// Reads the pictures of a YUV4MPEG2 stream one by one.
#[derive(Debug)]
pub struct Y4mReader<R> {
    input: R,
    header: Y4mHeader,
}

impl<R: BufRead> Y4mReader<R> {
    /// Reads the header.
    pub fn new(mut input: R) -> Result<Self, Y4mError> {
        let head = line(&mut input)?.ok_or_else(|| bad("empty"))?;
        let head = String::from_utf8(head).map_err(|_| bad("a header that is not text"))?;
        let mut words = head.split(' ');
        if words.next() != Some("YUV4MPEG2") {
            return Err(bad("no YUV4MPEG2 signature"));
        }
        let (mut width, mut height, mut rate) = (None, None, (25, 1));
        for w in words.filter(|w| !w.is_empty()) {
            // The tag is one character, which need not be one byte in a bad file.
            let first = w.chars().next().map_or(0, char::len_utf8);
            let (tag, value) = w.split_at(first);
            match tag {
                "W" => width = value.parse::<u32>().ok(),
                "H" => height = value.parse::<u32>().ok(),
                "F" => {
                    let (n, d) = value
                        .split_once(':')
                        .ok_or_else(|| bad("a bad frame rate"))?;
                    let (n, d) = (n.parse::<u32>(), d.parse::<u32>());
                    match (n, d) {
                        (Ok(n), Ok(d)) if n > 0 && d > 0 => rate = (n, d),
                        _ => return Err(bad("a bad frame rate")),
                    }
                }
                "C" if !value.starts_with("420") => {
                    return Err(bad(format!("chroma {value}: only 4:2:0 is taken")));
                }
                "I" if value != "p" && value != "?" => {
                    return Err(bad("interlaced pictures are not taken"));
                }
                _ => {}
            }
        }
        let (Some(width), Some(height)) = (width, height) else {
            return Err(bad("no picture size"));
        };
        if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
            return Err(bad(format!("a picture of {width}x{height}")));
        }
        Ok(Self {
            input,
            header: Y4mHeader {
                width,
                height,
                rate,
            },
        })
    }

    /// The file's header.
    pub fn header(&self) -> Y4mHeader {
        self.header
    }

    /// The next picture, or `None` at the end of the file.
    pub fn next_frame(&mut self) -> Result<Option<I420Frame>, Y4mError> {
        let Some(l) = line(&mut self.input)? else {
            return Ok(None);
        };
        if !(l == b"FRAME" || l.starts_with(b"FRAME ")) {
            return Err(bad("a picture without its FRAME line"));
        }
        let (w, h) = (self.header.width, self.header.height);
        let size = I420Frame::size(w, h);
        // Grown as the bytes come: a header that claims a huge picture costs only what the
        // file really holds.
        let mut data = Vec::new();
        (&mut self.input).take(size as u64).read_to_end(&mut data)?;
        if data.len() != size {
            return Err(bad("a truncated picture"));
        }
        Ok(Some(I420Frame {
            width: w,
            height: h,
            data,
        }))
    }
}

/// Writes pictures as a YUV4MPEG2 stream.
#[derive(Debug)]
pub struct Y4mWriter<W> {
    output: W,
    header: Y4mHeader,
}

impl<W: Write> Y4mWriter<W> {
    /// Writes the header.
    pub fn new(mut output: W, header: Y4mHeader) -> Result<Self, Y4mError> {
        writeln!(
            output,
            "YUV4MPEG2 W{} H{} F{}:{} Ip A1:1 C420jpeg",
            header.width, header.height, header.rate.0, header.rate.1
        )?;
        Ok(Self { output, header })
    }

    /// Goes on writing pictures after those already in `output`, whose header said
    /// `header` (nothing is written now).
    pub fn resume(output: W, header: Y4mHeader) -> Self {
        Self { output, header }
    }

    /// Writes one picture; it must have the header's size.
    pub fn write(&mut self, frame: &I420Frame) -> Result<(), Y4mError> {
        if (frame.width, frame.height) != (self.header.width, self.header.height)
            || frame.data.len() != I420Frame::size(frame.width, frame.height)
        {
            return Err(bad(format!(
                "a {}x{} picture in a {}x{} file",
                frame.width, frame.height, self.header.width, self.header.height
            )));
        }
        self.output.write_all(b"FRAME\n")?;
        self.output.write_all(&frame.data)?;
        Ok(())
    }

    /// Flushes and gives the output back.
    pub fn finish(mut self) -> Result<W, Y4mError> {
        self.output.flush()?;
        Ok(self.output)
    }
}

/// Reads a whole `.y4m` file: its header and pictures (at most `max_frames`).
pub fn read_file(
    path: &std::path::Path,
    max_frames: usize,
) -> Result<(Y4mHeader, Vec<I420Frame>), Y4mError> {
    let f = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut r = Y4mReader::new(f)?;
    let mut frames = Vec::new();
    while frames.len() < max_frames {
        match r.next_frame()? {
            Some(p) => frames.push(p),
            None => break,
        }
    }
    if frames.is_empty() {
        return Err(bad("no picture"));
    }
    Ok((r.header(), frames))
}

/// Writes `frames` to a `.y4m` file.
pub fn write_file(
    path: &std::path::Path,
    header: Y4mHeader,
    frames: &[I420Frame],
) -> Result<(), Y4mError> {
    let f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut w = Y4mWriter::new(f, header)?;
    for p in frames {
        w.write(p)?;
    }
    w.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::test_pattern;

    #[test]
    fn pictures_come_back_as_written() {
        let header = Y4mHeader {
            width: 64,
            height: 48,
            rate: (30000, 1001),
        };
        let frames: Vec<_> = (0..3).map(|n| test_pattern(64, 48, n)).collect();
        let mut w = Y4mWriter::new(Vec::new(), header).unwrap();
        for f in &frames {
            w.write(f).unwrap();
        }
        assert!(w.write(&test_pattern(32, 32, 0)).is_err());
        let bytes = w.finish().unwrap();
        assert!(bytes.starts_with(b"YUV4MPEG2 W64 H48 F30000:1001 "));
        let mut r = Y4mReader::new(&bytes[..]).unwrap();
        assert_eq!(r.header(), header);
        assert_eq!(r.header().fps(), 29);
        for f in &frames {
            assert_eq!(r.next_frame().unwrap().as_ref(), Some(f));
        }
        assert!(r.next_frame().unwrap().is_none());
        // Frame lines may carry parameters; a missing rate means 25 fps.
        let mut other = b"YUV4MPEG2 H2 W2\nFRAME Ixyz\n".to_vec();
        other.extend([1, 2, 3, 4, 5, 6]);
        let mut r = Y4mReader::new(&other[..]).unwrap();
        assert_eq!(r.header().rate, (25, 1));
        assert_eq!(
            r.next_frame().unwrap().unwrap().data,
            vec![1, 2, 3, 4, 5, 6]
        );
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let cases: &[&[u8]] = &[
            b"",
            b"RIFF....",
            b"YUV4MPEG2 W320\n",
            b"YUV4MPEG2 W0 H10\n",
            b"YUV4MPEG2 W99999 H10\n",
            b"YUV4MPEG2 W2 H2 C444\n",
            b"YUV4MPEG2 W2 H2 It\n",
            b"YUV4MPEG2 W2 H2 F0:0\n",
            b"YUV4MPEG2 W2 H2 Fx\n",
            b"YUV4MPEG2 W2 H2",
            "YUV4MPEG2 \u{e9}2 W2 H2 C\u{e9}\n".as_bytes(),
            &[b'Y'; 5000],
        ];
        for c in cases {
            assert!(
                matches!(Y4mReader::new(*c), Err(Y4mError::Format(_))),
                "{:?}",
                String::from_utf8_lossy(&c[..c.len().min(40)])
            );
        }
        // A header that claims the largest picture, then a few bytes: refused, having read
        // only those.
        let mut huge = b"YUV4MPEG2 W16383 H16383\nFRAME\n".to_vec();
        huge.extend([0; 100]);
        let mut r = Y4mReader::new(&huge[..]).unwrap();
        assert!(matches!(r.next_frame(), Err(Y4mError::Format(_))));
        // Pictures cut short, or without their FRAME line.
        for body in [&b"FRAME\n\x01\x02"[..], b"FRAMEX\n123456", b"FRAME"] {
            let mut f = b"YUV4MPEG2 W2 H2\n".to_vec();
            f.extend(body);
            let mut r = Y4mReader::new(&f[..]).unwrap();
            assert!(
                matches!(r.next_frame(), Err(Y4mError::Format(_))),
                "{body:?}"
            );
        }
    }
}
