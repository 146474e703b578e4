//! Block-layer plugging for the receiver: peer writes that arrive back to back are held by
//! the current task and handed to the disk together (one queue kick, completions that arrive
//! together, acks that share a segment). The kernel flushes the batch whenever the task
//! sleeps, so nothing waits on a plug while the receiver blocks on the network.

use kernel::bindings;

/// Runs `f` with a block plug held by the current task (a no-op inside another plug); the
/// batch is flushed when the task sleeps and when `f` returns.
pub(crate) fn with_plug<R>(f: impl FnOnce() -> R) -> R {
    let mut plug = core::mem::MaybeUninit::<bindings::blk_plug>::uninit();
    // SAFETY: `blk_start_plug` initialises the plug and makes it the task's; it stays on
    // this frame, unmoved, until `blk_finish_plug` below detaches it (kernel Rust panics do
    // not unwind, so `f` always returns here).
    unsafe { bindings::blk_start_plug(plug.as_mut_ptr()) };
    let r = f();
    // SAFETY: the plug started above, still on this frame.
    unsafe { bindings::blk_finish_plug(plug.as_mut_ptr()) };
    r
}
