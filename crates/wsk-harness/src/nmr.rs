//! The Network Module Registrar, emulated: registrations, attachments, and the per-binding
//! detach state machine.
//!
//! The semantics are the documented ones (`docs/architecture.md`; Microsoft's `netioddk.h`
//! reference pages and "Unregistering and Unloading the WSK Client"):
//!
//! * `ClientAttachProvider` runs at `PASSIVE_LEVEL` when both sides are registered, possibly
//!   before `NmrRegisterClient` returns ([`NmrMode::attach_inline`]).
//! * `ClientDetachProvider` runs exactly once per binding, at `DISPATCH_LEVEL`, whichever side
//!   deregisters first; it returns `STATUS_SUCCESS`, or `STATUS_PENDING` and then
//!   `NmrClientDetachProviderComplete` is called exactly once (possibly from another thread
//!   before the callback has even returned).
//! * `ClientCleanupBindingContext` runs after both sides have detached.
//! * `NmrDeregisterClient` returns `STATUS_PENDING`; `NmrWaitForClientDeregisterComplete`
//!   blocks until every binding of the client has been cleaned up.
//! * The provider (the WSK subsystem) can deregister and register again at any time.
//!
//! Misuse is reported to the [`Contract`]. Waits are bounded: a wait that times out is a
//! violation too, so a broken driver fails a test instead of hanging it.

use std::{
    collections::BTreeMap,
    ffi::c_void,
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use wsk_primitives::status::NtStatus;

use crate::{contract::Contract, irql};

/// A context pointer handed through the NMR (`ClientBindingContext`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextPtr(pub *mut c_void);

// SAFETY: the NMR only stores and passes the pointer back to the module that created it; it
// never dereferences it. Thread-safety of the pointee is that module's business, as in the
// kernel where contexts are passed between CPUs.
unsafe impl Send for ContextPtr {}
// SAFETY: as above; a shared `ContextPtr` only allows copying the address.
unsafe impl Sync for ContextPtr {}

/// Identifies one binding (one client–provider attachment).
pub type BindingId = u64;

/// `WSK_PROVIDER_CHARACTERISTICS`: the WSK versions the provider supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProviderCharacteristics {
    /// `HighestVersion` (`MAKE_WSK_VERSION(major, minor)` = `major << 8 | minor`).
    pub highest_version: u16,
    /// `LowestVersion`.
    pub lowest_version: u16,
}

/// The provider module (the WSK subsystem) as the NMR sees it.
pub trait ProviderModule: Send + Sync + 'static {
    /// What `NmrClientAttachProvider` hands the client (provider binding context + dispatch).
    type Binding;

    /// The provider's `NpiSpecificCharacteristics`.
    fn characteristics(&self) -> ProviderCharacteristics;

    /// `ProviderAttachClient`: creates the provider side of binding `handle`.
    ///
    /// # Errors
    /// The status `NmrClientAttachProvider` returns to the client.
    fn attach_client(&self, handle: &BindingHandle<Self>) -> Result<Self::Binding, NtStatus>
    where
        Self: Sized;

    /// The client side of binding `id` has reported its detach complete: from now on any call
    /// on it is a violation. Returns `true` if the provider side is detached too; otherwise
    /// the provider calls [`BindingHandle::provider_detach_complete`] later.
    fn client_detached(&self, id: BindingId) -> bool;

    /// Binding `id` is gone (after the client's cleanup callback returned).
    fn cleaned_up(&self, id: BindingId);
}

/// The client module's `NPI_CLIENT_CHARACTERISTICS` callbacks.
pub trait ClientModule<Pr: ProviderModule>: Send + Sync + 'static {
    /// `ClientAttachProvider` (`PASSIVE_LEVEL`). To attach, it calls
    /// [`BindingHandle::client_attach_provider`] and returns its status.
    fn attach_provider(
        &self,
        handle: BindingHandle<Pr>,
        provider: ProviderCharacteristics,
    ) -> NtStatus;
    /// `ClientDetachProvider` (`DISPATCH_LEVEL`).
    fn detach_provider(&self, context: ContextPtr) -> NtStatus;
    /// `ClientCleanupBindingContext` (`DISPATCH_LEVEL`).
    fn cleanup_binding_context(&self, context: ContextPtr);
}

