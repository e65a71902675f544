//! Subsets of resources a client asks for: `_summary=true|text|data` (the elements chosen by
//! the R5 StructureDefinitions' isSummary and min flags, through the search registry's element
//! model) and `_elements`. `_summary=true` subsets nested elements too: inside a kept complex
//! element (a data type such as `HumanName` or `Identifier`, or a backbone element such as
//! `Appointment.participant`) it keeps the children marked isSummary or mandatory in that
//! type's definition. A subset carries the `SUBSETTED` tag, as FHIR asks, so nobody takes it
//! for the whole resource.

use crate::error::ApiError;
use crate::query::query_pairs;
use serde_json::{Map, Value, json};
use termin_fhir::{Issue, IssueCode, ResourceType};
use termin_search::{ElementTypes, SearchParameters, SummaryMode};

/// The `_summary` of a read's query: `None` for none or `false`; `count` has no meaning there.
pub fn read_summary(query: Option<&str>) -> Result<Option<SummaryMode>, ApiError> {
    let Some((_, value)) = query_pairs(query).find(|(name, _)| name == "_summary") else {
        return Ok(None);
    };
    SummaryMode::parse(&value)
        .map_err(|e| ApiError::bad_request(Issue::error(IssueCode::Invalid, e.message).at("_summary")))
}

/// The part of `resource` that `mode` asks for.
pub fn summarize(search: &SearchParameters, resource_type: ResourceType, resource: Value, mode: SummaryMode) -> Value {
    let mandatory = search.mandatory_elements(resource_type);
    match mode {
        SummaryMode::True => {
            let summary = search.summary_elements(resource_type);
            let kept = keep(resource, |name| defined_in(summary, name) || defined_in(mandatory, name));
            summarize_nested(search.element_types(), resource_type.as_str(), kept)
        }
        SummaryMode::Text => keep(resource, |name| name == "text" || defined_in(mandatory, name)),
        SummaryMode::Data => keep(resource, |name| name != "text"),
    }
}

/// Subsets the kept top-level elements' contents (`meta`, with its `SUBSETTED` tag, stays whole).
fn summarize_nested(types: ElementTypes<'_>, resource_type: &str, resource: Value) -> Value {
    let Value::Object(mut top) = resource else {
        return resource;
    };
    for (name, value) in top.iter_mut() {
        if matches!(name.as_str(), "resourceType" | "id" | "meta") || name.starts_with('_') {
            continue;
        }
        if let Some(child) = element_type(types, resource_type, name) {
            *value = subset(types, &child, std::mem::take(value)).unwrap_or(Value::Null);
        }
    }
    // A kept element whose summary is empty is left out rather than sent empty.
    top.retain(|_, value| !value.is_null());
    Value::Object(top)
}

/// The type of `parent`'s element `name`: declared, or for a choice element (`value[x]` sent
/// as `valuePeriod`) the type its name ends in; `None` when no definition of it is loaded.
fn element_type(types: ElementTypes<'_>, parent: &str, name: &str) -> Option<String> {
    if let Some(declared) = types.child_type(parent, name) {
        return types.knows(declared).then(|| declared.to_owned());
    }
    let choices = types.summary(parent).iter().chain(types.mandatory(parent));
    choices
        .filter_map(|definition| definition.strip_suffix("[x]"))
        .find_map(|stem| name.strip_prefix(stem).filter(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase())))
        .filter(|suffix| types.knows(suffix))
        .map(str::to_owned)
}

/// The summary of a value of complex type `type_name` (each item of an array); `None` when
/// nothing of it is summary.
fn subset(types: ElementTypes<'_>, type_name: &str, value: Value) -> Option<Value> {
    match value {
        Value::Array(items) => {
            let kept: Vec<Value> = items.into_iter().filter_map(|item| subset(types, type_name, item)).collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        Value::Object(object) => {
            let summary = types.summary(type_name);
            let mandatory = types.mandatory(type_name);
            let mut out = Map::new();
            for (name, value) in object {
                // A primitive's `_name` sibling (its id and extensions) goes with it.
                let bare = name.strip_prefix('_').unwrap_or(&name);
                if !(defined_in(summary, bare) || defined_in(mandatory, bare)) {
                    continue;
                }
                let value = match element_type(types, type_name, bare).filter(|_| !name.starts_with('_')) {
                    Some(child) => match subset(types, &child, value) {
                        Some(value) => value,
                        None => continue,
                    },
                    None => value,
                };
                out.insert(name, value);
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        primitive => Some(primitive),
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

    #[test]
    fn summaries_subset_data_types_and_backbone_elements_too() {
        let search = termin_search::registry();
        let patient = json!({
            "resourceType": "Patient", "id": "p", "meta": {"versionId": "1"},
            "identifier": [{"system": "urn:s", "value": "1", "extension": [{"url": "urn:x", "valueString": "hidden"}]}],
            "name": [{"family": "Huber", "given": ["Anna"], "_family": {"extension": [{"url": "urn:y", "valueCode": "kept"}]},
                      "period": {"start": "2020-01-01", "extension": [{"url": "urn:z", "valueString": "hidden"}]}}],
            "contact": [{"name": {"family": "Berger"}}],
            "photo": [{"contentType": "image/png"}],
        });
        let summary = summarize(search, ResourceType::Patient, patient, SummaryMode::True);
        // Identifier.extension and Period.extension are not summary elements; the values are.
        assert_eq!(summary["identifier"], json!([{"system": "urn:s", "value": "1"}]), "{summary}");
        assert_eq!(summary["name"][0]["family"], "Huber");
        assert_eq!(summary["name"][0]["given"], json!(["Anna"]));
        assert_eq!(
            summary["name"][0]["_family"]["extension"][0]["valueCode"], "kept",
            "a primitive's extensions go with it"
        );
        assert_eq!(summary["name"][0]["period"], json!({"start": "2020-01-01"}));
        // Patient.contact and Patient.photo are not summary elements at all.
        assert!(summary.get("contact").is_none() && summary.get("photo").is_none(), "{summary}");

        let appointment = json!({
            "resourceType": "Appointment", "id": "a", "status": "booked",
            "participant": [{"actor": {"reference": "Patient/p", "display": "Anna"}, "status": "accepted",
                             "extension": [{"url": "urn:x", "valueString": "hidden"}]}],
            "note": [{"text": "not in the summary"}],
        });
        let summary = summarize(search, ResourceType::Appointment, appointment, SummaryMode::True);
        assert_eq!(
            summary["participant"],
            json!([{"actor": {"reference": "Patient/p", "display": "Anna"}, "status": "accepted"}]),
            "{summary}"
        );
        assert!(summary.get("note").is_none(), "{summary}");
    }
}
