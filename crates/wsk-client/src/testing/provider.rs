//! A [`Provider`] test double: records every call, keeps operations pending until the test
//! completes them (in any order), and checks the contract of `provider.rs` on every call.
//!
//! Work items: [`Provider::schedule`] queues the token; the queue runs when the outermost
//! callback the test delivered (a completion, an accept event, the attach, the detach) has
//! returned, as a worker thread would run it. A call into WSK made while a completion or an
//! accept event is executing is a violation: the driver's rule, after "Using IRPs with Winsock
//! Kernel Functions" (a client "should not call new WSK functions in the context of the
//! `IoCompletion` routine") and `WskCloseSocket` waiting for the socket's event callbacks.
//!
//! The binding's timer: [`Provider::arm_timer`] records the arm; the test fires it with
//! [`World::fire_timer`], which runs the tick as a work item runs (outside every callback).
//! Arming an armed timer, arming after the detach completed, and a detach completing with the
//! timer armed are violations.
//!
//! Checked: no call into WSK after the detach completed; no call on a socket whose close was
//! issued (other than none at all) or completed; at most one outstanding operation of each
//! kind per socket; `close` at most once; `detach_complete` exactly once and only after a
//! `STATUS_PENDING` detach; accept events enabled before any socket; socket I/O resources
//! dropped only with nothing outstanding and after the close completed. Violations are
//! collected and asserted by [`World::assert_finished`] (or at once by the test).
#![allow(
    clippy::missing_errors_doc,
    clippy::needless_pass_by_value,
    clippy::struct_excessive_bools
)] // test code

extern crate std;

use ::core::{net::SocketAddr, ops::Range, ptr::NonNull};
use std::{
    collections::VecDeque,
    format,
    string::String,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    vec::Vec,
};

use crate::{
    binding::BindingRef,
    client::Client,
    provider::{Completion, OpKind, Provider, SocketKind, SocketOption},
    socket::SocketRef,
    testing::TestPlatform,
    wsk_version::WskVersionRange,
};
use wsk_primitives::status::NtStatus;

/// The entry [`World::timeline`] has where a work item started running.
pub const WORK_ITEM: &str = "work_item";
/// The entry [`World::timeline`] has where the binding's tick started running.
pub const TICK: &str = "tick";

std::thread_local! {
    /// Completions and accept events executing on this thread (nested: an inline completion).
    static CALLBACKS: ::core::cell::Cell<usize> = const { ::core::cell::Cell::new(0) };
    /// This thread is running work items.
    static RUNNING_WORK: ::core::cell::Cell<bool> = const { ::core::cell::Cell::new(false) };
}

/// A socket handle of the test WSK.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TestSocket(pub u32);

/// A call into the test WSK that completes later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `open_listener(local)`.
    Open(SocketAddr),
    /// `set_option(Ipv6Only)`.
    SetIpv6Only,
    /// `set_option(NoDelay)`.
    SetNoDelay,
    /// `bind(local)`.
    Bind(SocketAddr),
    /// `receive(range)`.
    Receive(Range<usize>),
    /// `send(range)`.
    Send(Range<usize>),
    /// `disconnect`.
    Disconnect,
    /// `close`.
    Close,
}

impl Call {
    /// The kind of outstanding operation it is.
    #[must_use]
    pub const fn kind(&self) -> OpKind {
        match self {
            Self::Open(_) | Self::SetIpv6Only | Self::SetNoDelay | Self::Bind(_) => OpKind::Setup,
            Self::Receive(_) => OpKind::Receive,
            Self::Send(_) => OpKind::Send,
            Self::Disconnect => OpKind::Disconnect,
            Self::Close => OpKind::Close,
        }
    }

    /// The completion WSK gives an operation cancelled by close.
    #[must_use]
    pub const fn cancelled(&self) -> Completion<TestSocket> {
        self.failed(NtStatus::CANCELLED)
    }

    /// The completion of the operation failing with `s` (a close cannot fail: it completes).
    #[must_use]
    pub const fn failed(&self, s: NtStatus) -> Completion<TestSocket> {
        match self {
            Self::Open(_) => Completion::Created(Err(s)),
            Self::SetIpv6Only | Self::SetNoDelay => Completion::OptionSet(Err(s)),
            Self::Bind(_) => Completion::Bound(Err(s)),
            Self::Receive(_) => Completion::Received(Err(s)),
            Self::Send(_) => Completion::Sent(Err(s)),
            Self::Disconnect => Completion::Disconnected(Err(s)),
            Self::Close => Completion::Closed,
        }
    }
}

