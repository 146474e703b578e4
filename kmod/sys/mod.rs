//! The only place with `unsafe`: safe wrappers over the kernel APIs the driver needs, and the
//! entry points the C shim calls. Everything above this layer is safe Rust.

pub(crate) mod bdev;
pub(crate) mod bio;
pub(crate) mod digest;
pub(crate) mod disk;
mod entry;
mod ffi;
pub(crate) mod genl;
pub(crate) mod global;
pub(crate) mod hmac;
pub(crate) mod irqlock;
pub(crate) mod misc;
pub(crate) mod peer_bio;
pub(crate) mod plug;
pub(crate) mod socket;
pub(crate) mod thread;
pub(crate) mod umh;
