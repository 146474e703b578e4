//! The generic netlink transport: the only module that touches neli
//! (pinned to 0.7.5; its API changes between releases).
//!
//! neli resolves the family and the `events` multicast group (its
//! `NlRouter`) and provides the raw socket. Messages themselves are built and
//! parsed as bytes with genl-spec's codec (see [`crate::msg`]), so what we
//! send is exactly what the tests check.

use crate::msg::{parse_nlmsgs, NlMsg};
use genl_spec::generated::{FAMILY_NAME, MCAST_GROUP_EVENTS};
use neli::consts::socket::{Msg, NlFamily};
use neli::router::synchronous::NlRouter;
use neli::socket::NlSocket;
use neli::utils::Groups;
use std::io;

/// Errors of the transport.
#[derive(Debug)]
pub enum NlError {
    /// The `drbd` family is not registered (module not loaded) or the
    /// controller could not be asked.
    NoFamily(String),
    /// Socket error.
    Io(io::Error),
    /// The kernel answered with an NLMSG_ERROR (positive errno).
    Errno(i32),
    /// The kernel's answer could not be parsed.
    Malformed(&'static str),
}

impl std::fmt::Display for NlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NlError::NoFamily(s) => write!(f, "generic netlink family '{FAMILY_NAME}': {s}"),
            NlError::Io(e) => write!(f, "{e}"),
            NlError::Errno(e) => write!(f, "{}", io::Error::from_raw_os_error(*e)),
            NlError::Malformed(s) => write!(f, "malformed netlink message: {s}"),
        }
    }
}

impl From<io::Error> for NlError {
    fn from(e: io::Error) -> Self {
        NlError::Io(e)
    }
}

/// Family id and multicast group id of `drbd`.
#[derive(Debug, Clone, Copy)]
pub struct FamilyIds {
    /// Generic netlink family id (nlmsg_type).
    pub family: u16,
    /// Id of the `events` group, if the kernel has one.
    pub events_group: Option<u32>,
}

/// Asks the generic netlink controller for the `drbd` family.
pub fn resolve() -> Result<FamilyIds, NlError> {
    let (router, _mcast) = NlRouter::connect(NlFamily::Generic, None, Groups::empty())
        .map_err(|e| NlError::NoFamily(e.to_string()))?;
    let family = router
        .resolve_genl_family(FAMILY_NAME)
        .map_err(|_| NlError::NoFamily("not registered (is the drbd module loaded?)".into()))?;
    let events_group = router
        .resolve_nl_mcast_group(FAMILY_NAME, MCAST_GROUP_EVENTS)
        .ok();
    Ok(FamilyIds {
        family,
        events_group,
    })
}

/// A netlink socket talking to the `drbd` family.
pub struct DrbdSocket {
    sock: NlSocket,
    /// Family ids.
    pub ids: FamilyIds,
    seq: u32,
    pid: u32,
    buf: Vec<u8>,
}

/// One received message and whether it came from a multicast group.
#[derive(Debug, Clone)]
pub struct Received {
    /// The message.
    pub msg: NlMsg,
    /// Sent to a multicast group (an event), not as a reply to us.
    pub multicast: bool,
}

impl DrbdSocket {
    /// Resolves the family and opens a socket.
    pub fn connect() -> Result<Self, NlError> {
        let ids = resolve()?;
        let sock = NlSocket::connect(NlFamily::Generic, None, Groups::empty())?;
        let pid = sock.pid()?;
        // Large enough for a full page of dump records.
        let _ = sock.set_recv_buffer_size(1 << 20);
        Ok(DrbdSocket {
            sock,
            ids,
            seq: std::process::id().wrapping_mul(7919),
            pid,
            buf: vec![0; 1 << 16],
        })
    }

    /// Joins the `events` multicast group.
    pub fn join_events(&self) -> Result<(), NlError> {
        let g = self
            .ids
            .events_group
            .ok_or_else(|| NlError::NoFamily("no 'events' multicast group".into()))?;
        self.sock.add_mcast_membership(Groups::new_groups(&[g]))?;
        Ok(())
    }

    /// Next sequence number.
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Our netlink port id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends a complete netlink message (header included).
    pub fn send_raw(&self, bytes: &[u8]) -> Result<(), NlError> {
        self.sock.send(bytes, Msg::empty())?;
        Ok(())
    }

    /// Receives the messages of one datagram.
    pub fn recv(&mut self) -> Result<Vec<Received>, NlError> {
        let (n, groups) = self.sock.recv(&mut self.buf[..], Msg::empty())?;
        let data = self.buf.get(..n).ok_or(NlError::Malformed("length"))?;
        let msgs = parse_nlmsgs(data).map_err(NlError::Malformed)?;
        Ok(msgs
            .into_iter()
            .map(|msg| Received {
                multicast: !groups.is_empty() || (msg.pid == 0 && msg.is_data()),
                msg,
            })
            .collect())
    }

    /// Like [`DrbdSocket::recv`], but gives up (returns an empty list) at
    /// `deadline`.
    pub fn recv_until(&mut self, deadline: std::time::Instant) -> Result<Vec<Received>, NlError> {
        self.sock.nonblock()?;
        let res = loop {
            match self.recv() {
                Err(NlError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    if std::time::Instant::now() >= deadline {
                        break Ok(Vec::new());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                other => break other,
            }
        };
        self.sock.block()?;
        res
    }
}