/// An outstanding operation.
#[derive(Clone, Debug)]
pub struct Op {
    /// The socket I/O (index into the world's records).
    pub io: usize,
    /// The socket, if it has one.
    pub socket: Option<TestSocket>,
    /// What was called.
    pub call: Call,
    token: SocketRef<TestProvider>,
}

#[derive(Debug)]
struct IoRecord {
    kind: SocketKind,
    socket: Option<TestSocket>,
    buffer: Option<(usize, usize)>,
    outstanding: Vec<OpKind>,
    executing: bool,
    close_issued: bool,
    closed: bool,
    dropped: bool,
    bound: bool,
    /// `IPV6_V6ONLY` was set (its `SetIpv6Only` completed successfully).
    ipv6_only: bool,
    /// `TCP_NODELAY` was set (its `SetNoDelay` completed successfully).
    no_delay: bool,
    /// A receive was made on the socket.
    received: bool,
    token: Option<SocketRef<TestProvider>>,
}

/// How the test WSK completes operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Everything stays pending until the test completes it.
    Pending,
    /// Open, bind, send (in full), disconnect and close complete inline, before the call
    /// returns; receives stay pending.
    Inline,
    /// As `Inline`, and receives too complete inline with one byte each, this many in all;
    /// then they stay pending (a peer whose data is always there already).
    InlineReceives(usize),
}

#[derive(Debug)]
struct State {
    mode: Mode,
    ios: Vec<IoRecord>,
    pending: Vec<Op>,
    calls: Vec<String>,
    next_socket: u32,
    accept_events_enabled: bool,
    enable_result: Result<(), NtStatus>,
    io_failure: Option<NtStatus>,
    attach_failure: Option<NtStatus>,
    binding: Option<usize>,
    detach_status: Option<NtStatus>,
    detach_completions: usize,
    cleanups: usize,
    cleanup_in_detach_complete: bool,
    client: usize,
    violations: Vec<String>,
    /// The socket of the accept event executing now, until its out-parameters are written.
    accepting: Option<TestSocket>,
    /// Work items queued by `schedule`, not yet run.
    scheduled: VecDeque<(usize, SocketRef<TestProvider>)>,
    /// Work items run so far.
    work_items_run: usize,
    /// The armed timer: its delay and binding context.
    timer: Option<(u32, usize)>,
    /// The timer expired and its tick is due (a DPC queued): cancelling fails.
    timer_due: Option<usize>,
    /// Times the timer was armed.
    timer_arms: usize,
}

/// The test WSK subsystem + NMR (shared by the providers of successive bindings).
#[derive(Debug)]
pub struct World {
    state: Mutex<State>,
}

impl World {
    /// A fresh world.
    #[must_use]
    pub fn new(mode: Mode) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                mode,
                ios: Vec::new(),
                pending: Vec::new(),
                calls: Vec::new(),
                next_socket: 0,
                accept_events_enabled: false,
                enable_result: Ok(()),
                io_failure: None,
                attach_failure: None,
                binding: None,
                detach_status: None,
                detach_completions: 0,
                cleanups: 0,
                cleanup_in_detach_complete: false,
                client: 0,
                violations: Vec::new(),
                accepting: None,
                scheduled: VecDeque::new(),
                work_items_run: 0,
                timer: None,
                timer_due: None,
                timer_arms: 0,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn violation(state: &mut State, what: String) {
        state.violations.push(what);
    }

    /// Runs `f` as WSK runs a callback into the driver (an `IoCompletion` routine, an accept
    /// event): no WSK call may be made inside it. Then runs the work items scheduled meanwhile.
    fn callback<R>(&self, f: impl FnOnce() -> R) -> R {
        CALLBACKS.with(|c| c.set(c.get() + 1));
        let result = f();
        CALLBACKS.with(|c| c.set(c.get() - 1));
        self.run_work_items();
        result
    }

    /// Runs `f` as an NMR callback into the driver (attach, detach): WSK calls are allowed
    /// there. Then runs the work items scheduled meanwhile.
    fn nmr_callback<R>(&self, f: impl FnOnce() -> R) -> R {
        let result = f();
        self.run_work_items();
        result
    }

    /// Runs the queued work items, as a worker thread does, unless a callback or a work item
    /// is executing on this thread (then the outermost one runs them when it returns).
    fn run_work_items(&self) {
        if CALLBACKS.with(::core::cell::Cell::get) > 0 || RUNNING_WORK.with(|r| r.replace(true)) {
            return;
        }
        loop {
            let next = {
                let mut s = self.state();
                let next = s.scheduled.pop_front();
                if next.is_some() {
                    s.work_items_run += 1;
                }
                next
            };
            let Some((_, token)) = next else { break };
            self.state().calls.push(WORK_ITEM.into());
            // SAFETY: one run per `schedule`, outside every callback (`CALLBACKS` is 0).
            unsafe { token.run_scheduled() };
        }
        RUNNING_WORK.with(|r| r.set(false));
    }

