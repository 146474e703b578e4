//! Netlink dumps: the initial state for `events2` and the object lists for `status`/`show`.
//! A dump is produced over several calls; cursor slot 0 counts the messages already sent.

use crate::events::{self, Kind};
use crate::msg;
use crate::nl::Ctx;
use crate::registry::RegistryInner;
use crate::spec::generated::{cmd, notify, ret};
use crate::spec::nla::NlaWriter;
use crate::sys::genl::{DumpContext, DumpPut};
use kernel::prelude::*;

/// Emits the items of a dump from where the previous call stopped.
struct Emitter<'a> {
    ctx: &'a mut DumpContext,
    buf: KVec<u8>,
    skip: i64,
    index: i64,
    full: bool,
    error: Option<Error>,
}

impl Emitter<'_> {
    fn item(
        &mut self,
        command: u8,
        minor: Option<u32>,
        ret_code: i32,
        build: impl FnOnce(&mut NlaWriter<'_>) -> msg::Built,
    ) {
        if self.full || self.error.is_some() {
            return;
        }
        let index = self.index;
        self.index += 1;
        if index < self.skip {
            return;
        }
        let mut w = NlaWriter::new(self.buf.as_mut_slice());
        if build(&mut w).is_err() {
            self.error = Some(crate::sys::misc::errno(kernel::bindings::EMSGSIZE));
            return;
        }
        let empty = self.ctx.is_empty();
        match self
            .ctx
            .put(command, &msg::header(minor, ret_code), w.as_bytes())
        {
            Ok(DumpPut::Added) => self.skip = index + 1,
            Ok(DumpPut::Full) if !empty => self.full = true,
            Ok(DumpPut::Full) => {
                self.error = Some(crate::sys::misc::errno(kernel::bindings::EMSGSIZE))
            }
            Err(e) => self.error = Some(e),
        }
    }
}

/// Entry point for every dump command.
pub(crate) fn dumpit(ctx: &mut DumpContext) -> i32 {
    let (command, filter) = {
        let Some(req) = ctx.request() else {
            return EINVAL.to_errno();
        };
        let parsed = match Ctx::parse(req.attrs) {
            Ok(c) => c,
            Err(_) => return EINVAL.to_errno(),
        };
        let filter = match parsed.resource_name {
            Some(name) => match crate::name::Name::new(name) {
                Some(n) => Some(n),
                None => return EINVAL.to_errno(),
            },
            None => None,
        };
        (req.cmd, filter)
    };
    let Some(registry) = crate::REGISTRY.get() else {
        return ENODEV.to_errno();
    };
    let Ok(buf) = KVec::from_elem(0u8, msg::MSG_MAX, GFP_KERNEL) else {
        return ENOMEM.to_errno();
    };
    let skip = ctx.cursor(0);
    let mut em = Emitter {
        ctx,
        buf,
        skip,
        index: 0,
        full: false,
        error: None,
    };
    {
        let reg = registry.inner.lock();
        let unknown = filter
            .as_ref()
            .is_some_and(|f| reg.resource(f.as_str()).is_none());
        if unknown {
            em.item(command, None, ret::ERR_RES_NOT_KNOWN, |_| Ok(()));
        } else {
            let wanted = |name: &crate::name::Name| {
                filter
                    .as_ref()
                    .map_or(true, |f| f.as_str() == name.as_str())
            };
            match command {
                cmd::ADM_GET_INITIAL_STATE => initial_state(&mut em, &reg, &wanted),
                cmd::ADM_GET_RESOURCES => resources(&mut em, &reg, &wanted),
                cmd::ADM_GET_DEVICES => devices(&mut em, &reg, &wanted),
                cmd::ADM_GET_CONNECTIONS => connections(&mut em, &reg, &wanted),
                cmd::ADM_GET_PEER_DEVICES => peer_devices(&mut em, &reg, &wanted),
                cmd::ADM_GET_PATHS => paths(&mut em, &reg, &wanted),
                _ => {}
            }
        }
    }
    let (skip, error, progressed) = (em.skip, em.error, em.skip > em.ctx.cursor(0));
    em.ctx.set_cursor(0, skip);
    match error {
        Some(e) => e.to_errno(),
        None if progressed => 1,
        None => 0,
    }
}

