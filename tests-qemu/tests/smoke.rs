//! Harness smoke test: two guests boot, see their disks, ping each other over their link, lose and
//! regain the link, run and kill a background job, and one of them reboots with its disks intact.

use std::time::{Duration, Instant};
use tests_qemu::{Cluster, ClusterSpec, Status};

#[test]
fn smoke() {
    let t0 = Instant::now();
    let c = Cluster::start(ClusterSpec::new(2).disks(&[128, 32]));
    let (n0, n1) = (c.node(0), c.node(1));

    for (i, n) in c.nodes().iter().enumerate() {
        assert_eq!(n.run_ok("hostname").trim(), format!("node{i}"));
        // Scratch disk plus the two test disks, with the sizes asked for.
        assert_eq!(n.disk(0), "/dev/vdb");
        assert_eq!(
            n.run_ok("blockdev --getsize64 /dev/vdb").trim(),
            (128u64 << 20).to_string()
        );
        assert_eq!(
            n.run_ok("blockdev --getsize64 /dev/vdc").trim(),
            (32u64 << 20).to_string()
        );
        assert_eq!(
            n.run_ok("cat /sys/block/vdb/serial").trim(),
            format!("node{i}-vdb")
        );
        assert!(n
            .run_ok("ip -4 addr")
            .contains(&format!("{}/24", c.addr(i, 1 - i))));
        // Host tools are there and run.
        n.run_ok("fio --version && mkfs.ext4 -V && dmsetup version && e2fsck -V");
    }

    // Binary-safe file transfer, stdin, stdout/stderr/status separation.
    let blob: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    n0.write_file("/tmp/blob", &blob);
    assert_eq!(n0.read_file("/tmp/blob"), blob);
    let o = n0.run("echo out; echo err >&2; exit 3");
    assert_eq!(
        (o.status.clone(), o.stdout.as_str(), o.stderr.as_str()),
        (Status::Exited(3), "out\n", "err\n")
    );
    let o = n0.run_timeout("sleep 100", Duration::from_secs(1));
    assert_eq!(o.status, Status::TimedOut);
    assert_eq!(n0.run_as(65534, "id -u").stdout.trim(), "65534");

    // Link: ping works, cut it, ping fails, restore, ping works again. (`timeout` because ping's
    // own -W needs alarm(2), i.e. CONFIG_POSIX_TIMERS.)
    let ping_cmd = |to: &str| format!("timeout 3 ping -c 1 {to}");
    let ping = |from: &tests_qemu::Node, to: String| from.run(&ping_cmd(&to));
    let a1 = c.addr(1, 0);
    let o = n0.wait_until(&ping_cmd(&a1), Duration::from_secs(30));
    assert!(o.success(), "{o}");
    n0.set_link(1, false);
    let o = ping(n0, a1.clone());
    assert!(!o.success(), "ping went through a cut link\n{o}");
    let o = ping(n1, c.addr(0, 1));
    assert!(!o.success(), "ping went through a cut link\n{o}");
    n0.set_link(1, true);
    let o = n0.wait_until(&ping_cmd(&a1), Duration::from_secs(30));
    assert!(o.success(), "link did not come back\n{o}");

    // netem on one direction of the link adds its delay to the round trip.
    n0.netem(1, Some("delay 200ms"));
    let o = n0.run_ok(&ping_cmd(&a1));
    let rtt: f64 = o
        .split("time=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no round trip time in {o}"));
    assert!(rtt >= 200.0, "netem delay not applied: {rtt} ms\n{o}");
    n0.netem(1, None);

    // Background job: output appears while it runs; killing it ends it with SIGKILL.
    let mut job = n1.spawn("i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.2; done");
    job.wait_for("tick 3", Duration::from_secs(30));
    let o = n1.run("echo concurrent");
    assert_eq!(o.stdout, "concurrent\n");
    let out = job.kill();
    assert_eq!(out.status, Status::Signaled(9), "{out}");
    assert!(out.stdout.contains("tick 3"));
    let mut short = n1.spawn("sleep 0.5; echo finished");
    assert_eq!(short.wait(Duration::from_secs(30)).stdout, "finished\n");

    // Pause/resume keeps the guest alive.
    n1.pause();
    std::thread::sleep(Duration::from_millis(500));
    n1.resume();
    n1.run_ok("true");

    // Restart keeps disk contents; a hard kill and a fresh start too.
    n0.run_ok("echo persistent | dd of=/dev/vdb bs=512 count=1 conv=sync oflag=direct 2>/dev/null");
    n0.restart();
    assert_eq!(n0.run_ok("head -c 10 /dev/vdb"), "persistent");
    assert!(n0.kernel_log().contains("Linux version"));
    n0.hard_kill();
    assert!(!n0.is_running());
    n0.start();
    assert_eq!(n0.run_ok("head -c 10 /dev/vdb"), "persistent");
    let o = n0.wait_until(&ping_cmd(&a1), Duration::from_secs(30));
    assert!(o.success(), "{o}");

    // Device-mapper fault injection: a wrapped disk turns into an I/O error and back.
    let dev = n1.dm_wrap("/dev/vdc", "faulty");
    n1.run_ok(&format!(
        "dd if=/dev/zero of={dev} bs=4k count=1 oflag=direct 2>&1"
    ));
    n1.dm_fail("faulty", true);
    let o = n1.run(&format!(
        "dd if={dev} of=/dev/null bs=4k count=1 iflag=direct 2>&1"
    ));
    assert!(!o.success(), "read from the error target succeeded\n{o}");
    n1.dm_fail("faulty", false);
    n1.run_ok(&format!(
        "dd if={dev} of=/dev/null bs=4k count=1 iflag=direct 2>&1"
    ));
    // A guest left paused is resumed and shut down cleanly when the cluster is dropped.
    n0.pause();
    // Kernel-log checking sees a report (here a fake one written to /dev/kmsg) until it is allowed.
    n1.run_ok("echo 'WARNING: harness self-test' > /dev/kmsg");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while c.kernel_reports().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = c.kernel_reports();
    assert!(
        r.len() == 1 && r[0].0 == "node1" && r[0].1.line.contains("harness self-test"),
        "{r:?}"
    );
    c.allow_kernel_report("WARNING: harness self-test");
    assert!(c.kernel_reports().is_empty());
    // The I/O errors above are logged by the kernel ("Buffer I/O error", "I/O error"), not splats.
    eprintln!("smoke test took {:.1}s", t0.elapsed().as_secs_f64());
}

