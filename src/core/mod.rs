//! Platform-neutral driver logic (`no_std`, no wdk-sys types).
//!
//! Everything here is driven by the kernel adapter on Windows and by the harness on the host,
//! through [`provider::Provider`] (calls into WSK), the NMR entry points of `client::Client`
//! and `socket::SocketRef` (I/O completions and accept events).

pub mod binding;
pub mod client;
pub mod config;
pub mod echo_buffer;
pub mod handler;
pub(crate) mod log;
pub mod pnp;
pub mod provider;
pub mod socket;
pub mod startup;
pub mod stats;
pub mod wsk_version;

#[cfg(test)]
pub mod testing;

#[cfg(all(test, not(loom)))]
mod tests;
