//! Fencing: a Primary with `fencing resource-and-stonith` loses its peer (QMP link cut). Its
//! application I/O freezes (`suspended:fencing`, a writer blocks and does not fail) while a
//! slow `fence-peer` helper runs, and thaws by the helper's exit code as DRBD 9 does:
//! 7 (stonithed) thaws and marks the peer Outdated; 1 (broken) stays frozen until
//! `drbdsetup resume-io`; 6 (peer is Primary) outdates the local disk and stays frozen.
//! `resource-only` runs the helper without freezing (exit 4: peer Outdated). After each
//! loss the peer rejoins and the blocks written meanwhile resync.
//!
//! The helper is a shell script set as the module's `usermode_helper` (called as
//! `<script> fence-peer r0`); it logs its call and waits for `/tmp/fence.go`, then exits
//! with the code in `/tmp/fence.code`.

mod common;

use common::*;
use std::time::Duration;
use tests_qemu::{Cluster, ClusterSpec, Job, Node};

const SCRIPT: &str = r#"#!/bin/sh
[ "$1" = fence-peer ] || exit 0
echo "fence-peer $2 utd=$UP_TO_DATE_NODES peer=$DRBD_PEER_NODE_ID" >> /tmp/fence.log
while [ ! -e /tmp/fence.go ]; do sleep 1; done
rm -f /tmp/fence.go
exit $(cat /tmp/fence.code)
"#;

/// A writer that counts completed 4 KiB writes in /tmp/wcount until /tmp/wstop exists; a
/// failed write ends it with "FAILED".
fn start_writer(a: &Node) -> Job {
    a.run_ok("rm -f /tmp/wstop; echo 0 > /tmp/wcount");
    a.spawn(
        "i=0; while [ ! -e /tmp/wstop ]; do \
           dd if=/dev/urandom of=/dev/drbd1 bs=4k count=1 seek=$((i % 512)) oflag=direct conv=notrunc 2>/dev/null \
             || { echo FAILED; exit 1; }; \
           i=$((i+1)); echo $i > /tmp/wcount; done; echo stopped",
    )
}

fn count(a: &Node) -> u64 {
    a.run_ok("cat /tmp/wcount").trim().parse().unwrap_or(0)
}

/// Asserts that the writer makes no progress for a few seconds and has not failed.
fn assert_blocked(a: &Node, w: &mut Job, why: &str) {
    let before = count(a);
    std::thread::sleep(Duration::from_secs(4));
    let after = count(a);
    assert_eq!(before, after, "{why}: writes completed while frozen");
    assert!(
        w.try_wait().is_none(),
        "{why}: the writer ended: {:?}",
        w.try_wait()
    );
}

/// Waits until the writer completed more writes than now.
fn assert_progress(a: &Node, w: &mut Job, why: &str) {
    let before = count(a);
    wait_for(
        a,
        why,
        &format!("[ $(cat /tmp/wcount) -gt {} ]", before + 3),
        60,
    );
    assert!(
        w.try_wait().is_none(),
        "{why}: the writer ended: {:?}",
        w.try_wait()
    );
}

fn stop_writer(a: &Node, mut w: Job) {
    a.run_ok("touch /tmp/wstop");
    let o = w.wait(Duration::from_secs(120));
    assert!(o.stdout.contains("stopped"), "writer failed: {o}");
}

fn status(a: &Node) -> String {
    a.run_ok("drbdsetup status r0")
}

/// Cuts the link and waits until the helper runs (it then waits for /tmp/fence.go).
fn cut_and_wait_helper(c: &Cluster, a: &Node, calls: usize) {
    c.set_link(0, 1, false);
    wait_for(
        a,
        "fence-peer called",
        &format!(
            "[ $(grep -c '^fence-peer r0 utd=0x00000001 peer=1' /tmp/fence.log) -ge {calls} ]"
        ),
        60,
    );
}

/// Two nodes with `script` as their helper and `net_opts`, connected, node0 Primary, both
/// UpToDate.
fn fenced_pair(script: &str, net_opts: &str) -> Cluster {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[16]));
    let (a, b) = (c.node(0), c.node(1));
    let (ip_a, ip_b) = (c.addr(0, 1), c.addr(1, 0));
    for n in [a, b] {
        with_helper_script(n, script);
    }
    bring_up_with(a, 0, 1, &ip_a, &ip_b, net_opts);
    bring_up_with(b, 1, 0, &ip_b, &ip_a, net_opts);
    wait_connected(a);
    a.run_ok("drbdsetup primary --force r0");
    up_to_date_both(a, b);
    c
}

fn reconnect(c: &Cluster, a: &Node, b: &Node) {
    c.set_link(0, 1, true);
    up_to_date_both(a, b);
}

