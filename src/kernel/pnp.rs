//! wskecho installed as a Plug and Play device: the function driver of a root-enumerated
//! `Root\wskecho` device (`devcon install wskecho-root.inf Root\wskecho`). `AddDevice` creates and
//! attaches the functional device object (FDO); the `IRP_MJ_PNP` dispatch routine passes every Plug
//! and Play IRP to the PDO below, as the core's [`pnp::action`] decides, and deletes the FDO on
//! `IRP_MN_REMOVE_DEVICE`.
//!
//! The WSK client is a subcomponent of the device: it registers with the NMR when the device starts
//! and deregisters (completely) when it stops or is removed, before the FDO is deleted
//! (docs/kernel-adapter.md, "The `Root\wskecho` function driver"). The Plug and Play manager calls
//! `Unload` after the last device object of the driver has been deleted
//! (<https://learn.microsoft.com/windows-hardware/drivers/kernel/pnp-driver-s-unload-routine>); it
//! then only verifies that no registration is left.
//!
//! IRQL: `AddDevice` `PASSIVE_LEVEL` (`DRIVER_ADD_DEVICE`,
//! <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nc-wdm-driver_add_device>);
//! `DispatchPnP` `PASSIVE_LEVEL`: "The `PnP` manager sends this IRP at IRQL `PASSIVE_LEVEL` in
//! the context of a system thread", on the page of each minor function (e.g.
//! <https://learn.microsoft.com/windows-hardware/drivers/kernel/irp-mn-remove-device>).
//! `IoCreateDevice`, `IoAttachDeviceToDeviceStack`, `IoDetachDevice` and `IoDeleteDevice` are
//! `PASSIVE_LEVEL` calls (their reference pages under `ddi/wdm/`).

use core::{
    mem::{MaybeUninit, offset_of, size_of},
    ptr::{self, addr_of, addr_of_mut},
};

use wdk_sys::{
    _EVENT_TYPE::NotificationEvent,
    _KWAIT_REASON::Executive,
    DEVICE_OBJECT, DO_DEVICE_INITIALIZING, DO_POWER_PAGABLE, DRIVER_OBJECT,
    FILE_DEVICE_SECURE_OPEN, FILE_DEVICE_UNKNOWN, IO_REMOVE_LOCK, IRP, KEVENT, NT_SUCCESS,
    NTSTATUS, PDEVICE_OBJECT, PIRP, PVOID, STATUS_DEVICE_BUSY, STATUS_DEVICE_NOT_READY,
    STATUS_MORE_PROCESSING_REQUIRED, STATUS_NO_SUCH_DEVICE, STATUS_PENDING, STATUS_SUCCESS, ULONG,
    ntddk::{
        IoAttachDeviceToDeviceStack, IoCreateDevice, IoDeleteDevice, IoDetachDevice,
        KeInitializeEvent, KeSetEvent, KeWaitForSingleObject, ObfReferenceObject,
    },
};

use super::{
    entry::register_client, globals::WSKECHO_GLOBALS, remove_lock, unload::deregister_client,
};
use crate::pnp::{self, PnpStep};
use wsk_kernel::{
    platform::KernelPlatform,
    wdm::{
        call_driver, complete_request, copy_current_stack_location_to_next, current_minor_function,
        io_status, set_completion_routine, set_status, skip_current_stack_location,
    },
};
use wsk_primitives::{log_error, log_trace, status::NtStatus};

/// The FDO's device extension: allocated by `IoCreateDevice` together with the device object
/// (non-paged, freed by `IoDeleteDevice`). The driver's only per-device memory.
#[repr(C)]
pub struct FdoExtension {
    /// The device object below the FDO, as `IoAttachDeviceToDeviceStack` returned it (the
    /// PDO of the root enumerator, or a lower filter). Every IRP is passed to it.
    lower: *mut DEVICE_OBJECT,
    /// Held by every IRP the FDO is handling; `IRP_MN_REMOVE_DEVICE` waits for it.
    remove_lock: IO_REMOVE_LOCK,
}

