//! Procedures from a PDB: names for the functions the stack frame check reports, and the
//! compiler's own frame records, which `scripts/bench` checks the unwind information against.
//!
//! A PDB is an MSF 7.0 file: fixed-size blocks, a superblock, and a stream directory listing
//! each stream's size and blocks. The DBI stream (stream 3) lists the modules; each module's
//! symbol stream holds its procedures as `S_GPROC32`/`S_LPROC32` (and `_ID`) records with their
//! `section:offset` and name, each followed inside its scope by an `S_FRAMEPROC` record when
//! the compiler wrote one. Layouts: LLVM's "The PDB File Format" documentation (MSF, DBI
//! stream, module stream, `CodeView` symbol records).

use crate::image::Section;

/// `Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0`: the superblock's magic.
const MSF_MAGIC: &[u8] = b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0";
/// The DBI (debug information) stream.
const DBI_STREAM: usize = 3;
/// Size of the DBI stream header; the module info substream follows it.
const DBI_HEADER_SIZE: usize = 64;
/// Procedure record kinds: `S_LPROC32`, `S_GPROC32`, `S_LPROC32_ID`, `S_GPROC32_ID`.
const PROCEDURE_KINDS: [u16; 4] = [0x110f, 0x1110, 0x1146, 0x1147];

/// `S_FRAMEPROC`: a procedure's frame as the compiler described it.
const FRAMEPROC_KIND: u16 = 0x1012;

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

fn u16_at(data: &[u8], offset: usize) -> Option<u16> {
    let bytes = data.get(offset..offset.checked_add(2)?)?;
    Some(u16::from_le_bytes([bytes[0], bytes[1]]))
}

fn u32_at(data: &[u8], offset: usize) -> Option<u32> {
    let bytes = data.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn index(value: u32) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// The streams of an MSF file.
struct Msf<'a> {
    data: &'a [u8],
    block_size: usize,
    /// Per stream: its size in bytes and its blocks.
    streams: Vec<(usize, Vec<u32>)>,
}

impl<'a> Msf<'a> {
    fn parse(data: &'a [u8]) -> Result<Self, String> {
        if !data.starts_with(MSF_MAGIC) {
            return Err("not an MSF 7.0 PDB".into());
        }
        let field = |offset| u32_at(data, offset).ok_or("PDB superblock truncated");
        let block_size = index(field(32)?);
        if !block_size.is_power_of_two() || block_size < 512 {
            return Err(format!("implausible PDB block size {block_size}"));
        }
        let directory_bytes = index(field(44)?);
        let map = index(field(52)?)
            .checked_mul(block_size)
            .ok_or("PDB block map out of range")?;
        let mut directory = Vec::with_capacity(directory_bytes);
        for i in 0..directory_bytes.div_ceil(block_size) {
            let block = u32_at(data, map + 4 * i).ok_or("PDB block map truncated")?;
            let start = index(block)
                .checked_mul(block_size)
                .ok_or("PDB directory block out of range")?;
            let take = block_size.min(directory_bytes - directory.len());
            let chunk = data
                .get(start..start + take)
                .ok_or("PDB stream directory out of bounds")?;
            directory.extend_from_slice(chunk);
        }
        let word = |i: usize| u32_at(&directory, 4 * i).ok_or("PDB stream directory truncated");
        let count = index(word(0)?);
        let mut next = 1 + count;
        let mut streams = Vec::with_capacity(count.min(directory.len() / 4));
        for stream in 0..count {
            let size = match word(1 + stream)? {
                u32::MAX => 0, // a nil stream
                size => index(size),
            };
            let blocks = (0..size.div_ceil(block_size))
                .map(|i| word(next + i))
                .collect::<Result<Vec<u32>, _>>()?;
            next += blocks.len();
            streams.push((size, blocks));
        }
        Ok(Self {
            data,
            block_size,
            streams,
        })
    }

