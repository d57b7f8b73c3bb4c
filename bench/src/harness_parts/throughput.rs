//! Part 5: echo throughput and latency through the harness beside a minimal tokio echo
//! server, driven by the same closed-loop load generator on the same loopback in the same run.

use std::{net::SocketAddr, time::Duration};

use tokio::runtime::Runtime;
use wskecho_harness::harness::Harness;

use super::{
    check_clean, check_contract, client_runtime, driver_stats, loopback_options, start, wait_until,
};
use crate::{
    baseline::BaselineServer,
    load::{Load, Outcome},
    report::{Part, Row},
    summary::Latency,
};

/// Connection counts measured.
const CONNECTIONS: [usize; 3] = [1, 64, 512];
/// Message sizes measured.
const PAYLOADS: [usize; 2] = [64, 64 << 10];
/// Echoing before the measurement starts.
const WARM_UP: Duration = Duration::from_millis(500);
/// Length of each measurement.
const WINDOW: Duration = Duration::from_secs(2);
/// Worker threads of the baseline server's runtime.
const BASELINE_WORKERS: usize = 2;

/// One cell measured on one server.
struct Measured {
    outcome: Outcome,
    latency: Latency,
}

impl Measured {
    fn describe(&self) -> String {
        format!(
            "{:.1} MiB/s, {:.0} msg/s, p50 {} µs, p99 {} µs",
            self.outcome.mib_per_s(),
            self.outcome.messages_per_s(),
            self.latency.p50 / 1000,
            self.latency.p99 / 1000
        )
    }
}

/// Measures part 5.
///
/// # Errors
/// A server could not start, an echo was wrong or failed, or the harness recorded a contract
/// violation or leak.
pub fn run() -> Result<Part, String> {
    let runtime = client_runtime()?;
    let grid: Vec<(usize, usize)> = PAYLOADS
        .iter()
        .flat_map(|&payload| CONNECTIONS.map(|connections| (connections, payload)))
        .collect();
    let mut rows = measure_servers(&runtime, true, &grid)?;
    // The same cell with Nagle's algorithm left on, as on the driver's WSK sockets.
    rows.extend(measure_servers(&runtime, false, &[(1, 64 << 10)])?);
    Ok(Part {
        name: "5-throughput".into(),
        title: "5 throughput".into(),
        rows,
    })
}

/// Starts a harness and a baseline server (both with `TCP_NODELAY` on accepted connections
/// or both without), measures `cells` (connections, payload) on each, and unloads the
/// harness, which must be clean.
fn measure_servers(
    runtime: &Runtime,
    nodelay: bool,
    cells: &[(usize, usize)],
) -> Result<Vec<Row>, String> {
    let mut options = loopback_options()?;
    options.wsk.nodelay = nodelay;
    let buffer_size = options.config.buffer_size() as usize;
    let (harness, addr) = start(options)?;
    let result = BaselineServer::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        BASELINE_WORKERS,
        buffer_size,
        nodelay,
    )
    .map_err(|e| format!("baseline server: {e}"))
    .and_then(|baseline| {
        let servers = Servers {
            harness: &harness,
            harness_addr: addr,
            baseline: &baseline,
            nodelay,
            buffer_size,
        };
        cells
            .iter()
            .enumerate()
            .map(|(n, &(connections, payload))| servers.cell(runtime, connections, payload, n == 0))
            .collect::<Result<Vec<Row>, String>>()
    });
    let report = harness.unload();
    let rows = result?;
    check_clean(&report, "throughput")?;
    Ok(rows)
}

/// The two servers one set of cells is measured on.
struct Servers<'a> {
    harness: &'a Harness,
    harness_addr: SocketAddr,
    baseline: &'a BaselineServer,
    nodelay: bool,
    buffer_size: usize,
}

impl Servers<'_> {
    /// Measures one cell on the harness, then on the baseline; `explain` adds how to the note.
    fn cell(
        &self,
        runtime: &Runtime,
        connections: usize,
        payload: usize,
        explain: bool,
    ) -> Result<Row, String> {
        let nagle = if self.nodelay { "" } else { ", Nagle on" };
        let cell = format!("{connections} conn × {}{nagle}", size(payload));
        let on_harness = run_cell(runtime, self.harness_addr, connections, payload)
            .map_err(|e| format!("harness, {cell}: {e}"))?;
        check_contract(self.harness, &cell)?;
        // The next measurement starts on a driver with no connection left from this one.
        wait_until(
            "the driver to close the cell's connections",
            Duration::from_secs(20),
            || driver_stats(self.harness).active == 0,
        )?;
        let on_baseline = run_cell(runtime, self.baseline.local_addr(), connections, payload)
            .map_err(|e| format!("baseline, {cell}: {e}"))?;
        let ratio = on_harness.outcome.mib_per_s() / on_baseline.outcome.mib_per_s();
        eprintln!(
            "  {cell}: harness {}; baseline {}; ratio {ratio:.2}",
            on_harness.describe(),
            on_baseline.describe()
        );
        let mut note = format!(
            "harness {}; baseline {}",
            on_harness.describe(),
            on_baseline.describe()
        );
        if explain {
            let nodelay = if self.nodelay {
                "TCP_NODELAY on both servers' accepted sockets (harness: WskMode::nodelay)"
            } else {
                "Nagle's algorithm on in both servers, as on the driver's WSK sockets"
            };
            note = format!(
                "{note}. Closed loop per connection (send, read the whole echo, repeat), \
                 {WARM_UP:?} warm-up then {WINDOW:?} measured; MiB/s of echoed payload; \
                 baseline = tokio echo server ({BASELINE_WORKERS} workers, {} B buffer); \
                 {nodelay}; client (2 threads), harness and baseline share 2 cores",
                self.buffer_size
            );
        }
        Ok(Row::new(
            format!("echo throughput harness / baseline, {cell}"),
            ratio,
            "x",
        )
        .with_note(note))
    }
}

fn size(payload: usize) -> String {
    if payload >= 1024 {
        format!("{} KiB", payload / 1024)
    } else {
        format!("{payload} B")
    }
}

fn run_cell(
    runtime: &Runtime,
    addr: SocketAddr,
    connections: usize,
    payload: usize,
) -> Result<Measured, String> {
    let mut outcome = runtime.block_on(async {
        let mut load = Load::start(addr, connections, payload)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        tokio::time::sleep(WARM_UP).await;
        load.start_measuring();
        tokio::time::sleep(WINDOW).await;
        load.finish(false).await.map_err(|e| e.to_string())
    })?;
    let latency = Latency::of(&mut outcome.rtt_ns).ok_or("no message was echoed in the window")?;
    Ok(Measured { outcome, latency })
}
