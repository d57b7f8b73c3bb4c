//! Each rule fails on a crafted bad INF: the good fixtures pass cleanly, and every mutation
//! below (which must apply to the fixture) makes the named rule report an error.

use wskecho_infcheck::finding::{Finding, Severity};
use wskecho_infcheck::policy::Policy;
use wskecho_infcheck::rules::{Style, check_text};

const PRIMITIVE: &str = include_str!("fixtures/primitive.inf");
const DEVICE: &str = include_str!("fixtures/device.inf");

fn errors(text: &str) -> Vec<Finding> {
    check_text(text, &Policy::wskecho())
        .findings
        .into_iter()
        .filter(|finding| finding.severity == Severity::Error)
        .collect()
}

/// Applies `from` → `to` (which must occur in `base`) and expects an error of `rule`.
fn assert_mutation_fails(base: &str, from: &str, to: &str, rule: &str) {
    assert!(
        base.contains(from),
        "mutation for {rule}: `{from}` is not in the fixture"
    );
    let mutated = base.replacen(from, to, 1);
    let found = errors(&mutated);
    assert!(
        found.iter().any(|finding| finding.rule == rule),
        "mutation `{from}` -> `{to}` should fail rule {rule}; got {found:#?}"
    );
}

#[test]
fn good_fixtures_have_no_findings() {
    for (text, style) in [(PRIMITIVE, Style::Primitive), (DEVICE, Style::Device)] {
        let report = check_text(text, &Policy::wskecho());
        assert_eq!(report.findings, vec![]);
        assert_eq!(report.style, Some(style));
        assert_eq!(report.source_files, vec!["wskecho.sys".to_owned()]);
        assert_eq!(report.catalog.as_deref(), Some("wskecho.cat"));
    }
}

#[test]
fn utf16le_with_bom_is_checked_like_ascii() {
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(PRIMITIVE.encode_utf16().flat_map(u16::to_le_bytes));
    let report = wskecho_infcheck::check_bytes(&bytes, &Policy::wskecho());
    assert_eq!(
        (report.findings, report.style),
        (vec![], Some(Style::Primitive))
    );

    let bad = PRIMITIVE.replace("StartType     = 3", "StartType     = 2");
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(bad.encode_utf16().flat_map(u16::to_le_bytes));
    let report = wskecho_infcheck::check_bytes(&bytes, &Policy::wskecho());
    assert!(report.findings.iter().any(|f| f.rule == "service.start"));
}

#[test]
fn encodings_windows_would_misread_fail() {
    let mut utf8_bom = b"\xEF\xBB\xBF".to_vec();
    utf8_bom.extend(PRIMITIVE.as_bytes());
    let report = wskecho_infcheck::check_bytes(&utf8_bom, &Policy::wskecho());
    assert_eq!(
        report.findings.iter().map(|f| f.rule).collect::<Vec<_>>(),
        vec!["encoding"]
    );

    let latin1 = PRIMITIVE
        .replace("wskecho project", "wsk\u{e9}cho")
        .into_bytes();
    let report = wskecho_infcheck::check_bytes(&latin1, &Policy::wskecho());
    assert_eq!(
        report.findings.iter().map(|f| f.rule).collect::<Vec<_>>(),
        vec!["encoding"]
    );
}

