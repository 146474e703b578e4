//! Host side of the guest agent protocol (see `agent/src/proto.rs`): one unix-socket connection per
//! guest boot, a reader thread that routes replies to whoever waits for their id.

use crate::proto::{read_frame, write_frame, Reply, Request};
use std::collections::HashMap;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Pending = Arc<Mutex<Option<HashMap<u64, Sender<Reply>>>>>;

/// A connection to one guest's agent.
pub struct AgentClient {
    w: Mutex<UnixStream>,
    /// `None` once the connection is gone (then every waiter sees a disconnect).
    pending: Pending,
    next_id: AtomicU64,
    /// Why the connection ended, when it did.
    closed: Arc<Mutex<Option<String>>>,
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentError {
    /// The connection closed (the guest died, rebooted, or QEMU exited).
    Disconnected(String),
    Timeout,
}

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentError::Disconnected(why) => write!(f, "agent connection lost ({why})"),
            AgentError::Timeout => write!(f, "timed out waiting for the guest agent"),
        }
    }
}

/// A request in flight: wait for its reply.
pub struct Ticket {
    pub id: u64,
    rx: Receiver<Reply>,
    closed: Arc<Mutex<Option<String>>>,
}

impl Ticket {
    pub fn wait(&self, timeout: Option<Duration>) -> Result<Reply, AgentError> {
        let r = match timeout {
            Some(t) => self.rx.recv_timeout(t),
            None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match r {
            Ok(rep) => Ok(rep),
            Err(RecvTimeoutError::Timeout) => Err(AgentError::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(AgentError::Disconnected(
                self.closed
                    .lock()
                    .unwrap()
                    .clone()
                    .unwrap_or_else(|| "closed".into()),
            )),
        }
    }

    /// Non-blocking check.
    pub fn try_get(&self) -> Option<Result<Reply, AgentError>> {
        match self.rx.try_recv() {
            Ok(r) => Some(Ok(r)),
            Err(mpsc::TryRecvError::Empty) => None,
            Err(mpsc::TryRecvError::Disconnected) => Some(Err(AgentError::Disconnected(
                self.closed
                    .lock()
                    .unwrap()
                    .clone()
                    .unwrap_or_else(|| "closed".into()),
            ))),
        }
    }
}

impl AgentClient {
    /// Connects to QEMU's chardev socket (retrying until `timeout`).
    pub fn connect(path: &Path, timeout: Duration) -> io::Result<AgentClient> {
        let deadline = Instant::now() + timeout;
        let s = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let closed = Arc::new(Mutex::new(None));
        let mut r = io::BufReader::with_capacity(1 << 16, s.try_clone()?);
        {
            let (pending, closed) = (pending.clone(), closed.clone());
            std::thread::Builder::new()
                .name("agent-reader".into())
                .spawn(move || {
                    let why = loop {
                        match read_frame(&mut r) {
                            Ok(Some(p)) => match Reply::decode(&p) {
                                Ok(rep) => {
                                    let tx = pending
                                        .lock()
                                        .unwrap()
                                        .as_mut()
                                        .and_then(|m| m.remove(&rep.id()));
                                    // No waiter: a stale ping answer, or a dropped request.
                                    if let Some(tx) = tx {
                                        let _ = tx.send(rep);
                                    }
                                }
                                Err(e) => break format!("protocol error: {e}"),
                            },
                            Ok(None) => break "guest closed the connection".to_string(),
                            Err(e) => break format!("read error: {e}"),
                        }
                    };
                    *closed.lock().unwrap() = Some(why);
                    // Dropping the senders wakes every waiter.
                    pending.lock().unwrap().take();
                })?;
        }
        Ok(AgentClient {
            w: Mutex::new(s),
            pending,
            next_id: AtomicU64::new(1),
            closed,
        })
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a request whose id was taken from `next_id`; returns the ticket for its reply.
    pub fn send(&self, req: Request) -> Result<Ticket, AgentError> {
        let id = match &req {
            Request::Run { id, .. }
            | Request::Peek { id, .. }
            | Request::Kill { id, .. }
            | Request::Ping { id } => *id,
        };
        let (tx, rx) = mpsc::channel();
        {
            let mut p = self.pending.lock().unwrap();
            match p.as_mut() {
                Some(m) => {
                    m.insert(id, tx);
                }
                None => return Err(self.disconnected()),
            }
        }
        let mut w = self.w.lock().unwrap();
        if let Err(e) = write_frame(&mut *w, &req.encode()) {
            if let Some(m) = self.pending.lock().unwrap().as_mut() {
                m.remove(&id);
            }
            return Err(AgentError::Disconnected(format!("write: {e}")));
        }
        Ok(Ticket {
            id,
            rx,
            closed: self.closed.clone(),
        })
    }

    /// Forget a request (its late reply is dropped).
    pub fn forget(&self, id: u64) {
        if let Some(m) = self.pending.lock().unwrap().as_mut() {
            m.remove(&id);
        }
    }

    fn disconnected(&self) -> AgentError {
        AgentError::Disconnected(
            self.closed
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| "closed".into()),
        )
    }

    pub fn is_closed(&self) -> bool {
        self.closed.lock().unwrap().is_some()
    }

    /// Pings until the agent answers, `alive()` turns false, or `timeout` passes. Returns the
    /// guest's hostname.
    pub fn wait_ready(
        &self,
        timeout: Duration,
        mut alive: impl FnMut() -> Result<(), String>,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            alive()?;
            let id = self.next_id();
            let t = self.send(Request::Ping { id }).map_err(|e| e.to_string())?;
            match t.wait(Some(Duration::from_millis(500))) {
                Ok(Reply::Pong { info, .. }) => return Ok(String::from_utf8_lossy(&info).into()),
                Ok(other) => return Err(format!("unexpected reply to ping: {other:?}")),
                Err(AgentError::Timeout) => self.forget(id),
                Err(e) => return Err(e.to_string()),
            }
            if Instant::now() > deadline {
                return Err(format!("guest agent did not answer within {timeout:?}"));
            }
        }
    }
}

impl Drop for AgentClient {
    fn drop(&mut self) {
        let _ = self.w.lock().unwrap().shutdown(std::net::Shutdown::Both);
    }
}
