//! QEMU harness for drbd-rs scenario tests.
//!
//! Boots N guests running the project's test kernel under QEMU (TCG; KVM with `DRBD_RS_KVM=1`), links
//! them point to point, and runs commands in them through a small guest agent on virtio-serial.
//!
//! ```no_run
//! use tests_qemu::{Cluster, ClusterSpec};
//! let c = Cluster::start(ClusterSpec::new(2).disks(&[256]));
//! let (n0, n1) = (c.node(0), c.node(1));
//! n0.run_ok(&format!("ping -c1 -W5 {}", c.addr(1, 0)));
//! n0.set_link(1, false);
//! let out = n1.run("modprobe drbd && head -1 /proc/drbd");
//! assert!(out.success(), "{out}");
//! // Dropping the cluster shuts the guests down and fails on kernel splats in their logs.
//! ```
//!
//! Layout: `qemu` (one QEMU process), `agent` (agent client), `qmp` (QMP client and a tiny JSON
//! reader), `initramfs` (guest root), `artifacts` (where kernel, module and tools are),
//! `klog` (kernel log checks), `cluster` (the public API).
//!
//! Environment:
//! - `DRBD_RS_KDIR`: kernel build dir (default: output of `ci/kernel-dir.sh`).
//! - `DRBD_RS_KMOD`: our module (default `kmod/drbd.ko`).
//! - `DRBD_RS_TOOLS`: dir with static `drbdsetup`, `drbdmeta`, `drbd-nlraw`, `drbd-guest-agent`
//!   (default `target/x86_64-unknown-linux-gnu/release`; the agent is built on demand).
//! - `DRBD_RS_KVM=1`: use KVM instead of TCG.
//! - `DRBD_RS_TIMEOUT_SCALE`: multiply every timeout (slow or loaded machines).
//! - `DRBD_RS_QEMU_PARALLEL`: clusters allowed to run at once per test process (default 1).
//! - `DRBD_RS_TSC_KHZ`: guest TSC frequency (default: measured from the host's /proc/cpuinfo).
//! - `DRBD_RS_KEEP=1`: keep disk images of passing tests.
//! - `DRBD_RS_HOSTFS=0`: host programs in the initramfs instead of on a read-only disk.
//! - `DRBD_RS_GUEST_PROFILING=1`: also perf and ss in the guests (the profile example).
//! - `DRBD_RS_TRACE=1`: log every command with its status and duration.

pub mod agent;
pub mod artifacts;
pub mod cluster;
pub mod initramfs;
pub mod klog;
pub mod qemu;
pub mod qmp;

#[path = "../agent/src/proto.rs"]
pub mod proto;

pub use cluster::{Cluster, ClusterSpec, Job, Node};
pub use proto::Status;
pub use qmp::Json;

use std::fmt;
use std::time::Duration;

/// Result of a command run in a guest.
#[derive(Clone, Debug)]
pub struct Output {
    pub status: Status,
    /// stdout as text (lossy UTF-8); the exact bytes are in `stdout_bytes`.
    pub stdout: String,
    pub stderr: String,
    pub stdout_bytes: Vec<u8>,
    /// The command, for messages.
    pub cmd: String,
}

impl Output {
    pub(crate) fn new(cmd: &str, status: Status, stdout: Vec<u8>, stderr: Vec<u8>) -> Output {
        Output {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            stdout_bytes: stdout,
            cmd: cmd.to_string(),
        }
    }

    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.status == Status::Exited(0)
    }

    /// The exit code, if the command exited normally.
    pub fn code(&self) -> Option<i32> {
        match self.status {
            Status::Exited(c) => Some(c),
            _ => None,
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "command: {}", self.cmd)?;
        writeln!(f, "status: {:?}", self.status)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

/// `DRBD_RS_TIMEOUT_SCALE` applied to a base timeout.
pub fn scaled(d: Duration) -> Duration {
    let s: f64 = std::env::var("DRBD_RS_TIMEOUT_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v: &f64| *v > 0.0)
        .unwrap_or(1.0);
    d.mul_f64(s)
}

/// Shell-quotes one word for `/bin/sh -c`.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-=:,+@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub(crate) fn log(msg: impl fmt::Display) {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    eprintln!(
        "[qemu-harness {:02}:{:02}:{:02}.{:03}] {msg}",
        (t.as_secs() / 3600) % 24,
        (t.as_secs() / 60) % 60,
        t.as_secs() % 60,
        t.subsec_millis()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("/dev/vdb"), "/dev/vdb");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
    }
}