    /// Work items run so far.
    #[must_use]
    pub fn work_items_run(&self) -> usize {
        self.state().work_items_run
    }

    /// The armed timer's delay in milliseconds, if it is armed.
    #[must_use]
    pub fn timer(&self) -> Option<u32> {
        self.state().timer.map(|(delay, _)| delay)
    }

    /// Times the timer was armed so far.
    #[must_use]
    pub fn timer_arms(&self) -> usize {
        self.state().timer_arms
    }

    /// The armed timer expires, but its tick does not run yet (its DPC or work item is
    /// queued): from now on it cannot be cancelled. `false` if it was not armed.
    pub fn expire_timer(&self) -> bool {
        let mut s = self.state();
        let Some((_, context)) = s.timer.take() else {
            return false;
        };
        s.timer_due = Some(context);
        true
    }

    /// The armed (or expired) timer's tick runs, as the timer's work item would (outside every
    /// callback), then the work items it scheduled. `false` if the timer was not armed.
    pub fn fire_timer(&self) -> bool {
        let context = {
            let mut s = self.state();
            let due = s.timer_due.take();
            match due.or_else(|| s.timer.take().map(|(_, context)| context)) {
                Some(context) => context,
                None => return false,
            }
        };
        self.state().calls.push(TICK.into());
        // SAFETY: the context the timer was armed with; one tick per arm.
        let binding = unsafe {
            BindingRef::<TestProvider>::from_context(context as *mut ::core::ffi::c_void)
        };
        // SAFETY: as above.
        self.nmr_callback(|| unsafe { binding.tick() });
        true
    }

    /// Fires the timer `n` times (each tick arms the next); `false` if it was not armed at
    /// some point.
    pub fn fire_timer_times(&self, n: usize) -> bool {
        (0..n).all(|_| self.fire_timer())
    }

    /// Sets the completion mode.
    pub fn set_mode(&self, mode: Mode) {
        self.state().mode = mode;
    }

    /// Makes `enable_accept_events` fail.
    pub fn fail_enable_accept_events(&self, status: NtStatus) {
        self.state().enable_result = Err(status);
    }

    /// Makes `new_socket_io` fail (`None`: succeed again).
    pub fn fail_socket_io(&self, status: Option<NtStatus>) {
        self.state().io_failure = status;
    }

    /// Makes the next `NmrClientAttachProvider` fail.
    pub fn fail_attach(&self, status: NtStatus) {
        self.state().attach_failure = Some(status);
    }

    /// Runs cleanup inside `detach_complete`, as NMR may.
    pub fn cleanup_inside_detach_complete(&self) {
        self.state().cleanup_in_detach_complete = true;
    }

    // ---- NMR ----

    /// `ClientAttachProvider` for a provider supporting `versions`.
    ///
    /// # Safety
    /// `client` stays in place until every binding is freed.
    pub unsafe fn attach(
        self: &Arc<Self>,
        client: &Client<TestProvider>,
        versions: WskVersionRange,
    ) -> NtStatus {
        {
            let mut s = self.state();
            s.client = ::core::ptr::from_ref(client) as usize;
            s.detach_status = None;
            s.detach_completions = 0;
            s.accept_events_enabled = false;
        }
        let world = Arc::clone(self);
        // SAFETY: forwarded.
        self.nmr_callback(|| unsafe {
            client.attach_provider(versions, |binding| {
                let mut s = world.state();
                if let Some(status) = s.attach_failure.take() {
                    return Err(status);
                }
                s.binding = Some(binding.as_context() as usize);
                drop(s);
                Ok(TestProvider {
                    world: Arc::clone(&world),
                })
            })
        })
    }

    /// `ClientAttachProvider` for a WSK 1.0 provider.
    ///
    /// # Safety
    /// As [`World::attach`].
    pub unsafe fn attach_1_0(self: &Arc<Self>, client: &Client<TestProvider>) -> NtStatus {
        // SAFETY: forwarded.
        unsafe {
            self.attach(
                client,
                WskVersionRange {
                    highest: 0x0100,
                    lowest: 0x0100,
                },
            )
        }
    }

