//! Merges the parts written by the measuring programs into one table.
//!
//!   bench-report [--expect PART]...
//!
//! Prints the table (Markdown) and writes `<bench dir>/bench.json` (the parts plus the machine
//! and commit they were measured on) and `<bench dir>/bench.md`. Exits 1 if an expected part is
//! missing or a part cannot be read.

use std::{fs, process::ExitCode};

use clap::{Arg, ArgAction, Command};
use serde::Serialize;
use wskecho_bench::report::{Part, bench_dir, read_parts, table};

#[derive(Serialize)]
struct Bench<'a> {
    commit: String,
    cpu: String,
    cores: usize,
    unix_time: u64,
    parts: &'a [Part],
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn main() -> ExitCode {
    // Bad usage exits with status 2 (clap).
    let matches = Command::new("bench-report")
        .about("Merges the parts written by the measuring programs into one table")
        .arg(
            Arg::new("expect")
                .long("expect")
                .value_name("PART")
                .action(ArgAction::Append)
                .help("A part that must be there (repeatable)"),
        )
        .get_matches();
    let expected: Vec<String> = matches
        .get_many::<String>("expect")
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let dir = bench_dir();
    let parts = match read_parts(&dir) {
        Ok(parts) => parts,
        Err(error) => {
            eprintln!("bench-report: reading {}/parts: {error}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    let missing: Vec<&String> = expected
        .iter()
        .filter(|name| !parts.iter().any(|part| &part.name == *name))
        .collect();
    let table = table(&parts);
    print!("{table}");
    let bench = Bench {
        commit: std::env::var("WSKECHO_BENCH_COMMIT").unwrap_or_default(),
        cpu: cpu_model(),
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs()),
        parts: &parts,
    };
    let written = serde_json::to_string_pretty(&bench)
        .map_err(std::io::Error::from)
        .and_then(|json| fs::write(dir.join("bench.json"), json))
        .and_then(|()| fs::write(dir.join("bench.md"), &table));
    if let Err(error) = written {
        eprintln!("bench-report: writing {}: {error}", dir.display());
        return ExitCode::FAILURE;
    }
    println!(
        "\nwritten: {}/bench.json, {}/bench.md",
        dir.display(),
        dir.display()
    );
    if missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("bench-report: missing parts: {missing:?} (their step failed; see above)");
        ExitCode::FAILURE
    }
}
