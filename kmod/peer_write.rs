//! Writes received from a peer (`P_DATA`, `P_RS_DATA_REPLY`), applied without waiting for the
//! disk: the receiver submits each write and reads on, and a per-link ack thread sends the
//! acknowledgement (`P_WRITE_ACK`, `P_RS_WRITE_ACK`, `P_NEG_ACK`) once the write is on disk.
//! So the peer's disk works on many writes at once, as the Primary's does.
//!
//! Ordering rules kept from the synchronous receiver:
//! - a write overlapping one in flight waits for it (the disk may reorder concurrent bios);
//! - a write asking for a cache flush (`DP_FLUSH`) waits until every earlier write finished,
//!   so the flush covers them;
//! - any other packet (state, sizes, UUIDs, out-of-sync runs) is handled only after every
//!   earlier write finished ([`PeerWrites::drain`]), so state changes follow the data;
//! - epochs (`proto::epoch`): a `P_BARRIER` ends the open epoch; once all of an epoch's
//!   writes finished, the ack thread flushes the disks (`disk-flushes`) and sends
//!   `P_BARRIER_ACK`. A write the Primary completed without waiting for our disk (protocols
//!   A and B, no `DP_SEND_WRITE_ACK`) waits until every earlier epoch is acknowledged, so it
//!   can never reach the disk before a write it may depend on. Under protocol C the Primary
//!   completes nothing before our disk did, so its writes need not wait.

use crate::connection::Connection;
use crate::new_irq_spinlock;
use crate::proto::epoch::{Receiver, ReceiverAction, UNACKED_EPOCHS};
use crate::proto::wire;
use crate::replication::Link;
use crate::sys::bdev::BlockDev;
use crate::sys::irqlock::IrqSpinLock;
use crate::sys::peer_bio::{PageBuf, WriteDone, WriteFlags};
use crate::sys::thread::{should_stop, KThread};
use kernel::new_condvar;
use kernel::prelude::*;
use kernel::sync::{Arc, CondVar};

/// Peer writes in flight per connection.
const MAX_IN_FLIGHT: usize = 64;
/// Bytes of peer writes in flight per connection (DRBD's default max-buffers: 2048 pages).
const MAX_IN_FLIGHT_BYTES: usize = 2048 * 4096;

/// The acknowledgement a finished peer write owes the sender.
#[derive(Clone, Copy)]
pub(crate) struct AckPlan {
    /// Packet on success (`None`: the sender asked for no ack).
    pub(crate) on_ok: Option<u16>,
    /// Packet on failure.
    pub(crate) on_fail: Option<u16>,
    pub(crate) volume: u16,
    pub(crate) sector: u64,
    pub(crate) block_id: u64,
    pub(crate) seq_num: u32,
    pub(crate) size: u32,
    /// Resync data: counts towards the resync progress.
    pub(crate) resync: bool,
}

/// How a write is ordered against the epochs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum EpochOrder {
    /// Resync data: outside the epochs.
    None,
    /// A mirrored write the Primary completes only after our disk did (protocol C).
    Member,
    /// A mirrored write the Primary may have completed already (A, B): it waits until every
    /// earlier epoch is acknowledged.
    AfterEarlierEpochs,
}

/// One entry of the in-flight table.
struct Slot {
    busy: bool,
    sector: u64,
    end: u64,
    bytes: usize,
    plan: Option<AckPlan>,
    /// The epoch (local number) of a mirrored write.
    epoch: Option<u64>,
    /// Set by the completion: the write's result.
    result: Option<bool>,
    /// Handed back by the completion, dropped by the ack thread (process context).
    buf: Option<PageBuf>,
    lower: Option<Arc<BlockDev>>,
}

impl Slot {
    const FREE: Slot = Slot {
        busy: false,
        sector: 0,
        end: 0,
        bytes: 0,
        plan: None,
        epoch: None,
        result: None,
        buf: None,
        lower: None,
    };
}

struct Inner {
    slots: KVec<Slot>,
    busy: usize,
    bytes: usize,
    /// The ack thread ends once nothing is busy any more.
    stopping: bool,
    /// Epochs of the mirrored writes.
    epochs: Receiver<UNACKED_EPOCHS>,
    /// Flush bios in flight (their completion ends the epochs' flush).
    flushes: usize,
}

