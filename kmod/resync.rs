//! Resync between the two sides of a connection.
//!
//! Direction and extent come from the sync handshake (`replication::decide`). Before the
//! SyncSource sends anything, the bitmaps are merged: the SyncTarget sends the blocks it
//! changed itself (a split-brain victim's writes, `--discard-my-data`) as `P_OUT_OF_SYNC`
//! runs, then its `SyncTarget` state; the source waits in `WFBitMapS` until that state
//! arrives, so every block either side changed is resent. The SyncSource then sends runs of
//! up to 256 KiB (`P_RS_DATA_REPLY`), each read after draining the local writes in flight and
//! sent without the blocks a write touched since (`ReadAhead`), so a chunk never overtakes a
//! newer mirrored write.
//!
//! Threads: the bitmap exchange runs in the data-stream receiver; the sender runs in its own
//! `drbd_s_<resource>` thread, owned by `ConnectionState::resync`.

use crate::connection::{Connection, PeerDev};
use crate::device::Device;
use crate::proto::resync_order::Spoiled;
use crate::proto::wire::{self, BlockDesc, DataHeader};
use crate::replication::{announce, Link, Stop};
use crate::spec::generated::{DiskState, ReplState};
use crate::sys::bdev::BlockDev;
use crate::sys::irqlock::IrqSpinLock;
use crate::sys::peer_bio::{submit_read, PageBuf, WriteDone};
use core::sync::atomic::Ordering;
use kernel::prelude::*;
use kernel::sync::{Arc, CondVar};

/// Resync chunk size (also the largest application write: DRBD's max-bio-size is 1 MiB).
const RESYNC_CHUNK: usize = 256 * 1024;
/// Largest run announced in one `P_OUT_OF_SYNC` (bits; 1 GiB of 4 KiB blocks).
const MAX_OOS_RUN_BITS: u64 = 1 << 18;
/// Resync chunks in flight before the sender waits for acknowledgements.
const RESYNC_WINDOW: u32 = 16;

/// SyncTarget side of the bitmap exchange: sends every block this node marked itself and
/// forgets them (the source now owns them and resends them). Runs in the receiver thread,
/// before the `SyncTarget` state goes out on the same stream.
pub(crate) fn send_own_bitmap(link: &Link, dev: &Device) -> Result<u64, Stop> {
    let mut next = 0u64;
    let mut sent = 0u64;
    loop {
        let run = dev.oos.lock().take_run(next, MAX_OOS_RUN_BITS);
        let Some((bit, bits)) = run else { break };
        next = bit + bits;
        let sector = bit * crate::oos::SECTORS_PER_BIT;
        let desc = BlockDesc {
            sector,
            blksize: (bits * crate::oos::SECTORS_PER_BIT * 512) as u32,
        };
        let mut b = [0u8; BlockDesc::SIZE];
        let ok = desc.encode(&mut b).is_ok()
            && link
                .send_data(wire::P_OUT_OF_SYNC, dev.volume as u16, &[&b])
                .is_ok();
        if !ok {
            // Keep the run: the next handshake sends it again.
            dev.oos.lock().mark(sector, u64::from(desc.blksize));
            return Err(Stop::Broken);
        }
        sent += bits;
    }
    Ok(sent)
}

/// Marks every block of `dev` out of sync and the meta-data as needing a full sync
/// (`MDF_FULL_SYNC` survives a restart; cleared when a resync as target completes), and makes
/// the disk Inconsistent. Process context; takes `Device::state`.
pub(crate) fn invalidate_local(dev: &Device) -> Result<(), crate::failure::Failure> {
    let mut st = dev.state.lock();
    let Some(b) = st.backing.as_mut() else {
        return Err(crate::failure::fail!(
            crate::spec::generated::ss::NO_LOCAL_DISK,
            "drbd{} has no disk",
            dev.minor
        ));
    };
    b.sb.flags = (b.sb.flags | crate::proto::meta::MDF_FULL_SYNC)
        & !(crate::proto::meta::MDF_CONSISTENT | crate::proto::meta::MDF_WAS_UP_TO_DATE);
    b.write_superblock()?;
    dev.oos.lock().mark_all();
    st.disk_state = DiskState::Inconsistent;
    crate::events::device(dev, &st, crate::events::Kind::Change);
    Ok(())
}

