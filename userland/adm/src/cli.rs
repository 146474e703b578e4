//! Command line, object selection and execution.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmds::{shell_escape, Builder, Call, Sel, Tool};
use crate::model::Config;
use crate::parse::{parse_config, ConfError};
use crate::resolve::{self, Local};
use crate::{adjust, dump};

/// drbdadm's exit code for configuration errors.
pub const EXIT_CONFIG: i32 = 10;
/// drbdadm's exit code when a helper cannot be found.
pub const EXIT_NO_HELPER: i32 = 20;

/// The version we claim for compatibility checks (drbd.ocf, drbd-reactor).
pub const ADM_VERSION: &str = "9.22.0";
/// `DRBDADM_VERSION_CODE` of [`ADM_VERSION`].
pub const ADM_VERSION_CODE: &str = "0x091600";

/// Global options.
#[derive(Debug, Default, Clone)]
pub struct Opts {
    /// `-d`.
    pub dry: bool,
    /// `-v`.
    pub verbose: bool,
    /// `-c FILE`.
    pub config: Option<String>,
    /// `-s DRBDSETUP`.
    pub setup: Option<String>,
    /// `-m DRBDMETA`.
    pub meta: Option<String>,
    /// The local host name.
    pub host: String,
}

/// Options each command accepts (long names; `=` marks a value).
fn allowed(cmd: &str) -> &'static [&'static str] {
    match cmd {
        "primary" | "secondary" => &["force"],
        "connect" => &["discard-my-data", "tentative"],
        "up" => &["discard-my-data", "tentative"],
        "adjust" | "adjust-with-progress" => {
            &["discard-my-data", "tentative", "skip-disk", "skip-net"]
        }
        "disconnect" | "down" => &["force"],
        "detach" => &["force", "diskless"],
        "create-md" => &[
            "force",
            "max-peers=",
            "al-stripes=",
            "al-stripe-size-kB=",
            "peer-max-bio-size=",
        ],
        "new-current-uuid" => &["clear-bitmap", "force-resync"],
        "invalidate" | "invalidate-remote" => &["reset-bitmap=", "sync-from-peer-node-id="],
        "verify" => &["start=", "stop="],
        "resize" => &[
            "size=",
            "assume-peer-has-space",
            "assume-clean",
            "al-stripes=",
            "al-stripe-size-kB=",
        ],
        "wait-connect" | "wait-con-int" | "wait-sync" => &[
            "wfc-timeout=",
            "degr-wfc-timeout=",
            "outdated-wfc-timeout=",
            "wait-after-sb",
        ],
        "status" => &["verbose", "statistics", "json", "color="],
        _ => &[],
    }
}

fn option_ok(cmd: &str, opt: &str) -> bool {
    let name = opt.trim_start_matches('-');
    let (key, has_val) = match name.split_once('=') {
        Some((k, _)) => (k, true),
        None => (name, false),
    };
    allowed(cmd).iter().any(|a| match a.strip_suffix('=') {
        Some(k) => k == key && has_val,
        None => *a == key && !has_val,
    })
}

/// The local host name: `__DRBD_NODE__` or the kernel's node name.
pub fn local_host() -> (String, bool) {
    if let Ok(n) = std::env::var("__DRBD_NODE__") {
        if !n.is_empty() {
            return (n, true);
        }
    }
    let n = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    (n, false)
}

/// Local IP addresses (IPv4 from /proc/net/fib_trie, IPv6 from /proc/net/if_inet6).
pub fn local_ips() -> Vec<String> {
    let mut ips = Vec::new();
    if let Ok(t) = std::fs::read_to_string("/proc/net/fib_trie") {
        let lines: Vec<&str> = t.lines().collect();
        for w in lines.windows(2) {
            if w[1].contains("/32 host LOCAL") {
                if let Some(ip) = w[0].trim().strip_prefix("|-- ") {
                    if !ips.iter().any(|x| x == ip) {
                        ips.push(ip.to_string());
                    }
                }
            }
        }
    }
    if let Ok(t) = std::fs::read_to_string("/proc/net/if_inet6") {
        for l in t.lines() {
            if let Some(hex) = l.split_whitespace().next() {
                if hex.len() == 32 {
                    let mut b = [0u8; 16];
                    for (i, x) in b.iter_mut().enumerate() {
                        *x = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0);
                    }
                    ips.push(std::net::Ipv6Addr::from(b).to_string());
                }
            }
        }
    }
    ips
}

