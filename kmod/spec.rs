//! The control ABI, generated from `genl-spec/drbd.yaml`, and the netlink attribute codec,
//! compiled from the same sources the userland tools use.

#[allow(dead_code, unreachable_pub, clippy::all)]
#[path = "../genl-spec/src/generated.rs"]
pub(crate) mod generated;

#[allow(dead_code, unreachable_pub)]
#[path = "../genl-spec/src/nla.rs"]
pub(crate) mod nla;
