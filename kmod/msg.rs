//! Builds the attribute payloads of replies, dumps and events for each object, in DRBD 9's
//! layout (context, info and statistics sets). Pure formatting over snapshots.

use crate::connection::{Connection, ConnectionState, PeerDev};
use crate::device::{Device, DeviceState};
use crate::resource::{Resource, ResourceState};
use crate::spec::generated::{
    cfg_context, cfg_reply, connection_info, connection_statistics, device_info, device_statistics,
    disk_conf, net_conf, notification_header, path_info, path_parms, peer_device_info,
    peer_device_statistics, res_opts, resource_info, resource_statistics, tla, ReplState,
    MINOR_NONE,
};
use crate::spec::nla::{DrbdHeader, NlaError, NlaWriter};
use core::sync::atomic::Ordering;

/// Room for one object's message: context, info, statistics and a full set of options.
pub(crate) const MSG_MAX: usize = 4096;

/// Result of building a message.
pub(crate) type Built = core::result::Result<(), NlaError>;

/// The user header of a message about `minor` (or no minor).
pub(crate) fn header(minor: Option<u32>, ret_code: i32) -> [u8; 8] {
    DrbdHeader::reply(minor.unwrap_or(MINOR_NONE), ret_code).to_bytes()
}

/// `DRBD_NLA_CFG_REPLY` with an info text.
pub(crate) fn reply_info(w: &mut NlaWriter<'_>, text: &str) -> Built {
    let nest = w.nest_start(tla::CFG_REPLY)?;
    w.put_str(cfg_reply::INFO_TEXT, text)?;
    w.nest_end(nest)
}

/// `DRBD_NLA_TIMEOUT_PARMS`: the reply of `GET_TIMEOUT_TYPE`.
pub(crate) fn timeout_parms(w: &mut NlaWriter<'_>, timeout_type: u32) -> Built {
    let nest = w.nest_start(tla::TIMEOUT_PARMS)?;
    w.put_u32(
        crate::spec::generated::timeout_parms::TIMEOUT_TYPE,
        timeout_type,
    )?;
    w.nest_end(nest)
}

/// `DRBD_NLA_NOTIFICATION_HEADER`.
pub(crate) fn notification(w: &mut NlaWriter<'_>, nh_type: u32) -> Built {
    let nest = w.nest_start(tla::NOTIFICATION_HEADER)?;
    w.put_u32(notification_header::NH_TYPE, nh_type)?;
    w.nest_end(nest)
}

/// `DRBD_NLA_CFG_CONTEXT` naming a resource and optionally a volume.
pub(crate) fn context(w: &mut NlaWriter<'_>, resource: &Resource, volume: Option<u32>) -> Built {
    let nest = w.nest_start(tla::CFG_CONTEXT)?;
    w.put_str(cfg_context::CTX_RESOURCE_NAME, resource.name.as_str())?;
    if let Some(volume) = volume {
        w.put_u32(cfg_context::CTX_VOLUME, volume)?;
    }
    w.nest_end(nest)
}

/// `DRBD_NLA_CFG_CONTEXT` naming a connection (and optionally its path and a volume).
pub(crate) fn conn_context(
    w: &mut NlaWriter<'_>,
    conn: &Connection,
    st: &ConnectionState,
    volume: Option<u32>,
    with_path: bool,
) -> Built {
    let nest = w.nest_start(tla::CFG_CONTEXT)?;
    w.put_str(cfg_context::CTX_RESOURCE_NAME, conn.resource.name.as_str())?;
    if let Some(volume) = volume {
        w.put_u32(cfg_context::CTX_VOLUME, volume)?;
    }
    w.put_u32(cfg_context::CTX_PEER_NODE_ID, conn.peer_node_id)?;
    w.put_str(cfg_context::CTX_CONN_NAME, st.name.as_str())?;
    if with_path {
        if let Some(path) = st.path.as_ref() {
            w.put_bytes(cfg_context::CTX_MY_ADDR, &path.local.to_sockaddr_bytes())?;
            w.put_bytes(cfg_context::CTX_PEER_ADDR, &path.peer.to_sockaddr_bytes())?;
        }
    }
    w.nest_end(nest)
}

