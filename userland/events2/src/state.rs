//! State of DRBD objects as reported by the kernel, and decoding of the
//! netlink messages that carry it (dump records and `events` notifications).

use genl_spec::generated::{
    cfg_context, cmd, connection_info, connection_statistics, device_info, device_statistics,
    helper_info, notification_header, path_info, peer_device_info, peer_device_statistics,
    rename_resource_info, resource_info, resource_statistics, tla, ConnState, DiskState, ReplState,
    Role, MINOR_NONE,
};
use genl_spec::nla::{self, Attr, NlaError};

/// Which object a message is about, with its identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Resource name.
    pub resource: String,
    /// Volume number.
    pub volume: Option<u32>,
    /// Peer node id.
    pub peer_node_id: Option<u32>,
    /// Connection name (net option `_name`).
    pub conn_name: Option<String>,
    /// Local address of a path (raw sockaddr).
    pub my_addr: Option<Vec<u8>>,
    /// Peer address of a path (raw sockaddr).
    pub peer_addr: Option<Vec<u8>>,
}

/// `resource_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    /// Local role.
    pub role: Role,
    /// I/O suspended by the user.
    pub susp_user: bool,
    /// I/O suspended because no data is accessible.
    pub susp_no_data: bool,
    /// I/O suspended by fencing.
    pub susp_fencing: bool,
    /// I/O suspended for lack of quorum.
    pub susp_quorum: bool,
    /// I/O fails instead of being suspended.
    pub force_io_failures: bool,
}

impl Default for ResourceInfo {
    fn default() -> Self {
        ResourceInfo {
            role: Role::Unknown,
            susp_user: false,
            susp_no_data: false,
            susp_fencing: false,
            susp_quorum: false,
            force_io_failures: false,
        }
    }
}

impl ResourceInfo {
    /// The `suspended:` value: `no` or a comma list of reasons.
    pub fn suspended_str(&self) -> String {
        let mut parts = Vec::new();
        if self.susp_user {
            parts.push("user");
        }
        if self.susp_no_data {
            parts.push("no-data");
        }
        if self.susp_fencing {
            parts.push("fencing");
        }
        if self.susp_quorum {
            parts.push("quorum");
        }
        if parts.is_empty() {
            "no".into()
        } else {
            parts.join(",")
        }
    }
}

/// `resource_statistics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceStats {
    /// Write ordering method (0 none, 1 drain, 2 flush, 3 barrier).
    pub write_ordering: u32,
}

/// `device_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Local disk state.
    pub disk: DiskState,
    /// Diskless on purpose (a "client").
    pub intentional_diskless: Option<bool>,
    /// The device has quorum.
    pub has_quorum: bool,
    /// Backing device path, if attached.
    pub backing_dev: Option<String>,
    /// Opened by someone.
    pub is_open: Option<bool>,
}

impl Default for DeviceInfo {
    fn default() -> Self {
        DeviceInfo {
            disk: DiskState::Diskless,
            intentional_diskless: None,
            has_quorum: true,
            backing_dev: None,
            is_open: None,
        }
    }
}

/// `device_statistics` (sizes in sectors).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Size.
    pub size: u64,
    /// Read sectors.
    pub read: u64,
    /// Written sectors.
    pub write: u64,
    /// Activity log writes.
    pub al_writes: u64,
    /// Bitmap writes.
    pub bm_writes: u64,
    /// Application requests in progress.
    pub upper_pending: u32,
    /// Backing device requests in progress.
    pub lower_pending: u32,
    /// Upper I/O blocked.
    pub upper_blocked: bool,
    /// Lower I/O blocked.
    pub lower_blocked: bool,
    /// Activity log suspended.
    pub al_suspended: bool,
    /// Exposed data UUID.
    pub exposed_data_uuid: u64,
    /// Current UUID.
    pub current_uuid: u64,
    /// Disk flags.
    pub disk_flags: u32,
}

/// `connection_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Connection state.
    pub cstate: ConnState,
    /// Role of the peer.
    pub peer_role: Role,
}

impl Default for ConnectionInfo {
    fn default() -> Self {
        ConnectionInfo {
            cstate: ConnState::StandAlone,
            peer_role: Role::Unknown,
        }
    }
}

/// `connection_statistics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Congested.
    pub congested: bool,
    /// Application data in flight (sectors).
    pub ap_in_flight: u64,
    /// Resync data in flight (sectors).
    pub rs_in_flight: u64,
}

