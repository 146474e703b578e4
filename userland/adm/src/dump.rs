//! `drbdadm dump`: the normalised configuration in drbdadm 9.22's layout.

use std::fmt::Write;

use crate::model::*;
use crate::resolve;

/// Quotes a value when it would not read back as one word.
pub fn quote(v: &str) -> String {
    let plain = !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, ';' | '{' | '}' | '"' | '#' | '\\'));
    if plain {
        v.to_string()
    } else {
        let mut s = String::from("\"");
        for c in v.chars() {
            if c == '"' || c == '\\' {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('"');
        s
    }
}

fn ind(n: usize) -> String {
    " ".repeat(n)
}

/// `key value;` with the key padded so values line up at column 25 and short values right-aligned.
fn kv(out: &mut String, indent: usize, key: &str, val: &str) {
    kv_raw(out, indent, key, &quote(val));
}

/// Like [`kv`] without quoting (values that are several words by design).
fn kv_raw(out: &mut String, indent: usize, key: &str, val: &str) {
    let w = 24usize.saturating_sub(indent);
    let _ = writeln!(out, "{}{key:<w$} {val:>3};", ind(indent));
}

/// `key value;` with a fixed 16-column key (drbdadm's layout of addresses and indexed meta-disks).
fn kv16(out: &mut String, indent: usize, key: &str, val: &str) {
    let _ = writeln!(out, "{}{key:<16} {val};", ind(indent));
}

fn section(out: &mut String, indent: usize, name: &str, lists: &[&Opts]) {
    if lists.iter().all(|l| l.is_empty()) {
        return;
    }
    let _ = writeln!(out, "{}{name} {{", ind(indent));
    for l in lists {
        for o in l.iter() {
            kv(out, indent + 4, &o.key, &o.val);
        }
    }
    let _ = writeln!(out, "{}}}", ind(indent));
}

fn sections(out: &mut String, indent: usize, s: &Sections) {
    section(out, indent, "options", &[&s.options]);
    section(out, indent, "net", &[&s.net]);
    section(out, indent, "disk", &[&s.disk, &s.dev, &s.pd]);
    section(out, indent, "startup", &[&s.startup]);
    section(out, indent, "handlers", &[&s.handlers]);
}

fn device_text(d: &Device) -> String {
    match &d.path {
        Some(p) => format!("{p} minor {}", d.minor),
        None => format!("minor {}", d.minor),
    }
}

fn meta_line(out: &mut String, indent: usize, m: &MetaDisk) {
    match m {
        MetaDisk::Internal => kv(out, indent, "meta-disk", "internal"),
        MetaDisk::Flex(d) => kv(out, indent, "meta-disk", d),
        MetaDisk::Indexed(d, i) => kv16(out, indent, "meta-disk", &format!("{d} [{i}]")),
    }
}

/// A resource-level volume: its own options and fields.
fn res_volume(out: &mut String, indent: usize, v: &Volume) {
    section(
        out,
        indent,
        "disk",
        &[&v.disk_opts, &v.dev_opts, &v.pd_opts],
    );
    if let Some(d) = &v.device {
        kv_raw(out, indent, "device", &device_text(d));
    }
    if let Some(d) = &v.disk {
        kv(out, indent, "disk", d);
    }
    if let Some(m) = &v.meta {
        meta_line(out, indent, m);
    }
}

/// A host-level volume: inherited options, the fields written at host level, and the disk.
fn host_volume(
    out: &mut String,
    indent: usize,
    r: &Resource,
    h: &Host,
    own: &Volume,
    merged: bool,
) {
    let eff = resolve::host_volume(r, h, own.vnr);
    if merged {
        section(
            out,
            indent,
            "disk",
            &[&eff.disk_opts, &eff.dev_opts, &eff.pd_opts],
        );
    } else {
        section(
            out,
            indent,
            "disk",
            &[&own.disk_opts, &own.dev_opts, &own.pd_opts],
        );
    }
    if let Some(d) = &own.device {
        kv_raw(out, indent, "device", &device_text(d));
    }
    if let Some(d) = &eff.disk {
        kv(out, indent, "disk", d);
    }
    if let Some(m) = &own.meta {
        meta_line(out, indent, m);
    }
}

fn conn_host_line(out: &mut String, indent: usize, ch: &ConnHost) {
    let mut s = format!("{}host {}", ind(indent), ch.name);
    if let Some(a) = &ch.address {
        let _ = write!(s, "{}address         {}", ind(indent + 1), a.conf_text());
    } else if let Some(p) = ch.port {
        let _ = write!(s, "{}port {p}", ind(indent + 1));
    }
    let _ = writeln!(out, "{s};");
}

fn resource(out: &mut String, cfg: &Config, r: &Resource, host: &str, merged: bool, named: bool) {
    let _ = writeln!(
        out,
        "# resource {} on {host}: not ignored, not stacked",
        r.name
    );
    let _ = writeln!(
        out,
        "# defined at {}:{}",
        abs_of(cfg, &r.pos.file),
        r.pos.line
    );
    let _ = writeln!(out, "resource {} {{", quote(&r.name));
    for v in &r.volumes {
        if v.implicit {
            res_volume(out, 4, v);
        }
    }
    for v in &r.volumes {
        if !v.implicit {
            let _ = writeln!(out, "    volume {} {{", v.vnr);
            res_volume(out, 8, v);
            let _ = writeln!(out, "    }}");
        }
    }
    for h in &r.hosts {
        if h.floating {
            let a = h
                .address
                .as_ref()
                .map(Address::conf_text)
                .unwrap_or_default();
            let _ = writeln!(out, "    {:<16} {a} {{", "floating");
        } else {
            let names: Vec<String> = h.names.iter().map(|n| quote(n)).collect();
            let _ = writeln!(out, "    on {} {{", names.join(" "));
        }
        if let Some(id) = h.node_id {
            let _ = writeln!(out, "        node-id {id};");
        }
        for v in &h.volumes {
            if v.implicit {
                host_volume(out, 8, r, h, v, merged);
            } else {
                let _ = writeln!(out, "        volume {} {{", v.vnr);
                host_volume(out, 12, r, h, v, merged);
                let _ = writeln!(out, "        }}");
            }
        }
        if !h.floating {
            if let Some(a) = &h.address {
                kv16(out, 8, "address", &a.conf_text());
            }
        }
        let _ = writeln!(out, "    }}");
    }
    for c in &r.conns {
        match &c.name {
            Some(n) => {
                let _ = writeln!(out, "    connection {} {{", quote(n));
            }
            None => {
                let _ = writeln!(out, "    connection {{");
            }
        }
        for ch in &c.hosts {
            conn_host_line(out, 8, ch);
        }
        for p in &c.paths {
            let _ = writeln!(out, "        path {{");
            for ch in p {
                conn_host_line(out, 12, ch);
            }
            let _ = writeln!(out, "        }}");
        }
        let names: Vec<&str> = c
            .hosts
            .iter()
            .chain(c.paths.iter().flatten())
            .map(|ch| ch.name.as_str())
            .collect();
        // drbdadm 9.22 shows `_name` (the peer) only when dumping named resources
        let me = r.hosts.iter().find(|h| h.is(host));
        let mut net: Opts = Vec::new();
        if named {
            if let Some(m) = me.filter(|m| names.iter().any(|n| m.is(n))) {
                if let Some(peer_n) = names.iter().find(|n| !m.is(n)) {
                    let peer = r.hosts.iter().find(|h| h.is(peer_n));
                    net.push(Opt {
                        key: "_name".into(),
                        val: peer.map(Host::name).unwrap_or_else(|| peer_n.to_string()),
                        pos: crate::lex::Pos::none(),
                    });
                }
            }
        }
        let rev: Opts = if merged {
            r.sec.net.iter().rev().cloned().collect()
        } else {
            Vec::new()
        };
        for o in rev.iter().chain(c.net.iter()) {
            net.retain(|x| x.key != o.key);
            net.push(o.clone());
        }
        section(out, 8, "net", &[&net]);
        section(out, 8, "disk", &[&c.pd]);
        for (vnr, own) in &c.volumes {
            let _ = writeln!(out, "        volume {vnr} {{");
            let rv = r
                .volumes
                .iter()
                .find(|v| v.vnr == *vnr)
                .map(|v| v.pd_opts.clone())
                .unwrap_or_default();
            let mut pd: Opts = Vec::new();
            let none: Opts = Vec::new();
            let (a, b, d) = if merged {
                (&r.sec.pd, &rv, &c.pd)
            } else {
                (&none, &none, &none)
            };
            for o in a.iter().chain(b.iter()).chain(d.iter()).chain(own.iter()) {
                pd.retain(|x| x.key != o.key);
                pd.push(o.clone());
            }
            section(out, 12, "disk", &[&pd]);
            let _ = writeln!(out, "        }}");
        }
        let _ = writeln!(out, "    }}");
    }
    for m in &r.meshes {
        let _ = writeln!(out, "    connection-mesh {{");
        let _ = writeln!(out, "        hosts {};", m.hosts.join(" "));
        section(out, 8, "net", &[&m.net]);
        let _ = writeln!(out, "    }}");
    }
    sections(out, 4, if merged { &r.sec } else { &r.own });
    let _ = writeln!(out, "}}\n");
}

fn abs_of(cfg: &Config, file: &str) -> String {
    if file == cfg.file {
        return cfg.abs_file.clone();
    }
    std::fs::canonicalize(file)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| file.to_string())
}

/// Dumps the resources `which` (indices), or everything with the global and common sections when
/// `all` is set. `merged` (drbdadm's dry-run dump) shows options inherited into hosts and
/// connections.
pub fn dump(cfg: &Config, which: &[usize], all: bool, host: &str, merged: bool) -> String {
    let mut out = String::new();
    if all {
        let _ = writeln!(out, "# {}", cfg.abs_file);
        if !cfg.global.is_empty() {
            out.push_str("global {\n");
            let mut global: Vec<&Opt> = cfg.global.iter().collect();
            global.sort_by_key(|o| !o.val.is_empty());
            for o in global {
                if o.val.is_empty() {
                    let _ = writeln!(out, "    {};", o.key);
                } else {
                    let _ = writeln!(out, "    {} {};", o.key, quote(&o.val));
                }
            }
            out.push_str("}\n\n");
        }
        if let Some(c) = &cfg.common {
            out.push_str("common {\n");
            sections(&mut out, 4, c);
            out.push_str("}\n\n");
        }
    }
    for &i in which {
        resource(&mut out, cfg, &cfg.resources[i], host, merged, !all);
    }
    out
}
