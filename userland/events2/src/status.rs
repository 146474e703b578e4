//! `drbdsetup status` output: text (default, `--verbose`, `--statistics`)
//! and `--json`.

use crate::model::{Connection, Model, PeerDevice, Resource};
use genl_spec::generated::{enums, ConnState, DiskState, ReplState};
use serde_json::{json, Map, Value};

/// Output options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusOpts {
    /// `--verbose`: every key.
    pub verbose: bool,
    /// `--statistics`: counters.
    pub statistics: bool,
    /// stdout is a terminal (hides `client:` of diskless devices).
    pub is_tty: bool,
}

/// Line shown when nothing is configured.
pub const NOTHING_CONFIGURED: &str = "# No currently configured DRBD found.";

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

/// Text status of the resources in `model` (all, or only `only`).
/// Returns `None` if `only` names no resource.
pub fn status_text(model: &Model, only: Option<&str>, opts: StatusOpts) -> Option<String> {
    let mut out = String::new();
    if model.resources.is_empty() && only.is_none() {
        out.push_str(NOTHING_CONFIGURED);
        out.push('\n');
        return Some(out);
    }
    let mut found = false;
    for r in model.resources.values() {
        if only.is_some_and(|n| n != r.name) {
            continue;
        }
        found = true;
        resource_text(&mut out, r, opts);
    }
    if !found && only.is_some() {
        return None;
    }
    Some(out)
}

fn resource_text(out: &mut String, r: &Resource, opts: StatusOpts) {
    out.push_str(&r.name);
    if opts.verbose {
        if let Some(id) = r.node_id {
            out.push_str(&format!(" node-id:{id}"));
        }
    }
    out.push_str(&format!(" role:{}", r.info.role.name()));
    let i = &r.info;
    if opts.verbose || i.susp_user || i.susp_no_data || i.susp_fencing || i.susp_quorum {
        out.push_str(&format!(" suspended:{}", i.suspended_str()));
    }
    if opts.verbose || i.force_io_failures {
        out.push_str(&format!(
            " force-io-failures:{}",
            yes_no(i.force_io_failures)
        ));
    }
    if opts.statistics && opts.verbose {
        if let Some(s) = r.stats {
            let wo = enums::write_ordering::name(s.write_ordering).unwrap_or("?");
            out.push_str(&format!("\n    write-ordering:{wo}"));
        }
    }
    out.push('\n');
    let single = r.devices.len() == 1;
    for (vol, d) in &r.devices {
        let mut line = String::from("  ");
        let mut first = true;
        let mut key = |line: &mut String, k: String| {
            if !first {
                line.push(' ');
            }
            first = false;
            line.push_str(&k);
        };
        if opts.verbose || !(single && *vol == 0) {
            key(&mut line, format!("volume:{vol}"));
            if opts.verbose {
                key(&mut line, format!("minor:{}", d.minor));
            }
        }
        key(&mut line, format!("disk:{}", d.info.disk.name()));
        if d.info.disk == DiskState::Diskless && (opts.verbose || !opts.is_tty) {
            key(
                &mut line,
                format!("client:{}", yes_no_unknown(d.info.intentional_diskless)),
            );
        }
        if opts.verbose {
            key(
                &mut line,
                format!(
                    "backing_dev:{}",
                    d.info.backing_dev.as_deref().unwrap_or("none")
                ),
            );
        }
        if opts.verbose || !d.info.has_quorum {
            key(&mut line, format!("quorum:{}", yes_no(d.info.has_quorum)));
        }
        if opts.verbose || d.info.is_open == Some(true) {
            key(
                &mut line,
                format!("open:{}", yes_no_unknown(d.info.is_open)),
            );
        }
        if opts.statistics {
            if let Some(s) = &d.stats {
                line.push_str("\n     ");
                if opts.verbose {
                    line.push_str(&format!(" size:{}", s.size / 2));
                }
                line.push_str(&format!(" read:{} written:{}", s.read / 2, s.write / 2));
                if opts.verbose {
                    line.push_str(&format!(
                        " al-writes:{} bm-writes:{} upper-pending:{} lower-pending:{} al-suspended:{}",
                        s.al_writes,
                        s.bm_writes,
                        s.upper_pending,
                        s.lower_pending,
                        yes_no(s.al_suspended)
                    ));
                }
                if opts.verbose || s.upper_blocked || s.lower_blocked {
                    let blocked = match (s.upper_blocked, s.lower_blocked) {
                        (false, false) => "no",
                        (true, false) => "upper",
                        (false, true) => "lower",
                        (true, true) => "upper,lower",
                    };
                    line.push_str(&format!(" blocked:{blocked}"));
                }
            }
        }
        out.push_str(&wrap(&line, 6));
        out.push('\n');
    }
    for (peer, c) in &r.connections {
        connection_text(out, *peer, c, single, opts);
    }
    out.push('\n');
}

