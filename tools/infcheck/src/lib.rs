//! Checks wskecho's generated INF files the way InfVerif would, on what can be checked
//! without Windows: encoding, syntax, `[Version]`, tokens, section references, install style
//! (primitive service vs root-enumerated device), service configuration, copied files and
//! the `Parameters` defaults against the driver's configuration contract.
//!
//! InfVerif itself parses with Windows' own INF parser; this tool does not replace it (see
//! `docs/installing.md`). Each rule names the InfVerif code it mirrors, where there is one.

pub mod core_config;
pub mod finding;
pub mod parse;
pub mod policy;
pub mod rules;
pub mod text;

use finding::Finding;
use policy::Policy;
use rules::Report;

/// Decodes `bytes` and checks them against `policy`. An encoding Windows would misread is
/// reported as the only finding.
#[must_use]
pub fn check_bytes(bytes: &[u8], policy: &Policy) -> Report {
    match text::decode(bytes) {
        Ok((_, text)) => rules::check_text(&text, policy),
        Err(error) => Report {
            style: None,
            findings: vec![Finding::error("encoding", None, error.to_string())],
            source_files: Vec::new(),
            catalog: None,
        },
    }
}