/// Timing choices that real NMR may make either way.
#[derive(Clone, Copy, Debug)]
pub struct NmrMode {
    /// `ClientAttachProvider` runs inside `NmrRegisterClient` / provider registration (before
    /// it returns) rather than on another thread.
    pub attach_inline: bool,
    /// `ClientDetachProvider` runs inside the deregistration call rather than on another thread.
    pub detach_inline: bool,
    /// A deregistration may call `ClientDetachProvider` as soon as `NmrClientAttachProvider`
    /// has returned, while `ClientAttachProvider` is still running; otherwise the detach waits
    /// until the attach callback has returned.
    pub detach_during_attach: bool,
    /// Bound on every blocking wait; exceeding it is a violation.
    pub wait_timeout: Duration,
}

impl Default for NmrMode {
    fn default() -> Self {
        Self {
            attach_inline: true,
            detach_inline: true,
            detach_during_attach: false,
            wait_timeout: Duration::from_secs(20),
        }
    }
}

/// Which side started a binding's detach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetachCause {
    /// `NmrDeregisterClient`.
    ClientDeregistered,
    /// The provider deregistered.
    ProviderDeregistered,
}

/// What a `ClientDetachProvider` callback returned, for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetachRecord {
    /// The binding.
    pub binding: BindingId,
    /// Who started it.
    pub cause: DetachCause,
    /// The callback's return value.
    pub status: NtStatus,
}

#[derive(Debug, Default)]
#[allow(clippy::struct_excessive_bools)] // One flag per step of the documented state machine.
struct BindingRecord {
    provider_registration: u64,
    /// Set by `NmrClientAttachProvider`.
    context: Option<ContextPtr>,
    /// `NmrClientAttachProvider` returned success.
    provider_attached: bool,
    attach_returned: bool,
    detach_requested: Option<DetachCause>,
    detach_started: bool,
    detach_returned: Option<NtStatus>,
    complete_calls: u32,
    client_detached: bool,
    provider_detached: bool,
    cleanup_started: bool,
}

struct State<Pr: ProviderModule> {
    client: Option<Arc<dyn ClientModule<Pr>>>,
    client_deregistering: bool,
    provider: Option<(u64, Arc<Pr>)>,
    provider_deregistering: bool,
    bindings: BTreeMap<BindingId, BindingRecord>,
    next_id: u64,
    detaches: Vec<DetachRecord>,
    /// Failure `NmrClientAttachProvider` returns once (fault injection).
    fail_client_attach: Option<NtStatus>,
}

struct Inner<Pr: ProviderModule> {
    contract: Arc<Contract>,
    mode: NmrMode,
    state: Mutex<State<Pr>>,
    changed: Condvar,
}

impl<Pr: ProviderModule> Inner<Pr> {
    fn lock(&self) -> MutexGuard<'_, State<Pr>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The emulated NMR. Cloning shares it.
pub struct Nmr<Pr: ProviderModule> {
    inner: Arc<Inner<Pr>>,
}

impl<Pr: ProviderModule> Clone for Nmr<Pr> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// `NmrBindingHandle`: what the client and provider use to talk to the NMR about one binding.
pub struct BindingHandle<Pr: ProviderModule> {
    nmr: Nmr<Pr>,
    id: BindingId,
}

impl<Pr: ProviderModule> Clone for BindingHandle<Pr> {
    fn clone(&self) -> Self {
        Self {
            nmr: self.nmr.clone(),
            id: self.id,
        }
    }
}

impl<Pr: ProviderModule> BindingHandle<Pr> {
    /// The binding this handle names.
    #[must_use]
    pub const fn id(&self) -> BindingId {
        self.id
    }

