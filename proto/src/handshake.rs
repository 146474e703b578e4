//! Sans-IO connection handshake for one DRBD 9 connection (two nodes, one
//! volume).
//!
//! The caller turns sockets and timers into [`Event`]s and executes the
//! [`Action`]s; bytes to send accumulate in an internal buffer
//! ([`Handshake::output`], [`Handshake::consume_output`]), all on the data
//! stream. No I/O, no clock, no allocation; the HMAC and the random
//! challenge come from a caller-provided [`AuthProvider`].
//!
//! Sequence (each side, symmetric):
//! 1. [`Event::Connected`] → send P_CONNECTION_FEATURES (h80 header).
//! 2. Peer features → agree on version and feature flags; node ids must
//!    match the configuration.
//! 3. With `cram-hmac-alg`: send P_AUTH_CHALLENGE (64 random bytes); on the
//!    peer's challenge send P_AUTH_RESPONSE = HMAC(challenge ‖ be32(my id));
//!    check the peer's response against HMAC(my challenge ‖ be32(peer id)).
//! 4. P_PROTOCOL both ways; settings must be compatible.
//! 5. P_SYNC_PARAM89, P_SIZES, P_UUIDS110, P_STATE both ways; the device
//!    size is the minimum, the UUIDs decide via [`super::uuid`].
//! 6. Each side sends P_STATE again with the replication state it decided
//!    (WFBitMapS/T or Established); when the peer's matches, the connection
//!    is Connected.
//!
//! Not yet DRBD 9 wire-exact: from protocol 118 on, DRBD wraps step 5/6 in a
//! cluster-wide two-phase commit (P_TWOPC_PREPARE/YES/COMMIT initiated by the
//! lower node id) instead of the symmetric P_STATE of step 6.

use super::codec::Writer;
use super::state::{ConnState, DiskState, ReplState, Role};
use super::uuid::{
    self, AfterSbPolicy, BitmapAction, Decision, Generations, HandshakeInput, NodeView, Outcome,
    Settings,
};
use super::wire::{
    ConnectionFeatures, DrbdState, Header, HeaderKind, Protocol, RsParam, Sizes, SizesBase,
    StatePacket, Uuids110, WireError, P_AUTH_CHALLENGE, P_AUTH_RESPONSE, P_CONNECTION_FEATURES,
    P_DISCONNECT, P_PROTOCOL, P_SIZES, P_STATE, P_SYNC_PARAM89, P_UUIDS110,
    UUID_FLAG_DISCARD_MY_DATA, VOLUME_CONNECTION,
};

/// Size of the random CRAM-HMAC challenge.
pub const CHALLENGE_LEN: usize = 64;
/// Largest HMAC digest accepted (SHA-512).
pub const MAX_DIGEST: usize = 64;
/// Capacity of the output buffer.
pub const OUTPUT_CAPACITY: usize = 2048;
/// Protocol flag in P_PROTOCOL: the sender discards its data.
pub const CF_DISCARD_MY_DATA: u32 = 1;
/// Protocol flag in P_PROTOCOL: dry run.
pub const CF_DRY_RUN: u32 = 2;

/// Crypto the kernel (or a test) provides.
pub trait AuthProvider {
    /// HMAC with the shared secret over the concatenation of `parts`;
    /// writes the digest to `out` and returns its length, or `None` when the
    /// computation fails.
    fn hmac(&mut self, parts: &[&[u8]], out: &mut [u8; MAX_DIGEST]) -> Option<usize>;
    /// Fill `out` with random bytes.
    fn random(&mut self, out: &mut [u8]);
}

/// Connection configuration.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// This node's id.
    pub node_id: u32,
    /// The peer's configured node id.
    pub peer_node_id: u32,
    /// Lowest protocol version offered.
    pub protocol_min: u32,
    /// Highest protocol version offered.
    pub protocol_max: u32,
    /// `DRBD_FF_*` offered.
    pub features: u32,
    /// `cram-hmac-alg` is configured.
    pub auth: bool,
    /// Net settings as sent in P_PROTOCOL (protocol, after-sb policies,
    /// conn_flags with [`CF_DISCARD_MY_DATA`], two-primaries, integrity alg).
    pub protocol: Protocol,
    /// rr-conflict.
    pub rr_conflict: AfterSbPolicy,
    /// always-asbp.
    pub always_asbp: bool,
    /// Quorum enabled.
    pub quorum_enabled: bool,
    /// Resync parameters sent in P_SYNC_PARAM89.
    pub rs_param: RsParam,
}

/// Snapshot of the local volume at connect time.
#[derive(Debug, Clone, Copy)]
pub struct LocalDevice {
    /// UUIDs.
    pub uuids: Generations,
    /// `UUID_FLAG_*` to send (the machine adds DISCARD_MY_DATA itself).
    pub uuid_flags: u64,
    /// Node ids that have a bitmap slot (sent bitmap UUIDs).
    pub bitmap_nodes: u64,
    /// Set bits towards the peer.
    pub dirty_bits: u64,
    /// Role.
    pub role: Role,
    /// Disk state (Negotiating resolved from the meta-data).
    pub disk: DiskState,
    /// Has quorum.
    pub quorum: bool,
    /// Usable backing size in sectors (0 = diskless).
    pub backing_sectors: u64,
    /// User-requested size in sectors (0 = none).
    pub user_sectors: u64,
    /// Largest bio accepted.
    pub max_bio_size: u32,
}

