//! INF syntax: sections, entries, comments, quoting and line continuation.
//!
//! As described in Microsoft's "General Syntax Rules for INF Files". Section and key names are
//! case-insensitive; values keep their text (tokens are resolved by the rules, not here).

use crate::finding::Findings;

/// A parsed INF file.
#[derive(Debug, Default)]
pub struct Inf {
    /// Sections in file order. A name that appears twice gives two entries here (the rules
    /// report it: InfVerif 1209).
    pub sections: Vec<Section>,
}

/// One `[name]` section.
#[derive(Debug)]
pub struct Section {
    /// The name between the brackets, trimmed.
    pub name: String,
    /// 1-based line of the header.
    pub line: usize,
    /// Entries in order.
    pub entries: Vec<Entry>,
}

/// One logical line of a section: `key = value` or a bare value.
#[derive(Debug)]
pub struct Entry {
    /// 1-based line where the logical line starts.
    pub line: usize,
    /// The key before `=`, unquoted and trimmed; `None` for a line without `=`.
    pub key: Option<String>,
    /// The text after `=` (or the whole line), comments removed, trimmed.
    pub value: String,
}

impl Inf {
    /// All sections whose name equals `name`, ignoring case.
    pub fn sections_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Section> + 'a {
        self.sections
            .iter()
            .filter(move |section| section.name.eq_ignore_ascii_case(name))
    }

    /// The first section named `name`, ignoring case.
    #[must_use]
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|section| section.name.eq_ignore_ascii_case(name))
    }

    /// Whether a section named `name` exists.
    #[must_use]
    pub fn has_section(&self, name: &str) -> bool {
        self.section(name).is_some()
    }
}

impl Section {
    /// Entries whose key equals `key`, ignoring case.
    pub fn entries_with_key<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |entry| entry.key_is(key))
    }

    /// The first entry whose key equals `key`, ignoring case.
    #[must_use]
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.key_is(key))
    }
}

impl Entry {
    /// Whether this entry's key equals `key`, ignoring case.
    #[must_use]
    pub fn key_is(&self, key: &str) -> bool {
        self.key
            .as_deref()
            .is_some_and(|own| own.eq_ignore_ascii_case(key))
    }

    /// The comma-separated fields of the value, trimmed and unquoted (`""` inside quotes is
    /// one `"`). An empty value has one empty field, as in Windows' parser.
    #[must_use]
    pub fn fields(&self) -> Vec<String> {
        split_fields(&self.value)
    }

    /// Field `index` (0-based), or an empty string when the line has fewer fields.
    #[must_use]
    pub fn field(&self, index: usize) -> String {
        self.fields().into_iter().nth(index).unwrap_or_default()
    }
}

/// Splits an INF value into comma-separated fields, honouring double quotes.
#[must_use]
pub fn split_fields(value: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => fields.push(std::mem::take(&mut current).trim().to_owned()),
            _ => current.push(c),
        }
    }
    fields.push(current.trim().to_owned());
    fields
}

/// Removes a `;` comment that is outside double quotes.
fn strip_comment(line: &str) -> &str {
    let mut in_quotes = false;
    for (index, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ';' if !in_quotes => return &line[..index],
            _ => {}
        }
    }
    line
}

/// Finds `=` outside double quotes.
fn find_equals(line: &str) -> Option<usize> {
    let mut in_quotes = false;
    for (index, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '=' if !in_quotes => return Some(index),
            _ => {}
        }
    }
    None
}

/// Joins physical lines into logical ones: a trailing `\` (after the comment is removed)
/// continues the line. Returns (first physical line number, text).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let content = strip_comment(raw).trim_end();
        let (continued, content) = content
            .strip_suffix('\\')
            .map_or((false, content), |rest| (true, rest));
        let (start, mut joined) = pending.take().unwrap_or((number, String::new()));
        joined.push_str(content);
        if continued {
            pending = Some((start, joined));
        } else {
            lines.push((start, joined));
        }
    }
    if let Some(last) = pending {
        lines.push(last);
    }
    lines
}

