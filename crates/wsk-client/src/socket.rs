//! Sockets: listener and connection state machines, and the [`SocketRef`] token.
//!
//! A [`Socket`] lives in its own pool allocation (a connection's handler state and buffer
//! follow it in the same block, see `handler.rs`) and in one slot of its binding's registry.
//! Its state machine runs under its [`Serializer`]: completions and close requests post event
//! bits, the runner processes them and makes the next provider calls. So calls on one socket never overlap, an inline
//! completion never recurses, and nothing ever waits.
//!
//! The runner never runs where it became the runner: whoever posts the first event of a run
//! (a completion routine, an accept event, a detach, the code installing the socket) hands the
//! run to [`Provider::schedule`], and the provider calls [`SocketRef::run_scheduled`] later,
//! outside every WSK callback (kernel: the socket's work item). So no WSK function is called
//! from an `IoCompletion` routine or from inside `WskAcceptEvent`, as WSK's rules ask
//! (`network/using-irps-with-winsock-kernel-functions`, `ddi/wsk/nc-wsk-pfn_wsk_close_socket`).
//!
//! ```text
//! listener:   start ─WskSocket─▶ created ─(IPv6: WskControlSocket(IPV6_V6ONLY))─WskBind─▶
//!             listening ─(close request / dead)─▶
//! connection: start ─(NoDelay: WskControlSocket(TCP_NODELAY))─▶ serving (the handler's
//!             receives and sends) ─FIN─▶ the handler's last sends ─WskDisconnect─▶
//! both:       ─WskCloseSocket─▶ closed, nothing outstanding ─▶ done: drop the open reference
//! ```
//!
//! Errors (a failed call, a reset, a completion reporting more bytes than asked for, a
//! handler asking for a range outside its buffer or overlapping the other operation's) and close
//! requests (detach; a call refused because the binding is detaching; no progress for
//! `IdleTimeout`, reported by the binding's tick) lead to close, which is
//! abortive for a connection unless the graceful disconnect already completed. A close
//! requested while `WskSocket` is pending waits for it, then closes the socket it produced.
//!
//! References: the slot's count. One is the *open* reference, dropped by the runner when the
//! socket is done; one is the *run's*, taken when a run is scheduled and dropped when it ends
//! (it keeps the socket alive while its work item is queued); others are short pins (the
//! detach scan, the code that just created the socket). The last one frees the socket, vacates
//! the slot, then releases the binding reference the socket held (which may complete the
//! detach).

use ::core::{net::SocketAddr, ops::Range, ptr::NonNull};
// The idle bookkeeping orders nothing (like the statistics counters, `sync.rs`): `core`'s
// atomics on every build, so the loom models need not explore it.
use ::core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::{
    binding_state::BindingState,
    handler::{Buffer, ConnectionHandler, overlaps},
    provider::{Completion, OpKind, Provider, SocketKind, SocketOption},
    stats::Stats,
};
use wsk_primitives::{
    log_error, log_info, log_trace, log_warning,
    platform::PoolTag,
    pool::PoolBox,
    rundown::{Acquisition, Rundown},
    serializer::Serializer,
    slots::Slots,
    status::NtStatus,
    sync::UnsafeCell,
};

/// The binding a socket belongs to.
type Binding<P> = BindingState<P, Socket<P>>;

/// Pool tag of a listener.
pub const LISTENER_TAG: PoolTag = PoolTag::from_chars(*b"WEls");
/// Pool tag of a connection: its state followed by its handler's state and buffer, one
/// allocation.
pub const CONNECTION_TAG: PoolTag = PoolTag::from_chars(*b"WEcn");

/// Start the state machine (open the listener / post the first receive). A connection gets
/// it from `Accepted::start` (`accept.rs`), once `WskAcceptEvent` wrote its out-parameters;
/// until then it makes no provider call (a close request is remembered and carried out after
/// the start).
const EV_START: u32 = 1 << 0;
/// The Setup operation completed (result in `setup`).
const EV_SETUP: u32 = 1 << 1;
/// The receive completed (result in `received`).
const EV_RECEIVE: u32 = 1 << 2;
/// The send completed (result in `sent`).
const EV_SEND: u32 = 1 << 3;
/// The disconnect completed (result in `disconnected`).
const EV_DISCONNECT: u32 = 1 << 4;
/// The close completed.
const EV_CLOSED: u32 = 1 << 5;
/// Close requested (detach).
const EV_CLOSE_REQUEST: u32 = 1 << 6;
/// The listening socket stopped working (accept event with no socket).
const EV_LISTENER_DEAD: u32 = 1 << 7;
/// The connection made no progress for `IdleTimeout` (the binding's tick).
const EV_IDLE: u32 = 1 << 8;

/// Batches one run processes before it queues the next run instead (see [`Socket::run`]).
const BATCHES_PER_RUN: u32 = 16;

/// Bit of an outstanding operation kind in [`State::outstanding`].
const fn op_bit(kind: OpKind) -> u8 {
    match kind {
        OpKind::Setup => 1,
        OpKind::Receive => 2,
        OpKind::Send => 4,
        OpKind::Disconnect => 8,
        OpKind::Close => 16,
    }
}

/// State only the runner touches.
#[derive(Debug)]
#[allow(clippy::struct_excessive_bools)] // independent facts of one state machine
struct State<S> {
    /// `EV_START` arrived: provider calls are allowed.
    started: bool,
    /// The provider's socket, once there is one.
    handle: Option<S>,
    /// Outstanding operations ([`op_bit`]).
    outstanding: u8,
    /// Close is wanted (error, graceful end, detach, idle).
    close_wanted: bool,
    /// `WskCloseSocket` was called.
    close_issued: bool,
    /// `WskCloseSocket` completed.
    closed: bool,
    /// The socket is done (the open reference is being dropped).
    done: bool,
    /// Listener: bound and counted in `listeners_open`.
    listening: bool,
    /// Listener: its start-up entry settled (listening, or closed without ever listening).
    settled: bool,
    /// Listener: the first failure of its setup, for that entry.
    failure: NtStatus,
    /// Listener: opened again by the binding's tick after it failed (start-up's record does
    /// not count it, and its failures are warnings).
    reopened: bool,
    /// Connection: its handler and buffer (`None` for a listener).
    served: Option<Served>,
    /// Connection: the range the outstanding receive fills.
    receiving: Option<Range<usize>>,
    /// Connection: the range the outstanding send transmits.
    sending: Option<Range<usize>>,
    /// Connection: the peer sent FIN.
    fin: bool,
    /// Connection: `WskDisconnect` was called.
    disconnect_issued: bool,
    /// Connection: the graceful disconnect completed.
    disconnected: bool,
}

