//! The recording WSK + NMR double.
//!
//! A [`Provider`](crate::provider::Provider) that records every call, keeps operations
//! pending until the test (or a model thread) completes them, in any order, and checks the
//! contract of `provider.rs` on every call. The unit tests drive it from one thread; the loom
//! models (`tests/loom_*.rs`, `--cfg loom`) drive the same double from model threads, through
//! [`wsk_primitives::testing::sync`].
//!
//! * `calls` — the client calling into WSK: [`TestProvider`], [`TestIo`];
//! * `wsk` — WSK calling the client: completions, accept events, the wind-down of closing
//!   sockets;
//! * `nmr` — NMR calling the client (attach, detach, cleanup), Unload's waits, the binding's
//!   timer, and the execution contexts (callbacks, work items).
//!
//! Checked on every call: no call into WSK after the detach completed, or inside a completion
//! routine or an accept event ("Using IRPs with Winsock Kernel Functions": a client "should not
//! call new WSK functions in the context of the `IoCompletion` routine"); no call on a socket
//! whose close was issued; at most one call executing on a socket, and at most one outstanding
//! operation of each kind; `close` at most once; accept events enabled once, before any socket;
//! the detach completed exactly once (by `STATUS_SUCCESS` or by one
//! `NmrClientDetachProviderComplete` after `STATUS_PENDING`), with no call executing, the timer
//! disarmed and outside every callback; cleanup once, after the detach; socket I/O resources
//! freed only with nothing outstanding, no work item queued and after the close completed.
//!
//! Work items ([`Provider::schedule`](crate::provider::Provider::schedule)) run on the thread
//! that queued them, once its outermost callback (a completion, an accept event, the attach,
//! the detach, the tick) has returned, as a worker thread runs a work item after the callback
//! that queued it; program order then carries the hand-over.
//!
//! A violation is collected ([`World::violations`], asserted by [`World::assert_finished`]);
//! under loom it fails the model at once, with a panic starting `contract violated:`.
//!
//! # Under loom
//! The bookkeeping is a `std` mutex, invisible to loom. What loom must see is explicit:
//! * a call has three scheduling points (entry, hand-over of the request, return), so other
//!   threads run while it executes and its operation may complete before it returns; `in_call`,
//!   a relaxed loom atomic, mirrors "calls executing" so that loom's partial-order reduction
//!   explores the orders of calls against the detach;
//! * the happens-before edges real WSK provides: a request handed over and its completion
//!   (`irps`: the call releases, the completion acquires); NMR's events ([`Notify`]);
//! * memory ordering, by [`Causality`] cells: every call reads the binding's cell when it
//!   returns and the detach completion writes it; every call on a socket writes the socket's
//!   cell on entry and return, and so does freeing its I/O resources;
//! * the binding's timer under a loom lock, as the kernel's timer lock orders `KeSetTimer`,
//!   `KeCancelTimer` and the expiry.
//!
//! The rule that keeps this sound: no loom operation while the `std` mutex is held (all model
//! threads share one OS thread; loom switches threads only at its own operations).
#![allow(
    clippy::missing_errors_doc,
    clippy::missing_panics_doc,
    clippy::needless_pass_by_value,
    clippy::struct_excessive_bools
)] // test code

extern crate std;

mod calls;
mod nmr;
mod wsk;

use ::core::{fmt, net::SocketAddr, ops::Range};
use std::{
    collections::{BTreeSet, VecDeque},
    format,
    string::{String, ToString},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    vec::Vec,
};

pub use calls::{TestIo, TestProvider};
use wsk_primitives::{
    status::NtStatus,
    sync::{AtomicBool, AtomicUsize},
    testing::sync::{self as test_sync, Causality, Notify, ThreadId},
};

use crate::{
    provider::{Completion, OpKind, SocketKind},
    socket::SocketRef,
};

/// The entry [`World::timeline`] has where a work item started running.
pub const WORK_ITEM: &str = "work_item";
/// The entry [`World::timeline`] has where the binding's tick started running.
pub const TICK: &str = "tick";

/// Socket I/Os a loom model may create (listener, connections, refused connections): the
/// size of the request table (`irps`), which only loom needs.
const MODEL_IOS: usize = 8;
/// Number of [`OpKind`]s.
const OP_KINDS: usize = 5;
/// Entries of the request table.
const IRPS: usize = if cfg!(loom) { MODEL_IOS * OP_KINDS } else { 0 };

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

