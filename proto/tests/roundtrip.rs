//! Round-trip and robustness property tests for every codec (bounded:
//! proptest's default 256 cases per property, run by `cargo test`).

use proptest::prelude::*;
use proto::al::Transaction;
use proto::bitmap;
use proto::meta::{PeerSlot, Superblock, MD_BLOCK_SIZE};
use proto::wire::*;

macro_rules! fixed_roundtrip {
    ($test:ident, $ty:ident, $($field:ident : $strat:expr),*) => {
        proptest! {
            #[test]
            fn $test($($field in $strat),*) {
                let v = $ty { $($field),* };
                let mut buf = [0u8; 256];
                let n = v.encode(&mut buf).unwrap();
                prop_assert_eq!(n, $ty::SIZE);
                prop_assert_eq!($ty::decode(&buf[..n]).unwrap(), v);
                prop_assert!($ty::decode(&buf[..n - 1]).is_err());
                prop_assert!(v.encode(&mut buf[..n - 1]).is_err());
            }
        }
    };
}

fixed_roundtrip!(features, ConnectionFeatures, protocol_min: any::<u32>(), feature_flags: any::<u32>(), protocol_max: any::<u32>(), sender_node_id: any::<u32>(), receiver_node_id: any::<u32>());
fixed_roundtrip!(data_header, DataHeader, sector: any::<u64>(), block_id: any::<u64>(), seq_num: any::<u32>(), dp_flags: any::<u32>());
fixed_roundtrip!(trim, Trim, sector: any::<u64>(), block_id: any::<u64>(), seq_num: any::<u32>(), dp_flags: any::<u32>(), size: any::<u32>());
fixed_roundtrip!(block_req, BlockReq, sector: any::<u64>(), block_id: any::<u64>(), blksize: any::<u32>());
fixed_roundtrip!(rs_req, RsReq, sector: any::<u64>(), block_id: any::<u64>(), blksize: any::<u32>(), dagtag_node_id: any::<u32>(), dagtag: any::<u64>());
fixed_roundtrip!(block_ack, BlockAck, sector: any::<u64>(), block_id: any::<u64>(), blksize: any::<u32>(), seq_num: any::<u32>());
fixed_roundtrip!(ov_result, OvResult, sector: any::<u64>(), block_id: any::<u64>(), blksize: any::<u32>(), seq_num: any::<u32>(), result: any::<u32>());
fixed_roundtrip!(block_desc, BlockDesc, sector: any::<u64>(), blksize: any::<u32>());
fixed_roundtrip!(barrier, Barrier, barrier: any::<u32>());
fixed_roundtrip!(barrier_ack, BarrierAck, barrier: any::<u32>(), set_size: any::<u32>());
fixed_roundtrip!(confirm_stable, ConfirmStable, oldest_block_id: any::<u64>(), youngest_block_id: any::<u64>(), set_size: any::<u32>());
fixed_roundtrip!(state, StatePacket, state: any::<u32>());
fixed_roundtrip!(req_state, ReqState, mask: any::<u32>(), val: any::<u32>());
fixed_roundtrip!(req_state_reply, ReqStateReply, retcode: any::<i32>());
fixed_roundtrip!(twopc_request, TwopcRequest, tid: any::<u32>(), flags: any::<u32>(), pad16: any::<u16>(), initiator_node_id: any::<i8>(), target_node_id: any::<i8>(), nodes_to_reach: any::<u64>(), word0: any::<u64>(), word1: any::<u64>());
fixed_roundtrip!(twopc_reply, TwopcReply, tid: any::<u32>(), initiator_node_id: any::<u32>(), reachable_nodes: any::<u64>(), word0: any::<u64>(), word1: any::<u64>());
fixed_roundtrip!(peer_ack, PeerAck, mask: any::<u64>(), dagtag: any::<u64>());
fixed_roundtrip!(peers_in_sync, PeersInSync, sector: any::<u64>(), mask: any::<u64>(), size: any::<u32>());
fixed_roundtrip!(dagtag, Dagtag, dagtag: any::<u64>());
fixed_roundtrip!(peer_dagtag, PeerDagtag, dagtag: any::<u64>(), node_id: any::<u32>());
fixed_roundtrip!(current_uuid, CurrentUuid, uuid: any::<u64>(), weak_nodes: any::<u64>());
fixed_roundtrip!(flush_requests, FlushRequests, seq: any::<u64>());
fixed_roundtrip!(enable_replication, EnableReplication, enable: any::<u8>());
fixed_roundtrip!(delay_probe, DelayProbe, seq_num: any::<u32>(), offset: any::<u32>());

