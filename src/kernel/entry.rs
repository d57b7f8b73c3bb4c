//! `DriverEntry`: read the configuration, build the client; as a service: create the completion
//! device and register with the NMR; as a Plug and Play device: register the Plug and Play entry
//! points (the device's start registers with the NMR, `pnp.rs`).

use wdk_sys::{
    DEVICE_OBJECT, DRIVER_OBJECT, FILE_DEVICE_SECURE_OPEN, FILE_DEVICE_UNKNOWN, HANDLE, IRP_MJ_PNP,
    IRP_MJ_POWER, IRP_MJ_SYSTEM_CONTROL, LARGE_INTEGER, NTSTATUS, PCUNICODE_STRING,
    STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
    ntddk::{IoCreateDevice, IoDeleteDevice, KeDelayExecutionThread},
};

use super::{
    forward::{dispatch_power, dispatch_system_control},
    globals::WSKECHO_GLOBALS,
    nmr_client::CLIENT_CHARACTERISTICS,
    pnp::{add_device, dispatch_pnp},
    registry::{SwitchError, read_pnp_device_switch},
    unload::{driver_unload, shut_down_client},
};
use wsk_kernel::{
    ffi::netioddk::NmrRegisterClient,
    log_line,
    nmr::KernelClient,
    platform::KernelPlatform,
    registry::{ReadError, read_config},
};
use wsk_primitives::{log_error, log_trace};

/// `DriverEntry` (`DRIVER_INITIALIZE`), called by the I/O manager at `PASSIVE_LEVEL`
/// (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nc-wdm-driver_initialize>).
///
/// 1. Reads `<RegistryPath>\Parameters`: a missing key or value means its default; an invalid
///    value fails with `STATUS_INVALID_PARAMETER` after a log line naming it.
/// 2. Builds the core client in place in the global state (static storage: it never moves),
///    from the configuration's pool block, which is freed then (docs/kernel-adapter.md,
///    "Configuration (`DriverEntry`)").
/// 3. As a service only (as a Plug and Play device, 3 and 4 happen when the device starts): the
///    completion device ([`create_completion_device`]), then `NmrRegisterClient` with the static
///    characteristics and the client as context ([`register_client`]). NMR may call
///    `ClientAttachProvider` before this returns, so everything it uses is ready first. On failure
///    the client is dropped again and nothing is left behind.
/// 4. Start-up's verdict (`Client::settle_startup`, host-tested in the core): while listeners
///    of an attach made inside `NmrRegisterClient` are still opening it waits, looking every
///    10 ms for up to 10 s (`KeDelayExecutionThread`). If the attach failed, or none of the
///    configured listeners could be opened, nothing can be served: it deregisters, waits and
///    frees everything as `Unload` does ([`shut_down_client`]) and fails with that status, so
///    `sc start` reports it. If no provider attached yet (possible early in boot) it says so
///    and succeeds: the listeners open when the NMR attaches one. If some listeners failed it
///    succeeds, logging how many serve.
/// 5. Sets `DriverUnload` (only on success: the I/O manager never unloads a driver whose
///    `DriverEntry` failed).
/// 6. As a Plug and Play device only (`Parameters\PnpDevice` = 1, read in step 1 with the
///    configuration, so a bad value fails before anything is registered): sets
///    `DriverExtension->AddDevice` and
///    `MajorFunction[IRP_MJ_PNP / IRP_MJ_POWER / IRP_MJ_SYSTEM_CONTROL]`. The Plug and Play manager
///    calls `AddDevice` only after `DriverEntry` returned success, so setting them last opens no
///    window; on any failure they are never set and no device can exist. As a service they stay
///    unset: a driver with `AddDevice` counts as a Plug and Play driver, which `sc stop` cannot
///    unload (docs/kernel-adapter.md, "The `Root\wskecho` function driver").
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
    // What every log line of the driver starts with (`!dbgprint`, `DebugView`).
    log_line::set_prefix(c"wskecho: ");
    let platform = &KernelPlatform;
    // The configuration stays in its pool block (freed on every return path by its drop)
    // until the client is built from it in place: no `Config` copy in this frame.
    // SAFETY: the registry path given by the I/O manager; PASSIVE_LEVEL.
    let mut config = match unsafe { read_config(registry_path) } {
        Ok(config) => config,
        Err(error) => return rejected(&error),
    };
    // SAFETY: as above.
    let pnp_device = match unsafe { read_pnp_device_switch(registry_path) } {
        Ok(on) => on,
        Err(SwitchError::Invalid(error)) => {
            log_error!(platform, "configuration rejected: {error}");
            return STATUS_INVALID_PARAMETER;
        }
        Err(SwitchError::Read(error)) => return rejected(&error),
    };

    // SAFETY: DriverEntry runs once, before NMR (the only other user) knows the driver.
    let client = unsafe { WSKECHO_GLOBALS.init(config.config()) };
    WSKECHO_GLOBALS.set_driver_object(driver);
    drop(config);
    client.log_config();
    WSKECHO_GLOBALS.set_pnp_device(pnp_device);
    if pnp_device {
        // As a PnP device: the client is a subcomponent of the Root\wskecho device; it
        // registers when the device starts (pnp.rs).
        log_trace!(
            platform,
            "PnP device install: the WSK client registers when the Root\\wskecho device starts"
        );
    } else {
        // SAFETY: the driver object of this DriverEntry; PASSIVE_LEVEL.
        if let Err(status) = unsafe { create_completion_device(driver) } {
            // SAFETY: nothing registered; PASSIVE_LEVEL.
            let _ = unsafe { shut_down_client() };
            return status;
        }
        if let Err(status) = register_client(client) {
            // SAFETY: registered at most; not yet known to the I/O manager as loaded (no
            // DriverUnload set); PASSIVE_LEVEL.
            if unsafe { shut_down_client() } {
                // SAFETY: deregistered, no binding live: no completion can still use it.
                unsafe { delete_completion_device() };
            }
            return status;
        }
    }
    // SAFETY: the driver object is valid during DriverEntry (caller).
    if let Some(driver) = unsafe { driver.as_mut() } {
        driver.DriverUnload = Some(driver_unload);
        if pnp_device {
            register_pnp(driver);
        }
    }
    STATUS_SUCCESS
}

