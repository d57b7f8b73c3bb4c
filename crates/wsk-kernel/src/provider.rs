//! [`Provider`] over the real WSK subsystem, for one NMR binding.
//!
//! Each method makes one WSK call with the socket's dedicated IRP (see `irp.rs` and
//! `socket_io.rs`) and returns; the result arrives through the IRP's completion routine
//! (`completion.rs`), possibly before the call returns. WSK always completes an IRP it was
//! given, also when the call fails at once, so the adapter never completes one itself; when a
//! call cannot be made at all (a missing dispatch entry, a range outside the MDL), the method
//! reports the failure by completing the token inline, which the core allows.
//!
//! The core makes these calls only from a socket's work item (`work_item.rs`, `PASSIVE_LEVEL`)
//! and, for `WskControlClient`, from `ClientAttachProvider`; never from a completion routine
//! or `WskAcceptEvent`. [`Provider::schedule`] queues that work item.
//!
//! IRQL: every method may be called at IRQL <= `DISPATCH_LEVEL`; the WSK functions used accept
//! that (their `PFN_WSK_*` reference pages), `WskControlClient` included
//! (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_control_client>),
//! which [`Provider::enable_accept_events`] calls once per binding from `ClientAttachProvider`,
//! at `PASSIVE_LEVEL`.

use core::{
    ffi::c_void,
    mem::size_of,
    net::SocketAddr,
    ops::Range,
    ptr::{self, NonNull},
};

use wdk_sys::{DEVICE_OBJECT, DRIVER_OBJECT, HANDLE, NT_SUCCESS, PIO_COMPLETION_ROUTINE, SIZE_T};

use crate::ffi::{
    netioddk::NmrClientDetachProviderComplete,
    ws2def::{AF_INET, AF_INET6, IPPROTO_IPV6, IPPROTO_TCP, IPV6_V6ONLY, SOCK_STREAM, TCP_NODELAY},
    wsk::{
        NPI_WSK_INTERFACE_ID, PFN_WSK_RECEIVE, PWSK_CLIENT, WSK_BUF, WSK_CLIENT_LISTEN_DISPATCH,
        WSK_EVENT_ACCEPT, WSK_EVENT_CALLBACK_CONTROL, WSK_FLAG_LISTEN_SOCKET,
        WSK_PROVIDER_BASIC_DISPATCH, WSK_PROVIDER_CONNECTION_DISPATCH, WSK_PROVIDER_DISPATCH,
        WSK_PROVIDER_LISTEN_DISPATCH, WSK_SET_STATIC_EVENT_CALLBACKS, WskSetOption,
    },
};
use crate::{
    address::SockaddrStorage,
    completion, events,
    platform::KernelPlatform,
    socket_io::{OpSlot, WskSocketIo},
    timer::BindingTimer,
    work_item,
};
use wsk_client::{
    binding::BindingRef,
    provider::{Completion, OpKind, Provider, SocketKind, SocketOption},
    socket::SocketRef,
};
use wsk_primitives::{log_warning, status::NtStatus};

pub use crate::socket_handle::WskSocketHandle;

/// The size of a `ULONG` socket option value, as `WskControlSocket`'s `InputSize`.
const OPTION_SIZE: SIZE_T = 4;
const _: () = assert!(size_of::<u32>() == 4);

/// The client dispatch of every listening socket (static: WSK reads it while the socket
/// exists).
static LISTEN_DISPATCH: WSK_CLIENT_LISTEN_DISPATCH = events::listen_dispatch::<WskProvider>();

/// One entry of a WSK provider dispatch table (`$table`: `*const` table type, may be NULL),
/// read through a raw pointer to that field alone: a reference to the whole table would claim
/// every byte of this crate's (newest) layout, while a provider of an older WSK version hands
/// out a table that ends after its own version's last entry. `None` for a NULL table or entry.
///
/// The caller guarantees that the table, when not NULL, is the provider's table of the right
/// category and that `$field` belongs to the WSK version both sides agreed on (1.0: every
/// entry the adapter reads).
macro_rules! dispatch_entry {
    ($table:expr, $field:ident) => {{
        let table = $table;
        if table.is_null() {
            None
        } else {
            // SAFETY: a non-NULL table stays valid and immutable while its socket is open or
            // its binding attached, and holds `$field` (the macro's contract); only that
            // field's bytes are read.
            unsafe { (&raw const (*table).$field).read() }
        }
    }};
}

