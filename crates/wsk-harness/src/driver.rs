//! `DriverEntry` and `Unload` around the core's `Client`, played as the kernel adapter plays them.
//!
//! The NMR client characteristics' three callbacks call the core's entry points
//! (`Client::attach_provider` with a closure standing in for `NmrClientAttachProvider`,
//! `BindingRef::detach`, `BindingRef::cleanup`), and Unload deregisters, waits for the
//! deregistration, then waits until no binding is live.

use std::{
    sync::{Arc, Condvar, Mutex, PoisonError},
    time::{Duration, Instant},
};

use wsk_client::{
    binding::BindingRef, client::Client, config::Config, handler::Service, stats::StatsSnapshot,
    wsk_version::WskVersionRange,
};
use wsk_primitives::status::NtStatus;

use crate::{
    contract::Contract,
    host_provider::{CoreRef, HostProvider},
    irql,
    nmr::{BindingHandle, ClientModule, ContextPtr, Nmr, ProviderCharacteristics},
    pool::Pool,
    wsk::Wsk,
};

/// The WSK subsystem as the NMR sees it in a harness run.
pub type Subsystem = Wsk<CoreRef>;

/// A notification event (`KEVENT`), bounded waits only.
#[derive(Default)]
struct Event {
    signaled: Mutex<bool>,
    changed: Condvar,
}

impl Event {
    fn set(&self) {
        *self.signaled.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.changed.notify_all();
    }

