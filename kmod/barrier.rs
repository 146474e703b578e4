//! Barriers on the Primary's side: ending epochs (`P_BARRIER`) when the link goes idle and
//! on empty flushes, and the peer's `P_BARRIER_ACK`. The epoch rules are in
//! `proto::epoch`; the transfer log they release is `crate::transfer_log`.

use crate::connection::Connection;
use crate::device::Device;
use crate::proto::epoch::EpochError;
use crate::proto::wire::{self, BarrierAck};
use crate::replication::Link;
use crate::sys::bdev::BlockDev;
use crate::sys::bio::UpperBio;
use kernel::prelude::*;
use kernel::sync::Arc;

/// Ends the open epoch once the link has gone quiet, so the peer acknowledges the last
/// writes (and the transfer log releases them) without waiting for the next write. Called by
/// the sender (`crate::sender`) after a tick without writes: the epoch ends if one of its
/// writes completed upward or it did not grow since the last tick (`last`). `Err`: the
/// barrier could not be sent (the link is failing).
pub(crate) fn close_idle_epoch(link: &Link, last: &mut (u32, u32)) -> Result {
    let open = link.tl.open_epoch();
    if open.1 == 0 {
        return Ok(());
    }
    let completed = link.tl.clock.completed() == Some(open.0);
    if !completed && open != *last {
        *last = open;
        return Ok(());
    }
    let _guard = link.lock_data();
    match link.tl.close(None) {
        Ok((Some(b), _)) => link.send_barrier_locked(b, false),
        Ok((None, _)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// An empty flush (`PREFLUSH` without data) on a Primary that mirrors to `link`: flushes
/// the local disk and ends the open epoch, and completes only once the peer acknowledged
/// every epoch sent so far, i.e. once the peer has all completed writes stable too.
/// Without a local disk (`lower` `None`) the peer alone flushes. The flush succeeds if the
/// local disk or the peer flushed.
pub(crate) fn mirror_flush(
    dev: &Arc<Device>,
    bio: UpperBio,
    lower: Option<&BlockDev>,
    link: &Link,
) {
    // Parts: the local flush, the peer's barrier ack, and this submitter.
    let Some((req, id)) =
        crate::replication::start_split(dev, bio, lower.is_some(), true, link, None, None)
    else {
        return;
    };
    if let Some(lower) = lower {
        req.submit_local(lower);
    }
    if id == 0 {
        // No memory to wait for the peer: the local flush decides.
        req.part_done(false);
        req.part_done(false);
        return;
    }
    let outcome = {
        let _guard = link.lock_data();
        link.tl.close(Some(id)).and_then(|(barrier, wait)| {
            if let Some(b) = barrier {
                link.send_barrier_locked(b, false)?;
            }
            Ok(wait)
        })
    };
    match outcome {
        Ok(true) => {}
        Ok(false) => {
            // Nothing unacknowledged: the peer has every completed write stable already.
            if let Some((r, true)) = link.tl.remove(id) {
                r.part_done(true);
            }
        }
        Err(_) => {
            // The link fails; tearing it down completes the flush (`fail_all`).
            link.data.shutdown();
        }
    }
    req.part_done(false);
}

/// `P_BARRIER_ACK` on the meta stream; `false` = protocol violation (the link is dropped).
pub(crate) fn on_barrier_ack(conn: &Connection, link: &Link, payload: &[u8]) -> bool {
    let Ok(ack) = BarrierAck::decode(payload) else {
        return false;
    };
    match link.tl.barrier_acked(ack.barrier, ack.set_size) {
        Ok(()) => true,
        Err(EpochError::WrongSetSize { sent, .. }) => {
            pr_err!(
                "{}: barrier ack #{} counts {} writes, {} were sent in that epoch\n",
                conn.resource.name,
                ack.barrier,
                ack.set_size,
                sent
            );
            false
        }
        Err(EpochError::UnexpectedAck { expected, .. }) => {
            pr_err!(
                "{}: barrier ack #{} received, expected {}\n",
                conn.resource.name,
                ack.barrier,
                ExpectedBarrier(expected)
            );
            false
        }
        Err(EpochError::Full) => false,
    }
}

/// Formats the barrier an ack should have named.
struct ExpectedBarrier(Option<u32>);

impl core::fmt::Display for ExpectedBarrier {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(nr) => write!(f, "#{nr}"),
            None => f.write_str("none"),
        }
    }
}

/// The resource's write-ordering method: the weakest one its attached disks allow (flush
/// while none is attached). The caller holds `Resource::state`.
pub(crate) fn write_ordering(rs: &crate::resource::ResourceState) -> u32 {
    rs.devices()
        .filter_map(|d| d.state.lock().backing.as_ref().map(|b| b.write_ordering()))
        .min()
        .unwrap_or(2)
}

/// Logs the resource's write-ordering method (after attach and disk-options).
pub(crate) fn log_write_ordering(resource: &crate::resource::Resource) {
    let method = write_ordering(&resource.state.lock());
    pr_info!(
        "{}: Method to ensure write ordering: {}\n",
        resource.name,
        crate::backing::write_ordering_name(method)
    );
}

/// Encodes a barrier ack (the peer's side sends it).
pub(crate) fn encode_ack(barrier: u32, set_size: u32) -> Option<[u8; BarrierAck::SIZE]> {
    let mut b = [0u8; BarrierAck::SIZE];
    BarrierAck { barrier, set_size }.encode(&mut b).ok()?;
    Some(b)
}

/// Decodes a `P_BARRIER` payload.
pub(crate) fn decode_barrier(payload: &[u8]) -> Option<u32> {
    wire::Barrier::decode(payload).ok().map(|b| b.barrier)
}
