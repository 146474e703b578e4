// SPDX-License-Identifier: GPL-2.0-only
//! Netlink attribute codec over byte slices: no allocation, no `unsafe`, no
//! panics on any input.
//!
//! An attribute is `u16 nla_len | u16 nla_type | payload | padding to 4`,
//! where `nla_len` counts header and payload but not the padding. The two top
//! bits of `nla_type` are flags: [`NLA_F_NESTED`] (set on nests by drbd-utils
//! and by [`NlaWriter::nest_start`], not by DRBD's kernel; both are accepted)
//! and [`NLA_F_NET_BYTEORDER`], which DRBD reuses as "mandatory"
//! (`DRBD_GENLA_F_MANDATORY`: a receiver that does not know the attribute must
//! reject the request). Numbers are in host byte order.
//!
//! Decoding: [`iter`] walks one level of attributes, [`find`] looks one up,
//! and the `as_*` getters of [`Attr`] check sizes and types. Encoding:
//! [`NlaWriter`] appends attributes to a caller-provided buffer and reports
//! [`NlaError::NoSpace`] instead of overflowing.
//!
//! The fixed headers in front of the attributes (`genlmsghdr` and DRBD's
//! `drbd_genlmsghdr`) are handled by [`GenlHeader`] and [`DrbdHeader`].

/// Size of an attribute header.
pub const NLA_HDRLEN: usize = 4;
/// Alignment of attributes.
pub const NLA_ALIGNTO: usize = 4;
/// `nla_type` flag: the payload is a sequence of attributes.
pub const NLA_F_NESTED: u16 = 0x8000;
/// `nla_type` flag: network byte order; DRBD uses this bit as "mandatory".
pub const NLA_F_NET_BYTEORDER: u16 = 0x4000;
/// Mask of the type number in `nla_type`.
pub const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);
/// Largest payload an attribute can carry (`nla_len` is a u16).
pub const NLA_MAX_PAYLOAD: usize = u16::MAX as usize - NLA_HDRLEN;

/// Rounds `len` up to the attribute alignment (saturating near `usize::MAX`).
pub const fn align(len: usize) -> usize {
    match len.checked_add(NLA_ALIGNTO - 1) {
        Some(v) => v & !(NLA_ALIGNTO - 1),
        None => usize::MAX & !(NLA_ALIGNTO - 1),
    }
}

/// Errors of the codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NlaError {
    /// Fewer bytes left than an attribute header, or than `nla_len` says.
    Truncated,
    /// `nla_len` is smaller than the attribute header.
    BadLength,
    /// The payload has the wrong size for the requested type.
    WrongSize,
    /// A string attribute has no terminating NUL.
    NotNulTerminated,
    /// A string or binary attribute is longer than allowed.
    TooLong,
    /// A string attribute is not valid UTF-8.
    InvalidUtf8,
    /// The encoder's buffer is full.
    NoSpace,
    /// A nest mark does not belong to the current state of the writer.
    BadNest,
}

impl NlaError {
    /// The errno a kernel handler should return for this error (positive).
    pub const fn errno(self) -> i32 {
        match self {
            NlaError::Truncated | NlaError::BadLength | NlaError::WrongSize => 22, // EINVAL
            NlaError::NotNulTerminated | NlaError::InvalidUtf8 | NlaError::BadNest => 22,
            NlaError::TooLong => 34, // ERANGE
            NlaError::NoSpace => 90, // EMSGSIZE
        }
    }

    /// A short description for logs and info texts.
    pub const fn text(self) -> &'static str {
        match self {
            NlaError::Truncated => "attribute truncated",
            NlaError::BadLength => "attribute length smaller than its header",
            NlaError::WrongSize => "attribute payload has the wrong size",
            NlaError::NotNulTerminated => "string attribute not NUL terminated",
            NlaError::TooLong => "attribute too long",
            NlaError::InvalidUtf8 => "string attribute is not valid UTF-8",
            NlaError::NoSpace => "message buffer too small",
            NlaError::BadNest => "unbalanced attribute nest",
        }
    }
}

impl core::fmt::Display for NlaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.text())
    }
}

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes([s[0], s[1]]))
}

