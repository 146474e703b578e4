//! On-disk meta-data, format v09: placement, superblock codec and sanity checks.
//!
//! Units: all offsets and sizes named `*_sect` or given in sectors are 512-byte
//! sectors. The superblock is one 4 KiB block, all integers big-endian.
//!
//! Placement (see `md_layout`):
//!
//! ```text
//! internal:      [ data ........ ][ bitmap ][ AL ][ superblock ][ 0-7 pad ]
//!                                 ^bm_offset  ^al_offset  ^md_offset
//! flex-external: [ superblock ][ AL ][ bitmap ................. ]   (whole device)
//! indexed [N]:   128 MiB slot at N x 128 MiB: [ superblock ][ 32 KiB AL ][ bitmap ]
//! ```
//!
//! `al_offset` and `bm_offset` are signed sector offsets *relative to the
//! superblock* (negative for internal meta-data), exactly as stored on disk.
//!
//! The bitmap holds one bit per `bm_bytes_per_bit` (4 KiB) of data per peer
//! slot; slots are interleaved in little-endian 32-bit words (word
//! `k * max_peers + slot` holds bits `32k..32k+31` of that slot).

use super::codec::{Reader, Short, Writer};
use super::crc32c::crc32c;

/// Size of a sector, the unit of every offset in the meta-data.
pub const SECTOR_SIZE: u64 = 512;
/// Size of the superblock and of every activity-log transaction, in bytes.
pub const MD_BLOCK_SIZE: usize = 4096;
/// The same block size in sectors.
pub const MD_BLOCK_SECT: u32 = 8;

/// DRBD's base magic (also the h80 packet-header magic).
pub const DRBD_MAGIC: u32 = 0x8374_0267;
/// Superblock magic of meta-data format v06 (DRBD 0.6).
pub const MD_MAGIC_06: u32 = DRBD_MAGIC + 2;
/// Superblock magic of meta-data format v07 (DRBD 0.7).
pub const MD_MAGIC_07: u32 = DRBD_MAGIC + 3;
/// Superblock magic of meta-data format v08 (DRBD 8.0 - 8.4).
pub const MD_MAGIC_08: u32 = DRBD_MAGIC + 4;
/// Superblock magic of an 8.4 superblock whose activity log was not clean.
pub const MD_MAGIC_84_UNCLEAN: u32 = DRBD_MAGIC + 5;
/// Superblock magic of meta-data format v09 (DRBD 9).
pub const MD_MAGIC_09: u32 = 0x8374_026d;

/// Magic of an activity-log transaction block ("actlog==" base64-decoded).
pub const AL_MAGIC: u32 = 0x69cb_65a2;
/// Activity-log transaction type: a regular update.
pub const AL_TR_UPDATE: u16 = 0;
/// Activity-log transaction type: block written by create-md/apply-al, no content.
pub const AL_TR_INITIALIZED: u16 = 0xffff;

/// Maximum number of peers (and bitmap slots, and node ids) DRBD 9 supports.
pub const DRBD_PEERS_MAX: u32 = 32;
/// Number of peer slots stored in the superblock (one per node id).
pub const NODE_ID_MAX: usize = 32;
/// Number of history UUIDs stored in the superblock.
pub const HISTORY_UUIDS: usize = 32;

/// Current UUID value written by create-md ("no data generation yet").
pub const UUID_JUST_CREATED: u64 = 4;

/// Default bitmap granularity: one bit covers 4 KiB.
pub const BM_BYTES_PER_BIT_DEFAULT: u32 = 4096;
/// Smallest supported bitmap granularity.
pub const BM_BYTES_PER_BIT_MIN: u32 = 4096;
/// Largest supported bitmap granularity (1 MiB per bit).
pub const BM_BYTES_PER_BIT_MAX: u32 = 1 << 20;

/// Default number of activity-log stripes.
pub const AL_STRIPES_DEFAULT: u32 = 1;
/// Default activity-log stripe size in 4 KiB blocks (32 KiB).
pub const AL_STRIPE_SIZE_4K_DEFAULT: u32 = 8;
/// Largest number of activity-log stripes.
pub const AL_STRIPES_MAX: u32 = 1024;
/// Smallest total activity-log size in 4 KiB blocks (32 KiB).
pub const AL_SIZE_4K_MIN: u32 = 8;
/// Largest total activity-log size in 4 KiB blocks (16 GiB).
pub const AL_SIZE_4K_MAX: u32 = 16 * 1024 * 1024 / 4;
/// The `al_nr_extents` value drbdmeta writes at create-md.
pub const AL_NR_EXTENTS_CREATED: u32 = 257;

/// Size of one indexed external meta-data slot in sectors (128 MiB).
pub const MD_INDEXED_SLOT_SECT: u64 = 128 << 11;
/// Largest supported data device (1 PiB), in sectors.
pub const MAX_DATA_SECTORS: u64 = 1 << (50 - 9);
/// Largest on-disk bitmap drbdmeta accepts, in bytes (32 GiB).
pub const MAX_BITMAP_BYTES: u64 = 1 << 35;

/// Local flag: the data was consistent when last written.
pub const MDF_CONSISTENT: u32 = 1 << 0;
/// Local flag: the node was Primary (cleared on clean demotion).
pub const MDF_PRIMARY_IND: u32 = 1 << 1;
/// v08 only: was connected.
pub const MDF_CONNECTED_IND: u32 = 1 << 2;
/// v08 only: a full sync is pending.
pub const MDF_FULL_SYNC: u32 = 1 << 3;
/// Local flag: the data was UpToDate (without it a consistent disk is Outdated).
pub const MDF_WAS_UP_TO_DATE: u32 = 1 << 4;
/// v08 only: the peer was outdated.
pub const MDF_PEER_OUT_DATED: u32 = 1 << 5;
/// Local flag: this node crashed while Primary.
pub const MDF_CRASHED_PRIMARY: u32 = 1 << 6;
/// Local flag: the activity log is clean (needed to attach).
pub const MDF_AL_CLEAN: u32 = 1 << 7;
/// Local flag: `al-updates no` was in effect.
pub const MDF_AL_DISABLED: u32 = 1 << 8;
/// Local flag: this node was a Primary that lost quorum.
pub const MDF_PRIMARY_LOST_QUORUM: u32 = 1 << 9;
/// Local flag: the node had quorum when last written.
pub const MDF_HAVE_QUORUM: u32 = 1 << 10;