#[test]
fn resource_and_stonith_freezes_until_fence_peer_answers() {
    let c = fenced_pair(SCRIPT, "--protocol=C --fencing=resource-and-stonith");
    let (a, b) = (c.node(0), c.node(1));
    let mut ev = a.spawn("drbdsetup events2 r0");

    // 1. Exit 7 (stonithed): frozen while the helper runs, then thawed, peer Outdated.
    a.run_ok("echo 7 > /tmp/fence.code");
    let mut w = start_writer(a);
    assert_progress(a, &mut w, "writer running");
    cut_and_wait_helper(&c, a, 1);
    let st = status(a);
    assert!(st.contains("suspended:fencing"), "not frozen:\n{st}");
    assert_blocked(a, &mut w, "exit 7, helper running");
    a.run_ok("touch /tmp/fence.go");
    assert_progress(a, &mut w, "thawed after exit 7");
    let st = a.run_ok("drbdsetup events2 --now r0");
    assert!(
        st.contains("suspended:no")
            && st
                .lines()
                .any(|l| l.starts_with("exists peer-device") && l.contains("peer-disk:Outdated")),
        "after exit 7:\n{st}"
    );
    let log = a.run_ok("dmesg");
    for want in [
        "susp-io( no -> fencing )",
        "fence-peer helper returned 7 (peer was stonithed)",
        // The write that waited for the lost peer was held too and completes at the thaw.
        "susp-io( fencing -> no ), 0 held request(s) restarted, 1 completed",
    ] {
        assert!(log.contains(want), "kernel log lacks {want:?}:\n{log}");
    }
    stop_writer(a, w);
    let out = ev.wait_for_stdout(Duration::from_secs(30), |o| {
        o.contains(
            "response helper name:r0 peer-node-id:1 conn-name:node1 helper:fence-peer status:1792",
        )
    });
    assert!(
        out.contains("call helper name:r0 peer-node-id:1 conn-name:node1 helper:fence-peer")
            && out.contains("change resource name:r0 suspended:fencing"),
        "events2:\n{out}"
    );
    reconnect(&c, a, b);
    assert_eq!(data_hash(a), data_hash(b), "replicas differ after exit 7");

    // 2. Exit 1 (broken helper): stays frozen after the helper returned, until resume-io.
    a.run_ok("echo 1 > /tmp/fence.code");
    let mut w = start_writer(a);
    assert_progress(a, &mut w, "writer running");
    cut_and_wait_helper(&c, a, 2);
    a.run_ok("touch /tmp/fence.go");
    wait_for(
        a,
        "helper result logged",
        "dmesg | grep -q 'fence-peer helper broken, returned 1'",
        60,
    );
    assert_blocked(a, &mut w, "exit 1");
    let st = status(a);
    assert!(
        st.contains("suspended:fencing"),
        "thawed after exit 1:\n{st}"
    );
    a.run_ok("drbdsetup resume-io 1");
    assert_progress(a, &mut w, "resume-io after exit 1");
    let st = a.run_ok("drbdsetup events2 --now r0");
    assert!(
        st.contains("suspended:no") && !st.contains("peer-disk:Outdated"),
        "after resume-io:\n{st}"
    );
    stop_writer(a, w);
    reconnect(&c, a, b);
    assert_eq!(data_hash(a), data_hash(b), "replicas differ after exit 1");

    // 3. resource-only: the helper runs, nothing freezes; exit 4 marks the peer Outdated.
    a.run_ok("drbdsetup net-options r0 1 --fencing=resource-only");
    a.run_ok("echo 4 > /tmp/fence.code");
    let mut w = start_writer(a);
    cut_and_wait_helper(&c, a, 3);
    assert_progress(a, &mut w, "resource-only keeps I/O running");
    assert!(
        !status(a).contains("suspended:fencing"),
        "resource-only froze"
    );
    a.run_ok("touch /tmp/fence.go");
    wait_for(
        a,
        "peer Outdated after exit 4",
        "drbdsetup events2 --now r0 | grep -q 'exists peer-device .*peer-disk:Outdated'",
        60,
    );
    stop_writer(a, w);
    reconnect(&c, a, b);
    assert_eq!(data_hash(a), data_hash(b), "replicas differ after exit 4");

    // 4. Exit 6 (the peer is Primary): the local disk becomes Outdated, I/O stays frozen
    //    (the peer's disk is still unknown) until resume-io.
    a.run_ok("drbdsetup net-options r0 1 --fencing=resource-and-stonith");
    a.run_ok("echo 6 > /tmp/fence.code");
    let mut w = start_writer(a);
    assert_progress(a, &mut w, "writer running");
    cut_and_wait_helper(&c, a, 4);
    a.run_ok("touch /tmp/fence.go");
    wait_for(
        a,
        "exit 6 logged",
        "dmesg | grep -q 'fence-peer helper returned 6 (peer is active)'",
        60,
    );
    let log = a.run_ok("dmesg");
    assert!(log.contains("Peer is primary, outdating myself."), "{log}");
    let st = a.run_ok("drbdsetup events2 --now r0");
    assert!(
        st.contains("suspended:fencing") && st.contains("disk:Outdated"),
        "after exit 6:\n{st}"
    );
    assert_blocked(a, &mut w, "exit 6");
    a.run_ok("drbdsetup resume-io 1");
    assert_progress(a, &mut w, "resume-io after exit 6");
    stop_writer(a, w);
    ev.kill();
}

