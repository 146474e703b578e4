//! Replication over an established link: per-volume state exchange (`P_SIZES`, `P_UUIDS110`,
//! `P_STATE` on the data stream), the sync decision (`proto::uuid`), mirrored application
//! writes (`P_DATA`, completed per protocol A or C), full resync from the SyncSource
//! (`P_RS_DATA_REPLY`), and the acknowledgements on the meta stream.
//!
//! Threads: the link thread reads the meta stream (acks, pings); a receiver thread reads the
//! data stream and submits peer writes without waiting (`crate::peer_write`, whose ack thread
//! answers them); the sender thread sends mirrored writes and closes idle epochs
//! (`crate::sender`, `crate::barrier`); a resync thread runs on the
//! SyncSource while a sync is in progress. Mirrored writes stay in the link's transfer log
//! (`crate::transfer_log`) until their epoch is acknowledged.
//!
//! Write/resync ordering: a mirrored write notes its range and counts its local part in flight
//! under `Device::sync_lock`; the resync thread drains those writes and starts a chunk's read
//! under the same lock, and leaves out of a chunk's send the blocks a write noted after its
//! read started touched. So a chunk sent to the peer never holds data older than a write it
//! could overtake.

use crate::connection::{Connection, PeerDev};
use crate::device::Device;
use crate::packet;
use crate::peer_write::{AckPlan, EpochOrder, PeerWriter, PeerWrites};
use crate::proto::helper::Helper;
use crate::proto::wire::{BlockAck, DataHeader, DrbdState, Header, HeaderKind, Uuids110};
use crate::proto::{state, uuid, wire};
use crate::resource::{Resource, ResourceState};
use crate::resync::{finish_sync_target, start_sync_source, start_sync_target};
use crate::spec::generated::{ConnState, DiskState, ReplState, Role};
use crate::sys::bio::{SharedCompletion, UpperBio};
use crate::sys::peer_bio::{PageBuf, WriteFlags};
use crate::sys::socket::Socket;
use core::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex, SpinLock};
use kernel::{new_mutex, new_spinlock};

/// Largest data payload accepted from a peer.
const MAX_DATA_PAYLOAD: u32 = crate::sys::bdev::MAX_XFER as u32;
/// Largest state/uuid/size payload accepted.
const MAX_STATE_PAYLOAD: u32 = 4096;

/// The established streams of a connection and what travels over them.
///
/// Lifetime: created by the link thread after the handshake, published in
/// `ConnectionState::link` while connected, dropped when the link fails or is disconnected
/// (its transfer log is emptied by `TransferLog::fail_all` first).
#[pin_data]
pub(crate) struct Link {
    /// Data stream (writes, resync data, state).
    pub(crate) data: Arc<Socket>,
    /// Meta stream (acks, pings).
    pub(crate) meta: Arc<Socket>,
    /// Agreed protocol version.
    pub(crate) version: u32,
    /// Serialises senders on the data stream (one packet at a time; writes and barriers keep
    /// it while they pick their epoch). Take it with [`Link::lock_data`].
    #[pin]
    data_tx: Mutex<()>,
    /// Senders waiting for `data_tx`: while there are, a packet stays corked for the next one,
    /// so concurrent writes share TCP segments.
    tx_waiting: AtomicU32,
    /// Serialises senders on the meta stream.
    #[pin]
    meta_tx: Mutex<()>,
    /// Mirrored writes and empty flushes the peer has not confirmed as stable (barrier ack).
    #[pin]
    pub(crate) tl: crate::transfer_log::TransferLog,
    /// Resync chunks sent and not acknowledged yet.
    pub(crate) rs_in_flight: AtomicU32,
    /// When the resync window last moved (a chunk sent into an empty window, or one
    /// acknowledged; `now_ms`): ko-count expels a peer that stops answering them.
    pub(crate) rs_progress_ms: AtomicI64,
    /// Sequence numbers of data packets.
    seq: AtomicU32,
    /// `max-epoch-size` when the link was established.
    pub(crate) max_epoch_size: u32,
    /// Online verify on this link (`crate::verify`).
    #[pin]
    pub(crate) ov: crate::verify::LinkVerify,
    /// Mirrored writes waiting for the sender thread (`crate::sender`).
    #[pin]
    pub(crate) queue: crate::sender::SendQueue,
    /// Reads sent to the peer (`P_DATA_REQUEST`) and not answered yet, by slot
    /// (`block_id = slot + 1`); see `crate::remote_read`.
    #[pin]
    pub(crate) reads: SpinLock<crate::remote_read::PendingReads>,
}

/// Monotonic milliseconds (any context).
pub(crate) fn now_ms() -> i64 {
    kernel::time::Ktime::ktime_get().to_ms()
}

impl Link {
    /// Wraps two handshaken streams.
    pub(crate) fn new(
        data: Arc<Socket>,
        meta: Arc<Socket>,
        version: u32,
        max_epoch_size: u32,
    ) -> Result<Arc<Self>> {
        let tl = crate::transfer_log::TransferLog::new()?;
        let queue = crate::sender::SendQueue::new()?;
        Arc::pin_init(
            try_pin_init!(Self {
                data,
                meta,
                version,
                data_tx <- new_mutex!((), "Link::data_tx"),
                tx_waiting: AtomicU32::new(0),
                meta_tx <- new_mutex!((), "Link::meta_tx"),
                tl <- tl,
                rs_in_flight: AtomicU32::new(0),
                rs_progress_ms: AtomicI64::new(0),
                seq: AtomicU32::new(1),
                max_epoch_size,
                ov <- crate::verify::LinkVerify::new(),
                queue <- queue,
                reads <- new_spinlock!(crate::remote_read::PendingReads::new(), "Link::reads"),
            }),
            GFP_KERNEL,
        )
    }

    /// Header kind of the agreed version.
    pub(crate) fn kind(&self) -> HeaderKind {
        HeaderKind::for_version(self.version)
    }

