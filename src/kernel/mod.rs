//! Kernel adapter (compiled only for Windows targets): translates between Windows (NMR, WSK,
//! IRPs, MDLs, registry, pool, debug output) and the platform-neutral core, which decides
//! everything. One concern per file; docs/kernel-adapter.md describes each, with the IRQL of
//! every function and the IRP/MDL lifecycle.
//!
//! * `entry` — `DriverEntry`: configuration, global client, `NmrRegisterClient`, and (as a
//!   Plug and Play device, `Parameters\PnpDevice` = 1) the Plug and Play entry points.
//! * `unload` — `Unload`: deregistration and the wait for every binding to be freed.
//! * `pnp`, `forward`, `remove_lock` — as a Plug and Play device: `AddDevice` and the
//!   `Root\wskecho` FDO's Plug and Play, power and WMI dispatch routines, under the device's remove
//!   lock.
//! * `nmr_client` — static NMR registration data and the three NMR client callbacks.
//! * `provider` — the core's `Provider` over the WSK dispatch tables, one per binding.
//! * `socket_io`, `irp`, `mdl`, `completion` — per-socket IRPs and MDL, completion routines.
//! * `work_item` — the per-socket `IO_WORKITEM` every WSK call on the socket is made from.
//! * `timer` — the binding's `KTIMER`, whose DPC queues the work item that runs the core's tick.
//! * `events` — `WskAcceptEvent` and the static listen dispatch.
//! * `platform`, `log_line` — tagged pool and `DbgPrintEx`.
//! * `registry` — reading `<service key>\Parameters`.
//! * `address` — `SocketAddr` to and from `SOCKADDR_IN`/`SOCKADDR_IN6`.
//! * `globals` — the static client, NMR handle and unload event (`WSKECHO_GLOBALS`).
//! * `consistency` — compile-time checks of the core's hand-written Windows values.
//! * `layout` — compile-time offsets of the wdk-sys structure fields the adapter touches.

extern crate alloc;

#[cfg(not(test))]
extern crate wdk_panic;

#[cfg(not(test))]
use wdk_alloc::WdkAllocator;

mod address;
mod completion;
mod consistency;
mod entry;
mod events;
mod forward;
mod globals;
mod irp;
mod layout;
mod log_line;
mod mdl;
mod nmr_client;
mod platform;
mod pnp;
mod provider;
mod registry;
mod remove_lock;
mod socket_io;
mod timer;
mod unload;
mod work_item;

/// Kernel pool allocator (non-paged, tagged) behind `alloc`.
#[cfg(not(test))]
#[global_allocator]
static GLOBAL_ALLOCATOR: WdkAllocator = WdkAllocator;
