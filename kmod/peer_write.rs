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
//!   earlier write finished ([`PeerWrites::drain`]), so state changes follow the data.

use crate::connection::Connection;
use crate::new_irq_spinlock;
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

/// One entry of the in-flight table.
struct Slot {
    busy: bool,
    sector: u64,
    end: u64,
    bytes: usize,
    plan: Option<AckPlan>,
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
                    Inner { slots, busy: 0, bytes: 0, stopping: false },
                    "PeerWrites::inner"
                ),
                changed <- new_condvar!("PeerWrites::changed"),
            }),
            GFP_KERNEL,
        )
    }

    /// Waits for room and for earlier overlapping writes (all earlier writes if `flush`), then
    /// claims a slot for `bytes` at `sector`. `None` when the link is being torn down.
    pub(crate) fn reserve(self: &Arc<Self>, plan: AckPlan, flush: bool) -> Option<SlotRef> {
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
            };
            if room && ordered {
                break;
            }
            self.changed.wait(&mut inner);
        }
        let index = inner.slots.iter().position(|s| !s.busy)?;
        inner.busy += 1;
        inner.bytes += bytes;
        if let Some(slot) = inner.slots.get_mut(index) {
            *slot = Slot {
                busy: true,
                sector,
                end,
                bytes,
                plan: Some(plan),
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

    /// Waits for a finished write and frees its slot, returning its ack plan, its result and
    /// whether another finished write is already waiting (its ack can share a TCP segment);
    /// `None` once stopping and idle. Buffer and device reference are released here, outside
    /// the lock (process context).
    fn next_finished(&self) -> Option<(AckPlan, bool, bool)> {
        let mut inner = self.inner.lock();
        let index = loop {
            if let Some(i) = inner
                .slots
                .iter()
                .position(|s| s.busy && s.result.is_some())
            {
                break i;
            }
            if inner.stopping && inner.busy == 0 {
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
        finished.map(|(plan, ok)| (plan, ok, more))
    }
}

/// Sends the acks of finished peer writes until the receiver stops it.
fn ack_loop(conn: &Connection, link: &Link, writes: &PeerWrites) {
    while let Some((plan, ok, more)) = writes.next_finished() {
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
