//! # wskecho
//!
//! A Windows kernel driver (WDM) that registers as a Winsock Kernel (WSK) client directly with
//! the Network Module Registrar (NMR) and serves TCP echo on IPv4 and IPv6.
//!
//! The crate has three layers (see `docs/architecture.md`):
//!
//! * [`core`] — platform-neutral `no_std` logic: binding lifecycle, rundown of provider calls,
//!   socket registry, listener/connection state machines driving a connection handler
//!   ([`core::handler`]; the echo service is [`core::echo_buffer::ECHO`]), configuration. It
//!   talks to WSK only through the [`core::provider::Provider`] trait.
//! * `kernel` — the thin adapter compiled only for Windows: `DriverEntry`, `Unload`, NMR
//!   callbacks, IRPs/MDLs and completion routines, implementing the provider trait.
//! * `ffi` — hand-written `#[repr(C)]` declarations for `netioddk.h` and `wsk.h`, which wdk-sys
//!   does not generate, with compile-time layout assertions.
//!
//! The user-mode harness (`harness/`) implements the same provider trait on the host over real
//! TCP sockets and checks the driver against the documented contract.

#![no_std]

// Host builds (tests, the harness) link std for its allocator and panic runtime; the core
// itself only uses `core` (and `alloc` where noted).
#[cfg(not(target_os = "windows"))]
extern crate std;

pub mod core;

#[cfg(target_os = "windows")]
mod ffi;
#[cfg(target_os = "windows")]
mod kernel;

// Pure parts of the kernel adapter (no wdk-sys): their unit tests also run on the host
// (docs/kernel-adapter.md). `ffi` holds only the socket address declarations here.
#[cfg(all(test, not(target_os = "windows")))]
#[path = "kernel/address.rs"]
mod kernel_address;
#[cfg(all(test, not(target_os = "windows")))]
#[path = "kernel/log_line.rs"]
mod kernel_log_line;
#[cfg(all(test, not(target_os = "windows")))]
#[allow(
    dead_code,
    non_camel_case_types,
    clippy::upper_case_acronyms,
    clippy::struct_field_names
)]
mod ffi {
    #[path = "ws2def.rs"]
    pub mod ws2def;
}
