//! `DriverEntry`: read the configuration, build the client, register with the NMR.

use wdk_sys::{
    DRIVER_OBJECT, HANDLE, NTSTATUS, PCUNICODE_STRING, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
};

use super::{
    globals::{KernelClient, WSKECHO_GLOBALS},
    nmr_client::CLIENT_CHARACTERISTICS,
    platform::KernelPlatform,
    registry::{ReadError, read_config},
    unload::driver_unload,
};
use crate::{
    core::log::{log_error, log_trace},
    ffi::netioddk::NmrRegisterClient,
};

/// `DriverEntry` (`DRIVER_INITIALIZE`), called by the I/O manager at `PASSIVE_LEVEL`
/// (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nc-wdm-driver_initialize>).
///
/// 1. Reads `<RegistryPath>\Parameters`: a missing key or value means its default; an invalid
///    value fails with `STATUS_INVALID_PARAMETER` after a log line naming it.
/// 2. Stores the core client in the global state (static storage: it never moves).
/// 3. `NmrRegisterClient` with the static characteristics and the client as context. NMR may
///    call `ClientAttachProvider` before this returns, so everything it uses is ready first.
///    On failure the client is dropped again and nothing is left behind.
/// 4. Sets `DriverUnload` (only on success: the I/O manager never unloads a driver whose
///    `DriverEntry` failed).
///
/// # Safety
/// Called only by the I/O manager, once, with a valid driver object and registry path.
// SAFETY: `DriverEntry` is the entry point name the linker is told to use (/ENTRY:DriverEntry,
// from wdk-build); no other item of the crate exports it.
#[unsafe(export_name = "DriverEntry")]
pub unsafe extern "system" fn driver_entry(
    driver: *mut DRIVER_OBJECT,
    registry_path: PCUNICODE_STRING,
) -> NTSTATUS {
    let platform = &KernelPlatform;
    // SAFETY: the registry path given by the I/O manager; PASSIVE_LEVEL.
    let config = match unsafe { read_config(registry_path) } {
        Ok(config) => config,
        Err(ReadError::Invalid(error)) => {
            log_error!(platform, "configuration rejected: {error}");
            return STATUS_INVALID_PARAMETER;
        }
        Err(ReadError::Registry { what, status }) => {
            log_error!(platform, "reading {what} failed: {status}");
            return status.0;
        }
    };

    // SAFETY: DriverEntry runs once, before NMR (the only other user) knows the driver.
    let client = unsafe { WSKECHO_GLOBALS.init(KernelClient::new(config, KernelPlatform)) };
    client.log_config();
    let mut handle: HANDLE = core::ptr::null_mut();
    // SAFETY: static characteristics (valid while registered); the client context is the
    // global client, which outlives the registration; PASSIVE_LEVEL.
    let status = unsafe {
        NmrRegisterClient(
            &raw const CLIENT_CHARACTERISTICS,
            core::ptr::from_ref(client).cast_mut().cast(),
            &raw mut handle,
        )
    };
    if status < 0 {
        log_error!(
            platform,
            "NmrRegisterClient failed: {}",
            crate::core::status::NtStatus(status)
        );
        // SAFETY: registration failed, so NMR holds no reference to the client.
        unsafe { WSKECHO_GLOBALS.destroy() };
        return status;
    }
    WSKECHO_GLOBALS.set_nmr_client(handle);
    // SAFETY: the driver object is valid during DriverEntry (caller).
    if let Some(driver) = unsafe { driver.as_mut() } {
        driver.DriverUnload = Some(driver_unload);
    }
    log_trace!(platform, "registered with the NMR as a WSK client");
    STATUS_SUCCESS
}
