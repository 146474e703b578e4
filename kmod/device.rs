//! A device (volume): `/dev/drbd<minor>`, its backing disk and meta-data, and the I/O path.
//!
//! I/O path (`submit`): takes only the `io` spinlock, briefly, to pick the lower device and
//! count the request in flight; completion (`lower_done`, any context) touches only atomics.
//! Detach clears `io.lower` and then waits for the in-flight count to reach zero, so a lower
//! device is never closed under a running request.

use crate::backing::Backing;
use crate::resource::Resource;
use crate::spec::generated::{DiskState, Role};
use crate::sys::bdev::BlockDev;
use crate::sys::bio::{BioList, BioOp, SharedCompletion, UpperBio, STATUS_IOERR, STATUS_NOTSUPP};
use crate::sys::disk::Disk;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use kernel::prelude::*;
use kernel::sync::{Arc, CondVar, Mutex, SpinLock};
use kernel::{new_condvar, new_mutex, new_spinlock};

/// What the I/O path needs, behind a spinlock (never held while sleeping).
pub(crate) struct DeviceIo {
    /// Where reads and writes go; `None` while diskless.
    pub(crate) lower: Option<Arc<BlockDev>>,
    /// Writes allowed (the resource is Primary).
    pub(crate) writable: bool,
    /// Activity log of the attached disk.
    pub(crate) al: Option<Arc<crate::activity_log::ActivityLog>>,
    /// Size of the data area in sectors (0 while diskless): peers may write only below it.
    pub(crate) data_sectors: u64,
    /// Application I/O is suspended (`suspend-io`): new bios are held, not started.
    pub(crate) frozen: bool,
    /// Bios that arrived while frozen, restarted in order by [`Device::thaw`].
    pub(crate) held: BioList,
}

/// Slow-path state, behind `Device::state` (process context only).
pub(crate) struct DeviceState {
    /// The gendisk; taken out (and removed) by `del-minor`.
    pub(crate) disk: Option<Disk>,
    /// Local disk state.
    pub(crate) disk_state: DiskState,
    /// Backing and meta-data devices while attached.
    pub(crate) backing: Option<Backing>,
    /// Number of current opens of `/dev/drbd<minor>`.
    pub(crate) openers: u32,
    /// Set by `del-minor`: refuse new opens.
    pub(crate) removing: bool,
    /// Peers (bit per node id) this node was not connected to when it last went down as
    /// Primary: `wait-connect` uses `degr-wfc-timeout` for them (`crate::wfc`).
    pub(crate) degr_wfc: u32,
    /// Attached while connected: the next sync decision treats the disk as Negotiating (a
    /// Primary's returning disk may become SyncTarget), and reads go to the peer until then.
    pub(crate) negotiating: bool,
    /// The I/O error worker (`crate::io_error`), started at the first attach.
    pub(crate) worker: Option<crate::sys::thread::KThread>,
}

/// Counters reported in `DEVICE_STATISTICS`.
#[derive(Default)]
pub(crate) struct DeviceCounters {
    /// KiB read through the device.
    pub(crate) read_kib: AtomicU64,
    /// KiB written through the device.
    pub(crate) written_kib: AtomicU64,
}

/// A volume of a resource.
///
/// Lifetime: created by `new-minor`; one `Arc` is owned by the resource's device list, one by
/// the gendisk (released by the block layer's `free_disk`), and short-lived ones by requests
/// being configured. Lock order: see `resource.rs`.
#[pin_data]
pub(crate) struct Device {
    /// Minor number (immutable).
    pub(crate) minor: u32,
    /// Volume number within the resource (immutable).
    pub(crate) volume: u32,
    /// Owning resource.
    pub(crate) resource: Arc<Resource>,
    /// Slow-path state.
    #[pin]
    pub(crate) state: Mutex<DeviceState>,
    /// Fast-path state.
    #[pin]
    pub(crate) io: SpinLock<DeviceIo>,
    /// Requests submitted to the lower device and not completed yet.
    pub(crate) inflight: AtomicUsize,
    /// Of those, the local parts of mirrored writes (counted under `sync_lock`, so once it
    /// is held this only falls; reads never count): what a resync or verify read waits for.
    pub(crate) ordered_writes: AtomicUsize,
    /// Statistics.
    pub(crate) counters: DeviceCounters,
    /// Orders mirrored writes against resync reads and verify requests (see `replication.rs`
    /// and `verify.rs`; held briefly by a write, not across its send); holds the chunk the
    /// resync reads ahead, which a mirrored write that overlaps it spoils, and the verify
    /// requests in flight, which a write to their block makes inconclusive.
    #[pin]
    pub(crate) sync_lock: Mutex<crate::proto::resync_order::WriteOrder>,
    /// Blocks the peer does not have (spinlock: set from the I/O path).
    #[pin]
    pub(crate) oos: SpinLock<crate::oos::OosMap>,
    /// Local I/O errors reported by completions (irq-saving: any context), for the worker.
    #[pin]
    pub(crate) errors: crate::sys::irqlock::IrqSpinLock<crate::io_error::ErrorQueue>,
    /// Wakes the worker.
    #[pin]
    pub(crate) errors_cv: CondVar,
}

