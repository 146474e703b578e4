//! Netlink, genl and DRBD message framing as plain bytes (no socket), so
//! requests can be checked byte for byte in tests.

use genl_spec::generated::{
    cfg_context, cfg_reply, tla, AttrSet, AttrType, Member, FAMILY_VERSION, GENLA_F_MANDATORY,
};
use genl_spec::nla::{self, DrbdHeader, GenlHeader, NlaError, NlaWriter};

/// Size of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;
/// NLMSG_NOOP.
pub const NLMSG_NOOP: u16 = 1;
/// NLMSG_ERROR (also carries ACKs with error 0).
pub const NLMSG_ERROR: u16 = 2;
/// NLMSG_DONE: end of a dump.
pub const NLMSG_DONE: u16 = 3;
/// NLM_F_REQUEST.
pub const NLM_F_REQUEST: u16 = 1;
/// NLM_F_MULTI.
pub const NLM_F_MULTI: u16 = 2;
/// NLM_F_ACK.
pub const NLM_F_ACK: u16 = 4;
/// NLM_F_DUMP (ROOT | MATCH).
pub const NLM_F_DUMP: u16 = 0x300;

/// One netlink message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NlMsg {
    /// nlmsg_type (family id for data messages).
    pub ty: u16,
    /// nlmsg_flags.
    pub flags: u16,
    /// nlmsg_seq.
    pub seq: u32,
    /// nlmsg_pid.
    pub pid: u32,
    /// Everything after the netlink header.
    pub payload: Vec<u8>,
}

impl NlMsg {
    /// A family message (not NOOP/ERROR/DONE/OVERRUN).
    pub fn is_data(&self) -> bool {
        self.ty >= 16
    }

    /// For NLMSG_ERROR: the (negative) error, 0 for an ACK.
    pub fn error_code(&self) -> Option<i32> {
        if self.ty != NLMSG_ERROR {
            return None;
        }
        let b = self.payload.get(..4)?;
        Some(i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Encodes the message (header included, padded to 4).
    pub fn to_bytes(&self) -> Vec<u8> {
        let len = NLMSG_HDRLEN + self.payload.len();
        let mut v = Vec::with_capacity(nla::align(len));
        v.extend_from_slice(&(len as u32).to_ne_bytes());
        v.extend_from_slice(&self.ty.to_ne_bytes());
        v.extend_from_slice(&self.flags.to_ne_bytes());
        v.extend_from_slice(&self.seq.to_ne_bytes());
        v.extend_from_slice(&self.pid.to_ne_bytes());
        v.extend_from_slice(&self.payload);
        v.resize(nla::align(len), 0);
        v
    }
}

/// Splits a datagram into netlink messages.
pub fn parse_nlmsgs(mut data: &[u8]) -> Result<Vec<NlMsg>, &'static str> {
    let mut out = Vec::new();
    while data.len() >= NLMSG_HDRLEN {
        let u32_at =
            |o: usize| u32::from_ne_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
        let len = u32_at(0) as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err("bad nlmsg_len");
        }
        out.push(NlMsg {
            ty: u16::from_ne_bytes([data[4], data[5]]),
            flags: u16::from_ne_bytes([data[6], data[7]]),
            seq: u32_at(8),
            pid: u32_at(12),
            payload: data[NLMSG_HDRLEN..len].to_vec(),
        });
        data = data.get(nla::align(len)..).unwrap_or(&[]);
    }
    Ok(out)
}

/// A DRBD request before framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// genl command.
    pub cmd: u8,
    /// drbd_genlmsghdr.minor.
    pub minor: u32,
    /// drbd_genlmsghdr.flags.
    pub flags: u32,
    /// Top-level attributes.
    pub attrs: Vec<u8>,
}

impl Request {
    /// genlmsghdr + drbd_genlmsghdr + attributes.
    pub fn genl_payload(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(12 + self.attrs.len());
        v.extend_from_slice(
            &GenlHeader {
                cmd: self.cmd,
                version: FAMILY_VERSION,
            }
            .to_bytes(),
        );
        v.extend_from_slice(&DrbdHeader::request(self.minor, self.flags).to_bytes());
        v.extend_from_slice(&self.attrs);
        v
    }

    /// The complete netlink message.
    pub fn to_nlmsg(&self, family: u16, flags: u16, seq: u32, pid: u32) -> NlMsg {
        NlMsg {
            ty: family,
            flags,
            seq,
            pid,
            payload: self.genl_payload(),
        }
    }
}

/// A decoded DRBD reply, dump record or notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// genl command.
    pub cmd: u8,
    /// drbd_genlmsghdr.minor.
    pub minor: u32,
    /// drbd_genlmsghdr.ret_code.
    pub ret_code: i32,
    /// Top-level attributes.
    pub attrs: Vec<u8>,
}

impl Reply {
    /// Parses the payload of a family message.
    pub fn parse(payload: &[u8]) -> Result<Reply, NlaError> {
        let (g, rest) = GenlHeader::parse(payload)?;
        let (d, attrs) = DrbdHeader::parse(rest)?;
        Ok(Reply {
            cmd: g.cmd,
            minor: d.minor,
            ret_code: d.ret_code(),
            attrs: attrs.to_vec(),
        })
    }

