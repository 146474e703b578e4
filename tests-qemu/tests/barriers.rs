//! Epochs and barriers (issue 4: "write order and flushes are kept with epochs/barriers").
//!
//! For protocols C and A: every fsync on the Primary (an empty flush) ends an epoch, and the
//! Secondary flushes its backing disk before it acknowledges the barrier, which the flush
//! counter of the Secondary's disk shows; with `disk-flushes no` the Secondary only drains,
//! and its disk sees no flushes (status shows `write-ordering:drain`). A random-write load with fsyncs keeps the connection up (a
//! barrier ack that did not match what was sent would drop it) and ends with identical
//! replicas. The fake-peer test covers a bogus barrier ack.

mod common;

use common::*;
use tests_qemu::{Cluster, ClusterSpec, Node};

/// Flush requests completed by the Secondary's backing disk (`/sys/block/vdb/stat`, field 16).
fn disk_flushes(n: &Node) -> u64 {
    let stat = n.run_ok("cat /sys/block/vdb/stat");
    stat.split_whitespace()
        .nth(15)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{}: no flush counter in {stat:?}", n.name))
}

/// `count` 4 KiB writes to /dev/drbd1 on `a`, each followed by an fsync of the device.
fn fsynced_writes(a: &Node, count: u32, offset_kib: u32) {
    a.run_ok(&format!(
        "fio --name=f --filename=/dev/drbd1 --rw=write --bs=4k --offset={offset_kib}k \
         --size={}k --direct=1 --fsync=1 --output=/dev/null",
        count * 4
    ));
}

/// Flushes the Secondary's disk saw while the Primary did `count` fsynced writes.
fn flushes_during_fsyncs(a: &Node, b: &Node, count: u32, offset_kib: u32) -> u64 {
    let before = disk_flushes(b);
    fsynced_writes(a, count, offset_kib);
    disk_flushes(b) - before
}

fn round(c: &Cluster, protocol: &str) {
    let (a, b) = (c.node(0), c.node(1));
    configured_pair(c, protocol);
    a.run_ok("drbdsetup primary --force r0");
    up_to_date_both(a, b);
    let cache = b.run_ok("cat /sys/block/vdb/queue/write_cache");
    assert_eq!(
        cache.trim(),
        "write back",
        "the Secondary's disk must have a volatile cache for this test"
    );

    let flushed = flushes_during_fsyncs(a, b, 20, 0);
    println!("protocol {protocol}: 20 fsyncs on the Primary, {flushed} flushes on the Secondary");
    // The block layer may let two flushes that meet share one; without barriers it is 0.
    assert!(
        flushed >= 15,
        "protocol {protocol}: 20 fsyncs on the Primary gave only {flushed} flushes on the Secondary"
    );

    let wo = |n: &Node| n.run_ok("drbdsetup status r0 --verbose --statistics");
    assert!(wo(b).contains("write-ordering:flush"), "{}", wo(b));
    b.run_ok("drbdsetup disk-options 1 --disk-flushes=no");
    assert!(wo(b).contains("write-ordering:drain"), "{}", wo(b));
    b.run_ok("dmesg | grep -q 'r0: Method to ensure write ordering: drain'");
    let drained = flushes_during_fsyncs(a, b, 20, 1024);
    println!("protocol {protocol}: with disk-flushes no, {drained} flushes on the Secondary");
    assert!(
        drained < 5,
        "protocol {protocol}: disk-flushes no still flushed {drained} times"
    );
    b.run_ok("drbdsetup disk-options 1 --disk-flushes=yes");

    // Many epochs at once: random writes at queue depth 16 with an fsync every 8 writes.
    let before = disk_flushes(b);
    a.run_ok(
        "fio --name=w --filename=/dev/drbd1 --rw=randwrite --bs=4k --size=8M --direct=1 \
         --ioengine=libaio --iodepth=16 --fsync=8 --number_ios=1024 --randrepeat=0 \
         --output=/dev/null",
    );
    let flushed = disk_flushes(b) - before;
    println!("protocol {protocol}: randwrite QD16 with fsync every 8: {flushed} flushes");
    assert!(
        flushed >= 16,
        "protocol {protocol}: 128 fsyncs gave only {flushed} flushes"
    );
    for n in [a, b] {
        let log = n.run("dmesg").stdout;
        for bad in ["barrier ack", "protocol error", "connection lost"] {
            assert!(
                !log.contains(bad),
                "{} ({protocol}): {bad:?} in the kernel log:\n{log}",
                n.name
            );
        }
    }
    a.run_ok("drbdsetup secondary r0");
    assert_eq!(
        data_hash(a),
        data_hash(b),
        "protocol {protocol}: replicas differ"
    );
    for n in [a, b] {
        n.run_ok("drbdsetup down r0 && rmmod drbd && dmesg -c >/dev/null");
    }
}

#[test]
fn fsync_flushes_the_peer_and_epochs_keep_the_replicas_identical() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[16]));
    round(&c, "C");
    round(&c, "A");
}
