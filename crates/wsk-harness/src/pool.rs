//! The harness's [`Platform`]: an accounting pool allocator with fault injection, and logging.
//!
//! Every allocation is recorded with its tag, size and allocation site, so memory still
//! outstanding at unload is reported the way Driver Verifier's pool tracking would: per tag,
//! with where it came from: the caller location, which `#[track_caller]` carries through the
//! core's pool functions to the core line that asked. The Nth allocation from a chosen point
//! on can be made to fail, as `ExAllocatePool2` fails under low memory.

use std::{
    alloc::{self, Layout},
    collections::{BTreeMap, HashMap, VecDeque},
    fmt,
    panic::Location,
    ptr::NonNull,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
};

use wsk_primitives::platform::{Level, Platform, PoolTag};

use crate::contract::Contract;

/// Pool blocks are aligned like `ExAllocatePool2` blocks on x64.
const POOL_ALIGNMENT: usize = 16;
/// How many recent log lines of level `Warning` or worse are kept for tests to inspect.
const KEPT_LOG_LINES: usize = 256;

/// One live allocation.
#[derive(Clone, Debug)]
struct Allocation {
    size: usize,
    tag: PoolTag,
    /// The core line that asked for the memory (the core's pool functions are
    /// `#[track_caller]` on host builds).
    site: &'static Location<'static>,
}

/// Memory still allocated, grouped by tag and allocation site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outstanding {
    /// The pool tag, as `!poolused` shows it.
    pub tag: String,
    /// Where the allocation was made (`file:line:column`).
    pub site: String,
    /// Number of blocks.
    pub blocks: usize,
    /// Total bytes.
    pub bytes: usize,
}

impl fmt::Display for Outstanding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tag {} at {}: {} block(s), {} bytes",
            self.tag, self.site, self.blocks, self.bytes
        )
    }
}

#[derive(Debug)]
struct State {
    live: HashMap<usize, Allocation>,
    outstanding_bytes: usize,
    peak_bytes: usize,
    log: VecDeque<String>,
    /// Problems logged so far (including those no longer kept).
    problems: usize,
}

#[derive(Debug)]
struct Inner {
    contract: Arc<Contract>,
    state: Mutex<State>,
    /// Allocation attempts so far (the Nth attempt has index N, counting from 1).
    attempts: AtomicUsize,
    /// Index of the attempt to fail; 0 = none.
    fail_at: AtomicUsize,
    /// Failures injected so far.
    injected: AtomicUsize,
    /// Most verbose level written to stderr; `None` = none.
    verbosity: Option<Level>,
}

