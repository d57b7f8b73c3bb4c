//! Part 6: how long the driver's Unload takes with 0, 100 and 1,000 connections mid-transfer
//! (goal: under 100 ms at 1,000, growing no worse than linearly).

use std::time::Duration;

use tokio::runtime::Runtime;

use super::{check_clean, client_runtime, driver_stats, loopback_options, start};
use crate::{
    load::Load,
    report::{Goal, Part, Row},
    summary::{growth_over_linear, median},
};

/// Live connections at Unload.
const LOADS: [usize; 3] = [0, 100, 1000];
/// Unloads measured per load (the median counts).
const REPETITIONS: usize = 15;
/// Bytes per message of the clients' closed-loop echo.
const PAYLOAD: usize = 4096;
/// The goal at 1,000 connections, in milliseconds.
const GOAL_MS: f64 = 100.0;
/// Per-connection cost at 1,000 over that at 100 allowed as "no worse than linear": 1 is
/// exactly linear; the margin absorbs the noise of a shared 2-core machine.
const LINEAR_TOLERANCE: f64 = 1.5;

/// One measured Unload.
struct Sample {
    ms: f64,
    pending: bool,
}

/// Measures part 6.
///
/// # Errors
/// The harness failed, a client saw a wrong echo, the connections did not all get accepted
/// and echo, or an Unload recorded a contract violation or leak.
pub fn run() -> Result<Part, String> {
    let runtime = client_runtime()?;
    let mut rows = Vec::new();
    let mut medians = Vec::new();
    for connections in LOADS {
        let mut samples = Vec::new();
        for _ in 0..REPETITIONS {
            samples.push(unload_once(&runtime, connections)?);
        }
        let times: Vec<f64> = samples.iter().map(|s| s.ms).collect();
        let median_ms = median(&times).ok_or("no unload measured")?;
        let min = times.iter().copied().fold(f64::INFINITY, f64::min);
        let max = times.iter().copied().fold(0.0, f64::max);
        let pending = samples.iter().filter(|s| s.pending).count();
        eprintln!(
            "  {connections} connections: Unload median {median_ms:.3} ms (min {min:.3}, max {max:.3})"
        );
        let mut row = Row::new(
            if connections == 0 {
                "Unload, no connection (listener only)".to_owned()
            } else {
                format!("Unload, {connections} connections mid-transfer")
            },
            median_ms,
            "ms",
        )
        .with_note(format!(
            "median of {REPETITIONS} (min {min:.3}, max {max:.3} ms); detach pended in {pending} of \
             {REPETITIONS}; clients echo {PAYLOAD} B messages in a closed loop until reset; \
             every Unload clean"
        ));
        if connections == 1000 {
            row = row.with_goal(Goal::Below(GOAL_MS));
        }
        rows.push(row);
        medians.push((connections, median_ms));
    }
    let growth = match medians.as_slice() {
        [_, (small, at_small), (large, at_large)] => {
            growth_over_linear(to_f64(*small), *at_small, to_f64(*large), *at_large)
        }
        _ => None,
    }
    .ok_or("unload times are not positive: cannot compare their growth")?;
    rows.push(
        Row::new(
            "Unload cost per connection, 1000 vs 100 connections",
            growth,
            "x",
        )
        .with_goal(Goal::AtMost(LINEAR_TOLERANCE))
        .with_note(format!(
            "(median at 1000 / 1000) / (median at 100 / 100): 1 = linear, below 1 = a fixed part \
             dominates, 10 = quadratic; limit {LINEAR_TOLERANCE} allows for noise"
        )),
    );
    Ok(Part {
        name: "6-unload".into(),
        title: "6 unload".into(),
        rows,
    })
}

#[allow(clippy::cast_precision_loss)] // small counts
const fn to_f64(value: usize) -> f64 {
    value as f64
}

/// Starts a harness, puts `connections` clients into a steady echo against it, unloads it,
/// and returns the Unload's duration.
fn unload_once(runtime: &Runtime, connections: usize) -> Result<Sample, String> {
    let options = loopback_options()?.with_max_connections(1024)?;
    let (harness, addr) = start(options)?;
    let load = if connections == 0 {
        None
    } else {
        let started = runtime.block_on(async {
            let load = Load::start(addr, connections, PAYLOAD)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            // Every connection echoing, then as much again: traffic surely in flight.
            let flowing = load
                .wait_completed(4 * connections as u64, Duration::from_secs(30))
                .await;
            Ok::<_, String>((load, flowing))
        });
        match started {
            Ok((load, true)) => Some(load),
            Ok((load, false)) => {
                let _ = harness.unload();
                let _ = runtime.block_on(load.finish(true));
                return Err(format!(
                    "{connections} connections: the echo did not get going"
                ));
            }
            Err(error) => {
                let _ = harness.unload();
                return Err(error);
            }
        }
    };
    let stats = driver_stats(&harness);
    if stats.active != connections as u64 || stats.refused != 0 {
        let _ = harness.unload();
        return Err(format!(
            "{connections} connections: the driver has {} open and refused {}",
            stats.active, stats.refused
        ));
    }
    let report = harness.unload();
    if let Some(load) = load {
        // The clients see resets; a wrong echo before that still fails the run.
        runtime
            .block_on(load.finish(true))
            .map_err(|e| format!("{connections} connections: {e}"))?;
    }
    check_clean(&report, &format!("unload with {connections} connections"))?;
    Ok(Sample {
        ms: report.unload_duration.as_secs_f64() * 1000.0,
        pending: report.detach == "pending",
    })
}
