//! The MDL describing one connection's buffer.
//!
//! Built once per connection with `IoAllocateMdl` + `MmBuildMdlForNonPagedPool` over the
//! core-owned non-paged buffer (no probing or locking needed: non-paged pool is resident), and
//! freed with `IoFreeMdl` when the connection's I/O resources are dropped. Every `WSK_BUF`
//! built over it is checked against the described length first ([`OwnedMdl::checked_range`]): a `WSK_BUF` longer than its MDL
//! is a bugcheck.
//!
//! IRQL: `IoAllocateMdl`, `MmBuildMdlForNonPagedPool` and `IoFreeMdl` may be called at IRQL <=
//! `DISPATCH_LEVEL`
//! (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-ioallocatemdl>,
//! <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-mmbuildmdlfornonpagedpool>,
//! <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-iofreemdl>).

use core::{ops::Range, ptr::NonNull};

use wdk_sys::{
    MDL, ULONG,
    ntddk::{IoAllocateMdl, IoFreeMdl, MmBuildMdlForNonPagedPool},
};

/// An MDL over a non-paged buffer, freed on drop.
pub struct OwnedMdl {
    mdl: NonNull<MDL>,
    len: usize,
}

// SAFETY: the MDL is non-paged memory owned by this value and only read by WSK while an
// operation the core serialises is outstanding.
unsafe impl Send for OwnedMdl {}
// SAFETY: as above; shared references only hand out the raw pointer and read the length.
unsafe impl Sync for OwnedMdl {}

impl OwnedMdl {
    /// Describes `buffer`. `None` if it is empty, longer than a `ULONG`, or the MDL cannot be
    /// allocated.
    ///
    /// # Safety
    /// `buffer` is non-paged memory that stays valid (and is not freed) until this value is
    /// dropped.
    pub unsafe fn for_non_paged(buffer: NonNull<[u8]>) -> Option<Self> {
        let len = buffer.len();
        let length = ULONG::try_from(len).ok().filter(|&l| l > 0)?;
        // SAFETY: `buffer` is valid non-paged memory of `length` bytes (caller); no IRP is
        // associated (NULL), so the MDL is returned to us only.
        let mdl = unsafe {
            IoAllocateMdl(
                buffer.cast::<u8>().as_ptr().cast(),
                length,
                0,
                0,
                core::ptr::null_mut(),
            )
        };
        let mdl = NonNull::new(mdl)?;
        // SAFETY: `mdl` describes a non-paged buffer (caller), which is what this call requires.
        unsafe { MmBuildMdlForNonPagedPool(mdl.as_ptr()) };
        Some(Self { mdl, len })
    }

    /// The raw MDL.
    pub const fn as_ptr(&self) -> *mut MDL {
        self.mdl.as_ptr()
    }

    /// `range` as a `WSK_BUF` `(Offset, Length)`, if it is non-empty and lies within the MDL.
    pub fn checked_range(&self, range: &Range<usize>) -> Option<(ULONG, usize)> {
        if range.is_empty() || range.end > self.len {
            return None;
        }
        let offset = ULONG::try_from(range.start).ok()?;
        Some((offset, range.end - range.start))
    }
}

impl Drop for OwnedMdl {
    fn drop(&mut self) {
        // SAFETY: the MDL came from IoAllocateMdl and no operation using it is outstanding
        // (the core drops socket I/O resources only when idle).
        unsafe { IoFreeMdl(self.as_ptr()) };
    }
}