/// Wraps each line of `text` at 80 columns as drbdsetup does: a key that would pass column 80
/// goes to a new line indented by `cont` spaces.
fn wrap(text: &str, cont: usize) -> String {
    const WIDTH: usize = 80;
    let mut out = String::new();
    for (n, line) in text.split('\n').enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let body = line.trim_start_matches(' ');
        let mut col = line.len() - body.len();
        out.push_str(&line[..col]);
        for (i, key) in body.split(' ').filter(|k| !k.is_empty()).enumerate() {
            if i > 0 && col + 1 + key.len() > WIDTH {
                out.push('\n');
                out.push_str(&" ".repeat(cont));
                col = cont;
            } else if i > 0 {
                out.push(' ');
                col += 1;
            }
            out.push_str(key);
            col += key.len();
        }
    }
    out
}

fn connection_text(out: &mut String, peer: u32, c: &Connection, single: bool, opts: StatusOpts) {
    let mut line = String::new();
    connection_line(&mut line, peer, c, opts);
    out.push_str(&wrap(&line, 6));
    out.push('\n');
    let connected = c.info.cstate == ConnState::Connected;
    if opts.verbose || opts.statistics || connected {
        for (vol, p) in &c.peer_devices {
            peer_device_text(out, *vol, p, single, opts);
        }
    }
}

fn connection_line(out: &mut String, peer: u32, c: &Connection, opts: StatusOpts) {
    out.push_str("  ");
    match &c.conn_name {
        Some(n) => {
            out.push_str(n);
            if opts.verbose {
                out.push_str(&format!(" node-id:{peer}"));
            }
        }
        None => out.push_str(&format!("node-id:{peer}")),
    }
    let connected = c.info.cstate == ConnState::Connected;
    if opts.verbose || !connected {
        out.push_str(&format!(" connection:{}", c.info.cstate.name()));
    }
    if opts.verbose || connected {
        out.push_str(&format!(" role:{}", c.info.peer_role.name()));
    }
    if let Some(s) = c.stats {
        if opts.verbose || s.congested {
            out.push_str(&format!(" congested:{}", yes_no(s.congested)));
        }
        if opts.verbose {
            out.push_str(&format!(
                " ap-in-flight:{} rs-in-flight:{}",
                s.ap_in_flight / 2,
                s.rs_in_flight / 2
            ));
        }
    }
}

