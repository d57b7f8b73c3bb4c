//! `[Version]` rules: Signature, Provider, Class/ClassGuid, CatalogFile, DriverVer,
//! PnpLockdown (InfVerif 1001, 1010, 1088, 1204, 1214, 1217, 1218, 1280, 1281, 1284,
//! 1286, 1324).

use super::context::Context;
use crate::parse::{Entry, Section};

/// Setup classes with a fixed GUID that these rules know (from Microsoft's
/// "System-Defined Device Setup Classes" pages).
const KNOWN_CLASSES: &[(&str, &str, bool)] = &[
    // (class, GUID, reserved for system use)
    ("System", "{4d36e97d-e325-11ce-bfc1-08002be10318}", false),
    ("Net", "{4d36e972-e325-11ce-bfc1-08002be10318}", false),
    (
        "NetService",
        "{4d36e974-e325-11ce-bfc1-08002be10318}",
        false,
    ),
    ("NetTrans", "{4d36e975-e325-11ce-bfc1-08002be10318}", false),
    (
        "LegacyDriver",
        "{8ecc055d-047f-11d1-a537-0000f8753ed1}",
        true,
    ),
    ("Unknown", "{4d36e97e-e325-11ce-bfc1-08002be10318}", true),
    ("NoDriver", "{4d36e976-e325-11ce-bfc1-08002be10318}", true),
    ("Computer", "{4d36e966-e325-11ce-bfc1-08002be10318}", true),
];

/// Keys that may appear once only in `[Version]`.
const SINGLE_KEYS: &[&str] = &[
    "Signature",
    "Class",
    "ClassGuid",
    "Provider",
    "CatalogFile",
    "DriverVer",
    "PnpLockdown",
];

/// Checks the `[Version]` section.
pub fn check(cx: &mut Context<'_>) {
    let inf = cx.inf;
    let Some(version) = inf.section("Version") else {
        cx.findings.error(
            "version.missing",
            None,
            "no [Version] section (InfVerif 1001)",
        );
        return;
    };
    for key in SINGLE_KEYS {
        if let Some(second) = version.entries_with_key(key).nth(1) {
            cx.findings.error(
                "version.duplicate-key",
                Some(second.line),
                format!("{key} appears more than once in [Version] (InfVerif 1088)"),
            );
        }
    }
    signature(cx, version);
    provider(cx, version);
    class(cx, version);
    catalog(cx, version);
    driver_ver(cx, version);
    match version.entry("PnpLockdown") {
        Some(entry) if cx.resolve(&entry.field(0)) == "1" => {}
        other => cx.findings.error(
            "version.pnplockdown",
            other.map_or(Some(version.line), |entry| Some(entry.line)),
            "[Version] must set PnpLockdown=1 (InfVerif 1324)",
        ),
    }
}

fn required<'s>(
    cx: &mut Context<'_>,
    version: &'s Section,
    key: &str,
    rule: &'static str,
) -> Option<&'s Entry> {
    let entry = version.entry(key);
    if entry.is_none() {
        cx.findings.error(
            rule,
            Some(version.line),
            format!("[Version] has no {key} (InfVerif 1234)"),
        );
    }
    entry
}

fn signature(cx: &mut Context<'_>, version: &Section) {
    let Some(entry) = required(cx, version, "Signature", "version.signature") else {
        return;
    };
    let value = entry.field(0);
    if !value.eq_ignore_ascii_case("$Windows NT$") {
        cx.findings.error(
            "version.signature",
            Some(entry.line),
            format!("Signature is `{value}`, expected \"$Windows NT$\" (InfVerif 1001)"),
        );
    }
}

fn provider(cx: &mut Context<'_>, version: &Section) {
    let Some(entry) = required(cx, version, "Provider", "version.provider") else {
        return;
    };
    let value = cx.resolve(&entry.field(0));
    if value.trim().is_empty() {
        cx.findings.error(
            "version.provider",
            Some(entry.line),
            "Provider is empty (InfVerif 1234)",
        );
    } else if value.trim().to_ascii_lowercase().starts_with("microsoft") {
        cx.findings.error(
            "version.provider",
            Some(entry.line),
            format!("Provider `{value}`: only Microsoft may name Microsoft (InfVerif 1204)"),
        );
    }
}

fn class(cx: &mut Context<'_>, version: &Section) {
    let class =
        required(cx, version, "Class", "version.class").map(|e| (e.line, cx.resolve(&e.field(0))));
    let guid =
        required(cx, version, "ClassGuid", "version.classguid").map(|e| (e.line, e.field(0)));
    if let Some((line, name)) = &class
        && (name.is_empty() || name.len() > 31)
    {
        cx.findings.error(
            "version.class",
            Some(*line),
            format!("Class `{name}` must be 1 to 31 characters (InfVerif 1286)"),
        );
    }
    if let Some((line, value)) = &guid
        && !is_guid(value)
    {
        cx.findings.error(
            "version.classguid",
            Some(*line),
            format!("ClassGuid `{value}` is not {{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}} (InfVerif 1010)"),
        );
    }
    let (Some((line, name)), Some((_, value))) = (class, guid) else {
        return;
    };
    for (known, known_guid, reserved) in KNOWN_CLASSES {
        let name_matches = name.eq_ignore_ascii_case(known);
        let guid_matches = value.eq_ignore_ascii_case(known_guid);
        if name_matches != guid_matches {
            cx.findings.error(
                "version.class-mismatch",
                Some(line),
                format!("Class `{name}` and ClassGuid `{value}` disagree: class {known} is {known_guid} (InfVerif 1280/1281)"),
            );
        } else if name_matches && *reserved {
            cx.findings.error(
                "version.class-reserved",
                Some(line),
                format!("Class {known} is reserved for system use (InfVerif 1284)"),
            );
        }
    }
}