fn kernel_version() -> Option<String> {
    if let Ok(v) = std::env::var("DRBD_DRIVER_VERSION_OVERRIDE") {
        return Some(v);
    }
    if let Ok(t) = std::fs::read_to_string("/proc/drbd") {
        for l in t.lines() {
            if let Some(rest) = l.strip_prefix("version:") {
                return rest.split_whitespace().next().map(str::to_string);
            }
        }
    }
    let out = Command::new("modinfo")
        .args(["-F", "version", "drbd"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!v.is_empty()).then_some(v)
}

/// `0x09020c` for `9.2.12`.
pub fn version_code(v: &str) -> String {
    let mut parts = v
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().unwrap_or(0));
    let (a, b, c) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    format!("0x{:02x}{:02x}{:02x}", a & 0xff, b & 0xff, c & 0xff)
}

fn print_version(out: &mut dyn Write) {
    let kv = kernel_version().unwrap_or_else(|| "0".into());
    let code = if kv == "0" {
        "0x000000".to_string()
    } else {
        version_code(&kv)
    };
    let tag = shell_escape(&format!(
        "GIT-hash: drbd-rs {} build by drbd-rs",
        env!("CARGO_PKG_VERSION")
    ));
    let _ = write!(
        out,
        "DRBDADM_BUILDTAG={tag}\nDRBDADM_API_VERSION=2\nDRBD_KERNEL_VERSION_CODE={code}\nDRBD_KERNEL_VERSION={kv}\nDRBDADM_VERSION_CODE={ADM_VERSION_CODE}\nDRBDADM_VERSION={ADM_VERSION}\n"
    );
}

fn usage(cmd: Option<&str>) -> String {
    let mut s = String::new();
    match cmd {
        Some(c) => s.push_str(&format!(
            "USAGE: drbdadm {c} [OPTION...] {{all|RESOURCE...}}\n"
        )),
        None => s.push_str("USAGE: drbdadm COMMAND [OPTION...] {all|RESOURCE...}\n"),
    }
    s.push_str(
        "GENERAL OPTIONS:\n  --dry-run, -d\n  --verbose, -v\n  --config-file=..., -c ...\n  --drbdsetup=..., -s ...\n  --drbdmeta=..., -m ...\n  --version, -V\n  --help, -h\n",
    );
    s.push_str(&format!("Version: {ADM_VERSION} (api:2) drbd-rs\n"));
    s
}

const COMMANDS: &[&str] = &[
    "attach",
    "detach",
    "connect",
    "disconnect",
    "up",
    "down",
    "primary",
    "secondary",
    "invalidate",
    "invalidate-remote",
    "outdate",
    "resize",
    "verify",
    "pause-sync",
    "resume-sync",
    "adjust",
    "adjust-with-progress",
    "wait-connect",
    "wait-con-int",
    "wait-sync",
    "role",
    "cstate",
    "dstate",
    "status",
    "dump",
    "create-md",
    "new-current-uuid",
    "sh-nop",
    "sh-resources",
    "sh-resource",
    "sh-dev",
    "sh-minor",
    "sh-ll-dev",
    "sh-md-dev",
    "sh-md-idx",
    "sh-ip",
    "sh-udev",
    "sh-mod-parms",
    "sh-list-config-file",
    "dump-md",
    "wipe-md",
    "apply-al",
    "show-gi",
    "get-gi",
    "new-resource",
    "new-minor",
    "del-minor",
    "check-resize",
];

/// Parsed command line.
#[derive(Debug, Default, Clone)]
pub struct Cli {
    /// Global options.
    pub opts: Opts,
    /// Command.
    pub cmd: Option<String>,
    /// Options for the helper call.
    pub cmd_opts: Vec<String>,
    /// Objects.
    pub objects: Vec<String>,
    /// `-V` / `--version`.
    pub version: bool,
    /// `-h`.
    pub help: bool,
}

