//! Small kernel services: block major and bio_set registration, /proc entry, randomness,
//! sleeping.

use super::ffi;
use kernel::bindings;
use kernel::error::to_result;
use kernel::prelude::*;

/// Registers block major 147 and the module's bio_set.
pub(crate) fn blk_register() -> Result {
    // SAFETY: called once from module init.
    to_result(unsafe { ffi::shim_blk_register() })
}

/// Undoes [`blk_register`]; all our disks must be gone.
pub(crate) fn blk_unregister() {
    // SAFETY: called once from module exit after a successful `blk_register`.
    unsafe { ffi::shim_blk_unregister() }
}

/// Creates `/proc/drbd`.
pub(crate) fn proc_create() -> Result {
    // SAFETY: called once from module init.
    to_result(unsafe { ffi::shim_proc_create() })
}

/// Removes `/proc/drbd` (waits for running readers).
pub(crate) fn proc_remove() {
    // SAFETY: called once from module exit after a successful `proc_create`.
    unsafe { ffi::shim_proc_remove() }
}

/// A random 64-bit value (generation UUIDs).
pub(crate) fn random_u64() -> u64 {
    // SAFETY: no preconditions.
    unsafe { bindings::get_random_u64() }
}

/// Sleeps for about `ms` milliseconds (process context only).
pub(crate) fn sleep_ms(ms: u32) {
    // SAFETY: no preconditions beyond process context, which callers document.
    unsafe { bindings::msleep(ms) }
}

/// An errno the 6.12 `kernel::error::code` list lacks (e.g. `bindings::EMEDIUMTYPE`).
pub(crate) fn errno(positive: u32) -> kernel::error::Error {
    kernel::error::Error::from_errno(-(positive as i32))
}

/// While alive, allocations of this task behave as `GFP_NOIO` (used in the I/O path, where
/// reclaim must not recurse into block I/O; the 6.12 `kernel` crate has no `GFP_NOIO` flag).
pub(crate) struct NoIoScope(u32);

impl NoIoScope {
    /// Enters the scope.
    pub(crate) fn enter() -> Self {
        // SAFETY: no preconditions; paired with the restore in `drop`.
        Self(unsafe { ffi::shim_memalloc_noio_save() })
    }
}

impl Drop for NoIoScope {
    fn drop(&mut self) {
        // SAFETY: restores the flags saved by `enter` on the same task.
        unsafe { ffi::shim_memalloc_noio_restore(self.0) }
    }
}
