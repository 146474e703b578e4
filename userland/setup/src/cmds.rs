//! The drbdsetup command table and the argument parser it drives.
//!
//! A command is one [`CmdDef`]: its positional arguments, the attribute
//! sets whose members become `--options` (names, types, ranges, defaults and
//! value lists all come from genl-spec), and how it is executed. Adding a
//! command is adding a table entry.

use crate::msg::{AttrsBuilder, Ctx, Request, Value};
use genl_spec::generated::{
    cmd, connect_parms, detach_parms, device_conf, disconnect_parms, disk_conf, forget_peer_parms,
    hdr_flags, inval_peer_parms, invalidate_parms, net_conf, new_c_uuid_parms, path_parms,
    peer_device_conf, rename_resource_parms, res_opts, resize_parms, set_role_parms,
    start_ov_parms, suspend_io_parms, AttrSet, AttrType, Member, MD_INDEX_FLEX_EXT,
    MD_INDEX_FLEX_INT, MINOR_MAX, MINOR_NONE, NODE_ID_MAX, VOLUME_MAX,
};
use std::net::{SocketAddr, ToSocketAddrs};

/// A positional argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pos {
    /// Resource name (context).
    Resource,
    /// Resource name or `all`.
    ResourceOrAll,
    /// Minor number or /dev/drbdN (user header).
    Minor,
    /// Volume number (context).
    Volume,
    /// Local node id (res_opts.node_id).
    NodeId,
    /// Peer node id (context).
    PeerNodeId,
    /// Backing device (disk_conf.backing_dev).
    LowerDev,
    /// Meta-data device (disk_conf.meta_dev).
    MetaDev,
    /// Meta-data index (disk_conf.meta_dev_idx).
    MetaIdx,
    /// Local address of a path.
    LocalAddr,
    /// Peer address of a path.
    PeerAddr,
    /// New resource name.
    NewName,
    /// Node id to forget (forget_peer_parms).
    ForgetNodeId,
}

impl Pos {
    fn usage(self) -> &'static str {
        match self {
            Pos::Resource => "resource",
            Pos::ResourceOrAll => "resource|all",
            Pos::Minor => "minor",
            Pos::Volume => "volume",
            Pos::NodeId => "node_id",
            Pos::PeerNodeId => "peer_node_id",
            Pos::LowerDev => "lower_dev",
            Pos::MetaDev => "meta_data_dev",
            Pos::MetaIdx => "meta_data_index",
            Pos::LocalAddr => "local_addr",
            Pos::PeerAddr => "remote_addr",
            Pos::NewName => "new_name",
            Pos::ForgetNodeId => "peer_node_id",
        }
    }
}

/// How a command is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One request, one reply with a ret_code.
    Config,
    /// ADM_DOWN for one resource or for all.
    Down,
    /// `status`.
    Status,
    /// `events2`.
    Events2,
    /// `show`.
    Show,
    /// `role RES`.
    Role,
    /// `cstate RES PEER`.
    Cstate,
    /// `dstate MINOR`.
    Dstate,
    /// `wait-connect-{volume,connection,resource}`.
    WaitConnect,
}

/// A non-netlink option of a command.
#[derive(Debug, Clone, Copy)]
pub struct Extra {
    /// Long name.
    pub name: &'static str,
    /// Short letter.
    pub short: Option<char>,
    /// Help line.
    pub help: &'static str,
    /// Takes a value (`--name=V` or `--name V`).
    pub value: bool,
}

/// One drbdsetup command.
#[derive(Debug, Clone, Copy)]
pub struct CmdDef {
    /// Verb.
    pub name: &'static str,
    /// How it runs.
    pub kind: Kind,
    /// genl command of a Config command.
    pub cmd: u8,
    /// Positional arguments.
    pub pos: &'static [Pos],
    /// How many of the trailing positionals may be left out.
    pub optional: usize,
    /// Sets whose members are options; the first one is sent even when
    /// empty (for sets the kernel requires).
    pub sets: &'static [&'static AttrSet],
    /// Send the first set even without options.
    pub always_send_set: bool,
    /// Accepts `--set-defaults`.
    pub set_defaults: bool,
    /// Other options.
    pub extra: &'static [Extra],
    /// One-line description.
    pub summary: &'static str,
}

