//! A binding's state, and what its sockets may do with it: reach the client, the rundown,
//! the socket registry and the provider, report a listener listening, complete the detach
//! when their release drains the rundown.
//!
//! The attach, detach, tick and cleanup protocol on this state is `binding.rs`; the socket
//! runner is `socket.rs`. Both build on this module, which names no socket type (the registry
//! holds sockets of type `S`), so the two do not depend on each other in a cycle.

use ::core::{mem::ManuallyDrop, ops::Range, ptr::NonNull};

// The listener backoff orders nothing: `core`'s atomics on every build (as `sync.rs`'s
// statistics counters).
use ::core::sync::atomic::{AtomicU32, Ordering};

use crate::{client::Client, config::MAX_ENDPOINTS, provider::Provider};
use wsk_primitives::{
    log_error, log_trace,
    rundown::Rundown,
    slots::Slots,
    sync::{self, UnsafeCell},
};

/// The backoff of one listener's reopen attempts.
#[derive(Debug)]
pub struct ListenerRecovery {
    /// The wait before the current or last attempt, in ticks; 0 once the listener listens.
    /// Written by the tick and by the listener's runner.
    pub delay: AtomicU32,
    /// Ticks left before the next attempt; 0 when none is planned. The tick's alone.
    pub wait: AtomicU32,
}

impl ListenerRecovery {
    pub const fn new() -> Self {
        Self {
            delay: AtomicU32::new(0),
            wait: AtomicU32::new(0),
        }
    }
}

/// One attachment to the WSK subsystem (`binding.rs`), its sockets of type `S`.
pub struct BindingState<P: Provider, S> {
    pub(crate) client: NonNull<Client<P>>,
    pub(crate) rundown: Rundown,
    /// Set once by `attach_provider` when `NmrClientAttachProvider` returned, before any
    /// provider call; dropped by cleanup.
    pub(crate) provider: UnsafeCell<Option<P>>,
    /// Freed explicitly (it needs the platform).
    pub(crate) slots: ManuallyDrop<Slots<S>>,
    /// Number of listener slots at the start of `slots`.
    pub(crate) listeners: usize,
    /// The reopen backoff of each listener (index = endpoint index = slot).
    pub(crate) recovery: [ListenerRecovery; MAX_ENDPOINTS],
    /// The attach armed the timer (or is about to): set after the provider is stored, so a
    /// detach that sees it may read the provider and cancel the timer. A detach racing the
    /// attach must not read the provider before that.
    pub(crate) timer_started: sync::AtomicBool,
}

impl<P: Provider, S> BindingState<P, S> {
    /// The client (outlives every binding).
    pub(crate) const fn client(&self) -> &Client<P> {
        // SAFETY: `Client::attach_provider`'s contract: the client does not move or drop while
        // a binding is live.
        unsafe { self.client.as_ref() }
    }

    pub(crate) const fn rundown(&self) -> &Rundown {
        &self.rundown
    }

    pub(crate) fn slots(&self) -> &Slots<S> {
        &self.slots
    }

    /// The provider, once attached.
    pub(crate) fn provider(&self) -> Option<&P> {
        // SAFETY: written once before any reader can exist (attach), dropped only by cleanup,
        // after every user is gone.
        self.provider.with(|p| unsafe { (*p).as_ref() })
    }

    /// The connection slots: those after the listeners'.
    pub(crate) fn connection_slots(&self) -> Range<usize> {
        self.listeners..self.slots.len()
    }

    /// The listener in slot `index` listens: its next failure starts the backoff afresh.
    pub(crate) fn listener_listening(&self, index: usize) {
        if let Some(recovery) = self.recovery.get(index) {
            recovery.delay.store(0, Ordering::Relaxed);
        }
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
}
