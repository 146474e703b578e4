//! The on-disk bitmap of the v09 meta-data: read into the in-memory out-of-sync map at attach
//! (`drbdmeta apply-al` puts a crashed Primary's activity-log extents there), whole extents
//! set before the activity log forgets an extent that still has marked blocks, every marked
//! block written at detach (so a restart resyncs only those), and cleared once a resync has
//! made both sides equal.
//!
//! Layout (facts of v09): one bit per 4 KiB block per peer slot, slots interleaved in
//! little-endian 32-bit words (`word k * max_peers + slot` holds bits `32k..32k+31` of that
//! slot), starting at `MdLayout::bm_start_sector`. An activity-log extent (4 MiB, 1024 bits)
//! is `128 * max_peers` consecutive bytes. In memory all slots are merged (two nodes).

use crate::oos::OosMap;
use crate::proto::al::BM_BYTES_PER_AL_EXT;
use crate::proto::meta::MdLayout;
use crate::sys::bdev::{BlockDev, MD_BLOCK};
use kernel::prelude::*;
use kernel::sync::{Arc, SpinLock};

/// Where the bitmap of one meta-data area is.
///
/// Lifetime: copied out of the attached backing device; `md` keeps the device open.
pub(crate) struct DiskBitmap {
    /// The meta-data device.
    md: Arc<BlockDev>,
    /// First sector of the bitmap.
    first_sector: u64,
    /// Bytes of bitmap (all slots).
    bytes: u64,
    /// Slots the words are interleaved over.
    max_peers: u32,
}

/// A zeroed heap buffer of one meta-data block (too big for the kernel stack).
pub(crate) fn block_buf() -> Result<KVec<u8>> {
    Ok(KVec::from_elem(0u8, MD_BLOCK, GFP_KERNEL)?)
}

/// The buffer as the block type of the I/O functions.
pub(crate) fn as_block(buf: &mut KVec<u8>) -> Result<&mut [u8; MD_BLOCK]> {
    buf.as_mut_slice().try_into().map_err(|_| EINVAL)
}

impl DiskBitmap {
    /// The bitmap of `layout` on `md`.
    pub(crate) fn new(md: Arc<BlockDev>, layout: &MdLayout, max_peers: u32) -> Self {
        Self {
            md,
            first_sector: layout.bm_start_sector(),
            bytes: layout.bm_bytes,
            max_peers: max_peers.max(1),
        }
    }

    /// The same bitmap at the place `layout` gives it.
    pub(crate) fn moved_to(&self, layout: &MdLayout) -> Self {
        Self::new(self.md.clone(), layout, self.max_peers)
    }

    fn blocks(&self) -> u64 {
        self.bytes.div_ceil(MD_BLOCK as u64)
    }

    fn sector_of(&self, block: u64) -> u64 {
        self.first_sector + block * (MD_BLOCK as u64 / 512)
    }

    /// ORs every slot into `oos`; returns the numbers of the blocks that had bits set.
    pub(crate) fn read_into(&self, oos: &mut OosMap) -> Result<KVec<u64>> {
        let mut buf = block_buf()?;
        let mut dirty = KVec::new();
        let peers = u64::from(self.max_peers);
        for block in 0..self.blocks() {
            self.md
                .read_block(self.sector_of(block), as_block(&mut buf)?)?;
            if buf.iter().all(|b| *b == 0) {
                continue;
            }
            dirty.push(block, GFP_KERNEL)?;
            for (i, w) in buf.chunks_exact(4).enumerate() {
                let word = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                if word == 0 {
                    continue;
                }
                let global = block * (MD_BLOCK as u64 / 4) + i as u64;
                let base = (global / peers) * 32;
                for b in 0..32u64 {
                    if word & (1 << b) != 0 {
                        oos.set_bit(base + b);
                    }
                }
            }
        }
        Ok(dirty)
    }

    /// Sets every bit of activity-log extent `extent` in every slot (durable on return);
    /// returns the blocks written.
    pub(crate) fn mark_extent(&self, extent: u32) -> Result<KVec<u64>> {
        let len = BM_BYTES_PER_AL_EXT * u64::from(self.max_peers);
        let start = u64::from(extent) * len;
        let end = (start + len).min(self.bytes);
        let mut written = KVec::new();
        let mut buf = block_buf()?;
        let mut at = start;
        while at < end {
            let block = at / MD_BLOCK as u64;
            let from = (at % MD_BLOCK as u64) as usize;
            let to = ((end - block * MD_BLOCK as u64).min(MD_BLOCK as u64)) as usize;
            let b = as_block(&mut buf)?;
            self.md.read_block(self.sector_of(block), b)?;
            if let Some(range) = b.get_mut(from..to) {
                range.fill(0xff);
            }
            self.md.write_block(self.sector_of(block), b)?;
            written.push(block, GFP_KERNEL)?;
            at = (block + 1) * MD_BLOCK as u64;
        }
        Ok(written)
    }

    /// Sets every block marked in `oos` in every slot (bits already set stay); returns the
    /// bitmap blocks written. Durable on return.
    pub(crate) fn merge_from(&self, oos: &SpinLock<OosMap>) -> Result<KVec<u64>> {
        let mut disk = block_buf()?;
        let mut wanted = block_buf()?;
        let mut written = KVec::new();
        let peers = u64::from(self.max_peers);
        let words_per_block = (MD_BLOCK / 4) as u64;
        for block in 0..self.blocks() {
            let mut any = false;
            {
                let map = oos.lock();
                for (i, w) in wanted.chunks_exact_mut(4).enumerate() {
                    let global = block * words_per_block + i as u64;
                    let word = map.word32((global / peers) * 32);
                    any |= word != 0;
                    w.copy_from_slice(&word.to_le_bytes());
                }
            }
            if !any {
                continue;
            }
            let d = as_block(&mut disk)?;
            self.md.read_block(self.sector_of(block), d)?;
            let mut changed = false;
            for (o, n) in d.iter_mut().zip(wanted.iter()) {
                changed |= *o | *n != *o;
                *o |= *n;
            }
            if changed {
                self.md.write_block(self.sector_of(block), d)?;
                written.push(block, GFP_KERNEL)?;
            }
        }
        Ok(written)
    }

    /// Zeroes the given blocks (durable on return).
    pub(crate) fn clear_blocks(&self, blocks: &[u64]) -> Result {
        let mut buf = block_buf()?;
        let b = as_block(&mut buf)?;
        for &block in blocks {
            if block < self.blocks() {
                self.md.write_block(self.sector_of(block), b)?;
            }
        }
        Ok(())
    }
}