/// Which TCP stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Data socket.
    Data,
    /// Control (meta) socket.
    Meta,
}

/// Input to the machine.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// Both sockets are established.
    Connected {
        /// This node accepted the meta socket (tie-breaker).
        resolve_conflicts: bool,
    },
    /// One complete packet (header and payload) arrived.
    Packet {
        /// Stream it came on.
        stream: Stream,
        /// Header plus payload bytes.
        bytes: &'a [u8],
    },
    /// The handshake took too long.
    Timeout,
}

/// Why the connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No common protocol version.
    IncompatibleVersion,
    /// The peer's node ids do not match the configuration.
    NodeIdMismatch,
    /// Wrong shared secret (or the peer does not authenticate).
    AuthFailed,
    /// The peer echoed our challenge.
    SameChallenge,
    /// HMAC computation failed locally.
    HmacUnavailable,
    /// A P_PROTOCOL setting differs (name of the setting).
    IncompatibleSettings(&'static str),
    /// Malformed or unexpected packet.
    ProtocolError(WireError),
    /// Packet not expected in this phase.
    UnexpectedPacket(u16),
    /// Handshake timed out.
    Timeout,
    /// The UUID handshake refused to connect.
    Handshake(Outcome),
    /// The peer decided differently (its P_STATE does not match ours).
    InconsistentDecision,
    /// The peer sent P_DISCONNECT.
    PeerDisconnected,
}

/// Output of the machine (besides the bytes to send).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// New connection state.
    ConnState(ConnState),
    /// Version and features agreed.
    Agreed {
        /// Protocol version.
        version: u32,
        /// Common `DRBD_FF_*`.
        features: u32,
    },
    /// The peer proved it knows the shared secret.
    Authenticated,
    /// The peer's P_PROTOCOL was accepted.
    PeerProtocol(Protocol),
    /// The peer's resync parameters.
    PeerRsParam(RsParam),
    /// Agreed device size (sectors).
    Size(u64),
    /// The UUID decision (log it; run its helpers).
    Decided(Decision),
    /// Handshake done: enter this replication state, after this bitmap work.
    Replication(ReplState, BitmapAction),
    /// Give up: StandAlone.
    StandAlone(Failure),
    /// Drop the sockets and connect again later.
    Retry(Failure),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    WaitFeatures,
    WaitChallenge,
    WaitResponse,
    WaitProtocol,
    WaitDevice,
    WaitFinalState,
    Done,
}

const MAX_ACTIONS: usize = 8;

/// The handshake machine.
#[derive(Debug)]
pub struct Handshake {
    cfg: Config,
    dev: LocalDevice,
    phase: Phase,
    resolve_conflicts: bool,
    version: u32,
    features: u32,
    my_challenge: [u8; CHALLENGE_LEN],
    out: [u8; OUTPUT_CAPACITY],
    out_len: usize,
    actions: [Option<Action>; MAX_ACTIONS],
    n_actions: usize,
    peer_protocol: Option<Protocol>,
    peer_sizes: Option<SizesBase>,
    peer_uuids: Option<Uuids110>,
    peer_state: Option<DrbdState>,
    decided: Option<(ReplState, BitmapAction)>,
}

impl Handshake {
    /// A machine for one connection attempt.
    pub fn new(cfg: Config, dev: LocalDevice) -> Handshake {
        Handshake {
            cfg,
            dev,
            phase: Phase::Idle,
            resolve_conflicts: false,
            version: 0,
            features: 0,
            my_challenge: [0; CHALLENGE_LEN],
            out: [0; OUTPUT_CAPACITY],
            out_len: 0,
            actions: [None; MAX_ACTIONS],
            n_actions: 0,
            peer_protocol: None,
            peer_sizes: None,
            peer_uuids: None,
            peer_state: None,
            decided: None,
        }
    }

    /// Bytes waiting to be sent on the data stream.
    pub fn output(&self) -> &[u8] {
        self.out.get(..self.out_len).unwrap_or(&[])
    }

    /// `n` bytes of [`Handshake::output`] were sent.
    pub fn consume_output(&mut self, n: usize) {
        let n = n.min(self.out_len);
        self.out.copy_within(n..self.out_len, 0);
        self.out_len -= n;
    }

    /// Next action, in order.
    pub fn next_action(&mut self) -> Option<Action> {
        let a = self.actions.first().copied().flatten()?;
        self.actions.rotate_left(1);
        if let Some(last) = self.actions.last_mut() {
            *last = None;
        }
        self.n_actions -= 1;
        Some(a)
    }

    /// Agreed protocol version (0 before the features exchange).
    pub fn agreed_version(&self) -> u32 {
        self.version
    }

    /// Header size of the next packet to read on this connection.
    pub fn header_size(&self) -> usize {
        if self.version == 0 {
            HeaderKind::H80.size()
        } else {
            HeaderKind::for_version(self.version).size()
        }
    }

    /// The handshake is over (successfully or not).
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    fn push(&mut self, a: Action) {
        if let Some(slot) = self.actions.get_mut(self.n_actions) {
            *slot = Some(a);
            self.n_actions += 1;
        }
    }

    fn fail(&mut self, f: Failure, retry: bool) {
        if self.phase == Phase::Done {
            return;
        }
        self.phase = Phase::Done;
        if retry {
            self.push(Action::ConnState(ConnState::NetworkFailure));
            self.push(Action::Retry(f));
        } else {
            self.push(Action::ConnState(ConnState::Disconnecting));
            self.push(Action::StandAlone(f));
        }
    }

