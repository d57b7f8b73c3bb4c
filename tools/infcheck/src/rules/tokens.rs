//! Token rules: every `%string%` resolves in `[Strings]` (InfVerif 1235), and no stampinf
//! token such as `$ARCH$` is left (InfVerif 1274).

use super::context::Context;

/// Checks `%token%` use outside `[Strings]` and `$TOKEN$` use everywhere.
pub fn check(cx: &mut Context<'_>) {
    let inf = cx.inf;
    for section in &inf.sections {
        for token in dollar_tokens(&section.name) {
            cx.findings.error(
                "tokens.stampinf",
                Some(section.line),
                format!(
                    "unresolved stampinf token ${token}$ in section name [{}] (InfVerif 1274)",
                    section.name
                ),
            );
        }
        // [Strings] values are literal text: `%` has no meaning there.
        let is_strings = section.name.to_ascii_lowercase().starts_with("strings");
        for entry in &section.entries {
            let texts = entry.key.iter().chain(std::iter::once(&entry.value));
            for text in texts {
                let percent = if is_strings {
                    Vec::new()
                } else {
                    percent_tokens(text)
                };
                for token in percent {
                    if !token.bytes().all(|byte| byte.is_ascii_digit())
                        && !cx.strings.contains_key(&token.to_ascii_lowercase())
                    {
                        cx.findings.error(
                            "strings.unresolved",
                            Some(entry.line),
                            format!("%{token}% is not defined in [Strings] (InfVerif 1235)"),
                        );
                    }
                }
                let is_signature =
                    section.name.eq_ignore_ascii_case("Version") && entry.key_is("Signature");
                if !is_signature {
                    for token in dollar_tokens(text) {
                        cx.findings.error(
                            "tokens.stampinf",
                            Some(entry.line),
                            format!(
                                "unresolved stampinf token ${token}$ in [{}] (InfVerif 1274)",
                                section.name
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// The names between `%` pairs; `%%` (a literal percent) is skipped.
fn percent_tokens(text: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('%') else { break };
        if end > 0 {
            tokens.push(&after[..end]);
        }
        rest = &after[end + 1..];
    }
    tokens
}

/// Names of `$NAME$` tokens made of letters, digits and `_` (stampinf's tokens: `$ARCH$`,
/// `$KMDFVERSION$`, ...).
fn dollar_tokens(text: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('$') else { break };
        let name = &after[..end];
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            tokens.push(name);
            rest = &after[end + 1..];
        } else {
            rest = after;
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_tokens_skip_literal_percent() {
        assert_eq!(
            percent_tokens("%13%\\%Name%, 100%% %Other%"),
            vec!["13", "Name", "Other"]
        );
        assert_eq!(percent_tokens("no tokens, 50%"), Vec::<&str>::new());
    }

    #[test]
    fn dollar_tokens_find_stampinf_tokens() {
        assert_eq!(dollar_tokens("Models.NT$ARCH$.10.0"), vec!["ARCH"]);
        assert_eq!(
            dollar_tokens("$ 5 $ and $KMDF_VERSION$"),
            vec!["KMDF_VERSION"]
        );
        assert_eq!(dollar_tokens("a$b"), Vec::<&str>::new());
    }
}