/// Connection info and statistics.
pub(crate) fn connection_body(w: &mut NlaWriter<'_>, st: &ConnectionState) -> Built {
    let nest = w.nest_start(tla::CONNECTION_INFO)?;
    w.put_u32(connection_info::CONN_CONNECTION_STATE, st.cstate as u32)?;
    w.put_u32(connection_info::CONN_ROLE, st.peer_role as u32)?;
    w.nest_end(nest)?;
    let nest = w.nest_start(tla::CONNECTION_STATISTICS)?;
    w.put_flag(connection_statistics::CONN_CONGESTED, false)?;
    w.put_u64(connection_statistics::AP_IN_FLIGHT, 0)?;
    w.put_u64(connection_statistics::RS_IN_FLIGHT, 0)?;
    w.nest_end(nest)
}

/// Network options of a connection (what `drbdsetup show` prints in `net {}`).
pub(crate) fn net_conf(w: &mut NlaWriter<'_>, st: &ConnectionState) -> Built {
    let nest = w.nest_start(tla::NET_CONF)?;
    w.put_str(net_conf::NAME, st.name.as_str())?;
    st.net_conf.write(w)?;
    // What the link uses, where the user left it at the default.
    for (nr, v) in [
        (net_conf::WIRE_PROTOCOL, st.net.protocol),
        (net_conf::CONNECT_INT, st.net.connect_int_s),
        (net_conf::PING_INT, st.net.ping_int_s),
        (net_conf::PING_TIMEO, st.net.ping_timeo_ds),
    ] {
        if !st.net_conf.has(nr) {
            w.put_u32(nr, v)?;
        }
    }
    w.nest_end(nest)
}

/// The connection's path as `DRBD_NLA_PATH_PARMS` (connection dumps carry it, so
/// `drbdsetup show` prints the `path {}` section).
pub(crate) fn path_parms(w: &mut NlaWriter<'_>, st: &ConnectionState) -> Built {
    let Some(path) = st.path.as_ref() else {
        return Ok(());
    };
    let nest = w.nest_start(tla::PATH_PARMS)?;
    w.put_bytes(path_parms::MY_ADDR, &path.local.to_sockaddr_bytes())?;
    w.put_bytes(path_parms::PEER_ADDR, &path.peer.to_sockaddr_bytes())?;
    w.nest_end(nest)
}

/// Path info.
pub(crate) fn path_body(w: &mut NlaWriter<'_>, st: &ConnectionState) -> Built {
    let nest = w.nest_start(tla::PATH_INFO)?;
    w.put_flag(path_info::PATH_ESTABLISHED, st.established)?;
    w.nest_end(nest)
}

