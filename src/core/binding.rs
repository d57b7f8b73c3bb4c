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

use ::core::{
    ffi::c_void,
    mem::ManuallyDrop,
    net::{IpAddr, SocketAddr},
    ptr::NonNull,
};

use crate::core::{
    client::Client,
    log::{log_error, log_info, log_trace, log_warning},
    pool_box::{BINDING_TAG, PoolBox},
    provider::{Provider, SocketKind},
    rundown::{Acquisition, Rundown},
    slots::Slots,
    socket::{InstallError, Socket, SocketRef},
    stats::{Refusal, Stats},
    status::NtStatus,
    sync::UnsafeCell,
};

/// One attachment to the WSK subsystem (see the module documentation).
pub struct Binding<P: Provider> {
    client: NonNull<Client<P>>,
    rundown: Rundown,
    /// Set once by `attach_provider` when `NmrClientAttachProvider` returned, before any
    /// provider call; dropped by cleanup.
    provider: UnsafeCell<Option<P>>,
    /// Freed explicitly (it needs the platform).
    slots: ManuallyDrop<Slots<Socket<P>>>,
    /// Number of listener slots at the start of `slots`.
    listeners: usize,
}

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

    /// The client (outlives every binding).
    pub(crate) const fn client(&self) -> &Client<P> {
        // SAFETY: `Client::attach_provider`'s contract: the client does not move or drop while
        // a binding is live.
        unsafe { self.client.as_ref() }
    }

    pub(crate) const fn rundown(&self) -> &Rundown {
        &self.rundown
    }

    pub(crate) fn slots(&self) -> &Slots<Socket<P>> {
        &self.slots
    }

    /// The provider, once attached.
    pub(crate) fn provider(&self) -> Option<&P> {
        // SAFETY: written once before any reader can exist (attach), dropped only by cleanup,
        // after every user is gone.
        self.provider.with(|p| unsafe { (*p).as_ref() })
    }

    /// Stores the provider returned by the attach.
    fn set_provider(&self, provider: P) {
        // SAFETY: called once by attach, before any socket or call exists; detach, the only
        // other possible thread, does not read the provider while attach holds its reference.
        self.provider.with_mut(|p| unsafe { *p = Some(provider) });
    }

    /// The rundown drained after `detach` returned `STATUS_PENDING` (or while it ran on
    /// another thread): reports the detach complete.
    ///
    /// # Safety
    /// Called once, by the caller whose release drained the rundown; the binding (which NMR's
    /// cleanup may free from inside `detach_complete`) is not touched afterwards.
    pub(crate) unsafe fn complete_detach(this: NonNull<Self>) {
        // SAFETY: live until the cleanup, which cannot run before the call below.
        let binding = unsafe { this.as_ref() };
        let platform = binding.client().platform();
        // The handle is copied out and `binding` is not used again: cleanup may free the
        // binding while `detach_complete` runs. (The client outlives every binding.)
        match binding.provider().map(P::detach_handle) {
            Some(handle) => {
                log_trace!(platform, "detach complete: NmrClientDetachProviderComplete");
                P::detach_complete(handle);
            }
            None => log_error!(platform, "internal: detach completed without a provider"),
        }
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
        let result =
            unsafe { Socket::install(this, index, SocketKind::Listener, local, None, None) };
        match result {
            // The listener settles its start-up entry itself (listening, or closed unopened).
            Ok(_) => {}
            Err(InstallError::Detaching) => {
                log_trace!(client.platform(), "listener {local}: not opened, detaching");
                client.startup().listener_settled(Err(NtStatus::CANCELLED));
            }
            Err(InstallError::NoMemory) => {
                log_error!(
                    client.platform(),
                    "listener {local}: not opened: {}",
                    NtStatus::INSUFFICIENT_RESOURCES
                );
                Stats::bump(&client.stats().failures);
                client
                    .startup()
                    .listener_settled(Err(NtStatus::INSUFFICIENT_RESOURCES));
            }
            Err(InstallError::Io(io_status)) => {
                log_error!(
                    client.platform(),
                    "listener {local}: not opened: socket I/O resources: {io_status}"
                );
                Stats::bump(&client.stats().failures);
                client.startup().listener_settled(Err(io_status));
            }
        }
    }

    /// An accept event on listener `local` delivered `handle`: takes it or refuses it.
    ///
    /// Refused, with no allocation and the reason counted: while detaching; when
    /// `MaxConnections` are open; when `remote`'s address already holds
    /// `MaxConnectionsPerAddress` connections (its connection slots carry the address's label,
    /// [`Slots::label_and_count`]; a peer whose address WSK did not give is not limited); when
    /// the connection's memory or I/O resources cannot be had. The per-address check reads the
    /// connection slots until it has counted one more than the limit (at most all of them
    /// once): a cost per accept event, none per message.
    ///
    /// # Safety
    /// Called from the accept event of a live listener of this binding.
    pub(crate) unsafe fn admit_connection(
        this: NonNull<Self>,
        local: SocketAddr,
        handle: P::Socket,
        remote: Option<SocketAddr>,
    ) -> Result<SocketRef<P>, NtStatus> {
        // SAFETY: the listener holds a binding reference.
        let binding = unsafe { this.as_ref() };
        let client = binding.client();
        let stats = client.stats();
        let peer = PeerText(remote);
        let refuse = |reason: Refusal, why: &dyn ::core::fmt::Display| {
            stats.refuse(reason);
            log_warning!(
                client.platform(),
                "connection {peer} on {local}: refused: {why}"
            );
            Err(NtStatus::REQUEST_NOT_ACCEPTED)
        };
        if binding.rundown.is_closing() {
            return refuse(Refusal::Detaching, &"detaching");
        }
        let connections = binding.listeners..binding.slots.len();
        let Some(slot) = binding.slots.reserve_in(connections.clone()) else {
            return refuse(
                Refusal::MaxConnections,
                &format_args!(
                    "MaxConnections ({}) open",
                    client.config().max_connections()
                ),
            );
        };
        if let (Some(limit), Some(remote)) = (client.config().max_connections_per_address(), remote)
        {
            let label = address_label(remote.ip());
            let limit_slots = usize::try_from(limit).unwrap_or(usize::MAX);
            // Counting stops one past the limit: a flood over its quota costs no full scan.
            let held = binding.slots.label_and_count(
                slot,
                label,
                connections,
                limit_slots.saturating_add(1),
            );
            if held > limit_slots {
                binding.slots.vacate(slot);
                return refuse(
                    Refusal::PerAddress,
                    &format_args!(
                        "{} holds MaxConnectionsPerAddress ({limit}) connections",
                        remote.ip()
                    ),
                );
            }
        }
        // SAFETY: a live listener of this binding holds a binding reference; slot reserved.
        let result = unsafe {
            Socket::install(
                this,
                slot,
                SocketKind::Connection,
                local,
                remote,
                Some(handle),
            )
        };
        match result {
            Ok(token) => {
                Stats::bump(&stats.accepted);
                Stats::bump(&stats.active);
                log_info!(client.platform(), "connection {peer} on {local}: accepted");
                Ok(token)
            }
            Err(InstallError::Detaching) => refuse(Refusal::Detaching, &"detaching"),
            Err(InstallError::NoMemory) => {
                Stats::bump(&stats.failures);
                refuse(Refusal::NoResources, &NtStatus::INSUFFICIENT_RESOURCES)
            }
            Err(InstallError::Io(io_status)) => {
                Stats::bump(&stats.failures);
                refuse(
                    Refusal::NoResources,
                    &format_args!("socket I/O resources: {io_status}"),
                )
            }
        }
    }
}

