//! Issue 4, scenario 7 (first part): a fake peer connects to the replication port and sends
//! garbage, a truncated header, an oversized feature packet, a feature packet claiming the
//! wrong node id, and a good feature packet followed by garbage on the data stream. Every time
//! the connection is dropped, the Primary keeps serving I/O, the kernel log stays clean, and
//! the genuine peer can still connect and sync afterwards.

mod common;

use common::*;
use std::time::Duration;
use tests_qemu::{Cluster, ClusterSpec, Node};

/// h80 header: magic 0x83740267, command, 16-bit length (big-endian), as printf escapes.
fn h80(cmd: u16, len: u16) -> String {
    let bytes = [
        0x83,
        0x74,
        0x02,
        0x67,
        (cmd >> 8) as u8,
        cmd as u8,
        (len >> 8) as u8,
        len as u8,
    ];
    esc(&bytes)
}

fn esc(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:03o}")).collect()
}

/// A 72-byte `P_CONNECTION_FEATURES` payload (protocol 118..122, sender, receiver).
fn features(sender: u32, receiver: u32) -> String {
    let mut p = Vec::new();
    for v in [118u32, 0, 122, sender, receiver] {
        p.extend_from_slice(&v.to_be_bytes());
    }
    p.resize(72, 0);
    esc(&p)
}

/// h100 header (protocol 100 and later): magic 0x8620ec20, volume, command, 32-bit length, pad.
fn h100(cmd: u16, len: u32) -> String {
    let mut b = vec![0x86, 0x20, 0xec, 0x20, 0, 0];
    b.extend_from_slice(&cmd.to_be_bytes());
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(&[0; 4]);
    esc(&b)
}

/// Opens the data stream (`P_INITIAL_DATA`) and the meta stream (`P_INITIAL_META`) to node0
/// and sends `data_tail` on the data stream after the initial packet.
fn fake_streams(n: &Node, target: &str, data_tail: &str) {
    fake_streams_with_meta(n, target, data_tail, "");
}

/// As [`fake_streams`], and sends `meta_tail` on the meta stream after its initial packet.
fn fake_streams_with_meta(n: &Node, target: &str, data_tail: &str, meta_tail: &str) {
    let data = format!("{}{}", h80(0xfff2, 0), data_tail);
    let meta = format!("{}{}", h80(0xfff1, 0), meta_tail);
    n.run(&format!(
        "(printf '{data}'; sleep 3) | timeout 6 nc {target} 7789 >/dev/null 2>&1 & \
         sleep 0.5; (printf '{meta}'; sleep 3) | timeout 6 nc {target} 7789 >/dev/null 2>&1; wait"
    ));
}

fn primary_still_serves(a: &Node, round: &str) {
    let out = a.run_ok(
        "dd if=/dev/urandom of=/tmp/p bs=4k count=8 2>/dev/null && \
         dd if=/tmp/p of=/dev/drbd1 bs=4k oflag=direct 2>/dev/null && \
         dd if=/dev/drbd1 of=/tmp/q bs=4k count=8 iflag=direct 2>/dev/null && cmp /tmp/p /tmp/q && echo same",
    );
    assert_eq!(out.trim(), "same", "I/O broken after {round}");
    let st = a.run_ok("drbdsetup status r0");
    assert!(
        !st.contains("connection:Connected"),
        "a fake peer was accepted ({round}):\n{st}"
    );
}

/// The kernel log from the module's first line on (the boot log before it says nothing).
fn since_module_load(log: &str) -> &str {
    log.find("drbd: ")
        .map_or(log, |i| &log[log[..i].rfind('\n').map_or(0, |n| n + 1)..])
}

#[test]
fn fake_peer_is_refused_and_the_device_keeps_working() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[16]));
    let (a, b) = (c.node(0), c.node(1));
    let (ip_a, ip_b) = (c.addr(0, 1), c.addr(1, 0));
    a.run_ok("modprobe drbd");
    create_md_ok(a, 1, "/dev/vdb", 1);
    // Node 0 has the lower node id, so it listens and the peer connects.
    a.run_ok(&format!(
        "drbdsetup new-resource r0 0 && drbdsetup new-minor r0 1 0 && \
         drbdsetup new-peer r0 1 --_name=node1 --connect-int=1 && \
         drbdsetup new-path r0 1 ipv4:{ip_a}:7789 ipv4:{ip_b}:7789 && \
         drbdsetup attach 1 /dev/vdb /dev/vdb internal && drbdsetup connect r0 1 && \
         drbdsetup primary --force r0"
    ));

    // Pure garbage, and a truncated header.
    b.run(&format!(
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n garbage garbage garbage' | timeout 3 nc {ip_a} 7789"
    ));
    primary_still_serves(a, "garbage");
    b.run(&format!("printf '\\203\\164' | timeout 3 nc {ip_a} 7789"));
    primary_still_serves(a, "a truncated header");

    // An oversized feature packet.
    fake_streams(b, &ip_a, &h80(0xfffe, 60000));
    primary_still_serves(a, "an oversized feature packet");

    // A feature packet from the wrong node id.
    fake_streams(b, &ip_a, &format!("{}{}", h80(0xfffe, 72), features(7, 0)));
    primary_still_serves(a, "a wrong node id");

    // A good feature packet, then a data-stream packet with a bad magic.
    fake_streams(
        b,
        &ip_a,
        &format!(
            "{}{}{}",
            h80(0xfffe, 72),
            features(1, 0),
            esc(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        ),
    );
    primary_still_serves(a, "garbage after the handshake");

    // A good handshake, then a barrier ack for an epoch that was never sent (P_BARRIER_ACK,
    // barrier 99, set_size 1) on the meta stream.
    let ack: Vec<u8> = [99u32, 1].iter().flat_map(|v| v.to_be_bytes()).collect();
    fake_streams_with_meta(
        b,
        &ip_a,
        &format!("{}{}", h80(0xfffe, 72), features(1, 0)),
        &format!("{}{}", h100(0x1c, 8), esc(&ack)),
    );
    primary_still_serves(a, "a barrier ack for an unknown epoch");
    let log = a.run("dmesg");
    assert!(
        log.stdout
            .contains("barrier ack #99 received, expected none"),
        "the bogus barrier ack was not refused; the log since the module loaded:\n{}",
        since_module_load(&log.stdout)
    );

    // The genuine peer still connects and syncs.
    b.run_ok("modprobe drbd");
    create_md_ok(b, 1, "/dev/vdb", 1);
    b.run_ok(&format!(
        "drbdsetup new-resource r0 1 && drbdsetup new-minor r0 1 0 && \
         drbdsetup new-peer r0 0 --_name=node0 && \
         drbdsetup new-path r0 0 ipv4:{ip_b}:7789 ipv4:{ip_a}:7789 && \
         drbdsetup attach 1 /dev/vdb /dev/vdb internal && drbdsetup connect r0 0"
    ));
    let o = a.wait_until(
        "drbdsetup status r0 | grep -q 'peer-disk:UpToDate'",
        Duration::from_secs(180),
    );
    assert!(
        o.success(),
        "genuine peer did not sync:\n{}",
        a.run("drbdsetup status r0 --verbose").stdout
    );
    for n in [a, b] {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
}
