//! The DRBD 9 generic netlink control ABI, shared by the kernel module and the
//! userland tools of drbd-rs.
//!
//! * [`generated`]: family name and version, command, top-level attribute and
//!   member numbers, member tables (types, flags, defaults, option names),
//!   return codes with their texts and the state enums, all generated from
//!   `genl-spec/drbd.yaml` by `genl-gen`.
//! * [`nla`]: a safe, allocation-free netlink attribute encoder and decoder.
//!
//! The kernel module includes both files with `#[path]`; they refer to each
//! other only through `super::`.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod generated;
pub mod nla;
