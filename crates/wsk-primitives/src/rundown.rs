//! Rundown protection: admits calls until closing starts; exactly one party learns of the drain.
//!
//! One atomic word: `references << 2 | DRAINED | CLOSING`. [`Rundown::new`] starts with one
//! reference (for a binding: the attachment itself). Callers take references with
//! [`Rundown::try_acquire`] (refused once [`Rundown::begin_close`] has run) or, when they
//! already hold one, with [`Rundown::acquire_held`], and drop them with [`Rundown::release`].
//! The rundown *drains* when no reference is left after closing began; exactly one caller ever
//! learns of it (a `release` returning `true`, or a `try_acquire` returning
//! [`Acquisition::RefusedDrained`]) and completes the rundown (for a binding: reports the
//! detach complete).
//!
//! `try_acquire` is optimistic, one unconditional read-modify-write as in a bare reference
//! count: it adds a reference, and if the previous word shows `CLOSING` it takes it back. That
//! undo is a release like any other, so it can be the one that drains (closing began and every
//! real reference was dropped while the attempt's reference was in the word). A caller that
//! already holds a reference (every caller in `wsk-client`) can never see that outcome.
//!
//! Exactly one drain: the count can reach zero with `CLOSING` set more than once, since a late
//! `try_acquire` (after the drain) adds and undoes a reference. So a release or undo that takes
//! the count from one to zero with `CLOSING` set, and `DRAINED` not yet set, only makes its
//! caller a candidate; the candidate claims the drain by setting `DRAINED` (`fetch_or`), and
//! only the one that finds it clear owns the drain. `DRAINED` is never cleared, so no later
//! attempt can own it again. Candidates can only appear once every real reference is gone:
//! none can be taken after closing began except with `acquire_held`, by a holder.
//!
//! Orderings: every modification of the word is a read-modify-write, so each `Release`
//! modification heads a release sequence containing every later one. Dropping a reference
//! (`release`, and the undo) is `Release`; the claim is `Acquire`. The claim comes after every
//! real release in the word's modification order, so it synchronizes with all of them:
//! everything done under any reference happens-before the code that runs after the drain. The
//! claim is the only place that must acquire; the loom models check it (docs/testing.md). The
//! acquiring `fetch_add` is `Acquire`: what a holder reads was published before it could take
//! its reference.
//!
//! Overflow: `try_acquire` also refuses once the count reaches `2^(usize::BITS - 3)` (the
//! word's top bit, tested with `CLOSING` in one mask: no extra branch). Past that point the
//! only additions are `acquire_held` and the transient references of refused attempts (undone
//! at once), bounded by the callers running at the same time, so the word cannot wrap. In
//! `wsk-client` the count is bounded by sockets (`16 + MaxConnections`) plus calls in progress.

use crate::sync::{AtomicUsize, Ordering};

/// Set once closing began.
const CLOSING: usize = 1;
/// Set once the drain was claimed: exactly one party completes the rundown.
const DRAINED: usize = 2;
/// One reference.
const REF: usize = 4;
/// The word's top bit: set once the count reached `2^(usize::BITS - 3)`.
const SATURATED: usize = 1 << (usize::BITS - 1);
/// `try_acquire` refuses when the previous word has any of these.
const REFUSE: usize = CLOSING | SATURATED;

/// Ordering of the drain claim: `Acquire` (module documentation).
#[cfg(not(wskecho_loom_bug))]
const CLAIM_ORDERING: Ordering = Ordering::Acquire;
/// Known bug for the loom expected-failure check only (`--cfg wskecho_loom_bug`, never in a
/// real build; docs/testing.md): the drain claim does not acquire, so the detach can be
/// reported complete without happening after the calls other threads made under their
/// references. The loom models catch it; a test on x86 hardware would not.
#[cfg(wskecho_loom_bug)]
const CLAIM_ORDERING: Ordering = Ordering::Relaxed;

/// What [`Rundown::try_acquire`] did.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquisition {
    /// The caller holds a new reference and must [`Rundown::release`] it.
    Acquired,
    /// Closing began (or the count saturated): nothing is held.
    Refused,
    /// Refused, and taking the attempt back drained the rundown: nothing is held, and the
    /// caller must complete the rundown, exactly as after a [`Rundown::release`] that returned
    /// `true`. Impossible when the caller already holds a reference.
    RefusedDrained,
}

/// Rundown protection (see the module documentation).
#[derive(Debug)]
pub struct Rundown {
    word: AtomicUsize,
}

