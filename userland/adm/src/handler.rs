//! `drbdadm <handler> <resource>`: runs the command configured for that handler in the
//! resource's `handlers {}` section with `/bin/sh -c`, and exits with its status. This is what
//! the kernel's user-mode helper calls (`/sbin/drbdadm split-brain r0`). An unconfigured
//! handler does nothing and succeeds, as with drbdadm.
//!
//! The environment gets drbdadm's variables on top of the kernel's: `DRBD_CONF`,
//! `DRBD_RESOURCE`, `DRBD_MY_NODE_ID`, `DRBD_NODE_ID_<n>=<host>`, and `DRBD_MINOR`,
//! `DRBD_VOLUME`, `DRBD_LL_DISK` (space-separated lists when no single volume is selected).
//! Variables the kernel already set for a single device are kept.

use std::io::Write;
use std::process::Command;

use crate::cmds::shell_escape;
use crate::model::{get, Config};
use crate::resolve::Local;

/// Whether `cmd` is a handler name drbdadm dispatches.
pub fn is_handler(cmd: &str) -> bool {
    crate::opts::HANDLER_KEYS.contains(&cmd)
}

/// The `handlers {}` key to look up for command `cmd` (`outdate-peer` is the 8.x name of
/// `fence-peer`; the lookup uses the 9 name only, so a config with only `outdate-peer "…"`
/// runs nothing, as drbdadm 9 does).
pub fn handler_key(cmd: &str) -> &str {
    if cmd == "outdate-peer" {
        "fence-peer"
    } else {
        cmd
    }
}

/// The configured command of handler `key` for the resource of `local`, if any.
pub fn configured<'a>(cfg: &'a Config, local: &Local, key: &str) -> Option<&'a str> {
    let r = cfg.resources.get(local.res_idx)?;
    get(&r.sec.handlers, key)
        .map(|o| o.val.as_str())
        .filter(|v| !v.is_empty())
}

/// drbdadm's variables for a handler of `local` (`vol`: the one selected volume, if any).
/// `kernel_set` tells whether the kernel already put a variable into the environment.
pub fn environment(
    cfg: &Config,
    local: &Local,
    vol: Option<u32>,
    kernel_set: &dyn Fn(&str) -> bool,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("DRBD_CONF".to_string(), cfg.abs_file.clone()),
        ("DRBD_RESOURCE".to_string(), local.name.clone()),
        ("DRBD_MY_NODE_ID".to_string(), local.node_id.to_string()),
    ];
    let me = cfg
        .resources
        .get(local.res_idx)
        .and_then(|r| r.hosts.get(local.me))
        .map(|h| h.name())
        .unwrap_or_default();
    let mut ids: Vec<(u32, String)> = vec![(local.node_id, me)];
    ids.extend(local.peers.iter().map(|p| (p.node_id, p.name.clone())));
    ids.sort();
    for (id, name) in ids {
        env.push((format!("DRBD_NODE_ID_{id}"), name));
    }
    let vols: Vec<_> = local
        .volumes
        .iter()
        .filter(|v| vol.is_none_or(|n| n == v.vnr))
        .collect();
    let join = |f: &dyn Fn(&crate::resolve::LocalVolume) -> String| {
        vols.iter().map(|v| f(v)).collect::<Vec<_>>().join(" ")
    };
    let device = [
        ("DRBD_MINOR", join(&|v| v.minor.to_string())),
        ("DRBD_VOLUME", join(&|v| v.vnr.to_string())),
        (
            "DRBD_LL_DISK",
            join(&|v| v.disk.clone().unwrap_or_else(|| "none".into())),
        ),
    ];
    for (k, v) in device {
        if !kernel_set(k) {
            env.push((k.to_string(), v));
        }
    }
    env
}

/// Runs (or with `-d` prints) the handler `cmd` for each target; returns the exit status of
/// the last command that ran (0 if none is configured).
pub fn dispatch(
    cfg: &Config,
    targets: &[(Local, Option<u32>)],
    cmd: &str,
    dry: bool,
    out: &mut dyn Write,
) -> i32 {
    if cmd == "outdate-peer" {
        eprintln!("drbdadm: 'outdate-peer' is deprecated, use 'fence-peer'");
    }
    let key = handler_key(cmd);
    let mut rc = 0;
    for (local, vol) in targets {
        let Some(command) = configured(cfg, local, key) else {
            continue;
        };
        if dry {
            let _ = writeln!(out, "/bin/sh -c {}", shell_escape(command));
            continue;
        }
        let _ = out.flush();
        let env = environment(cfg, local, *vol, &|k| std::env::var_os(k).is_some());
        let status = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .envs(env)
            .status();
        rc = match status {
            Ok(s) => s.code().unwrap_or(20),
            Err(e) => {
                eprintln!("drbdadm: /bin/sh: {e}");
                20
            }
        };
    }
    rc
}
