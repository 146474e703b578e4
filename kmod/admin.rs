//! Administrative state changes: `suspend-io`/`resume-io`, `pause-sync`/`resume-sync`,
//! `outdate` and `new-current-uuid`, plus the receiving side of what they tell the peer.
//!
//! The rules (what is allowed when, what results) are `proto::admin`; this is the glue that
//! snapshots the states, applies the result to meta-data and memory, and announces it (events
//! and `P_UUIDS110`/`P_STATE`). Configuration requests run with the registry mutex held;
//! the peer-side handlers run in the receiver thread between packets with no lock held.

use crate::connection::{Connection, PeerDev};
use crate::device::Device;
use crate::events::{self, Kind};
use crate::failure::{fail, Outcome};
use crate::proto::admin::{self, Change, NewUuid, PeerView};
use crate::proto::{meta, state, wire};
use crate::registry::RegistryInner;
use crate::replication::{announce, announce_flags, Link};
use crate::resource::Resource;
use crate::spec::generated::{ret, ss, DiskState, ReplState, Role};
use crate::sys::bio::SharedCompletion;
use kernel::prelude::*;
use kernel::sync::Arc;

// The pure rules name DRBD's codes themselves; they must be the ABI's.
const _: () = assert!(
    admin::ss::CONNECTED_OUTDATES == ss::CONNECTED_OUTDATES
        && admin::ss::LOWER_THAN_OUTDATED == ss::LOWER_THAN_OUTDATED
        && admin::ss::NO_UP_TO_DATE_DISK == ss::NO_UP_TO_DATE_DISK
        && admin::ss::NOTHING_TO_DO == ss::NOTHING_TO_DO
        && admin::ret::ERR_PAUSE_IS_SET == ret::ERR_PAUSE_IS_SET
        && admin::ret::ERR_PAUSE_IS_CLEAR == ret::ERR_PAUSE_IS_CLEAR
        && admin::ret::ERR_PIC_PEER_DEP == ret::ERR_PIC_PEER_DEP
        && admin::ret::ERR_PIC_AFTER_DEP == ret::ERR_PIC_AFTER_DEP
        && admin::ret::ERR_NO_DISK == ret::ERR_NO_DISK
        && admin::ret::ERR_CONNECTED == ret::ERR_CONNECTED
);

fn device(reg: &RegistryInner, minor: u32) -> Outcome<Arc<Device>> {
    reg.device(minor)
        .ok_or_else(|| fail!(ret::ERR_MINOR_INVALID, "unknown minor {}", minor))
}

fn to_state_repl(r: ReplState) -> state::ReplState {
    state::ReplState::from_u32(r as u32).unwrap_or(state::ReplState::Off)
}

fn to_state_disk(d: DiskState) -> state::DiskState {
    state::DiskState::from_u32(d as u32).unwrap_or(state::DiskState::DUnknown)
}

fn to_state_role(r: Role) -> state::Role {
    state::Role::from_u32(r as u32).unwrap_or(state::Role::Unknown)
}

/// What each connection of `res` knows about `volume` (`Resource::state` is taken).
fn peer_views(res: &Resource, volume: u32) -> Outcome<KVec<PeerView>> {
    let mut views = KVec::new();
    let rs = res.state.lock();
    for conn in rs.connections() {
        let Some(p) = conn.peer_dev(volume) else {
            continue;
        };
        let view = PeerView {
            repl: to_state_repl(p.repl),
            peer_role: to_state_role(p.peer_role),
            peer_disk: to_state_disk(p.peer_disk),
            peer_current: p.peer_uuid,
        };
        views
            .push(view, GFP_KERNEL)
            .map_err(|_| fail!(ret::ERR_NOMEM))?;
    }
    Ok(views)
}

// ---- suspend-io / resume-io ----------------------------------------------------------------

