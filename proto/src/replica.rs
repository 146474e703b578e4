//! Replication of one volume towards one peer as a sans-IO state machine.
//!
//! [`Replica`] holds everything one node decides about a volume it shares
//! with one peer: the role, the local disk state, the connection and
//! replication states, the data generations ([`Generations`]), the
//! out-of-sync bitmap (caller-provided words, one bit per 4 KiB) and a fixed
//! table of `N` application writes in flight. It performs no I/O and never
//! allocates: the caller feeds it events (an application write, a local
//! write finished, a packet arrived, the link came up or went down, a role
//! change) and receives [`Action`]s through a [`Sink`] (send this packet,
//! write these sectors, complete that application write, persist the
//! UUIDs, drop the link). The kernel module and the userland simulator
//! (`proto/tests/sim.rs`) drive the same code.
//!
//! Rules (the kernel module's replication today, plus the parts it does not
//! do yet: the target's `P_OUT_OF_SYNC` runs, adopting the sync generation
//! at resync start, tracking A/B writes until the peer's disk has them,
//! `--discard-my-data`):
//!
//! * A Primary's write is submitted locally and, while the peer replicates
//!   the volume, sent as `P_DATA`. Protocol A completes it once the local
//!   write is done (sending happens at once), B after the local write and
//!   the peer's `P_RECV_ACK`, C after the local write and `P_WRITE_ACK`.
//!   Under A and B the write still asks for `P_WRITE_ACK` and keeps its
//!   slot until it arrives, only to learn that the data is on the peer's
//!   disk; the completion does not wait. (The kernel module learns that
//!   from barrier acks instead, see `epoch`.)
//! * A write the peer did not confirm when the link drops, or that it
//!   answered with `P_NEG_ACK`, is marked out of sync; so is every write
//!   while the peer does not replicate (disconnected, bitmaps not exchanged).
//! * On connect both sides send `P_UUIDS110` and `P_STATE`;
//!   [`super::uuid::sync_handshake`] decides. The SyncTarget adopts the
//!   generation it is synced from, becomes Inconsistent, sends its own
//!   out-of-sync blocks as `P_OUT_OF_SYNC` runs and then its SyncTarget
//!   state. The SyncSource waits in WFBitMapS, merges those runs, and on the
//!   SyncTarget state sends `P_RS_DATA_REPLY` runs of up to 256 KiB (a
//!   window of [`RESYNC_WINDOW`] unacknowledged runs), clearing bits on
//!   `P_RS_WRITE_ACK`. A run never overlaps a local application write that
//!   is still in flight, so a stale read cannot overtake a newer write.
//!   When all bits are clear it sends its UUIDs and Established; the target
//!   then adopts the source's current UUID and becomes UpToDate.
//! * Losing the peer while Primary, or promoting without it, starts a new
//!   data generation; `--discard-my-data` sets `UUID_FLAG_DISCARD_MY_DATA`
//!   for the next handshake. Split brain and unrelated data go StandAlone.

use super::bitmap;
use super::state::{ConnState, DiskState, ReplState, Role};
use super::uuid::{self, masked, AfterSbPolicy, Generations, Outcome, UUID_PRIMARY};
use super::wire::{
    self, BlockAck, BlockDesc, DataHeader, DrbdState, StatePacket, Uuids110, WireError,
};

/// Bytes covered by one bitmap bit.
pub const BLOCK_SIZE: u32 = 4096;
/// Sectors covered by one bitmap bit.
pub const SECTORS_PER_BLOCK: u64 = 8;
/// Largest resync run (`P_RS_DATA_REPLY`), in blocks: 256 KiB.
pub const RESYNC_RUN_BLOCKS: u64 = 64;
/// Largest `P_OUT_OF_SYNC` run, in blocks: 1 MiB.
pub const OOS_RUN_BLOCKS: u64 = 256;
/// Resync runs sent and not acknowledged at most.
pub const RESYNC_WINDOW: usize = 8;
/// `block_id` of resync packets (DRBD's `ID_SYNCER`).
pub const ID_SYNCER: u64 = u64::MAX;
/// `P_STATE` connection field while the handshake runs (cstate Connecting).
const STATE_CONNECTING: u32 = ConnState::Connecting as u32;

/// Replication protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Complete after the local write; the data was handed to the network.
    A,
    /// Complete after the local write and the peer's receive ack.
    B,
    /// Complete after the local write and the peer's write ack.
    C,
}

impl Protocol {
    /// Wire value (1 = A, 2 = B, 3 = C).
    pub fn to_u32(self) -> u32 {
        match self {
            Protocol::A => 1,
            Protocol::B => 2,
            Protocol::C => 3,
        }
    }
}

/// Static configuration of one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Our node id (0..32).
    pub node_id: u8,
    /// The peer's node id (0..32, not ours).
    pub peer_node_id: u8,
    /// Volume number used in packets.
    pub volume: u16,
    /// Replication protocol.
    pub protocol: Protocol,
    /// Size of the data area in 512-byte sectors.
    pub sectors: u64,
    /// after-sb-0pri.
    pub after_sb_0p: AfterSbPolicy,
    /// after-sb-1pri.
    pub after_sb_1p: AfterSbPolicy,
    /// after-sb-2pri.
    pub after_sb_2p: AfterSbPolicy,
    /// rr-conflict.
    pub rr_conflict: AfterSbPolicy,
}

impl Config {
    /// Defaults: protocol C, every split-brain policy `disconnect`.
    pub fn new(node_id: u8, peer_node_id: u8, sectors: u64) -> Config {
        Config {
            node_id,
            peer_node_id,
            volume: 0,
            protocol: Protocol::C,
            sectors,
            after_sb_0p: AfterSbPolicy::Disconnect,
            after_sb_1p: AfterSbPolicy::Disconnect,
            after_sb_2p: AfterSbPolicy::Disconnect,
            rr_conflict: AfterSbPolicy::Disconnect,
        }
    }

    /// Number of bitmap bits the volume needs.
    pub fn bits(&self) -> u64 {
        self.sectors.div_ceil(SECTORS_PER_BLOCK)
    }

    /// Number of 64-bit bitmap words the volume needs.
    pub fn bitmap_words(&self) -> usize {
        usize::try_from(self.bits().div_ceil(64)).unwrap_or(usize::MAX)
    }
}

/// Which of the two streams a packet travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Data stream: writes, resync data, state.
    Data,
    /// Meta stream: acknowledgements.
    Meta,
}

/// Kinds of block acknowledgements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    /// `P_RECV_ACK` (protocol B; here also A).
    Recv,
    /// `P_WRITE_ACK` (protocol C).
    Write,
    /// `P_NEG_ACK`: a write (or, with [`ID_SYNCER`], a resync write) failed.
    Neg,
    /// `P_RS_WRITE_ACK`: a resync run is on the target's disk.
    RsWrite,
    /// `P_RS_NEG_ACK`: a resync write failed.
    RsNeg,
}

