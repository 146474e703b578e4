//! Fencing after a lost link (rules in `proto::fencing`): a Primary with `fencing` runs
//! `fence-peer`; with `resource-and-stonith` it first freezes application I/O
//! (`suspended:fencing`), so no write completes while the peer might still take over, and
//! thaws when the helper's answer makes the peer's disk state known, on `resume-io`, or when
//! the peer reconnects. A promotion while a peer is unreachable runs `fence-peer` first
//! (`before_promotion`); what is known about the peer's disk is kept in its meta-data slot
//! (`MDF_PEER_OUTDATED`) across restarts.
//!
//! Context: the link thread, between links, with no lock held while the helper runs (it may
//! call back into netlink). Locks taken briefly in the usual order: `Resource::state`, then
//! `Device::state` or `Connection::state`.

use crate::connection::Connection;
use crate::device::Device;
use crate::events;
use crate::failure::{fail, Outcome};
use crate::proto::fencing::{self, AfterFence, OnLoss, PeerDisk, Policy};
use crate::proto::helper::{FenceOutcome, Helper};
use crate::proto::meta;
use crate::resource::Resource;
use crate::spec::generated::{net_conf, ret, ss, DiskState, Role};
use kernel::prelude::*;
use kernel::sync::Arc;

/// The connection's `fencing` policy.
fn policy(conn: &Connection) -> Policy {
    Policy::from_u32(
        conn.state
            .lock()
            .net_conf
            .u32(net_conf::FENCING_POLICY)
            .unwrap_or(0),
    )
}

/// Called while the broken link is still published (before its pending writes are failed):
/// decides whether the peer must be fenced and, for `resource-and-stonith`, freezes I/O now.
pub(crate) fn on_link_lost(conn: &Connection) -> OnLoss {
    let policy = policy(conn);
    let (primary, local_consistent) = {
        let rs = conn.resource.state.lock();
        let mut consistent = rs.device_count() > 0;
        for d in rs.devices() {
            consistent &= matches!(
                d.state.lock().disk_state,
                DiskState::Consistent | DiskState::UpToDate
            );
        }
        (rs.role == Role::Primary, consistent)
    };
    let loss = fencing::on_loss(policy, primary, peer_known_outdated(conn), local_consistent);
    if loss.freeze {
        crate::admin::freeze_for_fencing(&conn.resource);
    }
    loss
}

/// After the link is gone: runs `fence-peer` if `loss` asks for it and applies its answer.
pub(crate) fn after_link_lost(conn: &Connection, loss: OnLoss) {
    if loss.run_helper && fence_peer(conn) && loss.freeze {
        crate::admin::thaw_fencing(&conn.resource);
    }
}

/// Before a promotion, with no lock held (the helper may ask the module for its status):
/// runs `fence-peer` for every unreachable peer whose disk is not known to be Outdated
/// (DRBD's `SS_PRIMARY_NOP`) and refuses the promotion unless that outdated them all or
/// `force` accepts a possible split brain. A promotion that fails for another reason (no
/// UpToDate data) is left to `role::promote`, which reports that first.
pub(crate) fn before_promotion(resource: &Resource, force: bool) -> Outcome {
    let pending = {
        let rs = resource.state.lock();
        let mut usable = rs.device_count() > 0;
        for d in rs.devices() {
            usable &= d.state.lock().disk_state == DiskState::UpToDate;
        }
        let mut pending: KVec<Arc<Connection>> = KVec::new();
        if rs.role != Role::Primary && (usable || force) {
            for c in rs.connections() {
                let known_outdated = peer_known_outdated(c);
                if fencing::promotion_needs_fence(policy(c), c.link().is_some(), known_outdated) {
                    pending
                        .push(c.clone(), GFP_KERNEL)
                        .map_err(|_| fail!(ret::ERR_NOMEM))?;
                }
            }
        }
        pending
    };
    let mut all_fenced = true;
    for conn in pending.iter() {
        let fenced = fence_peer(conn);
        all_fenced &= fenced;
    }
    match fencing::after_promotion_fence(all_fenced, force) {
        AfterFence::Promote => Ok(()),
        AfterFence::PromoteIntoSplitBrain => {
            pr_warn!("{}: Forced into split brain situation!\n", resource.name);
            Ok(())
        }
        AfterFence::Refuse => Err(fail!(
            ss::PRIMARY_NOP,
            "fence-peer did not confirm that the unreachable peer is outdated"
        )),
    }
}

/// Whether every disk of the peer is known to be Outdated or worse.
fn peer_known_outdated(conn: &Connection) -> bool {
    conn.state
        .lock()
        .peers
        .iter()
        .all(|p| p.peer_disk <= DiskState::Outdated)
}

