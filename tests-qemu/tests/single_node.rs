//! Scenario 2: one guest, one resource on /dev/vdb with internal meta-data, no peers.
//! create-md, new-resource, new-minor, attach, primary; the device has the backing size minus the
//! meta-data and maps 1:1 onto the start of the backing disk; ext4 on /dev/drbd1 keeps its files
//! across `down` and a new `up`; fio with crc32c verification passes.

mod common;

use common::*;
use std::time::{Duration, Instant};
use tests_qemu::{Cluster, ClusterSpec};

const DISK_MIB: u64 = 256;

#[test]
fn single_node_fs_and_fio() {
    let c = Cluster::start(ClusterSpec::new(1).disks(&[DISK_MIB]));
    let n = c.node(0);
    let t0 = Instant::now();

    n.run_ok("modprobe drbd");
    create_md_ok(n, 1, "/dev/vdb", 1);
    up(n, "r0", 1, "/dev/vdb");

    // Fresh meta-data: the disk is Inconsistent, and DRBD refuses to promote without UpToDate
    // data unless forced (exit 17, SS_NO_UP_TO_DATE_DISK), exactly like the initial
    // `drbdadm primary --force` of the guides.
    let o = n.run("drbdsetup primary r0");
    assert_fails(&o, 17, &["UpToDate"]);
    n.run_ok("drbdsetup primary --force r0");
    let st = n.run_ok("drbdsetup status r0");
    assert!(
        st.contains("role:Primary") && st.contains("disk:UpToDate"),
        "status after primary --force:\n{st}"
    );

    // Size: backing size minus internal meta-data (bitmap for 1 peer, 32 KiB AL, 4 KiB superblock).
    let backing: u64 = n
        .run_ok("blockdev --getsize64 /dev/vdb")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(backing, DISK_MIB << 20);
    let size: u64 = n
        .run_ok("blockdev --getsize64 /dev/drbd1")
        .trim()
        .parse()
        .unwrap();
    let expected = drbd_size_internal(backing, 1);
    assert_eq!(
        size,
        expected,
        "/dev/drbd1 is {size} bytes, expected {expected} ({} meta-data sectors on {backing} bytes)",
        internal_md_sectors(backing / 512, 1)
    );

    // Pass-through: data written via /dev/drbd1 lands at the same offset of /dev/vdb, also at the
    // very end of the data area, and nothing can be written past it.
    n.run_ok("dd if=/dev/urandom of=/tmp/pat bs=64k count=16 2>/dev/null");
    n.run_ok("dd if=/tmp/pat of=/dev/drbd1 bs=64k oflag=direct 2>/dev/null");
    let last = size / 4096 - 1;
    n.run_ok(&format!(
        "dd if=/tmp/pat of=/dev/drbd1 bs=4k count=1 seek={last} oflag=direct 2>/dev/null"
    ));
    let sums = n.run_ok(&format!(
        "sha256sum < /tmp/pat; dd if=/dev/vdb bs=64k count=16 iflag=direct 2>/dev/null | sha256sum; \
         dd if=/tmp/pat bs=4k count=1 2>/dev/null | sha256sum; \
         dd if=/dev/vdb bs=4k skip={last} count=1 iflag=direct 2>/dev/null | sha256sum"
    ));
    let s: Vec<&str> = sums.lines().collect();
    assert_eq!(
        s[0], s[1],
        "first MiB of /dev/vdb differs from what was written to /dev/drbd1"
    );
    assert_eq!(
        s[2], s[3],
        "last data block of /dev/vdb differs from /dev/drbd1's"
    );
    let o = n.run(&format!(
        "dd if=/tmp/pat of=/dev/drbd1 bs=4k count=1 seek={} oflag=direct",
        last + 1
    ));
    assert!(
        !o.success(),
        "a write past the end of /dev/drbd1 succeeded\n{o}"
    );

    // /proc/diskstats counts exactly the I/O done on /dev/drbd1 (as iostat shows it), and
    // nothing stays in flight.
    let before = diskstats(n, "drbd1");
    n.run_ok("dd if=/dev/drbd1 of=/dev/null bs=4k count=256 iflag=direct 2>/dev/null");
    n.run_ok("dd if=/tmp/pat of=/dev/drbd1 bs=4k count=1 seek=7 oflag=direct 2>/dev/null");
    n.run_ok("dd if=/dev/zero of=/dev/drbd1 bs=64k count=16 seek=4 oflag=direct 2>/dev/null");
    let after = diskstats(n, "drbd1");
    let d = |i: usize| after[i] - before[i];
    assert_eq!(
        (d(DS_READS), d(DS_READ_SECTORS)),
        (256, 2048),
        "reads counted: {before:?} -> {after:?}"
    );
    assert_eq!(
        (d(DS_WRITES), d(DS_WRITE_SECTORS)),
        (17, 8 + 2048),
        "writes counted: {before:?} -> {after:?}"
    );
    assert_eq!(after[DS_IN_FLIGHT], 0, "I/O left in flight: {after:?}");

    // A file system with files; checksums kept outside of it.
    n.run_ok("mkfs.ext4 -q -F /dev/drbd1");
    n.run_ok("mkdir -p /mnt/r0 && mount /dev/drbd1 /mnt/r0");
    n.run_ok(
        "for i in 1 2 3 4 5; do dd if=/dev/urandom of=/mnt/r0/f$i bs=64k count=$((i*8)) 2>/dev/null; done; \
         echo hello drbd > /mnt/r0/hello.txt; mkdir /mnt/r0/dir; cp /tmp/pat /mnt/r0/dir/pat; \
         cd /mnt/r0 && sha256sum f1 f2 f3 f4 f5 hello.txt dir/pat > /tmp/sums",
    );
    n.run_ok("umount /mnt/r0");
    n.run_ok("drbdsetup down r0");
    let o = n.run("test -b /dev/drbd1 && blockdev --getsize64 /dev/drbd1");
    assert!(!o.success(), "/dev/drbd1 still usable after down\n{o}");

    // The meta-data records the device size (last agreed size) for the next attach.
    let dump = n.run_ok("drbdmeta --force 1 v09 /dev/vdb internal dump-md");
    let la: Option<u64> = dump
        .lines()
        .find_map(|l| l.trim().strip_prefix("la-size-sect "))
        .and_then(|v| v.trim_end_matches(';').parse().ok());
    assert_eq!(la, Some(size / 512), "la-size-sect after down:\n{dump}");

    // Up again from the meta-data on disk: UpToDate now, so a plain `primary` works.
    up(n, "r0", 1, "/dev/vdb");
    let st = n.run_ok("drbdsetup status r0");
    assert!(
        st.contains("disk:UpToDate"),
        "status after re-attach:\n{st}"
    );
    n.run_ok("drbdsetup primary r0");
    assert_eq!(
        n.run_ok("blockdev --getsize64 /dev/drbd1").trim(),
        size.to_string(),
        "size changed across down/up"
    );
    n.run_ok("e2fsck -f -n /dev/drbd1");
    n.run_ok("mount /dev/drbd1 /mnt/r0");
    let check = n.run_ok("cd /mnt/r0 && sha256sum -c /tmp/sums");
    assert_eq!(
        check.lines().filter(|l| l.ends_with(": OK")).count(),
        7,
        "{check}"
    );
    assert_eq!(n.run_ok("cat /mnt/r0/hello.txt"), "hello drbd\n");
    n.run_ok("umount /mnt/r0");

    // fio random writes with crc32c verification through the DRBD device.
    let o = n.run_timeout(
        "fio --name=v --filename=/dev/drbd1 --rw=randwrite --bs=4k --size=64M --verify=crc32c \
         --direct=1 --ioengine=libaio --iodepth=16",
        Duration::from_secs(600),
    );
    assert!(o.success(), "fio failed\n{o}");
    assert!(o.stdout.contains("err= 0"), "fio reported an error\n{o}");

    // What fio wrote through /dev/drbd1 is what /dev/vdb holds.
    // (md5sum: sha256 of 64 MiB takes seconds on the emulated CPU.)
    let a = n.run_ok("dd if=/dev/drbd1 bs=1M count=64 iflag=direct 2>/dev/null | md5sum");
    let b = n.run_ok("dd if=/dev/vdb bs=1M count=64 iflag=direct 2>/dev/null | md5sum");
    assert_eq!(a, b, "/dev/drbd1 and /dev/vdb differ in the first 64 MiB");
    n.run_ok("drbdsetup down r0");
    n.run_ok("rmmod drbd");
    eprintln!(
        "single-node scenario took {:.1}s",
        t0.elapsed().as_secs_f64()
    );
}
