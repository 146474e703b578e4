//! User-mode helpers ("handlers"): which ones exist, what their exit status means.
//!
//! The kernel runs `drbdadm <handler> <resource>`; drbdadm runs the command configured in the
//! resource's `handlers {}` section. Both sides share these names; the kernel also needs the
//! meaning of a `fence-peer` exit code. Pure functions, no I/O.

/// A handler the kernel calls, by its `handlers {}` key (which is also drbdadm's command).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Helper {
    /// A split brain was detected (before any automatic recovery).
    InitialSplitBrain,
    /// A split brain was detected and not resolved automatically.
    SplitBrain,
    /// The after-sb policy discards this Primary's data, and it could not be demoted.
    PriLostAfterSb,
    /// A resync is about to start with this node as SyncTarget.
    BeforeResyncTarget,
    /// A resync as SyncTarget finished.
    AfterResyncTarget,
    /// A Primary with `fencing` lost its peer: make sure the peer cannot become Primary.
    FencePeer,
    /// The fenced peer is UpToDate again: lift the fence.
    UnfencePeer,
    /// The local disk failed under `on-io-error call-local-io-error`.
    LocalIoError,
}

/// Every handler key drbd.conf accepts (`handlers {}`), in DRBD's order.
pub const HANDLER_KEYS: &[&str] = &[
    "pri-on-incon-degr",
    "pri-lost-after-sb",
    "pri-lost",
    "initial-split-brain",
    "split-brain",
    "fence-peer",
    "unfence-peer",
    "local-io-error",
    "before-resync-target",
    "after-resync-target",
    "before-resync-source",
    "out-of-sync",
    "quorum-lost",
    "disconnected",
];

impl Helper {
    /// The handler name (argument of drbdadm, key in `handlers {}`).
    pub const fn name(self) -> &'static str {
        match self {
            Helper::InitialSplitBrain => "initial-split-brain",
            Helper::SplitBrain => "split-brain",
            Helper::PriLostAfterSb => "pri-lost-after-sb",
            Helper::BeforeResyncTarget => "before-resync-target",
            Helper::AfterResyncTarget => "after-resync-target",
            Helper::FencePeer => "fence-peer",
            Helper::UnfencePeer => "unfence-peer",
            Helper::LocalIoError => "local-io-error",
        }
    }

    /// Fencing helpers get `UP_TO_DATE_NODES` and the volumes as `DRBD_MINOR_<vnr>`.
    pub const fn is_fencing(self) -> bool {
        matches!(self, Helper::FencePeer | Helper::UnfencePeer)
    }
}

/// Whether `name` is a handler key drbdadm dispatches (`drbdadm <name> <res>`).
/// `outdate-peer` is the legacy spelling of `fence-peer`.
pub fn is_handler_key(name: &str) -> bool {
    name == "outdate-peer" || HANDLER_KEYS.contains(&name)
}

/// The exit code of a helper from the raw wait status the kernel reports (`status:` of the
/// `response helper` event); `None` if it did not exit normally (signal, or a negative errno
/// because it could not be started).
pub fn exit_code(raw: i32) -> Option<u8> {
    if raw < 0 || raw & 0x7f != 0 {
        return None;
    }
    Some(((raw >> 8) & 0xff) as u8)
}

/// What a `fence-peer` helper's exit code tells the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceOutcome {
    /// 3: the peer's disk is Inconsistent.
    PeerInconsistent,
    /// 4: the peer was outdated.
    PeerOutdated,
    /// 5: the peer is unreachable; it counts as Outdated only if this node is UpToDate.
    PeerUnreachable,
    /// 6: the peer is Primary; this node must outdate itself.
    PeerPrimary,
    /// 7: the peer was stonithed (it counts as Outdated).
    PeerStonithed,
    /// Anything else: the helper is broken; nothing is known about the peer.
    Failed,
}

impl FenceOutcome {
    /// Interprets a raw wait status.
    pub fn from_status(raw: i32) -> Self {
        match exit_code(raw) {
            Some(3) => FenceOutcome::PeerInconsistent,
            Some(4) => FenceOutcome::PeerOutdated,
            Some(5) => FenceOutcome::PeerUnreachable,
            Some(6) => FenceOutcome::PeerPrimary,
            Some(7) => FenceOutcome::PeerStonithed,
            _ => FenceOutcome::Failed,
        }
    }

    /// Whether the peer's disk may now be taken as Outdated (`local_up_to_date`: this node's
    /// disk is UpToDate).
    pub fn peer_outdated(self, local_up_to_date: bool) -> bool {
        match self {
            FenceOutcome::PeerOutdated | FenceOutcome::PeerStonithed => true,
            FenceOutcome::PeerUnreachable => local_up_to_date,
            _ => false,
        }
    }

    /// Short text for the kernel log.
    pub const fn text(self) -> &'static str {
        match self {
            FenceOutcome::PeerInconsistent => "peer is inconsistent",
            FenceOutcome::PeerOutdated => "peer was outdated",
            FenceOutcome::PeerUnreachable => "peer is unreachable",
            FenceOutcome::PeerPrimary => "peer is Primary, outdating myself",
            FenceOutcome::PeerStonithed => "peer was stonithed",
            FenceOutcome::Failed => "fence-peer helper broken",
        }
    }
}

/// `UP_TO_DATE_NODES` value: one bit per node id whose disk is UpToDate, as `0x%08X`.
pub fn up_to_date_nodes_hex(mask: u32, out: &mut [u8; 10]) -> &str {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out[0] = b'0';
    out[1] = b'x';
    for i in 0..8 {
        out[2 + i] = HEX[((mask >> (28 - 4 * i)) & 0xf) as usize];
    }
    // Only ASCII was written.
    core::str::from_utf8(&out[..]).unwrap_or("0x00000000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(0), Some(0));
        assert_eq!(exit_code(4 << 8), Some(4));
        assert_eq!(exit_code(9), None); // killed by SIGKILL
        assert_eq!(exit_code(-2), None); // -ENOENT
        assert_eq!(
            FenceOutcome::from_status(4 << 8),
            FenceOutcome::PeerOutdated
        );
        assert_eq!(FenceOutcome::from_status(1 << 8), FenceOutcome::Failed);
        assert!(FenceOutcome::from_status(5 << 8).peer_outdated(true));
        assert!(!FenceOutcome::from_status(5 << 8).peer_outdated(false));
        assert!(FenceOutcome::from_status(7 << 8).peer_outdated(false));
        assert!(!FenceOutcome::from_status(6 << 8).peer_outdated(true));
    }

    #[test]
    fn names_and_mask() {
        assert!(is_handler_key("split-brain"));
        assert!(is_handler_key("outdate-peer"));
        assert!(!is_handler_key("up"));
        for h in [
            Helper::InitialSplitBrain,
            Helper::SplitBrain,
            Helper::PriLostAfterSb,
            Helper::BeforeResyncTarget,
            Helper::AfterResyncTarget,
            Helper::FencePeer,
            Helper::UnfencePeer,
        ] {
            assert!(HANDLER_KEYS.contains(&h.name()));
        }
        let mut b = [0u8; 10];
        assert_eq!(up_to_date_nodes_hex(0b101, &mut b), "0x00000005");
        assert_eq!(up_to_date_nodes_hex(0xdead_beef, &mut b), "0xDEADBEEF");
    }
}
