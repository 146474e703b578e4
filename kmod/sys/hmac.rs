//! Keyed hashes from the kernel crypto API (`hmac(<alg>)` shash transforms) and random bytes,
//! for CRAM-HMAC peer authentication.

use super::ffi;
use crate::proto::wire_auth::{self, MAX_DIGEST_LEN, MAX_SHASH_NAME};
use kernel::bindings;
use kernel::error::{from_err_ptr, to_result};
use kernel::prelude::*;

/// An allocated `hmac(<alg>)` transform, keyed once with the shared secret.
///
/// # Invariants
/// `tfm` is a live transform from `crypto_alloc_shash`, freed only by `Drop`.
///
/// Locking/lifetime: owned by one thread (the link thread during a handshake, or a config
/// request checking an algorithm name); digests only read the transform.
pub(crate) struct Hmac {
    tfm: *mut ffi::CryptoShash,
    digest_len: usize,
}

impl Hmac {
    /// Allocates `hmac(alg)` (e.g. `alg` = `sha256`). Fails with `ENOENT` for an unknown
    /// algorithm and `EINVAL` for an unusable name or a digest longer than 64 bytes.
    pub(crate) fn new(alg: &[u8]) -> Result<Self> {
        let mut name = [0u8; MAX_SHASH_NAME];
        wire_auth::shash_name(alg, &mut name).ok_or(EINVAL)?;
        // SAFETY: `name` is NUL terminated (`shash_name`) and outlives the call; type and
        // mask 0 ask for any implementation.
        let raw = unsafe { ffi::crypto_alloc_shash(name.as_ptr().cast(), 0, 0) };
        let tfm = from_err_ptr(raw)?;
        if tfm.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `tfm` is a live transform.
        let digest_len = unsafe { ffi::shim_crypto_shash_digestsize(tfm) } as usize;
        let h = Self { tfm, digest_len };
        if digest_len == 0 || digest_len > MAX_DIGEST_LEN {
            return Err(EINVAL);
        }
        Ok(h)
    }

    /// Sets the key (the shared secret).
    pub(crate) fn set_key(&mut self, key: &[u8]) -> Result {
        let len = u32::try_from(key.len()).map_err(|_| EINVAL)?;
        // SAFETY: `tfm` is live (invariant) and not used concurrently (`&mut self`); `key` is
        // valid for `len` bytes and only read during the call.
        to_result(unsafe { ffi::crypto_shash_setkey(self.tfm, key.as_ptr(), len) })
    }

    /// The keyed digest of `data`, written to the first `digest_len` bytes of `out`.
    pub(crate) fn digest(&self, data: &[u8], out: &mut [u8; MAX_DIGEST_LEN]) -> Result<usize> {
        let len = u32::try_from(data.len()).map_err(|_| EINVAL)?;
        // SAFETY: `tfm` is live (invariant); `data` is valid for `len` bytes; `out` has room
        // for `digest_len <= MAX_DIGEST_LEN` bytes (checked in `new`). The digest keeps its
        // descriptor on the stack, so shared use of the keyed transform is allowed.
        to_result(unsafe {
            ffi::crypto_shash_tfm_digest(self.tfm, data.as_ptr(), len, out.as_mut_ptr())
        })?;
        Ok(self.digest_len)
    }
}

impl Drop for Hmac {
    fn drop(&mut self) {
        // SAFETY: `tfm` is live (invariant) and never used again.
        unsafe { ffi::shim_crypto_free_shash(self.tfm) }
    }
}

/// Fills `buf` with random bytes (challenges).
pub(crate) fn random_bytes(buf: &mut [u8]) {
    // SAFETY: `buf` is valid for writes of its length.
    unsafe { bindings::get_random_bytes(buf.as_mut_ptr().cast(), buf.len()) }
}