    fn binding(&self) -> BindingRef<TestProvider> {
        let context = self.state().binding.unwrap_or(0);
        // SAFETY: the context the core attached with.
        unsafe { BindingRef::from_context(context as *mut ::core::ffi::c_void) }
    }

    /// `ClientDetachProvider`.
    pub fn detach(&self) -> NtStatus {
        // SAFETY: the binding attached and not yet cleaned up (tests call this once).
        let status = self.nmr_callback(|| unsafe { self.binding().detach() });
        let mut s = self.state();
        if status != NtStatus::SUCCESS && status != NtStatus::PENDING {
            Self::violation(&mut s, format!("detach returned {status}"));
        }
        if status == NtStatus::SUCCESS && s.detach_completions > 0 {
            Self::violation(
                &mut s,
                "detach returned SUCCESS after detach_complete".into(),
            );
        }
        s.detach_status = Some(status);
        status
    }

    /// Whether the client's detach is complete.
    #[must_use]
    pub fn detached(&self) -> bool {
        let s = self.state();
        s.detach_status == Some(NtStatus::SUCCESS) || s.detach_completions > 0
    }

    /// `ClientCleanupBindingContext`: returns what the core returned.
    pub fn cleanup(&self) -> bool {
        {
            let mut s = self.state();
            if !(s.detach_status == Some(NtStatus::SUCCESS) || s.detach_completions > 0) {
                Self::violation(&mut s, "cleanup before the detach completed".into());
            }
            s.cleanups += 1;
        }
        let binding = self.binding();
        self.state().binding = None;
        // SAFETY: detach complete; cleanup once.
        unsafe { binding.cleanup() }
    }

    // ---- WSK side ----

    /// A new accepted-connection handle.
    pub fn new_socket(&self) -> TestSocket {
        let mut s = self.state();
        s.next_socket += 1;
        TestSocket(s.next_socket)
    }

    /// Pending operations.
    #[must_use]
    pub fn pending(&self) -> Vec<Op> {
        self.state().pending.clone()
    }

    /// Number of pending operations.
    #[must_use]
    pub fn pending_count(&self) -> usize {
        self.state().pending.len()
    }

    /// Takes the first pending operation `filter` accepts.
    pub fn take(&self, filter: impl Fn(&Op) -> bool) -> Option<Op> {
        let mut s = self.state();
        let index = s.pending.iter().position(filter)?;
        Some(s.pending.remove(index))
    }

    /// Takes the pending operation of kind `call` on I/O `io`.
    pub fn take_on(&self, io: usize, matches: impl Fn(&Call) -> bool) -> Option<Op> {
        self.take(|op| op.io == io && matches(&op.call))
    }

    /// Completes `op` (taken from the pending list) with `completion`.
    pub fn complete(&self, op: Op, completion: Completion<TestSocket>) {
        {
            let mut s = self.state();
            let Some(record) = s.ios.get_mut(op.io) else {
                return;
            };
            if record.dropped {
                Self::violation(
                    &mut s,
                    format!("{:?} completed after its socket was freed", op.call),
                );
                return;
            }
            if let Some(i) = record.outstanding.iter().position(|k| *k == op.call.kind()) {
                record.outstanding.swap_remove(i);
            }
            if op.call == Call::Close {
                record.closed = true;
            }
            if matches!(completion, Completion::Bound(Ok(()))) {
                record.bound = true;
            }
            match (&op.call, completion) {
                (Call::SetIpv6Only, Completion::OptionSet(Ok(()))) => record.ipv6_only = true,
                (Call::SetNoDelay, Completion::OptionSet(Ok(()))) => record.no_delay = true,
                _ => {}
            }
        }
        // SAFETY: the operation's token, completed once.
        self.callback(|| unsafe { op.token.complete(completion) });
    }

    /// Completes `op` successfully: a new socket for Open, full sends, nothing received (use
    /// [`World::deliver`] for data).
    pub fn succeed(&self, op: Op) {
        let completion = match &op.call {
            Call::Open(_) => Completion::Created(Ok(self.new_socket())),
            Call::SetIpv6Only | Call::SetNoDelay => Completion::OptionSet(Ok(())),
            Call::Bind(_) => Completion::Bound(Ok(())),
            Call::Receive(_) => Completion::Received(Ok(0)),
            Call::Send(range) => Completion::Sent(Ok(range.len())),
            Call::Disconnect => Completion::Disconnected(Ok(())),
            Call::Close => Completion::Closed,
        };
        self.complete(op, completion);
    }

