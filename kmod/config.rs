//! Configuration steps on the registry (called with `Registry::inner` held): create and
//! remove resources and minors, attach and detach backing disks, change roles, tear down.

use crate::activity_log::ActivityLog;
use crate::backing::{AttachRequest, Backing};
use crate::connection::{Connection, NetOptions, Path, PeerDev};
use crate::device::Device;
use crate::events::{self, Kind};
use crate::failure::{fail, Outcome};
use crate::name::Name;
use crate::options::OptionSet;
use crate::proto::meta;
use crate::registry::{RegistryInner, MINOR_MAX};
use crate::resource::{Resource, ResourceOptions};
use crate::spec::generated::{
    disk_conf, ret, ss, DiskState, ReplState, Role, NODE_ID_MAX, VOLUME_MAX,
};
use kernel::prelude::*;
use kernel::sync::Arc;

pub(crate) fn resource(reg: &RegistryInner, name: &str) -> Outcome<Arc<Resource>> {
    reg.resource(name)
        .cloned()
        .ok_or_else(|| fail!(ret::ERR_RES_NOT_KNOWN, "unknown resource {}", name))
}

pub(crate) fn device(reg: &RegistryInner, minor: u32) -> Outcome<Arc<Device>> {
    reg.device(minor)
        .ok_or_else(|| fail!(ret::ERR_MINOR_INVALID, "unknown minor {}", minor))
}

/// `new-resource NAME NODE_ID`.
pub(crate) fn new_resource(
    reg: &mut RegistryInner,
    name: &str,
    node_id: u32,
    opts: ResourceOptions,
) -> Outcome {
    let valid = Name::new(name).ok_or_else(|| {
        fail!(
            ret::ERR_INVALID_REQUEST,
            "invalid resource name \"{}\"",
            name
        )
    })?;
    if node_id > NODE_ID_MAX {
        return Err(fail!(
            ret::ERR_INVALID_REQUEST,
            "node-id {} out of range 0..{}",
            node_id,
            NODE_ID_MAX
        ));
    }
    if let Some(existing) = reg.resource(name) {
        if existing.node_id == node_id {
            return Ok(());
        }
        return Err(fail!(
            ret::ERR_INVALID_REQUEST,
            "resource {} exists with node-id {}",
            name,
            existing.node_id
        ));
    }
    let res = Resource::new(valid, node_id, opts).map_err(|_| fail!(ret::ERR_NOMEM))?;
    reg.add(res.clone()).map_err(|_| fail!(ret::ERR_NOMEM))?;
    events::resource(&res, &res.state.lock(), Kind::Create);
    Ok(())
}

/// `resource-options NAME`.
pub(crate) fn resource_options(
    reg: &mut RegistryInner,
    name: &str,
    update: impl FnOnce(ResourceOptions) -> Outcome<ResourceOptions>,
) -> Outcome {
    let res = resource(reg, name)?;
    let mut rs = res.state.lock();
    rs.options = update(rs.options)?;
    Ok(())
}

/// `del-resource NAME`: only without devices.
pub(crate) fn del_resource(reg: &mut RegistryInner, name: &str) -> Outcome {
    let res = resource(reg, name)?;
    let rs = res.state.lock();
    if rs.device_count() > 0 {
        return Err(fail!(
            ret::ERR_RES_IN_USE,
            "resource {} still has volumes (del-minor first)",
            name
        ));
    }
    events::resource(&res, &rs, Kind::Destroy);
    drop(rs);
    reg.remove(name);
    Ok(())
}

