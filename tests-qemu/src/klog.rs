//! Kernel log checks: find the reports that fail a test (BUG, WARNING, Oops, lockdep, KASAN, hung
//! tasks, ...) in a guest's console log.

/// Substrings that mark a kernel report. Matched against each console line.
pub const REPORT_MARKERS: &[&str] = &[
    "BUG:",
    "WARNING:",
    "Oops",
    "general protection",
    "Kernel panic",
    "kernel BUG at",
    "Call Trace:",
    "possible circular locking",
    "possible recursive locking",
    "inconsistent lock state",
    "suspicious RCU usage",
    "blocked for more than",
    "soft lockup",
    "hard LOCKUP",
    "rcu_sched self-detected stall",
    "rcu: INFO:",
    "KASAN:",
    "UBSAN:",
    "suspected memory leak",
    "unreferenced object",
    "rust_panic",
    "panicked at",
];

/// One finding: the line that matched and the lines around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub line_no: usize,
    pub line: String,
    pub excerpt: String,
}

/// Reports in `log` whose line does not contain one of the `allowed` substrings.
/// Consecutive marker lines within one excerpt are folded into a single report.
pub fn find_reports(log: &str, allowed: &[String]) -> Vec<Report> {
    let lines: Vec<&str> = log.lines().collect();
    let mut out: Vec<Report> = vec![];
    let mut covered_until = 0usize;
    // Inside the trace of an allowed report, its generic "Call Trace:" does not count again.
    let mut allowed_trace_until = 0usize;
    for (i, l) in lines.iter().enumerate() {
        if i < covered_until {
            continue;
        }
        if l.contains("---[ end trace") {
            allowed_trace_until = 0;
        }
        if !REPORT_MARKERS.iter().any(|m| l.contains(m)) {
            continue;
        }
        if allowed.iter().any(|a| l.contains(a.as_str())) {
            allowed_trace_until = i + 80;
            continue;
        }
        if i < allowed_trace_until && l.contains("Call Trace:") {
            continue;
        }
        let from = i.saturating_sub(3);
        let to = (i + 40).min(lines.len());
        covered_until = to;
        out.push(Report {
            line_no: i + 1,
            line: l.to_string(),
            excerpt: lines[from..to].join("\n"),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "[    0.000000] Linux version 6.12.0\n[    0.5] virtio_blk virtio1: [vda] 65536 512-byte logical blocks\n\
                         init: node0 up, starting drbd-guest-agent\n[   3.1] drbd: loading out-of-tree module taints kernel.\n";

    #[test]
    fn clean_log_has_no_reports() {
        assert!(find_reports(CLEAN, &[]).is_empty());
    }

    #[test]
    fn finds_warning_with_context() {
        let log = format!(
            "{CLEAN}[   5.0] ------------[ cut here ]------------\n[   5.0] WARNING: CPU: 0 PID: 42 at drbd/main.rs:10 drbd_thing+0x10/0x20\n\
             [   5.0] Modules linked in: drbd(O)\n[   5.0] Call Trace:\n[   5.0]  <TASK>\n"
        );
        let r = find_reports(&log, &[]);
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(r[0].line.contains("WARNING: CPU: 0"));
        assert!(r[0].excerpt.contains("cut here") && r[0].excerpt.contains("Call Trace:"));
    }

    #[test]
    fn finds_each_kind() {
        for l in [
            "[ 1.0] BUG: kernel NULL pointer dereference, address: 0000000000000008",
            "[ 1.0] Oops: general protection fault, probably for non-canonical address",
            "[ 1.0] Kernel panic - not syncing: Fatal exception",
            "[ 1.0] WARNING: possible circular locking dependency detected",
            "[ 1.0] INFO: task drbdsetup:99 blocked for more than 120 seconds.",
            "[ 1.0] BUG: KASAN: slab-use-after-free in drbd_free+0x1/0x2",
            "[ 1.0] unreferenced object 0xffff888003a1c000 (size 64):",
            "[ 1.0] rust_kernel: panicked at kmod/src/lib.rs:3:5:",
        ] {
            assert_eq!(find_reports(l, &[]).len(), 1, "{l}");
        }
    }

    #[test]
    fn allowed_patterns_are_skipped() {
        let log = "[ 1.0] WARNING: CPU: 0 PID: 1 at fs/expected.c:1 x\n[ 1.0] Call Trace:\n\
                   [ 1.0] ---[ end trace 0000000000000000 ]---\n[ 2.0] BUG: unexpected\n";
        let r = find_reports(log, &["fs/expected.c".to_string()]);
        assert_eq!(r.len(), 1);
        assert!(r[0].line.contains("BUG: unexpected"));
    }
}
