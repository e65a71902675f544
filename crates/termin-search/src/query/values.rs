//! The value syntax shared by all parameter types: `,` separates alternatives and `\` escapes
//! `,` `|` `$` and `\` itself.

use termin_store::{SystemMatch, TokenMatch};

/// Splits on unescaped `separator`; the parts keep their escapes.
pub(crate) fn split_unescaped(value: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if c == separator => {
                parts.push(&value[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

pub(crate) fn unescape(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    let mut chars = part.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// `system|code`, `|code`, `system|` or `code`.
pub(crate) fn parse_token(value: &str) -> TokenMatch {
    let non_empty = |s: &str| (!s.is_empty()).then(|| unescape(s));
    match split_unescaped(value, '|').as_slice() {
        [code] => TokenMatch { system: SystemMatch::Any, code: non_empty(code) },
        [system, code, ..] => TokenMatch {
            system: if system.is_empty() { SystemMatch::None } else { SystemMatch::Exactly(unescape(system)) },
            code: non_empty(code),
        },
        [] => TokenMatch { system: SystemMatch::Any, code: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_forms() {
        assert_eq!(
            parse_token("urn:oid:1.2.40.0.10.1.4.3.1|1234010180"),
            TokenMatch {
                system: SystemMatch::Exactly("urn:oid:1.2.40.0.10.1.4.3.1".into()),
                code: Some("1234010180".into())
            }
        );
        assert_eq!(parse_token("|x").system, SystemMatch::None);
        assert_eq!(parse_token("sys|").code, None);
        assert_eq!(parse_token("x").system, SystemMatch::Any);
        assert_eq!(parse_token(r"a\|b").code.as_deref(), Some("a|b"));
    }

    #[test]
    fn commas_split_unless_escaped() {
        assert_eq!(split_unescaped(r"a,b\,c", ','), vec!["a", r"b\,c"]);
        assert_eq!(unescape(r"b\,c\\"), r"b,c\");
    }
}
