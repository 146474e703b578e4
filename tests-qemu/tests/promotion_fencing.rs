//! Promotion while the peer is unreachable, with `fencing resource-only` (DRBD's
//! `SS_PRIMARY_NOP`): the Secondary runs `fence-peer` before it becomes Primary. A broken
//! helper (exit 1) refuses the promotion with "Refusing to be Primary while peer is not
//! outdated"; `--force` promotes anyway ("Forced into split brain situation!"); exit 4
//! outdates the peer and promotes. That the peer is Outdated is kept in its meta-data slot
//! (`MDF_PEER_OUTDATED`): after `down` and `up` it shows as Outdated and a promotion needs no
//! helper. When the peer returns, syncs and reports UpToDate, the mark is gone, so the next
//! promotion without it must fence again, also the auto-promotion of an open for writing.
//!
//! The helper is a shell script set as the module's `usermode_helper`; it logs each call
//! and exits with the code in `/tmp/fence.code`.

mod common;

use common::*;
use tests_qemu::{Cluster, ClusterSpec, Node};

const SCRIPT: &str = r#"#!/bin/sh
[ "$1" = fence-peer ] || exit 0
echo "fence-peer $2 peer=$DRBD_PEER_NODE_ID" >> /tmp/fence.log
exit $(cat /tmp/fence.code)
"#;

const NET: &str = "--protocol=C --fencing=resource-only";

fn helper_calls(n: &Node) -> usize {
    n.run_ok("grep -c '^fence-peer r0 peer=0' /tmp/fence.log || true")
        .trim()
        .parse()
        .unwrap_or(0)
}

/// The resource's current state (events2 lists every peer device, connected or not).
fn status(n: &Node) -> String {
    n.run_ok("drbdsetup events2 --now r0")
}

fn demote(n: &Node) {
    n.run_ok("drbdsetup secondary r0");
}

#[test]
fn promotion_fences_an_unreachable_peer_and_remembers_it_outdated() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[16]));
    let (a, b) = (c.node(0), c.node(1));
    let (ip_a, ip_b) = (c.addr(0, 1), c.addr(1, 0));
    for n in [a, b] {
        with_helper_script(n, SCRIPT);
    }
    bring_up_with(a, 0, 1, &ip_a, &ip_b, NET);
    bring_up_with(b, 1, 0, &ip_b, &ip_a, NET);
    a.run_ok("drbdsetup primary --force r0");
    up_to_date_both(a, b);
    demote(a);
    c.set_link(0, 1, false);
    wait_link_loss(a);
    wait_link_loss(b);

    // 1. The helper fails: the promotion is refused, B stays Secondary.
    let o = b.run("drbdsetup primary r0");
    assert_fails(
        &o,
        11,
        &["State change failed: (-7) Refusing to be Primary while peer is not outdated"],
    );
    assert_eq!(helper_calls(b), 1, "fence-peer not called once");
    let st = status(b);
    assert!(st.contains("role:Secondary"), "promoted anyway:\n{st}");

    // 2. --force accepts the risk.
    b.run_ok("drbdsetup primary --force r0");
    assert_eq!(helper_calls(b), 2, "--force did not try fence-peer first");
    assert!(
        b.run_ok("dmesg")
            .contains("Forced into split brain situation!"),
        "no split-brain warning"
    );
    demote(b);

    // 3. Exit 4: the peer is outdated and B promotes.
    b.run_ok("echo 4 > /tmp/fence.code");
    b.run_ok("drbdsetup primary r0");
    assert_eq!(helper_calls(b), 3);
    let st = status(b);
    assert!(
        st.contains("role:Primary") && st.contains("peer-disk:Outdated"),
        "after exit 4:\n{st}"
    );
    assert!(
        b.run_ok("dmesg")
            .contains("fence-peer helper returned 4 (peer was fenced)"),
        "helper result not logged"
    );
    demote(b);

    // 4. down and up: the meta-data still says the peer is Outdated; no helper needed.
    b.run_ok("drbdsetup down r0");
    bring_up_with(b, 1, 0, &ip_b, &ip_a, NET);
    let st = status(b);
    assert!(
        st.contains("peer-disk:Outdated"),
        "the outdated peer was forgotten across down/up:\n{st}"
    );
    b.run_ok("echo 1 > /tmp/fence.code");
    b.run_ok("drbdsetup primary r0");
    assert_eq!(
        helper_calls(b),
        3,
        "fence-peer ran for a peer known Outdated"
    );
    b.run_ok(
        "dd if=/dev/urandom of=/dev/drbd1 bs=64k count=16 oflag=direct conv=notrunc 2>/dev/null",
    );

    // 5. The peer returns and syncs from B; once it reports UpToDate the mark is cleared.
    c.set_link(0, 1, true);
    up_to_date_both(a, b);
    assert_eq!(
        data_hash(a),
        data_hash(b),
        "replicas differ after the resync"
    );
    demote(b);
    c.set_link(0, 1, false);
    wait_link_loss(b);
    let st = status(b);
    assert!(
        !st.contains("peer-disk:Outdated"),
        "an UpToDate peer still counts as Outdated:\n{st}"
    );
    let o = b.run("drbdsetup primary r0");
    assert_fails(
        &o,
        11,
        &["Refusing to be Primary while peer is not outdated"],
    );
    assert_eq!(helper_calls(b), 4, "fence-peer not asked again");

    // 6. Auto-promote on open for writing fences the same way: refused while the helper
    //    fails, promoted (for the duration of the open) once it outdates the peer.
    let o = b.run("dd if=/dev/zero of=/dev/drbd1 bs=4k count=1 oflag=direct 2>&1");
    assert!(!o.success(), "opened for writing without fencing: {o}");
    assert_eq!(helper_calls(b), 5, "auto-promote did not run fence-peer");
    assert!(
        b.run_ok("dmesg")
            .contains("Auto-promote failed: Refusing to be Primary while peer is not outdated"),
        "auto-promote refusal not logged"
    );
    b.run_ok("echo 4 > /tmp/fence.code");
    b.run_ok("dd if=/dev/zero of=/dev/drbd1 bs=4k count=1 oflag=direct 2>/dev/null");
    assert_eq!(helper_calls(b), 6);
    let st = status(b);
    assert!(
        st.contains("role:Secondary") && st.contains("peer-disk:Outdated"),
        "after the auto-promoted write:\n{st}"
    );

    for n in [a, b] {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
}
