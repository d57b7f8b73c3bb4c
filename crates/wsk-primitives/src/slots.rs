//! A fixed registry of objects: an array of slots with per-slot reference counts.
//!
//! Each slot has a word and an occupant pointer. The word is `0` (free), [`RESERVED`] (being
//! filled, or being emptied), or the occupant's reference count. Lifecycle of a slot:
//!
//! ```text
//! 0 ──reserve──▶ RESERVED ──publish(ptr, n)──▶ n ⇄ n±1 ──release of the last──▶ RESERVED
//!   ◀──────────────────────────────vacate (after freeing the occupant)──────────────┘
//! ```
//!
//! [`Slots::try_pin`] takes a reference with a compare-and-swap `n → n+1` only while `n` is a
//! count, so a scan never touches an occupant that is being freed: it only reads the slot
//! array, which outlives every occupant. After a successful pin it reads the occupant pointer;
//! if the slot was emptied and refilled in between (ABA), the pin belongs to the new occupant,
//! which is the one it reads.
//!
//! Orderings: `publish` writes the pointer then the count with `Release`; every later change
//! of the word is a read-modify-write, so a pin (`Acquire`) sees the pointer and the occupant's
//! initialization. Releases are `AcqRel`, so the last one out sees every holder's writes.
//! `vacate` is `Release` and `reserve` `Acquire`: the next occupant starts after the previous
//! one was freed.
//!
//! Each slot also carries a *label*, a 64-bit key its holder may set while it holds the slot
//! (0 = none; `vacate` clears it), and [`Slots::label_and_count`] counts the slots holding a
//! label. `wsk-client`'s socket registry labels each connection with its peer address, which is
//! how its `MaxConnectionsPerAddress` is enforced without a table of its own. Setting and counting
//! are `SeqCst`: all `SeqCst` operations fall in one total order, so of two holders that
//! label and count at once, at least one counts the other (the store-then-load pattern of
//! Dekker's algorithm): a count never misses a concurrent equal label, though it may include
//! one about to be withdrawn. Labels are `core`'s atomics even under loom, which treats
//! `SeqCst` as `AcqRel` and so cannot check this argument (it would report an execution the
//! memory model rules out); they order nothing else.

use ::core::{ptr::NonNull, sync::atomic::Ordering::SeqCst};

use crate::{
    platform::{Platform, PoolTag},
    pool::PoolSlice,
    sync::{AtomicPtr, AtomicUsize, Ordering},
};

/// Word of a slot being filled or emptied.
pub const RESERVED: usize = usize::MAX;

/// One slot.
#[derive(Debug)]
pub struct Slot<T> {
    word: AtomicUsize,
    occupant: AtomicPtr<T>,
    label: ::core::sync::atomic::AtomicU64,
}

impl<T> Slot<T> {
    #[allow(clippy::missing_const_for_fn)] // loom's atomics have no const constructor
    fn new() -> Self {
        Self {
            word: AtomicUsize::new(0),
            occupant: AtomicPtr::new(::core::ptr::null_mut()),
            label: ::core::sync::atomic::AtomicU64::new(0),
        }
    }
}

/// The registry (see the module documentation).
#[derive(Debug)]
pub struct Slots<T> {
    slots: PoolSlice<Slot<T>>,
    hint: AtomicUsize,
}

impl<T> Slots<T> {
    /// `len` free slots in platform memory tagged `tag`; `None` if the allocation fails.
    pub fn new<Pl: Platform + ?Sized>(platform: &Pl, tag: PoolTag, len: usize) -> Option<Self> {
        let slots = PoolSlice::try_new_with(platform, tag, len, |_| Slot::new())?;
        Some(Self {
            slots,
            hint: AtomicUsize::new(0),
        })
    }

    /// Frees the array.
    ///
    /// # Safety
    /// `platform` allocated it; no slot is used any more.
    pub unsafe fn free<Pl: Platform + ?Sized>(self, platform: &Pl) {
        // SAFETY: forwarded.
        unsafe { self.slots.free(platform) };
    }

