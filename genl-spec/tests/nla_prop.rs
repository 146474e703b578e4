//! Property tests of the attribute codec: round trips and "never panics".

use genl_spec::nla::{self, Attr, NlaError, NlaWriter};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Val {
    U8(u8),
    U32(u32),
    I32(i32),
    U64(u64),
    Str(String),
    Bytes(Vec<u8>),
    Flag(bool),
    Nest(Vec<(u16, Val)>),
}

fn leaf() -> impl Strategy<Value = Val> {
    prop_oneof![
        any::<u8>().prop_map(Val::U8),
        any::<u32>().prop_map(Val::U32),
        any::<i32>().prop_map(Val::I32),
        any::<u64>().prop_map(Val::U64),
        "[^\u{0}]{0,40}".prop_map(Val::Str),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Val::Bytes),
        any::<bool>().prop_map(Val::Flag),
    ]
}

fn val() -> impl Strategy<Value = Val> {
    leaf().prop_recursive(3, 32, 6, |inner| {
        proptest::collection::vec((1u16..0x3fff, inner), 0..6).prop_map(Val::Nest)
    })
}

fn put(w: &mut NlaWriter<'_>, kind: u16, v: &Val) -> Result<(), NlaError> {
    match v {
        Val::U8(x) => w.put_u8(kind, *x),
        Val::U32(x) => w.put_u32(kind, *x),
        Val::I32(x) => w.put_i32(kind, *x),
        Val::U64(x) => w.put_u64(kind, *x),
        Val::Str(s) => w.put_str(kind, s),
        Val::Bytes(b) => w.put_bytes(kind, b),
        Val::Flag(f) => w.put_flag(kind, *f),
        Val::Nest(items) => {
            let m = w.nest_start(kind)?;
            for (k, v) in items {
                put(w, *k, v)?;
            }
            w.nest_end(m)
        }
    }
}

fn check(a: &Attr<'_>, kind: u16, v: &Val) {
    assert_eq!(a.kind, kind);
    match v {
        Val::U8(x) => assert_eq!(a.as_u8().unwrap(), *x),
        Val::U32(x) => assert_eq!(a.as_u32().unwrap(), *x),
        Val::I32(x) => assert_eq!(a.as_i32().unwrap(), *x),
        Val::U64(x) => assert_eq!(a.as_u64().unwrap(), *x),
        Val::Str(s) => assert_eq!(a.as_str(0).unwrap(), s),
        Val::Bytes(b) => assert_eq!(a.as_bytes(0).unwrap(), &b[..]),
        Val::Flag(f) => assert_eq!(a.as_flag().unwrap(), *f),
        Val::Nest(items) => {
            assert!(a.nested);
            let got: Vec<_> = a.nested().collect();
            assert_eq!(got.len(), items.len());
            for (g, (k, v)) in got.iter().zip(items) {
                check(g.as_ref().unwrap(), *k, v);
            }
        }
    }
}

proptest! {
    #[test]
    fn round_trip(items in proptest::collection::vec((1u16..0x3fff, val()), 0..8)) {
        let mut buf = vec![0u8; 1 << 16];
        let mut w = NlaWriter::new(&mut buf);
        for (k, v) in &items {
            put(&mut w, *k, v).unwrap();
        }
        let len = w.len();
        prop_assert_eq!(len % 4, 0);
        let bytes = &buf[..len];
        nla::validate(bytes).unwrap();
        let got: Vec<_> = nla::iter(bytes).collect();
        prop_assert_eq!(got.len(), items.len());
        for (g, (k, v)) in got.iter().zip(&items) {
            check(g.as_ref().unwrap(), *k, v);
        }
    }

    #[test]
    fn small_buffers_never_overflow(items in proptest::collection::vec((1u16..100, val()), 0..6), cap in 0usize..200) {
        let mut buf = vec![0u8; cap];
        let mut w = NlaWriter::new(&mut buf);
        for (k, v) in &items {
            if put(&mut w, *k, v).is_err() {
                break;
            }
        }
        prop_assert!(w.len() <= cap);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), kind in any::<u16>()) {
        fn walk(buf: &[u8], depth: u32) {
            for a in nla::iter(buf) {
                let Ok(a) = a else { break };
                let _ = (a.as_u8(), a.as_u16(), a.as_u32(), a.as_i32(), a.as_u64(), a.as_flag());
                let _ = (a.as_str(0), a.as_str(4), a.as_bytes(3));
                if depth < 4 {
                    walk(a.payload, depth + 1);
                }
            }
        }
        walk(&bytes, 0);
        let _ = nla::find(&bytes, kind);
        let _ = nla::validate(&bytes);
        let _ = nla::DrbdHeader::parse(&bytes);
        let _ = nla::GenlHeader::parse(&bytes);
    }
}