/// `peer_device_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerDeviceInfo {
    /// Replication state.
    pub repl: ReplState,
    /// Peer's disk state.
    pub peer_disk: DiskState,
    /// Resync paused by the user.
    pub susp_user: bool,
    /// Resync paused by the peer.
    pub susp_peer: bool,
    /// Resync paused by a resync-after dependency.
    pub susp_dependency: bool,
    /// Peer is intentionally diskless.
    pub peer_intentional_diskless: Option<bool>,
    /// Resync paused by the max-parallel limit.
    pub susp_max_parallel: bool,
}

impl Default for PeerDeviceInfo {
    fn default() -> Self {
        PeerDeviceInfo {
            repl: ReplState::Off,
            peer_disk: DiskState::DUnknown,
            susp_user: false,
            susp_peer: false,
            susp_dependency: false,
            peer_intentional_diskless: None,
            susp_max_parallel: false,
        }
    }
}

impl PeerDeviceInfo {
    /// The `resync-suspended:` value.
    pub fn resync_suspended_str(&self) -> String {
        let mut parts = Vec::new();
        if self.susp_user {
            parts.push("user");
        }
        if self.susp_peer {
            parts.push("peer");
        }
        if self.susp_dependency {
            parts.push("dependency");
        }
        if self.susp_max_parallel {
            parts.push("max-parallel");
        }
        if parts.is_empty() {
            "no".into()
        } else {
            parts.join(",")
        }
    }
}

/// `peer_device_statistics` (sizes in sectors).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerDeviceStats {
    /// Received.
    pub received: u64,
    /// Sent.
    pub sent: u64,
    /// Pending requests.
    pub pending: u32,
    /// Unacknowledged requests.
    pub unacked: u32,
    /// Out of sync.
    pub out_of_sync: u64,
    /// Resync failed.
    pub resync_failed: u64,
    /// Bitmap UUID.
    pub bitmap_uuid: u64,
    /// Flags.
    pub flags: u32,
    /// Total to resync.
    pub rs_total: u64,
    /// Online verify: sectors left.
    pub ov_left: u64,
    /// Resync progress mark: ms.
    pub rs_dt1_ms: u64,
    /// Resync progress mark: sectors.
    pub rs_db1_sectors: u64,
    /// UUID flags.
    pub uuid_flags: u64,
    /// Online verify: first sector.
    pub ov_start_sector: u64,
    /// Online verify: last sector.
    pub ov_stop_sector: u64,
    /// Online verify: current sector.
    pub ov_position: u64,
    /// Online verify: sectors skipped.
    pub ov_skipped: u64,
    /// Resync: sectors found equal by checksum.
    pub rs_same_csum: u64,
    /// Resync: ms since it started.
    pub rs_dt_start_ms: u64,
    /// Resync: ms spent paused.
    pub rs_paused_ms: u64,
    /// Resync progress mark 0: ms.
    pub rs_dt0_ms: u64,
    /// Resync progress mark 0: sectors.
    pub rs_db0_sectors: u64,
    /// Resync controller's current rate (KiB/s).
    pub rs_c_sync_rate: u32,
}

impl PeerDeviceStats {
    /// Percentage done of a running resync / verify, if there is one.
    pub fn done_percent(&self) -> Option<f64> {
        if self.rs_total == 0 || self.rs_total == u64::MAX {
            return None;
        }
        let to_go = if self.ov_left != 0 {
            self.ov_left
        } else {
            self.out_of_sync.saturating_sub(self.resync_failed)
        };
        Some(100.0 * (self.rs_total.saturating_sub(to_go)) as f64 / self.rs_total as f64)
    }
}

/// `drbd_path_info`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathInfo {
    /// The path is the established one.
    pub established: bool,
}

