//! The `wdm.h` IRP helpers that are `FORCEINLINE` functions or macros, so bindgen does not
//! generate them: the stack location arithmetic, the completion routine, the I/O status.
//!
//! The adapter's IRPs use [`set_completion_routine`] and [`io_status`]; a driver's own device
//! object (a Plug and Play device passing IRPs down) uses the rest. All may be called at IRQL
//! <= `DISPATCH_LEVEL`.

use core::ptr::{addr_of, addr_of_mut};

use wdk_sys::{
    CCHAR, DEVICE_OBJECT, IO_NO_INCREMENT, IO_STACK_LOCATION, IRP, NTSTATUS,
    PIO_COMPLETION_ROUTINE, PVOID, ULONG_PTR,
    ntddk::{IofCallDriver, IofCompleteRequest},
};

/// `SL_INVOKE_ON_CANCEL` (`wdm.h`).
const SL_INVOKE_ON_CANCEL: u8 = 0x20;
/// `SL_INVOKE_ON_SUCCESS` (`wdm.h`).
const SL_INVOKE_ON_SUCCESS: u8 = 0x40;
/// `SL_INVOKE_ON_ERROR` (`wdm.h`).
const SL_INVOKE_ON_ERROR: u8 = 0x80;

/// `IoGetNextIrpStackLocation` (a `FORCEINLINE` function in `wdm.h`, so bindgen does not
/// generate it): `Irp->Tail.Overlay.CurrentStackLocation - 1`.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-iogetnextirpstacklocation>
///
/// # Safety
/// `irp` is a valid IRP with a next stack location (true for an IRP from
/// `IoAllocateIrp(1, ..)` before it is passed down).
unsafe fn next_stack_location(irp: *mut IRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: `irp` is valid (caller).
    let field = unsafe { current_stack_location_field(irp) };
    // SAFETY: reading an initialised pointer field of a valid IRP.
    let current = unsafe { field.read() };
    current.wrapping_sub(1)
}

/// `IoCopyCurrentIrpStackLocationToNext(Irp)` (`FORCEINLINE` in `wdm.h`).
///
/// Copies the current stack location into the next one up to (not including)
/// `CompletionRoutine`, and clears the next location's `Control`, so that the lower driver sees
/// this driver's parameters and this driver can set its own completion routine.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-iocopycurrentirpstacklocationtonext>
///
/// # Safety
/// `irp` is a valid IRP sent to this driver (so it has a next stack location, for the driver
/// below), about to be passed down.
pub unsafe fn copy_current_stack_location_to_next(irp: *mut IRP) {
    // SAFETY: `irp` is valid (caller).
    let field = unsafe { current_stack_location_field(irp) };
    // SAFETY: reading an initialised pointer field of a valid IRP.
    let current = unsafe { field.read() };
    // SAFETY: as above; the next location exists (caller).
    let next = unsafe { next_stack_location(irp) };
    // SAFETY: both locations lie in the IRP's stack array and do not overlap; the copied
    // prefix ends at `CompletionRoutine` (offset checked in layout.rs).
    unsafe {
        core::ptr::copy_nonoverlapping(
            current.cast::<u8>(),
            next.cast::<u8>(),
            core::mem::offset_of!(IO_STACK_LOCATION, CompletionRoutine),
        );
    }
    // SAFETY: as above; only the field's address is taken.
    let control = unsafe { addr_of_mut!((*next).Control) };
    // SAFETY: writing a field of the next location, ours until the IRP is passed down.
    unsafe { control.write(0) };
}

/// `IoSetCompletionRoutine(Irp, Routine, Context, TRUE, TRUE, TRUE)` (`FORCEINLINE` in `wdm.h`).
///
/// Fills the next stack location's `CompletionRoutine`, `Context` and
/// `Control = SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL`.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-iosetcompletionroutine>
///
/// # Safety
/// `irp` is a valid, idle IRP with a next stack location.
pub unsafe fn set_completion_routine(
    irp: *mut IRP,
    routine: PIO_COMPLETION_ROUTINE,
    context: PVOID,
) {
    // SAFETY: `irp` is valid and has a next stack location (caller).
    let next = unsafe { next_stack_location(irp) };
    // SAFETY: `next` points into the IRP's stack location array (see above); only the
    // field's address is taken.
    let routine_field = unsafe { addr_of_mut!((*next).CompletionRoutine) };
    // SAFETY: as above.
    let context_field = unsafe { addr_of_mut!((*next).Context) };
    // SAFETY: as above.
    let control_field = unsafe { addr_of_mut!((*next).Control) };
    // SAFETY: writing a field of the (idle) next stack location.
    unsafe { routine_field.write(routine) };
    // SAFETY: as above.
    unsafe { context_field.write(context) };
    // SAFETY: as above.
    unsafe { control_field.write(SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL) };
}

/// `Irp->IoStatus`: the final status and the information value of a completed IRP.
///
/// # Safety
/// `irp` is a valid IRP that has been completed (called from its completion routine).
pub unsafe fn io_status(irp: *mut IRP) -> (NTSTATUS, ULONG_PTR) {
    // SAFETY: `irp` is valid (caller); only the field's address is taken.
    let status_field = unsafe { addr_of!((*irp).IoStatus.__bindgen_anon_1.Status) };
    // SAFETY: as above.
    let information_field = unsafe { addr_of!((*irp).IoStatus.Information) };
    // SAFETY: reading the IO_STATUS_BLOCK of a completed IRP.
    let status = unsafe { status_field.read() };
    // SAFETY: as above.
    let information = unsafe { information_field.read() };
    (status, information)
}

