//! Binding: one attachment to the WSK subsystem (one NMR binding).
//!
//! ```text
//! attach_provider ─▶ [attached] ─detach─▶ [detaching] ─rundown drained─▶ [detached] ─cleanup─▶ freed
//! ```
//!
//! The binding lives in pool memory (tag `WEbd`) with its socket registry: slots
//! `0..endpoints` for the listeners, the next `MaxConnections` for connections. Its
//! [`Rundown`] counts the attachment itself, the attach in progress, every open socket and
//! every call into the provider in progress. [`BindingRef::detach`] starts closing, requests
//! the close of every socket, and drops the attachment reference; whoever drops the last
//! reference completes the detach (module `rundown`). Nothing calls into the provider after
//! that: every call is made under a reference, and none can be taken once closing began.
//!
//! The binding's timer ([`Provider::arm_timer`], one per binding, so one for the driver with
//! its one WSK subsystem) ticks every [`TICK_MS`] from the end of the attach until the detach:
//! [`BindingRef::tick`] closes connections that made no progress for `IdleTimeout` and reopens
//! failed listeners after a bounded backoff. An armed timer holds one rundown reference, *the
//! timer's*, which passes to its tick when it expires; a tick arms the next timer with a new
//! reference and drops its own when it returns. So the detach completes only after the last
//! tick has returned: the detach cancels an armed timer and drops the timer's reference
//! itself; a tick that finds the binding detaching arms nothing.

use ::core::{mem::ManuallyDrop, net::SocketAddr, ptr::NonNull};

// The listener backoff orders nothing: `core`'s atomics on every build (as `sync.rs`'s
// statistics counters).
use ::core::sync::atomic::Ordering;

use crate::{
    binding_state::{BindingState, ListenerRecovery},
    client::Client,
    config::MAX_ENDPOINTS,
    handler::MAX_CONNECTION_BUFFER,
    provider::{Provider, SocketKind},
    socket::{InstallError, Socket},
    stats::Stats,
    wsk_version::{WSK_VERSION_1_0, WskVersionRange},
};
use wsk_primitives::{
    log_error, log_trace, log_warning,
    platform::PoolTag,
    pool::PoolBox,
    rundown::{Acquisition, Rundown},
    slots::Slots,
    status::NtStatus,
    sync::{self, UnsafeCell},
};

/// Pool tag of a binding and its socket slot array (`!poolused` shows `WEbd`).
pub const BINDING_TAG: PoolTag = PoolTag::from_chars(*b"WEbd");

/// Period of the binding's timer, in milliseconds.
pub const TICK_MS: u32 = 1000;
/// Ticks a failed listener waits before its first reopen attempt; each failed attempt doubles
/// the wait, up to [`REOPEN_MAX_TICKS`].
const REOPEN_FIRST_TICKS: u32 = 1;
/// Longest wait between two reopen attempts of a listener, in ticks.
const REOPEN_MAX_TICKS: u32 = 64;

/// One attachment to the WSK subsystem (see the module documentation).
pub type Binding<P> = BindingState<P, Socket<P>>;

impl<P: Provider> Binding<P> {
    /// Allocates a binding for `client`, holding one rundown reference (the attachment).
    pub(crate) fn create(client: &Client<P>) -> Option<NonNull<Self>> {
        let platform = client.platform();
        let listeners = client.config().endpoint_count();
        let connections = usize::try_from(client.config().max_connections()).ok()?;
        let slots = Slots::new(platform, BINDING_TAG, listeners.checked_add(connections)?)?;
        let binding = Self {
            client: NonNull::from_ref(client),
            rundown: Rundown::new(),
            provider: UnsafeCell::new(None),
            slots: ManuallyDrop::new(slots),
            listeners,
            recovery: [const { ListenerRecovery::new() }; MAX_ENDPOINTS],
            timer_started: sync::AtomicBool::new(false),
        };
        match PoolBox::try_new(platform, BINDING_TAG, binding) {
            Ok(boxed) => Some(boxed.into_raw()),
            Err(mut binding) => {
                // SAFETY: taken once; the binding is dropped right after without using it.
                let slots = unsafe { ManuallyDrop::take(&mut binding.slots) };
                // SAFETY: allocated by this platform; never used.
                unsafe { slots.free(platform) };
                None
            }
        }
    }

