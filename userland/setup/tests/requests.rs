//! drbdsetup command lines -> the exact request bytes, and argument errors.

use drbdsetup::cmds::{self, parse_scaled};
use drbdsetup::msg::{parse_nlmsgs, Reply, NLM_F_ACK, NLM_F_REQUEST};
use genl_spec::generated::*;
use genl_spec::nla;

fn parse(line: &str) -> Result<cmds::Parsed, cmds::UsageError> {
    let mut words = line.split_whitespace().map(str::to_owned);
    let c = words.next().unwrap();
    let def = cmds::find(&c).expect("command");
    let rest: Vec<String> = words.collect();
    cmds::parse(def, &rest)
}

fn req(line: &str) -> drbdsetup::msg::Request {
    parse(line).expect("parse").request().expect("request")
}

fn set(attrs: &[u8], t: u16) -> &[u8] {
    nla::find(attrs, t).unwrap().unwrap().payload
}

#[test]
fn new_resource_bytes() {
    let r = req("new-resource r0 0");
    assert_eq!(r.cmd, cmd::ADM_NEW_RESOURCE);
    assert_eq!(r.minor, MINOR_NONE);
    #[rustfmt::skip]
    let want: Vec<u8> = [
        &[7u8, 2, 0, 0][..],                 // genlmsghdr: cmd 7, version 2
        &u32::MAX.to_ne_bytes(), &0u32.to_ne_bytes(), // drbd_genlmsghdr
        &12u16.to_ne_bytes(), &(2u16 | 0x8000).to_ne_bytes(), // CFG_CONTEXT nest
        &7u16.to_ne_bytes(), &(2u16 | 0x4000).to_ne_bytes(), b"r0\0", &[0], // ctx_resource_name
        &12u16.to_ne_bytes(), &(4u16 | 0x8000).to_ne_bytes(), // RESOURCE_OPTS nest
        &8u16.to_ne_bytes(), &4u16.to_ne_bytes(), &0u32.to_ne_bytes(), // node_id 0
    ]
    .concat();
    assert_eq!(r.genl_payload(), want);
    let msg = r.to_nlmsg(0x1d, NLM_F_REQUEST | NLM_F_ACK, 42, 77);
    let back = parse_nlmsgs(&msg.to_bytes()).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].ty, 0x1d);
    assert_eq!(back[0].seq, 42);
    let rep = Reply::parse(&back[0].payload).unwrap();
    assert_eq!(rep.cmd, 7);
    assert_eq!(rep.attrs, r.attrs);
}

#[test]
fn new_resource_options() {
    let r = req("new-resource r0 1 --auto-promote=no --on-no-quorum=io-error --quorum=majority --twopc-timeout 100");
    let o = set(&r.attrs, tla::RESOURCE_OPTS);
    assert_eq!(
        nla::find(o, res_opts::NODE_ID).unwrap().unwrap().as_u32(),
        Ok(1)
    );
    assert_eq!(
        nla::find(o, res_opts::AUTO_PROMOTE)
            .unwrap()
            .unwrap()
            .as_flag(),
        Ok(false)
    );
    assert_eq!(
        nla::find(o, res_opts::ON_NO_QUORUM)
            .unwrap()
            .unwrap()
            .as_u32(),
        Ok(0)
    );
    assert_eq!(
        nla::find(o, res_opts::QUORUM).unwrap().unwrap().as_i32(),
        Ok(1024)
    );
    assert_eq!(
        nla::find(o, res_opts::TWOPC_TIMEOUT)
            .unwrap()
            .unwrap()
            .as_u32(),
        Ok(100)
    );
    // auto_promote is sent with the mandatory bit, as drbd-utils does.
    assert!(
        nla::find(o, res_opts::AUTO_PROMOTE)
            .unwrap()
            .unwrap()
            .mandatory
    );
}

