//! State-change notifications on the `events` multicast group (what `drbdsetup events2`
//! shows as `create`/`change`/`destroy` lines). Built from state the caller already holds;
//! sent from process context only.

use crate::connection::{Connection, ConnectionState};
use crate::device::{Device, DeviceState};
use crate::msg;
use crate::resource::{Resource, ResourceState};
use crate::spec::generated::{cmd, notify};
use crate::spec::nla::NlaWriter;
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::prelude::*;

/// Global, increasing sequence number of notifications (userland orders by it).
static SEQ: AtomicU32 = AtomicU32::new(1);

/// What happened to an object.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Part of an initial-state dump.
    Exists,
    /// Created.
    Create,
    /// Changed.
    Change,
    /// Destroyed (no info sets are sent).
    Destroy,
}

impl Kind {
    /// `NOTIFICATION_HEADER.nh_type`.
    pub(crate) fn nh_type(self) -> u32 {
        match self {
            Kind::Exists => notify::EXISTS,
            Kind::Create => notify::CREATE,
            Kind::Change => notify::CHANGE,
            Kind::Destroy => notify::DESTROY,
        }
    }
}

/// Builds a resource notification into `w` (shared with the initial-state dump).
pub(crate) fn build_resource(
    w: &mut NlaWriter<'_>,
    resource: &Resource,
    rs: &ResourceState,
    nh_type: u32,
    kind: Kind,
) -> msg::Built {
    msg::notification(w, nh_type)?;
    msg::context(w, resource, None)?;
    if kind != Kind::Destroy {
        msg::resource_body(w, resource, rs, false)?;
    }
    Ok(())
}

/// Builds a device notification into `w` (shared with the initial-state dump).
pub(crate) fn build_device(
    w: &mut NlaWriter<'_>,
    device: &Device,
    st: &DeviceState,
    nh_type: u32,
    kind: Kind,
) -> msg::Built {
    msg::notification(w, nh_type)?;
    msg::context(w, &device.resource, Some(device.volume))?;
    if kind != Kind::Destroy {
        msg::device_body(w, device, st)?;
    }
    Ok(())
}

fn send(command: u8, minor: Option<u32>, build: impl FnOnce(&mut NlaWriter<'_>) -> msg::Built) {
    let Ok(mut buf) = KVec::from_elem(0u8, msg::MSG_MAX, GFP_NOIO_COMPAT) else {
        pr_warn!("event dropped: out of memory\n");
        return;
    };
    let mut w = NlaWriter::new(buf.as_mut_slice());
    if build(&mut w).is_err() {
        pr_warn!("event dropped: message too large\n");
        return;
    }
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = crate::sys::genl::multicast(
        command,
        seq,
        &msg::header(minor, crate::spec::generated::ret::NO_ERROR),
        w.as_bytes(),
    ) {
        pr_warn!("event not delivered ({})\n", e.to_errno());
    }
}

/// Allocation flags for events: they are sent from configuration and open/release paths only.
const GFP_NOIO_COMPAT: kernel::alloc::Flags = GFP_KERNEL;

/// Builds a connection notification into `w`.
pub(crate) fn build_connection(
    w: &mut NlaWriter<'_>,
    conn: &Connection,
    st: &ConnectionState,
    nh_type: u32,
    kind: Kind,
) -> msg::Built {
    msg::notification(w, nh_type)?;
    msg::conn_context(w, conn, st, None, false)?;
    if kind != Kind::Destroy {
        msg::connection_body(w, st)?;
    }
    Ok(())
}

/// Builds a path notification into `w`.
pub(crate) fn build_path(
    w: &mut NlaWriter<'_>,
    conn: &Connection,
    st: &ConnectionState,
    nh_type: u32,
    kind: Kind,
) -> msg::Built {
    msg::notification(w, nh_type)?;
    msg::conn_context(w, conn, st, None, true)?;
    if kind != Kind::Destroy {
        msg::path_body(w, st)?;
    }
    Ok(())
}

/// Builds a peer-device notification into `w`.
pub(crate) fn build_peer_device(
    w: &mut NlaWriter<'_>,
    conn: &Connection,
    st: &ConnectionState,
    volume: u32,
    nh_type: u32,
    kind: Kind,
) -> msg::Built {
    msg::notification(w, nh_type)?;
    msg::conn_context(w, conn, st, Some(volume), false)?;
    if kind != Kind::Destroy {
        msg::peer_device_body(w, st, volume)?;
    }
    Ok(())
}

/// Announces a connection state (and its peer devices, whose state follows it).
pub(crate) fn connection(conn: &Connection, st: &ConnectionState, kind: Kind) {
    send(cmd::CONNECTION_STATE, None, |w| {
        build_connection(w, conn, st, kind.nh_type(), kind)
    });
    if kind == Kind::Change {
        for p in st.peers.iter() {
            peer_device(conn, st, p.volume, kind);
        }
    }
}

/// Announces a path state.
pub(crate) fn path(conn: &Connection, st: &ConnectionState, kind: Kind) {
    send(cmd::PATH_STATE, None, |w| {
        build_path(w, conn, st, kind.nh_type(), kind)
    });
}

/// Announces a peer-device state.
pub(crate) fn peer_device(conn: &Connection, st: &ConnectionState, volume: u32, kind: Kind) {
    send(cmd::PEER_DEVICE_STATE, None, |w| {
        build_peer_device(w, conn, st, volume, kind.nh_type(), kind)
    });
}

/// Announces a resource state.
pub(crate) fn resource(resource: &Resource, rs: &ResourceState, kind: Kind) {
    send(cmd::RESOURCE_STATE, None, |w| {
        build_resource(w, resource, rs, kind.nh_type(), kind)
    });
}

/// Announces a device state.
pub(crate) fn device(device: &Device, st: &DeviceState, kind: Kind) {
    send(cmd::DEVICE_STATE, Some(device.minor), |w| {
        build_device(w, device, st, kind.nh_type(), kind)
    });
}

/// Whom a helper call is about (a snapshot; the helper runs with no lock held).
pub(crate) struct HelperObject<'a> {
    /// Resource name.
    pub(crate) resource: &'a str,
    /// Peer node id and connection name, for connection and peer-device helpers.
    pub(crate) peer: Option<(u32, &'a str)>,
    /// Volume, for device and peer-device helpers.
    pub(crate) volume: Option<u32>,
}

/// Announces a helper call (`nh_type` CALL, before it runs) or its response (RESPONSE, with the
/// raw wait status or negative errno).
pub(crate) fn helper(obj: &HelperObject<'_>, helper: &str, nh_type: u32, status: i32) {
    use crate::spec::generated::{cfg_context, helper_info, tla};
    send(cmd::HELPER, None, |w| {
        msg::notification(w, nh_type)?;
        let nest = w.nest_start(tla::CFG_CONTEXT)?;
        w.put_str(cfg_context::CTX_RESOURCE_NAME, obj.resource)?;
        if let Some(volume) = obj.volume {
            w.put_u32(cfg_context::CTX_VOLUME, volume)?;
        }
        if let Some((id, name)) = obj.peer {
            w.put_u32(cfg_context::CTX_PEER_NODE_ID, id)?;
            w.put_str(cfg_context::CTX_CONN_NAME, name)?;
        }
        w.nest_end(nest)?;
        let nest = w.nest_start(tla::HELPER)?;
        w.put_str(helper_info::HELPER_NAME, helper)?;
        // The attribute is unsigned; DRBD sends the int's bits.
        w.put_u32(helper_info::HELPER_STATUS, status as u32)?;
        w.nest_end(nest)
    });
}