/// `suspend-io MINOR`: new application I/O on every volume of the resource is held (not
/// failed) until `resume-io`; what is in flight completes normally.
pub(crate) fn suspend_io(reg: &mut RegistryInner, minor: u32) -> Outcome<i32> {
    let res = device(reg, minor)?.resource.clone();
    let mut rs = res.state.lock();
    if rs.susp_user {
        return Ok(ss::NOTHING_TO_DO);
    }
    rs.susp_user = true;
    for d in rs.devices() {
        d.freeze();
    }
    pr_info!("{}: susp-io( no -> user )\n", res.name);
    events::resource(&res, &rs, Kind::Change);
    Ok(ss::SUCCESS)
}

/// `resume-io MINOR`: restarts the held requests in order and lets new ones through.
pub(crate) fn resume_io(reg: &mut RegistryInner, minor: u32) -> Outcome<i32> {
    let res = device(reg, minor)?.resource.clone();
    Ok(if thaw_resource(&res) {
        ss::SUCCESS
    } else {
        ss::NOTHING_TO_DO
    })
}

/// Ends every suspension of `res`: `resume-io` (which DRBD lets end a fencing freeze too),
/// `down` and module exit, so nothing held is lost or left hanging; `false` if it was not
/// suspended.
pub(crate) fn thaw_resource(res: &Resource) -> bool {
    thaw(res, true, true)
}

/// Ends a fencing freeze (the peer's disk state is known again, or it reconnected).
pub(crate) fn thaw_fencing(res: &Resource) -> bool {
    thaw(res, false, true)
}

/// `suspended:` text of the two flags, as DRBD logs `susp-io( a -> b )`.
fn susp_text(user: bool, fencing: bool) -> &'static str {
    match (user, fencing) {
        (false, false) => "no",
        (true, false) => "user",
        (false, true) => "fencing",
        (true, true) => "user,fencing",
    }
}

/// Suspends application I/O of `res` for fencing: new bios are held from now on, and the
/// link teardown parks the writes that still wait for the lost peer ([`hold_for_fencing`]).
pub(crate) fn freeze_for_fencing(res: &Resource) {
    let mut rs = res.state.lock();
    if rs.susp_fen {
        return;
    }
    rs.susp_fen = true;
    for d in rs.devices() {
        d.freeze();
    }
    pr_info!(
        "{}: susp-io( {} -> {} )\n",
        res.name,
        susp_text(rs.susp_user, false),
        susp_text(rs.susp_user, true)
    );
    events::resource(res, &rs, Kind::Change);
}

/// Parks a write whose peer part cannot finish any more until the fencing freeze ends;
/// `false` (the caller completes it) if `res` is not frozen for fencing or memory is short.
pub(crate) fn hold_for_fencing(res: &Resource, req: &Arc<SharedCompletion>) -> bool {
    let mut rs = res.state.lock();
    rs.susp_fen && rs.fence_held.push(req.clone(), GFP_KERNEL).is_ok()
}

/// Clears the chosen suspension flags; when none is left, completes the parked writes and
/// restarts the held bios in order. Takes `Resource::state` only briefly: restarting a
/// request runs the write path, which takes it too.
fn thaw(res: &Resource, user: bool, fencing: bool) -> bool {
    let (devices, parked, before, after) = {
        let mut rs = res.state.lock();
        let before = (rs.susp_user, rs.susp_fen);
        let after = (rs.susp_user && !user, rs.susp_fen && !fencing);
        if before == after {
            return false;
        }
        let mut devices = KVec::new();
        if !after.0 && !after.1 {
            for d in rs.devices() {
                if devices.push(d.clone(), GFP_KERNEL).is_err() {
                    // Keep everything suspended; a later resume-io retries.
                    return false;
                }
            }
        }
        (rs.susp_user, rs.susp_fen) = after;
        let parked = if after.1 {
            KVec::new()
        } else {
            core::mem::take(&mut rs.fence_held)
        };
        (devices, parked, before, after)
    };
    // The parked writes are older than anything held at submission: they finish first.
    for req in parked.iter() {
        req.part_done(true);
    }
    let mut held = 0;
    for d in devices.iter() {
        held += d.held_count();
        d.thaw();
    }
    let rs = res.state.lock();
    pr_info!(
        "{}: susp-io( {} -> {} ), {} held request(s) restarted, {} completed\n",
        res.name,
        susp_text(before.0, before.1),
        susp_text(after.0, after.1),
        held,
        parked.len()
    );
    events::resource(res, &rs, Kind::Change);
    true
}

