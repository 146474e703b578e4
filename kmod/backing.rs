//! The backing disk of an attached device and its v09 meta-data (layout and superblock rules
//! come from `proto::meta`; this file only does the I/O and maps errors to DRBD's codes).

use crate::activity_log::ActivityLog;
use crate::failure::{fail, Outcome};
use crate::options::OptionSet;
use crate::proto::meta::{self, MdIndex, MdLayout, Superblock};
use crate::spec::generated::{disk_conf, ret, DiskState};
use crate::sys::bdev::{BlockDev, MD_BLOCK};
use crate::sys::thread::KThread;
use kernel::prelude::*;
use kernel::sync::Arc;

/// Holder for exclusive opens of meta-data devices: one external meta-data device may carry
/// the indexed meta-data of several minors, so all of them share this holder.
static META_HOLDER: u8 = 0;

/// Where and how a device was asked to attach (`DISK_CONF`).
pub(crate) struct AttachRequest<'a> {
    /// Backing device path.
    pub(crate) backing_dev: &'a str,
    /// Meta-data device path (equal to `backing_dev` for internal meta-data).
    pub(crate) meta_dev: &'a str,
    /// DRBD's meta-dev-idx (-1/-3 internal, -2 flexible external, N indexed).
    pub(crate) meta_dev_idx: i32,
    /// Requested device size in sectors (`--size`); 0 = all the backing device offers.
    pub(crate) disk_size: u64,
}

/// An attached backing disk with its meta-data.
///
/// Lifetime: owned by `DeviceState::backing` from attach to detach; the I/O path holds extra
/// references to `data` only while requests are in flight.
pub(crate) struct Backing {
    /// The data device.
    pub(crate) data: Arc<BlockDev>,
    /// Separate meta-data device; `None` when the meta-data is internal.
    meta: Option<Arc<BlockDev>>,
    /// Meta-data placement.
    pub(crate) layout: MdLayout,
    /// In-memory copy of the superblock (written back with `write_superblock`).
    pub(crate) sb: KBox<Superblock>,
    /// DRBD's meta-dev-idx as configured (reported back by `show`).
    pub(crate) meta_dev_idx: i32,
    /// Requested device size in sectors (`--size`); 0 = all the backing device offers.
    pub(crate) disk_size: u64,
    /// The other disk options as configured (reported by `show`).
    pub(crate) disk_conf: OptionSet,
    /// The activity log and its writer thread (stopped at detach, after draining).
    pub(crate) al: Option<(Arc<ActivityLog>, KThread)>,
}

impl Backing {
    /// `disk-flushes` (default on): epochs are flushed to this disk before their ack.
    pub(crate) fn flushes_enabled(&self) -> bool {
        self.disk_conf.flag(disk_conf::DISK_FLUSHES).unwrap_or(true)
    }

    /// The write-ordering method this disk allows (DRBD's numbers: 0 none, 1 drain,
    /// 2 flush). Epochs are always drained; `disk-drain no` only changes what is reported.
    pub(crate) fn write_ordering(&self) -> u32 {
        if self.flushes_enabled() {
            2
        } else if self.disk_conf.flag(disk_conf::DISK_DRAIN).unwrap_or(true) {
            1
        } else {
            0
        }
    }
}

/// Name of a write-ordering method, as the kernel log and `status` show it.
pub(crate) fn write_ordering_name(method: u32) -> &'static str {
    match method {
        0 => "none",
        1 => "drain",
        _ => "flush",
    }
}

/// An empty store of disk options (devices, index and size are kept by [`Backing`] itself).
pub(crate) fn disk_conf_store() -> OptionSet {
    OptionSet::new(
        &disk_conf::SET,
        &[
            disk_conf::BACKING_DEV,
            disk_conf::META_DEV,
            disk_conf::META_DEV_IDX,
            disk_conf::DISK_SIZE,
        ],
    )
}

fn open_error(code: i32, what: &str, path: &str, e: Error) -> crate::failure::Failure {
    if e == EBUSY {
        let busy = if code == ret::ERR_OPEN_DISK {
            ret::ERR_BDCLAIM_DISK
        } else {
            ret::ERR_BDCLAIM_MD_DISK
        };
        return fail!(
            busy,
            "{} {} is in use (mounted or claimed by another driver)",
            what,
            path
        );
    }
    fail!(code, "open(\"{}\") failed with {}", path, e.to_errno())
}