#[test]
fn version_rules_fail() {
    let cases = [
        (
            "Signature   = \"$Windows NT$\"",
            "Signature   = \"$Chicago$\"",
            "version.signature",
        ),
        (
            "Provider    = %ProviderName%",
            "Provider    = \"Microsoft Contoso\"",
            "version.provider",
        ),
        (
            "Provider    = %ProviderName%",
            "Vendor = x",
            "version.provider",
        ),
        (
            "ClassGuid   = {4d36e97d-e325-11ce-bfc1-08002be10318}",
            "ClassGuid   = {4d36e97d-e325-11ce-bfc1-08002be1031}",
            "version.classguid",
        ),
        (
            "ClassGuid   = {4d36e97d-e325-11ce-bfc1-08002be10318}",
            "ClassGuid   = {4d36e972-e325-11ce-bfc1-08002be10318}",
            "version.class-mismatch",
        ),
        (
            "Class       = System\nClassGuid   = {4d36e97d-e325-11ce-bfc1-08002be10318}",
            "Class       = LegacyDriver\nClassGuid   = {8ecc055d-047f-11d1-a537-0000f8753ed1}",
            "version.class-reserved",
        ),
        ("Class       = System\n", "", "version.class"),
        ("CatalogFile = wskecho.cat\n", "", "version.catalog"),
        (
            "CatalogFile = wskecho.cat",
            "CatalogFile = wskecho.txt",
            "version.catalog",
        ),
        (
            "CatalogFile = wskecho.cat",
            "CatalogFile = sub\\wskecho.cat",
            "version.catalog",
        ),
        (
            "DriverVer   = 11/23/2026,0.1.0.0",
            "DriverVer   = 2026-11-23,0.1.0.0",
            "version.driverver",
        ),
        (
            "DriverVer   = 11/23/2026,0.1.0.0",
            "DriverVer   = 02/30/2026,0.1.0.0",
            "version.driverver",
        ),
        (
            "DriverVer   = 11/23/2026,0.1.0.0",
            "DriverVer   = 11/23/2026,0.1.0",
            "version.driverver",
        ),
        (
            "DriverVer   = 11/23/2026,0.1.0.0",
            "DriverVer   = 11/23/2026,70000.1.0.0",
            "version.driverver",
        ),
        (
            "DriverVer   = 11/23/2026,0.1.0.0\n",
            "",
            "version.driverver",
        ),
        ("PnpLockdown = 1", "PnpLockdown = 0", "version.pnplockdown"),
        (
            "PnpLockdown = 1",
            "DriverVer = 11/23/2026,0.1.0.0",
            "version.duplicate-key",
        ),
        ("[Version]", "[VersionX]", "version.missing"),
    ];
    for (from, to, rule) in cases {
        assert_mutation_fails(PRIMITIVE, from, to, rule);
    }
}

#[test]
fn token_and_syntax_rules_fail() {
    let cases = [
        (
            "[DefaultInstall.NTamd64]",
            "[DefaultInstall.NT$ARCH$]",
            "tokens.stampinf",
        ),
        (
            "ServiceBinary = %13%\\wskecho.sys",
            "ServiceBinary = %13%\\wskecho.sys ; $ARCH$ is a comment",
            "none",
        ),
        (
            "DisplayName   = %ServiceDisplayName%",
            "DisplayName   = %ServiceDisplayNam%",
            "strings.unresolved",
        ),
        (
            "DisplayName   = %ServiceDisplayName%",
            "DisplayName   = \"open",
            "syntax.quote",
        ),
        (
            "[wskecho.DriverFiles]",
            "[wskecho.DriverFiles",
            "syntax.section-header",
        ),
    ];
    for (from, to, rule) in cases {
        if rule == "none" {
            // A token inside a comment is not a token.
            assert_eq!(errors(&PRIMITIVE.replacen(from, to, 1)), vec![]);
        } else {
            assert_mutation_fails(PRIMITIVE, from, to, rule);
        }
    }
    assert_mutation_fails(
        PRIMITIVE,
        "DiskName           = \"wskecho package\"",
        "DiskName = \"$ARCH$ package\"",
        "tokens.stampinf",
    );
}

