//! The WSK subsystem and NMR as a loom model sees them: a [`Provider`] that records every call
//! and checks the contract of `provider.rs` on each, pending operations that model threads
//! complete, and a minimal NMR (who calls detach, when cleanup runs). The calls and socket
//! handles are those of the unit tests' double (`wsk_client::testing::provider`: [`Call`],
//! [`TestSocket`]), its pool `wsk-primitives`'s `TestPlatform`.
//!
//! What is checked, and how:
//! * *Timing* (a call into WSK after the detach completed; `close` while a call on that socket
//!   is executing; two calls executing on one socket; detach completed twice or while a call is
//!   executing; cleanup twice or before the detach completed): logical state under a `std`
//!   mutex, checked on every call. A call has three loom scheduling points (entry, hand-over
//!   of the request, return), so other threads run while it is executing, and the operation
//!   may complete before the call returns.
//! * *Memory ordering*: loom cells ([`Causality`]). Every call reads the binding's cell when it
//!   returns and the detach completion writes it, so loom reports a causality violation unless
//!   the completion happens after every return. Every call on a socket writes the socket's cell
//!   on entry and on return, and so do `close` and dropping the socket's I/O resources: calls on
//!   one socket must be ordered, and the free must come after all of them.
//!
//! * *The binding's timer*: armed, cancelled and expired under a loom mutex, as the kernel's
//!   timer lock orders `KeSetTimer`, `KeCancelTimer` and the expiry; a model thread fires it
//!   ([`World::fire_timer`]) and runs the tick as the timer's work item would. Arming an armed
//!   timer or arming it after the detach completed, a tick after the detach completed, and a
//!   detach completing with the timer armed fail the model.
//!
//! * *Execution context*: [`Provider::schedule`] queues the token for the thread that
//!   scheduled it, which runs it once its outermost callback (completion, accept event,
//!   detach, attach) has returned — as a work item runs after the callback that queued it.
//!   A call into WSK while the calling thread is inside a completion or an accept event fails
//!   the model. (A work item runs on its scheduler's thread: the core does nothing with the
//!   socket after scheduling, and program order carries the hand-over to loom.)
//!
//! The bookkeeping itself (a `std` mutex and `std` `Arc`s) is invisible to loom: it adds neither
//! scheduling points nor happens-before edges, so it cannot hide a missing edge in the core.
//! Being invisible, it is also not considered by loom's partial-order reduction, which explores
//! one order per class of equivalent orders of *loom-visible* operations: the memory-ordering
//! checks are exact under it, the timing checks best-effort — except for "calls executing",
//! which is mirrored in a loom atomic (`in_call`) so that those orders are explored.
//! (Hence the rule: no loom operation while the `std` mutex is held — loom switches threads
//! only at its own operations, and all model threads share one OS thread.) The
//! happens-before edges real WSK and NMR provide are modelled explicitly: a request handed
//! over to WSK and its completion (`irps`), and NMR's events (`Notify`).

