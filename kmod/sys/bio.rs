//! Bios submitted to `/dev/drbd<minor>` and their clones to the backing device.

use super::bdev::BlockDev;
use super::ffi;
use core::ptr::NonNull;
use kernel::bindings;

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

/// A bio handed to our `submit_bio`; it must be completed exactly once.
///
/// # Invariants
/// `ptr` is a valid bio that nobody else completes; ownership of its completion moves with
/// the value (consumed by [`UpperBio::end`] or [`UpperBio::submit_clone`]).
pub(crate) struct UpperBio {
    ptr: NonNull<bindings::bio>,
}

impl UpperBio {
    /// Takes over the completion of `ptr`.
    ///
    /// # Safety
    /// `ptr` is a live bio passed to our `submit_bio` and not completed elsewhere.
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::bio) -> Option<Self> {
        NonNull::new(ptr).map(|ptr| Self { ptr })
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

    /// Completes the bio with a block status (0 = success).
    pub(crate) fn end(self, status: u8) {
        // SAFETY: we own the completion (invariant) and give it up here.
        unsafe {
            (*self.ptr.as_ptr()).bi_status = status;
            bindings::bio_endio(self.ptr.as_ptr());
        }
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
            (*clone).bi_end_io = Some(lower_endio);
            bindings::submit_bio_noacct(clone);
        }
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
        let owner = ffi::shim_bio_disk_private(upper);
        bindings::bio_put(clone);
        (*upper).bi_status = status;
        bindings::bio_endio(upper);
        let device: &crate::device::Device = &*owner.cast::<crate::device::Device>();
        device.lower_done();
    }
}
