//! `startup { wfc-timeout; degr-wfc-timeout; outdated-wfc-timeout; }` with
//! `drbdadm wait-connect`, as drbdadm/drbdsetup 9 use them: a node that was a connected
//! Secondary waits `wfc-timeout`; a Primary that lost its peer and then crashed comes back
//! "degraded" (meta-data: `MDF_PRIMARY_IND`, peer slot without `MDF_PEER_CONNECTED`) and
//! waits only `degr-wfc-timeout`, until the peer connects again. Timeouts exit with 5;
//! drbdsetup's note when degr-wfc-timeout exceeds wfc-timeout.

mod common;

use common::*;
use tests_qemu::{Cluster, ClusterSpec, Node};

const WFC: u64 = 12;
const DEGR: u64 = 3;

fn config(ip0: &str, ip1: &str) -> String {
    format!(
        r#"global {{ usage-count no; }}
resource r0 {{
  startup {{
    wfc-timeout {WFC};
    degr-wfc-timeout {DEGR};
    outdated-wfc-timeout 2;
  }}
  net {{ ping-int 2; ping-timeout 10; connect-int 2; }}
  device minor 1;
  disk /dev/vdb;
  meta-disk internal;
  on node0 {{ node-id 0; address {ip0}:7789; }}
  on node1 {{ node-id 1; address {ip1}:7789; }}
}}
"#
    )
}

/// Runs `cmd` in the guest and returns (exit code, seconds it took, stderr).
fn timed(n: &Node, cmd: &str) -> (i32, u64, String) {
    let o = n.run(&format!(
        "s=$(date +%s); {cmd} 2>/tmp/stderr; rc=$?; e=$(date +%s); echo $rc $((e - s)); cat /tmp/stderr >&2"
    ));
    let mut it = o.stdout.split_whitespace();
    let rc = it.next().and_then(|v| v.parse().ok()).unwrap_or(-1);
    let secs = it.next().and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
    (rc, secs, o.stderr)
}

#[test]
fn degr_wfc_timeout_after_a_degraded_primary_crashed() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[16]));
    let (a, b) = (c.node(0), c.node(1));
    let (ip_a, ip_b) = (c.addr(0, 1), c.addr(1, 0));
    for n in [a, b] {
        n.write_file("/etc/drbd.conf", config(&ip_a, &ip_b).as_bytes());
        n.run_ok("modprobe drbd");
        n.run_ok("echo yes | drbdadm create-md --force r0");
        n.run_ok("drbdadm up r0");
    }
    let (rc, secs, err) = timed(a, "drbdadm wait-connect r0");
    assert_eq!((rc, err.as_str()), (0, ""), "connected pair waited {secs}s");
    a.run_ok("drbdadm primary --force r0");
    up_to_date_both(a, b);

    // The link breaks. The Secondary was connected before: wfc-timeout applies.
    c.set_link(0, 1, false);
    wait_link_loss(b);
    wait_link_loss(a);
    let (rc, secs, _) = timed(b, "drbdadm wait-connect r0");
    assert_eq!(rc, 5, "wait-connect on the Secondary");
    assert!(
        (WFC..WFC + 8).contains(&secs),
        "the Secondary waited {secs}s, wfc-timeout is {WFC}s"
    );

    // The Primary, now without its peer, crashes and boots: degraded.
    a.run_ok("dd if=/dev/urandom of=/dev/drbd1 bs=4k count=4 oflag=direct 2>/dev/null");
    a.hard_kill();
    a.start();
    a.write_file("/etc/drbd.conf", config(&ip_a, &ip_b).as_bytes());
    a.run_ok("modprobe drbd");
    a.run_ok("drbdadm up r0");
    let (rc, secs, err) = timed(a, "drbdadm wait-connect r0");
    assert_eq!(rc, 5, "degraded wait-connect: {err}");
    assert!(
        (DEGR..DEGR + 6).contains(&secs),
        "the degraded node waited {secs}s, degr-wfc-timeout is {DEGR}s"
    );
    // drbdsetup orders the timeouts: a degraded wait is not longer than a normal one.
    let (rc, secs, err) = timed(
        a,
        "drbdsetup wait-connect-resource r0 --wfc-timeout=2 --degr-wfc-timeout=30 --outdated-wfc-timeout=1",
    );
    assert_eq!(rc, 5);
    assert!(secs < 10, "capped degr-wfc-timeout waited {secs}s");
    assert!(
        err.contains(
            "degr-wfc-timeout has to be shorter than wfc-timeout\ndegr-wfc-timeout implicitly set to wfc-timeout (2s)"
        ),
        "drbdsetup's note missing: {err:?}"
    );
    // Bad option values are refused before waiting.
    let o = a.run("drbdsetup wait-connect-resource r0 --degr-wfc-timeout=300001");
    assert!(!o.success(), "{o}");

    // The peer comes back: the wait ends connected, and from then on it is not degraded.
    // Still degraded here, so give the reconnect more than degr-wfc-timeout's 3 s.
    c.set_link(0, 1, true);
    let (rc, _, err) = timed(
        a,
        "drbdsetup wait-connect-resource r0 --wfc-timeout=60 --degr-wfc-timeout=60",
    );
    assert_eq!(rc, 0, "wait-connect after the link came back: {err}");
    up_to_date_both(a, b);
    assert_eq!(
        data_hash(a),
        data_hash(b),
        "replicas differ after the rejoin"
    );
    c.set_link(0, 1, false);
    wait_link_loss(a);
    let (rc, secs, _) = timed(a, "drbdadm wait-connect r0");
    assert_eq!(rc, 5);
    assert!(
        secs >= WFC,
        "after reconnecting the node still waited degraded ({secs}s)"
    );
}
