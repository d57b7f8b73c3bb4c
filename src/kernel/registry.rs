//! The driver's own registry value: the Plug and Play device switch `Parameters\PnpDevice`,
//! read from the key the client's configuration comes from
//! (`wsk_kernel::registry::Parameters`) into [`pnp_device_switch`] (`src/pnp.rs`).
//! `PASSIVE_LEVEL` only, as every registry read
//! (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-zwqueryvaluekey>).

use wdk_sys::PCUNICODE_STRING;

use crate::pnp::{PNP_DEVICE_VALUE, PNP_DEVICE_VALUE_UTF16, PnpSwitchError, pnp_device_switch};
use wsk_kernel::registry::{Parameters, ReadError};

/// Why the switch could not be read.
#[derive(Debug)]
pub enum SwitchError {
    /// `Parameters\PnpDevice` is present but not the `REG_DWORD` 0 or 1.
    Invalid(PnpSwitchError),
    /// The registry failed.
    Read(ReadError),
}

impl From<ReadError> for SwitchError {
    fn from(error: ReadError) -> Self {
        Self::Read(error)
    }
}

/// Reads the switch: `true` when the driver is to register `AddDevice`. A missing key or value
/// is `false`.
///
/// # Errors
/// A value that is not the `REG_DWORD` 0 or 1, or a registry failure other than "not found".
///
/// # Safety
/// `registry_path` is the valid `UNICODE_STRING` passed to `DriverEntry`; `PASSIVE_LEVEL`.
pub unsafe fn read_pnp_device_switch(registry_path: PCUNICODE_STRING) -> Result<bool, SwitchError> {
    // SAFETY: forwarded caller guarantee.
    let Some(key) = (unsafe { Parameters::open(registry_path) })? else {
        return Ok(false);
    };
    let mut switch = false;
    // SAFETY: PASSIVE_LEVEL (caller).
    unsafe {
        key.query(
            &PNP_DEVICE_VALUE_UTF16,
            PNP_DEVICE_VALUE,
            |reg_type, data| {
                switch = pnp_device_switch(reg_type, data).map_err(SwitchError::Invalid)?;
                Ok::<(), SwitchError>(())
            },
        )
    }?;
    Ok(switch)
}