impl Op {
    /// Its entry in the request table.
    const fn irp(&self) -> usize {
        self.io * OP_KINDS
            + match self.call.kind() {
                OpKind::Setup => 0,
                OpKind::Receive => 1,
                OpKind::Send => 2,
                OpKind::Disconnect => 3,
                OpKind::Close => 4,
            }
    }
}

/// One entry of the timeline, formatted only when read.
#[derive(Clone, Debug)]
enum Entry {
    /// A call into WSK that completes later.
    Call(Call),
    /// A call or event with no arguments (`enable_accept_events`, [`WORK_ITEM`], ...).
    Named(&'static str),
    /// An accept event offering `socket`.
    AcceptEvent(Option<TestSocket>),
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Call(call) => write!(f, "{call:?}"),
            Self::Named(name) => f.write_str(name),
            Self::AcceptEvent(socket) => write!(f, "accept_event({socket:?})"),
        }
    }
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

/// When NMR calls `ClientCleanupBindingContext`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cleanup {
    /// When the test calls [`World::cleanup`].
    ByTest,
    /// As soon as the client's detach is complete: after `ClientDetachProvider` returned
    /// `STATUS_SUCCESS`, or inside `NmrClientDetachProviderComplete` (NMR may do either).
    WhenDetached,
    /// On the thread in `NmrWaitForClientDeregisterComplete` ([`World::wait_detached`]), once
    /// the detach is complete.
    AfterDeregisterWait,
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
    /// Accept events running on this (listening) socket: its close waits for them.
    callbacks: usize,
}

#[derive(Debug)]
struct State {
    mode: Mode,
    ios: Vec<IoRecord>,
    pending: Vec<Op>,
    /// What happened, in order ([`World::timeline`]).
    calls: Vec<Entry>,
    next_socket: u32,
    /// Calls into WSK executing (entered, not returned), over all sockets.
    executing: usize,
    accept_events_enabled: bool,
    enable_result: Result<(), NtStatus>,
    io_failure: Option<NtStatus>,
    attach_failure: Option<NtStatus>,
    /// Successful attaches so far.
    attaches: usize,
    /// `ClientAttachProvider` of the current binding returned.
    attach_returned: bool,
    binding: Option<usize>,
    providers: usize,
    providers_dropped: usize,
    /// `ClientDetachProvider` calls for the current binding.
    detach_calls: usize,
    /// The thread that called `ClientDetachProvider`.
    detach_thread: Option<ThreadId>,
    detach_status: Option<NtStatus>,
    /// `NmrClientDetachProviderComplete` calls for the current binding.
    detach_completions: usize,
    /// The client's detach completed (either way) for the current binding.
    detaches_done: usize,
    cleanup: Cleanup,
    cleanups: usize,
    /// What the last cleanup returned ("no binding is live any more").
    last_cleanup: Option<bool>,
    violations: Vec<String>,
    /// The socket of the accept event executing now, until its out-parameters are written.
    accepting: Option<TestSocket>,
    /// Connection sockets the client took in an accept event (it must close them).
    accepted: Vec<TestSocket>,
    /// Work items queued by `schedule`: the scheduling thread, the socket I/O, the token.
    scheduled: VecDeque<(ThreadId, usize, SocketRef<TestProvider>)>,
    /// Work items run so far.
    work_items_run: usize,
    /// Threads inside a completion or an accept event, with their nesting depth.
    in_callback: Vec<(ThreadId, usize)>,
    /// Threads running work items.
    running_work: Vec<ThreadId>,
    /// The armed timer: its delay and binding context.
    timer: Option<(u32, usize)>,
    /// The timer expired and its tick is due (a DPC queued): cancelling fails.
    timer_due: Option<usize>,
    /// Times the timer was armed.
    timer_arms: usize,
    /// Whether the WSK thread completes listener setup too (loom models).
    completes_setup: bool,
    /// What happened that a loom model checks it explored ([`World::facts`]).
    facts: BTreeSet<&'static str>,
    /// Every call into the client goes through it ([`World::set_client_entry`]).
    client_entry: ClientEntry,
}

/// A function every call from the double into the client goes through.
///
/// It must run the call it is given, once. A profiler can count the client's instructions
/// inside it (the bench's callgrind runs do), minus those of the calls the client makes back
/// into the double; what it also counts is the call's trampoline (a call through a function
/// pointer and a `dyn FnMut`, and the double's closure around the client's entry point).
pub type ClientEntry = fn(&mut dyn FnMut());

