//! User-mode helpers: the kernel runs `<usermode_helper> <handler> r0` (module parameter,
//! default `/sbin/drbdadm`), our drbdadm runs the command of drbd.conf's `handlers {}` section.
//! Shown here: `before-resync-target`/`after-resync-target` around the initial sync (with the
//! kernel's and drbdadm's environment), `fence-peer` when the Primary with
//! `fencing resource-only` loses its peer (exit 4 marks the peer Outdated), `unfence-peer`
//! once the peer is UpToDate after a resync, `initial-split-brain` and `split-brain` on both sides of a
//! split brain, and the events2 `call helper` / `response helper … status:N` lines.
//! Failure paths: a handler exiting 7, and a helper program that does not exist (the resync
//! still runs), neither hangs anything.

mod common;

use common::*;
use std::time::Duration;
use tests_qemu::{Cluster, ClusterSpec, Node};

/// Appends one line per call, with the variables the handler should see.
fn log_cmd(tag: &str, extra: &str) -> String {
    format!(
        "echo {tag} res=$DRBD_RESOURCE minor=$DRBD_MINOR vol=$DRBD_VOLUME disk=$DRBD_BACKING_DEV peer=$DRBD_PEER_NODE_ID paddr=$DRBD_PEER_ADDRESS maddr=$DRBD_MY_ADDRESS af=$DRBD_PEER_AF cstate=$DRBD_CSTATE utd=$UP_TO_DATE_NODES >> /tmp/h.log{extra}"
    )
}

fn config(ip0: &str, ip1: &str, split_brain_exit: u32) -> String {
    let sb_extra = if split_brain_exit == 0 {
        String::new()
    } else {
        format!("; exit {split_brain_exit}")
    };
    format!(
        r#"global {{ usage-count no; }}
resource r0 {{
  net {{ fencing resource-only; }}
  handlers {{
    initial-split-brain "{isb}";
    split-brain "{sb}";
    before-resync-target "env > /tmp/brt.env; {brt}";
    after-resync-target "{art}";
    fence-peer "{fp}";
    unfence-peer "{ufp}";
  }}
  device minor 1;
  disk /dev/vdb;
  meta-disk internal;
  on node0 {{ node-id 0; address {ip0}:7789; }}
  on node1 {{ node-id 1; address {ip1}:7789; }}
}}
"#,
        isb = log_cmd("initial-split-brain", ""),
        sb = log_cmd("split-brain", &sb_extra),
        brt = log_cmd("before-resync-target", ""),
        art = log_cmd("after-resync-target", ""),
        fp = log_cmd("fence-peer", "; exit 4"),
        ufp = log_cmd("unfence-peer", ""),
    )
}

fn helper_log(n: &Node) -> String {
    n.run("cat /tmp/h.log").stdout
}

/// Waits until the handler log of `n` has a line starting with `tag` and containing `fields`.
fn wait_logged(n: &Node, tag: &str, fields: &[&str]) -> String {
    let greps: Vec<String> = fields
        .iter()
        .map(|f| format!(" | grep -F -- '{f}'"))
        .collect();
    wait_for(
        n,
        &format!("helper {tag}"),
        &format!("grep '^{tag} ' /tmp/h.log{} >/dev/null", greps.concat()),
        120,
    );
    helper_log(n)
}

/// An events2 line starting with `prefix` that has every field.
fn has_event(out: &str, prefix: &str, fields: &[&str]) -> bool {
    out.lines().any(|l| {
        l.starts_with(prefix) && fields.iter().all(|f| l.split_whitespace().any(|w| w == *f))
    })
}

