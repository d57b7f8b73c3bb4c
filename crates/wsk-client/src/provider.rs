//! The narrow interface between the core and the outside world.
//!
//! * [`Platform`]: tagged non-paged memory and logging. The kernel adapter implements it with
//!   `ExAllocatePool2`/`ExFreePoolWithTag` and `DbgPrintEx`; the harness with an accounting
//!   allocator that can inject failures.
//! * [`Provider`]: the calls the core makes into WSK for one binding. The kernel adapter
//!   implements it with IRPs over `WSK_PROVIDER_DISPATCH` and the socket dispatch tables; the
//!   harness with host sockets.
//!
//! Every asynchronous [`Provider`] operation reports its result exactly once, by the adapter
//! calling [`SocketRef::complete`](crate::socket::SocketRef::complete) with the token it
//! was given — before the operation returns (inline completion) or later on any thread at
//! IRQL <= `DISPATCH_LEVEL`, as WSK completes IRPs. The core never blocks and never waits.
//!
//! The core makes no call into WSK from inside [`SocketRef::complete`] or
//! [`SocketRef::accept_event`] (an `IoCompletion` routine, `WskAcceptEvent`): a socket's calls
//! are made only by [`SocketRef::run_scheduled`], which the adapter runs when the core asks
//! with [`Provider::schedule`].
//!
//! The core guarantees, per socket, at most one outstanding operation of each [`OpKind`], and
//! that no operation on a socket is *executing* (called and not yet returned) when it calls
//! [`Provider::close`]; operations still *pending* (returned, not completed) are allowed there,
//! as `WskCloseSocket` cancels them.

use ::core::{fmt, net::SocketAddr, ops::Range, ptr::NonNull};

use crate::token::{BindingRef, SocketRef};
use wsk_primitives::{platform::Platform, status::NtStatus};

/// What kind of socket a [`Provider::SocketIo`] serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketKind {
    /// A listening socket (`WSK_FLAG_LISTEN_SOCKET`).
    Listener,
    /// A connection accepted from a listener (`WSK_FLAG_CONNECTION_SOCKET`).
    Connection,
}

/// The operation classes the core keeps at most one of outstanding per socket.
///
/// The kernel adapter gives each class its own IRP, reused with `IoReuseIrp` (a connection's
/// Setup and Disconnect share one: the core never has both outstanding on a connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Listeners: `WskSocket`, then for an IPv6 listener `WskControlSocket(IPV6_V6ONLY)`, then
    /// `WskBind` (strictly one after the other). Connections: `WskControlSocket(TCP_NODELAY)`,
    /// before the first receive (so never while a disconnect is outstanding).
    Setup,
    /// `WskReceive`.
    Receive,
    /// `WskSend`.
    Send,
    /// `WskDisconnect` (graceful).
    Disconnect,
    /// `WskCloseSocket`.
    Close,
}

/// A socket option the core sets with `WskControlSocket(WskSetOption)`, always to the `ULONG`
/// value 1 (<https://learn.microsoft.com/windows-hardware/drivers/network/wsk-socket-options>).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketOption {
    /// `IPV6_V6ONLY` (level `IPPROTO_IPV6`) on an IPv6 listening socket that is not bound yet:
    /// it then accepts IPv6 connections only, and an IPv4 listener can serve the same port
    /// (the option's default on WSK sockets is not documented).
    Ipv6Only,
    /// `TCP_NODELAY` (level `IPPROTO_TCP`) on an accepted connection before its first
    /// receive: Nagle's algorithm off (configuration value `NoDelay`).
    NoDelay,
}

/// The result of one asynchronous [`Provider`] operation, handed back to the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion<S> {
    /// [`Provider::open_listener`] finished: the new socket, or why not.
    Created(Result<S, NtStatus>),
    /// [`Provider::set_option`] finished.
    OptionSet(Result<(), NtStatus>),
    /// [`Provider::bind`] finished.
    Bound(Result<(), NtStatus>),
    /// [`Provider::receive`] finished: bytes received (0 = the peer sent FIN), or the error.
    Received(Result<usize, NtStatus>),
    /// [`Provider::send`] finished: bytes sent, or the error.
    Sent(Result<usize, NtStatus>),
    /// [`Provider::disconnect`] finished.
    Disconnected(Result<(), NtStatus>),
    /// [`Provider::close`] finished; the socket handle is gone.
    Closed,
}