impl AckKind {
    fn cmd(self) -> u16 {
        match self {
            AckKind::Recv => wire::P_RECV_ACK,
            AckKind::Write => wire::P_WRITE_ACK,
            AckKind::Neg => wire::P_NEG_ACK,
            AckKind::RsWrite => wire::P_RS_WRITE_ACK,
            AckKind::RsNeg => wire::P_RS_NEG_ACK,
        }
    }
}

/// The packets this state machine exchanges, decoded.
#[allow(clippy::large_enum_variant)] // no allocation: the UUID set travels inline
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet {
    /// `P_DATA` header; the data follows it.
    Data(DataHeader),
    /// `P_RS_DATA_REPLY` header; the data follows it.
    RsData(DataHeader),
    /// A block acknowledgement on the meta stream.
    Ack(AckKind, BlockAck),
    /// `P_STATE`.
    State(DrbdState),
    /// `P_UUIDS110`.
    Uuids(Uuids110),
    /// `P_OUT_OF_SYNC`: the sender holds this range out of sync.
    OutOfSync(BlockDesc),
}

/// Why a received payload is not a packet of this state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The payload itself is malformed.
    Wire(WireError),
    /// A command this state machine does not handle.
    Unsupported(u16),
    /// Data packet without data, or data not a multiple of 512 bytes.
    BadDataLength,
    /// Bytes after a fixed-size payload.
    TrailingBytes,
}

impl From<WireError> for DecodeError {
    fn from(e: WireError) -> Self {
        DecodeError::Wire(e)
    }
}

fn exact<T>(payload: &[u8], size: usize, v: T) -> Result<T, DecodeError> {
    if payload.len() == size {
        Ok(v)
    } else {
        Err(DecodeError::TrailingBytes)
    }
}

impl Packet {
    /// Packet code.
    pub fn cmd(&self) -> u16 {
        match self {
            Packet::Data(_) => wire::P_DATA,
            Packet::RsData(_) => wire::P_RS_DATA_REPLY,
            Packet::Ack(k, _) => k.cmd(),
            Packet::State(_) => wire::P_STATE,
            Packet::Uuids(_) => wire::P_UUIDS110,
            Packet::OutOfSync(_) => wire::P_OUT_OF_SYNC,
        }
    }

    /// Stream the packet travels on.
    pub fn stream(&self) -> Stream {
        match self {
            Packet::Ack(..) => Stream::Meta,
            _ => Stream::Data,
        }
    }

    /// Decode a payload (everything after the packet header). Returns the
    /// packet and, for data packets, the data that follows the header.
    pub fn decode(cmd: u16, payload: &[u8]) -> Result<(Packet, &[u8]), DecodeError> {
        let data = |h: DataHeader| -> Result<&[u8], DecodeError> {
            let d = payload
                .get(DataHeader::SIZE..)
                .ok_or(DecodeError::Wire(WireError::Short))?;
            if d.is_empty()
                || d.len() % 512 != 0
                || h.sector.checked_add(d.len() as u64 / 512).is_none()
            {
                return Err(DecodeError::BadDataLength);
            }
            Ok(d)
        };
        let ack = |k: AckKind| -> Result<(Packet, &[u8]), DecodeError> {
            let a = BlockAck::decode(payload)?;
            exact(payload, BlockAck::SIZE, (Packet::Ack(k, a), &[][..]))
        };
        match cmd {
            wire::P_DATA => {
                let h = DataHeader::decode(payload)?;
                Ok((Packet::Data(h), data(h)?))
            }
            wire::P_RS_DATA_REPLY => {
                let h = DataHeader::decode(payload)?;
                Ok((Packet::RsData(h), data(h)?))
            }
            wire::P_RECV_ACK => ack(AckKind::Recv),
            wire::P_WRITE_ACK => ack(AckKind::Write),
            wire::P_NEG_ACK => ack(AckKind::Neg),
            wire::P_RS_WRITE_ACK => ack(AckKind::RsWrite),
            wire::P_RS_NEG_ACK => ack(AckKind::RsNeg),
            wire::P_STATE => {
                let s = StatePacket::decode(payload)?;
                exact(
                    payload,
                    StatePacket::SIZE,
                    (Packet::State(DrbdState(s.state)), &[][..]),
                )
            }
            wire::P_UUIDS110 => Ok((Packet::Uuids(Uuids110::decode(payload)?), &[][..])),
            wire::P_OUT_OF_SYNC => {
                let d = BlockDesc::decode(payload)?;
                exact(payload, BlockDesc::SIZE, (Packet::OutOfSync(d), &[][..]))
            }
            other => Err(DecodeError::Unsupported(other)),
        }
    }

    /// Encode the payload (without the data of data packets, which the
    /// caller appends); returns the bytes written.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        match self {
            Packet::Data(h) | Packet::RsData(h) => h.encode(out),
            Packet::Ack(_, a) => a.encode(out),
            Packet::State(s) => StatePacket { state: s.0 }.encode(out),
            Packet::Uuids(u) => u.encode(out),
            Packet::OutOfSync(d) => d.encode(out),
        }
    }
}

/// Where the data of a send or local write comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// No data.
    None,
    /// The application write with this tag.
    Upper(u64),
    /// The data that came with the packet being handled.
    Received,
    /// Read `bytes` at `sector` from the local disk now (resync data).
    ReadLocal {
        /// First sector.
        sector: u64,
        /// Length in bytes.
        bytes: u32,
    },
}

/// A local write the caller reports back with [`Replica::local_write_done`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// An application write (slot in the write table).
    Upper {
        /// Slot index.
        slot: u16,
    },
    /// A replicated write from the peer.
    Peer {
        /// Link generation it arrived on (no ack on a newer link).
        link: u32,
        /// The acknowledgement to send.
        ack: BlockAck,
        /// The peer wants `P_WRITE_ACK`.
        write_ack: bool,
    },
    /// Resync data from the peer.
    Resync {
        /// Link generation it arrived on.
        link: u32,
        /// The acknowledgement to send.
        ack: BlockAck,
    },
}

/// Why the link is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The administrator disconnected.
    Admin,
    /// Both sides changed data independently (StandAlone).
    SplitBrain,
    /// No common data generation (StandAlone).
    UnrelatedData,
    /// The handshake wants a fresh connection attempt.
    Retry,
    /// The handshake refused the connection (StandAlone).
    Refused,
    /// The peer violated the protocol.
    Protocol(ProtocolError),
}

