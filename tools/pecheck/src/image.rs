//! The facts of a PE32+ image that the checks look at, read with the `object` crate.

use object::LittleEndian as LE;
use object::pe;
use object::read::Object;
use object::read::pe::{ExportTarget, ImageNtHeaders, ImageOptionalHeader, Import, PeFile64};

use crate::unwind::{self, Frame};

/// The GUID and age of a PDB's info stream, to compare with the image's `CodeView` record
/// (read by [`crate::pdb::signature`]).
pub use crate::pdb::signature as pdb_signature;

/// One section header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Section name (at most 8 bytes, lossy UTF-8).
    pub name: String,
    /// `IMAGE_SCN_*` flags.
    pub characteristics: u32,
    /// Relative virtual address of the section start.
    pub virtual_address: u32,
    /// Size of the section in memory.
    pub virtual_size: u32,
}

/// How an import names its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportName {
    /// Imported by name.
    Name(String),
    /// Imported by ordinal only.
    Ordinal(u16),
}

/// One imported function or variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedSymbol {
    /// Module the import comes from, as written in the image (e.g. `ntoskrnl.exe`).
    pub module: String,
    /// What is imported.
    pub name: ImportName,
}

/// The `CodeView` (RSDS) debug record: which PDB belongs to the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeView {
    /// PDB path as the linker wrote it.
    pub path: String,
    /// PDB signature GUID, in the byte order stored in the image and the PDB.
    pub guid: [u8; 16],
    /// PDB age.
    pub age: u32,
}

/// Everything the checks need from one image.
#[derive(Debug, Clone)]
pub struct ImageFacts {
    /// `IMAGE_FILE_MACHINE_*`.
    pub machine: u16,
    /// `IMAGE_FILE_*` flags of the file header.
    pub file_characteristics: u16,
    /// Size of the base relocation directory (0: none).
    pub base_relocations_size: u32,
    /// `IMAGE_SUBSYSTEM_*`.
    pub subsystem: u16,
    /// `IMAGE_DLLCHARACTERISTICS_*`.
    pub dll_characteristics: u16,
    /// RVA of the entry point.
    pub entry_point: u32,
    /// Section headers in file order.
    pub sections: Vec<Section>,
    /// Imported symbols, in import-table order.
    pub imports: Vec<ImportedSymbol>,
    /// Exported names with their RVAs (forwarders are left out).
    pub exports: Vec<(String, u32)>,
    /// The `CodeView` record, if the image has one.
    pub codeview: Option<CodeView>,
    /// Every function's stack frame from the exception directory (empty: the image has none),
    /// or why the unwind information cannot be read. Only the frame check looks at it.
    pub frames: Result<Vec<Frame>, String>,
}

impl ImageFacts {
    /// Reads a PE32+ image.
    ///
    /// # Errors
    /// A message naming what could not be read (not PE32+, broken import table, ...).
    pub fn parse(data: &[u8]) -> Result<Self, String> {
        let file = PeFile64::parse(data).map_err(|e| format!("not a PE32+ image: {e}"))?;
        let headers = file.nt_headers();
        let optional = headers.optional_header();
        let sections = file
            .section_table()
            .iter()
            .map(|section| Section {
                name: String::from_utf8_lossy(section.raw_name()).into_owned(),
                characteristics: section.characteristics.get(LE).0,
                virtual_address: section.virtual_address.get(LE),
                virtual_size: section.virtual_size.get(LE),
            })
            .collect();
        let codeview = file
            .pdb_info()
            .map_err(|e| format!("unreadable debug directory: {e}"))?
            .map(|info| CodeView {
                path: String::from_utf8_lossy(info.path()).into_owned(),
                guid: info.guid(),
                age: info.age(),
            });
        Ok(Self {
            machine: headers.file_header().machine.get(LE).0,
            file_characteristics: headers.file_header().characteristics.get(LE).0,
            base_relocations_size: file
                .data_directories()
                .get(pe::IMAGE_DIRECTORY_ENTRY_BASERELOC)
                .map_or(0, |d| d.size.get(LE)),
            subsystem: optional.subsystem().0,
            dll_characteristics: optional.dll_characteristics().0,
            entry_point: optional.address_of_entry_point(),
            sections,
            imports: read_imports(&file)?,
            exports: read_exports(&file)?,
            codeview,
            frames: read_frames(&file, data),
        })
    }

    /// The section containing `rva`, if any.
    #[must_use]
    pub fn section_at(&self, rva: u32) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| rva >= s.virtual_address && rva - s.virtual_address < s.virtual_size.max(1))
    }
}

fn read_imports(file: &PeFile64<'_>) -> Result<Vec<ImportedSymbol>, String> {
    let bad = |e: object::read::Error| format!("unreadable import table: {e}");
    let mut imports = Vec::new();
    let Some(table) = file.import_table().map_err(bad)? else {
        return Ok(imports);
    };
    let mut descriptors = table.descriptors().map_err(bad)?;
    while let Some(descriptor) = descriptors.next().map_err(bad)? {
        let module =
            String::from_utf8_lossy(table.name(descriptor.name.get(LE)).map_err(bad)?).into_owned();
        // The lookup table (OriginalFirstThunk) keeps the names; the IAT is its copy on disk.
        let lookup = match descriptor.original_first_thunk.get(LE) {
            0 => descriptor.first_thunk.get(LE),
            address => address,
        };
        let mut thunks = table.thunks(lookup).map_err(bad)?;
        while let Some(thunk) = thunks.next::<pe::ImageNtHeaders64>().map_err(bad)? {
            let name = match table.import::<pe::ImageNtHeaders64>(thunk).map_err(bad)? {
                Import::Name(_hint, name) => {
                    ImportName::Name(String::from_utf8_lossy(name).into_owned())
                }
                Import::Ordinal(ordinal) => ImportName::Ordinal(ordinal),
            };
            imports.push(ImportedSymbol {
                module: module.clone(),
                name,
            });
        }
    }
    Ok(imports)
}

fn read_frames(file: &PeFile64<'_>, data: &[u8]) -> Result<Vec<Frame>, String> {
    let Some(directory) = file
        .data_directories()
        .get(pe::IMAGE_DIRECTORY_ENTRY_EXCEPTION)
        .filter(|d| d.size.get(LE) > 0)
    else {
        return Ok(Vec::new());
    };
    let sections = file.section_table();
    let table = directory
        .data(data, &sections)
        .map_err(|e| format!("unreadable exception directory: {e}"))?;
    unwind::frames(table, |rva| {
        sections
            .pe_data_at(data, rva)
            .ok_or_else(|| format!("RVA {rva:#x} is outside every section's file data"))
    })
}

fn read_exports(file: &PeFile64<'_>) -> Result<Vec<(String, u32)>, String> {
    let bad = |e: object::read::Error| format!("unreadable export table: {e}");
    let Some(table) = file.export_table().map_err(bad)? else {
        return Ok(Vec::new());
    };
    Ok(table
        .exports()
        .map_err(bad)?
        .into_iter()
        .filter_map(|export| match (export.name, export.target) {
            (Some(name), ExportTarget::Address(rva)) => {
                Some((String::from_utf8_lossy(name).into_owned(), rva))
            }
            _ => None,
        })
        .collect())
}
