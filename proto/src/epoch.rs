//! Epochs: how write order and durability cross the link.
//!
//! The Primary groups its mirrored writes into epochs and ends each with a `P_BARRIER`
//! carrying the epoch's number. An epoch ends before the next write once one of its writes
//! was completed upward (a write issued after a completion may depend on it, so it must land
//! in a later epoch), once it holds `max-epoch-size` writes, on an empty flush, and when the
//! link goes idle. The peer answers `P_BARRIER_ACK(barrier, set_size)` once every write of
//! the epoch is on its disk and, with `disk-flushes`, flushed: only then does the Primary
//! forget the epoch's writes. Until that ack they are still "maybe not on the peer": when
//! the link fails they are marked out of sync, and an empty flush waiting for them completes
//! only with the ack.
//!
//! [`Sender`] is the Primary's side, [`Receiver`] the peer's. Neither does I/O; both keep a
//! fixed number `N` of epochs that are closed and not yet acknowledged.

/// Default `max-epoch-size`: writes per epoch at most.
pub const MAX_EPOCH_SIZE: u32 = 2048;

/// Closed epochs awaiting their ack that the module keeps per link.
pub const UNACKED_EPOCHS: usize = 256;

/// What went wrong with an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochError {
    /// `N` epochs are closed and unacknowledged: wait for an ack.
    Full,
    /// A barrier ack for an epoch that is not the oldest one outstanding.
    UnexpectedAck {
        /// The barrier number acknowledged.
        barrier: u32,
        /// The oldest epoch outstanding, if any.
        expected: Option<u32>,
    },
    /// A barrier ack whose write count differs from what was sent in the epoch.
    WrongSetSize {
        /// The barrier number acknowledged.
        barrier: u32,
        /// Writes the peer counted.
        set_size: u32,
        /// Writes sent in that epoch.
        sent: u32,
    },
}

/// A first-in first-out queue of at most `N` values, without allocation.
#[derive(Debug, Clone, Copy)]
struct Ring<T: Copy, const N: usize> {
    items: [T; N],
    head: usize,
    len: usize,
}

impl<T: Copy, const N: usize> Ring<T, N> {
    const fn new(fill: T) -> Self {
        Self {
            items: [fill; N],
            head: 0,
            len: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.len == N
    }

    fn push(&mut self, value: T) -> Result<(), EpochError> {
        if self.is_full() {
            return Err(EpochError::Full);
        }
        self.items[(self.head + self.len) % N] = value;
        self.len += 1;
        Ok(())
    }

    fn front(&self) -> Option<&T> {
        (self.len > 0).then(|| &self.items[self.head])
    }

    fn back(&self) -> Option<&T> {
        (self.len > 0).then(|| &self.items[(self.head + self.len - 1) % N])
    }

    fn pop(&mut self) -> Option<T> {
        let value = *self.front()?;
        self.head = (self.head + 1) % N;
        self.len -= 1;
        Some(value)
    }

    fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        (index < self.len).then(|| &mut self.items[(self.head + index) % N])
    }
}

/// Whether epoch `a` is `b` or later, for numbers that wrap around.
pub fn not_before(a: u32, b: u32) -> bool {
    a.wrapping_sub(b) < u32::MAX / 2
}

/// Where a write goes: first the barrier that ends the previous epoch, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WritePlan {
    /// Send `P_BARRIER` with this number before the write.
    pub barrier: Option<u32>,
    /// The epoch the write belongs to.
    pub epoch: u32,
}

/// The Primary's epochs towards one peer.
///
/// Locking: the owner keeps it under a lock that the sender of writes and barriers holds
/// together with the stream (so numbers follow the stream order) and that the ack receiver
/// takes briefly. Lifetime: one per established link.
#[derive(Debug, Clone, Copy)]
pub struct Sender<const N: usize> {
    /// Number of the open epoch.
    current: u32,
    /// Writes sent in the open epoch.
    writes: u32,
    /// Closed epochs the peer has not acknowledged: (number, writes), oldest first.
    unacked: Ring<(u32, u32), N>,
}

impl<const N: usize> Sender<N> {
    /// No epoch yet; the first one is numbered `first`.
    pub const fn new(first: u32) -> Self {
        Self {
            current: first,
            writes: 0,
            unacked: Ring::new((0, 0)),
        }
    }