    /// The `info_text` lines of the CFG_REPLY attribute.
    pub fn info_text(&self) -> Vec<String> {
        let Ok(Some(reply)) = nla::find(&self.attrs, tla::CFG_REPLY) else {
            return Vec::new();
        };
        nla::iter(reply.payload)
            .filter_map(Result::ok)
            .filter(|a| a.kind == cfg_reply::INFO_TEXT)
            .filter_map(|a| {
                // Be lenient: show the text even without its NUL.
                let end = a
                    .payload
                    .iter()
                    .position(|b| *b == 0)
                    .unwrap_or(a.payload.len());
                Some(String::from_utf8_lossy(a.payload.get(..end)?).into_owned())
            })
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// Value of one option set member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Flags.
    Flag(bool),
    /// u32 members.
    U32(u32),
    /// s32 members.
    S32(i32),
    /// u64 members.
    U64(u64),
    /// Strings.
    Str(String),
    /// Binaries (socket addresses).
    Bytes(Vec<u8>),
}

/// Attribute type with DRBD's mandatory bit where the spec asks for it.
pub fn wire_kind(m: &Member) -> u16 {
    if m.mandatory {
        m.nr | GENLA_F_MANDATORY
    } else {
        m.nr
    }
}

/// Appends one member.
pub fn put_value(w: &mut NlaWriter<'_>, m: &Member, v: &Value) -> Result<(), NlaError> {
    let k = wire_kind(m);
    match (m.ty, v) {
        (AttrType::Flag, Value::Flag(b)) => w.put_flag(k, *b),
        (AttrType::U32, Value::U32(x)) => w.put_u32(k, *x),
        (AttrType::S32, Value::S32(x)) => w.put_i32(k, *x),
        (AttrType::U64, Value::U64(x)) => w.put_u64(k, *x),
        (AttrType::String, Value::Str(s)) => w.put_str(k, s),
        (AttrType::Binary, Value::Bytes(b)) => w.put_bytes(k, b),
        // A mismatch is a programming error in the caller; send it as is so
        // the kernel's validation reports it.
        (_, Value::U32(x)) => w.put_u32(k, *x),
        (_, Value::S32(x)) => w.put_i32(k, *x),
        (_, Value::U64(x)) => w.put_u64(k, *x),
        (_, Value::Flag(b)) => w.put_flag(k, *b),
        (_, Value::Str(s)) => w.put_str(k, s),
        (_, Value::Bytes(b)) => w.put_bytes(k, b),
    }
}

/// The object a request names (CFG_CONTEXT).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ctx {
    /// Resource name.
    pub resource: Option<String>,
    /// Volume.
    pub volume: Option<u32>,
    /// Peer node id.
    pub peer_node_id: Option<u32>,
    /// Local address (raw sockaddr).
    pub my_addr: Option<Vec<u8>>,
    /// Peer address (raw sockaddr).
    pub peer_addr: Option<Vec<u8>>,
}

/// Builder of the top-level attributes of a request.
pub struct AttrsBuilder {
    buf: Vec<u8>,
    len: usize,
}

impl Default for AttrsBuilder {
    fn default() -> Self {
        AttrsBuilder {
            buf: vec![0; 1 << 16],
            len: 0,
        }
    }
}

impl AttrsBuilder {
    fn with(
        &mut self,
        f: impl FnOnce(&mut NlaWriter<'_>) -> Result<(), NlaError>,
    ) -> Result<(), NlaError> {
        let mut w = NlaWriter {
            buf: &mut self.buf,
            len: self.len,
        };
        f(&mut w)?;
        self.len = w.len;
        Ok(())
    }

    /// Adds the CFG_CONTEXT nest.
    pub fn context(&mut self, ctx: &Ctx) -> Result<(), NlaError> {
        let set = &cfg_context::SET;
        let m = |nr| set.member(nr).map(wire_kind).unwrap_or(nr);
        self.with(|w| {
            let mark = w.nest_start(tla::CFG_CONTEXT)?;
            if let Some(r) = &ctx.resource {
                w.put_str(m(cfg_context::CTX_RESOURCE_NAME), r)?;
            }
            if let Some(v) = ctx.volume {
                w.put_u32(m(cfg_context::CTX_VOLUME), v)?;
            }
            if let Some(p) = ctx.peer_node_id {
                w.put_u32(m(cfg_context::CTX_PEER_NODE_ID), p)?;
            }
            if let Some(a) = &ctx.my_addr {
                w.put_bytes(m(cfg_context::CTX_MY_ADDR), a)?;
            }
            if let Some(a) = &ctx.peer_addr {
                w.put_bytes(m(cfg_context::CTX_PEER_ADDR), a)?;
            }
            w.nest_end(mark)
        })
    }

    /// Adds the nest of an option set with the given member values.
    pub fn set(&mut self, set: &AttrSet, values: &[(&Member, Value)]) -> Result<(), NlaError> {
        self.with(|w| {
            let mark = w.nest_start(set.tla)?;
            for (m, v) in values {
                put_value(w, m, v)?;
            }
            w.nest_end(mark)
        })
    }

    /// Appends raw bytes (for deliberately malformed messages).
    pub fn raw(&mut self, bytes: &[u8]) -> Result<(), NlaError> {
        self.with(|w| w.put_raw(bytes))
    }

    /// The attributes built so far.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.truncate(self.len);
        self.buf
    }
}