/// Three guests: a full mesh, one /24 per pair, each link cut separately.
#[test]
fn three_node_mesh() {
    let c = Cluster::start(ClusterSpec::new(3).disks(&[16]));
    let ping = |from: usize, to: usize| {
        c.node(from)
            .run(&format!("timeout 3 ping -c 1 {}", c.addr(to, from)))
    };
    for a in 0..3 {
        for b in 0..3 {
            if a != b {
                let o = c.node(a).wait_until(
                    &format!("timeout 3 ping -c 1 {}", c.addr(b, a)),
                    Duration::from_secs(30),
                );
                assert!(o.success(), "node{a} -> node{b}\n{o}");
            }
        }
    }
    assert_eq!(c.addr(0, 2), "10.0.1.1");
    assert_eq!(c.addr(2, 1), "10.0.2.3");
    // Cutting 0-2 leaves 0-1 and 1-2 up.
    c.set_link(0, 2, false);
    assert!(!ping(0, 2).success());
    assert!(!ping(2, 0).success());
    assert!(ping(0, 1).success());
    assert!(ping(1, 2).success());
    c.set_link(0, 2, true);
    let o = c.node(0).wait_until(
        &format!("timeout 3 ping -c 1 {}", c.addr(2, 0)),
        Duration::from_secs(30),
    );
    assert!(o.success(), "{o}");
}
