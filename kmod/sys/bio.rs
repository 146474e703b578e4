//! Bios submitted to `/dev/drbd<minor>` and their clones to the backing device.

use super::bdev::BlockDev;
use super::ffi;
use core::ptr::NonNull;
use kernel::bindings;
use kernel::prelude::*;

/// The kind of operation of a bio, as far as replication cares.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum BioOp {
    /// Read data.
    Read,
    /// Write data.
    Write,
    /// Cache flush without data.
    Flush,
    /// Discard, secure erase or write-zeroes: changes data without a payload.
    Discard,
    /// Anything else (zone management, driver private).
    Other,
}

/// `BLK_STS_IOERR`.
pub(crate) const STATUS_IOERR: u8 = 10;
/// `BLK_STS_NOTSUPP`.
pub(crate) const STATUS_NOTSUPP: u8 = 1;

/// A bio handed to our `submit_bio`; it must be completed exactly once.
///
/// # Invariants
/// `ptr` is a valid bio that nobody else completes; ownership of its completion moves with
/// the value (consumed by [`UpperBio::end`] or [`UpperBio::submit_clone`]). Its I/O
/// statistics were started at `acct_start` and are ended right before its completion.
pub(crate) struct UpperBio {
    ptr: NonNull<bindings::bio>,
    /// Jiffies when its I/O accounting (`/proc/diskstats` of the drbd disk) started.
    acct_start: usize,
}

// SAFETY: a bio may be completed (and its pages filled) from any thread; the value is the
// only handle to its completion (invariant).
unsafe impl Send for UpperBio {}

impl UpperBio {
    /// Takes over the completion of `ptr` and starts its I/O accounting.
    ///
    /// # Safety
    /// `ptr` is a live bio passed to our `submit_bio` and not completed elsewhere.
    pub(crate) unsafe fn accept(ptr: *mut bindings::bio) -> Option<Self> {
        NonNull::new(ptr).map(|ptr| Self {
            ptr,
            // SAFETY: `ptr` is a live bio of our disk (caller).
            acct_start: unsafe { bindings::bio_start_io_acct(ptr.as_ptr()) },
        })
    }

    /// Takes over the completion of `ptr`, whose accounting started at `acct_start`.
    ///
    /// # Safety
    /// `ptr` is a live bio accepted by [`UpperBio::accept`], whose completion the caller
    /// owns.
    unsafe fn resume(ptr: *mut bindings::bio, acct_start: usize) -> Option<Self> {
        NonNull::new(ptr).map(|ptr| Self { ptr, acct_start })
    }

    /// The operation.
    pub(crate) fn op(&self) -> BioOp {
        // SAFETY: `ptr` is valid (invariant).
        match unsafe { ffi::shim_bio_op(self.ptr.as_ptr()) } {
            bindings::req_op_REQ_OP_READ => BioOp::Read,
            bindings::req_op_REQ_OP_WRITE => BioOp::Write,
            bindings::req_op_REQ_OP_FLUSH => BioOp::Flush,
            bindings::req_op_REQ_OP_DISCARD
            | bindings::req_op_REQ_OP_SECURE_ERASE
            | bindings::req_op_REQ_OP_WRITE_ZEROES => BioOp::Discard,
            _ => BioOp::Other,
        }
    }

    /// Payload size in bytes.
    pub(crate) fn size(&self) -> u32 {
        // SAFETY: `ptr` is valid (invariant).
        unsafe { (*self.ptr.as_ptr()).bi_iter.bi_size }
    }

    /// First sector.
    pub(crate) fn sector(&self) -> u64 {
        // SAFETY: `ptr` is valid (invariant).
        unsafe { ffi::shim_bio_sector(self.ptr.as_ptr()) }
    }

    /// Forced unit access requested.
    pub(crate) fn is_fua(&self) -> bool {
        // SAFETY: `ptr` is valid (invariant).
        unsafe {
            ffi::shim_bio_opf(self.ptr.as_ptr()) & (1 << bindings::req_flag_bits___REQ_FUA) != 0
        }
    }

