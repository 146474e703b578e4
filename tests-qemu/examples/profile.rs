//! Per-I/O cost profile (issue 6): where the CPU of both guests goes for one fio job on the raw
//! disk, drbd-rs protocol C and the in-tree DRBD 8.4, side by side in one run. For every
//! configuration it prints, per completed I/O and per node: CPU microseconds split into user,
//! system, hard-irq and soft-irq time, context switches, interrupts, TCP segments out/in and
//! link packets. The guest kernel has no PMU under TCG, so these counters are the profile.
//!
//! `PROFILE_JOBS` (comma-separated fio job keys of the benchmark, default
//! `qd32x4,qd1,read`), `PROFILE_RUNTIME` (seconds, default 8), `PROFILE_SKIP_84=1`,
//! `PROFILE_OURS_NET` (extra `new-peer` options for drbd-rs), `PROFILE_PERF=1` (also a
//! `perf record -a -e cpu-clock` sampling profile on both nodes during each job: the hottest
//! symbols are printed; `PROFILE_PERF_LINES`, default 25), `PROFILE_SS=1` (every TCP socket's
//! counters after each job: segments in/out, data segments, delivered).
//! Run it with `cargo run --release -p tests-qemu --example profile` after `./ci/build-module.sh`
//! and `./ci/build-tools.sh`.

use std::collections::BTreeMap;
use std::time::Duration;
use tests_qemu::cluster::RunOpts;
use tests_qemu::{Cluster, ClusterSpec, Node};

const MIB: u64 = 128;
const D84: &str = "/lib/drbd/drbdsetup-84";
const META84: &str = "/opt/drbd-utils/sbin/drbdmeta";
const NET_OPTS: &str = "--ping-int=2 --ping-timeout=10 --connect-int=2";

fn job_args(key: &str) -> (&'static str, bool) {
    match key {
        "qd1" => ("--rw=randwrite --bs=4k --iodepth=1 --numjobs=1", false),
        "fsync" => (
            "--rw=randwrite --bs=4k --iodepth=1 --numjobs=1 --fsync=1",
            false,
        ),
        "seq" => ("--rw=write --bs=1M --iodepth=32 --numjobs=1", false),
        "qd32x4" => ("--rw=randwrite --bs=4k --iodepth=32 --numjobs=4", false),
        "read" => ("--rw=randread --bs=4k --iodepth=32 --numjobs=1", true),
        other => panic!("unknown job {other} (qd1, fsync, seq, qd32x4, read)"),
    }
}

/// Counter name -> value, from one guest.
type Snap = BTreeMap<String, f64>;

const SNAP_CMD: &str =
    "head -n 1 /proc/stat; grep -E '^(ctxt|intr) ' /proc/stat | cut -d' ' -f1-2; \
     grep '^Tcp:' /proc/net/snmp | tail -n 1; \
     for f in tx_packets rx_packets; do echo \"$f $(cat /sys/class/net/$IFC/statistics/$f)\"; done";

fn snap(n: &Node, ifc: &str) -> Snap {
    let out = n.run_ok(&SNAP_CMD.replace("$IFC", ifc));
    let mut s = Snap::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
        match f.first() {
            Some(&"cpu") => {
                // jiffies (USER_HZ = 100) -> microseconds
                for (i, k) in ["usr", "nice", "sys", "idle", "iowait", "irq", "softirq"]
                    .iter()
                    .enumerate()
                {
                    s.insert(format!("{k}_us"), num(i + 1) * 10_000.0);
                }
            }
            Some(&"ctxt") => drop(s.insert("ctxt".into(), num(1))),
            Some(&"intr") => drop(s.insert("intr".into(), num(1))),
            // Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails
            // EstabResets CurrEstab InSegs OutSegs RetransSegs ...
            Some(&"Tcp:") => {
                s.insert("tcp_in".into(), num(10));
                s.insert("tcp_out".into(), num(11));
            }
            Some(k) => drop(s.insert((*k).to_string(), num(1))),
            None => {}
        }
    }
    s
}

fn fio_iops(n: &Node, dev: &str, key: &str, runtime: u64) -> f64 {
    let (args, read) = job_args(key);
    let o = n.run_with(
        &format!(
            "fio --name={key} --filename={dev} --direct=1 --ioengine=libaio --time_based \
             --runtime={runtime} --size={}M --group_reporting --output-format=terse \
             --terse-version=3 {args}",
            MIB - 8
        ),
        RunOpts {
            timeout: Some(Duration::from_secs(runtime + 120)),
            ..Default::default()
        },
    );
    assert!(o.success(), "fio failed\n{o}");
    // terse v3: field 8 read IOPS, field 49 write IOPS (1-based, ';'-separated)
    let f: Vec<&str> = o.stdout.trim().split(';').collect();
    let idx = if read { 7 } else { 48 };
    // Completion latency max and mean (us): a stalled request shows here, not in the IOPS.
    let (max, mean) = if read { (14, 15) } else { (55, 56) };
    println!(
        "           clat max {} us, mean {} us",
        f.get(max).unwrap_or(&"?"),
        f.get(mean).unwrap_or(&"?")
    );
    f.get(idx).and_then(|x| x.parse().ok()).unwrap_or(f64::NAN)
}

