//! NMR calling the client (attach, detach, cleanup), Unload's waits, the binding's timer, and
//! the execution contexts the client's code runs in (WSK callbacks, work items).

use ::core::ffi::c_void;
use std::{format, sync::Arc, vec::Vec};

use wsk_primitives::{
    status::NtStatus,
    sync::Ordering,
    testing::sync::{MutexGuard, current_thread},
};

use super::{Cleanup, Entry, TICK, TestProvider, WORK_ITEM, World};
use crate::{binding::BindingRef, client::Client, wsk_version::WskVersionRange};

impl World {
    // ---- execution contexts ----

    /// Runs `f` as WSK runs a callback into the client (an `IoCompletion` routine, an accept
    /// event) on this thread: no WSK call may be made inside it. Then runs this thread's work
    /// items.
    pub(super) fn callback<R>(&self, f: impl FnOnce() -> R) -> R {
        let me = current_thread();
        {
            let mut s = self.state();
            match s.in_callback.iter_mut().find(|(t, _)| *t == me) {
                Some((_, depth)) => *depth += 1,
                None => s.in_callback.push((me, 1)),
            }
        }
        let result = f();
        {
            let mut s = self.state();
            if let Some(i) = s.in_callback.iter().position(|(t, _)| *t == me) {
                s.in_callback[i].1 -= 1;
                if s.in_callback[i].1 == 0 {
                    s.in_callback.swap_remove(i);
                }
            }
        }
        self.run_work_items();
        result
    }

    /// Runs `f` as an NMR callback into the client (attach, detach) or the timer's work item:
    /// WSK calls are allowed there. Then runs this thread's work items.
    fn nmr_callback<R>(&self, f: impl FnOnce() -> R) -> R {
        let result = f();
        self.run_work_items();
        result
    }

    /// Makes `call`, a call into the client, through the entry set with
    /// [`World::set_client_entry`].
    pub(super) fn enter_client(&self, call: &mut dyn FnMut()) {
        let entry = self.state().client_entry;
        entry(call);
    }

    /// [`World::enter_client`] for a call with a result.
    pub(super) fn enter_client_for<R>(&self, mut call: impl FnMut() -> R) -> R {
        let mut result = None;
        self.enter_client(&mut || result = Some(call()));
        result.expect("the client entry must make the call")
    }

    /// Runs the work items this thread queued, as a worker thread does after the callback that
    /// queued them, unless this thread is inside a callback or already running work items
    /// (then the outermost one runs them when it returns).
    pub fn run_work_items(&self) {
        let me = current_thread();
        {
            let mut s = self.state();
            if s.in_callback(me) || s.running_work.contains(&me) {
                return;
            }
            s.running_work.push(me);
        }
        loop {
            let next = {
                let mut s = self.state();
                let index = s.scheduled.iter().position(|(t, _, _)| *t == me);
                let next = index.and_then(|i| s.scheduled.remove(i));
                if next.is_some() {
                    s.work_items_run += 1;
                    s.calls.push(Entry::Named(WORK_ITEM));
                }
                next
            };
            let Some((_, _, token)) = next else { break };
            // SAFETY: one run per `schedule`, on a thread outside every callback.
            self.enter_client(&mut || unsafe { token.run_scheduled() });
        }
        self.state().running_work.retain(|t| *t != me);
    }

    /// Work items run so far.
    #[must_use]
    pub fn work_items_run(&self) -> usize {
        self.state().work_items_run
    }

    // ---- the binding's timer ----

    fn timer_lock(&self) -> MutexGuard<'_, ()> {
        self.timer_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `KeSetTimer` for the binding's tick.
    pub(super) fn arm_timer(&self, delay_ms: u32, context: usize) {
        let mut problems = Vec::new();
        {
            let _timer = self.timer_lock();
            let mut s = self.state();
            if s.timer.is_some() || s.timer_due.is_some() {
                problems.push("the timer armed while armed or due");
            }
            if s.detach_complete() {
                problems.push("the timer armed after the detach completed");
            }
            if s.detach_calls > 0 {
                s.facts.insert("the timer was armed after the detach began");
            }
            s.timer = Some((delay_ms, context));
            s.timer_arms += 1;
        }
        self.report(&problems);
    }

