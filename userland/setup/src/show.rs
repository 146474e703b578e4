//! `drbdsetup show`: the running configuration in drbd.conf syntax (basic:
//! resource options, this host's volumes with disk options, connections
//! with their net options). Option names, defaults and value names come
//! from genl-spec's member tables.

use crate::msg::Reply;
use genl_spec::generated::{
    disk_conf, set_by_tla, tla, AttrSet, AttrType, DefaultValue, Member, MD_INDEX_FLEX_EXT,
    MD_INDEX_FLEX_INT, MD_INDEX_INTERNAL,
};
use genl_spec::nla::{self, Attr};
use serde_json::{json, Map, Value};
use std::fmt::Write;

fn value_text(m: &Member, a: &Attr<'_>) -> Option<(String, bool)> {
    let is_default = |v: i128| match m.default {
        Some(DefaultValue::Unsigned(d)) => i128::from(d) == v,
        Some(DefaultValue::Signed(d)) => i128::from(d) == v,
        _ => false,
    };
    let unit = match m.scale {
        b'k' => "k",
        b's' => "s",
        _ => "",
    };
    let num = |v: i128| -> String {
        if let Some(vals) = m.values {
            if let Some(e) = vals.iter().find(|e| i128::from(e.nr) == v) {
                return e.name.to_string();
            }
        }
        format!("{v}{unit}")
    };
    Some(match m.ty {
        AttrType::Flag => {
            let b = a.as_flag().ok()?;
            (
                if b { "yes" } else { "no" }.to_string(),
                is_default(i128::from(b)),
            )
        }
        AttrType::U32 => {
            let v = i128::from(a.as_u32().ok()?);
            (num(v), is_default(v))
        }
        AttrType::S32 => {
            let v = i128::from(a.as_i32().ok()?);
            (num(v), is_default(v))
        }
        AttrType::U64 => {
            let v = i128::from(a.as_u64().ok()?);
            (num(v), is_default(v))
        }
        AttrType::String => {
            let s = a.as_str(0).ok()?;
            let dflt = matches!(m.default, Some(DefaultValue::Str(d)) if d == s);
            (format!("\"{s}\""), dflt || s.is_empty())
        }
        AttrType::Binary => return None,
    })
}

/// The attributes of a set nest in drbdsetup's order (the set's member table), each with its
/// member; unknown or duplicate attributes are skipped.
fn ordered<'a>(set: &AttrSet, payload: &'a [u8]) -> Vec<(&'static Member, Attr<'a>)> {
    let attrs: Vec<Attr<'a>> = nla::iter(payload).filter_map(Result::ok).collect();
    set.members
        .iter()
        .filter_map(|m| attrs.iter().find(|a| a.kind == m.nr).map(|a| (m, *a)))
        .collect()
}

/// The unit comment drbdsetup prints after time-valued options.
fn unit_of(opt: &str) -> Option<&'static str> {
    match opt {
        "connect-int" | "ping-int" => Some("seconds"),
        "timeout"
        | "ping-timeout"
        | "c-plan-ahead"
        | "c-delay-target"
        | "disk-timeout"
        | "twopc-timeout"
        | "auto-promote-timeout" => Some("1/10 seconds"),
        _ => None,
    }
}

/// The `key value;` lines of the options in a set nest, with drbdsetup's `# unit, default`
/// comments.
fn options(set: &AttrSet, payload: &[u8], show_defaults: bool, indent: usize) -> String {
    let mut out = String::new();
    for (m, a) in ordered(set, payload) {
        let Some(opt) = m.option else { continue };
        let Some((text, is_default)) = value_text(m, &a) else {
            continue;
        };
        if is_default && !show_defaults {
            continue;
        }
        let _ = write!(out, "{:indent$}{opt:<16}\t{text};", "");
        let unit = unit_of(opt);
        if unit.is_some() || is_default {
            let comment: Vec<&str> = unit
                .into_iter()
                .chain(is_default.then_some("default"))
                .collect();
            let _ = write!(out, " # {}", comment.join(", "));
        }
        out.push('\n');
    }
    out
}

/// A `name { … }` section; empty sections are left out, as drbdsetup does.
fn block(name: &str, body: &str, indent: usize) -> String {
    if body.is_empty() {
        return String::new();
    }
    format!("{:indent$}{name} {{\n{body}{:indent$}}}\n", "", "")
}

fn nest(attrs: &[u8], t: u16) -> Option<&[u8]> {
    nla::find(attrs, t).ok().flatten().map(|a| a.payload)
}

