//! The guest root: an uncompressed initramfs (newc cpio) generated here, without root rights,
//! plus a read-only ext4 disk with the host programs.
//!
//! Contents: busybox with its applet links, `/init`, the agent, our static tools (`drbdsetup`,
//! `drbdmeta`, `drbd-nlraw`, whichever exist), host programs with the libraries `ldd` lists (fio,
//! e2fsprogs, dmsetup, blkid, tc, Debian's drbd-utils; on the host disk, mounted on `/host`, with
//! symlinks at their usual paths), our `drbd.ko` as
//! `/lib/modules/<release>/extra/drbd.ko` with `depmod` data (so `modprobe drbd` loads ours), and
//! the in-tree C DRBD 8.4 module under `/lib/modules/drbd84/` for `insmod` by benchmarks.
//!
//! The archive is cached under `target/qemu-tests/.cache/initramfs-<key>.cpio`, where the key hashes
//! the whole listing (paths, modes, and each source file's size and mtime), so it is rebuilt exactly
//! when an input changes. It is not compressed: unpacking a plain cpio is much cheaper for a TCG guest
//! than inflating gzip, and QEMU hands it to the guest as memory anyway.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::artifacts;

/// Where a file's content comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Read from this host path when the archive is written.
    Host(PathBuf),
    Bytes(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Source),
    Symlink(String),
    CharDev(u32, u32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub mode: u32,
    pub kind: Kind,
}

/// The files of an archive, by path (without the leading `/`). Parents are added automatically;
/// the first entry for a path wins (so tools added before busybox shadow its applets).
#[derive(Clone, Debug, Default)]
pub struct Listing {
    entries: BTreeMap<String, Entry>,
}

