//! The seed articles' configs, unchanged (tests/fixtures/seed*), and their commands as typed.
//! drbdadm 9.22 rejects `syncer { rate ...; }`; we accept it the way current drbd-utils do
//! (resync-rate of every peer device), so these compare with the 9.22 output of the same config
//! without `rate` plus the peer-device-options it implies.

use std::path::PathBuf;
use std::process::Command;

fn run(host: &str, args: &[&str]) -> (String, String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_drbdadm"))
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
        .env("__DRBD_NODE__", host)
        .env("DRBD_DRIVER_VERSION_OVERRIDE", "9.2.12")
        .args(args)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn without_pd(s: &str) -> String {
    s.lines()
        .filter(|l| !l.contains("peer-device-options"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn seed002_iscsi_with_syncer_rate() {
    for host in ["node1", "node2"] {
        for cmd in ["up", "adjust"] {
            let (with_rate, _, rc) = run(host, &["-c", "seed002-drbd.conf", "-d", cmd, "all"]);
            assert_eq!(rc, 0);
            let (norate, _, _) = run(host, &["-c", "seed002-norate.conf", "-d", cmd, "all"]);
            assert_eq!(without_pd(&with_rate), without_pd(&norate));
            let pd: Vec<&str> = with_rate
                .lines()
                .filter(|l| l.contains("peer-device-options"))
                .collect();
            let set_defaults = if cmd == "adjust" {
                " --set-defaults"
            } else {
                ""
            };
            let peer = if host == "node1" { 0 } else { 1 };
            assert_eq!(
                pd,
                vec![
                    format!("drbdsetup peer-device-options iscsi.config {peer} 0{set_defaults} --resync-rate=100M"),
                    format!("drbdsetup peer-device-options iscsi.target.0 {peer} 0{set_defaults} --resync-rate=100M"),
                ]
            );
        }
    }
    // the article's commands
    let (out, _, rc) = run(
        "node1",
        &["-c", "seed002-drbd.conf", "-d", "create-md", "iscsi.config"],
    );
    assert_eq!(
        (out.as_str(), rc),
        ("drbdmeta 0 v09 /dev/sdb1 0 create-md 1\n", 0)
    );
    let (out, _, rc) = run(
        "node1",
        &[
            "-c",
            "seed002-drbd.conf",
            "-d",
            "--",
            "--overwrite-data-of-peer",
            "primary",
            "iscsi.target.0",
        ],
    );
    assert_eq!(
        (out.as_str(), rc),
        ("drbdsetup primary iscsi.target.0 --force\n", 0)
    );
    let (out, _, _) = run(
        "node2",
        &["-c", "seed002-drbd.conf", "-d", "secondary", "iscsi.config"],
    );
    assert_eq!(out, "drbdsetup secondary iscsi.config\n");
    // dump keeps the 8.x handler and startup keys
    let (out, _, rc) = run(
        "node1",
        &["-c", "seed002-drbd.conf", "-d", "dump", "iscsi.config"],
    );
    assert_eq!(rc, 0);
    assert!(
        out.contains("        outdate-peer     \"/usr/lib/heartbeat/drbd-peer-outdater -t 5\";\n")
    );
    assert!(out.contains("        degr-wfc-timeout 120;\n"));
    assert!(out.contains("        resync-rate      100M;\n"));
    assert!(out.contains("        meta-disk        /dev/sdb1 [0];\n"));
}

#[test]
fn seed001_include_layout_and_commands() {
    // /etc/drbd.conf includes drbd.d/*; the article's global_common.conf holds global, common
    // (syncer rate 30M) and resource r0 in 8.x style
    let conf = "seed001/drbd.conf";
    let (out, _, rc) = run("node1", &["-c", conf, "-d", "up", "r0"]);
    assert_eq!(rc, 0);
    assert_eq!(
        out,
        "drbdsetup new-resource r0 0\n\
         drbdsetup new-minor r0 0 0\n\
         drbdsetup new-peer r0 1 --_name=node2 --after-sb-1pri=consensus --after-sb-0pri=discard-younger-primary --protocol=C\n\
         drbdsetup new-path r0 1 ipv4:192.168.10.188:7789 ipv4:192.168.10.189:7789\n\
         drbdsetup peer-device-options r0 1 0 --resync-rate=30M\n\
         drbdmeta 0 v09 /dev/sdb internal apply-al\n\
         drbdsetup attach 0 /dev/sdb /dev/sdb internal --on-io-error=detach\n\
         drbdsetup connect r0 1\n"
    );
    let (norate, _, _) = run("node1", &["-c", "seed001-norate.conf", "-d", "up", "r0"]);
    assert_eq!(without_pd(&out), without_pd(&norate));
    for (args, want) in [
        (
            vec!["create-md", "r0"],
            "drbdmeta 0 v09 /dev/sdb internal create-md 1\n",
        ),
        (
            vec!["--", "--overwrite-data-of-peer", "primary", "r0"],
            "drbdsetup primary r0 --force\n",
        ),
        (vec!["secondary", "r0"], "drbdsetup secondary r0\n"),
        (vec!["disconnect", "r0"], "drbdsetup disconnect r0 1\n"),
        (
            vec!["--", "--discard-my-data", "connect", "r0"],
            "drbdsetup connect r0 1 --discard-my-data\n",
        ),
        (vec!["connect", "r0"], "drbdsetup connect r0 1\n"),
    ] {
        let mut a = vec!["-c", conf, "-d"];
        a.extend(args.iter().copied());
        let (out, err, rc) = run("node1", &a);
        assert_eq!((out.as_str(), rc), (want, 0), "{args:?}: {err}");
    }
    // node2 gets node-id 0 (drbdadm's address hash)
    let (out, _, _) = run("node2", &["-c", conf, "-d", "up", "r0"]);
    assert!(out.starts_with("drbdsetup new-resource r0 1\n"), "{out}");
}

#[test]
fn seed003_dvolume_workflow() {
    let conf = "seed003-dvolume.res";
    for (args, want) in [
        (
            vec!["create-md", "dvolume"],
            "drbdmeta 1 v09 /dev/vdb internal create-md 1\n",
        ),
        (
            vec!["primary", "--force", "dvolume"],
            "drbdsetup primary dvolume --force\n",
        ),
        (vec!["status"], "drbdsetup status\n"),
        (vec!["connect", "dvolume"], "drbdsetup connect dvolume 1\n"),
        (vec!["sh-dev", "dvolume"], "/dev/drbd1\n"),
    ] {
        let mut a = vec!["-c", conf, "-d"];
        a.extend(args.iter().copied());
        let (out, err, rc) = run("pcmk-1", &a);
        assert_eq!((out.as_str(), rc), (want, 0), "{args:?}: {err}");
    }
}

#[test]
fn seed004_and_000_have_no_config() {
    // 000 (Russian) and 004 (Chinese) describe DRBD without a config text: nothing to extract.
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    assert!(!fixtures.join("seed000.res").exists());
    assert!(!fixtures.join("seed004.res").exists());
}