/// `new-minor NAME MINOR VOLUME`.
pub(crate) fn new_minor(reg: &mut RegistryInner, name: &str, minor: u32, volume: u32) -> Outcome {
    let res = resource(reg, name)?;
    if minor > MINOR_MAX {
        return Err(fail!(
            ret::ERR_INVALID_REQUEST,
            "minor {} out of range 0..{}",
            minor,
            MINOR_MAX
        ));
    }
    if volume > VOLUME_MAX {
        return Err(fail!(
            ret::ERR_INVALID_REQUEST,
            "volume {} out of range 0..{}",
            volume,
            VOLUME_MAX
        ));
    }
    if reg.device(minor).is_some() {
        return Err(fail!(
            ret::ERR_MINOR_OR_VOLUME_EXISTS,
            "minor {} exists already",
            minor
        ));
    }
    let mut rs = res.state.lock();
    if rs.device_by_volume(volume).is_some() {
        return Err(fail!(
            ret::ERR_MINOR_OR_VOLUME_EXISTS,
            "volume {} of {} exists already",
            volume,
            name
        ));
    }
    let dev = Device::create(res.clone(), minor, volume).map_err(|e| {
        fail!(
            ret::ERR_NOMEM,
            "creating /dev/drbd{} failed ({})",
            minor,
            e.to_errno()
        )
    })?;
    rs.add_device(dev.clone())
        .map_err(|_| fail!(ret::ERR_NOMEM))?;
    dev.set_writable(rs.role == Role::Primary);
    if rs.susp_user || rs.susp_fen {
        dev.freeze();
    }
    events::device(&dev, &dev.state.lock(), Kind::Create);
    Ok(())
}

/// `del-minor MINOR`: only a diskless, closed device.
pub(crate) fn del_minor(reg: &mut RegistryInner, minor: u32) -> Outcome {
    let dev = device(reg, minor)?;
    remove_device(&dev)
}

fn remove_device(dev: &Arc<Device>) -> Outcome {
    // Held requests of a suspended resource are restarted (they fail if diskless) before the
    // disk disappears: the block layer does not wait for bios a driver keeps.
    dev.thaw();
    let res = dev.resource.clone();
    let mut rs = res.state.lock();
    let disk = {
        let mut st = dev.state.lock();
        if st.backing.is_some() {
            return Err(fail!(
                ret::ERR_MINOR_CONFIGURED,
                "minor {} is attached (detach first)",
                dev.minor
            ));
        }
        if st.openers > 0 {
            return Err(fail!(
                ss::DEVICE_IN_USE,
                "/dev/drbd{} is held open by someone",
                dev.minor
            ));
        }
        st.removing = true;
        events::device(dev, &st, Kind::Destroy);
        st.disk.take()
    };
    rs.remove_device(dev.minor);
    for conn in rs.connections() {
        let mut cs = conn.state.lock();
        events::peer_device(conn, &cs, dev.volume, Kind::Destroy);
        let mut peers = KVec::new();
        for p in cs.peers.iter().filter(|p| p.volume != dev.volume) {
            // Shrinking never needs more room than before; a failure only drops an entry.
            let _ = peers.push(*p, GFP_KERNEL);
        }
        cs.peers = peers;
    }
    drop(rs);
    // Removed with no resource or device lock held: `del_gendisk` takes the open mutex, under
    // which the block layer calls our open/release.
    if let Some(mut disk) = disk {
        disk.remove();
    }
    dev.stop_worker();
    Ok(())
}

