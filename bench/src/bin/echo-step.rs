//! Part 2: instructions the core executes per echo cycle, counted with callgrind.
//!
//!   echo-step                          measure (runs itself under valgrind), write `2-echo-step`
//!   echo-step --child CYCLES CHUNK     the measured program: one connection, CYCLES cycles
//!
//! Each measurement runs the child under `valgrind --tool=callgrind --toggle-collect=F`, F
//! being one of the entries every call from the WSK double into the core goes through (module
//! `wskecho_bench::echo_step`), so only instructions inside the core and the double functions
//! it calls are collected. Those calls, and the core's own memset/memcpy, are subtracted
//! (modules `wskecho_bench::callgrind`, `wskecho_bench::echo_count`). The per-cycle figure is
//! the difference between runs of N2 and N1 cycles divided by N2 − N1, so setup and
//! first-time effects cancel out.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use wskecho_bench::{
    callgrind,
    echo_count::{Count, PerCycle},
    echo_step::Echo,
    report::{Goal, Part, Row, bench_dir, write_part},
};

/// Echo buffer size of the measured connection (the core's cost does not depend on it; a
/// small buffer keeps the double's data fill cheap under valgrind).
const BUFFER_SIZE: u32 = 4096;
/// Cycles of the shorter and the longer run.
const N1: u64 = 200;
const N2: u64 = 1000;
/// Bytes per receive completion in the partial-receive runs.
const PARTIAL: usize = 1000;

fn child(cycles: u64, chunk: usize) -> Result<(), String> {
    let mut echo = Echo::start(BUFFER_SIZE).map_err(|e| e.to_string())?;
    for _ in 0..cycles {
        echo.cycle(chunk).map_err(|e| e.to_string())?;
    }
    let (received, sent) = echo.totals();
    if received != sent || echo.bytes_sent() != sent {
        return Err(format!(
            "received {received}, sent {sent}, core counted {}",
            echo.bytes_sent()
        ));
    }
    echo.teardown().map_err(|e| e.to_string())
}

fn measure(dir: &Path, entry: &str, cycles: u64, chunk: usize) -> Result<Count, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let out = dir.join(format!("callgrind.{entry}.{cycles}.{chunk}.out"));
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(format!(
            "--toggle-collect=wskecho_bench::echo_step::{entry}*"
        ))
        .arg("--quiet")
        .arg(&exe)
        .args(["--child", &cycles.to_string(), &chunk.to_string()])
        .status()
        .map_err(|e| format!("running valgrind: {e}"))?;
    if !status.success() {
        return Err(format!(
            "valgrind (callgrind) of {} failed: {status}",
            exe.display()
        ));
    }
    let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let profile = callgrind::parse(&text).map_err(|e| format!("{}: {e}", out.display()))?;
    let total = profile.total();
    if total == 0 {
        return Err(format!(
            "{}: nothing collected: no function matched the toggle {entry}",
            out.display()
        ));
    }
    let count = Count::of(&profile);
    if count.shared_copy != 0 {
        return Err(format!(
            "{}: {} instructions of memset/memcpy under functions both the core and the WSK \
             double call: whose they are cannot be told",
            out.display(),
            count.shared_copy
        ));
    }
    Ok(count)
}

/// Calls into the double per echo cycle, half of them per completion: the completion's
/// `schedule`, and the WSK call its work item makes (`send` after the receive completion,
/// `receive` after the send completion).
const CALLS_PER_CYCLE: u64 = 4;

/// The same for one completion's entry, as callgrind reports it: `CALLS_PER_CYCLE / 2`, plus
/// the other half's `schedule`. Both completions reach the double's `schedule` through the
/// same core function (`Socket::schedule`), and callgrind keeps counting calls on an arc it
/// created while collecting also when collection is toggled off (their cost is not counted).
const CALLS_PER_HALF_CYCLE: u64 = CALLS_PER_CYCLE / 2 + 1;

