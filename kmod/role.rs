//! Role changes of a resource on a node without peers: promotion needs UpToDate data (or
//! `--force`, which declares the local data UpToDate and starts a new data generation),
//! demotion needs the devices to be closed.

use crate::failure::{fail, Outcome};
use crate::proto::meta::{self, Superblock};
use crate::resource::{Resource, ResourceState};
use crate::spec::generated::{ss, DiskState, Role};
use kernel::prelude::*;

/// DRBD's "this node is Primary" bit in the current generation UUID.
const UUID_PRIMARY: u64 = 1;

/// Before a new generation: the peer's bitmap slot keeps the generation it last had, so the
/// next handshake knows a bitmap-based resync brings it up to date.
pub(crate) fn keep_bitmap_uuid(sb: &mut Superblock, peer: u32) {
    let current = sb.current_uuid & !UUID_PRIMARY;
    if let Some(slot) = sb.peers.get_mut(peer as usize) {
        if slot.bitmap_uuid == 0 {
            slot.bitmap_uuid = current;
        }
    }
}

/// Starts a new data generation: the old current UUID moves into the history.
pub(crate) fn new_current_uuid(sb: &mut Superblock, primary: bool) {
    if sb.current_uuid != meta::UUID_JUST_CREATED && sb.current_uuid != 0 {
        let n = sb.history_uuids.len();
        sb.history_uuids.copy_within(0..n - 1, 1);
        sb.history_uuids[0] = sb.current_uuid & !UUID_PRIMARY;
    }
    let fresh = crate::sys::misc::random_u64() & !UUID_PRIMARY;
    sb.current_uuid = fresh | if primary { UUID_PRIMARY } else { 0 };
}

/// The connection to the peers was lost while Primary: writes from now on are not on the
/// peers, so start a new data generation (the peers will sync from us when they return).
pub(crate) fn peer_lost(resource: &Resource, peer: u32) {
    let rs = resource.state.lock();
    if rs.role != Role::Primary {
        return;
    }
    for device in rs.devices() {
        let mut st = device.state.lock();
        if let Some(backing) = st.backing.as_mut() {
            keep_bitmap_uuid(&mut backing.sb, peer);
            new_current_uuid(&mut backing.sb, true);
            if let Err(f) = backing.write_superblock() {
                pr_warn!("drbd{}: {} {}\n", device.minor, f.text(), f.info());
            }
            pr_info!(
                "{}/{} drbd{}: new current UUID {:016X} (peer unreachable)\n",
                resource.name,
                device.volume,
                device.minor,
                backing.sb.current_uuid
            );
        }
    }
}

/// The peer's disk went away while one of us is Primary and ours is UpToDate: the writes
/// that follow are not on that disk, so start a new data generation (the peer's bitmap slot
/// keeps the old one, which its disk still has).
pub(crate) fn peer_disk_lost(device: &crate::device::Device, peer: u32, primary: bool) {
    let mut st = device.state.lock();
    if let Some(backing) = st.backing.as_mut() {
        keep_bitmap_uuid(&mut backing.sb, peer);
        new_current_uuid(&mut backing.sb, primary);
        if let Err(f) = backing.write_superblock() {
            pr_warn!("drbd{}: {} {}\n", device.minor, f.text(), f.info());
        }
        pr_info!(
            "{}/{} drbd{}: new current UUID {:016X} (peer disk lost)\n",
            device.resource.name,
            device.volume,
            device.minor,
            backing.sb.current_uuid
        );
    }
}