/// One decoded attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    /// Type number with the flag bits masked off.
    pub kind: u16,
    /// [`NLA_F_NESTED`] was set.
    pub nested: bool,
    /// [`NLA_F_NET_BYTEORDER`] (DRBD: mandatory) was set.
    pub mandatory: bool,
    /// The payload (without padding).
    pub payload: &'a [u8],
}

impl<'a> Attr<'a> {
    fn fixed<const N: usize>(&self) -> Result<[u8; N], NlaError> {
        self.payload.try_into().map_err(|_| NlaError::WrongSize)
    }

    /// NLA_U8 payload.
    pub fn as_u8(&self) -> Result<u8, NlaError> {
        Ok(u8::from_ne_bytes(self.fixed::<1>()?))
    }

    /// NLA_U16 payload.
    pub fn as_u16(&self) -> Result<u16, NlaError> {
        Ok(u16::from_ne_bytes(self.fixed::<2>()?))
    }

    /// NLA_U32 payload.
    pub fn as_u32(&self) -> Result<u32, NlaError> {
        Ok(u32::from_ne_bytes(self.fixed::<4>()?))
    }

    /// NLA_U32 payload read as signed (DRBD's s32 members).
    pub fn as_i32(&self) -> Result<i32, NlaError> {
        Ok(i32::from_ne_bytes(self.fixed::<4>()?))
    }

    /// NLA_U64 payload.
    pub fn as_u64(&self) -> Result<u64, NlaError> {
        Ok(u64::from_ne_bytes(self.fixed::<8>()?))
    }

    /// A DRBD flag: an NLA_U8 (non-zero = set), or an empty NLA_FLAG (set).
    pub fn as_flag(&self) -> Result<bool, NlaError> {
        match self.payload {
            [] => Ok(true),
            [v] => Ok(*v != 0),
            _ => Err(NlaError::WrongSize),
        }
    }

    /// NLA_NUL_STRING payload: the bytes before the first NUL, which must be
    /// valid UTF-8. `max_len` counts the NUL (the size of DRBD's C buffer);
    /// 0 means unlimited.
    pub fn as_str(&self, max_len: usize) -> Result<&'a str, NlaError> {
        let end = self
            .payload
            .iter()
            .position(|&b| b == 0)
            .ok_or(NlaError::NotNulTerminated)?;
        if max_len != 0 && end >= max_len {
            return Err(NlaError::TooLong);
        }
        let bytes = self.payload.get(..end).ok_or(NlaError::Truncated)?;
        core::str::from_utf8(bytes).map_err(|_| NlaError::InvalidUtf8)
    }

    /// NLA_BINARY payload of at most `max_len` bytes (0 = unlimited).
    pub fn as_bytes(&self, max_len: usize) -> Result<&'a [u8], NlaError> {
        if max_len != 0 && self.payload.len() > max_len {
            return Err(NlaError::TooLong);
        }
        Ok(self.payload)
    }

    /// The attributes nested in this one (whether or not NLA_F_NESTED was set).
    pub fn nested(&self) -> AttrIter<'a> {
        iter(self.payload)
    }
}

/// Iterator over one level of attributes; yields `Err` once and then stops
/// when the buffer is malformed.
#[derive(Debug, Clone)]
pub struct AttrIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

/// Walks the attributes in `buf`.
pub fn iter(buf: &[u8]) -> AttrIter<'_> {
    AttrIter {
        rest: buf,
        failed: false,
    }
}