impl State {
    /// Whether the client's detach is complete: `ClientDetachProvider` returned
    /// `STATUS_SUCCESS`, or `NmrClientDetachProviderComplete` was called.
    fn detach_complete(&self) -> bool {
        self.detaches_done > 0 || self.detach_status == Some(NtStatus::SUCCESS)
    }

    /// Whether `thread` is inside a completion or an accept event.
    fn in_callback(&self, thread: ThreadId) -> bool {
        self.in_callback.iter().any(|(t, _)| *t == thread)
    }
}

/// The test WSK subsystem + NMR (shared by the providers of successive bindings).
#[derive(Debug)]
pub struct World {
    state: Mutex<State>,
    /// Read by every call when it returns, written when the detach completes and when a
    /// provider is freed.
    calls_returned: Causality,
    /// The requests handed to WSK, one per (socket I/O, operation kind): the call releases,
    /// the completion acquires, so a completion happens after everything the client did
    /// before making the call — as an IRP's completion routine does — and nothing more.
    /// Created with the world, before any model thread.
    irps: Vec<AtomicUsize>,
    /// Calls into WSK executing, as loom sees them (relaxed: scheduling points that add no
    /// happens-before edge).
    in_call: AtomicUsize,
    /// Set (release) once the client's detach is complete.
    detached: AtomicBool,
    /// NMR's "detach started": whichever side deregisters first calls `ClientDetachProvider`.
    detach_started: AtomicBool,
    /// Set (release) once the attach recorded the binding context ([`World::wait_attached`]).
    attach_ready: AtomicBool,
    /// Wakes the WSK thread of a model: a close (or setup) was issued, or the detach completed.
    wsk_work: Notify,
    /// Wakes the thread in `NmrWaitForClientDeregisterComplete`.
    detach_event: Notify,
    /// Unload's event: set by cleanup when the client reports no binding live.
    unload_event: Notify,
    /// Lets NMR's detach thread go once the attach recorded the binding context.
    attach_event: Notify,
    /// The kernel's timer lock: orders arming, cancelling and expiry.
    timer_lock: test_sync::Mutex<()>,
}

