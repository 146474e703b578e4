//! Online verify (issue 5): `drbdsetup verify` compares both sides block by block with
//! `verify-alg` (P_OV_REQUEST / P_OV_REPLY / P_OV_RESULT), reports VerifyS/VerifyT and
//! `done:` while it runs, logs what it found as DRBD does, marks exactly the damaged blocks
//! out of sync without resyncing them, and a reconnect then resyncs exactly those blocks.
//! Refused without a verify-alg; an unknown or mismatched verify-alg is an error.

mod common;

use common::*;
use std::time::Duration;
use tests_qemu::qmp::Json;
use tests_qemu::{Cluster, ClusterSpec, Node};

/// 4 KiB blocks of the data area damaged on the Secondary's backing disk, behind DRBD.
const DAMAGED: [u64; 5] = [3, 4, 1000, 4321, 7000];

fn damage(n: &Node) {
    damage_blocks(n, &DAMAGED);
}

/// Runs `drbdsetup verify r0 1 0` on `src` and waits until both sides logged the end.
fn verify_and_wait(src: &Node, nodes: [&Node; 2]) {
    verify_cmd_and_wait(src, "drbdsetup verify r0 1 0", nodes);
}

#[test]
fn online_verify_finds_exactly_the_damaged_blocks() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[32]));
    let (a, b) = (c.node(0), c.node(1));
    let (ip_a, ip_b) = (c.addr(0, 1), c.addr(1, 0));
    for n in [a, b] {
        n.run_ok("modprobe drbd");
    }
    // Without verify-alg first: verify is refused with DRBD's state error.
    configure(a, 0, 1, &ip_a, &ip_b, "C");
    configure(b, 1, 0, &ip_b, &ip_a, "C");
    a.run_ok("drbdsetup primary --force r0");
    up_to_date_both(a, b);
    let o = a.run("drbdsetup verify r0 1 0");
    assert_fails(
        &o,
        11,
        &[
            "(-14) Need a verify algorithm to start online verify",
            "You need to set verify-alg",
        ],
    );
    // An algorithm the kernel does not have is refused at configuration.
    let o = a.run("drbdsetup net-options r0 1 --verify-alg=nosuchdigest");
    assert!(!o.success(), "unknown verify-alg accepted\n{o}");
    assert!(o.stderr.contains("(146) VERIFYAlgNotAvail"), "{o}");

    // Different algorithms on the two sides: the connection is refused at connect time.
    a.run_ok("drbdsetup disconnect r0 1");
    b.run_ok("drbdsetup disconnect r0 0");
    a.run_ok("drbdsetup net-options r0 1 --verify-alg=sha1");
    b.run_ok("drbdsetup net-options r0 0 --verify-alg=crc32c");
    a.run_ok("drbdsetup connect r0 1");
    b.run_ok("drbdsetup connect r0 0");
    // Each side sends its parameters before reading the peer's, so both normally see the
    // mismatch; at least one must, name both algorithms, and stay StandAlone.
    let mut named = 0;
    for (n, me, peer) in [(a, "sha1", "crc32c"), (b, "crc32c", "sha1")] {
        let o = n.wait_until(
            "dmesg | grep 'Different verify-alg settings'",
            Duration::from_secs(if named == 0 { 60 } else { 15 }),
        );
        if o.success() {
            assert!(
                o.stdout.contains(&format!(r#"me="{me}" peer="{peer}""#)),
                "{}: mismatch not named: {}",
                n.name,
                o.stdout
            );
            wait_for(
                n,
                "StandAlone after the mismatch",
                "drbdsetup events2 --now r0 | grep -q 'exists connection .*connection:StandAlone'",
                30,
            );
            named += 1;
        }
    }
    assert!(named > 0, "no node reported the verify-alg mismatch");

    // Same algorithm: connected again, identical data, verify finds nothing.
    a.run("drbdsetup disconnect r0 1");
    b.run("drbdsetup disconnect r0 0");
    b.run_ok("drbdsetup net-options r0 0 --verify-alg=sha1");
    a.run_ok("drbdsetup connect r0 1");
    b.run_ok("drbdsetup connect r0 0");
    up_to_date_both(a, b);
    assert_eq!(data_hash(a), data_hash(b), "initial sync left differences");

    let mut ev = b.spawn("drbdsetup events2 r0");
    let seen_a = done_lines(a);
    let seen_b = done_lines(b);
    verify_and_wait(a, [a, b]);
    assert_eq!(
        found_since(a, seen_a),
        0,
        "verify of equal disks found blocks"
    );
    assert_eq!(found_since(b, seen_b), 0);
    let events = ev.kill().stdout;
    assert!(
        events
            .lines()
            .any(|l| l.contains("peer-device") && l.contains("replication:VerifyT")),
        "the target never reported VerifyT:\n{events}"
    );
    assert!(
        a.run_ok("dmesg")
            .contains("Starting Online Verify from sector 0"),
        "the source did not log the start"
    );

    // Damage 5 blocks on the Secondary behind DRBD's back: verify finds exactly those.
    damage(b);
    assert_ne!(data_hash(a), data_hash(b), "damage not visible");
    let seen_a = done_lines(a);
    let seen_b = done_lines(b);
    let mut ev = a.spawn("drbdsetup events2 r0");
    verify_and_wait(a, [a, b]);
    let events = ev.kill().stdout;
    assert!(
        events
            .lines()
            .any(|l| l.contains("replication:VerifyS") && l.contains("done:")),
        "no VerifyS progress in events2:\n{events}"
    );
    for (n, seen) in [(a, seen_a), (b, seen_b)] {
        assert_eq!(
            found_since(n, seen),
            DAMAGED.len() as u64,
            "{}: verify found a different number of blocks\n{}",
            n.name,
            n.run_ok("dmesg | grep -i 'verify\\|out of sync' | tail -n 20")
        );
        let st = n.run_ok("drbdsetup status --statistics r0");
        assert!(
            st.contains(&format!("out-of-sync:{}", DAMAGED.len() * 4)),
            "{}: out-of-sync not reported:\n{st}",
            n.name
        );
    }
    let log = a.run_ok("dmesg | grep 'Out of sync: start='");
    for blk in DAMAGED {
        assert!(
            log.contains(&format!("start={}, size=8 (sectors)", blk * 8)),
            "block {blk} not reported:\n{log}"
        );
    }
    // Verify only marks; nothing was resynced.
    std::thread::sleep(Duration::from_secs(2));
    assert_ne!(data_hash(a), data_hash(b), "verify repaired by itself");

    // Reconnect: the Primary starts a new data generation and resyncs exactly those blocks.
    a.run_ok("drbdsetup disconnect r0 1");
    a.run_ok("drbdsetup connect r0 1");
    up_to_date_both(a, b);
    assert_eq!(data_hash(a), data_hash(b), "reconnect did not repair");
    assert_eq!(
        resynced_kib(a),
        DAMAGED.len() as u64 * 4,
        "resync after verify was not exactly the found blocks"
    );
    let seen_a = done_lines(a);
    verify_and_wait(a, [a, b]);
    assert_eq!(
        found_since(a, seen_a),
        0,
        "differences left after the resync"
    );

    // Verify over a range from the Secondary (it may be the source, too).
    let seen_b = done_lines(b);
    damage(b);
    verify_cmd_and_wait(b, "drbdsetup verify r0 0 0 --start=0 --stop=64", [b, a]);
    assert_eq!(
        found_since(b, seen_b),
        2,
        "a verify of sectors 0..64 must find blocks 3 and 4 only"
    );
    for n in [a, b] {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
}

/// Bytes of /dev/drbd1.
fn size64(n: &Node) -> u64 {
    n.run_ok("blockdev --getsize64 /dev/drbd1")
        .trim()
        .parse()
        .expect("size")
}

/// sha256 of the first `mib` MiB of /dev/drbd1.
fn head_hash(n: &Node, mib: u64) -> String {
    n.run_ok(&format!(
        "dd if=/dev/drbd1 bs=1M count={mib} iflag=direct 2>/dev/null | sha256sum"
    ))
    .split_whitespace()
    .next()
    .unwrap_or_default()
    .to_string()
}

#[test]
fn online_grow_resyncs_the_new_area_and_the_filesystem_grows() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[64]));
    let (a, b) = (c.node(0), c.node(1));
    let (ip_a, ip_b) = (c.addr(0, 1), c.addr(1, 0));
    for (n, me, peer, my_ip, peer_ip) in [(a, 0, 1, &ip_a, &ip_b), (b, 1, 0, &ip_b, &ip_a)] {
        n.run_ok("modprobe drbd");
        create_md_ok(n, 1, "/dev/vdb", 1);
        // 32 MiB used of a 64 MiB backing device: the meta-data already covers all of it.
        n.run_ok(&format!(
            "drbdsetup new-resource r0 {me} && drbdsetup new-minor r0 1 0 && \
             drbdsetup new-peer r0 {peer} --_name=node{peer} --protocol=C --ping-int=2 --ping-timeout=10 --connect-int=2 && \
             drbdsetup new-path r0 {peer} ipv4:{my_ip}:7789 ipv4:{peer_ip}:7789 && \
             drbdsetup attach 1 /dev/vdb /dev/vdb internal --size=32M && drbdsetup connect r0 {peer}"
        ));
    }
    a.run_ok("drbdsetup primary --force r0");
    up_to_date_both(a, b);
    for n in [a, b] {
        assert_eq!(size64(n), 32 << 20, "{}: not attached with --size", n.name);
    }
    a.run_ok("mkfs.ext4 -q -F -b 4096 /dev/drbd1 && e2fsck -fn /dev/drbd1");
    let before = head_hash(a, 32);

    // Refused: more than the disks offer, and shrinking.
    let o = a.run("drbdsetup resize 1 --size=200M");
    assert!(!o.success(), "grow beyond the disk accepted\n{o}");
    assert!(
        o.stderr
            .contains("(111) Low.dev. smaller than requested DRBD-dev. size."),
        "{o}"
    );
    let o = a.run("drbdsetup resize 1 --size=16M");
    assert!(!o.success(), "shrink accepted\n{o}");
    assert_eq!(size64(a), 32 << 20, "a refused resize changed the size");

    // Grow to the smaller maximum of both sides: both devices grow, the new area is resynced.
    let full = drbd_size_internal(64 << 20, 1);
    a.run_ok("drbdsetup resize 1");
    for n in [a, b] {
        wait_for(
            n,
            "the grown size",
            &format!("test $(blockdev --getsize64 /dev/drbd1) -eq {full}"),
            60,
        );
    }
    up_to_date_both(a, b);
    assert_eq!(
        resynced_kib(a),
        (full - (32 << 20)) / 1024,
        "the resync after the grow was not exactly the new area"
    );
    assert_eq!(head_hash(a, 32), before, "grow changed the old data");
    assert_eq!(data_hash(a), data_hash(b), "the grown device differs");

    // The filesystem grows into the new space; the peer got every block of it.
    let o = a.run_ok(
        "e2fsck -fy /dev/drbd1 >/dev/null; resize2fs /dev/drbd1 2>&1 && e2fsck -fn /dev/drbd1",
    );
    assert!(
        o.contains(&format!("is now {} (4k) blocks long", full / 4096)),
        "resize2fs did not grow the filesystem:\n{o}"
    );
    assert_eq!(
        data_hash(a),
        data_hash(b),
        "resize2fs writes not replicated"
    );
    // Another resize with nothing to gain is a no-op.
    a.run_ok("drbdsetup resize 1");
    assert_eq!(size64(a), full);

    // The backing devices themselves grow (QMP block_resize): the internal meta-data moves
    // to the new end on both sides. By less than the meta-data's own size, the move would
    // overwrite itself: refused, naming why, nothing changed.
    let grow_backing = |bytes: u64| {
        for n in [a, b] {
            n.qmp_execute(
                "block_resize",
                Some(Json::Obj(vec![
                    ("device".into(), Json::Str("d1".into())),
                    ("size".into(), Json::Num(bytes as f64)),
                ])),
            );
            wait_for(
                n,
                "the grown backing device",
                &format!("test $(blockdev --getsize64 /dev/vdb) -eq {bytes}"),
                30,
            );
        }
    };
    grow_backing((64 << 20) + (16 << 10));
    let o = a.run("drbdsetup resize 1");
    assert!(!o.success(), "a move over itself claimed success\n{o}");
    assert!(
        o.stderr.contains("less than the meta-data needs"),
        "refusal does not say why\n{o}"
    );
    assert_eq!(size64(a), full, "a refused resize changed the size");
    assert_eq!(
        data_hash(a),
        data_hash(b),
        "data changed by a refused resize"
    );

    let grown = drbd_size_internal(96 << 20, 1);
    grow_backing(96 << 20);
    a.run_ok("mkdir -p /mnt && mount /dev/drbd1 /mnt && echo grown > /mnt/marker && sync");
    // With the resync held back, the grown area is already in the on-disk bitmap (a crash
    // before its resync must not forget it).
    a.run_ok("drbdsetup pause-sync r0 1 0");
    a.run_ok("drbdsetup resize 1");
    wait_for(
        a,
        "the size after the meta-data moved",
        &format!("test $(blockdev --getsize64 /dev/drbd1) -eq {grown}"),
        60,
    );
    let dump = a.run_ok("drbdmeta --force 1 v09 /dev/vdb internal dump-md 2>&1");
    let bits: u64 = dump
        .lines()
        .find_map(|l| l.trim().strip_prefix("# bits-set "))
        .and_then(|v| v.trim_end_matches(';').parse().ok())
        .unwrap_or_else(|| panic!("no bit count in the dump:\n{dump}"));
    assert!(
        bits >= (grown - full) / 4096,
        "{bits} bits on disk for a grown area of {} blocks",
        (grown - full) / 4096
    );
    a.run_ok("drbdsetup resume-sync r0 1 0");
    for n in [a, b] {
        wait_for(
            n,
            "the size after the meta-data moved",
            &format!("test $(blockdev --getsize64 /dev/drbd1) -eq {grown}"),
            60,
        );
        assert!(
            n.run_ok("dmesg | grep -c 'internal meta-data moved to the end'")
                .trim()
                == "1",
            "{}: the meta-data did not move once",
            n.name
        );
    }
    up_to_date_both(a, b);
    assert_eq!(
        resynced_kib(a),
        (grown - full) / 1024,
        "the resync after the move was not exactly the new area"
    );
    let o = a.run_ok("resize2fs /dev/drbd1 2>&1");
    assert!(
        o.contains(&format!("is now {} (4k) blocks long", grown / 4096)),
        "resize2fs did not grow the mounted filesystem:\n{o}"
    );
    a.run_ok("umount /mnt");
    assert_eq!(data_hash(a), data_hash(b), "the grown device differs");

    // The moved meta-data is what the next attach finds: both come back at the grown size,
    // with their UUIDs, and connect without a full sync.
    for n in [a, b] {
        n.run_ok("drbdsetup down r0");
        let dump = n.run_ok("drbdmeta --force 1 v09 /dev/vdb internal dump-md 2>&1");
        assert!(
            dump.contains(&format!("la-size-sect {};", grown / 512)),
            "{}: the moved superblock does not hold the grown size:\n{dump}",
            n.name
        );
    }
    for (n, me, peer, my_ip, peer_ip) in [(a, 0, 1, &ip_a, &ip_b), (b, 1, 0, &ip_b, &ip_a)] {
        n.run_ok(&format!(
            "drbdsetup new-resource r0 {me} && drbdsetup new-minor r0 1 0 && \
             drbdsetup new-peer r0 {peer} --_name=node{peer} --protocol=C --ping-int=2 --ping-timeout=10 --connect-int=2 && \
             drbdsetup new-path r0 {peer} ipv4:{my_ip}:7789 ipv4:{peer_ip}:7789 && \
             drbdsetup attach 1 /dev/vdb /dev/vdb internal && drbdsetup connect r0 {peer}"
        ));
    }
    up_to_date_both(a, b);
    for n in [a, b] {
        assert_eq!(size64(n), grown, "{}: re-attached at another size", n.name);
    }
    assert_eq!(
        data_hash(a),
        data_hash(b),
        "the replicas differ after re-attach"
    );
    a.run_ok(
        "drbdsetup primary r0 && mount /dev/drbd1 /mnt && grep -q grown /mnt/marker && umount /mnt",
    );
    for n in [a, b] {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
}
