//! Resync timing as DRBD reports it in `peer_device_statistics` (`rs-dt-start-ms`,
//! `rs-paused-ms`, `rs-dt0-ms`/`rs-db0-sectors`, `rs-dt1-ms`/`rs-db1-sectors`), from which
//! drbd-utils derives `dbdt1:` (recent MiB/s) and `eta:` (seconds left; `events2::rates`).
//!
//! DRBD keeps eight "sync marks" (time, sectors left), taking a new one on progress at most
//! every 3 s: window 1 reaches back to the mark before the newest (3–6 s, the recent rate),
//! window 0 to the oldest still kept (about 20 s). Paused time is counted separately, and the
//! marks restart when a paused resync resumes. Pure arithmetic on caller-supplied
//! milliseconds; no clock of its own.

/// Number of marks (DRBD_SYNC_MARKS).
pub const MARKS: usize = 8;
/// Minimum distance between marks in ms (DRBD_SYNC_MARK_STEP, 3 s).
pub const MARK_STEP_MS: i64 = 3000;

/// One mark: when, and how many sectors were still to go then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    /// Time in ms.
    pub at_ms: i64,
    /// Sectors left.
    pub left: u64,
}

/// The timing of one resync (or verify) towards one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncClock {
    start_ms: i64,
    paused_ms: u64,
    paused_since: Option<i64>,
    marks: [Mark; MARKS],
    last: usize,
}

/// What the statistics report (all values as DRBD's members).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncTimes {
    /// `rs_dt_start_ms`: since the resync started.
    pub dt_start_ms: u64,
    /// `rs_paused_ms`: of that, paused.
    pub paused_ms: u64,
    /// `rs_dt0_ms`: length of the long window.
    pub dt0_ms: u64,
    /// `rs_db0_sectors`: sectors done in it.
    pub db0_sectors: u64,
    /// `rs_dt1_ms`: length of the recent window.
    pub dt1_ms: u64,
    /// `rs_db1_sectors`: sectors done in it.
    pub db1_sectors: u64,
}

fn ms(d: i64) -> u64 {
    u64::try_from(d).unwrap_or(0)
}

impl SyncClock {
    /// A resync of `left` sectors starts at `now` (`paused`: it starts paused).
    pub fn start(now: i64, left: u64, paused: bool) -> Self {
        SyncClock {
            start_ms: now,
            paused_ms: 0,
            paused_since: paused.then_some(now),
            marks: [Mark { at_ms: now, left }; MARKS],
            last: 0,
        }
    }

    /// Notes the pause state at `now`; a resync that resumes restarts its marks.
    pub fn set_paused(&mut self, now: i64, paused: bool, left: u64) {
        match (self.paused_since, paused) {
            (None, true) => self.paused_since = Some(now),
            (Some(since), false) => {
                self.paused_ms = self.paused_ms.saturating_add(ms(now - since));
                self.paused_since = None;
                self.marks = [Mark { at_ms: now, left }; MARKS];
            }
            _ => {}
        }
    }

    /// Progress: `left` sectors to go at `now`; takes a new mark once a step has passed.
    pub fn progress(&mut self, now: i64, left: u64) {
        if self.paused_since.is_some() {
            return;
        }
        let newest = self.marks[self.last % MARKS];
        if now - newest.at_ms >= MARK_STEP_MS {
            self.last = (self.last + 1) % MARKS;
            self.marks[self.last] = Mark { at_ms: now, left };
        }
    }

    /// The statistics at `now` with `left` sectors to go.
    pub fn times(&self, now: i64, left: u64) -> SyncTimes {
        let paused_now = self.paused_since.map_or(0, |s| ms(now - s));
        let window = |i: usize| {
            let m = self.marks[i % MARKS];
            (ms(now - m.at_ms), m.left.saturating_sub(left))
        };
        let (dt0_ms, db0_sectors) = window(self.last + 2);
        let (dt1_ms, db1_sectors) = window(self.last + MARKS - 1);
        SyncTimes {
            dt_start_ms: ms(now - self.start_ms),
            paused_ms: self.paused_ms.saturating_add(paused_now),
            dt0_ms,
            db0_sectors,
            dt1_ms,
            db1_sectors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_the_marks() {
        // 1 GiB (2 Mi sectors) at 10 MiB/s = 20480 sectors/s.
        let total = 2 * 1024 * 1024;
        let mut c = SyncClock::start(1000, total, false);
        let rate = 20480u64;
        let mut left = total;
        for s in 1..=10i64 {
            left -= rate;
            c.progress(1000 + s * 1000, left);
        }
        let t = c.times(11_000, left);
        assert_eq!(t.dt_start_ms, 10_000);
        assert_eq!(t.paused_ms, 0);
        // Marks at 1 s (start), 4, 7, 10 s: window 1 starts at 7 s, window 0 at the start.
        assert_eq!((t.dt1_ms, t.db1_sectors), (4000, 4 * rate));
        assert_eq!((t.dt0_ms, t.db0_sectors), (10_000, 10 * rate));
    }

    #[test]
    fn pauses_are_counted_and_restart_the_marks() {
        let mut c = SyncClock::start(0, 1000, false);
        c.progress(3000, 900);
        c.set_paused(4000, true, 900);
        c.progress(9000, 900); // no marks while paused
        assert_eq!(c.times(10_000, 900).paused_ms, 6000);
        c.set_paused(10_000, false, 900);
        let t = c.times(11_000, 880);
        assert_eq!(t.paused_ms, 6000);
        assert_eq!(t.dt_start_ms, 11_000);
        assert_eq!((t.dt1_ms, t.db1_sectors), (1000, 20));
        // Started paused: the pause runs from the start.
        let c = SyncClock::start(0, 10, true);
        assert_eq!(c.times(500, 10).paused_ms, 500);
    }

    #[test]
    fn no_progress_has_no_eta() {
        let c = SyncClock::start(0, 100, false);
        let t = c.times(2000, 100);
        assert_eq!((t.dt1_ms, t.db1_sectors), (2000, 0));
        // A clock going backwards never underflows.
        let t = c.times(-5, 200);
        assert_eq!((t.dt_start_ms, t.db1_sectors), (0, 0));
    }
}
