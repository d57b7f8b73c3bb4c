//! Drives the real core through echo cycles with a WSK double that does no I/O (part 2).
//!
//! [`BenchProvider`] records every call the core makes and leaves it pending; [`Echo`] plays
//! WSK: it completes the pending operations one at a time, as IRP completion routines would.
//! Every entry into the core goes through one of the `#[inline(never)]` wrappers
//! [`core_setup`], [`core_step_received`], [`core_step_sent`] and [`core_teardown`], so that
//! callgrind can count exactly the instructions executed inside them (`--toggle-collect`). The provider's and the platform's
//! own functions (trait methods of the `Bench*` types, see [`is_bench_double`]) run inside
//! those wrappers too; their cost is subtracted (reported separately), so what remains is the
//! core's.
//!
//! The core asks for its socket runs with [`Provider::schedule`]; the double queues them and
//! [`Echo`] runs them right after the completion or event that scheduled them, inside the same
//! wrapper, as a work item would run them after the completion routine returned. So a cycle's
//! count includes the work item's run.
//!
//! One echo cycle ([`Echo::cycle`]): the pending receive completes with data, the core issues
//! the send; the send completes, the core issues the next receive.

use std::{
    alloc::{self, Layout},
    collections::HashMap,
    fmt,
    net::SocketAddr,
    ops::Range,
    ptr::{self, NonNull},
    slice,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering},
    },
};

use wsk_client::{
    binding::BindingRef,
    client::Client,
    config::{ConfigBuilder, ValueName},
    provider::{Completion, OpKind, Provider, SocketKind, SocketOption},
    socket::SocketRef,
    wsk_version::{WSK_VERSION_1_0, WskVersionRange},
};
use wsk_primitives::{
    platform::{Level, Platform, PoolTag},
    status::NtStatus,
};
use wskecho_echo::ECHO;

