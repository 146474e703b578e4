//! Local disk I/O errors (`on-io-error`): bio completions record what failed in the device's
//! [`ErrorQueue`] (irq-safe, never sleeps) and wake its worker thread (`drbd_w_<minor>`),
//! which applies the policy `proto::io_error` picks: mark the failed write's blocks out of
//! sync, retry failed reads on a peer, make the disk Inconsistent (`pass_on`), or detach it
//! (Failed, then Diskless) and run the `local-io-error` handler (`call-local-io-error`).
//!
//! The worker is started at the first attach and stopped when the minor is removed; it takes
//! only `Resource::state` and `Device::state` (via the detach), never the registry.

use crate::device::Device;
use crate::proto::io_error::{self, ErrorKind, Policy, ReadSource};
use crate::spec::generated::{disk_conf, DiskState};
use crate::sys::bio::{BioList, UpperBio, STATUS_IOERR};
use crate::sys::thread::KThread;
use kernel::prelude::*;
use kernel::sync::Arc;

/// Failed writes remembered between two runs of the worker; more mark the whole device.
const MAX_RANGES: usize = 32;

/// What bio completions report to the worker.
///
/// Locking: lives in `Device::errors` (an irq-saving spinlock: completions run in any
/// context); the worker swaps it out and works on its copy with no lock held.
pub(crate) struct ErrorQueue {
    /// Failed writes (sector, bytes).
    writes: [(u64, u32); MAX_RANGES],
    nwrites: usize,
    /// More writes failed than fit: every block is suspect.
    overflow: bool,
    /// A read failed.
    read_failed: bool,
    /// Meta-data I/O failed (activity log, bitmap, superblock).
    meta_failed: bool,
    /// Reads that failed locally, to be retried on a peer.
    retry: BioList,
}

impl ErrorQueue {
    /// Nothing reported.
    pub(crate) const fn new() -> Self {
        Self {
            writes: [(0, 0); MAX_RANGES],
            nwrites: 0,
            overflow: false,
            read_failed: false,
            meta_failed: false,
            retry: BioList::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.nwrites == 0
            && !self.overflow
            && !self.read_failed
            && !self.meta_failed
            && self.retry.len() == 0
    }
}

impl Device {
    /// A local write of `len` bytes at `sector` failed (any context).
    pub(crate) fn local_write_failed(&self, sector: u64, len: u32) {
        {
            let mut q = self.errors.lock();
            if q.nwrites < MAX_RANGES {
                let n = q.nwrites;
                q.writes[n] = (sector, len);
                q.nwrites += 1;
            } else {
                q.overflow = true;
            }
        }
        self.errors_cv.notify_all();
    }

    /// A local read failed (any context): `bio` waits for the worker, which retries it on a
    /// peer or fails it.
    pub(crate) fn local_read_failed(&self, bio: UpperBio) {
        {
            let mut q = self.errors.lock();
            q.read_failed = true;
            q.retry.push(bio);
        }
        self.errors_cv.notify_all();
    }

    /// A read this node did for a peer (`P_DATA_REQUEST`) failed (process context).
    pub(crate) fn local_read_error_for_peer(&self, sector: u64, len: u32) {
        pr_warn!(
            "{}/{} drbd{}: local READ IO error sector {}+{} (for a peer)\n",
            self.resource.name,
            self.volume,
            self.minor,
            sector,
            len / 512
        );
        self.errors.lock().read_failed = true;
        self.errors_cv.notify_all();
    }

    /// Meta-data I/O failed (any context): always detaches.
    pub(crate) fn meta_io_failed(&self) {
        self.errors.lock().meta_failed = true;
        self.errors_cv.notify_all();
    }

    /// Starts the worker if it does not run yet (attach; process context, no lock held).
    pub(crate) fn start_worker(self: &Arc<Self>) -> Result {
        let mut st = self.state.lock();
        if st.worker.is_some() {
            return Ok(());
        }
        let name = kernel::str::CString::try_from_fmt(kernel::fmt!("drbd_w_{}", self.minor))?;
        let dev = self.clone();
        st.worker = Some(KThread::spawn(&name, move || run(&dev))?);
        Ok(())
    }