/// `path { _this_host ipv4 A:P; _remote_host ipv4 B:P; }` of a connection whose context
/// carries the path addresses (drbdadm adjust compares it with the config).
fn path_block(c: &events2::state::Context) -> String {
    let conf = |raw: &Option<Vec<u8>>| {
        raw.as_deref()
            .and_then(events2::state::format_sockaddr)
            .map(|s| s.replacen(':', " ", 1))
    };
    match (conf(&c.my_addr), conf(&c.peer_addr)) {
        (Some(mine), Some(peer)) => format!(
            "        path {{\n            _this_host {mine};\n            _remote_host {peer};\n        }}\n"
        ),
        _ => String::new(),
    }
}

/// Renders the configuration of the resources in the dump records.
pub fn render(
    resources: &[Reply],
    devices: &[Reply],
    connections: &[Reply],
    only: Option<&str>,
    show_defaults: bool,
) -> String {
    let ctx_of = |r: &Reply| events2::state::decode_context(&r.attrs).ok();
    let mut out = String::new();
    let mut names: Vec<String> = resources
        .iter()
        .filter_map(ctx_of)
        .map(|c| c.resource)
        .filter(|n| only.is_none_or(|o| o == n))
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let res = resources
            .iter()
            .find(|r| ctx_of(r).is_some_and(|c| c.resource == name));
        let mut body = String::new();
        let opts_set = set_by_tla(tla::RESOURCE_OPTS);
        let mut node_id = None;
        if let (Some(r), Some(set)) = (res, opts_set) {
            if let Some(p) = nest(&r.attrs, tla::RESOURCE_OPTS) {
                body.push_str(&block("options", &options(set, p, show_defaults, 8), 4));
                node_id = nla::find(p, genl_spec::generated::res_opts::NODE_ID)
                    .ok()
                    .flatten()
                    .and_then(|a| a.as_u32().ok());
            }
        }
        let mut host = String::new();
        if let Some(id) = node_id {
            let _ = writeln!(host, "        node-id\t\t\t{id};");
        }
        for d in devices {
            let Some(c) = ctx_of(d) else { continue };
            if c.resource != name {
                continue;
            }
            let mut v = String::new();
            let _ = writeln!(v, "            device\t\t\tminor {};", d.minor);
            match nest(&d.attrs, tla::DISK_CONF) {
                Some(dc) => {
                    let s = |nr| {
                        nla::find(dc, nr)
                            .ok()
                            .flatten()
                            .and_then(|a| a.as_str(0).ok().map(str::to_owned))
                    };
                    let backing = s(disk_conf::BACKING_DEV).unwrap_or_default();
                    let meta = s(disk_conf::META_DEV).unwrap_or_default();
                    let idx = nla::find(dc, disk_conf::META_DEV_IDX)
                        .ok()
                        .flatten()
                        .and_then(|a| a.as_i32().ok())
                        .unwrap_or(MD_INDEX_FLEX_INT);
                    let _ = writeln!(v, "            disk\t\t\t\"{backing}\";");
                    let md = match idx {
                        MD_INDEX_FLEX_INT => "internal".to_string(),
                        MD_INDEX_FLEX_EXT => format!("\"{meta}\""),
                        n => format!("\"{meta}\" [ {n} ]"),
                    };
                    let _ = writeln!(v, "            meta-disk\t\t\t{md};");
                    let set = &disk_conf::SET;
                    v.push_str(&block("disk", &options(set, dc, show_defaults, 16), 12));
                }
                None => {
                    let _ = writeln!(v, "            disk\t\t\tnone;");
                }
            }
            host.push_str(&block(&format!("volume {}", c.volume.unwrap_or(0)), &v, 8));
        }
        body.push_str(&block("_this_host", &host, 4));
        for conn in connections {
            let Some(c) = ctx_of(conn) else { continue };
            if c.resource != name {
                continue;
            }
            let mut cb = String::new();
            if let Some(p) = c.peer_node_id {
                let _ = writeln!(cb, "        _peer_node_id {p};");
            }
            cb.push_str(&path_block(&c));
            if let Some(info) = nest(&conn.attrs, tla::CONNECTION_INFO) {
                if let Some(cs) = nla::find(info, 1)
                    .ok()
                    .flatten()
                    .and_then(|a| a.as_u32().ok())
                {
                    if let Some(s) = genl_spec::generated::ConnState::from_u32(cs) {
                        let _ = writeln!(cb, "        _cstate {};", s.name());
                    }
                }
            }
            if let (Some(p), Some(set)) =
                (nest(&conn.attrs, tla::NET_CONF), set_by_tla(tla::NET_CONF))
            {
                cb.push_str(&block("net", &options(set, p, show_defaults, 12), 8));
            }
            body.push_str(&block("connection", &cb, 4));
        }
        out.push_str(&block(&format!("resource \"{name}\""), &body, 0));
        out.push('\n');
    }
    out
}

