//! Packet headers: decode must not panic; a decoded header re-encodes to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use proto::wire::Header;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Header::decode(data) {
        let mut out = [0u8; 16];
        let n = h.encode(&mut out).expect("decoded header must encode");
        assert_eq!(&out[..n], &data[..n]);
    }
});
