//! Benchmark (README "Benchmark", issue 6): boots two identical guests (same virtio disks, one
//! virtio-net link) and runs the standard fio jobs on four configurations, interleaved round by
//! round so that slow drifts of the host hit all of them alike:
//!
//! - `raw`: the backing disk `/dev/vdb` of node0, no DRBD module loaded;
//! - `ours-C` / `ours-A`: drbd-rs (`/dev/drbd1` on `/dev/vdb`), protocol C / A, node0 Primary;
//! - `drbd84-C`: the in-tree C DRBD 8.4 module (`/dev/drbd0` on `/dev/vdc`, an identical disk),
//!   protocol C, configured with Debian's `drbdsetup-84`.
//!
//! Our module and 8.4 are both `drbd` (major 147), so each round unloads one before loading the
//! other. Each round also measures the link (ping RTT, a TCP stream between the guests) and the
//! raw 4 KiB QD1 write on node1, which give the physical limit of a protocol C QD1 write,
//! `max(local write, RTT + remote write)`. Before the rounds it times the full initial sync of
//! each implementation and counts the bytes on the wire per byte dirtied while disconnected; the
//! 1 MiB job records guest CPU time per GiB on both nodes. Prints a table with the ratios (vs raw,
//! vs 8.4, vs the physical limit) and the targets, and writes `target/bench/result.json`.
//!
//! Each figure is the median over the rounds. Environment: `BENCH_QUICK=1` (1 round, 4 s jobs, for
//! trying the harness), `BENCH_ROUNDS` (default 3), `BENCH_RUNTIME` (seconds per job, default 8),
//! `BENCH_RAMP` (seconds of fio ramp-up not counted, default 1), `BENCH_SIZE_MIB` (fio span and
//! DRBD device size, default 256; backing disks are 8 MiB larger), `BENCH_SKIP_84=1`, `BENCH_OUT`
//! (JSON path).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tests_qemu::cluster::RunOpts;
use tests_qemu::{Cluster, ClusterSpec, Json, Node, Output};

/// fio span (MiB, `BENCH_SIZE_MIB`); each backing disk is 8 MiB larger so that the raw-device runs
/// never touch the internal meta-data at its end.
const FIO_MIB: u64 = 256;
const QUICK_FIO_MIB: u64 = 128;
/// Written while disconnected, for the wire-efficiency test.
const DIRTY_MIB: u64 = 8;
/// TCP stream size for the link capacity.
const STREAM_MIB: u64 = 128;
const PORT_OURS: u16 = 7789;
const PORT_84: u16 = 7790;
const NET_OPTS: &str = "--ping-int=2 --ping-timeout=10 --connect-int=2";
const D84: &str = "/lib/drbd/drbdsetup-84";
const META84: &str = "/opt/drbd-utils/sbin/drbdmeta";
const GIB: f64 = (1u64 << 30) as f64;
const MB: f64 = 1e6;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Conf {
    Raw,
    OursC,
    OursA,
    Drbd84,
}

const CONFS: [Conf; 4] = [Conf::Raw, Conf::OursC, Conf::OursA, Conf::Drbd84];

impl Conf {
    fn name(self) -> &'static str {
        match self {
            Conf::Raw => "raw",
            Conf::OursC => "ours-C",
            Conf::OursA => "ours-A",
            Conf::Drbd84 => "drbd84-C",
        }
    }
}

struct JobDef {
    key: &'static str,
    title: &'static str,
    args: &'static str,
    read: bool,
}

const QD1: &str = "randwrite_4k_qd1";
const FSYNC: &str = "randwrite_4k_qd1_fsync";
const SEQ: &str = "seqwrite_1m_qd32";
const QD32X4: &str = "randwrite_4k_qd32x4";
const READ: &str = "randread_4k_qd32";

const JOBS: &[JobDef] = &[
    JobDef {
        key: QD1,
        title: "4k randwrite QD1",
        args: "--rw=randwrite --bs=4k --iodepth=1 --numjobs=1",
        read: false,
    },
    JobDef {
        key: FSYNC,
        title: "4k randwrite QD1 fsync=1",
        args: "--rw=randwrite --bs=4k --iodepth=1 --numjobs=1 --fsync=1",
        read: false,
    },
    JobDef {
        key: SEQ,
        title: "1M seq write QD32",
        args: "--rw=write --bs=1M --iodepth=32 --numjobs=1",
        read: false,
    },
    JobDef {
        key: QD32X4,
        title: "4k randwrite QD32 x4 jobs",
        args: "--rw=randwrite --bs=4k --iodepth=32 --numjobs=4",
        read: false,
    },
    JobDef {
        key: READ,
        title: "4k randread QD32",
        args: "--rw=randread --bs=4k --iodepth=32 --numjobs=1",
        read: true,
    },
];

fn job(key: &str) -> &'static JobDef {
    JOBS.iter().find(|j| j.key == key).expect("known job")
}

/// One fio run, reduced to what the report needs (named fields, so medians can be taken per field).
type Sample = BTreeMap<&'static str, f64>;

struct Settings {
    rounds: usize,
    runtime: u64,
    ramp: u64,
    skip84: bool,
    out: PathBuf,
    fio_mib: u64,
    disk_mib: u64,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn settings() -> Settings {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("workspace root")
                .join("target")
        });
    let fio_mib = env_u64(
        "BENCH_SIZE_MIB",
        if quick { QUICK_FIO_MIB } else { FIO_MIB },
    )
    .max(16);
    Settings {
        fio_mib,
        disk_mib: fio_mib + 8,
        rounds: env_u64("BENCH_ROUNDS", if quick { 1 } else { 3 }).max(1) as usize,
        runtime: env_u64("BENCH_RUNTIME", if quick { 4 } else { 8 }).max(1),
        ramp: env_u64("BENCH_RAMP", 1),
        skip84: std::env::var("BENCH_SKIP_84").is_ok_and(|v| v == "1"),
        out: std::env::var_os("BENCH_OUT")
            .map(PathBuf::from)
            .unwrap_or_else(|| target.join("bench/result.json")),
    }
}

