//! # wskecho
//!
//! A Windows kernel driver (WDM) that registers as a Winsock Kernel (WSK) client directly with
//! the Network Module Registrar (NMR) and serves TCP echo on IPv4 and IPv6: the sample on top
//! of the `wsk-client` library (see `docs/architecture.md`).
//!
//! * `kernel` — the adapter compiled only for Windows: `DriverEntry`, `Unload`, NMR callbacks,
//!   IRPs/MDLs and completion routines, implementing `wsk_client`'s provider trait, and the
//!   Plug and Play device's dispatch.
//! * [`pnp`] — the Plug and Play device's decisions (platform-neutral, tested on the host).
//! * `ffi` — hand-written `#[repr(C)]` declarations for `netioddk.h` and `wsk.h`, which wdk-sys
//!   does not generate, with compile-time layout assertions.
//!
//! The platform-neutral client (bindings, listeners, the socket runner, the echo service) is
//! the `wsk-client` crate; the user-mode harness (`harness/`) runs it on the host over real
//! TCP sockets and checks it against the documented contract.

#![no_std]

// Host builds (the unit tests) link std for its allocator and panic runtime; the driver itself
// only uses `core`.
#[cfg(not(target_os = "windows"))]
extern crate std;

pub mod pnp;

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
