//! Wait-for-connection timeout type (`GET_TIMEOUT_TYPE`, rules in `proto::wfc`), and the
//! peer slots' `MDF_PEER_CONNECTED` it is based on across restarts.
//!
//! Each device keeps `DeviceState::degr_wfc`, one bit per peer node id, set at attach when
//! this node went down as a Primary without that peer, cleared when the peer connects.
//! Context: netlink requests and the link/receiver threads (process context); locks:
//! `Resource::state` → `Device::state` / `Connection::state`, one device at a time.

use crate::config;
use crate::device::Device;
use crate::failure::{fail, Outcome};
use crate::proto::wfc;
use crate::registry::RegistryInner;
use crate::resource::Resource;
use crate::spec::generated::{ret, DiskState};
use kernel::prelude::*;

fn bit(peer: u32) -> u32 {
    1u32.checked_shl(peer).unwrap_or(0)
}

/// At attach, before `MDF_PRIMARY_IND` is turned into `MDF_CRASHED_PRIMARY`: the peers this
/// node was not connected to when it went down as Primary.
pub(crate) fn degraded_peers(primary_now: bool, sb: &crate::proto::meta::Superblock) -> u32 {
    let mut mask = 0;
    for (id, p) in sb.peers.iter().enumerate() {
        if wfc::degraded_at_attach(primary_now, sb.flags, p.flags) {
            mask |= bit(id as u32);
        }
    }
    mask
}

/// Records on disk whether `peer` is connected (handshake done, or link lost); a connected
/// peer ends the degraded wait.
pub(crate) fn set_peer_connected(dev: &Device, peer: u32, connected: bool) {
    let mut st = dev.state.lock();
    if connected {
        st.degr_wfc &= !bit(peer);
    }
    let Some(b) = st.backing.as_mut() else { return };
    if let Err(f) = b.update_peer_flags(peer, |flags| wfc::peer_flags(flags, connected)) {
        pr_warn!("drbd{}: {} {}\n", dev.minor, f.text(), f.info());
    }
}

/// The link to `peer` is gone: every volume records it.
pub(crate) fn peer_gone(res: &Resource, peer: u32) {
    let rs = res.state.lock();
    for d in rs.devices() {
        set_peer_connected(d, peer, false);
    }
}

/// `GET_TIMEOUT_TYPE` for one peer device (`volume`: the first volume if absent).
pub(crate) fn timeout_type(
    reg: &RegistryInner,
    name: &str,
    peer: u32,
    volume: Option<u32>,
) -> Outcome<u32> {
    let res = config::resource(reg, name)?;
    let conn = config::connection(&res, peer)?;
    let dev = {
        let rs = res.state.lock();
        match volume {
            Some(v) => rs.device_by_volume(v).cloned(),
            None => rs.devices().next().cloned(),
        }
    }
    .ok_or_else(|| fail!(ret::ERR_INVALID_REQUEST, "unknown volume"))?;
    let degraded = dev.state.lock().degr_wfc & bit(peer) != 0;
    let peer_outdated = conn
        .peer_dev(dev.volume)
        .is_some_and(|p| p.peer_disk == DiskState::Outdated);
    Ok(wfc::timeout_type(peer_outdated, degraded))
}
