//! `drbd-nlraw CASE [--timeout SECS]`: sends a deliberately malformed
//! request to the `drbd` generic netlink family and reports what came back.
//!
//! Exit status: 0 if the kernel answered with an error (any errno, or a
//! ret_code other than NO_ERROR), 1 if it claimed success or did not answer,
//! 20 on usage errors. Used by the kernel robustness tests.

use drbdsetup::msg::{AttrsBuilder, Ctx, NlMsg, Reply, Request, NLM_F_ACK, NLM_F_REQUEST};
use drbdsetup::nl::DrbdSocket;
use genl_spec::generated::{
    cfg_context, cmd, res_opts, ret, ss, tla, FAMILY_VERSION, GENLA_F_MANDATORY, MINOR_NONE,
};
use genl_spec::nla::{GenlHeader, NLA_F_NESTED};
use std::time::{Duration, Instant};

/// One test case: its name, what it sends and a description.
struct Case {
    name: &'static str,
    help: &'static str,
    build: fn() -> Vec<u8>,
}

fn hdr(len: u16, kind: u16) -> Vec<u8> {
    let mut v = len.to_ne_bytes().to_vec();
    v.extend_from_slice(&kind.to_ne_bytes());
    v
}

fn request(command: u8, minor: u32, attrs: Vec<u8>) -> Vec<u8> {
    Request {
        cmd: command,
        minor,
        flags: 0,
        attrs,
    }
    .genl_payload()
}

fn ctx_res(name: &str) -> Vec<u8> {
    let mut b = AttrsBuilder::default();
    let _ = b.context(&Ctx {
        resource: Some(name.into()),
        ..Ctx::default()
    });
    b.finish()
}

const TEST_RES: &str = "nlraw-test";

fn missing_context() -> Vec<u8> {
    // NEW_MINOR needs a resource from the context: send none.
    request(cmd::ADM_NEW_MINOR, 200, Vec::new())
}

fn bad_attr_len() -> Vec<u8> {
    // node_id (u32) with a 2-byte payload.
    let mut a = ctx_res(TEST_RES);
    let mut inner = hdr(6, res_opts::NODE_ID);
    inner.extend_from_slice(&[0, 0, 0, 0]); // 2 payload bytes + padding
    let mut nest = hdr(4 + inner.len() as u16, tla::RESOURCE_OPTS | NLA_F_NESTED);
    nest.extend_from_slice(&inner);
    a.extend_from_slice(&nest);
    request(cmd::ADM_NEW_RESOURCE, MINOR_NONE, a)
}

fn truncated_nest() -> Vec<u8> {
    // A CFG_CONTEXT nest claiming 64 bytes of which only 8 follow.
    let mut a = hdr(64, tla::CFG_CONTEXT | NLA_F_NESTED);
    a.extend_from_slice(&hdr(7, cfg_context::CTX_RESOURCE_NAME));
    a.extend_from_slice(b"ab\0\0");
    request(cmd::ADM_NEW_RESOURCE, MINOR_NONE, a)
}

fn wrong_type() -> Vec<u8> {
    // ctx_resource_name as a 4-byte number without a NUL.
    let mut inner = hdr(8, cfg_context::CTX_RESOURCE_NAME | GENLA_F_MANDATORY);
    inner.extend_from_slice(&0x4142_4344u32.to_ne_bytes());
    let mut a = hdr(4 + inner.len() as u16, tla::CFG_CONTEXT | NLA_F_NESTED);
    a.extend_from_slice(&inner);
    request(cmd::ADM_NEW_RESOURCE, MINOR_NONE, a)
}

fn huge_string() -> Vec<u8> {
    // A 1000-character resource name (the limit is 127).
    let name = "x".repeat(1000);
    let mut a = ctx_res(&name);
    let mut b = AttrsBuilder::default();
    let node = res_opts::SET.member(res_opts::NODE_ID);
    if let Some(m) = node {
        let _ = b.set(&res_opts::SET, &[(m, drbdsetup::msg::Value::U32(0))]);
    }
    a.extend_from_slice(&b.finish());
    request(cmd::ADM_NEW_RESOURCE, MINOR_NONE, a)
}

