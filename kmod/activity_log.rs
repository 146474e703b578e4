//! The activity log: before a Primary writes to a 4 MiB extent, the extent is recorded in the
//! on-disk ring of v09 transactions, so after a crash only the recorded extents need a
//! resync (`drbdmeta apply-al` turns them into bitmap bits, which attach reads). The extent
//! cache and the transaction format are `proto::al_lru`/`proto::al`; this file does the
//! waiting, the locking and the I/O.
//!
//! Threads: submitters call [`ActivityLog::begin`] and may sleep there until the extent is
//! on disk; the `drbd_al_<minor>` writer thread writes transactions (a bio submitted from our
//! own `submit_bio` would only be dispatched after it returns, so a submitter cannot write
//! them itself); [`AlRef`] releases its extents when the request is finished towards every
//! peer, in any context (bio completions included), which is why the cache lives under an
//! irq-saving spinlock.

use crate::bitmap_io::{as_block, block_buf, DiskBitmap};
use crate::device::Device;
use crate::new_irq_spinlock;
use crate::proto::al::{
    extent_of_sector, Transaction, AL_EXTENTS_DEFAULT, AL_UPDATES_PER_TRANSACTION,
};
use crate::proto::al_lru::{self, AlCache, AlCacheState, AlSlot, BeginIo};
use crate::proto::meta::MdLayout;
use crate::sys::bdev::BlockDev;
use crate::sys::irqlock::IrqSpinLock;
use crate::sys::thread::KThread;
use kernel::new_condvar;
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::{Arc, CondVar, Mutex};

/// The cache and its storage, behind `ActivityLog::inner`.
struct AlInner {
    slots: KVec<AlSlot>,
    buckets: KVec<u32>,
    cache: AlCacheState,
    /// A transaction could not be written: writes needing one fail.
    failed: bool,
    /// Detaching: nobody waits any more.
    stopping: bool,
}

impl AlInner {
    /// Runs `f` on the cache over this storage.
    fn with<R>(&mut self, f: impl FnOnce(&mut AlCache<'_>) -> R) -> Option<R> {
        let mut c = AlCache::resume(&mut self.slots, &mut self.buckets, self.cache).ok()?;
        let r = f(&mut c);
        self.cache = c.suspend();
        Some(r)
    }
}

/// Where the ring and the bitmap lie on the meta-data device (they move when internal
/// meta-data follows a grown backing device, `crate::md_move`).
struct AlPlace {
    layout: MdLayout,
    bitmap: DiskBitmap,
}

/// The activity log of one attached device.
///
/// Locking: `inner` (irq-saving spinlock, never held across I/O or sleep) and `changed`
/// (waits for written transactions and freed slots); `place` (mutex, process context) is held
/// across every write to the ring or the bitmap, so a move never sees one half-done; it is
/// taken after `DeviceState` and before `disk_dirty` (mutex), which lists bitmap blocks this
/// log set on disk. Lifetime: created at attach, published in
/// `DeviceIo::al`; requests keep it alive through their [`AlRef`]; the writer thread is
/// stopped at detach after the device drained.
#[pin_data]
pub(crate) struct ActivityLog {
    #[pin]
    inner: IrqSpinLock<AlInner>,
    #[pin]
    changed: CondVar,
    #[pin]
    disk_dirty: Mutex<KVec<u64>>,
    md: Arc<BlockDev>,
    #[pin]
    place: Mutex<AlPlace>,
    minor: u32,
}

/// The extents one write holds in the log; released when dropped.
pub(crate) struct AlRef {
    log: Arc<ActivityLog>,
    first: u32,
    last: u32,
}

impl Drop for AlRef {
    fn drop(&mut self) {
        self.log.end(self.first, self.last);
    }
}

/// The newest transaction number in the ring, so the next one continues the sequence (a
/// ring without valid transactions starts at 0).
fn newest_transaction(md: &BlockDev, layout: &MdLayout) -> Result<Option<u32>> {
    let mut buf = block_buf()?;
    let mut newest: Option<u32> = None;
    for i in 0..layout.al_size_4k {
        let block = as_block(&mut buf)?;
        md.read_block(layout.al_tr_sector(i), block)?;
        if let Ok(t) = Transaction::decode(block) {
            newest = Some(match newest {
                Some(n) if n.wrapping_sub(t.tr_number) < u32::MAX / 2 => n,
                _ => t.tr_number,
            });
        }
    }
    Ok(newest)
}

impl ActivityLog {
    /// A log with `al_extents` slots (0 = DRBD's default) over the ring of `layout` on `md`.
    pub(crate) fn new(
        md: Arc<BlockDev>,
        layout: MdLayout,
        bitmap: DiskBitmap,
        al_extents: u32,
        minor: u32,
    ) -> Result<Arc<Self>> {
        let wanted = if al_extents == 0 {
            AL_EXTENTS_DEFAULT
        } else {
            al_extents
        };
        let n = wanted.min(al_lru::max_extents(layout.al_size_4k)).max(1) as usize;
        let first_tr = newest_transaction(&md, &layout)?.map_or(0, |t| t.wrapping_add(1));
        let mut slots = KVec::from_elem(AlSlot::EMPTY, n, GFP_KERNEL)?;
        let mut buckets = KVec::from_elem(0u32, n.next_power_of_two(), GFP_KERNEL)?;
        let cache = AlCache::new(&mut slots, &mut buckets, first_tr)
            .map_err(|_| EINVAL)?
            .suspend();
        Arc::pin_init(
            pin_init!(Self {
                inner <- new_irq_spinlock!(
                    AlInner { slots, buckets, cache, failed: false, stopping: false },
                    "ActivityLog::inner"
                ),
                changed <- new_condvar!("ActivityLog::changed"),
                disk_dirty <- new_mutex!(KVec::new(), "ActivityLog::disk_dirty"),
                md,
                place <- new_mutex!(AlPlace { layout, bitmap }, "ActivityLog::place"),
                minor,
            }),
            GFP_KERNEL,
        )
    }