/// `attach MINOR LOWER META INDEX`.
///
/// The backing devices are opened and closed with no resource or device lock held: opening
/// takes the lower disk's `open_mutex`, and our own open path takes `Resource::state` under
/// `open_mutex` (all gendisks share one lock class).
pub(crate) fn attach(
    reg: &mut RegistryInner,
    minor: u32,
    req: &AttachRequest<'_>,
    disk_conf: OptionSet,
) -> Outcome {
    let dev = device(reg, minor)?;
    let res = dev.resource.clone();
    if dev.state.lock().backing.is_some() {
        return Err(fail!(ret::ERR_DISK_CONFIGURED));
    }
    dev.start_worker().map_err(|_| fail!(ret::ERR_NOMEM))?;
    let holder: *const core::ffi::c_void = (&*dev as *const Device).cast();
    // Declared before the guards, so that on failure it is closed after they are released.
    let mut backing = Backing::open(req, holder, res.node_id)?;
    backing.disk_conf = disk_conf;
    // The on-disk bitmap is complete (written at detach; after a crash, extents recorded
    // before the log forgot them plus the log's own extents, which `drbdmeta apply-al` put
    // there), so only a requested full sync marks every block.
    let mut oos =
        crate::oos::OosMap::new(backing.data_sectors()).map_err(|_| fail!(ret::ERR_NOMEM))?;
    if backing.sb.flags & meta::MDF_FULL_SYNC != 0 {
        oos.mark_all();
    }
    let md = backing.md_dev();
    let max_peers = backing.sb.bm_max_peers;
    let on_disk = crate::bitmap_io::DiskBitmap::new(md.clone(), &backing.layout, max_peers)
        .read_into(&mut oos)
        .map_err(|e| {
            fail!(
                ret::ERR_IO_MD_DISK,
                "reading the bitmap failed with {}",
                e.to_errno()
            )
        })?;
    let al_extents = backing.disk_conf.u32(disk_conf::AL_EXTENTS).unwrap_or(0);
    let log = ActivityLog::new(
        md.clone(),
        backing.layout,
        crate::bitmap_io::DiskBitmap::new(md, &backing.layout, max_peers),
        al_extents,
        minor,
    )
    .map_err(|e| {
        fail!(
            ret::ERR_IO_MD_DISK,
            "reading the activity log failed with {}",
            e.to_errno()
        )
    })?;
    log.note_disk_dirty(&on_disk);
    let writer = log
        .start_writer(dev.clone())
        .map_err(|_| fail!(ret::ERR_NOMEM))?;
    backing.al = Some((log.clone(), writer));
    let rs = res.state.lock();
    let mut st = dev.state.lock();
    backing.sb.node_id = res.node_id as i32;
    st.degr_wfc = crate::wfc::degraded_peers(rs.role == Role::Primary, &backing.sb);
    // Still marked Primary on disk while we are not: this node crashed (or lost power) as
    // Primary, and writes it had in flight may be missing on the peers or only on the peers.
    // Those blocks must be resynced in whichever direction the handshake picks: they are the
    // activity-log extents that `drbdmeta apply-al` put into the on-disk bitmap (read above).
    if rs.role != Role::Primary && backing.sb.flags & meta::MDF_PRIMARY_IND != 0 {
        backing.sb.flags = (backing.sb.flags & !meta::MDF_PRIMARY_IND) | meta::MDF_CRASHED_PRIMARY;
        pr_warn!(
            "drbd{}: meta-data says Primary: this node crashed as Primary, its data will be resynced\n",
            minor
        );
    }
    backing.sb.flags &= !meta::MDF_AL_CLEAN;
    if rs.role == Role::Primary {
        backing.sb.flags |= meta::MDF_PRIMARY_IND;
    }
    backing.sb.effective_size = backing.data_sectors();
    let disk_state = backing.disk_state_alone();
    if rs.role == Role::Primary && disk_state != DiskState::UpToDate {
        return Err(fail!(
            ss::NO_UP_TO_DATE_DISK,
            "a Primary can only attach UpToDate data"
        ));
    }
    backing.write_superblock()?;
    if let Some(disk) = st.disk.as_ref() {
        if let Err(e) = disk.stack_limits(&backing.data) {
            pr_warn!(
                "drbd{}: could not adopt the queue limits of {} ({})\n",
                minor,
                req.backing_dev,
                e.to_errno()
            );
        }
        disk.set_capacity(backing.data_sectors());
    }
    pr_info!(
        "drbd{}: attached to {} ({} sectors usable, disk {})\n",
        minor,
        req.backing_dev,
        backing.data_sectors(),
        disk_state.name()
    );
    let old_oos = core::mem::replace(&mut *dev.oos.lock(), oos);
    drop(old_oos);
    dev.set_al(Some(log));
    dev.set_lower(
        Some(backing.data.clone()),
        backing.data_sectors(),
        rs.role == Role::Primary,
    );
    st.backing = Some(backing);
    st.disk_state = disk_state;
    // Connected to a peer with data: which copy is current is only known after the sync
    // decision (DRBD's Negotiating).
    st.negotiating = rs.connections().any(|c| {
        c.link().is_some()
            && c.peer_dev(dev.volume)
                .is_some_and(|p| p.peer_disk >= DiskState::Inconsistent)
    });
    events::device(&dev, &st, Kind::Change);
    drop(st);
    pr_info!(
        "{}: Method to ensure write ordering: {}\n",
        dev.resource.name,
        crate::backing::write_ordering_name(crate::barrier::write_ordering(&rs))
    );
    crate::replication::local_change_locked(&rs);
    drop(rs);
    crate::fence::load_known_outdated(&dev.resource, &dev);
    Ok(())
}

