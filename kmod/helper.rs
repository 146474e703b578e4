//! User-mode helpers ("handlers"), as DRBD runs them: `<usermode_helper> <handler> <resource>`
//! (module parameter `usermode_helper`, default `/sbin/drbdadm`, `disabled` switches them off)
//! with DRBD's environment, announced by an events2 `call helper` line before and a
//! `response helper … status:N` line after.
//!
//! Context: process context only, and with no lock held, because the helper may call back into
//! netlink (`drbdsetup status`, `drbdadm outdate`): every caller is a link, receiver or resync
//! thread between packets, or a netlink request. The program runs from a thread of its own
//! (`drbd_h_<resource>`): a caller that is told to stop (or interrupted) while it waits gives
//! up waiting, so a configuration request that joins it cannot wait for a helper that in turn
//! waits for that request. The environment is built from short-lived snapshots under the usual
//! lock order (`Resource::state`, then each device's or connection's own lock, one at a time).

use crate::connection::Connection;
use crate::device::Device;
use crate::events::{self, HelperObject};
use crate::name::Name;
use crate::proto::helper::Helper;
use crate::resource::Resource;
use crate::spec::generated::{notify, DiskState};
use crate::sys::thread::KThread;
use crate::sys::umh;
use kernel::fmt;
use kernel::prelude::*;
use kernel::str::{CStr, CString};
use kernel::sync::{Arc, CondVar, SpinLock};
use kernel::{new_condvar, new_spinlock};

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
    let (Ok(handler), Ok(res), Ok(path)) = (
        CString::try_from_fmt(fmt!("{}", h.name())),
        CString::try_from_fmt(fmt!("{}", resource.name)),
        CString::try_from(path),
    ) else {
        return -(kernel::bindings::ENOMEM as i32);
    };
    let shown = core::str::from_utf8(path_bytes).unwrap_or("?");
    pr_info!(
        "{}: helper command: {} {} {}\n",
        resource.name,
        shown,
        h.name(),
        resource.name
    );
    events::helper(&obj, h.name(), notify::CALL, 0);
    let call = Call {
        argv: [path, handler, res],
        env,
        resource: resource.name.clone(),
        peer: conn.zip(conn_name).map(|(c, n)| (c.peer_node_id, n)),
        volume: dev.map(|d| d.volume),
        helper: h,
    };
    match run_in_thread(call) {
        Ok(status) => status,
        Err(e) if e == EINTR => {
            pr_warn!(
                "{}: stopped waiting for helper {} (still running); its exit code will be ignored\n",
                resource.name,
                h.name()
            );
            ABANDONED
        }
        Err(e) => e.to_errno(),
    }
}

/// What a helper call returns when its caller stopped waiting (`-EINTR`).
pub(crate) const ABANDONED: i32 = -(kernel::bindings::EINTR as i32);

/// One helper call, owned by the thread that runs it (it may outlive its caller).
struct Call {
    /// Program, handler name, resource name.
    argv: [CString; 3],
    env: KVec<CString>,
    resource: Name,
    peer: Option<(u32, Name)>,
    volume: Option<u32>,
    helper: Helper,
}

impl Call {
    /// Runs the program and waits for its exit (helper thread); logs and announces the result.
    fn run(&self) -> i32 {
        let mut envp: KVec<&CStr> = KVec::new();
        for e in self.env.iter() {
            if envp.push(e, GFP_KERNEL).is_err() {
                return -(kernel::bindings::ENOMEM as i32);
            }
        }
        let [path, handler, res] = &self.argv;
        let status = umh::run(path, &[path, handler, res], &envp);
        pr_info!(
            "{}: helper command: {} {} {} exit code {} (status {})\n",
            self.resource,
            path.to_str().unwrap_or("?"),
            self.helper.name(),
            self.resource,
            crate::proto::helper::exit_code(status).map_or(-1, i32::from),
            status
        );
        let obj = HelperObject {
            resource: self.resource.as_str(),
            peer: self.peer.as_ref().map(|(id, n)| (*id, n.as_str())),
            volume: self.volume,
        };
        events::helper(&obj, self.helper.name(), notify::RESPONSE, status);
        status
    }
}

/// The exit status of a helper run, shared by its thread and its caller.
///
/// Locking: `status` is a spinlock held only to read or set it; `done` wakes the caller.
/// Lifetime: one reference in the helper thread, one in the caller (or, once the caller gave
/// up waiting, in [`Abandoned`]).
#[pin_data]
struct HelperRun {
    #[pin]
    status: SpinLock<Option<i32>>,
    #[pin]
    done: CondVar,
}

/// A helper thread whose caller stopped waiting; joined when a later one takes its slot after
/// it finished, or at module exit.
pub(crate) struct Abandoned {
    run: Arc<HelperRun>,
    /// Dropped last: joining waits for the thread.
    _thread: KThread,
}

/// How often a waiting caller looks whether it should give up (ms); a stop request or a
/// signal also wakes it at once.
const GIVE_UP_POLL_MS: u32 = 100;

/// Runs `call` in its own thread and waits for its exit status. A caller that is asked to
/// stop meanwhile (a link, receiver or worker thread that `down`, `disconnect` or `detach`
/// joins while holding the configuration lock, which the helper's own `drbdsetup` call may
/// need) or that gets a signal (a netlink request whose program was interrupted) stops
/// waiting and gets `EINTR`; the helper thread finishes on its own, its exit status is then
/// only logged.
fn run_in_thread(call: Call) -> Result<i32> {
    let run = Arc::pin_init(
        pin_init!(HelperRun {
            status <- new_spinlock!(None, "HelperRun::status"),
            done <- new_condvar!("HelperRun::done"),
        }),
        GFP_KERNEL,
    )?;
    let shared = run.clone();
    let name = CString::try_from_fmt(fmt!("drbd_h_{}", call.resource))?;
    let thread = KThread::spawn(&name, move || {
        let status = call.run();
        *shared.status.lock() = Some(status);
        shared.done.notify_all();
    })?;
    let tick = kernel::time::msecs_to_jiffies(GIVE_UP_POLL_MS);
    loop {
        let mut status = run.status.lock();
        if let Some(s) = *status {
            drop(status);
            // The thread is past its last use of `run`; joining it is quick.
            drop(thread);
            return Ok(s);
        }
        if crate::sys::thread::stop_requested() {
            drop(status);
            abandon(Abandoned {
                run,
                _thread: thread,
            });
            return Err(EINTR);
        }
        let _ = run.done.wait_interruptible_timeout(&mut status, tick);
    }
}

/// Keeps an abandoned helper thread for a later join, in a free slot or in the slot of one
/// that finished (joined here, outside the lock).
fn abandon(a: Abandoned) {
    let Some(registry) = crate::REGISTRY.get() else {
        return;
    };
    let mut list = registry.abandoned_helpers.lock();
    let reusable = list
        .iter()
        .position(|s| s.as_ref().map_or(true, |x| x.run.status.lock().is_some()));
    let replaced = if let Some(slot) = reusable.and_then(|i| list.get_mut(i)) {
        slot.replace(a)
    } else if list.reserve(1, GFP_KERNEL).is_ok() {
        let _ = list.push(Some(a), GFP_KERNEL);
        None
    } else {
        // No room to keep it: wait for it here.
        Some(a)
    };
    drop(list);
    drop(replaced);
}

/// Joins every abandoned helper thread (module exit; waits for their programs to exit).
pub(crate) fn join_abandoned(registry: &crate::registry::Registry) {
    let all = core::mem::take(&mut *registry.abandoned_helpers.lock());
    drop(all);
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
