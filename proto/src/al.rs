//! Activity log: on-disk transaction blocks, ring placement and replay.
//!
//! Every application write needs its 4 MiB extent "hot" in the activity log
//! before it is submitted. The set of hot extents is a table of `al-extents`
//! slots (slot -> extent number). Each change of that table is persisted as
//! one 4 KiB transaction in a ring of `al_size_4k` blocks. A transaction
//! carries up to 64 slot updates plus a rolling window of 919 table entries
//! (the "context"), so the whole table can be rebuilt from the most recent
//! `ceil(al-extents / 919)` transactions. After a crash, [`ReplayScan`] finds
//! the valid range of the ring and [`apply_transaction`] rebuilds the table,
//! whose extents then get marked out of sync in the bitmap.
//!
//! On-disk layout (`al_transaction_on_disk`, big-endian):
//! `magic@0 tr_number@4 crc32c@8 type@12 n_updates@14 context_size@16
//! context_start_slot_nr@18 reserved[4]@20 update_slot_nr[64]@36
//! update_extent_nr[64]@164 context[919]@420`.

use super::codec::{Reader, Short, Writer};
use super::crc32c::crc32c;
use super::meta::{AL_MAGIC, AL_TR_INITIALIZED, AL_TR_UPDATE, MD_BLOCK_SIZE};

/// Slot updates one transaction can carry.
pub const AL_UPDATES_PER_TRANSACTION: usize = 64;
/// Table entries one transaction carries as context.
pub const AL_CONTEXT_PER_TRANSACTION: usize = 919;
/// log2 of the extent size: one AL extent covers 4 MiB.
pub const AL_EXTENT_SHIFT: u32 = 22;
/// Sectors per AL extent.
pub const AL_EXTENT_SECTORS: u64 = 1 << (AL_EXTENT_SHIFT - 9);
/// Default number of AL slots (`al-extents`).
pub const AL_EXTENTS_DEFAULT: u32 = 1237;
/// Smallest `al-extents` setting.
pub const AL_EXTENTS_MIN: u32 = 67;
/// Largest `al-extents` setting (slot numbers must stay below this).
pub const AL_EXTENTS_MAX: u32 = 65534;
/// Marker for an unused slot / unused update entry.
pub const AL_FREE: u32 = u32::MAX;
/// Bitmap bytes (per slot) covered by one AL extent at 4 KiB per bit.
pub const BM_BYTES_PER_AL_EXT: u64 = 1 << (AL_EXTENT_SHIFT - 12 - 3);

/// Why an AL block or ring cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlError {
    /// Block shorter than 4096 bytes.
    TooShort,
    /// Wrong magic.
    BadMagic,
    /// crc32c mismatch.
    BadChecksum,
    /// Unknown transaction type.
    BadType,
    /// More updates than fit in a transaction.
    TooManyUpdates,
    /// Not a single valid block in the ring.
    NoValidBlock,
    /// Some blocks valid, but no update transaction and more than one bad block.
    NoValidUpdate,
}

impl AlError {
    /// Human-readable explanation.
    pub fn message(&self) -> &'static str {
        match self {
            AlError::TooShort => "activity log block shorter than 4096 bytes",
            AlError::BadMagic => "activity log block has no valid signature",
            AlError::BadChecksum => "activity log block checksum mismatch",
            AlError::BadType => "activity log block has an unknown transaction type",
            AlError::TooManyUpdates => "activity log transaction claims more than 64 updates",
            AlError::NoValidBlock => "No usable activity log found. Do you need to create-md?",
            AlError::NoValidUpdate => "No valid AL update transaction found.",
        }
    }
}

impl core::fmt::Display for AlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

impl From<Short> for AlError {
    fn from(_: Short) -> Self {
        AlError::TooShort
    }
}

/// One decoded activity-log transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// Monotonic transaction number (wraps at 2^32).
    pub tr_number: u32,
    /// [`AL_TR_UPDATE`] or [`AL_TR_INITIALIZED`].
    pub transaction_type: u16,
    /// Number of valid entries in `update_slot_nr`/`update_extent_nr`.
    pub n_updates: u16,
    /// The al-extents setting (size of the slot table).
    pub context_size: u16,
    /// Slot number of `context[0]`.
    pub context_start_slot_nr: u16,
    /// Slots changed by this transaction.
    pub update_slot_nr: [u16; AL_UPDATES_PER_TRANSACTION],
    /// New extent of each changed slot ([`AL_FREE`] = slot emptied).
    pub update_extent_nr: [u32; AL_UPDATES_PER_TRANSACTION],
    /// Extents of slots `context_start_slot_nr..+919`.
    pub context: [u32; AL_CONTEXT_PER_TRANSACTION],
}

