//! A user-mode harness for `wsk-client`: runs a client and the connection handler it serves
//! against an emulated NMR and WSK subsystem over host sockets, and checks the documented
//! contract while doing so. Its CLI (feature `cli`) and most of its tests serve the wskecho
//! sample's echo service.
//!
//! Layers, one per file:
//! * [`irql`] — the thread-local IRQL marker (`PASSIVE_LEVEL` / `DISPATCH_LEVEL`).
//! * [`contract`] — the violation recorder.
//! * [`pool`] — the accounting [`Platform`](wsk_primitives::platform::Platform) with fault injection.
//! * [`nmr`] — registrations and the per-binding attach/detach state machine.
//! * [`wsk`] — the WSK subsystem over host sockets (reactor + workers).
//! * [`host_provider`] — the core's `Provider` trait over [`wsk`].
//! * [`driver`] — `DriverEntry` / `Unload` around the core's `Client`, as the kernel adapter.
//! * [`harness`] — one complete emulated machine for tests and the CLI.

// Locks are scoped by blocks on purpose (the harness never calls into the driver while holding
// one); this nursery lint misreads that pattern.
#![allow(clippy::significant_drop_tightening)]

pub mod callback;
pub mod contract;
pub mod driver;
pub mod harness;
pub mod host_provider;
pub mod irql;
pub mod nmr;
pub mod pool;
pub mod wsk;
