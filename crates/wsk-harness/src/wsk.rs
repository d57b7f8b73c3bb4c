//! The WSK subsystem, emulated over host TCP sockets.
//!
//! One I/O model: non-blocking sockets, one reactor thread (mio, edge-triggered) that
//! accepts connections and finishes pending receives and sends, and a small pool of worker
//! threads that deliver completions and accept events to the driver at `DISPATCH_LEVEL`, as
//! IRP completion routines and WSK event callbacks run on arbitrary CPUs. An operation that
//! can finish at once may complete inline, before the call returns ([`InlineMode`]), as real
//! WSK sometimes does.
//!
//! Windows semantics emulated: an IPv6 listener is dual-stack until the driver sets
//! `IPV6_V6ONLY` (`WskControlSocket`; WSK's default is not documented, so the emulation takes
//! the one that breaks a driver relying on it: `0.0.0.0:P` and `[::]:P` then collide, and
//! binding an IPv6 listener without the option is a violation); bind to a port in use fails with `STATUS_ADDRESS_ALREADY_EXISTS`; a receive of 0
//! bytes is the peer's FIN; a reset is `STATUS_CONNECTION_RESET`; close cancels pending
//! receive/send/disconnect (they complete with `STATUS_CANCELLED`), waits for running accept
//! callbacks, and is abortive (`SO_LINGER` 0, so the peer sees RST) unless both directions
//! were shut down.
//!
//! The driver side is abstracted as [`Upcall`] (the core's `SocketRef`), so the engine can be
//! tested with a small fake client; `host_provider.rs` plugs in the real core.

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    fmt,
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr},
    ops::Range,
    ptr::NonNull,
    sync::{
        Arc, Condvar, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use mio::{Events, Interest, Poll, Token, Waker};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use wsk_client::provider::{Completion, OpKind, SocketKind, SocketOption};
use wsk_primitives::{
    platform::{Platform, PoolTag},
    status::NtStatus,
};

use crate::{
    callback::{self, Callback},
    contract::Contract,
    irql,
    nmr::{BindingHandle, BindingId, ProviderCharacteristics, ProviderModule},
    pool::Pool,
};

/// Listen backlog of emulated listening sockets.
const BACKLOG: i32 = 1024;
/// Token of the reactor's waker.
const WAKER: Token = Token(usize::MAX);
/// Pool tag of the block standing in for a socket's IRPs and MDL.
pub const IRP_TAG: PoolTag = PoolTag::from_chars(*b"Irp ");
/// Size of that block (a few IRPs with one stack location, and an MDL).
const IRP_BLOCK_SIZE: usize = 5 * 0xd0 + 0x30;

/// `STATUS_ACCESS_DENIED`.
pub const ACCESS_DENIED: NtStatus = NtStatus(0xC000_0022_u32.cast_signed());
/// `STATUS_INVALID_ADDRESS_COMPONENT`.
pub const INVALID_ADDRESS_COMPONENT: NtStatus = NtStatus(0xC000_0207_u32.cast_signed());
/// `STATUS_CONNECTION_DISCONNECTED`.
pub const CONNECTION_DISCONNECTED: NtStatus = NtStatus(0xC000_020C_u32.cast_signed());

/// The driver side of a socket: the core's `SocketRef`, or a test's fake.
pub trait Upcall: Copy + Send + Sync + 'static {
    /// Delivers the completion of an operation made with this token.
    ///
    /// # Safety
    /// Called once per operation, with the token the operation was made with.
    unsafe fn complete(self, completion: Completion<SocketHandle>);

    /// `WskAcceptEvent` on the listener this token belongs to (`None` = the listener stopped
    /// working). `write_out` plays the out-parameters `*AcceptSocketContext` and
    /// `*AcceptSocketDispatch`: to take the connection the callback calls it (with the context
    /// it writes, `None` for NULL) before any call on the accepted socket, and returns
    /// `STATUS_SUCCESS`; to refuse it, it returns `STATUS_REQUEST_NOT_ACCEPTED`.
    ///
    /// # Safety
    /// Called on a listener's token while the listener is open.
    unsafe fn accept_event(
        self,
        accepted: Option<SocketHandle>,
        remote: Option<SocketAddr>,
        write_out: &mut dyn FnMut(Option<Self>),
    ) -> NtStatus;

    /// The work item [`WskClient::queue_work_item`] queued with this token runs (on a worker,
    /// at `PASSIVE_LEVEL`, outside every callback).
    ///
    /// # Safety
    /// Called once per queueing, with the token it was queued with.
    unsafe fn run_work_item(self);
}

/// The emulated `PWSK_SOCKET`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketHandle(pub u64);

impl fmt::Debug for SocketHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "wsk#{}", self.0)
    }
}

/// When an operation that can finish at once completes inline (before the call returns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InlineMode {
    /// Never: every completion is delivered by a worker thread.
    Never,
    /// Always when the result is known during the call.
    Always,
    /// Every other time.
    Alternate,
}

/// Engine settings.
#[derive(Clone, Copy, Debug)]
pub struct WskMode {
    /// Inline completions.
    pub inline: InlineMode,
    /// Worker threads delivering completions and events.
    pub workers: usize,
    /// Extra time before a close completes (when not inline): WSK's close of a socket with
    /// traffic takes a while, and it makes in-flight work at detach time certain in tests.
    pub close_delay: Duration,
}

impl Default for WskMode {
    fn default() -> Self {
        Self {
            inline: InlineMode::Alternate,
            workers: 3,
            close_delay: Duration::ZERO,
        }
    }
}

/// Operations that can be made to fail ([`Wsk::inject`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultOp {
    /// `WskControlClient` (enable accept events).
    EnableAcceptEvents,
    /// `WskSocket`.
    Open,
    /// `WskControlSocket(IPV6_V6ONLY)`.
    SetIpv6Only,
    /// `WskControlSocket(TCP_NODELAY)`.
    SetNoDelay,
    /// `WskBind`.
    Bind,
    /// `WskReceive` (completes with the status instead of receiving).
    Receive,
    /// `WskSend`.
    Send,
    /// `WskDisconnect`.
    Disconnect,
}

#[derive(Clone, Copy, Debug)]
struct Fault {
    op: FaultOp,
    /// Remaining matching calls before this one fails (0 = the next).
    skip: usize,
    status: NtStatus,
}

/// Counters the emulated subsystem keeps (its own view, independent of the driver's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WskCounters {
    /// Accept events the driver took.
    pub accepted: u64,
    /// Accept events the driver refused.
    pub refused: u64,
    /// Bytes the driver received.
    pub bytes_received: u64,
    /// Bytes the driver sent.
    pub bytes_sent: u64,
    /// Connections closed abortively (RST).
    pub aborted: u64,
    /// Connections closed gracefully.
    pub graceful: u64,
    /// Connections the driver set `TCP_NODELAY` on.
    pub no_delay: u64,
}

/// A raw pointer into a connection's buffer, moved to the thread doing the I/O.
#[derive(Clone, Copy)]
struct BufPtr(NonNull<u8>);
// SAFETY: the buffer is non-paged driver memory that stays valid while an operation on it is
// outstanding (the core keeps the `SocketIo` alive until then); the range of one operation is
// not touched by the driver until it completes.
unsafe impl Send for BufPtr {}

