//! The main job (README): boots a two-node cluster under QEMU, configures DRBD resource `r0` on
//! both nodes with the Rust `drbdmeta`/`drbdsetup` against our `drbd.ko`, connects them over
//! TCP, makes node0 Primary (full initial sync), puts a file system on it, fails over to node1
//! (which sees the same files), cuts and restores the link, and prints `drbdsetup status`,
//! `events2` and `/proc/drbd` along the way.

use std::time::Duration;
use tests_qemu::{Cluster, ClusterSpec, Node};

fn step(what: &str) {
    println!("\n=== {what}");
}

fn show(n: &Node, cmd: &str) {
    let out = n.run_ok(cmd);
    println!("{}$ {cmd}", n.name);
    print!("{out}");
}

fn wait(n: &Node, what: &str, cmd: &str) {
    let o = n.wait_until(cmd, Duration::from_secs(240));
    assert!(o.success(), "{}: gave up waiting for {what}", n.name);
}

fn main() {
    step("booting node0 and node1 (QEMU, our test kernel, 64 MiB DRBD disk each)");
    let c = Cluster::start(ClusterSpec::new(2).disks(&[64]).name("demo"));
    let (a, b) = (c.node(0), c.node(1));
    for (me, n) in c.nodes().iter().enumerate() {
        let peer = 1 - me;
        let (mine, theirs) = (c.addr(me, peer), c.addr(peer, me));
        n.run_ok("modprobe drbd");
        show(n, "head -n 1 /proc/drbd");
        n.run_ok("drbdmeta --force 1 v09 /dev/vdb internal create-md 1 </dev/null >/dev/null");
        show(
            n,
            &format!(
                "drbdsetup new-resource r0 {me} && drbdsetup new-minor r0 1 0 && \
                 drbdsetup new-peer r0 {peer} --_name=node{peer} --protocol=C && \
                 drbdsetup new-path r0 {peer} ipv4:{mine}:7789 ipv4:{theirs}:7789 && \
                 drbdsetup attach 1 /dev/vdb /dev/vdb internal && drbdsetup connect r0 {peer} && echo configured"
            ),
        );
    }
    let mut events = a.spawn("drbdsetup events2 r0");
    wait(
        a,
        "the connection",
        "drbdsetup status r0 | grep -q 'node1 role:'",
    );
    show(a, "drbdsetup status r0 --verbose");

    step("node0: primary --force starts the initial full sync");
    a.run_ok("drbdsetup primary --force r0");
    std::thread::sleep(Duration::from_secs(3));
    show(a, "drbdsetup status r0");
    wait(
        a,
        "the end of the sync",
        "drbdsetup status r0 | grep -q 'peer-disk:UpToDate'",
    );
    show(a, "drbdsetup status r0");
    show(b, "drbdsetup status r0");

    step("node0: mkfs.ext4 on /dev/drbd1, write a file");
    a.run_ok("mkfs.ext4 -q /dev/drbd1 && mkdir -p /mnt && mount /dev/drbd1 /mnt");
    a.run_ok("dd if=/dev/urandom of=/mnt/data bs=1M count=4 2>/dev/null && sync");
    show(a, "sha256sum /mnt/data");

    step("fail over: node0 unmounts and demotes, node1 promotes and mounts");
    a.run_ok("umount /mnt && drbdsetup secondary r0");
    wait(
        b,
        "the peer's demotion",
        "drbdsetup status r0 | grep -q 'node0 role:Secondary'",
    );
    b.run_ok("drbdsetup primary r0 && mkdir -p /mnt && mount /dev/drbd1 /mnt");
    show(b, "sha256sum /mnt/data");
    show(b, "drbdsetup status r0 --statistics");

    step("cut the link while node1 writes, restore it: node0 catches up");
    c.set_link(0, 1, false);
    wait(
        b,
        "link loss",
        "drbdsetup status r0 | grep -q 'connection:Connecting'",
    );
    show(b, "drbdsetup status r0");
    b.run_ok("dd if=/dev/urandom of=/mnt/more bs=1M count=2 2>/dev/null && sync");
    c.set_link(0, 1, true);
    wait(
        b,
        "resync",
        "drbdsetup status r0 | grep -q 'peer-disk:UpToDate'",
    );
    show(b, "drbdsetup status r0");
    b.run_ok("umount /mnt && drbdsetup secondary r0");

    step("events2 on node0 while all of this ran");
    let out = events.kill();
    print!("{}", out.stdout);

    step("down");
    for n in c.nodes() {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
    show(a, "cat /proc/drbd 2>&1 || echo 'module unloaded'");
    println!("\ndemo finished; guest logs in {}", c.dir().display());
}