/// Parses argv (without the program name). Errors are (message, exit code).
pub fn parse_cli(args: &[String]) -> Result<Cli, (String, i32)> {
    let mut cli = Cli::default();
    let mut passthrough: Vec<String> = Vec::new();
    let mut after_dashdash = false;
    let mut i = 0;
    let take = |i: &mut usize, inline: Option<&str>, name: &str| -> Result<String, (String, i32)> {
        if let Some(v) = inline {
            return Ok(v.to_string());
        }
        *i += 1;
        args.get(*i).cloned().ok_or((
            format!("drbdadm: option '{name}' requires an argument\ntry 'drbdadm help'"),
            1,
        ))
    };
    while i < args.len() {
        let a = &args[i];
        if a == "--" && !after_dashdash {
            after_dashdash = true;
        } else if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            match name {
                "dry-run" => cli.opts.dry = true,
                "verbose" if cli.cmd.as_deref() != Some("status") => cli.opts.verbose = true,
                "config-file" => cli.opts.config = Some(take(&mut i, inline, a)?),
                "drbdsetup" => cli.opts.setup = Some(take(&mut i, inline, a)?),
                "drbdmeta" => cli.opts.meta = Some(take(&mut i, inline, a)?),
                "version" => cli.version = true,
                "help" => cli.help = true,
                "stacked" => {
                    return Err(("drbdadm: stacked resources are not supported".into(), 1))
                }
                "config-to-test" | "config-to-exclude" | "drbd-proxy-ctl" | "sh-varname"
                | "setup-option" => {
                    take(&mut i, inline, a)?;
                }
                _ => {
                    if cli.cmd.is_none() && after_dashdash {
                        passthrough.push(a.clone());
                    } else {
                        cli.cmd_opts.push(a.clone());
                    }
                }
            }
        } else if a.len() > 1 && a.starts_with('-') {
            let flags: Vec<char> = a[1..].chars().collect();
            let mut k = 0;
            while k < flags.len() {
                let rest: String = flags[k + 1..].iter().collect();
                let inline = (!rest.is_empty()).then_some(rest.as_str());
                match flags[k] {
                    'd' => cli.opts.dry = true,
                    'v' => cli.opts.verbose = true,
                    'V' => cli.version = true,
                    'h' => cli.help = true,
                    'c' | 's' | 'm' | 't' | 'E' | 'p' | 'n' | 'W' => {
                        let v = take(&mut i, inline, a)?;
                        match flags[k] {
                            'c' => cli.opts.config = Some(v),
                            's' => cli.opts.setup = Some(v),
                            'm' => cli.opts.meta = Some(v),
                            _ => {}
                        }
                        break;
                    }
                    'S' => return Err(("drbdadm: stacked resources are not supported".into(), 1)),
                    'f' if cli.cmd.is_some() => cli.cmd_opts.push("--force".into()),
                    _ => {
                        return Err((
                            format!(
                                "drbdadm: invalid option -- '{}'\ntry 'drbdadm help'",
                                flags[k]
                            ),
                            1,
                        ))
                    }
                }
                k += 1;
            }
        } else if cli.cmd.is_none() {
            cli.cmd = Some(a.clone());
        } else {
            cli.objects.push(a.clone());
        }
        i += 1;
    }
    if let Some(cmd) = cli.cmd.clone() {
        for o in &cli.cmd_opts {
            if !option_ok(&cmd, o) {
                return Err((
                    format!("drbdadm: unrecognized option '{o}'\ntry 'drbdadm help'"),
                    1,
                ));
            }
        }
        // options typed after `--` go to the helper when it knows them; the 8.x spelling of
        // `primary --force` is translated
        for p in passthrough {
            let p = if p == "--overwrite-data-of-peer" && cmd == "primary" {
                "--force".to_string()
            } else {
                p
            };
            if option_ok(&cmd, &p) && !cli.cmd_opts.contains(&p) {
                cli.cmd_opts.push(p);
            }
        }
    }
    Ok(cli)
}

/// Where the config file is.
fn config_path(cli: &Cli) -> String {
    if let Some(c) = &cli.opts.config {
        return c.clone();
    }
    for c in ["/etc/drbd-90.conf", "/etc/drbd.conf"] {
        if Path::new(c).exists() {
            return c.to_string();
        }
    }
    "/etc/drbd.conf".into()
}

fn print_conf_errors(errs: &[ConfError]) {
    for e in errs {
        eprintln!("{e}");
    }
}

/// One selected object.
struct Target {
    local: Local,
    sel: Sel,
}

