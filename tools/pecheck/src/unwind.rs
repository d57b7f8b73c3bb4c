//! x64 unwind information: every function's stack frame, exactly, from the image.
//!
//! The exception directory (`.pdata`) lists a `RUNTIME_FUNCTION` (begin RVA, end RVA, unwind
//! info RVA) for every function that touches the stack (read as `object`'s
//! `ImageRuntimeFunctionEntry`); its `UNWIND_INFO` codes describe the prologue and are decoded
//! by `goblin`'s `pe::exception`: `UWOP_PUSH_NONVOL` (8 bytes each), `UWOP_ALLOC_SMALL`/
//! `UWOP_ALLOC_LARGE` (the `sub rsp, N`), `UWOP_PUSH_MACHFRAME`. A function's frame is what its
//! prologue puts below the return address (which is not counted). Saves into the allocated area
//! (`UWOP_SAVE_NONVOL`, `UWOP_SAVE_XMM128`) are not counted twice. Chained unwind info (a
//! function split in parts, `UNW_FLAG_CHAININFO`) adds the primary part's prologue.
//! Reference: "x64 exception handling" (learn.microsoft.com/cpp/build/exception-handling-x64).
//!
//! Used by the `--max-stack-frame` check and by bench's part 7 (`bench/src/image.rs`).

use goblin::pe::exception::{UnwindInfo, UnwindOperation};
use object::LittleEndian as LE;
use object::pe::ImageRuntimeFunctionEntry;

/// What one unwind info's codes do to the stack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prologue {
    /// Bytes pushed (non-volatile registers, machine frames).
    pub pushes: u32,
    /// Bytes allocated (`sub rsp, N`).
    pub allocation: u32,
    /// `UNW_FLAG_CHAININFO`: the unwind info RVA of the primary function part.
    pub chained: Option<u32>,
}

/// Longest chain of unwind infos followed before the image is called malformed.
const MAX_CHAIN: u32 = 32;

/// A `goblin` error without its "Malformed entity: " prefix.
fn message(error: goblin::error::Error) -> String {
    match error {
        goblin::error::Error::Malformed(message) => message,
        other => other.to_string(),
    }
}

/// Decodes one `UNWIND_INFO` (its header, codes, and chained entry) that starts `info`.
///
/// # Errors
/// Unknown version or operation, or codes running past the data.
pub fn decode_unwind_info(info: &[u8]) -> Result<Prologue, String> {
    // goblin rejects it too; read here only to keep the message the frame check reports.
    if let Some(version) = info.first().map(|b| b & 7).filter(|v| !(1..=2).contains(v)) {
        return Err(format!("unknown version {version}"));
    }
    let unwind = UnwindInfo::parse(info, 0).map_err(message)?;
    let mut prologue = Prologue {
        chained: unwind
            .chained_info
            .map(|primary| primary.unwind_info_address),
        ..Prologue::default()
    };
    for code in &unwind {
        match code.map_err(message)?.operation {
            UnwindOperation::PushNonVolatile(_) => prologue.pushes += 8,
            UnwindOperation::Alloc(bytes) => prologue.allocation += bytes,
            // SS, RSP, EFLAGS, CS, RIP (+ an error code).
            UnwindOperation::PushMachineFrame(error_code) => {
                prologue.pushes += if error_code { 48 } else { 40 };
            }
            // The frame pointer, saves into the allocated area, epilog locations, no-ops.
            _ => {}
        }
    }
    Ok(prologue)
}

/// One function's stack frame from the unwind information.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// RVA of the function's first byte.
    pub begin: u32,
    /// RVA just past it.
    pub end: u32,
    /// Bytes pushed by the prologue.
    pub pushes: u32,
    /// Bytes allocated by the prologue.
    pub allocation: u32,
}

impl Frame {
    /// The frame: everything the prologue puts below the return address.
    #[must_use]
    pub const fn bytes(&self) -> u32 {
        self.pushes + self.allocation
    }
}

/// Every function's frame, sorted by address.
///
/// `exception_directory` is the `.pdata` table (12-byte `RUNTIME_FUNCTION`s; a trailing
/// partial entry is ignored); `at_rva` gives the image's bytes from an RVA to the end of its
/// section's file data.
///
/// # Errors
/// An unwind info is unreadable or malformed (the message names its RVA), or a chain is too
/// long.
pub fn frames<'a>(
    exception_directory: &[u8],
    at_rva: impl Fn(u32) -> Result<&'a [u8], String>,
) -> Result<Vec<Frame>, String> {
    let count = exception_directory.len() / size_of::<ImageRuntimeFunctionEntry>();
    let (entries, _partial) =
        object::pod::slice_from_bytes::<ImageRuntimeFunctionEntry>(exception_directory, count)
            .map_err(|()| "exception directory misaligned".to_owned())?;
    let mut frames = Vec::with_capacity(entries.len());
    for entry in entries {
        let prologue = prologue_at(entry.unwind_info_address_or_data.get(LE), 0, &at_rva)?;
        frames.push(Frame {
            begin: entry.begin_address.get(LE),
            end: entry.end_address.get(LE),
            pushes: prologue.pushes,
            allocation: prologue.allocation,
        });
    }
    frames.sort_by_key(|f| f.begin);
    Ok(frames)
}