/// A connection's handler and buffer, both in the socket's allocation, after the socket.
#[derive(Clone, Copy, Debug)]
struct Served {
    handler: NonNull<dyn ConnectionHandler>,
    buffer: NonNull<[u8]>,
}

impl Served {
    /// The handler.
    ///
    /// # Safety
    /// Called by the runner only, which holds no other reference to the handler meanwhile.
    #[allow(clippy::mut_from_ref)] // the runner role makes the reference unique
    const unsafe fn handler<'a>(self) -> &'a mut dyn ConnectionHandler {
        // SAFETY: made by `Service::make` in the socket's allocation and dropped only with the
        // socket (`Socket::drop`); unique per the caller.
        unsafe { &mut *self.handler.as_ptr() }
    }

    /// The buffer, without `in_flight`: the range of the operation still outstanding (the
    /// one that completed gave its range back to the handler).
    ///
    /// # Safety
    /// Called by the runner only, with no other view alive, and `in_flight` is the range of
    /// the operation still outstanding, if any.
    const unsafe fn buffer_view<'a>(self, in_flight: Option<Range<usize>>) -> Buffer<'a> {
        // SAFETY: the socket's buffer, valid while the socket is (the runner holds a
        // reference); the provider touches only `in_flight` meanwhile (caller), and no other
        // view exists (caller).
        unsafe { Buffer::new(self.buffer.cast(), self.buffer.len(), in_flight) }
    }
}

/// One socket (see the module documentation). Lives in pool memory, reached through raw
/// pointers only.
pub struct Socket<P: Provider> {
    binding: NonNull<Binding<P>>,
    slot: usize,
    kind: SocketKind,
    /// The listener's endpoint (for a connection: the endpoint it was accepted on).
    local: SocketAddr,
    /// A connection's peer, when WSK gave it.
    remote: Option<SocketAddr>,
    serializer: Serializer,
    /// The batch a scheduled run starts with (written by the poster that became the runner,
    /// read by [`SocketRef::run_scheduled`]; the runner role orders the two).
    scheduled: UnsafeCell<u32>,
    setup: UnsafeCell<Option<Completion<P::Socket>>>,
    received: UnsafeCell<Option<Completion<P::Socket>>>,
    sent: UnsafeCell<Option<Completion<P::Socket>>>,
    disconnected: UnsafeCell<Option<Completion<P::Socket>>>,
    state: UnsafeCell<State<P::Socket>>,
    /// Connection: data moved in either direction (or the peer's FIN arrived) since the
    /// binding's tick last looked. Set by the runner, taken by the tick.
    progress: AtomicBool,
    /// Connection: consecutive ticks that found no progress. The tick's alone (one tick's
    /// sweep is done before it arms the next); atomic only to be shared.
    idle_ticks: AtomicU32,
    /// Set once, before the socket is published; dropped with the socket.
    io: Option<P::SocketIo>,
}

/// How a socket being installed failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InstallError {
    /// The binding is detaching.
    Detaching,
    /// The socket's memory could not be allocated.
    NoMemory,
    /// `Provider::new_socket_io` failed with this status.
    Io(NtStatus),
}

impl<P: Provider> Socket<P> {
    const fn tag(kind: SocketKind) -> PoolTag {
        match kind {
            SocketKind::Listener => LISTENER_TAG,
            SocketKind::Connection => CONNECTION_TAG,
        }
    }

    /// Creates a socket in reserved slot `slot` of `binding`, publishes it, and starts it.
    /// For a connection, `handle` is the accepted socket. `reopened`: a listener the binding's
    /// tick opens again after it failed. On error the slot is vacated and nothing is left
    /// allocated.
    ///
    /// # Safety
    /// `binding` is live and stays live during the call: the caller holds a reference on its
    /// rundown, or runs inside the accept event of one of its listeners (which holds one).
    /// `slot` was reserved by the caller. On error the caller must not touch the binding
    /// unless it holds its own reference.
    pub(crate) unsafe fn install(
        binding: NonNull<Binding<P>>,
        slot: usize,
        kind: SocketKind,
        local: SocketAddr,
        remote: Option<SocketAddr>,
        handle: Option<P::Socket>,
        reopened: bool,
    ) -> Result<SocketRef<P>, InstallError> {
        // SAFETY: the caller guarantees the binding is live.
        let b = unsafe { binding.as_ref() };
        // The reference the socket will hold until it is freed.
        match b.rundown().try_acquire() {
            Acquisition::Acquired => {}
            Acquisition::Refused => {
                b.slots().vacate(slot);
                return Err(InstallError::Detaching);
            }
            Acquisition::RefusedDrained => {
                // Cannot happen: the caller's reference keeps the count above zero. Should it,
                // the drain is ours to complete, like a draining release below.
                b.slots().vacate(slot);
                // SAFETY: drained; nothing touches the binding afterwards.
                unsafe { Binding::complete_detach(binding) };
                return Err(InstallError::Detaching);
            }
        }
        let ptr = match Self::create(b, binding, slot, kind, local, remote, handle, reopened) {
            Ok(ptr) => ptr,
            Err(error) => {
                b.slots().vacate(slot);
                // Does not drain: the caller holds a binding reference (or a live listener does).
                // SAFETY: the reference taken for this socket or call; `b` is not used unless drained.
                if unsafe { Rundown::release(b.rundown()) } {
                    // SAFETY: drained; nothing touches the binding afterwards.
                    unsafe { Binding::complete_detach(binding) };
                }
                return Err(error);
            }
        };
        // Two references: the open one and our pin (kept until the post below returned).
        b.slots().publish(slot, ptr, 2);
        // Publish-then-check against the detach's begin_close-then-scan (rundown.rs): if the
        // detach started, it may not see this slot, so close the socket ourselves. A listener
        // starts now; a connection when its accept event says so (`Accepted::start`).
        let mut events = match kind {
            SocketKind::Listener => EV_START,
            SocketKind::Connection => 0,
        };
        if b.rundown().check_closing_ordered() {
            events |= EV_CLOSE_REQUEST;
        }
        if events != 0 {
            // SAFETY: published, and pinned by us.
            unsafe { Self::post(ptr, events) };
        }
        // SAFETY: drops our pin.
        unsafe { Self::unref(ptr) };
        Ok(SocketRef::from_ptr(ptr))
    }

