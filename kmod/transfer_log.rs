//! The transfer log of a link: every mirrored write (and every empty flush) the peer has not
//! yet confirmed as stable, grouped in epochs (`proto::epoch`).
//!
//! A write leaves the log when the `P_BARRIER_ACK` of its epoch arrives: the peer then has it
//! on disk and, with `disk-flushes`, flushed. Until then it is "maybe not on the peer": when
//! the link fails, [`TransferLog::fail_all`] marks it out of sync, so a peer that lost its
//! volatile cache (power loss) is resynced exactly there. `P_WRITE_ACK`/`P_RECV_ACK` only
//! complete the upper bio (protocols C and B); they do not take the write out of the log.

use crate::proto::epoch::{self, EpochError, Sender, WritePlan, UNACKED_EPOCHS};
use crate::sys::bio::SharedCompletion;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::new_spinlock;
use kernel::prelude::*;
use kernel::sync::{Arc, SpinLock};

/// How long a sender waits for the peer to acknowledge epochs when `UNACKED_EPOCHS` are
/// outstanding, before it gives the link up.
const ROOM_WAIT_MS: u32 = 10_000;

/// The newest epoch of which a write was completed upward: the next write must start a new
/// epoch if that is the open one. Written from bio completions (any context).
///
/// Lifetime: shared by a link's transfer log and the requests sent on it; atomics only, so
/// the last reference may go anywhere.
pub(crate) struct EpochClock {
    /// `1 << 32 | epoch`, or 0 before the first completion.
    completed: AtomicU64,
}

const STAMP: u64 = 1 << 32;

impl EpochClock {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Ok(Arc::new(
            Self {
                completed: AtomicU64::new(0),
            },
            GFP_KERNEL,
        )?)
    }

    /// A write of epoch `stamp` (as stored by [`SharedCompletion`]) completed upward.
    pub(crate) fn note(&self, stamp: u64) {
        if stamp & STAMP == 0 {
            return;
        }
        let mut seen = self.completed.load(Ordering::Acquire);
        loop {
            let newer = seen & STAMP == 0 || epoch::not_before(stamp as u32, seen as u32);
            if !newer {
                return;
            }
            match self.completed.compare_exchange_weak(
                seen,
                stamp,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(now) => seen = now,
            }
        }
    }

    /// The newest epoch with an upward completion.
    pub(crate) fn completed(&self) -> Option<u32> {
        let v = self.completed.load(Ordering::Acquire);
        (v & STAMP != 0).then_some(v as u32)
    }
}

/// The value a request stores for its epoch (see [`EpochClock::note`]).
pub(crate) fn stamp(epoch: u32) -> u64 {
    STAMP | u64::from(epoch)
}

/// One request in the log.
struct Entry {
    req: Arc<SharedCompletion>,
    /// The upper bio still waits for the peer (protocol B until `P_RECV_ACK`, C until
    /// `P_WRITE_ACK`, an empty flush until the barrier ack).
    holds_part: bool,
    /// When the request was handed to the link (`ktime` ms), for the ko-count check.
    since_ms: i64,
    /// Its epoch, once sent.
    epoch: Option<u32>,
    /// The peer answered the write itself (`P_WRITE_ACK`/`P_NEG_ACK`); it only waits for its
    /// epoch now, so ko-count no longer counts it.
    answered: bool,
}

/// The log's requests by slot (`block_id = slot + 1`).
struct Entries {
    slots: KVec<Option<Entry>>,
    /// Every slot below is in use (where a free one is searched from).
    hint: usize,
}

impl Entries {
    fn get_mut(&mut self, i: usize) -> Option<&mut Option<Entry>> {
        self.slots.get_mut(i)
    }

    /// Frees slot `i`, returning its entry.
    fn take(&mut self, i: usize) -> Option<Entry> {
        let e = self.slots.get_mut(i)?.take();
        if e.is_some() {
            self.hint = self.hint.min(i);
        }
        e
    }
}

/// The transfer log of one link.
///
/// Locking: `epochs` is taken by the data-stream sender while it holds the stream (so epoch
/// numbers follow the stream order) and by the ack receiver; `entries` nests inside
/// `epochs` where both are needed. Both are plain spinlocks, never held across sends, sleeps
/// or bio completions. Lifetime: part of the link; [`TransferLog::fail_all`] empties it when
/// the link goes down.
#[pin_data]
pub(crate) struct TransferLog {
    #[pin]
    epochs: SpinLock<Sender<UNACKED_EPOCHS>>,
    /// Requests by slot (`block_id = slot + 1`).
    #[pin]
    entries: SpinLock<Entries>,
    /// Shared with the requests sent on this link.
    pub(crate) clock: Arc<EpochClock>,
}