impl Default for Transaction {
    fn default() -> Self {
        Transaction {
            tr_number: 0,
            transaction_type: AL_TR_UPDATE,
            n_updates: 0,
            context_size: 0,
            context_start_slot_nr: 0,
            update_slot_nr: [u16::MAX; AL_UPDATES_PER_TRANSACTION],
            update_extent_nr: [AL_FREE; AL_UPDATES_PER_TRANSACTION],
            context: [AL_FREE; AL_CONTEXT_PER_TRANSACTION],
        }
    }
}

/// Verify magic and checksum of a 4 KiB AL block.
pub fn check_block(block: &[u8]) -> Result<(), AlError> {
    let blk = block.get(..MD_BLOCK_SIZE).ok_or(AlError::TooShort)?;
    let mut r = Reader::new(blk);
    let magic = r.u32()?;
    r.skip(4)?;
    let stored = r.u32()?;
    if magic != AL_MAGIC {
        return Err(AlError::BadMagic);
    }
    let head = blk.get(..8).ok_or(AlError::TooShort)?;
    let tail = blk.get(12..).ok_or(AlError::TooShort)?;
    let crc = crc32c(crc32c(crc32c(0, head), &[0; 4]), tail);
    if crc != stored {
        return Err(AlError::BadChecksum);
    }
    Ok(())
}

impl Transaction {
    /// Decode and verify (magic, crc32c, type) a 4 KiB AL block.
    pub fn decode(block: &[u8]) -> Result<Transaction, AlError> {
        let mut t = Transaction::default();
        t.decode_into(block)?;
        Ok(t)
    }

    /// Like [`Transaction::decode`], but into existing storage (a
    /// transaction is 4 KiB: the kernel keeps it off the stack). On error
    /// `self` may be partly overwritten.
    pub fn decode_into(&mut self, block: &[u8]) -> Result<(), AlError> {
        check_block(block)?;
        let mut r = Reader::new(block);
        r.skip(4)?;
        self.tr_number = r.u32()?;
        r.skip(4)?;
        self.transaction_type = r.u16()?;
        if self.transaction_type != AL_TR_UPDATE && self.transaction_type != AL_TR_INITIALIZED {
            return Err(AlError::BadType);
        }
        self.n_updates = r.u16()?;
        self.context_size = r.u16()?;
        self.context_start_slot_nr = r.u16()?;
        r.skip(16)?;
        for s in self.update_slot_nr.iter_mut() {
            *s = r.u16()?;
        }
        for e in self.update_extent_nr.iter_mut() {
            *e = r.u32()?;
        }
        for c in self.context.iter_mut() {
            *c = r.u32()?;
        }
        Ok(())
    }

    fn encode_into(&self, w: &mut Writer<'_>) -> Result<(), Short> {
        w.u32(AL_MAGIC)?;
        w.u32(self.tr_number)?;
        w.u32(0)?;
        w.u16(self.transaction_type)?;
        w.u16(self.n_updates)?;
        w.u16(self.context_size)?;
        w.u16(self.context_start_slot_nr)?;
        w.zeros(16)?;
        for s in self.update_slot_nr.iter() {
            w.u16(*s)?;
        }
        for e in self.update_extent_nr.iter() {
            w.u32(*e)?;
        }
        for c in self.context.iter() {
            w.u32(*c)?;
        }
        Ok(())
    }

    /// Encode into a 4 KiB block, including magic and crc32c.
    pub fn encode(&self, out: &mut [u8; MD_BLOCK_SIZE]) {
        let mut w = Writer::new(out);
        // Cannot fail: the fields fill exactly 4096 bytes.
        let _ = self.encode_into(&mut w);
        super::meta::al_seal_block(out);
    }
}

/// A position in the ring together with its transaction number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    /// Ring index (transaction slot, before striping).
    pub index: u32,
    /// Transaction number found there.
    pub tr_number: u32,
}

/// First pass of a replay: feed every ring index once, in order.
#[derive(Debug, Clone, Default)]
pub struct ReplayScan {
    size: u32,
    fed: u32,
    found_valid: u32,
    found_valid_updates: u32,
    first_valid: bool,
    oldest: Cursor,
    newest: Cursor,
}

/// What a replay has to do after scanning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayPlan {
    /// Only initialized blocks: the log is clean, nothing to apply.
    Clean,
    /// Apply ring indexes `first..=last` (modulo the ring size, `last` may
    /// exceed the size to express wrap-around) in that order.
    Apply {
        /// Ring index of the oldest valid update transaction.
        first: u32,
        /// Ring index of the newest one (unwrapped: may be >= ring size).
        last: u32,
    },
}

impl ReplayScan {
    /// Start scanning a ring of `al_size_4k` blocks.
    pub fn new(al_size_4k: u32) -> Self {
        ReplayScan {
            size: al_size_4k,
            ..ReplayScan::default()
        }
    }

