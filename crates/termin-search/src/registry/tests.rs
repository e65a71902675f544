use super::*;
use serde_json::json;
use termin_store::{DateIndex, ReferenceIndex, StringIndex, TokenIndex};

fn params() -> &'static SearchParameters {
    registry()
}

fn entries(resource: Value) -> IndexEntries {
    let Value::Object(map) = resource else { panic!("not an object") };
    params().index_entries(&map)
}

#[test]
fn loads_the_parameters_of_every_served_type() {
    let started = std::time::Instant::now();
    let dirs: Vec<PathBuf> = default_package_cache().into_iter().collect();
    let loaded = SearchParameters::load(&dirs, DEFAULT_TIME_ZONE).unwrap();
    eprintln!("loaded in {:?}", started.elapsed());
    for resource_type in ResourceType::ALL {
        let codes: Vec<&str> = loaded.params(resource_type).iter().map(|p| p.code.as_str()).collect();
        for common in ["_id", "_lastUpdated", "_profile", "_tag", "_security", "_source"] {
            assert!(codes.contains(&common), "{resource_type} lacks {common}: {codes:?}");
        }
    }
    let slot: Vec<&str> = loaded.params(ResourceType::Slot).iter().map(|p| p.code.as_str()).collect();
    for code in ["identifier", "schedule", "service-type", "service-type-reference", "specialty", "start", "status"] {
        assert!(slot.contains(&code), "Slot lacks {code}");
    }
    assert!(loaded.param(ResourceType::Appointment, "actor").is_some());
    assert!(loaded.param(ResourceType::Patient, "_in").is_none(), "_in needs List/Group membership");
    assert_eq!(loaded.param(ResourceType::Location, "near").unwrap().index_kind(), Some(IndexKind::Position));
    assert!(loaded.param(ResourceType::Location, "contains").is_none(), "other special parameters are not served");
    assert_eq!(
        loaded.param(ResourceType::Appointment, "date").unwrap().expression_text,
        "(start | requestedPeriod.start).first()"
    );
    assert!(loaded.fingerprint().starts_with(CORE_PACKAGE));
}

#[test]
fn other_time_zones_change_the_fingerprint() {
    let dirs: Vec<PathBuf> = default_package_cache().into_iter().collect();
    let utc = SearchParameters::load(&dirs, "UTC").unwrap();
    assert_ne!(utc.fingerprint(), params().fingerprint());
    assert!(matches!(SearchParameters::load(&dirs, "Mars/Olympus"), Err(LoadError::TimeZone(_))));
    assert!(matches!(
        SearchParameters::load(&[PathBuf::from("/nonexistent")], "UTC"),
        Err(LoadError::PackageMissing { .. })
    ));
}

