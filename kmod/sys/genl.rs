//! Generic netlink plumbing: the request a handler sees, replies, dump output and multicast.
//! Messages are built in Rust (see `crate::msg`); the shim only wraps them in an skb.

use super::ffi::{self, GenlInfo};
use kernel::bindings;
use kernel::error::to_result;
use kernel::prelude::*;

/// Length of DRBD's user header (`struct drbd_genlmsghdr`).
pub(crate) const USER_HDR_LEN: usize = 8;

/// A decoded request: command, the user header and the attribute bytes after it.
pub(crate) struct Request<'a> {
    /// Generic netlink command number.
    pub(crate) cmd: u8,
    /// `drbd_genlmsghdr.minor`.
    pub(crate) minor: u32,
    /// `drbd_genlmsghdr.flags` (`DRBD_GENL_F_SET_DEFAULTS` for option changes).
    pub(crate) flags: u32,
    /// Top-level attributes.
    pub(crate) attrs: &'a [u8],
}

fn parse(ptr: *const u8, len: u32, cmd: u8) -> Option<Request<'static>> {
    if ptr.is_null() || (len as usize) < USER_HDR_LEN {
        return None;
    }
    // SAFETY: the shim returned the payload of a received netlink message; it stays valid for
    // the whole handler invocation (the 'static is narrowed by the callers to the handler).
    let bytes = unsafe { core::slice::from_raw_parts(ptr, len as usize) };
    let minor = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let flags = u32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    Some(Request {
        cmd,
        minor,
        flags,
        attrs: &bytes[USER_HDR_LEN..],
    })
}

/// The context of a `doit` handler.
pub(crate) struct DoContext {
    skb: *mut bindings::sk_buff,
    info: *mut GenlInfo,
}

impl DoContext {
    /// # Safety
    /// Both pointers are the arguments of a running genl `doit` callback.
    pub(crate) unsafe fn new(skb: *mut bindings::sk_buff, info: *mut GenlInfo) -> Self {
        Self { skb, info }
    }

    /// The request; `None` if it is shorter than DRBD's user header.
    pub(crate) fn request(&self) -> Option<Request<'_>> {
        let (mut len, mut cmd) = (0u32, 0u8);
        // SAFETY: `info` is valid during the callback (constructor contract).
        let ptr = unsafe { ffi::shim_info_payload(self.info, &mut len, &mut cmd) };
        parse(ptr, len, cmd)
    }

    /// Whether the sender has CAP_SYS_ADMIN (DRBD requires it on top of CAP_NET_ADMIN).
    pub(crate) fn capable_sys_admin(&self) -> bool {
        // SAFETY: `skb` is valid during the callback.
        unsafe { ffi::shim_info_capable_sys_admin(self.skb) }
    }

    /// Sends the unicast reply.
    pub(crate) fn reply(&self, cmd: u8, user_hdr: &[u8; USER_HDR_LEN], attrs: &[u8]) -> Result {
        // SAFETY: `info` is valid; the buffers are only read during the call.
        to_result(unsafe {
            ffi::shim_genl_reply(
                self.info,
                cmd,
                user_hdr.as_ptr(),
                attrs.as_ptr(),
                attrs.len() as u32,
            )
        })
    }
}

/// The context of a `dumpit` call: the request that started the dump, a cursor that survives
/// between calls, and the skb to fill.
pub(crate) struct DumpContext {
    skb: *mut bindings::sk_buff,
    cb: *mut bindings::netlink_callback,
}

/// Result of trying to add one message to a dump.
pub(crate) enum DumpPut {
    /// Added.
    Added,
    /// The skb is full; continue in the next call from the same position.
    Full,
}

impl DumpContext {
    /// # Safety
    /// Both pointers are the arguments of a running genl `dumpit` callback.
    pub(crate) unsafe fn new(
        skb: *mut bindings::sk_buff,
        cb: *mut bindings::netlink_callback,
    ) -> Self {
        Self { skb, cb }
    }

    /// The request that started the dump.
    pub(crate) fn request(&self) -> Option<Request<'_>> {
        let (mut len, mut cmd) = (0u32, 0u8);
        // SAFETY: `cb` is valid during the callback.
        let ptr = unsafe { ffi::shim_cb_payload(self.cb, &mut len, &mut cmd) };
        parse(ptr, len, cmd)
    }

    /// Cursor slot `i` (0..6), zero at the start of a dump.
    pub(crate) fn cursor(&self, i: usize) -> i64 {
        // SAFETY: `cb->args` has 6 elements and lives as long as the dump.
        let args = unsafe { core::slice::from_raw_parts(ffi::shim_cb_args(self.cb), 6) };
        args.get(i).copied().unwrap_or(0) as i64
    }

    /// Stores cursor slot `i`.
    pub(crate) fn set_cursor(&mut self, i: usize, v: i64) {
        // SAFETY: as in `cursor`; we are the only user of `args` during the callback.
        let args = unsafe { core::slice::from_raw_parts_mut(ffi::shim_cb_args(self.cb), 6) };
        if let Some(slot) = args.get_mut(i) {
            *slot = v as core::ffi::c_long;
        }
    }

    /// Appends one message.
    pub(crate) fn put(
        &mut self,
        cmd: u8,
        user_hdr: &[u8; USER_HDR_LEN],
        attrs: &[u8],
    ) -> Result<DumpPut> {
        // SAFETY: pointers valid during the callback; buffers only read.
        let ret = unsafe {
            ffi::shim_genl_dump_put(
                self.skb,
                self.cb,
                cmd,
                user_hdr.as_ptr(),
                attrs.as_ptr(),
                attrs.len() as u32,
            )
        };
        match ret {
            0 => Ok(DumpPut::Added),
            e if e == -(bindings::EMSGSIZE as i32) => Ok(DumpPut::Full),
            e => to_result(e).map(|()| DumpPut::Added),
        }
    }

    /// Bytes already in the skb (a dump call must make progress: a message that does not fit
    /// an empty skb is an error, not "full").
    pub(crate) fn is_empty(&self) -> bool {
        // SAFETY: `skb` is valid during the callback.
        unsafe { (*self.skb).len == 0 }
    }
}

/// Sends an event to the `events` multicast group (no-op without listeners). Never sleeps.
pub(crate) fn multicast(cmd: u8, seq: u32, user_hdr: &[u8; USER_HDR_LEN], attrs: &[u8]) -> Result {
    // SAFETY: buffers only read during the call.
    to_result(unsafe {
        ffi::shim_genl_multicast(
            cmd,
            seq,
            user_hdr.as_ptr(),
            attrs.as_ptr(),
            attrs.len() as u32,
        )
    })
}

/// Registers the family.
pub(crate) fn register() -> Result {
    // SAFETY: called once from module init.
    to_result(unsafe { ffi::shim_genl_register() })
}

/// Unregisters the family; waits for running handlers.
pub(crate) fn unregister() {
    // SAFETY: called once from module exit after a successful `register`.
    unsafe { ffi::shim_genl_unregister() }
}
