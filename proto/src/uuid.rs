//! Generation identifiers (UUIDs) and the DRBD 9 sync-handshake decision.
//!
//! Every node keeps, per volume, a *current* UUID (the data generation it
//! holds), one *bitmap* UUID per peer node (the generation at which change
//! tracking towards that peer started; 0 = in sync) and a list of *history*
//! UUIDs (older generations, newest first). When two nodes connect they
//! exchange these sets and decide, with a fixed, ordered list of rules, who
//! resyncs from whom and whether the bitmap can be used or everything must
//! be copied. When both sides changed data independently, the rules detect
//! a split brain, which the after-sb policies may resolve automatically.
//!
//! Everything here is a pure function of its inputs: [`uuid_compare`] runs
//! the rule list, [`sync_handshake`] adds disk-state overrides, split-brain
//! policies, `--discard-my-data`, rr-conflict and the missed-resync-end
//! clean-up, and returns a [`Decision`]. Bit 0 of every UUID
//! ([`UUID_PRIMARY`]) is ignored in comparisons.

use super::meta::{HISTORY_UUIDS, NODE_ID_MAX, UUID_JUST_CREATED};
use super::state::{DiskState, ReplState, Role};
use super::wire::{
    Uuids110, UUID_FLAG_CRASHED_PRIMARY, UUID_FLAG_DISCARD_MY_DATA, UUID_FLAG_PRIMARY_LOST_QUORUM,
    UUID_FLAG_RECONNECT, UUID_FLAG_STABLE, UUID_FLAG_SYNC_TARGET,
};

/// Bit 0 of a UUID: set while the node is Primary; masked off in comparisons.
pub const UUID_PRIMARY: u64 = 1;

/// Compare-ready form of a UUID (bit 0 cleared).
pub fn masked(uuid: u64) -> u64 {
    uuid & !UUID_PRIMARY
}

/// The UUID set of one node (one volume).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generations {
    /// Current data generation.
    pub current: u64,
    /// Bitmap UUID towards each node id (0 = in sync with that node).
    pub bitmap: [u64; NODE_ID_MAX],
    /// Older generations, newest first, 0 = unused.
    pub history: [u64; HISTORY_UUIDS],
}

impl Default for Generations {
    fn default() -> Self {
        Generations::just_created()
    }
}

impl Generations {
    /// The state after `create-md`: current = JUST_CREATED, nothing else.
    pub const fn just_created() -> Generations {
        Generations {
            current: UUID_JUST_CREATED,
            bitmap: [0; NODE_ID_MAX],
            history: [0; HISTORY_UUIDS],
        }
    }

    /// True if the current UUID is JUST_CREATED (or 0, which counts as such).
    pub fn is_just_created(&self) -> bool {
        let c = masked(self.current);
        c == 0 || c == UUID_JUST_CREATED
    }

    /// Bitmap UUID towards `node` (0 for out-of-range ids).
    pub fn bitmap_uuid(&self, node: usize) -> u64 {
        self.bitmap.get(node).copied().unwrap_or(0)
    }

    /// True if `uuid` (masked) is one of the non-zero history UUIDs.
    pub fn in_history(&self, uuid: u64) -> bool {
        let u = masked(uuid);
        u != 0 && self.history.iter().any(|&h| masked(h) == u)
    }

    /// First node id (skipping `skip`) whose bitmap UUID equals `uuid`.
    pub fn find_bitmap(&self, uuid: u64, skip: Option<usize>) -> Option<usize> {
        let u = masked(uuid);
        if u == 0 {
            return None;
        }
        self.bitmap
            .iter()
            .enumerate()
            .find(|&(i, &b)| Some(i) != skip && masked(b) == u)
            .map(|(i, _)| i)
    }

    /// Push `uuid` to the front of the history (the oldest entry drops off).
    /// Zero and values already at the front are ignored.
    pub fn push_history(&mut self, uuid: u64) {
        if uuid == 0 || self.history.first().map(|&h| masked(h)) == Some(masked(uuid)) {
            return;
        }
        self.history.rotate_right(1);
        if let Some(h) = self.history.first_mut() {
            *h = uuid;
        }
    }

    /// Start a new data generation (promotion, `primary --force`, losing
    /// peers while Primary). The old current UUID is kept as bitmap UUID for
    /// every node in `unreachable` (bit n = node n) whose slot is 0. A new
    /// current UUID is taken from `random` (bit 0 cleared, never 0 or
    /// JUST_CREATED) only if a slot changed or the device was just created;
    /// returns whether that happened. The caller persists and announces it.
    pub fn new_current(&mut self, random: u64, unreachable: u64, primary: bool) -> bool {
        let old = self.current;
        let day0 = self.is_just_created();
        let mut changed = false;
        for (i, b) in self.bitmap.iter_mut().enumerate() {
            if unreachable & (1u64 << i) == 0 {
                continue;
            }
            if *b == 0 && !day0 {
                *b = old;
                changed = true;
            }
        }
        if !changed && !day0 {
            return false;
        }
        let mut new = masked(random);
        if new == 0 || new == UUID_JUST_CREATED {
            new = masked(random.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c14);
        }
        self.current = if primary { new | UUID_PRIMARY } else { new };
        true
    }

    /// Resync start on the sync source: remember where change tracking
    /// towards `peer` begins (the current UUID), unless already tracking.
    pub fn begin_resync_source(&mut self, peer: usize) {
        if let Some(b) = self.bitmap.get_mut(peer) {
            if *b == 0 {
                *b = masked(self.current);
            }
        }
    }

    /// Resync finished on the sync source: the peer has our current data,
    /// so the bitmap UUID towards it goes to the history.
    pub fn finish_resync_source(&mut self, peer: usize) {
        let old = self.bitmap_uuid(peer);
        if let Some(b) = self.bitmap.get_mut(peer) {
            *b = 0;
        }
        if masked(old) != masked(self.current) {
            self.push_history(old);
        }
    }

    /// Resync finished on the sync target (`source` is the source's set,
    /// `me`/`source_id` the node ids): take over the source's current UUID,
    /// push our old one and merge the source's history.
    pub fn finish_resync_target(&mut self, source: &Generations, me: usize, source_id: usize) {
        let old = masked(self.current);
        if masked(source.current) != old {
            self.push_history(old);
        }
        if let Some(b) = self.bitmap.get_mut(source_id) {
            *b = 0;
        }
        for &h in source.history.iter().rev() {
            if h != 0 && !self.in_history(h) {
                self.push_history(h);
            }
        }
        // The source tracks changes towards other nodes; so do we now.
        for (i, (b, &sb)) in self.bitmap.iter_mut().zip(source.bitmap.iter()).enumerate() {
            if i != me && i != source_id && sb != 0 {
                *b = sb;
            }
        }
        self.current = masked(source.current) | (self.current & UUID_PRIMARY);
    }

    /// Build from a received P_UUIDS110.
    pub fn from_wire(u: &Uuids110) -> Generations {
        let mut g = Generations {
            current: u.current_uuid,
            bitmap: [0; NODE_ID_MAX],
            history: [0; HISTORY_UUIDS],
        };
        for (i, b) in g.bitmap.iter_mut().enumerate() {
            if u.bitmap_uuids_mask & (1u64 << i) != 0 {
                *b = u.bitmap_uuids.get(i).copied().unwrap_or(0);
            }
        }
        let n = usize::from(u.history_count).min(HISTORY_UUIDS);
        for (h, &w) in g.history.iter_mut().zip(u.history_uuids.iter()).take(n) {
            *h = w;
        }
        g
    }

    /// Fill a P_UUIDS110 with this set (bitmap UUIDs for nodes in
    /// `bitmap_nodes`, all history slots), plus flags and dirty bits.
    pub fn to_wire(&self, bitmap_nodes: u64, flags: u64, dirty_bits: u64) -> Uuids110 {
        let mut u = Uuids110 {
            current_uuid: self.current,
            dirty_bits,
            uuid_flags: flags,
            bitmap_uuids_mask: bitmap_nodes & ((1u64 << NODE_ID_MAX) - 1),
            history_count: HISTORY_UUIDS as u8,
            ..Uuids110::default()
        };
        for (i, (w, &b)) in u
            .bitmap_uuids
            .iter_mut()
            .zip(self.bitmap.iter())
            .enumerate()
        {
            if u.bitmap_uuids_mask & (1u64 << i) != 0 {
                *w = b;
            }
        }
        for (w, &h) in u.history_uuids.iter_mut().zip(self.history.iter()) {
            *w = h;
        }
        u
    }
}

macro_rules! policy_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $val:expr, $text:expr;)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var = $val,)*
        }
        impl $name {
            /// Decode the netlink/wire value.
            pub fn from_u32(v: u32) -> Option<$name> {
                match v {
                    $($val => Some($name::$var),)*
                    _ => None,
                }
            }
            /// The netlink/wire value.
            pub fn to_u32(self) -> u32 {
                self as u32
            }
            /// Configuration keyword.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$var => $text,)*
                }
            }
        }
    };
}

policy_enum! {
    /// after-sb-0pri/1pri/2pri and rr-conflict policies (one number space,
    /// as on the wire in P_PROTOCOL and in netlink).
    AfterSbPolicy {
        /// Give up, drop the connection.
        Disconnect = 0, "disconnect";
        /// The node that became Primary last loses.
        DiscardYoungerPrimary = 1, "discard-younger-primary";
        /// The node that was Primary first loses.
        DiscardOlderPrimary = 2, "discard-older-primary";
        /// A node without changes loses.
        DiscardZeroChanges = 3, "discard-zero-changes";
        /// The node with fewer changed blocks loses.
        DiscardLeastChanges = 4, "discard-least-changes";
        /// This node loses.
        DiscardLocal = 5, "discard-local";
        /// The peer loses.
        DiscardRemote = 6, "discard-remote";
        /// Use the 0pri result only if the Secondary loses.
        Consensus = 7, "consensus";
        /// The Secondary loses.
        DiscardSecondary = 8, "discard-secondary";
        /// Use the 0pri result; a losing Primary is demoted or the
        /// pri-lost-after-sb helper runs.
        CallHelper = 9, "call-pri-lost-after-sb";
        /// Use the 0pri result even if a Primary loses.
        Violently = 10, "violently-as0p";
        /// rr-conflict: drop and retry the connection.
        RetryConnect = 11, "retry-connect";
        /// rr-conflict: reverse a crashed-primary resync.
        AutoDiscard = 12, "auto-discard";
    }
}

impl AfterSbPolicy {
    /// The peer's setting as seen from this side (discard-local and
    /// discard-remote swap); used to check that both sides agree.
    pub fn from_peer_view(self) -> AfterSbPolicy {
        match self {
            AfterSbPolicy::DiscardLocal => AfterSbPolicy::DiscardRemote,
            AfterSbPolicy::DiscardRemote => AfterSbPolicy::DiscardLocal,
            other => other,
        }
    }
}

