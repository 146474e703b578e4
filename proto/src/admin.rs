//! Rules of the administrative state changes: `outdate`, `pause-sync`/`resume-sync`,
//! `new-current-uuid`, and how an Outdated disk settles after a handshake.
//!
//! Pure decisions over snapshots of the states (DRBD 9's soft-transition checks); the kernel
//! applies the result. Results are DRBD's codes: `SS_*` state-change results and
//! `drbd_ret_code` values, as the tools map them to messages and exit statuses.

use super::meta::UUID_JUST_CREATED;
use super::state::{DiskState, ReplState, Role};

/// `SS_*` state-change results used here.
pub mod ss {
    /// Done.
    pub const SUCCESS: i32 = 1;
    /// Already in the requested state.
    pub const NOTHING_TO_DO: i32 = 2;
    /// "Need access to UpToDate data".
    pub const NO_UP_TO_DATE_DISK: i32 = -2;
    /// "Refusing to be Outdated while Connected".
    pub const CONNECTED_OUTDATES: i32 = -6;
    /// "Disk state is lower than outdated".
    pub const LOWER_THAN_OUTDATED: i32 = -16;
}

/// `drbd_ret_code` values used here.
pub mod ret {
    /// Done.
    pub const NO_ERROR: i32 = 101;
    /// "Sync-pause flag is already set".
    pub const ERR_PAUSE_IS_SET: i32 = 134;
    /// "Sync-pause flag is already cleared".
    pub const ERR_PAUSE_IS_CLEAR: i32 = 135;
    /// "Device has no disk".
    pub const ERR_NO_DISK: i32 = 138;
    /// "Device has a net-config (use disconnect first)".
    pub const ERR_CONNECTED: i32 = 151;
    /// "Sync-pause flag is already cleared. Note: Resync pause caused by a local resync-after
    /// dependency."
    pub const ERR_PIC_AFTER_DEP: i32 = 156;
    /// "Sync-pause flag is already cleared. Note: Resync pause caused by the peer node."
    pub const ERR_PIC_PEER_DEP: i32 = 157;
}

/// What one connection tells about a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerView {
    /// Replication state towards that peer (`Off` while not connected).
    pub repl: ReplState,
    /// The peer's role.
    pub peer_role: Role,
    /// The peer's disk state.
    pub peer_disk: DiskState,
    /// The peer's current data generation.
    pub peer_current: u64,
}

/// Result of an allowed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<T> {
    /// Apply this.
    To(T),
    /// Already there (`SS_NOTHING_TO_DO`).
    NothingToDo,
}

/// Whether this node's disk may go Outdated given its peers (DRBD: not while a connected
/// Primary depends on our data, unless we are that Primary's sync target).
fn may_be_outdated(role: Role, peers: &[PeerView]) -> bool {
    if role == Role::Primary {
        return false;
    }
    let primary_neighbour = peers
        .iter()
        .any(|p| p.peer_role == Role::Primary && p.repl > ReplState::Off);
    if !primary_neighbour {
        return true;
    }
    peers.iter().any(|p| {
        matches!(
            p.repl,
            ReplState::WFSyncUUID
                | ReplState::WFBitMapT
                | ReplState::StartingSyncT
                | ReplState::SyncTarget
                | ReplState::PausedSyncT
                | ReplState::Behind
        )
    })
}

/// `outdate`: the new disk state, or the `SS_*` refusal.
pub fn outdate(role: Role, disk: DiskState, peers: &[PeerView]) -> Result<Change<DiskState>, i32> {
    if disk == DiskState::Outdated {
        return Ok(Change::NothingToDo);
    }
    if disk < DiskState::Outdated || disk == DiskState::DUnknown {
        return Err(ss::LOWER_THAN_OUTDATED);
    }
    if role == Role::Primary {
        let peer_data = peers
            .iter()
            .any(|p| p.repl >= ReplState::Established && p.peer_disk == DiskState::UpToDate);
        return Err(if peer_data {
            ss::CONNECTED_OUTDATES
        } else {
            ss::NO_UP_TO_DATE_DISK
        });
    }
    if !may_be_outdated(role, peers) {
        return Err(ss::CONNECTED_OUTDATES);
    }
    Ok(Change::To(DiskState::Outdated))
}