impl Device {
    /// Creates the device and publishes `/dev/drbd<minor>` (size 0 until attached).
    pub(crate) fn create(resource: Arc<Resource>, minor: u32, volume: u32) -> Result<Arc<Self>> {
        let disk = Disk::new(minor)?;
        let device = Arc::pin_init(
            pin_init!(Self {
                minor,
                volume,
                resource,
                state <- new_mutex!(
                    DeviceState {
                        disk: Some(disk),
                        disk_state: DiskState::Diskless,
                        backing: None,
                        openers: 0,
                        removing: false,
                        degr_wfc: 0,
                        negotiating: false,
                        worker: None,
                    },
                    "Device::state"
                ),
                io <- new_spinlock!(
                    DeviceIo {
                        lower: None,
                        writable: false,
                        al: None,
                        data_sectors: 0,
                        frozen: false,
                        held: BioList::new(),
                    },
                    "Device::io"
                ),
                inflight: AtomicUsize::new(0),
                ordered_writes: AtomicUsize::new(0),
                counters: DeviceCounters::default(),
                sync_lock <- new_mutex!(
                    crate::proto::resync_order::WriteOrder::new(),
                    "Device::sync_lock"
                ),
                oos <- new_spinlock!(crate::oos::OosMap::empty(), "Device::oos"),
                errors <- crate::new_irq_spinlock!(
                    crate::io_error::ErrorQueue::new(),
                    "Device::errors"
                ),
                errors_cv <- new_condvar!("Device::errors_cv"),
            }),
            GFP_KERNEL,
        )?;
        let owner = device.clone();
        {
            let mut st = device.state.lock();
            if let Some(disk) = st.disk.as_mut() {
                disk.add(owner)?;
            }
        }
        Ok(device)
    }

    /// Handles a bio submitted to `/dev/drbd<minor>` (submitter's context; may sleep on the
    /// replication send path, never on locks held by completions).
    pub(crate) fn submit(self: &Arc<Self>, bio: UpperBio) {
        let bio = {
            let mut io = self.io.lock();
            if io.frozen {
                // Held, not failed: `resume-io` (or `down`) restarts it.
                io.held.push(bio);
                return;
            }
            bio
        };
        self.start(bio);
    }

    /// Suspends application I/O: bios submitted from now on wait in `io.held`.
    pub(crate) fn freeze(&self) {
        self.io.lock().frozen = true;
    }

    /// Ends a suspension: restarts the held bios in their order, then lets new ones through
    /// (bios arriving meanwhile queue behind the held ones). Process context, no lock held:
    /// restarting takes the locks of the write path.
    pub(crate) fn thaw(self: &Arc<Self>) {
        loop {
            let next = {
                let mut io = self.io.lock();
                match io.held.pop() {
                    Some(bio) => bio,
                    None => {
                        io.frozen = false;
                        return;
                    }
                }
            };
            self.start(next);
        }
    }

    /// Bios held by a suspension.
    pub(crate) fn held_count(&self) -> usize {
        self.io.lock().held.len()
    }