/// Peer-device info and statistics of `volume`.
pub(crate) fn peer_device_body(w: &mut NlaWriter<'_>, st: &ConnectionState, volume: u32) -> Built {
    let p = st
        .peers
        .iter()
        .find(|p| p.volume == volume)
        .copied()
        .unwrap_or(PeerDev::new(volume));
    let nest = w.nest_start(tla::PEER_DEVICE_INFO)?;
    w.put_u32(peer_device_info::PEER_REPL_STATE, p.shown_repl() as u32)?;
    w.put_u32(peer_device_info::PEER_DISK_STATE, p.peer_disk as u32)?;
    w.put_u32(
        peer_device_info::PEER_RESYNC_SUSP_USER,
        u32::from(p.susp_user),
    )?;
    w.put_u32(
        peer_device_info::PEER_RESYNC_SUSP_PEER,
        u32::from(p.susp_peer),
    )?;
    w.put_u32(peer_device_info::PEER_RESYNC_SUSP_DEPENDENCY, 0)?;
    w.put_flag(peer_device_info::PEER_IS_INTENTIONAL_DISKLESS, false)?;
    w.put_u32(peer_device_info::PEER_RESYNC_SUSP_MAX_PARALLEL, 0)?;
    w.nest_end(nest)?;
    let nest = w.nest_start(tla::PEER_DEVICE_STATISTICS)?;
    w.put_u64(peer_device_statistics::PEER_DEV_RECEIVED, 0)?;
    w.put_u64(peer_device_statistics::PEER_DEV_SENT, 0)?;
    w.put_u32(peer_device_statistics::PEER_DEV_PENDING, 0)?;
    w.put_u32(peer_device_statistics::PEER_DEV_UNACKED, 0)?;
    let verifying = matches!(p.repl, ReplState::VerifyS | ReplState::VerifyT);
    let out_of_sync = if verifying || p.sync_total == 0 {
        p.ov_found
    } else {
        p.sync_total.saturating_sub(p.synced)
    };
    w.put_u64(peer_device_statistics::PEER_DEV_OUT_OF_SYNC, out_of_sync)?;
    w.put_u64(peer_device_statistics::PEER_DEV_RS_TOTAL, p.sync_total)?;
    // Online verify progress while verifying; no failed or checksum-equal resync blocks.
    // DRBD reports zeros, and drbd-utils takes absent members for "unknown" (it shows a
    // paused or running resync as done:100.00 then).
    let (ov_start, ov_position, ov_left) = if verifying {
        let left = p.sync_total.saturating_sub(p.synced).max(1);
        (p.ov_start, p.ov_start + p.synced, left)
    } else {
        (0, 0, 0)
    };
    // Resync timing (drbd-utils' dbdt1/eta), while a resync or verify runs.
    let t = if p.sync_total == 0 {
        Default::default()
    } else {
        p.clock.times(crate::replication::now_ms(), p.sync_left())
    };
    for (nr, value) in [
        (
            peer_device_statistics::PEER_DEV_RS_DT_START_MS,
            t.dt_start_ms,
        ),
        (peer_device_statistics::PEER_DEV_RS_PAUSED_MS, t.paused_ms),
        (peer_device_statistics::PEER_DEV_RS_DT0_MS, t.dt0_ms),
        (
            peer_device_statistics::PEER_DEV_RS_DB0_SECTORS,
            t.db0_sectors,
        ),
        (peer_device_statistics::PEER_DEV_RS_DT1_MS, t.dt1_ms),
        (
            peer_device_statistics::PEER_DEV_RS_DB1_SECTORS,
            t.db1_sectors,
        ),
        (peer_device_statistics::PEER_DEV_RESYNC_FAILED, 0),
        (peer_device_statistics::PEER_DEV_OV_START_SECTOR, ov_start),
        (peer_device_statistics::PEER_DEV_OV_STOP_SECTOR, 0),
        (peer_device_statistics::PEER_DEV_OV_POSITION, ov_position),
        (peer_device_statistics::PEER_DEV_OV_LEFT, ov_left),
        (peer_device_statistics::PEER_DEV_OV_SKIPPED, 0),
        (peer_device_statistics::PEER_DEV_RS_SAME_CSUM, 0),
    ] {
        w.put_u64(nr, value)?;
    }
    w.nest_end(nest)
}

