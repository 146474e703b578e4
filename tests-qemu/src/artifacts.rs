//! Where the things the guests run come from (the contract with `ci/`): the kernel build dir, our
//! module, the static tools, and the host's TSC frequency.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Root of the repository (parent of `tests-qemu/`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests-qemu has a parent")
        .to_path_buf()
}

/// The cargo target dir (`CARGO_TARGET_DIR` or `<repo>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
}

/// All test output lives below `target/qemu-tests/`.
pub fn output_root() -> PathBuf {
    target_dir().join("qemu-tests")
}

/// Kernel build directory: `$DRBD_RS_KDIR`, else what `ci/kernel-dir.sh` prints.
pub fn kdir() -> PathBuf {
    static K: OnceLock<PathBuf> = OnceLock::new();
    K.get_or_init(|| {
        if let Some(d) = std::env::var_os("DRBD_RS_KDIR") {
            return PathBuf::from(d);
        }
        let script = repo().join("ci/kernel-dir.sh");
        let out = Command::new(&script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}

pub fn bzimage() -> PathBuf {
    kdir().join("src/arch/x86/boot/bzImage")
}

/// `uname -r` of the guest kernel.
pub fn kernel_release() -> String {
    let p = kdir().join("src/include/config/kernel.release");
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("cannot read {}: {e} (is the kernel built?)", p.display()))
        .trim()
        .to_string()
}

/// Panics with a helpful message if the kernel is not built yet.
pub fn require_kernel() {
    let b = bzimage();
    assert!(
        b.exists(),
        "guest kernel {} not found: build it with ci/build-kernel.sh (or set DRBD_RS_KDIR)",
        b.display()
    );
}

/// A kernel config option's value (`y`, `m`, ...) from the build's `.config`.
pub fn kconfig(opt: &str) -> Option<String> {
    let cfg = std::fs::read_to_string(kdir().join("src/.config")).ok()?;
    let key = format!("{opt}=");
    cfg.lines().find_map(|l| {
        l.strip_prefix(&key)
            .map(|v| v.trim_matches('"').to_string())
    })
}

/// The in-tree C DRBD 8.4 module and, if `CONFIG_LRU_CACHE=m`, its `lru_cache.ko`.
pub fn c_drbd_modules() -> Vec<PathBuf> {
    let src = kdir().join("src");
    let mut v = vec![];
    let drbd = src.join("drivers/block/drbd/drbd.ko");
    if drbd.exists() {
        if kconfig("CONFIG_LRU_CACHE").as_deref() == Some("m") {
            v.push(src.join("lib/lru_cache.ko"));
        }
        v.push(drbd);
    }
    v
}

/// Our Rust module: `$DRBD_RS_KMOD` or `kmod/drbd.ko` (may not exist yet).
pub fn our_module() -> PathBuf {
    std::env::var_os("DRBD_RS_KMOD")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("kmod/drbd.ko"))
}

/// Directory of the static guest tools.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("DRBD_RS_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("x86_64-unknown-linux-gnu/release"))
}

fn newest_mtime(dir: &Path) -> std::time::SystemTime {
    let mut newest = std::time::UNIX_EPOCH;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            let t = if p.is_dir() {
                newest_mtime(&p)
            } else {
                e.metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH)
            };
            newest = newest.max(t);
        }
    }
    newest
}

/// The static guest agent; (re)built with cargo when missing or older than its sources.
pub fn agent_binary() -> PathBuf {
    static A: OnceLock<PathBuf> = OnceLock::new();
    A.get_or_init(|| {
        let bin = tools_dir().join("drbd-guest-agent");
        let src = repo().join("tests-qemu/agent");
        let stale = match std::fs::metadata(&bin).and_then(|m| m.modified()) {
            Ok(t) => t < newest_mtime(&src),
            Err(_) => true,
        };
        if stale && std::env::var_os("DRBD_RS_TOOLS").is_none() {
            crate::log("building drbd-guest-agent (static)");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let st = Command::new(cargo)
                .current_dir(repo())
                .env("RUSTFLAGS", "-C target-feature=+crt-static")
                .args([
                    "build",
                    "-q",
                    "--release",
                    "--target",
                    "x86_64-unknown-linux-gnu",
                    "-p",
                    "drbd-guest-agent",
                ])
                .status()
                .expect("run cargo build for drbd-guest-agent");
            assert!(st.success(), "building drbd-guest-agent failed");
        }
        assert!(
            bin.exists(),
            "{} missing (run ci/build-tools.sh)",
            bin.display()
        );
        bin
    })
    .clone()
}

/// Host TSC frequency in kHz for `tsc_early_khz=` (the TCG guest TSC runs at the host's rate):
/// `$DRBD_RS_TSC_KHZ`, else `cpu MHz` of the first CPU in /proc/cpuinfo.
pub fn host_tsc_khz() -> Option<u64> {
    if let Some(v) = std::env::var("DRBD_RS_TSC_KHZ")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Some(v);
    }
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    parse_cpuinfo_khz(&info)
}

pub(crate) fn parse_cpuinfo_khz(info: &str) -> Option<u64> {
    let mhz: f64 = info
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    (mhz > 0.0).then(|| (mhz * 1000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpuinfo_khz() {
        let s = "processor\t: 0\nmodel name\t: Intel\ncpu MHz\t\t: 2000.000\nflags\t: fpu\n";
        assert_eq!(super::parse_cpuinfo_khz(s), Some(2_000_000));
        assert_eq!(
            super::parse_cpuinfo_khz("cpu MHz : 2893.204\n"),
            Some(2_893_204)
        );
        assert_eq!(super::parse_cpuinfo_khz("nothing"), None);
    }
}
