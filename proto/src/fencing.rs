//! Fencing (`net { fencing ... }`): when a Primary that lost a peer runs `fence-peer`, when
//! it freezes application I/O meanwhile, and what the helper's exit code changes.
//!
//! DRBD 9's rules: with `resource-and-stonith`, a Primary that loses a peer whose disk is not
//! known to be Outdated or worse suspends I/O (`suspended:fencing`) for as long as that
//! peer's disk state is unknown; the `fence-peer` result can make it known (and so thaw).
//! `resource-only` runs the same helper without freezing. A promotion while a peer is
//! unreachable and its disk not known to be Outdated runs `fence-peer` first and is refused
//! unless that outdates the peer (or `--force` accepts the risk). Whether the peer is known
//! Outdated survives restarts in its meta-data slot (`MDF_PEER_OUTDATED`). Pure functions,
//! no I/O.

use super::helper::FenceOutcome;

/// The `fencing` policy of a connection (netlink `fencing_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// 0: no fencing.
    DontCare,
    /// 1: run `fence-peer`, keep I/O running.
    ResourceOnly,
    /// 2: run `fence-peer` and freeze I/O until its answer makes the peer's disk known.
    ResourceAndStonith,
}

impl Policy {
    /// From the netlink value; unknown values are treated as no fencing (they are refused
    /// when configured).
    pub const fn from_u32(v: u32) -> Self {
        match v {
            1 => Policy::ResourceOnly,
            2 => Policy::ResourceAndStonith,
            _ => Policy::DontCare,
        }
    }
}

/// What a lost link calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnLoss {
    /// Run the `fence-peer` helper.
    pub run_helper: bool,
    /// Suspend application I/O (new and in-flight requests are held) until the peer's disk
    /// state is known again.
    pub freeze: bool,
}

/// Decides what losing a peer means. `primary`: the local role; `peer_known_outdated`: the
/// peer's disk was known to be Outdated or worse (Inconsistent, Diskless…) when the link
/// broke; `local_consistent`: every local disk is at least Consistent (a node without good
/// data has nothing to protect).
pub const fn on_loss(
    policy: Policy,
    primary: bool,
    peer_known_outdated: bool,
    local_consistent: bool,
) -> OnLoss {
    let fence = primary && !peer_known_outdated && local_consistent;
    match policy {
        Policy::DontCare => OnLoss {
            run_helper: false,
            freeze: false,
        },
        Policy::ResourceOnly => OnLoss {
            run_helper: fence,
            freeze: false,
        },
        Policy::ResourceAndStonith => OnLoss {
            run_helper: fence,
            freeze: fence,
        },
    }
}

/// The peer disk state a `fence-peer` result establishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerDisk {
    /// Exit 3.
    Inconsistent,
    /// Exits 4 and 7, and 5 while this node is UpToDate.
    Outdated,
}

/// What the kernel does with a `fence-peer` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The peer's disks take this state (`None`: stays unknown).
    pub peer_disk: Option<PeerDisk>,
    /// Exit 6: the peer is Primary, so the local disks become Outdated.
    pub outdate_self: bool,
    /// A frozen resource resumes I/O (the peer's disk state is known now).
    pub thaw: bool,
    /// Exit 7 under `resource-only`: DRBD logs this as an error but still accepts it.
    pub stonith_without_policy: bool,
    /// The helper is broken (any other code): logged as such, I/O stays frozen.
    pub broken: bool,
    /// DRBD's explanation for the kernel log (`fence-peer helper returned N (text)`).
    pub text: &'static str,
}

/// Interprets `outcome` (`local_up_to_date`: every local disk is UpToDate).
pub const fn verdict(policy: Policy, outcome: FenceOutcome, local_up_to_date: bool) -> Verdict {
    let (peer_disk, outdate_self, text) = match outcome {
        FenceOutcome::PeerInconsistent => (
            Some(PeerDisk::Inconsistent),
            false,
            "peer is inconsistent or worse",
        ),
        FenceOutcome::PeerOutdated => (Some(PeerDisk::Outdated), false, "peer was fenced"),
        FenceOutcome::PeerUnreachable => {
            if local_up_to_date {
                (
                    Some(PeerDisk::Outdated),
                    false,
                    "peer is unreachable, assumed to be dead",
                )
            } else {
                (
                    None,
                    false,
                    "peer unreachable, doing nothing since disk != UpToDate",
                )
            }
        }
        FenceOutcome::PeerPrimary => (None, true, "peer is active"),
        FenceOutcome::PeerStonithed => (Some(PeerDisk::Outdated), false, "peer was stonithed"),
        FenceOutcome::Failed => (None, false, "fence-peer helper broken"),
    };
    Verdict {
        peer_disk,
        outdate_self,
        thaw: peer_disk.is_some(),
        stonith_without_policy: matches!(outcome, FenceOutcome::PeerStonithed)
            && !matches!(policy, Policy::ResourceAndStonith),
        broken: matches!(outcome, FenceOutcome::Failed),
        text,
    }
}

/// Whether promoting must first fence a peer (DRBD's `SS_PRIMARY_NOP` check): `fencing` is
/// configured, the peer is not connected, and its disk is not known to be Outdated or worse.
pub const fn promotion_needs_fence(
    policy: Policy,
    connected: bool,
    peer_known_outdated: bool,
) -> bool {
    !matches!(policy, Policy::DontCare) && !connected && !peer_known_outdated
}