fn alg() -> impl Strategy<Value = AlgName> {
    proptest::collection::vec(1u8..=255, 0..=63).prop_map(|v| AlgName::new(&v).unwrap())
}

proptest! {
    #[test]
    fn header_roundtrip(kind in prop_oneof![Just(HeaderKind::H80), Just(HeaderKind::H95), Just(HeaderKind::H100)],
                        cmd in any::<u16>(), length in any::<u32>(), volume in any::<u16>()) {
        let length = if kind == HeaderKind::H80 { length & 0xffff } else { length };
        let volume = if kind == HeaderKind::H100 { volume } else { VOLUME_CONNECTION };
        let h = Header { kind, cmd, length, volume };
        let mut b = [0u8; 16];
        let n = h.encode(&mut b).unwrap();
        prop_assert_eq!(n, kind.size());
        // h80/h95 magics cannot be confused with each other
        prop_assert_eq!(Header::decode(&b[..n]).unwrap(), h);
    }

    #[test]
    fn sizes_roundtrip(d in any::<u64>(), u in any::<u64>(), c in any::<u64>(), m in any::<u32>(), q in any::<u16>(), f in any::<u16>(),
                       wsame in any::<bool>(), l in any::<[u32; 5]>(), bytes in any::<[u8; 4]>()) {
        let s = Sizes {
            base: SizesBase { d_size: d, u_size: u, c_size: c, max_bio_size: m, queue_order_type: q, dds_flags: f },
            qlim: wsame.then_some(Qlim { physical_block_size: l[0], logical_block_size: l[1], alignment_offset: l[2], io_min: l[3], io_opt: l[4],
                discard_enabled: bytes[0], discard_zeroes_data: bytes[1], write_same_capable: bytes[2], bm_block_shift_minus_12: bytes[3] }),
        };
        let mut b = [0u8; 64];
        let n = s.encode(&mut b).unwrap();
        prop_assert_eq!(n, if wsame { 56 } else { 32 });
        prop_assert_eq!(Sizes::decode(&b[..n], wsame).unwrap(), s);
    }

    #[test]
    fn protocol_roundtrip(p in 1u32..=3, a in any::<[u32; 5]>(), alg in alg()) {
        let v = Protocol { protocol: p, after_sb_0p: a[0], after_sb_1p: a[1], after_sb_2p: a[2], conn_flags: a[3], two_primaries: a[4], integrity_alg: alg };
        let mut b = [0u8; 128];
        let n = v.encode(&mut b).unwrap();
        prop_assert_eq!(Protocol::decode(&b[..n]).unwrap(), v);
    }

    #[test]
    fn rs_param_roundtrip(r in any::<u32>(), v in alg(), c in alg(), x in any::<[u32; 4]>()) {
        let p = RsParam { resync_rate: r, verify_alg: v, csums_alg: c, c_plan_ahead: x[0], c_delay_target: x[1], c_fill_target: x[2], c_max_rate: x[3] };
        let mut b = [0u8; 200];
        prop_assert_eq!(p.encode(&mut b).unwrap(), RsParam::SIZE);
        prop_assert_eq!(RsParam::decode(&b[..RsParam::SIZE]).unwrap(), p);
    }

    #[test]
    fn uuids_roundtrip(head in any::<[u64; 4]>(), mask in any::<u64>(), bm in any::<[u64; 32]>(), hist in any::<[u64; 32]>(), hc in 0u8..=32) {
        let mut u = Uuids110 { current_uuid: head[0], dirty_bits: head[1], uuid_flags: head[2], node_mask: head[3], bitmap_uuids_mask: mask, history_count: hc, ..Uuids110::default() };
        for i in 0..64 {
            if mask & (1 << i) != 0 { u.bitmap_uuids[i] = bm[i % 32]; }
        }
        u.history_uuids[..hc as usize].copy_from_slice(&hist[..hc as usize]);
        let mut b = [0u8; 1024];
        let n = u.encode(&mut b).unwrap();
        prop_assert_eq!(Uuids110::decode(&b[..n]).unwrap(), u);
    }

    #[test]
    fn rle_roundtrip(words in proptest::collection::vec(prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>(), Just(0xff00)], 1..64), start_frac in 0u64..100) {
        let total = words.len() as u64 * 64;
        let start = total * start_frac / 100;
        let mut out = [0u8; 4096 - 16];
        let mut back = vec![0u64; words.len()];
        let mut pos = start;
        // Either compress a chunk or fall back to plain words, like DRBD.
        while pos < total {
            match rle_encode(&words, pos, total, &mut out) {
                Some((n, next)) => {
                    prop_assert!(next > pos);
                    let end = rle_decode(&out[..n], pos, total, |s, l| { bitmap::set_range(&mut back, s, s + l); }).unwrap();
                    prop_assert_eq!(end, next);
                    pos = next;
                }
                None => {
                    // plain: copy the word containing pos
                    let w = (pos / 64) as usize;
                    let lo = pos % 64;
                    back[w] |= words[w] & (u64::MAX << lo);
                    pos = (w as u64 + 1) * 64;
                }
            }
        }
        for i in 0..words.len() {
            let keep = if (i as u64 + 1) * 64 <= start { 0 } else if (i as u64) * 64 >= start { u64::MAX } else { u64::MAX << (start % 64) };
            prop_assert_eq!(back[i], words[i] & keep);
        }
    }

    #[test]
    fn vli_roundtrip(v in 1u64..(1u64 << 56)) {
        let (c, n) = vli_encode(v).unwrap();
        prop_assert_eq!(vli_decode(c), Some((v, n)));
    }

    #[test]
    fn superblock_roundtrip(a in any::<[u64; 4]>(), f in any::<[u32; 10]>(), i in any::<[i32; 3]>(), peers in any::<[(u64, u64, u32, i32); 32]>(), hist in any::<[u64; 32]>()) {
        let mut sb = Superblock {
            effective_size: a[0], current_uuid: a[1], members: a[2], device_uuid: a[3],
            flags: f[0], magic: proto::meta::MD_MAGIC_09, md_size_sect: f[1], al_offset: i[0], al_nr_extents: f[2], bm_offset: i[1],
            bm_bytes_per_bit: f[3], la_peer_max_bio_size: f[4], bm_max_peers: f[5], node_id: i[2], al_stripes: f[6], al_stripe_size_4k: f[7],
            ..Superblock::default()
        };
        for (s, p) in sb.peers.iter_mut().zip(peers.iter()) {
            *s = PeerSlot { bitmap_uuid: p.0, bitmap_dagtag: p.1, flags: p.2, bitmap_index: p.3 };
        }
        sb.history_uuids = hist;
        let mut b = [0u8; MD_BLOCK_SIZE];
        sb.encode(&mut b);
        prop_assert_eq!(Superblock::decode(&b).unwrap(), sb);
    }

    #[test]
    fn al_transaction_roundtrip(tr in any::<u32>(), n in 0u16..=64, cs in any::<u16>(), st in any::<u16>(), slots in any::<[u16; 64]>(), ext in any::<[u32; 64]>(), ctx in proptest::collection::vec(any::<u32>(), 919)) {
        let mut t = Transaction { tr_number: tr, n_updates: n, context_size: cs, context_start_slot_nr: st, update_slot_nr: slots, update_extent_nr: ext, ..Transaction::default() };
        t.context.copy_from_slice(&ctx);
        let mut b = [0u8; MD_BLOCK_SIZE];
        t.encode(&mut b);
        prop_assert_eq!(Transaction::decode(&b).unwrap(), t);
    }

    /// Decoders never panic on arbitrary input.
    #[test]
    fn decoders_total(data in proptest::collection::vec(any::<u8>(), 0..5000)) {
        let _ = Header::decode(&data);
        let _ = ConnectionFeatures::decode(&data);
        let _ = Protocol::decode(&data);
        let _ = RsParam::decode(&data);
        let _ = Uuids110::decode(&data);
        let _ = Sizes::decode(&data, true);
        let _ = TwopcRequest::decode(&data);
        let _ = rle_decode(&data, 0, 1 << 20, |_, _| {});
        let _ = Superblock::decode(&data);
        let _ = Transaction::decode(&data);
        let _ = proto::meta::al_check_block(&data);
    }

    #[test]
    fn bitmap_ops_match_naive(ops in proptest::collection::vec((any::<bool>(), 0u64..600, 0u64..600), 0..20)) {
        let mut w = [0u64; 8];
        let mut naive = [false; 512];
        for (set, a, b) in ops {
            let (s, e) = (a.min(b), a.max(b));
            if set { bitmap::set_range(&mut w, s, e); } else { bitmap::clear_range(&mut w, s, e); }
            for i in s..e.min(512) { naive[i as usize] = set; }
        }
        for i in 0..512u64 { prop_assert_eq!(bitmap::test_bit(&w, i), naive[i as usize]); }
        prop_assert_eq!(bitmap::count(&w), naive.iter().filter(|&&b| b).count() as u64);
        let first = naive.iter().position(|&b| b).map(|p| p as u64);
        prop_assert_eq!(bitmap::find_next_set(&w, 0, 512), first);
    }
}
