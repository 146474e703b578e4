//! User-mode helpers ("handlers"), as DRBD runs them: `<usermode_helper> <handler> <resource>`
//! (module parameter `usermode_helper`, default `/sbin/drbdadm`, `disabled` switches them off)
//! with DRBD's environment, announced by an events2 `call helper` line before and a
//! `response helper … status:N` line after.
//!
//! Context: process context only, and with no lock held, because the helper may call back into
//! netlink (`drbdsetup status`, `drbdadm outdate`): every caller is a link, receiver or resync
//! thread between packets. The environment is built from short-lived snapshots under the usual
//! lock order (`Resource::state`, then each device's or connection's own lock, one at a time).

use crate::connection::Connection;
use crate::device::Device;
use crate::events::{self, HelperObject};
use crate::name::Name;
use crate::proto::helper::Helper;
use crate::resource::Resource;
use crate::spec::generated::{notify, DiskState};
use crate::sys::umh;
use kernel::fmt;
use kernel::prelude::*;
use kernel::str::{CStr, CString};
use kernel::sync::Arc;

/// The fixed part of the environment (DRBD's values).
const BASE_ENV: [&str; 3] = ["HOME=/", "TERM=linux", "PATH=/sbin:/usr/sbin:/bin:/usr/bin"];

/// Runs a peer-device helper (split brain, resync): device and connection variables.
/// Returns the raw wait status (0 when helpers are disabled).
pub(crate) fn call_peer_device(conn: &Connection, dev: &Device, helper: Helper) -> i32 {
    call(&conn.resource, Some(conn), Some(dev), helper)
}

/// Runs a device helper (`local-io-error`): device variables only.
pub(crate) fn call_device(dev: &Device, helper: Helper) -> i32 {
    call(&dev.resource, None, Some(dev), helper)
}

/// Runs a connection helper (fence-peer, unfence-peer): connection variables plus every
/// volume as `DRBD_MINOR_<vnr>`/`DRBD_BACKING_DEV_<vnr>`.
pub(crate) fn call_connection(conn: &Connection, helper: Helper) -> i32 {
    call(&conn.resource, Some(conn), None, helper)
}

fn call(resource: &Resource, conn: Option<&Connection>, dev: Option<&Device>, h: Helper) -> i32 {
    let mut path_buf = [0u8; umh::HELPER_PATH_MAX];
    let len = umh::helper_path(&mut path_buf);
    let path_bytes = path_buf.get(..len).unwrap_or(&[]);
    if len == 0 || path_bytes == b"disabled" {
        return 0;
    }
    let Ok(path) = CStr::from_bytes_with_nul(path_buf.get(..=len).unwrap_or(&[])) else {
        return 0;
    };
    let conn_name: Option<Name> = conn.map(|c| c.state.lock().name.clone());
    let obj = HelperObject {
        resource: resource.name.as_str(),
        peer: conn
            .zip(conn_name.as_ref())
            .map(|(c, n)| (c.peer_node_id, n.as_str())),
        volume: dev.map(|d| d.volume),
    };
    let env = match environment(resource, conn, dev, h) {
        Ok(env) => env,
        Err(_) => {
            pr_warn!(
                "{}: helper {} not run: out of memory\n",
                resource.name,
                h.name()
            );
            return -(kernel::bindings::ENOMEM as i32);
        }
    };
    let (Ok(handler), Ok(res)) = (
        CString::try_from_fmt(fmt!("{}", h.name())),
        CString::try_from_fmt(fmt!("{}", resource.name)),
    ) else {
        return -(kernel::bindings::ENOMEM as i32);
    };
    let mut envp: KVec<&CStr> = KVec::new();
    for e in env.iter() {
        if envp.push(e, GFP_KERNEL).is_err() {
            return -(kernel::bindings::ENOMEM as i32);
        }
    }
    let shown = core::str::from_utf8(path_bytes).unwrap_or("?");
    pr_info!(
        "{}: helper command: {} {} {}\n",
        resource.name,
        shown,
        h.name(),
        resource.name
    );
    events::helper(&obj, h.name(), notify::CALL, 0);
    let status = umh::run(path, &[path, &handler, &res], &envp);
    pr_info!(
        "{}: helper command: {} {} {} exit code {} (status {})\n",
        resource.name,
        shown,
        h.name(),
        resource.name,
        crate::proto::helper::exit_code(status).map_or(-1, i32::from),
        status
    );
    events::helper(&obj, h.name(), notify::RESPONSE, status);
    status
}

/// One `KEY=value` string.
fn var(args: core::fmt::Arguments<'_>) -> Result<CString> {
    CString::try_from_fmt(args)
}

