//! The sender of mirrored writes. A submitter starts the local part of a write and queues
//! the rest; the link's sender thread (`drbd_s_<resource>`) sends the queue in order, every
//! packet corked while more follow. Writes that pile up while the sender runs (or while it
//! waits to be scheduled) leave as one burst: the peer receives them in few segments,
//! submits them to its disk together and acknowledges them together, so both nodes take
//! fewer interrupts, wakeups and TCP acks per write. The same thread ends epochs once the
//! link goes quiet (`crate::barrier::close_idle_epoch`).

use crate::proto::wire::{self, DataHeader, Header};
use crate::replication::Link;
use crate::sys::bio::SharedCompletion;
use crate::sys::thread::KThread;
use kernel::prelude::*;
use kernel::sync::{Arc, CondVar, SpinLock};
use kernel::{new_condvar, new_spinlock};

/// Writes queued at most; a submitter finding the queue full waits for the sender.
const QUEUE_CAP: usize = 512;
/// How long the sender sleeps while an epoch with writes is open: then it ends the epoch if
/// the link went quiet (ms).
const IDLE_TICK_MS: u32 = 5;

/// A mirrored write waiting to be sent. Owns the submitter's part of the request: whoever
/// takes it from the queue ends that part ([`QueuedWrite::finish`]).
pub(crate) struct QueuedWrite {
    pub(crate) req: Arc<SharedCompletion>,
    /// Transfer-log id (0: untracked).
    pub(crate) block_id: u64,
    pub(crate) sector: u64,
    pub(crate) len: u32,
    pub(crate) volume: u16,
    pub(crate) dp_flags: u32,
    /// Protocols B and C: the upper bio also waits for the peer.
    pub(crate) wait_for_peer: bool,
}

impl QueuedWrite {
    /// Sends the write (a barrier first if its epoch needs one); the caller holds the data
    /// stream. `more`: another packet follows at once.
    fn send(&self, link: &Link, more: bool) -> Result {
        let plan = link.tl.open_write(self.block_id, link.max_epoch_size)?;
        if let Some(b) = plan.barrier {
            link.send_barrier_locked(b, true)?;
        }
        let dh = DataHeader {
            sector: self.sector,
            block_id: self.block_id,
            seq_num: link.next_seq(),
            dp_flags: self.dp_flags,
        };
        let mut hb = [0u8; DataHeader::SIZE];
        dh.encode(&mut hb).map_err(|_| EINVAL)?;
        let header = Header {
            kind: link.kind(),
            cmd: wire::P_DATA,
            length: DataHeader::SIZE as u32 + self.len,
            volume: self.volume,
        };
        let mut h = [0u8; 16];
        let n = header.encode(&mut h).map_err(|_| EINVAL)?;
        link.data.send_parts(&[&h[..n], &hb], true)?;
        self.req.send_payload(
            &link.data,
            self.wait_for_peer && self.block_id != 0,
            more || link.sender_waiting(),
        )
    }

    /// Ends the submitter's part after the sender thread sent the write or, with the link
    /// failing, did not: then the write stays in the transfer log, and the link's teardown
    /// (which waits for the sender first) fails or, under fencing, parks it with the rest.
    fn finish(self, sent: bool) {
        // Protocol A: handed to the network counts as stored on the peer.
        self.req.part_done(sent && !self.wait_for_peer);
    }

    /// Gives up a write that could not be sent from the submitter's context (the link is
    /// being torn down, maybe past its transfer log already): the peer resyncs these blocks,
    /// the local write decides the result.
    pub(crate) fn abandon(self, link: &Link) {
        self.req.mark_out_of_sync();
        if let Some((r, waiting)) = link.tl.remove(self.block_id) {
            if waiting {
                r.part_done(false);
            }
        }
        self.req.part_done(false);
    }
}

/// A ring of queued writes (`slots` has `QUEUE_CAP` entries, allocated up front).
struct Queue {
    slots: KVec<Option<QueuedWrite>>,
    head: usize,
    len: usize,
    /// The sender is gone (link down): nothing is queued any more.
    closed: bool,
    /// The sender sleeps without a timeout (no open epoch when it looked).
    untimed: bool,
}

