//! Option sets as the user configured them (`net {}`, `disk {}` members), kept as validated
//! netlink attributes: `show` reports exactly what was set, `net-options`/`disk-options`
//! change members (or reset them with `--set-defaults`), and the code that acts on an option
//! reads it from here. Validation uses the genl-spec table (type, length, range), so an
//! option this kernel does not act on yet is still checked and reported, never lost.

use crate::failure::{fail, Outcome};
use crate::spec::generated::{ret, AttrSet, AttrType, Member};
use crate::spec::nla::{self, Attr, NlaError, NlaWriter};
use kernel::prelude::*;

/// The configured members of one attribute set.
///
/// Locking: owned by the state it belongs to (`ConnectionState`, `DeviceState`) and used under
/// that lock. Lifetime: that of its owner.
pub(crate) struct OptionSet {
    set: &'static AttrSet,
    /// Members kept elsewhere (names, paths): never stored here.
    skip: &'static [u16],
    /// Attributes in the order they were set, each member at most once.
    raw: KVec<u8>,
}

fn invalid(set: &AttrSet, m: &Member, why: &str) -> crate::failure::Failure {
    fail!(
        ret::ERR_INVALID_REQUEST,
        "{} option {}: {}",
        set.name,
        m.option.unwrap_or(m.name),
        why
    )
}

/// Checks one attribute against its member description.
fn check(set: &AttrSet, m: &Member, a: &Attr<'_>) -> Outcome {
    let bad = |e: NlaError| invalid(set, m, e.text());
    let value: Option<i128> = match m.ty {
        AttrType::Flag => {
            a.as_flag().map_err(bad)?;
            None
        }
        AttrType::U32 => Some(i128::from(a.as_u32().map_err(bad)?)),
        AttrType::S32 => Some(i128::from(a.as_i32().map_err(bad)?)),
        AttrType::U64 => Some(i128::from(a.as_u64().map_err(bad)?)),
        AttrType::String => {
            let max = if m.max_len == 0 {
                nla::NLA_MAX_PAYLOAD
            } else {
                usize::from(m.max_len)
            };
            a.as_str(max).map_err(bad)?;
            None
        }
        AttrType::Binary => {
            if m.max_len != 0 && a.payload.len() > usize::from(m.max_len) {
                return Err(invalid(set, m, "value too long"));
            }
            None
        }
    };
    if let Some(v) = value {
        let low = m.min.map(i128::from);
        let high = m.max.map(i128::from);
        if low.is_some_and(|l| v < l) || high.is_some_and(|h| v > h) {
            return Err(fail!(
                ret::ERR_INVALID_REQUEST,
                "{} option {}: {} is out of range {}..{}",
                set.name,
                m.option.unwrap_or(m.name),
                v as i64,
                m.min.unwrap_or(0),
                m.max.unwrap_or(0)
            ));
        }
    }
    Ok(())
}

impl OptionSet {
    /// An empty set (every member at its default).
    pub(crate) fn new(set: &'static AttrSet, skip: &'static [u16]) -> Self {
        Self {
            set,
            skip,
            raw: KVec::new(),
        }
    }

    /// The result of applying `members` (a request's nested attributes) to this set; with
    /// `reset` (`--set-defaults`) members absent from the request return to their defaults.
    /// Unknown non-mandatory members are ignored (unknown mandatory ones were refused
    /// earlier). Nothing changes on error.
    pub(crate) fn applied(&self, members: Option<&[u8]>, reset: bool) -> Outcome<Self> {
        let cap = self.raw.len() + members.map_or(0, |m| m.len()) + 8;
        let mut buf = KVec::from_elem(0u8, cap, GFP_KERNEL).map_err(|_| fail!(ret::ERR_NOMEM))?;
        let mut w = NlaWriter::new(&mut buf);
        let full = |_| fail!(ret::ERR_NOMEM);
        for a in members.map(nla::iter).into_iter().flatten() {
            let a =
                a.map_err(|e| fail!(ret::ERR_INVALID_REQUEST, "malformed options: {}", e.text()))?;
            let Some(m) = self.set.member(a.kind) else {
                continue;
            };
            if self.skip.contains(&a.kind) || matches!(nla::find(w.as_bytes(), a.kind), Ok(Some(_)))
            {
                continue;
            }
            check(self.set, m, &a)?;
            w.put_bytes(a.kind, a.payload).map_err(full)?;
        }
        if !reset {
            for a in nla::iter(&self.raw).flatten() {
                if !matches!(nla::find(w.as_bytes(), a.kind), Ok(Some(_))) {
                    w.put_bytes(a.kind, a.payload).map_err(full)?;
                }
            }
        }
        let mut raw = KVec::new();
        raw.extend_from_slice(w.as_bytes(), GFP_KERNEL)
            .map_err(|_| fail!(ret::ERR_NOMEM))?;
        Ok(Self {
            set: self.set,
            skip: self.skip,
            raw,
        })
    }

    /// The configured members as attributes (no nest), e.g. for option parsers.
    pub(crate) fn attrs(&self) -> &[u8] {
        &self.raw
    }

    /// Member `nr` as a number, if set.
    pub(crate) fn u32(&self, nr: u16) -> Option<u32> {
        nla::find(&self.raw, nr).ok().flatten()?.as_u32().ok()
    }

    /// Member `nr` as a flag, if set.
    pub(crate) fn flag(&self, nr: u16) -> Option<bool> {
        nla::find(&self.raw, nr).ok().flatten()?.as_flag().ok()
    }

    /// Whether member `nr` was set.
    pub(crate) fn has(&self, nr: u16) -> bool {
        matches!(nla::find(&self.raw, nr), Ok(Some(_)))
    }

    /// Appends the configured members to `w` (inside the caller's nest).
    pub(crate) fn write(&self, w: &mut NlaWriter<'_>) -> Result<(), NlaError> {
        w.put_raw(&self.raw)
    }
}