#[test]
fn new_minor_and_attach() {
    let r = req("new-minor r0 1 0");
    assert_eq!((r.cmd, r.minor), (cmd::ADM_NEW_MINOR, 1));
    let c = set(&r.attrs, tla::CFG_CONTEXT);
    assert_eq!(
        nla::find(c, cfg_context::CTX_VOLUME)
            .unwrap()
            .unwrap()
            .as_u32(),
        Ok(0)
    );
    assert_eq!(
        nla::find(c, cfg_context::CTX_RESOURCE_NAME)
            .unwrap()
            .unwrap()
            .as_str(128),
        Ok("r0")
    );
    assert!(nla::find(&r.attrs, tla::DEVICE_CONF).unwrap().is_none());

    let r = req("attach 1 /dev/vdb /dev/vdb internal --on-io-error=detach --al-extents=6007 --disk-flushes=no --md-flushes");
    assert_eq!((r.cmd, r.minor), (cmd::ADM_ATTACH, 1));
    let d = set(&r.attrs, tla::DISK_CONF);
    let g = |nr| nla::find(d, nr).unwrap().unwrap();
    assert_eq!(g(disk_conf::BACKING_DEV).as_str(128), Ok("/dev/vdb"));
    assert_eq!(g(disk_conf::META_DEV).as_str(128), Ok("/dev/vdb"));
    assert_eq!(g(disk_conf::META_DEV_IDX).as_i32(), Ok(-3));
    assert_eq!(g(disk_conf::ON_IO_ERROR).as_u32(), Ok(2));
    assert_eq!(g(disk_conf::AL_EXTENTS).as_u32(), Ok(6007));
    assert_eq!(g(disk_conf::DISK_FLUSHES).as_flag(), Ok(false));
    assert_eq!(g(disk_conf::MD_FLUSHES).as_flag(), Ok(true));
    // The minor is in the header; the context carries no resource.
    let c = set(&r.attrs, tla::CFG_CONTEXT);
    assert!(nla::find(c, cfg_context::CTX_RESOURCE_NAME)
        .unwrap()
        .is_none());

    let r = req("attach /dev/drbd5 /dev/sdb1 /dev/sdc1 flexible");
    assert_eq!(r.minor, 5);
    let d = set(&r.attrs, tla::DISK_CONF);
    assert_eq!(
        nla::find(d, disk_conf::META_DEV_IDX)
            .unwrap()
            .unwrap()
            .as_i32(),
        Ok(-2)
    );
    let r = req("attach 5 /dev/sdb1 /dev/sdc1 3");
    let d = set(&r.attrs, tla::DISK_CONF);
    assert_eq!(
        nla::find(d, disk_conf::META_DEV_IDX)
            .unwrap()
            .unwrap()
            .as_i32(),
        Ok(3)
    );
}

#[test]
fn roles_detach_down() {
    let r = req("primary r0");
    assert_eq!(r.cmd, cmd::ADM_PRIMARY);
    assert!(
        set(&r.attrs, tla::SET_ROLE_PARMS).is_empty(),
        "required nest sent empty"
    );
    let r = req("primary r0 --force");
    let s = set(&r.attrs, tla::SET_ROLE_PARMS);
    assert_eq!(
        nla::find(s, set_role_parms::FORCE)
            .unwrap()
            .unwrap()
            .as_flag(),
        Ok(true)
    );
    let r = req("primary r0 --overwrite-data-of-peer");
    assert!(nla::find(&r.attrs, tla::SET_ROLE_PARMS).unwrap().is_some());
    assert_eq!(req("secondary r0").cmd, cmd::ADM_SECONDARY);
    let r = req("detach 1 --force");
    assert_eq!((r.cmd, r.minor), (cmd::ADM_DETACH, 1));
    let s = set(&r.attrs, tla::DETACH_PARMS);
    assert_eq!(
        nla::find(s, detach_parms::FORCE_DETACH)
            .unwrap()
            .unwrap()
            .as_flag(),
        Ok(true)
    );
    assert!(nla::find(&req("detach 1").attrs, tla::DETACH_PARMS)
        .unwrap()
        .is_none());
    let p = parse("down all").unwrap();
    assert!(p.all);
    let p = parse("down r0").unwrap();
    assert_eq!(p.ctx.resource.as_deref(), Some("r0"));
    assert_eq!(p.request().unwrap().cmd, cmd::ADM_DOWN);
    assert_eq!(req("del-minor 3").minor, 3);
    assert_eq!(req("del-resource r0").cmd, cmd::ADM_DEL_RESOURCE);
}