/// Sampling profile on every node while a job runs (`PROFILE_PERF=1`).
struct Sampler {
    on: bool,
    lines: usize,
}

impl Sampler {
    fn from_env() -> Self {
        Sampler {
            on: std::env::var("PROFILE_PERF").is_ok_and(|v| v == "1"),
            lines: std::env::var("PROFILE_PERF_LINES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(25),
        }
    }

    /// Starts `perf record` for `secs` seconds in the background on `n`.
    fn start(&self, n: &Node, secs: u64) {
        if !self.on {
            return;
        }
        n.run_ok(&format!(
            "echo 0 > /proc/sys/kernel/kptr_restrict; echo -1 > /proc/sys/kernel/perf_event_paranoid; \
             rm -f /tmp/perf.data; \
             (perf record -a -q -e cpu-clock -F 499 -o /tmp/perf.data -- sleep {secs} \
               >/tmp/perf.log 2>&1 &)"
        ));
    }

    /// Waits for the recording on `n` to end and prints its hottest symbols.
    fn report(&self, n: &Node) {
        if !self.on {
            return;
        }
        let o = n.run(&format!(
            "while pidof perf >/dev/null; do sleep 0.2; done; cat /tmp/perf.log; \
             perf report -i /tmp/perf.data --stdio --no-children --sort dso,sym -q 2>/dev/null \
               | grep -v '^$' | head -n {}",
            self.lines
        ));
        println!("           {} perf (cpu-clock samples):", n.name);
        for l in o.stdout.lines() {
            println!("             {l}");
        }
    }
}

fn profile(c: &Cluster, conf: &str, dev: &str, key: &str, runtime: u64) {
    let nodes = [c.node(0), c.node(1)];
    let ifcs = [nodes[0].iface(1), nodes[1].iface(0)];
    let sampler = Sampler::from_env();
    let ss_before: Vec<Option<String>> = nodes.iter().map(|n| sockets(n)).collect();
    let before: Vec<Snap> = (0..2).map(|i| snap(nodes[i], &ifcs[i])).collect();
    for n in nodes {
        // fio needs about a second to lay out and start; sample the steady part.
        sampler.start(n, runtime.saturating_sub(2).max(1));
    }
    let iops = fio_iops(nodes[0], dev, key, runtime);
    let after: Vec<Snap> = (0..2).map(|i| snap(nodes[i], &ifcs[i])).collect();
    // fio's own start-up and tear-down are in the counters; at these rates they are noise.
    let ios = iops * runtime as f64;
    println!("{conf:>9} {key:>7}: {iops:8.0} IOPS");
    for i in 0..2 {
        let d =
            |k: &str| (after[i].get(k).unwrap_or(&0.0) - before[i].get(k).unwrap_or(&0.0)) / ios;
        let busy = d("usr_us") + d("nice_us") + d("sys_us") + d("irq_us") + d("softirq_us");
        println!(
            "           node{i}: cpu {busy:7.0} us/io (usr {:5.0} sys {:6.0} irq {:5.0} sirq {:6.0}) \
             ctxt {:5.2} intr {:5.2} tcp out {:5.2} in {:5.2} pkts tx {:5.2} rx {:5.2}",
            d("usr_us") + d("nice_us"),
            d("sys_us"),
            d("irq_us"),
            d("softirq_us"),
            d("ctxt"),
            d("intr"),
            d("tcp_out"),
            d("tcp_in"),
            d("tx_packets"),
            d("rx_packets"),
        );
    }
    for n in nodes {
        sampler.report(n);
    }
    for (n, before) in nodes.iter().zip(&ss_before) {
        if let Some(before) = before {
            println!("           {} sockets before / after:", n.name);
            for l in before.lines().chain(sockets(n).unwrap_or_default().lines()) {
                println!("             {}", l.trim());
            }
        }
    }
}

/// Every established TCP socket's counters (`PROFILE_SS=1`).
fn sockets(n: &Node) -> Option<String> {
    std::env::var("PROFILE_SS")
        .is_ok_and(|v| v == "1")
        .then(|| n.run("ss -tin state established 2>/dev/null").stdout)
}

fn wait(n: &Node, what: &str, cmd: &str) {
    let o = n.wait_until(cmd, Duration::from_secs(600));
    assert!(o.success(), "{}: timed out waiting for {what}\n{o}", n.name);
}

/// Waits until node0 is connected, promotes it, and waits until both nodes are in sync.
fn promote_and_sync(c: &Cluster, connected: (&str, &str), promote: &str, synced: (&str, &str)) {
    let a = c.node(0);
    wait(a, connected.0, connected.1);
    a.run_ok(promote);
    for n in c.nodes() {
        wait(n, synced.0, synced.1);
    }
}

fn create_md(n: &Node, cmd: &str) {
    n.run_with(
        cmd,
        RunOpts {
            stdin: Some(b"yes\nyes\n".to_vec()),
            ..Default::default()
        },
    );
}

fn main() {
    let jobs = std::env::var("PROFILE_JOBS").unwrap_or_else(|_| "qd32x4,qd1,read".into());
    let jobs: Vec<&str> = jobs.split(',').filter(|j| !j.is_empty()).collect();
    for j in &jobs {
        job_args(j);
    }
    let runtime: u64 = std::env::var("PROFILE_RUNTIME")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let skip84 = std::env::var("PROFILE_SKIP_84").is_ok_and(|v| v == "1");
    let extra = std::env::var("PROFILE_OURS_NET").unwrap_or_default();
    // perf and ss in the guests.
    std::env::set_var("DRBD_RS_GUEST_PROFILING", "1");
    let c = Cluster::start(
        ClusterSpec::new(2)
            .disks(&[MIB, MIB])
            .mem(512)
            .name("profile"),
    );
    let a = c.node(0);
    a.run_ok(&format!(
        "for d in /dev/vdb /dev/vdc; do dd if=/dev/zero of=$d bs=1M count={MIB} oflag=direct 2>/dev/null || exit 1; done"
    ));
    for j in &jobs {
        profile(&c, "raw", "/dev/vdb", j, runtime);
    }

    for (me, n) in c.nodes().iter().enumerate() {
        let peer = 1 - me;
        n.run_ok("modprobe drbd");
        create_md(n, "drbdmeta --force 1 v09 /dev/vdb internal create-md 1");
        n.run_ok(&format!(
            "drbdsetup new-resource r0 {me} && drbdsetup new-minor r0 1 0 && \
             drbdsetup new-peer r0 {peer} --_name=node{peer} --protocol=C {NET_OPTS} {extra} && \
             drbdsetup new-path r0 {peer} ipv4:{}:7789 ipv4:{}:7789 && \
             drbdsetup attach 1 /dev/vdb /dev/vdb internal && drbdsetup connect r0 {peer}",
            c.addr(me, peer),
            c.addr(peer, me)
        ));
    }
    promote_and_sync(
        &c,
        ("Connected", "drbdsetup status r0 | grep -q 'node1 role:'"),
        "drbdsetup primary --force r0",
        (
            "UpToDate",
            "drbdsetup status r0 | grep -q 'peer-disk:UpToDate'",
        ),
    );
    for j in &jobs {
        profile(&c, "ours-C", "/dev/drbd1", j, runtime);
    }
    for n in c.nodes() {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }

    if skip84 || !a.run(&format!("[ -x {D84} ]")).success() {
        println!("DRBD 8.4 skipped");
        return;
    }
    for (me, n) in c.nodes().iter().enumerate() {
        let peer = 1 - me;
        n.run_ok("mkdir -p /var/lock");
        create_md(
            n,
            &format!("{META84} --force 0 v08 /dev/vdc internal create-md"),
        );
        n.run_ok(&format!(
            "if [ -e /lib/modules/drbd84/lru_cache.ko ]; then insmod /lib/modules/drbd84/lru_cache.ko; fi; \
             insmod /lib/modules/drbd84/drbd.ko && \
             {D84} new-resource r0 && {D84} new-minor r0 0 0 && \
             {D84} attach 0 /dev/vdc /dev/vdc internal && \
             {D84} connect r0 ipv4:{}:7790 ipv4:{}:7790 --protocol=C {NET_OPTS}",
            c.addr(me, peer),
            c.addr(peer, me)
        ));
    }
    promote_and_sync(
        &c,
        ("8.4 Connected", "grep -qE 'cs:(Connected|Sync)' /proc/drbd"),
        &format!("{D84} primary 0 --force"),
        (
            "8.4 UpToDate",
            "grep -q 'cs:Connected .*ds:UpToDate/UpToDate' /proc/drbd",
        ),
    );
    for j in &jobs {
        profile(&c, "drbd84-C", "/dev/drbd0", j, runtime);
    }
    let known = c.allow_drbd84_worker_warning();
    if known > 0 {
        println!("allowed {known} known 8.4 worker warning(s)");
    }
}