    /// `NmrClientAttachProvider`: records `context` as the client binding context and returns
    /// the provider's side of the binding.
    ///
    /// # Errors
    /// An injected failure, or the provider's refusal; the client must then free `context`
    /// itself (no cleanup callback follows).
    pub fn client_attach_provider(&self, context: ContextPtr) -> Result<Pr::Binding, NtStatus> {
        let inner = &self.nmr.inner;
        let provider = {
            let mut state = inner.lock();
            if let Some(status) = state.fail_client_attach.take() {
                return Err(status);
            }
            let provider_registration = state
                .bindings
                .get(&self.id)
                .map(|b| b.provider_registration);
            let provider = state.provider.clone();
            let Some(record) = state.bindings.get_mut(&self.id) else {
                drop(state);
                inner
                    .contract
                    .violation("NmrClientAttachProvider on an unknown binding handle");
                return Err(NtStatus::INVALID_PARAMETER);
            };
            if record.attach_returned || record.context.is_some() {
                drop(state);
                inner.contract.violation(format!(
                    "NmrClientAttachProvider called twice, or after ClientAttachProvider returned (binding {})",
                    self.id
                ));
                return Err(NtStatus::INVALID_PARAMETER);
            }
            match provider {
                Some((id, provider)) if Some(id) == provider_registration => {
                    record.context = Some(context);
                    provider
                }
                _ => return Err(NtStatus::DEVICE_NOT_READY),
            }
        };
        let result = provider.attach_client(self);
        let requested = {
            let mut state = inner.lock();
            let Some(record) = state.bindings.get_mut(&self.id) else {
                return result;
            };
            if result.is_err() {
                record.context = None;
                return result;
            }
            record.provider_attached = true;
            record
                .detach_requested
                .filter(|_| inner.mode.detach_during_attach)
        };
        if let Some(cause) = requested {
            // A deregistration came in while NmrClientAttachProvider ran: detach now, on
            // another thread, while the client's attach callback is still running.
            let nmr = self.nmr.clone();
            let id = self.id;
            std::thread::spawn(move || nmr.start_detach(id, cause));
        }
        result
    }

    /// `NmrClientDetachProviderComplete`. Callable at `DISPATCH_LEVEL` from any thread.
    pub fn client_detach_complete(&self) {
        self.nmr.client_detach_complete(self.id);
    }

    /// The provider side of the binding has finished detaching (`NmrProviderDetachClientComplete`).
    pub fn provider_detach_complete(&self) {
        self.nmr.provider_detach_complete(self.id);
    }
}

impl<Pr: ProviderModule> Nmr<Pr> {
    /// An NMR with no registrations.
    #[must_use]
    pub fn new(contract: Arc<Contract>, mode: NmrMode) -> Self {
        Self {
            inner: Arc::new(Inner {
                contract,
                mode,
                state: Mutex::new(State {
                    client: None,
                    client_deregistering: false,
                    provider: None,
                    provider_deregistering: false,
                    bindings: BTreeMap::new(),
                    next_id: 1,
                    detaches: Vec::new(),
                    fail_client_attach: None,
                }),
                changed: Condvar::new(),
            }),
        }
    }

    fn contract(&self) -> &Contract {
        &self.inner.contract
    }

    /// Makes the next `NmrClientAttachProvider` fail with `status`.
    pub fn fail_next_client_attach(&self, status: NtStatus) {
        self.inner.lock().fail_client_attach = Some(status);
    }

    /// Every `ClientDetachProvider` return value so far.
    #[must_use]
    pub fn detach_records(&self) -> Vec<DetachRecord> {
        self.inner.lock().detaches.clone()
    }

