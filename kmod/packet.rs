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
