//! Reads served by a peer: a node without usable local data for a range (diskless after a
//! detach, a SyncTarget's blocks not resynced yet, or a local read that failed) sends
//! `P_DATA_REQUEST` (`p_block_req`) on the data stream; the peer reads its disk and answers
//! `P_DATA_REPLY` (`p_data` + payload, data stream), or `P_NEG_DREPLY` (`p_block_ack`, meta
//! stream) if its read failed. The reply is received straight into the upper bio's pages.
//!
//! Pending reads are kept in `Link::reads` (slot + 1 = `block_id`) until answered; when the
//! link fails they fail with EIO (`fail_reads`).

use crate::connection::Connection;
use crate::device::Device;
use crate::proto::wire::{self, BlockAck, BlockReq, DataHeader};
use crate::replication::{device_of, Link, Stop};
use crate::spec::generated::{ConnState, DiskState};
use crate::sys::bio::{UpperBio, STATUS_IOERR};
use crate::sys::peer_bio::PageBuf;
use core::sync::atomic::Ordering;
use kernel::prelude::*;
use kernel::sync::Arc;

/// A connected peer with UpToDate data for `dev`'s volume, and its link.
fn peer_link(dev: &Device) -> Option<Arc<Link>> {
    peer_link_in(&dev.resource.state.lock(), dev)
}

/// [`peer_link`] with the resource's state already locked (`rs`).
fn peer_link_in(rs: &crate::resource::ResourceState, dev: &Device) -> Option<Arc<Link>> {
    for conn in rs.connections() {
        let cs = conn.state.lock();
        let Some(link) = cs.link.clone() else {
            continue;
        };
        let up = cs
            .peers
            .iter()
            .any(|p| p.volume == dev.volume && p.peer_disk == DiskState::UpToDate);
        if up && cs.cstate == ConnState::Connected {
            return Some(link);
        }
    }
    None
}

/// Whether some connected peer has UpToDate data for `dev`.
pub(crate) fn peer_has_data(dev: &Device) -> bool {
    peer_link(dev).is_some()
}

/// [`peer_has_data`] with the resource's state already locked (`rs`).
pub(crate) fn peer_has_data_locked(rs: &crate::resource::ResourceState, dev: &Device) -> bool {
    peer_link_in(rs, dev).is_some()
}

/// Sends a read to a peer with the data, or fails it if there is none (submitter or worker
/// context; may sleep on the send).
pub(crate) fn submit(dev: &Device, bio: UpperBio) {
    let Some(link) = peer_link(dev) else {
        bio.end(STATUS_IOERR);
        return;
    };
    let (sector, size) = (bio.sector(), bio.size());
    if size == 0 || size % 512 != 0 || size as usize > crate::sys::bdev::MAX_XFER {
        bio.end(STATUS_IOERR);
        return;
    }
    dev.counters
        .read_kib
        .fetch_add(u64::from(size) / 1024, Ordering::Relaxed);
    let id = {
        let _noio = crate::sys::misc::NoIoScope::enter();
        add_read(&link, bio)
    };
    let Some(id) = id else { return };
    let req = BlockReq {
        sector,
        block_id: id,
        blksize: size,
    };
    let mut b = [0u8; BlockReq::SIZE];
    let sent = req.encode(&mut b).is_ok()
        && link
            .send_data(wire::P_DATA_REQUEST, dev.volume as u16, &[&b])
            .is_ok();
    if !sent {
        if let Some(bio) = take_read(&link, id) {
            bio.end(STATUS_IOERR);
        }
        link.data.shutdown();
    }
}

/// Reads waiting for the peer's answer.
///
/// Locking: lives in `Link::reads` (a spinlock, never held while sleeping). Lifetime: as the
/// link; `closed` is set when the link failed, after which no read is parked any more.
pub(crate) struct PendingReads {
    /// By slot (`block_id = slot + 1`).
    slots: KVec<Option<UpperBio>>,
    /// The link is gone (`fail_reads` ran).
    closed: bool,
}

impl PendingReads {
    /// No reads yet.
    pub(crate) const fn new() -> Self {
        Self {
            slots: KVec::new(),
            closed: false,
        }
    }
}

