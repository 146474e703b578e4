//! Bounds-checked big-endian readers and writers over byte slices.
//!
//! Every decoder in this crate goes through [`Reader`], so malformed or short
//! input turns into a [`Short`] error instead of a panic; encoders use
//! [`Writer`], which refuses to write past the end of the caller's buffer.

/// The buffer ended before the requested field (or had no room for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short;

/// Sequential, bounds-checked reader of big-endian fields.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Start reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The unread tail of the buffer (consumes it).
    pub fn rest(&mut self) -> &'a [u8] {
        let tail = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        tail
    }

    /// Take the next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Short> {
        let end = self.pos.checked_add(n).ok_or(Short)?;
        let s = self.buf.get(self.pos..end).ok_or(Short)?;
        self.pos = end;
        Ok(s)
    }

    /// Take the next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Short> {
        let s = self.bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Skip `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), Short> {
        self.bytes(n).map(|_| ())
    }

    /// Read a `u8`.
    pub fn u8(&mut self) -> Result<u8, Short> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    /// Read a signed byte.
    pub fn i8(&mut self) -> Result<i8, Short> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    /// Read a big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, Short> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Read a big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, Short> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Read a big-endian `i32`.
    pub fn i32(&mut self) -> Result<i32, Short> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    /// Read a big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, Short> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

/// Sequential, bounds-checked writer of big-endian fields.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    /// Start writing at the beginning of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Room left in the buffer.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Append raw bytes.
    pub fn bytes(&mut self, data: &[u8]) -> Result<(), Short> {
        let end = self.pos.checked_add(data.len()).ok_or(Short)?;
        let dst = self.buf.get_mut(self.pos..end).ok_or(Short)?;
        dst.copy_from_slice(data);
        self.pos = end;
        Ok(())
    }

    /// Append `n` zero bytes.
    pub fn zeros(&mut self, n: usize) -> Result<(), Short> {
        let end = self.pos.checked_add(n).ok_or(Short)?;
        let dst = self.buf.get_mut(self.pos..end).ok_or(Short)?;
        dst.fill(0);
        self.pos = end;
        Ok(())
    }

    /// Append a `u8`.
    pub fn u8(&mut self, v: u8) -> Result<(), Short> {
        self.bytes(&[v])
    }

    /// Append a signed byte.
    pub fn i8(&mut self, v: i8) -> Result<(), Short> {
        self.bytes(&v.to_be_bytes())
    }

    /// Append a big-endian `u16`.
    pub fn u16(&mut self, v: u16) -> Result<(), Short> {
        self.bytes(&v.to_be_bytes())
    }

    /// Append a big-endian `u32`.
    pub fn u32(&mut self, v: u32) -> Result<(), Short> {
        self.bytes(&v.to_be_bytes())
    }

    /// Append a big-endian `i32`.
    pub fn i32(&mut self, v: i32) -> Result<(), Short> {
        self.bytes(&v.to_be_bytes())
    }

    /// Append a big-endian `u64`.
    pub fn u64(&mut self, v: u64) -> Result<(), Short> {
        self.bytes(&v.to_be_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_stops_at_end() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16(), Ok(0x0102));
        assert_eq!(r.u16(), Err(Short));
        assert_eq!(r.u8(), Ok(3));
        assert_eq!(r.u8(), Err(Short));
        assert_eq!(r.bytes(usize::MAX), Err(Short));
    }

    #[test]
    fn writer_stops_at_end() {
        let mut buf = [0u8; 5];
        let mut w = Writer::new(&mut buf);
        assert_eq!(w.u32(0xdead_beef), Ok(()));
        assert_eq!(w.u16(1), Err(Short));
        assert_eq!(w.u8(7), Ok(()));
        assert_eq!(buf, [0xde, 0xad, 0xbe, 0xef, 7]);
    }
}
