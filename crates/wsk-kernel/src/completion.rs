//! IRP completion routines (`IO_COMPLETION_ROUTINE`) of the WSK calls: translate
//! `Irp->IoStatus` into a core [`Completion`] and hand it to the socket's token. Generic over
//! the provider type of the token (the adapter's `WskProvider`), so that this module does not
//! depend on the provider that sets them.
//!
//! IRQL: completion routines run at IRQL <= `DISPATCH_LEVEL`, on any thread, possibly before
//! the WSK call that passed the IRP has returned
//! (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nc-wdm-io_completion_routine>).
//! They always return `STATUS_MORE_PROCESSING_REQUIRED`: the IRPs are the driver's own and are
//! reused or freed by it ("Using IRPs with Winsock Kernel Functions",
//! <https://learn.microsoft.com/windows-hardware/drivers/network/using-irps-with-winsock-kernel-functions>).
//!
//! After [`SocketRef::complete`] returns, the core may already have dropped the socket's I/O
//! resources (freeing this very IRP, which the page above allows inside the completion
//! routine), so nothing is touched after that call.

use core::ptr::NonNull;

use wdk_sys::{
    NT_SUCCESS, NTSTATUS, PDEVICE_OBJECT, PIRP, PVOID, STATUS_MORE_PROCESSING_REQUIRED, ULONG_PTR,
};

use crate::{socket_handle::WskSocketHandle, wdm::io_status};
use wsk_client::{
    provider::{Completion, Provider},
    socket::SocketRef,
};
use wsk_primitives::status::NtStatus;

/// The completion of an operation whose result carries no value.
const fn unit_result(status: NTSTATUS) -> Result<(), NtStatus> {
    if NT_SUCCESS(status) {
        Ok(())
    } else {
        Err(NtStatus(status))
    }
}

/// The completion of a send or receive: the byte count on success.
fn count_result(status: NTSTATUS, information: ULONG_PTR) -> Result<usize, NtStatus> {
    if NT_SUCCESS(status) {
        usize::try_from(information).map_err(|_| NtStatus::UNSUCCESSFUL)
    } else {
        Err(NtStatus(status))
    }
}

/// Reads the IRP's status, translates it and completes the token.
///
/// # Safety
/// `irp` is a completed IRP of ours and `context` the token it was prepared with.
unsafe fn finish<P: Provider<Socket = WskSocketHandle>>(
    irp: PIRP,
    context: PVOID,
    translate: impl FnOnce(NTSTATUS, ULONG_PTR) -> Completion<WskSocketHandle>,
) -> NTSTATUS {
    // SAFETY: `irp` is a completed IRP (caller).
    let (status, information) = unsafe { io_status(irp) };
    let completion = translate(status, information);
    // SAFETY: `context` is the token passed to `prepare` for this operation (caller); the core
    // keeps it valid until its operation completes, which is now.
    let token = unsafe { SocketRef::<P>::from_context(context) };
    // SAFETY: exactly one completion per operation: this IRP completes once per call.
    unsafe { token.complete(completion) };
    STATUS_MORE_PROCESSING_REQUIRED
}

/// `WskSocket` finished: on success `IoStatus.Information` is the new `PWSK_SOCKET`.
pub unsafe extern "C" fn socket_created<P: Provider<Socket = WskSocketHandle>>(
    _device: PDEVICE_OBJECT,
    irp: PIRP,
    context: PVOID,
) -> NTSTATUS {
    // SAFETY: called by the I/O manager for our IRP, prepared with its token.
    unsafe {
        finish::<P>(irp, context, |status, information| {
            Completion::Created(unit_result(status).and_then(|()| {
                NonNull::new(information as *mut _)
                    .map(WskSocketHandle)
                    .ok_or(NtStatus::UNSUCCESSFUL)
            }))
        })
    }
}

/// `WskControlSocket(WskSetOption)` finished.
pub unsafe extern "C" fn option_set<P: Provider<Socket = WskSocketHandle>>(
    _device: PDEVICE_OBJECT,
    irp: PIRP,
    context: PVOID,
) -> NTSTATUS {
    // SAFETY: called by the I/O manager for our IRP, prepared with its token.
    unsafe {
        finish::<P>(irp, context, |status, _| {
            Completion::OptionSet(unit_result(status))
        })
    }
}

/// `WskBind` finished.
pub unsafe extern "C" fn bound<P: Provider<Socket = WskSocketHandle>>(
    _device: PDEVICE_OBJECT,
    irp: PIRP,
    context: PVOID,
) -> NTSTATUS {
    // SAFETY: called by the I/O manager for our IRP, prepared with its token.
    unsafe {
        finish::<P>(irp, context, |status, _| {
            Completion::Bound(unit_result(status))
        })
    }
}

/// `WskReceive` finished: `IoStatus.Information` is the byte count (0 = the peer sent FIN).
pub unsafe extern "C" fn received<P: Provider<Socket = WskSocketHandle>>(
    _device: PDEVICE_OBJECT,
    irp: PIRP,
    context: PVOID,
) -> NTSTATUS {
    // SAFETY: called by the I/O manager for our IRP, prepared with its token.
    unsafe {
        finish::<P>(irp, context, |status, information| {
            Completion::Received(count_result(status, information))
        })
    }
}

/// `WskSend` finished: `IoStatus.Information` is the byte count.
pub unsafe extern "C" fn sent<P: Provider<Socket = WskSocketHandle>>(
    _device: PDEVICE_OBJECT,
    irp: PIRP,
    context: PVOID,
) -> NTSTATUS {
    // SAFETY: called by the I/O manager for our IRP, prepared with its token.
    unsafe {
        finish::<P>(irp, context, |status, information| {
            Completion::Sent(count_result(status, information))
        })
    }
}

/// `WskDisconnect` finished.
pub unsafe extern "C" fn disconnected<P: Provider<Socket = WskSocketHandle>>(
    _device: PDEVICE_OBJECT,
    irp: PIRP,
    context: PVOID,
) -> NTSTATUS {
    // SAFETY: called by the I/O manager for our IRP, prepared with its token.
    unsafe {
        finish::<P>(irp, context, |status, _| {
            Completion::Disconnected(unit_result(status))
        })
    }
}

/// `WskCloseSocket` finished: the socket is gone whatever the status.
pub unsafe extern "C" fn closed<P: Provider<Socket = WskSocketHandle>>(
    _device: PDEVICE_OBJECT,
    irp: PIRP,
    context: PVOID,
) -> NTSTATUS {
    // SAFETY: called by the I/O manager for our IRP, prepared with its token.
    unsafe { finish::<P>(irp, context, |_, _| Completion::Closed) }
}
