//! Subsets of resources a client asks for: `_summary=true|text|data` (the elements chosen by
//! the R5 StructureDefinitions' isSummary and min flags, through the search registry's element
//! model) and `_elements`. A subset carries the `SUBSETTED` tag, as FHIR asks, so nobody takes
//! it for the whole resource.

use crate::error::ApiError;
use crate::query::query_pairs;
use serde_json::{Map, Value, json};
use termin_fhir::{Issue, IssueCode, ResourceType};
use termin_search::{SearchParameters, SummaryMode};

/// The `_summary` of a read's query: `None` for none or `false`; `count` has no meaning there.
pub fn read_summary(query: Option<&str>) -> Result<Option<SummaryMode>, ApiError> {
    let Some((_, value)) = query_pairs(query).find(|(name, _)| name == "_summary") else {
        return Ok(None);
    };
    SummaryMode::parse(&value).map_err(|e| ApiError::bad_request(Issue::error(IssueCode::Invalid, e.message).at("_summary")))
}

/// The part of `resource` that `mode` asks for.
pub fn summarize(search: &SearchParameters, resource_type: ResourceType, resource: Value, mode: SummaryMode) -> Value {
    let mandatory = search.mandatory_elements(resource_type);
    match mode {
        SummaryMode::True => {
            let summary = search.summary_elements(resource_type);
            keep(resource, |name| defined_in(summary, name) || defined_in(mandatory, name))
        }
        SummaryMode::Text => keep(resource, |name| name == "text" || defined_in(mandatory, name)),
        SummaryMode::Data => keep(resource, |name| name != "text"),
    }
}

/// `_elements`: the named top-level elements (the mandatory ones are among them already).
pub fn elements(resource: Value, names: &[String]) -> Value {
    keep(resource, |name| names.iter().any(|e| e == name))
}

/// Whether the JSON property `name` is one of the element `definitions` (`value[x]` covers
/// `valueString`).
fn defined_in(definitions: &[String], name: &str) -> bool {
    definitions.iter().any(|definition| match definition.strip_suffix("[x]") {
        Some(stem) => name.strip_prefix(stem).is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase())),
        None => definition == name,
    })
}

/// The top-level properties `wanted` picks, plus what every resource keeps, tagged SUBSETTED.
fn keep(resource: Value, wanted: impl Fn(&str) -> bool) -> Value {
    let Value::Object(full) = resource else {
        return resource;
    };
    let mut out = Map::new();
    for (name, value) in full {
        // A primitive's `_name` sibling (its extensions) goes with it.
        let bare = name.strip_prefix('_').unwrap_or(&name);
        if matches!(name.as_str(), "resourceType" | "id" | "meta") || wanted(bare) {
            out.insert(name, value);
        }
    }
    let meta = out.entry("meta").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        let tags = meta.entry("tag").or_insert_with(|| json!([]));
        if let Some(tags) = tags.as_array_mut() {
            tags.push(json!({
                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                "code": "SUBSETTED",
            }));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choice_definitions_cover_their_typed_names() {
        let definitions = ["value[x]".to_owned(), "status".to_owned()];
        assert!(defined_in(&definitions, "valueString"));
        assert!(defined_in(&definitions, "status"));
        assert!(!defined_in(&definitions, "values"));
        assert!(!defined_in(&definitions, "value"));
        assert!(!defined_in(&definitions, "statusReason"));
    }

    #[test]
    fn summaries_of_a_slot_follow_its_definition() {
        let search = termin_search::registry();
        let slot = json!({
            "resourceType": "Slot", "id": "s", "meta": {"versionId": "1"},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
            "schedule": {"reference": "Schedule/a"}, "status": "free",
            "start": "2026-01-01T10:00:00Z", "end": "2026-01-01T10:30:00Z", "comment": "long text",
        });
        let summary = summarize(search, ResourceType::Slot, slot.clone(), SummaryMode::True);
        assert!(summary.get("comment").is_none() && summary.get("text").is_none(), "{summary}");
        for kept in ["schedule", "status", "start", "end"] {
            assert!(summary.get(kept).is_some(), "{kept} in {summary}");
        }
        assert_eq!(summary["meta"]["tag"][0]["code"], "SUBSETTED");
        let text = summarize(search, ResourceType::Slot, slot.clone(), SummaryMode::Text);
        assert!(text.get("text").is_some() && text.get("status").is_some() && text.get("comment").is_none(), "{text}");
        let data = summarize(search, ResourceType::Slot, slot, SummaryMode::Data);
        assert!(data.get("text").is_none() && data.get("comment").is_some(), "{data}");
    }
}
