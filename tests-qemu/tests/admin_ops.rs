//! Administrative state changes (issue 5), each on two guests over real TCP:
//! `suspend-io`/`resume-io` (writes are held, not failed, and replicated once resumed; `down`
//! releases what is held), `pause-sync`/`resume-sync` (before and during a resync, from either
//! side, `PausedSync*` and `resync-suspended:` on both; the resync ends with identical data),
//! `outdate` (persisted across detach/attach, refused on a Primary and on Inconsistent data,
//! blocks promotion without `--force`, settles to UpToDate at the next connection) and
//! `new-current-uuid` (`--clear-bitmap` skips the initial sync of fresh meta-data; a Primary's
//! new generation is followed by its peer).

mod common;

use common::*;
use std::time::Duration;
use tests_qemu::{Cluster, ClusterSpec, Node};

/// `drbdsetup events2 --now r0` (one snapshot of every object).
fn now(n: &Node) -> String {
    n.run_ok("drbdsetup events2 --now --statistics r0")
}

/// The `exists <kind> ...` line of a snapshot.
fn line<'a>(snapshot: &'a str, kind: &str) -> &'a str {
    let prefix = format!("exists {kind} ");
    snapshot
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {kind} line in\n{snapshot}"))
}

/// Value of `key:` on a line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let k = format!("{key}:");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(k.as_str()))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

#[test]
fn suspend_io_holds_writes_until_resume_io_and_down() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[32]));
    let (a, b) = (c.node(0), c.node(1));
    configured_pair(&c, "C");
    a.run_ok("drbdsetup primary --force r0");
    up_to_date_both(a, b);

    // Not suspended: resume-io has nothing to do (DRBD: success).
    a.run_ok("drbdsetup resume-io 1");
    a.run_ok("drbdsetup suspend-io 1");
    let snap = now(a);
    assert_eq!(
        field(line(&snap, "resource"), "suspended"),
        "user",
        "{snap}"
    );
    let st = a.run_ok("drbdsetup status r0");
    assert!(st.contains("suspended:user"), "status:\n{st}");
    assert_status_like_drbd_utils(a);

    // A write started now is held: it neither completes nor fails.
    a.run_ok("dd if=/dev/urandom of=/tmp/blk bs=1M count=4 2>/dev/null");
    let want = a.run_ok("sha256sum < /tmp/blk");
    let mut writer = a.spawn("dd if=/tmp/blk of=/dev/drbd1 bs=1M count=4 seek=2 oflag=direct 2>&1");
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        writer.try_wait().is_none(),
        "a write completed while I/O was suspended"
    );
    let snap = now(a);
    let pending: u64 = field(line(&snap, "device"), "upper-pending")
        .parse()
        .expect("upper-pending");
    assert!(pending > 0, "nothing held while suspended:\n{snap}");
    let held = diskstats(a, "drbd1");
    assert!(
        held[DS_IN_FLIGHT] > 0,
        "a held write is not in flight: {held:?}"
    );

    // resume-io lets it through; it reaches the peer.
    a.run_ok("drbdsetup resume-io 1");
    let o = writer.wait(Duration::from_secs(60));
    assert!(o.success(), "held write failed after resume-io\n{o}");
    let done = diskstats(a, "drbd1");
    assert_eq!(done[DS_IN_FLIGHT], 0, "in flight after resume-io: {done:?}");
    assert_eq!(
        done[DS_WRITE_SECTORS] - held[DS_WRITE_SECTORS],
        8192,
        "the mirrored 4 MiB were not counted once: {held:?} -> {done:?}"
    );
    let snap = now(a);
    assert_eq!(field(line(&snap, "resource"), "suspended"), "no", "{snap}");
    let on_b = b.run_ok(
        "blockdev --flushbufs /dev/vdb && dd if=/dev/vdb bs=1M skip=2 count=4 iflag=direct 2>/dev/null | sha256sum",
    );
    assert_eq!(
        want.split_whitespace().next(),
        on_b.split_whitespace().next(),
        "the held write did not reach the peer"
    );
    up_to_date_both(a, b);
    assert_eq!(data_hash(a), data_hash(b), "data differ after resume-io");

    // Suspended again with a write held: `down` releases it (it completes, nothing hangs), and
    // once the writer closed the device the resource goes down and the module unloads.
    a.run_ok("drbdsetup suspend-io 1");
    let mut writer = a.spawn("dd if=/tmp/blk of=/dev/drbd1 bs=1M count=4 seek=8 oflag=direct 2>&1");
    std::thread::sleep(Duration::from_secs(3));
    assert!(writer.try_wait().is_none(), "write not held");
    // May fail with "held open" while dd has not closed the device yet.
    let _ = a.run("drbdsetup down r0");
    let o = writer.wait(Duration::from_secs(60));
    assert!(o.success(), "held write lost at down\n{o}");
    a.run_ok("drbdsetup down r0 2>/dev/null; rmmod drbd");
    b.run_ok("drbdsetup down r0 && rmmod drbd");
}

