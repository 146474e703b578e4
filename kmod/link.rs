//! The link thread of a connection: establishes the two TCP streams of DRBD 9 (data and
//! meta), agrees on the protocol version with `P_CONNECTION_FEATURES`, then watches the link
//! with pings until it fails or `disconnect` stops it, and reconnects after `connect-int`.
//!
//! Roles in establishing: the node with the higher node id connects, the other listens, so
//! both sides never race to open crossing connections.

use crate::auth::{self, Refused};
use crate::connection::{Connection, NetOptions};
use crate::packet;
use crate::proto::fencing::OnLoss;
use crate::proto::wire::{self, ConnectionFeatures, HeaderKind};
use crate::replication::{now_ms, Link};
use crate::spec::generated::ConnState;
use crate::sys::socket::{Ipv4Addr, Socket};
use crate::sys::thread::KThread;
use core::sync::atomic::Ordering;
use kernel::prelude::*;
use kernel::sync::Arc;

/// Largest payload accepted before agreeing on anything (the features packet is 72 bytes).
const MAX_HANDSHAKE_PAYLOAD: u32 = 4096;
/// Largest payload accepted on the meta stream (acks, pings, state packets).
const MAX_META_PAYLOAD: u32 = 64 * 1024;
/// How long a handshake step may take.
const HANDSHAKE_TIMEOUT_MS: u32 = 5000;
/// Poll interval of the listener, so `disconnect` is noticed.
const ACCEPT_POLL_MS: u32 = 500;