const STATUS_EXTRA: &[Extra] = &[
    Extra {
        name: "verbose",
        short: Some('v'),
        help: "show all keys",
        value: false,
    },
    Extra {
        name: "statistics",
        short: Some('s'),
        help: "show counters",
        value: false,
    },
    Extra {
        name: "json",
        short: Some('j'),
        help: "JSON output",
        value: false,
    },
    Extra {
        name: "color",
        short: None,
        help: "accepted for compatibility (no colors)",
        value: false,
    },
];

const EVENTS_EXTRA: &[Extra] = &[
    Extra {
        name: "now",
        short: Some('n'),
        help: "print the current state and exit",
        value: false,
    },
    Extra {
        name: "statistics",
        short: Some('s'),
        help: "add counters",
        value: false,
    },
    Extra {
        name: "timestamps",
        short: Some('t'),
        help: "prefix lines with the time",
        value: false,
    },
    Extra {
        name: "full",
        short: Some('f'),
        help: "all keys on every line (implies --statistics)",
        value: false,
    },
    Extra {
        name: "color",
        short: None,
        help: "accepted for compatibility (no colors)",
        value: false,
    },
];

const WAIT_EXTRA: &[Extra] = &[
    Extra {
        name: "wfc-timeout",
        short: None,
        help: "seconds to wait, 0 = forever",
        value: true,
    },
    Extra {
        name: "degr-wfc-timeout",
        short: None,
        help: "seconds to wait after a degraded cluster, 0 = forever",
        value: true,
    },
    Extra {
        name: "outdated-wfc-timeout",
        short: None,
        help: "seconds to wait when the peer is outdated, 0 = forever",
        value: true,
    },
    Extra {
        name: "wait-after-sb",
        short: None,
        help: "keep waiting when the connection went StandAlone (split brain)",
        value: false,
    },
];

const SHOW_EXTRA: &[Extra] = &[
    Extra {
        name: "show-defaults",
        short: Some('D'),
        help: "also print options that have their default value",
        value: false,
    },
    Extra {
        name: "json",
        short: Some('j'),
        help: "JSON output",
        value: false,
    },
];

macro_rules! c {
    ($name:expr, $kind:ident, $cmd:expr, [$($pos:ident),*], $opt:expr, [$($set:expr),*], $always:expr, $sd:expr, $extra:expr, $summary:expr) => {
        CmdDef {
            name: $name,
            kind: Kind::$kind,
            cmd: $cmd,
            pos: &[$(Pos::$pos),*],
            optional: $opt,
            sets: &[$(&$set),*],
            always_send_set: $always,
            set_defaults: $sd,
            extra: $extra,
            summary: $summary,
        }
    };
}

