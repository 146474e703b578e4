//! Online verify (`drbdsetup verify`): the packets of DRBD 9's exchange and the planning of
//! the request ranges.
//!
//! The verify source (`VerifyS`) sends `P_OV_REQUEST` (`p_block_req`, block id
//! [`ID_SYNCER`]) for each 4 KiB block of the range on the data stream. The target
//! (`VerifyT`) reads its block, hashes it with `verify-alg` and answers `P_OV_REPLY`
//! (`p_block_req` + digest) on the data stream. The source hashes its own block, marks it out
//! of sync if the digests differ and tells the target with `P_OV_RESULT` (`p_block_ack`,
//! block id [`ID_IN_SYNC`] or [`ID_OUT_OF_SYNC`]) on the meta stream. Different blocks are
//! only marked, never resynced by the verify itself.

use super::codec::Writer;
use super::wire::{BlockAck, BlockReq, WireError};

/// Block id of resync and verify requests (`ID_SYNCER`).
pub const ID_SYNCER: u64 = u64::MAX;
/// `P_OV_RESULT` block id: the block is equal on both sides.
pub const ID_IN_SYNC: u64 = 4711;
/// `P_OV_RESULT` block id: the block differs.
pub const ID_OUT_OF_SYNC: u64 = 4712;
/// Bytes one verify request covers (one bitmap bit, as DRBD).
pub const OV_BLOCK_BYTES: u32 = 4096;
/// Sectors one verify request covers.
pub const OV_BLOCK_SECTORS: u64 = OV_BLOCK_BYTES as u64 / 512;
/// Longest digest carried in `P_OV_REPLY` (sha512).
pub const MAX_DIGEST: usize = 64;

/// The sectors a verify covers: `[start, stop)`, `start` rounded down to a 4 KiB block,
/// `stop` clamped to the device (DRBD's `--stop` default is "to the end").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OvRange {
    /// First sector (block aligned).
    pub start: u64,
    /// One past the last sector.
    pub stop: u64,
}

impl OvRange {
    /// The range of `--start`/`--stop` on a device of `capacity` sectors; `None` if empty.
    pub fn new(start: u64, stop: u64, capacity: u64) -> Option<OvRange> {
        let start = start & !(OV_BLOCK_SECTORS - 1);
        let stop = stop.min(capacity);
        (start < stop).then_some(OvRange { start, stop })
    }

    /// Sectors in the range.
    pub fn sectors(&self) -> u64 {
        self.stop - self.start
    }

    /// The requests: `(sector, bytes)` per block, the last one possibly shorter.
    pub fn requests(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        let stop = self.stop;
        (self.start..stop)
            .step_by(OV_BLOCK_SECTORS as usize)
            .map(move |s| (s, ((stop - s).min(OV_BLOCK_SECTORS) * 512) as u32))
    }
}

/// Checks a request or reply from the peer: a non-empty multiple of 512 bytes, at most one
/// verify block, inside a device of `capacity` sectors.
pub fn check_request(req: &BlockReq, capacity: u64) -> Result<(), WireError> {
    let sectors = u64::from(req.blksize) / 512;
    if req.blksize == 0 || req.blksize % 512 != 0 || req.blksize > OV_BLOCK_BYTES {
        return Err(WireError::BadValue);
    }
    match req.sector.checked_add(sectors) {
        Some(end) if end <= capacity => Ok(()),
        _ => Err(WireError::BadValue),
    }
}

/// The `P_OV_REQUEST` payload for one block.
pub fn request(sector: u64, bytes: u32) -> BlockReq {
    BlockReq {
        sector,
        block_id: ID_SYNCER,
        blksize: bytes,
    }
}

/// `P_OV_REPLY`: the request it answers and the target's digest of the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OvReply<'a> {
    /// The request (echoed).
    pub req: BlockReq,
    /// Digest of the target's block (length depends on `verify-alg`).
    pub digest: &'a [u8],
}

impl<'a> OvReply<'a> {
    /// Decodes a reply; a digest that is empty or longer than [`MAX_DIGEST`] is malformed.
    pub fn decode(buf: &'a [u8]) -> Result<Self, WireError> {
        let req = BlockReq::decode(buf)?;
        let digest = buf.get(BlockReq::SIZE..).ok_or(WireError::Short)?;
        if digest.is_empty() || digest.len() > MAX_DIGEST {
            return Err(WireError::BadValue);
        }
        Ok(OvReply { req, digest })
    }

    /// Encodes into `out`; returns bytes written.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        if self.digest.is_empty() || self.digest.len() > MAX_DIGEST {
            return Err(WireError::BadValue);
        }
        let n = self.req.encode(out)?;
        let mut w = Writer::new(out.get_mut(n..).ok_or(WireError::Short)?);
        w.bytes(self.digest)?;
        Ok(n + w.pos())
    }
}

/// The `P_OV_RESULT` for a compared block.
pub fn result(req: &BlockReq, equal: bool) -> BlockAck {
    BlockAck {
        sector: req.sector,
        block_id: if equal { ID_IN_SYNC } else { ID_OUT_OF_SYNC },
        blksize: req.blksize,
        seq_num: 0,
    }
}

