//! # wsk-client
//!
//! A platform-neutral `no_std` Winsock Kernel (WSK) client: the NMR attach, detach and cleanup
//! protocol of a binding ([`client`], [`binding`]), listeners, the admission of accepted
//! connections ([`accept`]) and the socket runner that owns every connection's outstanding
//! operations and close protocol ([`socket`]), driving an application's
//! [`handler::ConnectionHandler`]. It calls WSK only through the
//! [`provider::Provider`] trait, implemented by a kernel adapter on Windows and by an emulation
//! on the host; no wdk-sys type appears here. Its building blocks come from `wsk-primitives`.
//!
//! The `testing` feature adds the `testing` module: test doubles for tests of applications
//! built on the client.

#![no_std]

#[cfg(any(test, feature = "testing"))]
extern crate std;

pub mod accept;
pub mod binding;
mod binding_state;
pub mod client;
pub mod config;
pub mod handler;
pub mod provider;
pub mod socket;
pub mod startup;
pub mod stats;
pub mod token;
pub mod wsk_version;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(all(test, not(loom)))]
mod tests;
