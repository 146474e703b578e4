//! The drbdsetup binary without a kernel module: usage errors and the
//! missing-module paths, with DRBD's messages and exit codes.

use std::process::Command;

fn run(args: &[&str], proc_drbd: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_drbdsetup"))
        .args(args)
        .env("DRBDSETUP_PROC_DRBD", proc_drbd)
        .output()
        .expect("run drbdsetup");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const MISSING: &str = "/nonexistent/proc/drbd";

#[test]
fn help() {
    let (code, out, _) = run(&["--help"], MISSING);
    assert_eq!(code, 0);
    assert!(out.contains("new-resource"));
    let (code, out, _) = run(&["attach", "--help"], MISSING);
    assert_eq!(code, 0);
    assert!(out.starts_with(
        "USAGE: drbdsetup attach {minor} {lower_dev} {meta_data_dev} {meta_data_index}"
    ));
    assert!(out.contains("--on-io-error={pass_on|call-local-io-error|detach}"));
}

#[test]
fn usage_errors_exit_20() {
    let (code, _, err) = run(&["attach", "1"], MISSING);
    assert_eq!(code, 20);
    assert!(err.starts_with("Missing argument 2"));
    let (code, _, err) = run(&["frobnicate"], MISSING);
    assert_eq!(code, 20);
    assert!(err.contains("invalid command"));
    let (code, _, _) = run(&[], MISSING);
    assert_eq!(code, 20);
}

#[test]
fn module_not_loaded() {
    let (code, _, err) = run(&["new-resource", "r0", "0"], MISSING);
    assert_eq!(code, 20);
    assert_eq!(err, "do you need to load the module?\ntry: modprobe drbd\n");
    // down/secondary/disconnect/detach succeed without the module.
    assert_eq!(run(&["down", "r0"], MISSING).0, 0);
    assert_eq!(run(&["secondary", "r0"], MISSING).0, 0);
    assert_eq!(run(&["detach", "1"], MISSING).0, 0);
}

#[test]
fn family_missing() {
    // /proc/drbd "exists" but no drbd genl family is registered here.
    if std::path::Path::new("/sys/module/drbd").exists() {
        return; // a real DRBD is loaded on this machine
    }
    let (code, _, err) = run(&["status"], "/");
    assert_eq!(code, 20);
    assert_eq!(err, "Could not connect to 'drbd' generic netlink family\n");
}