#[test]
fn helpers_run_with_drbd_environment_and_events() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[32]));
    let (a, b) = (c.node(0), c.node(1));
    let (ip_a, ip_b) = (c.addr(0, 1), c.addr(1, 0));
    for (n, sb_exit) in [(a, 0), (b, 7)] {
        n.run_ok("modprobe drbd");
        let param = n.run_ok("cat /sys/module/drbd/parameters/usermode_helper");
        assert_eq!(param.trim(), "/sbin/drbdadm", "default usermode_helper");
        // Our drbdadm lives in /usr/sbin in the guest.
        n.run_ok("echo /usr/sbin/drbdadm > /sys/module/drbd/parameters/usermode_helper");
        n.write_file("/etc/drbd.conf", config(&ip_a, &ip_b, sb_exit).as_bytes());
        n.run_ok("drbdadm sh-resources | grep -qx r0");
        create_md_ok(n, 1, "/dev/vdb", 1);
    }
    let mut ev_a = a.spawn("drbdsetup events2");
    let mut ev_b = b.spawn("drbdsetup events2");
    bring_up_with(a, 0, 1, &ip_a, &ip_b, "--fencing=resource-only");
    bring_up_with(b, 1, 0, &ip_b, &ip_a, "--fencing=resource-only");

    // Initial sync: node1 is SyncTarget and runs before- and after-resync-target.
    wait_connected(a);
    a.run_ok("drbdsetup primary --force r0");
    up_to_date_both(a, b);
    let log = wait_logged(b, "after-resync-target", &["res=r0"]);
    let ident =
        format!("res=r0 minor=1 vol=0 disk=/dev/vdb peer=0 paddr={ip_a} maddr={ip_b} af=ipv4");
    assert!(
        log.lines().any(|l| l.starts_with("before-resync-target ")
            && l.contains(&ident)
            && l.contains("cstate=Connected")),
        "before-resync-target environment:\n{log}"
    );
    let env = b.run_ok("cat /tmp/brt.env");
    for want in [
        "HOME=/",
        "TERM=linux",
        "PATH=/sbin:/usr/sbin:/bin:/usr/bin",
        "DRBD_MINOR=1",
        "DRBD_VOLUME=0",
        "DRBD_BACKING_DEV=/dev/vdb",
        "DRBD_PEER_NODE_ID=0",
        "DRBD_PEER_AF=ipv4",
        "DRBD_MY_AF=ipv4",
        "DRBD_RESOURCE=r0",
        "DRBD_MY_NODE_ID=1",
        "DRBD_NODE_ID_0=node0",
        "DRBD_NODE_ID_1=node1",
        "DRBD_CONF=/etc/drbd.conf",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing:\n{env}");
    }
    // The SyncSource only lifts the fence once its peer is UpToDate.
    let log_a = wait_logged(a, "unfence-peer", &["res=r0", "peer=1", "utd=0x00000003"]);
    assert!(
        log_a.lines().all(|l| l.starts_with("unfence-peer ")),
        "the SyncSource ran another helper:\n{log_a}"
    );
    a.run_ok(": > /tmp/h.log");
    let kernel_b = b.run_ok("dmesg");
    assert!(
        kernel_b.contains("helper command: /usr/sbin/drbdadm before-resync-target r0"),
        "{kernel_b}"
    );

    // The Primary loses its peer: fence-peer, exit 4 = peer Outdated.
    c.set_link(0, 1, false);
    let log = wait_logged(
        a,
        "fence-peer",
        &["res=r0", "peer=1", "utd=0x00000001", "disk= "],
    );
    assert!(
        log.lines()
            .any(|l| l.starts_with("fence-peer ")
                && l.contains(&format!("paddr={ip_b} maddr={ip_a}"))),
        "fence-peer is a connection helper (no single backing device):\n{log}"
    );
    wait_for(
        a,
        "peer Outdated after fence-peer",
        "drbdsetup events2 --now r0 | grep -q 'exists peer-device .*peer-disk:Outdated'",
        60,
    );
    assert!(
        a.run_ok("dmesg")
            .contains("fence-peer helper returned 4 (peer was fenced)"),
        "fence-peer result not logged"
    );
    // Writes while apart, so a resync follows. On node1 the helper program is missing: the
    // call fails (response with a negative errno) and the resync still runs.
    a.run_ok("dd if=/dev/urandom of=/dev/drbd1 bs=4k count=16 oflag=direct 2>/dev/null");
    b.run_ok("echo /nonexistent/drbdadm > /sys/module/drbd/parameters/usermode_helper");
    b.run_ok(": > /tmp/h.log");
    c.set_link(0, 1, true);
    up_to_date_both(a, b);
    wait_logged(a, "unfence-peer", &["res=r0", "peer=1", "utd=0x00000003"]);
    assert_eq!(
        data_hash(a),
        data_hash(b),
        "replicas differ after the resync"
    );
    assert!(
        helper_log(b).is_empty(),
        "a missing helper program ran something"
    );
    b.run_ok("echo /usr/sbin/drbdadm > /sys/module/drbd/parameters/usermode_helper");

    // Split brain, left to the administrator: both sides run initial-split-brain and
    // split-brain (node1's exits 7) and go StandAlone.
    a.run_ok("drbdsetup secondary r0");
    c.set_link(0, 1, false);
    for n in [a, b] {
        wait_link_loss(n);
    }
    for (n, seek) in [(a, 0), (b, 64)] {
        n.run_ok(&format!(
            "drbdsetup primary r0 && dd if=/dev/urandom of=/dev/drbd1 bs=4k count=8 seek={seek} oflag=direct 2>/dev/null && drbdsetup secondary r0"
        ));
    }
    c.set_link(0, 1, true);
    for (n, peer) in [(a, 1), (b, 0)] {
        wait_for(
            n,
            "StandAlone after split brain",
            "drbdsetup events2 --now r0 | grep -q 'exists connection .*connection:StandAlone'",
            120,
        );
        let p = format!("peer={peer}");
        wait_logged(
            n,
            "initial-split-brain",
            &["res=r0", "minor=1", "vol=0", &p],
        );
        wait_logged(n, "split-brain", &["res=r0", "minor=1", "vol=0", &p]);
    }

    // events2 saw each call and response with the raw wait status.
    std::thread::sleep(Duration::from_secs(1));
    let (out_a, _) = ev_a.output();
    let (out_b, _) = ev_b.output();
    let pd_a = ["name:r0", "peer-node-id:1", "conn-name:node1", "volume:0"];
    let pd_b = ["name:r0", "peer-node-id:0", "conn-name:node0", "volume:0"];
    let with = |base: &[&str], extra: &[&'static str]| -> Vec<String> {
        base.iter()
            .chain(extra.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let check = |out: &str, prefix: &str, fields: Vec<String>| {
        let f: Vec<&str> = fields.iter().map(String::as_str).collect();
        assert!(
            has_event(out, prefix, &f),
            "no `{prefix}` with {f:?}:\n{out}"
        );
    };
    check(
        &out_b,
        "call helper",
        with(&pd_b, &["helper:before-resync-target"]),
    );
    check(
        &out_b,
        "response helper",
        with(&pd_b, &["helper:before-resync-target", "status:0"]),
    );
    check(
        &out_b,
        "response helper",
        with(&pd_b, &["helper:after-resync-target", "status:0"]),
    );
    // The missing program: -ENOENT as the unsigned attribute.
    check(
        &out_b,
        "response helper",
        with(&pd_b, &["helper:before-resync-target", "status:4294967294"]),
    );
    check(
        &out_a,
        "call helper",
        vec![
            "name:r0".into(),
            "peer-node-id:1".into(),
            "conn-name:node1".into(),
            "helper:fence-peer".into(),
        ],
    );
    check(
        &out_a,
        "response helper",
        vec![
            "name:r0".into(),
            "peer-node-id:1".into(),
            "helper:fence-peer".into(),
            "status:1024".into(),
        ],
    );
    check(
        &out_a,
        "response helper",
        with(&pd_a, &["helper:split-brain", "status:0"]),
    );
    check(
        &out_b,
        "response helper",
        with(&pd_b, &["helper:split-brain", "status:1792"]),
    );
    check(
        &out_a,
        "response helper",
        with(&pd_a, &["helper:initial-split-brain", "status:0"]),
    );
    // Our drbdsetup and DRBD's events2 parser agree on the lines (no unknown objects).
    for out in [&out_a, &out_b] {
        for l in out.lines().filter(|l| l.contains(" helper ")) {
            assert!(
                l.starts_with("call helper ") || l.starts_with("response helper "),
                "{l}"
            );
        }
    }
    ev_a.kill();
    ev_b.kill();

    // A node that is still usable: reconnect after discarding node1's changes.
    b.run_ok("drbdsetup disconnect r0 0 && drbdsetup connect r0 0 --discard-my-data");
    a.run_ok("drbdsetup connect r0 1");
    up_to_date_both(a, b);
    assert_eq!(data_hash(a), data_hash(b), "replicas differ after recovery");
    for n in [a, b] {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
}

/// A helper that asks the module for its status while `disconnect` (then `down`) stops the
/// thread that runs the helper: neither waits for it (the thread stops waiting and says the
/// exit code will be ignored), and the helper, let go afterwards, still gets its answer: the
/// status after `disconnect`, "No such resource" after `down`.
#[test]
fn helper_querying_the_module_does_not_block_disconnect_or_down() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[32]));
    let (a, b) = (c.node(0), c.node(1));
    let (ip_a, ip_b) = (c.addr(0, 1), c.addr(1, 0));
    let conf = format!(
        r#"resource r0 {{
  handlers {{
    before-resync-target "touch /tmp/brt.started; while [ ! -f /tmp/go ]; do sleep 1; done; drbdsetup status r0 > /tmp/st.out; echo $? >> /tmp/st.out";
  }}
  device minor 1;
  disk /dev/vdb;
  meta-disk internal;
  on node0 {{ node-id 0; address {ip_a}:7789; }}
  on node1 {{ node-id 1; address {ip_b}:7789; }}
}}
"#
    );
    for n in [a, b] {
        n.run_ok("modprobe drbd");
        n.run_ok("echo /usr/sbin/drbdadm > /sys/module/drbd/parameters/usermode_helper");
        n.write_file("/etc/drbd.conf", conf.as_bytes());
        create_md_ok(n, 1, "/dev/vdb", 1);
    }
    bring_up(a, 0, 1, &ip_a, &ip_b, "C");
    bring_up(b, 1, 0, &ip_b, &ip_a, "C");
    a.run_ok("drbdsetup primary --force r0");
    for (round, cmd) in [(1, "drbdsetup disconnect r0 0"), (2, "drbdsetup down r0")] {
        wait_for(
            b,
            "before-resync-target running",
            "test -f /tmp/brt.started",
            120,
        );
        b.run_ok(&format!("({cmd}; echo $? > /tmp/cmd.rc) >/dev/null 2>&1 &"));
        // The command does not wait for the helper, which is still blocked.
        wait_for(
            b,
            &format!("round {round}: `{cmd}` returned"),
            "test -s /tmp/cmd.rc",
            60,
        );
        assert_eq!(
            b.run_ok("cat /tmp/cmd.rc").trim(),
            "0",
            "round {round}: {cmd}"
        );
        assert!(
            !b.run("test -e /tmp/st.out").success(),
            "round {round}: the helper finished before it was let go"
        );
        let abandoned = "r0: stopped waiting for helper before-resync-target (still running)";
        assert_eq!(
            b.run_ok("dmesg").matches(abandoned).count(),
            round,
            "round {round}: no note that the helper's exit code is ignored"
        );
        b.run_ok("touch /tmp/go");
        wait_for(
            b,
            &format!("round {round}: the helper's status query answered"),
            "[ $(wc -l < /tmp/st.out) -ge 1 ] && tail -n 1 /tmp/st.out | grep -qx '[0-9]*'",
            60,
        );
        let st = b.run_ok("cat /tmp/st.out");
        if round == 1 {
            assert!(
                st.starts_with("r0 role:Secondary") && st.trim_end().ends_with("\n0"),
                "round {round}: the helper's status query:\n{st}"
            );
        } else {
            assert!(
                !st.trim_end().ends_with("\n0") && !st.trim().eq("0"),
                "round {round}: status of a removed resource succeeded:\n{st}"
            );
        }
        b.run_ok("rm -f /tmp/go /tmp/brt.started /tmp/cmd.rc /tmp/st.out");
        if round == 1 {
            // The sync did not finish: connecting again runs the helper again.
            b.run_ok("drbdsetup connect r0 0");
        }
    }
    assert!(
        b.run_ok("drbdsetup status r0 2>&1; true")
            .contains("No such resource"),
        "down left r0 behind"
    );
    b.run_ok("rmmod drbd");
    a.run_ok("drbdsetup down r0 && rmmod drbd");
}
