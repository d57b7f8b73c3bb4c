//! The checks run on a driver image; each yields a named pass/fail outcome with its reason.

use object::pe;

use crate::export_list::ExportList;
use crate::image::{ImageFacts, ImportName};
use crate::unwind::Frame;

/// Modules a WSK driver may import from.
pub const ALLOWED_MODULES: [&str; 3] = ["ntoskrnl.exe", "hal.dll", "netio.sys"];

/// What the image is checked against.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Export lists of the allowed modules (from the mingw-w64 import libraries).
    pub export_lists: Vec<ExportList>,
    /// File name the `CodeView` record must name (e.g. `wskecho.pdb`).
    pub pdb_name: String,
    /// GUID and age read from the PDB file itself, if it was given.
    pub pdb_signature: Option<([u8; 16], u32)>,
    /// Imports that must be present: (module, name).
    pub expected_imports: Vec<(String, String)>,
    /// Byte strings that must occur in the image: (label, bytes).
    pub expected_bytes: Vec<(String, Vec<u8>)>,
    /// Largest stack frame allowed for any function, in bytes (`None`: not checked).
    pub max_stack_frame: Option<u32>,
    /// Function names by RVA (from the PDB's procedures), for the stack frame check's report.
    pub function_names: Vec<(u32, String)>,
}

/// Result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Short name of the check.
    pub check: &'static str,
    /// `Ok(detail)` or `Err(reason)`.
    pub result: Result<String, String>,
}

impl Outcome {
    const fn new(check: &'static str, result: Result<String, String>) -> Self {
        Self { check, result }
    }

    /// Whether the check passed.
    #[must_use]
    pub const fn passed(&self) -> bool {
        self.result.is_ok()
    }
}

/// Runs every check on an image (`data` is the whole file, `facts` read from it).
#[must_use]
pub fn run(data: &[u8], facts: &ImageFacts, policy: &Policy) -> Vec<Outcome> {
    let mut outcomes = vec![
        Outcome::new("machine", machine(facts)),
        Outcome::new("subsystem", subsystem(facts)),
        Outcome::new("dll-characteristics", dll_characteristics(facts)),
        Outcome::new("entry-point", entry_point(facts)),
        Outcome::new("relocations", relocations(facts)),
        Outcome::new(
            "sections-not-wx",
            sections_not_writable_and_executable(facts),
        ),
        Outcome::new("import-modules", import_modules(facts)),
        Outcome::new("import-names", import_names(facts, policy)),
        Outcome::new("codeview-pdb", codeview(facts, policy)),
    ];
    for (module, name) in &policy.expected_imports {
        outcomes.push(Outcome::new(
            "expected-import",
            expected_import(facts, module, name),
        ));
    }
    for (label, bytes) in &policy.expected_bytes {
        outcomes.push(Outcome::new(
            "expected-bytes",
            expected_bytes(data, label, bytes),
        ));
    }
    if let Some(limit) = policy.max_stack_frame {
        outcomes.push(Outcome::new(
            "stack-frames",
            stack_frames(facts, &policy.function_names, limit),
        ));
    }
    outcomes
}

fn machine(facts: &ImageFacts) -> Result<String, String> {
    if facts.machine == pe::IMAGE_FILE_MACHINE_AMD64.0 {
        Ok("AMD64".into())
    } else {
        Err(format!(
            "machine {:#06x}, expected AMD64 (0x8664)",
            facts.machine
        ))
    }
}

fn subsystem(facts: &ImageFacts) -> Result<String, String> {
    if facts.subsystem == pe::IMAGE_SUBSYSTEM_NATIVE.0 {
        Ok("NATIVE".into())
    } else {
        Err(format!(
            "subsystem {}, expected NATIVE (1)",
            facts.subsystem
        ))
    }
}

fn dll_characteristics(facts: &ImageFacts) -> Result<String, String> {
    let required = [
        (
            pe::IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY.0,
            "FORCE_INTEGRITY",
        ),
        (pe::IMAGE_DLLCHARACTERISTICS_NX_COMPAT.0, "NX_COMPAT"),
        (pe::IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE.0, "DYNAMIC_BASE"),
    ];
    let missing: Vec<&str> = required
        .iter()
        .filter(|(flag, _)| facts.dll_characteristics & flag == 0)
        .map(|(_, name)| *name)
        .collect();
    if missing.is_empty() {
        Ok(format!(
            "{:#06x} has FORCE_INTEGRITY, NX_COMPAT, DYNAMIC_BASE",
            facts.dll_characteristics
        ))
    } else {
        Err(format!(
            "{:#06x} lacks {}",
            facts.dll_characteristics,
            missing.join(", ")
        ))
    }
}

