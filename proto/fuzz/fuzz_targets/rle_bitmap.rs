//! Compressed bitmap decoding: never panics, never reports runs past the end.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let total = 1u64 << 16;
    let _ = proto::wire::rle_decode(data, 0, total, |s, l| {
        assert!(s + l <= total);
    });
});