/// What the rules (and the adjustments after them) decided, in DRBD's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Nothing to resync.
    NoSync,
    /// Source, unless a current Primary says otherwise (crash cases).
    SourceIfBothFailed,
    /// Source, resync the blocks marked in the bitmap.
    SourceUseBitmap,
    /// Source, full sync (set all bits towards the peer).
    SourceSetBitmap,
    /// Source; copy our bitmap slot of node `.0` into the peer's slot.
    SourceCopyBitmap(u8),
    /// Target, unless a current Primary says otherwise.
    TargetIfBothFailed,
    /// Target, resync the marked blocks.
    TargetUseBitmap,
    /// Target, full sync.
    TargetSetBitmap,
    /// Target; clear our slot, the source provides its slot of node `.0`.
    TargetClearBitmap(u8),
    /// Split brain that the after-sb policies may resolve (rule 11).
    SplitBrainAutoRecover,
    /// Split brain needing a manual decision (rule 12, or unresolved).
    SplitBrainDisconnect,
    /// No common ancestor: refuse to connect.
    UnrelatedData,
    /// Our UUIDs changed during the handshake: reconnect.
    RetryConnect,
    /// Needs a newer protocol on the peer.
    RequiresProtocol(u32),
    /// rr-conflict retry-connect: a Primary would become target.
    SyncTargetPrimaryReconnect,
    /// rr-conflict disconnect: a Primary would become target.
    SyncTargetPrimaryDisconnect,
}

impl Strategy {
    /// DRBD's log name.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::NoSync => "no-sync",
            Strategy::SourceIfBothFailed => "source-if-both-failed",
            Strategy::SourceUseBitmap => "source-use-bitmap",
            Strategy::SourceSetBitmap => "source-set-bitmap",
            Strategy::SourceCopyBitmap(_) => "source-copy-other-bitmap",
            Strategy::TargetIfBothFailed => "target-if-both-failed",
            Strategy::TargetUseBitmap => "target-use-bitmap",
            Strategy::TargetSetBitmap => "target-set-bitmap",
            Strategy::TargetClearBitmap(_) => "target-clear-bitmap",
            Strategy::SplitBrainAutoRecover => "split-brain-auto-recover",
            Strategy::SplitBrainDisconnect => "split-brain-disconnect",
            Strategy::UnrelatedData => "unrelated-data",
            Strategy::RetryConnect => "retry-connect",
            Strategy::RequiresProtocol(_) => "requires-newer-protocol",
            Strategy::SyncTargetPrimaryReconnect => "sync-target-primary-reconnect",
            Strategy::SyncTargetPrimaryDisconnect => "sync-target-primary-disconnect",
        }
    }

    /// This node will be the resync source.
    pub fn is_source(self) -> bool {
        matches!(
            self,
            Strategy::SourceIfBothFailed
                | Strategy::SourceUseBitmap
                | Strategy::SourceSetBitmap
                | Strategy::SourceCopyBitmap(_)
        )
    }

    /// This node will be the resync target.
    pub fn is_target(self) -> bool {
        matches!(
            self,
            Strategy::TargetIfBothFailed
                | Strategy::TargetUseBitmap
                | Strategy::TargetSetBitmap
                | Strategy::TargetClearBitmap(_)
                | Strategy::SyncTargetPrimaryReconnect
                | Strategy::SyncTargetPrimaryDisconnect
        )
    }

    /// A split-brain result.
    pub fn is_split_brain(self) -> bool {
        matches!(
            self,
            Strategy::SplitBrainAutoRecover | Strategy::SplitBrainDisconnect
        )
    }

    /// The connection must go down (StandAlone) instead of replicating.
    pub fn disconnects(self) -> bool {
        matches!(
            self,
            Strategy::SplitBrainAutoRecover
                | Strategy::SplitBrainDisconnect
                | Strategy::UnrelatedData
                | Strategy::RequiresProtocol(_)
                | Strategy::SyncTargetPrimaryDisconnect
        )
    }

    /// The connection must be dropped and retried.
    pub fn reconnects(self) -> bool {
        matches!(
            self,
            Strategy::RetryConnect | Strategy::SyncTargetPrimaryReconnect
        )
    }

    /// A direction (or no-sync) was decided and the connection can proceed.
    pub fn is_determined(self) -> bool {
        self == Strategy::NoSync
            || (self.is_source() || self.is_target())
                && !matches!(
                    self,
                    Strategy::SyncTargetPrimaryReconnect | Strategy::SyncTargetPrimaryDisconnect
                )
    }

    /// Full-sync form of a bitmap-based result (used when a split brain
    /// found via the history is resolved).
    pub fn full_sync_equivalent(self) -> Option<Strategy> {
        match self {
            Strategy::SourceUseBitmap => Some(Strategy::SourceSetBitmap),
            Strategy::TargetUseBitmap => Some(Strategy::TargetSetBitmap),
            _ => None,
        }
    }

    /// Same kind of resync in the other direction.
    pub fn reverse(self) -> Option<Strategy> {
        match self {
            Strategy::SourceIfBothFailed => Some(Strategy::TargetIfBothFailed),
            Strategy::TargetIfBothFailed => Some(Strategy::SourceIfBothFailed),
            Strategy::SourceUseBitmap => Some(Strategy::TargetUseBitmap),
            Strategy::TargetUseBitmap => Some(Strategy::SourceUseBitmap),
            Strategy::SourceSetBitmap => Some(Strategy::TargetSetBitmap),
            Strategy::TargetSetBitmap => Some(Strategy::SourceSetBitmap),
            _ => None,
        }
    }

    /// Every block is resynced.
    pub fn is_full_sync(self) -> bool {
        matches!(self, Strategy::SourceSetBitmap | Strategy::TargetSetBitmap)
    }
}

/// The rule of [`uuid_compare`] that produced its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// 0: our UUIDs changed since we sent them.
    InitialHandshakeChanged,
    /// 1: both JUST_CREATED.
    JustCreatedBoth,
    /// 2: we are JUST_CREATED.
    JustCreatedSelf,
    /// 3: the peer is JUST_CREATED.
    JustCreatedPeer,
    /// 4a: we were source and missed the end of the resync.
    SyncSourceMissedFinish,
    /// 4a: we were target and the peer missed the end of the resync.
    SyncTargetPeerMissedFinish,
    /// 4b/4e/4f: short interruption of an existing connection.
    Reconnected,
    /// 4c: one side crashed while Primary (protocol A/B).
    CrashedPrimary,
    /// 4d: a Primary lost quorum.
    LostQuorum,
    /// 4g: common power failure.
    BothOff,
    /// 5: the peer tracks changes since our current generation.
    BitmapPeer,
    /// 6: the peer tracks changes since our generation towards another node.
    BitmapPeerOther,
    /// 7: we track changes since the peer's current generation.
    BitmapSelf,
    /// 8: we track, towards another node, since the peer's generation.
    BitmapSelfOther,
    /// 9: our current generation is in the peer's history.
    HistoryPeer,
    /// 10: the peer's current generation is in our history.
    HistorySelf,
    /// 11: both track changes since the same generation: split brain.
    BitmapBoth,
    /// 12: a common ancestor in both histories: split brain.
    HistoryBoth,
    /// 13: nothing in common.
    Unrelated,
}

impl Rule {
    /// Row of the rule table (`0`..`13`, with letters for the equal-UUID
    /// sub-rules).
    pub fn number(self) -> &'static str {
        match self {
            Rule::InitialHandshakeChanged => "0",
            Rule::JustCreatedBoth => "1",
            Rule::JustCreatedSelf => "2",
            Rule::JustCreatedPeer => "3",
            Rule::SyncSourceMissedFinish | Rule::SyncTargetPeerMissedFinish => "4a",
            Rule::Reconnected => "4b",
            Rule::CrashedPrimary => "4c",
            Rule::LostQuorum => "4d",
            Rule::BothOff => "4g",
            Rule::BitmapPeer => "5",
            Rule::BitmapPeerOther => "6",
            Rule::BitmapSelf => "7",
            Rule::BitmapSelfOther => "8",
            Rule::HistoryPeer => "9",
            Rule::HistorySelf => "10",
            Rule::BitmapBoth => "11",
            Rule::HistoryBoth => "12",
            Rule::Unrelated => "13",
        }
    }

    /// DRBD's log name of the rule.
    pub fn name(self) -> &'static str {
        match self {
            Rule::InitialHandshakeChanged => "initial-handshake-changed",
            Rule::JustCreatedBoth => "just-created-both",
            Rule::JustCreatedSelf => "just-created-self",
            Rule::JustCreatedPeer => "just-created-peer",
            Rule::SyncSourceMissedFinish => "sync-source-missed-finish",
            Rule::SyncTargetPeerMissedFinish => "sync-target-peer-missed-finish",
            Rule::Reconnected => "reconnected",
            Rule::CrashedPrimary => "crashed-primary",
            Rule::LostQuorum => "lost-quorum",
            Rule::BothOff => "both-off",
            Rule::BitmapPeer => "bitmap-peer",
            Rule::BitmapPeerOther => "bitmap-peer-other",
            Rule::BitmapSelf => "bitmap-self",
            Rule::BitmapSelfOther => "bitmap-self-other",
            Rule::HistoryPeer => "history-peer",
            Rule::HistorySelf => "history-self",
            Rule::BitmapBoth => "bitmap-both",
            Rule::HistoryBoth => "history-both",
            Rule::Unrelated => "unrelated",
        }
    }
}

/// What one side brings to the handshake.
#[derive(Debug, Clone, Copy)]
pub struct NodeView<'a> {
    /// Node id (0..32).
    pub node_id: usize,
    /// Its UUIDs.
    pub uuids: &'a Generations,
    /// `UUID_FLAG_*` it sends (for the local side: what it sent).
    pub flags: u64,
    /// Role now.
    pub role: Role,
    /// Disk state (as sent; Negotiating already resolved from meta-data).
    pub disk: DiskState,
    /// Set bits in its bitmap towards the other side.
    pub dirty_bits: u64,
    /// Has quorum (P_STATE quorum bit).
    pub quorum: bool,
}

impl NodeView<'_> {
    fn flag(&self, f: u64) -> bool {
        self.flags & f != 0
    }
}

/// Connection settings that influence the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Agreed protocol version.
    pub agreed_version: u32,
    /// Replication protocol: 1 = A, 2 = B, 3 = C.
    pub wire_protocol: u32,
    /// after-sb-0pri.
    pub after_sb_0p: AfterSbPolicy,
    /// after-sb-1pri.
    pub after_sb_1p: AfterSbPolicy,
    /// after-sb-2pri.
    pub after_sb_2p: AfterSbPolicy,
    /// rr-conflict.
    pub rr_conflict: AfterSbPolicy,
    /// always-asbp: apply the policies to rule-12 split brains too.
    pub always_asbp: bool,
    /// Quorum is enabled on the resource.
    pub quorum_enabled: bool,
    /// `connect --dry-run`.
    pub dry_run: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            agreed_version: super::wire::PRO_VERSION_MAX,
            wire_protocol: 3,
            after_sb_0p: AfterSbPolicy::Disconnect,
            after_sb_1p: AfterSbPolicy::Disconnect,
            after_sb_2p: AfterSbPolicy::Disconnect,
            rr_conflict: AfterSbPolicy::Disconnect,
            always_asbp: false,
            quorum_enabled: false,
            dry_run: false,
        }
    }
}