/// `disk-options MINOR ...`: replaces the stored disk options of an attached device.
pub(crate) fn change_disk_options(
    reg: &mut RegistryInner,
    minor: u32,
    change: impl FnOnce(&OptionSet) -> Outcome<OptionSet>,
) -> Outcome {
    let dev = device(reg, minor)?;
    let mut st = dev.state.lock();
    let backing = st
        .backing
        .as_mut()
        .ok_or_else(|| fail!(ret::ERR_NO_DISK, "device has no disk (attach first)"))?;
    let before = backing.write_ordering();
    backing.disk_conf = change(&backing.disk_conf)?;
    let changed = backing.write_ordering() != before;
    drop(st);
    if changed {
        crate::barrier::log_write_ordering(&dev.resource);
    }
    Ok(())
}

/// `invalidate MINOR`: the local data is replaced by the peer's (a full resync as target now
/// if connected to an UpToDate peer, else at the next connection).
pub(crate) fn invalidate(reg: &mut RegistryInner, minor: u32) -> Outcome {
    let dev = device(reg, minor)?;
    let res = dev.resource.clone();
    let conn = {
        let rs = res.state.lock();
        if rs.role == Role::Primary {
            return Err(fail!(
                ss::NO_UP_TO_DATE_DISK,
                "a Primary cannot give up its data (reads are served locally only)"
            ));
        }
        let first = rs.connections().next().cloned();
        first
    };
    let live = conn.as_ref().and_then(|c| {
        let p = c.peer_dev(dev.volume)?;
        let link = c.link()?;
        Some((p, link))
    });
    if let Some((p, _)) = live.as_ref() {
        if matches!(
            p.repl,
            ReplState::SyncSource | ReplState::SyncTarget | ReplState::WfBitMapS
        ) {
            return Err(fail!(ss::RESYNC_RUNNING, "a resync is running"));
        }
        if p.repl == ReplState::Established && p.peer_disk != DiskState::UpToDate {
            return Err(fail!(
                ss::NO_UP_TO_DATE_DISK,
                "the peer has no UpToDate data to take"
            ));
        }
    }
    crate::resync::invalidate_local(&dev)?;
    pr_info!(
        "drbd{}: invalidated, the local data will be replaced\n",
        minor
    );
    if let (Some(conn), Some((p, link))) = (conn, live) {
        if p.repl == ReplState::Established
            && crate::resync::invalidate_connected(&conn, &link, &dev).is_err()
        {
            link.data.shutdown();
        }
    }
    Ok(())
}

/// `invalidate-remote NAME PEER VOLUME`: the peer's data is replaced by ours.
pub(crate) fn invalidate_remote(
    reg: &mut RegistryInner,
    name: &str,
    peer: u32,
    volume: u32,
) -> Outcome {
    let (conn, dev) = peer_volume(reg, name, peer, volume)?;
    if dev.state.lock().disk_state != DiskState::UpToDate {
        return Err(fail!(
            ss::NO_UP_TO_DATE_DISK,
            "only UpToDate data can replace the peer's"
        ));
    }
    let (p, link) = match (conn.peer_dev(volume), conn.link()) {
        (Some(p), Some(l)) if p.repl != ReplState::Off => (p, l),
        _ => return Err(fail!(ss::NEED_CONNECTION, "not connected to node {}", peer)),
    };
    if p.repl != ReplState::Established {
        return Err(fail!(ss::RESYNC_RUNNING, "a resync is running"));
    }
    if p.peer_role == Role::Primary {
        return Err(fail!(
            ss::PRIMARY_NOP,
            "the peer is Primary and cannot give up its data"
        ));
    }
    if crate::resync::invalidate_peer(&conn, &link, &dev).is_err() {
        link.data.shutdown();
    }
    Ok(())
}