/// How a promotion goes on after `fence-peer` ran for the peers that needed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFence {
    /// Every such peer is known Outdated (or worse) now.
    Promote,
    /// A peer may still hold newer data, but `--force` was given: promote and log
    /// "Forced into split brain situation!".
    PromoteIntoSplitBrain,
    /// Refused with `SS_PRIMARY_NOP` ("Refusing to be Primary while peer is not outdated").
    Refuse,
}

/// Decides a promotion after fencing (`all_fenced`: every peer that needed it is known
/// Outdated or worse now).
pub const fn after_promotion_fence(all_fenced: bool, force: bool) -> AfterFence {
    match (all_fenced, force) {
        (true, _) => AfterFence::Promote,
        (false, true) => AfterFence::PromoteIntoSplitBrain,
        (false, false) => AfterFence::Refuse,
    }
}

/// What the peer slot's `MDF_PEER_OUTDATED` becomes when a connected peer reports its disk
/// state (`None`: unchanged). Outdated or Inconsistent data cannot take over from us;
/// Consistent or UpToDate data might; other states (Diskless, Attaching…) say nothing about
/// the data the peer's disk holds.
pub const fn peer_outdated_flag(peer_disk: super::state::DiskState) -> Option<bool> {
    use super::state::DiskState as D;
    match peer_disk {
        D::Inconsistent | D::Outdated => Some(true),
        D::Consistent | D::UpToDate => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(code: i32) -> FenceOutcome {
        FenceOutcome::from_status(code << 8)
    }

    #[test]
    fn loss_policy() {
        use Policy::*;
        let l = on_loss(ResourceAndStonith, true, false, true);
        assert!(l.run_helper && l.freeze);
        let l = on_loss(ResourceOnly, true, false, true);
        assert!(l.run_helper && !l.freeze);
        let l = on_loss(DontCare, true, false, true);
        assert!(!l.run_helper && !l.freeze);
        // Secondary, a peer known Outdated, or no good local data: nothing to fence.
        assert!(!on_loss(ResourceAndStonith, false, false, true).run_helper);
        assert!(!on_loss(ResourceAndStonith, true, true, true).freeze);
        assert!(!on_loss(ResourceAndStonith, true, false, false).freeze);
        assert_eq!(Policy::from_u32(2), ResourceAndStonith);
        assert_eq!(Policy::from_u32(9), DontCare);
    }

    #[test]
    fn promotion_fencing() {
        use Policy::*;
        assert!(promotion_needs_fence(ResourceOnly, false, false));
        assert!(promotion_needs_fence(ResourceAndStonith, false, false));
        // No policy, a connected peer, or a peer known Outdated: nothing to fence.
        assert!(!promotion_needs_fence(DontCare, false, false));
        assert!(!promotion_needs_fence(ResourceOnly, true, false));
        assert!(!promotion_needs_fence(ResourceOnly, false, true));
        assert_eq!(after_promotion_fence(true, false), AfterFence::Promote);
        assert_eq!(after_promotion_fence(true, true), AfterFence::Promote);
        assert_eq!(
            after_promotion_fence(false, true),
            AfterFence::PromoteIntoSplitBrain
        );
        assert_eq!(after_promotion_fence(false, false), AfterFence::Refuse);
    }

    #[test]
    fn outdated_flag_follows_the_reported_disk() {
        use crate::state::DiskState as D;
        assert_eq!(peer_outdated_flag(D::Outdated), Some(true));
        assert_eq!(peer_outdated_flag(D::Inconsistent), Some(true));
        assert_eq!(peer_outdated_flag(D::UpToDate), Some(false));
        assert_eq!(peer_outdated_flag(D::Consistent), Some(false));
        assert_eq!(peer_outdated_flag(D::Diskless), None);
        assert_eq!(peer_outdated_flag(D::DUnknown), None);
    }

    #[test]
    fn exit_codes() {
        let p = Policy::ResourceAndStonith;
        let v = verdict(p, out(7), true);
        assert_eq!(v.peer_disk, Some(PeerDisk::Outdated));
        assert!(v.thaw && !v.stonith_without_policy && !v.broken);
        let v = verdict(p, out(4), false);
        assert_eq!(v.peer_disk, Some(PeerDisk::Outdated));
        assert!(v.thaw);
        let v = verdict(p, out(3), true);
        assert_eq!(v.peer_disk, Some(PeerDisk::Inconsistent));
        assert!(v.thaw);
        assert!(verdict(p, out(5), true).thaw);
        let v = verdict(p, out(5), false);
        assert!(!v.thaw && v.peer_disk.is_none());
        // Exit 6: outdate ourselves; the peer stays unknown, so I/O stays frozen.
        let v = verdict(p, out(6), true);
        assert!(v.outdate_self && !v.thaw && v.peer_disk.is_none() && !v.broken);
        for code in [0, 1, 2, 8, 255] {
            let v = verdict(p, out(code), true);
            assert!(v.broken && !v.thaw && v.peer_disk.is_none(), "{code}");
        }
        assert!(verdict(p, FenceOutcome::from_status(9), true).broken);
        assert!(verdict(Policy::ResourceOnly, out(7), true).stonith_without_policy);
    }
}
