//! Per-object event serializer: one runner at a time, never blocks, never spins.
//!
//! One atomic word: `RUNNING | pending event bits`. Any thread may [`Serializer::post`]
//! events; the one that finds the object idle becomes the *runner* and gets the batch of
//! pending events. The others return at once: their events are picked up by the runner's next
//! [`Serializer::finish`], which either releases the run (nothing pending) or hands over the
//! next batch. So an object's state machine runs on one thread at a time, and an event posted
//! from inside the runner (an inline completion) is queued instead of recursing.
//!
//! Data that comes with an event (a completion's result) is written before posting; the
//! runner reads it after taking the batch. `post` and `finish` are `AcqRel` read-modify-writes
//! of the same word, so the writes before a post happen-before the runner's reads, and the
//! state the previous runner left happens-before the next runner's work.

use crate::sync::{AtomicU32, Ordering};

/// Set while a runner is processing events.
const RUNNING: u32 = 1 << 31;

/// Event bits usable with a [`Serializer`] (bit 31 is reserved).
pub const EVENT_MASK: u32 = !RUNNING;

/// The serializer (see the module documentation).
#[derive(Debug)]
pub struct Serializer {
    word: AtomicU32,
}

impl Default for Serializer {
    fn default() -> Self {
        Self::new()
    }
}

impl Serializer {
    /// An idle serializer with no pending events.
    #[allow(clippy::missing_const_for_fn)] // loom's atomics have no const constructor
    #[must_use]
    pub fn new() -> Self {
        Self {
            word: AtomicU32::new(0),
        }
    }

    /// Records `events` (bits of [`EVENT_MASK`]). `Some(batch)` iff the caller became the
    /// runner: it must process `batch`, then call [`Serializer::finish`] until that returns
    /// `None`.
    ///
    /// A raw pointer, not `&self`: when the caller does not become the runner, the runner may
    /// process the events, finish and free the object around the serializer while this call is
    /// still returning, and a function's reference arguments must stay valid until it returns.
    /// (The atomic's own `fetch_or` receiver is the only reference across that moment, as in
    /// `Arc`'s drop.)
    ///
    /// # Safety
    /// `this` points to a live serializer, kept alive by the caller until the `fetch_or` below;
    /// unless this returns `Some`, the caller must treat it as freed afterwards.
    #[must_use]
    pub unsafe fn post(this: *const Self, events: u32) -> Option<u32> {
        // SAFETY: live until our event is recorded (caller).
        let word = unsafe { &(*this).word };
        let previous = word.fetch_or((events & EVENT_MASK) | RUNNING, Ordering::AcqRel);
        if previous & RUNNING != 0 {
            return None;
        }
        // We are the runner: the object stays alive at least until we finish.
        Some(word.swap(RUNNING, Ordering::AcqRel) & EVENT_MASK)
    }

    /// The runner is done with its batch: `None` once the run is released (nothing pending,
    /// the caller must not touch the object's state any more), or `Some(next batch)`.
    #[must_use]
    pub fn finish(&self) -> Option<u32> {
        match self
            .word
            .compare_exchange(RUNNING, 0, Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => None,
            // Only the runner clears bits, so the word is RUNNING | (non-empty events) here.
            Err(_) => Some(self.word.swap(RUNNING, Ordering::AcqRel) & EVENT_MASK),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Serializer;

    /// `Serializer::post` on a serializer the test owns (never freed under the call).
    fn post(s: &Serializer, events: u32) -> Option<u32> {
        // SAFETY: `s` outlives the call.
        unsafe { Serializer::post(s, events) }
    }

    #[test]
    fn first_poster_runs_with_its_events() {
        let s = Serializer::new();
        assert_eq!(post(&s, 0b101), Some(0b101));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn events_posted_while_running_are_handed_to_the_runner() {
        let s = Serializer::new();
        assert_eq!(post(&s, 1), Some(1));
        assert_eq!(post(&s, 2), None);
        assert_eq!(post(&s, 4), None);
        assert_eq!(post(&s, 2), None);
        assert_eq!(s.finish(), Some(6));
        assert_eq!(s.finish(), None);
        assert_eq!(post(&s, 8), Some(8), "idle again: the next poster runs");
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn reserved_bit_is_ignored() {
        let s = Serializer::new();
        assert_eq!(post(&s, u32::MAX), Some(super::EVENT_MASK));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn threads_never_run_concurrently_and_lose_no_event() {
        extern crate std;
        use std::{
            sync::{
                Arc,
                atomic::{AtomicBool, AtomicU64, Ordering},
            },
            thread,
            vec::Vec,
        };
        let s = Arc::new(Serializer::new());
        let inside = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..4_u32)
            .map(|t| {
                let (s, inside, seen) = (Arc::clone(&s), Arc::clone(&inside), Arc::clone(&seen));
                thread::spawn(move || {
                    for _ in 0..2000 {
                        let mut batch = post(&s, 1 << t);
                        while let Some(events) = batch {
                            assert!(!inside.swap(true, Ordering::SeqCst), "two runners at once");
                            seen.fetch_add(u64::from(events.count_ones()), Ordering::Relaxed);
                            inside.store(false, Ordering::SeqCst);
                            batch = s.finish();
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().is_ok());
        }
        // Events coalesce, so fewer may be seen than posted, but at least one per thread, and
        // the serializer ends idle.
        assert!(seen.load(Ordering::Relaxed) >= 4);
        assert_eq!(post(&s, 1), Some(1));
        assert_eq!(s.finish(), None);
    }
}