/// Payload of a message, by object type.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// RESOURCE_STATE / GET_RESOURCES.
    Resource {
        /// State (absent on destroy).
        info: Option<ResourceInfo>,
        /// Counters.
        stats: Option<ResourceStats>,
        /// New name of a RENAME notification.
        new_name: Option<String>,
        /// Node id from res_opts (dumps only).
        node_id: Option<u32>,
    },
    /// DEVICE_STATE / GET_DEVICES.
    Device {
        /// State.
        info: Option<DeviceInfo>,
        /// Counters.
        stats: Option<DeviceStats>,
    },
    /// CONNECTION_STATE / GET_CONNECTIONS.
    Connection {
        /// State.
        info: Option<ConnectionInfo>,
        /// Counters.
        stats: Option<ConnectionStats>,
    },
    /// PEER_DEVICE_STATE / GET_PEER_DEVICES.
    PeerDevice {
        /// State.
        info: Option<PeerDeviceInfo>,
        /// Counters.
        stats: Option<PeerDeviceStats>,
    },
    /// PATH_STATE / GET_PATHS.
    Path {
        /// State.
        info: Option<PathInfo>,
    },
    /// HELPER call or response.
    Helper {
        /// Helper name.
        name: String,
        /// Exit status (response).
        status: u32,
    },
    /// INITIAL_STATE_DONE.
    InitialStateDone,
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Notification type without flags (dump records: EXISTS).
    pub action: u32,
    /// NOTIFY_CONTINUES was set.
    pub continues: bool,
    /// Minor from the user header (`MINOR_NONE` if none).
    pub minor: Option<u32>,
    /// Object identity.
    pub ctx: Context,
    /// Object state.
    pub body: Body,
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Malformed attributes.
    Nla(NlaError),
    /// Command number not a state message.
    UnknownCommand(u8),
    /// A state value out of range.
    BadValue(&'static str, u32),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Nla(e) => write!(f, "malformed message: {e}"),
            DecodeError::UnknownCommand(c) => write!(f, "unexpected command {c}"),
            DecodeError::BadValue(what, v) => write!(f, "unknown {what} value {v}"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl From<NlaError> for DecodeError {
    fn from(e: NlaError) -> Self {
        DecodeError::Nla(e)
    }
}

/// The nested attributes of top-level attribute `t` in `attrs`.
fn tla_of(attrs: &[u8], t: u16) -> Result<Option<&[u8]>, NlaError> {
    Ok(nla::find(attrs, t)?.map(|a| a.payload))
}

fn get(set: &[u8], nr: u16) -> Result<Option<Attr<'_>>, NlaError> {
    nla::find(set, nr)
}

fn u32_of(set: &[u8], nr: u16) -> Result<Option<u32>, NlaError> {
    get(set, nr)?.map(|a| a.as_u32()).transpose()
}

fn u64_of(set: &[u8], nr: u16) -> Result<u64, NlaError> {
    Ok(get(set, nr)?.map(|a| a.as_u64()).transpose()?.unwrap_or(0))
}

fn flag_of(set: &[u8], nr: u16) -> Result<Option<bool>, NlaError> {
    get(set, nr)?.map(|a| a.as_flag()).transpose()
}

fn str_of(set: &[u8], nr: u16, max: usize) -> Result<Option<String>, NlaError> {
    Ok(get(set, nr)?
        .map(|a| a.as_str(max))
        .transpose()?
        .map(str::to_owned))
}

fn role(v: Option<u32>) -> Result<Role, DecodeError> {
    let v = v.unwrap_or(0);
    Role::from_u32(v).ok_or(DecodeError::BadValue("role", v))
}

fn disk(v: Option<u32>, dflt: DiskState) -> Result<DiskState, DecodeError> {
    match v {
        None => Ok(dflt),
        Some(v) => DiskState::from_u32(v).ok_or(DecodeError::BadValue("disk state", v)),
    }
}

/// Decodes the context TLA.
pub fn decode_context(attrs: &[u8]) -> Result<Context, DecodeError> {
    let mut ctx = Context::default();
    if let Some(c) = tla_of(attrs, tla::CFG_CONTEXT)? {
        ctx.resource = str_of(c, cfg_context::CTX_RESOURCE_NAME, 128)?.unwrap_or_default();
        ctx.volume = u32_of(c, cfg_context::CTX_VOLUME)?.filter(|v| *v != u32::MAX);
        ctx.peer_node_id = u32_of(c, cfg_context::CTX_PEER_NODE_ID)?.filter(|v| *v != u32::MAX);
        ctx.conn_name = str_of(c, cfg_context::CTX_CONN_NAME, 0)?;
        ctx.my_addr = get(c, cfg_context::CTX_MY_ADDR)?.map(|a| a.payload.to_vec());
        ctx.peer_addr = get(c, cfg_context::CTX_PEER_ADDR)?.map(|a| a.payload.to_vec());
    }
    Ok(ctx)
}

fn decode_resource_info(s: &[u8]) -> Result<ResourceInfo, DecodeError> {
    Ok(ResourceInfo {
        role: role(u32_of(s, resource_info::RES_ROLE)?)?,
        susp_user: flag_of(s, resource_info::RES_SUSP)?.unwrap_or(false),
        susp_no_data: flag_of(s, resource_info::RES_SUSP_NOD)?.unwrap_or(false),
        susp_fencing: flag_of(s, resource_info::RES_SUSP_FEN)?.unwrap_or(false),
        susp_quorum: flag_of(s, resource_info::RES_SUSP_QUORUM)?.unwrap_or(false),
        force_io_failures: flag_of(s, resource_info::RES_FAIL_IO)?.unwrap_or(false),
    })
}

fn decode_device_info(s: &[u8]) -> Result<DeviceInfo, DecodeError> {
    Ok(DeviceInfo {
        disk: disk(u32_of(s, device_info::DEV_DISK_STATE)?, DiskState::Diskless)?,
        intentional_diskless: flag_of(s, device_info::IS_INTENTIONAL_DISKLESS)?,
        has_quorum: flag_of(s, device_info::DEV_HAS_QUORUM)?.unwrap_or(true),
        backing_dev: str_of(s, device_info::BACKING_DEV_PATH, 128)?.filter(|p| !p.is_empty()),
        is_open: flag_of(s, device_info::DEV_IS_OPEN)?,
    })
}

fn decode_device_stats(s: &[u8]) -> Result<DeviceStats, DecodeError> {
    use device_statistics as d;
    Ok(DeviceStats {
        size: u64_of(s, d::DEV_SIZE)?,
        read: u64_of(s, d::DEV_READ)?,
        write: u64_of(s, d::DEV_WRITE)?,
        al_writes: u64_of(s, d::DEV_AL_WRITES)?,
        bm_writes: u64_of(s, d::DEV_BM_WRITES)?,
        upper_pending: u32_of(s, d::DEV_UPPER_PENDING)?.unwrap_or(0),
        lower_pending: u32_of(s, d::DEV_LOWER_PENDING)?.unwrap_or(0),
        upper_blocked: flag_of(s, d::DEV_UPPER_BLOCKED)?.unwrap_or(false),
        lower_blocked: flag_of(s, d::DEV_LOWER_BLOCKED)?.unwrap_or(false),
        al_suspended: flag_of(s, d::DEV_AL_SUSPENDED)?.unwrap_or(false),
        exposed_data_uuid: u64_of(s, d::DEV_EXPOSED_DATA_UUID)?,
        current_uuid: u64_of(s, d::DEV_CURRENT_UUID)?,
        disk_flags: u32_of(s, d::DEV_DISK_FLAGS)?.unwrap_or(0),
    })
}

fn decode_peer_device_info(s: &[u8]) -> Result<PeerDeviceInfo, DecodeError> {
    use peer_device_info as p;
    let repl = u32_of(s, p::PEER_REPL_STATE)?.unwrap_or(ReplState::Off as u32);
    Ok(PeerDeviceInfo {
        repl: ReplState::from_u32(repl).ok_or(DecodeError::BadValue("replication state", repl))?,
        peer_disk: disk(u32_of(s, p::PEER_DISK_STATE)?, DiskState::DUnknown)?,
        susp_user: u32_of(s, p::PEER_RESYNC_SUSP_USER)?.unwrap_or(0) != 0,
        susp_peer: u32_of(s, p::PEER_RESYNC_SUSP_PEER)?.unwrap_or(0) != 0,
        susp_dependency: u32_of(s, p::PEER_RESYNC_SUSP_DEPENDENCY)?.unwrap_or(0) != 0,
        peer_intentional_diskless: flag_of(s, p::PEER_IS_INTENTIONAL_DISKLESS)?,
        susp_max_parallel: u32_of(s, p::PEER_RESYNC_SUSP_MAX_PARALLEL)?.unwrap_or(0) != 0,
    })
}

fn decode_peer_device_stats(s: &[u8]) -> Result<PeerDeviceStats, DecodeError> {
    use peer_device_statistics as p;
    Ok(PeerDeviceStats {
        received: u64_of(s, p::PEER_DEV_RECEIVED)?,
        sent: u64_of(s, p::PEER_DEV_SENT)?,
        pending: u32_of(s, p::PEER_DEV_PENDING)?.unwrap_or(0),
        unacked: u32_of(s, p::PEER_DEV_UNACKED)?.unwrap_or(0),
        out_of_sync: u64_of(s, p::PEER_DEV_OUT_OF_SYNC)?,
        resync_failed: u64_of(s, p::PEER_DEV_RESYNC_FAILED)?,
        bitmap_uuid: u64_of(s, p::PEER_DEV_BITMAP_UUID)?,
        flags: u32_of(s, p::PEER_DEV_FLAGS)?.unwrap_or(0),
        rs_total: u64_of(s, p::PEER_DEV_RS_TOTAL)?,
        ov_left: u64_of(s, p::PEER_DEV_OV_LEFT)?,
        rs_dt1_ms: u64_of(s, p::PEER_DEV_RS_DT1_MS)?,
        rs_db1_sectors: u64_of(s, p::PEER_DEV_RS_DB1_SECTORS)?,
        uuid_flags: u64_of(s, p::PEER_DEV_UUID_FLAGS)?,
        ov_start_sector: u64_of(s, p::PEER_DEV_OV_START_SECTOR)?,
        ov_stop_sector: u64_of(s, p::PEER_DEV_OV_STOP_SECTOR)?,
        ov_position: u64_of(s, p::PEER_DEV_OV_POSITION)?,
        ov_skipped: u64_of(s, p::PEER_DEV_OV_SKIPPED)?,
        rs_same_csum: u64_of(s, p::PEER_DEV_RS_SAME_CSUM)?,
        rs_dt_start_ms: u64_of(s, p::PEER_DEV_RS_DT_START_MS)?,
        rs_paused_ms: u64_of(s, p::PEER_DEV_RS_PAUSED_MS)?,
        rs_dt0_ms: u64_of(s, p::PEER_DEV_RS_DT0_MS)?,
        rs_db0_sectors: u64_of(s, p::PEER_DEV_RS_DB0_SECTORS)?,
        rs_c_sync_rate: u32_of(s, p::PEER_DEV_RS_C_SYNC_RATE)?.unwrap_or(0),
    })
}

/// Decodes one state message: `command` from the genl header, `minor` from
/// the DRBD header, `attrs` the top-level attributes. Dump records (commands
/// `ADM_GET_*`) come out as EXISTS events.
pub fn decode(command: u8, minor: u32, attrs: &[u8]) -> Result<Event, DecodeError> {
    nla::validate(attrs)?;
    let ctx = decode_context(attrs)?;
    let (action, continues) = match tla_of(attrs, tla::NOTIFICATION_HEADER)? {
        Some(nh) => {
            let t = u32_of(nh, notification_header::NH_TYPE)?.unwrap_or(0);
            (
                t & !genl_spec::generated::notify::FLAGS,
                t & genl_spec::generated::notify::CONTINUES != 0,
            )
        }
        None => (genl_spec::generated::notify::EXISTS, false),
    };
    let body = match command {
        cmd::RESOURCE_STATE | cmd::ADM_GET_RESOURCES => Body::Resource {
            info: tla_of(attrs, tla::RESOURCE_INFO)?
                .map(decode_resource_info)
                .transpose()?,
            stats: tla_of(attrs, tla::RESOURCE_STATISTICS)?
                .map(|s| -> Result<_, DecodeError> {
                    Ok(ResourceStats {
                        write_ordering: u32_of(s, resource_statistics::RES_STAT_WRITE_ORDERING)?
                            .unwrap_or(0),
                    })
                })
                .transpose()?,
            new_name: match tla_of(attrs, tla::RENAME_RESOURCE_INFO)? {
                Some(s) => str_of(s, rename_resource_info::RES_NEW_NAME, 128)?,
                None => None,
            },
            node_id: match tla_of(attrs, tla::RESOURCE_OPTS)? {
                Some(s) => u32_of(s, genl_spec::generated::res_opts::NODE_ID)?,
                None => None,
            },
        },
        cmd::DEVICE_STATE | cmd::ADM_GET_DEVICES => Body::Device {
            info: tla_of(attrs, tla::DEVICE_INFO)?
                .map(decode_device_info)
                .transpose()?,
            stats: tla_of(attrs, tla::DEVICE_STATISTICS)?
                .map(decode_device_stats)
                .transpose()?,
        },
        cmd::CONNECTION_STATE | cmd::ADM_GET_CONNECTIONS => Body::Connection {
            info: tla_of(attrs, tla::CONNECTION_INFO)?
                .map(|s| -> Result<_, DecodeError> {
                    let c = u32_of(s, connection_info::CONN_CONNECTION_STATE)?.unwrap_or(0);
                    Ok(ConnectionInfo {
                        cstate: ConnState::from_u32(c)
                            .ok_or(DecodeError::BadValue("connection state", c))?,
                        peer_role: role(u32_of(s, connection_info::CONN_ROLE)?)?,
                    })
                })
                .transpose()?,
            stats: tla_of(attrs, tla::CONNECTION_STATISTICS)?
                .map(|s| -> Result<_, DecodeError> {
                    Ok(ConnectionStats {
                        congested: flag_of(s, connection_statistics::CONN_CONGESTED)?
                            .unwrap_or(false),
                        ap_in_flight: u64_of(s, connection_statistics::AP_IN_FLIGHT)?,
                        rs_in_flight: u64_of(s, connection_statistics::RS_IN_FLIGHT)?,
                    })
                })
                .transpose()?,
        },
        cmd::PEER_DEVICE_STATE | cmd::ADM_GET_PEER_DEVICES => Body::PeerDevice {
            info: tla_of(attrs, tla::PEER_DEVICE_INFO)?
                .map(decode_peer_device_info)
                .transpose()?,
            stats: tla_of(attrs, tla::PEER_DEVICE_STATISTICS)?
                .map(decode_peer_device_stats)
                .transpose()?,
        },
        cmd::PATH_STATE | cmd::ADM_GET_PATHS => Body::Path {
            info: tla_of(attrs, tla::PATH_INFO)?
                .map(|s| -> Result<_, DecodeError> {
                    Ok(PathInfo {
                        established: flag_of(s, path_info::PATH_ESTABLISHED)?.unwrap_or(false),
                    })
                })
                .transpose()?,
        },
        cmd::HELPER => {
            let (name, status) = match tla_of(attrs, tla::HELPER)? {
                Some(s) => (
                    str_of(s, helper_info::HELPER_NAME, 32)?.unwrap_or_default(),
                    u32_of(s, helper_info::HELPER_STATUS)?.unwrap_or(0),
                ),
                None => (String::new(), 0),
            };
            Body::Helper { name, status }
        }
        cmd::INITIAL_STATE_DONE => Body::InitialStateDone,
        other => return Err(DecodeError::UnknownCommand(other)),
    };
    Ok(Event {
        action,
        continues,
        minor: (minor != MINOR_NONE).then_some(minor),
        ctx,
        body,
    })
}

/// Formats a raw socket address (sockaddr_in / sockaddr_in6 bytes) as DRBD
/// prints it: `ipv4:1.2.3.4:7789`, `ipv6:[fd00::1]:7789`.
pub fn format_sockaddr(raw: &[u8]) -> Option<String> {
    let family = u16::from_ne_bytes([*raw.first()?, *raw.get(1)?]);
    let port = u16::from_be_bytes([*raw.get(2)?, *raw.get(3)?]);
    match family {
        2 => {
            let a = raw.get(4..8)?;
            Some(format!("ipv4:{}.{}.{}.{}:{port}", a[0], a[1], a[2], a[3]))
        }
        10 => {
            let a: [u8; 16] = raw.get(8..24)?.try_into().ok()?;
            Some(format!("ipv6:[{}]:{port}", std::net::Ipv6Addr::from(a)))
        }
        _ => None,
    }
}

/// Encodes a socket address as the raw sockaddr bytes DRBD expects.
pub fn sockaddr_bytes(addr: &std::net::SocketAddr) -> Vec<u8> {
    match addr {
        std::net::SocketAddr::V4(a) => {
            let mut v = Vec::with_capacity(16);
            v.extend_from_slice(&2u16.to_ne_bytes());
            v.extend_from_slice(&a.port().to_be_bytes());
            v.extend_from_slice(&a.ip().octets());
            v.extend_from_slice(&[0u8; 8]);
            v
        }
        std::net::SocketAddr::V6(a) => {
            let mut v = Vec::with_capacity(28);
            v.extend_from_slice(&10u16.to_ne_bytes());
            v.extend_from_slice(&a.port().to_be_bytes());
            v.extend_from_slice(&a.flowinfo().to_be_bytes());
            v.extend_from_slice(&a.ip().octets());
            v.extend_from_slice(&a.scope_id().to_ne_bytes());
            v
        }
    }
}