/// Peer-slot flag: the peer was connected.
pub const MDF_PEER_CONNECTED: u32 = 1 << 0;
/// Peer-slot flag: the peer's disk is known to be outdated.
pub const MDF_PEER_OUTDATED: u32 = 1 << 1;
/// Peer-slot flag: fencing was in effect towards this peer.
pub const MDF_PEER_FENCING: u32 = 1 << 2;
/// Peer-slot flag: a full sync towards this peer is pending.
pub const MDF_PEER_FULL_SYNC: u32 = 1 << 3;
/// Peer-slot flag: the peer device was seen at least once.
pub const MDF_PEER_DEVICE_SEEN: u32 = 1 << 4;
/// Peer-slot flag: the node exists in the configuration.
pub const MDF_NODE_EXISTS: u32 = 1 << 16;
/// Peer-slot flag used in core only: the slot has a bitmap.
pub const MDF_HAVE_BITMAP: u32 = 1 << 31;

/// Where the meta-data lives, as given to attach/drbdmeta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MdIndex {
    /// At the end of the backing device (DRBD index -1 or -3, "internal").
    Internal,
    /// A whole separate device (DRBD index -2, "flex-external").
    FlexExternal,
    /// Fixed 128 MiB slot number N on a separate device (DRBD index N >= 0).
    Indexed(u32),
}

impl MdIndex {
    /// Decode DRBD's numeric meta-dev-idx (-1/-3 internal, -2 flexible external, N).
    pub fn from_raw(raw: i32) -> Result<MdIndex, MetaError> {
        match raw {
            -1 | -3 => Ok(MdIndex::Internal),
            -2 => Ok(MdIndex::FlexExternal),
            n => u32::try_from(n)
                .map(MdIndex::Indexed)
                .map_err(|_| MetaError::BadIndex),
        }
    }

    /// DRBD's numeric meta-dev-idx (internal is sent as flexible internal, -3).
    pub fn to_raw(self) -> i32 {
        match self {
            MdIndex::Internal => -3,
            MdIndex::FlexExternal => -2,
            MdIndex::Indexed(n) => i32::try_from(n).unwrap_or(i32::MAX),
        }
    }

    /// True for meta-data on a device other than the backing device.
    pub fn is_external(self) -> bool {
        !matches!(self, MdIndex::Internal)
    }
}

/// Computed placement, all in 512-byte sectors.
///
/// `md_offset` is absolute on the meta-data device; `al_offset` and
/// `bm_offset` are relative to `md_offset` (as stored in the superblock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MdLayout {
    /// Sector of the superblock on the meta-data device.
    pub md_offset: u64,
    /// Activity log start, relative to `md_offset`.
    pub al_offset: i32,
    /// Bitmap start, relative to `md_offset`.
    pub bm_offset: i32,
    /// Size of the whole meta-data area (superblock, AL, bitmap).
    pub md_size_sect: u32,
    /// Activity log size in 4 KiB blocks (`al_stripes * al_stripe_size_4k`).
    pub al_size_4k: u32,
    /// Bytes of bitmap (all slots) covering `data_sectors`, 4 KiB aligned.
    pub bm_bytes: u64,
    /// Usable size of the data device.
    pub data_sectors: u64,
    /// Number of bitmap slots the layout was computed for.
    pub max_peers: u32,
    /// Number of activity-log stripes.
    pub al_stripes: u32,
    /// Size of one activity-log stripe in 4 KiB blocks.
    pub al_stripe_size_4k: u32,
    /// Bitmap granularity in bytes per bit.
    pub bm_bytes_per_bit: u32,
    /// Where the layout is (internal, flex-external or indexed).
    pub index: MdIndex,
}

impl MdLayout {
    /// Absolute sector of the first activity-log block.
    pub fn al_start_sector(&self) -> u64 {
        offset_sector(self.md_offset, self.al_offset)
    }

    /// Absolute sector of the first bitmap block.
    pub fn bm_start_sector(&self) -> u64 {
        offset_sector(self.md_offset, self.bm_offset)
    }

    /// Size of the on-disk bitmap area in sectors (may exceed `bm_bytes`
    /// for external meta-data).
    pub fn bm_area_sectors(&self) -> u64 {
        if self.al_offset < 0 {
            u64::from(self.al_offset.abs_diff(self.bm_offset))
        } else {
            u64::from(self.md_size_sect).saturating_sub(u64::from(self.bm_offset.unsigned_abs()))
        }
    }

    /// Absolute sector of the AL block holding transaction `tr_number`.
    pub fn al_tr_sector(&self, tr_number: u32) -> u64 {
        let block = al_tr_block(tr_number, self.al_stripes, self.al_stripe_size_4k);
        self.al_start_sector()
            .saturating_add(u64::from(block) * u64::from(MD_BLOCK_SECT))
    }

    /// First sector of the meta-data area on the meta-data device.
    pub fn md_first_sector(&self) -> u64 {
        self.md_offset
            .min(self.al_start_sector())
            .min(self.bm_start_sector())
    }
}

fn offset_sector(base: u64, off: i32) -> u64 {
    if off < 0 {
        base.saturating_sub(u64::from(off.unsigned_abs()))
    } else {
        base.saturating_add(u64::from(off.unsigned_abs()))
    }
}

/// Ring position (4 KiB block index inside the AL area) of transaction `tr_number`.
///
/// Transactions go round-robin over the stripes: `i = tr mod al_size_4k`,
/// `block = (i mod stripes) * stripe_size_4k + i / stripes`.
pub fn al_tr_block(tr_number: u32, al_stripes: u32, al_stripe_size_4k: u32) -> u32 {
    let stripes = al_stripes.max(1);
    let size = stripes.saturating_mul(al_stripe_size_4k.max(1));
    let i = tr_number % size;
    (i % stripes) * al_stripe_size_4k.max(1) + i / stripes
}

