//! All configured resources and minors of this node.
//!
//! Locking: `Registry::admin` serialises configuration requests and is held for the whole of
//! each, including waits for connection threads. `Registry::inner` (after `admin`) guards the
//! resource table; requests hold it while they change configuration and dumps hold it while
//! they read, but nobody holds it while joining a thread: a thread may be waiting for a
//! usermode helper that queries the module (`drbdsetup status`). Neither is taken by the I/O
//! path or by block-device open/release (see the lock order in `resource.rs`).

use crate::device::Device;
use crate::resource::Resource;
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

/// Minor numbers DRBD accepts.
pub(crate) const MINOR_MAX: u32 = (1 << 20) - 1;

/// Contents of the registry.
pub(crate) struct RegistryInner {
    /// Resources by slot; `None` slots are free (the 6.12 `KVec` has no `remove`).
    resources: KVec<Option<Arc<Resource>>>,
}

/// The registry (module-lifetime singleton, see `drbd_main.rs`).
#[pin_data]
pub(crate) struct Registry {
    /// Held by each configuration request from start to reply.
    #[pin]
    pub(crate) admin: Mutex<()>,
    /// Resources and, through them, devices.
    #[pin]
    pub(crate) inner: Mutex<RegistryInner>,
    /// Helper threads whose caller stopped waiting (`crate::helper`); `None` slots are free.
    /// Never held while a thread is joined.
    #[pin]
    pub(crate) abandoned_helpers: Mutex<KVec<Option<crate::helper::Abandoned>>>,
}

impl Registry {
    /// An empty registry.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            admin <- new_mutex!((), "Registry::admin"),
            inner <- new_mutex!(RegistryInner { resources: KVec::new() }, "Registry::inner"),
            abandoned_helpers <- new_mutex!(KVec::new(), "Registry::abandoned_helpers"),
        })
    }
}

impl RegistryInner {
    /// Live resources in creation order.
    pub(crate) fn resources(&self) -> impl Iterator<Item = &Arc<Resource>> {
        self.resources.iter().flatten()
    }

    /// The resource called `name`.
    pub(crate) fn resource(&self, name: &str) -> Option<&Arc<Resource>> {
        self.resources().find(|r| r.name == *name)
    }

    /// Adds a resource.
    pub(crate) fn add(&mut self, resource: Arc<Resource>) -> Result {
        if let Some(slot) = self.resources.iter_mut().find(|s| s.is_none()) {
            *slot = Some(resource);
            return Ok(());
        }
        self.resources.push(Some(resource), GFP_KERNEL)?;
        Ok(())
    }

    /// Removes the resource called `name`.
    pub(crate) fn remove(&mut self, name: &str) -> Option<Arc<Resource>> {
        self.resources
            .iter_mut()
            .find(|s| s.as_ref().is_some_and(|r| r.name == *name))?
            .take()
    }

    /// The device with `minor`, in any resource.
    pub(crate) fn device(&self, minor: u32) -> Option<Arc<Device>> {
        self.resources()
            .find_map(|r| r.state.lock().devices().find(|d| d.minor == minor).cloned())
    }

    /// Drops everything (module exit): every device is detached and removed first.
    pub(crate) fn clear(&mut self) {
        for slot in self.resources.iter_mut() {
            if let Some(resource) = slot.take() {
                crate::config::teardown_resource(&resource);
            }
        }
    }
}
