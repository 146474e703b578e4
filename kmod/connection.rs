//! A connection to one peer node of a resource: its network options, its path (local and peer
//! address), its connection state, and the thread that establishes and watches the link.
//!
//! Lock order: `Resource::state` → `Connection::state`. The link thread takes only
//! `Connection::state`; `disconnect` takes the thread out of the state and stops it with no
//! lock held (the thread may be waiting for that lock).

use crate::options::OptionSet;
use crate::proto::uuid::AfterSbPolicy;
use crate::replication::Link;
use crate::resource::Resource;
use crate::spec::generated::{ConnState, DiskState, ReplState, Role};
use crate::sys::socket::{Ipv4Addr, Socket};
use crate::sys::thread::KThread;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

/// Network options that the link uses (`NET_CONF`; times as DRBD's units).
#[derive(Clone, Copy)]
pub(crate) struct NetOptions {
    /// Replication protocol: 1 = A, 2 = B, 3 = C.
    pub(crate) protocol: u32,
    /// Seconds between connection attempts.
    pub(crate) connect_int_s: u32,
    /// Seconds of idle time before a ping.
    pub(crate) ping_int_s: u32,
    /// Tenths of a second to wait for a ping answer.
    pub(crate) ping_timeo_ds: u32,
    /// after-sb-0pri, after-sb-1pri, after-sb-2pri (split-brain recovery policies).
    pub(crate) after_sb: [AfterSbPolicy; 3],
    /// rr-conflict.
    pub(crate) rr_conflict: AfterSbPolicy,
    /// always-asbp.
    pub(crate) always_asbp: bool,
    /// Tenths of a second a request may wait for the peer's ack (`timeout`).
    pub(crate) timeout_ds: u32,
    /// Timeout periods an overdue ack is tolerated before the peer is expelled
    /// (`ko-count`, 0 = never).
    pub(crate) ko_count: u32,
    /// Writes per epoch at most (`max-epoch-size`).
    pub(crate) max_epoch_size: u32,
    /// CRAM-HMAC peer authentication, if `cram-hmac-alg` is set.
    pub(crate) auth: Option<AuthConf>,
    /// `verify-alg` (online verify), checked to exist as a kernel digest; `None` = unset.
    pub(crate) verify_alg: Option<crate::proto::wire::AlgName>,
}

/// CRAM-HMAC settings: the hash (`cram-hmac-alg`) and the key (`shared-secret`).
///
/// Kept inline (no allocation) so `NetOptions` stays `Copy`; lives with the options.
#[derive(Clone, Copy)]
pub(crate) struct AuthConf {
    alg: [u8; 64],
    alg_len: usize,
    secret: [u8; crate::proto::wire_auth::MAX_SECRET_LEN],
    secret_len: usize,
}

impl AuthConf {
    /// Settings for `alg` keyed with `secret`; `None` if either is too long.
    pub(crate) fn new(alg: &[u8], secret: &[u8]) -> Option<Self> {
        let mut c = Self {
            alg: [0; 64],
            alg_len: alg.len(),
            secret: [0; crate::proto::wire_auth::MAX_SECRET_LEN],
            secret_len: secret.len(),
        };
        c.alg.get_mut(..alg.len())?.copy_from_slice(alg);
        c.secret.get_mut(..secret.len())?.copy_from_slice(secret);
        Some(c)
    }

    /// The hash name (`sha256`).
    pub(crate) fn alg(&self) -> &[u8] {
        self.alg.get(..self.alg_len).unwrap_or(&[])
    }

    /// The shared secret.
    pub(crate) fn secret(&self) -> &[u8] {
        self.secret.get(..self.secret_len).unwrap_or(&[])
    }
}