    /// Frees the binding: the provider, the slot array, the binding memory.
    ///
    /// # Safety
    /// No one uses the binding any more (cleanup, or a failed attach).
    pub(crate) unsafe fn destroy(this: NonNull<Self>) {
        // SAFETY: exclusively ours per the caller.
        let binding = unsafe { &mut *this.as_ptr() };
        // SAFETY: the client outlives its bindings (`Client::attach_provider`'s contract).
        let client = unsafe { binding.client.as_ref() };
        let platform = client.platform();
        // SAFETY: taken once, here; `slots` is not used afterwards (ManuallyDrop field).
        let slots = unsafe { ManuallyDrop::take(&mut binding.slots) };
        // SAFETY: allocated by this platform; every socket was freed.
        unsafe { slots.free(platform) };
        // SAFETY: allocated with BINDING_TAG, ownership given up with `into_raw` in `create`.
        let boxed = unsafe { PoolBox::from_raw(this, BINDING_TAG) };
        // SAFETY: allocated by this platform; drops the provider; nothing uses it afterwards.
        unsafe { boxed.free(platform) };
    }

    /// Stores the provider returned by the attach.
    fn set_provider(&self, provider: P) {
        // SAFETY: called once by attach, before any socket or call exists; detach, the only
        // other possible thread, does not read the provider while attach holds its reference.
        self.provider.with_mut(|p| unsafe { *p = Some(provider) });
    }

    /// Opens the listener of endpoint `index` (attach, with the attach reference held).
    fn open_listener(this: NonNull<Self>, index: usize, local: SocketAddr) {
        // SAFETY: attach holds a reference.
        let binding = unsafe { this.as_ref() };
        let client = binding.client();
        if !binding.slots.reserve_at(index) {
            log_error!(
                client.platform(),
                "internal: listener slot {index} for {local} is taken"
            );
            Stats::bump(&client.stats().failures);
            client
                .startup()
                .listener_settled(Err(NtStatus::UNSUCCESSFUL));
            return;
        }
        log_trace!(client.platform(), "listener {local}: opening");
        // SAFETY: attach holds a binding reference; the slot is reserved.
        let _ = unsafe { Self::install_listener(this, index, local, false) };
    }

    /// Installs the listener of endpoint `index` in its reserved slot. A listener the attach
    /// opens settles its start-up entry (here if it cannot be installed, else itself); a
    /// `reopened` one (the tick's) only logs.
    ///
    /// `true` if the listener was installed (its socket holds the slot).
    ///
    /// # Safety
    /// The caller holds a binding reference and reserved slot `index`.
    unsafe fn install_listener(
        this: NonNull<Self>,
        index: usize,
        local: SocketAddr,
        reopened: bool,
    ) -> bool {
        // SAFETY: the caller's reference.
        let client = unsafe { this.as_ref() }.client();
        // SAFETY: forwarded.
        let result = unsafe {
            Socket::install(
                this,
                index,
                SocketKind::Listener,
                local,
                None,
                None,
                reopened,
            )
        };
        let status = match result {
            // The listener settles its start-up entry itself (listening, or closed unopened).
            Ok(_) => return true,
            Err(InstallError::Detaching) => {
                log_trace!(client.platform(), "listener {local}: not opened, detaching");
                if !reopened {
                    client.startup().listener_settled(Err(NtStatus::CANCELLED));
                }
                return false;
            }
            Err(InstallError::NoMemory) => NtStatus::INSUFFICIENT_RESOURCES,
            Err(InstallError::Io(io_status)) => io_status,
        };
        if reopened {
            log_warning!(
                client.platform(),
                "listener {local}: not reopened: socket resources: {status}"
            );
        } else {
            log_error!(
                client.platform(),
                "listener {local}: not opened: socket resources: {status}"
            );
            Stats::bump(&client.stats().failures);
            client.startup().listener_settled(Err(status));
        }
        false
    }

