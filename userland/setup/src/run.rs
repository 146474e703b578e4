//! Executing parsed commands against the kernel.

use crate::cmds::{self, Kind, Parsed};
use crate::errors::{self, Outcome, EXIT_FAILURE, EXIT_USAGE};
use crate::msg::{Ctx, NlMsg, Reply, Request, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use crate::nl::{DrbdSocket, NlError};
use crate::show;
use events2::{LineOpts, Model, Printer, StatusOpts};
use genl_spec::generated::{cmd, ret, MINOR_NONE};
use std::io::Write;

/// Printed when the family cannot be found.
pub const NO_FAMILY: &str = "Could not connect to 'drbd' generic netlink family";

/// Where the module's proc file is (overridable for tests with
/// `DRBDSETUP_PROC_DRBD`).
fn proc_drbd() -> String {
    std::env::var("DRBDSETUP_PROC_DRBD").unwrap_or_else(|_| "/proc/drbd".into())
}

/// Runs drbdsetup with `args` (without the program name); returns the exit
/// status. Output goes to stdout/stderr.
pub fn main_with_args(args: &[String]) -> i32 {
    let mut args: Vec<String> = args.to_vec();
    // "drbdsetup CMD --help" and "drbdsetup help CMD"
    if args.len() >= 2 && (args[1] == "--help" || args[1] == "-h") {
        args.swap(0, 1);
    }
    let Some(first) = args.first().cloned() else {
        eprint!("{}", cmds::general_usage());
        return EXIT_USAGE;
    };
    if matches!(first.as_str(), "help" | "--help" | "-h") {
        return match args.get(1) {
            Some(c) => match cmds::find(c) {
                Some(def) => {
                    print!("{}", cmds::usage(def));
                    0
                }
                None => {
                    eprintln!("unknown command");
                    eprint!("{}", cmds::general_usage());
                    EXIT_USAGE
                }
            },
            None => {
                print!("{}", cmds::general_usage());
                0
            }
        };
    }
    if first == "--version" || first == "-V" {
        println!("DRBDADM_API_VERSION=2");
        println!("DRBDSETUP_VERSION={} (drbd-rs)", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    // Old syntax: "drbdsetup OBJECT COMMAND ...".
    if cmds::find(&first).is_none() && args.len() >= 2 && cmds::find(&args[1]).is_some() {
        args.swap(0, 1);
    }
    let Some(def) = cmds::find(&args[0]) else {
        eprintln!("invalid command");
        eprint!("{}", cmds::general_usage());
        return EXIT_USAGE;
    };
    let parsed = match cmds::parse(def, &args[1..]) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}", e.msg);
            if e.show_usage {
                eprint!("{}", cmds::usage(def));
            }
            return EXIT_USAGE;
        }
    };
    if !std::path::Path::new(&proc_drbd()).exists() {
        if matches!(def.name, "down" | "secondary" | "disconnect" | "detach") {
            return 0; // "down" succeeds even if drbd is missing
        }
        eprintln!("do you need to load the module?\ntry: modprobe drbd");
        return EXIT_USAGE;
    }
    let mut sock = match DrbdSocket::connect() {
        Ok(s) => s,
        Err(_) => {
            eprintln!("{NO_FAMILY}");
            return EXIT_USAGE;
        }
    };
    let res = match def.kind {
        Kind::Config => config(&mut sock, &parsed),
        Kind::Down => down(&mut sock, &parsed),
        Kind::Status => status(&mut sock, &parsed),
        Kind::Events2 => events(&mut sock, &parsed),
        Kind::Show => show_cmd(&mut sock, &parsed),
        Kind::Role | Kind::Cstate | Kind::Dstate => state_query(&mut sock, &parsed),
        Kind::WaitConnect => crate::wait::wait_connect(&mut sock, &parsed),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}: {e}", parsed.objname);
            EXIT_USAGE
        }
    }
}

fn emit(o: &Outcome) -> i32 {
    for l in &o.stderr {
        eprintln!("{l}");
    }
    o.exit
}