/// All commands.
pub const COMMANDS: &[CmdDef] = &[
    c!(
        "new-resource",
        Config,
        cmd::ADM_NEW_RESOURCE,
        [Resource, NodeId],
        0,
        [res_opts::SET],
        true,
        false,
        &[],
        "Create a new resource."
    ),
    c!(
        "resource-options",
        Config,
        cmd::ADM_RESOURCE_OPTS,
        [Resource],
        0,
        [res_opts::SET],
        true,
        true,
        &[],
        "Change the resource options of an existing resource."
    ),
    c!(
        "del-resource",
        Config,
        cmd::ADM_DEL_RESOURCE,
        [Resource],
        0,
        [],
        false,
        false,
        &[],
        "Remove a resource."
    ),
    c!(
        "new-minor",
        Config,
        cmd::ADM_NEW_MINOR,
        [Resource, Minor, Volume],
        0,
        [device_conf::SET],
        false,
        false,
        &[],
        "Create a new replicated device within a resource."
    ),
    c!(
        "del-minor",
        Config,
        cmd::ADM_DEL_MINOR,
        [Minor],
        0,
        [],
        false,
        false,
        &[],
        "Remove a replicated device."
    ),
    c!(
        "attach",
        Config,
        cmd::ADM_ATTACH,
        [Minor, LowerDev, MetaDev, MetaIdx],
        0,
        [disk_conf::SET],
        true,
        false,
        &[],
        "Attach a lower-level device to an existing replicated device."
    ),
    c!(
        "disk-options",
        Config,
        cmd::ADM_CHG_DISK_OPTS,
        [Minor],
        0,
        [disk_conf::SET],
        true,
        true,
        &[],
        "Change the disk options of an attached lower-level device."
    ),
    c!(
        "detach",
        Config,
        cmd::ADM_DETACH,
        [Minor],
        0,
        [detach_parms::SET],
        false,
        false,
        &[],
        "Detach the lower-level device of a replicated device."
    ),
    c!(
        "primary",
        Config,
        cmd::ADM_PRIMARY,
        [Resource],
        0,
        [set_role_parms::SET],
        true,
        false,
        &[],
        "Change the role of a node in a resource to primary."
    ),
    c!(
        "secondary",
        Config,
        cmd::ADM_SECONDARY,
        [Resource],
        0,
        [set_role_parms::SET],
        true,
        false,
        &[],
        "Change the role of a node in a resource to secondary."
    ),
    c!(
        "down",
        Down,
        cmd::ADM_DOWN,
        [ResourceOrAll],
        0,
        [],
        false,
        false,
        &[],
        "Take a resource down."
    ),
    c!(
        "new-peer",
        Config,
        cmd::ADM_NEW_PEER,
        [Resource, PeerNodeId],
        0,
        [net_conf::SET],
        true,
        false,
        &[],
        "Make a peer host known to a resource."
    ),
    c!(
        "del-peer",
        Config,
        cmd::ADM_DEL_PEER,
        [Resource, PeerNodeId],
        0,
        [disconnect_parms::SET],
        false,
        false,
        &[],
        "Remove a connection to a peer host."
    ),
    c!(
        "new-path",
        Config,
        cmd::ADM_NEW_PATH,
        [Resource, PeerNodeId, LocalAddr, PeerAddr],
        0,
        [path_parms::SET],
        true,
        false,
        &[],
        "Add a path (endpoint address pair) to a connection."
    ),
    c!(
        "del-path",
        Config,
        cmd::ADM_DEL_PATH,
        [Resource, PeerNodeId, LocalAddr, PeerAddr],
        0,
        [path_parms::SET],
        true,
        false,
        &[],
        "Remove a path from a connection."
    ),
    c!(
        "connect",
        Config,
        cmd::ADM_CONNECT,
        [Resource, PeerNodeId],
        0,
        [connect_parms::SET],
        false,
        false,
        &[],
        "Attempt to (re)establish a replication link to a peer host."
    ),
    c!(
        "disconnect",
        Config,
        cmd::ADM_DISCONNECT,
        [Resource, PeerNodeId],
        0,
        [disconnect_parms::SET],
        false,
        false,
        &[],
        "Unconnect from a peer host."
    ),
    c!(
        "net-options",
        Config,
        cmd::ADM_CHG_NET_OPTS,
        [Resource, PeerNodeId],
        0,
        [net_conf::SET],
        true,
        true,
        &[],
        "Change the network options of a connection."
    ),
    c!(
        "peer-device-options",
        Config,
        cmd::ADM_CHG_PEER_DEVICE_OPTS,
        [Resource, PeerNodeId, Volume],
        0,
        [peer_device_conf::SET],
        true,
        true,
        &[],
        "Change peer-device options."
    ),
    c!(
        "resize",
        Config,
        cmd::ADM_RESIZE,
        [Minor],
        0,
        [resize_parms::SET],
        false,
        false,
        &[],
        "Reexamine the lower-level device sizes to resize a replicated device."
    ),
    c!(
        "new-current-uuid",
        Config,
        cmd::ADM_NEW_C_UUID,
        [Minor],
        0,
        [new_c_uuid_parms::SET],
        false,
        false,
        &[],
        "Generate a new current UUID."
    ),
    c!(
        "invalidate",
        Config,
        cmd::ADM_INVALIDATE,
        [Minor],
        0,
        [invalidate_parms::SET],
        true,
        false,
        &[],
        "Replace the local data of a volume with that of a peer."
    ),
    c!(
        "invalidate-remote",
        Config,
        cmd::ADM_INVAL_PEER,
        [Resource, PeerNodeId, Volume],
        0,
        [inval_peer_parms::SET],
        false,
        false,
        &[],
        "Replace a peer's data of a volume with the local data."
    ),
    c!(
        "pause-sync",
        Config,
        cmd::ADM_PAUSE_SYNC,
        [Resource, PeerNodeId, Volume],
        0,
        [],
        false,
        false,
        &[],
        "Stop resynchronizing between a local and a peer device."
    ),
    c!(
        "resume-sync",
        Config,
        cmd::ADM_RESUME_SYNC,
        [Resource, PeerNodeId, Volume],
        0,
        [],
        false,
        false,
        &[],
        "Allow resynchronization to resume."
    ),
    c!(
        "suspend-io",
        Config,
        cmd::ADM_SUSPEND_IO,
        [Minor],
        0,
        [suspend_io_parms::SET],
        false,
        false,
        &[],
        "Suspend I/O on a replicated device."
    ),
    c!(
        "resume-io",
        Config,
        cmd::ADM_RESUME_IO,
        [Minor],
        0,
        [],
        false,
        false,
        &[],
        "Resume I/O on a replicated device."
    ),
    c!(
        "outdate",
        Config,
        cmd::ADM_OUTDATE,
        [Minor],
        0,
        [],
        false,
        false,
        &[],
        "Mark the data on a lower-level device as outdated."
    ),
    c!(
        "verify",
        Config,
        cmd::ADM_START_OV,
        [Resource, PeerNodeId, Volume],
        0,
        [start_ov_parms::SET],
        false,
        false,
        &[],
        "Verify the data on a lower-level device against a peer device."
    ),
    c!(
        "forget-peer",
        Config,
        cmd::ADM_FORGET_PEER,
        [Resource, ForgetNodeId],
        0,
        [forget_peer_parms::SET],
        true,
        false,
        &[],
        "Completely remove any reference to an unconnected peer from meta-data."
    ),
    c!(
        "rename-resource",
        Config,
        cmd::ADM_RENAME_RESOURCE,
        [Resource, NewName],
        0,
        [rename_resource_parms::SET],
        true,
        false,
        &[],
        "Rename a resource."
    ),
    c!(
        "wait-connect-volume",
        WaitConnect,
        0,
        [Resource, PeerNodeId, Volume],
        0,
        [],
        false,
        false,
        WAIT_EXTRA,
        "Wait until a volume replicates to a peer."
    ),
    c!(
        "wait-connect-connection",
        WaitConnect,
        0,
        [Resource, PeerNodeId],
        0,
        [],
        false,
        false,
        WAIT_EXTRA,
        "Wait until a connection is established and its volumes replicate."
    ),
    c!(
        "wait-connect-resource",
        WaitConnect,
        0,
        [Resource],
        0,
        [],
        false,
        false,
        WAIT_EXTRA,
        "Wait until every connection of a resource is established."
    ),
    c!(
        "status",
        Status,
        0,
        [ResourceOrAll],
        1,
        [],
        false,
        false,
        STATUS_EXTRA,
        "Show the state of a resource, or of all resources."
    ),
    c!(
        "events2",
        Events2,
        0,
        [ResourceOrAll],
        1,
        [],
        false,
        false,
        EVENTS_EXTRA,
        "Show the current state and all state changes."
    ),
    c!(
        "show",
        Show,
        0,
        [ResourceOrAll],
        1,
        [],
        false,
        false,
        SHOW_EXTRA,
        "Show the current configuration of a resource, or of all resources."
    ),
    c!(
        "role",
        Role,
        0,
        [Resource],
        0,
        [],
        false,
        false,
        &[],
        "Show the current role of a resource."
    ),
    c!(
        "cstate",
        Cstate,
        0,
        [Resource, PeerNodeId],
        0,
        [],
        false,
        false,
        &[],
        "Show the current state of a connection."
    ),
    c!(
        "dstate",
        Dstate,
        0,
        [Minor],
        0,
        [],
        false,
        false,
        &[],
        "Show the current disk state of a lower-level device."
    ),
];