impl<'a> Iterator for AttrIter<'a> {
    type Item = Result<Attr<'a>, NlaError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let res = decode_one(self.rest);
        match res {
            Ok((attr, rest)) => {
                self.rest = rest;
                Some(Ok(attr))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

fn decode_one(buf: &[u8]) -> Result<(Attr<'_>, &[u8]), NlaError> {
    let len = read_u16(buf, 0).ok_or(NlaError::Truncated)? as usize;
    let ty = read_u16(buf, 2).ok_or(NlaError::Truncated)?;
    if len < NLA_HDRLEN {
        return Err(NlaError::BadLength);
    }
    let payload = buf.get(NLA_HDRLEN..len).ok_or(NlaError::Truncated)?;
    // The padding of the last attribute may be missing.
    let rest = buf.get(align(len)..).unwrap_or(&[]);
    Ok((
        Attr {
            kind: ty & NLA_TYPE_MASK,
            nested: ty & NLA_F_NESTED != 0,
            mandatory: ty & NLA_F_NET_BYTEORDER != 0,
            payload,
        },
        rest,
    ))
}

/// The first attribute of type `kind` (flags ignored) in `buf`.
///
/// Returns `Ok(None)` if there is none, and an error if the buffer is
/// malformed before (or at) the point where it would be found.
pub fn find(buf: &[u8], kind: u16) -> Result<Option<Attr<'_>>, NlaError> {
    for a in iter(buf) {
        let a = a?;
        if a.kind == kind & NLA_TYPE_MASK {
            return Ok(Some(a));
        }
    }
    Ok(None)
}

/// Checks that `buf` is a well-formed sequence of attributes (one level).
pub fn validate(buf: &[u8]) -> Result<(), NlaError> {
    for a in iter(buf) {
        a?;
    }
    Ok(())
}

/// Position of an open nest, returned by [`NlaWriter::nest_start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a nest must be closed with nest_end or dropped with nest_cancel"]
pub struct NestMark {
    offset: usize,
}

/// Appends attributes to a caller-provided buffer.
#[derive(Debug)]
pub struct NlaWriter<'a> {
    /// The output buffer.
    pub buf: &'a mut [u8],
    /// Bytes written so far.
    pub len: usize,
}

impl<'a> NlaWriter<'a> {
    /// A writer that starts at the beginning of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        NlaWriter { buf, len: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free bytes left in the buffer.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.len)
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// Appends raw bytes (no attribute header), e.g. a fixed header.
    pub fn put_raw(&mut self, data: &[u8]) -> Result<(), NlaError> {
        let end = self.len.checked_add(data.len()).ok_or(NlaError::NoSpace)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(NlaError::NoSpace)?;
        dst.copy_from_slice(data);
        self.len = end;
        Ok(())
    }

    fn put_header(&mut self, kind: u16, len: u16) -> Result<(), NlaError> {
        let mut h = [0u8; NLA_HDRLEN];
        h[..2].copy_from_slice(&len.to_ne_bytes());
        h[2..].copy_from_slice(&kind.to_ne_bytes());
        self.put_raw(&h)
    }

    /// Appends an attribute whose payload is the concatenation of `parts`.
    /// `kind` is written as given (callers may OR in flag bits).
    pub fn put_parts(&mut self, kind: u16, parts: &[&[u8]]) -> Result<(), NlaError> {
        let mut plen: usize = 0;
        for p in parts {
            plen = plen.checked_add(p.len()).ok_or(NlaError::TooLong)?;
        }
        if plen > NLA_MAX_PAYLOAD {
            return Err(NlaError::TooLong);
        }
        let total = align(NLA_HDRLEN + plen);
        if total > self.remaining() {
            return Err(NlaError::NoSpace);
        }
        // Cannot fail: plen <= NLA_MAX_PAYLOAD and the space was checked.
        let start = self.len;
        let res = (|| {
            self.put_header(kind, (NLA_HDRLEN + plen) as u16)?;
            for p in parts {
                self.put_raw(p)?;
            }
            let pad = [0u8; NLA_ALIGNTO];
            let padlen = total - NLA_HDRLEN - plen;
            self.put_raw(pad.get(..padlen).unwrap_or(&[]))
        })();
        if res.is_err() {
            self.len = start;
        }
        res
    }

    /// Appends an attribute with payload `data` (NLA_BINARY).
    pub fn put_bytes(&mut self, kind: u16, data: &[u8]) -> Result<(), NlaError> {
        self.put_parts(kind, &[data])
    }

    /// Appends an NLA_U8.
    pub fn put_u8(&mut self, kind: u16, v: u8) -> Result<(), NlaError> {
        self.put_bytes(kind, &[v])
    }

    /// Appends an NLA_U16.
    pub fn put_u16(&mut self, kind: u16, v: u16) -> Result<(), NlaError> {
        self.put_bytes(kind, &v.to_ne_bytes())
    }