/// What a `P_WRITE_ACK` or `P_RECV_ACK` found.
pub(crate) struct Answered {
    /// The request, if the upper bio was waiting for this answer.
    pub(crate) waiting: Option<Arc<SharedCompletion>>,
    /// The request, for out-of-sync marking on `P_NEG_ACK`.
    pub(crate) req: Arc<SharedCompletion>,
}

impl TransferLog {
    pub(crate) fn new() -> Result<impl PinInit<Self, Error>> {
        let clock = EpochClock::new()?;
        Ok(try_pin_init!(Self {
            epochs <- new_spinlock!(Sender::new(1), "TransferLog::epochs"),
            entries <- new_spinlock!(
                Entries {
                    slots: KVec::new(),
                    hint: 0
                },
                "TransferLog::entries"
            ),
            clock,
        }))
    }

    /// Enters `req`; `0` if there is no memory (the caller then treats the request as lost
    /// to the peer).
    pub(crate) fn add(&self, req: &Arc<SharedCompletion>, holds_part: bool) -> u64 {
        let entry = Entry {
            req: req.clone(),
            holds_part,
            since_ms: crate::replication::now_ms(),
            epoch: None,
            answered: false,
        };
        let mut entries = self.entries.lock();
        // Slots are taken lowest first; below the hint all are in use.
        let from = entries.hint.min(entries.slots.len());
        if let Some(i) = entries.slots[from..].iter().position(Option::is_none) {
            let i = from + i;
            entries.slots[i] = Some(entry);
            entries.hint = i + 1;
            return i as u64 + 1;
        }
        match entries.slots.push(Some(entry), GFP_ATOMIC) {
            Ok(()) => {
                entries.hint = entries.slots.len();
                entries.slots.len() as u64
            }
            Err(_) => 0,
        }
    }

    fn index(id: u64) -> Option<usize> {
        usize::try_from(id.checked_sub(1)?).ok()
    }

    /// Whether a write to any of `sectors` at `sector` of `device` is in the log: the peer
    /// may not have it on disk yet.
    pub(crate) fn overlaps(
        &self,
        device: &crate::device::Device,
        sector: u64,
        sectors: u64,
    ) -> bool {
        self.entries
            .lock()
            .slots
            .iter()
            .flatten()
            .any(|e| e.req.overlaps(device, sector, sectors))
    }

    /// Takes request `id` out of the log (it was never sent): the request, and whether its
    /// upper bio still waited for the peer.
    pub(crate) fn remove(&self, id: u64) -> Option<(Arc<SharedCompletion>, bool)> {
        let e = self.entries.lock().take(Self::index(id)?)?;
        Some((e.req, e.holds_part))
    }

    /// Runs `step` on the epochs, waiting while it finds too many unacknowledged; `Err` if
    /// that lasts (the peer stopped acknowledging).
    fn with_room<R>(
        &self,
        mut step: impl FnMut(&mut Sender<UNACKED_EPOCHS>) -> Result<R, EpochError>,
    ) -> Result<R> {
        let mut waited = 0;
        loop {
            match step(&mut self.epochs.lock()) {
                Ok(r) => return Ok(r),
                Err(EpochError::Full) => {}
                Err(_) => return Err(EINVAL),
            }
            if waited >= ROOM_WAIT_MS {
                return Err(EAGAIN);
            }
            crate::sys::misc::sleep_ms(1);
            waited += 1;
        }
    }

    /// Places write `id` (0: untracked) in the epoch it is sent in; the caller holds the data
    /// stream. `Ok(plan)` says which barrier to send first.
    pub(crate) fn open_write(&self, id: u64, max_epoch_size: u32) -> Result<WritePlan> {
        self.with_room(|epochs| {
            let plan = epochs.before_write(self.clock.completed(), max_epoch_size)?;
            self.set_epoch(id, plan.epoch);
            Ok(plan)
        })
    }

    fn set_epoch(&self, id: u64, epoch: u32) {
        if let Some(e) = Self::index(id).and_then(|i| {
            let mut entries = self.entries.lock();
            entries.get_mut(i).and_then(|s| s.as_mut()).map(|e| {
                e.epoch = Some(epoch);
                e.req.clone()
            })
        }) {
            e.set_epoch(stamp(epoch));
        }
    }

