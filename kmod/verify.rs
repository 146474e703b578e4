//! Online verify (`drbdsetup verify`, DRBD_ADM_START_OV) over an established link, with
//! DRBD 9's packets (`proto::verify`): the source (`VerifyS`) sends `P_OV_REQUEST` per 4 KiB
//! block from its `drbd_s_<res>` thread; the target (`VerifyT`) hashes its block in the
//! receiver and answers `P_OV_REPLY`; the source's receiver hashes its own block, marks a
//! difference out of sync and sends `P_OV_RESULT` on the meta stream. Blocks found different
//! are only marked (both sides), as DRBD: the next resync (e.g. after disconnect/connect of
//! a Primary, which starts a new data generation) repairs exactly them.
//!
//! `verify-alg` must be equal on both sides: it travels in `P_SYNC_PARAM89` when the link
//! comes up, and a mismatch drops the connection (StandAlone) as with DRBD.
//!
//! A device in use: both sides hash a block only once it is quiet ([`quiet_lock`]: no local
//! write to it in flight, none the peer has not acknowledged), so both digests include every
//! write older than the request. A write noted after the source registered its request (its
//! own, or the peer's applied here) makes the comparison inconclusive
//! (`proto::verify_window`): the block is asked again rather than reported different.
//!
//! Not covered: `--stop` is not sent to the target, whose progress is reckoned to the end of
//! the device (as DRBD's).

use crate::connection::Connection;
use crate::device::Device;
use crate::failure::{fail, Outcome};
use crate::proto::resync_order::WriteOrder;
use crate::proto::verify::{self, OvRange, OvReply, MAX_DIGEST, OV_BLOCK_BYTES};
use crate::proto::verify_window::{Verdict, OV_WINDOW};
use crate::proto::wire::{self, BlockReq, RsParam};
use crate::registry::RegistryInner;
use crate::replication::{announce, device_of, now_ms, Link, Stop};
use crate::spec::generated::{ret, ss, DiskState, ReplState};
use crate::sys::digest::Digest;
use crate::sys::peer_bio::PageBuf;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

/// Bytes a verify reads ahead at once: the next requests (ascending blocks) hash from it.
const WINDOW_BYTES: usize = 128 * 1024;
/// Sectors read ahead at once.
const WINDOW_SECTORS: u64 = WINDOW_BYTES as u64 / 512;

/// What a side hashes its blocks with: the `verify-alg` transform and a window of the disk
/// read ahead. One read serves a run of requests instead of one read each; the window holds
/// while no write touched it (`WriteOrder::verify_cache`, checked under `sync_lock`).
struct Hasher {
    digest: Option<Digest>,
    window: Option<PageBuf>,
    /// First sector of the window's data.
    window_sector: u64,
    /// The block being hashed, copied out of the window.
    block: KVec<u8>,
}

impl Hasher {
    const EMPTY: Self = Self {
        digest: None,
        window: None,
        window_sector: 0,
        block: KVec::new(),
    };
}

/// Longest wait for the peer to acknowledge earlier writes to a block before it is hashed
/// anyway (ms).
const QUIET_WAIT_MS: u32 = 2000;
/// How long the target waits for the last results after the source finished.
const RESULT_WAIT_MS: i64 = 10_000;

/// Verify state of one link.
///
/// Lifetime: part of `Link`, so a new connection starts from zero. Locking: counters are
/// atomics; the hasher is used only by the receiver thread, behind its own mutex. The
/// source's requests in flight live in the device's write-ordering lock
/// (`Device::sync_lock`), where writes are noted.
#[pin_data]
pub(crate) struct LinkVerify {
    /// A verify runs over this link (either side): the receiver notes peer writes in the
    /// device's `sync_lock` too. A new link starts without one.
    active: AtomicBool,
    /// Source: comparisons a write raced (the block was asked again).
    raced: AtomicU64,
    /// Target: requests answered.
    answered: AtomicU64,
    /// Target: results received.
    results: AtomicU64,
    /// When this side entered VerifyS/VerifyT (ms).
    started_ms: AtomicI64,
    /// The digest and the blocks read ahead, set up at the first request or reply.
    #[pin]
    hasher: Mutex<Hasher>,
}

