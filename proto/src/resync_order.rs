//! Ordering of a resync read-ahead against application writes.
//!
//! The SyncSource reads the next chunk from its disk while the previous one is on the wire. An
//! application write that overlaps the chunk between the start of its read and its send is
//! mirrored to the peer on its own; sending those blocks afterwards could overwrite that newer
//! data on the peer with what the read saw. The blocks a write touched are therefore left out
//! of the send: they stay out of sync and a later pass reads them again, while the rest of the
//! chunk goes out as read.

/// Sectors per block a write can spoil (4 KiB, the bitmap's granularity).
pub const BLOCK_SECTORS: u64 = 8;

/// Blocks one read-ahead tracks on its own (256 KiB); a longer one counts the blocks past
/// them as one, which a write to any of them spoils together.
pub const MAX_BLOCKS: u64 = 64;

/// The chunk being read ahead and which of its blocks a write touched.
///
/// Locking: the owner keeps it under the device's write-ordering lock, which every mirrored
/// write and the resync sender take.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadAhead {
    /// Sectors `[start, end)` of the chunk whose read started and that is not yet sent.
    reading: Option<(u64, u64)>,
    /// Bit `i`: a write overlapped block `i` of `reading` (sectors from `start + 8 i`).
    stale: u64,
}

/// Which blocks of a chunk may be sent: what [`ReadAhead::finish`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spoiled {
    /// Bit `i`: block `i` was written after the read started.
    pub blocks: u64,
}

impl Spoiled {
    /// No block was written.
    pub const NONE: Self = Self { blocks: 0 };

    /// Whether no block was written.
    pub fn is_clean(&self) -> bool {
        self.blocks == 0
    }

    /// Whether block `i` of the chunk was written (blocks past [`MAX_BLOCKS`] share the last
    /// bit).
    pub fn spoiled(&self, block: u64) -> bool {
        self.blocks & (1u64 << block.min(MAX_BLOCKS - 1)) != 0
    }

    /// The runs of blocks of a chunk of `sectors` sectors that share one verdict, in order:
    /// `(first sector offset, sectors, spoiled)`. The last run ends with the chunk.
    pub fn runs(&self, sectors: u64) -> Runs {
        Runs {
            spoiled: *self,
            at: 0,
            sectors,
        }
    }
}

/// Iterator of [`Spoiled::runs`].
#[derive(Debug, Clone)]
pub struct Runs {
    spoiled: Spoiled,
    at: u64,
    sectors: u64,
}

impl Iterator for Runs {
    type Item = (u64, u64, bool);

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.sectors {
            return None;
        }
        let start = self.at;
        let verdict = self.spoiled.spoiled(start / BLOCK_SECTORS);
        let mut end = start;
        while end < self.sectors && self.spoiled.spoiled(end / BLOCK_SECTORS) == verdict {
            end = (end / BLOCK_SECTORS + 1)
                .saturating_mul(BLOCK_SECTORS)
                .min(self.sectors);
        }
        self.at = end;
        Some((start, end - start, verdict))
    }
}

/// The mask of blocks `[first, last]` (block indices, clamped to the last tracked bit).
fn block_mask(first: u64, last: u64) -> u64 {
    let first = first.min(MAX_BLOCKS - 1);
    let last = last.min(MAX_BLOCKS - 1);
    let upto_last = if last == MAX_BLOCKS - 1 {
        u64::MAX
    } else {
        (1u64 << (last + 1)) - 1
    };
    upto_last & !((1u64 << first) - 1)
}

impl ReadAhead {
    /// Nothing read ahead.
    pub const fn new() -> Self {
        Self {
            reading: None,
            stale: 0,
        }
    }

    /// The read of `sectors` sectors at `sector` starts (replaces a finished chunk).
    pub fn begin(&mut self, sector: u64, sectors: u64) {
        self.reading = Some((sector, sector.saturating_add(sectors)));
        self.stale = 0;
    }

    /// An application write of `sectors` sectors at `sector` is about to be mirrored.
    pub fn note_write(&mut self, sector: u64, sectors: u64) {
        let Some((start, end)) = self.reading else {
            return;
        };
        let write_end = sector.saturating_add(sectors);
        if sector >= end || write_end <= start || sectors == 0 {
            return;
        }
        let first = (sector.max(start) - start) / BLOCK_SECTORS;
        let last = (write_end.min(end) - 1 - start) / BLOCK_SECTORS;
        self.stale |= block_mask(first, last);
    }

    /// Whether the chunk covers `sectors` at `sector` and no write touched those blocks since
    /// its read started (a verify hashes blocks from a window read ahead this way).
    pub fn fresh_over(&self, sector: u64, sectors: u64) -> bool {
        let Some((start, end)) = self.reading else {
            return false;
        };
        if sectors == 0 || sector < start || sector.saturating_add(sectors) > end {
            return false;
        }
        let first = (sector - start) / BLOCK_SECTORS;
        let last = (sector + sectors - 1 - start) / BLOCK_SECTORS;
        self.stale & block_mask(first, last) == 0
    }