impl Inner {
    fn overlaps(&self, sector: u64, end: u64) -> bool {
        self.slots
            .iter()
            .any(|s| s.busy && s.sector < end && sector < s.end)
    }
}

/// The peer writes of one link in flight.
///
/// Locking: `inner` is an irq-saving spinlock (completions run in any context), never held
/// across I/O, sends or sleeps; `changed` wakes the receiver (room, overlap gone, drained) and
/// the ack thread (a write finished, stop). Lifetime: created by the receiver for one link;
/// every bio in flight holds a reference through its [`SlotRef`]; the receiver drains all of
/// them and stops the ack thread before it returns.
#[pin_data]
pub(crate) struct PeerWrites {
    #[pin]
    inner: IrqSpinLock<Inner>,
    #[pin]
    changed: CondVar,
}

/// Identifies the slot of a write in flight; the bio's completion context.
pub(crate) struct SlotRef {
    writes: Arc<PeerWrites>,
    index: usize,
}

impl WriteDone for SlotRef {
    fn done(self, buf: PageBuf, lower: Arc<BlockDev>, ok: bool) {
        let mut inner = self.writes.inner.lock();
        if let Some(slot) = inner.slots.get_mut(self.index) {
            slot.result = Some(ok);
            slot.buf = Some(buf);
            slot.lower = Some(lower);
        }
        drop(inner);
        self.writes.changed.notify_all();
        // `self.writes` is not the last reference: the receiver holds one until drained.
    }
}

impl PeerWrites {
    /// An empty table.
    pub(crate) fn new() -> Result<Arc<Self>> {
        let mut slots = KVec::with_capacity(MAX_IN_FLIGHT, GFP_KERNEL)?;
        for _ in 0..MAX_IN_FLIGHT {
            slots.push(Slot::FREE, GFP_KERNEL)?;
        }
        Arc::pin_init(
            pin_init!(Self {
                inner <- new_irq_spinlock!(
                    Inner {
                        slots,
                        busy: 0,
                        bytes: 0,
                        stopping: false,
                        epochs: Receiver::new(),
                        flushes: 0,
                    },
                    "PeerWrites::inner"
                ),
                changed <- new_condvar!("PeerWrites::changed"),
            }),
            GFP_KERNEL,
        )
    }

    /// Waits for room and for earlier overlapping writes (all earlier writes if `flush`, all
    /// earlier epochs per `order`), then claims a slot for `bytes` at `sector`. `None` when
    /// the link is being torn down.
    pub(crate) fn reserve(
        self: &Arc<Self>,
        plan: AckPlan,
        flush: bool,
        order: EpochOrder,
    ) -> Option<SlotRef> {
        let (sector, bytes) = (plan.sector, plan.size as usize);
        let end = sector.checked_add((bytes / 512) as u64)?;
        let mut inner = self.inner.lock();
        loop {
            if inner.stopping || should_stop() {
                return None;
            }
            let room = inner.busy < MAX_IN_FLIGHT
                && (inner.busy == 0 || inner.bytes + bytes <= MAX_IN_FLIGHT_BYTES);
            let ordered = if flush {
                inner.busy == 0
            } else {
                !inner.overlaps(sector, end)
            } && (order != EpochOrder::AfterEarlierEpochs
                || inner.epochs.all_acked());
            if room && ordered {
                break;
            }
            self.changed.wait(&mut inner);
        }
        let index = inner.slots.iter().position(|s| !s.busy)?;
        inner.busy += 1;
        inner.bytes += bytes;
        let epoch = (order != EpochOrder::None).then(|| inner.epochs.on_write());
        if let Some(slot) = inner.slots.get_mut(index) {
            *slot = Slot {
                busy: true,
                sector,
                end,
                bytes,
                plan: Some(plan),
                epoch,
                ..Slot::FREE
            };
        }
        Some(SlotRef {
            writes: self.clone(),
            index,
        })
    }

    /// Submits the write of `buf` at `sector` for a reserved slot; a write that cannot be
    /// submitted completes at once as failed (the peer gets a negative ack).
    pub(crate) fn submit(
        &self,
        slot: SlotRef,
        sector: u64,
        lower: Arc<BlockDev>,
        buf: PageBuf,
        flags: WriteFlags,
    ) {
        if let Err((slot, buf, lower)) =
            crate::sys::peer_bio::submit_write(lower, sector, buf, flags, slot)
        {
            slot.done(buf, lower, false);
        }
    }