/// `Irp->Tail.Overlay.CurrentStackLocation`, read through raw pointers.
///
/// # Safety
/// `irp` is a valid IRP.
unsafe fn current_stack_location_field(irp: *mut IRP) -> *mut *mut IO_STACK_LOCATION {
    // SAFETY: `irp` is valid (caller); only the field's address is taken.
    unsafe {
        addr_of_mut!(
            (*irp)
                .Tail
                .Overlay
                .__bindgen_anon_2
                .__bindgen_anon_1
                .CurrentStackLocation
        )
    }
}

/// `IoGetCurrentIrpStackLocation(Irp)->MinorFunction` (`IoGetCurrentIrpStackLocation` is a
/// `FORCEINLINE` function in `wdm.h`: `return Irp->Tail.Overlay.CurrentStackLocation;`).
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-iogetcurrentirpstacklocation>
///
/// # Safety
/// `irp` is a valid IRP sent to this driver (so its current stack location is this driver's).
pub unsafe fn current_minor_function(irp: *mut IRP) -> u8 {
    // SAFETY: `irp` is valid (caller).
    let field = unsafe { current_stack_location_field(irp) };
    // SAFETY: reading an initialised pointer field of a valid IRP.
    let current = unsafe { field.read() };
    // SAFETY: the I/O manager points CurrentStackLocation at this driver's location before
    // calling its dispatch routine; only the field's address is taken.
    let minor = unsafe { addr_of!((*current).MinorFunction) };
    // SAFETY: reading an initialised byte of that stack location.
    unsafe { minor.read() }
}

/// `IoSkipCurrentIrpStackLocation(Irp)` (`FORCEINLINE` in `wdm.h`).
///
/// `Irp->CurrentLocation++; Irp->Tail.Overlay.CurrentStackLocation++;`, so that the next driver
/// receives this driver's stack location unchanged.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-ioskipcurrentirpstacklocation>
///
/// # Safety
/// `irp` is a valid IRP sent to this driver, about to be passed to the next-lower driver with
/// [`call_driver`] (which moves the location back down by one).
pub unsafe fn skip_current_stack_location(irp: *mut IRP) {
    // SAFETY: `irp` is valid (caller); only the field's address is taken.
    let location = unsafe { addr_of_mut!((*irp).CurrentLocation) };
    // SAFETY: as above.
    let stack = unsafe { current_stack_location_field(irp) };
    // SAFETY: reading a field of a valid IRP this driver currently owns.
    let current_location = unsafe { location.read() };
    // SAFETY: as above.
    let current_stack = unsafe { stack.read() };
    // SAFETY: writing them back incremented. The increments undo the decrement IofCallDriver
    // makes, so neither leaves the IRP's stack.
    unsafe { location.write(current_location.wrapping_add(1)) };
    // SAFETY: as above.
    unsafe { stack.write(current_stack.wrapping_add(1)) };
}

/// `IoCallDriver(DeviceObject, Irp)`, which `wdm.h` defines as the macro
/// `IofCallDriver(DeviceObject, Irp)`. IRQL <= `DISPATCH_LEVEL`.
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-iocalldriver>
///
/// # Safety
/// `device` is the next-lower device object, `irp` a valid IRP whose next stack location is
/// set up for it. The IRP belongs to the lower driver afterwards.
pub unsafe fn call_driver(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: forwarded caller guarantees.
    unsafe { IofCallDriver(device, irp) }
}

/// `Irp->IoStatus.Status = status`.
///
/// # Safety
/// `irp` is a valid IRP this driver currently owns.
pub unsafe fn set_status(irp: *mut IRP, status: NTSTATUS) {
    // SAFETY: `irp` is valid (caller); only the field's address is taken.
    let field = unsafe { addr_of_mut!((*irp).IoStatus.__bindgen_anon_1.Status) };
    // SAFETY: writing the status of an IRP this driver owns.
    unsafe { field.write(status) };
}

/// Completes `irp` with `status` and no information, at IRQL <= `DISPATCH_LEVEL`.
///
/// `Irp->IoStatus.Status = status; Irp->IoStatus.Information = 0;
/// IoCompleteRequest(Irp, IO_NO_INCREMENT)` (`IoCompleteRequest` is the `wdm.h` macro for
/// `IofCompleteRequest`).
///
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-iocompleterequest>
///
/// # Safety
/// `irp` is a valid IRP this driver owns and has not passed on; it is gone afterwards.
pub unsafe fn complete_request(irp: *mut IRP, status: NTSTATUS) {
    // SAFETY: forwarded caller guarantee.
    unsafe { set_status(irp, status) };
    // SAFETY: as above; only the field's address is taken.
    let information = unsafe { addr_of_mut!((*irp).IoStatus.Information) };
    // SAFETY: writing a field of an IRP this driver owns.
    unsafe { information.write(0) };
    // IO_NO_INCREMENT is 0, which fits a CCHAR.
    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
    let boost = IO_NO_INCREMENT as CCHAR;
    // SAFETY: the IRP is ours to complete (caller).
    unsafe { IofCompleteRequest(irp, boost) };
}
