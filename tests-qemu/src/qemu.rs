//! One QEMU process: command line, start, stop.

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A virtio disk backed by a raw file.
#[derive(Clone, Debug)]
pub struct Disk {
    pub path: PathBuf,
    /// Shows up as `/sys/block/vdX/serial` in the guest.
    pub serial: String,
    pub readonly: bool,
}

/// A point-to-point link: a QEMU UDP socket netdev with a virtio-net NIC.
#[derive(Clone, Debug)]
pub struct Nic {
    /// netdev id (what QMP `set_link` names).
    pub id: String,
    pub mac: String,
    pub local_port: u16,
    pub remote_port: u16,
}

#[derive(Clone, Debug)]
pub struct QemuConfig {
    pub name: String,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub append: String,
    pub mem_mb: u32,
    pub cpus: u32,
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
    pub qmp_socket: PathBuf,
    pub agent_socket: PathBuf,
    /// Serial console output is appended here.
    pub console_log: PathBuf,
    /// QEMU's own stdout/stderr are appended here.
    pub qemu_log: PathBuf,
    pub kvm: bool,
    pub extra_args: Vec<String>,
}

/// `cache=none,aio=native` needs O_DIRECT on the disk files' file system; otherwise fall back to
/// the page cache with thread-pool AIO (tmpfs, for one, has no O_DIRECT).
pub fn drive_cache_opts(dir: &Path) -> &'static str {
    static OPTS: OnceLock<&'static str> = OnceLock::new();
    OPTS.get_or_init(|| {
        let probe = dir.join(".odirect-probe");
        let ok = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(0o40000) // O_DIRECT
            .open(&probe)
            .is_ok();
        let _ = fs::remove_file(&probe);
        if ok {
            "cache=none,aio=native"
        } else {
            "cache=writeback,aio=threads"
        }
    })
}

impl QemuConfig {
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![];
        let mut push = |v: &[&str]| a.extend(v.iter().map(|s| s.to_string()));
        push(&["-name", &self.name]);
        if self.kvm {
            push(&["-accel", "kvm", "-cpu", "host"]);
        } else {
            push(&["-accel", "tcg", "-cpu", "max"]);
        }
        push(&[
            "-m",
            &self.mem_mb.to_string(),
            "-smp",
            &self.cpus.to_string(),
            "-nographic",
            "-nodefaults",
            "-no-user-config",
            "-no-reboot",
            "-monitor",
            "none",
        ]);
        push(&["-kernel", &self.kernel.to_string_lossy()]);
        push(&["-initrd", &self.initrd.to_string_lossy()]);
        push(&["-append", &self.append]);
        push(&[
            "-chardev",
            &format!("file,id=con,path={},append=on", self.console_log.display()),
            "-serial",
            "chardev:con",
        ]);
        push(&[
            "-qmp",
            &format!("unix:{},server=on,wait=off", self.qmp_socket.display()),
        ]);
        push(&[
            "-device",
            "virtio-serial-pci,id=vser",
            "-chardev",
            &format!(
                "socket,id=agent,path={},server=on,wait=off",
                self.agent_socket.display()
            ),
            "-device",
            "virtserialport,bus=vser.0,chardev=agent,name=agent",
        ]);
        let cache = self
            .disks
            .first()
            .map(|d| drive_cache_opts(d.path.parent().unwrap()))
            .unwrap_or("");
        for (i, d) in self.disks.iter().enumerate() {
            let ro = if d.readonly { ",readonly=on" } else { "" };
            push(&[
                "-drive",
                &format!(
                    "if=none,id=d{i},file={},format=raw,{cache}{ro}",
                    d.path.display()
                ),
                "-device",
                &format!("virtio-blk-pci,drive=d{i},serial={}", d.serial),
            ]);
        }
        for n in &self.nics {
            push(&[
                "-netdev",
                &format!(
                    "socket,id={},udp=127.0.0.1:{},localaddr=127.0.0.1:{}",
                    n.id, n.remote_port, n.local_port
                ),
                "-device",
                &format!("virtio-net-pci,netdev={},mac={},romfile=", n.id, n.mac),
            ]);
        }
        a.extend(self.extra_args.iter().cloned());
        a
    }
}

/// A running QEMU; killed when dropped.
pub struct Qemu {
    child: Child,
    exited: Option<ExitStatus>,
}

impl Qemu {
    pub fn start(cfg: &QemuConfig) -> std::io::Result<Qemu> {
        let _ = fs::remove_file(&cfg.qmp_socket);
        let _ = fs::remove_file(&cfg.agent_socket);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cfg.qemu_log)?;
        let qemu = std::env::var("DRBD_RS_QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into());
        let args = cfg.args();
        {
            use std::io::Write;
            let mut l = &log;
            let _ = writeln!(l, "+ {qemu} {}", args.join(" "));
        }
        let child = Command::new(qemu)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        Ok(Qemu {
            child,
            exited: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once QEMU has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// Waits up to `timeout` for QEMU to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_exit() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL (a power cut for the guest) and reap.
    pub fn kill(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill();
    }
}