    /// `KeCancelTimer`: whether the timer was armed (a due tick cannot be cancelled).
    pub(super) fn cancel_timer(&self) -> bool {
        let (cancelled, late) = {
            let _timer = self.timer_lock();
            let mut s = self.state();
            let cancelled = s.timer.take().is_some();
            s.facts.insert(if cancelled {
                "a cancel found the timer armed"
            } else {
                "a cancel found the timer not armed"
            });
            (cancelled, s.detach_complete())
        };
        if late {
            self.report(&["the timer cancelled after the detach completed"]);
        }
        cancelled
    }

    /// Records `problems` as violations, outside the timer's lock (under loom, a violation
    /// unwinds, and a loom lock must not be released by unwinding).
    fn report(&self, problems: &[&str]) {
        if problems.is_empty() {
            return;
        }
        let mut s = self.state();
        for p in problems {
            Self::violation(&mut s, (*p).into());
        }
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
        let _timer = self.timer_lock();
        let mut s = self.state();
        let Some((_, context)) = s.timer.take() else {
            return false;
        };
        s.timer_due = Some(context);
        true
    }

    /// The armed (or expired) timer's tick runs on this thread, as the timer's work item would
    /// (outside every callback), then the work items it queued. `false` if the timer was not
    /// armed.
    pub fn fire_timer(&self) -> bool {
        let context = {
            let _timer = self.timer_lock();
            let mut s = self.state();
            let due = s.timer_due.take();
            due.or_else(|| s.timer.take().map(|(_, context)| context))
        };
        let Some(context) = context else {
            return false;
        };
        {
            let mut s = self.state();
            if s.detach_complete() {
                Self::violation(&mut s, "the tick ran after the detach completed".into());
            }
            if s.detach_calls > 0 {
                s.facts.insert("a tick ran after the detach began");
            }
            s.calls.push(Entry::Named(TICK));
        }
        // SAFETY: the context the timer was armed with; one tick per arm.
        let binding = unsafe { BindingRef::<TestProvider>::from_context(context as *mut c_void) };
        // SAFETY: as above, outside every callback.
        self.nmr_callback(|| self.enter_client(&mut || unsafe { binding.tick() }));
        true
    }

    /// Fires the timer `n` times (each tick arms the next); `false` if it was not armed at
    /// some point.
    pub fn fire_timer_times(&self, n: usize) -> bool {
        (0..n).all(|_| self.fire_timer())
    }

    // ---- attach ----

    /// `ClientAttachProvider` for a provider supporting `versions`, on this thread. Once
    /// `NmrClientAttachProvider` succeeded, a thread in [`World::wait_attached`] may detach.
    ///
    /// # Safety
    /// `client` stays in place until every binding is freed.
    pub unsafe fn attach(
        self: &Arc<Self>,
        client: &Client<TestProvider>,
        versions: WskVersionRange,
    ) -> NtStatus {
        let again = {
            let mut s = self.state();
            let again = s.attaches > 0;
            if again {
                s.detach_calls = 0;
                s.detach_thread = None;
                s.detach_status = None;
                s.detach_completions = 0;
                s.detaches_done = 0;
                s.cleanups = 0;
                s.accept_events_enabled = false;
            }
            s.attach_returned = false;
            again
        };
        if again {
            self.detached.store(false, Ordering::Relaxed);
            self.detach_started.store(false, Ordering::Relaxed);
            self.attach_ready.store(false, Ordering::Relaxed);
        }
        // SAFETY: forwarded.
        let status = self.enter_client_for(|| unsafe {
            client.attach_provider(versions, |binding| {
                self.new_provider(binding.as_context() as usize)
            })
        });
        self.state().attach_returned = true;
        self.run_work_items();
        status
    }

