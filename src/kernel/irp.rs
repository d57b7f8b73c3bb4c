//! Driver-owned IRPs for WSK calls: allocate, prepare for reuse, read the result, free.
//!
//! Lifecycle (one [`OwnedIrp`] per socket and operation kind):
//! `IoAllocateIrp(1, FALSE)` once → before every call `IoReuseIrp(irp, STATUS_UNSUCCESSFUL)` and
//! [`set_completion_routine`] → the WSK call → WSK completes the IRP (always, also when the call
//! fails or is cancelled) → the completion routine returns `STATUS_MORE_PROCESSING_REQUIRED`
//! (the IRP is ours, the I/O manager must not touch it further) → `IoFreeIrp` when the socket's
//! I/O resources are dropped, which the core only does when nothing is outstanding.
//!
//! IRQL: `IoAllocateIrp`, `IoReuseIrp` and `IoFreeIrp` may be called at IRQL <= `DISPATCH_LEVEL`
//! (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-ioallocateirp>,
//! <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-ioreuseirp>,
//! <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-iofreeirp>).
//!
//! IRPs the I/O manager sends to the `Root\wskecho` device object (Plug and Play, power,
//! WMI) are passed down with the `wdm.h` inline helpers written here in Rust
//! ([`current_minor_function`], [`skip_current_stack_location`], [`call_driver`],
//! [`set_status`], [`complete_request`]); all may be called at IRQL <= `DISPATCH_LEVEL`.

use core::ptr::{NonNull, addr_of, addr_of_mut};

use wdk_sys::{
    CCHAR, DEVICE_OBJECT, IO_NO_INCREMENT, IO_STACK_LOCATION, IRP, NTSTATUS,
    PIO_COMPLETION_ROUTINE, PVOID, STATUS_UNSUCCESSFUL, ULONG_PTR,
    ntddk::{
        IoAllocateIrp, IoFreeIrp, IoReuseIrp, IoSetCompletionRoutineEx, IofCallDriver,
        IofCompleteRequest,
    },
};

/// `SL_INVOKE_ON_CANCEL` (`wdm.h`).
const SL_INVOKE_ON_CANCEL: u8 = 0x20;
/// `SL_INVOKE_ON_SUCCESS` (`wdm.h`).
const SL_INVOKE_ON_SUCCESS: u8 = 0x40;
/// `SL_INVOKE_ON_ERROR` (`wdm.h`).
const SL_INVOKE_ON_ERROR: u8 = 0x80;

/// An IRP allocated by the driver, freed on drop.
pub struct OwnedIrp(NonNull<IRP>);

// SAFETY: the IRP is plain non-paged memory owned by this value; the core serialises its use
// (one outstanding operation per IRP) and the I/O manager allows using it from any thread.
unsafe impl Send for OwnedIrp {}
// SAFETY: as above; shared references only hand out the raw pointer.
unsafe impl Sync for OwnedIrp {}

impl OwnedIrp {
    /// `IoAllocateIrp(1, FALSE)`: one stack location, the one WSK uses. `None` when the pool is
    /// exhausted. IRQL <= `DISPATCH_LEVEL`.
    pub fn allocate() -> Option<Self> {
        // SAFETY: no preconditions besides IRQL <= DISPATCH_LEVEL; the result is NULL-checked.
        let irp = unsafe { IoAllocateIrp(1, 0) };
        NonNull::new(irp).map(Self)
    }

    /// The raw IRP, to pass to a WSK function.
    pub const fn as_ptr(&self) -> *mut IRP {
        self.0.as_ptr()
    }