/// After a handshake that found both sides equal (no resync): a Consistent or Outdated disk
/// facing UpToDate data of the same generation is UpToDate too.
pub fn settle_after_handshake(local: DiskState, peer: DiskState) -> Option<DiskState> {
    let settles =
        matches!(local, DiskState::Outdated | DiskState::Consistent) && peer == DiskState::UpToDate;
    settles.then_some(DiskState::UpToDate)
}

/// Why a resync towards one peer is suspended (`resync-suspended:` in status and events2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResyncSusp {
    /// `pause-sync` on this node (`user_isp`).
    pub user: bool,
    /// `pause-sync` on the peer (its `user_isp`, our `peer_isp`).
    pub peer: bool,
    /// A resync-after dependency (`aftr_isp`).
    pub dependency: bool,
}

impl ResyncSusp {
    /// Any reason set.
    pub fn any(&self) -> bool {
        self.user || self.peer || self.dependency
    }
}

/// The replication state as shown and sent: a suspended resync is `PausedSync*`.
pub fn shown_repl(repl: ReplState, susp: ResyncSusp) -> ReplState {
    match repl {
        ReplState::SyncSource if susp.any() => ReplState::PausedSyncS,
        ReplState::SyncTarget if susp.any() => ReplState::PausedSyncT,
        other => other,
    }
}

/// The running state behind a paused one (what a peer's `PausedSync*` means for the
/// protocol).
pub fn running_repl(repl: ReplState) -> ReplState {
    match repl {
        ReplState::PausedSyncS => ReplState::SyncSource,
        ReplState::PausedSyncT => ReplState::SyncTarget,
        other => other,
    }
}

/// `pause-sync`: allowed unless this node paused already.
pub fn pause_sync(susp: ResyncSusp) -> Result<(), i32> {
    if susp.user {
        return Err(ret::ERR_PAUSE_IS_SET);
    }
    Ok(())
}

/// `resume-sync`: allowed if this node paused; otherwise says what still holds the resync.
pub fn resume_sync(susp: ResyncSusp, repl: ReplState) -> Result<(), i32> {
    if susp.user {
        return Ok(());
    }
    let paused = matches!(
        shown_repl(repl, susp),
        ReplState::PausedSyncS | ReplState::PausedSyncT
    );
    Err(if paused && susp.dependency {
        ret::ERR_PIC_AFTER_DEP
    } else if paused && susp.peer {
        ret::ERR_PIC_PEER_DEP
    } else {
        ret::ERR_PAUSE_IS_CLEAR
    })
}

/// What `new-current-uuid` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewUuid {
    /// Skip the initial sync: both sides are freshly created and connected; a new generation
    /// is declared UpToDate on both, the bitmap cleared, and the peer told to take it over.
    SkipInitialSync,
    /// Start a new data generation (the old one moves into the history); with `clear_bitmap`
    /// the out-of-sync marks are dropped too. `announce`: connected peers take it over.
    Rotate {
        /// `--clear-bitmap`.
        clear_bitmap: bool,
        /// Tell connected peers (a connected Primary).
        announce: bool,
    },
}

fn just_created(uuid: u64) -> bool {
    uuid & !1 == UUID_JUST_CREATED || uuid == 0
}

/// `new-current-uuid [--clear-bitmap]`: the plan, or the `drbd_ret_code` refusal.
pub fn new_current_uuid(
    clear_bitmap: bool,
    has_disk: bool,
    role: Role,
    local_current: u64,
    peers: &[PeerView],
) -> Result<NewUuid, i32> {
    if !has_disk {
        return Err(ret::ERR_NO_DISK);
    }
    let connected = || peers.iter().filter(|p| p.repl != ReplState::Off);
    let skip = clear_bitmap
        && just_created(local_current)
        && connected().count() > 0
        && connected().all(|p| {
            p.repl == ReplState::Established
                && just_created(p.peer_current)
                && p.peer_disk >= DiskState::Inconsistent
        });
    if skip {
        return Ok(NewUuid::SkipInitialSync);
    }
    let any_connected = connected().count() > 0;
    // While connected only a Primary makes new data generations (the peers follow it), and
    // only while no resync runs.
    if any_connected
        && (role != Role::Primary || connected().any(|p| p.repl != ReplState::Established))
    {
        return Err(ret::ERR_CONNECTED);
    }
    Ok(NewUuid::Rotate {
        clear_bitmap,
        announce: any_connected,
    })
}