    /// Appends an NLA_U32.
    pub fn put_u32(&mut self, kind: u16, v: u32) -> Result<(), NlaError> {
        self.put_bytes(kind, &v.to_ne_bytes())
    }

    /// Appends a signed value as NLA_U32 (DRBD's s32 members).
    pub fn put_i32(&mut self, kind: u16, v: i32) -> Result<(), NlaError> {
        self.put_bytes(kind, &v.to_ne_bytes())
    }

    /// Appends an NLA_U64.
    pub fn put_u64(&mut self, kind: u16, v: u64) -> Result<(), NlaError> {
        self.put_bytes(kind, &v.to_ne_bytes())
    }

    /// Appends an NLA_NUL_STRING (the NUL is added).
    pub fn put_str(&mut self, kind: u16, s: &str) -> Result<(), NlaError> {
        self.put_parts(kind, &[s.as_bytes(), &[0]])
    }

    /// Appends a DRBD flag: an NLA_U8 holding 0 or 1.
    pub fn put_flag(&mut self, kind: u16, v: bool) -> Result<(), NlaError> {
        self.put_u8(kind, u8::from(v))
    }

    /// Opens a nest of type `kind` (NLA_F_NESTED is added).
    pub fn nest_start(&mut self, kind: u16) -> Result<NestMark, NlaError> {
        let offset = self.len;
        self.put_header(kind | NLA_F_NESTED, NLA_HDRLEN as u16)?;
        Ok(NestMark { offset })
    }

    /// Closes a nest: fixes up its length. On error the nest stays open.
    pub fn nest_end(&mut self, mark: NestMark) -> Result<(), NlaError> {
        let hdr_end = mark
            .offset
            .checked_add(NLA_HDRLEN)
            .ok_or(NlaError::BadNest)?;
        if hdr_end > self.len {
            return Err(NlaError::BadNest);
        }
        let len = self.len - mark.offset;
        let len = u16::try_from(len).map_err(|_| NlaError::TooLong)?;
        let dst = self
            .buf
            .get_mut(mark.offset..mark.offset + 2)
            .ok_or(NlaError::BadNest)?;
        dst.copy_from_slice(&len.to_ne_bytes());
        Ok(())
    }

    /// Drops an open nest and everything written after it.
    pub fn nest_cancel(&mut self, mark: NestMark) {
        if mark.offset <= self.len {
            self.len = mark.offset;
        }
    }
}

/// `struct genlmsghdr`: command and version in front of the family header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenlHeader {
    /// Command number.
    pub cmd: u8,
    /// Family version.
    pub version: u8,
}

impl GenlHeader {
    /// Encoded size.
    pub const LEN: usize = super::generated::GENL_HDR_LEN;

    /// Encodes the header (reserved bytes zero).
    pub fn to_bytes(self) -> [u8; 4] {
        [self.cmd, self.version, 0, 0]
    }

    /// Decodes the header at the start of `buf`; returns it and the rest.
    pub fn parse(buf: &[u8]) -> Result<(GenlHeader, &[u8]), NlaError> {
        match buf {
            [cmd, version, _, _, rest @ ..] => Ok((
                GenlHeader {
                    cmd: *cmd,
                    version: *version,
                },
                rest,
            )),
            _ => Err(NlaError::Truncated),
        }
    }
}

/// `struct drbd_genlmsghdr`: the family's user header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrbdHeader {
    /// Minor concerned, or [`super::generated::MINOR_NONE`].
    pub minor: u32,
    /// Requests: flags ([`super::generated::hdr_flags`]); replies: `ret_code`.
    pub flags_or_ret: u32,
}

impl DrbdHeader {
    /// Encoded size.
    pub const LEN: usize = super::generated::DRBD_GENL_HDR_LEN;

    /// A request header.
    pub const fn request(minor: u32, flags: u32) -> Self {
        DrbdHeader {
            minor,
            flags_or_ret: flags,
        }
    }

    /// A reply header carrying `ret_code`.
    pub const fn reply(minor: u32, ret_code: i32) -> Self {
        DrbdHeader {
            minor,
            flags_or_ret: ret_code as u32,
        }
    }