#[allow(clippy::cast_precision_loss)] // instruction counts far below 2^52
fn run(dir: &Path) -> Result<Vec<Row>, String> {
    match Command::new("valgrind").arg("--version").output() {
        Ok(output) if output.status.success() => {}
        _ => return Err("valgrind not found (Debian: apt-get install valgrind)".into()),
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let full = usize::MAX;
    let PerCycle {
        core,
        double,
        copy,
        fixed,
    } = PerCycle::from_runs(
        (N1, measure(dir, "core_step", N1, full)?),
        (N2, measure(dir, "core_step", N2, full)?),
        CALLS_PER_CYCLE,
    )?;
    let partial = PerCycle::from_runs(
        (N1, measure(dir, "core_step", N1, PARTIAL)?),
        (N2, measure(dir, "core_step", N2, PARTIAL)?),
        CALLS_PER_CYCLE,
    )?;
    let received = PerCycle::from_runs(
        (N1, measure(dir, "core_step_received", N1, full)?),
        (N2, measure(dir, "core_step_received", N2, full)?),
        CALLS_PER_HALF_CYCLE,
    )?;
    let sent = PerCycle::from_runs(
        (N1, measure(dir, "core_step_sent", N1, full)?),
        (N2, measure(dir, "core_step_sent", N2, full)?),
        CALLS_PER_HALF_CYCLE,
    )?;
    let setup = measure(dir, "core_setup", N1, full)?;
    let teardown = measure(dir, "core_teardown", N1, full)?;
    let how = format!("callgrind Ir, ({N2} cycles - {N1} cycles) / {}", N2 - N1);
    Ok(vec![
        Row::new(
            "core per echo cycle (full-buffer receive)",
            core,
            "instructions",
        )
        .with_goal(Goal::Below(1000.0))
        .with_note(format!(
            "receive completion -> send -> send completion -> receive; {how}; \
             WSK double excluded; memset/memcpy {copy:.0}; fixed part {fixed:.0}"
        )),
        Row::new(
            "of which: receive completion -> send issued",
            received.core,
            "instructions",
        )
        .with_note("full-buffer receive: the ring is full, no next receive yet"),
        Row::new(
            "of which: send completion -> next receive issued",
            sent.core,
            "instructions",
        )
        .with_note("the ring is empty again: the receive covers the whole buffer"),
        Row::new(
            "core per echo cycle (partial receive)",
            partial.core,
            "instructions",
        )
        .with_note(format!(
            "{PARTIAL} of {BUFFER_SIZE} bytes per receive: next receive issued with the send"
        )),
        Row::new(
            "WSK double per echo cycle (excluded)",
            double,
            "instructions",
        )
        .with_note("the recording double's schedule, receive and send (checking and recording each call under a std mutex)"),
        Row::new(
            "core: attach, listener open, accept, first receive",
            setup.core as f64,
            "instructions",
        )
        .with_note(format!(
            "once per run; excluded: the double's calls ({}: pool allocations, log lines, \
             recording), zeroing the {BUFFER_SIZE}-byte echo buffer ({} in memset)",
            setup.double, setup.copy
        )),
        Row::new(
            "core: detach, abortive close, cleanup",
            teardown.core as f64,
            "instructions",
        )
        .with_note(format!(
            "once per run; excluded: the double's calls ({}: frees, log lines, recording), \
             memset/memcpy ({})",
            teardown.double, teardown.copy
        )),
    ])
}

fn main() {
    // `--child CYCLES CHUNK`: the measured process that `measure` runs under valgrind. Bad usage
    // exits with status 2 (clap).
    let matches = clap::Command::new("echo-step")
        .about("Part 2: instructions the core executes per echo cycle, counted with callgrind")
        .arg(
            clap::Arg::new("child")
                .long("child")
                .num_args(2)
                .value_names(["CYCLES", "CHUNK"])
                .value_parser(clap::value_parser!(usize))
                .help("Run the measured echo loop (started by echo-step itself)"),
        )
        .get_matches();
    let child_args: Vec<usize> = matches
        .get_many::<usize>("child")
        .into_iter()
        .flatten()
        .copied()
        .collect();
    if let [cycles, chunk] = child_args[..] {
        if let Err(error) = child(u64::try_from(cycles).unwrap_or(u64::MAX), chunk) {
            eprintln!("echo-step child: {error}");
            std::process::exit(1);
        }
        return;
    }
    let dir: PathBuf = bench_dir().join("echo-step");
    let rows = match run(&dir) {
        Ok(rows) => rows,
        Err(error) => {
            eprintln!("echo-step: {error}");
            std::process::exit(1);
        }
    };
    for row in &rows {
        println!("{:>10.1} {}  {}", row.value, row.unit, row.metric);
    }
    let part = Part {
        name: "2-echo-step".into(),
        title: "2 echo step".into(),
        rows,
    };
    match write_part(&bench_dir(), &part) {
        Ok(path) => println!("echo-step: wrote {}", path.display()),
        Err(error) => {
            eprintln!("echo-step: writing the part: {error}");
            std::process::exit(1);
        }
    }
}