    /// Cache flush before the write requested.
    pub(crate) fn is_preflush(&self) -> bool {
        // SAFETY: `ptr` is valid (invariant).
        unsafe {
            ffi::shim_bio_opf(self.ptr.as_ptr()) & (1 << bindings::req_flag_bits___REQ_PREFLUSH)
                != 0
        }
    }

    /// Completes the bio with a block status (0 = success).
    pub(crate) fn end(self, status: u8) {
        // SAFETY: we own the completion (invariant) and give it up here.
        unsafe { complete_upper(self.ptr.as_ptr(), self.acct_start, status) }
    }

    /// Sends a clone to `lower`; the upper bio is completed with the clone's status by
    /// [`lower_endio`], which then calls `done` with the upper bio's disk private data.
    pub(crate) fn submit_clone(self, lower: &BlockDev) {
        let upper = self.ptr.as_ptr();
        // SAFETY: `upper` is valid and `lower` is an open block device; the clone comes from a
        // mempool-backed bio_set with GFP_NOIO, which does not fail.
        unsafe {
            let clone = ffi::shim_bio_clone(upper, lower.raw());
            (*clone).bi_private = upper.cast();
            ffi::shim_clone_set_acct(clone, self.acct_start);
            (*clone).bi_end_io = Some(lower_endio);
            bindings::submit_bio_noacct(clone);
        }
    }
}

impl UpperBio {
    /// Sends a read clone to `lower`; a failed read does not complete the upper bio but hands
    /// it to the device (`Device::local_read_failed`), which retries it on a peer. The caller
    /// counted the request in flight; the completion ends it.
    pub(crate) fn submit_read(self, lower: &BlockDev) {
        let upper = self.ptr.as_ptr();
        // SAFETY: as in `submit_clone`.
        unsafe {
            let clone = ffi::shim_bio_clone(upper, lower.raw());
            (*clone).bi_private = upper.cast();
            ffi::shim_clone_set_acct(clone, self.acct_start);
            (*clone).bi_end_io = Some(read_endio);
            bindings::submit_bio_noacct(clone);
        }
    }

    /// Receives the bio's whole payload from `sock` into its own pages (a read served by a
    /// peer, `P_DATA_REPLY`).
    pub(crate) fn recv_payload(&mut self, sock: &super::socket::Socket) -> Result {
        // SAFETY: `ptr` is valid (invariant) and we own its completion, so nobody else
        // touches its pages until we end it.
        unsafe { sock.recv_bio(self.ptr.as_ptr()) }
    }
}

/// Ends the I/O accounting of an upper bio and completes it with `status` (any context).
///
/// # Safety
/// `upper` is a live bio accepted by [`UpperBio::accept`] whose completion the caller owns
/// and gives up here.
unsafe fn complete_upper(upper: *mut bindings::bio, acct_start: usize, status: u8) {
    // SAFETY: `upper` is live until `bio_endio` (caller); its `bi_bdev` is our disk, whose
    // statistics the accounting started on.
    unsafe {
        (*upper).bi_status = status;
        bindings::bio_end_io_acct_remapped(upper, acct_start, (*upper).bi_bdev);
        bindings::bio_endio(upper);
    }
}

/// Completion of a read clone (any context): success ends the upper bio; a failure gives it
/// to the device for a retry elsewhere. Never sleeps.
///
/// # Safety
/// Called by the block layer once per clone made by [`UpperBio::submit_read`].
unsafe extern "C" fn read_endio(clone: *mut bindings::bio) {
    // SAFETY: as in `lower_endio`; on failure the upper bio's completion moves into an
    // `UpperBio` handed to the device, which outlives its in-flight requests.
    unsafe {
        let upper: *mut bindings::bio = (*clone).bi_private.cast();
        let status = (*clone).bi_status;
        let acct_start = ffi::shim_clone_acct(clone);
        let owner = ffi::shim_bio_disk_private(upper);
        bindings::bio_put(clone);
        let device: &crate::device::Device = &*owner.cast::<crate::device::Device>();
        if status == 0 {
            complete_upper(upper, acct_start, 0);
        } else if let Some(bio) = UpperBio::resume(upper, acct_start) {
            device.local_read_failed(bio);
        }
        device.lower_done();
    }
}

