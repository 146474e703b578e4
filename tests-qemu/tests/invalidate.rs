//! `invalidate` and `invalidate-remote` (issue 4): data damaged behind DRBD's back on the
//! Secondary is repaired by a full resync from the Primary, started from either side, while
//! connected or at the next connection; refused where it would lose the only good copy.

mod common;

use common::*;
use tests_qemu::{Cluster, ClusterSpec, Node};

/// Overwrites 1 MiB of the Secondary's data area on its backing disk (not through DRBD).
fn damage(n: &Node) {
    n.run_ok("dd if=/dev/urandom of=/dev/vdb bs=1M count=1 seek=3 oflag=direct 2>/dev/null");
}

/// KiB of the whole device.
fn device_kib(n: &Node) -> u64 {
    let sectors: u64 = n
        .run_ok("blockdev --getsz /dev/drbd1")
        .trim()
        .parse()
        .expect("size");
    sectors / 2
}

#[test]
fn invalidate_and_invalidate_remote_resync_everything() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[32]));
    let (a, b) = (c.node(0), c.node(1));
    configured_pair(&c, "C");
    a.run_ok("drbdsetup primary --force r0");
    up_to_date_both(a, b);
    let full = device_kib(a);

    // The Primary keeps its data.
    let o = a.run("drbdsetup invalidate 1");
    assert!(!o.success(), "invalidate on the Primary succeeded\n{o}");

    // invalidate on the Secondary: everything comes back from the Primary.
    damage(b);
    assert_ne!(data_hash(a), data_hash(b), "damage not visible");
    b.run_ok("drbdsetup invalidate 1");
    up_to_date_both(a, b);
    assert_eq!(data_hash(a), data_hash(b), "invalidate did not repair");
    assert_eq!(
        resynced_kib(a),
        full,
        "invalidate resynced part of the device"
    );

    // invalidate-remote on the Primary does the same from the other side.
    damage(b);
    a.run_ok("drbdsetup invalidate-remote r0 1 0");
    up_to_date_both(a, b);
    assert_eq!(
        data_hash(a),
        data_hash(b),
        "invalidate-remote did not repair"
    );
    assert_eq!(resynced_kib(a), full, "invalidate-remote resynced part");
    assert!(
        b.run_ok("dmesg").contains("invalidate-remote"),
        "the target did not log why it was resynced"
    );

    // Without a connection: refused remotely, deferred locally until the link is back.
    c.set_link(0, 1, false);
    for n in [a, b] {
        wait_link_loss(n);
    }
    let o = a.run("drbdsetup invalidate-remote r0 1 0");
    assert!(!o.success(), "invalidate-remote without a connection\n{o}");
    damage(b);
    b.run_ok("drbdsetup invalidate 1");
    let st = b.run_ok("drbdsetup status r0");
    assert!(st.contains("disk:Inconsistent"), "not Inconsistent:\n{st}");
    c.set_link(0, 1, true);
    up_to_date_both(a, b);
    assert_eq!(
        data_hash(a),
        data_hash(b),
        "deferred invalidate did not repair"
    );
    for n in [a, b] {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
}