    /// Readies the IRP for its next WSK call: `IoReuseIrp(irp, STATUS_UNSUCCESSFUL)`, then
    /// `IoSetCompletionRoutineEx(device, irp, routine, context, TRUE, TRUE, TRUE)`: the
    /// kernel's wrapper around `routine` holds a reference on `device` (and so on the driver)
    /// until `routine` has returned, so the image cannot be unloaded under a completion
    /// routine that is still returning
    /// (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-iosetcompletionroutineex>).
    /// It allocates a small context per call, freed after the routine ran.
    ///
    /// # Errors
    /// `IoSetCompletionRoutineEx`'s status (`STATUS_INSUFFICIENT_RESOURCES`): the IRP has no
    /// completion routine then and must not be passed to WSK.
    ///
    /// # Safety
    /// The IRP is not in use (not passed to a call that has not completed yet); `device` is a
    /// device object of this driver that exists until the completion routine has run.
    pub unsafe fn prepare(
        &self,
        device: NonNull<DEVICE_OBJECT>,
        routine: PIO_COMPLETION_ROUTINE,
        context: PVOID,
    ) -> Result<(), NTSTATUS> {
        // SAFETY: the IRP was allocated by IoAllocateIrp and is idle (caller's contract).
        unsafe { IoReuseIrp(self.as_ptr(), STATUS_UNSUCCESSFUL) };
        // SAFETY: as above; the IRP has one stack location for the next driver (WSK); the
        // device object outlives the routine (caller); IRQL <= DISPATCH_LEVEL.
        let status = unsafe {
            IoSetCompletionRoutineEx(device.as_ptr(), self.as_ptr(), routine, context, 1, 1, 1)
        };
        if status < 0 { Err(status) } else { Ok(()) }
    }

    /// [`OwnedIrp::prepare`] without the unload protection: `IoSetCompletionRoutine`, which
    /// cannot fail. Only for a close whose `IoSetCompletionRoutineEx` found no memory: the
    /// socket must be closed all the same.
    ///
    /// # Safety
    /// As [`OwnedIrp::prepare`].
    pub unsafe fn prepare_unprotected(&self, routine: PIO_COMPLETION_ROUTINE, context: PVOID) {
        // SAFETY: the IRP was allocated by IoAllocateIrp and is idle (caller's contract).
        unsafe { IoReuseIrp(self.as_ptr(), STATUS_UNSUCCESSFUL) };
        // SAFETY: as above; the IRP has one stack location for the next driver (WSK).
        unsafe { set_completion_routine(self.as_ptr(), routine, context) };
    }
}

impl Drop for OwnedIrp {
    fn drop(&mut self) {
        // SAFETY: the IRP came from IoAllocateIrp and, per the Provider contract, no operation
        // is outstanding on it when the socket's I/O resources are dropped.
        unsafe { IoFreeIrp(self.as_ptr()) };
    }
}

/// `IoGetNextIrpStackLocation` (a `FORCEINLINE` function in `wdm.h`, so bindgen does not
/// generate it): `Irp->Tail.Overlay.CurrentStackLocation - 1`.
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

/// `IoCopyCurrentIrpStackLocationToNext(Irp)` (`FORCEINLINE` in `wdm.h`): copies the current
/// stack location into the next one up to (not including) `CompletionRoutine`, and clears the
/// next location's `Control`, so that the lower driver sees this driver's parameters and this
/// driver can set its own completion routine.
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

/// `IoSetCompletionRoutine(Irp, Routine, Context, TRUE, TRUE, TRUE)` (a `FORCEINLINE` function
/// in `wdm.h`): fills the next stack location's `CompletionRoutine`, `Context` and
/// `Control = SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL`.
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

/// `IoSkipCurrentIrpStackLocation(Irp)` (`FORCEINLINE` in `wdm.h`): `Irp->CurrentLocation++;
/// Irp->Tail.Overlay.CurrentStackLocation++;`, so that the next driver receives this driver's
/// stack location unchanged.
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

/// Completes `irp` with `status` and no information: `Irp->IoStatus.Status = status;
/// Irp->IoStatus.Information = 0; IoCompleteRequest(Irp, IO_NO_INCREMENT)` (`IoCompleteRequest`
/// is the `wdm.h` macro for `IofCompleteRequest`). IRQL <= `DISPATCH_LEVEL`.
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