#[test]
fn indexes_the_ig_slot_example() {
    let index = entries(json!({
        "resourceType": "Slot",
        "id": "s1",
        "meta": {"lastUpdated": "2026-04-07T10:00:00Z", "profile": ["https://fhir.hl7.at/x"],
                 "tag": [{"system": "urn:t", "code": "demo", "display": "Demo data"}]},
        "serviceType": [{"concept": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/service-type", "code": "65", "display": "Physiotherapy"}]}}],
        "schedule": {"reference": "Schedule/HL7ATSchedulingScheduleExample01"},
        "status": "free",
        "start": "2025-09-15T08:00:00Z",
        "end": "2025-09-15T09:00:00Z"
    }));
    let token = |param: &str, system: Option<&str>, code: &str| TokenIndex::code(param, system.map(str::to_owned), code);
    assert!(index.tokens.contains(&token("status", None, "free")), "{:?}", index.tokens);
    assert!(index.tokens.contains(&TokenIndex {
        text: Some("physiotherapy".into()),
        ..token("service-type", Some("http://terminology.hl7.org/CodeSystem/service-type"), "65")
    }));
    assert!(index.tokens.iter().any(|t| t.param == "_tag" && t.code.as_deref() == Some("demo")));
    assert!(index.references.contains(&ReferenceIndex {
        param: "schedule".into(),
        target_type: Some("Schedule".into()),
        target_id: Some("HL7ATSchedulingScheduleExample01".into()),
        ..ReferenceIndex::default()
    }));
    assert!(index.references.iter().any(|r| r.param == "_profile" && r.url.as_deref() == Some("https://fhir.hl7.at/x")));
    let start = "2025-09-15T08:00:00Z".parse().unwrap();
    assert!(index.dates.contains(&DateIndex {
        param: "start".into(),
        low: Some(start),
        high: Some(start + jiff::SignedDuration::from_secs(1)),
    }));
    assert!(index.dates.iter().any(|d| d.param == "_lastUpdated"));
}

#[test]
fn indexes_names_identifiers_telecom_and_computed_tokens() {
    let index = entries(json!({
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.40.0.10.1.4.3.1", "value": "1234010180",
                        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS"}], "text": "SVNR"}}],
        "name": [{"family": "Müller", "given": ["Anna", "Maria"]}],
        "telecom": [{"system": "email", "value": "anna@example.at"}, {"system": "phone", "value": "+43 1 234"}],
        "gender": "female",
        "birthDate": "1980-02-29",
        "deceasedBoolean": false,
        "generalPractitioner": [{"reference": "https://other.example/fhir/Practitioner/7/_history/2"}],
        "address": [{"city": "Wien", "postalCode": "1010"}]
    }));
    let identifier = index.tokens.iter().find(|t| t.param == "identifier").unwrap();
    assert_eq!(identifier.type_code.as_deref(), Some("SS"));
    assert_eq!(identifier.text.as_deref(), Some("svnr"));
    assert!(index.strings.contains(&StringIndex { param: "family".into(), value: "Müller".into(), normalized: "muller".into() }));
    assert_eq!(index.strings.iter().filter(|s| s.param == "name").count(), 3);
    assert!(index.tokens.iter().any(|t| t.param == "email" && t.code.as_deref() == Some("anna@example.at") && t.system.is_none()));
    assert!(!index.tokens.iter().any(|t| t.param == "email" && t.code.as_deref() == Some("+43 1 234")));
    assert!(index.tokens.iter().any(|t| t.param == "deceased" && t.code.as_deref() == Some("false")));
    assert!(index.strings.iter().any(|s| s.param == "address-city" && s.normalized == "wien"));
    assert!(index.strings.iter().any(|s| s.param == "address" && s.normalized == "1010"));
    let birth = index.dates.iter().find(|d| d.param == "birthdate").unwrap();
    assert_eq!(birth.low.unwrap().to_string(), "1980-02-28T23:00:00Z");
    let practitioner = index.references.iter().find(|r| r.param == "general-practitioner").unwrap();
    assert_eq!(practitioner.base.as_deref(), Some("https://other.example/fhir"));
    assert_eq!(practitioner.version.as_deref(), Some("2"));
    assert_eq!(practitioner.url.as_deref(), Some("https://other.example/fhir/Practitioner/7"));
}

#[test]
fn indexes_periods_as_ranges() {
    let index = entries(json!({
        "resourceType": "Schedule",
        "active": true,
        "planningHorizon": {"start": "2025-05-13T08:00:00+02:00"},
        "actor": [{"reference": "Practitioner/p1"}, {"identifier": {"system": "urn:x", "value": "42"}}]
    }));
    let horizon = index.dates.iter().find(|d| d.param == "date").unwrap();
    assert_eq!(horizon.low.unwrap().to_string(), "2025-05-13T06:00:00Z");
    assert_eq!(horizon.high, None);
    assert!(index.references.iter().any(|r| r.param == "actor" && r.identifier_value.as_deref() == Some("42")));
    assert!(index.tokens.iter().any(|t| t.param == "active" && t.code.as_deref() == Some("true")));
}

#[test]
fn mandatory_elements_come_from_the_r5_definitions() {
    assert_eq!(params().mandatory_elements(ResourceType::Slot), ["schedule", "status", "start", "end"]);
    assert_eq!(params().mandatory_elements(ResourceType::Schedule), ["actor"]);
    assert_eq!(params().mandatory_elements(ResourceType::Appointment), ["status", "participant"]);
    assert!(params().mandatory_elements(ResourceType::Patient).is_empty());
}

#[test]
fn indexes_a_location_position_for_near() {
    let index = entries(json!({"resourceType": "Location", "id": "l", "position": {"latitude": 48.2, "longitude": 16.37}}));
    let position = termin_fhir::geo::Point { latitude: 48.2, longitude: 16.37 };
    assert_eq!(index.positions, [termin_store::PositionIndex { param: "near".into(), position }]);
    for without in [json!({}), json!({"latitude": 95, "longitude": 16}), json!({"latitude": "48", "longitude": 16})] {
        let index = entries(json!({"resourceType": "Location", "id": "l", "position": without}));
        assert!(index.positions.is_empty(), "{without}");
    }
}
