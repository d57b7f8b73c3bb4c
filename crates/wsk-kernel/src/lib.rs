//! # wsk-kernel
//!
//! The Windows kernel adapter of `wsk-client`: the NMR and WSK declarations that wdk-sys does
//! not generate (`ffi`, with compile-time layout checks), and `provider::WskProvider`, the
//! client's `Provider` over the WSK dispatch tables, with what it needs: driver-owned IRPs and
//! MDLs, completion routines, a work item per socket, the binding's timer, tagged non-paged
//! pool and `DbgPrintEx` (`platform::KernelPlatform`). `nmr` is what the three NMR client
//! callbacks of a driver do. `docs/kernel-adapter.md` gives the IRQL of every function and the
//! IRP/MDL lifecycle.
//!
//! A driver on top keeps its globals, `DriverEntry`, `Unload` and the three `extern "system"`
//! NMR callbacks (`wskecho`'s `src/kernel` is one). Everything but [`log_line`] and the
//! socket address conversions is compiled for Windows targets only; those are tested on the
//! host.

#![no_std]

#[cfg(test)]
extern crate std;

pub mod log_line;

#[cfg(any(target_os = "windows", test))]
mod address;
#[cfg(target_os = "windows")]
pub mod ffi;
// Host tests: only the socket address declarations, which `address` needs.
#[cfg(all(test, not(target_os = "windows")))]
#[allow(
    dead_code,
    non_camel_case_types,
    non_snake_case,
    clippy::upper_case_acronyms,
    clippy::struct_field_names
)]
mod ffi {
    pub mod ws2def;
}

#[cfg(target_os = "windows")]
mod completion;
#[cfg(target_os = "windows")]
mod consistency;
#[cfg(target_os = "windows")]
mod events;
#[cfg(target_os = "windows")]
mod irp;
#[cfg(target_os = "windows")]
mod layout;
#[cfg(target_os = "windows")]
mod mdl;
#[cfg(target_os = "windows")]
pub mod nmr;
#[cfg(target_os = "windows")]
pub mod platform;
#[cfg(target_os = "windows")]
pub mod provider;
#[cfg(target_os = "windows")]
pub mod registry;
#[cfg(target_os = "windows")]
mod socket_handle;
#[cfg(target_os = "windows")]
mod socket_io;
#[cfg(target_os = "windows")]
mod timer;
#[cfg(target_os = "windows")]
pub mod wdm;
#[cfg(target_os = "windows")]
mod work_item;
