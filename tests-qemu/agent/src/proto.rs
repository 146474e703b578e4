//! Wire protocol between the test host and `drbd-guest-agent` (shared source: the harness includes
//! this file with `#[path]`, so both ends always agree).
//!
//! The transport is a byte stream (a virtio-serial port in the guest, a unix socket on the host).
//! Every message is one frame:
//!
//! ```text
//! frame   = len:u32le payload[len]
//! payload = kind:u8 fields...
//! u64     = 8 bytes little endian, u32/i32 = 4 bytes little endian
//! bytes   = len:u32le data[len]          (binary safe)
//! ```
//!
//! Host to agent:
//! - `Run  {id, timeout_ms (0 = none), uid, gid (u32::MAX = inherit), cmd, stdin (None = /dev/null)}`:
//!   runs `/bin/sh -c cmd` in its own process group, concurrently with everything else; answered by
//!   `Done {id}` when it ends. Long-running background jobs are simply runs whose `Done` comes later.
//! - `Peek {id, job}`: the output a running (or finished) job `job` has produced so far -> `Output {id}`.
//! - `Kill {id, job, signal}`: signal the job's whole process group -> `Ack {id, found}`.
//! - `Ping {id}` -> `Pong {id, info}` (used to wait for boot).
//!
//! Every request carries a host-chosen `id`; every reply names the id it answers.

use std::io::{self, Read, Write};

/// Refuse frames larger than this (protects both ends from a corrupt length).
pub const MAX_FRAME: usize = 256 << 20;

/// How a command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Exited normally with this code.
    Exited(i32),
    /// Killed by this signal (not by the agent's timeout).
    Signaled(i32),
    /// The agent's timeout expired; the process group was killed with SIGKILL.
    TimedOut,
    /// `/bin/sh` could not be started (reason in stderr).
    SpawnFailed,
}

/// A request from the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Run {
        id: u64,
        timeout_ms: u64,
        uid: u32,
        gid: u32,
        cmd: Vec<u8>,
        stdin: Option<Vec<u8>>,
    },
    Peek {
        id: u64,
        job: u64,
    },
    Kill {
        id: u64,
        job: u64,
        signal: u32,
    },
    Ping {
        id: u64,
    },
}

/// A reply from the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Done {
        id: u64,
        status: Status,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    Output {
        id: u64,
        /// false if no such job is known.
        found: bool,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    Ack {
        id: u64,
        found: bool,
    },
    Pong {
        id: u64,
        info: Vec<u8>,
    },
}

impl Reply {
    pub fn id(&self) -> u64 {
        match self {
            Reply::Done { id, .. }
            | Reply::Output { id, .. }
            | Reply::Ack { id, .. }
            | Reply::Pong { id, .. } => *id,
        }
    }
}

const K_RUN: u8 = 0x01;
const K_PEEK: u8 = 0x02;
const K_KILL: u8 = 0x03;
const K_PING: u8 = 0x04;
const K_DONE: u8 = 0x81;
const K_OUTPUT: u8 = 0x82;
const K_ACK: u8 = 0x83;
const K_PONG: u8 = 0x84;

/// Payload builder.
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(self, b: &[u8]) -> Self {
        let mut s = self.u32(b.len() as u32);
        s.0.extend_from_slice(b);
        s
    }
}

/// Payload reader; every accessor fails cleanly on truncated input.
struct Dec<'a>(&'a [u8]);

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("bad frame: {what}"))
}