/// Completion of a clone (any context, including hard interrupts): passes the status up, then
/// tells the device that one lower request finished. Never sleeps.
///
/// # Safety
/// Called by the block layer once per clone made by [`UpperBio::submit_clone`].
unsafe extern "C" fn lower_endio(clone: *mut bindings::bio) {
    // SAFETY: `clone` is our clone; `bi_private` is the upper bio we still own the completion
    // of. The upper bio's disk stays alive until its completion has been signalled, and the
    // device it points to stays alive until its in-flight count reaches zero (see
    // `Device::lower_done`), which is the last thing we do.
    unsafe {
        let upper: *mut bindings::bio = (*clone).bi_private.cast();
        let status = (*clone).bi_status;
        let acct_start = ffi::shim_clone_acct(clone);
        let owner = ffi::shim_bio_disk_private(upper);
        bindings::bio_put(clone);
        complete_upper(upper, acct_start, status);
        let device: &crate::device::Device = &*owner.cast::<crate::device::Device>();
        device.lower_done();
    }
}

/// Completion of an upper bio that is split into several parts (the local write, the peer's
/// acknowledgement, and the submitter itself): the last part to finish completes the bio. It
/// succeeds if any part stored the data (`proto::io_error::request_ok`): a failed local write
/// is hidden when a peer has the data, and a peer that missed it is resynced later.
///
/// # Invariants
/// `upper` is taken exactly once, by the caller that brings `remaining` to zero.
pub(crate) struct SharedCompletion {
    upper: core::cell::UnsafeCell<Option<UpperBio>>,
    remaining: core::sync::atomic::AtomicU32,
    /// Some part stored the data (the local disk or a peer).
    stored: core::sync::atomic::AtomicBool,
    /// The device the local part is submitted to (its in-flight count is ours).
    device: kernel::sync::Arc<crate::device::Device>,
    /// First sector and length in bytes (for out-of-sync marking).
    sector: u64,
    len: u32,
    /// Activity-log extents held until the request is finished towards every peer (released
    /// when the last reference goes, in any context).
    _al: Option<crate::activity_log::AlRef>,
    /// The link's epoch clock, told at the upward completion (mirrored writes only).
    clock: Option<kernel::sync::Arc<crate::transfer_log::EpochClock>>,
    /// The epoch the write was sent in ([`crate::transfer_log::stamp`]; 0 = not sent).
    epoch: core::sync::atomic::AtomicU64,
    /// The local part is a mirrored write counted in `Device::ordered_writes`.
    ordered: core::sync::atomic::AtomicBool,
}

// SAFETY: the cell is only accessed by the single caller that finishes the last part.
unsafe impl Send for SharedCompletion {}
// SAFETY: see above; everything else is atomic.
unsafe impl Sync for SharedCompletion {}

impl SharedCompletion {
    /// Wraps `upper`, completed after `parts` calls of [`SharedCompletion::part_done`].
    pub(crate) fn new(
        upper: UpperBio,
        parts: u32,
        device: kernel::sync::Arc<crate::device::Device>,
        al: Option<crate::activity_log::AlRef>,
        clock: Option<kernel::sync::Arc<crate::transfer_log::EpochClock>>,
    ) -> Result<kernel::sync::Arc<Self>, UpperBio> {
        let (raw, acct_start) = (upper.ptr, upper.acct_start);
        let (sector, len) = (upper.sector(), upper.size());
        let value = Self {
            sector,
            len,
            upper: core::cell::UnsafeCell::new(Some(upper)),
            remaining: core::sync::atomic::AtomicU32::new(parts),
            stored: core::sync::atomic::AtomicBool::new(false),
            device,
            _al: al,
            clock,
            epoch: core::sync::atomic::AtomicU64::new(0),
            ordered: core::sync::atomic::AtomicBool::new(false),
        };
        kernel::sync::Arc::new(value, kernel::alloc::flags::GFP_KERNEL)
            // INVARIANT: allocation failed before anyone could see the value; give it back.
            .map_err(|_| UpperBio {
                ptr: raw,
                acct_start,
            })
    }

