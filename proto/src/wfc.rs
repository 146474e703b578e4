//! Wait-for-connection timeouts (`startup { wfc-timeout; degr-wfc-timeout;
//! outdated-wfc-timeout; }`): which one a `wait-connect` uses for a peer device.
//!
//! The kernel answers `DRBD_ADM_GET_TIMEOUT_TYPE` per peer device: peer-outdated when the
//! peer's disk is known Outdated, degraded when this node was a Primary without that peer
//! before it went down (`MDF_PRIMARY_IND` set and the peer slot's `MDF_PEER_CONNECTED`
//! clear at attach, until the peer connects), default otherwise. drbdsetup orders the three
//! values first (each must not exceed the one before it) and prints DRBD's notes when it
//! changes one. Pure functions, no I/O.

use super::meta::{MDF_PEER_CONNECTED, MDF_PRIMARY_IND};

/// `timeout_type` of `timeout_parms`.
pub mod timeout_type {
    /// `wfc-timeout` applies.
    pub const DEFAULT: u32 = 0;
    /// `degr-wfc-timeout` applies.
    pub const DEGRADED: u32 = 1;
    /// `outdated-wfc-timeout` applies.
    pub const PEER_OUTDATED: u32 = 2;
}

/// At attach: this node was Primary while not connected to the peer of slot flags
/// `peer_flags`, so it will probably not find that peer now either (`primary_now`: the
/// resource is Primary already, which never waits degraded).
pub const fn degraded_at_attach(primary_now: bool, md_flags: u32, peer_flags: u32) -> bool {
    !primary_now && md_flags & MDF_PRIMARY_IND != 0 && peer_flags & MDF_PEER_CONNECTED == 0
}

/// The kernel's answer for one peer device.
pub const fn timeout_type(peer_outdated: bool, degraded: bool) -> u32 {
    if peer_outdated {
        timeout_type::PEER_OUTDATED
    } else if degraded {
        timeout_type::DEGRADED
    } else {
        timeout_type::DEFAULT
    }
}

/// Peer slot flags with `MDF_PEER_CONNECTED` set or cleared (kept on disk, so a restart
/// knows whether the peer was there).
pub const fn peer_flags(flags: u32, connected: bool) -> u32 {
    if connected {
        flags | MDF_PEER_CONNECTED
    } else {
        flags & !MDF_PEER_CONNECTED
    }
}

/// The three startup timeouts in seconds, 0 = forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    /// `wfc-timeout`.
    pub wfc: u64,
    /// `degr-wfc-timeout`.
    pub degr: u64,
    /// `outdated-wfc-timeout`.
    pub outdated: u64,
}

/// Which value drbdsetup changed while ordering the timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Adjusted {
    /// `degr-wfc-timeout` was set to `wfc-timeout`.
    pub degr: bool,
    /// `outdated-wfc-timeout` was reset.
    pub outdated: bool,
}

impl Timeouts {
    /// drbdsetup's ordering: a degraded wait is not longer than a normal one, an outdated
    /// one not longer than a degraded one. As drbdsetup 9 does, the second step assigns
    /// `wfc-timeout` (not `degr-wfc-timeout`) although its note names the latter.
    pub const fn ordered(self) -> (Timeouts, Adjusted) {
        let mut t = self;
        let mut a = Adjusted {
            degr: false,
            outdated: false,
        };
        if t.wfc > 0 && (t.wfc < t.degr || t.degr == 0) {
            t.degr = t.wfc;
            a.degr = true;
        }
        if t.degr > 0 && (t.degr < t.outdated || t.outdated == 0) {
            t.outdated = t.wfc;
            a.outdated = true;
        }
        (t, a)
    }

    /// Seconds to wait for a peer device of kernel timeout type `ty` (0 = forever).
    pub const fn select(self, ty: u32) -> u64 {
        match ty {
            timeout_type::DEGRADED => self.degr,
            timeout_type::PEER_OUTDATED => self.outdated,
            _ => self.wfc,
        }
    }
}

