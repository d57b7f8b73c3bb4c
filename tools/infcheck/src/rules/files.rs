//! File rules: every copied file is listed in `[SourceDisksFiles]` on a disk of
//! `[SourceDisksNames]` (InfVerif 1230, 1273), every copy section has a destination
//! (1275), and the catalog is not listed as a source file (1213).

use super::context::Context;
use super::parse_number;
use super::style::InstallRoot;
use crate::parse::{Entry, Section};

/// DIRID of the driver store.
const DRIVER_STORE: u32 = 13;

/// Where a copy section's files go: a DIRID and an optional subdirectory.
struct Target {
    dirid: Option<u32>,
    subdir: String,
}

/// A file an install section copies, and the DIRID it lands in.
pub struct CopiedFile {
    /// Destination file name.
    pub name: String,
    /// DIRID of the destination (13 = driver store, 12 = drivers).
    pub dirid: Option<u32>,
    /// Line of the CopyFiles entry or file line.
    pub line: usize,
}

/// Checks the files of one install root and returns what it copies.
pub fn check_root(cx: &mut Context<'_>, root: &InstallRoot<'_>) -> Vec<CopiedFile> {
    let inf = cx.inf;
    let mut copied = Vec::new();
    for directive in root.install.entries_with_key("CopyFiles") {
        for field in directive.fields() {
            if let Some(file) = field.strip_prefix('@') {
                let target = default_destination(cx);
                copied.push(checked_file(cx, file, &target, directive.line));
            } else if let Some(section) = inf.section(&field) {
                let target = destination(cx, section);
                for line in &section.entries {
                    let name = file_name(line);
                    if name.is_empty() {
                        continue;
                    }
                    let source = line.field(1);
                    if target.dirid == Some(DRIVER_STORE)
                        && !source.is_empty()
                        && !source.eq_ignore_ascii_case(&name)
                    {
                        cx.findings.error(
                            "files.driver-store",
                            Some(line.line),
                            format!("`{source}` is copied as `{name}` into DIRID 13: files in the driver store keep their names (InfVerif 1100)"),
                        );
                    }
                    copied.push(checked_file(cx, &name, &target, line.line));
                }
            }
            // A missing section is reported by the reference rule.
        }
    }
    copied
}

/// Reports a listed catalog file (once per INF).
pub fn check_catalog_not_listed(cx: &mut Context<'_>) {
    let inf = cx.inf;
    for section in inf.sections.iter().filter(|s| is_source_files(&s.name)) {
        for entry in &section.entries {
            let name = entry.key.clone().unwrap_or_else(|| entry.field(0));
            if std::path::Path::new(&name)
                .extension()
                .is_some_and(|ext| ext.eq_ignore_ascii_case("cat"))
            {
                cx.findings.error(
                    "files.catalog-listed",
                    Some(entry.line),
                    format!("catalog `{name}` listed under [{}]: name it only in CatalogFile (InfVerif 1213)", section.name),
                );
            }
        }
    }
}

/// The destination file name of a copy-section line (`dest[,source[,,flags]]`).
fn file_name(line: &Entry) -> String {
    // `a = b` is not a file line; its key is reported as written so the user sees it.
    line.key.clone().unwrap_or_else(|| line.field(0))
}

fn is_source_files(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "sourcedisksfiles" || lower.starts_with("sourcedisksfiles.")
}

fn checked_file(cx: &mut Context<'_>, name: &str, target: &Target, line: usize) -> CopiedFile {
    let arch_suffix = source_suffix(cx.policy.architecture);
    let inf = cx.inf;
    let listing = [
        "SourceDisksFiles".to_owned(),
        format!("SourceDisksFiles.{arch_suffix}"),
    ]
    .iter()
    .filter_map(|section| inf.section(section))
    .flat_map(|section| &section.entries)
    .find(|entry| {
        entry
            .key
            .as_deref()
            .is_some_and(|key| key.eq_ignore_ascii_case(name))
    });
    match listing {
        None => cx.findings.error(
            "files.source-missing",
            Some(line),
            format!("`{name}` is copied but not listed under [SourceDisksFiles] (InfVerif 1230)"),
        ),
        Some(entry) => {
            let disk = entry.field(0);
            let known = [
                "SourceDisksNames".to_owned(),
                format!("SourceDisksNames.{arch_suffix}"),
            ]
            .iter()
            .filter_map(|section| inf.section(section))
            .flat_map(|section| &section.entries)
            .any(|disk_entry| disk_entry.key.as_deref() == Some(disk.as_str()));
            if !known {
                cx.findings.error(
                    "files.disk-missing",
                    Some(entry.line),
                    format!("`{name}` uses disk id `{disk}`, which [SourceDisksNames] does not list (InfVerif 1273)"),
                );
            }
            let source_subdir = entry.field(1);
            if target.dirid == Some(DRIVER_STORE) && !same_dir(&source_subdir, &target.subdir) {
                cx.findings.error(
                    "files.driver-store",
                    Some(line),
                    format!(
                        "`{name}` comes from subdirectory `{source_subdir}` but goes to `{}` of DIRID 13: the driver store keeps the package layout (InfVerif 1100)",
                        target.subdir
                    ),
                );
            }
        }
    }
    CopiedFile {
        name: name.to_owned(),
        dirid: target.dirid,
        line,
    }
}

/// Whether two INF subdirectory fields name the same directory (`\\` or `/`, any case,
/// leading/trailing separators ignored).
fn same_dir(a: &str, b: &str) -> bool {
    let normal = |text: &str| {
        text.replace('/', "\\")
            .trim_matches('\\')
            .to_ascii_lowercase()
    };
    normal(a) == normal(b)
}

/// `NTamd64` → `amd64` (the decoration of `SourceDisks*` sections).
fn source_suffix(architecture: &str) -> String {
    let lower = architecture.to_ascii_lowercase();
    lower.strip_prefix("nt").unwrap_or(&lower).to_owned()
}

fn default_destination(cx: &mut Context<'_>) -> Target {
    let inf = cx.inf;
    let entry = inf
        .section("DestinationDirs")
        .and_then(|dirs| dirs.entry("DefaultDestDir"));
    let target = Target {
        dirid: entry.and_then(|entry| parse_number(&entry.field(0))),
        subdir: entry.map(|entry| entry.field(1)).unwrap_or_default(),
    };
    if target.dirid.is_none() {
        cx.findings.error(
            "files.destination-missing",
            entry.map(|e| e.line),
            "single-file CopyFiles=@file needs a numeric DefaultDestDir in [DestinationDirs] (InfVerif 1275)",
        );
    }
    target
}

fn destination(cx: &mut Context<'_>, copy_section: &Section) -> Target {
    let inf = cx.inf;
    let dirs = inf.section("DestinationDirs");
    let entry = dirs
        .and_then(|dirs| dirs.entry(&copy_section.name))
        .or_else(|| dirs.and_then(|dirs| dirs.entry("DefaultDestDir")));
    let target = Target {
        dirid: entry.and_then(|entry| parse_number(&entry.field(0))),
        subdir: entry.map(|entry| entry.field(1)).unwrap_or_default(),
    };
    if target.dirid.is_none() {
        cx.findings.error(
            "files.destination-missing",
            Some(copy_section.line),
            format!(
                "[{}] has no numeric destination in [DestinationDirs] and there is no DefaultDestDir (InfVerif 1275)",
                copy_section.name
            ),
        );
    }
    target
}