impl World {
    /// A fresh world completing operations as `mode` says.
    #[must_use]
    pub fn new(mode: Mode) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                mode,
                ios: Vec::new(),
                pending: Vec::new(),
                calls: Vec::new(),
                next_socket: 0,
                executing: 0,
                accept_events_enabled: false,
                enable_result: Ok(()),
                io_failure: None,
                attach_failure: None,
                attaches: 0,
                attach_returned: false,
                binding: None,
                providers: 0,
                providers_dropped: 0,
                detach_calls: 0,
                detach_thread: None,
                detach_status: None,
                detach_completions: 0,
                detaches_done: 0,
                cleanup: Cleanup::ByTest,
                cleanups: 0,
                last_cleanup: None,
                violations: Vec::new(),
                accepting: None,
                accepted: Vec::new(),
                scheduled: VecDeque::new(),
                work_items_run: 0,
                in_callback: Vec::new(),
                running_work: Vec::new(),
                timer: None,
                timer_due: None,
                timer_arms: 0,
                completes_setup: false,
                facts: BTreeSet::new(),
                client_entry: |call| call(),
            }),
            calls_returned: Causality::new(),
            irps: (0..IRPS).map(|_| AtomicUsize::new(0)).collect(),
            in_call: AtomicUsize::new(0),
            detached: AtomicBool::new(false),
            detach_started: AtomicBool::new(false),
            attach_ready: AtomicBool::new(false),
            wsk_work: Notify::new(),
            detach_event: Notify::new(),
            unload_event: Notify::new(),
            attach_event: Notify::new(),
            timer_lock: test_sync::Mutex::new(()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a contract violation; under loom, fails the model at once (unless it is already
    /// failing).
    fn violation(state: &mut State, what: String) {
        #[cfg(loom)]
        if !std::thread::panicking() {
            violated(&what);
        }
        state.violations.push(what);
    }

    // ---- configuration ----

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

    /// Sets when NMR runs cleanup (default [`Cleanup::ByTest`]).
    pub fn set_cleanup(&self, when: Cleanup) {
        self.state().cleanup = when;
    }

    /// Makes every call into the client (completions, accept events, work items, the tick,
    /// attach, detach, cleanup) go through `entry`.
    pub fn set_client_entry(&self, entry: ClientEntry) {
        self.state().client_entry = entry;
    }

    /// Makes a model's WSK thread also complete `open_listener` and `bind` successfully (for a
    /// model in which the attach runs concurrently).
    pub fn complete_setup(&self) {
        self.state().completes_setup = true;
    }

    /// Whether the WSK thread completes listener setup ([`World::complete_setup`]).
    #[must_use]
    pub fn completes_setup(&self) -> bool {
        self.state().completes_setup
    }

    // ---- what happened ----

    /// Every call made so far, in order.
    #[must_use]
    pub fn calls(&self) -> Vec<String> {
        self.timeline()
            .into_iter()
            .filter(|c| c != WORK_ITEM)
            .collect()
    }

    /// Every call made so far, in order, with a [`WORK_ITEM`] entry where a work item started
    /// and a [`TICK`] entry where the binding's tick did.
    #[must_use]
    pub fn timeline(&self) -> Vec<String> {
        self.state().calls.iter().map(Entry::to_string).collect()
    }

    /// Number of `NmrClientDetachProviderComplete` calls for the current binding.
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

    /// Whether a close was issued on the socket of I/O `io`.
    #[must_use]
    pub fn close_issued(&self, io: usize) -> bool {
        self.state().ios.get(io).is_some_and(|r| r.close_issued)
    }

    /// Whether the accept event was enabled.
    #[must_use]
    pub fn accept_events_enabled(&self) -> bool {
        self.state().accept_events_enabled
    }

    /// Records a fact a model checks it explored.
    pub fn fact(&self, fact: &'static str) {
        self.state().facts.insert(fact);
    }

    /// Forgets the facts so far (those of a model's setup).
    pub fn clear_facts(&self) {
        self.state().facts.clear();
    }

    /// The facts so far: which way each race went.
    #[must_use]
    pub fn facts(&self) -> Vec<&'static str> {
        self.state().facts.iter().copied().collect()
    }

    // ---- final checks ----

    /// Final checks: no violation, nothing pending, no work item queued, the timer disarmed,
    /// every socket I/O dropped, every socket closed.
    pub fn assert_finished(&self) {
        let s = self.state();
        assert!(
            s.violations.is_empty(),
            "contract violated: {:#?}",
            s.violations
        );
        let problems = [
            (!s.pending.is_empty()).then(|| format!("operations never completed: {:?}", s.pending)),
            (!s.scheduled.is_empty())
                .then(|| format!("{} work item(s) never ran", s.scheduled.len())),
            (s.timer.is_some() || s.timer_due.is_some()).then(|| "the timer is still armed".into()),
            s.ios
                .iter()
                .position(|r| !r.dropped)
                .map(|i| format!("socket I/O {i} never freed")),
            s.ios
                .iter()
                .position(|r| {
                    r.socket.is_some()
                        && !r.closed
                        && !(r.kind == SocketKind::Connection && r.close_issued)
                })
                .map(|i| format!("socket of I/O {i} never closed")),
        ];
        drop(s);
        if let Some(problem) = problems.into_iter().flatten().next() {
            violated(&problem);
        }
    }

    /// The checks of a driver's end, after [`World::assert_finished`]'s: the current binding
    /// was detached once and cleaned up once, the cleanup reported no binding live, every
    /// provider was freed and every connection the client accepted was closed.
    pub fn assert_unloaded(&self) {
        self.assert_finished();
        let s = self.state();
        let problems = [
            (s.detach_calls != 1)
                .then(|| format!("ClientDetachProvider called {} times", s.detach_calls)),
            (s.detaches_done != 1).then(|| format!("detach completed {} times", s.detaches_done)),
            (s.cleanups != 1).then(|| format!("cleanup ran {} times", s.cleanups)),
            (s.last_cleanup != Some(true))
                .then(|| "cleanup did not report the last binding gone".into()),
            (s.providers_dropped != s.providers).then(|| {
                format!(
                    "{} of {} providers dropped",
                    s.providers_dropped, s.providers
                )
            }),
            s.accepted
                .iter()
                .find(|a| !s.ios.iter().any(|r| r.socket == Some(**a) && r.closed))
                .map(|a| format!("accepted connection {a:?} never closed")),
        ];
        drop(s);
        if let Some(problem) = problems.into_iter().flatten().next() {
            violated(&problem);
        }
    }
}

/// Fails the test or model: a contract was broken.
#[track_caller]
fn violated(what: &str) -> ! {
    panic!("contract violated: {what}");
}
