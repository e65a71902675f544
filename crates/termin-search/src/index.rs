//! Extraction of search-index rows from a resource.

use serde_json::{Map, Value};
use termin_store::{IndexEntries, TokenIndex};

/// The index rows of a resource for the parameters Termin searches on.
pub fn index_entries(resource: &Map<String, Value>) -> IndexEntries {
    let mut tokens = Vec::new();
    for identifier in resource.get("identifier").and_then(Value::as_array).into_iter().flatten() {
        let Some(code) = identifier.get("value").and_then(Value::as_str) else {
            continue;
        };
        tokens.push(TokenIndex {
            param: "identifier".into(),
            system: identifier.get("system").and_then(Value::as_str).map(str::to_owned),
            code: code.to_owned(),
        });
    }
    IndexEntries { tokens }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn indexes_identifiers_with_and_without_system() {
        let Value::Object(patient) = json!({
            "resourceType": "Patient",
            "identifier": [
                {"system": "urn:oid:1.2.40.0.10.1.4.3.1", "value": "1234010180"},
                {"value": "local-7"},
                {"system": "urn:no-value"}
            ]
        }) else { unreachable!() };
        let tokens = index_entries(&patient).tokens;
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[0].system.as_deref(), Some("urn:oid:1.2.40.0.10.1.4.3.1"));
        assert_eq!(tokens[1].system, None);
        assert_eq!(tokens[1].code, "local-7");
    }
}
