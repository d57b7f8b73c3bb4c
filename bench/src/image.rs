//! Part 7: the driver image's size and its largest stack frames.
//!
//! Frames come from the x64 unwind information, which is exact per function: the exception
//! directory (`.pdata`) lists a `RUNTIME_FUNCTION` for every function that touches the stack,
//! and its `UNWIND_INFO` codes describe the prologue: `UWOP_PUSH_NONVOL` (8 bytes each),
//! `UWOP_ALLOC_SMALL`/`UWOP_ALLOC_LARGE` (the `sub rsp, N`), `UWOP_PUSH_MACHFRAME`. A
//! function's frame is what its prologue puts below the return address. Chained unwind info
//! (a function split in parts) adds the primary part's prologue. The decoding is pecheck's
//! (`wskecho_pecheck::unwind`, also behind `scripts/test`'s `--max-stack-frame` check); this
//! module reads the PE headers, names the frames and makes the part's rows.
//!
//! Names come from the PDB (`llvm-pdbutil dump --symbols`: `S_GPROC32`/`S_LPROC32` with their
//! `section:offset`), whose `S_FRAMEPROC` records (frame size, callee-saved register bytes)
//! are an independent second source, cross-checked here.

use std::{collections::HashMap, fmt};

use wskecho_pecheck::unwind;
pub use wskecho_pecheck::unwind::Frame;

use crate::report::{Goal, Row};

/// The limit on any one stack frame (kernel stacks are small).
pub const FRAME_GOAL: Goal = Goal::AtMost(1024.0);

/// An image that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageError(pub String);

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ImageError {}

fn bad<T>(reason: impl Into<String>) -> Result<T, ImageError> {
    Err(ImageError(reason.into()))
}

fn u16_at(data: &[u8], offset: usize) -> Result<u16, ImageError> {
    offset
        .checked_add(2)
        .and_then(|end| data.get(offset..end))
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .map_or_else(|| bad(format!("truncated at offset {offset:#x}")), Ok)
}

fn u32_at(data: &[u8], offset: usize) -> Result<u32, ImageError> {
    offset
        .checked_add(4)
        .and_then(|end| data.get(offset..end))
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .map_or_else(|| bad(format!("truncated at offset {offset:#x}")), Ok)
}

fn to_usize(value: u32) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// One section header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// Name (`.text`, ...).
    pub name: String,
    /// RVA of its first byte.
    pub virtual_address: u32,
    /// Size in memory.
    pub virtual_size: u32,
    /// Offset of its data in the file.
    pub raw_offset: u32,
    /// Size of its data in the file.
    pub raw_size: u32,
}

/// The parts of a PE32+ image this measurement needs.
#[derive(Debug)]
pub struct PeImage<'a> {
    data: &'a [u8],
    /// The section table, in order (PDB section numbers are 1-based indexes into it).
    pub sections: Vec<Section>,
    /// The exception directory: RVA and size.
    pub exception: (u32, u32),
}

/// `IMAGE_NT_OPTIONAL_HDR64_MAGIC`.
const PE32_PLUS: u16 = 0x20b;
/// Index of `IMAGE_DIRECTORY_ENTRY_EXCEPTION`.
const EXCEPTION_DIRECTORY: usize = 3;

impl<'a> PeImage<'a> {
    /// Reads the headers of a PE32+ image.
    ///
    /// # Errors
    /// Not a PE32+ image, or truncated headers.
    pub fn parse(data: &'a [u8]) -> Result<Self, ImageError> {
        if data.get(..2) != Some(b"MZ") {
            return bad("not a PE image (no MZ header)");
        }
        let pe = to_usize(u32_at(data, 0x3c)?);
        if pe.checked_add(4).and_then(|end| data.get(pe..end)) != Some(b"PE\0\0") {
            return bad("not a PE image (no PE signature)");
        }
        let coff = pe + 4;
        let section_count = usize::from(u16_at(data, coff + 2)?);
        let optional_size = usize::from(u16_at(data, coff + 16)?);
        let optional = coff + 20;
        if u16_at(data, optional)? != PE32_PLUS {
            return bad("not a PE32+ (x64) image");
        }
        let directory_count = to_usize(u32_at(data, optional + 108)?);
        let exception = if directory_count > EXCEPTION_DIRECTORY {
            let entry = optional + 112 + 8 * EXCEPTION_DIRECTORY;
            (u32_at(data, entry)?, u32_at(data, entry + 4)?)
        } else {
            (0, 0)
        };
        let table = optional + optional_size;
        let mut sections = Vec::with_capacity(section_count);
        for index in 0..section_count {
            let header = table + 40 * index;
            let name = data
                .get(header..header + 8)
                .map_or_else(|| bad("truncated section table"), Ok)?;
            let name = String::from_utf8_lossy(name)
                .trim_end_matches('\0')
                .to_owned();
            sections.push(Section {
                name,
                virtual_size: u32_at(data, header + 8)?,
                virtual_address: u32_at(data, header + 12)?,
                raw_size: u32_at(data, header + 16)?,
                raw_offset: u32_at(data, header + 20)?,
            });
        }
        Ok(Self {
            data,
            sections,
            exception,
        })
    }