impl Default for NetOptions {
    fn default() -> Self {
        Self {
            protocol: 3,
            connect_int_s: 10,
            ping_int_s: 10,
            ping_timeo_ds: 5,
            after_sb: [AfterSbPolicy::Disconnect; 3],
            rr_conflict: AfterSbPolicy::Disconnect,
            always_asbp: false,
            timeout_ds: 60,
            ko_count: 7,
            max_epoch_size: crate::proto::epoch::MAX_EPOCH_SIZE,
            auth: None,
            verify_alg: None,
        }
    }
}

/// The network path of a connection.
#[derive(Clone, Copy)]
pub(crate) struct Path {
    /// Our address (we listen here).
    pub(crate) local: Ipv4Addr,
    /// The peer's address (we connect there).
    pub(crate) peer: Ipv4Addr,
}

/// Mutable state, behind `Connection::state`.
pub(crate) struct ConnectionState {
    /// Connection name (`--_name`, usually the peer's host name).
    pub(crate) name: crate::name::Name,
    /// Options the link acts on (derived from `net_conf`).
    pub(crate) net: NetOptions,
    /// Every net option as configured (reported by `show`).
    pub(crate) net_conf: OptionSet,
    /// Connection state.
    pub(crate) cstate: ConnState,
    /// The peer's role as last reported.
    pub(crate) peer_role: Role,
    /// The one path (DRBD allows several; one is supported).
    pub(crate) path: Option<Path>,
    /// The path has an established TCP connection.
    pub(crate) established: bool,
    /// Link thread while connecting or connected.
    pub(crate) thread: Option<KThread>,
    /// Sockets in use by the link thread (shut down by `disconnect` to wake it).
    pub(crate) sockets: KVec<Arc<Socket>>,
    /// Peer devices, one per volume of the resource (kept here so the link threads never
    /// need `Resource::state` while holding this lock).
    pub(crate) peers: KVec<PeerDev>,
    /// The established link while connected (the write path sends through it).
    pub(crate) link: Option<Arc<Link>>,
    /// Resync sender while this node is SyncSource.
    pub(crate) resync: Option<KThread>,
    /// `connect --discard-my-data`: in the next handshake this node gives up its changes
    /// (split-brain recovery); cleared once a handshake succeeded.
    pub(crate) discard_my_data: bool,
}

/// Replication state of one volume towards the peer.
#[derive(Clone, Copy)]
pub(crate) struct PeerDev {
    /// Volume number.
    pub(crate) volume: u32,
    /// Replication state.
    pub(crate) repl: ReplState,
    /// The peer's disk state.
    pub(crate) peer_disk: DiskState,
    /// The peer slot's `MDF_PEER_OUTDATED`: the peer's disk is known to be Outdated or worse,
    /// so while it is unreachable it shows as Outdated (kept across links).
    pub(crate) known_outdated: bool,
    /// The peer's role.
    pub(crate) peer_role: Role,
    /// The peer's current data generation.
    pub(crate) peer_uuid: u64,
    /// The peer's two newest history generations.
    pub(crate) peer_history: [u64; 2],
    /// The peer's device size (sectors).
    pub(crate) peer_size: u64,
    /// The peer's bitmap UUID towards this node (0 = in sync).
    pub(crate) peer_bitmap_uuid: u64,
    /// Blocks the peer has marked out of sync towards this node.
    pub(crate) peer_dirty: u64,
    /// The peer's `UUID_FLAG_*`.
    pub(crate) peer_uuid_flags: u64,
    /// Sectors to resync in the running sync (0 = no sync).
    pub(crate) sync_total: u64,
    /// Sectors resynced (or verified) so far.
    pub(crate) synced: u64,
    /// `pause-sync` on this node (`user_isp`); kept while the connection is down.
    pub(crate) susp_user: bool,
    /// `pause-sync` on the peer (its `user_isp` in `P_STATE`, our `peer_isp`).
    pub(crate) susp_peer: bool,
    /// Sectors online verify found different (marked out of sync, reported as
    /// `out-of-sync` until a resync starts).
    pub(crate) ov_found: u64,
    /// First sector of the running (or last) verify.
    pub(crate) ov_start: u64,
    /// The largest data area the peer's disk offers (`P_SIZES` `d_size`).
    pub(crate) peer_max: u64,
    /// `P_SIZES` received so far (a resize waits for the answer to its own).
    pub(crate) sizes_seen: u32,
    /// We grew to follow the peer's resize; its SyncSource state resyncs only the new area.
    pub(crate) grown: bool,
    /// Timing of the running resync or verify (`rs_dt*`/`rs_db*` statistics).
    pub(crate) clock: crate::proto::sync_clock::SyncClock,
}

