//! Compile-time checks of the wdk-sys structures whose fields the driver reads or writes
//! directly (the adapter pins the IRP's, `wsk-kernel`'s `layout.rs`). The cross-build's
//! bindings come from mingw-w64's headers, not Microsoft's (docs/building.md), so every field
//! touched is pinned at its MSVC x64 offset, computed by hand from the `wdm.h` declarations on
//! the reference pages
//! (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/ns-wdm-_device_object>,
//! `ns-wdm-_driver_object`, `ns-wdm-_driver_extension`). A header that laid a field out
//! differently fails the Windows build instead of corrupting kernel memory.
//!
//! The driver never allocates or copies a `DEVICE_OBJECT` or `DRIVER_OBJECT` (the I/O manager
//! does), so mingw-w64's 328-byte `DEVICE_OBJECT` (336 in the WDK, whose declaration ends with
//! a `DECLSPEC_ALIGN(MEMORY_ALLOCATION_ALIGNMENT)` mingw-w64 drops) is harmless.

use core::mem::{offset_of, size_of};

use wdk_sys::{DEVICE_OBJECT, DRIVER_EXTENSION, DRIVER_OBJECT};

// DEVICE_OBJECT: Type 0, Size 2, ReferenceCount 4, DriverObject 8, NextDevice 16,
// AttachedDevice 24, CurrentIrp 32, Timer 40, Flags 48, Characteristics 52, Vpb 56,
// DeviceExtension 64. AddDevice and the dispatch routines use Flags and DeviceExtension.
const _: () = assert!(offset_of!(DEVICE_OBJECT, Flags) == 48);
const _: () = assert!(offset_of!(DEVICE_OBJECT, DeviceExtension) == 64);
// The size differs from the WDK's (328 vs 336); nothing depends on it. Pinned so that a
// change of the bindings is noticed and this comment revisited.
const _: () = assert!(size_of::<DEVICE_OBJECT>() == 328);

// DRIVER_OBJECT: Type 0, Size 2, DeviceObject 8, Flags 16, DriverStart 24, DriverSize 32,
// DriverSection 40, DriverExtension 48, DriverName 56 (UNICODE_STRING, 16 bytes),
// HardwareDatabase 72, FastIoDispatch 80, DriverInit 88, DriverStartIo 96, DriverUnload 104,
// MajorFunction[28] 112..336.
const _: () = assert!(offset_of!(DRIVER_OBJECT, DeviceObject) == 8);
const _: () = assert!(offset_of!(DRIVER_OBJECT, DriverExtension) == 48);
const _: () = assert!(offset_of!(DRIVER_OBJECT, DriverUnload) == 104);
const _: () = assert!(offset_of!(DRIVER_OBJECT, MajorFunction) == 112);
const _: () = assert!(size_of::<DRIVER_OBJECT>() == 336);
// DRIVER_EXTENSION: DriverObject 0, AddDevice 8.
const _: () = assert!(offset_of!(DRIVER_EXTENSION, AddDevice) == 8);
