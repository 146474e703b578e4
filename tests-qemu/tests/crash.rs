//! Primary crash (issue 4, scenario 4): a writer on the Primary writes tagged 4 KiB blocks with
//! O_DIRECT and reports every completed write on the kernel console, which the host captures,
//! so the report survives the guest. The Primary is then powered off mid-write; the Secondary
//! is promoted and must hold every reported block. The crashed node boots again, applies its
//! activity log, rejoins as Secondary, is resynced from the new Primary (only the extents the
//! log named plus the new Primary's writes), and ends byte-identical.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tests_qemu::{Cluster, ClusterSpec, Node};

const DISK_MIB: u64 = 32;
/// Blocks the writer may use (block `i` carries tag `i`; no block is written twice).
const MAX_BLOCKS: u32 = 6000;
/// Completed writes to wait for before the power cut.
const ACKS_BEFORE_CRASH: usize = 60;

/// A shell loop writing block `i` with the tag `tag-%08d` and reporting it once `dd` returned
/// (O_DIRECT with protocol C: the local disk and the peer have it).
fn writer_script() -> String {
    format!(
        "i=1; while [ $i -lt {MAX_BLOCKS} ]; do \
           {{ printf 'tag-%08d' $i; head -c 4084 /dev/zero; }} | \
           dd of=/dev/drbd1 bs=4096 seek=$i count=1 oflag=direct conv=notrunc 2>/dev/null || exit 1; \
           echo \"drbdrs-ack $i\" > /dev/kmsg; i=$((i+1)); \
         done"
    )
}

/// The tags the writer reported in the console log of the current boot.
fn acked(log: &str) -> BTreeSet<u32> {
    log.lines()
        .filter_map(|l| l.split("drbdrs-ack ").nth(1))
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

/// The tags present in the first `blocks` blocks of /dev/drbd1.
fn tags_on(n: &Node, blocks: u32) -> BTreeSet<u32> {
    let out = n.run_ok(&format!(
        "dd if=/dev/drbd1 bs=4096 count={blocks} iflag=direct 2>/dev/null | tr -c 'a-z0-9-' '\\n' | grep '^tag-' || true"
    ));
    out.lines()
        .filter_map(|l| l.strip_prefix("tag-"))
        .filter_map(|n| n.get(..8)?.parse().ok())
        .collect()
}

#[test]
fn primary_crash_loses_no_acknowledged_write() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[DISK_MIB]));
    let (a, b) = (c.node(0), c.node(1));
    let (ip_a, ip_b) = configured_pair(&c, "C");
    a.run_ok("drbdsetup primary --force r0");
    up_to_date_both(a, b);

    // Write until enough completions were reported, then cut the power mid-write.
    let writer = a.spawn(&writer_script());
    let deadline = Instant::now() + Duration::from_secs(240);
    while acked(&a.kernel_log()).len() < ACKS_BEFORE_CRASH {
        assert!(
            Instant::now() < deadline,
            "the writer reported too few writes:\n{}",
            a.run("dmesg | tail -n 20")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    a.hard_kill();
    drop(writer);
    let reported = acked(&a.kernel_log());
    assert!(reported.len() >= ACKS_BEFORE_CRASH);

    // The survivor notices, is promoted, and holds every reported write.
    wait_for(
        b,
        "loss of the Primary",
        "drbdsetup events2 --now r0 | grep -q 'exists connection .*connection:Connecting'",
        60,
    );
    b.run_ok("drbdsetup primary r0");
    let present = tags_on(b, MAX_BLOCKS);
    let missing: Vec<_> = reported.difference(&present).collect();
    assert!(
        missing.is_empty(),
        "acknowledged writes missing on the survivor: {missing:?}"
    );
    // The new Primary writes too, so both sides have something the other lacks.
    b.run_ok("dd if=/dev/urandom of=/dev/drbd1 bs=4k count=8 seek=7000 oflag=direct 2>/dev/null");

    // The crashed node boots, rejoins as Secondary and is resynced from the new Primary.
    a.start();
    a.run_ok("modprobe drbd");
    // Unclean meta-data is refused until the activity log is applied, as with DRBD.
    let o = a.run("drbdsetup new-resource r0 0 && drbdsetup new-minor r0 1 0 && drbdsetup attach 1 /dev/vdb /dev/vdb internal");
    assert_fails(&o, 10, &["unclean meta-data"]);
    a.run_ok("drbdsetup down r0");
    // What `drbdadm attach` does first.
    a.run_ok("drbdmeta 1 v09 /dev/vdb internal apply-al");
    bring_up(a, 0, 1, &ip_a, &ip_b, "C");
    let log = a.run_ok("dmesg");
    assert!(
        log.contains("crashed as Primary"),
        "crash not recognised at attach:\n{log}"
    );
    up_to_date_both(a, b);
    let role = a.run_ok("drbdsetup events2 --now r0 | grep '^exists resource'");
    assert!(role.contains("role:Secondary"), "rejoined as {role}");
    assert_eq!(
        data_hash(a),
        data_hash(b),
        "replicas differ after the rejoin"
    );
    // Only what the activity log and the bitmap name: the writer's extent (4 MiB, the writes
    // all fall into the first one) and the new Primary's 32 KiB, not the 32 MiB device.
    let kib = resynced_kib(b);
    assert!(
        (4096 + 32..=2 * 4096 + 32).contains(&kib),
        "resynced {kib} KiB after the crash"
    );

    // Repaired for good: after a clean restart of the node nothing is resynced again.
    a.run_ok("drbdsetup down r0");
    bring_up(a, 0, 1, &ip_a, &ip_b, "C");
    up_to_date_both(a, b);
    assert_eq!(
        data_hash(a),
        data_hash(b),
        "replicas differ after the restart"
    );
    let again = resynced_kib(b);
    assert!(again <= 64, "a clean restart resynced {again} KiB");
    for n in [a, b] {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
}