    /// Gives a reserved slot back unused (its payload could not be received).
    pub(crate) fn release(&self, slot: SlotRef) {
        let mut inner = self.inner.lock();
        Self::free(&mut inner, slot.index);
        drop(inner);
        self.changed.notify_all();
    }

    /// `P_BARRIER(barrier)`: ends the open epoch (waits while too many are unacknowledged).
    /// `None` when the link is being torn down.
    pub(crate) fn barrier(&self, barrier: u32) -> Option<()> {
        let mut inner = self.inner.lock();
        while !inner.epochs.has_room() {
            if inner.stopping || should_stop() {
                return None;
            }
            self.changed.wait(&mut inner);
        }
        inner.epochs.on_barrier(barrier).ok()?;
        drop(inner);
        self.changed.notify_all();
        Some(())
    }

    /// One flush bio finished; the last one ends the epochs' flush.
    fn flush_finished(&self) {
        let mut inner = self.inner.lock();
        inner.flushes = inner.flushes.saturating_sub(1);
        if inner.flushes == 0 {
            inner.epochs.flush_done();
        }
        drop(inner);
        self.changed.notify_all();
    }

    fn free(inner: &mut Inner, index: usize) -> (Option<PageBuf>, Option<Arc<BlockDev>>) {
        let Some(slot) = inner.slots.get_mut(index) else {
            return (None, None);
        };
        if !slot.busy {
            return (None, None);
        }
        let bytes = slot.bytes;
        let old = core::mem::replace(slot, Slot::FREE);
        inner.busy -= 1;
        inner.bytes -= bytes;
        if let Some(epoch) = old.epoch {
            inner.epochs.write_done(epoch);
        }
        (old.buf, old.lower)
    }

    /// Waits until every write submitted so far finished and was acknowledged.
    pub(crate) fn drain(&self) {
        let mut inner = self.inner.lock();
        while inner.busy > 0 {
            self.changed.wait(&mut inner);
        }
    }

    /// Ends the ack thread once everything in flight is finished (the receiver drains first).
    fn stop(&self) {
        self.inner.lock().stopping = true;
        self.changed.notify_all();
    }

    /// Waits for the ack thread's next job: a finished write (its slot is freed; with its
    /// ack plan, result, and whether another finished write already waits, so the acks can
    /// share a TCP segment), a flush of the disks, or a barrier ack, in that order of
    /// preference. `None` once stopping and idle. Buffer and device reference of a write are
    /// released here, outside the lock (process context).
    fn next_work(&self) -> Option<Work> {
        let mut inner = self.inner.lock();
        let index = loop {
            if let Some(i) = inner
                .slots
                .iter()
                .position(|s| s.busy && s.result.is_some())
            {
                break i;
            }
            match inner.epochs.next(true) {
                Some(ReceiverAction::Flush) => {
                    // Counted before the bios exist: their completions may run at once.
                    inner.flushes = usize::MAX;
                    return Some(Work::Flush);
                }
                Some(ReceiverAction::Ack { barrier, set_size }) => {
                    // The receiver may wait for this epoch to go (ordering, room).
                    drop(inner);
                    self.changed.notify_all();
                    return Some(Work::BarrierAck { barrier, set_size });
                }
                None => {}
            }
            if inner.stopping && inner.busy == 0 && inner.flushes == 0 {
                return None;
            }
            self.changed.wait(&mut inner);
        };
        let finished = inner
            .slots
            .get(index)
            .and_then(|s| Some((s.plan?, s.result?)));
        let released = Self::free(&mut inner, index);
        let more = inner.slots.iter().any(|s| s.busy && s.result.is_some());
        drop(inner);
        self.changed.notify_all();
        drop(released);
        finished.map(|(plan, ok)| Work::Ack(plan, ok, more))
    }

    /// The ack thread is about to submit `n` flush bios (0: no disk needs one).
    fn flushes_started(&self, n: usize) {
        let mut inner = self.inner.lock();
        inner.flushes = n;
        if n == 0 {
            inner.epochs.flush_done();
        }
        drop(inner);
        self.changed.notify_all();
    }
}

/// A job of the ack thread.
enum Work {
    /// Acknowledge a finished write: plan, result, another ack follows at once.
    Ack(AckPlan, bool, bool),
    /// Flush the disks: every epoch up to the oldest unfinished one is written.
    Flush,
    /// Send `P_BARRIER_ACK`.
    BarrierAck { barrier: u32, set_size: u32 },
}

