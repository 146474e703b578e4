//! Out-of-sync bitmap operations on caller-provided word slices.
//!
//! One bit covers `bm_bytes_per_bit` (4 KiB by default) of data; a set bit
//! means "may differ from the peer". Bit `i` lives in `words[i / 64]` at bit
//! `i % 64` (little-endian bit order, as on disk and on the wire). Ranges are
//! half-open `[start, end)`; all functions clamp to the slice, never panic
//! and never allocate.
//!
//! The on-disk bitmap interleaves peer slots in 32-bit words; see
//! [`ondisk_word_index`].

/// Bits per word of the in-memory bitmap.
pub const BITS_PER_WORD: u64 = 64;
/// log2 of the default bytes per bit (4 KiB).
pub const BM_BLOCK_SHIFT: u32 = 12;
/// Sectors covered by one bit at 4 KiB granularity.
pub const SECTORS_PER_BIT: u64 = 8;

fn nbits(words: &[u64]) -> u64 {
    words.len() as u64 * BITS_PER_WORD
}

/// Mask of bits `lo..hi` (0 <= lo < hi <= 64) within one word.
fn mask(lo: u64, hi: u64) -> u64 {
    let upper = if hi >= 64 { u64::MAX } else { (1u64 << hi) - 1 };
    upper & !((1u64 << lo) - 1)
}

/// Apply `f(word, mask)` over `[start, end)`, word by word.
fn for_range(words: &mut [u64], start: u64, end: u64, mut f: impl FnMut(&mut u64, u64)) {
    let end = end.min(nbits(words));
    let mut i = start;
    while i < end {
        let w = i / 64;
        let lo = i % 64;
        let hi = (end - w * 64).min(64);
        if let Some(word) = words.get_mut(w as usize) {
            f(word, mask(lo, hi));
        }
        i = (w + 1) * 64;
    }
}

/// Test one bit (false beyond the end).
pub fn test_bit(words: &[u64], bit: u64) -> bool {
    words
        .get((bit / 64) as usize)
        .is_some_and(|w| w >> (bit % 64) & 1 != 0)
}

/// Set bits `[start, end)`; returns how many were newly set.
pub fn set_range(words: &mut [u64], start: u64, end: u64) -> u64 {
    let mut n = 0;
    for_range(words, start, end, |w, m| {
        n += u64::from((m & !*w).count_ones());
        *w |= m;
    });
    n
}

/// Clear bits `[start, end)`; returns how many were set before.
pub fn clear_range(words: &mut [u64], start: u64, end: u64) -> u64 {
    let mut n = 0;
    for_range(words, start, end, |w, m| {
        n += u64::from((m & *w).count_ones());
        *w &= !m;
    });
    n
}

/// Count set bits in `[start, end)`.
pub fn count_range(words: &[u64], start: u64, end: u64) -> u64 {
    let end = end.min(nbits(words));
    let mut n = 0u64;
    let mut i = start;
    while i < end {
        let w = i / 64;
        let m = mask(i % 64, (end - w * 64).min(64));
        n += u64::from((words.get(w as usize).copied().unwrap_or(0) & m).count_ones());
        i = (w + 1) * 64;
    }
    n
}

/// Count all set bits.
pub fn count(words: &[u64]) -> u64 {
    words.iter().map(|w| u64::from(w.count_ones())).sum()
}

fn find_next(words: &[u64], start: u64, end: u64, want_set: bool) -> Option<u64> {
    let end = end.min(nbits(words));
    let mut i = start;
    while i < end {
        let w = i / 64;
        let raw = words.get(w as usize).copied().unwrap_or(0);
        let word = if want_set { raw } else { !raw };
        let m = mask(i % 64, (end - w * 64).min(64));
        let hit = word & m;
        if hit != 0 {
            return Some(w * 64 + u64::from(hit.trailing_zeros()));
        }
        i = (w + 1) * 64;
    }
    None
}

/// First set bit in `[start, end)`.
pub fn find_next_set(words: &[u64], start: u64, end: u64) -> Option<u64> {
    find_next(words, start, end, true)
}

/// First clear bit in `[start, end)`.
pub fn find_next_zero(words: &[u64], start: u64, end: u64) -> Option<u64> {
    find_next(words, start, end, false)
}

/// Bit covering `sector` at `bm_bytes_per_bit` granularity.
pub fn sector_to_bit(sector: u64, bm_bytes_per_bit: u32) -> u64 {
    sector / u64::from((bm_bytes_per_bit / 512).max(1))
}

/// Bit range `[first, end)` of all bits touched by `sectors` sectors at `sector`.
pub fn sectors_to_bits(sector: u64, sectors: u64, bm_bytes_per_bit: u32) -> (u64, u64) {
    let spb = u64::from((bm_bytes_per_bit / 512).max(1));
    let first = sector / spb;
    let end = sector.saturating_add(sectors).div_ceil(spb);
    (first, end.max(first))
}

/// Bit range of bits *fully* covered by a range (what may be cleared when
/// only that range was written in sync).
pub fn sectors_to_full_bits(sector: u64, sectors: u64, bm_bytes_per_bit: u32) -> (u64, u64) {
    let spb = u64::from((bm_bytes_per_bit / 512).max(1));
    let first = sector.div_ceil(spb);
    let end = sector.saturating_add(sectors) / spb;
    (first, end.max(first))
}

/// Index of the 32-bit on-disk word holding bit `bit` of `slot`, and the
/// bit position within it: slots are interleaved as `k * max_peers + slot`.
pub fn ondisk_word_index(bit: u64, slot: u32, max_peers: u32) -> (u64, u32) {
    let k = bit / 32;
    (
        k * u64::from(max_peers) + u64::from(slot),
        (bit % 32) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let mut w = [0u64; 4];
        assert_eq!(set_range(&mut w, 3, 130), 127);
        assert_eq!(w[0], !0b111);
        assert_eq!(w[1], u64::MAX);
        assert_eq!(w[2], 0b11);
        assert_eq!(set_range(&mut w, 0, 10), 3);
        assert_eq!(count(&w), 130);
        assert_eq!(count_range(&w, 64, 129), 65);
        assert_eq!(clear_range(&mut w, 60, 70), 10);
        assert_eq!(find_next_zero(&w, 0, 256), Some(60));
        assert_eq!(find_next_set(&w, 60, 256), Some(70));
        assert_eq!(find_next_set(&w, 130, 256), None);
        assert_eq!(find_next_zero(&w, 130, 131), Some(130));
        // out of range is harmless
        assert_eq!(set_range(&mut w, 250, 10_000), 6);
        assert!(test_bit(&w, 255));
        assert!(!test_bit(&w, 256));
        assert_eq!(clear_range(&mut w, 5000, 6000), 0);
        assert_eq!(find_next_set(&[], 0, 100), None);
    }

    #[test]
    fn sector_math() {
        assert_eq!(sectors_to_bits(0, 8, 4096), (0, 1));
        assert_eq!(sectors_to_bits(7, 2, 4096), (0, 2));
        assert_eq!(sectors_to_full_bits(7, 2, 4096), (1, 1));
        assert_eq!(sectors_to_full_bits(8, 16, 4096), (1, 3));
        assert_eq!(ondisk_word_index(33, 1, 3), (4, 1));
    }
}
