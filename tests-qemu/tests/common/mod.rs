//! Helpers shared by the scenario tests (each test file includes this module).
#![allow(dead_code)]

use std::time::Duration;
use tests_qemu::cluster::RunOpts;
use tests_qemu::{Node, Output};

/// `drbdmeta --force <minor> v09 <dev> internal create-md <max_peers>`, answering "yes" in case it
/// still asks.
pub fn create_md(n: &Node, minor: u32, dev: &str, max_peers: u32) -> Output {
    n.run_with(
        &format!("drbdmeta --force {minor} v09 {dev} internal create-md {max_peers}"),
        RunOpts {
            stdin: Some(b"yes\nyes\n".to_vec()),
            ..Default::default()
        },
    )
}

pub fn create_md_ok(n: &Node, minor: u32, dev: &str, max_peers: u32) {
    let o = create_md(n, minor, dev, max_peers);
    assert!(o.success(), "{}: create-md failed\n{o}", n.name);
}

/// `new-resource`, `new-minor` (volume 0) and `attach` with internal meta-data.
pub fn up(n: &Node, res: &str, minor: u32, dev: &str) {
    n.run_ok(&format!("drbdsetup new-resource {res} 0"));
    n.run_ok(&format!("drbdsetup new-minor {res} {minor} 0"));
    n.run_ok(&format!("drbdsetup attach {minor} {dev} {dev} internal"));
}

/// Asserts a command failed with `exit` and that stderr contains each of `words` (case-insensitive).
pub fn assert_fails(o: &Output, exit: i32, words: &[&str]) {
    assert_eq!(o.code(), Some(exit), "expected exit status {exit}\n{o}");
    let err = o.stderr.to_lowercase();
    for w in words {
        assert!(err.contains(&w.to_lowercase()), "stderr lacks {w:?}\n{o}");
    }
}

/// Internal meta-data size in sectors for DRBD 9 (v09) with the default activity log
/// (1 stripe x 32 KiB) and 4 KiB per bitmap bit, computed over the whole backing capacity:
/// `align8(align4096(roundup64(sectors/8) / 8 * peers) / 512) + 8 + 64`.
pub fn internal_md_sectors(backing_sectors: u64, max_peers: u64) -> u64 {
    let bits = backing_sectors.div_ceil(8).div_ceil(64) * 64;
    let bm_bytes = (bits / 8 * max_peers).div_ceil(4096) * 4096;
    (bm_bytes / 512).div_ceil(8) * 8 + 8 + 64
}

/// Usable size of `/dev/drbdN` in bytes on a backing device of `backing_bytes`.
pub fn drbd_size_internal(backing_bytes: u64, max_peers: u64) -> u64 {
    let sectors = (backing_bytes / 512) & !7;
    (sectors - internal_md_sectors(backing_bytes / 512, max_peers)) * 512
}

pub const LONG: Duration = Duration::from_secs(300);

#[test]
fn md_size_formula() {
    // 256 MiB, 1 peer: 64 Ki bits -> 8 KiB bitmap = 16 sectors; + 8 superblock + 64 AL.
    assert_eq!(internal_md_sectors(524288, 1), 88);
    assert_eq!(drbd_size_internal(256 << 20, 1), (524288 - 88) * 512);
    // 1 GiB, 3 peers: 256 Ki bits = 32 KiB per peer -> 96 KiB = 192 sectors.
    assert_eq!(internal_md_sectors(2097152, 3), 192 + 72);
}

// ---- two-node replication helpers ----

/// Two-node resource `r0` (minor 1 on /dev/vdb, fresh meta-data), connecting to `peer` over
/// `protocol` (A, B or C) with short ping and reconnect intervals.
pub fn configure(n: &Node, me: u32, peer: u32, my_ip: &str, peer_ip: &str, protocol: &str) {
    create_md_ok(n, 1, "/dev/vdb", 1);
    bring_up(n, me, peer, my_ip, peer_ip, protocol);
}