    /// Completes receive `op` with `data` written into the connection's buffer. Returns how
    /// many bytes fit (the rest is not delivered).
    pub fn deliver(&self, op: Op, data: &[u8]) -> usize {
        let Call::Receive(range) = op.call.clone() else {
            panic!("not a receive: {op:?}")
        };
        let n = data.len().min(range.len());
        let buffer = self.state().ios.get(op.io).and_then(|r| r.buffer);
        let (addr, len) = buffer.expect("connection buffer");
        assert!(range.end <= len);
        // SAFETY: the range is inside the buffer the core handed out.
        let dst = unsafe { (addr as *mut u8).add(range.start) };
        // SAFETY: `n <= range.len()` bytes, owned by this receive until it completes.
        unsafe { ::core::ptr::copy_nonoverlapping(data.as_ptr(), dst, n) };
        self.complete(op, Completion::Received(Ok(n)));
        n
    }

    /// The bytes a send operation covers (what WSK would transmit).
    #[must_use]
    pub fn send_bytes(&self, op: &Op, n: usize) -> Vec<u8> {
        let Call::Send(range) = op.call.clone() else {
            panic!("not a send: {op:?}")
        };
        let (addr, len) = self
            .state()
            .ios
            .get(op.io)
            .and_then(|r| r.buffer)
            .expect("connection buffer");
        assert!(range.end <= len);
        let n = n.min(range.len());
        // SAFETY: the range is inside the buffer the core handed out.
        let src = unsafe { (addr as *const u8).add(range.start) };
        // SAFETY: `n <= range.len()` bytes, owned by this send until it completes.
        unsafe { ::core::slice::from_raw_parts(src, n) }.to_vec()
    }

    /// Completes everything pending as WSK does once sockets are closed: operations on sockets
    /// being closed are cancelled before the close completes; any other operation fails with
    /// `STATUS_CONNECTION_ABORTED`. Returns the number completed.
    pub fn drain(&self) -> usize {
        for done in 0..10_000 {
            let next = {
                let s = self.state();
                let closing = |op: &Op| s.ios.get(op.io).is_some_and(|r| r.close_issued);
                s.pending
                    .iter()
                    .position(|op| closing(op) && op.call != Call::Close)
                    .or_else(|| s.pending.iter().position(|op| op.call == Call::Close))
                    .or_else(|| (!s.pending.is_empty()).then_some(0))
            };
            let Some(index) = next else { return done };
            let op = self.state().pending.remove(index);
            let completion = if self.state().ios.get(op.io).is_some_and(|r| r.close_issued) {
                op.call.cancelled()
            } else {
                op.call.failed(NtStatus::CONNECTION_ABORTED)
            };
            self.complete(op, completion);
        }
        panic!("operations keep coming during the drain");
    }

    /// Every call made so far, in order.
    #[must_use]
    pub fn calls(&self) -> Vec<String> {
        self.timeline()
            .into_iter()
            .filter(|c| c != WORK_ITEM)
            .collect()
    }

    /// Every call made so far, in order, with a [`WORK_ITEM`] entry where a work item started.
    #[must_use]
    pub fn timeline(&self) -> Vec<String> {
        self.state().calls.clone()
    }

    /// Number of `detach_complete` calls.
    #[must_use]
    pub fn detach_completions(&self) -> usize {
        self.state().detach_completions
    }

    /// Contract violations so far.
    #[must_use]
    pub fn violations(&self) -> Vec<String> {
        self.state().violations.clone()
    }

    /// Socket I/O records not yet dropped.
    #[must_use]
    pub fn live_ios(&self) -> usize {
        self.state().ios.iter().filter(|r| !r.dropped).count()
    }

    /// Final checks: no violation, nothing pending, every socket I/O dropped, every socket
    /// closed.
    pub fn assert_finished(&self) {
        let s = self.state();
        assert!(
            s.violations.is_empty(),
            "contract violations: {:#?}",
            s.violations
        );
        assert!(
            s.pending.is_empty(),
            "operations never completed: {:?}",
            s.pending
        );
        assert!(s.scheduled.is_empty(), "work items never run");
        assert!(
            s.timer.is_none() && s.timer_due.is_none(),
            "the timer is still armed"
        );
        for (i, r) in s.ios.iter().enumerate() {
            assert!(r.dropped, "socket I/O {i} ({:?}) never freed", r.kind);
            assert!(
                r.socket.is_none()
                    || r.closed
                    || r.kind == SocketKind::Connection && r.close_issued,
                "socket of I/O {i} never closed"
            );
        }
    }