/// As a service: an unnamed device object that exists only so that every IRP's completion routine
/// can be set with `IoSetCompletionRoutineEx`, whose wrapper holds a reference on it (and so on the
/// driver) until the routine has returned
/// (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-iosetcompletionroutineex>).
/// No name, no symbolic link, no dispatch routine of its own: nothing can open it. Deleted by
/// `Unload` after the deregistration completed ([`delete_completion_device`]).
///
/// # Errors
/// `IoCreateDevice`'s status.
///
/// # Safety
/// `driver` is `DriverEntry`'s driver object; `PASSIVE_LEVEL`.
unsafe fn create_completion_device(driver: *mut DRIVER_OBJECT) -> Result<(), NTSTATUS> {
    let mut device: *mut DEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: a valid driver object; no extension, no name; PASSIVE_LEVEL
    // (https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-iocreatedevice).
    let status = unsafe {
        IoCreateDevice(
            driver,
            0,
            core::ptr::null_mut(),
            FILE_DEVICE_UNKNOWN,
            FILE_DEVICE_SECURE_OPEN,
            0,
            &raw mut device,
        )
    };
    if status < 0 {
        log_error!(
            &KernelPlatform,
            "IoCreateDevice (completion device) failed: {}",
            wsk_primitives::status::NtStatus(status)
        );
        return Err(status);
    }
    WSKECHO_GLOBALS.set_completion_device(device);
    Ok(())
}

/// Deletes the completion device of a service install, if there is one.
///
/// # Safety
/// `PASSIVE_LEVEL`; the client is deregistered and no binding is live, so no IRP of the
/// driver is outstanding (a completion routine still returning holds its own reference, which
/// `IoDeleteDevice` waits for before the object goes).
pub unsafe fn delete_completion_device() {
    if let Some(device) = WSKECHO_GLOBALS.completion_device() {
        WSKECHO_GLOBALS.set_completion_device(core::ptr::null_mut());
        // SAFETY: our device object, deleted once (caller); PASSIVE_LEVEL.
        unsafe { IoDeleteDevice(device.as_ptr()) };
    }
}

