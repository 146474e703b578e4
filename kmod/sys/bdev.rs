//! An opened backing (or meta-data) block device and synchronous 4 KiB meta-data I/O on it.

use super::ffi;
use kernel::bindings;
use kernel::error::{from_err_ptr, to_result};
use kernel::page::Page;
use kernel::prelude::*;
use kernel::str::CString;

/// `BLK_OPEN_READ | BLK_OPEN_WRITE | BLK_OPEN_EXCL` (cast macros are not generated).
const OPEN_RW_EXCL: u32 = (1 << 0) | (1 << 1) | (1 << 2);
const REQ_OP_READ: u32 = bindings::req_op_REQ_OP_READ;
const REQ_OP_WRITE: u32 = bindings::req_op_REQ_OP_WRITE;
const REQ_SYNC: u32 = 1 << bindings::req_flag_bits___REQ_SYNC;
const REQ_FUA: u32 = 1 << bindings::req_flag_bits___REQ_FUA;
const REQ_PREFLUSH: u32 = 1 << bindings::req_flag_bits___REQ_PREFLUSH;

/// Size of one meta-data block (superblock, activity-log transaction).
pub(crate) const MD_BLOCK: usize = 4096;

/// An exclusively opened block device.
///
/// # Invariants
/// `file` is a valid file returned by `bdev_file_open_by_path` and not yet released; it is
/// released exactly once, in `Drop`.
///
/// Locking: immutable after open; the raw `block_device` may be used from any context while
/// the owner keeps this object alive.
pub(crate) struct BlockDev {
    file: *mut bindings::file,
    bdev: *mut bindings::block_device,
    path: CString,
}

// SAFETY: the kernel objects behind the pointers are reference counted and usable from any
// thread; `BlockDev` only hands out the raw pointers to the sys layer.
unsafe impl Send for BlockDev {}
// SAFETY: no interior mutability; see above.
unsafe impl Sync for BlockDev {}

impl BlockDev {
    /// Opens `path` read-write and exclusively for `holder` (the same holder may not open twice).
    pub(crate) fn open(path: &str, holder: *const core::ffi::c_void) -> Result<Self> {
        let cpath = CString::try_from_fmt(kernel::fmt!("{}", path))?;
        // SAFETY: `cpath` is NUL terminated and outlives the call; `holder` is only compared.
        let file = from_err_ptr(unsafe {
            bindings::bdev_file_open_by_path(
                cpath.as_char_ptr(),
                OPEN_RW_EXCL,
                holder as *mut core::ffi::c_void,
                core::ptr::null(),
            )
        })?;
        // SAFETY: `file` is a valid block device file (just opened).
        let bdev = unsafe { ffi::shim_file_bdev(file) };
        // INVARIANT: `file` was just opened successfully.
        Ok(Self {
            file,
            bdev,
            path: cpath,
        })
    }

    /// Capacity in 512-byte sectors.
    pub(crate) fn sectors(&self) -> u64 {
        // SAFETY: `bdev` is valid while `self` lives (type invariant).
        unsafe { ffi::shim_bdev_nr_sectors(self.bdev) }
    }

    /// The path it was opened by.
    pub(crate) fn path(&self) -> &str {
        self.path.to_str().unwrap_or("?")
    }

    /// Raw pointer for the bio path and queue limits.
    pub(crate) fn raw(&self) -> *mut bindings::block_device {
        self.bdev
    }

    fn io(&self, sector: u64, page: &Page, opf: u32) -> Result {
        // SAFETY: `bdev` is valid (invariant) and `page` outlives the synchronous I/O.
        let bio = unsafe { ffi::shim_bio_alloc_page(self.bdev, sector, page.as_ptr(), opf) };
        if bio.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `bio` is a valid bio we own; `submit_bio_wait` sleeps until completion, then
        // we drop our reference.
        let ret = unsafe {
            let ret = bindings::submit_bio_wait(bio);
            bindings::bio_put(bio);
            ret
        };
        to_result(ret)
    }

    /// Reads the 4 KiB block at `sector`.
    pub(crate) fn read_block(&self, sector: u64, out: &mut [u8; MD_BLOCK]) -> Result {
        let page = Page::alloc_page(GFP_KERNEL)?;
        self.io(sector, &page, REQ_OP_READ | REQ_SYNC)?;
        // SAFETY: `out` is a valid writable buffer of exactly one page.
        unsafe { page.read_raw(out.as_mut_ptr(), 0, MD_BLOCK) }
    }

    /// Writes the 4 KiB block at `sector`, durable on return (preflush + FUA).
    pub(crate) fn write_block(&self, sector: u64, data: &[u8; MD_BLOCK]) -> Result {
        let page = Page::alloc_page(GFP_KERNEL)?;
        // SAFETY: `data` is a valid readable buffer of exactly one page.
        unsafe { page.write_raw(data.as_ptr(), 0, MD_BLOCK) }?;
        self.io(
            sector,
            &page,
            REQ_OP_WRITE | REQ_SYNC | REQ_FUA | REQ_PREFLUSH,
        )
    }
}

/// Largest transfer in one bio (256 pages): writes received from a peer and resync reads.
pub(crate) const MAX_XFER: usize = 1 << 20;

impl Drop for BlockDev {
    fn drop(&mut self) {
        // SAFETY: `file` is valid and released exactly once here (type invariant).
        unsafe { bindings::bdev_fput(self.file) };
    }
}
