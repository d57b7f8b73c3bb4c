//! Kernel adapter: the driver's entry points (compiled only for Windows targets).
//!
//! Minimal version: `DriverEntry` registers `Unload` and logs; the WSK client is added on top
//! of this (docs/architecture.md).

extern crate alloc;

#[cfg(not(test))]
extern crate wdk_panic;

use wdk::println;
#[cfg(not(test))]
use wdk_alloc::WdkAllocator;
use wdk_sys::{DRIVER_OBJECT, NTSTATUS, PCUNICODE_STRING, STATUS_SUCCESS};

/// Kernel pool allocator (non-paged, tagged) behind `alloc`.
#[cfg(not(test))]
#[global_allocator]
static GLOBAL_ALLOCATOR: WdkAllocator = WdkAllocator;

/// `DriverEntry` (DRIVER_INITIALIZE), called by the I/O manager at `PASSIVE_LEVEL`.
///
/// # Safety
/// Called only by the I/O manager, with a valid driver object.
// SAFETY: `DriverEntry` is the entry point name the linker is told to use (/ENTRY:DriverEntry,
// from wdk-build); no other item of the crate exports it.
#[unsafe(export_name = "DriverEntry")]
pub unsafe extern "system" fn driver_entry(
    driver: &mut DRIVER_OBJECT,
    _registry_path: PCUNICODE_STRING,
) -> NTSTATUS {
    driver.DriverUnload = Some(driver_unload);
    println!("wskecho: loaded");
    STATUS_SUCCESS
}

/// `Unload` (DRIVER_UNLOAD), called by the I/O manager at `PASSIVE_LEVEL`.
unsafe extern "C" fn driver_unload(_driver: *mut DRIVER_OBJECT) {
    println!("wskecho: unloaded");
}