/// Parses INF text. Syntax problems are reported into `findings` and the line is skipped,
/// so that the other rules still run on the rest.
#[must_use]
pub fn parse(text: &str, findings: &mut Findings) -> Inf {
    let mut inf = Inf::default();
    for (line, content) in logical_lines(text) {
        let content = content.trim();
        if content.is_empty() {
            continue;
        }
        if let Some(header) = content.strip_prefix('[') {
            match header.split_once(']') {
                Some((name, rest)) if rest.trim().is_empty() && !name.trim().is_empty() => {
                    inf.sections.push(Section {
                        name: name.trim().to_owned(),
                        line,
                        entries: Vec::new(),
                    });
                }
                _ => findings.error(
                    "syntax.section-header",
                    Some(line),
                    format!("malformed section header `{content}` (InfVerif 1002)"),
                ),
            }
            continue;
        }
        let Some(section) = inf.sections.last_mut() else {
            findings.error(
                "syntax.outside-section",
                Some(line),
                format!("`{content}` is outside any section (InfVerif 1002)"),
            );
            continue;
        };
        if content.matches('"').count() % 2 != 0 {
            findings.error(
                "syntax.quote",
                Some(line),
                format!("unbalanced double quote in `{content}` (InfVerif 1002)"),
            );
            continue;
        }
        let entry = find_equals(content).map_or_else(
            || Entry {
                line,
                key: None,
                value: content.to_owned(),
            },
            |equals| Entry {
                line,
                key: Some(split_fields(&content[..equals]).concat()),
                value: content[equals + 1..].trim().to_owned(),
            },
        );
        section.entries.push(entry);
    }
    inf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Inf {
        let mut findings = Findings::default();
        let inf = parse(text, &mut findings);
        assert_eq!(findings.into_sorted(), vec![]);
        inf
    }

    #[test]
    fn sections_entries_comments_and_quotes() {
        let inf = parse_ok(
            "; header comment\r\n[Version]\r\nSignature = \"$Windows NT$\" ; trailing\r\n\
             [Strings]\r\nDesc = \"a;b, \"\"c\"\"\"\r\n[Files]\r\nwskecho.sys\r\n",
        );
        assert_eq!(inf.sections.len(), 3);
        let version = inf.section("VERSION").expect("case-insensitive lookup");
        assert_eq!(
            version.entry("signature").map(Entry::fields),
            Some(vec!["$Windows NT$".to_owned()])
        );
        let desc = inf
            .section("Strings")
            .and_then(|s| s.entry("Desc"))
            .expect("Desc");
        assert_eq!(desc.fields(), vec!["a;b, \"c\"".to_owned()]);
        assert_eq!(desc.line, 5);
        let file = &inf.section("Files").expect("Files").entries[0];
        assert_eq!(
            (file.key.as_deref(), file.value.as_str()),
            (None, "wskecho.sys")
        );
    }

    #[test]
    fn continuation_joins_lines_and_keeps_first_line_number() {
        let inf = parse_ok("[A]\nKey = one,\\\n  two ; c\n");
        let entry = inf.section("A").and_then(|s| s.entry("Key")).expect("Key");
        assert_eq!(
            (entry.line, entry.fields()),
            (2, vec!["one".to_owned(), "two".to_owned()])
        );
    }

    #[test]
    fn fields_split_on_commas_outside_quotes() {
        assert_eq!(
            split_fields("HKR, Parameters, \"a,b\", 0x00010000, \"x\""),
            vec!["HKR", "Parameters", "a,b", "0x00010000", "x"]
        );
        assert_eq!(split_fields(""), vec![String::new()]);
    }

    #[test]
    fn syntax_errors_are_reported_and_skipped() {
        let mut findings = Findings::default();
        let inf = parse(
            "orphan\n[Bad\n[A]\nKey = \"open\nOther = 1\n",
            &mut findings,
        );
        let rules: Vec<_> = findings
            .into_sorted()
            .iter()
            .map(|f| (f.rule, f.line))
            .collect();
        assert_eq!(
            rules,
            vec![
                ("syntax.outside-section", Some(1)),
                ("syntax.section-header", Some(2)),
                ("syntax.quote", Some(4)),
            ]
        );
        assert_eq!(inf.section("A").map(|s| s.entries.len()), Some(1));
    }
}
