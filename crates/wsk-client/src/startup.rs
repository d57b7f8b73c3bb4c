//! What start-up came to: whether a provider attached, and how its listeners fared.
//!
//! The record holds the latest attach's outcome and how many of its listeners opened or
//! failed. `DriverEntry` reads it right after `NmrRegisterClient` returned, so that a driver
//! that serves nothing fails to start instead of reporting RUNNING ([`Startup::verdict`]). It
//! lives in the global client, so `WinDbg` shows it with the counters (docs/windbg.md).
//!
//! The record uses plain `core` atomics, not the loom shim: like the counters it is read by
//! `DriverEntry` and diagnostics only, and every value is final once `pending` reaches zero
//! (the decrement is the last write of a settle, with release ordering; the read of `pending`
//! acquires).

use ::core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use wsk_primitives::status::NtStatus;

/// The start-up record of a client (see the module documentation). `#[repr(C)]`: the
/// debugger sees the fields in this order (docs/windbg.md).
#[derive(Debug)]
#[repr(C)]
pub struct StartupRecord {
    /// Attach attempts (`ClientAttachProvider` calls) since the latest registration.
    attaches: AtomicUsize,
    /// The latest attach's failure (`NTSTATUS` bits), 0 while it has not failed.
    attach_failure: AtomicU32,
    /// 1 once the latest attach's binding began to detach (the provider leaving, or
    /// deregistration), else 0.
    detached: AtomicU32,
    /// Listeners of the latest attach that have neither opened nor failed yet.
    pending: AtomicUsize,
    /// Listeners of the latest attach that opened (bound and listening).
    opened: AtomicUsize,
    /// Listeners of the latest attach that could not be opened.
    failed: AtomicUsize,
    /// Listeners of the latest attach whose opening was cancelled (by a detach or close that
    /// came first): not a failure of the endpoint.
    cancelled: AtomicUsize,
    /// The first of those failures (`NTSTATUS` bits), 0 if none.
    first_failure: AtomicU32,
}

/// A snapshot of a [`StartupRecord`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Startup {
    /// No provider has attached yet (the NMR attaches when the WSK subsystem registers).
    NotAttached,
    /// The latest attach failed with this status: nothing is served.
    AttachFailed(NtStatus),
    /// The latest attach's binding detached (the WSK subsystem left), or every listener's
    /// opening was cancelled by a detach or close: nothing to judge until the NMR attaches a
    /// provider again.
    Detached,
    /// Attached; `pending` listeners are still opening.
    Opening {
        /// Listeners not settled yet.
        pending: usize,
    },
    /// Attached, and every listener settled.
    Settled {
        /// Listeners that listen.
        open: usize,
        /// Listeners that could not be opened.
        failed: usize,
        /// The status of the first that failed (`STATUS_SUCCESS` if none did).
        first_failure: NtStatus,
    },
}

/// What `DriverEntry` does with a [`Startup`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Succeed: the driver serves (possibly on fewer endpoints than configured).
    Serve,
    /// Succeed and keep waiting: no provider has attached yet.
    AwaitProvider,
    /// Wait a little and ask again: listeners are still opening.
    Wait,
    /// Deregister and fail `DriverEntry` with this status: nothing can be served.
    Fail(NtStatus),
}

const fn status_bits(status: NtStatus) -> u32 {
    status.as_u32()
}

const fn status_from_bits(bits: u32) -> NtStatus {
    NtStatus(i32::from_ne_bytes(bits.to_ne_bytes()))
}

