//! The driver's configuration contract, taken from the driver itself.
//!
//! The `Parameters` values and their defaults come from `wsk_client::config`, so the INF's
//! defaults are checked against the driver's own and validated by the very parser
//! `DriverEntry` runs. The Plug and Play device switch comes from the driver's `src/pnp.rs`,
//! compiled into this tool unchanged (it is `core`-only Rust; the driver crate is a `cdylib` a
//! tool cannot depend on). If `pnp.rs` ever imports other driver modules, this breaks at
//! compile time, on purpose.

pub use wsk_client::config as driver;

// The driver's `src/pnp.rs`: the PnP device switch `Parameters\PnpDevice` that only the
// device INF may write.
#[path = "../../../src/pnp.rs"]
pub mod driver_pnp;

use driver::{ConfigBuilder, ValueName};

use crate::policy::{Parameter, ParameterKind};

/// The `Parameters` values the driver reads, with their types and defaults.
#[must_use]
pub fn parameters() -> Vec<Parameter> {
    ValueName::ALL
        .iter()
        .map(|&name| Parameter {
            name: name.as_str(),
            kind: match name {
                ValueName::ListenAddresses => ParameterKind::MultiSz {
                    default: driver::DEFAULT_LISTEN_ADDRESSES
                        .iter()
                        .map(|&s| s.to_owned())
                        .collect(),
                },
                ValueName::MaxConnections => ParameterKind::Dword {
                    default: driver::DEFAULT_MAX_CONNECTIONS,
                },
                ValueName::BufferSize => ParameterKind::Dword {
                    default: driver::DEFAULT_BUFFER_SIZE,
                },
                ValueName::MaxConnectionsPerAddress => ParameterKind::Dword {
                    default: driver::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
                },
                ValueName::IdleTimeout => ParameterKind::Dword {
                    default: driver::DEFAULT_IDLE_TIMEOUT,
                },
                ValueName::NoDelay => ParameterKind::Dword {
                    default: driver::DEFAULT_NO_DELAY,
                },
            },
        })
        .collect()
}

fn value_name(name: &str) -> Option<ValueName> {
    ValueName::ALL
        .into_iter()
        .find(|value| value.as_str().eq_ignore_ascii_case(name))
}

/// Validates a `REG_DWORD` value the way `DriverEntry` does.
///
/// # Errors
/// The driver's own message for an invalid value (or an unknown name).
pub fn validate_dword(name: &str, value: u32) -> Result<(), String> {
    let name = value_name(name).ok_or_else(|| format!("{name} is not a driver value"))?;
    ConfigBuilder::new()
        .set_dword(name, value)
        .map_err(|error| error.to_string())
}

/// Validates `ListenAddresses` entries the way `DriverEntry` does.
///
/// # Errors
/// The driver's own message for the first invalid entry, or for a wrong count.
pub fn validate_listen_addresses(entries: &[String]) -> Result<(), String> {
    ConfigBuilder::new()
        .set_listen_addresses(entries.iter().map(String::as_str))
        .map_err(|error| error.to_string())
}