/// `DeviceExtensionSize` for `IoCreateDevice`.
const FDO_EXTENSION_SIZE: ULONG = 40;
const _: () = assert!(size_of::<FdoExtension>() == FDO_EXTENSION_SIZE as usize);
const _: () = assert!(offset_of!(FdoExtension, lower) == 0);
const _: () = assert!(offset_of!(FdoExtension, remove_lock) == 8);

/// The FDO's extension.
///
/// # Safety
/// `device` is an FDO created by [`add_device`] and not yet deleted.
pub unsafe fn extension(device: *mut DEVICE_OBJECT) -> *mut FdoExtension {
    // SAFETY: `device` is a valid device object (caller); only the field's address is taken.
    let field = unsafe { addr_of!((*device).DeviceExtension) };
    // SAFETY: reading a field IoCreateDevice initialised to the extension's address.
    unsafe { field.read() }.cast()
}

/// The FDO's lower device object and remove lock.
///
/// # Safety
/// As [`extension`].
pub unsafe fn lower_and_lock(
    device: *mut DEVICE_OBJECT,
) -> (*mut DEVICE_OBJECT, *mut IO_REMOVE_LOCK) {
    // SAFETY: forwarded caller guarantee.
    let extension = unsafe { extension(device) };
    // SAFETY: the extension is valid while the device exists; only addresses are taken.
    let lower = unsafe { addr_of!((*extension).lower) };
    // SAFETY: as above.
    let lock = unsafe { addr_of_mut!((*extension).remove_lock) };
    // SAFETY: `lower` was written by AddDevice before any IRP could arrive.
    (unsafe { lower.read() }, lock)
}

/// `AddDevice` (`DRIVER_ADD_DEVICE`), called by the Plug and Play manager at `PASSIVE_LEVEL`
/// for the `Root\wskecho` devnode, after `DriverEntry` and before any Plug and Play IRP for
/// the device.
///
/// 1. `IoCreateDevice`: unnamed (no user-mode access), `FILE_DEVICE_UNKNOWN`,
///    `FILE_DEVICE_SECURE_OPEN`, not exclusive, with an [`FdoExtension`].
/// 2. Initialises the remove lock, then `IoAttachDeviceToDeviceStack` on the PDO; if that
///    returns NULL, deletes the device and returns `STATUS_NO_SUCH_DEVICE`.
/// 3. Copies `DO_POWER_PAGABLE` from the lower device object ("drivers should not alter the
///    bus driver's value for the `DO_POWER_PAGABLE` flag, and a driver must never set this flag
///    if a lower-level driver has cleared it", Setting Device Object Flags for Power
///    Management); the FDO's power path works at either IRQL. `DO_BUFFERED_IO`
///    and `DO_DIRECT_IO` are not copied: they describe how a driver takes read/write buffers,
///    and the FDO serves no read, write or create request (the I/O manager fails them).
/// 4. Clears `DO_DEVICE_INITIALIZING`.
///
/// # Safety
/// Called only by the Plug and Play manager, with this driver's object and a valid PDO.
pub unsafe extern "C" fn add_device(
    driver: *mut DRIVER_OBJECT,
    pdo: *mut DEVICE_OBJECT,
) -> NTSTATUS {
    let platform = &KernelPlatform;
    let mut fdo: *mut DEVICE_OBJECT = ptr::null_mut();
    // SAFETY: the driver object is ours (caller); no name, so no name buffer; the out pointer
    // is a local; PASSIVE_LEVEL.
    let status = unsafe {
        IoCreateDevice(
            driver,
            FDO_EXTENSION_SIZE,
            ptr::null_mut(),
            FILE_DEVICE_UNKNOWN,
            FILE_DEVICE_SECURE_OPEN,
            0,
            &raw mut fdo,
        )
    };
    if !NT_SUCCESS(status) || fdo.is_null() {
        log_error!(platform, "IoCreateDevice failed: {}", NtStatus(status));
        return if NT_SUCCESS(status) {
            STATUS_NO_SUCH_DEVICE
        } else {
            status
        };
    }
    // SAFETY: `fdo` was just created with an FdoExtension-sized extension.
    let extension = unsafe { extension(fdo) };
    // SAFETY: the extension is valid non-paged memory nobody else uses yet; only addresses
    // are taken.
    let lower_field = unsafe { addr_of_mut!((*extension).lower) };
    // SAFETY: as above.
    let lock = unsafe { addr_of_mut!((*extension).remove_lock) };
    // SAFETY: writing the extension of a device object no IRP can reach yet.
    unsafe { lower_field.write(ptr::null_mut()) };
    // SAFETY: unused lock storage in the non-paged extension; PASSIVE_LEVEL.
    unsafe { remove_lock::initialize(lock) };

    // SAFETY: both device objects are valid; PASSIVE_LEVEL.
    let lower = unsafe { IoAttachDeviceToDeviceStack(fdo, pdo) };
    if lower.is_null() {
        log_error!(platform, "IoAttachDeviceToDeviceStack failed");
        // SAFETY: the device was never attached and no IRP has reached it.
        unsafe { IoDeleteDevice(fdo) };
        return STATUS_NO_SUCH_DEVICE;
    }
    // SAFETY: as above; still before any IRP (the PnP manager sends none until AddDevice
    // returns).
    unsafe { lower_field.write(lower) };

    // SAFETY: `lower` is the valid device object below; only the field's address is taken.
    let lower_flags = unsafe { addr_of!((*lower).Flags) };
    // SAFETY: as above, for our own device object.
    let flags = unsafe { addr_of_mut!((*fdo).Flags) };
    // SAFETY: reading the flags of the valid lower device object.
    let pagable = unsafe { lower_flags.read() } & DO_POWER_PAGABLE;
    // SAFETY: reading our FDO's flags, which nothing else writes during AddDevice.
    let current = unsafe { flags.read() };
    // SAFETY: as above; the FDO becomes usable once DO_DEVICE_INITIALIZING is clear.
    unsafe { flags.write((current | pagable) & !DO_DEVICE_INITIALIZING) };
    log_trace!(platform, "Root\\wskecho device added");
    STATUS_SUCCESS
}