impl LinkVerify {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            active: AtomicBool::new(false),
            raced: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            results: AtomicU64::new(0),
            started_ms: AtomicI64::new(0),
            hasher <- kernel::new_mutex!(Hasher::EMPTY, "LinkVerify::hasher"),
        })
    }

    /// Whether a verify runs over this link.
    pub(crate) fn active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    fn set_active(&self, on: bool) {
        self.active.store(on, Ordering::Release);
    }
}

fn verify_alg(conn: &Connection) -> Option<wire::AlgName> {
    conn.state.lock().net.verify_alg
}

/// `P_SYNC_PARAM89` with our `verify-alg`, sent once when the link comes up.
pub(crate) fn send_params(conn: &Connection, link: &Link) -> Result {
    let p = RsParam {
        verify_alg: verify_alg(conn).unwrap_or_default(),
        ..RsParam::default()
    };
    let mut b = [0u8; RsParam::SIZE];
    p.encode(&mut b).map_err(|_| EINVAL)?;
    link.send_data(wire::P_SYNC_PARAM89, 0, &[&b])
}

/// The peer's `P_SYNC_PARAM89`: its `verify-alg` must be ours.
pub(crate) fn on_params(conn: &Connection, payload: &[u8]) -> Result<(), Stop> {
    let p = RsParam::decode(payload).map_err(|_| Stop::Protocol)?;
    let mine = verify_alg(conn).unwrap_or_default();
    if mine.as_bytes() != p.verify_alg.as_bytes() {
        fn name(a: &[u8]) -> &str {
            core::str::from_utf8(a).unwrap_or("?")
        }
        pr_err!(
            "{}: Different verify-alg settings. me=\"{}\" peer=\"{}\"\n",
            conn.resource.name,
            name(mine.as_bytes()),
            name(p.verify_alg.as_bytes())
        );
        return Err(Stop::Diverged("verify-alg differs from the peer's"));
    }
    Ok(())
}

