//! The checks, one module per concern; [`check_text`] runs them all on one INF.

mod context;
mod files;
mod references;
mod registry;
mod services;
mod style;
mod tokens;
mod version;

pub use style::Style;

use crate::finding::{Finding, Findings};
use crate::parse::parse;
use crate::policy::Policy;

/// What checking one INF found: its install style (when one could be determined) and the
/// findings in line order.
#[derive(Debug)]
pub struct Report {
    /// Primitive (service) or device (root-enumerated); `None` if neither could be found.
    pub style: Option<Style>,
    /// Errors and warnings.
    pub findings: Vec<Finding>,
    /// Source files the INF expects next to it (`[SourceDisksFiles]` keys).
    pub source_files: Vec<String>,
    /// The catalog the INF names, if any.
    pub catalog: Option<String>,
}

/// Checks INF text (already decoded) against `policy`.
#[must_use]
pub fn check_text(text: &str, policy: &Policy) -> Report {
    let mut findings = Findings::default();
    let inf = parse(text, &mut findings);
    let mut cx = context::Context::new(&inf, policy, findings);
    version::check(&mut cx);
    tokens::check(&mut cx);
    let roots = style::check(&mut cx);
    references::check(&mut cx, &roots);
    files::check_catalog_not_listed(&mut cx);
    for root in &roots {
        let copied = files::check_root(&mut cx, root);
        for service_install in services::check_root(&mut cx, root, &copied) {
            registry::check_service(&mut cx, service_install, root.style);
        }
    }
    let style = roots.first().map(|root| root.style);
    let source_files = inf
        .sections
        .iter()
        .filter(|s| s.name.to_ascii_lowercase().starts_with("sourcedisksfiles"))
        .flat_map(|s| &s.entries)
        .filter_map(|entry| entry.key.clone())
        .collect();
    let catalog = inf
        .section("Version")
        .and_then(|version| version.entry("CatalogFile"))
        .map(|entry| cx.resolve(&entry.field(0)));
    Report {
        style,
        findings: cx.findings.into_sorted(),
        source_files,
        catalog,
    }
}

/// Parses an INF number: `0x` hexadecimal or decimal, 32 bits.
#[must_use]
pub fn parse_number(text: &str) -> Option<u32> {
    let text = text.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() => u32::from_str_radix(hex, 16).ok(),
        None if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_number;

    #[test]
    fn numbers() {
        assert_eq!(parse_number("0x00010001"), Some(0x0001_0001));
        assert_eq!(parse_number("1024"), Some(1024));
        assert_eq!(parse_number("0x"), None);
        assert_eq!(parse_number("-1"), None);
        assert_eq!(parse_number("4294967296"), None);
    }
}
