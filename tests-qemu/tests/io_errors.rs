//! Local disk I/O errors (`disk { on-io-error …; }`): the Primary's backing device is a
//! device-mapper target switched live to `error`, so every request to it fails with EIO.
//!
//! - `detach` (with ext4 mounted and a writer running): the writer sees no error; the disk goes
//!   Failed then Diskless (events2, kernel log), the peer sees `peer-disk:Diskless`; reads and
//!   writes go on through the peer (files and the whole device checked against the peer);
//!   after the disk is repaired, `attach` resyncs only what changed and both sides are
//!   identical.
//! - `call-local-io-error`: a failed read is retried on the peer (the application gets the
//!   peer's data), the disk detaches, and the `local-io-error` handler runs (events2 `call
//!   helper` / `response helper`, the helper's own log).
//! - `drbdsetup detach` of the connected Primary: diskless writes reach the peer, `attach`
//!   resyncs them back.
//! - `pass_on` (no peer connected): the error reaches the application (EIO), the disk stays
//!   attached and becomes Inconsistent.

mod common;

use common::*;
use std::time::Duration;
use tests_qemu::{Cluster, ClusterSpec, Node};

const DISK_MIB: u64 = 64;

/// `r0` (minor 1) on `disk` with `disk_opts`, connected to `peer`.
fn up_on(n: &Node, me: u32, peer: u32, ip: &str, peer_ip: &str, disk: &str, disk_opts: &str) {
    create_md_ok(n, 1, disk, 1);
    n.run_ok(&format!(
        "drbdsetup new-resource r0 {me} && drbdsetup new-minor r0 1 0 && \
         drbdsetup new-peer r0 {peer} --_name=node{peer} --protocol=C --ping-int=2 --ping-timeout=10 --connect-int=2 && \
         drbdsetup new-path r0 {peer} ipv4:{ip}:7789 ipv4:{peer_ip}:7789 && \
         drbdsetup attach 1 {disk} {disk} internal {disk_opts} && drbdsetup connect r0 {peer}"
    ));
}

/// Whether the events2 `out` has a line starting with `prefix` that has every field.
fn has_event(out: &str, prefix: &str, fields: &[&str]) -> bool {
    out.lines().any(|l| {
        l.starts_with(prefix) && fields.iter().all(|f| l.split_whitespace().any(|w| w == *f))
    })
}

/// Index of the first events2 line starting with `prefix` that has `field`.
fn event_index(out: &str, prefix: &str, field: &str) -> Option<usize> {
    out.lines()
        .position(|l| l.starts_with(prefix) && l.split_whitespace().any(|w| w == field))
}

fn wait_diskless(a: &Node, b: &Node) {
    wait_for(
        a,
        "local disk Diskless",
        "drbdsetup events2 --now r0 | grep -q 'exists device .*disk:Diskless'",
        120,
    );
    wait_for(
        b,
        "peer-disk Diskless",
        "drbdsetup events2 --now r0 | grep -q 'exists peer-device .*peer-disk:Diskless'",
        60,
    );
}

