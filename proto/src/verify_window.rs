//! The verify source's requests in flight, and the writes that race them.
//!
//! The source's digest of a block is taken when the reply arrives, the target's when the
//! request arrived. A write to the block in between (the source's own, or the peer's applied
//! here) means the two digests may describe different versions of the block: comparing them
//! says nothing. Such a block is asked again instead of being reported different; after
//! [`MAX_TRIES`] attempts it is compared anyway, so a block written without pause cannot
//! stall the verify.
//!
//! Writes older than a request are the caller's part: before registering a request it waits
//! until the peer has every earlier write to the block (and the target waits the same way
//! before it hashes), so only writes noted after [`InFlight::begin`] race it.

/// Requests the source keeps in flight at most.
pub const OV_WINDOW: usize = 32;
/// Attempts per block before a raced comparison counts anyway.
pub const MAX_TRIES: u8 = 8;

/// What to do with a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Compare the digests: no write raced the request (or it ran out of attempts).
    Compare,
    /// A write raced the request: the block is queued to be asked again
    /// ([`InFlight::take_again`]); tell the target "in sync" for this attempt.
    AskAgain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Sent; `written`: a write touched the block since.
    Waiting { written: bool },
    /// Its reply was inconclusive; to be sent again.
    Again,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    sector: u64,
    end: u64,
    tries: u8,
    state: State,
}

/// The source's verify requests of one device.
///
/// Locking: kept under the device's write-ordering lock, which every mirrored write, every
/// peer write noted during a verify, and the verify source itself take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    slots: [Option<Pending>; OV_WINDOW],
}

impl Default for InFlight {
    fn default() -> Self {
        Self::new()
    }
}

impl InFlight {
    /// No request in flight.
    pub const fn new() -> Self {
        Self {
            slots: [None; OV_WINDOW],
        }
    }

    /// Requests waiting for a reply or to be sent again.
    pub fn busy(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// A request for `sectors` at `sector` is about to be sent, attempt `tries` (0 for the
    /// first). `false` if the window is full or the block is in flight already.
    pub fn begin(&mut self, sector: u64, sectors: u64, tries: u8) -> bool {
        if self.slots.iter().flatten().any(|p| p.sector == sector) {
            return false;
        }
        let Some(slot) = self.slots.iter_mut().find(|s| s.is_none()) else {
            return false;
        };
        *slot = Some(Pending {
            sector,
            end: sector.saturating_add(sectors),
            tries,
            state: State::Waiting { written: false },
        });
        true
    }

    /// A write of `sectors` at `sector` is about to change this node's disk.
    pub fn note_write(&mut self, sector: u64, sectors: u64) {
        let end = sector.saturating_add(sectors);
        for p in self.slots.iter_mut().flatten() {
            if let State::Waiting { written } = &mut p.state {
                if sector < p.end && p.sector < end {
                    *written = true;
                }
            }
        }
    }

    /// The reply for the block at `sector` arrived; `None` if no request for it waits (the
    /// peer answered something never asked).
    pub fn on_reply(&mut self, sector: u64) -> Option<Verdict> {
        let slot = self.slots.iter_mut().find(|s| {
            s.is_some_and(|p| p.sector == sector && matches!(p.state, State::Waiting { .. }))
        })?;
        let p = slot.as_mut()?;
        match p.state {
            State::Waiting { written: true } if p.tries + 1 < MAX_TRIES => {
                p.state = State::Again;
                Some(Verdict::AskAgain)
            }
            _ => {
                *slot = None;
                Some(Verdict::Compare)
            }
        }
    }

    /// Takes a block to ask again: `(sector, sectors, attempt)`; the caller registers it with
    /// [`InFlight::begin`] before sending.
    pub fn take_again(&mut self) -> Option<(u64, u64, u8)> {
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.is_some_and(|p| p.state == State::Again))?;
        let p = slot.take()?;
        Some((p.sector, p.end - p.sector, p.tries + 1))
    }

    /// Forgets every request (the verify ended or its link went away).
    pub fn clear(&mut self) {
        *self = Self::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_block_is_compared() {
        let mut w = InFlight::new();
        assert!(w.begin(8, 8, 0));
        assert!(!w.begin(8, 8, 0), "the same block twice");
        w.note_write(0, 8); // ends where the block starts
        w.note_write(16, 8); // starts where it ends
        assert_eq!(w.on_reply(8), Some(Verdict::Compare));
        assert_eq!(w.on_reply(8), None, "answered twice");
        assert_eq!(w.busy(), 0);
    }

    #[test]
    fn a_raced_block_is_asked_again_until_out_of_tries() {
        let mut w = InFlight::new();
        assert!(w.begin(64, 8, 0));
        let mut attempts = 1;
        loop {
            w.note_write(60, 8);
            match w.on_reply(64) {
                Some(Verdict::AskAgain) => {
                    assert_eq!(w.on_reply(64), None, "not in flight while queued");
                    assert_eq!(w.busy(), 1, "a queued block keeps its slot");
                    let (sector, sectors, tries) = w.take_again().expect("queued");
                    assert_eq!((sector, sectors), (64, 8));
                    assert_eq!(tries, attempts);
                    assert!(w.begin(sector, sectors, tries));
                    attempts += 1;
                }
                Some(Verdict::Compare) => break,
                None => panic!("request lost"),
            }
        }
        assert_eq!(attempts, MAX_TRIES);
        assert_eq!(w.busy(), 0);
        assert_eq!(w.take_again(), None);
    }

    #[test]
    fn a_write_after_the_reply_does_not_count() {
        let mut w = InFlight::new();
        assert!(w.begin(0, 8, 0));
        w.note_write(0, 8);
        assert_eq!(w.on_reply(0), Some(Verdict::AskAgain));
        // Queued to be asked again: writes now are older than the next request.
        w.note_write(0, 8);
        let (s, n, t) = w.take_again().expect("queued");
        assert!(w.begin(s, n, t));
        assert_eq!(w.on_reply(0), Some(Verdict::Compare));
    }

    #[test]
    fn the_window_is_bounded_and_clear_empties_it() {
        let mut w = InFlight::new();
        for i in 0..OV_WINDOW as u64 {
            assert!(w.begin(i * 8, 8, 0));
        }
        assert!(!w.begin(u64::MAX - 8, 8, 0), "window full");
        assert_eq!(w.busy(), OV_WINDOW);
        w.note_write(0, u64::MAX);
        assert_eq!(w.on_reply(8), Some(Verdict::AskAgain));
        w.clear();
        assert_eq!(w.busy(), 0);
        assert_eq!(w.take_again(), None);
    }
}