/// Why an established link ended.
#[derive(Clone, Copy)]
enum Failure {
    /// The peer did not answer a ping in time.
    PingTimeout,
    /// A write waited ko-count × timeout for the peer's ack.
    KoCount,
    /// Send or receive failed (reset, closed).
    Broken,
    /// The peer sent something we do not understand.
    Protocol,
    /// Split brain or unrelated data: stay StandAlone.
    Diverged(&'static str),
}

/// Entry point of the link thread.
pub(crate) fn run(conn: Arc<Connection>) {
    let my_id = conn.resource.node_id;
    // Kept open between attempts while connecting, so a peer that dials during our pause
    // between attempts is queued instead of refused; closed while a link is up.
    let mut listener: Option<Listener> = None;
    while !conn.is_stopping() {
        conn.set_cstate(ConnState::Connecting, false);
        let (path, net) = {
            let st = conn.state.lock();
            (st.path, st.net)
        };
        if let Some(path) = path {
            let established = match establish(&conn, &mut listener, path, my_id, &net) {
                Ok(link) => Some(link),
                Err(Refused::Denied(why)) => {
                    pr_err!(
                        "{} {}: Authentication of peer failed: {}\n",
                        conn.resource.name,
                        conn.state.lock().name,
                        why.text()
                    );
                    conn.untrack_sockets();
                    conn.set_cstate(ConnState::StandAlone, false);
                    return;
                }
                Err(Refused::Retry) => None,
            };
            if let Some(link) = established {
                listener = None;
                pr_info!(
                    "{} {}: connected to {} (protocol version {})\n",
                    conn.resource.name,
                    conn.state.lock().name,
                    path.peer,
                    link.version
                );
                let (why, loss) = serve(&conn, &link, &net);
                if conn.is_stopping() {
                    break;
                }
                let (cstate, text) = match why {
                    Failure::PingTimeout => {
                        (ConnState::NetworkFailure, "PingAck did not arrive in time")
                    }
                    Failure::KoCount => (
                        ConnState::Timeout,
                        "peer did not complete a request within ko-count * timeout, expelled",
                    ),
                    Failure::Broken => (ConnState::BrokenPipe, "connection lost"),
                    Failure::Protocol => (ConnState::ProtocolError, "protocol error"),
                    Failure::Diverged(why) => {
                        pr_err!(
                            "{} {}: {}\n",
                            conn.resource.name,
                            conn.state.lock().name,
                            why
                        );
                        conn.set_cstate(ConnState::StandAlone, false);
                        crate::fence::after_link_lost(&conn, loss);
                        return;
                    }
                };
                pr_warn!(
                    "{} {}: {}\n",
                    conn.resource.name,
                    conn.state.lock().name,
                    text
                );
                conn.set_cstate(cstate, false);
                // No lock held here: the helper may call back into netlink.
                crate::fence::after_link_lost(&conn, loss);
            }
            conn.untrack_sockets();
        }
        pause(&conn, net.connect_int_s.max(1) * 1000);
    }
}

/// Runs an established link until it fails: publishes it, exchanges state, receives the data
/// stream in a second thread, and watches the meta stream here. Tears everything down before
/// returning, and says whether the lost peer must be fenced (I/O is frozen already if so).
fn serve(conn: &Arc<Connection>, link: &Arc<Link>, net: &NetOptions) -> (Failure, OnLoss) {
    conn.set_link(Some(link.clone()));
    conn.set_cstate(ConnState::Connected, true);
    // The peer is back: a fencing freeze of an earlier loss ends (its blocks resync).
    crate::admin::thaw_fencing(&conn.resource);
    let diverged: Arc<kernel::sync::SpinLock<Option<&'static str>>> = match Arc::pin_init(
        kernel::new_spinlock!(None, "Connection::diverged"),
        GFP_KERNEL,
    ) {
        Ok(d) => d,
        Err(_) => return (Failure::Broken, NO_FENCING),
    };
    // Before our receiver can drop the link over the peer's parameters, so the peer sees ours.
    let params_sent = crate::verify::send_params(conn, link).is_ok();
    let receiver = {
        let (c, l, d) = (conn.clone(), link.clone(), diverged.clone());
        let name =
            kernel::str::CString::try_from_fmt(kernel::fmt!("drbd_r_{}", conn.resource.name));
        name.ok().and_then(|name| {
            KThread::spawn(&name, move || {
                match crate::replication::receive(&c, &l) {
                    crate::replication::Stop::Diverged(why) => *d.lock() = Some(why),
                    crate::replication::Stop::Protocol => {
                        pr_warn!("{}: protocol error on the data stream\n", c.resource.name)
                    }
                    crate::replication::Stop::Broken => {}
                }
                // Wake the meta watcher.
                l.meta.shutdown();
                l.data.shutdown();
            })
            .ok()
        })
    };
    let sender = crate::sender::Sender::start(conn, link).ok();
    let mut why = match receiver {
        Some(_)
            if sender.is_some()
                && params_sent
                && crate::replication::announce(conn, link, None).is_ok() =>
        {
            watch(conn, link, net)
        }
        _ => Failure::Broken,
    };
    link.data.shutdown();
    link.meta.shutdown();
    if let Some(t) = conn.take_resync_thread() {
        t.stop();
    }
    drop(receiver);
    drop(sender);
    if let Some(reason) = *diverged.lock() {
        why = Failure::Diverged(reason);
    }
    // Decided (and frozen) while the link is still published, so no write completes as if
    // the peer had it; a `disconnect` is voluntary and fences nothing.
    let loss = if conn.is_stopping() {
        NO_FENCING
    } else {
        crate::fence::on_link_lost(conn)
    };
    conn.set_link(None);
    link.tl.fail_all(loss.freeze.then_some(&*conn.resource));
    crate::remote_read::fail_reads(link);
    // A disk waiting for the sync decision is on its own now: its meta-data decides.
    {
        let rs = conn.resource.state.lock();
        for d in rs.devices() {
            d.state.lock().negotiating = false;
        }
    }
    conn.untrack_sockets();
    crate::role::peer_lost(&conn.resource, conn.peer_node_id);
    crate::wfc::peer_gone(&conn.resource, conn.peer_node_id);
    (why, loss)
}

/// Nothing to fence.
const NO_FENCING: OnLoss = OnLoss {
    run_helper: false,
    freeze: false,
};