/// Debian's drbd-utils 9 in the guest.
const REAL: &str = "/opt/drbd-utils/sbin/drbdsetup";

/// Our `drbdsetup status r0` equals drbd-utils 9's rendering of the same kernel state.
fn assert_status_like_drbd_utils(n: &Node) {
    let ours = n.run_ok("drbdsetup status r0");
    let real = n.run_ok(&format!("{REAL} status r0"));
    assert_eq!(ours, real, "{}: status differs from drbd-utils 9", n.name);
}

/// The peer-device line of a snapshot.
fn peer_line(n: &Node) -> String {
    line(&now(n), "peer-device").to_string()
}

/// Out-of-sync KiB towards the peer (what the resync still has to do), from events2.
fn out_of_sync(n: &Node) -> u64 {
    field(&peer_line(n), "out-of-sync")
        .parse()
        .expect("out-of-sync")
}

/// Waits until the peer-device line of `n` shows `replication:<repl>` and
/// `resync-suspended:<susp>`.
fn wait_repl(n: &Node, repl: &str, susp: &str) {
    wait_for(
        n,
        &format!("{repl} resync-suspended:{susp}"),
        &format!(
            "drbdsetup events2 --now r0 | grep 'exists peer-device' | grep 'replication:{repl} ' | grep -q 'resync-suspended:{susp}'"
        ),
        60,
    );
}

/// Asserts that no resync progress happens on `n` for a few seconds.
fn assert_stalled(n: &Node, what: &str) {
    // Chunks in flight when the pause came may still be acknowledged.
    std::thread::sleep(Duration::from_secs(2));
    let before = out_of_sync(n);
    std::thread::sleep(Duration::from_secs(4));
    let after = out_of_sync(n);
    assert!(before > 0, "{what}: nothing left to sync");
    assert_eq!(before, after, "{what}: the resync went on while paused");
}

#[test]
fn pause_sync_and_resume_sync_from_either_side() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[128]));
    let (a, b) = (c.node(0), c.node(1));
    configured_pair(&c, "C");
    for n in [a, b] {
        wait_for(
            n,
            "Connected",
            "drbdsetup events2 --now r0 | grep -q 'exists peer-device .*replication:Established'",
            60,
        );
    }

    // Paused before the resync exists; pausing twice is DRBD's ERR_PAUSE_IS_SET.
    a.run_ok("drbdsetup pause-sync r0 1 0");
    let o = a.run("drbdsetup pause-sync r0 1 0");
    assert_fails(&o, 10, &["(134)", "already set"]);
    let pl = peer_line(a);
    assert_eq!(field(&pl, "resync-suspended"), "user", "{pl}");
    // Slow the resync down so that it is still running when paused from the target.
    a.netem(1, Some("rate 40mbit"));
    a.run_ok("dd if=/dev/urandom of=/dev/vdb bs=1M count=16 seek=8 oflag=direct 2>/dev/null");
    a.run_ok("drbdsetup primary --force r0");
    wait_repl(a, "PausedSyncS", "user");
    wait_repl(b, "PausedSyncT", "peer");
    let st = a.run_ok("drbdsetup status r0");
    assert!(
        st.contains("replication:PausedSyncS") && st.contains("resync-suspended:user"),
        "status:\n{st}"
    );
    assert_stalled(a, "paused before the start");
    for n in [a, b] {
        assert_status_like_drbd_utils(n);
    }

    // Resumed: it runs.
    a.run_ok("drbdsetup resume-sync r0 1 0");
    wait_repl(a, "SyncSource", "no");
    let left = out_of_sync(a);
    wait_for(
        a,
        "resync progress",
        &format!(
            "test $(drbdsetup events2 --now --statistics r0 | grep 'exists peer-device' | tr ' ' '\\n' | sed -n 's/^out-of-sync://p') -lt {left}"
        ),
        60,
    );

    // Paused by the target while running: both sides stop, the source learns it from the
    // target's state (peer_isp), and cannot resume what it did not pause.
    b.run_ok("drbdsetup pause-sync r0 0 0");
    wait_repl(b, "PausedSyncT", "user");
    wait_repl(a, "PausedSyncS", "peer");
    assert_stalled(a, "paused by the target");
    for n in [a, b] {
        assert_status_like_drbd_utils(n);
    }
    let o = a.run("drbdsetup resume-sync r0 1 0");
    assert_fails(&o, 10, &["(157)"]);
    let o = b.run("drbdsetup resume-sync r0 0 1");
    assert!(!o.success(), "resume-sync of an unknown volume\n{o}");

    // Resumed by the target: runs to the end, identical data.
    b.run_ok("drbdsetup resume-sync r0 0 0");
    a.netem(1, None);
    up_to_date_both(a, b);
    assert_eq!(data_hash(a), data_hash(b), "data differ after the resync");
    let pl = peer_line(a);
    assert_eq!(field(&pl, "resync-suspended"), "no", "{pl}");
    for n in [a, b] {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
}

