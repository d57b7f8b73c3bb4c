//! Part 5: echo throughput and latency through the harness beside a minimal tokio echo
//! server, driven by the same closed-loop load generator on the same loopback in the same run.

use std::{net::SocketAddr, time::Duration};

use tokio::runtime::Runtime;
use wsk_harness::harness::Harness;

use super::{
    check_clean, check_contract, client_runtime, driver_stats, loopback_options, start, wait_until,
};
use crate::{
    baseline::BaselineServer,
    load::{Load, Outcome},
    report::{Part, Row},
    summary::{Latency, median},
};

/// Connection counts measured.
const CONNECTIONS: [usize; 3] = [1, 64, 512];
/// Message sizes measured.
const PAYLOADS: [usize; 2] = [64, 64 << 10];
/// Echoing before each measurement starts.
const WARM_UP: Duration = Duration::from_millis(300);
/// Length of each measurement.
const WINDOW: Duration = Duration::from_secs(1);
/// Measurements per cell and server, the two servers taking turns (the ratio is the median of
/// the rounds' ratios: the machine's other load drifts within seconds).
const ROUNDS: usize = 5;
/// Worker threads of the baseline server's runtime.
const BASELINE_WORKERS: usize = 2;

/// One cell measured on one server, over all rounds.
#[derive(Default)]
struct Measured {
    /// All rounds together (their windows added up).
    total: Outcome,
    /// MiB/s of each round.
    rounds: Vec<f64>,
}

impl Measured {
    fn add(&mut self, outcome: Outcome) {
        self.rounds.push(outcome.mib_per_s());
        self.total.messages += outcome.messages;
        self.total.bytes += outcome.bytes;
        self.total.window += outcome.window;
        self.total.rtt_ns.extend(outcome.rtt_ns);
    }

    fn describe(&mut self) -> Result<String, String> {
        let latency =
            Latency::of(&mut self.total.rtt_ns).ok_or("no message was echoed in the windows")?;
        Ok(format!(
            "{:.1} MiB/s, {:.0} msg/s, p50 {} µs, p99 {} µs",
            self.total.mib_per_s(),
            self.total.messages_per_s(),
            latency.p50 / 1000,
            latency.p99 / 1000
        ))
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
    // The same cell with Nagle's algorithm left on (NoDelay = 0).
    rows.extend(measure_servers(&runtime, false, &[(1, 64 << 10)])?);
    Ok(Part {
        name: "5-throughput".into(),
        title: "5 throughput".into(),
        rows,
    })
}

/// Starts a harness (`NoDelay` = `nodelay`) and a baseline server (both with `TCP_NODELAY` on
/// accepted connections or both without), measures `cells` (connections, payload) on each, and unloads the
/// harness, which must be clean.
fn measure_servers(
    runtime: &Runtime,
    nodelay: bool,
    cells: &[(usize, usize)],
) -> Result<Vec<Row>, String> {
    let options = loopback_options()?.with_no_delay(u32::from(nodelay))?;
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
        let mut on_harness = Measured::default();
        let mut on_baseline = Measured::default();
        for round in 0..ROUNDS {
            // Alternate which server goes first, so neither always runs on a warmer machine.
            if round % 2 == 0 {
                self.harness_round(runtime, connections, payload, &cell, &mut on_harness)?;
            }
            let outcome = run_cell(runtime, self.baseline.local_addr(), connections, payload)
                .map_err(|e| format!("baseline, {cell}: {e}"))?;
            on_baseline.add(outcome);
            if round % 2 == 1 {
                self.harness_round(runtime, connections, payload, &cell, &mut on_harness)?;
            }
        }
        let ratios: Vec<f64> = on_harness
            .rounds
            .iter()
            .zip(&on_baseline.rounds)
            .map(|(harness, baseline)| harness / baseline)
            .collect();
        let ratio = median(&ratios).ok_or("no ratio measured")?;
        let harness = on_harness.describe()?;
        let baseline = on_baseline.describe()?;
        eprintln!(
            "  {cell}: harness {harness}; baseline {baseline}; ratio {ratio:.2} (rounds {ratios:.2?})"
        );
        let mut note = format!(
            "median of {ROUNDS} rounds' ratios ({}); harness {harness}; baseline {baseline}",
            ratios
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if explain {
            let nodelay = if self.nodelay {
                "TCP_NODELAY on both servers' accepted sockets (the driver's NoDelay = 1, its default)"
            } else {
                "Nagle's algorithm on in both servers (the driver's NoDelay = 0)"
            };
            note = format!(
                "{note}. Closed loop per connection (send, read the whole echo, repeat); each \
                 round {WARM_UP:?} warm-up then {WINDOW:?} measured; MiB/s of echoed payload, \
                 latency percentiles over all rounds' messages; \
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

    /// One round on the harness; afterwards the driver has closed every connection of it.
    fn harness_round(
        &self,
        runtime: &Runtime,
        connections: usize,
        payload: usize,
        cell: &str,
        into: &mut Measured,
    ) -> Result<(), String> {
        let outcome = run_cell(runtime, self.harness_addr, connections, payload)
            .map_err(|e| format!("harness, {cell}: {e}"))?;
        into.add(outcome);
        check_contract(self.harness, cell)?;
        wait_until(
            "the driver to close the round's connections",
            Duration::from_secs(20),
            || driver_stats(self.harness).active == 0,
        )
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
) -> Result<Outcome, String> {
    runtime.block_on(async {
        let mut load = Load::start(addr, connections, payload)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        tokio::time::sleep(WARM_UP).await;
        load.start_measuring();
        tokio::time::sleep(WINDOW).await;
        load.finish(false).await.map_err(|e| e.to_string())
    })
}