    /// Feed the block at ring index `index` (call for 0, 1, ... size-1).
    /// Returns the decoded transaction if the block is valid.
    pub fn feed(&mut self, index: u32, block: &[u8]) -> Option<Transaction> {
        if !self.feed_header(index, block) {
            return None;
        }
        Transaction::decode(block).ok()
    }

    /// Like [`ReplayScan::feed`] without decoding the whole transaction:
    /// only magic, checksum, number and type are looked at. Returns whether
    /// the block is valid.
    pub fn feed_header(&mut self, index: u32, block: &[u8]) -> bool {
        self.fed = self.fed.saturating_add(1);
        if check_block(block).is_err() {
            return false;
        }
        let mut r = Reader::new(block);
        let (tr_number, ty) = match (r.skip(4), r.u32(), r.skip(4), r.u16()) {
            (Ok(()), Ok(tr), Ok(()), Ok(ty)) => (tr, ty),
            _ => return false,
        };
        if ty != AL_TR_UPDATE && ty != AL_TR_INITIALIZED {
            return false;
        }
        self.found_valid += 1;
        if index == 0 {
            self.first_valid = true;
        }
        if ty == AL_TR_INITIALIZED {
            return true;
        }
        let cur = Cursor { index, tr_number };
        self.found_valid_updates += 1;
        if self.found_valid_updates == 1 {
            self.oldest = cur;
            self.newest = cur;
            return true;
        }
        // Serial-number arithmetic, as transaction numbers wrap.
        if (tr_number.wrapping_sub(self.oldest.tr_number) as i32) < 0 {
            self.oldest = cur;
        }
        if (tr_number.wrapping_sub(self.newest.tr_number) as i32) > 0 {
            self.newest = cur;
        }
        true
    }

    /// Number of valid blocks seen.
    pub fn valid_blocks(&self) -> u32 {
        self.found_valid
    }

    /// Number of invalid blocks seen (corrupt or never written).
    pub fn corrupt_blocks(&self) -> u32 {
        self.size.saturating_sub(self.found_valid)
    }

    /// Number of valid update transactions seen.
    pub fn valid_updates(&self) -> u32 {
        self.found_valid_updates
    }

    /// Decide what to replay.
    pub fn finish(&self) -> Result<ReplayPlan, AlError> {
        if self.found_valid == 0 {
            return Err(AlError::NoValidBlock);
        }
        if self.found_valid_updates == 0 {
            // All initialized, or only the very first write failed.
            if self.found_valid == self.size
                || (!self.first_valid && self.found_valid + 1 == self.size)
            {
                return Ok(ReplayPlan::Clean);
            }
            return Err(AlError::NoValidUpdate);
        }
        let mut last = self.newest.index;
        if last < self.oldest.index {
            last = last.saturating_add(self.size);
        }
        Ok(ReplayPlan::Apply {
            first: self.oldest.index,
            last,
        })
    }
}

/// Apply one valid update transaction to the slot table `hot`
/// (`hot[slot]` = extent, [`AL_FREE`] = empty). Context first, then updates.
/// Entries with slot numbers beyond `hot` (or >= [`AL_EXTENTS_MAX`]) are
/// skipped and counted in the return value.
pub fn apply_transaction(t: &Transaction, hot: &mut [u32]) -> u32 {
    let mut skipped = 0;
    if t.transaction_type != AL_TR_UPDATE {
        return 0;
    }
    for (i, &ext) in t.context.iter().enumerate() {
        let slot = usize::from(t.context_start_slot_nr) + i;
        if ext == AL_FREE && slot >= usize::from(t.context_size) {
            continue;
        }
        match hot.get_mut(slot) {
            Some(h) if slot < AL_EXTENTS_MAX as usize => *h = ext,
            _ => skipped += 1,
        }
    }
    for (i, (&slot, &ext)) in t
        .update_slot_nr
        .iter()
        .zip(t.update_extent_nr.iter())
        .enumerate()
    {
        if i >= usize::from(t.n_updates) && slot == u16::MAX {
            continue;
        }
        let slot = usize::from(slot);
        match hot.get_mut(slot) {
            Some(h) if slot < AL_EXTENTS_MAX as usize => *h = ext,
            _ => skipped += 1,
        }
    }
    skipped
}

