//! Golden comparison in the guest: Debian's drbd-utils 9 (`/opt/drbd-utils/sbin/drbdsetup`)
//! renders our module's netlink data; our drbdsetup must print the same `status --json`,
//! `show --json`, `status` and `status --verbose --statistics` (keys, names, layout, values)
//! for a connected, UpToDate two-node resource and for one whose peer is gone.

mod common;

use common::*;
use serde_json::Value;
use tests_qemu::{Cluster, ClusterSpec, Node};

const REAL: &str = "/opt/drbd-utils/sbin/drbdsetup";

/// Every difference between two JSON values, as `path: ours != real` lines.
fn diff(path: &str, ours: &Value, real: &Value, out: &mut Vec<String>) {
    match (ours, real) {
        (Value::Object(a), Value::Object(b)) => {
            let ka: Vec<&String> = a.keys().collect();
            let kb: Vec<&String> = b.keys().collect();
            if ka != kb {
                out.push(format!("{path}: keys {ka:?} != {kb:?}"));
            }
            for (k, v) in a {
                if let Some(w) = b.get(k) {
                    diff(&format!("{path}.{k}"), v, w, out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                out.push(format!("{path}: {} elements != {}", a.len(), b.len()));
            }
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), v, w, out);
            }
        }
        _ if ours != real => out.push(format!("{path}: {ours} != {real}")),
        _ => {}
    }
}

/// Members newer drbd-utils (the control-plane reference, 9.3x) print and Debian's 9.22 does
/// not: removed from our output before comparing.
fn drop_newer_members(v: &mut Value) {
    for r in v.as_array_mut().into_iter().flatten() {
        for d in r["devices"].as_array_mut().into_iter().flatten() {
            if let Some(o) = d.as_object_mut() {
                o.shift_remove("open");
            }
        }
        for c in r["connections"].as_array_mut().into_iter().flatten() {
            if let Some(o) = c.as_object_mut() {
                o.shift_remove("tls");
                o.shift_remove("paths");
            }
        }
    }
}

/// Debian's 9.22 prints no `path` of our connections (newer utils do; our drbdadm adjust
/// reads it): removed from our `show --json` before comparing.
fn drop_paths(v: &mut Value) {
    for r in v.as_array_mut().into_iter().flatten() {
        for c in r["connections"].as_array_mut().into_iter().flatten() {
            if let Some(o) = c.as_object_mut() {
                o.shift_remove("path");
            }
        }
    }
}

fn compare_json(n: &Node, args: &str) -> Vec<String> {
    let ours = n.run_ok(&format!("drbdsetup {args}"));
    let real = n.run(&format!("{REAL} {args}"));
    assert!(
        real.success(),
        "{REAL} {args} failed on our module:\n{real}"
    );
    let mut pa: Value =
        serde_json::from_str(&ours).unwrap_or_else(|e| panic!("ours: invalid JSON ({e}):\n{ours}"));
    if args.starts_with("status") {
        drop_newer_members(&mut pa);
    }
    if args.starts_with("show") {
        drop_paths(&mut pa);
    }
    let pb: Value = serde_json::from_str(&real.stdout)
        .unwrap_or_else(|e| panic!("real: invalid JSON ({e}):\n{}", real.stdout));
    let mut d = Vec::new();
    diff("", &pa, &pb, &mut d);
    d.into_iter()
        .map(|l| format!("{} {args}: {l}", n.name))
        .collect()
}

/// Text outputs: exact, except for what newer drbd-utils print and 9.22 does not (`open:` of
/// devices in `status --verbose`, which also moves the 80-column wraps, so verbose status is
/// compared key by key; `_cstate` and `path {}` of `show`, which our drbdadm adjust reads).
fn compare_text(n: &Node, args: &str) -> Vec<String> {
    let mut ours = n.run_ok(&format!("drbdsetup {args}"));
    let real = n.run(&format!("{REAL} {args}"));
    assert!(
        real.success(),
        "{REAL} {args} failed on our module:\n{real}"
    );
    let mut theirs = real.stdout.clone();
    if args.starts_with("show") {
        // ... and the `path {}` section (see `drop_paths`).
        let mut in_path = false;
        ours = ours
            .lines()
            .filter(|l| {
                let t = l.trim_start();
                if t == "path {" {
                    in_path = true;
                }
                let keep = !in_path && !t.starts_with("_cstate ");
                if in_path && t == "}" {
                    in_path = false;
                }
                keep
            })
            .map(|l| format!("{l}\n"))
            .collect();
    }
    if args.contains("--verbose") {
        let keys = |t: &str, drop_open: bool| -> String {
            t.split_whitespace()
                .filter(|k| !(drop_open && k.starts_with("open:")))
                .collect::<Vec<_>>()
                .join(" ")
        };
        ours = keys(&ours, true);
        theirs = keys(&theirs, false);
    }
    if ours == theirs {
        return Vec::new();
    }
    vec![format!(
        "{} {args}: text differs\n--- ours\n{ours}\n--- real\n{theirs}",
        n.name
    )]
}

fn all_outputs(n: &Node) -> Vec<String> {
    let mut d = Vec::new();
    d.extend(compare_json(n, "status --json"));
    d.extend(compare_json(n, "status r0 --json"));
    d.extend(compare_json(n, "show --json"));
    d.extend(compare_json(n, "show --json --show-defaults"));
    d.extend(compare_text(n, "status"));
    d.extend(compare_text(n, "status --verbose --statistics"));
    d.extend(compare_text(n, "show"));
    d.extend(compare_text(n, "show --show-defaults"));
    d
}

#[test]
fn status_and_show_match_drbd_utils() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[32]));
    let (a, b) = (c.node(0), c.node(1));
    assert!(
        a.run(&format!("test -x {REAL}")).success(),
        "drbd-utils 9 not in the guest"
    );
    configured_pair(&c, "C");
    a.run_ok("drbdsetup primary --force r0");
    up_to_date_both(a, b);
    let mut diffs = Vec::new();
    for n in [a, b] {
        diffs.extend(all_outputs(n));
    }
    // The peer is gone: connection and peer-device states change.
    c.set_link(0, 1, false);
    wait_link_loss(a);
    diffs.extend(all_outputs(a));
    assert!(diffs.is_empty(), "differences:\n{}", diffs.join("\n"));
    c.set_link(0, 1, true);
    for n in [a, b] {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
}