pub(crate) fn find_helper(explicit: Option<&str>, name: &str) -> Option<PathBuf> {
    if let Some(e) = explicit {
        return Some(PathBuf::from(e));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| "/sbin:/usr/sbin:/bin:/usr/bin".into());
    for d in path.split(':').chain(["/sbin", "/usr/sbin"]) {
        let p = Path::new(d).join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

fn shown_program(opts: &Opts, tool: Tool) -> String {
    match tool {
        Tool::Setup => opts.setup.clone().unwrap_or_else(|| "drbdsetup".into()),
        Tool::Meta => opts.meta.clone().unwrap_or_else(|| "drbdmeta".into()),
    }
}

fn line_of(opts: &Opts, c: &Call) -> String {
    let mut s = shown_program(opts, c.tool);
    for a in &c.args {
        s.push(' ');
        s.push_str(&shell_escape(a));
    }
    s
}

/// Runs (or prints) the calls stage by stage. `staged` commands report failure as exit code 1.
pub fn execute(opts: &Opts, mut calls: Vec<Call>, staged: bool, out: &mut dyn Write) -> i32 {
    calls.sort_by_key(|c| (c.stage, c.res_order));
    if opts.dry {
        for c in &calls {
            let _ = writeln!(out, "{}", line_of(opts, c));
            if let Some(f) = &c.fallback {
                let _ = writeln!(out, "{}", line_of(opts, f));
            }
        }
        return 0;
    }
    let mut failed: Vec<usize> = Vec::new();
    let mut rc = 0;
    let mut last_stage_reported: Option<(u8, usize)> = None;
    for c in &calls {
        if failed.contains(&c.res_order) {
            if last_stage_reported.is_some_and(|(s, r)| s == c.stage && r == c.res_order) {
                let verb = c.args.first().cloned().unwrap_or_default();
                eprintln!("drbdadm: {verb} {}: skipped due to earlier error", c.res);
                last_stage_reported = None;
            }
            continue;
        }
        let code = run_call(
            opts,
            c,
            out,
            !matches!(
                c.args.first().map(String::as_str),
                Some("invalidate" | "outdate" | "dstate")
            ),
        );
        let code = match code {
            Ok(0) => 0,
            Ok(code) => {
                if let Some(fb) = &c.fallback {
                    if code == 11 || code == 17 {
                        code
                    } else {
                        match run_call(opts, fb, out, true) {
                            Ok(x) => x,
                            Err(e) => return e,
                        }
                    }
                } else {
                    code
                }
            }
            Err(e) => return e,
        };
        if code != 0 {
            failed.push(c.res_order);
            last_stage_reported = Some((c.stage, c.res_order));
            rc = if staged { 1 } else { code };
        }
    }
    rc
}

fn run_call(opts: &Opts, c: &Call, out: &mut dyn Write, report: bool) -> Result<i32, i32> {
    let (explicit, name) = match c.tool {
        Tool::Setup => (opts.setup.as_deref(), "drbdsetup"),
        Tool::Meta => (opts.meta.as_deref(), "drbdmeta"),
    };
    let Some(prog) = find_helper(explicit, name) else {
        eprintln!("Can not find command (drbdsetup/drbdmeta)");
        return Err(EXIT_NO_HELPER);
    };
    if opts.verbose {
        let _ = writeln!(out, "{}", line_of(opts, c));
    }
    let _ = out.flush();
    let status = Command::new(&prog).args(&c.args).status();
    match status {
        Ok(s) => {
            let code = s.code().unwrap_or(20);
            if code != 0 && report {
                let mut l = prog.display().to_string();
                for a in &c.args {
                    l.push(' ');
                    l.push_str(a);
                }
                eprintln!("Command '{l}' terminated with exit code {code}");
            }
            Ok(code)
        }
        Err(_) => {
            eprintln!("Can not find command (drbdsetup/drbdmeta)");
            Err(EXIT_NO_HELPER)
        }
    }
}

/// Entry point; returns the exit code.
pub fn main_with_args(args: &[String], out: &mut dyn Write) -> i32 {
    let cli = match parse_cli(args) {
        Ok(c) => c,
        Err((m, code)) => {
            eprintln!("{m}");
            return code;
        }
    };
    if cli.version {
        print_version(out);
        return 0;
    }
    let Some(cmd) = cli.cmd.clone() else {
        eprint!("{}", usage(None));
        return if cli.help { 0 } else { 1 };
    };
    if cmd == "help" {
        let _ = write!(out, "{}", usage(None));
        return 0;
    }
    if !COMMANDS.contains(&cmd.as_str()) && !crate::handler::is_handler(&cmd) {
        eprintln!("drbdadm: Unknown command '{cmd}'");
        return 1;
    }
    let (host, from_env) = local_host();
    if from_env {
        eprint!("\n   found __DRBD_NODE__ in environment\n   PRETENDING that I am >>{host}<<\n\n");
    }
    let mut opts = cli.opts.clone();
    opts.host = host.clone();
    let path = config_path(&cli);
    if cmd == "sh-list-config-file" {
        let _ = writeln!(out, "{path}");
        return 0;
    }
    let mut cfg = match parse_config(Path::new(&path), &path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CONFIG;
        }
    };
    match resolve::prepare(&mut cfg) {
        Ok(warnings) => {
            for w in warnings {
                eprintln!("{w}");
            }
        }
        Err(errs) => {
            print_conf_errors(&errs);
            return EXIT_CONFIG;
        }
    }
    run_command(&cfg, &cli, &cmd, &opts, out)
}

fn mine(cfg: &Config, host: &str, ips: &[String]) -> Vec<(usize, usize)> {
    cfg.resources
        .iter()
        .enumerate()
        .filter_map(|(i, r)| resolve::find_me(r, host, ips).map(|m| (i, m)))
        .collect()
}

fn select(
    cfg: &Config,
    cli: &Cli,
    cmd: &str,
    host: &str,
    ips: &[String],
) -> Result<Vec<Target>, i32> {
    let avail = mine(cfg, host, ips);
    let mut targets = Vec::new();
    for obj in &cli.objects {
        if obj == "all" {
            for &(ri, me) in &avail {
                let local = resolve::local(cfg, ri, me).map_err(|e| {
                    eprintln!("{e}");
                    EXIT_CONFIG
                })?;
                targets.push(Target {
                    local,
                    sel: Sel::default(),
                });
            }
            continue;
        }
        // minor-N
        if let Some(m) = obj
            .strip_prefix("minor-")
            .and_then(|m| m.parse::<u32>().ok())
        {
            let mut found = None;
            for &(ri, me) in &avail {
                let l = resolve::local(cfg, ri, me).map_err(|e| {
                    eprintln!("{e}");
                    EXIT_CONFIG
                })?;
                if let Some(v) = l.volumes.iter().find(|v| v.minor == m) {
                    let vnr = v.vnr;
                    found = Some(Target {
                        local: l,
                        sel: Sel {
                            vol: Some(vnr),
                            peer: None,
                        },
                    });
                    break;
                }
            }
            match found {
                Some(t) => targets.push(t),
                None => {
                    eprintln!("{obj}: not defined in your config (for this host).");
                    return Err(1);
                }
            }
            continue;
        }
        let (rest, vol) = match obj.rsplit_once('/') {
            Some((r, v)) => match v.parse::<u32>() {
                Ok(n) => (r, Some(n)),
                Err(_) => (obj.as_str(), None),
            },
            None => (obj.as_str(), None),
        };
        let (resname, peer) = match rest.split_once(':') {
            Some((r, p)) => (r, Some(p.to_string())),
            None => (rest, None),
        };
        let Some(&(ri, me)) = avail
            .iter()
            .find(|(i, _)| cfg.resources[*i].name == resname)
        else {
            eprintln!("'{resname}' not defined in your config (for this host).");
            if let Some(r) = cfg.resources.iter().find(|r| r.name == resname) {
                let names: Vec<String> = r.hosts.iter().map(|h| h.name()).collect();
                eprintln!(
                    "{}: resource {resname} has no 'on {host}' section (it has: {})",
                    r.pos,
                    names.join(", ")
                );
            }
            return Err(1);
        };
        let local = resolve::local(cfg, ri, me).map_err(|e| {
            eprintln!("{e}");
            EXIT_CONFIG
        })?;
        if let Some(v) = vol {
            if !local.volumes.iter().any(|x| x.vnr == v) {
                eprintln!("Resource '{resname}' has no volume {v}");
                return Err(1);
            }
        }
        if let Some(p) = &peer {
            if !local.peers.iter().any(|x| &x.name == p) {
                eprintln!("Not a valid connection ({resname}:{p}) for this host");
                return Err(1);
            }
        }
        let _ = cmd;
        targets.push(Target {
            local,
            sel: Sel { vol, peer },
        });
    }
    Ok(targets)
}

fn verify_ips(
    cfg: &Config,
    host: &str,
    ips: &[String],
    only: Option<&[String]>,
) -> Result<(), i32> {
    if cfg.ip_verification_disabled() {
        return Ok(());
    }
    let norm = |s: &str| {
        s.parse::<std::net::IpAddr>()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| s.to_string())
    };
    let mut bad = false;
    for (ri, me) in mine(cfg, host, ips) {
        let r = &cfg.resources[ri];
        if only.is_some_and(|o| {
            !o.iter()
                .any(|x| x.split([':', '/']).next() == Some(r.name.as_str()))
        }) {
            continue;
        }
        let h = &r.hosts[me];
        let Some(a) = &h.address else { continue };
        if h.floating || ips.iter().any(|ip| norm(ip) == norm(&a.addr)) {
            continue;
        }
        eprintln!(
            "{}: in resource {}, on {}:\n\tIP {} not found on this host.",
            cfg.abs_file,
            r.name,
            h.names.join(" "),
            a.addr
        );
        bad = true;
    }
    if bad {
        Err(EXIT_CONFIG)
    } else {
        Ok(())
    }
}