/// Sleeps up to `ms`, returning early when asked to stop.
fn pause(conn: &Connection, ms: u32) {
    let mut left = ms;
    while left > 0 && !conn.is_stopping() {
        let step = left.min(100);
        crate::sys::misc::sleep_ms(step);
        left -= step;
    }
}

/// Opens both streams, agrees on a version and, with `cram-hmac-alg`, authenticates the peer.
fn establish(
    conn: &Arc<Connection>,
    listener: &mut Option<Listener>,
    path: Path,
    my_id: u32,
    net: &NetOptions,
) -> Result<Arc<Link>, Refused> {
    let (data, meta) = if my_id > conn.peer_node_id {
        let data = Arc::new(Socket::connect(path.local, path.peer)?, GFP_KERNEL)?;
        conn.track_socket(&data)?;
        packet::send(&data, HeaderKind::H80, wire::P_INITIAL_DATA, 0, &[])?;
        let meta = Arc::new(Socket::connect(path.local, path.peer)?, GFP_KERNEL)?;
        conn.track_socket(&meta)?;
        packet::send(&meta, HeaderKind::H80, wire::P_INITIAL_META, 0, &[])?;
        (data, meta)
    } else {
        accept_pair(conn, listener, path.local, net.connect_int_s.max(1) * 1000)?
    };
    data.set_recv_timeout(HANDSHAKE_TIMEOUT_MS);
    data.set_send_timeout(HANDSHAKE_TIMEOUT_MS);
    meta.set_send_timeout(HANDSHAKE_TIMEOUT_MS);
    let version = handshake(&data, my_id, conn.peer_node_id)?;
    if let Some(auth) = &net.auth {
        auth::authenticate(&data, version, auth, my_id, conn.peer_node_id)?;
        pr_info!(
            "{}: peer authenticated with hmac({})\n",
            conn.resource.name,
            core::str::from_utf8(auth.alg()).unwrap_or("?")
        );
    }
    // A send blocked by a peer that stopped reading is ended by `watch` (the ack of the
    // request is overdue for ko-count timeouts) or by `disconnect`; the socket's own send
    // timeout is only the last resort when ko-count is 0.
    data.set_send_timeout(send_timeout_ms(net));
    Ok(Link::new(data, meta, version, net.max_epoch_size)?)
}

/// Send timeout of an established data stream: past the point where `watch` expels the
/// peer, so `watch` decides; with ko-count 0 a send waits as long as the peer answers pings.
fn send_timeout_ms(net: &NetOptions) -> u32 {
    if net.ko_count == 0 {
        0
    } else {
        (net.timeout_ds * 100).saturating_mul(net.ko_count + 1)
    }
}

use crate::connection::Path;

/// A listening socket and the address it is bound to. Owned by the link thread alone (no
/// lock); lives across connection attempts and is dropped once a link is up.
struct Listener {
    local: Ipv4Addr,
    socket: Arc<Socket>,
}

