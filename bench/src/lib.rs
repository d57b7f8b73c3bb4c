//! The measurements of `scripts/bench` and their shared report format.
//!
//! Each measuring program writes one *part*, a JSON file `<bench dir>/parts/<part>.json` holding
//! rows of [`Row`]; `bench-report` merges the parts into one table (stdout) and
//! `<bench dir>/bench.json`. The bench dir is `$WSKECHO_BENCH_DIR` (set by `scripts/bench`), or
//! `target/bench` of the workspace.

pub mod report;