    /// Arms the timer for the first tick (end of the attach; not when the binding is
    /// detaching already).
    fn start_timer(this: NonNull<Self>) {
        // SAFETY: attach holds a reference.
        let binding = unsafe { this.as_ref() };
        if binding.provider().is_none() {
            return;
        }
        match binding.rundown.try_acquire() {
            Acquisition::Acquired => {
                binding.timer_started.store(true, sync::Ordering::Release);
                // SAFETY: the reference just taken, which the call consumes.
                unsafe { Self::arm_or_release(this) };
            }
            Acquisition::Refused => {}
            Acquisition::RefusedDrained => {
                log_error!(
                    binding.client().platform(),
                    "internal: rundown drained during attach"
                );
            }
        }
    }

    /// Arms the timer, unless the binding is detaching, then drops the caller's reference
    /// (the tick's, or the one the attach took to start the timer). The armed timer gets a
    /// reference of its own, taken before the arm: the caller's is kept until the end, because
    /// from the arm on a detach may cancel the timer and drop the timer's reference at any
    /// moment, and this call still reads the binding. If the detach began before the arm
    /// became visible to it, it found nothing to cancel (or did not try: it had not seen
    /// `timer_started`), so this call cancels its own arm and drops that reference too; if
    /// that cancel fails, the tick just armed is due and drops it. The check after the arm is
    /// a read-modify-write of the rundown word, totally ordered with the detach's
    /// `begin_close`: either it sees the detach, or the detach sees the arm (and
    /// `timer_started`) and cancels. May complete the detach.
    ///
    /// No reference argument: the drop at the end may free the binding, the provider in it
    /// included, before this call returns.
    ///
    /// # Safety
    /// The caller holds a reference on the binding's rundown, which this call consumes.
    unsafe fn arm_or_release(this: NonNull<Self>) {
        // SAFETY: the caller's reference keeps the binding live until it is dropped last.
        let binding = unsafe { this.as_ref() };
        // The provider is stored before the timer is started; without one, nothing to arm.
        if let Some(provider) = binding.provider().filter(|_| !binding.rundown.is_closing()) {
            // The armed timer's reference (allowed while closing: ours is held).
            binding.rundown.acquire_held();
            provider.arm_timer(TICK_MS, BindingRef::new(this));
            if binding.rundown.check_closing_ordered() && provider.cancel_timer() {
                // Our own arm, cancelled: its reference is ours to drop. Never drains: the
                // caller's is still held.
                // SAFETY: the reference taken for the arm just cancelled.
                if unsafe { Rundown::release(&raw const binding.rundown) } {
                    log_error!(
                        binding.client().platform(),
                        "internal: rundown drained under the timer's caller"
                    );
                }
            }
        }
        // SAFETY: the caller's reference; `binding` is not used afterwards unless drained.
        if unsafe { Rundown::release(&raw const binding.rundown) } {
            // SAFETY: drained by our release; nothing touches the binding afterwards.
            unsafe { Self::complete_detach(this) };
        }
    }

    /// The tick's first task: each connection that made no progress for `IdleTimeout` is told
    /// to close. Reads every connection slot; nothing without a timeout.
    fn sweep_idle(&self) {
        let Some(seconds) = self.client().config().idle_timeout() else {
            return;
        };
        let limit = seconds.saturating_mul(1000) / TICK_MS;
        for index in self.connection_slots() {
            if let Some(socket) = self.slots.try_pin(index) {
                // SAFETY: a connection slot's occupant, pinned.
                unsafe { Socket::tick_idle(socket, limit) };
                // SAFETY: drops our pin (never the binding's last reference: the tick holds
                // one).
                unsafe { Socket::unref(socket) };
            }
        }
    }