    /// Ends the open epoch if it has writes (the caller holds the data stream and sends the
    /// returned barrier). With `flush` = request `id`, that request then waits for the ack of
    /// the newest unacknowledged epoch; `Ok(false)`: there is none, the peer has everything
    /// stable already.
    pub(crate) fn close(&self, flush: Option<u64>) -> Result<(Option<u32>, bool)> {
        self.with_room(|epochs| {
            let barrier = epochs.close()?;
            let target = epochs.newest_unacked();
            if let (Some(id), Some(t)) = (flush, target) {
                self.set_epoch(id, t);
            }
            Ok((barrier, target.is_some()))
        })
    }

    /// The open epoch's number and write count (for closing idle epochs).
    pub(crate) fn open_epoch(&self) -> (u32, u32) {
        let e = self.epochs.lock();
        (e.current(), e.open_writes())
    }

    /// The peer received write `id` (`P_RECV_ACK`): the request if its upper bio waited.
    pub(crate) fn received(&self, id: u64) -> Option<Arc<SharedCompletion>> {
        let mut entries = self.entries.lock();
        let e = entries.get_mut(Self::index(id)?)?.as_mut()?;
        if !core::mem::replace(&mut e.holds_part, false) {
            return None;
        }
        Some(e.req.clone())
    }

    /// The peer wrote (or failed to write) `id`: `P_WRITE_ACK`/`P_NEG_ACK`. The request stays
    /// until its epoch is acknowledged.
    pub(crate) fn answered(&self, id: u64) -> Option<Answered> {
        let mut entries = self.entries.lock();
        let e = entries.get_mut(Self::index(id)?)?.as_mut()?;
        e.answered = true;
        let waiting = core::mem::replace(&mut e.holds_part, false).then(|| e.req.clone());
        Some(Answered {
            waiting,
            req: e.req.clone(),
        })
    }

    /// `P_BARRIER_ACK(barrier, set_size)`: checks it against the epochs sent and takes that
    /// epoch's requests out of the log, completing those still waiting for the peer.
    pub(crate) fn barrier_acked(&self, barrier: u32, set_size: u32) -> Result<(), EpochError> {
        let mut epochs = self.epochs.lock();
        epochs.acked(barrier, set_size)?;
        // Requests are completed (and released: the last reference may free a backing
        // device, which sleeps) outside the locks, a few at a time.
        loop {
            let mut batch: [Option<(Arc<SharedCompletion>, bool)>; 16] = Default::default();
            let mut full = false;
            {
                let mut entries = self.entries.lock();
                let mut n = 0;
                for i in 0..entries.slots.len() {
                    let ours = entries.slots[i]
                        .as_ref()
                        .is_some_and(|e| e.epoch == Some(barrier));
                    if ours {
                        if n == batch.len() {
                            full = true;
                            break;
                        }
                        if let Some(e) = entries.take(i) {
                            batch[n] = Some((e.req, e.holds_part));
                            n += 1;
                        }
                    }
                }
            }
            drop(epochs);
            for (req, waiting) in batch.iter().flatten() {
                if *waiting {
                    // Stable on the peer.
                    req.part_done(true);
                }
            }
            drop(batch);
            if !full {
                return Ok(());
            }
            epochs = self.epochs.lock();
        }
    }

    /// How long (ms, at `now`) the oldest request the peer has not answered has waited.
    pub(crate) fn oldest_unanswered_ms(&self, now: i64) -> Option<i64> {
        let entries = self.entries.lock();
        let oldest = entries
            .slots
            .iter()
            .flatten()
            .filter(|e| !e.answered)
            .map(|e| e.since_ms)
            .min()?;
        Some(now.saturating_sub(oldest))
    }

    /// The link is gone: every request in the log may be missing on the peer's disk. Marks
    /// each out of sync and completes those still waiting (the local write decides their
    /// result; the peer resyncs these blocks later). During a fencing freeze (`hold`) those
    /// are parked on the resource instead and complete at the thaw.
    pub(crate) fn fail_all(&self, hold: Option<&crate::resource::Resource>) {
        loop {
            let next = {
                let mut entries = self.entries.lock();
                let i = entries.slots.iter().position(Option::is_some);
                i.and_then(|i| entries.take(i))
            };
            let Some(e) = next else { break };
            e.req.mark_out_of_sync();
            // Only a request whose upper bio still waits for this peer is parked.
            let parked =
                e.holds_part && hold.is_some_and(|r| crate::admin::hold_for_fencing(r, &e.req));
            if e.holds_part && !parked {
                // The peer may not have it: only the local part can have stored it.
                e.req.part_done(false);
            }
        }
    }
}
