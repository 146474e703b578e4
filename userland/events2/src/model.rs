//! In-memory picture of all DRBD objects, built from dump records and
//! notifications, plus drbdsetup's promotion score.

use crate::state::*;
use genl_spec::generated::{notify, DiskState, Role, UUID_FLAG_STABLE};
use std::collections::BTreeMap;

/// A device (volume) of a resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Device {
    /// Minor number.
    pub minor: u32,
    /// State.
    pub info: DeviceInfo,
    /// Counters, if reported.
    pub stats: Option<DeviceStats>,
}

/// A peer device (a volume as seen through one connection).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerDevice {
    /// State.
    pub info: PeerDeviceInfo,
    /// Counters, if reported.
    pub stats: Option<PeerDeviceStats>,
}

/// A path of a connection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Path {
    /// Local address as printed (`ipv4:1.2.3.4:7789`).
    pub local: String,
    /// Peer address as printed.
    pub peer: String,
    /// State.
    pub info: PathInfo,
}

/// A connection to a peer node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Connection {
    /// Connection name (`_name`).
    pub conn_name: Option<String>,
    /// State.
    pub info: ConnectionInfo,
    /// Counters, if reported.
    pub stats: Option<ConnectionStats>,
    /// Peer devices by volume.
    pub peer_devices: BTreeMap<u32, PeerDevice>,
    /// Paths.
    pub paths: Vec<Path>,
}

/// A resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resource {
    /// Name.
    pub name: String,
    /// Local node id, if known.
    pub node_id: Option<u32>,
    /// State.
    pub info: ResourceInfo,
    /// Counters, if reported.
    pub stats: Option<ResourceStats>,
    /// Devices by volume.
    pub devices: BTreeMap<u32, Device>,
    /// Connections by peer node id.
    pub connections: BTreeMap<u32, Connection>,
}

/// All resources, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    /// Resources by name.
    pub resources: BTreeMap<String, Resource>,
}

/// Address pair of a path message, formatted.
pub fn path_addrs(ctx: &Context) -> (String, String) {
    let f = |a: &Option<Vec<u8>>| {
        a.as_deref()
            .and_then(format_sockaddr)
            .unwrap_or_else(|| "unknown".into())
    };
    (f(&ctx.my_addr), f(&ctx.peer_addr))
}

