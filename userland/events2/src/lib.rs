//! DRBD state as userland sees it: decoding of the kernel's state messages
//! (dump records and `events` notifications), an in-memory model of all
//! objects, and the `drbdsetup events2` / `status` printers.
//!
//! Everything here is pure: bytes or decoded structs in, lines out. The
//! netlink socket lives in drbdsetup.

pub mod encode;
pub mod model;
pub mod print;
pub mod rates;
pub mod state;
pub mod status;

pub use model::Model;
pub use print::{LineOpts, Printer};
pub use state::{decode, Body, Context, DecodeError, Event};
pub use status::{status_json, status_text, StatusOpts};
