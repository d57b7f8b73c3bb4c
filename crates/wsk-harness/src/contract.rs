//! The contract-violation recorder.
//!
//! Every layer of the emulated kernel (NMR, WSK, pool, driver frame) reports what the driver
//! did wrong here, with a message naming the rule. A run with any violation fails.

use std::sync::{Mutex, PoisonError};

use crate::irql::{self, Irql};

/// Collects contract violations of one harness run.
#[derive(Debug, Default)]
pub struct Contract {
    violations: Mutex<Vec<String>>,
}

impl Contract {
    /// An empty recorder.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one violation (also written to stderr at once, so it shows next to the logs).
    pub fn violation(&self, message: impl Into<String>) {
        let message = message.into();
        eprintln!("contract violation: {message}");
        self.violations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(message);
    }

    /// The violations recorded so far, in order.
    #[must_use]
    pub fn violations(&self) -> Vec<String> {
        self.violations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many violations were recorded.
    #[must_use]
    pub fn count(&self) -> usize {
        self.violations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Runs `f` (a call into the driver on a harness thread); a panic in it is recorded as a
    /// violation (in the kernel it would be a bugcheck) instead of silently killing the
    /// thread. Returns `None` after a panic.
    pub fn guard<R>(&self, what: &str, f: impl FnOnce() -> R) -> Option<R> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(result) => Some(result),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                self.violation(format!(
                    "panic in {what} (a bugcheck in the kernel): {message}"
                ));
                None
            }
        }
    }

    /// Checks that the current thread may block (`PASSIVE_LEVEL`). At `DISPATCH_LEVEL` the
    /// wait is recorded as a violation and `false` is returned: the caller must not block.
    pub fn may_block(&self, wait: &str) -> bool {
        if irql::current() == Irql::Dispatch {
            self.violation(format!("blocking wait `{wait}` at DISPATCH_LEVEL"));
            false
        } else {
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Contract;
    use crate::irql;

    #[test]
    fn records_in_order_and_counts() {
        let contract = Contract::new();
        assert_eq!(contract.count(), 0);
        contract.violation("first");
        contract.violation(String::from("second"));
        assert_eq!(contract.violations(), ["first", "second"]);
    }

    #[test]
    fn a_panic_in_a_driver_callback_is_a_violation() {
        let contract = Contract::new();
        assert_eq!(contract.guard("a callback", || 7), Some(7));
        assert_eq!(
            contract.guard("a callback", || -> i32 { panic!("index out of bounds") }),
            None
        );
        assert_eq!(contract.count(), 1);
        assert!(contract.violations()[0].contains("index out of bounds"));
    }

    #[test]
    fn blocking_at_dispatch_is_a_violation() {
        let contract = Contract::new();
        assert!(contract.may_block("passive wait"));
        assert_eq!(contract.count(), 0);
        assert!(!irql::at_dispatch(
            || contract.may_block("KeWaitForSingleObject")
        ));
        assert_eq!(contract.count(), 1);
        assert!(contract.violations()[0].contains("KeWaitForSingleObject"));
    }
}