/// The local disk state from events2.
fn disk(n: &Node) -> String {
    field(line(&now(n), "device"), "disk").to_string()
}

#[test]
fn outdate_persists_refuses_and_settles() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[32]));
    let (a, b) = (c.node(0), c.node(1));
    configured_pair(&c, "C");
    a.run_ok("drbdsetup primary --force r0");
    up_to_date_both(a, b);

    // Connected: neither the Primary nor a Secondary replicating from it may be outdated.
    for n in [a, b] {
        let o = n.run("drbdsetup outdate 1");
        assert_fails(&o, 11, &["(-6)", "Refusing to be Outdated while Connected"]);
        assert_eq!(disk(n), "UpToDate");
    }

    // Apart: the Secondary may; the Primary still may not (it needs UpToDate data).
    c.set_link(0, 1, false);
    for n in [a, b] {
        wait_link_loss(n);
    }
    let o = a.run("drbdsetup outdate 1");
    assert_fails(&o, 17, &["(-2)", "Need access to UpToDate data"]);
    b.run_ok("drbdsetup outdate 1");
    assert_eq!(disk(b), "Outdated");
    b.run_ok("drbdsetup outdate 1"); // nothing to do
    let st = b.run_ok("drbdsetup status r0");
    assert!(st.contains("disk:Outdated"), "status:\n{st}");
    assert_status_like_drbd_utils(b);

    // Persistent: detach/attach finds it Outdated again; no promotion without --force.
    b.run_ok("drbdsetup detach 1 && drbdsetup attach 1 /dev/vdb /dev/vdb internal");
    assert_eq!(disk(b), "Outdated", "outdated state lost by detach/attach");
    let o = b.run("drbdsetup primary r0");
    assert_fails(&o, 17, &["(-2)"]);

    // The Primary wrote meanwhile: back together, the outdated node resyncs those blocks.
    a.run_ok("dd if=/dev/urandom of=/dev/drbd1 bs=1M count=2 seek=4 oflag=direct 2>/dev/null");
    c.set_link(0, 1, true);
    up_to_date_both(a, b);
    assert_eq!(data_hash(a), data_hash(b), "data differ after the resync");
    let kib = resynced_kib(a);
    assert!((2048..=3072).contains(&kib), "resynced {kib} KiB");

    // Nobody wrote: at the next connection an Outdated disk facing UpToDate data of the same
    // generation is UpToDate again, without a resync.
    a.run_ok("drbdsetup secondary r0");
    b.run_ok("drbdsetup disconnect r0 0 && drbdsetup outdate 1");
    assert_eq!(disk(b), "Outdated");
    let syncs = |n: &Node| n.run_ok("dmesg | grep -c 'resync started' || true");
    let before = syncs(b);
    b.run_ok("drbdsetup connect r0 0");
    up_to_date_both(a, b);
    assert_eq!(
        syncs(b),
        before,
        "an outdated node with equal data was resynced"
    );
    assert!(
        b.run_ok("dmesg").contains("Outdated -> UpToDate"),
        "no settle message"
    );

    // Inconsistent data cannot be outdated (DRBD: exit 5).
    b.run_ok("drbdsetup disconnect r0 0 && drbdsetup invalidate 1");
    let o = b.run("drbdsetup outdate 1");
    assert_fails(&o, 5, &["(-16)", "lower than outdated"]);
    b.run_ok("drbdsetup connect r0 0");
    up_to_date_both(a, b);
    for n in [a, b] {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
}

