//! Threads, locks, events and causality cells for test doubles.
//!
//! They are `std`'s normally and loom's under `--cfg loom`: the test-side counterpart of
//! [`crate::sync`], so that one double serves the unit tests and the loom models.
//!
//! A double keeps its bookkeeping under a plain `std` mutex, invisible to loom (it adds no
//! scheduling point and no happens-before edge, so it cannot hide a missing edge in the code
//! under test). What it must make visible goes through this module: the lock that orders a
//! timer's arm, cancel and expiry ([`Mutex`]), events a thread waits for ([`Notify`]), which
//! thread is running ([`current_thread`]) and accesses whose order loom must check
//! ([`Causality`]). All model threads share one OS thread, so a double must make no loom
//! operation (these types, or the atomics of [`crate::sync`]) while it holds its `std` mutex:
//! loom may switch threads there, and the next thread would block on that mutex.
#![allow(clippy::missing_panics_doc)] // test code

#[cfg(loom)]
pub use loom::sync::{Mutex, MutexGuard};
#[cfg(loom)]
pub use loom::thread::ThreadId;
#[cfg(not(loom))]
pub use std::sync::{Mutex, MutexGuard};
#[cfg(not(loom))]
pub use std::thread::ThreadId;

/// The running thread (a loom model thread under loom).
#[must_use]
pub fn current_thread() -> ThreadId {
    #[cfg(loom)]
    {
        loom::thread::current().id()
    }
    #[cfg(not(loom))]
    {
        std::thread::current().id()
    }
}

/// An event one thread waits for and others signal.
///
/// [`Notify::notify`] leaves a permit that the next [`Notify::wait`] consumes; a wait may also
/// return spuriously, so a waiter re-checks its condition (on an atomic, which is what orders
/// it after the notifier).
#[derive(Debug)]
pub struct Notify {
    #[cfg(loom)]
    inner: loom::sync::Notify,
    #[cfg(not(loom))]
    permit: std::sync::Mutex<bool>,
    #[cfg(not(loom))]
    signal: std::sync::Condvar,
}

#[allow(clippy::missing_const_for_fn)] // loom's types have no const constructors
impl Notify {
    /// An event with no permit.
    #[must_use]
    pub fn new() -> Self {
        Self {
            #[cfg(loom)]
            inner: loom::sync::Notify::new(),
            #[cfg(not(loom))]
            permit: std::sync::Mutex::new(false),
            #[cfg(not(loom))]
            signal: std::sync::Condvar::new(),
        }
    }

    /// Leaves a permit and wakes the waiter.
    pub fn notify(&self) {
        #[cfg(loom)]
        self.inner.notify();
        #[cfg(not(loom))]
        {
            *self
                .permit
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
            self.signal.notify_all();
        }
    }

    /// Blocks until a permit is there, and takes it.
    pub fn wait(&self) {
        #[cfg(loom)]
        self.inner.wait();
        #[cfg(not(loom))]
        {
            let mut permit = self
                .signal
                .wait_while(
                    self.permit
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                    |permit| !*permit,
                )
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *permit = false;
        }
    }
}

impl Default for Notify {
    fn default() -> Self {
        Self::new()
    }
}

/// A cell without data, for loom's causality checks.
///
/// [`Causality::read`] and [`Causality::write`] record an access, and loom fails the model
/// when a write is not ordered (happens-before) after every earlier access, or a read after
/// the last write. Without loom it records nothing.
#[derive(Debug)]
pub struct Causality {
    #[cfg(loom)]
    cell: loom::cell::UnsafeCell<()>,
}

// SAFETY: the cell holds no data; its accesses only record causality for loom, which runs the
// model's threads one at a time.
unsafe impl Sync for Causality {}
// SAFETY: as above.
unsafe impl Send for Causality {}

#[allow(clippy::missing_const_for_fn)] // loom's cell has no const constructor or access
impl Causality {
    /// A cell created by the current thread.
    #[must_use]
    pub fn new() -> Self {
        Self {
            #[cfg(loom)]
            cell: loom::cell::UnsafeCell::new(()),
        }
    }

    /// Records a shared access.
    #[track_caller]
    pub fn read(&self) {
        #[cfg(loom)]
        self.cell.with(|_| ());
    }

    /// Records an exclusive access.
    #[track_caller]
    pub fn write(&self) {
        #[cfg(loom)]
        self.cell.with_mut(|_| ());
    }
}

impl Default for Causality {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Notify;
    use std::sync::Arc;

    #[test]
    fn a_notify_before_the_wait_is_not_lost() {
        let event = Notify::new();
        event.notify();
        event.wait();
    }

    #[test]
    fn a_wait_returns_once_another_thread_notifies() {
        let event = Arc::new(Notify::new());
        let notifier = Arc::clone(&event);
        let thread = std::thread::spawn(move || notifier.notify());
        event.wait();
        thread.join().expect("notifier");
    }
}