    /// Starts a bio: local disk and, for a Primary's writes, the peers; without a usable
    /// local disk, the peer alone (`proto::io_error::read_source`).
    fn start(self: &Arc<Self>, bio: UpperBio) {
        let op = bio.op();
        let changes_data = matches!(op, BioOp::Write | BioOp::Discard);
        // An empty write is a pure cache flush: on a mirroring Primary it also waits until
        // the peer has every completed write stable (`crate::barrier`).
        let carries_data = bio.size() > 0;
        if op == BioOp::Write && !carries_data && bio.is_preflush() {
            if let crate::replication::WritePath::Mirror(_, link, _) =
                crate::replication::write_target(self)
            {
                let lower = self.start_lower_io();
                crate::barrier::mirror_flush(self, bio, lower.as_deref(), &link);
                return;
            }
        }
        if op == BioOp::Read {
            self.read(bio);
            return;
        }
        let log = {
            let io = self.io.lock();
            (changes_data && carries_data && io.writable).then(|| io.al.clone())
        };
        if let Some(log) = log {
            // Record the extents first: after a crash, they are what gets resynced.
            let mut local = true;
            let al = match log.map(|l| l.begin(bio.sector(), u64::from(bio.size()) / 512)) {
                Some(Ok(r)) => Some(r),
                Some(Err(_)) => {
                    // The activity log cannot be written: the disk goes (meta-data errors
                    // always detach); a peer may still take the write.
                    self.meta_io_failed();
                    local = false;
                    None
                }
                None => None,
            };
            let path = crate::replication::write_target(self);
            if matches!(path, crate::replication::WritePath::Degraded) {
                // The peer misses this write: remember the blocks for the next resync.
                self.oos.lock().mark(bio.sector(), u64::from(bio.size()));
            }
            if let crate::replication::WritePath::Mirror(conn, link, protocol) = path {
                if op == BioOp::Discard {
                    // Discards are not mirrored yet; refusing keeps the replicas identical.
                    bio.end(STATUS_NOTSUPP);
                    return;
                }
                self.counters
                    .written_kib
                    .fetch_add(u64::from(bio.size()) / 1024, Ordering::Relaxed);
                // Ordering against the resync: a chunk whose read started before this note
                // is dropped (`ReadAhead`); one whose read starts later drains this write's
                // local part first (it is counted in flight under the same lock), so it reads
                // the new data. Either way the send itself need not hold the lock.
                let lower = {
                    let mut order = self.sync_lock.lock();
                    order.note_write(bio.sector(), u64::from(bio.size()) / 512);
                    // Diskless (or the disk is failing): the peer alone stores the write.
                    let lower = if local { self.start_lower_io() } else { None };
                    if lower.is_some() {
                        self.ordered_writes.fetch_add(1, Ordering::AcqRel);
                    }
                    lower
                };
                crate::replication::mirror_write(
                    self,
                    bio,
                    lower.as_deref(),
                    &conn,
                    &link,
                    protocol,
                    al,
                );
                return;
            }
            if !local {
                bio.end(STATUS_IOERR);
                return;
            }
            if al.is_some() {
                self.counters
                    .written_kib
                    .fetch_add(u64::from(bio.size()) / 1024, Ordering::Relaxed);
                self.write_local(bio, al);
                return;
            }
        }
        let lower = {
            let io = self.io.lock();
            match &io.lower {
                Some(lower) if io.writable || !changes_data => {
                    self.inflight.fetch_add(1, Ordering::AcqRel);
                    lower.clone()
                }
                _ => {
                    drop(io);
                    // A diskless node's cache flush has nothing to flush (the peer orders
                    // its own writes); anything else needs the disk.
                    bio.end(if op == BioOp::Flush { 0 } else { STATUS_IOERR });
                    return;
                }
            }
        };
        let kib = u64::from(bio.size()) / 1024;
        if op == BioOp::Write {
            self.counters.written_kib.fetch_add(kib, Ordering::Relaxed);
        }
        bio.submit_clone(&lower);
    }

    /// A read: from the local disk if it has current data (a failure retries on a peer),
    /// else from a peer with UpToDate data.
    fn read(self: &Arc<Self>, bio: UpperBio) {
        // Decided before the request counts as in flight: a detach drains under the state
        // lock.
        let disk = {
            let st = self.state.lock();
            if st.negotiating {
                DiskState::Negotiating
            } else {
                st.disk_state
            }
        };
        let source = crate::proto::io_error::read_source(
            crate::io_error::IntoProto::into_proto(disk),
            // A SyncTarget does not know which blocks the source still sends.
            disk != DiskState::Inconsistent,
            true,
        );
        if source == crate::proto::io_error::ReadSource::Local {
            let lower = {
                let io = self.io.lock();
                io.lower.clone().inspect(|_| {
                    self.inflight.fetch_add(1, Ordering::AcqRel);
                })
            };
            if let Some(lower) = lower {
                self.counters
                    .read_kib
                    .fetch_add(u64::from(bio.size()) / 1024, Ordering::Relaxed);
                bio.submit_read(&lower);
                return;
            }
        }
        crate::remote_read::submit(self, bio);
    }

    /// A Primary's write that goes to the local disk only, holding its activity-log extents
    /// until the local write completed.
    fn write_local(self: &Arc<Self>, bio: UpperBio, al: Option<crate::activity_log::AlRef>) {
        let Some(lower) = self.start_lower_io() else {
            bio.end(STATUS_IOERR);
            return;
        };
        let req = {
            let _noio = crate::sys::misc::NoIoScope::enter();
            SharedCompletion::new(bio, 2, self.clone(), al, None)
        };
        match req {
            Ok(req) => {
                req.submit_local(&lower);
                req.part_done(false);
            }
            Err(bio) => {
                self.lower_done();
                bio.end(STATUS_IOERR);
            }
        }
    }

    /// Counts a request in flight to the lower device and returns that device, if attached
    /// and writable.
    fn start_lower_io(&self) -> Option<Arc<BlockDev>> {
        let io = self.io.lock();
        let lower = io.lower.as_ref().filter(|_| io.writable)?.clone();
        self.inflight.fetch_add(1, Ordering::AcqRel);
        Some(lower)
    }