fn superblock_sector(index: MdIndex, md_dev_sectors: u64) -> Outcome<u64> {
    match index {
        MdIndex::Internal => {
            let aligned = md_dev_sectors & !7;
            aligned
                .checked_sub(8)
                .ok_or_else(|| fail!(ret::ERR_DISK_TOO_SMALL, "device has no room for meta-data"))
        }
        MdIndex::FlexExternal => Ok(0),
        MdIndex::Indexed(n) => {
            let start = u64::from(n) * meta::MD_INDEXED_SLOT_SECT;
            if start + meta::MD_INDEXED_SLOT_SECT > md_dev_sectors {
                return Err(fail!(
                    ret::ERR_MD_DISK_TOO_SMALL,
                    "meta-data index {} does not fit on the meta device",
                    n
                ));
            }
            Ok(start)
        }
    }
}

impl Backing {
    /// Opens the devices, reads and validates the superblock, and claims it for `node_id`.
    pub(crate) fn open(
        req: &AttachRequest<'_>,
        holder: *const core::ffi::c_void,
        node_id: u32,
    ) -> Outcome<Self> {
        let index = MdIndex::from_raw(req.meta_dev_idx).map_err(|_| {
            fail!(
                ret::ERR_MD_IDX_INVALID,
                "invalid meta-data index {}",
                req.meta_dev_idx
            )
        })?;
        if index == MdIndex::Internal && req.meta_dev != req.backing_dev {
            return Err(fail!(
                ret::ERR_MD_IDX_INVALID,
                "internal meta-data must be on the backing device"
            ));
        }
        if index != MdIndex::Internal && req.meta_dev == req.backing_dev {
            return Err(fail!(
                ret::ERR_MD_IDX_INVALID,
                "external meta-data must be on another device"
            ));
        }
        let data = BlockDev::open(req.backing_dev, holder)
            .map_err(|e| open_error(ret::ERR_OPEN_DISK, "backing device", req.backing_dev, e))?;
        let data = Arc::new(data, GFP_KERNEL).map_err(|_| fail!(ret::ERR_NOMEM))?;
        let meta = if index == MdIndex::Internal {
            None
        } else {
            let holder = core::ptr::addr_of!(META_HOLDER).cast();
            let m = BlockDev::open(req.meta_dev, holder)
                .map_err(|e| open_error(ret::ERR_OPEN_MD_DISK, "meta device", req.meta_dev, e))?;
            Some(Arc::new(m, GFP_KERNEL).map_err(|_| fail!(ret::ERR_NOMEM))?)
        };
        let md_dev = meta.as_ref().unwrap_or(&data);
        let md_dev_sectors = md_dev.sectors();
        let sb_sector = superblock_sector(index, md_dev_sectors)?;

        let mut block =
            KVec::from_elem(0u8, MD_BLOCK, GFP_KERNEL).map_err(|_| fail!(ret::ERR_NOMEM))?;
        let block_ref: &mut [u8; MD_BLOCK] = block
            .as_mut_slice()
            .try_into()
            .map_err(|_| fail!(ret::ERR_NOMEM))?;
        md_dev.read_block(sb_sector, block_ref).map_err(|e| {
            fail!(
                ret::ERR_IO_MD_DISK,
                "reading the superblock failed with {}",
                e.to_errno()
            )
        })?;
        let sb = Superblock::decode(block_ref).map_err(md_invalid)?;
        let layout = meta::md_layout(
            index,
            data.sectors(),
            md_dev_sectors,
            sb.bm_max_peers,
            sb.al_stripes,
            sb.al_stripe_size_4k,
            sb.bm_bytes_per_bit,
        )
        .map_err(|e| fail!(ret::ERR_MD_DISK_TOO_SMALL, "{}", e.message()))?;
        sb.check(&layout).map_err(md_invalid)?;
        if sb.check_al_clean().is_err() {
            return Err(fail!(
                ret::ERR_MD_UNCLEAN,
                "Found unclean meta data. Did you \"drbdadm apply-al\"?"
            ));
        }
        if sb.node_id >= 0 && sb.node_id as u32 != node_id {
            return Err(fail!(
                ret::ERR_MD_INVALID,
                "meta-data belongs to node-id {}, but this resource is node-id {}",
                sb.node_id,
                node_id
            ));
        }
        if layout.data_sectors == 0 {
            return Err(fail!(
                ret::ERR_DISK_TOO_SMALL,
                "no room for data next to the meta-data"
            ));
        }
        if req.disk_size > layout.data_sectors {
            return Err(fail!(
                ret::ERR_DISK_TOO_SMALL,
                "{} offers {} KiB next to its meta-data, --size asks for {} KiB",
                req.backing_dev,
                layout.data_sectors / 2,
                req.disk_size / 2
            ));
        }
        let sb = KBox::new(sb, GFP_KERNEL).map_err(|_| fail!(ret::ERR_NOMEM))?;
        Ok(Self {
            data,
            meta,
            layout,
            sb,
            meta_dev_idx: req.meta_dev_idx,
            disk_size: req.disk_size,
            disk_conf: disk_conf_store(),
            al: None,
        })
    }

