//! Registry rules for the service's AddReg sections: values go under `HKR,Parameters`
//! (InfVerif 1323), with valid flags (1224, 1268, 1305), and say exactly what the driver
//! expects: every parameter once, with its type and default, valid for the driver's own
//! configuration parser (`crates/wsk-client/src/config.rs`).
//!
//! The Plug and Play device switch `Parameters\PnpDevice` (`src/pnp.rs`): a device INF must
//! write it as the `REG_DWORD` 1, or `DriverEntry` registers no `AddDevice` and the device cannot
//! start; a primitive INF must not write it, or `sc stop` could no longer unload the driver.

use super::context::Context;
use super::parse_number;
use super::style::Style;
use crate::core_config::driver_pnp::{
    PNP_DEVICE_ON, PNP_DEVICE_VALUE, REG_DWORD, pnp_device_switch,
};
use crate::core_config::{validate_dword, validate_listen_addresses};
use crate::parse::{Entry, Section};
use crate::policy::ParameterKind;

const FLG_ADDREG_APPEND: u32 = 0x0000_0008;
const FLG_ADDREG_DELVAL: u32 = 0x0000_0004;
const FLG_ADDREG_KEYONLY: u32 = 0x0000_0010;
const FLG_ADDREG_TYPE_MASK: u32 = 0xFFFF_0001;
const FLG_ADDREG_TYPE_SZ: u32 = 0x0000_0000;
const FLG_ADDREG_TYPE_MULTI_SZ: u32 = 0x0001_0000;
const FLG_ADDREG_TYPE_DWORD: u32 = 0x0001_0001;

/// Checks the AddReg sections of one service-install section of an INF of `style`.
pub fn check_service(cx: &mut Context<'_>, service_install: &Section, style: Style) {
    let inf = cx.inf;
    let mut written: Vec<(String, usize)> = Vec::new();
    for directive in service_install.entries_with_key("AddReg") {
        for name in directive.fields() {
            // A missing section is reported by the reference rule.
            let Some(section) = inf.section(&name) else {
                continue;
            };
            for entry in &section.entries {
                if let Some(value) = check_line(cx, entry, style) {
                    if let Some((_, first)) = written
                        .iter()
                        .find(|(seen, _)| seen.eq_ignore_ascii_case(&value))
                    {
                        cx.findings.error(
                            "registry.duplicate",
                            Some(entry.line),
                            format!("`{value}` is already written on line {first}"),
                        );
                    }
                    written.push((value, entry.line));
                }
            }
        }
    }
    let switch_written = written
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case(PNP_DEVICE_VALUE));
    if style == Style::Device && !switch_written {
        cx.findings.error(
            "device.pnp-device",
            Some(service_install.line),
            format!(
                "[{}] does not write Parameters\\{PNP_DEVICE_VALUE} = {PNP_DEVICE_ON}: DriverEntry would register no AddDevice and the device could not start",
                service_install.name
            ),
        );
    }
    for parameter in &cx.policy.parameters {
        if !written
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(parameter.name))
        {
            cx.findings.error(
                "registry.missing",
                Some(service_install.line),
                format!(
                    "[{}] does not write the default of Parameters\\{}",
                    service_install.name, parameter.name
                ),
            );
        }
    }
}

/// Checks one `root,subkey,value,flags,data...` line; returns the value name it writes.
fn check_line(cx: &mut Context<'_>, entry: &Entry, style: Style) -> Option<String> {
    let fields: Vec<String> = entry
        .fields()
        .iter()
        .map(|field| cx.resolve(field))
        .collect();
    let field = |index: usize| fields.get(index).map_or("", String::as_str);
    let line = Some(entry.line);
    if !field(0).eq_ignore_ascii_case("HKR") {
        cx.findings.error(
            "registry.root",
            line,
            format!("root `{}`: a service's values are written relative to its key, with HKR (InfVerif 1224/1304)", field(0)),
        );
        return None;
    }
    let subkey = field(1);
    let lower = subkey.to_ascii_lowercase();
    if lower != "parameters" && !lower.starts_with("parameters\\") {
        cx.findings.error(
            "registry.not-parameters",
            line,
            format!("subkey `{subkey}`: service values must be under Parameters (InfVerif 1323)"),
        );
        return None;
    }
    let flags = if field(3).is_empty() {
        Some(0)
    } else {
        parse_number(field(3))
    };
    let Some(flags) = flags else {
        cx.findings.error(
            "registry.flags",
            line,
            format!("flags `{}` are not a number (InfVerif 1268)", field(3)),
        );
        return None;
    };
    if flags & FLG_ADDREG_APPEND != 0 {
        cx.findings.error(
            "registry.append",
            line,
            "FLG_ADDREG_APPEND gives non-deterministic values (InfVerif 1305)",
        );
    }
    if flags & (FLG_ADDREG_DELVAL | FLG_ADDREG_KEYONLY) != 0 {
        cx.findings.error(
            "registry.flags",
            line,
            "an install's AddReg must write values (no DELVAL/KEYONLY)",
        );
        return None;
    }
    let name = field(2);
    if name.eq_ignore_ascii_case(PNP_DEVICE_VALUE) {
        check_pnp_device(
            cx,
            entry.line,
            style,
            flags & FLG_ADDREG_TYPE_MASK,
            field(4),
        );
        return Some(name.to_owned());
    }
    let Some(parameter) = cx.policy.parameter(name) else {
        cx.findings.error(
            "registry.unknown",
            line,
            format!("`{name}` is not a value the driver reads (a typo would be silently ignored by Windows)"),
        );
        return None;
    };
    let data = fields.get(4..).unwrap_or_default();
    let kind = parameter.kind.clone();
    let parameter_name = parameter.name;
    check_data(
        cx,
        entry.line,
        parameter_name,
        &kind,
        flags & FLG_ADDREG_TYPE_MASK,
        data,
    );
    Some(name.to_owned())
}

