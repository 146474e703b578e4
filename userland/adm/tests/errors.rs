//! Bad configs give precise errors (file:line:column, the offending word) and drbdadm's exit codes.

use std::process::Command;

fn run_conf(text: &str, host: &str, args: &[&str]) -> (String, String, i32) {
    let dir = std::env::temp_dir().join(format!(
        "drbdadm-err-{}-{}",
        std::process::id(),
        text.len() + args.len() * 1000 + host.len()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.res");
    std::fs::write(&f, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_drbdadm"))
        .current_dir(&dir)
        .env_remove("__DRBD_NODE__")
        .env("__DRBD_NODE__", host)
        .env("DRBD_DRIVER_VERSION_OVERRIDE", "9.2.12")
        .arg("-c")
        .arg("bad.res")
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    // drop the __DRBD_NODE__ notice
    let err = err
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

const TAIL: &str = "device minor 0; disk /dev/sda; meta-disk internal;\n  on alpha { address 10.0.0.1:7000; }\n  on beta { address 10.0.0.2:7000; }\n}\n";

#[test]
fn unknown_keywords() {
    let (_, err, rc) = run_conf(
        &format!("resource r0 {{\n  frob 1;\n  {TAIL}"),
        "alpha",
        &["-d", "up", "r0"],
    );
    assert_eq!(rc, 10);
    assert!(err.starts_with("bad.res:2:3: Parse error: '"), "{err}");
    assert!(err.ends_with("expected,\n\tbut got 'frob'\n"), "{err}");

    let (_, err, rc) = run_conf(
        &format!("resource r0 {{\n  net {{ protocol C; frob 1; }}\n  {TAIL}"),
        "alpha",
        &["-d", "up", "r0"],
    );
    assert_eq!(rc, 10);
    assert_eq!(
        err,
        "bad.res:2:21: Parse error: 'a net option keyword' expected,\n\tbut got 'frob'\n"
    );

    let (_, err, rc) = run_conf(
        &format!("frob {{ }}\nresource r0 {{ {TAIL}"),
        "alpha",
        &["-d", "up", "r0"],
    );
    assert_eq!(rc, 10);
    assert!(
        err.starts_with("bad.res:1:1: Parse error: 'global | common | resource"),
        "{err}"
    );
    assert!(err.ends_with("but got 'frob'\n"));

    let (_, err, rc) = run_conf(
        &format!("resource r0 {{\n  net {{ protocol D; }}\n  {TAIL}"),
        "alpha",
        &["-d", "up", "r0"],
    );
    assert_eq!(rc, 10);
    assert_eq!(
        err,
        "bad.res:2:18: Parse error: while parsing value ('D')\nfor protocol. Value is not valid.\nAllowed values are: A | B | C\n"
    );

    let (_, err, rc) = run_conf(
        &format!("resource r0 {{\n  disk {{ al-extents lots; }}\n  {TAIL}"),
        "alpha",
        &["-d", "up", "r0"],
    );
    assert_eq!(rc, 10);
    assert_eq!(err, "bad.res:2:21: Parse error: while parsing value ('lots')\nfor al-extents. Value is not a number.\n");

    let (_, err, rc) = run_conf("resource r0 {\n  device minor 0; disk /dev/sda meta-disk internal;\n  on alpha { address 10.0.0.1:7000; } on beta { address 10.0.0.2:7000; } }", "alpha", &["-d", "up", "r0"]);
    assert_eq!(rc, 10);
    assert_eq!(
        err,
        "bad.res:2:33: Parse error: ';' expected,\n\tbut got 'meta-disk'\n"
    );
}

#[test]
fn missing_section_for_this_host() {
    let (out, err, rc) = run_conf(
        &format!("resource r0 {{ {TAIL}"),
        "gamma",
        &["-d", "up", "r0"],
    );
    assert_eq!((out.as_str(), rc), ("", 1));
    assert_eq!(
        err,
        "'r0' not defined in your config (for this host).\nbad.res:1:1: resource r0 has no 'on gamma' section (it has: alpha, beta)\n"
    );
    let (_, err, rc) = run_conf(
        &format!("resource r0 {{ {TAIL}"),
        "alpha",
        &["-d", "up", "r9"],
    );
    assert_eq!(
        (err.as_str(), rc),
        ("'r9' not defined in your config (for this host).\n", 1)
    );
}

#[test]
fn duplicate_minor() {
    let text = format!(
        "resource r0 {{ {TAIL}resource r1 {{\n  device minor 0; disk /dev/sdb; meta-disk internal;\n  on alpha {{ address 10.0.0.1:7001; }}\n  on beta {{ address 10.0.0.2:7001; }}\n}}\n"
    );
    let (out, err, rc) = run_conf(&text, "alpha", &["-d", "up", "all"]);
    assert_eq!((out.as_str(), rc), ("", 10));
    assert_eq!(
        err,
        "bad.res:6:3: conflicting use of device-minor 'device-minor:alpha:0' ...\nbad.res:1:15: device-minor 'device-minor:alpha:0' first used here.\nbad.res:6:3: conflicting use of device-minor 'device-minor:beta:0' ...\nbad.res:1:15: device-minor 'device-minor:beta:0' first used here.\n"
    );
}

#[test]
fn bad_addresses() {
    for (addr, col, msg) in [
        (
            "10.0.0.1;",
            30,
            "Parse error: ':' expected,\n\tbut got ';' (address '10.0.0.1' has no port)",
        ),
        (
            "10.0.0.300:7000;",
            22,
            "invalid IPv4 address '10.0.0.300' in '10.0.0.300:7000'",
        ),
        (
            "10.0.0.1:70000;",
            22,
            "invalid port '70000' in '10.0.0.1:70000'",
        ),
        (
            "ipv6 fd00::1:7000;",
            27,
            "Parse error: '[' expected,\n\tbut got 'fd00::1:7000'",
        ),
        (
            "ipv6 [fd00::zz]:7000;",
            27,
            "invalid IPv6 address 'fd00::zz' in '[fd00::zz]:7000'",
        ),
    ] {
        let text = format!(
            "resource r0 {{ device minor 0; disk /dev/sda; meta-disk internal;\n  on alpha {{ address {addr} }}\n  on beta {{ address 10.0.0.2:7000; }}\n}}\n"
        );
        let (_, err, rc) = run_conf(&text, "alpha", &["-d", "up", "r0"]);
        assert_eq!(rc, 10, "{addr}");
        assert_eq!(err, format!("bad.res:2:{col}: {msg}\n"), "{addr}");
    }
}

#[test]
fn missing_node_ids_and_keywords() {
    let text = "resource r0 { device minor 0; disk /dev/sda; meta-disk internal;\n  on alpha { address 10.0.0.1:7000; }\n  on beta { address 10.0.0.2:7000; }\n  on gamma { address 10.0.0.3:7000; }\n  connection-mesh { hosts alpha beta gamma; }\n}\n";
    let (_, err, rc) = run_conf(text, "alpha", &["-d", "up", "r0"]);
    assert_eq!(rc, 10);
    assert!(
        err.contains("bad.res:4:3: in resource r0, on gamma { ... }: 'node-id' keyword missing.\n"),
        "{err}"
    );
    let text = "resource r0 { device minor 0; meta-disk internal;\n  on alpha { address 10.0.0.1:7000; }\n  on beta { address 10.0.0.2:7000; }\n}\n";
    let (_, err, rc) = run_conf(text, "alpha", &["-d", "up", "r0"]);
    assert_eq!(rc, 10);
    assert_eq!(
        err,
        "bad.res:2:3: in resource r0, on alpha { ... }: 'disk' keyword missing.\nbad.res:3:3: in resource r0, on beta { ... }: 'disk' keyword missing.\n"
    );
}

#[test]
fn usage_errors() {
    let (_, err, rc) = run_conf(
        &format!("resource r0 {{ {TAIL}"),
        "alpha",
        &["-d", "primary", "--bogus", "r0"],
    );
    assert_eq!(
        (err.as_str(), rc),
        (
            "drbdadm: unrecognized option '--bogus'\ntry 'drbdadm help'\n",
            1
        )
    );
    let (_, err, rc) = run_conf(
        &format!("resource r0 {{ {TAIL}"),
        "alpha",
        &["-d", "frob", "r0"],
    );
    assert_eq!((err.as_str(), rc), ("drbdadm: Unknown command 'frob'\n", 1));
    let (_, err, rc) = run_conf(
        &format!("resource r0 {{ {TAIL}"),
        "alpha",
        &["-d", "up", "r0/3"],
    );
    assert_eq!((err.as_str(), rc), ("Resource 'r0' has no volume 3\n", 1));
    let (_, err, rc) = run_conf(
        &format!("resource r0 {{ {TAIL}"),
        "alpha",
        &["-d", "connect", "r0:zeta"],
    );
    assert_eq!(
        (err.as_str(), rc),
        ("Not a valid connection (r0:zeta) for this host\n", 1)
    );
}
