//! Builders for crafted test inputs: PE32+ driver images and import-library archives, made in
//! memory at test time (no binary fixtures in the repository).

// Shared by several test crates, each of which uses only part of it.
#![allow(dead_code)]

use object::pe;
use object::write::pe::{NtHeaders, Writer};
use object::write::{Object, Symbol, SymbolSection};
use object::{Architecture, BinaryFormat, Endianness, SymbolFlags, SymbolKind, SymbolScope};

/// What the crafted driver image looks like. `Default` is a well-formed driver.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub machine: u16,
    pub subsystem: u16,
    pub dll_characteristics: u16,
    pub text_characteristics: u32,
    /// Offset of the entry point inside `.text`; `DriverEntry` is exported at offset 0x10.
    pub entry_offset: u32,
    pub export_driver_entry: bool,
    /// (module, names); a name `#N` is imported by ordinal N.
    pub imports: Vec<(String, Vec<String>)>,
    pub pdb_path: String,
    pub pdb_guid: [u8; 16],
    pub pdb_age: u32,
    /// Extra bytes placed in `.rdata`.
    pub rdata_extra: Vec<u8>,
    /// Whether the image has a `.reloc` section (one DIR64 relocation).
    pub relocations: bool,
    /// Functions with unwind information: (offset of the function in `.text`, its
    /// `UNWIND_INFO`). Each function is 0x10 bytes long; none: no exception directory.
    pub stack_frames: Vec<(u32, Vec<u8>)>,
}

pub const DRIVER_ENTRY_OFFSET: u32 = 0x10;
pub const GUID: [u8; 16] = *b"0123456789abcdef";

impl Default for ImageSpec {
    fn default() -> Self {
        Self {
            machine: pe::IMAGE_FILE_MACHINE_AMD64.0,
            subsystem: pe::IMAGE_SUBSYSTEM_NATIVE.0,
            dll_characteristics: (pe::IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY
                | pe::IMAGE_DLLCHARACTERISTICS_NX_COMPAT
                | pe::IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE
                | pe::IMAGE_DLLCHARACTERISTICS_HIGH_ENTROPY_VA)
                .0,
            text_characteristics: (pe::IMAGE_SCN_CNT_CODE
                | pe::IMAGE_SCN_MEM_EXECUTE
                | pe::IMAGE_SCN_MEM_READ)
                .0,
            entry_offset: DRIVER_ENTRY_OFFSET,
            export_driver_entry: true,
            imports: vec![
                (
                    "ntoskrnl.exe".into(),
                    vec!["DbgPrint".into(), "KeBugCheckEx".into()],
                ),
                ("netio.sys".into(), vec!["NmrRegisterClient".into()]),
            ],
            pdb_path: r"C:\build\wskecho.pdb".into(),
            pdb_guid: GUID,
            pdb_age: 1,
            rdata_extra: Vec::new(),
            relocations: true,
            // DriverEntry: push rbx; sub rsp, 0x20.
            stack_frames: vec![(DRIVER_ENTRY_OFFSET, unwind_info(1, 0x20))],
        }
    }
}

/// A version 1 `UNWIND_INFO` for the prologue `push` x `pushes`, `sub rsp, allocation`
/// (`allocation` a multiple of 8; small, large scaled or large unscaled form by size).
pub fn unwind_info(pushes: u8, allocation: u32) -> Vec<u8> {
    let code = |offset: u8, op: u8, info: u8| u16::from_le_bytes([offset, info << 4 | op]);
    let end = pushes * 2 + 7;
    // Codes are listed in reverse prologue order: the allocation (last) first.
    let mut slots = Vec::new();
    match allocation {
        0 => {}
        8..=128 => slots.push(code(end, 2, u8::try_from(allocation / 8 - 1).unwrap())),
        _ if allocation / 8 <= 0xffff => {
            slots.push(code(end, 1, 0));
            slots.push(u16::try_from(allocation / 8).unwrap());
        }
        _ => {
            slots.push(code(end, 1, 1));
            slots.push(u16::try_from(allocation & 0xffff).unwrap());
            slots.push(u16::try_from(allocation >> 16).unwrap());
        }
    }
    for push in (0..pushes).rev() {
        slots.push(code(push * 2 + 2, 0, 3 + push % 12)); // UWOP_PUSH_NONVOL
    }
    let count = u8::try_from(slots.len()).unwrap();
    if slots.len() % 2 == 1 {
        slots.push(0);
    }
    let mut bytes = vec![1, end, count, 0];
    for slot in slots {
        bytes.extend_from_slice(&slot.to_le_bytes());
    }
    bytes
}