    /// The reply's `ret_code`.
    pub const fn ret_code(self) -> i32 {
        self.flags_or_ret as i32
    }

    /// Encodes the header.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&self.minor.to_ne_bytes());
        b[4..].copy_from_slice(&self.flags_or_ret.to_ne_bytes());
        b
    }

    /// Decodes the header at the start of `buf`; returns it and the rest
    /// (the top-level attributes).
    pub fn parse(buf: &[u8]) -> Result<(DrbdHeader, &[u8]), NlaError> {
        match buf {
            [a, b, c, d, e, f, g, h, rest @ ..] => Ok((
                DrbdHeader {
                    minor: u32::from_ne_bytes([*a, *b, *c, *d]),
                    flags_or_ret: u32::from_ne_bytes([*e, *f, *g, *h]),
                },
                rest,
            )),
            _ => Err(NlaError::Truncated),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn encode_decode_scalars() {
        let mut buf = [0u8; 128];
        let mut w = NlaWriter::new(&mut buf);
        w.put_u8(1, 7).unwrap();
        w.put_u32(2, 0xdead_beef).unwrap();
        w.put_i32(3, -3).unwrap();
        w.put_u64(4, u64::MAX - 1).unwrap();
        w.put_str(5, "r0").unwrap();
        w.put_flag(6, true).unwrap();
        let len = w.len();
        assert_eq!(len % 4, 0);
        let b = &buf[..len];
        assert_eq!(find(b, 1).unwrap().unwrap().as_u8(), Ok(7));
        assert_eq!(find(b, 2).unwrap().unwrap().as_u32(), Ok(0xdead_beef));
        assert_eq!(find(b, 3).unwrap().unwrap().as_i32(), Ok(-3));
        assert_eq!(find(b, 4).unwrap().unwrap().as_u64(), Ok(u64::MAX - 1));
        assert_eq!(find(b, 5).unwrap().unwrap().as_str(128), Ok("r0"));
        assert_eq!(find(b, 6).unwrap().unwrap().as_flag(), Ok(true));
        assert_eq!(find(b, 9).unwrap(), None);
    }

    #[test]
    fn string_layout_and_limits() {
        let mut buf = [0u8; 16];
        let mut w = NlaWriter::new(&mut buf);
        w.put_str(2, "abc").unwrap();
        assert_eq!(w.as_bytes(), &[8, 0, 2, 0, b'a', b'b', b'c', 0]);
        let a = find(w.as_bytes(), 2).unwrap().unwrap();
        assert_eq!(a.as_str(4), Ok("abc"));
        assert_eq!(a.as_str(3), Err(NlaError::TooLong));
        assert_eq!(a.as_str(0), Ok("abc"));
        assert_eq!(a.as_u32(), Ok(u32::from_ne_bytes([b'a', b'b', b'c', 0])));
        assert_eq!(a.as_u8(), Err(NlaError::WrongSize));
    }

    #[test]
    fn bad_strings() {
        let no_nul = [7u8, 0, 1, 0, b'a', b'b', b'c', 0];
        let a = find(&no_nul, 1).unwrap().unwrap();
        assert_eq!(a.as_str(0), Err(NlaError::NotNulTerminated));
        let bad_utf8 = [7u8, 0, 1, 0, 0xff, 0xfe, 0, 0];
        let a = find(&bad_utf8, 1).unwrap().unwrap();
        assert_eq!(a.as_str(0), Err(NlaError::InvalidUtf8));
    }

    #[test]
    fn nests() {
        let mut buf = [0u8; 64];
        let mut w = NlaWriter::new(&mut buf);
        let m = w.nest_start(2).unwrap();
        w.put_u32(1, 5).unwrap();
        w.put_str(2, "res").unwrap();
        w.nest_end(m).unwrap();
        w.put_u32(9, 1).unwrap();
        let b = w.as_bytes();
        let n = find(b, 2).unwrap().unwrap();
        assert!(n.nested);
        let inner: Vec<_> = n.nested().map(|a| a.unwrap().kind).collect();
        assert_eq!(inner, [1, 2]);
        assert_eq!(find(n.payload, 2).unwrap().unwrap().as_str(128), Ok("res"));
        assert_eq!(find(b, 9).unwrap().unwrap().as_u32(), Ok(1));
    }

    #[test]
    fn nest_cancel_rewinds() {
        let mut buf = [0u8; 64];
        let mut w = NlaWriter::new(&mut buf);
        w.put_u8(1, 1).unwrap();
        let before = w.len();
        let m = w.nest_start(2).unwrap();
        w.put_u32(1, 5).unwrap();
        w.nest_cancel(m);
        assert_eq!(w.len(), before);
    }

    #[test]
    fn no_space_leaves_writer_unchanged() {
        let mut buf = [0u8; 10];
        let mut w = NlaWriter::new(&mut buf);
        w.put_u32(1, 1).unwrap();
        assert_eq!(w.put_u32(2, 2), Err(NlaError::NoSpace));
        assert_eq!(w.len(), 8);
        assert_eq!(w.put_u8(2, 2), Err(NlaError::NoSpace));
        assert_eq!(w.len(), 8);
        assert_eq!(w.nest_start(3), Err(NlaError::NoSpace));
    }

    #[test]
    fn too_long_payload() {
        let big = [0u8; 70000];
        let mut buf = [0u8; 90000];
        let mut w = NlaWriter::new(&mut buf);
        assert_eq!(w.put_bytes(1, &big), Err(NlaError::TooLong));
        let m = w.nest_start(1).unwrap();
        for _ in 0..2 {
            w.put_bytes(2, &big[..40000]).unwrap();
        }
        assert_eq!(w.nest_end(m), Err(NlaError::TooLong));
    }

    #[test]
    fn malformed_inputs() {
        assert_eq!(validate(&[1, 0]), Err(NlaError::Truncated));
        assert_eq!(validate(&[2, 0, 1, 0]), Err(NlaError::BadLength));
        assert_eq!(
            validate(&[9, 0, 1, 0, 1, 2, 3, 4]),
            Err(NlaError::Truncated)
        );
        assert_eq!(validate(&[]), Ok(()));
        // Last attribute without its padding is accepted.
        assert_eq!(validate(&[5, 0, 1, 0, 9]), Ok(()));
        // The iterator stops after the first error.
        assert_eq!(iter(&[2, 0, 1, 0, 8, 0, 1, 0]).count(), 1);
    }

    #[test]
    fn flags_are_masked() {
        let b = [5u8, 0, 0x03, 0xc0, 1, 0, 0, 0];
        let a = find(&b, 3).unwrap().unwrap();
        assert!(a.nested && a.mandatory);
        assert_eq!(a.kind, 3);
        assert_eq!(find(&b, 3 | NLA_F_NET_BYTEORDER).unwrap().unwrap().kind, 3);
    }

    #[test]
    fn flag_forms() {
        assert_eq!(
            Attr {
                kind: 1,
                nested: false,
                mandatory: false,
                payload: &[]
            }
            .as_flag(),
            Ok(true)
        );
        assert_eq!(
            Attr {
                kind: 1,
                nested: false,
                mandatory: false,
                payload: &[0]
            }
            .as_flag(),
            Ok(false)
        );
        assert_eq!(
            Attr {
                kind: 1,
                nested: false,
                mandatory: false,
                payload: &[0, 0]
            }
            .as_flag(),
            Err(NlaError::WrongSize)
        );
    }

    #[test]
    fn headers() {
        let h = DrbdHeader::reply(3, -12);
        let b = h.to_bytes();
        let (p, rest) = DrbdHeader::parse(&b).unwrap();
        assert_eq!(p.ret_code(), -12);
        assert_eq!(p.minor, 3);
        assert!(rest.is_empty());
        assert_eq!(DrbdHeader::parse(&b[..7]), Err(NlaError::Truncated));
        let g = GenlHeader {
            cmd: 38,
            version: 2,
        };
        assert_eq!(GenlHeader::parse(&g.to_bytes()).unwrap().0, g);
        assert_eq!(GenlHeader::parse(&[1, 2, 3]), Err(NlaError::Truncated));
    }

    #[test]
    fn align_saturates() {
        assert_eq!(align(0), 0);
        assert_eq!(align(5), 8);
        assert_eq!(align(usize::MAX) % 4, 0);
    }
}
