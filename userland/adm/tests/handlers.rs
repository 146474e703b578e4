//! `drbdadm <handler> <res>`: the configured command runs via `/bin/sh -c` with drbdadm's
//! environment and its exit status becomes drbdadm's; unconfigured handlers succeed silently.

use std::path::PathBuf;
use std::process::Command;

fn conf(name: &str, handlers: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("drbdadm-handlers-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("r.res");
    std::fs::write(
        &conf,
        format!(
            "global {{ disable-ip-verification; }}\nresource r0 {{\n handlers {{ {handlers} }}\n volume 0 {{ device minor 3; disk /dev/sda; meta-disk internal; }}\n volume 1 {{ device minor 4; disk /dev/sdb; meta-disk internal; }}\n on alpha {{ node-id 1; address 10.0.0.1:7000; }}\n on beta {{ node-id 2; address 10.0.0.2:7000; }} }}\n"
        ),
    )
    .unwrap();
    conf
}

fn drbdadm(conf: &PathBuf, args: &[&str], env: &[(&str, &str)]) -> (String, String, i32) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_drbdadm"));
    c.env("__DRBD_NODE__", "alpha")
        .env_remove("DRBD_MINOR")
        .env_remove("DRBD_VOLUME")
        .env_remove("DRBD_LL_DISK")
        .arg("-c")
        .arg(conf)
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.code().unwrap_or(-1),
    )
}

#[test]
fn dry_run_prints_the_shell_command() {
    let c = conf(
        "dry",
        r#"split-brain "/usr/lib/drbd/notify-split-brain.sh root";"#,
    );
    let (out, _, rc) = drbdadm(&c, &["-d", "split-brain", "r0"], &[]);
    assert_eq!(rc, 0);
    assert_eq!(
        out,
        "/bin/sh -c /usr/lib/drbd/notify-split-brain.sh\\ root\n"
    );
}

#[test]
fn runs_with_environment_and_exit_status() {
    let dir = std::env::temp_dir().join(format!("drbdadm-handlers-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("env.log");
    let _ = std::fs::remove_file(&log);
    let c = conf(
        "env",
        &format!(r#"fence-peer "env > {}; exit 4";"#, log.display()),
    );
    let (_, _, rc) = drbdadm(
        &c,
        &["fence-peer", "r0"],
        &[("UP_TO_DATE_NODES", "0x00000002")],
    );
    assert_eq!(rc, 4);
    let env = std::fs::read_to_string(&log).unwrap();
    for want in [
        "DRBD_RESOURCE=r0",
        "DRBD_MY_NODE_ID=1",
        "DRBD_NODE_ID_1=alpha",
        "DRBD_NODE_ID_2=beta",
        "DRBD_MINOR=3 4",
        "DRBD_VOLUME=0 1",
        "DRBD_LL_DISK=/dev/sda /dev/sdb",
        "UP_TO_DATE_NODES=0x00000002",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing in\n{env}");
    }
    assert!(env.lines().any(|l| l.starts_with("DRBD_CONF=/")), "{env}");
}

#[test]
fn kernel_device_variables_are_kept_and_volume_selects() {
    let dir = std::env::temp_dir().join(format!("drbdadm-handlers-vol-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("env.log");
    let c = conf("vol", &format!(r#"split-brain "env > {}";"#, log.display()));
    let (_, _, rc) = drbdadm(&c, &["split-brain", "r0"], &[("DRBD_MINOR", "4")]);
    assert_eq!(rc, 0);
    let env = std::fs::read_to_string(&log).unwrap();
    assert!(env.lines().any(|l| l == "DRBD_MINOR=4"), "{env}");
    let (_, _, rc) = drbdadm(&c, &["split-brain", "r0/1"], &[]);
    assert_eq!(rc, 0);
    let env = std::fs::read_to_string(&log).unwrap();
    assert!(env.lines().any(|l| l == "DRBD_MINOR=4"), "{env}");
    assert!(env.lines().any(|l| l == "DRBD_LL_DISK=/dev/sdb"), "{env}");
}

#[test]
fn unconfigured_handler_succeeds_silently() {
    let c = conf("none", r#"split-brain "exit 1";"#);
    let (out, err, rc) = drbdadm(&c, &["before-resync-target", "r0"], &[]);
    // Only the __DRBD_NODE__ notice of the test hook, nothing about the handler.
    assert_eq!((out.as_str(), rc), ("", 0));
    assert!(!err.contains("before-resync-target"), "{err}");
    let (out, _, rc) = drbdadm(&c, &["-d", "unfence-peer", "r0"], &[]);
    assert_eq!((out.as_str(), rc), ("", 0));
}

#[test]
fn legacy_outdate_peer_key_is_not_run_for_fence_peer() {
    let c = conf("legacy", r#"outdate-peer "exit 5";"#);
    let (_, _, rc) = drbdadm(&c, &["fence-peer", "r0"], &[]);
    assert_eq!(rc, 0);
}

#[test]
fn failing_command_and_unknown_resource() {
    let c = conf("fail", r#"split-brain "exit 3";"#);
    assert_eq!(drbdadm(&c, &["split-brain", "r0"], &[]).2, 3);
    let (_, err, rc) = drbdadm(&c, &["split-brain", "nosuch"], &[]);
    assert_ne!(rc, 0, "{err}");
    let (_, _, rc) = drbdadm(&c, &["no-such-handler", "r0"], &[]);
    assert_eq!(rc, 1);
}