    /// Bindings that exist (attaching, attached, detaching, or awaiting cleanup).
    #[must_use]
    pub fn binding_count(&self) -> usize {
        self.inner.lock().bindings.len()
    }

    /// Whether a client is registered (from `NmrRegisterClient` until its deregistration
    /// completed).
    #[must_use]
    pub fn client_registered(&self) -> bool {
        self.inner.lock().client.is_some()
    }

    /// Whether a provider is registered.
    #[must_use]
    pub fn provider_registered(&self) -> bool {
        self.inner.lock().provider.is_some()
    }

    /// `NmrRegisterClient`. Attaches to the registered provider, if any — inline before
    /// returning, or on another thread, per [`NmrMode::attach_inline`].
    pub fn register_client(&self, client: Arc<dyn ClientModule<Pr>>) {
        {
            let mut state = self.inner.lock();
            if state.client.is_some() {
                drop(state);
                self.contract()
                    .violation("NmrRegisterClient while the client is still registered");
                return;
            }
            state.client = Some(client);
            state.client_deregistering = false;
        }
        self.attach_if_possible();
    }

    /// The provider (WSK subsystem) registers; attaches to the client if one is registered.
    pub fn register_provider(&self, provider: Arc<Pr>) {
        {
            let mut state = self.inner.lock();
            if state.provider.is_some() {
                return;
            }
            let id = state.next_id;
            state.next_id += 1;
            state.provider = Some((id, provider));
            state.provider_deregistering = false;
        }
        self.attach_if_possible();
    }

    fn attach_if_possible(&self) {
        let (client, provider, handle) = {
            let mut state = self.inner.lock();
            let (Some(client), Some((registration, provider))) =
                (state.client.clone(), state.provider.clone())
            else {
                return;
            };
            if state.client_deregistering || state.provider_deregistering {
                return;
            }
            if state
                .bindings
                .values()
                .any(|b| b.provider_registration == registration)
            {
                return;
            }
            let id = state.next_id;
            state.next_id += 1;
            state.bindings.insert(
                id,
                BindingRecord {
                    provider_registration: registration,
                    ..BindingRecord::default()
                },
            );
            (
                client,
                provider,
                BindingHandle {
                    nmr: self.clone(),
                    id,
                },
            )
        };
        let characteristics = provider.characteristics();
        let nmr = self.clone();
        let run = move || {
            let id = handle.id;
            let status = nmr
                .contract()
                .guard("ClientAttachProvider", || {
                    irql::at_passive(|| client.attach_provider(handle, characteristics))
                })
                .unwrap_or(NtStatus::UNSUCCESSFUL);
            nmr.attach_returned(id, status);
        };
        if self.inner.mode.attach_inline {
            run();
        } else {
            std::thread::spawn(run);
        }
    }

    fn attach_returned(&self, id: BindingId, status: NtStatus) {
        let mut state = self.inner.lock();
        let Some(record) = state.bindings.get_mut(&id) else {
            return;
        };
        record.attach_returned = true;
        let attached = record.context.is_some();
        let requested = record.detach_requested;
        if status.is_success() && attached {
            drop(state);
            if let Some(cause) = requested {
                self.start_detach(id, cause);
            }
            return;
        }
        state.bindings.remove(&id);
        drop(state);
        self.inner.changed.notify_all();
        if attached {
            self.contract().violation(format!(
                "ClientAttachProvider returned {status} after NmrClientAttachProvider succeeded (binding {id})"
            ));
        } else if status.is_success() {
            self.contract().violation(format!(
                "ClientAttachProvider returned success without calling NmrClientAttachProvider (binding {id})"
            ));
        }
    }

