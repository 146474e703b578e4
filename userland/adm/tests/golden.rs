//! Dry-run and dump output compared with Debian's drbd-utils 9.22.0, recorded in tests/golden by
//! tests/record-golden.sh from the cases in tests/cases.txt.

use std::path::{Path, PathBuf};
use std::process::Command;

fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests")
}

struct Case {
    conf: String,
    host: String,
    args: Vec<String>,
    golden: PathBuf,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(here().join("cases.txt")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut w = l.split_whitespace().map(str::to_string);
            let conf = w.next().unwrap();
            let host = w.next().unwrap();
            let args: Vec<String> = w.collect();
            let name: String = format!("{conf} {host} {}", args.join(" "))
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || ".=-".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            Case {
                conf,
                host,
                args,
                golden: here().join("golden").join(format!("{name}.txt")),
            }
        })
        .collect()
}

/// Runs `prog` like the recorder does and returns the normalised text.
fn run(prog: &Path, path_dir: Option<&Path>, c: &Case) -> String {
    let fixtures = here().join("fixtures");
    let mut cmd = Command::new(prog);
    cmd.current_dir(&fixtures)
        .env("__DRBD_NODE__", &c.host)
        .env("DRBD_DRIVER_VERSION_OVERRIDE", "9.2.12")
        .env_remove("FAKE_DRBDSETUP_SHOW")
        .arg("-c")
        .arg(&c.conf)
        .args(&c.args);
    if let Some(d) = path_dir {
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", d.display()));
    }
    let out = cmd.output().unwrap();
    let mut stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    while stdout.ends_with('\n') {
        stdout.pop();
    }
    let text = format!("{stdout}\n## rc={}\n", out.status.code().unwrap_or(-1));
    let dir = std::fs::canonicalize(&fixtures).unwrap();
    text.replace(&dir.display().to_string(), "@DIR@")
}

#[test]
fn dry_runs_and_dumps_match_drbdadm_9_22() {
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_drbdadm"));
    let mut bad = Vec::new();
    let all = cases();
    assert!(all.len() > 100);
    for c in &all {
        let want = std::fs::read_to_string(&c.golden)
            .unwrap_or_else(|e| panic!("{}: {e}", c.golden.display()));
        let got = run(&ours, None, c);
        if got != want {
            bad.push(format!(
                "{} {} {}\n--- drbdadm 9.22\n{want}--- ours\n{got}",
                c.conf,
                c.host,
                c.args.join(" ")
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} differ:\n{}",
        bad.len(),
        all.len(),
        bad.join("\n")
    );
}

/// Re-runs the real drbdadm (when installed) to check that the recorded fixtures are current.
#[test]
fn recorded_fixtures_are_current() {
    let real = Path::new("/usr/sbin/drbdadm");
    if !real.exists() {
        eprintln!("/usr/sbin/drbdadm not installed: skipped");
        return;
    }
    let v = Command::new(real).arg("--version").output().unwrap();
    if !String::from_utf8_lossy(&v.stdout).contains("DRBDADM_VERSION=9.22.0") {
        eprintln!("/usr/sbin/drbdadm is not 9.22.0: skipped");
        return;
    }
    let mut bad = Vec::new();
    for c in &cases() {
        let want = std::fs::read_to_string(&c.golden).unwrap_or_default();
        let got = run(Path::new("drbdadm"), Some(Path::new("/usr/sbin")), c);
        if got != want {
            bad.push(format!("{} {} {}", c.conf, c.host, c.args.join(" ")));
        }
    }
    assert!(
        bad.is_empty(),
        "stale fixtures (run tests/record-golden.sh): {bad:#?}"
    );
}
