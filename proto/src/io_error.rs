//! Local disk I/O errors: what DRBD 9 does when the backing device fails a request.
//!
//! The `on-io-error` disk option picks a policy (`enum io_error_p` of the genl ABI):
//! - `pass_on` (0): the error stays with the request (a Primary without a peer that holds
//!   the data reports it upwards); a failed read or write makes an UpToDate disk
//!   Inconsistent, the disk stays attached.
//! - `call-local-io-error` (1): as `detach`, and the `local-io-error` handler runs.
//! - `detach` (2, default): the disk goes Failed, then Diskless; the node keeps serving
//!   I/O through a peer with UpToDate data.
//!
//! Meta-data errors always detach (DRBD: a disk whose activity log, bitmap or superblock
//! cannot be written is not trustworthy), whatever the policy.
//!
//! A request whose local part failed still succeeds if a peer stored (or, for a read,
//! returned) the data; its blocks are marked out of sync so that the next resync repairs
//! the local copy. Pure functions, no I/O.

use super::state::DiskState;

/// The `on-io-error` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `pass_on`: report the error, keep the disk.
    PassOn,
    /// `call-local-io-error`: detach and run the `local-io-error` handler.
    CallHelper,
    /// `detach`: detach the disk, continue diskless.
    Detach,
}

impl Policy {
    /// DRBD's default (`detach`).
    pub const DEFAULT: Policy = Policy::Detach;

    /// From the genl value; unknown values fall back to the default (the kernel validated
    /// the option's range when it was set, so this only guards against an absent one).
    pub fn from_raw(v: Option<u32>) -> Policy {
        match v {
            Some(0) => Policy::PassOn,
            Some(1) => Policy::CallHelper,
            _ => Policy::DEFAULT,
        }
    }

    /// The name `drbdsetup show` prints.
    pub fn name(self) -> &'static str {
        match self {
            Policy::PassOn => "pass_on",
            Policy::CallHelper => "call-local-io-error",
            Policy::Detach => "detach",
        }
    }
}

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// An application read of the data area.
    Read,
    /// An application (or peer, or resync) write of the data area.
    Write,
    /// A meta-data write or read (activity log, bitmap, superblock).
    Meta,
}

impl ErrorKind {
    /// DRBD's word for the request in "local %s IO error sector …".
    pub fn word(self) -> &'static str {
        match self {
            ErrorKind::Read => "READ",
            ErrorKind::Write => "WRITE",
            ErrorKind::Meta => "META",
        }
    }
}

/// What the node does about one local error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Response {
    /// Go Failed, then Diskless.
    pub detach: bool,
    /// Run the `local-io-error` handler (after the disk went Failed).
    pub call_helper: bool,
    /// Keep the disk, but its data is no longer UpToDate: go Inconsistent.
    pub to_inconsistent: bool,
}

/// The response to a local error of `kind` on a disk in state `disk` under `policy`. A disk
/// that is already Failed or Diskless needs nothing more (the first error acted already).
pub fn respond(policy: Policy, kind: ErrorKind, disk: DiskState) -> Response {
    if disk <= DiskState::Failed {
        return Response::default();
    }
    let policy = if kind == ErrorKind::Meta && policy == Policy::PassOn {
        Policy::Detach
    } else {
        policy
    };
    match policy {
        Policy::PassOn => Response {
            to_inconsistent: disk > DiskState::Inconsistent,
            ..Response::default()
        },
        Policy::Detach => Response {
            detach: true,
            ..Response::default()
        },
        Policy::CallHelper => Response {
            detach: true,
            call_helper: true,
            ..Response::default()
        },
    }
}

/// The disk states one error passes through: Failed then Diskless for a detach, or
/// Inconsistent for `pass_on` (empty if nothing changes).
pub fn transitions(r: Response) -> &'static [DiskState] {
    if r.detach {
        &[DiskState::Failed, DiskState::Diskless]
    } else if r.to_inconsistent {
        &[DiskState::Inconsistent]
    } else {
        &[]
    }
}

/// Whether a request that was split into a local part and peer parts succeeded: it did if
/// any part stored (or returned) the data. A local failure with a peer that has the data is
/// invisible to the application; with no such peer the error goes up.
pub fn request_ok(local_ok: bool, peer_ok: bool) -> bool {
    local_ok || peer_ok
}

/// Where a read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadSource {
    /// The local disk (DRBD's `read-balancing prefer-local`).
    Local,
    /// A peer with UpToDate data (`P_DATA_REQUEST`).
    Peer,
    /// Nobody has the data: fail with EIO.
    None,
}

/// Where a read of blocks goes: locally if the disk has them (UpToDate, or a SyncTarget whose
/// range is already in sync), else from a peer with UpToDate data.
pub fn read_source(local: DiskState, range_in_sync: bool, peer_up_to_date: bool) -> ReadSource {
    let local_has = match local {
        DiskState::UpToDate => true,
        DiskState::Inconsistent | DiskState::Outdated | DiskState::Consistent => range_in_sync,
        _ => false,
    };
    if local_has {
        ReadSource::Local
    } else if peer_up_to_date {
        ReadSource::Peer
    } else {
        ReadSource::None
    }
}

/// After a local read failed: retry on the peer if it has the data, else fail.
pub fn retry_read(peer_up_to_date: bool) -> ReadSource {
    if peer_up_to_date {
        ReadSource::Peer
    } else {
        ReadSource::None
    }
}