    /// Allocates and initializes the socket (not yet published). Out of line: the socket is
    /// built by value here, and its temporaries belong in this frame, not in `install`'s (the
    /// accept path's).
    #[inline(never)]
    #[allow(clippy::too_many_arguments)] // `install`'s, passed through
    fn create(
        b: &Binding<P>,
        binding: NonNull<Binding<P>>,
        slot: usize,
        kind: SocketKind,
        local: SocketAddr,
        remote: Option<SocketAddr>,
        handle: Option<P::Socket>,
        reopened: bool,
    ) -> Result<NonNull<Self>, InstallError> {
        let Some(provider) = b.provider() else {
            return Err(InstallError::Detaching);
        };
        let client = b.client();
        let (tail, buffer_len) = match kind {
            SocketKind::Listener => (0, 0),
            // A buffer size the service cannot have is an allocation that cannot be made.
            SocketKind::Connection => client
                .service()
                .tail_size(client.config())
                .ok_or(InstallError::NoMemory)?,
        };
        let socket = Self {
            binding,
            slot,
            kind,
            local,
            remote,
            serializer: Serializer::new(),
            scheduled: UnsafeCell::new(0),
            setup: UnsafeCell::new(None),
            received: UnsafeCell::new(None),
            sent: UnsafeCell::new(None),
            disconnected: UnsafeCell::new(None),
            state: UnsafeCell::new(State {
                started: false,
                handle,
                outstanding: 0,
                close_wanted: false,
                close_issued: false,
                closed: false,
                done: false,
                listening: false,
                settled: reopened,
                failure: NtStatus::SUCCESS,
                reopened,
                served: None,
                receiving: None,
                sending: None,
                fin: false,
                disconnect_issued: false,
                disconnected: false,
            }),
            // The accept counts as progress: the first tick only starts the count.
            progress: AtomicBool::new(true),
            idle_ticks: AtomicU32::new(0),
            io: None,
        };
        let platform = client.platform();
        let Ok((boxed, tail)) = PoolBox::try_new_with_tail(platform, Self::tag(kind), socket, tail)
        else {
            return Err(InstallError::NoMemory);
        };
        let ptr = boxed.into_raw();
        let buffer = match kind {
            SocketKind::Listener => None,
            SocketKind::Connection => {
                // SAFETY: the tail is fresh and unused, of the size `tail_size` gave for this
                // configuration; `Socket::drop` drops the handler before the memory is freed.
                let (handler, buffer) =
                    unsafe { client.service().make(tail, client.config(), buffer_len) };
                let served = Served { handler, buffer };
                // SAFETY: fresh and unpublished: ours alone.
                let state = unsafe { &(*ptr.as_ptr()).state };
                // SAFETY: as above: no runner exists yet.
                state.with_mut(|s| unsafe { (*s).served = Some(served) });
                Some(buffer)
            }
        };
        // SAFETY: fresh and unpublished: ours alone.
        match unsafe { Self::attach_io(ptr, provider, kind, buffer) } {
            Ok(()) => Ok(ptr),
            Err(status) => {
                // SAFETY: allocated with this tag just above, given up with `into_raw`; never
                // published.
                let boxed = unsafe { PoolBox::from_raw(ptr, Self::tag(kind)) };
                // SAFETY: allocated by this platform.
                unsafe { boxed.free(platform) };
                Err(InstallError::Io(status))
            }
        }
    }

    /// Allocates the socket's I/O resources into it. Out of line, like `create`: the resources
    /// are returned by value, and this keeps them out of the frame the socket was built in.
    ///
    /// # Safety
    /// `this` is a fresh, unpublished socket the caller owns exclusively.
    #[inline(never)]
    unsafe fn attach_io(
        this: NonNull<Self>,
        provider: &P,
        kind: SocketKind,
        buffer: Option<NonNull<[u8]>>,
    ) -> Result<(), NtStatus> {
        let io = provider.new_socket_io(kind, buffer)?;
        // SAFETY: exclusively ours (caller).
        unsafe { (*this.as_ptr()).io = Some(io) };
        Ok(())
    }

    /// The binding (valid while the socket is: the socket holds a binding reference).
    const fn binding(&self) -> &Binding<P> {
        // SAFETY: the socket holds a reference on the binding's rundown until it is freed, so
        // the binding outlives it.
        unsafe { self.binding.as_ref() }
    }

    /// The binding's address (for a call that needs it beyond this socket's life).
    pub(crate) const fn binding_ptr(&self) -> NonNull<Binding<P>> {
        self.binding
    }

    /// Listener or connection.
    pub(crate) const fn kind(&self) -> SocketKind {
        self.kind
    }

    /// The listener's endpoint (a connection's: the endpoint it was accepted on).
    pub(crate) const fn local(&self) -> SocketAddr {
        self.local
    }

    /// Starts a connection its accept event took (`Accepted::start`).
    ///
    /// # Safety
    /// `this` is a connection not yet started: its open reference keeps it alive.
    pub(crate) unsafe fn start(this: NonNull<Self>) {
        // SAFETY: a connection is not done before its `EV_START` is processed (`process`
        // returns early until then), so its open reference is held at this post's `fetch_or`;
        // `post` touches the socket after that only as the runner it may become, which holds
        // the socket alive by the same argument.
        unsafe { Self::post(this, EV_START) };
    }

    /// The listening socket stopped working (an accept event without a socket): closes it.
    ///
    /// # Safety
    /// `this` is a listener whose close has not completed (WSK may still call its accept
    /// event, so it is live).
    pub(crate) unsafe fn listener_dead(this: NonNull<Self>) {
        // SAFETY: live per the caller.
        unsafe { Self::post(this, EV_LISTENER_DEAD) };
    }

