//! Shared state of one check: the parsed INF, its `[Strings]`, the policy, and the findings.

use std::collections::HashMap;

use crate::finding::Findings;
use crate::parse::Inf;
use crate::policy::Policy;

/// Everything a rule needs.
pub struct Context<'a> {
    /// The parsed INF.
    pub inf: &'a Inf,
    /// What the driver requires.
    pub policy: &'a Policy,
    /// `[Strings]` keys (lower case) to their unquoted values.
    pub strings: HashMap<String, String>,
    /// Where rules report.
    pub findings: Findings,
}

impl<'a> Context<'a> {
    /// Builds the context; `[Strings]` values are read once here.
    #[must_use]
    pub fn new(inf: &'a Inf, policy: &'a Policy, findings: Findings) -> Self {
        let strings = inf
            .sections_named("Strings")
            .flat_map(|section| &section.entries)
            .filter_map(|entry| {
                let key = entry.key.as_ref()?;
                Some((key.to_ascii_lowercase(), entry.fields().concat()))
            })
            .collect();
        Self {
            inf,
            policy,
            strings,
            findings,
        }
    }

    /// Replaces `%token%` with its `[Strings]` value and `%%` with `%`. Numeric tokens
    /// (DIRIDs such as `%13%`) and unknown tokens are kept as written; the token rule
    /// reports unknown ones.
    #[must_use]
    pub fn resolve(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find('%') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let Some(end) = after.find('%') else {
                out.push_str(&rest[start..]);
                return out;
            };
            let token = &after[..end];
            if token.is_empty() {
                out.push('%');
            } else if let Some(value) = self.strings.get(&token.to_ascii_lowercase()) {
                out.push_str(value);
            } else {
                out.push('%');
                out.push_str(token);
                out.push('%');
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }
}