impl Default for Rundown {
    fn default() -> Self {
        Self::new()
    }
}

impl Rundown {
    /// A rundown holding one reference, not closing.
    #[allow(clippy::missing_const_for_fn)] // loom's atomics have no const constructor
    #[must_use]
    pub fn new() -> Self {
        Self {
            word: AtomicUsize::new(REF),
        }
    }

    /// Takes a reference unless closing began (see [`Acquisition`]).
    ///
    /// A caller without a reference of its own must keep the rundown's memory alive by other
    /// means: the rundown may have drained, and its owner been freed, before the call.
    #[inline]
    pub fn try_acquire(&self) -> Acquisition {
        let previous = self.word.fetch_add(REF, Ordering::Acquire);
        if previous & REFUSE == 0 {
            Acquisition::Acquired
        // SAFETY: our memory is kept alive by the caller (above) while this attempt undoes its
        // reference.
        } else if unsafe { Self::drop_reference(self) } {
            Acquisition::RefusedDrained
        } else {
            Acquisition::Refused
        }
    }

    /// Takes one more reference when the caller already holds one (allowed while closing).
    pub fn acquire_held(&self) {
        // Cannot drain: the caller's reference keeps the count above zero. Cannot overflow:
        // see the module documentation.
        self.word.fetch_add(REF, Ordering::Relaxed);
    }

    /// Drops a reference. `true` iff this release drained the rundown (no reference left and
    /// closing began, module documentation): exactly one caller ever sees `true` (or
    /// [`Acquisition::RefusedDrained`]).
    ///
    /// A raw pointer, not `&self`: once the reference is dropped, another thread may drain the
    /// rundown and free the block it lives in while this call is still returning, and a
    /// function's reference arguments must stay valid until it returns. The only reference
    /// left across that moment is the atomic's own `fetch_sub` receiver, as in `Arc`'s drop.
    ///
    /// # Safety
    /// `this` points to a live rundown on which the caller holds a reference, which this call
    /// drops. Unless it returns `true`, the caller must treat `this` (and the block around it)
    /// as freed.
    #[inline]
    #[must_use]
    pub unsafe fn release(this: *const Self) -> bool {
        // SAFETY: forwarded.
        unsafe { Self::drop_reference(this) }
    }

    /// Removes one reference from the word; `true` if the caller now owns the drain.
    ///
    /// # Safety
    /// As [`Rundown::release`].
    #[inline]
    unsafe fn drop_reference(this: *const Self) -> bool {
        // SAFETY: live until the reference this call drops is gone (caller).
        let word = unsafe { &(*this).word };
        let previous = word.fetch_sub(REF, Ordering::Release);
        // Count one → zero, closing began, drain not yet claimed: a candidate. The block is
        // not freed before the drain is claimed, and only the claimer frees it.
        previous == REF | CLOSING && Self::claim_drain(word)
    }

    /// Claims the drain; `true` for exactly one caller over the rundown's life.
    #[cold]
    fn claim_drain(word: &AtomicUsize) -> bool {
        word.fetch_or(DRAINED, CLAIM_ORDERING) & DRAINED == 0
    }

    /// Starts closing: from now on [`Rundown::try_acquire`] fails. `false` if closing had
    /// already begun. The caller holds a reference (so the rundown cannot have drained) and
    /// must release it.
    #[must_use]
    pub fn begin_close(&self) -> bool {
        self.word.fetch_or(CLOSING, Ordering::AcqRel) & CLOSING == 0
    }

    /// Whether closing began.
    #[must_use]
    pub fn is_closing(&self) -> bool {
        self.word.load(Ordering::Acquire) & CLOSING != 0
    }

    /// Whether closing began, as a read-modify-write (`AcqRel`) of the word.
    ///
    /// Being an RMW, it is totally ordered with [`Rundown::begin_close`]: either it comes later
    /// and returns `true`, or it comes earlier and `begin_close` synchronizes with it, so
    /// everything the caller did before it (publishing a socket) is visible after
    /// `begin_close` (to the detach scan). This closes the store-buffering race between a
    /// socket being published and the detach scanning for sockets, without `SeqCst`.
    #[must_use]
    pub fn check_closing_ordered(&self) -> bool {
        self.word.fetch_add(0, Ordering::AcqRel) & CLOSING != 0
    }

    /// Whether the drain was claimed (tests and diagnostics).
    #[must_use]
    pub fn is_drained(&self) -> bool {
        self.word.load(Ordering::Acquire) & DRAINED != 0
    }

