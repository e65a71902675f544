//! The index rows of a Slot of the shape the server itself writes (generated Slots, and the
//! same Slots after `$hold` and booking change their status), taken from its elements directly
//! instead of by evaluating every R5 Slot parameter's FHIRPath: slot generation writes
//! hundreds of thousands of them, and the generic extraction was most of Termin's own work per
//! Slot. Any other shape — an element this module does not read, a value of an unexpected
//! JSON type, `meta` beyond version and time — answers `None`, and the generic extraction
//! indexes it. A test holds both ways equal for every shape read here.
//!
//! Used only when the loaded Slot parameters are the R5 ones this module was written for
//! ([`EXPECTED`], checked when the registry is loaded).

use crate::extract::{code_index, codeable_concept_rows, dedup, reference_index, str_of};
use crate::registry::SearchParam;
use serde_json::{Map, Value};
use termin_store::{IndexEntries, TokenIndex};

/// The Slot parameters (code and expression, ordered by code) of `hl7.fhir.r5.core#5.0.0`,
/// whose rows [`slot_index`] takes directly.
pub(crate) const EXPECTED: [(&str, &str); 16] = [
    ("_id", "Resource.id"),
    ("_language", "Resource.language"),
    ("_lastUpdated", "Resource.meta.lastUpdated"),
    ("_profile", "Resource.meta.profile"),
    ("_security", "Resource.meta.security"),
    ("_source", "Resource.meta.source"),
    ("_tag", "Resource.meta.tag"),
    ("appointment-type", "Slot.appointmentType"),
    ("identifier", "Slot.identifier"),
    ("schedule", "Slot.schedule"),
    ("service-category", "Slot.serviceCategory"),
    ("service-type", "Slot.serviceType.concept"),
    ("service-type-reference", "Slot.serviceType.reference"),
    ("specialty", "Slot.specialty"),
    ("start", "Slot.start"),
    ("status", "Slot.status"),
];

/// Whether `params` (a type's, ordered by code) are exactly [`EXPECTED`].
pub(crate) fn expected(params: &[SearchParam]) -> bool {
    params.len() == EXPECTED.len()
        && params
            .iter()
            .zip(EXPECTED)
            .all(|(param, (code, expression))| param.code == code && param.expression_text == expression)
}

/// Elements of a Slot no parameter indexes: present or not, they change no row.
const UNINDEXED: [&str; 4] = ["id", "end", "comment", "overbooked"];

/// The rows of `slot`, or `None` when it is not of the shape read here. `date` builds a date
/// row from an instant's text, as the registry does for its time zone.
pub(crate) fn slot_index(
    slot: &Map<String, Value>,
    date: impl Fn(&str, &str) -> Option<termin_store::DateIndex>,
) -> Option<IndexEntries> {
    let mut index = IndexEntries::default();
    for (key, value) in slot {
        match key.as_str() {
            "resourceType" => {}
            key if UNINDEXED.contains(&key) => {}
            "meta" => {
                for (part, value) in value.as_object()? {
                    match part.as_str() {
                        "versionId" => {}
                        "lastUpdated" => index.dates.extend(date("_lastUpdated", value.as_str()?)),
                        _ => return None,
                    }
                }
            }
            "identifier" => {
                for identifier in value.as_array()? {
                    let identifier = identifier.as_object()?;
                    if identifier.keys().any(|k| k != "system" && k != "value") {
                        return None;
                    }
                    let (system, code) = (string_part(identifier, "system")?, string_part(identifier, "value")?);
                    // An Identifier without value (and without type text) gives no row.
                    if let Some(code) = code {
                        index.tokens.push(TokenIndex::code("identifier", system, code));
                    }
                }
            }
            "serviceType" => {
                for service in value.as_array()? {
                    let service = service.as_object()?;
                    for (part, value) in service {
                        match part.as_str() {
                            "concept" => concept_rows("service-type", value, &mut index.tokens)?,
                            "reference" => {
                                index.references.extend(reference_rows("service-type-reference", value)?);
                            }
                            _ => return None,
                        }
                    }
                }
            }
            "schedule" => index.references.extend(reference_rows("schedule", value)?),
            "status" => index.tokens.extend(code_index("status", value.as_str()?)),
            "start" => index.dates.extend(date("start", value.as_str()?)),
            _ => return None,
        }
    }
    dedup(&mut index);
    // As the generic extraction adds it: after the parameters' rows.
    index.dates.extend(crate::slot_period::slot_period_row(slot));
    Some(index)
}

/// A string part of an element: `Some(None)` when absent or empty (no row part), `None` when
/// it is not a string.
fn string_part(element: &Map<String, Value>, key: &str) -> Option<Option<String>> {
    match element.get(key) {
        None => Some(None),
        Some(value @ Value::String(_)) => Some(str_of(Some(value))),
        Some(_) => None,
    }
}

/// The token rows of a CodeableConcept of codings with string `system`, `code` and `display`
/// and an optional string `text`.
fn concept_rows(param: &str, concept: &Value, out: &mut Vec<TokenIndex>) -> Option<()> {
    let object = concept.as_object()?;
    for (part, value) in object {
        match part.as_str() {
            "coding" => {
                for coding in value.as_array()? {
                    let coding = coding.as_object()?;
                    let strings = coding
                        .iter()
                        .all(|(k, v)| matches!(k.as_str(), "system" | "code" | "display") && v.is_string());
                    if !strings {
                        return None;
                    }
                }
            }
            "text" => {
                value.as_str()?;
            }
            _ => return None,
        }
    }
    codeable_concept_rows(param, Some(concept), out);
    Some(())
}

/// The row of a Reference with string `reference`, `type` and `display` only.
fn reference_rows(param: &str, reference: &Value) -> Option<Option<termin_store::ReferenceIndex>> {
    let object = reference.as_object()?;
    let strings = object.iter().all(|(k, v)| matches!(k.as_str(), "reference" | "type" | "display") && v.is_string());
    if !strings {
        return None;
    }
    let part = |key: &str| object.get(key).and_then(Value::as_str);
    Some(reference_index(param, part("type"), part("reference"), None, None))
}

#[cfg(test)]
mod tests;
