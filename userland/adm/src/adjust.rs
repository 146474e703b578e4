//! `drbdadm adjust`: read the running configuration (`drbdsetup show RES`), compare it with the
//! config file and emit only the calls that remove the difference.
//!
//! `drbdsetup show` prints drbd.conf syntax plus private keywords (`_this_host`, `_peer_node_id`,
//! `_remote_host`, `_cstate`); it is tokenized by the config lexer and read as a tree of
//! statements and blocks. Options compare by meaning: a missing key stands for DRBD's default
//! and numbers compare in the option's unit (`7M` = `7168k`).

use std::process::{Command, Stdio};
use std::rc::Rc;

use crate::cli::Opts;
use crate::cmds::{opt_args, stage, Builder, Tool};
use crate::lex::{tokenize, Tok, Token};
use crate::model::Opts as ConfOpts;
use crate::opts::{canonical, default_canonical, member, Class};
use crate::resolve::{LocalVolume, Peer};

/// One `key value;` of a running option section (value without quotes or unit comment).
pub type RunOpts = Vec<(String, String)>;

/// A volume of this host as the kernel has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunVolume {
    /// Volume number.
    pub vnr: u32,
    /// Minor.
    pub minor: u32,
    /// Backing disk; None when diskless.
    pub disk: Option<String>,
    /// Meta-data device as written (`internal`, a path, or `path [idx]`).
    pub meta: Option<String>,
    /// `disk {}` options.
    pub disk_opts: RunOpts,
}

/// A connection as the kernel has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunConn {
    /// `_peer_node_id`.
    pub peer: u32,
    /// Paths as drbdsetup arguments (`ipv4:10.0.0.1:7789`), (mine, peer's).
    pub paths: Vec<(String, String)>,
    /// `_cstate` (newer drbdsetup versions print it).
    pub cstate: Option<String>,
    /// `net {}` options.
    pub net: RunOpts,
    /// `volume N { disk {} }`: peer-device options.
    pub volumes: Vec<(u32, RunOpts)>,
}

/// The running state of one resource as `drbdsetup show` prints it.
#[derive(Debug, Clone, Default)]
pub struct Running {
    /// The raw text.
    pub text: String,
    /// Resource name.
    pub name: String,
    /// `_this_host { node-id N; }`.
    pub node_id: Option<u32>,
    /// `options {}`.
    pub options: RunOpts,
    /// This host's volumes.
    pub volumes: Vec<RunVolume>,
    /// Connections.
    pub conns: Vec<RunConn>,
}

/// A statement (`words;`) or a block (`words { items }`).
#[derive(Debug, Clone)]
enum Item {
    Stmt(Vec<String>),
    Block(Vec<String>, Vec<Item>),
}

fn tree(toks: &[Token], i: &mut usize, top: bool) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut words: Vec<String> = Vec::new();
    loop {
        let t = toks.get(*i).ok_or("unexpected end")?;
        *i += 1;
        match &t.tok {
            Tok::Word(w) | Tok::Quoted(w) => words.push(w.clone()),
            Tok::Semi => {
                if !words.is_empty() {
                    items.push(Item::Stmt(std::mem::take(&mut words)));
                }
            }
            Tok::Open => {
                let body = tree(toks, i, false)?;
                items.push(Item::Block(std::mem::take(&mut words), body));
            }
            Tok::Close if !top && words.is_empty() => return Ok(items),
            Tok::Eof if top && words.is_empty() => return Ok(items),
            other => return Err(format!("{}: unexpected '{}'", t.pos, Tok::shown(other))),
        }
    }
}

fn opts_of(items: &[Item]) -> RunOpts {
    items
        .iter()
        .filter_map(|it| match it {
            Item::Stmt(w) if w.len() >= 2 => Some((w[0].clone(), w[1..].join(" "))),
            Item::Stmt(w) if w.len() == 1 => Some((w[0].clone(), "yes".into())),
            _ => None,
        })
        .collect()
}

