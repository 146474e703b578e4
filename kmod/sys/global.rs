//! The one global object of the module (the registry), reachable from C entry points.

use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::prelude::*;

/// A module-lifetime singleton.
///
/// # Invariants
/// `ptr` is null or comes from `KBox::into_raw` of a pinned box installed by [`Global::install`];
/// it is freed only by [`Global::remove`], which module exit calls after every entry point that
/// could call [`Global::get`] is unregistered (genl family, block devices, /proc file).
pub(crate) struct Global<T> {
    ptr: AtomicPtr<T>,
}

impl<T> Global<T> {
    /// An empty slot.
    pub(crate) const fn new() -> Self {
        Self {
            ptr: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// Publishes `value` (module init).
    pub(crate) fn install(&self, value: Pin<KBox<T>>) {
        // SAFETY: the object is never moved: it is only reached through this pointer and freed
        // by `remove`, which rebuilds the pinned box.
        let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(value) });
        self.ptr.store(raw, Ordering::Release);
    }

    /// The object, if installed.
    pub(crate) fn get(&self) -> Option<&T> {
        let raw = self.ptr.load(Ordering::Acquire);
        // SAFETY: per the invariant, a non-null pointer is live until `remove`, which happens
        // only when no caller of `get` can run any more.
        unsafe { raw.as_ref() }
    }

    /// Unpublishes and frees the object (module exit).
    pub(crate) fn remove(&self) {
        let raw = self.ptr.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if !raw.is_null() {
            // SAFETY: `raw` came from `KBox::into_raw` in `install` and is freed once.
            drop(unsafe { KBox::from_raw(raw) });
        }
    }
}
