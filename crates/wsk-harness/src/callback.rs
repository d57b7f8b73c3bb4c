//! A thread-local marker of the WSK callback executing on the current thread.
//!
//! The driver's rule: no WSK call from inside an `IoCompletion` routine or a WSK event
//! callback. Microsoft's pages say a client "should not call new WSK functions in the context
//! of the `IoCompletion` routine"
//! (<https://learn.microsoft.com/windows-hardware/drivers/network/using-irps-with-winsock-kernel-functions>),
//! and `WskCloseSocket` waits for the socket's event callbacks in progress
//! (<https://learn.microsoft.com/windows-hardware/drivers/ddi/wsk/nc-wsk-pfn_wsk_close_socket>);
//! wskecho makes every call from a work item instead. The emulated WSK marks every completion
//! and event callback it makes into the driver, and records a violation for any WSK call made
//! while a mark is set ([`crate::wsk`]).

use std::{cell::Cell, fmt};

/// The kinds of WSK callbacks into the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Callback {
    /// An IRP's `IoCompletion` routine.
    IoCompletion,
    /// `WskAcceptEvent`.
    AcceptEvent,
}

impl fmt::Display for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::IoCompletion => "an IoCompletion routine",
            Self::AcceptEvent => "WskAcceptEvent",
        })
    }
}

thread_local! {
    static CURRENT: Cell<Option<Callback>> = const { Cell::new(None) };
}

/// The callback executing on this thread, if any (the innermost one).
#[must_use]
pub fn current() -> Option<Callback> {
    CURRENT.with(Cell::get)
}

/// Runs `f` marked as `callback`; the previous mark is restored afterwards.
pub fn inside<R>(callback: Callback, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Callback>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(Some(callback))));
    f()
}

#[cfg(test)]
mod tests {
    use super::{Callback, current, inside};

    #[test]
    fn marks_are_scoped_nested_and_per_thread() {
        assert_eq!(current(), None);
        inside(Callback::AcceptEvent, || {
            assert_eq!(current(), Some(Callback::AcceptEvent));
            inside(Callback::IoCompletion, || {
                assert_eq!(current(), Some(Callback::IoCompletion));
            });
            assert_eq!(current(), Some(Callback::AcceptEvent));
            assert_eq!(std::thread::spawn(current).join().ok(), Some(None));
        });
        assert_eq!(current(), None);
    }
}
