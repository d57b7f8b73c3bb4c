//! Compile-time checks of the wdk-sys structures whose fields the adapter (and the `wdm.rs`
//! helpers) read or write directly. The cross-build's bindings come from mingw-w64's headers,
//! not Microsoft's (docs/building.md), so every field touched is pinned at its MSVC x64
//! offset, computed by hand from the `wdm.h` declarations on the reference pages
//! (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/ns-wdm-_irp>,
//! `ns-wdm-_io_stack_location`, `ns-wdm-_io_status_block`). A header that laid a field out
//! differently fails the Windows build instead of corrupting kernel memory.
//!
//! Sizes are pinned only where the adapter depends on them: it never allocates or copies an
//! `IRP` or `IO_STACK_LOCATION` (the I/O manager does), but the stack-location arithmetic
//! steps by the size of the latter.

use core::mem::{offset_of, size_of};

use wdk_sys::{IO_STACK_LOCATION, IO_STATUS_BLOCK, IRP};

// IRP: IoStatus 48 (IO_STATUS_BLOCK: Status 0, Information 8), StackCount 66,
// CurrentLocation 67, Tail 120; Tail.Overlay: DriverContext[4] 120, Thread 152,
// AuxiliaryBuffer 160, ListEntry 168, CurrentStackLocation 184.
const _: () = assert!(offset_of!(IRP, IoStatus) == 48);
const _: () = assert!(offset_of!(IO_STATUS_BLOCK, Information) == 8);
const _: () = assert!(offset_of!(IRP, CurrentLocation) == 67);
const _: () = assert!(
    offset_of!(
        IRP,
        Tail.Overlay
            .__bindgen_anon_2
            .__bindgen_anon_1
            .CurrentStackLocation
    ) == 184
);

// IO_STACK_LOCATION: MajorFunction 0, MinorFunction 1, Flags 2, Control 3, Parameters 8
// (32-byte union), DeviceObject 40, FileObject 48, CompletionRoutine 56, Context 64; 72 bytes
// (the stack-location arithmetic of IoSkipCurrentIrpStackLocation and
// IoGetNextIrpStackLocation steps by this size).
const _: () = assert!(offset_of!(IO_STACK_LOCATION, MinorFunction) == 1);
const _: () = assert!(offset_of!(IO_STACK_LOCATION, Control) == 3);
const _: () = assert!(offset_of!(IO_STACK_LOCATION, CompletionRoutine) == 56);
const _: () = assert!(offset_of!(IO_STACK_LOCATION, Context) == 64);
const _: () = assert!(size_of::<IO_STACK_LOCATION>() == 72);
