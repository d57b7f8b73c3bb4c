//! The install style of an INF and its entry points.
//!
//! * **Primitive** (non-PnP kernel service, Windows 10 1903+): `[DefaultInstall.<arch>]`
//!   sections, no `[Manufacturer]`, no undecorated `[DefaultInstall]`, no `[DefaultUninstall]`
//!   unless it only says `LegacyUninstall=1` (Microsoft, "Creating a primitive driver";
//!   InfVerif 1420-1423). A DefaultInstall section cannot hold DriverVer or LogConfig.
//! * **Device** (root-enumerated devnode, `devcon install ... Root\wskecho`):
//!   `[Manufacturer]` → `[Models.<arch>]` → `DDInstall` (+ `.Services` with the associated
//!   service, InfVerif 1296), and no DefaultInstall at all (Universal INF rule).

use super::context::Context;
use crate::parse::{Entry, Section};

/// How an INF installs its driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// `[DefaultInstall.<arch>]`: a service, no device.
    Primitive,
    /// `[Manufacturer]`/`[Models]`: the function driver of a device.
    Device,
}

/// One install section the rest of the rules follow (CopyFiles, AddReg, services).
pub struct InstallRoot<'a> {
    /// The install section (`DefaultInstall.NTamd64` or the `DDInstall` section).
    pub install: &'a Section,
    /// Its `.Services` section, if present.
    pub services: Option<&'a Section>,
    /// Which style it belongs to.
    pub style: Style,
}

/// Architecture decorations Windows knows.
const ARCHITECTURES: &[&str] = &["ntamd64", "ntx86", "ntarm64", "ntarm", "ntia64"];

/// Suffixes that make a section a sub-section of an install section, not one itself.
const SUBSECTIONS: &[&str] = &[
    "services",
    "hw",
    "coinstallers",
    "interfaces",
    "events",
    "wdf",
    "filters",
    "components",
    "software",
    "logconfigoverride",
    "factdef",
];

/// `base[.decoration...][.suffix]` split into (base, decoration parts, sub-section suffix).
fn split_name(name: &str) -> (String, Vec<String>, Option<String>) {
    let mut parts: Vec<String> = name.split('.').map(str::to_ascii_lowercase).collect();
    let base = parts.remove(0);
    let suffix = match parts.last() {
        Some(last) if SUBSECTIONS.contains(&last.as_str()) => parts.pop(),
        _ => None,
    };
    (base, parts, suffix)
}

/// Finds the install style, reports what it forbids, and returns the install sections for
/// the policy's architecture.
pub fn check<'a>(cx: &mut Context<'a>) -> Vec<InstallRoot<'a>> {
    let inf = cx.inf;
    let has_default = inf
        .sections
        .iter()
        .any(|s| split_name(&s.name).0 == "defaultinstall");
    let manufacturer = inf.section("Manufacturer");
    match (has_default, manufacturer) {
        (true, Some(manufacturer)) => {
            cx.findings.error(
                "style.both",
                Some(manufacturer.line),
                "[Manufacturer] and [DefaultInstall] in one INF: a primitive driver may have no \
                 [Manufacturer], and a device INF no DefaultInstall (Universal INF rule)",
            );
            Vec::new()
        }
        (true, None) => primitive(cx),
        (false, Some(manufacturer)) => device(cx, manufacturer),
        (false, None) => {
            cx.findings.error(
                "style.none",
                None,
                "no [DefaultInstall.<arch>] and no [Manufacturer]: the INF installs nothing",
            );
            Vec::new()
        }
    }
}

fn primitive<'a>(cx: &mut Context<'a>) -> Vec<InstallRoot<'a>> {
    let inf = cx.inf;
    let wanted = cx.policy.architecture.to_ascii_lowercase();
    let mut roots = Vec::new();
    for section in &inf.sections {
        let (base, decorations, suffix) = split_name(&section.name);
        match base.as_str() {
            "defaultinstall" => {
                let arch = decorations.first().map(String::as_str);
                if !arch.is_some_and(|arch| ARCHITECTURES.contains(&arch)) {
                    cx.findings.error(
                        "primitive.undecorated",
                        Some(section.line),
                        format!(
                            "[{}] has no architecture decoration such as .NTamd64 (InfVerif 1421)",
                            section.name
                        ),
                    );
                } else if suffix.is_none() {
                    forbidden_directives(cx, section);
                    if arch == Some(wanted.as_str()) && decorations.len() == 1 {
                        let services = inf.section(&format!("{}.Services", section.name));
                        roots.push(InstallRoot {
                            install: section,
                            services,
                            style: Style::Primitive,
                        });
                    }
                }
            }
            "defaultuninstall" => {
                let legacy = section
                    .entry("LegacyUninstall")
                    .is_some_and(|e| cx.resolve(&e.field(0)) == "1");
                if suffix.is_none() && !legacy {
                    cx.findings.error(
                        "primitive.uninstall",
                        Some(section.line),
                        format!("[{}] is not allowed in a primitive driver unless it sets LegacyUninstall=1 (InfVerif 1422)", section.name),
                    );
                }
            }
            _ => {}
        }
    }
    if roots.is_empty() {
        cx.findings.error(
            "primitive.architecture",
            None,
            format!(
                "no [DefaultInstall.{}] section (InfVerif 1423)",
                cx.policy.architecture
            ),
        );
    }
    roots
}

