//! loom models of the three primitives alone (docs/testing.md, "The models"): the real
//! `Rundown`, `Serializer` and `Slots`, with the test playing the binding or socket that uses
//! them. Small enough to explore every interleaving (no preemption bound).
#![cfg(loom)]
// loom runs a model's threads one at a time on one OS thread, and its `thread::spawn` does not
// require `Send`: sharing loom cells through `Arc` is how loom models are written.
#![allow(clippy::arc_with_non_send_sync)]

#[allow(dead_code)] // Each model file uses part of the shared support.
mod loom_common;

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use loom::{cell::UnsafeCell, thread};
use loom_common::{Outcomes, check_exhaustive, violated};
use wsk_primitives::{
    platform::PoolTag,
    rundown::{Acquisition, Rundown},
    serializer::Serializer,
    slots::Slots,
    testing::TestPlatform,
};

/// `Slots::release` of slot 0 in a registry the model keeps alive (an `Arc`) for the whole
/// execution: the raw-pointer contract holds trivially.
fn release<T>(slots: &Slots<T>) -> bool {
    // SAFETY: `slots` outlives the call.
    unsafe { Slots::release(slots, 0) }
}

/// A binding's rundown as the model sees it: calls into the provider made under references,
/// and the detach completion, with the contract checks of the full models.
struct Binding {
    rundown: Rundown,
    /// Calls executing now (test bookkeeping, invisible to loom).
    executing: AtomicUsize,
    /// Detach completions so far.
    completions: AtomicUsize,
    /// Read by every call when it returns, written by the detach completion.
    calls_returned: UnsafeCell<()>,
    /// A scheduling point inside every call (Relaxed: adds no happens-before edge).
    schedule: loom::sync::atomic::AtomicUsize,
}

impl Binding {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            rundown: Rundown::new(),
            executing: AtomicUsize::new(0),
            completions: AtomicUsize::new(0),
            calls_returned: UnsafeCell::new(()),
            schedule: loom::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// A call into the provider, as the core makes one: under a reference from `try_acquire`,
    /// released after the call returned. Unlike the core's callers, the caller holds no
    /// reference of its own, so a refused attempt may be the one that drains the rundown (it
    /// then completes the detach), and an attempt may come after the drain.
    fn call(&self, facts: &Facts) -> Acquisition {
        // Real-time order (loom runs one thread at a time): the drain was already complete.
        let late = self.completions.load(Ordering::SeqCst) > 0;
        if late {
            facts.add("attempt made after the detach completed");
        }
        let attempt = self.rundown.try_acquire();
        match attempt {
            Acquisition::Acquired => {
                facts.add("call admitted");
                if late || self.completions.load(Ordering::SeqCst) > 0 {
                    violated(format_args!(
                        "a call was admitted after the detach completed"
                    ));
                }
                self.executing.fetch_add(1, Ordering::SeqCst);
                self.schedule
                    .fetch_add(1, loom::sync::atomic::Ordering::Relaxed);
                self.executing.fetch_sub(1, Ordering::SeqCst);
                self.calls_returned.with(|_| ());
                // SAFETY: the reference this call took; the model never frees the rundown.
                if unsafe { Rundown::release(&raw const self.rundown) } {
                    facts.add("drain owned by a call's release");
                    self.complete_detach();
                }
            }
            Acquisition::Refused => facts.add("call refused"),
            Acquisition::RefusedDrained => {
                facts.add("drain owned by a refused attempt");
                if late {
                    violated(format_args!(
                        "an attempt after the detach completed drained the rundown again"
                    ));
                }
                self.complete_detach();
            }
        }
        attempt
    }

    /// Drops a reference the model holds (the attachment's, or a socket's).
    fn release(&self, facts: &Facts, whose: &'static str) {
        // SAFETY: a reference the model holds; the model never frees the rundown.
        if unsafe { Rundown::release(&raw const self.rundown) } {
            facts.add(whose);
            self.complete_detach();
        }
    }

    /// `ClientDetachProvider`: start closing, drop the attachment's reference.
    fn detach(&self, facts: &Facts) {
        if !self.rundown.begin_close() {
            violated(format_args!("closing had already begun"));
        }
        self.release(facts, "drain owned by the detach's release");
    }