/// The UUID after `marker` in the last kernel-log line containing it.
fn logged_uuid(n: &Node, marker: &str) -> String {
    let log = n.run_ok(&format!("dmesg | grep '{marker}' | tail -n 1"));
    log.split(marker)
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no {marker:?} in the log: {log:?}"))
}

#[test]
fn new_current_uuid_skips_initial_sync_and_rotates() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[32]));
    let (a, b) = (c.node(0), c.node(1));
    configured_pair(&c, "C");
    for n in [a, b] {
        wait_for(
            n,
            "Connected",
            "drbdsetup events2 --now r0 | grep -q 'exists peer-device .*replication:Established peer-disk:Inconsistent'",
            60,
        );
        assert_eq!(disk(n), "Inconsistent");
    }
    // A connected Secondary with data to keep may not start a generation.
    // The documented workflow: fresh meta-data on both, connected, then skip the sync.
    a.run_ok("drbdsetup new-current-uuid --clear-bitmap 1");
    up_to_date_both(a, b);
    for n in [a, b] {
        let syncs = n.run_ok("dmesg | grep -c 'resync started' || true");
        assert_eq!(syncs.trim(), "0", "{}: a resync ran", n.name);
    }
    assert!(a.run_ok("dmesg").contains("Preparing to skip initial sync"));
    assert!(b
        .run_ok("dmesg")
        .contains("Accepted new current UUID, preparing to skip initial sync"));

    // Replication works afterwards.
    a.run_ok("drbdsetup primary r0");
    a.run_ok("dd if=/dev/urandom of=/dev/drbd1 bs=1M count=4 seek=2 oflag=direct 2>/dev/null");
    assert_eq!(data_hash(a), data_hash(b), "writes after the skipped sync");

    // A connected Secondary may not make a new generation; the Primary may, and its peer
    // follows it (no resync at the next connection).
    let o = b.run("drbdsetup new-current-uuid 1");
    assert_fails(&o, 10, &["(151)"]);
    a.run_ok("drbdsetup new-current-uuid 1");
    let made = logged_uuid(a, "new current UUID ");
    wait_for(
        b,
        "the new generation taken over",
        &format!("dmesg | grep -q 'new current UUID {made} of the Primary taken over'"),
        30,
    );
    a.run_ok("dd if=/dev/urandom of=/dev/drbd1 bs=1M count=1 seek=9 oflag=direct 2>/dev/null");
    a.run_ok("drbdsetup secondary r0");
    b.run_ok("drbdsetup disconnect r0 0 && drbdsetup connect r0 0");
    up_to_date_both(a, b);
    for n in [a, b] {
        let syncs = n.run_ok("dmesg | grep -c 'resync started' || true");
        assert_eq!(
            syncs.trim(),
            "0",
            "{}: resync after a followed generation",
            n.name
        );
    }
    assert_eq!(data_hash(a), data_hash(b));

    // Without a connection a Secondary may rotate too; the history keeps the old one, so
    // the next handshake is bitmap-based (nothing to resync, nothing unrelated).
    b.run_ok("drbdsetup disconnect r0 0 && drbdsetup new-current-uuid 1");
    let o = b.run("drbdsetup new-current-uuid --force-resync 1");
    assert!(!o.success(), "--force-resync accepted\n{o}");
    b.run_ok("drbdsetup connect r0 0");
    up_to_date_both(a, b);
    assert_eq!(data_hash(a), data_hash(b));
    for n in [a, b] {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
}
