//! drbdadm: reads drbd.conf (DRBD 9 grammar and the 8.x forms) and drives drbdsetup/drbdmeta.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod adjust;
pub mod cli;
pub mod cmds;
pub mod dump;
pub mod handler;
pub mod lex;
pub mod model;
pub mod opts;
pub mod parse;
pub mod progress;
pub mod resolve;