    /// Posts `events`; if that makes the caller the runner, schedules the run
    /// ([`Provider::schedule`]): the caller may be inside a WSK callback, where no WSK call
    /// may be made.
    ///
    /// # Safety
    /// `this` is live and stays live during the call (a reference, an outstanding operation,
    /// or a running WSK callback on it keeps it alive).
    unsafe fn post(this: NonNull<Self>, events: u32) {
        // SAFETY: live per the caller until the post records the events; not touched after it
        // unless we became the runner (which keeps it alive).
        let serializer = unsafe { &raw const (*this.as_ptr()).serializer };
        // SAFETY: as above.
        if let Some(batch) = unsafe { Serializer::post(serializer, events) } {
            // SAFETY: we are the runner of a live socket.
            unsafe { Self::schedule(this, batch) };
        }
    }

    /// Hands the run the caller became the runner of to the provider, under a reference of
    /// its own (dropped by [`SocketRef::run_scheduled`]): the caller's reason for the socket
    /// being alive ends when the caller returns.
    ///
    /// # Safety
    /// The caller became the runner of live socket `this`, with `batch`.
    #[inline(never)]
    unsafe fn schedule(this: NonNull<Self>, batch: u32) {
        // SAFETY: live per the caller.
        let socket = unsafe { this.as_ref() };
        socket.binding().slots().add_ref(socket.slot);
        // SAFETY: we are the runner, and the reference just taken is the run's.
        unsafe { Self::hand_over(this, batch) };
    }

    /// Queues the run (the caller's run reference moves to it).
    ///
    /// # Safety
    /// The caller is the runner of `this`, with `batch`, and holds a run reference on it, which
    /// the queued run drops.
    unsafe fn hand_over(this: NonNull<Self>, batch: u32) {
        // SAFETY: live: the caller's run reference.
        let socket = unsafe { this.as_ref() };
        // SAFETY: only the runner touches `scheduled`, and we are it until the scheduled run
        // takes over (the provider's queueing orders our write before its read).
        socket.scheduled.with_mut(|b| unsafe { *b = batch });
        let b = socket.binding();
        if let (Some(provider), Some(io)) = (b.provider(), socket.io.as_ref()) {
            let token = socket.token();
            // SAFETY: both live now (the run's reference just taken holds the socket, which
            // holds the binding and its provider); nothing here touches them after the call.
            unsafe { P::schedule(NonNull::from(provider), NonNull::from(io), token) };
        } else {
            // Never happens: a published socket has its I/O, and the provider is dropped only
            // at cleanup, after every socket is freed. Should it, run here rather than lose
            // the events.
            // SAFETY: forwarded: we are the runner, and hold the reference just taken.
            unsafe { Self::run_without_provider(this) };
        }
    }

    /// The fallback of [`Socket::schedule`] (never taken), kept out of line so that the state
    /// machine is not inlined into every poster's frame.
    ///
    /// # Safety
    /// As [`SocketRef::run_scheduled`].
    #[cold]
    #[inline(never)]
    unsafe fn run_without_provider(this: NonNull<Self>) {
        // SAFETY: live: the caller holds the run's reference.
        let socket = unsafe { this.as_ref() };
        log_error!(
            socket.platform(),
            "internal: a socket to run has no provider"
        );
        // SAFETY: forwarded.
        unsafe { SocketRef::<P>::from_ptr(this).run_scheduled() };
    }

    /// Runs the state machine until no event is pending, or until [`BATCHES_PER_RUN`] batches
    /// were processed with more pending: then returns `Some(next batch)`, still the runner, so
    /// that the caller queues another run (a connection whose calls keep completing inline must
    /// not hold a system worker thread for ever). Drops the open reference if the socket became
    /// done (and then always runs to the end).
    ///
    /// # Safety
    /// The caller became the runner of live socket `this`.
    unsafe fn run(this: NonNull<Self>, first: u32) -> Option<u32> {
        // SAFETY: live per the caller; the open reference is held until the end of this call
        // unless this runner drops it (below, after giving up the run).
        let socket = unsafe { this.as_ref() };
        let mut batch = first;
        let mut became_done = false;
        let mut batches = 1;
        loop {
            // SAFETY: only the runner touches the state (serializer.rs), and we are it.
            socket
                .state
                .with_mut(|state| became_done |= socket.process(unsafe { &mut *state }, batch));
            match socket.serializer.finish() {
                Some(next) if batches >= BATCHES_PER_RUN && !became_done => return Some(next),
                Some(next) => batch = next,
                None => break,
            }
            batches += 1;
        }
        if became_done {
            // SAFETY: drops the open reference, which kept the socket alive until here.
            unsafe { Self::unref(this) };
        }
        None
    }

    /// Drops one reference; the last frees the socket, vacates its slot and releases the
    /// socket's binding reference (completing the detach if that was the last).
    ///
    /// # Safety
    /// The caller holds a reference on `this` and does not use it afterwards.
    pub(crate) unsafe fn unref(this: NonNull<Self>) {
        // SAFETY: the caller's reference keeps it alive.
        let socket = unsafe { this.as_ref() };
        let (binding, slot, kind) = (socket.binding, socket.slot, socket.kind);
        // SAFETY: the socket holds a binding reference, so the binding is live.
        let b = unsafe { binding.as_ref() };
        // SAFETY: our reference on the occupant; the registry is not touched afterwards unless
        // this was the last reference (then nobody else can free the socket or the binding).
        if !unsafe { Slots::release(b.slots(), slot) } {
            return;
        }
        // Last reference: nothing is outstanding (done requires it), no one else can reach it.
        // SAFETY: allocated with this tag; ownership given up with `into_raw` in `create`.
        let boxed = unsafe { PoolBox::from_raw(this, Self::tag(kind)) };
        // SAFETY: allocated by this platform; no reference to the socket remains.
        unsafe { boxed.free(b.client().platform()) };
        b.slots().vacate(slot);
        // SAFETY: the reference taken for this socket or call; `b` is not used unless drained.
        if unsafe { Rundown::release(b.rundown()) } {
            // SAFETY: the rundown drained: nothing touches the binding after this call.
            unsafe { Binding::complete_detach(binding) };
        }
    }