fn norm(path: &str) -> String {
    path.trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

impl Listing {
    pub fn new() -> Listing {
        Listing::default()
    }

    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(&norm(path))
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(&norm(path))
    }

    /// Entries in archive order.
    pub fn entries(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    /// Paths in archive order (parents before children).
    pub fn paths(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    fn insert(&mut self, path: &str, e: Entry) {
        let p = norm(path);
        assert!(
            !p.is_empty() && !p.split('/').any(|c| c == ".." || c.is_empty()),
            "bad path {path:?}"
        );
        let mut parent = String::new();
        for comp in p.split('/').collect::<Vec<_>>().split_last().unwrap().1 {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(comp);
            self.entries.entry(parent.clone()).or_insert(Entry {
                mode: 0o755,
                kind: Kind::Dir,
            });
        }
        self.entries.entry(p).or_insert(e);
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.insert(
            path,
            Entry {
                mode,
                kind: Kind::Dir,
            },
        );
        self
    }

    pub fn bytes(&mut self, path: &str, mode: u32, data: impl Into<Vec<u8>>) -> &mut Self {
        self.insert(
            path,
            Entry {
                mode,
                kind: Kind::File(Source::Bytes(data.into())),
            },
        );
        self
    }

    /// A host file (symlinks followed); mode from the host file.
    pub fn host_file(&mut self, path: &str, src: &Path) -> &mut Self {
        let mode = fs::metadata(src)
            .unwrap_or_else(|e| panic!("{}: {e}", src.display()))
            .permissions()
            .mode()
            & 0o7777;
        self.insert(
            path,
            Entry {
                mode,
                kind: Kind::File(Source::Host(src.to_path_buf())),
            },
        );
        self
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.insert(
            path,
            Entry {
                mode: 0o777,
                kind: Kind::Symlink(target.to_string()),
            },
        );
        self
    }

    pub fn char_dev(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> &mut Self {
        self.insert(
            path,
            Entry {
                mode,
                kind: Kind::CharDev(major, minor),
            },
        );
        self
    }

    /// A dynamically linked host program at `path`, plus every library `ldd` lists, each at the
    /// path ldd names (the loader's search paths are the same in the guest).
    pub fn host_program(&mut self, path: &str, src: &Path) -> &mut Self {
        self.host_file(path, src);
        let out = Command::new("ldd").arg(src).output().expect("run ldd");
        // "not a dynamic executable" -> static, nothing more to copy.
        if out.status.success() {
            for lib in parse_ldd(&String::from_utf8_lossy(&out.stdout)) {
                let real = fs::canonicalize(&lib).unwrap_or_else(|_| lib.clone());
                self.host_file(&lib.to_string_lossy(), &real);
            }
        }
        self
    }

    /// Cache key over everything that determines the archive's bytes.
    pub fn key(&self) -> String {
        let mut h = DefaultHasher::new();
        FORMAT_VERSION.hash(&mut h);
        for (p, e) in &self.entries {
            p.hash(&mut h);
            e.mode.hash(&mut h);
            match &e.kind {
                Kind::Dir => 0u8.hash(&mut h),
                Kind::File(Source::Bytes(b)) => (1u8, b).hash(&mut h),
                Kind::File(Source::Host(src)) => {
                    2u8.hash(&mut h);
                    src.hash(&mut h);
                    if let Ok(m) = fs::metadata(src) {
                        (m.len(), m.mtime(), m.mtime_nsec(), m.ino()).hash(&mut h);
                    }
                }
                Kind::Symlink(t) => (3u8, t).hash(&mut h),
                Kind::CharDev(a, b) => (4u8, a, b).hash(&mut h),
            }
        }
        format!("{:016x}", h.finish())
    }

    /// Writes the newc archive.
    pub fn write_cpio(&self, w: &mut impl Write) -> io::Result<()> {
        for (ino, (path, e)) in (1u32..).zip(self.entries.iter()) {
            let (ty, data, rdev): (u32, Vec<u8>, (u32, u32)) = match &e.kind {
                Kind::Dir => (0o040000, vec![], (0, 0)),
                Kind::File(Source::Bytes(b)) => (0o100000, b.clone(), (0, 0)),
                Kind::File(Source::Host(src)) => (
                    0o100000,
                    fs::read(src)
                        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", src.display())))?,
                    (0, 0),
                ),
                Kind::Symlink(t) => (0o120000, t.as_bytes().to_vec(), (0, 0)),
                Kind::CharDev(a, b) => (0o020000, vec![], (*a, *b)),
            };
            let nlink = if ty == 0o040000 { 2 } else { 1 };
            cpio_entry(w, ino, ty | e.mode, nlink, rdev, path, &data)?;
        }
        cpio_entry(w, 0, 0, 1, (0, 0), "TRAILER!!!", &[])
    }
}

/// Bump to force a rebuild when the generator itself changes.
const FORMAT_VERSION: u32 = 5;

fn pad4(w: &mut impl Write, len: usize) -> io::Result<()> {
    w.write_all(&[0u8; 3][..(4 - len % 4) % 4])
}

fn cpio_entry(
    w: &mut impl Write,
    ino: u32,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    name: &str,
    data: &[u8],
) -> io::Result<()> {
    let hdr = format!(
        "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime
        data.len(),
        0,
        0,
        rdev.0,
        rdev.1,
        name.len() + 1,
        0
    );
    w.write_all(hdr.as_bytes())?;
    w.write_all(name.as_bytes())?;
    w.write_all(&[0])?;
    pad4(w, hdr.len() + name.len() + 1)?;
    w.write_all(data)?;
    pad4(w, data.len())
}

/// Library paths from `ldd` output (`name => /path (addr)` and the bare loader line).
pub fn parse_ldd(out: &str) -> Vec<PathBuf> {
    let mut v = vec![];
    for line in out.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            v.push(PathBuf::from(p));
        }
    }
    v
}

/// Busybox applet paths (`usr/bin/[`, `sbin/ifconfig`, ...) of the host's static busybox.
fn busybox_applets(busybox: &Path) -> Vec<String> {
    let out = Command::new(busybox)
        .arg("--list-full")
        .output()
        .expect("run busybox --list-full");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

/// The guest's `/init` (busybox sh). Kernel command line parameters it reads (dotted names, so the
/// kernel neither complains nor passes them on):
/// - `drbdrs.host=<hostname>`
/// - `drbdrs.net=<mac>@<addr>/<prefix>` (repeatable): configure the interface with that MAC.
pub const INIT: &str = r#"#!/bin/sh
export PATH=/sbin:/usr/sbin:/bin:/usr/bin HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mkdir -p /run/lock /var/lib/drbd /var/run
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
# Host programs (fio, e2fsprogs, ...) on a read-only disk; the root has symlinks into /host.
mkdir -p /host
for b in /sys/block/vd*; do
  [ "$(cat $b/serial 2>/dev/null)" = drbdrs-hostfs ] && mount -t ext4 -o ro /dev/${b##*/} /host
done
# Debug kernels: forget boot-time kmemleak suspects, the harness scans at the end of a test.
[ -w /sys/kernel/debug/kmemleak ] && echo clear > /sys/kernel/debug/kmemleak
ip link set lo up
for p in $(cat /proc/cmdline); do
  case "$p" in
    drbdrs.host=*) hostname "${p#*=}" ;;
    drbdrs.net=*)
      v=${p#*=}; mac=${v%@*}; addr=${v#*@}; ifc=
      for d in /sys/class/net/*; do
        [ "$(cat $d/address)" = "$mac" ] && ifc=${d##*/}
      done
      if [ -n "$ifc" ]; then
        ip addr add "$addr" dev "$ifc" && ip link set "$ifc" up
      else
        echo "init: no interface with MAC $mac" >/dev/console
      fi ;;
  esac
done
echo "init: $(hostname) up, starting drbd-guest-agent" >/dev/console
while :; do
  /sbin/drbd-guest-agent
  echo "init: drbd-guest-agent exited ($?), restarting" >/dev/console
  sleep 1
done
"#;

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// Host programs copied into the guest: (guest path, host path, extra names as symlinks).
const HOST_PROGRAMS: &[(&str, &str, &[&str])] = &[
    ("/usr/bin/fio", "/usr/bin/fio", &[]),
    (
        "/usr/sbin/mke2fs",
        "/usr/sbin/mke2fs",
        &[
            "/usr/sbin/mkfs.ext4",
            "/usr/sbin/mkfs.ext3",
            "/usr/sbin/mkfs.ext2",
        ],
    ),
    (
        "/usr/sbin/e2fsck",
        "/usr/sbin/e2fsck",
        &["/usr/sbin/fsck.ext4"],
    ),
    ("/usr/sbin/resize2fs", "/usr/sbin/resize2fs", &[]),
    ("/usr/sbin/dmsetup", "/usr/sbin/dmsetup", &[]),
    ("/usr/sbin/blkid", "/usr/sbin/blkid", &[]),
    // iproute2's tc (netem); busybox's cannot do netem. Busybox sh runs its own applets before
    // searching PATH, so names shared with an applet (tc, mke2fs) need the full path.
    ("/usr/sbin/tc", "/usr/sbin/tc", &[]),
    // Debian's drbd-utils: the 8.4 helpers for benchmarks against the in-tree C module, and the
    // stock 9.x tools (outside PATH) for comparisons. Ours are `drbdsetup`/`drbdmeta` on PATH.
    ("/lib/drbd/drbdsetup-84", "/lib/drbd/drbdsetup-84", &[]),
    ("/lib/drbd/drbdadm-84", "/lib/drbd/drbdadm-84", &[]),
    ("/opt/drbd-utils/sbin/drbdsetup", "/sbin/drbdsetup", &[]),
    ("/opt/drbd-utils/sbin/drbdadm", "/sbin/drbdadm", &[]),
    ("/opt/drbd-utils/sbin/drbdmeta", "/sbin/drbdmeta", &[]),
];

/// Our static tools, taken from the tools dir when present.
pub const OUR_TOOLS: &[&str] = &["drbdsetup", "drbdmeta", "drbd-nlraw", "drbdadm"];

/// Mount point of the read-only host-programs disk in the guest.
pub const HOSTFS_MOUNT: &str = "/host";
/// Its virtio serial, how `/init` finds it.
pub const HOSTFS_SERIAL: &str = "drbdrs-hostfs";

/// Profiling tools, added only when `DRBD_RS_GUEST_PROFILING=1` (the profile example sets
/// it): perf (sampling profiles) and iproute2's ss (per-socket TCP counters). Their libraries
/// make the host disk much larger, which the scenario tests do not need.
const PROFILING_PROGRAMS: &[(&str, &str, &[&str])] = &[
    ("/usr/bin/perf", "/usr/bin/perf", &[]),
    ("/usr/bin/ss", "/usr/bin/ss", &[]),
];

/// Host programs and the libraries they need, at their host paths.
pub fn host_listing() -> Listing {
    let mut l = Listing::new();
    let profiling = std::env::var("DRBD_RS_GUEST_PROFILING").is_ok_and(|v| v == "1");
    let extra: &[(&str, &str, &[&str])] = if profiling { PROFILING_PROGRAMS } else { &[] };
    for (dst, src, links) in HOST_PROGRAMS.iter().chain(extra) {
        let src = Path::new(src);
        if src.exists() {
            l.host_program(dst, src);
            for link in *links {
                l.symlink(link, Path::new(dst).file_name().unwrap().to_str().unwrap());
            }
        }
    }
    l
}

/// The standard guest listing. With `hostfs`, the files of `host` live on the read-only host disk
/// and the root only has symlinks to them under [`HOSTFS_MOUNT`]; without, they are copied in.
pub fn guest_listing(host: &Listing, hostfs: bool) -> Listing {
    let mut l = Listing::new();
    l.bytes("/init", 0o755, INIT);
    l.char_dev("/dev/console", 0o600, 5, 1);
    l.char_dev("/dev/null", 0o666, 1, 3);
    for d in [
        "proc", "sys", "dev", "tmp", "run", "mnt", "root", "var", "etc",
    ] {
        l.dir(d, 0o755);
    }
    l.bytes("/etc/passwd", 0o644, PASSWD);
    l.bytes("/etc/group", 0o644, GROUP);
    l.bytes("/etc/hosts", 0o644, "127.0.0.1 localhost\n");
    l.symlink("/etc/mtab", "/proc/mounts");
    l.host_file("/sbin/drbd-guest-agent", &artifacts::agent_binary());

    let tools = artifacts::tools_dir();
    for t in OUR_TOOLS {
        let p = tools.join(t);
        if p.exists() {
            l.host_file(&format!("/usr/sbin/{t}"), &p);
        }
    }
    add_host(&mut l, host, hostfs);
    add_modules(&mut l);

    // Busybox last: an applet never shadows a real program with the same name anywhere on PATH.
    let busybox = Path::new("/bin/busybox");
    l.host_file("/bin/busybox", busybox);
    let taken: BTreeSet<String> = l
        .paths()
        .iter()
        .filter(|p| {
            ["bin/", "sbin/", "usr/bin/", "usr/sbin/"]
                .iter()
                .any(|d| p.starts_with(d))
        })
        .filter_map(|p| p.rsplit('/').next().map(str::to_string))
        .collect();
    for applet in busybox_applets(busybox) {
        let name = applet.rsplit('/').next().unwrap_or_default().to_string();
        if !taken.contains(&name) {
            l.symlink(&applet, "/bin/busybox");
        }
    }
    l
}

/// The host programs into the root: copied, or (`hostfs`) as symlinks to the host disk.
pub fn add_host(l: &mut Listing, host: &Listing, hostfs: bool) {
    for (p, e) in host.entries() {
        match (&e.kind, hostfs) {
            (Kind::Dir, _) => {}
            (Kind::File(_), true) => {
                l.symlink(p, &format!("{HOSTFS_MOUNT}/{p}"));
            }
            _ => l.insert(p, e.clone()),
        }
    }
}

/// Our module under `extra/` plus depmod's files, and the C 8.4 module(s) under `drbd84/`.
fn add_modules(l: &mut Listing) {
    let release = artifacts::kernel_release();
    let ours = artifacts::our_module();
    let c_mods = artifacts::c_drbd_modules();
    let base = format!("lib/modules/{release}");
    for m in &c_mods {
        let name = m.file_name().unwrap().to_string_lossy().to_string();
        l.host_file(&format!("/lib/modules/drbd84/{name}"), m);
    }
    let mut modprobe_able: Vec<(String, PathBuf)> = vec![];
    if ours.exists() {
        modprobe_able.push(("extra/drbd.ko".into(), ours));
    }
    // lru_cache (a dependency of the C module only) may also be modprobe'd normally.
    for m in c_mods.iter().filter(|m| m.ends_with("lru_cache.ko")) {
        modprobe_able.push(("kernel/lib/lru_cache.ko".into(), m.clone()));
    }
    // Run the host's depmod over a staging tree and take its output files.
    let stage = artifacts::output_root()
        .join(".cache")
        .join(format!("modstage-{}", std::process::id()));
    let _ = fs::remove_dir_all(&stage);
    let mdir = stage.join(&base);
    fs::create_dir_all(&mdir).expect("create module staging dir");
    for (rel, src) in &modprobe_able {
        let dst = mdir.join(rel);
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        fs::copy(src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        l.host_file(&format!("{base}/{rel}"), src);
    }
    for f in [
        "modules.order",
        "modules.builtin",
        "modules.builtin.modinfo",
    ] {
        let src = artifacts::kdir().join("src").join(f);
        if src.exists() && f != "modules.order" {
            fs::copy(&src, mdir.join(f)).unwrap();
            l.host_file(&format!("{base}/{f}"), &src);
        }
    }
    let depmod = ["/usr/sbin/depmod", "/sbin/depmod"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("depmod (kmod) is needed to build the guest root");
    let out = Command::new(depmod)
        .arg("-b")
        .arg(&stage)
        .arg(&release)
        .output()
        .expect("run depmod");
    assert!(
        out.status.success(),
        "depmod failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for e in fs::read_dir(&mdir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("modules.")
            && e.path().is_file()
            && !l.contains(&format!("{base}/{name}"))
        {
            l.bytes(
                &format!("{base}/{name}"),
                0o644,
                fs::read(e.path()).unwrap(),
            );
        }
    }
    let _ = fs::remove_dir_all(&stage);
}

/// What guests boot from.
#[derive(Clone, Debug)]
pub struct GuestRoot {
    pub initramfs: PathBuf,
    /// Read-only ext4 image with the host programs, attached as the last virtio disk (serial
    /// [`HOSTFS_SERIAL`]) and mounted on [`HOSTFS_MOUNT`]; `None` if it could not be built (then
    /// the programs are in the initramfs).
    pub hostfs: Option<PathBuf>,
}

fn cache_dir() -> PathBuf {
    let dir = artifacts::output_root().join(".cache");
    fs::create_dir_all(&dir).expect("create guest root cache dir");
    dir
}

/// Removes cache files with `prefix` other than `keep` that are older than an hour.
fn prune(dir: &Path, prefix: &str, keep: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if n.starts_with(prefix) && e.path() != keep {
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .map(|t| t.elapsed().unwrap_or_default().as_secs() > 3600)
                    .unwrap_or(false);
                if old {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
}

/// The host programs as an ext4 image (built with `mke2fs -d`), cached by the listing's key.
/// Keeping ~90 MiB of fio and its libraries out of the initramfs saves seconds of unpacking per
/// boot (much more on a lockdep kernel) and that much guest memory.
pub fn build_hostfs_cached(host: &Listing) -> Result<PathBuf, String> {
    let dir = cache_dir();
    let img = dir.join(format!("hostfs-{}.img", host.key()));
    if img.exists() {
        return Ok(img);
    }
    crate::log(format!("building host programs disk {}", img.display()));
    let stage = dir.join(format!(".hostfs-stage-{}", std::process::id()));
    let tmp = dir.join(format!(".hostfs-{}.tmp", std::process::id()));
    let _ = fs::remove_dir_all(&stage);
    let _ = fs::remove_file(&tmp);
    let result = (|| -> Result<(), String> {
        let mut bytes = 0u64;
        for (p, e) in host.entries() {
            let dst = stage.join(p);
            match &e.kind {
                Kind::Dir => fs::create_dir_all(&dst).map_err(|e| e.to_string())?,
                Kind::File(src) => {
                    fs::create_dir_all(dst.parent().unwrap()).map_err(|e| e.to_string())?;
                    match src {
                        Source::Host(h) => fs::copy(h, &dst).map(|_| ()),
                        Source::Bytes(b) => fs::write(&dst, b),
                    }
                    .map_err(|e| format!("{}: {e}", dst.display()))?;
                    fs::set_permissions(&dst, fs::Permissions::from_mode(e.mode))
                        .map_err(|e| e.to_string())?;
                    bytes += fs::metadata(&dst).map(|m| m.len()).unwrap_or(0);
                }
                Kind::Symlink(t) => {
                    fs::create_dir_all(dst.parent().unwrap()).map_err(|e| e.to_string())?;
                    std::os::unix::fs::symlink(t, &dst).map_err(|e| e.to_string())?;
                }
                Kind::CharDev(..) => {
                    return Err("device nodes are not supported on the host disk".into())
                }
            }
        }
        let kib = bytes / 1024 * 5 / 4 + 16 * 1024;
        let mke2fs = ["/usr/sbin/mke2fs", "/sbin/mke2fs"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .ok_or("mke2fs not found")?;
        let out = Command::new(mke2fs)
            .args([
                "-q",
                "-F",
                "-t",
                "ext4",
                "-O",
                "^has_journal",
                "-L",
                "drbdrs-host",
                "-E",
                "root_owner=0:0",
                "-d",
            ])
            .arg(&stage)
            .arg(&tmp)
            .arg(format!("{kib}k"))
            .output()
            .map_err(|e| format!("run mke2fs: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mke2fs failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        fs::rename(&tmp, &img).map_err(|e| e.to_string())
    })();
    let _ = fs::remove_dir_all(&stage);
    let _ = fs::remove_file(&tmp);
    result?;
    prune(&dir, "hostfs-", &img);
    Ok(img)
}

/// Builds (or reuses) the guest initramfs and the host programs disk.
pub fn build_cached() -> GuestRoot {
    let host = host_listing();
    let hostfs = match std::env::var("DRBD_RS_HOSTFS").as_deref() {
        Ok("0") => Err("DRBD_RS_HOSTFS=0".to_string()),
        _ => build_hostfs_cached(&host),
    };
    let hostfs = match hostfs {
        Ok(p) => Some(p),
        Err(e) => {
            crate::log(format!(
                "no host programs disk ({e}); putting them into the initramfs"
            ));
            None
        }
    };
    let listing = guest_listing(&host, hostfs.is_some());
    let dir = cache_dir();
    let path = dir.join(format!("initramfs-{}.cpio", listing.key()));
    if !path.exists() {
        let missing: Vec<&str> = OUR_TOOLS
            .iter()
            .filter(|t| **t != "drbdadm" && !listing.contains(&format!("/usr/sbin/{t}")))
            .copied()
            .collect();
        if !missing.is_empty() {
            crate::log(format!(
                "warning: {} not found in {} (run ci/build-tools.sh)",
                missing.join(", "),
                artifacts::tools_dir().display()
            ));
        }
        if !listing.contains(&format!(
            "/lib/modules/{}/extra/drbd.ko",
            artifacts::kernel_release()
        )) {
            crate::log(format!(
                "warning: {} not found (run ci/build-module.sh); modprobe drbd will fail",
                artifacts::our_module().display()
            ));
        }
        crate::log(format!("building guest initramfs {}", path.display()));
        let tmp = dir.join(format!(".initramfs-{}.tmp", std::process::id()));
        {
            let f = fs::File::create(&tmp).expect("create initramfs");
            let mut w = io::BufWriter::new(f);
            listing.write_cpio(&mut w).expect("write initramfs");
            w.flush().expect("write initramfs");
        }
        fs::rename(&tmp, &path).expect("rename initramfs");
        prune(&dir, "initramfs-", &path);
    }
    GuestRoot {
        initramfs: path,
        hostfs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_added_and_first_entry_wins() {
        let mut l = Listing::new();
        l.bytes("/usr/sbin/drbdsetup", 0o755, "ours");
        l.symlink("/usr/sbin/drbdsetup", "/bin/busybox");
        assert_eq!(l.paths(), vec!["usr", "usr/sbin", "usr/sbin/drbdsetup"]);
        assert_eq!(l.get("usr").unwrap().kind, Kind::Dir);
        assert_eq!(
            l.get("/usr/sbin/drbdsetup").unwrap().kind,
            Kind::File(Source::Bytes(b"ours".to_vec()))
        );
    }

    #[test]
    fn host_programs_link_into_the_host_disk() {
        let mut host = Listing::new();
        host.bytes("/usr/sbin/mke2fs", 0o755, "elf");
        host.symlink("/usr/sbin/mkfs.ext4", "mke2fs");
        host.bytes("/lib/x86_64-linux-gnu/libc.so.6", 0o755, "lib");
        let mut linked = Listing::new();
        add_host(&mut linked, &host, true);
        assert_eq!(
            linked.get("/usr/sbin/mke2fs").unwrap().kind,
            Kind::Symlink("/host/usr/sbin/mke2fs".into())
        );
        assert_eq!(
            linked.get("/usr/sbin/mkfs.ext4").unwrap().kind,
            Kind::Symlink("mke2fs".into())
        );
        assert_eq!(
            linked.get("/lib/x86_64-linux-gnu/libc.so.6").unwrap().kind,
            Kind::Symlink("/host/lib/x86_64-linux-gnu/libc.so.6".into())
        );
        let mut copied = Listing::new();
        add_host(&mut copied, &host, false);
        assert_eq!(copied.get("/usr/sbin/mke2fs"), host.get("/usr/sbin/mke2fs"));
    }

    #[test]
    fn ldd_output_is_parsed() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibaio.so.1 => /lib/x86_64-linux-gnu/libaio.so.1 (0x7f)\n\
                   \tlibgone.so => not found\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(out),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libaio.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }

    #[test]
    fn key_changes_with_content() {
        let mut a = Listing::new();
        a.bytes("/x", 0o644, "1");
        let mut b = Listing::new();
        b.bytes("/x", 0o644, "2");
        assert_ne!(a.key(), b.key());
        let mut c = Listing::new();
        c.bytes("/x", 0o644, "1");
        assert_eq!(a.key(), c.key());
    }

    /// Parses a newc archive back (what the kernel's unpacker does).
    fn parse_newc(mut b: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut v = vec![];
        let start = b.len();
        loop {
            let pos = start - b.len();
            assert_eq!(pos % 4, 0);
            assert_eq!(&b[..6], b"070701");
            let field = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&b[6 + 8 * i..14 + 8 * i]).unwrap(), 16)
                    .unwrap()
            };
            let (mode, size, namesize) = (field(1), field(6) as usize, field(11) as usize);
            let name = std::str::from_utf8(&b[110..110 + namesize - 1])
                .unwrap()
                .to_string();
            assert_eq!(b[110 + namesize - 1], 0);
            let data_off = (110 + namesize).div_ceil(4) * 4;
            let data = b[data_off..data_off + size].to_vec();
            b = &b[(data_off + size).div_ceil(4) * 4..];
            if name == "TRAILER!!!" {
                assert!(b.is_empty());
                return v;
            }
            v.push((name, mode, data));
        }
    }

    #[test]
    fn cpio_round_trips() {
        let mut l = Listing::new();
        l.bytes("/init", 0o755, "#!/bin/sh\n");
        l.bytes("/etc/odd", 0o600, vec![1, 2, 3, 4, 5]);
        l.symlink("/bin/sh", "/bin/busybox");
        l.char_dev("/dev/console", 0o600, 5, 1);
        let mut out = vec![];
        l.write_cpio(&mut out).unwrap();
        let got = parse_newc(&out);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "bin",
                "bin/sh",
                "dev",
                "dev/console",
                "etc",
                "etc/odd",
                "init"
            ]
        );
        assert_eq!(got[0].1, 0o040755);
        assert_eq!(
            got[1],
            ("bin/sh".into(), 0o120777, b"/bin/busybox".to_vec())
        );
        assert_eq!(got[3].1, 0o020600);
        assert_eq!(got[5], ("etc/odd".into(), 0o100600, vec![1, 2, 3, 4, 5]));
        assert_eq!(got[6].2, b"#!/bin/sh\n");
    }

    #[test]
    fn host_cpio_tool_agrees() {
        // Cross-check with GNU cpio when the host has it.
        if Command::new("cpio").arg("--version").output().is_err() {
            return;
        }
        let mut l = Listing::new();
        l.bytes("/a/b/c.txt", 0o644, "hello");
        l.symlink("/a/link", "b/c.txt");
        let mut out = vec![];
        l.write_cpio(&mut out).unwrap();
        let mut child = Command::new("cpio")
            .args(["-it", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&out).unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success());
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "a\na/b\na/b/c.txt\na/link\n"
        );
    }
}
