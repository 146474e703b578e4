//! DRBD 9 state enumerations with their on-wire values and display names.
//!
//! Roles, disk states, connection states and replication states travel in
//! P_STATE words (see [`super::wire::DrbdState`]) and appear in events2 and
//! `drbdsetup status` under the names returned by `name()`.

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $val:expr, $text:expr;)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vm])* $var = $val,)*
        }
        impl $name {
            /// Decode the on-wire value; `None` when out of range.
            pub fn from_u32(v: u32) -> Option<$name> {
                match v {
                    $($val => Some($name::$var),)*
                    _ => None,
                }
            }
            /// The on-wire value.
            pub fn to_u32(self) -> u32 {
                self as u32
            }
            /// The name DRBD prints for this value.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$var => $text,)*
                }
            }
        }
        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

wire_enum! {
    /// Role of a node (resource-wide).
    Role {
        /// Not known (peer not connected).
        Unknown = 0, "Unknown";
        /// Primary: may be opened for writing.
        Primary = 1, "Primary";
        /// Secondary: receives replicated writes.
        Secondary = 2, "Secondary";
    }
}

wire_enum! {
    /// State of a node's backing disk. The numeric order matters: rules
    /// compare disk states with `<`/`>`.
    DiskState {
        /// No backing disk.
        Diskless = 0, "Diskless";
        /// Reading meta-data.
        Attaching = 1, "Attaching";
        /// Detaching (protocol >= 110).
        Detaching = 2, "Detaching";
        /// IO error; becomes Diskless once the peer knows.
        Failed = 3, "Failed";
        /// Late attach, waiting for the handshake.
        Negotiating = 4, "Negotiating";
        /// Data not usable (sync target, fresh device).
        Inconsistent = 5, "Inconsistent";
        /// Consistent but known to be old.
        Outdated = 6, "Outdated";
        /// Unknown (peer disks only).
        DUnknown = 7, "DUnknown";
        /// Consistent; settled to Outdated or UpToDate on connect.
        Consistent = 8, "Consistent";
        /// Latest data.
        UpToDate = 9, "UpToDate";
    }
}

wire_enum! {
    /// Connection state (per connection).
    ConnState {
        /// Not trying to connect.
        StandAlone = 0, "StandAlone";
        /// Going down.
        Disconnecting = 1, "Disconnecting";
        /// Will try to connect.
        Unconnected = 2, "Unconnected";
        /// Lost because of a timeout.
        Timeout = 3, "Timeout";
        /// Lost because the peer closed the socket.
        BrokenPipe = 4, "BrokenPipe";
        /// Lost because of a network error.
        NetworkFailure = 5, "NetworkFailure";
        /// Lost because of a protocol violation.
        ProtocolError = 6, "ProtocolError";
        /// Tearing down.
        TearDown = 7, "TearDown";
        /// Sockets being established / handshake running.
        Connecting = 8, "Connecting";
        /// Handshake done.
        Connected = 9, "Connected";
    }
}

wire_enum! {
    /// Replication state (per peer device).
    ReplState {
        /// No replication (not connected).
        Off = 9, "Off";
        /// Connected, nothing to resync.
        Established = 10, "Established";
        /// About to become sync source.
        StartingSyncS = 11, "StartingSyncS";
        /// About to become sync target.
        StartingSyncT = 12, "StartingSyncT";
        /// Exchanging bitmaps, will be source.
        WFBitMapS = 13, "WFBitMapS";
        /// Exchanging bitmaps, will be target.
        WFBitMapT = 14, "WFBitMapT";
        /// 8.4 only.
        WFSyncUUID = 15, "WFSyncUUID";
        /// Resync running, sending data.
        SyncSource = 16, "SyncSource";
        /// Resync running, receiving data.
        SyncTarget = 17, "SyncTarget";
        /// Online verify, initiating side.
        VerifyS = 18, "VerifyS";
        /// Online verify, other side.
        VerifyT = 19, "VerifyT";
        /// Resync source, paused.
        PausedSyncS = 20, "PausedSyncS";
        /// Resync target, paused.
        PausedSyncT = 21, "PausedSyncT";
        /// Congested, sending out-of-sync marks.
        Ahead = 22, "Ahead";
        /// Peer is Ahead.
        Behind = 23, "Behind";
    }
}

impl ReplState {
    /// States 16..=21: resync or verify running or paused.
    pub fn is_sync(self) -> bool {
        (16..=21).contains(&(self as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_names() {
        assert_eq!(Role::from_u32(1), Some(Role::Primary));
        assert_eq!(Role::from_u32(3), None);
        assert_eq!(DiskState::UpToDate.to_u32(), 9);
        assert!(DiskState::Consistent > DiskState::Outdated);
        assert!(DiskState::Inconsistent < DiskState::DUnknown);
        assert_eq!(ConnState::from_u32(9).map(|c| c.name()), Some("Connected"));
        assert_eq!(ReplState::from_u32(14), Some(ReplState::WFBitMapT));
        assert_eq!(ReplState::from_u32(8), None);
        assert!(ReplState::PausedSyncT.is_sync());
        assert!(!ReplState::Ahead.is_sync());
    }
}