    /// Starts the detach of binding `id` unless it was already started (exactly once).
    fn start_detach(&self, id: BindingId, cause: DetachCause) {
        let (client, context) = {
            let mut state = self.inner.lock();
            let client = state.client.clone();
            let Some(record) = state.bindings.get_mut(&id) else {
                return;
            };
            if record.detach_started {
                return;
            }
            let early = self.inner.mode.detach_during_attach && record.provider_attached;
            if !record.attach_returned && !early {
                record.detach_requested.get_or_insert(cause);
                return;
            }
            let (Some(client), Some(context)) = (client, record.context) else {
                return;
            };
            record.detach_started = true;
            (client, context)
        };
        let nmr = self.clone();
        let run = move || {
            let status = nmr
                .contract()
                .guard("ClientDetachProvider", || {
                    irql::at_dispatch(|| client.detach_provider(context))
                })
                .unwrap_or(NtStatus::SUCCESS);
            nmr.detach_returned(id, cause, status);
        };
        if self.inner.mode.detach_inline {
            run();
        } else {
            std::thread::spawn(run);
        }
    }

    fn detach_returned(&self, id: BindingId, cause: DetachCause, status: NtStatus) {
        let mut state = self.inner.lock();
        state.detaches.push(DetachRecord {
            binding: id,
            cause,
            status,
        });
        let Some(record) = state.bindings.get_mut(&id) else {
            return;
        };
        record.detach_returned = Some(status);
        let completed_early = record.complete_calls > 0;
        drop(state);
        let detached = if status == NtStatus::SUCCESS {
            if completed_early {
                self.contract().violation(format!(
                    "ClientDetachProvider returned STATUS_SUCCESS after calling NmrClientDetachProviderComplete (binding {id})"
                ));
            }
            true
        } else if status == NtStatus::PENDING {
            completed_early
        } else {
            self.contract().violation(format!(
                "ClientDetachProvider returned {status}: only STATUS_SUCCESS or STATUS_PENDING are allowed (binding {id})"
            ));
            true
        };
        if detached {
            self.client_detached(id);
        }
    }

    fn client_detach_complete(&self, id: BindingId) {
        let mut state = self.inner.lock();
        let Some(record) = state.bindings.get_mut(&id) else {
            drop(state);
            self.contract().violation(format!(
                "NmrClientDetachProviderComplete on binding {id}, which no longer exists"
            ));
            return;
        };
        record.complete_calls += 1;
        let calls = record.complete_calls;
        let started = record.detach_started;
        let returned = record.detach_returned;
        drop(state);
        if !started {
            self.contract().violation(format!(
                "NmrClientDetachProviderComplete without a detach in progress (binding {id})"
            ));
        } else if calls > 1 {
            self.contract().violation(format!(
                "NmrClientDetachProviderComplete called {calls} times (binding {id})"
            ));
        } else if returned == Some(NtStatus::PENDING) {
            self.client_detached(id);
        } else if returned.is_some() {
            self.contract().violation(format!(
                "NmrClientDetachProviderComplete after ClientDetachProvider returned {} (binding {id})",
                returned.unwrap_or(NtStatus::SUCCESS)
            ));
        }
        // Otherwise the callback has not returned yet: `detach_returned` finishes the detach.
    }

    fn client_detached(&self, id: BindingId) {
        let provider = {
            let mut state = self.inner.lock();
            let provider = state.provider.clone();
            let Some(record) = state.bindings.get_mut(&id) else {
                return;
            };
            if record.client_detached {
                return;
            }
            record.client_detached = true;
            match provider {
                Some((registration, provider)) if registration == record.provider_registration => {
                    Some(provider)
                }
                _ => None,
            }
        };
        let provider_done = provider.is_none_or(|p| p.client_detached(id));
        if provider_done {
            self.provider_detach_complete(id);
        }
    }