    /// A write is about to be sent. `completed` is the newest epoch of which a write was
    /// completed upward (if any); a write of the open epoch completed, or the epoch is full,
    /// ends the epoch first. [`EpochError::Full`]: the caller must wait for an ack.
    pub fn before_write(
        &mut self,
        completed: Option<u32>,
        max_epoch_size: u32,
    ) -> Result<WritePlan, EpochError> {
        let completed_here = completed.is_some_and(|c| not_before(c, self.current));
        let must_close =
            self.writes > 0 && (completed_here || self.writes >= max_epoch_size.max(1));
        let barrier = if must_close {
            Some(self.close_open()?)
        } else {
            None
        };
        self.writes += 1;
        Ok(WritePlan {
            barrier,
            epoch: self.current,
        })
    }

    fn close_open(&mut self) -> Result<u32, EpochError> {
        self.unacked.push((self.current, self.writes))?;
        let closed = self.current;
        self.current = self.current.wrapping_add(1);
        self.writes = 0;
        Ok(closed)
    }

    /// Ends the open epoch if it holds writes (idle link, empty flush): the barrier to send.
    pub fn close(&mut self) -> Result<Option<u32>, EpochError> {
        if self.writes == 0 {
            return Ok(None);
        }
        self.close_open().map(Some)
    }

    /// Writes sent in the open epoch.
    pub fn open_writes(&self) -> u32 {
        self.writes
    }

    /// Number of the open epoch.
    pub fn current(&self) -> u32 {
        self.current
    }

    /// The closed epoch whose ack comes last, i.e. covers every closed epoch.
    pub fn newest_unacked(&self) -> Option<u32> {
        self.unacked.back().map(|&(nr, _)| nr)
    }

    /// Closed epochs waiting for their ack.
    pub fn unacked(&self) -> usize {
        self.unacked.len
    }

    /// `P_BARRIER_ACK(barrier, set_size)` arrived: it must name the oldest closed epoch and
    /// count exactly its writes. Then that epoch is done.
    pub fn acked(&mut self, barrier: u32, set_size: u32) -> Result<(), EpochError> {
        match self.unacked.front() {
            Some(&(nr, sent)) if nr == barrier => {
                if sent != set_size {
                    return Err(EpochError::WrongSetSize {
                        barrier,
                        set_size,
                        sent,
                    });
                }
                self.unacked.pop();
                Ok(())
            }
            other => Err(EpochError::UnexpectedAck {
                barrier,
                expected: other.map(|&(nr, _)| nr),
            }),
        }
    }
}

/// What the peer must do next for its epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverAction {
    /// Every epoch up to the oldest open one finished its writes: flush the disks now, then
    /// report [`Receiver::flush_done`].
    Flush,
    /// Send `P_BARRIER_ACK(barrier, set_size)`.
    Ack {
        /// Number from the `P_BARRIER`.
        barrier: u32,
        /// Writes of that epoch.
        set_size: u32,
    },
}

/// One closed epoch on the peer.
#[derive(Debug, Clone, Copy)]
struct Closed {
    barrier: u32,
    set_size: u32,
    /// Writes of the epoch not finished yet.
    outstanding: u32,
    /// A flush that started after the epoch's writes finished covers it.
    flushed: bool,
}

/// The peer's epochs of one link: counts the writes of each epoch, knows when an epoch is
/// on disk, and asks for the flush and the ack in order.
///
/// Epochs are identified locally by a sequence number ([`Receiver::on_write`] returns it);
/// the open epoch has the number after the newest closed one.
///
/// Locking: kept under the owner's lock of writes in flight. Lifetime: one per link.
#[derive(Debug, Clone, Copy)]
pub struct Receiver<const N: usize> {
    /// Local number of the oldest closed epoch (the front of `closed`).
    first: u64,
    /// Closed epochs not acknowledged yet, oldest first.
    closed: Ring<Closed, N>,
    /// Writes received in the open epoch, and how many of them are unfinished.
    open_writes: u32,
    open_outstanding: u32,
    /// Epochs (count from the front) that the running flush covers, if one runs.
    flushing: Option<usize>,
}

impl<const N: usize> Default for Receiver<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Receiver<N> {
    /// No epochs.
    pub const fn new() -> Self {
        Self {
            first: 0,
            closed: Ring::new(Closed {
                barrier: 0,
                set_size: 0,
                outstanding: 0,
                flushed: false,
            }),
            open_writes: 0,
            open_outstanding: 0,
            flushing: None,
        }
    }

    fn open_id(&self) -> u64 {
        self.first + self.closed.len as u64
    }

    /// A write of the open epoch arrived: its epoch's local number.
    pub fn on_write(&mut self) -> u64 {
        self.open_writes = self.open_writes.saturating_add(1);
        self.open_outstanding = self.open_outstanding.saturating_add(1);
        self.open_id()
    }

