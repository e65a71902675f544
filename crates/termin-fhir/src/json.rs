//! FHIR JSON text in and out: parsing request bodies and stored resources, and the content
//! limits every stored resource keeps.
//!
//! Two rules hold the storage safe:
//! - every resource written satisfies [`check_content`] (nesting depth, no forbidden control
//!   characters), whichever route built it — a request body, a JSON Patch result, an import;
//! - stored text is read with [`parse_stored`], which has no nesting limit of its own, so a
//!   stored resource stays readable even if a limit changes.
//!
//! Numbers keep the exact text they were written with (`1E5` stays `1E5`, not `1e+5`): FHIR
//! decimals carry their precision in the text. serde_json (with `arbitrary_precision`) keeps
//! digits exactly but writes every exponent as `e` followed by a sign; [`restore_number_text`]
//! puts the written form back. Build documents around a parsed resource with `Map::insert`,
//! not `json!`: the macro converts embedded values with `serde_json::to_value`, which rewrites
//! exponents again.

use crate::outcome::{Issue, IssueCode};
use serde::Deserialize;
use serde_json::{Map, Number, Value};

/// The deepest nesting of JSON objects and arrays a resource may have. The deepest structures
/// of the R5 types Termin serves (contained resources, nested extensions) stay far below it.
pub const MAX_DEPTH: usize = 64;

/// Parses a request body that must be one FHIR resource (a JSON object with `resourceType`)
/// within the content limits ([`check_content`]).
///
/// Errors carry the parser's line and column so a client can find the fault.
pub fn parse_resource(bytes: &[u8]) -> Result<Map<String, Value>, Issue> {
    let Value::Object(map) = parse_value(bytes)? else {
        return Err(Issue::error(
            IssueCode::Structure,
            "The body must be a JSON object holding one FHIR resource",
        ));
    };
    match map.get("resourceType") {
        Some(Value::String(_)) => {}
        Some(_) => return Err(Issue::error(IssueCode::Structure, "resourceType must be a string").at("resourceType")),
        None => return Err(Issue::error(IssueCode::Required, "The resource has no resourceType element")),
    }
    check_content(&map)?;
    Ok(map)
}

/// Parses a JSON request body (a resource, Parameters, a JSON Patch document) with numbers
/// kept as written. serde_json's own nesting limit (128) guards the parser's stack.
pub fn parse_value(bytes: &[u8]) -> Result<Value, Issue> {
    let mut value: Value = serde_json::from_slice(bytes).map_err(|e| {
        let cause = if e.to_string().starts_with("recursion limit exceeded") {
            format!("it nests objects and arrays deeper than the limit of {MAX_DEPTH}")
        } else {
            describe_json_error(&e)
        };
        Issue::error(
            IssueCode::Structure,
            format!("The body is not valid JSON: {cause} (line {} column {})", e.line(), e.column()),
        )
    })?;
    restore_number_text(bytes, &mut value);
    Ok(value)
}

/// Parses stored resource text. No nesting limit applies: what was stored must always be
/// readable (writes keep [`MAX_DEPTH`], so the parser's stack stays small).
pub fn parse_stored(text: &str) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    deserializer.disable_recursion_limit();
    let mut value = Value::deserialize(&mut deserializer)?;
    deserializer.end()?;
    restore_number_text(text.as_bytes(), &mut value);
    Ok(value)
}