/// The command named `name`.
pub fn find(name: &str) -> Option<&'static CmdDef> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// A command line error (exit status 20).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    /// Message for stderr.
    pub msg: String,
    /// Also print the command's usage.
    pub show_usage: bool,
}

fn usage_err(msg: impl Into<String>) -> UsageError {
    UsageError {
        msg: msg.into(),
        show_usage: false,
    }
}

/// A parsed command line.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The command.
    pub def: &'static CmdDef,
    /// Object name for messages (first resource/minor argument, or "all").
    pub objname: String,
    /// Context.
    pub ctx: Ctx,
    /// User header minor.
    pub minor: u32,
    /// User header flags.
    pub flags: u32,
    /// `all` was given (or the optional object left out).
    pub all: bool,
    /// Option set values, per set (same order as `def.sets`).
    pub values: Vec<Vec<(&'static Member, Value)>>,
    /// Extra options given.
    pub extra: Vec<&'static str>,
    /// Values of the extra options that take one.
    pub extra_values: Vec<(&'static str, String)>,
}

impl Parsed {
    /// Whether the extra option `name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.extra.contains(&name)
    }

    /// The value of extra option `name`, if given (the last one counts).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.extra_values
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The request for a Config command.
    pub fn request(&self) -> Result<Request, genl_spec::nla::NlaError> {
        let mut b = AttrsBuilder::default();
        b.context(&self.ctx)?;
        for (i, set) in self.def.sets.iter().enumerate() {
            let vals = self.values.get(i).map(Vec::as_slice).unwrap_or(&[]);
            if vals.is_empty() && !(i == 0 && self.def.always_send_set) {
                continue;
            }
            b.set(set, vals)?;
        }
        Ok(Request {
            cmd: self.def.cmd,
            minor: self.minor,
            flags: self.flags,
            attrs: b.finish(),
        })
    }
}

