//! The checker on crafted images: a well-formed driver passes every check, and each defect
//! makes exactly the check meant for it fail.

mod support;

use support::{
    DRIVER_ENTRY_OFFSET, GUID, ImageSpec, build_archive, build_image, build_pdb, dlltool_archive,
    pdb_dbi_stream, pdb_info_stream, pdb_module_stream, pdb_module_stream_framed, short_import,
    unwind_info,
};
use wskecho_pecheck::checks::{self, Outcome, Policy};
use wskecho_pecheck::cli::{guid_bytes, hex_bytes};
use wskecho_pecheck::export_list::ExportList;
use wskecho_pecheck::image::{ImageFacts, pdb_signature};
use wskecho_pecheck::pdb;

fn policy() -> Policy {
    let ntoskrnl = dlltool_archive("ntoskrnl.exe", &["DbgPrint", "KeBugCheckEx", "memcpy"]);
    let netio = dlltool_archive("netio.sys", &["NmrRegisterClient", "NmrDeregisterClient"]);
    Policy {
        export_lists: vec![
            ExportList::from_archive(&ntoskrnl).unwrap(),
            ExportList::from_archive(&netio).unwrap(),
        ],
        pdb_name: "wskecho.pdb".into(),
        ..Policy::default()
    }
}

fn check_with(spec: &ImageSpec, policy: &Policy) -> Vec<Outcome> {
    let image = build_image(spec);
    let facts = ImageFacts::parse(&image).expect("crafted image parses");
    checks::run(&image, &facts, policy)
}

/// Names of the failed checks.
fn failures(outcomes: &[Outcome]) -> Vec<&'static str> {
    outcomes
        .iter()
        .filter(|o| !o.passed())
        .map(|o| o.check)
        .collect()
}

/// Reason of the first failure of `check`.
fn reason<'a>(outcomes: &'a [Outcome], check: &str) -> &'a str {
    outcomes
        .iter()
        .find_map(|o| o.result.as_ref().err().filter(|_| o.check == check))
        .unwrap_or_else(|| panic!("{check} did not fail: {outcomes:#?}"))
}

#[test]
fn well_formed_image_passes_every_check() {
    let outcomes = check_with(&ImageSpec::default(), &policy());
    assert_eq!(failures(&outcomes), Vec::<&str>::new(), "{outcomes:#?}");
    assert_eq!(outcomes.len(), 9);
}

#[test]
fn misspelled_import_fails() {
    let mut spec = ImageSpec::default();
    spec.imports[1].1 = vec!["NmrRegisterClinet".into()];
    let outcomes = check_with(&spec, &policy());
    assert_eq!(failures(&outcomes), ["import-names"]);
    assert!(
        reason(&outcomes, "import-names").contains("netio.sys!NmrRegisterClinet (not exported)")
    );
}

#[test]
fn exports_newer_than_mingw_are_accepted_for_their_module_only() {
    // ExAllocatePool2 is not in mingw-w64 10's libntoskrnl.a (nor in this test's list).
    let mut spec = ImageSpec::default();
    spec.imports[0].1.push("ExAllocatePool2".into());
    assert_eq!(failures(&check_with(&spec, &policy())), Vec::<&str>::new());

    spec.imports[1].1.push("ExAllocatePool2".into());
    let outcomes = check_with(&spec, &policy());
    assert_eq!(failures(&outcomes), ["import-names"]);
    assert!(reason(&outcomes, "import-names").contains("netio.sys!ExAllocatePool2 (not exported)"));
}

#[test]
fn import_by_ordinal_fails() {
    let mut spec = ImageSpec::default();
    spec.imports[0].1.push("#17".into());
    let outcomes = check_with(&spec, &policy());
    assert_eq!(failures(&outcomes), ["import-names"]);
    assert!(reason(&outcomes, "import-names").contains("#17 (by ordinal)"));
}

