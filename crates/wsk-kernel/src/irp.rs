//! Driver-owned IRPs for WSK calls: allocate, prepare for reuse, read the result, free.
//!
//! Lifecycle (one [`OwnedIrp`] per socket and operation kind): `IoAllocateIrp(1, FALSE)` once →
//! before every call `IoReuseIrp(irp, STATUS_UNSUCCESSFUL)` and `IoSetCompletionRoutineEx` → the
//! WSK call → WSK completes the IRP (always, also when the call fails or is cancelled) → the
//! completion routine returns `STATUS_MORE_PROCESSING_REQUIRED` (the IRP is ours, the I/O manager
//! must not touch it further) → `IoFreeIrp` when the socket's I/O resources are dropped, which the
//! core only does when nothing is outstanding.
//!
//! IRQL: `IoAllocateIrp`, `IoReuseIrp` and `IoFreeIrp` may be called at IRQL <= `DISPATCH_LEVEL`
//! (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-ioallocateirp>,
//! <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-ioreuseirp>,
//! <https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-iofreeirp>).

use core::ptr::NonNull;

use wdk_sys::{
    DEVICE_OBJECT, IRP, NTSTATUS, PIO_COMPLETION_ROUTINE, PVOID, STATUS_UNSUCCESSFUL,
    ntddk::{IoAllocateIrp, IoFreeIrp, IoReuseIrp, IoSetCompletionRoutineEx},
};

use crate::wdm::set_completion_routine;

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