    /// Whether this request writes any of `sectors` at `sector` of `device`.
    pub(crate) fn overlaps(
        &self,
        device: &crate::device::Device,
        sector: u64,
        sectors: u64,
    ) -> bool {
        let end = self.sector.saturating_add(u64::from(self.len) / 512);
        core::ptr::eq(&*self.device, device)
            && self.sector < sector.saturating_add(sectors)
            && sector < end
    }

    /// The peer did not confirm this write: its blocks must be resynced.
    pub(crate) fn mark_out_of_sync(&self) {
        self.device
            .oos
            .lock()
            .mark(self.sector, u64::from(self.len));
    }

    /// The write was sent in the epoch `stamp` stands for (before the submitter's part ends).
    pub(crate) fn set_epoch(&self, stamp: u64) {
        self.epoch
            .store(stamp, core::sync::atomic::Ordering::Release);
    }

    /// One part finished (any context); `stored`: this part holds the data now (the local
    /// write succeeded, the peer received or wrote it, protocol A's send went out). The
    /// submitter's own part stores nothing.
    pub(crate) fn part_done(&self, stored: bool) {
        if stored {
            self.stored
                .store(true, core::sync::atomic::Ordering::Release);
        }
        if self
            .remaining
            .fetch_sub(1, core::sync::atomic::Ordering::AcqRel)
            == 1
        {
            // Before the upper bio ends: a write issued after it must land in a later epoch.
            if let Some(clock) = &self.clock {
                clock.note(self.epoch.load(core::sync::atomic::Ordering::Acquire));
            }
            // SAFETY: we brought `remaining` to zero, so nobody else touches the cell.
            let upper = unsafe { (*self.upper.get()).take() };
            if let Some(upper) = upper {
                let stored = self.stored.load(core::sync::atomic::Ordering::Acquire);
                upper.end(if stored { 0 } else { STATUS_IOERR });
            }
        }
    }

    /// The local part is a mirrored write the caller counted in `Device::ordered_writes`
    /// (under `Device::sync_lock`); its completion uncounts it. Before `submit_local`.
    pub(crate) fn set_ordered(&self) {
        self.ordered
            .store(true, core::sync::atomic::Ordering::Release);
    }

    /// Submits the local part to `lower`; its completion calls `part_done` and the device's
    /// `lower_done`. The caller must still hold its own part.
    pub(crate) fn submit_local(self: &kernel::sync::Arc<Self>, lower: &BlockDev) {
        // SAFETY: the caller holds a part, so `remaining > 0` and the bio is still in the cell.
        let upper = unsafe { (*self.upper.get()).as_ref().map(|u| u.ptr.as_ptr()) };
        let Some(upper) = upper else { return };
        let ctx = kernel::sync::Arc::into_raw(self.clone());
        // SAFETY: `upper` is a live bio; the clone comes from a mempool-backed bio_set.
        unsafe {
            let clone = ffi::shim_bio_clone(upper, lower.raw());
            (*clone).bi_private = ctx as *mut core::ffi::c_void;
            (*clone).bi_end_io = Some(split_endio);
            bindings::submit_bio_noacct(clone);
        }
    }

    /// Sends the upper bio's payload on `sock` (the caller holds a part); `zero_copy` and
    /// `more` as [`super::socket::Socket::send_bio`].
    pub(crate) fn send_payload(
        &self,
        sock: &super::socket::Socket,
        zero_copy: bool,
        more: bool,
    ) -> Result {
        // SAFETY: the caller holds a part, so the bio is still in the cell.
        let upper = unsafe { (*self.upper.get()).as_ref().map(|u| u.ptr.as_ptr()) };
        match upper {
            Some(bio) => sock.send_bio(bio, zero_copy, more),
            None => Err(EINVAL),
        }
    }
}