/// Parses an integer as strtoll with base 0 would (decimal, 0x hex, 0 octal).
fn parse_int(s: &str) -> Option<i128> {
    let (neg, t) = match s.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        i128::from_str_radix(h, 16).ok()?
    } else if t.len() > 1 && t.starts_with('0') {
        i128::from_str_radix(&t[1..], 8).ok()?
    } else {
        t.parse::<i128>().ok()?
    };
    Some(if neg { -v } else { v })
}

/// Converts a number with an optional unit suffix (`K M G` powers of 1024,
/// `s` sectors) into the unit of a member (`scale`: `1`, `k`, `s`),
/// rounding up.
pub fn parse_scaled(s: &str, scale: u8) -> Option<i128> {
    let (num, suffix) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() && !s.starts_with("0x") => (&s[..i], Some(c)),
        _ => (s, None),
    };
    let n = parse_int(num)?;
    let Some(suffix) = suffix else {
        return Some(n);
    };
    let bytes_per = match suffix {
        'k' | 'K' => 1024i128,
        'm' | 'M' => 1024 * 1024,
        'g' | 'G' => 1024 * 1024 * 1024,
        's' | 'S' => 512,
        _ => return None,
    };
    let unit = match scale {
        b'k' => 1024i128,
        b's' => 512,
        _ => 1,
    };
    let bytes = n.checked_mul(bytes_per)?;
    Some(if bytes >= 0 {
        (bytes + unit - 1) / unit
    } else {
        bytes / unit
    })
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "yes" | "true" | "on" | "1" => Some(true),
        "no" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Parses the value of option `--opt` for member `m`.
pub fn parse_member_value(m: &Member, opt: &str, v: &str) -> Result<Value, UsageError> {
    let bad = || {
        usage_err(format!(
            "Invalid value '{v}' for option --{opt}{}",
            range_text(m)
        ))
    };
    let number = || -> Result<i128, UsageError> {
        let n = m
            .values
            .and_then(|vals| vals.iter().find(|e| e.name == v).map(|e| i128::from(e.nr)))
            .or_else(|| {
                if m.values.is_some() && m.min.is_none() {
                    None
                } else {
                    parse_scaled(v, m.scale)
                }
            })
            .ok_or_else(bad)?;
        let symbolic = m
            .values
            .is_some_and(|vals| vals.iter().any(|e| i128::from(e.nr) == n));
        if !symbolic
            && (m.min.is_some_and(|min| n < i128::from(min))
                || m.max.is_some_and(|max| n > i128::from(max)))
        {
            return Err(bad());
        }
        Ok(n)
    };
    match m.ty {
        AttrType::Flag => parse_bool(v).map(Value::Flag).ok_or_else(bad),
        AttrType::U32 => Ok(Value::U32(u32::try_from(number()?).map_err(|_| bad())?)),
        AttrType::S32 => Ok(Value::S32(i32::try_from(number()?).map_err(|_| bad())?)),
        AttrType::U64 => Ok(Value::U64(u64::try_from(number()?).map_err(|_| bad())?)),
        AttrType::String => {
            if m.max_len != 0 && v.len() >= usize::from(m.max_len) {
                return Err(usage_err(format!(
                    "Value of option --{opt} too long (max {} characters)",
                    m.max_len - 1
                )));
            }
            Ok(Value::Str(v.to_string()))
        }
        AttrType::Binary => Err(bad()),
    }
}