/// The driver's objects a binding's I/O is tied to; both must exist until the client's
/// deregistration completed and its last binding was freed (the driver deletes the device only
/// after that).
#[derive(Clone, Copy, Debug)]
pub struct IoObjects {
    /// The device every IRP's completion routine is set on (`IoSetCompletionRoutineEx`).
    pub completion_device: NonNull<DEVICE_OBJECT>,
    /// This image's own driver object, which the sockets' and timers' work items are
    /// initialised on (`IoInitializeWorkItem`): the I/O manager references it while an item is
    /// queued or running, which keeps the image loaded under the routine.
    pub driver: NonNull<DRIVER_OBJECT>,
}

/// The WSK provider of one binding: what `NmrClientAttachProvider` returned.
pub struct WskProvider {
    /// `PWSK_CLIENT`: the provider binding context.
    client: PWSK_CLIENT,
    /// The provider dispatch table (NULL-checked at every use).
    dispatch: *const WSK_PROVIDER_DISPATCH,
    /// The NMR binding handle, for `NmrClientDetachProviderComplete`.
    nmr_binding: HANDLE,
    /// The driver's objects the binding's I/O is tied to.
    objects: IoObjects,
    /// The binding's timer (`timer.rs`).
    timer: BindingTimer<Self>,
}

// SAFETY: the handles and pointers are ones WSK, NMR and the I/O manager allow using from any
// thread at IRQL <= DISPATCH_LEVEL; the dispatch table is immutable; the `IoObjects` exist
// while the binding does (`nmr::attach_provider`'s contract); the timer is Send and Sync itself.
unsafe impl Send for WskProvider {}
// SAFETY: as above.
unsafe impl Sync for WskProvider {}

impl WskProvider {
    /// Wraps the out-parameters of a successful `NmrClientAttachProvider`, with the
    /// binding's timer allocated before it.
    pub(crate) const fn new(
        client: PWSK_CLIENT,
        dispatch: *const c_void,
        nmr_binding: HANDLE,
        objects: IoObjects,
        timer: BindingTimer<Self>,
    ) -> Self {
        Self {
            client,
            dispatch: dispatch.cast(),
            nmr_binding,
            objects,
            timer,
        }
    }

    /// The provider dispatch table, for [`dispatch_entry!`]: NMR hands out a table that stays
    /// valid while the binding is attached, and the core only calls into the provider while
    /// attached (rundown protection).
    const fn provider_dispatch(&self) -> *const WSK_PROVIDER_DISPATCH {
        self.dispatch
    }
}

/// Reports a call that could not be made by completing its token inline.
///
/// # Safety
/// `token` has the operation outstanding (it was just handed to the provider for it).
unsafe fn fail(token: SocketRef<WskProvider>, completion: Completion<WskSocketHandle>) {
    // SAFETY: one completion for the operation (caller), inline completion is allowed.
    unsafe { token.complete(completion) };
}

/// Prepares `slot`'s IRP for a call completing through `routine` with `token`, the routine
/// set with `IoSetCompletionRoutineEx` on `device` (irp.rs).
///
/// # Errors
/// No memory for `IoSetCompletionRoutineEx`'s context: the call must not be made; the caller
/// completes the operation with the status.
///
/// # Safety
/// The slot is idle (the core keeps one operation per kind outstanding); `device` is the
/// provider's completion device.
unsafe fn prepare(
    device: NonNull<DEVICE_OBJECT>,
    slot: &OpSlot,
    routine: PIO_COMPLETION_ROUTINE,
    token: SocketRef<WskProvider>,
) -> Result<(), NtStatus> {
    // SAFETY: the IRP is idle (caller); the device exists until the deregistration completed,
    // after every completion of this binding.
    unsafe { slot.irp.prepare(device, routine, token.as_context()) }.map_err(NtStatus)
}