/// `DispatchPnP` (`DRIVER_DISPATCH` for `IRP_MJ_PNP`), `PASSIVE_LEVEL`.
///
/// Acquires the remove lock (on failure, the device is being removed: completes the IRP with
/// that status), then performs the core's [`PnpStep`]s of [`pnp::action`] for the minor
/// function, in order:
/// * `PassDown`: skip, `IoCallDriver(lower)`, release the lock;
/// * `SucceedAndPassDown`: `IoStatus.Status = STATUS_SUCCESS`, then as `PassDown`;
/// * `Start`: pass down and wait until the lower drivers completed the IRP, register the WSK
///   client (start-up's verdict is the status), complete the IRP, release the lock;
/// * `StopAndPassDown`: deregister the WSK client (if this device registered it) and wait
///   until that completed, then as `SucceedAndPassDown`;
/// * `Remove`: deregister as above, `STATUS_SUCCESS`, skip, `IoCallDriver(lower)`,
///   `IoReleaseRemoveLockAndWait` (every other IRP on the FDO has finished),
///   `IoDetachDevice(lower)`, `IoDeleteDevice(fdo)` (which frees the extension: `lower` and
///   `lock` were read before).
///
/// Returns the lower driver's status, or for a start the status it was completed with. The
/// IRP is never touched after `IoCallDriver` (except when it came back to `Start`) or after
/// its completion.
///
/// # Safety
/// Called only by the I/O manager, for an FDO created by [`add_device`].
pub unsafe extern "C" fn dispatch_pnp(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: `device` is our FDO (caller).
    let (lower, lock) = unsafe { lower_and_lock(device) };
    // SAFETY: the lock was initialised in AddDevice and the FDO exists.
    let status = unsafe { remove_lock::acquire(lock, irp) };
    if !NT_SUCCESS(status) {
        // SAFETY: the IRP is ours and not passed on.
        unsafe { complete_request(irp, status) };
        return status;
    }
    // SAFETY: an IRP sent to this driver.
    let minor = unsafe { current_minor_function(irp) };
    let mut status = STATUS_SUCCESS;
    for &step in pnp::action(minor).steps() {
        match step {
            PnpStep::SetSuccess => {
                // SAFETY: the IRP is still ours (the core's steps set it before PassDown).
                unsafe { set_status(irp, STATUS_SUCCESS) };
            }
            PnpStep::PassDown => {
                // SAFETY: passing our IRP to the device below; the steps touch the IRP no
                // more afterwards (the IRP pointer stays only a remove-lock tag).
                status = unsafe { pass_down(lower, irp) };
            }
            PnpStep::PassDownAndWait => {
                // SAFETY: our IRP, passed to the device below and back (PASSIVE_LEVEL).
                status = unsafe { pass_down_and_wait(lower, irp) };
            }
            PnpStep::StartClient => {
                if NT_SUCCESS(status) {
                    status = start_client(device);
                }
            }
            PnpStep::StopClient => {
                // SAFETY: PASSIVE_LEVEL; one state-changing IRP at a time for this device.
                unsafe { stop_client(device) };
            }
            PnpStep::Complete => {
                // SAFETY: the IRP came back to us (PassDownAndWait) and is completed once;
                // the steps touch it no more afterwards.
                unsafe { complete_request(irp, status) };
            }
            PnpStep::ReleaseRemoveLock => {
                // SAFETY: releases the acquisition above, once (tested in the core).
                unsafe { remove_lock::release(lock, irp) };
            }
            PnpStep::ReleaseRemoveLockAndWait => {
                // SAFETY: held under this tag; only IRP_MN_REMOVE_DEVICE, once: afterwards
                // every acquisition fails, so no second remove IRP gets here. PASSIVE_LEVEL.
                unsafe { remove_lock::release_and_wait(lock, irp) };
            }
            PnpStep::DetachFromLower => {
                // SAFETY: `lower` is the device we attached to, detached once; PASSIVE_LEVEL.
                unsafe { IoDetachDevice(lower) };
            }
            PnpStep::DeleteDevice => {
                // SAFETY: no IRP holds the FDO any more (remove lock drained) and it is
                // detached; this is the last step, nothing touches the FDO or its extension
                // (`lower` and `lock` were read before) afterwards.
                unsafe { IoDeleteDevice(device) };
                log_trace!(&KernelPlatform, "Root\\wskecho device removed");
            }
        }
    }
    status
}