// ---- pause-sync / resume-sync --------------------------------------------------------------

fn peer_of(res: &Resource, peer: u32, volume: u32) -> Outcome<(Arc<Connection>, PeerDev)> {
    let conn = res.state.lock().connection(peer).cloned().ok_or_else(|| {
        fail!(
            ret::ERR_INVALID_REQUEST,
            "unknown connection to node {}",
            peer
        )
    })?;
    let p = conn.peer_dev(volume).ok_or_else(|| {
        fail!(
            ret::ERR_INVALID_REQUEST,
            "no volume {} in {}",
            volume,
            res.name
        )
    })?;
    Ok((conn, p))
}

/// Records this node's pause of the resync towards `conn`, announces it (events, and the
/// peer through our state's `user_isp`).
fn set_user_pause(conn: &Connection, volume: u32, on: bool) {
    {
        let mut st = conn.state.lock();
        let mut shown = None;
        if let Some(p) = st.peers.iter_mut().find(|p| p.volume == volume) {
            let before = p.shown_repl();
            p.susp_user = on;
            p.note_pause();
            shown = Some((before, p.shown_repl()));
        }
        if let Some((before, after)) = shown {
            pr_info!(
                "{} {}/{}: resync-susp( {} -> {} ){}{}\n",
                conn.resource.name,
                st.name,
                volume,
                if on { "no" } else { "user" },
                if on { "user" } else { "no" },
                if before != after { " repl: " } else { "" },
                if before != after { after.name() } else { "" }
            );
        }
        events::peer_device(conn, &st, volume, Kind::Change);
    }
    if let Some(link) = conn.link() {
        if announce(conn, &link, None).is_err() {
            link.data.shutdown();
        }
    }
}

/// `pause-sync RES PEER VOL`: holds the resync with that peer (now, or when one starts).
pub(crate) fn pause_sync(res: &Arc<Resource>, peer: u32, volume: u32) -> Outcome<i32> {
    let (conn, p) = peer_of(res, peer, volume)?;
    admin::pause_sync(p.susp())
        .map_err(|code| fail!(code, "the resync with node {} is paused here already", peer))?;
    set_user_pause(&conn, volume, true);
    Ok(ret::NO_ERROR)
}

/// `resume-sync RES PEER VOL`: lifts this node's pause.
pub(crate) fn resume_sync(res: &Arc<Resource>, peer: u32, volume: u32) -> Outcome<i32> {
    let (conn, p) = peer_of(res, peer, volume)?;
    admin::resume_sync(p.susp(), to_state_repl(p.repl)).map_err(|code| {
        if code == ret::ERR_PIC_PEER_DEP {
            fail!(code, "node {} paused the resync", peer)
        } else {
            fail!(code)
        }
    })?;
    set_user_pause(&conn, volume, false);
    Ok(ret::NO_ERROR)
}

/// The peer's `P_STATE` carries its pause (`user_isp`): our `peer_isp`.
pub(crate) fn peer_paused(conn: &Connection, volume: u32, on: bool) {
    let mut st = conn.state.lock();
    let Some(p) = st.peers.iter_mut().find(|p| p.volume == volume) else {
        return;
    };
    if p.susp_peer == on {
        return;
    }
    p.susp_peer = on;
    p.note_pause();
    pr_info!(
        "{} {}/{}: resync-susp( {} -> {} ) by the peer\n",
        conn.resource.name,
        st.name,
        volume,
        if on { "no" } else { "peer" },
        if on { "peer" } else { "no" }
    );
    events::peer_device(conn, &st, volume, Kind::Change);
}

// ---- outdate -------------------------------------------------------------------------------