    /// Current reference count, including attempts about to be taken back (diagnostics and
    /// tests only; racy by nature).
    #[must_use]
    pub fn references(&self) -> usize {
        self.word.load(Ordering::Relaxed) >> 2
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    /// `Rundown::release` on a rundown the test owns (never freed under the call).
    fn release(r: &super::Rundown) -> bool {
        // SAFETY: `r` outlives the call; the tests release only references they took.
        unsafe { super::Rundown::release(r) }
    }

    use super::{Acquisition, Ordering, REF, Rundown, SATURATED};

    #[test]
    fn starts_with_one_reference_and_open() {
        let r = Rundown::new();
        assert_eq!(r.references(), 1);
        assert!(!r.is_closing());
        assert!(!r.is_drained());
        assert!(!r.check_closing_ordered());
    }

    #[test]
    fn release_without_closing_never_drains() {
        let r = Rundown::new();
        assert_eq!(r.try_acquire(), Acquisition::Acquired);
        assert!(!release(&r));
        assert!(!release(&r), "count reached zero but closing did not begin");
        assert!(!r.is_drained());
    }

    #[test]
    fn closing_refuses_new_references_but_allows_held_ones() {
        let r = Rundown::new();
        assert!(r.begin_close());
        assert!(
            !r.begin_close(),
            "second begin_close must report closing already began"
        );
        assert!(r.is_closing());
        assert!(r.check_closing_ordered());
        assert_eq!(r.try_acquire(), Acquisition::Refused);
        assert_eq!(r.references(), 1, "the refused attempt was not taken back");
        r.acquire_held();
        assert_eq!(r.references(), 2);
        assert!(!release(&r));
        assert!(!r.is_drained());
        assert!(release(&r), "last release after closing drains");
        assert!(r.is_drained());
    }

    #[test]
    fn only_the_last_release_drains() {
        let r = Rundown::new();
        for _ in 0..5 {
            assert_eq!(r.try_acquire(), Acquisition::Acquired);
        }
        assert!(r.begin_close());
        let drained: usize = (0..6).map(|_| usize::from(release(&r))).sum();
        assert_eq!(drained, 1);
    }

    #[test]
    fn attempts_after_the_drain_are_refused_and_never_drain_again() {
        let r = Rundown::new();
        assert!(r.begin_close());
        assert!(release(&r));
        for _ in 0..3 {
            // Each attempt takes the count from zero to one and back to zero.
            assert_eq!(r.try_acquire(), Acquisition::Refused);
        }
        assert_eq!(r.references(), 0);
        assert!(r.is_drained());
    }

    #[test]
    fn saturated_count_refuses_and_takes_the_attempt_back() {
        let r = Rundown::new();
        // One reference short of saturation.
        r.word.store(SATURATED - REF, Ordering::Relaxed);
        assert_eq!(r.try_acquire(), Acquisition::Acquired);
        assert_eq!(r.try_acquire(), Acquisition::Refused);
        assert_eq!(
            r.references(),
            SATURATED >> 2,
            "refused attempt not taken back"
        );
        assert!(!release(&r));
        assert_eq!(
            r.try_acquire(),
            Acquisition::Acquired,
            "below saturation again"
        );
        assert!(!r.is_closing());
    }

    /// Threads with and without references of their own race the detach: exactly one party
    /// (a release, or a refused attempt's undo) learns of the drain.
    #[test]
    #[allow(clippy::needless_collect)] // spawn every thread before closing
    fn threads_racing_detach_drain_exactly_once() {
        extern crate std;
        use std::{sync::Arc, thread, vec::Vec};
        for _ in 0..50 {
            let r = Arc::new(Rundown::new());
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let r = Arc::clone(&r);
                    thread::spawn(move || {
                        let mut drained = 0;
                        for _ in 0..1000 {
                            drained += match r.try_acquire() {
                                Acquisition::Acquired => usize::from(release(&r)),
                                Acquisition::Refused => 0,
                                Acquisition::RefusedDrained => 1,
                            };
                        }
                        drained
                    })
                })
                .collect();
            assert!(r.begin_close());
            let mut drained = usize::from(release(&r));
            drained += handles
                .into_iter()
                .map(|h| h.join().unwrap_or(usize::MAX))
                .sum::<usize>();
            assert_eq!(drained, 1);
            assert!(r.is_drained());
            assert_eq!(r.try_acquire(), Acquisition::Refused);
            assert_eq!(r.references(), 0);
        }
    }
}
