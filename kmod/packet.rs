//! Packet framing on a replication stream: a DRBD header (h80/h95/h100 from `proto::wire`)
//! and its payload, sent gathered and received with length limits.

use crate::proto::wire::{Header, HeaderKind};
use crate::sys::socket::Socket;
use kernel::prelude::*;

/// Sends one packet made of `parts` (at most three payload parts).
pub(crate) fn send(
    sock: &Socket,
    kind: HeaderKind,
    cmd: u16,
    volume: u16,
    parts: &[&[u8]],
) -> Result {
    send_corked(sock, kind, cmd, volume, parts, false)
}

/// Sends one packet; with `more`, its last bytes stay corked for the packet sent next.
pub(crate) fn send_corked(
    sock: &Socket,
    kind: HeaderKind,
    cmd: u16,
    volume: u16,
    parts: &[&[u8]],
    more: bool,
) -> Result {
    let length: usize = parts.iter().map(|p| p.len()).sum();
    let header = Header {
        kind,
        cmd,
        length: length as u32,
        volume,
    };
    let mut hb = [0u8; 16];
    let n = header.encode(&mut hb).map_err(|_| EINVAL)?;
    let mut all: [&[u8]; 4] = [&hb[..n], &[], &[], &[]];
    for (slot, part) in all.iter_mut().skip(1).zip(parts.iter()) {
        *slot = part;
    }
    sock.send_parts(&all[..1 + parts.len().min(3)], more)
}

/// Protocol violation by the peer (drops the connection).
pub(crate) const EPROTO: Error = EINVAL;

/// Receives a header of the agreed kind.
pub(crate) fn recv_header(sock: &Socket, kind: HeaderKind) -> Result<Header> {
    let mut hb = [0u8; 16];
    let buf = &mut hb[..kind.size()];
    sock.recv_exact(buf)?;
    let h = Header::decode(buf).map_err(|_| EPROTO)?;
    if h.kind != kind {
        return Err(EPROTO);
    }
    Ok(h)
}

/// Receives a payload of `len` bytes, refusing more than `max`.
pub(crate) fn recv_payload(sock: &Socket, len: u32, max: u32) -> Result<KVec<u8>> {
    if len > max {
        return Err(EPROTO);
    }
    let mut buf = KVec::from_elem(0u8, len as usize, GFP_KERNEL)?;
    sock.recv_exact(buf.as_mut_slice())?;
    Ok(buf)
}

/// Bytes a [`PacketReader`] buffers: a burst of acks (40 bytes each) fits many times over.
const READ_BUF: usize = 8192;

/// A packet's payload from a [`PacketReader`]: in its buffer, or (larger than the buffer)
/// in its own allocation.
pub(crate) enum Payload<'a> {
    Buffered(&'a [u8]),
    Owned(KVec<u8>),
}

impl core::ops::Deref for Payload<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Payload::Buffered(b) => b,
            Payload::Owned(v) => v.as_slice(),
        }
    }
}

/// Reads packets from a stream through a buffer: one receive takes every packet already
/// queued, so a burst of small packets (the peer's acks) costs one system call instead of
/// two per packet and no allocation.
///
/// Locking: owned by the one thread that reads the stream. Lifetime: that thread's loop.
pub(crate) struct PacketReader {
    buf: KVec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

impl PacketReader {
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            buf: KVec::from_elem(0u8, READ_BUF, GFP_KERNEL)?,
            start: 0,
            end: 0,
        })
    }

    /// The next packet of the agreed `kind` with at most `max` payload bytes. Receives only
    /// when no complete packet is buffered, under the socket's receive timeout (`EAGAIN`
    /// then; a partial packet stays buffered for the next call). [`EPROTO`]: a bad header.
    pub(crate) fn next(
        &mut self,
        sock: &Socket,
        kind: HeaderKind,
        max: u32,
    ) -> Result<(Header, Payload<'_>)> {
        let hsize = kind.size();
        loop {
            let avail = self.end - self.start;
            if avail >= hsize {
                let h = Header::decode(&self.buf[self.start..self.start + hsize])
                    .map_err(|_| EPROTO)?;
                if h.kind != kind || h.length > max {
                    return Err(EPROTO);
                }
                let total = hsize + h.length as usize;
                if avail >= total {
                    let at = self.start + hsize;
                    self.start += total;
                    return Ok((h, Payload::Buffered(&self.buf[at..at + h.length as usize])));
                }
                if total > READ_BUF {
                    return self.take_large(sock, h, hsize).map(|p| (h, p));
                }
            }
            if self.start > 0 {
                // Make room at the end for the rest of the packet.
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let got = sock.recv_some(&mut self.buf[self.end..])?;
            self.end += got;
        }
    }

    /// A packet larger than the buffer: what is buffered of its payload, then the rest
    /// straight from the socket.
    fn take_large(&mut self, sock: &Socket, h: Header, hsize: usize) -> Result<Payload<'_>> {
        let len = h.length as usize;
        let mut out = KVec::from_elem(0u8, len, GFP_KERNEL)?;
        let have = self.end - self.start - hsize;
        let from = self.start + hsize;
        out[..have].copy_from_slice(&self.buf[from..from + have]);
        self.start = 0;
        self.end = 0;
        sock.recv_exact(&mut out[have..])?;
        Ok(Payload::Owned(out))
    }
}
