//! drbd-rs: a memory-safe DRBD 9 driver.
//!
//! Module `drbd`: block major 147 (`/dev/drbd<minor>`), generic netlink family `drbd`
//! version 2 with the multicast group `events`, and `/proc/drbd`. Supported so far: resources
//! with node ids, volumes (minors), attach/detach of a backing disk with v09 meta-data
//! (internal or external), Primary/Secondary roles with auto-promote, pass-through I/O, state
//! events and dumps, and two-node replication: connections over DRBD 9's data and meta TCP
//! streams, protocol A/B/C mirrored writes, full resync, split-brain detection.
//!
//! Layout: `sys/` is the only module with raw kernel calls (and the entry points the C shim
//! calls); the domain modules (`resource`, `device`, `connection`, `backing`, `role`,
//! `config`, `link`, `replication`, `nl`, `dump`, `events`) are safe Rust; `proto` and `spec`
//! are compiled from the shared userland crates.

use kernel::prelude::*;

mod activity_log;
mod admin;
mod auth;
mod backing;
mod barrier;
mod bitmap_io;
#[allow(dead_code)]
mod build_info;
mod config;
mod connection;
mod device;
mod dump;
mod events;
mod failure;
mod fence;
mod helper;
mod io_error;
mod link;
mod md_move;
mod msg;
mod name;
mod nl;
mod oos;
mod options;
mod packet;
mod peer_write;
mod procfs;
mod proto;
mod registry;
mod remote_read;
mod replication;
mod resize;
mod resource;
mod resync;
mod role;
mod sender;
mod spec;
mod sys;
mod text;
mod transfer_log;
mod verify;
mod wfc;

use registry::Registry;
use sys::global::Global;

/// All resources of this node; installed by module init, removed by module exit.
pub(crate) static REGISTRY: Global<Registry> = Global::new();

module! {
    type: DrbdModule,
    name: "drbd",
    author: "drbd-rs developers",
    description: "DRBD 9 compatible replicated block device (Rust)",
    license: "GPL",
}

/// Module state: what init registered, undone in reverse order by drop.
struct DrbdModule;

impl kernel::Module for DrbdModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let registry = KBox::pin_init(Registry::new(), GFP_KERNEL)?;
        REGISTRY.install(registry);
        if let Err(e) = sys::misc::blk_register() {
            REGISTRY.remove();
            return Err(e);
        }
        if let Err(e) = sys::misc::proc_create() {
            sys::misc::blk_unregister();
            REGISTRY.remove();
            return Err(e);
        }
        if let Err(e) = sys::genl::register() {
            sys::misc::proc_remove();
            sys::misc::blk_unregister();
            REGISTRY.remove();
            return Err(e);
        }
        pr_info!(
            "initialized. Version: {} (api:2/proto:{}-{}), drbd-rs {}\n",
            procfs::DRBD_VERSION,
            procfs::PROTOCOL_MIN,
            procfs::PROTOCOL_MAX,
            build_info::GIT_HASH
        );
        Ok(DrbdModule)
    }
}

impl Drop for DrbdModule {
    fn drop(&mut self) {
        // No new requests after this; running handlers have finished when it returns.
        sys::genl::unregister();
        sys::misc::proc_remove();
        if let Some(registry) = REGISTRY.get() {
            registry.inner.lock().clear();
            // Helpers a stopped thread left running: wait until their programs exited.
            helper::join_abandoned(registry);
        }
        sys::misc::blk_unregister();
        REGISTRY.remove();
        pr_info!("module cleanup done.\n");
    }
}