/// DRBD's helper environment for this call.
fn environment(
    resource: &Resource,
    conn: Option<&Connection>,
    dev: Option<&Device>,
    h: Helper,
) -> Result<KVec<CString>> {
    let mut env = KVec::new();
    for e in BASE_ENV {
        env.push(var(fmt!("{}", e))?, GFP_KERNEL)?;
    }
    if let Some(d) = dev {
        env.push(var(fmt!("DRBD_MINOR={}", d.minor))?, GFP_KERNEL)?;
        env.push(var(fmt!("DRBD_VOLUME={}", d.volume))?, GFP_KERNEL)?;
        let st = d.state.lock();
        let backing = st.backing.as_ref().map_or("none", |b| b.backing_path());
        env.push(var(fmt!("DRBD_BACKING_DEV={}", backing))?, GFP_KERNEL)?;
    }
    let (devices, conns) = {
        let rs = resource.state.lock();
        let mut devices: KVec<Arc<Device>> = KVec::new();
        for d in rs.devices() {
            devices.push(d.clone(), GFP_KERNEL)?;
        }
        let mut conns: KVec<Arc<Connection>> = KVec::new();
        for c in rs.connections() {
            conns.push(c.clone(), GFP_KERNEL)?;
        }
        (devices, conns)
    };
    if let Some(c) = conn {
        let (path, cstate) = {
            let st = c.state.lock();
            (st.path, st.cstate)
        };
        if let Some(p) = path {
            let [a, b, cc, dd] = p.local.ip;
            env.push(
                var(fmt!("DRBD_MY_ADDRESS={}.{}.{}.{}", a, b, cc, dd))?,
                GFP_KERNEL,
            )?;
            env.push(var(fmt!("DRBD_MY_AF=ipv4"))?, GFP_KERNEL)?;
            let [a, b, cc, dd] = p.peer.ip;
            env.push(
                var(fmt!("DRBD_PEER_ADDRESS={}.{}.{}.{}", a, b, cc, dd))?,
                GFP_KERNEL,
            )?;
            env.push(var(fmt!("DRBD_PEER_AF=ipv4"))?, GFP_KERNEL)?;
        }
        env.push(
            var(fmt!("DRBD_PEER_NODE_ID={}", c.peer_node_id))?,
            GFP_KERNEL,
        )?;
        env.push(var(fmt!("DRBD_CSTATE={}", cstate.name()))?, GFP_KERNEL)?;
        if dev.is_none() {
            for d in devices.iter() {
                env.push(
                    var(fmt!("DRBD_MINOR_{}={}", d.volume, d.minor))?,
                    GFP_KERNEL,
                )?;
                let st = d.state.lock();
                let backing = st.backing.as_ref().map_or("none", |b| b.backing_path());
                env.push(
                    var(fmt!("DRBD_BACKING_DEV_{}={}", d.volume, backing))?,
                    GFP_KERNEL,
                )?;
            }
        }
    }
    if h.is_fencing() {
        let mask = up_to_date_nodes(resource, &devices, &conns);
        let mut buf = [0u8; 10];
        let hex = crate::proto::helper::up_to_date_nodes_hex(mask, &mut buf);
        env.push(var(fmt!("UP_TO_DATE_NODES={}", hex))?, GFP_KERNEL)?;
    }
    Ok(env)
}

/// One bit per node id whose every volume is UpToDate as far as this node knows.
fn up_to_date_nodes(
    resource: &Resource,
    devices: &[Arc<Device>],
    conns: &[Arc<Connection>],
) -> u32 {
    let bit = |id: u32| 1u32.checked_shl(id).unwrap_or(0);
    let mut mask = 0;
    if !devices.is_empty()
        && devices
            .iter()
            .all(|d| d.state.lock().disk_state == DiskState::UpToDate)
    {
        mask |= bit(resource.node_id);
    }
    for c in conns {
        let st = c.state.lock();
        if !st.peers.is_empty() && st.peers.iter().all(|p| p.peer_disk == DiskState::UpToDate) {
            mask |= bit(c.peer_node_id);
        }
    }
    mask
}

/// The connection's `fencing` policy is not `dont-care`.
fn fencing_configured(conn: &Connection) -> bool {
    use crate::spec::generated::net_conf;
    conn.state
        .lock()
        .net_conf
        .u32(net_conf::FENCING_POLICY)
        .unwrap_or(0)
        != 0
}

/// The peer's disk went from Inconsistent to UpToDate (its resync finished): a Primary with
/// fencing configured (the node that fences) lifts the fence with `unfence-peer`.
pub(crate) fn unfence_peer_after_resync(conn: &Connection) {
    use crate::spec::generated::Role;
    if conn.resource.state.lock().role == Role::Primary && fencing_configured(conn) {
        call_connection(conn, Helper::UnfencePeer);
    }
}
