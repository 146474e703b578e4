//! Property: a resync chunk read ahead never carries a block older than a write noted after
//! its read started. Writes of random sizes and places hit a disk of versioned sectors while a
//! chunk (of random place and length, up to two tracked windows long) is "in flight"; the
//! blocks `ReadAhead::finish` leaves sendable must hold the version the read saw, which must
//! still be the disk's, and the blocks it spoils must all have been touched by some write
//! (only the shared last bit may spoil more).

use proptest::prelude::*;
use proto::resync_order::{ReadAhead, BLOCK_SECTORS, MAX_BLOCKS};

const DISK_SECTORS: u64 = 4096;

fn write_strategy() -> impl Strategy<Value = (u64, u64)> {
    (0..DISK_SECTORS, 1..64u64)
}

proptest! {
    #[test]
    fn sendable_blocks_are_never_stale(
        start_block in 0..(DISK_SECTORS / BLOCK_SECTORS - 1),
        len in 1..(2 * MAX_BLOCKS * BLOCK_SECTORS),
        writes in proptest::collection::vec(write_strategy(), 0..12),
    ) {
        let start = start_block * BLOCK_SECTORS;
        let len = len.min(DISK_SECTORS - start);
        let mut version = vec![0u32; DISK_SECTORS as usize];
        let mut ra = ReadAhead::new();
        ra.begin(start, len);
        let seen: Vec<u32> = version[start as usize..(start + len) as usize].to_vec();
        let mut touched = vec![false; len.div_ceil(BLOCK_SECTORS) as usize];
        for (sector, sectors) in writes {
            let end = (sector + sectors).min(DISK_SECTORS);
            ra.note_write(sector, end - sector);
            for s in sector..end {
                version[s as usize] += 1;
                if (start..start + len).contains(&s) {
                    touched[((s - start) / BLOCK_SECTORS) as usize] = true;
                }
            }
        }
        let spoiled = ra.finish().expect("a chunk was read ahead");
        let mut covered = 0;
        for (offset, run, written) in spoiled.runs(len) {
            prop_assert_eq!(offset, covered, "runs are contiguous");
            covered += run;
            for s in offset..offset + run {
                let block = (s / BLOCK_SECTORS) as usize;
                if written {
                    prop_assert!(
                        touched[block] || block as u64 >= MAX_BLOCKS - 1,
                        "block {} spoiled without a write", block
                    );
                } else {
                    prop_assert_eq!(
                        seen[s as usize], version[(start + s) as usize],
                        "sector {} of the chunk would be sent stale", s
                    );
                }
            }
        }
        prop_assert_eq!(covered, len, "runs cover the chunk");
    }
}
