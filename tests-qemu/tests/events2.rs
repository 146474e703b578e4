//! Scenario 4: `drbdsetup events2` running in the background shows the initial state as `exists`
//! lines, the `exists -` marker, and then live `change`/`create`/`destroy` lines caused by other
//! commands.

mod common;

use common::*;
use std::time::Duration;
use tests_qemu::{Cluster, ClusterSpec, Status};

const WAIT: Duration = Duration::from_secs(30);

/// A line that starts with `prefix` (e.g. `change resource name:r0`) and has every field in `fields`.
fn has_line(out: &str, prefix: &str, fields: &[&str]) -> bool {
    out.lines().any(|l| {
        (l == prefix || l.starts_with(&format!("{prefix} ")))
            && fields.iter().all(|f| l.split_whitespace().any(|w| w == *f))
    })
}

/// The part after the `exists -` marker must be live events only.
fn check_after_marker(out: &str) {
    let live = out.split_once("exists -\n").map(|x| x.1).unwrap_or("");
    for l in live.lines() {
        assert!(
            ["change ", "create ", "destroy ", "call ", "response "]
                .iter()
                .any(|p| l.starts_with(p)),
            "unexpected line after `exists -`: {l:?}\n{out}"
        );
    }
}

#[test]
fn events2_shows_initial_state_and_live_changes() {
    let c = Cluster::start(ClusterSpec::new(1).disks(&[128]));
    let n = c.node(0);
    n.run_ok("modprobe drbd");
    create_md_ok(n, 1, "/dev/vdb", 1);
    up(n, "r0", 1, "/dev/vdb");

    // --now: the current state, the marker, and exit.
    let now = n.run_ok("drbdsetup events2 --now");
    assert!(
        has_line(&now, "exists resource", &["name:r0", "role:Secondary"]),
        "{now}"
    );
    assert!(
        has_line(
            &now,
            "exists device",
            &["name:r0", "volume:0", "minor:1", "disk:Inconsistent"]
        ),
        "{now}"
    );
    assert_eq!(now.lines().last(), Some("exists -"), "{now}");
    assert!(now.lines().all(|l| l.starts_with("exists ")), "{now}");

    // --timestamps: each line starts with DRBD's ISO 8601 time with microseconds and offset
    // (the guest runs in UTC), the rest of the line unchanged.
    let stamped = n.run_ok("drbdsetup events2 --now --timestamps");
    let today = n.run_ok("date -u +%Y-%m-%d");
    for (line, plain) in stamped.lines().zip(now.lines()) {
        let (ts, rest) = line.split_once(' ').unwrap_or_default();
        let b = ts.as_bytes();
        let shape = ts.len() == 32
            && ts.starts_with(today.trim())
            && b[10] == b'T'
            && b[19] == b'.'
            && ts.ends_with("+00:00")
            && ts[20..26].bytes().all(|c| c.is_ascii_digit());
        assert!(shape, "not a timestamp: {line:?}");
        assert_eq!(rest, plain, "--timestamps changed the line");
    }
    assert_eq!(stamped.lines().count(), now.lines().count(), "{stamped}");

    // Live: the same start, then what other commands do.
    let mut ev = n.spawn("drbdsetup events2");
    let first = ev.wait_for("exists -\n", WAIT);
    let initial = first.split_once("exists -\n").unwrap().0;
    assert!(initial.lines().all(|l| l.starts_with("exists ")), "{first}");
    assert!(
        has_line(initial, "exists resource", &["name:r0", "role:Secondary"]),
        "{first}"
    );
    assert!(
        has_line(
            initial,
            "exists device",
            &["name:r0", "volume:0", "minor:1"]
        ),
        "{first}"
    );

    n.run_ok("drbdsetup primary --force r0");
    let out = ev.wait_for_stdout(WAIT, |o| {
        has_line(o, "change resource", &["name:r0", "role:Primary"])
            && has_line(
                o,
                "change device",
                &["name:r0", "volume:0", "minor:1", "disk:UpToDate"],
            )
    });
    check_after_marker(&out);

    n.run_ok("drbdsetup secondary r0");
    ev.wait_for_stdout(WAIT, |o| {
        has_line(o, "change resource", &["name:r0", "role:Secondary"])
    });

    n.run_ok("drbdsetup new-minor r0 2 1");
    ev.wait_for_stdout(WAIT, |o| {
        has_line(o, "create device", &["name:r0", "volume:1", "minor:2"])
    });
    n.run_ok("drbdsetup del-minor 2");
    ev.wait_for_stdout(WAIT, |o| {
        has_line(o, "destroy device", &["name:r0", "volume:1", "minor:2"])
    });

    n.run_ok("drbdsetup new-resource r9 0");
    ev.wait_for_stdout(WAIT, |o| has_line(o, "create resource", &["name:r9"]));
    n.run_ok("drbdsetup del-resource r9");
    let out = ev.wait_for_stdout(WAIT, |o| has_line(o, "destroy resource", &["name:r9"]));
    check_after_marker(&out);

    // The listener is still running until killed.
    assert!(ev.try_wait().is_none(), "events2 ended by itself");
    let end = ev.kill();
    assert_eq!(end.status, Status::Signaled(9), "{end}");

    n.run_ok("drbdsetup down r0");
    n.run_ok("rmmod drbd");
}