fn block<'a>(items: &'a [Item], name: &str) -> Option<&'a [Item]> {
    items.iter().find_map(|it| match it {
        Item::Block(w, b) if w.len() == 1 && w[0] == name => Some(b.as_slice()),
        _ => None,
    })
}

fn stmt<'a>(items: &'a [Item], name: &str) -> Option<&'a [String]> {
    items.iter().find_map(|it| match it {
        Item::Stmt(w) if w.first().is_some_and(|k| k == name) => Some(&w[1..]),
        _ => None,
    })
}

fn volumes_of(items: &[Item]) -> impl Iterator<Item = (u32, &[Item])> {
    items.iter().filter_map(|it| match it {
        Item::Block(w, b) if w.len() == 2 && w[0] == "volume" => {
            w[1].parse().ok().map(|n| (n, b.as_slice()))
        }
        _ => None,
    })
}

/// `ipv4 10.0.0.1:7789` (or `10.0.0.1:7789`) as the drbdsetup argument `ipv4:10.0.0.1:7789`.
fn addr_arg(words: &[String]) -> Option<String> {
    match words {
        [af, a] => Some(format!("{af}:{a}")),
        [a] => Some(format!("ipv4:{a}")),
        _ => None,
    }
}

/// Parses `drbdsetup show` output; returns the resource `name` if it is there.
pub fn parse_show(text: &str, name: &str) -> Result<Option<Running>, String> {
    let file: Rc<str> = Rc::from("drbdsetup show");
    let toks = tokenize(&file, text).map_err(|e| format!("{}: {}", e.pos, e.msg))?;
    let mut i = 0;
    let top = tree(&toks, &mut i, true)?;
    for it in &top {
        let Item::Block(w, body) = it else { continue };
        if w.len() != 2 || w[0] != "resource" || w[1] != name {
            continue;
        }
        let mut r = Running {
            text: text.to_string(),
            name: name.to_string(),
            ..Running::default()
        };
        if let Some(o) = block(body, "options") {
            r.options = opts_of(o);
        }
        if let Some(h) = block(body, "_this_host") {
            r.node_id = stmt(h, "node-id").and_then(|w| w.first()?.parse().ok());
            for (vnr, v) in volumes_of(h) {
                let minor = match stmt(v, "device") {
                    Some([m, n]) if m == "minor" => n.parse().ok(),
                    Some([path]) => path.trim_start_matches("/dev/drbd").parse().ok(),
                    Some([_, m, n]) if m == "minor" => n.parse().ok(),
                    _ => None,
                }
                .ok_or_else(|| format!("drbdsetup show: volume {vnr} has no device minor"))?;
                let disk = stmt(v, "disk")
                    .and_then(|w| w.first().cloned())
                    .filter(|d| d != "none");
                let meta = stmt(v, "meta-disk").map(|w| w.concat());
                r.volumes.push(RunVolume {
                    vnr,
                    minor,
                    meta: disk.as_ref().and(meta),
                    disk,
                    disk_opts: block(v, "disk").map(opts_of).unwrap_or_default(),
                });
            }
        }
        for it in body {
            let Item::Block(w, c) = it else { continue };
            if w.len() != 1 || w[0] != "connection" {
                continue;
            }
            let peer = stmt(c, "_peer_node_id")
                .and_then(|w| w.first()?.parse().ok())
                .ok_or("drbdsetup show: connection without _peer_node_id")?;
            let mut conn = RunConn {
                peer,
                cstate: stmt(c, "_cstate").and_then(|w| w.first().cloned()),
                net: block(c, "net").map(opts_of).unwrap_or_default(),
                ..RunConn::default()
            };
            for it in c {
                if let Item::Block(w, p) = it {
                    if w.len() == 1 && w[0] == "path" {
                        let mine = stmt(p, "_this_host").and_then(addr_arg);
                        let theirs = stmt(p, "_remote_host").and_then(addr_arg);
                        if let (Some(a), Some(b)) = (mine, theirs) {
                            conn.paths.push((a, b));
                        }
                    }
                }
            }
            for (vnr, v) in volumes_of(c) {
                conn.volumes
                    .push((vnr, block(v, "disk").map(opts_of).unwrap_or_default()));
            }
            r.conns.push(conn);
        }
        return Ok(Some(r));
    }
    Ok(None)
}

