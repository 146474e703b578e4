//! AL transaction decoding and replay bookkeeping: never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use proto::al::{apply_transaction, ReplayScan, Transaction, AL_FREE};

fuzz_target!(|data: &[u8]| {
    let mut scan = ReplayScan::new(8);
    let mut hot = [AL_FREE; 256];
    for (i, chunk) in data.chunks(4096).take(8).enumerate() {
        if let Some(t) = scan.feed(i as u32, chunk) {
            apply_transaction(&t, &mut hot);
        }
    }
    let _ = scan.finish();
    if let Ok(t) = Transaction::decode(data) {
        let mut out = [0u8; 4096];
        t.encode(&mut out);
        assert_eq!(Transaction::decode(&out).expect("re-decode"), t);
    }
});
