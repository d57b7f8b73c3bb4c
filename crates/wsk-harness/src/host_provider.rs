//! The core's [`Provider`] trait over the emulated WSK subsystem ([`crate::wsk`]).
//!
//! This is the only place where the harness calls the core's socket entry points
//! ([`SocketRef::complete`], [`SocketRef::accept_event`] and [`SocketRef::run_scheduled`]),
//! exactly as the kernel adapter's completion routines, `WskAcceptEvent` callback and work
//! items do.

use std::{net::SocketAddr, ops::Range, ptr::NonNull};

use wsk_client::{
    binding::BindingRef,
    provider::{Completion, Provider, SocketKind, SocketOption},
    socket::SocketRef,
};
use wsk_primitives::status::NtStatus;

use crate::{
    nmr::BindingHandle,
    pool::Pool,
    wsk::{SocketHandle, SocketIo, Upcall, Wsk, WskClient},
};

/// The core's socket token as the emulated subsystem's socket context.
#[derive(Clone, Copy)]
pub struct CoreRef(SocketRef<HostProvider>);

// SAFETY: a `SocketRef` is a context pointer the core hands to WSK precisely so that it comes
// back on whatever thread completes the operation (IRP completions and WSK events run on any
// CPU); the core synchronizes everything behind it.
unsafe impl Send for CoreRef {}
// SAFETY: as above; the token is only copied and passed back.
unsafe impl Sync for CoreRef {}

impl Upcall for CoreRef {
    unsafe fn complete(self, completion: Completion<SocketHandle>) {
        // SAFETY: the caller delivers exactly one completion per operation, with its token.
        unsafe { self.0.complete(completion) };
    }

    unsafe fn accept_event(
        self,
        accepted: Option<SocketHandle>,
        remote: Option<SocketAddr>,
        write_out: &mut dyn FnMut(Option<Self>),
    ) -> NtStatus {
        // As the kernel's `accept_event` (crates/wsk-kernel/src/events.rs): NULL context and
        // dispatch written, then the connection started. SAFETY: the caller runs this on an open
        // listener's token, as WSK runs WskAcceptEvent.
        unsafe { self.0.accept_event(accepted, remote) }.map_or(
            NtStatus::REQUEST_NOT_ACCEPTED,
            |connection| {
                write_out(None);
                connection.start();
                NtStatus::SUCCESS
            },
        )
    }

    unsafe fn run_work_item(self) {
        // SAFETY: the caller runs each queued work item once, outside every callback, as the
        // core's `Provider::schedule` contract asks.
        unsafe { self.0.run_scheduled() };
    }
}

/// The core's binding token, carried to the thread that runs the tick.
struct BindingToken(BindingRef<HostProvider>);

/// The provider one binding gives the core: `PWSK_CLIENT` and the dispatch tables, emulated.
pub struct HostProvider(pub WskClient<CoreRef>);

impl Provider for HostProvider {
    type Socket = SocketHandle;
    type SocketIo = SocketIo;
    type Platform = Pool;
    type DetachHandle = BindingHandle<Wsk<CoreRef>>;

    fn new_socket_io(
        &self,
        kind: SocketKind,
        buffer: Option<NonNull<[u8]>>,
    ) -> Result<SocketIo, NtStatus> {
        self.0.new_socket_io(kind, buffer)
    }

    unsafe fn schedule(this: NonNull<Self>, io: NonNull<SocketIo>, token: SocketRef<Self>) {
        // SAFETY: both valid at entry (caller); `queue_work_item` copies what it needs before
        // the work item can run.
        let client = unsafe { &this.as_ref().0 };
        // SAFETY: as above.
        let io = unsafe { io.as_ref() };
        client.queue_work_item(io, CoreRef(token));
    }

    fn enable_accept_events(&self) -> Result<(), NtStatus> {
        self.0.enable_accept_events()
    }

    fn open_listener(&self, io: &SocketIo, local: SocketAddr, token: SocketRef<Self>) {
        self.0.open_listener(io, local, CoreRef(token));
    }

    fn set_option(
        &self,
        io: &SocketIo,
        socket: SocketHandle,
        option: SocketOption,
        token: SocketRef<Self>,
    ) {
        self.0.set_option(io, socket, option, CoreRef(token));
    }

    fn bind(&self, io: &SocketIo, socket: SocketHandle, local: SocketAddr, token: SocketRef<Self>) {
        self.0.bind(io, socket, local, CoreRef(token));
    }

    fn receive(
        &self,
        io: &SocketIo,
        socket: SocketHandle,
        range: Range<usize>,
        token: SocketRef<Self>,
    ) {
        self.0.receive(io, socket, range, CoreRef(token));
    }

    fn send(
        &self,
        io: &SocketIo,
        socket: SocketHandle,
        range: Range<usize>,
        token: SocketRef<Self>,
    ) {
        self.0.send(io, socket, range, CoreRef(token));
    }

    fn disconnect(&self, io: &SocketIo, socket: SocketHandle, token: SocketRef<Self>) {
        self.0.disconnect(io, socket, CoreRef(token));
    }

    fn close(&self, io: &SocketIo, socket: SocketHandle, token: SocketRef<Self>) {
        self.0.close(io, socket, CoreRef(token));
    }

    fn arm_timer(&self, delay_ms: u32, binding: BindingRef<Self>) {
        let binding = BindingToken(binding);
        self.0.arm_timer(delay_ms, move || {
            let BindingToken(binding) = binding;
            // SAFETY: one tick per arm, with its token, on a worker outside every callback.
            unsafe { binding.tick() };
        });
    }

    fn cancel_timer(&self) -> bool {
        self.0.cancel_timer()
    }

    fn detach_handle(&self) -> BindingHandle<Wsk<CoreRef>> {
        self.0.nmr_binding()
    }

    fn detach_complete(nmr: BindingHandle<Wsk<CoreRef>>) {
        nmr.client_detach_complete();
    }
}