    /// Usable size of `/dev/drbd<minor>` in sectors.
    pub(crate) fn data_sectors(&self) -> u64 {
        if self.disk_size > 0 {
            self.disk_size.min(self.layout.data_sectors)
        } else {
            self.layout.data_sectors
        }
    }

    /// Path of the backing device (for `DEVICE_INFO` and events).
    pub(crate) fn backing_path(&self) -> &str {
        self.data.path()
    }

    /// The device holding the meta-data.
    pub(crate) fn md_dev(&self) -> Arc<BlockDev> {
        self.meta.clone().unwrap_or_else(|| self.data.clone())
    }

    /// Path of the meta-data device.
    pub(crate) fn meta_path(&self) -> &str {
        self.meta
            .as_ref()
            .map_or_else(|| self.data.path(), |m| m.path())
    }

    /// The local disk state the meta-data implies when no peer can be asked.
    pub(crate) fn disk_state_alone(&self) -> DiskState {
        let flags = self.sb.flags;
        if flags & meta::MDF_CONSISTENT == 0 {
            DiskState::Inconsistent
        } else if flags & meta::MDF_WAS_UP_TO_DATE != 0 {
            DiskState::UpToDate
        } else {
            DiskState::Outdated
        }
    }

    /// Applies `change` to the flags of `peer`'s meta-data slot and writes the superblock if
    /// they changed (an unknown peer slot changes nothing).
    pub(crate) fn update_peer_flags(
        &mut self,
        peer: u32,
        change: impl FnOnce(u32) -> u32,
    ) -> Outcome {
        let Some(slot) = self.sb.peers.get_mut(peer as usize) else {
            return Ok(());
        };
        let flags = change(slot.flags);
        if flags == slot.flags {
            return Ok(());
        }
        slot.flags = flags;
        self.write_superblock()
    }

    /// Writes the in-memory superblock to disk (durably).
    pub(crate) fn write_superblock(&self) -> Outcome {
        let mut block =
            KVec::from_elem(0u8, MD_BLOCK, GFP_KERNEL).map_err(|_| fail!(ret::ERR_NOMEM))?;
        let block_ref: &mut [u8; MD_BLOCK] = block
            .as_mut_slice()
            .try_into()
            .map_err(|_| fail!(ret::ERR_NOMEM))?;
        self.sb.encode(block_ref);
        let md_dev = self.meta.as_ref().unwrap_or(&self.data);
        md_dev
            .write_block(self.layout.md_offset, block_ref)
            .map_err(|e| {
                fail!(
                    ret::ERR_IO_MD_DISK,
                    "writing the superblock failed with {}",
                    e.to_errno()
                )
            })
    }
}

fn md_invalid(e: meta::MetaError) -> crate::failure::Failure {
    fail!(
        ret::ERR_MD_INVALID,
        "{}. Did you \"drbdadm create-md\"?",
        e.message()
    )
}
