//! Fencing after a lost link (rules in `proto::fencing`): a Primary with `fencing` runs
//! `fence-peer`; with `resource-and-stonith` it first freezes application I/O
//! (`suspended:fencing`), so no write completes while the peer might still take over, and
//! thaws when the helper's answer makes the peer's disk state known, on `resume-io`, or when
//! the peer reconnects.
//!
//! Context: the link thread, between links, with no lock held while the helper runs (it may
//! call back into netlink). Locks taken briefly in the usual order: `Resource::state`, then
//! `Device::state` or `Connection::state`.

use crate::connection::Connection;
use crate::events;
use crate::proto::fencing::{self, OnLoss, PeerDisk, Policy};
use crate::proto::helper::{FenceOutcome, Helper};
use crate::spec::generated::{net_conf, DiskState, Role};
use kernel::prelude::*;

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
    let peer_known_outdated = conn
        .state
        .lock()
        .peers
        .iter()
        .all(|p| p.peer_disk <= DiskState::Outdated);
    let loss = fencing::on_loss(policy, primary, peer_known_outdated, local_consistent);
    if loss.freeze {
        crate::admin::freeze_for_fencing(&conn.resource);
    }
    loss
}

/// After the link is gone: runs `fence-peer` if `loss` asks for it and applies its answer.
pub(crate) fn after_link_lost(conn: &Connection, loss: OnLoss) {
    if !loss.run_helper {
        return;
    }
    let policy = policy(conn);
    let status = crate::helper::call_connection(conn, Helper::FencePeer);
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
        return;
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
    if v.thaw && loss.freeze {
        crate::admin::thaw_fencing(&conn.resource);
    }
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
}
