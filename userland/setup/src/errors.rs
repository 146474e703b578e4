//! Turning a reply's `ret_code` into drbdsetup's messages and exit status.

use genl_spec::generated::{ret, ss};

/// Exit status for usage errors, a missing module and local failures.
pub const EXIT_USAGE: i32 = 20;
/// Exit status when the kernel refused a request with a drbd_ret_code.
pub const EXIT_FAILURE: i32 = 10;

/// Result of checking a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Exit status (0 = success).
    pub exit: i32,
    /// Lines for stderr.
    pub stderr: Vec<String>,
}

/// What drbdsetup prints and returns for `code` (a drbd_ret_code or an
/// SS_* state change result) concerning `objname`, followed by the kernel's
/// info text lines.
pub fn check(objname: &str, code: i32, info: &[String]) -> Outcome {
    let mut stderr = Vec::new();
    if code == ret::NO_ERROR || code == ss::SUCCESS {
        if !info.is_empty() {
            stderr.push("warnings from kernel:".to_string());
            stderr.extend(info.iter().cloned());
        }
        return Outcome { exit: 0, stderr };
    }
    let known_ret = code > ret::ERR_CODE_BASE && code < ret::AFTER_LAST_ERR_CODE;
    let known_ss = code <= ss::CW_NO_NEED && code > ss::AFTER_LAST_ERROR;
    let exit = if !known_ret && !known_ss {
        stderr.push(format!(
            "{objname}: Error code {code} unknown.\nYou should update the drbd userland tools."
        ));
        EXIT_USAGE
    } else if code > ret::ERR_CODE_BASE {
        stderr.push(format!("{objname}: Failure: ({code}) {}", ret::text(code)));
        EXIT_FAILURE
    } else if code == ss::UNKNOWN_ERROR {
        stderr.push(format!(
            "{objname}: State change failed: ({code})unknown error."
        ));
        11
    } else if code > ss::TWO_PRIMARIES {
        // SS_NOTHING_TO_DO, SS_CW_SUCCESS, SS_CW_NO_NEED: success.
        0
    } else {
        stderr.push(format!(
            "{objname}: State change failed: ({code}) {}",
            ss::text(code)
        ));
        match code {
            ss::NO_UP_TO_DATE_DISK => 17,
            ss::LOWER_THAN_OUTDATED => 5,
            ss::NO_LOCAL_DISK => 16,
            _ => 11,
        }
    };
    if exit != 0 && !info.is_empty() {
        stderr.push("additional info from kernel:".to_string());
        stderr.extend(info.iter().cloned());
    }
    Outcome { exit, stderr }
}

/// Message and status when the kernel answered with a netlink errno.
pub fn errno_outcome(objname: &str, cmd: &str, errno: i32) -> Outcome {
    let text = std::io::Error::from_raw_os_error(errno);
    let mut stderr = vec![format!("{objname}: error receiving config reply: {text}")];
    if errno == 1 || errno == 13 {
        stderr.push(format!(
            "'drbdsetup {cmd}' changes the kernel's configuration and needs root (CAP_SYS_ADMIN)."
        ));
    }
    Outcome {
        exit: EXIT_USAGE,
        stderr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ret_codes() {
        let o = check("r0", 158, &["unknown resource r0".into()]);
        assert_eq!(o.exit, 10);
        assert_eq!(
            o.stderr,
            [
                "r0: Failure: (158) Unknown resource",
                "additional info from kernel:",
                "unknown resource r0"
            ]
        );
        assert_eq!(
            check("1", 127, &[]).stderr,
            ["1: Failure: (127) Device minor not allocated"]
        );
        assert_eq!(
            check("r0", 101, &[]),
            Outcome {
                exit: 0,
                stderr: vec![]
            }
        );
    }

    #[test]
    fn state_results() {
        assert_eq!(check("r0", ss::NO_UP_TO_DATE_DISK, &[]).exit, 17);
        assert_eq!(
            check("r0", ss::NO_UP_TO_DATE_DISK, &[]).stderr,
            ["r0: State change failed: (-2) Need access to UpToDate data"]
        );
        assert_eq!(check("r0", ss::LOWER_THAN_OUTDATED, &[]).exit, 5);
        assert_eq!(check("r0", ss::NO_LOCAL_DISK, &[]).exit, 16);
        assert_eq!(check("r0", ss::DEVICE_IN_USE, &[]).exit, 11);
        assert_eq!(check("r0", ss::NOTHING_TO_DO, &[]).exit, 0);
        assert_eq!(check("r0", ss::CW_SUCCESS, &[]).exit, 0);
        assert_eq!(check("r0", ss::UNKNOWN_ERROR, &[]).exit, 11);
    }

    #[test]
    fn unknown_codes() {
        let o = check("r0", 4242, &[]);
        assert_eq!(o.exit, 20);
        assert!(o.stderr[0].starts_with("r0: Error code 4242 unknown."));
        assert_eq!(check("r0", -200, &[]).exit, 20);
    }

    #[test]
    fn warnings_on_success() {
        let o = check("r0", 101, &["be careful".into()]);
        assert_eq!(o.exit, 0);
        assert_eq!(o.stderr, ["warnings from kernel:", "be careful"]);
    }

    #[test]
    fn eperm() {
        let o = errno_outcome("r0", "new-resource", 1);
        assert_eq!(o.exit, 20);
        assert!(o.stderr[0].contains("Operation not permitted"));
        assert!(o.stderr[1].contains("root"));
    }
}