#[test]
fn import_from_other_module_fails() {
    let mut spec = ImageSpec::default();
    spec.imports
        .push(("fltmgr.sys".into(), vec!["FltRegisterFilter".into()]));
    let outcomes = check_with(&spec, &policy());
    assert_eq!(failures(&outcomes), ["import-modules"]);
    assert!(reason(&outcomes, "import-modules").contains("fltmgr.sys"));
}

#[test]
fn allowed_module_without_export_list_fails() {
    let mut spec = ImageSpec::default();
    spec.imports
        .push(("hal.dll".into(), vec!["KeQueryPerformanceCounter".into()]));
    let outcomes = check_with(&spec, &policy());
    assert_eq!(failures(&outcomes), ["import-names"]);
    assert!(reason(&outcomes, "import-names").contains("no export list for hal.dll"));
}

#[test]
fn missing_base_relocations_fail() {
    let spec = ImageSpec {
        relocations: false,
        ..ImageSpec::default()
    };
    let outcomes = check_with(&spec, &policy());
    assert_eq!(failures(&outcomes), ["relocations"]);
}

#[test]
fn writable_and_executable_section_fails() {
    let mut spec = ImageSpec::default();
    spec.text_characteristics |= object::pe::IMAGE_SCN_MEM_WRITE.0;
    let outcomes = check_with(&spec, &policy());
    assert_eq!(failures(&outcomes), ["sections-not-wx"]);
    assert!(reason(&outcomes, "sections-not-wx").contains(".text"));
}

#[test]
fn missing_force_integrity_fails() {
    let mut spec = ImageSpec::default();
    spec.dll_characteristics &= !object::pe::IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY.0;
    let outcomes = check_with(&spec, &policy());
    assert_eq!(failures(&outcomes), ["dll-characteristics"]);
    assert!(reason(&outcomes, "dll-characteristics").ends_with("lacks FORCE_INTEGRITY"));
}

#[test]
fn missing_nx_and_dynamic_base_are_both_named() {
    let spec = ImageSpec {
        dll_characteristics: object::pe::IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY.0,
        ..ImageSpec::default()
    };
    let outcomes = check_with(&spec, &policy());
    assert!(reason(&outcomes, "dll-characteristics").ends_with("lacks NX_COMPAT, DYNAMIC_BASE"));
}

#[test]
fn wrong_machine_and_subsystem_fail() {
    let spec = ImageSpec {
        machine: object::pe::IMAGE_FILE_MACHINE_ARM64.0,
        subsystem: object::pe::IMAGE_SUBSYSTEM_WINDOWS_CUI.0,
        ..ImageSpec::default()
    };
    let outcomes = check_with(&spec, &policy());
    assert_eq!(failures(&outcomes), ["machine", "subsystem"]);
}

#[test]
fn entry_point_other_than_driver_entry_fails() {
    let spec = ImageSpec {
        entry_offset: 0x20,
        ..ImageSpec::default()
    };
    let outcomes = check_with(&spec, &policy());
    assert_eq!(failures(&outcomes), ["entry-point"]);
    assert!(reason(&outcomes, "entry-point").contains("is not DriverEntry"));
}

#[test]
fn unexported_driver_entry_fails() {
    let spec = ImageSpec {
        export_driver_entry: false,
        ..ImageSpec::default()
    };
    let outcomes = check_with(&spec, &policy());
    assert_eq!(failures(&outcomes), ["entry-point"]);
}

#[test]
fn codeview_naming_another_pdb_fails() {
    let spec = ImageSpec {
        pdb_path: "/tmp/other.pdb".into(),
        ..ImageSpec::default()
    };
    let outcomes = check_with(&spec, &policy());
    assert_eq!(failures(&outcomes), ["codeview-pdb"]);
}

