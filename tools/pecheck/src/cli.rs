//! Command line of `wskecho-pecheck`, parsed with `clap`.

use std::path::{Path, PathBuf};

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Command, value_parser};

use crate::checks::{self, Policy};
use crate::export_list::ExportList;
use crate::image::{self, ImageFacts};
use crate::pdb;

/// Parsed command line.
#[derive(Debug)]
pub struct Options {
    image: PathBuf,
    pdb: Option<PathBuf>,
    mingw_lib_dir: PathBuf,
    import_libs: Vec<PathBuf>,
    expected_imports: Vec<(String, String)>,
    /// `--expect-guid` and `--expect-bytes` values, in command-line order.
    expected_bytes: Vec<(String, Vec<u8>)>,
    max_stack_frame: Option<u32>,
}

/// The command line's grammar and help. Built with clap's builder rather than its derive,
/// whose `#[allow(clippy::restriction)]` clashes with the workspace's forbidden lints.
fn command() -> Command {
    let option = |name: &'static str, value: &'static str, help: &'static str| {
        Arg::new(name).long(name).value_name(value).help(help)
    };
    Command::new("wskecho-pecheck")
        .about("Checks a cross-built driver image (see docs/building.md)")
        .args_override_self(true)
        .after_help(
            "Exit status: 0 all checks passed, 1 a check failed, 2 bad usage or unreadable input.",
        )
        .arg(
            Arg::new("image")
                .value_name("image.sys")
                .required(true)
                .value_parser(value_parser!(PathBuf))
                .help("The driver image to check"),
        )
        .arg(
            option(
                "pdb",
                "file.pdb",
                "Also compare the PDB's GUID and age with the image",
            )
            .value_parser(value_parser!(PathBuf)),
        )
        .arg(
            option(
                "mingw-lib-dir",
                "dir",
                "Where lib{ntoskrnl,hal,netio}.a are",
            )
            .value_parser(value_parser!(PathBuf))
            .default_value("/usr/x86_64-w64-mingw32/lib"),
        )
        .arg(
            option(
                "import-lib",
                "archive.a",
                "Export list to use instead of the defaults (repeatable)",
            )
            .value_parser(value_parser!(PathBuf))
            .action(ArgAction::Append),
        )
        .arg(
            option(
                "expect-import",
                "module>!<name",
                "An import the image must have, e.g. netio.sys!NmrRegisterClient (repeatable)",
            )
            .value_parser(expected_import)
            .action(ArgAction::Append),
        )
        .arg(
            option(
                "expect-guid",
                "label>=<xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
                "A GUID whose bytes (in memory order) must occur in the image (repeatable)",
            )
            .value_parser(expected_guid)
            .action(ArgAction::Append),
        )
        .arg(
            option(
                "expect-bytes",
                "label>=<hex",
                "A byte string that must occur in the image (repeatable)",
            )
            .value_parser(expected_hex)
            .action(ArgAction::Append),
        )
        .arg(
            option(
                "max-stack-frame",
                "bytes",
                "No function's stack frame (prologue pushes + allocation, from the x64 unwind \
                 information) may exceed this; offenders are named by RVA, and by name from the \
                 --pdb file",
            )
            .value_parser(frame_limit),
        )
}

/// Why the command line yields nothing to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// `--help` was given: the text to print (exit status 0).
    Help(String),
    /// Bad usage (exit status 2): what is wrong.
    Usage(String),
}

/// The short usage line and where to find more, printed after a usage error.
#[must_use]
pub fn usage() -> String {
    format!(
        "{}\nFor more information, try '--help'.",
        command().render_usage()
    )
}