#[test]
fn section_rules_fail() {
    assert_mutation_fails(
        PRIMITIVE,
        "AddReg        = wskecho.Parameters",
        "AddReg        = wskecho.Params",
        "sections.missing",
    );
    assert_mutation_fails(
        PRIMITIVE,
        "CopyFiles = wskecho.DriverFiles",
        "CopyFiles = wskecho.Driverfile",
        "sections.missing",
    );
    assert_mutation_fails(
        PRIMITIVE,
        "[Strings]",
        "[wskecho.DriverFiles]\nwskecho.sys\n\n[Strings]",
        "sections.duplicate",
    );
    // An unused section is a warning, not an error.
    let report = check_text(
        &PRIMITIVE.replace("[Strings]", "[Leftover]\nx = 1\n\n[Strings]"),
        &Policy::wskecho(),
    );
    assert_eq!(
        report
            .findings
            .iter()
            .map(|f| (f.rule, f.severity))
            .collect::<Vec<_>>(),
        vec![("sections.unused", Severity::Warning)]
    );
}

#[test]
fn primitive_style_rules_fail() {
    let cases = [
        (
            "[DefaultInstall.NTamd64]",
            "[DefaultInstall]\nCopyFiles = wskecho.DriverFiles\n\n[DefaultInstall.NTamd64]",
            "primitive.undecorated",
        ),
        (
            "[Strings]",
            "[DefaultUninstall.NTamd64]\nDelFiles = wskecho.DriverFiles\n\n[Strings]",
            "primitive.uninstall",
        ),
        (
            "[Strings]",
            "[Manufacturer]\n%ProviderName% = M, NTamd64\n\n[M.NTamd64]\n\n[Strings]",
            "style.both",
        ),
        (
            "CopyFiles = wskecho.DriverFiles",
            "CopyFiles = wskecho.DriverFiles\nDriverVer = 11/23/2026,0.1.0.0",
            "primitive.directive",
        ),
        (
            "AddService = wskecho,,wskecho.Service",
            "AddService = wskecho,0x00000002,wskecho.Service",
            "primitive.assocservice",
        ),
        (
            "[DefaultInstall.NTamd64]",
            "[DefaultInstall.NTarm64]",
            "primitive.architecture",
        ),
    ];
    for (from, to, rule) in cases {
        assert_mutation_fails(PRIMITIVE, from, to, rule);
    }
    // LegacyUninstall=1 is the documented exception.
    let legacy = PRIMITIVE.replace(
        "[Strings]",
        "[DefaultUninstall.NTamd64]\nLegacyUninstall = 1\n\n[Strings]",
    );
    assert_eq!(errors(&legacy), vec![]);
    let nothing = PRIMITIVE.replace("DefaultInstall.NTamd64", "Install.NTamd64");
    assert!(errors(&nothing).iter().any(|f| f.rule == "style.none"));
}

#[test]
fn device_style_rules_fail() {
    let cases = [
        ("Root\\wskecho", "Root\\wskecho2", "device.hardware-id"),
        (
            "%ProviderName% = wskecho.Models, NTamd64",
            "%ProviderName% = wskecho.Models, NTx86",
            "device.models-arch",
        ),
        (
            "[wskecho.Models.NTamd64]",
            "[wskecho.Model.NTamd64]",
            "device.models-missing",
        ),
        (
            "%DeviceDescription% = wskecho.Device, Root\\wskecho",
            "%DeviceDescription% = wskecho.Devic, Root\\wskecho",
            "device.install-missing",
        ),
        (
            "%DeviceDescription% = wskecho.Device, Root\\wskecho",
            "%DeviceDescription% = wskecho.Device",
            "device.model",
        ),
        (
            "AddService = wskecho, 0x00000002, wskecho.Service",
            "AddService = wskecho, 0, wskecho.Service",
            "device.assocservice",
        ),
        (
            "[Strings]",
            "[DefaultInstall.NTamd64]\nCopyFiles = wskecho.DriverFiles\n\n[Strings]",
            "style.both",
        ),
        // The DDInstall section's services and files, as for the primitive INF.
        (
            "[wskecho.Device.NT.Services]",
            "[wskecho.Device.NT.Service]",
            "service.missing",
        ),
        (
            "[wskecho.Device.NT]\nCopyFiles = wskecho.DriverFiles\n",
            "[wskecho.Device.NT]\n",
            "service.binary",
        ),
        ("StartType     = 3", "StartType     = 0", "service.start"),
    ];
    for (from, to, rule) in cases {
        assert_mutation_fails(DEVICE, from, to, rule);
    }
}

