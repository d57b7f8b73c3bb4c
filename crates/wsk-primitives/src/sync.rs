//! Atomics and cells shim: `core`'s types normally, loom's under `--cfg loom`.
//!
//! Every atomic and interior-mutable cell of the core goes through this module, so that the
//! loom models (docs/testing.md) check the real code. Loom's `UnsafeCell` only grants access
//! inside `with`/`with_mut` closures; [`UnsafeCell`] offers that API on both builds.
//!
//! [`StatCounter`] is the one exception: statistics counters synchronize nothing, so they are
//! always `core`'s atomics (loom need not explore their interleavings).

#[cfg(loom)]
pub use loom::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};

#[cfg(not(loom))]
pub use ::core::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};

/// A statistics counter: never used to synchronize, so never loom-instrumented.
pub type StatCounter = ::core::sync::atomic::AtomicU64;

/// An `UnsafeCell` with loom's closure-based access API.
///
/// The caller of [`UnsafeCell::with`] / [`UnsafeCell::with_mut`] is responsible, as with
/// `core::cell::UnsafeCell::get`, for not creating aliasing references through the pointer.
#[derive(Debug)]
pub struct UnsafeCell<T> {
    #[cfg(loom)]
    inner: loom::cell::UnsafeCell<T>,
    #[cfg(not(loom))]
    inner: ::core::cell::UnsafeCell<T>,
}

impl<T> UnsafeCell<T> {
    /// A cell holding `value`.
    #[cfg(not(loom))]
    #[must_use]
    pub const fn new(value: T) -> Self {
        Self {
            inner: ::core::cell::UnsafeCell::new(value),
        }
    }

    /// A cell holding `value`.
    #[cfg(loom)]
    #[must_use]
    pub fn new(value: T) -> Self {
        Self {
            inner: loom::cell::UnsafeCell::new(value),
        }
    }

    /// Runs `f` with a shared-access pointer to the contents.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        #[cfg(loom)]
        {
            self.inner.with(f)
        }
        #[cfg(not(loom))]
        {
            f(self.inner.get())
        }
    }

    /// Runs `f` with an exclusive-access pointer to the contents.
    #[inline]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(loom)]
        {
            self.inner.with_mut(f)
        }
        #[cfg(not(loom))]
        {
            f(self.inner.get())
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::UnsafeCell;

    #[test]
    fn cell_reads_what_was_written() {
        let cell = UnsafeCell::new(1_u32);
        // SAFETY: single-threaded test; no other access to the cell is live.
        cell.with_mut(|p| unsafe { *p = 7 });
        // SAFETY: as above.
        assert_eq!(cell.with(|p| unsafe { *p }), 7);
    }
}