/// Resource options, info and statistics.
pub(crate) fn resource_body(
    w: &mut NlaWriter<'_>,
    resource: &Resource,
    rs: &ResourceState,
    with_opts: bool,
) -> Built {
    if with_opts {
        let nest = w.nest_start(tla::RESOURCE_OPTS)?;
        w.put_u32(res_opts::NODE_ID, resource.node_id)?;
        w.put_flag(res_opts::AUTO_PROMOTE, rs.options.auto_promote)?;
        w.nest_end(nest)?;
    }
    let nest = w.nest_start(tla::RESOURCE_INFO)?;
    w.put_u32(resource_info::RES_ROLE, rs.role as u32)?;
    w.put_flag(resource_info::RES_SUSP, rs.susp_user)?;
    w.put_flag(resource_info::RES_SUSP_NOD, false)?;
    w.put_flag(resource_info::RES_SUSP_FEN, rs.susp_fen)?;
    w.put_flag(resource_info::RES_SUSP_QUORUM, false)?;
    w.put_flag(resource_info::RES_FAIL_IO, false)?;
    w.nest_end(nest)?;
    let nest = w.nest_start(tla::RESOURCE_STATISTICS)?;
    w.put_u32(
        resource_statistics::RES_STAT_WRITE_ORDERING,
        crate::barrier::write_ordering(rs),
    )?;
    w.nest_end(nest)
}

/// The disk configuration of an attached device (what `drbdsetup show` prints).
pub(crate) fn disk_conf(w: &mut NlaWriter<'_>, st: &DeviceState) -> Built {
    let Some(backing) = st.backing.as_ref() else {
        return Ok(());
    };
    let nest = w.nest_start(tla::DISK_CONF)?;
    w.put_str(disk_conf::BACKING_DEV, backing.backing_path())?;
    w.put_str(disk_conf::META_DEV, backing.meta_path())?;
    w.put_i32(disk_conf::META_DEV_IDX, backing.meta_dev_idx)?;
    if backing.disk_size > 0 {
        w.put_u64(disk_conf::DISK_SIZE, backing.disk_size)?;
    }
    backing.disk_conf.write(w)?;
    w.nest_end(nest)
}

/// Device info and statistics.
pub(crate) fn device_body(w: &mut NlaWriter<'_>, device: &Device, st: &DeviceState) -> Built {
    let nest = w.nest_start(tla::DEVICE_INFO)?;
    w.put_u32(device_info::DEV_DISK_STATE, st.disk_state as u32)?;
    w.put_flag(device_info::IS_INTENTIONAL_DISKLESS, false)?;
    w.put_flag(device_info::DEV_HAS_QUORUM, true)?;
    if let Some(backing) = st.backing.as_ref() {
        w.put_str(device_info::BACKING_DEV_PATH, backing.backing_path())?;
    }
    w.put_flag(device_info::DEV_IS_OPEN, st.openers > 0)?;
    w.nest_end(nest)?;
    let nest = w.nest_start(tla::DEVICE_STATISTICS)?;
    let size = st.backing.as_ref().map_or(0, |b| b.data_sectors());
    w.put_u64(device_statistics::DEV_SIZE, size)?;
    w.put_u64(
        device_statistics::DEV_READ,
        device.counters.read_kib.load(Ordering::Relaxed) * 2,
    )?;
    w.put_u64(
        device_statistics::DEV_WRITE,
        device.counters.written_kib.load(Ordering::Relaxed) * 2,
    )?;
    w.put_u32(
        device_statistics::DEV_UPPER_PENDING,
        device.held_count() as u32,
    )?;
    w.put_u32(
        device_statistics::DEV_LOWER_PENDING,
        device.inflight.load(Ordering::Relaxed) as u32,
    )?;
    w.put_u64(device_statistics::DEV_AL_WRITES, 0)?;
    w.put_u64(device_statistics::DEV_BM_WRITES, 0)?;
    w.put_flag(device_statistics::DEV_UPPER_BLOCKED, false)?;
    w.put_flag(device_statistics::DEV_LOWER_BLOCKED, false)?;
    w.put_flag(device_statistics::DEV_AL_SUSPENDED, false)?;
    if let Some(backing) = st.backing.as_ref() {
        w.put_u64(device_statistics::DEV_CURRENT_UUID, backing.sb.current_uuid)?;
        w.put_u64(
            device_statistics::DEV_EXPOSED_DATA_UUID,
            backing.sb.current_uuid,
        )?;
        w.put_u32(device_statistics::DEV_DISK_FLAGS, backing.sb.flags)?;
    }
    w.nest_end(nest)
}
