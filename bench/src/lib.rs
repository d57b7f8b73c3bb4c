//! The measurements of `scripts/bench` and their shared report format.
//!
//! Each measuring program writes one *part*, a JSON file `<bench dir>/parts/<part>.json` holding
//! rows of [`Row`]; `bench-report` merges the parts into one table (stdout) and
//! `<bench dir>/bench.json`. The bench dir is `$WSKECHO_BENCH_DIR` (set by `scripts/bench`), or
//! `target/bench` of the workspace.

pub mod report;

// Parts 1, 2 and 7 (the `rundown`, `echo-step` and `sys-image` programs): rundown ratios from
// criterion's estimates, echo-step instruction counts from callgrind's output, stack frames of
// the driver image.
pub mod callgrind;
pub mod echo_count;
pub mod echo_step;
pub mod image;
pub mod rundown_ratio;

// Parts 3–6 (harness-bench): the harness's costs, and the baseline and load generator of the
// throughput part. Pure statistics are always built (and unit-tested).
#[cfg(feature = "run")]
pub mod baseline;
#[cfg(feature = "run")]
pub mod harness_parts;
#[cfg(feature = "run")]
pub mod load;
pub mod summary;
