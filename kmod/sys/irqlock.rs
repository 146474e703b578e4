//! A spinlock that disables local interrupts while held (`spin_lock_irqsave`), for state shared
//! with bio completions, which may run in hard interrupt context. The 6.12 `kernel` crate only
//! offers the plain `spin_lock` backend; this adds the irq-saving one to its generic `Lock`, so
//! guards and `CondVar` work as usual.

use super::ffi;
use kernel::bindings;

/// [`kernel::sync::lock::Backend`] over `spinlock_t` with `spin_lock_irqsave`.
pub(crate) struct IrqSpinLockBackend;

/// A spinlock usable from any context, including hard interrupts.
pub(crate) type IrqSpinLock<T> = kernel::sync::lock::Lock<T, IrqSpinLockBackend>;

/// Creates an [`IrqSpinLock`] initialiser with its own lock class.
#[macro_export]
macro_rules! new_irq_spinlock {
    ($inner:expr, $name:literal) => {
        kernel::sync::lock::Lock::<_, $crate::sys::irqlock::IrqSpinLockBackend>::new(
            $inner,
            kernel::c_str!($name),
            kernel::static_lock_class!(),
        )
    };
}

// SAFETY: `spinlock_t` with irqsave/irqrestore ensures mutual exclusion; the saved flags travel
// in the guard from `lock` to `unlock`, and `relock` (default) saves them anew.
unsafe impl kernel::sync::lock::Backend for IrqSpinLockBackend {
    type State = bindings::spinlock_t;
    type GuardState = usize;

    unsafe fn init(
        ptr: *mut Self::State,
        name: *const kernel::ffi::c_char,
        key: *mut bindings::lock_class_key,
    ) {
        // SAFETY: the caller guarantees `ptr` is valid for writes and `name`/`key` live forever.
        unsafe { bindings::__spin_lock_init(ptr, name, key) }
    }

    unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
        // SAFETY: the caller guarantees `ptr` points to an initialised spinlock.
        unsafe { ffi::shim_spin_lock_irqsave(ptr) }
    }

    unsafe fn unlock(ptr: *mut Self::State, guard_state: &Self::GuardState) {
        // SAFETY: the caller owns the lock; `guard_state` holds the flags `lock` saved.
        unsafe { ffi::shim_spin_unlock_irqrestore(ptr, *guard_state) }
    }
}