#[test]
fn pdb_with_other_guid_or_age_fails() {
    let mut matching = policy();
    matching.pdb_signature = Some((GUID, 1));
    assert_eq!(
        failures(&check_with(&ImageSpec::default(), &matching)),
        Vec::<&str>::new()
    );

    let mut other_guid = policy();
    other_guid.pdb_signature = Some((*b"fedcba9876543210", 1));
    assert_eq!(
        failures(&check_with(&ImageSpec::default(), &other_guid)),
        ["codeview-pdb"]
    );

    let mut other_age = policy();
    other_age.pdb_signature = Some((GUID, 2));
    assert_eq!(
        failures(&check_with(&ImageSpec::default(), &other_age)),
        ["codeview-pdb"]
    );
}

#[test]
fn expected_imports_are_required() {
    let mut policy = policy();
    policy.expected_imports = vec![
        ("netio.sys".into(), "NmrRegisterClient".into()),
        ("netio.sys".into(), "NmrDeregisterClient".into()),
    ];
    let outcomes = check_with(&ImageSpec::default(), &policy);
    assert_eq!(failures(&outcomes), ["expected-import"]);
    assert_eq!(
        reason(&outcomes, "expected-import"),
        "netio.sys!NmrDeregisterClient is not imported"
    );
}

#[test]
fn expected_guid_bytes_are_searched_in_memory_order() {
    // NPI_WSK_INTERFACE_ID = {0x2227e803, 0x8d8b, 0x11d4, {0xab,0xad,0x00,0x90,0x27,0x71,0x9e,0x09}}
    let guid = guid_bytes("2227e803-8d8b-11d4-abad-009027719e09").unwrap();
    assert_eq!(guid, hex_bytes("03e827228b8dd411abad009027719e09").unwrap());

    let mut policy = policy();
    policy.expected_bytes = vec![("NPI_WSK_INTERFACE_ID".into(), guid.clone())];
    let absent = check_with(&ImageSpec::default(), &policy);
    assert_eq!(failures(&absent), ["expected-bytes"]);

    let spec = ImageSpec {
        rdata_extra: guid,
        ..ImageSpec::default()
    };
    assert_eq!(failures(&check_with(&spec, &policy)), Vec::<&str>::new());
}

#[test]
fn bad_guid_and_hex_arguments_are_rejected() {
    assert!(guid_bytes("2227e803-8d8b-11d4-abad-009027719e0").is_err());
    assert!(guid_bytes("not-a-guid").is_err());
    assert!(hex_bytes("abc").is_err());
    assert!(hex_bytes("zz").is_err());
    assert!(hex_bytes("").is_err());
}

#[test]
fn short_import_archives_are_read_too() {
    let archive = build_archive(&[
        ("a.o", short_import("hal.dll", "KeQueryPerformanceCounter")),
        ("b.o", short_import("hal.dll", "HalGetBusData")),
    ]);
    let list = ExportList::from_archive(&archive).unwrap();
    assert_eq!(list.module, "hal.dll");
    assert!(list.contains("HalGetBusData"));
    assert!(!list.contains("halgetbusdata"));
}

#[test]
fn archive_naming_two_modules_is_rejected() {
    let archive = build_archive(&[
        ("a.o", short_import("hal.dll", "KeQueryPerformanceCounter")),
        ("b.o", short_import("ntoskrnl.exe", "DbgPrint")),
    ]);
    assert!(
        ExportList::from_archive(&archive)
            .unwrap_err()
            .contains("exactly one module")
    );
}

#[test]
fn garbage_is_not_an_image() {
    assert!(ImageFacts::parse(b"MZ not really").is_err());
}

/// `policy()` with the stack frame limit.
fn frame_policy(limit: u32) -> Policy {
    Policy {
        max_stack_frame: Some(limit),
        ..policy()
    }
}

/// RVA of `.text` offset `offset` in a crafted image.
fn text_rva(spec: &ImageSpec, offset: u32) -> u32 {
    let facts = ImageFacts::parse(&build_image(spec)).unwrap();
    facts.sections[0].virtual_address + offset
}