/// Accepts the peer's data and meta streams, told apart by their first packet. Reuses
/// `listener` when it is bound to `local` (a changed path gets a new one).
fn accept_pair(
    conn: &Arc<Connection>,
    listener: &mut Option<Listener>,
    local: Ipv4Addr,
    timeout_ms: u32,
) -> Result<(Arc<Socket>, Arc<Socket>)> {
    if listener.as_ref().is_some_and(|l| l.local != local) {
        *listener = None;
    }
    let listener = match listener {
        Some(l) => l.socket.clone(),
        None => {
            let socket = Arc::new(Socket::listen(local)?, GFP_KERNEL)?;
            *listener = Some(Listener {
                local,
                socket: socket.clone(),
            });
            socket
        }
    };
    conn.track_socket(&listener)?;
    let (mut data, mut meta) = (None, None);
    let mut waited = 0;
    // Once one stream is in, the peer gets the handshake timeout for the other (it opens
    // them one after the other, maybe at the end of our window).
    let mut limit = timeout_ms;
    while data.is_none() || meta.is_none() {
        if conn.is_stopping() || waited >= limit {
            return Err(ETIMEDOUT_COMPAT);
        }
        let s = match listener.accept(ACCEPT_POLL_MS) {
            Ok(s) => Arc::new(s, GFP_KERNEL)?,
            Err(_) => {
                waited += ACCEPT_POLL_MS;
                continue;
            }
        };
        conn.track_socket(&s)?;
        s.set_recv_timeout(HANDSHAKE_TIMEOUT_MS);
        let Ok(h) = packet::recv_header(&s, HeaderKind::H80) else {
            continue;
        };
        if h.length != 0 {
            continue;
        }
        match h.cmd {
            wire::P_INITIAL_DATA => data = Some(s),
            wire::P_INITIAL_META => meta = Some(s),
            _ => continue,
        }
        limit = limit.max(waited + HANDSHAKE_TIMEOUT_MS);
    }
    match (data, meta) {
        (Some(d), Some(m)) => Ok((d, m)),
        _ => Err(ETIMEDOUT_COMPAT),
    }
}

/// Timed out.
const ETIMEDOUT_COMPAT: Error = EAGAIN;

/// Exchanges `P_CONNECTION_FEATURES` and returns the agreed protocol version.
fn handshake(data: &Socket, my_id: u32, peer_id: u32) -> Result<u32> {
    let mine = ConnectionFeatures {
        protocol_min: crate::procfs::PROTOCOL_MIN,
        feature_flags: 0,
        protocol_max: crate::procfs::PROTOCOL_MAX,
        sender_node_id: my_id,
        receiver_node_id: peer_id,
    };
    let mut buf = [0u8; ConnectionFeatures::SIZE];
    mine.encode(&mut buf).map_err(|_| EINVAL)?;
    packet::send(
        data,
        HeaderKind::H80,
        wire::P_CONNECTION_FEATURES,
        0,
        &[&buf],
    )?;
    let h = packet::recv_header(data, HeaderKind::H80)?;
    if h.cmd != wire::P_CONNECTION_FEATURES {
        return Err(packet::EPROTO);
    }
    let payload = packet::recv_payload(data, h.length, MAX_HANDSHAKE_PAYLOAD)?;
    let theirs = ConnectionFeatures::decode(&payload).map_err(|_| packet::EPROTO)?;
    if theirs.sender_node_id != peer_id || theirs.receiver_node_id != my_id {
        pr_warn!(
            "peer introduced itself as node {} (expected {})\n",
            theirs.sender_node_id,
            peer_id
        );
        return Err(packet::EPROTO);
    }
    let (version, _features) = mine.agree(&theirs).ok_or(packet::EPROTO)?;
    Ok(version)
}

