//! The committed INF sources (`wskecho.inx` next to `Cargo.toml`, where wdk-build and cargo-wdk
//! take `<crate>.inx` from, and `inf/*.inx`) pass every rule once stamped, so a broken `.inx`
//! fails `cargo test` before any cross-build. Stamping here does what scripts/cross/stampinf
//! does to them: `$ARCH$` → `amd64`, and a DriverVer line in `[Version]`.

use std::path::PathBuf;

use wskecho_infcheck::policy::Policy;
use wskecho_infcheck::rules::Style;

/// The two directories that hold `.inx` sources: the driver crate's root, and `inf/`.
fn source_dirs() -> [PathBuf; 2] {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    [root.clone(), root.join("inf")]
}

/// The committed `.inx` sources, as paths relative to the driver crate's root.
fn sources() -> Vec<String> {
    let mut names = Vec::new();
    for (dir, prefix) in source_dirs().iter().zip(["", "inf/"]) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        names.extend(
            entries
                .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .filter(|name| {
                    std::path::Path::new(name)
                        .extension()
                        .is_some_and(|ext| ext.eq_ignore_ascii_case("inx"))
                })
                .map(|name| format!("{prefix}{name}")),
        );
    }
    names.sort();
    names
}

fn stamped(name: &str) -> String {
    let [root, _] = source_dirs();
    let path = root.join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let (_, text) = wskecho_infcheck::text::decode(&bytes)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let has_driver_ver = text.lines().any(|line| {
        line.trim_start()
            .to_ascii_lowercase()
            .starts_with("driverver")
    });
    assert!(!has_driver_ver, "{name}: DriverVer is stampinf's job");
    let mut out = String::new();
    for line in text.replace("$ARCH$", "amd64").lines() {
        out.push_str(line);
        out.push('\n');
        if line.trim().eq_ignore_ascii_case("[Version]") {
            out.push_str("DriverVer = 11/23/2026,0.1.0.0\n");
        }
    }
    out
}

#[test]
fn every_inx_source_is_known_here() {
    assert_eq!(
        sources(),
        vec!["inf/wskecho-root.inx", "wskecho.inx"],
        "add a test for a new .inx"
    );
}

#[test]
fn service_inx_is_a_clean_primitive_inf() {
    let report = wskecho_infcheck::rules::check_text(&stamped("wskecho.inx"), &Policy::wskecho());
    assert_eq!(report.findings, vec![]);
    assert_eq!(report.style, Some(Style::Primitive));
}

#[test]
fn root_inx_is_a_clean_device_inf() {
    let report =
        wskecho_infcheck::rules::check_text(&stamped("inf/wskecho-root.inx"), &Policy::wskecho());
    assert_eq!(report.findings, vec![]);
    assert_eq!(report.style, Some(Style::Device));
}
