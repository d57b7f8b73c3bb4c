//! IRPs the `Root\wskecho` FDO does not handle but must pass to the device below:
//! `IRP_MJ_POWER` and `IRP_MJ_SYSTEM_CONTROL` (WMI). Both are passed down untouched, under
//! the FDO's remove lock.
//!
//! * Power: the FDO has no power policy and no hardware. "Beginning with Windows Vista,
//!   drivers should call `IoCallDriver`, not `PoCallDriver` to pass a power IRP to the
//!   next-lower driver", and `PoStartNextPowerIrp` is only required on Windows Server 2003, XP and 2000
//!   (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-pocalldriver>,
//!   <https://learn.microsoft.com/windows-hardware/drivers/kernel/calling-iocalldriver-versus-calling-pocalldriver>).
//!   So: `IoSkipCurrentIrpStackLocation` + `IoCallDriver`.
//! * WMI: wskecho registers no WMI provider
//!   ("Drivers that do not support WMI by registering as a WMI data provider must pass
//!   `IRP_MJ_SYSTEM_CONTROL` requests to the next lower driver",
//!   <https://learn.microsoft.com/windows-hardware/drivers/kernel/irp-mj-system-control>);
//!   without this routine the I/O manager would fail it on the FDO and the PDO would never
//!   see it.
//!
//! IRQL: `DispatchPower` runs at `PASSIVE_LEVEL` when `DO_POWER_PAGABLE` is set ("The power
//! manager calls such drivers at IRQL = `PASSIVE_LEVEL`"), otherwise it "must be callable at
//! IRQL = `DISPATCH_LEVEL`"
//! (<https://learn.microsoft.com/windows-hardware/drivers/kernel/setting-device-object-flags-for-power-management>);
//! `DispatchSystemControl` at `PASSIVE_LEVEL` ("WMI sends this IRP at IRQL = `PASSIVE_LEVEL`",
//! e.g. <https://learn.microsoft.com/windows-hardware/drivers/kernel/irp-mn-query-all-data>).
//! Everything called here works at IRQL <= `DISPATCH_LEVEL` (remove lock acquire/release,
//! `IofCallDriver`, `IofCompleteRequest`).

use wdk_sys::{DEVICE_OBJECT, IRP, NT_SUCCESS, NTSTATUS};

use super::{
    pnp::{lower_and_lock, pass_down},
    remove_lock,
};
use wsk_kernel::wdm::complete_request;

/// Acquires the remove lock, passes `irp` down, releases the lock. A device being removed
/// (`STATUS_DELETE_PENDING` from the lock) completes the IRP with that status.
///
/// # Safety
/// `device` is an FDO of this driver and `irp` was sent to it.
unsafe fn forward(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: `device` is our FDO (caller).
    let (lower, lock) = unsafe { lower_and_lock(device) };
    // SAFETY: the lock was initialised in AddDevice and the FDO exists.
    let status = unsafe { remove_lock::acquire(lock, irp) };
    if !NT_SUCCESS(status) {
        // SAFETY: the IRP is ours and not passed on.
        unsafe { complete_request(irp, status) };
        return status;
    }
    // SAFETY: our IRP, passed on to the device below while the lock is held.
    let status = unsafe { pass_down(lower, irp) };
    // SAFETY: releases the acquisition above.
    unsafe { remove_lock::release(lock, irp) };
    status
}

/// `DispatchPower` (`DRIVER_DISPATCH` for `IRP_MJ_POWER`): passed down untouched.
///
/// # Safety
/// Called only by the I/O manager (power manager), for an FDO of this driver.
pub unsafe extern "C" fn dispatch_power(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: forwarded caller guarantee.
    unsafe { forward(device, irp) }
}

/// `DispatchSystemControl` (`DRIVER_DISPATCH` for `IRP_MJ_SYSTEM_CONTROL`): passed down
/// untouched.
///
/// # Safety
/// Called only by the I/O manager, for an FDO of this driver.
pub unsafe extern "C" fn dispatch_system_control(
    device: *mut DEVICE_OBJECT,
    irp: *mut IRP,
) -> NTSTATUS {
    // SAFETY: forwarded caller guarantee.
    unsafe { forward(device, irp) }
}