fn range_text(m: &Member) -> String {
    if let Some(vals) = m.values {
        let names: Vec<&str> = vals.iter().map(|v| v.name).collect();
        if m.min.is_none() {
            return format!(" (one of: {})", names.join(", "));
        }
    }
    match (m.min, m.max) {
        (Some(a), Some(b)) => format!(" (allowed: {a} ... {b})"),
        _ => String::new(),
    }
}

/// Parses a minor argument: a number or `/dev/drbdN`.
pub fn parse_minor(s: &str) -> Option<u32> {
    let t = s.strip_prefix("/dev/drbd").unwrap_or(s);
    let n: u32 = t.parse().ok()?;
    (n <= MINOR_MAX).then_some(n)
}

/// Parses `[ipv4:|ipv6:]ADDR[:PORT]` (also `local:`/`peer:` prefixes) into
/// raw sockaddr bytes; the port defaults to 7788 as in drbdsetup.
pub fn parse_address(s: &str) -> Result<Vec<u8>, UsageError> {
    let s = s
        .strip_prefix("local:")
        .or_else(|| s.strip_prefix("peer:"))
        .unwrap_or(s);
    let bad = || usage_err(format!("does not look like an endpoint address '{s}'"));
    let addr: SocketAddr = if let Some(rest) = s.strip_prefix("ipv6:") {
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, after) = r.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None if after.is_empty() => 7788,
                None => return Err(bad()),
            };
            (h.to_string(), port)
        } else {
            let (h, p) = rest.rsplit_once(':').ok_or_else(bad)?;
            (h.to_string(), p.parse().map_err(|_| bad())?)
        };
        let ip: std::net::Ipv6Addr = host.parse().map_err(|_| bad())?;
        SocketAddr::new(ip.into(), port)
    } else {
        let rest = s.strip_prefix("ipv4:").unwrap_or(s);
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (rest, 7788),
        };
        match host.parse::<std::net::Ipv4Addr>() {
            Ok(ip) => SocketAddr::new(ip.into(), port),
            Err(_) => (host, port)
                .to_socket_addrs()
                .map_err(|_| usage_err(format!("can not resolve the hostname: {host}")))?
                .find(SocketAddr::is_ipv4)
                .ok_or_else(bad)?,
        }
    };
    Ok(events2::state::sockaddr_bytes(&addr))
}

fn parse_u32_arg(s: &str, what: &str, max: u32) -> Result<u32, UsageError> {
    match parse_int(s) {
        Some(n) if (0..=i128::from(max)).contains(&n) => Ok(n as u32),
        _ => Err(usage_err(format!("Invalid {what} '{s}'"))),
    }
}

