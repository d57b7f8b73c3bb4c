//! Parts 3–6 of `scripts/bench`, measured on the harness: allocations per echoed message,
//! memory per connection, echo throughput and latency beside a baseline server, Unload time.
//!
//!   harness-bench [PART]...      (PART: 3-allocations 4-memory 5-throughput 6-unload; default all)
//!
//! Writes each part to `<bench dir>/parts/<part>.json`; progress goes to stderr. A failing part
//! is reported and the others still run; the exit code is 1 if any failed, 2 on bad usage.

use std::{fs, process::ExitCode, time::Instant};

use clap::{Arg, ArgAction, Command, builder::PossibleValuesParser};

use wskecho_bench::{
    harness_parts::{allocations, memory, throughput, unload},
    report::{Part, bench_dir, write_part},
};

type Measure = fn() -> Result<Part, String>;

const PARTS: [(&str, Measure); 4] = [
    ("3-allocations", allocations::run),
    ("4-memory", memory::run),
    ("5-throughput", throughput::run),
    ("6-unload", unload::run),
];

/// File descriptors needed at once: the 1,000-connection Unload holds both ends of each
/// connection, plus the harness's and the runtime's own.
const FDS_NEEDED: u64 = 2 * 1000 + 256;

/// The soft limit on open files, from /proc/self/limits.
fn open_files_limit() -> Option<u64> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        Some(u64::MAX)
    } else {
        soft.parse().ok()
    }
}

fn main() -> ExitCode {
    // Bad usage (an unknown part among them) exits with status 2 (clap).
    let matches = Command::new("harness-bench")
        .about("Parts 3-6 of scripts/bench, measured on the harness")
        .arg(
            Arg::new("part")
                .value_name("PART")
                .action(ArgAction::Append)
                .value_parser(PossibleValuesParser::new(PARTS.map(|(name, _)| name)))
                .help("The parts to measure (default: all)"),
        )
        .get_matches();
    let chosen: Vec<String> = matches
        .get_many::<String>("part")
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    if let Some(limit) = open_files_limit().filter(|&limit| limit < FDS_NEEDED) {
        eprintln!(
            "harness-bench: the open-files limit is {limit}, the unload part needs about {FDS_NEEDED}: raise it (ulimit -n {FDS_NEEDED})"
        );
        return ExitCode::FAILURE;
    }
    let dir = bench_dir();
    let mut failed = Vec::new();
    for (name, measure) in PARTS {
        if !chosen.is_empty() && !chosen.iter().any(|c| c == name) {
            continue;
        }
        eprintln!("harness-bench: {name} ...");
        let start = Instant::now();
        let written = measure()
            .and_then(|part| write_part(&dir, &part).map_err(|e| format!("writing the part: {e}")));
        match written {
            Ok(path) => eprintln!(
                "harness-bench: {name} done in {:.1} s: {}",
                start.elapsed().as_secs_f64(),
                path.display()
            ),
            Err(error) => {
                eprintln!("harness-bench: {name} FAILED: {error}");
                failed.push(name);
            }
        }
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("harness-bench: failed parts: {failed:?}");
        ExitCode::FAILURE
    }
}
