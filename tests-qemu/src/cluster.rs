//! The public harness API: a cluster of QEMU guests, its nodes, and background jobs.

use crate::agent::{AgentClient, AgentError, Ticket};
use crate::proto::{Reply, Request, Status};
use crate::qemu::{Disk, Nic, Qemu, QemuConfig};
use crate::qmp::{Json, Qmp};
use crate::{artifacts, initramfs, klog, log, scaled, sh_quote, Output};
use std::fs;
use std::io::Write;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What to boot.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// Output directory name under `target/qemu-tests/` (default: the test's name).
    pub name: Option<String>,
    /// 1 to 3 (or more) guests, `node0`, `node1`, ...
    pub nodes: usize,
    /// Test disks per node, in MiB: `/dev/vdb`, `/dev/vdc`, ... (raw sparse files). `/dev/vda` is
    /// always a small scratch disk, like a system disk, so the documentation's examples work as typed.
    pub disks_mib: Vec<u64>,
    pub mem_mb: u32,
    pub cpus: u32,
    pub boot_timeout: Duration,
    /// Kernel-log lines containing one of these are not failures.
    pub allowed_reports: Vec<String>,
    /// Extra kernel command line.
    pub append: String,
}

/// Size of the scratch disk `/dev/vda`.
pub const SCRATCH_DISK_MIB: u64 = 64;

impl ClusterSpec {
    pub fn new(nodes: usize) -> ClusterSpec {
        ClusterSpec {
            name: None,
            nodes,
            disks_mib: vec![256],
            mem_mb: 512,
            cpus: 1,
            boot_timeout: Duration::from_secs(180),
            allowed_reports: vec![],
            append: String::new(),
        }
    }
    pub fn disks(mut self, mib: &[u64]) -> Self {
        self.disks_mib = mib.to_vec();
        self
    }
    pub fn mem(mut self, mb: u32) -> Self {
        self.mem_mb = mb;
        self
    }
    pub fn cpus(mut self, n: u32) -> Self {
        self.cpus = n;
        self
    }
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
    pub fn allow_kernel_report(mut self, pattern: &str) -> Self {
        self.allowed_reports.push(pattern.to_string());
        self
    }
    pub fn append(mut self, kernel_args: &str) -> Self {
        self.append = kernel_args.to_string();
        self
    }
}

/// Limits how many clusters run at once in one test process (`DRBD_RS_QEMU_PARALLEL`, default 1).
struct Slot;

static SLOTS: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

impl Slot {
    fn acquire() -> Slot {
        let max: usize = std::env::var("DRBD_RS_QEMU_PARALLEL")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|v| *v > 0)
            .unwrap_or(1);
        let mut n = SLOTS.0.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= max {
            n = SLOTS.1.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *SLOTS.0.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        SLOTS.1.notify_one();
    }
}

/// A set of booted guests with point-to-point links between every pair. Dropping it shuts the
/// guests down and then fails the test if a kernel log shows a report (BUG, WARNING, lockdep, ...).
pub struct Cluster {
    nodes: Vec<Node>,
    dir: PathBuf,
    /// Held while the cluster runs: another process running the same test picks another dir.
    _dir_lock: fs::File,
    sock_dir: PathBuf,
    allowed: Mutex<Vec<String>>,
    _slot: Slot,
}

/// Index of the link between `a` and `b` in pair order (0,1), (0,2), ..., (1,2), ...
fn pair_index(n: usize, a: usize, b: usize) -> usize {
    let (i, j) = if a < b { (a, b) } else { (b, a) };
    assert!(i != j && j < n, "no link between node{a} and node{b}");
    (0..i).map(|k| n - 1 - k).sum::<usize>() + (j - i - 1)
}

/// IPv4 address of `node` on its link to `peer`: subnet `10.0.<pair index>.0/24`, host part
/// `node + 1`. For two nodes: node0 = 10.0.0.1, node1 = 10.0.0.2.
pub fn link_addr(n: usize, node: usize, peer: usize) -> String {
    format!("10.0.{}.{}", pair_index(n, node, peer), node + 1)
}

