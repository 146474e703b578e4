//! Online grow (`drbdsetup resize`, DRBD_ADM_RESIZE): a device grows up to the smaller
//! maximum of both sides (rules in `proto::resize`). When a backing device with internal
//! meta-data itself grew, the meta-data first moves to its new end (`crate::md_move`); the
//! initiator then tells the peer (`P_SIZES`, larger `d_size`), which moves its own and
//! answers with what it offers now. The initiator grows, marks the new blocks out of sync and
//! becomes SyncSource of them; its `P_SIZES` (new `c_size`) makes the peer grow too, and the
//! peer's SyncTarget state then starts a resync of exactly the new area.
//!
//! Not yet: shrinking, `--assume-clean` while connected.

use crate::config;
use crate::connection::Connection;
use crate::device::Device;
use crate::failure::{fail, Outcome};
use crate::proto::resize::{self, SizeDecision, SizeInput};
use crate::registry::RegistryInner;
use crate::replication::{announce, Link};
use crate::spec::generated::{ret, ss, DiskState, ReplState};
use kernel::prelude::*;
use kernel::sync::Arc;

/// `drbdsetup resize MINOR [--size S] [--assume-clean]`.
pub(crate) fn resize(
    reg: &mut RegistryInner,
    minor: u32,
    requested: u64,
    assume_clean: bool,
) -> Outcome {
    let dev = config::device(reg, minor)?;
    let limits = |dev: &Device| {
        let st = dev.state.lock();
        st.backing
            .as_ref()
            .map(|b| (b.data_sectors(), b.layout.data_sectors, st.disk_state))
            .ok_or_else(|| fail!(ret::ERR_NO_DISK, "drbd{} has no disk", minor))
    };
    let (_, local_max, _) = limits(&dev)?;
    let peer = connected_peer(&dev);
    if let Some((conn, _)) = &peer {
        let p = conn
            .peer_dev(dev.volume)
            .ok_or_else(|| fail!(ret::ERR_INVALID_REQUEST, "no peer device"))?;
        if p.repl != ReplState::Established {
            return Err(fail!(
                ret::ERR_RESIZE_RESYNC,
                "drbd{}: a resync or verify is running",
                minor
            ));
        }
    }
    if (requested == 0 || requested > local_max) && crate::md_move::follow_backing(&dev)? {
        if let Some((conn, link)) = &peer {
            ask_peer_sizes(conn, link, &dev);
        }
    }
    let (current, local_max, disk) = limits(&dev)?;
    let mut peer_max = None;
    if let Some((conn, _)) = &peer {
        if let Some(p) = conn.peer_dev(dev.volume) {
            if p.peer_disk > DiskState::Diskless {
                peer_max = Some(p.peer_max);
            }
        }
    }
    let decision = resize::decide(&SizeInput {
        current,
        local_max,
        peer_max,
        requested,
    });
    let new = match decision {
        SizeDecision::Unchanged => return Ok(()),
        SizeDecision::Grow(n) => n,
        SizeDecision::TooBig(max) => {
            return Err(fail!(
                ret::ERR_DISK_TOO_SMALL,
                "Requested disk size is too big ({} > {} sectors)",
                requested,
                max
            ))
        }
        SizeDecision::ImplicitShrink(n) => {
            return Err(fail!(
                ret::ERR_IMPLICIT_SHRINK,
                "drbd{}: the device would shrink from {} to {} sectors; give --size explicitly",
                minor,
                current,
                n
            ))
        }
        SizeDecision::Shrink(_) => {
            return Err(fail!(
                ret::ERR_INVALID_REQUEST,
                "shrinking is not supported by this drbd-rs version"
            ))
        }
    };
    if peer.is_some() && assume_clean {
        return Err(fail!(
            ret::ERR_INVALID_REQUEST,
            "--assume-clean while connected is not supported by this drbd-rs version"
        ));
    }
    if peer.is_some() && disk != DiskState::UpToDate {
        return Err(fail!(
            ss::NO_UP_TO_DATE_DISK,
            "only UpToDate data can fill the grown area on the peer"
        ));
    }
    grow_local(&dev, new, !assume_clean).map_err(|e| {
        fail!(
            ret::ERR_IO_MD_DISK,
            "growing drbd{} failed with {}",
            minor,
            e.to_errno()
        )
    })?;
    if let Some((conn, link)) = peer {
        // Our P_SIZES (first in the announcement) makes the peer grow; its SyncTarget state
        // then starts the resync of the new area.
        conn.set_repl(dev.volume, ReplState::WfBitMapS);
        if announce(&conn, &link, Some((dev.volume, ReplState::SyncSource))).is_err() {
            link.data.shutdown();
        }
    } else {
        crate::replication::local_change(&dev.resource);
    }
    Ok(())
}