/// The entry point must be `DriverEntry`. The image's own export table says where
/// `DriverEntry` is (the crate exports it by that name), so the check is self-contained and
/// fails if the linker picked another entry (e.g. a CRT stub) or the export is missing.
fn entry_point(facts: &ImageFacts) -> Result<String, String> {
    let Some((_, rva)) = facts.exports.iter().find(|(name, _)| name == "DriverEntry") else {
        return Err("DriverEntry is not exported, so the entry point cannot be confirmed".into());
    };
    if facts.entry_point != *rva {
        return Err(format!(
            "entry point {:#x} is not DriverEntry ({rva:#x})",
            facts.entry_point
        ));
    }
    match facts.section_at(*rva) {
        Some(s) if s.characteristics & pe::IMAGE_SCN_MEM_EXECUTE.0 != 0 => {
            Ok(format!("{rva:#x} = DriverEntry, in {}", s.name))
        }
        Some(s) => Err(format!(
            "DriverEntry {rva:#x} lies in non-executable section {}",
            s.name
        )),
        None => Err(format!("DriverEntry {rva:#x} lies outside every section")),
    }
}

/// Drivers are always loaded at a relocated address: the image must carry its base
/// relocations (`DYNAMIC_BASE` without them cannot be honoured).
fn relocations(facts: &ImageFacts) -> Result<String, String> {
    if facts.file_characteristics & pe::IMAGE_FILE_RELOCS_STRIPPED.0 != 0 {
        Err("relocations are stripped (IMAGE_FILE_RELOCS_STRIPPED)".into())
    } else if facts.base_relocations_size == 0 {
        Err("no base relocation directory".into())
    } else {
        Ok(format!(
            "{} bytes of base relocations",
            facts.base_relocations_size
        ))
    }
}

fn sections_not_writable_and_executable(facts: &ImageFacts) -> Result<String, String> {
    let wx = pe::IMAGE_SCN_MEM_WRITE.0 | pe::IMAGE_SCN_MEM_EXECUTE.0;
    let bad: Vec<&str> = facts
        .sections
        .iter()
        .filter(|s| s.characteristics & wx == wx)
        .map(|s| s.name.as_str())
        .collect();
    if bad.is_empty() {
        Ok(format!(
            "{} sections, none both writable and executable",
            facts.sections.len()
        ))
    } else {
        Err(format!("writable and executable: {}", bad.join(", ")))
    }
}

fn is_allowed(module: &str) -> bool {
    ALLOWED_MODULES
        .iter()
        .any(|m| m.eq_ignore_ascii_case(module))
}

fn import_modules(facts: &ImageFacts) -> Result<String, String> {
    let mut modules: Vec<&str> = facts.imports.iter().map(|i| i.module.as_str()).collect();
    modules.sort_unstable();
    modules.dedup();
    let bad: Vec<&str> = modules.iter().copied().filter(|m| !is_allowed(m)).collect();
    if bad.is_empty() {
        Ok(format!("from {}", modules.join(", ")))
    } else {
        Err(format!(
            "imports from {} (allowed: {})",
            bad.join(", "),
            ALLOWED_MODULES.join(", ")
        ))
    }
}

/// Exports newer than mingw-w64 10's import archives that the driver uses; the same names are
/// added to the generated import libraries by scripts/cross/gen-wdk-dir.
const NEWER_EXPORTS: &[(&str, &str)] = &[
    // Windows 10 version 2004 and later:
    // https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-exallocatepool2
    ("ntoskrnl.exe", "ExAllocatePool2"),
];

fn is_newer_export(module: &str, name: &str) -> bool {
    NEWER_EXPORTS
        .iter()
        .any(|(m, n)| m.eq_ignore_ascii_case(module) && *n == name)
}