/// Decodes a `P_OV_RESULT`: the block and whether it differs; an unknown block id is
/// malformed.
pub fn decode_result(buf: &[u8]) -> Result<(BlockAck, bool), WireError> {
    let ack = BlockAck::decode(buf)?;
    match ack.block_id {
        ID_IN_SYNC => Ok((ack, false)),
        ID_OUT_OF_SYNC => Ok((ack, true)),
        _ => Err(WireError::BadValue),
    }
}

/// Whether two digests say the blocks are equal (a length mismatch means different
/// algorithms: never equal).
pub fn digests_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Longest name of a digest accepted as `verify-alg` (DRBD's `SHARED_SECRET_MAX`).
pub const MAX_ALG_NAME: usize = 63;

/// The kernel crypto name of `verify-alg` `alg`, NUL terminated in `out`; `None` for an empty
/// or unusable name. Returns the length with the NUL.
pub fn digest_name(alg: &[u8], out: &mut [u8; MAX_ALG_NAME + 1]) -> Option<usize> {
    let ok = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'(' | b')');
    if alg.is_empty() || alg.len() > MAX_ALG_NAME || !alg.iter().all(ok) {
        return None;
    }
    out.get_mut(..alg.len())?.copy_from_slice(alg);
    *out.get_mut(alg.len())? = 0;
    Some(alg.len() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_rounds_and_clamps() {
        assert_eq!(
            OvRange::new(9, u64::MAX, 100),
            Some(OvRange {
                start: 8,
                stop: 100
            })
        );
        assert_eq!(OvRange::new(104, u64::MAX, 100), None);
        assert_eq!(OvRange::new(0, 0, 100), None);
        let r = OvRange::new(0, 20, 100).expect("range");
        let mut reqs = [(0u64, 0u32); 3];
        for (slot, r) in reqs.iter_mut().zip(r.requests()) {
            *slot = r;
        }
        assert_eq!(reqs, [(0, 4096), (8, 4096), (16, 2048)]);
        assert_eq!(r.requests().count(), 3);
        assert_eq!(r.sectors(), 20);
        let full = OvRange::new(0, u64::MAX, 65536).expect("range");
        assert_eq!(full.requests().count(), 8192);
    }

    #[test]
    fn request_checks() {
        assert!(check_request(&request(0, 4096), 8).is_ok());
        assert!(check_request(&request(8, 4096), 8).is_err());
        assert!(check_request(&request(0, 0), 8).is_err());
        assert!(check_request(&request(0, 513), 8).is_err());
        assert!(check_request(&request(0, 8192), 16).is_err());
        assert!(check_request(&request(u64::MAX - 1, 4096), u64::MAX).is_err());
    }

    #[test]
    fn reply_roundtrip_and_malformed() {
        let d = [7u8; 20];
        let r = OvReply {
            req: request(16, 4096),
            digest: &d,
        };
        let mut buf = [0u8; 128];
        let n = r.encode(&mut buf).expect("encode");
        assert_eq!(n, 24 + 20);
        assert_eq!(OvReply::decode(&buf[..n]), Ok(r));
        // p_block_req layout: sector, block_id, blksize, pad.
        assert_eq!(&buf[..8], &16u64.to_be_bytes());
        assert_eq!(&buf[8..16], &u64::MAX.to_be_bytes());
        assert_eq!(&buf[16..20], &4096u32.to_be_bytes());
        assert_eq!(OvReply::decode(&buf[..24]), Err(WireError::BadValue));
        assert_eq!(OvReply::decode(&buf[..10]), Err(WireError::Short));
        assert!(OvReply::decode(&[0u8; 24 + 65]).is_err());
        let mut small = [0u8; 30];
        assert!(r.encode(&mut small).is_err());
        let empty = OvReply {
            req: request(0, 4096),
            digest: &[],
        };
        assert!(empty.encode(&mut buf).is_err());
    }

    #[test]
    fn results() {
        let req = request(24, 4096);
        let mut buf = [0u8; 24];
        result(&req, true).encode(&mut buf).expect("encode");
        assert_eq!(&buf[8..16], &4711u64.to_be_bytes());
        assert_eq!(decode_result(&buf).map(|r| r.1), Ok(false));
        result(&req, false).encode(&mut buf).expect("encode");
        assert_eq!(
            decode_result(&buf).map(|r| (r.0.sector, r.1)),
            Ok((24, true))
        );
        buf[15] = 1;
        assert_eq!(decode_result(&buf), Err(WireError::BadValue));
        assert_eq!(decode_result(&buf[..5]), Err(WireError::Short));
    }

    #[test]
    fn digest_compare_and_names() {
        assert!(digests_equal(b"abcd", b"abcd"));
        assert!(!digests_equal(b"abcd", b"abce"));
        assert!(!digests_equal(b"abcd", b"abc"));
        let mut out = [0u8; MAX_ALG_NAME + 1];
        assert_eq!(digest_name(b"sha1", &mut out), Some(5));
        assert_eq!(&out[..5], b"sha1\0");
        assert_eq!(digest_name(b"", &mut out), None);
        assert_eq!(digest_name(b"a b", &mut out), None);
        assert_eq!(digest_name(&[b'a'; 64], &mut out), None);
        assert!(digest_name(&[b'a'; 63], &mut out).is_some());
    }
}