    /// Requests close (detach). The caller holds a pin on `this`.
    ///
    /// # Safety
    /// `this` is live and pinned by the caller.
    pub(crate) unsafe fn request_close(this: NonNull<Self>) {
        // SAFETY: forwarded.
        unsafe { Self::post(this, EV_CLOSE_REQUEST) };
    }

    /// The binding's tick (one sweep at a time): counts a tick without progress on this
    /// connection and, once there were `limit` in a row, posts [`EV_IDLE`] (again at each
    /// later tick until the socket is gone: the runner acts on the first). The tick that
    /// finds the progress comes less than one period after it, so the connection is closed
    /// between `limit` and `limit + 1` periods after its last progress (or its accept).
    ///
    /// # Safety
    /// `this` is a live connection, pinned by the caller.
    pub(crate) unsafe fn tick_idle(this: NonNull<Self>, limit: u32) {
        // SAFETY: pinned by the caller.
        let socket = unsafe { this.as_ref() };
        if socket.progress.swap(false, Ordering::Relaxed) {
            socket.idle_ticks.store(0, Ordering::Relaxed);
            return;
        }
        let idle = socket.idle_ticks.load(Ordering::Relaxed).saturating_add(1);
        socket.idle_ticks.store(idle, Ordering::Relaxed);
        if idle >= limit {
            // SAFETY: forwarded.
            unsafe { Self::post(this, EV_IDLE) };
        }
    }

    // ---- the state machine (runner only) ----

    /// Processes one batch; `true` if the socket became done.
    fn process(&self, state: &mut State<P::Socket>, batch: u32) -> bool {
        if state.done {
            return false;
        }
        if batch & EV_START != 0 {
            state.started = true;
            match (self.kind, state.handle) {
                (SocketKind::Listener, None) => self.open(state),
                (SocketKind::Connection, Some(handle))
                    if self.binding().client().config().no_delay() && !state.close_wanted =>
                {
                    self.setup_step(state, |p, io, token| {
                        p.set_option(io, handle, SocketOption::NoDelay, token);
                    });
                }
                _ => {}
            }
        }
        if batch & EV_SETUP != 0 {
            let completion = self.setup.with_mut(|c| {
                // SAFETY: the completer wrote it before posting; only the runner takes it.
                unsafe { (*c).take() }
            });
            self.on_setup(state, completion);
        }
        if batch & EV_RECEIVE != 0 {
            // SAFETY: as above.
            let completion = self.received.with_mut(|c| unsafe { (*c).take() });
            self.on_received(state, completion);
        }
        if batch & EV_SEND != 0 {
            // SAFETY: as above.
            let completion = self.sent.with_mut(|c| unsafe { (*c).take() });
            self.on_sent(state, completion);
        }
        if batch & EV_DISCONNECT != 0 {
            // SAFETY: as above.
            let completion = self.disconnected.with_mut(|c| unsafe { (*c).take() });
            self.on_disconnected(state, completion);
        }
        if batch & (EV_LISTENER_DEAD | EV_CLOSE_REQUEST | EV_IDLE) != 0 {
            self.on_close_reasons(state, batch);
        }
        if batch & EV_CLOSED != 0 {
            self.on_closed(state);
        }
        if !state.started {
            // An accepted connection before `Accepted::start`: nothing is outstanding, and a
            // close request waits in `close_wanted`.
            return false;
        }
        if !state.close_wanted
            && self.kind == SocketKind::Connection
            && state.outstanding & op_bit(OpKind::Setup) == 0
        {
            self.pump(state);
        }
        if state.close_wanted && !state.close_issued {
            self.issue_close(state);
        }
        let finished = state.outstanding == 0
            && state.close_wanted
            && (state.handle.is_none() || state.closed);
        if finished {
            state.done = true;
            if self.kind == SocketKind::Connection {
                Stats::drop_one(&self.binding().client().stats().active);
            }
            if self.kind == SocketKind::Listener && !state.settled {
                // Done without ever listening: its start-up entry failed (with its setup's
                // failure, or cancelled when a detach or close came first).
                state.settled = true;
                let failure = if state.failure.is_success() {
                    NtStatus::CANCELLED
                } else {
                    state.failure
                };
                self.binding()
                    .client()
                    .startup()
                    .listener_settled(Err(failure));
            }
        }
        finished
    }

    /// The events that make the socket close (one test on the data path for the three).
    #[cold]
    fn on_close_reasons(&self, state: &mut State<P::Socket>, batch: u32) {
        if batch & EV_LISTENER_DEAD != 0 && !state.close_wanted {
            log_warning!(
                self.platform(),
                "listener {}: stopped working (accept event without a socket), closing",
                self.local
            );
            state.close_wanted = true;
        }
        if batch & EV_CLOSE_REQUEST != 0 {
            state.close_wanted = true;
        }
        if batch & EV_IDLE != 0 && !state.close_wanted {
            let seconds = self.binding().client().config().idle_timeout().unwrap_or(0);
            log_info!(
                self.platform(),
                "connection {}: no progress for {seconds} s (IdleTimeout), closing abortively",
                self.peer()
            );
            Stats::bump(&self.stats().idle_closed);
            state.close_wanted = true;
        }
    }

    const fn platform(&self) -> &P::Platform {
        self.binding().client().platform()
    }

    const fn stats(&self) -> &Stats {
        self.binding().client().stats()
    }

    /// Calls into the provider under a new rundown reference; `false` (nothing called) when
    /// the binding is detaching.
    fn call(&self, f: impl FnOnce(&P, &P::SocketIo, SocketRef<P>)) -> bool {
        let b = self.binding();
        let (Some(provider), Some(io)) = (b.provider(), self.io.as_ref()) else {
            return false;
        };
        match b.rundown().try_acquire() {
            Acquisition::Acquired => {}
            Acquisition::Refused => return false,
            Acquisition::RefusedDrained => {
                // Never happens: this socket still holds its own binding reference.
                log_error!(
                    self.platform(),
                    "internal: rundown drained under a live socket"
                );
                return false;
            }
        }
        f(provider, io, self.token());
        // Never drains here: this socket still holds its own binding reference.
        // SAFETY: the reference taken for this socket or call; `b` is not used unless drained.
        if unsafe { Rundown::release(b.rundown()) } {
            log_error!(
                self.platform(),
                "internal: rundown drained under a live socket"
            );
        }
        true
    }