/// [`prepare`], or, when it fails, the operation completed at once with `failed(status)`.
/// `true` if the call may be made.
///
/// # Safety
/// As [`prepare`]; `token` has the operation outstanding (just handed to the provider).
unsafe fn prepare_or_fail(
    device: NonNull<DEVICE_OBJECT>,
    slot: &OpSlot,
    routine: PIO_COMPLETION_ROUTINE,
    token: SocketRef<WskProvider>,
    failed: fn(NtStatus) -> Completion<WskSocketHandle>,
) -> bool {
    // SAFETY: forwarded.
    match unsafe { prepare(device, slot, routine, token) } {
        Ok(()) => true,
        Err(status) => {
            // SAFETY: the operation was just handed to us and not started.
            unsafe { fail(token, failed(status)) };
            false
        }
    }
}

/// What differs between `WskReceive` and `WskSend`, which share one signature
/// (`PFN_WSK_RECEIVE` = `PFN_WSK_SEND`).
struct Transfer {
    /// The socket's IRP slot for the operation.
    kind: OpKind,
    /// The IRP's completion routine.
    routine: PIO_COMPLETION_ROUTINE,
    /// The completion reported to the core.
    completion: fn(Result<usize, NtStatus>) -> Completion<WskSocketHandle>,
}

const RECEIVE: Transfer = Transfer {
    kind: OpKind::Receive,
    routine: Some(completion::received::<WskProvider>),
    completion: Completion::Received,
};

const SEND: Transfer = Transfer {
    kind: OpKind::Send,
    routine: Some(completion::sent::<WskProvider>),
    completion: Completion::Sent,
};

/// `WskReceive` or `WskSend` (`call`) of `range` of the connection's buffer on the IRP of `op.kind`.
/// What fails before the call (no MDL, a range outside it, no dispatch entry) completes the
/// operation at once with an error.
///
/// # Safety
/// The slot of `op.kind` is idle and `token` is this operation's (the core keeps one
/// outstanding operation per kind); `socket` is an open connection socket.
unsafe fn transfer(
    device: NonNull<DEVICE_OBJECT>,
    io: &WskSocketIo,
    socket: WskSocketHandle,
    range: &Range<usize>,
    token: SocketRef<WskProvider>,
    call: Option<PFN_WSK_RECEIVE>,
    op: &Transfer,
) {
    // SAFETY: the slot is idle (caller).
    let prepared = unsafe { buffer_call(io, op.kind, range) };
    let status = match (prepared, call) {
        (Ok((slot, buf)), Some(call)) => {
            // SAFETY: as above.
            match unsafe { prepare(device, slot, op.routine, token) } {
                Ok(()) => {
                    // SAFETY: documented WskReceive / WskSend parameters; the WSK_BUF lies
                    // within the MDL and lives in the slot until completion; nothing is
                    // touched after the call.
                    unsafe { call(socket.0.as_ptr(), buf, 0, slot.irp.as_ptr()) };
                    return;
                }
                Err(status) => status,
            }
        }
        (Err(status), _) => status,
        (Ok(_), None) => NtStatus::INVALID_DEVICE_STATE,
    };
    // SAFETY: the operation was just handed to us and not started.
    unsafe { fail(token, (op.completion)(Err(status))) };
}

/// `Ok((slot, wsk_buf))` for a send/receive over `range`, or the status to fail it with.
///
/// # Safety
/// The slot of `kind` is idle.
unsafe fn buffer_call<'io>(
    io: &'io WskSocketIo,
    kind: OpKind,
    range: &Range<usize>,
) -> Result<(&'io OpSlot, *mut WSK_BUF), NtStatus> {
    let slot = io.slot(kind).ok_or(NtStatus::INVALID_DEVICE_STATE)?;
    let mdl = io.mdl().ok_or(NtStatus::INVALID_DEVICE_STATE)?;
    // A WSK_BUF reaching past its MDL is a bugcheck: never build one.
    let (offset, length) = mdl
        .checked_range(range)
        .ok_or(NtStatus::INVALID_PARAMETER)?;
    let length = SIZE_T::try_from(length).map_err(|_| NtStatus::INVALID_PARAMETER)?;
    // SAFETY: the slot is idle (caller).
    let buf = unsafe {
        slot.set_buf(WSK_BUF {
            Mdl: mdl.as_ptr(),
            Offset: offset,
            Length: length,
        })
    };
    Ok((slot, buf))
}