/// The Plug and Play device switch `Parameters\PnpDevice`: required as the `REG_DWORD` 1 in the
/// device INF (or the device cannot start), forbidden in the primitive INF (or `sc stop` cannot
/// unload).
#[test]
fn pnp_device_switch_rules_fail() {
    let switch = "HKR, Parameters, PnpDevice,       0x00010001, 1\n";
    let cases = [
        (switch, "", "device.pnp-device"),
        (
            switch,
            "HKR, Parameters, PnpDevice,       0x00010001, 0\n",
            "registry.pnp-device",
        ),
        (
            switch,
            "HKR, Parameters, PnpDevice,       0x00010001, 2\n",
            "registry.pnp-device",
        ),
        (
            switch,
            "HKR, Parameters, PnpDevice,       0x00000000, \"1\"\n",
            "registry.pnp-device",
        ),
        (
            switch,
            "HKR, Parameters, PnpDevice,       0x00010001, yes\n",
            "registry.pnp-device",
        ),
        (
            switch,
            "HKR, Parameters, PnpDevice,       0x00010001, 1\nHKR, Parameters, pnpdevice, 0x00010001, 1\n",
            "registry.duplicate",
        ),
    ];
    for (from, to, rule) in cases {
        assert_mutation_fails(DEVICE, from, to, rule);
    }
    // Hexadecimal 1 is the same value.
    let hex = DEVICE.replace(
        switch,
        "HKR, Parameters, PnpDevice,       0x00010001, 0x1\n",
    );
    assert_eq!(errors(&hex), vec![]);
    // The primitive INF must not write it, not even as 0.
    let buffer = "HKR, Parameters, BufferSize,      0x00010001, 16384\n";
    for value in ["1", "0"] {
        assert_mutation_fails(
            PRIMITIVE,
            buffer,
            &format!("{buffer}HKR, Parameters, PnpDevice, 0x00010001, {value}\n"),
            "primitive.pnp-device",
        );
    }
}

#[test]
fn service_rules_fail() {
    let cases = [
        ("ServiceType   = 1", "ServiceType   = 2", "service.type"),
        ("StartType     = 3", "StartType     = 2", "service.start"),
        (
            "StartType     = 3",
            "StartType     = demand",
            "service.start",
        ),
        (
            "ErrorControl  = 1",
            "ErrorControl  = 3",
            "service.error-control",
        ),
        (
            "ServiceBinary = %13%\\wskecho.sys",
            "ServiceBinary = %12%\\wskecho.sys",
            "service.binary",
        ),
        (
            "ServiceBinary = %13%\\wskecho.sys",
            "ServiceBinary = %13%\\echo.sys",
            "service.binary",
        ),
        (
            "ServiceBinary = %13%\\wskecho.sys",
            "ServiceBinary = C:\\wskecho.sys",
            "service.binary",
        ),
        (
            "ServiceBinary = %13%\\wskecho.sys\n",
            "",
            "service.field-missing",
        ),
        ("ErrorControl  = 1\n", "", "service.field-missing"),
        (
            "AddService = wskecho,,wskecho.Service",
            "AddService = echo,,wskecho.Service",
            "service.name",
        ),
        (
            "AddService = wskecho,,wskecho.Service",
            "AddService = echo,,wskecho.Service",
            "service.missing",
        ),
        (
            "AddService = wskecho,,wskecho.Service",
            "AddService = wskecho,x,wskecho.Service",
            "service.flags",
        ),
        (
            "AddService = wskecho,,wskecho.Service",
            "AddService = wskecho,,wskecho.Svc",
            "service.section",
        ),
        (
            "[DefaultInstall.NTamd64.Services]",
            "[DefaultInstall.NTamd64.Service]",
            "service.missing",
        ),
    ];
    for (from, to, rule) in cases {
        assert_mutation_fails(PRIMITIVE, from, to, rule);
    }
    // The copied image must be the one the service runs.
    assert_mutation_fails(
        PRIMITIVE,
        "[wskecho.DriverFiles]\nwskecho.sys",
        "[wskecho.DriverFiles]\nother.sys",
        "service.binary",
    );
}