    fn provider_detach_complete(&self, id: BindingId) {
        let (client, context) = {
            let mut state = self.inner.lock();
            let client = state.client.clone();
            let Some(record) = state.bindings.get_mut(&id) else {
                return;
            };
            record.provider_detached = true;
            if !record.client_detached || record.cleanup_started {
                return;
            }
            record.cleanup_started = true;
            (client, record.context)
        };
        // Cleanup runs after both sides detached, on another thread: the thread that completed
        // the detach may still be inside the driver's completion path.
        let nmr = self.clone();
        std::thread::spawn(move || {
            if let (Some(client), Some(context)) = (client, context) {
                let _ = nmr.contract().guard("ClientCleanupBindingContext", || {
                    irql::at_dispatch(|| client.cleanup_binding_context(context));
                });
            }
            nmr.cleaned_up(id);
        });
    }

    fn cleaned_up(&self, id: BindingId) {
        let provider = {
            let mut state = self.inner.lock();
            let Some(record) = state.bindings.remove(&id) else {
                return;
            };
            match state.provider.clone() {
                Some((registration, provider)) if registration == record.provider_registration => {
                    Some(provider)
                }
                _ => None,
            }
        };
        if let Some(provider) = provider {
            provider.cleaned_up(id);
        }
        self.finish_deregistrations();
        self.inner.changed.notify_all();
    }

    /// Completes deregistrations whose bindings are all gone.
    fn finish_deregistrations(&self) {
        let mut state = self.inner.lock();
        if state.provider_deregistering {
            let registration = state.provider.as_ref().map(|p| p.0);
            if !state
                .bindings
                .values()
                .any(|b| Some(b.provider_registration) == registration)
            {
                state.provider = None;
                state.provider_deregistering = false;
            }
        }
        if state.client_deregistering && state.bindings.is_empty() {
            state.client = None;
            state.client_deregistering = false;
        }
    }

    fn detach_all(&self, cause: DetachCause, only_registration: Option<u64>) {
        let ids: Vec<BindingId> = {
            let state = self.inner.lock();
            state
                .bindings
                .iter()
                .filter(|(_, b)| only_registration.is_none_or(|r| b.provider_registration == r))
                .map(|(id, _)| *id)
                .collect()
        };
        for id in ids {
            self.start_detach(id, cause);
        }
        self.finish_deregistrations();
        self.inner.changed.notify_all();
    }

    /// `NmrDeregisterClient`: starts detaching every binding; returns `STATUS_PENDING`.
    #[must_use]
    pub fn deregister_client(&self) -> NtStatus {
        {
            let mut state = self.inner.lock();
            if state.client.is_none() || state.client_deregistering {
                drop(state);
                self.contract()
                    .violation("NmrDeregisterClient without a registration (or twice)");
                return NtStatus::INVALID_PARAMETER;
            }
            state.client_deregistering = true;
        }
        self.detach_all(DetachCause::ClientDeregistered, None);
        NtStatus::PENDING
    }

    /// `NmrWaitForClientDeregisterComplete` (`PASSIVE_LEVEL`): blocks until every binding of
    /// the client has been cleaned up. Returns `false` (and records a violation) on timeout
    /// or when called at `DISPATCH_LEVEL`.
    #[must_use]
    pub fn wait_client_deregistered(&self) -> bool {
        if !self
            .contract()
            .may_block("NmrWaitForClientDeregisterComplete")
        {
            return false;
        }
        self.wait_until("NmrWaitForClientDeregisterComplete", |s| s.client.is_none())
    }

    /// The provider (WSK subsystem) deregisters: detaches every binding it has (those the
    /// client already detaches are left alone). Returns at once; see
    /// [`Nmr::wait_provider_deregistered`].
    pub fn deregister_provider(&self) {
        let registration = {
            let mut state = self.inner.lock();
            let Some((registration, _)) = state.provider else {
                return;
            };
            state.provider_deregistering = true;
            registration
        };
        self.detach_all(DetachCause::ProviderDeregistered, Some(registration));
    }

    /// Blocks until the provider's deregistration has completed (`false` on timeout).
    #[must_use]
    pub fn wait_provider_deregistered(&self) -> bool {
        self.wait_until("NmrWaitForProviderDeregisterComplete", |s| {
            s.provider.is_none()
        })
    }