/// `invalidate` while connected: this node becomes SyncTarget of every block (its bitmap,
/// all set, goes to the peer, which decides to be the source when it sees our state).
pub(crate) fn invalidate_connected(
    conn: &Connection,
    link: &Link,
    dev: &Device,
) -> Result<(), Stop> {
    start_sync_target(conn, dev, 0);
    send_own_bitmap(link, dev)?;
    announce(conn, link, Some((dev.volume, ReplState::SyncTarget))).map_err(|_| Stop::Broken)
}

/// The peer resized online and we followed (the new blocks are marked here): become its
/// SyncTarget for our marked blocks only.
pub(crate) fn sync_grown_area(conn: &Connection, link: &Link, dev: &Device) -> Result<(), Stop> {
    let own = dev.oos.lock().count();
    start_sync_target(conn, dev, own);
    send_own_bitmap(link, dev)?;
    announce(conn, link, Some((dev.volume, ReplState::SyncTarget))).map_err(|_| Stop::Broken)
}

/// `invalidate-remote`: every block goes to the peer. We wait in `WFBitMapS`; our
/// `SyncSource` state asks the peer to become SyncTarget, its bitmap and state then start
/// the sender.
pub(crate) fn invalidate_peer(conn: &Connection, link: &Link, dev: &Device) -> Result<(), Stop> {
    dev.oos.lock().mark_all();
    conn.set_repl(dev.volume, ReplState::WfBitMapS);
    announce(conn, link, Some((dev.volume, ReplState::SyncSource))).map_err(|_| Stop::Broken)
}

/// The peer announced `SyncSource` while we were Established (`invalidate-remote` there):
/// become its SyncTarget for every block.
pub(crate) fn become_target_on_request(
    conn: &Connection,
    link: &Link,
    dev: &Device,
) -> Result<(), Stop> {
    pr_info!(
        "{}/{} drbd{}: the peer replaces our data (invalidate-remote)\n",
        conn.resource.name,
        dev.volume,
        dev.minor
    );
    if invalidate_local(dev).is_err() {
        return Err(Stop::Broken);
    }
    invalidate_connected(conn, link, dev)
}

/// Both sides are equal now: bits this node left in the on-disk bitmap are stale.
fn clear_disk_bitmap(dev: &Device) {
    let log = dev.io.lock().al.clone();
    if let Some(log) = log {
        log.clear_disk_bitmap(dev);
    }
}

/// `P_OUT_OF_SYNC` from the peer: these blocks differ, mark them for the resync.
pub(crate) fn on_out_of_sync(dev: &Device, payload: &[u8]) -> Result<(), Stop> {
    let desc = BlockDesc::decode(payload).map_err(|_| Stop::Protocol)?;
    dev.peer_target(desc.sector, u64::from(desc.blksize).div_ceil(512))
        .ok_or(Stop::Protocol)?;
    dev.oos.lock().mark(desc.sector, u64::from(desc.blksize));
    Ok(())
}

pub(crate) fn start_sync_target(conn: &Connection, dev: &Device, peer_dirty: u64) {
    let size = dev
        .state
        .lock()
        .backing
        .as_ref()
        .map_or(0, |b| b.data_sectors());
    let total = if peer_dirty > 0 {
        (peer_dirty * crate::oos::SECTORS_PER_BIT).min(size)
    } else {
        size
    };
    {
        let mut st = dev.state.lock();
        if let Some(b) = st.backing.as_mut() {
            b.sb.flags &=
                !(crate::proto::meta::MDF_CONSISTENT | crate::proto::meta::MDF_WAS_UP_TO_DATE);
            let _ = b.write_superblock();
        }
        st.disk_state = DiskState::Inconsistent;
        crate::events::device(dev, &st, crate::events::Kind::Change);
    }
    conn.update_peer(dev.volume, |p| {
        p.start_sync(total);
    });
    conn.set_repl(dev.volume, ReplState::SyncTarget);
    pr_info!(
        "{}/{} drbd{}: resync started as SyncTarget ({} KiB out of sync)\n",
        conn.resource.name,
        dev.volume,
        dev.minor,
        total / 2
    );
}

