//! DRBD 9 wire protocol: packet headers, command codes and payload codecs.
//!
//! All integers are big-endian. Every `decode` takes the payload bytes (after
//! the header) and returns a typed [`WireError`] on short or malformed input;
//! every `encode` writes into a caller-provided buffer and returns the number
//! of bytes written. Nothing allocates.

use super::codec::{Reader, Short, Writer};

/// Magic of the 8-byte h80 header (also the base of the meta-data magics).
pub const DRBD_MAGIC: u32 = 0x8374_0267;
/// Magic of the 8-byte h95 header ("big" packets, protocol 95-99).
pub const DRBD_MAGIC_BIG: u16 = 0x835a;
/// Magic of the 16-byte h100 header (protocol >= 100, all DRBD 9 traffic).
pub const DRBD_MAGIC_100: u32 = 0x8620_ec20;

/// Lowest DRBD 9 protocol version this implementation speaks.
pub const PRO_VERSION_MIN: u32 = 118;
/// Highest protocol version defined by DRBD 9.
pub const PRO_VERSION_MAX: u32 = 124;
/// Largest payload an h80 header can announce.
pub const H80_MAX_PAYLOAD: u32 = 0xffff;
/// DRBD's largest bio (and data payload): 1 MiB.
pub const DRBD_MAX_BIO_SIZE: u32 = 1 << 20;
/// Bitmap packets must fit in this many bytes including the header.
pub const DRBD_SOCKET_BUFFER_SIZE: usize = 4096;
/// h100 volume number meaning "whole connection".
pub const VOLUME_CONNECTION: u16 = 0xffff;

/// Feature flag: P_TRIM on the wire.
pub const DRBD_FF_TRIM: u32 = 1;
/// Feature flag: thin resync (P_RS_THIN_REQ, P_RS_DEALLOCATED).
pub const DRBD_FF_THIN_RESYNC: u32 = 2;
/// Feature flag: P_WSAME, and `o_qlim` appended to P_SIZES.
pub const DRBD_FF_WSAME: u32 = 4;
/// Feature flag: P_ZEROES distinct from P_TRIM.
pub const DRBD_FF_WZEROES: u32 = 8;
/// Feature flag: resync ordered by dagtags.
pub const DRBD_FF_RESYNC_DAGTAG: u32 = 16;
/// Feature flag: v2 layout of p_twopc_request.
pub const DRBD_FF_2PC_V2: u32 = 32;
/// Feature flag: new current UUID also sent to diskless peers on skipped initial sync.
pub const DRBD_FF_RS_SKIP_UUID: u32 = 64;
/// Feature flag: P_ENABLE_REPLICATION(_NEXT).
pub const DRBD_FF_RESYNC_WITHOUT_REPLICATION: u32 = 128;
/// Feature flag: bitmap granularity other than 4 KiB in o_qlim.
pub const DRBD_FF_BM_BLOCK_SHIFT: u32 = 256;
/// Feature flag: P_PEER_DAGTAG during the handshake.
pub const DRBD_FF_RECONCILE_RECONNECT: u32 = 512;