/// sha256 of all of /dev/drbd1 as `n` reads it (through the peer when diskless).
fn device_hash(n: &Node) -> String {
    n.run_ok("dd if=/dev/drbd1 bs=1M iflag=direct 2>/dev/null | sha256sum")
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Repairs the failed disk and attaches it again; waits for the resync to finish.
fn repair_and_attach(a: &Node, b: &Node, opts: &str) {
    a.dm_fail("fa", false);
    // The meta-data was not written cleanly while the disk failed: apply the activity log as
    // drbdadm attach does.
    a.run_ok("drbdmeta 1 v09 /dev/mapper/fa internal apply-al");
    a.run_ok(&format!(
        "drbdsetup attach 1 /dev/mapper/fa /dev/mapper/fa internal {opts}"
    ));
    up_to_date_both(a, b);
}

#[test]
fn detach_call_helper_and_pass_on() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[DISK_MIB]));
    let (a, b) = (c.node(0), c.node(1));
    let (ip_a, ip_b) = (c.addr(0, 1), c.addr(1, 0));
    for n in [a, b] {
        n.run_ok("modprobe drbd");
    }
    let fa = a.dm_wrap("/dev/vdb", "fa");
    up_on(a, 0, 1, &ip_a, &ip_b, &fa, "--on-io-error=detach");
    up_on(b, 1, 0, &ip_b, &ip_a, "/dev/vdb", "");
    a.run_ok("drbdsetup primary --force r0");
    up_to_date_both(a, b);

    // ---- detach, with a filesystem in use --------------------------------------------
    a.run_ok("mkfs.ext4 -q -F /dev/drbd1 && mkdir -p /mnt && mount /dev/drbd1 /mnt");
    a.run_ok("dd if=/dev/urandom of=/mnt/before bs=64k count=32 2>/dev/null && sync");
    let before = a.run_ok("sha256sum /mnt/before");
    let mut ev = a.spawn("drbdsetup events2 r0");
    // Each file is made in tmpfs first, then copied with fsync; the writer stops at the first
    // error, so its exit status is what the application saw.
    let mut writer = a.spawn(
        "mkdir -p /tmp/src && i=0; while [ $i -lt 30 ]; do \
           dd if=/dev/urandom of=/tmp/src/f$i bs=64k count=4 2>/dev/null || exit 2; \
           dd if=/tmp/src/f$i of=/mnt/f$i bs=64k conv=fsync 2>&1 || exit 1; \
           cat /mnt/f$i > /dev/null || exit 3; \
           i=$((i+1)); sleep 0.2; \
         done; sync || exit 4",
    );
    std::thread::sleep(Duration::from_secs(3));
    a.dm_fail("fa", true);
    wait_diskless(a, b);
    let w = writer.wait(Duration::from_secs(300));
    assert!(
        w.success(),
        "the application saw an error with on-io-error detach:\n{w}"
    );

    let log = a.kernel_log();
    assert!(
        log.contains("Local IO failed in") && log.contains("Detaching..."),
        "no DRBD detach message:\n{log}"
    );
    assert!(log.contains("disk( Failed -> Diskless )"), "{log}");
    let out = ev.wait_for_stdout(Duration::from_secs(30), |o| {
        has_event(o, "change device", &["disk:Diskless"])
    });
    let failed = event_index(&out, "change device", "disk:Failed")
        .unwrap_or_else(|| panic!("no disk:Failed event:\n{out}"));
    let diskless = event_index(&out, "change device", "disk:Diskless")
        .unwrap_or_else(|| panic!("no disk:Diskless event:\n{out}"));
    assert!(
        failed < diskless,
        "Failed must come before Diskless:\n{out}"
    );
    drop(ev);

    // Reads and writes continue through the peer: the page cache is dropped, so every file
    // is read from B; one more file is written diskless.
    a.run_ok("dd if=/dev/urandom of=/mnt/after bs=64k count=16 conv=fsync 2>/dev/null");
    a.run_ok("sync && echo 3 > /proc/sys/vm/drop_caches");
    let sums = a.run_ok("cd /tmp/src && for f in f*; do cmp $f /mnt/$f || exit 1; done; echo ok");
    assert!(sums.contains("ok"), "{sums}");
    assert_eq!(a.run_ok("sha256sum /mnt/before"), before);
    let after = a.run_ok("sha256sum /mnt/after");
    a.run_ok("umount /mnt");
    // The whole device as A reads it (from B) equals B's disk.
    assert_eq!(
        device_hash(a),
        data_hash(b),
        "diskless reads differ from the peer"
    );
    let st = a.run_ok("drbdsetup status r0");
    assert!(st.contains("disk:Diskless"), "{st}");

    // ---- attach again: resync of what changed meanwhile ---------------------------------
    repair_and_attach(a, b, "--on-io-error=detach");
    assert_eq!(
        data_hash(a),
        data_hash(b),
        "not identical after attach + resync"
    );
    // The UUIDs pick a bitmap-based resync with the Primary as SyncTarget (what the peer
    // marked while A was diskless, plus A's activity-log extents, which on this small disk
    // cover most of it).
    let log = a.kernel_log();
    assert!(
        log.contains("sync handshake: target-use-bitmap"),
        "expected a bitmap-based resync towards A:\n{log}"
    );
    assert!(
        b.kernel_log().contains("new current UUID"),
        "B kept its generation"
    );
    a.run_ok("mount /dev/drbd1 /mnt");
    assert_eq!(a.run_ok("sha256sum /mnt/after"), after);
    a.run_ok("umount /mnt");

    // ---- call-local-io-error: a failed read is served by the peer, the handler runs ------
    a.write_file(
        "/tmp/helper.sh",
        b"#!/bin/sh\necho \"$@ minor=$DRBD_MINOR disk=$DRBD_BACKING_DEV\" >> /tmp/helper.log\n",
    );
    a.run_ok("chmod +x /tmp/helper.sh && echo /tmp/helper.sh > /sys/module/drbd/parameters/usermode_helper");
    a.run_ok("drbdsetup disk-options 1 --on-io-error=call-local-io-error");
    let shown = a.run_ok("drbdsetup show r0");
    assert!(
        shown.contains("call-local-io-error"),
        "show lacks on-io-error:\n{shown}"
    );
    let mut ev = a.spawn("drbdsetup events2 r0");
    let want =
        b.run_ok("dd if=/dev/drbd1 bs=4k count=4 skip=1000 iflag=direct 2>/dev/null | sha256sum");
    a.dm_fail("fa", true);
    let before = diskstats(a, "drbd1");
    let got =
        a.run_ok("dd if=/dev/drbd1 bs=4k count=4 skip=1000 iflag=direct 2>/dev/null | sha256sum");
    assert_eq!(got, want, "the retried read must return the peer's data");
    // Each retried read counts once, and none stays in flight.
    let after = diskstats(a, "drbd1");
    assert_eq!(
        (after[DS_READS] - before[DS_READS], after[DS_IN_FLIGHT]),
        (4, 0),
        "retried reads in /proc/diskstats: {before:?} -> {after:?}"
    );
    wait_diskless(a, b);
    let out = ev.wait_for_stdout(Duration::from_secs(60), |o| {
        has_event(o, "response helper", &["helper:local-io-error"])
    });
    assert!(
        has_event(&out, "call helper", &["name:r0", "helper:local-io-error"]),
        "{out}"
    );
    assert!(has_event(&out, "change device", &["disk:Failed"]), "{out}");
    drop(ev);
    let hl = a.run_ok("cat /tmp/helper.log");
    assert!(
        hl.contains("local-io-error r0")
            && hl.contains("minor=1")
            && hl.contains("disk=/dev/mapper/fa"),
        "{hl}"
    );
    let log = a.kernel_log();
    assert!(log.contains("local READ IO error sector"), "{log}");
    repair_and_attach(a, b, "--on-io-error=call-local-io-error");
    assert_eq!(data_hash(a), data_hash(b));

    // ---- an administrative detach of the Primary works the same way ----------------------
    a.run_ok("drbdsetup detach 1");
    wait_diskless(a, b);
    a.run_ok("dd if=/dev/urandom of=/dev/drbd1 bs=64k count=8 seek=20 oflag=direct 2>/dev/null");
    assert_eq!(
        device_hash(a),
        data_hash(b),
        "diskless writes must reach the peer"
    );
    a.run_ok("drbdsetup attach 1 /dev/mapper/fa /dev/mapper/fa internal --on-io-error=detach");
    up_to_date_both(a, b);
    assert_eq!(data_hash(a), data_hash(b));

    // ---- pass_on without a peer: the error reaches the application ------------------------
    a.run_ok("drbdsetup disk-options 1 --on-io-error=pass_on && drbdsetup disconnect r0 1");
    // Written once while the disk works, so that its activity-log extent is hot: the failing
    // request is then the data write itself, not a meta-data write (which always detaches).
    a.run_ok("dd if=/dev/zero of=/dev/drbd1 bs=4k count=1 seek=50 oflag=direct");
    a.dm_fail("fa", true);
    let o = a.run("dd if=/dev/zero of=/dev/drbd1 bs=4k count=1 seek=50 oflag=direct");
    assert!(!o.success(), "pass_on must report the error:\n{o}");
    assert!(
        o.stderr.contains("Input/output error") || o.stdout.contains("Input/output error"),
        "{o}"
    );
    wait_for(
        a,
        "disk Inconsistent",
        "drbdsetup events2 --now r0 | grep -q 'exists device .*disk:Inconsistent'",
        60,
    );
    let st = a.run_ok("drbdsetup status r0");
    assert!(
        !st.contains("Diskless"),
        "pass_on must keep the disk:\n{st}"
    );
    a.dm_fail("fa", false);
    for n in [a, b] {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
}
