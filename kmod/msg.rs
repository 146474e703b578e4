//! Builds the attribute payloads of replies, dumps and events for each object, in DRBD 9's
//! layout (context, info and statistics sets). Pure formatting over snapshots.

use crate::device::{Device, DeviceState};
use crate::resource::{Resource, ResourceState};
use crate::spec::generated::{
    cfg_context, cfg_reply, device_info, device_statistics, disk_conf, notification_header,
    res_opts, resource_info, resource_statistics, tla, MINOR_NONE,
};
use crate::spec::nla::{DrbdHeader, NlaError, NlaWriter};
use core::sync::atomic::Ordering;

/// Room for one object's message (context + info + statistics stay well below this).
pub(crate) const MSG_MAX: usize = 1024;

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
    w.put_flag(resource_info::RES_SUSP, false)?;
    w.put_flag(resource_info::RES_SUSP_NOD, false)?;
    w.put_flag(resource_info::RES_SUSP_FEN, false)?;
    w.put_flag(resource_info::RES_SUSP_QUORUM, false)?;
    w.put_flag(resource_info::RES_FAIL_IO, false)?;
    w.nest_end(nest)?;
    let nest = w.nest_start(tla::RESOURCE_STATISTICS)?;
    // Write ordering "flush" (2): flushes and FUA are passed to the backing device.
    w.put_u32(resource_statistics::RES_STAT_WRITE_ORDERING, 2)?;
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
    w.put_u32(device_statistics::DEV_UPPER_PENDING, 0)?;
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
