//! An accounting [`Platform`] for tests (feature `testing`), and in [`sync`] the threads, locks
//! and events test doubles use (loom's under `--cfg loom`).
//!
//! [`TestPlatform`] accounts for every allocation, injects failures, catches double frees and
//! tag mismatches, and records log lines. Freed blocks are filled with [`FREED`] and kept
//! (quarantined) until the last clone of the platform is dropped, so a use after free reads
//! poison instead of a reused block (under loom: a poisoned atomic handle, which loom trips on),
//! and no later block can take a freed block's address. Its bookkeeping is a `std` mutex,
//! invisible to loom: it adds no scheduling points and no happens-before edges, so it cannot
//! hide an ordering bug.
#![allow(clippy::missing_panics_doc, clippy::significant_drop_tightening)] // test code

extern crate std;

use ::core::{fmt, ptr::NonNull};
use std::{
    alloc::{self, Layout},
    collections::HashMap,
    format,
    string::String,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    vec::Vec,
};

use crate::platform::{Level, Platform, PoolTag};

pub mod sync;

/// The byte freed blocks are filled with.
pub const FREED: u8 = 0xDD;

#[derive(Debug, Default)]
struct PoolState {
    live: HashMap<usize, (Layout, PoolTag)>,
    /// Freed blocks, poisoned, deallocated only when the state goes.
    quarantine: Vec<(usize, Layout)>,
    allocations: usize,
    /// Fail the allocation when `allocations` reaches this value (0-based count of attempts).
    fail_at: Option<usize>,
    /// Fail every allocation with this tag.
    fail_tag: Option<PoolTag>,
    attempts: usize,
    errors: Vec<String>,
    logs: Vec<(Level, String)>,
}

/// An accounting [`Platform`]: counts allocations, injects failures, catches double frees and
/// tag mismatches, records log lines.
///
/// Clones share one pool: a test keeps a clone to check it after the client that owns the
/// other is gone.
#[derive(Clone, Debug, Default)]
pub struct TestPlatform {
    state: Arc<Mutex<PoolState>>,
}

impl TestPlatform {
    fn state(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the allocation attempt number `n` (0-based, counting from now) fail.
    pub fn fail_allocation_after(&self, n: usize) {
        let mut s = self.state();
        s.fail_at = Some(s.attempts + n);
    }

    /// Makes every allocation with `tag` fail (`None`: stop).
    pub fn fail_tag(&self, tag: Option<PoolTag>) {
        self.state().fail_tag = tag;
    }

    /// Successful allocations so far.
    #[must_use]
    pub fn allocations(&self) -> usize {
        self.state().allocations
    }

    /// Blocks currently allocated.
    #[must_use]
    pub fn live_blocks(&self) -> usize {
        self.state().live.len()
    }

    /// Blocks currently allocated with `tag`.
    #[must_use]
    pub fn live_with_tag(&self, tag: PoolTag) -> usize {
        self.state()
            .live
            .values()
            .filter(|(_, t)| *t == tag)
            .count()
    }

    /// Log lines so far.
    #[must_use]
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.state().logs.clone()
    }

    /// Whether a line at `level` contains `text`.
    #[must_use]
    pub fn logged(&self, level: Level, text: &str) -> bool {
        self.state()
            .logs
            .iter()
            .any(|(l, line)| *l == level && line.contains(text))
    }

    /// Panics (tests only) on double frees, tag mismatches or leaks.
    pub fn assert_clean(&self) {
        let s = self.state();
        assert!(s.errors.is_empty(), "pool errors: {:?}", s.errors);
        assert!(
            s.live.is_empty(),
            "leaked blocks: {:?}",
            s.live.values().collect::<Vec<_>>()
        );
    }
}

impl Drop for PoolState {
    fn drop(&mut self) {
        let live = self.live.drain().map(|(addr, (layout, _))| (addr, layout));
        for (addr, layout) in live.chain(self.quarantine.drain(..)) {
            // SAFETY: allocated in `allocate` with this layout, deallocated only here, once.
            unsafe { alloc::dealloc(addr as *mut u8, layout) };
        }
    }
}

// `#[inline(never)]`: a profile of the code under test (the bench's callgrind runs) must tell
// the platform's instructions from that code's.
impl Platform for TestPlatform {
    #[inline(never)]
    fn allocate(&self, size: usize, tag: PoolTag) -> Option<NonNull<u8>> {
        let mut s = self.state();
        let attempt = s.attempts;
        s.attempts += 1;
        if s.fail_at == Some(attempt) || s.fail_tag == Some(tag) {
            return None;
        }
        let layout = Layout::from_size_align(size.max(1), 16).ok()?;
        // SAFETY: the layout's size is at least 1.
        let ptr = NonNull::new(unsafe { alloc::alloc(layout) })?;
        // Poison so that reads of uninitialized memory are visible in failures.
        // SAFETY: fresh allocation of `size` bytes.
        unsafe { ptr.as_ptr().write_bytes(0xCD, size) };
        s.live.insert(ptr.as_ptr() as usize, (layout, tag));
        s.allocations += 1;
        Some(ptr)
    }

    #[inline(never)]
    unsafe fn free(&self, ptr: NonNull<u8>, tag: PoolTag) {
        let mut s = self.state();
        match s.live.remove(&(ptr.as_ptr() as usize)) {
            None => s
                .errors
                .push(format!("free of unknown or freed block {ptr:p} ({tag:?})")),
            Some((layout, allocated_tag)) => {
                if allocated_tag != tag {
                    s.errors.push(format!(
                        "freed with tag {tag:?}, allocated with {allocated_tag:?}"
                    ));
                }
                // SAFETY: the block is live (just removed from `live`), `layout.size()` bytes,
                // and the caller does not use it again: poisoning makes a use after free visible.
                unsafe { ptr.as_ptr().write_bytes(FREED, layout.size()) };
                s.quarantine.push((ptr.as_ptr() as usize, layout));
            }
        }
    }

    #[inline(never)]
    fn log(&self, level: Level, args: fmt::Arguments<'_>) {
        let line = format!("{args}");
        self.state().logs.push((level, line));
    }
}
