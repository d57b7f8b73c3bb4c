//! Section rules: no section is defined twice (InfVerif 1209), every section a directive
//! names exists (1203), and sections nothing uses are reported as warnings (a misspelt
//! reference usually shows up as one missing and one unused section).

use std::collections::HashSet;

use super::context::Context;
use super::style::InstallRoot;

/// Directives whose fields are all section names.
const SECTION_LIST_DIRECTIVES: &[&str] = &[
    "CopyFiles",
    "AddReg",
    "DelReg",
    "BitReg",
    "DelFiles",
    "RenFiles",
];

/// Sections Windows reads by name, not through a reference.
const ENTRY_SECTIONS: &[&str] = &[
    "version",
    "strings",
    "sourcedisksnames",
    "sourcedisksfiles",
    "destinationdirs",
    "manufacturer",
    "defaultinstall",
    "defaultuninstall",
    "classinstall32",
];

/// Checks duplicates and references over the whole INF, and unused sections given the
/// install roots found by the style rule.
pub fn check(cx: &mut Context<'_>, roots: &[InstallRoot<'_>]) {
    let inf = cx.inf;
    let mut seen: HashSet<String> = HashSet::new();
    for section in &inf.sections {
        if !seen.insert(section.name.to_ascii_lowercase()) {
            cx.findings.error(
                "sections.duplicate",
                Some(section.line),
                format!(
                    "[{}] is defined more than once (InfVerif 1209)",
                    section.name
                ),
            );
        }
    }
    let mut used: HashSet<String> = HashSet::new();
    for section in &inf.sections {
        for entry in &section.entries {
            for name in referenced_sections(entry) {
                used.insert(name.to_ascii_lowercase());
                if !inf.has_section(&name) {
                    cx.findings.error(
                        "sections.missing",
                        Some(entry.line),
                        format!("[{name}] is referenced but not defined (InfVerif 1203)"),
                    );
                }
            }
        }
    }
    if let Some(manufacturer) = inf.section("Manufacturer") {
        for entry in &manufacturer.entries {
            let fields = entry.fields();
            let models = fields.first().cloned().unwrap_or_default();
            used.insert(models.to_ascii_lowercase());
            for decoration in fields.iter().skip(1) {
                used.insert(format!("{models}.{decoration}").to_ascii_lowercase());
            }
        }
    }
    for root in roots {
        used.insert(root.install.name.to_ascii_lowercase());
        if let Some(services) = root.services {
            used.insert(services.name.to_ascii_lowercase());
        }
    }
    for section in &inf.sections {
        let lower = section.name.to_ascii_lowercase();
        let base = lower.split('.').next().unwrap_or_default();
        if !used.contains(&lower) && !ENTRY_SECTIONS.contains(&base) {
            cx.findings.warning(
                "sections.unused",
                Some(section.line),
                format!(
                    "[{}] is not used by any install path for {}",
                    section.name, cx.policy.architecture
                ),
            );
        }
    }
}

/// Section names an entry refers to.
fn referenced_sections(entry: &crate::parse::Entry) -> Vec<String> {
    let fields = entry.fields();
    if SECTION_LIST_DIRECTIVES.iter().any(|key| entry.key_is(key)) {
        return fields
            .into_iter()
            .filter(|f| !f.is_empty() && !f.starts_with('@'))
            .collect();
    }
    if entry.key_is("AddService") {
        // AddService=name,flags,service-install-section[,event-log-install-section,...]
        return fields
            .into_iter()
            .skip(2)
            .take(2)
            .filter(|f| !f.is_empty())
            .collect();
    }
    Vec::new()
}