    fn wait_until(&self, what: &str, done: impl Fn(&State<Pr>) -> bool) -> bool {
        let deadline = Instant::now() + self.inner.mode.wait_timeout;
        let mut state = self.inner.lock();
        loop {
            if done(&state) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                let pending: Vec<String> = state
                    .bindings
                    .iter()
                    .map(|(id, b)| {
                        format!(
                            "binding {id}: detach started {}, returned {:?}, complete calls {}, client detached {}, provider detached {}, cleanup started {}",
                            b.detach_started,
                            b.detach_returned,
                            b.complete_calls,
                            b.client_detached,
                            b.provider_detached,
                            b.cleanup_started
                        )
                    })
                    .collect();
                drop(state);
                self.contract().violation(format!(
                    "{what} did not complete within {:?}: {}",
                    self.inner.mode.wait_timeout,
                    pending.join("; ")
                ));
                return false;
            }
            state = self
                .inner
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc, Mutex,
            atomic::{AtomicUsize, Ordering},
        },
        time::{Duration, Instant},
    };

    use wsk_primitives::status::NtStatus;

    use super::{
        BindingHandle, BindingId, ClientModule, ContextPtr, Nmr, NmrMode, ProviderCharacteristics,
        ProviderModule,
    };
    use crate::contract::Contract;

    struct Provider;

    impl ProviderModule for Provider {
        type Binding = ();
        fn characteristics(&self) -> ProviderCharacteristics {
            ProviderCharacteristics {
                highest_version: 0x0100,
                lowest_version: 0x0100,
            }
        }
        fn attach_client(&self, _handle: &BindingHandle<Self>) -> Result<(), NtStatus> {
            Ok(())
        }
        fn client_detached(&self, _id: BindingId) -> bool {
            true
        }
        fn cleaned_up(&self, _id: BindingId) {}
    }

    /// How the test client's `ClientDetachProvider` behaves.
    #[derive(Clone, Copy)]
    enum Detach {
        Success,
        /// PENDING, then complete from another thread after a delay.
        PendingThenComplete,
        /// Calls complete before returning `status`.
        CompleteThenReturn(NtStatus),
        /// PENDING, then complete twice.
        PendingCompleteTwice,
    }

    struct Client {
        detach: Detach,
        handle: Mutex<Option<BindingHandle<Provider>>>,
        detaches: AtomicUsize,
        cleanups: AtomicUsize,
        completed: Mutex<Option<Instant>>,
    }