    /// A lower request completed (any context). The last access to `self` by that request.
    pub(crate) fn lower_done(&self) {
        self.inflight.fetch_sub(1, Ordering::AcqRel);
    }

    /// The local part of a mirrored write finished (any context; before `lower_done`).
    pub(crate) fn ordered_write_done(&self) {
        self.ordered_writes.fetch_sub(1, Ordering::AcqRel);
    }

    /// Waits until the local parts of mirrored writes in flight finished (process context,
    /// `sync_lock` held: no new one starts meanwhile). Reads go on: they change nothing.
    pub(crate) fn drain_writes(&self) {
        while self.ordered_writes.load(Ordering::Acquire) != 0 {
            crate::sys::misc::sleep_ms(1);
        }
    }

    /// Waits until no request is in flight to the lower device (process context).
    pub(crate) fn drain(&self) {
        while self.inflight.load(Ordering::Acquire) != 0 {
            crate::sys::misc::sleep_ms(1);
        }
    }

    /// Block-device open: DRBD's role rules (auto-promote on open for writing; a Secondary may
    /// only be opened read-only, and only with UpToDate data).
    pub(crate) fn open(&self, write: bool) -> Result {
        if write && self.resource.state.lock().options.auto_promote {
            // Fencing an unreachable peer runs a helper: not under the resource lock.
            if let Err(failure) = crate::fence::before_promotion(&self.resource, false) {
                pr_info!(
                    "{}: Auto-promote failed: {}\n",
                    self.resource.name,
                    failure.text()
                );
                return Err(EROFS);
            }
        }
        let mut rs = self.resource.state.lock();
        {
            let st = self.state.lock();
            if st.removing {
                return Err(ENXIO);
            }
        }
        if rs.role != Role::Primary {
            if write {
                if !rs.options.auto_promote {
                    return Err(EROFS);
                }
                if let Err(failure) = crate::role::promote(&self.resource, &mut rs, false) {
                    pr_info!(
                        "{}: Auto-promote failed: {}\n",
                        self.resource.name,
                        failure.text()
                    );
                    return Err(EROFS);
                }
                rs.auto_promoted = true;
            } else if self.state.lock().disk_state != DiskState::UpToDate {
                return Err(crate::sys::misc::errno(kernel::bindings::EMEDIUMTYPE));
            }
        }
        let mut st = self.state.lock();
        st.openers += 1;
        if st.openers == 1 {
            crate::events::device(self, &st, crate::events::Kind::Change);
        }
        Ok(())
    }

    /// Block-device release: auto-demote after the last close if the open auto-promoted.
    pub(crate) fn release(&self) {
        let mut rs = self.resource.state.lock();
        {
            let mut st = self.state.lock();
            st.openers = st.openers.saturating_sub(1);
            if st.openers == 0 {
                crate::events::device(self, &st, crate::events::Kind::Change);
            }
        }
        let all_closed = rs.devices().all(|d| d.state.lock().openers == 0);
        if all_closed && rs.auto_promoted && rs.role == Role::Primary {
            if crate::role::demote(&self.resource, &mut rs).is_ok() {
                rs.auto_promoted = false;
            }
        }
    }

    /// Opens the lower device for the I/O path (attach).
    pub(crate) fn set_lower(
        &self,
        lower: Option<Arc<BlockDev>>,
        data_sectors: u64,
        writable: bool,
    ) {
        let mut io = self.io.lock();
        io.lower = lower;
        io.data_sectors = data_sectors;
        io.writable = writable;
    }

    /// A new data-area size (online grow); the lower device stays.
    pub(crate) fn set_data_sectors(&self, data_sectors: u64) {
        self.io.lock().data_sectors = data_sectors;
    }

    /// The lower device and the data-area size, for a peer's write of `sectors` at `sector`:
    /// `None` if diskless or if the range leaves the data area (the meta-data behind it is
    /// never writable by a peer). Any context.
    pub(crate) fn peer_target(&self, sector: u64, sectors: u64) -> Option<Arc<BlockDev>> {
        let io = self.io.lock();
        let end = sector.checked_add(sectors)?;
        if end > io.data_sectors {
            return None;
        }
        io.lower.clone()
    }

    /// Publishes (or withdraws) the activity log of the attached disk.
    pub(crate) fn set_al(&self, al: Option<Arc<crate::activity_log::ActivityLog>>) {
        let old = core::mem::replace(&mut self.io.lock().al, al);
        drop(old);
    }

    /// Allows or forbids writes (role change).
    pub(crate) fn set_writable(&self, writable: bool) {
        self.io.lock().writable = writable;
    }
}