/// `drbdsetup verify RES PEER VOL [--start S] [--stop S]`: this node becomes VerifyS.
pub(crate) fn start(
    reg: &mut RegistryInner,
    name: &str,
    peer: u32,
    volume: u32,
    start: u64,
    stop: u64,
) -> Outcome {
    let (conn, dev) = crate::config::peer_volume(reg, name, peer, volume)?;
    let (p, link) = match (conn.peer_dev(volume), conn.link()) {
        (Some(p), Some(l)) if p.repl != ReplState::Off => (p, l),
        _ => return Err(fail!(ss::NEED_CONNECTION, "not connected to node {}", peer)),
    };
    if verify_alg(&conn).is_none() {
        return Err(fail!(
            ss::NO_VERIFY_ALG,
            "You need to set verify-alg in the net options of {} to run online verify",
            name
        ));
    }
    if p.repl != ReplState::Established {
        return Err(fail!(ss::RESYNC_RUNNING, "a resync or verify is running"));
    }
    let capacity = {
        let st = dev.state.lock();
        match st.backing.as_ref() {
            Some(b) if st.disk_state >= DiskState::Inconsistent => b.data_sectors(),
            _ => return Err(fail!(ss::NO_LOCAL_DISK, "drbd{} has no disk", dev.minor)),
        }
    };
    if p.peer_disk < DiskState::Inconsistent {
        return Err(fail!(ss::NO_REMOTE_DISK, "the peer has no disk"));
    }
    let range = OvRange::new(start, stop, capacity).ok_or_else(|| {
        fail!(
            ret::ERR_INVALID_REQUEST,
            "verify range {}..{} is empty on {} sectors",
            start,
            stop,
            capacity
        )
    })?;
    conn.update_peer(volume, |p| {
        p.start_sync(range.sectors());
        p.ov_found = 0;
        p.ov_start = range.start;
    });
    {
        // Writes outside a verify are not all noted: what was read ahead before is forgotten.
        let mut order = dev.sync_lock.lock();
        order.verify.clear();
        order.verify_cache.finish();
    }
    link.ov.set_active(true);
    link.ov.raced.store(0, Ordering::Release);
    link.ov.started_ms.store(now_ms(), Ordering::Release);
    conn.set_repl(volume, ReplState::VerifyS);
    pr_info!(
        "{}/{} drbd{}: Starting Online Verify from sector {}\n",
        name,
        volume,
        dev.minor,
        range.start
    );
    if announce(&conn, &link, Some((volume, ReplState::VerifyS))).is_err() {
        link.data.shutdown();
        return Ok(());
    }
    let (c, l, d) = (conn.clone(), link.clone(), dev.clone());
    let started = kernel::str::CString::try_from_fmt(kernel::fmt!("drbd_ov_{}", name))
        .and_then(|t| crate::sys::thread::KThread::spawn(&t, move || run_source(c, l, d, range)));
    let thread = match started {
        Ok(t) => t,
        Err(_) => {
            link.ov.set_active(false);
            conn.set_repl(volume, ReplState::Established);
            let _ = announce(&conn, &link, Some((volume, ReplState::Established)));
            return Err(fail!(ret::ERR_NOMEM, "cannot start the verify thread"));
        }
    };
    conn.set_resync_thread(thread);
    Ok(())
}

/// The source's request sender: one `P_OV_REQUEST` per block, a bounded window in flight,
/// blocks whose comparison a write raced asked again first; when every reply is in, reports
/// the result and returns to Established.
fn run_source(conn: Arc<Connection>, link: Arc<Link>, dev: Arc<Device>, range: OvRange) {
    let done = send_requests(&conn, &link, &dev, range);
    link.ov.set_active(false);
    dev.sync_lock.lock().verify.clear();
    if !done {
        return;
    }
    report(&conn, &link, &dev);
    conn.set_repl(dev.volume, ReplState::Established);
    if announce(&conn, &link, Some((dev.volume, ReplState::Established))).is_err() {
        link.data.shutdown();
    }
}

/// Sends the requests of `range` and waits for every reply; `false` if the link went away.
fn send_requests(conn: &Connection, link: &Arc<Link>, dev: &Device, range: OvRange) -> bool {
    let mut blocks = range.requests();
    let mut range_done = false;
    loop {
        if conn.is_stopping() || !conn.is_link(link) {
            return false;
        }
        let (again, busy) = {
            let mut order = dev.sync_lock.lock();
            let again = order.verify.take_again();
            (again, order.verify.busy())
        };
        let next = match again {
            Some(block) => Some(block),
            None if busy >= OV_WINDOW || range_done => None,
            None => {
                let block = blocks.next();
                range_done = block.is_none();
                block.map(|(sector, bytes)| (sector, u64::from(bytes) / 512, 0))
            }
        };
        let Some((sector, sectors, tries)) = next else {
            if range_done && busy == 0 {
                return true;
            }
            crate::sys::misc::sleep_ms(1);
            continue;
        };
        let mut b = [0u8; BlockReq::SIZE];
        if verify::request(sector, (sectors * 512) as u32)
            .encode(&mut b)
            .is_err()
        {
            return false;
        }
        // Registered once the peer has every earlier write to the block: later ones race it.
        let registered = quiet_lock(dev, link, sector, sectors)
            .verify
            .begin(sector, sectors, tries);
        if !registered {
            return false;
        }
        if link
            .send_data(wire::P_OV_REQUEST, dev.volume as u16, &[&b])
            .is_err()
        {
            link.data.shutdown();
            return false;
        }
    }
}

