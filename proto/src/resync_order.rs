//! Ordering of a resync read-ahead against application writes.
//!
//! The SyncSource reads the next chunk from its disk while the previous one is on the wire. An
//! application write that overlaps the chunk between the start of its read and its send is
//! mirrored to the peer on its own; sending the chunk afterwards could overwrite that newer
//! data on the peer with what the read saw. Such a chunk is not sent: its blocks stay out of
//! sync and a later pass reads them again.

/// The chunk being read ahead and whether a write touched it.
///
/// Locking: the owner keeps it under the device's write-ordering lock, which every mirrored
/// write and the resync sender take.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadAhead {
    /// Sectors `[start, end)` of the chunk whose read started and that is not yet sent.
    reading: Option<(u64, u64)>,
    /// A write overlapped `reading`.
    stale: bool,
}

impl ReadAhead {
    /// Nothing read ahead.
    pub const fn new() -> Self {
        Self {
            reading: None,
            stale: false,
        }
    }

    /// The read of `sectors` sectors at `sector` starts (replaces a finished chunk).
    pub fn begin(&mut self, sector: u64, sectors: u64) {
        self.reading = Some((sector, sector.saturating_add(sectors)));
        self.stale = false;
    }

    /// An application write of `sectors` sectors at `sector` is about to be mirrored.
    pub fn note_write(&mut self, sector: u64, sectors: u64) {
        if let Some((start, end)) = self.reading {
            if sector < end && sector.saturating_add(sectors) > start {
                self.stale = true;
            }
        }
    }

    /// Whether the chunk covers `sectors` at `sector` and no write touched it since its read
    /// started (a verify hashes blocks from a window read ahead this way).
    pub fn fresh_over(&self, sector: u64, sectors: u64) -> bool {
        match self.reading {
            Some((start, end)) => {
                !self.stale && start <= sector && sector.saturating_add(sectors) <= end
            }
            None => false,
        }
    }

    /// The chunk is about to be sent: whether it still may be. Forgets the chunk.
    pub fn finish(&mut self) -> bool {
        let fresh = self.reading.is_some() && !self.stale;
        *self = Self::new();
        fresh
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
    use super::*;

    #[test]
    fn overlap_makes_the_chunk_stale() {
        let mut r = ReadAhead::new();
        r.begin(512, 512);
        r.note_write(0, 512); // ends where the chunk starts
        r.note_write(1024, 8); // starts where it ends
        assert!(r.finish(), "adjacent writes do not overlap");
        r.begin(512, 512);
        r.note_write(1016, 16);
        assert!(!r.finish(), "a write across the end overlaps");
        assert!(!r.finish(), "finish forgets the chunk");
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
            !w.verify_cache.fresh_over(256, 8),
            "a write inside spoils it all"
        );
        w.verify_cache.begin(256, 256);
        assert!(w.verify_cache.fresh_over(256, 8), "read again");
    }

    #[test]
    fn writes_without_a_chunk_are_ignored() {
        let mut r = ReadAhead::new();
        r.note_write(0, u64::MAX);
        r.begin(u64::MAX - 1, 8);
        r.note_write(u64::MAX - 2, 2);
        assert!(!r.finish());
    }
}