fn test_name() -> String {
    let t = std::thread::current();
    let raw = t.name().unwrap_or("cluster").to_string();
    let raw = if raw == "main" {
        "cluster".to_string()
    } else {
        raw
    };
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn free_udp_ports(n: usize) -> Vec<u16> {
    // Hold all sockets until every port is chosen so they differ; QEMU binds them right after.
    let socks: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port"))
        .collect();
    socks
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect()
}

/// `root/name` (or `root/name-2`, ... if another process is using it), emptied and locked.
fn claim_dir(root: &Path, name: &str) -> (PathBuf, fs::File) {
    for k in 1.. {
        let dir = if k == 1 {
            root.join(name)
        } else {
            root.join(format!("{name}-{k}"))
        };
        fs::create_dir_all(&dir).expect("create test output dir");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(".lock"))
            .expect("create lock file");
        if lock.try_lock().is_err() {
            continue;
        }
        for e in fs::read_dir(&dir).expect("read test output dir").flatten() {
            if e.file_name() != ".lock" {
                let p = e.path();
                let _ = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
            }
        }
        return (dir, lock);
    }
    unreachable!()
}

static CLUSTER_SEQ: AtomicUsize = AtomicUsize::new(0);

impl Cluster {
    /// Boots the guests and waits until every agent answers. Panics (with console logs) on failure.
    pub fn start(spec: ClusterSpec) -> Cluster {
        assert!(spec.nodes >= 1, "a cluster needs a node");
        artifacts::require_kernel();
        let slot = Slot::acquire();
        let name = spec.name.clone().unwrap_or_else(test_name);
        let (dir, dir_lock) = claim_dir(&artifacts::output_root(), &name);
        let sock_dir = std::env::temp_dir().join(format!(
            "drbd-rs-qemu-{}-{}",
            std::process::id(),
            CLUSTER_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&sock_dir);
        fs::create_dir_all(&sock_dir).expect("create socket dir");

        let root = initramfs::build_cached();
        let kernel = artifacts::bzimage();
        let kvm = std::env::var("DRBD_RS_KVM").is_ok_and(|v| v == "1");
        let n = spec.nodes;
        // ports[node][peer]: the UDP port node binds for its link to peer.
        let flat = free_udp_ports(n * n);
        let port = |node: usize, peer: usize| flat[node * n + peer];
        let tsc = artifacts::host_tsc_khz()
            .map(|k| format!(" tsc_early_khz={k} tsc=reliable"))
            .unwrap_or_default();

        let mut nodes = vec![];
        for i in 0..n {
            let hostname = format!("node{i}");
            let mut disks = vec![];
            for (d, mib) in std::iter::once(SCRATCH_DISK_MIB)
                .chain(spec.disks_mib.iter().copied())
                .enumerate()
            {
                let letter = (b'a' + d as u8) as char;
                let path = dir.join(format!("{hostname}-vd{letter}.img"));
                let f = fs::File::create(&path).expect("create disk image");
                f.set_len(mib << 20).expect("size disk image");
                disks.push(Disk {
                    path,
                    serial: format!("{hostname}-vd{letter}"),
                    readonly: false,
                });
            }
            // Last, so the test disks keep their names.
            if let Some(h) = &root.hostfs {
                disks.push(Disk {
                    path: h.clone(),
                    serial: initramfs::HOSTFS_SERIAL.into(),
                    readonly: true,
                });
            }
            let mut nics = vec![];
            let mut net_args = String::new();
            let mut peers = vec![];
            for p in (0..n).filter(|&p| p != i) {
                let mac = format!("52:54:00:0d:{i:02x}:{p:02x}");
                let id = format!("link{p}");
                net_args.push_str(&format!(" drbdrs.net={mac}@{}/24", link_addr(n, i, p)));
                nics.push(Nic {
                    id: id.clone(),
                    mac,
                    local_port: port(i, p),
                    remote_port: port(p, i),
                });
                peers.push((p, id));
            }
            let append = format!(
                "console=ttyS0 panic=-1{tsc} drbdrs.host={hostname}{net_args} {}",
                spec.append
            )
            .trim()
            .to_string();
            let cfg = QemuConfig {
                name: hostname.clone(),
                kernel: kernel.clone(),
                initrd: root.initramfs.clone(),
                append,
                mem_mb: spec.mem_mb,
                cpus: spec.cpus,
                disks,
                nics,
                qmp_socket: sock_dir.join(format!("{hostname}.qmp")),
                agent_socket: sock_dir.join(format!("{hostname}.agent")),
                console_log: dir.join(format!("{hostname}.console.log")),
                qemu_log: dir.join(format!("{hostname}.qemu.log")),
                kvm,
                extra_args: vec![],
            };
            nodes.push(Node {
                index: i,
                name: hostname,
                cfg,
                peers,
                n_disks: spec.disks_mib.len(),
                boot_timeout: scaled(spec.boot_timeout),
                state: Mutex::new(NodeState::default()),
            });
        }
        let cluster = Cluster {
            nodes,
            dir,
            _dir_lock: dir_lock,
            sock_dir,
            allowed: Mutex::new(spec.allowed_reports.clone()),
            _slot: slot,
        };
        let t0 = Instant::now();
        let errors: Vec<String> = std::thread::scope(|s| {
            let hs: Vec<_> = cluster
                .nodes
                .iter()
                .map(|node| s.spawn(move || node.boot()))
                .collect();
            hs.into_iter()
                .filter_map(|h| h.join().unwrap().err())
                .collect()
        });
        if !errors.is_empty() {
            panic!("cluster start failed:\n{}", errors.join("\n\n"));
        }
        log(format!(
            "{n} guest(s) up in {:.1}s ({})",
            t0.elapsed().as_secs_f64(),
            cluster.dir.display()
        ));
        cluster
    }

    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// IPv4 address (no prefix) of `node` on its link to `peer`; the link's subnet is a /24.
    pub fn addr(&self, node: usize, peer: usize) -> String {
        link_addr(self.nodes.len(), node, peer)
    }

    /// Cuts (`up == false`) or restores the link between `a` and `b` on both ends.
    pub fn set_link(&self, a: usize, b: usize, up: bool) {
        self.nodes[a].set_link(b, up);
        self.nodes[b].set_link(a, up);
    }

    /// The test's output directory (logs, disk images).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// From now on, kernel-log lines containing `pattern` do not fail the test.
    pub fn allow_kernel_report(&self, pattern: &str) {
        self.allowed.lock().unwrap().push(pattern.to_string());
    }

    /// The in-tree 8.4 worker takes a mutex while preparing to wait (`wait_for_work` ->
    /// `maybe_send_barrier`); debug kernels warn once per boot. Allows `__might_sleep` reports
    /// only when every such warning on the consoles comes from that 8.4 path; returns how many
    /// were allowed (0 when none, or when any other `__might_sleep` warning exists).
    pub fn allow_drbd84_worker_warning(&self) -> usize {
        let (mut known, mut other) = (0, 0);
        for n in &self.nodes {
            let log = n.kernel_log_all();
            let lines: Vec<&str> = log.lines().collect();
            for (i, l) in lines.iter().enumerate() {
                if l.contains("WARNING:") && l.contains("__might_sleep") {
                    let ctx = lines[i..(i + 40).min(lines.len())].join("\n");
                    if ctx.contains("maybe_send_barrier") && ctx.contains("wait_for_work") {
                        known += 1;
                    } else {
                        other += 1;
                    }
                }
            }
        }
        if known > 0 && other == 0 {
            self.allow_kernel_report("__might_sleep");
            known
        } else {
            0
        }
    }

    /// Kernel reports found so far in every node's log (all boots), as (node, report).
    pub fn kernel_reports(&self) -> Vec<(String, klog::Report)> {
        let allowed = self.allowed.lock().unwrap().clone();
        let mut v = vec![];
        for n in &self.nodes {
            for r in klog::find_reports(&n.kernel_log_all(), &allowed) {
                v.push((n.name.clone(), r));
            }
        }
        v
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // kmemleak (debug kernels) before power-off, then a clean shutdown of every guest.
        let leaks: Vec<(String, klog::Report)> = std::thread::scope(|s| {
            let hs: Vec<_> = self
                .nodes
                .iter()
                .map(|n| {
                    s.spawn(move || {
                        n.shutdown_after(|| {
                            n.kmemleak_scan()
                                .filter(|r| r.contains("unreferenced object"))
                                .map(|r| {
                                    (
                                        n.name.clone(),
                                        klog::Report {
                                            line_no: 0,
                                            line: "kmemleak: suspected memory leaks".into(),
                                            excerpt: r,
                                        },
                                    )
                                })
                        })
                    })
                })
                .collect();
            hs.into_iter()
                .filter_map(|h| h.join().ok().flatten())
                .collect()
        });
        let _ = fs::remove_dir_all(&self.sock_dir);
        let mut reports = self.kernel_reports();
        reports.extend(leaks);
        let failing = std::thread::panicking() || !reports.is_empty();
        if !failing && std::env::var_os("DRBD_RS_KEEP").is_none() {
            for n in &self.nodes {
                for d in n.cfg.disks.iter().filter(|d| !d.readonly) {
                    let _ = fs::remove_file(&d.path);
                }
            }
        }
        if reports.is_empty() {
            if std::thread::panicking() {
                eprintln!("guest logs: {}", self.dir.display());
            }
            return;
        }
        let mut msg = format!(
            "kernel reported problems (logs in {}):\n",
            self.dir.display()
        );
        for (node, r) in &reports {
            msg.push_str(&format!(
                "\n=== {node}, console line {}: {}\n{}\n",
                r.line_no, r.line, r.excerpt
            ));
        }
        if std::thread::panicking() {
            eprintln!("{msg}");
        } else {
            panic!("{msg}");
        }
    }
}

#[derive(Default)]
struct NodeState {
    qemu: Option<Qemu>,
    agent: Option<Arc<AgentClient>>,
    qmp: Option<Qmp>,
    boots: u32,
    /// Console log offset where the current boot starts.
    log_offset: u64,
}

/// One guest. All methods take `&self` and may be used from several threads at once.
pub struct Node {
    pub index: usize,
    pub name: String,
    cfg: QemuConfig,
    /// (peer index, netdev id)
    peers: Vec<(usize, String)>,
    n_disks: usize,
    boot_timeout: Duration,
    state: Mutex<NodeState>,
}

/// Options for [`Node::run_with`].
#[derive(Clone, Debug, Default)]
pub struct RunOpts {
    pub stdin: Option<Vec<u8>>,
    /// Default 120 s (scaled by `DRBD_RS_TIMEOUT_SCALE`); the command is killed after it.
    pub timeout: Option<Duration>,
    /// Run as this uid/gid instead of root.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn tail(text: &str, lines: usize) -> String {
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

impl Node {
    fn lock(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn boot(&self) -> Result<(), String> {
        let mut st = self.lock();
        st.boots += 1;
        {
            let mut f = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.cfg.console_log)
                .map_err(|e| e.to_string())?;
            let _ = writeln!(
                f,
                "=== drbd-rs harness: boot {} of {} ===",
                st.boots, self.name
            );
            st.log_offset = f.metadata().map(|m| m.len()).unwrap_or(0);
        }
        let t0 = Instant::now();
        let qemu =
            Qemu::start(&self.cfg).map_err(|e| format!("{}: cannot start QEMU: {e}", self.name))?;
        st.qemu = Some(qemu);
        let qmp = Qmp::connect(&self.cfg.qmp_socket, scaled(Duration::from_secs(30)))
            .map_err(|e| format!("{}: {e}\n{}", self.name, self.context_locked(&mut st)))?;
        st.qmp = Some(qmp);
        let agent = AgentClient::connect(&self.cfg.agent_socket, scaled(Duration::from_secs(30)))
            .map_err(|e| {
            format!(
                "{}: agent socket: {e}\n{}",
                self.name,
                self.context_locked(&mut st)
            )
        })?;
        let ready = {
            let q = st.qemu.as_mut().unwrap();
            agent.wait_ready(self.boot_timeout, || match q.try_exit() {
                Some(s) => Err(format!("QEMU exited ({s}) during boot")),
                None => Ok(()),
            })
        };
        match ready {
            Ok(host) if host == self.name => {}
            Ok(host) => {
                return Err(format!(
                    "{}: guest reports hostname {host:?}\n{}",
                    self.name,
                    self.context_locked(&mut st)
                ))
            }
            Err(e) => {
                let ctx = self.context_locked(&mut st);
                if let Some(q) = st.qemu.as_mut() {
                    q.kill();
                }
                return Err(format!("{}: boot failed: {e}\n{ctx}", self.name));
            }
        }
        st.agent = Some(Arc::new(agent));
        log(format!(
            "{} booted in {:.1}s (boot {})",
            self.name,
            t0.elapsed().as_secs_f64(),
            st.boots
        ));
        Ok(())
    }