/// Parses the arguments after the command name.
pub fn parse(def: &'static CmdDef, args: &[String]) -> Result<Parsed, UsageError> {
    let mut p = Parsed {
        def,
        objname: String::new(),
        ctx: Ctx::default(),
        minor: MINOR_NONE,
        flags: 0,
        all: false,
        values: vec![Vec::new(); def.sets.len()],
        extra: Vec::new(),
        extra_values: Vec::new(),
    };
    let mut positionals: Vec<&str> = Vec::new();
    let mut i = 0;
    let mut only_pos = false;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        if only_pos || !a.starts_with('-') || a == "-" {
            positionals.push(a);
            continue;
        }
        if a == "--" {
            only_pos = true;
            continue;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            if let Some(x) = def.extra.iter().find(|x| x.name == name) {
                if x.value {
                    let v = match inline {
                        Some(v) => v.to_string(),
                        None => {
                            let v = args.get(i).ok_or_else(|| UsageError {
                                msg: format!(
                                    "{}: option '--{name}' requires an argument",
                                    def.name
                                ),
                                show_usage: true,
                            })?;
                            i += 1;
                            v.clone()
                        }
                    };
                    p.extra_values.push((x.name, v));
                } else if let Some(v) = inline {
                    // A flag written as drbdadm passes it: --wait-after-sb=yes|no.
                    match v {
                        "yes" => {}
                        "no" => continue,
                        _ => {
                            return Err(UsageError {
                                msg: format!("{}: --{name}: {v} is not yes or no", def.name),
                                show_usage: true,
                            })
                        }
                    }
                }
                p.extra.push(x.name);
                continue;
            }
            if name == "set-defaults" && def.set_defaults {
                p.flags |= hdr_flags::SET_DEFAULTS;
                continue;
            }
            let name = match (def.name, name) {
                ("primary", "overwrite-data-of-peer") => "force",
                ("connect", "dry-run") => "tentative",
                (_, n) => n,
            };
            let found = def
                .sets
                .iter()
                .enumerate()
                .find_map(|(si, s)| s.member_by_option(name).map(|m| (si, m)));
            let Some((si, m)) = found else {
                return Err(UsageError {
                    msg: format!("{}: unrecognized option '--{name}'", def.name),
                    show_usage: true,
                });
            };
            let value = if m.ty == AttrType::Flag {
                match inline {
                    Some(v) => parse_member_value(m, name, v)?,
                    None => Value::Flag(true),
                }
            } else {
                let v = match inline {
                    Some(v) => v.to_string(),
                    None => {
                        let v = args.get(i).ok_or_else(|| UsageError {
                            msg: format!("{}: option '--{name}' requires an argument", def.name),
                            show_usage: true,
                        })?;
                        i += 1;
                        v.clone()
                    }
                };
                parse_member_value(m, name, &v)?
            };
            if let Some(vals) = p.values.get_mut(si) {
                vals.retain(|(mm, _)| mm.nr != m.nr);
                vals.push((m, value));
            }
            continue;
        }
        // Short options: only the extras have them.
        for ch in a[1..].chars() {
            match def.extra.iter().find(|x| x.short == Some(ch)) {
                Some(x) => p.extra.push(x.name),
                None => {
                    return Err(UsageError {
                        msg: format!("{}: invalid option -- '{ch}'", def.name),
                        show_usage: true,
                    })
                }
            }
        }
    }
    let required = def.pos.len() - def.optional;
    if positionals.len() < required {
        return Err(UsageError {
            msg: format!("Missing argument {}", positionals.len() + 1),
            show_usage: true,
        });
    }
    if positionals.len() > def.pos.len() {
        return Err(UsageError {
            msg: format!(
                "Excess arguments: {}",
                positionals[def.pos.len()..].join(" ")
            ),
            show_usage: true,
        });
    }
    if positionals.is_empty() {
        p.all = true;
        p.objname = "all".into();
    }
    let set_idx = |s: &AttrSet| def.sets.iter().position(|x| x.tla == s.tla);
    let push = |p: &mut Parsed, set: &AttrSet, nr: u16, v: Value| {
        if let (Some(si), Some(m)) = (set_idx(set), set.member(nr)) {
            if let Some(vals) = p.values.get_mut(si) {
                vals.retain(|(mm, _)| mm.nr != nr);
                vals.insert(0, (m, v));
            }
        }
    };
    for (kind, arg) in def.pos.iter().zip(positionals.iter().copied()) {
        if p.objname.is_empty() && matches!(kind, Pos::Resource | Pos::ResourceOrAll | Pos::Minor) {
            p.objname = arg.to_string();
        }
        match kind {
            Pos::Resource => p.ctx.resource = Some(arg.to_string()),
            Pos::ResourceOrAll => {
                if arg == "all" {
                    p.all = true;
                } else {
                    p.ctx.resource = Some(arg.to_string());
                }
            }
            Pos::Minor => {
                p.minor = parse_minor(arg).ok_or_else(|| {
                    usage_err(format!(
                        "Cannot determine minor device number of device '{arg}'"
                    ))
                })?;
            }
            Pos::Volume => p.ctx.volume = Some(parse_u32_arg(arg, "volume", VOLUME_MAX)?),
            Pos::NodeId => {
                let id = parse_u32_arg(arg, "node-id", NODE_ID_MAX)?;
                push(&mut p, &res_opts::SET, res_opts::NODE_ID, Value::U32(id));
            }
            Pos::PeerNodeId => {
                p.ctx.peer_node_id = Some(parse_u32_arg(arg, "peer node-id", NODE_ID_MAX)?)
            }
            Pos::LowerDev => push(
                &mut p,
                &disk_conf::SET,
                disk_conf::BACKING_DEV,
                Value::Str(arg.to_string()),
            ),
            Pos::MetaDev => push(
                &mut p,
                &disk_conf::SET,
                disk_conf::META_DEV,
                Value::Str(arg.to_string()),
            ),
            Pos::MetaIdx => {
                let idx = match arg {
                    "internal" => MD_INDEX_FLEX_INT,
                    "flexible" | "flex-external" => MD_INDEX_FLEX_EXT,
                    other => match parse_int(other) {
                        Some(n) if (0..=i128::from(i32::MAX)).contains(&n) => n as i32,
                        _ => return Err(usage_err(format!("Invalid meta-data index '{other}'"))),
                    },
                };
                push(
                    &mut p,
                    &disk_conf::SET,
                    disk_conf::META_DEV_IDX,
                    Value::S32(idx),
                );
            }
            Pos::LocalAddr => push(
                &mut p,
                &path_parms::SET,
                path_parms::MY_ADDR,
                Value::Bytes(parse_address(arg)?),
            ),
            Pos::PeerAddr => push(
                &mut p,
                &path_parms::SET,
                path_parms::PEER_ADDR,
                Value::Bytes(parse_address(arg)?),
            ),
            Pos::NewName => push(
                &mut p,
                &rename_resource_parms::SET,
                rename_resource_parms::NEW_RESOURCE_NAME,
                Value::Str(arg.to_string()),
            ),
            Pos::ForgetNodeId => {
                let id = parse_u32_arg(arg, "peer node-id", NODE_ID_MAX)?;
                push(
                    &mut p,
                    &forget_peer_parms::SET,
                    forget_peer_parms::FORGET_PEER_NODE_ID,
                    Value::S32(id as i32),
                );
            }
        }
    }
    Ok(p)
}