/// Makes the resource Primary. `rs` is the locked state of `resource`.
pub(crate) fn promote(resource: &Resource, rs: &mut ResourceState, force: bool) -> Outcome {
    if rs.role == Role::Primary {
        return Ok(());
    }
    for conn in rs.connections() {
        if conn.state.lock().peer_role == Role::Primary {
            return Err(fail!(
                ss::TWO_PRIMARIES,
                "peer {} is Primary (allow-two-primaries is not supported)",
                conn.peer_node_id
            ));
        }
    }
    for device in rs.devices() {
        let st = device.state.lock();
        let usable = match st.disk_state {
            DiskState::UpToDate => true,
            DiskState::Inconsistent | DiskState::Outdated | DiskState::Consistent => force,
            _ => false,
        };
        if !usable {
            return Err(fail!(
                ss::NO_UP_TO_DATE_DISK,
                "{}/{} (minor {}) has disk state {} and no peer has UpToDate data",
                resource.name,
                device.volume,
                device.minor,
                st.disk_state.name()
            ));
        }
    }
    let mut missing = KVec::new();
    for c in rs.connections().filter(|c| c.link().is_none()) {
        missing
            .push(c.peer_node_id, GFP_KERNEL)
            .map_err(|_| fail!(crate::spec::generated::ret::ERR_NOMEM))?;
    }
    let peers_missing = !missing.is_empty();
    for device in rs.devices() {
        let mut st = device.state.lock();
        let was = st.disk_state;
        if let Some(backing) = st.backing.as_mut() {
            if was == DiskState::UpToDate && peers_missing {
                // Writes from now on are not on the unreachable peers: a new generation lets
                // the handshake tell who has the newer data (or detect a split brain).
                for peer in missing.iter() {
                    keep_bitmap_uuid(&mut backing.sb, *peer);
                }
                new_current_uuid(&mut backing.sb, true);
                pr_info!(
                    "{}/{} drbd{}: new current UUID {:016X} (promoted without all peers)\n",
                    resource.name,
                    device.volume,
                    device.minor,
                    backing.sb.current_uuid
                );
            }
            if was != DiskState::UpToDate {
                new_current_uuid(&mut backing.sb, true);
                backing.sb.flags |= meta::MDF_CONSISTENT | meta::MDF_WAS_UP_TO_DATE;
                pr_info!(
                    "{}/{} drbd{}: forced to UpToDate, new current UUID {:016X}\n",
                    resource.name,
                    device.volume,
                    device.minor,
                    backing.sb.current_uuid
                );
            }
            backing.sb.current_uuid |= UUID_PRIMARY;
            backing.sb.flags |= meta::MDF_PRIMARY_IND;
            backing.write_superblock()?;
        }
        st.disk_state = DiskState::UpToDate;
        device.set_writable(true);
        if was != st.disk_state {
            crate::events::device(device, &st, crate::events::Kind::Change);
        }
    }
    rs.role = Role::Primary;
    pr_info!(
        "{}: Preparing cluster-wide state change: role Secondary -> Primary\n",
        resource.name
    );
    crate::events::resource(resource, rs, crate::events::Kind::Change);
    crate::replication::local_change_locked(rs);
    Ok(())
}

/// Makes the resource Secondary. Refused while a device is open.
pub(crate) fn demote(resource: &Resource, rs: &mut ResourceState) -> Outcome {
    if rs.role != Role::Primary {
        return Ok(());
    }
    for device in rs.devices() {
        if device.state.lock().openers > 0 {
            return Err(fail!(
                ss::DEVICE_IN_USE,
                "/dev/drbd{} is held open by someone",
                device.minor
            ));
        }
    }
    for device in rs.devices() {
        device.set_writable(false);
        let mut st = device.state.lock();
        if let Some(backing) = st.backing.as_mut() {
            backing.sb.current_uuid &= !UUID_PRIMARY;
            backing.sb.flags &= !meta::MDF_PRIMARY_IND;
            backing.write_superblock()?;
        }
    }
    rs.role = Role::Secondary;
    rs.auto_promoted = false;
    pr_info!("{}: role Primary -> Secondary\n", resource.name);
    crate::events::resource(resource, rs, crate::events::Kind::Change);
    crate::replication::local_change_locked(rs);
    Ok(())
}
