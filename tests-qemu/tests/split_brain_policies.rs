//! Automatic split-brain recovery with the after-sb policies of seed article 001
//! (`after-sb-0pri discard-younger-primary; after-sb-1pri consensus;`): both nodes write while
//! apart, both are Secondary when the link returns, and the policy picks the side whose
//! changes are discarded; both sides' changed blocks are resynced from the other, and the
//! replicas end identical. The same split brain without policies stays StandAlone.

mod common;

use common::*;
use tests_qemu::{Cluster, ClusterSpec, Node};

const POLICIES: &str =
    "--protocol=C --after-sb-0pri=discard-younger-primary --after-sb-1pri=consensus";

fn both(c: &Cluster) -> [&Node; 2] {
    [c.node(0), c.node(1)]
}

/// Cuts the link, lets each node be Primary for a while and write 16 blocks of its own, and
/// leaves both Secondary.
fn split_brain(c: &Cluster) {
    c.set_link(0, 1, false);
    for n in both(c) {
        wait_link_loss(n);
    }
    for (n, seek) in [(c.node(0), 0), (c.node(1), 64)] {
        n.run_ok(&format!(
            "drbdsetup primary r0 && dd if=/dev/urandom of=/dev/drbd1 bs=4k count=16 seek={seek} oflag=direct 2>/dev/null && drbdsetup secondary r0"
        ));
    }
    c.set_link(0, 1, true);
}

#[test]
fn after_sb_0pri_policy_resolves_split_brain() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[32]));
    let (a, b) = (c.node(0), c.node(1));
    let (ip_a, ip_b) = (c.addr(0, 1), c.addr(1, 0));
    for n in [a, b] {
        n.run_ok("modprobe drbd");
    }
    for (n, me, peer, mine, theirs) in [(a, 0, 1, &ip_a, &ip_b), (b, 1, 0, &ip_b, &ip_a)] {
        create_md_ok(n, 1, "/dev/vdb", 1);
        bring_up_with(n, me, peer, mine, theirs, POLICIES);
    }
    let shown = a.run_ok("drbdsetup show r0");
    assert!(
        shown.contains("discard-younger-primary") && shown.contains("consensus"),
        "policies not kept:\n{shown}"
    );
    a.run_ok("drbdsetup primary --force r0");
    up_to_date_both(a, b);
    a.run_ok("drbdsetup secondary r0");

    split_brain(&c);
    up_to_date_both(a, b);
    let logs = format!("{}{}", a.run_ok("dmesg"), b.run_ok("dmesg"));
    assert!(
        logs.contains("0 primaries, automatically solved"),
        "no automatic resolution in the logs"
    );
    assert_eq!(data_hash(a), data_hash(b), "replicas differ after recovery");
    // Both sides' 16 blocks went from the surviving side to the other.
    let source = if a.run_ok("dmesg").contains("Sync from this node") {
        a
    } else {
        b
    };
    assert_eq!(resynced_kib(source), 128, "resync after automatic recovery");

    // Without policies the same situation is left to the administrator.
    for n in [a, b] {
        n.run_ok("drbdsetup net-options r0 $(( 1 - $(hostname | tr -dc 0-9) )) --after-sb-0pri=disconnect --after-sb-1pri=disconnect");
    }
    split_brain(&c);
    for n in [a, b] {
        wait_for(
            n,
            "StandAlone after split brain",
            "drbdsetup events2 --now r0 | grep -q 'exists connection .*connection:StandAlone'",
            90,
        );
    }
    for n in [a, b] {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
}

/// `after-sb-1pri call-pri-lost-after-sb` with `after-sb-0pri discard-least-changes`: the
/// Primary wrote less while apart, so its data loses. Not in use, it gives up the role and
/// becomes SyncTarget; held open, it cannot, so the `pri-lost-after-sb` helper runs and the
/// connection goes StandAlone with its data untouched.
#[test]
fn call_pri_lost_after_sb_demotes_or_calls_the_helper() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[32]));
    let (a, b) = (c.node(0), c.node(1));
    let (ip_a, ip_b) = (c.addr(0, 1), c.addr(1, 0));
    let policies =
        "--protocol=C --after-sb-0pri=discard-least-changes --after-sb-1pri=call-pri-lost-after-sb";
    for n in [a, b] {
        n.run_ok("modprobe drbd");
        n.write_file(
            "/tmp/helper.sh",
            b"#!/bin/sh\necho \"$@\" >> /tmp/h.log\nexit 0\n",
        );
        n.run_ok("chmod +x /tmp/helper.sh && echo /tmp/helper.sh > /sys/module/drbd/parameters/usermode_helper");
    }
    for (n, me, peer, mine, theirs) in [(a, 0, 1, &ip_a, &ip_b), (b, 1, 0, &ip_b, &ip_a)] {
        create_md_ok(n, 1, "/dev/vdb", 1);
        bring_up_with(n, me, peer, mine, theirs, policies);
    }
    a.run_ok("drbdsetup primary --force r0");
    up_to_date_both(a, b);

    // Apart: the Primary node0 writes 8 blocks, node1 (Primary for a while) 32.
    let apart = |c: &Cluster| {
        c.set_link(0, 1, false);
        for n in [c.node(0), c.node(1)] {
            wait_link_loss(n);
        }
        a.run_ok("dd if=/dev/urandom of=/dev/drbd1 bs=4k count=8 oflag=direct 2>/dev/null");
        b.run_ok("drbdsetup primary r0 && dd if=/dev/urandom of=/dev/drbd1 bs=4k count=32 seek=64 oflag=direct 2>/dev/null && drbdsetup secondary r0");
    };
    apart(&c);
    c.set_link(0, 1, true);
    up_to_date_both(a, b);
    assert!(
        a.run_ok("dmesg")
            .contains("Successfully gave up primary role."),
        "node0 did not give up the role"
    );
    assert!(
        a.run_ok("drbdsetup status r0")
            .starts_with("r0 role:Secondary"),
        "node0 is still Primary"
    );
    assert_eq!(data_hash(a), data_hash(b), "replicas differ after recovery");
    let log = a.run_ok("cat /tmp/h.log");
    assert!(
        !log.contains("pri-lost-after-sb"),
        "helper ran although the demotion worked:\n{log}"
    );

    // Again, but node0's device is held open: it cannot be demoted.
    a.run_ok("drbdsetup primary r0");
    let mut holder = a.spawn("sleep 600 < /dev/drbd1");
    apart(&c);
    let before = data_hash(a);
    c.set_link(0, 1, true);
    wait_for(
        a,
        "StandAlone after the failed demotion",
        "drbdsetup events2 --now r0 | grep -q 'exists connection .*connection:StandAlone'",
        90,
    );
    wait_for(
        a,
        "pri-lost-after-sb helper",
        "grep -qx 'pri-lost-after-sb r0' /tmp/h.log",
        30,
    );
    assert!(
        a.run_ok("drbdsetup status r0")
            .starts_with("r0 role:Primary"),
        "node0 lost its role although in use"
    );
    assert_eq!(data_hash(a), before, "node0's data changed");
    holder.kill();
    for n in [a, b] {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
}
