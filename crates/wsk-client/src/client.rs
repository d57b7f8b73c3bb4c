//! Client: the configuration, the service, the counters, start-up's record and the count of
//! live bindings: what every binding shares.
//!
//! The kernel adapter keeps one `Client` in a global (so the counters are visible to
//! `WinDbg`) from `DriverEntry` to the end of `Unload`; the harness keeps one per emulated
//! machine. Its NMR entry point, `attach_provider` (`ClientAttachProvider`), is defined with
//! the bindings it creates (`binding.rs`); `live_bindings` lets `Unload` wait until every
//! binding is freed. This module knows nothing of bindings or sockets.

use ::core::{marker::PhantomData, mem::MaybeUninit, ptr};

use crate::{
    config::Config,
    handler::Service,
    provider::Provider,
    startup::{Startup, StartupRecord, Verdict},
    stats::Stats,
};
use wsk_primitives::{
    log_error, log_info, log_trace, log_warning,
    status::NtStatus,
    sync::{AtomicUsize, Ordering},
};

/// The WSK client (see the module documentation).
pub struct Client<P: Provider> {
    config: Config,
    service: Service,
    platform: P::Platform,
    stats: Stats,
    startup: StartupRecord,
    live: AtomicUsize,
    _provider: PhantomData<fn() -> P>,
}

impl<P: Provider> ::core::fmt::Debug for Client<P> {
    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .field("stats", &self.stats)
            .field("live_bindings", &self.live_bindings())
            .finish_non_exhaustive()
    }
}

impl<P: Provider> Client<P> {
    /// A client with a validated configuration, before any binding, serving each accepted
    /// connection with `service`'s handler.
    #[must_use]
    pub fn new(config: Config, service: Service, platform: P::Platform) -> Self {
        Self {
            config,
            service,
            platform,
            stats: Stats::new(),
            startup: StartupRecord::new(),
            live: AtomicUsize::new(0),
            _provider: PhantomData,
        }
    }

