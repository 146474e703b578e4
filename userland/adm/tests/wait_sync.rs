//! `drbdadm wait-sync` with a stand-in drbdsetup whose `events2 --now` walks through a resync.

use std::path::{Path, PathBuf};
use std::process::Command;

fn stand_in(name: &str, states: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("drbdadm-wait-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, s) in states.iter().enumerate() {
        std::fs::write(dir.join(format!("state{i}")), s).unwrap();
    }
    let last = states.len() - 1;
    let script = format!(
        "#!/bin/sh\nd={d}\nn=$(cat $d/n 2>/dev/null || echo 0)\n[ \"$1 $2 $3\" = \"events2 --now r0\" ] || exit 20\ncat $d/state$n\n[ $n -lt {last} ] && echo $((n + 1)) > $d/n\nexit 0\n",
        d = dir.display()
    );
    std::fs::write(dir.join("drbdsetup"), script).unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(dir.join("drbdsetup"))
        .status()
        .unwrap();
    std::fs::write(
        dir.join("r.res"),
        "global { disable-ip-verification; }\nresource r0 { device minor 0; disk /dev/sda; meta-disk internal;\n on alpha { node-id 0; address 10.0.0.1:7000; }\n on beta { node-id 1; address 10.0.0.2:7000; } }\n",
    )
    .unwrap();
    dir
}

fn pd(repl: &str, disk: &str, done: &str) -> String {
    format!(
        "exists resource name:r0 role:Primary suspended:no\nexists connection name:r0 peer-node-id:1 conn-name:beta connection:Connected role:Secondary\nexists device name:r0 volume:0 minor:0 backing_dev:/dev/sda disk:UpToDate client:no quorum:yes\nexists peer-device name:r0 peer-node-id:1 conn-name:beta volume:0 replication:{repl} peer-disk:{disk} peer-client:no resync-suspended:no{done}\nexists -\n"
    )
}

fn wait_sync(dir: &Path, extra: &[&str]) -> (String, String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_drbdadm"))
        .env("__DRBD_NODE__", "alpha")
        .arg("-c")
        .arg(dir.join("r.res"))
        .arg("-s")
        .arg(dir.join("drbdsetup"))
        .arg("wait-sync")
        .args(extra)
        .arg("r0")
        .output()
        .unwrap();
    let err: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.is_empty() && !l.contains("__DRBD_NODE__") && !l.contains("PRETENDING"))
        .map(|l| format!("{l}\n"))
        .collect();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        err,
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn plain_lines_until_established() {
    let connecting = "exists resource name:r0 role:Secondary suspended:no\nexists connection name:r0 peer-node-id:1 conn-name:beta connection:Connecting role:Unknown\nexists device name:r0 volume:0 minor:0 backing_dev:/dev/sda disk:UpToDate client:no quorum:yes\nexists -\n";
    let s1 = pd("SyncSource", "Inconsistent", " done:10.25");
    let s2 = pd("SyncSource", "Inconsistent", " done:10.75");
    let s3 = pd("SyncSource", "Inconsistent", " done:64.00");
    let s4 = pd("Established", "UpToDate", "");
    let dir = stand_in("plain", &[connecting, &s1, &s2, &s3, &s4]);
    let (out, err, rc) = wait_sync(&dir, &[]);
    assert_eq!(rc, 0, "{err}");
    // 10.25 and 10.75 are the same whole percent: one line
    assert_eq!(
        out,
        "r0 beta connection:Connecting\n\
         r0 beta/0 replication:SyncSource peer-disk:Inconsistent done:10.25\n\
         r0 beta/0 replication:SyncSource peer-disk:Inconsistent done:64.00\n\
         r0 beta/0 replication:Established peer-disk:UpToDate\n"
    );
    assert!(!out.contains('\x1b'));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn timeout_and_dry_run() {
    let s1 = pd("SyncSource", "Inconsistent", " done:10.25");
    let dir = stand_in("timeout", &[&s1]);
    let (_, err, rc) = wait_sync(&dir, &["--wfc-timeout=1"]);
    assert_eq!(rc, 5);
    assert!(err.contains("timed out"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_drbdadm"))
        .env("__DRBD_NODE__", "alpha")
        .arg("-c")
        .arg(dir.join("r.res"))
        .args(["-d", "wait-sync", "r0"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "drbdsetup wait-sync-resource r0\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_resource() {
    let dir = stand_in("missing", &["exists -\n"]);
    let (_, err, rc) = wait_sync(&dir, &[]);
    assert_eq!(rc, 10);
    assert!(err.contains("r0: No such resource"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
