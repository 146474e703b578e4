//! Application writes during a resync: the SyncSource reads the next chunk while the previous
//! one is on the wire, and a write that lands in a chunk being read must win on the peer (the
//! blocks it touched are left out of the chunk's send and read again later). A
//! Primary runs random 4 KiB O_DIRECT writes (fio) across the whole device during the initial
//! sync and a later partial resync over an 8 Mbit/s link; afterwards both replicas are
//! byte-identical, and the kernel log shows blocks that were read again after such a write.

mod common;

use common::*;
use std::time::Duration;
use tests_qemu::{Cluster, ClusterSpec};

/// Small, so that the writes often hit a chunk in flight.
const DISK_MIB: u64 = 8;

fn fio_randwrite(seconds: u32) -> String {
    format!(
        "fio --name=w --filename=/dev/drbd1 --rw=randwrite --bs=4k --direct=1 --ioengine=libaio \
         --iodepth=64 --numjobs=2 --time_based --runtime={seconds} --randrepeat=0 --group_reporting"
    )
}

/// The count of blocks the last resync left out for a newer write, from the kernel log.
fn reread_blocks(n: &tests_qemu::Node) -> u64 {
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
    // A slow link keeps the resync running for seconds and fills its send window (4 MiB);
    // while it waits for acks, writes run, and one chunk (1/32 of the device) is always being
    // read ahead. A ping may wait behind a second of queued data: allow 5 s.
    a.netem(1, Some("rate 8mbit"));
    for (n, peer) in [(a, 1), (b, 0)] {
        n.run_ok(&format!(
            "drbdsetup net-options r0 {peer} --ping-timeout=50"
        ));
    }
    a.run_ok("drbdsetup primary --force r0");
    let mut w = a.spawn(&fio_randwrite(15));
    let o = w.wait(Duration::from_secs(120));
    assert!(o.success(), "fio failed: {o}");
    let iops = |out: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with("write:"))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    println!("fio during the initial sync: {}", iops(&o.stdout));
    up_to_date_both(a, b);
    let first = reread_blocks(a);
    assert_eq!(
        data_hash(a),
        data_hash(b),
        "replicas differ after the initial sync"
    );

    // Partial resyncs under writes: the peer misses 6 MiB, then catches up while fio runs.
    // Hits are random (a few per resync): at least one such resync, repeated (up to 4) until
    // some block was read again.
    let mut rereads = vec![first];
    while rereads.len() < 2 || (rereads.iter().sum::<u64>() == 0 && rereads.len() <= 4) {
        c.set_link(0, 1, false);
        wait_link_loss(a);
        a.run_ok("dd if=/dev/urandom of=/dev/drbd1 bs=1M count=6 oflag=direct 2>/dev/null");
        let mut w = a.spawn(&fio_randwrite(10));
        c.set_link(0, 1, true);
        let o = w.wait(Duration::from_secs(120));
        assert!(o.success(), "fio failed: {o}");
        println!("fio during the resync: {}", iops(&o.stdout));
        up_to_date_both(a, b);
        rereads.push(reread_blocks(a));
        assert_eq!(
            data_hash(a),
            data_hash(b),
            "replicas differ after the resync"
        );
    }
    println!("blocks read again after a write, per resync: {rereads:?}");
    assert!(
        rereads.iter().sum::<u64>() > 0,
        "no write ever hit a chunk in flight: the test did not exercise the re-read"
    );
    for n in [a, b] {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
}