/// Everything [`sync_handshake`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeInput<'a> {
    /// This node.
    pub local: NodeView<'a>,
    /// The peer, as received.
    pub peer: NodeView<'a>,
    /// This node has RESOLVE_CONFLICTS (it accepted the meta socket).
    pub resolve_conflicts: bool,
    /// Connection settings.
    pub settings: Settings,
    /// Our UUIDs, bitmap UUID or flags changed since we sent them.
    pub changed_since_sent: bool,
    /// The connection is still Connecting (rule 0 applies only then).
    pub connecting: bool,
    /// Local flag: we were source and missed the end of a resync.
    pub source_missed_end: bool,
    /// Local flag: the peer (as source) missed the end of our resync.
    pub peer_missed_end: bool,
}

/// Result of [`uuid_compare`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compared {
    /// What the rules say.
    pub strategy: Strategy,
    /// Which rule said it.
    pub rule: Rule,
}

/// The ordered rule list (`drbd_uuid_compare`), protocol >= 110.
pub fn uuid_compare(inp: &HandshakeInput<'_>) -> Compared {
    let l = &inp.local;
    let p = &inp.peer;
    let done = |strategy, rule| Compared { strategy, rule };

    if inp.changed_since_sent && inp.connecting {
        return done(Strategy::RetryConnect, Rule::InitialHandshakeChanged);
    }

    let norm = |u: u64| {
        let m = masked(u);
        if m == 0 {
            UUID_JUST_CREATED
        } else {
            m
        }
    };
    let me = norm(l.uuids.current);
    let peer = norm(p.uuids.current);

    if me == UUID_JUST_CREATED && peer == UUID_JUST_CREATED {
        return done(Strategy::NoSync, Rule::JustCreatedBoth);
    }
    if me == UUID_JUST_CREATED {
        return done(Strategy::TargetSetBitmap, Rule::JustCreatedSelf);
    }
    if peer == UUID_JUST_CREATED {
        return done(Strategy::SourceSetBitmap, Rule::JustCreatedPeer);
    }

    if me == peer {
        return equal_generations(inp);
    }

    let my_bm_to_peer = masked(l.uuids.bitmap_uuid(p.node_id));
    let peer_bm_to_me = masked(p.uuids.bitmap_uuid(l.node_id));

    if peer_bm_to_me == me {
        return done(Strategy::TargetUseBitmap, Rule::BitmapPeer);
    }
    if let Some(x) = p.uuids.find_bitmap(me, None) {
        return done(Strategy::TargetClearBitmap(x as u8), Rule::BitmapPeerOther);
    }
    if my_bm_to_peer == peer {
        return done(Strategy::SourceUseBitmap, Rule::BitmapSelf);
    }
    if let Some(x) = l.uuids.find_bitmap(peer, Some(l.node_id)) {
        return done(Strategy::SourceCopyBitmap(x as u8), Rule::BitmapSelfOther);
    }

    let mine_in_peers = p.uuids.in_history(me);
    let peers_in_mine = l.uuids.in_history(peer);
    if mine_in_peers && !peers_in_mine {
        return done(Strategy::TargetSetBitmap, Rule::HistoryPeer);
    }
    if peers_in_mine && !mine_in_peers {
        return done(Strategy::SourceSetBitmap, Rule::HistorySelf);
    }

    if my_bm_to_peer != 0 && my_bm_to_peer == peer_bm_to_me {
        return done(Strategy::SplitBrainAutoRecover, Rule::BitmapBoth);
    }

    let common = l
        .uuids
        .history
        .iter()
        .map(|&h| masked(h))
        .take_while(|&h| h != 0)
        .any(|h| {
            p.uuids
                .history
                .iter()
                .map(|&x| masked(x))
                .take_while(|&x| x != 0)
                .any(|x| x == h)
        });
    if common {
        return done(Strategy::SplitBrainDisconnect, Rule::HistoryBoth);
    }
    done(Strategy::UnrelatedData, Rule::Unrelated)
}

/// Rule 4: both current UUIDs are equal.
fn equal_generations(inp: &HandshakeInput<'_>) -> Compared {
    let l = &inp.local;
    let p = &inp.peer;
    let v = inp.settings.agreed_version;
    let done = |strategy, rule| Compared { strategy, rule };

    if inp.source_missed_end {
        return done(Strategy::SourceUseBitmap, Rule::SyncSourceMissedFinish);
    }
    if inp.peer_missed_end {
        return done(Strategy::TargetUseBitmap, Rule::SyncTargetPeerMissedFinish);
    }

    let both_reconnect = l.flag(UUID_FLAG_RECONNECT) && p.flag(UUID_FLAG_RECONNECT);
    if v >= 120 && both_reconnect {
        return done(Strategy::NoSync, Rule::Reconnected);
    }

    let l_crashed = l.flag(UUID_FLAG_CRASHED_PRIMARY);
    let p_crashed = p.flag(UUID_FLAG_CRASHED_PRIMARY);
    if v >= 121 && (inp.settings.wire_protocol == 1 || inp.settings.wire_protocol == 2) {
        if l_crashed && !p_crashed {
            return done(Strategy::SourceUseBitmap, Rule::CrashedPrimary);
        }
        if p_crashed && !l_crashed {
            return done(Strategy::TargetUseBitmap, Rule::CrashedPrimary);
        }
    }

    let l_lost = l.flag(UUID_FLAG_PRIMARY_LOST_QUORUM);
    let p_lost = p.flag(UUID_FLAG_PRIMARY_LOST_QUORUM);
    match (l_lost, p_lost) {
        (false, true) => return done(Strategy::TargetIfBothFailed, Rule::LostQuorum),
        (true, false) => return done(Strategy::SourceIfBothFailed, Rule::LostQuorum),
        (true, true) => {
            let s = if inp.resolve_conflicts {
                Strategy::SourceIfBothFailed
            } else {
                Strategy::TargetIfBothFailed
            };
            return done(s, Rule::LostQuorum);
        }
        (false, false) => {}
    }

    if v < 120 && both_reconnect {
        return done(Strategy::NoSync, Rule::Reconnected);
    }
    let l_reconnect = l.flag(UUID_FLAG_RECONNECT);
    let p_reconnect = p.flag(UUID_FLAG_RECONNECT);
    // The survivor of a crashed Primary resyncs it.
    if p_crashed && l_reconnect {
        return done(Strategy::SourceIfBothFailed, Rule::Reconnected);
    }
    if l_crashed && p_reconnect {
        return done(Strategy::TargetIfBothFailed, Rule::Reconnected);
    }
    // One of us was connected before: not a common power failure.
    if l_reconnect || p_reconnect {
        return done(Strategy::NoSync, Rule::Reconnected);
    }

    let s = match (l_crashed, p_crashed) {
        (true, true) if inp.resolve_conflicts => Strategy::TargetIfBothFailed,
        (true, _) => Strategy::SourceIfBothFailed,
        (false, true) => Strategy::TargetIfBothFailed,
        (false, false) => Strategy::NoSync,
    };
    done(s, Rule::BothOff)
}

/// How the final strategy differs from what the rules said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Taken as the rules said.
    Rules,
    /// Changed by the disk states (the better disk becomes source).
    DiskStates,
    /// Auto-recoverable split brain ignored: a side is not stable yet.
    Unstable,
    /// Split brain resolved by quorum.
    Quorum,
    /// Split brain resolved by an after-sb policy; `primaries` = 0, 1 or 2.
    AfterSbPolicy {
        /// Number of Primaries at the time.
        primaries: u8,
    },
    /// Split brain resolved by `--discard-my-data`.
    DiscardMyData,
    /// Direction reversed by `--discard-my-data` (protocol >= 121).
    DiscardMyDataReversed,
    /// rr-conflict applied (Primary would become target).
    RrConflict,
    /// rr-conflict auto-discard reversed a crashed-primary resync.
    AutoDiscard,
    /// A missed-resync-end resync was skipped (source not UpToDate).
    MissedFinishSkipped,
}

/// Helper programs the kernel must run (`drbd_khelper`), as bits.
pub mod helpers {
    /// `initial-split-brain`.
    pub const INITIAL_SPLIT_BRAIN: u8 = 1;
    /// `split-brain`.
    pub const SPLIT_BRAIN: u8 = 2;
    /// `pri-lost` (rr-conflict call-pri-lost).
    pub const PRI_LOST: u8 = 4;
    /// `pri-lost-after-sb` (after a failed demotion).
    pub const PRI_LOST_AFTER_SB: u8 = 8;
}

/// What to do with the bitmap before the resync starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitmapAction {
    /// Nothing.
    None,
    /// Set every bit of the peer's slot (full sync).
    SetPeerSlot,
    /// Fresh node: set every bit of every allocated slot.
    SetAllSlots,
    /// Copy our slot of node `.0` into the peer's slot.
    CopySlot(u8),
    /// Clear the peer's slot (the source sends its bitmap).
    ClearPeerSlot,
}

/// The outcome of [`sync_handshake`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Final strategy.
    pub strategy: Strategy,
    /// What [`uuid_compare`] said, before any adjustment.
    pub compared: Strategy,
    /// Rule that produced `compared`.
    pub rule: Rule,
    /// Why `strategy` differs from `compared`.
    pub resolution: Resolution,
    /// [`helpers`] bits to run.
    pub helpers: u8,
    /// The decision holds only if the local Primary is demoted now
    /// (call-pri-lost-after-sb); see [`Decision::demotion_failed`].
    pub demote_local: bool,
    /// Resolved split brain found via the history: everything is resynced.
    pub full_sync_after_split_brain: bool,
    /// Missed-finish skip as target: move our bitmap UUID towards the
    /// peer into the history and clear it.
    pub drop_bitmap_uuid: bool,
    /// `--dry-run`: report, then disconnect.
    pub dry_run: bool,
}

/// Summary of a [`Decision`] for logs, events and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Connected, no resync.
    NoSync,
    /// This node is source.
    Source {
        /// Full sync (all blocks).
        full: bool,
    },
    /// This node is target.
    Target {
        /// Full sync (all blocks).
        full: bool,
    },
    /// Split brain detected and not resolved.
    SplitBrain {
        /// Rule that found it (11 or 12).
        rule: Rule,
    },
    /// No common data generation.
    UnrelatedData,
    /// Drop the connection and try again.
    Retry,
    /// Drop the connection (rr-conflict, protocol too old, dry run).
    Disconnect,
}

