//! Kernel threads running a Rust closure (the 6.12 `kernel` crate has no kthread support).

use kernel::bindings;
use kernel::prelude::*;

/// A running kernel thread; `stop` (or drop) waits for it to finish.
///
/// # Invariants
/// `task` is a started kthread on which we hold a task reference; `data` is the boxed closure
/// if the thread might not have taken ownership of it yet.
///
/// Lifetime: the closure must return soon after `should_stop()` becomes true (or after its
/// blocking call is interrupted, e.g. by shutting a socket down).
pub(crate) struct KThread {
    task: *mut bindings::task_struct,
    data: *mut core::ffi::c_void,
    free: unsafe fn(*mut core::ffi::c_void),
}

// SAFETY: a task reference may be used and dropped from any thread.
unsafe impl Send for KThread {}
// SAFETY: `&KThread` exposes nothing mutable.
unsafe impl Sync for KThread {}

/// Thread function: runs the closure.
///
/// # Safety
/// `data` must be the `KBox<F>` leaked by [`KThread::spawn`]; called at most once.
unsafe extern "C" fn trampoline<F: FnOnce() + Send + 'static>(data: *mut core::ffi::c_void) -> i32 {
    // SAFETY: `data` is the `KBox<F>` leaked by `spawn`; kthread() calls us at most once, and
    // only then do we own it (see `stop` for the other case).
    let f = unsafe { KBox::from_raw(data.cast::<F>()) };
    let f = KBox::into_inner(f);
    f();
    0
}

/// Frees a closure box whose thread never ran.
///
/// # Safety
/// `data` must be the `KBox<F>` leaked by [`KThread::spawn`], not yet taken by the thread.
unsafe fn free_box<F>(data: *mut core::ffi::c_void) {
    // SAFETY: called only when the thread never ran, so the box is still ours.
    drop(unsafe { KBox::from_raw(data.cast::<F>()) });
}

impl KThread {
    /// Starts `f` in a new kernel thread called `name` (truncated to 15 bytes by the kernel).
    pub(crate) fn spawn<F: FnOnce() + Send + 'static>(name: &CStr, f: F) -> Result<Self> {
        let data = KBox::into_raw(KBox::new(f, GFP_KERNEL)?).cast::<core::ffi::c_void>();
        // SAFETY: the trampoline matches the closure type; the format string is "%s" with one
        // NUL-terminated argument.
        let task = unsafe {
            bindings::kthread_create_on_node(
                Some(trampoline::<F>),
                data,
                bindings::NUMA_NO_NODE,
                kernel::c_str!("%s").as_char_ptr(),
                name.as_char_ptr(),
            )
        };
        if let Err(e) = kernel::error::from_err_ptr(task) {
            // SAFETY: the thread was not created, so the closure is still ours.
            unsafe { free_box::<F>(data) };
            return Err(e);
        }
        // SAFETY: `task` is a valid new kthread; the reference keeps it until `stop`.
        unsafe {
            bindings::get_task_struct(task);
            bindings::wake_up_process(task);
        }
        // INVARIANT: started, referenced.
        Ok(Self {
            task,
            data,
            free: free_box::<F>,
        })
    }

    /// Asks the thread to stop and waits for it to exit.
    pub(crate) fn stop(self) {
        drop(self)
    }
}

impl Drop for KThread {
    fn drop(&mut self) {
        // SAFETY: `task` is valid (we hold a reference). kthread_stop returns -EINTR if the
        // thread never ran its function; then the closure box is still ours to free.
        unsafe {
            let ret = bindings::kthread_stop(self.task);
            if ret == -(bindings::EINTR as i32) {
                (self.free)(self.data);
            }
            bindings::put_task_struct(self.task);
        }
    }
}

/// Whether the current kthread was asked to stop.
pub(crate) fn should_stop() -> bool {
    // SAFETY: only called from threads started by `KThread::spawn`.
    unsafe { bindings::kthread_should_stop() }
}

/// Whether the current thread should give up a wait: a kthread asked to stop, or a process
/// (a netlink request's caller) with a signal pending.
pub(crate) fn stop_requested() -> bool {
    // SAFETY: `get_current` returns the running task, valid while it runs this code.
    let flags = unsafe { (*bindings::get_current()).flags };
    if flags & bindings::PF_KTHREAD != 0 {
        // SAFETY: the current task is a kthread, so it has the kthread data this reads.
        unsafe { bindings::kthread_should_stop() }
    } else {
        kernel::current!().signal_pending()
    }
}
