//! # wsk-primitives
//!
//! The `no_std` building blocks of a Winsock Kernel (WSK) client. Nothing here knows of
//! sockets, WSK or the NMR; the modules depend only on each other, in this order:
//!
//! * [`sync`] — atomics and cells (`core`'s, or loom's under `--cfg loom`);
//! * [`status`] — [`NtStatus`](status::NtStatus);
//! * [`platform`] — the [`Platform`](platform::Platform) trait (tagged memory, logging);
//! * [`pool`] — owning pointers into `Platform` memory;
//! * [`rundown`], [`serializer`] — lock-free reference counting with a one-time teardown, and
//!   a lock-free single runner;
//! * [`slots`] — a fixed registry of objects, withdrawn once each;
//! * the logging macros ([`log_error!`] and friends), over [`Platform::log`](platform::Platform::log).
//!
//! Every function here is callable at IRQL <= `DISPATCH_LEVEL`: nothing blocks, allocates
//! behind the caller's back or panics on a path the kernel reaches.

#![no_std]

#[cfg(any(test, feature = "testing"))]
extern crate std;

mod log;
pub mod platform;
pub mod pool;
pub mod rundown;
pub mod serializer;
pub mod slots;
pub mod status;
pub mod sync;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
