//! Running a user-mode program from the kernel (`call_usermodehelper`, waiting for it to exit),
//! and reading the `usermode_helper` module parameter that names it.

use super::ffi;
use kernel::bindings;
use kernel::prelude::*;
use kernel::str::CStr;

/// Room for the helper path (the parameter's buffer in `shim.c` has the same size).
pub(crate) const HELPER_PATH_MAX: usize = 80;

/// The current value of the `usermode_helper` module parameter, NUL-terminated in `buf`;
/// returns its length without the NUL. Trailing white space is cut off (a value written with
/// `echo` to `/sys/module/drbd/parameters/usermode_helper` ends in a newline).
pub(crate) fn helper_path(buf: &mut [u8; HELPER_PATH_MAX]) -> usize {
    // SAFETY: `buf` is valid for `HELPER_PATH_MAX` bytes; the shim writes at most that many,
    // always NUL-terminated (strscpy).
    unsafe { ffi::shim_usermode_helper(buf.as_mut_ptr(), buf.len()) };
    let mut len = buf.iter().position(|&b| b == 0).unwrap_or(0);
    while len > 0 && buf[len - 1].is_ascii_whitespace() {
        len -= 1;
        buf[len] = 0;
    }
    len
}

/// Runs `path` with `argv` and `envp` and waits until it exits (`UMH_WAIT_PROC`). Returns the
/// raw wait status (exit code in bits 8..16) or a negative errno if it could not be started.
///
/// Process context only: sleeps for as long as the program runs. The caller must hold no lock
/// the program might need (a helper may call back into netlink).
pub(crate) fn run(path: &CStr, argv: &[&CStr], envp: &[&CStr]) -> i32 {
    let mut av: KVec<*mut kernel::ffi::c_char> = KVec::new();
    let mut ev: KVec<*mut kernel::ffi::c_char> = KVec::new();
    for a in argv {
        if av.push(a.as_char_ptr().cast_mut(), GFP_KERNEL).is_err() {
            return -(bindings::ENOMEM as i32);
        }
    }
    for e in envp {
        if ev.push(e.as_char_ptr().cast_mut(), GFP_KERNEL).is_err() {
            return -(bindings::ENOMEM as i32);
        }
    }
    if av.push(core::ptr::null_mut(), GFP_KERNEL).is_err()
        || ev.push(core::ptr::null_mut(), GFP_KERNEL).is_err()
    {
        return -(bindings::ENOMEM as i32);
    }
    // SAFETY: `path` and every string are NUL-terminated and outlive the call, which returns
    // only after the program exited (UMH_WAIT_PROC); both arrays are NULL-terminated. The
    // kernel only reads the strings (the `*mut` is the C prototype's spelling).
    unsafe {
        bindings::call_usermodehelper(
            path.as_char_ptr(),
            av.as_mut_ptr(),
            ev.as_mut_ptr(),
            bindings::UMH_WAIT_PROC as i32,
        )
    }
}
