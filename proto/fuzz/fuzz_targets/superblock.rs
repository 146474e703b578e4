//! Superblock decoding and checking against a layout: never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use proto::meta::{MdIndex, Superblock};

fuzz_target!(|data: &[u8]| {
    if let Ok(sb) = Superblock::decode(data) {
        if let Ok(l) = sb.layout(MdIndex::Internal, 1 << 21, 1 << 21) {
            let _ = sb.check(&l);
        }
        let mut out = [0u8; 4096];
        sb.encode(&mut out);
        assert_eq!(Superblock::decode(&out).expect("re-decode"), sb);
    }
});
