//! Scenario 1: `modprobe drbd` / `rmmod drbd` 20 times in one guest. Each time /proc/drbd appears
//! with a DRBD 9 version header and disappears again, block major 147 comes and goes, and nothing
//! is left behind (module, threads, sysfs entries, memory). The cluster's drop fails the test on
//! any kernel report (BUG, WARNING, lockdep, ...).

mod common;

use std::time::Instant;
use tests_qemu::{Cluster, ClusterSpec};

/// Kernel memory in use that a leaking module would grow: slab + vmalloc'd + page tables, in KiB.
fn kernel_mem_kib(n: &tests_qemu::Node) -> u64 {
    let info = n.read_file("/proc/meminfo");
    let info = String::from_utf8_lossy(&info);
    let field = |name: &str| -> u64 {
        info.lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    field("Slab") + field("VmallocUsed") + field("PageTables")
}

#[test]
fn module_load_unload_20_times() {
    let c = Cluster::start(ClusterSpec::new(1).disks(&[]));
    let n = c.node(0);
    let t0 = Instant::now();
    // Ours is the one modprobe finds.
    let path = n.run_ok("modinfo -n drbd");
    assert!(
        path.trim().ends_with("/extra/drbd.ko"),
        "modprobe would not load our module: {path}"
    );

    let mut mem_after_first = 0;
    for i in 0..20 {
        n.run_ok("modprobe drbd");
        let head = n.run_ok("head -n 1 /proc/drbd");
        assert!(
            head.starts_with("version: 9."),
            "round {i}: /proc/drbd starts with {head:?}"
        );
        let modules = String::from_utf8_lossy(&n.read_file("/proc/modules")).into_owned();
        assert!(
            modules.lines().any(|l| l.starts_with("drbd ")),
            "round {i}: drbd not in /proc/modules:\n{modules}"
        );
        let devices = String::from_utf8_lossy(&n.read_file("/proc/devices")).into_owned();
        assert!(
            devices.lines().any(|l| l.trim() == "147 drbd"),
            "round {i}: block major 147 not registered:\n{devices}"
        );

        n.run_ok("rmmod drbd");
        let o = n.run("test -e /proc/drbd");
        assert!(
            !o.success(),
            "round {i}: /proc/drbd still exists after rmmod"
        );
        let modules = String::from_utf8_lossy(&n.read_file("/proc/modules")).into_owned();
        assert!(
            !modules.lines().any(|l| l.starts_with("drbd ")),
            "round {i}: drbd still in /proc/modules:\n{modules}"
        );
        let devices = String::from_utf8_lossy(&n.read_file("/proc/devices")).into_owned();
        assert!(
            !devices.lines().any(|l| l.trim().ends_with(" drbd")),
            "round {i}: major still registered:\n{devices}"
        );
        let left = n.run_ok(
            "ls -d /sys/module/drbd /sys/block/drbd* /dev/drbd* 2>/dev/null; \
             for f in /proc/[0-9]*/comm; do read c < $f 2>/dev/null && \
             case $c in drbd-guest-agen*) ;; drbd*) echo thread $c;; esac; done; true",
        );
        assert!(
            left.trim().is_empty(),
            "round {i}: left behind after rmmod:\n{left}"
        );
        if i == 0 {
            mem_after_first = kernel_mem_kib(n);
        }
    }
    // Leak check: 19 more load/unload cycles must not grow kernel memory noticeably.
    let mem_end = kernel_mem_kib(n);
    assert!(
        mem_end < mem_after_first + 1024,
        "kernel memory grew from {mem_after_first} KiB to {mem_end} KiB over 19 load/unload cycles"
    );
    eprintln!(
        "20 load/unload cycles in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
}