/// Per-socket I/O resources (`Provider::SocketIo`): stands in for the IRPs and the MDL, is
/// pool-accounted, and tracks which operation classes are outstanding.
pub struct SocketIo {
    buffer: Option<NonNull<[u8]>>,
    block: NonNull<u8>,
    pool: Pool,
    shared: Arc<IoShared>,
}

// SAFETY: `buffer` and `block` are plain addresses of driver memory, used by one operation at a
// time under the rules above; `IoShared` is atomics only.
unsafe impl Send for SocketIo {}
// SAFETY: as above; `&SocketIo` gives only reads of the addresses and atomic updates.
unsafe impl Sync for SocketIo {}

struct IoShared {
    outstanding: AtomicU8,
    /// The socket's work item is queued (set by `queue_work_item`, cleared when it starts).
    work_item_queued: AtomicBool,
    kind: SocketKind,
    contract: Arc<Contract>,
}

const fn op_bit(op: OpKind) -> u8 {
    match op {
        OpKind::Setup => 1,
        OpKind::Receive => 2,
        OpKind::Send => 4,
        OpKind::Disconnect => 8,
        OpKind::Close => 16,
    }
}

impl IoShared {
    fn begin(&self, op: OpKind, socket: SocketHandle) {
        let bit = op_bit(op);
        if self.outstanding.fetch_or(bit, Ordering::SeqCst) & bit != 0 {
            self.contract.violation(format!(
                "second outstanding {op:?} operation on {socket:?} (its IRP is still in use)"
            ));
        }
    }

    fn end(&self, op: OpKind) {
        self.outstanding.fetch_and(!op_bit(op), Ordering::SeqCst);
    }
}

impl Drop for SocketIo {
    fn drop(&mut self) {
        if self.shared.work_item_queued.load(Ordering::SeqCst) {
            self.shared.contract.violation(format!(
                "{:?} socket I/O resources (and its IO_WORKITEM) freed while the work item is queued",
                self.shared.kind
            ));
        }
        let outstanding = self.shared.outstanding.load(Ordering::SeqCst);
        if outstanding != 0 {
            self.shared.contract.violation(format!(
                "{:?} socket I/O resources freed with operations outstanding (mask {outstanding:#x})",
                self.shared.kind
            ));
        }
        // SAFETY: `block` came from `allocate` on this pool with IRP_TAG and is freed once.
        unsafe { self.pool.free(self.block, IRP_TAG) };
    }
}

impl SocketIo {
    /// The sub-slice `range` of the connection's buffer, if it lies inside it.
    fn range(&self, range: &Range<usize>) -> Option<BufPtr> {
        let buffer = self.buffer?;
        if range.start > range.end || range.end > buffer.len() || range.is_empty() {
            return None;
        }
        // SAFETY: `range.start < buffer.len()`, so the offset stays inside the allocation.
        Some(BufPtr(unsafe { buffer.cast::<u8>().add(range.start) }))
    }
}

enum Io {
    /// `WskSocket` done, not bound yet.
    Created(Socket),
    Listening(mio::net::TcpListener),
    Connected(mio::net::TcpStream),
    Gone,
}

struct PendingRecv<T> {
    token: T,
    ptr: BufPtr,
    len: usize,
    io: Arc<IoShared>,
}

struct PendingSend<T> {
    token: T,
    ptr: BufPtr,
    len: usize,
    done: usize,
    io: Arc<IoShared>,
}

struct PendingDisconnect<T> {
    token: T,
    io: Arc<IoShared>,
}

#[allow(clippy::struct_excessive_bools)] // One flag per socket fact WSK tracks (FINs, close, dead).
struct SockState<T> {
    io: Io,
    /// The socket context: the listener token given to `WskSocket`, or the accepted socket's
    /// context the accept event wrote (`None`: NULL, as the driver writes).
    context: Option<T>,
    /// An accepted socket whose accept event has not written its out-parameters yet: no call
    /// on it is allowed before they are.
    awaiting_accept: bool,
    local: Option<SocketAddr>,
    recv: Option<PendingRecv<T>>,
    send: Option<PendingSend<T>>,
    disconnect: Option<PendingDisconnect<T>>,
    fin_received: bool,
    fin_sent: bool,
    /// `WskCloseSocket` was called.
    close_requested: bool,
    /// Listener reported as no longer functional ([`Wsk::fail_listeners`]): accepts no more.
    dead: bool,
    /// An IPv6 listener's `IPV6_V6ONLY` was set.
    ipv6_only: bool,
    /// The close's token while it waits for running callbacks.
    closing: Option<(T, Arc<IoShared>)>,
    callbacks_running: usize,
}

struct SocketEntry<T> {
    handle: SocketHandle,
    kind: SocketKind,
    binding: Arc<BindingState>,
    state: Mutex<SockState<T>>,
    /// Provider calls on this socket that have been made and not yet returned.
    executing: AtomicUsize,
}

impl<T> SocketEntry<T> {
    fn lock(&self) -> MutexGuard<'_, SockState<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The WSK side of one binding.
pub struct BindingState {
    id: BindingId,
    detached: AtomicBool,
    open: Mutex<BTreeSet<SocketHandle>>,
    /// `WSK_SET_STATIC_EVENT_CALLBACKS` with `WSK_EVENT_ACCEPT` succeeded: accept events are
    /// delivered (without it, connections would wait for a `WskAccept` the driver never makes).
    accept_events: AtomicBool,
    /// A socket was created (static event callbacks must be set before that).
    socket_created: AtomicBool,
    /// WSK calls admitted and not yet returned.
    in_progress: AtomicUsize,
    /// The binding's timer (`KTIMER` + DPC + work item in the kernel).
    timer: Mutex<TimerSlot>,
}

/// The state of a binding's timer: armed or not, and which arm (a cancelled arm's thread finds
/// another generation and does nothing).
#[derive(Default)]
struct TimerSlot {
    armed: bool,
    generation: u64,
}

impl BindingState {
    fn open(&self) -> MutexGuard<'_, BTreeSet<SocketHandle>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn timer(&self) -> MutexGuard<'_, TimerSlot> {
        self.timer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

type Job = Box<dyn FnOnce() + Send>;
type CallHook = Box<dyn FnOnce() + Send>;

struct Shared<T> {
    contract: Arc<Contract>,
    pool: Pool,
    mode: WskMode,
    registry: mio::Registry,
    waker: Waker,
    sockets: Mutex<HashMap<u64, Arc<SocketEntry<T>>>>,
    bindings: Mutex<HashMap<BindingId, Arc<BindingState>>>,
    next_socket: AtomicU64,
    inline_counter: AtomicUsize,
    faults: Mutex<Vec<Fault>>,
    counters: Mutex<WskCounters>,
    /// Listener setups that failed: the address and the status reported.
    setup_failures: Mutex<Vec<(SocketAddr, NtStatus)>>,
    jobs: Mutex<VecDeque<Job>>,
    jobs_ready: Condvar,
    stopping: AtomicBool,
    /// WSK calls admitted so far, and an action to start (on its own thread) at call N.
    calls: AtomicUsize,
    call_hook: Mutex<Option<(usize, CallHook)>>,
    characteristics: Mutex<ProviderCharacteristics>,
}

/// The emulated WSK subsystem (the provider module registered with the NMR). Cloning shares it.
pub struct Wsk<T: Upcall> {
    shared: Arc<Shared<T>>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl<T: Upcall> Clone for Wsk<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            threads: Arc::clone(&self.threads),
        }
    }
}

/// Maps a host socket error to the NTSTATUS WSK would report.
#[must_use]
pub fn status_of(error: &io::Error) -> NtStatus {
    match error.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => NtStatus::CONNECTION_RESET,
        io::ErrorKind::ConnectionAborted => NtStatus::CONNECTION_ABORTED,
        io::ErrorKind::AddrInUse => NtStatus::ADDRESS_ALREADY_EXISTS,
        io::ErrorKind::AddrNotAvailable => INVALID_ADDRESS_COMPONENT,
        io::ErrorKind::PermissionDenied => ACCESS_DENIED,
        io::ErrorKind::NotConnected => CONNECTION_DISCONNECTED,
        io::ErrorKind::OutOfMemory => NtStatus::INSUFFICIENT_RESOURCES,
        _ => NtStatus::UNSUCCESSFUL,
    }
}

