//! [`Platform`] for the kernel: tagged non-paged pool and `DbgPrintEx`.
//!
//! Every function here may run at IRQL <= `DISPATCH_LEVEL`:
//! * `ExAllocatePool2` with `POOL_FLAG_NON_PAGED`: IRQL <= `DISPATCH_LEVEL`
//!   (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-exallocatepool2>).
//! * `ExFreePoolWithTag`: IRQL <= `DISPATCH_LEVEL` for non-paged memory
//!   (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-exfreepoolwithtag>).
//! * `DbgPrintEx`: any IRQL <= `DIRQL` as long as no Unicode conversion (`%wZ`, `%ws`, ...) is
//!   used; the adapter only passes an 8-bit string through `%s`
//!   (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-dbgprintex>).

use core::{fmt, ptr::NonNull};

use wdk_sys::{
    POOL_FLAG_NON_PAGED, SIZE_T, ULONG,
    ntddk::{DbgPrintEx, ExAllocatePool2, ExFreePoolWithTag},
};

use crate::log_line::LogLine;
use wsk_primitives::platform::{Level, Platform, PoolTag};

/// `DPFLTR_IHVNETWORK_ID` (`dpfilter.h`): the component id for network drivers; enable its
/// output with `ed nt!Kd_IHVNETWORK_Mask 0xf` or the "Debug Print Filter" registry key.
const DPFLTR_IHVNETWORK_ID: ULONG = 80;

/// The kernel platform: stateless.
#[derive(Debug, Default, Clone, Copy)]
pub struct KernelPlatform;

/// `DPFLTR_*_LEVEL` of a core [`Level`] (`dpfilter.h`: ERROR 0, WARNING 1, TRACE 2, INFO 3).
const fn dpfltr_level(level: Level) -> ULONG {
    match level {
        Level::Error => 0,
        Level::Warning => 1,
        Level::Trace => 2,
        Level::Info => 3,
    }
}

impl Platform for KernelPlatform {
    fn allocate(&self, size: usize, tag: PoolTag) -> Option<NonNull<u8>> {
        let size = SIZE_T::try_from(size).ok()?;
        // SAFETY: non-paged allocations may be requested at IRQL <= DISPATCH_LEVEL, which the
        // Platform contract guarantees; the result is checked for NULL. Pool blocks are 16-byte
        // aligned on x64.
        let memory = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, size, tag.0) };
        NonNull::new(memory.cast::<u8>())
    }

    unsafe fn free(&self, ptr: NonNull<u8>, tag: PoolTag) {
        // SAFETY: the caller guarantees `ptr` came from `allocate` with `tag` and is not used
        // again; freeing non-paged memory is allowed at IRQL <= DISPATCH_LEVEL.
        unsafe { ExFreePoolWithTag(ptr.as_ptr().cast(), tag.0) };
    }

    /// Never inlined, and cold: the 256-byte [`LogLine`] then lives only in this function's
    /// frame, while a line is written, instead of in the frame of every function that logs
    /// (inlined, each call site added its own; `tools/pecheck --max-stack-frame`).
    #[inline(never)]
    #[cold]
    fn log(&self, level: Level, args: fmt::Arguments<'_>) {
        let line = LogLine::format(args);
        // SAFETY: both strings are NUL-terminated and outlive the call; `%s` with an 8-bit
        // string is allowed at any IRQL <= DIRQL.
        unsafe {
            DbgPrintEx(
                DPFLTR_IHVNETWORK_ID,
                dpfltr_level(level),
                c"%s".as_ptr(),
                line.as_c_ptr(),
            );
        }
    }
}