/// A connected peer announced a new data generation (`UUID_FLAG_NEW_DATAGEN`): we take it
/// over if we replicate from it with equal data (Established, it is Primary, our disk is
/// UpToDate and our current generation is the one it just left).
pub fn adopt_new_datagen(
    repl: ReplState,
    peer_role: Role,
    disk: DiskState,
    local_current: u64,
    peer_current: u64,
    peer_previous: u64,
) -> bool {
    repl == ReplState::Established
        && peer_role == Role::Primary
        && disk == DiskState::UpToDate
        && local_current & !1 == peer_previous & !1
        && local_current & !1 != peer_current & !1
}

/// The peer skips the initial sync (`UUID_FLAG_SKIP_INITIAL_SYNC`): we take over its
/// generation if we are still freshly created and connected to it.
pub fn accept_skip_initial_sync(repl: ReplState, local_current: u64, disk: DiskState) -> bool {
    repl == ReplState::Established && just_created(local_current) && disk >= DiskState::Inconsistent
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(repl: ReplState, role: Role, disk: DiskState) -> PeerView {
        PeerView {
            repl,
            peer_role: role,
            peer_disk: disk,
            peer_current: 0x1234,
        }
    }

    #[test]
    fn outdate_rules() {
        use DiskState::*;
        let alone: [PeerView; 0] = [];
        assert_eq!(
            outdate(Role::Secondary, UpToDate, &alone),
            Ok(Change::To(Outdated))
        );
        assert_eq!(
            outdate(Role::Secondary, Consistent, &alone),
            Ok(Change::To(Outdated))
        );
        assert_eq!(
            outdate(Role::Secondary, Outdated, &alone),
            Ok(Change::NothingToDo)
        );
        assert_eq!(
            outdate(Role::Secondary, Inconsistent, &alone),
            Err(ss::LOWER_THAN_OUTDATED)
        );
        assert_eq!(
            outdate(Role::Secondary, Diskless, &alone),
            Err(ss::LOWER_THAN_OUTDATED)
        );
        assert_eq!(
            outdate(Role::Primary, UpToDate, &alone),
            Err(ss::NO_UP_TO_DATE_DISK)
        );
        let up = [peer(ReplState::Established, Role::Secondary, UpToDate)];
        assert_eq!(
            outdate(Role::Primary, UpToDate, &up),
            Err(ss::CONNECTED_OUTDATES)
        );
        // Connected to a Secondary: allowed; to a Primary: refused, except as its target.
        assert_eq!(
            outdate(Role::Secondary, UpToDate, &up),
            Ok(Change::To(Outdated))
        );
        let pri = [peer(ReplState::Established, Role::Primary, UpToDate)];
        assert_eq!(
            outdate(Role::Secondary, UpToDate, &pri),
            Err(ss::CONNECTED_OUTDATES)
        );
        let pri_off = [peer(ReplState::Off, Role::Primary, DUnknown)];
        assert_eq!(
            outdate(Role::Secondary, UpToDate, &pri_off),
            Ok(Change::To(Outdated))
        );
        let target = [peer(ReplState::PausedSyncT, Role::Primary, UpToDate)];
        assert_eq!(
            outdate(Role::Secondary, Consistent, &target),
            Ok(Change::To(Outdated))
        );
    }

    #[test]
    fn settling() {
        use DiskState::*;
        assert_eq!(settle_after_handshake(Outdated, UpToDate), Some(UpToDate));
        assert_eq!(settle_after_handshake(Consistent, UpToDate), Some(UpToDate));
        assert_eq!(settle_after_handshake(Outdated, Outdated), None);
        assert_eq!(settle_after_handshake(Inconsistent, UpToDate), None);
        assert_eq!(settle_after_handshake(UpToDate, Outdated), None);
    }

    #[test]
    fn pausing() {
        let none = ResyncSusp::default();
        let user = ResyncSusp { user: true, ..none };
        let by_peer = ResyncSusp { peer: true, ..none };
        assert_eq!(
            shown_repl(ReplState::SyncSource, none),
            ReplState::SyncSource
        );
        assert_eq!(
            shown_repl(ReplState::SyncSource, user),
            ReplState::PausedSyncS
        );
        assert_eq!(
            shown_repl(ReplState::SyncTarget, by_peer),
            ReplState::PausedSyncT
        );
        assert_eq!(
            shown_repl(ReplState::Established, user),
            ReplState::Established
        );
        assert_eq!(running_repl(ReplState::PausedSyncT), ReplState::SyncTarget);
        assert_eq!(running_repl(ReplState::WFBitMapS), ReplState::WFBitMapS);
        assert_eq!(pause_sync(none), Ok(()));
        assert_eq!(pause_sync(user), Err(ret::ERR_PAUSE_IS_SET));
        assert_eq!(resume_sync(user, ReplState::SyncSource), Ok(()));
        assert_eq!(
            resume_sync(none, ReplState::SyncSource),
            Err(ret::ERR_PAUSE_IS_CLEAR)
        );
        assert_eq!(
            resume_sync(by_peer, ReplState::SyncTarget),
            Err(ret::ERR_PIC_PEER_DEP)
        );
        let dep = ResyncSusp {
            dependency: true,
            peer: true,
            ..none
        };
        assert_eq!(
            resume_sync(dep, ReplState::SyncTarget),
            Err(ret::ERR_PIC_AFTER_DEP)
        );
        assert_eq!(
            resume_sync(by_peer, ReplState::Established),
            Err(ret::ERR_PAUSE_IS_CLEAR)
        );
    }

    #[test]
    fn new_uuid_plans() {
        use DiskState::*;
        let fresh = PeerView {
            repl: ReplState::Established,
            peer_role: Role::Secondary,
            peer_disk: Inconsistent,
            peer_current: UUID_JUST_CREATED,
        };
        let none: [PeerView; 0] = [];
        assert_eq!(
            new_current_uuid(true, false, Role::Secondary, 4, &none),
            Err(ret::ERR_NO_DISK)
        );
        assert_eq!(
            new_current_uuid(true, true, Role::Secondary, UUID_JUST_CREATED, &[fresh]),
            Ok(NewUuid::SkipInitialSync)
        );
        // The peer has data already: no skipping, and a connected Secondary may not rotate.
        let used = PeerView {
            peer_current: 0xabc0,
            ..fresh
        };
        assert_eq!(
            new_current_uuid(true, true, Role::Secondary, UUID_JUST_CREATED, &[used]),
            Err(ret::ERR_CONNECTED)
        );
        assert_eq!(
            new_current_uuid(false, true, Role::Secondary, 0x10, &none),
            Ok(NewUuid::Rotate {
                clear_bitmap: false,
                announce: false
            })
        );
        let up = PeerView {
            peer_disk: UpToDate,
            peer_current: 0x10,
            ..fresh
        };
        assert_eq!(
            new_current_uuid(false, true, Role::Primary, 0x11, &[up]),
            Ok(NewUuid::Rotate {
                clear_bitmap: false,
                announce: true
            })
        );
        let syncing = PeerView {
            repl: ReplState::SyncSource,
            ..up
        };
        assert_eq!(
            new_current_uuid(false, true, Role::Primary, 0x11, &[syncing]),
            Err(ret::ERR_CONNECTED)
        );
        let off = PeerView {
            repl: ReplState::Off,
            ..up
        };
        assert_eq!(
            new_current_uuid(true, true, Role::Secondary, UUID_JUST_CREATED, &[off]),
            Ok(NewUuid::Rotate {
                clear_bitmap: true,
                announce: false
            })
        );
    }

    #[test]
    fn following_generations() {
        use DiskState::*;
        assert!(adopt_new_datagen(
            ReplState::Established,
            Role::Primary,
            UpToDate,
            0x10,
            0x21,
            0x10
        ));
        // Not the generation we had, not from a Primary, or not UpToDate: no.
        assert!(!adopt_new_datagen(
            ReplState::Established,
            Role::Primary,
            UpToDate,
            0x30,
            0x21,
            0x10
        ));
        assert!(!adopt_new_datagen(
            ReplState::Established,
            Role::Secondary,
            UpToDate,
            0x10,
            0x21,
            0x10
        ));
        assert!(!adopt_new_datagen(
            ReplState::Established,
            Role::Primary,
            Outdated,
            0x10,
            0x21,
            0x10
        ));
        assert!(!adopt_new_datagen(
            ReplState::Established,
            Role::Primary,
            UpToDate,
            0x21,
            0x21,
            0x10
        ));
        assert!(accept_skip_initial_sync(
            ReplState::Established,
            UUID_JUST_CREATED,
            Inconsistent
        ));
        assert!(!accept_skip_initial_sync(
            ReplState::Established,
            0x10,
            Inconsistent
        ));
        assert!(!accept_skip_initial_sync(
            ReplState::SyncTarget,
            UUID_JUST_CREATED,
            Inconsistent
        ));
    }
}
