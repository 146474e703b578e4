//! The main job (README): boots a two-node cluster under QEMU, brings up DRBD resource `r0` on
//! each node with Rust `drbdsetup`/`drbdmeta` against our `drbd.ko`, puts a file system on the
//! Primary, switches roles, and prints `drbdsetup status`, `events2` and `/proc/drbd`.
//!
//! Replication between the nodes arrives with the connection layer; until then each node
//! serves its own disk and the demo says so.

use tests_qemu::{Cluster, ClusterSpec, Node};

fn step(what: &str) {
    println!("\n=== {what}");
}

fn show(n: &Node, cmd: &str) {
    let out = n.run_ok(cmd);
    println!("{}$ {cmd}", n.name);
    print!("{out}");
}

fn main() {
    step("booting node0 and node1 (QEMU, our test kernel, 256 MiB disk each)");
    let c = Cluster::start(ClusterSpec::new(2).disks(&[256]).name("demo"));
    for n in c.nodes() {
        n.run_ok("modprobe drbd");
        show(n, "head -n 1 /proc/drbd");
        n.run_ok("drbdmeta --force 1 v09 /dev/vdb internal create-md 1 </dev/null >/dev/null");
        n.run_ok("drbdsetup new-resource r0 0 && drbdsetup new-minor r0 1 0");
        n.run_ok("drbdsetup attach 1 /dev/vdb /dev/vdb internal");
        show(n, "drbdsetup status r0 --verbose");
    }
    let (a, b) = (c.node(0), c.node(1));
    let mut events = a.spawn("drbdsetup events2 r0");

    step("node0: primary --force, mkfs.ext4, write a file");
    show(a, "drbdsetup primary --force r0");
    a.run_ok("mkfs.ext4 -q /dev/drbd1 && mkdir -p /mnt && mount /dev/drbd1 /mnt");
    a.run_ok("dd if=/dev/urandom of=/mnt/data bs=1M count=8 2>/dev/null && sync");
    show(a, "sha256sum /mnt/data");
    show(a, "drbdsetup status r0 --statistics");

    step("switch roles on node0: unmount, secondary (data stays on disk), primary again");
    a.run_ok("umount /mnt");
    show(a, "drbdsetup secondary r0");
    show(a, "drbdsetup status r0");
    a.run_ok("drbdsetup primary r0 && mount /dev/drbd1 /mnt");
    show(a, "sha256sum /mnt/data");
    a.run_ok("umount /mnt && drbdsetup secondary r0");

    step("node1: its own resource, promoted with auto-promote on open for writing");
    b.run_ok("drbdsetup primary --force r0 && drbdsetup secondary r0");
    show(
        b,
        "dd if=/dev/zero of=/dev/drbd1 bs=4k count=1 oflag=direct 2>&1 | tail -n 1",
    );
    show(b, "drbdsetup status r0");
    println!(
        "\nnote: replication between node0 and node1 is not implemented yet (connections, issue 4)"
    );

    step("events2 on node0 while the above ran");
    let out = events.kill();
    print!("{}", out.stdout);

    step("down");
    for n in c.nodes() {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
    println!("\ndemo finished; guest logs in {}", c.dir().display());
}
