//! Parsing of search parameters (`name=value` pairs) into storage conditions.

use termin_store::{Condition, SystemMatch, TokenMatch};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    pub param: String,
    pub message: String,
}

/// Parses search parameters into conditions that must all hold.
///
/// Result-shaping parameters (`_count`, `_format`, ...) are the caller's business and must be
/// removed before this call; anything not understood is an error naming the parameter.
pub fn parse_conditions<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<Condition>, ParamError> {
    params
        .into_iter()
        .map(|(name, value)| parse_one(name, value))
        .collect()
}

fn parse_one(name: &str, value: &str) -> Result<Condition, ParamError> {
    let error = |message: String| ParamError {
        param: name.to_owned(),
        message,
    };
    if value.is_empty() {
        return Err(error(format!("search parameter {name} has no value")));
    }
    match name {
        "_id" => Ok(Condition::IdIn(split_or(value).map(unescape).collect())),
        "identifier" => Ok(Condition::TokenAny {
            param: name.to_owned(),
            alternatives: split_or(value).map(parse_token).collect(),
        }),
        other if other.contains(':') => Err(error(format!(
            "the modifier in {other} is not supported"
        ))),
        other => Err(error(format!(
            "search parameter {other} is not supported (supported: _id, identifier)"
        ))),
    }
}

/// Splits a value on unescaped commas (FHIR escapes `,` `|` `$` `\` with a backslash).
fn split_or(value: &str) -> impl Iterator<Item = &str> {
    split_unescaped(value, ',').into_iter()
}

fn split_unescaped(value: &str, separator: char) -> Vec<&str> {
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

fn unescape(part: &str) -> String {
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

fn parse_token(value: &str) -> TokenMatch {
    let parts = split_unescaped(value, '|');
    let non_empty = |s: &str| (!s.is_empty()).then(|| unescape(s));
    match parts.as_slice() {
        [code] => TokenMatch {
            system: SystemMatch::Any,
            code: non_empty(code),
        },
        [system, code, ..] => TokenMatch {
            system: if system.is_empty() {
                SystemMatch::None
            } else {
                SystemMatch::Exactly(unescape(system))
            },
            code: non_empty(code),
        },
        [] => TokenMatch {
            system: SystemMatch::Any,
            code: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(value: &str) -> TokenMatch {
        parse_token(value)
    }

    #[test]
    fn token_forms() {
        assert_eq!(
            token("urn:oid:1.2.40.0.10.1.4.3.1|1234010180"),
            TokenMatch {
                system: SystemMatch::Exactly("urn:oid:1.2.40.0.10.1.4.3.1".into()),
                code: Some("1234010180".into())
            }
        );
        assert_eq!(token("|x").system, SystemMatch::None);
        assert_eq!(token("sys|").code, None);
        assert_eq!(token("x").system, SystemMatch::Any);
        assert_eq!(token(r"a\|b").code.as_deref(), Some("a|b"));
    }

    #[test]
    fn commas_are_or_and_escapes_survive() {
        let conditions = parse_conditions([("_id", r"a,b\,c")]).unwrap();
        assert_eq!(conditions, [Condition::IdIn(vec!["a".into(), "b,c".into()])]);
    }

    #[test]
    fn every_advertised_parameter_parses() {
        for (name, _) in crate::SEARCH_PARAMS {
            assert!(parse_conditions([(*name, "x")]).is_ok(), "{name}");
        }
    }

    #[test]
    fn unknown_parameters_are_named() {
        let err = parse_conditions([("birthdate", "2000")]).unwrap_err();
        assert_eq!(err.param, "birthdate");
        assert!(parse_conditions([("identifier", "")]).is_err());
    }
}