/// Runs `fence-peer` for `conn` and applies its answer; `true` if the peer's disk state is
/// known now (Outdated or Inconsistent).
fn fence_peer(conn: &Connection) -> bool {
    let policy = policy(conn);
    let status = crate::helper::call_connection(conn, Helper::FencePeer);
    if status == crate::helper::ABANDONED {
        // The connection is going away (or the promotion was interrupted): no answer.
        return false;
    }
    let code = (status >> 8) & 0xff;
    let local_up_to_date = {
        let rs = conn.resource.state.lock();
        let mut all = rs.device_count() > 0;
        for d in rs.devices() {
            all &= d.state.lock().disk_state == DiskState::UpToDate;
        }
        all
    };
    let v = fencing::verdict(policy, FenceOutcome::from_status(status), local_up_to_date);
    let conn_name = conn.state.lock().name.clone();
    if v.broken {
        pr_err!(
            "{} {}: fence-peer helper broken, returned {}\n",
            conn.resource.name,
            conn_name,
            code
        );
        return false;
    }
    if v.stonith_without_policy {
        pr_err!(
            "{} {}: fence-peer() = 7 && fencing != Stonith !!!\n",
            conn.resource.name,
            conn_name
        );
    }
    if v.outdate_self {
        pr_warn!(
            "{} {}: Peer is primary, outdating myself.\n",
            conn.resource.name,
            conn_name
        );
    }
    pr_info!(
        "{} {}: fence-peer helper returned {} ({})\n",
        conn.resource.name,
        conn_name,
        code,
        v.text
    );
    if v.outdate_self {
        crate::admin::outdate_self(&conn.resource);
    }
    if let Some(pd) = v.peer_disk {
        set_peer_disks(conn, pd);
    }
    v.peer_disk.is_some()
}

/// The peer's disks take the state the helper reported (only downwards, as DRBD).
fn set_peer_disks(conn: &Connection, pd: PeerDisk) {
    let to = match pd {
        PeerDisk::Inconsistent => DiskState::Inconsistent,
        PeerDisk::Outdated => DiskState::Outdated,
    };
    let mut st = conn.state.lock();
    let mut volumes: KVec<u32> = KVec::new();
    for p in st.peers.iter_mut() {
        if p.peer_disk > to {
            p.peer_disk = to;
            let _ = volumes.push(p.volume, GFP_KERNEL);
        }
    }
    for v in volumes.iter() {
        events::peer_device(conn, &st, *v, events::Kind::Change);
    }
    let volumes: KVec<u32> = {
        let mut all = KVec::new();
        for p in st.peers.iter() {
            let _ = all.push(p.volume, GFP_KERNEL);
        }
        all
    };
    drop(st);
    for v in volumes.iter() {
        record_known_outdated(conn, *v, true);
    }
}

/// Keeps the peer slot's `MDF_PEER_OUTDATED` of `volume` (on disk, and in the peer device)
/// equal to `outdated`. No lock held by the caller.
fn record_known_outdated(conn: &Connection, volume: u32, outdated: bool) {
    let dev = conn.resource.state.lock().device_by_volume(volume).cloned();
    if let Some(dev) = dev {
        let mut st = dev.state.lock();
        if let Some(b) = st.backing.as_mut() {
            let written = b.update_peer_flags(conn.peer_node_id, |f| {
                if outdated {
                    f | meta::MDF_PEER_OUTDATED
                } else {
                    f & !meta::MDF_PEER_OUTDATED
                }
            });
            if let Err(f) = written {
                pr_warn!("drbd{}: {} {}\n", dev.minor, f.text(), f.info());
            }
        }
    }
    conn.update_peer(volume, |p| p.known_outdated = outdated);
}

/// A connected peer reported its disk state for `volume`: Outdated or Inconsistent data is
/// remembered as such (so a later promotion without the peer needs no fencing), Consistent
/// or UpToDate data forgets it.
pub(crate) fn peer_reported_disk(conn: &Connection, volume: u32, disk: DiskState) {
    let Some(reported) = crate::proto::state::DiskState::from_u32(disk as u32) else {
        return;
    };
    let Some(outdated) = fencing::peer_outdated_flag(reported) else {
        return;
    };
    if conn
        .peer_dev(volume)
        .is_some_and(|p| p.known_outdated != outdated)
    {
        record_known_outdated(conn, volume, outdated);
    }
}

/// Whether `dev`'s meta-data says the disk of `peer` is Outdated or worse (`MDF_PEER_OUTDATED`).
/// The caller may hold `Resource::state`.
pub(crate) fn outdated_on_disk(dev: &Device, peer: u32) -> bool {
    dev.state
        .lock()
        .backing
        .as_ref()
        .and_then(|b| b.sb.peers.get(peer as usize))
        .is_some_and(|slot| slot.flags & meta::MDF_PEER_OUTDATED != 0)
}

/// After attach: every unreachable peer that the meta-data knows to be Outdated shows as
/// Outdated. No lock held by the caller.
pub(crate) fn load_known_outdated(resource: &Resource, dev: &Device) {
    let conns = {
        let rs = resource.state.lock();
        let mut conns: KVec<Arc<Connection>> = KVec::new();
        for c in rs.connections() {
            let _ = conns.push(c.clone(), GFP_KERNEL);
        }
        conns
    };
    for conn in conns.iter() {
        let outdated = outdated_on_disk(dev, conn.peer_node_id);
        let mut st = conn.state.lock();
        let unreachable = st.link.is_none();
        let mut changed = false;
        if let Some(p) = st.peers.iter_mut().find(|p| p.volume == dev.volume) {
            p.known_outdated = outdated;
            if outdated && unreachable && p.peer_disk != DiskState::Outdated {
                p.peer_disk = DiskState::Outdated;
                changed = true;
            }
        }
        if changed {
            events::peer_device(conn, &st, dev.volume, events::Kind::Change);
        }
    }
}