    /// The bytes of stream `number`.
    fn stream(&self, number: usize) -> Result<Vec<u8>, String> {
        let (size, blocks) = self
            .streams
            .get(number)
            .ok_or_else(|| format!("PDB has no stream {number}"))?;
        let mut bytes = Vec::with_capacity(*size);
        for &block in blocks {
            let start = index(block)
                .checked_mul(self.block_size)
                .ok_or("PDB block out of range")?;
            let take = self.block_size.min(size - bytes.len());
            let chunk = self
                .data
                .get(start..start + take)
                .ok_or_else(|| format!("PDB stream {number} out of bounds"))?;
            bytes.extend_from_slice(chunk);
        }
        Ok(bytes)
    }
}

/// Every procedure of every module of the PDB, in stream order.
///
/// # Errors
/// Not an MSF 7.0 file, or a stream, the module list or a symbol record out of bounds.
pub fn procedures(pdb: &[u8]) -> Result<Vec<Procedure>, String> {
    let msf = Msf::parse(pdb)?;
    let dbi = msf.stream(DBI_STREAM)?;
    let module_info_size = index(u32_at(&dbi, 24).ok_or("PDB DBI header truncated")?);
    let modules = dbi
        .get(DBI_HEADER_SIZE..DBI_HEADER_SIZE.saturating_add(module_info_size))
        .ok_or("PDB module list out of bounds")?;
    let mut procedures = Vec::new();
    let mut at = 0;
    while at + 64 <= modules.len() {
        let stream = u16_at(modules, at + 34).ok_or("PDB module entry truncated")?;
        let symbol_bytes = index(u32_at(modules, at + 36).ok_or("PDB module entry truncated")?);
        // Two NUL-terminated names (module, object file), then padding to 4 bytes.
        let mut end = at + 64;
        for _ in 0..2 {
            let len = modules
                .get(end..)
                .and_then(|rest| rest.iter().position(|&b| b == 0))
                .ok_or("PDB module name unterminated")?;
            end += len + 1;
        }
        at = end.next_multiple_of(4);
        if stream == u16::MAX {
            continue; // a module without symbols
        }
        let symbols = msf.stream(usize::from(stream))?;
        let records = symbols
            .get(4..symbol_bytes.max(4))
            .ok_or_else(|| format!("PDB module stream {stream} shorter than its symbols"))?;
        read_procedures(records, &mut procedures)
            .map_err(|e| format!("PDB module stream {stream}: {e}"))?;
    }
    Ok(procedures)
}

/// Appends the procedures among the `CodeView` symbol `records` (after the stream's signature),
/// each with the first `S_FRAMEPROC` that follows it before the next procedure.
fn read_procedures(records: &[u8], out: &mut Vec<Procedure>) -> Result<(), String> {
    let first = out.len();
    let mut at = 0;
    while at + 4 <= records.len() {
        let length = usize::from(u16_at(records, at).ok_or("record truncated")?);
        let record = records
            .get(at + 2..at + 2 + length)
            .ok_or_else(|| format!("record at {at:#x} runs past the stream"))?;
        let kind = u16_at(record, 0).ok_or("record without a kind")?;
        if PROCEDURE_KINDS.contains(&kind) {
            // Kind, then parent, end, next, length, debug start, debug end, type (7 x u32),
            // offset u32, section u16, flags u8, name.
            let offset = u32_at(record, 30).ok_or("procedure record truncated")?;
            let section = u16_at(record, 34).ok_or("procedure record truncated")?;
            let name = record.get(37..).unwrap_or_default();
            let name = name.split(|&b| b == 0).next().unwrap_or_default();
            out.push(Procedure {
                section,
                offset,
                name: String::from_utf8_lossy(name).into_owned(),
                frame: None,
            });
        } else if kind == FRAMEPROC_KIND {
            // Kind, then cbFrame, cbPad, offPad, cbSaveRegs (u32 each), ...
            let frame = FrameRecord {
                size: u32_at(record, 2).ok_or("frame record truncated")?,
                callee_saved: u32_at(record, 14).ok_or("frame record truncated")?,
            };
            if let Some(procedure) = out.get_mut(first..).and_then(<[Procedure]>::last_mut) {
                procedure.frame.get_or_insert(frame);
            }
        }
        at += 2 + length;
    }
    Ok(())
}