    fn context_locked(&self, st: &mut NodeState) -> String {
        let console = fs::read(&self.cfg.console_log).unwrap_or_default();
        let console =
            String::from_utf8_lossy(&console[(st.log_offset as usize).min(console.len())..])
                .into_owned();
        let qlog = fs::read_to_string(&self.cfg.qemu_log).unwrap_or_default();
        let running = match st.qemu.as_mut().map(|q| q.try_exit()) {
            None => "not started".to_string(),
            Some(None) => "running".to_string(),
            Some(Some(s)) => format!("exited: {s}"),
        };
        format!(
            "--- {} QEMU {running}; console (last 40 lines) ---\n{}\n--- QEMU log (last 10 lines) ---\n{}",
            self.name,
            tail(&console, 40),
            tail(&qlog, 10)
        )
    }

    /// Console tail and QEMU state, for failure messages.
    pub fn context(&self) -> String {
        let mut st = self.lock();
        self.context_locked(&mut st)
    }

    fn agent(&self) -> Result<Arc<AgentClient>, String> {
        self.lock()
            .agent
            .clone()
            .ok_or_else(|| format!("{} is not running", self.name))
    }

    /// Guest device name of test disk `i` (0 -> `/dev/vdb`).
    pub fn disk(&self, i: usize) -> String {
        assert!(
            i < self.n_disks,
            "{} has {} test disk(s)",
            self.name,
            self.n_disks
        );
        format!("/dev/vd{}", (b'b' + i as u8) as char)
    }

