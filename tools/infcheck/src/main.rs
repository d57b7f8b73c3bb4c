//! `wskecho-infcheck [--require-catalog] FILE.inf...`
//!
//! Checks each INF against wskecho's policy and checks that the files it lists under
//! `[SourceDisksFiles]` are next to it. A missing catalog (`CatalogFile`) is a warning, since
//! no catalog can be made without Windows' Inf2Cat; `--require-catalog` makes it an error.
//! Exit status: 0 all INF files pass, 1 a check failed, 2 usage or I/O error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Arg, ArgAction, Command, value_parser};
use wskecho_infcheck::finding::{Finding, Severity};
use wskecho_infcheck::policy::Policy;
use wskecho_infcheck::rules::Style;

/// The command line (clap's builder: its derive's `#[allow(clippy::restriction)]` clashes with
/// the workspace's forbidden lints). Bad usage exits with status 2, `--help` with 0.
fn command() -> Command {
    Command::new("wskecho-infcheck")
        .about("Checks wskecho's INF files the way InfVerif would, on what can be checked without Windows")
        .after_help("Exit status: 0 all INF files pass, 1 a check failed, 2 usage or I/O error.")
        .arg(
            Arg::new("require-catalog")
                .long("require-catalog")
                .action(ArgAction::SetTrue)
                .help("Make a missing catalog (CatalogFile) an error rather than a warning"),
        )
        .arg(
            Arg::new("inf")
                .value_name("FILE.inf")
                .required(true)
                .num_args(1..)
                .value_parser(value_parser!(PathBuf))
                .help("The INF files to check"),
        )
}

fn main() -> ExitCode {
    let matches = command().get_matches();
    let require_catalog = matches.get_flag("require-catalog");
    let paths: Vec<&PathBuf> = matches.get_many("inf").into_iter().flatten().collect();
    let policy = Policy::wskecho();
    let (mut passed, mut failed) = (0_usize, 0_usize);
    for path in paths {
        match check_file(path, &policy, require_catalog) {
            Ok(true) => passed += 1,
            Ok(false) => failed += 1,
            Err(error) => {
                eprintln!("{}: cannot read: {error}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    println!("infcheck: {passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Checks one file and prints its findings; `Ok(true)` when it has no error.
fn check_file(path: &Path, policy: &Policy, require_catalog: bool) -> std::io::Result<bool> {
    let bytes = std::fs::read(path)?;
    let report = wskecho_infcheck::check_bytes(&bytes, policy);
    let mut findings = report.findings;
    let directory = path.parent().unwrap_or_else(|| Path::new("."));
    for file in &report.source_files {
        if !directory.join(file).is_file() {
            findings.push(Finding::error(
                "package.missing-file",
                None,
                format!(
                    "`{file}` is listed under [SourceDisksFiles] but is not in {}",
                    directory.display()
                ),
            ));
        }
    }
    if let Some(catalog) = report
        .catalog
        .filter(|name| !directory.join(name).is_file())
    {
        let message = format!(
            "catalog `{catalog}` is not in the package: create and sign it on Windows (Inf2Cat + signtool, docs/installing.md) before pnputil can stage the INF"
        );
        findings.push(if require_catalog {
            Finding::error("package.catalog", None, message)
        } else {
            Finding::warning("package.catalog", None, message)
        });
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    for finding in &findings {
        println!("{}: {finding}", path.display());
    }
    let style = match report.style {
        Some(Style::Primitive) => "primitive service INF",
        Some(Style::Device) => "root-enumerated device INF",
        None => "install style unknown",
    };
    if errors == 0 {
        println!(
            "{}: ok ({style}, {} warning(s))",
            path.display(),
            findings.len()
        );
    } else {
        println!("{}: FAILED ({style}, {errors} error(s))", path.display());
    }
    Ok(errors == 0)
}