/// Reads the running state: the file named by `FAKE_DRBDSETUP_SHOW` (as drbdadm's test hook),
/// else the output of `drbdsetup show RES`, which also runs under `-d`. `Ok(None)` means the
/// kernel does not have the resource (empty output or drbdsetup failed).
pub fn running_state(opts: &Opts, res: &str) -> Result<Option<Running>, String> {
    let text = match std::env::var("FAKE_DRBDSETUP_SHOW") {
        Ok(path) => std::fs::read_to_string(&path)
            .map_err(|e| format!("Failed to open FAKE_DRBDSETUP_SHOW {path}: {e}"))?,
        Err(_) => {
            let Some(prog) = crate::cli::find_helper(opts.setup.as_deref(), "drbdsetup") else {
                return Ok(None);
            };
            let out = Command::new(prog)
                .args(["show", res])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output();
            match out {
                Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
                _ => return Ok(None),
            }
        }
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    parse_show(&text, res)
}

/// Whether the configured options `conf` and the running `run` differ for `class`: a key
/// missing on one side stands for DRBD's default, values compare by [`canonical`] form.
pub fn opts_differ(class: Class, conf: &ConfOpts, run: &RunOpts) -> bool {
    let mut keys: Vec<&str> = conf.iter().map(|o| o.key.as_str()).collect();
    keys.extend(run.iter().map(|(k, _)| k.as_str()));
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter().any(|k| {
        let Some(m) = member(class, k) else {
            return false;
        };
        let want = conf
            .iter()
            .find(|o| o.key == k)
            .map(|o| canonical(m, &o.val))
            .or_else(|| default_canonical(m));
        let have = run
            .iter()
            .find(|(rk, _)| rk == k)
            .map(|(_, v)| canonical(m, v))
            .or_else(|| default_canonical(m));
        want != have
    })
}

fn conf_meta(v: &LocalVolume) -> Option<String> {
    v.disk.as_ref()?;
    Some(match v.meta.as_ref()? {
        crate::model::MetaDisk::Internal => "internal".into(),
        crate::model::MetaDisk::Flex(d) => d.clone(),
        crate::model::MetaDisk::Indexed(d, i) => format!("{d}[{i}]"),
    })
}

impl Builder<'_> {
    fn detach_diskless(&mut self, minor: u32) {
        self.push(
            stage::DISK_DOWN,
            Tool::Setup,
            vec!["detach".into(), "--diskless".into(), minor.to_string()],
        );
    }

    fn connect_peer(&mut self, p: &Peer) {
        let a = self.with_pass(vec![
            "connect".into(),
            self.l.name.clone(),
            p.node_id.to_string(),
        ]);
        self.push(stage::CONNECT, Tool::Setup, a);
    }

    fn new_volume(&mut self, v: &LocalVolume, skip_disk: bool, skip_net: bool, known: &[u32]) {
        let l = self.l;
        let mut a = vec![
            "new-minor".into(),
            l.name.clone(),
            v.minor.to_string(),
            v.vnr.to_string(),
        ];
        a.extend(opt_args(&v.dev_opts));
        if v.disk.is_none() {
            a.push("--diskless".into());
        }
        self.push(stage::MINOR, Tool::Setup, a);
        if !skip_net {
            // peers that are created anew get their peer-device options from peer_up
            for p in self.peers() {
                if !known.contains(&p.node_id) {
                    continue;
                }
                if let Some((_, o)) = p.pd.iter().find(|(n, o)| *n == v.vnr && !o.is_empty()) {
                    self.peer_device_options(p, v.vnr, o, true);
                }
            }
        }
        if !skip_disk {
            self.attach_volume(v);
        }
    }
}