/// Sends a request and waits for its reply (and ACK).
pub fn transact(sock: &mut DrbdSocket, req: &Request) -> Result<Result<Reply, i32>, NlError> {
    let seq = sock.next_seq();
    let msg = req.to_nlmsg(sock.ids.family, NLM_F_REQUEST | NLM_F_ACK, seq, sock.pid());
    sock.send_raw(&msg.to_bytes())?;
    let mut reply: Option<Reply> = None;
    loop {
        for r in sock.recv()? {
            if r.multicast || r.msg.seq != seq {
                continue;
            }
            if let Some(code) = r.msg.error_code() {
                if code != 0 {
                    return Ok(Err(-code));
                }
                return match reply {
                    Some(rep) => Ok(Ok(rep)),
                    None => Err(NlError::Malformed("ACK without a reply")),
                };
            }
            if r.msg.is_data() {
                reply =
                    Some(Reply::parse(&r.msg.payload).map_err(|_| NlError::Malformed("reply"))?);
            }
        }
    }
}

/// Runs a dump and returns its records.
pub fn dump(sock: &mut DrbdSocket, command: u8, ctx: &Ctx) -> Result<Vec<Reply>, NlError> {
    let seq = sock.next_seq();
    let mut b = crate::msg::AttrsBuilder::default();
    if ctx.resource.is_some() {
        b.context(ctx).map_err(|_| NlError::Malformed("request"))?;
    }
    let req = Request {
        cmd: command,
        minor: MINOR_NONE,
        flags: 0,
        attrs: b.finish(),
    };
    let msg = req.to_nlmsg(sock.ids.family, NLM_F_REQUEST | NLM_F_DUMP, seq, sock.pid());
    sock.send_raw(&msg.to_bytes())?;
    let mut out = Vec::new();
    loop {
        for r in sock.recv()? {
            if r.multicast || r.msg.seq != seq {
                continue;
            }
            if let Some(code) = r.msg.error_code() {
                if code != 0 {
                    return Err(NlError::Errno(-code));
                }
                return Ok(out);
            }
            if r.msg.ty == crate::msg::NLMSG_DONE {
                return Ok(out);
            }
            if r.msg.is_data() {
                out.push(Reply::parse(&r.msg.payload).map_err(|_| NlError::Malformed("record"))?);
            }
        }
    }
}

fn config(sock: &mut DrbdSocket, p: &Parsed) -> Result<i32, NlError> {
    let req = p
        .request()
        .map_err(|_| NlError::Malformed("request too large"))?;
    Ok(match transact(sock, &req)? {
        Ok(rep) => emit(&errors::check(&p.objname, rep.ret_code, &rep.info_text())),
        Err(errno) => emit(&errors::errno_outcome(&p.objname, p.def.name, errno)),
    })
}

/// Names of all configured resources.
fn resource_names(sock: &mut DrbdSocket) -> Result<Vec<String>, NlError> {
    let mut names: Vec<String> = dump(sock, cmd::ADM_GET_RESOURCES, &Ctx::default())?
        .iter()
        .filter_map(|r| events2::state::decode_context(&r.attrs).ok())
        .map(|c| c.resource)
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

fn down(sock: &mut DrbdSocket, p: &Parsed) -> Result<i32, NlError> {
    let names = if p.all {
        resource_names(sock)?
    } else {
        vec![p.objname.clone()]
    };
    let mut worst = 0;
    for name in names {
        let mut one = p.clone();
        one.ctx.resource = Some(name.clone());
        one.objname = name;
        let code = config(sock, &one)?;
        if code != 0 {
            worst = code;
        }
    }
    Ok(worst)
}

/// Builds the model of all (or one) resources from the four dumps.
pub fn load_model(sock: &mut DrbdSocket, only: Option<&str>) -> Result<Model, NlError> {
    let ctx = Ctx {
        resource: only.map(str::to_owned),
        ..Ctx::default()
    };
    let mut model = Model::default();
    for c in [
        cmd::ADM_GET_RESOURCES,
        cmd::ADM_GET_DEVICES,
        cmd::ADM_GET_CONNECTIONS,
        cmd::ADM_GET_PEER_DEVICES,
    ] {
        for rec in dump(sock, c, &ctx)? {
            if let Ok(ev) = events2::decode(rec.cmd, rec.minor, &rec.attrs) {
                if only.is_none_or(|n| n == ev.ctx.resource) {
                    model.apply(&ev);
                }
            }
        }
    }
    // Paths are optional (older kernels do not have GET_PATHS).
    if let Ok(recs) = dump(sock, cmd::ADM_GET_PATHS, &ctx) {
        for rec in recs {
            if let Ok(ev) = events2::decode(rec.cmd, rec.minor, &rec.attrs) {
                if only.is_none_or(|n| n == ev.ctx.resource) {
                    model.apply(&ev);
                }
            }
        }
    }
    Ok(model)
}

fn is_tty() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal()
}