    /// Host path of the image behind test disk `i`.
    pub fn disk_image(&self, i: usize) -> PathBuf {
        self.cfg.disks[i + 1].path.clone()
    }

    /// Runs a command; `Err` only when the harness could not get an answer (guest dead, hung).
    pub fn try_run_with(&self, cmd: &str, opts: RunOpts) -> Result<Output, String> {
        let agent = self.agent()?;
        let timeout = opts.timeout.unwrap_or_else(|| scaled(DEFAULT_RUN_TIMEOUT));
        let id = agent.next_id();
        let t = agent
            .send(Request::Run {
                id,
                timeout_ms: timeout.as_millis() as u64,
                uid: opts.uid.unwrap_or(u32::MAX),
                gid: opts.gid.or(opts.uid).unwrap_or(u32::MAX),
                cmd: cmd.as_bytes().to_vec(),
                stdin: opts.stdin,
            })
            .map_err(|e| format!("{}: {cmd}: {e}", self.name))?;
        let t0 = Instant::now();
        match t.wait(Some(timeout + scaled(Duration::from_secs(30)))) {
            Ok(Reply::Done {
                status,
                stdout,
                stderr,
                ..
            }) => {
                if std::env::var_os("DRBD_RS_TRACE").is_some() {
                    log(format!(
                        "{}: {:?} -> {status:?} in {:.2}s",
                        self.name,
                        cmd,
                        t0.elapsed().as_secs_f64()
                    ));
                }
                Ok(Output::new(cmd, status, stdout, stderr))
            }
            Ok(r) => Err(format!("{}: {cmd}: unexpected reply {r:?}", self.name)),
            Err(e) => {
                agent.forget(id);
                Err(format!("{}: {cmd}: {e}\n{}", self.name, self.context()))
            }
        }
    }

