//! drbd-guest-agent: runs commands for the test host inside a QEMU guest.
//!
//! Listens on the virtio-serial port named `agent` (or the path given as the first argument),
//! speaks the framed protocol of `proto.rs`, and runs every request in its own thread and its own
//! process group, so many commands (including long-running background jobs) can run at once.
//! std only, built as a static binary for the busybox guest.

// The host half of the protocol (reply decoding, request encoding) is unused here.
#[allow(dead_code)]
mod proto;

use proto::{read_frame, write_frame, Reply, Request, Status};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Output kept per stream; more is dropped (and noted) to protect the guest's memory.
const OUTPUT_CAP: usize = 64 << 20;
/// After the shell exits, how long to wait for its pipes to close (a background grandchild may
/// keep them open forever).
const PIPE_GRACE: Duration = Duration::from_millis(500);
const SIGKILL: i32 = 9;

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

fn kill_group(pgid: i32, sig: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) has no memory-safety preconditions; a stale group id only yields ESRCH.
        unsafe {
            kill(-pgid, sig);
        }
    }
}

/// A running job: its process group and the output collected so far.
struct Job {
    pgid: AtomicI32,
    stdout: Mutex<Vec<u8>>,
    stderr: Mutex<Vec<u8>>,
}

type Jobs = Arc<Mutex<HashMap<u64, Arc<Job>>>>;
type Writer = Arc<Mutex<File>>;

fn send(w: &Writer, r: &Reply) {
    let mut f = w.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = write_frame(&mut *f, &r.encode()) {
        eprintln!("drbd-guest-agent: write reply {}: {e}", r.id());
    }
}

fn collect(mut from: impl Read, into: Arc<Job>, err: bool, done: mpsc::Sender<()>) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let mut v = if err { &into.stderr } else { &into.stdout }
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if v.len() + n <= OUTPUT_CAP {
                    v.extend_from_slice(&buf[..n]);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = done.send(());
}

#[allow(clippy::too_many_arguments)]
fn run(
    w: Writer,
    jobs: Jobs,
    id: u64,
    timeout_ms: u64,
    uid: u32,
    gid: u32,
    cmd: Vec<u8>,
    stdin: Option<Vec<u8>>,
) {
    let job = Arc::new(Job {
        pgid: AtomicI32::new(0),
        stdout: Mutex::new(Vec::new()),
        stderr: Mutex::new(Vec::new()),
    });
    jobs.lock().unwrap().insert(id, job.clone());
    let mut c = Command::new("/bin/sh");
    c.arg("-c")
        .arg(OsStr::from_bytes(&cmd))
        .process_group(0)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if gid != u32::MAX {
        c.gid(gid);
    }
    if uid != u32::MAX {
        // std also drops supplementary groups when changing the uid as root.
        c.uid(uid);
    }
    let mut child = match c.spawn() {
        Ok(c) => c,
        Err(e) => {
            jobs.lock().unwrap().remove(&id);
            send(
                &w,
                &Reply::Done {
                    id,
                    status: Status::SpawnFailed,
                    stdout: vec![],
                    stderr: format!("drbd-guest-agent: cannot start /bin/sh: {e}").into_bytes(),
                },
            );
            return;
        }
    };
    job.pgid.store(child.id() as i32, Ordering::SeqCst);
    if let (Some(mut si), Some(data)) = (child.stdin.take(), stdin) {
        thread::spawn(move || {
            let _ = si.write_all(&data);
        });
    }
    let (pipes_tx, pipes_rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    {
        let (j, tx) = (job.clone(), pipes_tx.clone());
        thread::spawn(move || collect(out, j, false, tx));
    }
    {
        let j = job.clone();
        thread::spawn(move || collect(err, j, true, pipes_tx));
    }
    let (exit_tx, exit_rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = exit_tx.send(child.wait());
    });
    let mut timed_out = false;
    let waited = if timeout_ms == 0 {
        exit_rx.recv().ok()
    } else {
        match exit_rx.recv_timeout(Duration::from_millis(timeout_ms)) {
            Ok(s) => Some(s),
            Err(_) => {
                timed_out = true;
                kill_group(job.pgid.load(Ordering::SeqCst), SIGKILL);
                exit_rx.recv().ok()
            }
        }
    };
    if timed_out {
        // Everything in the group is gone now, pipes close promptly.
        kill_group(job.pgid.load(Ordering::SeqCst), SIGKILL);
    }
    for _ in 0..2 {
        if pipes_rx.recv_timeout(PIPE_GRACE).is_err() {
            break;
        }
    }
    let status = match waited {
        _ if timed_out => Status::TimedOut,
        Some(Ok(s)) => match (s.code(), s.signal()) {
            (Some(c), _) => Status::Exited(c),
            (None, Some(sig)) => Status::Signaled(sig),
            (None, None) => Status::Exited(-1),
        },
        _ => Status::Exited(-1),
    };
    jobs.lock().unwrap().remove(&id);
    let stdout = std::mem::take(&mut *job.stdout.lock().unwrap());
    let stderr = std::mem::take(&mut *job.stderr.lock().unwrap());
    send(
        &w,
        &Reply::Done {
            id,
            status,
            stdout,
            stderr,
        },
    );
}