macro_rules! packet_codes {
    ($($(#[$m:meta])* $name:ident = $val:expr;)*) => {
        $($(#[$m])* pub const $name: u16 = $val;)*
        /// Name of a packet code, for logs ("P_DATA"), or "P_UNKNOWN".
        pub fn cmd_name(cmd: u16) -> &'static str {
            match cmd {
                $($val => stringify!($name),)*
                _ => "P_UNKNOWN",
            }
        }
    };
}

packet_codes! {
    /// Application write (data stream).
    P_DATA = 0x00;
    /// Answer to P_DATA_REQUEST.
    P_DATA_REPLY = 0x01;
    /// Resync data.
    P_RS_DATA_REPLY = 0x02;
    /// Closes an epoch.
    P_BARRIER = 0x03;
    /// Plain bitmap words.
    P_BITMAP = 0x04;
    /// Legacy (8.4).
    P_BECOME_SYNC_TARGET = 0x05;
    /// Legacy (8.4).
    P_BECOME_SYNC_SOURCE = 0x06;
    /// Empty hint.
    P_UNPLUG_REMOTE = 0x07;
    /// Read from the peer (diskless read).
    P_DATA_REQUEST = 0x08;
    /// Resync read request.
    P_RS_DATA_REQUEST = 0x09;
    /// Legacy sync parameters.
    P_SYNC_PARAM = 0x0a;
    /// Replication protocol and policies.
    P_PROTOCOL = 0x0b;
    /// Legacy (8.4) UUIDs.
    P_UUIDS = 0x0c;
    /// Device sizes.
    P_SIZES = 0x0d;
    /// State word.
    P_STATE = 0x0e;
    /// Legacy (8.4) sync UUID.
    P_SYNC_UUID = 0x0f;
    /// CRAM-HMAC challenge.
    P_AUTH_CHALLENGE = 0x10;
    /// CRAM-HMAC response.
    P_AUTH_RESPONSE = 0x11;
    /// Pre-2PC state change request.
    P_STATE_CHG_REQ = 0x12;
    /// Keep-alive (meta stream).
    P_PING = 0x13;
    /// Keep-alive answer.
    P_PING_ACK = 0x14;
    /// Protocol B ack.
    P_RECV_ACK = 0x15;
    /// Protocol C ack.
    P_WRITE_ACK = 0x16;
    /// Resync write ack.
    P_RS_WRITE_ACK = 0x17;
    /// Legacy two-primaries conflict.
    P_SUPERSEDED = 0x18;
    /// Write failed on the peer.
    P_NEG_ACK = 0x19;
    /// Read failed on the peer.
    P_NEG_DREPLY = 0x1a;
    /// Resync read failed on the peer.
    P_NEG_RS_DREPLY = 0x1b;
    /// Epoch completed on the peer.
    P_BARRIER_ACK = 0x1c;
    /// Pre-2PC state change reply.
    P_STATE_CHG_REPLY = 0x1d;
    /// Online verify request.
    P_OV_REQUEST = 0x1e;
    /// Online verify reply.
    P_OV_REPLY = 0x1f;
    /// Online verify result (<122).
    P_OV_RESULT = 0x20;
    /// Checksum-based resync request.
    P_CSUM_RS_REQUEST = 0x21;
    /// Block already in sync.
    P_RS_IS_IN_SYNC = 0x22;
    /// Resync parameters.
    P_SYNC_PARAM89 = 0x23;
    /// RLE/VLI compressed bitmap.
    P_COMPRESSED_BITMAP = 0x24;
    /// Delay probe (ignored).
    P_DELAY_PROBE = 0x27;
    /// Range is out of sync (Ahead/Behind).
    P_OUT_OF_SYNC = 0x28;
    /// Resync request declined.
    P_RS_CANCEL = 0x29;
    /// Pre-2PC connection state change request.
    P_CONN_ST_CHG_REQ = 0x2a;
    /// Pre-2PC connection state change reply.
    P_CONN_ST_CHG_REPLY = 0x2b;
    /// Legacy two-primaries conflict.
    P_RETRY_WRITE = 0x2c;
    /// Changed protocol settings.
    P_PROTOCOL_UPDATE = 0x2d;
    /// Two-phase commit: prepare.
    P_TWOPC_PREPARE = 0x2e;
    /// Two-phase commit: abort.
    P_TWOPC_ABORT = 0x2f;
    /// Explicit dagtag.
    P_DAGTAG = 0x30;
    /// Discard.
    P_TRIM = 0x31;
    /// Thin resync request.
    P_RS_THIN_REQ = 0x32;
    /// Deallocated (all-zero) block (<122).
    P_RS_DEALLOCATED = 0x33;
    /// Write same.
    P_WSAME = 0x34;
    /// Two-phase commit: prepare resize.
    P_TWOPC_PREP_RSZ = 0x35;
    /// Write zeroes.
    P_ZEROES = 0x36;
    /// Every write up to a dagtag was acked by the nodes in a mask.
    P_PEER_ACK = 0x40;
    /// Ranges now in sync.
    P_PEERS_IN_SYNC = 0x41;
    /// DRBD 9 UUID set.
    P_UUIDS110 = 0x42;
    /// Dagtag of a peer.
    P_PEER_DAGTAG = 0x43;
    /// New current UUID.
    P_CURRENT_UUID = 0x44;
    /// Two-phase commit: yes.
    P_TWOPC_YES = 0x45;
    /// Two-phase commit: no.
    P_TWOPC_NO = 0x46;
    /// Two-phase commit: commit.
    P_TWOPC_COMMIT = 0x47;
    /// Two-phase commit: retry.
    P_TWOPC_RETRY = 0x48;
    /// Unsolicited partial barrier ack.
    P_CONFIRM_STABLE = 0x49;
    /// Resync request declined (Ahead).
    P_RS_CANCEL_AHEAD = 0x4a;
    /// Stop, do not reconnect.
    P_DISCONNECT = 0x4b;
    /// Resync request with dagtag.
    P_RS_DAGTAG_REQ = 0x4c;
    /// Checksum resync request with dagtag.
    P_RS_CSUM_DAGTAG_REQ = 0x4d;
    /// Thin resync request with dagtag.
    P_RS_THIN_DAGTAG_REQ = 0x4e;
    /// Verify request with dagtag.
    P_OV_DAGTAG_REQ = 0x4f;
    /// Verify reply with dagtag.
    P_OV_DAGTAG_REPLY = 0x50;
    /// Write ack that also marks the block in sync.
    P_WRITE_ACK_IN_SYNC = 0x51;
    /// Resync write failed.
    P_RS_NEG_ACK = 0x52;
    /// Verify result by block id.
    P_OV_RESULT_ID = 0x53;
    /// Deallocated block by block id.
    P_RS_DEALLOCATED_ID = 0x54;
    /// Flush requests.
    P_FLUSH_REQUESTS = 0x55;
    /// Forwarded flush.
    P_FLUSH_FORWARD = 0x56;
    /// Flush requests done.
    P_FLUSH_REQUESTS_ACK = 0x57;
    /// Enable replication at the next state change.
    P_ENABLE_REPLICATION_NEXT = 0x58;
    /// Enable replication now.
    P_ENABLE_REPLICATION = 0x59;
    /// Unknown commands above this may be skipped.
    P_MAY_IGNORE = 0x100;
    /// First packet on the meta socket.
    P_INITIAL_META = 0xfff1;
    /// First packet on the data socket.
    P_INITIAL_DATA = 0xfff2;
    /// Feature negotiation.
    P_CONNECTION_FEATURES = 0xfffe;
}

/// Why a packet cannot be decoded or encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Input ended early, or the output buffer is too small.
    Short,
    /// No known header magic.
    BadMagic,
    /// h100 padding not zero.
    BadPad,
    /// Header type not allowed for the agreed protocol version.
    WrongHeader,
    /// Payload too large for the header type or for DRBD.
    TooLong,
    /// A field has a value outside its domain.
    BadValue,
    /// Payload length does not match the packet type.
    BadLength,
    /// Compressed bitmap is malformed or runs past the end of the bitmap.
    BadBitmap,
    /// Compressed bitmap uses an unknown encoding.
    UnknownEncoding,
}

impl WireError {
    /// Human-readable explanation.
    pub fn message(&self) -> &'static str {
        match self {
            WireError::Short => "packet too short",
            WireError::BadMagic => "invalid packet header magic",
            WireError::BadPad => "non-zero padding in packet header",
            WireError::WrongHeader => "packet header type not valid for the agreed protocol",
            WireError::TooLong => "packet too long",
            WireError::BadValue => "packet field out of range",
            WireError::BadLength => "packet length does not match its type",
            WireError::BadBitmap => "bitmap decoding error",
            WireError::UnknownEncoding => "unknown bitmap encoding",
        }
    }
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

impl From<Short> for WireError {
    fn from(_: Short) -> Self {
        WireError::Short
    }
}

/// The three header layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderKind {
    /// 8 bytes: be32 magic, be16 cmd, be16 length.
    H80,
    /// 8 bytes: be16 magic, be16 cmd, be32 length.
    H95,
    /// 16 bytes: be32 magic, be16 volume, be16 cmd, be32 length, be32 pad.
    H100,
}

impl HeaderKind {
    /// Encoded size.
    pub fn size(self) -> usize {
        match self {
            HeaderKind::H80 | HeaderKind::H95 => 8,
            HeaderKind::H100 => 16,
        }
    }

    /// The header DRBD uses after agreeing on `version` (h80 before that).
    pub fn for_version(version: u32) -> HeaderKind {
        if version >= 100 {
            HeaderKind::H100
        } else if version >= 95 {
            HeaderKind::H95
        } else {
            HeaderKind::H80
        }
    }
}

/// A decoded packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Layout it was (or will be) encoded with.
    pub kind: HeaderKind,
    /// Packet code (`P_*`).
    pub cmd: u16,
    /// Payload length after the header.
    pub length: u32,
    /// Volume number (h100 only; [`VOLUME_CONNECTION`] otherwise).
    pub volume: u16,
}

