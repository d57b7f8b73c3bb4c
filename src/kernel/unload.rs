//! `Unload`: deregister from the NMR (as a service; a Plug and Play device deregistered already,
//! `Unload` verifies), wait until every binding is freed, drop the client.

use wdk_sys::{DRIVER_OBJECT, STATUS_PENDING, ntddk::KeFlushQueuedDpcs};

use super::{entry::delete_completion_device, globals::WSKECHO_GLOBALS};
use wsk_kernel::{
    ffi::netioddk::{NmrDeregisterClient, NmrWaitForClientDeregisterComplete},
    platform::KernelPlatform,
};
use wsk_primitives::status::NtStatus;
use wsk_primitives::{log_error, log_trace};

/// `Unload` (`DRIVER_UNLOAD`), called by the I/O manager at `PASSIVE_LEVEL`
/// (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nc-wdm-driver_unload>).
///
/// 1. `NmrDeregisterClient` (IRQL <= `DISPATCH_LEVEL`); on `STATUS_PENDING`,
///    `NmrWaitForClientDeregisterComplete` (IRQL < `DISPATCH_LEVEL`; `Unload` runs at
///    `PASSIVE_LEVEL`). NMR detaches every binding on the way (`ClientDetachProvider`).
/// 2. Waits until the core reports no live binding (the cleanup callback of the last one sets
///    the event), so no callback can reach the client any more.
/// 3. Drops the client. Returns only after everything has been freed.
///
/// `NmrDeregisterClient` returns `STATUS_PENDING` or an error
/// (<https://learn.microsoft.com/windows-hardware/drivers/ddi/netioddk/nf-netioddk-nmrderegisterclient>).
/// After an error the NMR detaches nothing, so a live binding would never end: the wait is
/// skipped and, if a binding is still live, the client is left allocated rather than freed
/// under it (both logged). `Unload` cannot refuse to return.
///
/// As a Plug and Play device: the Plug and Play manager calls `Unload` only after the last
/// `Root\wskecho` device object has been deleted. A device object still listed in the driver object
/// here would mean an unload that the procedure for a Plug and Play device never asks for (see
/// docs/kernel-adapter.md, "Not verified"); `Unload` cannot refuse, so it logs an error naming it
/// and goes on.
///
/// # Safety
/// Called only by the I/O manager, once, after a successful `DriverEntry`.
pub unsafe extern "C" fn driver_unload(driver: *mut DRIVER_OBJECT) {
    let platform = &KernelPlatform;
    // SAFETY: the driver object is valid during Unload (caller); only the field's address is
    // taken.
    let devices = unsafe { core::ptr::addr_of!((*driver).DeviceObject) };
    // SAFETY: reading a pointer field the I/O manager maintains; nothing adds devices now.
    // (As a service the only device object is the completion device, deleted below.)
    if WSKECHO_GLOBALS.is_pnp_device() && !unsafe { devices.read() }.is_null() {
        log_error!(
            platform,
            "Unload with a device object still present (the Root\\wskecho device was not removed)"
        );
    }
    if WSKECHO_GLOBALS.is_pnp_device() && WSKECHO_GLOBALS.has_nmr_client() {
        // The device's stop or removal deregisters (pnp.rs); a registration left here breaks
        // that invariant. Deregister anyway: it must be complete before Unload returns.
        log_error!(
            platform,
            "Unload with an NMR registration left by the Root\\wskecho device: deregistering now"
        );
    }
    // SAFETY: called once, by the I/O manager, at PASSIVE_LEVEL (caller).
    let gone = unsafe { shut_down_client() };
    if gone && !WSKECHO_GLOBALS.is_pnp_device() {
        // SAFETY: deregistered, no binding live; PASSIVE_LEVEL.
        unsafe { delete_completion_device() };
    }
}

/// Deregisters from the NMR, waits until no binding is live and drops the client: `Unload`'s
/// work, and `DriverEntry`'s when start-up fails after registering.
///
/// `false` if a binding is still live (after a failed `NmrDeregisterClient`): then the client,
/// and the device its completion routines use, must stay.
///
/// # Safety
/// `PASSIVE_LEVEL`; called once, after a successful `NmrRegisterClient` (or with no client).
pub unsafe fn shut_down_client() -> bool {
    // SAFETY: forwarded.
    let deregistered = unsafe { deregister_client() };
    if deregistered {
        if let Some(client) = WSKECHO_GLOBALS.client() {
            log_trace!(
                &KernelPlatform,
                "unloading; counters: {}",
                client.stats().snapshot()
            );
        }
        // SAFETY: deregistered and no binding live: nothing can call into the client any more.
        unsafe { WSKECHO_GLOBALS.destroy() };
    }
    deregistered
}

/// Ends the NMR registration, if there is one: `NmrDeregisterClient`, on `STATUS_PENDING`
/// `NmrWaitForClientDeregisterComplete`, then the wait until no binding is live. The client
/// stays (a Plug and Play device that starts again registers it again). `false` if a binding
/// is still live after a failed `NmrDeregisterClient` (then the client must not be freed).
///
/// # Safety
/// `PASSIVE_LEVEL`; not concurrently with another registration change (`DriverEntry`,
/// `Unload` and the Plug and Play dispatch routine, which the Plug and Play manager
/// serialises, are the only callers).
pub unsafe fn deregister_client() -> bool {
    let platform = &KernelPlatform;
    let handle = WSKECHO_GLOBALS.take_nmr_client();
    let mut deregistered = true;
    if !handle.is_null() {
        // SAFETY: the handle from NmrRegisterClient, deregistered once; PASSIVE_LEVEL.
        let status = unsafe { NmrDeregisterClient(handle) };
        if status == STATUS_PENDING {
            // SAFETY: deregistration is pending for this handle; PASSIVE_LEVEL.
            let status = unsafe { NmrWaitForClientDeregisterComplete(handle) };
            if status < 0 {
                log_error!(
                    platform,
                    "NmrWaitForClientDeregisterComplete: {}",
                    NtStatus(status)
                );
            }
        } else if status < 0 {
            log_error!(
                platform,
                "NmrDeregisterClient: {}: the NMR detaches no binding",
                NtStatus(status)
            );
            deregistered = false;
        }
    }
    if let Some(client) = WSKECHO_GLOBALS.client() {
        if !deregistered {
            let live = client.live_bindings();
            if live > 0 {
                log_error!(
                    platform,
                    "{} binding(s) still live after a failed deregistration: the client is kept",
                    live
                );
                return false;
            }
        }
        WSKECHO_GLOBALS.wait_until_no_binding(client);
    }
    // The last tick has run (every binding is freed, and a binding outlives its timer's
    // ticks), but the DPC routine that queued it may still be returning on another CPU:
    // wait for it before the image can go (timer.rs).
    // SAFETY: PASSIVE_LEVEL (caller).
    unsafe { KeFlushQueuedDpcs() };
    true
}
