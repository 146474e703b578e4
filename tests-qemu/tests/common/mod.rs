//! Helpers shared by the scenario tests (each test file includes this module).
#![allow(dead_code)]

use std::time::Duration;
use tests_qemu::cluster::RunOpts;
use tests_qemu::{Node, Output};

/// `drbdmeta --force <minor> v09 <dev> internal create-md <max_peers>`, answering "yes" in case it
/// still asks.
pub fn create_md(n: &Node, minor: u32, dev: &str, max_peers: u32) -> Output {
    n.run_with(
        &format!("drbdmeta --force {minor} v09 {dev} internal create-md {max_peers}"),
        RunOpts {
            stdin: Some(b"yes\nyes\n".to_vec()),
            ..Default::default()
        },
    )
}

pub fn create_md_ok(n: &Node, minor: u32, dev: &str, max_peers: u32) {
    let o = create_md(n, minor, dev, max_peers);
    assert!(o.success(), "{}: create-md failed\n{o}", n.name);
}

/// `new-resource`, `new-minor` (volume 0) and `attach` with internal meta-data.
pub fn up(n: &Node, res: &str, minor: u32, dev: &str) {
    n.run_ok(&format!("drbdsetup new-resource {res} 0"));
    n.run_ok(&format!("drbdsetup new-minor {res} {minor} 0"));
    n.run_ok(&format!("drbdsetup attach {minor} {dev} {dev} internal"));
}

/// Asserts a command failed with `exit` and that stderr contains each of `words` (case-insensitive).
pub fn assert_fails(o: &Output, exit: i32, words: &[&str]) {
    assert_eq!(o.code(), Some(exit), "expected exit status {exit}\n{o}");
    let err = o.stderr.to_lowercase();
    for w in words {
        assert!(err.contains(&w.to_lowercase()), "stderr lacks {w:?}\n{o}");
    }
}

/// Internal meta-data size in sectors for DRBD 9 (v09) with the default activity log
/// (1 stripe x 32 KiB) and 4 KiB per bitmap bit, computed over the whole backing capacity:
/// `align8(align4096(roundup64(sectors/8) / 8 * peers) / 512) + 8 + 64`.
pub fn internal_md_sectors(backing_sectors: u64, max_peers: u64) -> u64 {
    let bits = backing_sectors.div_ceil(8).div_ceil(64) * 64;
    let bm_bytes = (bits / 8 * max_peers).div_ceil(4096) * 4096;
    (bm_bytes / 512).div_ceil(8) * 8 + 8 + 64
}

/// Usable size of `/dev/drbdN` in bytes on a backing device of `backing_bytes`.
pub fn drbd_size_internal(backing_bytes: u64, max_peers: u64) -> u64 {
    let sectors = (backing_bytes / 512) & !7;
    (sectors - internal_md_sectors(backing_bytes / 512, max_peers)) * 512
}

pub const LONG: Duration = Duration::from_secs(300);

#[test]
fn md_size_formula() {
    // 256 MiB, 1 peer: 64 Ki bits -> 8 KiB bitmap = 16 sectors; + 8 superblock + 64 AL.
    assert_eq!(internal_md_sectors(524288, 1), 88);
    assert_eq!(drbd_size_internal(256 << 20, 1), (524288 - 88) * 512);
    // 1 GiB, 3 peers: 256 Ki bits = 32 KiB per peer -> 96 KiB = 192 sectors.
    assert_eq!(internal_md_sectors(2097152, 3), 192 + 72);
}