impl Header {
    /// Decode a header, detecting its kind from the magic. Needs at least 8
    /// bytes (16 for h100).
    pub fn decode(buf: &[u8]) -> Result<Header, WireError> {
        let mut r = Reader::new(buf);
        let m32 = r.u32()?;
        if m32 == DRBD_MAGIC_100 {
            let volume = r.u16()?;
            let cmd = r.u16()?;
            let length = r.u32()?;
            if r.u32()? != 0 {
                return Err(WireError::BadPad);
            }
            return Ok(Header {
                kind: HeaderKind::H100,
                cmd,
                length,
                volume,
            });
        }
        if m32 == DRBD_MAGIC {
            let cmd = r.u16()?;
            let length = u32::from(r.u16()?);
            return Ok(Header {
                kind: HeaderKind::H80,
                cmd,
                length,
                volume: VOLUME_CONNECTION,
            });
        }
        if (m32 >> 16) as u16 == DRBD_MAGIC_BIG {
            let cmd = m32 as u16;
            let length = r.u32()?;
            return Ok(Header {
                kind: HeaderKind::H95,
                cmd,
                length,
                volume: VOLUME_CONNECTION,
            });
        }
        Err(WireError::BadMagic)
    }

    /// Decode and require the header kind of the agreed protocol version.
    pub fn decode_for_version(buf: &[u8], version: u32) -> Result<Header, WireError> {
        let h = Header::decode(buf)?;
        if h.kind != HeaderKind::for_version(version) {
            return Err(WireError::WrongHeader);
        }
        Ok(h)
    }

    /// Encode; returns the header size.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let mut w = Writer::new(out);
        match self.kind {
            HeaderKind::H80 => {
                let len = u16::try_from(self.length).map_err(|_| WireError::TooLong)?;
                w.u32(DRBD_MAGIC)?;
                w.u16(self.cmd)?;
                w.u16(len)?;
            }
            HeaderKind::H95 => {
                w.u16(DRBD_MAGIC_BIG)?;
                w.u16(self.cmd)?;
                w.u32(self.length)?;
            }
            HeaderKind::H100 => {
                w.u32(DRBD_MAGIC_100)?;
                w.u16(self.volume)?;
                w.u16(self.cmd)?;
                w.u32(self.length)?;
                w.u32(0)?;
            }
        }
        Ok(w.pos())
    }
}

