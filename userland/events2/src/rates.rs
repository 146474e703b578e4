//! Resync rates and estimate as drbd-utils prints them after a peer device's counters
//! (`events2 --statistics`, `status --verbose --statistics`): `dbdt1:` (MiB/s over the
//! kernel's recent window) and `eta:` (seconds to go at that rate, `nan` while nothing
//! moved); with more verbosity (`events2 --full --statistics`) first the raw timing members
//! and `want:`, `dbdt:` (since the start, without pauses) and `dbdt0:` (long window).

use crate::state::PeerDeviceStats;

/// A resync or verify with timing details is running.
pub fn sync_details(s: &PeerDeviceStats) -> bool {
    s.rs_total != 0 && s.rs_total != u64::MAX
}

/// Sectors still to go (the verify's when verifying).
pub fn sectors_to_go(s: &PeerDeviceStats) -> u64 {
    if s.ov_left != 0 {
        s.ov_left
    } else {
        s.out_of_sync.saturating_sub(s.resync_failed)
    }
}

/// MiB/s of `db` sectors in `dt` ms (0 ms counts as 1).
fn mib_s(db: f64, dt: u64) -> f64 {
    db / dt.max(1) as f64 * 1000.0 / 2048.0
}

/// Seconds to go at the recent rate; `None` when the recent window saw no progress.
pub fn eta(s: &PeerDeviceStats) -> Option<f64> {
    let db = s.rs_db1_sectors as i64 as f64;
    (db > 0.0).then(|| s.rs_dt1_ms.max(1) as f64 * 1e-3 * sectors_to_go(s) as f64 / db)
}

/// The recent rate in MiB/s.
pub fn dbdt1(s: &PeerDeviceStats) -> f64 {
    mib_s(s.rs_db1_sectors as i64 as f64, s.rs_dt1_ms)
}

/// The keys after `pending:`/`unacked:` at drbdsetup verbosity `verbose` (1: rates only,
/// 2: also the raw members); empty without sync details.
pub fn timing_keys(s: &PeerDeviceStats, verbose: u8) -> Vec<String> {
    let mut out = Vec::new();
    if !sync_details(s) || verbose == 0 {
        return out;
    }
    if verbose > 1 {
        for (k, v) in [
            ("rs-total", s.rs_total),
            ("rs-dt-start-ms", s.rs_dt_start_ms),
            ("rs-paused-ms", s.rs_paused_ms),
            ("rs-dt0-ms", s.rs_dt0_ms),
            ("rs-db0-sectors", s.rs_db0_sectors),
            ("rs-dt1-ms", s.rs_dt1_ms),
            ("rs-db1-sectors", s.rs_db1_sectors),
        ] {
            out.push(format!("{k}:{v}"));
        }
        let extra: [(&str, u64); 5] = if s.ov_left != 0 {
            [
                ("ov-start-sector", s.ov_start_sector),
                ("ov-stop-sector", s.ov_stop_sector),
                ("ov-position", s.ov_position),
                ("ov-left", s.ov_left),
                ("ov-skipped", s.ov_skipped),
            ]
        } else {
            [
                ("rs-failed", s.resync_failed),
                ("rs-same-csum", s.rs_same_csum),
                ("", 0),
                ("", 0),
                ("", 0),
            ]
        };
        for (k, v) in extra.iter().filter(|(k, _)| !k.is_empty()) {
            out.push(format!("{k}:{v}"));
        }
        if s.rs_c_sync_rate != 0 {
            out.push(format!("want:{:.2}", f64::from(s.rs_c_sync_rate) / 1024.0));
        }
        let done = s.rs_total.saturating_sub(sectors_to_go(s)) as f64;
        let dt = s.rs_dt_start_ms.saturating_sub(s.rs_paused_ms);
        out.push(format!("dbdt:{:.2}", mib_s(done, dt)));
        out.push(format!(
            "dbdt0:{:.2}",
            mib_s(s.rs_db0_sectors as i64 as f64, s.rs_dt0_ms)
        ));
    }
    out.push(format!("dbdt1:{:.2}", dbdt1(s)));
    out.push(match eta(s) {
        Some(e) => format!("eta:{e:.0}"),
        None => "eta:nan".to_string(),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syncing() -> PeerDeviceStats {
        PeerDeviceStats {
            rs_total: 8000,
            out_of_sync: 5000,
            rs_dt1_ms: 100,
            rs_db1_sectors: 50,
            rs_dt_start_ms: 2000,
            rs_paused_ms: 500,
            rs_dt0_ms: 0,
            rs_db0_sectors: 0,
            ..Default::default()
        }
    }

    #[test]
    fn as_drbd_utils_prints_them() {
        // drbd-utils' events2 test: rs_total 8000, out_of_sync 5000, dt1 100 ms, db1 50.
        let s = syncing();
        assert_eq!(timing_keys(&s, 1), ["dbdt1:0.24", "eta:10"]);
        let full = timing_keys(&s, 2);
        assert_eq!(
            full,
            [
                "rs-total:8000",
                "rs-dt-start-ms:2000",
                "rs-paused-ms:500",
                "rs-dt0-ms:0",
                "rs-db0-sectors:0",
                "rs-dt1-ms:100",
                "rs-db1-sectors:50",
                "rs-failed:0",
                "rs-same-csum:0",
                "dbdt:0.98",
                "dbdt0:0.00",
                "dbdt1:0.24",
                "eta:10"
            ]
        );
        let still = PeerDeviceStats {
            rs_db1_sectors: 0,
            ..syncing()
        };
        assert_eq!(timing_keys(&still, 1), ["dbdt1:0.00", "eta:nan"]);
        assert!(timing_keys(&PeerDeviceStats::default(), 2).is_empty());
        assert!(timing_keys(&s, 0).is_empty());
    }
}