/// The WSK provider as seen by one binding (one attached WSK subsystem).
///
/// Methods other than [`Provider::new_socket_io`] are *calls into WSK*: the core only makes
/// them while holding the binding's rundown protection, so none is made after the detach has
/// been reported complete. Asynchronous ones report through [`SocketRef::complete`].
pub trait Provider: Sized + Send + Sync + 'static {
    /// The provider's socket handle (`PWSK_SOCKET`).
    type Socket: Copy + Send + Sync + fmt::Debug;
    /// Per-socket I/O resources (IRPs, and for connections the MDL over the connection's buffer).
    /// Dropping it frees them; the core drops it only when no operation is outstanding.
    type SocketIo: Send + Sync;
    /// Memory and logging.
    type Platform: Platform;
    /// What [`Provider::detach_complete`] needs (kernel: the NMR binding handle), copied out of
    /// the provider before the call, because the call may free the provider. Used on the
    /// thread that copied it.
    type DetachHandle;

    /// Allocates the I/O resources of one socket. `buffer` is the connection's buffer (its handler's, see `handler.rs`)
    /// (non-paged, owned by the core, valid until the `SocketIo` is dropped); `None` for
    /// listeners. Called at IRQL <= `DISPATCH_LEVEL`; must not block.
    ///
    /// # Errors
    /// The status to log when resources cannot be had (normally insufficient resources).
    fn new_socket_io(
        &self,
        kind: SocketKind,
        buffer: Option<NonNull<[u8]>>,
    ) -> Result<Self::SocketIo, NtStatus>;

    /// Calls [`SocketRef::run_scheduled`] with `token` later, once, outside every `IoCompletion`
    /// routine and WSK event callback (kernel: queues the socket's `IO_WORKITEM`, which runs
    /// at `PASSIVE_LEVEL` on a system worker thread and keeps the driver loaded meanwhile).
    /// Called at IRQL <= `DISPATCH_LEVEL`, also from inside a completion or an accept event;
    /// must not block, and cannot fail (the work item is part of the `SocketIo`). The core
    /// never has two schedules of one socket outstanding: it schedules only as the socket's
    /// runner, and that run ends inside `run_scheduled`. Not a call into WSK: allowed without
    /// rundown protection.
    ///
    /// Raw pointers, not references: the run may start on another CPU, free the socket (and
    /// `io` with it) and complete the detach (freeing the provider) before this call returns,
    /// and a function's reference arguments must stay valid until it returns.
    ///
    /// # Safety
    /// `this` and `io` are valid at entry; the implementation copies what it needs before it
    /// queues the run and touches neither afterwards.
    unsafe fn schedule(this: NonNull<Self>, io: NonNull<Self::SocketIo>, token: SocketRef<Self>);

    /// `WskControlClient(WSK_SET_STATIC_EVENT_CALLBACKS)` with `WSK_EVENT_ACCEPT`: synchronous,
    /// made once per binding before the first socket is created.
    ///
    /// # Errors
    /// The status WSK returned.
    fn enable_accept_events(&self) -> Result<(), NtStatus>;

    /// `WskSocket` for a listening TCP socket of `local`'s address family, with `token` as
    /// the socket context (passed back to the accept event). Completes with
    /// [`Completion::Created`].
    fn open_listener(&self, io: &Self::SocketIo, local: SocketAddr, token: SocketRef<Self>);

    /// `WskControlSocket(WskSetOption)` of `option` to 1 ([`SocketOption`] says on which
    /// sockets, and when). Completes with [`Completion::OptionSet`].
    fn set_option(
        &self,
        io: &Self::SocketIo,
        socket: Self::Socket,
        option: SocketOption,
        token: SocketRef<Self>,
    );

    /// `WskBind` of a listening socket to `local`; the socket listens once bound. Completes
    /// with [`Completion::Bound`].
    fn bind(
        &self,
        io: &Self::SocketIo,
        socket: Self::Socket,
        local: SocketAddr,
        token: SocketRef<Self>,
    );

    /// `WskReceive` into `range` of the socket's buffer. Completes with
    /// [`Completion::Received`].
    fn receive(
        &self,
        io: &Self::SocketIo,
        socket: Self::Socket,
        range: Range<usize>,
        token: SocketRef<Self>,
    );

    /// `WskSend` of `range` of the socket's buffer. Completes with [`Completion::Sent`].
    fn send(
        &self,
        io: &Self::SocketIo,
        socket: Self::Socket,
        range: Range<usize>,
        token: SocketRef<Self>,
    );

    /// `WskDisconnect` without data (graceful: sends FIN after queued data). Completes with
    /// [`Completion::Disconnected`].
    fn disconnect(&self, io: &Self::SocketIo, socket: Self::Socket, token: SocketRef<Self>);

    /// `WskCloseSocket`: abortive unless both directions were already shut down. Cancels the
    /// socket's pending operations (they still complete, with an error). Completes with
    /// [`Completion::Closed`]; after that the handle is never used again.
    fn close(&self, io: &Self::SocketIo, socket: Self::Socket, token: SocketRef<Self>);

    /// Arms the binding's timer: after `delay_ms` milliseconds, [`BindingRef::tick`] is called
    /// once with `binding`, at IRQL <= `DISPATCH_LEVEL`, outside every `IoCompletion` routine
    /// and WSK event callback (kernel: a `KTIMER` whose DPC queues the binding's work item,
    /// which calls the tick at `PASSIVE_LEVEL`). The core arms it only when it is not armed:
    /// once at the end of the attach, then at the end of each tick's work (the next tick may
    /// start while the arming one returns; the work of one tick is done before the next is
    /// armed). Not a call into WSK; called at IRQL <= `DISPATCH_LEVEL` under a binding
    /// reference; must not block, and cannot fail (the timer is part of the provider).
    fn arm_timer(&self, delay_ms: u32, binding: BindingRef<Self>);

    /// Cancels the armed timer. `true`: it was armed and its tick will not be called. `false`:
    /// it was not armed, or its tick has been or will be called. Called at IRQL <=
    /// `DISPATCH_LEVEL` under a binding reference, by the detach, and right after an arm (by
    /// the attach or a tick) that finds the binding detaching.
    fn cancel_timer(&self) -> bool;

    /// The handle [`Provider::detach_complete`] will be given.
    fn detach_handle(&self) -> Self::DetachHandle;

    /// `NmrClientDetachProviderComplete`: the detach that returned `STATUS_PENDING` is done.
    /// Called exactly once, and only then. NMR may run the cleanup callback, which frees the
    /// binding and the provider in it, before this returns: so it takes no `&self`, only the
    /// handle copied out beforehand, and no reference into the binding is live during the call.
    fn detach_complete(handle: Self::DetachHandle);
}