/// Defines a fixed-size big-endian payload struct with `decode`/`encode`.
macro_rules! fixed_payload {
    ($(#[$m:meta])* $name:ident [$size:expr] {
        $($(#[$fm:meta])* $field:ident : $ty:ident),* $(,)?
    } pad $pad:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name {
            $($(#[$fm])* pub $field: $ty,)*
        }
        impl $name {
            /// Encoded size in bytes.
            pub const SIZE: usize = $size;
            /// Decode from the start of `buf` (extra bytes are left to the caller).
            pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
                let mut r = Reader::new(buf);
                let v = $name { $($field: r.$ty()?,)* };
                r.skip($pad)?;
                Ok(v)
            }
            /// Encode into the start of `out`; returns bytes written.
            pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
                let mut w = Writer::new(out);
                $(w.$ty(self.$field)?;)*
                w.zeros($pad)?;
                Ok(w.pos())
            }
        }
    };
}

fixed_payload! {
    /// P_CONNECTION_FEATURES (72 bytes): version range, features, node ids.
    ConnectionFeatures [72] {
        /// Lowest protocol version spoken.
        protocol_min: u32,
        /// `DRBD_FF_*` mask.
        feature_flags: u32,
        /// Highest protocol version spoken (0 means equal to min).
        protocol_max: u32,
        /// Node id of the sender.
        sender_node_id: u32,
        /// Node id the sender expects the receiver to have.
        receiver_node_id: u32,
    } pad 4 + 48
}

impl ConnectionFeatures {
    /// Agree on a protocol version and feature set, or `None` if the ranges
    /// do not overlap (or the peer's max lies in the never-defined 102..=117).
    pub fn agree(&self, peer: &ConnectionFeatures) -> Option<(u32, u32)> {
        let peer_max = if peer.protocol_max == 0 {
            peer.protocol_min
        } else {
            peer.protocol_max
        };
        let my_max = if self.protocol_max == 0 {
            self.protocol_min
        } else {
            self.protocol_max
        };
        if (102..=117).contains(&peer_max) {
            return None;
        }
        if peer_max < self.protocol_min || my_max < peer.protocol_min {
            return None;
        }
        Some((
            my_max.min(peer_max),
            self.feature_flags & peer.feature_flags,
        ))
    }
}

fixed_payload! {
    /// p_data (24 bytes), heading P_DATA, P_DATA_REPLY, P_RS_DATA_REPLY, P_WSAME.
    DataHeader [24] {
        /// Start sector (512-byte units).
        sector: u64,
        /// Opaque handle echoed in acks.
        block_id: u64,
        /// Per-peer-device sequence number.
        seq_num: u32,
        /// `DP_*` flags.
        dp_flags: u32,
    } pad 0
}

fixed_payload! {
    /// p_trim (28 bytes): p_data plus the size, for P_TRIM and P_ZEROES.
    Trim [28] {
        /// Start sector.
        sector: u64,
        /// Opaque handle.
        block_id: u64,
        /// Sequence number.
        seq_num: u32,
        /// `DP_*` flags.
        dp_flags: u32,
        /// Size in bytes.
        size: u32,
    } pad 0
}

fixed_payload! {
    /// p_block_req (24 bytes): data/resync/verify requests.
    BlockReq [24] {
        /// Start sector.
        sector: u64,
        /// Opaque handle echoed in the reply.
        block_id: u64,
        /// Size in bytes.
        blksize: u32,
    } pad 4
}

fixed_payload! {
    /// p_rs_req (32 bytes): resync/verify requests with a dagtag.
    RsReq [32] {
        /// Start sector.
        sector: u64,
        /// Opaque handle.
        block_id: u64,
        /// Size in bytes.
        blksize: u32,
        /// Node the dagtag refers to.
        dagtag_node_id: u32,
        /// Dagtag the request must wait for.
        dagtag: u64,
    } pad 0
}

fixed_payload! {
    /// p_block_ack (24 bytes): all acks of data blocks.
    BlockAck [24] {
        /// Start sector.
        sector: u64,
        /// Handle from the acked packet.
        block_id: u64,
        /// Size in bytes.
        blksize: u32,
        /// Sequence number.
        seq_num: u32,
    } pad 0
}

fixed_payload! {
    /// p_ov_result (32 bytes): P_OV_RESULT_ID.
    OvResult [32] {
        /// Start sector.
        sector: u64,
        /// Handle.
        block_id: u64,
        /// Size in bytes.
        blksize: u32,
        /// Sequence number.
        seq_num: u32,
        /// 0 skipped, 1 in sync, 2 out of sync.
        result: u32,
    } pad 4
}

fixed_payload! {
    /// p_block_desc (16 bytes): P_OUT_OF_SYNC, P_RS_DEALLOCATED.
    BlockDesc [16] {
        /// Start sector.
        sector: u64,
        /// Size in bytes.
        blksize: u32,
    } pad 4
}

fixed_payload! {
    /// p_barrier (8 bytes).
    Barrier [8] {
        /// Opaque epoch number.
        barrier: u32,
    } pad 4
}

fixed_payload! {
    /// p_barrier_ack (8 bytes).
    BarrierAck [8] {
        /// Epoch number from the P_BARRIER.
        barrier: u32,
        /// Number of writes in the epoch.
        set_size: u32,
    } pad 0
}

fixed_payload! {
    /// p_confirm_stable (24 bytes).
    ConfirmStable [24] {
        /// Oldest stable block id.
        oldest_block_id: u64,
        /// Youngest stable block id.
        youngest_block_id: u64,
        /// Number of writes.
        set_size: u32,
    } pad 4
}

fixed_payload! {
    /// p_state (4 bytes): a `union drbd_state`, see [`DrbdState`].
    StatePacket [4] {
        /// The state word.
        state: u32,
    } pad 0
}

fixed_payload! {
    /// p_req_state (8 bytes): pre-2PC state change request.
    ReqState [8] {
        /// Which bits change.
        mask: u32,
        /// Their new values.
        val: u32,
    } pad 0
}

fixed_payload! {
    /// p_req_state_reply (4 bytes).
    ReqStateReply [4] {
        /// `SS_*` result code.
        retcode: i32,
    } pad 0
}

fixed_payload! {
    /// p_twopc_request (36 bytes, v2 layout with flags and 8-bit node ids).
    TwopcRequest [36] {
        /// Transaction id (random, non-zero).
        tid: u32,
        /// `TWOPC_*` flags.
        flags: u32,
        /// Padding.
        pad16: u16,
        /// Initiator node id.
        initiator_node_id: i8,
        /// Target node id (-1 for all).
        target_node_id: i8,
        /// Nodes that still have to be reached.
        nodes_to_reach: u64,
        /// First 8 bytes of the type-specific part (see accessors).
        word0: u64,
        /// Second 8 bytes of the type-specific part.
        word1: u64,
    } pad 0
}

impl TwopcRequest {
    /// PREPARE: (state mask, state value) from the type-specific part.
    pub fn prepare_mask_val(&self) -> (u32, u32) {
        ((self.word1 >> 32) as u32, self.word1 as u32)
    }
    /// PREPARE: set the state mask and value.
    pub fn set_prepare_mask_val(&mut self, mask: u32, val: u32) {
        self.word0 = 0;
        self.word1 = (u64::from(mask) << 32) | u64::from(val);
    }
    /// COMMIT: (primary_nodes, reachable_nodes).
    pub fn commit_nodes(&self) -> (u64, u64) {
        (self.word0, self.word1)
    }
    /// PREP_RSZ: (user_size, dds_flags).
    pub fn resize(&self) -> (u64, u16) {
        (self.word0, (self.word1 >> 48) as u16)
    }
    /// PREP_RSZ: set user size and dds flags.
    pub fn set_resize(&mut self, user_size: u64, dds_flags: u16) {
        self.word0 = user_size;
        self.word1 = u64::from(dds_flags) << 48;
    }
}

/// 2PC request flag: the flags field is valid.
pub const TWOPC_HAS_FLAGS: u32 = 0x8000_0000;
/// 2PC request flag: reachable nodes are included.
pub const TWOPC_HAS_REACHABLE: u32 = 0x4000_0000;
/// 2PC request flag: the initiator cannot become Primary.
pub const TWOPC_PRI_INCAPABLE: u32 = 0x2000_0000;

fixed_payload! {
    /// p_twopc_reply (32 bytes): P_TWOPC_YES/NO/RETRY.
    TwopcReply [32] {
        /// Transaction id.
        tid: u32,
        /// Initiator node id.
        initiator_node_id: u32,
        /// Nodes reachable through the sender.
        reachable_nodes: u64,
        /// primary_nodes, or diskful_primary_nodes for resize.
        word0: u64,
        /// weak_nodes, or max_possible_size for resize.
        word1: u64,
    } pad 0
}

fixed_payload! {
    /// p_peer_ack (16 bytes).
    PeerAck [16] {
        /// Nodes that acked every write up to `dagtag`.
        mask: u64,
        /// Data-generation tag.
        dagtag: u64,
    } pad 0
}

fixed_payload! {
    /// p_peer_block_desc (24 bytes): P_PEERS_IN_SYNC.
    PeersInSync [24] {
        /// Start sector.
        sector: u64,
        /// Nodes now in sync for this range.
        mask: u64,
        /// Size in bytes.
        size: u32,
    } pad 4
}

fixed_payload! {
    /// p_dagtag (8 bytes): P_DAGTAG.
    Dagtag [8] {
        /// The dagtag.
        dagtag: u64,
    } pad 0
}

fixed_payload! {
    /// p_peer_dagtag (12 bytes).
    PeerDagtag [12] {
        /// The dagtag.
        dagtag: u64,
        /// Node it belongs to.
        node_id: u32,
    } pad 0
}

fixed_payload! {
    /// p_current_uuid (16 bytes).
    CurrentUuid [16] {
        /// New current UUID.
        uuid: u64,
        /// Nodes the sender cannot reach.
        weak_nodes: u64,
    } pad 0
}

fixed_payload! {
    /// p_flush_requests (8 bytes).
    FlushRequests [8] {
        /// Flush sequence number.
        seq: u64,
    } pad 0
}

fixed_payload! {
    /// p_enable_replication (4 bytes).
    EnableReplication [4] {
        /// Non-zero to enable.
        enable: u8,
    } pad 3
}

fixed_payload! {
    /// p_delay_probe93 (8 bytes, ignored by receivers).
    DelayProbe [8] {
        /// Sequence number.
        seq_num: u32,
        /// Offset.
        offset: u32,
    } pad 0
}

fixed_payload! {
    /// o_qlim (24 bytes): queue limits appended to P_SIZES with WSAME.
    Qlim [24] {
        /// Physical block size.
        physical_block_size: u32,
        /// Logical block size.
        logical_block_size: u32,
        /// Alignment offset.
        alignment_offset: u32,
        /// Minimum IO size.
        io_min: u32,
        /// Optimal IO size.
        io_opt: u32,
        /// Discards supported.
        discard_enabled: u8,
        /// Discards read back zeroes.
        discard_zeroes_data: u8,
        /// Write-same supported.
        write_same_capable: u8,
        /// Bitmap block shift minus 12.
        bm_block_shift_minus_12: u8,
    } pad 0
}

fixed_payload! {
    /// p_sizes without the optional queue limits (32 bytes).
    SizesBase [32] {
        /// Backing device size (sectors).
        d_size: u64,
        /// User-requested size (sectors).
        u_size: u64,
        /// Current exposed size (sectors).
        c_size: u64,
        /// Largest bio the sender accepts.
        max_bio_size: u32,
        /// Queue order type.
        queue_order_type: u16,
        /// `DDSF_*` flags.
        dds_flags: u16,
    } pad 0
}

/// dds flag: assume an unconnected peer has enough space.
pub const DDSF_ASSUME_UNCONNECTED_PEER_HAS_SPACE: u16 = 1;
/// dds flag: no resync of the grown area.
pub const DDSF_NO_RESYNC: u16 = 2;

/// P_SIZES: sizes plus queue limits when WSAME was agreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sizes {
    /// The 32-byte base part.
    pub base: SizesBase,
    /// Queue limits (only with [`DRBD_FF_WSAME`]).
    pub qlim: Option<Qlim>,
}

impl Sizes {
    /// Decode; `wsame` says whether the features include WSAME.
    pub fn decode(buf: &[u8], wsame: bool) -> Result<Sizes, WireError> {
        let base = SizesBase::decode(buf)?;
        let qlim = if wsame {
            Some(Qlim::decode(
                buf.get(SizesBase::SIZE..).ok_or(WireError::Short)?,
            )?)
        } else {
            None
        };
        Ok(Sizes { base, qlim })
    }
    /// Encode; returns bytes written.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let n = self.base.encode(out)?;
        match &self.qlim {
            Some(q) => Ok(n + q.encode(out.get_mut(n..).ok_or(WireError::Short)?)?),
            None => Ok(n),
        }
    }
}

