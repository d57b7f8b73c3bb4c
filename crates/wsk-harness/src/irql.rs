//! A thread-local IRQL marker.
//!
//! User mode has no IRQL, but the contract does: NMR and WSK callbacks run at
//! IRQL <= `DISPATCH_LEVEL`, and nothing may block there. The harness raises this marker
//! around every callback it makes into the driver at `DISPATCH_LEVEL`, and every blocking
//! wait in the harness's emulated kernel checks it first (see [`crate::contract`]).

use std::cell::Cell;

/// The two IRQLs the contract distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Irql {
    /// `PASSIVE_LEVEL`: `DriverEntry`, `Unload`, `ClientAttachProvider`, blocking waits.
    Passive,
    /// `DISPATCH_LEVEL`: completion routines, WSK events, detach and cleanup callbacks.
    Dispatch,
}

thread_local! {
    static CURRENT: Cell<Irql> = const { Cell::new(Irql::Passive) };
}

/// The IRQL the current thread is declared to run at.
#[must_use]
pub fn current() -> Irql {
    CURRENT.with(Cell::get)
}

/// Restores the previous IRQL when dropped (`KeLowerIrql`).
#[must_use = "the IRQL is lowered again when the guard is dropped"]
pub struct IrqlGuard {
    previous: Irql,
}

impl Drop for IrqlGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

/// Declares the current thread at `level` until the guard is dropped (`KeRaiseIrql`).
pub fn raise(level: Irql) -> IrqlGuard {
    let previous = CURRENT.with(|c| c.replace(level));
    IrqlGuard { previous }
}

/// Runs `f` at `DISPATCH_LEVEL`.
pub fn at_dispatch<R>(f: impl FnOnce() -> R) -> R {
    let _guard = raise(Irql::Dispatch);
    f()
}

/// Runs `f` at `PASSIVE_LEVEL` (a callback the contract calls at `PASSIVE_LEVEL`).
pub fn at_passive<R>(f: impl FnOnce() -> R) -> R {
    let _guard = raise(Irql::Passive);
    f()
}

#[cfg(test)]
mod tests {
    use super::{Irql, at_dispatch, current};

    #[test]
    fn raise_is_scoped_and_per_thread() {
        assert_eq!(current(), Irql::Passive);
        at_dispatch(|| {
            assert_eq!(current(), Irql::Dispatch);
            let other = std::thread::spawn(current).join().ok();
            assert_eq!(other, Some(Irql::Passive));
        });
        assert_eq!(current(), Irql::Passive);
    }
}
