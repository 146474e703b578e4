//! Article 003's workflow (seeds/003: iSCSI storage on a two-node cluster), driven through our
//! drbdadm exactly as the article types it: its `dvolume` resource in /etc/drbd.d/dvolume.res
//! (hosts renamed node0/node1, addresses of the harness links), `drbdadm create-md dvolume`,
//! `modprobe drbd`, `drbdadm up dvolume`, `drbdadm status` (Inconsistent + Connecting, then
//! connected), `drbdadm primary --force dvolume`, the sync seen in `drbdadm status` (`done:`)
//! and in `drbdsetup events2` (`exists` lines, live `change` lines), both UpToDate at the end.
//! Then a net option is edited in the file and `drbdadm adjust dvolume` changes only it,
//! `drbdadm down dvolume`.

mod common;

use std::time::{Duration, Instant};
use tests_qemu::cluster::RunOpts;
use tests_qemu::{Cluster, ClusterSpec, Node};

/// Big enough that the initial sync takes a while (the article's `done:` is seen by polling).
const DISK_MIB: u64 = 256;

/// The article's resource, adapted: hosts node0/node1, /dev/vdb, the harness addresses.
fn dvolume_res(ip0: &str, ip1: &str, extra_net: &str) -> String {
    format!(
        r#"resource "dvolume" {{
device minor 1;
meta-disk internal;
net {{
protocol C;
fencing resource-only;
{extra_net}}}
handlers {{
fence-peer "/usr/lib/drbd/crm-fence-peer.9.sh";
unfence-peer "/usr/lib/drbd/crm-unfence-peer.9.sh";
}}
on "node0" {{
node-id 0;
disk "/dev/vdb";
}}
on "node1" {{
node-id 1;
disk "/dev/vdb";
}}
connection {{
host "node0" address {ip0}:7789;
host "node1" address {ip1}:7789;
}}
}}
"#
    )
}

fn write_config(n: &Node, res: &str) {
    n.run_ok("mkdir -p /etc/drbd.d");
    n.write_file("/etc/drbd.conf", b"include \"drbd.d/*.res\";\n");
    n.write_file("/etc/drbd.d/dvolume.res", res.as_bytes());
}

/// Polls `cmd` in the guest (a shell loop, so short states are not missed between agent round
/// trips) until its output matches every `needles`; returns that output.
fn poll_guest(n: &Node, what: &str, cmd: &str, needles: &[&str], secs: u64) -> String {
    let test: Vec<String> = needles
        .iter()
        .map(|w| format!("grep -q -- '{w}' /tmp/poll.out"))
        .collect();
    let script = format!(
        "i=0; while [ $i -lt {n} ]; do {cmd} > /tmp/poll.out 2>&1; if {t}; then cat /tmp/poll.out; exit 0; fi; i=$((i+1)); sleep 0.2; done; cat /tmp/poll.out; exit 1",
        n = secs * 5,
        t = test.join(" && ")
    );
    let o = n.run_with(
        &script,
        RunOpts {
            timeout: Some(Duration::from_secs(secs + 60)),
            ..Default::default()
        },
    );
    assert!(
        o.success(),
        "{}: timed out waiting for {what} ({needles:?}); last output:\n{}",
        n.name,
        o.stdout
    );
    o.stdout
}

