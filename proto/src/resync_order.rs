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
}

impl WriteOrder {
    /// Nothing read ahead, no verify request in flight.
    pub const fn new() -> Self {
        Self {
            read_ahead: ReadAhead::new(),
            verify: super::verify_window::InFlight::new(),
        }
    }

    /// A write of `sectors` sectors at `sector` is about to change this node's disk.
    pub fn note_write(&mut self, sector: u64, sectors: u64) {
        self.read_ahead.note_write(sector, sectors);
        self.verify.note_write(sector, sectors);
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
    fn writes_without_a_chunk_are_ignored() {
        let mut r = ReadAhead::new();
        r.note_write(0, u64::MAX);
        r.begin(u64::MAX - 1, 8);
        r.note_write(u64::MAX - 2, 2);
        assert!(!r.finish());
    }
}