/// Wall-clock time per phase, for "where the time goes".
struct Clock {
    start: Instant,
    phases: Vec<(String, f64)>,
}

impl Clock {
    fn time<T>(&mut self, what: &str, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        eprintln!(
            "[bench +{:4.0}s] {what}",
            self.start.elapsed().as_secs_f64()
        );
        let r = f();
        let d = t.elapsed().as_secs_f64();
        match self.phases.iter_mut().find(|(p, _)| p == what) {
            Some((_, s)) => *s += d,
            None => self.phases.push((what.to_string(), d)),
        }
        r
    }
}

fn run_out(n: &Node, cmd: &str, secs: u64) -> Output {
    let o = n.run_with(
        cmd,
        RunOpts {
            timeout: Some(Duration::from_secs(secs)),
            ..Default::default()
        },
    );
    if !o.success() {
        panic!(
            "{}: command failed\n{o}\nwhere the tasks wait:\n{}",
            n.name,
            waiting_tasks(n)
        );
    }
    o
}

/// Where fio and the module's threads wait, the DRBD state and the last kernel lines: what a
/// hung job leaves to look at (the guest kernels have no sysrq).
fn waiting_tasks(n: &Node) -> String {
    let o = n.run_with(
        "for p in /proc/[0-9]*; do c=$(cat $p/comm 2>/dev/null); case \"$c\" in drbd*|fio*|kworker*) ;; *) continue;; esac; \
         echo \"== $c ${p#/proc/} $(awk '/^State/{print $2}' $p/status) $(cat $p/wchan 2>/dev/null)\"; \
         cat $p/stack 2>/dev/null; done; drbdsetup status --verbose --statistics; dmesg | tail -n 40",
        RunOpts {
            timeout: Some(Duration::from_secs(60)),
            ..Default::default()
        },
    );
    format!("{}{}", o.stdout, o.stderr)
}

fn diag(n: &Node) -> String {
    n.run("drbdsetup status --verbose --statistics 2>&1; cat /proc/drbd 2>&1; dmesg | tail -n 40")
        .stdout
}

fn wait(n: &Node, what: &str, cmd: &str, secs: u64) {
    let o = n.wait_until(cmd, Duration::from_secs(secs));
    if !o.success() {
        panic!("{}: timed out waiting for {what}\n{o}\n{}", n.name, diag(n));
    }
}

