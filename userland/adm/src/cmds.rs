//! Turning drbdadm commands into drbdsetup/drbdmeta calls.

use crate::model::{Opt, Opts};
use crate::resolve::{Local, LocalVolume, Peer};

/// Which helper a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// drbdsetup.
    Setup,
    /// drbdmeta.
    Meta,
}

/// One helper call.
#[derive(Debug, Clone)]
pub struct Call {
    /// drbdadm's stage (calls run stage by stage across resources).
    pub stage: u8,
    /// Position of the resource in the command line order.
    pub res_order: usize,
    /// Resource name (messages).
    pub res: String,
    /// Helper.
    pub tool: Tool,
    /// Arguments after the program name.
    pub args: Vec<String>,
    /// Run this instead when the call fails with an exit code other than 11 or 17 (invalidate,
    /// outdate, dstate fall back to drbdmeta when the kernel does not know the device).
    pub fallback: Option<Box<Call>>,
}

/// What a drbdadm command selected on one resource.
#[derive(Debug, Clone, Default)]
pub struct Sel {
    /// Only this volume.
    pub vol: Option<u32>,
    /// Only this peer (host name).
    pub peer: Option<String>,
}

/// Stages of `up`/`adjust` (calls run stage by stage; gaps leave room for adjust's steps).
pub mod stage {
    /// new-resource / resource-options.
    pub const RESOURCE: u8 = 10;
    /// adjust: detach and del-minor of volumes that change or go away.
    pub const DISK_DOWN: u8 = 15;
    /// new-minor.
    pub const MINOR: u8 = 20;
    /// adjust: disconnect.
    pub const NET_DOWN: u8 = 25;
    /// adjust: del-peer.
    pub const DEL_PEER: u8 = 26;
    /// adjust: del-path.
    pub const DEL_PATH: u8 = 27;
    /// new-peer.
    pub const PEER: u8 = 30;
    /// new-path.
    pub const PATH: u8 = 40;
    /// adjust: net-options.
    pub const NET_OPTS: u8 = 45;
    /// peer-device-options.
    pub const PEER_DEVICE: u8 = 50;
    /// adjust: disk-options.
    pub const DISK_OPTS: u8 = 55;
    /// apply-al + attach.
    pub const ATTACH: u8 = 60;
    /// connect.
    pub const CONNECT: u8 = 70;
}

/// `--key=value` for each option.
pub fn opt_args(opts: &Opts) -> Vec<String> {
    opts.iter()
        .map(|o: &Opt| format!("--{}={}", o.key, o.val))
        .collect()
}

/// Builds the calls of one resource.
pub struct Builder<'a> {
    /// The resource as this host runs it.
    pub l: &'a Local,
    /// Selection.
    pub sel: &'a Sel,
    /// Position of the resource in the command line.
    pub order: usize,
    /// Options passed through to the main helper call.
    pub pass: &'a [String],
    /// Calls so far.
    pub out: Vec<Call>,
    /// Messages for volumes without a disk (command requires one).
    pub missing_disk: bool,
}

impl<'a> Builder<'a> {
    /// A builder for `l`.
    pub fn new(l: &'a Local, sel: &'a Sel, order: usize, pass: &'a [String]) -> Self {
        Builder {
            l,
            sel,
            order,
            pass,
            out: Vec::new(),
            missing_disk: false,
        }
    }

    pub(crate) fn push(&mut self, stage: u8, tool: Tool, args: Vec<String>) {
        self.out.push(Call {
            stage,
            res_order: self.order,
            res: self.l.name.clone(),
            tool,
            args,
            fallback: None,
        });
    }