fn initial_state(
    em: &mut Emitter<'_>,
    reg: &RegistryInner,
    wanted: &dyn Fn(&crate::name::Name) -> bool,
) {
    for resource in reg.resources().filter(|r| wanted(&r.name)) {
        let rs = resource.state.lock();
        // Order as DRBD: resource, connections, devices, then per connection its peer devices
        // and paths; every message but the last of a resource continues the batch.
        let conns: usize = rs.connections().count();
        let per_conn: usize = rs
            .connections()
            .map(|c| {
                let cs = c.state.lock();
                cs.peers.len() + usize::from(cs.path.is_some())
            })
            .sum();
        let total = 1 + conns + rs.device_count() + per_conn;
        let mut sent = 0usize;
        let flags = |sent: &mut usize| {
            *sent += 1;
            notify::EXISTS | if *sent < total { notify::CONTINUES } else { 0 }
        };
        let f = flags(&mut sent);
        em.item(cmd::RESOURCE_STATE, None, ret::NO_ERROR, |w| {
            events::build_resource(w, resource, &rs, f, Kind::Exists)
        });
        for conn in rs.connections() {
            let cs = conn.state.lock();
            let f = flags(&mut sent);
            em.item(cmd::CONNECTION_STATE, None, ret::NO_ERROR, |w| {
                events::build_connection(w, conn, &cs, f, Kind::Exists)
            });
        }
        for device in rs.devices() {
            let st = device.state.lock();
            let f = flags(&mut sent);
            em.item(cmd::DEVICE_STATE, Some(device.minor), ret::NO_ERROR, |w| {
                events::build_device(w, device, &st, f, Kind::Exists)
            });
        }
        for conn in rs.connections() {
            let cs = conn.state.lock();
            for p in cs.peers.iter() {
                let f = flags(&mut sent);
                em.item(cmd::PEER_DEVICE_STATE, None, ret::NO_ERROR, |w| {
                    events::build_peer_device(w, conn, &cs, p.volume, f, Kind::Exists)
                });
            }
            if cs.path.is_some() {
                let f = flags(&mut sent);
                em.item(cmd::PATH_STATE, None, ret::NO_ERROR, |w| {
                    events::build_path(w, conn, &cs, f, Kind::Exists)
                });
            }
        }
    }
    em.item(cmd::INITIAL_STATE_DONE, None, ret::NO_ERROR, |w| {
        msg::notification(w, notify::EXISTS)
    });
}

fn connections(
    em: &mut Emitter<'_>,
    reg: &RegistryInner,
    wanted: &dyn Fn(&crate::name::Name) -> bool,
) {
    for resource in reg.resources().filter(|r| wanted(&r.name)) {
        let rs = resource.state.lock();
        for conn in rs.connections() {
            let cs = conn.state.lock();
            em.item(cmd::ADM_GET_CONNECTIONS, None, ret::NO_ERROR, |w| {
                msg::conn_context(w, conn, &cs, None, true)?;
                msg::net_conf(w, &cs)?;
                msg::path_parms(w, &cs)?;
                msg::connection_body(w, &cs)
            });
        }
    }
}

fn peer_devices(
    em: &mut Emitter<'_>,
    reg: &RegistryInner,
    wanted: &dyn Fn(&crate::name::Name) -> bool,
) {
    for resource in reg.resources().filter(|r| wanted(&r.name)) {
        let rs = resource.state.lock();
        for conn in rs.connections() {
            let cs = conn.state.lock();
            for p in cs.peers.iter() {
                em.item(cmd::ADM_GET_PEER_DEVICES, None, ret::NO_ERROR, |w| {
                    msg::conn_context(w, conn, &cs, Some(p.volume), false)?;
                    msg::peer_device_body(w, &cs, p.volume)
                });
            }
        }
    }
}

fn paths(em: &mut Emitter<'_>, reg: &RegistryInner, wanted: &dyn Fn(&crate::name::Name) -> bool) {
    for resource in reg.resources().filter(|r| wanted(&r.name)) {
        let rs = resource.state.lock();
        for conn in rs.connections() {
            let cs = conn.state.lock();
            if cs.path.is_some() {
                em.item(cmd::ADM_GET_PATHS, None, ret::NO_ERROR, |w| {
                    msg::conn_context(w, conn, &cs, None, true)?;
                    msg::path_body(w, &cs)
                });
            }
        }
    }
}

fn resources(
    em: &mut Emitter<'_>,
    reg: &RegistryInner,
    wanted: &dyn Fn(&crate::name::Name) -> bool,
) {
    for resource in reg.resources().filter(|r| wanted(&r.name)) {
        let rs = resource.state.lock();
        em.item(cmd::ADM_GET_RESOURCES, None, ret::NO_ERROR, |w| {
            msg::context(w, resource, None)?;
            msg::resource_body(w, resource, &rs, true)
        });
    }
}

fn devices(em: &mut Emitter<'_>, reg: &RegistryInner, wanted: &dyn Fn(&crate::name::Name) -> bool) {
    for resource in reg.resources().filter(|r| wanted(&r.name)) {
        let rs = resource.state.lock();
        for device in rs.devices() {
            let st = device.state.lock();
            em.item(
                cmd::ADM_GET_DEVICES,
                Some(device.minor),
                ret::NO_ERROR,
                |w| {
                    msg::context(w, resource, Some(device.volume))?;
                    msg::disk_conf(w, &st)?;
                    msg::device_body(w, device, &st)
                },
            );
        }
    }
}