/// `outdate MINOR`: the local data is declared old (persistently: `MDF_WAS_UP_TO_DATE` is
/// cleared, `MDF_CONSISTENT` kept, so attach finds it Outdated again).
pub(crate) fn outdate(reg: &mut RegistryInner, minor: u32) -> Outcome<i32> {
    let dev = device(reg, minor)?;
    let res = dev.resource.clone();
    let views = peer_views(&res, dev.volume)?;
    let rs = res.state.lock();
    let disk = dev.state.lock().disk_state;
    let change = admin::outdate(to_state_role(rs.role), to_state_disk(disk), &views);
    match change {
        Err(code) => Err(match code {
            ss::NO_UP_TO_DATE_DISK => fail!(code, "a Primary needs UpToDate data"),
            ss::CONNECTED_OUTDATES => fail!(
                code,
                "the data is in use (Primary, or replicating from a Primary)"
            ),
            _ => fail!(code, "the disk is {}", disk.name()),
        }),
        Ok(Change::NothingToDo) => Ok(ss::NOTHING_TO_DO),
        Ok(Change::To(_)) => {
            {
                let mut st = dev.state.lock();
                if let Some(b) = st.backing.as_mut() {
                    b.sb.flags = (b.sb.flags | meta::MDF_CONSISTENT) & !meta::MDF_WAS_UP_TO_DATE;
                    b.write_superblock()?;
                }
                st.disk_state = DiskState::Outdated;
                pr_info!(
                    "{}/{} drbd{}: disk( {} -> Outdated )\n",
                    res.name,
                    dev.volume,
                    dev.minor,
                    disk.name()
                );
                events::device(&dev, &st, Kind::Change);
            }
            crate::replication::local_change_locked(&rs);
            Ok(ss::SUCCESS)
        }
    }
}

/// `fence-peer` exit 6 (the peer is Primary): every local disk that is Consistent or
/// UpToDate becomes Outdated, persisted like `outdate`.
pub(crate) fn outdate_self(res: &Resource) {
    let rs = res.state.lock();
    for dev in rs.devices() {
        let mut st = dev.state.lock();
        let disk = st.disk_state;
        if !matches!(disk, DiskState::Consistent | DiskState::UpToDate) {
            continue;
        }
        if let Some(b) = st.backing.as_mut() {
            b.sb.flags = (b.sb.flags | meta::MDF_CONSISTENT) & !meta::MDF_WAS_UP_TO_DATE;
            if let Err(f) = b.write_superblock() {
                pr_warn!("drbd{}: {} {}\n", dev.minor, f.text(), f.info());
            }
        }
        st.disk_state = DiskState::Outdated;
        pr_info!(
            "{}/{} drbd{}: disk( {} -> Outdated )\n",
            res.name,
            dev.volume,
            dev.minor,
            disk.name()
        );
        events::device(dev, &st, Kind::Change);
    }
}

/// The handshake found no resync needed: an Outdated or Consistent disk facing the peer's
/// UpToDate data of the same generation becomes UpToDate (and says so to the peer).
pub(crate) fn settle_after_handshake(
    conn: &Connection,
    link: &Link,
    dev: &Device,
    peer_disk: DiskState,
) {
    let settled = {
        let mut st = dev.state.lock();
        let before = st.disk_state;
        let to = admin::settle_after_handshake(to_state_disk(before), to_state_disk(peer_disk));
        match (to, st.backing.as_mut()) {
            (Some(_), Some(b)) => {
                b.sb.flags |= meta::MDF_CONSISTENT | meta::MDF_WAS_UP_TO_DATE;
                if let Err(f) = b.write_superblock() {
                    pr_warn!("drbd{}: {} {}\n", dev.minor, f.text(), f.info());
                }
                st.disk_state = DiskState::UpToDate;
                pr_info!(
                    "{}/{} drbd{}: disk( {} -> UpToDate ), the peer has the same data\n",
                    conn.resource.name,
                    dev.volume,
                    dev.minor,
                    before.name()
                );
                events::device(dev, &st, Kind::Change);
                true
            }
            _ => false,
        }
    };
    if settled && announce(conn, link, None).is_err() {
        link.data.shutdown();
    }
}

// ---- new-current-uuid ----------------------------------------------------------------------

/// Forgets every out-of-sync mark of `dev` (memory and the bits this node set on disk).
fn clear_bitmap(dev: &Device) {
    dev.oos.lock().clear_all();
    let log = dev.io.lock().al.clone();
    if let Some(log) = log {
        log.clear_disk_bitmap(dev);
    }
}