/// Parks `bio` in a free slot; `None` (bio failed) without memory or once the link failed.
fn add_read(link: &Link, bio: UpperBio) -> Option<u64> {
    let mut guard = link.reads.lock();
    if guard.closed {
        drop(guard);
        bio.end(STATUS_IOERR);
        return None;
    }
    let reads = &mut guard.slots;
    if let Some((i, slot)) = reads.iter_mut().enumerate().find(|(_, s)| s.is_none()) {
        *slot = Some(bio);
        return Some(i as u64 + 1);
    }
    match reads.push(None, GFP_ATOMIC) {
        Ok(()) => {
            let n = reads.len();
            if let Some(slot) = reads.last_mut() {
                *slot = Some(bio);
            }
            Some(n as u64)
        }
        Err(_) => {
            drop(guard);
            bio.end(STATUS_IOERR);
            None
        }
    }
}

fn take_read(link: &Link, id: u64) -> Option<UpperBio> {
    let index = usize::try_from(id.checked_sub(1)?).ok()?;
    link.reads.lock().slots.get_mut(index)?.take()
}

/// The link is gone: reads still waiting for it fail.
pub(crate) fn fail_reads(link: &Link) {
    loop {
        let next = {
            let mut reads = link.reads.lock();
            reads.closed = true;
            reads.slots.iter_mut().find_map(|s| s.take())
        };
        match next {
            Some(bio) => bio.end(STATUS_IOERR),
            None => break,
        }
    }
}

/// `P_DATA_REPLY` of `length` payload bytes (receiver thread): fills the waiting bio.
pub(crate) fn on_reply(link: &Link, length: u32) -> Result<(), Stop> {
    let size = length
        .checked_sub(DataHeader::SIZE as u32)
        .ok_or(Stop::Protocol)?;
    let mut hb = [0u8; DataHeader::SIZE];
    link.data.recv_exact(&mut hb).map_err(|_| Stop::Broken)?;
    let dh = DataHeader::decode(&hb).map_err(|_| Stop::Protocol)?;
    // An answer to nothing we asked, or of another size: the peer is confused.
    let mut bio = take_read(link, dh.block_id).ok_or(Stop::Protocol)?;
    if bio.size() != size || bio.sector() != dh.sector {
        bio.end(STATUS_IOERR);
        return Err(Stop::Protocol);
    }
    match bio.recv_payload(&link.data) {
        Ok(()) => {
            bio.end(0);
            Ok(())
        }
        Err(_) => {
            bio.end(STATUS_IOERR);
            Err(Stop::Broken)
        }
    }
}

/// `P_NEG_DREPLY` (meta stream): the peer could not read the block; `false` = malformed.
pub(crate) fn on_neg_reply(link: &Link, payload: &[u8]) -> bool {
    let Ok(ack) = BlockAck::decode(payload) else {
        return false;
    };
    if let Some(bio) = take_read(link, ack.block_id) {
        bio.end(STATUS_IOERR);
    }
    true
}

/// `P_DATA_REQUEST` (receiver thread, after the writes before it finished): reads the block
/// locally and answers it.
pub(crate) fn on_request(
    conn: &Connection,
    link: &Link,
    volume: u32,
    payload: &[u8],
) -> Result<(), Stop> {
    let req = BlockReq::decode(payload).map_err(|_| Stop::Protocol)?;
    if req.blksize == 0
        || req.blksize % 512 != 0
        || req.blksize as usize > crate::sys::bdev::MAX_XFER
    {
        return Err(Stop::Protocol);
    }
    let dev = device_of(conn, volume).ok_or(Stop::Protocol)?;
    let len = req.blksize as usize;
    let lower = dev.peer_target(req.sector, u64::from(req.blksize) / 512);
    let mut buf = PageBuf::alloc(len).map_err(|_| Stop::Broken)?;
    let ok = match &lower {
        Some(l) => {
            let ok = buf.read_from(l, req.sector, len).is_ok();
            if !ok {
                dev.local_read_error_for_peer(req.sector, req.blksize);
            }
            ok
        }
        None => false,
    };
    if ok {
        let dh = DataHeader {
            sector: req.sector,
            block_id: req.block_id,
            seq_num: 0,
            dp_flags: 0,
        };
        let mut hb = [0u8; DataHeader::SIZE];
        dh.encode(&mut hb).map_err(|_| Stop::Broken)?;
        link.send_data_pages(wire::P_DATA_REPLY, volume as u16, &hb, &buf, len)
            .map_err(|_| Stop::Broken)
    } else {
        let ack = BlockAck {
            sector: req.sector,
            block_id: req.block_id,
            blksize: req.blksize,
            seq_num: 0,
        };
        let mut b = [0u8; BlockAck::SIZE];
        ack.encode(&mut b).map_err(|_| Stop::Broken)?;
        link.send_meta(wire::P_NEG_DREPLY, volume as u16, &b)
            .map_err(|_| Stop::Broken)
    }
}