    fn complete_detach(&self) {
        if self.completions.fetch_add(1, Ordering::SeqCst) > 0 {
            violated(format_args!("detach completed twice"));
        }
        if self.executing.load(Ordering::SeqCst) > 0 {
            violated(format_args!("detach completed while a call is executing"));
        }
        self.calls_returned.with_mut(|_| ());
    }

    fn assert_completed_once(&self) {
        let completions = self.completions.load(Ordering::SeqCst);
        if completions != 1 {
            violated(format_args!("detach completed {completions} times"));
        }
    }
}

/// What one execution of a rundown model saw (test bookkeeping, invisible to loom).
#[derive(Clone, Default)]
struct Facts(Arc<Mutex<Vec<&'static str>>>);

impl Facts {
    fn add(&self, fact: &'static str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(fact);
    }

    fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Runs a rundown model exhaustively; fails unless every `expected` fact was seen in some
/// execution (a model that never reached its race would pass vacuously).
fn check_rundown(expected: &[&'static str], model: impl Fn(&Facts) + Sync + Send + 'static) {
    let outcomes = Outcomes::default();
    let seen = outcomes.clone();
    check_exhaustive(move || {
        let facts = Facts::default();
        model(&facts);
        seen.record(facts.take());
    });
    outcomes.assert_seen(expected);
}

/// The ways a caller without a reference can race the drain, each of which the models with a
/// caller must reach.
const ATTEMPT_RACES: [&str; 5] = [
    "call admitted",
    "call refused",
    "drain owned by a refused attempt",
    "drain owned by the detach's release",
    "attempt made after the detach completed",
];

/// Model 1 on the rundown alone: `calls` callers (holding no reference) race the detach; it
/// completes exactly once, after every admitted call returned, whoever owns the drain: the
/// detach's release, an admitted call's release, or a refused attempt taking its reference
/// back. Attempts made after the drain are refused and never drain again.
fn rundown_detach_with_calls(calls: usize, expected: &[&'static str]) {
    check_rundown(expected, move |facts| {
        let binding = Binding::new();
        let callers: Vec<_> = (0..calls)
            .map(|_| {
                let binding = Arc::clone(&binding);
                let facts = facts.clone();
                thread::spawn(move || binding.call(&facts))
            })
            .collect();
        binding.detach(facts);
        for caller in callers {
            let _: Acquisition = caller
                .join()
                .unwrap_or_else(|_| violated(format_args!("caller panicked")));
        }
        binding.assert_completed_once();
    });
}

#[test]
fn rundown_detach_with_no_call_in_flight() {
    rundown_detach_with_calls(0, &["drain owned by the detach's release"]);
}

#[test]
fn rundown_detach_with_one_call_in_flight() {
    rundown_detach_with_calls(
        1,
        &[&ATTEMPT_RACES[..], &["drain owned by a call's release"]].concat(),
    );
}

#[test]
fn rundown_detach_with_two_calls_in_flight() {
    rundown_detach_with_calls(
        2,
        &[&ATTEMPT_RACES[..], &["drain owned by a call's release"]].concat(),
    );
}

/// Model 2 on the rundown alone: a socket holds a reference (released when its close
/// completes, on another thread) while a new call races the start of the detach. Either the
/// call is admitted and the detach waits for it, or it is refused (and, if its attempt was the
/// last reference out, completes the detach itself); never admitted after the detach completed.
#[test]
fn rundown_call_racing_detach_start() {
    check_rundown(
        &[
            &ATTEMPT_RACES[..],
            &[
                "drain owned by a call's release",
                "drain owned by the socket's release",
            ],
        ]
        .concat(),
        |facts| {
            let binding = Binding::new();
            // The socket's reference, taken while the binding's own is held.
            binding.rundown.acquire_held();
            let socket_closed = {
                let binding = Arc::clone(&binding);
                let facts = facts.clone();
                thread::spawn(move || {
                    binding.release(&facts, "drain owned by the socket's release");
                })
            };
            let caller = {
                let binding = Arc::clone(&binding);
                let facts = facts.clone();
                thread::spawn(move || binding.call(&facts))
            };
            binding.detach(facts);
            socket_closed
                .join()
                .unwrap_or_else(|_| violated(format_args!("close panicked")));
            let attempt = caller
                .join()
                .unwrap_or_else(|_| violated(format_args!("caller panicked")));
            binding.assert_completed_once();
            if attempt != Acquisition::Acquired && !binding.rundown.is_closing() {
                violated(format_args!(
                    "a call was refused although closing never began"
                ));
            }
        },
    );
}

/// Refused attempts racing the last release and each other: closing has begun, the detach's
/// release drops the last real reference while two callers without a reference try to take
/// one. Both are refused; the drain is owned exactly once, by the release or by whichever
/// attempt's undo empties the count (an attempt's reference may be in the word when the
/// release runs, and an attempt may add and take back its reference between the release
/// emptying the count and its claim of the drain); attempts after the drain never own it.
#[test]
fn rundown_refused_attempts_race_the_last_release() {
    check_rundown(
        &[
            "call refused",
            "drain owned by a refused attempt",
            "drain owned by the detach's release",
            "attempt made after the detach completed",
        ],
        |facts| {
            let binding = Binding::new();
            if !binding.rundown.begin_close() {
                violated(format_args!("closing had already begun"));
            }
            let callers: Vec<_> = (0..2)
                .map(|_| {
                    let binding = Arc::clone(&binding);
                    let facts = facts.clone();
                    thread::spawn(move || binding.call(&facts))
                })
                .collect();
            binding.release(facts, "drain owned by the detach's release");
            for caller in callers {
                let attempt = caller
                    .join()
                    .unwrap_or_else(|_| violated(format_args!("caller panicked")));
                if attempt == Acquisition::Acquired {
                    violated(format_args!("a call was admitted after closing began"));
                }
            }
            binding.assert_completed_once();
            if binding.rundown.references() != 0 || !binding.rundown.is_drained() {
                violated(format_args!("a refused attempt was not taken back"));
            }
        },
    );
}

/// The serializer: three posters, each writing its event's data before posting. Exactly one
/// runner at a time, every event processed exactly once, each runner sees the data of the
/// events it processes and the state the previous runner left.
#[test]
fn serializer_runs_one_runner_at_a_time_and_loses_no_event() {
    check_exhaustive(|| {
        struct Object {
            serializer: Serializer,
            /// The state machine's state: events processed so far (a bit set).
            state: UnsafeCell<u32>,
            /// Each event's data (written by its poster before posting).
            data: [UnsafeCell<u32>; 3],
            running: AtomicBool,
        }
        let object = Arc::new(Object {
            serializer: Serializer::new(),
            state: UnsafeCell::new(0),
            data: [UnsafeCell::new(0), UnsafeCell::new(0), UnsafeCell::new(0)],
            running: AtomicBool::new(false),
        });
        let posters: Vec<_> = (0..3_u32)
            .map(|event| {
                let object = Arc::clone(&object);
                thread::spawn(move || {
                    let bit = 1 << event;
                    // SAFETY: only this thread writes this event's data, before posting it.
                    object.data[event as usize].with_mut(|d| unsafe { *d = event + 10 });
                    // SAFETY: the model's object outlives every thread (Arc).
                    let mut batch = unsafe { Serializer::post(&raw const object.serializer, bit) };
                    while let Some(events) = batch {
                        if object.running.swap(true, Ordering::SeqCst) {
                            violated(format_args!("two runners at once"));
                        }
                        for e in (0..3_u32).filter(|e| events & (1 << e) != 0) {
                            // SAFETY: the event was posted after its data was written.
                            let d = object.data[e as usize].with(|d| unsafe { *d });
                            if d != e + 10 {
                                violated(format_args!("runner read stale data for event {e}"));
                            }
                        }
                        object.state.with_mut(|s| {
                            // SAFETY: only the runner touches the state.
                            let state = unsafe { &mut *s };
                            if *state & events != 0 {
                                violated(format_args!("an event was processed twice"));
                            }
                            *state |= events;
                        });
                        object.running.store(false, Ordering::SeqCst);
                        batch = object.serializer.finish();
                    }
                })
            })
            .collect();
        for poster in posters {
            poster
                .join()
                .unwrap_or_else(|_| violated(format_args!("poster panicked")));
        }
        // SAFETY: every thread has finished.
        let processed = object.state.with(|s| unsafe { *s });
        if processed != 0b111 {
            violated(format_args!(
                "events lost: processed {processed:#b} of 0b111"
            ));
        }
    });
}

/// The slot registry: the detach scan pins an occupant while its last reference is dropped on
/// another thread, and a new occupant may take the slot right after. The scan never reads an
/// occupant after it was freed, and every occupant is freed exactly once.
#[test]
fn slots_pin_races_the_last_release() {
    check_exhaustive(|| {
        struct Occupant {
            /// Written when freed: a pinned read must happen before.
            body: UnsafeCell<u32>,
            freed: AtomicBool,
        }
        let platform = TestPlatform::default();
        let slots: Arc<Slots<Occupant>> = Arc::new(
            Slots::new(&platform, PoolTag::from_chars(*b"Test"), 1)
                .unwrap_or_else(|| violated(format_args!("slot array allocation failed"))),
        );
        let occupants: Arc<Mutex<Vec<Arc<Occupant>>>> = Arc::default();
        let place = |slots: &Slots<Occupant>, occupants: &Mutex<Vec<Arc<Occupant>>>| {
            let occupant = Arc::new(Occupant {
                body: UnsafeCell::new(7),
                freed: AtomicBool::new(false),
            });
            let ptr = std::ptr::NonNull::from(&*occupant);
            occupants
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(occupant);
            slots.publish(0, ptr, 1);
        };
        let free = |slots: &Slots<Occupant>, occupant: std::ptr::NonNull<Occupant>| {
            // SAFETY: the occupants outlive the model (kept in `occupants`).
            let occupant = unsafe { occupant.as_ref() };
            if occupant.freed.swap(true, Ordering::SeqCst) {
                violated(format_args!("occupant freed twice"));
            }
            occupant.body.with_mut(|_| ());
            slots.vacate(0);
        };
        if !slots.reserve_at(0) {
            violated(format_args!("a free slot could not be reserved"));
        }
        place(&slots, &occupants);
        let first = slots
            .try_pin(0)
            .unwrap_or_else(|| violated(format_args!("pin of a live occupant failed")));
        if release(&slots) {
            violated(format_args!("a pin's release was taken for the last one"));
        }

        // The occupant's own last reference, dropped on another thread; then a new occupant.
        let owner = {
            let slots = Arc::clone(&slots);
            let occupants = Arc::clone(&occupants);
            let first = SendPtr(first);
            thread::spawn(move || {
                let first = first;
                if release(&slots) {
                    free(&slots, first.0);
                    if slots.reserve_at(0) {
                        place(&slots, &occupants);
                    }
                }
            })
        };
        // The detach scan.
        if let Some(pinned) = slots.try_pin(0) {
            // SAFETY: as above.
            let occupant = unsafe { pinned.as_ref() };
            if occupant.freed.load(Ordering::SeqCst) {
                violated(format_args!("pinned an occupant that was already freed"));
            }
            occupant.body.with(|_| ());
            if release(&slots) {
                free(&slots, pinned);
            }
        }
        owner
            .join()
            .unwrap_or_else(|_| violated(format_args!("owner panicked")));
        // Empty the slot of a second occupant, if one moved in, then free the array.
        if let Some(second) = slots.try_pin(0) {
            if release(&slots) || !release(&slots) {
                violated(format_args!(
                    "reference count of the second occupant is wrong"
                ));
            }
            free(&slots, second);
        }
        let occupants = occupants.lock().unwrap_or_else(PoisonError::into_inner);
        if !occupants.iter().all(|o| o.freed.load(Ordering::SeqCst)) {
            violated(format_args!("an occupant was never freed"));
        }
        drop(occupants);
        match Arc::try_unwrap(slots) {
            // SAFETY: no slot is used any more.
            Ok(slots) => unsafe { slots.free(&platform) },
            Err(_) => violated(format_args!("slots still shared")),
        }
        platform.assert_clean();
    });
}

/// A pointer moved into a model thread.
struct SendPtr<T>(std::ptr::NonNull<T>);

// SAFETY: the pointee is shared through `Arc`s that outlive every model thread, and is only
// accessed through atomics and loom cells.
unsafe impl<T> Send for SendPtr<T> {}