fn unknown_cmd() -> Vec<u8> {
    request(99, MINOR_NONE, ctx_res(TEST_RES))
}

fn no_user_header() -> Vec<u8> {
    GenlHeader {
        cmd: cmd::ADM_NEW_RESOURCE,
        version: FAMILY_VERSION,
    }
    .to_bytes()
    .to_vec()
}

fn unknown_mandatory() -> Vec<u8> {
    // An attribute number the kernel cannot know, marked mandatory.
    let mut a = ctx_res(TEST_RES);
    let mut inner = hdr(8, 0x3fff | GENLA_F_MANDATORY);
    inner.extend_from_slice(&1u32.to_ne_bytes());
    let mut node = hdr(8, res_opts::NODE_ID);
    node.extend_from_slice(&0u32.to_ne_bytes());
    inner.extend_from_slice(&node);
    let mut nest = hdr(4 + inner.len() as u16, tla::RESOURCE_OPTS | NLA_F_NESTED);
    nest.extend_from_slice(&inner);
    a.extend_from_slice(&nest);
    request(cmd::ADM_NEW_RESOURCE, MINOR_NONE, a)
}

fn short_attr() -> Vec<u8> {
    // A top-level attribute whose nla_len is smaller than its header.
    let mut a = ctx_res(TEST_RES);
    a.extend_from_slice(&hdr(2, tla::RESOURCE_OPTS | NLA_F_NESTED));
    request(cmd::ADM_NEW_RESOURCE, MINOR_NONE, a)
}

const CASES: &[Case] = &[
    Case {
        name: "missing-context",
        help: "new-minor without CFG_CONTEXT",
        build: missing_context,
    },
    Case {
        name: "bad-attr-len",
        help: "res_opts.node_id with a 2-byte payload",
        build: bad_attr_len,
    },
    Case {
        name: "truncated-nest",
        help: "CFG_CONTEXT nest longer than the message",
        build: truncated_nest,
    },
    Case {
        name: "wrong-type",
        help: "ctx_resource_name sent as a number without NUL",
        build: wrong_type,
    },
    Case {
        name: "huge-string",
        help: "1000-character resource name",
        build: huge_string,
    },
    Case {
        name: "unknown-cmd",
        help: "genl command 99",
        build: unknown_cmd,
    },
    Case {
        name: "no-user-header",
        help: "genlmsghdr without drbd_genlmsghdr",
        build: no_user_header,
    },
    Case {
        name: "unknown-mandatory",
        help: "unknown res_opts member with the mandatory bit",
        build: unknown_mandatory,
    },
    Case {
        name: "short-attr",
        help: "top-level attribute with nla_len 2",
        build: short_attr,
    },
];

fn usage() -> i32 {
    eprintln!("USAGE: drbd-nlraw CASE [--timeout SECS]\n       drbd-nlraw list\n\nCases:");
    for c in CASES {
        eprintln!("    {:<20}{}", c.name, c.help);
    }
    20
}

fn describe(code: i32) -> String {
    if code >= ret::ERR_CODE_BASE {
        format!("{} ({})", ret::name(code).unwrap_or("?"), ret::text(code))
    } else {
        format!("{} ({})", ss::name(code).unwrap_or("?"), ss::text(code))
    }
}

