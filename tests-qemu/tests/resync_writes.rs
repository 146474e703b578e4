//! Application writes during a resync: the SyncSource reads the next chunk while the previous
//! one is on the wire, and a write that lands in a chunk being read must win on the peer. A
//! Primary runs random 4 KiB O_DIRECT writes (fio) across the whole device during the initial
//! sync and a later partial resync over a slow link; afterwards both replicas are
//! byte-identical, and the kernel log shows chunks that were read again after such a write.

mod common;

use common::*;
use std::time::Duration;
use tests_qemu::{Cluster, ClusterSpec};

/// Small, so that the writes often hit a chunk in flight.
const DISK_MIB: u64 = 16;

fn fio_randwrite(seconds: u32) -> String {
    format!(
        "fio --name=w --filename=/dev/drbd1 --rw=randwrite --bs=4k --direct=1 --ioengine=psync \
         --time_based --runtime={seconds} --randrepeat=0 --output=/dev/null"
    )
}

/// The count of chunks the last resync dropped for a newer write, from the kernel log.
fn reread_chunks(n: &tests_qemu::Node) -> u64 {
    let log = n.run_ok("dmesg | grep 'resync done (' | tail -n 1");
    log.split("KiB sent, ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no resync statistics in the log: {log:?}"))
}

#[test]
fn writes_during_resync_end_identical() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[DISK_MIB]));
    let (a, b) = (c.node(0), c.node(1));
    configured_pair(&c, "C");
    // A slow link keeps chunks waiting for the send window, so writes often hit one.
    a.netem(1, Some("rate 24mbit"));
    a.run_ok("drbdsetup primary --force r0");
    let mut w = a.spawn(&fio_randwrite(15));
    up_to_date_both(a, b);
    let o = w.wait(Duration::from_secs(120));
    assert!(o.success(), "fio failed: {o}");
    let first = reread_chunks(a);
    assert_eq!(
        data_hash(a),
        data_hash(b),
        "replicas differ after the initial sync"
    );

    // A partial resync under writes: the peer misses 8 MiB, then catches up while fio runs.
    c.set_link(0, 1, false);
    wait_link_loss(a);
    a.run_ok("dd if=/dev/urandom of=/dev/drbd1 bs=1M count=8 oflag=direct 2>/dev/null");
    let mut w = a.spawn(&fio_randwrite(10));
    c.set_link(0, 1, true);
    up_to_date_both(a, b);
    let o = w.wait(Duration::from_secs(120));
    assert!(o.success(), "fio failed: {o}");
    let second = reread_chunks(a);
    assert_eq!(
        data_hash(a),
        data_hash(b),
        "replicas differ after the resync"
    );
    println!("chunks read again after a write: initial sync {first}, resync {second}");
    assert!(
        first + second > 0,
        "no write ever hit a chunk in flight: the test did not exercise the re-read"
    );
    for n in [a, b] {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
}