    /// Takes the data stream (counted as waiting until it has it).
    pub(crate) fn lock_data(
        &self,
    ) -> kernel::sync::lock::Guard<'_, (), kernel::sync::lock::mutex::MutexBackend> {
        self.tx_waiting.fetch_add(1, Ordering::AcqRel);
        let guard = self.data_tx.lock();
        self.tx_waiting.fetch_sub(1, Ordering::AcqRel);
        guard
    }

    /// The sequence number of the next data packet.
    pub(crate) fn next_seq(&self) -> u32 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Another sender waits for the data stream: the packet being sent may stay corked.
    pub(crate) fn sender_waiting(&self) -> bool {
        self.tx_waiting.load(Ordering::Acquire) > 0
    }

    /// Sends a packet on the data stream.
    pub(crate) fn send_data(&self, cmd: u16, volume: u16, parts: &[&[u8]]) -> Result {
        let _guard = self.lock_data();
        packet::send_corked(
            &self.data,
            self.kind(),
            cmd,
            volume,
            parts,
            self.sender_waiting(),
        )
    }

    /// Sends a packet on the data stream whose payload is `head` followed by the first `len`
    /// bytes of `buf`.
    pub(crate) fn send_data_pages(
        &self,
        cmd: u16,
        volume: u16,
        head: &[u8],
        buf: &PageBuf,
        len: usize,
    ) -> Result {
        let _guard = self.lock_data();
        self.send_data_pages_locked(cmd, volume, head, buf, 0, len)
    }

    /// Sends a packet on the data stream whose payload is `head` followed by `len` bytes of
    /// `buf` from `offset` (a multiple of the page size); the caller holds `data_tx`.
    pub(crate) fn send_data_pages_locked(
        &self,
        cmd: u16,
        volume: u16,
        head: &[u8],
        buf: &PageBuf,
        offset: usize,
        len: usize,
    ) -> Result {
        let header = Header {
            kind: self.kind(),
            cmd,
            length: u32::try_from(head.len() + len).map_err(|_| EINVAL)?,
            volume,
        };
        let mut h = [0u8; 16];
        let n = header.encode(&mut h).map_err(|_| EINVAL)?;
        self.data.send_parts(&[&h[..n], head], true)?;
        buf.send_range(&self.data, offset, len, self.sender_waiting())
    }

    /// Sends a packet on the meta stream.
    pub(crate) fn send_meta(&self, cmd: u16, volume: u16, payload: &[u8]) -> Result {
        self.send_meta_corked(cmd, volume, payload, false)
    }

    /// Sends a packet on the meta stream, kept corked if `more` (another one follows at once).
    pub(crate) fn send_meta_corked(
        &self,
        cmd: u16,
        volume: u16,
        payload: &[u8],
        more: bool,
    ) -> Result {
        let _guard = self.meta_tx.lock();
        packet::send_corked(&self.meta, self.kind(), cmd, volume, &[payload], more)
    }

    /// Sends `P_BARRIER(barrier)`; the caller holds `data_tx`. `more`: a packet follows at once
    /// (the barrier stays corked until it; otherwise it would wait for the cork timeout).
    pub(crate) fn send_barrier_locked(&self, barrier: u32, more: bool) -> Result {
        let more = more || self.sender_waiting();
        let mut b = [0u8; wire::Barrier::SIZE];
        wire::Barrier { barrier }
            .encode(&mut b)
            .map_err(|_| EINVAL)?;
        packet::send_corked(&self.data, self.kind(), wire::P_BARRIER, 0, &[&b], more)
    }
}

// ---- state exchange ------------------------------------------------------------------------

/// What we tell the peer about one volume.
struct LocalView {
    role: Role,
    disk: DiskState,
    size: u64,
    /// Largest data area of the backing device.
    max_size: u64,
    /// `--size` as configured (0 = all).
    user_size: u64,
    current: u64,
    history: [u64; 2],
    /// Bitmap UUID towards the peer (0 = in sync with it).
    bitmap_uuid: u64,
    /// Blocks marked out of sync towards the peer.
    dirty: u64,
    /// The meta-data says this node crashed while Primary (resync pending).
    crashed_primary: bool,
}

fn local_view(dev: &Device, role: Role, peer: u32) -> LocalView {
    let dirty = dev.oos.lock().count();
    let st = dev.state.lock();
    let (max_size, user_size) = st
        .backing
        .as_ref()
        .map_or((0, 0), |b| (b.layout.data_sectors, b.disk_size));
    let (size, current, history, bitmap_uuid, crashed_primary) = match st.backing.as_ref() {
        Some(b) => (
            b.data_sectors(),
            b.sb.current_uuid,
            [b.sb.history_uuids[0], b.sb.history_uuids[1]],
            b.sb.peers.get(peer as usize).map_or(0, |p| p.bitmap_uuid),
            b.sb.flags & crate::proto::meta::MDF_CRASHED_PRIMARY != 0,
        ),
        None => (0, 0, [0, 0], 0, false),
    };
    LocalView {
        role,
        disk: st.disk_state,
        size,
        max_size,
        user_size,
        current,
        history,
        bitmap_uuid,
        dirty,
        crashed_primary,
    }
}

/// `UUID_FLAG_STABLE` when our data is a settled generation (UpToDate, not being resynced);
/// the handshake only calls a split brain between stable sides. `UUID_FLAG_CRASHED_PRIMARY`
/// while a crash as Primary awaits its resync.
fn stability(v: &LocalView, repl: Option<ReplState>) -> u64 {
    let syncing = matches!(repl, Some(ReplState::SyncTarget));
    let stable = if v.disk == DiskState::UpToDate && !syncing {
        wire::UUID_FLAG_STABLE
    } else {
        0
    };
    let crashed = if v.crashed_primary {
        wire::UUID_FLAG_CRASHED_PRIMARY
    } else {
        0
    };
    stable | crashed
}

/// `UUID_FLAG_DISCARD_MY_DATA` while `connect --discard-my-data` is pending.
fn discard_flag(conn: &Connection) -> u64 {
    if conn.state.lock().discard_my_data {
        wire::UUID_FLAG_DISCARD_MY_DATA
    } else {
        0
    }
}