    /// The section called `name`.
    #[must_use]
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// File bytes from `rva` to the end of its section's data.
    fn at_rva(&self, rva: u32) -> Result<&'a [u8], ImageError> {
        for s in &self.sections {
            let offset = rva.wrapping_sub(s.virtual_address);
            if rva >= s.virtual_address && offset < s.virtual_size.max(s.raw_size) {
                if offset >= s.raw_size {
                    return bad(format!("RVA {rva:#x} is not backed by file data"));
                }
                let start = to_usize(s.raw_offset) + to_usize(offset);
                let end = to_usize(s.raw_offset) + to_usize(s.raw_size);
                return self
                    .data
                    .get(start..end)
                    .map_or_else(|| bad(format!("section {} is truncated", s.name)), Ok);
            }
        }
        bad(format!("RVA {rva:#x} is outside every section"))
    }

    /// Every function's frame, from the unwind information, sorted by address (decoded by
    /// `wskecho_pecheck::unwind`, the code behind pecheck's `--max-stack-frame`).
    ///
    /// # Errors
    /// The exception directory or an unwind info is malformed.
    pub fn frames(&self) -> Result<Vec<Frame>, ImageError> {
        let (rva, size) = self.exception;
        if size == 0 {
            return Ok(Vec::new());
        }
        let table = self.at_rva(rva)?;
        let table = table
            .get(..to_usize(size))
            .map_or_else(|| bad("exception directory is truncated"), Ok)?;
        unwind::frames(table, |rva| self.at_rva(rva).map_err(|e| e.0)).map_err(ImageError)
    }
}

/// One procedure of the PDB (`S_GPROC32`/`S_LPROC32` and its `S_FRAMEPROC`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Procedure {
    /// Display name.
    pub name: String,
    /// 1-based section number.
    pub section: u16,
    /// Offset in the section.
    pub offset: u32,
    /// `S_FRAMEPROC`'s frame size (locals and spills: the allocation).
    pub frame_size: Option<u32>,
    /// `S_FRAMEPROC`'s bytes of callee saved registers (the pushes).
    pub callee_saved: Option<u32>,
}

/// The value after `key = ` in a pdbutil line (up to the next comma).
fn field<'t>(line: &'t str, key: &str) -> Option<&'t str> {
    let start = line.find(&format!("{key} = "))? + key.len() + 3;
    let rest = &line[start..];
    Some(rest.split(',').next().unwrap_or(rest).trim())
}