/// `detach MINOR [--force]`.
pub(crate) fn detach(reg: &mut RegistryInner, minor: u32, force: bool) -> Outcome {
    let dev = device(reg, minor)?;
    detach_device(&dev, force)
}

/// Detaches and closes the backing devices (closed after the locks are released, see `attach`).
/// A Primary may detach while a connected peer has UpToDate data: it goes on through it.
fn detach_device(dev: &Arc<Device>, force: bool) -> Outcome {
    {
        let rs = dev.resource.state.lock();
        let st = dev.state.lock();
        if st.backing.is_none() {
            return Ok(());
        }
        drop(st);
        if rs.role == Role::Primary && !force && !crate::remote_read::peer_has_data_locked(&rs, dev)
        {
            return Err(fail!(
                ss::NO_UP_TO_DATE_DISK,
                "detaching would leave the Primary without data (no peers)"
            ));
        }
    }
    finish_detach(dev, DiskState::Detaching)
}

/// The local disk failed and `on-io-error` says detach (worker thread, no lock held): the
/// disk goes Failed, the peers learn it together with the blocks this node had marked (so
/// nothing it missed is forgotten), the `local-io-error` handler runs if configured, then
/// the disk is released and goes Diskless.
pub(crate) fn detach_failed(dev: &Arc<Device>, call_helper: bool) {
    let res = dev.resource.clone();
    {
        let rs = res.state.lock();
        {
            let mut st = dev.state.lock();
            if st.backing.is_none() || st.disk_state <= DiskState::Failed {
                return;
            }
            pr_info!(
                "{}/{} drbd{}: disk( {} -> Failed )\n",
                res.name,
                dev.volume,
                dev.minor,
                st.disk_state.name()
            );
            st.disk_state = DiskState::Failed;
            events::device(dev, &st, Kind::Change);
        }
        // No new request reaches the failing disk: reads and writes go to the peers.
        dev.set_lower(None, 0, rs.role == Role::Primary);
        dev.set_al(None);
        for conn in rs.connections() {
            if let Some(link) = conn.link() {
                if crate::resync::send_own_bitmap(&link, dev).is_err() {
                    link.data.shutdown();
                }
            }
        }
        crate::replication::local_change_locked(&rs);
    }
    if call_helper {
        crate::helper::call_device(dev, crate::proto::helper::Helper::LocalIoError);
    }
    if let Err(f) = finish_detach(dev, DiskState::Failed) {
        pr_warn!("drbd{}: {} {}\n", dev.minor, f.text(), f.info());
    }
}

/// `pass_on`: the disk stays, but after a failed request its data is not UpToDate any more.
pub(crate) fn mark_inconsistent(dev: &Arc<Device>) {
    let rs = dev.resource.state.lock();
    {
        let mut st = dev.state.lock();
        if st.disk_state <= DiskState::Inconsistent {
            return;
        }
        pr_info!(
            "{}/{} drbd{}: disk( {} -> Inconsistent )\n",
            dev.resource.name,
            dev.volume,
            dev.minor,
            st.disk_state.name()
        );
        st.disk_state = DiskState::Inconsistent;
        if let Some(b) = st.backing.as_mut() {
            b.sb.flags &= !(meta::MDF_CONSISTENT | meta::MDF_WAS_UP_TO_DATE);
            if let Err(f) = b.write_superblock() {
                pr_warn!("drbd{}: {} {}\n", dev.minor, f.text(), f.info());
            }
        }
        events::device(dev, &st, Kind::Change);
    }
    crate::replication::local_change_locked(&rs);
}