/// Parses stored resource text that must be a JSON object.
pub fn parse_stored_object(text: &str) -> Option<Map<String, Value>> {
    match parse_stored(text) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// The limits every stored resource keeps: objects and arrays nest at most [`MAX_DEPTH`]
/// deep, and no string (value or element name) holds a control character other than tab,
/// carriage return and line feed (FHIR R5 forbids them in strings). The issue names the
/// place of the first fault found.
pub fn check_content(resource: &Map<String, Value>) -> Result<(), Issue> {
    let root = resource.get("resourceType").and_then(Value::as_str).unwrap_or("Resource").to_owned();
    check_object(resource, 1).map_err(|fault| {
        let mut path = root;
        for step in fault.path.iter().rev() {
            match step {
                Step::Element(name) => {
                    path.push('.');
                    path.push_str(name);
                }
                Step::Index(i) => path.push_str(&format!("[{i}]")),
            }
        }
        let message = match fault.kind {
            FaultKind::TooDeep => {
                format!("The resource nests objects and arrays deeper than the limit of {MAX_DEPTH}")
            }
            FaultKind::ControlCharacter(c) => format!(
                "Strings must not contain control characters other than tab, carriage return and line feed; \
                 found U+{:04X}",
                c as u32
            ),
        };
        let code = match fault.kind {
            FaultKind::TooDeep => IssueCode::TooLong,
            FaultKind::ControlCharacter(_) => IssueCode::Value,
        };
        Issue::error(code, message).at(path)
    })
}

enum Step {
    Element(String),
    Index(usize),
}

enum FaultKind {
    TooDeep,
    ControlCharacter(char),
}

/// A fault and the path to it, innermost step first (built while unwinding).
struct Fault {
    kind: FaultKind,
    path: Vec<Step>,
}

fn forbidden_control(text: &str) -> Option<char> {
    text.chars().find(|c| (*c as u32) < 0x20 && !matches!(c, '\t' | '\r' | '\n'))
}

fn check_object(object: &Map<String, Value>, depth: usize) -> Result<(), Fault> {
    if depth > MAX_DEPTH {
        return Err(Fault { kind: FaultKind::TooDeep, path: Vec::new() });
    }
    for (name, value) in object {
        let at = |mut fault: Fault| {
            fault.path.push(Step::Element(name.clone()));
            fault
        };
        if let Some(c) = forbidden_control(name) {
            return Err(at(Fault { kind: FaultKind::ControlCharacter(c), path: Vec::new() }));
        }
        check_value(value, depth).map_err(at)?;
    }
    Ok(())
}

fn check_value(value: &Value, depth: usize) -> Result<(), Fault> {
    match value {
        Value::String(text) => match forbidden_control(text) {
            Some(c) => Err(Fault { kind: FaultKind::ControlCharacter(c), path: Vec::new() }),
            None => Ok(()),
        },
        Value::Object(object) => check_object(object, depth + 1),
        Value::Array(items) => {
            if depth + 1 > MAX_DEPTH {
                return Err(Fault { kind: FaultKind::TooDeep, path: Vec::new() });
            }
            for (index, item) in items.iter().enumerate() {
                check_value(item, depth + 1).map_err(|mut fault| {
                    fault.path.push(Step::Index(index));
                    fault
                })?;
            }
            Ok(())
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

fn describe_json_error(e: &serde_json::Error) -> String {
    // serde_json appends " at line X column Y" itself; keep only the cause.
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

/// Gives the numbers of `value`, parsed from `text`, back the exact text they have in `text`
/// where serde_json rewrote it (only exponents: `E` → `e`, a `+` added when no sign was written).
/// Texts without an exponent written that way cost one scan for the pattern.
fn restore_number_text(text: &[u8], value: &mut Value) {
    if !has_rewritten_exponent(text) {
        return;
    }
    let literals = number_literals(text);
    let mut next = literals.iter();
    visit_numbers(value, &mut |number| {
        // Numbers come in document order, as the literals do; a literal whose normalized form
        // differs (a duplicate key replaced an earlier value) is skipped, never misassigned.
        let normalized = number.to_string();
        for literal in next.by_ref() {
            if normalize_exponent(literal) == normalized {
                if literal != &normalized {
                    // The text is a JSON number that serde_json accepted; only its exponent
                    // spelling differs. serde_json offers no public constructor that keeps
                    // the spelling, so the hidden one is used (pinned by the tests below).
                    *number = Number::from_string_unchecked(literal.clone());
                }
                return;
            }
        }
    });
}

/// The JSON number written as `text`, keeping that exact text (`1.50`, `1E5`); `None` when
/// `text` is not a JSON number. For formats that carry numbers as text (FHIR XML's `value`).
pub fn number_from_text(text: &str) -> Option<Number> {
    if text.trim() != text {
        return None;
    }
    let number: Number = serde_json::from_str(text).ok()?;
    // The text is a JSON number serde_json accepted; only an exponent's spelling may differ
    // (see `restore_number_text`).
    Some(if number.to_string() == text { number } else { Number::from_string_unchecked(text.to_owned()) })
}

/// Whether `text` has a number with an exponent that serde_json writes differently: `E`, or
/// `e` directly followed by a digit. A cheap over-approximation (strings may match too).
fn has_rewritten_exponent(text: &[u8]) -> bool {
    text.windows(2).any(|pair| matches!(pair, [b'E', b'0'..=b'9' | b'+' | b'-'] | [b'e', b'0'..=b'9']))
}

/// The exponent spelling serde_json produces: lowercase `e` and an explicit sign.
fn normalize_exponent(literal: &str) -> String {
    match literal.find(['e', 'E']) {
        None => literal.to_owned(),
        Some(at) => {
            let (mantissa, exponent) = (&literal[..at], &literal[at + 1..]);
            if exponent.starts_with(['+', '-']) {
                format!("{mantissa}e{exponent}")
            } else {
                format!("{mantissa}e+{exponent}")
            }
        }
    }
}

/// Every number literal of a JSON text in document order (the text is valid JSON: it has been
/// parsed already).
fn number_literals(text: &[u8]) -> Vec<String> {
    let mut literals = Vec::new();
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => {
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < text.len() && matches!(text[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                    i += 1;
                }
                literals.push(String::from_utf8_lossy(&text[start..i]).into_owned());
            }
            _ => i += 1,
        }
    }
    literals
}

fn visit_numbers(value: &mut Value, f: &mut impl FnMut(&mut Number)) {
    match value {
        Value::Number(number) => f(number),
        Value::Array(items) => items.iter_mut().for_each(|item| visit_numbers(item, f)),
        Value::Object(object) => object.values_mut().for_each(|item| visit_numbers(item, f)),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_line_and_column() {
        let err = parse_resource(b"{\n  \"resourceType\": \"Patient\",\n  oops\n}").unwrap_err();
        assert!(err.diagnostics.contains("line 3 column 3"), "{}", err.diagnostics);
        assert_eq!(err.code, IssueCode::Structure);
    }

    #[test]
    fn requires_object_with_resource_type() {
        assert!(parse_resource(b"[1]").is_err());
        assert_eq!(parse_resource(b"{}").unwrap_err().code, IssueCode::Required);
        assert!(parse_resource(br#"{"resourceType":"Patient"}"#).is_ok());
    }

    #[test]
    fn keeps_decimal_text() {
        let map = parse_resource(br#"{"resourceType":"Slot","x":1.50}"#).unwrap();
        assert_eq!(serde_json::to_string(&map["x"]).unwrap(), "1.50");
    }

    #[test]
    fn keeps_exponent_text_exactly() {
        let text = r#"{"resourceType":"Observation","a":1E5,"b":[-1.0E-0,2e3,4e+4,5E+05],"c":{"d":"1E5 in a string","e":7e-1}}"#;
        let map = parse_resource(text.as_bytes()).unwrap();
        assert_eq!(serde_json::to_string(&map).unwrap(), text);
        assert_eq!(serde_json::to_string(&parse_stored(text).unwrap()).unwrap(), text);
        assert_eq!(map["a"].as_f64(), Some(100_000.0));
    }

    #[test]
    fn numbers_from_text_keep_their_spelling() {
        for text in ["1.50", "1E5", "-0.0e-3", "12345678901234567890.123"] {
            assert_eq!(number_from_text(text).unwrap().to_string(), text);
        }
        for text in ["", " 1", "01", "+1", "1.", "NaN", "1e", "\"1\""] {
            assert!(number_from_text(text).is_none(), "{text}");
        }
    }

    #[test]
    fn a_duplicate_key_never_misplaces_a_number_text() {
        let value = parse_value(br#"{"a":1E1,"a":2E2,"b":3E3}"#).unwrap();
        assert_eq!(value["b"].to_string(), "3E3");
        assert_eq!(value["a"].as_f64(), Some(200.0));
    }

    /// A Slot nesting objects and arrays `depth` deep (odd depths exactly).
    fn nested(depth: usize) -> String {
        let mut text = String::from(r#"{"url":"x"}"#);
        for _ in 0..(depth - 3) / 2 {
            text = format!(r#"{{"url":"x","extension":[{text}]}}"#);
        }
        format!(r#"{{"resourceType":"Slot","extension":[{text}]}}"#)
    }

    #[test]
    fn limits_depth_on_parse_and_check() {
        assert!(parse_resource(nested(MAX_DEPTH - 1).as_bytes()).is_ok());
        let err = parse_resource(nested(MAX_DEPTH + 1).as_bytes()).unwrap_err();
        assert_eq!(err.code, IssueCode::TooLong);
        assert!(err.expression[0].starts_with("Slot.extension[0].extension[0]"), "{:?}", err.expression);
        let deeper = nested(300);
        let err = parse_resource(deeper.as_bytes()).unwrap_err();
        assert!(err.diagnostics.contains("deeper than the limit"), "{}", err.diagnostics);
        // Stored text is read whatever its depth.
        assert!(parse_stored(&deeper).is_ok());
    }

    #[test]
    fn refuses_control_characters() {
        let err = parse_resource(br#"{"resourceType":"Patient","name":[{"family":"a\u0001b"}]}"#).unwrap_err();
        assert_eq!(err.code, IssueCode::Value);
        assert_eq!(err.expression, vec!["Patient.name[0].family"]);
        assert!(err.diagnostics.contains("U+0001"));
        assert!(parse_resource(br#"{"resourceType":"Patient","text":{"div":"a\tb\r\nc"}}"#).is_ok());
        assert!(parse_resource(br#"{"resourceType":"Patient","x\u001f":1}"#).is_err());
    }
}
