//! The `wskecho-pecheck` command end to end: files on disk, output lines and exit status.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{
    DRIVER_ENTRY_OFFSET, GUID, ImageSpec, build_image, build_pdb, dlltool_archive, pdb_dbi_stream,
    pdb_info_stream, pdb_module_stream,
};

/// A scratch directory holding a crafted image and the import libraries of its modules.
struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    fn new(name: &str, spec: &ImageSpec) -> Self {
        let dir = std::env::temp_dir().join(format!("pecheck-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("wskecho.sys"), build_image(spec)).unwrap();
        let libs = [
            (
                "libntoskrnl.a",
                "ntoskrnl.exe",
                &["DbgPrint", "KeBugCheckEx"][..],
            ),
            ("libhal.a", "hal.dll", &["KeQueryPerformanceCounter"][..]),
            ("libnetio.a", "netio.sys", &["NmrRegisterClient"][..]),
        ];
        for (file, module, names) in libs {
            std::fs::write(dir.join(file), dlltool_archive(module, names)).unwrap();
        }
        Self { dir }
    }

    fn run(&self, extra: &[&str]) -> (i32, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_wskecho-pecheck"))
            .arg(self.dir.join("wskecho.sys"))
            .arg("--mingw-lib-dir")
            .arg(&self.dir)
            .args(extra)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.code().unwrap(), text)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn good_image_exits_zero() {
    let fixture = Fixture::new("good", &ImageSpec::default());
    let (code, text) = fixture.run(&["--expect-import", "netio.sys!NmrRegisterClient"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("PASS import-names"), "{text}");
    assert!(text.contains("10 checks, 0 failed"), "{text}");
}

#[test]
fn failed_check_exits_one_and_names_it() {
    let mut spec = ImageSpec::default();
    spec.imports[0].1.push("DbgPrnt".into());
    let fixture = Fixture::new("typo", &spec);
    let (code, text) = fixture.run(&[]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("FAIL import-names: ntoskrnl.exe!DbgPrnt (not exported)"),
        "{text}"
    );
}

#[test]
fn bad_arguments_and_missing_files_exit_two() {
    let fixture = Fixture::new("usage", &ImageSpec::default());
    let (code, text) = fixture.run(&["--expect-import", "NmrRegisterClient"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("expected <module>!<name>"), "{text}");

    let (code, text) = fixture.run(&["--pdb", "/nonexistent/wskecho.pdb"]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("cannot read /nonexistent/wskecho.pdb"),
        "{text}"
    );

    let (code, text) = fixture.run(&["--max-stack-frame", "1KiB"]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("--max-stack-frame 1KiB: expected a number"),
        "{text}"
    );

    let (code, text) = fixture.run(&["--frobnicate"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("unknown option --frobnicate"), "{text}");
}

#[test]
fn help_exits_zero_and_byte_expectations_keep_their_order() {
    let fixture = Fixture::new("help", &ImageSpec::default());
    let (code, text) = fixture.run(&["--help"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("--max-stack-frame <bytes>"), "{text}");

    let (code, text) = fixture.run(&[
        "--expect-bytes",
        "first=c3c3",
        "--expect-guid",
        "second=2227e803-8d8b-11d4-abad-009027719e09",
        "--expect-bytes",
        "third=c3",
    ]);
    assert_eq!(code, 1, "{text}");
    let labels: Vec<&str> = text
        .lines()
        .filter_map(|line| line.split_once("expected-bytes: "))
        .filter_map(|(_, rest)| rest.split(' ').next())
        .collect();
    assert_eq!(labels, ["first", "second", "third"], "{text}");
}

#[test]
fn stack_frame_limit_fails_naming_the_function() {
    // The default image's DriverEntry: push rbx; sub rsp, 0x20 = 40 bytes.
    let fixture = Fixture::new("frames", &ImageSpec::default());
    let (code, text) = fixture.run(&["--max-stack-frame", "40"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("PASS stack-frames: 1 functions, none above 40 bytes"),
        "{text}"
    );

    let (code, text) = fixture.run(&["--max-stack-frame", "39"]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("FAIL stack-frames: 1 of 1 functions have a stack frame above 39 bytes: DriverEntry (RVA 0x"),
        "{text}"
    );
}

#[test]
fn stack_frame_failure_is_named_from_the_pdb() {
    let fixture = Fixture::new("frames-pdb", &ImageSpec::default());
    // DriverEntry lies in section 1 (.text) at DRIVER_ENTRY_OFFSET.
    let module = pdb_module_stream(&[(0x1110, 1, DRIVER_ENTRY_OFFSET, "wskecho::entry")]);
    let dbi = pdb_dbi_stream(&[(4, module.len())]);
    let pdb = build_pdb(&[
        Vec::new(),
        pdb_info_stream(GUID, 1),
        Vec::new(),
        dbi,
        module,
    ]);
    let path = fixture.dir.join("wskecho.pdb");
    std::fs::write(&path, pdb).unwrap();
    let path = path.to_string_lossy().into_owned();
    let (code, text) = fixture.run(&["--pdb", &path, "--max-stack-frame", "39"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("PASS codeview-pdb"), "{text}");
    assert!(
        text.contains("FAIL stack-frames: 1 of 1 functions have a stack frame above 39 bytes: wskecho::entry (RVA 0x"),
        "{text}"
    );

    // A PDB without symbols: the check still reports by RVA, with a note.
    std::fs::write(&path, build_pdb(&[Vec::new(), pdb_info_stream(GUID, 1)])).unwrap();
    let (code, text) = fixture.run(&["--pdb", &path, "--max-stack-frame", "39"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("note: no function names from"), "{text}");
    assert!(
        text.contains("above 39 bytes: DriverEntry (RVA 0x"),
        "{text}"
    );
}