impl<'a> Dec<'a> {
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(bad("truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn bytes(&mut self) -> io::Result<Vec<u8>> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn end(&self) -> io::Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(bad("trailing bytes"))
        }
    }
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Request::Run {
                id,
                timeout_ms,
                uid,
                gid,
                cmd,
                stdin,
            } => {
                let e = Enc::default()
                    .u8(K_RUN)
                    .u64(*id)
                    .u64(*timeout_ms)
                    .u32(*uid)
                    .u32(*gid)
                    .bytes(cmd);
                match stdin {
                    None => e.u8(0),
                    Some(s) => e.u8(1).bytes(s),
                }
            }
            Request::Peek { id, job } => Enc::default().u8(K_PEEK).u64(*id).u64(*job),
            Request::Kill { id, job, signal } => {
                Enc::default().u8(K_KILL).u64(*id).u64(*job).u32(*signal)
            }
            Request::Ping { id } => Enc::default().u8(K_PING).u64(*id),
        }
        .0
    }

    pub fn decode(p: &[u8]) -> io::Result<Request> {
        let mut d = Dec(p);
        let r = match d.u8()? {
            K_RUN => Request::Run {
                id: d.u64()?,
                timeout_ms: d.u64()?,
                uid: d.u32()?,
                gid: d.u32()?,
                cmd: d.bytes()?,
                stdin: match d.u8()? {
                    0 => None,
                    1 => Some(d.bytes()?),
                    _ => return Err(bad("stdin flag")),
                },
            },
            K_PEEK => Request::Peek {
                id: d.u64()?,
                job: d.u64()?,
            },
            K_KILL => Request::Kill {
                id: d.u64()?,
                job: d.u64()?,
                signal: d.u32()?,
            },
            K_PING => Request::Ping { id: d.u64()? },
            k => return Err(bad(&format!("unknown request kind {k:#x}"))),
        };
        d.end()?;
        Ok(r)
    }
}

fn status_enc(e: Enc, s: &Status) -> Enc {
    match s {
        Status::Exited(c) => e.u8(0).u32(*c as u32),
        Status::Signaled(c) => e.u8(1).u32(*c as u32),
        Status::TimedOut => e.u8(2).u32(0),
        Status::SpawnFailed => e.u8(3).u32(0),
    }
}

fn status_dec(d: &mut Dec) -> io::Result<Status> {
    let k = d.u8()?;
    let c = d.u32()? as i32;
    Ok(match k {
        0 => Status::Exited(c),
        1 => Status::Signaled(c),
        2 => Status::TimedOut,
        3 => Status::SpawnFailed,
        _ => return Err(bad("status kind")),
    })
}

impl Reply {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Reply::Done {
                id,
                status,
                stdout,
                stderr,
            } => status_enc(Enc::default().u8(K_DONE).u64(*id), status)
                .bytes(stdout)
                .bytes(stderr),
            Reply::Output {
                id,
                found,
                stdout,
                stderr,
            } => Enc::default()
                .u8(K_OUTPUT)
                .u64(*id)
                .u8(*found as u8)
                .bytes(stdout)
                .bytes(stderr),
            Reply::Ack { id, found } => Enc::default().u8(K_ACK).u64(*id).u8(*found as u8),
            Reply::Pong { id, info } => Enc::default().u8(K_PONG).u64(*id).bytes(info),
        }
        .0
    }

    pub fn decode(p: &[u8]) -> io::Result<Reply> {
        let mut d = Dec(p);
        let r = match d.u8()? {
            K_DONE => Reply::Done {
                id: d.u64()?,
                status: status_dec(&mut d)?,
                stdout: d.bytes()?,
                stderr: d.bytes()?,
            },
            K_OUTPUT => Reply::Output {
                id: d.u64()?,
                found: d.u8()? != 0,
                stdout: d.bytes()?,
                stderr: d.bytes()?,
            },
            K_ACK => Reply::Ack {
                id: d.u64()?,
                found: d.u8()? != 0,
            },
            K_PONG => Reply::Pong {
                id: d.u64()?,
                info: d.bytes()?,
            },
            k => return Err(bad(&format!("unknown reply kind {k:#x}"))),
        };
        d.end()?;
        Ok(r)
    }
}