#[test]
fn file_rules_fail() {
    let cases = [
        ("wskecho.sys = 1", "wskecho.sy = 1", "files.source-missing"),
        ("wskecho.sys = 1", "wskecho.sys = 2", "files.disk-missing"),
        (
            "wskecho.DriverFiles = 13",
            "other.Files = 13",
            "files.destination-missing",
        ),
        (
            "wskecho.sys = 1",
            "wskecho.sys = 1\nwskecho.cat = 1",
            "files.catalog-listed",
        ),
    ];
    for (from, to, rule) in cases {
        assert_mutation_fails(PRIMITIVE, from, to, rule);
    }
    // DIRID 13 (the driver store) keeps the package's names and layout.
    assert_mutation_fails(
        PRIMITIVE,
        "[wskecho.DriverFiles]\nwskecho.sys",
        "[wskecho.DriverFiles]\nwskecho.sys,echo.sys",
        "files.driver-store",
    );
    assert_mutation_fails(
        PRIMITIVE,
        "wskecho.DriverFiles = 13",
        "wskecho.DriverFiles = 13,x64",
        "files.driver-store",
    );
    assert_mutation_fails(
        PRIMITIVE,
        "wskecho.sys = 1",
        "wskecho.sys = 1,x64",
        "files.driver-store",
    );
    let same_layout = PRIMITIVE
        .replace("wskecho.DriverFiles = 13", "wskecho.DriverFiles = 13,x64")
        .replace("wskecho.sys = 1", "wskecho.sys = 1,x64");
    assert_eq!(errors(&same_layout), vec![]);
    // DefaultDestDir covers a copy section that has no entry of its own.
    let default_dest = PRIMITIVE.replace("wskecho.DriverFiles = 13", "DefaultDestDir = 13");
    assert_eq!(errors(&default_dest), vec![]);
}

/// Registry lines: root, subkey, flags, names, DWORD values.
#[test]
fn registry_rules_fail() {
    let dword = "HKR, Parameters, MaxConnections,  0x00010001, 1024";
    let per_address = "HKR, Parameters, MaxConnectionsPerAddress, 0x00010001, 64";
    let cases = [
        (
            dword,
            "HKLM, System\\CurrentControlSet\\Services\\wskecho\\Parameters, MaxConnections, 0x00010001, 1024",
            "registry.root",
        ),
        (
            dword,
            "HKR, , MaxConnections, 0x00010001, 1024",
            "registry.not-parameters",
        ),
        (
            dword,
            "HKR, Parameters, MaxConnections, 0x00000000, \"1024\"",
            "registry.type",
        ),
        (
            dword,
            "HKR, Parameters, MaxConnections, 0x00010001, 0",
            "registry.range",
        ),
        (
            dword,
            "HKR, Parameters, MaxConnections, 0x00010001, 1000",
            "registry.default",
        ),
        (
            dword,
            "HKR, Parameters, MaxConnections, 0x00010001, many",
            "registry.value",
        ),
        (
            dword,
            "HKR, Parameters, MaxConnections, 0x0001000z, 1024",
            "registry.flags",
        ),
        (
            dword,
            "HKR, Parameters, MaxConnections, 0x00010005, 1024",
            "registry.flags",
        ),
        (
            dword,
            "HKR, Parameters, MaxConnection,  0x00010001, 1024",
            "registry.unknown",
        ),
        (
            dword,
            "HKR, Parameters, MaxConnection,  0x00010001, 1024",
            "registry.missing",
        ),
        (
            dword,
            "HKR, Parameters, BufferSize, 0x00010001, 16384",
            "registry.duplicate",
        ),
        (
            dword,
            "HKR, Parameters, MaxConnections, 0x00010001, 65537",
            "registry.range",
        ),
        (
            "HKR, Parameters, BufferSize,      0x00010001, 16384",
            "HKR, Parameters, BufferSize, 0x00010001, 511",
            "registry.range",
        ),
        (
            per_address,
            "HKR, Parameters, MaxConnectionsPerAddress, 0x00010001, 65537",
            "registry.range",
        ),
        (
            per_address,
            "HKR, Parameters, MaxConnectionsPerAddress, 0x00010001, 0",
            "registry.default",
        ),
        (
            per_address,
            "HKR, Parameters, MaxConnectionsPerAddress, 0x00000000, \"64\"",
            "registry.type",
        ),
        (per_address, "", "registry.missing"),
    ];
    for (from, to, rule) in cases {
        assert_mutation_fails(PRIMITIVE, from, to, rule);
    }
}