    /// The chunk is about to be sent: which of its blocks must not be, `None` if nothing was
    /// read ahead. Forgets the chunk.
    pub fn finish(&mut self) -> Option<Spoiled> {
        let out = self.reading.map(|_| Spoiled { blocks: self.stale });
        *self = Self::new();
        out
    }
}

/// What the device's write-ordering lock guards: the resync's read-ahead chunk and the
/// verify source's requests, both of which a write must be noted in.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteOrder {
    /// The resync's chunk being read ahead.
    pub read_ahead: ReadAhead,
    /// The verify requests in flight (source side).
    pub verify: super::verify_window::InFlight,
    /// The window a verify hashes its blocks from (either side).
    pub verify_cache: ReadAhead,
}

impl WriteOrder {
    /// Nothing read ahead, no verify request in flight.
    pub const fn new() -> Self {
        Self {
            read_ahead: ReadAhead::new(),
            verify: super::verify_window::InFlight::new(),
            verify_cache: ReadAhead::new(),
        }
    }

    /// A write of `sectors` sectors at `sector` is about to change this node's disk.
    pub fn note_write(&mut self, sector: u64, sectors: u64) {
        self.read_ahead.note_write(sector, sectors);
        self.verify.note_write(sector, sectors);
        self.verify_cache.note_write(sector, sectors);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn only_the_written_blocks_are_spoiled() {
        let mut r = ReadAhead::new();
        r.begin(512, 512);
        r.note_write(0, 512); // ends where the chunk starts
        r.note_write(1024, 8); // starts where it ends
        assert_eq!(
            r.finish(),
            Some(Spoiled::NONE),
            "adjacent writes do not overlap"
        );
        assert_eq!(r.finish(), None, "finish forgets the chunk");
        r.begin(512, 512);
        r.note_write(1016, 16); // across the end: the last block
        r.note_write(520, 1); // one sector of block 1
        r.note_write(500, 13); // before the start into block 0
        let s = r.finish().unwrap();
        assert_eq!(s.blocks, (1 << 63) | 0b11);
        let runs: Vec<_> = s.runs(512).collect();
        assert_eq!(runs, [(0, 16, true), (16, 488, false), (504, 8, true)]);
    }

    #[test]
    fn runs_cover_a_short_chunk_exactly() {
        let s = Spoiled { blocks: 0b100 };
        let runs: Vec<_> = s.runs(21).collect();
        assert_eq!(runs, [(0, 16, false), (16, 5, true)]);
        assert_eq!(Spoiled::NONE.runs(3).collect::<Vec<_>>(), [(0, 3, false)]);
        assert_eq!(Spoiled::NONE.runs(0).count(), 0);
    }

    #[test]
    fn blocks_past_the_tracked_ones_share_the_last_bit() {
        let mut r = ReadAhead::new();
        r.begin(0, MAX_BLOCKS * BLOCK_SECTORS * 2);
        r.note_write(MAX_BLOCKS * BLOCK_SECTORS + 80, 8);
        assert!(r.fresh_over(0, (MAX_BLOCKS - 1) * BLOCK_SECTORS));
        assert!(
            !r.fresh_over(MAX_BLOCKS * BLOCK_SECTORS + 8, 8),
            "shares the bit"
        );
        let s = r.finish().unwrap();
        assert_eq!(s.blocks, 1 << 63);
        let runs: Vec<_> = s.runs(MAX_BLOCKS * BLOCK_SECTORS * 2).collect();
        assert_eq!(
            runs,
            [
                (0, (MAX_BLOCKS - 1) * BLOCK_SECTORS, false),
                (
                    (MAX_BLOCKS - 1) * BLOCK_SECTORS,
                    (MAX_BLOCKS + 1) * BLOCK_SECTORS,
                    true
                )
            ]
        );
    }

    #[test]
    fn a_window_serves_the_blocks_inside_until_written() {
        let mut w = WriteOrder::new();
        assert!(!w.verify_cache.fresh_over(0, 8), "nothing read");
        w.verify_cache.begin(256, 256);
        assert!(w.verify_cache.fresh_over(256, 8));
        assert!(w.verify_cache.fresh_over(504, 8), "the last block");
        assert!(!w.verify_cache.fresh_over(248, 8), "before the window");
        assert!(!w.verify_cache.fresh_over(508, 8), "across its end");
        w.note_write(0, 8);
        assert!(w.verify_cache.fresh_over(256, 8), "a write elsewhere");
        w.note_write(400, 1);
        assert!(
            w.verify_cache.fresh_over(256, 8),
            "a write to another block"
        );
        assert!(!w.verify_cache.fresh_over(400, 8), "the written block");
        assert!(!w.verify_cache.fresh_over(256, 256), "a range with it");
        w.verify_cache.begin(256, 256);
        assert!(w.verify_cache.fresh_over(256, 8), "read again");
    }

    #[test]
    fn writes_without_a_chunk_are_ignored() {
        let mut r = ReadAhead::new();
        r.note_write(0, u64::MAX);
        r.begin(u64::MAX - 1, 8);
        r.note_write(u64::MAX - 2, 2);
        assert_eq!(
            r.finish(),
            Some(Spoiled { blocks: 1 }),
            "overlaps its first sector"
        );
        assert_eq!(r.finish(), None);
    }
}
