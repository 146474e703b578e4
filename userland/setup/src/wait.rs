//! `wait-connect-volume`, `wait-connect-connection`, `wait-connect-resource`: wait until the
//! objects are connected (the connection `Connected` and its volumes replicating), polling the
//! kernel's state as `events2 --now` reports it.
//!
//! Timeouts are seconds, 0 = forever. As drbdsetup 9 does, each peer device gets its own: the
//! kernel says (`GET_TIMEOUT_TYPE`) whether `--wfc-timeout`, `--degr-wfc-timeout` (this node
//! went down as a Primary without that peer) or `--outdated-wfc-timeout` (the peer's disk is
//! Outdated) applies, after the three were ordered (`proto::wfc`, with drbdsetup's notes on
//! stderr). The wait gives up once every peer device's timeout expired; without peer devices
//! there is nothing to wait for. A connection that went StandAlone (split brain, failed
//! authentication, disconnected) will not connect by itself, so the wait ends there unless
//! `--wait-after-sb` asks to keep waiting. Exit codes: 0 connected, 5 timed out or given up,
//! 10 unknown object, 20 the kernel could not say which timeout applies.

use crate::cmds::Parsed;
use crate::errors::EXIT_FAILURE;
use crate::nl::{DrbdSocket, NlError};
use crate::run::load_model;
use events2::model::{Connection, Resource};
use genl_spec::generated::{cmd, ret, timeout_parms, tla, ConnState, DiskState, ReplState};
use proto::wfc::{notes, Timeouts};
use std::time::{Duration, Instant};

/// Exit code when the objects did not connect in time.
pub const EXIT_TIMEOUT: i32 = 5;
/// How often the state is polled.
const POLL: Duration = Duration::from_millis(200);

/// What is waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One volume towards one peer.
    Volume(u32, u32),
    /// One peer.
    Connection(u32),
    /// Every peer of the resource.
    Resource,
}

/// State of the waited-for objects at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Connected and replicating.
    Connected,
    /// Not yet.
    Waiting {
        /// A peer disk is known to be Outdated (selects `--outdated-wfc-timeout`).
        peer_outdated: bool,
        /// A connection is StandAlone (it will not connect by itself).
        standalone: bool,
    },
    /// The resource, connection or volume does not exist.
    Unknown,
}

fn replicating(r: ReplState) -> bool {
    !matches!(r, ReplState::Off)
}

fn connection_progress(c: &Connection, volume: Option<u32>) -> (bool, bool, bool) {
    let mut ready = c.info.cstate == ConnState::Connected;
    let mut outdated = false;
    for (vnr, pd) in &c.peer_devices {
        if volume.is_some_and(|v| v != *vnr) {
            continue;
        }
        ready &= replicating(pd.info.repl);
        outdated |= pd.info.peer_disk == DiskState::Outdated;
    }
    (ready, outdated, c.info.cstate == ConnState::StandAlone)
}

/// Evaluates `scope` on the state of resource `r` (`None`: the resource does not exist).
pub fn progress(r: Option<&Resource>, scope: Scope) -> Progress {
    let Some(r) = r else {
        return Progress::Unknown;
    };
    let conns: Vec<(&Connection, Option<u32>)> = match scope {
        Scope::Volume(peer, vol) => match r.connections.get(&peer) {
            Some(c) if c.peer_devices.contains_key(&vol) => vec![(c, Some(vol))],
            _ => return Progress::Unknown,
        },
        Scope::Connection(peer) => match r.connections.get(&peer) {
            Some(c) => vec![(c, None)],
            None => return Progress::Unknown,
        },
        Scope::Resource => r.connections.values().map(|c| (c, None)).collect(),
    };
    let (mut ready, mut peer_outdated, mut standalone) = (true, false, false);
    for (c, vol) in conns {
        let (r, o, s) = connection_progress(c, vol);
        ready &= r;
        peer_outdated |= o;
        standalone |= s;
    }
    if ready {
        Progress::Connected
    } else {
        Progress::Waiting {
            peer_outdated,
            standalone,
        }
    }
}