pub(crate) fn finish_sync_target(conn: &Connection, dev: &Device, peer: &PeerDev) {
    {
        let mut st = dev.state.lock();
        if let Some(b) = st.backing.as_mut() {
            if b.sb.current_uuid & !1 != peer.peer_uuid & !1 && b.sb.current_uuid != 0 {
                let n = b.sb.history_uuids.len();
                b.sb.history_uuids.copy_within(0..n - 1, 1);
                b.sb.history_uuids[0] = b.sb.current_uuid & !1;
            }
            b.sb.current_uuid = peer.peer_uuid & !1;
            if let Some(slot) = b.sb.peers.get_mut(conn.peer_node_id as usize) {
                slot.bitmap_uuid = 0;
            }
            b.sb.flags |=
                crate::proto::meta::MDF_CONSISTENT | crate::proto::meta::MDF_WAS_UP_TO_DATE;
            b.sb.flags &=
                !(crate::proto::meta::MDF_CRASHED_PRIMARY | crate::proto::meta::MDF_FULL_SYNC);
            let _ = b.write_superblock();
        }
        st.disk_state = DiskState::UpToDate;
        crate::events::device(dev, &st, crate::events::Kind::Change);
    }
    clear_disk_bitmap(dev);
    conn.set_repl(dev.volume, ReplState::Established);
    pr_info!(
        "{}/{} drbd{}: resync done, UpToDate\n",
        conn.resource.name,
        dev.volume,
        dev.minor
    );
}

pub(crate) fn start_sync_source(
    conn: &Arc<Connection>,
    link: &Arc<Link>,
    dev: &Arc<Device>,
) -> Result<(), Stop> {
    let total = dev.oos.lock().count() * crate::oos::SECTORS_PER_BIT;
    conn.update_peer(dev.volume, |p| {
        p.start_sync(total);
    });
    conn.set_repl(dev.volume, ReplState::SyncSource);
    if announce(conn, link, Some((dev.volume, ReplState::SyncSource))).is_err() {
        return Err(Stop::Broken);
    }
    pr_info!(
        "{}/{} drbd{}: resync started as SyncSource ({} KiB out of sync)\n",
        conn.resource.name,
        dev.volume,
        dev.minor,
        total / 2
    );
    let (c, l, d) = (conn.clone(), link.clone(), dev.clone());
    let name = kernel::str::CString::try_from_fmt(kernel::fmt!("drbd_rs_{}", conn.resource.name))
        .map_err(|_| Stop::Broken)?;
    let thread = crate::sys::thread::KThread::spawn(&name, move || run_resync(c, l, d))
        .map_err(|_| Stop::Broken)?;
    conn.set_resync_thread(thread);
    Ok(())
}

/// A chunk whose read finished, waiting to be sent.
struct Chunk {
    sector: u64,
    len: usize,
    buf: PageBuf,
}

/// Where the completion of a read-ahead leaves its buffer.
///
/// Locking: `done` is an irq-safe spinlock (the completion may run in hard interrupt
/// context); the resync thread waits on `changed`. Lifetime: one per resync, shared with
/// the read in flight through an `Arc`.
#[pin_data]
struct ReadSlot {
    #[pin]
    done: IrqSpinLock<Option<(PageBuf, Arc<BlockDev>, bool)>>,
    #[pin]
    changed: CondVar,
}

impl WriteDone for Arc<ReadSlot> {
    fn done(self, buf: PageBuf, lower: Arc<BlockDev>, ok: bool) {
        // The thread drops `lower` (the last reference may close the device, which sleeps).
        *self.done.lock() = Some((buf, lower, ok));
        self.changed.notify_all();
    }
}