/// What the caller must do.
#[allow(clippy::large_enum_variant)] // no allocation: packets travel inline
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send a packet on [`Packet::stream`], followed by the payload's data.
    Send {
        /// The packet.
        packet: Packet,
        /// Its data (data packets only).
        payload: Payload,
    },
    /// Write to the local disk; report with [`Replica::local_write_done`].
    WriteLocal {
        /// Token to report back.
        io: Io,
        /// First sector.
        sector: u64,
        /// Length in bytes.
        bytes: u32,
        /// Where the data comes from.
        payload: Payload,
    },
    /// Complete the application write `tag`.
    CompleteWrite {
        /// The caller's tag.
        tag: u64,
        /// The local write succeeded.
        ok: bool,
        /// The peer confirmed it (per the protocol's ack).
        replicated: bool,
    },
    /// Bits `[first, end)` became set (for an on-disk bitmap).
    BitmapSet {
        /// First bit.
        first: u64,
        /// End bit (exclusive).
        end: u64,
    },
    /// Bits `[first, end)` were cleared.
    BitmapCleared {
        /// First bit.
        first: u64,
        /// End bit (exclusive).
        end: u64,
    },
    /// Write UUIDs and disk state to the meta-data now.
    Persist {
        /// The UUID set.
        uuids: Generations,
        /// The disk state (Inconsistent clears the consistent flag).
        disk: DiskState,
    },
    /// Tear down the transport, then call [`Replica::link_down`].
    DropLink(DropReason),
    /// The sync handshake decided (for logs and events).
    Handshake(Outcome),
    /// A resync finished on this side.
    ResyncDone,
}

/// Receives actions.
pub trait Sink {
    /// Take one action (in order).
    fn emit(&mut self, action: Action);
}

impl<F: FnMut(Action)> Sink for F {
    fn emit(&mut self, action: Action) {
        self(action)
    }
}

/// Why an application write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// Only a Primary accepts writes.
    NotPrimary,
    /// Length zero or not a multiple of 512.
    BadLength,
    /// Beyond the end of the device.
    OutOfRange,
    /// Every write slot is in use; retry after a completion.
    Busy,
}

/// Why a role change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleError {
    /// The connected peer is Primary (two primaries are not supported).
    PeerPrimary,
    /// No UpToDate data (use force).
    NoUpToDateDisk,
    /// Application writes are in flight.
    InUse,
    /// This node is the target of a running resync.
    ResyncRunning,
}

/// A protocol violation by the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// A packet while no link is up.
    NotConnected,
    /// A range beyond the end of the device.
    OutOfRange,
    /// A replicated write, or a Primary peer, while we are Primary.
    TwoPrimaries,
    /// Resync data while we are not SyncTarget.
    UnexpectedResync,
    /// `P_STATE` before `P_UUIDS110` during the handshake.
    StateBeforeUuids,
    /// Unknown disk state in `P_STATE`.
    BadState,
}

