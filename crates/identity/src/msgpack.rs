//! msgpack as the Jami programs write it (msgpack-c: smallest encodings, `str` keys, `bin`
//! for bytes), written and read with `rmp`. Shared by the Jami crates for values,
//! announcements and DHT messages.
//!
//! The [`Reader`] never panics and never allocates from a length it has not checked against
//! the remaining input: every malformed or truncated input is a [`DecodeError`].

use rmp::Marker;

/// msgpack input could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("msgpack: {0}")]
pub struct DecodeError(pub String);

fn err(e: impl std::fmt::Display) -> DecodeError {
    DecodeError(e.to_string())
}

impl From<DecodeError> for crate::Error {
    fn from(e: DecodeError) -> Self {
        crate::error::malformed("msgpack", e.0)
    }
}

/// Writes a map header.
pub fn map(out: &mut Vec<u8>, len: u32) {
    let _ = rmp::encode::write_map_len(out, len);
}
/// Writes an array header.
pub fn array(out: &mut Vec<u8>, len: u32) {
    let _ = rmp::encode::write_array_len(out, len);
}
/// Writes a string.
pub fn str(out: &mut Vec<u8>, s: &str) {
    let _ = rmp::encode::write_str(out, s);
}
/// Writes a byte string (`bin`).
pub fn bin(out: &mut Vec<u8>, b: &[u8]) {
    let _ = rmp::encode::write_bin(out, b);
}
/// Writes an unsigned integer in its smallest encoding.
pub fn uint(out: &mut Vec<u8>, v: u64) {
    let _ = rmp::encode::write_uint(out, v);
}
/// Writes a signed integer in its smallest encoding (positive values as unsigned).
pub fn int(out: &mut Vec<u8>, v: i64) {
    let _ = rmp::encode::write_sint(out, v);
}
/// Writes a boolean.
pub fn bool(out: &mut Vec<u8>, v: bool) {
    let _ = rmp::encode::write_bool(out, v);
}

/// The kind of the next value, for decoders that accept several types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// nil
    Nil,
    /// true/false
    Bool,
    /// any integer
    Int,
    /// float
    Float,
    /// str
    Str,
    /// bin
    Bin,
    /// array
    Array,
    /// map
    Map,
    /// ext
    Ext,
}

