//! Protocols A and B (issue 4, scenario 6): the initial full sync, a file system that survives a
//! failover, and a link cut whose disconnected writes are the only blocks resynced, each with
//! byte-identical data areas afterwards. Protocol C is covered by `replication.rs`.

mod common;

use common::*;
use tests_qemu::{Cluster, ClusterSpec, Node};

const DISK_MIB: u64 = 32;

fn round(c: &Cluster, protocol: &str) {
    let (a, b) = (c.node(0), c.node(1));
    let (ip_a, ip_b) = (c.addr(0, 1), c.addr(1, 0));
    configure(a, 0, 1, &ip_a, &ip_b, protocol);
    configure(b, 1, 0, &ip_b, &ip_a, protocol);
    for n in [a, b] {
        wait_for(
            n,
            "Connected",
            "drbdsetup events2 --now r0 | grep -q 'exists connection .*connection:Connected'",
            60,
        );
    }
    let shown = a.run_ok("drbdsetup show r0");
    let in_effect = shown.lines().any(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        words == ["protocol", &format!("{protocol};")]
    });
    assert!(in_effect, "protocol {protocol} not in effect:\n{shown}");

    // Initial sync of random data from the forced Primary.
    a.run_ok("dd if=/dev/urandom of=/dev/vdb bs=1M count=4 seek=2 oflag=direct 2>/dev/null");
    a.run_ok("drbdsetup primary --force r0");
    up_to_date_both(a, b);
    assert_eq!(data_hash(a), data_hash(b), "protocol {protocol}: full sync");

    // Writes through the file system reach the peer; fail over and compare.
    a.run_ok("mkfs.ext4 -q /dev/drbd1 && mkdir -p /mnt && mount /dev/drbd1 /mnt");
    a.run_ok("dd if=/dev/urandom of=/mnt/f bs=64k count=32 2>/dev/null && sync");
    let sum = a.run_ok("sha256sum /mnt/f");
    a.run_ok("umount /mnt && drbdsetup secondary r0");
    wait_for(
        b,
        "peer Secondary",
        "drbdsetup events2 --now r0 | grep -q 'exists connection .*role:Secondary'",
        30,
    );
    b.run_ok("drbdsetup primary r0 && mkdir -p /mnt && mount /dev/drbd1 /mnt");
    assert_eq!(
        b.run_ok("sha256sum /mnt/f"),
        sum,
        "protocol {protocol}: file differs after failover"
    );
    b.run_ok("umount /mnt && drbdsetup secondary r0");

    // Disconnected writes on the Primary: only those blocks are resynced.
    wait_for(
        a,
        "peer Secondary",
        "drbdsetup events2 --now r0 | grep -q 'exists connection .*role:Secondary'",
        30,
    );
    a.run_ok("drbdsetup primary r0");
    c.set_link(0, 1, false);
    wait_link_loss(a);
    a.run_ok("dd if=/dev/urandom of=/dev/drbd1 bs=1M count=4 seek=8 oflag=direct 2>/dev/null");
    c.set_link(0, 1, true);
    up_to_date_both(a, b);
    let kib = resynced_kib(a);
    assert!(
        (4096..=4608).contains(&kib),
        "protocol {protocol}: resynced {kib} KiB after 4 MiB of disconnected writes"
    );
    assert_eq!(
        data_hash(a),
        data_hash(b),
        "protocol {protocol}: after reconnect"
    );
    for n in [a, b] {
        n.run_ok("drbdsetup down r0");
    }
}

fn down_everywhere(nodes: [&Node; 2]) {
    for n in nodes {
        n.run_ok("rmmod drbd");
    }
}

#[test]
fn protocols_a_and_b_sync_fail_over_and_resync() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[DISK_MIB]));
    for n in [c.node(0), c.node(1)] {
        n.run_ok("modprobe drbd");
    }
    round(&c, "A");
    round(&c, "B");
    down_everywhere([c.node(0), c.node(1)]);
}
