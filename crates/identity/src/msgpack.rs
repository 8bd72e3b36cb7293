//! The few msgpack primitives the identity structures need, written and read with `rmp`.
//! Every read is bounds-checked and returns an error on malformed input.

use rmp::Marker;

use crate::error::{Error, Result, malformed};

pub(crate) fn map(out: &mut Vec<u8>, len: u32) {
    let _ = rmp::encode::write_map_len(out, len);
}
pub(crate) fn str(out: &mut Vec<u8>, s: &str) {
    let _ = rmp::encode::write_str(out, s);
}
pub(crate) fn bin(out: &mut Vec<u8>, b: &[u8]) {
    let _ = rmp::encode::write_bin(out, b);
}
pub(crate) fn uint(out: &mut Vec<u8>, v: u64) {
    let _ = rmp::encode::write_uint(out, v);
}

/// A cursor over msgpack bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

fn err(e: impl std::fmt::Display) -> Error {
    malformed("msgpack", e)
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(err("truncated"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    pub(crate) fn map_len(&mut self) -> Result<u32> {
        rmp::decode::read_map_len(&mut self.buf).map_err(err)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str> {
        let n = rmp::decode::read_str_len(&mut self.buf).map_err(err)?;
        std::str::from_utf8(self.take(n as usize)?).map_err(err)
    }

    pub(crate) fn bin(&mut self) -> Result<&'a [u8]> {
        let n = rmp::decode::read_bin_len(&mut self.buf).map_err(err)?;
        self.take(n as usize)
    }

    pub(crate) fn uint(&mut self) -> Result<u64> {
        rmp::decode::read_int(&mut self.buf).map_err(err)
    }

    /// Skips one value of any type.
    pub(crate) fn skip(&mut self) -> Result<()> {
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            let marker =
                rmp::decode::read_marker(&mut self.buf).map_err(|e| err(format!("{e:?}")))?;
            let be = |r: &mut Self, n: usize| -> Result<u64> {
                Ok(r.take(n)?
                    .iter()
                    .fold(0u64, |a, &b| (a << 8) | u64::from(b)))
            };
            match marker {
                Marker::FixPos(_)
                | Marker::FixNeg(_)
                | Marker::Null
                | Marker::True
                | Marker::False => {}
                Marker::U8 | Marker::I8 => {
                    self.take(1)?;
                }
                Marker::U16 | Marker::I16 => {
                    self.take(2)?;
                }
                Marker::U32 | Marker::I32 | Marker::F32 => {
                    self.take(4)?;
                }
                Marker::U64 | Marker::I64 | Marker::F64 => {
                    self.take(8)?;
                }
                Marker::FixStr(n) => {
                    self.take(n as usize)?;
                }
                Marker::Str8 | Marker::Bin8 => {
                    let n = be(self, 1)?;
                    self.take(n as usize)?;
                }
                Marker::Str16 | Marker::Bin16 => {
                    let n = be(self, 2)?;
                    self.take(n as usize)?;
                }
                Marker::Str32 | Marker::Bin32 => {
                    let n = be(self, 4)?;
                    self.take(n as usize)?;
                }
                Marker::FixArray(n) => pending += u64::from(n),
                Marker::Array16 => pending += be(self, 2)?,
                Marker::Array32 => pending += be(self, 4)?,
                Marker::FixMap(n) => pending += 2 * u64::from(n),
                Marker::Map16 => pending += 2 * be(self, 2)?,
                Marker::Map32 => pending += 2 * be(self, 4)?,
                Marker::FixExt1 => {
                    self.take(2)?;
                }
                Marker::FixExt2 => {
                    self.take(3)?;
                }
                Marker::FixExt4 => {
                    self.take(5)?;
                }
                Marker::FixExt8 => {
                    self.take(9)?;
                }
                Marker::FixExt16 => {
                    self.take(17)?;
                }
                Marker::Ext8 => {
                    let n = be(self, 1)?;
                    self.take(n as usize + 1)?;
                }
                Marker::Ext16 => {
                    let n = be(self, 2)?;
                    self.take(n as usize + 1)?;
                }
                Marker::Ext32 => {
                    let n = be(self, 4)?;
                    self.take(n as usize + 1)?;
                }
                Marker::Reserved => return Err(err("reserved marker")),
            }
            if pending > self.buf.len() as u64 {
                return Err(err("truncated"));
            }
        }
        Ok(())
    }
}
