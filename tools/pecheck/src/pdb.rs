//! What the checks and `scripts/bench` read from a PDB, with the `pdb2` crate.
//!
//! The GUID and age of its info stream (which the image's `CodeView` record must match), names
//! for the functions the stack frame check reports, and the compiler's own frame records, which
//! `scripts/bench` checks the unwind information against.
//!
//! The DBI stream lists the modules; each module's symbol stream holds its procedures as
//! `S_GPROC32`/`S_LPROC32` (and `_ID`) records with their `section:offset` and name, each
//! followed inside its scope by an `S_FRAMEPROC` record when the compiler wrote one.

use std::io::Cursor;

use pdb2::{Error, FallibleIterator, PDB, SymbolData, SymbolIter};

use crate::image::Section;

/// One procedure: where it starts (1-based section number and offset), its name and its frame
/// record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Procedure {
    /// 1-based index into the image's section table.
    pub section: u16,
    /// Offset inside that section.
    pub offset: u32,
    /// The name as the compiler recorded it.
    pub name: String,
    /// Its `S_FRAMEPROC` record, if the compiler wrote one.
    pub frame: Option<FrameRecord>,
}

impl Procedure {
    /// The procedure's RVA in the image whose section table is `sections`.
    #[must_use]
    pub fn rva(&self, sections: &[Section]) -> Option<u32> {
        let section = sections.get(usize::from(self.section).checked_sub(1)?)?;
        section.virtual_address.checked_add(self.offset)
    }
}

/// The sizes of an `S_FRAMEPROC` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRecord {
    /// `cbFrame`: locals and spills, what the prologue allocates.
    pub size: u32,
    /// `cbSaveRegs`: bytes of callee-saved registers, what the prologue pushes.
    pub callee_saved: u32,
}

/// A `pdb2` error in the checks' words.
fn describe(error: Error) -> String {
    match error {
        Error::UnrecognizedFileFormat => "not an MSF 7.0 PDB".into(),
        Error::StreamNotFound(stream) => format!("PDB has no stream {stream}"),
        Error::UnexpectedEof => "PDB truncated: a structure runs past its stream".into(),
        other => format!("PDB unreadable: {other}"),
    }
}

fn open(pdb: &[u8]) -> Result<PDB<'_, Cursor<&[u8]>>, String> {
    PDB::open(Cursor::new(pdb)).map_err(describe)
}

/// The GUID (in the byte order stored in the image and the PDB) and age of the PDB's info
/// stream, to compare with the image's `CodeView` record.
///
/// # Errors
/// A message if the file is not an MSF 7.0 PDB or its info stream is missing or truncated.
pub fn signature(pdb: &[u8]) -> Result<([u8; 16], u32), String> {
    let info = open(pdb)?.pdb_information().map_err(describe)?;
    Ok((info.guid.to_bytes_le(), info.age))
}

/// Every procedure of every module of the PDB, in stream order.
///
/// # Errors
/// Not an MSF 7.0 file, or a stream, the module list or a symbol record out of bounds.
pub fn procedures(pdb: &[u8]) -> Result<Vec<Procedure>, String> {
    let mut pdb = open(pdb)?;
    let dbi = pdb.debug_information().map_err(describe)?;
    let mut modules = dbi.modules().map_err(describe)?;
    let mut procedures = Vec::new();
    while let Some(module) = modules.next().map_err(describe)? {
        let stream = module.info().stream;
        let Some(info) = pdb.module_info(&module).map_err(describe)? else {
            continue; // a module without symbols
        };
        let symbols = info.symbols().map_err(|e| match e {
            Error::UnexpectedEof => format!("PDB module stream {stream} shorter than its symbols"),
            other => format!("PDB module stream {stream}: {other}"),
        })?;
        read_procedures(symbols, &mut procedures)
            .map_err(|e| format!("PDB module stream {stream}: {e}"))?;
    }
    Ok(procedures)
}

/// Appends the procedures among one module's `symbols`, each with the first `S_FRAMEPROC` that
/// follows it before the next procedure.
fn read_procedures(mut symbols: SymbolIter<'_>, out: &mut Vec<Procedure>) -> Result<(), String> {
    let first = out.len();
    while let Some(symbol) = symbols.next().map_err(|e| match e {
        Error::UnexpectedEof => "a record runs past the stream".to_owned(),
        other => other.to_string(),
    })? {
        match symbol.parse() {
            Ok(SymbolData::Procedure(procedure)) => out.push(Procedure {
                section: procedure.offset.section,
                offset: procedure.offset.offset,
                name: procedure.name.to_string().into_owned(),
                frame: None,
            }),
            Ok(SymbolData::FrameProcedure(record)) => {
                let frame = FrameRecord {
                    size: record.frame_byte_count,
                    callee_saved: record.callee_save_registers_byte_count,
                };
                if let Some(procedure) = out.get_mut(first..).and_then(<[Procedure]>::last_mut) {
                    procedure.frame.get_or_insert(frame);
                }
            }
            // Records this reader does not need, including kinds `pdb2` does not decode.
            Ok(_) | Err(Error::UnimplementedSymbolKind(_)) => {}
            Err(e) => return Err(format!("record at {}: {e}", symbol.index())),
        }
    }
    Ok(())
}