    /// I/O index of each connection, in creation order.
    #[must_use]
    pub fn connection_ios(&self) -> Vec<usize> {
        let s = self.state();
        s.ios
            .iter()
            .enumerate()
            .filter(|(_, r)| r.kind == SocketKind::Connection)
            .map(|(i, _)| i)
            .collect()
    }

    /// Tokens of listeners that are bound and not closing.
    #[must_use]
    pub fn listeners(&self) -> Vec<SocketRef<TestProvider>> {
        let s = self.state();
        s.ios
            .iter()
            .filter(|r| r.bound && !r.close_issued)
            .filter_map(|r| r.token)
            .collect()
    }

    /// Delivers an accept event with a new connection from `remote` to `listener`.
    pub fn accept(
        &self,
        listener: SocketRef<TestProvider>,
        remote: Option<SocketAddr>,
    ) -> Result<SocketRef<TestProvider>, NtStatus> {
        let socket = self.new_socket();
        self.accept_with(listener, Some(socket), remote)
    }

    /// Delivers an accept event (`None`: the listener stopped working).
    pub fn accept_with(
        &self,
        listener: SocketRef<TestProvider>,
        socket: Option<TestSocket>,
        remote: Option<SocketAddr>,
    ) -> Result<SocketRef<TestProvider>, NtStatus> {
        {
            let mut s = self.state();
            let closed = s
                .ios
                .iter()
                .any(|r| !r.dropped && r.token == Some(listener) && r.closed);
            if closed {
                Self::violation(
                    &mut s,
                    "accept event after the listener's close completed".into(),
                );
            }
            s.calls.push(format!("accept_event({socket:?})"));
            s.accepting = socket;
        }
        // As the kernel's WskAcceptEvent does: the core decides, the out-parameters are
        // written (here: `accepting` cleared), then the connection starts.
        self.callback(|| {
            // SAFETY: a listener token, its close not completed (checked above).
            let result = unsafe { listener.accept_event(socket, remote) };
            self.state().accepting = None;
            result.map(|accepted| {
                let token = accepted.token();
                accepted.start();
                token
            })
        })
    }

    fn enter(
        &self,
        io: &TestIo,
        socket: Option<TestSocket>,
        call: &Call,
        token: SocketRef<TestProvider>,
    ) -> Option<Op> {
        let mut s = self.state();
        s.calls.push(format!("{call:?}"));
        if CALLBACKS.with(::core::cell::Cell::get) > 0 {
            Self::violation(
                &mut s,
                format!("{call:?} inside a completion routine or accept event"),
            );
        }
        if socket.is_some() && s.accepting == socket {
            Self::violation(
                &mut s,
                format!(
                    "{call:?} on the accepted socket before its accept event wrote the out-parameters"
                ),
            );
        }
        if s.detach_completions > 0 || s.detach_status == Some(NtStatus::SUCCESS) {
            Self::violation(&mut s, format!("{call:?} after the detach completed"));
        }
        let mode = s.mode;
        let record = s.ios.get_mut(io.id)?;
        let mut problems = Vec::new();
        if record.executing {
            problems.push(format!(
                "{call:?} while another call on the socket is executing"
            ));
        }
        if record.closed {
            problems.push(format!("{call:?} on a socket whose close completed"));
        } else if record.close_issued {
            problems.push(format!("{call:?} on a socket being closed"));
        }
        match (record.socket, socket) {
            (None, Some(sock)) => record.socket = Some(sock),
            (Some(a), Some(b)) if a != b => {
                problems.push(format!("{call:?} with socket {b:?} on the I/O of {a:?}"));
            }
            _ => {}
        }
        if matches!(call, Call::Bind(local) if local.is_ipv6()) && !record.ipv6_only {
            problems.push(format!(
                "{call:?}: an IPv6 listener bound without IPV6_V6ONLY (WSK's default is not documented)"
            ));
        }
        match call {
            Call::SetIpv6Only if record.kind != SocketKind::Listener => {
                problems.push("IPV6_V6ONLY set on a connection".into());
            }
            Call::SetNoDelay if record.kind != SocketKind::Connection => {
                problems.push("TCP_NODELAY set on a listener".into());
            }
            Call::SetNoDelay if record.received => {
                problems.push("TCP_NODELAY set after the connection's first receive".into());
            }
            Call::Receive(_) => record.received = true,
            _ => {}
        }
        let kind = call.kind();
        if record.outstanding.contains(&kind) {
            problems.push(format!(
                "{call:?}: a {kind:?} operation is already outstanding"
            ));
        }
        if *call == Call::Close {
            record.close_issued = true;
        }
        record.outstanding.push(kind);
        record.executing = true;
        record.token = Some(token);
        let op = Op {
            io: io.id,
            socket,
            call: call.clone(),
            token,
        };
        s.pending.push(op.clone());
        for p in problems {
            Self::violation(&mut s, p);
        }
        let inline = match (mode, call) {
            (Mode::Inline, Call::Receive(_)) | (Mode::Pending, _) => false,
            (Mode::InlineReceives(left), Call::Receive(_)) => {
                if left > 0 {
                    s.mode = Mode::InlineReceives(left - 1);
                }
                left > 0
            }
            (Mode::Inline | Mode::InlineReceives(_), _) => true,
        };
        if inline {
            let index = s.pending.len() - 1;
            s.pending.remove(index);
            Some(op)
        } else {
            None
        }
    }

