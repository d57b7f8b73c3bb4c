//! Support shared by the loom models (`tests/loom_*.rs`, built only with `--cfg loom`):
//! a model WSK + NMR around the real core ([`wsk`]), an accounting pool ([`platform`]), the
//! model runner with the default preemption bound, and the scenario setup.
//!
//! Every contract check fails with a panic starting with `contract violated:`; scripts/loom
//! looks for that text when it checks that the known bug is caught.

pub mod platform;

use std::fmt;

/// Preemption bound used when `LOOM_MAX_PREEMPTIONS` is not set (docs/testing.md).
pub const DEFAULT_PREEMPTIONS: usize = 2;

/// Branch points allowed in one execution. The setup of a binding with sockets alone takes
/// a few hundred atomic operations, above loom's default of 1000 once threads run.
const MAX_BRANCHES: usize = 50_000;

/// Fails the model: a contract of the core was broken.
#[track_caller]
pub fn violated(what: fmt::Arguments<'_>) -> ! {
    panic!("contract violated: {what}");
}

/// Checks `model` over all interleavings within the preemption bound (`LOOM_MAX_PREEMPTIONS`,
/// default [`DEFAULT_PREEMPTIONS`]).
pub fn check(model: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(DEFAULT_PREEMPTIONS);
    }
    builder.max_branches = builder.max_branches.max(MAX_BRANCHES);
    builder.check(model);
}

/// Checks `model` over every interleaving (no preemption bound): for the small models of the
/// primitives alone.
pub fn check_exhaustive(model: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = None;
    builder.max_branches = builder.max_branches.max(MAX_BRANCHES);
    builder.check(model);
}
