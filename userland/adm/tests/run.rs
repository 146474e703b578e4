//! Without -d: the helpers run in drbdadm's order, a failure stops the resource with drbdadm's
//! messages and exit codes (checked with logging stand-ins passed as -s/-m).

use std::path::{Path, PathBuf};
use std::process::Command;

fn setup(name: &str, fail_on: &str, code: i32) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("drbdadm-run-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    let _ = std::fs::remove_file(&log);
    let helper = dir.join("helper.sh");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\necho \"$(basename $0) $*\" >> {}\ncase \"$*\" in *\"{fail_on}\"*) exit {code};; esac\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&helper)
        .status()
        .unwrap();
    let conf = dir.join("r.res");
    std::fs::write(
        &conf,
        "global { disable-ip-verification; }\nresource r0 { device minor 0; disk /dev/sda; meta-disk internal;\n on alpha { address 10.0.0.1:7000; }\n on beta { address 10.0.0.2:7000; } }\nresource r1 { device minor 1; disk /dev/sdb; meta-disk internal;\n on alpha { address 10.0.0.1:7001; }\n on beta { address 10.0.0.2:7001; } }\n",
    )
    .unwrap();
    (dir, log)
}

fn run(dir: &Path, args: &[&str]) -> (String, i32) {
    let h = dir.join("helper.sh");
    let out = Command::new(env!("CARGO_BIN_EXE_drbdadm"))
        .env("__DRBD_NODE__", "alpha")
        .arg("-c")
        .arg(dir.join("r.res"))
        .arg("-s")
        .arg(&h)
        .arg("-m")
        .arg(&h)
        .args(args)
        .output()
        .unwrap();
    let err: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.is_empty() && !l.contains("__DRBD_NODE__") && !l.contains("PRETENDING"))
        .map(|l| format!("{l}\n"))
        .collect();
    (err, out.status.code().unwrap_or(-1))
}

fn log(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn up_runs_every_stage() {
    let (dir, l) = setup("ok", "never-matches", 0);
    let (err, rc) = run(&dir, &["up", "r0"]);
    assert_eq!((err.as_str(), rc), ("", 0));
    assert_eq!(
        log(&l),
        "helper.sh new-resource r0 0\nhelper.sh new-minor r0 0 0\nhelper.sh new-peer r0 1 --_name=beta\nhelper.sh new-path r0 1 ipv4:10.0.0.1:7000 ipv4:10.0.0.2:7000\nhelper.sh 0 v09 /dev/sda internal apply-al\nhelper.sh attach 0 /dev/sda /dev/sda internal\nhelper.sh connect r0 1\n"
    );
}

#[test]
fn failure_stops_that_resource_only() {
    let (dir, l) = setup("fail", "attach 0", 10);
    let (err, rc) = run(&dir, &["up", "all"]);
    assert_eq!(rc, 1);
    let h = dir.join("helper.sh");
    assert_eq!(
        err,
        format!(
            "Command '{} attach 0 /dev/sda /dev/sda internal' terminated with exit code 10\n",
            h.display()
        )
    );
    let log = log(&l);
    assert!(log.contains("attach 1 /dev/sdb"), "{log}");
    assert!(
        log.contains("connect r1 0") || log.contains("connect r1 1"),
        "{log}"
    );
    assert!(!log.contains("connect r0"), "{log}");
}

#[test]
fn single_commands_return_the_helper_exit_code() {
    let (dir, _) = setup("rc17", "primary", 17);
    let (err, rc) = run(&dir, &["primary", "r0"]);
    assert_eq!(rc, 17);
    assert!(
        err.ends_with("primary r0' terminated with exit code 17\n"),
        "{err}"
    );
}

#[test]
fn invalidate_falls_back_to_drbdmeta() {
    let (dir, l) = setup("inval", "invalidate 0", 10);
    let (_, rc) = run(&dir, &["invalidate", "r0"]);
    assert_eq!(rc, 0);
    assert_eq!(
        log(&l),
        "helper.sh invalidate 0\nhelper.sh 0 v09 /dev/sda internal invalidate\n"
    );
    // 17 (no UpToDate disk) is final: no drbdmeta
    let (dir, l) = setup("inval17", "invalidate 0", 17);
    let (_, rc) = run(&dir, &["invalidate", "r0"]);
    assert_eq!(rc, 17);
    assert_eq!(log(&l), "helper.sh invalidate 0\n");
}

#[test]
fn missing_helper_is_exit_20() {
    let (dir, _) = setup("nohelper", "x", 0);
    let out = Command::new(env!("CARGO_BIN_EXE_drbdadm"))
        .env("__DRBD_NODE__", "alpha")
        .arg("-c")
        .arg(dir.join("r.res"))
        .arg("-s")
        .arg(dir.join("does-not-exist"))
        .args(["primary", "r0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(20));
}

#[test]
fn version_lines() {
    let out = Command::new(env!("CARGO_BIN_EXE_drbdadm"))
        .env("DRBD_DRIVER_VERSION_OVERRIDE", "9.2.12")
        .arg("--version")
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    let keys: Vec<&str> = s.lines().map(|l| l.split('=').next().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "DRBDADM_BUILDTAG",
            "DRBDADM_API_VERSION",
            "DRBD_KERNEL_VERSION_CODE",
            "DRBD_KERNEL_VERSION",
            "DRBDADM_VERSION_CODE",
            "DRBDADM_VERSION"
        ]
    );
    assert!(s.contains("DRBD_KERNEL_VERSION_CODE=0x09020c\nDRBD_KERNEL_VERSION=9.2.12\n"));
    assert!(s.contains("DRBDADM_VERSION_CODE=0x091600\n"));
}