/// A WSK call admitted on a binding and not yet returned (counted in `in_progress`).
struct InProgress(Arc<BindingState>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.in_progress.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Decrements a socket's `executing` count when a provider call returns.
/// What differs between `WskReceive`, `WskSend` and `WskDisconnect` in [`WskClient::submit`].
struct OpSpec<T: Upcall> {
    /// The WSK function, for violation messages.
    call: &'static str,
    /// The operation's kind.
    op: OpKind,
    /// The fault that makes it fail.
    fault: FaultOp,
    /// Whether an operation of this kind is already outstanding (or can't be made).
    busy: fn(&SockState<T>) -> bool,
    /// How a violation message says why the socket was busy.
    busy_why: &'static str,
    /// The completion reporting a failure with `status`.
    failed: fn(NtStatus) -> Completion<SocketHandle>,
}

struct Executing<'a>(&'a AtomicUsize);

impl Drop for Executing<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<T: Upcall> Wsk<T> {
    /// Starts the subsystem: the reactor thread and `mode.workers` worker threads.
    ///
    /// # Errors
    /// The host refused to create the poller or a thread.
    pub fn start(contract: Arc<Contract>, pool: Pool, mode: WskMode) -> io::Result<Self> {
        let poller = Poll::new()?;
        let registry = poller.registry().try_clone()?;
        let waker = Waker::new(poller.registry(), WAKER)?;
        let shared = Arc::new(Shared {
            contract,
            pool,
            mode,
            registry,
            waker,
            sockets: Mutex::new(HashMap::new()),
            bindings: Mutex::new(HashMap::new()),
            next_socket: AtomicU64::new(1),
            inline_counter: AtomicUsize::new(0),
            faults: Mutex::new(Vec::new()),
            counters: Mutex::new(WskCounters::default()),
            setup_failures: Mutex::new(Vec::new()),
            jobs: Mutex::new(VecDeque::new()),
            jobs_ready: Condvar::new(),
            stopping: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
            call_hook: Mutex::new(None),
            characteristics: Mutex::new(ProviderCharacteristics {
                highest_version: 0x0100,
                lowest_version: 0x0100,
            }),
        });
        let mut threads = Vec::new();
        let reactor = Arc::clone(&shared);
        threads.push(
            std::thread::Builder::new()
                .name("wsk-reactor".into())
                .spawn(move || Shared::run_reactor(&reactor, poller))?,
        );
        for n in 0..mode.workers.max(1) {
            let worker = Arc::clone(&shared);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("wsk-worker-{n}"))
                    .spawn(move || worker.run_worker())?,
            );
        }
        Ok(Self {
            shared,
            threads: Arc::new(Mutex::new(threads)),
        })
    }

    /// Stops the threads (pending jobs are run first). Idempotent.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.jobs_ready.notify_all();
        let _ = self.shared.waker.wake();
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for thread in threads {
            let _ = thread.join();
        }
    }

    /// Starts `action` on a new thread when the `nth` WSK call from now on is made (while that
    /// call is executing): e.g. a provider deregistration at an arbitrary moment.
    pub fn at_call(&self, nth: usize, action: impl FnOnce() + Send + 'static) {
        let at = self.shared.calls.load(Ordering::SeqCst) + nth;
        *self
            .shared
            .call_hook
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((at, Box::new(action)));
    }

    /// WSK calls made so far (all bindings).
    #[must_use]
    pub fn calls(&self) -> usize {
        self.shared.calls.load(Ordering::SeqCst)
    }

    /// Sets the WSK version range the subsystem advertises at attach.
    pub fn set_characteristics(&self, characteristics: ProviderCharacteristics) {
        *self
            .shared
            .characteristics
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = characteristics;
    }

    /// Makes the `nth` (counting from 1) next call of `op` fail with `status`.
    pub fn inject(&self, op: FaultOp, nth: usize, status: NtStatus) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Fault {
                op,
                skip: nth.saturating_sub(1),
                status,
            });
    }

    /// The subsystem's counters.
    #[must_use]
    pub fn counters(&self) -> WskCounters {
        *self
            .shared
            .counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Local addresses of the sockets listening right now, sorted (IPv4 first): the listeners
    /// open from their work items, in no fixed order.
    #[must_use]
    pub fn listening(&self) -> Vec<SocketAddr> {
        let mut list: Vec<SocketAddr> = self
            .shared
            .sockets()
            .values()
            .filter_map(|entry| {
                let state = entry.lock();
                match (&state.io, state.local) {
                    (Io::Listening(_), Some(local)) if !state.close_requested && !state.dead => {
                        Some(local)
                    }
                    _ => None,
                }
            })
            .collect();
        list.sort_unstable();
        list
    }

    /// `WskSocket` / `WskBind` calls for listeners that failed, with the address asked for.
    #[must_use]
    pub fn setup_failures(&self) -> Vec<(SocketAddr, NtStatus)> {
        self.shared
            .setup_failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sockets currently open (any binding).
    #[must_use]
    pub fn open_sockets(&self) -> usize {
        self.shared.sockets().len()
    }

    /// Makes every listening socket report that it stopped working (accept event with no
    /// socket), as when the transport goes away under it.
    pub fn fail_listeners(&self) {
        let listeners: Vec<Arc<SocketEntry<T>>> = self
            .shared
            .sockets()
            .values()
            .filter(|e| e.kind == SocketKind::Listener)
            .cloned()
            .collect();
        for entry in listeners {
            let context = {
                let mut state = entry.lock();
                if state.close_requested || state.dead || !matches!(state.io, Io::Listening(_)) {
                    continue;
                }
                state.dead = true;
                state.callbacks_running += 1;
                state.context
            };
            let shared = Arc::clone(&self.shared);
            self.shared.post(Box::new(move || {
                if let Some(context) = context {
                    let _ = callback::inside(Callback::AcceptEvent, || {
                        irql::at_dispatch(|| {
                            // SAFETY: the listener is open: its close waits for this callback.
                            unsafe { context.accept_event(None, None, &mut |_| {}) }
                        })
                    });
                }
                shared.callback_returned(&entry);
            }));
        }
    }

    /// Creates the client-side provider object for binding `handle` (used by
    /// [`ProviderModule::attach_client`]).
    fn new_client(&self, handle: &BindingHandle<Self>) -> WskClient<T> {
        let binding = Arc::new(BindingState {
            id: handle.id(),
            detached: AtomicBool::new(false),
            open: Mutex::new(BTreeSet::new()),
            accept_events: AtomicBool::new(false),
            socket_created: AtomicBool::new(false),
            in_progress: AtomicUsize::new(0),
            timer: Mutex::new(TimerSlot::default()),
        });
        self.shared
            .bindings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(handle.id(), Arc::clone(&binding));
        WskClient {
            shared: Arc::clone(&self.shared),
            binding,
            nmr: handle.clone(),
        }
    }
}

impl<T: Upcall> ProviderModule for Wsk<T> {
    type Binding = WskClient<T>;

    fn characteristics(&self) -> ProviderCharacteristics {
        *self
            .shared
            .characteristics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn attach_client(&self, handle: &BindingHandle<Self>) -> Result<WskClient<T>, NtStatus> {
        Ok(self.new_client(handle))
    }

    fn client_detached(&self, id: BindingId) -> bool {
        let Some(binding) = self
            .shared
            .bindings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
        else {
            return true;
        };
        binding.detached.store(true, Ordering::SeqCst);
        if binding.timer().armed {
            self.shared.contract.violation(format!(
                "detach of binding {id} reported complete with its timer armed (a tick would \
                 run on a freed binding)"
            ));
        }
        let in_progress = binding.in_progress.load(Ordering::SeqCst);
        if in_progress > 0 {
            self.shared.contract.violation(format!(
                "detach of binding {id} reported complete while {in_progress} WSK call(s) had not returned"
            ));
        }
        let open = binding.open();
        if open.is_empty() {
            return true;
        }
        let handles: Vec<SocketHandle> = open.iter().copied().collect();
        drop(open);
        let list: Vec<String> = handles.iter().map(|h| format!("{h:?}")).collect();
        self.shared.contract.violation(format!(
            "detach of binding {id} completed with {} socket(s) still open: {}",
            list.len(),
            list.join(", ")
        ));
        // The subsystem tears them down itself (no completion reaches the driver any more).
        for handle in handles {
            let entry = self.shared.sockets().get(&handle.0).cloned();
            if let Some(entry) = entry {
                let io = std::mem::replace(&mut entry.lock().io, Io::Gone);
                match io {
                    Io::Connected(mut stream) => {
                        let _ = self.shared.registry.deregister(&mut stream);
                        abort(&stream);
                    }
                    Io::Listening(mut listener) => {
                        let _ = self.shared.registry.deregister(&mut listener);
                    }
                    Io::Created(_) | Io::Gone => {}
                }
                self.shared.sockets().remove(&handle.0);
            }
        }
        binding.open().clear();
        true
    }

    fn cleaned_up(&self, id: BindingId) {
        self.shared
            .bindings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }
}

impl<T: Upcall> Shared<T> {
    fn sockets(&self) -> MutexGuard<'_, HashMap<u64, Arc<SocketEntry<T>>>> {
        self.sockets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn counters(&self) -> MutexGuard<'_, WskCounters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn post(&self, job: Job) {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(job);
        self.jobs_ready.notify_one();
    }

    fn run_worker(&self) {
        loop {
            let job = {
                let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
                loop {
                    if let Some(job) = jobs.pop_front() {
                        break Some(job);
                    }
                    if self.stopping.load(Ordering::SeqCst) {
                        break None;
                    }
                    jobs = self
                        .jobs_ready
                        .wait(jobs)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            };
            match job {
                // Each job declares its IRQL: completions and events raise to DISPATCH_LEVEL,
                // work items run at PASSIVE_LEVEL.
                Some(job) => {
                    let _ = self
                        .contract
                        .guard("a completion, WSK event callback or work item", job);
                }
                None => return,
            }
        }
    }

    fn count_call(&self) {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let mut hook = self
            .call_hook
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if hook.as_ref().is_some_and(|(at, _)| *at == n)
            && let Some((_, action)) = hook.take()
        {
            drop(hook);
            std::thread::spawn(action);
        }
    }

    fn setup_failed(&self, local: SocketAddr, status: NtStatus) {
        self.setup_failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((local, status));
    }

    fn fault(&self, op: FaultOp) -> Option<NtStatus> {
        let mut faults = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        let index = faults.iter().position(|f| f.op == op)?;
        let fault = faults.get_mut(index)?;
        if fault.skip > 0 {
            fault.skip -= 1;
            return None;
        }
        Some(faults.remove(index).status)
    }

    /// Whether a completion known during the call is delivered inline.
    fn inline_now(&self) -> bool {
        match self.mode.inline {
            InlineMode::Never => false,
            InlineMode::Always => true,
            InlineMode::Alternate => self
                .inline_counter
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(2),
        }
    }

    /// Delivers a completion: inline if `inline`, otherwise on a worker.
    fn deliver(
        &self,
        inline: bool,
        token: T,
        io: Arc<IoShared>,
        op: OpKind,
        completion: Completion<SocketHandle>,
    ) {
        let run = move || {
            io.end(op);
            callback::inside(Callback::IoCompletion, || {
                // SAFETY: one completion per operation, with the operation's token.
                irql::at_dispatch(|| unsafe { token.complete(completion) });
            });
        };
        if inline {
            run();
        } else {
            self.post(Box::new(run));
        }
    }

    fn new_entry(
        &self,
        kind: SocketKind,
        binding: &Arc<BindingState>,
        io: Io,
        context: Option<T>,
    ) -> Arc<SocketEntry<T>> {
        let handle = SocketHandle(self.next_socket.fetch_add(1, Ordering::SeqCst));
        let entry = Arc::new(SocketEntry {
            handle,
            kind,
            binding: Arc::clone(binding),
            state: Mutex::new(SockState {
                io,
                context,
                awaiting_accept: false,
                local: None,
                recv: None,
                send: None,
                disconnect: None,
                fin_received: false,
                fin_sent: false,
                close_requested: false,
                dead: false,
                ipv6_only: false,
                closing: None,
                callbacks_running: 0,
            }),
            executing: AtomicUsize::new(0),
        });
        binding.open().insert(handle);
        self.sockets().insert(handle.0, Arc::clone(&entry));
        entry
    }

    /// Forgets a socket whose handle is gone.
    fn remove_entry(&self, entry: &SocketEntry<T>) {
        self.sockets().remove(&entry.handle.0);
        entry.binding.open().remove(&entry.handle);
    }

    fn run_reactor(self: &Arc<Self>, mut poll: Poll) {
        let mut events = Events::with_capacity(256);
        while !self.stopping.load(Ordering::SeqCst) {
            if let Err(error) = poll.poll(&mut events, Some(Duration::from_millis(200))) {
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                self.contract
                    .violation(format!("harness reactor failed: {error}"));
                return;
            }
            for event in &events {
                if event.token() == WAKER {
                    continue;
                }
                let Ok(id) = u64::try_from(event.token().0) else {
                    continue;
                };
                let Some(entry) = self.sockets().get(&id).cloned() else {
                    continue;
                };
                match entry.kind {
                    SocketKind::Listener => self.accept_ready(&entry),
                    SocketKind::Connection => self.connection_ready(&entry),
                }
            }
        }
    }

    /// Accepts every queued connection and delivers one accept event for each, on workers.
    fn accept_ready(self: &Arc<Self>, listener: &Arc<SocketEntry<T>>) {
        if !listener.binding.accept_events.load(Ordering::SeqCst) {
            return;
        }
        loop {
            let (mut stream, remote, context) = {
                let mut state = listener.lock();
                let Io::Listening(socket) = &state.io else {
                    return;
                };
                if state.dead {
                    return;
                }
                match socket.accept() {
                    Ok((stream, remote)) => {
                        state.callbacks_running += 1;
                        (stream, remote, state.context)
                    }
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    Err(error) if error.kind() == io::ErrorKind::ConnectionAborted => continue,
                    Err(_) => return,
                }
            };
            let Some(context) = context else {
                abort(&stream);
                self.callback_returned(listener);
                continue;
            };
            let entry = self.new_entry(SocketKind::Connection, &listener.binding, Io::Gone, None);
            let token = Token(usize::try_from(entry.handle.0).unwrap_or(0));
            if self
                .registry
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                .is_err()
            {
                abort(&stream);
                self.remove_entry(&entry);
                self.callback_returned(listener);
                continue;
            }
            entry.lock().io = Io::Connected(stream);
            let shared = Arc::clone(self);
            let listener = Arc::clone(listener);
            self.post(Box::new(move || {
                irql::at_dispatch(|| shared.deliver_accept(&listener, &entry, context, remote));
            }));
        }
    }

    /// Runs one `WskAcceptEvent` (on a worker, at `DISPATCH_LEVEL`).
    fn deliver_accept(
        &self,
        listener: &Arc<SocketEntry<T>>,
        entry: &Arc<SocketEntry<T>>,
        context: T,
        remote: SocketAddr,
    ) {
        let status = if listener.lock().close_requested {
            NtStatus::REQUEST_NOT_ACCEPTED
        } else {
            entry.lock().awaiting_accept = true;
            let mut write_out = |context: Option<T>| {
                let mut state = entry.lock();
                state.context = context;
                state.awaiting_accept = false;
            };
            callback::inside(Callback::AcceptEvent, || {
                irql::at_dispatch(|| {
                    // SAFETY: the listener is open and its close waits for this callback to
                    // return.
                    unsafe {
                        context.accept_event(Some(entry.handle), Some(remote), &mut write_out)
                    }
                })
            })
        };
        let unwritten = std::mem::replace(&mut entry.lock().awaiting_accept, false);
        if status == NtStatus::SUCCESS {
            if unwritten {
                self.contract.violation(format!(
                    "WskAcceptEvent accepted {:?} without writing its out-parameters",
                    entry.handle
                ));
            }
            self.counters().accepted += 1;
        } else {
            if status != NtStatus::REQUEST_NOT_ACCEPTED {
                self.contract.violation(format!(
                    "WskAcceptEvent returned {status} (only STATUS_SUCCESS or STATUS_REQUEST_NOT_ACCEPTED)"
                ));
            }
            // WSK closes a refused socket itself.
            let io = std::mem::replace(&mut entry.lock().io, Io::Gone);
            if let Io::Connected(mut stream) = io {
                let _ = self.registry.deregister(&mut stream);
                abort(&stream);
            }
            self.remove_entry(entry);
            self.counters().refused += 1;
        }
        self.callback_returned(listener);
    }

    /// An event callback on `entry` returned; finishes a close that waited for it.
    fn callback_returned(&self, entry: &SocketEntry<T>) {
        let closing = {
            let mut state = entry.lock();
            state.callbacks_running = state.callbacks_running.saturating_sub(1);
            if state.callbacks_running == 0 {
                state.closing.take()
            } else {
                None
            }
        };
        if let Some((token, io)) = closing {
            self.remove_entry(entry);
            self.deliver(false, token, io, OpKind::Close, Completion::Closed);
        }
    }

    /// Finishes what a connection's readiness allows: pending receive, send, disconnect.
    fn connection_ready(&self, entry: &SocketEntry<T>) {
        let mut done: Vec<(T, Arc<IoShared>, OpKind, Completion<SocketHandle>)> = Vec::new();
        {
            let mut state = entry.lock();
            self.progress(&mut state, &mut done);
        }
        for (token, io, op, completion) in done {
            self.deliver(false, token, io, op, completion);
        }
    }

    /// Attempts the pending operations of a connection; finished ones go to `done`.
    fn progress(
        &self,
        state: &mut SockState<T>,
        done: &mut Vec<(T, Arc<IoShared>, OpKind, Completion<SocketHandle>)>,
    ) {
        let Io::Connected(stream) = &state.io else {
            return;
        };
        if let Some(recv) = state.recv.take() {
            match try_receive(stream, recv.ptr, recv.len) {
                None => state.recv = Some(recv),
                Some(result) => {
                    match result {
                        Ok(0) => state.fin_received = true,
                        Ok(n) => self.counters().bytes_received += n as u64,
                        Err(_) => {}
                    }
                    done.push((
                        recv.token,
                        recv.io,
                        OpKind::Receive,
                        Completion::Received(result),
                    ));
                }
            }
        }
        if let Some(mut send) = state.send.take() {
            match try_send(stream, &mut send) {
                None => state.send = Some(send),
                Some(result) => {
                    if let Ok(n) = result {
                        self.counters().bytes_sent += n as u64;
                    }
                    done.push((send.token, send.io, OpKind::Send, Completion::Sent(result)));
                }
            }
        }
        if state.send.is_none()
            && let Some(disconnect) = state.disconnect.take()
        {
            let result = stream.shutdown(Shutdown::Write).map_err(|e| status_of(&e));
            state.fin_sent |= result.is_ok();
            done.push((
                disconnect.token,
                disconnect.io,
                OpKind::Disconnect,
                Completion::Disconnected(result),
            ));
        }
    }
}

/// Sets `SO_LINGER` 0 so that closing sends RST (an abortive close).
fn abort(stream: &mio::net::TcpStream) {
    let _ = SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// One non-blocking read into the driver's buffer; `None` = would block.
fn try_receive(
    stream: &mio::net::TcpStream,
    ptr: BufPtr,
    len: usize,
) -> Option<Result<usize, NtStatus>> {
    // SAFETY: `ptr..ptr+len` lies inside the connection's buffer (checked when the
    // receive was posted), which stays valid while the receive is outstanding, and the driver
    // does not touch this range until the receive completes.
    let buffer = unsafe { std::slice::from_raw_parts_mut(ptr.0.as_ptr(), len) };
    loop {
        let mut reader = stream;
        match reader.read(buffer) {
            Ok(n) => return Some(Ok(n)),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return None,
            Err(error) => return Some(Err(status_of(&error))),
        }
    }
}

/// Writes as much of a pending send as the socket takes; `Some` once all of it is sent.
fn try_send<T>(
    stream: &mio::net::TcpStream,
    send: &mut PendingSend<T>,
) -> Option<Result<usize, NtStatus>> {
    while send.done < send.len {
        let start = send.ptr.0.as_ptr().wrapping_add(send.done);
        // SAFETY: as in `try_receive`: `start..start + (len - done)` is inside the
        // connection's buffer, valid and unchanged while the send is outstanding (`done < len`).
        let rest = unsafe { std::slice::from_raw_parts(start, send.len - send.done) };
        let mut writer = stream;
        match writer.write(rest) {
            Ok(0) => return Some(Err(NtStatus::CONNECTION_RESET)),
            Ok(n) => send.done += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return None,
            Err(error) => return Some(Err(status_of(&error))),
        }
    }
    Some(Ok(send.len))
}

/// The provider side of one binding, as the driver sees it (`PWSK_CLIENT` + dispatch tables).
/// `host_provider.rs` implements the core's `Provider` trait over it.
pub struct WskClient<T: Upcall> {
    shared: Arc<Shared<T>>,
    binding: Arc<BindingState>,
    nmr: BindingHandle<Wsk<T>>,
}

type Done<T> = Vec<(T, Arc<IoShared>, OpKind, Completion<SocketHandle>)>;

impl<T: Upcall> WskClient<T> {
    /// The NMR binding this provider object belongs to.
    #[must_use]
    pub fn binding_id(&self) -> BindingId {
        self.binding.id
    }

    /// Admits a call into WSK, or records that it came after the detach completed.
    fn admit(&self, call: &str) -> Option<InProgress> {
        self.shared.count_call();
        if let Some(inside) = callback::current() {
            self.shared.contract.violation(format!(
                "{call} called inside {inside} (WSK functions are called from a work item, \
                 never from a completion routine or an event callback)"
            ));
        }
        if self.binding.detached.load(Ordering::SeqCst) {
            self.shared.contract.violation(format!(
                "{call} called after the detach of binding {} completed",
                self.binding.id
            ));
            return None;
        }
        self.binding.in_progress.fetch_add(1, Ordering::SeqCst);
        Some(InProgress(Arc::clone(&self.binding)))
    }

    fn entry(&self, socket: SocketHandle, call: &str) -> Option<Arc<SocketEntry<T>>> {
        let entry = self.shared.sockets().get(&socket.0).cloned();
        match &entry {
            None => self.shared.contract.violation(format!(
                "{call} on {socket:?}, which is closed or was never opened"
            )),
            Some(entry) if entry.lock().awaiting_accept => {
                self.shared.contract.violation(format!(
                    "{call} on {socket:?} before its WskAcceptEvent wrote the out-parameters"
                ));
            }
            Some(_) => {}
        }
        entry
    }

    fn deliver_all(&self, inline: bool, done: Done<T>) {
        if done.is_empty() {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let run = move || {
            for (token, io, op, completion) in done {
                shared.deliver(true, token, io, op, completion);
            }
        };
        if inline {
            irql::at_dispatch(run);
        } else {
            self.shared.post(Box::new(run));
        }
    }

    /// Allocates a socket's I/O resources (accounted in the pool with [`IRP_TAG`]).
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES` when the (possibly injected) allocation fails.
    pub fn new_socket_io(
        &self,
        kind: SocketKind,
        buffer: Option<NonNull<[u8]>>,
    ) -> Result<SocketIo, NtStatus> {
        if (kind == SocketKind::Connection) != buffer.is_some() {
            self.shared.contract.violation(format!(
                "{kind:?} socket I/O with {} buffer",
                if buffer.is_some() { "a" } else { "no" }
            ));
        }
        let block = self
            .shared
            .pool
            .allocate(IRP_BLOCK_SIZE, IRP_TAG)
            .ok_or(NtStatus::INSUFFICIENT_RESOURCES)?;
        Ok(SocketIo {
            buffer,
            block,
            pool: self.shared.pool.clone(),
            shared: Arc::new(IoShared {
                outstanding: AtomicU8::new(0),
                work_item_queued: AtomicBool::new(false),
                kind,
                contract: Arc::clone(&self.shared.contract),
            }),
        })
    }

    /// `IoQueueWorkItem` of the socket's work item (part of its I/O resources): `token`'s
    /// [`Upcall::run_work_item`] runs on a worker at `PASSIVE_LEVEL`, outside every callback.
    /// Queueing a work item that is already queued is a violation, as in the kernel
    /// (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-ioqueueworkitem>);
    /// the system dequeues it before its routine runs, so the routine may queue it again.
    pub fn queue_work_item(&self, io: &SocketIo, token: T) {
        if io.shared.work_item_queued.swap(true, Ordering::SeqCst) {
            self.shared.contract.violation(format!(
                "IoQueueWorkItem: the {:?} socket's work item is already queued",
                io.shared.kind
            ));
            return;
        }
        let io = Arc::clone(&io.shared);
        self.shared.post(Box::new(move || {
            io.work_item_queued.store(false, Ordering::SeqCst);
            drop(io);
            // SAFETY: one run per queueing, with its token.
            irql::at_passive(|| unsafe { token.run_work_item() });
        }));
    }

    /// `WskControlClient(WSK_SET_STATIC_EVENT_CALLBACKS, WSK_EVENT_ACCEPT)`.
    ///
    /// # Errors
    /// An injected failure.
    pub fn enable_accept_events(&self) -> Result<(), NtStatus> {
        let Some(_call) = self.admit("WskControlClient") else {
            return Err(NtStatus::INVALID_DEVICE_STATE);
        };
        if self.binding.socket_created.load(Ordering::SeqCst) {
            self.shared.contract.violation(format!(
                "WSK_SET_STATIC_EVENT_CALLBACKS after binding {} created a socket (it must come first)",
                self.binding.id
            ));
        }
        let result = self
            .shared
            .fault(FaultOp::EnableAcceptEvents)
            .map_or(Ok(()), Err);
        self.binding
            .accept_events
            .store(result.is_ok(), Ordering::SeqCst);
        result
    }

    /// `WskSocket` for a listening socket.
    pub fn open_listener(&self, io: &SocketIo, local: SocketAddr, token: T) {
        let Some(_call) = self.admit("WskSocket") else {
            return;
        };
        io.shared.begin(OpKind::Setup, SocketHandle(0));
        self.binding.socket_created.store(true, Ordering::SeqCst);
        let inline = self.shared.inline_now();
        let result = self.shared.fault(FaultOp::Open).map_or_else(
            || new_listener_socket(local).map_err(|e| status_of(&e)),
            Err,
        );
        if let Err(status) = result {
            self.shared.setup_failed(local, status);
        }
        let completion = result.map(|socket| {
            self.shared
                .new_entry(
                    SocketKind::Listener,
                    &self.binding,
                    Io::Created(socket),
                    Some(token),
                )
                .handle
        });
        self.deliver_all(
            inline,
            vec![(
                token,
                Arc::clone(&io.shared),
                OpKind::Setup,
                Completion::Created(completion),
            )],
        );
    }

    /// `WskControlSocket(WskSetOption)` of `option` to 1.
    pub fn set_option(&self, io: &SocketIo, socket: SocketHandle, option: SocketOption, token: T) {
        match option {
            SocketOption::Ipv6Only => self.set_ipv6_only(io, socket, token),
            SocketOption::NoDelay => self.set_no_delay(io, socket, token),
        }
    }

    /// `TCP_NODELAY` (`IPPROTO_TCP`) = 1 on an accepted connection.
    fn set_no_delay(&self, io: &SocketIo, socket: SocketHandle, token: T) {
        self.setup_step(io, socket, token, "WskControlSocket", |entry| {
            let result = self.shared.fault(FaultOp::SetNoDelay).map_or_else(
                || {
                    let state = entry.lock();
                    if let Io::Connected(stream) = &state.io {
                        let set = stream.set_nodelay(true).map_err(|e| status_of(&e));
                        if set.is_ok() {
                            self.shared.counters().no_delay += 1;
                        }
                        set
                    } else {
                        drop(state);
                        self.shared.contract.violation(format!(
                            "WskControlSocket(TCP_NODELAY) on {socket:?}, which is not a \
                             connection"
                        ));
                        Err(NtStatus::INVALID_DEVICE_STATE)
                    }
                },
                Err,
            );
            Completion::OptionSet(result)
        });
    }

    /// `WskControlSocket(WskSetOption, IPV6_V6ONLY, IPPROTO_IPV6)` = 1 on a new listening
    /// socket (before `WskBind`).
    fn set_ipv6_only(&self, io: &SocketIo, socket: SocketHandle, token: T) {
        self.setup_step(io, socket, token, "WskControlSocket", |entry| {
            let result = self.shared.fault(FaultOp::SetIpv6Only).map_or_else(
                || {
                    let mut state = entry.lock();
                    if let Io::Created(host) = &state.io {
                        let set = host.set_only_v6(true).map_err(|e| status_of(&e));
                        state.ipv6_only |= set.is_ok();
                        set
                    } else {
                        drop(state);
                        self.shared.contract.violation(format!(
                            "WskControlSocket(IPV6_V6ONLY) on {socket:?}, which is not a new \
                             socket (the option must be set before WskBind)"
                        ));
                        Err(NtStatus::INVALID_DEVICE_STATE)
                    }
                },
                Err,
            );
            Completion::OptionSet(result)
        });
    }

    /// `WskBind`; the socket listens once bound.
    pub fn bind(&self, io: &SocketIo, socket: SocketHandle, local: SocketAddr, token: T) {
        self.setup_step(io, socket, token, "WskBind", |entry| {
            if local.is_ipv6() && !entry.lock().ipv6_only {
                self.shared.contract.violation(format!(
                    "WskBind of IPv6 listener {socket:?} to {local} without IPV6_V6ONLY \
                     (WskControlSocket before the bind: WSK's default is not documented)"
                ));
            }
            let result = self
                .shared
                .fault(FaultOp::Bind)
                .map_or_else(|| self.listen(entry, local), Err);
            if let Err(status) = result {
                self.shared.setup_failed(local, status);
            }
            Completion::Bound(result)
        });
    }

    /// What the listener setup calls after `WskSocket` share: admission, the socket's entry,
    /// "executing" while `step` runs, the Setup operation outstanding, and the completion
    /// `step` returns delivered (inline or on a worker, by the completion mode).
    fn setup_step(
        &self,
        io: &SocketIo,
        socket: SocketHandle,
        token: T,
        call: &str,
        step: impl FnOnce(&SocketEntry<T>) -> Completion<SocketHandle>,
    ) {
        let Some(_call) = self.admit(call) else {
            return;
        };
        let Some(entry) = self.entry(socket, call) else {
            return;
        };
        entry.executing.fetch_add(1, Ordering::SeqCst);
        let _executing = Executing(&entry.executing);
        io.shared.begin(OpKind::Setup, socket);
        let inline = self.shared.inline_now();
        let completion = step(&entry);
        self.deliver_all(
            inline,
            vec![(token, Arc::clone(&io.shared), OpKind::Setup, completion)],
        );
    }

    fn listen(&self, entry: &SocketEntry<T>, local: SocketAddr) -> Result<(), NtStatus> {
        let mut state = entry.lock();
        let Io::Created(socket) = std::mem::replace(&mut state.io, Io::Gone) else {
            drop(state);
            self.shared.contract.violation(format!(
                "WskBind on {:?}, which is not a new socket",
                entry.handle
            ));
            return Err(NtStatus::INVALID_DEVICE_STATE);
        };
        let bound = socket
            .bind(&local.into())
            .and_then(|()| socket.listen(BACKLOG));
        if let Err(error) = bound {
            state.io = Io::Created(socket);
            return Err(status_of(&error));
        }
        let mut listener = mio::net::TcpListener::from_std(std::net::TcpListener::from(socket));
        let token = Token(usize::try_from(entry.handle.0).unwrap_or(0));
        if let Err(error) = self
            .shared
            .registry
            .register(&mut listener, token, Interest::READABLE)
        {
            return Err(status_of(&error));
        }
        state.local = listener.local_addr().ok();
        state.io = Io::Listening(listener);
        Ok(())
    }

    /// Common part of receive and send: admission, checks, the buffer range.
    fn begin_transfer(
        &self,
        io: &SocketIo,
        socket: SocketHandle,
        range: &Range<usize>,
        op: OpKind,
        call: &str,
    ) -> Option<(InProgress, Arc<SocketEntry<T>>, BufPtr)> {
        let call_in_progress = self.admit(call)?;
        let entry = self.entry(socket, call)?;
        io.shared.begin(op, socket);
        let Some(ptr) = io.range(range) else {
            self.shared.contract.violation(format!(
                "{call} on {socket:?} with range {range:?} outside its buffer (WSK_BUF longer than the MDL)"
            ));
            io.shared.end(op);
            return None;
        };
        Some((call_in_progress, entry, ptr))
    }

    /// `WskReceive` into `range` of the connection's buffer.
    pub fn receive(&self, io: &SocketIo, socket: SocketHandle, range: Range<usize>, token: T) {
        let Some((_call, entry, ptr)) =
            self.begin_transfer(io, socket, &range, OpKind::Receive, "WskReceive")
        else {
            return;
        };
        let spec = OpSpec {
            call: "WskReceive",
            op: OpKind::Receive,
            fault: FaultOp::Receive,
            busy: |state| state.recv.is_some(),
            busy_why: "it is being closed or receiving",
            failed: |status| Completion::Received(Err(status)),
        };
        self.submit(io, socket, &entry, token, &spec, |state, token| {
            state.recv = Some(PendingRecv {
                token,
                ptr,
                len: range.len(),
                io: Arc::clone(&io.shared),
            });
        });
    }

    /// `WskSend` of `range` of the connection's buffer.
    pub fn send(&self, io: &SocketIo, socket: SocketHandle, range: Range<usize>, token: T) {
        let Some((_call, entry, ptr)) =
            self.begin_transfer(io, socket, &range, OpKind::Send, "WskSend")
        else {
            return;
        };
        let spec = OpSpec {
            call: "WskSend",
            op: OpKind::Send,
            fault: FaultOp::Send,
            busy: |state| state.send.is_some() || state.fin_sent,
            busy_why: "it is being closed, sending, or after FIN",
            failed: |status| Completion::Sent(Err(status)),
        };
        self.submit(io, socket, &entry, token, &spec, |state, token| {
            state.send = Some(PendingSend {
                token,
                ptr,
                len: range.len(),
                done: 0,
                io: Arc::clone(&io.shared),
            });
        });
    }

    /// `WskDisconnect` (graceful: FIN after the data already queued).
    pub fn disconnect(&self, io: &SocketIo, socket: SocketHandle, token: T) {
        let Some(_call) = self.admit("WskDisconnect") else {
            return;
        };
        let Some(entry) = self.entry(socket, "WskDisconnect") else {
            return;
        };
        io.shared.begin(OpKind::Disconnect, socket);
        let spec = OpSpec {
            call: "WskDisconnect",
            op: OpKind::Disconnect,
            fault: FaultOp::Disconnect,
            busy: |state| state.disconnect.is_some(),
            busy_why: "it is being closed or disconnecting",
            failed: |status| Completion::Disconnected(Err(status)),
        };
        self.submit(io, socket, &entry, token, &spec, |state, token| {
            state.disconnect = Some(PendingDisconnect {
                token,
                io: Arc::clone(&io.shared),
            });
        });
    }

    /// What `WskReceive`, `WskSend` and `WskDisconnect` share once admitted: the call counts
    /// as executing on the socket until it returns; a socket being closed or already busy
    /// with this kind of operation is a violation; otherwise an injected fault completes the
    /// operation with an error, or `queue` hands it to the socket; what completed is then
    /// delivered (inline or on a worker, by the completion mode).
    fn submit(
        &self,
        io: &SocketIo,
        socket: SocketHandle,
        entry: &SocketEntry<T>,
        token: T,
        spec: &OpSpec<T>,
        queue: impl FnOnce(&mut SockState<T>, T),
    ) {
        entry.executing.fetch_add(1, Ordering::SeqCst);
        let _executing = Executing(&entry.executing);
        let inline = self.shared.inline_now();
        let mut done = Done::new();
        {
            let mut state = entry.lock();
            if state.close_requested || (spec.busy)(&state) {
                drop(state);
                self.shared.contract.violation(format!(
                    "{} on {socket:?} while {}",
                    spec.call, spec.busy_why
                ));
                return;
            }
            if let Some(status) = self.shared.fault(spec.fault) {
                done.push((
                    token,
                    Arc::clone(&io.shared),
                    spec.op,
                    (spec.failed)(status),
                ));
            } else {
                queue(&mut state, token);
                self.shared.progress(&mut state, &mut done);
            }
        }
        self.deliver_all(inline, done);
    }

    /// `WskCloseSocket`: cancels pending operations, waits for running callbacks, and closes
    /// (abortively unless both directions were shut down).
    pub fn close(&self, io: &SocketIo, socket: SocketHandle, token: T) {
        let Some(_call) = self.admit("WskCloseSocket") else {
            return;
        };
        let Some(entry) = self.entry(socket, "WskCloseSocket") else {
            return;
        };
        let executing = entry.executing.fetch_add(1, Ordering::SeqCst);
        let _executing = Executing(&entry.executing);
        if executing > 0 {
            self.shared.contract.violation(format!(
                "WskCloseSocket on {socket:?} while {executing} other call(s) on it are executing"
            ));
        }
        io.shared.begin(OpKind::Close, socket);
        let inline = self.shared.inline_now();
        let mut done = Done::new();
        let finished = {
            let mut state = entry.lock();
            if state.close_requested {
                drop(state);
                self.shared
                    .contract
                    .violation(format!("WskCloseSocket on {socket:?} twice"));
                return;
            }
            state.close_requested = true;
            if let Some(recv) = state.recv.take() {
                done.push((
                    recv.token,
                    recv.io,
                    OpKind::Receive,
                    Completion::Received(Err(NtStatus::CANCELLED)),
                ));
            }
            if let Some(send) = state.send.take() {
                done.push((
                    send.token,
                    send.io,
                    OpKind::Send,
                    Completion::Sent(Err(NtStatus::CANCELLED)),
                ));
            }
            if let Some(disconnect) = state.disconnect.take() {
                done.push((
                    disconnect.token,
                    disconnect.io,
                    OpKind::Disconnect,
                    Completion::Disconnected(Err(NtStatus::CANCELLED)),
                ));
            }
            match std::mem::replace(&mut state.io, Io::Gone) {
                Io::Listening(mut listener) => {
                    let _ = self.shared.registry.deregister(&mut listener);
                }
                Io::Connected(mut stream) => {
                    let _ = self.shared.registry.deregister(&mut stream);
                    let graceful = state.fin_sent && state.fin_received;
                    if !graceful {
                        abort(&stream);
                    }
                    let mut counters = self.shared.counters();
                    if graceful {
                        counters.graceful += 1;
                    } else {
                        counters.aborted += 1;
                    }
                }
                Io::Created(_) | Io::Gone => {}
            }
            if state.callbacks_running > 0 {
                state.closing = Some((token, Arc::clone(&io.shared)));
                false
            } else {
                true
            }
        };
        if finished {
            self.shared.remove_entry(&entry);
            done.push((
                token,
                Arc::clone(&io.shared),
                OpKind::Close,
                Completion::Closed,
            ));
        }
        let delay = self.shared.mode.close_delay;
        if inline || delay.is_zero() {
            self.deliver_all(inline, done);
        } else {
            let shared = Arc::clone(&self.shared);
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                let batch = Arc::clone(&shared);
                shared.post(Box::new(move || {
                    for (token, io, op, completion) in done {
                        batch.deliver(true, token, io, op, completion);
                    }
                }));
            });
        }
    }

    /// Arms the binding's timer: after `delay_ms`, `tick` runs once on a worker at
    /// `PASSIVE_LEVEL`, as the kernel's `KTIMER` DPC queues the binding's work item. Arming an
    /// armed timer, arming it after the detach completed, and a tick that would run after the
    /// detach completed are violations.
    pub fn arm_timer(&self, delay_ms: u32, tick: impl FnOnce() + Send + 'static) {
        let generation = {
            let mut timer = self.binding.timer();
            if timer.armed {
                self.shared
                    .contract
                    .violation("KeSetTimer of the binding's timer while it is armed");
            }
            if self.binding.detached.load(Ordering::SeqCst) {
                self.shared.contract.violation(format!(
                    "the timer of binding {} armed after its detach completed",
                    self.binding.id
                ));
            }
            timer.armed = true;
            timer.generation += 1;
            timer.generation
        };
        let shared = Arc::clone(&self.shared);
        let binding = Arc::clone(&self.binding);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(u64::from(delay_ms)));
            {
                let mut timer = binding.timer();
                if !timer.armed || timer.generation != generation {
                    return; // cancelled
                }
                timer.armed = false;
            }
            let contract = Arc::clone(&shared.contract);
            shared.post(Box::new(move || {
                if binding.detached.load(Ordering::SeqCst) {
                    contract.violation(format!(
                        "the tick of binding {} ran after its detach completed",
                        binding.id
                    ));
                    return;
                }
                irql::at_passive(tick);
            }));
        });
    }

    /// Cancels the binding's timer: `true` if it was armed (its tick will not run).
    #[must_use]
    pub fn cancel_timer(&self) -> bool {
        if self.binding.detached.load(Ordering::SeqCst) {
            self.shared.contract.violation(format!(
                "the timer of binding {} cancelled after its detach completed",
                self.binding.id
            ));
        }
        std::mem::take(&mut self.binding.timer().armed)
    }

    /// The NMR binding handle, for `NmrClientDetachProviderComplete`: copied out before the
    /// call, because the binding that owns `self` may be cleaned up during it.
    #[must_use]
    pub fn nmr_binding(&self) -> BindingHandle<Wsk<T>> {
        self.nmr.clone()
    }
}

/// `WskSocket(AF_INET/AF_INET6, SOCK_STREAM, IPPROTO_TCP, WSK_FLAG_LISTEN_SOCKET)`.
fn new_listener_socket(local: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(local),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if local.is_ipv6() {
        // Dual-stack until the driver sets IPV6_V6ONLY (module documentation).
        socket.set_only_v6(false)?;
    }
    // Windows lets a listener bind while old connections of the port sit in TIME_WAIT;
    // Linux needs SO_REUSEADDR for that (it still refuses a second listener on the port).
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}