/// Parses the procedures out of `llvm-pdbutil dump --symbols` output.
///
/// # Errors
/// A procedure record without a readable `addr = SECTION:OFFSET` line.
pub fn parse_pdb_symbols(text: &str) -> Result<Vec<Procedure>, String> {
    let mut procedures: Vec<Procedure> = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    // Whether the last record seen was a procedure (its S_FRAMEPROC follows).
    let mut in_procedure = false;
    while let Some((number, line)) = lines.next() {
        let Some((_, record)) = line.split_once(" | ") else {
            continue;
        };
        let kind = record.split_ascii_whitespace().next().unwrap_or("");
        if matches!(
            kind,
            "S_GPROC32" | "S_LPROC32" | "S_GPROC32_ID" | "S_LPROC32_ID"
        ) {
            let name = record
                .split_once('`')
                .and_then(|(_, rest)| rest.rsplit_once('`'))
                .map(|(name, _)| name.to_owned())
                .ok_or_else(|| format!("line {}: procedure without a name", number + 1))?;
            let address = lines
                .next()
                .and_then(|(_, next)| field(next, "addr"))
                .and_then(|addr| addr.split_once(':'))
                .and_then(|(section, offset)| Some((section.parse().ok()?, offset.parse().ok()?)));
            let Some((section, offset)) = address else {
                return Err(format!(
                    "line {}: procedure {name} without an address",
                    number + 1
                ));
            };
            procedures.push(Procedure {
                name,
                section,
                offset,
                frame_size: None,
                callee_saved: None,
            });
            in_procedure = true;
        } else if kind == "S_FRAMEPROC" && in_procedure {
            let Some(procedure) = procedures.last_mut() else {
                continue;
            };
            while let Some((_, next)) = lines.next_if(|(_, next)| !next.contains(" | ")) {
                if let Some(size) = field(next, "size").and_then(|v| v.parse().ok()) {
                    procedure.frame_size = Some(size);
                }
                if let Some(saved) =
                    field(next, "bytes of callee saved registers").and_then(|v| v.parse().ok())
                {
                    procedure.callee_saved = Some(saved);
                }
            }
            in_procedure = false;
        } else if kind != "S_FRAMEPROC" {
            in_procedure = false;
        }
    }
    Ok(procedures)
}

/// A frame with its name and the PDB's view of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedFrame {
    /// The function's name (`fn@0xRVA` if the PDB has none).
    pub name: String,
    /// The frame from the unwind information.
    pub frame: Frame,
    /// Whether the PDB's `S_FRAMEPROC` says the same (`None`: no record for this function).
    pub pdb_agrees: Option<bool>,
}

/// Names every frame from the PDB's procedures and cross-checks the sizes. Sorted by frame
/// size, largest first (ties by address).
#[must_use]
pub fn name_frames(
    image: &PeImage<'_>,
    frames: &[Frame],
    procedures: &[Procedure],
) -> Vec<NamedFrame> {
    let mut by_rva: HashMap<u32, &Procedure> = HashMap::new();
    for procedure in procedures {
        let section = usize::from(procedure.section)
            .checked_sub(1)
            .and_then(|index| image.sections.get(index));
        if let Some(section) = section {
            by_rva
                .entry(section.virtual_address.wrapping_add(procedure.offset))
                .or_insert(procedure);
        }
    }
    let mut named: Vec<NamedFrame> = frames
        .iter()
        .map(|frame| {
            let procedure = by_rva.get(&frame.begin);
            NamedFrame {
                name: procedure
                    .map_or_else(|| format!("fn@{:#x}", frame.begin), |p| p.name.clone()),
                frame: frame.clone(),
                pdb_agrees: procedure.and_then(|p| {
                    Some(p.frame_size? == frame.allocation && p.callee_saved? == frame.pushes)
                }),
            }
        })
        .collect();
    named.sort_by(|a, b| {
        b.frame
            .bytes()
            .cmp(&a.frame.bytes())
            .then(a.frame.begin.cmp(&b.frame.begin))
    });
    named
}

