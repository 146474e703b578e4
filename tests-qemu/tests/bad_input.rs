//! Scenario 3: bad input gets clear errors and leaves the kernel and an existing device intact.
//! Missing disk, duplicate minor, unknown resource and minor, too-small disks, malformed raw
//! netlink messages (drbd-nlraw), and a non-root caller. No kernel report may appear (checked
//! right after the bad inputs and again when the cluster is dropped).

mod common;

use common::*;
use tests_qemu::{Cluster, ClusterSpec, Node};

/// Writes 1 MiB of fresh random data to the start of /dev/drbd1 and reads it back.
fn device_still_works(n: &Node, round: &str) {
    let o = n.run(
        "dd if=/dev/urandom of=/tmp/chk bs=64k count=16 2>/dev/null && \
         dd if=/tmp/chk of=/dev/drbd1 bs=64k oflag=direct 2>/dev/null && \
         a=$(sha256sum < /tmp/chk) && \
         b=$(dd if=/dev/drbd1 bs=64k count=16 iflag=direct 2>/dev/null | sha256sum) && \
         [ \"$a\" = \"$b\" ]",
    );
    assert!(
        o.success(),
        "{round}: /dev/drbd1 no longer reads back what was written\n{o}"
    );
    let st = n.run_ok("drbdsetup status r0");
    assert!(
        st.contains("role:Primary") && st.contains("disk:UpToDate"),
        "{round}: r0 changed:\n{st}"
    );
}

#[test]
fn bad_input_is_refused_cleanly() {
    let c = Cluster::start(ClusterSpec::new(1).disks(&[256, 64]));
    let n = c.node(0);
    n.run_ok("modprobe drbd");
    create_md_ok(n, 1, "/dev/vdb", 1);
    up(n, "r0", 1, "/dev/vdb");
    n.run_ok("drbdsetup primary --force r0");
    device_still_works(n, "before");

    // Unknown resource.
    let o = n.run("drbdsetup new-minor nosuch 5 0");
    assert_fails(&o, 10, &["Unknown resource"]);
    let o = n.run("drbdsetup primary nosuch");
    assert_fails(&o, 10, &["Unknown resource"]);

    // Unknown minor.
    let o = n.run("drbdsetup attach 9 /dev/vdc /dev/vdc internal");
    assert_fails(&o, 10, &["minor not allocated"]);

    // Duplicate minor: the same minor again, in the same and in another resource.
    let o = n.run("drbdsetup new-minor r0 1 0");
    assert_fails(&o, 10, &["exists already"]);
    n.run_ok("drbdsetup new-resource r1 0");
    let o = n.run("drbdsetup new-minor r1 1 0");
    assert_fails(&o, 10, &["exists already"]);
    device_still_works(n, "after unknown/duplicate names");

    // Bad disks, attached to minor 2 of the Secondary resource r1 (a Primary would refuse any
    // disk that is not UpToDate before looking at it).
    n.run_ok("drbdsetup new-minor r1 2 0");
    // A disk that does not exist.
    let o = n.run("drbdsetup attach 2 /dev/nonexistent /dev/nonexistent internal");
    assert_fails(&o, 10, &["backing device"]);
    // A disk that is in use (already attached as minor 1).
    let o = n.run("drbdsetup attach 2 /dev/vdb /dev/vdb internal");
    assert!(!o.success(), "attaching /dev/vdb twice succeeded\n{o}");
    assert!(!o.stderr.trim().is_empty(), "no message\n{o}");
    // A disk without meta-data.
    let o = n.run("drbdsetup attach 2 /dev/vdc /dev/vdc internal");
    assert_fails(&o, 10, &["meta-data"]);

    // Too small: a 1 MiB disk holds meta-data (drbdmeta accepts it), but not a device of the size
    // asked for with --size (ERR_DISK_TOO_SMALL).
    n.run_ok(
        "DM_DISABLE_UDEV=1 dmsetup create small --noudevsync --table '0 2048 linear /dev/vdc 0'",
    );
    create_md_ok(n, 2, "/dev/mapper/small", 1);
    let o = n.run("drbdsetup attach 2 /dev/mapper/small /dev/mapper/small internal --size=2M");
    assert_fails(&o, 10, &["smaller than requested"]);
    // A 32 KiB disk cannot even hold the meta-data (4 KiB superblock + 32 KiB activity log +
    // bitmap): drbdmeta refuses it, and the kernel refuses to attach it.
    n.run_ok(
        "DM_DISABLE_UDEV=1 dmsetup create tiny --noudevsync --table '0 64 linear /dev/vdc 4096'",
    );
    let o = create_md(n, 2, "/dev/mapper/tiny", 1);
    assert!(!o.success(), "create-md on a 32 KiB device succeeded\n{o}");
    assert!(
        !o.stderr.trim().is_empty(),
        "create-md failed without a message\n{o}"
    );
    let o = n.run("drbdsetup attach 2 /dev/mapper/tiny /dev/mapper/tiny internal");
    assert_eq!(o.code(), Some(10), "attach of a 32 KiB disk\n{o}");
    assert!(
        !o.stderr.trim().is_empty(),
        "attach of a 32 KiB disk: no message\n{o}"
    );
    n.run_ok("drbdsetup del-minor 2");
    n.run_ok("DM_DISABLE_UDEV=1 dmsetup remove --noudevsync tiny && DM_DISABLE_UDEV=1 dmsetup remove --noudevsync small");
    device_still_works(n, "after bad disks");

    // Malformed and missing attributes sent raw: every case gets an error answer (exit 0).
    let cases = n.run_ok("drbd-nlraw list");
    let cases: Vec<&str> = cases.split_whitespace().collect();
    assert!(!cases.is_empty(), "drbd-nlraw lists no cases");
    for case in &cases {
        let o = n.run(&format!("drbd-nlraw {case}"));
        assert!(
            o.success(),
            "drbd-nlraw {case}: kernel did not refuse it\n{o}"
        );
    }
    device_still_works(n, "after raw netlink");

    // Not root: no configuration changes.
    let o = n.run_as(65534, "drbdsetup new-resource x 0");
    assert!(!o.success(), "non-root new-resource succeeded\n{o}");
    let err = o.stderr.to_lowercase();
    assert!(
        [
            "not permitted",
            "permission denied",
            "cap_sys_admin",
            "root"
        ]
        .iter()
        .any(|w| err.contains(w)),
        "non-root: no clear permission error\n{o}"
    );
    let o = n.run("drbdsetup status x");
    assert!(
        !o.success(),
        "resource x exists after a non-root new-resource\n{o}"
    );

    let reports = c.kernel_reports();
    assert!(
        reports.is_empty(),
        "kernel reports after bad input: {reports:#?}"
    );
    device_still_works(n, "at the end");
    n.run_ok("drbdsetup down r0");
    n.run_ok("rmmod drbd");
}