/// Little-endian byte sink with RVA fix-ups relative to the start of `.rdata`.
#[derive(Default)]
struct Blob(Vec<u8>);

impl Blob {
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn align(&mut self, n: usize) {
        while !self.0.len().is_multiple_of(n) {
            self.0.push(0);
        }
    }
    fn len(&self) -> u32 {
        u32::try_from(self.0.len()).unwrap()
    }
    /// Writes a hint/name entry; returns its offset.
    fn hint_name(&mut self, name: &str) -> u32 {
        self.align(2);
        let offset = self.len();
        self.u16(0);
        self.bytes(name.as_bytes());
        self.bytes(&[0]);
        offset
    }
    fn put_u32(&mut self, at: u32, v: u32) {
        let at = at as usize;
        self.0[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, at: u32, v: u64) {
        let at = at as usize;
        self.0[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
}

/// Directory locations inside `.rdata` (offsets from its start).
struct Rdata {
    blob: Vec<u8>,
    import: (u32, u32),
    export: (u32, u32),
    debug: (u32, u32),
    exception: (u32, u32),
}

fn build_rdata(spec: &ImageSpec, base: u32, text_base: u32) -> Rdata {
    let mut b = Blob::default();
    // Import descriptors, then per module: lookup table, IAT, names.
    let import_start = b.len();
    let descriptor_count = u32::try_from(spec.imports.len()).unwrap();
    for _ in 0..=descriptor_count {
        for _ in 0..5 {
            b.u32(0);
        }
    }
    let import_size = b.len() - import_start;
    for (index, (module, names)) in spec.imports.iter().enumerate() {
        let descriptor = import_start + 20 * u32::try_from(index).unwrap();
        b.align(8);
        let lookup = b.len();
        for _ in 0..=names.len() {
            b.u64(0);
        }
        let iat = b.len();
        for _ in 0..=names.len() {
            b.u64(0);
        }
        for (i, name) in names.iter().enumerate() {
            let slot = 8 * u32::try_from(i).unwrap();
            let ordinal = name.strip_prefix('#').map(|n| n.parse::<u64>().unwrap());
            let thunk = ordinal.map_or_else(
                || u64::from(base + b.hint_name(name)),
                |ordinal| (1u64 << 63) | ordinal,
            );
            b.put_u64(lookup + slot, thunk);
            b.put_u64(iat + slot, thunk);
        }
        let module_name = b.len();
        b.bytes(module.as_bytes());
        b.bytes(&[0]);
        b.put_u32(descriptor, base + lookup);
        b.put_u32(descriptor + 12, base + module_name);
        b.put_u32(descriptor + 16, base + iat);
    }
    // Export directory with one name, DriverEntry.
    b.align(4);
    let export_start = b.len();
    if spec.export_driver_entry {
        for _ in 0..10 {
            b.u32(0);
        }
        let functions = b.len();
        b.u32(text_base + DRIVER_ENTRY_OFFSET);
        let names = b.len();
        b.u32(0);
        let ordinals = b.len();
        b.u16(0);
        let dll_name = b.len();
        b.bytes(b"wskecho.sys\0");
        let entry_name = b.len();
        b.bytes(b"DriverEntry\0");
        b.put_u32(names, base + entry_name);
        b.put_u32(export_start + 12, base + dll_name);
        b.put_u32(export_start + 16, 1); // ordinal base
        b.put_u32(export_start + 20, 1); // functions
        b.put_u32(export_start + 24, 1); // names
        b.put_u32(export_start + 28, base + functions);
        b.put_u32(export_start + 32, base + names);
        b.put_u32(export_start + 36, base + ordinals);
    }
    let export_size = b.len() - export_start;
    // CodeView record, then the debug directory pointing at it.
    b.align(4);
    let codeview = b.len();
    b.bytes(b"RSDS");
    b.bytes(&spec.pdb_guid);
    b.u32(spec.pdb_age);
    b.bytes(spec.pdb_path.as_bytes());
    b.bytes(&[0]);
    let codeview_size = b.len() - codeview;
    b.align(4);
    let debug = b.len();
    b.u32(0);
    b.u32(0);
    b.u16(0);
    b.u16(0);
    b.u32(pe::IMAGE_DEBUG_TYPE_CODEVIEW.0);
    b.u32(codeview_size);
    b.u32(base + codeview);
    b.u32(0); // file pointer, patched once the file layout is known
    let exception = build_exception_directory(&mut b, spec, base, text_base);
    b.bytes(&spec.rdata_extra);
    Rdata {
        blob: b.0,
        import: (import_start, import_size),
        export: (export_start, export_size),
        debug: (debug, 28),
        exception,
    }
}

/// Appends the unwind infos, then the exception directory (`.pdata`'s `RUNTIME_FUNCTION`s)
/// pointing at them; returns the directory's offset and size.
fn build_exception_directory(
    b: &mut Blob,
    spec: &ImageSpec,
    base: u32,
    text_base: u32,
) -> (u32, u32) {
    let mut infos = Vec::new();
    for (_, info) in &spec.stack_frames {
        b.align(4);
        infos.push(b.len());
        b.bytes(info);
    }
    b.align(4);
    let start = b.len();
    for ((offset, _), info) in spec.stack_frames.iter().zip(infos) {
        b.u32(text_base + offset);
        b.u32(text_base + offset + 0x10);
        b.u32(base + info);
    }
    (start, b.len() - start)
}

/// Builds a PE32+ image from `spec`.
pub fn build_image(spec: &ImageSpec) -> Vec<u8> {
    let text = vec![0xC3u8; 0x40]; // ret
    let rdata_len = u32::try_from(build_rdata(spec, 0, 0).blob.len()).unwrap();
    let mut out = Vec::new();
    let mut writer = Writer::new(true, 0x1000, 0x200, &mut out);
    writer.reserve_dos_header_and_stub();
    writer.reserve_nt_headers(16);
    writer.reserve_section_headers(if spec.relocations { 3 } else { 2 });
    let text_range = writer.reserve_section(
        *b".text\0\0\0",
        pe::SectionFlags(spec.text_characteristics),
        0x40,
        0x40,
    );
    let rdata_range = writer.reserve_rdata_section(rdata_len);
    let mut rdata = build_rdata(
        spec,
        rdata_range.virtual_address,
        text_range.virtual_address,
    );
    if spec.relocations {
        // One absolute address in .rdata: the first IAT slot is as good as any.
        writer.add_reloc(rdata_range.virtual_address, pe::IMAGE_REL_BASED_DIR64);
        writer.reserve_reloc_section();
    }
    let debug_entry = rdata.debug.0;
    let codeview_file = rdata_range.file_offset
        + u32::from_le_bytes(
            rdata.blob[debug_entry as usize + 20..][..4]
                .try_into()
                .unwrap(),
        )
        - rdata_range.virtual_address;
    rdata.blob[debug_entry as usize + 24..][..4].copy_from_slice(&codeview_file.to_le_bytes());
    let rva = |(offset, size): (u32, u32)| (rdata_range.virtual_address + offset, size);
    let (import_rva, import_size) = rva(rdata.import);
    writer.set_data_directory(pe::IMAGE_DIRECTORY_ENTRY_IMPORT, import_rva, import_size);
    if spec.export_driver_entry {
        let (export_rva, export_size) = rva(rdata.export);
        writer.set_data_directory(pe::IMAGE_DIRECTORY_ENTRY_EXPORT, export_rva, export_size);
    }
    let (debug_rva, debug_size) = rva(rdata.debug);
    writer.set_data_directory(pe::IMAGE_DIRECTORY_ENTRY_DEBUG, debug_rva, debug_size);
    if !spec.stack_frames.is_empty() {
        let (exception_rva, exception_size) = rva(rdata.exception);
        writer.set_data_directory(
            pe::IMAGE_DIRECTORY_ENTRY_EXCEPTION,
            exception_rva,
            exception_size,
        );
    }

    writer.write_dos_header_and_stub().unwrap();
    writer.write_nt_headers(NtHeaders {
        machine: pe::Machine(spec.machine),
        time_date_stamp: 0,
        characteristics: pe::IMAGE_FILE_EXECUTABLE_IMAGE
            | pe::IMAGE_FILE_LARGE_ADDRESS_AWARE
            | pe::IMAGE_FILE_DLL,
        major_linker_version: 14,
        minor_linker_version: 0,
        address_of_entry_point: text_range.virtual_address + spec.entry_offset,
        image_base: 0x1_4000_0000,
        major_operating_system_version: 10,
        minor_operating_system_version: 0,
        major_image_version: 0,
        minor_image_version: 0,
        major_subsystem_version: 10,
        minor_subsystem_version: 0,
        subsystem: pe::Subsystem(spec.subsystem),
        dll_characteristics: pe::DllFlags(spec.dll_characteristics),
        size_of_stack_reserve: 0x4_0000,
        size_of_stack_commit: 0x1000,
        size_of_heap_reserve: 0x10_0000,
        size_of_heap_commit: 0x1000,
    });
    writer.write_section_headers();
    writer.write_section(text_range.file_offset, &text);
    writer.write_section(rdata_range.file_offset, &rdata.blob);
    if spec.relocations {
        writer.write_reloc_section();
    }
    out
}

/// An archive (`ar` format) holding `members` as (name, bytes).
pub fn build_archive(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            format!("{name}/"),
            0,
            0,
            0,
            644,
            data.len()
        );
        assert_eq!(header.len(), 60);
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

/// A short import object (MSVC/LLVM import library member) for `module!name`.
pub fn short_import(module: &str, name: &str) -> Vec<u8> {
    let mut b = Blob::default();
    b.u16(0); // Sig1
    b.u16(0xFFFF); // Sig2
    b.u16(0); // version
    b.u16(pe::IMAGE_FILE_MACHINE_AMD64.0);
    b.u32(0); // time stamp
    b.u32(u32::try_from(name.len() + module.len() + 2).unwrap());
    b.u16(0); // hint
    b.u16(1 << 2); // IMPORT_OBJECT_CODE, IMPORT_OBJECT_NAME
    b.bytes(name.as_bytes());
    b.bytes(&[0]);
    b.bytes(module.as_bytes());
    b.bytes(&[0]);
    b.0
}

fn coff_object(section: &[u8], data: &[u8], symbol: &str) -> Vec<u8> {
    let mut object = Object::new(BinaryFormat::Coff, Architecture::X86_64, Endianness::Little);
    let id = object.add_section(Vec::new(), section.to_vec(), object::SectionKind::Data);
    object.append_section_data(id, data, 4);
    object.add_symbol(Symbol {
        name: symbol.as_bytes().to_vec(),
        value: 0,
        size: 0,
        kind: SymbolKind::Data,
        scope: SymbolScope::Linkage,
        weak: false,
        section: SymbolSection::Section(id),
        flags: SymbolFlags::None,
    });
    object.write().unwrap()
}

/// A GNU dlltool-style import library (as mingw-w64 ships): a tail object naming the module
/// in `.idata$7`, and one object per export defining `__imp_<name>`.
pub fn dlltool_archive(module: &str, names: &[&str]) -> Vec<u8> {
    let stem = module.split('.').next().unwrap();
    let mut members = vec![(
        "tail.o",
        coff_object(
            b".idata$7",
            format!("{module}\0").as_bytes(),
            &format!("__lib64_lib{stem}_a_iname"),
        ),
    )];
    let objects: Vec<Vec<u8>> = names
        .iter()
        .map(|name| coff_object(b".idata$5", &[0; 8], &format!("__imp_{name}")))
        .collect();
    for object in objects {
        members.push(("s.o", object));
    }
    build_archive(&members)
}

/// Block size of the crafted PDBs.
const PDB_BLOCK: usize = 512;

/// An MSF 7.0 file (a PDB) holding `streams`: block 0 the superblock, block 1 the block map,
/// block 2 the stream directory, then each stream's blocks in order.
pub fn build_pdb(streams: &[Vec<u8>]) -> Vec<u8> {
    let mut blocks = vec![vec![0_u8; PDB_BLOCK]; 3];
    let mut directory = Blob::default();
    directory.u32(u32::try_from(streams.len()).unwrap());
    for stream in streams {
        directory.u32(u32::try_from(stream.len()).unwrap());
    }
    for stream in streams {
        for chunk in stream.chunks(PDB_BLOCK) {
            directory.u32(u32::try_from(blocks.len()).unwrap());
            let mut block = chunk.to_vec();
            block.resize(PDB_BLOCK, 0);
            blocks.push(block);
        }
    }
    assert!(directory.0.len() <= PDB_BLOCK, "directory fits one block");
    // Readers look for the superblock in the file's first 4 KiB: no PDB is shorter.
    if blocks.len() * PDB_BLOCK < 4096 {
        blocks.resize(4096 / PDB_BLOCK, vec![0_u8; PDB_BLOCK]);
    }
    blocks[2][..directory.0.len()].copy_from_slice(&directory.0);
    blocks[1][..4].copy_from_slice(&2_u32.to_le_bytes());
    let mut superblock = Blob::default();
    superblock.bytes(b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0");
    superblock.u32(u32::try_from(PDB_BLOCK).unwrap());
    superblock.u32(1); // free block map
    superblock.u32(u32::try_from(blocks.len()).unwrap());
    superblock.u32(u32::try_from(directory.0.len()).unwrap());
    superblock.u32(0);
    superblock.u32(1); // the block map's block
    blocks[0][..superblock.0.len()].copy_from_slice(&superblock.0);
    blocks.concat()
}

/// The PDB info stream (stream 1): version, signature, `age`, `guid`, and an empty table of
/// named streams.
pub fn pdb_info_stream(guid: [u8; 16], age: u32) -> Vec<u8> {
    let mut b = Blob::default();
    b.u32(20_000_404);
    b.u32(0);
    b.u32(age);
    b.bytes(&guid);
    // Names buffer size, then the hash table: size, capacity, present and deleted bit vectors.
    for _ in 0..5 {
        b.u32(0);
    }
    b.0
}

/// A DBI stream (stream 3) listing modules as (symbol stream, symbol bytes incl. signature).
pub fn pdb_dbi_stream(modules: &[(u16, usize)]) -> Vec<u8> {
    let mut list = Blob::default();
    for (index, (stream, bytes)) in modules.iter().enumerate() {
        list.bytes(&[0; 34]);
        list.u16(*stream);
        list.u32(u32::try_from(*bytes).unwrap());
        list.bytes(&[0; 24]);
        list.bytes(format!("module{index}.o\0object{index}.o\0").as_bytes());
        list.align(4);
    }
    // The header: signature (-1: the "new" header), version (V70), age, then the global,
    // public and symbol record streams (none) with build numbers between them.
    let mut b = Blob::default();
    b.u32(u32::MAX);
    b.u32(19_990_903);
    b.u32(1);
    for _ in 0..3 {
        b.u16(u16::MAX);
        b.u16(0);
    }
    b.u32(list.len());
    b.bytes(&[0; 36]);
    b.bytes(&list.0);
    b.0
}

/// A module symbol stream: the signature, a long `S_OBJNAME` (so the stream spans blocks),
/// then one procedure record per (kind, section, offset, name).
pub fn pdb_module_stream(procedures: &[(u16, u16, u32, &str)]) -> Vec<u8> {
    let framed: Vec<_> = procedures
        .iter()
        .map(|&(kind, section, offset, name)| (kind, section, offset, name, None))
        .collect();
    pdb_module_stream_framed(&framed)
}

/// A crafted procedure: kind, section, offset, name, and (frame size, callee-saved bytes) of
/// its `S_FRAMEPROC` record if it has one.
pub type FramedProcedure<'a> = (u16, u16, u32, &'a str, Option<(u32, u32)>);

/// As [`pdb_module_stream`], each procedure followed by an `S_FRAMEPROC` record where given.
pub fn pdb_module_stream_framed(procedures: &[FramedProcedure<'_>]) -> Vec<u8> {
    let mut b = Blob::default();
    b.u32(4); // CV_SIGNATURE_C13
    let mut record = |kind: u16, data: &[u8]| {
        b.u16(u16::try_from(data.len() + 2).unwrap());
        b.u16(kind);
        b.bytes(data);
    };
    let mut objname = vec![0_u8; 4];
    objname.extend_from_slice(&[b'x'; 600]);
    objname.push(0);
    record(0x1101, &objname);
    for (kind, section, offset, name, frame) in procedures {
        let mut data = vec![0_u8; 28];
        data.extend_from_slice(&offset.to_le_bytes());
        data.extend_from_slice(&section.to_le_bytes());
        data.push(0);
        data.extend_from_slice(name.as_bytes());
        data.push(0);
        record(*kind, &data);
        if let Some((size, callee_saved)) = frame {
            // cbFrame, cbPad, offPad, cbSaveRegs, offExHdr (u32), sectExHdr (u16), flags (u32).
            let mut data = Vec::new();
            for value in [*size, 0, 0, *callee_saved, 0] {
                data.extend_from_slice(&value.to_le_bytes());
            }
            data.extend_from_slice(&[0; 6]);
            record(0x1012, &data);
        }
    }
    b.0
}