impl PeerDev {
    /// A peer device of a connection that is not established.
    pub(crate) fn new(volume: u32) -> Self {
        Self {
            volume,
            repl: ReplState::Off,
            peer_disk: DiskState::DUnknown,
            known_outdated: false,
            peer_role: Role::Unknown,
            peer_uuid: 0,
            peer_history: [0; 2],
            peer_size: 0,
            peer_bitmap_uuid: 0,
            peer_dirty: 0,
            peer_uuid_flags: 0,
            sync_total: 0,
            synced: 0,
            susp_user: false,
            susp_peer: false,
            ov_found: 0,
            ov_start: 0,
            peer_max: 0,
            sizes_seen: 0,
            grown: false,
            clock: crate::proto::sync_clock::SyncClock::start(0, 0, false),
        }
    }

    /// Sectors the running resync or verify still has to do.
    pub(crate) fn sync_left(&self) -> u64 {
        self.sync_total.saturating_sub(self.synced)
    }

    /// A resync or verify of `total` sectors starts now.
    pub(crate) fn start_sync(&mut self, total: u64) {
        self.sync_total = total;
        self.synced = 0;
        let paused = self.susp_user || self.susp_peer;
        self.clock =
            crate::proto::sync_clock::SyncClock::start(crate::replication::now_ms(), total, paused);
    }

    /// The pause flags changed: the clock counts paused time.
    pub(crate) fn note_pause(&mut self) {
        let paused = self.susp_user || self.susp_peer;
        let left = self.sync_left();
        self.clock
            .set_paused(crate::replication::now_ms(), paused, left);
    }

    /// Why the resync towards this peer is suspended.
    pub(crate) fn susp(&self) -> crate::proto::admin::ResyncSusp {
        crate::proto::admin::ResyncSusp {
            user: self.susp_user,
            peer: self.susp_peer,
            dependency: false,
        }
    }

    /// The resync is held (by either side's `pause-sync`).
    pub(crate) fn paused(&self) -> bool {
        self.susp().any()
    }

    /// The replication state as reported and sent: `PausedSync*` while a suspended resync
    /// runs (`repl` itself keeps the running state the protocol works with).
    pub(crate) fn shown_repl(&self) -> ReplState {
        let r = crate::proto::state::ReplState::from_u32(self.repl as u32);
        r.map(|r| crate::proto::admin::shown_repl(r, self.susp()))
            .and_then(|r| ReplState::from_u32(r.to_u32()))
            .unwrap_or(self.repl)
    }
}

/// A connection.
///
/// Lifetime: created by `new-peer`, owned by the resource's connection list and by its link
/// thread while it runs; removed by `del-peer`/`down` after the thread has stopped.
#[pin_data]
pub(crate) struct Connection {
    /// Owning resource.
    pub(crate) resource: Arc<Resource>,
    /// Node id of the peer.
    pub(crate) peer_node_id: u32,
    /// Tells the link thread to finish.
    pub(crate) stopping: AtomicBool,
    /// Options, state and thread.
    #[pin]
    pub(crate) state: Mutex<ConnectionState>,
}