fn handle(w: &Writer, jobs: &Jobs, req: Request) {
    match req {
        Request::Run {
            id,
            timeout_ms,
            uid,
            gid,
            cmd,
            stdin,
        } => {
            let (w, jobs) = (w.clone(), jobs.clone());
            thread::spawn(move || run(w, jobs, id, timeout_ms, uid, gid, cmd, stdin));
        }
        Request::Peek { id, job } => {
            let j = jobs.lock().unwrap().get(&job).cloned();
            let r = match j {
                Some(j) => Reply::Output {
                    id,
                    found: true,
                    stdout: j.stdout.lock().unwrap().clone(),
                    stderr: j.stderr.lock().unwrap().clone(),
                },
                None => Reply::Output {
                    id,
                    found: false,
                    stdout: vec![],
                    stderr: vec![],
                },
            };
            send(w, &r);
        }
        Request::Kill { id, job, signal } => {
            let j = jobs.lock().unwrap().get(&job).cloned();
            if let Some(j) = &j {
                kill_group(j.pgid.load(Ordering::SeqCst), signal as i32);
            }
            send(
                w,
                &Reply::Ack {
                    id,
                    found: j.is_some(),
                },
            );
        }
        Request::Ping { id } => {
            let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            send(
                w,
                &Reply::Pong {
                    id,
                    info: host.trim().as_bytes().to_vec(),
                },
            );
        }
    }
}

/// The `/dev/vportNpM` whose virtio-serial name is `agent`.
fn find_port() -> Option<String> {
    for e in fs::read_dir("/sys/class/virtio-ports").ok()?.flatten() {
        let name = fs::read_to_string(e.path().join("name")).unwrap_or_default();
        if name.trim() == "agent" {
            return Some(format!("/dev/{}", e.file_name().to_string_lossy()));
        }
    }
    None
}

fn main() {
    let explicit = std::env::args().nth(1);
    let port = loop {
        match explicit.clone().or_else(find_port) {
            Some(p) if fs::metadata(&p).is_ok() => break p,
            _ => thread::sleep(Duration::from_millis(100)),
        }
    };
    let file = loop {
        match fs::OpenOptions::new().read(true).write(true).open(&port) {
            Ok(f) => break f,
            Err(e) => {
                eprintln!("drbd-guest-agent: open {port}: {e}");
                thread::sleep(Duration::from_secs(1));
            }
        }
    };
    let w: Writer = Arc::new(Mutex::new(file.try_clone().expect("dup port fd")));
    let jobs: Jobs = Arc::default();
    eprintln!("drbd-guest-agent: listening on {port}");
    let mut r = io::BufReader::with_capacity(1 << 16, file);
    loop {
        match read_frame(&mut r) {
            // The host side is not connected (or went away): wait for it.
            Ok(None) => thread::sleep(Duration::from_millis(100)),
            Ok(Some(p)) => match Request::decode(&p) {
                Ok(req) => handle(&w, &jobs, req),
                Err(e) => eprintln!("drbd-guest-agent: {e}"),
            },
            Err(e) => {
                eprintln!("drbd-guest-agent: read {port}: {e}");
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
