//! Pure protocol core of drbd-rs: DRBD 9 on-disk and on-wire formats and rules.
//!
//! `no_std`, no allocation, no `unsafe`, no dependencies: the kernel module
//! compiles these files directly (`#[path = "../proto/src/<file>.rs"]`), the
//! userland tools and tests use them through cargo. Every decoder returns a
//! typed error on malformed input instead of panicking.
//!
//! Modules refer to each other only as `super::<module>` so that they work
//! both inside this crate and when included into the kernel crate.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
pub mod al;
pub mod al_lru;
pub mod bitmap;
pub mod codec;
pub mod crc32c;
pub mod epoch;
pub mod fencing;
pub mod handshake;
pub mod helper;
pub mod io_error;
pub mod meta;
pub mod replica;
pub mod resize;
pub mod resync_order;
pub mod state;
pub mod sync_clock;
pub mod uuid;
pub mod verify;
pub mod verify_window;
pub mod wfc;
pub mod wire;
pub mod wire_auth;
