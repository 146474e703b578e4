//! Resync timing statistics during a throttled initial sync (link limited to 16 Mbit/s, so
//! about 2 MiB/s): `drbdsetup status --verbose --statistics` and `events2 --now --statistics`
//! show drbd-utils' `dbdt1:` (recent MiB/s) and `eta:` (seconds), computed from the kernel's
//! `rs-dt*`/`rs-db*` members, on the SyncSource and the SyncTarget; `events2 --full
//! --statistics` also the raw members. The rate matches the link, and the estimate matches
//! how long the sync then really took. Without `--verbose`, `status --statistics` shows only
//! the counters (as drbd-utils), and nothing of it remains once the sync is done.

mod common;

use common::*;
use std::time::{Duration, Instant};
use tests_qemu::{Cluster, ClusterSpec, Node};

/// The value of `key:` in `text` (first occurrence).
fn value(text: &str, key: &str) -> Option<String> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}:")))
        .map(str::to_string)
}

fn num(text: &str, key: &str) -> f64 {
    value(text, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric {key}: in\n{text}"))
}

/// Waits until the resync on `n` has run long enough for the recent window to be filled
/// (a few seconds), returning `status --verbose --statistics`.
fn status_with_eta(n: &Node) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let st = n.run_ok("drbdsetup status r0 --verbose --statistics");
        if let Some(eta) = value(&st, "eta") {
            let dt_ok = value(&st, "done").is_some_and(|d| d.parse::<f64>().unwrap_or(0.0) > 15.0);
            if eta != "nan" && dt_ok {
                return st;
            }
        }
        assert!(Instant::now() < deadline, "no eta during the sync:\n{st}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn dbdt1_and_eta_follow_a_throttled_resync() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[48]));
    let (a, b) = (c.node(0), c.node(1));
    configured_pair(&c, "C");
    for n in [a, b] {
        wait_for(
            n,
            "connected",
            "drbdsetup events2 --now r0 | grep -q 'exists peer-device .*replication:Established'",
            60,
        );
    }
    a.netem(1, Some("rate 16mbit"));
    // A ping may wait behind a second of queued resync data: allow 5 s.
    for (n, peer) in [(a, 1), (b, 0)] {
        n.run_ok(&format!(
            "drbdsetup net-options r0 {peer} --ping-timeout=50"
        ));
    }
    a.run_ok("drbdsetup primary --force r0");

    let st = status_with_eta(a);
    let seen = Instant::now();
    assert!(st.contains("replication:SyncSource"), "{st}");
    let rate = num(&st, "dbdt1");
    let eta = num(&st, "eta");
    let oos_mib = num(&st, "out-of-sync") / 1024.0;
    assert!(
        (0.8..3.0).contains(&rate),
        "dbdt1 {rate} MiB/s on a 16 Mbit/s link:\n{st}"
    );
    // eta is what is left at the recent rate.
    let expect = oos_mib / rate;
    assert!(
        (eta - expect).abs() <= expect * 0.1 + 2.0,
        "eta {eta}s, {oos_mib:.1} MiB left at {rate} MiB/s:\n{st}"
    );
    // The target reports its side of the same resync.
    let ev_b = b.run_ok("drbdsetup events2 --now --statistics r0");
    let line_b = ev_b
        .lines()
        .find(|l| l.starts_with("exists peer-device"))
        .unwrap_or_default();
    assert!(line_b.contains("replication:SyncTarget"), "{ev_b}");
    let rate_b = num(line_b, "dbdt1");
    assert!(
        (0.5..3.5).contains(&rate_b),
        "target dbdt1 {rate_b}:\n{ev_b}"
    );
    assert!(value(line_b, "eta").is_some(), "{ev_b}");
    // --full --statistics: the kernel's members behind the numbers.
    let full = a.run_ok("drbdsetup events2 --now --full --statistics r0");
    let line = full
        .lines()
        .find(|l| l.starts_with("exists peer-device"))
        .unwrap_or_default();
    for key in [
        "rs-total",
        "rs-dt-start-ms",
        "rs-paused-ms",
        "rs-dt0-ms",
        "rs-db0-sectors",
        "rs-dt1-ms",
        "rs-db1-sectors",
        "dbdt",
        "dbdt0",
        "dbdt1",
        "eta",
    ] {
        assert!(value(line, key).is_some(), "{key} missing:\n{line}");
    }
    let dt1 = num(line, "rs-dt1-ms");
    assert!((2000.0..=8000.0).contains(&dt1), "rs-dt1-ms {dt1}:\n{line}");
    assert!(num(line, "rs-dt-start-ms") >= dt1, "{line}");
    // Plain --statistics is the counters only (drbd-utils needs --verbose for the rates).
    let plain = a.run_ok("drbdsetup status r0 --statistics");
    assert!(
        plain.contains("received:") && !plain.contains("dbdt1:"),
        "{plain}"
    );

    // The estimate holds: the sync ends about when it said.
    up_to_date_both(a, b);
    let took = seen.elapsed().as_secs_f64();
    assert!(
        took >= eta * 0.5 - 3.0 && took <= eta * 2.0 + 10.0,
        "eta was {eta}s, the sync took another {took:.0}s"
    );
    println!("dbdt1 {rate} MiB/s (target {rate_b}), eta {eta}s, the sync took {took:.0}s more");
    let after = a.run_ok("drbdsetup status r0 --verbose --statistics");
    assert!(!after.contains("dbdt1:"), "rates after the sync:\n{after}");
    a.netem(1, None);
}
