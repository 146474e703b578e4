//! `drbdsetup events2` lines.
//!
//! Messages are handled in batches (up to and including the first message
//! without NOTIFY_CONTINUES). A `change` line carries the object's identity
//! keys and only the key groups whose values changed in the batch; `exists`,
//! `create` and `--full` lines carry all keys. Resource lines show the
//! promotion score computed over the whole batch.

use crate::model::{path_addrs, Model, Resource};
use crate::state::{Body, Event};
use genl_spec::generated::{enums, notify};

/// Output options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineOpts {
    /// `--statistics`: add counters.
    pub statistics: bool,
    /// `--full`: all keys on every line (implies statistics).
    pub full: bool,
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn yes_no_unknown(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}

/// Key groups of an object: each group is printed whole or not at all.
type Groups = Vec<(&'static str, String)>;

fn resource_groups(r: &Resource, opts: LineOpts) -> Groups {
    let mut g = vec![
        ("role", format!("role:{}", r.info.role.name())),
        ("susp", format!("suspended:{}", r.info.suspended_str())),
        (
            "fio",
            format!("force-io-failures:{}", yes_no(r.info.force_io_failures)),
        ),
    ];
    if opts.statistics || opts.full {
        if let Some(s) = r.stats {
            let wo = enums::write_ordering::name(s.write_ordering).unwrap_or("?");
            g.push(("wo", format!("write-ordering:{wo}")));
        }
    }
    let (may, score) = r.promotion();
    g.push((
        "promo",
        format!("may_promote:{} promotion_score:{score}", yes_no(may)),
    ));
    g
}

fn device_groups(r: &Resource, vol: u32, opts: LineOpts) -> Groups {
    let Some(d) = r.devices.get(&vol) else {
        return Vec::new();
    };
    let i = &d.info;
    let mut g = vec![(
        "state",
        format!(
            "backing_dev:{} disk:{} client:{} open:{} quorum:{}",
            i.backing_dev.as_deref().unwrap_or("none"),
            i.disk.name(),
            yes_no_unknown(i.intentional_diskless),
            yes_no_unknown(i.is_open),
            yes_no(i.has_quorum)
        ),
    )];
    if opts.statistics || opts.full {
        if let Some(s) = &d.stats {
            let blocked = match (s.upper_blocked, s.lower_blocked) {
                (false, false) => "no",
                (true, false) => "upper",
                (false, true) => "lower",
                (true, true) => "upper,lower",
            };
            g.push((
                "stats",
                format!(
                    "size:{} read:{} written:{} al-writes:{} bm-writes:{} upper-pending:{} lower-pending:{} al-suspended:{} blocked:{blocked}",
                    s.size / 2,
                    s.read / 2,
                    s.write / 2,
                    s.al_writes,
                    s.bm_writes,
                    s.upper_pending,
                    s.lower_pending,
                    yes_no(s.al_suspended)
                ),
            ));
        }
    }
    g
}

fn connection_groups(r: &Resource, peer: u32, opts: LineOpts) -> Groups {
    let Some(c) = r.connections.get(&peer) else {
        return Vec::new();
    };
    let mut g = vec![
        ("cstate", format!("connection:{}", c.info.cstate.name())),
        ("role", format!("role:{}", c.info.peer_role.name())),
    ];
    if opts.statistics || opts.full {
        if let Some(s) = c.stats {
            g.push((
                "stats",
                format!(
                    "congested:{} ap-in-flight:{} rs-in-flight:{}",
                    yes_no(s.congested),
                    s.ap_in_flight / 2,
                    s.rs_in_flight / 2
                ),
            ));
        }
    }
    g
}

fn peer_device_groups(r: &Resource, peer: u32, vol: u32, opts: LineOpts) -> Groups {
    let Some(p) = r
        .connections
        .get(&peer)
        .and_then(|c| c.peer_devices.get(&vol))
    else {
        return Vec::new();
    };
    let i = &p.info;
    let mut g = vec![
        ("repl", format!("replication:{}", i.repl.name())),
        (
            "pdisk",
            format!(
                "peer-disk:{} peer-client:{}",
                i.peer_disk.name(),
                yes_no_unknown(i.peer_intentional_diskless)
            ),
        ),
        (
            "rsusp",
            format!("resync-suspended:{}", i.resync_suspended_str()),
        ),
    ];
    if let Some(done) = p.stats.and_then(|s| s.done_percent()) {
        g.push(("done", format!("done:{done:.2}")));
    }
    if opts.statistics || opts.full {
        if let Some(s) = p.stats {
            let mut text = format!(
                "received:{} sent:{} out-of-sync:{} pending:{} unacked:{}",
                s.received / 2,
                s.sent / 2,
                s.out_of_sync / 2,
                s.pending,
                s.unacked
            );
            // drbdsetup counts --statistics and --full each as one more level of verbosity.
            let verbose = u8::from(opts.statistics) + u8::from(opts.full);
            for k in crate::rates::timing_keys(&s, verbose) {
                text.push(' ');
                text.push_str(&k);
            }
            g.push(("stats", text));
        }
    }
    g
}

fn path_groups(r: &Resource, peer: u32, local: &str, remote: &str) -> Groups {
    let Some(p) = r.connections.get(&peer).and_then(|c| {
        c.paths
            .iter()
            .find(|p| p.local == local && p.peer == remote)
    }) else {
        return Vec::new();
    };
    vec![("est", format!("established:{}", yes_no(p.info.established)))]
}

fn conn_ident(ev: &Event, model: &Model) -> String {
    let peer = ev.ctx.peer_node_id.unwrap_or(0);
    let name = ev.ctx.conn_name.clone().or_else(|| {
        model
            .resources
            .get(&ev.ctx.resource)
            .and_then(|r| r.connections.get(&peer))
            .and_then(|c| c.conn_name.clone())
    });
    match name {
        Some(n) => format!(" peer-node-id:{peer} conn-name:{n}"),
        None => format!(" peer-node-id:{peer}"),
    }
}

/// Object kind and identity keys of an event (after `name:`).
fn identity(ev: &Event, model: &Model) -> (&'static str, String) {
    let name = format!("name:{}", ev.ctx.resource);
    match &ev.body {
        Body::Resource { .. } => ("resource", name),
        Body::Device { .. } => {
            let mut s = format!("{name} volume:{}", ev.ctx.volume.unwrap_or(0));
            let minor = ev.minor.or_else(|| {
                model
                    .resources
                    .get(&ev.ctx.resource)
                    .and_then(|r| r.devices.get(&ev.ctx.volume.unwrap_or(0)))
                    .map(|d| d.minor)
            });
            if let Some(m) = minor {
                s.push_str(&format!(" minor:{m}"));
            }
            ("device", s)
        }
        Body::Connection { .. } => ("connection", format!("{name}{}", conn_ident(ev, model))),
        Body::PeerDevice { .. } => (
            "peer-device",
            format!(
                "{name}{} volume:{}",
                conn_ident(ev, model),
                ev.ctx.volume.unwrap_or(0)
            ),
        ),
        Body::Path { .. } => {
            let (l, p) = path_addrs(&ev.ctx);
            (
                "path",
                format!("{name}{} local:{l} peer:{p}", conn_ident(ev, model)),
            )
        }
        Body::Helper { name: helper, .. } => {
            let mut s = name;
            if ev.ctx.peer_node_id.is_some() {
                s.push_str(&conn_ident(ev, model));
            }
            if ev.ctx.my_addr.is_some() && ev.ctx.peer_addr.is_some() {
                let (l, p) = path_addrs(&ev.ctx);
                s.push_str(&format!(" local:{l} peer:{p}"));
            }
            if let Some(v) = ev.ctx.volume {
                s.push_str(&format!(" volume:{v}"));
            }
            if let Some(m) = ev.minor {
                s.push_str(&format!(" minor:{m}"));
            }
            s.push_str(&format!(" helper:{helper}"));
            ("helper", s)
        }
        Body::InitialStateDone => ("-", String::new()),
    }
}

fn groups_of(ev: &Event, model: &Model, opts: LineOpts) -> Groups {
    let Some(r) = model.resources.get(&ev.ctx.resource) else {
        return Vec::new();
    };
    let vol = ev.ctx.volume.unwrap_or(0);
    let peer = ev.ctx.peer_node_id.unwrap_or(0);
    match &ev.body {
        Body::Resource { .. } => resource_groups(r, opts),
        Body::Device { .. } => device_groups(r, vol, opts),
        Body::Connection { .. } => connection_groups(r, peer, opts),
        Body::PeerDevice { .. } => peer_device_groups(r, peer, vol, opts),
        Body::Path { .. } => {
            let (l, p) = path_addrs(&ev.ctx);
            path_groups(r, peer, &l, &p)
        }
        _ => Vec::new(),
    }
}

fn join(kind: &str, action: &str, ident: &str, groups: &[&str]) -> String {
    let mut s = format!("{action} {kind} {ident}");
    for g in groups {
        s.push(' ');
        s.push_str(g);
    }
    s
}

/// Turns decoded messages into events2 lines, keeping the model up to date.
#[derive(Debug, Default)]
pub struct Printer {
    /// Current state of everything seen so far.
    pub model: Model,
    /// Output options.
    pub opts: LineOpts,
    pending: Vec<Event>,
}

impl Printer {
    /// A printer with an empty model.
    pub fn new(opts: LineOpts) -> Self {
        Printer {
            model: Model::default(),
            opts,
            pending: Vec::new(),
        }
    }

    /// Feeds one message; returns the lines to print (empty while a batch
    /// is still open).
    pub fn push(&mut self, ev: Event) -> Vec<String> {
        let continues = ev.continues;
        self.pending.push(ev);
        if continues {
            return Vec::new();
        }
        let batch = std::mem::take(&mut self.pending);
        self.batch(&batch)
    }

    /// Prints whatever is pending (at end of input).
    pub fn flush(&mut self) -> Vec<String> {
        let batch = std::mem::take(&mut self.pending);
        self.batch(&batch)
    }

    /// Applies a complete batch and returns its lines.
    pub fn batch(&mut self, events: &[Event]) -> Vec<String> {
        let before = self.model.clone();
        for ev in events {
            self.model.apply(ev);
        }
        let mut out = Vec::new();
        // Promotion changes caused by other objects of the batch.
        for ev in events {
            if ev.action != notify::CHANGE && ev.action != notify::CREATE {
                continue;
            }
            if matches!(ev.body, Body::Resource { .. }) {
                continue;
            }
            let name = &ev.ctx.resource;
            let had_resource_line = events
                .iter()
                .any(|e| matches!(e.body, Body::Resource { .. }) && &e.ctx.resource == name);
            let (Some(old), Some(new)) =
                (before.resources.get(name), self.model.resources.get(name))
            else {
                continue;
            };
            if had_resource_line || old.promotion() == new.promotion() {
                continue;
            }
            let (may, score) = new.promotion();
            let line = format!(
                "change resource name:{name} may_promote:{} promotion_score:{score}",
                yes_no(may)
            );
            if !out.contains(&line) {
                out.push(line);
            }
        }
        for ev in events {
            if let Some(line) = self.line(ev, &before) {
                out.push(line);
            }
        }
        out
    }

    fn line(&self, ev: &Event, before: &Model) -> Option<String> {
        if matches!(ev.body, Body::InitialStateDone) {
            return Some("exists -".into());
        }
        let action = notify::word(ev.action)?;
        if ev.action == notify::RENAME {
            if let Body::Resource {
                new_name: Some(n), ..
            } = &ev.body
            {
                return Some(format!(
                    "rename resource name:{} new_name:{n}",
                    ev.ctx.resource
                ));
            }
            return None;
        }
        if let Body::Helper { status, .. } = &ev.body {
            let (kind, ident) = identity(ev, &self.model);
            let mut s = format!("{action} {kind} {ident}");
            if ev.action == notify::RESPONSE {
                s.push_str(&format!(" status:{status}"));
            }
            return Some(s);
        }
        if ev.action == notify::DESTROY {
            let (kind, ident) = identity(ev, before);
            return Some(join(kind, action, &ident, &[]));
        }
        let (kind, ident) = identity(ev, &self.model);
        let now = groups_of(ev, &self.model, self.opts);
        let shown: Vec<&str> = if ev.action == notify::CHANGE && !self.opts.full {
            let old = groups_of(ev, before, self.opts);
            let changed: Vec<&str> = now
                .iter()
                .filter(|(id, v)| !old.iter().any(|(oid, ov)| oid == id && ov == v))
                .map(|(_, v)| v.as_str())
                .collect();
            if changed.is_empty() {
                return None;
            }
            changed
        } else {
            now.iter().map(|(_, v)| v.as_str()).collect()
        };
        Some(join(kind, action, &ident, &shown))
    }
}

/// Formats a `--timestamps` prefix: `YYYY-MM-DDTHH:MM:SS.uuuuuu+HH:MM`,
/// from seconds and microseconds since the epoch and the UTC offset in
/// seconds.
pub fn timestamp(secs: i64, micros: u32, utc_offset: i32) -> String {
    let local = secs + i64::from(utc_offset);
    let days = local.div_euclid(86400);
    let sod = local.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    let sign = if utc_offset < 0 { '-' } else { '+' };
    let off = utc_offset.unsigned_abs();
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}{sign}{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        off / 3600,
        off % 3600 / 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}
