//! Support shared by the loom models (`tests/loom_*.rs`, built only with `--cfg loom`): the
//! model runner with the default preemption bound, and the scenario setup. WSK and NMR are
//! the unit tests' recording double (`wsk_client::testing::provider`), which under loom runs
//! on loom's threads, locks and events; the pool is `wsk-primitives`'s `TestPlatform`.
//!
//! Every contract check fails with a panic starting with `contract violated:`.

pub mod scenario;

use std::{
    collections::BTreeSet,
    fmt,
    sync::{Arc, Mutex, PoisonError},
};

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
/// default [`DEFAULT_PREEMPTIONS`]). Returns the number of executions explored.
pub fn check(model: impl Fn() + Sync + Send + 'static) -> usize {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(DEFAULT_PREEMPTIONS);
    }
    builder.max_branches = builder.max_branches.max(MAX_BRANCHES);
    run(&builder, model)
}

/// Runs the model, counting executions, and prints the count.
fn run(builder: &loom::model::Builder, model: impl Fn() + Sync + Send + 'static) -> usize {
    let executions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&executions);
    let start = std::time::Instant::now();
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        model();
    });
    let executions = executions.load(std::sync::atomic::Ordering::Relaxed);
    let bound = builder
        .preemption_bound
        .map_or_else(|| "none".to_owned(), |b| b.to_string());
    println!(
        "loom: {executions} executions (preemption bound {bound}) in {:.1?}",
        start.elapsed()
    );
    executions
}

/// Checks `model` over every interleaving (no preemption bound): for the small models of the
/// primitives alone.
pub fn check_exhaustive(model: impl Fn() + Sync + Send + 'static) -> usize {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = None;
    builder.max_branches = builder.max_branches.max(MAX_BRANCHES);
    run(&builder, model)
}

/// The facts seen over all executions of a model (`World::facts`), to check that the
/// model reached the races it is about: a model that never does would pass vacuously.
#[derive(Clone, Debug, Default)]
pub struct Outcomes(Arc<Mutex<BTreeSet<&'static str>>>);

impl Outcomes {
    /// Records the facts of one execution.
    pub fn record(&self, facts: impl IntoIterator<Item = &'static str>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(facts);
    }

    /// Prints what was seen; fails unless every `expected` fact was seen in some execution.
    pub fn assert_seen(&self, expected: &[&str]) {
        let seen = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        println!("loom: seen: {seen:?}");
        let missing: Vec<&&str> = expected.iter().filter(|e| !seen.contains(**e)).collect();
        if !missing.is_empty() {
            violated(format_args!(
                "the model never reached {missing:?} (seen: {seen:?})"
            ));
        }
    }
}