    /// Stops the worker (minor removal; no lock held). Reads still waiting fail.
    pub(crate) fn stop_worker(&self) {
        let worker = self.state.lock().worker.take();
        if let Some(w) = worker {
            self.errors_cv.notify_all();
            w.stop();
        }
        let left = core::mem::replace(&mut *self.errors.lock(), ErrorQueue::new());
        drop(left);
    }
}

/// The worker: waits for reports and handles them, until stopped.
fn run(dev: &Arc<Device>) {
    loop {
        let work = {
            let mut q = dev.errors.lock();
            loop {
                if crate::sys::thread::should_stop() {
                    return;
                }
                if !q.is_empty() {
                    break core::mem::replace(&mut *q, ErrorQueue::new());
                }
                let _ = dev
                    .errors_cv
                    .wait_interruptible_timeout(&mut q, kernel::time::msecs_to_jiffies(1000));
            }
        };
        handle(dev, work);
    }
}

/// The configured policy and the current disk state.
fn policy_and_disk(dev: &Device) -> (Policy, DiskState) {
    let st = dev.state.lock();
    let raw = st
        .backing
        .as_ref()
        .and_then(|b| b.disk_conf.u32(disk_conf::ON_IO_ERROR));
    (Policy::from_raw(raw), st.disk_state)
}

fn handle(dev: &Arc<Device>, mut work: ErrorQueue) {
    let name = &dev.resource.name;
    let backing = {
        let st = dev.state.lock();
        st.backing.as_ref().map(|b| b.data.clone())
    };
    let path = backing.as_ref().map_or("?", |b| b.path());
    for &(sector, len) in work.writes.get(..work.nwrites).unwrap_or(&[]) {
        pr_warn!(
            "{}/{} drbd{}: local WRITE IO error sector {}+{} on {}\n",
            name,
            dev.volume,
            dev.minor,
            sector,
            len / 512,
            path
        );
        // The local copy of these blocks is stale now: out of sync between us and the peers.
        dev.oos.lock().mark(sector, u64::from(len));
    }
    if work.overflow {
        dev.oos.lock().mark_all();
    }
    // Failed reads go to a peer now (prefer-local, fall back on error); never locally again.
    let mut retried = 0u32;
    while let Some(bio) = work.retry.pop() {
        if retried < 4 {
            pr_warn!(
                "{}/{} drbd{}: local READ IO error sector {}+{} on {}\n",
                name,
                dev.volume,
                dev.minor,
                bio.sector(),
                bio.size() / 512,
                path
            );
        }
        retried += 1;
        let peer = crate::remote_read::peer_has_data(dev);
        match io_error::retry_read(peer) {
            ReadSource::Peer => crate::remote_read::submit(dev, bio),
            _ => bio.end(STATUS_IOERR),
        }
    }
    let kinds = [
        (work.nwrites > 0 || work.overflow, ErrorKind::Write),
        (work.read_failed, ErrorKind::Read),
        (work.meta_failed, ErrorKind::Meta),
    ];
    for (happened, kind) in kinds {
        if !happened {
            continue;
        }
        let (policy, disk) = policy_and_disk(dev);
        let r = io_error::respond(policy, kind, disk.into_proto());
        if r.to_inconsistent {
            pr_err!(
                "{}/{} drbd{}: Local IO failed in {}.\n",
                name,
                dev.volume,
                dev.minor,
                where_(kind)
            );
            crate::config::mark_inconsistent(dev);
        }
        if r.detach {
            pr_err!(
                "{}/{} drbd{}: Local IO failed in {}. Detaching...\n",
                name,
                dev.volume,
                dev.minor,
                where_(kind)
            );
            crate::config::detach_failed(dev, r.call_helper);
        }
    }
}

/// DRBD names the function that saw the error.
fn where_(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Read | ErrorKind::Write => "__req_mod",
        ErrorKind::Meta => "drbd_md_endio",
    }
}

/// The genl disk state as `proto`'s (same numbers).
pub(crate) trait IntoProto {
    /// Converts.
    fn into_proto(self) -> crate::proto::state::DiskState;
}

impl IntoProto for DiskState {
    fn into_proto(self) -> crate::proto::state::DiskState {
        crate::proto::state::DiskState::from_u32(self as u32)
            .unwrap_or(crate::proto::state::DiskState::DUnknown)
    }
}