/// The accounting [`Platform`]. Cloning shares the same accounting.
#[derive(Clone, Debug)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// A pool reporting misuse to `contract`, writing log lines up to `verbosity` to stderr.
    #[must_use]
    pub fn new(contract: Arc<Contract>, verbosity: Option<Level>) -> Self {
        Self {
            inner: Arc::new(Inner {
                contract,
                state: Mutex::new(State {
                    live: HashMap::new(),
                    outstanding_bytes: 0,
                    peak_bytes: 0,
                    log: VecDeque::new(),
                    problems: 0,
                }),
                attempts: AtomicUsize::new(0),
                fail_at: AtomicUsize::new(0),
                injected: AtomicUsize::new(0),
                verbosity,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the `n`th allocation attempt from now on fail (`n` counts from 1; 0 disarms).
    pub fn fail_nth_from_now(&self, n: usize) {
        let at = if n == 0 {
            0
        } else {
            self.attempts().saturating_add(n)
        };
        self.inner.fail_at.store(at, Ordering::SeqCst);
    }

    /// Allocation attempts made so far.
    #[must_use]
    pub fn attempts(&self) -> usize {
        self.inner.attempts.load(Ordering::SeqCst)
    }

    /// Allocation failures injected so far.
    #[must_use]
    pub fn injected_failures(&self) -> usize {
        self.inner.injected.load(Ordering::SeqCst)
    }

    /// Bytes currently allocated.
    #[must_use]
    pub fn outstanding_bytes(&self) -> usize {
        self.state().outstanding_bytes
    }

    /// The most bytes ever allocated at once.
    #[must_use]
    pub fn peak_bytes(&self) -> usize {
        self.state().peak_bytes
    }

    /// Live allocations grouped by tag and site, largest first.
    #[must_use]
    pub fn outstanding(&self) -> Vec<Outstanding> {
        let state = self.state();
        let mut groups: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
        for allocation in state.live.values() {
            let key = (format!("{:?}", allocation.tag), allocation.site.to_string());
            let entry = groups.entry(key).or_default();
            entry.0 += 1;
            entry.1 += allocation.size;
        }
        let mut list: Vec<Outstanding> = groups
            .into_iter()
            .map(|((tag, site), (blocks, bytes))| Outstanding {
                tag,
                site,
                blocks,
                bytes,
            })
            .collect();
        list.sort_by_key(|o| std::cmp::Reverse(o.bytes));
        list
    }

    /// Bytes currently allocated with `tag`.
    #[must_use]
    pub fn outstanding_bytes_with_tag(&self, tag: PoolTag) -> usize {
        self.state()
            .live
            .values()
            .filter(|a| a.tag == tag)
            .map(|a| a.size)
            .sum()
    }

    /// Recent log lines of level `Warning` or worse.
    #[must_use]
    pub fn recent_problems(&self) -> Vec<String> {
        self.state().log.iter().cloned().collect()
    }

    /// How many problems (log lines of level `Warning` or worse) were logged so far.
    #[must_use]
    pub fn problem_count(&self) -> usize {
        self.state().problems
    }

    /// The kept problems logged after the first `count` ones, oldest first.
    #[must_use]
    pub fn problems_since(&self, count: usize) -> Vec<String> {
        let state = self.state();
        let kept_from = state.problems - state.log.len();
        state
            .log
            .iter()
            .skip(count.saturating_sub(kept_from))
            .cloned()
            .collect()
    }

    fn layout(size: usize) -> Option<Layout> {
        Layout::from_size_align(size.max(1), POOL_ALIGNMENT).ok()
    }
}

impl Platform for Pool {
    #[track_caller]
    fn allocate(&self, size: usize, tag: PoolTag) -> Option<NonNull<u8>> {
        let caller = Location::caller();
        let attempt = self
            .inner
            .attempts
            .fetch_add(1, Ordering::SeqCst)
            .wrapping_add(1);
        if self.inner.fail_at.load(Ordering::SeqCst) == attempt {
            self.inner.injected.fetch_add(1, Ordering::SeqCst);
            return None;
        }
        let layout = Self::layout(size)?;
        // SAFETY: `layout` has a non-zero size (`size.max(1)`).
        let ptr = NonNull::new(unsafe { alloc::alloc(layout) })?;
        let mut state = self.state();
        state.live.insert(
            ptr.as_ptr() as usize,
            Allocation {
                size,
                tag,
                site: caller,
            },
        );
        state.outstanding_bytes += size;
        state.peak_bytes = state.peak_bytes.max(state.outstanding_bytes);
        drop(state);
        Some(ptr)
    }

    unsafe fn free(&self, ptr: NonNull<u8>, tag: PoolTag) {
        let mut state = self.state();
        let Some(allocation) = state.live.remove(&(ptr.as_ptr() as usize)) else {
            drop(state);
            self.inner.contract.violation(format!(
                "free of {ptr:p} (tag {tag:?}): not a live pool block (double free?)"
            ));
            return;
        };
        state.outstanding_bytes -= allocation.size;
        drop(state);
        if allocation.tag != tag {
            self.inner.contract.violation(format!(
                "free of {ptr:p} with tag {tag:?}, allocated with tag {:?} at {}",
                allocation.tag, allocation.site
            ));
        }
        if let Some(layout) = Self::layout(allocation.size) {
            // SAFETY: `ptr` was returned by `alloc::alloc` with this layout (same size) and was
            // live until removed from `live` above, so it is freed exactly once.
            unsafe { alloc::dealloc(ptr.as_ptr(), layout) };
        }
    }

    fn log(&self, level: Level, args: fmt::Arguments<'_>) {
        if self.inner.verbosity.is_some_and(|most| level <= most) {
            eprintln!("wskecho: {level:?}: {args}");
        }
        if level <= Level::Warning {
            let mut state = self.state();
            if state.log.len() == KEPT_LOG_LINES {
                state.log.pop_front();
            }
            state.log.push_back(format!("{level:?}: {args}"));
            state.problems += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wsk_primitives::platform::{Level, Platform, PoolTag};

    use super::Pool;
    use crate::contract::Contract;

    const TAG: PoolTag = PoolTag::from_chars(*b"Test");

    fn pool() -> (Pool, Arc<Contract>) {
        let contract = Arc::new(Contract::new());
        (
            Pool::new(Arc::clone(&contract), Some(Level::Error)),
            contract,
        )
    }

    #[test]
    fn accounts_per_tag_and_site() {
        let (pool, contract) = pool();
        let a = pool.allocate(100, TAG);
        let b = pool.allocate(28, PoolTag::from_chars(*b"Othr"));
        assert_eq!(pool.outstanding_bytes(), 128);
        let list = pool.outstanding();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].tag, "Test");
        assert!(list[0].site.contains("pool.rs"), "{}", list[0].site);
        // SAFETY: both came from `allocate` on this pool with these tags.
        unsafe {
            pool.free(a.unwrap(), TAG);
        }
        // SAFETY: as above.
        unsafe {
            pool.free(b.unwrap(), PoolTag::from_chars(*b"Othr"));
        }
        assert_eq!(pool.outstanding_bytes(), 0);
        assert_eq!(pool.peak_bytes(), 128);
        assert_eq!(contract.count(), 0);
    }

    #[test]
    fn fails_exactly_the_nth_attempt() {
        let (pool, _contract) = pool();
        pool.fail_nth_from_now(2);
        let first = pool.allocate(8, TAG);
        let second = pool.allocate(8, TAG);
        let third = pool.allocate(8, TAG);
        assert!(first.is_some() && second.is_none() && third.is_some());
        assert_eq!(pool.injected_failures(), 1);
        for p in [first, third].into_iter().flatten() {
            // SAFETY: allocated above with TAG.
            unsafe { pool.free(p, TAG) };
        }
    }

    #[test]
    fn wrong_tag_and_double_free_are_violations() {
        let (pool, contract) = pool();
        let p = pool.allocate(8, TAG).unwrap();
        // SAFETY: `p` is live; the wrong tag is the point of the test (it is still freed).
        unsafe { pool.free(p, PoolTag::from_chars(*b"Bad ")) };
        assert_eq!(contract.count(), 1);
        // SAFETY: the pool detects the double free before touching the memory.
        unsafe { pool.free(p, TAG) };
        assert_eq!(contract.count(), 2);
    }
}