/// Parses the arguments (without the program name).
///
/// # Errors
/// [`Stop::Help`] for `--help`, else [`Stop::Usage`] with a message describing the bad
/// argument.
pub fn parse(args: &[String]) -> Result<Options, Stop> {
    let program = std::iter::once("wskecho-pecheck");
    let mut matches = command()
        .try_get_matches_from(program.chain(args.iter().map(String::as_str)))
        .map_err(|e| stop(&e))?;
    let all = |id: &str| -> Vec<(usize, (String, Vec<u8>))> {
        let indices = matches.indices_of(id).into_iter().flatten();
        indices
            .zip(matches.get_many(id).into_iter().flatten().cloned())
            .collect()
    };
    // The two byte-string options form one list, in the order they were given.
    let mut expected = all("expect-guid");
    expected.extend(all("expect-bytes"));
    expected.sort_by_key(|(index, _)| *index);
    Ok(Options {
        image: matches.remove_one("image").unwrap_or_default(),
        pdb: matches.remove_one("pdb"),
        mingw_lib_dir: matches.remove_one("mingw-lib-dir").unwrap_or_default(),
        import_libs: matches
            .remove_many("import-lib")
            .into_iter()
            .flatten()
            .collect(),
        expected_imports: matches
            .remove_many("expect-import")
            .into_iter()
            .flatten()
            .collect(),
        expected_bytes: expected.into_iter().map(|(_, value)| value).collect(),
        max_stack_frame: matches.remove_one("max-stack-frame"),
    })
}

/// A `clap` error in the words the tests and scripts know.
fn stop(error: &clap::Error) -> Stop {
    let context = |kind| match error.get(kind) {
        Some(ContextValue::String(value)) => value.clone(),
        _ => String::new(),
    };
    let message = match error.kind() {
        ErrorKind::DisplayHelp => return Stop::Help(error.render().to_string()),
        ErrorKind::UnknownArgument => {
            let argument = context(ContextKind::InvalidArg);
            if argument.starts_with('-') {
                format!("unknown option {argument}")
            } else {
                format!("unexpected argument {argument}")
            }
        }
        ErrorKind::MissingRequiredArgument => "no image given".to_owned(),
        // The value parsers below wrote the message.
        ErrorKind::ValueValidation => std::error::Error::source(error)
            .map_or_else(|| error.kind().to_string(), ToString::to_string),
        ErrorKind::InvalidValue if context(ContextKind::InvalidValue).is_empty() => {
            let argument = context(ContextKind::InvalidArg);
            let option = argument.split(' ').next().unwrap_or_default();
            format!("{option} needs a value")
        }
        _ => error
            .render()
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_owned(),
    };
    Stop::Usage(message)
}

fn expected_import(value: &str) -> Result<(String, String), String> {
    value
        .split_once('!')
        .filter(|(module, name)| !module.is_empty() && !name.is_empty())
        .map(|(module, name)| (module.to_owned(), name.to_owned()))
        .ok_or_else(|| format!("--expect-import {value}: expected <module>!<name>"))
}

fn expected_guid(value: &str) -> Result<(String, Vec<u8>), String> {
    let (label, guid) = labelled(value, "--expect-guid")?;
    Ok((label, guid_bytes(guid)?))
}

fn expected_hex(value: &str) -> Result<(String, Vec<u8>), String> {
    let (label, text) = labelled(value, "--expect-bytes")?;
    Ok((label, hex_bytes(text)?))
}

fn frame_limit(value: &str) -> Result<u32, String> {
    value
        .parse()
        .map_err(|_| format!("--max-stack-frame {value}: expected a number of bytes"))
}

fn labelled<'a>(value: &'a str, option: &str) -> Result<(String, &'a str), String> {
    value
        .split_once('=')
        .filter(|(label, _)| !label.is_empty())
        .map(|(label, rest)| (label.to_owned(), rest))
        .ok_or_else(|| format!("{option} {value}: expected <label>=<value>"))
}

