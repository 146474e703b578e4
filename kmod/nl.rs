//! Configuration requests (`doit`): parse DRBD's attribute sets, call the configuration
//! step, reply with DRBD's return code and an info text. Malformed input never reaches the
//! configuration code: it is answered with `ERR_INVALID_REQUEST` and a description.

use crate::backing::AttachRequest;
use crate::config;
use crate::connection::{AuthConf, NetOptions, Path};
use crate::failure::{fail, Failure, Outcome};
use crate::msg;
use crate::options::OptionSet;
use crate::proto::uuid::AfterSbPolicy;
use crate::resource::ResourceOptions;
use crate::spec::generated::{
    self, cfg_context, cmd, connect_parms, detach_parms, disk_conf, hdr_flags, net_conf,
    new_c_uuid_parms, path_parms, res_opts, resize_parms, ret, set_role_parms, ss, start_ov_parms,
    tla,
};
use crate::spec::nla::{self, Attr, NlaError, NlaWriter};
use crate::sys::genl::{DoContext, Request};
use crate::sys::socket::Ipv4Addr;
use kernel::prelude::*;

/// Longest path DRBD accepts for backing and meta-data devices.
const PATH_MAX: usize = 128;

fn malformed(what: &str, e: NlaError) -> Failure {
    fail!(ret::ERR_INVALID_REQUEST, "malformed {}: {}", what, e.text())
}

/// The members of one top-level attribute set.
fn members<'a>(attrs: &'a [u8], set: u16, set_name: &str) -> Outcome<Option<&'a [u8]>> {
    let found = nla::find(attrs, set).map_err(|e| malformed("request", e))?;
    match found {
        Some(a) => {
            nla::validate(a.payload).map_err(|e| malformed(set_name, e))?;
            reject_unknown_mandatory(a.payload, set, set_name)?;
            Ok(Some(a.payload))
        }
        None => Ok(None),
    }
}

/// DRBD's rule: a member flagged mandatory that this kernel does not know must not be ignored.
fn reject_unknown_mandatory(members: &[u8], set: u16, set_name: &str) -> Outcome {
    let spec = generated::set_by_tla(set);
    for attr in nla::iter(members) {
        let attr = attr.map_err(|e| malformed(set_name, e))?;
        if attr.mandatory && spec.and_then(|s| s.member(attr.kind)).is_none() {
            return Err(fail!(
                ret::ERR_MANDATORY_TAG,
                "unknown mandatory attribute {} in {}",
                attr.kind,
                set_name
            ));
        }
    }
    Ok(())
}

fn member<'a>(set: &'a [u8], nr: u16) -> Outcome<Option<Attr<'a>>> {
    nla::find(set, nr).map_err(|e| malformed("attribute", e))
}

fn get<'a, T>(
    set: &'a [u8],
    nr: u16,
    what: &str,
    conv: impl FnOnce(&Attr<'a>) -> Result<T, NlaError>,
) -> Outcome<Option<T>> {
    match member(set, nr)? {
        Some(a) => conv(&a).map(Some).map_err(|e| malformed(what, e)),
        None => Ok(None),
    }
}

/// `DRBD_NLA_CFG_CONTEXT` of a request.
#[derive(Default)]
pub(crate) struct Ctx<'a> {
    /// `ctx_resource_name`.
    pub(crate) resource_name: Option<&'a str>,
    /// `ctx_volume`.
    pub(crate) volume: Option<u32>,
    /// `ctx_peer_node_id`.
    pub(crate) peer_node_id: Option<u32>,
}

impl<'a> Ctx<'a> {
    /// Parses the context set (absent = empty context).
    pub(crate) fn parse(attrs: &'a [u8]) -> Outcome<Self> {
        let Some(set) = members(attrs, tla::CFG_CONTEXT, "context")? else {
            return Ok(Self::default());
        };
        Ok(Self {
            resource_name: get(set, cfg_context::CTX_RESOURCE_NAME, "resource name", |a| {
                a.as_str(128)
            })?,
            volume: get(set, cfg_context::CTX_VOLUME, "volume", |a| a.as_u32())?,
            peer_node_id: get(set, cfg_context::CTX_PEER_NODE_ID, "peer node-id", |a| {
                a.as_u32()
            })?,
        })
    }