/// A cursor over msgpack bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads from `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(err("truncated"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    /// The kind of the next value, without consuming it.
    pub fn peek(&self) -> Result<Kind, DecodeError> {
        let first = *self.buf.first().ok_or_else(|| err("truncated"))?;
        Ok(match Marker::from_u8(first) {
            Marker::Null => Kind::Nil,
            Marker::True | Marker::False => Kind::Bool,
            Marker::FixPos(_) | Marker::FixNeg(_) => Kind::Int,
            Marker::U8 | Marker::U16 | Marker::U32 | Marker::U64 => Kind::Int,
            Marker::I8 | Marker::I16 | Marker::I32 | Marker::I64 => Kind::Int,
            Marker::F32 | Marker::F64 => Kind::Float,
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => Kind::Str,
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => Kind::Bin,
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => Kind::Array,
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => Kind::Map,
            _ => Kind::Ext,
        })
    }

    /// A map header: the number of key/value pairs.
    pub fn map_len(&mut self) -> Result<u32, DecodeError> {
        let n = rmp::decode::read_map_len(&mut self.buf).map_err(err)?;
        self.check_count(u64::from(n) * 2)?;
        Ok(n)
    }

    /// An array header: the number of elements.
    pub fn array_len(&mut self) -> Result<u32, DecodeError> {
        let n = rmp::decode::read_array_len(&mut self.buf).map_err(err)?;
        self.check_count(u64::from(n))?;
        Ok(n)
    }

    /// Every element takes at least one byte: a count larger than the input is a lie.
    fn check_count(&self, n: u64) -> Result<(), DecodeError> {
        if n > self.buf.len() as u64 {
            return Err(err("truncated"));
        }
        Ok(())
    }

    /// A string.
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        let n = rmp::decode::read_str_len(&mut self.buf).map_err(err)?;
        std::str::from_utf8(self.take(n as usize)?).map_err(err)
    }

    /// A byte string (`bin`).
    pub fn bin(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = rmp::decode::read_bin_len(&mut self.buf).map_err(err)?;
        self.take(n as usize)
    }

    /// Bytes given as `bin` or `str` (msgpack-c readers accept both).
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        match self.peek()? {
            Kind::Str => {
                let n = rmp::decode::read_str_len(&mut self.buf).map_err(err)?;
                self.take(n as usize)
            }
            _ => self.bin(),
        }
    }

    /// An unsigned integer (any integer encoding with a non-negative value).
    pub fn uint(&mut self) -> Result<u64, DecodeError> {
        rmp::decode::read_int(&mut self.buf).map_err(err)
    }

    /// A signed integer.
    pub fn int(&mut self) -> Result<i64, DecodeError> {
        rmp::decode::read_int(&mut self.buf).map_err(err)
    }

    /// A boolean.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        rmp::decode::read_bool(&mut self.buf).map_err(err)
    }

    /// Skips one value of any type, however nested.
    pub fn skip(&mut self) -> Result<(), DecodeError> {
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            let marker =
                rmp::decode::read_marker(&mut self.buf).map_err(|e| err(format!("{e:?}")))?;
            let be = |r: &mut Self, n: usize| -> Result<u64, DecodeError> {
                Ok(r.take(n)?
                    .iter()
                    .fold(0u64, |a, &b| (a << 8) | u64::from(b)))
            };
            let skip = match marker {
                Marker::FixPos(_)
                | Marker::FixNeg(_)
                | Marker::Null
                | Marker::True
                | Marker::False => 0,
                Marker::U8 | Marker::I8 => 1,
                Marker::U16 | Marker::I16 => 2,
                Marker::U32 | Marker::I32 | Marker::F32 => 4,
                Marker::U64 | Marker::I64 | Marker::F64 => 8,
                Marker::FixStr(n) => u64::from(n),
                Marker::Str8 | Marker::Bin8 => be(self, 1)?,
                Marker::Str16 | Marker::Bin16 => be(self, 2)?,
                Marker::Str32 | Marker::Bin32 => be(self, 4)?,
                Marker::FixArray(n) => {
                    pending += u64::from(n);
                    0
                }
                Marker::Array16 => {
                    pending += be(self, 2)?;
                    0
                }
                Marker::Array32 => {
                    pending += be(self, 4)?;
                    0
                }
                Marker::FixMap(n) => {
                    pending += 2 * u64::from(n);
                    0
                }
                Marker::Map16 => {
                    pending += 2 * be(self, 2)?;
                    0
                }
                Marker::Map32 => {
                    pending += 2 * be(self, 4)?;
                    0
                }
                Marker::FixExt1 => 2,
                Marker::FixExt2 => 3,
                Marker::FixExt4 => 5,
                Marker::FixExt8 => 9,
                Marker::FixExt16 => 17,
                Marker::Ext8 => be(self, 1)? + 1,
                Marker::Ext16 => be(self, 2)? + 1,
                Marker::Ext32 => be(self, 4)? + 1,
                Marker::Reserved => return Err(err("reserved marker")),
            };
            if skip > self.buf.len() as u64 {
                return Err(err("truncated"));
            }
            self.take(skip as usize)?;
            self.check_count(pending)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_skip() {
        let mut out = Vec::new();
        map(&mut out, 3);
        str(&mut out, "a");
        array(&mut out, 2);
        int(&mut out, -5);
        bool(&mut out, true);
        str(&mut out, "b");
        bin(&mut out, &[1, 2, 3]);
        str(&mut out, "c");
        uint(&mut out, 300);
        let mut r = Reader::new(&out);
        assert_eq!(r.map_len().unwrap(), 3);
        assert_eq!(r.str().unwrap(), "a");
        assert_eq!(r.peek().unwrap(), Kind::Array);
        r.skip().unwrap();
        assert_eq!(r.str().unwrap(), "b");
        assert_eq!(r.bytes().unwrap(), &[1, 2, 3]);
        assert_eq!(r.str().unwrap(), "c");
        assert_eq!(r.uint().unwrap(), 300);
        assert!(r.remaining().is_empty());
        for n in 0..out.len() {
            assert!(Reader::new(&out[..n]).skip().is_err(), "truncated at {n}");
        }
        // A huge declared count with no bytes behind it is refused up front.
        assert!(
            Reader::new(&[0xdd, 0xff, 0xff, 0xff, 0xff])
                .array_len()
                .is_err()
        );
    }
}