/// Completion of the local part of a split request (any context; never sleeps).
///
/// # Safety
/// Called by the block layer once per clone made by [`SharedCompletion::submit_local`].
unsafe extern "C" fn split_endio(clone: *mut bindings::bio) {
    // SAFETY: `bi_private` holds the `Arc` leaked by `submit_local`; we take it back once.
    unsafe {
        let ctx = kernel::sync::Arc::from_raw((*clone).bi_private as *const SharedCompletion);
        let ok = (*clone).bi_status == 0;
        bindings::bio_put(clone);
        let device = ctx.device.clone();
        if !ok {
            // Recorded before the part ends: the device's worker marks the blocks and
            // applies `on-io-error` (process context).
            device.local_write_failed(ctx.sector, ctx.len);
        }
        let ordered = ctx.ordered.load(core::sync::atomic::Ordering::Acquire);
        ctx.part_done(ok);
        drop(ctx);
        if ordered {
            device.ordered_write_done();
        }
        device.lower_done();
    }
}

/// Upper bios held back while I/O is suspended (`suspend-io`), in submission order, linked
/// through `bi_next` like the kernel's `bio_list` (no allocation, so holding never fails).
/// A held bio stays counted in flight; its latency statistics start again when it leaves.
///
/// # Invariants
/// Every bio reachable from `head` is owned by the list (taken over from an [`UpperBio`]);
/// `tail` is the last one (or `None` with `head`); `len` counts them.
///
/// Locking: lives in `Device::io` (a spinlock); pushing and popping never sleep.
pub(crate) struct BioList {
    head: Option<NonNull<bindings::bio>>,
    tail: Option<NonNull<bindings::bio>>,
    len: usize,
}

// SAFETY: the list owns its bios (invariant); they may be completed from any thread.
unsafe impl Send for BioList {}

impl BioList {
    /// An empty list.
    pub(crate) const fn new() -> Self {
        Self {
            head: None,
            tail: None,
            len: 0,
        }
    }

    /// Number of bios held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends `bio` (the list now owns its completion).
    pub(crate) fn push(&mut self, bio: UpperBio) {
        // The value is taken apart (it has no destructor): the list owns the bio from here.
        let UpperBio { ptr, .. } = bio;
        // SAFETY: we own `ptr` now; `bi_next` is unused by a bio-based driver's own bios, and
        // `tail` is a bio we own (invariant).
        unsafe {
            (*ptr.as_ptr()).bi_next = core::ptr::null_mut();
            match self.tail {
                Some(t) => (*t.as_ptr()).bi_next = ptr.as_ptr(),
                None => self.head = Some(ptr),
            }
        }
        self.tail = Some(ptr);
        self.len += 1;
    }

    /// Takes the oldest bio out.
    pub(crate) fn pop(&mut self) -> Option<UpperBio> {
        let head = self.head?;
        // SAFETY: `head` is owned by the list (invariant); unlinking hands its ownership out.
        unsafe {
            self.head = NonNull::new((*head.as_ptr()).bi_next);
            (*head.as_ptr()).bi_next = core::ptr::null_mut();
        }
        if self.head.is_none() {
            self.tail = None;
        }
        self.len -= 1;
        Some(UpperBio {
            ptr: head,
            // SAFETY: `jiffies` is the kernel's tick counter, always mapped; it changes under
            // us, hence the volatile read (what C's `jiffies` macro does).
            acct_start: unsafe { core::ptr::read_volatile(&raw const bindings::jiffies) },
        })
    }
}

impl Drop for BioList {
    /// Bios still held when the device goes away fail instead of hanging their submitter.
    fn drop(&mut self) {
        while let Some(bio) = self.pop() {
            bio.end(STATUS_IOERR);
        }
    }
}
