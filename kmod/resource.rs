//! A resource: a named replication group with a node id, a role, and its volumes (devices).
//!
//! Lock order (outermost first): `Registry::inner` → `Resource::state` → `Device::state` →
//! `Device::io`. Configuration requests hold the registry lock for their whole duration;
//! block-device open/release take only `Resource::state` and `Device::state`, because the
//! block layer calls them under `disk->open_mutex`, which `del_gendisk` also takes (so the disk
//! is always removed with no resource or device lock held).

use crate::connection::Connection;
use crate::device::Device;
use crate::name::Name;
use crate::spec::generated::Role;
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

/// Resource options that matter on a single node (`RESOURCE_OPTS`).
#[derive(Clone, Copy)]
pub(crate) struct ResourceOptions {
    /// Promote on open for writing, demote on last close.
    pub(crate) auto_promote: bool,
}

impl Default for ResourceOptions {
    fn default() -> Self {
        Self { auto_promote: true }
    }
}

/// Mutable state of a resource, behind `Resource::state`.
pub(crate) struct ResourceState {
    /// Local role.
    pub(crate) role: Role,
    /// The current Primary role came from auto-promote (so the last close demotes).
    pub(crate) auto_promoted: bool,
    /// Options.
    pub(crate) options: ResourceOptions,
    /// Application I/O suspended by `suspend-io` (`suspended:user`); every device of the
    /// resource holds new bios while set.
    pub(crate) susp_user: bool,
    /// Application I/O suspended by fencing (`suspended:fencing`): a Primary with
    /// `resource-and-stonith` lost a peer whose disk may be UpToDate, and `fence-peer` has
    /// not made that disk's state known yet. Devices hold new bios while either flag is set.
    pub(crate) susp_fen: bool,
    /// Mirrored writes that were waiting for a peer when its link broke during a fencing
    /// freeze: their upper bios complete only at the thaw (`admin::thaw`), never before the
    /// peer is known to be fenced. Each entry holds one part of its completion.
    pub(crate) fence_held: KVec<Arc<crate::sys::bio::SharedCompletion>>,
    /// Volumes by slot; `None` slots are free (no `remove` in the 6.12 `KVec`).
    pub(crate) devices: KVec<Option<Arc<Device>>>,
    /// Connections to peers, by slot (like `devices`).
    pub(crate) connections: KVec<Option<Arc<Connection>>>,
}

/// A resource.
///
/// Lifetime: created by `new-resource`, owned by the registry (one `Arc`), and referenced by
/// each of its devices; removed by `del-resource`/`down` only when it has no devices left.
#[pin_data]
pub(crate) struct Resource {
    /// Name (immutable).
    pub(crate) name: Name,
    /// Our node id within the resource (immutable; `new-resource` argument).
    pub(crate) node_id: u32,
    /// Role, options and devices.
    #[pin]
    pub(crate) state: Mutex<ResourceState>,
}

impl Resource {
    /// A new Secondary resource without devices.
    pub(crate) fn new(name: Name, node_id: u32, options: ResourceOptions) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                name,
                node_id,
                state <- new_mutex!(
                    ResourceState {
                        role: Role::Secondary,
                        auto_promoted: false,
                        susp_user: false,
                        susp_fen: false,
                        fence_held: KVec::new(),
                        options,
                        devices: KVec::new(),
                        connections: KVec::new(),
                    },
                    "Resource::state"
                ),
            }),
            GFP_KERNEL,
        )
    }
}

impl ResourceState {
    /// Live devices, in volume-slot order.
    pub(crate) fn devices(&self) -> impl Iterator<Item = &Arc<Device>> {
        self.devices.iter().flatten()
    }

    /// The device of `volume`, if any.
    pub(crate) fn device_by_volume(&self, volume: u32) -> Option<&Arc<Device>> {
        self.devices().find(|d| d.volume == volume)
    }

    /// Adds a device, reusing a free slot.
    pub(crate) fn add_device(&mut self, device: Arc<Device>) -> Result {
        if let Some(slot) = self.devices.iter_mut().find(|s| s.is_none()) {
            *slot = Some(device);
            return Ok(());
        }
        self.devices.push(Some(device), GFP_KERNEL)?;
        Ok(())
    }

    /// Removes the device with `minor` from the list and returns it.
    pub(crate) fn remove_device(&mut self, minor: u32) -> Option<Arc<Device>> {
        let slot = self
            .devices
            .iter_mut()
            .find(|s| s.as_ref().is_some_and(|d| d.minor == minor))?;
        slot.take()
    }

    /// Live connections.
    pub(crate) fn connections(&self) -> impl Iterator<Item = &Arc<Connection>> {
        self.connections.iter().flatten()
    }

    /// The connection to `peer_node_id`, if any.
    pub(crate) fn connection(&self, peer_node_id: u32) -> Option<&Arc<Connection>> {
        self.connections().find(|c| c.peer_node_id == peer_node_id)
    }

    /// Adds a connection, reusing a free slot.
    pub(crate) fn add_connection(&mut self, conn: Arc<Connection>) -> Result {
        if let Some(slot) = self.connections.iter_mut().find(|s| s.is_none()) {
            *slot = Some(conn);
            return Ok(());
        }
        self.connections.push(Some(conn), GFP_KERNEL)?;
        Ok(())
    }

    /// Removes the connection to `peer_node_id` and returns it.
    pub(crate) fn remove_connection(&mut self, peer_node_id: u32) -> Option<Arc<Connection>> {
        let slot = self
            .connections
            .iter_mut()
            .find(|s| s.as_ref().is_some_and(|c| c.peer_node_id == peer_node_id))?;
        slot.take()
    }

    /// Number of devices.
    pub(crate) fn device_count(&self) -> usize {
        self.devices().count()
    }
}