impl ReadSlot {
    /// Waits for the read in flight; its buffer and whether it succeeded.
    fn wait(&self) -> (PageBuf, bool) {
        let mut done = self.done.lock();
        loop {
            if let Some((buf, lower, ok)) = done.take() {
                drop(done);
                drop(lower);
                return (buf, ok);
            }
            self.changed.wait(&mut done);
        }
    }
}

/// Sends every out-of-sync block of `dev` to the peer, then reports Established. A block whose
/// send fails is marked again (the next resync covers it).
///
/// Two buffers: the next chunk is read from the disk while the previous one goes out. A
/// chunk's read starts under `Device::sync_lock`, whose `ReadAhead` notes the blocks a
/// mirrored write touches until the chunk is sent; those blocks stay marked and a later pass
/// takes them, the rest goes out. The data stream is taken before `sync_lock` is left, so a
/// write noted afterwards reaches the peer after the chunk; writes go on during the send.
fn run_resync(conn: Arc<Connection>, link: Arc<Link>, dev: Arc<Device>) {
    let (Ok(a), Ok(b)) = (PageBuf::alloc(RESYNC_CHUNK), PageBuf::alloc(RESYNC_CHUNK)) else {
        return;
    };
    let Ok(slot) = Arc::pin_init(
        pin_init!(ReadSlot {
            done <- crate::new_irq_spinlock!(None, "ReadSlot::done"),
            changed <- kernel::new_condvar!("ReadSlot::changed"),
        }),
        GFP_KERNEL,
    ) else {
        return;
    };
    let mut spare = Some(a);
    let mut second = Some(b);
    let max_bits = (RESYNC_CHUNK as u64 / 512) / crate::oos::SECTORS_PER_BIT;
    let mut next = 0u64;
    // A chunk was dropped for a newer write: scan again from the start at the end.
    let mut rescan = false;
    let mut sent_sectors = 0u64;
    let mut ready: Option<Chunk> = None;
    // Blocks left out of a send for a newer write.
    let mut reread = 0u64;
    // Gives a chunk that will not be sent back to the bitmap.
    let keep = |c: Option<Chunk>| {
        if let Some(c) = c {
            dev.oos.lock().mark(c.sector, c.len as u64);
        }
    };
    loop {
        // Keep a bounded window in flight.
        loop {
            if conn.is_stopping() || !conn.is_link(&link) {
                keep(ready);
                return;
            }
            // `pause-sync` on either side: nothing is sent until both resumed.
            let paused = conn.peer_dev(dev.volume).is_some_and(|p| p.paused());
            if !paused && link.rs_in_flight.load(Ordering::Acquire) < RESYNC_WINDOW {
                break;
            }
            crate::sys::misc::sleep_ms(if paused { 20 } else { 1 });
        }
        let mut order = dev.sync_lock.lock();
        let spoiled = order.read_ahead.finish();
        // Start the next read first, so the disk works while the previous chunk is copied out.
        let mut run = dev.oos.lock().take_run(next, max_bits);
        if run.is_none() && rescan && ready.is_none() {
            rescan = false;
            next = 0;
            run = dev.oos.lock().take_run(0, max_bits);
        }
        let lower = dev.io.lock().lower.clone();
        let Some(lower) = lower else {
            keep(ready);
            return;
        };
        let mut reading = None;
        if let Some((bit, bits)) = run {
            next = bit + bits;
            let sector = bit * crate::oos::SECTORS_PER_BIT;
            let sectors =
                (bits * crate::oos::SECTORS_PER_BIT).min(lower.sectors().saturating_sub(sector));
            let len = (sectors * 512) as usize;
            let buf = spare.take().or_else(|| second.take());
            if let (Some(buf), true) = (buf, len > 0) {
                dev.drain_writes();
                order.read_ahead.begin(sector, sectors);
                match submit_read(lower.clone(), sector, buf, len, slot.clone()) {
                    Ok(()) => reading = Some((sector, len)),
                    Err(_) => {
                        let _ = order.read_ahead.finish();
                        dev.oos.lock().mark(sector, len as u64);
                        keep(ready);
                        link.data.shutdown();
                        return;
                    }
                }
            }
        }
        if let Some(c) = ready.take() {
            // Blocks a mirrored write touched after the read started: read again later.
            let spoiled = spoiled.unwrap_or(Spoiled { blocks: u64::MAX });
            let sectors = (c.len / 512) as u64;
            for (offset, len, written) in spoiled.runs(sectors) {
                if written {
                    dev.oos.lock().mark(c.sector + offset, len * 512);
                    rescan = true;
                    reread += len.div_ceil(crate::oos::SECTORS_PER_BIT);
                }
            }
            let tx = link.lock_data();
            drop(order);
            let mut failed = false;
            for (offset, len, written) in spoiled.runs(sectors) {
                if written {
                    continue;
                }
                if failed || send_chunk(&link, &dev, &c, offset, len).is_err() {
                    failed = true;
                    dev.oos.lock().mark(c.sector + offset, len * 512);
                } else {
                    sent_sectors += len;
                }
            }
            drop(tx);
            if failed {
                if reading.is_some() {
                    let _ = slot.wait();
                }
                return;
            }
            if spare.is_none() {
                spare = Some(c.buf);
            } else {
                second = Some(c.buf);
            }
        } else {
            drop(order);
        }
        let Some((sector, len)) = reading else {
            if rescan {
                continue;
            }
            break;
        };
        let (buf, ok) = slot.wait();
        if !ok {
            pr_err!(
                "drbd{}: resync read failed at sector {}\n",
                dev.minor,
                sector
            );
            dev.oos.lock().mark(sector, len as u64);
            link.data.shutdown();
            return;
        }
        ready = Some(Chunk { sector, len, buf });
    }
    while link.rs_in_flight.load(Ordering::Acquire) > 0 {
        if conn.is_stopping() || !conn.is_link(&link) {
            return;
        }
        crate::sys::misc::sleep_ms(5);
    }
    {
        let mut st = dev.state.lock();
        if let Some(b) = st.backing.as_mut() {
            if let Some(slot) = b.sb.peers.get_mut(conn.peer_node_id as usize) {
                slot.bitmap_uuid = 0;
            }
            // A crash as Primary is repaired once the peer has our version of every block.
            b.sb.flags &= !crate::proto::meta::MDF_CRASHED_PRIMARY;
            let _ = b.write_superblock();
        }
    }
    clear_disk_bitmap(&dev);
    conn.set_repl(dev.volume, ReplState::Established);
    pr_info!(
        "{}/{} drbd{}: resync done ({} KiB sent, {} blocks read again after a write)\n",
        conn.resource.name,
        dev.volume,
        dev.minor,
        sent_sectors / 2,
        reread
    );
    if announce(&conn, &link, Some((dev.volume, ReplState::Established))).is_err() {
        link.data.shutdown();
    }
}

/// Sends `sectors` sectors of a chunk from `offset` (sectors, 4 KiB aligned) as
/// `P_RS_DATA_REPLY` and counts it in flight; the caller holds the data stream.
fn send_chunk(link: &Link, dev: &Device, c: &Chunk, offset: u64, sectors: u64) -> Result<(), ()> {
    let dh = DataHeader {
        sector: c.sector + offset,
        block_id: 0,
        seq_num: 0,
        dp_flags: 0,
    };
    let mut hb = [0u8; DataHeader::SIZE];
    dh.encode(&mut hb).map_err(|_| ())?;
    if link.rs_in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
        link.rs_progress_ms
            .store(crate::replication::now_ms(), Ordering::Release);
    }
    let (offset, len) = ((offset * 512) as usize, (sectors * 512) as usize);
    link.send_data_pages_locked(
        wire::P_RS_DATA_REPLY,
        dev.volume as u16,
        &hb,
        &c.buf,
        offset,
        len,
    )
    .map_err(|_| ())
}