    /// Writes a new client into `slot`, field by field, and returns it: the same client as
    /// [`Client::new`], but `config` is copied from where it is straight into place. The kernel
    /// adapter builds its global client this way, so no ~540-byte `Config` (nor a ~600-byte
    /// `Client` temporary) passes through `DriverEntry`'s stack frame. Whatever `slot` held is
    /// overwritten without being dropped.
    pub fn init_in_place<'s>(
        slot: &'s mut MaybeUninit<Self>,
        config: &Config,
        service: Service,
        platform: P::Platform,
    ) -> &'s mut Self {
        let this = slot.as_mut_ptr();
        // Each field's address is computed without reading or referencing the uninitialised
        // storage, and each field is written exactly once.
        // SAFETY: `this` points to writable, aligned storage for a `Self` (from `slot`).
        let config_field = unsafe { &raw mut (*this).config };
        // SAFETY: `config_field` is valid for writes; `config` is a valid `Config` that
        // cannot overlap `slot`, which is borrowed mutably.
        unsafe { ptr::copy_nonoverlapping(config, config_field, 1) };
        // SAFETY: as for `config_field`.
        let service_field = unsafe { &raw mut (*this).service };
        // SAFETY: valid for writes and aligned (a field of `slot`).
        unsafe { service_field.write(service) };
        // SAFETY: as for `config_field`.
        let platform_field = unsafe { &raw mut (*this).platform };
        // SAFETY: valid for writes and aligned (a field of `slot`).
        unsafe { platform_field.write(platform) };
        // SAFETY: as for `config_field`.
        let stats_field = unsafe { &raw mut (*this).stats };
        // SAFETY: valid for writes and aligned (a field of `slot`).
        unsafe { stats_field.write(Stats::new()) };
        // SAFETY: as for `config_field`.
        let startup_field = unsafe { &raw mut (*this).startup };
        // SAFETY: valid for writes and aligned (a field of `slot`).
        unsafe { startup_field.write(StartupRecord::new()) };
        // SAFETY: as for `config_field`.
        let live_field = unsafe { &raw mut (*this).live };
        // SAFETY: valid for writes and aligned (a field of `slot`).
        unsafe { live_field.write(AtomicUsize::new(0)) };
        // `_provider` is a zero-sized `PhantomData`: nothing to write.
        // SAFETY: every field is initialised.
        unsafe { slot.assume_init_mut() }
    }

    /// The configuration.
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// How accepted connections are served.
    pub const fn service(&self) -> &Service {
        &self.service
    }

    /// The counters.
    pub const fn stats(&self) -> &Stats {
        &self.stats
    }

    /// What start-up came to (attach, listeners): `DriverEntry`'s verdict and diagnostics.
    pub const fn startup(&self) -> &StartupRecord {
        &self.startup
    }

    /// Memory and logging.
    pub const fn platform(&self) -> &P::Platform {
        &self.platform
    }

    /// A binding was allocated (`attach_provider`, in `binding.rs`).
    pub(crate) fn binding_created(&self) {
        self.live.fetch_add(1, Ordering::AcqRel);
    }

    /// Bindings allocated and not yet freed by cleanup.
    pub fn live_bindings(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// A binding was freed. `true` if none is live any more. The last touch of the client by
    /// the binding's code.
    pub(crate) fn binding_freed(&self) -> bool {
        let previous = self.live.fetch_sub(1, Ordering::AcqRel);
        if previous == 0 {
            // Unreachable by construction; undo rather than wrap.
            self.live.fetch_add(1, Ordering::AcqRel);
            log_error!(&self.platform, "internal: binding freed twice");
        }
        previous == 1
    }

    /// Logs the configuration (`DriverEntry`).
    pub fn log_config(&self) {
        log_trace!(&self.platform, "configuration: {}", self.config);
    }

    /// Call before each `NmrRegisterClient`: start-up's record forgets the previous
    /// registration (a Plug and Play device started again), so [`Client::settle_startup`]
    /// judges this one.
    pub fn registration_begins(&self) {
        self.startup.registration_begins();
    }

    /// `DriverEntry`'s last step, once `NmrRegisterClient` returned: what start-up came to
    /// ([`Startup::verdict`]). While listeners are still opening it calls `pause` (which sleeps
    /// a little and returns `false` when the wait should end) and looks again. Logs the
    /// outcome in one line. `Err(status)`: nothing can be served, so `DriverEntry` deregisters
    /// and fails with `status` (`sc start` then reports it).
    ///
    /// # Errors
    /// The attach failed, or no configured listener could be opened.
    pub fn settle_startup(&self, mut pause: impl FnMut() -> bool) -> Result<(), NtStatus> {
        let mut startup = self.startup.snapshot();
        while startup.verdict() == Verdict::Wait && pause() {
            startup = self.startup.snapshot();
        }
        let platform = &self.platform;
        let endpoints = self.config.endpoints().count();
        match (startup, startup.verdict()) {
            (Startup::AttachFailed(status), _) => {
                log_error!(
                    platform,
                    "start failed: the attach to the WSK subsystem failed with {status}, nothing is served"
                );
                Err(status)
            }
            (Startup::Settled { failed, .. }, Verdict::Fail(status)) => {
                log_error!(
                    platform,
                    "start failed: none of the {failed} listener(s) could be opened (first failure: {status})"
                );
                Err(status)
            }
            (
                Startup::Settled {
                    open, failed: 0, ..
                },
                _,
            ) => {
                log_trace!(platform, "serving: {open} listener(s) open");
                Ok(())
            }
            (
                Startup::Settled {
                    open,
                    failed,
                    first_failure,
                },
                _,
            ) => {
                log_warning!(
                    platform,
                    "serving on {open} of {endpoints} endpoint(s): {failed} listener(s) could not be opened (first failure: {first_failure})"
                );
                Ok(())
            }
            (Startup::Opening { pending }, _) => {
                log_warning!(
                    platform,
                    "{pending} of {endpoints} listener(s) still opening; serving what opens"
                );
                Ok(())
            }
            (Startup::Detached, _) => {
                log_info!(
                    platform,
                    "the WSK provider detached during start-up: the listeners open when the NMR attaches one again"
                );
                Ok(())
            }
            (Startup::NotAttached, _) => {
                log_info!(
                    platform,
                    "no WSK provider has attached yet: the listeners open when the NMR attaches one"
                );
                Ok(())
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    extern crate std;
    use std::{boxed::Box, format, mem::MaybeUninit};

    use super::Client;
    use crate::{
        config::{ConfigBuilder, ValueName},
        testing::{
            TestPlatform,
            mirror::MIRROR,
            provider::{Call, Mode, TestProvider, World},
        },
    };

    #[test]
    fn init_in_place_builds_the_same_client_as_new() {
        let mut builder = ConfigBuilder::new();
        builder.set_listen_addresses(["127.0.0.1:7"]).unwrap();
        builder.set_dword(ValueName::MaxConnections, 3).unwrap();
        let config = *builder.build_in_place();
        // A slot full of garbage: every field must be written.
        let mut slot: Box<MaybeUninit<Client<TestProvider>>> = Box::new(MaybeUninit::uninit());
        let bytes = slot.as_mut_ptr().cast::<u8>();
        // SAFETY: any byte pattern may be written to a MaybeUninit; the box holds that many.
        unsafe { bytes.write_bytes(0xa5, size_of::<Client<TestProvider>>()) };
        let client = Client::init_in_place(&mut slot, &config, MIRROR, TestPlatform::default());
        let by_value = Client::<TestProvider>::new(config, MIRROR, TestPlatform::default());
        assert_eq!(format!("{client:?}"), format!("{by_value:?}"));
        assert_eq!(*client.config(), config);
        assert_eq!(client.stats().snapshot(), by_value.stats().snapshot());
        assert_eq!(client.startup().snapshot(), by_value.startup().snapshot());
        assert_eq!(client.live_bindings(), 0);

        // And it works: attach, the one listener opens, detach and cleanup free everything.
        let world = World::new(Mode::Pending);
        // SAFETY: the boxed client outlives the binding (cleanup below).
        let status = unsafe { world.attach_1_0(client) };
        assert!(status.is_success(), "attach: {status}");
        while let Some(op) = world.take(|op| matches!(op.call, Call::Open(_) | Call::Bind(_))) {
            world.succeed(op);
        }
        assert_eq!(client.stats().snapshot().listeners_open, 1);
        assert_eq!(
            client.startup().snapshot(),
            crate::startup::Startup::Settled {
                open: 1,
                failed: 0,
                first_failure: wsk_primitives::status::NtStatus::SUCCESS
            }
        );
        assert_eq!(client.live_bindings(), 1);
        if world.detach() == wsk_primitives::status::NtStatus::PENDING {
            world.drain();
        }
        assert!(world.detached() && world.cleanup());
        assert_eq!(client.live_bindings(), 0);
        world.assert_finished();
        client.platform().assert_clean();
        // SAFETY: initialised above; no binding is live.
        unsafe { slot.assume_init_drop() };
    }
}
