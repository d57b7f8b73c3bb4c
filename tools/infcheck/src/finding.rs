//! What a check reports: one finding per problem, with the rule it broke and where.

use std::fmt;

/// How bad a finding is. Errors fail the check; warnings are printed only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Printed, does not fail the run (InfVerif warnings that are understood).
    Warning,
    /// Fails the run.
    Error,
}

/// One problem found in an INF file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// Stable rule identifier, e.g. `strings.unresolved` (tests match on it).
    pub rule: &'static str,
    /// 1-based line in the INF, when the problem has one.
    pub line: Option<usize>,
    /// What is wrong and, where InfVerif has the same rule, its code.
    pub message: String,
}

impl Finding {
    /// An error for `rule` at `line`.
    pub fn error(rule: &'static str, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            rule,
            line,
            message: message.into(),
        }
    }

    /// A warning for `rule` at `line`.
    pub fn warning(rule: &'static str, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            rule,
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        match self.line {
            Some(line) => write!(f, "{level}[{}] line {line}: {}", self.rule, self.message),
            None => write!(f, "{level}[{}]: {}", self.rule, self.message),
        }
    }
}

/// Collects findings while the rules run.
#[derive(Debug, Default)]
pub struct Findings {
    items: Vec<Finding>,
}

impl Findings {
    /// Records an error.
    pub fn error(&mut self, rule: &'static str, line: Option<usize>, message: impl Into<String>) {
        self.items.push(Finding::error(rule, line, message));
    }

    /// Records a warning.
    pub fn warning(&mut self, rule: &'static str, line: Option<usize>, message: impl Into<String>) {
        self.items.push(Finding::warning(rule, line, message));
    }

    /// Records an already built finding.
    pub fn push(&mut self, finding: Finding) {
        self.items.push(finding);
    }

    /// All findings, in line order (findings without a line first).
    #[must_use]
    pub fn into_sorted(mut self) -> Vec<Finding> {
        self.items.sort_by_key(|finding| finding.line);
        self.items
    }
}