    impl ClientModule<Provider> for Client {
        fn attach_provider(
            &self,
            handle: BindingHandle<Provider>,
            _p: ProviderCharacteristics,
        ) -> NtStatus {
            match handle.client_attach_provider(ContextPtr(std::ptr::null_mut())) {
                Ok(()) => {
                    *self.handle.lock().unwrap() = Some(handle);
                    NtStatus::SUCCESS
                }
                Err(status) => status,
            }
        }
        fn detach_provider(&self, _context: ContextPtr) -> NtStatus {
            self.detaches.fetch_add(1, Ordering::SeqCst);
            let handle = self.handle.lock().unwrap().clone().unwrap();
            match self.detach {
                Detach::Success => NtStatus::SUCCESS,
                Detach::PendingThenComplete | Detach::PendingCompleteTwice => {
                    let twice = matches!(self.detach, Detach::PendingCompleteTwice);
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(100));
                        handle.client_detach_complete();
                        if twice {
                            handle.client_detach_complete();
                        }
                    });
                    NtStatus::PENDING
                }
                Detach::CompleteThenReturn(status) => {
                    handle.client_detach_complete();
                    status
                }
            }
        }
        fn cleanup_binding_context(&self, _context: ContextPtr) {
            self.cleanups.fetch_add(1, Ordering::SeqCst);
            *self.completed.lock().unwrap() = Some(Instant::now());
        }
    }

    fn run(detach: Detach, provider_first: bool) -> (Arc<Client>, Arc<Contract>, Duration) {
        let contract = Arc::new(Contract::new());
        let nmr = Nmr::new(Arc::clone(&contract), NmrMode::default());
        let client = Arc::new(Client {
            detach,
            handle: Mutex::new(None),
            detaches: AtomicUsize::new(0),
            cleanups: AtomicUsize::new(0),
            completed: Mutex::new(None),
        });
        nmr.register_provider(Arc::new(Provider));
        nmr.register_client(Arc::clone(&client) as Arc<dyn ClientModule<Provider>>);
        // Attached before NmrRegisterClient returned (inline attach).
        assert!(client.handle.lock().unwrap().is_some());
        let start = Instant::now();
        if provider_first {
            nmr.deregister_provider();
        }
        assert_eq!(nmr.deregister_client(), NtStatus::PENDING);
        assert!(nmr.wait_client_deregistered() || contract.count() > 0);
        let waited = start.elapsed();
        if provider_first {
            assert!(nmr.wait_provider_deregistered());
        }
        assert_eq!(nmr.binding_count(), 0);
        (client, contract, waited)
    }

    #[test]
    fn detach_runs_once_whichever_side_deregisters_first() {
        for provider_first in [false, true] {
            let (client, contract, _) = run(Detach::Success, provider_first);
            assert_eq!(client.detaches.load(Ordering::SeqCst), 1);
            assert_eq!(client.cleanups.load(Ordering::SeqCst), 1);
            assert_eq!(contract.count(), 0, "{:?}", contract.violations());
        }
    }

    #[test]
    fn pending_detach_blocks_the_wait_until_completed() {
        let (client, contract, waited) = run(Detach::PendingThenComplete, false);
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert_eq!(client.cleanups.load(Ordering::SeqCst), 1);
        assert_eq!(contract.count(), 0, "{:?}", contract.violations());
    }

    #[test]
    fn completing_before_returning_pending_is_allowed_but_not_before_success() {
        let (_, contract, _) = run(Detach::CompleteThenReturn(NtStatus::PENDING), false);
        assert_eq!(contract.count(), 0, "{:?}", contract.violations());
        let (_, contract, _) = run(Detach::CompleteThenReturn(NtStatus::SUCCESS), false);
        assert_eq!(contract.count(), 1, "{:?}", contract.violations());
        assert!(contract.violations()[0].contains("returned STATUS_SUCCESS after"));
    }

    #[test]
    fn completing_twice_or_without_detach_is_a_violation() {
        let (client, contract, _) = run(Detach::PendingCompleteTwice, false);
        std::thread::sleep(Duration::from_millis(50));
        let violations = contract.violations();
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(
            violations[0].contains("no longer exists") || violations[0].contains("2 times"),
            "{violations:?}"
        );
        assert_eq!(client.cleanups.load(Ordering::SeqCst), 1);

        let contract = Arc::new(Contract::new());
        let nmr = Nmr::new(Arc::clone(&contract), NmrMode::default());
        let client = Arc::new(Client {
            detach: Detach::Success,
            handle: Mutex::new(None),
            detaches: AtomicUsize::new(0),
            cleanups: AtomicUsize::new(0),
            completed: Mutex::new(None),
        });
        nmr.register_provider(Arc::new(Provider));
        nmr.register_client(Arc::clone(&client) as Arc<dyn ClientModule<Provider>>);
        client
            .handle
            .lock()
            .unwrap()
            .clone()
            .unwrap()
            .client_detach_complete();
        assert_eq!(contract.count(), 1);
        assert!(contract.violations()[0].contains("without a detach in progress"));
        assert_eq!(nmr.deregister_client(), NtStatus::PENDING);
        assert!(nmr.wait_client_deregistered());
    }
}
