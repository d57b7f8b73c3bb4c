//! # wskecho
//!
//! A Windows kernel driver (WDM) that registers as a Winsock Kernel (WSK) client directly with
//! the Network Module Registrar (NMR) and serves TCP echo on IPv4 and IPv6: the sample on top
//! of the `wsk-client` library (see `docs/architecture.md`).
//!
//! * `kernel` — compiled only for Windows: `DriverEntry`, `Unload`, the NMR client callbacks,
//!   the `PnpDevice` switch and the Plug and Play device's dispatch.
//! * [`pnp`] — the Plug and Play device's decisions (platform-neutral, tested on the host).
//!
//! The echo service the driver serves every connection with is the `wskecho-echo` crate
//! (`src/echo/`), platform-neutral and tested on the host. The platform-neutral client
//! (bindings, listeners, the socket runner) is the `wsk-client` crate, its Windows kernel
//! adapter (WSK and NMR declarations, IRPs, MDLs, completion routines, work items) the
//! `wsk-kernel` crate; the user-mode harness (`crates/wsk-harness/`) runs the client on the
//! host over real TCP sockets and checks it against the documented contract.

#![no_std]

// Host builds (the unit tests) link std for its allocator and panic runtime; the driver itself
// only uses `core`.
#[cfg(not(target_os = "windows"))]
extern crate std;

pub mod pnp;

#[cfg(target_os = "windows")]
mod kernel;