/// Watches an established link on the meta stream: answers pings, sends a ping after
/// `ping-int` seconds of silence and expects the answer within `ping-timeout` tenths, and
/// expels the peer once a write has waited `ko-count` × `timeout` for its ack (the peer is
/// alive but not writing: a stuck disk, or a send blocked because it stopped reading).
fn watch(conn: &Connection, link: &Arc<Link>, net: &NetOptions) -> Failure {
    let kind = HeaderKind::for_version(link.version);
    let idle_ms = i64::from(net.ping_int_s.max(1)) * 1000;
    let answer_ms = i64::from(net.ping_timeo_ds.max(1)) * 100;
    let mut ko = KoLimit::new(net);
    let Ok(mut reader) = packet::PacketReader::new() else {
        return Failure::Broken;
    };
    let mut last_rx = now_ms();
    // When the outstanding ping was sent (or last extended by other traffic).
    let mut ping_sent: Option<i64> = None;
    loop {
        if conn.is_stopping() {
            return Failure::Broken;
        }
        let now = now_ms();
        let deadline = match ping_sent {
            Some(t) => t + answer_ms,
            None => last_rx + idle_ms,
        };
        let wait = ko
            .period_ms
            .map_or(deadline - now, |p| (deadline - now).min(p));
        link.meta
            .set_recv_timeout(wait.clamp(10, i64::from(u32::MAX)) as u32);
        let received = reader.next(&link.meta, kind, MAX_META_PAYLOAD);
        let now = now_ms();
        match received {
            Ok((h, payload)) => {
                last_rx = now;
                // Any traffic proves the peer alive.
                if ping_sent.is_some() {
                    ping_sent = Some(now);
                }
                match h.cmd {
                    wire::P_PING => {
                        if link.send_meta(wire::P_PING_ACK, 0, &[]).is_err() {
                            return Failure::Broken;
                        }
                    }
                    wire::P_WRITE_ACK
                    | wire::P_RECV_ACK
                    | wire::P_NEG_ACK
                    | wire::P_RS_WRITE_ACK => {
                        if !crate::replication::on_ack(conn, link, h.cmd, h.volume, &payload) {
                            return Failure::Protocol;
                        }
                    }
                    wire::P_BARRIER_ACK => {
                        if !crate::barrier::on_barrier_ack(conn, link, &payload) {
                            return Failure::Protocol;
                        }
                    }
                    wire::P_NEG_DREPLY => {
                        if !crate::remote_read::on_neg_reply(link, &payload) {
                            return Failure::Protocol;
                        }
                    }
                    wire::P_OV_RESULT => {
                        if !crate::verify::on_result(conn, link, h.volume, &payload) {
                            return Failure::Protocol;
                        }
                    }
                    wire::P_PING_ACK => ping_sent = None,
                    _ => return Failure::Protocol,
                }
            }
            Err(e) if e == EAGAIN => {}
            Err(e) if e == EINVAL => return Failure::Protocol,
            Err(_) => return Failure::Broken,
        }
        if ko.check(now, link) {
            return Failure::KoCount;
        }
        match ping_sent {
            Some(t) if now - t >= answer_ms => return Failure::PingTimeout,
            None if now - last_rx >= idle_ms => {
                if link.send_meta(wire::P_PING, 0, &[]).is_err() {
                    return Failure::Broken;
                }
                ping_sent = Some(now);
            }
            _ => {}
        }
    }
}

/// The ko-count rule: how long a write may wait for the peer before it is expelled.
struct KoLimit {
    /// One timeout period (`timeout`, ms); `None` with ko-count 0 (never expel).
    period_ms: Option<i64>,
    /// ko-count periods.
    limit_ms: i64,
    /// When the transfer log is looked at next (the scan is not done per packet).
    next_check_ms: i64,
}

impl KoLimit {
    fn new(net: &NetOptions) -> Self {
        let period = i64::from(net.timeout_ds.max(1)) * 100;
        Self {
            period_ms: (net.ko_count > 0).then_some(period),
            limit_ms: period * i64::from(net.ko_count),
            next_check_ms: 0,
        }
    }

    /// Whether the oldest unconfirmed write in the link's transfer log, or its resync window
    /// standing still with chunks unanswered, exceeded the limit; looks at most every tenth
    /// of a period (the limit is whole periods, so it is found late by at most that).
    fn check(&mut self, now: i64, link: &Link) -> bool {
        let Some(period) = self.period_ms else {
            return false;
        };
        if now < self.next_check_ms {
            return false;
        }
        self.next_check_ms = now + (period / 10).max(1);
        let resync_stalled = (link.rs_in_flight.load(Ordering::Acquire) > 0)
            .then(|| now - link.rs_progress_ms.load(Ordering::Acquire));
        self.expired(link.tl.oldest_unanswered_ms(now)) || self.expired(resync_stalled)
    }

    /// Whether the oldest unconfirmed write (waiting `oldest_ms`) exceeded the limit.
    fn expired(&self, oldest_ms: Option<i64>) -> bool {
        self.period_ms.is_some() && oldest_ms.is_some_and(|age| age >= self.limit_ms)
    }
}