    const fn token(&self) -> SocketRef<P> {
        SocketRef::from_ptr(NonNull::from_ref(self))
    }

    fn open(&self, state: &mut State<P::Socket>) {
        let local = self.local;
        if self.call(|p, io, token| p.open_listener(io, local, token)) {
            state.outstanding |= op_bit(OpKind::Setup);
        } else {
            log_trace!(self.platform(), "listener {local}: not opened, detaching");
            state.close_wanted = true;
        }
    }

    fn fail(&self, state: &mut State<P::Socket>, what: &str, status: NtStatus) {
        if state.close_wanted {
            // Cancelled by our own close, or failing after it was wanted: not news.
            log_info!(
                self.platform(),
                "{} {}: {what} ended with {status} while closing",
                self.describe(),
                self.local
            );
        } else if self.kind == SocketKind::Listener && state.reopened {
            log_warning!(
                self.platform(),
                "listener {}: reopening: {what} failed with {status}",
                self.local
            );
        } else if self.kind == SocketKind::Listener {
            log_error!(
                self.platform(),
                "listener {}: {what} failed with {status}",
                self.local
            );
            Stats::bump(&self.stats().failures);
            if state.failure.is_success() {
                state.failure = status;
            }
        } else {
            log_info!(
                self.platform(),
                "connection {}: {what} failed with {status}, closing",
                self.peer()
            );
        }
        state.close_wanted = true;
    }