/// The options of a set nest as a JSON object (`show --json`): option name to value text
/// (numbers with their unit suffix, enum names), booleans as JSON booleans.
fn options_json(set: &AttrSet, payload: &[u8], show_defaults: bool) -> Map<String, Value> {
    let mut out = Map::new();
    for (m, a) in ordered(set, payload) {
        let Some(opt) = m.option else { continue };
        let Some((text, is_default)) = value_text(m, &a) else {
            continue;
        };
        if is_default && !show_defaults {
            continue;
        }
        let v = match m.ty {
            AttrType::Flag => Value::Bool(text == "yes"),
            AttrType::String => Value::String(text.trim_matches('"').to_string()),
            _ => Value::String(text),
        };
        out.insert(opt.to_string(), v);
    }
    out
}

/// `show --json`: per resource `resource`, `options`, `_this_host` (`node-id`, `volumes` with
/// `volume_nr`, `device_minor`, `backing-disk`, `meta-disk`, `disk`), and `connections`
/// (`path`, `_is_standalone`, `net`, `_peer_node_id`), in drbdsetup's order. Empty option
/// objects are left out, as drbdsetup does.
pub fn render_json(
    resources: &[Reply],
    devices: &[Reply],
    connections: &[Reply],
    only: Option<&str>,
    show_defaults: bool,
) -> Value {
    let ctx_of = |r: &Reply| events2::state::decode_context(&r.attrs).ok();
    let mut names: Vec<String> = resources
        .iter()
        .filter_map(ctx_of)
        .map(|c| c.resource)
        .filter(|n| only.is_none_or(|o| o == n))
        .collect();
    names.sort();
    names.dedup();
    let mut arr = Vec::new();
    for name in names {
        let mut rm = Map::new();
        rm.insert("resource".into(), json!(name));
        let res = resources
            .iter()
            .find(|r| ctx_of(r).is_some_and(|c| c.resource == name));
        let mut node_id = None;
        if let (Some(r), Some(set)) = (res, set_by_tla(tla::RESOURCE_OPTS)) {
            if let Some(p) = nest(&r.attrs, tla::RESOURCE_OPTS) {
                let o = options_json(set, p, show_defaults);
                if !o.is_empty() {
                    rm.insert("options".into(), Value::Object(o));
                }
                node_id = nla::find(p, genl_spec::generated::res_opts::NODE_ID)
                    .ok()
                    .flatten()
                    .and_then(|a| a.as_u32().ok());
            }
        }
        let mut host = Map::new();
        if let Some(id) = node_id {
            host.insert("node-id".into(), json!(id));
        }
        let mut vols = Vec::new();
        for d in devices {
            let Some(c) = ctx_of(d) else { continue };
            if c.resource != name {
                continue;
            }
            let mut vm = Map::new();
            vm.insert("volume_nr".into(), json!(c.volume.unwrap_or(0)));
            vm.insert("device_minor".into(), json!(d.minor));
            if let Some(dc) = nest(&d.attrs, tla::DISK_CONF) {
                let s = |nr| {
                    nla::find(dc, nr)
                        .ok()
                        .flatten()
                        .and_then(|a| a.as_str(0).ok().map(str::to_owned))
                };
                let backing = s(disk_conf::BACKING_DEV).unwrap_or_default();
                if !backing.is_empty() {
                    let meta = s(disk_conf::META_DEV).unwrap_or_default();
                    let idx = nla::find(dc, disk_conf::META_DEV_IDX)
                        .ok()
                        .flatten()
                        .and_then(|a| a.as_i32().ok())
                        .unwrap_or(MD_INDEX_FLEX_INT);
                    vm.insert("backing-disk".into(), json!(backing));
                    match idx {
                        MD_INDEX_FLEX_INT | MD_INDEX_INTERNAL => {
                            vm.insert("meta-disk".into(), json!("internal"));
                        }
                        MD_INDEX_FLEX_EXT => {
                            vm.insert("meta-disk".into(), json!(meta));
                        }
                        n => {
                            vm.insert(meta, json!(n));
                        }
                    }
                }
                let o = options_json(&disk_conf::SET, dc, show_defaults);
                if !o.is_empty() {
                    vm.insert("disk".into(), Value::Object(o));
                }
            } else {
                vm.insert("disk".into(), json!("none"));
            }
            vols.push(Value::Object(vm));
        }
        host.insert("volumes".into(), Value::Array(vols));
        rm.insert("_this_host".into(), Value::Object(host));
        let mut conns = Vec::new();
        for conn in connections {
            let Some(c) = ctx_of(conn) else { continue };
            if c.resource != name {
                continue;
            }
            let mut cm = Map::new();
            let addr = |raw: &Option<Vec<u8>>| {
                raw.as_deref()
                    .and_then(events2::state::format_sockaddr)
                    .map(|s| s.replacen(':', " ", 1))
            };
            if let (Some(mine), Some(peer)) = (addr(&c.my_addr), addr(&c.peer_addr)) {
                cm.insert(
                    "path".into(),
                    json!({ "_this_host": mine, "_remote_host": peer }),
                );
            }
            let standalone = nest(&conn.attrs, tla::CONNECTION_INFO)
                .and_then(|info| nla::find(info, 1).ok().flatten())
                .and_then(|a| a.as_u32().ok())
                == Some(genl_spec::generated::ConnState::StandAlone as u32);
            if standalone {
                cm.insert("_is_standalone".into(), json!(true));
            }
            if let (Some(p), Some(set)) =
                (nest(&conn.attrs, tla::NET_CONF), set_by_tla(tla::NET_CONF))
            {
                let o = options_json(set, p, show_defaults);
                if !o.is_empty() {
                    cm.insert("net".into(), Value::Object(o));
                }
            }
            // drbdsetup prints the peer's node id last.
            cm.insert("_peer_node_id".into(), json!(c.peer_node_id.unwrap_or(0)));
            conns.push(Value::Object(cm));
        }
        if !conns.is_empty() {
            rm.insert("connections".into(), Value::Array(conns));
        }
        arr.push(Value::Object(rm));
    }
    Value::Array(arr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use genl_spec::generated::{cfg_context, cmd, net_conf, res_opts};
    use genl_spec::nla::NlaWriter;

    fn sockaddr(ip: [u8; 4], port: u16) -> Vec<u8> {
        let mut v = vec![0u8; 16];
        v[..2].copy_from_slice(&2u16.to_ne_bytes());
        v[2..4].copy_from_slice(&port.to_be_bytes());
        v[4..8].copy_from_slice(&ip);
        v
    }

    fn reply(command: u8, minor: u32, build: impl FnOnce(&mut NlaWriter<'_>)) -> Reply {
        let mut buf = vec![0u8; 4096];
        let mut w = NlaWriter::new(&mut buf);
        build(&mut w);
        Reply {
            cmd: command,
            minor,
            ret_code: 0,
            attrs: w.as_bytes().to_vec(),
        }
    }

    #[test]
    fn connection_with_path_and_net_options() {
        let ctx = |w: &mut NlaWriter<'_>, path: bool| {
            let n = w.nest_start(tla::CFG_CONTEXT).unwrap();
            w.put_str(cfg_context::CTX_RESOURCE_NAME, "dvolume")
                .unwrap();
            if path {
                w.put_u32(cfg_context::CTX_PEER_NODE_ID, 1).unwrap();
                w.put_str(cfg_context::CTX_CONN_NAME, "node1").unwrap();
                w.put_bytes(cfg_context::CTX_MY_ADDR, &sockaddr([10, 0, 0, 1], 7789))
                    .unwrap();
                w.put_bytes(cfg_context::CTX_PEER_ADDR, &sockaddr([10, 0, 0, 2], 7789))
                    .unwrap();
            }
            w.nest_end(n).unwrap();
        };
        let res = reply(cmd::ADM_GET_RESOURCES, u32::MAX, |w| {
            ctx(w, false);
            let n = w.nest_start(tla::RESOURCE_OPTS).unwrap();
            w.put_u32(res_opts::NODE_ID, 0).unwrap();
            w.nest_end(n).unwrap();
        });
        let conn = reply(cmd::ADM_GET_CONNECTIONS, u32::MAX, |w| {
            ctx(w, true);
            let n = w.nest_start(tla::NET_CONF).unwrap();
            w.put_str(net_conf::NAME, "node1").unwrap();
            w.put_u32(net_conf::WIRE_PROTOCOL, 3).unwrap();
            w.put_u32(net_conf::PING_TIMEO, 7).unwrap();
            w.nest_end(n).unwrap();
        });
        let text = render(
            std::slice::from_ref(&res),
            &[],
            std::slice::from_ref(&conn),
            Some("dvolume"),
            false,
        );
        assert!(
            text.contains(
                "    connection {\n        _peer_node_id 1;\n        path {\n            _this_host ipv4 10.0.0.1:7789;\n            _remote_host ipv4 10.0.0.2:7789;\n        }\n"
            ),
            "{text}"
        );
        assert!(text.contains("_name"), "{text}");
        assert!(text.contains("ping-timeout    \t7;"), "{text}");
        assert!(!text.contains("protocol"), "{text}");
        print!("{text}");
        let v = render_json(&[res], &[], &[conn], Some("dvolume"), false);
        let r = &v[0];
        assert_eq!(r["resource"], "dvolume");
        assert_eq!(r["_this_host"]["node-id"], 0);
        let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["resource", "_this_host", "connections"], "{v}");
        let c = &r["connections"][0];
        assert_eq!(c["_peer_node_id"], 1);
        assert_eq!(c["path"]["_this_host"], "ipv4 10.0.0.1:7789");
        assert_eq!(c["net"]["_name"], "node1");
        assert_eq!(c["net"]["ping-timeout"], "7");
    }
}