fn run_command(cfg: &Config, cli: &Cli, cmd: &str, opts: &Opts, out: &mut dyn Write) -> i32 {
    let ips = local_ips();
    let host = opts.host.clone();
    let whole = cli.objects.is_empty() || cli.objects.iter().any(|o| o == "all");
    if !opts.dry && !cmd.starts_with("sh-") && (cmd != "dump" || whole) {
        if let Err(code) = verify_ips(
            cfg,
            &host,
            &ips,
            if whole { None } else { Some(&cli.objects) },
        ) {
            return code;
        }
    }
    // commands that do not need resource names
    match cmd {
        "sh-resources" | "sh-mod-parms" => {
            if !cli.objects.is_empty() {
                eprintln!("This command will ignore resource names!");
            }
            if cmd == "sh-resources" {
                for (ri, _) in mine(cfg, &host, &ips) {
                    let _ = writeln!(out, "{}", cfg.resources[ri].name);
                }
            } else {
                let n = cfg.minor_count().unwrap_or(32);
                let _ = writeln!(out, "minor_count={n}");
            }
            return 0;
        }
        "sh-nop" => return 0,
        "dump" if cli.objects.is_empty() || cli.objects == ["all"] => {
            let which: Vec<usize> = mine(cfg, &host, &ips).into_iter().map(|(i, _)| i).collect();
            let _ = write!(out, "{}", dump::dump(cfg, &which, true, &host, opts.dry));
            return 0;
        }
        "status" if cli.objects.is_empty() => {
            let mut args = vec!["status".to_string()];
            args.extend(cli.cmd_opts.iter().cloned());
            let c = Call {
                stage: crate::cmds::stage::RESOURCE,
                res_order: 0,
                res: String::new(),
                tool: Tool::Setup,
                args,
                fallback: None,
            };
            return execute(opts, vec![c], false, out);
        }
        _ => {}
    }
    if cmd == "wait-con-int" {
        // Every resource of this host, as the init script waits for them.
        let mut all = cli.clone();
        all.objects = vec!["all".into()];
        return run_command(cfg, &all, "wait-connect", opts, out);
    }
    if cli.objects.is_empty() {
        let _ = write!(out, "{}", usage(Some(cmd)));
        eprintln!("No resource names specified");
        return 1;
    }
    let targets = match select(cfg, cli, cmd, &host, &ips) {
        Ok(t) => t,
        Err(code) => return code,
    };
    if cmd == "dump" {
        let which: Vec<usize> = targets.iter().map(|t| t.local.res_idx).collect();
        let _ = write!(out, "{}", dump::dump(cfg, &which, false, &host, opts.dry));
        return 0;
    }
    if cmd.starts_with("sh-") {
        return sh_command(cfg, cmd, &targets, out);
    }
    if crate::handler::is_handler(cmd) {
        let t: Vec<(Local, Option<u32>)> =
            targets.into_iter().map(|t| (t.local, t.sel.vol)).collect();
        return crate::handler::dispatch(cfg, &t, cmd, opts.dry, out);
    }
    if cmd == "wait-sync" && !opts.dry {
        return wait_sync(opts, &targets, &cli.cmd_opts, out);
    }
    let pass = &cli.cmd_opts;
    let mut calls = Vec::new();
    let mut missing_disk = false;
    for (order, t) in targets.iter().enumerate() {
        let mut b = Builder::new(&t.local, &t.sel, order, pass);
        match cmd {
            "up" => {
                let conn_pass: Vec<String> = pass.clone();
                b.pass = &conn_pass;
                b.up(false, false, false);
                calls.append(&mut b.out);
                continue;
            }
            "adjust" | "adjust-with-progress" => {
                let skip_disk = pass.iter().any(|p| p == "--skip-disk");
                let skip_net = pass.iter().any(|p| p == "--skip-net");
                let conn_pass: Vec<String> = pass
                    .iter()
                    .filter(|p| !p.starts_with("--skip-"))
                    .cloned()
                    .collect();
                let running = match adjust::running_state(opts, &t.local.name) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("{e}");
                        return EXIT_CONFIG;
                    }
                };
                let mut b2 = Builder::new(&t.local, &t.sel, order, &conn_pass);
                match running {
                    Some(state) => adjust::adjust(&mut b2, &state, skip_disk, skip_net),
                    None => b2.up(true, skip_disk, skip_net),
                }
                calls.append(&mut b2.out);
                continue;
            }
            "down" => b.per_resource("down"),
            "primary" | "secondary" | "role" => b.per_resource(cmd),
            "status" => b.per_resource("status"),
            "wait-connect" => b.wait_connect(),
            "wait-sync" => b.per_resource("wait-sync-resource"),
            "connect" | "disconnect" | "cstate" => b.per_peer(cmd),
            "attach" => b.attach(),
            "detach" => b.per_minor("detach", true),
            "resize" => b.per_minor("resize", true),
            "check-resize" => b.per_minor("check-resize", false),
            "new-current-uuid" => {
                if t.sel.vol.is_none() && t.local.volumes.len() > 1 {
                    eprintln!("{cmd} requires a specific volume id, but none is specified.");
                    eprintln!(
                        "Try '{cmd} minor-<minor_number>' or '{cmd} {}/<vnr>'",
                        t.local.name
                    );
                    return 1;
                }
                b.per_minor(cmd, false)
            }
            "invalidate" => b.with_meta_fallback("invalidate", true),
            "outdate" => b.with_meta_fallback("outdate", true),
            "dstate" => b.with_meta_fallback("dstate", false),
            "invalidate-remote" | "verify" | "pause-sync" | "resume-sync" => b.per_peer_device(cmd),
            "create-md" => b.create_md(),
            "dump-md" | "wipe-md" | "apply-al" | "show-gi" | "get-gi" => b.meta(cmd),
            "new-resource" => {
                let mut a = vec![
                    "new-resource".into(),
                    t.local.name.clone(),
                    t.local.node_id.to_string(),
                ];
                a.extend(crate::cmds::opt_args(&t.local.res_opts));
                b.out.push(Call {
                    stage: crate::cmds::stage::RESOURCE,
                    res_order: order,
                    res: t.local.name.clone(),
                    tool: Tool::Setup,
                    args: a,
                    fallback: None,
                });
            }
            "new-minor" => {
                for v in &t.local.volumes {
                    if t.sel.vol.is_some_and(|n| n != v.vnr) {
                        continue;
                    }
                    let mut a = vec![
                        "new-minor".into(),
                        t.local.name.clone(),
                        v.minor.to_string(),
                        v.vnr.to_string(),
                    ];
                    if v.disk.is_none() {
                        a.push("--diskless".into());
                    }
                    b.out.push(Call {
                        stage: crate::cmds::stage::MINOR,
                        res_order: order,
                        res: t.local.name.clone(),
                        tool: Tool::Setup,
                        args: a,
                        fallback: None,
                    });
                }
            }
            "del-minor" => b.per_minor("del-minor", false),
            _ => {
                eprintln!("drbdadm: command '{cmd}' is not implemented yet");
                return 1;
            }
        }
        missing_disk |= b.missing_disk;
        calls.append(&mut b.out);
    }
    if missing_disk {
        eprintln!("The {cmd} command requires a local disk, but the configuration gives none.");
    }
    let staged = matches!(cmd, "up" | "adjust" | "adjust-with-progress");
    let rc = execute(opts, calls, staged, out);
    if rc == 0 && missing_disk {
        EXIT_CONFIG
    } else {
        rc
    }
}