fn peer_device_text(out: &mut String, vol: u32, p: &PeerDevice, single: bool, opts: StatusOpts) {
    let mut parts: Vec<String> = Vec::new();
    if opts.verbose || !(single && vol == 0) {
        parts.push(format!("volume:{vol}"));
    }
    let i = &p.info;
    if opts.verbose || i.repl > ReplState::Established {
        parts.push(format!("replication:{}", i.repl.name()));
    }
    let mut stats_line = None;
    if opts.verbose
        || opts.statistics
        || i.repl != ReplState::Off
        || i.peer_disk != DiskState::DUnknown
    {
        parts.push(format!("peer-disk:{}", i.peer_disk.name()));
        if i.peer_disk == DiskState::Diskless && (opts.verbose || !opts.is_tty) {
            parts.push(format!(
                "peer-client:{}",
                yes_no_unknown(i.peer_intentional_diskless)
            ));
        }
        if let Some(done) = p.stats.and_then(|s| s.done_percent()) {
            parts.push(format!("done:{done:.2}"));
        }
        if opts.verbose || i.susp_user || i.susp_peer || i.susp_dependency {
            parts.push(format!("resync-suspended:{}", i.resync_suspended_str()));
        }
        if opts.statistics {
            if let Some(s) = p.stats {
                let mut l = format!(" received:{} sent:{}", s.received / 2, s.sent / 2);
                if opts.verbose || s.out_of_sync != 0 {
                    l.push_str(&format!(" out-of-sync:{}", s.out_of_sync / 2));
                }
                if opts.verbose {
                    l.push_str(&format!(" pending:{} unacked:{}", s.pending, s.unacked));
                    for k in crate::rates::timing_keys(&s, 1) {
                        l.push(' ');
                        l.push_str(&k);
                    }
                }
                stats_line = Some(l);
            }
        }
    }
    if parts.is_empty() && stats_line.is_none() {
        return;
    }
    let mut line = String::from("    ");
    line.push_str(&parts.join(" "));
    if let Some(l) = stats_line {
        line.push_str("\n       ");
        line.push_str(&l);
    }
    out.push_str(&wrap(&line, 8));
    out.push('\n');
}

/// `status --json` value of the resources in `model` (all, or only `only`).
pub fn status_json(model: &Model, only: Option<&str>) -> Value {
    let mut arr = Vec::new();
    for r in model.resources.values() {
        if only.is_some_and(|n| n != r.name) {
            continue;
        }
        arr.push(resource_json(r));
    }
    Value::Array(arr)
}

fn resource_json(r: &Resource) -> Value {
    let i = &r.info;
    let mut m = Map::new();
    m.insert("name".into(), json!(r.name));
    // drbdsetup prints -1 when the resource options carry no node id.
    m.insert("node-id".into(), json!(r.node_id.map_or(-1, i64::from)));
    m.insert("role".into(), json!(i.role.name()));
    m.insert(
        "suspended".into(),
        json!(i.susp_user || i.susp_no_data || i.susp_fencing || i.susp_quorum),
    );
    m.insert("suspended-user".into(), json!(i.susp_user));
    m.insert("suspended-no-data".into(), json!(i.susp_no_data));
    m.insert("suspended-fencing".into(), json!(i.susp_fencing));
    m.insert("suspended-quorum".into(), json!(i.susp_quorum));
    m.insert("force-io-failures".into(), json!(i.force_io_failures));
    if let Some(s) = r.stats {
        m.insert(
            "write-ordering".into(),
            json!(enums::write_ordering::name(s.write_ordering).unwrap_or("?")),
        );
    }
    let devices: Vec<Value> = r
        .devices
        .iter()
        .map(|(vol, d)| {
            let mut dm = Map::new();
            dm.insert("volume".into(), json!(vol));
            dm.insert("minor".into(), json!(d.minor));
            dm.insert("disk-state".into(), json!(d.info.disk.name()));
            dm.insert(
                "client".into(),
                json!(d.info.intentional_diskless.unwrap_or(false)),
            );
            dm.insert("open".into(), json!(d.info.is_open.unwrap_or(false)));
            dm.insert("quorum".into(), json!(d.info.has_quorum));
            if let Some(s) = &d.stats {
                dm.insert("size".into(), json!(s.size / 2));
                dm.insert("read".into(), json!(s.read / 2));
                dm.insert("written".into(), json!(s.write / 2));
                dm.insert("al-writes".into(), json!(s.al_writes));
                dm.insert("bm-writes".into(), json!(s.bm_writes));
                dm.insert("upper-pending".into(), json!(s.upper_pending));
                dm.insert("lower-pending".into(), json!(s.lower_pending));
            }
            Value::Object(dm)
        })
        .collect();
    m.insert("devices".into(), Value::Array(devices));
    let conns: Vec<Value> = r
        .connections
        .iter()
        .map(|(peer, c)| {
            let mut cm = Map::new();
            cm.insert("peer-node-id".into(), json!(peer));
            cm.insert(
                "name".into(),
                json!(c.conn_name.clone().unwrap_or_default()),
            );
            cm.insert("connection-state".into(), json!(c.info.cstate.name()));
            cm.insert(
                "congested".into(),
                json!(c.stats.is_some_and(|s| s.congested)),
            );
            cm.insert("peer-role".into(), json!(c.info.peer_role.name()));
            cm.insert("tls".into(), json!(false));
            if let Some(s) = c.stats {
                cm.insert("ap-in-flight".into(), json!(s.ap_in_flight / 2));
                cm.insert("rs-in-flight".into(), json!(s.rs_in_flight / 2));
            }
            let paths: Vec<Value> = c
                .paths
                .iter()
                .map(|p| {
                    json!({
                        "this_host": addr_json(&p.local),
                        "remote_host": addr_json(&p.peer),
                        "established": p.info.established,
                    })
                })
                .collect();
            cm.insert("paths".into(), Value::Array(paths));
            let pds: Vec<Value> = c
                .peer_devices
                .iter()
                .map(|(vol, p)| {
                    let mut pm = Map::new();
                    pm.insert("volume".into(), json!(vol));
                    pm.insert("replication-state".into(), json!(p.info.repl.name()));
                    pm.insert("peer-disk-state".into(), json!(p.info.peer_disk.name()));
                    pm.insert(
                        "peer-client".into(),
                        json!(p.info.peer_intentional_diskless.unwrap_or(false)),
                    );
                    pm.insert(
                        "resync-suspended".into(),
                        json!(p.info.resync_suspended_str()),
                    );
                    if let Some(s) = p.stats {
                        let dev_size = r
                            .devices
                            .get(vol)
                            .and_then(|d| d.stats.as_ref())
                            .map_or(0, |d| d.size);
                        peer_device_stats_json(&mut pm, &s, p.info.repl, dev_size);
                    }
                    Value::Object(pm)
                })
                .collect();
            cm.insert("peer_devices".into(), Value::Array(pds));
            Value::Object(cm)
        })
        .collect();
    m.insert("connections".into(), Value::Array(conns));
    Value::Object(m)
}