/// The slot label of a peer address for `MaxConnectionsPerAddress` (never 0, which means no
/// label). An IPv4 address and its IPv4-mapped IPv6 form are one address: `1 << 32 | a.b.c.d`.
/// Other IPv6 addresses (scope id ignored) take a 63-bit FNV-1a hash of their 16 bytes with
/// the top bit set, so they never meet an IPv4 label; two IPv6 addresses whose hashes collide
/// (about 2^-63 for a given pair) share one quota.
const fn address_label(ip: IpAddr) -> u64 {
    let v6 = match ip {
        IpAddr::V4(v4) => return 1 << 32 | v4.to_bits() as u64,
        IpAddr::V6(v6) => v6,
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return 1 << 32 | v4.to_bits() as u64;
    }
    let bytes = v6.octets();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash = (hash ^ bytes[i] as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash | 1 << 63
}

/// A peer address for log lines (`?` when unknown).
struct PeerText(Option<SocketAddr>);

impl ::core::fmt::Display for PeerText {
    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("?"),
        }
    }
}

/// Token for one binding: the client binding context given to NMR.
pub struct BindingRef<P: Provider> {
    ptr: NonNull<Binding<P>>,
}

impl<P: Provider> Clone for BindingRef<P> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P: Provider> Copy for BindingRef<P> {}

impl<P: Provider> ::core::fmt::Debug for BindingRef<P> {
    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
        write!(f, "BindingRef({:p})", self.ptr)
    }
}

// SAFETY: a token is an address; the binding is built for use from any thread (atomics).
unsafe impl<P: Provider> Send for BindingRef<P> {}
// SAFETY: as above.
unsafe impl<P: Provider> Sync for BindingRef<P> {}

impl<P: Provider> BindingRef<P> {
    pub(crate) const fn new(ptr: NonNull<Binding<P>>) -> Self {
        Self { ptr }
    }

    /// The token as the client binding context.
    #[must_use]
    pub const fn as_context(self) -> *mut c_void {
        self.ptr.as_ptr().cast()
    }

    /// The token back from the client binding context.
    ///
    /// # Safety
    /// `context` came from [`BindingRef::as_context`] of a binding not yet cleaned up.
    #[must_use]
    pub unsafe fn from_context(context: *mut c_void) -> Self {
        Self {
            ptr: NonNull::new(context.cast()).unwrap_or(NonNull::dangling()),
        }
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
        let binding = unsafe { self.ptr.as_ref() };
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

    /// `ClientCleanupBindingContext` (IRQL <= `DISPATCH_LEVEL`): frees the binding. `true` if
    /// no binding is live any more (Unload may proceed).
    ///
    /// # Safety
    /// Called once, after the detach completed; the token is not used afterwards.
    #[must_use]
    pub unsafe fn cleanup(self) -> bool {
        // SAFETY: live until freed below.
        let client = unsafe { self.ptr.as_ref() }.client;
        // SAFETY: the client outlives its bindings.
        let client = unsafe { client.as_ref() };
        log_trace!(client.platform(), "cleanup: binding freed");
        // SAFETY: both sides detached: no one uses the binding any more.
        unsafe { Binding::destroy(self.ptr) };
        // Last touch of the client: Unload may free it once the count reaches zero.
        client.binding_freed()
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