fn sh_command(cfg: &Config, cmd: &str, targets: &[Target], out: &mut dyn Write) -> i32 {
    let mut rc = 0;
    for t in targets {
        let l = &t.local;
        let vols: Vec<_> = l
            .volumes
            .iter()
            .filter(|v| t.sel.vol.is_none_or(|n| n == v.vnr))
            .collect();
        match cmd {
            "sh-resource" => {
                let _ = writeln!(out, "{}", l.name);
            }
            "sh-dev" => {
                for v in &vols {
                    let _ = writeln!(out, "{}", v.device);
                }
            }
            "sh-minor" => {
                for v in &vols {
                    let _ = writeln!(out, "{}", v.minor);
                }
            }
            "sh-ll-dev" => {
                for v in &vols {
                    let _ = writeln!(out, "{}", v.disk.as_deref().unwrap_or("none"));
                }
            }
            "sh-md-dev" | "sh-md-idx" => {
                for v in &vols {
                    match (&v.disk, &v.meta) {
                        (Some(d), Some(m)) => {
                            let s = if cmd == "sh-md-dev" {
                                m.dev(d).to_string()
                            } else {
                                m.attach_index()
                            };
                            let _ = writeln!(out, "{s}");
                        }
                        _ => {
                            eprintln!(
                                "The {cmd} command requires a local disk, but the configuration gives none."
                            );
                            rc = EXIT_CONFIG;
                        }
                    }
                }
            }
            "sh-ip" => {
                for _v in &vols {
                    for p in &l.peers {
                        for (mine, _) in &p.paths {
                            let _ = writeln!(out, "{}", mine.addr);
                        }
                    }
                }
                if l.peers.is_empty() {
                    if let Some(a) = &cfg.resources[l.res_idx].hosts[l.me].address {
                        let _ = writeln!(out, "{}", a.addr);
                    }
                }
            }
            "sh-udev" => {
                let v = match (t.sel.vol, l.volumes.len()) {
                    (Some(n), _) => l.volumes.iter().find(|v| v.vnr == n),
                    (None, 1) => l.volumes.first(),
                    _ => None,
                };
                let Some(v) = v else {
                    eprintln!("sh-udev requires a specific volume id, but none is specified.");
                    eprintln!(
                        "Try 'sh-udev minor-<minor_number>' or 'sh-udev {}/<vnr>'",
                        l.name
                    );
                    return 1;
                };
                let always_vnr = crate::model::get(&cfg.global, "udev-always-use-vnr").is_some();
                let by_res = if l.volumes.len() == 1 && v.vnr == 0 && !always_vnr {
                    format!("drbd/by-res/{}", l.name)
                } else {
                    format!("drbd/by-res/{}/{}", l.name, v.vnr)
                };
                let _ = writeln!(out, "DEVICE=drbd{}", v.minor);
                let _ = writeln!(out, "SYMLINK={by_res}");
                let _ = writeln!(out, "SYMLINK_BY_RES={by_res}");
                if let Some(d) = &v.disk {
                    let _ = writeln!(
                        out,
                        "SYMLINK_BY_DISK=drbd/by-disk/{}",
                        d.strip_prefix("/dev/").unwrap_or(d)
                    );
                }
            }
            _ => {
                eprintln!("drbdadm: command '{cmd}' is not implemented yet");
                return 1;
            }
        }
    }
    rc
}

