//! The committed INF sources (`inf/*.inx`) pass every rule once stamped, so a broken `.inx`
//! fails `cargo test` before any cross-build. Stamping here does what scripts/cross/stampinf
//! does to them: `$ARCH$` → `amd64`, and a DriverVer line in `[Version]`.

use std::path::PathBuf;

use wskecho_infcheck::policy::Policy;
use wskecho_infcheck::rules::Style;

fn inf_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../inf")
}

fn stamped(name: &str) -> String {
    let path = inf_dir().join(name);
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
    let mut names: Vec<String> = std::fs::read_dir(inf_dir())
        .expect("inf/ exists")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| {
            std::path::Path::new(name)
                .extension()
                .is_some_and(|ext| ext.eq_ignore_ascii_case("inx"))
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["wskecho-root.inx", "wskecho.inx"],
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
        wskecho_infcheck::rules::check_text(&stamped("wskecho-root.inx"), &Policy::wskecho());
    assert_eq!(report.findings, vec![]);
    assert_eq!(report.style, Some(Style::Device));
}