/// Why meta-data cannot be placed, decoded or used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaError {
    /// The buffer is shorter than the 4 KiB superblock.
    TooShort,
    /// No v09 magic at the superblock position.
    NoSignature,
    /// Meta-data of an older format (v06/v07/v08) was found.
    OldFormat,
    /// max-peers outside 1..=32.
    BadMaxPeers,
    /// node-id outside -1..=31.
    BadNodeId,
    /// A peer slot's bitmap index is outside -1..max_peers.
    BadBitmapIndex,
    /// Bitmap granularity is not a power of two in 4 KiB..=1 MiB.
    BadBytesPerBit,
    /// Activity-log stripe settings out of range.
    BadAlSize,
    /// Indexed external meta-data only supports the default 32 KiB AL.
    IndexedNeedsDefaultAl,
    /// Negative meta-data index other than the known special values.
    BadIndex,
    /// The data device is larger than DRBD supports (1 PiB).
    DeviceTooLarge,
    /// The bitmap would be larger than DRBD supports.
    BitmapTooLarge,
    /// The (backing) device cannot even hold the meta-data.
    DeviceTooSmall,
    /// The meta-data area reaches beyond the end of the meta-data device.
    MdAreaDoesNotFit,
    /// The flex-external meta-data device is larger than 2 TiB.
    MdDeviceTooLarge,
    /// Stored activity-log offset differs from the computed layout.
    AlOffsetMismatch,
    /// Stored bitmap offset differs from the computed layout.
    BmOffsetMismatch,
    /// Stored meta-data size differs from the computed layout.
    MdSizeMismatch,
    /// Stored stripe settings, granularity or max-peers differ from the layout.
    LayoutMismatch,
    /// The bitmap area is too small for the last agreed size.
    BitmapTooSmall,
    /// The superblock says the activity log was not cleanly closed.
    AlNotClean,
    /// An activity-log block has the wrong magic.
    AlBadMagic,
    /// An activity-log block's crc32c does not match.
    AlBadChecksum,
}

impl MetaError {
    /// A human-readable explanation, suitable for tool output and kernel logs.
    pub fn message(&self) -> &'static str {
        match self {
            MetaError::TooShort => "meta-data block is shorter than 4096 bytes",
            MetaError::NoSignature => "no valid meta-data signature found",
            MetaError::OldFormat => {
                "meta-data of an older DRBD version (v06/v07/v08) found: convert it with drbdmeta create-md first"
            }
            MetaError::BadMaxPeers => "max-peers out of range (1 to 32)",
            MetaError::BadNodeId => "node-id in the meta-data out of range (-1 to 31)",
            MetaError::BadBitmapIndex => "a peer's bitmap index is out of range for max-peers",
            MetaError::BadBytesPerBit => {
                "bitmap granularity must be a power of two between 4 KiB and 1 MiB"
            }
            MetaError::BadAlSize => {
                "activity log stripes/stripe size out of range (1-1024 stripes, 32 KiB to 16 GiB in total)"
            }
            MetaError::IndexedNeedsDefaultAl => {
                "indexed external meta-data needs the default activity log (1 stripe of 32 KiB)"
            }
            MetaError::BadIndex => "invalid meta-data index",
            MetaError::DeviceTooLarge => "device too large (DRBD supports at most 1 PiB)",
            MetaError::BitmapTooLarge => "bitmap for that device got too large",
            MetaError::DeviceTooSmall => "device too small for meta-data",
            MetaError::MdAreaDoesNotFit => "meta data area does not fit on the device",
            MetaError::MdDeviceTooLarge => {
                "flexible external meta-data device larger than 2 TiB is not supported"
            }
            MetaError::AlOffsetMismatch => "activity log offset in the meta-data does not match the device layout",
            MetaError::BmOffsetMismatch => "bitmap offset in the meta-data does not match the device layout",
            MetaError::MdSizeMismatch => "meta-data size does not match the device size (was the device resized? try drbdmeta check-resize)",
            MetaError::LayoutMismatch => "meta-data parameters (max-peers, AL stripes, bitmap granularity) are inconsistent",
            MetaError::BitmapTooSmall => "on-disk bitmap too small for the last agreed device size",
            MetaError::AlNotClean => "activity log not clean: run drbdadm apply-al first",
            MetaError::AlBadMagic => "activity log block has no valid signature",
            MetaError::AlBadChecksum => "activity log block checksum mismatch",
        }
    }
}

impl core::fmt::Display for MetaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

impl From<Short> for MetaError {
    fn from(_: Short) -> Self {
        MetaError::TooShort
    }
}

fn check_max_peers(max_peers: u32) -> Result<(), MetaError> {
    if (1..=DRBD_PEERS_MAX).contains(&max_peers) {
        Ok(())
    } else {
        Err(MetaError::BadMaxPeers)
    }
}

fn check_bytes_per_bit(bpb: u32) -> Result<(), MetaError> {
    if bpb.is_power_of_two() && (BM_BYTES_PER_BIT_MIN..=BM_BYTES_PER_BIT_MAX).contains(&bpb) {
        Ok(())
    } else {
        Err(MetaError::BadBytesPerBit)
    }
}

/// Validate activity-log stripe settings; returns the AL size in 4 KiB blocks.
pub fn al_size_4k(al_stripes: u32, al_stripe_size_4k: u32) -> Result<u32, MetaError> {
    if !(1..=AL_STRIPES_MAX).contains(&al_stripes) || al_stripe_size_4k == 0 {
        return Err(MetaError::BadAlSize);
    }
    let size = al_stripes
        .checked_mul(al_stripe_size_4k)
        .ok_or(MetaError::BadAlSize)?;
    if (AL_SIZE_4K_MIN..=AL_SIZE_4K_MAX).contains(&size) {
        Ok(size)
    } else {
        Err(MetaError::BadAlSize)
    }
}

/// Bytes of on-disk bitmap (all `max_peers` slots) needed for `sectors` of data.
///
/// `bits = roundup64(ceil(sectors / (bm_bytes_per_bit / 512)))`,
/// `bytes = align4096(bits / 8 * max_peers)`.
pub fn bm_bytes(sectors: u64, max_peers: u32, bm_bytes_per_bit: u32) -> Result<u64, MetaError> {
    check_max_peers(max_peers)?;
    check_bytes_per_bit(bm_bytes_per_bit)?;
    if sectors > MAX_DATA_SECTORS {
        return Err(MetaError::DeviceTooLarge);
    }
    let sect_per_bit = u64::from(bm_bytes_per_bit / 512);
    // sectors <= 2^41, so none of this can overflow.
    let bits = sectors.div_ceil(sect_per_bit).next_multiple_of(64);
    Ok((bits / 8 * u64::from(max_peers)).next_multiple_of(4096))
}

/// Data sectors an external bitmap area of `area_sect` sectors can track.
fn external_max_usable(area_sect: u64, max_peers: u32, bm_bytes_per_bit: u32) -> u64 {
    let words_per_slot = area_sect * 512 * 8 / 64 / u64::from(max_peers);
    words_per_slot * 64 * u64::from(bm_bytes_per_bit) / 512
}