fn status(sock: &mut DrbdSocket, p: &Parsed) -> Result<i32, NlError> {
    let only = (!p.all).then_some(p.objname.as_str());
    let model = load_model(sock, only)?;
    if p.has("json") {
        let v = events2::status_json(&model, only);
        let text = serde_json_pretty(&v);
        println!("{text}");
        if only.is_some() && model.resources.is_empty() {
            eprintln!("{}: No such resource", p.objname);
            return Ok(EXIT_FAILURE);
        }
        return Ok(0);
    }
    let opts = StatusOpts {
        verbose: p.has("verbose"),
        statistics: p.has("statistics"),
        is_tty: is_tty(),
    };
    match events2::status_text(&model, only, opts) {
        Some(t) => {
            print!("{t}");
            Ok(0)
        }
        None => {
            eprintln!("{}: No such resource", p.objname);
            Ok(EXIT_FAILURE)
        }
    }
}

fn serde_json_pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| "[]".into())
}

fn timestamp_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(now.as_secs()).unwrap_or(0);
    events2::print::timestamp(secs, now.subsec_micros(), 0)
}

fn print_lines(lines: &[String], timestamps: bool) -> bool {
    let mut out = std::io::stdout().lock();
    for l in lines {
        let r = if timestamps {
            writeln!(out, "{} {l}", timestamp_now())
        } else {
            writeln!(out, "{l}")
        };
        if r.is_err() {
            return false;
        }
    }
    out.flush().is_ok()
}

fn events(sock: &mut DrbdSocket, p: &Parsed) -> Result<i32, NlError> {
    let now = p.has("now");
    let full = p.has("full");
    let opts = LineOpts {
        statistics: p.has("statistics") || full,
        full,
    };
    let ts = p.has("timestamps");
    let only = (!p.all).then(|| p.objname.clone());
    if !now {
        // Join first so that no change between dump and join is lost.
        sock.join_events()?;
    }
    let mut printer = Printer::new(opts);
    let seq = sock.next_seq();
    let mut b = crate::msg::AttrsBuilder::default();
    if let Some(r) = &only {
        b.context(&Ctx {
            resource: Some(r.clone()),
            ..Ctx::default()
        })
        .map_err(|_| NlError::Malformed("request"))?;
    }
    let req = Request {
        cmd: cmd::ADM_GET_INITIAL_STATE,
        minor: MINOR_NONE,
        flags: 0,
        attrs: b.finish(),
    };
    sock.send_raw(
        &req.to_nlmsg(sock.ids.family, NLM_F_REQUEST | NLM_F_DUMP, seq, sock.pid())
            .to_bytes(),
    )?;
    let wanted = |ev: &events2::Event| {
        matches!(ev.body, events2::Body::InitialStateDone)
            || only.as_deref().is_none_or(|r| r == ev.ctx.resource)
    };
    let mut held: Vec<NlMsg> = Vec::new();
    let mut saw_done_marker = false;
    // Phase 1: the dump; multicasts arriving meanwhile are held back.
    'dump: loop {
        for r in sock.recv()? {
            if r.multicast {
                held.push(r.msg);
                continue;
            }
            if r.msg.seq != seq {
                continue;
            }
            if let Some(code) = r.msg.error_code() {
                if code != 0 {
                    return Err(NlError::Errno(-code));
                }
                break 'dump;
            }
            if r.msg.ty == crate::msg::NLMSG_DONE {
                break 'dump;
            }
            if !r.msg.is_data() {
                continue;
            }
            let Ok(rep) = Reply::parse(&r.msg.payload) else {
                continue;
            };
            let Ok(ev) = events2::decode(rep.cmd, rep.minor, &rep.attrs) else {
                continue;
            };
            if matches!(ev.body, events2::Body::InitialStateDone) {
                saw_done_marker = true;
            }
            if wanted(&ev) && !print_lines(&printer.push(ev), ts) {
                return Ok(0);
            }
        }
    }
    let mut lines = printer.flush();
    if !saw_done_marker {
        lines.push("exists -".into());
    }
    if !print_lines(&lines, ts) || now {
        return Ok(0);
    }
    // Phase 2: live events.
    let handle = |m: NlMsg, printer: &mut Printer| -> bool {
        let Ok(rep) = Reply::parse(&m.payload) else {
            return true;
        };
        if rep.cmd == cmd::INITIAL_STATE_DONE {
            return true;
        }
        let Ok(ev) = events2::decode(rep.cmd, rep.minor, &rep.attrs) else {
            return true;
        };
        if !wanted(&ev) {
            return true;
        }
        print_lines(&printer.push(ev), ts)
    };
    for m in held {
        if !handle(m, &mut printer) {
            return Ok(0);
        }
    }
    loop {
        for r in sock.recv()? {
            if r.multicast && r.msg.is_data() && !handle(r.msg, &mut printer) {
                return Ok(0);
            }
        }
    }
}