/// The wait options of a command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitOpts {
    /// `--wfc-timeout`, `--degr-wfc-timeout`, `--outdated-wfc-timeout` (s, 0 = forever).
    pub timeouts: Timeouts,
    /// `--wait-after-sb`.
    pub wait_after_sb: bool,
}

/// The peer devices `scope` waits for in `r`, as (peer node id, volume).
pub fn peer_devices(r: &Resource, scope: Scope) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for (peer, c) in &r.connections {
        for vnr in c.peer_devices.keys() {
            let wanted = match scope {
                Scope::Volume(p, v) => *peer == p && *vnr == v,
                Scope::Connection(p) => *peer == p,
                Scope::Resource => true,
            };
            if wanted {
                out.push((*peer, *vnr));
            }
        }
    }
    out
}

/// How long to wait: `None` forever, else until the longest per-peer-device timeout (each
/// `Some(seconds)` with 0 meaning forever) expired.
pub fn overall_timeout(per_peer_device: &[u64]) -> Option<Duration> {
    if per_peer_device.contains(&0) {
        return None;
    }
    per_peer_device
        .iter()
        .max()
        .map(|s| Duration::from_secs(*s))
}

/// Asks the kernel which timeout applies to one peer device.
fn kernel_timeout_type(
    sock: &mut DrbdSocket,
    res: &str,
    peer: u32,
    volume: u32,
) -> Result<u32, String> {
    let ctx = crate::msg::Ctx {
        resource: Some(res.to_string()),
        peer_node_id: Some(peer),
        volume: Some(volume),
        ..Default::default()
    };
    let mut b = crate::msg::AttrsBuilder::default();
    b.context(&ctx)
        .map_err(|_| "could not build the request".to_string())?;
    let req = crate::msg::Request {
        cmd: cmd::ADM_GET_TIMEOUT_TYPE,
        minor: genl_spec::generated::MINOR_NONE,
        flags: 0,
        attrs: b.finish(),
    };
    let rep = match crate::run::transact(sock, &req) {
        Ok(Ok(rep)) => rep,
        Ok(Err(errno)) => return Err(format!("received netlink error reply: errno {errno}")),
        Err(e) => return Err(format!("{e}")),
    };
    if rep.ret_code != ret::NO_ERROR {
        return Err(ret::text(rep.ret_code).to_string());
    }
    genl_spec::nla::find(&rep.attrs, tla::TIMEOUT_PARMS)
        .ok()
        .flatten()
        .and_then(|set| genl_spec::nla::find(set.payload, timeout_parms::TIMEOUT_TYPE).ok()?)
        .and_then(|a| a.as_u32().ok())
        .ok_or_else(|| {
            "reply did not validate - do you need to upgrade your userland tools?".to_string()
        })
}

fn parse_opts(p: &Parsed) -> Result<WaitOpts, String> {
    let num = |name: &str| -> Result<u64, String> {
        match p.value(name) {
            None => Ok(0),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|&n| n <= 300_000)
                .ok_or_else(|| format!("{}: --{name}: {v} is not 0..300000", p.def.name)),
        }
    };
    Ok(WaitOpts {
        timeouts: Timeouts {
            wfc: num("wfc-timeout")?,
            degr: num("degr-wfc-timeout")?,
            outdated: num("outdated-wfc-timeout")?,
        },
        wait_after_sb: p.has("wait-after-sb"),
    })
}