/// Whether the node with UpToDate data starts a new data generation when its peer's disk
/// goes away (Failed/Diskless) while one of them is Primary: the writes that follow are not
/// on that disk, and a later attach must see the difference (the old current UUID becomes
/// the bitmap UUID, so the resync copies only the blocks written meanwhile).
pub fn new_generation_on_peer_disk_loss(
    before: DiskState,
    after: DiskState,
    local: DiskState,
    someone_primary: bool,
) -> bool {
    before >= DiskState::Inconsistent
        && before != DiskState::DUnknown
        && after <= DiskState::Failed
        && local == DiskState::UpToDate
        && someone_primary
}

/// Whether a write received from a peer must be marked out of sync towards it: the peer
/// itself has no disk (it writes through us), so its next attach needs those blocks.
pub fn mark_peer_write(peer_disk: DiskState) -> bool {
    peer_disk <= DiskState::Failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_from_genl_values() {
        assert_eq!(Policy::from_raw(Some(0)), Policy::PassOn);
        assert_eq!(Policy::from_raw(Some(1)), Policy::CallHelper);
        assert_eq!(Policy::from_raw(Some(2)), Policy::Detach);
        assert_eq!(Policy::from_raw(None), Policy::Detach);
        assert_eq!(Policy::from_raw(Some(9)), Policy::Detach);
        assert_eq!(Policy::CallHelper.name(), "call-local-io-error");
    }

    #[test]
    fn detach_goes_failed_then_diskless() {
        let r = respond(Policy::Detach, ErrorKind::Write, DiskState::UpToDate);
        assert!(r.detach && !r.call_helper && !r.to_inconsistent);
        assert_eq!(transitions(r), &[DiskState::Failed, DiskState::Diskless]);
        let r = respond(Policy::Detach, ErrorKind::Read, DiskState::UpToDate);
        assert!(r.detach);
    }

    #[test]
    fn call_helper_detaches_and_calls() {
        let r = respond(Policy::CallHelper, ErrorKind::Read, DiskState::UpToDate);
        assert!(r.detach && r.call_helper);
    }

    #[test]
    fn pass_on_keeps_the_disk_but_makes_it_inconsistent() {
        let r = respond(Policy::PassOn, ErrorKind::Write, DiskState::UpToDate);
        assert!(!r.detach && r.to_inconsistent);
        assert_eq!(transitions(r), &[DiskState::Inconsistent]);
        let r = respond(Policy::PassOn, ErrorKind::Write, DiskState::Inconsistent);
        assert_eq!(r, Response::default());
        assert!(transitions(r).is_empty());
    }

    #[test]
    fn meta_errors_always_detach() {
        let r = respond(Policy::PassOn, ErrorKind::Meta, DiskState::UpToDate);
        assert!(r.detach && !r.call_helper);
        let r = respond(Policy::CallHelper, ErrorKind::Meta, DiskState::Outdated);
        assert!(r.detach && r.call_helper);
    }

    #[test]
    fn a_failed_disk_needs_nothing_more() {
        for d in [DiskState::Failed, DiskState::Diskless, DiskState::Detaching] {
            assert_eq!(
                respond(Policy::Detach, ErrorKind::Write, d),
                Response::default()
            );
        }
    }

    #[test]
    fn a_request_fails_only_if_nobody_has_the_data() {
        assert!(request_ok(true, false));
        assert!(request_ok(false, true));
        assert!(request_ok(true, true));
        assert!(!request_ok(false, false));
    }

    #[test]
    fn reads_prefer_local_and_fall_back_to_the_peer() {
        use ReadSource::*;
        assert_eq!(read_source(DiskState::UpToDate, false, true), Local);
        assert_eq!(read_source(DiskState::Diskless, false, true), Peer);
        assert_eq!(read_source(DiskState::Diskless, false, false), None);
        assert_eq!(read_source(DiskState::Inconsistent, true, true), Local);
        assert_eq!(read_source(DiskState::Inconsistent, false, true), Peer);
        assert_eq!(read_source(DiskState::Failed, true, true), Peer);
        assert_eq!(retry_read(true), Peer);
        assert_eq!(retry_read(false), None);
    }

    #[test]
    fn the_survivor_starts_a_new_generation() {
        let up = DiskState::UpToDate;
        assert!(new_generation_on_peer_disk_loss(
            up,
            DiskState::Failed,
            up,
            true
        ));
        assert!(new_generation_on_peer_disk_loss(
            up,
            DiskState::Diskless,
            up,
            true
        ));
        // No Primary: nothing is written meanwhile that the UUIDs must tell.
        assert!(!new_generation_on_peer_disk_loss(
            up,
            DiskState::Diskless,
            up,
            false
        ));
        // Was not there before (connect of a diskless peer), or we have no good data.
        assert!(!new_generation_on_peer_disk_loss(
            DiskState::Diskless,
            DiskState::Diskless,
            up,
            true
        ));
        assert!(!new_generation_on_peer_disk_loss(
            DiskState::DUnknown,
            DiskState::Diskless,
            up,
            true
        ));
        assert!(!new_generation_on_peer_disk_loss(
            up,
            DiskState::Diskless,
            DiskState::Inconsistent,
            true
        ));
    }

    #[test]
    fn writes_of_a_diskless_peer_are_tracked() {
        assert!(mark_peer_write(DiskState::Diskless));
        assert!(mark_peer_write(DiskState::Failed));
        assert!(!mark_peer_write(DiskState::UpToDate));
        assert!(!mark_peer_write(DiskState::Inconsistent));
    }
}
