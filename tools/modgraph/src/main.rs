//! `wskecho-modgraph SRC_DIR…`: prints each crate's module graph (`module -> dependencies`) and
//! fails naming the first module cycle found.

use std::{path::PathBuf, process::ExitCode};

use clap::{Arg, ArgAction, Command, value_parser};
use wskecho_modgraph::{crate_graph, find_cycle};

fn main() -> ExitCode {
    let matches = Command::new("wskecho-modgraph")
        .about("Prints a crate's module graph and fails on a module cycle")
        .arg(
            Arg::new("src")
                .help("a crate's src directory")
                .required(true)
                .action(ArgAction::Append)
                .value_parser(value_parser!(PathBuf)),
        )
        .get_matches();
    let mut status = ExitCode::SUCCESS;
    for src in matches.get_many::<PathBuf>("src").into_iter().flatten() {
        let graph = match crate_graph(src) {
            Ok(graph) => graph,
            Err(error) => {
                eprintln!("wskecho-modgraph: error: {error}");
                return ExitCode::FAILURE;
            }
        };
        println!("{}:", src.display());
        for (module, dependencies) in &graph {
            let list: Vec<&str> = dependencies.iter().map(String::as_str).collect();
            println!("  {module} -> {}", list.join(", "));
        }
        if let Some(cycle) = find_cycle(&graph) {
            eprintln!(
                "wskecho-modgraph: {}: module cycle {}",
                src.display(),
                cycle.join(" -> ")
            );
            status = ExitCode::FAILURE;
        }
    }
    status
}
