//! Page buffers between a socket and a lower device, with no intermediate copy: writes
//! received from a peer are read into whole pages and submitted without waiting (the
//! completion hands buffer, device and caller context back, in any context); resync data is
//! read from the disk into pages and sent from them.

use super::bdev::{BlockDev, MAX_XFER};
use super::ffi;
use super::socket::Socket;
use kernel::bindings;
use kernel::page::Page;
use kernel::prelude::*;
use kernel::sync::Arc;

const PAGE: usize = 4096;
const REQ_OP_READ: u32 = bindings::req_op_REQ_OP_READ;
const REQ_OP_WRITE: u32 = bindings::req_op_REQ_OP_WRITE;
const REQ_SYNC: u32 = 1 << bindings::req_flag_bits___REQ_SYNC;
const REQ_FUA: u32 = 1 << bindings::req_flag_bits___REQ_FUA;
const REQ_PREFLUSH: u32 = 1 << bindings::req_flag_bits___REQ_PREFLUSH;

/// `len` bytes (a multiple of 512, at most [`MAX_XFER`]) in whole pages, with the segment
/// list a socket receive and a bio both use.
///
/// # Invariants
/// `segments[i]` describes `pages[i]` (offset 0, `PAGE` bytes except the last, which holds
/// the rest of `len`); the pages live as long as the value.
pub(crate) struct PageBuf {
    /// Owns the pages the segments point at.
    _pages: KVec<Page>,
    segments: KVec<bindings::bio_vec>,
    len: usize,
}

// SAFETY: the raw page pointers in `segments` point at pages owned by `pages`, which are
// `Send`/`Sync`; nothing else aliases them.
unsafe impl Send for PageBuf {}
// SAFETY: see above; shared access only reads the descriptors.
unsafe impl Sync for PageBuf {}

impl PageBuf {
    /// Allocates a buffer of `len` bytes (no I/O reclaim: the caller feeds a block device).
    pub(crate) fn alloc(len: usize) -> Result<Self> {
        if len == 0 || len % 512 != 0 || len > MAX_XFER {
            return Err(EINVAL);
        }
        let _noio = super::misc::NoIoScope::enter();
        let n = len.div_ceil(PAGE);
        let mut pages = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut segments = KVec::with_capacity(n, GFP_KERNEL)?;
        for i in 0..n {
            let page = Page::alloc_page(GFP_KERNEL)?;
            segments.push(
                bindings::bio_vec {
                    bv_page: page.as_ptr(),
                    bv_len: (len - i * PAGE).min(PAGE) as u32,
                    bv_offset: 0,
                },
                GFP_KERNEL,
            )?;
            pages.push(page, GFP_KERNEL)?;
        }
        // INVARIANT: one segment per page, sized as documented.
        Ok(Self {
            _pages: pages,
            segments,
            len,
        })
    }

    /// A buffer without pages (the payload of a flush).
    pub(crate) fn empty() -> Self {
        // INVARIANT: no pages, no segments.
        Self {
            _pages: KVec::new(),
            segments: KVec::new(),
            len: 0,
        }
    }

    /// Fills the whole buffer from `sock`; fails on end of stream, error or timeout.
    pub(crate) fn recv(&mut self, sock: &Socket) -> Result {
        // SAFETY: a zeroed msghdr is valid; the iterator covers our own pages (invariant),
        // which stay alive and unshared (`&mut self`) for the whole call.
        unsafe {
            let mut msg: bindings::msghdr = core::mem::zeroed();
            bindings::iov_iter_bvec(
                &mut msg.msg_iter,
                bindings::ITER_DEST,
                self.segments.as_ptr(),
                self.segments.len() as _,
                self.len,
            );
            sock.recv_msg(&mut msg, self.len)
        }
    }
}

impl PageBuf {
    /// The segments holding the first `len` bytes, `None` if `len` is not a non-empty
    /// multiple of 512 within the buffer.
    fn prefix(&self, len: usize) -> Option<&[bindings::bio_vec]> {
        if len == 0 || len % 512 != 0 || len > self.len {
            return None;
        }
        self.segments.get(..len.div_ceil(PAGE))
    }