    /// The attach's provider factory: the provider of the binding with `context`, once
    /// `NmrClientAttachProvider` succeeded (or the failure [`World::fail_attach`] asked for).
    #[inline(never)] // the client calls it: a profile must tell it from the client's code
    fn new_provider(self: &Arc<Self>, context: usize) -> Result<TestProvider, NtStatus> {
        {
            let mut s = self.state();
            if let Some(status) = s.attach_failure.take() {
                return Err(status);
            }
            s.attaches += 1;
            s.providers += 1;
            s.binding = Some(context);
        }
        let provider = TestProvider {
            world: Arc::clone(self),
        };
        // NMR's own synchronization between `NmrClientAttachProvider` and a detach.
        self.attach_ready.store(true, Ordering::Release);
        self.attach_event.notify();
        Ok(provider)
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

    /// Blocks until an attach recorded its binding context (NMR may detach from then on).
    pub fn wait_attached(&self) {
        // The event may wake spuriously: the acquire load is what orders this thread after
        // the attach.
        while !self.attach_ready.load(Ordering::Acquire) {
            self.attach_event.wait();
        }
    }

    // ---- detach ----

    /// One side deregisters (the client's `NmrDeregisterClient`, or the WSK subsystem going
    /// away): NMR calls `ClientDetachProvider` if the other side has not already. `None` if it
    /// had; otherwise what the detach returned.
    pub fn deregister(&self) -> Option<NtStatus> {
        if self.detach_started.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(self.detach())
    }

    /// NMR calling `ClientDetachProvider` on this thread (at most once per binding), then, if
    /// it returned `STATUS_SUCCESS`, completing the client's detach.
    pub fn detach(&self) -> NtStatus {
        let executing = self.in_call.fetch_add(0, Ordering::Relaxed);
        let me = current_thread();
        let context = {
            let mut s = self.state();
            s.detach_calls += 1;
            s.detach_thread = Some(me);
            if executing > 0 {
                s.facts
                    .insert("detach began while a call into WSK was executing");
            }
            if !s.attach_returned {
                s.facts
                    .insert("detach began before ClientAttachProvider returned");
            }
            if s.detach_calls > 1 {
                Self::violation(&mut s, "ClientDetachProvider called twice".into());
            }
            s.binding.expect("ClientDetachProvider without a binding")
        };
        // SAFETY: the context the client attached with, not yet cleaned up; once per binding.
        let binding = unsafe { BindingRef::<TestProvider>::from_context(context as *mut c_void) };
        // SAFETY: as above. The closes the detach requested are made by work items, after the
        // callback returned.
        let status = self.nmr_callback(|| self.enter_client_for(|| unsafe { binding.detach() }));
        {
            let mut s = self.state();
            if status != NtStatus::SUCCESS && status != NtStatus::PENDING {
                Self::violation(&mut s, format!("ClientDetachProvider returned {status}"));
            }
            if status == NtStatus::SUCCESS && s.detach_completions > 0 {
                Self::violation(
                    &mut s,
                    "ClientDetachProvider returned SUCCESS after NmrClientDetachProviderComplete"
                        .into(),
                );
            }
            s.detach_status = Some(status);
            s.facts.insert(if status == NtStatus::SUCCESS {
                "detach returned STATUS_SUCCESS"
            } else {
                "detach returned STATUS_PENDING"
            });
        }
        if status == NtStatus::SUCCESS {
            self.client_detach_complete("ClientDetachProvider returned STATUS_SUCCESS");
        }
        status
    }

    /// `NmrClientDetachProviderComplete`.
    pub(super) fn nmr_detach_complete(&self) {
        {
            let mut s = self.state();
            s.calls.push(Entry::Named("detach_complete"));
            s.detach_completions += 1;
            if s.detach_status == Some(NtStatus::SUCCESS) {
                Self::violation(
                    &mut s,
                    "NmrClientDetachProviderComplete after ClientDetachProvider returned SUCCESS"
                        .into(),
                );
            }
        }
        self.client_detach_complete("NmrClientDetachProviderComplete");
    }

    /// The client's side of the detach is complete (`how`): checks, then cleanup if NMR runs
    /// it now (the provider side is modelled as already detached).
    fn client_detach_complete(&self, how: &str) {
        let in_call = self.in_call.fetch_add(0, Ordering::Relaxed);
        let me = current_thread();
        let cleanup_now = {
            let mut s = self.state();
            s.detaches_done += 1;
            if s.detaches_done > 1 {
                Self::violation(
                    &mut s,
                    format!("the detach completed twice (second: {how})"),
                );
            }
            let executing = s.executing.max(in_call);
            if executing > 0 {
                Self::violation(
                    &mut s,
                    format!("{how} while {executing} call(s) into WSK are executing"),
                );
            }
            if s.in_callback(me) {
                // The kernel's completion routines and accept event hold no reference on the
                // driver: the last release must come from a work item (which does).
                Self::violation(
                    &mut s,
                    format!("{how} inside a completion routine or accept event"),
                );
            }
            if s.timer.is_some() || s.timer_due.is_some() {
                Self::violation(&mut s, format!("{how} with the timer armed or due"));
            }
            if !s.attach_returned {
                s.facts
                    .insert("detach completed before ClientAttachProvider returned");
            }
            if s.detach_thread != Some(me) {
                s.facts
                    .insert("detach completed on another thread than ClientDetachProvider's");
            }
            s.cleanup == Cleanup::WhenDetached
        };
        self.calls_returned.write();
        self.detached.store(true, Ordering::Release);
        self.wsk_work.notify();
        self.detach_event.notify();
        if cleanup_now {
            // NMR may free the binding (and its provider) inside this call.
            self.cleanup();
        }
    }

    /// Whether the client's detach is complete (acquire: pairs with the completion).
    #[must_use]
    pub fn detached(&self) -> bool {
        self.detached.load(Ordering::Acquire)
    }

    /// Blocks until the client's detach is complete: `NmrWaitForClientDeregisterComplete`.
    /// Then, with [`Cleanup::AfterDeregisterWait`], runs cleanup on this thread.
    pub fn wait_detached(&self) {
        while !self.detached() {
            self.detach_event.wait();
        }
        if self.state().cleanup == Cleanup::AfterDeregisterWait {
            self.cleanup();
        }
    }

    /// `ClientCleanupBindingContext`: returns what the client returned ("no binding is live").
    pub fn cleanup(&self) -> bool {
        let context = {
            let mut s = self.state();
            if !s.detach_complete() {
                Self::violation(&mut s, "cleanup before the detach completed".into());
            }
            s.cleanups += 1;
            if s.cleanups > 1 {
                Self::violation(&mut s, "cleanup ran twice".into());
            }
            s.binding.take()
        };
        let Some(context) = context else {
            return false;
        };
        // SAFETY: the context the client attached with; its detach completed; cleanup once.
        let binding = unsafe { BindingRef::<TestProvider>::from_context(context as *mut c_void) };
        // SAFETY: as above.
        let no_binding_live = self.enter_client_for(|| unsafe { binding.cleanup() });
        self.state().last_cleanup = Some(no_binding_live);
        if no_binding_live {
            // The kernel adapter signals Unload's event here.
            self.unload_event.notify();
        }
        no_binding_live
    }

    /// Unload's wait, as the kernel adapter does it: while `live_bindings()` is not zero, wait
    /// for the event cleanup sets when the client reports the last binding gone. Unload may
    /// therefore go on as soon as the count reaches zero, before cleanup returned: the
    /// client's last touch of itself must be that count.
    pub fn wait_unloadable(&self, live_bindings: impl Fn() -> usize) {
        while live_bindings() > 0 {
            self.unload_event.wait();
        }
    }
}