/// Emits the calls that turn `run` into the configured resource.
pub fn adjust(b: &mut Builder<'_>, run: &Running, skip_disk: bool, skip_net: bool) {
    let l = b.l;
    if opts_differ(Class::Res, &l.res_opts, &run.options) {
        let mut a = vec![
            "resource-options".into(),
            l.name.clone(),
            "--set-defaults".into(),
        ];
        a.extend(opt_args(&l.res_opts));
        b.push(stage::RESOURCE, Tool::Setup, a);
    }
    let known: Vec<u32> = run.conns.iter().map(|c| c.peer).collect();
    // volumes: same number and minor = the same device, else remove and create
    let vols = b.vols();
    for rv in &run.volumes {
        if b.sel.vol.is_some_and(|n| n != rv.vnr) {
            continue;
        }
        if vols.iter().any(|v| v.vnr == rv.vnr && v.minor == rv.minor) {
            continue;
        }
        if rv.disk.is_some() {
            b.detach_diskless(rv.minor);
        }
        b.push(
            stage::DISK_DOWN,
            Tool::Setup,
            vec!["del-minor".into(), rv.minor.to_string()],
        );
    }
    for v in &vols {
        let Some(rv) = run
            .volumes
            .iter()
            .find(|rv| rv.vnr == v.vnr && rv.minor == v.minor)
        else {
            b.new_volume(v, skip_disk, skip_net, &known);
            continue;
        };
        if skip_disk {
            continue;
        }
        let same_disk = rv.disk == v.disk && rv.meta == conf_meta(v);
        match (&rv.disk, &v.disk) {
            (None, None) => {}
            (None, Some(_)) => b.attach_volume(v),
            (Some(_), None) => b.detach_diskless(rv.minor),
            (Some(_), Some(_)) if !same_disk => {
                b.detach_diskless(rv.minor);
                b.attach_volume(v);
            }
            (Some(_), Some(_)) => {
                if opts_differ(Class::Disk, &v.disk_opts, &rv.disk_opts) {
                    let mut a = vec![
                        "disk-options".into(),
                        v.minor.to_string(),
                        "--set-defaults".into(),
                    ];
                    a.extend(opt_args(&v.disk_opts));
                    b.push(stage::DISK_OPTS, Tool::Setup, a);
                }
            }
        }
    }
    if skip_net {
        return;
    }
    if b.sel.peer.is_none() {
        for rc in &run.conns {
            if !l.peers.iter().any(|p| p.node_id == rc.peer) {
                b.push(
                    stage::DEL_PEER,
                    Tool::Setup,
                    vec!["del-peer".into(), l.name.clone(), rc.peer.to_string()],
                );
            }
        }
    }
    for p in b.peers() {
        let Some(rc) = run.conns.iter().find(|c| c.peer == p.node_id) else {
            b.peer_up(p, true);
            b.connect_peer(p);
            continue;
        };
        let want: Vec<(String, String)> = p
            .paths
            .iter()
            .map(|(a, z)| (a.setup_arg(), z.setup_arg()))
            .collect();
        let mut reconnect = rc.cstate.as_deref() == Some("StandAlone");
        let mut paths_differ = want.len() != rc.paths.len();
        paths_differ |= want.iter().any(|w| !rc.paths.contains(w));
        if paths_differ {
            b.push(
                stage::NET_DOWN,
                Tool::Setup,
                vec!["disconnect".into(), l.name.clone(), p.node_id.to_string()],
            );
            for (mine, theirs) in rc.paths.iter().filter(|x| !want.contains(x)) {
                b.push(
                    stage::DEL_PATH,
                    Tool::Setup,
                    vec![
                        "del-path".into(),
                        l.name.clone(),
                        p.node_id.to_string(),
                        mine.clone(),
                        theirs.clone(),
                    ],
                );
            }
            for (mine, theirs) in want.iter().filter(|x| !rc.paths.contains(x)) {
                b.push(
                    stage::PATH,
                    Tool::Setup,
                    vec![
                        "new-path".into(),
                        l.name.clone(),
                        p.node_id.to_string(),
                        mine.clone(),
                        theirs.clone(),
                    ],
                );
            }
            reconnect = true;
        }
        if opts_differ(Class::Net, &p.net, &rc.net) {
            let mut a = vec![
                "net-options".into(),
                l.name.clone(),
                p.node_id.to_string(),
                "--set-defaults".into(),
            ];
            a.extend(opt_args(&p.net));
            b.push(stage::NET_OPTS, Tool::Setup, a);
        }
        for (vnr, o) in &p.pd {
            if b.sel.vol.is_some_and(|n| n != *vnr) {
                continue;
            }
            // a volume that is created anew got its options from new_volume
            let Some(rv) = run.volumes.iter().find(|rv| rv.vnr == *vnr) else {
                continue;
            };
            if !vols.iter().any(|v| v.vnr == rv.vnr && v.minor == rv.minor) {
                continue;
            }
            let none = RunOpts::new();
            let running = rc
                .volumes
                .iter()
                .find(|(n, _)| n == vnr)
                .map(|(_, o)| o)
                .unwrap_or(&none);
            if opts_differ(Class::PeerDevice, o, running) {
                b.peer_device_options(p, *vnr, o, true);
            }
        }
        if reconnect {
            b.connect_peer(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW: &str = r#"resource dvolume {
    options {
        auto-promote    	no;
    }
    _this_host {
        node-id			0;
        volume 0 {
            device			minor 1;
            disk			"/dev/vdb";
            meta-disk			internal;
            disk {
                al-extents      	100;
            }
        }
    }
    connection {
        _peer_node_id 1;
        path {
            _this_host ipv4 10.0.0.1:7789;
            _remote_host ipv4 10.0.0.2:7789;
        }
        _cstate Connected;
        net {
            _name           	"node1";
            ping-timeout    	7; # 1/10 seconds
        }
        volume 0 {
            disk {
                resync-rate     	7168k; # bytes/second
            }
        }
    }
}
"#;

    #[test]
    fn parses_show_output() {
        let r = parse_show(SHOW, "dvolume").unwrap().unwrap();
        assert_eq!(r.node_id, Some(0));
        assert_eq!(r.options, vec![("auto-promote".into(), "no".into())]);
        assert_eq!(
            r.volumes,
            vec![RunVolume {
                vnr: 0,
                minor: 1,
                disk: Some("/dev/vdb".into()),
                meta: Some("internal".into()),
                disk_opts: vec![("al-extents".into(), "100".into())],
            }]
        );
        let c = &r.conns[0];
        assert_eq!(c.peer, 1);
        assert_eq!(
            c.paths,
            vec![("ipv4:10.0.0.1:7789".into(), "ipv4:10.0.0.2:7789".into())]
        );
        assert_eq!(c.cstate.as_deref(), Some("Connected"));
        assert_eq!(
            c.net,
            vec![
                ("_name".into(), "node1".into()),
                ("ping-timeout".into(), "7".into())
            ]
        );
        assert_eq!(
            c.volumes,
            vec![(0, vec![("resync-rate".into(), "7168k".into())])]
        );
        assert!(parse_show(SHOW, "other").unwrap().is_none());
        assert!(parse_show("resource x {", "x").is_err());
    }

    #[test]
    fn indexed_and_external_meta_disks() {
        let text = "resource r { _this_host { node-id 0; volume 0 { device minor 10; disk \"/dev/vg/r1\"; meta-disk \"/dev/vg/md\" [ 0 ]; } volume 1 { device minor 11; disk none; } } }";
        let r = parse_show(text, "r").unwrap().unwrap();
        assert_eq!(r.volumes[0].meta.as_deref(), Some("/dev/vg/md[0]"));
        assert_eq!(r.volumes[1].disk, None);
        assert_eq!(r.volumes[1].meta, None);
    }
}
