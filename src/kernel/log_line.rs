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