    /// Append one packet: header of the agreed kind, payload from `body`.
    fn send(
        &mut self,
        cmd: u16,
        volume: u16,
        body: impl FnOnce(&mut [u8]) -> Result<usize, WireError>,
    ) -> Result<(), WireError> {
        let kind = if self.version == 0 {
            HeaderKind::H80
        } else {
            HeaderKind::for_version(self.version)
        };
        let hs = kind.size();
        let start = self.out_len;
        let room = self.out.get_mut(start..).ok_or(WireError::Short)?;
        let (head, payload) = room.split_at_mut_checked(hs).ok_or(WireError::Short)?;
        let n = body(payload)?;
        let h = Header {
            kind,
            cmd,
            length: n as u32,
            volume,
        };
        h.encode(head)?;
        self.out_len = start + hs + n;
        Ok(())
    }

    fn send_or_fail(
        &mut self,
        cmd: u16,
        volume: u16,
        body: impl FnOnce(&mut [u8]) -> Result<usize, WireError>,
    ) -> bool {
        match self.send(cmd, volume, body) {
            Ok(()) => true,
            Err(e) => {
                self.fail(Failure::ProtocolError(e), true);
                false
            }
        }
    }

    /// Feed one event.
    pub fn handle(&mut self, ev: Event<'_>, auth: &mut dyn AuthProvider) {
        match ev {
            Event::Connected { resolve_conflicts } => {
                if self.phase != Phase::Idle {
                    return;
                }
                self.resolve_conflicts = resolve_conflicts;
                self.push(Action::ConnState(ConnState::Connecting));
                let f = ConnectionFeatures {
                    protocol_min: self.cfg.protocol_min,
                    feature_flags: self.cfg.features,
                    protocol_max: self.cfg.protocol_max,
                    sender_node_id: self.cfg.node_id,
                    receiver_node_id: self.cfg.peer_node_id,
                };
                if self.send_or_fail(P_CONNECTION_FEATURES, VOLUME_CONNECTION, |b| f.encode(b)) {
                    self.phase = Phase::WaitFeatures;
                }
            }
            Event::Timeout => {
                if !matches!(self.phase, Phase::Idle | Phase::Done) {
                    self.fail(Failure::Timeout, true);
                }
            }
            Event::Packet { stream, bytes } => {
                if matches!(self.phase, Phase::Idle | Phase::Done) {
                    return;
                }
                if stream != Stream::Data {
                    // Nothing on the meta stream belongs to the handshake.
                    return;
                }
                let header = if self.version == 0 {
                    Header::decode(bytes)
                } else {
                    Header::decode_for_version(bytes, self.version)
                };
                let h = match header {
                    Ok(h) => h,
                    Err(e) => return self.fail(Failure::ProtocolError(e), true),
                };
                let payload = bytes
                    .get(h.kind.size()..)
                    .and_then(|p| p.get(..h.length as usize));
                let Some(payload) = payload else {
                    return self.fail(Failure::ProtocolError(WireError::BadLength), true);
                };
                if h.cmd == P_DISCONNECT {
                    return self.fail(Failure::PeerDisconnected, false);
                }
                self.packet(h, payload, auth);
            }
        }
    }

    fn packet(&mut self, h: Header, p: &[u8], auth: &mut dyn AuthProvider) {
        match (self.phase, h.cmd) {
            (Phase::WaitFeatures, P_CONNECTION_FEATURES) => self.on_features(p, auth),
            (Phase::WaitChallenge, P_AUTH_CHALLENGE) => self.on_challenge(p, auth),
            (Phase::WaitResponse, P_AUTH_RESPONSE) => self.on_response(p, auth),
            (Phase::WaitProtocol, P_PROTOCOL) => self.on_protocol(p),
            (Phase::WaitDevice, P_SYNC_PARAM89) => match RsParam::decode(p) {
                Ok(rs) => self.push(Action::PeerRsParam(rs)),
                Err(e) => self.fail(Failure::ProtocolError(e), true),
            },
            (Phase::WaitDevice, P_SIZES) => {
                let wsame = self.features & super::wire::DRBD_FF_WSAME != 0;
                match Sizes::decode(p, wsame) {
                    Ok(s) => self.peer_sizes = Some(s.base),
                    Err(e) => self.fail(Failure::ProtocolError(e), true),
                }
            }
            (Phase::WaitDevice, P_UUIDS110) => match Uuids110::decode(p) {
                Ok(u) => self.peer_uuids = Some(u),
                Err(e) => self.fail(Failure::ProtocolError(e), true),
            },
            (Phase::WaitDevice, P_STATE) => match StatePacket::decode(p) {
                Ok(s) => {
                    self.peer_state = Some(DrbdState(s.state));
                    self.try_decide();
                }
                Err(e) => self.fail(Failure::ProtocolError(e), true),
            },
            (Phase::WaitFinalState, P_STATE) => match StatePacket::decode(p) {
                Ok(s) => self.on_final_state(DrbdState(s.state)),
                Err(e) => self.fail(Failure::ProtocolError(e), true),
            },
            (_, cmd) => self.fail(Failure::UnexpectedPacket(cmd), true),
        }
    }

