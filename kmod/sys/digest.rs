//! Unkeyed hashes from the kernel crypto API (`shash` transforms), for online verify's
//! `verify-alg` (`crc32c`, `sha1`, `md5`, ...).

use super::ffi;
use crate::proto::verify::{self, MAX_ALG_NAME, MAX_DIGEST};
use kernel::error::{from_err_ptr, to_result};
use kernel::prelude::*;

/// An allocated `shash` transform of one algorithm.
///
/// # Invariants
/// `tfm` is a live transform from `crypto_alloc_shash`, freed only by `Drop`.
///
/// Locking/lifetime: owned by the thread verifying (the source's receiver, or the target's
/// receiver through `Link`'s verify state); digests only read the transform.
pub(crate) struct Digest {
    tfm: *mut ffi::CryptoShash,
    len: usize,
}

// SAFETY: the transform is only read by `crypto_shash_tfm_digest`, which keeps its state in a
// descriptor on the stack, so it may be used from any thread.
unsafe impl Send for Digest {}
// SAFETY: see above.
unsafe impl Sync for Digest {}

impl Digest {
    /// Allocates `alg`. `ENOENT` for an unknown algorithm, `EINVAL` for an unusable name or a
    /// digest longer than 64 bytes.
    pub(crate) fn new(alg: &[u8]) -> Result<Self> {
        let mut name = [0u8; MAX_ALG_NAME + 1];
        verify::digest_name(alg, &mut name).ok_or(EINVAL)?;
        // SAFETY: `name` is NUL terminated (`digest_name`) and outlives the call; type and
        // mask 0 ask for any implementation.
        let raw = unsafe { ffi::crypto_alloc_shash(name.as_ptr().cast(), 0, 0) };
        let tfm = from_err_ptr(raw)?;
        if tfm.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `tfm` is a live transform.
        let len = unsafe { ffi::shim_crypto_shash_digestsize(tfm) } as usize;
        // INVARIANT: `tfm` is live; `Drop` frees it, also on the error below.
        let d = Self { tfm, len };
        if len == 0 || len > MAX_DIGEST {
            return Err(EINVAL);
        }
        Ok(d)
    }

    /// The digest of `data` in the first bytes of `out`; returns its length.
    pub(crate) fn digest(&self, data: &[u8], out: &mut [u8; MAX_DIGEST]) -> Result<usize> {
        let len = u32::try_from(data.len()).map_err(|_| EINVAL)?;
        // SAFETY: `tfm` is live (invariant); `data` is valid for `len` bytes; `out` has room
        // for `self.len <= MAX_DIGEST` bytes (checked in `new`).
        to_result(unsafe {
            ffi::crypto_shash_tfm_digest(self.tfm, data.as_ptr(), len, out.as_mut_ptr())
        })?;
        Ok(self.len)
    }
}

impl Drop for Digest {
    fn drop(&mut self) {
        // SAFETY: `tfm` is live (invariant) and never used again.
        unsafe { ffi::shim_crypto_free_shash(self.tfm) }
    }
}