/// Sector of the superblock for `index`, knowing only the meta-data device size.
///
/// This is what attach reads first; the rest of the layout depends on the
/// parameters stored in that superblock (see [`Superblock::layout`]).
pub fn md_offset(index: MdIndex, md_dev_sectors: u64) -> Result<u64, MetaError> {
    match index {
        MdIndex::Internal => (md_dev_sectors & !7)
            .checked_sub(u64::from(MD_BLOCK_SECT))
            .ok_or(MetaError::DeviceTooSmall),
        MdIndex::FlexExternal => Ok(0),
        MdIndex::Indexed(n) => {
            let off = u64::from(n) * MD_INDEXED_SLOT_SECT;
            if off.saturating_add(MD_INDEXED_SLOT_SECT) > md_dev_sectors {
                Err(MetaError::MdAreaDoesNotFit)
            } else {
                Ok(off)
            }
        }
    }
}

/// Compute where the meta-data goes and how much data it can track.
///
/// For internal meta-data `backing_sectors` and `md_dev_sectors` are the same
/// device (only `backing_sectors` is used). For external meta-data pass the
/// backing size if known, or `u64::MAX` to get the largest size the bitmap
/// area can track (drbdmeta does not know the data device).
pub fn md_layout(
    index: MdIndex,
    backing_sectors: u64,
    md_dev_sectors: u64,
    max_peers: u32,
    al_stripes: u32,
    al_stripe_size_4k: u32,
    bm_bytes_per_bit: u32,
) -> Result<MdLayout, MetaError> {
    check_max_peers(max_peers)?;
    check_bytes_per_bit(bm_bytes_per_bit)?;
    let al_4k = al_size_4k(al_stripes, al_stripe_size_4k)?;
    let al_sect = al_4k * MD_BLOCK_SECT; // <= 2^25, fits i32
    let al_sect_i = i32::try_from(al_sect).map_err(|_| MetaError::BadAlSize)?;
    let mut layout = MdLayout {
        md_offset: 0,
        al_offset: 0,
        bm_offset: 0,
        md_size_sect: 0,
        al_size_4k: al_4k,
        bm_bytes: 0,
        data_sectors: 0,
        max_peers,
        al_stripes,
        al_stripe_size_4k,
        bm_bytes_per_bit,
        index,
    };
    match index {
        MdIndex::Internal => {
            let md_off = md_offset(index, backing_sectors)?;
            let bmb = bm_bytes(backing_sectors, max_peers, bm_bytes_per_bit)?;
            if bmb > MAX_BITMAP_BYTES {
                return Err(MetaError::BitmapTooLarge);
            }
            let bm_sect = bmb / SECTOR_SIZE;
            let md_size = bm_sect + u64::from(MD_BLOCK_SECT) + u64::from(al_sect);
            let md_size_sect = u32::try_from(md_size).map_err(|_| MetaError::BitmapTooLarge)?;
            let md_size_i = i32::try_from(md_size_sect).map_err(|_| MetaError::BitmapTooLarge)?;
            let end = md_off + u64::from(MD_BLOCK_SECT);
            if md_size >= end {
                return Err(MetaError::DeviceTooSmall);
            }
            layout.md_offset = md_off;
            layout.al_offset = -al_sect_i;
            layout.bm_offset = MD_BLOCK_SECT as i32 - md_size_i;
            layout.md_size_sect = md_size_sect;
            layout.bm_bytes = bmb;
            layout.data_sectors = end - md_size;
        }
        MdIndex::FlexExternal | MdIndex::Indexed(_) => {
            let (md_off, md_size) = match index {
                MdIndex::Indexed(_) => {
                    if al_stripes != AL_STRIPES_DEFAULT
                        || al_stripe_size_4k != AL_STRIPE_SIZE_4K_DEFAULT
                    {
                        return Err(MetaError::IndexedNeedsDefaultAl);
                    }
                    (md_offset(index, md_dev_sectors)?, MD_INDEXED_SLOT_SECT)
                }
                _ => (0, md_dev_sectors),
            };
            let md_size_sect = u32::try_from(md_size).map_err(|_| MetaError::MdDeviceTooLarge)?;
            let bm_off = MD_BLOCK_SECT + al_sect;
            // Need at least one 4 KiB bitmap block after superblock and AL.
            if md_size < u64::from(bm_off) + u64::from(MD_BLOCK_SECT) {
                return Err(MetaError::MdAreaDoesNotFit);
            }
            let bm_off_i = i32::try_from(bm_off).map_err(|_| MetaError::BadAlSize)?;
            let area = md_size - u64::from(bm_off);
            let usable = external_max_usable(area, max_peers, bm_bytes_per_bit);
            let data = backing_sectors.min(usable).min(MAX_DATA_SECTORS);
            layout.md_offset = md_off;
            layout.al_offset = MD_BLOCK_SECT as i32;
            layout.bm_offset = bm_off_i;
            layout.md_size_sect = md_size_sect;
            layout.bm_bytes = bm_bytes(data, max_peers, bm_bytes_per_bit)?;
            layout.data_sectors = data;
        }
    }
    Ok(layout)
}

/// One per-node slot of the v09 superblock (32 bytes on disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerSlot {
    /// Generation at which change tracking towards this peer began; 0 = in sync.
    pub bitmap_uuid: u64,
    /// Data-generation tag belonging to `bitmap_uuid`.
    pub bitmap_dagtag: u64,
    /// `MDF_PEER_*` flags.
    pub flags: u32,
    /// Bitmap slot used for this node, or -1.
    pub bitmap_index: i32,
}

/// Decoded v09 superblock (all fields of `meta_data_on_disk_9`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// Last agreed size of the device, in sectors.
    pub effective_size: u64,
    /// Current data-generation UUID.
    pub current_uuid: u64,
    /// Node mask of members.
    pub members: u64,
    /// Random id of this backing device.
    pub device_uuid: u64,
    /// `MDF_*` flags.
    pub flags: u32,
    /// Must be [`MD_MAGIC_09`].
    pub magic: u32,
    /// Size of the meta-data area in sectors.
    pub md_size_sect: u32,
    /// Activity log offset relative to the superblock, in sectors.
    pub al_offset: i32,
    /// The al-extents setting in effect when last written.
    pub al_nr_extents: u32,
    /// Bitmap offset relative to the superblock, in sectors.
    pub bm_offset: i32,
    /// Bitmap granularity in bytes per bit.
    pub bm_bytes_per_bit: u32,
    /// Last known max bio size of the peers.
    pub la_peer_max_bio_size: u32,
    /// Number of bitmap slots.
    pub bm_max_peers: u32,
    /// This node's id, -1 until first attached with a configuration.
    pub node_id: i32,
    /// Number of activity-log stripes.
    pub al_stripes: u32,
    /// Activity-log stripe size in 4 KiB blocks.
    pub al_stripe_size_4k: u32,
    /// Per-node slots, indexed by node id.
    pub peers: [PeerSlot; NODE_ID_MAX],
    /// History UUIDs, newest first.
    pub history_uuids: [u64; HISTORY_UUIDS],
}

