//! `wait-connect-volume`, `wait-connect-connection`, `wait-connect-resource`: wait until the
//! objects are connected (the connection `Connected` and its volumes replicating), polling the
//! kernel's state as `events2 --now` reports it.
//!
//! Timeouts are seconds, 0 = forever: `--wfc-timeout` normally, `--outdated-wfc-timeout`
//! when a peer disk of the waited-for objects is known to be Outdated. A connection that went
//! StandAlone (split brain, failed authentication, disconnected) will not connect by itself,
//! so the wait ends there unless `--wait-after-sb` asks to keep waiting. Exit codes: 0
//! connected, 5 timed out or given up, 10 unknown object.

use crate::cmds::Parsed;
use crate::errors::EXIT_FAILURE;
use crate::nl::{DrbdSocket, NlError};
use crate::run::load_model;
use events2::model::{Connection, Resource};
use genl_spec::generated::{ret, ConnState, DiskState, ReplState};
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
    /// `--wfc-timeout` (s, 0 = forever).
    pub wfc: u64,
    /// `--degr-wfc-timeout` (s); accepted, see the module text.
    pub degr_wfc: u64,
    /// `--outdated-wfc-timeout` (s, 0 = forever).
    pub outdated_wfc: u64,
    /// `--wait-after-sb`.
    pub wait_after_sb: bool,
}

impl WaitOpts {
    /// The timeout that applies now (`None` = forever).
    pub fn timeout(&self, peer_outdated: bool) -> Option<Duration> {
        let s = if peer_outdated && self.outdated_wfc > 0 {
            self.outdated_wfc
        } else {
            self.wfc
        };
        (s > 0).then(|| Duration::from_secs(s))
    }
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
        wfc: num("wfc-timeout")?,
        degr_wfc: num("degr-wfc-timeout")?,
        outdated_wfc: num("outdated-wfc-timeout")?,
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
    loop {
        let model = load_model(sock, Some(&p.objname))?;
        match progress(model.resources.get(&p.objname), scope) {
            Progress::Connected => return Ok(0),
            Progress::Unknown => {
                let what = match scope {
                    Scope::Resource => ret::text(ret::ERR_RES_NOT_KNOWN).to_string(),
                    _ => "No such connection or volume".to_string(),
                };
                eprintln!("{}: {what}", p.objname);
                return Ok(EXIT_FAILURE);
            }
            Progress::Waiting {
                peer_outdated,
                standalone,
            } => {
                if standalone && !opts.wait_after_sb {
                    eprintln!("{}: connection is StandAlone, not waiting", p.objname);
                    return Ok(EXIT_TIMEOUT);
                }
                if opts
                    .timeout(peer_outdated)
                    .is_some_and(|t| start.elapsed() >= t)
                {
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
    fn timeout_selection() {
        let o = WaitOpts {
            wfc: 10,
            degr_wfc: 0,
            outdated_wfc: 3,
            wait_after_sb: false,
        };
        assert_eq!(o.timeout(false), Some(Duration::from_secs(10)));
        assert_eq!(o.timeout(true), Some(Duration::from_secs(3)));
        let forever = WaitOpts::default();
        assert_eq!(forever.timeout(false), None);
        assert_eq!(forever.timeout(true), None);
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
                wfc: 5,
                degr_wfc: 7,
                outdated_wfc: 3,
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
