//! The driver on Windows (compiled only for Windows targets): `DriverEntry`, `Unload`, the NMR
//! client callbacks and the Plug and Play device, on the `wsk-kernel` adapter. One concern per
//! file; docs/kernel-adapter.md describes each, with the IRQL of every function.
//!
//! * `entry` — `DriverEntry`: configuration, global client, `NmrRegisterClient`, and (as a
//!   Plug and Play device, `Parameters\PnpDevice` = 1) the Plug and Play entry points.
//! * `unload` — `Unload`: deregistration and the wait for every binding to be freed.
//! * `pnp`, `forward`, `remove_lock` — as a Plug and Play device: `AddDevice` and the
//!   `Root\wskecho` FDO's Plug and Play, power and WMI dispatch routines, under the device's
//!   remove lock.
//! * `nmr_client` — the module id, the registration and the three NMR client callbacks.
//! * `registry` — reading the `PnpDevice` switch from `<service key>\Parameters`.
//! * `globals` — the static client, NMR handle and unload event (`WSKECHO_GLOBALS`).
//! * `consistency` — compile-time checks of the Plug and Play device's hand-written values.
//! * `layout` — compile-time offsets of the wdk-sys structure fields the driver touches.

extern crate alloc;

#[cfg(not(test))]
extern crate wdk_panic;

#[cfg(not(test))]
use wdk_alloc::WdkAllocator;

mod consistency;
mod entry;
mod forward;
mod globals;
mod layout;
mod nmr_client;
mod pnp;
mod registry;
mod remove_lock;
mod unload;

/// Kernel pool allocator (non-paged, tagged) behind `alloc`.
#[cfg(not(test))]
#[global_allocator]
static GLOBAL_ALLOCATOR: WdkAllocator = WdkAllocator;