/// Byte offset of the magic inside every superblock format.
pub const SB_MAGIC_OFFSET: usize = 60;
/// Bytes of the superblock that carry fields (the rest is zero padding).
pub const SB_USED_BYTES: usize = 1392;

impl Default for Superblock {
    fn default() -> Self {
        Superblock {
            effective_size: 0,
            current_uuid: 0,
            members: 0,
            device_uuid: 0,
            flags: 0,
            magic: MD_MAGIC_09,
            md_size_sect: 0,
            al_offset: 0,
            al_nr_extents: 0,
            bm_offset: 0,
            bm_bytes_per_bit: BM_BYTES_PER_BIT_DEFAULT,
            la_peer_max_bio_size: 0,
            bm_max_peers: 1,
            node_id: -1,
            al_stripes: AL_STRIPES_DEFAULT,
            al_stripe_size_4k: AL_STRIPE_SIZE_4K_DEFAULT,
            peers: [PeerSlot::default(); NODE_ID_MAX],
            history_uuids: [0; HISTORY_UUIDS],
        }
    }
}

/// Read the magic of a superblock-sized block without decoding the rest.
pub fn peek_magic(block: &[u8]) -> Result<u32, MetaError> {
    let mut r = Reader::new(block);
    r.skip(SB_MAGIC_OFFSET)?;
    Ok(r.u32()?)
}

impl Superblock {
    /// Decode a v09 superblock from (at least) 4096 bytes.
    ///
    /// Only the length and the magic are checked here; use [`Superblock::check`]
    /// to validate the contents against the device.
    pub fn decode(block: &[u8]) -> Result<Superblock, MetaError> {
        if block.len() < MD_BLOCK_SIZE {
            return Err(MetaError::TooShort);
        }
        match peek_magic(block)? {
            MD_MAGIC_09 => {}
            MD_MAGIC_06 | MD_MAGIC_07 | MD_MAGIC_08 | MD_MAGIC_84_UNCLEAN => {
                return Err(MetaError::OldFormat)
            }
            _ => return Err(MetaError::NoSignature),
        }
        let mut r = Reader::new(block);
        let mut sb = Superblock {
            effective_size: r.u64()?,
            current_uuid: r.u64()?,
            members: r.u64()?,
            ..Superblock::default()
        };
        r.skip(24)?; // reserved_u64[3]
        sb.device_uuid = r.u64()?;
        sb.flags = r.u32()?;
        sb.magic = r.u32()?;
        sb.md_size_sect = r.u32()?;
        sb.al_offset = r.i32()?;
        sb.al_nr_extents = r.u32()?;
        sb.bm_offset = r.i32()?;
        sb.bm_bytes_per_bit = r.u32()?;
        sb.la_peer_max_bio_size = r.u32()?;
        sb.bm_max_peers = r.u32()?;
        sb.node_id = r.i32()?;
        sb.al_stripes = r.u32()?;
        sb.al_stripe_size_4k = r.u32()?;
        r.skip(8)?; // reserved_u32[2]
        for p in sb.peers.iter_mut() {
            p.bitmap_uuid = r.u64()?;
            p.bitmap_dagtag = r.u64()?;
            p.flags = r.u32()?;
            p.bitmap_index = r.i32()?;
            r.skip(8)?;
        }
        for h in sb.history_uuids.iter_mut() {
            *h = r.u64()?;
        }
        Ok(sb)
    }

    fn encode_into(&self, w: &mut Writer<'_>) -> Result<(), Short> {
        w.u64(self.effective_size)?;
        w.u64(self.current_uuid)?;
        w.u64(self.members)?;
        w.zeros(24)?;
        w.u64(self.device_uuid)?;
        w.u32(self.flags)?;
        w.u32(self.magic)?;
        w.u32(self.md_size_sect)?;
        w.i32(self.al_offset)?;
        w.u32(self.al_nr_extents)?;
        w.i32(self.bm_offset)?;
        w.u32(self.bm_bytes_per_bit)?;
        w.u32(self.la_peer_max_bio_size)?;
        w.u32(self.bm_max_peers)?;
        w.i32(self.node_id)?;
        w.u32(self.al_stripes)?;
        w.u32(self.al_stripe_size_4k)?;
        w.zeros(8)?;
        for p in self.peers.iter() {
            w.u64(p.bitmap_uuid)?;
            w.u64(p.bitmap_dagtag)?;
            w.u32(p.flags)?;
            w.i32(p.bitmap_index)?;
            w.zeros(8)?;
        }
        for h in self.history_uuids.iter() {
            w.u64(*h)?;
        }
        let rest = w.remaining();
        w.zeros(rest)
    }

    /// Encode into a full 4 KiB block (reserved fields and padding zeroed).
    pub fn encode(&self, out: &mut [u8; MD_BLOCK_SIZE]) {
        let mut w = Writer::new(out);
        // Cannot fail: the fields take SB_USED_BYTES (1392) < 4096 bytes.
        let _ = self.encode_into(&mut w);
    }

    /// The superblock create-md writes for `layout`: current UUID
    /// JUST_CREATED, only AL_CLEAN set, node id -1, no bitmap slots assigned.
    ///
    /// `max_peers` must be the value `layout` was computed with.
    pub fn new_created(layout: &MdLayout, max_peers: u32) -> Superblock {
        let mut sb = Superblock {
            current_uuid: UUID_JUST_CREATED,
            flags: MDF_AL_CLEAN,
            md_size_sect: layout.md_size_sect,
            al_offset: layout.al_offset,
            al_nr_extents: AL_NR_EXTENTS_CREATED,
            bm_offset: layout.bm_offset,
            bm_bytes_per_bit: layout.bm_bytes_per_bit,
            bm_max_peers: max_peers,
            node_id: -1,
            al_stripes: layout.al_stripes,
            al_stripe_size_4k: layout.al_stripe_size_4k,
            ..Superblock::default()
        };
        for p in sb.peers.iter_mut() {
            p.bitmap_index = -1;
        }
        sb
    }