/// `IoCopyCurrentIrpStackLocationToNext`, a completion routine that signals `event` and
/// returns `STATUS_MORE_PROCESSING_REQUIRED`, `IoCallDriver(lower, irp)`, and on
/// `STATUS_PENDING` the wait for the event: the IRP is this driver's again, with the lower
/// drivers' status (<https://learn.microsoft.com/windows-hardware/drivers/kernel/postponing-pnp-irp-processing-until-lower-drivers-finish>).
/// `PASSIVE_LEVEL` (`KeWaitForSingleObject` without a timeout).
///
/// # Safety
/// `irp` was sent to this driver; `lower` is the FDO's lower device; `PASSIVE_LEVEL`.
unsafe fn pass_down_and_wait(lower: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    let mut event = MaybeUninit::<KEVENT>::uninit();
    // SAFETY: initialises the event in this frame, which outlives its use (we wait below).
    unsafe { KeInitializeEvent(event.as_mut_ptr(), NotificationEvent, 0) };
    // SAFETY: our IRP, about to be passed down.
    unsafe { copy_current_stack_location_to_next(irp) };
    // SAFETY: the next location is set up; the routine only signals the event, which lives
    // until the wait below returned.
    unsafe { set_completion_routine(irp, Some(lower_done), event.as_mut_ptr().cast()) };
    // SAFETY: passing the IRP down; it comes back through `lower_done`.
    let status = unsafe { call_driver(lower, irp) };
    if status == STATUS_PENDING {
        // SAFETY: an initialised event; PASSIVE_LEVEL; no timeout: the lower drivers complete
        // the IRP.
        let _ = unsafe {
            KeWaitForSingleObject(event.as_mut_ptr().cast(), Executive, 0, 0, ptr::null_mut())
        };
    }
    // SAFETY: the IRP completed back to us (event signalled, or completed inline).
    unsafe { io_status(irp) }.0
}