/// Runs one of the wait-connect commands.
pub fn wait_connect(sock: &mut DrbdSocket, p: &Parsed) -> Result<i32, NlError> {
    let opts = match parse_opts(p) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return Ok(crate::errors::EXIT_USAGE);
        }
    };
    let peer = p.ctx.peer_node_id.unwrap_or(u32::MAX);
    let scope = match p.def.name {
        "wait-connect-volume" => Scope::Volume(peer, p.ctx.volume.unwrap_or(u32::MAX)),
        "wait-connect-connection" => Scope::Connection(peer),
        _ => Scope::Resource,
    };
    let start = Instant::now();
    let model = load_model(sock, Some(&p.objname))?;
    let Some(r) = model.resources.get(&p.objname) else {
        eprintln!("{}: {}", p.objname, ret::text(ret::ERR_RES_NOT_KNOWN));
        return Ok(EXIT_FAILURE);
    };
    if progress(Some(r), scope) == Progress::Unknown {
        eprintln!("{}: No such connection or volume", p.objname);
        return Ok(EXIT_FAILURE);
    }
    let targets = peer_devices(r, scope);
    // There is no point waiting for peers this node does not even know about.
    if targets.is_empty() {
        return Ok(0);
    }
    let (ordered, adjusted) = opts.timeouts.ordered();
    let mut per_peer_device = Vec::new();
    for (peer, vnr) in targets {
        for line in notes(adjusted, ordered).iter().flatten() {
            eprintln!("{line}");
        }
        match kernel_timeout_type(sock, &p.objname, peer, vnr) {
            Ok(ty) => per_peer_device.push(ordered.select(ty)),
            Err(desc) => {
                eprintln!("error determining which timeout to use: {desc}");
                return Ok(crate::errors::EXIT_USAGE);
            }
        }
    }
    let timeout = overall_timeout(&per_peer_device);
    loop {
        let model = load_model(sock, Some(&p.objname))?;
        match progress(model.resources.get(&p.objname), scope) {
            Progress::Connected => return Ok(0),
            Progress::Unknown => {
                eprintln!("{}: No such connection or volume", p.objname);
                return Ok(EXIT_FAILURE);
            }
            Progress::Waiting { standalone, .. } => {
                if standalone && !opts.wait_after_sb {
                    eprintln!("{}: connection is StandAlone, not waiting", p.objname);
                    return Ok(EXIT_TIMEOUT);
                }
                if timeout.is_some_and(|t| start.elapsed() >= t) {
                    return Ok(EXIT_TIMEOUT);
                }
            }
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overall_timeout_is_the_longest() {
        assert_eq!(overall_timeout(&[3, 10]), Some(Duration::from_secs(10)));
        assert_eq!(overall_timeout(&[3, 0]), None);
        assert_eq!(overall_timeout(&[]), None);
    }

    fn parsed(args: &[&str]) -> Result<WaitOpts, String> {
        let def = crate::cmds::find(args[0]).expect("command");
        let rest: Vec<String> = args[1..].iter().map(|s| s.to_string()).collect();
        let p = crate::cmds::parse(def, &rest).map_err(|e| e.msg)?;
        parse_opts(&p)
    }

    #[test]
    fn options_as_drbdadm_passes_them() {
        let o = parsed(&[
            "wait-connect-resource",
            "r0",
            "--wfc-timeout=5",
            "--degr-wfc-timeout",
            "7",
            "--outdated-wfc-timeout=3",
            "--wait-after-sb=yes",
        ])
        .expect("valid");
        assert_eq!(
            o,
            WaitOpts {
                timeouts: Timeouts {
                    wfc: 5,
                    degr: 7,
                    outdated: 3
                },
                wait_after_sb: true
            }
        );
        let o = parsed(&["wait-connect-connection", "r0", "1", "--wait-after-sb=no"]).expect("ok");
        assert!(!o.wait_after_sb);
        let o = parsed(&["wait-connect-volume", "r0", "1", "0", "--wait-after-sb"]).expect("ok");
        assert!(o.wait_after_sb);
        assert!(parsed(&["wait-connect-resource", "r0", "--wfc-timeout=x"]).is_err());
        assert!(parsed(&["wait-connect-resource", "r0", "--wfc-timeout=300001"]).is_err());
        assert!(parsed(&["wait-connect-resource", "r0", "--wait-after-sb=maybe"]).is_err());
        assert!(parsed(&["wait-connect-volume", "r0", "1"]).is_err());
    }

    #[test]
    fn unknown_resource() {
        assert_eq!(progress(None, Scope::Resource), Progress::Unknown);
        let r = Resource::default();
        assert_eq!(progress(Some(&r), Scope::Connection(1)), Progress::Unknown);
        // A resource without connections has nothing to wait for.
        assert_eq!(progress(Some(&r), Scope::Resource), Progress::Connected);
    }
}
