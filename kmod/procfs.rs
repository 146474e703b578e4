//! `/proc/drbd`: DRBD 9 prints only a version header; tools parse its `version:` token.

use core::fmt::Write;

/// The DRBD release whose interfaces (genl API 2, protocol range, output formats) we implement.
pub(crate) const DRBD_VERSION: &str = "9.2.12";
/// Lowest and highest wire protocol versions we speak.
pub(crate) const PROTOCOL_MIN: u32 = 118;
/// See [`PROTOCOL_MIN`].
pub(crate) const PROTOCOL_MAX: u32 = 122;

/// Enough for the header.
pub(crate) type TextBuf = crate::text::TextBuf<512>;

/// Writes the contents of /proc/drbd.
pub(crate) fn render(out: &mut TextBuf) {
    let _ = writeln!(
        out,
        "version: {} (api:2/proto:{}-{})",
        DRBD_VERSION, PROTOCOL_MIN, PROTOCOL_MAX
    );
    let _ = writeln!(
        out,
        "GIT-hash: {} build by drbd-rs, {}",
        crate::build_info::GIT_HASH,
        crate::build_info::BUILD_DATE
    );
    // No transport is loaded yet: the TCP transport arrives with replication.
    let _ = writeln!(out, "Transports (api:21):");
}
