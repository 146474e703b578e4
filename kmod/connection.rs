//! A connection to one peer node of a resource: its network options, its path (local and peer
//! address), its connection state, and the thread that establishes and watches the link.
//!
//! Lock order: `Resource::state` → `Connection::state`. The link thread takes only
//! `Connection::state`; `disconnect` takes the thread out of the state and stops it with no
//! lock held (the thread may be waiting for that lock).

use crate::resource::Resource;
use crate::spec::generated::{ConnState, Role};
use crate::sys::socket::{Ipv4Addr, Socket};
use crate::sys::thread::KThread;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

/// Network options that the link uses (`NET_CONF`; times as DRBD's units).
#[derive(Clone, Copy)]
pub(crate) struct NetOptions {
    /// Replication protocol: 1 = A, 2 = B, 3 = C.
    pub(crate) protocol: u32,
    /// Seconds between connection attempts.
    pub(crate) connect_int_s: u32,
    /// Seconds of idle time before a ping.
    pub(crate) ping_int_s: u32,
    /// Tenths of a second to wait for a ping answer.
    pub(crate) ping_timeo_ds: u32,
}

impl Default for NetOptions {
    fn default() -> Self {
        Self {
            protocol: 3,
            connect_int_s: 10,
            ping_int_s: 10,
            ping_timeo_ds: 5,
        }
    }
}

/// The network path of a connection.
#[derive(Clone, Copy)]
pub(crate) struct Path {
    /// Our address (we listen here).
    pub(crate) local: Ipv4Addr,
    /// The peer's address (we connect there).
    pub(crate) peer: Ipv4Addr,
}

/// Mutable state, behind `Connection::state`.
pub(crate) struct ConnectionState {
    /// Connection name (`--_name`, usually the peer's host name).
    pub(crate) name: crate::name::Name,
    /// Options.
    pub(crate) net: NetOptions,
    /// Connection state.
    pub(crate) cstate: ConnState,
    /// The peer's role as last reported.
    pub(crate) peer_role: Role,
    /// The one path (DRBD allows several; one is supported).
    pub(crate) path: Option<Path>,
    /// The path has an established TCP connection.
    pub(crate) established: bool,
    /// Link thread while connecting or connected.
    pub(crate) thread: Option<KThread>,
    /// Sockets in use by the link thread (shut down by `disconnect` to wake it).
    pub(crate) sockets: KVec<Arc<Socket>>,
    /// Volumes of the resource, i.e. this connection's peer devices (kept here so the link
    /// thread never needs `Resource::state`, which ranks above this lock).
    pub(crate) volumes: KVec<u32>,
}

/// A connection.
///
/// Lifetime: created by `new-peer`, owned by the resource's connection list and by its link
/// thread while it runs; removed by `del-peer`/`down` after the thread has stopped.
#[pin_data]
pub(crate) struct Connection {
    /// Owning resource.
    pub(crate) resource: Arc<Resource>,
    /// Node id of the peer.
    pub(crate) peer_node_id: u32,
    /// Tells the link thread to finish.
    pub(crate) stopping: AtomicBool,
    /// Options, state and thread.
    #[pin]
    pub(crate) state: Mutex<ConnectionState>,
}

impl Connection {
    /// A StandAlone connection without paths.
    pub(crate) fn new(
        resource: Arc<Resource>,
        peer_node_id: u32,
        name: crate::name::Name,
        net: NetOptions,
    ) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                resource,
                peer_node_id,
                stopping: AtomicBool::new(false),
                state <- new_mutex!(
                    ConnectionState {
                        name,
                        net,
                        cstate: ConnState::StandAlone,
                        peer_role: Role::Unknown,
                        path: None,
                        established: false,
                        thread: None,
                        sockets: KVec::new(),
                        volumes: KVec::new(),
                    },
                    "Connection::state"
                ),
            }),
            GFP_KERNEL,
        )
    }

    /// Starts connecting (`connect`): the link thread tries until `disconnect`.
    pub(crate) fn start(self: &Arc<Self>) -> Result {
        let mut st = self.state.lock();
        if st.thread.is_some() {
            return Ok(());
        }
        self.stopping.store(false, Ordering::Release);
        let me = self.clone();
        let name =
            kernel::str::CString::try_from_fmt(kernel::fmt!("drbd_c_{}", self.resource.name))?;
        st.thread = Some(KThread::spawn(&name, move || crate::link::run(me))?);
        crate::events::connection(self, &st, crate::events::Kind::Change);
        Ok(())
    }

    /// Stops the link thread and goes StandAlone (`disconnect`).
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        let thread = {
            let mut st = self.state.lock();
            for s in st.sockets.iter() {
                s.shutdown();
            }
            st.thread.take()
        };
        if let Some(t) = thread {
            t.stop();
        }
        let mut st = self.state.lock();
        st.sockets = KVec::new();
        let was_established = st.established;
        st.established = false;
        st.cstate = ConnState::StandAlone;
        st.peer_role = Role::Unknown;
        crate::events::connection(self, &st, crate::events::Kind::Change);
        if was_established {
            crate::events::path(self, &st, crate::events::Kind::Change);
        }
    }

    /// Whether `disconnect` asked the link thread to finish.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire) || crate::sys::thread::should_stop()
    }

    /// Records a new connection state and announces it.
    pub(crate) fn set_cstate(&self, cstate: ConnState, established: bool) {
        let mut st = self.state.lock();
        if st.cstate == cstate && st.established == established {
            return;
        }
        let path_changed = st.established != established;
        st.cstate = cstate;
        st.established = established;
        if cstate != ConnState::Connected {
            st.peer_role = Role::Unknown;
        }
        crate::events::connection(self, &st, crate::events::Kind::Change);
        if path_changed {
            crate::events::path(self, &st, crate::events::Kind::Change);
        }
    }

    /// Remembers a socket the link thread blocks on, so `stop` can wake it.
    pub(crate) fn track_socket(&self, s: &Arc<Socket>) -> Result {
        self.state.lock().sockets.push(s.clone(), GFP_KERNEL)?;
        Ok(())
    }

    /// Forgets all tracked sockets (the link thread dropped them).
    pub(crate) fn untrack_sockets(&self) {
        self.state.lock().sockets = KVec::new();
    }
}