fn forbidden_directives(cx: &mut Context<'_>, section: &Section) {
    for key in ["DriverVer", "LogConfig"] {
        if let Some(entry) = section.entry(key) {
            cx.findings.error(
                "primitive.directive",
                Some(entry.line),
                format!(
                    "a DefaultInstall section cannot contain {key} (INF DefaultInstall Section)"
                ),
            );
        }
    }
}

fn device<'a>(cx: &mut Context<'a>, manufacturer: &'a Section) -> Vec<InstallRoot<'a>> {
    let inf = cx.inf;
    let wanted = cx.policy.architecture;
    let mut roots = Vec::new();
    let mut hardware_ids = Vec::new();
    for entry in &manufacturer.entries {
        let fields = entry.fields();
        let models = fields.first().cloned().unwrap_or_default();
        if models.is_empty() {
            cx.findings.error(
                "device.models-missing",
                Some(entry.line),
                "manufacturer entry without a models section name (InfVerif 1011)",
            );
            continue;
        }
        let decorations = &fields[1..];
        if !decorations.iter().any(|d| {
            d.split('.')
                .next()
                .is_some_and(|arch| arch.eq_ignore_ascii_case(wanted))
        }) {
            cx.findings.error(
                "device.models-arch",
                Some(entry.line),
                format!("models `{models}` has no {wanted} decoration: the {wanted} package would install nothing"),
            );
        }
        for decoration in decorations {
            let name = format!("{models}.{decoration}");
            let Some(section) = inf.section(&name) else {
                cx.findings.error(
                    "device.models-missing",
                    Some(entry.line),
                    format!("models section [{name}] not found (InfVerif 1203)"),
                );
                continue;
            };
            if decoration
                .split('.')
                .next()
                .is_some_and(|arch| arch.eq_ignore_ascii_case(wanted))
            {
                for model in &section.entries {
                    if let Some(root) = model_root(cx, model, &mut hardware_ids) {
                        roots.push(root);
                    }
                }
            }
        }
    }
    let hardware_id = cx.policy.hardware_id;
    if !hardware_ids
        .iter()
        .any(|id: &String| id.eq_ignore_ascii_case(hardware_id))
    {
        cx.findings.error(
            "device.hardware-id",
            Some(manufacturer.line),
            format!("no {wanted} model installs on hardware ID {hardware_id} (what `devcon install` creates)"),
        );
    }
    roots
}

fn model_root<'a>(
    cx: &mut Context<'a>,
    model: &Entry,
    hardware_ids: &mut Vec<String>,
) -> Option<InstallRoot<'a>> {
    let inf = cx.inf;
    let fields = model.fields();
    let install = fields.first().cloned().unwrap_or_default();
    let hardware_id = fields.get(1).cloned().unwrap_or_default();
    if install.is_empty() || hardware_id.is_empty() {
        cx.findings.error(
            "device.model",
            Some(model.line),
            "model entry needs an install section and a hardware ID (InfVerif 1271)",
        );
        return None;
    }
    hardware_ids.push(hardware_id);
    let candidates = [
        format!("{install}.{}", cx.policy.architecture),
        format!("{install}.NT"),
        install.clone(),
    ];
    let Some(section) = candidates.iter().find_map(|name| inf.section(name)) else {
        cx.findings.error(
            "device.install-missing",
            Some(model.line),
            format!("install section [{install}] (or a decorated one) not found (InfVerif 1261)"),
        );
        return None;
    };
    let services = inf.section(&format!("{}.Services", section.name));
    Some(InstallRoot {
        install: section,
        services,
        style: Style::Device,
    })
}
