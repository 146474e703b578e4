//! The `/dev/drbd<minor>` gendisk: a bio-based disk whose private data is an `Arc` of the
//! device object, released by the block layer's `free_disk` callback.

use super::bdev::BlockDev;
use super::ffi;
use kernel::bindings;
use kernel::error::{from_err_ptr, to_result};
use kernel::prelude::*;
use kernel::sync::Arc;

/// A gendisk we allocated.
///
/// # Invariants
/// `ptr` is a valid gendisk from `shim_alloc_disk`. We hold one reference; `added` tells whether
/// `device_add_disk` succeeded. Once added, the disk's private data owns one `Arc<T>` that the
/// `free_disk` entry point releases.
///
/// Locking: `add`/`remove` are called by the configuration path only (serialised by the
/// registry lock); capacity updates are safe at any time in process context.
pub(crate) struct Disk {
    ptr: *mut bindings::gendisk,
    added: bool,
}

// SAFETY: gendisk functions used here may be called from any process context thread.
unsafe impl Send for Disk {}
// SAFETY: `&Disk` methods only call thread-safe block layer functions.
unsafe impl Sync for Disk {}

impl Disk {
    /// Allocates (but does not publish) `/dev/drbd<minor>`.
    pub(crate) fn new(minor: u32) -> Result<Self> {
        // SAFETY: plain allocation; private data is set in `add`.
        let ptr = from_err_ptr(unsafe { ffi::shim_alloc_disk(minor, core::ptr::null_mut()) })?;
        // INVARIANT: `ptr` was just allocated and not added.
        Ok(Self { ptr, added: false })
    }

    /// Publishes the disk; from now on the block layer may call the entry points with `owner`.
    pub(crate) fn add<T: Send + Sync>(&mut self, owner: Arc<T>) -> Result {
        let raw = Arc::into_raw(owner) as *mut core::ffi::c_void;
        // SAFETY: `ptr` is a valid, not yet added gendisk; we store the Arc before publishing.
        let ret = unsafe {
            (*self.ptr).private_data = raw;
            bindings::device_add_disk(core::ptr::null_mut(), self.ptr, core::ptr::null_mut())
        };
        if ret != 0 {
            // SAFETY: the disk was not added, so nobody else saw `raw`; take the Arc back.
            unsafe {
                (*self.ptr).private_data = core::ptr::null_mut();
                drop(Arc::from_raw(raw as *const T));
            }
            return to_result(ret);
        }
        self.added = true;
        Ok(())
    }

    /// Sets the exported size in 512-byte sectors and notifies user space of the change.
    pub(crate) fn set_capacity(&self, sectors: u64) {
        // SAFETY: `ptr` is a valid gendisk (invariant).
        unsafe { bindings::set_capacity_and_notify(self.ptr, sectors) };
    }

    /// Adopts the limits (discard, block sizes, cache flags) of the backing device.
    pub(crate) fn stack_limits(&self, lower: &BlockDev) -> Result {
        // SAFETY: both pointers are valid for the duration of the call.
        to_result(unsafe { ffi::shim_disk_stack_limits(self.ptr, lower.raw()) })
    }

    /// Removes the disk from the system; new opens and I/O fail afterwards.
    pub(crate) fn remove(&mut self) {
        if self.added {
            // SAFETY: the disk was added and is removed exactly once.
            unsafe { bindings::del_gendisk(self.ptr) };
            self.added = false;
        }
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        self.remove();
        // SAFETY: drops our reference; the owner Arc in the private data (if any) is released
        // by `free_disk` when the last reference goes.
        unsafe { bindings::put_disk(self.ptr) };
    }
}

/// Reborrows the owner stored by [`Disk::add`] from a gendisk passed to an entry point.
///
/// # Safety
/// `disk` must be a gendisk created by [`Disk`] and published with an `Arc<T>`, and not yet
/// freed (true inside block device callbacks).
pub(crate) unsafe fn owner<'a, T>(disk: *mut bindings::gendisk) -> kernel::sync::ArcBorrow<'a, T> {
    // SAFETY: per the contract the private data is a live `Arc<T>` pointer.
    unsafe { kernel::sync::ArcBorrow::from_raw(ffi::shim_disk_private(disk) as *const T) }
}

/// Releases the owner stored by [`Disk::add`] when the gendisk is freed.
///
/// # Safety
/// Same as [`owner`], and called exactly once, from `free_disk`.
pub(crate) unsafe fn release_owner<T>(disk: *mut bindings::gendisk) {
    // SAFETY: see the function contract.
    let raw = unsafe { ffi::shim_disk_private(disk) };
    if !raw.is_null() {
        // SAFETY: `raw` came from `Arc::into_raw` in `Disk::add`.
        drop(unsafe { Arc::from_raw(raw as *const T) });
    }
}
