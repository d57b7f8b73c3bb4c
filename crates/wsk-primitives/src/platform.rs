//! What a WSK client needs from its environment before any socket exists: tagged non-paged
//! memory and logging.
//!
//! The kernel adapter implements [`Platform`] with `ExAllocatePool2`/`ExFreePoolWithTag` and
//! `DbgPrintEx`; the host emulation with an accounting allocator that can inject failures.

use ::core::{fmt, ptr::NonNull};

/// A pool tag: four ASCII characters, stored so that `WinDbg`'s `!poolused` shows them in order
/// (the first character in the least significant byte, as the C literal `'ohcE'` is written).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolTag(pub u32);

impl PoolTag {
    /// Builds a tag from the four characters shown by `!poolused`.
    #[must_use]
    pub const fn from_chars(chars: [u8; 4]) -> Self {
        Self(u32::from_le_bytes(chars))
    }

    /// The four characters, as shown by `!poolused`.
    #[must_use]
    pub const fn chars(self) -> [u8; 4] {
        self.0.to_le_bytes()
    }
}

impl fmt::Debug for PoolTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.chars() {
            let c = if c.is_ascii_graphic() || c == b' ' {
                char::from(c)
            } else {
                '?'
            };
            fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
}

/// Severity of a log line (maps to `DPFLTR_ERROR_LEVEL` .. `DPFLTR_INFO_LEVEL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed; the line carries the NTSTATUS.
    Error,
    /// Unexpected but handled (a refused connection, a listener that stopped).
    Warning,
    /// One line per lifecycle step.
    Trace,
    /// Per-connection detail.
    Info,
}

/// Memory and logging, available from `DriverEntry` on, before any binding exists.
///
/// Implementations must be callable at IRQL <= `DISPATCH_LEVEL` from any thread.
pub trait Platform: Send + Sync {
    /// Allocates `size` bytes of non-paged memory with `tag`, aligned to at least 16 bytes.
    /// Returns `None` on failure (never panics, never blocks).
    fn allocate(&self, size: usize, tag: PoolTag) -> Option<NonNull<u8>>;

    /// Frees memory from [`Platform::allocate`].
    ///
    /// # Safety
    /// `ptr` came from `allocate` on this platform with the same `tag` and is not used again.
    unsafe fn free(&self, ptr: NonNull<u8>, tag: PoolTag);

    /// Writes one log line (the implementation adds its prefix). Must not allocate or block.
    fn log(&self, level: Level, args: fmt::Arguments<'_>);
}