/// Statistics members of a peer device in `status --json`, in drbdsetup's order: counters,
/// `percent-in-sync` (of the device size), and while a resync or verify has details its
/// progress marks, rates and estimate (sizes in KiB, sectors where the key says so).
fn peer_device_stats_json(
    pm: &mut Map<String, Value>,
    s: &crate::state::PeerDeviceStats,
    repl: ReplState,
    dev_size: u64,
) {
    let sync_details = s.rs_total != 0 && s.rs_total != u64::MAX;
    pm.insert("received".into(), json!(s.received / 2));
    pm.insert("sent".into(), json!(s.sent / 2));
    pm.insert("out-of-sync".into(), json!(s.out_of_sync / 2));
    pm.insert("pending".into(), json!(s.pending));
    pm.insert("unacked".into(), json!(s.unacked));
    pm.insert("has-sync-details".into(), json!(sync_details));
    pm.insert(
        "has-online-verify-details".into(),
        json!(sync_details && s.ov_left != 0),
    );
    let in_sync = if dev_size == 0 {
        0.0
    } else {
        100.0 * (1.0 - s.out_of_sync as f64 / dev_size as f64)
    };
    pm.insert("percent-in-sync".into(), json!(round2(in_sync)));
    if sync_details {
        let total = s.rs_total;
        for (k, v) in [
            ("rs-total", total),
            ("rs-dt-start-ms", s.rs_dt_start_ms),
            ("rs-paused-ms", s.rs_paused_ms),
            ("rs-dt0-ms", s.rs_dt0_ms),
            ("rs-db0-sectors", s.rs_db0_sectors),
            ("rs-dt1-ms", s.rs_dt1_ms),
            ("rs-db1-sectors", s.rs_db1_sectors),
        ] {
            pm.insert(k.into(), json!(v));
        }
        if s.ov_left != 0 {
            for (k, v) in [
                ("ov-start-sector", s.ov_start_sector),
                ("ov-stop-sector", s.ov_stop_sector),
                ("ov-position", s.ov_position),
                ("ov-left", s.ov_left),
                ("ov-skipped", s.ov_skipped),
            ] {
                pm.insert(k.into(), json!(v));
            }
        } else {
            pm.insert("rs-failed".into(), json!(s.resync_failed));
            pm.insert("rs-same-csum".into(), json!(s.rs_same_csum));
        }
        pm.insert(
            "want".into(),
            json!(round2(f64::from(s.rs_c_sync_rate) / 1024.0)),
        );
        let rate = |db: f64, dt: u64| db / (dt.max(1) as f64) * 1000.0 / 2048.0;
        pm.insert(
            "db0/dt0 [MiB/s]".into(),
            json!(round2(rate(s.rs_db0_sectors as i64 as f64, s.rs_dt0_ms))),
        );
        let db1 = s.rs_db1_sectors as i64 as f64;
        pm.insert(
            "db1/dt1 [MiB/s]".into(),
            json!(round2(rate(db1, s.rs_dt1_ms))),
        );
        let to_go = if s.ov_left != 0 {
            s.ov_left
        } else {
            s.out_of_sync.saturating_sub(s.resync_failed)
        };
        let eta = if db1 <= 0.0 {
            987_654_321.0
        } else {
            s.rs_dt1_ms.max(1) as f64 * 1e-3 * to_go as f64 / db1
        };
        pm.insert("estimated-seconds-to-finish".into(), json!(eta.round()));
        let done = total.saturating_sub(to_go) as f64;
        let dt = s.rs_dt_start_ms.saturating_sub(s.rs_paused_ms);
        pm.insert("db/dt [MiB/s]".into(), json!(round2(rate(done, dt))));
        pm.insert(
            "percent-resync-done".into(),
            json!(round2(100.0 * done / total as f64)),
        );
    } else if matches!(
        repl,
        ReplState::SyncSource
            | ReplState::SyncTarget
            | ReplState::PausedSyncS
            | ReplState::PausedSyncT
    ) && s.rs_total == u64::MAX
        && dev_size != 0
    {
        pm.insert("percent-resync-done".into(), json!(round2(in_sync)));
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn addr_json(printed: &str) -> Value {
    // "ipv4:1.2.3.4:7789" / "ipv6:[fd00::1]:7789"
    let (family, rest) = printed.split_once(':').unwrap_or(("unknown", printed));
    let (addr, port) = rest.rsplit_once(':').unwrap_or((rest, "0"));
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    json!({ "address": addr, "port": port.parse::<u32>().unwrap_or(0), "family": family })
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wraps_like_drbdsetup_at_80_columns() {
        // As drbd-utils 9 printed it for our module (tests-qemu json_outputs).
        assert_eq!(
            wrap(
                "      size:32728 read:0 written:0 al-writes:0 bm-writes:0 upper-pending:0 lower-pending:0 al-suspended:no blocked:no",
                6
            ),
            "      size:32728 read:0 written:0 al-writes:0 bm-writes:0 upper-pending:0\n      lower-pending:0 al-suspended:no blocked:no"
        );
        assert_eq!(
            wrap(
                "  node1 node-id:1 connection:Connected role:Secondary congested:no ap-in-flight:0 rs-in-flight:0",
                6
            ),
            "  node1 node-id:1 connection:Connected role:Secondary congested:no\n      ap-in-flight:0 rs-in-flight:0"
        );
        assert_eq!(
            wrap(
                "  node0 node-id:0 connection:Connected role:Primary congested:no ap-in-flight:0 rs-in-flight:0",
                6
            ),
            "  node0 node-id:0 connection:Connected role:Primary congested:no ap-in-flight:0\n      rs-in-flight:0"
        );
        assert_eq!(
            wrap("r0 role:Primary\n    write-ordering:flush", 4),
            "r0 role:Primary\n    write-ordering:flush"
        );
    }
}