    /// The layout this superblock implies for a device of the given sizes.
    pub fn layout(
        &self,
        index: MdIndex,
        backing_sectors: u64,
        md_dev_sectors: u64,
    ) -> Result<MdLayout, MetaError> {
        md_layout(
            index,
            backing_sectors,
            md_dev_sectors,
            self.bm_max_peers,
            self.al_stripes,
            self.al_stripe_size_4k,
            self.bm_bytes_per_bit,
        )
    }

    /// Takes the offsets and the size of `layout` (the meta-data moved, e.g. to the end of a
    /// grown backing device).
    pub fn adopt_layout(&mut self, layout: &MdLayout) {
        self.md_size_sect = layout.md_size_sect;
        self.al_offset = layout.al_offset;
        self.bm_offset = layout.bm_offset;
    }

    /// Validate the superblock's contents against `layout` (normally from
    /// [`Superblock::layout`]): magic, ranges of node id, max-peers and
    /// bitmap indexes, offsets and sizes, and that the bitmap covers the last
    /// agreed size. Does not look at the AL-clean flag (see
    /// [`Superblock::check_al_clean`]).
    pub fn check(&self, layout: &MdLayout) -> Result<(), MetaError> {
        if self.magic != MD_MAGIC_09 {
            return Err(MetaError::NoSignature);
        }
        check_max_peers(self.bm_max_peers)?;
        check_bytes_per_bit(self.bm_bytes_per_bit)?;
        al_size_4k(self.al_stripes, self.al_stripe_size_4k)?;
        if !(-1..DRBD_PEERS_MAX as i32).contains(&self.node_id) {
            return Err(MetaError::BadNodeId);
        }
        let max_idx = self.bm_max_peers as i32;
        for p in self.peers.iter() {
            if p.bitmap_index < -1 || p.bitmap_index >= max_idx {
                return Err(MetaError::BadBitmapIndex);
            }
        }
        if self.bm_max_peers != layout.max_peers
            || self.al_stripes != layout.al_stripes
            || self.al_stripe_size_4k != layout.al_stripe_size_4k
            || self.bm_bytes_per_bit != layout.bm_bytes_per_bit
        {
            return Err(MetaError::LayoutMismatch);
        }
        if self.al_offset != layout.al_offset {
            return Err(MetaError::AlOffsetMismatch);
        }
        if self.bm_offset != layout.bm_offset {
            return Err(MetaError::BmOffsetMismatch);
        }
        if self.md_size_sect != layout.md_size_sect {
            return Err(MetaError::MdSizeMismatch);
        }
        let need = bm_bytes(
            self.effective_size.min(MAX_DATA_SECTORS),
            self.bm_max_peers,
            self.bm_bytes_per_bit,
        )?;
        if self.effective_size > MAX_DATA_SECTORS || need / SECTOR_SIZE > layout.bm_area_sectors() {
            return Err(MetaError::BitmapTooSmall);
        }
        Ok(())
    }

    /// Attach requires a clean activity log (`MDF_AL_CLEAN`).
    pub fn check_al_clean(&self) -> Result<(), MetaError> {
        if self.flags & MDF_AL_CLEAN != 0 {
            Ok(())
        } else {
            Err(MetaError::AlNotClean)
        }
    }

    /// The bitmap slot assigned to `node_id`, if any.
    pub fn bitmap_slot(&self, node_id: usize) -> Option<u32> {
        let p = self.peers.get(node_id)?;
        u32::try_from(p.bitmap_index)
            .ok()
            .filter(|&i| i < self.bm_max_peers)
    }
}

/// Fill `out` with an "initialized" activity-log transaction (magic, the
/// given transaction number, type `AL_TR_INITIALIZED`, valid crc32c), as
/// create-md and apply-al write into every AL block.
pub fn al_init_block(tr_number: u32, out: &mut [u8; MD_BLOCK_SIZE]) {
    out.fill(0);
    let mut w = Writer::new(out);
    // Cannot fail: 14 bytes into a 4096-byte block.
    let _ = w
        .u32(AL_MAGIC)
        .and_then(|()| w.u32(tr_number))
        .and_then(|()| w.u32(0))
        .and_then(|()| w.u16(AL_TR_INITIALIZED));
    al_seal_block(out);
}

/// Compute and store the crc32c of an AL transaction block (field at byte 8,
/// computed over the whole block with that field zero, seed 0).
pub fn al_seal_block(block: &mut [u8; MD_BLOCK_SIZE]) {
    let mut crc = [0u8; 4];
    if let Some(f) = block.get_mut(8..12) {
        f.fill(0);
    }
    crc.copy_from_slice(&crc32c(0, block).to_be_bytes());
    if let Some(f) = block.get_mut(8..12) {
        f.copy_from_slice(&crc);
    }
}