/// `IdleTimeout` and `NoDelay`: the driver's ranges and defaults.
#[test]
fn idle_timeout_and_no_delay_rules_fail() {
    let idle = "HKR, Parameters, IdleTimeout,     0x00010001, 120";
    let no_delay = "HKR, Parameters, NoDelay,         0x00010001, 1";
    let cases = [
        (
            idle,
            "HKR, Parameters, IdleTimeout, 0x00010001, 86401",
            "registry.range",
        ),
        (
            idle,
            "HKR, Parameters, IdleTimeout, 0x00010001, 0",
            "registry.default",
        ),
        (idle, "", "registry.missing"),
        (
            no_delay,
            "HKR, Parameters, NoDelay, 0x00010001, 2",
            "registry.range",
        ),
        (
            no_delay,
            "HKR, Parameters, NoDelay, 0x00010001, 0",
            "registry.default",
        ),
        (
            no_delay,
            "HKR, Parameters, NoDelay, 0x00000000, \"1\"",
            "registry.type",
        ),
    ];
    for (from, to, rule) in cases {
        assert_mutation_fails(PRIMITIVE, from, to, rule);
    }
}

/// `ListenAddresses`: type, and the driver's own parser on each entry.
#[test]
fn listen_address_rules_fail() {
    let multi =
        "HKR, Parameters, ListenAddresses, 0x00010000, \"127.0.0.1:40007\", \"[::1]:40007\"";
    let cases = [
        (
            multi,
            "HKR, Parameters, ListenAddresses, 0x00000000, \"127.0.0.1:40007\"",
            "registry.type",
        ),
        (
            multi,
            "HKR, Parameters, ListenAddresses, 0x00010000, \"127.0.0.1\", \"[::1]:40007\"",
            "registry.value",
        ),
        (
            multi,
            "HKR, Parameters, ListenAddresses, 0x00010000, \"::1:40007\", \"[::1]:40007\"",
            "registry.value",
        ),
        (
            multi,
            "HKR, Parameters, ListenAddresses, 0x00010000, \"127.0.0.1:40007\"",
            "registry.default",
        ),
        (
            multi,
            "HKR, Parameters, ListenAddresses, 0x00010000, \"0.0.0.0:40007\", \"[::]:40007\"",
            "registry.default",
        ),
        (
            multi,
            "HKR, Parameters, ListenAddresses, 0x00010000",
            "registry.value",
        ),
        (
            multi,
            "HKR, Parameters, ListenAddresses, 0x00010000, \"[::1]:40007\", \"[::1]:40007\"",
            "registry.value",
        ),
        (
            multi,
            "HKR, Parameters, ListenAddresses, 0x00010000, \"127.0.0.1:0\", \"[::1]:40007\"",
            "registry.value",
        ),
        (
            multi,
            "HKR, Parameters, ListenAddresses, 0x00010008, \"127.0.0.1:40007\", \"[::1]:40007\"",
            "registry.append",
        ),
    ];
    for (from, to, rule) in cases {
        assert_mutation_fails(PRIMITIVE, from, to, rule);
    }
}