    /// Reads `len` bytes at `sector` of `lower` into the start of the buffer; returns when
    /// the read completed.
    pub(crate) fn read_from(&mut self, lower: &BlockDev, sector: u64, len: usize) -> Result {
        let segments = self.prefix(len).ok_or(EINVAL)?;
        let nr_vecs = segments.len() as u16;
        // SAFETY: `lower` is valid while borrowed.
        let bio = unsafe { ffi::shim_bio_alloc(lower.raw(), sector, nr_vecs, REQ_OP_READ) };
        if bio.is_null() {
            return Err(ENOMEM);
        }
        let mut left = len;
        for seg in segments {
            let chunk = left.min(PAGE) as u32;
            // SAFETY: `bio` has room for every segment; our pages outlive the synchronous
            // read, and `&mut self` keeps them unshared.
            unsafe { bindings::__bio_add_page(bio, seg.bv_page, chunk, 0) };
            left -= chunk as usize;
        }
        // SAFETY: `bio` is ours; waits for completion, then drops our reference.
        kernel::error::to_result(unsafe {
            let ret = bindings::submit_bio_wait(bio);
            bindings::bio_put(bio);
            ret
        })
    }

    /// Copies `out.len()` bytes from `offset` (a multiple of the page size) of the buffer
    /// into `out` (verify hashes them).
    pub(crate) fn copy_out(&self, offset: usize, out: &mut [u8]) -> Result {
        let fits = offset
            .checked_add(out.len())
            .is_some_and(|end| end <= self.len);
        if offset % PAGE != 0 || !fits {
            return Err(EINVAL);
        }
        for (i, chunk) in out.chunks_mut(PAGE).enumerate() {
            let page = self._pages.get(offset / PAGE + i).ok_or(EINVAL)?;
            // SAFETY: `chunk` is valid for writes of its length (at most one page), and the
            // page holds at least that many bytes from offset 0.
            unsafe { page.read_raw(chunk.as_mut_ptr(), 0, chunk.len())? };
        }
        Ok(())
    }

    /// Sends `len` bytes from `offset` (a multiple of the page size) on `sock`, kept corked
    /// if `more`.
    pub(crate) fn send_range(
        &self,
        sock: &Socket,
        offset: usize,
        len: usize,
        more: bool,
    ) -> Result {
        if offset % PAGE != 0 || len == 0 {
            return Err(EINVAL);
        }
        // `prefix` checks the end (a multiple of 512 within the buffer), so `len` is one too.
        let end = offset.checked_add(len).ok_or(EINVAL)?;
        let segments = self
            .prefix(end)
            .and_then(|s| s.get(offset / PAGE..))
            .ok_or(EINVAL)?;
        // SAFETY: the segments describe our own pages, which stay alive during the call (the
        // kernel only reads them; without splicing it keeps no reference).
        unsafe { sock.send_bvecs(segments, len, more, 0) }
    }
}

/// Durability wanted for a write.
#[derive(Clone, Copy, Default)]
pub(crate) struct WriteFlags {
    /// Flush the device's cache before the write (covers everything completed before it).
    pub(crate) preflush: bool,
    /// The write itself is durable on completion.
    pub(crate) fua: bool,
}

/// Told when a bio submitted by [`submit_write`] or [`submit_read`] finished.
pub(crate) trait WriteDone: Send + Sized {
    /// Runs in the bio's completion, in any context (hard interrupts included): it must not
    /// sleep, and must not drop the last reference of `lower` (closing a device sleeps).
    fn done(self, buf: PageBuf, lower: Arc<BlockDev>, ok: bool);
}

/// What a bio in flight owns until its completion.
struct InFlight<T: WriteDone> {
    buf: PageBuf,
    lower: Arc<BlockDev>,
    ctx: T,
}

/// Writes `buf` at `sector` of `lower` without waiting; `ctx.done` runs at completion. Gives
/// everything back if no bio could be built.
#[allow(clippy::type_complexity)]
pub(crate) fn submit_write<T: WriteDone>(
    lower: Arc<BlockDev>,
    sector: u64,
    buf: PageBuf,
    flags: WriteFlags,
    ctx: T,
) -> Result<(), (T, PageBuf, Arc<BlockDev>)> {
    let opf = REQ_OP_WRITE
        | REQ_SYNC
        | if flags.fua { REQ_FUA } else { 0 }
        | if flags.preflush { REQ_PREFLUSH } else { 0 };
    let len = buf.len;
    submit_io(lower, sector, buf, len, opf, ctx)
}