#[test]
fn connection_commands() {
    let r = req("new-peer r0 1 --_name=beta --protocol=C --verify-alg=sha256 --after-sb-0pri=discard-zero-changes");
    assert_eq!(r.cmd, cmd::ADM_NEW_PEER);
    let c = set(&r.attrs, tla::CFG_CONTEXT);
    assert_eq!(
        nla::find(c, cfg_context::CTX_PEER_NODE_ID)
            .unwrap()
            .unwrap()
            .as_u32(),
        Ok(1)
    );
    let n = set(&r.attrs, tla::NET_CONF);
    assert_eq!(
        nla::find(n, net_conf::NAME).unwrap().unwrap().as_str(64),
        Ok("beta")
    );
    assert_eq!(
        nla::find(n, net_conf::WIRE_PROTOCOL)
            .unwrap()
            .unwrap()
            .as_u32(),
        Ok(3)
    );
    assert_eq!(
        nla::find(n, net_conf::AFTER_SB_0P)
            .unwrap()
            .unwrap()
            .as_u32(),
        Ok(3)
    );
    let r = req("new-path r0 1 ipv4:10.0.0.1:7789 ipv4:10.0.0.2:7790");
    let p = set(&r.attrs, tla::PATH_PARMS);
    let my = nla::find(p, path_parms::MY_ADDR).unwrap().unwrap().payload;
    assert_eq!(
        events2::state::format_sockaddr(my).unwrap(),
        "ipv4:10.0.0.1:7789"
    );
    let peer = nla::find(p, path_parms::PEER_ADDR)
        .unwrap()
        .unwrap()
        .payload;
    assert_eq!(
        events2::state::format_sockaddr(peer).unwrap(),
        "ipv4:10.0.0.2:7790"
    );
    let r = req("new-path r1 1 ipv6:[fd00::1]:7790 ipv6:[fd00::2]:7790");
    let p = set(&r.attrs, tla::PATH_PARMS);
    let my = nla::find(p, path_parms::MY_ADDR).unwrap().unwrap().payload;
    assert_eq!(
        events2::state::format_sockaddr(my).unwrap(),
        "ipv6:[fd00::1]:7790"
    );
    let r = req("connect r0 1 --discard-my-data");
    let s = set(&r.attrs, tla::CONNECT_PARMS);
    assert_eq!(
        nla::find(s, connect_parms::DISCARD_MY_DATA)
            .unwrap()
            .unwrap()
            .as_flag(),
        Ok(true)
    );
    let r = req("peer-device-options r0 1 0 --c-fill-target=1M --c-max-rate=720M --c-plan-ahead=20 --resync-rate=100M");
    let s = set(&r.attrs, tla::PEER_DEVICE_OPTS);
    let g = |nr| nla::find(s, nr).unwrap().unwrap().as_u32().unwrap();
    assert_eq!(g(peer_device_conf::C_FILL_TARGET), 2048);
    assert_eq!(g(peer_device_conf::C_MAX_RATE), 737280);
    assert_eq!(g(peer_device_conf::RESYNC_RATE), 102400);
    let p = parse("net-options r0 0 --set-defaults --verify-alg=crc32c").unwrap();
    assert_eq!(p.flags, hdr_flags::SET_DEFAULTS);
}

#[test]
fn scaled_numbers() {
    assert_eq!(parse_scaled("100M", b'k'), Some(102400));
    assert_eq!(parse_scaled("1M", b's'), Some(2048));
    assert_eq!(parse_scaled("10G", b's'), Some(20971520));
    assert_eq!(parse_scaled("1M", b'1'), Some(1048576));
    assert_eq!(parse_scaled("250", b'k'), Some(250));
    assert_eq!(parse_scaled("1s", b'k'), Some(1));
    assert_eq!(parse_scaled("0x10", b'1'), Some(16));
    assert_eq!(parse_scaled("12x", b'1'), None);
}

#[test]
fn usage_errors() {
    let e = parse("attach 1 /dev/vdb").unwrap_err();
    assert_eq!(e.msg, "Missing argument 3");
    let e = parse("new-resource r0 0 extra").unwrap_err();
    assert_eq!(e.msg, "Excess arguments: extra");
    assert!(parse("new-resource r0 32").is_err());
    assert!(parse("attach 1 a b internal --al-extents=10").is_err());
    assert!(parse("attach 1 a b internal --no-such-option").is_err());
    assert!(parse("attach x a b internal").is_err());
    assert!(parse("attach 1 a b nonsense").is_err());
    assert!(parse("new-path r0 1 ipv4:1.2.3.4:99999 ipv4:1.2.3.4:1").is_err());
    let long = "x".repeat(200);
    assert!(
        parse(&format!("new-resource {long} 0")).is_ok(),
        "name length is the kernel's business"
    );
    assert!(parse(&format!("new-peer r0 1 --_name={long}")).is_err());
}

#[test]
fn every_command_has_usage_and_parses_minimal_args() {
    for c in cmds::COMMANDS {
        let u = cmds::usage(c);
        assert!(u.starts_with(&format!("USAGE: drbdsetup {}", c.name)));
        let args: Vec<String> = c
            .pos
            .iter()
            .take(c.pos.len() - c.optional)
            .map(|p| match p {
                cmds::Pos::LocalAddr | cmds::Pos::PeerAddr => "ipv4:127.0.0.1:7789".to_string(),
                cmds::Pos::MetaIdx => "internal".to_string(),
                cmds::Pos::Resource | cmds::Pos::ResourceOrAll | cmds::Pos::NewName => {
                    "r0".to_string()
                }
                cmds::Pos::LowerDev | cmds::Pos::MetaDev => "/dev/vdb".to_string(),
                _ => "1".to_string(),
            })
            .collect();
        let p = cmds::parse(c, &args).unwrap_or_else(|e| panic!("{}: {}", c.name, e.msg));
        if c.kind == cmds::Kind::Config {
            let r = p.request().unwrap();
            assert_eq!(r.cmd, c.cmd);
            nla::validate(&r.attrs).unwrap();
            let spec = command(r.cmd).unwrap();
            for t in spec.tlas.iter().filter(|t| t.required) {
                assert!(
                    nla::find(&r.attrs, t.tla).unwrap().is_some(),
                    "{}: required TLA {} missing",
                    c.name,
                    t.tla
                );
            }
        }
    }
}