/// `new-current-uuid MINOR [--clear-bitmap]`.
pub(crate) fn new_current_uuid(
    reg: &mut RegistryInner,
    minor: u32,
    clear_bm: bool,
    force_resync: bool,
) -> Outcome<i32> {
    if force_resync {
        return Err(fail!(
            ret::ERR_INVALID_REQUEST,
            "--force-resync is not supported yet"
        ));
    }
    let dev = device(reg, minor)?;
    let res = dev.resource.clone();
    let views = peer_views(&res, dev.volume)?;
    let (role, conns) = {
        let rs = res.state.lock();
        let mut conns = KVec::new();
        for c in rs.connections() {
            conns
                .push(c.clone(), GFP_KERNEL)
                .map_err(|_| fail!(ret::ERR_NOMEM))?;
        }
        (rs.role, conns)
    };
    let (has_disk, current) = {
        let st = dev.state.lock();
        (
            st.backing.is_some(),
            st.backing.as_ref().map_or(0, |b| b.sb.current_uuid),
        )
    };
    let plan = admin::new_current_uuid(clear_bm, has_disk, to_state_role(role), current, &views)
        .map_err(|code| match code {
            ret::ERR_CONNECTED => fail!(
                code,
                "only a Primary makes a new data generation while connected (and not during a resync)"
            ),
            _ => fail!(code),
        })?;
    match plan {
        NewUuid::SkipInitialSync => skip_initial_sync(&dev, &conns),
        NewUuid::Rotate {
            clear_bitmap: clear,
            announce: tell,
        } => rotate(&dev, &conns, role, clear, tell),
    }
}

fn skip_initial_sync(dev: &Arc<Device>, conns: &[Arc<Connection>]) -> Outcome<i32> {
    let name = &dev.resource.name;
    pr_info!(
        "{}/{} drbd{}: Preparing to skip initial sync\n",
        name,
        dev.volume,
        dev.minor
    );
    clear_bitmap(dev);
    {
        let mut st = dev.state.lock();
        let b = st.backing.as_mut().ok_or_else(|| fail!(ret::ERR_NO_DISK))?;
        crate::role::new_current_uuid(&mut b.sb, false);
        for slot in b.sb.peers.iter_mut() {
            slot.bitmap_uuid = 0;
        }
        b.sb.flags =
            (b.sb.flags | meta::MDF_CONSISTENT | meta::MDF_WAS_UP_TO_DATE) & !meta::MDF_FULL_SYNC;
        b.write_superblock()?;
        pr_info!(
            "{}/{} drbd{}: new current UUID {:016X}, cleared bitmap UUID\n",
            name,
            dev.volume,
            dev.minor,
            b.sb.current_uuid
        );
        st.disk_state = DiskState::UpToDate;
        events::device(dev, &st, Kind::Change);
    }
    for conn in conns {
        let Some(link) = conn.link() else { continue };
        {
            let mut st = conn.state.lock();
            if let Some(p) = st.peers.iter_mut().find(|p| p.volume == dev.volume) {
                if p.repl != ReplState::Established {
                    continue;
                }
                p.peer_disk = DiskState::UpToDate;
            }
            events::peer_device(conn, &st, dev.volume, Kind::Change);
        }
        if announce_flags(conn, &link, None, wire::UUID_FLAG_SKIP_INITIAL_SYNC).is_err() {
            link.data.shutdown();
        }
    }
    Ok(ret::NO_ERROR)
}

