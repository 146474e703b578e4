//! Why a configuration request failed: DRBD's numeric code (a `drbd_ret_code` above 100, or a
//! negative state-change result) plus a human-readable info text for the reply.

use crate::spec::generated::{ret, ss};
use crate::text::TextBuf;
use core::fmt::Write;
use kernel::prelude::*;

/// Info texts longer than this are truncated.
pub(crate) const INFO_MAX: usize = 256;

/// A failed request.
pub(crate) struct Failure {
    /// `drbd_ret_code` (> 101) or state-change result (< 1).
    pub(crate) code: i32,
    /// Extra text for `additional info from kernel:` (boxed: results stay small; a failed
    /// allocation only loses the text).
    info: Option<KBox<TextBuf<INFO_MAX>>>,
}

/// Result of a configuration step.
pub(crate) type Outcome<T = ()> = core::result::Result<T, Failure>;

impl Failure {
    /// A failure with a code and no extra text.
    pub(crate) fn code(code: i32) -> Self {
        Self { code, info: None }
    }

    /// A failure with a code and an info text.
    pub(crate) fn with(code: i32, args: core::fmt::Arguments<'_>) -> Self {
        let mut text = TextBuf::new();
        let _ = text.write_fmt(args);
        Self {
            code,
            info: KBox::new(text, GFP_KERNEL).ok(),
        }
    }

    /// The info text ("" if none).
    pub(crate) fn info(&self) -> &str {
        self.info.as_ref().map_or("", |t| t.as_str())
    }

    /// DRBD's description of the code.
    pub(crate) fn text(&self) -> &'static str {
        if self.code > 100 {
            ret::text(self.code)
        } else {
            ss::text(self.code)
        }
    }
}

/// Shorthand: `fail!(code, "fmt", args…)`.
macro_rules! fail {
    ($code:expr) => { $crate::failure::Failure::code($code) };
    ($code:expr, $($arg:tt)+) => { $crate::failure::Failure::with($code, format_args!($($arg)+)) };
}
pub(crate) use fail;
