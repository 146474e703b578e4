//! Online resize (`drbdsetup resize`): the size rules of DRBD 9's `drbd_new_dev_size` and the
//! block range a grow adds.
//!
//! The new size is the smallest maximum of the attached sides (each side's data area, from
//! `P_SIZES` `d_size` for the peer), capped by a requested `--size`. A request above that
//! maximum is refused (`ERR_DISK_TOO_SMALL`); a result below the current size without an
//! explicit `--size` is an implicit shrink and refused (`ERR_IMPLICIT_SHRINK`).

/// What the decision is based on (all sizes in 512-byte sectors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SizeInput {
    /// Current size of the DRBD device.
    pub current: u64,
    /// Largest data area the local backing device offers.
    pub local_max: u64,
    /// Largest data area of the connected peer (`None` = not connected).
    pub peer_max: Option<u64>,
    /// `--size` of the request (0 = as large as possible).
    pub requested: u64,
}

/// The outcome of a resize request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeDecision {
    /// Grow from the current size to this size.
    Grow(u64),
    /// The size does not change.
    Unchanged,
    /// Shrink to this size (explicit `--size` only).
    Shrink(u64),
    /// `--size` exceeds what the disks offer (the largest possible size).
    TooBig(u64),
    /// The disks shrank and no `--size` was given: refused.
    ImplicitShrink(u64),
}

/// Applies the rules to `inp`.
pub fn decide(inp: &SizeInput) -> SizeDecision {
    let max = match inp.peer_max {
        Some(p) if p > 0 => inp.local_max.min(p),
        _ => inp.local_max,
    };
    if inp.requested > max {
        return SizeDecision::TooBig(max);
    }
    let new = if inp.requested > 0 {
        inp.requested
    } else {
        max
    };
    if new == inp.current {
        SizeDecision::Unchanged
    } else if new > inp.current {
        SizeDecision::Grow(new)
    } else if inp.requested > 0 {
        SizeDecision::Shrink(new)
    } else {
        SizeDecision::ImplicitShrink(new)
    }
}

/// The sectors a grow from `old` to `new` adds, as `(start sector, bytes)` to mark out of
/// sync; the start is rounded down to a 4 KiB block so a partial last block is resynced
/// whole. `None` if nothing is added.
pub fn grown_area(old: u64, new: u64) -> Option<(u64, u64)> {
    if new <= old {
        return None;
    }
    let start = old & !7;
    Some((start, (new - start) * 512))
}

/// Whether the peer's announced current size (`P_SIZES` `c_size`) is a grow this node can
/// follow: larger than ours and within our data area.
pub fn follow_peer(current: u64, local_max: u64, peer_current: u64) -> Option<u64> {
    (peer_current > current && peer_current <= local_max).then_some(peer_current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inp(current: u64, local_max: u64, peer_max: Option<u64>, requested: u64) -> SizeInput {
        SizeInput {
            current,
            local_max,
            peer_max,
            requested,
        }
    }

    #[test]
    fn grows_to_the_smaller_maximum() {
        assert_eq!(
            decide(&inp(100, 300, Some(200), 0)),
            SizeDecision::Grow(200)
        );
        assert_eq!(decide(&inp(100, 300, None, 0)), SizeDecision::Grow(300));
        assert_eq!(decide(&inp(100, 300, Some(0), 0)), SizeDecision::Grow(300));
        assert_eq!(
            decide(&inp(100, 300, Some(400), 150)),
            SizeDecision::Grow(150)
        );
        assert_eq!(
            decide(&inp(200, 300, Some(200), 0)),
            SizeDecision::Unchanged
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(
            decide(&inp(100, 300, Some(200), 250)),
            SizeDecision::TooBig(200)
        );
        assert_eq!(
            decide(&inp(100, 80, None, 0)),
            SizeDecision::ImplicitShrink(80)
        );
        assert_eq!(decide(&inp(100, 300, None, 50)), SizeDecision::Shrink(50));
    }

    #[test]
    fn grown_area_and_following() {
        assert_eq!(grown_area(16, 32), Some((16, 16 * 512)));
        assert_eq!(grown_area(13, 32), Some((8, 24 * 512)));
        assert_eq!(grown_area(32, 32), None);
        assert_eq!(grown_area(40, 32), None);
        assert_eq!(follow_peer(100, 300, 200), Some(200));
        assert_eq!(follow_peer(100, 300, 400), None);
        assert_eq!(follow_peer(100, 300, 100), None);
        assert_eq!(follow_peer(100, 300, 50), None);
    }
}