/// Takes the device's write-ordering lock once the block is quiet: no local write to it in
/// flight and none the peer has not acknowledged yet (it may not have it). A digest taken
/// under the lock then includes every write older than the request, on both sides. After
/// [`QUIET_WAIT_MS`] it goes on regardless; the source's table still sees later writes.
fn quiet_lock<'a>(
    dev: &'a Device,
    link: &Link,
    sector: u64,
    sectors: u64,
) -> kernel::sync::lock::Guard<'a, WriteOrder, kernel::sync::lock::mutex::MutexBackend> {
    let mut waited = 0;
    loop {
        let order = dev.sync_lock.lock();
        dev.drain_writes();
        if waited >= QUIET_WAIT_MS || !link.tl.overlaps(dev, sector, sectors) {
            return order;
        }
        drop(order);
        crate::sys::misc::sleep_ms(1);
        waited += 1;
    }
}

/// DRBD's end-of-verify log lines (both sides).
fn report(conn: &Connection, link: &Link, dev: &Device) {
    let secs = ((now_ms() - link.ov.started_ms.load(Ordering::Acquire)) / 1000).max(1) as u64;
    let kib = conn.peer_dev(dev.volume).map_or(0, |p| p.synced / 2);
    pr_info!(
        "{}/{} drbd{}: Online verify done (total {} sec; paused 0 sec; {} K/sec)\n",
        conn.resource.name,
        dev.volume,
        dev.minor,
        secs,
        kib / secs
    );
    let raced = link.ov.raced.load(Ordering::Acquire);
    if raced > 0 {
        pr_info!(
            "{}/{} drbd{}: Online verify asked {} times again for blocks written while compared\n",
            conn.resource.name,
            dev.volume,
            dev.minor,
            raced
        );
    }
    let n_oos = dev.oos.lock().count();
    if n_oos > 0 {
        pr_alert!(
            "{}/{} drbd{}: Online verify found {} 4k blocks out of sync!\n",
            conn.resource.name,
            dev.volume,
            dev.minor,
            n_oos
        );
    }
}

/// The source announced VerifyS: become its target.
pub(crate) fn start_target(conn: &Connection, link: &Link, dev: &Device) {
    let capacity = dev
        .state
        .lock()
        .backing
        .as_ref()
        .map_or(0, |b| b.data_sectors());
    link.ov.answered.store(0, Ordering::Release);
    link.ov.results.store(0, Ordering::Release);
    link.ov.started_ms.store(now_ms(), Ordering::Release);
    // Writes outside a verify are not all noted: what was read ahead before is forgotten.
    dev.sync_lock.lock().verify_cache.finish();
    link.ov.set_active(true);
    conn.update_peer(dev.volume, |p| {
        p.start_sync(capacity);
        p.ov_found = 0;
        p.ov_start = 0;
    });
    conn.set_repl(dev.volume, ReplState::VerifyT);
}

/// The source finished: wait for the results of every answered request, report, and return
/// to Established.
pub(crate) fn finish_target(conn: &Connection, link: &Link, dev: &Device) {
    let deadline = now_ms() + RESULT_WAIT_MS;
    while link.ov.results.load(Ordering::Acquire) < link.ov.answered.load(Ordering::Acquire)
        && now_ms() < deadline
        && !conn.is_stopping()
    {
        crate::sys::misc::sleep_ms(2);
    }
    link.ov.set_active(false);
    report(conn, link, dev);
    conn.set_repl(dev.volume, ReplState::Established);
}