impl Connection {
    /// A StandAlone connection without paths.
    pub(crate) fn new(
        resource: Arc<Resource>,
        peer_node_id: u32,
        name: crate::name::Name,
        net: NetOptions,
        net_conf: OptionSet,
    ) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                resource,
                peer_node_id,
                stopping: AtomicBool::new(false),
                state <- new_mutex!(
                    ConnectionState {
                        name,
                        net,
                        net_conf,
                        cstate: ConnState::StandAlone,
                        peer_role: Role::Unknown,
                        path: None,
                        established: false,
                        thread: None,
                        sockets: KVec::new(),
                        peers: KVec::new(),
                        link: None,
                        resync: None,
                        discard_my_data: false,
                    },
                    "Connection::state"
                ),
            }),
            GFP_KERNEL,
        )
    }

    /// Starts connecting (`connect`): the link thread tries until `disconnect`.
    /// `discard_my_data` asks the next handshake to resolve a split brain against this node.
    pub(crate) fn start(self: &Arc<Self>, discard_my_data: bool) -> Result {
        // A link thread that ended by itself (split brain, unrelated data) left the
        // connection StandAlone: reap it so `connect` works without a `disconnect` first.
        let ended = {
            let mut st = self.state.lock();
            if st.thread.is_some() && st.cstate == ConnState::StandAlone {
                st.thread.take()
            } else {
                None
            }
        };
        if let Some(t) = ended {
            t.stop();
        }
        let mut st = self.state.lock();
        if discard_my_data {
            st.discard_my_data = true;
        }
        if st.thread.is_some() {
            return Ok(());
        }
        self.stopping.store(false, Ordering::Release);
        let me = self.clone();
        let name =
            kernel::str::CString::try_from_fmt(kernel::fmt!("drbd_c_{}", self.resource.name))?;
        st.thread = Some(KThread::spawn(&name, move || crate::link::run(me))?);
        crate::events::connection(self, &st, crate::events::Kind::Change);
        Ok(())
    }

    /// Stops the link thread and goes StandAlone (`disconnect`).
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        let (thread, resync) = {
            let mut st = self.state.lock();
            let idle = st.thread.is_none() && st.resync.is_none() && st.sockets.is_empty();
            if idle && st.cstate == ConnState::StandAlone {
                // Stopped already (`down` stops before it removes): no second event.
                return;
            }
            for s in st.sockets.iter() {
                s.shutdown();
            }
            (st.thread.take(), st.resync.take())
        };
        if let Some(t) = resync {
            t.stop();
        }
        if let Some(t) = thread {
            t.stop();
        }
        let mut st = self.state.lock();
        st.sockets = KVec::new();
        let was_established = st.established;
        st.established = false;
        st.cstate = ConnState::StandAlone;
        st.peer_role = Role::Unknown;
        crate::events::connection(self, &st, crate::events::Kind::Change);
        if was_established {
            crate::events::path(self, &st, crate::events::Kind::Change);
        }
    }

    /// The established link, if connected.
    pub(crate) fn link(&self) -> Option<Arc<Link>> {
        self.state.lock().link.clone()
    }

    /// Whether `link` is still the current link.
    pub(crate) fn is_link(&self, link: &Arc<Link>) -> bool {
        self.state
            .lock()
            .link
            .as_ref()
            .is_some_and(|l| Arc::ptr_eq(l, link))
    }

    /// Publishes (or withdraws) the established link; withdrawing resets the peer devices.
    pub(crate) fn set_link(&self, link: Option<Arc<Link>>) {
        let mut st = self.state.lock();
        if link.is_none() {
            for p in st.peers.iter_mut() {
                let (susp_user, known_outdated) = (p.susp_user, p.known_outdated);
                *p = PeerDev::new(p.volume);
                p.susp_user = susp_user;
                p.known_outdated = known_outdated;
                if known_outdated {
                    p.peer_disk = DiskState::Outdated;
                }
            }
        }
        st.link = link;
    }

    /// Keeps the resync sender so `disconnect` can stop it.
    pub(crate) fn set_resync_thread(&self, thread: KThread) {
        let old = self.state.lock().resync.replace(thread);
        drop(old);
    }

    /// Takes the resync sender (the link ended).
    pub(crate) fn take_resync_thread(&self) -> Option<KThread> {
        self.state.lock().resync.take()
    }

    /// A copy of the peer device of `volume`.
    pub(crate) fn peer_dev(&self, volume: u32) -> Option<PeerDev> {
        self.state
            .lock()
            .peers
            .iter()
            .find(|p| p.volume == volume)
            .copied()
    }

    /// Changes the peer device of `volume` (no event).
    pub(crate) fn update_peer(&self, volume: u32, f: impl FnOnce(&mut PeerDev)) {
        if let Some(p) = self
            .state
            .lock()
            .peers
            .iter_mut()
            .find(|p| p.volume == volume)
        {
            f(p);
        }
    }

    /// Sets the replication state of `volume` and announces the peer device.
    pub(crate) fn set_repl(&self, volume: u32, repl: ReplState) {
        let mut st = self.state.lock();
        if let Some(p) = st.peers.iter_mut().find(|p| p.volume == volume) {
            p.repl = repl;
            if !matches!(
                repl,
                ReplState::SyncSource
                    | ReplState::SyncTarget
                    | ReplState::VerifyS
                    | ReplState::VerifyT
            ) {
                p.sync_total = 0;
                p.synced = 0;
            }
            // A resync repairs what a verify found; a lost link forgets the count.
            if matches!(
                repl,
                ReplState::SyncSource
                    | ReplState::SyncTarget
                    | ReplState::WfBitMapS
                    | ReplState::Off
            ) {
                p.ov_found = 0;
            }
        }
        crate::events::peer_device(self, &st, volume, crate::events::Kind::Change);
    }

    /// Counts `sectors` more as resynced on `volume`; announces the peer device each time the
    /// progress passes another step (2% of the sync, at least 8 MiB), so `events2` shows
    /// `done:` advancing during long syncs.
    pub(crate) fn add_synced(&self, volume: u32, sectors: u64) {
        const MIN_STEP: u64 = 16384;
        let mut st = self.state.lock();
        let Some(p) = st.peers.iter_mut().find(|p| p.volume == volume) else {
            return;
        };
        let step = (p.sync_total / 50).max(MIN_STEP);
        let before = p.synced / step;
        p.synced = p.synced.saturating_add(sectors);
        let left = p.sync_left();
        p.clock.progress(crate::replication::now_ms(), left);
        if p.synced / step != before && p.synced < p.sync_total {
            crate::events::peer_device(self, &st, volume, crate::events::Kind::Change);
        }
    }

    /// Records the peer's role and announces the connection if it changed.
    pub(crate) fn set_peer_role(&self, role: Role) {
        let mut st = self.state.lock();
        if st.peer_role != role {
            st.peer_role = role;
            crate::events::connection(self, &st, crate::events::Kind::Change);
        }
    }

    /// Whether `disconnect` asked the link thread to finish.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire) || crate::sys::thread::should_stop()
    }

    /// Records a new connection state and announces it.
    pub(crate) fn set_cstate(&self, cstate: ConnState, established: bool) {
        let mut st = self.state.lock();
        if st.cstate == cstate && st.established == established {
            return;
        }
        let path_changed = st.established != established;
        st.cstate = cstate;
        st.established = established;
        if cstate != ConnState::Connected {
            st.peer_role = Role::Unknown;
        }
        crate::events::connection(self, &st, crate::events::Kind::Change);
        if path_changed {
            crate::events::path(self, &st, crate::events::Kind::Change);
        }
    }

    /// Remembers a socket the link thread blocks on, so `stop` can wake it.
    pub(crate) fn track_socket(&self, s: &Arc<Socket>) -> Result {
        self.state.lock().sockets.push(s.clone(), GFP_KERNEL)?;
        Ok(())
    }

    /// Forgets all tracked sockets (the link thread dropped them).
    pub(crate) fn untrack_sockets(&self) {
        self.state.lock().sockets = KVec::new();
    }
}
