//! Command line of `wskecho-pecheck`.

use std::path::{Path, PathBuf};

use crate::checks::{self, Policy};
use crate::export_list::ExportList;
use crate::image::{self, ImageFacts};
use crate::pdb;

/// Usage text.
pub const USAGE: &str = "\
usage: wskecho-pecheck <image.sys> [options]
  --pdb <file.pdb>              also compare the PDB's GUID and age with the image
  --mingw-lib-dir <dir>         where lib{ntoskrnl,hal,netio}.a are
                                (default /usr/x86_64-w64-mingw32/lib)
  --import-lib <archive.a>      export list to use instead of the defaults (repeatable)
  --expect-import <module>!<name>         e.g. netio.sys!NmrRegisterClient (repeatable)
  --expect-guid <label>=<xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx>  GUID bytes in memory order
  --expect-bytes <label>=<hex>  byte string that must occur in the image (repeatable)
  --max-stack-frame <bytes>     no function's stack frame (prologue pushes + allocation, from
                                the x64 unwind information) may exceed this; offenders are
                                named by RVA, and by name from the --pdb file
Exit status: 0 all checks passed, 1 a check failed, 2 bad usage or unreadable input.";

/// Parsed command line.
#[derive(Debug, Default)]
pub struct Options {
    image: PathBuf,
    pdb: Option<PathBuf>,
    mingw_lib_dir: Option<PathBuf>,
    import_libs: Vec<PathBuf>,
    expected_imports: Vec<(String, String)>,
    expected_bytes: Vec<(String, Vec<u8>)>,
    max_stack_frame: Option<u32>,
}

/// Parses the arguments (without the program name).
///
/// # Errors
/// A message describing the bad argument.
pub fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options::default();
    let mut image = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--pdb" => options.pdb = Some(value()?.into()),
            "--mingw-lib-dir" => options.mingw_lib_dir = Some(value()?.into()),
            "--import-lib" => options.import_libs.push(value()?.into()),
            "--expect-import" => {
                let v = value()?;
                let (module, name) = v
                    .split_once('!')
                    .filter(|(m, n)| !m.is_empty() && !n.is_empty())
                    .ok_or_else(|| format!("--expect-import {v}: expected <module>!<name>"))?;
                options
                    .expected_imports
                    .push((module.to_owned(), name.to_owned()));
            }
            "--expect-guid" => {
                let v = value()?;
                let (label, guid) = labelled(&v, "--expect-guid")?;
                options.expected_bytes.push((label, guid_bytes(guid)?));
            }
            "--expect-bytes" => {
                let v = value()?;
                let (label, text) = labelled(&v, "--expect-bytes")?;
                options.expected_bytes.push((label, hex_bytes(text)?));
            }
            "--max-stack-frame" => {
                let v = value()?;
                let bytes = v
                    .parse()
                    .map_err(|_| format!("--max-stack-frame {v}: expected a number of bytes"))?;
                options.max_stack_frame = Some(bytes);
            }
            other if other.starts_with("--") => return Err(format!("unknown option {other}")),
            path if image.is_none() => image = Some(PathBuf::from(path)),
            extra => return Err(format!("unexpected argument {extra}")),
        }
    }
    options.image = image.ok_or("no image given")?;
    Ok(options)
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
        let dir = options
            .mingw_lib_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/usr/x86_64-w64-mingw32/lib"));
        ["ntoskrnl", "hal", "netio"]
            .iter()
            .map(|n| dir.join(format!("lib{n}.a")))
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