    fn leave(&self, io: &TestIo, inline: Option<Op>) {
        if let Some(op) = inline {
            // Complete while the call is still "executing", as an inline IRP completion does.
            if matches!(op.call, Call::Receive(_)) {
                self.deliver(op, b"x");
            } else {
                self.succeed(op);
            }
        }
        if let Some(record) = self.state().ios.get_mut(io.id) {
            record.executing = false;
        }
    }

    fn call(
        &self,
        io: &TestIo,
        socket: Option<TestSocket>,
        call: &Call,
        token: SocketRef<TestProvider>,
    ) {
        let inline = self.enter(io, socket, call, token);
        self.leave(io, inline);
    }
}

/// Per-socket I/O resources of the test WSK.
#[derive(Debug)]
pub struct TestIo {
    id: usize,
    world: Arc<World>,
}

impl Drop for TestIo {
    fn drop(&mut self) {
        let mut s = self.world.state();
        let queued = s.scheduled.iter().any(|(io, _)| *io == self.id);
        let Some(record) = s.ios.get_mut(self.id) else {
            return;
        };
        let problem = if record.dropped {
            Some("socket I/O dropped twice".into())
        } else if !record.outstanding.is_empty() {
            Some(format!(
                "socket I/O dropped with {:?} outstanding",
                record.outstanding
            ))
        } else if record.executing {
            Some("socket I/O dropped while a call on it is executing".into())
        } else if queued {
            Some("socket I/O dropped while its work item is queued".into())
        } else if record.socket.is_some() && !record.closed {
            Some("socket I/O dropped before the socket's close completed".into())
        } else {
            None
        };
        record.dropped = true;
        if let Some(p) = problem {
            World::violation(&mut s, p);
        }
    }
}

/// The provider of one test binding.
#[derive(Debug)]
pub struct TestProvider {
    world: Arc<World>,
}

impl Provider for TestProvider {
    type Socket = TestSocket;
    type SocketIo = TestIo;
    type Platform = TestPlatform;
    type DetachHandle = Arc<World>;

    fn new_socket_io(
        &self,
        kind: SocketKind,
        buffer: Option<NonNull<[u8]>>,
    ) -> Result<TestIo, NtStatus> {
        let mut s = self.world.state();
        if let Some(status) = s.io_failure {
            return Err(status);
        }
        if (kind == SocketKind::Connection) != buffer.is_some() {
            World::violation(
                &mut s,
                format!("{kind:?} socket I/O with buffer {buffer:?}"),
            );
        }
        s.ios.push(IoRecord {
            kind,
            socket: None,
            buffer: buffer.map(|b| (b.cast::<u8>().as_ptr() as usize, b.len())),
            outstanding: Vec::new(),
            executing: false,
            close_issued: false,
            closed: false,
            dropped: false,
            bound: false,
            ipv6_only: false,
            no_delay: false,
            received: false,
            token: None,
        });
        let id = s.ios.len() - 1;
        drop(s);
        Ok(TestIo {
            id,
            world: Arc::clone(&self.world),
        })
    }

    unsafe fn schedule(this: NonNull<Self>, io: NonNull<TestIo>, token: SocketRef<Self>) {
        // SAFETY: both valid at entry (caller); copied out before the run is queued.
        let world = Arc::clone(unsafe { &this.as_ref().world });
        // SAFETY: as above.
        let io = unsafe { io.as_ref() }.id;
        let mut s = world.state();
        if s.scheduled.iter().any(|(queued, _)| *queued == io) {
            World::violation(&mut s, "a socket's work item queued twice".into());
        }
        s.scheduled.push_back((io, token));
    }