    /// Number of slots.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.slots.as_slice().len()
    }

    /// Whether there are no slots at all.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slot(&self, index: usize) -> Option<&Slot<T>> {
        self.slots.as_slice().get(index)
    }

    /// Reserves slot `index` if it is free.
    #[must_use]
    pub fn reserve_at(&self, index: usize) -> bool {
        self.slot(index).is_some_and(|slot| {
            slot.word
                .compare_exchange(0, RESERVED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        })
    }

    /// Reserves a free slot in `range` (clamped to the array), starting the search at a
    /// rotating hint so that freed slots are not all reused first. `None` if all are taken.
    #[must_use]
    pub fn reserve_in(&self, range: ::core::ops::Range<usize>) -> Option<usize> {
        let end = range.end.min(self.len());
        let count = end.checked_sub(range.start).filter(|&c| c > 0)?;
        let start = self.hint.load(Ordering::Relaxed) % count;
        for step in 0..count {
            let offset = start.checked_add(step)? % count;
            let index = range.start.checked_add(offset)?;
            if self.reserve_at(index) {
                self.hint.store(offset.wrapping_add(1), Ordering::Relaxed);
                return Some(index);
            }
        }
        None
    }

    /// Fills reserved slot `index` with `occupant` holding `refs` references (`>= 1`).
    pub fn publish(&self, index: usize, occupant: NonNull<T>, refs: usize) {
        if let Some(slot) = self.slot(index) {
            slot.occupant.store(occupant.as_ptr(), Ordering::Relaxed);
            slot.word
                .store(refs.clamp(1, RESERVED - 1), Ordering::Release);
        }
    }

    /// Frees slot `index`, which is [`RESERVED`]: after a reservation that was not published,
    /// or after [`Slots::release`] returned `true` and the occupant was freed.
    pub fn vacate(&self, index: usize) {
        if let Some(slot) = self.slot(index) {
            slot.label.store(0, SeqCst);
            slot.occupant
                .store(::core::ptr::null_mut(), Ordering::Relaxed);
            slot.word.store(0, Ordering::Release);
        }
    }

    /// Takes a reference on the occupant of slot `index`, if there is one, and returns it.
    /// The caller must [`Slots::release`] it.
    #[must_use]
    pub fn try_pin(&self, index: usize) -> Option<NonNull<T>> {
        let slot = self.slot(index)?;
        let mut word = slot.word.load(Ordering::Relaxed);
        loop {
            if word == 0 || word >= RESERVED - 1 {
                return None;
            }
            match slot.word.compare_exchange_weak(
                word,
                word + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(current) => word = current,
            }
        }
        // The pin's Acquire read the value `publish` wrote or a later RMW of it: the pointer
        // stored before that is visible.
        NonNull::new(slot.occupant.load(Ordering::Relaxed))
    }

    /// Takes one more reference on the occupant of slot `index` (the caller holds one).
    pub fn add_ref(&self, index: usize) {
        if let Some(slot) = self.slot(index) {
            slot.word.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops a reference on the occupant of slot `index`. `true` iff it was the last: the slot
    /// is now [`RESERVED`], and the caller must free the occupant, then [`Slots::vacate`].
    ///
    /// A raw pointer, not `&self`: when this is not the last reference, another holder may
    /// free the occupant and, through it, the block the registry lives in while this call is
    /// still returning (see [`Rundown::release`](crate::rundown::Rundown::release)).
    ///
    /// # Safety
    /// `this` points to a live registry in which the caller holds a reference on slot
    /// `index`'s occupant; unless this returns `true`, the caller must treat the registry as
    /// freed afterwards.
    #[must_use]
    pub unsafe fn release(this: *const Self, index: usize) -> bool {
        // SAFETY: live while the caller's reference is held, which the exchange below drops.
        let slots = unsafe { &*this };
        let Some(slot) = slots.slot(index) else {
            return false;
        };
        let mut word = slot.word.load(Ordering::Relaxed);
        loop {
            let next = match word {
                0 | RESERVED => return false, // not held: a caller bug, ignored rather than corrupting
                1 => RESERVED,
                n => n - 1,
            };
            match slot
                .word
                .compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return next == RESERVED,
                Err(current) => word = current,
            }
        }
    }

    /// Labels slot `index`, which the caller holds (reserved or published), with `label`
    /// (non-zero), then counts the slots in `range` (clamped to the array) that carry `label`,
    /// this one included, stopping at `at_most` (so a caller over its limit stops early). A
    /// label stays until the slot is vacated. See the module documentation for what a
    /// concurrent count sees.
    #[must_use]
    pub fn label_and_count(
        &self,
        index: usize,
        label: u64,
        range: ::core::ops::Range<usize>,
        at_most: usize,
    ) -> usize {
        if let Some(slot) = self.slot(index) {
            slot.label.store(label, SeqCst);
        }
        let end = range.end.min(self.len());
        self.slots
            .as_slice()
            .get(range.start.min(end)..end)
            .unwrap_or_default()
            .iter()
            .filter(|slot| slot.label.load(SeqCst) == label)
            .take(at_most)
            .count()
    }

    /// The current word of slot `index` (diagnostics and tests only).
    #[must_use]
    pub fn word(&self, index: usize) -> Option<usize> {
        self.slot(index)
            .map(|slot| slot.word.load(Ordering::Relaxed))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    /// `Slots::release` on a registry the test owns (never freed under the call).
    fn release<T>(slots: &super::Slots<T>, index: usize) -> bool {
        // SAFETY: `slots` outlives the call.
        unsafe { super::Slots::release(slots, index) }
    }

    use ::core::ptr::NonNull;

    use super::{RESERVED, Slots};
    use crate::{platform::PoolTag, testing::TestPlatform};

    const TAG: PoolTag = PoolTag::from_chars(*b"Test");

    fn occupant(value: &mut u32) -> NonNull<u32> {
        NonNull::from(value)
    }

    #[test]
    fn reserve_publish_pin_release_vacate() {
        let platform = TestPlatform::default();
        let slots = Slots::<u32>::new(&platform, TAG, 3).expect("allocation");
        let mut a = 1;
        assert_eq!(slots.try_pin(0), None, "free slot cannot be pinned");
        let i = slots.reserve_in(0..3).expect("free slot");
        assert_eq!(slots.word(i), Some(RESERVED));
        assert_eq!(slots.try_pin(i), None, "reserved slot cannot be pinned");
        slots.publish(i, occupant(&mut a), 1);
        assert_eq!(slots.try_pin(i), Some(occupant(&mut a)));
        assert_eq!(slots.word(i), Some(2));
        assert!(!release(&slots, i));
        assert!(release(&slots, i), "last reference");
        assert_eq!(
            slots.word(i),
            Some(RESERVED),
            "stays reserved until vacated"
        );
        assert!(!slots.reserve_at(i));
        assert_eq!(
            slots.try_pin(i),
            None,
            "an occupant being freed cannot be pinned"
        );
        slots.vacate(i);
        assert_eq!(slots.word(i), Some(0));
        assert!(!release(&slots, i), "release of a free slot is ignored");
        assert_eq!(slots.word(i), Some(0));
        // SAFETY: nothing uses the slots any more.
        unsafe { slots.free(&platform) };
        platform.assert_clean();
    }

    #[test]
    fn labels_are_counted_in_the_range_until_vacated() {
        let platform = TestPlatform::default();
        let slots = Slots::<u32>::new(&platform, TAG, 5).expect("allocation");
        let mut held = [0; 4];
        for (i, slot) in held.iter_mut().enumerate() {
            *slot = slots.reserve_in(1..5).expect("free slot");
            let label = if i < 3 { 7 } else { 9 };
            assert_eq!(
                slots.label_and_count(*slot, label, 1..5, usize::MAX),
                if i < 3 { i + 1 } else { 1 },
                "each label counts the slots carrying it, this one included"
            );
        }
        assert!(slots.reserve_at(0));
        assert_eq!(
            slots.label_and_count(0, 7, 0..1, usize::MAX),
            1,
            "outside 1..5: counted alone"
        );
        assert_eq!(
            slots.label_and_count(0, 7, 1..99, usize::MAX),
            3,
            "range clamped; slot 0 outside it"
        );
        slots.vacate(held[0]);
        let fresh = slots.reserve_in(1..5).expect("the vacated slot");
        assert_eq!(fresh, held[0]);
        assert_eq!(
            slots.label_and_count(fresh, 9, 1..5, usize::MAX),
            2,
            "vacate cleared its 7"
        );
        assert_eq!(
            slots.label_and_count(fresh, 7, 1..5, 1),
            1,
            "the count stops at at_most (two 7s are there)"
        );
        // SAFETY: nothing uses the slots any more.
        unsafe { slots.free(&platform) };
        platform.assert_clean();
    }

    #[test]
    fn reserve_in_fills_the_range_then_fails_and_rotates() {
        let platform = TestPlatform::default();
        let slots = Slots::<u32>::new(&platform, TAG, 5).expect("allocation");
        assert!(slots.reserve_at(0), "listener slot");
        let mut got = [
            slots.reserve_in(1..5),
            slots.reserve_in(1..5),
            slots.reserve_in(1..5),
            slots.reserve_in(1..5),
        ];
        got.sort_unstable();
        assert_eq!(got, [Some(1), Some(2), Some(3), Some(4)]);
        assert_eq!(slots.reserve_in(1..5), None);
        assert_eq!(slots.reserve_in(1..99), None, "range clamped to the array");
        assert_eq!(slots.reserve_in(3..3), None);
        slots.vacate(2);
        assert_eq!(slots.reserve_in(1..5), Some(2));
        assert!(!slots.reserve_at(7), "out of range");
        // SAFETY: nothing uses the slots any more.
        unsafe { slots.free(&platform) };
        platform.assert_clean();
    }

    #[test]
    fn allocation_failure_is_reported() {
        let platform = TestPlatform::default();
        platform.fail_allocation_after(0);
        assert!(Slots::<u32>::new(&platform, TAG, 4).is_none());
        platform.assert_clean();
    }

    #[test]
    #[allow(clippy::needless_collect)] // spawn every thread before the owner releases
    fn concurrent_pins_and_releases_free_exactly_once() {
        extern crate std;
        use std::{sync::Arc, thread, vec::Vec};
        let platform = TestPlatform::default();
        let slots = Arc::new(Slots::<u32>::new(&platform, TAG, 1).expect("allocation"));
        for _ in 0..200 {
            let mut value = 5;
            assert!(slots.reserve_at(0));
            slots.publish(0, occupant(&mut value), 1);
            let ptr_addr = occupant(&mut value).as_ptr() as usize;
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    let slots = Arc::clone(&slots);
                    thread::spawn(move || {
                        let mut last = 0;
                        for _ in 0..100 {
                            if let Some(p) = slots.try_pin(0) {
                                assert_eq!(p.as_ptr() as usize, ptr_addr);
                                if release(&slots, 0) {
                                    last += 1;
                                }
                            }
                        }
                        last
                    })
                })
                .collect();
            let mut last = usize::from(release(&slots, 0));
            last += handles
                .into_iter()
                .map(|h| h.join().unwrap_or(99))
                .sum::<usize>();
            assert_eq!(last, 1, "exactly one last release");
            slots.vacate(0);
        }
        let slots = Arc::into_inner(slots).expect("sole owner");
        // SAFETY: nothing uses the slots any more.
        unsafe { slots.free(&platform) };
        platform.assert_clean();
    }
}
