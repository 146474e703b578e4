//! Recursive-descent parser for drbd.conf (DRBD 9 grammar plus the 8.x forms of the seeds).

use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::lex::{tokenize, Pos, Tok, Token};
use crate::model::*;
use crate::opts::{self, Class};

/// A configuration error: position (if any) and text. drbdadm exits with 10 for these.
#[derive(Debug, Clone)]
pub struct ConfError {
    /// Where.
    pub pos: Option<Pos>,
    /// What.
    pub msg: String,
}

impl std::fmt::Display for ConfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.pos {
            Some(p) => write!(f, "{p}: {}", self.msg),
            None => write!(f, "{}", self.msg),
        }
    }
}

fn err<T>(pos: &Pos, msg: impl Into<String>) -> Result<T, ConfError> {
    Err(ConfError {
        pos: Some(pos.clone()),
        msg: msg.into(),
    })
}

type R<T> = Result<T, ConfError>;

struct Parser<'c> {
    toks: Vec<Token>,
    i: usize,
    dir: PathBuf,
    cfg: &'c mut Config,
    depth: u32,
}

/// Parses the config file `path` (shown in messages as `shown`) with its includes.
pub fn parse_config(path: &Path, shown: &str) -> R<Config> {
    let abs = std::fs::canonicalize(path)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| shown.to_string());
    let mut cfg = Config {
        file: shown.to_string(),
        abs_file: abs.clone(),
        ..Config::default()
    };
    parse_file_into(&mut cfg, path, shown, 0)?;
    finish(&mut cfg);
    Ok(cfg)
}

/// Parses config text (for tests): `name` is the file name shown in messages.
pub fn parse_str(text: &str, name: &str) -> R<Config> {
    let mut cfg = Config {
        file: name.to_string(),
        abs_file: name.to_string(),
        ..Config::default()
    };
    parse_text_into(&mut cfg, text, name, Path::new("."), 0)?;
    finish(&mut cfg);
    Ok(cfg)
}

fn parse_file_into(cfg: &mut Config, path: &Path, shown: &str, depth: u32) -> R<()> {
    let text = std::fs::read(path).map_err(|e| ConfError {
        pos: None,
        msg: format!("open({shown}) failed: {e}"),
    })?;
    let text = String::from_utf8_lossy(&text);
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    parse_text_into(cfg, &text, shown, &dir, depth)
}

fn parse_text_into(cfg: &mut Config, text: &str, shown: &str, dir: &Path, depth: u32) -> R<()> {
    let file: Rc<str> = Rc::from(shown);
    let toks = tokenize(&file, text).map_err(|e| ConfError {
        pos: Some(e.pos),
        msg: format!("Parse error: {}", e.msg),
    })?;
    let mut p = Parser {
        toks,
        i: 0,
        dir: dir.to_path_buf(),
        cfg,
        depth,
    };
    p.top()
}

/// Inherits common into every resource.
fn finish(cfg: &mut Config) {
    if let Some(common) = cfg.common.clone() {
        for r in &mut cfg.resources {
            r.sec.inherit(&common);
        }
    }
}

/// Matches `name` against a shell glob pattern (`*`, `?`, `[...]`).
pub fn glob_match(pat: &str, name: &str) -> bool {
    fn m(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|k| m(&p[1..], &n[k..])),
            Some('?') => !n.is_empty() && m(&p[1..], &n[1..]),
            Some('[') => {
                let Some(end) = p.iter().skip(1).position(|&c| c == ']').map(|e| e + 1) else {
                    return n.first() == Some(&'[') && m(&p[1..], &n[1..]);
                };
                let Some(&c) = n.first() else { return false };
                let set = &p[1..end];
                let (neg, set) = match set.first() {
                    Some('!') | Some('^') => (true, &set[1..]),
                    _ => (false, set),
                };
                let mut hit = false;
                let mut k = 0;
                while k < set.len() {
                    if k + 2 < set.len() && set[k + 1] == '-' {
                        hit |= set[k] <= c && c <= set[k + 2];
                        k += 3;
                    } else {
                        hit |= set[k] == c;
                        k += 1;
                    }
                }
                hit != neg && m(&p[end + 1..], &n[1..])
            }
            Some(&c) => n.first() == Some(&c) && m(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    m(&p, &n)
}

/// Expands a glob pattern (wildcards in any component); results sorted, hidden files skipped.
pub fn glob(pattern: &str) -> Vec<PathBuf> {
    let has_magic = |s: &str| s.contains(['*', '?', '[']);
    let abs = pattern.starts_with('/');
    let mut cur: Vec<PathBuf> = vec![if abs {
        PathBuf::from("/")
    } else {
        PathBuf::new()
    }];
    for comp in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for base in &cur {
            if has_magic(comp) {
                let dir = if base.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    base.clone()
                };
                let Ok(rd) = std::fs::read_dir(&dir) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.') && glob_match(comp, n))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| base.join(n)));
            } else {
                next.push(base.join(comp));
            }
        }
        cur = next;
    }
    cur.into_iter().filter(|p| p.exists()).collect()
}