    fn enable_accept_events(&self) -> Result<(), NtStatus> {
        let mut s = self.world.state();
        s.calls.push("enable_accept_events".into());
        if s.detach_completions > 0 {
            World::violation(
                &mut s,
                "enable_accept_events after the detach completed".into(),
            );
        }
        if s.ios
            .iter()
            .any(|r| !r.dropped && (r.socket.is_some() || !r.outstanding.is_empty()))
        {
            World::violation(
                &mut s,
                "accept events enabled after a socket was created".into(),
            );
        }
        if s.accept_events_enabled {
            World::violation(&mut s, "accept events enabled twice".into());
        }
        s.accept_events_enabled = s.enable_result.is_ok();
        s.enable_result
    }

    fn open_listener(&self, io: &TestIo, local: SocketAddr, token: SocketRef<Self>) {
        {
            let mut s = self.world.state();
            if !s.accept_events_enabled {
                World::violation(
                    &mut s,
                    "socket created before accept events were enabled".into(),
                );
            }
        }
        self.world.call(io, None, &Call::Open(local), token);
    }

    fn set_option(
        &self,
        io: &TestIo,
        socket: TestSocket,
        option: SocketOption,
        token: SocketRef<Self>,
    ) {
        let call = match option {
            SocketOption::Ipv6Only => Call::SetIpv6Only,
            SocketOption::NoDelay => Call::SetNoDelay,
        };
        self.world.call(io, Some(socket), &call, token);
    }

    fn bind(&self, io: &TestIo, socket: TestSocket, local: SocketAddr, token: SocketRef<Self>) {
        self.world.call(io, Some(socket), &Call::Bind(local), token);
    }

    fn receive(
        &self,
        io: &TestIo,
        socket: TestSocket,
        range: Range<usize>,
        token: SocketRef<Self>,
    ) {
        self.world
            .call(io, Some(socket), &Call::Receive(range), token);
    }

    fn send(&self, io: &TestIo, socket: TestSocket, range: Range<usize>, token: SocketRef<Self>) {
        self.world.call(io, Some(socket), &Call::Send(range), token);
    }

    fn disconnect(&self, io: &TestIo, socket: TestSocket, token: SocketRef<Self>) {
        self.world.call(io, Some(socket), &Call::Disconnect, token);
    }

    fn close(&self, io: &TestIo, socket: TestSocket, token: SocketRef<Self>) {
        let inline = {
            let s = self.world.state();
            s.ios.get(io.id).map(|r| r.executing)
        };
        if inline == Some(true) {
            let mut s = self.world.state();
            World::violation(
                &mut s,
                "close while a call on the socket is executing".into(),
            );
        }
        self.world.call(io, Some(socket), &Call::Close, token);
    }

    fn arm_timer(&self, delay_ms: u32, binding: BindingRef<Self>) {
        let mut s = self.world.state();
        if s.timer.is_some() || s.timer_due.is_some() {
            World::violation(&mut s, "the timer armed while armed or due".into());
        }
        if s.detach_completions > 0 {
            World::violation(&mut s, "the timer armed after the detach completed".into());
        }
        s.timer = Some((delay_ms, binding.as_context() as usize));
        s.timer_arms += 1;
    }

    fn cancel_timer(&self) -> bool {
        let mut s = self.world.state();
        if s.detach_completions > 0 {
            World::violation(
                &mut s,
                "the timer cancelled after the detach completed".into(),
            );
        }
        s.timer.take().is_some()
    }

    fn detach_handle(&self) -> Arc<World> {
        Arc::clone(&self.world)
    }

    fn detach_complete(world: Arc<World>) {
        let (cleanup, client) = {
            let mut s = world.state();
            s.calls.push("detach_complete".into());
            s.detach_completions += 1;
            if s.detach_completions > 1 {
                World::violation(&mut s, "detach_complete called twice".into());
            }
            if s.detach_status == Some(NtStatus::SUCCESS) {
                World::violation(
                    &mut s,
                    "detach_complete after detach returned SUCCESS".into(),
                );
            }
            if s.ios.iter().any(|r| r.executing) {
                World::violation(&mut s, "detach_complete while a call is executing".into());
            }
            if s.timer.is_some() || s.timer_due.is_some() {
                World::violation(&mut s, "detach_complete with the timer armed or due".into());
            }
            if CALLBACKS.with(::core::cell::Cell::get) > 0 {
                // The kernel's completion routines and accept event hold no reference on the
                // driver: the last release must come from a work item (which does).
                World::violation(
                    &mut s,
                    "detach_complete inside a completion routine or accept event".into(),
                );
            }
            (s.cleanup_in_detach_complete, s.client)
        };
        let _ = client;
        if cleanup {
            // NMR may free the binding (and this provider) inside this call.
            world.cleanup();
        }
    }
}
