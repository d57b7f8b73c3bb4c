//! Service rules: the install root adds exactly the policy's service, with the policy's
//! ServiceType/StartType/ErrorControl, and a ServiceBinary that is the driver image copied
//! by the same install section (InfVerif 1254, 1289, 1296, 2006).

use super::context::Context;
use super::files::CopiedFile;
use super::parse_number;
use super::style::{InstallRoot, Style};
use crate::parse::Section;

/// `SPSVCINST_ASSOCSERVICE`: the service is the device's function driver.
const SPSVCINST_ASSOCSERVICE: u32 = 0x2;

/// Checks the `.Services` section of `root`; returns the service-install sections found.
pub fn check_root<'a>(
    cx: &mut Context<'a>,
    root: &InstallRoot<'a>,
    copied: &[CopiedFile],
) -> Vec<&'a Section> {
    let inf = cx.inf;
    let Some(services) = root.services else {
        cx.findings.error(
            "service.missing",
            Some(root.install.line),
            format!(
                "[{}] has no [{}.Services] section: nothing installs the service (InfVerif 1296)",
                root.install.name, root.install.name
            ),
        );
        return Vec::new();
    };
    let mut installs = Vec::new();
    let mut found = false;
    for entry in services.entries_with_key("AddService") {
        let fields = entry.fields();
        let name = cx.resolve(fields.first().map_or("", String::as_str));
        if !name.eq_ignore_ascii_case(cx.policy.service_name) {
            cx.findings.error(
                "service.name",
                Some(entry.line),
                format!(
                    "AddService installs `{name}`, expected only `{}`",
                    cx.policy.service_name
                ),
            );
            continue;
        }
        found = true;
        let flags_text = fields.get(1).map_or("", String::as_str);
        let flags = if flags_text.is_empty() {
            Some(0)
        } else {
            parse_number(flags_text)
        };
        match (flags, root.style) {
            (None, _) => cx.findings.error("service.flags", Some(entry.line), format!("AddService flags `{flags_text}` are not a number (InfVerif 1083)")),
            (Some(flags), Style::Primitive) if flags & SPSVCINST_ASSOCSERVICE != 0 => cx.findings.error(
                "primitive.assocservice",
                Some(entry.line),
                "SPSVCINST_ASSOCSERVICE (0x2) marks a device's function driver; a primitive INF has no device",
            ),
            (Some(flags), Style::Device) if flags & SPSVCINST_ASSOCSERVICE == 0 => cx.findings.error(
                "device.assocservice",
                Some(entry.line),
                "the device's service needs flag SPSVCINST_ASSOCSERVICE (0x2) to be its function driver (InfVerif 1296)",
            ),
            _ => {}
        }
        let section_name = fields.get(2).map_or("", String::as_str);
        match inf.section(section_name) {
            Some(install) => {
                service_install(cx, install, copied);
                installs.push(install);
            }
            None => cx.findings.error(
                "service.section",
                Some(entry.line),
                format!("service-install section [{section_name}] not found (InfVerif 2006)"),
            ),
        }
    }
    if !found {
        cx.findings.error(
            "service.missing",
            Some(services.line),
            format!(
                "[{}] has no AddService for `{}`",
                services.name, cx.policy.service_name
            ),
        );
    }
    installs
}

fn service_install(cx: &mut Context<'_>, install: &Section, copied: &[CopiedFile]) {
    let expected = [
        (
            "ServiceType",
            cx.policy.service_type,
            "service.type",
            "1 = SERVICE_KERNEL_DRIVER",
        ),
        (
            "StartType",
            cx.policy.start_type,
            "service.start",
            "3 = SERVICE_DEMAND_START",
        ),
        (
            "ErrorControl",
            cx.policy.error_control,
            "service.error-control",
            "1 = SERVICE_ERROR_NORMAL",
        ),
    ];
    for (key, want, rule, meaning) in expected {
        let Some(entry) = install.entry(key) else {
            cx.findings.error(
                "service.field-missing",
                Some(install.line),
                format!("[{}] has no {key} (InfVerif 1289)", install.name),
            );
            continue;
        };
        let text = cx.resolve(&entry.field(0));
        if parse_number(&text) != Some(want) {
            cx.findings.error(
                rule,
                Some(entry.line),
                format!("{key} is `{text}`, expected {meaning}"),
            );
        }
    }
    let Some(entry) = install.entry("ServiceBinary") else {
        cx.findings.error(
            "service.field-missing",
            Some(install.line),
            format!("[{}] has no ServiceBinary (InfVerif 1289)", install.name),
        );
        return;
    };
    let binary = cx.resolve(&entry.field(0));
    let Some((dirid, file)) = split_service_binary(&binary) else {
        cx.findings.error(
            "service.binary",
            Some(entry.line),
            format!("ServiceBinary `{binary}` is not %DIRID%\\file.sys (InfVerif 1254)"),
        );
        return;
    };
    if !file.eq_ignore_ascii_case(cx.policy.binary_name) {
        cx.findings.error(
            "service.binary",
            Some(entry.line),
            format!(
                "ServiceBinary names `{file}`, but the driver image is `{}`",
                cx.policy.binary_name
            ),
        );
        return;
    }
    match copied.iter().find(|c| c.name.eq_ignore_ascii_case(file)) {
        None => cx.findings.error(
            "service.binary",
            Some(entry.line),
            format!("ServiceBinary `{binary}`: the install section does not copy `{file}`"),
        ),
        Some(copy) if copy.dirid.is_some_and(|copied_to| copied_to != dirid) => cx.findings.error(
            "service.binary",
            Some(entry.line),
            format!(
                "ServiceBinary points to DIRID {dirid}, but `{file}` is copied to DIRID {} (line {})",
                copy.dirid.unwrap_or_default(),
                copy.line
            ),
        ),
        Some(_) => {}
    }
}

/// `%13%\wskecho.sys` → (13, "wskecho.sys"). Subdirectories are not used by wskecho.
fn split_service_binary(binary: &str) -> Option<(u32, &str)> {
    let rest = binary.strip_prefix('%')?;
    let (dirid, file) = rest.split_once("%\\")?;
    let dirid = dirid.parse().ok()?;
    (!file.is_empty() && !file.contains(['\\', '/', '%', '"', ' '])).then_some((dirid, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_binary_forms() {
        assert_eq!(
            split_service_binary("%13%\\wskecho.sys"),
            Some((13, "wskecho.sys"))
        );
        assert_eq!(
            split_service_binary("%12%\\wskecho.sys"),
            Some((12, "wskecho.sys"))
        );
        assert_eq!(split_service_binary("C:\\wskecho.sys"), None);
        assert_eq!(split_service_binary("%13%\\sub\\wskecho.sys"), None);
        assert_eq!(split_service_binary("%x%\\wskecho.sys"), None);
    }
}