/// Bytes of a hex string (pairs of hex digits, no separators).
///
/// # Errors
/// A message if the text is empty, has an odd length or a non-hex digit.
pub fn hex_bytes(text: &str) -> Result<Vec<u8>, String> {
    if text.is_empty() || !text.len().is_multiple_of(2) || !text.is_ascii() {
        return Err(format!("{text:?} is not an even number of hex digits"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|e| format!("{text:?}: {e}")))
        .collect()
}

/// In-memory bytes of a GUID written as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`: the first
/// three fields are little-endian integers, the last eight bytes are stored as written.
///
/// # Errors
/// A message if the text is not in that form.
pub fn guid_bytes(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim_start_matches('{').trim_end_matches('}');
    let fields: Vec<&str> = text.split('-').collect();
    let lengths: Vec<usize> = fields.iter().map(|f| f.len()).collect();
    if lengths != [8, 4, 4, 4, 12] {
        return Err(format!(
            "{text:?} is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
        ));
    }
    let mut bytes = Vec::with_capacity(16);
    for (i, field) in fields.iter().enumerate() {
        let mut field_bytes = hex_bytes(field)?;
        if i < 3 {
            field_bytes.reverse();
        }
        bytes.extend(field_bytes);
    }
    Ok(bytes)
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Runs the checks and prints one line per check; returns the process exit status.
#[must_use]
pub fn run(options: &Options) -> i32 {
    match run_checks(options) {
        Ok(outcomes) => {
            let failed = outcomes.iter().filter(|o| !o.passed()).count();
            for outcome in &outcomes {
                match &outcome.result {
                    Ok(detail) => println!("PASS {}: {detail}", outcome.check),
                    Err(reason) => println!("FAIL {}: {reason}", outcome.check),
                }
            }
            println!(
                "pecheck: {}: {} checks, {failed} failed",
                options.image.display(),
                outcomes.len()
            );
            i32::from(failed > 0)
        }
        Err(message) => {
            eprintln!("pecheck: error: {message}");
            2
        }
    }
}

fn run_checks(options: &Options) -> Result<Vec<checks::Outcome>, String> {
    let data = read(&options.image)?;
    let facts =
        ImageFacts::parse(&data).map_err(|e| format!("{}: {e}", options.image.display()))?;
    let archives = if options.import_libs.is_empty() {
        ["ntoskrnl", "hal", "netio"]
            .iter()
            .map(|n| options.mingw_lib_dir.join(format!("lib{n}.a")))
            .collect()
    } else {
        options.import_libs.clone()
    };
    let export_lists = archives
        .iter()
        .map(|path| {
            ExportList::from_archive(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let pdb_name = options
        .image
        .file_stem()
        .map(|stem| format!("{}.pdb", stem.to_string_lossy()))
        .unwrap_or_default();
    let pdb = match &options.pdb {
        Some(path) => Some((path, read(path)?)),
        None => None,
    };
    let pdb_signature = match &pdb {
        Some((path, bytes)) => {
            Some(image::pdb_signature(bytes).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    let function_names = match &pdb {
        Some((path, bytes)) if options.max_stack_frame.is_some() => {
            function_names(bytes, &facts).unwrap_or_else(|e| {
                // Names only help to read a failure; the check itself needs none.
                eprintln!(
                    "pecheck: note: no function names from {}: {e}",
                    path.display()
                );
                Vec::new()
            })
        }
        _ => Vec::new(),
    };
    let policy = Policy {
        export_lists,
        pdb_name,
        pdb_signature,
        expected_imports: options.expected_imports.clone(),
        expected_bytes: options.expected_bytes.clone(),
        max_stack_frame: options.max_stack_frame,
        function_names,
    };
    Ok(checks::run(&data, &facts, &policy))
}

/// The PDB's procedures by RVA (section numbers are 1-based indexes into the image's table).
fn function_names(pdb: &[u8], facts: &ImageFacts) -> Result<Vec<(u32, String)>, String> {
    Ok(pdb::procedures(pdb)?
        .into_iter()
        .filter_map(|procedure| Some((procedure.rva(&facts.sections)?, procedure.name)))
        .collect())
}