use std::{
    ffi::c_void,
    net::SocketAddr,
    ops::Range,
    ptr::NonNull,
    sync::atomic::Ordering::Relaxed,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use loom::{
    sync::{
        Notify,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
};
pub use wsk_client::testing::provider::{Call, TestSocket};
use wsk_client::{
    binding::BindingRef,
    provider::{Completion, OpKind, Provider, SocketKind, SocketOption},
    socket::SocketRef,
};
use wsk_primitives::status::NtStatus;

use wsk_primitives::testing::TestPlatform;

use crate::loom_common::{Causality, violated};

/// Socket I/Os a model may create (listener, connections, refused connections).
const MAX_IOS: usize = 8;
/// Number of [`OpKind`]s.
const OP_KINDS: usize = 5;

const fn op_index(kind: OpKind) -> usize {
    match kind {
        OpKind::Setup => 0,
        OpKind::Receive => 1,
        OpKind::Send => 2,
        OpKind::Disconnect => 3,
        OpKind::Close => 4,
    }
}

/// An operation the model WSK accepted and has not completed yet.
#[derive(Clone, Debug)]
pub struct Pending {
    /// The `SocketIo` it was issued with.
    pub io: usize,
    /// The socket it was issued on (`None` for `open_listener`).
    pub socket: Option<TestSocket>,
    /// What it was.
    pub call: Call,
    token: SocketRef<TestProvider>,
    /// The request as handed to WSK (index into `World::irps`).
    irp: usize,
}

// SAFETY: the token is an opaque context pointer; the core's contract is that it may be
// completed from any thread (provider.rs).
unsafe impl Send for Pending {}

#[derive(Debug)]
#[allow(clippy::struct_excessive_bools)] // independent facts about one socket
struct IoRecord {
    kind: SocketKind,
    socket: Option<TestSocket>,
    outstanding: Vec<OpKind>,
    executing: bool,
    close_issued: bool,
    closed: bool,
    dropped: bool,
    /// The core's token for this socket (from the first call made with it).
    token: Option<SocketRef<TestProvider>>,
    /// Event callbacks (accept) running on this socket.
    callbacks: usize,
}

#[derive(Debug, Default)]
struct State {
    ios: Vec<IoRecord>,
    sockets: u32,
    pending: Vec<Pending>,
    /// Calls into WSK currently executing (entered, not returned), over all sockets.
    executing: usize,
    calls: usize,
    accept_events_enabled: bool,
    /// The binding context the core attached with (0 before the attach).
    binding: usize,
    detach_calls: usize,
    detach_status: Option<NtStatus>,
    detach_completions: usize,
    cleanups: usize,
    /// What the last cleanup returned ("no binding is live any more").
    last_cleanup: Option<bool>,
    providers: usize,
    providers_dropped: usize,
    /// Connection sockets the core took in the accept event (it must close them).
    accepted: Vec<TestSocket>,
    /// What happened in this execution that a model is about (see [`World::facts`]).
    facts: std::collections::BTreeSet<&'static str>,
    /// `ClientAttachProvider` returned.
    attach_returned: bool,
    /// The thread that called `ClientDetachProvider`.
    detach_thread: Option<thread::ThreadId>,
    /// Work items queued by `schedule`: the scheduling thread, the socket I/O, the token.
    scheduled: Vec<(thread::ThreadId, usize, SocketRef<TestProvider>)>,
    /// Threads inside a completion or an accept event, with their nesting depth.
    in_callback: Vec<(thread::ThreadId, usize)>,
    /// Threads running work items.
    running_work: Vec<thread::ThreadId>,
    /// The binding's timer is armed (mirror of [`World::timer`], kept under its lock).
    timer_armed: bool,
}

impl State {
    /// Whether the current thread is inside a completion or an accept event.
    fn in_callback_here(&self) -> bool {
        let me = thread::current().id();
        self.in_callback.iter().any(|(t, _)| *t == me)
    }
}

/// The model world: the WSK subsystem and the NMR of one execution.
#[derive(Debug)]
pub struct World {
    state: Mutex<State>,
    /// Read by every call when it returns, written when the detach completes.
    calls_returned: Causality,
    /// The requests handed to WSK, one per (socket I/O, operation kind): the call releases,
    /// the completion acquires, so a completion happens after everything the core did before
    /// making the call — as an IRP's completion routine does — and nothing more. Created with
    /// the world, before any model thread, as loom requires of shared atomics.
    irps: Vec<AtomicUsize>,
    /// Calls into WSK executing, as loom sees them: incremented on entry and decremented on
    /// return of every call, read (with a read-modify-write, so the latest value) by the
    /// detach checks. Relaxed, so it adds no happens-before edge; being loom-visible, it makes
    /// loom's partial-order reduction explore the orders of calls against detach (the `std`
    /// bookkeeping alone is invisible to it). Its operations are also the scheduling points
    /// that let other threads run while a call is executing. Relaxed:
    /// a scheduling point that adds no happens-before edge.
    in_call: AtomicUsize,
    /// Set (release) once the client's detach is complete, for loom-aware waits.
    detached: AtomicBool,
    /// Wakes the WSK thread ([`spawn_wsk`]): a close was issued, or the detach completed.
    wsk_work: Notify,
    /// Wakes the thread in `NmrWaitForClientDeregisterComplete`: the detach completed.
    detach_event: Notify,
    /// Unload's event: set by the cleanup callback when the core reports no binding live.
    unload_event: Notify,
    /// Lets NMR's detach thread go once the attach recorded the binding context.
    attach_event: Notify,
    /// Set (release) with [`World::attach_event`].
    attach_ready: AtomicBool,
    /// Whether the WSK thread completes listener setup too ([`World::complete_setup`]).
    completes_setup: std::sync::atomic::AtomicBool,
    /// NMR's "detach started" for the one binding: whichever side deregisters first calls
    /// `ClientDetachProvider`, the other does nothing (NMR serializes this internally).
    detach_started: AtomicBool,
    /// Run cleanup on the thread waiting in `NmrWaitForClientDeregisterComplete` instead of
    /// on the thread that completed the detach.
    deferred_cleanup: std::sync::atomic::AtomicBool,
    /// The binding's timer: `Some(binding context)` while armed. A loom mutex, so that arming,
    /// cancelling and expiry are ordered as the kernel's timer lock orders them.
    timer: loom::sync::Mutex<Option<usize>>,
    /// The pool the core allocates from.
    pub platform: TestPlatform,
}

impl World {
    /// A fresh world for one execution.
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::default(),
            calls_returned: Causality::new(),
            irps: (0..MAX_IOS * OP_KINDS)
                .map(|_| AtomicUsize::new(0))
                .collect(),
            in_call: AtomicUsize::new(0),
            detached: AtomicBool::new(false),
            wsk_work: Notify::new(),
            detach_event: Notify::new(),
            unload_event: Notify::new(),
            attach_event: Notify::new(),
            attach_ready: AtomicBool::new(false),
            completes_setup: std::sync::atomic::AtomicBool::new(false),
            detach_started: AtomicBool::new(false),
            deferred_cleanup: std::sync::atomic::AtomicBool::new(false),
            timer: loom::sync::Mutex::new(None),
            platform: TestPlatform::default(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A provider for the binding being attached.
    #[must_use]
    pub fn provider(self: &Arc<Self>) -> TestProvider {
        self.state().providers += 1;
        TestProvider {
            world: Arc::clone(self),
        }
    }

    /// Records the binding context the core attached with.
    pub fn attached(&self, context: *mut ::core::ffi::c_void) {
        self.state().binding = context as usize;
    }

    /// The attach closure's part when NMR may detach at once: records the context, then
    /// lets the thread waiting in [`World::wait_attached`] go (NMR's own synchronization
    /// between `NmrClientAttachProvider` and a detach).
    pub fn attached_and_detachable(&self, context: *mut ::core::ffi::c_void) {
        self.attached(context);
        self.attach_ready.store(true, Ordering::Release);
        self.attach_event.notify();
    }

    /// Blocks until [`World::attached_and_detachable`] ran.
    pub fn wait_attached(&self) {
        // loom's `Notify` may wake spuriously: the acquire load is what orders this thread
        // after the attach.
        while !self.attach_ready.load(Ordering::Acquire) {
            self.attach_event.wait();
        }
    }

    /// `ClientAttachProvider` returned (for the facts of the attach model).
    pub fn attach_returned(&self) {
        self.state().attach_returned = true;
    }

    /// Makes the WSK thread ([`spawn_wsk`]) also complete `open_listener` and `bind`
    /// successfully (for a model in which the attach runs concurrently).
    pub fn complete_setup(&self) {
        self.completes_setup.store(true, Relaxed);
    }

    // ---- the binding's timer ----

    fn timer(&self) -> loom::sync::MutexGuard<'_, Option<usize>> {
        self.timer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The timer expires, if armed: its tick runs on this thread, as the timer's work item
    /// would (outside every callback), then the work items it scheduled. `false` if it was not
    /// armed.
    #[allow(clippy::significant_drop_tightening)] // the mirror in `State` is kept under the timer's lock
    pub fn fire_timer(&self) -> bool {
        let context = {
            let mut timer = self.timer();
            let context = timer.take();
            self.state().timer_armed = false;
            context
        };
        let Some(context) = context else {
            return false;
        };
        {
            let mut state = self.state();
            if state.detach_completions > 0 {
                drop(state);
                violated(format_args!("the tick ran after the detach completed"));
            }
            if state.detach_calls > 0 {
                state.facts.insert("a tick ran after the detach began");
            }
        }
        // SAFETY: the context the timer was armed with; one tick per arm.
        let binding = unsafe { BindingRef::<TestProvider>::from_context(context as *mut c_void) };
        // SAFETY: as above, outside every callback.
        unsafe { binding.tick() };
        self.run_work_items();
        true
    }

    // ---- execution contexts ----

    /// Runs `f` as WSK runs a completion routine or an accept event on this thread (no call
    /// into WSK may be made inside), then this thread's work items.
    fn callback<R>(&self, f: impl FnOnce() -> R) -> R {
        let me = thread::current().id();
        {
            let mut state = self.state();
            match state.in_callback.iter_mut().find(|(t, _)| *t == me) {
                Some((_, depth)) => *depth += 1,
                None => state.in_callback.push((me, 1)),
            }
        }
        let result = f();
        {
            let mut state = self.state();
            if let Some(i) = state.in_callback.iter().position(|(t, _)| *t == me) {
                state.in_callback[i].1 -= 1;
                if state.in_callback[i].1 == 0 {
                    state.in_callback.swap_remove(i);
                }
            }
        }
        self.run_work_items();
        result
    }

    /// Runs the work items this thread scheduled, unless it is inside a callback or already
    /// running work items (then the outermost one runs them when it returns).
    pub fn run_work_items(&self) {
        let me = thread::current().id();
        {
            let mut state = self.state();
            if state.in_callback.iter().any(|(t, _)| *t == me) || state.running_work.contains(&me) {
                return;
            }
            state.running_work.push(me);
        }
        loop {
            let next = {
                let mut state = self.state();
                let index = state.scheduled.iter().position(|(t, _, _)| *t == me);
                let next = index.map(|i| state.scheduled.remove(i).2);
                drop(state);
                next
            };
            let Some(token) = next else { break };
            // SAFETY: one run per `schedule`, on a thread outside every callback.
            unsafe { token.run_scheduled() };
        }
        self.state().running_work.retain(|t| *t != me);
    }

    // ---- calls into WSK ----

    fn enter(&self, io: Option<usize>, call: &str) {
        let mut state = self.state();
        if state.in_callback_here() {
            drop(state);
            violated(format_args!(
                "{call} called inside a completion routine or an accept event"
            ));
        }
        if state.detach_completions > 0
            || matches!(state.detach_status, Some(s) if s == NtStatus::SUCCESS)
        {
            drop(state);
            violated(format_args!(
                "{call} called into WSK after the detach completed"
            ));
        }
        state.executing += 1;
        state.calls += 1;
        if let Some(io) = io {
            let record = &mut state.ios[io];
            if record.executing {
                drop(state);
                violated(format_args!(
                    "{call} while another call on the socket is executing"
                ));
            }
            if record.close_issued {
                drop(state);
                violated(format_args!(
                    "{call} on a socket after its close was issued"
                ));
            }
            record.executing = true;
        }
        drop(state);
        self.in_call.fetch_add(1, Ordering::Relaxed);
    }

    fn leave(&self, io: Option<usize>) {
        self.in_call.fetch_sub(1, Ordering::Relaxed);
        let mut state = self.state();
        state.executing -= 1;
        if let Some(io) = io {
            state.ios[io].executing = false;
        }
    }

    /// One asynchronous call: enters, hands the request over (other threads may run from
    /// here, while the call executes), records it as pending, lets other threads run again
    /// (the operation may complete before the call returns), returns.
    fn call(
        &self,
        io: &TestIo,
        socket: Option<TestSocket>,
        call: Call,
        token: SocketRef<TestProvider>,
    ) {
        io.cell.write();
        self.enter(Some(io.id), &format!("{call:?}"));
        let wakes_wsk = call == Call::Close
            || (matches!(call, Call::Open(_) | Call::Bind(_))
                && self.completes_setup.load(Relaxed));
        let irp = io.id * OP_KINDS + op_index(call.kind());
        self.irps
            .get(irp)
            .unwrap_or_else(|| violated(format_args!("model has more sockets than MAX_IOS")))
            .fetch_add(1, Ordering::Release);
        {
            let mut state = self.state();
            let record = &mut state.ios[io.id];
            match (record.socket, socket) {
                (_, None) => {}
                (None, Some(s)) => record.socket = Some(s),
                (Some(bound), Some(s)) if bound == s => {}
                (Some(bound), Some(s)) => {
                    drop(state);
                    violated(format_args!(
                        "{call:?} with socket {s:?} on the I/O of {bound:?}"
                    ));
                }
            }
            let kind = call.kind();
            if record.outstanding.contains(&kind) {
                drop(state);
                violated(format_args!(
                    "{call:?}: a {kind:?} operation is already outstanding"
                ));
            }
            if call == Call::Close {
                record.close_issued = true;
            }
            if call == Call::Disconnect {
                state.facts.insert("graceful disconnect issued");
            }
            let record = &mut state.ios[io.id];
            record.outstanding.push(kind);
            record.token = Some(token);
            state.pending.push(Pending {
                io: io.id,
                socket,
                call,
                token,
                irp,
            });
        }
        if wakes_wsk {
            self.wsk_work.notify();
        }
        self.leave(Some(io.id));
        io.cell.write();
        self.calls_returned.read();
    }

    // ---- WSK completing operations (model threads) ----

    /// Removes and returns the first pending operation `filter` accepts.
    pub fn take(&self, filter: impl Fn(&Pending) -> bool) -> Option<Pending> {
        let mut state = self.state();
        let index = state.pending.iter().position(filter)?;
        Some(state.pending.remove(index))
    }

    /// [`World::take`] with a filter that also sees the socket records.
    fn take_with(&self, filter: impl Fn(&State, &Pending) -> bool) -> Option<Pending> {
        let mut state = self.state();
        let index = state.pending.iter().position(|p| filter(&state, p))?;
        Some(state.pending.remove(index))
    }

    /// Pending operations (a snapshot).
    #[must_use]
    pub fn pending(&self) -> Vec<Pending> {
        self.state().pending.clone()
    }

    /// Completes `op` (taken with [`World::take`]) with `completion`, as WSK completes an IRP.
    pub fn complete(&self, op: Pending, completion: Completion<TestSocket>) {
        let Pending {
            io,
            call,
            token,
            irp,
            ..
        } = op;
        if let Some(irp) = self.irps.get(irp) {
            irp.fetch_add(1, Ordering::Acquire);
        }
        {
            let mut state = self.state();
            let record = &mut state.ios[io];
            if record.dropped {
                drop(state);
                violated(format_args!(
                    "{call:?} outstanding after its socket was freed"
                ));
            }
            if let Some(i) = record.outstanding.iter().position(|k| *k == call.kind()) {
                record.outstanding.swap_remove(i);
            }
            if call == Call::Close {
                record.closed = true;
            }
        }
        // SAFETY: the token was given with this operation, which completes exactly once, here.
        self.callback(|| unsafe { token.complete(completion) });
    }

    /// Completes `op` successfully (listener setup, and I/O of the size asked for).
    pub fn succeed(&self, op: Pending) {
        let completion = match &op.call {
            Call::Open(_) => {
                let mut state = self.state();
                state.sockets += 1;
                Completion::Created(Ok(TestSocket(state.sockets)))
            }
            Call::SetIpv6Only | Call::SetNoDelay => Completion::OptionSet(Ok(())),
            Call::Bind(_) => Completion::Bound(Ok(())),
            Call::Receive(range) => Completion::Received(Ok(range.len().min(4))),
            Call::Send(range) => Completion::Sent(Ok(range.len())),
            Call::Disconnect => Completion::Disconnected(Ok(())),
            Call::Close => Completion::Closed,
        };
        self.complete(op, completion);
    }

    /// A new connection socket handle, as WSK creates one for an incoming connection.
    #[must_use]
    pub fn new_connection(&self) -> TestSocket {
        let mut state = self.state();
        state.sockets += 1;
        TestSocket(state.sockets)
    }

    /// WSK's accept event on listener `listener` for a new connection, delivered only while the
    /// listener's close has not completed (`None` otherwise). While it runs, the listener's
    /// close does not complete ([`World::wind_down_one`]). Returns the new connection's I/O id, or
    /// the status the core refused it with.
    pub fn accept(&self, listener: usize) -> Option<Result<usize, NtStatus>> {
        let (token, first_new) = {
            let mut state = self.state();
            let record = &mut state.ios[listener];
            if record.closed {
                return None;
            }
            let token = record.token?;
            record.callbacks += 1;
            state.sockets += 1;
            (token, state.ios.len())
        };
        let socket = TestSocket(self.state().sockets);
        let result = self.callback(|| {
            // SAFETY: the listener's close has not completed (checked above, and it cannot
            // complete while this callback runs), so its token is valid.
            unsafe {
                token.accept_event(Some(socket), Some(crate::loom_common::scenario::remote()))
            }
            // As the kernel's accept event: out-parameters written (NULL), then the start.
            .map(wsk_client::accept::Accepted::start)
        });
        let listener_closing = {
            let mut state = self.state();
            state.ios[listener].callbacks -= 1;
            state.ios[listener].close_issued
        };
        if listener_closing {
            // The listener's close may complete now. (Never notify under the state lock: a
            // loom operation may switch threads, and the next one would block on the lock.)
            self.wsk_work.notify();
        }
        let mut state = self.state();
        if result.is_ok() {
            state.facts.insert("accept event: connection admitted");
            state.accepted.push(socket);
        } else {
            state.facts.insert("accept event: connection refused");
        }
        let new = state.ios.iter().enumerate().skip(first_new);
        let new_ios: Vec<usize> = new
            .filter(|(_, r)| r.kind == SocketKind::Connection)
            .map(|(i, _)| i)
            .collect();
        drop(state);
        match (result, new_ios.as_slice()) {
            (Ok(_token), [io]) => Some(Ok(*io)),
            (Ok(_token), _) => violated(format_args!(
                "accept took a connection with {} new socket I/Os",
                new_ios.len()
            )),
            (Err(status), _) => Some(Err(status)),
        }
    }

    /// Whether a close was issued on the socket of I/O `io`.
    #[must_use]
    pub fn close_issued(&self, io: usize) -> bool {
        self.state().ios[io].close_issued
    }

    /// Completes one operation on a socket whose close was issued, the way WSK winds such a
    /// socket down: its other operations complete with `STATUS_CANCELLED`, then the close
    /// (once no event callback runs on the socket). Returns whether it completed one.
    pub fn wind_down_one(&self) -> bool {
        let op = self
            .take_with(|state, p| p.call != Call::Close && state.ios[p.io].close_issued)
            .or_else(|| {
                self.take_with(|state, p| p.call == Call::Close && state.ios[p.io].callbacks == 0)
            });
        if op.is_none() {
            let mut state = self.state();
            let waiting = state
                .pending
                .iter()
                .any(|p| p.call == Call::Close && state.ios[p.io].callbacks > 0);
            if waiting {
                state
                    .facts
                    .insert("a close waited for an accept event on its socket");
            }
        }
        let Some(op) = op else { return false };
        let completion = op.call.cancelled();
        self.complete(op, completion);
        true
    }

    /// Completes everything still pending: sockets being closed wind down as in
    /// [`World::wind_down_one`]; any other operation fails with `STATUS_CONNECTION_ABORTED`.
    /// Fails the model if operations keep coming (the core reissuing I/O after the detach).
    pub fn drain(&self) {
        for _ in 0..64 {
            if self.wind_down_one() {
                continue;
            }
            let Some(op) = self.take(|_| true) else {
                return;
            };
            let completion = op.call.failed(NtStatus::CONNECTION_ABORTED);
            self.complete(op, completion);
        }
        violated(format_args!(
            "operations still being issued after 64 completions during the drain"
        ));
    }

    // ---- NMR ----

    /// NMR runs cleanup on the thread in `NmrWaitForClientDeregisterComplete` (see
    /// [`World::wait_detached`]) rather than on the thread that completed the detach.
    pub fn defer_cleanup(&self) {
        self.deferred_cleanup
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// One side deregisters (the client's `NmrDeregisterClient`, or the WSK subsystem going
    /// away): NMR calls `ClientDetachProvider` if the other side has not already. `None` if it
    /// had; otherwise what the detach returned.
    pub fn deregister(&self) -> Option<NtStatus> {
        if self.detach_started.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(self.detach())
    }

    /// NMR calling `ClientDetachProvider` (at most once per binding: the caller models NMR's
    /// "whichever side deregisters first"), then, if the detach completed inline, cleanup.
    pub fn detach(&self) -> NtStatus {
        let executing = self.in_call.fetch_add(0, Ordering::Relaxed);
        let context = {
            let mut state = self.state();
            state.detach_calls += 1;
            state.detach_thread = Some(thread::current().id());
            if executing > 0 {
                state
                    .facts
                    .insert("detach began while a call into WSK was executing");
            }
            if !state.attach_returned {
                state
                    .facts
                    .insert("detach began before ClientAttachProvider returned");
            }
            if state.detach_calls > 1 {
                drop(state);
                violated(format_args!("NMR model called ClientDetachProvider twice"));
            }
            state.binding
        };
        // SAFETY: the context is the one the core attached with, not yet cleaned up.
        let binding = unsafe { BindingRef::<TestProvider>::from_context(context as *mut c_void) };
        // SAFETY: NMR calls detach once per binding (the callers model that), on a live binding.
        let status = unsafe { binding.detach() };
        // The closes the detach requested are made by work items, after the callback returned.
        self.run_work_items();
        {
            let mut state = self.state();
            state.detach_status = Some(status);
            state.facts.insert(if status == NtStatus::SUCCESS {
                "detach returned STATUS_SUCCESS"
            } else {
                "detach returned STATUS_PENDING"
            });
        }
        if status == NtStatus::SUCCESS {
            self.client_detach_complete("ClientDetachProvider returned STATUS_SUCCESS");
        } else if status != NtStatus::PENDING {
            violated(format_args!("ClientDetachProvider returned {status}"));
        }
        status
    }

    /// The client's side of the detach is complete (`STATUS_SUCCESS` returned, or
    /// `NmrClientDetachProviderComplete` called): check, then run cleanup as NMR does once both
    /// sides detached (the provider side is modelled as already detached).
    fn client_detach_complete(&self, how: &str) {
        let in_call = self.in_call.fetch_add(0, Ordering::Relaxed);
        let context = {
            let mut state = self.state();
            state.detach_completions += 1;
            if state.detach_completions > 1 {
                drop(state);
                violated(format_args!("detach completed twice (second: {how})"));
            }
            if state.executing > 0 || in_call > 0 {
                let executing = state.executing.max(in_call);
                drop(state);
                violated(format_args!(
                    "{how} while {executing} call(s) into WSK are executing"
                ));
            }
            if state.in_callback_here() {
                drop(state);
                // The kernel's completion routines and accept event hold no reference on the
                // driver: the last release must come from a work item (which does).
                violated(format_args!(
                    "{how} inside a completion routine or an accept event"
                ));
            }
            if state.timer_armed {
                drop(state);
                violated(format_args!("{how} with the binding's timer armed"));
            }
            if !state.attach_returned {
                state
                    .facts
                    .insert("detach completed before ClientAttachProvider returned");
            }
            if state.detach_thread != Some(thread::current().id()) {
                state
                    .facts
                    .insert("detach completed on another thread than ClientDetachProvider's");
            }
            state.binding
        };
        self.calls_returned.write();
        self.detached.store(true, Ordering::Release);
        self.wsk_work.notify();
        self.detach_event.notify();
        if self
            .deferred_cleanup
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        self.cleanup(context);
    }

    /// NMR calling `ClientCleanupBindingContext`.
    fn cleanup(&self, context: usize) {
        // SAFETY: the context is the one the core attached with, not yet cleaned up.
        let binding = unsafe { BindingRef::<TestProvider>::from_context(context as *mut c_void) };
        // SAFETY: both sides have detached; NMR calls cleanup exactly once.
        let no_binding_live = unsafe { binding.cleanup() };
        {
            let mut state = self.state();
            state.cleanups += 1;
            state.last_cleanup = Some(no_binding_live);
        }
        if no_binding_live {
            // The kernel adapter signals Unload's event here.
            self.unload_event.notify();
        }
    }

    /// Whether the client's detach is complete (acquire: pairs with the completion).
    pub fn is_detached(&self) -> bool {
        self.detached.load(Ordering::Acquire)
    }

    /// Blocks until the client's detach is complete: NMR's deregistration wait. Then, with
    /// [`World::defer_cleanup`], runs cleanup on this thread.
    pub fn wait_detached(&self) {
        while !self.is_detached() {
            self.detach_event.wait();
        }
        if self
            .deferred_cleanup
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            let context = self.state().binding;
            self.cleanup(context);
        }
    }

    /// The final checks of an execution: the detach completed exactly once, cleanup ran once
    /// after it and reported no live binding, every operation completed, every socket's
    /// resources were freed after its close completed, and the pool is empty.
    pub fn assert_finished(&self) {
        let state = self.state();
        let problems = [
            (state.detach_calls != 1)
                .then(|| format!("ClientDetachProvider called {} times", state.detach_calls)),
            (state.detach_completions != 1)
                .then(|| format!("detach completed {} times", state.detach_completions)),
            (state.cleanups != 1).then(|| format!("cleanup ran {} times", state.cleanups)),
            (state.providers_dropped != state.providers).then(|| {
                format!(
                    "{} of {} providers dropped",
                    state.providers_dropped, state.providers
                )
            }),
            (state.last_cleanup != Some(true))
                .then(|| "cleanup did not report the last binding gone".to_owned()),
            (!state.pending.is_empty())
                .then(|| format!("operations never completed: {:?}", state.pending)),
            (!state.scheduled.is_empty())
                .then(|| format!("{} work item(s) never ran", state.scheduled.len())),
            state
                .ios
                .iter()
                .position(|r| !r.dropped)
                .map(|i| format!("socket I/O {i} never freed")),
            state
                .accepted
                .iter()
                .find(|s| !state.ios.iter().any(|r| r.socket == Some(**s) && r.closed))
                .map(|s| format!("accepted connection {s:?} never closed")),
            state
                .ios
                .iter()
                .position(|r| r.socket.is_some() && !r.closed)
                .map(|i| format!("socket of I/O {i} never closed")),
        ];
        drop(state);
        if let Some(problem) = problems.into_iter().flatten().next() {
            violated(format_args!("{problem}"));
        }
        self.platform.assert_clean();
    }

    /// Records a fact of this execution that a model checks it explored.
    pub fn fact(&self, fact: &'static str) {
        self.state().facts.insert(fact);
    }

    /// Forgets the facts so far (those of the setup).
    pub fn clear_facts(&self) {
        self.state().facts.clear();
    }

    /// The facts of this execution: which way each race went.
    #[must_use]
    pub fn facts(&self) -> Vec<&'static str> {
        self.state().facts.iter().copied().collect()
    }

    /// Calls into WSK made so far.
    #[must_use]
    pub fn calls(&self) -> usize {
        self.state().calls
    }

    /// Unload's wait, as the kernel adapter does it (`kernel/globals.rs`,
    /// `wait_until_no_binding`): while `live_bindings()` is not zero, wait for the event the
    /// cleanup callback sets when the core reports the last binding gone. Unload may therefore
    /// go on as soon as the count reaches zero, before cleanup returned: the core's last touch
    /// of the client must be that count.
    pub fn wait_unloadable(&self, live_bindings: impl Fn() -> usize) {
        while live_bindings() > 0 {
            self.unload_event.wait();
        }
    }

    /// Whether the accept event was enabled.
    #[must_use]
    pub fn accept_events_enabled(&self) -> bool {
        self.state().accept_events_enabled
    }
}

/// The per-socket I/O resources of the model WSK.
#[derive(Debug)]
pub struct TestIo {
    id: usize,
    world: Arc<World>,
    cell: Causality,
}

impl Drop for TestIo {
    fn drop(&mut self) {
        self.cell.write();
        let mut state = self.world.state();
        let record = &mut state.ios[self.id];
        let problem = if record.dropped {
            Some("socket I/O freed twice".to_owned())
        } else if !record.outstanding.is_empty() {
            Some(format!(
                "socket I/O freed with {:?} outstanding",
                record.outstanding
            ))
        } else if record.executing {
            Some("socket I/O freed while a call on it is executing".to_owned())
        } else if record.socket.is_some() && !record.closed {
            Some("socket I/O freed before the close completed".to_owned())
        } else {
            None
        };
        record.dropped = true;
        drop(state);
        if let Some(problem) = problem {
            violated(format_args!("{problem}"));
        }
    }
}

/// The [`Provider`] of a model binding.
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
        _buffer: Option<NonNull<[u8]>>,
    ) -> Result<TestIo, NtStatus> {
        let mut state = self.world.state();
        state.ios.push(IoRecord {
            kind,
            socket: None,
            outstanding: Vec::new(),
            executing: false,
            close_issued: false,
            closed: false,
            dropped: false,
            token: None,
            callbacks: 0,
        });
        let id = state.ios.len() - 1;
        drop(state);
        Ok(TestIo {
            id,
            world: Arc::clone(&self.world),
            cell: Causality::new(),
        })
    }

    unsafe fn schedule(this: NonNull<Self>, io: NonNull<TestIo>, token: SocketRef<Self>) {
        // SAFETY: both valid at entry (caller); copied out before the run is queued.
        let world = Arc::clone(unsafe { &this.as_ref().world });
        // SAFETY: as above.
        let io = unsafe { io.as_ref() }.id;
        let mut state = world.state();
        if state.scheduled.iter().any(|(_, queued, _)| *queued == io) {
            drop(state);
            violated(format_args!("a socket's work item queued twice"));
        }
        state.scheduled.push((thread::current().id(), io, token));
    }

    fn enable_accept_events(&self) -> Result<(), NtStatus> {
        self.world.enter(None, "enable_accept_events");
        let already = {
            let mut state = self.world.state();
            let sockets = state.ios.iter().filter(|r| r.socket.is_some()).count();
            if sockets > 0 {
                drop(state);
                violated(format_args!(
                    "accept events enabled after a socket was created"
                ));
            }
            ::core::mem::replace(&mut state.accept_events_enabled, true)
        };
        if already {
            violated(format_args!("accept events enabled twice"));
        }
        self.world.leave(None);
        self.world.calls_returned.read();
        Ok(())
    }

    fn open_listener(&self, io: &TestIo, local: SocketAddr, token: SocketRef<Self>) {
        self.world.call(io, None, Call::Open(local), token);
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
        self.world.call(io, Some(socket), call, token);
    }

    #[allow(clippy::significant_drop_tightening)] // the mirror in `State` is kept under the timer's lock
    fn arm_timer(&self, _delay_ms: u32, binding: BindingRef<Self>) {
        let mut timer = self.world.timer();
        let mut state = self.world.state();
        if timer.is_some() {
            drop(state);
            drop(timer);
            violated(format_args!("the binding's timer armed while armed"));
        }
        if state.detach_completions > 0 {
            drop(state);
            drop(timer);
            violated(format_args!(
                "the binding's timer armed after the detach completed"
            ));
        }
        if state.detach_calls > 0 {
            state
                .facts
                .insert("the timer was armed after the detach began");
        }
        state.timer_armed = true;
        *timer = Some(binding.as_context() as usize);
    }

    #[allow(clippy::significant_drop_tightening)] // the mirror in `State` is kept under the timer's lock
    fn cancel_timer(&self) -> bool {
        let mut timer = self.world.timer();
        let cancelled = timer.take().is_some();
        let mut state = self.world.state();
        if state.detach_completions > 0 {
            drop(state);
            drop(timer);
            violated(format_args!(
                "the binding's timer cancelled after the detach completed"
            ));
        }
        state.timer_armed = false;
        state.facts.insert(if cancelled {
            "a cancel found the timer armed"
        } else {
            "a cancel found the timer not armed"
        });
        cancelled
    }

    fn bind(&self, io: &TestIo, socket: TestSocket, local: SocketAddr, token: SocketRef<Self>) {
        self.world.call(io, Some(socket), Call::Bind(local), token);
    }

    fn receive(
        &self,
        io: &TestIo,
        socket: TestSocket,
        range: Range<usize>,
        token: SocketRef<Self>,
    ) {
        self.world
            .call(io, Some(socket), Call::Receive(range), token);
    }

    fn send(&self, io: &TestIo, socket: TestSocket, range: Range<usize>, token: SocketRef<Self>) {
        self.world.call(io, Some(socket), Call::Send(range), token);
    }

    fn disconnect(&self, io: &TestIo, socket: TestSocket, token: SocketRef<Self>) {
        self.world.call(io, Some(socket), Call::Disconnect, token);
    }

    fn close(&self, io: &TestIo, socket: TestSocket, token: SocketRef<Self>) {
        self.world.call(io, Some(socket), Call::Close, token);
    }

    fn detach_handle(&self) -> Arc<World> {
        // NMR may run cleanup (which frees this provider) inside the call: keep the world alive.
        Arc::clone(&self.world)
    }

    fn detach_complete(world: Arc<World>) {
        world.client_detach_complete("NmrClientDetachProviderComplete");
    }
}

impl Drop for TestProvider {
    fn drop(&mut self) {
        // The provider lives in the binding: freeing it must come after every call returned.
        self.world.calls_returned.write();
        self.world.state().providers_dropped += 1;
    }
}

/// WSK on its own thread: completes the operations of sockets being closed (cancelled ones,
/// then the close) as soon as there are any, until the client's detach is complete. Blocks
/// (loom-aware) while there is nothing to do, so it adds no spinning to the model.
pub fn spawn_wsk(world: &Arc<World>) -> thread::JoinHandle<()> {
    let world = Arc::clone(world);
    thread::spawn(move || {
        while !world.is_detached() {
            if world.wind_down_one() {
                continue;
            }
            let setup = world.completes_setup.load(Relaxed);
            match world.take(|p| setup && matches!(p.call, Call::Open(_) | Call::Bind(_))) {
                Some(op) => world.succeed(op),
                None => world.wsk_work.wait(),
            }
        }
    })
}