    fn wait_until(&self, timeout: Duration, done: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut signaled = self.signaled.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if done() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            *signaled = false;
            signaled = self
                .changed
                .wait_timeout(signaled, (deadline - now).min(Duration::from_millis(50)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// The driver's global state: what `DriverEntry` sets up and `Unload` tears down.
struct Globals {
    client: Client<HostProvider>,
    bindings_gone: Event,
}

/// `NPI_CLIENT_CHARACTERISTICS`: the three NMR callbacks, over the core.
struct Callbacks {
    globals: Arc<Globals>,
}

impl ClientModule<Subsystem> for Callbacks {
    fn attach_provider(
        &self,
        handle: BindingHandle<Subsystem>,
        provider: ProviderCharacteristics,
    ) -> NtStatus {
        let versions = WskVersionRange {
            highest: provider.highest_version,
            lowest: provider.lowest_version,
        };
        // SAFETY: `client` lives in `Globals`, which is reference-counted and dropped only
        // after Unload has seen `live_bindings() == 0`.
        unsafe {
            self.globals.client.attach_provider(versions, |binding| {
                handle
                    .client_attach_provider(ContextPtr(binding.as_context()))
                    .map(HostProvider)
            })
        }
    }

    fn detach_provider(&self, context: ContextPtr) -> NtStatus {
        // SAFETY: `context` is the binding context this client gave NmrClientAttachProvider,
        // and the NMR calls the detach callback once per binding.
        let binding = unsafe { BindingRef::<HostProvider>::from_context(context.0) };
        // SAFETY: as above: once per binding, before its cleanup.
        unsafe { binding.detach() }
    }

    fn cleanup_binding_context(&self, context: ContextPtr) {
        // SAFETY: as in `detach_provider`; the NMR calls cleanup once, after both sides detached.
        let binding = unsafe { BindingRef::<HostProvider>::from_context(context.0) };
        // SAFETY: once per binding, after its detach completed.
        if unsafe { binding.cleanup() } {
            self.globals.bindings_gone.set();
        }
    }
}

/// What Unload reports.
#[derive(Clone, Debug)]
pub struct UnloadReport {
    /// How long Unload took.
    pub duration: Duration,
    /// `NmrDeregisterClient`'s status.
    pub deregister_status: NtStatus,
    /// The driver's counters when Unload returned.
    pub stats: StatsSnapshot,
}

/// A `DriverEntry` that failed after registering: its status, and what deregistering and
/// freeing everything (the kernel's `shut_down_client`) reported.
#[derive(Clone, Debug)]
pub struct StartFailure {
    /// `DriverEntry`'s status (`sc start` reports it).
    pub status: NtStatus,
    /// The shutdown `DriverEntry` performed before returning (boxed: the counters make it
    /// large, and it travels in a `Result`).
    pub shutdown: Box<UnloadReport>,
}

/// A loaded driver instance.
pub struct Driver {
    globals: Arc<Globals>,
    nmr: Nmr<Subsystem>,
    contract: Arc<Contract>,
    wait_timeout: Duration,
}

impl Driver {
    /// `DriverEntry`: creates the client and registers it with the NMR (which may attach it
    /// to the WSK subsystem before this returns), then takes start-up's verdict as the kernel
    /// adapter does (`Client::settle_startup`, waiting up to `wait_timeout` while listeners
    /// open).
    ///
    /// # Errors
    /// Nothing can be served (the attach failed, or no listener opened): like the kernel's
    /// `DriverEntry`, this deregisters and frees everything first, and returns the status
    /// with what that shutdown reported.
    pub fn load(
        config: Config,
        service: Service,
        pool: Pool,
        nmr: Nmr<Subsystem>,
        contract: Arc<Contract>,
        wait_timeout: Duration,
    ) -> Result<Self, StartFailure> {
        let globals = irql::at_passive(|| {
            Arc::new(Globals {
                client: Client::new(config, service, pool),
                bindings_gone: Event::default(),
            })
        });
        let callbacks = Arc::new(Callbacks {
            globals: Arc::clone(&globals),
        });
        irql::at_passive(|| nmr.register_client(callbacks));
        let driver = Self {
            globals,
            nmr,
            contract,
            wait_timeout,
        };
        let deadline = Instant::now() + wait_timeout;
        let settled = irql::at_passive(|| {
            driver.globals.client.settle_startup(|| {
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(2));
                true
            })
        });
        match settled {
            Ok(()) => Ok(driver),
            Err(status) => Err(StartFailure {
                status,
                shutdown: Box::new(driver.unload()),
            }),
        }
    }

    /// The core's client (configuration, counters).
    #[must_use]
    pub fn client(&self) -> &Client<HostProvider> {
        &self.globals.client
    }

    /// `Unload` (`sc stop`): `NmrDeregisterClient`, `NmrWaitForClientDeregisterComplete` if
    /// pending, then wait until no binding is live. Afterwards checks what must hold once
    /// Unload has returned: deregistration complete, no binding live.
    #[must_use]
    pub fn unload(self) -> UnloadReport {
        let start = Instant::now();
        let deregister_status = irql::at_passive(|| {
            let status = self.nmr.deregister_client();
            if status == NtStatus::PENDING {
                // A timeout is recorded as a violation by the wait itself.
                let _ = self.nmr.wait_client_deregistered();
            }
            if self.contract.may_block("wait for bindings to be freed") {
                let client = &self.globals.client;
                if !self
                    .globals
                    .bindings_gone
                    .wait_until(self.wait_timeout, || client.live_bindings() == 0)
                {
                    self.contract.violation(format!(
                        "Unload: {} binding(s) still live after {:?}",
                        client.live_bindings(),
                        self.wait_timeout
                    ));
                }
            }
            status
        });
        let duration = start.elapsed();
        check_unloaded(&self.nmr, &self.contract);
        if self.globals.client.live_bindings() != 0 {
            self.contract
                .violation("Unload returned with a binding still live");
        }
        UnloadReport {
            duration,
            deregister_status,
            stats: self.globals.client.stats().snapshot(),
        }
    }
}

/// What must hold once `Unload` has returned: the NMR deregistration is complete (the NMR no
/// longer holds the client or any of its bindings, whose callbacks are about to be unmapped).
pub fn check_unloaded(nmr: &Nmr<Subsystem>, contract: &Contract) {
    if nmr.client_registered() {
        contract.violation("Unload returned before the NMR deregistration completed");
    }
}