/// Why [`Replica::new`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// Node ids out of range or equal.
    BadNodeIds,
    /// The bitmap storage is smaller than [`Config::bitmap_words`].
    BitmapTooSmall,
    /// The write table is empty or larger than `u16::MAX` slots.
    BadSlotCount,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Local {
    Pending,
    Ok,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerPart {
    /// Not replicated (marked out of sync instead).
    NotSent,
    /// Sent, nothing heard yet.
    Awaiting,
    /// `P_RECV_ACK` arrived (protocol B), the write ack is still due.
    Received,
    /// `P_WRITE_ACK` arrived: on the peer's disk.
    Confirmed,
    /// Negatively acked or lost with the link (marked out of sync).
    Failed,
}

impl PeerPart {
    /// The peer may still answer.
    fn open(self) -> bool {
        matches!(self, PeerPart::Awaiting | PeerPart::Received)
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    used: bool,
    tag: u64,
    sector: u64,
    bytes: u32,
    local: Local,
    peer: PeerPart,
    completed: bool,
}

impl Slot {
    const EMPTY: Slot = Slot {
        used: false,
        tag: 0,
        sector: 0,
        bytes: 0,
        local: Local::Pending,
        peer: PeerPart::NotSent,
        completed: false,
    };
}

/// What we know of the peer on the current link.
#[derive(Debug, Clone, Copy)]
struct PeerView {
    role: Role,
    disk: DiskState,
    repl: Option<ReplState>,
    uuids: Generations,
    flags: u64,
    dirty: u64,
    have_uuids: bool,
    generation_changed: bool,
}

impl PeerView {
    const UNKNOWN: PeerView = PeerView {
        role: Role::Unknown,
        disk: DiskState::DUnknown,
        repl: None,
        uuids: Generations::just_created(),
        flags: 0,
        dirty: 0,
        have_uuids: false,
        generation_changed: false,
    };
}

/// One node's replication of one volume towards one peer.
///
/// `B` holds the out-of-sync bitmap (at least [`Config::bitmap_words`]
/// words); `N` is the number of application writes that may be in flight.
#[derive(Debug)]
pub struct Replica<B, const N: usize> {
    cfg: Config,
    role: Role,
    disk: DiskState,
    conn: ConnState,
    repl: ReplState,
    link_up: bool,
    link: u32,
    gen: Generations,
    bits: B,
    nbits: u64,
    set: u64,
    peer: PeerView,
    slots: [Slot; N],
    seq: u32,
    discard_my_data: bool,
    changed_since_sent: bool,
    rs_cursor: u64,
    rs_in_flight: [Option<(u64, u64)>; RESYNC_WINDOW],
    resynced_blocks: u64,
}

impl<B: AsRef<[u64]> + AsMut<[u64]>, const N: usize> Replica<B, N> {
    /// A Secondary, StandAlone replica with persisted `uuids` and `disk`
    /// (Inconsistent, Outdated or UpToDate) and the bitmap contents in
    /// `bits` (all set if they were lost).
    pub fn new(
        cfg: Config,
        uuids: Generations,
        disk: DiskState,
        mut bits: B,
    ) -> Result<Self, ConfigError> {
        if cfg.node_id == cfg.peer_node_id
            || usize::from(cfg.node_id) >= super::meta::NODE_ID_MAX
            || usize::from(cfg.peer_node_id) >= super::meta::NODE_ID_MAX
        {
            return Err(ConfigError::BadNodeIds);
        }
        if N == 0 || N > usize::from(u16::MAX) {
            return Err(ConfigError::BadSlotCount);
        }
        if bits.as_mut().len() < cfg.bitmap_words() {
            return Err(ConfigError::BitmapTooSmall);
        }
        let nbits = cfg.bits();
        // Bits beyond the device never count.
        bitmap::clear_range(bits.as_mut(), nbits, u64::MAX);
        let set = bitmap::count(bits.as_ref());
        Ok(Replica {
            cfg,
            role: Role::Secondary,
            disk,
            conn: ConnState::StandAlone,
            repl: ReplState::Off,
            link_up: false,
            link: 0,
            gen: Generations {
                current: masked(uuids.current),
                ..uuids
            },
            bits,
            nbits,
            set,
            peer: PeerView::UNKNOWN,
            slots: [Slot::EMPTY; N],
            seq: 0,
            discard_my_data: false,
            changed_since_sent: false,
            rs_cursor: 0,
            rs_in_flight: [None; RESYNC_WINDOW],
            resynced_blocks: 0,
        })
    }

    // ---- queries ------------------------------------------------------------------------

    /// Configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }
    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// Our disk state.
    pub fn disk(&self) -> DiskState {
        self.disk
    }
    /// Connection state.
    pub fn conn(&self) -> ConnState {
        self.conn
    }
    /// Replication state (Off while not connected).
    pub fn repl(&self) -> ReplState {
        self.repl
    }
    /// The peer's role as last reported (Unknown without a link).
    pub fn peer_role(&self) -> Role {
        self.peer.role
    }
    /// The peer's disk state as last reported (DUnknown without a link).
    pub fn peer_disk(&self) -> DiskState {
        self.peer.disk
    }
    /// Our UUID set.
    pub fn uuids(&self) -> &Generations {
        &self.gen
    }
    /// Blocks marked out of sync.
    pub fn out_of_sync(&self) -> u64 {
        self.set
    }
    /// The bitmap words.
    pub fn bitmap(&self) -> &[u64] {
        self.bits.as_ref()
    }
    /// Application writes in flight.
    pub fn writes_in_flight(&self) -> usize {
        self.slots.iter().filter(|s| s.used).count()
    }
    /// Blocks written by resync on this side (as target) or acknowledged
    /// by the peer (as source), since creation.
    pub fn resynced_blocks(&self) -> u64 {
        self.resynced_blocks
    }
    /// `--discard-my-data` is armed for the next handshake.
    pub fn discard_my_data(&self) -> bool {
        self.discard_my_data
    }

    fn peer_id(&self) -> usize {
        usize::from(self.cfg.peer_node_id)
    }

    fn connected(&self) -> bool {
        self.link_up && self.conn == ConnState::Connected
    }

    fn replicating(&self) -> bool {
        self.connected()
            && matches!(
                self.repl,
                ReplState::Established | ReplState::SyncSource | ReplState::SyncTarget
            )
            && self.peer.disk >= DiskState::Inconsistent
    }

    // ---- bitmap -------------------------------------------------------------------------

    fn mark(&mut self, first: u64, end: u64, out: &mut impl Sink) {
        let end = end.min(self.nbits);
        if first >= end {
            return;
        }
        let n = bitmap::set_range(self.bits.as_mut(), first, end);
        self.set += n;
        if n > 0 {
            out.emit(Action::BitmapSet { first, end });
        }
    }

    fn clear(&mut self, first: u64, end: u64, out: &mut impl Sink) {
        let end = end.min(self.nbits);
        if first >= end {
            return;
        }
        let n = bitmap::clear_range(self.bits.as_mut(), first, end);
        self.set = self.set.saturating_sub(n);
        if n > 0 {
            out.emit(Action::BitmapCleared { first, end });
        }
    }

    fn mark_sectors(&mut self, sector: u64, bytes: u32, out: &mut impl Sink) {
        let (first, end) =
            bitmap::sectors_to_bits(sector, u64::from(bytes).div_ceil(512), BLOCK_SIZE);
        self.mark(first, end, out);
    }

    fn in_range(&self, sector: u64, bytes: u64) -> bool {
        sector
            .checked_add(bytes.div_ceil(512))
            .is_some_and(|end| end <= self.cfg.sectors)
    }

    // ---- announcing ---------------------------------------------------------------------

    fn uuid_flags(&self) -> u64 {
        let mut f = 0;
        if self.disk == DiskState::UpToDate && self.repl != ReplState::SyncTarget {
            f |= wire::UUID_FLAG_STABLE;
        }
        if self.disk == DiskState::Inconsistent {
            f |= wire::UUID_FLAG_INCONSISTENT;
        }
        if self.discard_my_data {
            f |= wire::UUID_FLAG_DISCARD_MY_DATA;
        }
        f
    }

    fn send(&self, packet: Packet, payload: Payload, out: &mut impl Sink) {
        if self.link_up {
            out.emit(Action::Send { packet, payload });
        }
    }

    fn send_state(&self, out: &mut impl Sink) {
        let mut s = DrbdState::default();
        s.set_role(self.role.to_u32());
        s.set_peer(self.peer.role.to_u32());
        s.set_disk(self.disk.to_u32());
        s.set_pdsk(self.peer.disk.to_u32());
        s.set_conn(if self.conn == ConnState::Connected {
            self.repl.to_u32()
        } else {
            STATE_CONNECTING
        });
        self.send(Packet::State(s), Payload::None, out);
    }

    fn send_uuids(&self, out: &mut impl Sink) {
        let u = self
            .gen
            .to_wire(1u64 << self.peer_id(), self.uuid_flags(), self.set);
        self.send(Packet::Uuids(u), Payload::None, out);
    }

    fn announce(&self, out: &mut impl Sink) {
        self.send_uuids(out);
        self.send_state(out);
    }

    fn persist(&self, out: &mut impl Sink) {
        out.emit(Action::Persist {
            uuids: self.gen,
            disk: self.disk,
        });
    }

    /// Our UUIDs changed: persist, and tell the peer (or let the running
    /// handshake retry).
    fn uuids_changed(&mut self, out: &mut impl Sink) {
        self.persist(out);
        if !self.link_up {
            return;
        }
        if self.conn == ConnState::Connecting {
            self.changed_since_sent = true;
            return;
        }
        self.announce(out);
        if self.conn == ConnState::Connected && self.repl == ReplState::Established {
            self.handshake(out);
        }
    }

    // ---- administration -------------------------------------------------------------------

    /// `connect`: StandAlone -> Unconnected (waits for [`Replica::link_up`]).
    /// Returns false if not StandAlone.
    pub fn connect(&mut self, discard_my_data: bool) -> bool {
        if self.conn != ConnState::StandAlone {
            return false;
        }
        self.conn = ConnState::Unconnected;
        self.discard_my_data = discard_my_data;
        true
    }

    /// `disconnect`: go StandAlone, dropping the link if it is up.
    pub fn disconnect(&mut self, out: &mut impl Sink) {
        self.conn = ConnState::StandAlone;
        if self.link_up {
            out.emit(Action::DropLink(DropReason::Admin));
        }
    }

    /// Become Primary. `force` declares Inconsistent/Outdated data UpToDate;
    /// `random` seeds a new current UUID if one is needed.
    pub fn promote(
        &mut self,
        force: bool,
        random: u64,
        out: &mut impl Sink,
    ) -> Result<(), RoleError> {
        if self.role == Role::Primary {
            return Ok(());
        }
        if self.link_up && self.peer.role == Role::Primary {
            return Err(RoleError::PeerPrimary);
        }
        if self.link_up && matches!(self.repl, ReplState::WFBitMapT | ReplState::SyncTarget) {
            return Err(RoleError::ResyncRunning);
        }
        if self.disk != DiskState::UpToDate && !force {
            return Err(RoleError::NoUpToDateDisk);
        }
        let peer_reachable = self.conn == ConnState::Connected;
        let unreachable = if peer_reachable {
            0
        } else {
            1u64 << self.peer_id()
        };
        let before = masked(self.gen.current);
        let mut changed = self.gen.new_current(random, unreachable, true);
        if self.disk != DiskState::UpToDate {
            if !changed {
                // Forced: a new generation even if the peer tracks none.
                let old = masked(self.gen.current);
                let mut fresh = masked(random ^ 0x5bd1_e995_9e37_79b9);
                if fresh == 0 || fresh == super::meta::UUID_JUST_CREATED || fresh == old {
                    fresh = masked(old.rotate_left(29) ^ 0xa5a5_a5a5_0000_0010);
                }
                if !self.gen.is_just_created() {
                    self.gen.push_history(old);
                }
                self.gen.current = fresh;
                changed = true;
            }
            self.disk = DiskState::UpToDate;
        }
        self.role = Role::Primary;
        self.gen.current |= UUID_PRIMARY;
        if changed && masked(self.gen.current) != before {
            self.uuids_changed(out);
        } else {
            self.persist(out);
            if self.link_up {
                self.announce(out);
            }
        }
        Ok(())
    }

    /// Become Secondary (refused while application writes are in flight).
    pub fn demote(&mut self, out: &mut impl Sink) -> Result<(), RoleError> {
        if self.role != Role::Primary {
            return Ok(());
        }
        if self.writes_in_flight() > 0 {
            return Err(RoleError::InUse);
        }
        self.role = Role::Secondary;
        self.gen.current = masked(self.gen.current);
        self.persist(out);
        if self.link_up {
            self.announce(out);
        }
        Ok(())
    }

    // ---- link -----------------------------------------------------------------------------

    /// The transport to the peer is established: start the handshake.
    /// Ignored unless Unconnected.
    pub fn link_up(&mut self, out: &mut impl Sink) {
        if self.conn != ConnState::Unconnected || self.link_up {
            return;
        }
        self.link_up = true;
        self.link = self.link.wrapping_add(1);
        self.conn = ConnState::Connecting;
        self.repl = ReplState::Off;
        self.peer = PeerView::UNKNOWN;
        self.changed_since_sent = false;
        self.announce(out);
    }

    /// The transport is gone (cut, or torn down after [`Action::DropLink`]).
    /// `random` seeds a new current UUID if we are Primary.
    pub fn link_down(&mut self, random: u64, out: &mut impl Sink) {
        if !self.link_up {
            return;
        }
        self.link_up = false;
        self.link = self.link.wrapping_add(1);
        if self.conn != ConnState::StandAlone {
            self.conn = ConnState::Unconnected;
        }
        self.repl = ReplState::Off;
        self.peer = PeerView::UNKNOWN;
        self.rs_in_flight = [None; RESYNC_WINDOW];
        self.rs_cursor = 0;
        for i in 0..N {
            let Some(s) = self.slots.get_mut(i) else {
                continue;
            };
            if s.used && s.peer.open() {
                s.peer = PeerPart::Failed;
                let (sector, bytes) = (s.sector, s.bytes);
                self.mark_sectors(sector, bytes, out);
                self.settle(i, out);
            }
        }
        if self.role == Role::Primary && self.gen.new_current(random, 1u64 << self.peer_id(), true)
        {
            self.persist(out);
        }
    }

    // ---- application writes ---------------------------------------------------------------

    /// An application write of `bytes` at `sector`, identified by `tag` in
    /// the actions it causes.
    pub fn submit_write(
        &mut self,
        tag: u64,
        sector: u64,
        bytes: u32,
        out: &mut impl Sink,
    ) -> Result<(), WriteError> {
        if self.role != Role::Primary || self.disk != DiskState::UpToDate {
            return Err(WriteError::NotPrimary);
        }
        if bytes == 0 || bytes % 512 != 0 {
            return Err(WriteError::BadLength);
        }
        if !self.in_range(sector, u64::from(bytes)) {
            return Err(WriteError::OutOfRange);
        }
        let slot = self
            .slots
            .iter()
            .position(|s| !s.used)
            .ok_or(WriteError::Busy)?;
        let replicate = self.replicating();
        if let Some(s) = self.slots.get_mut(slot) {
            *s = Slot {
                used: true,
                tag,
                sector,
                bytes,
                local: Local::Pending,
                peer: if replicate {
                    PeerPart::Awaiting
                } else {
                    PeerPart::NotSent
                },
                completed: false,
            };
        }
        out.emit(Action::WriteLocal {
            io: Io::Upper { slot: slot as u16 },
            sector,
            bytes,
            payload: Payload::Upper(tag),
        });
        if replicate {
            // Every protocol asks for the write ack: until the data is on
            // the peer's disk a lost link must mark it out of sync.
            let dp_flags = match self.cfg.protocol {
                Protocol::B => wire::DP_SEND_RECEIVE_ACK | wire::DP_SEND_WRITE_ACK,
                Protocol::A | Protocol::C => wire::DP_SEND_WRITE_ACK,
            };
            self.seq = self.seq.wrapping_add(1);
            let h = DataHeader {
                sector,
                block_id: slot as u64 + 1,
                seq_num: self.seq,
                dp_flags,
            };
            self.send(Packet::Data(h), Payload::Upper(tag), out);
        } else {
            self.mark_sectors(sector, bytes, out);
        }
        Ok(())
    }

    /// Complete and free a write slot when its parts allow.
    fn settle(&mut self, i: usize, out: &mut impl Sink) {
        let protocol = self.cfg.protocol;
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        if !s.used || s.local == Local::Pending {
            return;
        }
        let peer_done = match protocol {
            Protocol::A => true,
            Protocol::B => s.peer != PeerPart::Awaiting,
            Protocol::C => !s.peer.open(),
        };
        if !s.completed && peer_done {
            s.completed = true;
            let replicated = match protocol {
                Protocol::B => matches!(s.peer, PeerPart::Received | PeerPart::Confirmed),
                Protocol::A | Protocol::C => s.peer == PeerPart::Confirmed,
            };
            out.emit(Action::CompleteWrite {
                tag: s.tag,
                ok: s.local == Local::Ok,
                replicated,
            });
        }
        if s.completed && !s.peer.open() {
            *s = Slot::EMPTY;
        }
    }

    /// A local write requested by [`Action::WriteLocal`] finished.
    pub fn local_write_done(&mut self, io: Io, ok: bool, out: &mut impl Sink) {
        match io {
            Io::Upper { slot } => {
                let i = usize::from(slot);
                if let Some(s) = self.slots.get_mut(i) {
                    if s.used && s.local == Local::Pending {
                        s.local = if ok { Local::Ok } else { Local::Failed };
                        self.settle(i, out);
                        // A resync run may have waited for this write.
                        self.pump(out);
                    }
                }
            }
            Io::Peer {
                link,
                ack,
                write_ack,
            } => {
                if link != self.link || !self.link_up {
                    return;
                }
                if !ok {
                    self.send(Packet::Ack(AckKind::Neg, ack), Payload::None, out);
                } else if write_ack {
                    self.send(Packet::Ack(AckKind::Write, ack), Payload::None, out);
                }
            }
            Io::Resync { link, ack } => {
                if ok {
                    let (first, end) = bitmap::sectors_to_full_bits(
                        ack.sector,
                        u64::from(ack.blksize) / 512,
                        BLOCK_SIZE,
                    );
                    self.clear(first, end, out);
                    self.resynced_blocks += end - first;
                }
                if link != self.link || !self.link_up {
                    return;
                }
                let kind = if ok { AckKind::RsWrite } else { AckKind::Neg };
                self.send(Packet::Ack(kind, ack), Payload::None, out);
            }
        }
    }

    // ---- packets --------------------------------------------------------------------------

    /// A packet from the peer; `data_len` is the length of the data that
    /// followed a data packet's header. On a violation the link is dropped
    /// ([`Action::DropLink`]) and the error returned.
    pub fn on_packet(
        &mut self,
        packet: &Packet,
        data_len: usize,
        out: &mut impl Sink,
    ) -> Result<(), ProtocolError> {
        let r = self.handle(packet, data_len, out);
        if let Err(e) = r {
            if self.link_up {
                out.emit(Action::DropLink(DropReason::Protocol(e)));
            }
        }
        r
    }

    fn handle(
        &mut self,
        packet: &Packet,
        data_len: usize,
        out: &mut impl Sink,
    ) -> Result<(), ProtocolError> {
        if !self.link_up {
            return Err(ProtocolError::NotConnected);
        }
        match *packet {
            Packet::Uuids(u) => {
                let g = Generations::from_wire(&u);
                // A new peer generation other than ours (a target adopting
                // our generation needs no decision) asks for a handshake.
                let theirs = masked(g.current);
                if self.peer.have_uuids
                    && theirs != masked(self.peer.uuids.current)
                    && theirs != masked(self.gen.current)
                {
                    self.peer.generation_changed = true;
                }
                self.peer.uuids = g;
                self.peer.flags = u.uuid_flags;
                self.peer.dirty = u.dirty_bits;
                self.peer.have_uuids = true;
                Ok(())
            }
            Packet::State(s) => self.on_state(s, out),
            Packet::OutOfSync(d) => {
                if !self.in_range(d.sector, u64::from(d.blksize)) {
                    return Err(ProtocolError::OutOfRange);
                }
                self.mark_sectors(d.sector, d.blksize, out);
                Ok(())
            }
            Packet::Data(h) => self.on_data(h, data_len, out),
            Packet::RsData(h) => {
                if self.repl != ReplState::SyncTarget || !self.connected() {
                    return Err(ProtocolError::UnexpectedResync);
                }
                let bytes = self.data_bytes(h.sector, data_len)?;
                let ack = BlockAck {
                    sector: h.sector,
                    block_id: h.block_id,
                    blksize: bytes,
                    seq_num: h.seq_num,
                };
                out.emit(Action::WriteLocal {
                    io: Io::Resync {
                        link: self.link,
                        ack,
                    },
                    sector: h.sector,
                    bytes,
                    payload: Payload::Received,
                });
                Ok(())
            }
            Packet::Ack(kind, a) => {
                self.on_ack(kind, a, out);
                Ok(())
            }
        }
    }

    fn data_bytes(&self, sector: u64, data_len: usize) -> Result<u32, ProtocolError> {
        let bytes = u32::try_from(data_len).map_err(|_| ProtocolError::OutOfRange)?;
        if bytes == 0 || bytes % 512 != 0 || !self.in_range(sector, u64::from(bytes)) {
            return Err(ProtocolError::OutOfRange);
        }
        Ok(bytes)
    }

    fn on_data(
        &mut self,
        h: DataHeader,
        data_len: usize,
        out: &mut impl Sink,
    ) -> Result<(), ProtocolError> {
        if self.role == Role::Primary {
            return Err(ProtocolError::TwoPrimaries);
        }
        if !self.connected() {
            return Err(ProtocolError::NotConnected);
        }
        let bytes = self.data_bytes(h.sector, data_len)?;
        let ack = BlockAck {
            sector: h.sector,
            block_id: h.block_id,
            blksize: bytes,
            seq_num: h.seq_num,
        };
        if h.dp_flags & wire::DP_SEND_RECEIVE_ACK != 0 {
            self.send(Packet::Ack(AckKind::Recv, ack), Payload::None, out);
        }
        out.emit(Action::WriteLocal {
            io: Io::Peer {
                link: self.link,
                ack,
                write_ack: h.dp_flags & wire::DP_SEND_WRITE_ACK != 0,
            },
            sector: h.sector,
            bytes,
            payload: Payload::Received,
        });
        Ok(())
    }

    fn on_ack(&mut self, kind: AckKind, a: BlockAck, out: &mut impl Sink) {
        let resync = matches!(kind, AckKind::RsWrite | AckKind::RsNeg)
            || (kind == AckKind::Neg && (a.block_id == ID_SYNCER || a.block_id == 0));
        if resync {
            let bit = a.sector / SECTORS_PER_BLOCK;
            let hit = self
                .rs_in_flight
                .iter_mut()
                .find(|r| matches!(r, Some((first, _)) if *first == bit));
            let Some(entry) = hit else {
                return;
            };
            let run = entry.take();
            if let (Some((first, end)), AckKind::RsWrite) = (run, kind) {
                self.clear(first, end, out);
                self.resynced_blocks += end - first;
            }
            self.pump(out);
            return;
        }
        if kind == AckKind::Neg {
            // Whatever the slot says: the peer does not have this range.
            if self.in_range(a.sector, u64::from(a.blksize)) {
                self.mark_sectors(a.sector, a.blksize, out);
            }
        }
        let Some(i) = a
            .block_id
            .checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return;
        };
        let protocol = self.cfg.protocol;
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        if !s.used || !s.peer.open() || s.sector != a.sector {
            return;
        }
        match kind {
            AckKind::Recv if protocol == Protocol::B && s.peer == PeerPart::Awaiting => {
                s.peer = PeerPart::Received
            }
            AckKind::Write => s.peer = PeerPart::Confirmed,
            AckKind::Neg => {
                s.peer = PeerPart::Failed;
                let (sector, bytes) = (s.sector, s.bytes);
                self.mark_sectors(sector, bytes, out);
            }
            _ => return,
        }
        self.settle(i, out);
    }

    fn on_state(&mut self, s: DrbdState, out: &mut impl Sink) -> Result<(), ProtocolError> {
        let disk = DiskState::from_u32(s.disk()).ok_or(ProtocolError::BadState)?;
        self.peer.role = Role::from_u32(s.role()).unwrap_or(Role::Unknown);
        self.peer.disk = disk;
        let peer_repl = ReplState::from_u32(s.conn());
        self.peer.repl = peer_repl;
        if self.conn == ConnState::Connected
            && self.role == Role::Primary
            && self.peer.role == Role::Primary
        {
            // Both promoted at once: two primaries are not supported.
            return Err(ProtocolError::TwoPrimaries);
        }
        match self.conn {
            ConnState::Connecting => {
                if !self.peer.have_uuids {
                    return Err(ProtocolError::StateBeforeUuids);
                }
                self.peer.generation_changed = false;
                self.handshake(out);
            }
            ConnState::Connected => match self.repl {
                ReplState::Established if self.peer.generation_changed => {
                    self.peer.generation_changed = false;
                    self.handshake(out);
                }
                ReplState::WFBitMapS if peer_repl == Some(ReplState::SyncTarget) => {
                    self.repl = ReplState::SyncSource;
                    self.rs_cursor = 0;
                    self.send_state(out);
                    self.pump(out);
                }
                ReplState::SyncTarget if peer_repl == Some(ReplState::Established) => {
                    self.finish_target(out);
                }
                _ => {}
            },
            _ => {}
        }
        Ok(())
    }

    // ---- handshake and resync -------------------------------------------------------------

    fn handshake(&mut self, out: &mut impl Sink) {
        let me = usize::from(self.cfg.node_id);
        let inp = uuid::HandshakeInput {
            local: uuid::NodeView {
                node_id: me,
                uuids: &self.gen,
                flags: self.uuid_flags(),
                role: self.role,
                disk: self.disk,
                dirty_bits: self.set,
                quorum: true,
            },
            peer: uuid::NodeView {
                node_id: self.peer_id(),
                uuids: &self.peer.uuids,
                flags: self.peer.flags,
                role: self.peer.role,
                disk: self.peer.disk,
                dirty_bits: self.peer.dirty,
                quorum: true,
            },
            resolve_conflicts: self.cfg.node_id < self.cfg.peer_node_id,
            settings: uuid::Settings {
                wire_protocol: self.cfg.protocol.to_u32(),
                after_sb_0p: self.cfg.after_sb_0p,
                after_sb_1p: self.cfg.after_sb_1p,
                after_sb_2p: self.cfg.after_sb_2p,
                rr_conflict: self.cfg.rr_conflict,
                ..uuid::Settings::default()
            },
            changed_since_sent: self.changed_since_sent,
            connecting: self.conn == ConnState::Connecting,
            source_missed_end: false,
            peer_missed_end: false,
        };
        let d = uuid::sync_handshake(&inp);
        let outcome = d.outcome();
        out.emit(Action::Handshake(outcome));
        let full = matches!(
            d.bitmap_action(self.gen.is_just_created()),
            uuid::BitmapAction::SetPeerSlot
                | uuid::BitmapAction::SetAllSlots
                | uuid::BitmapAction::CopySlot(_)
        );
        match outcome {
            Outcome::NoSync => {
                self.conn = ConnState::Connected;
                self.repl = ReplState::Established;
                self.discard_my_data = false;
                self.send_state(out);
            }
            Outcome::Source { .. } => {
                self.conn = ConnState::Connected;
                self.discard_my_data = false;
                if full {
                    self.mark(0, self.nbits, out);
                }
                self.gen.begin_resync_source(self.peer_id());
                self.repl = ReplState::WFBitMapS;
                self.persist(out);
                self.send_state(out);
            }
            Outcome::Target { .. } => {
                self.conn = ConnState::Connected;
                self.discard_my_data = false;
                if full {
                    self.mark(0, self.nbits, out);
                }
                self.start_target(out);
            }
            Outcome::SplitBrain { .. } => self.refuse(DropReason::SplitBrain, true, out),
            Outcome::UnrelatedData => self.refuse(DropReason::UnrelatedData, true, out),
            Outcome::Retry => self.refuse(DropReason::Retry, false, out),
            Outcome::Disconnect => self.refuse(DropReason::Refused, true, out),
        }
    }

    fn refuse(&mut self, reason: DropReason, standalone: bool, out: &mut impl Sink) {
        if standalone {
            self.conn = ConnState::StandAlone;
        }
        out.emit(Action::DropLink(reason));
    }

    /// Become SyncTarget: adopt the generation we are synced from, go
    /// Inconsistent, send our own out-of-sync runs, then our state.
    fn start_target(&mut self, out: &mut impl Sink) {
        let me = usize::from(self.cfg.node_id);
        let from = masked(self.peer.uuids.bitmap_uuid(me));
        let base = if from != 0 {
            from
        } else {
            masked(self.peer.uuids.current)
        };
        let old = masked(self.gen.current);
        if old != base && !self.gen.is_just_created() {
            self.gen.push_history(old);
        }
        self.gen.current = base | (self.gen.current & UUID_PRIMARY);
        let peer = self.peer_id();
        if let Some(b) = self.gen.bitmap.get_mut(peer) {
            *b = 0;
        }
        self.disk = DiskState::Inconsistent;
        self.repl = ReplState::WFBitMapT;
        self.persist(out);
        let mut next = 0;
        while let Some(first) = bitmap::find_next_set(self.bits.as_ref(), next, self.nbits) {
            let limit = first.saturating_add(OOS_RUN_BLOCKS).min(self.nbits);
            let end = bitmap::find_next_zero(self.bits.as_ref(), first, limit).unwrap_or(limit);
            let (sector, bytes) = self.run_extent(first, end);
            let d = BlockDesc {
                sector,
                blksize: bytes,
            };
            self.send(Packet::OutOfSync(d), Payload::None, out);
            next = end;
        }
        self.repl = ReplState::SyncTarget;
        self.send_state(out);
    }

    /// Sector and byte length of bits `[first, end)`, clamped to the device.
    fn run_extent(&self, first: u64, end: u64) -> (u64, u32) {
        let sector = first * SECTORS_PER_BLOCK;
        let last = (end * SECTORS_PER_BLOCK).min(self.cfg.sectors);
        let bytes = last.saturating_sub(sector) * 512;
        (sector, u32::try_from(bytes).unwrap_or(0))
    }

    fn overlaps_local_write(&self, first: u64, end: u64) -> bool {
        self.slots.iter().any(|s| {
            if !s.used || s.local != Local::Pending {
                return false;
            }
            let (a, b) =
                bitmap::sectors_to_bits(s.sector, u64::from(s.bytes).div_ceil(512), BLOCK_SIZE);
            a < end && first < b
        })
    }

    /// SyncSource: send resync runs while the window has room; finish when
    /// nothing is left.
    fn pump(&mut self, out: &mut impl Sink) {
        if self.repl != ReplState::SyncSource || !self.connected() {
            return;
        }
        let mut wrapped = false;
        loop {
            let Some(free) = self.rs_in_flight.iter().position(|r| r.is_none()) else {
                return;
            };
            let in_flight = self.rs_in_flight.iter().any(|r| r.is_some());
            let found = bitmap::find_next_set(self.bits.as_ref(), self.rs_cursor, self.nbits);
            let Some(first) = found else {
                if in_flight {
                    return;
                }
                if self.set == 0 || wrapped {
                    self.finish_source(out);
                    return;
                }
                self.rs_cursor = 0;
                wrapped = true;
                continue;
            };
            if let Some((_, e)) = self
                .rs_in_flight
                .iter()
                .flatten()
                .find(|(a, e)| *a <= first && first < *e)
            {
                self.rs_cursor = *e;
                continue;
            }
            let mut limit = first.saturating_add(RESYNC_RUN_BLOCKS).min(self.nbits);
            for &(a, _) in self.rs_in_flight.iter().flatten() {
                if a > first && a < limit {
                    limit = a;
                }
            }
            let end = bitmap::find_next_zero(self.bits.as_ref(), first, limit).unwrap_or(limit);
            if self.overlaps_local_write(first, end) {
                // Resumed by local_write_done.
                return;
            }
            if let Some(slot) = self.rs_in_flight.get_mut(free) {
                *slot = Some((first, end));
            }
            self.rs_cursor = end;
            let (sector, bytes) = self.run_extent(first, end);
            let h = DataHeader {
                sector,
                block_id: ID_SYNCER,
                seq_num: 0,
                dp_flags: 0,
            };
            self.send(Packet::RsData(h), Payload::ReadLocal { sector, bytes }, out);
        }
    }

    fn finish_source(&mut self, out: &mut impl Sink) {
        self.gen.finish_resync_source(self.peer_id());
        self.repl = ReplState::Established;
        self.rs_cursor = 0;
        self.persist(out);
        out.emit(Action::ResyncDone);
        self.announce(out);
    }

    fn finish_target(&mut self, out: &mut impl Sink) {
        let source = self.peer.uuids;
        self.gen
            .finish_resync_target(&source, usize::from(self.cfg.node_id), self.peer_id());
        self.clear(0, self.nbits, out);
        self.disk = DiskState::UpToDate;
        self.repl = ReplState::Established;
        self.persist(out);
        out.emit(Action::ResyncDone);
        self.announce(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type R = Replica<[u64; 4], 4>;

    fn replica(id: u8, peer: u8) -> R {
        let cfg = Config::new(id, peer, 256 * 8);
        Replica::new(
            cfg,
            Generations::just_created(),
            DiskState::Inconsistent,
            [0; 4],
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
    }

    /// Records the first eight actions.
    struct Rec {
        acts: [Option<Action>; 8],
        n: usize,
    }

    impl Sink for Rec {
        fn emit(&mut self, a: Action) {
            if let Some(slot) = self.acts.get_mut(self.n) {
                *slot = Some(a);
            }
            self.n += 1;
        }
    }

    fn collect(f: impl FnOnce(&mut Rec)) -> [Option<Action>; 8] {
        let mut r = Rec {
            acts: [None; 8],
            n: 0,
        };
        f(&mut r);
        r.acts
    }

    #[test]
    fn packets_roundtrip() {
        let h = DataHeader {
            sector: 8,
            block_id: 3,
            seq_num: 9,
            dp_flags: wire::DP_SEND_WRITE_ACK,
        };
        let a = BlockAck {
            sector: 8,
            block_id: 3,
            blksize: 4096,
            seq_num: 9,
        };
        let mut u = Generations::just_created().to_wire(2, wire::UUID_FLAG_STABLE, 7);
        u.current_uuid = 0x1234_5678_0000_0000;
        let packets = [
            Packet::Data(h),
            Packet::RsData(h),
            Packet::Ack(AckKind::Recv, a),
            Packet::Ack(AckKind::Write, a),
            Packet::Ack(AckKind::Neg, a),
            Packet::Ack(AckKind::RsWrite, a),
            Packet::Ack(AckKind::RsNeg, a),
            Packet::State(DrbdState(0x1234)),
            Packet::Uuids(u),
            Packet::OutOfSync(BlockDesc {
                sector: 16,
                blksize: 8192,
            }),
        ];
        for p in packets {
            let mut buf = [0u8; 1024 + 512];
            let n = p.encode(&mut buf).unwrap_or(0);
            let data = matches!(p, Packet::Data(_) | Packet::RsData(_));
            let total = if data { n + 512 } else { n };
            let (back, rest) =
                Packet::decode(p.cmd(), &buf[..total]).unwrap_or_else(|e| panic!("{p:?}: {e:?}"));
            assert_eq!(back, p);
            assert_eq!(rest.len(), if data { 512 } else { 0 });
            assert_eq!(p.stream() == Stream::Meta, matches!(p, Packet::Ack(..)));
        }
    }

    #[test]
    fn config_checks() {
        let cfg = Config::new(1, 1, 64);
        assert_eq!(
            R::new(
                cfg,
                Generations::just_created(),
                DiskState::Inconsistent,
                [0; 4]
            )
            .err(),
            Some(ConfigError::BadNodeIds)
        );
        let cfg = Config::new(0, 1, 64 * 64 * 8 * 5);
        assert_eq!(
            R::new(
                cfg,
                Generations::just_created(),
                DiskState::Inconsistent,
                [0; 4]
            )
            .err(),
            Some(ConfigError::BitmapTooSmall)
        );
        // Bits beyond the device are dropped.
        let cfg = Config::new(0, 1, 100 * 8);
        let r = R::new(
            cfg,
            Generations::just_created(),
            DiskState::Inconsistent,
            [!0; 4],
        );
        assert_eq!(r.map(|r| r.out_of_sync()).ok(), Some(100));
    }

    #[test]
    fn discard_my_data_travels_in_the_uuid_flags() {
        let mut r = replica(1, 0);
        assert!(r.connect(true));
        assert!(!r.connect(false), "only from StandAlone");
        let acts = collect(|out| r.link_up(out));
        let flags = acts.iter().flatten().find_map(|a| match a {
            Action::Send {
                packet: Packet::Uuids(u),
                ..
            } => Some(u.uuid_flags),
            _ => None,
        });
        assert_eq!(
            flags.map(|f| f & wire::UUID_FLAG_DISCARD_MY_DATA),
            Some(wire::UUID_FLAG_DISCARD_MY_DATA)
        );
        assert_eq!(r.conn(), ConnState::Connecting);
    }

    #[test]
    fn disconnected_primary_marks_and_completes_at_once() {
        let mut r = replica(0, 1);
        let mut ignore = |_: Action| {};
        assert_eq!(
            r.promote(false, 1, &mut ignore),
            Err(RoleError::NoUpToDateDisk)
        );
        assert_eq!(r.promote(true, 0x77, &mut ignore), Ok(()));
        assert_eq!(r.uuids().current & UUID_PRIMARY, UUID_PRIMARY);
        let acts = collect(|out| {
            assert_eq!(r.submit_write(5, 8, 4096, out), Ok(()));
        });
        assert!(acts
            .iter()
            .flatten()
            .any(|a| matches!(a, Action::BitmapSet { first: 1, end: 2 })));
        assert!(!acts
            .iter()
            .flatten()
            .any(|a| matches!(a, Action::Send { .. })));
        let acts = collect(|out| r.local_write_done(Io::Upper { slot: 0 }, true, out));
        assert_eq!(
            acts[0],
            Some(Action::CompleteWrite {
                tag: 5,
                ok: true,
                replicated: false
            })
        );
        assert_eq!((r.out_of_sync(), r.writes_in_flight()), (1, 0));
        // Packets without a link are refused, not applied.
        let mut ignore = |_: Action| {};
        assert_eq!(
            r.on_packet(&Packet::State(DrbdState(0)), 0, &mut ignore),
            Err(ProtocolError::NotConnected)
        );
    }
}