    /// The tick's second task: a listener slot found empty is a listener that failed (its
    /// setup, its socket, or its reopening). It is reopened after a backoff of
    /// [`REOPEN_FIRST_TICKS`], doubled after each failed attempt up to [`REOPEN_MAX_TICKS`];
    /// the number left down (not counting those this tick reopened) goes to `listeners_down`.
    ///
    /// # Safety
    /// The caller (the tick) holds a binding reference.
    unsafe fn recover_listeners(this: NonNull<Self>) {
        // SAFETY: the caller's reference.
        let binding = unsafe { this.as_ref() };
        let client = binding.client();
        let mut down = 0_u64;
        for (index, local) in client.config().endpoints().enumerate() {
            let Some(recovery) = binding.recovery.get(index) else {
                break;
            };
            if !binding.slots.reserve_at(index) {
                continue; // a listener holds it (listening, opening or closing)
            }
            let wait = recovery.wait.load(Ordering::Relaxed);
            match wait {
                0 => {
                    down += 1;
                    let delay = match recovery.delay.load(Ordering::Relaxed) {
                        0 => REOPEN_FIRST_TICKS,
                        delay => delay.saturating_mul(2).min(REOPEN_MAX_TICKS),
                    };
                    recovery.delay.store(delay, Ordering::Relaxed);
                    recovery.wait.store(delay, Ordering::Relaxed);
                    binding.slots.vacate(index);
                    log_warning!(
                        client.platform(),
                        "listener {local}: not listening; reopening in {} ms",
                        u64::from(delay) * u64::from(TICK_MS)
                    );
                }
                1 => {
                    recovery.wait.store(0, Ordering::Relaxed);
                    Stats::bump(&client.stats().listener_reopens);
                    log_trace!(client.platform(), "listener {local}: reopening");
                    // SAFETY: the tick's reference; the slot is reserved.
                    if !unsafe { Self::install_listener(this, index, local, true) } {
                        down += 1;
                    }
                }
                _ => {
                    down += 1;
                    recovery.wait.store(wait - 1, Ordering::Relaxed);
                    binding.slots.vacate(index);
                }
            }
        }
        client.stats().listeners_down.store(down, Ordering::Relaxed);
    }
}

pub use crate::token::BindingRef;

impl<P: Provider> BindingRef<P> {
    pub(crate) const fn new(ptr: NonNull<Binding<P>>) -> Self {
        Self::from_ptr(ptr)
    }

    /// The binding (valid until its cleanup).
    const fn binding(self) -> NonNull<Binding<P>> {
        self.ptr()
    }

    /// `ClientDetachProvider` (IRQL <= `DISPATCH_LEVEL`): stops admitting calls, requests the
    /// close of every socket (abortive for connections), drops the attachment reference.
    /// `STATUS_SUCCESS` if nothing was left in progress, else `STATUS_PENDING`: the last call
    /// or close to finish then calls [`Provider::detach_complete`], exactly once.
    ///
    /// # Safety
    /// Called once per binding (NMR's contract), with a live binding.
    #[must_use]
    pub unsafe fn detach(self) -> NtStatus {
        // SAFETY: live until the rundown drains, which needs our attachment reference.
        let binding = unsafe { self.binding().as_ref() };
        let platform = binding.client().platform();
        if !binding.rundown.begin_close() {
            log_error!(platform, "internal: detach called twice");
            return NtStatus::PENDING;
        }
        log_trace!(platform, "detach: closing every socket");
        binding.client().startup().attach_detached();
        for index in 0..binding.slots.len() {
            if let Some(socket) = binding.slots.try_pin(index) {
                // SAFETY: pinned: alive until the unref below.
                unsafe { Socket::request_close(socket) };
                // SAFETY: drops our pin.
                unsafe { Socket::unref(socket) };
            }
        }
        // An armed timer's tick will not run: its reference is ours to drop. (A tick in
        // progress, or one already due, drops it when it finds the binding detaching; so does
        // an attach that arms the timer after this.) Before `timer_started` the provider may
        // still be being stored by the attach: not read.
        if binding.timer_started.load(sync::Ordering::Acquire)
            && binding.provider().is_some_and(P::cancel_timer)
        {
            // Does not drain: our attachment reference is held.
            // SAFETY: the timer's reference, handed to us by the cancel.
            if unsafe { Rundown::release(&raw const binding.rundown) } {
                log_error!(platform, "internal: rundown drained under the attachment");
            }
        }
        let in_progress = binding.rundown.references().saturating_sub(1);
        log_trace!(
            platform,
            "detach: dropping the attachment ({in_progress} reference(s) besides it)"
        );
        // SAFETY: our reference; `binding` is not used afterwards unless drained.
        if unsafe { Rundown::release(&raw const binding.rundown) } {
            log_trace!(platform, "detach complete (nothing in progress)");
            NtStatus::SUCCESS
        } else {
            // Another thread may complete the detach and NMR free the binding from now on.
            NtStatus::PENDING
        }
    }

