use super::*;
use crate::registry::registry;
use serde_json::json;
use termin_fhir::ResourceType;

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn sorted<T: std::fmt::Debug>(rows: &[T]) -> Vec<String> {
    let mut rows: Vec<String> = rows.iter().map(|r| format!("{r:?}")).collect();
    rows.sort();
    rows
}

fn direct(slot: &Map<String, Value>) -> Option<IndexEntries> {
    let search = registry();
    slot_index(slot, |param, text| search.date_index(param, text))
}

/// A Slot as slot generation writes it, with its server-managed `meta`.
fn generated() -> Map<String, Value> {
    object(json!({
        "resourceType": "Slot",
        "id": "0b5c3a4e-6f1d-5d2a-9c1e-3f4a5b6c7d8e",
        "meta": {"versionId": "1", "lastUpdated": "2026-12-08T04:00:00.123456Z"},
        "identifier": [{"system": "https://termin.at/fhir/generated-slot", "value": "Schedule/s-1/2030-01-07T07:00:00.000Z"}],
        "serviceType": [{"concept": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/service-type", "code": "65", "display": "Physiotherapy"}], "text": "Physio"}}],
        "schedule": {"reference": "Schedule/s-1"},
        "status": "free",
        "start": "2030-01-07T08:00:00+01:00",
        "end": "2030-01-07T08:30:00+01:00"
    }))
}

/// Every shape the direct rows are taken for, each a change of the generated Slot.
fn shapes() -> Vec<Map<String, Value>> {
    let changes: Vec<(&str, Value)> = vec![
        ("status", json!("busy-tentative")),
        ("status", json!("busy")),
        ("status", json!("busy-unavailable")),
        ("status", json!("entered-in-error")),
        ("status", json!("")),
        ("comment", json!("Bitte pünktlich")),
        ("overbooked", json!(false)),
        ("identifier", json!([])),
        ("identifier", json!([{"system": "urn:x", "value": "a"}, {"system": "urn:x", "value": "a"}])),
        ("identifier", json!([{"value": "only-value"}, {"system": "urn:x"}, {"system": "", "value": ""}, {}])),
        ("serviceType", json!([])),
        (
            "serviceType",
            json!([{"concept": {"text": "Nur Text"}}, {"concept": {"coding": [{"code": "1"}, {"display": "Nur Anzeige"}, {"system": "urn:s"}]}}]),
        ),
        ("serviceType", json!([{"concept": {}}, {"concept": {"coding": []}}])),
        ("serviceType", json!([{"reference": {"reference": "HealthcareService/hs-1", "display": "Physio"}}])),
        (
            "serviceType",
            json!([{"concept": {"coding": [{"system": "urn:s", "code": "1"}]}, "reference": {"reference": "https://example.org/fhir/HealthcareService/hs-2"}}]),
        ),
        (
            "serviceType",
            json!([{"reference": {"reference": "#contained"}}, {"reference": {"display": "only display"}}]),
        ),
        ("schedule", json!({"reference": "https://example.org/fhir/Schedule/s-1", "display": "Dr. A"})),
        ("schedule", json!({"reference": "Schedule/s-1/_history/2", "type": "Schedule"})),
        ("schedule", json!({"display": "no reference"})),
        ("schedule", json!({})),
        ("start", json!("2030-01-07")),
        ("start", json!("2030-01-07T08:00:00Z")),
        ("start", json!("not a date")),
        ("end", json!("2030-01-07T07:30:00+01:00")),
        ("meta", json!({"versionId": "7"})),
        ("meta", json!({})),
    ];
    let mut shapes = vec![generated()];
    for (element, value) in changes {
        let mut slot = generated();
        slot.insert(element.to_owned(), value);
        shapes.push(slot);
    }
    for element in ["meta", "identifier", "serviceType", "schedule", "status", "start", "end", "id"] {
        let mut slot = generated();
        slot.shift_remove(element);
        shapes.push(slot);
    }
    shapes
}

/// The shipped R5 package's Slot parameters are those the direct rows are written for.
#[test]
fn the_loaded_slot_parameters_are_the_expected_ones() {
    let params = registry().params(ResourceType::Slot);
    let loaded: Vec<(&str, &str)> = params.iter().map(|p| (p.code.as_str(), p.expression_text.as_str())).collect();
    assert_eq!(loaded, EXPECTED.to_vec());
    assert!(expected(params));
}

/// For every shape read directly, the rows are exactly those the FHIRPath extraction finds.
#[test]
fn direct_rows_equal_the_fhirpath_extraction() {
    let search = registry();
    for slot in shapes() {
        let direct = direct(&slot).unwrap_or_else(|| panic!("not read directly: {slot:?}"));
        let generic = search.extracted_entries(ResourceType::Slot, &slot);
        assert_eq!(sorted(&direct.tokens), sorted(&generic.tokens), "{slot:?}");
        assert_eq!(sorted(&direct.dates), sorted(&generic.dates), "{slot:?}");
        assert_eq!(sorted(&direct.references), sorted(&generic.references), "{slot:?}");
        assert_eq!(sorted(&direct.strings), sorted(&generic.strings), "{slot:?}");
        assert_eq!(sorted(&direct.uris), sorted(&generic.uris), "{slot:?}");
        assert!(generic.numbers.is_empty() && generic.quantities.is_empty() && generic.positions.is_empty());
        // And the registry takes this way.
        let chosen = search.index_entries(&slot);
        assert_eq!(format!("{chosen:?}"), format!("{direct:?}"));
    }
}

/// Anything else is left to the FHIRPath extraction.
#[test]
fn other_shapes_are_extracted_generically() {
    let changes: Vec<(&str, Value)> = vec![
        ("extension", json!([{"url": "urn:e", "valueString": "x"}])),
        ("language", json!("de")),
        ("specialty", json!([{"coding": [{"system": "urn:s", "code": "1"}]}])),
        ("meta", json!({"versionId": "1", "profile": ["urn:p"]})),
        ("meta", json!({"versionId": "1", "lastUpdated": 5})),
        ("identifier", json!([{"system": "urn:x", "value": "a", "type": {"text": "t"}}])),
        ("identifier", json!({"system": "urn:x", "value": "a"})),
        ("status", json!(3)),
        ("start", json!(["2030-01-07T08:00:00Z"])),
        ("serviceType", json!([{"concept": {"coding": [{"system": 1, "code": "1"}]}}])),
        ("serviceType", json!([{"concept": {"coding": [{"code": "1", "version": "2"}]}}])),
        ("serviceType", json!([{"reference": {"identifier": {"value": "x"}}}])),
        ("serviceType", json!({"concept": {"text": "x"}})),
        ("schedule", json!({"reference": "Schedule/s-1", "identifier": {"value": "x"}})),
        ("schedule", json!([{"reference": "Schedule/s-1"}])),
    ];
    for (element, value) in changes {
        let mut slot = generated();
        slot.insert(element.to_owned(), value);
        assert!(direct(&slot).is_none(), "read directly: {slot:?}");
        let generic = registry().extracted_entries(ResourceType::Slot, &slot);
        assert_eq!(format!("{:?}", registry().index_entries(&slot)), format!("{generic:?}"));
    }
}