    pub(crate) fn vols(&self) -> Vec<&'a LocalVolume> {
        let l: &'a Local = self.l;
        l.volumes
            .iter()
            .filter(|v| self.sel.vol.is_none_or(|n| n == v.vnr))
            .collect()
    }

    pub(crate) fn peers(&self) -> Vec<&'a Peer> {
        let l: &'a Local = self.l;
        l.peers
            .iter()
            .filter(|p| self.sel.peer.as_ref().is_none_or(|n| *n == p.name))
            .collect()
    }

    fn s(v: impl ToString) -> String {
        v.to_string()
    }

    fn meta_args(v: &LocalVolume) -> Option<Vec<String>> {
        let disk = v.disk.as_ref()?;
        let md = v.meta.as_ref()?;
        Some(vec![
            Self::s(v.minor),
            "v09".into(),
            md.dev(disk).to_string(),
            md.meta_index(),
        ])
    }

    pub(crate) fn with_pass(&self, mut args: Vec<String>) -> Vec<String> {
        args.extend(self.pass.iter().cloned());
        args
    }

    /// `drbdadm up` (and adjust against an empty kernel state when `adjust`).
    pub fn up(&mut self, adjust: bool, skip_disk: bool, skip_net: bool) {
        let l = self.l;
        let mut a = vec!["new-resource".into(), l.name.clone(), Self::s(l.node_id)];
        a.extend(opt_args(&l.res_opts));
        self.push(stage::RESOURCE, Tool::Setup, a);
        for v in self.vols() {
            let mut a = vec![
                "new-minor".into(),
                l.name.clone(),
                Self::s(v.minor),
                Self::s(v.vnr),
            ];
            a.extend(opt_args(&v.dev_opts));
            if v.disk.is_none() {
                a.push("--diskless".into());
            }
            self.push(stage::MINOR, Tool::Setup, a);
        }
        if !skip_net {
            self.peers_up(adjust);
        }
        if !skip_disk {
            for v in self.vols() {
                self.attach_volume(v);
            }
        }
        if !skip_net {
            for p in self.peers() {
                let a = self.with_pass(vec!["connect".into(), l.name.clone(), Self::s(p.node_id)]);
                self.push(stage::CONNECT, Tool::Setup, a);
            }
        }
    }

    fn peers_up(&mut self, adjust: bool) {
        for p in self.peers() {
            self.peer_up(p, adjust);
        }
    }

    /// new-peer, new-path and peer-device-options of one peer (calls are ordered by stage, so
    /// emitting peer by peer gives the same sequence as stage by stage).
    pub(crate) fn peer_up(&mut self, p: &Peer, adjust: bool) {
        let l = self.l;
        let mut a = vec!["new-peer".into(), l.name.clone(), Self::s(p.node_id)];
        a.extend(opt_args(&p.net));
        self.push(stage::PEER, Tool::Setup, a);
        for (mine, theirs) in &p.paths {
            let a = vec![
                "new-path".into(),
                l.name.clone(),
                Self::s(p.node_id),
                mine.setup_arg(),
                theirs.setup_arg(),
            ];
            self.push(stage::PATH, Tool::Setup, a);
        }
        for (vnr, o) in &p.pd {
            if self.sel.vol.is_some_and(|n| n != *vnr) || o.is_empty() {
                continue;
            }
            self.peer_device_options(p, *vnr, o, adjust);
        }
    }

    /// `peer-device-options RES PEER VOL [--set-defaults] OPTS`.
    pub(crate) fn peer_device_options(&mut self, p: &Peer, vnr: u32, o: &Opts, set_defaults: bool) {
        let mut a = vec![
            "peer-device-options".into(),
            self.l.name.clone(),
            Self::s(p.node_id),
            Self::s(vnr),
        ];
        if set_defaults {
            a.push("--set-defaults".into());
        }
        a.extend(opt_args(o));
        self.push(stage::PEER_DEVICE, Tool::Setup, a);
    }

    pub(crate) fn attach_volume(&mut self, v: &LocalVolume) {
        let Some(mut m) = Self::meta_args(v) else {
            return;
        };
        m.push("apply-al".into());
        self.push(stage::ATTACH, Tool::Meta, m);
        let (Some(disk), Some(md)) = (&v.disk, &v.meta) else {
            return;
        };
        let mut a = vec![
            "attach".into(),
            Self::s(v.minor),
            disk.clone(),
            md.dev(disk).to_string(),
            md.attach_index(),
        ];
        a.extend(opt_args(&v.disk_opts));
        self.push(stage::ATTACH, Tool::Setup, a);
    }

    /// Volumes with a disk; flags the others.
    fn disk_vols(&mut self) -> Vec<&'a LocalVolume> {
        let vols = self.vols();
        if vols.iter().any(|v| v.disk.is_none()) {
            self.missing_disk = true;
        }
        vols.into_iter().filter(|v| v.disk.is_some()).collect()
    }

    /// `drbdadm attach`.
    pub fn attach(&mut self) {
        for v in self.disk_vols() {
            self.attach_volume(v);
        }
    }

    /// Per-volume drbdsetup call on the minor (`detach`, `new-current-uuid`, `resize`).
    pub fn per_minor(&mut self, verb: &str, need_disk: bool) {
        let vols = if need_disk {
            self.disk_vols()
        } else {
            self.vols()
        };
        for v in vols {
            let a = self.with_pass(vec![verb.into(), Self::s(v.minor)]);
            self.push(stage::RESOURCE, Tool::Setup, a);
            if verb == "resize" {
                self.push(
                    stage::RESOURCE,
                    Tool::Setup,
                    vec!["check-resize".into(), Self::s(v.minor)],
                );
            }
        }
    }

    /// drbdsetup call with a drbdmeta fallback (`invalidate`, `outdate`, `dstate`).
    pub fn with_meta_fallback(&mut self, verb: &str, need_disk: bool) {
        let vols = if need_disk {
            self.disk_vols()
        } else {
            self.vols()
        };
        for v in vols {
            let a = self.with_pass(vec![verb.into(), Self::s(v.minor)]);
            let fb = Self::meta_args(v).map(|mut m| {
                m.push(verb.into());
                Box::new(Call {
                    stage: stage::RESOURCE,
                    res_order: self.order,
                    res: self.l.name.clone(),
                    tool: Tool::Meta,
                    args: m,
                    fallback: None,
                })
            });
            self.out.push(Call {
                stage: stage::RESOURCE,
                res_order: self.order,
                res: self.l.name.clone(),
                tool: Tool::Setup,
                args: a,
                fallback: fb,
            });
        }
    }

    /// Resource-scoped call (`primary`, `secondary`, `down`, `role`, `status`, `wait-connect-resource`).
    pub fn per_resource(&mut self, verb: &str) {
        let a = self.with_pass(vec![verb.into(), self.l.name.clone()]);
        self.push(stage::RESOURCE, Tool::Setup, a);
    }

    /// `wait-connect-resource` or, with a peer selected, `wait-connect-connection`, with the
    /// resource's `startup {}` timeouts.
    pub fn wait_connect(&mut self) {
        let startup = opt_args(&self.l.startup);
        let mut objects = vec![vec![self.l.name.clone()]];
        let verb = if self.sel.peer.is_some() {
            objects = self
                .peers()
                .iter()
                .map(|p| vec![self.l.name.clone(), Self::s(p.node_id)])
                .collect();
            "wait-connect-connection"
        } else {
            "wait-connect-resource"
        };
        for obj in objects {
            let mut a = vec![verb.to_string()];
            a.extend(obj);
            a.extend(startup.iter().cloned());
            let a = self.with_pass(a);
            self.push(stage::RESOURCE, Tool::Setup, a);
        }
    }

    /// Connection-scoped call (`connect`, `disconnect`, `cstate`, `wait-connect-connection`).
    pub fn per_peer(&mut self, verb: &str) {
        for p in self.peers() {
            let a = self.with_pass(vec![verb.into(), self.l.name.clone(), Self::s(p.node_id)]);
            self.push(stage::RESOURCE, Tool::Setup, a);
        }
    }

    /// Peer-device-scoped call, volumes outer (`verify`, `pause-sync`, `invalidate-remote`, ...).
    pub fn per_peer_device(&mut self, verb: &str) {
        for v in self.vols() {
            for p in self.peers() {
                let a = self.with_pass(vec![
                    verb.into(),
                    self.l.name.clone(),
                    Self::s(p.node_id),
                    Self::s(v.vnr),
                ]);
                self.push(stage::RESOURCE, Tool::Setup, a);
            }
        }
    }

    /// `drbdadm create-md`: max peers from the config unless given.
    pub fn create_md(&mut self) {
        let max_peers = self
            .pass
            .iter()
            .find_map(|p| p.strip_prefix("--max-peers=").map(str::to_string))
            .unwrap_or_else(|| self.l.n_hosts.saturating_sub(1).max(1).to_string());
        let rest: Vec<String> = self
            .pass
            .iter()
            .filter(|p| !p.starts_with("--max-peers="))
            .cloned()
            .collect();
        for v in self.disk_vols() {
            let Some(mut m) = Self::meta_args(v) else {
                continue;
            };
            m.push("create-md".into());
            m.push(max_peers.clone());
            m.extend(rest.iter().cloned());
            self.push(stage::RESOURCE, Tool::Meta, m);
        }
    }

    /// Plain drbdmeta command on every volume with a disk (`dump-md`, `wipe-md`, `apply-al`, ...).
    pub fn meta(&mut self, verb: &str) {
        for v in self.disk_vols() {
            let Some(mut m) = Self::meta_args(v) else {
                continue;
            };
            m.push(verb.into());
            m.extend(self.pass.iter().cloned());
            self.push(stage::RESOURCE, Tool::Meta, m);
        }
    }
}

/// Escapes an argument for the dry-run output the way drbdadm does (backslash before shell
/// metacharacters).
pub fn shell_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        let safe = c.is_ascii_alphanumeric() || "%+@=:/.-_".contains(c) || !c.is_ascii();
        if !safe {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_matches_drbdadm() {
        assert_eq!(
            shell_escape("ipv6:[fd00::1]:7790"),
            "ipv6:\\[fd00::1\\]:7790"
        );
        assert_eq!(shell_escape("a b,c"), "a\\ b\\,c");
        assert_eq!(shell_escape("--_name=x%y+z@w"), "--_name=x%y+z@w");
    }
}