/// `NmrRegisterClient`, then start-up's verdict (the core's `settle_startup`, polling while
/// listeners open). `Err(status)`: registration failed (nothing to undo), or nothing can be
/// served (the caller deregisters: `unload::deregister_client`). `PASSIVE_LEVEL`: from
/// `DriverEntry` (as a service) or from `IRP_MN_START_DEVICE` (as a Plug and Play device).
///
/// # Errors
/// As above.
pub fn register_client(client: &KernelClient) -> Result<(), NTSTATUS> {
    let platform = &KernelPlatform;
    client.registration_begins();
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
            wsk_primitives::status::NtStatus(status)
        );
        return Err(status);
    }
    WSKECHO_GLOBALS.set_nmr_client(handle);
    log_trace!(platform, "registered with the NMR as a WSK client");
    // A driver that serves nothing must not start: the core's verdict on the attach and the
    // listeners (waiting up to STARTUP_WAIT_MS while they open).
    let mut waited_ms = 0;
    client
        .settle_startup(|| {
            if waited_ms >= STARTUP_WAIT_MS {
                return false;
            }
            pause_ms(STARTUP_POLL_MS);
            waited_ms += STARTUP_POLL_MS;
            true
        })
        .map_err(|status| status.0)
}

/// How long `DriverEntry` waits for listeners that are still opening, and how often it looks.
const STARTUP_WAIT_MS: u32 = 10_000;
const STARTUP_POLL_MS: u32 = 10;

/// Sleeps `ms` milliseconds: `KeDelayExecutionThread` with a relative interval, kernel mode,
/// not alertable; IRQL <= `APC_LEVEL` (`DriverEntry` runs at `PASSIVE_LEVEL`)
/// (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-kedelayexecutionthread>).
fn pause_ms(ms: u32) {
    // Negative: relative to now, in 100 ns units.
    let mut interval = LARGE_INTEGER {
        QuadPart: -i64::from(ms) * 10_000,
    };
    // SAFETY: a valid interval for the call's duration; PASSIVE_LEVEL (DriverEntry).
    let _ = unsafe { KeDelayExecutionThread(0, 0, &raw mut interval) };
}

/// Logs why the registry was rejected and returns `DriverEntry`'s status for it.
fn rejected(error: &ReadError) -> NTSTATUS {
    let platform = &KernelPlatform;
    match error {
        ReadError::Invalid(error) => {
            log_error!(platform, "configuration rejected: {error}");
            STATUS_INVALID_PARAMETER
        }
        ReadError::Registry { what, status } => {
            log_error!(platform, "reading {what} failed: {status}");
            status.0
        }
    }
}

/// As a Plug and Play device: `AddDevice` and the dispatch routines of the `Root\wskecho` FDO. The
/// other `MajorFunction` entries keep the I/O manager's default, which fails the request (the FDO
/// serves no create, read, write or device control).
fn register_pnp(driver: &mut DRIVER_OBJECT) {
    // SAFETY: the I/O manager allocates the driver extension with the driver object; it is
    // valid during DriverEntry. `as_mut` checks for NULL.
    if let Some(extension) = unsafe { driver.DriverExtension.as_mut() } {
        extension.AddDevice = Some(add_device);
    }
    for (major, routine) in [
        (IRP_MJ_PNP, dispatch_pnp as unsafe extern "C" fn(_, _) -> _),
        (IRP_MJ_POWER, dispatch_power),
        (IRP_MJ_SYSTEM_CONTROL, dispatch_system_control),
    ] {
        let slot = usize::try_from(major)
            .ok()
            .and_then(|index| driver.MajorFunction.get_mut(index));
        if let Some(slot) = slot {
            *slot = Some(routine);
        }
    }
    log_trace!(
        &KernelPlatform,
        "PnpDevice = 1: AddDevice registered (Root\\wskecho function driver)"
    );
}