/// Runs `f`, an entry into the core that sets up the binding, the listener or the connection.
#[inline(never)]
pub fn core_setup<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Runs `f`, the receive completion of an echo cycle (`core_step*` counts the whole cycle).
#[inline(never)]
pub fn core_step_received<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Runs `f`, the send completion of an echo cycle.
#[inline(never)]
pub fn core_step_sent<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Runs `f`, an entry into the core that tears the connection, listener and binding down.
#[inline(never)]
pub fn core_teardown<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Whether a function (callgrind's demangled name) belongs to the WSK/platform double rather
/// than to the core: the trait methods of the `Bench*` types, and their drop glue.
#[must_use]
pub fn is_bench_double(function: &str) -> bool {
    function.starts_with("<wskecho_bench::echo_step::Bench")
        || function.contains("drop_in_place<wskecho_bench::echo_step::Bench")
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Pool memory from the global allocator, accounted; log lines at warning level or worse kept.
#[derive(Debug, Default)]
pub struct BenchPlatform {
    live: Mutex<HashMap<usize, Layout>>,
    problems: Mutex<Vec<String>>,
}

impl BenchPlatform {
    /// Blocks allocated and not freed.
    #[must_use]
    pub fn live_blocks(&self) -> usize {
        lock(&self.live).len()
    }

    /// Error and warning lines the core logged.
    #[must_use]
    pub fn problems(&self) -> Vec<String> {
        lock(&self.problems).clone()
    }
}

impl Platform for BenchPlatform {
    #[inline(never)]
    fn allocate(&self, size: usize, _tag: PoolTag) -> Option<NonNull<u8>> {
        let layout = Layout::from_size_align(size.max(1), 16).ok()?;
        // SAFETY: the layout's size is non-zero.
        let ptr = NonNull::new(unsafe { alloc::alloc(layout) })?;
        lock(&self.live).insert(ptr.as_ptr() as usize, layout);
        Some(ptr)
    }

    #[inline(never)]
    unsafe fn free(&self, ptr: NonNull<u8>, _tag: PoolTag) {
        let layout = lock(&self.live).remove(&(ptr.as_ptr() as usize));
        match layout {
            // SAFETY: allocated in `allocate` with this layout, freed once (removed above).
            Some(layout) => unsafe { alloc::dealloc(ptr.as_ptr(), layout) },
            None => lock(&self.problems).push(format!("free of unknown block {ptr:p}")),
        }
    }

    #[inline(never)]
    fn log(&self, level: Level, args: fmt::Arguments<'_>) {
        if level <= Level::Warning {
            lock(&self.problems).push(format!("{level:?}: {args}"));
        }
    }
}

/// A socket handle of the double.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchSocket(pub u32);

/// A socket's I/O resources: only where its echo buffer is.
#[derive(Debug)]
pub struct BenchIo {
    buffer: usize,
    len: usize,
}

/// A call the core made into the double, pending until [`Echo`] completes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `WskSocket`.
    Open,
    /// `WskControlSocket(WskSetOption)`: `TCP_NODELAY` on the connection (`NoDelay`'s
    /// default); `IPV6_V6ONLY` is never made (the bench's listener is IPv4).
    SetOption(SocketOption),
    /// `WskBind`.
    Bind,
    /// `WskReceive` into this range of the echo buffer.
    Receive(Range<usize>),
    /// `WskSend` of this range of the echo buffer.
    Send(Range<usize>),
    /// `WskDisconnect`.
    Disconnect,
    /// `WskCloseSocket`.
    Close,
}

impl Request {
    const fn kind(&self) -> OpKind {
        match self {
            Self::Open | Self::SetOption(_) | Self::Bind => OpKind::Setup,
            Self::Receive(_) => OpKind::Receive,
            Self::Send(_) => OpKind::Send,
            Self::Disconnect => OpKind::Disconnect,
            Self::Close => OpKind::Close,
        }
    }
}

/// A pending request and the token to complete it with.
#[derive(Debug)]
struct Pending {
    request: Request,
    buffer: usize,
    token: SocketRef<BenchProvider>,
}

/// The state of the double, shared by the provider and [`Echo`].
#[derive(Debug, Default)]
pub struct Wsk {
    pending: Mutex<Vec<Pending>>,
    next_socket: AtomicU32,
    detach_completions: AtomicUsize,
    accept_events: AtomicBool,
    scheduled: BenchWorkItems,
    schedules: AtomicUsize,
    /// The binding's timer is armed (it never fires here: no tick is part of an echo cycle).
    timer_armed: AtomicBool,
}

/// The work items the core scheduled, not yet run: the double's queue (its `pop` is the
/// double's cost, like the provider's methods; the runs themselves are the core's).
#[derive(Debug, Default)]
pub struct BenchWorkItems(Mutex<Vec<SocketRef<BenchProvider>>>);

/// The queue of [`BenchWorkItems`], as a trait so that callgrind's names for its methods mark
/// them as the double's ([`is_bench_double`]).
pub trait WorkQueue {
    /// The next run to make, if any.
    fn pop(&self) -> Option<SocketRef<BenchProvider>>;
}

impl WorkQueue for BenchWorkItems {
    #[inline(never)]
    fn pop(&self) -> Option<SocketRef<BenchProvider>> {
        lock(&self.0).pop()
    }
}

impl Wsk {
    /// Runs the socket runs the core scheduled, as work items do.
    fn run_work_items(&self) {
        while let Some(token) = self.scheduled.pop() {
            // SAFETY: one run per `schedule`, outside every completion and event.
            unsafe { token.run_scheduled() };
        }
    }

    fn record(&self, request: Request, io: &BenchIo, token: SocketRef<BenchProvider>) {
        lock(&self.pending).push(Pending {
            request,
            buffer: io.buffer,
            token,
        });
    }

    fn take(&self, kind: OpKind) -> Option<Pending> {
        let mut pending = lock(&self.pending);
        let index = pending.iter().position(|p| p.request.kind() == kind)?;
        Some(pending.remove(index))
    }

    fn take_any(&self) -> Option<Pending> {
        lock(&self.pending).pop()
    }
}

/// The WSK double the core calls (see the module documentation).
#[derive(Debug)]
pub struct BenchProvider(Arc<Wsk>);

impl Provider for BenchProvider {
    type Socket = BenchSocket;
    type SocketIo = BenchIo;
    type Platform = BenchPlatform;
    type DetachHandle = Arc<Wsk>;

    #[inline(never)]
    fn new_socket_io(
        &self,
        _kind: SocketKind,
        buffer: Option<NonNull<[u8]>>,
    ) -> Result<BenchIo, NtStatus> {
        Ok(buffer.map_or(BenchIo { buffer: 0, len: 0 }, |b| BenchIo {
            buffer: b.as_ptr().cast::<u8>().expose_provenance(),
            len: b.len(),
        }))
    }

    #[inline(never)]
    unsafe fn schedule(this: NonNull<Self>, _io: NonNull<BenchIo>, token: SocketRef<Self>) {
        // SAFETY: valid at entry (caller); the double runs its work items later, on this thread.
        let wsk = unsafe { &this.as_ref().0 };
        wsk.schedules.fetch_add(1, Ordering::Relaxed);
        lock(&wsk.scheduled.0).push(token);
    }

    #[inline(never)]
    fn enable_accept_events(&self) -> Result<(), NtStatus> {
        self.0.accept_events.store(true, Ordering::Relaxed);
        Ok(())
    }

    #[inline(never)]
    fn open_listener(&self, io: &BenchIo, _local: SocketAddr, token: SocketRef<Self>) {
        self.0.record(Request::Open, io, token);
    }

    #[inline(never)]
    fn set_option(
        &self,
        io: &BenchIo,
        _socket: BenchSocket,
        option: SocketOption,
        token: SocketRef<Self>,
    ) {
        self.0.record(Request::SetOption(option), io, token);
    }

    fn arm_timer(&self, _delay_ms: u32, _binding: BindingRef<Self>) {
        self.0.timer_armed.store(true, Ordering::Relaxed);
    }

    fn cancel_timer(&self) -> bool {
        self.0.timer_armed.swap(false, Ordering::Relaxed)
    }

    #[inline(never)]
    fn bind(&self, io: &BenchIo, _socket: BenchSocket, _local: SocketAddr, token: SocketRef<Self>) {
        self.0.record(Request::Bind, io, token);
    }

    #[inline(never)]
    fn receive(
        &self,
        io: &BenchIo,
        _socket: BenchSocket,
        range: Range<usize>,
        token: SocketRef<Self>,
    ) {
        let request = if range.end <= io.len {
            Request::Receive(range)
        } else {
            Request::Receive(0..0) // out of the buffer: Echo reports it
        };
        self.0.record(request, io, token);
    }

    #[inline(never)]
    fn send(
        &self,
        io: &BenchIo,
        _socket: BenchSocket,
        range: Range<usize>,
        token: SocketRef<Self>,
    ) {
        self.0.record(Request::Send(range), io, token);
    }

    #[inline(never)]
    fn disconnect(&self, io: &BenchIo, _socket: BenchSocket, token: SocketRef<Self>) {
        self.0.record(Request::Disconnect, io, token);
    }

    #[inline(never)]
    fn close(&self, io: &BenchIo, _socket: BenchSocket, token: SocketRef<Self>) {
        self.0.record(Request::Close, io, token);
    }

    #[inline(never)]
    fn detach_handle(&self) -> Arc<Wsk> {
        Arc::clone(&self.0)
    }

    #[inline(never)]
    fn detach_complete(handle: Arc<Wsk>) {
        handle.detach_completions.fetch_add(1, Ordering::Relaxed);
    }
}

/// What went wrong while driving the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoError(pub String);

impl fmt::Display for EchoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EchoError {}

fn fail<T>(what: impl Into<String>) -> Result<T, EchoError> {
    Err(EchoError(what.into()))
}

/// One accepted connection echoing through the real core (see the module documentation).
pub struct Echo {
    client: Box<Client<BenchProvider>>,
    wsk: Arc<Wsk>,
    binding: BindingRef<BenchProvider>,
    /// Bytes the receive completions reported, and the sends completed.
    received: u64,
    sent: u64,
    /// The byte the next received byte is filled with (a running pattern).
    pattern: u8,
    torn_down: bool,
}

impl fmt::Debug for Echo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Echo")
            .field("received", &self.received)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

/// The listening endpoint of the bench configuration (never opened: the double does no I/O).
const LISTEN: &str = "127.0.0.1:7";

impl Echo {
    /// Attaches a client with one listener and `buffer_size` bytes of echo buffer, opens the
    /// listener, accepts one connection; the core then has its first receive pending.
    ///
    /// # Errors
    /// The configuration is refused or the core does not behave as a working echo server.
    pub fn start(buffer_size: u32) -> Result<Self, EchoError> {
        let mut builder = ConfigBuilder::new();
        builder
            .set_listen_addresses([LISTEN])
            .and_then(|()| builder.set_dword(ValueName::MaxConnections, 4))
            .and_then(|()| builder.set_dword(ValueName::BufferSize, buffer_size))
            .map_err(|error| EchoError(error.to_string()))?;
        let client = Box::new(Client::new(builder.build(), ECHO, BenchPlatform::default()));
        let wsk = Arc::new(Wsk::default());
        let provider = BenchProvider(Arc::clone(&wsk));
        let mut binding = None;
        let versions = WskVersionRange {
            highest: WSK_VERSION_1_0,
            lowest: WSK_VERSION_1_0,
        };
        let status = core_setup(|| {
            // SAFETY: the client is boxed and outlives its binding: `Drop` tears it down.
            let status = unsafe {
                client.attach_provider(versions, |b| {
                    binding = Some(b);
                    Ok(provider)
                })
            };
            wsk.run_work_items();
            status
        });
        let Some(binding) = binding.filter(|_| status == NtStatus::SUCCESS) else {
            return fail(format!("attach failed with {status}"));
        };
        let echo = Self {
            client,
            wsk,
            binding,
            received: 0,
            sent: 0,
            pattern: 0,
            torn_down: false,
        };
        echo.open_listener_and_accept()?;
        Ok(echo)
    }

    fn expect(&self, kind: OpKind) -> Result<Pending, EchoError> {
        self.wsk
            .take(kind)
            .map_or_else(|| fail(format!("the core has no {kind:?} pending")), Ok)
    }

    fn open_listener_and_accept(&self) -> Result<(), EchoError> {
        if !self.wsk.accept_events.load(Ordering::Relaxed) {
            return fail("accept events were not enabled");
        }
        let open = self.expect(OpKind::Setup)?;
        let socket = BenchSocket(self.wsk.next_socket.fetch_add(1, Ordering::Relaxed));
        core_setup(|| {
            // SAFETY: one completion for the pending WskSocket, with its token.
            unsafe { open.token.complete(Completion::Created(Ok(socket))) };
            self.wsk.run_work_items();
        });
        let bind = self.expect(OpKind::Setup)?;
        core_setup(|| {
            // SAFETY: one completion for the pending WskBind, with its token.
            unsafe { bind.token.complete(Completion::Bound(Ok(()))) };
            self.wsk.run_work_items();
        });
        let accepted = BenchSocket(self.wsk.next_socket.fetch_add(1, Ordering::Relaxed));
        let remote = "127.0.0.1:50000".parse().ok();
        let listener = open.token;
        // SAFETY: the listener is open (bound, close not requested).
        let result = core_setup(|| unsafe { listener.accept_event(Some(accepted), remote) });
        match result {
            // As the kernel's accept event: out-parameters written, then the start.
            Ok(connection) => core_setup(|| {
                connection.start();
                self.wsk.run_work_items();
            }),
            Err(status) => return fail(format!("the connection was refused with {status}")),
        }
        // `NoDelay` (on by default): `TCP_NODELAY` before the first receive.
        let option = self.expect(OpKind::Setup)?;
        if option.request != Request::SetOption(SocketOption::NoDelay) {
            return fail(format!(
                "expected TCP_NODELAY, the core made {:?}",
                option.request
            ));
        }
        core_setup(|| {
            // SAFETY: one completion for the pending WskControlSocket, with its token.
            unsafe { option.token.complete(Completion::OptionSet(Ok(()))) };
            self.wsk.run_work_items();
        });
        self.check_clean()
    }

    /// One echo cycle: the pending receive completes with `min(requested, chunk)` bytes, the
    /// core sends them back; the send completes in full, the core has a receive pending again.
    ///
    /// # Errors
    /// The core did not issue the send or the next receive, or sent other bytes than it got.
    pub fn cycle(&mut self, chunk: usize) -> Result<(), EchoError> {
        let receive = self.expect(OpKind::Receive)?;
        let Request::Receive(range) = receive.request else {
            return fail("not a receive");
        };
        let n = range.len().min(chunk);
        if n == 0 {
            return fail(format!("receive of {range:?}: empty or outside the buffer"));
        }
        let filled = range.start..range.start + n;
        self.fill(receive.buffer, &filled);
        let token = receive.token;
        core_step_received(|| {
            // SAFETY: one completion for the pending receive, with its token.
            unsafe { token.complete(Completion::Received(Ok(n))) };
            self.wsk.run_work_items();
        });
        self.received += u64::try_from(n).unwrap_or(u64::MAX);
        let send = self.expect(OpKind::Send)?;
        let Request::Send(echoed) = send.request else {
            return fail("not a send");
        };
        if echoed != filled {
            return fail(format!("sent {echoed:?} after receiving {filled:?}"));
        }
        self.check_pattern(send.buffer, &echoed)?;
        let token = send.token;
        core_step_sent(|| {
            // SAFETY: one completion for the pending send, with its token.
            unsafe { token.complete(Completion::Sent(Ok(echoed.len()))) };
            self.wsk.run_work_items();
        });
        self.sent += u64::try_from(echoed.len()).unwrap_or(u64::MAX);
        if !lock(&self.wsk.pending)
            .iter()
            .any(|p| p.request.kind() == OpKind::Receive)
        {
            return fail("no receive pending after the send completed");
        }
        self.check_clean()
    }

    /// Writes the data "received" into the echo buffer (WSK's copy; not the core's).
    fn fill(&mut self, buffer: usize, range: &Range<usize>) {
        let start = ptr::with_exposed_provenance_mut::<u8>(buffer).wrapping_add(range.start);
        // SAFETY: `range` lies inside the connection's echo buffer (checked by the provider
        // when the receive was recorded), which is live and not touched by the core while the
        // receive is pending.
        let bytes = unsafe { slice::from_raw_parts_mut(start, range.len()) };
        for byte in bytes {
            *byte = self.pattern;
            self.pattern = self.pattern.wrapping_add(1);
        }
    }

    /// Whether the bytes to send are the last ones filled in.
    fn check_pattern(&self, buffer: usize, range: &Range<usize>) -> Result<(), EchoError> {
        let mut expected = self
            .pattern
            .wrapping_sub(u8::try_from(range.len() % 256).unwrap_or(0));
        let start = ptr::with_exposed_provenance::<u8>(buffer).wrapping_add(range.start);
        // SAFETY: inside the live echo buffer, which the core does not write during a send.
        let bytes = unsafe { slice::from_raw_parts(start, range.len()) };
        for (offset, &byte) in bytes.iter().enumerate() {
            if byte != expected {
                return fail(format!(
                    "byte {} of the send is {byte}, not {expected}",
                    range.start + offset
                ));
            }
            expected = expected.wrapping_add(1);
        }
        Ok(())
    }

    fn check_clean(&self) -> Result<(), EchoError> {
        let problems = self.client.platform().problems();
        if problems.is_empty() {
            Ok(())
        } else {
            fail(format!("the core logged: {problems:?}"))
        }
    }

    /// Bytes received and bytes sent so far (by the completions this side gave).
    #[must_use]
    pub const fn totals(&self) -> (u64, u64) {
        (self.received, self.sent)
    }

    /// The core's `bytes_sent` counter.
    #[must_use]
    pub fn bytes_sent(&self) -> u64 {
        self.client.stats().snapshot().bytes_sent
    }

    /// Detaches (closing the listener and the connection), completes what is pending as
    /// cancelled or closed, and cleans the binding up.
    ///
    /// # Errors
    /// The detach did not complete, a block leaked, or the core logged a problem.
    pub fn teardown(mut self) -> Result<(), EchoError> {
        self.torn_down = true;
        let binding = self.binding;
        let status = core_teardown(|| {
            // SAFETY: called once, with the live binding.
            let status = unsafe { binding.detach() };
            self.wsk.run_work_items();
            status
        });
        while let Some(pending) = self.wsk.take_any() {
            let completion = match pending.request {
                Request::Open => Completion::Created(Err(NtStatus::CANCELLED)),
                Request::SetOption(_) => Completion::OptionSet(Err(NtStatus::CANCELLED)),
                Request::Bind => Completion::Bound(Err(NtStatus::CANCELLED)),
                Request::Receive(_) => Completion::Received(Err(NtStatus::CANCELLED)),
                Request::Send(_) => Completion::Sent(Err(NtStatus::CANCELLED)),
                Request::Disconnect => Completion::Disconnected(Err(NtStatus::CANCELLED)),
                Request::Close => Completion::Closed,
            };
            let token = pending.token;
            core_teardown(|| {
                // SAFETY: one completion per pending operation, with its token.
                unsafe { token.complete(completion) };
                self.wsk.run_work_items();
            });
        }
        let completions = self.wsk.detach_completions.load(Ordering::Relaxed);
        match (status, completions) {
            (NtStatus::PENDING, 1) | (NtStatus::SUCCESS, 0) => {}
            _ => {
                return fail(format!(
                    "detach returned {status}, {completions} completion(s)"
                ));
            }
        }
        // SAFETY: the detach completed; the token is not used afterwards.
        let last = core_teardown(|| unsafe { binding.cleanup() });
        if !last || self.client.live_bindings() != 0 {
            return fail("a binding is still live after cleanup");
        }
        let live = self.client.platform().live_blocks();
        if live != 0 {
            return fail(format!("{live} block(s) leaked"));
        }
        self.check_clean()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        if !self.torn_down {
            // A failed run: the client cannot be dropped under a live binding, so leak it.
            let client = std::mem::replace(
                &mut self.client,
                Box::new(Client::new(
                    ConfigBuilder::new().build(),
                    ECHO,
                    BenchPlatform::default(),
                )),
            );
            std::mem::forget(client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_buffer_cycles_echo_every_byte_and_tear_down_clean() {
        let mut echo = Echo::start(4096).unwrap();
        for _ in 0..10 {
            echo.cycle(usize::MAX).unwrap();
        }
        assert_eq!(echo.totals(), (40960, 40960));
        assert_eq!(echo.bytes_sent(), 40960);
        echo.teardown().unwrap();
    }

    #[test]
    fn each_completion_of_a_cycle_schedules_one_run() {
        let mut echo = Echo::start(4096).unwrap();
        let before = echo.wsk.schedules.load(Ordering::Relaxed);
        for _ in 0..10 {
            echo.cycle(usize::MAX).unwrap();
        }
        assert_eq!(echo.wsk.schedules.load(Ordering::Relaxed) - before, 20);
        echo.teardown().unwrap();
    }

    #[test]
    fn partial_receives_wrap_around_the_ring() {
        let mut echo = Echo::start(4096).unwrap();
        for _ in 0..20 {
            echo.cycle(1000).unwrap();
        }
        // 4 receives of 1000, then the 96 bytes left before the end of the buffer, ...
        let (received, sent) = echo.totals();
        assert_eq!(received, sent);
        assert!(
            received < 20_000,
            "a receive at the end of the ring is shorter"
        );
        assert_eq!(echo.bytes_sent(), received);
        echo.teardown().unwrap();
    }

    #[test]
    fn a_missing_operation_is_an_error() {
        let mut echo = Echo::start(4096).unwrap();
        let receive = echo.wsk.take(OpKind::Receive).unwrap();
        let error = echo.cycle(100).unwrap_err();
        assert!(error.0.contains("no Receive pending"), "{error}");
        lock(&echo.wsk.pending).push(receive);
        echo.teardown().unwrap();
    }

    #[test]
    fn double_functions_are_told_from_core_functions() {
        assert!(is_bench_double(
            "<wskecho_bench::echo_step::BenchProvider as wsk_client::provider::Provider>::send"
        ));
        assert!(is_bench_double(
            "core::ptr::drop_in_place<wskecho_bench::echo_step::BenchProvider>"
        ));
        assert!(!is_bench_double("wskecho_bench::echo_step::core_step_sent"));
        assert!(!is_bench_double("wsk_client::socket::Socket<P>::run"));
    }
}