    const fn describe(&self) -> &'static str {
        match self.kind {
            SocketKind::Listener => "listener",
            SocketKind::Connection => "connection on",
        }
    }

    const fn peer(&self) -> PeerDisplay {
        PeerDisplay {
            remote: self.remote,
            local: self.local,
        }
    }

    fn unexpected(&self, state: &mut State<P::Socket>, what: &str) {
        log_error!(
            self.platform(),
            "{} {}: unexpected {what}, closing",
            self.describe(),
            self.local
        );
        Stats::bump(&self.stats().failures);
        state.close_wanted = true;
    }

    /// A receive/send completion reporting more bytes than were asked for: a provider fault,
    /// so count it and close.
    fn overrun(&self, state: &mut State<P::Socket>, what: &str, reported: usize, asked: usize) {
        log_error!(
            self.platform(),
            "connection {}: {what} completion of {reported} bytes, {asked} asked for, closing",
            self.peer()
        );
        Stats::bump(&self.stats().failures);
        state.close_wanted = true;
    }

    /// Whether the handler's `range` for the next `what` is one the provider may be given:
    /// not empty, inside the buffer, and sharing no byte with `other`, the other operation's
    /// range in flight. If not, the fault is counted and logged and the connection closes.
    fn range_allowed(
        &self,
        state: &mut State<P::Socket>,
        what: &str,
        range: &Range<usize>,
        buffer_len: usize,
        other: Option<Range<usize>>,
    ) -> bool {
        let why = if range.start >= range.end {
            "is empty"
        } else if range.end > buffer_len {
            "leaves the buffer"
        } else if other.is_some_and(|o| overlaps(&o, range)) {
            "overlaps the operation in flight"
        } else {
            return true;
        };
        log_error!(
            self.platform(),
            "connection {}: the handler's {what} range {}..{} {why} ({buffer_len}-byte buffer), closing",
            self.peer(),
            range.start,
            range.end
        );
        Stats::bump(&self.stats().failures);
        state.close_wanted = true;
        false
    }

    fn on_setup(&self, state: &mut State<P::Socket>, completion: Option<Completion<P::Socket>>) {
        if state.outstanding & op_bit(OpKind::Setup) == 0 {
            return self.unexpected(state, "setup completion");
        }
        state.outstanding &= !op_bit(OpKind::Setup);
        if self.kind == SocketKind::Connection {
            return self.on_no_delay_set(state, completion);
        }
        match completion {
            Some(Completion::Created(Ok(handle))) if state.handle.is_none() => {
                state.handle = Some(handle);
                if state.close_wanted {
                    return; // close it (below in `process`) instead of binding it
                }
                if self.local.is_ipv6() {
                    self.setup_step(state, |p, io, token| {
                        p.set_option(io, handle, SocketOption::Ipv6Only, token);
                    });
                } else {
                    self.bind(state, handle);
                }
            }
            Some(Completion::Created(Err(status))) => self.fail(state, "WskSocket", status),
            Some(Completion::OptionSet(Ok(()))) => match state.handle {
                Some(_) if state.close_wanted => {}
                Some(handle) => self.bind(state, handle),
                None => self.unexpected(state, "setup completion"),
            },
            Some(Completion::OptionSet(Err(status))) => {
                self.fail(state, "WskControlSocket(IPV6_V6ONLY)", status);
            }
            Some(Completion::Bound(Ok(()))) if state.handle.is_some() => {
                if state.close_wanted {
                    return;
                }
                state.listening = true;
                Stats::bump(&self.stats().listeners_open);
                self.binding().listener_listening(self.slot);
                if state.reopened {
                    log_warning!(self.platform(), "listener {}: listening again", self.local);
                } else {
                    state.settled = true;
                    self.binding().client().startup().listener_settled(Ok(()));
                    log_trace!(self.platform(), "listener {}: listening", self.local);
                }
            }
            Some(Completion::Bound(Err(status))) => self.fail(state, "WskBind", status),
            _ => self.unexpected(state, "setup completion"),
        }
    }

    /// Connection: `TCP_NODELAY` was set, or not. A failure costs latency only (Nagle's
    /// algorithm stays on), so the connection is served either way.
    fn on_no_delay_set(
        &self,
        state: &mut State<P::Socket>,
        completion: Option<Completion<P::Socket>>,
    ) {
        match completion {
            Some(Completion::OptionSet(Err(status))) if !state.close_wanted => log_warning!(
                self.platform(),
                "connection {}: WskControlSocket(TCP_NODELAY) failed with {status}; serving with Nagle's algorithm on",
                self.peer()
            ),
            // Set, or cancelled by a close already wanted.
            Some(Completion::OptionSet(_)) => {}
            _ => self.unexpected(state, "setup completion"),
        }
    }

    /// `WskBind` of the listener's socket.
    fn bind(&self, state: &mut State<P::Socket>, handle: P::Socket) {
        let local = self.local;
        self.setup_step(state, |p, io, token| p.bind(io, handle, local, token));
    }

    /// Makes the next call of the listener's setup; if the binding is detaching, closes instead.
    fn setup_step(
        &self,
        state: &mut State<P::Socket>,
        f: impl FnOnce(&P, &P::SocketIo, SocketRef<P>),
    ) {
        if self.call(f) {
            state.outstanding |= op_bit(OpKind::Setup);
        } else {
            state.close_wanted = true;
        }
    }

    fn on_received(&self, state: &mut State<P::Socket>, completion: Option<Completion<P::Socket>>) {
        if state.outstanding & op_bit(OpKind::Receive) == 0 {
            return self.unexpected(state, "receive completion");
        }
        state.outstanding &= !op_bit(OpKind::Receive);
        let range = state.receiving.take();
        let (Some(served), Some(range)) = (state.served, range) else {
            return self.unexpected(state, "receive completion");
        };
        // SAFETY: we are the runner.
        let handler = unsafe { served.handler() };
        match completion {
            Some(Completion::Received(Ok(0))) => {
                self.progress.store(true, Ordering::Relaxed);
                // SAFETY: the runner; the only other range in use is the send in flight.
                let mut buffer = unsafe { served.buffer_view(state.sending.clone()) };
                handler.peer_finished(&mut buffer);
                state.fin = true;
                log_info!(
                    self.platform(),
                    "connection {}: peer finished sending",
                    self.peer()
                );
            }
            Some(Completion::Received(Ok(n))) if n <= range.len() => {
                self.progress.store(true, Ordering::Relaxed);
                // SAFETY: the runner; the only other range in use is the send in flight.
                let mut buffer = unsafe { served.buffer_view(state.sending.clone()) };
                handler.received(&mut buffer, n);
            }
            Some(Completion::Received(Ok(n))) => {
                handler.receive_abandoned();
                self.overrun(state, "receive", n, range.len());
            }
            Some(Completion::Received(Err(status))) => {
                handler.receive_abandoned();
                self.fail(state, "receive", status);
            }
            _ => {
                handler.receive_abandoned();
                self.unexpected(state, "receive completion");
            }
        }
    }

    fn on_sent(&self, state: &mut State<P::Socket>, completion: Option<Completion<P::Socket>>) {
        if state.outstanding & op_bit(OpKind::Send) == 0 {
            return self.unexpected(state, "send completion");
        }
        state.outstanding &= !op_bit(OpKind::Send);
        let range = state.sending.take();
        let (Some(served), Some(range)) = (state.served, range) else {
            return self.unexpected(state, "send completion");
        };
        // SAFETY: we are the runner.
        let handler = unsafe { served.handler() };
        match completion {
            Some(Completion::Sent(Ok(n))) if n > 0 && n <= range.len() => {
                self.progress.store(true, Ordering::Relaxed);
                // SAFETY: the runner; the only other range in use is the receive in flight.
                let mut buffer = unsafe { served.buffer_view(state.receiving.clone()) };
                handler.sent(&mut buffer, n);
                Stats::add(
                    &self.stats().bytes_sent,
                    u64::try_from(n).unwrap_or(u64::MAX),
                );
            }
            Some(Completion::Sent(Ok(0))) => {
                handler.send_abandoned();
                self.unexpected(state, "send of 0 bytes");
            }
            Some(Completion::Sent(Ok(n))) => {
                handler.send_abandoned();
                self.overrun(state, "send", n, range.len());
            }
            Some(Completion::Sent(Err(status))) => {
                handler.send_abandoned();
                self.fail(state, "send", status);
            }
            _ => {
                handler.send_abandoned();
                self.unexpected(state, "send completion");
            }
        }
    }

    fn on_disconnected(
        &self,
        state: &mut State<P::Socket>,
        completion: Option<Completion<P::Socket>>,
    ) {
        if state.outstanding & op_bit(OpKind::Disconnect) == 0 {
            return self.unexpected(state, "disconnect completion");
        }
        state.outstanding &= !op_bit(OpKind::Disconnect);
        match completion {
            Some(Completion::Disconnected(Ok(()))) => {
                state.disconnected = true;
                state.close_wanted = true;
            }
            Some(Completion::Disconnected(Err(status))) => self.fail(state, "disconnect", status),
            _ => self.unexpected(state, "disconnect completion"),
        }
    }

    fn on_closed(&self, state: &mut State<P::Socket>) {
        if state.outstanding & op_bit(OpKind::Close) == 0 {
            return self.unexpected(state, "close completion");
        }
        state.outstanding &= !op_bit(OpKind::Close);
        state.closed = true;
        match self.kind {
            SocketKind::Listener => {
                if state.listening {
                    state.listening = false;
                    Stats::drop_one(&self.stats().listeners_open);
                }

                log_trace!(self.platform(), "listener {}: closed", self.local);
            }
            SocketKind::Connection => {
                let how = if state.disconnected {
                    "gracefully"
                } else {
                    "abortively"
                };
                log_info!(self.platform(), "connection {}: closed {how}", self.peer());
            }
        }
    }

    /// Connection: issues the receive and send the handler asks for, and the disconnect once
    /// the peer finished, nothing is outstanding and the handler has nothing more to send.
    fn pump(&self, state: &mut State<P::Socket>) {
        let (Some(handle), Some(served)) = (state.handle, state.served) else {
            return;
        };
        // SAFETY: we are the runner.
        let handler = unsafe { served.handler() };
        let buffer_len = served.buffer.len();
        if !state.fin
            && state.outstanding & op_bit(OpKind::Receive) == 0
            && let Some(range) = handler.next_receive()
        {
            let sending = state.sending.clone();
            if !self.range_allowed(state, "receive", &range, buffer_len, sending) {
                handler.receive_abandoned();
                return;
            }
            if self.call(|p, io, token| p.receive(io, handle, range.clone(), token)) {
                state.outstanding |= op_bit(OpKind::Receive);
                state.receiving = Some(range);
            } else {
                handler.receive_abandoned();
                state.close_wanted = true;
                return;
            }
        }
        let mut nothing_to_send = false;
        if state.outstanding & op_bit(OpKind::Send) == 0 {
            let receiving = state.receiving.clone();
            match handler.next_send() {
                Some(range)
                    if !self.range_allowed(state, "send", &range, buffer_len, receiving) =>
                {
                    handler.send_abandoned();
                    return;
                }
                Some(range) => {
                    if self.call(|p, io, token| p.send(io, handle, range.clone(), token)) {
                        state.outstanding |= op_bit(OpKind::Send);
                        state.sending = Some(range);
                    } else {
                        handler.send_abandoned();
                        state.close_wanted = true;
                        return;
                    }
                }
                None => nothing_to_send = true,
            }
        }
        if state.fin && nothing_to_send && state.outstanding == 0 && !state.disconnect_issued {
            if self.call(|p, io, token| p.disconnect(io, handle, token)) {
                state.disconnect_issued = true;
                state.outstanding |= op_bit(OpKind::Disconnect);
            } else {
                state.close_wanted = true;
            }
        }
    }

    /// Issues `WskCloseSocket` once there is a socket to close. Pending operations are
    /// allowed (close cancels them); a pending `WskSocket` is waited for (no handle yet).
    fn issue_close(&self, state: &mut State<P::Socket>) {
        let Some(handle) = state.handle else { return };
        let b = self.binding();
        let (Some(provider), Some(io)) = (b.provider(), self.io.as_ref()) else {
            state.closed = true; // cannot happen: treat as closed rather than leak
            return;
        };
        // The socket's own binding reference is held: the close is allowed while detaching.
        b.rundown().acquire_held();
        state.close_issued = true;
        state.outstanding |= op_bit(OpKind::Close);
        provider.close(io, handle, self.token());
        // SAFETY: the reference taken for this socket or call; `b` is not used unless drained.
        if unsafe { Rundown::release(b.rundown()) } {
            log_error!(
                self.platform(),
                "internal: rundown drained under a live socket"
            );
        }
    }
}