/// `Parameters\PnpDevice`: only in a device INF, and there only as the `REG_DWORD` 1, checked
/// with the driver's own parser of the value.
fn check_pnp_device(cx: &mut Context<'_>, line: usize, style: Style, value_type: u32, text: &str) {
    let line = Some(line);
    if style == Style::Primitive {
        cx.findings.error(
            "primitive.pnp-device",
            line,
            format!("{PNP_DEVICE_VALUE} belongs to the device INF only: with it DriverEntry registers AddDevice, and `sc stop` cannot unload a driver that has one"),
        );
        return;
    }
    if value_type != FLG_ADDREG_TYPE_DWORD {
        cx.findings.error(
            "registry.pnp-device",
            line,
            format!("{PNP_DEVICE_VALUE} must be REG_DWORD (flags 0x00010001), got type 0x{value_type:08X}"),
        );
        return;
    }
    let data = parse_number(text).map(u32::to_le_bytes);
    match data.map(|bytes| pnp_device_switch(REG_DWORD, &bytes)) {
        Some(Ok(true)) => {}
        Some(Ok(false)) => cx.findings.error(
            "registry.pnp-device",
            line,
            format!("{PNP_DEVICE_VALUE} = 0 switches the PnP device install off: the device could not start"),
        ),
        Some(Err(error)) => cx.findings.error(
            "registry.pnp-device",
            line,
            format!("DriverEntry would refuse it: {error}"),
        ),
        None => cx.findings.error(
            "registry.pnp-device",
            line,
            format!("{PNP_DEVICE_VALUE} = `{text}` is not a 32-bit number (InfVerif 1268)"),
        ),
    }
}

fn check_data(
    cx: &mut Context<'_>,
    line: usize,
    name: &str,
    kind: &ParameterKind,
    value_type: u32,
    data: &[String],
) {
    let line = Some(line);
    match kind {
        ParameterKind::Dword { default } => {
            if value_type != FLG_ADDREG_TYPE_DWORD {
                cx.findings.error(
                    "registry.type",
                    line,
                    format!(
                        "{name} must be REG_DWORD (flags 0x00010001), got type 0x{value_type:08X}"
                    ),
                );
                return;
            }
            let text = data.first().map_or("", String::as_str);
            let Some(value) = parse_number(text) else {
                cx.findings.error(
                    "registry.value",
                    line,
                    format!("{name} = `{text}` is not a 32-bit number (InfVerif 1268)"),
                );
                return;
            };
            if let Err(message) = validate_dword(name, value) {
                cx.findings.error(
                    "registry.range",
                    line,
                    format!("{name} = {value}: DriverEntry would refuse it: {message}"),
                );
            } else if value != *default {
                cx.findings.error(
                    "registry.default",
                    line,
                    format!("{name} = {value}, but the driver's default is {default}"),
                );
            }
        }
        ParameterKind::MultiSz { default } => {
            if value_type != FLG_ADDREG_TYPE_MULTI_SZ {
                let shown = if value_type == FLG_ADDREG_TYPE_SZ {
                    "REG_SZ".to_owned()
                } else {
                    format!("type 0x{value_type:08X}")
                };
                cx.findings.error(
                    "registry.type",
                    line,
                    format!("{name} must be REG_MULTI_SZ (flags 0x00010000), got {shown}"),
                );
                return;
            }
            let strings: Vec<String> = data
                .iter()
                .filter(|text| !text.is_empty())
                .cloned()
                .collect();
            if let Err(message) = validate_listen_addresses(&strings) {
                cx.findings.error(
                    "registry.value",
                    line,
                    format!("{name} = {strings:?}: DriverEntry would refuse it: {message}"),
                );
            } else if strings != *default {
                cx.findings.error(
                    "registry.default",
                    line,
                    format!("{name} = {strings:?}, but the driver's default is {default:?}"),
                );
            }
        }
    }
}
