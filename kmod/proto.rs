//! The pure protocol core (`proto/`), compiled from the same sources userland tests drive.

#[allow(dead_code, unreachable_pub)]
#[path = "../proto/src/codec.rs"]
pub(crate) mod codec;

#[allow(dead_code, unreachable_pub)]
#[path = "../proto/src/crc32c.rs"]
pub(crate) mod crc32c;

#[allow(dead_code, unreachable_pub)]
#[path = "../proto/src/meta.rs"]
pub(crate) mod meta;

#[allow(dead_code, unreachable_pub)]
#[path = "../proto/src/wire.rs"]
pub(crate) mod wire;

#[allow(dead_code, unreachable_pub)]
#[path = "../proto/src/state.rs"]
pub(crate) mod state;

#[allow(dead_code, unreachable_pub, clippy::wrong_self_convention)]
#[path = "../proto/src/uuid.rs"]
pub(crate) mod uuid;

#[allow(dead_code, unreachable_pub)]
#[path = "../proto/src/bitmap.rs"]
pub(crate) mod bitmap;

#[allow(dead_code, unreachable_pub)]
#[path = "../proto/src/al.rs"]
pub(crate) mod al;

#[allow(dead_code, unreachable_pub)]
#[path = "../proto/src/al_lru.rs"]
pub(crate) mod al_lru;

#[allow(dead_code, unreachable_pub)]
#[path = "../proto/src/wire_auth.rs"]
pub(crate) mod wire_auth;

#[allow(dead_code, unreachable_pub)]
#[path = "../proto/src/helper.rs"]
pub(crate) mod helper;

#[allow(dead_code, unreachable_pub)]
#[path = "../proto/src/fencing.rs"]
pub(crate) mod fencing;

#[allow(dead_code, unreachable_pub)]
#[path = "../proto/src/wfc.rs"]
pub(crate) mod wfc;

#[allow(dead_code, unreachable_pub)]
#[path = "../proto/src/sync_clock.rs"]
pub(crate) mod sync_clock;

#[allow(dead_code, unreachable_pub)]
#[path = "../proto/src/admin.rs"]
pub(crate) mod admin;

#[allow(dead_code, unreachable_pub)]
#[path = "../proto/src/resync_order.rs"]
pub(crate) mod resync_order;

#[allow(dead_code, unreachable_pub)]
#[path = "../proto/src/verify.rs"]
pub(crate) mod verify;

#[allow(dead_code, unreachable_pub)]
#[path = "../proto/src/resize.rs"]
pub(crate) mod resize;

#[allow(dead_code, unreachable_pub)]
#[path = "../proto/src/epoch.rs"]
pub(crate) mod epoch;

/// Local I/O error policies (`on-io-error`).
#[allow(dead_code, unreachable_pub)]
#[path = "../proto/src/io_error.rs"]
pub(crate) mod io_error;

#[allow(dead_code, unreachable_pub)]
#[path = "../proto/src/verify_window.rs"]
pub(crate) mod verify_window;
