//! Entry points called by the C shim. Each turns raw pointers into safe types and forwards.
//! Contexts: genl handlers and block open/release run in process context and may sleep;
//! `submit_bio` runs in the submitter's context and must not sleep on locks held by
//! completions; `free_disk` runs in process context.

use super::bio::UpperBio;
use super::disk;
use super::ffi::GenlInfo;
use super::genl::{DoContext, DumpContext};
use crate::device::Device;
use kernel::bindings;

/// `BLK_OPEN_WRITE`.
const OPEN_WRITE: u32 = 1 << 1;

/// Generic netlink `doit` callback.
///
/// # Safety
/// Called by genetlink with a valid request skb and `genl_info`.
#[no_mangle]
unsafe extern "C" fn drbd_rs_genl_doit(skb: *mut bindings::sk_buff, info: *mut GenlInfo) -> i32 {
    // SAFETY: called by genetlink with valid arguments for the duration of the call.
    let ctx = unsafe { DoContext::new(skb, info) };
    crate::nl::doit(&ctx)
}

/// Generic netlink `dumpit` callback.
///
/// # Safety
/// Called by genetlink with a valid skb and netlink callback.
#[no_mangle]
unsafe extern "C" fn drbd_rs_genl_dumpit(
    skb: *mut bindings::sk_buff,
    cb: *mut bindings::netlink_callback,
) -> i32 {
    // SAFETY: called by genetlink with valid arguments for the duration of the call.
    let mut ctx = unsafe { DumpContext::new(skb, cb) };
    crate::dump::dumpit(&mut ctx)
}

/// `block_device_operations.submit_bio`.
///
/// # Safety
/// Called by the block layer with a live bio of one of our published disks.
#[no_mangle]
unsafe extern "C" fn drbd_rs_submit_bio(bio: *mut bindings::bio) {
    // SAFETY: the block layer passes a live bio of one of our disks; the disk's private data is
    // the owning `Arc<Device>` (set before the disk was published).
    unsafe {
        let device = disk::owner::<Device>((*(*bio).bi_bdev).bd_disk);
        // Bio-based drivers split to their queue limits themselves (1 MiB max-bio-size, so
        // one bio is at most one P_DATA packet); NULL means the bio was completed with an error.
        let bio = bindings::bio_split_to_limits(bio);
        if let Some(upper) = UpperBio::accept(bio) {
            let device: kernel::sync::Arc<Device> = device.into();
            device.submit(upper);
        }
    }
}

/// `block_device_operations.open`.
///
/// # Safety
/// Called by the block layer for one of our published disks.
#[no_mangle]
unsafe extern "C" fn drbd_rs_open(gd: *mut bindings::gendisk, mode: u32) -> i32 {
    // SAFETY: open is only called on a published, not yet freed disk.
    let device = unsafe { disk::owner::<Device>(gd) };
    match device.open(mode & OPEN_WRITE != 0) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `block_device_operations.release`.
///
/// # Safety
/// Called by the block layer after a successful open of one of our disks.
#[no_mangle]
unsafe extern "C" fn drbd_rs_release(gd: *mut bindings::gendisk) {
    // SAFETY: release pairs with a successful open on a live disk.
    let device = unsafe { disk::owner::<Device>(gd) };
    device.release();
}

/// `block_device_operations.free_disk`.
///
/// # Safety
/// Called once by the block layer when the last reference to our gendisk goes.
#[no_mangle]
unsafe extern "C" fn drbd_rs_free_disk(gd: *mut bindings::gendisk) {
    // SAFETY: the block layer calls this once, when the last gendisk reference goes.
    unsafe { disk::release_owner::<Device>(gd) };
}

/// `/proc/drbd` show callback.
///
/// # Safety
/// Called by seq_file with a valid `seq_file`.
#[no_mangle]
unsafe extern "C" fn drbd_rs_proc_show(
    m: *mut bindings::seq_file,
    _v: *mut core::ffi::c_void,
) -> i32 {
    let mut buf = crate::procfs::TextBuf::new();
    crate::procfs::render(&mut buf);
    let text = buf.as_bytes();
    // SAFETY: `m` is the seq_file of the running show callback; `text` is only read.
    unsafe { bindings::seq_write(m, text.as_ptr().cast(), text.len()) };
    0
}
