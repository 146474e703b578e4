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

/// How internal meta-data moves to the end of a grown backing device (v09: superblock in the
/// last 4 KiB, activity log before it, bitmap before that; bitmap words interleave the peer
/// slots word by word, so the old bitmap is a prefix of the new one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relocation {
    /// Copy the old bitmap (`bytes`, a multiple of 512) from `from` to `to` (sectors).
    pub bitmap_from: u64,
    /// Destination of the old bitmap.
    pub bitmap_to: u64,
    /// Bytes of old bitmap to copy.
    pub bitmap_bytes: u64,
    /// The rest of the new bitmap (`to + bytes` onwards) to initialise: sectors.
    pub bitmap_rest_sectors: u64,
    /// Copy the activity log from `al_from` to `al_to`, `al_sectors` long.
    pub al_from: u64,
    /// Destination of the activity log.
    pub al_to: u64,
    /// Length of the activity log.
    pub al_sectors: u64,
    /// Where the new superblock goes (written last: it makes the new layout valid).
    pub superblock_at: u64,
}

/// Why meta-data cannot be moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelocError {
    /// Only internal meta-data moves with the device end.
    NotInternal,
    /// The new layout does not lie beyond the old one (the device did not grow).
    NotGrown,
    /// The new meta-data area overlaps the old one (grown by less than the meta-data size):
    /// a crash half-way would lose both copies.
    Overlap,
}

/// Plans the move of internal meta-data from `old` to `new` (layouts of the same superblock
/// parameters on the old and the grown backing device).
pub fn plan_relocation(
    old: &super::meta::MdLayout,
    new: &super::meta::MdLayout,
) -> Result<Relocation, RelocError> {
    use super::meta::MdIndex;
    if old.index != MdIndex::Internal || new.index != MdIndex::Internal {
        return Err(RelocError::NotInternal);
    }
    if new.md_offset <= old.md_offset || new.data_sectors <= old.data_sectors {
        return Err(RelocError::NotGrown);
    }
    let old_first = old.bm_start_sector();
    let old_end = old.md_offset + 8;
    let new_first = new.bm_start_sector();
    if new_first < old_end {
        return Err(RelocError::Overlap);
    }
    let al_sectors = u64::from(old.al_size_4k) * 8;
    let bitmap_bytes = old.bm_bytes;
    let new_bm_sectors = new.bm_bytes / 512;
    Ok(Relocation {
        bitmap_from: old_first,
        bitmap_to: new_first,
        bitmap_bytes,
        bitmap_rest_sectors: new_bm_sectors.saturating_sub(bitmap_bytes / 512),
        al_from: old.al_start_sector(),
        al_to: new.al_start_sector(),
        al_sectors,
        superblock_at: new.md_offset,
    })
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

    fn internal(sectors: u64) -> super::super::meta::MdLayout {
        super::super::meta::md_layout(
            super::super::meta::MdIndex::Internal,
            sectors,
            sectors,
            1,
            1,
            8,
            4096,
        )
        .expect("layout")
    }

    #[test]
    fn relocation_of_internal_meta_data() {
        // 64 MiB -> 256 MiB, one peer.
        let old = internal(131072);
        let new = internal(524288);
        let r = plan_relocation(&old, &new).expect("plan");
        assert_eq!(r.superblock_at, 524288 - 8);
        assert_eq!(r.al_to, 524288 - 8 - 64);
        assert_eq!(r.al_sectors, 64);
        assert_eq!(r.al_from, 131072 - 8 - 64);
        assert_eq!(r.bitmap_from, old.bm_start_sector());
        assert_eq!(r.bitmap_to, new.bm_start_sector());
        assert_eq!(r.bitmap_bytes, old.bm_bytes);
        assert_eq!(
            r.bitmap_bytes / 512 + r.bitmap_rest_sectors,
            new.bm_bytes / 512
        );
        assert!(
            r.bitmap_to >= old.md_offset + 8,
            "new area overlaps the old one"
        );
        // The old meta-data lies inside the new data area.
        assert!(old.md_offset + 8 <= new.data_sectors);
        assert_eq!(plan_relocation(&new, &old), Err(RelocError::NotGrown));
        assert_eq!(plan_relocation(&old, &old), Err(RelocError::NotGrown));
        // Grown by less than the meta-data area: refused.
        let little = internal(131072 + 64);
        assert_eq!(plan_relocation(&old, &little), Err(RelocError::Overlap));
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
