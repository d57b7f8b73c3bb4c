//! One log line formatted into a bounded stack buffer, for `DbgPrintEx`.
//!
//! No allocation and no blocking, so it can be used at IRQL <= `DISPATCH_LEVEL`. Lines longer
//! than the buffer are truncated (and end with `...`); interior NULs, which would cut the C
//! string short, are replaced by `?`.

use core::{
    ffi::{CStr, c_char},
    fmt, ptr,
    sync::atomic::{AtomicPtr, Ordering},
};

/// Capacity of one line, including the prefix, the newline and the terminating NUL. Well below
/// `DbgPrintEx`'s 512-byte limit and small enough for any kernel stack.
pub const LINE_CAPACITY: usize = 256;

/// Prefix of every line until the driver sets its own.
pub const DEFAULT_PREFIX: &CStr = c"wsk: ";

/// The prefix [`set_prefix`] set (NULL: [`DEFAULT_PREFIX`]): the adapter's one global.
static PREFIX: AtomicPtr<c_char> = AtomicPtr::new(ptr::null_mut());

/// Sets the prefix of every line: the driver's name and `": "`, by convention.
///
/// `set_prefix(c"mydriver: ")` in `DriverEntry`, before anything logs; a line uses the prefix
/// in effect when it is formatted.
pub fn set_prefix(prefix: &'static CStr) {
    PREFIX.store(prefix.as_ptr().cast_mut(), Ordering::Release);
}

/// The prefix of the next line.
#[must_use]
pub fn prefix() -> &'static CStr {
    let prefix = PREFIX.load(Ordering::Acquire);
    if prefix.is_null() {
        return DEFAULT_PREFIX;
    }
    // SAFETY: a pointer from `set_prefix`'s `&'static CStr`: NUL-terminated, valid forever,
    // never written through.
    unsafe { CStr::from_ptr(prefix) }
}

/// Marker appended to a truncated line.
const TRUNCATED: &[u8] = b"...";

/// A NUL-terminated line under construction.
pub struct LogLine {
    bytes: [u8; LINE_CAPACITY],
    len: usize,
    truncated: bool,
}

impl LogLine {
    /// Formats the [`prefix`], `args` and a newline.
    #[must_use]
    pub fn format(args: fmt::Arguments<'_>) -> Self {
        let mut line = Self {
            bytes: [0; LINE_CAPACITY],
            len: 0,
            truncated: false,
        };
        line.push(prefix().to_bytes());
        // `write_str` never fails; a `Display` impl that errors just ends the line early.
        let _ = fmt::write(&mut line, args);
        line.finish();
        line
    }

    /// The line with its terminating NUL, for `%s`.
    #[must_use]
    pub const fn as_c_ptr(&self) -> *const core::ffi::c_char {
        self.bytes.as_ptr().cast()
    }

    /// Bytes available for text: room is kept for "...\n" and the NUL.
    const fn text_capacity() -> usize {
        LINE_CAPACITY - TRUNCATED.len() - 2
    }

    fn push(&mut self, text: &[u8]) {
        for &byte in text {
            if self.len >= Self::text_capacity() {
                self.truncated = true;
                return;
            }
            if let Some(slot) = self.bytes.get_mut(self.len) {
                *slot = if byte == 0 { b'?' } else { byte };
                self.len += 1;
            }
        }
    }

    fn finish(&mut self) {
        let tail: &[u8] = if self.truncated { b"...\n" } else { b"\n" };
        for &byte in tail {
            if let Some(slot) = self.bytes.get_mut(self.len) {
                *slot = byte;
                self.len += 1;
            }
        }
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = 0;
        }
    }
}

impl fmt::Write for LogLine {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{LINE_CAPACITY, LogLine, set_prefix};

    /// The prefix every test sets (the same one, so tests may run in parallel).
    const PREFIX: &core::ffi::CStr = c"test-driver: ";

    /// Sets [`PREFIX`]; a line then starts with it, not with the default.
    fn prefix() -> &'static [u8] {
        set_prefix(PREFIX);
        PREFIX.to_bytes()
    }

    /// The C string `DbgPrintEx` receives, without its NUL.
    fn c_string(line: &LogLine) -> &[u8] {
        assert!(line.bytes.contains(&0), "NUL-terminated within the buffer");
        // SAFETY: the pointer is to `line.bytes`, which contains a NUL (checked above) and
        // lives as long as the returned slice.
        unsafe { core::ffi::CStr::from_ptr(line.as_c_ptr()) }.to_bytes()
    }

    #[test]
    fn short_line_has_prefix_newline_and_nul() {
        let expected = [prefix(), b"attached 7\n"].concat();
        let line = LogLine::format(format_args!("attached {}", 7));
        assert_eq!(c_string(&line), expected.as_slice());
    }

    #[test]
    fn long_line_is_truncated_within_the_buffer() {
        let prefix = prefix();
        let long = "x".repeat(3 * LINE_CAPACITY);
        let line = LogLine::format(format_args!("{long}"));
        let text = c_string(&line);
        assert!(text.len() < LINE_CAPACITY, "room for the NUL");
        assert!(text.ends_with(b"...\n"));
        assert!(text.starts_with(prefix));
        assert_eq!(text.len(), LINE_CAPACITY - 1);
    }

    #[test]
    fn line_that_just_fits_is_not_marked_truncated() {
        let room = LogLine::text_capacity() - prefix().len();
        let line = LogLine::format(format_args!("{}", "y".repeat(room)));
        let text = c_string(&line);
        assert!(text.ends_with(b"y\n"), "no truncation marker");
        let one_more = LogLine::format(format_args!("{}", "y".repeat(room + 1)));
        assert!(c_string(&one_more).ends_with(b"...\n"));
    }

    #[test]
    fn interior_nul_does_not_cut_the_line() {
        let expected = [prefix(), b"a?b\n"].concat();
        let line = LogLine::format(format_args!("a\0b"));
        assert_eq!(c_string(&line), expected.as_slice());
    }
}
