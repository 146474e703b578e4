//! Out-of-sync tracking towards the peer: one bit per 4 KiB block of the device (operations
//! from `proto::bitmap`), set for writes the peer did not get (disconnected, or a failed send)
//! and for a full sync, cleared as the resync sends the blocks. Kept in memory; the on-disk
//! bitmap (`crate::bitmap_io`) together with the activity log always covers it: extents are
//! written there before the log forgets them, and a detach writes every bit.

use crate::proto::bitmap;
use kernel::alloc::VVec;
use kernel::prelude::*;

/// Bytes per bit (DRBD's default granularity).
const BYTES_PER_BIT: u32 = 4096;
/// Sectors per bit.
pub(crate) const SECTORS_PER_BIT: u64 = (BYTES_PER_BIT / 512) as u64;

/// The bitmap of one device.
///
/// Locking: behind `Device::oos` (spinlock); set from the I/O path, scanned by the resync
/// thread, replaced on attach/detach.
pub(crate) struct OosMap {
    words: VVec<u64>,
    bits: u64,
    set: u64,
}

impl OosMap {
    /// An empty map (no device attached).
    pub(crate) fn empty() -> Self {
        Self {
            words: VVec::new(),
            bits: 0,
            set: 0,
        }
    }

    /// A clear map for a device of `sectors`.
    pub(crate) fn new(sectors: u64) -> Result<Self> {
        let bits = sectors.div_ceil(SECTORS_PER_BIT);
        let words = usize::try_from(bits.div_ceil(64)).map_err(|_| ENOMEM)?;
        Ok(Self {
            words: VVec::from_elem(0u64, words, GFP_KERNEL)?,
            bits,
            set: 0,
        })
    }

    /// Number of set bits.
    pub(crate) fn count(&self) -> u64 {
        self.set
    }

    /// Marks the blocks touched by `len` bytes at `sector`.
    pub(crate) fn mark(&mut self, sector: u64, len: u64) {
        if len == 0 {
            return;
        }
        let (first, end) = bitmap::sectors_to_bits(sector, len.div_ceil(512), BYTES_PER_BIT);
        self.set += bitmap::set_range(&mut self.words, first, end.min(self.bits));
    }

    /// Forgets every mark (`new-current-uuid --clear-bitmap`: the data is declared equal).
    pub(crate) fn clear_all(&mut self) {
        for w in self.words.iter_mut() {
            *w = 0;
        }
        self.set = 0;
    }

    /// Marks every block (full sync).
    pub(crate) fn mark_all(&mut self) {
        self.set += bitmap::set_range(&mut self.words, 0, self.bits);
    }

    /// Takes the next run of set bits at or after `from` (at most `max_bits`), clearing them;
    /// returns (first bit, number of bits).
    pub(crate) fn take_run(&mut self, from: u64, max_bits: u64) -> Option<(u64, u64)> {
        let first = bitmap::find_next_set(&self.words, from, self.bits)?;
        let limit = first.saturating_add(max_bits).min(self.bits);
        let end = bitmap::find_next_zero(&self.words, first, limit).unwrap_or(limit);
        self.set -= bitmap::clear_range(&mut self.words, first, end);
        Some((first, end - first))
    }
}

impl OosMap {
    /// Copies the marks of `old`, a map of a smaller device, into this clear, larger map
    /// (allocated outside the spinlock that guards `old`).
    pub(crate) fn copy_from(&mut self, old: &Self) -> Result {
        if self.bits < old.bits {
            return Err(EINVAL);
        }
        for (dst, src) in self.words.iter_mut().zip(old.words.iter()) {
            *dst = *src;
        }
        self.set = old.set;
        Ok(())
    }

    /// Marks block `bit` (bits beyond the device are ignored).
    pub(crate) fn set_bit(&mut self, bit: u64) {
        if bit < self.bits {
            self.set += bitmap::set_range(&mut self.words, bit, bit + 1);
        }
    }

    /// The 32 blocks from `first` (a multiple of 32) as one word, lowest block in bit 0.
    pub(crate) fn word32(&self, first: u64) -> u32 {
        let Ok(index) = usize::try_from(first / 64) else {
            return 0;
        };
        self.words
            .get(index)
            .map_or(0, |w| (w >> (first % 64)) as u32)
    }

    /// Whether any block of `first..end` is marked.
    pub(crate) fn any_in(&self, first: u64, end: u64) -> bool {
        bitmap::find_next_set(&self.words, first, end.min(self.bits)).is_some()
    }
}