/// Rebuild the table of hot extents from an AL ring of `al_size_4k`
/// blocks: `read(i, buf)` fills `buf` with the block at ring index `i`
/// (ring index `i` holds transactions with `tr_number mod al_size_4k == i`;
/// map it to a sector with [`super::meta::al_tr_block`] semantics) and
/// returns false on a read error (the block then counts as invalid).
/// `buf` and `tr` are scratch space; `hot` (`hot[slot]` = extent) should
/// start as all [`AL_FREE`]. Each block is read twice (scan, then apply).
pub fn replay(
    al_size_4k: u32,
    mut read: impl FnMut(u32, &mut [u8; MD_BLOCK_SIZE]) -> bool,
    buf: &mut [u8; MD_BLOCK_SIZE],
    tr: &mut Transaction,
    hot: &mut [u32],
) -> Result<ReplayPlan, AlError> {
    let mut scan = ReplayScan::new(al_size_4k);
    for i in 0..al_size_4k {
        if read(i, buf) {
            scan.feed_header(i, buf);
        } else {
            scan.fed = scan.fed.saturating_add(1);
        }
    }
    let plan = scan.finish()?;
    if let ReplayPlan::Apply { first, last } = plan {
        for i in first..=last {
            let idx = i % al_size_4k.max(1);
            if read(idx, buf) && tr.decode_into(buf).is_ok() {
                apply_transaction(tr, hot);
            }
        }
    }
    Ok(plan)
}

/// The AL extent covering `sector`.
pub fn extent_of_sector(sector: u64) -> u64 {
    sector >> (AL_EXTENT_SHIFT - 9)
}

#[cfg(test)]
mod tests {
    use super::super::meta::al_init_block;
    use super::*;

    fn update(tr: u32, updates: &[(u16, u32)]) -> [u8; 4096] {
        let mut t = Transaction {
            tr_number: tr,
            n_updates: updates.len() as u16,
            context_size: 0,
            ..Transaction::default()
        };
        for (i, &(s, e)) in updates.iter().enumerate() {
            t.update_slot_nr[i] = s;
            t.update_extent_nr[i] = e;
        }
        let mut b = [0u8; 4096];
        t.encode(&mut b);
        b
    }

    #[test]
    fn roundtrip_and_layout() {
        let b = update(5, &[(3, 77)]);
        assert_eq!(&b[0..4], &AL_MAGIC.to_be_bytes());
        assert_eq!(&b[4..8], &5u32.to_be_bytes());
        assert_eq!(&b[14..16], &1u16.to_be_bytes());
        assert_eq!(&b[16..18], &0u16.to_be_bytes());
        assert_eq!(&b[36..38], &3u16.to_be_bytes());
        assert_eq!(&b[38..40], &[0xff, 0xff]);
        assert_eq!(&b[164..168], &77u32.to_be_bytes());
        assert_eq!(&b[420..424], &[0xff; 4]);
        let t = Transaction::decode(&b).unwrap();
        assert_eq!(t.tr_number, 5);
        let mut b2 = [0u8; 4096];
        t.encode(&mut b2);
        assert_eq!(b, b2);
        let mut bad = b;
        bad[2000] ^= 4;
        assert_eq!(Transaction::decode(&bad), Err(AlError::BadChecksum));
        assert_eq!(Transaction::decode(&b[..100]), Err(AlError::TooShort));
    }

    #[test]
    fn replay_clean_ring() {
        let mut scan = ReplayScan::new(8);
        let mut b = [0u8; 4096];
        al_init_block(0, &mut b);
        for i in 0..8 {
            assert!(scan.feed(i, &b).is_some());
        }
        assert_eq!(scan.finish(), Ok(ReplayPlan::Clean));
        let mut scan = ReplayScan::new(8);
        for i in 0..8 {
            scan.feed(i, &[0u8; 4096]);
        }
        assert_eq!(scan.finish(), Err(AlError::NoValidBlock));
    }

    #[test]
    fn replay_wrapping_ring() {
        // ring of 4: indexes hold tr 8, 9, 6, 7 -> oldest at 2, newest at 1.
        let blocks = [
            update(8, &[(0, 100)]),
            update(9, &[(1, 200), (0, AL_FREE)]),
            update(6, &[(0, 5)]),
            update(7, &[(2, 300)]),
        ];
        let mut scan = ReplayScan::new(4);
        for (i, b) in blocks.iter().enumerate() {
            scan.feed(i as u32, b);
        }
        let plan = scan.finish().unwrap();
        assert_eq!(plan, ReplayPlan::Apply { first: 2, last: 5 });
        let mut hot = [AL_FREE; 16];
        if let ReplayPlan::Apply { first, last } = plan {
            for i in first..=last {
                let t = Transaction::decode(&blocks[(i % 4) as usize]).unwrap();
                apply_transaction(&t, &mut hot);
            }
        }
        assert_eq!(&hot[..4], &[AL_FREE, 200, 300, AL_FREE]);
    }

    #[test]
    fn apply_skips_out_of_range_slots() {
        let t = Transaction::decode(&update(1, &[(40, 1), (3, 2)])).unwrap();
        let mut hot = [AL_FREE; 8];
        assert_eq!(apply_transaction(&t, &mut hot), 1);
        assert_eq!(hot[3], 2);
    }
}
