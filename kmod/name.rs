//! Resource names: short, printable, fixed-size (no allocation, usable in any context).

use core::fmt;

/// Longest resource name DRBD accepts (`ctx_resource_name` is a 128-byte string).
pub(crate) const NAME_MAX: usize = 127;

/// A validated resource name.
///
/// Invariant: `bytes[..len]` is printable ASCII without spaces or '/', 1..=NAME_MAX long.
#[derive(Clone)]
pub(crate) struct Name {
    bytes: [u8; NAME_MAX],
    len: usize,
}

impl Name {
    /// Validates a user-supplied name; `None` if it is empty, too long or has characters that
    /// would break event lines, paths or the status output.
    pub(crate) fn new(s: &str) -> Option<Self> {
        let raw = s.as_bytes();
        if raw.is_empty()
            || raw.len() > NAME_MAX
            || raw.iter().any(|&b| !(0x21..0x7f).contains(&b) || b == b'/')
        {
            return None;
        }
        let mut bytes = [0u8; NAME_MAX];
        bytes[..raw.len()].copy_from_slice(raw);
        Some(Self {
            bytes,
            len: raw.len(),
        })
    }

    /// The name as text.
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII is ever stored (see `new`).
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("?")
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