fn catalog(cx: &mut Context<'_>, version: &Section) {
    let entries: Vec<&Entry> = version
        .entries
        .iter()
        .filter(|entry| {
            entry.key.as_deref().is_some_and(|key| {
                let key = key.to_ascii_lowercase();
                key == "catalogfile" || key.starts_with("catalogfile.")
            })
        })
        .collect();
    if entries.is_empty() {
        cx.findings.error(
            "version.catalog",
            Some(version.line),
            "[Version] names no CatalogFile: a driver package needs a catalog to be staged (InfVerif 1233)",
        );
    }
    for entry in entries {
        let name = cx.resolve(&entry.field(0));
        let valid = name
            .strip_suffix(".cat")
            .or_else(|| name.strip_suffix(".CAT"))
            .is_some_and(|stem| !stem.is_empty() && !stem.contains(['\\', '/', ':']));
        if !valid {
            cx.findings.error(
                "version.catalog",
                Some(entry.line),
                format!("CatalogFile `{name}` is not a plain `name.cat` (InfVerif 1214)"),
            );
        }
    }
}

fn driver_ver(cx: &mut Context<'_>, version: &Section) {
    let Some(entry) = required(cx, version, "DriverVer", "version.driverver") else {
        return;
    };
    let fields = entry.fields();
    let date = fields.first().map_or("", String::as_str);
    if !is_driver_date(date) {
        cx.findings.error(
            "version.driverver",
            Some(entry.line),
            format!("DriverVer date `{date}` is not a valid MM/DD/YYYY (InfVerif 1218)"),
        );
    }
    let number = fields.get(1).map_or("", String::as_str);
    if !is_driver_version(number) {
        cx.findings.error(
            "version.driverver",
            Some(entry.line),
            format!(
                "DriverVer version `{number}` is not w.x.y.z with each part 0-65535 (InfVerif 1217)"
            ),
        );
    }
}

/// `{8-4-4-4-12 hex}`.
#[must_use]
pub fn is_guid(text: &str) -> bool {
    let Some(inner) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) else {
        return false;
    };
    let groups: Vec<&str> = inner.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `MM/DD/YYYY` naming a real calendar day (one- or two-digit month and day are accepted,
/// as Windows does; the year is four digits).
#[must_use]
pub fn is_driver_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('/').collect();
    let [month, day, year] = parts.as_slice() else {
        return false;
    };
    let number = |part: &str, digits: std::ops::RangeInclusive<usize>| -> Option<u32> {
        (digits.contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse().ok())
            .flatten()
    };
    let (Some(month), Some(day), Some(year)) = (
        number(month, 1..=2),
        number(day, 1..=2),
        number(year, 4..=4),
    ) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    year >= 1980 && (1..=days_in_month).contains(&day)
}

/// `w.x.y.z`, each part a decimal 0-65535 (1 to 4 parts are legal in DriverVer, but stampinf
/// always writes four and so do we).
#[must_use]
pub fn is_driver_version(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|part| {
            !part.is_empty()
                && part.len() <= 5
                && part.bytes().all(|b| b.is_ascii_digit())
                && part.parse::<u32>().is_ok_and(|value| value <= 65535)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_format() {
        assert!(is_guid("{4d36e97d-e325-11ce-bfc1-08002be10318}"));
        assert!(!is_guid("4d36e97d-e325-11ce-bfc1-08002be10318"));
        assert!(!is_guid("{4d36e97d-e325-11ce-bfc1-08002be1031}"));
        assert!(!is_guid("{4d36e97d-e325-11ce-bfc1-08002be1031g}"));
    }

    #[test]
    fn driver_dates() {
        assert!(is_driver_date("11/23/2026"));
        assert!(is_driver_date("2/29/2024"));
        assert!(!is_driver_date("2/29/2026"));
        assert!(!is_driver_date("13/01/2026"));
        assert!(!is_driver_date("2026-11-23"));
        assert!(!is_driver_date("11/23/26"));
        assert!(!is_driver_date("04/31/2026"));
    }

    #[test]
    fn driver_versions() {
        assert!(is_driver_version("0.1.0.0"));
        assert!(is_driver_version("65535.0.0.1"));
        assert!(!is_driver_version("65536.0.0.1"));
        assert!(!is_driver_version("1.0.0"));
        assert!(!is_driver_version("1.0.0.x"));
    }
}