/// Hashes `bytes` at `sector` of `dev`'s backing device with the link's `verify-alg`. The
/// caller holds `dev`'s write-ordering lock (`order`) with the block quiet, so the window
/// read here, or the one read before and not written since, holds the block's current data.
fn hash_block(
    conn: &Connection,
    link: &Link,
    dev: &Device,
    order: &mut WriteOrder,
    sector: u64,
    bytes: u32,
    out: &mut [u8; MAX_DIGEST],
) -> Result<usize, Stop> {
    let sectors = u64::from(bytes) / 512;
    let mut h = link.ov.hasher.lock();
    let h = &mut *h;
    if h.digest.is_none() {
        let alg = verify_alg(conn).ok_or(Stop::Protocol)?;
        h.digest = Some(Digest::new(alg.as_bytes()).map_err(|_| Stop::Broken)?);
        h.window = Some(PageBuf::alloc(WINDOW_BYTES).map_err(|_| Stop::Broken)?);
        h.block =
            KVec::from_elem(0u8, OV_BLOCK_BYTES as usize, GFP_KERNEL).map_err(|_| Stop::Broken)?;
    }
    let window = h.window.as_mut().ok_or(Stop::Broken)?;
    let aligned = sector >= h.window_sector && (sector - h.window_sector) % 8 == 0;
    if !(aligned && order.verify_cache.fresh_over(sector, sectors)) {
        let capacity = dev.io.lock().data_sectors;
        let len = WINDOW_SECTORS.min(capacity.saturating_sub(sector));
        let lower = dev.peer_target(sector, len).ok_or(Stop::Protocol)?;
        order.verify_cache.begin(sector, len);
        if window
            .read_from(&lower, sector, (len * 512) as usize)
            .is_err()
        {
            order.verify_cache.finish();
            pr_err!(
                "drbd{}: online verify: reading sector {} failed\n",
                dev.minor,
                sector
            );
            return Err(Stop::Broken);
        }
        h.window_sector = sector;
    }
    let data = h.block.get_mut(..bytes as usize).ok_or(Stop::Protocol)?;
    let offset = ((sector - h.window_sector) * 512) as usize;
    window.copy_out(offset, data).map_err(|_| Stop::Broken)?;
    let d = h.digest.as_ref().ok_or(Stop::Broken)?;
    d.digest(data, out).map_err(|_| Stop::Broken)
}

fn checked_request(req: &BlockReq, dev: &Device) -> Result<(), Stop> {
    let capacity = dev.io.lock().data_sectors;
    verify::check_request(req, capacity).map_err(|_| Stop::Protocol)
}

/// Target: `P_OV_REQUEST` → hash our block → `P_OV_REPLY`. Receiver thread.
pub(crate) fn on_request(
    conn: &Connection,
    link: &Link,
    volume: u32,
    payload: &[u8],
) -> Result<(), Stop> {
    let req = BlockReq::decode(payload).map_err(|_| Stop::Protocol)?;
    let dev = device_of(conn, volume).ok_or(Stop::Protocol)?;
    checked_request(&req, &dev)?;
    match conn.peer_dev(volume).map(|p| p.repl) {
        Some(ReplState::VerifyT) => {}
        Some(ReplState::Established) => start_target(conn, link, &dev),
        _ => return Err(Stop::Protocol),
    }
    if link.ov.answered.load(Ordering::Acquire) == 0 {
        pr_info!(
            "{}/{} drbd{}: Online Verify start sector: {}\n",
            conn.resource.name,
            volume,
            dev.minor,
            req.sector
        );
        conn.update_peer(volume, |p| {
            p.ov_start = req.sector;
            p.sync_total = p.sync_total.saturating_sub(req.sector).max(1);
        });
    }
    let mut digest = [0u8; MAX_DIGEST];
    let n = {
        let mut order = quiet_lock(&dev, link, req.sector, u64::from(req.blksize / 512));
        hash_block(
            conn,
            link,
            &dev,
            &mut order,
            req.sector,
            req.blksize,
            &mut digest,
        )?
    };
    let reply = OvReply {
        req,
        digest: digest.get(..n).ok_or(Stop::Broken)?,
    };
    let mut b = [0u8; BlockReq::SIZE + MAX_DIGEST];
    let len = reply.encode(&mut b).map_err(|_| Stop::Broken)?;
    link.ov.answered.fetch_add(1, Ordering::AcqRel);
    link.send_data(wire::P_OV_REPLY, volume as u16, &[&b[..len]])
        .map_err(|_| Stop::Broken)?;
    conn.add_synced(volume, u64::from(req.blksize / 512));
    Ok(())
}