impl Queue {
    fn pop(&mut self) -> Option<QueuedWrite> {
        if self.len == 0 {
            return None;
        }
        let w = self.slots.get_mut(self.head).and_then(Option::take);
        self.head = (self.head + 1) % QUEUE_CAP;
        self.len -= 1;
        w
    }
}

/// What the sender finds.
enum Next {
    Write(QueuedWrite),
    /// A tick passed without writes.
    Tick,
    /// Woken by [`SendQueue::epoch_opened`]: tick from now on.
    Poked,
    Closed,
}

/// The queue of a link's unsent mirrored writes.
///
/// Locking: `inner` is a spinlock taken by submitters (process context) and the sender,
/// never across a send or a sleep; `ready` wakes the sender, `room` wakes submitters waiting
/// for space. Lifetime: owned by the [`Link`]; the sender thread empties and closes it before
/// it exits, so nothing queued is left behind.
#[pin_data]
pub(crate) struct SendQueue {
    #[pin]
    inner: SpinLock<Queue>,
    #[pin]
    ready: CondVar,
    #[pin]
    room: CondVar,
}

impl SendQueue {
    pub(crate) fn new() -> Result<impl PinInit<Self, Error>> {
        let mut slots = KVec::with_capacity(QUEUE_CAP, GFP_KERNEL)?;
        for _ in 0..QUEUE_CAP {
            slots.push(None, GFP_KERNEL)?;
        }
        let q = Queue {
            slots,
            head: 0,
            len: 0,
            closed: false,
            untimed: false,
        };
        Ok(try_pin_init!(Self {
            inner <- new_spinlock!(q, "SendQueue::inner"),
            ready <- new_condvar!("SendQueue::ready"),
            room <- new_condvar!("SendQueue::room"),
        }))
    }