/// [`configure`] on existing meta-data (a node that rejoins after a restart).
pub fn bring_up(n: &Node, me: u32, peer: u32, my_ip: &str, peer_ip: &str, protocol: &str) {
    bring_up_with(
        n,
        me,
        peer,
        my_ip,
        peer_ip,
        &format!("--protocol={protocol}"),
    );
}

/// [`bring_up`] with more net options (`net_opts`, as drbdsetup takes them).
pub fn bring_up_with(n: &Node, me: u32, peer: u32, my_ip: &str, peer_ip: &str, net_opts: &str) {
    n.run_ok(&format!(
        "drbdsetup new-resource r0 {me} && drbdsetup new-minor r0 1 0 && \
         drbdsetup new-peer r0 {peer} --_name=node{peer} {net_opts} --ping-int=2 --ping-timeout=10 --connect-int=2 && \
         drbdsetup new-path r0 {peer} ipv4:{my_ip}:7789 ipv4:{peer_ip}:7789 && \
         drbdsetup attach 1 /dev/vdb /dev/vdb internal && drbdsetup connect r0 {peer}"
    ));
}

/// Waits until `cmd` succeeds in `n`, failing with the DRBD status otherwise.
pub fn wait_for(n: &Node, what: &str, cmd: &str, secs: u64) {
    let o = n.wait_until(cmd, Duration::from_secs(secs));
    assert!(
        o.success(),
        "{}: timed out waiting for {what}\n{}\nstatus:\n{}",
        n.name,
        o,
        n.run("drbdsetup status --verbose --statistics").stdout
    );
}