/// drbdsetup's notes for `a` (`t`: the ordered values), one line each.
pub fn notes(a: Adjusted, t: Timeouts) -> [Option<NoteLine>; 4] {
    [
        a.degr.then_some(NoteLine::Text(
            "degr-wfc-timeout has to be shorter than wfc-timeout",
        )),
        a.degr.then_some(NoteLine::Seconds(
            "degr-wfc-timeout implicitly set to wfc-timeout",
            t.degr,
        )),
        a.outdated.then_some(NoteLine::Text(
            "outdated-wfc-timeout has to be shorter than degr-wfc-timeout",
        )),
        a.outdated.then_some(NoteLine::Seconds(
            "outdated-wfc-timeout implicitly set to degr-wfc-timeout",
            t.degr,
        )),
    ]
}

/// One line of [`notes`]; `Seconds` prints as `text (Ns)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteLine {
    /// Printed as is.
    Text(&'static str),
    /// Printed as `text (Ns)`.
    Seconds(&'static str, u64),
}

impl core::fmt::Display for NoteLine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NoteLine::Text(t) => f.write_str(t),
            NoteLine::Seconds(t, s) => write!(f, "{t} ({s}s)"),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn kernel_side() {
        assert!(degraded_at_attach(false, MDF_PRIMARY_IND, 0));
        assert!(!degraded_at_attach(true, MDF_PRIMARY_IND, 0));
        assert!(!degraded_at_attach(
            false,
            MDF_PRIMARY_IND,
            MDF_PEER_CONNECTED
        ));
        assert!(!degraded_at_attach(false, 0, 0));
        assert_eq!(timeout_type(true, true), timeout_type::PEER_OUTDATED);
        assert_eq!(timeout_type(false, true), timeout_type::DEGRADED);
        assert_eq!(timeout_type(false, false), timeout_type::DEFAULT);
        assert_eq!(peer_flags(0x10, true), 0x11);
        assert_eq!(peer_flags(0x11, false), 0x10);
    }

    #[test]
    fn ordering_as_drbdsetup() {
        let t = Timeouts {
            wfc: 60,
            degr: 3,
            outdated: 2,
        };
        assert_eq!(t.ordered(), (t, Adjusted::default()));
        assert_eq!(t.select(timeout_type::DEGRADED), 3);
        assert_eq!(t.select(timeout_type::PEER_OUTDATED), 2);
        assert_eq!(t.select(timeout_type::DEFAULT), 60);
        // Longer degraded than normal: capped, with DRBD's note.
        let (o, a) = Timeouts {
            wfc: 10,
            degr: 20,
            outdated: 5,
        }
        .ordered();
        assert_eq!((o.degr, a.degr, a.outdated), (10, true, false));
        let lines: std::vec::Vec<_> = notes(a, o)
            .iter()
            .flatten()
            .map(|l| l.to_string())
            .collect();
        assert_eq!(
            lines,
            [
                "degr-wfc-timeout has to be shorter than wfc-timeout",
                "degr-wfc-timeout implicitly set to wfc-timeout (10s)"
            ]
        );
        // Only degr-wfc-timeout given: outdated becomes wfc (forever here).
        let (o, a) = Timeouts {
            wfc: 0,
            degr: 5,
            outdated: 0,
        }
        .ordered();
        assert_eq!(
            (o.degr, o.outdated, a.degr, a.outdated),
            (5, 0, false, true)
        );
        assert_eq!(
            notes(a, o)[3].map(|l| l.to_string()).as_deref(),
            Some("outdated-wfc-timeout implicitly set to degr-wfc-timeout (5s)")
        );
        // Nothing configured: wait forever, no notes.
        assert_eq!(
            Timeouts::default().ordered(),
            (Timeouts::default(), Adjusted::default())
        );
    }
}