/// A procedure name shortened for the table.
///
/// Without the generic arguments of its last segment, and with paths inside the remaining ones
/// cut to their last segment (`a::Socket<a::b::P>::post<a::b::P>` becomes
/// `a::Socket<P>::post`).
#[must_use]
pub fn short_name(name: &str) -> String {
    let mut base = name;
    if name.ends_with('>') {
        let mut depth = 0_usize;
        for (at, c) in name.char_indices().rev() {
            match c {
                '>' => depth += 1,
                '<' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        base = &name[..at];
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = String::with_capacity(base.len());
    let mut depth = 0_usize;
    let mut path_start = 0;
    let mut chars = base.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '<' | '>' | ',' | ' ' | '(' | '&' | '[' | ';' => {
                depth = match c {
                    '<' => depth + 1,
                    '>' => depth.saturating_sub(1),
                    _ => depth,
                };
                out.push(c);
                path_start = out.len();
            }
            ':' if depth > 0 && chars.peek() == Some(&':') => {
                chars.next();
                out.truncate(path_start);
            }
            _ => out.push(c),
        }
    }
    out
}

/// The rows of part 7.
#[must_use]
pub fn rows(file_size: u64, image: &PeImage<'_>, named: &[NamedFrame]) -> Vec<Row> {
    #[allow(clippy::cast_precision_loss)] // sizes far below 2^52
    let bytes = |value: u64| value as f64;
    let mut rows = vec![
        Row::new("wskecho.sys file size", bytes(file_size), "bytes")
            .with_note("release build as scripts/package makes it (debug info in the .pdb)"),
    ];
    for name in [".text", ".rdata", ".data"] {
        if let Some(section) = image.section(name) {
            rows.push(
                Row::new(
                    format!("{name} size"),
                    bytes(u64::from(section.virtual_size)),
                    "bytes",
                )
                .with_note("section's virtual size"),
            );
        }
    }
    for (rank, named_frame) in named.iter().take(5).enumerate() {
        let f = &named_frame.frame;
        let pdb = match named_frame.pdb_agrees {
            Some(true) => "PDB S_FRAMEPROC agrees",
            Some(false) => "PDB S_FRAMEPROC DIFFERS",
            None => "no PDB frame record",
        };
        rows.push(
            Row::new(
                format!(
                    "stack frame #{}: {}",
                    rank + 1,
                    short_name(&named_frame.name)
                ),
                bytes(u64::from(f.bytes())),
                "bytes",
            )
            .with_note(format!(
                "sub rsp {} + pushes {}; {pdb}",
                f.allocation, f.pushes
            )),
        );
    }
    let largest = named.first().map_or(0, |n| n.frame.bytes());
    let checked = named.iter().filter(|n| n.pdb_agrees.is_some()).count();
    let agreeing = named.iter().filter(|n| n.pdb_agrees == Some(true)).count();
    rows.push(
        Row::new("largest stack frame", bytes(u64::from(largest)), "bytes")
            .with_goal(FRAME_GOAL)
            .with_note(format!(
                "of {} functions with unwind info; PDB agrees for {agreeing} of {checked} with a frame record; return address not counted",
                named.len()
            )),
    );
    rows
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // the compared values are exact (small integers, binary fractions)
mod tests {
    use super::*;

    /// A minimal PE32+ image: `.text` at RVA 0x1000, `.rdata` at 0x2000 holding the unwind
    /// infos, `.pdata` at 0x3000 holding `functions` (begin, end, unwind RVA).
    fn image(unwind: &[(u32, Vec<u8>)], functions: &[(u32, u32, u32)]) -> Vec<u8> {
        let mut data = vec![0_u8; 0x400];
        data[..2].copy_from_slice(b"MZ");
        data[0x3c..0x40].copy_from_slice(&0x80_u32.to_le_bytes());
        data[0x80..0x84].copy_from_slice(b"PE\0\0");
        let coff = 0x84;
        data[coff + 2..coff + 4].copy_from_slice(&3_u16.to_le_bytes());
        data[coff + 16..coff + 18].copy_from_slice(&240_u16.to_le_bytes());
        let optional = coff + 20;
        data[optional..optional + 2].copy_from_slice(&PE32_PLUS.to_le_bytes());
        data[optional + 108..optional + 112].copy_from_slice(&16_u32.to_le_bytes());
        let exception = optional + 112 + 24;
        let pdata_size = u32::try_from(functions.len() * 12).unwrap();
        data[exception..exception + 4].copy_from_slice(&0x3000_u32.to_le_bytes());
        data[exception + 4..exception + 8].copy_from_slice(&pdata_size.to_le_bytes());
        let table = optional + 240;
        let sections: [(&[u8], u32, u32); 3] = [
            (b".text", 0x1000, 0x400),
            (b".rdata", 0x2000, 0x600),
            (b".pdata", 0x3000, 0x800),
        ];
        for (index, (name, rva, raw)) in sections.iter().enumerate() {
            let header = table + 40 * index;
            data[header..header + name.len()].copy_from_slice(name);
            for (at, value) in [(8, 0x200), (12, *rva), (16, 0x200), (20, *raw)] {
                data[header + at..header + at + 4].copy_from_slice(&u32::to_le_bytes(value));
            }
        }
        data.resize(0xa00, 0xcc);
        for (rva, bytes) in unwind {
            let at = usize::try_from(rva - 0x2000 + 0x600).unwrap();
            data[at..at + bytes.len()].copy_from_slice(bytes);
        }
        for (index, (begin, end, info)) in functions.iter().enumerate() {
            let at = 0x800 + 12 * index;
            for (offset, value) in [(0, begin), (4, end), (8, info)] {
                data[at + offset..at + offset + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
        data
    }

    /// An unwind info: version 1, `flags`, the codes as (offset, op, info, operands).
    fn unwind_info(flags: u8, codes: &[(u8, u8, u8, &[u16])]) -> Vec<u8> {
        let mut slots = Vec::new();
        for (offset, op, info, operands) in codes {
            slots.push(u16::from_le_bytes([*offset, info << 4 | op]));
            slots.extend_from_slice(operands);
        }
        let mut bytes = vec![1 | flags << 3, 0x20, u8::try_from(slots.len()).unwrap(), 0];
        for slot in &slots {
            bytes.extend_from_slice(&slot.to_le_bytes());
        }
        bytes
    }

    /// The decoding itself is tested in `wskecho_pecheck::unwind`; this checks that the
    /// image's `.pdata` reaches it and each function's frame comes back.
    #[test]
    fn pushes_and_allocations_add_up_per_function() {
        // push rbx; push rsi; sub rsp, 0x68 (small: info 12 -> 104).
        let small = unwind_info(0, &[(8, 2, 12, &[]), (2, 0, 6, &[]), (1, 0, 3, &[])]);
        // push r15; sub rsp, 0x1230 (large, scaled); movaps [rsp+..], xmm6 (save, 2 slots).
        let large = unwind_info(
            0,
            &[
                (20, 8, 6, &[0x20]),
                (12, 1, 0, &[0x1230 / 8]),
                (2, 0, 15, &[]),
            ],
        );
        // sub rsp, 0x12345 (large, unscaled).
        let huge = unwind_info(0, &[(9, 1, 1, &[0x2345, 0x1])]);
        let data = image(
            &[(0x2000, small), (0x2020, large), (0x2040, huge)],
            &[
                (0x1100, 0x1180, 0x2020),
                (0x1000, 0x1080, 0x2000),
                (0x1200, 0x1210, 0x2040),
            ],
        );
        let pe = PeImage::parse(&data).unwrap();
        assert_eq!(pe.section(".rdata").unwrap().virtual_address, 0x2000);
        let frames = pe.frames().unwrap();
        let summary: Vec<(u32, u32, u32)> = frames
            .iter()
            .map(|f| (f.begin, f.pushes, f.allocation))
            .collect();
        assert_eq!(
            summary,
            vec![(0x1000, 16, 104), (0x1100, 8, 0x1230), (0x1200, 0, 0x12345)]
        );
        assert_eq!(frames[1].bytes(), 0x1238);
    }

    #[test]
    fn malformed_unwind_info_or_headers_are_errors() {
        // Operation 11 does not exist; the error names the unwind info's RVA.
        let data = image(
            &[(0x2000, vec![1, 0, 1, 0, 0, 0x0b])],
            &[(0x1000, 0x1010, 0x2000)],
        );
        let error = PeImage::parse(&data).unwrap().frames().unwrap_err();
        assert!(
            error.0.starts_with("unwind info 0x2000: unknown"),
            "{error}"
        );
        // An unwind info outside every section.
        let data = image(&[], &[(0x1000, 0x1010, 0x9000)]);
        let error = PeImage::parse(&data).unwrap().frames().unwrap_err();
        assert!(error.0.contains("0x9000"), "{error}");
        assert!(PeImage::parse(b"MZ").is_err());
        assert!(PeImage::parse(b"ELF").is_err());
    }

    #[test]
    fn short_names_drop_repeated_generic_paths() {
        assert_eq!(
            short_name(
                "wskecho::core::socket::Socket<wskecho::kernel::provider::WskProvider>::post<wskecho::kernel::provider::WskProvider>"
            ),
            "wskecho::core::socket::Socket<WskProvider>::post"
        );
        assert_eq!(
            short_name("core::fmt::impl$82::fmt<dyn$<core::fmt::Display> >"),
            "core::fmt::impl$82::fmt"
        );
        assert_eq!(
            short_name("a::PoolBox<a::S<b::P> >::free<a::S<b::P>,c::K>"),
            "a::PoolBox<S<P> >::free"
        );
        assert_eq!(
            short_name("wskecho::kernel::entry::driver_entry"),
            "wskecho::kernel::entry::driver_entry"
        );
    }

    const PDB_SYMBOLS: &str = "\
Mod 0001 | `x.o`:
     4 | S_OBJNAME [size = 128] sig=0, `x.o`
   256 | S_LPROC32 [size = 80] `wskecho::core::config::EntryText::new`
         parent = 0, end = 2296, addr = 0001:0000, code size = 425
         type = `0x14D0 (wskecho::core::config::EntryText...)`, debug start = 0, debug end = 0, flags = opt debuginfo
   336 | S_FRAMEPROC [size = 32]
         size = 104, padding size = 0, offset to padding = 0
         bytes of callee saved registers = 16, exception handler addr = 0000:0000
         local fp reg = RSP, param fp reg = RSP
         flags = safe buffers | opt speed
   368 | S_INLINEES [size = 20]
  4560 | S_GPROC32 [size = 156] `Socket<P>::post<P>`
         parent = 0, end = 64424, addr = 0001:0256, code size = 16763
  4716 | S_FRAMEPROC [size = 32]
         size = 4600, padding size = 0, offset to padding = 0
         bytes of callee saved registers = 8, exception handler addr = 0000:0000
  5000 | S_GPROC32 [size = 156] `leaf`
         parent = 0, end = 64424, addr = 0001:0512, code size = 3
";

    #[test]
    fn pdb_procedures_carry_address_and_frame_record() {
        let procedures = parse_pdb_symbols(PDB_SYMBOLS).unwrap();
        assert_eq!(procedures.len(), 3);
        assert_eq!(procedures[0].name, "wskecho::core::config::EntryText::new");
        assert_eq!((procedures[0].section, procedures[0].offset), (1, 0));
        assert_eq!(procedures[0].frame_size, Some(104));
        assert_eq!(procedures[0].callee_saved, Some(16));
        assert_eq!(procedures[1].offset, 256);
        assert_eq!(procedures[1].frame_size, Some(4600));
        assert_eq!(procedures[2].frame_size, None);
        let broken = "  1 | S_GPROC32 [size = 1] `f`\n         parent = 0, end = 1\n";
        assert!(
            parse_pdb_symbols(broken)
                .unwrap_err()
                .contains("without an address")
        );
    }

    #[test]
    fn frames_are_named_ranked_and_checked_against_the_goal() {
        let small = unwind_info(0, &[(8, 2, 12, &[]), (2, 0, 6, &[]), (1, 0, 3, &[])]);
        let big = unwind_info(0, &[(12, 1, 0, &[4600 / 8]), (2, 0, 15, &[])]);
        let wrong = unwind_info(0, &[(4, 2, 0, &[])]);
        let data = image(
            &[(0x2000, small), (0x2020, big), (0x2040, wrong)],
            &[
                (0x1000, 0x1080, 0x2000),
                (0x1100, 0x1180, 0x2020),
                (0x1300, 0x1310, 0x2040),
            ],
        );
        let pe = PeImage::parse(&data).unwrap();
        let named = name_frames(
            &pe,
            &pe.frames().unwrap(),
            &parse_pdb_symbols(PDB_SYMBOLS).unwrap(),
        );
        let summary: Vec<(&str, u32, Option<bool>)> = named
            .iter()
            .map(|n| (n.name.as_str(), n.frame.bytes(), n.pdb_agrees))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("Socket<P>::post<P>", 4608, Some(true)),
                ("wskecho::core::config::EntryText::new", 120, Some(true)),
                ("fn@0x1300", 8, None),
            ]
        );
        let rows = rows(0xa00, &pe, &named);
        let largest = rows.last().unwrap();
        assert_eq!(largest.metric, "largest stack frame");
        assert_eq!(largest.value, 4608.0);
        assert_eq!(largest.met, Some(false));
        assert!(
            rows.iter()
                .any(|r| r.metric == "stack frame #1: Socket<P>::post")
        );
        assert_eq!(rows[0].value, 2560.0);
    }
}
