//! Encoding of state messages the way the kernel sends them (top-level
//! attributes only, without netlink/genl headers). Used by tests and tools
//! that need realistic messages without a kernel.

use crate::state::*;
use genl_spec::generated::{
    cfg_context, connection_info, connection_statistics, device_info, device_statistics,
    helper_info, notification_header, path_info, peer_device_info, peer_device_statistics,
    resource_info, resource_statistics, tla,
};
use genl_spec::nla::{NlaError, NlaWriter};

/// Builds the top-level attributes of one state message.
pub struct MsgBuilder {
    buf: Vec<u8>,
    len: usize,
}

impl Default for MsgBuilder {
    fn default() -> Self {
        MsgBuilder {
            buf: vec![0; 8192],
            len: 0,
        }
    }
}

impl MsgBuilder {
    /// Appends attributes with `f`.
    fn with(
        mut self,
        f: impl FnOnce(&mut NlaWriter<'_>) -> Result<(), NlaError>,
    ) -> Result<Self, NlaError> {
        let mut w = NlaWriter {
            buf: &mut self.buf,
            len: self.len,
        };
        f(&mut w)?;
        self.len = w.len;
        Ok(self)
    }

    /// The context TLA.
    pub fn context(self, ctx: &Context) -> Result<Self, NlaError> {
        self.with(|w| {
            let m = w.nest_start(tla::CFG_CONTEXT)?;
            w.put_str(cfg_context::CTX_RESOURCE_NAME, &ctx.resource)?;
            if let Some(v) = ctx.volume {
                w.put_u32(cfg_context::CTX_VOLUME, v)?;
            }
            if let Some(p) = ctx.peer_node_id {
                w.put_u32(cfg_context::CTX_PEER_NODE_ID, p)?;
            }
            if let Some(n) = &ctx.conn_name {
                w.put_str(cfg_context::CTX_CONN_NAME, n)?;
            }
            if let Some(a) = &ctx.my_addr {
                w.put_bytes(cfg_context::CTX_MY_ADDR, a)?;
            }
            if let Some(a) = &ctx.peer_addr {
                w.put_bytes(cfg_context::CTX_PEER_ADDR, a)?;
            }
            w.nest_end(m)
        })
    }

    /// The notification header TLA.
    pub fn notification(self, nh_type: u32) -> Result<Self, NlaError> {
        self.with(|w| {
            let m = w.nest_start(tla::NOTIFICATION_HEADER)?;
            w.put_u32(notification_header::NH_TYPE, nh_type)?;
            w.nest_end(m)
        })
    }

    /// RESOURCE_INFO and RESOURCE_STATISTICS.
    pub fn resource(self, i: &ResourceInfo, s: &ResourceStats) -> Result<Self, NlaError> {
        self.with(|w| {
            let m = w.nest_start(tla::RESOURCE_INFO)?;
            w.put_u32(resource_info::RES_ROLE, i.role as u32)?;
            w.put_flag(resource_info::RES_SUSP, i.susp_user)?;
            w.put_flag(resource_info::RES_SUSP_NOD, i.susp_no_data)?;
            w.put_flag(resource_info::RES_SUSP_FEN, i.susp_fencing)?;
            w.put_flag(resource_info::RES_SUSP_QUORUM, i.susp_quorum)?;
            w.put_flag(resource_info::RES_FAIL_IO, i.force_io_failures)?;
            w.nest_end(m)?;
            let m = w.nest_start(tla::RESOURCE_STATISTICS)?;
            w.put_u32(
                resource_statistics::RES_STAT_WRITE_ORDERING,
                s.write_ordering,
            )?;
            w.nest_end(m)
        })
    }

    /// DEVICE_INFO and DEVICE_STATISTICS.
    pub fn device(self, i: &DeviceInfo, s: &DeviceStats) -> Result<Self, NlaError> {
        self.with(|w| {
            let m = w.nest_start(tla::DEVICE_INFO)?;
            w.put_u32(device_info::DEV_DISK_STATE, i.disk as u32)?;
            if let Some(d) = i.intentional_diskless {
                w.put_flag(device_info::IS_INTENTIONAL_DISKLESS, d)?;
            }
            w.put_flag(device_info::DEV_HAS_QUORUM, i.has_quorum)?;
            if let Some(p) = &i.backing_dev {
                w.put_str(device_info::BACKING_DEV_PATH, p)?;
            }
            if let Some(o) = i.is_open {
                w.put_flag(device_info::DEV_IS_OPEN, o)?;
            }
            w.nest_end(m)?;
            let m = w.nest_start(tla::DEVICE_STATISTICS)?;
            w.put_u64(device_statistics::DEV_SIZE, s.size)?;
            w.put_u64(device_statistics::DEV_READ, s.read)?;
            w.put_u64(device_statistics::DEV_WRITE, s.write)?;
            w.put_u64(device_statistics::DEV_AL_WRITES, s.al_writes)?;
            w.put_u64(device_statistics::DEV_BM_WRITES, s.bm_writes)?;
            w.put_u32(device_statistics::DEV_UPPER_PENDING, s.upper_pending)?;
            w.put_u32(device_statistics::DEV_LOWER_PENDING, s.lower_pending)?;
            w.put_flag(device_statistics::DEV_UPPER_BLOCKED, s.upper_blocked)?;
            w.put_flag(device_statistics::DEV_LOWER_BLOCKED, s.lower_blocked)?;
            w.put_flag(device_statistics::DEV_AL_SUSPENDED, s.al_suspended)?;
            w.put_u64(
                device_statistics::DEV_EXPOSED_DATA_UUID,
                s.exposed_data_uuid,
            )?;
            w.put_u64(device_statistics::DEV_CURRENT_UUID, s.current_uuid)?;
            w.put_u32(device_statistics::DEV_DISK_FLAGS, s.disk_flags)?;
            w.nest_end(m)
        })
    }

    /// CONNECTION_INFO and CONNECTION_STATISTICS.
    pub fn connection(self, i: &ConnectionInfo, s: &ConnectionStats) -> Result<Self, NlaError> {
        self.with(|w| {
            let m = w.nest_start(tla::CONNECTION_INFO)?;
            w.put_u32(connection_info::CONN_CONNECTION_STATE, i.cstate as u32)?;
            w.put_u32(connection_info::CONN_ROLE, i.peer_role as u32)?;
            w.nest_end(m)?;
            let m = w.nest_start(tla::CONNECTION_STATISTICS)?;
            w.put_flag(connection_statistics::CONN_CONGESTED, s.congested)?;
            w.put_u64(connection_statistics::AP_IN_FLIGHT, s.ap_in_flight)?;
            w.put_u64(connection_statistics::RS_IN_FLIGHT, s.rs_in_flight)?;
            w.nest_end(m)
        })
    }

    /// PEER_DEVICE_INFO and PEER_DEVICE_STATISTICS.
    pub fn peer_device(self, i: &PeerDeviceInfo, s: &PeerDeviceStats) -> Result<Self, NlaError> {
        self.with(|w| {
            let m = w.nest_start(tla::PEER_DEVICE_INFO)?;
            w.put_u32(peer_device_info::PEER_REPL_STATE, i.repl as u32)?;
            w.put_u32(peer_device_info::PEER_DISK_STATE, i.peer_disk as u32)?;
            w.put_u32(
                peer_device_info::PEER_RESYNC_SUSP_USER,
                u32::from(i.susp_user),
            )?;
            w.put_u32(
                peer_device_info::PEER_RESYNC_SUSP_PEER,
                u32::from(i.susp_peer),
            )?;
            w.put_u32(
                peer_device_info::PEER_RESYNC_SUSP_DEPENDENCY,
                u32::from(i.susp_dependency),
            )?;
            if let Some(d) = i.peer_intentional_diskless {
                w.put_flag(peer_device_info::PEER_IS_INTENTIONAL_DISKLESS, d)?;
            }
            w.nest_end(m)?;
            let m = w.nest_start(tla::PEER_DEVICE_STATISTICS)?;
            w.put_u64(peer_device_statistics::PEER_DEV_RECEIVED, s.received)?;
            w.put_u64(peer_device_statistics::PEER_DEV_SENT, s.sent)?;
            w.put_u32(peer_device_statistics::PEER_DEV_PENDING, s.pending)?;
            w.put_u32(peer_device_statistics::PEER_DEV_UNACKED, s.unacked)?;
            w.put_u64(peer_device_statistics::PEER_DEV_OUT_OF_SYNC, s.out_of_sync)?;
            w.put_u64(
                peer_device_statistics::PEER_DEV_RESYNC_FAILED,
                s.resync_failed,
            )?;
            w.put_u64(peer_device_statistics::PEER_DEV_BITMAP_UUID, s.bitmap_uuid)?;
            w.put_u32(peer_device_statistics::PEER_DEV_FLAGS, s.flags)?;
            w.put_u64(peer_device_statistics::PEER_DEV_RS_TOTAL, s.rs_total)?;
            w.put_u64(peer_device_statistics::PEER_DEV_OV_LEFT, s.ov_left)?;
            w.put_u64(peer_device_statistics::PEER_DEV_UUID_FLAGS, s.uuid_flags)?;
            w.nest_end(m)
        })
    }

    /// PATH_INFO.
    pub fn path(self, i: &PathInfo) -> Result<Self, NlaError> {
        self.with(|w| {
            let m = w.nest_start(tla::PATH_INFO)?;
            w.put_flag(path_info::PATH_ESTABLISHED, i.established)?;
            w.nest_end(m)
        })
    }

    /// HELPER.
    pub fn helper(self, name: &str, status: u32) -> Result<Self, NlaError> {
        self.with(|w| {
            let m = w.nest_start(tla::HELPER)?;
            w.put_str(helper_info::HELPER_NAME, name)?;
            w.put_u32(helper_info::HELPER_STATUS, status)?;
            w.nest_end(m)
        })
    }

    /// The attributes built so far.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.truncate(self.len);
        self.buf
    }
}