/// Sends our state of every volume to the peer of `conn` (after connecting and after every
/// local change of role, disk state or data generation).
pub(crate) fn announce(conn: &Connection, link: &Link, repl: Option<(u32, ReplState)>) -> Result {
    announce_flags(conn, link, repl, 0)
}

/// [`announce`] with more `UUID_FLAG_*` in this one `P_UUIDS110` (`NEW_DATAGEN`,
/// `SKIP_INITIAL_SYNC`).
pub(crate) fn announce_flags(
    conn: &Connection,
    link: &Link,
    repl: Option<(u32, ReplState)>,
    extra_flags: u64,
) -> Result {
    let (role, devices) = {
        let rs = conn.resource.state.lock();
        let mut devices = KVec::new();
        for d in rs.devices() {
            devices.push(d.clone(), GFP_KERNEL)?;
        }
        (rs.role, devices)
    };
    announce_with(conn, link, role, &devices, repl, extra_flags)
}

/// Sends `P_SIZES` of `view`.
fn send_sizes_of(link: &Link, volume: u16, v: &LocalView) -> Result {
    let mut sizes = [0u8; 32];
    let base = wire::SizesBase {
        d_size: v.max_size,
        u_size: v.user_size,
        c_size: v.size,
        max_bio_size: 1 << 20,
        queue_order_type: 0,
        dds_flags: 0,
    };
    base.encode(&mut sizes).map_err(|_| EINVAL)?;
    link.send_data(wire::P_SIZES, volume, &[&sizes])
}

/// Sends the sizes of `dev` alone (its largest possible size changed).
pub(crate) fn send_sizes(conn: &Connection, link: &Link, dev: &Device) -> Result {
    let role = conn.resource.state.lock().role;
    send_sizes_of(
        link,
        dev.volume as u16,
        &local_view(dev, role, conn.peer_node_id),
    )
}

fn announce_with(
    conn: &Connection,
    link: &Link,
    role: Role,
    devices: &[Arc<Device>],
    repl: Option<(u32, ReplState)>,
    extra_flags: u64,
) -> Result {
    for dev in devices.iter() {
        let v = local_view(dev, role, conn.peer_node_id);
        let volume = dev.volume as u16;
        send_sizes_of(link, volume, &v)?;

        let mut uuids = KBox::new(Uuids110::default(), GFP_KERNEL)?;
        uuids.current_uuid = v.current;
        uuids.history_uuids[0] = v.history[0];
        uuids.history_uuids[1] = v.history[1];
        uuids.history_count = 2;
        uuids.dirty_bits = v.dirty;
        uuids.uuid_flags = stability(&v, conn.peer_dev(dev.volume).map(|p| p.repl))
            | discard_flag(conn)
            | extra_flags;
        if let Some(slot) = uuids.bitmap_uuids.get_mut(conn.peer_node_id as usize) {
            *slot = v.bitmap_uuid;
            uuids.bitmap_uuids_mask = 1u64 << conn.peer_node_id;
        }
        let mut ub = KVec::from_elem(0u8, 1024, GFP_KERNEL)?;
        let n = uuids.encode(ub.as_mut_slice()).map_err(|_| EINVAL)?;
        link.send_data(wire::P_UUIDS110, volume, &[&ub[..n]])?;

        let mut s = DrbdState::default();
        s.set_role(v.role as u32);
        s.set_disk(v.disk as u32);
        let pd = conn.peer_dev(dev.volume);
        let my_repl = match repl {
            Some((vol, r)) if vol == dev.volume => r,
            _ => pd.map_or(ReplState::Established, |p| p.repl),
        };
        // A paused resync goes out as PausedSync*, with our own pause as `user_isp`.
        let shown = pd.map_or(my_repl, |p| PeerDev { repl: my_repl, ..p }.shown_repl());
        s.set_conn(shown as u32);
        s.set_user_isp(u32::from(pd.is_some_and(|p| p.susp_user)));
        s.set_peer_isp(u32::from(pd.is_some_and(|p| p.susp_peer)));
        link.send_data(wire::P_STATE, volume, &[&s.0.to_be_bytes()])?;
    }
    Ok(())
}

/// Tells every connected peer about a local change; `rs` is the locked state of the resource
/// (no device or connection lock may be held).
pub(crate) fn local_change_locked(rs: &ResourceState) {
    let mut devices = KVec::new();
    for d in rs.devices() {
        if devices.push(d.clone(), GFP_KERNEL).is_err() {
            return;
        }
    }
    for conn in rs.connections() {
        if let Some(link) = conn.link() {
            if announce_with(conn, &link, rs.role, &devices, None, 0).is_err() {
                link.data.shutdown();
            }
        }
    }
}

/// Same as [`local_change_locked`], taking the resource lock.
pub(crate) fn local_change(resource: &Resource) {
    local_change_locked(&resource.state.lock());
}