fn rotate(
    dev: &Arc<Device>,
    conns: &[Arc<Connection>],
    role: Role,
    clear: bool,
    tell: bool,
) -> Outcome<i32> {
    if clear {
        clear_bitmap(dev);
    }
    let mut offline: KVec<u32> = KVec::new();
    for c in conns {
        if c.peer_dev(dev.volume)
            .map_or(true, |p| p.repl == ReplState::Off)
        {
            offline
                .push(c.peer_node_id, GFP_KERNEL)
                .map_err(|_| fail!(ret::ERR_NOMEM))?;
        }
    }
    {
        let mut st = dev.state.lock();
        let b = st.backing.as_mut().ok_or_else(|| fail!(ret::ERR_NO_DISK))?;
        let old = b.sb.current_uuid;
        for peer in offline.iter() {
            if clear {
                if let Some(slot) = b.sb.peers.get_mut(*peer as usize) {
                    slot.bitmap_uuid = 0;
                }
            } else {
                // The unreachable peer resyncs what changes from now on.
                crate::role::keep_bitmap_uuid(&mut b.sb, *peer);
            }
        }
        crate::role::new_current_uuid(&mut b.sb, role == Role::Primary);
        b.write_superblock()?;
        pr_info!(
            "{}/{} drbd{}: new current UUID {:016X} (was {:016X}, by the user)\n",
            dev.resource.name,
            dev.volume,
            dev.minor,
            b.sb.current_uuid,
            old
        );
        events::device(dev, &st, Kind::Change);
    }
    if tell {
        for conn in conns {
            if let Some(link) = conn.link() {
                if announce_flags(conn, &link, None, wire::UUID_FLAG_NEW_DATAGEN).is_err() {
                    link.data.shutdown();
                }
            }
        }
    }
    Ok(ret::NO_ERROR)
}

/// The flags of the peer's `P_UUIDS110` for `dev`: follow its new data generation, or skip
/// the initial sync with it. Receiver thread, no lock held; runs before the peer's `P_STATE`
/// of the same announcement, so the handshake that follows sees equal generations.
pub(crate) fn on_peer_uuids(
    conn: &Connection,
    link: &Link,
    dev: &Device,
    flags: u64,
    current: u64,
    previous: u64,
) {
    let Some(p) = conn.peer_dev(dev.volume) else {
        return;
    };
    let (disk, local) = {
        let st = dev.state.lock();
        (
            st.disk_state,
            st.backing.as_ref().map_or(0, |b| b.sb.current_uuid),
        )
    };
    let repl = to_state_repl(p.repl);
    if flags & wire::UUID_FLAG_SKIP_INITIAL_SYNC != 0
        && admin::accept_skip_initial_sync(repl, local, to_state_disk(disk))
    {
        pr_info!(
            "{}/{} drbd{}: Accepted new current UUID, preparing to skip initial sync\n",
            conn.resource.name,
            dev.volume,
            dev.minor
        );
        clear_bitmap(dev);
        {
            let mut st = dev.state.lock();
            if let Some(b) = st.backing.as_mut() {
                b.sb.current_uuid = current & !1;
                for slot in b.sb.peers.iter_mut() {
                    slot.bitmap_uuid = 0;
                }
                b.sb.flags = (b.sb.flags | meta::MDF_CONSISTENT | meta::MDF_WAS_UP_TO_DATE)
                    & !meta::MDF_FULL_SYNC;
                if let Err(f) = b.write_superblock() {
                    pr_warn!("drbd{}: {} {}\n", dev.minor, f.text(), f.info());
                }
            }
            st.disk_state = DiskState::UpToDate;
            events::device(dev, &st, Kind::Change);
        }
        if announce(conn, link, None).is_err() {
            link.data.shutdown();
        }
        return;
    }
    if flags & wire::UUID_FLAG_NEW_DATAGEN != 0
        && admin::adopt_new_datagen(
            repl,
            to_state_role(p.peer_role),
            to_state_disk(disk),
            local,
            current,
            previous,
        )
    {
        let mut st = dev.state.lock();
        if let Some(b) = st.backing.as_mut() {
            let n = b.sb.history_uuids.len();
            b.sb.history_uuids.copy_within(0..n - 1, 1);
            b.sb.history_uuids[0] = local & !1;
            b.sb.current_uuid = current & !1;
            if let Err(f) = b.write_superblock() {
                pr_warn!("drbd{}: {} {}\n", dev.minor, f.text(), f.info());
            }
            pr_info!(
                "{}/{} drbd{}: new current UUID {:016X} of the Primary taken over\n",
                conn.resource.name,
                dev.volume,
                dev.minor,
                current
            );
        }
        events::device(dev, &st, Kind::Change);
    }
}
