//! Byte-level helpers: little-endian integers and LEB128 varints, with a
//! reader that fails cleanly on short or malformed input.

use super::DecodeError;

/// Appends to a frame being built.
#[derive(Debug, Default)]
pub struct Writer {
    /// The frame so far; take it when done, it is sent as one binary message.
    pub buf: Vec<u8>,
}

impl Writer {
    /// An empty frame with room for `n` bytes, to avoid regrowing for fixed-size frames.
    pub fn with_capacity(n: usize) -> Writer {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }

    /// One byte: a frame type, flags or a mask.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Two bytes, little-endian.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Two bytes, little-endian two's complement.
    pub fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Four bytes, little-endian.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Unsigned LEB128: 1 byte below 128, at most 5.
    pub fn varint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// A signed difference, zigzag-encoded so small magnitudes stay small.
    pub fn zigzag(&mut self, v: i32) {
        self.varint(((v << 1) ^ (v >> 31)) as u32);
    }

    /// Raw bytes with no length prefix (fixed-size fields such as the 16-byte token).
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// A short string: one length byte, then UTF-8 (truncated to 255 bytes
    /// on a character boundary).
    pub fn short_str(&mut self, s: &str) {
        let mut end = s.len().min(255);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.u8(end as u8);
        self.bytes(&s.as_bytes()[..end]);
    }
}

/// Reads a received frame; every read checks the remaining length.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Read `buf` from its first byte (the frame type).
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes, borrowed from the frame; `Truncated` if fewer are left.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated);
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// Two bytes, little-endian.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// Two bytes, little-endian two's complement.
    pub fn i16(&mut self) -> Result<i16, DecodeError> {
        let b = self.take(2)?;
        Ok(i16::from_le_bytes([b[0], b[1]]))
    }

    /// Four bytes, little-endian.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Unsigned LEB128; more than 5 bytes or a value above `u32::MAX` is `Varint`.
    pub fn varint(&mut self) -> Result<u32, DecodeError> {
        let mut v: u32 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.u8()?;
            let part = (b & 0x7f) as u32;
            if shift == 28 && part > 0x0f {
                return Err(DecodeError::Varint);
            }
            v |= part << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Varint)
    }

    /// A signed difference written by [`Writer::zigzag`].
    pub fn zigzag(&mut self) -> Result<i32, DecodeError> {
        let v = self.varint()?;
        Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
    }

    /// A `str8`: one length byte, then that many bytes that must be UTF-8 (else `Utf8`).
    pub fn short_str(&mut self) -> Result<&'a str, DecodeError> {
        let n = self.u8()? as usize;
        std::str::from_utf8(self.take(n)?).map_err(|_| DecodeError::Utf8)
    }

    /// Fails if bytes are left over: a frame is exactly its fields.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(DecodeError::Trailing(self.remaining()))
        }
    }

    /// A count that cannot exceed what the remaining bytes could hold, so a
    /// forged count cannot make us allocate more than the frame's size.
    pub fn count(&mut self, min_item_bytes: usize) -> Result<usize, DecodeError> {
        let n = self.varint()? as usize;
        if n.saturating_mul(min_item_bytes.max(1)) > self.remaining() {
            return Err(DecodeError::Count(n));
        }
        Ok(n)
    }
}