/// The completion routine of [`pass_down_and_wait`]: signals the waiting dispatch routine and
/// keeps the IRP (`STATUS_MORE_PROCESSING_REQUIRED`). IRQL <= `DISPATCH_LEVEL`
/// (`KeSetEvent` with `Wait = FALSE`).
unsafe extern "C" fn lower_done(_device: PDEVICE_OBJECT, _irp: PIRP, context: PVOID) -> NTSTATUS {
    // SAFETY: the context is the event `pass_down_and_wait` waits on, alive until it returns.
    unsafe { KeSetEvent(context.cast(), 0, 0) };
    STATUS_MORE_PROCESSING_REQUIRED
}

/// `IRP_MN_START_DEVICE`, once the lower drivers started the device: registers the WSK client
/// with the NMR, unless another `Root\wskecho` device's start did, and returns start-up's
/// verdict (a device that would serve nothing fails to start, its registration undone).
fn start_client(device: *mut DEVICE_OBJECT) -> NTSTATUS {
    let platform = &KernelPlatform;
    let Some(client) = WSKECHO_GLOBALS.client() else {
        return STATUS_DEVICE_NOT_READY;
    };
    if !WSKECHO_GLOBALS.claim_owner(device) {
        // One client per driver: a second device would show as started and serve nothing.
        log_error!(
            platform,
            "a second Root\\wskecho device cannot start: another one's client serves"
        );
        return STATUS_DEVICE_BUSY;
    }
    if WSKECHO_GLOBALS.has_nmr_client() {
        return STATUS_SUCCESS; // started again without a stop in between: still registered
    }
    log_trace!(
        platform,
        "Root\\wskecho device started: registering the WSK client"
    );
    // The FDO exists until the deregistration completed (stop_client runs before it is
    // deleted): every completion routine is set on it.
    WSKECHO_GLOBALS.set_completion_device(device);
    match register_client(client) {
        Ok(()) => STATUS_SUCCESS,
        Err(status) => {
            // SAFETY: PASSIVE_LEVEL; the Plug and Play manager serialises start and stop.
            unsafe { stop_client(device) };
            status
        }
    }
}

/// Stop, surprise removal or removal of `device`: if its start registered the WSK client,
/// deregisters it and waits until the deregistration completed and no binding is live ("the
/// driver must make sure deregistration has fully completed", Microsoft's "Unregistering and
/// Unloading the WSK Client"), then gives the registration up. Nothing to do for another
/// device, or a second time. If a failed `NmrDeregisterClient` leaves bindings live, the
/// device keeps the registration and an extra reference on its device object: their
/// completion routines are set on it, so it must outlive them even once the Plug and Play
/// manager has it deleted.
///
/// # Safety
/// `PASSIVE_LEVEL`; not concurrently with another registration change for this device (the
/// Plug and Play manager sends one state-changing IRP to a device at a time).
unsafe fn stop_client(device: *mut DEVICE_OBJECT) {
    if !WSKECHO_GLOBALS.is_owner(device) {
        return;
    }
    // SAFETY: forwarded.
    if unsafe { deregister_client() } {
        WSKECHO_GLOBALS.set_completion_device(ptr::null_mut());
        let _ = WSKECHO_GLOBALS.release_owner(device);
        log_trace!(
            &KernelPlatform,
            "Root\\wskecho device stopping: the WSK client is deregistered"
        );
    } else {
        // SAFETY: our live device object; the reference is never dropped (the live bindings'
        // completions may use it until the end).
        let _ = unsafe { ObfReferenceObject(device.cast()) };
        log_error!(
            &KernelPlatform,
            "Root\\wskecho device stopping with bindings live after a failed deregistration"
        );
    }
}

/// `IoSkipCurrentIrpStackLocation` + `IoCallDriver(lower, irp)`.
///
/// # Safety
/// `irp` was sent to this driver and is passed on here; `lower` is the FDO's lower device.
pub unsafe fn pass_down(lower: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: our IRP, about to be passed to the next-lower driver.
    unsafe { skip_current_stack_location(irp) };
    // SAFETY: the next location is now ours, unchanged, for `lower`.
    unsafe { call_driver(lower, irp) }
}