/// `drbdsetup show dvolume` without the connection state line, for comparing configurations.
fn show_config(n: &Node) -> String {
    n.run_ok("drbdsetup show dvolume")
        .lines()
        .filter(|l| !l.trim_start().starts_with("_cstate"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn changed_lines(before: &str, after: &str) -> Vec<String> {
    let b: Vec<&str> = before.lines().collect();
    let a: Vec<&str> = after.lines().collect();
    let mut out: Vec<String> = b
        .iter()
        .filter(|l| !a.contains(l))
        .map(|l| format!("-{l}"))
        .collect();
    out.extend(a.iter().filter(|l| !b.contains(l)).map(|l| format!("+{l}")));
    out
}

#[test]
fn article_003_dvolume_workflow_with_drbdadm() {
    let t0 = Instant::now();
    let c = Cluster::start(ClusterSpec::new(2).disks(&[DISK_MIB]));
    let (a, b) = (c.node(0), c.node(1));
    let (ip0, ip1) = (c.addr(0, 1), c.addr(1, 0));
    let res = dvolume_res(&ip0, &ip1, "");
    for n in [a, b] {
        assert_eq!(
            n.run_ok("uname -n").trim(),
            n.name,
            "drbdadm finds the host by uname -n"
        );
        n.run_ok("command -v drbdadm");
        write_config(n, &res);
    }

    // sudo drbdadm create-md dvolume (answers in case it asks)
    for n in [a, b] {
        let o = n.run_with(
            "drbdadm create-md dvolume",
            RunOpts {
                stdin: Some(b"yes\nyes\n".to_vec()),
                ..Default::default()
            },
        );
        assert!(o.success(), "{}: drbdadm create-md failed\n{o}", n.name);
        let text = format!("{}{}", o.stdout, o.stderr);
        assert!(
            text.contains("New drbd meta data block successfully created"),
            "{}: create-md output:\n{text}",
            n.name
        );
    }
    // sudo modprobe drbd
    for n in [a, b] {
        n.run_ok("modprobe drbd");
    }

    // sudo drbdadm up dvolume, first on node0 alone: Inconsistent, peer Connecting
    a.run_ok("drbdadm up dvolume");
    let st = a.run_ok("drbdadm status");
    eprintln!("node0 alone:\n{st}");
    assert!(st.contains("dvolume role:Secondary"), "{st}");
    assert!(st.contains("disk:Inconsistent"), "{st}");
    assert!(st.contains("node1 connection:Connecting"), "{st}");
    assert!(
        a.run_ok("ls -l /dev/drbd1").contains("147, "),
        "no /dev/drbd1 block device"
    );

    // then on node1: both connected, both Inconsistent
    b.run_ok("drbdadm up dvolume");
    for (n, peer) in [(a, "node1"), (b, "node0")] {
        let st = poll_guest(
            n,
            "connected",
            "drbdadm status dvolume",
            &[&format!("{peer} role:Secondary"), "peer-disk:Inconsistent"],
            60,
        );
        eprintln!("{} connected:\n{st}", n.name);
        assert!(st.contains("disk:Inconsistent"), "{st}");
        assert!(!st.contains("connection:"), "not connected:\n{st}");
    }

    // sudo drbdsetup events2 (live, as the article follows the sync)
    let mut live = a.spawn("drbdsetup events2 dvolume");
    live.wait_for("exists -\n", Duration::from_secs(30));

    // sudo drbdadm primary --force dvolume, then drbdadm status during the sync
    let sync_st = a.run_with(
        "drbdadm primary --force dvolume || exit 2; i=0; while [ $i -lt 3000 ]; do drbdadm status dvolume > /tmp/st; \
         if grep -q 'replication:SyncSource' /tmp/st && grep -q 'done:' /tmp/st; then cat /tmp/st; exit 0; fi; \
         i=$((i+1)); done; cat /tmp/st; exit 1",
        RunOpts {
            timeout: Some(Duration::from_secs(300)),
            ..Default::default()
        },
    );
    eprintln!("node0 syncing:\n{sync_st}");
    assert!(
        sync_st.success(),
        "no SyncSource with done: seen in drbdadm status\n{sync_st}"
    );
    let st = sync_st.stdout;
    assert!(st.contains("dvolume role:Primary"), "{st}");
    assert!(st.contains("disk:UpToDate"), "{st}");
    assert!(st.contains("node1 role:Secondary"), "{st}");
    assert!(st.contains("peer-disk:Inconsistent"), "{st}");

    // sudo drbdsetup events2 --now: the exists lines of every object, then "exists -"
    let now = a.run_ok("drbdsetup events2 --now");
    eprintln!("events2 --now:\n{now}");
    for w in [
        "exists resource name:dvolume role:Primary",
        "exists connection name:dvolume peer-node-id:1 conn-name:node1 connection:Connected role:Secondary",
        "exists device name:dvolume volume:0 minor:1",
        "exists peer-device name:dvolume peer-node-id:1 conn-name:node1 volume:0",
        &format!("exists path name:dvolume peer-node-id:1 conn-name:node1 local:ipv4:{ip0}:7789 peer:ipv4:{ip1}:7789"),
        "exists -",
    ] {
        assert!(now.contains(w), "events2 --now lacks {w:?}:\n{now}");
    }

    // drbdadm wait-sync: progress (plain lines: stdout is not a terminal) until UpToDate
    let ws = a.run_with(
        "drbdadm wait-sync dvolume",
        RunOpts {
            timeout: Some(Duration::from_secs(600)),
            ..Default::default()
        },
    );
    eprintln!("wait-sync:\n{ws}");
    assert!(ws.success(), "drbdadm wait-sync failed\n{ws}");
    assert!(
        ws.stdout
            .trim_end()
            .ends_with("dvolume node1/0 replication:Established peer-disk:UpToDate"),
        "{ws}"
    );
    assert!(
        !ws.stdout.contains('\x1b'),
        "escape sequences off a terminal:\n{ws}"
    );

    // finally UpToDate on both
    let st = poll_guest(
        a,
        "UpToDate on node0",
        "drbdadm status dvolume",
        &[
            "dvolume role:Primary",
            "disk:UpToDate",
            "node1 role:Secondary",
            "peer-disk:UpToDate",
        ],
        60,
    );
    assert!(!st.contains("replication:"), "{st}");
    poll_guest(
        b,
        "UpToDate on node1",
        "drbdadm status dvolume",
        &[
            "dvolume role:Secondary",
            "disk:UpToDate",
            "node0 role:Primary",
            "peer-disk:UpToDate",
        ],
        60,
    );

    // the live events2 job saw the changes (change lines carry only the key groups that changed)
    let ev = live.wait_for_stdout(Duration::from_secs(30), |s| {
        s.lines()
            .any(|l| l.starts_with("change peer-device ") && l.contains("peer-disk:UpToDate"))
    });
    live.signal(15);
    eprintln!("live events2:\n{ev}");
    let pd = "change peer-device name:dvolume peer-node-id:1 conn-name:node1 volume:0 ";
    for w in [
        "change resource name:dvolume role:Primary".to_string(),
        format!("{pd}replication:SyncSource"),
        format!("{pd}replication:Established"),
    ] {
        assert!(ev.contains(&w), "live events2 lacks {w:?}:\n{ev}");
    }
    assert!(
        ev.lines()
            .any(|l| l.starts_with(pd) && l.contains("peer-disk:UpToDate")),
        "live events2 lacks the peer's UpToDate:\n{ev}"
    );
    // as in the article, progress arrives as `change peer-device ... done:NN.NN` lines
    let progress: Vec<f64> = ev
        .lines()
        .filter(|l| l.starts_with(pd))
        .filter_map(|l| l.split(" done:").nth(1))
        .filter_map(|d| d.split_whitespace().next()?.parse().ok())
        .filter(|d| *d > 0.0 && *d < 100.0)
        .collect();
    assert!(
        progress.len() >= 2 && progress.windows(2).all(|w| w[0] <= w[1]),
        "live events2 lacks advancing done: lines during the sync: {progress:?}\n{ev}"
    );

    // adjust with the unchanged file
    let before = show_config(a);
    eprintln!(
        "drbdsetup show dvolume (node0):\n{}",
        a.run_ok("drbdsetup show dvolume")
    );
    let dry = a.run_ok("drbdadm -d adjust dvolume");
    assert!(
        before.contains("fencing"),
        "net option fencing not kept by the kernel:\n{before}"
    );
    assert_eq!(dry.trim(), "", "adjust of an unchanged config:\n{dry}");

    // edit a net option in the file on both nodes, adjust: exactly one net-options call
    let edited = dvolume_res(&ip0, &ip1, "ping-timeout 7;\n");
    for n in [a, b] {
        n.write_file("/etc/drbd.d/dvolume.res", edited.as_bytes());
    }
    let dry = a.run_ok("drbdadm -d adjust dvolume");
    assert_eq!(
        dry.trim(),
        "drbdsetup net-options dvolume 1 --set-defaults --_name=node1 --ping-timeout=7 --fencing=resource-only --protocol=C",
        "adjust after editing ping-timeout:\n{dry}"
    );
    let o = a.run("drbdadm adjust dvolume");
    eprintln!("drbdadm adjust dvolume:\n{o}");
    let after = show_config(a);
    let diff = changed_lines(&before, &after);
    assert!(o.success(), "drbdadm adjust failed:\n{o}");
    assert_eq!(
        diff.iter().filter(|l| l.starts_with('+')).count(),
        1,
        "show changed in more than one line:\n{diff:#?}"
    );
    assert!(
        diff.iter()
            .any(|l| l.starts_with('+') && l.contains("ping-timeout") && l.contains('7')),
        "ping-timeout 7 not in drbdsetup show:\n{after}"
    );
    assert!(
        diff.iter()
            .all(|l| l.starts_with('+') || l.contains("ping-timeout")),
        "{diff:#?}"
    );
    assert_eq!(
        a.run_ok("drbdadm -d adjust dvolume").trim(),
        "",
        "adjust is not idempotent"
    );
    // the connection stayed up
    let st = a.run_ok("drbdadm status dvolume");
    assert!(
        st.contains("node1 role:Secondary") && st.contains("peer-disk:UpToDate"),
        "{st}"
    );
    let now = a.run_ok("drbdsetup events2 --now dvolume");
    assert!(now.contains("connection:Connected"), "{now}");

    // sudo drbdadm down dvolume
    for n in [a, b] {
        n.run_ok("drbdadm down dvolume");
        let st = n.run_ok("drbdadm status");
        assert!(st.contains("No currently configured DRBD found"), "{st}");
    }
    eprintln!("article 003 workflow: {:.1} s", t0.elapsed().as_secs_f64());
}