impl Provider for WskProvider {
    type Socket = WskSocketHandle;
    type SocketIo = WskSocketIo;
    type Platform = KernelPlatform;
    type DetachHandle = HANDLE;

    unsafe fn schedule(_this: NonNull<Self>, io: NonNull<WskSocketIo>, token: SocketRef<Self>) {
        // SAFETY: `io` is valid at entry (caller); only the work item's address is read.
        let item = unsafe { io.as_ref() }.work_item().as_ptr();
        // SAFETY: the core schedules a socket only as its runner, once per run, so the item is
        // not queued; nothing of the socket is touched once it is (the run may free it).
        unsafe { work_item::queue(item, token) };
    }

    fn new_socket_io(
        &self,
        kind: SocketKind,
        buffer: Option<NonNull<[u8]>>,
    ) -> Result<WskSocketIo, NtStatus> {
        // SAFETY: the Provider contract makes `buffer` non-paged and valid until the SocketIo
        // is dropped.
        unsafe { WskSocketIo::allocate(kind, buffer, self.objects.driver) }
            .ok_or(NtStatus::INSUFFICIENT_RESOURCES)
    }

    fn enable_accept_events(&self) -> Result<(), NtStatus> {
        let control = dispatch_entry!(self.provider_dispatch(), WskControlClient);
        let Some(control) = control else {
            return Err(NtStatus::INVALID_DEVICE_STATE);
        };
        let mut request = WSK_EVENT_CALLBACK_CONTROL {
            NpiId: &NPI_WSK_INTERFACE_ID,
            EventMask: WSK_EVENT_ACCEPT,
        };
        // SAFETY: documented parameters of WSK_SET_STATIC_EVENT_CALLBACKS (input structure, no
        // output, Irp NULL: the call is synchronous, so `request` may live on the stack).
        let status = unsafe {
            control(
                self.client,
                WSK_SET_STATIC_EVENT_CALLBACKS,
                size_of::<WSK_EVENT_CALLBACK_CONTROL>() as SIZE_T,
                ptr::addr_of_mut!(request).cast(),
                0,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if NT_SUCCESS(status) {
            Ok(())
        } else {
            Err(NtStatus(status))
        }
    }

    fn open_listener(&self, io: &WskSocketIo, local: SocketAddr, token: SocketRef<Self>) {
        let call = dispatch_entry!(self.provider_dispatch(), WskSocket);
        let (Some(slot), Some(wsk_socket)) = (io.slot(OpKind::Setup), call) else {
            // SAFETY: the operation was just handed to us.
            unsafe {
                fail(
                    token,
                    Completion::Created(Err(NtStatus::INVALID_DEVICE_STATE)),
                );
            }
            return;
        };
        let family = if local.is_ipv4() { AF_INET } else { AF_INET6 };
        // SAFETY: the Setup slot is idle (one outstanding operation per kind).
        let prepared = unsafe {
            prepare_or_fail(
                self.objects.completion_device,
                slot,
                Some(completion::socket_created::<Self>),
                token,
                |status| Completion::Created(Err(status)),
            )
        };
        if !prepared {
            return;
        }
        // SAFETY: documented WskSocket parameters for a listening TCP socket; the client
        // dispatch is a static; the IRP is prepared. The result arrives in the completion
        // routine (the returned status repeats it), and nothing is touched afterwards.
        unsafe {
            wsk_socket(
                self.client,
                family,
                SOCK_STREAM,
                IPPROTO_TCP,
                WSK_FLAG_LISTEN_SOCKET,
                token.as_context(),
                ptr::addr_of!(LISTEN_DISPATCH).cast(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                slot.irp.as_ptr(),
            );
        }
    }

    fn set_option(
        &self,
        io: &WskSocketIo,
        socket: WskSocketHandle,
        option: SocketOption,
        token: SocketRef<Self>,
    ) {
        let (level, code) = match option {
            SocketOption::Ipv6Only => (IPPROTO_IPV6, IPV6_V6ONLY),
            SocketOption::NoDelay => (IPPROTO_TCP, TCP_NODELAY),
        };
        // SAFETY: `socket` is open: a listening socket after Created, or an accepted
        // connection before its first receive; both the listen and the connection tables
        // start with the basic functions.
        let table = unsafe { socket.dispatch::<WSK_PROVIDER_BASIC_DISPATCH>() };
        let call = dispatch_entry!(table, WskControlSocket);
        let (Some(slot), Some(wsk_control_socket)) = (io.slot(OpKind::Setup), call) else {
            // SAFETY: the operation was just handed to us.
            unsafe {
                fail(
                    token,
                    Completion::OptionSet(Err(NtStatus::INVALID_DEVICE_STATE)),
                );
            }
            return;
        };
        // SAFETY: the Setup slot is idle (one outstanding Setup operation per socket).
        let value = unsafe { slot.set_option(1) };
        // SAFETY: as above.
        let prepared = unsafe {
            prepare_or_fail(
                self.objects.completion_device,
                slot,
                Some(completion::option_set::<Self>),
                token,
                |status| Completion::OptionSet(Err(status)),
            )
        };
        if !prepared {
            return;
        }
        // SAFETY: documented WskControlSocket parameters for WskSetOption (no output); the
        // ULONG value lives in the slot until the IRP completes; nothing is touched after the
        // call (Performing Control Operations on a Socket,
        // https://learn.microsoft.com/windows-hardware/drivers/network/performing-control-operations-on-a-socket).
        unsafe {
            wsk_control_socket(
                socket.0.as_ptr(),
                WskSetOption,
                code,
                level,
                OPTION_SIZE,
                value.cast(),
                0,
                ptr::null_mut(),
                ptr::null_mut(),
                slot.irp.as_ptr(),
            );
        }
    }

    fn bind(
        &self,
        io: &WskSocketIo,
        socket: WskSocketHandle,
        local: SocketAddr,
        token: SocketRef<Self>,
    ) {
        // SAFETY: `socket` is an open listening socket (the core binds only after Created).
        let table = unsafe { socket.dispatch::<WSK_PROVIDER_LISTEN_DISPATCH>() };
        let call = dispatch_entry!(table, WskBind);
        let (Some(slot), Some(wsk_bind)) = (io.slot(OpKind::Setup), call) else {
            // SAFETY: the operation was just handed to us.
            unsafe {
                fail(
                    token,
                    Completion::Bound(Err(NtStatus::INVALID_DEVICE_STATE)),
                );
            }
            return;
        };
        // SAFETY: the Setup slot is idle (WskSocket completed before the core binds).
        let address = unsafe { slot.set_address(SockaddrStorage::from_socket_addr(local)) };
        // SAFETY: as above.
        let prepared = unsafe {
            prepare_or_fail(
                self.objects.completion_device,
                slot,
                Some(completion::bound::<Self>),
                token,
                |status| Completion::Bound(Err(status)),
            )
        };
        if !prepared {
            return;
        }
        // SAFETY: documented WskBind parameters; `address` lives in the slot until the IRP
        // completes; nothing is touched after the call.
        unsafe { wsk_bind(socket.0.as_ptr(), address.cast(), 0, slot.irp.as_ptr()) };
    }

    fn receive(
        &self,
        io: &WskSocketIo,
        socket: WskSocketHandle,
        range: Range<usize>,
        token: SocketRef<Self>,
    ) {
        // SAFETY: `socket` is an open connection socket (the core receives only on those).
        let table = unsafe { socket.dispatch::<WSK_PROVIDER_CONNECTION_DISPATCH>() };
        let call = dispatch_entry!(table, WskReceive);
        // SAFETY: the Receive slot is idle (one outstanding receive per socket); the token is
        // this operation's.
        unsafe {
            transfer(
                self.objects.completion_device,
                io,
                socket,
                &range,
                token,
                call,
                &RECEIVE,
            );
        }
    }

    fn send(
        &self,
        io: &WskSocketIo,
        socket: WskSocketHandle,
        range: Range<usize>,
        token: SocketRef<Self>,
    ) {
        // SAFETY: `socket` is an open connection socket (the core sends only on those).
        let table = unsafe { socket.dispatch::<WSK_PROVIDER_CONNECTION_DISPATCH>() };
        let call = dispatch_entry!(table, WskSend);
        // SAFETY: the Send slot is idle (one outstanding send per socket); the token is this
        // operation's.
        unsafe {
            transfer(
                self.objects.completion_device,
                io,
                socket,
                &range,
                token,
                call,
                &SEND,
            );
        }
    }

    fn disconnect(&self, io: &WskSocketIo, socket: WskSocketHandle, token: SocketRef<Self>) {
        // SAFETY: `socket` is an open connection socket.
        let table = unsafe { socket.dispatch::<WSK_PROVIDER_CONNECTION_DISPATCH>() };
        let call = dispatch_entry!(table, WskDisconnect);
        let (Some(slot), Some(wsk_disconnect)) = (io.slot(OpKind::Disconnect), call) else {
            // SAFETY: the operation was just handed to us.
            unsafe {
                fail(
                    token,
                    Completion::Disconnected(Err(NtStatus::INVALID_DEVICE_STATE)),
                );
            }
            return;
        };
        // SAFETY: the Disconnect slot is idle.
        let prepared = unsafe {
            prepare_or_fail(
                self.objects.completion_device,
                slot,
                Some(completion::disconnected::<Self>),
                token,
                |status| Completion::Disconnected(Err(status)),
            )
        };
        if !prepared {
            return;
        }
        // SAFETY: documented WskDisconnect parameters: no final data (NULL buffer), flags 0 =
        // graceful; nothing is touched after the call.
        unsafe { wsk_disconnect(socket.0.as_ptr(), ptr::null_mut(), 0, slot.irp.as_ptr()) };
    }

    fn close(&self, io: &WskSocketIo, socket: WskSocketHandle, token: SocketRef<Self>) {
        // SAFETY: `socket` is open; every category's table starts with the basic functions.
        let table = unsafe { socket.dispatch::<WSK_PROVIDER_BASIC_DISPATCH>() };
        let call = dispatch_entry!(table, WskCloseSocket);
        let (Some(slot), Some(wsk_close)) = (io.slot(OpKind::Close), call) else {
            // SAFETY: the operation was just handed to us.
            unsafe { fail(token, Completion::Closed) };
            return;
        };
        // SAFETY: the Close slot is idle (close is requested once).
        let prepared = unsafe {
            prepare(
                self.objects.completion_device,
                slot,
                Some(completion::closed::<Self>),
                token,
            )
        };
        if let Err(status) = prepared {
            // The socket must be closed all the same: without the unload protection for this
            // one completion (a few instructions of exposure, docs/kernel-adapter.md).
            log_warning!(
                &KernelPlatform,
                "WskCloseSocket without IoSetCompletionRoutineEx ({status})"
            );
            // SAFETY: as above.
            unsafe {
                slot.irp
                    .prepare_unprotected(Some(completion::closed::<Self>), token.as_context());
            }
        }
        // SAFETY: no call on this socket is executing (core guarantee); pending ones are
        // cancelled by WSK; nothing is touched after the call.
        unsafe { wsk_close(socket.0.as_ptr(), slot.irp.as_ptr()) };
    }

    fn arm_timer(&self, delay_ms: u32, binding: BindingRef<Self>) {
        self.timer.arm(delay_ms, binding);
    }

    fn cancel_timer(&self) -> bool {
        self.timer.cancel()
    }

    fn detach_handle(&self) -> HANDLE {
        self.nmr_binding
    }

    // The handle is NMR's, passed through unread: nothing here dereferences it.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    fn detach_complete(nmr_binding: HANDLE) {
        // SAFETY: called exactly once, for a detach that returned STATUS_PENDING (core); allowed
        // at IRQL <= DISPATCH_LEVEL. Only the copied handle is used: NMR may free the binding.
        unsafe { NmrClientDetachProviderComplete(nmr_binding) };
    }
}
