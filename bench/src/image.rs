//! Part 7: the driver image's size and its largest stack frames.
//!
//! Frames come from the x64 unwind information, which is exact per function: the exception
//! directory (`.pdata`) lists a `RUNTIME_FUNCTION` for every function that touches the stack,
//! and its `UNWIND_INFO` codes describe the prologue: `UWOP_PUSH_NONVOL` (8 bytes each),
//! `UWOP_ALLOC_SMALL`/`UWOP_ALLOC_LARGE` (the `sub rsp, N`), `UWOP_PUSH_MACHFRAME`. A
//! function's frame is what its prologue puts below the return address. Chained unwind info
//! (a function split in parts) adds the primary part's prologue. The decoding is pecheck's
//! (`wskecho_pecheck::unwind`, also behind `scripts/test`'s `--max-stack-frame` check), and so
//! is reading the image (`wskecho_pecheck::image::ImageFacts`: sections and frames); this
//! module names the frames and makes the part's rows.
//!
//! Names come from the PDB (`llvm-pdbutil dump --symbols`: `S_GPROC32`/`S_LPROC32` with their
//! `section:offset`), whose `S_FRAMEPROC` records (frame size, callee-saved register bytes)
//! are an independent second source, cross-checked here.

use std::collections::HashMap;

pub use wskecho_pecheck::{image::Section, unwind::Frame};

use crate::report::{Goal, Row};

/// The limit on any one stack frame (kernel stacks are small).
pub const FRAME_GOAL: Goal = Goal::AtMost(1024.0);

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
    sections: &[Section],
    frames: &[Frame],
    procedures: &[Procedure],
) -> Vec<NamedFrame> {
    let mut by_rva: HashMap<u32, &Procedure> = HashMap::new();
    for procedure in procedures {
        let section = usize::from(procedure.section)
            .checked_sub(1)
            .and_then(|index| sections.get(index));
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

/// The rows of part 7: `sections` are the image's section table, `named` its frames as
/// [`name_frames`] ranked them.
#[must_use]
pub fn rows(file_size: u64, sections: &[Section], named: &[NamedFrame]) -> Vec<Row> {
    #[allow(clippy::cast_precision_loss)] // sizes far below 2^52
    let bytes = |value: u64| value as f64;
    let mut rows = vec![
        Row::new("wskecho.sys file size", bytes(file_size), "bytes")
            .with_note("release build as scripts/package makes it (debug info in the .pdb)"),
    ];
    for name in [".text", ".rdata", ".data"] {
        if let Some(section) = sections.iter().find(|s| s.name == name) {
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
        let section = |name: &str, virtual_address| Section {
            name: name.into(),
            characteristics: 0,
            virtual_address,
            virtual_size: 0x200,
        };
        let sections = [section(".text", 0x1000), section(".rdata", 0x2000)];
        let frame = |begin, pushes, allocation| Frame {
            begin,
            end: begin + 0x10,
            pushes,
            allocation,
        };
        let frames = [
            frame(0x1000, 16, 104),
            frame(0x1100, 8, 4600),
            frame(0x1300, 0, 8),
        ];
        let named = name_frames(&sections, &frames, &parse_pdb_symbols(PDB_SYMBOLS).unwrap());
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
        let rows = rows(0xa00, &sections, &named);
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