/// A NUL-terminated algorithm name of at most 63 characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlgName {
    bytes: [u8; 64],
    len: u8,
}

impl Default for AlgName {
    fn default() -> Self {
        AlgName {
            bytes: [0; 64],
            len: 0,
        }
    }
}

impl AlgName {
    /// Build from a name (without NUL); `None` if longer than 63 bytes or
    /// containing NUL.
    pub fn new(name: &[u8]) -> Option<AlgName> {
        if name.len() > 63 || name.contains(&0) {
            return None;
        }
        let mut a = AlgName::default();
        a.bytes.get_mut(..name.len())?.copy_from_slice(name);
        a.len = name.len() as u8;
        Some(a)
    }
    /// The name bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
    fn from_field(field: &[u8]) -> Result<AlgName, WireError> {
        let end = field
            .iter()
            .position(|&b| b == 0)
            .ok_or(WireError::BadValue)?;
        AlgName::new(field.get(..end).ok_or(WireError::Short)?).ok_or(WireError::BadValue)
    }
}

/// P_PROTOCOL / P_PROTOCOL_UPDATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Protocol {
    /// 1 = A, 2 = B, 3 = C.
    pub protocol: u32,
    /// after-sb-0pri policy.
    pub after_sb_0p: u32,
    /// after-sb-1pri policy.
    pub after_sb_1p: u32,
    /// after-sb-2pri policy.
    pub after_sb_2p: u32,
    /// 1 DISCARD_MY_DATA, 2 DRY_RUN.
    pub conn_flags: u32,
    /// allow-two-primaries.
    pub two_primaries: u32,
    /// data-integrity-alg ("" for none).
    pub integrity_alg: AlgName,
}

impl Protocol {
    /// Decode the 24 fixed bytes and the NUL-terminated algorithm name.
    pub fn decode(buf: &[u8]) -> Result<Protocol, WireError> {
        let mut r = Reader::new(buf);
        let mut p = Protocol {
            protocol: r.u32()?,
            after_sb_0p: r.u32()?,
            after_sb_1p: r.u32()?,
            after_sb_2p: r.u32()?,
            conn_flags: r.u32()?,
            two_primaries: r.u32()?,
            integrity_alg: AlgName::default(),
        };
        if !(1..=3).contains(&p.protocol) {
            return Err(WireError::BadValue);
        }
        let rest = r.rest();
        if !rest.is_empty() {
            p.integrity_alg = AlgName::from_field(rest)?;
        }
        Ok(p)
    }
    /// Encode, with the algorithm name NUL-terminated.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let mut w = Writer::new(out);
        for v in [
            self.protocol,
            self.after_sb_0p,
            self.after_sb_1p,
            self.after_sb_2p,
            self.conn_flags,
            self.two_primaries,
        ] {
            w.u32(v)?;
        }
        w.bytes(self.integrity_alg.as_bytes())?;
        w.u8(0)?;
        Ok(w.pos())
    }
}

/// P_SYNC_PARAM89 (`p_rs_param_95`, 148 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RsParam {
    /// resync-rate (KiB/s).
    pub resync_rate: u32,
    /// verify-alg.
    pub verify_alg: AlgName,
    /// csums-alg.
    pub csums_alg: AlgName,
    /// c-plan-ahead.
    pub c_plan_ahead: u32,
    /// c-delay-target.
    pub c_delay_target: u32,
    /// c-fill-target.
    pub c_fill_target: u32,
    /// c-max-rate.
    pub c_max_rate: u32,
}

impl RsParam {
    /// Encoded size.
    pub const SIZE: usize = 148;
    /// Decode.
    pub fn decode(buf: &[u8]) -> Result<RsParam, WireError> {
        let mut r = Reader::new(buf);
        Ok(RsParam {
            resync_rate: r.u32()?,
            verify_alg: AlgName::from_field(r.bytes(64)?)?,
            csums_alg: AlgName::from_field(r.bytes(64)?)?,
            c_plan_ahead: r.u32()?,
            c_delay_target: r.u32()?,
            c_fill_target: r.u32()?,
            c_max_rate: r.u32()?,
        })
    }
    /// Encode.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let mut w = Writer::new(out);
        w.u32(self.resync_rate)?;
        for a in [&self.verify_alg, &self.csums_alg] {
            w.bytes(a.as_bytes())?;
            w.zeros(64 - a.as_bytes().len())?;
        }
        w.u32(self.c_plan_ahead)?;
        w.u32(self.c_delay_target)?;
        w.u32(self.c_fill_target)?;
        w.u32(self.c_max_rate)?;
        Ok(w.pos())
    }
}