/// sha256 of the data area of /dev/vdb (what /dev/drbd1 exposes). The page cache of /dev/vdb
/// is dropped first: busybox dd may read through it, and a test that wrote /dev/vdb behind
/// DRBD's back would otherwise see its own stale pages after a resync.
pub fn data_hash(n: &Node) -> String {
    let sectors: u64 = n
        .run_ok("blockdev --getsz /dev/drbd1")
        .trim()
        .parse()
        .expect("size");
    let out = n.run_ok(&format!(
        "blockdev --flushbufs /dev/vdb && dd if=/dev/vdb bs=512 count={sectors} iflag=direct 2>/dev/null | sha256sum"
    ));
    out.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// KiB the last resync sent, from the SyncSource's kernel log.
pub fn resynced_kib(n: &Node) -> u64 {
    let log = n.run_ok("dmesg | grep 'resync done (' | tail -n 1");
    log.split("resync done (")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resync statistics in the log: {log:?}"))
}

/// Waits until both nodes see themselves and their peer UpToDate and Established.
pub fn up_to_date_both(a: &Node, b: &Node) {
    for n in [a, b] {
        wait_for(
            n,
            "UpToDate on both sides",
            "drbdsetup events2 --now r0 | grep -q 'exists device .*disk:UpToDate' && \
             drbdsetup events2 --now r0 | grep -q 'exists peer-device .*replication:Established peer-disk:UpToDate'",
            180,
        );
    }
}

/// Loads the module on `n`, installs `script` as the module's `usermode_helper`
/// (`/tmp/fence.sh`, exit code in `/tmp/fence.code`, 1 to start with, calls logged by the
/// script in `/tmp/fence.log`) and creates fresh meta-data on /dev/vdb.
pub fn with_helper_script(n: &Node, script: &str) {
    n.run_ok("modprobe drbd");
    n.write_file("/tmp/fence.sh", script.as_bytes());
    n.run_ok("chmod +x /tmp/fence.sh && echo 1 > /tmp/fence.code && : > /tmp/fence.log");
    n.run_ok("echo /tmp/fence.sh > /sys/module/drbd/parameters/usermode_helper");
    create_md_ok(n, 1, "/dev/vdb", 1);
}

/// Waits until `n` is connected to its peer (with `fencing`, a promotion before that would
/// first run `fence-peer` for the still unreachable peer).
pub fn wait_connected(n: &Node) {
    wait_for(
        n,
        "connection",
        "drbdsetup events2 --now r0 | grep -q 'exists connection .*connection:Connected'",
        60,
    );
}

/// Waits until `n` lost its peer and tries to reconnect (`connection:Connecting`).
pub fn wait_link_loss(n: &Node) {
    wait_for(
        n,
        "link loss",
        "drbdsetup events2 --now r0 | grep -q 'exists connection .*connection:Connecting'",
        60,
    );
}

/// Loads the module on both nodes of `c` and configures `r0` between them (node ids 0 and 1,
/// fresh meta-data, `protocol`); returns their addresses towards each other.
pub fn configured_pair(c: &tests_qemu::Cluster, protocol: &str) -> (String, String) {
    let (a, b) = (c.node(0), c.node(1));
    let (ip_a, ip_b) = (c.addr(0, 1), c.addr(1, 0));
    for n in [a, b] {
        n.run_ok("modprobe drbd");
    }
    configure(a, 0, 1, &ip_a, &ip_b, protocol);
    configure(b, 1, 0, &ip_b, &ip_a, protocol);
    (ip_a, ip_b)
}

// ---- online verify helpers ----

/// Overwrites the 4 KiB `blocks` of the data area on `n`'s backing disk with random data,
/// behind DRBD's back.
pub fn damage_blocks(n: &Node, blocks: &[u64]) {
    for b in blocks {
        n.run_ok(&format!(
            "dd if=/dev/urandom of=/dev/vdb bs=4096 count=1 seek={b} oflag=direct conv=notrunc 2>/dev/null"
        ));
    }
}

/// Runs the verify command `cmd` on `src` and waits until both sides logged the end.
pub fn verify_cmd_and_wait(src: &Node, cmd: &str, nodes: [&Node; 2]) {
    let before: Vec<usize> = nodes.iter().map(|n| done_lines(n)).collect();
    src.run_ok(cmd);
    for (n, b) in nodes.iter().zip(before) {
        wait_for(
            n,
            "online verify end",
            &format!("test $(dmesg | grep -c 'Online verify done (total') -gt {b}"),
            240,
        );
        wait_for(
            n,
            "Established after verify",
            "drbdsetup events2 --now r0 | grep -q 'exists peer-device .*replication:Established'",
            30,
        );
    }
}

/// How many verify runs `n` logged the end of.
pub fn done_lines(n: &Node) -> usize {
    n.run_ok("dmesg | grep -c 'Online verify done (total' || true")
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Blocks the last verify found different: its "found" line follows its "done" line
/// (none = 0). `since` is the number of done lines before it started, to be sure it ended.
pub fn found_since(n: &Node, since: usize) -> u64 {
    let log = n.run_ok("dmesg");
    let done: Vec<usize> = log
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("Online verify done (total"))
        .map(|(i, _)| i)
        .collect();
    assert!(done.len() > since, "{}: the verify did not end", n.name);
    let last = done[done.len() - 1];
    log.lines()
        .skip(last + 1)
        .filter_map(|l| l.split("Online verify found ").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .filter_map(|n| n.parse().ok())
        .next()
        .unwrap_or(0)
}

/// The I/O statistics of `dev` in /proc/diskstats, the fields after its name: reads, reads
/// merged, sectors read, ms reading, writes, writes merged, sectors written, ms writing, I/Os
/// in flight, ms doing I/O, weighted ms, ...
pub fn diskstats(n: &Node, dev: &str) -> Vec<u64> {
    let line = n.run_ok(&format!("grep ' {dev} ' /proc/diskstats"));
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(3)
        .filter_map(|v| v.parse().ok())
        .collect();
    assert!(fields.len() >= 11, "diskstats of {dev}: {line:?}");
    fields
}

/// Index of the reads completed in [`diskstats`].
pub const DS_READS: usize = 0;
/// Index of the sectors read.
pub const DS_READ_SECTORS: usize = 2;
/// Index of the writes completed.
pub const DS_WRITES: usize = 4;
/// Index of the sectors written.
pub const DS_WRITE_SECTORS: usize = 6;
/// Index of the I/Os in flight.
pub const DS_IN_FLIGHT: usize = 8;
