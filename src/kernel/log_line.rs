//! One log line formatted into a bounded stack buffer, for `DbgPrintEx`.
//!
//! No allocation and no blocking, so it can be used at IRQL <= `DISPATCH_LEVEL`. Lines longer
//! than the buffer are truncated (and end with `...`); interior NULs, which would cut the C
//! string short, are replaced by `?`.

use core::fmt;

/// Capacity of one line, including the prefix, the newline and the terminating NUL. Well below
/// `DbgPrintEx`'s 512-byte limit and small enough for any kernel stack.
pub const LINE_CAPACITY: usize = 256;

/// Prefix of every line.
pub const PREFIX: &str = "wskecho: ";

/// Marker appended to a truncated line.
const TRUNCATED: &[u8] = b"...";

/// A NUL-terminated line under construction.
pub struct LogLine {
    bytes: [u8; LINE_CAPACITY],
    len: usize,
    truncated: bool,
}

impl LogLine {
    /// Formats `PREFIX`, `args` and a newline.
    pub fn format(args: fmt::Arguments<'_>) -> Self {
        let mut line = Self {
            bytes: [0; LINE_CAPACITY],
            len: 0,
            truncated: false,
        };
        line.push(PREFIX.as_bytes());
        // `write_str` never fails; a `Display` impl that errors just ends the line early.
        let _ = fmt::write(&mut line, args);
        line.finish();
        line
    }

    /// The line with its terminating NUL, for `%s`.
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
    use super::{LINE_CAPACITY, LogLine, PREFIX};

    /// The C string `DbgPrintEx` receives, without its NUL.
    fn c_string(line: &LogLine) -> &[u8] {
        assert!(line.bytes.contains(&0), "NUL-terminated within the buffer");
        // SAFETY: the pointer is to `line.bytes`, which contains a NUL (checked above) and
        // lives as long as the returned slice.
        unsafe { core::ffi::CStr::from_ptr(line.as_c_ptr()) }.to_bytes()
    }

    #[test]
    fn short_line_has_prefix_newline_and_nul() {
        let line = LogLine::format(format_args!("attached {}", 7));
        let expected = [PREFIX.as_bytes(), b"attached 7\n"].concat();
        assert_eq!(c_string(&line), expected.as_slice());
    }

    #[test]
    fn long_line_is_truncated_within_the_buffer() {
        let long = "x".repeat(3 * LINE_CAPACITY);
        let line = LogLine::format(format_args!("{long}"));
        let text = c_string(&line);
        assert!(text.len() < LINE_CAPACITY, "room for the NUL");
        assert!(text.ends_with(b"...\n"));
        assert!(text.starts_with(PREFIX.as_bytes()));
        assert_eq!(text.len(), LINE_CAPACITY - 1);
    }

    #[test]
    fn line_that_just_fits_is_not_marked_truncated() {
        let room = LogLine::text_capacity() - PREFIX.len();
        let line = LogLine::format(format_args!("{}", "y".repeat(room)));
        let text = c_string(&line);
        assert!(text.ends_with(b"y\n"), "no truncation marker");
        let one_more = LogLine::format(format_args!("{}", "y".repeat(room + 1)));
        assert!(c_string(&one_more).ends_with(b"...\n"));
    }

    #[test]
    fn interior_nul_does_not_cut_the_line() {
        let line = LogLine::format(format_args!("a\0b"));
        let expected = [PREFIX.as_bytes(), b"a?b\n"].concat();
        assert_eq!(c_string(&line), expected.as_slice());
    }
}