    /// Takes the extents of `sectors` at `sector` for one write, waiting (process context)
    /// until they are recorded on disk.
    pub(crate) fn begin(self: &Arc<Self>, sector: u64, sectors: u64) -> Result<AlRef> {
        let first = extent_of_sector(sector) as u32;
        let last = extent_of_sector(sector + sectors.max(1) - 1) as u32;
        let mut inner = self.inner.lock();
        loop {
            if inner.failed || inner.stopping {
                return Err(EIO);
            }
            match inner.with(|c| c.begin_io(first, last)).ok_or(EINVAL)? {
                BeginIo::Hit => break,
                BeginIo::NeedsTransaction => {
                    // The references are ours now: from here on, errors must release them.
                    let held = AlRef {
                        log: self.clone(),
                        first,
                        last,
                    };
                    self.changed.notify_all();
                    loop {
                        if inner.with(|c| c.is_committed(first, last)) == Some(true) {
                            drop(inner);
                            return Ok(held);
                        }
                        if inner.failed || inner.stopping {
                            drop(inner);
                            return Err(EIO);
                        }
                        self.changed.wait(&mut inner);
                    }
                }
                BeginIo::MustWait(_) => {
                    self.changed.notify_all();
                    self.changed.wait(&mut inner);
                }
                BeginIo::TooLarge => return Err(EINVAL),
            }
        }
        Ok(AlRef {
            log: self.clone(),
            first,
            last,
        })
    }

    /// Drops one write's references (any context).
    fn end(&self, first: u32, last: u32) {
        let mut inner = self.inner.lock();
        inner.with(|c| c.end_io(first, last));
        drop(inner);
        // A slot may have become free for a waiting writer.
        self.changed.notify_all();
    }

    /// Stops every wait (detach); writes still arriving fail.
    pub(crate) fn stop(&self) {
        self.inner.lock().stopping = true;
        self.changed.notify_all();
    }

    /// Zeroes the bitmap blocks this node set on disk, once `dev` has nothing out of sync
    /// (after a resync). Process context.
    pub(crate) fn clear_disk_bitmap(&self, dev: &Device) {
        let place = self.place.lock();
        let mut dirty = self.disk_dirty.lock();
        if dirty.is_empty() || dev.oos.lock().count() != 0 {
            return;
        }
        match place.bitmap.clear_blocks(&dirty) {
            Ok(()) => *dirty = KVec::new(),
            Err(e) => pr_warn!(
                "drbd{}: clearing the on-disk bitmap failed ({})\n",
                self.minor,
                e.to_errno()
            ),
        }
    }

