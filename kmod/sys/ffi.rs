//! Declarations of the C shim (`kmod/shim.c`) and of kernel functions that `kernel::bindings`
//! does not reach in 6.12. Only the `sys` layer calls these.

// Opaque kernel structs are only passed by pointer.
#![allow(improper_ctypes)]

use kernel::bindings::{bio, block_device, file, gendisk, netlink_callback, page, sk_buff};

/// `struct genl_info` is not in the 6.12 bindings; we only ever pass it back to the shim.
#[repr(C)]
pub(crate) struct GenlInfo {
    _opaque: [u8; 0],
}

extern "C" {
    pub(crate) fn shim_genl_register() -> i32;
    pub(crate) fn shim_genl_unregister();
    pub(crate) fn shim_info_payload(info: *mut GenlInfo, len: *mut u32, cmd: *mut u8) -> *const u8;
    pub(crate) fn shim_info_capable_sys_admin(skb: *mut sk_buff) -> bool;
    pub(crate) fn shim_cb_payload(
        cb: *mut netlink_callback,
        len: *mut u32,
        cmd: *mut u8,
    ) -> *const u8;
    pub(crate) fn shim_cb_args(cb: *mut netlink_callback) -> *mut core::ffi::c_long;
    pub(crate) fn shim_genl_reply(
        info: *mut GenlInfo,
        cmd: u8,
        user_hdr: *const u8,
        attrs: *const u8,
        attrs_len: u32,
    ) -> i32;
    pub(crate) fn shim_genl_dump_put(
        skb: *mut sk_buff,
        cb: *mut netlink_callback,
        cmd: u8,
        user_hdr: *const u8,
        attrs: *const u8,
        attrs_len: u32,
    ) -> i32;
    pub(crate) fn shim_genl_multicast(
        cmd: u8,
        seq: u32,
        user_hdr: *const u8,
        attrs: *const u8,
        attrs_len: u32,
    ) -> i32;

    pub(crate) fn shim_blk_register() -> i32;
    pub(crate) fn shim_blk_unregister();
    pub(crate) fn shim_alloc_disk(minor: u32, private_data: *mut core::ffi::c_void)
        -> *mut gendisk;
    pub(crate) fn shim_disk_private(disk: *mut gendisk) -> *mut core::ffi::c_void;
    pub(crate) fn shim_disk_stack_limits(disk: *mut gendisk, bdev: *mut block_device) -> i32;
    pub(crate) fn shim_bdev_nr_sectors(bdev: *mut block_device) -> u64;
    pub(crate) fn shim_file_bdev(file: *mut file) -> *mut block_device;
    pub(crate) fn shim_bio_disk_private(bio: *mut bio) -> *mut core::ffi::c_void;
    pub(crate) fn shim_bio_clone(bio: *mut bio, bdev: *mut block_device) -> *mut bio;
    pub(crate) fn shim_clone_set_acct(clone: *mut bio, start: usize);
    pub(crate) fn shim_clone_acct(clone: *mut bio) -> usize;
    pub(crate) fn shim_bio_alloc_page(
        bdev: *mut block_device,
        sector: u64,
        page: *mut page,
        opf: u32,
    ) -> *mut bio;
    pub(crate) fn shim_bio_op(bio: *mut bio) -> u32;

    pub(crate) fn shim_sock_create_tcp(res: *mut *mut kernel::bindings::socket) -> i32;
    pub(crate) fn shim_sock_tune(sock: *mut kernel::bindings::socket, listener: bool);
    pub(crate) fn shim_sock_set_rcvtimeo(
        sock: *mut kernel::bindings::socket,
        timeo: core::ffi::c_long,
    );
    pub(crate) fn shim_sock_set_sndtimeo(
        sock: *mut kernel::bindings::socket,
        timeo: core::ffi::c_long,
    );
    pub(crate) fn shim_msecs_to_jiffies(ms: u32) -> core::ffi::c_long;
    pub(crate) fn shim_bio_segments(
        bio: *mut bio,
        out: *mut kernel::bindings::bio_vec,
        max: u32,
    ) -> i32;
    pub(crate) fn shim_bio_segment_count(bio: *mut bio) -> u32;
    pub(crate) fn shim_sendpage_ok(page: *mut kernel::bindings::page) -> bool;
    pub(crate) fn shim_bio_alloc(
        bdev: *mut block_device,
        sector: u64,
        nr_vecs: u16,
        opf: u32,
    ) -> *mut bio;
    pub(crate) fn shim_memalloc_noio_save() -> u32;
    pub(crate) fn shim_memalloc_noio_restore(flags: u32);
    pub(crate) fn shim_bio_sector(bio: *mut bio) -> u64;
    pub(crate) fn shim_bio_opf(bio: *mut bio) -> u32;
    pub(crate) fn shim_spin_lock_irqsave(lock: *mut kernel::bindings::spinlock_t) -> usize;
    pub(crate) fn shim_spin_unlock_irqrestore(
        lock: *mut kernel::bindings::spinlock_t,
        flags: usize,
    );
    pub(crate) fn shim_proc_create() -> i32;
    pub(crate) fn shim_proc_remove();

    pub(crate) fn shim_usermode_helper(buf: *mut u8, len: usize);

    pub(crate) fn shim_crypto_free_shash(tfm: *mut CryptoShash);
    pub(crate) fn shim_crypto_shash_digestsize(tfm: *mut CryptoShash) -> u32;

    // Exported by the kernel's crypto API (`<crypto/hash.h>`), absent from the 6.12 bindings.
    pub(crate) fn crypto_alloc_shash(
        alg_name: *const core::ffi::c_char,
        ty: u32,
        mask: u32,
    ) -> *mut CryptoShash;
    pub(crate) fn crypto_shash_setkey(tfm: *mut CryptoShash, key: *const u8, keylen: u32) -> i32;
    pub(crate) fn crypto_shash_tfm_digest(
        tfm: *mut CryptoShash,
        data: *const u8,
        len: u32,
        out: *mut u8,
    ) -> i32;
}

/// `struct crypto_shash`, only handled by pointer.
#[repr(C)]
pub(crate) struct CryptoShash {
    _opaque: [u8; 0],
}
