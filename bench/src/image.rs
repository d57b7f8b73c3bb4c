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
//! Names come from the PDB (its `S_GPROC32`/`S_LPROC32` records, read by
//! `wskecho_pecheck::pdb`), whose `S_FRAMEPROC` records (frame size, callee-saved register
//! bytes) are the compiler's own account of each frame, cross-checked here against the unwind
//! information.

use std::collections::HashMap;

pub use wskecho_pecheck::{image::Section, pdb::Procedure, unwind::Frame};

use crate::report::{Goal, Row};

/// The limit on any one stack frame (kernel stacks are small).
pub const FRAME_GOAL: Goal = Goal::AtMost(1024.0);

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
        if let Some(rva) = procedure.rva(sections) {
            by_rva.entry(rva).or_insert(procedure);
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
                    let record = p.frame?;
                    Some(record.size == frame.allocation && record.callee_saved == frame.pushes)
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
    use wskecho_pecheck::pdb::FrameRecord;

    use super::*;

    #[test]
    fn short_names_drop_repeated_generic_paths() {
        assert_eq!(
            short_name(
                "wsk_client::socket::Socket<wsk_kernel::provider::WskProvider>::post<wsk_kernel::provider::WskProvider>"
            ),
            "wsk_client::socket::Socket<WskProvider>::post"
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
        let procedure = |offset, name: &str, frame: Option<(u32, u32)>| Procedure {
            section: 1,
            offset,
            name: name.into(),
            frame: frame.map(|(size, callee_saved)| FrameRecord { size, callee_saved }),
        };
        let procedures = [
            procedure(0, "wsk_client::config::EntryText::new", Some((104, 16))),
            procedure(256, "Socket<P>::post<P>", Some((4600, 8))),
            procedure(512, "leaf", None),
        ];
        let named = name_frames(&sections, &frames, &procedures);
        let summary: Vec<(&str, u32, Option<bool>)> = named
            .iter()
            .map(|n| (n.name.as_str(), n.frame.bytes(), n.pdb_agrees))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("Socket<P>::post<P>", 4608, Some(true)),
                ("wsk_client::config::EntryText::new", 120, Some(true)),
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