    fn on_features(&mut self, p: &[u8], auth: &mut dyn AuthProvider) {
        let peer = match ConnectionFeatures::decode(p) {
            Ok(f) => f,
            Err(e) => return self.fail(Failure::ProtocolError(e), true),
        };
        let mine = ConnectionFeatures {
            protocol_min: self.cfg.protocol_min,
            feature_flags: self.cfg.features,
            protocol_max: self.cfg.protocol_max,
            sender_node_id: self.cfg.node_id,
            receiver_node_id: self.cfg.peer_node_id,
        };
        let Some((version, features)) = mine.agree(&peer) else {
            return self.fail(Failure::IncompatibleVersion, false);
        };
        if version >= 110
            && (peer.sender_node_id != self.cfg.peer_node_id
                || peer.receiver_node_id != self.cfg.node_id)
        {
            return self.fail(Failure::NodeIdMismatch, true);
        }
        self.version = version;
        self.features = features;
        self.push(Action::Agreed { version, features });
        if self.cfg.auth {
            auth.random(&mut self.my_challenge);
            let ch = self.my_challenge;
            if self.send_or_fail(P_AUTH_CHALLENGE, VOLUME_CONNECTION, |b| {
                let mut w = Writer::new(b);
                w.bytes(&ch)?;
                Ok(w.pos())
            }) {
                self.phase = Phase::WaitChallenge;
            }
        } else {
            self.send_protocol();
        }
    }

    fn on_challenge(&mut self, p: &[u8], auth: &mut dyn AuthProvider) {
        if p.is_empty() || p.len() > 2 * CHALLENGE_LEN {
            return self.fail(Failure::ProtocolError(WireError::BadLength), true);
        }
        if p == self.my_challenge {
            return self.fail(Failure::SameChallenge, false);
        }
        let id = self.cfg.node_id.to_be_bytes();
        let mut digest = [0u8; MAX_DIGEST];
        let parts: [&[u8]; 2] = [p, if self.version >= 110 { &id } else { &[] }];
        let Some(n) = auth.hmac(&parts, &mut digest) else {
            return self.fail(Failure::HmacUnavailable, false);
        };
        let Some(d) = digest.get(..n.min(MAX_DIGEST)) else {
            return self.fail(Failure::HmacUnavailable, false);
        };
        let mut copy = [0u8; MAX_DIGEST];
        let len = d.len();
        if let Some(c) = copy.get_mut(..len) {
            c.copy_from_slice(d);
        }
        if self.send_or_fail(P_AUTH_RESPONSE, VOLUME_CONNECTION, |b| {
            let mut w = Writer::new(b);
            w.bytes(copy.get(..len).unwrap_or(&[]))?;
            Ok(w.pos())
        }) {
            self.phase = Phase::WaitResponse;
        }
    }

    fn on_response(&mut self, p: &[u8], auth: &mut dyn AuthProvider) {
        let id = self.cfg.peer_node_id.to_be_bytes();
        let mut want = [0u8; MAX_DIGEST];
        let ch = self.my_challenge;
        let parts: [&[u8]; 2] = [&ch, if self.version >= 110 { &id } else { &[] }];
        let Some(n) = auth.hmac(&parts, &mut want) else {
            return self.fail(Failure::HmacUnavailable, false);
        };
        let want = want.get(..n.min(MAX_DIGEST)).unwrap_or(&[]);
        // Constant-time comparison.
        let same = want.len() == p.len()
            && want
                .iter()
                .zip(p.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return self.fail(Failure::AuthFailed, false);
        }
        self.push(Action::Authenticated);
        self.send_protocol();
    }

    fn send_protocol(&mut self) {
        let proto = self.cfg.protocol;
        if self.send_or_fail(P_PROTOCOL, VOLUME_CONNECTION, |b| proto.encode(b)) {
            self.phase = Phase::WaitProtocol;
        }
    }

    fn on_protocol(&mut self, p: &[u8]) {
        let peer = match Protocol::decode(p) {
            Ok(x) => x,
            Err(e) => return self.fail(Failure::ProtocolError(e), true),
        };
        let mine = &self.cfg.protocol;
        let asb = |v: u32| AfterSbPolicy::from_u32(v).map(AfterSbPolicy::from_peer_view);
        let bad = if peer.protocol != mine.protocol {
            Some("protocol")
        } else if asb(peer.after_sb_0p) != AfterSbPolicy::from_u32(mine.after_sb_0p) {
            Some("after-sb-0pri")
        } else if asb(peer.after_sb_1p) != AfterSbPolicy::from_u32(mine.after_sb_1p) {
            Some("after-sb-1pri")
        } else if asb(peer.after_sb_2p) != AfterSbPolicy::from_u32(mine.after_sb_2p) {
            Some("after-sb-2pri")
        } else if peer.conn_flags & mine.conn_flags & CF_DISCARD_MY_DATA != 0 {
            Some("discard-my-data")
        } else if peer.two_primaries != mine.two_primaries {
            Some("allow-two-primaries")
        } else if peer.integrity_alg != mine.integrity_alg {
            Some("data-integrity-alg")
        } else {
            None
        };
        if let Some(what) = bad {
            return self.fail(Failure::IncompatibleSettings(what), false);
        }
        self.peer_protocol = Some(peer);
        self.push(Action::PeerProtocol(peer));
        self.send_device_info();
    }