/// Runs the sync decision for one volume after the peer's state arrived; returns the
/// replication state to enter.
fn decide(
    conn: &Connection,
    dev: &Device,
    peer: &PeerDev,
    link: &Link,
) -> Result<ReplState, &'static str> {
    let role = conn.resource.state.lock().role;
    let local = local_view(dev, role, conn.peer_node_id);
    if local.disk == DiskState::Diskless || peer.peer_disk == DiskState::Diskless {
        return Ok(ReplState::Established);
    }
    let generations = |current: u64, history: [u64; 2]| {
        let mut g = uuid::Generations {
            current,
            ..uuid::Generations::default()
        };
        g.history[..2].copy_from_slice(&history);
        g
    };
    let mut mine = generations(local.current, local.history);
    let mut theirs = generations(peer.peer_uuid, peer.peer_history);
    if let Some(b) = mine.bitmap.get_mut(conn.peer_node_id as usize) {
        *b = local.bitmap_uuid;
    }
    if let Some(b) = theirs.bitmap.get_mut(conn.resource.node_id as usize) {
        *b = peer.peer_bitmap_uuid;
    }
    // A disk attached while connected is exempt from the rr-conflict rule, like DRBD's
    // Negotiating disk: a Primary's returning disk becomes SyncTarget of the peer's data.
    let negotiating = core::mem::replace(&mut dev.state.lock().negotiating, false);
    let to_state_role = |r: Role| state::Role::from_u32(r as u32).unwrap_or(state::Role::Unknown);
    let to_state_disk =
        |d: DiskState| state::DiskState::from_u32(d as u32).unwrap_or(state::DiskState::DUnknown);
    let input = uuid::HandshakeInput {
        local: uuid::NodeView {
            node_id: conn.resource.node_id as usize,
            uuids: &mine,
            flags: stability(&local, Some(peer.repl)) | discard_flag(conn),
            role: to_state_role(local.role),
            disk: if negotiating {
                state::DiskState::Negotiating
            } else {
                to_state_disk(local.disk)
            },
            dirty_bits: local.dirty,
            quorum: true,
        },
        peer: uuid::NodeView {
            node_id: conn.peer_node_id as usize,
            uuids: &theirs,
            flags: peer.peer_uuid_flags,
            role: to_state_role(peer.peer_role),
            disk: to_state_disk(peer.peer_disk),
            dirty_bits: peer.peer_dirty,
            quorum: true,
        },
        resolve_conflicts: conn.resource.node_id < conn.peer_node_id,
        settings: {
            let net = conn.state.lock().net;
            uuid::Settings {
                agreed_version: link.version,
                wire_protocol: net.protocol,
                after_sb_0p: net.after_sb[0],
                after_sb_1p: net.after_sb[1],
                after_sb_2p: net.after_sb[2],
                rr_conflict: net.rr_conflict,
                always_asbp: net.always_asbp,
                ..uuid::Settings::default()
            }
        },
        changed_since_sent: false,
        connecting: false,
        source_missed_end: false,
        peer_missed_end: false,
    };
    let mut decision = uuid::sync_handshake(&input);
    if decision.demote_local {
        // call-pri-lost-after-sb: this Primary's changes lose. It becomes SyncTarget if it
        // can give up the role; if it is in use, the pri-lost-after-sb helper decides.
        let demoted = {
            let mut rs = conn.resource.state.lock();
            crate::role::demote(&conn.resource, &mut rs)
        };
        match demoted {
            Ok(()) => {
                decision.demote_local = false;
                pr_warn!(
                    "{}/{} drbd{}: Successfully gave up primary role.\n",
                    conn.resource.name,
                    dev.volume,
                    dev.minor
                );
            }
            Err(_) => decision = decision.demotion_failed(),
        }
    }
    let split_brain = decision.demote_local
        || matches!(decision.outcome(), uuid::Outcome::SplitBrain { .. })
        || matches!(
            decision.resolution,
            uuid::Resolution::Quorum
                | uuid::Resolution::AfterSbPolicy { .. }
                | uuid::Resolution::DiscardMyData
                | uuid::Resolution::DiscardMyDataReversed
        );
    if split_brain {
        // Runs between packets in the receiver thread, with no lock held.
        crate::helper::call_peer_device(conn, dev, Helper::InitialSplitBrain);
    }
    if let uuid::Resolution::AfterSbPolicy { primaries } = decision.resolution {
        let from = if matches!(decision.outcome(), uuid::Outcome::Source { .. }) {
            "this"
        } else {
            "peer"
        };
        pr_info!(
            "{}/{} drbd{}: Split-Brain detected, {} primaries, automatically solved. Sync from {} node\n",
            conn.resource.name,
            dev.volume,
            dev.minor,
            primaries,
            from
        );
    }
    if decision.helpers & uuid::helpers::PRI_LOST_AFTER_SB != 0 {
        pr_err!(
            "{}/{} drbd{}: the after-sb policy discards this Primary's data, but it is in use\n",
            conn.resource.name,
            dev.volume,
            dev.minor
        );
        crate::helper::call_peer_device(conn, dev, Helper::PriLostAfterSb);
    }
    if decision.resolution == uuid::Resolution::DiscardMyData {
        pr_info!(
            "{}/{} drbd{}: split brain resolved: this node discards its changes (--discard-my-data)\n",
            conn.resource.name,
            dev.volume,
            dev.minor
        );
    }
    pr_info!(
        "{}/{} drbd{}: sync handshake: {} (rule {}, {}) local {:016X} peer {:016X}\n",
        conn.resource.name,
        dev.volume,
        dev.minor,
        decision.strategy.name(),
        decision.rule.number(),
        decision.rule.name(),
        local.current,
        peer.peer_uuid
    );
    let outcome = decision.outcome();
    if matches!(
        outcome,
        uuid::Outcome::NoSync | uuid::Outcome::Source { .. } | uuid::Outcome::Target { .. }
    ) {
        // The request was honoured (or not needed): later handshakes are ordinary again.
        conn.state.lock().discard_my_data = false;
    }
    match outcome {
        uuid::Outcome::NoSync => Ok(ReplState::Established),
        uuid::Outcome::Source { full } => {
            if full {
                dev.oos.lock().mark_all();
            }
            Ok(ReplState::SyncSource)
        }
        uuid::Outcome::Target { .. } => Ok(ReplState::SyncTarget),
        uuid::Outcome::SplitBrain { .. } => {
            crate::helper::call_peer_device(conn, dev, Helper::SplitBrain);
            Err("Split-Brain detected, dropping connection!")
        }
        uuid::Outcome::UnrelatedData => Err("Unrelated data, aborting!"),
        uuid::Outcome::Retry | uuid::Outcome::Disconnect => Err("sync handshake failed"),
    }
}

// ---- data stream receiver ------------------------------------------------------------------