    /// Runs a command with options; panics if the guest does not answer.
    pub fn run_with(&self, cmd: &str, opts: RunOpts) -> Output {
        self.try_run_with(cmd, opts)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `/bin/sh -c cmd` as root (default timeout 120 s).
    pub fn run(&self, cmd: &str) -> Output {
        self.run_with(cmd, RunOpts::default())
    }

    /// Like [`run`](Self::run) with a timeout.
    pub fn run_timeout(&self, cmd: &str, timeout: Duration) -> Output {
        self.run_with(
            cmd,
            RunOpts {
                timeout: Some(timeout),
                ..Default::default()
            },
        )
    }

    /// Runs as an unprivileged user (uid = gid = `uid`, no supplementary groups).
    pub fn run_as(&self, uid: u32, cmd: &str) -> Output {
        self.run_with(
            cmd,
            RunOpts {
                uid: Some(uid),
                ..Default::default()
            },
        )
    }

    /// Runs a command that must succeed; returns its stdout. Panics with everything otherwise.
    pub fn run_ok(&self, cmd: &str) -> String {
        let o = self.run(cmd);
        if !o.success() {
            panic!("{}: command failed\n{o}", self.name);
        }
        o.stdout
    }

    /// Reruns `cmd` until it succeeds or `timeout` passes; returns the last output.
    pub fn wait_until(&self, cmd: &str, timeout: Duration) -> Output {
        let deadline = Instant::now() + scaled(timeout);
        loop {
            let o = self.run(cmd);
            if o.success() || Instant::now() > deadline {
                return o;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Starts a background job (no timeout); see [`Job`].
    pub fn spawn(&self, cmd: &str) -> Job {
        let agent = self.agent().unwrap_or_else(|e| panic!("{e}"));
        let id = agent.next_id();
        let ticket = agent
            .send(Request::Run {
                id,
                timeout_ms: 0,
                uid: u32::MAX,
                gid: u32::MAX,
                cmd: cmd.as_bytes().to_vec(),
                stdin: None,
            })
            .unwrap_or_else(|e| panic!("{}: spawn {cmd}: {e}", self.name));
        Job {
            node: self.name.clone(),
            cmd: cmd.to_string(),
            agent,
            ticket,
            result: None,
        }
    }

    /// Writes a file in the guest (binary safe).
    pub fn write_file(&self, path: &str, data: &[u8]) {
        let cmd = format!("cat > {}", sh_quote(path));
        let o = self.run_with(
            &cmd,
            RunOpts {
                stdin: Some(data.to_vec()),
                ..Default::default()
            },
        );
        assert!(o.success(), "{}: write_file {path}\n{o}", self.name);
    }

    /// Reads a file from the guest (binary safe).
    pub fn read_file(&self, path: &str) -> Vec<u8> {
        let o = self.run(&format!("cat {}", sh_quote(path)));
        assert!(o.success(), "{}: read_file {path}\n{o}", self.name);
        o.stdout_bytes
    }

    /// Sends a raw QMP request (`{"execute": ...}`); returns its `return` value.
    pub fn qmp(&self, request: &str) -> Result<Json, String> {
        let mut st = self.lock();
        match st.qmp.as_mut() {
            Some(q) => q.request(request),
            None => Err(format!("{} is not running", self.name)),
        }
    }

    /// `execute` with optional arguments; panics on a QMP error.
    pub fn qmp_execute(&self, cmd: &str, args: Option<Json>) -> Json {
        let mut st = self.lock();
        let q = st
            .qmp
            .as_mut()
            .unwrap_or_else(|| panic!("{} is not running", self.name));
        q.execute(cmd, args)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// Link to `peer` up or down (QMP `set_link` on this node's end: the guest sees carrier loss and
    /// nothing passes in either direction).
    pub fn set_link(&self, peer: usize, up: bool) {
        let id = self
            .peers
            .iter()
            .find(|(p, _)| *p == peer)
            .unwrap_or_else(|| panic!("{} has no link to node{peer}", self.name))
            .1
            .clone();
        self.qmp_execute(
            "set_link",
            Some(Json::Obj(vec![
                ("name".into(), Json::Str(id)),
                ("up".into(), Json::Bool(up)),
            ])),
        );
    }

    /// The guest's network interface on the link to `peer` (found by its MAC address).
    pub fn iface(&self, peer: usize) -> String {
        assert!(
            self.peers.iter().any(|(p, _)| *p == peer),
            "{} has no link to node{peer}",
            self.name
        );
        let mac = format!("52:54:00:0d:{:02x}:{peer:02x}", self.index);
        let out = self.run_ok(&format!(
            "for d in /sys/class/net/*; do [ \"$(cat $d/address)\" = {mac} ] && echo ${{d##*/}}; done; true"
        ));
        let ifc = out.trim().to_string();
        assert!(
            !ifc.is_empty(),
            "{}: no interface with MAC {mac}",
            self.name
        );
        ifc
    }

    /// `tc qdisc replace ... netem <args>` on the link to `peer` (outgoing direction only), e.g.
    /// `"delay 5ms"`, `"loss 10%"`; `None` removes it.
    pub fn netem(&self, peer: usize, args: Option<&str>) {
        let ifc = self.iface(peer);
        match args {
            Some(a) => self.run_ok(&format!(
                "/usr/sbin/tc qdisc replace dev {ifc} root netem {a}"
            )),
            None => self.run_ok(&format!(
                "/usr/sbin/tc qdisc del dev {ifc} root 2>/dev/null; true"
            )),
        };
    }

    /// Freezes the guest (QMP `stop`): a zombie that wakes up later with [`resume`](Self::resume).
    pub fn pause(&self) {
        self.qmp_execute("stop", None);
    }

    pub fn resume(&self) {
        self.qmp_execute("cont", None);
    }

    /// Power cut: SIGKILL to QEMU. The disks keep what reached them.
    pub fn hard_kill(&self) {
        let mut st = self.lock();
        st.agent = None;
        st.qmp = None;
        if let Some(mut q) = st.qemu.take() {
            q.kill();
        }
        log(format!("{} hard-killed", self.name));
    }

    pub fn is_running(&self) -> bool {
        let mut st = self.lock();
        matches!(st.qemu.as_mut().map(|q| q.try_exit()), Some(None))
    }

    /// A paused guest cannot run anything: let it continue.
    fn resume_if_paused(&self) {
        let mut st = self.lock();
        if let Some(q) = st.qmp.as_mut() {
            let paused = q
                .execute("query-status", None)
                .ok()
                .and_then(|r| r.get("running").and_then(Json::as_bool))
                == Some(false);
            if paused {
                let _ = q.execute("cont", None);
            }
        }
    }

    /// Runs `before` while the guest is still up (if it is), then shuts it down.
    fn shutdown_after<T>(&self, before: impl FnOnce() -> Option<T>) -> Option<T> {
        self.resume_if_paused();
        let r = if self.lock().agent.as_ref().is_some_and(|a| !a.is_closed()) {
            before()
        } else {
            None
        };
        self.shutdown();
        r
    }

    /// On kernels with kmemleak: scan now and return the report (`None` without kmemleak or when
    /// the guest does not answer).
    pub fn kmemleak_scan(&self) -> Option<String> {
        let o = self
            .try_run_with(
                "k=/sys/kernel/debug/kmemleak; [ -w $k ] || exit 3; echo scan > $k; echo scan > $k; cat $k",
                RunOpts {
                    timeout: Some(scaled(Duration::from_secs(60))),
                    ..Default::default()
                },
            )
            .ok()?;
        o.success().then_some(o.stdout)
    }

    /// Clean stop: `reboot -f` in the guest (QEMU exits thanks to `-no-reboot`), killed if it hangs.
    pub fn shutdown(&self) {
        self.resume_if_paused();
        let agent = self.lock().agent.take();
        if let Some(a) = agent {
            let id = a.next_id();
            let _ = a.send(Request::Run {
                id,
                timeout_ms: 0,
                uid: u32::MAX,
                gid: u32::MAX,
                cmd: b"sync; reboot -f".to_vec(),
                stdin: None,
            });
        }
        let mut st = self.lock();
        st.qmp = None;
        if let Some(mut q) = st.qemu.take() {
            if q.wait_exit(scaled(Duration::from_secs(30))).is_none() {
                log(format!("{} did not power off, killing QEMU", self.name));
                q.kill();
            }
        }
    }

    /// Boots the guest again with the same disks (shutting it down cleanly first if it runs).
    pub fn restart(&self) {
        self.shutdown();
        self.boot().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts a guest that was shut down or killed.
    pub fn start(&self) {
        assert!(!self.is_running(), "{} is running", self.name);
        self.boot().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Kernel console output of the current boot (host-side capture; survives a panic).
    pub fn kernel_log(&self) -> String {
        let off = self.lock().log_offset as usize;
        let b = fs::read(&self.cfg.console_log).unwrap_or_default();
        String::from_utf8_lossy(&b[off.min(b.len())..]).into_owned()
    }

    /// Console output of all boots.
    pub fn kernel_log_all(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.cfg.console_log).unwrap_or_default()).into_owned()
    }

    /// Wraps `dev` in a device-mapper linear device `/dev/mapper/<name>` (for [`dm_fail`](Self::dm_fail)).
    pub fn dm_wrap(&self, dev: &str, name: &str) -> String {
        self.run_ok(&format!(
            "export DM_DISABLE_UDEV=1; sz=$(blockdev --getsz {d}) && echo \"0 $sz linear {d} 0\" > /run/dm-{n}.table && \
             dmsetup create {n} --noudevsync < /run/dm-{n}.table && echo \"0 $sz error\" > /run/dm-{n}.error",
            d = sh_quote(dev),
            n = sh_quote(name)
        ));
        format!("/dev/mapper/{name}")
    }

    /// Swaps a [`dm_wrap`](Self::dm_wrap)ped device to the `error` target (every I/O fails with EIO)
    /// or back to the original disk, live.
    pub fn dm_fail(&self, name: &str, fail: bool) {
        let table = if fail { "error" } else { "table" };
        self.run_ok(&format!(
            "export DM_DISABLE_UDEV=1; dmsetup load {n} --noudevsync < /run/dm-{n}.{table} && \
             dmsetup suspend --noudevsync {n} && dmsetup resume --noudevsync {n}",
            n = sh_quote(name)
        ));
    }
}

/// A background command in a guest (e.g. `drbdsetup events2`, a writer to be killed).
/// Dropping an unfinished job kills it.
pub struct Job {
    node: String,
    cmd: String,
    agent: Arc<AgentClient>,
    ticket: Ticket,
    result: Option<Output>,
}

impl Job {
    fn done(&mut self, r: Result<Reply, AgentError>) -> Result<Output, String> {
        match r {
            Ok(Reply::Done {
                status,
                stdout,
                stderr,
                ..
            }) => {
                let o = Output::new(&self.cmd, status, stdout, stderr);
                self.result = Some(o.clone());
                Ok(o)
            }
            Ok(other) => Err(format!("unexpected reply {other:?}")),
            Err(e) => Err(format!("{}: job {:?}: {e}", self.node, self.cmd)),
        }
    }

    /// The result if the job has finished.
    pub fn try_wait(&mut self) -> Option<Output> {
        if self.result.is_none() {
            let r = self.ticket.try_get()?;
            return Some(self.done(r).unwrap_or_else(|e| panic!("{e}")));
        }
        self.result.clone()
    }

    /// Waits for the job to end; panics after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Output {
        if let Some(o) = &self.result {
            return o.clone();
        }
        let r = self.ticket.wait(Some(scaled(timeout)));
        if let Err(AgentError::Timeout) = r {
            let (out, err) = self.output();
            panic!(
                "{}: job {:?} still running after {timeout:?}\n--- stdout so far ---\n{out}\n--- stderr so far ---\n{err}",
                self.node, self.cmd
            );
        }
        self.done(r).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sends a signal to the job's process group.
    pub fn signal(&self, sig: u32) {
        let id = self.agent.next_id();
        if let Ok(t) = self.agent.send(Request::Kill {
            id,
            job: self.ticket.id,
            signal: sig,
        }) {
            let _ = t.wait(Some(scaled(Duration::from_secs(30))));
        }
    }

    /// SIGKILL to the process group, then its final output.
    pub fn kill(&mut self) -> Output {
        if let Some(o) = &self.result {
            return o.clone();
        }
        self.signal(9);
        self.wait(Duration::from_secs(60))
    }

    /// Stdout and stderr produced so far (the job keeps running).
    pub fn output(&self) -> (String, String) {
        if let Some(o) = &self.result {
            return (o.stdout.clone(), o.stderr.clone());
        }
        let id = self.agent.next_id();
        let r = self
            .agent
            .send(Request::Peek {
                id,
                job: self.ticket.id,
            })
            .and_then(|t| t.wait(Some(scaled(Duration::from_secs(30)))));
        match r {
            Ok(Reply::Output { stdout, stderr, .. }) => (
                String::from_utf8_lossy(&stdout).into_owned(),
                String::from_utf8_lossy(&stderr).into_owned(),
            ),
            _ => (String::new(), String::new()),
        }
    }

    /// Polls the job's stdout until `pred` holds (or the job ends); returns that stdout.
    /// Panics with the output after `timeout`.
    pub fn wait_for_stdout(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + scaled(timeout);
        loop {
            let finished = self.try_wait();
            let (out, err) = match &finished {
                Some(o) => (o.stdout.clone(), o.stderr.clone()),
                None => self.output(),
            };
            if pred(&out) {
                return out;
            }
            if finished.is_some() || Instant::now() > deadline {
                panic!(
                    "{}: job {:?}: expected output did not appear ({})\n--- stdout ---\n{out}\n--- stderr ---\n{err}",
                    self.node,
                    self.cmd,
                    if finished.is_some() { "job ended" } else { "timeout" }
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Convenience: wait until stdout contains `needle`.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_for_stdout(timeout, |s| s.contains(needle))
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if self.result.is_none() && !self.agent.is_closed() {
            let id = self.agent.next_id();
            let _ = self.agent.send(Request::Kill {
                id,
                job: self.ticket.id,
                signal: 9,
            });
            self.agent.forget(id);
        }
    }
}

impl Status {
    /// True for a normal exit with `code`.
    pub fn is_exit(&self, code: i32) -> bool {
        *self == Status::Exited(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(link_addr(2, 0, 1), "10.0.0.1");
        assert_eq!(link_addr(2, 1, 0), "10.0.0.2");
        assert_eq!(link_addr(3, 0, 1), "10.0.0.1");
        assert_eq!(link_addr(3, 0, 2), "10.0.1.1");
        assert_eq!(link_addr(3, 2, 0), "10.0.1.3");
        assert_eq!(link_addr(3, 1, 2), "10.0.2.2");
        assert_eq!(link_addr(3, 2, 1), "10.0.2.3");
        // Every pair of 4 nodes gets its own subnet.
        let mut seen = std::collections::BTreeSet::new();
        for a in 0..4 {
            for b in a + 1..4 {
                assert!(seen.insert(pair_index(4, a, b)));
            }
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn ports_are_distinct() {
        let p = free_udp_ports(9);
        let s: std::collections::BTreeSet<_> = p.iter().collect();
        assert_eq!(s.len(), 9);
    }
}