/// Writes one frame (length prefix + payload) with a single `write_all` of the whole buffer.
pub fn write_frame(w: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(4 + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(payload);
    w.write_all(&buf)?;
    w.flush()
}

/// Reads one frame; `Ok(None)` on a clean end of stream before the first byte of a frame.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(bad("frame too large"));
    }
    let mut p = vec![0u8; len];
    r.read_exact(&mut p)?;
    Ok(Some(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_requests() -> Vec<Request> {
        vec![
            Request::Run {
                id: 1,
                timeout_ms: 5000,
                uid: u32::MAX,
                gid: u32::MAX,
                cmd: b"echo hi; exit 3".to_vec(),
                stdin: None,
            },
            Request::Run {
                id: u64::MAX,
                timeout_ms: 0,
                uid: 65534,
                gid: 65534,
                cmd: vec![0, 1, 2, 255],
                stdin: Some(vec![0xff; 70_000]),
            },
            Request::Peek { id: 7, job: 1 },
            Request::Kill {
                id: 8,
                job: 1,
                signal: 9,
            },
            Request::Ping { id: 9 },
        ]
    }

    fn all_replies() -> Vec<Reply> {
        vec![
            Reply::Done {
                id: 1,
                status: Status::Exited(-1),
                stdout: b"out\n".to_vec(),
                stderr: vec![],
            },
            Reply::Done {
                id: 2,
                status: Status::Signaled(9),
                stdout: vec![0; 3],
                stderr: vec![1; 5],
            },
            Reply::Done {
                id: 3,
                status: Status::TimedOut,
                stdout: vec![],
                stderr: vec![],
            },
            Reply::Done {
                id: 4,
                status: Status::SpawnFailed,
                stdout: vec![],
                stderr: b"no sh".to_vec(),
            },
            Reply::Output {
                id: 5,
                found: true,
                stdout: b"partial".to_vec(),
                stderr: vec![],
            },
            Reply::Ack {
                id: 6,
                found: false,
            },
            Reply::Pong {
                id: 7,
                info: b"node0".to_vec(),
            },
        ]
    }

    #[test]
    fn requests_round_trip() {
        for r in all_requests() {
            assert_eq!(Request::decode(&r.encode()).unwrap(), r);
        }
    }

    #[test]
    fn replies_round_trip() {
        for r in all_replies() {
            assert_eq!(Reply::decode(&r.encode()).unwrap(), r);
        }
    }

    #[test]
    fn frames_round_trip_back_to_back() {
        let mut stream = Vec::new();
        for r in all_requests() {
            write_frame(&mut stream, &r.encode()).unwrap();
        }
        let mut cur = io::Cursor::new(stream);
        for r in all_requests() {
            let p = read_frame(&mut cur).unwrap().unwrap();
            assert_eq!(Request::decode(&p).unwrap(), r);
        }
        assert!(read_frame(&mut cur).unwrap().is_none());
    }

    #[test]
    fn truncated_and_garbage_inputs_are_errors() {
        for r in all_requests() {
            let p = r.encode();
            for cut in 0..p.len() {
                assert!(Request::decode(&p[..cut]).is_err(), "{r:?} cut at {cut}");
            }
            let mut long = p.clone();
            long.push(0);
            assert!(Request::decode(&long).is_err());
        }
        for r in all_replies() {
            let p = r.encode();
            for cut in 0..p.len() {
                assert!(Reply::decode(&p[..cut]).is_err());
            }
        }
        assert!(Request::decode(&[0x7f]).is_err());
        assert!(Reply::decode(&[0x01]).is_err());
        // A frame with a truncated body or an absurd length.
        let mut cur = io::Cursor::new(vec![10, 0, 0, 0, 1, 2]);
        assert!(read_frame(&mut cur).is_err());
        let mut cur = io::Cursor::new(vec![0xff, 0xff, 0xff, 0xff]);
        assert!(read_frame(&mut cur).is_err());
        let mut cur = io::Cursor::new(vec![1, 0]);
        assert!(read_frame(&mut cur).is_err());
    }
}