impl Model {
    /// Applies one decoded event.
    pub fn apply(&mut self, ev: &Event) {
        let destroy = ev.action == notify::DESTROY;
        let name = ev.ctx.resource.clone();
        if name.is_empty() {
            return;
        }
        match &ev.body {
            Body::Resource {
                info,
                stats,
                new_name,
                node_id,
            } => {
                if destroy {
                    self.resources.remove(&name);
                    return;
                }
                if ev.action == notify::RENAME {
                    if let (Some(new), Some(mut r)) = (new_name, self.resources.remove(&name)) {
                        r.name = new.clone();
                        self.resources.insert(new.clone(), r);
                    }
                    return;
                }
                let r = self.resource_mut(&name);
                if let Some(i) = info {
                    r.info = *i;
                }
                if stats.is_some() {
                    r.stats = *stats;
                }
                if node_id.is_some() {
                    r.node_id = *node_id;
                }
            }
            Body::Device { info, stats } => {
                let Some(vol) = ev.ctx.volume else { return };
                let r = self.resource_mut(&name);
                if destroy {
                    r.devices.remove(&vol);
                    return;
                }
                let d = r.devices.entry(vol).or_default();
                if let Some(m) = ev.minor {
                    d.minor = m;
                }
                if let Some(i) = info {
                    d.info = i.clone();
                }
                if stats.is_some() {
                    d.stats = stats.clone();
                }
            }
            Body::Connection { info, stats } => {
                let Some(peer) = ev.ctx.peer_node_id else {
                    return;
                };
                let r = self.resource_mut(&name);
                if destroy {
                    r.connections.remove(&peer);
                    return;
                }
                let c = r.connections.entry(peer).or_default();
                if ev.ctx.conn_name.is_some() {
                    c.conn_name = ev.ctx.conn_name.clone();
                }
                if let Some(i) = info {
                    c.info = *i;
                }
                if stats.is_some() {
                    c.stats = *stats;
                }
            }
            Body::PeerDevice { info, stats } => {
                let (Some(peer), Some(vol)) = (ev.ctx.peer_node_id, ev.ctx.volume) else {
                    return;
                };
                let r = self.resource_mut(&name);
                let c = r.connections.entry(peer).or_default();
                if ev.ctx.conn_name.is_some() {
                    c.conn_name = ev.ctx.conn_name.clone();
                }
                if destroy {
                    c.peer_devices.remove(&vol);
                    return;
                }
                let p = c.peer_devices.entry(vol).or_default();
                if let Some(i) = info {
                    p.info = *i;
                }
                if stats.is_some() {
                    p.stats = *stats;
                }
            }
            Body::Path { info } => {
                let Some(peer) = ev.ctx.peer_node_id else {
                    return;
                };
                let (local, remote) = path_addrs(&ev.ctx);
                let r = self.resource_mut(&name);
                let c = r.connections.entry(peer).or_default();
                let pos = c
                    .paths
                    .iter()
                    .position(|p| p.local == local && p.peer == remote);
                if destroy {
                    if let Some(i) = pos {
                        c.paths.remove(i);
                    }
                    return;
                }
                let i = match pos {
                    Some(i) => i,
                    None => {
                        c.paths.push(Path {
                            local,
                            peer: remote,
                            info: PathInfo::default(),
                        });
                        c.paths.len() - 1
                    }
                };
                if let (Some(info), Some(p)) = (info, c.paths.get_mut(i)) {
                    p.info = *info;
                }
            }
            Body::Helper { .. } | Body::InitialStateDone => {}
        }
    }

    fn resource_mut(&mut self, name: &str) -> &mut Resource {
        self.resources
            .entry(name.to_owned())
            .or_insert_with(|| Resource {
                name: name.to_owned(),
                ..Resource::default()
            })
    }
}

impl Resource {
    /// `(may_promote, promotion_score)` as drbdsetup computes them.
    pub fn promotion(&self) -> (bool, u32) {
        if self.devices.is_empty() || self.info.force_io_failures {
            return (false, 0);
        }
        if self.devices.values().any(|d| !d.info.has_quorum) {
            return (false, 0);
        }
        let mut all_local_present = true;
        let mut local_uptodate = 0u32;
        let mut min_copies = u32::MAX;
        let mut may_promote = self.info.role != Role::Primary
            && !self
                .connections
                .values()
                .any(|c| c.info.peer_role == Role::Primary);
        for (vol, d) in &self.devices {
            let local_utd = d.info.disk == DiskState::UpToDate;
            if !matches!(
                d.info.disk,
                DiskState::UpToDate | DiskState::Consistent | DiskState::Inconsistent
            ) {
                all_local_present = false;
            }
            let mut copies = u32::from(local_utd);
            let mut stable_peer = false;
            for c in self.connections.values() {
                if let Some(p) = c.peer_devices.get(vol) {
                    if p.info.peer_disk == DiskState::UpToDate {
                        copies += 1;
                        if p.stats
                            .is_some_and(|s| s.uuid_flags & UUID_FLAG_STABLE != 0)
                        {
                            stable_peer = true;
                        }
                    }
                }
            }
            if copies == 0 {
                return (false, 0);
            }
            if local_utd {
                local_uptodate += 1;
            }
            if !local_utd && !stable_peer {
                may_promote = false;
            }
            min_copies = min_copies.min(copies);
        }
        let score = 10000 * u32::from(all_local_present)
            + 100 * local_uptodate.min(99)
            + min_copies.min(99);
        (may_promote, score)
    }
}
