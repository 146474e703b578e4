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

fn compare_json(n: &Node, args: &str) -> Vec<String> {
    let ours = n.run_ok(&format!("drbdsetup {args}"));
    let real = n.run(&format!("{REAL} {args}"));
    assert!(
        real.success(),
        "{REAL} {args} failed on our module:\n{real}"
    );
    let pa: Value =
        serde_json::from_str(&ours).unwrap_or_else(|e| panic!("ours: invalid JSON ({e}):\n{ours}"));
    let pb: Value = serde_json::from_str(&real.stdout)
        .unwrap_or_else(|e| panic!("real: invalid JSON ({e}):\n{}", real.stdout));
    let mut d = Vec::new();
    diff("", &pa, &pb, &mut d);
    d.into_iter()
        .map(|l| format!("{} {args}: {l}", n.name))
        .collect()
}

fn compare_text(n: &Node, args: &str) -> Vec<String> {
    let ours = n.run_ok(&format!("drbdsetup {args}"));
    let real = n.run(&format!("{REAL} {args}"));
    assert!(
        real.success(),
        "{REAL} {args} failed on our module:\n{real}"
    );
    if ours == real.stdout {
        return Vec::new();
    }
    vec![format!(
        "{} {args}: text differs\n--- ours\n{ours}--- real\n{}",
        n.name, real.stdout
    )]
}

fn all_outputs(n: &Node) -> Vec<String> {
    let mut d = Vec::new();
    d.extend(compare_json(n, "status --json"));
    d.extend(compare_json(n, "status r0 --json"));
    d.extend(compare_json(n, "show --json"));
    d.extend(compare_text(n, "status"));
    d.extend(compare_text(n, "status --verbose --statistics"));
    d.extend(compare_text(n, "show"));
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