    /// The binding's timer expired ([`Provider::arm_timer`]; kernel: the binding's work item,
    /// `PASSIVE_LEVEL`): closes the connections without progress for `IdleTimeout`, reopens
    /// failed listeners whose backoff ran out, arms the timer for the next tick, and drops the
    /// reference the expired timer held. Once the binding is detaching it only drops that
    /// reference (which may complete the detach).
    ///
    /// # Safety
    /// Called once per [`Provider::arm_timer`], with the token it was given; the token is not
    /// used afterwards.
    pub unsafe fn tick(self) {
        // SAFETY: the expired timer's reference keeps the binding live until it is dropped.
        let binding = unsafe { self.binding().as_ref() };
        if !binding.rundown.is_closing() {
            binding.sweep_idle();
            // SAFETY: the expired timer's reference is held.
            unsafe { Binding::recover_listeners(self.binding()) };
        }
        // SAFETY: the expired timer's reference, which the call consumes.
        unsafe { Binding::arm_or_release(self.binding()) };
    }

    /// `ClientCleanupBindingContext` (IRQL <= `DISPATCH_LEVEL`): frees the binding. `true` if
    /// no binding is live any more (Unload may proceed).
    ///
    /// # Safety
    /// Called once, after the detach completed; the token is not used afterwards.
    #[must_use]
    pub unsafe fn cleanup(self) -> bool {
        // SAFETY: live until freed below.
        let client = unsafe { self.binding().as_ref() }.client;
        // SAFETY: the client outlives its bindings.
        let client = unsafe { client.as_ref() };
        log_trace!(client.platform(), "cleanup: binding freed");
        // SAFETY: both sides detached: no one uses the binding any more.
        unsafe { Binding::destroy(self.binding()) };
        // Last touch of the client: Unload may free it once the count reaches zero.
        client.binding_freed()
    }
}