/// UUID flag: the sender discards its data (--discard-my-data).
pub const UUID_FLAG_DISCARD_MY_DATA: u64 = 1 << 0;
/// UUID flag: the sender crashed while Primary.
pub const UUID_FLAG_CRASHED_PRIMARY: u64 = 1 << 1;
/// UUID flag: the sender's disk is inconsistent.
pub const UUID_FLAG_INCONSISTENT: u64 = 1 << 2;
/// UUID flag: skip the initial sync.
pub const UUID_FLAG_SKIP_INITIAL_SYNC: u64 = 1 << 3;
/// UUID flag: a new data generation was started.
pub const UUID_FLAG_NEW_DATAGEN: u64 = 1 << 4;
/// UUID flag: the sender's state is stable.
pub const UUID_FLAG_STABLE: u64 = 1 << 5;
/// UUID flag: the sender got stable.
pub const UUID_FLAG_GOT_STABLE: u64 = 1 << 6;
/// UUID flag: sent during a resync.
pub const UUID_FLAG_RESYNC: u64 = 1 << 7;
/// UUID flag: reconnect after a short interruption.
pub const UUID_FLAG_RECONNECT: u64 = 1 << 8;
/// UUID flag: diskless Primary.
pub const UUID_FLAG_DISKLESS_PRIMARY: u64 = 1 << 9;
/// UUID flag: Primary that lost quorum.
pub const UUID_FLAG_PRIMARY_LOST_QUORUM: u64 = 1 << 10;
/// UUID flag: sender is SyncTarget.
pub const UUID_FLAG_SYNC_TARGET: u64 = 1 << 11;
/// UUID flag: an unallocated day-0 slot index is in bits 56..63.
pub const UUID_FLAG_HAS_UNALLOC: u64 = 1 << 12;

/// P_UUIDS110: current, bitmap (per node in `bitmap_uuids_mask`) and
/// history UUIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uuids110 {
    /// Current UUID.
    pub current_uuid: u64,
    /// Number of dirty bits.
    pub dirty_bits: u64,
    /// `UUID_FLAG_*`.
    pub uuid_flags: u64,
    /// Weak or authoritative nodes, depending on flags.
    pub node_mask: u64,
    /// Which node ids have a bitmap UUID in the packet.
    pub bitmap_uuids_mask: u64,
    /// Bitmap UUIDs by node id (zero where not in the mask).
    pub bitmap_uuids: [u64; 64],
    /// History UUIDs, newest first.
    pub history_uuids: [u64; 32],
    /// How many history UUIDs were sent.
    pub history_count: u8,
}

impl Default for Uuids110 {
    fn default() -> Self {
        Uuids110 {
            current_uuid: 0,
            dirty_bits: 0,
            uuid_flags: 0,
            node_mask: 0,
            bitmap_uuids_mask: 0,
            bitmap_uuids: [0; 64],
            history_uuids: [0; 32],
            history_count: 0,
        }
    }
}

impl Uuids110 {
    /// Decode; the number of history UUIDs follows from the length.
    pub fn decode(buf: &[u8]) -> Result<Uuids110, WireError> {
        let mut r = Reader::new(buf);
        let mut u = Uuids110 {
            current_uuid: r.u64()?,
            dirty_bits: r.u64()?,
            uuid_flags: r.u64()?,
            node_mask: r.u64()?,
            bitmap_uuids_mask: r.u64()?,
            ..Uuids110::default()
        };
        for (i, b) in u.bitmap_uuids.iter_mut().enumerate() {
            if u.bitmap_uuids_mask & (1u64 << i) != 0 {
                *b = r.u64()?;
            }
        }
        if r.remaining() % 8 != 0 {
            return Err(WireError::BadLength);
        }
        let n = r.remaining() / 8;
        if n > u.history_uuids.len() {
            return Err(WireError::BadLength);
        }
        for h in u.history_uuids.iter_mut().take(n) {
            *h = r.u64()?;
        }
        u.history_count = n as u8;
        Ok(u)
    }
    /// Encode.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let mut w = Writer::new(out);
        w.u64(self.current_uuid)?;
        w.u64(self.dirty_bits)?;
        w.u64(self.uuid_flags)?;
        w.u64(self.node_mask)?;
        w.u64(self.bitmap_uuids_mask)?;
        for (i, b) in self.bitmap_uuids.iter().enumerate() {
            if self.bitmap_uuids_mask & (1u64 << i) != 0 {
                w.u64(*b)?;
            }
        }
        let n = usize::from(self.history_count).min(self.history_uuids.len());
        for h in self.history_uuids.iter().take(n) {
            w.u64(*h)?;
        }
        Ok(w.pos())
    }
}

/// Data-packet flag: synchronous request.
pub const DP_RW_SYNC: u32 = 2;
/// Data-packet flag: the receiver may mark the block in sync.
pub const DP_MAY_SET_IN_SYNC: u32 = 4;
/// Data-packet flag: unplug hint.
pub const DP_UNPLUG: u32 = 8;
/// Data-packet flag: FUA.
pub const DP_FUA: u32 = 16;
/// Data-packet flag: preflush.
pub const DP_FLUSH: u32 = 32;
/// Data-packet flag: discard.
pub const DP_DISCARD: u32 = 64;
/// Data-packet flag: send P_RECV_ACK (protocol B).
pub const DP_SEND_RECEIVE_ACK: u32 = 128;
/// Data-packet flag: send P_WRITE_ACK (protocol C).
pub const DP_SEND_WRITE_ACK: u32 = 256;
/// Data-packet flag: write same.
pub const DP_WSAME: u32 = 512;
/// Data-packet flag: write zeroes.
pub const DP_ZEROES: u32 = 1024;

/// `union drbd_state` as sent in P_STATE (bit fields, LSB first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DrbdState(pub u32);