    fn peer(&self) -> Outcome<u32> {
        self.peer_node_id
            .ok_or_else(|| fail!(ret::ERR_MANDATORY_TAG, "peer node-id missing"))
    }

    fn resource(&self) -> Outcome<&'a str> {
        self.resource_name
            .ok_or_else(|| fail!(ret::ERR_MANDATORY_TAG, "resource name missing"))
    }
}

/// Entry point for every configuration command.
pub(crate) fn doit(ctx: &DoContext) -> i32 {
    let Some(req) = ctx.request() else {
        return EINVAL.to_errno();
    };
    if !ctx.capable_sys_admin() {
        return EPERM.to_errno();
    }
    // Set by `GET_TIMEOUT_TYPE`, the one query answered with data here.
    let mut timeout_type = None;
    let outcome = match crate::REGISTRY.get() {
        Some(registry) => {
            let _admin = registry.admin.lock();
            outside_config_lock(registry, &req).and_then(|()| {
                let mut reg = registry.inner.lock();
                if req.cmd == cmd::ADM_GET_TIMEOUT_TYPE {
                    let c = Ctx::parse(req.attrs)?;
                    let t = crate::wfc::timeout_type(&reg, c.resource()?, c.peer()?, c.volume)?;
                    timeout_type = Some(t);
                    return Ok(ret::NO_ERROR);
                }
                dispatch(&mut reg, &req)
            })
        }
        None => Err(fail!(ret::ERR_INVALID_REQUEST, "module is unloading")),
    };
    let (code, failure) = match outcome {
        Ok(code) => (code, None),
        Err(f) => {
            pr_info!(
                "request {} failed: ({}) {} {}\n",
                req.cmd,
                f.code,
                f.text(),
                f.info()
            );
            (f.code, Some(f))
        }
    };
    let mut buf = [0u8; 512];
    let mut w = NlaWriter::new(&mut buf);
    if let Some(f) = failure.as_ref().filter(|f| !f.info().is_empty()) {
        let _ = msg::reply_info(&mut w, f.info());
    }
    if let Some(t) = timeout_type {
        let _ = msg::timeout_parms(&mut w, t);
    }
    let minor = if req.minor == crate::spec::generated::MINOR_NONE {
        None
    } else {
        Some(req.minor)
    };
    match ctx.reply(req.cmd, &msg::header(minor, code), w.as_bytes()) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Work done before `dispatch` takes `Registry::inner`, because a usermode helper may be
/// involved that itself asks the module for its status (which needs `inner`): `disconnect`,
/// `del-peer` and `down` stop the connection threads (one may be waiting for a helper), and
/// `primary` runs `fence-peer` for unreachable peers. Unknown names are left for `dispatch`
/// to report.
fn outside_config_lock(registry: &crate::registry::Registry, req: &Request<'_>) -> Outcome {
    if req.cmd == cmd::ADM_PRIMARY {
        return fence_before_primary(registry, req);
    }
    if !matches!(
        req.cmd,
        cmd::ADM_DISCONNECT | cmd::ADM_DEL_PEER | cmd::ADM_DOWN
    ) {
        return Ok(());
    }
    let c = Ctx::parse(req.attrs)?;
    let Some(res) = registry.inner.lock().resource(c.resource()?).cloned() else {
        return Ok(());
    };
    if req.cmd == cmd::ADM_DOWN {
        return config::stop_for_down(&res);
    }
    let conn = res.state.lock().connection(c.peer()?).cloned();
    if let Some(conn) = conn {
        conn.stop();
    }
    Ok(())
}

/// `primary`: an unreachable peer is fenced first, with `Registry::inner` free for the
/// helper's own queries; `dispatch` then promotes.
fn fence_before_primary(registry: &crate::registry::Registry, req: &Request<'_>) -> Outcome {
    let c = Ctx::parse(req.attrs)?;
    let Some(res) = registry.inner.lock().resource(c.resource()?).cloned() else {
        return Ok(());
    };
    crate::fence::before_promotion(&res, role_force(req.attrs)?)
}

/// The `--force` flag of `primary`.
fn role_force(attrs: &[u8]) -> Outcome<bool> {
    Ok(
        match members(attrs, tla::SET_ROLE_PARMS, "role parameters")? {
            Some(s) => get(s, set_role_parms::FORCE, "force", |a| a.as_flag())?.unwrap_or(false),
            None => false,
        },
    )
}

fn dispatch(reg: &mut crate::registry::RegistryInner, req: &Request<'_>) -> Outcome<i32> {
    let attrs = req.attrs;
    let c = Ctx::parse(attrs)?;
    match req.cmd {
        cmd::ADM_NEW_RESOURCE => {
            let set = members(attrs, tla::RESOURCE_OPTS, "resource options")?;
            let node_id = match set {
                Some(s) => get(s, res_opts::NODE_ID, "node-id", |a| a.as_u32())?,
                None => None,
            };
            let node_id = node_id.ok_or_else(|| {
                fail!(
                    ret::ERR_INVALID_REQUEST,
                    "node-id missing (drbd 8 compatibility mode is not supported)"
                )
            })?;
            let opts = resource_options(set, ResourceOptions::default())?;
            config::new_resource(reg, c.resource()?, node_id, opts).map(|()| ret::NO_ERROR)
        }
        cmd::ADM_RESOURCE_OPTS => {
            let set = members(attrs, tla::RESOURCE_OPTS, "resource options")?;
            config::resource_options(reg, c.resource()?, |old| resource_options(set, old))
                .map(|()| ret::NO_ERROR)
        }
        cmd::ADM_DEL_RESOURCE => config::del_resource(reg, c.resource()?).map(|()| ret::NO_ERROR),
        cmd::ADM_NEW_MINOR => {
            let volume = c
                .volume
                .ok_or_else(|| fail!(ret::ERR_INVALID_REQUEST, "volume number missing"))?;
            config::new_minor(reg, c.resource()?, req.minor, volume).map(|()| ret::NO_ERROR)
        }
        cmd::ADM_DEL_MINOR => config::del_minor(reg, req.minor).map(|()| ret::NO_ERROR),
        cmd::ADM_ATTACH => {
            let set = members(attrs, tla::DISK_CONF, "disk configuration")?
                .ok_or_else(|| fail!(ret::ERR_MANDATORY_TAG, "disk configuration missing"))?;
            let backing_dev = get(set, disk_conf::BACKING_DEV, "backing device", |a| {
                a.as_str(PATH_MAX)
            })?
            .ok_or_else(|| fail!(ret::ERR_MANDATORY_TAG, "backing device missing"))?;
            let meta_dev = get(set, disk_conf::META_DEV, "meta-data device", |a| {
                a.as_str(PATH_MAX)
            })?
            .ok_or_else(|| fail!(ret::ERR_MANDATORY_TAG, "meta-data device missing"))?;
            let meta_dev_idx = get(set, disk_conf::META_DEV_IDX, "meta-data index", |a| {
                a.as_i32()
            })?
            .ok_or_else(|| fail!(ret::ERR_MANDATORY_TAG, "meta-data index missing"))?;
            let disk_size =
                get(set, disk_conf::DISK_SIZE, "disk size", |a| a.as_u64())?.unwrap_or(0);
            let request = AttachRequest {
                disk_size,
                backing_dev,
                meta_dev,
                meta_dev_idx,
            };
            let conf = crate::backing::disk_conf_store().applied(Some(set), true)?;
            config::attach(reg, req.minor, &request, conf).map(|()| ret::NO_ERROR)
        }
        cmd::ADM_CHG_DISK_OPTS => {
            let set = members(attrs, tla::DISK_CONF, "disk options")?;
            let reset = req.flags & hdr_flags::SET_DEFAULTS != 0;
            config::change_disk_options(reg, req.minor, |old| old.applied(set, reset))
                .map(|()| ret::NO_ERROR)
        }
        cmd::ADM_DETACH => {
            let force = match members(attrs, tla::DETACH_PARMS, "detach parameters")? {
                Some(s) => {
                    get(s, detach_parms::FORCE_DETACH, "force", |a| a.as_flag())?.unwrap_or(false)
                }
                None => false,
            };
            config::detach(reg, req.minor, force).map(|()| ss::SUCCESS)
        }
        cmd::ADM_PRIMARY | cmd::ADM_SECONDARY => {
            let force = role_force(attrs)?;
            let name = c.resource()?;
            if req.cmd == cmd::ADM_PRIMARY {
                config::primary(reg, name, force).map(|()| ss::SUCCESS)
            } else {
                config::secondary(reg, name).map(|()| ss::SUCCESS)
            }
        }
        cmd::ADM_DOWN => config::down(reg, c.resource()?).map(|()| ret::NO_ERROR),
        cmd::ADM_NEW_PEER => {
            let set = members(attrs, tla::NET_CONF, "net options")?;
            let (name, net) = net_options(set)?;
            let conf = net_conf_store().applied(set, true)?;
            config::new_peer(reg, c.resource()?, c.peer()?, name, net, conf).map(|()| ret::NO_ERROR)
        }
        cmd::ADM_CHG_NET_OPTS => {
            let set = members(attrs, tla::NET_CONF, "net options")?;
            let reset = req.flags & hdr_flags::SET_DEFAULTS != 0;
            config::change_net_options(reg, c.resource()?, c.peer()?, |old| {
                let conf = old.applied(set, reset)?;
                let (_, net) = net_options(Some(conf.attrs()))?;
                Ok((conf, net))
            })
            .map(|()| ret::NO_ERROR)
        }
        cmd::ADM_NEW_PATH | cmd::ADM_DEL_PATH => {
            let set = members(attrs, tla::PATH_PARMS, "path")?
                .ok_or_else(|| fail!(ret::ERR_MANDATORY_TAG, "path parameters missing"))?;
            let addr = |nr, what| -> Outcome<Ipv4Addr> {
                let raw = get(set, nr, what, |a| a.as_bytes(128))?
                    .ok_or_else(|| fail!(ret::ERR_MANDATORY_TAG, "{} missing", what))?;
                Ipv4Addr::from_sockaddr(raw).ok_or_else(|| {
                    fail!(
                        ret::ERR_INVALID_REQUEST,
                        "{} is not an IPv4 address (IPv6 paths are not supported yet)",
                        what
                    )
                })
            };
            let path = Path {
                local: addr(path_parms::MY_ADDR, "local address")?,
                peer: addr(path_parms::PEER_ADDR, "peer address")?,
            };
            if req.cmd == cmd::ADM_NEW_PATH {
                config::new_path(reg, c.resource()?, c.peer()?, path).map(|()| ret::NO_ERROR)
            } else {
                config::del_path(reg, c.resource()?, c.peer()?).map(|()| ret::NO_ERROR)
            }
        }
        cmd::ADM_CONNECT => {
            let discard = match members(attrs, tla::CONNECT_PARMS, "connect parameters")? {
                Some(set) => get(
                    set,
                    connect_parms::DISCARD_MY_DATA,
                    "discard-my-data",
                    |a| a.as_flag(),
                )?
                .unwrap_or(false),
                None => false,
            };
            config::connect(reg, c.resource()?, c.peer()?, discard).map(|()| ss::SUCCESS)
        }
        cmd::ADM_INVALIDATE => config::invalidate(reg, req.minor).map(|()| ss::SUCCESS),
        cmd::ADM_INVAL_PEER => {
            let volume = c
                .volume
                .ok_or_else(|| fail!(ret::ERR_INVALID_REQUEST, "volume number missing"))?;
            config::invalidate_remote(reg, c.resource()?, c.peer()?, volume).map(|()| ss::SUCCESS)
        }
        cmd::ADM_DISCONNECT => {
            config::disconnect(reg, c.resource()?, c.peer()?).map(|()| ss::SUCCESS)
        }
        cmd::ADM_SUSPEND_IO => {
            // `--bdev-freeze` (freezing a file system on top first) is accepted and not
            // done: requests are held below any file system.
            members(attrs, tla::SUSPEND_IO_PARAMS, "suspend-io parameters")?;
            crate::admin::suspend_io(reg, req.minor)
        }
        cmd::ADM_RESUME_IO => crate::admin::resume_io(reg, req.minor),
        cmd::ADM_OUTDATE => crate::admin::outdate(reg, req.minor),
        cmd::ADM_PAUSE_SYNC | cmd::ADM_RESUME_SYNC => {
            let volume = c
                .volume
                .ok_or_else(|| fail!(ret::ERR_INVALID_REQUEST, "volume number missing"))?;
            let res = reg.resource(c.resource()?).cloned().ok_or_else(|| {
                fail!(
                    ret::ERR_RES_NOT_KNOWN,
                    "unknown resource {}",
                    c.resource().unwrap_or("")
                )
            })?;
            if req.cmd == cmd::ADM_PAUSE_SYNC {
                crate::admin::pause_sync(&res, c.peer()?, volume)
            } else {
                crate::admin::resume_sync(&res, c.peer()?, volume)
            }
        }
        cmd::ADM_NEW_C_UUID => {
            let (clear_bm, force_resync) =
                match members(attrs, tla::NEW_C_UUID_PARMS, "new-current-uuid parameters")? {
                    Some(s) => (
                        get(s, new_c_uuid_parms::CLEAR_BM, "clear-bitmap", |a| {
                            a.as_flag()
                        })?
                        .unwrap_or(false),
                        get(s, new_c_uuid_parms::FORCE_RESYNC, "force-resync", |a| {
                            a.as_flag()
                        })?
                        .unwrap_or(false),
                    ),
                    None => (false, false),
                };
            crate::admin::new_current_uuid(reg, req.minor, clear_bm, force_resync)
        }
        cmd::ADM_RESIZE => {
            let (mut size, mut assume_clean) = (0, false);
            if let Some(s) = members(attrs, tla::RESIZE_PARMS, "resize parameters")? {
                size = get(s, resize_parms::RESIZE_SIZE, "size", |a| a.as_u64())?.unwrap_or(0);
                assume_clean = get(s, resize_parms::NO_RESYNC, "assume-clean", |a| a.as_flag())?
                    .unwrap_or(false);
            }
            crate::resize::resize(reg, req.minor, size, assume_clean).map(|()| ret::NO_ERROR)
        }
        cmd::ADM_START_OV => {
            let (mut start, mut stop) = (0, u64::MAX);
            if let Some(s) = members(attrs, tla::START_OV_PARMS, "verify parameters")? {
                if let Some(v) = get(s, start_ov_parms::OV_START_SECTOR, "start", |a| a.as_u64())? {
                    start = v;
                }
                if let Some(v) = get(s, start_ov_parms::OV_STOP_SECTOR, "stop", |a| a.as_u64())? {
                    stop = v;
                }
            }
            let volume = c
                .volume
                .ok_or_else(|| fail!(ret::ERR_INVALID_REQUEST, "volume number missing"))?;
            crate::verify::start(reg, c.resource()?, c.peer()?, volume, start, stop)
                .map(|()| ss::SUCCESS)
        }
        cmd::ADM_DEL_PEER => {
            config::del_peer(reg, c.resource()?, c.peer()?).map(|()| ret::NO_ERROR)
        }
        other => Err(fail!(
            ret::ERR_INVALID_REQUEST,
            "command {} is not supported by this drbd-rs version (no replication yet)",
            other
        )),
    }
}

/// An empty store of net options (the connection name is kept by the connection itself).
pub(crate) fn net_conf_store() -> OptionSet {
    OptionSet::new(&net_conf::SET, &[net_conf::NAME])
}

fn net_options(set: Option<&[u8]>) -> Outcome<(Option<&str>, NetOptions)> {
    let mut net = NetOptions::default();
    let Some(s) = set else { return Ok((None, net)) };
    let name = get(s, net_conf::NAME, "connection name", |a| a.as_str(64))?;
    if let Some(v) = get(s, net_conf::WIRE_PROTOCOL, "protocol", |a| a.as_u32())? {
        if !(1..=3).contains(&v) {
            return Err(fail!(
                ret::ERR_INVALID_REQUEST,
                "protocol {} is not A, B or C",
                v
            ));
        }
        net.protocol = v;
    }
    if let Some(v) = get(s, net_conf::CONNECT_INT, "connect-int", |a| a.as_u32())? {
        net.connect_int_s = v.clamp(1, 120);
    }
    if let Some(v) = get(s, net_conf::PING_INT, "ping-int", |a| a.as_u32())? {
        net.ping_int_s = v.clamp(1, 120);
    }
    if let Some(v) = get(s, net_conf::PING_TIMEO, "ping-timeout", |a| a.as_u32())? {
        net.ping_timeo_ds = v.clamp(1, 300);
    }
    let policies = [
        (net_conf::AFTER_SB_0P, "after-sb-0pri"),
        (net_conf::AFTER_SB_1P, "after-sb-1pri"),
        (net_conf::AFTER_SB_2P, "after-sb-2pri"),
        (net_conf::RR_CONFLICT, "rr-conflict"),
    ];
    for (i, (nr, what)) in policies.into_iter().enumerate() {
        let Some(v) = get(s, nr, what, |a| a.as_u32())? else {
            continue;
        };
        let p = AfterSbPolicy::from_u32(v)
            .ok_or_else(|| fail!(ret::ERR_INVALID_REQUEST, "{} {} is not a policy", what, v))?;
        match net.after_sb.get_mut(i) {
            Some(slot) => *slot = p,
            None => net.rr_conflict = p,
        }
    }
    if let Some(v) = get(s, net_conf::ALWAYS_ASBP, "always-asbp", |a| a.as_flag())? {
        net.always_asbp = v;
    }
    if let Some(v) = get(s, net_conf::TIMEOUT, "timeout", |a| a.as_u32())? {
        net.timeout_ds = v.clamp(1, 600);
    }
    if let Some(v) = get(s, net_conf::KO_COUNT, "ko-count", |a| a.as_u32())? {
        net.ko_count = v.min(200);
    }
    if let Some(v) = get(s, net_conf::MAX_EPOCH_SIZE, "max-epoch-size", |a| {
        a.as_u32()
    })? {
        net.max_epoch_size = v.clamp(1, 20000);
    }
    net.auth = auth_options(s)?;
    net.verify_alg = verify_alg(s)?;
    Ok((name, net))
}

/// `cram-hmac-alg` and `shared-secret`: the algorithm must exist as a keyed hash in this
/// kernel now, so a typo fails the command instead of every later connection attempt.
fn auth_options(s: &[u8]) -> Outcome<Option<AuthConf>> {
    let alg = get(s, net_conf::CRAM_HMAC_ALG, "cram-hmac-alg", |a| {
        a.as_str(64)
    })?
    .unwrap_or("");
    if alg.is_empty() {
        return Ok(None);
    }
    let secret = get(s, net_conf::SHARED_SECRET, "shared-secret", |a| {
        a.as_str(64)
    })?
    .unwrap_or("");
    let mut hmac = crate::sys::hmac::Hmac::new(alg.as_bytes()).map_err(|_| {
        fail!(
            ret::ERR_AUTH_ALG,
            "cram-hmac-alg {}: no such keyed hash",
            alg
        )
    })?;
    hmac.set_key(secret.as_bytes()).map_err(|_| {
        fail!(
            ret::ERR_AUTH_ALG_ND,
            "cram-hmac-alg {}: cannot be keyed with the shared secret",
            alg
        )
    })?;
    AuthConf::new(alg.as_bytes(), secret.as_bytes())
        .map(Some)
        .ok_or_else(|| {
            fail!(
                ret::ERR_INVALID_REQUEST,
                "cram-hmac-alg or shared-secret too long"
            )
        })
}

/// `verify-alg`: must exist as a digest in this kernel now (as DRBD: ERR_VERIFY_ALG).
fn verify_alg(s: &[u8]) -> Outcome<Option<crate::proto::wire::AlgName>> {
    let alg = get(s, net_conf::VERIFY_ALG, "verify-alg", |a| a.as_str(64))?.unwrap_or("");
    if alg.is_empty() {
        return Ok(None);
    }
    crate::sys::digest::Digest::new(alg.as_bytes()).map_err(|_| {
        fail!(
            ret::ERR_VERIFY_ALG,
            "verify-alg {}: no such digest in this kernel",
            alg
        )
    })?;
    crate::proto::wire::AlgName::new(alg.as_bytes())
        .map(Some)
        .ok_or_else(|| fail!(ret::ERR_VERIFY_ALG, "verify-alg {} too long", alg))
}

fn resource_options(set: Option<&[u8]>, mut opts: ResourceOptions) -> Outcome<ResourceOptions> {
    if let Some(s) = set {
        if let Some(v) = get(s, res_opts::AUTO_PROMOTE, "auto-promote", |a| a.as_flag())? {
            opts.auto_promote = v;
        }
    }
    Ok(opts)
}