/// Completion context of one flush bio.
struct FlushRef {
    writes: Arc<PeerWrites>,
}

impl WriteDone for FlushRef {
    fn done(self, _buf: PageBuf, _lower: Arc<BlockDev>, ok: bool) {
        if !ok {
            pr_warn!("local disk flush failed\n");
        }
        // `_lower` is not the last reference: the ack thread keeps one until the flush ends.
        self.writes.flush_finished();
    }
}

/// The backing devices of `conn`'s volumes whose `disk-flushes` is on.
fn flush_targets(conn: &Connection) -> KVec<Arc<BlockDev>> {
    let mut out = KVec::new();
    let devices: KVec<Arc<crate::device::Device>> = {
        let rs = conn.resource.state.lock();
        let mut v = KVec::new();
        for d in rs.devices() {
            if v.push(d.clone(), GFP_KERNEL).is_err() {
                break;
            }
        }
        v
    };
    for dev in devices.iter() {
        let st = dev.state.lock();
        if let Some(b) = st.backing.as_ref() {
            if b.flushes_enabled() && out.push(b.data.clone(), GFP_KERNEL).is_err() {
                break;
            }
        }
    }
    out
}

/// Flushes `targets` without waiting; [`PeerWrites::flush_finished`] runs per bio.
fn submit_flushes(writes: &Arc<PeerWrites>, targets: &[Arc<BlockDev>]) {
    writes.flushes_started(targets.len());
    for lower in targets {
        let ctx = FlushRef {
            writes: writes.clone(),
        };
        if let Err((ctx, _, _)) = crate::sys::peer_bio::submit_flush(lower.clone(), ctx) {
            ctx.writes.flush_finished();
        }
    }
}

/// Sends the acks of finished peer writes, flushes finished epochs and acknowledges them,
/// until the receiver stops it.
fn ack_loop(conn: &Connection, link: &Link, writes: &Arc<PeerWrites>) {
    // The devices being flushed: kept referenced until the flush ends.
    let mut flushing: KVec<Arc<BlockDev>> = KVec::new();
    while let Some(work) = writes.next_work() {
        let (plan, ok, more) = match work {
            Work::Ack(plan, ok, more) => (plan, ok, more),
            Work::Flush => {
                drop(core::mem::take(&mut flushing));
                flushing = flush_targets(conn);
                submit_flushes(writes, &flushing);
                continue;
            }
            Work::BarrierAck { barrier, set_size } => {
                if let Some(b) = crate::barrier::encode_ack(barrier, set_size) {
                    // A failed send means the link is going down.
                    let _ = link.send_meta(wire::P_BARRIER_ACK, 0, &b);
                }
                continue;
            }
        };
        let cmd = if ok { plan.on_ok } else { plan.on_fail };
        if let Some(cmd) = cmd {
            // A failed send means the link is going down; the slot is freed anyway.
            let _ = crate::replication::send_block_ack(link, cmd, &plan, more);
        }
        if !ok {
            pr_err!(
                "{}/{}: local write failed at sector {}\n",
                conn.resource.name,
                plan.volume,
                plan.sector
            );
        }
        if plan.resync && ok {
            conn.add_synced(u32::from(plan.volume), u64::from(plan.size / 512));
        }
    }
}

/// The in-flight table of a link and its ack thread; drains and stops both when dropped.
pub(crate) struct PeerWriter {
    pub(crate) writes: Arc<PeerWrites>,
    thread: Option<KThread>,
}

impl PeerWriter {
    /// Starts the ack thread of `link`.
    pub(crate) fn start(conn: &Arc<Connection>, link: &Arc<Link>) -> Result<Self> {
        let writes = PeerWrites::new()?;
        let (c, l, w) = (conn.clone(), link.clone(), writes.clone());
        let name =
            kernel::str::CString::try_from_fmt(kernel::fmt!("drbd_a_{}", conn.resource.name))?;
        let thread = KThread::spawn(&name, move || ack_loop(&c, &l, &w))?;
        Ok(Self {
            writes,
            thread: Some(thread),
        })
    }
}

impl Drop for PeerWriter {
    fn drop(&mut self) {
        self.writes.drain();
        self.writes.stop();
        if let Some(t) = self.thread.take() {
            t.stop();
        }
    }
}