macro_rules! state_fields {
    ($($(#[$m:meta])* $get:ident, $set:ident, $shift:expr, $bits:expr;)*) => {
        impl DrbdState {
            $(
                $(#[$m])*
                pub fn $get(self) -> u32 {
                    (self.0 >> $shift) & ((1u32 << $bits) - 1)
                }
                /// Set the field of the same name (value truncated to its width).
                pub fn $set(&mut self, v: u32) {
                    let mask = ((1u32 << $bits) - 1) << $shift;
                    self.0 = (self.0 & !mask) | ((v << $shift) & mask);
                }
            )*
        }
    };
}

state_fields! {
    /// Role (0 unknown, 1 primary, 2 secondary).
    role, set_role, 0, 2;
    /// Peer role.
    peer, set_peer, 2, 2;
    /// Connection or replication state.
    conn, set_conn, 4, 5;
    /// Local disk state.
    disk, set_disk, 9, 4;
    /// Peer disk state.
    pdsk, set_pdsk, 13, 4;
    /// IO suspended by the user.
    susp, set_susp, 17, 1;
    /// Paused: resync-after dependency.
    aftr_isp, set_aftr_isp, 18, 1;
    /// Paused by the peer.
    peer_isp, set_peer_isp, 19, 1;
    /// Paused by the user.
    user_isp, set_user_isp, 20, 1;
    /// Suspended: no data accessible.
    susp_nod, set_susp_nod, 21, 1;
    /// Suspended: fencing.
    susp_fen, set_susp_fen, 22, 1;
    /// Has quorum.
    quorum, set_quorum, 23, 1;
}

/// Bitmap encoding code in the low nibble of `p_compressed_bm.encoding`.
pub const RLE_VLI_BITS: u8 = 2;

/// Encode `value` (1..=2^56) as a VLI code; returns (code bits, bit count).
pub fn vli_encode(value: u64) -> Option<(u64, u32)> {
    // (total bits, prefix bits, prefix value)
    const LEVELS: [(u32, u32, u64); 10] = [
        (2, 1, 0x00),
        (3, 2, 0x01),
        (5, 3, 0x03),
        (7, 4, 0x07),
        (10, 5, 0x0f),
        (14, 6, 0x1f),
        (21, 8, 0x3f),
        (29, 8, 0x7f),
        (42, 8, 0xbf),
        (64, 8, 0xff),
    ];
    if value == 0 {
        return None;
    }
    let mut adj: u64 = 1;
    for (t, b, v) in LEVELS {
        let span = 1u64 << (t - b);
        let off = value - adj;
        if off < span {
            return Some((v | (off << b), t));
        }
        adj = adj.checked_add(span)?;
    }
    None
}

/// Decode a VLI code from the low bits of `input`; returns (value, bits used).
pub fn vli_decode(input: u64) -> Option<(u64, u32)> {
    const LEVELS: [(u32, u32, u64); 10] = [
        (2, 1, 0x00),
        (3, 2, 0x01),
        (5, 3, 0x03),
        (7, 4, 0x07),
        (10, 5, 0x0f),
        (14, 6, 0x1f),
        (21, 8, 0x3f),
        (29, 8, 0x7f),
        (42, 8, 0xbf),
        (64, 8, 0xff),
    ];
    let mut adj: u64 = 1;
    for (t, b, v) in LEVELS {
        if input & ((1u64 << b) - 1) == v {
            let mask = if t == 64 { u64::MAX } else { (1u64 << t) - 1 };
            return Some((((input & mask) >> b) + adj, t));
        }
        adj += 1u64 << (t - b);
    }
    None
}

/// LSB-first bit writer over a byte slice.
struct BitWriter<'a> {
    buf: &'a mut [u8],
    bit: usize,
}

impl BitWriter<'_> {
    fn put(&mut self, mut val: u64, mut n: u32) -> Option<()> {
        while n > 0 {
            let byte = self.buf.get_mut(self.bit / 8)?;
            let off = (self.bit % 8) as u32;
            let take = (8 - off).min(n);
            let part = (val & ((1u64 << take) - 1)) as u8;
            if off == 0 {
                *byte = 0;
            }
            *byte |= part << off;
            val >>= take;
            n -= take;
            self.bit += take as usize;
        }
        Some(())
    }
}

/// Compress bits `start..total` of `bitmap` (LE u64 words, bit i = word
/// i/64 bit i%64) as P_COMPRESSED_BITMAP payload (encoding byte + code).
/// Returns `(bytes written, next bit offset)`, or `None` when the chunk does
/// not compress (caller sends P_BITMAP instead) or `out` is empty.
pub fn rle_encode(bitmap: &[u64], start: u64, total: u64, out: &mut [u8]) -> Option<(usize, u64)> {
    let bit = |i: u64| -> bool {
        bitmap
            .get((i / 64) as usize)
            .is_some_and(|w| w >> (i % 64) & 1 != 0)
    };
    let (enc, code) = out.split_first_mut()?;
    let mut bw = BitWriter { buf: code, bit: 0 };
    let mut pos = start;
    let first = pos < total && bit(pos);
    let mut cur = first;
    let mut plain_bits = 0u64;
    while pos < total {
        let mut end = pos;
        while end < total && bit(end) == cur {
            end += 1;
        }
        let rl = end - pos;
        let Some((c, n)) = vli_encode(rl) else {
            break;
        };
        let save = bw.bit;
        if bw.put(c, n).is_none() {
            bw.bit = save;
            break;
        }
        plain_bits += rl;
        pos = end;
        cur = !cur;
    }
    let len = bw.bit.div_ceil(8);
    if plain_bits < (len as u64) * 8 || plain_bits == 0 {
        return None;
    }
    let pad = ((8 - bw.bit % 8) % 8) as u8;
    *enc = RLE_VLI_BITS | (pad << 4) | if first { 0x80 } else { 0 };
    Some((len + 1, pos))
}

/// Decode a P_COMPRESSED_BITMAP payload starting at bit `start` of a bitmap
/// of `total` bits, calling `set(first_bit, count)` for every run of ones.
/// Returns the bit offset after the last run.
pub fn rle_decode(
    payload: &[u8],
    start: u64,
    total: u64,
    mut set: impl FnMut(u64, u64),
) -> Result<u64, WireError> {
    let (&enc, code) = payload.split_first().ok_or(WireError::Short)?;
    if enc & 0x0f != RLE_VLI_BITS {
        return Err(WireError::UnknownEncoding);
    }
    let pad = u64::from((enc >> 4) & 7);
    let total_bits = (code.len() as u64 * 8)
        .checked_sub(pad)
        .ok_or(WireError::BadBitmap)?;
    let mut toggle = enc & 0x80 != 0;
    let mut bitpos = 0u64;
    let mut s = start;
    let get = |from: u64| -> u64 {
        // up to 64 bits starting at `from`, zero past the end
        let mut v = 0u64;
        for i in 0..64u64 {
            let b = from + i;
            if b >= total_bits {
                break;
            }
            let byte = code.get((b / 8) as usize).copied().unwrap_or(0);
            v |= u64::from(byte >> (b % 8) & 1) << i;
        }
        v
    };
    while bitpos < total_bits {
        let (rl, n) = vli_decode(get(bitpos)).ok_or(WireError::BadBitmap)?;
        if bitpos + u64::from(n) > total_bits {
            return Err(WireError::BadBitmap);
        }
        let end = s.checked_add(rl).ok_or(WireError::BadBitmap)?;
        if toggle {
            if end > total {
                return Err(WireError::BadBitmap);
            }
            set(s, rl);
        }
        s = end;
        bitpos += u64::from(n);
        toggle = !toggle;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let h = Header {
            kind: HeaderKind::H100,
            cmd: P_DATA,
            length: 4096 + 24,
            volume: 0,
        };
        let mut b = [0u8; 16];
        assert_eq!(h.encode(&mut b), Ok(16));
        assert_eq!(
            b,
            [0x86, 0x20, 0xec, 0x20, 0, 0, 0, 0, 0, 0, 0x10, 0x18, 0, 0, 0, 0]
        );
        assert_eq!(Header::decode(&b), Ok(h));
        b[15] = 1;
        assert_eq!(Header::decode(&b), Err(WireError::BadPad));
        // initial packet: bare h80 with P_INITIAL_DATA
        let h80 = Header {
            kind: HeaderKind::H80,
            cmd: P_INITIAL_DATA,
            length: 0,
            volume: VOLUME_CONNECTION,
        };
        let mut b = [0u8; 8];
        h80.encode(&mut b).unwrap();
        assert_eq!(b, [0x83, 0x74, 0x02, 0x67, 0xff, 0xf2, 0, 0]);
        assert_eq!(Header::decode(&b), Ok(h80));
        let h95 = [0x83, 0x5a, 0x00, 0x04, 0, 1, 0, 0];
        let d = Header::decode(&h95).unwrap();
        assert_eq!(
            (d.kind, d.cmd, d.length),
            (HeaderKind::H95, P_BITMAP, 65536)
        );
        assert_eq!(Header::decode(&[0; 8]), Err(WireError::BadMagic));
        assert_eq!(Header::decode(&[0x86, 0x20]), Err(WireError::Short));
        assert_eq!(
            Header::decode_for_version(&b, 118),
            Err(WireError::WrongHeader)
        );
        let big = Header {
            length: 70000,
            ..h80
        };
        assert_eq!(big.encode(&mut [0u8; 8]), Err(WireError::TooLong));
    }

    #[test]
    fn features() {
        let mine = ConnectionFeatures {
            protocol_min: 118,
            feature_flags: 0x3f,
            protocol_max: 122,
            sender_node_id: 1,
            receiver_node_id: 2,
        };
        let mut b = [0u8; 72];
        assert_eq!(mine.encode(&mut b), Ok(72));
        assert_eq!(&b[..8], &[0, 0, 0, 118, 0, 0, 0, 0x3f]);
        assert_eq!(ConnectionFeatures::decode(&b), Ok(mine));
        let peer = ConnectionFeatures {
            protocol_min: 86,
            feature_flags: 0x0f,
            protocol_max: 124,
            ..mine
        };
        assert_eq!(mine.agree(&peer), Some((122, 0x0f)));
        let old = ConnectionFeatures {
            protocol_min: 86,
            protocol_max: 101,
            ..peer
        };
        assert_eq!(mine.agree(&old), None);
        let weird = ConnectionFeatures {
            protocol_max: 110,
            ..peer
        };
        assert_eq!(mine.agree(&weird), None);
    }

    #[test]
    fn vli_table() {
        // boundaries of each level
        for (v, bits) in [
            (1u64, 2u32),
            (2, 2),
            (3, 3),
            (4, 3),
            (5, 5),
            (8, 5),
            (9, 7),
            (16, 7),
            (17, 10),
            (48, 10),
            (49, 14),
            (304, 14),
            (305, 21),
            (8496, 21),
            (8497, 29),
            (2_105_648, 29),
            (2_105_649, 42),
            (1 << 40, 64),
        ] {
            let (c, n) = vli_encode(v).unwrap();
            assert_eq!(n, bits, "value {v}");
            assert_eq!(vli_decode(c), Some((v, n)));
        }
        assert_eq!(vli_encode(0), None);
        // "0" prefix then one data bit: value 1 is code 0b00, 2 is 0b10
        assert_eq!(vli_encode(1), Some((0b00, 2)));
        assert_eq!(vli_encode(2), Some((0b10, 2)));
        assert_eq!(vli_encode(3), Some((0b001, 3)));
    }

    #[test]
    fn rle_roundtrip_simple() {
        let mut bm = [0u64; 16];
        bm[0] = 0xff00;
        bm[3] = u64::MAX;
        bm[4] = 1;
        let total = 16 * 64;
        let mut out = [0u8; 64];
        let (n, next) = rle_encode(&bm, 0, total, &mut out).unwrap();
        assert_eq!(next, total);
        assert_eq!(out[0] & 0x8f, RLE_VLI_BITS); // starts with a zero run
        let mut back = [0u64; 16];
        let end = rle_decode(&out[..n], 0, total, |s, len| {
            for i in s..s + len {
                back[(i / 64) as usize] |= 1 << (i % 64);
            }
        })
        .unwrap();
        assert_eq!(end, total);
        assert_eq!(back, bm);
        // random-looking data does not compress
        let noisy = [0x5555_5555_5555_5555u64; 4];
        assert_eq!(rle_encode(&noisy, 0, 256, &mut out), None);
        // runs beyond the bitmap are rejected
        assert_eq!(
            rle_decode(&out[..n], 0, 100, |_, _| {}),
            Err(WireError::BadBitmap)
        );
        assert_eq!(
            rle_decode(&[0x01], 0, 100, |_, _| {}),
            Err(WireError::UnknownEncoding)
        );
    }

    #[test]
    fn state_bits() {
        let mut s = DrbdState::default();
        s.set_role(1);
        s.set_conn(10);
        s.set_disk(9);
        s.set_pdsk(9);
        s.set_quorum(1);
        assert_eq!(s.0, 1 | (10 << 4) | (9 << 9) | (9 << 13) | (1 << 23));
        assert_eq!((s.role(), s.conn(), s.disk(), s.quorum()), (1, 10, 9, 1));
    }

    #[test]
    fn uuids_and_protocol() {
        let mut u = Uuids110 {
            current_uuid: 0x1234,
            bitmap_uuids_mask: 0b101,
            history_count: 2,
            ..Uuids110::default()
        };
        u.bitmap_uuids[0] = 7;
        u.bitmap_uuids[2] = 9;
        u.history_uuids[0] = 11;
        u.history_uuids[1] = 12;
        let mut b = [0u8; 1024];
        let n = u.encode(&mut b).unwrap();
        assert_eq!(n, 40 + 2 * 8 + 2 * 8);
        assert_eq!(Uuids110::decode(&b[..n]), Ok(u));
        assert_eq!(Uuids110::decode(&b[..n - 3]), Err(WireError::BadLength));
        let p = Protocol {
            protocol: 3,
            integrity_alg: AlgName::new(b"crc32c").unwrap(),
            ..Protocol::default()
        };
        let n = p.encode(&mut b).unwrap();
        assert_eq!(n, 24 + 7);
        assert_eq!(Protocol::decode(&b[..n]), Ok(p));
        assert_eq!(Protocol::decode(&b[..24]).map(|p| p.protocol), Ok(3));
        assert_eq!(Protocol::decode(&b[..n - 1]), Err(WireError::BadValue));
        assert_eq!(cmd_name(P_TWOPC_COMMIT), "P_TWOPC_COMMIT");
    }
}
