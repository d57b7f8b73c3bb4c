//! Export lists of kernel modules, read from import libraries (`lib<name>.a` of mingw-w64).
//!
//! This is the independent reference for the import check: the driver is linked against
//! import libraries generated at build time, so the check reads the original archives.
//! Both kinds of archive members are understood: GNU dlltool objects (mingw-w64: one COFF
//! object per export defining `__imp_<name>`, and a tail object whose `.idata$7` section holds
//! the module name) and short import objects (MSVC and LLVM import libraries).

use std::collections::BTreeSet;

use object::read::archive::ArchiveFile;
use object::read::coff::{CoffFile, ImportFile, ImportName};
use object::read::{Object, ObjectSection, ObjectSymbol};

/// The names one module exports, according to its import library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportList {
    /// Module name as recorded in the import library (e.g. `netio.sys`).
    pub module: String,
    /// Exported names (functions and data).
    pub names: BTreeSet<String>,
}

impl ExportList {
    /// Reads an import library archive.
    ///
    /// # Errors
    /// A message if the archive is unreadable, names no module, names several modules, or
    /// has no exports.
    pub fn from_archive(data: &[u8]) -> Result<Self, String> {
        let archive = ArchiveFile::parse(data).map_err(|e| format!("not an archive: {e}"))?;
        let mut modules = BTreeSet::new();
        let mut names = BTreeSet::new();
        for member in archive.members() {
            let member = member.map_err(|e| format!("bad archive member: {e}"))?;
            let bytes = member
                .data(data)
                .map_err(|e| format!("bad archive member: {e}"))?;
            if let Ok(import) = ImportFile::parse(bytes) {
                modules.insert(String::from_utf8_lossy(import.dll()).into_owned());
                let name = match import.import() {
                    ImportName::Name(name) => name,
                    ImportName::Ordinal(_) => import.symbol(),
                };
                names.insert(String::from_utf8_lossy(name).into_owned());
            } else if let Ok(coff) = CoffFile::<&[u8]>::parse(bytes) {
                read_dlltool_member(&coff, &mut modules, &mut names)?;
            }
            // Other members (archive symbol tables, long-name tables) carry no exports.
        }
        let mut modules = modules.into_iter();
        let (Some(module), None) = (modules.next(), modules.next()) else {
            return Err("the archive must name exactly one module".into());
        };
        if names.is_empty() {
            return Err(format!("the archive for {module} lists no exports"));
        }
        Ok(Self { module, names })
    }

    /// Whether `name` is exported (exact, case-sensitive match, as the loader resolves it).
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }
}

fn read_dlltool_member<'data>(
    coff: &CoffFile<'data, &'data [u8]>,
    modules: &mut BTreeSet<String>,
    names: &mut BTreeSet<String>,
) -> Result<(), String> {
    let mut is_tail = false;
    for symbol in coff.symbols() {
        let Ok(name) = symbol.name() else { continue };
        if !symbol.is_definition() && !symbol.is_undefined() {
            continue;
        }
        if let Some(export) = name.strip_prefix("__imp_") {
            if !symbol.is_undefined() {
                names.insert(export.to_owned());
            }
        } else if name.ends_with("_iname") && !symbol.is_undefined() {
            is_tail = true;
        }
    }
    if is_tail {
        for section in coff.sections() {
            if section.name() == Ok(".idata$7") {
                let data = section.data().map_err(|e| format!("bad .idata$7: {e}"))?;
                let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                if end > 0 {
                    modules.insert(String::from_utf8_lossy(&data[..end]).into_owned());
                }
            }
        }
    }
    Ok(())
}
