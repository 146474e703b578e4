//! Two-node replication (issue 4, first slice): connect over TCP, `primary --force` starts a
//! full sync from the Primary, both end UpToDate with byte-identical data areas; a file system
//! written on one node is seen on the other after a role switch; writes made while the link is
//! cut reach the peer after reconnection, and only those blocks are resynced; both sides writing while apart is a split brain
//! (both StandAlone, nothing overwritten), recovered with `connect --discard-my-data` on one
//! side (both sides' changes resynced from the other).

mod common;

use common::*;
use tests_qemu::{Cluster, ClusterSpec};

const DISK_MIB: u64 = 32;

#[test]
fn two_nodes_sync_failover_reconnect_split_brain() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[DISK_MIB]));
    let (a, b) = (c.node(0), c.node(1));
    let (ip_a, ip_b) = (c.addr(0, 1), c.addr(1, 0));
    for n in [a, b] {
        n.run_ok("modprobe drbd");
    }
    configure(a, 0, 1, &ip_a, &ip_b, "C");
    configure(b, 1, 0, &ip_b, &ip_a, "C");
    for n in [a, b] {
        wait_for(
            n,
            "Connected",
            "drbdsetup events2 --now r0 | grep -q 'exists connection .*connection:Connected'",
            60,
        );
    }
    let st = a.run_ok("drbdsetup status r0");
    assert!(st.contains("disk:Inconsistent"), "fresh meta-data:\n{st}");

    // 1. Initial full sync from the forced Primary; identical data areas afterwards.
    a.run_ok("dd if=/dev/urandom of=/dev/vdb bs=1M count=8 seek=4 oflag=direct 2>/dev/null");
    a.run_ok("drbdsetup primary --force r0");
    up_to_date_both(a, b);
    assert_eq!(
        data_hash(a),
        data_hash(b),
        "data areas differ after the full sync"
    );

    // A Secondary cannot be promoted while its peer is Primary.
    let o = b.run("drbdsetup primary r0");
    assert!(!o.success(), "second Primary allowed:\n{o}");

    // 2. File system on A, fail over to B, and back.
    a.run_ok("mkfs.ext4 -q /dev/drbd1 && mkdir -p /mnt && mount /dev/drbd1 /mnt");
    a.run_ok(
        "dd if=/dev/urandom of=/mnt/f1 bs=64k count=64 2>/dev/null && cp /mnt/f1 /mnt/f2 && sync",
    );
    let sums_a = a.run_ok("cd /mnt && sha256sum f1 f2");
    a.run_ok("umount /mnt && drbdsetup secondary r0");
    wait_for(
        b,
        "peer Secondary",
        "drbdsetup events2 --now r0 | grep -q 'exists connection .*role:Secondary'",
        30,
    );
    b.run_ok("drbdsetup primary r0 && mkdir -p /mnt && mount /dev/drbd1 /mnt");
    let sums_b = b.run_ok("cd /mnt && sha256sum f1 f2");
    assert_eq!(sums_a, sums_b, "files differ after failover");
    b.run_ok("echo from-b > /mnt/f3 && sync && umount /mnt && drbdsetup secondary r0");
    wait_for(
        a,
        "peer Secondary",
        "drbdsetup events2 --now r0 | grep -q 'exists connection .*role:Secondary'",
        30,
    );
    a.run_ok("drbdsetup primary r0 && mount /dev/drbd1 /mnt");
    assert_eq!(a.run_ok("cat /mnt/f3").trim(), "from-b");
    a.run_ok("umount /mnt");

    // 3. Cut the link, write 8 MiB on A, restore: B catches up and the data areas match.
    c.set_link(0, 1, false);
    wait_link_loss(a);
    a.run_ok("dd if=/dev/urandom of=/dev/drbd1 bs=1M count=8 seek=16 oflag=direct 2>/dev/null");
    c.set_link(0, 1, true);
    up_to_date_both(a, b);
    assert_eq!(
        data_hash(a),
        data_hash(b),
        "data areas differ after reconnect"
    );
    // Only the blocks written while apart were resynced (8 MiB of a 32 MiB device).
    let kib = resynced_kib(a);
    assert!(
        (8192..=9216).contains(&kib),
        "resynced {kib} KiB after 8 MiB of disconnected writes"
    );

    // 5. Split brain: both Primary and writing while apart; reconnect leaves both StandAlone.
    a.run_ok("drbdsetup secondary r0");
    c.set_link(0, 1, false);
    for n in [a, b] {
        wait_link_loss(n);
    }
    // Different blocks on each side, so recovery must resync both sides' changes.
    for (n, seek) in [(a, 0), (b, 64)] {
        n.run_ok(&format!(
            "drbdsetup primary r0 && dd if=/dev/urandom of=/dev/drbd1 bs=4k count=16 seek={seek} oflag=direct 2>/dev/null"
        ));
    }
    let hash_b = data_hash(b);
    c.set_link(0, 1, true);
    for n in [a, b] {
        wait_for(
            n,
            "StandAlone after split brain",
            "drbdsetup events2 --now r0 | grep -q 'exists connection .*connection:StandAlone'",
            90,
        );
    }
    assert!(
        a.run_ok("dmesg").contains("Split-Brain detected"),
        "no split-brain message in the kernel log"
    );
    assert_eq!(hash_b, data_hash(b), "split brain overwrote data");

    // Recovery as the guides do it: B gives up its changes, A connects again (no disconnect
    // first: a StandAlone connection after a split brain takes `connect` directly).
    b.run_ok("drbdsetup secondary r0 && drbdsetup disconnect r0 0 && drbdsetup connect r0 0 --discard-my-data");
    a.run_ok("drbdsetup connect r0 1");
    up_to_date_both(a, b);
    assert_eq!(
        data_hash(a),
        data_hash(b),
        "B differs from A after --discard-my-data"
    );
    // A's 16 blocks and B's own 16 blocks, nothing else.
    assert_eq!(resynced_kib(a), 128, "resync after split-brain recovery");
    assert!(
        b.run_ok("dmesg").contains("discards its changes"),
        "no resolution message on B"
    );
    // The flag is used up: a plain reconnect does not discard anything again.
    b.run_ok("drbdsetup disconnect r0 0 && drbdsetup connect r0 0");
    up_to_date_both(a, b);
    let resolutions = b.run_ok("dmesg | grep -c 'discards its changes' || true");
    assert_eq!(resolutions.trim(), "1", "--discard-my-data applied twice");
    assert_eq!(
        data_hash(a),
        data_hash(b),
        "data differ after a plain reconnect"
    );

    for n in [a, b] {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
}