/// The common end of a detach: `from` is the state shown meanwhile (Detaching, or Failed).
fn finish_detach(dev: &Arc<Device>, from: DiskState) -> Outcome {
    let backing = {
        let res = dev.resource.clone();
        let rs = res.state.lock();
        let mut st = dev.state.lock();
        if st.backing.is_none() {
            return Ok(());
        }
        if st.disk_state != from {
            st.disk_state = from;
            events::device(dev, &st, Kind::Change);
        }
        dev.set_lower(None, 0, rs.role == Role::Primary);
        dev.set_al(None);
        dev.drain();
        let mut backing = st.backing.take();
        if let Some((log, writer)) = backing.as_mut().and_then(|b| b.al.take()) {
            log.stop();
            writer.stop();
        }
        if let Some(b) = backing.as_mut() {
            // The blocks still owed to a peer outlive the detach, so that the next attach
            // resyncs only those (the activity log, about to be marked clean, no longer
            // covers the extents it held).
            let on_disk =
                crate::bitmap_io::DiskBitmap::new(b.md_dev(), &b.layout, b.sb.bm_max_peers);
            match on_disk.merge_from(&dev.oos) {
                Ok(blocks) if blocks.is_empty() => {}
                Ok(blocks) => pr_info!(
                    "drbd{}: {} KiB out of sync written to the on-disk bitmap ({} blocks)\n",
                    dev.minor,
                    dev.oos.lock().count() * 4,
                    blocks.len()
                ),
                Err(e) => {
                    // Without the bits the next attach must assume everything changed.
                    b.sb.flags |= meta::MDF_FULL_SYNC;
                    pr_warn!(
                        "drbd{}: writing the bitmap failed ({}): a full sync follows\n",
                        dev.minor,
                        e.to_errno()
                    );
                }
            }
            b.sb.flags |= meta::MDF_AL_CLEAN;
            if let Err(f) = b.write_superblock() {
                pr_warn!("drbd{}: {} {}\n", dev.minor, f.text(), f.info());
            }
        }
        // A diskless node connected to a peer with data keeps its size: I/O goes there.
        let peer_size = rs
            .connections()
            .filter(|c| c.link().is_some())
            .filter_map(|c| c.peer_dev(dev.volume))
            .filter(|p| p.peer_disk == DiskState::UpToDate)
            .map(|p| p.peer_size)
            .max()
            .unwrap_or(0);
        if let Some(disk) = st.disk.as_ref() {
            disk.set_capacity(peer_size);
        }
        if from == DiskState::Failed {
            pr_info!(
                "{}/{} drbd{}: disk( Failed -> Diskless )\n",
                res.name,
                dev.volume,
                dev.minor
            );
        }
        st.disk_state = DiskState::Diskless;
        st.negotiating = false;
        pr_info!("drbd{}: detached\n", dev.minor);
        events::device(dev, &st, Kind::Change);
        backing
    };
    drop(backing);
    let old_oos = core::mem::replace(&mut *dev.oos.lock(), crate::oos::OosMap::empty());
    drop(old_oos);
    crate::replication::local_change(&dev.resource);
    Ok(())
}

/// `primary NAME [--force]`.
/// Unreachable peers were fenced before (`fence::before_promotion`, outside the registry lock).
pub(crate) fn primary(reg: &mut RegistryInner, name: &str, force: bool) -> Outcome {
    let res = resource(reg, name)?;
    let mut rs = res.state.lock();
    crate::role::promote(&res, &mut rs, force)?;
    rs.auto_promoted = false;
    Ok(())
}

/// `secondary NAME`.
pub(crate) fn secondary(reg: &mut RegistryInner, name: &str) -> Outcome {
    let res = resource(reg, name)?;
    let mut rs = res.state.lock();
    crate::role::demote(&res, &mut rs)
}

/// `down NAME`: demote, detach and remove every volume, remove the resource.
pub(crate) fn down(reg: &mut RegistryInner, name: &str) -> Outcome {
    let res = resource(reg, name)?;
    // Requests held by `suspend-io` go on first: nothing is lost, nobody is left waiting.
    crate::admin::thaw_resource(&res);
    {
        let mut rs = res.state.lock();
        crate::role::demote(&res, &mut rs)?;
    }
    remove_connections(&res);
    loop {
        let next = res.state.lock().devices().next().cloned();
        let Some(dev) = next else { break };
        detach_device(&dev, false)?;
        remove_device(&dev)?;
    }
    del_resource(reg, name)
}