impl StartupRecord {
    /// A record before any attach.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            attaches: AtomicUsize::new(0),
            attach_failure: AtomicU32::new(0),
            detached: AtomicU32::new(0),
            pending: AtomicUsize::new(0),
            opened: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            cancelled: AtomicUsize::new(0),
            first_failure: AtomicU32::new(0),
        }
    }

    /// A new NMR registration begins (as a Plug and Play device: the device started again): nothing
    /// is known until its first attach, whatever the previous registration's bindings did.
    pub(crate) fn registration_begins(&self) {
        self.attach_failure.store(0, Ordering::Relaxed);
        self.detached.store(0, Ordering::Relaxed);
        self.pending.store(0, Ordering::Relaxed);
        self.attaches.store(0, Ordering::Release);
    }

    /// An attach begins that will open `listeners` listeners if it succeeds.
    pub(crate) fn attach_begins(&self, listeners: usize) {
        self.attach_failure.store(0, Ordering::Relaxed);
        self.detached.store(0, Ordering::Relaxed);
        self.opened.store(0, Ordering::Relaxed);
        self.failed.store(0, Ordering::Relaxed);
        self.cancelled.store(0, Ordering::Relaxed);
        self.first_failure.store(0, Ordering::Relaxed);
        self.pending.store(listeners, Ordering::Release);
        self.attaches.fetch_add(1, Ordering::AcqRel);
    }

    /// The attach failed with `status`: none of its listeners will open.
    pub(crate) fn attach_failed(&self, status: NtStatus) {
        self.attach_failure
            .store(status_bits(status), Ordering::Release);
        self.pending.store(0, Ordering::Release);
    }

    /// The latest attach's binding began to detach: whatever its listeners did, they are
    /// closing, and serving resumes with the next attach.
    pub(crate) fn attach_detached(&self) {
        self.detached.store(1, Ordering::Release);
    }

    /// One listener of the latest attach opened (`Ok`) or could not be opened.
    pub(crate) fn listener_settled(&self, result: Result<(), NtStatus>) {
        match result {
            Ok(()) => {
                self.opened.fetch_add(1, Ordering::Relaxed);
            }
            Err(NtStatus::CANCELLED) => {
                self.cancelled.fetch_add(1, Ordering::Relaxed);
            }
            Err(status) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let _ = self.first_failure.compare_exchange(
                    0,
                    status_bits(status),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
        // Saturating: a listener of an earlier attach that settles late changes nothing.
        let _ = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// The record now.
    #[must_use]
    pub fn snapshot(&self) -> Startup {
        if self.attaches.load(Ordering::Acquire) == 0 {
            return Startup::NotAttached;
        }
        let pending = self.pending.load(Ordering::Acquire);
        let failure = self.attach_failure.load(Ordering::Acquire);
        if failure != 0 {
            return Startup::AttachFailed(status_from_bits(failure));
        }
        if self.detached.load(Ordering::Acquire) != 0 {
            return Startup::Detached;
        }
        if pending > 0 {
            return Startup::Opening { pending };
        }
        let (opened, failed) = (
            self.opened.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        );
        if opened == 0 && failed == 0 {
            // Every opening was cancelled: a detach or close came first, whatever saw it first.
            return Startup::Detached;
        }
        Startup::Settled {
            open: opened,
            failed,
            first_failure: status_from_bits(self.first_failure.load(Ordering::Relaxed)),
        }
    }
}

impl Default for StartupRecord {
    fn default() -> Self {
        Self::new()
    }
}

impl Startup {
    /// What `DriverEntry` does: fail when the attach failed or no listener opened; succeed
    /// when at least one listens, or when no provider attached yet (it may attach later:
    /// `NmrRegisterClient` attaches only to providers registered at that moment,
    /// <https://learn.microsoft.com/windows-hardware/drivers/network/registering-a-client-module>);
    /// wait while listeners are opening.
    #[must_use]
    pub const fn verdict(self) -> Verdict {
        match self {
            Self::NotAttached | Self::Detached => Verdict::AwaitProvider,
            Self::AttachFailed(status) => Verdict::Fail(status),
            Self::Opening { .. } => Verdict::Wait,
            Self::Settled {
                open: 0,
                first_failure,
                ..
            } => Verdict::Fail(if first_failure.is_success() {
                NtStatus::UNSUCCESSFUL
            } else {
                first_failure
            }),
            Self::Settled { .. } => Verdict::Serve,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_attach_waits_for_a_provider() {
        let record = StartupRecord::new();
        assert_eq!(record.snapshot(), Startup::NotAttached);
        assert_eq!(record.snapshot().verdict(), Verdict::AwaitProvider);
    }

    #[test]
    fn a_failed_attach_fails_the_start_with_its_status() {
        let record = StartupRecord::new();
        record.attach_begins(2);
        record.attach_failed(NtStatus::INSUFFICIENT_RESOURCES);
        assert_eq!(
            record.snapshot(),
            Startup::AttachFailed(NtStatus::INSUFFICIENT_RESOURCES)
        );
        assert_eq!(
            record.snapshot().verdict(),
            Verdict::Fail(NtStatus::INSUFFICIENT_RESOURCES)
        );
    }

    #[test]
    fn listeners_opening_then_one_of_two_failing_serves() {
        let record = StartupRecord::new();
        record.attach_begins(2);
        assert_eq!(record.snapshot().verdict(), Verdict::Wait);
        record.listener_settled(Err(NtStatus::INSUFFICIENT_RESOURCES));
        assert_eq!(record.snapshot(), Startup::Opening { pending: 1 });
        record.listener_settled(Ok(()));
        assert_eq!(
            record.snapshot(),
            Startup::Settled {
                open: 1,
                failed: 1,
                first_failure: NtStatus::INSUFFICIENT_RESOURCES
            }
        );
        assert_eq!(record.snapshot().verdict(), Verdict::Serve);
    }

    #[test]
    fn no_listener_open_fails_with_the_first_failure() {
        let record = StartupRecord::new();
        record.attach_begins(2);
        record.listener_settled(Err(NtStatus::ADDRESS_ALREADY_EXISTS));
        record.listener_settled(Err(NtStatus::INSUFFICIENT_RESOURCES));
        assert_eq!(
            record.snapshot().verdict(),
            Verdict::Fail(NtStatus::ADDRESS_ALREADY_EXISTS)
        );
    }

    #[test]
    fn a_detach_during_start_up_waits_for_the_next_provider() {
        let record = StartupRecord::new();
        record.attach_begins(2);
        record.attach_detached();
        record.listener_settled(Err(NtStatus::CANCELLED));
        record.listener_settled(Err(NtStatus::CANCELLED));
        assert_eq!(record.snapshot(), Startup::Detached);
        assert_eq!(record.snapshot().verdict(), Verdict::AwaitProvider);
        record.attach_begins(2);
        assert_eq!(record.snapshot(), Startup::Opening { pending: 2 });
    }

    #[test]
    fn openings_all_cancelled_count_as_detached_even_before_the_detach_is_seen() {
        let record = StartupRecord::new();
        record.attach_begins(2);
        record.listener_settled(Err(NtStatus::CANCELLED));
        record.listener_settled(Err(NtStatus::CANCELLED));
        assert_eq!(record.snapshot(), Startup::Detached);
    }

    #[test]
    fn a_new_attach_starts_a_new_record_and_late_settles_saturate() {
        let record = StartupRecord::new();
        record.attach_begins(1);
        record.attach_failed(NtStatus::INSUFFICIENT_RESOURCES);
        record.attach_begins(1);
        record.listener_settled(Ok(()));
        record.listener_settled(Ok(())); // a late one of the first attach
        assert_eq!(
            record.snapshot(),
            Startup::Settled {
                open: 2,
                failed: 0,
                first_failure: NtStatus::SUCCESS
            }
        );
    }
}