impl Decision {
    fn new(c: Compared) -> Decision {
        Decision {
            strategy: c.strategy,
            compared: c.strategy,
            rule: c.rule,
            resolution: Resolution::Rules,
            helpers: 0,
            demote_local: false,
            full_sync_after_split_brain: false,
            drop_bitmap_uuid: false,
            dry_run: false,
        }
    }

    /// Summary.
    pub fn outcome(&self) -> Outcome {
        let s = self.strategy;
        if self.dry_run {
            return Outcome::Disconnect;
        }
        if s.is_split_brain() {
            return Outcome::SplitBrain { rule: self.rule };
        }
        match s {
            Strategy::UnrelatedData => Outcome::UnrelatedData,
            Strategy::RetryConnect | Strategy::SyncTargetPrimaryReconnect => Outcome::Retry,
            Strategy::RequiresProtocol(_) | Strategy::SyncTargetPrimaryDisconnect => {
                Outcome::Disconnect
            }
            Strategy::NoSync => Outcome::NoSync,
            _ if s.is_source() => Outcome::Source {
                full: s.is_full_sync(),
            },
            _ => Outcome::Target {
                full: s.is_full_sync(),
            },
        }
    }

    /// The replication state to enter, or `None` if the connection drops.
    /// "-if-both-failed" results follow a current Primary when there is one.
    pub fn repl_state(&self, my_role: Role, peer_role: Role) -> Option<ReplState> {
        let s = self.strategy;
        if self.dry_run || !s.is_determined() {
            return None;
        }
        if matches!(
            s,
            Strategy::SourceIfBothFailed | Strategy::TargetIfBothFailed
        ) && (my_role == Role::Primary || peer_role == Role::Primary)
        {
            return Some(if peer_role == Role::Secondary {
                ReplState::WFBitMapS
            } else if my_role == Role::Secondary {
                ReplState::WFBitMapT
            } else {
                ReplState::Established
            });
        }
        Some(if s.is_source() {
            ReplState::WFBitMapS
        } else if s.is_target() {
            ReplState::WFBitMapT
        } else {
            ReplState::Established
        })
    }

    /// Bitmap work before the resync; `just_created` = our current UUID is
    /// JUST_CREATED.
    pub fn bitmap_action(&self, just_created: bool) -> BitmapAction {
        match self.strategy {
            Strategy::SourceCopyBitmap(n) => BitmapAction::CopySlot(n),
            Strategy::TargetClearBitmap(_) => BitmapAction::ClearPeerSlot,
            Strategy::SourceSetBitmap | Strategy::TargetSetBitmap if just_created => {
                BitmapAction::SetAllSlots
            }
            Strategy::SourceSetBitmap | Strategy::TargetSetBitmap => BitmapAction::SetPeerSlot,
            _ => BitmapAction::None,
        }
    }

    /// call-pri-lost-after-sb could not demote the local Primary: run the
    /// `pri-lost-after-sb` helper and treat the split brain as unresolved.
    pub fn demotion_failed(mut self) -> Decision {
        if self.demote_local {
            self.demote_local = false;
            self.strategy = Strategy::SplitBrainDisconnect;
            self.resolution = Resolution::Rules;
            self.helpers |= helpers::PRI_LOST_AFTER_SB | helpers::SPLIT_BRAIN;
        }
        self
    }
}

/// after-sb-0pri (also the base of the 1pri/2pri policies).
fn recover_0p(inp: &HandshakeInput<'_>, policy: AfterSbPolicy) -> Strategy {
    use AfterSbPolicy as P;
    let l = &inp.local;
    let p = &inp.peer;
    // Who was Primary when the split began: bit 0 of the bitmap UUIDs.
    let self_pri = l.uuids.bitmap_uuid(p.node_id) & UUID_PRIMARY != 0;
    let peer_pri = p.uuids.bitmap_uuid(l.node_id) & UUID_PRIMARY != 0;
    let ch_self = l.dirty_bits;
    let ch_peer = p.dirty_bits;
    let tie = if inp.resolve_conflicts {
        Strategy::TargetUseBitmap
    } else {
        Strategy::SourceUseBitmap
    };
    let least = || {
        if ch_self < ch_peer {
            Strategy::TargetUseBitmap
        } else if ch_self > ch_peer {
            Strategy::SourceUseBitmap
        } else {
            tie
        }
    };
    let zero = || {
        if ch_self == 0 && ch_peer == 0 {
            Some(tie)
        } else if ch_peer == 0 {
            Some(Strategy::SourceUseBitmap)
        } else if ch_self == 0 {
            Some(Strategy::TargetUseBitmap)
        } else {
            None
        }
    };
    let by_age = |younger_loses: bool| match (self_pri, peer_pri) {
        (false, true) => Some(if younger_loses {
            Strategy::TargetUseBitmap
        } else {
            Strategy::SourceUseBitmap
        }),
        (true, false) => Some(if younger_loses {
            Strategy::SourceUseBitmap
        } else {
            Strategy::TargetUseBitmap
        }),
        _ => None,
    };
    match policy {
        P::Disconnect
        | P::Consensus
        | P::DiscardSecondary
        | P::CallHelper
        | P::Violently
        | P::RetryConnect
        | P::AutoDiscard => Strategy::SplitBrainDisconnect,
        P::DiscardYoungerPrimary => by_age(true).or_else(zero).unwrap_or_else(least),
        P::DiscardOlderPrimary => by_age(false).or_else(zero).unwrap_or_else(least),
        P::DiscardZeroChanges => zero().unwrap_or(Strategy::SplitBrainDisconnect),
        P::DiscardLeastChanges => least(),
        P::DiscardLocal => Strategy::TargetUseBitmap,
        P::DiscardRemote => Strategy::SourceUseBitmap,
    }
}

/// Apply the after-sb policy for `primaries` current Primaries. Returns the
/// strategy and whether the local Primary must be demoted for it to hold.
fn recover(inp: &HandshakeInput<'_>, primaries: u8) -> (Strategy, bool) {
    use AfterSbPolicy as P;
    let s = &inp.settings;
    let me_primary = inp.local.role == Role::Primary;
    match primaries {
        0 => (recover_0p(inp, s.after_sb_0p), false),
        1 => match s.after_sb_1p {
            P::Consensus => {
                let r = recover_0p(inp, s.after_sb_0p);
                let ok = (r == Strategy::TargetUseBitmap && !me_primary)
                    || (r == Strategy::SourceUseBitmap && me_primary);
                (
                    if ok {
                        r
                    } else {
                        Strategy::SplitBrainDisconnect
                    },
                    false,
                )
            }
            P::Violently => (recover_0p(inp, s.after_sb_0p), false),
            P::DiscardSecondary => (
                if me_primary {
                    Strategy::SourceUseBitmap
                } else {
                    Strategy::TargetUseBitmap
                },
                false,
            ),
            P::CallHelper => {
                let r = recover_0p(inp, s.after_sb_0p);
                (r, r == Strategy::TargetUseBitmap && me_primary)
            }
            _ => (Strategy::SplitBrainDisconnect, false),
        },
        _ => match s.after_sb_2p {
            P::Violently => (recover_0p(inp, s.after_sb_0p), false),
            P::CallHelper => {
                let r = recover_0p(inp, s.after_sb_0p);
                (r, r == Strategy::TargetUseBitmap)
            }
            _ => (Strategy::SplitBrainDisconnect, false),
        },
    }
}

/// Better disk wins when the rules left the direction open (>= 119), or
/// when one side is Inconsistent and the rules said no-sync.
fn disk_state_override(inp: &HandshakeInput<'_>, d: &mut Decision) {
    let mine = inp.local.disk;
    let theirs = inp.peer.disk;
    let either_inconsistent = (mine == DiskState::Inconsistent && theirs > DiskState::Inconsistent)
        || (theirs == DiskState::Inconsistent && mine > DiskState::Inconsistent);
    let s = d.strategy;
    let (decide, prefer_local) = if inp.settings.agreed_version >= 119 {
        let want = mine != theirs
            && mine >= DiskState::Inconsistent
            && theirs >= DiskState::Inconsistent
            && theirs != DiskState::DUnknown;
        let arbitrary = matches!(
            s,
            Strategy::SourceIfBothFailed | Strategy::TargetIfBothFailed
        ) && matches!(d.rule, Rule::Reconnected | Rule::LostQuorum | Rule::BothOff);
        (
            want && (arbitrary || (s == Strategy::NoSync && either_inconsistent)),
            mine > theirs,
        )
    } else {
        (
            (d.rule == Rule::BothOff || s == Strategy::NoSync) && either_inconsistent,
            mine > DiskState::Inconsistent,
        )
    };
    if !decide {
        return;
    }
    d.strategy = if prefer_local {
        disk_states_source(inp)
    } else {
        disk_states_target(inp)
    };
    d.resolution = Resolution::DiskStates;
}

fn disk_states_source(inp: &HandshakeInput<'_>) -> Strategy {
    let l = &inp.local;
    let p = &inp.peer;
    if !p.flag(UUID_FLAG_SYNC_TARGET) {
        return Strategy::SourceUseBitmap;
    }
    // The peer is already target of someone: its bitmap UUID towards us is
    // that resync's generation; pick the matching bitmap of ours.
    let bm = masked(p.uuids.bitmap_uuid(l.node_id));
    if bm == masked(p.uuids.current) && bm == masked(l.uuids.current) {
        return Strategy::SourceUseBitmap;
    }
    match l.uuids.find_bitmap(bm, Some(l.node_id)) {
        None => Strategy::SourceSetBitmap,
        Some(i) if i == p.node_id => Strategy::SourceUseBitmap,
        Some(i) => Strategy::SourceCopyBitmap(i as u8),
    }
}

fn disk_states_target(inp: &HandshakeInput<'_>) -> Strategy {
    let l = &inp.local;
    let p = &inp.peer;
    if !l.flag(UUID_FLAG_SYNC_TARGET) {
        return Strategy::TargetUseBitmap;
    }
    let bm = masked(l.uuids.bitmap_uuid(p.node_id));
    if bm == masked(p.uuids.current) && bm == masked(l.uuids.current) {
        return Strategy::TargetUseBitmap;
    }
    match p.uuids.find_bitmap(bm, None) {
        None => Strategy::TargetSetBitmap,
        Some(i) if i == l.node_id => Strategy::TargetUseBitmap,
        Some(i) => Strategy::TargetClearBitmap(i as u8),
    }
}