/// `drbdadm wait-sync`: polls `drbdsetup events2 --now RES` until every peer device of the
/// selected resources is Established with an UpToDate peer disk. On a terminal the progress is
/// a bar redrawn in place; otherwise a plain line is printed per change of state or percent.
/// `--wfc-timeout=N` gives up after N seconds (exit code 5); 0 or none waits forever.
fn wait_sync(opts: &Opts, targets: &[Target], cmd_opts: &[String], out: &mut dyn Write) -> i32 {
    use crate::progress::{
        finished, parse_events_now, plain_key, redraw_prefix, render_plain, render_tty,
    };
    use std::io::IsTerminal;
    let timeout = cmd_opts
        .iter()
        .find_map(|o| o.strip_prefix("--wfc-timeout="))
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&t| t > 0)
        .map(std::time::Duration::from_secs);
    let Some(prog) = find_helper(opts.setup.as_deref(), "drbdsetup") else {
        eprintln!("drbdadm: drbdsetup not found");
        return EXIT_NO_HELPER;
    };
    let tty = std::io::stdout().is_terminal();
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(80);
    let start = std::time::Instant::now();
    for t in targets {
        let res = &t.local.name;
        let mut drawn = 0usize;
        let mut last_key = String::new();
        loop {
            let text = match Command::new(&prog)
                .args(["events2", "--now", res])
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
            {
                Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
                Err(e) => {
                    eprintln!("drbdadm: {}: {e}", prog.display());
                    return EXIT_NO_HELPER;
                }
            };
            let snap = parse_events_now(&text, res);
            if !snap.exists {
                if drawn > 0 {
                    let _ = writeln!(out);
                }
                eprintln!("{res}: No such resource");
                return EXIT_CONFIG;
            }
            if tty {
                let lines = render_tty(res, &snap, width);
                let _ = write!(out, "{}{}", redraw_prefix(drawn), lines.join("\n"));
                drawn = lines.len();
            } else {
                let key = plain_key(&snap);
                if key != last_key {
                    for l in render_plain(res, &snap) {
                        let _ = writeln!(out, "{l}");
                    }
                    last_key = key;
                }
            }
            let _ = out.flush();
            if finished(&snap) {
                break;
            }
            if timeout.is_some_and(|d| start.elapsed() >= d) {
                if tty {
                    let _ = writeln!(out);
                }
                eprintln!("{res}: timed out waiting for the resync to finish");
                return 5;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        if tty {
            let _ = writeln!(out);
        }
    }
    0
}