#[test]
fn stack_frames_above_the_limit_fail_named_by_rva_largest_first() {
    let spec = ImageSpec {
        stack_frames: vec![
            (DRIVER_ENTRY_OFFSET, unwind_info(5, 1400)), // 1440: scaled large allocation
            (0x20, unwind_info(8, 0x12340)),             // 74,624: unscaled large allocation
            (0x30, unwind_info(2, 64)),                  // 80: small allocation
        ],
        ..ImageSpec::default()
    };
    let big = text_rva(&spec, 0x20);
    let entry = text_rva(&spec, DRIVER_ENTRY_OFFSET);

    let outcomes = check_with(&spec, &frame_policy(1024));
    assert_eq!(failures(&outcomes), ["stack-frames"]);
    assert_eq!(
        reason(&outcomes, "stack-frames"),
        format!(
            "2 of 3 functions have a stack frame above 1024 bytes: \
             function at RVA {big:#x}: 74624 bytes (sub rsp 74560 + pushes 64); \
             DriverEntry (RVA {entry:#x}): 1440 bytes (sub rsp 1400 + pushes 40)"
        )
    );

    // The limit itself is allowed.
    let outcomes = check_with(&spec, &frame_policy(1440));
    assert!(reason(&outcomes, "stack-frames").starts_with("1 of 3 functions"));
    let outcomes = check_with(&spec, &frame_policy(74_624));
    assert_eq!(failures(&outcomes), Vec::<&str>::new(), "{outcomes:#?}");
    let detail = outcomes.last().unwrap().result.as_ref().unwrap();
    assert_eq!(
        *detail,
        format!(
            "3 functions, none above 74624 bytes; largest function at RVA {big:#x}: \
             74624 bytes (sub rsp 74560 + pushes 64)"
        )
    );
}

#[test]
fn stack_frames_are_only_checked_when_asked() {
    let spec = ImageSpec {
        stack_frames: vec![(DRIVER_ENTRY_OFFSET, unwind_info(1, 4096))],
        ..ImageSpec::default()
    };
    assert_eq!(failures(&check_with(&spec, &policy())), Vec::<&str>::new());
    assert_eq!(
        failures(&check_with(&spec, &frame_policy(1024))),
        ["stack-frames"]
    );
}

#[test]
fn image_without_or_with_broken_unwind_information_fails_the_frame_check() {
    let mut spec = ImageSpec::default();
    spec.stack_frames.clear();
    let outcomes = check_with(&spec, &frame_policy(1024));
    assert_eq!(failures(&outcomes), ["stack-frames"]);
    assert!(reason(&outcomes, "stack-frames").starts_with("no unwind information"));

    // Version 3 does not exist; the other checks do not depend on the unwind information.
    spec.stack_frames = vec![(DRIVER_ENTRY_OFFSET, vec![3, 0, 0, 0])];
    assert_eq!(failures(&check_with(&spec, &policy())), Vec::<&str>::new());
    let outcomes = check_with(&spec, &frame_policy(1024));
    assert_eq!(failures(&outcomes), ["stack-frames"]);
    let reason = reason(&outcomes, "stack-frames");
    assert!(
        reason.starts_with("unwind information unreadable: unwind info 0x")
            && reason.ends_with("unknown version 3"),
        "{reason}"
    );
}

#[test]
fn stack_frame_report_prefers_the_pdb_names() {
    let spec = ImageSpec {
        stack_frames: vec![
            (DRIVER_ENTRY_OFFSET, unwind_info(5, 1400)),
            (0x20, unwind_info(8, 0x12340)),
        ],
        ..ImageSpec::default()
    };
    let big = text_rva(&spec, 0x20);
    let entry = text_rva(&spec, DRIVER_ENTRY_OFFSET);
    let mut policy = Policy {
        function_names: vec![(big, "big::frame<T>".into())],
        ..frame_policy(1024)
    };
    let outcomes = check_with(&spec, &policy);
    assert_eq!(
        reason(&outcomes, "stack-frames"),
        format!(
            "2 of 2 functions have a stack frame above 1024 bytes: \
             big::frame<T> (RVA {big:#x}): 74624 bytes (sub rsp 74560 + pushes 64); \
             DriverEntry (RVA {entry:#x}): 1440 bytes (sub rsp 1400 + pushes 40)"
        )
    );
    policy
        .function_names
        .push((entry, "wskecho::kernel::entry::driver_entry".into()));
    let outcomes = check_with(&spec, &policy);
    assert!(
        reason(&outcomes, "stack-frames").contains("; wskecho::kernel::entry::driver_entry (RVA "),
        "{outcomes:#?}"
    );
}