/// How long a resize waits for the peer to answer our larger `d_size` with its own sizes.
const PEER_SIZES_WAIT_MS: u32 = 10_000;

/// Tells the peer that we offer more and waits (bounded) for its answer: its backing device
/// may have grown too, and it moves its meta-data before it answers. Without an answer the
/// peer's last known maximum stays the limit.
fn ask_peer_sizes(conn: &Connection, link: &Arc<Link>, dev: &Device) {
    let seen = conn.peer_dev(dev.volume).map(|p| p.sizes_seen);
    if crate::replication::send_sizes(conn, link, dev).is_err() {
        link.data.shutdown();
        return;
    }
    for _ in 0..PEER_SIZES_WAIT_MS / 10 {
        let now = conn.peer_dev(dev.volume).map(|p| p.sizes_seen);
        if now != seen || !conn.is_link(link) {
            return;
        }
        crate::sys::misc::sleep_ms(10);
    }
}

fn connected_peer(dev: &Device) -> Option<(Arc<Connection>, Arc<Link>)> {
    let rs = dev.resource.state.lock();
    let found = rs
        .connections()
        .find_map(|c| c.link().map(|l| (c.clone(), l)));
    found
}

/// Grows `dev` to `new` sectors: meta-data size, out-of-sync map (the new blocks marked if
/// `mark`), I/O bounds, then the gendisk's capacity. Process context, no lock held.
pub(crate) fn grow_local(dev: &Device, new: u64, mark: bool) -> Result {
    let mut map = crate::oos::OosMap::new(new)?;
    let old = {
        let mut st = dev.state.lock();
        let b = st.backing.as_mut().ok_or(EINVAL)?;
        let old = b.data_sectors();
        if new <= old || new > b.layout.data_sectors {
            return Err(EINVAL);
        }
        b.disk_size = new;
        b.sb.effective_size = new;
        b.write_superblock().map_err(|_| EIO)?;
        old
    };
    let replaced = {
        let mut oos = dev.oos.lock();
        map.copy_from(&oos)?;
        if mark {
            if let Some((start, bytes)) = resize::grown_area(old, new) {
                map.mark(start, bytes);
            }
        }
        core::mem::replace(&mut *oos, map)
    };
    drop(replaced);
    if mark {
        // The new blocks go to the on-disk bitmap too: a crash before their resync must not
        // forget them.
        let log = dev.io.lock().al.clone();
        if let Some(Err(e)) = log.map(|log| log.persist_map(&dev.oos)) {
            pr_err!(
                "drbd{}: writing the grown area to the bitmap failed ({})\n",
                dev.minor,
                e.to_errno()
            );
            dev.meta_io_failed();
        }
    }
    dev.set_data_sectors(new);
    let st = dev.state.lock();
    if let Some(disk) = st.disk.as_ref() {
        disk.set_capacity(new);
    }
    crate::events::device(dev, &st, crate::events::Kind::Change);
    pr_info!(
        "drbd{}: size = {} KiB ({} sectors, was {})\n",
        dev.minor,
        new / 2,
        new,
        old
    );
    Ok(())
}

/// The peer announced a larger current size while we are Established: follow it if our
/// data area allows (the new blocks are marked; the peer's SyncSource state resyncs them).
/// Returns whether we grew.
pub(crate) fn follow_peer(dev: &Device, peer_current: u64) -> Result<bool> {
    let (current, max) = {
        let st = dev.state.lock();
        match st.backing.as_ref() {
            Some(b) => (b.data_sectors(), b.layout.data_sectors),
            None => return Ok(false),
        }
    };
    match resize::follow_peer(current, max, peer_current) {
        Some(new) => grow_local(dev, new, true).map(|()| true),
        None => Ok(false),
    }
}