    fn my_uuid_flags(&self) -> u64 {
        let mut f = self.dev.uuid_flags;
        if self.cfg.protocol.conn_flags & CF_DISCARD_MY_DATA != 0 {
            f |= UUID_FLAG_DISCARD_MY_DATA;
        }
        f
    }

    fn state_word(&self, conn: u32) -> u32 {
        let mut s = DrbdState::default();
        s.set_role(self.dev.role.to_u32());
        s.set_peer(Role::Unknown.to_u32());
        s.set_conn(conn);
        s.set_disk(self.dev.disk.to_u32());
        s.set_pdsk(DiskState::DUnknown.to_u32());
        s.set_quorum(u32::from(self.dev.quorum));
        s.0
    }

    fn send_device_info(&mut self) {
        let rs = self.cfg.rs_param;
        if !self.send_or_fail(P_SYNC_PARAM89, 0, |b| rs.encode(b)) {
            return;
        }
        let sizes = SizesBase {
            d_size: self.dev.backing_sectors,
            u_size: self.dev.user_sectors,
            c_size: 0,
            max_bio_size: self.dev.max_bio_size,
            queue_order_type: 0,
            dds_flags: 0,
        };
        let wsame = self.features & super::wire::DRBD_FF_WSAME != 0;
        let sz = Sizes {
            base: sizes,
            qlim: wsame.then(Default::default),
        };
        if !self.send_or_fail(P_SIZES, 0, |b| sz.encode(b)) {
            return;
        }
        let u = self.dev.uuids.to_wire(
            self.dev.bitmap_nodes,
            self.my_uuid_flags(),
            self.dev.dirty_bits,
        );
        if !self.send_or_fail(P_UUIDS110, 0, |b| u.encode(b)) {
            return;
        }
        let st = StatePacket {
            state: self.state_word(ConnState::Connecting.to_u32()),
        };
        if self.send_or_fail(P_STATE, 0, |b| st.encode(b)) {
            self.phase = Phase::WaitDevice;
        }
    }

    fn agreed_size(&self, peer: &SizesBase) -> u64 {
        let mine = self.dev.backing_sectors;
        let mut size = match (mine, peer.d_size) {
            (0, p) => p,
            (m, 0) => m,
            (m, p) => m.min(p),
        };
        for u in [self.dev.user_sectors, peer.u_size] {
            if u != 0 {
                size = size.min(u);
            }
        }
        size
    }

    fn try_decide(&mut self) {
        let (Some(sizes), Some(pu), Some(ps)) = (self.peer_sizes, self.peer_uuids, self.peer_state)
        else {
            return self.fail(Failure::ProtocolError(WireError::BadValue), true);
        };
        self.push(Action::Size(self.agreed_size(&sizes)));
        let peer_gen = Generations::from_wire(&pu);
        let peer_role = Role::from_u32(ps.role()).unwrap_or(Role::Unknown);
        let peer_disk = DiskState::from_u32(ps.disk()).unwrap_or(DiskState::DUnknown);
        let proto = self.cfg.protocol;
        let asb = |v: u32| AfterSbPolicy::from_u32(v).unwrap_or(AfterSbPolicy::Disconnect);
        let dry = self.cfg.protocol.conn_flags & CF_DRY_RUN != 0
            || self
                .peer_protocol
                .is_some_and(|p| p.conn_flags & CF_DRY_RUN != 0);
        let settings = Settings {
            agreed_version: self.version,
            wire_protocol: proto.protocol,
            after_sb_0p: asb(proto.after_sb_0p),
            after_sb_1p: asb(proto.after_sb_1p),
            after_sb_2p: asb(proto.after_sb_2p),
            rr_conflict: self.cfg.rr_conflict,
            always_asbp: self.cfg.always_asbp,
            quorum_enabled: self.cfg.quorum_enabled,
            dry_run: dry,
        };
        let my_flags = self.my_uuid_flags();
        let inp = HandshakeInput {
            local: NodeView {
                node_id: self.cfg.node_id as usize,
                uuids: &self.dev.uuids,
                flags: my_flags,
                role: self.dev.role,
                disk: self.dev.disk,
                dirty_bits: self.dev.dirty_bits,
                quorum: self.dev.quorum,
            },
            peer: NodeView {
                node_id: self.cfg.peer_node_id as usize,
                uuids: &peer_gen,
                flags: pu.uuid_flags,
                role: peer_role,
                disk: peer_disk,
                dirty_bits: pu.dirty_bits,
                quorum: ps.quorum() != 0,
            },
            resolve_conflicts: self.resolve_conflicts,
            settings,
            changed_since_sent: false,
            connecting: true,
            source_missed_end: false,
            peer_missed_end: false,
        };
        let d = uuid::sync_handshake(&inp);
        self.push(Action::Decided(d));
        let Some(repl) = d.repl_state(self.dev.role, peer_role) else {
            let out = d.outcome();
            let retry = matches!(out, Outcome::Retry);
            if !retry {
                // Tell the peer not to retry either.
                let _ = self.send(P_DISCONNECT, VOLUME_CONNECTION, |_| Ok(0));
            }
            return self.fail(Failure::Handshake(out), retry);
        };
        let action = d.bitmap_action(self.dev.uuids.is_just_created());
        self.decided = Some((repl, action));
        let st = StatePacket {
            state: self.state_word(repl.to_u32()),
        };
        if self.send_or_fail(P_STATE, 0, |b| st.encode(b)) {
            self.phase = Phase::WaitFinalState;
        }
    }