/// Source: `P_OV_REPLY` → hash our block, compare, mark, `P_OV_RESULT`. Receiver thread.
pub(crate) fn on_reply(
    conn: &Connection,
    link: &Link,
    volume: u32,
    payload: &[u8],
) -> Result<(), Stop> {
    let reply = OvReply::decode(payload).map_err(|_| Stop::Protocol)?;
    let dev = device_of(conn, volume).ok_or(Stop::Protocol)?;
    checked_request(&reply.req, &dev)?;
    if conn.peer_dev(volume).map(|p| p.repl) != Some(ReplState::VerifyS) {
        return Err(Stop::Protocol);
    }
    let sectors = u64::from(reply.req.blksize / 512);
    let mut mine = [0u8; MAX_DIGEST];
    let equal = {
        // No local write may be half-way through the block while we read it.
        let mut order = dev.sync_lock.lock();
        dev.drain_writes();
        match order.verify.on_reply(reply.req.sector) {
            None => return Err(Stop::Protocol),
            // A write raced the request: asked again; this attempt proves nothing.
            Some(Verdict::AskAgain) => {
                link.ov.raced.fetch_add(1, Ordering::Relaxed);
                None
            }
            Some(Verdict::Compare) => {
                let n = hash_block(
                    conn,
                    link,
                    &dev,
                    &mut order,
                    reply.req.sector,
                    reply.req.blksize,
                    &mut mine,
                )?;
                Some(verify::digests_equal(
                    mine.get(..n).ok_or(Stop::Broken)?,
                    reply.digest,
                ))
            }
        }
    };
    if equal == Some(false) {
        mark_found(conn, &dev, reply.req.sector, reply.req.blksize);
    }
    let mut b = [0u8; wire::BlockAck::SIZE];
    verify::result(&reply.req, equal != Some(false))
        .encode(&mut b)
        .map_err(|_| Stop::Broken)?;
    link.send_meta(wire::P_OV_RESULT, volume as u16, &b)
        .map_err(|_| Stop::Broken)?;
    if equal.is_some() {
        conn.add_synced(volume, sectors);
    }
    Ok(())
}

fn mark_found(conn: &Connection, dev: &Device, sector: u64, bytes: u32) {
    dev.oos.lock().mark(sector, u64::from(bytes));
    conn.update_peer(dev.volume, |p| p.ov_found += u64::from(bytes / 512));
    pr_info!(
        "{}/{} drbd{}: Out of sync: start={}, size={} (sectors)\n",
        conn.resource.name,
        dev.volume,
        dev.minor,
        sector,
        bytes / 512
    );
}

/// Target: `P_OV_RESULT` on the meta stream (link thread); `false` = protocol violation.
pub(crate) fn on_result(conn: &Connection, link: &Link, volume: u16, payload: &[u8]) -> bool {
    let Ok((ack, differs)) = verify::decode_result(payload) else {
        return false;
    };
    let Some(dev) = device_of(conn, u32::from(volume)) else {
        return false;
    };
    if ack.blksize == 0 || ack.blksize > OV_BLOCK_BYTES {
        return false;
    }
    if differs {
        if dev
            .peer_target(ack.sector, u64::from(ack.blksize) / 512)
            .is_none()
        {
            return false;
        }
        mark_found(conn, &dev, ack.sector, ack.blksize);
    }
    link.ov.results.fetch_add(1, Ordering::AcqRel);
    true
}