/// Why the receiver stopped.
pub(crate) enum Stop {
    /// The link broke or was shut down.
    Broken,
    /// The peer violated the protocol.
    Protocol,
    /// The data diverged (split brain, unrelated data): go StandAlone.
    Diverged(&'static str),
}

/// Reads the data stream until it fails. Runs in its own thread. Writes are submitted
/// without waiting (`crate::peer_write`); everything else is handled after the writes before
/// it finished.
pub(crate) fn receive(conn: &Arc<Connection>, link: &Arc<Link>) -> Stop {
    link.data.set_recv_timeout(0);
    let writer = match PeerWriter::start(conn, link) {
        Ok(w) => w,
        Err(_) => return Stop::Broken,
    };
    // Writes that arrive back to back reach the disk as one batch (flushed when we block).
    crate::sys::plug::with_plug(|| receive_loop(conn, link, &writer))
}

fn receive_loop(conn: &Arc<Connection>, link: &Arc<Link>, writer: &PeerWriter) -> Stop {
    let kind = link.kind();
    loop {
        let h = match packet::recv_header(&link.data, kind) {
            Ok(h) => h,
            Err(e) if e == EINVAL => return Stop::Protocol,
            Err(_) => return Stop::Broken,
        };
        let volume = u32::from(h.volume);
        if matches!(h.cmd, wire::P_DATA | wire::P_RS_DATA_REPLY) {
            if let Err(stop) = on_data(conn, link, &writer.writes, volume, h.cmd, h.length) {
                return stop;
            }
            continue;
        }
        if h.cmd == wire::P_DATA_REPLY {
            if let Err(stop) = crate::remote_read::on_reply(link, h.length) {
                return stop;
            }
            continue;
        }
        let payload = match packet::recv_payload(&link.data, h.length, MAX_STATE_PAYLOAD) {
            Ok(p) => p,
            Err(e) if e == EINVAL => return Stop::Protocol,
            Err(_) => return Stop::Broken,
        };
        if h.cmd == wire::P_BARRIER {
            // Ends an epoch; the writes go on (the ack thread acknowledges it).
            let Some(barrier) = crate::barrier::decode_barrier(&payload) else {
                return Stop::Protocol;
            };
            if writer.writes.barrier(barrier).is_none() {
                return Stop::Broken;
            }
            continue;
        }
        // State follows data: apply it only once the writes before it are on disk.
        writer.writes.drain();
        let result = match h.cmd {
            wire::P_SIZES => on_sizes(conn, link, volume, &payload),
            wire::P_UUIDS110 => on_uuids(conn, link, volume, &payload),
            wire::P_STATE => on_state(conn, link, volume, &payload),
            wire::P_OUT_OF_SYNC => device_of(conn, volume)
                .ok_or(Stop::Protocol)
                .and_then(|dev| crate::resync::on_out_of_sync(&dev, &payload)),
            wire::P_SYNC_PARAM89 => crate::verify::on_params(conn, &payload),
            wire::P_OV_REQUEST => crate::verify::on_request(conn, link, volume, &payload),
            wire::P_OV_REPLY => crate::verify::on_reply(conn, link, volume, &payload),
            wire::P_DATA_REQUEST => crate::remote_read::on_request(conn, link, volume, &payload),
            _ => Err(Stop::Protocol),
        };
        if let Err(stop) = result {
            return stop;
        }
    }
}

fn on_sizes(conn: &Connection, link: &Link, volume: u32, payload: &[u8]) -> Result<(), Stop> {
    let base = wire::SizesBase::decode(payload).map_err(|_| Stop::Protocol)?;
    let before = conn.peer_dev(volume);
    conn.update_peer(volume, |p| {
        p.peer_size = base.c_size;
        p.peer_max = base.d_size;
        p.sizes_seen = p.sizes_seen.wrapping_add(1);
    });
    // Established and the peer's disk offers more now (its backing device grew and it moved
    // its meta-data for a resize): ours may have grown too; answer with what we offer.
    let offers_more = before
        .as_ref()
        .is_some_and(|b| b.repl == ReplState::Established && base.d_size > b.peer_max);
    if offers_more {
        if let Some(dev) = device_of(conn, volume) {
            if let Err(e) = crate::md_move::follow_backing(&dev) {
                pr_warn!(
                    "drbd{}: cannot grow with the peer: {}\n",
                    dev.minor,
                    e.info()
                );
            }
            send_sizes(conn, link, &dev).map_err(|_| Stop::Broken)?;
        }
    }
    // Established and the peer itself just got larger: it resized online, follow it.
    let grew = before.is_some_and(|b| {
        b.repl == ReplState::Established && b.peer_size != 0 && base.c_size > b.peer_size
    });
    if grew {
        if let Some(dev) = device_of(conn, volume) {
            match crate::resize::follow_peer(&dev, base.c_size) {
                Ok(true) => conn.update_peer(volume, |p| p.grown = true),
                Ok(false) => {}
                Err(_) => return Err(Stop::Broken),
            }
        }
    }
    Ok(())
}

fn on_uuids(conn: &Connection, link: &Link, volume: u32, payload: &[u8]) -> Result<(), Stop> {
    let u = Uuids110::decode(payload).map_err(|_| Stop::Protocol)?;
    let me = conn.resource.node_id;
    let towards_me = if me < 64 && u.bitmap_uuids_mask & (1u64 << me) != 0 {
        u.bitmap_uuids.get(me as usize).copied().unwrap_or(0)
    } else {
        0
    };
    conn.update_peer(volume, |p| {
        p.peer_uuid = u.current_uuid;
        p.peer_history = [u.history_uuids[0], u.history_uuids[1]];
        p.peer_bitmap_uuid = towards_me;
        p.peer_dirty = u.dirty_bits;
        p.peer_uuid_flags = u.uuid_flags;
    });
    let special = wire::UUID_FLAG_NEW_DATAGEN | wire::UUID_FLAG_SKIP_INITIAL_SYNC;
    if u.uuid_flags & special != 0 {
        if let Some(dev) = device_of(conn, volume) {
            crate::admin::on_peer_uuids(
                conn,
                link,
                &dev,
                u.uuid_flags,
                u.current_uuid,
                u.history_uuids[0],
            );
        }
    }
    Ok(())
}

pub(crate) fn device_of(conn: &Connection, volume: u32) -> Option<Arc<Device>> {
    conn.resource.state.lock().device_by_volume(volume).cloned()
}

fn on_state(
    conn: &Arc<Connection>,
    link: &Arc<Link>,
    volume: u32,
    payload: &[u8],
) -> Result<(), Stop> {
    let raw: [u8; 4] = payload
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(Stop::Protocol)?;
    let s = DrbdState(u32::from_be_bytes(raw));
    let peer_role = Role::from_u32(s.role()).unwrap_or(Role::Unknown);
    let peer_disk = DiskState::from_u32(s.disk()).ok_or(Stop::Protocol)?;
    // The protocol works with the running states; a pause travels as the peer's user_isp.
    let peer_repl = ReplState::from_u32(s.conn())
        .and_then(|r| state::ReplState::from_u32(r as u32))
        .map(crate::proto::admin::running_repl)
        .and_then(|r| ReplState::from_u32(r.to_u32()))
        .unwrap_or(ReplState::Established);
    conn.set_peer_role(peer_role);
    crate::admin::peer_paused(conn, volume, s.user_isp() != 0);
    let Some(dev) = device_of(conn, volume) else {
        conn.update_peer(volume, |p| {
            p.peer_disk = peer_disk;
            p.peer_role = peer_role;
        });
        return Ok(());
    };
    let before = conn.peer_dev(volume);
    conn.update_peer(volume, |p| {
        p.peer_disk = peer_disk;
        p.peer_role = peer_role;
    });
    crate::fence::peer_reported_disk(conn, volume, peer_disk);
    let Some(peer) = conn.peer_dev(volume) else {
        return Ok(());
    };
    peer_disk_changed(
        conn,
        link,
        &dev,
        before.map(|b| b.peer_disk),
        peer_disk,
        peer_role,
    )?;
    if before.is_some_and(|b| b.peer_disk == DiskState::Inconsistent)
        && peer_disk == DiskState::UpToDate
    {
        // The peer finished its resync: lift a fence (between packets, no lock held).
        crate::helper::unfence_peer_after_resync(conn);
    }
    let my_repl = before.map_or(ReplState::Off, |b| b.repl);
    match (my_repl, peer_repl) {
        // The source finished: take over its data generation.
        (ReplState::SyncTarget, ReplState::Established) => {
            finish_sync_target(conn, &dev, &peer);
            announce(conn, link, None).map_err(|_| Stop::Broken)?;
            crate::helper::call_peer_device(conn, &dev, Helper::AfterResyncTarget);
            return Ok(());
        }
        // A sync in progress: keep going.
        (ReplState::SyncTarget, ReplState::SyncSource | ReplState::WfBitMapS) => {
            conn.update_peer(volume, |p| {
                if p.peer_dirty > 0 {
                    p.sync_total = p.peer_dirty * crate::oos::SECTORS_PER_BIT;
                }
            });
            return Ok(());
        }
        // The target's own blocks have all arrived (they precede this state): start sending.
        (ReplState::WfBitMapS, ReplState::SyncTarget) => {
            return start_sync_source(conn, link, &dev);
        }
        (ReplState::WfBitMapS, _) => return Ok(()),
        // The peer grew the device: resync only the new area from it.
        (ReplState::Established, ReplState::SyncSource) if peer.grown => {
            conn.update_peer(volume, |p| p.grown = false);
            return crate::resync::sync_grown_area(conn, link, &dev);
        }
        // The peer wants to overwrite our data (invalidate-remote).
        (ReplState::Established, ReplState::SyncSource) => {
            return crate::resync::become_target_on_request(conn, link, &dev);
        }
        (ReplState::SyncSource, _) => return Ok(()),
        // Online verify: the source finished, or asks us to be its target.
        (ReplState::VerifyT, ReplState::Established) => {
            crate::verify::finish_target(conn, link, &dev);
            return Ok(());
        }
        (ReplState::VerifyS | ReplState::VerifyT, _) => return Ok(()),
        (ReplState::Established, ReplState::VerifyS) => {
            crate::verify::start_target(conn, link, &dev);
            return Ok(());
        }
        _ => {}
    }
    let decided = decide(conn, &dev, &peer, link);
    if decided.is_ok() {
        crate::wfc::set_peer_connected(&dev, conn.peer_node_id, true);
    }
    match decided {
        // The target decided first: its bitmap came before this state, start sending.
        Ok(ReplState::SyncSource) if peer_repl == ReplState::SyncTarget => {
            start_sync_source(conn, link, &dev)
        }
        // Wait for the target's bitmap before sending anything.
        Ok(ReplState::SyncSource) => {
            conn.set_repl(volume, ReplState::WfBitMapS);
            Ok(())
        }
        Ok(ReplState::SyncTarget) => {
            let status = crate::helper::call_peer_device(conn, &dev, Helper::BeforeResyncTarget);
            if let Some(code @ 1..) = crate::proto::helper::exit_code(status) {
                pr_info!(
                    "{}/{} drbd{}: before-resync-target handler returned {}, dropping connection\n",
                    conn.resource.name,
                    dev.volume,
                    dev.minor,
                    code
                );
                return Err(Stop::Broken);
            }
            start_sync_target(conn, &dev, peer.peer_dirty);
            let own = crate::resync::send_own_bitmap(link, &dev)?;
            if own > 0 {
                pr_info!(
                    "{}/{} drbd{}: sent {} KiB changed here to the SyncSource\n",
                    conn.resource.name,
                    dev.volume,
                    dev.minor,
                    own * crate::oos::SECTORS_PER_BIT / 2
                );
            }
            // Tell the source, which starts sending when it sees this state.
            announce(conn, link, Some((dev.volume, ReplState::SyncTarget)))
                .map_err(|_| Stop::Broken)
        }
        Ok(r) => {
            conn.set_repl(volume, r);
            if r == ReplState::Established {
                crate::admin::settle_after_handshake(conn, link, &dev, peer_disk);
            }
            Ok(())
        }
        Err(why) => Err(Stop::Diverged(why)),
    }
}

/// The peer's disk failed or was detached, or came back (`proto::io_error` rules): with a
/// Primary around, the node that keeps UpToDate data starts a new data generation (the old
/// one stays as the peer's bitmap UUID, and the peer's writes through us are marked), so a
/// later attach resyncs exactly what changed; when the disk returns, our state goes to the
/// peer again so that both sides run the sync decision.
fn peer_disk_changed(
    conn: &Connection,
    link: &Link,
    dev: &Device,
    before: Option<DiskState>,
    after: DiskState,
    peer_role: Role,
) -> Result<(), Stop> {
    use crate::io_error::IntoProto;
    let Some(before) = before else { return Ok(()) };
    let role = conn.resource.state.lock().role;
    let local = dev.state.lock().disk_state;
    let someone_primary = role == Role::Primary || peer_role == Role::Primary;
    if crate::proto::io_error::new_generation_on_peer_disk_loss(
        before.into_proto(),
        after.into_proto(),
        local.into_proto(),
        someone_primary,
    ) {
        crate::role::peer_disk_lost(dev, conn.peer_node_id, role == Role::Primary);
    }
    if before <= DiskState::Failed
        && after >= DiskState::Inconsistent
        && local != DiskState::Diskless
    {
        announce(conn, link, None).map_err(|_| Stop::Broken)?;
    }
    Ok(())
}

/// Receives a write (`P_DATA`, `P_RS_DATA_REPLY`) of `length` payload bytes straight into
/// pages and submits it; the ack thread acknowledges it once it is on disk.
fn on_data(
    conn: &Connection,
    link: &Link,
    writes: &Arc<PeerWrites>,
    volume: u32,
    cmd: u16,
    length: u32,
) -> Result<(), Stop> {
    let size = length
        .checked_sub(DataHeader::SIZE as u32)
        .filter(|&n| n > 0 && n % 512 == 0 && n <= MAX_DATA_PAYLOAD)
        .ok_or(Stop::Protocol)?;
    let mut hb = [0u8; DataHeader::SIZE];
    link.data.recv_exact(&mut hb).map_err(|_| Stop::Broken)?;
    let dh = DataHeader::decode(&hb).map_err(|_| Stop::Protocol)?;
    let dev = device_of(conn, volume).ok_or(Stop::Protocol)?;
    let lower = dev
        .peer_target(dh.sector, u64::from(size / 512))
        .ok_or(Stop::Protocol)?;
    let plan = AckPlan {
        on_ok: match cmd {
            wire::P_RS_DATA_REPLY => Some(wire::P_RS_WRITE_ACK),
            _ if dh.dp_flags & wire::DP_SEND_WRITE_ACK != 0 => Some(wire::P_WRITE_ACK),
            _ => None,
        },
        on_fail: match cmd {
            wire::P_RS_DATA_REPLY => Some(wire::P_NEG_ACK),
            _ if dh.dp_flags & wire::DP_SEND_WRITE_ACK != 0 => Some(wire::P_NEG_ACK),
            _ => None,
        },
        volume: volume as u16,
        sector: dh.sector,
        block_id: dh.block_id,
        seq_num: dh.seq_num,
        size,
        resync: cmd == wire::P_RS_DATA_REPLY,
    };
    if cmd == wire::P_DATA {
        use crate::io_error::IntoProto;
        let peer_disk = conn
            .peer_dev(volume)
            .map_or(DiskState::DUnknown, |p| p.peer_disk);
        if crate::proto::io_error::mark_peer_write(peer_disk.into_proto()) {
            // A diskless peer writes through us: its next attach needs these blocks.
            dev.oos.lock().mark(dh.sector, u64::from(size));
        }
        if link.ov.active() {
            // A verify request for these blocks in flight compares two versions now, and
            // blocks read ahead for hashing are old.
            dev.sync_lock
                .lock()
                .note_write(dh.sector, u64::from(size / 512));
        }
    }
    if cmd == wire::P_DATA && dh.dp_flags & wire::DP_SEND_RECEIVE_ACK != 0 {
        send_block_ack(link, wire::P_RECV_ACK, &plan, false).map_err(|_| Stop::Broken)?;
    }
    let flags = WriteFlags {
        preflush: dh.dp_flags & wire::DP_FLUSH != 0,
        fua: dh.dp_flags & wire::DP_FUA != 0,
    };
    let order = if cmd == wire::P_RS_DATA_REPLY {
        EpochOrder::None
    } else if dh.dp_flags & wire::DP_SEND_WRITE_ACK != 0 {
        EpochOrder::Member
    } else {
        EpochOrder::AfterEarlierEpochs
    };
    let slot = writes
        .reserve(plan, flags.preflush, order)
        .ok_or(Stop::Broken)?;
    let mut buf = match PageBuf::alloc(size as usize) {
        Ok(b) => b,
        Err(_) => {
            writes.release(slot);
            pr_err!("{}: out of memory for a peer write\n", conn.resource.name);
            return Err(Stop::Broken);
        }
    };
    if buf.recv(&link.data).is_err() {
        writes.release(slot);
        return Err(Stop::Broken);
    }
    writes.submit(slot, dh.sector, lower, buf, flags);
    Ok(())
}

/// Sends the acknowledgement `cmd` for a peer write on the meta stream; `more`: another ack
/// follows at once (corked into the same segment).
pub(crate) fn send_block_ack(link: &Link, cmd: u16, plan: &AckPlan, more: bool) -> Result {
    let ack = BlockAck {
        sector: plan.sector,
        block_id: plan.block_id,
        blksize: plan.size,
        seq_num: plan.seq_num,
    };
    let mut b = [0u8; BlockAck::SIZE];
    ack.encode(&mut b).map_err(|_| EINVAL)?;
    link.send_meta_corked(cmd, plan.volume, &b, more)
}

/// Handles an acknowledgement on the meta stream; `false` = protocol violation.
pub(crate) fn on_ack(
    conn: &Connection,
    link: &Link,
    cmd: u16,
    volume: u16,
    payload: &[u8],
) -> bool {
    let Ok(ack) = BlockAck::decode(payload) else {
        return false;
    };
    match cmd {
        wire::P_RECV_ACK if ack.block_id != 0 => {
            // Protocol B: received by the peer counts as stored.
            if let Some(req) = link.tl.received(ack.block_id) {
                req.part_done(true);
            }
            true
        }
        wire::P_WRITE_ACK | wire::P_NEG_ACK if ack.block_id != 0 => {
            if let Some(a) = link.tl.answered(ack.block_id) {
                // A failed remote write leaves the peer out of date but the local write decides.
                if cmd == wire::P_NEG_ACK {
                    a.req.mark_out_of_sync();
                }
                if let Some(req) = a.waiting {
                    req.part_done(cmd == wire::P_WRITE_ACK);
                }
            }
            if cmd == wire::P_NEG_ACK {
                pr_warn!(
                    "{}: peer failed to write sector {}\n",
                    conn.resource.name,
                    ack.sector
                );
            }
            true
        }
        wire::P_RS_WRITE_ACK | wire::P_NEG_ACK => {
            // An answer to a chunk never sent is a protocol violation.
            if link
                .rs_in_flight
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_err()
            {
                return false;
            }
            link.rs_progress_ms.store(now_ms(), Ordering::Release);
            conn.add_synced(u32::from(volume), u64::from(ack.blksize / 512));
            true
        }
        _ => false,
    }
}

// ---- write path ----------------------------------------------------------------------------

/// Where a Primary's write must go besides the local disk.
pub(crate) enum WritePath {
    /// No peers configured.
    Local,
    /// Peers configured but none replicates this volume now: the write is marked out of sync.
    Degraded,
    /// Mirror to this connection with this protocol.
    Mirror(Arc<Connection>, Arc<Link>, u32),
}

/// Where a Primary's write to `dev` must also go: a connected peer that replicates the volume.
pub(crate) fn write_target(dev: &Device) -> WritePath {
    let rs = dev.resource.state.lock();
    if rs.connections().next().is_none() {
        return WritePath::Local;
    }
    for conn in rs.connections() {
        let cs = conn.state.lock();
        let Some(link) = cs.link.clone() else {
            continue;
        };
        let replicating = cs.peers.iter().any(|p| {
            p.volume == dev.volume
                && matches!(
                    p.repl,
                    ReplState::Established
                        | ReplState::WfBitMapS
                        | ReplState::SyncSource
                        | ReplState::SyncTarget
                        | ReplState::VerifyS
                        | ReplState::VerifyT
                )
                && p.peer_disk >= DiskState::Inconsistent
        });
        if replicating && cs.cstate == ConnState::Connected {
            return WritePath::Mirror(conn.clone(), link, cs.net.protocol);
        }
    }
    WritePath::Degraded
}

/// Starts a request split between the local disk (if `local`), the peer (if `peer_waits`)
/// and the submitter, and enters it in `link`'s transfer log: the request and its id there
/// (0: no room in the log). `None` if there was no memory; the bio then failed and the
/// local part counted in flight is given back.
pub(crate) fn start_split(
    dev: &Arc<Device>,
    bio: UpperBio,
    local: bool,
    peer_waits: bool,
    link: &Link,
    al: Option<crate::activity_log::AlRef>,
    clock: Option<Arc<crate::transfer_log::EpochClock>>,
) -> Option<(Arc<SharedCompletion>, u64)> {
    let _noio = crate::sys::misc::NoIoScope::enter();
    let parts = 1 + u32::from(local) + u32::from(peer_waits);
    match SharedCompletion::new(bio, parts, dev.clone(), al, clock) {
        Ok(req) => {
            let id = link.tl.add(&req, peer_waits);
            Some((req, id))
        }
        Err(bio) => {
            if local {
                dev.lower_done();
            }
            bio.end(crate::sys::bio::STATUS_IOERR);
            None
        }
    }
}

/// Mirrors a write: local submission (unless `lower` is `None`: diskless, the peer alone
/// stores it) and `P_DATA` to the peer (the caller noted the write under the device's
/// ordering lock and counted the local request in flight); completion per the protocol (A: when sent, B: when
/// received, C: when the peer acknowledged the write). The write succeeds if the local disk
/// or the peer stored it.
pub(crate) fn mirror_write(
    dev: &Arc<Device>,
    bio: UpperBio,
    lower: Option<&crate::sys::bdev::BlockDev>,
    conn: &Connection,
    link: &Link,
    protocol: u32,
    al: Option<crate::activity_log::AlRef>,
) {
    let sector = bio.sector();
    let len = bio.size();
    let mut dp_flags = 0;
    if bio.is_fua() {
        dp_flags |= wire::DP_FUA;
    }
    if bio.is_preflush() {
        dp_flags |= wire::DP_FLUSH;
    }
    // Protocol B/C: the upper bio also waits for the peer (receipt or write).
    let wait_for_peer = protocol != 1;
    // Every protocol keeps the write in the transfer log until its epoch is acknowledged.
    let clock = Some(link.tl.clock.clone());
    let Some((req, block_id)) =
        start_split(dev, bio, lower.is_some(), wait_for_peer, link, al, clock)
    else {
        if lower.is_some() {
            dev.ordered_write_done();
        }
        return;
    };
    if block_id == 0 {
        // Untracked (no memory): do not wait for the peer, resync these blocks later.
        req.mark_out_of_sync();
        if wait_for_peer {
            req.part_done(false);
        }
    }
    // The answer the completion needs: the write (C) or its receipt (B); A needs none.
    if block_id != 0 {
        dp_flags |= match protocol {
            3 => wire::DP_SEND_WRITE_ACK,
            2 => wire::DP_SEND_RECEIVE_ACK,
            _ => 0,
        };
    }
    // Nothing else in flight to the disk (our own local part aside): no burst to join.
    let alone = dev.inflight.load(Ordering::Acquire) <= usize::from(lower.is_some());
    if let Some(lower) = lower {
        req.set_ordered();
        req.submit_local(lower);
    }
    let queued = crate::sender::QueuedWrite {
        req,
        block_id,
        sector,
        len,
        volume: dev.volume as u16,
        dp_flags,
        wait_for_peer,
    };
    if alone {
        // A lone write (QD1) goes out at once, without waking the sender.
        crate::sender::send_now(&conn.resource.name, link, queued);
        return;
    }
    // The sender thread sends it (with whatever else is queued) and ends our part.
    if let Err(w) = link.queue.push(queued) {
        // The link is going down: the peer will resync these blocks.
        w.abandon(link);
        pr_warn!(
            "{}: connection lost before a write was sent\n",
            conn.resource.name
        );
    }
}