    /// Writes every block marked in `oos` to the on-disk bitmap (a grown area, which must
    /// survive a crash before its resync). Process context.
    pub(crate) fn persist_map(&self, oos: &kernel::sync::SpinLock<crate::oos::OosMap>) -> Result {
        let place = self.place.lock();
        let blocks = place.bitmap.merge_from(oos)?;
        drop(place);
        self.note_disk_dirty(&blocks);
        Ok(())
    }

    /// Remembers bitmap blocks that have bits on disk (found at attach or set here).
    pub(crate) fn note_disk_dirty(&self, blocks: &[u64]) {
        let mut dirty = self.disk_dirty.lock();
        for &b in blocks {
            if !dirty.contains(&b) && dirty.push(b, GFP_KERNEL).is_err() {
                break;
            }
        }
    }

    /// Starts the writer thread for `dev`.
    pub(crate) fn start_writer(self: &Arc<Self>, dev: Arc<Device>) -> Result<KThread> {
        let log = self.clone();
        let name = kernel::str::CString::try_from_fmt(kernel::fmt!("drbd_al_{}", self.minor))?;
        KThread::spawn(&name, move || log.run_writer(&dev))
    }

    /// The writer thread: writes a transaction whenever changes are pending, until stopped.
    fn run_writer(&self, dev: &Device) {
        let Ok(mut tr) = KBox::new(Transaction::default(), GFP_KERNEL) else {
            self.inner.lock().failed = true;
            return;
        };
        let Ok(mut buf) = block_buf() else {
            self.inner.lock().failed = true;
            return;
        };
        loop {
            let mut evicted = [u32::MAX; AL_UPDATES_PER_TRANSACTION];
            {
                let mut inner = self.inner.lock();
                loop {
                    if inner.stopping || crate::sys::thread::should_stop() {
                        return;
                    }
                    let prepared = inner
                        .with(|c| {
                            let ok = c.prepare_transaction(&mut tr);
                            if ok {
                                for (slot, e) in evicted.iter_mut().zip(c.in_flight_evictions()) {
                                    *slot = e;
                                }
                            }
                            ok
                        })
                        .unwrap_or(false);
                    if prepared {
                        break;
                    }
                    let _ = self.changed.wait_interruptible_timeout(
                        &mut inner,
                        kernel::time::msecs_to_jiffies(1000),
                    );
                }
            }
            let place = self.place.lock();
            let ok = self.persist_evicted(dev, &place.bitmap, &evicted).is_ok()
                && as_block(&mut buf).is_ok_and(|block| {
                    tr.encode(block);
                    self.md
                        .write_block(place.layout.al_tr_sector(tr.tr_number), block)
                        .is_ok()
                });
            drop(place);
            let mut inner = self.inner.lock();
            if ok {
                inner.with(|c| c.transaction_written());
            } else {
                inner.with(|c| c.transaction_failed());
                inner.failed = true;
                dev.meta_io_failed();
                pr_err!(
                    "drbd{}: writing the activity log failed; writes fail until detach\n",
                    self.minor
                );
            }
            drop(inner);
            self.changed.notify_all();
        }
    }

    /// Before the log forgets an extent, its marked blocks must be in the on-disk bitmap
    /// (whole extents are set: a superset is safe).
    fn persist_evicted(&self, dev: &Device, bitmap: &DiskBitmap, evicted: &[u32]) -> Result {
        for &e in evicted.iter().filter(|e| **e != u32::MAX) {
            let first = u64::from(e) * 1024;
            if dev.oos.lock().any_in(first, first + 1024) {
                let blocks = bitmap.mark_extent(e)?;
                self.note_disk_dirty(&blocks);
            }
        }
        Ok(())
    }

    /// Moves the ring and the bitmap to `new`: `copy` copies both there (and makes `new`
    /// valid on disk) while no transaction or bitmap write runs. Process context,
    /// `DeviceState` held.
    pub(crate) fn move_place(&self, new: &MdLayout, copy: impl FnOnce() -> Result) -> Result {
        let mut place = self.place.lock();
        copy()?;
        place.bitmap = place.bitmap.moved_to(new);
        place.layout = *new;
        Ok(())
    }
}