/// The whole sync handshake (`drbd_sync_handshake`): rules, disk states,
/// split-brain recovery, `--discard-my-data`, rr-conflict.
pub fn sync_handshake(inp: &HandshakeInput<'_>) -> Decision {
    let l = &inp.local;
    let p = &inp.peer;
    let set = &inp.settings;
    let mut d = Decision::new(uuid_compare(inp));

    if matches!(d.strategy, Strategy::RetryConnect | Strategy::UnrelatedData) {
        return d;
    }

    // Before 124, peers mishandle a missed resync end with no bits set.
    if set.agreed_version < 124 && l.dirty_bits == 0 && p.dirty_bits == 0 {
        if d.strategy == Strategy::SourceUseBitmap && d.rule == Rule::SyncSourceMissedFinish {
            d.strategy = Strategy::RetryConnect;
            return d;
        }
        if d.strategy == Strategy::TargetUseBitmap
            && d.rule == Rule::SyncTargetPeerMissedFinish
            && l.role == Role::Primary
        {
            d.strategy = Strategy::RequiresProtocol(124);
            return d;
        }
    }

    disk_state_override(inp, &mut d);

    if d.strategy == Strategy::SplitBrainAutoRecover
        && !(l.flag(UUID_FLAG_STABLE) && p.flag(UUID_FLAG_STABLE))
    {
        d.strategy = Strategy::NoSync;
        d.resolution = Resolution::Unstable;
    }

    if d.strategy.is_split_brain() {
        d.helpers |= helpers::INITIAL_SPLIT_BRAIN;
    }

    let need_full = d.strategy == Strategy::SplitBrainDisconnect;
    if d.strategy == Strategy::SplitBrainAutoRecover || (need_full && set.always_asbp) {
        let primaries = u8::from(l.role == Role::Primary) + u8::from(p.role == Role::Primary);
        if set.quorum_enabled && set.agreed_version >= 113 {
            if l.quorum && !p.quorum {
                d.strategy = Strategy::SourceUseBitmap;
                d.resolution = Resolution::Quorum;
            } else if !l.quorum && p.quorum {
                d.strategy = Strategy::TargetUseBitmap;
                d.resolution = Resolution::Quorum;
            }
        }
        if d.strategy.is_split_brain() {
            let (s, demote) = recover(inp, primaries);
            d.strategy = s;
            d.demote_local = demote;
            if !s.is_split_brain() {
                d.resolution = Resolution::AfterSbPolicy { primaries };
            }
        }
        if !d.strategy.is_split_brain() && need_full {
            match d.strategy.full_sync_equivalent() {
                Some(f) => {
                    d.strategy = f;
                    d.full_sync_after_split_brain = true;
                }
                None => {
                    d.strategy = Strategy::SplitBrainDisconnect;
                    d.demote_local = false;
                }
            }
        }
    }

    let user = match (
        l.flag(UUID_FLAG_DISCARD_MY_DATA),
        p.flag(UUID_FLAG_DISCARD_MY_DATA),
    ) {
        (true, false) => Some(Strategy::TargetUseBitmap),
        (false, true) => Some(Strategy::SourceUseBitmap),
        _ => None,
    };

    if d.strategy == Strategy::SplitBrainDisconnect {
        if let Some(u) = user {
            d.strategy = if need_full {
                d.full_sync_after_split_brain = true;
                u.full_sync_equivalent().unwrap_or(u)
            } else {
                u
            };
            d.resolution = Resolution::DiscardMyData;
        }
    }

    if d.strategy.is_split_brain() {
        d.strategy = Strategy::SplitBrainDisconnect;
        d.helpers |= helpers::SPLIT_BRAIN;
        return d;
    }
    if !d.strategy.is_determined() {
        return d;
    }

    if set.agreed_version >= 121 && d.strategy != Strategy::NoSync {
        if let Some(u) = user {
            if d.strategy.is_source() != u.is_source() {
                if let Some(rev) = d.strategy.reverse() {
                    let source_disk = if rev.is_source() { l.disk } else { p.disk };
                    if source_disk > DiskState::Inconsistent {
                        d.strategy = rev;
                        d.resolution = Resolution::DiscardMyDataReversed;
                    }
                }
            }
        }
    }

    // (A Primary that call-pri-lost-after-sb demotes is Secondary by now.)
    if d.strategy.is_target()
        && d.strategy != Strategy::TargetIfBothFailed
        && l.role == Role::Primary
        && !d.demote_local
        && l.disk >= DiskState::Consistent
        && (l.dirty_bits > 0 || p.dirty_bits > 0)
    {
        match set.rr_conflict {
            AfterSbPolicy::CallHelper => {
                d.helpers |= helpers::PRI_LOST;
                d.strategy = Strategy::SyncTargetPrimaryDisconnect;
                d.resolution = Resolution::RrConflict;
            }
            AfterSbPolicy::RetryConnect => {
                d.strategy = Strategy::SyncTargetPrimaryReconnect;
                d.resolution = Resolution::RrConflict;
            }
            AfterSbPolicy::Violently => {}
            AfterSbPolicy::AutoDiscard => {
                if d.strategy == Strategy::TargetUseBitmap && d.rule == Rule::CrashedPrimary {
                    d.strategy = Strategy::SourceUseBitmap;
                    d.resolution = Resolution::AutoDiscard;
                }
            }
            _ => {
                d.strategy = Strategy::SyncTargetPrimaryDisconnect;
                d.resolution = Resolution::RrConflict;
            }
        }
    }
    if d.strategy == Strategy::SourceUseBitmap
        && d.rule == Rule::CrashedPrimary
        && p.role == Role::Primary
        && p.disk >= DiskState::Consistent
        && set.rr_conflict == AfterSbPolicy::AutoDiscard
    {
        d.strategy = Strategy::TargetUseBitmap;
        d.resolution = Resolution::AutoDiscard;
    }

    if matches!(
        d.rule,
        Rule::SyncSourceMissedFinish | Rule::SyncTargetPeerMissedFinish
    ) {
        if d.strategy == Strategy::SourceUseBitmap && l.disk != DiskState::UpToDate {
            d.strategy = Strategy::NoSync;
            d.resolution = Resolution::MissedFinishSkipped;
        } else if d.strategy == Strategy::TargetUseBitmap && p.disk != DiskState::UpToDate {
            d.strategy = Strategy::NoSync;
            d.resolution = Resolution::MissedFinishSkipped;
            d.drop_bitmap_uuid = l.uuids.bitmap_uuid(p.node_id) != 0;
        }
    }

    d.dry_run = set.dry_run;
    d
}

#[cfg(test)]
mod tests {
    use super::super::wire::UUID_FLAG_INCONSISTENT;
    use super::*;

    const A: usize = 0;
    const B: usize = 1;
    const C: usize = 2;
    const X: u64 = 0x5a5a_0000_1111_0000;
    const Y: u64 = 0x6b6b_0000_2222_0000;
    const Z: u64 = 0x7c7c_0000_3333_0000;
    const H: u64 = 0x0101_0000_4444_0000;

    #[derive(Clone)]
    struct Node {
        id: usize,
        g: Generations,
        flags: u64,
        role: Role,
        disk: DiskState,
        dirty: u64,
        quorum: bool,
    }