/// The prologue described by the unwind info at `rva` and the infos it chains to.
fn prologue_at<'a>(
    rva: u32,
    depth: u32,
    at_rva: &impl Fn(u32) -> Result<&'a [u8], String>,
) -> Result<Prologue, String> {
    if depth > MAX_CHAIN {
        return Err(format!("unwind info {rva:#x}: chain too long"));
    }
    let info = at_rva(rva)?;
    let mut prologue =
        decode_unwind_info(info).map_err(|e| format!("unwind info {rva:#x}: {e}"))?;
    if let Some(primary) = prologue.chained.take() {
        let parent = prologue_at(primary, depth + 1, at_rva)?;
        prologue.pushes += parent.pushes;
        prologue.allocation += parent.allocation;
    }
    Ok(prologue)
}

#[cfg(test)]
mod tests {
    use super::{Frame, decode_unwind_info, frames};

    /// `UNW_FLAG_CHAININFO`: the unwind info ends with the `RUNTIME_FUNCTION` of the primary part.
    const UNW_FLAG_CHAININFO: u8 = 4;

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

    /// `.pdata` entries (begin, end, unwind info RVA).
    fn pdata(functions: &[(u32, u32, u32)]) -> Vec<u8> {
        functions
            .iter()
            .flat_map(|(b, e, u)| [b, e, u].map(|v| v.to_le_bytes()))
            .flatten()
            .collect()
    }

    /// Unwind infos by RVA, each readable to the end of a pretend section.
    fn lookup<'a>(infos: &'a [(u32, Vec<u8>)]) -> impl Fn(u32) -> Result<&'a [u8], String> {
        move |rva| {
            infos
                .iter()
                .find(|(at, _)| *at == rva)
                .map(|(_, bytes)| bytes.as_slice())
                .ok_or_else(|| format!("RVA {rva:#x} is outside every section"))
        }
    }

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
        // sub rsp, 0x12345 (large, unscaled); a machine frame with an error code.
        let huge = unwind_info(0, &[(9, 1, 1, &[0x2345, 0x1]), (0, 10, 1, &[])]);
        let infos = [(0x2000, small), (0x2020, large), (0x2040, huge)];
        let table = pdata(&[
            (0x1100, 0x1180, 0x2020),
            (0x1000, 0x1080, 0x2000),
            (0x1200, 0x1210, 0x2040),
        ]);
        let frames = frames(&table, lookup(&infos)).unwrap();
        let summary: Vec<(u32, u32, u32)> = frames
            .iter()
            .map(|f| (f.begin, f.pushes, f.allocation))
            .collect();
        assert_eq!(
            summary,
            vec![
                (0x1000, 16, 104),
                (0x1100, 8, 0x1230),
                (0x1200, 48, 0x12345)
            ]
        );
        assert_eq!(frames[1].bytes(), 0x1238);
        assert_eq!(frames[1].end, 0x1180);
    }

    #[test]
    fn chained_unwind_info_adds_the_primary_prologue() {
        let primary = unwind_info(0, &[(8, 2, 3, &[]), (1, 0, 3, &[])]); // 32 + push
        let mut chained = unwind_info(UNW_FLAG_CHAININFO, &[(4, 2, 1, &[])]); // 16
        chained.extend_from_slice(&[0, 0]); // pad to an even number of codes
        for value in [0x1000_u32, 0x1040, 0x2000] {
            chained.extend_from_slice(&value.to_le_bytes());
        }
        let infos = [(0x2000, primary), (0x2020, chained)];
        let table = pdata(&[(0x1000, 0x1040, 0x2000), (0x1300, 0x1340, 0x2020)]);
        let frames = frames(&table, lookup(&infos)).unwrap();
        assert_eq!(
            frames[1],
            Frame {
                begin: 0x1300,
                end: 0x1340,
                pushes: 8,
                allocation: 48
            }
        );
    }

    #[test]
    fn a_chain_that_loops_is_an_error() {
        let mut looped = unwind_info(UNW_FLAG_CHAININFO, &[]);
        for value in [0x1000_u32, 0x1040, 0x2000] {
            looped.extend_from_slice(&value.to_le_bytes());
        }
        let infos = [(0x2000, looped)];
        let error = frames(&pdata(&[(0x1000, 0x1040, 0x2000)]), lookup(&infos)).unwrap_err();
        assert!(error.contains("chain too long"), "{error}");
    }

    #[test]
    fn malformed_unwind_info_is_an_error_naming_its_rva() {
        assert!(
            decode_unwind_info(&[1, 0, 1, 0, 0, 0x01]).is_err(),
            "operand past the codes"
        );
        assert!(
            decode_unwind_info(&[1, 0, 2, 0, 0, 0x00]).is_err(),
            "codes past the data"
        );
        assert!(decode_unwind_info(&[3, 0, 0, 0]).is_err(), "version 3");
        assert!(
            decode_unwind_info(&[1, 0, 1, 0, 0, 0x0b]).is_err(),
            "operation 11"
        );
        let infos = [(0x2000, vec![1, 0, 1, 0, 0, 0x0b])];
        let error = frames(&pdata(&[(0x1000, 0x1010, 0x2000)]), lookup(&infos)).unwrap_err();
        assert!(error.starts_with("unwind info 0x2000: unknown"), "{error}");
        let error = frames(&pdata(&[(0x1000, 0x1010, 0x3000)]), lookup(&infos)).unwrap_err();
        assert!(error.contains("0x3000"), "{error}");
    }
}