/// First step of `down`, without `Registry::inner`: release requests held by `suspend-io`
/// (as [`down`] does), demote, then stop every connection.
pub(crate) fn stop_for_down(res: &Arc<Resource>) -> Outcome {
    crate::admin::thaw_resource(res);
    {
        let mut rs = res.state.lock();
        crate::role::demote(res, &mut rs)?;
    }
    let conns = {
        let rs = res.state.lock();
        let mut v = KVec::new();
        for c in rs.connections() {
            v.push(c.clone(), GFP_KERNEL)
                .map_err(|_| fail!(ret::ERR_NOMEM))?;
        }
        v
    };
    for conn in conns.iter() {
        conn.stop();
    }
    Ok(())
}

/// Module exit: tear a resource down regardless of state (nothing can be open any more,
/// because the module cannot be unloaded while a device is open).
pub(crate) fn teardown_resource(res: &Arc<Resource>) {
    crate::admin::thaw_resource(res);
    remove_connections(res);
    loop {
        let next = res.state.lock().devices().next().cloned();
        let Some(dev) = next else { break };
        let _ = detach_device(&dev, true);
        if remove_device(&dev).is_err() {
            break;
        }
    }
}

/// The connection of resource `name` to `peer` and the resource's device of `volume`.
pub(crate) fn peer_volume(
    reg: &RegistryInner,
    name: &str,
    peer: u32,
    volume: u32,
) -> Outcome<(Arc<Connection>, Arc<Device>)> {
    let res = resource(reg, name)?;
    let conn = connection(&res, peer)?;
    let dev = res
        .state
        .lock()
        .device_by_volume(volume)
        .cloned()
        .ok_or_else(|| fail!(ret::ERR_INVALID_REQUEST, "no volume {} in {}", volume, name))?;
    Ok((conn, dev))
}

pub(crate) fn connection(res: &Resource, peer: u32) -> Outcome<Arc<Connection>> {
    res.state.lock().connection(peer).cloned().ok_or_else(|| {
        fail!(
            ret::ERR_INVALID_REQUEST,
            "unknown connection to node {}",
            peer
        )
    })
}

/// `new-peer NAME PEER_NODE_ID [net options]`.
pub(crate) fn new_peer(
    reg: &mut RegistryInner,
    name: &str,
    peer: u32,
    conn_name: Option<&str>,
    net: NetOptions,
    net_conf: OptionSet,
) -> Outcome {
    let res = resource(reg, name)?;
    if peer > NODE_ID_MAX || peer == res.node_id {
        return Err(fail!(
            ret::ERR_INVALID_REQUEST,
            "peer node-id {} is invalid for a node with node-id {}",
            peer,
            res.node_id
        ));
    }
    let mut rs = res.state.lock();
    if rs.connection(peer).is_some() {
        return Err(fail!(
            ret::ERR_INVALID_REQUEST,
            "connection to node {} exists already",
            peer
        ));
    }
    let default_name = kernel::str::CString::try_from_fmt(kernel::fmt!("peer{}", peer))
        .map_err(|_| fail!(ret::ERR_NOMEM))?;
    let label = conn_name.unwrap_or(default_name.to_str().unwrap_or("peer"));
    let label = Name::new(label).ok_or_else(|| {
        fail!(
            ret::ERR_INVALID_REQUEST,
            "invalid connection name \"{}\"",
            label
        )
    })?;
    let conn = Connection::new(res.clone(), peer, label, net, net_conf)
        .map_err(|_| fail!(ret::ERR_NOMEM))?;
    {
        let mut peers = KVec::new();
        for dev in rs.devices() {
            let mut p = PeerDev::new(dev.volume);
            p.known_outdated = crate::fence::outdated_on_disk(dev, peer);
            if p.known_outdated {
                p.peer_disk = DiskState::Outdated;
            }
            peers
                .push(p, GFP_KERNEL)
                .map_err(|_| fail!(ret::ERR_NOMEM))?;
        }
        let mut cs = conn.state.lock();
        cs.peers = peers;
        events::connection(&conn, &cs, Kind::Create);
        for p in cs.peers.iter() {
            events::peer_device(&conn, &cs, p.volume, Kind::Create);
        }
    }
    rs.add_connection(conn).map_err(|_| fail!(ret::ERR_NOMEM))?;
    Ok(())
}