impl<P: Provider> Drop for Socket<P> {
    /// Drops a connection's handler in place (its memory is the socket's, freed after this).
    fn drop(&mut self) {
        self.state.with_mut(|state| {
            // SAFETY: the socket is being dropped: no runner and no other reference exist.
            if let Some(served) = unsafe { (*state).served.take() } {
                // SAFETY: made by `Service::make` in this allocation, dropped once (taken).
                unsafe { served.handler.as_ptr().drop_in_place() };
            }
        });
    }
}

/// `remote -> local` for log lines.
struct PeerDisplay {
    remote: Option<SocketAddr>,
    local: SocketAddr,
}

impl ::core::fmt::Display for PeerDisplay {
    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
        match self.remote {
            Some(remote) => write!(f, "{remote} -> {}", self.local),
            None => write!(f, "? -> {}", self.local),
        }
    }
}

pub use crate::token::SocketRef;

impl<P: Provider> SocketRef<P> {
    /// The socket.
    pub(crate) const fn socket(self) -> NonNull<Socket<P>> {
        self.ptr()
    }

    /// An asynchronous [`Provider`] operation made with this token finished (IRP completion
    /// routine), at IRQL <= `DISPATCH_LEVEL`, on any thread, possibly before the call that
    /// started it returned. The token must not be used by the caller afterwards.
    ///
    /// # Safety
    /// Called exactly once per operation, with the token the operation was made with.
    pub unsafe fn complete(self, completion: Completion<P::Socket>) {
        // SAFETY: an outstanding operation keeps the socket alive until its completion is
        // processed, which cannot happen before this post.
        let socket = unsafe { self.socket().as_ref() };
        let (cell, event) = match completion {
            Completion::Created(_) | Completion::OptionSet(_) | Completion::Bound(_) => {
                (Some(&socket.setup), EV_SETUP)
            }
            Completion::Received(_) => (Some(&socket.received), EV_RECEIVE),
            Completion::Sent(_) => (Some(&socket.sent), EV_SEND),
            Completion::Disconnected(_) => (Some(&socket.disconnected), EV_DISCONNECT),
            Completion::Closed => (None, EV_CLOSED),
        };
        if let Some(cell) = cell {
            // SAFETY: one operation of this kind is outstanding and the runner reads the cell
            // only after this post (serializer orderings), so no other access is live.
            cell.with_mut(|c| unsafe { *c = Some(completion) });
        }
        // SAFETY: alive as argued above.
        unsafe { Socket::post(self.socket(), event) };
    }

    /// Runs the socket's state machine for the run [`Provider::schedule`] was given this token
    /// for: processes the pending events, makes the provider calls they lead to, and may free
    /// the socket and complete the binding's detach. The token must not be used afterwards.
    ///
    /// # Safety
    /// Called exactly once per [`Provider::schedule`] call, with its token, at IRQL <=
    /// `DISPATCH_LEVEL`, outside every `IoCompletion` routine and WSK event callback (kernel: the
    /// socket's work item, at `PASSIVE_LEVEL`).
    pub unsafe fn run_scheduled(self) {
        // SAFETY: `schedule` took a reference for this run, dropped below.
        let socket = unsafe { self.socket().as_ref() };
        // SAFETY: we hold the runner role `schedule`'s caller took; only the runner touches it.
        let batch = socket.scheduled.with(|b| unsafe { *b });
        // SAFETY: the runner of a live socket.
        match unsafe { Socket::run(self.socket(), batch) } {
            // SAFETY: still the runner, with the run's reference, which moves to the next run.
            Some(next) => unsafe { Socket::hand_over(self.socket(), next) },
            // SAFETY: drops the reference `schedule` took; the socket is not used afterwards.
            None => unsafe { Socket::unref(self.socket()) },
        }
    }
}