    fn on_final_state(&mut self, peer: DrbdState) {
        let Some((mine, action)) = self.decided else {
            return self.fail(Failure::InconsistentDecision, true);
        };
        let expected = match mine {
            ReplState::WFBitMapS => ReplState::WFBitMapT,
            ReplState::WFBitMapT => ReplState::WFBitMapS,
            other => other,
        };
        if ReplState::from_u32(peer.conn()) != Some(expected) {
            return self.fail(Failure::InconsistentDecision, true);
        }
        self.phase = Phase::Done;
        self.push(Action::ConnState(ConnState::Connected));
        self.push(Action::Replication(mine, action));
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::super::crc32c::crc32c;
    use super::super::uuid::{helpers, Strategy, UUID_PRIMARY};
    use super::super::wire::{UUID_FLAG_INCONSISTENT, UUID_FLAG_STABLE};
    use super::*;
    use std::boxed::Box;
    use std::vec::Vec;

    /// Toy keyed hash standing in for HMAC (the real one lives in the kernel).
    struct ToyAuth {
        secret: &'static [u8],
        seed: u8,
    }

    impl AuthProvider for ToyAuth {
        fn hmac(&mut self, parts: &[&[u8]], out: &mut [u8; MAX_DIGEST]) -> Option<usize> {
            let mut c = crc32c(0, self.secret);
            for p in parts {
                c = crc32c(c, p);
            }
            for (i, chunk) in out.chunks_mut(4).take(8).enumerate() {
                chunk.copy_from_slice(&crc32c(c, &[i as u8]).to_be_bytes());
            }
            Some(32)
        }
        fn random(&mut self, out: &mut [u8]) {
            for (i, b) in out.iter_mut().enumerate() {
                *b = self.seed.wrapping_mul(31).wrapping_add(i as u8);
            }
        }
    }

    const X: u64 = 0x1234_5678_9abc_def0;
    const Y: u64 = 0x2345_6789_abcd_ef00;
    const Z: u64 = 0x3456_789a_bcde_f000;

    fn config(me: u32, peer: u32) -> Config {
        Config {
            node_id: me,
            peer_node_id: peer,
            protocol_min: 118,
            protocol_max: 124,
            features: 0x3f,
            auth: false,
            protocol: Protocol {
                protocol: 3,
                ..Protocol::default()
            },
            rr_conflict: AfterSbPolicy::Disconnect,
            always_asbp: false,
            quorum_enabled: false,
            rs_param: RsParam::default(),
        }
    }

    fn fresh_dev(sectors: u64) -> LocalDevice {
        LocalDevice {
            uuids: Generations::just_created(),
            uuid_flags: UUID_FLAG_STABLE | UUID_FLAG_INCONSISTENT,
            bitmap_nodes: 0b11,
            dirty_bits: 0,
            role: Role::Secondary,
            disk: DiskState::Inconsistent,
            quorum: true,
            backing_sectors: sectors,
            user_sectors: 0,
            max_bio_size: 1 << 20,
        }
    }

    fn uptodate_dev(current: u64, sectors: u64) -> LocalDevice {
        let mut d = fresh_dev(sectors);
        d.uuids.current = current;
        d.uuid_flags = UUID_FLAG_STABLE;
        d.disk = DiskState::UpToDate;
        d
    }

    struct Side {
        hs: Box<Handshake>,
        auth: ToyAuth,
        actions: Vec<Action>,
    }

    /// Split a byte stream into whole packets using the wire codecs.
    fn packets(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let h = Header::decode(rest).expect("valid header");
            let n = h.kind.size() + h.length as usize;
            v.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
        v
    }

    /// Move `src`'s pending output into `dst`; true if anything moved.
    fn deliver(src: &mut Side, dst: &mut Side) -> bool {
        let bytes = src.hs.output().to_vec();
        src.hs.consume_output(bytes.len());
        while let Some(x) = src.hs.next_action() {
            src.actions.push(x);
        }
        let ps = packets(&bytes);
        for p in &ps {
            dst.hs.handle(
                Event::Packet {
                    stream: Stream::Data,
                    bytes: p,
                },
                &mut dst.auth,
            );
        }
        while let Some(x) = dst.hs.next_action() {
            dst.actions.push(x);
        }
        !ps.is_empty()
    }

    /// Drive both machines over an in-memory pipe until neither has output.
    fn run(a: &mut Side, b: &mut Side) {
        a.hs.handle(
            Event::Connected {
                resolve_conflicts: true,
            },
            &mut a.auth,
        );
        b.hs.handle(
            Event::Connected {
                resolve_conflicts: false,
            },
            &mut b.auth,
        );
        for _ in 0..50 {
            let moved = deliver(a, b) | deliver(b, a);
            if !moved {
                return;
            }
        }
        panic!("handshake did not settle");
    }

    fn side(cfg: Config, dev: LocalDevice, secret: &'static [u8], seed: u8) -> Side {
        Side {
            hs: Box::new(Handshake::new(cfg, dev)),
            auth: ToyAuth { secret, seed },
            actions: Vec::new(),
        }
    }

    fn pair(da: LocalDevice, db: LocalDevice) -> (Side, Side) {
        (
            side(config(0, 1), da, b"s3cret", 1),
            side(config(1, 0), db, b"s3cret", 2),
        )
    }

    fn replication(s: &Side) -> Option<(ReplState, BitmapAction)> {
        s.actions.iter().find_map(|a| match a {
            Action::Replication(r, b) => Some((*r, *b)),
            _ => None,
        })
    }

    fn failure(s: &Side) -> Option<(bool, Failure)> {
        s.actions.iter().find_map(|a| match a {
            Action::StandAlone(f) => Some((true, *f)),
            Action::Retry(f) => Some((false, *f)),
            _ => None,
        })
    }

    fn decision(s: &Side) -> Option<Decision> {
        s.actions.iter().find_map(|a| match a {
            Action::Decided(d) => Some(*d),
            _ => None,
        })
    }

    #[test]
    fn fresh_nodes_connect_without_sync() {
        let (mut a, mut b) = pair(fresh_dev(1000), fresh_dev(800));
        run(&mut a, &mut b);
        for s in [&a, &b] {
            assert!(s.hs.is_done());
            assert_eq!(s.hs.agreed_version(), 124);
            assert_eq!(s.hs.header_size(), 16);
            assert!(s.actions.contains(&Action::Agreed {
                version: 124,
                features: 0x3f
            }));
            assert!(s.actions.contains(&Action::Size(800)));
            assert!(s.actions.contains(&Action::ConnState(ConnState::Connected)));
            assert_eq!(
                replication(s),
                Some((ReplState::Established, BitmapAction::None))
            );
            assert!(!s.actions.contains(&Action::Authenticated));
        }
    }

    #[test]
    fn forced_primary_starts_full_sync() {
        let mut da = uptodate_dev(X | UUID_PRIMARY, 1000);
        da.role = Role::Primary;
        let (mut a, mut b) = pair(da, fresh_dev(1000));
        run(&mut a, &mut b);
        assert_eq!(
            replication(&a),
            Some((ReplState::WFBitMapS, BitmapAction::SetPeerSlot))
        );
        assert_eq!(
            replication(&b),
            Some((ReplState::WFBitMapT, BitmapAction::SetAllSlots))
        );
        assert_eq!(
            decision(&b).map(|d| d.strategy),
            Some(Strategy::TargetSetBitmap)
        );
    }

    #[test]
    fn bitmap_resync_after_outage() {
        let mut da = uptodate_dev(Y, 1000);
        da.uuids.bitmap[1] = X;
        da.dirty_bits = 2048;
        let (mut a, mut b) = pair(da, uptodate_dev(X, 1000));
        run(&mut a, &mut b);
        assert_eq!(
            replication(&a),
            Some((ReplState::WFBitMapS, BitmapAction::None))
        );
        assert_eq!(
            replication(&b),
            Some((ReplState::WFBitMapT, BitmapAction::None))
        );
    }

    #[test]
    fn authentication() {
        let mut ca = config(0, 1);
        let mut cb = config(1, 0);
        ca.auth = true;
        cb.auth = true;
        let mut a = side(ca, fresh_dev(10), b"secret", 1);
        let mut b = side(cb, fresh_dev(10), b"secret", 2);
        run(&mut a, &mut b);
        assert!(a.actions.contains(&Action::Authenticated));
        assert!(b.actions.contains(&Action::Authenticated));
        assert!(replication(&a).is_some());
        // wrong secret: both give up
        let mut a = side(ca, fresh_dev(10), b"secret", 1);
        let mut b = side(cb, fresh_dev(10), b"other", 2);
        run(&mut a, &mut b);
        assert_eq!(failure(&a), Some((true, Failure::AuthFailed)));
        assert_eq!(failure(&b), Some((true, Failure::AuthFailed)));
        assert!(replication(&a).is_none());
        // a replayed challenge is refused
        let mut a = side(ca, fresh_dev(10), b"secret", 1);
        let mut b = side(cb, fresh_dev(10), b"secret", 1);
        run(&mut a, &mut b);
        assert_eq!(failure(&a), Some((true, Failure::SameChallenge)));
    }

    #[test]
    fn incompatible_settings() {
        let mut cb = config(1, 0);
        cb.protocol.protocol = 1;
        let mut a = side(config(0, 1), fresh_dev(10), b"", 1);
        let mut b = side(cb, fresh_dev(10), b"", 2);
        run(&mut a, &mut b);
        assert_eq!(
            failure(&a),
            Some((true, Failure::IncompatibleSettings("protocol")))
        );
        // discard-local on one side equals discard-remote on the other
        let mut ca = config(0, 1);
        let mut cb = config(1, 0);
        ca.protocol.after_sb_0p = AfterSbPolicy::DiscardLocal.to_u32();
        cb.protocol.after_sb_0p = AfterSbPolicy::DiscardRemote.to_u32();
        let mut a = side(ca, fresh_dev(10), b"", 1);
        let mut b = side(cb, fresh_dev(10), b"", 2);
        run(&mut a, &mut b);
        assert!(replication(&a).is_some());
        cb.protocol.after_sb_0p = AfterSbPolicy::DiscardLocal.to_u32();
        let mut a = side(ca, fresh_dev(10), b"", 1);
        let mut b = side(cb, fresh_dev(10), b"", 2);
        run(&mut a, &mut b);
        assert_eq!(
            failure(&b),
            Some((true, Failure::IncompatibleSettings("after-sb-0pri")))
        );
        // both --discard-my-data
        let mut ca = config(0, 1);
        let mut cb = config(1, 0);
        ca.protocol.conn_flags = CF_DISCARD_MY_DATA;
        cb.protocol.conn_flags = CF_DISCARD_MY_DATA;
        let mut a = side(ca, fresh_dev(10), b"", 1);
        let mut b = side(cb, fresh_dev(10), b"", 2);
        run(&mut a, &mut b);
        assert_eq!(
            failure(&a),
            Some((true, Failure::IncompatibleSettings("discard-my-data")))
        );
    }

    #[test]
    fn version_and_node_id_checks() {
        let mut cb = config(1, 0);
        cb.protocol_min = 86;
        cb.protocol_max = 101;
        let mut a = side(config(0, 1), fresh_dev(10), b"", 1);
        let mut b = side(cb, fresh_dev(10), b"", 2);
        run(&mut a, &mut b);
        assert_eq!(failure(&a), Some((true, Failure::IncompatibleVersion)));
        let mut a = side(config(0, 1), fresh_dev(10), b"", 1);
        let mut b = side(config(2, 0), fresh_dev(10), b"", 2);
        run(&mut a, &mut b);
        assert_eq!(failure(&a), Some((false, Failure::NodeIdMismatch)));
        assert_eq!(failure(&b), Some((false, Failure::NodeIdMismatch)));
    }

    fn split_devs() -> (LocalDevice, LocalDevice) {
        let mut da = uptodate_dev(Y, 1000);
        da.uuids.bitmap[1] = X;
        da.dirty_bits = 10;
        let mut db = uptodate_dev(Z, 1000);
        db.uuids.bitmap[0] = X;
        db.dirty_bits = 20;
        (da, db)
    }

    #[test]
    fn split_brain_goes_standalone() {
        let (da, db) = split_devs();
        let (mut a, mut b) = pair(da, db);
        run(&mut a, &mut b);
        for s in [&a, &b] {
            let d = decision(s).unwrap();
            assert_ne!(d.helpers & helpers::SPLIT_BRAIN, 0);
            assert!(matches!(
                failure(s),
                Some((true, Failure::Handshake(Outcome::SplitBrain { .. })))
                    | Some((true, Failure::PeerDisconnected))
            ));
            assert!(replication(s).is_none());
        }
    }

    #[test]
    fn discard_my_data_recovers_from_split_brain() {
        let (da, db) = split_devs();
        let mut cb = config(1, 0);
        cb.protocol.conn_flags = CF_DISCARD_MY_DATA;
        let mut a = side(config(0, 1), da, b"", 1);
        let mut b = side(cb, db, b"", 2);
        run(&mut a, &mut b);
        assert_eq!(
            replication(&a),
            Some((ReplState::WFBitMapS, BitmapAction::None))
        );
        assert_eq!(
            replication(&b),
            Some((ReplState::WFBitMapT, BitmapAction::None))
        );
    }

    #[test]
    fn unrelated_data_is_refused() {
        let (mut a, mut b) = pair(uptodate_dev(Y, 10), uptodate_dev(Z, 10));
        run(&mut a, &mut b);
        assert!(matches!(
            failure(&a),
            Some((true, Failure::Handshake(Outcome::UnrelatedData)))
                | Some((true, Failure::PeerDisconnected))
        ));
        assert!(replication(&b).is_none());
    }

    #[test]
    fn garbage_and_timeouts() {
        let mut a = side(config(0, 1), fresh_dev(10), b"", 1);
        a.hs.handle(
            Event::Connected {
                resolve_conflicts: true,
            },
            &mut a.auth,
        );
        assert_eq!(a.hs.header_size(), 8);
        let out = a.hs.output().to_vec();
        assert_eq!(&out[..4], &0x8374_0267u32.to_be_bytes());
        a.hs.consume_output(out.len());
        a.hs.handle(
            Event::Packet {
                stream: Stream::Data,
                bytes: &[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0],
            },
            &mut a.auth,
        );
        assert!(a.hs.is_done());
        let mut acts = Vec::new();
        while let Some(x) = a.hs.next_action() {
            acts.push(x);
        }
        assert!(acts.contains(&Action::Retry(Failure::ProtocolError(WireError::BadMagic))));
        // truncated payload, wrong packet for the phase, timeout
        for bytes in [
            &[0x83u8, 0x74, 0x02, 0x67, 0xff, 0xfe, 0, 72, 0, 0][..],
            &[0x83, 0x74, 0x02, 0x67, 0, 0x0b, 0, 0][..],
        ] {
            let mut s = side(config(0, 1), fresh_dev(10), b"", 1);
            s.hs.handle(
                Event::Connected {
                    resolve_conflicts: true,
                },
                &mut s.auth,
            );
            s.hs.handle(
                Event::Packet {
                    stream: Stream::Data,
                    bytes,
                },
                &mut s.auth,
            );
            assert!(s.hs.is_done());
        }
        let mut s = side(config(0, 1), fresh_dev(10), b"", 1);
        s.hs.handle(Event::Timeout, &mut s.auth);
        assert!(!s.hs.is_done(), "idle machines ignore timeouts");
        s.hs.handle(
            Event::Connected {
                resolve_conflicts: true,
            },
            &mut s.auth,
        );
        s.hs.handle(Event::Timeout, &mut s.auth);
        let mut acts = Vec::new();
        while let Some(x) = s.hs.next_action() {
            acts.push(x);
        }
        assert!(acts.contains(&Action::Retry(Failure::Timeout)));
    }
}