fn show_cmd(sock: &mut DrbdSocket, p: &Parsed) -> Result<i32, NlError> {
    let only = (!p.all).then_some(p.objname.as_str());
    let ctx = Ctx {
        resource: only.map(str::to_owned),
        ..Ctx::default()
    };
    let resources = dump(sock, cmd::ADM_GET_RESOURCES, &ctx)?;
    let devices = dump(sock, cmd::ADM_GET_DEVICES, &ctx)?;
    let connections = dump(sock, cmd::ADM_GET_CONNECTIONS, &ctx)?;
    if p.has("json") {
        let v = show::render_json(
            &resources,
            &devices,
            &connections,
            only,
            p.has("show-defaults"),
        );
        if only.is_some() && v.as_array().is_some_and(|a| a.is_empty()) {
            eprintln!("{}: {}", p.objname, ret::text(ret::ERR_RES_NOT_KNOWN));
            return Ok(EXIT_FAILURE);
        }
        println!("{}", serde_json_pretty(&v));
        return Ok(0);
    }
    let text = show::render(
        &resources,
        &devices,
        &connections,
        only,
        p.has("show-defaults"),
    );
    if only.is_some() && text.is_empty() {
        eprintln!("{}: {}", p.objname, ret::text(ret::ERR_RES_NOT_KNOWN));
        return Ok(EXIT_FAILURE);
    }
    print!("{text}");
    Ok(0)
}

fn state_query(sock: &mut DrbdSocket, p: &Parsed) -> Result<i32, NlError> {
    let model = load_model(sock, None)?;
    match p.def.kind {
        Kind::Role => match model.resources.get(&p.objname) {
            Some(r) => println!("{}", r.info.role.name()),
            None => {
                eprintln!("{}: {}", p.objname, ret::text(ret::ERR_RES_NOT_KNOWN));
                return Ok(EXIT_FAILURE);
            }
        },
        Kind::Cstate => {
            let c = model
                .resources
                .get(&p.objname)
                .and_then(|r| r.connections.get(&p.ctx.peer_node_id.unwrap_or(u32::MAX)));
            match c {
                Some(c) => println!("{}", c.info.cstate.name()),
                None => {
                    eprintln!("{}: No such connection", p.objname);
                    return Ok(EXIT_FAILURE);
                }
            }
        }
        _ => {
            let found = model.resources.values().find_map(|r| {
                r.devices
                    .iter()
                    .find(|(_, d)| d.minor == p.minor)
                    .map(|(vol, d)| (r, *vol, d))
            });
            match found {
                Some((r, vol, d)) => {
                    let mut s = d.info.disk.name().to_string();
                    for c in r.connections.values() {
                        if let Some(pd) = c.peer_devices.get(&vol) {
                            s.push('/');
                            s.push_str(pd.info.peer_disk.name());
                        }
                    }
                    println!("{s}");
                }
                None => {
                    eprintln!("{}: No such device", p.objname);
                    return Ok(EXIT_FAILURE);
                }
            }
        }
    }
    Ok(0)
}