    impl Node {
        fn fresh(id: usize) -> Node {
            Node {
                id,
                g: Generations::just_created(),
                flags: UUID_FLAG_STABLE | UUID_FLAG_INCONSISTENT,
                role: Role::Secondary,
                disk: DiskState::Inconsistent,
                dirty: 0,
                quorum: true,
            }
        }
        fn up_to_date(id: usize, current: u64) -> Node {
            let mut n = Node::fresh(id);
            n.g.current = current;
            n.flags = UUID_FLAG_STABLE;
            n.disk = DiskState::UpToDate;
            n
        }
        fn view(&self) -> NodeView<'_> {
            NodeView {
                node_id: self.id,
                uuids: &self.g,
                flags: self.flags,
                role: self.role,
                disk: self.disk,
                dirty_bits: self.dirty,
                quorum: self.quorum,
            }
        }
        fn promote(&mut self) {
            self.role = Role::Primary;
            self.g.current |= UUID_PRIMARY;
        }
        /// Lose the connection to `peer` and write `dirty` blocks: a new
        /// data generation `uuid` starts (DRBD does this when a Primary
        /// loses a peer, or at the first write of a later promotion).
        fn diverge(&mut self, uuid: u64, peer: usize, dirty: u64) {
            assert!(self
                .g
                .new_current(uuid, 1 << peer, self.role == Role::Primary));
            self.dirty = dirty;
        }
    }

    fn input<'a>(me: &'a Node, peer: &'a Node, rc: bool, s: Settings) -> HandshakeInput<'a> {
        HandshakeInput {
            local: me.view(),
            peer: peer.view(),
            resolve_conflicts: rc,
            settings: s,
            changed_since_sent: false,
            connecting: true,
            source_missed_end: false,
            peer_missed_end: false,
        }
    }

    fn decide(me: &Node, peer: &Node, rc: bool, s: Settings) -> Decision {
        sync_handshake(&input(me, peer, rc, s))
    }

    /// Both views (`a` holds RESOLVE_CONFLICTS); checks they mirror.
    fn both(a: &Node, b: &Node, s: Settings) -> (Decision, Decision) {
        let da = decide(a, b, true, s);
        let db = decide(b, a, false, s);
        let ok = match (da.outcome(), db.outcome()) {
            (Outcome::Source { full: f1 }, Outcome::Target { full: f2 })
            | (Outcome::Target { full: f1 }, Outcome::Source { full: f2 }) => f1 == f2,
            (x, y) => x == y,
        };
        assert!(ok, "not mirrored: {da:?} vs {db:?}");
        (da, db)
    }

    fn settings() -> Settings {
        Settings::default()
    }

    fn synced_pair() -> (Node, Node) {
        (Node::up_to_date(A, X), Node::up_to_date(B, X))
    }

    #[test]
    fn fresh_both_sides() {
        let (a, b) = (Node::fresh(A), Node::fresh(B));
        let (da, db) = both(&a, &b, settings());
        assert_eq!(da.rule, Rule::JustCreatedBoth);
        assert_eq!(da.strategy, Strategy::NoSync);
        assert_eq!(db.strategy, Strategy::NoSync);
        assert_eq!(
            da.repl_state(Role::Secondary, Role::Secondary),
            Some(ReplState::Established)
        );
        // a zero current UUID counts as JUST_CREATED
        let mut z = Node::fresh(B);
        z.g.current = 0;
        assert_eq!(decide(&a, &z, true, settings()).rule, Rule::JustCreatedBoth);
    }

    #[test]
    fn primary_force_on_fresh_node() {
        let mut a = Node::fresh(A);
        let b = Node::fresh(B);
        a.promote();
        assert!(a.g.new_current(X, 1 << B, true));
        a.disk = DiskState::UpToDate;
        a.flags = UUID_FLAG_STABLE;
        assert_eq!(a.g.current, X | UUID_PRIMARY);
        assert_eq!(a.g.bitmap_uuid(B), 0, "day 0 does not track changes");
        let (da, db) = both(&a, &b, settings());
        assert_eq!(
            (da.strategy, da.rule),
            (Strategy::SourceSetBitmap, Rule::JustCreatedPeer)
        );
        assert_eq!(
            (db.strategy, db.rule),
            (Strategy::TargetSetBitmap, Rule::JustCreatedSelf)
        );
        assert_eq!(da.outcome(), Outcome::Source { full: true });
        assert_eq!(da.bitmap_action(false), BitmapAction::SetPeerSlot);
        assert_eq!(db.bitmap_action(true), BitmapAction::SetAllSlots);
        assert_eq!(
            da.repl_state(Role::Primary, Role::Secondary),
            Some(ReplState::WFBitMapS)
        );
        assert_eq!(
            db.repl_state(Role::Secondary, Role::Primary),
            Some(ReplState::WFBitMapT)
        );
        // full sync done: B takes over A's generation; reconnect is quiet
        let mut b2 = b.clone();
        b2.g.finish_resync_target(&a.g, B, A);
        b2.disk = DiskState::UpToDate;
        b2.flags = UUID_FLAG_STABLE;
        assert_eq!(masked(b2.g.current), X);
        let (da, _) = both(&a, &b2, settings());
        assert_eq!((da.strategy, da.rule), (Strategy::NoSync, Rule::BothOff));
    }

    #[test]
    fn writes_on_one_side_while_disconnected() {
        let (mut a, b) = synced_pair();
        a.promote();
        a.diverge(Y, B, 2048);
        assert_eq!(a.g.bitmap_uuid(B), X | UUID_PRIMARY);
        let (da, db) = both(&a, &b, settings());
        assert_eq!(
            (da.strategy, da.rule),
            (Strategy::SourceUseBitmap, Rule::BitmapSelf)
        );
        assert_eq!(
            (db.strategy, db.rule),
            (Strategy::TargetUseBitmap, Rule::BitmapPeer)
        );
        assert_eq!(da.outcome(), Outcome::Source { full: false });
        assert_eq!(da.bitmap_action(false), BitmapAction::None);
        // same after A stepped down before the reconnect
        let mut a2 = a.clone();
        a2.role = Role::Secondary;
        let (da, _) = both(&a2, &b, settings());
        assert_eq!(da.strategy, Strategy::SourceUseBitmap);
        // a second outage of the same Primary keeps the first bitmap UUID
        let mut a3 = a.clone();
        assert!(!a3.g.new_current(Z, 1 << B, true));
        assert_eq!(masked(a3.g.current), Y);
    }

    #[test]
    fn split_brain_detected() {
        let (mut a, mut b) = synced_pair();
        a.promote();
        a.diverge(Y, B, 100);
        b.promote();
        b.diverge(Z, A, 50);
        let (da, db) = both(&a, &b, settings());
        for d in [da, db] {
            assert_eq!(d.rule, Rule::BitmapBoth);
            assert_eq!(d.rule.number(), "11");
            assert_eq!(d.compared, Strategy::SplitBrainAutoRecover);
            assert_eq!(d.strategy, Strategy::SplitBrainDisconnect);
            assert_eq!(
                d.outcome(),
                Outcome::SplitBrain {
                    rule: Rule::BitmapBoth
                }
            );
            assert_eq!(
                d.helpers,
                helpers::INITIAL_SPLIT_BRAIN | helpers::SPLIT_BRAIN
            );
            assert_eq!(d.repl_state(Role::Primary, Role::Primary), None);
            assert!(d.strategy.disconnects());
        }
    }

    #[test]
    fn split_brain_ignored_while_unstable() {
        let (mut a, mut b) = synced_pair();
        a.diverge(Y, B, 1);
        b.diverge(Z, A, 1);
        b.flags &= !UUID_FLAG_STABLE;
        let (da, _) = both(&a, &b, settings());
        assert_eq!(da.strategy, Strategy::NoSync);
        assert_eq!(da.resolution, Resolution::Unstable);
    }

    /// Both wrote while apart; both Secondary now (0 Primaries).
    fn split_0pri(dirty_a: u64, dirty_b: u64) -> (Node, Node) {
        let (mut a, mut b) = synced_pair();
        a.promote();
        a.diverge(Y, B, dirty_a);
        a.role = Role::Secondary;
        b.diverge(Z, A, dirty_b);
        (a, b)
    }

    fn with_0p(p: AfterSbPolicy, peer: bool) -> Settings {
        Settings {
            after_sb_0p: if peer { p.from_peer_view() } else { p },
            ..settings()
        }
    }

    #[test]
    fn after_sb_0pri_policies() {
        use AfterSbPolicy as P;
        // discard-zero-changes: B wrote nothing
        let (a, b) = split_0pri(10, 0);
        let (da, db) = both(&a, &b, with_0p(P::DiscardZeroChanges, false));
        assert_eq!(da.strategy, Strategy::SourceUseBitmap);
        assert_eq!(db.strategy, Strategy::TargetUseBitmap);
        assert_eq!(da.resolution, Resolution::AfterSbPolicy { primaries: 0 });
        assert_eq!(da.helpers, helpers::INITIAL_SPLIT_BRAIN);
        // both wrote: zero-changes cannot decide
        let (a, b) = split_0pri(10, 5);
        let (da, _) = both(&a, &b, with_0p(P::DiscardZeroChanges, false));
        assert_eq!(da.strategy, Strategy::SplitBrainDisconnect);
        // least changes: B (5) loses
        let (da, db) = both(&a, &b, with_0p(P::DiscardLeastChanges, false));
        assert_eq!(da.strategy, Strategy::SourceUseBitmap);
        assert_eq!(db.strategy, Strategy::TargetUseBitmap);
        // tie: the RESOLVE_CONFLICTS side (A) becomes target
        let (a, b) = split_0pri(7, 7);
        let (da, db) = both(&a, &b, with_0p(P::DiscardLeastChanges, false));
        assert_eq!(da.strategy, Strategy::TargetUseBitmap);
        assert_eq!(db.strategy, Strategy::SourceUseBitmap);
        // younger/older primary: A was Primary at the split, B was not
        let (a, b) = split_0pri(10, 5);
        let (da, _) = both(&a, &b, with_0p(P::DiscardYoungerPrimary, false));
        assert_eq!(da.strategy, Strategy::SourceUseBitmap);
        let (da, _) = both(&a, &b, with_0p(P::DiscardOlderPrimary, false));
        assert_eq!(da.strategy, Strategy::TargetUseBitmap);
        // neither was Primary: falls through to zero/least changes
        let (mut a, mut b) = synced_pair();
        a.diverge(Y, B, 3);
        b.diverge(Z, A, 9);
        let (da, _) = both(&a, &b, with_0p(P::DiscardYoungerPrimary, false));
        assert_eq!(da.strategy, Strategy::TargetUseBitmap);
        let (da, _) = both(&a, &b, with_0p(P::DiscardOlderPrimary, false));
        assert_eq!(da.strategy, Strategy::TargetUseBitmap);
        // discard-local on A is discard-remote on B
        let (a, b) = split_0pri(10, 5);
        let da = decide(&a, &b, true, with_0p(P::DiscardLocal, false));
        let db = decide(&b, &a, false, with_0p(P::DiscardLocal, true));
        assert_eq!(da.strategy, Strategy::TargetUseBitmap);
        assert_eq!(db.strategy, Strategy::SourceUseBitmap);
        let da = decide(&a, &b, true, with_0p(P::DiscardRemote, false));
        assert_eq!(da.strategy, Strategy::SourceUseBitmap);
        // policies that make no sense for 0 primaries are configuration errors
        for p in [
            P::Consensus,
            P::DiscardSecondary,
            P::CallHelper,
            P::Violently,
        ] {
            let (da, _) = both(&a, &b, with_0p(p, false));
            assert_eq!(da.strategy, Strategy::SplitBrainDisconnect, "{p:?}");
        }
    }

    /// Split brain with A Primary now, B Secondary.
    fn split_1pri() -> (Node, Node) {
        let (mut a, mut b) = synced_pair();
        a.promote();
        a.diverge(Y, B, 10);
        b.diverge(Z, A, 0);
        (a, b)
    }

    #[test]
    fn after_sb_1pri_policies() {
        use AfterSbPolicy as P;
        let (a, b) = split_1pri();
        let s = |p1, p0| Settings {
            after_sb_1p: p1,
            after_sb_0p: p0,
            rr_conflict: P::Violently,
            ..settings()
        };
        // discard-secondary
        let (da, db) = both(&a, &b, s(P::DiscardSecondary, P::Disconnect));
        assert_eq!(da.strategy, Strategy::SourceUseBitmap);
        assert_eq!(db.strategy, Strategy::TargetUseBitmap);
        assert_eq!(da.resolution, Resolution::AfterSbPolicy { primaries: 1 });
        // consensus: 0pri says B (zero changes) loses, B is Secondary: ok
        let (da, db) = both(&a, &b, s(P::Consensus, P::DiscardZeroChanges));
        assert_eq!(da.strategy, Strategy::SourceUseBitmap);
        assert_eq!(db.strategy, Strategy::TargetUseBitmap);
        // consensus refuses when the Primary would lose
        let (mut a2, mut b2) = (a.clone(), b.clone());
        a2.dirty = 0;
        b2.dirty = 10;
        let (da, db) = both(&a2, &b2, s(P::Consensus, P::DiscardZeroChanges));
        assert_eq!(da.strategy, Strategy::SplitBrainDisconnect);
        assert_eq!(db.strategy, Strategy::SplitBrainDisconnect);
        // violently-as0p: the Primary loses anyway ...
        let (da, db) = both(&a2, &b2, s(P::Violently, P::DiscardZeroChanges));
        assert_eq!(da.strategy, Strategy::TargetUseBitmap);
        assert_eq!(db.strategy, Strategy::SourceUseBitmap);
        // ... unless rr-conflict (checked afterwards) forbids it
        let strict = Settings {
            rr_conflict: P::Disconnect,
            ..s(P::Violently, P::DiscardZeroChanges)
        };
        let da = decide(&a2, &b2, true, strict);
        assert_eq!(da.strategy, Strategy::SyncTargetPrimaryDisconnect);
        assert_eq!(da.resolution, Resolution::RrConflict);
        // call-pri-lost-after-sb: the losing Primary must be demoted (and,
        // demoted, it is no Primary for rr-conflict)
        let sc = Settings {
            rr_conflict: P::Disconnect,
            ..s(P::CallHelper, P::DiscardZeroChanges)
        };
        let da = decide(&a2, &b2, true, sc);
        assert_eq!(da.strategy, Strategy::TargetUseBitmap);
        assert!(da.demote_local);
        let failed = da.demotion_failed();
        assert_eq!(failed.strategy, Strategy::SplitBrainDisconnect);
        assert_ne!(failed.helpers & helpers::PRI_LOST_AFTER_SB, 0);
        assert_ne!(failed.helpers & helpers::SPLIT_BRAIN, 0);
        // the Secondary side needs no demotion
        let db = decide(&b2, &a2, false, sc);
        assert_eq!(db.strategy, Strategy::SourceUseBitmap);
        assert!(!db.demote_local);
        // disconnect and invalid policies keep the split brain
        for p in [P::Disconnect, P::DiscardLocal, P::DiscardLeastChanges] {
            let (da, _) = both(&a, &b, s(p, P::DiscardZeroChanges));
            assert_eq!(da.strategy, Strategy::SplitBrainDisconnect, "{p:?}");
        }
    }

    #[test]
    fn after_sb_2pri_policies() {
        use AfterSbPolicy as P;
        let (mut a, mut b) = synced_pair();
        a.promote();
        a.diverge(Y, B, 10);
        b.promote();
        b.diverge(Z, A, 3);
        let s = |p2| Settings {
            after_sb_2p: p2,
            after_sb_0p: P::DiscardLeastChanges,
            rr_conflict: P::Violently,
            ..settings()
        };
        let (da, _) = both(&a, &b, s(P::Disconnect));
        assert_eq!(da.strategy, Strategy::SplitBrainDisconnect);
        let (da, db) = both(&a, &b, s(P::Violently));
        assert_eq!(da.strategy, Strategy::SourceUseBitmap);
        assert_eq!(db.strategy, Strategy::TargetUseBitmap);
        assert_eq!(db.resolution, Resolution::AfterSbPolicy { primaries: 2 });
        let db = decide(&b, &a, false, s(P::CallHelper));
        assert!(db.demote_local);
        assert_eq!(db.strategy, Strategy::TargetUseBitmap);
        let da = decide(&a, &b, true, s(P::CallHelper));
        assert!(!da.demote_local);
        for p in [P::Consensus, P::DiscardSecondary, P::DiscardZeroChanges] {
            let (da, _) = both(&a, &b, s(p));
            assert_eq!(da.strategy, Strategy::SplitBrainDisconnect, "{p:?}");
        }
    }

    #[test]
    fn split_brain_resolved_by_quorum() {
        let (a, mut b) = split_0pri(1, 1);
        b.quorum = false;
        let s = Settings {
            quorum_enabled: true,
            ..settings()
        };
        let (da, db) = both(&a, &b, s);
        assert_eq!(da.strategy, Strategy::SourceUseBitmap);
        assert_eq!(da.resolution, Resolution::Quorum);
        assert_eq!(db.strategy, Strategy::TargetUseBitmap);
    }

    #[test]
    fn split_brain_resolved_by_discard_my_data() {
        let (a, mut b) = split_0pri(10, 20);
        b.flags |= UUID_FLAG_DISCARD_MY_DATA;
        let (da, db) = both(&a, &b, settings());
        assert_eq!(da.strategy, Strategy::SourceUseBitmap);
        assert_eq!(db.strategy, Strategy::TargetUseBitmap);
        assert_eq!(db.resolution, Resolution::DiscardMyData);
        assert_eq!(db.helpers, helpers::INITIAL_SPLIT_BRAIN);
        // both sides asking is no resolution
        let mut a2 = a.clone();
        a2.flags |= UUID_FLAG_DISCARD_MY_DATA;
        let (da, _) = both(&a2, &b, settings());
        assert_eq!(da.strategy, Strategy::SplitBrainDisconnect);
    }

    /// Diverged generations that share only a history entry (bitmaps gone).
    fn history_split() -> (Node, Node) {
        let (mut a, mut b) = (Node::up_to_date(A, Y), Node::up_to_date(B, Z));
        a.g.history[0] = H;
        b.g.history[0] = H;
        a.dirty = 4;
        b.dirty = 0;
        (a, b)
    }

    #[test]
    fn history_split_brain_needs_full_sync() {
        let (a, mut b) = history_split();
        let (da, _) = both(&a, &b, settings());
        assert_eq!(da.rule, Rule::HistoryBoth);
        assert_eq!(da.rule.number(), "12");
        assert_eq!(da.strategy, Strategy::SplitBrainDisconnect);
        // policies apply only with always-asbp, and then as a full sync
        let s = Settings {
            after_sb_0p: AfterSbPolicy::DiscardZeroChanges,
            ..settings()
        };
        let (da, _) = both(&a, &b, s);
        assert_eq!(da.strategy, Strategy::SplitBrainDisconnect);
        let s = Settings {
            always_asbp: true,
            ..s
        };
        let (da, db) = both(&a, &b, s);
        assert_eq!(da.strategy, Strategy::SourceSetBitmap);
        assert_eq!(db.strategy, Strategy::TargetSetBitmap);
        assert!(da.full_sync_after_split_brain);
        // --discard-my-data also turns into a full sync
        b.flags |= UUID_FLAG_DISCARD_MY_DATA;
        let (da, db) = both(&a, &b, settings());
        assert_eq!(da.strategy, Strategy::SourceSetBitmap);
        assert_eq!(db.strategy, Strategy::TargetSetBitmap);
        assert_eq!(db.outcome(), Outcome::Target { full: true });
    }

    #[test]
    fn unrelated_data() {
        let (a, b) = (Node::up_to_date(A, Y), Node::up_to_date(B, Z));
        let (da, db) = both(&a, &b, settings());
        assert_eq!(
            (da.strategy, da.rule),
            (Strategy::UnrelatedData, Rule::Unrelated)
        );
        assert_eq!(db.outcome(), Outcome::UnrelatedData);
        assert_eq!(da.repl_state(Role::Secondary, Role::Secondary), None);
        // zero history entries are not a common ancestor
        let (mut a, mut b) = (a, b);
        a.g.history[1] = H;
        b.g.history[1] = H;
        assert_eq!(
            decide(&a, &b, true, settings()).strategy,
            Strategy::UnrelatedData
        );
    }

    #[test]
    fn history_rules() {
        let mut a = Node::up_to_date(A, Y);
        a.g.history[0] = X;
        let b = Node::up_to_date(B, X);
        let (da, db) = both(&a, &b, settings());
        assert_eq!(
            (da.strategy, da.rule),
            (Strategy::SourceSetBitmap, Rule::HistorySelf)
        );
        assert_eq!(
            (db.strategy, db.rule),
            (Strategy::TargetSetBitmap, Rule::HistoryPeer)
        );
    }

    #[test]
    fn bitmap_other_rules() {
        // B tracks, towards C, changes since A's current generation
        let a = Node::up_to_date(A, X);
        let mut b = Node::up_to_date(B, Y);
        b.g.bitmap[C] = X;
        let (da, db) = both(&a, &b, settings());
        assert_eq!(
            (da.strategy, da.rule),
            (Strategy::TargetClearBitmap(C as u8), Rule::BitmapPeerOther)
        );
        assert_eq!(da.bitmap_action(false), BitmapAction::ClearPeerSlot);
        assert_eq!(
            (db.strategy, db.rule),
            (Strategy::SourceCopyBitmap(C as u8), Rule::BitmapSelfOther)
        );
        assert_eq!(db.bitmap_action(false), BitmapAction::CopySlot(C as u8));
    }

    #[test]
    fn crashed_primary_common_power_failure() {
        let (mut a, b) = synced_pair();
        a.flags |= UUID_FLAG_CRASHED_PRIMARY;
        let (da, db) = both(&a, &b, settings());
        assert_eq!(
            (da.strategy, da.rule),
            (Strategy::SourceIfBothFailed, Rule::BothOff)
        );
        assert_eq!(db.strategy, Strategy::TargetIfBothFailed);
        assert_eq!(
            da.repl_state(Role::Secondary, Role::Secondary),
            Some(ReplState::WFBitMapS)
        );
        // a current Primary overrides the crash-time roles
        assert_eq!(
            da.repl_state(Role::Secondary, Role::Primary),
            Some(ReplState::WFBitMapT)
        );
        assert_eq!(
            db.repl_state(Role::Primary, Role::Secondary),
            Some(ReplState::WFBitMapS)
        );
        // both crashed: RESOLVE_CONFLICTS side becomes target
        let mut b2 = b.clone();
        b2.flags |= UUID_FLAG_CRASHED_PRIMARY;
        let (da, db) = both(&a, &b2, settings());
        assert_eq!(da.strategy, Strategy::TargetIfBothFailed);
        assert_eq!(db.strategy, Strategy::SourceIfBothFailed);
        // nobody crashed: nothing to do
        let (a0, b0) = synced_pair();
        assert_eq!(both(&a0, &b0, settings()).0.strategy, Strategy::NoSync);
    }

    #[test]
    fn crashed_primary_with_protocol_a_and_reconnect() {
        let (mut a, mut b) = synced_pair();
        a.flags |= UUID_FLAG_CRASHED_PRIMARY;
        let proto_a = Settings {
            wire_protocol: 1,
            ..settings()
        };
        let (da, db) = both(&a, &b, proto_a);
        assert_eq!(
            (da.strategy, da.rule),
            (Strategy::SourceUseBitmap, Rule::CrashedPrimary)
        );
        assert_eq!(db.strategy, Strategy::TargetUseBitmap);
        // before 121 the protocol-A rule does not exist
        let old = Settings {
            agreed_version: 120,
            ..proto_a
        };
        assert_eq!(both(&a, &b, old).0.rule, Rule::BothOff);
        // B stayed connected to others (RECONNECT): the survivor is source
        b.flags |= UUID_FLAG_RECONNECT;
        let (da, db) = both(&a, &b, settings());
        assert_eq!(
            (da.strategy, da.rule),
            (Strategy::TargetIfBothFailed, Rule::Reconnected)
        );
        assert_eq!(db.strategy, Strategy::SourceIfBothFailed);
        // both RECONNECT: no sync
        a.flags |= UUID_FLAG_RECONNECT;
        let (da, _) = both(&a, &b, settings());
        assert_eq!(
            (da.strategy, da.rule),
            (Strategy::NoSync, Rule::Reconnected)
        );
        // a plain reconnect without crash
        let (a0, mut b0) = synced_pair();
        b0.flags |= UUID_FLAG_RECONNECT;
        assert_eq!(both(&a0, &b0, settings()).0.rule, Rule::Reconnected);
    }

    #[test]
    fn lost_quorum_rule() {
        // The frozen ex-Primary may hold writes the other never got: its
        // data wins (rule table 4d: only the peer lost quorum -> target).
        let (mut a, b) = synced_pair();
        a.flags |= UUID_FLAG_PRIMARY_LOST_QUORUM;
        let (da, db) = both(&a, &b, settings());
        assert_eq!(
            (da.strategy, da.rule),
            (Strategy::SourceIfBothFailed, Rule::LostQuorum)
        );
        assert_eq!(da.rule.number(), "4d");
        assert_eq!(db.strategy, Strategy::TargetIfBothFailed);
        let mut b2 = b.clone();
        b2.flags |= UUID_FLAG_PRIMARY_LOST_QUORUM;
        let (da, db) = both(&a, &b2, settings());
        assert_eq!(da.strategy, Strategy::SourceIfBothFailed);
        assert_eq!(db.strategy, Strategy::TargetIfBothFailed);
    }

    #[test]
    fn disk_states_decide_when_rules_do_not() {
        let (a, mut b) = synced_pair();
        b.disk = DiskState::Inconsistent;
        let (da, db) = both(&a, &b, settings());
        assert_eq!(da.compared, Strategy::NoSync);
        assert_eq!(da.strategy, Strategy::SourceUseBitmap);
        assert_eq!(da.resolution, Resolution::DiskStates);
        assert_eq!(db.strategy, Strategy::TargetUseBitmap);
        // the better disk beats the crash-time roles (>= 119)
        let (mut a, mut b) = synced_pair();
        a.flags |= UUID_FLAG_CRASHED_PRIMARY;
        a.disk = DiskState::Outdated;
        b.disk = DiskState::UpToDate;
        let (da, db) = both(&a, &b, settings());
        assert_eq!(da.strategy, Strategy::TargetUseBitmap);
        assert_eq!(db.strategy, Strategy::SourceUseBitmap);
        // ... but not before 119
        let old = Settings {
            agreed_version: 118,
            ..settings()
        };
        assert_eq!(
            decide(&a, &b, true, old).strategy,
            Strategy::SourceIfBothFailed
        );
        // an unknown peer disk never decides
        let mut b2 = b.clone();
        b2.disk = DiskState::DUnknown;
        assert_eq!(
            decide(&a, &b2, true, settings()).strategy,
            Strategy::SourceIfBothFailed
        );
    }

    #[test]
    fn disk_states_pick_matching_bitmap_of_running_resync() {
        // B is already SyncTarget of node C since generation Y; A also
        // tracks changes towards C since Y, so A copies that slot.
        let mut a = Node::up_to_date(A, X);
        a.g.bitmap[C] = Y;
        let mut b = Node::up_to_date(B, X);
        b.disk = DiskState::Inconsistent;
        b.flags |= UUID_FLAG_SYNC_TARGET;
        b.g.bitmap[A] = Y;
        let d = decide(&a, &b, true, settings());
        assert_eq!(d.strategy, Strategy::SourceCopyBitmap(C as u8));
        // no matching slot: full sync
        a.g.bitmap[C] = 0;
        let d = decide(&a, &b, true, settings());
        assert_eq!(d.strategy, Strategy::SourceSetBitmap);
    }

    #[test]
    fn rr_conflict_primary_would_become_target() {
        // A is Primary with old data, B has newer data based on A's
        let mut a = Node::up_to_date(A, X);
        a.promote();
        let mut b = Node::up_to_date(B, X);
        b.diverge(Y, A, 8);
        let s = |rr| Settings {
            rr_conflict: rr,
            ..settings()
        };
        let d = decide(&a, &b, true, s(AfterSbPolicy::Disconnect));
        assert_eq!(d.compared, Strategy::TargetUseBitmap);
        assert_eq!(d.strategy, Strategy::SyncTargetPrimaryDisconnect);
        assert_eq!(d.outcome(), Outcome::Disconnect);
        assert_eq!(d.repl_state(Role::Primary, Role::Secondary), None);
        let d = decide(&a, &b, true, s(AfterSbPolicy::RetryConnect));
        assert_eq!(d.outcome(), Outcome::Retry);
        let d = decide(&a, &b, true, s(AfterSbPolicy::CallHelper));
        assert_eq!(d.helpers, helpers::PRI_LOST);
        assert_eq!(d.outcome(), Outcome::Disconnect);
        let d = decide(&a, &b, true, s(AfterSbPolicy::Violently));
        assert_eq!(d.strategy, Strategy::TargetUseBitmap);
        // nothing to resync: no conflict
        b.dirty = 0;
        let d = decide(&a, &b, true, s(AfterSbPolicy::Disconnect));
        assert_eq!(d.strategy, Strategy::TargetUseBitmap);
    }

    #[test]
    fn rr_conflict_auto_discard_reverses_crashed_primary() {
        let (mut a, mut b) = synced_pair();
        b.flags |= UUID_FLAG_CRASHED_PRIMARY;
        a.promote();
        a.dirty = 1;
        let s = Settings {
            wire_protocol: 2,
            rr_conflict: AfterSbPolicy::AutoDiscard,
            ..settings()
        };
        let da = decide(&a, &b, true, s);
        assert_eq!(da.compared, Strategy::TargetUseBitmap);
        assert_eq!(da.strategy, Strategy::SourceUseBitmap);
        assert_eq!(da.resolution, Resolution::AutoDiscard);
        let db = decide(&b, &a, false, s);
        assert_eq!(db.strategy, Strategy::TargetUseBitmap);
        assert_eq!(db.resolution, Resolution::AutoDiscard);
    }

    #[test]
    fn discard_my_data_reverses_direction() {
        // A wrote while apart; B says --discard-my-data anyway (no split
        // brain): nothing changes. A says it: the direction reverses.
        let (mut a, b) = synced_pair();
        a.diverge(Y, B, 5);
        let mut b2 = b.clone();
        b2.flags |= UUID_FLAG_DISCARD_MY_DATA;
        let (da, _) = both(&a, &b2, settings());
        assert_eq!(da.strategy, Strategy::SourceUseBitmap);
        let mut a2 = a.clone();
        a2.flags |= UUID_FLAG_DISCARD_MY_DATA;
        let (da, db) = both(&a2, &b, settings());
        assert_eq!(da.strategy, Strategy::TargetUseBitmap);
        assert_eq!(da.resolution, Resolution::DiscardMyDataReversed);
        assert_eq!(db.strategy, Strategy::SourceUseBitmap);
        // not before 121, and never from an Inconsistent source
        let old = Settings {
            agreed_version: 120,
            ..settings()
        };
        assert_eq!(
            decide(&a2, &b, true, old).strategy,
            Strategy::SourceUseBitmap
        );
        let mut b3 = b.clone();
        b3.disk = DiskState::Inconsistent;
        assert_eq!(
            decide(&a2, &b3, true, settings()).strategy,
            Strategy::SourceUseBitmap
        );
    }

    #[test]
    fn retry_when_uuids_changed_during_handshake() {
        let (a, b) = synced_pair();
        let mut inp = input(&a, &b, true, settings());
        inp.changed_since_sent = true;
        let d = sync_handshake(&inp);
        assert_eq!(
            (d.strategy, d.rule),
            (Strategy::RetryConnect, Rule::InitialHandshakeChanged)
        );
        assert_eq!(d.outcome(), Outcome::Retry);
        inp.connecting = false;
        assert_eq!(sync_handshake(&inp).strategy, Strategy::NoSync);
    }

    #[test]
    fn missed_resync_end() {
        let (a, b) = synced_pair();
        let mut inp = input(&a, &b, true, settings());
        inp.source_missed_end = true;
        inp.local.dirty_bits = 3;
        let d = sync_handshake(&inp);
        assert_eq!(
            (d.strategy, d.rule),
            (Strategy::SourceUseBitmap, Rule::SyncSourceMissedFinish)
        );
        // the source must be UpToDate
        inp.local.disk = DiskState::Outdated;
        let d = sync_handshake(&inp);
        assert_eq!(d.strategy, Strategy::NoSync);
        assert_eq!(d.resolution, Resolution::MissedFinishSkipped);
        // with zero bits an old peer cannot handle it: retry
        let mut inp = input(&a, &b, true, settings());
        inp.source_missed_end = true;
        inp.settings.agreed_version = 123;
        assert_eq!(sync_handshake(&inp).strategy, Strategy::RetryConnect);
        // target side, peer not UpToDate: skip and drop the bitmap UUID
        let mut a2 = a.clone();
        a2.g.bitmap[B] = X;
        a2.dirty = 1;
        let mut b2 = b.clone();
        b2.disk = DiskState::Outdated;
        let mut inp = input(&a2, &b2, true, settings());
        inp.peer_missed_end = true;
        let d = sync_handshake(&inp);
        assert_eq!(d.strategy, Strategy::NoSync);
        assert!(d.drop_bitmap_uuid);
    }

    #[test]
    fn dry_run_reports_then_disconnects() {
        let (mut a, b) = synced_pair();
        a.diverge(Y, B, 5);
        let s = Settings {
            dry_run: true,
            ..settings()
        };
        let d = decide(&a, &b, true, s);
        assert!(d.dry_run);
        assert_eq!(d.strategy, Strategy::SourceUseBitmap);
        assert_eq!(d.outcome(), Outcome::Disconnect);
        assert_eq!(d.repl_state(Role::Secondary, Role::Secondary), None);
    }

    #[test]
    fn generations_lifecycle() {
        let mut g = Generations::just_created();
        assert!(g.is_just_created());
        g.push_history(0);
        assert_eq!(g.history[0], 0);
        g.push_history(H);
        g.push_history(H);
        assert_eq!((g.history[0], g.history[1]), (H, 0));
        assert!(g.in_history(H | UUID_PRIMARY));
        assert!(!g.in_history(0));
        assert_eq!(g.find_bitmap(0, None), None);
        g.bitmap[5] = X | UUID_PRIMARY;
        assert_eq!(g.find_bitmap(X, None), Some(5));
        assert_eq!(g.find_bitmap(X, Some(5)), None);
        assert_eq!(g.bitmap_uuid(99), 0);
        // a random value of 0 or JUST_CREATED never becomes the current UUID
        let mut g = Generations::just_created();
        assert!(g.new_current(UUID_JUST_CREATED, 0, false));
        assert!(!g.is_just_created());
        assert_eq!(g.current & UUID_PRIMARY, 0);
        // source side of a resync
        let mut s = Generations::just_created();
        s.current = Y;
        s.begin_resync_source(B);
        assert_eq!(s.bitmap[B], Y);
        s.finish_resync_source(B);
        assert_eq!((s.bitmap[B], s.history[0]), (0, 0));
        s.bitmap[B] = X;
        s.finish_resync_source(B);
        assert_eq!((s.bitmap[B], s.history[0]), (0, X));
    }

    #[test]
    fn wire_roundtrip() {
        let mut g = Generations::just_created();
        g.current = X | UUID_PRIMARY;
        g.bitmap[B] = Y;
        g.history[0] = H;
        let w = g.to_wire(1 << B | 1 << C, UUID_FLAG_STABLE, 77);
        assert_eq!(w.bitmap_uuids_mask, 0b110);
        assert_eq!(w.dirty_bits, 77);
        let mut buf = [0u8; 1024];
        let n = w.encode(&mut buf).unwrap();
        let back = Uuids110::decode(&buf[..n]).unwrap();
        assert_eq!(Generations::from_wire(&back), g);
    }

    #[test]
    fn policy_numbers() {
        assert_eq!(AfterSbPolicy::from_u32(10), Some(AfterSbPolicy::Violently));
        assert_eq!(AfterSbPolicy::from_u32(13), None);
        assert_eq!(AfterSbPolicy::CallHelper.name(), "call-pri-lost-after-sb");
        assert_eq!(
            AfterSbPolicy::DiscardLocal.from_peer_view(),
            AfterSbPolicy::DiscardRemote
        );
        assert_eq!(
            AfterSbPolicy::Consensus.from_peer_view(),
            AfterSbPolicy::Consensus
        );
        assert_eq!(Rule::HistoryBoth.name(), "history-both");
        assert_eq!(
            Strategy::SourceCopyBitmap(2).name(),
            "source-copy-other-bitmap"
        );
    }
}