fn import_names(facts: &ImageFacts, policy: &Policy) -> Result<String, String> {
    let mut problems = Vec::new();
    for import in facts.imports.iter().filter(|i| is_allowed(&i.module)) {
        let list = policy
            .export_lists
            .iter()
            .find(|l| l.module.eq_ignore_ascii_case(&import.module));
        match (&import.name, list) {
            (ImportName::Ordinal(ordinal), _) => {
                problems.push(format!("{}!#{ordinal} (by ordinal)", import.module));
            }
            (ImportName::Name(name), None) => {
                problems.push(format!(
                    "{}!{name} (no export list for {})",
                    import.module, import.module
                ));
            }
            (ImportName::Name(name), Some(list))
                if !list.contains(name) && !is_newer_export(&import.module, name) =>
            {
                problems.push(format!("{}!{name} (not exported)", import.module));
            }
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(format!(
            "{} imports, all in the modules' export lists",
            facts.imports.len()
        ))
    } else {
        Err(problems.join("; "))
    }
}

fn codeview(facts: &ImageFacts, policy: &Policy) -> Result<String, String> {
    let Some(cv) = &facts.codeview else {
        return Err("no CodeView (RSDS) debug record".into());
    };
    let file_name = cv.path.rsplit(['/', '\\']).next().unwrap_or_default();
    if !file_name.eq_ignore_ascii_case(&policy.pdb_name) {
        return Err(format!(
            "record names {}, expected {}",
            cv.path, policy.pdb_name
        ));
    }
    match policy.pdb_signature {
        None => Ok(format!("names {}", cv.path)),
        Some((guid, age)) if guid == cv.guid && age == cv.age => Ok(format!(
            "names {} and matches its GUID and age {age}",
            policy.pdb_name
        )),
        Some((guid, age)) => Err(format!(
            "the PDB has GUID {} age {age}, the image expects GUID {} age {}",
            hex(&guid),
            hex(&cv.guid),
            cv.age
        )),
    }
}

fn expected_import(facts: &ImageFacts, module: &str, name: &str) -> Result<String, String> {
    let found = facts.imports.iter().any(|i| {
        i.module.eq_ignore_ascii_case(module) && i.name == ImportName::Name(name.to_owned())
    });
    if found {
        Ok(format!("{module}!{name}"))
    } else {
        Err(format!("{module}!{name} is not imported"))
    }
}

fn expected_bytes(data: &[u8], label: &str, bytes: &[u8]) -> Result<String, String> {
    if !bytes.is_empty() && data.windows(bytes.len()).any(|w| w == bytes) {
        Ok(format!("{label} ({})", hex(bytes)))
    } else {
        Err(format!("{label} ({}) not found in the image", hex(bytes)))
    }
}

/// No function's stack frame (what its prologue pushes and allocates, from the unwind
/// information) may exceed `limit` bytes. Functions are named by RVA, and by name where the
/// PDB (`names`) or the image's export table (`DriverEntry`) has one.
fn stack_frames(facts: &ImageFacts, names: &[(u32, String)], limit: u32) -> Result<String, String> {
    let frames = facts
        .frames
        .as_ref()
        .map_err(|e| format!("unwind information unreadable: {e}"))?;
    let name_of = |rva: u32| {
        names
            .iter()
            .find(|(at, _)| *at == rva)
            .map(|(_, name)| name.as_str())
            .or_else(|| {
                facts
                    .exports
                    .iter()
                    .find(|(_, at)| *at == rva)
                    .map(|(name, _)| name.as_str())
            })
    };
    let describe = |frame: &Frame| {
        let name = name_of(frame.begin).map_or_else(
            || format!("function at RVA {:#x}", frame.begin),
            |name| format!("{name} (RVA {:#x})", frame.begin),
        );
        format!(
            "{name}: {} bytes (sub rsp {} + pushes {})",
            frame.bytes(),
            frame.allocation,
            frame.pushes
        )
    };
    let mut ranked: Vec<&Frame> = frames.iter().collect();
    ranked.sort_by(|a, b| b.bytes().cmp(&a.bytes()).then(a.begin.cmp(&b.begin)));
    let Some(largest) = ranked.first() else {
        return Err("no unwind information (exception directory): frames cannot be checked".into());
    };
    let over: Vec<String> = ranked
        .iter()
        .take_while(|f| f.bytes() > limit)
        .map(|f| describe(f))
        .collect();
    if over.is_empty() {
        Ok(format!(
            "{} functions, none above {limit} bytes; largest {}",
            frames.len(),
            describe(largest)
        ))
    } else {
        Err(format!(
            "{} of {} functions have a stack frame above {limit} bytes: {}",
            over.len(),
            frames.len(),
            over.join("; ")
        ))
    }
}

/// Lower-case hex without separators.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
