//! drbdsetup of drbd-rs: configures the DRBD kernel module over the `drbd`
//! generic netlink family and shows its state.
//!
//! * [`cmds`]: the command table and the argument parser it drives (option
//!   names, types and ranges come from genl-spec).
//! * [`msg`]: netlink/genl/DRBD framing as bytes.
//! * [`nl`]: the socket (neli, pinned, wrapped here only).
//! * [`errors`]: ret_code to message and exit status.
//! * [`run`]: command execution; [`show`]: `drbdsetup show`.

pub mod cmds;
pub mod errors;
pub mod msg;
pub mod nl;
pub mod run;
pub mod show;
pub mod wait;