const DISK_ALL: &str = "a disk option keyword";

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.toks[self.i]
    }

    fn peek2(&self) -> &Tok {
        &self.toks[(self.i + 1).min(self.toks.len() - 1)].tok
    }

    fn next(&mut self) -> Token {
        let t = self.toks[self.i].clone();
        if self.i + 1 < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn expected<T>(&self, what: &str, got: &Token) -> R<T> {
        err(
            &got.pos,
            format!(
                "Parse error: '{what}' expected,\n\tbut got '{}'",
                got.tok.shown()
            ),
        )
    }

    fn word(&mut self, what: &str) -> R<(String, Pos)> {
        let t = self.next();
        match t.tok.text() {
            Some(s) => Ok((s.to_string(), t.pos)),
            None => self.expected(what, &t),
        }
    }

    fn semi(&mut self) -> R<()> {
        let t = self.next();
        if t.tok == Tok::Semi {
            Ok(())
        } else {
            self.expected(";", &t)
        }
    }

    fn open(&mut self) -> R<()> {
        let t = self.next();
        if t.tok == Tok::Open {
            Ok(())
        } else {
            self.expected("{", &t)
        }
    }

    /// Skips a balanced `{ ... }` block (the `{` not consumed yet).
    fn skip_block(&mut self) -> R<()> {
        self.open()?;
        let mut depth = 1;
        while depth > 0 {
            let t = self.next();
            match t.tok {
                Tok::Open => depth += 1,
                Tok::Close => depth -= 1,
                Tok::Eof => return self.expected("}", &t),
                _ => {}
            }
        }
        Ok(())
    }

    /// `skip [words] { ... }`
    fn skip_stmt(&mut self) -> R<()> {
        while self.peek().tok.text().is_some() {
            self.next();
        }
        self.skip_block()
    }

    fn top(&mut self) -> R<()> {
        loop {
            let t = self.next();
            let kw = match &t.tok {
                Tok::Eof => return Ok(()),
                Tok::Word(w) => w.clone(),
                _ => return self.expected(TOP, &t),
            };
            match kw.as_str() {
                "global" => self.global()?,
                "common" => {
                    let mut sec = self.cfg.common.take().unwrap_or_default();
                    self.open()?;
                    loop {
                        let t = self.next();
                        match &t.tok {
                            Tok::Close => break,
                            Tok::Word(w) if w == "protocol" => {
                                self.protocol(&mut sec.net, t.pos)?
                            }
                            Tok::Word(w) => {
                                let w = w.clone();
                                if !self.section_stmt(&w, &t, &mut sec)? {
                                    return self.expected(COMMON, &t);
                                }
                            }
                            _ => return self.expected(COMMON, &t),
                        }
                    }
                    self.cfg.common = Some(sec);
                }
                "resource" => self.resource(t.pos)?,
                "skip" => self.skip_stmt()?,
                "include" => {
                    let (pat, pos) = self.word("a file name")?;
                    self.semi()?;
                    self.include(&pat, &pos)?;
                }
                w if w.starts_with("require-drbd-module-version-") => {
                    self.word("a version")?;
                    self.semi()?;
                }
                _ => return self.expected(TOP, &t),
            }
        }
    }

    fn include(&mut self, pat: &str, pos: &Pos) -> R<()> {
        if self.depth > 20 {
            return err(pos, "include nesting too deep");
        }
        let full = if pat.starts_with('/') {
            pat.to_string()
        } else {
            self.dir.join(pat).display().to_string()
        };
        let full = full.strip_prefix("./").unwrap_or(&full).to_string();
        for f in glob(&full) {
            let shown = f.display().to_string();
            parse_file_into(self.cfg, &f, &shown, self.depth + 1)?;
        }
        Ok(())
    }

    fn global(&mut self) -> R<()> {
        self.open()?;
        loop {
            let t = self.next();
            let key = match &t.tok {
                Tok::Close => return Ok(()),
                Tok::Word(w) => w.clone(),
                _ => return self.expected(GLOBAL, &t),
            };
            let val = match key.as_str() {
                "disable-ip-verification" | "udev-always-use-vnr" => String::new(),
                "usage-count" => {
                    let (v, p) = self.word("yes | no | ask")?;
                    if !matches!(v.as_str(), "yes" | "no" | "ask") {
                        return err(
                            &p,
                            format!("Parse error: 'yes | no | ask' expected,\n\tbut got '{v}'"),
                        );
                    }
                    v
                }
                "minor-count" | "dialog-refresh" | "cmd-timeout-short" | "cmd-timeout-medium"
                | "cmd-timeout-long" => {
                    let (v, p) = self.word("a number")?;
                    if v.parse::<u32>().is_err() {
                        return err(
                            &p,
                            format!("Parse error: while parsing value ('{v}')\nfor {key}. Value is not a number."),
                        );
                    }
                    v
                }
                _ => return self.expected(GLOBAL, &t),
            };
            self.semi()?;
            self.cfg.global.push(Opt {
                key,
                val,
                pos: t.pos,
            });
        }
    }

    /// `protocol X;` at resource/common level: a net option.
    fn protocol(&mut self, net: &mut Opts, pos: Pos) -> R<()> {
        let (v, vpos) = self.word("A | B | C")?;
        let m = opts::member(Class::Net, "protocol").expect("protocol member");
        if let Err(e) = opts::check_value("protocol", m, &v) {
            return err(&vpos, format!("Parse error: {e}"));
        }
        self.semi()?;
        set_opt(net, "protocol", v, pos);
        Ok(())
    }

    /// The option sections shared by common and resource; false if `w` is none of them.
    fn section_stmt(&mut self, w: &str, t: &Token, sec: &mut Sections) -> R<bool> {
        match w {
            "options" => {
                self.opt_section(Class::Res, "a resource option keyword", &mut sec.options)?
            }
            "net" => self.opt_section(Class::Net, "a net option keyword", &mut sec.net)?,
            "disk" => {
                if self.peek().tok != Tok::Open {
                    return Ok(false);
                }
                self.disk_section(sec, false)?
            }
            "startup" => self.startup(&mut sec.startup)?,
            "handlers" => self.handlers(&mut sec.handlers)?,
            "syncer" => self.syncer(sec)?,
            "proxy" => self.skip_block()?,
            "skip" => self.skip_stmt()?,
            _ => {
                let _ = t;
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// One `key [value];` of a section with booleans normalised; returns (key, value, pos, member).
    fn option(
        &mut self,
        lookup: &dyn Fn(&str) -> Option<(Class, &'static genl_spec::generated::Member)>,
        what: &str,
    ) -> R<Option<(Class, Opt)>> {
        let t = self.next();
        let key = match &t.tok {
            Tok::Close => return Ok(None),
            Tok::Word(w) => w.clone(),
            _ => return self.expected(what, &t),
        };
        let (class, m, key, negated) = match lookup(&key) {
            Some((c, m)) => (c, m, key, false),
            None => match key
                .strip_prefix("no-")
                .and_then(|k| lookup(k).map(|x| (k, x)))
            {
                Some((k, (c, m))) if opts::is_flag(m) => (c, m, k.to_string(), true),
                _ => return self.expected(what, &t),
            },
        };
        let val = if opts::is_flag(m) && self.peek().tok == Tok::Semi {
            if negated { "no" } else { "yes" }.to_string()
        } else if negated {
            let t2 = self.next();
            return self.expected(";", &t2);
        } else {
            let (v, vpos) = self.word("a value")?;
            if let Err(e) = opts::check_value(&key, m, &v) {
                return err(&vpos, format!("Parse error: {e}"));
            }
            v
        };
        self.semi()?;
        let key = m.option.unwrap_or(&key).to_string();
        Ok(Some((
            class,
            Opt {
                key,
                val,
                pos: t.pos,
            },
        )))
    }

    fn opt_section(&mut self, class: Class, what: &str, out: &mut Opts) -> R<()> {
        self.open()?;
        let lookup = move |k: &str| opts::member(class, k).map(|m| (class, m));
        while let Some((_, o)) = self.option(&lookup, what)? {
            set_opt(out, &o.key, o.val, o.pos);
        }
        Ok(())
    }

    /// `disk {}`: device, peer-device and device-creation keys (and fencing, routed to net).
    fn disk_section(&mut self, sec: &mut Sections, pd_only: bool) -> R<()> {
        self.open()?;
        let lookup = move |k: &str| {
            let c = opts::disk_section_class(k)?;
            if pd_only && c != Class::PeerDevice {
                return None;
            }
            opts::member(c, k).map(|m| (c, m))
        };
        let what = if pd_only {
            "a peer-device option keyword"
        } else {
            DISK_ALL
        };
        while let Some((c, o)) = self.option(&lookup, what)? {
            let list = match c {
                Class::Disk => &mut sec.disk,
                Class::PeerDevice => &mut sec.pd,
                Class::Device => &mut sec.dev,
                Class::Net => &mut sec.net,
                Class::Res => &mut sec.options,
            };
            set_opt(list, &o.key, o.val, o.pos);
        }
        Ok(())
    }

    fn syncer(&mut self, sec: &mut Sections) -> R<()> {
        self.open()?;
        let lookup = |k: &str| {
            let (c, canon) = opts::syncer_key(k)?;
            opts::member(c, canon).map(|m| (c, m))
        };
        while let Some((c, o)) = self.option(&lookup, "a syncer option keyword")? {
            let list = match c {
                Class::Disk => &mut sec.disk,
                Class::PeerDevice => &mut sec.pd,
                Class::Device => &mut sec.dev,
                Class::Net => &mut sec.net,
                Class::Res => &mut sec.options,
            };
            set_opt(list, &o.key, o.val, o.pos);
        }
        Ok(())
    }

    fn startup(&mut self, out: &mut Opts) -> R<()> {
        self.open()?;
        loop {
            let t = self.next();
            let key = match &t.tok {
                Tok::Close => return Ok(()),
                Tok::Word(w) if opts::STARTUP_KEYS.contains(&w.as_str()) => w.clone(),
                _ => return self.expected("a startup option keyword", &t),
            };
            if key == "become-primary-on" {
                // accepted and ignored, as drbdadm 9 does
                while self.peek().tok.text().is_some() {
                    self.next();
                }
                self.semi()?;
                continue;
            }
            if matches!(key.as_str(), "wait-after-sb" | "stacked-timeouts") {
                // Flags: bare (yes) or with yes/no.
                let v = if self.peek().tok == Tok::Semi {
                    "yes".to_string()
                } else {
                    let (v, vpos) = self.word("yes or no")?;
                    if v != "yes" && v != "no" {
                        return err(
                            &vpos,
                            format!("Parse error: while parsing value ('{v}')\nfor {key}. Value is not yes or no."),
                        );
                    }
                    v
                };
                self.semi()?;
                set_opt(out, &key, v, t.pos);
                continue;
            }
            let (v, vpos) = self.word("a number")?;
            if v.parse::<u32>().is_err() {
                return err(
                    &vpos,
                    format!("Parse error: while parsing value ('{v}')\nfor {key}. Value is not a number."),
                );
            }
            self.semi()?;
            set_opt(out, &key, v, t.pos);
        }
    }

    fn handlers(&mut self, out: &mut Opts) -> R<()> {
        self.open()?;
        loop {
            let t = self.next();
            let key = match &t.tok {
                Tok::Close => return Ok(()),
                Tok::Word(w) if opts::HANDLER_KEYS.contains(&w.as_str()) => w.clone(),
                _ => return self.expected("a handler keyword", &t),
            };
            let (v, _) = self.word("a command")?;
            self.semi()?;
            set_opt(out, &key, v, t.pos);
        }
    }

    fn number(&mut self, what: &str) -> R<(u32, Pos)> {
        let (v, pos) = self.word(what)?;
        match v.parse::<u32>() {
            Ok(n) => Ok((n, pos)),
            Err(_) => err(
                &pos,
                format!("Parse error: '{what}' expected,\n\tbut got '{v}'"),
            ),
        }
    }

    fn resource(&mut self, pos: Pos) -> R<()> {
        let (name, npos) = self.word("a resource name")?;
        if self.cfg.resources.iter().any(|r| r.name == name) {
            let first = self
                .cfg
                .resources
                .iter()
                .find(|r| r.name == name)
                .map(|r| r.pos.clone())
                .unwrap_or_else(Pos::none);
            return err(
                &npos,
                format!("conflicting use of resource name '{name}' ...\n{first}: resource name '{name}' first used here."),
            );
        }
        let mut r = Resource {
            name,
            pos,
            sec: Sections::default(),
            own: Sections::default(),
            volumes: Vec::new(),
            hosts: Vec::new(),
            conns: Vec::new(),
            meshes: Vec::new(),
        };
        self.open()?;
        loop {
            let t = self.next();
            let w = match &t.tok {
                Tok::Close => break,
                Tok::Word(w) => w.clone(),
                _ => return self.expected(RESOURCE, &t),
            };
            match w.as_str() {
                "protocol" => self.protocol(&mut r.sec.net, t.pos)?,
                "on" => {
                    let h = self.host(t.pos, false)?;
                    r.hosts.push(h);
                }
                "floating" => {
                    let h = self.host(t.pos, true)?;
                    r.hosts.push(h);
                }
                "stacked-on-top-of" => {
                    return err(&t.pos, "stacked resources are not supported");
                }
                "connection" => {
                    let c = self.connection(t.pos)?;
                    r.conns.push(c);
                }
                "connection-mesh" => {
                    let m = self.mesh(t.pos)?;
                    r.meshes.push(m);
                }
                "volume" => {
                    let v = self.volume(t.pos)?;
                    add_volume(&mut r.volumes, v)?;
                }
                "device" | "meta-disk" | "flexible-meta-disk" => {
                    let v = implicit_volume(&mut r.volumes, &t.pos);
                    self.volume_stmt(&w, &t, v)?;
                }
                "disk" if self.peek().tok != Tok::Open => {
                    let v = implicit_volume(&mut r.volumes, &t.pos);
                    self.volume_stmt(&w, &t, v)?;
                }
                "template-file" => {
                    self.word("a file name")?;
                    self.semi()?;
                }
                "ignore-on" => {
                    self.word("a host name")?;
                    self.semi()?;
                }
                w2 if w2.starts_with("require-drbd-module-version-") => {
                    self.word("a version")?;
                    self.semi()?;
                }
                _ => {
                    if !self.section_stmt(&w, &t, &mut r.sec)? {
                        return self.expected(RESOURCE, &t);
                    }
                }
            }
        }
        r.own = r.sec.clone();
        self.cfg.resources.push(r);
        Ok(())
    }

    /// device / disk / meta-disk / flexible-meta-disk inside a volume.
    fn volume_stmt(&mut self, w: &str, t: &Token, v: &mut Volume) -> R<()> {
        match w {
            "device" => {
                let (first, fpos) = self.word("a device name or 'minor'")?;
                let dev = if first == "minor" {
                    let (m, _) = self.number("a minor number")?;
                    Device {
                        path: None,
                        minor: m,
                    }
                } else if self.peek().tok == Tok::Word("minor".into()) {
                    self.next();
                    let (m, _) = self.number("a minor number")?;
                    Device {
                        path: Some(first),
                        minor: m,
                    }
                } else {
                    match first.strip_prefix("/dev/drbd").and_then(|n| n.parse().ok()) {
                        Some(m) => Device {
                            path: Some(first),
                            minor: m,
                        },
                        None => {
                            return err(
                                &fpos,
                                format!("Parse error: '/dev/drbd<minor> | minor <minor>' expected,\n\tbut got '{first}'"),
                            )
                        }
                    }
                };
                self.semi()?;
                v.device = Some(dev);
                v.device_pos = Some(t.pos.clone());
            }
            "disk" => {
                if self.peek().tok == Tok::Open {
                    let mut sec = Sections::default();
                    self.disk_section(&mut sec, false)?;
                    for o in sec.disk {
                        set_opt(&mut v.disk_opts, &o.key, o.val, o.pos);
                    }
                    for o in sec.pd {
                        set_opt(&mut v.pd_opts, &o.key, o.val, o.pos);
                    }
                    for o in sec.dev {
                        set_opt(&mut v.dev_opts, &o.key, o.val, o.pos);
                    }
                    return Ok(());
                }
                let (d, _) = self.word("a disk name or 'none'")?;
                self.semi()?;
                v.disk = Some(d);
            }
            "meta-disk" | "flexible-meta-disk" => {
                let (d, dpos) = self.word("'internal' or a device name")?;
                let md = if d == "internal" {
                    MetaDisk::Internal
                } else if let Some((dev, idx)) = split_index(&d) {
                    let idx = idx.ok_or(()).or_else(|_| {
                        err(
                            &dpos,
                            format!("Parse error: 'a meta-data index' expected,\n\tbut got '{d}'"),
                        )
                    })?;
                    MetaDisk::Indexed(dev, idx)
                } else if let Some(Tok::Word(n)) = Some(self.peek().tok.clone()) {
                    if n.starts_with('[') {
                        let nt = self.next();
                        match n
                            .strip_prefix('[')
                            .and_then(|x| x.strip_suffix(']'))
                            .and_then(|x| x.parse().ok())
                        {
                            Some(i) => MetaDisk::Indexed(d, i),
                            None => return self.expected("[index]", &nt),
                        }
                    } else {
                        MetaDisk::Flex(d)
                    }
                } else {
                    MetaDisk::Flex(d)
                };
                self.semi()?;
                v.meta = Some(md);
            }
            _ => return self.expected(VOLUME, t),
        }
        Ok(())
    }

    fn volume(&mut self, pos: Pos) -> R<Volume> {
        let (vnr, _) = self.number("a volume number")?;
        let mut v = Volume::new(vnr, false, pos);
        self.open()?;
        loop {
            let t = self.next();
            let w = match &t.tok {
                Tok::Close => break,
                Tok::Word(w) => w.clone(),
                _ => return self.expected(VOLUME, &t),
            };
            match w.as_str() {
                "device" | "disk" | "meta-disk" | "flexible-meta-disk" => {
                    self.volume_stmt(&w, &t, &mut v)?
                }
                "skip" => self.skip_stmt()?,
                "proxy" => self.skip_block()?,
                _ => return self.expected(VOLUME, &t),
            }
        }
        Ok(v)
    }

    fn address(&mut self) -> R<Address> {
        let t = self.next();
        let Some(first) = t.tok.text().map(str::to_string) else {
            return self.expected("an address", &t);
        };
        let (af, text, tpos) =
            if matches!(first.as_str(), "ipv4" | "ipv6" | "ssocks" | "sdp" | "sci") {
                let (w, p) = self.word("an address")?;
                (first, w, p)
            } else if first.starts_with('[') {
                ("ipv6".to_string(), first, t.pos.clone())
            } else {
                ("ipv4".to_string(), first, t.pos.clone())
            };
        let (addr, port) = if af == "ipv6" {
            let Some(rest) = text.strip_prefix('[') else {
                return err(
                    &tpos,
                    format!("Parse error: '[' expected,\n\tbut got '{text}'"),
                );
            };
            let Some((a, p)) = rest.split_once("]:") else {
                return err(
                    &tpos,
                    format!("Parse error: ']:port' expected,\n\tbut got '{text}'"),
                );
            };
            if a.parse::<std::net::Ipv6Addr>().is_err() {
                return err(&tpos, format!("invalid IPv6 address '{a}' in '{text}'"));
            }
            (a.to_string(), p.to_string())
        } else {
            let Some((a, p)) = text.rsplit_once(':') else {
                let nt = self.peek().clone();
                return err(
                    &nt.pos,
                    format!(
                        "Parse error: ':' expected,\n\tbut got '{}' (address '{text}' has no port)",
                        nt.tok.shown()
                    ),
                );
            };
            if (af == "ipv4" || af == "ssocks" || af == "sdp")
                && a.parse::<std::net::Ipv4Addr>().is_err()
            {
                return err(&tpos, format!("invalid IPv4 address '{a}' in '{text}'"));
            }
            (a.to_string(), p.to_string())
        };
        let port: u16 = match port.parse() {
            Ok(p) if p > 0 => p,
            _ => return err(&tpos, format!("invalid port '{port}' in '{text}'")),
        };
        Ok(Address { af, addr, port })
    }

    fn host(&mut self, pos: Pos, floating: bool) -> R<Host> {
        let mut h = Host {
            names: Vec::new(),
            floating,
            node_id: None,
            node_id_implicit: false,
            address: None,
            volumes: Vec::new(),
            pos,
        };
        if floating {
            h.address = Some(self.address()?);
        } else {
            while let Some(n) = self.peek().tok.text() {
                h.names.push(n.to_string());
                self.next();
            }
            if h.names.is_empty() {
                let t = self.next();
                return self.expected("a host name", &t);
            }
        }
        self.open()?;
        loop {
            let t = self.next();
            let w = match &t.tok {
                Tok::Close => break,
                Tok::Word(w) => w.clone(),
                _ => return self.expected(HOST, &t),
            };
            match w.as_str() {
                "node-id" => {
                    let (n, _) = self.number("a node id")?;
                    self.semi()?;
                    h.node_id = Some(n);
                }
                "address" => {
                    let a = self.address()?;
                    self.semi()?;
                    h.address = Some(a);
                }
                "volume" => {
                    let v = self.volume(t.pos.clone())?;
                    add_volume(&mut h.volumes, v)?;
                }
                "device" | "disk" | "meta-disk" | "flexible-meta-disk" => {
                    let v = implicit_volume(&mut h.volumes, &t.pos);
                    self.volume_stmt(&w, &t, v)?;
                }
                "proxy" => self.skip_block()?,
                "skip" => self.skip_stmt()?,
                _ => return self.expected(HOST, &t),
            }
        }
        Ok(h)
    }

    fn conn_host(&mut self, pos: Pos) -> R<ConnHost> {
        let (name, _) = self.word("a host name")?;
        let mut ch = ConnHost {
            name,
            address: None,
            port: None,
            pos,
        };
        loop {
            let t = self.next();
            match t.tok.text() {
                None if t.tok == Tok::Semi => return Ok(ch),
                Some("address") => ch.address = Some(self.address()?),
                Some("port") => {
                    let (p, ppos) = self.number("a port number")?;
                    ch.port = Some(u16::try_from(p).or_else(|_| err(&ppos, "port out of range"))?);
                }
                Some("via") => {
                    // via proxy on HOST { ... }: parsed and ignored
                    while self.peek().tok.text().is_some() {
                        self.next();
                    }
                    self.skip_block()?;
                    return Ok(ch);
                }
                _ => return self.expected("address | port | via | ;", &t),
            }
        }
    }

    fn connection(&mut self, pos: Pos) -> R<Connection> {
        let mut c = Connection {
            name: None,
            hosts: Vec::new(),
            paths: Vec::new(),
            net: Vec::new(),
            pd: Vec::new(),
            volumes: Vec::new(),
            pos,
        };
        if let Some(n) = self.peek().tok.text() {
            c.name = Some(n.to_string());
            self.next();
        }
        self.open()?;
        loop {
            let t = self.next();
            let w = match &t.tok {
                Tok::Close => break,
                Tok::Word(w) => w.clone(),
                _ => return self.expected(CONNECTION, &t),
            };
            match w.as_str() {
                "host" => {
                    let h = self.conn_host(t.pos)?;
                    c.hosts.push(h);
                }
                "path" => {
                    self.open()?;
                    let mut p = Vec::new();
                    loop {
                        let t = self.next();
                        match t.tok.text() {
                            None if t.tok == Tok::Close => break,
                            Some("host") => p.push(self.conn_host(t.pos)?),
                            _ => return self.expected("host | }", &t),
                        }
                    }
                    c.paths.push(p);
                }
                "net" => self.opt_section(Class::Net, "a net option keyword", &mut c.net)?,
                "disk" => {
                    let mut sec = Sections::default();
                    self.disk_section(&mut sec, true)?;
                    for o in sec.pd {
                        set_opt(&mut c.pd, &o.key, o.val, o.pos);
                    }
                }
                "volume" => {
                    let (vnr, _) = self.number("a volume number")?;
                    self.open()?;
                    let mut pd = Vec::new();
                    loop {
                        let t = self.next();
                        match t.tok.text() {
                            None if t.tok == Tok::Close => break,
                            Some("disk") => {
                                let mut sec = Sections::default();
                                self.disk_section(&mut sec, true)?;
                                for o in sec.pd {
                                    set_opt(&mut pd, &o.key, o.val, o.pos);
                                }
                            }
                            _ => return self.expected("disk | }", &t),
                        }
                    }
                    c.volumes.push((vnr, pd));
                }
                "skip" => self.skip_stmt()?,
                _ => return self.expected(CONNECTION, &t),
            }
        }
        Ok(c)
    }

    fn mesh(&mut self, pos: Pos) -> R<Mesh> {
        let mut m = Mesh {
            hosts: Vec::new(),
            net: Vec::new(),
            pos,
        };
        self.open()?;
        loop {
            let t = self.next();
            match t.tok.text() {
                None if t.tok == Tok::Close => break,
                Some("hosts") => {
                    while let Some(n) = self.peek().tok.text() {
                        m.hosts.push(n.to_string());
                        self.next();
                    }
                    self.semi()?;
                }
                Some("net") => self.opt_section(Class::Net, "a net option keyword", &mut m.net)?,
                _ => return self.expected("hosts | net", &t),
            }
        }
        let _ = self.peek2();
        Ok(m)
    }
}

/// Sets (or replaces in place) an option.
fn set_opt(list: &mut Opts, key: &str, val: String, pos: Pos) {
    if let Some(o) = list.iter_mut().find(|o| o.key == key) {
        o.val = val;
        o.pos = pos;
    } else {
        list.push(Opt {
            key: key.to_string(),
            val,
            pos,
        });
    }
}

/// `/dev/x[3]` → (`/dev/x`, Some(3)); `/dev/x[a]` → (`/dev/x`, None); no brackets → None.
fn split_index(s: &str) -> Option<(String, Option<u32>)> {
    let open = s.find('[')?;
    let inner = s[open + 1..].strip_suffix(']');
    Some((s[..open].to_string(), inner.and_then(|i| i.parse().ok())))
}

fn implicit_volume<'a>(vols: &'a mut Vec<Volume>, pos: &Pos) -> &'a mut Volume {
    if let Some(i) = vols.iter().position(|v| v.vnr == 0) {
        &mut vols[i]
    } else {
        vols.push(Volume::new(0, true, pos.clone()));
        vols.last_mut().expect("just pushed")
    }
}

fn add_volume(vols: &mut Vec<Volume>, v: Volume) -> R<()> {
    if let Some(old) = vols.iter().find(|o| o.vnr == v.vnr) {
        return err(
            &v.pos,
            format!(
                "conflicting use of volume number {} ...\n{}: volume number {} first used here.",
                v.vnr, old.pos, v.vnr
            ),
        );
    }
    vols.push(v);
    Ok(())
}

const TOP: &str = "global | common | resource | skip | include |\n\trequire-drbd-module-version-{eq,ne,gt,ge,lt,le}";
const GLOBAL: &str = "dialog-refresh | minor-count | disable-ip-verification | usage-count | udev-always-use-vnr | cmd-timeout-{short,medium,long}";
const COMMON: &str = "disk | net | startup | syncer | handlers | options | proxy | protocol";
const RESOURCE: &str = "protocol | on | floating | disk | device | meta-disk | net | syncer | startup | handlers | options | volume | connection | connection-mesh | stacked-on-top-of | skip";
const VOLUME: &str = "device | disk | meta-disk | flexible-meta-disk";
const HOST: &str =
    "node-id | address | volume | device | disk | meta-disk | flexible-meta-disk | proxy";
const CONNECTION: &str = "host | path | net | disk | volume";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globbing() {
        assert!(glob_match("*.res", "r0.res"));
        assert!(!glob_match("*.res", "r0.conf"));
        assert!(glob_match("r[0-9].res", "r5.res"));
        assert!(glob_match("r?.res", "r5.res"));
    }

    #[test]
    fn seed_style_8x() {
        let c = parse_str(
            "common { syncer { rate 30M; } }\nresource r0 { protocol C; syncer { verify-alg sha1; al-extents 257; }\n on a { device /dev/drbd0; disk /dev/sdb; address 1.2.3.4:7789; meta-disk /dev/sdb1[1]; }\n on b { device /dev/drbd0; disk /dev/sdb; address 1.2.3.5:7789; meta-disk internal; } }",
            "t.res",
        )
        .unwrap();
        let r = &c.resources[0];
        assert_eq!(get(&r.sec.pd, "resync-rate").unwrap().val, "30M");
        assert_eq!(get(&r.sec.net, "verify-alg").unwrap().val, "sha1");
        assert_eq!(get(&r.sec.net, "protocol").unwrap().val, "C");
        assert_eq!(get(&r.sec.disk, "al-extents").unwrap().val, "257");
        assert_eq!(
            r.hosts[0].volumes[0].meta,
            Some(MetaDisk::Indexed("/dev/sdb1".into(), 1))
        );
        assert_eq!(r.hosts[0].volumes[0].device.as_ref().unwrap().minor, 0);
    }

    #[test]
    fn errors_have_line_and_column() {
        let e = parse_str("resource r0 {\n  net { frob 1; }\n}", "x.res").unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.res:2:9: Parse error: 'a net option keyword' expected,\n\tbut got 'frob'"
        );
        let e = parse_str("resource r0 { on a { address 1.2.3.4; } }", "x.res").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("x.res:1:37: Parse error: ':' expected"),
            "{e}"
        );
    }
}