/// Usage text of one command.
pub fn usage(def: &CmdDef) -> String {
    let mut s = format!("USAGE: drbdsetup {}", def.name);
    let required = def.pos.len() - def.optional;
    for (i, p) in def.pos.iter().enumerate() {
        if i < required {
            s.push_str(&format!(" {{{}}}", p.usage()));
        } else {
            s.push_str(&format!(" [{{{}}}]", p.usage()));
        }
    }
    s.push('\n');
    let mut opts: Vec<String> = Vec::new();
    for set in def.sets {
        for m in set.members {
            let Some(o) = m.option else { continue };
            let t = match m.ty {
                AttrType::Flag => format!("--{o}[={{yes|no}}]"),
                AttrType::String => format!("--{o}=<str>"),
                _ => match m.values {
                    Some(v) if m.min.is_none() => format!(
                        "--{o}={{{}}}",
                        v.iter().map(|e| e.name).collect::<Vec<_>>().join("|")
                    ),
                    _ => {
                        let unit = match m.scale {
                            b'k' => " (KiB)",
                            b's' => " (sectors)",
                            _ => "",
                        };
                        match (m.min, m.max) {
                            (Some(a), Some(b)) => format!("--{o}=({a} ... {b}){unit}"),
                            _ => format!("--{o}=<num>{unit}"),
                        }
                    }
                },
            };
            opts.push(t);
        }
    }
    if def.set_defaults {
        opts.push("--set-defaults".into());
    }
    for x in def.extra {
        let val = if x.value { " {val}" } else { "" };
        match x.short {
            Some(c) => opts.push(format!("--{}{val} (-{c})", x.name)),
            None => opts.push(format!("--{}{val}", x.name)),
        }
    }
    for o in opts {
        s.push_str(&format!("                [{o}]\n"));
    }
    s.push_str(&format!("\n{}\n", def.summary));
    s
}

/// Text of `drbdsetup --help`.
pub fn general_usage() -> String {
    let mut s = String::from("\nUSAGE: drbdsetup command {arguments} [options]\n\nCommands:\n");
    for c in COMMANDS {
        s.push_str(&format!("    {:<24}- {}\n", c.name, c.summary));
    }
    s.push_str("\nUse 'drbdsetup help command' for command-specific help.\n\n");
    s
}