/// Busy and total jiffies of the guest's CPU line (`cpu ...` of /proc/stat).
fn parse_cpu(line: &str) -> (u64, u64) {
    let v: Vec<u64> = line
        .lines()
        .find(|l| l.starts_with("cpu "))
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn cpu(n: &Node) -> (u64, u64) {
    parse_cpu(&n.run_ok("head -n 1 /proc/stat"))
}

/// Busy CPU seconds per GiB moved at `bw` bytes/s, from the busy fraction over an interval.
fn per_gib(t0: (u64, u64), t1: (u64, u64), bw: f64) -> f64 {
    let (busy, total) = (t1.0.saturating_sub(t0.0), t1.1.saturating_sub(t0.1));
    if total == 0 || bw <= 0.0 {
        return f64::NAN;
    }
    busy as f64 / total as f64 * GIB / bw
}

fn num(j: &Json, path: &[&str]) -> f64 {
    let mut cur = j;
    for p in path {
        match cur.get(p) {
            Some(x) => cur = x,
            None => return f64::NAN,
        }
    }
    cur.as_f64().unwrap_or(f64::NAN)
}

/// Parses fio's `--output-format=json` (anything before the first `{` is fio chatter).
fn parse_fio(out: &str, read: bool) -> Sample {
    let start = out
        .find('{')
        .unwrap_or_else(|| panic!("no JSON in fio output:\n{out}"));
    let j = Json::parse(out[start..].trim_end()).unwrap_or_else(|e| panic!("fio JSON: {e}\n{out}"));
    let job = j
        .get("jobs")
        .and_then(|a| a.as_array())
        .and_then(|a| a.first())
        .unwrap_or_else(|| panic!("fio JSON without jobs:\n{out}"));
    let d = if read { "read" } else { "write" };
    let mut s = Sample::new();
    s.insert("iops", num(job, &[d, "iops"]));
    s.insert("mb_s", num(job, &[d, "bw_bytes"]) / MB);
    s.insert("lat_mean_us", num(job, &[d, "lat_ns", "mean"]) / 1e3);
    // Submission (io_submit until the block layer took the bio) and completion, separately.
    s.insert("slat_mean_us", num(job, &[d, "slat_ns", "mean"]) / 1e3);
    s.insert("clat_mean_us", num(job, &[d, "clat_ns", "mean"]) / 1e3);
    s.insert("clat_max_us", num(job, &[d, "clat_ns", "max"]) / 1e3);
    for (k, p) in [
        ("clat_p50_us", "50.000000"),
        ("clat_p99_us", "99.000000"),
        ("clat_p999_us", "99.900000"),
    ] {
        s.insert(k, num(job, &[d, "clat_ns", "percentile", p]) / 1e3);
    }
    if let Some(sync) = job.get("sync").and_then(|x| x.get("lat_ns")) {
        for (k, p) in [("sync_p50_us", "50.000000"), ("sync_p99_us", "99.000000")] {
            s.insert(k, num(sync, &["percentile", p]) / 1e3);
        }
    }
    s
}

fn fio_cmd(s: &Settings, dev: &str, job: &JobDef) -> String {
    format!(
        "fio --name={} --filename={dev} --direct=1 --ioengine=libaio --time_based --runtime={} \
         --ramp_time={} --size={}M --group_reporting --output-format=json {}",
        job.key, s.runtime, s.ramp, s.fio_mib, job.args
    )
}

/// Runs one fio job on `n`; for the 1 MiB job also the CPU time of both guests.
fn fio(c: &Cluster, n: &Node, s: &Settings, dev: &str, job: &JobDef) -> Sample {
    let sm = fio_inner(c, n, s, dev, job);
    eprintln!(
        "[bench]   {} {dev} {}: {:.0} IOPS {:.1} MB/s p50 {:.0} us p99 {:.0} us",
        n.name, job.key, sm["iops"], sm["mb_s"], sm["clat_p50_us"], sm["clat_p99_us"]
    );
    sm
}

fn fio_inner(c: &Cluster, n: &Node, s: &Settings, dev: &str, job: &JobDef) -> Sample {
    let secs = s.runtime + s.ramp + 180;
    if job.key != SEQ {
        return parse_fio(&run_out(n, &fio_cmd(s, dev, job), secs).stdout, job.read);
    }
    let other = c.node(1 - n.index);
    let o0 = cpu(other);
    // The /proc/stat lines go to stderr so that stdout stays fio's JSON.
    let out = run_out(
        n,
        &format!(
            "head -n 1 /proc/stat >&2; {}; head -n 1 /proc/stat >&2",
            fio_cmd(s, dev, job)
        ),
        secs,
    );
    let o1 = cpu(other);
    let mut sm = parse_fio(&out.stdout, job.read);
    let bw = sm["mb_s"] * MB;
    let stat: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("cpu "))
        .collect();
    if stat.len() == 2 {
        let (m0, m1) = (parse_cpu(stat[0]), parse_cpu(stat[1]));
        sm.insert("cpu_node0_s_per_gib", per_gib(m0, m1, bw));
    }
    sm.insert("cpu_node1_s_per_gib", per_gib(o0, o1, bw));
    sm
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// All samples of the run.
#[derive(Default)]
struct Results {
    /// (configuration, job) -> one sample per round
    fio: BTreeMap<(Conf, &'static str), Vec<Sample>>,
    /// node1 raw 4k QD1 write, one per round
    remote_qd1: Vec<Sample>,
    rtt_ms: Vec<f64>,
    rtt4k_ms: Vec<f64>,
    link_mb_s: Vec<f64>,
    /// name -> value, single measurements (sync rates, wire bytes, re-up times, ...)
    single: BTreeMap<String, f64>,
    notes: Vec<String>,
}

impl Results {
    fn get(&self, c: Conf, job: &str, field: &str) -> f64 {
        self.fio
            .iter()
            .find(|((cc, j), _)| *cc == c && *j == job)
            .map(|(_, v)| median(v.iter().filter_map(|s| s.get(field).copied()).collect()))
            .unwrap_or(f64::NAN)
    }
    fn add(&mut self, c: Conf, job: &'static str, s: Sample) {
        self.fio.entry((c, job)).or_default().push(s);
    }
    fn single(&self, k: &str) -> f64 {
        self.single.get(k).copied().unwrap_or(f64::NAN)
    }
}

// ---- the link ---------------------------------------------------------------------------------

fn ping_ms(n: &Node, addr: &str, size: u32) -> f64 {
    // Busybox ping paces its packets with alarm(), which this kernel lacks (no POSIX timers), so
    // use -A (next request as soon as the reply is in). The first (ARP) is dropped; median of the
    // rest.
    let o = n.run(&format!(
        "timeout 30 ping -A -c 21 -s {size} {addr} 2>&1 | grep -o 'time=[0-9.]*'; true"
    ));
    let v: Vec<f64> = o
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("time=")?.parse().ok())
        .skip(1)
        .collect();
    assert!(v.len() >= 5, "{}: too few ping replies\n{o}", n.name);
    median(v)
}

/// A TCP stream of `STREAM_MIB` from node0 to node1 with fio's `net` engine, 1 MiB writes
/// (busybox `nc` moves 1 KiB per system call and measures itself, not the link); MB/s as sent.
/// The receiver asks for far more than is sent (fio counts a short read as a whole block) and ends
/// at the sender's EOF; the sender's figure includes at most a socket buffer of slack.
fn stream_mb_s(c: &Cluster) -> f64 {
    let (a, b) = (c.node(0), c.node(1));
    let common = "--ioengine=net --protocol=tcp --port=5001 --bs=1M";
    let mut rx = b.spawn(&format!(
        "fio --name=rx --rw=read {common} --size=1000G --listen"
    ));
    b.wait_until("netstat -ltn | grep -q ':5001 '", Duration::from_secs(30));
    let out = run_out(
        a,
        &format!(
            "fio --name=tx --rw=write {common} --size={STREAM_MIB}M --output-format=json --hostname={}",
            c.addr(1, 0)
        ),
        180,
    );
    let got = rx.wait(Duration::from_secs(60));
    assert!(got.success(), "stream receiver failed\n{got}");
    parse_fio(&out.stdout, false)["mb_s"]
}

/// (tx bytes, rx bytes, tx packets, rx packets) of an interface.
fn iface_bytes(n: &Node, ifc: &str) -> [f64; 4] {
    let o = n.run_ok(&format!(
        "cd /sys/class/net/{ifc}/statistics && cat tx_bytes rx_bytes tx_packets rx_packets"
    ));
    let v: Vec<f64> = o
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    [v[0], v[1], v[2], v[3]]
}

/// Ethernet + IPv4 + TCP (with timestamps) header bytes per frame: what the link adds to the
/// DRBD stream itself.
const FRAME_HEADER: f64 = 14.0 + 20.0 + 32.0;

/// Records wire bytes per `base` byte between two interface readings: everything, and the DRBD
/// stream alone (frame headers taken out).
fn wire(res: &mut Results, key: &str, c0: [f64; 4], c1: [f64; 4], base: f64) {
    let d: Vec<f64> = (0..4).map(|i| c1[i] - c0[i]).collect();
    res.single.insert(format!("{key}_tx_per_byte"), d[0] / base);
    res.single
        .insert(format!("{key}_total_per_byte"), (d[0] + d[1]) / base);
    res.single.insert(
        format!("{key}_payload_per_byte"),
        (d[0] + d[1] - FRAME_HEADER * (d[2] + d[3])) / base,
    );
    eprintln!(
        "[bench] {key}: node0 tx {:.0} B rx {:.0} B, {:.0}+{:.0} packets, for {base:.0} B",
        d[0], d[1], d[2], d[3]
    );
}

// ---- drbd-rs ----------------------------------------------------------------------------------

const OURS_CONNECTED: &str =
    "drbdsetup events2 --now r0 | grep -q 'exists connection .*connection:Connected'";
const OURS_SYNCED: &str = "drbdsetup events2 --now r0 | grep -q 'exists device .*disk:UpToDate' && \
     drbdsetup events2 --now r0 | grep -q 'exists peer-device .*replication:Established peer-disk:UpToDate'";

fn ours_up(c: &Cluster, proto: char) {
    for (me, n) in c.nodes().iter().enumerate() {
        let peer = 1 - me;
        n.run_ok(&format!(
            "lsmod | grep -q '^drbd ' || modprobe drbd; \
             drbdsetup new-resource r0 {me} && drbdsetup new-minor r0 1 0 && \
             drbdsetup new-peer r0 {peer} --_name=node{peer} --protocol={proto} {NET_OPTS} && \
             drbdsetup new-path r0 {peer} ipv4:{}:{PORT_OURS} ipv4:{}:{PORT_OURS} && \
             drbdsetup attach 1 /dev/vdb /dev/vdb internal && drbdsetup connect r0 {peer}",
            c.addr(me, peer),
            c.addr(peer, me)
        ));
    }
    for n in c.nodes() {
        wait(n, "Connected", OURS_CONNECTED, 120);
    }
}

/// After `ours_up` on meta-data that was in sync: make node0 Primary and wait until both are
/// UpToDate. Returns the seconds a resync (if any) took.
fn ours_primary(c: &Cluster, res: &mut Results, what: &str) -> f64 {
    let a = c.node(0);
    let t = Instant::now();
    if a.run("drbdsetup primary r0").success() {
    } else {
        res.notes.push(format!(
            "{what}: node0 was not UpToDate after re-attach; used primary --force (full sync)"
        ));
        a.run_ok("drbdsetup primary --force r0");
    }
    for n in c.nodes() {
        wait(n, "UpToDate on both", OURS_SYNCED, 600);
    }
    t.elapsed().as_secs_f64()
}

fn ours_down(c: &Cluster) {
    for n in c.nodes() {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
}

// ---- DRBD 8.4 ---------------------------------------------------------------------------------

const D84_SYNCED: &str = "grep -q 'cs:Connected .*ds:UpToDate/UpToDate' /proc/drbd";

fn d84_up(c: &Cluster) {
    for (me, n) in c.nodes().iter().enumerate() {
        let peer = 1 - me;
        n.run_ok(&format!(
            "if [ -e /lib/modules/drbd84/lru_cache.ko ]; then insmod /lib/modules/drbd84/lru_cache.ko; fi; \
             insmod /lib/modules/drbd84/drbd.ko && \
             {D84} new-resource r0 && {D84} new-minor r0 0 0 && \
             {META84} 0 v08 /dev/vdc internal apply-al && \
             {D84} attach 0 /dev/vdc /dev/vdc internal && \
             {D84} connect r0 ipv4:{}:{PORT_84} ipv4:{}:{PORT_84} --protocol=C {NET_OPTS}",
            c.addr(me, peer),
            c.addr(peer, me)
        ));
    }
    for n in c.nodes() {
        wait(
            n,
            "8.4 Connected",
            "grep -qE 'cs:(Connected|Sync)' /proc/drbd",
            120,
        );
    }
}

fn d84_primary(c: &Cluster, res: &mut Results, what: &str) -> f64 {
    let a = c.node(0);
    let t = Instant::now();
    if !a.run(&format!("{D84} primary 0")).success() {
        res.notes.push(format!(
            "{what}: 8.4 node0 was not UpToDate after re-attach; used primary --force"
        ));
        a.run_ok(&format!("{D84} primary 0 --force"));
    }
    for n in c.nodes() {
        wait(n, "8.4 UpToDate on both", D84_SYNCED, 600);
    }
    t.elapsed().as_secs_f64()
}

fn d84_down(c: &Cluster) {
    for n in c.nodes() {
        n.run_ok(&format!(
            "{D84} down r0 && rmmod drbd && if lsmod | grep -q '^lru_cache '; then rmmod lru_cache; fi"
        ));
    }
}

// ---- one-off measurements ---------------------------------------------------------------------

/// Cuts the link, writes `DIRTY_MIB` on node0's device, restores the link and counts node0's
/// interface bytes until both sides are UpToDate again.
fn wire_test(
    c: &Cluster,
    res: &mut Results,
    prefix: &str,
    dev: &str,
    disconnected: &str,
    synced: &str,
) {
    let a = c.node(0);
    let ifc = a.iface(1);
    c.set_link(0, 1, false);
    wait(a, "link loss", disconnected, 120);
    run_out(
        a,
        &format!(
            "dd if=/dev/urandom of={dev} bs=1M count={DIRTY_MIB} seek=64 oflag=direct 2>/dev/null"
        ),
        120,
    );
    let c0 = iface_bytes(a, &ifc);
    let t = Instant::now();
    c.set_link(0, 1, true);
    for n in c.nodes() {
        wait(n, "resync after the link came back", synced, 300);
    }
    let secs = t.elapsed().as_secs_f64();
    let c1 = iface_bytes(a, &ifc);
    wire(
        res,
        &format!("{prefix}_burst_wire"),
        c0,
        c1,
        (DIRTY_MIB << 20) as f64,
    );
    res.single
        .insert(format!("{prefix}_reconnect_resync_s"), secs);
}

/// Full initial sync after `primary --force` on fresh meta-data; sync rate and wire bytes.
fn initial_sync(
    c: &Cluster,
    res: &mut Results,
    prefix: &str,
    force: &str,
    synced: &str,
    dev: &str,
) {
    let a = c.node(0);
    let ifc = a.iface(1);
    let c0 = iface_bytes(a, &ifc);
    let t = Instant::now();
    a.run_ok(force);
    for n in c.nodes() {
        wait(n, "the initial sync", synced, 900);
    }
    let secs = t.elapsed().as_secs_f64();
    let c1 = iface_bytes(a, &ifc);
    let bytes: f64 = a
        .run_ok(&format!("blockdev --getsize64 {dev}"))
        .trim()
        .parse()
        .unwrap_or(f64::NAN);
    res.single.insert(format!("{prefix}_initial_sync_s"), secs);
    res.single
        .insert(format!("{prefix}_resync_mb_s"), bytes / secs / MB);
    eprintln!("[bench] {prefix}: full sync of {bytes} bytes in {secs:.1} s");
    wire(res, &format!("{prefix}_sync_wire"), c0, c1, bytes);
}

// ---- report -----------------------------------------------------------------------------------

fn fmt(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else if v.abs() >= 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

struct Target {
    what: &'static str,
    value: f64,
    goal: f64,
    /// true: value <= goal is good
    at_most: bool,
}

fn jnum(v: f64) -> Json {
    if v.is_finite() {
        Json::Num((v * 1e6).round() / 1e6)
    } else {
        Json::Null
    }
}

fn jobj(v: Vec<(String, Json)>) -> Json {
    Json::Obj(v)
}

fn main() {
    let s = settings();
    let mut clk = Clock {
        start: Instant::now(),
        phases: vec![],
    };
    let mut res = Results::default();

    let c = clk.time("boot", || {
        Cluster::start(
            ClusterSpec::new(2)
                .disks(&[s.disk_mib, s.disk_mib])
                .mem(512)
                .name("bench"),
        )
    });
    let (a, b) = (c.node(0), c.node(1));
    let peer_ip = c.addr(1, 0);
    for n in c.nodes() {
        n.run_ok("command -v fio >/dev/null && command -v drbdsetup >/dev/null");
    }
    if a.run("[ -e /proc/lockdep ]").success() {
        res.notes.push(
            "guest kernel is the debug build (lockdep, kmemleak): absolute figures are low for \
             every configuration; compare ratios"
                .into(),
        );
    }
    let have84 = !s.skip84
        && a.run(&format!(
            "[ -e /lib/modules/drbd84/drbd.ko ] && [ -x {D84} ] && [ -x {META84} ]"
        ))
        .success();
    if !have84 {
        res.notes.push(if s.skip84 {
            "DRBD 8.4 skipped (BENCH_SKIP_84=1)".into()
        } else {
            "DRBD 8.4 skipped: its module or drbd-utils' drbdsetup-84/drbdmeta missing in the guest"
                .into()
        });
    }
    let confs: Vec<Conf> = CONFS
        .iter()
        .copied()
        .filter(|c| have84 || *c != Conf::Drbd84)
        .collect();

    // Allocate node0's two disks in the host image files, so that reads and writes on raw, ours
    // (vdb) and 8.4 (vdc) all hit allocated blocks; node1's are written by the initial syncs.
    clk.time("prefill node0 disks", || {
        run_out(
            a,
            &format!(
                "for d in /dev/vdb /dev/vdc; do dd if=/dev/zero of=$d bs=1M count={} oflag=direct 2>/dev/null || exit 1; done",
                s.disk_mib
            ),
            900,
        );
    });

    // Fresh meta-data and the full initial syncs (timed).
    clk.time("ours: create-md, connect, initial sync", || {
        for n in c.nodes() {
            n.run_ok("modprobe drbd");
            n.run_with(
                "drbdmeta --force 1 v09 /dev/vdb internal create-md 1",
                RunOpts {
                    stdin: Some(b"yes\nyes\n".to_vec()),
                    ..Default::default()
                },
            );
        }
        ours_up(&c, 'C');
        initial_sync(
            &c,
            &mut res,
            "ours",
            "drbdsetup primary --force r0",
            OURS_SYNCED,
            "/dev/drbd1",
        );
    });
    clk.time("ours: disconnected write burst, resync", || {
        wire_test(
            &c,
            &mut res,
            "ours",
            "/dev/drbd1",
            "! drbdsetup events2 --now r0 | grep -q 'exists connection .*connection:Connected'",
            OURS_SYNCED,
        );
        ours_down(&c);
    });
    if have84 {
        clk.time("8.4: create-md, connect, initial sync", || {
            for n in c.nodes() {
                // drbdsetup-84 locks /var/lock/drbd-147-<minor>.
                n.run_ok("mkdir -p /var/lock");
                n.run_with(
                    &format!("{META84} --force 0 v08 /dev/vdc internal create-md"),
                    RunOpts {
                        stdin: Some(b"yes\nyes\n".to_vec()),
                        ..Default::default()
                    },
                );
            }
            d84_up(&c);
            initial_sync(
                &c,
                &mut res,
                "drbd84",
                &format!("{D84} primary 0 --force"),
                D84_SYNCED,
                "/dev/drbd0",
            );
        });
        clk.time("8.4: disconnected write burst, resync", || {
            wire_test(
                &c,
                &mut res,
                "drbd84",
                "/dev/drbd0",
                "! grep -qE 'cs:(Connected|Sync)' /proc/drbd",
                D84_SYNCED,
            );
            let log = a.run_ok("dmesg | grep -i 'resync done' | tail -n 1");
            if !log.trim().is_empty() {
                res.notes
                    .push(format!("8.4 node0 last resync: {}", log.trim()));
            }
            d84_down(&c);
        });
    }

    // The interleaved rounds.
    for round in 0..s.rounds {
        eprintln!("[bench] round {} of {}", round + 1, s.rounds);
        for &conf in &confs {
            match conf {
                Conf::Raw => {
                    clk.time("link: ping, TCP stream", || {
                        res.rtt_ms.push(ping_ms(a, &peer_ip, 56));
                        res.rtt4k_ms.push(ping_ms(a, &peer_ip, 4096));
                        res.link_mb_s.push(stream_mb_s(&c));
                        eprintln!(
                            "[bench] ping {:.3} ms, 4 KiB ping {:.3} ms, TCP stream {:.1} MB/s",
                            res.rtt_ms.last().unwrap(),
                            res.rtt4k_ms.last().unwrap(),
                            res.link_mb_s.last().unwrap()
                        );
                    });
                    clk.time("fio raw", || {
                        for j in JOBS {
                            let sm = fio(&c, a, &s, "/dev/vdb", j);
                            res.add(conf, j.key, sm);
                        }
                        res.remote_qd1.push(fio(&c, b, &s, "/dev/vdb", job(QD1)));
                    });
                }
                Conf::OursC | Conf::OursA => {
                    let proto = if conf == Conf::OursC { 'C' } else { 'A' };
                    let t = clk.time("ours: up, connect, primary", || {
                        if conf == Conf::OursA && confs.contains(&Conf::OursC) {
                            for n in c.nodes() {
                                n.run_ok("drbdsetup down r0");
                            }
                        }
                        ours_up(&c, proto);
                        ours_primary(&c, &mut res, conf.name())
                    });
                    res.single
                        .insert(format!("ours_{proto}_primary_to_uptodate_s_r{round}"), t);
                    clk.time(&format!("fio {}", conf.name()), || {
                        for j in JOBS {
                            let sm = fio(&c, a, &s, "/dev/drbd1", j);
                            res.add(conf, j.key, sm);
                        }
                    });
                    if conf == Conf::OursA || !confs.contains(&Conf::OursA) {
                        clk.time("ours: down, rmmod", || ours_down(&c));
                    }
                }
                Conf::Drbd84 => {
                    let t = clk.time("8.4: insmod, up, connect, primary", || {
                        d84_up(&c);
                        d84_primary(&c, &mut res, conf.name())
                    });
                    res.single
                        .insert(format!("drbd84_primary_to_uptodate_s_r{round}"), t);
                    clk.time("fio drbd84-C", || {
                        for j in JOBS {
                            let sm = fio(&c, a, &s, "/dev/drbd0", j);
                            res.add(conf, j.key, sm);
                        }
                    });
                    clk.time("8.4: down, rmmod", || d84_down(&c));
                }
            }
        }
    }

    allow_84_warning(&c, &mut res);
    report(&c, &s, &res, &confs, &clk);
}

/// Allows the known 8.4 worker warning of debug kernels and notes it in the report.
fn allow_84_warning(c: &Cluster, res: &mut Results) {
    let known = c.allow_drbd84_worker_warning();
    if known > 0 {
        res.notes.push(format!(
            "allowed {known} kernel WARNING(s) of the C DRBD 8.4 worker (might_sleep in \
             wait_for_work/maybe_send_barrier, debug kernel)"
        ));
    }
}

fn report(c: &Cluster, s: &Settings, res: &Results, confs: &[Conf], clk: &Clock) {
    let g = |conf: Conf, job: &str, f: &str| res.get(conf, job, f);
    let rtt_ms = median(res.rtt_ms.clone());
    let rtt4k_ms = median(res.rtt4k_ms.clone());
    let link = median(res.link_mb_s.clone());
    // Per-IO times at QD1 from IOPS (they include fio's own per-IO cost, the same for all).
    let raw_qd1 = g(Conf::Raw, QD1, "iops");
    let remote_qd1 = median(res.remote_qd1.iter().map(|x| x["iops"]).collect());
    let t_local = 1.0 / raw_qd1;
    let t_remote = 1.0 / remote_qd1;
    let t_limit = t_local.max(rtt_ms / 1e3 + t_remote);
    let limit_iops = 1.0 / t_limit;
    let raw_seq = g(Conf::Raw, SEQ, "mb_s");

    let mut t = String::new();
    let w = 14;
    let line = |t: &mut String, label: &str, vals: &[f64]| {
        t.push_str(&format!("{label:<34}"));
        for v in vals {
            t.push_str(&format!("{:>w$}", fmt(*v)));
        }
        t.push('\n');
    };
    t.push_str(&format!(
        "\n=== drbd-rs benchmark: {} round(s), {} s per job (+{} s ramp), medians; 2 guests, TCG, 1 vCPU, 512 MiB\n\n",
        s.rounds, s.runtime, s.ramp
    ));
    t.push_str(&format!("{:<34}", "job / metric"));
    for c in confs {
        t.push_str(&format!("{:>w$}", c.name()));
    }
    let ratio_cols: Vec<(&str, Conf, Conf)> = [
        ("C/raw", Conf::OursC, Conf::Raw),
        ("C/8.4", Conf::OursC, Conf::Drbd84),
        ("A/raw", Conf::OursA, Conf::Raw),
        ("A/8.4", Conf::OursA, Conf::Drbd84),
        ("8.4/raw", Conf::Drbd84, Conf::Raw),
    ]
    .into_iter()
    .filter(|(_, x, y)| confs.contains(x) && confs.contains(y))
    .collect();
    for (n, _, _) in &ratio_cols {
        t.push_str(&format!("{n:>9}"));
    }
    t.push('\n');
    let metrics: &[(&str, &str, &str)] = &[
        (QD1, "iops", "IOPS"),
        (QD1, "clat_p50_us", "  p50 clat us"),
        (QD1, "clat_p99_us", "  p99 clat us"),
        (QD1, "clat_p999_us", "  p99.9 clat us"),
        (QD1, "slat_mean_us", "  mean submission (slat) us"),
        (QD1, "clat_mean_us", "  mean completion (clat) us"),
        (FSYNC, "iops", "IOPS"),
        (FSYNC, "sync_p99_us", "  p99 fsync us"),
        (SEQ, "mb_s", "MB/s"),
        (SEQ, "cpu_node0_s_per_gib", "  CPU s/GiB node0"),
        (SEQ, "cpu_node1_s_per_gib", "  CPU s/GiB node1"),
        (QD32X4, "iops", "IOPS"),
        (READ, "iops", "IOPS"),
    ];
    let mut json_fio = vec![];
    for (jk, field, label) in metrics {
        if !label.starts_with(' ') {
            t.push_str(&format!("{}\n", job(jk).title));
        }
        let vals: Vec<f64> = confs.iter().map(|c| g(*c, jk, field)).collect();
        t.push_str(&format!("  {label:<32}"));
        for v in &vals {
            t.push_str(&format!("{:>w$}", fmt(*v)));
        }
        for (_, x, y) in &ratio_cols {
            t.push_str(&format!(
                "{:>9}",
                fmt(ratio(g(*x, jk, field), g(*y, jk, field)))
            ));
        }
        t.push('\n');
    }
    for j in JOBS {
        let mut per_conf = vec![];
        for conf in confs {
            let samples = res.fio.get(&(*conf, j.key)).cloned().unwrap_or_default();
            let fields: std::collections::BTreeSet<&str> =
                samples.iter().flat_map(|x| x.keys().copied()).collect();
            let med: Vec<(String, Json)> = fields
                .iter()
                .map(|f| (f.to_string(), jnum(g(*conf, j.key, f))))
                .collect();
            let all: Vec<Json> = samples
                .iter()
                .map(|x| jobj(x.iter().map(|(k, v)| (k.to_string(), jnum(*v))).collect()))
                .collect();
            per_conf.push((
                conf.name().to_string(),
                jobj(vec![
                    ("median".into(), jobj(med)),
                    ("samples".into(), Json::Arr(all)),
                ]),
            ));
        }
        json_fio.push((j.key.to_string(), jobj(per_conf)));
    }

    t.push_str("\nlink and limits\n");
    line(&mut t, "  ping RTT ms (56 B / 4 KiB)", &[rtt_ms, rtt4k_ms]);
    line(&mut t, "  TCP stream node0->node1 MB/s", &[link]);
    line(
        &mut t,
        "  4k QD1 write us local/remote",
        &[t_local * 1e6, t_remote * 1e6],
    );
    line(&mut t, "  physical limit 4k QD1 IOPS", &[limit_iops]);
    let c_qd1 = g(Conf::OursC, QD1, "iops");
    let a_qd1 = g(Conf::OursA, QD1, "iops");
    let d_qd1 = g(Conf::Drbd84, QD1, "iops");
    line(
        &mut t,
        "  QD1 vs limit: C / A(vs raw) / 8.4",
        &[
            ratio(c_qd1, limit_iops),
            ratio(a_qd1, raw_qd1),
            ratio(d_qd1, limit_iops),
        ],
    );
    let c_seq = g(Conf::OursC, SEQ, "mb_s");
    let d_seq = g(Conf::Drbd84, SEQ, "mb_s");
    let seq_limit = link.min(raw_seq);
    line(
        &mut t,
        "  1M seq vs link: C / 8.4",
        &[ratio(c_seq, link), ratio(d_seq, link)],
    );
    line(
        &mut t,
        "  1M seq vs min(link,raw): C / 8.4",
        &[ratio(c_seq, seq_limit), ratio(d_seq, seq_limit)],
    );
    // Latency breakdown at QD1 (per write, us).
    let c_lat = 1e6 / c_qd1;
    let d_lat = 1e6 / d_qd1;
    let net_path = (rtt_ms / 1e3 + t_remote) * 1e6;
    line(
        &mut t,
        "  QD1 us/write: C / 8.4 / RTT+remote",
        &[c_lat, d_lat, net_path],
    );
    line(
        &mut t,
        "  QD1 us above limit: C / 8.4",
        &[c_lat - t_limit * 1e6, d_lat - t_limit * 1e6],
    );
    let p50 = |c: Conf| g(c, QD1, "clat_p50_us");
    let remote_p50 = median(res.remote_qd1.iter().map(|x| x["clat_p50_us"]).collect());
    line(
        &mut t,
        "  QD1 p50 us: C/8.4/local/RTT+remote",
        &[
            p50(Conf::OursC),
            p50(Conf::Drbd84),
            p50(Conf::Raw),
            rtt_ms * 1e3 + remote_p50,
        ],
    );
    line(
        &mut t,
        "  QD1 mean us: C / 8.4 / raw",
        &[
            g(Conf::OursC, QD1, "lat_mean_us"),
            g(Conf::Drbd84, QD1, "lat_mean_us"),
            g(Conf::Raw, QD1, "lat_mean_us"),
        ],
    );

    t.push_str("\nresync and wire\n");
    let o_rs = res.single("ours_resync_mb_s");
    let d_rs = res.single("drbd84_resync_mb_s");
    line(&mut t, "  full sync MB/s: ours / 8.4", &[o_rs, d_rs]);
    line(
        &mut t,
        "  full sync vs link: ours / 8.4",
        &[ratio(o_rs, link), ratio(d_rs, link)],
    );
    for (label, key) in [
        (
            "  full sync wire B/B tx+rx: ours/8.4",
            "sync_wire_total_per_byte",
        ),
        (
            "    DRBD stream only: ours / 8.4",
            "sync_wire_payload_per_byte",
        ),
        (
            "  8 MiB burst wire B/B tx: ours/8.4",
            "burst_wire_tx_per_byte",
        ),
        ("    tx+rx: ours / 8.4", "burst_wire_total_per_byte"),
        (
            "    DRBD stream only: ours / 8.4",
            "burst_wire_payload_per_byte",
        ),
    ] {
        line(
            &mut t,
            label,
            &[
                res.single(&format!("ours_{key}")),
                res.single(&format!("drbd84_{key}")),
            ],
        );
    }
    line(
        &mut t,
        "    link up -> UpToDate s ours/8.4",
        &[
            res.single("ours_reconnect_resync_s"),
            res.single("drbd84_reconnect_resync_s"),
        ],
    );

    let targets = vec![
        Target {
            what: "4k QD1 proto C IOPS vs 8.4",
            value: ratio(c_qd1, d_qd1),
            goal: 1.2,
            at_most: false,
        },
        Target {
            what: "4k QD1 proto C IOPS vs physical limit",
            value: ratio(c_qd1, limit_iops),
            goal: 0.8,
            at_most: false,
        },
        Target {
            what: "1M seq write vs 8.4",
            value: ratio(c_seq, d_seq),
            goal: 1.2,
            at_most: false,
        },
        Target {
            what: "1M seq write vs link",
            value: ratio(c_seq, link),
            goal: 0.9,
            at_most: false,
        },
        Target {
            what: "4k QD32x4 IOPS vs 8.4",
            value: ratio(
                g(Conf::OursC, QD32X4, "iops"),
                g(Conf::Drbd84, QD32X4, "iops"),
            ),
            goal: 1.5,
            at_most: false,
        },
        Target {
            what: "4k randread IOPS vs raw",
            value: ratio(g(Conf::OursC, READ, "iops"), g(Conf::Raw, READ, "iops")),
            goal: 0.98,
            at_most: false,
        },
        Target {
            what: "resync vs link",
            value: ratio(o_rs, link),
            goal: 0.9,
            at_most: false,
        },
        Target {
            what: "wire bytes per dirtied byte (tx+rx)",
            value: res.single("ours_burst_wire_total_per_byte"),
            goal: 1.05,
            at_most: true,
        },
    ];
    t.push_str("\nissue 6 targets (ours, protocol C)\n");
    let mut jt = vec![];
    for x in &targets {
        let met = x.value.is_finite()
            && if x.at_most {
                x.value <= x.goal
            } else {
                x.value >= x.goal
            };
        let verdict = if !x.value.is_finite() {
            "n/a"
        } else if met {
            "met"
        } else {
            "NOT met"
        };
        t.push_str(&format!(
            "  {:<40}{:>10.4}   {} {:<5} {verdict}\n",
            x.what,
            x.value,
            if x.at_most { "<=" } else { ">=" },
            x.goal
        ));
        jt.push(jobj(vec![
            ("target".into(), Json::Str(x.what.into())),
            ("value".into(), jnum(x.value)),
            ("goal".into(), jnum(x.goal)),
            (
                "direction".into(),
                Json::Str(if x.at_most { "<=" } else { ">=" }.into()),
            ),
            ("met".into(), Json::Bool(met)),
        ]));
    }

    let total = clk.start.elapsed().as_secs_f64();
    t.push_str(&format!("\nwhere the time went ({total:.0} s in all)\n"));
    for (p, d) in &clk.phases {
        t.push_str(&format!("  {p:<44}{d:>7.0} s\n"));
    }
    for n in &res.notes {
        t.push_str(&format!("note: {n}\n"));
    }
    print!("{t}");

    let mut ratios = vec![];
    for j in JOBS {
        let f = if j.key == SEQ { "mb_s" } else { "iops" };
        let mut r = vec![];
        for (n, x, y) in &ratio_cols {
            r.push((n.to_string(), jnum(ratio(g(*x, j.key, f), g(*y, j.key, f)))));
        }
        ratios.push((j.key.to_string(), jobj(r)));
    }
    ratios.push((
        "randwrite_4k_qd1_vs_physical_limit".into(),
        jobj(vec![
            ("ours-C".into(), jnum(ratio(c_qd1, limit_iops))),
            ("drbd84-C".into(), jnum(ratio(d_qd1, limit_iops))),
            ("raw".into(), jnum(ratio(raw_qd1, limit_iops))),
        ]),
    ));
    ratios.push((
        "seqwrite_1m_vs_link".into(),
        jobj(vec![
            ("ours-C".into(), jnum(ratio(c_seq, link))),
            (
                "ours-A".into(),
                jnum(ratio(g(Conf::OursA, SEQ, "mb_s"), link)),
            ),
            ("drbd84-C".into(), jnum(ratio(d_seq, link))),
        ]),
    ));
    ratios.push((
        "resync_vs_link".into(),
        jobj(vec![
            ("ours".into(), jnum(ratio(o_rs, link))),
            ("drbd84".into(), jnum(ratio(d_rs, link))),
        ]),
    ));
    let json = jobj(vec![
        (
            "settings".into(),
            jobj(vec![
                ("rounds".into(), jnum(s.rounds as f64)),
                ("runtime_s".into(), jnum(s.runtime as f64)),
                ("ramp_s".into(), jnum(s.ramp as f64)),
                ("disk_mib".into(), jnum(s.disk_mib as f64)),
                ("fio_size_mib".into(), jnum(s.fio_mib as f64)),
                (
                    "configs".into(),
                    Json::Arr(confs.iter().map(|c| Json::Str(c.name().into())).collect()),
                ),
            ]),
        ),
        ("fio".into(), jobj(json_fio)),
        (
            "link".into(),
            jobj(vec![
                ("rtt_ms".into(), jnum(rtt_ms)),
                ("rtt_4k_ms".into(), jnum(rtt4k_ms)),
                ("tcp_stream_mb_s".into(), jnum(link)),
                (
                    "rtt_ms_samples".into(),
                    Json::Arr(res.rtt_ms.iter().map(|x| jnum(*x)).collect()),
                ),
                (
                    "tcp_stream_mb_s_samples".into(),
                    Json::Arr(res.link_mb_s.iter().map(|x| jnum(*x)).collect()),
                ),
                ("local_qd1_write_us".into(), jnum(t_local * 1e6)),
                ("remote_qd1_write_us".into(), jnum(t_remote * 1e6)),
                ("physical_limit_qd1_iops".into(), jnum(limit_iops)),
            ]),
        ),
        (
            "single".into(),
            jobj(
                res.single
                    .iter()
                    .map(|(k, v)| (k.clone(), jnum(*v)))
                    .collect(),
            ),
        ),
        ("ratios".into(), jobj(ratios)),
        ("targets".into(), Json::Arr(jt)),
        (
            "time_s".into(),
            jobj(
                clk.phases
                    .iter()
                    .map(|(p, d)| (p.clone(), jnum(*d)))
                    .chain(std::iter::once(("total".to_string(), jnum(total))))
                    .collect(),
            ),
        ),
        (
            "notes".into(),
            Json::Arr(res.notes.iter().map(|n| Json::Str(n.clone())).collect()),
        ),
    ]);
    if let Some(dir) = s.out.parent() {
        std::fs::create_dir_all(dir).expect("create the result dir");
    }
    std::fs::write(&s.out, format!("{json}\n")).expect("write result.json");
    println!(
        "\nresult: {}; guest logs: {}",
        s.out.display(),
        c.dir().display()
    );
}
