//! Moving internal meta-data to the end of a grown backing device, so that `resize` can use
//! the new space (on the node that runs it, and on a peer that learns from its `P_SIZES`
//! that the other side offers more).
//!
//! The plan is `proto::resize::plan_relocation`. The activity log and the bitmap are copied
//! to their new place while the log's writer is held off (`ActivityLog::move_place`), the new
//! superblock, written last, makes the new layout valid, and the old one is wiped. The size
//! of the device does not change here: `resize` decides that afterwards. Application I/O goes
//! on meanwhile: it stays below the old data size, which the new place lies beyond.

use crate::backing::Backing;
use crate::bitmap_io::{as_block, block_buf};
use crate::device::Device;
use crate::failure::{fail, Outcome};
use crate::proto::meta::{MdIndex, MdLayout};
use crate::proto::resize::{plan_relocation, RelocError, Relocation};
use crate::spec::generated::ret;
use crate::sys::bdev::{BlockDev, MD_BLOCK};
use kernel::prelude::*;

/// Sectors per meta-data block.
const BLOCK_SECTORS: u64 = (MD_BLOCK / 512) as u64;

/// Moves the internal meta-data of `dev` to the end of its backing device if that grew;
/// returns whether it moved. Process context, no device lock held.
pub(crate) fn follow_backing(dev: &Device) -> Outcome<bool> {
    let log = dev.io.lock().al.clone();
    let mut st = dev.state.lock();
    let b = st
        .backing
        .as_mut()
        .ok_or_else(|| fail!(ret::ERR_NO_DISK, "drbd{} has no disk", dev.minor))?;
    if b.layout.index != MdIndex::Internal {
        return Ok(false);
    }
    let capacity = b.data.sectors();
    let new =
        b.sb.layout(MdIndex::Internal, capacity, capacity)
            .map_err(|e| fail!(ret::ERR_MD_DISK_TOO_SMALL, "{}", e.message()))?;
    let plan = match plan_relocation(&b.layout, &new) {
        Ok(plan) => plan,
        Err(RelocError::NotInternal | RelocError::NotGrown) => return Ok(false),
        Err(RelocError::Overlap) => {
            return Err(fail!(
                ret::ERR_MD_DISK_TOO_SMALL,
                "drbd{}: the backing device grew by {} KiB, less than the meta-data needs ({} KiB) to move without overwriting itself; grow it further",
                dev.minor,
                (new.md_offset - b.layout.md_offset) / 2,
                (b.layout.md_offset + BLOCK_SECTORS - b.layout.bm_start_sector()) / 2
            ))
        }
    };
    // The data area stays as it is until `resize` grows it.
    if b.disk_size == 0 {
        b.disk_size = b.data_sectors();
    }
    let moved = match log {
        Some(log) => log.move_place(&new, || move_to(b, &new, &plan)),
        None => move_to(b, &new, &plan),
    };
    moved.map_err(|e| {
        fail!(
            ret::ERR_IO_MD_DISK,
            "drbd{}: moving the meta-data failed with {}; it stays where it was",
            dev.minor,
            e.to_errno()
        )
    })?;
    pr_info!(
        "drbd{}: internal meta-data moved to the end of the grown backing device (superblock at sector {}, {} KiB offered)\n",
        dev.minor,
        new.md_offset,
        new.data_sectors / 2
    );
    Ok(true)
}

/// Copies the activity log and the bitmap to the place of `new`, then switches `b` to it and
/// writes the superblock there. On an error before that write, `b` keeps the old layout,
/// whose copy on disk is untouched.
fn move_to(b: &mut Backing, new: &MdLayout, plan: &Relocation) -> Result {
    let md = b.md_dev();
    copy_blocks(&md, plan.al_from, plan.al_to, plan.al_sectors)?;
    let bitmap_sectors = plan.bitmap_bytes.div_ceil(MD_BLOCK as u64) * BLOCK_SECTORS;
    copy_blocks(&md, plan.bitmap_from, plan.bitmap_to, bitmap_sectors)?;
    // The bits of the new blocks start clear: `resize` marks the grown area itself.
    let bitmap_end = plan.bitmap_to
        + (plan.bitmap_bytes / 512 + plan.bitmap_rest_sectors).next_multiple_of(BLOCK_SECTORS);
    zero_blocks(&md, plan.bitmap_to + bitmap_sectors, bitmap_end)?;
    let old = b.layout;
    let old_fields = (b.sb.md_size_sect, b.sb.al_offset, b.sb.bm_offset);
    b.sb.adopt_layout(new);
    b.layout = *new;
    if b.write_superblock().is_err() {
        (b.sb.md_size_sect, b.sb.al_offset, b.sb.bm_offset) = old_fields;
        b.layout = old;
        return Err(EIO);
    }
    // The old superblock now lies in the data area: no tool may take it for the real one.
    zero_blocks(&md, old.md_offset, old.md_offset + BLOCK_SECTORS)
}

/// Copies `sectors` (whole blocks) from `from` to `to` on `md`, block by block.
fn copy_blocks(md: &BlockDev, from: u64, to: u64, sectors: u64) -> Result {
    let mut buf = block_buf()?;
    let block = as_block(&mut buf)?;
    for at in (0..sectors).step_by(BLOCK_SECTORS as usize) {
        md.read_block(from + at, block)?;
        md.write_block(to + at, block)?;
    }
    Ok(())
}

/// Zeroes the blocks of sectors `[from, to)` on `md`.
fn zero_blocks(md: &BlockDev, from: u64, to: u64) -> Result {
    let mut buf = block_buf()?;
    let block = as_block(&mut buf)?;
    for at in (from..to).step_by(BLOCK_SECTORS as usize) {
        md.write_block(at, block)?;
    }
    Ok(())
}