/// `net-options NAME PEER_NODE_ID ...`: `change` computes the new option store and the
/// options the link uses from the current store; both are replaced together. Protocol and
/// timing changes apply to the next write and the next connection attempt.
pub(crate) fn change_net_options(
    reg: &mut RegistryInner,
    name: &str,
    peer: u32,
    change: impl FnOnce(&OptionSet) -> Outcome<(OptionSet, NetOptions)>,
) -> Outcome {
    let res = resource(reg, name)?;
    let conn = connection(&res, peer)?;
    let mut cs = conn.state.lock();
    let (conf, net) = change(&cs.net_conf)?;
    cs.net_conf = conf;
    cs.net = net;
    Ok(())
}

/// `new-path NAME PEER_NODE_ID LOCAL PEER` (one path per connection).
pub(crate) fn new_path(reg: &mut RegistryInner, name: &str, peer: u32, path: Path) -> Outcome {
    let res = resource(reg, name)?;
    let conn = connection(&res, peer)?;
    let mut cs = conn.state.lock();
    if cs.path.is_some() {
        return Err(fail!(
            ret::ERR_INVALID_REQUEST,
            "connection to node {} has a path already (multiple paths are not supported yet)",
            peer
        ));
    }
    cs.path = Some(path);
    events::path(&conn, &cs, Kind::Create);
    Ok(())
}

/// `del-path NAME PEER_NODE_ID LOCAL PEER`: only while not connecting.
pub(crate) fn del_path(reg: &mut RegistryInner, name: &str, peer: u32) -> Outcome {
    let res = resource(reg, name)?;
    let conn = connection(&res, peer)?;
    let mut cs = conn.state.lock();
    if cs.thread.is_some() {
        return Err(fail!(ret::ERR_NET_CONFIGURED, "disconnect first"));
    }
    if cs.path.is_some() {
        events::path(&conn, &cs, Kind::Destroy);
        cs.path = None;
    }
    Ok(())
}

/// `connect NAME PEER_NODE_ID`.
pub(crate) fn connect(
    reg: &mut RegistryInner,
    name: &str,
    peer: u32,
    discard_my_data: bool,
) -> Outcome {
    let res = resource(reg, name)?;
    let conn = connection(&res, peer)?;
    if conn.state.lock().path.is_none() {
        return Err(fail!(
            ret::ERR_INVALID_REQUEST,
            "connection to node {} has no path (new-path first)",
            peer
        ));
    }
    conn.start(discard_my_data).map_err(|e| {
        fail!(
            ret::ERR_NOMEM,
            "starting the connection failed ({})",
            e.to_errno()
        )
    })
}

/// `disconnect NAME PEER_NODE_ID`.
pub(crate) fn disconnect(reg: &mut RegistryInner, name: &str, peer: u32) -> Outcome {
    let res = resource(reg, name)?;
    connection(&res, peer)?.stop();
    Ok(())
}

/// `del-peer NAME PEER_NODE_ID`: disconnects and removes the connection.
pub(crate) fn del_peer(reg: &mut RegistryInner, name: &str, peer: u32) -> Outcome {
    let res = resource(reg, name)?;
    let conn = connection(&res, peer)?;
    conn.stop();
    remove_connection(&res, &conn);
    Ok(())
}

fn remove_connection(res: &Resource, conn: &Arc<Connection>) {
    let mut rs = res.state.lock();
    {
        let cs = conn.state.lock();
        if cs.path.is_some() {
            events::path(conn, &cs, Kind::Destroy);
        }
        for p in cs.peers.iter() {
            events::peer_device(conn, &cs, p.volume, Kind::Destroy);
        }
        events::connection(conn, &cs, Kind::Destroy);
    }
    rs.remove_connection(conn.peer_node_id);
}

/// Stops and removes every connection of a resource (`down`, module exit).
fn remove_connections(res: &Resource) {
    loop {
        let next = res.state.lock().connections().next().cloned();
        let Some(conn) = next else { break };
        conn.stop();
        remove_connection(res, &conn);
    }
}