    /// Queues `w` for the sender (waits while the queue is full). Gives it back if the
    /// sender is gone.
    pub(crate) fn push(&self, w: QueuedWrite) -> Result<(), QueuedWrite> {
        let mut q = self.inner.lock();
        loop {
            if q.closed {
                return Err(w);
            }
            if q.len < QUEUE_CAP {
                break;
            }
            self.room.wait(&mut q);
        }
        let at = (q.head + q.len) % QUEUE_CAP;
        let Some(slot) = q.slots.get_mut(at) else {
            return Err(w);
        };
        *slot = Some(w);
        q.len += 1;
        let first = q.len == 1;
        drop(q);
        if first {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Nothing is queued.
    fn is_empty(&self) -> bool {
        self.inner.lock().len == 0
    }

    /// The next queued write, if any (never sleeps).
    fn try_pop(&self) -> Option<QueuedWrite> {
        self.pop_unlock(self.inner.lock())
    }

    /// Pops under `q`, then releases it and wakes submitters waiting for room.
    fn pop_unlock(
        &self,
        mut q: kernel::sync::lock::Guard<'_, Queue, kernel::sync::lock::spinlock::SpinLockBackend>,
    ) -> Option<QueuedWrite> {
        let w = q.pop();
        let was_full = w.is_some() && q.len + 1 == QUEUE_CAP;
        drop(q);
        if was_full {
            self.room.notify_all();
        }
        w
    }

    /// The next write; sleeps while there is none: at most one tick while `tl` has an open
    /// epoch with writes (and `ticking`), else until woken. The epoch is looked at under the
    /// queue lock, so a write sent past the queue meanwhile pokes this sleep.
    fn next(&self, tl: &crate::transfer_log::TransferLog, ticking: bool) -> Next {
        let mut q = self.inner.lock();
        let mut poked = false;
        if q.len == 0 && !q.closed {
            let idle_epoch = ticking && tl.open_epoch().1 > 0;
            if idle_epoch {
                let tick = kernel::time::msecs_to_jiffies(IDLE_TICK_MS);
                let _ = self.ready.wait_interruptible_timeout(&mut q, tick);
            } else {
                q.untimed = true;
                self.ready.wait(&mut q);
                // Cleared by the poke (or still set after a plain wakeup).
                poked = !core::mem::replace(&mut q.untimed, false);
            }
        }
        if q.closed {
            return Next::Closed;
        }
        if poked && q.len == 0 {
            return Next::Poked;
        }
        self.pop_unlock(q).map_or(Next::Tick, Next::Write)
    }

    /// A write was sent past the queue and may have opened an epoch: a sender sleeping
    /// without a timeout starts ticking, so the epoch ends once the link goes quiet.
    fn epoch_opened(&self) {
        let mut q = self.inner.lock();
        if core::mem::replace(&mut q.untimed, false) {
            drop(q);
            self.ready.notify_one();
        }
    }

    /// Stops accepting writes and wakes the sender so it exits.
    fn close(&self) {
        self.inner.lock().closed = true;
        self.ready.notify_all();
        self.room.notify_all();
    }

    /// Whatever is still queued after the close (the sender fails it).
    fn pop_closed(&self) -> Option<QueuedWrite> {
        self.inner.lock().pop()
    }
}

/// The sender thread of a link; closes the queue and waits for the thread when dropped.
pub(crate) struct Sender {
    link: Arc<Link>,
    thread: Option<KThread>,
}

impl Sender {
    pub(crate) fn start(
        conn: &Arc<crate::connection::Connection>,
        link: &Arc<Link>,
    ) -> Result<Self> {
        let (c, l) = (conn.clone(), link.clone());
        let name =
            kernel::str::CString::try_from_fmt(kernel::fmt!("drbd_s_{}", conn.resource.name))?;
        let thread = KThread::spawn(&name, move || run(&c, &l))?;
        Ok(Self {
            link: link.clone(),
            thread: Some(thread),
        })
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.link.queue.close();
        drop(self.thread.take());
    }
}

/// Sends `w` from the submitter's context if nothing is queued before it (else queues it):
/// for a write that has no burst to join, a wakeup of the sender costs more than it saves.
pub(crate) fn send_now(resource: &crate::name::Name, link: &Link, w: QueuedWrite) {
    let guard = link.lock_data();
    if !link.queue.is_empty() {
        drop(guard);
        if let Err(w) = link.queue.push(w) {
            w.abandon(link);
        }
        return;
    }
    let sent = w.send(link, false).is_ok();
    drop(guard);
    link.queue.epoch_opened();
    if sent {
        w.finish(true);
    } else {
        link.data.shutdown();
        pr_warn!("{}: sending a write failed, connection lost\n", resource);
        w.abandon(link);
    }
}

/// Sends queued writes until the queue closes, then fails what is left. After a failed
/// send (the link is going down) writes are only failed.
fn run(conn: &crate::connection::Connection, link: &Link) {
    let mut broken = false;
    let mut last_open = (0, 0);
    loop {
        let mut w = match link.queue.next(&link.tl, !broken) {
            Next::Write(w) => w,
            Next::Closed => break,
            Next::Poked => continue,
            Next::Tick => {
                // The link went quiet for a tick: end the open epoch once it is due.
                if !broken && crate::barrier::close_idle_epoch(link, &mut last_open).is_err() {
                    broken = true;
                    link.data.shutdown();
                }
                continue;
            }
        };
        let guard = link.lock_data();
        loop {
            let next = link.queue.try_pop();
            // Corked while another write follows at once.
            let sent = !broken && w.send(link, next.is_some()).is_ok();
            if !sent && !broken {
                broken = true;
                link.data.shutdown();
                pr_warn!(
                    "{}: sending a write failed, connection lost\n",
                    conn.resource.name
                );
            }
            w.finish(sent);
            match next {
                Some(n) => w = n,
                None => break,
            }
        }
        drop(guard);
    }
    while let Some(w) = link.queue.pop_closed() {
        w.finish(false);
    }
}
