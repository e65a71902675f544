//! Parsing request bodies into FHIR JSON resources.

use crate::outcome::{Issue, IssueCode};
use serde_json::{Map, Value};

/// Parses a request body that must be one FHIR resource (a JSON object with `resourceType`).
///
/// Errors carry the parser's line and column so a client can find the fault.
pub fn parse_resource(bytes: &[u8]) -> Result<Map<String, Value>, Issue> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        Issue::error(
            IssueCode::Structure,
            format!(
                "The body is not valid JSON: {} (line {} column {})",
                describe_json_error(&e),
                e.line(),
                e.column()
            ),
        )
    })?;
    let Value::Object(map) = value else {
        return Err(Issue::error(
            IssueCode::Structure,
            "The body must be a JSON object holding one FHIR resource",
        ));
    };
    match map.get("resourceType") {
        Some(Value::String(_)) => Ok(map),
        Some(_) => Err(Issue::error(IssueCode::Structure, "resourceType must be a string")
            .at("resourceType")),
        None => Err(Issue::error(
            IssueCode::Required,
            "The resource has no resourceType element",
        )),
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
}