#[test]
fn pdb_procedures_come_from_every_module_stream() {
    let first = pdb_module_stream(&[
        (0x1110, 1, 0x10, "wskecho::kernel::entry::driver_entry"), // S_GPROC32
        (0x1146, 2, 0x40, "a::b<c::D>"),                           // S_LPROC32_ID
    ]);
    let second = pdb_module_stream(&[(0x110f, 1, 0x20, "local")]); // S_LPROC32
    assert!(first.len() > 512, "spans two blocks");
    let dbi = pdb_dbi_stream(&[(4, first.len()), (u16::MAX, 0), (5, second.len())]);
    let file = build_pdb(&[
        Vec::new(),
        pdb_info_stream(GUID, 3),
        Vec::new(),
        dbi,
        first,
        second,
    ]);
    assert_eq!(pdb_signature(&file).unwrap(), (GUID, 3));
    let procedures: Vec<(u16, u32, String)> = pdb::procedures(&file)
        .unwrap()
        .into_iter()
        .map(|p| (p.section, p.offset, p.name))
        .collect();
    assert_eq!(
        procedures,
        [
            (1, 0x10, "wskecho::kernel::entry::driver_entry".to_owned()),
            (2, 0x40, "a::b<c::D>".to_owned()),
            (1, 0x20, "local".to_owned()),
        ]
    );
}

#[test]
fn pdb_procedures_carry_their_frame_records() {
    let module = pdb_module_stream_framed(&[
        (0x1110, 1, 0x10, "framed", Some((104, 16))),
        (0x1110, 1, 0x20, "leaf", None),
        (0x110f, 1, 0x30, "big", Some((4600, 8))),
    ]);
    let dbi = pdb_dbi_stream(&[(4, module.len())]);
    let file = build_pdb(&[Vec::new(), Vec::new(), Vec::new(), dbi, module]);
    let frames: Vec<(String, Option<(u32, u32)>)> = pdb::procedures(&file)
        .unwrap()
        .into_iter()
        .map(|p| (p.name, p.frame.map(|f| (f.size, f.callee_saved))))
        .collect();
    assert_eq!(
        frames,
        [
            ("framed".to_owned(), Some((104, 16))),
            ("leaf".to_owned(), None),
            ("big".to_owned(), Some((4600, 8))),
        ]
    );
}

#[test]
fn broken_pdbs_are_errors() {
    assert!(pdb::procedures(b"not a pdb").is_err());
    let module = pdb_module_stream(&[(0x1110, 1, 0, "f")]);
    // The module claims more symbol bytes than its stream has.
    let dbi = pdb_dbi_stream(&[(4, module.len() + 1)]);
    let file = build_pdb(&[Vec::new(), Vec::new(), Vec::new(), dbi, module]);
    let error = pdb::procedures(&file).unwrap_err();
    assert!(
        error.contains("stream 4 shorter than its symbols"),
        "{error}"
    );
    // A record running past the end of the symbols.
    let module = [4_u32.to_le_bytes(), [0xf0, 0, 0x10, 0x11]].concat();
    let dbi = pdb_dbi_stream(&[(4, module.len())]);
    let file = build_pdb(&[Vec::new(), Vec::new(), Vec::new(), dbi, module]);
    let error = pdb::procedures(&file).unwrap_err();
    assert!(error.contains("runs past the stream"), "{error}");
    // No DBI stream.
    let error = pdb::procedures(&build_pdb(&[Vec::new()])).unwrap_err();
    assert!(error.contains("no stream 3"), "{error}");
}