fn run(case: &Case, timeout: Duration) -> i32 {
    let mut sock = match DrbdSocket::connect() {
        Ok(s) => s,
        Err(e) => {
            println!("{}: no answer: {e}", case.name);
            return 1;
        }
    };
    let seq = sock.next_seq();
    let msg = NlMsg {
        ty: sock.ids.family,
        flags: NLM_F_REQUEST | NLM_F_ACK,
        seq,
        pid: sock.pid(),
        payload: (case.build)(),
    };
    if let Err(e) = sock.send_raw(&msg.to_bytes()) {
        println!("{}: send failed: {e}", case.name);
        return 0;
    }
    let deadline = Instant::now() + timeout;
    let mut reply: Option<Reply> = None;
    loop {
        let got = match sock.recv_until(deadline) {
            Ok(v) => v,
            Err(e) => {
                println!("{}: receive failed: {e}", case.name);
                return 1;
            }
        };
        if got.is_empty() {
            break;
        }
        for r in got {
            if r.multicast || r.msg.seq != seq {
                continue;
            }
            if let Some(code) = r.msg.error_code() {
                if code != 0 {
                    let e = std::io::Error::from_raw_os_error(-code);
                    println!("{}: errno {} ({e})", case.name, -code);
                    if -code == 1 {
                        eprintln!("warning: EPERM: run as root to test the kernel's validation");
                    }
                    return 0;
                }
                return report(case, reply.as_ref());
            }
            if r.msg.is_data() {
                reply = Reply::parse(&r.msg.payload).ok();
            }
        }
    }
    if reply.is_some() {
        return report(case, reply.as_ref());
    }
    println!("{}: no answer within {}s", case.name, timeout.as_secs());
    1
}

fn report(case: &Case, reply: Option<&Reply>) -> i32 {
    let Some(r) = reply else {
        println!(
            "{}: kernel acknowledged without a reply (success)",
            case.name
        );
        return 1;
    };
    let info = r.info_text().join(" / ");
    println!(
        "{}: ret_code {} {}{}",
        case.name,
        r.ret_code,
        describe(r.ret_code),
        if info.is_empty() {
            String::new()
        } else {
            format!(" info: {info}")
        }
    );
    if r.ret_code == ret::NO_ERROR || r.ret_code == ss::SUCCESS {
        1
    } else {
        0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut timeout = Duration::from_secs(3);
    let mut name = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--timeout" => {
                i += 1;
                match args.get(i).and_then(|s| s.parse::<u64>().ok()) {
                    Some(t) => timeout = Duration::from_secs(t),
                    None => std::process::exit(usage()),
                }
            }
            "list" => {
                for c in CASES {
                    println!("{}", c.name);
                }
                return;
            }
            "-h" | "--help" => std::process::exit(usage()),
            other if name.is_none() => name = Some(other.to_string()),
            _ => std::process::exit(usage()),
        }
        i += 1;
    }
    let Some(name) = name else {
        std::process::exit(usage())
    };
    let Some(case) = CASES.iter().find(|c| c.name == name) else {
        eprintln!("unknown case '{name}'");
        std::process::exit(usage())
    };
    std::process::exit(run(case, timeout));
}

#[cfg(test)]
mod tests {
    use super::*;
    use genl_spec::nla;

    #[test]
    fn cases_are_malformed_as_intended() {
        let attrs = |b: Vec<u8>| b[12..].to_vec();
        assert!(nla::find(&attrs(missing_context()), tla::CFG_CONTEXT)
            .unwrap()
            .is_none());
        let a = attrs(bad_attr_len());
        let o = nla::find(&a, tla::RESOURCE_OPTS).unwrap().unwrap();
        let n = nla::find(o.payload, res_opts::NODE_ID).unwrap().unwrap();
        assert!(n.as_u32().is_err());
        assert!(nla::validate(&attrs(truncated_nest())).is_err());
        let a = attrs(wrong_type());
        let c = nla::find(&a, tla::CFG_CONTEXT).unwrap().unwrap();
        let r = nla::find(c.payload, cfg_context::CTX_RESOURCE_NAME)
            .unwrap()
            .unwrap();
        assert!(r.as_str(128).is_err());
        let a = attrs(huge_string());
        let c = nla::find(&a, tla::CFG_CONTEXT).unwrap().unwrap();
        let r = nla::find(c.payload, cfg_context::CTX_RESOURCE_NAME)
            .unwrap()
            .unwrap();
        assert_eq!(r.as_str(128), Err(nla::NlaError::TooLong));
        assert_eq!(unknown_cmd()[0], 99);
        assert_eq!(no_user_header().len(), 4);
        assert!(nla::validate(&attrs(short_attr())).is_err());
        let a = attrs(unknown_mandatory());
        let o = nla::find(&a, tla::RESOURCE_OPTS).unwrap().unwrap();
        assert!(nla::iter(o.payload).any(|x| x.unwrap().mandatory));
        assert!(CASES.len() >= 7);
    }
}