/// A `fence-peer` helper that, once let go, runs a configuration command itself (as a
/// handler that resumes I/O or disconnects would), then answers 7.
const CONFIG_CALLING_SCRIPT: &str = r#"#!/bin/sh
[ "$1" = fence-peer ] || exit 0
echo "fence-peer $2 utd=$UP_TO_DATE_NODES peer=$DRBD_PEER_NODE_ID" >> /tmp/fence.log
while [ ! -e /tmp/fence.go ]; do sleep 1; done
rm -f /tmp/fence.go
drbdsetup resume-io 1 2>/dev/null
echo "resume-io rc=$?" >> /tmp/fence.log
exit 7
"#;

/// `down` while the link thread waits for `fence-peer` does not wait for the helper (which
/// may itself need the configuration lock `down` holds): it stops waiting, logs that the exit
/// code will be ignored, and finishes; the helper runs on, its own `drbdsetup` call gets its
/// answer, and the module unloads cleanly once it exited. A promotion interrupted while its
/// `fence-peer` runs (drbdsetup killed by SIGINT) gives up the same way and stays Secondary.
#[test]
fn down_or_interrupt_during_fence_peer_stops_waiting_for_the_helper() {
    let c = fenced_pair(
        CONFIG_CALLING_SCRIPT,
        "--protocol=C --fencing=resource-only",
    );
    let (a, b) = (c.node(0), c.node(1));

    // The Primary's link thread runs fence-peer; `down` joins that thread.
    cut_and_wait_helper(&c, a, 1);
    let mut down = a.spawn("drbdsetup down r0; echo down rc=$?");
    let o = down.wait(Duration::from_secs(60));
    assert!(
        o.stdout.contains("down rc=0"),
        "down did not finish while fence-peer ran: {o}"
    );
    let log = a.run_ok("dmesg");
    assert!(
        log.contains("r0: stopped waiting for helper fence-peer (still running); its exit code will be ignored"),
        "{log}"
    );
    assert!(
        !log.contains("fence.sh fence-peer r0 exit code"),
        "helper ended early:\n{log}"
    );
    // The helper goes on: its resume-io finds no device any more, then it exits 7.
    a.run_ok("touch /tmp/fence.go");
    wait_for(
        a,
        "helper exit logged",
        "dmesg | grep -q 'helper command: /tmp/fence.sh fence-peer r0 exit code 7'",
        60,
    );
    let flog = a.run_ok("cat /tmp/fence.log");
    assert!(
        flog.lines()
            .any(|l| l.starts_with("resume-io rc=") && l != "resume-io rc=0"),
        "the helper's drbdsetup call did not get an error answer:\n{flog}"
    );
    let dlog = a.run_ok("dmesg");
    assert!(
        !dlog.contains("fence-peer helper returned 7"),
        "the abandoned answer was applied:\n{dlog}"
    );
    a.run_ok("rmmod drbd");
    assert!(
        !a.run("lsmod | grep -q '^drbd '").success(),
        "module still loaded"
    );

    // The Secondary, still UpToDate, promotes while its peer is unreachable: fence-peer runs
    // in the drbdsetup process's request; SIGINT ends the wait and the promotion.
    let o = b.run("timeout -s INT 5 drbdsetup primary r0; echo rc=$?");
    assert!(
        o.stdout.contains("rc=") && !o.stdout.contains("rc=0"),
        "primary was not interrupted: {o}"
    );
    wait_for(
        b,
        "fence-peer called on the Secondary",
        "grep -q '^fence-peer r0 utd=0x00000002 peer=0' /tmp/fence.log",
        30,
    );
    wait_for(
        b,
        "the interrupted wait logged",
        "dmesg | grep -q 'r0: stopped waiting for helper fence-peer'",
        30,
    );
    let st = b.run_ok("drbdsetup status r0");
    assert!(st.contains("r0 role:Secondary"), "promoted anyway:\n{st}");
    b.run_ok("touch /tmp/fence.go");
    wait_for(
        b,
        "helper exit logged",
        "dmesg | grep -q 'helper command: /tmp/fence.sh fence-peer r0 exit code 7'",
        60,
    );
    let st = b.run_ok("drbdsetup status r0");
    assert!(
        st.contains("r0 role:Secondary"),
        "promoted by the late answer:\n{st}"
    );
    b.run_ok("drbdsetup down r0 && rmmod drbd");
}
