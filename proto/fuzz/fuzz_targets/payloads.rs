//! Every payload decoder, selected by the first byte; decode-encode-decode is stable.
#![no_main]
use libfuzzer_sys::fuzz_target;
use proto::wire::*;

macro_rules! check {
    ($ty:ty, $data:expr) => {{
        if let Ok(v) = <$ty>::decode($data) {
            let mut out = [0u8; 2048];
            let n = v.encode(&mut out).expect("encode");
            assert_eq!(<$ty>::decode(&out[..n]).expect("re-decode"), v);
        }
    }};
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    match sel % 16 {
        0 => check!(ConnectionFeatures, rest),
        1 => check!(DataHeader, rest),
        2 => check!(BlockReq, rest),
        3 => check!(BlockAck, rest),
        4 => check!(BarrierAck, rest),
        5 => check!(TwopcRequest, rest),
        6 => check!(TwopcReply, rest),
        7 => check!(Uuids110, rest),
        8 => check!(Protocol, rest),
        9 => check!(RsParam, rest),
        10 => check!(PeerAck, rest),
        11 => check!(RsReq, rest),
        12 => check!(OvResult, rest),
        13 => check!(PeersInSync, rest),
        14 => {
            if let Ok(s) = Sizes::decode(rest, true) {
                let mut out = [0u8; 64];
                let n = s.encode(&mut out).expect("encode");
                assert_eq!(Sizes::decode(&out[..n], true).expect("re-decode"), s);
            }
        }
        _ => check!(StatePacket, rest),
    }
});