    /// The write of epoch `id` finished (written or failed).
    pub fn write_done(&mut self, id: u64) {
        if id == self.open_id() {
            self.open_outstanding = self.open_outstanding.saturating_sub(1);
        } else if let Some(c) = id
            .checked_sub(self.first)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.closed.get_mut(i))
        {
            c.outstanding = c.outstanding.saturating_sub(1);
        }
    }

    /// `P_BARRIER(barrier)` arrived: the open epoch is closed. [`EpochError::Full`]: wait for
    /// acks to go out first.
    pub fn on_barrier(&mut self, barrier: u32) -> Result<(), EpochError> {
        self.closed.push(Closed {
            barrier,
            set_size: self.open_writes,
            outstanding: self.open_outstanding,
            flushed: false,
        })?;
        self.open_writes = 0;
        self.open_outstanding = 0;
        Ok(())
    }

    /// Room for another barrier.
    pub fn has_room(&self) -> bool {
        !self.closed.is_full()
    }

    /// Every closed epoch was acknowledged: writes may go straight to the disk even where
    /// the order between epochs must hold (protocols A and B).
    pub fn all_acked(&self) -> bool {
        self.closed.len == 0
    }

    /// The next step, if one is due. `flushes`: epochs need a flush before their ack
    /// (`disk-flushes` and a disk with a volatile cache); otherwise an epoch is acked as soon
    /// as its writes finished (drain).
    pub fn next(&mut self, flushes: bool) -> Option<ReceiverAction> {
        let oldest = *self.closed.front()?;
        if oldest.outstanding > 0 {
            return None;
        }
        if flushes && !oldest.flushed {
            if self.flushing.is_some() {
                return None;
            }
            // One flush covers every closed epoch whose writes all finished.
            let mut covered = 0;
            while covered < self.closed.len {
                match self.closed.get_mut(covered) {
                    Some(c) if c.outstanding == 0 => covered += 1,
                    _ => break,
                }
            }
            self.flushing = Some(covered);
            return Some(ReceiverAction::Flush);
        }
        self.closed.pop();
        self.first += 1;
        if let Some(n) = self.flushing.as_mut() {
            *n = n.saturating_sub(1);
        }
        Some(ReceiverAction::Ack {
            barrier: oldest.barrier,
            set_size: oldest.set_size,
        })
    }

    /// The flush asked for by [`ReceiverAction::Flush`] finished (a failed flush still ends
    /// the wait: the writes finished, which is what `disk-drain` would give).
    pub fn flush_done(&mut self) {
        let covered = self.flushing.take().unwrap_or(0);
        for i in 0..covered {
            if let Some(c) = self.closed.get_mut(i) {
                c.flushed = true;
            }
        }
    }

    /// A flush is running.
    pub fn is_flushing(&self) -> bool {
        self.flushing.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upward_completion_ends_the_epoch_before_the_next_write() {
        let mut s = Sender::<4>::new(7);
        let w1 = s.before_write(None, MAX_EPOCH_SIZE).unwrap();
        assert_eq!(
            w1,
            WritePlan {
                barrier: None,
                epoch: 7
            }
        );
        // A completion of an older epoch does not matter.
        let w2 = s.before_write(Some(6), MAX_EPOCH_SIZE).unwrap();
        assert_eq!(w2.barrier, None);
        // w1 completed: w3 may depend on it.
        let w3 = s.before_write(Some(7), MAX_EPOCH_SIZE).unwrap();
        assert_eq!(
            w3,
            WritePlan {
                barrier: Some(7),
                epoch: 8
            }
        );
        assert_eq!(s.newest_unacked(), Some(7));
        assert_eq!(s.acked(7, 2), Ok(()));
        assert_eq!(s.unacked(), 0);
    }

    #[test]
    fn max_epoch_size_and_close_end_epochs_only_with_writes() {
        let mut s = Sender::<8>::new(0);
        assert_eq!(s.close(), Ok(None), "an empty epoch needs no barrier");
        for _ in 0..3 {
            assert_eq!(s.before_write(None, 3).unwrap().barrier, None);
        }
        assert_eq!(s.before_write(None, 3).unwrap().barrier, Some(0));
        assert_eq!(s.close(), Ok(Some(1)));
        assert_eq!(s.close(), Ok(None));
        assert_eq!(s.newest_unacked(), Some(1));
        assert_eq!(s.open_writes(), 0);
        assert_eq!(s.current(), 2);
    }

    #[test]
    fn bad_acks_are_refused_and_change_nothing() {
        let mut s = Sender::<4>::new(u32::MAX);
        s.before_write(None, 10).unwrap();
        assert_eq!(s.close(), Ok(Some(u32::MAX)));
        s.before_write(None, 10).unwrap();
        s.before_write(None, 10).unwrap();
        assert_eq!(s.close(), Ok(Some(0)), "numbers wrap");
        assert_eq!(
            s.acked(0, 2),
            Err(EpochError::UnexpectedAck {
                barrier: 0,
                expected: Some(u32::MAX)
            })
        );
        assert_eq!(
            s.acked(u32::MAX, 2),
            Err(EpochError::WrongSetSize {
                barrier: u32::MAX,
                set_size: 2,
                sent: 1
            })
        );
        assert_eq!(s.acked(u32::MAX, 1), Ok(()));
        assert_eq!(s.acked(0, 2), Ok(()));
        assert_eq!(
            s.acked(1, 0),
            Err(EpochError::UnexpectedAck {
                barrier: 1,
                expected: None
            })
        );
    }

    #[test]
    fn a_full_sender_refuses_to_close() {
        let mut s = Sender::<2>::new(0);
        for _ in 0..2 {
            s.before_write(None, 10).unwrap();
            s.close().unwrap();
        }
        s.before_write(None, 10).unwrap();
        assert_eq!(s.close(), Err(EpochError::Full));
        assert_eq!(s.before_write(Some(2), 10), Err(EpochError::Full));
        assert_eq!(s.open_writes(), 1, "a refused write is not counted");
        s.acked(0, 1).unwrap();
        assert_eq!(s.close(), Ok(Some(2)));
    }

    #[test]
    fn wrapping_order() {
        assert!(not_before(5, 5));
        assert!(not_before(0, u32::MAX));
        assert!(!not_before(u32::MAX, 0));
    }

    #[test]
    fn the_peer_acks_in_order_after_writes_and_flush() {
        let mut r = Receiver::<4>::new();
        let a = r.on_write();
        let b = r.on_write();
        r.on_barrier(10).unwrap();
        let c = r.on_write();
        r.on_barrier(11).unwrap();
        assert_ne!(a, c);
        assert_eq!(a, b);
        assert!(!r.all_acked());
        // Epoch 11 is done first, but 10 still has writes: nothing yet.
        r.write_done(c);
        assert_eq!(r.next(true), None);
        r.write_done(a);
        assert_eq!(r.next(true), None);
        r.write_done(b);
        // One flush covers both epochs.
        assert_eq!(r.next(true), Some(ReceiverAction::Flush));
        assert_eq!(r.next(true), None, "the flush is still running");
        r.flush_done();
        assert_eq!(
            r.next(true),
            Some(ReceiverAction::Ack {
                barrier: 10,
                set_size: 2
            })
        );
        assert_eq!(
            r.next(true),
            Some(ReceiverAction::Ack {
                barrier: 11,
                set_size: 1
            })
        );
        assert_eq!(r.next(true), None);
        assert!(r.all_acked());
    }

    #[test]
    fn a_flush_covers_only_epochs_finished_when_it_started() {
        let mut r = Receiver::<4>::new();
        let a = r.on_write();
        r.on_barrier(1).unwrap();
        let b = r.on_write();
        r.on_barrier(2).unwrap();
        r.write_done(a);
        assert_eq!(r.next(true), Some(ReceiverAction::Flush));
        r.write_done(b);
        r.flush_done();
        assert_eq!(
            r.next(true),
            Some(ReceiverAction::Ack {
                barrier: 1,
                set_size: 1
            })
        );
        assert_eq!(
            r.next(true),
            Some(ReceiverAction::Flush),
            "epoch 2 needs its own"
        );
        r.flush_done();
        assert_eq!(
            r.next(true),
            Some(ReceiverAction::Ack {
                barrier: 2,
                set_size: 1
            })
        );
    }

    #[test]
    fn drain_acks_without_flush_and_writes_of_the_open_epoch_do_not_hold_acks() {
        let mut r = Receiver::<2>::new();
        let a = r.on_write();
        r.on_barrier(5).unwrap();
        let _open = r.on_write();
        r.write_done(a);
        assert_eq!(
            r.next(false),
            Some(ReceiverAction::Ack {
                barrier: 5,
                set_size: 1
            })
        );
        assert!(r.all_acked());
        r.on_barrier(6).unwrap();
        r.on_barrier(7).unwrap();
        assert!(!r.has_room());
        assert_eq!(r.on_barrier(8), Err(EpochError::Full));
        assert_eq!(r.next(false), None, "epoch 6 holds the unfinished write");
        r.write_done(_open);
        assert_eq!(
            r.next(false),
            Some(ReceiverAction::Ack {
                barrier: 6,
                set_size: 1
            })
        );
        assert_eq!(
            r.next(false),
            Some(ReceiverAction::Ack {
                barrier: 7,
                set_size: 0
            }),
            "an epoch without writes is acked at once"
        );
    }
}
