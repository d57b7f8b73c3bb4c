//! Parts 3–6 of `scripts/bench`, measured on the harness; run by `harness-bench`.
//!
//! The harness runs the driver's core over the emulated NMR and WSK on loopback. The parts:
//! allocations per message, memory per connection, echo throughput and latency against a
//! baseline server, and Unload time.

pub mod allocations;
pub mod memory;
pub mod throughput;
pub mod unload;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use wsk_harness::harness::{Harness, Options, Report};
use wsk_primitives::platform::Level;
use wskecho_echo::ECHO;

/// How long a harness may take to open its listener.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Options for one loopback IPv4 listener on an ephemeral port.
///
/// No `MaxConnectionsPerAddress` limit (all load comes from one address), the driver's
/// defaults otherwise, and only the driver's error lines on stderr.
///
/// # Errors
/// The core refused the configuration.
pub fn loopback_options() -> Result<Options, String> {
    // Every load connection comes from 127.0.0.1: no per-address limit.
    let mut options = Options::new(ECHO, &["127.0.0.1:0"])?.with_max_connections_per_address(0)?;
    options.verbosity = Some(Level::Error);
    Ok(options)
}

/// Starts a harness and waits for its listener; returns it with the listening address.
///
/// # Errors
/// The harness could not start or its listener did not open.
pub fn start(options: Options) -> Result<(Harness, SocketAddr), String> {
    let harness = Harness::start(options).map_err(|e| format!("harness start: {e}"))?;
    let listening = match harness.wait_listening(LISTEN_TIMEOUT) {
        Ok(listening) => listening,
        Err(error) => {
            let _ = harness.unload();
            return Err(format!("harness listener: {error}"));
        }
    };
    let addr = *listening
        .first()
        .ok_or_else(|| "harness: no listener".to_owned())?;
    Ok((harness, addr))
}

/// Polls `done` every few milliseconds until it holds.
///
/// # Errors
/// `timeout` passed first (the message names `what`).
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Waits until `value` returns the same number on 5 polls 20 ms apart, and returns it.
///
/// # Errors
/// It kept changing for `timeout`.
pub fn settled(
    what: &str,
    timeout: Duration,
    mut value: impl FnMut() -> u64,
) -> Result<u64, String> {
    let deadline = Instant::now() + timeout;
    let mut last = value();
    let mut same = 0;
    while same < 5 {
        if Instant::now() >= deadline {
            return Err(format!("{what} still changing after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
        let now = value();
        if now == last {
            same += 1;
        } else {
            same = 0;
            last = now;
        }
    }
    Ok(last)
}

/// Fails unless the report of an unload is clean (no contract violation, nothing leaked).
///
/// # Errors
/// The violations and leaks, listed.
pub fn check_clean(report: &Report, what: &str) -> Result<(), String> {
    if report.clean() {
        return Ok(());
    }
    let leaks: Vec<String> = report.leaks.iter().map(ToString::to_string).collect();
    Err(format!(
        "{what}: unload not clean: violations {:?}, leaks {leaks:?}",
        report.violations
    ))
}

/// Fails if the harness recorded a contract violation so far.
///
/// # Errors
/// The violations, listed.
pub fn check_contract(harness: &Harness, what: &str) -> Result<(), String> {
    let violations = harness.contract().violations();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(format!("{what}: contract violations: {violations:?}"))
    }
}

/// The driver's counters (zero once unloaded).
#[must_use]
pub fn driver_stats(harness: &Harness) -> wsk_client::stats::StatsSnapshot {
    harness
        .driver()
        .map(|driver| driver.client().stats().snapshot())
        .unwrap_or_default()
}

/// The runtime of the load generator's clients: two worker threads (the machine's cores,
/// shared with the server under test).
///
/// # Errors
/// The runtime could not be built.
pub fn client_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .map_err(|e| format!("client runtime: {e}"))
}