impl<P: Provider> Client<P> {
    /// `ClientAttachProvider` (`PASSIVE_LEVEL`). Declines providers whose version range
    /// excludes WSK 1.0 (`STATUS_NOINTERFACE`); refuses a service whose connection buffer size
    /// is not between 1 and [`MAX_CONNECTION_BUFFER`] (`STATUS_INVALID_PARAMETER`); allocates
    /// a binding; calls `attach`, which must call `NmrClientAttachProvider` with
    /// `binding.as_context()` as the client binding context and return the provider built from
    /// its out-parameters (on failure the binding is freed here and `attach`'s status
    /// returned); then enables accept events and opens the listeners. Returns
    /// `STATUS_SUCCESS` once attached, even if listeners failed (they are logged and counted):
    /// the attachment itself stands.
    ///
    /// # Safety
    /// `self` must not move or be dropped while `live_bindings() > 0`.
    pub unsafe fn attach_provider(
        &self,
        provider_versions: WskVersionRange,
        attach: impl FnOnce(BindingRef<P>) -> Result<P, NtStatus>,
    ) -> NtStatus {
        self.startup()
            .attach_begins(self.config().endpoints().count());
        if !provider_versions.covers(WSK_VERSION_1_0) {
            log_warning!(
                self.platform(),
                "attach: declined: WSK provider versions {:#06x}..={:#06x} exclude 1.0 ({})",
                provider_versions.lowest,
                provider_versions.highest,
                NtStatus::NOINTERFACE
            );
            self.startup().attach_failed(NtStatus::NOINTERFACE);
            return NtStatus::NOINTERFACE;
        }
        if self.service().tail_size(self.config()).is_none() {
            log_error!(
                self.platform(),
                "attach: the service's connection buffer of {} bytes is not 1..={MAX_CONNECTION_BUFFER} bytes ({})",
                self.service().buffer_size(self.config()),
                NtStatus::INVALID_PARAMETER
            );
            Stats::bump(&self.stats().failures);
            self.startup().attach_failed(NtStatus::INVALID_PARAMETER);
            return NtStatus::INVALID_PARAMETER;
        }
        let Some(binding) = Binding::create(self) else {
            log_error!(
                self.platform(),
                "attach: binding not allocated: {}",
                NtStatus::INSUFFICIENT_RESOURCES
            );
            Stats::bump(&self.stats().failures);
            self.startup()
                .attach_failed(NtStatus::INSUFFICIENT_RESOURCES);
            return NtStatus::INSUFFICIENT_RESOURCES;
        };
        self.binding_created();
        // The attach reference: keeps the binding alive through the attach even if NMR calls
        // the detach as soon as NmrClientAttachProvider succeeded.
        // SAFETY: just created, not yet shared.
        unsafe { binding.as_ref() }.rundown().acquire_held();
        match attach(BindingRef::new(binding)) {
            Ok(provider) => {
                // SAFETY: live, and we hold the attach reference, which this drops.
                unsafe { finish_attach(binding, provider) };
                NtStatus::SUCCESS
            }
            Err(status) => {
                log_error!(self.platform(), "attach: not attached: {status}");
                Stats::bump(&self.stats().failures);
                // SAFETY: NMR did not take the binding: it is ours alone.
                unsafe { Binding::destroy(binding) };
                self.binding_freed();
                let status = if status.is_success() {
                    NtStatus::UNSUCCESSFUL
                } else {
                    status
                };
                self.startup().attach_failed(status);
                status
            }
        }
    }
}

/// Attach steps after `NmrClientAttachProvider` succeeded: store the provider, enable accept
/// events, open the listeners, then drop the attach reference.
///
/// # Safety
/// `this` is live and the caller holds the attach reference, which this call drops.
pub(crate) unsafe fn finish_attach<P: Provider>(this: NonNull<Binding<P>>, provider: P) {
    // SAFETY: the attach reference keeps it alive.
    let binding = unsafe { this.as_ref() };
    let client = binding.client();
    binding.set_provider(provider);
    log_trace!(client.platform(), "attached to the WSK subsystem");
    // Our attach reference keeps the count above zero: neither the call's release nor a
    // refused attempt can drain here.
    let enabled = binding
        .provider()
        .and_then(|provider| match binding.rundown.try_acquire() {
            Acquisition::Acquired => {
                let result = provider.enable_accept_events();
                // SAFETY: our reference; `binding` is not used afterwards unless drained.
                if unsafe { Rundown::release(&raw const binding.rundown) } {
                    log_error!(client.platform(), "internal: rundown drained during attach");
                }
                Some(result)
            }
            Acquisition::Refused => None,
            Acquisition::RefusedDrained => {
                log_error!(client.platform(), "internal: rundown drained during attach");
                None
            }
        });
    match enabled {
        Some(Ok(())) => {
            for (index, local) in client.config().endpoints().enumerate() {
                Binding::open_listener(this, index, local);
            }
            Binding::start_timer(this);
        }
        Some(Err(status)) => {
            log_error!(
                client.platform(),
                "WskControlClient(WSK_SET_STATIC_EVENT_CALLBACKS) failed with {status}: no listener opened"
            );
            Stats::bump(&client.stats().failures);
            for _ in client.config().endpoints() {
                client.startup().listener_settled(Err(status));
            }
        }
        None => {
            log_trace!(client.platform(), "detaching already: no listener opened");
            for _ in client.config().endpoints() {
                client.startup().listener_settled(Err(NtStatus::CANCELLED));
            }
        }
    }
    // SAFETY: our reference; `binding` is not used afterwards unless drained.
    if unsafe { Rundown::release(&raw const binding.rundown) } {
        // SAFETY: drained by our release; nothing touches the binding afterwards.
        unsafe { Binding::complete_detach(this) };
    }
}