/// Check magic and crc32c of an AL transaction block; returns the
/// transaction number and type.
pub fn al_check_block(block: &[u8]) -> Result<(u32, u16), MetaError> {
    let mut r = Reader::new(block);
    let magic = r.u32()?;
    let tr = r.u32()?;
    let stored = r.u32()?;
    let ty = r.u16()?;
    let head = block.get(..8).ok_or(MetaError::TooShort)?;
    let tail = block.get(12..MD_BLOCK_SIZE).ok_or(MetaError::TooShort)?;
    if magic != AL_MAGIC {
        return Err(MetaError::AlBadMagic);
    }
    let crc = crc32c(crc32c(crc32c(0, head), &[0; 4]), tail);
    if crc != stored {
        return Err(MetaError::AlBadChecksum);
    }
    Ok((tr, ty))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn internal(cap: u64, peers: u32) -> MdLayout {
        md_layout(MdIndex::Internal, cap, cap, peers, 1, 8, 4096).unwrap()
    }

    /// (capacity sectors, peers, md_offset, md_size_sect, bm_offset), all
    /// checked against drbd-utils 9.22 `drbdmeta create-md` on files.
    const INTERNAL_VECTORS: &[(u64, u32, u64, u32, i32)] = &[
        (204_800, 1, 204_792, 80, -72),                       // 100 MiB
        (204_800, 2, 204_792, 88, -80),                       // 100 MiB
        (2_097_152, 1, 2_097_144, 136, -128),                 // 1 GiB
        (2_097_152, 2, 2_097_144, 200, -192),                 // 1 GiB
        (2_097_152, 31, 2_097_144, 2056, -2048),              // 1 GiB
        (20_971_520, 31, 20_971_512, 19912, -19904),          // 10 GiB
        (2_147_483_648, 3, 2_147_483_640, 196_680, -196_672), // 1 TiB
        (8200, 1, 8192, 80, -72),                             // 4100 KiB
        (1_000_000, 7, 999_992, 288, -280),
    ];

    #[test]
    fn internal_matches_drbdmeta() {
        for &(cap, peers, md_off, md_size, bm_off) in INTERNAL_VECTORS {
            let l = internal(cap, peers);
            assert_eq!(l.md_offset, md_off, "cap {cap} peers {peers}");
            assert_eq!(l.md_size_sect, md_size, "cap {cap} peers {peers}");
            assert_eq!(l.al_offset, -64);
            assert_eq!(l.bm_offset, bm_off, "cap {cap} peers {peers}");
            assert_eq!(l.data_sectors, md_off - md_size as u64 + 8);
            assert_eq!(l.bm_start_sector(), l.data_sectors);
            assert_eq!(l.al_start_sector(), md_off - 64);
        }
        // 100 MiB: byte offsets printed by drbdmeta dump-md.
        let l = internal(204_800, 1);
        assert_eq!(l.md_offset * 512, 104_853_504);
        assert_eq!(l.al_start_sector() * 512, 104_820_736);
        assert_eq!(l.bm_start_sector() * 512, 104_816_640);
        assert_eq!(l.bm_bytes, 4096);
    }

    #[test]
    fn internal_striped_al() {
        // drbdmeta create-md --al-stripes 4 --al-stripe-size-kB 64 2 on 1000003 sectors.
        let l = md_layout(MdIndex::Internal, 1_000_003, 1_000_003, 2, 4, 16, 4096).unwrap();
        assert_eq!(l.md_offset, 999_992);
        assert_eq!(l.al_offset, -512);
        assert_eq!(l.bm_offset, -576);
        assert_eq!(l.md_size_sect, 584);
        assert_eq!(l.al_size_4k, 64);
    }

    #[test]
    fn external_layouts() {
        // flex-external on a 50 MiB device, 2 peers.
        let l = md_layout(MdIndex::FlexExternal, u64::MAX, 102_400, 2, 1, 8, 4096).unwrap();
        assert_eq!(
            (l.md_offset, l.al_offset, l.bm_offset, l.md_size_sect),
            (0, 8, 72, 102_400)
        );
        assert_eq!(l.al_start_sector() * 512, 4096);
        assert_eq!(l.bm_start_sector() * 512, 36_864);
        // bitmap area: 102328 sectors -> 6548992 words/slot*... per slot
        let words = 102_328u64 * 512 * 8 / 64 / 2;
        assert_eq!(l.data_sectors, words * 64 * 8);
        // indexed 1 on a 300 MiB device.
        let l = md_layout(MdIndex::Indexed(1), u64::MAX, 614_400, 3, 1, 8, 4096).unwrap();
        assert_eq!(l.md_offset * 512, 134_217_728);
        assert_eq!(l.al_start_sector() * 512, 134_221_824);
        assert_eq!(l.bm_start_sector() * 512, 134_254_592);
        assert_eq!(l.md_size_sect, 262_144);
        // indexed 2 does not fit on 300 MiB.
        assert_eq!(
            md_layout(MdIndex::Indexed(2), u64::MAX, 614_400, 3, 1, 8, 4096),
            Err(MetaError::MdAreaDoesNotFit)
        );
        assert_eq!(
            md_layout(MdIndex::Indexed(0), u64::MAX, 614_400, 3, 2, 8, 4096),
            Err(MetaError::IndexedNeedsDefaultAl)
        );
        // the data device limits data_sectors
        let l = md_layout(MdIndex::Indexed(0), 1000, 614_400, 3, 1, 8, 4096).unwrap();
        assert_eq!(l.data_sectors, 1000);
        assert_eq!(l.bm_bytes, 4096);
    }

    #[test]
    fn too_small_and_bad_params() {
        assert_eq!(
            md_layout(MdIndex::Internal, 80, 80, 1, 1, 8, 4096),
            Err(MetaError::DeviceTooSmall)
        );
        assert_eq!(
            md_layout(MdIndex::Internal, 7, 7, 1, 1, 8, 4096),
            Err(MetaError::DeviceTooSmall)
        );
        assert!(md_layout(MdIndex::Internal, 88, 88, 1, 1, 8, 4096).is_ok());
        assert_eq!(
            md_layout(MdIndex::Internal, 1 << 30, 1 << 30, 0, 1, 8, 4096),
            Err(MetaError::BadMaxPeers)
        );
        assert_eq!(
            md_layout(MdIndex::Internal, 1 << 30, 1 << 30, 33, 1, 8, 4096),
            Err(MetaError::BadMaxPeers)
        );
        assert_eq!(
            md_layout(MdIndex::Internal, 1 << 30, 1 << 30, 1, 1, 4, 4096),
            Err(MetaError::BadAlSize)
        );
        assert_eq!(
            md_layout(MdIndex::Internal, 1 << 30, 1 << 30, 1, 1, 8, 6000),
            Err(MetaError::BadBytesPerBit)
        );
        assert_eq!(
            md_layout(MdIndex::FlexExternal, 1 << 30, 64, 1, 1, 8, 4096),
            Err(MetaError::MdAreaDoesNotFit)
        );
        assert_eq!(
            md_layout(MdIndex::Internal, u64::MAX, u64::MAX, 1, 1, 8, 4096),
            Err(MetaError::DeviceTooLarge)
        );
        // 1 PiB with 32 peers needs a 1 TiB bitmap: too large.
        assert_eq!(
            md_layout(MdIndex::Internal, 1 << 41, 1 << 41, 32, 1, 8, 4096),
            Err(MetaError::BitmapTooLarge)
        );
    }

    #[test]
    fn bm_bytes_formula() {
        assert_eq!(bm_bytes(0, 1, 4096), Ok(0));
        assert_eq!(bm_bytes(1, 1, 4096), Ok(4096));
        // 1 GiB, 1 peer: 262144 bits = 32 KiB
        assert_eq!(bm_bytes(2_097_152, 1, 4096), Ok(32_768));
        // 1000000 sectors, 7 peers: 125056 bits -> 15632 B * 7 -> 110592
        assert_eq!(bm_bytes(1_000_000, 7, 4096), Ok(110_592));
        // coarser granularity halves the bits
        assert_eq!(bm_bytes(2_097_152 * 64, 1, 8192), Ok(32_768 * 32));
    }

    #[test]
    fn superblock_matches_drbdmeta_bytes() {
        // First 0x70 bytes of the superblock drbdmeta 9.22 wrote for
        // `create-md 1` on a 100 MiB file (tail -c 4096 | xxd).
        let expect_head: [u8; 0x70] = [
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, //
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x83, 0x74, 0x02, 0x6d, //
            0, 0, 0, 0x50, 0xff, 0xff, 0xff, 0xc0, 0, 0, 1, 1, 0xff, 0xff, 0xff, 0xb8, //
            0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, //
            0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, //
        ];
        let l = internal(204_800, 1);
        let sb = Superblock::new_created(&l, 1);
        let mut out = [0u8; 4096];
        sb.encode(&mut out);
        assert_eq!(&out[..0x70], &expect_head[..]);
        for n in 0..32 {
            let base = 112 + n * 32;
            assert_eq!(&out[base..base + 20], &[0u8; 20]);
            assert_eq!(&out[base + 20..base + 24], &[0xff; 4]);
            assert_eq!(&out[base + 24..base + 32], &[0u8; 8]);
        }
        assert!(out[1136..].iter().all(|&b| b == 0));
        let back = Superblock::decode(&out).unwrap();
        assert_eq!(back, sb);
        assert_eq!(back.check(&l), Ok(()));
        assert_eq!(back.check_al_clean(), Ok(()));
    }

    #[test]
    fn decode_errors() {
        assert_eq!(Superblock::decode(&[0u8; 100]), Err(MetaError::TooShort));
        assert_eq!(
            Superblock::decode(&[0u8; 4096]),
            Err(MetaError::NoSignature)
        );
        let mut b = [0u8; 4096];
        b[60..64].copy_from_slice(&MD_MAGIC_08.to_be_bytes());
        assert_eq!(Superblock::decode(&b), Err(MetaError::OldFormat));
    }

    #[test]
    fn check_catches_bad_fields() {
        let l = internal(2_097_152, 2);
        let good = Superblock::new_created(&l, 2);
        assert_eq!(good.check(&l), Ok(()));
        let mut sb = good.clone();
        sb.node_id = 32;
        assert_eq!(sb.check(&l), Err(MetaError::BadNodeId));
        let mut sb = good.clone();
        sb.peers[5].bitmap_index = 2;
        assert_eq!(sb.check(&l), Err(MetaError::BadBitmapIndex));
        let mut sb = good.clone();
        sb.peers[5].bitmap_index = 1;
        assert_eq!(sb.check(&l), Ok(()));
        assert_eq!(sb.bitmap_slot(5), Some(1));
        assert_eq!(sb.bitmap_slot(4), None);
        assert_eq!(sb.bitmap_slot(99), None);
        let mut sb = good.clone();
        sb.bm_offset -= 8;
        assert_eq!(sb.check(&l), Err(MetaError::BmOffsetMismatch));
        let mut sb = good.clone();
        sb.al_offset = 8;
        assert_eq!(sb.check(&l), Err(MetaError::AlOffsetMismatch));
        let mut sb = good.clone();
        sb.bm_max_peers = 3;
        assert_eq!(sb.check(&l), Err(MetaError::LayoutMismatch));
        let mut sb = good.clone();
        sb.effective_size = l.data_sectors;
        assert_eq!(sb.check(&l), Ok(()));
        sb.effective_size = 4 * 2_097_152;
        assert_eq!(sb.check(&l), Err(MetaError::BitmapTooSmall));
        let mut sb = good.clone();
        sb.flags = 0;
        assert_eq!(sb.check_al_clean(), Err(MetaError::AlNotClean));
        // the superblock's own layout is what check() expects
        let l2 = good
            .layout(MdIndex::Internal, 2_097_152, 2_097_152)
            .unwrap();
        assert_eq!(l2, l);
    }

    #[test]
    fn al_blocks() {
        let mut b = [0u8; 4096];
        al_init_block(0, &mut b);
        assert_eq!(
            &b[..16],
            &[0x69, 0xcb, 0x65, 0xa2, 0, 0, 0, 0, 0x70, 0x9c, 0xc6, 0x51, 0xff, 0xff, 0, 0]
        );
        assert_eq!(al_check_block(&b), Ok((0, AL_TR_INITIALIZED)));
        al_init_block(7, &mut b);
        assert_eq!(al_check_block(&b), Ok((7, AL_TR_INITIALIZED)));
        b[100] ^= 1;
        assert_eq!(al_check_block(&b), Err(MetaError::AlBadChecksum));
        b[0] = 0;
        assert_eq!(al_check_block(&b), Err(MetaError::AlBadMagic));
        assert_eq!(al_check_block(&b[..10]), Err(MetaError::TooShort));
    }

    #[test]
    fn al_ring_positions() {
        // one stripe: linear ring
        assert_eq!(al_tr_block(0, 1, 8), 0);
        assert_eq!(al_tr_block(7, 1, 8), 7);
        assert_eq!(al_tr_block(8, 1, 8), 0);
        // 4 stripes of 16 blocks: round robin over stripes
        assert_eq!(al_tr_block(0, 4, 16), 0);
        assert_eq!(al_tr_block(1, 4, 16), 16);
        assert_eq!(al_tr_block(2, 4, 16), 32);
        assert_eq!(al_tr_block(3, 4, 16), 48);
        assert_eq!(al_tr_block(4, 4, 16), 1);
        assert_eq!(al_tr_block(63, 4, 16), 63);
        assert_eq!(al_tr_block(64, 4, 16), 0);
        let l = internal(204_800, 1);
        assert_eq!(l.al_tr_sector(1), l.al_start_sector() + 8);
    }

    #[test]
    fn index_raw() {
        assert_eq!(MdIndex::from_raw(-1), Ok(MdIndex::Internal));
        assert_eq!(MdIndex::from_raw(-3), Ok(MdIndex::Internal));
        assert_eq!(MdIndex::from_raw(-2), Ok(MdIndex::FlexExternal));
        assert_eq!(MdIndex::from_raw(4), Ok(MdIndex::Indexed(4)));
        assert_eq!(MdIndex::from_raw(-4), Err(MetaError::BadIndex));
        assert_eq!(MdIndex::Internal.to_raw(), -3);
    }
}
