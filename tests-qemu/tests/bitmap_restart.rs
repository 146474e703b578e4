//! A node restarted while its peer is behind keeps the blocks it owes: the Primary writes
//! 4 MiB while the link is down, is demoted and taken down (`drbdsetup down`), comes up again
//! as Secondary, and when the link returns only those 4 MiB are resynced, not the 64 MiB
//! device. The bits travel through the on-disk bitmap, written at detach.

mod common;

use common::*;
use tests_qemu::{Cluster, ClusterSpec};

const DISK_MIB: u64 = 64;

#[test]
fn restart_while_behind_resyncs_only_the_marked_blocks() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[DISK_MIB]));
    let (a, b) = (c.node(0), c.node(1));
    let (ip_a, ip_b) = configured_pair(&c, "C");
    a.run_ok("drbdsetup primary --force r0");
    up_to_date_both(a, b);

    // The peer falls behind by 4 MiB (two runs in different activity-log extents).
    c.set_link(0, 1, false);
    wait_link_loss(a);
    a.run_ok("dd if=/dev/urandom of=/dev/drbd1 bs=64k count=32 seek=16 oflag=direct 2>/dev/null");
    a.run_ok("dd if=/dev/urandom of=/dev/drbd1 bs=64k count=32 seek=640 oflag=direct 2>/dev/null");

    // Clean restart of the node that holds the only copy of those writes.
    a.run_ok("drbdsetup secondary r0 && drbdsetup down r0");
    let log = a.run_ok("dmesg | grep 'written to the on-disk bitmap' | tail -n 1");
    assert!(
        log.contains("4096 KiB out of sync"),
        "detach did not persist the 4 MiB owed to the peer: {log:?}"
    );
    bring_up(a, 0, 1, &ip_a, &ip_b, "C");
    let state = a.run_ok("drbdsetup events2 --now r0 | grep '^exists device'");
    assert!(
        !state.contains("disk:Inconsistent"),
        "the restarted node lost its data: {state}"
    );

    c.set_link(0, 1, true);
    up_to_date_both(a, b);
    assert_eq!(
        data_hash(a),
        data_hash(b),
        "replicas differ after the resync"
    );
    let kib = resynced_kib(a);
    assert!(
        (4096..=4096 + 256).contains(&kib),
        "resynced {kib} KiB after a restart while behind (4096 expected, device {} KiB)",
        DISK_MIB * 1024
    );

    // Nothing is owed any more: another restart resyncs nothing (at most an empty run).
    let resyncs = || {
        a.run("dmesg | grep -c 'resync done ('")
            .stdout
            .trim()
            .to_string()
    };
    let before = resyncs();
    a.run_ok("drbdsetup down r0");
    bring_up(a, 0, 1, &ip_a, &ip_b, "C");
    up_to_date_both(a, b);
    if resyncs() != before {
        let again = resynced_kib(a);
        assert!(again <= 64, "a clean restart resynced {again} KiB");
    }
    for n in [a, b] {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
}