/// Flushes the volatile cache of `lower` (an empty `PREFLUSH` write) without waiting;
/// `ctx.done` runs at completion.
#[allow(clippy::type_complexity)]
pub(crate) fn submit_flush<T: WriteDone>(
    lower: Arc<BlockDev>,
    ctx: T,
) -> Result<(), (T, PageBuf, Arc<BlockDev>)> {
    submit_io(
        lower,
        0,
        PageBuf::empty(),
        0,
        REQ_OP_WRITE | REQ_SYNC | REQ_PREFLUSH,
        ctx,
    )
}

/// Reads the first `len` bytes of `buf` from `sector` of `lower` without waiting; `ctx.done`
/// runs at completion. Gives everything back if `len` does not fit or no bio could be built.
#[allow(clippy::type_complexity)]
pub(crate) fn submit_read<T: WriteDone>(
    lower: Arc<BlockDev>,
    sector: u64,
    buf: PageBuf,
    len: usize,
    ctx: T,
) -> Result<(), (T, PageBuf, Arc<BlockDev>)> {
    if buf.prefix(len).is_none() {
        return Err((ctx, buf, lower));
    }
    submit_io(lower, sector, buf, len, REQ_OP_READ, ctx)
}

/// Submits the first `len` bytes of `buf` (a valid prefix) at `sector` with `opf`.
#[allow(clippy::type_complexity)]
fn submit_io<T: WriteDone>(
    lower: Arc<BlockDev>,
    sector: u64,
    buf: PageBuf,
    len: usize,
    opf: u32,
    ctx: T,
) -> Result<(), (T, PageBuf, Arc<BlockDev>)> {
    let n = len.div_ceil(PAGE);
    let raw_bdev = lower.raw();
    let slot = {
        let _noio = super::misc::NoIoScope::enter();
        KBox::<InFlight<T>>::new_uninit(GFP_KERNEL)
    };
    let Ok(slot) = slot else {
        return Err((ctx, buf, lower));
    };
    let owned = slot.write(InFlight { buf, lower, ctx });
    // SAFETY: `raw_bdev` is valid while `owned.lower` lives, which is until completion.
    let bio = unsafe { ffi::shim_bio_alloc(raw_bdev, sector, n as u16, opf) };
    if bio.is_null() {
        let InFlight { buf, lower, ctx } = KBox::into_inner(owned);
        return Err((ctx, buf, lower));
    }
    let mut left = len;
    for seg in owned.buf.segments.iter().take(n) {
        let chunk = left.min(seg.bv_len as usize) as u32;
        // SAFETY: `bio` has room for `n` vectors; the pages are owned by `owned`, which the
        // completion frees only after the bio is done.
        unsafe { bindings::__bio_add_page(bio, seg.bv_page, chunk, 0) };
        left -= chunk as usize;
    }
    let ctx = KBox::into_raw(owned);
    // SAFETY: `bio` is ours; the completion takes `ctx` back exactly once.
    unsafe {
        (*bio).bi_private = ctx.cast();
        (*bio).bi_end_io = Some(write_endio::<T>);
        bindings::submit_bio_noacct(bio);
    }
    Ok(())
}

/// Completion of a bio built by [`submit_io`] (any context; never sleeps).
///
/// # Safety
/// Called by the block layer once per such bio, whose `bi_private` is the leaked box.
unsafe extern "C" fn write_endio<T: WriteDone>(bio: *mut bindings::bio) {
    // SAFETY: `bi_private` is the box leaked by `submit_io`; taken back once.
    let (owned, ok) = unsafe {
        let owned = KBox::from_raw((*bio).bi_private as *mut InFlight<T>);
        let ok = (*bio).bi_status == 0;
        bindings::bio_put(bio);
        (owned, ok)
    };
    let InFlight { buf, lower, ctx } = KBox::into_inner(owned);
    ctx.done(buf, lower, ok);
}
