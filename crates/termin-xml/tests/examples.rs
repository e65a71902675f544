//! JSON → XML → JSON over every example of the types Termin serves and answers with, and
//! XML → JSON over the IG's XML examples.

use serde_json::Value;
use std::path::{Path, PathBuf};
use termin_xml::XmlConverter;

/// The served types, and the types of the server's own answers.
const TYPES: [&str; 15] = [
    "Appointment",
    "HealthcareService",
    "Location",
    "Organization",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "RelatedPerson",
    "Schedule",
    "Slot",
    "Bundle",
    "OperationOutcome",
    "Parameters",
    "CapabilityStatement",
    "OperationDefinition",
];

fn converter() -> XmlConverter {
    let cache = termin_search::default_package_cache();
    XmlConverter::load(cache.as_deref()).expect("the R5 core package (scripts/fhir-packages installs it)")
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The example resources of a package directory (`…/package/`) of the listed types.
fn examples_in(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            let json = termin_fhir::json::parse_stored(&text).ok()?;
            let resource_type = json.get("resourceType")?.as_str()?;
            TYPES.contains(&resource_type).then_some((path, json))
        })
        .collect()
}

#[test]
fn every_example_of_the_served_types_round_trips_through_xml() {
    let converter = converter();
    let mut examples = Vec::new();
    for package in std::fs::read_dir(repository().join("packages")).unwrap().flatten() {
        if package.path().join("package").is_dir() {
            examples.extend(examples_in(&package.path().join("package")));
        }
    }
    let from_at_packages = examples.len();
    let cache = termin_search::default_package_cache().expect("a FHIR package cache");
    examples.extend(examples_in(&cache.join("hl7.fhir.r5.examples#5.0.0").join("package")));
    let from_r5 = examples.len() - from_at_packages;
    println!("round trip JSON → XML → JSON: {from_at_packages} AT package examples, {from_r5} R5 examples");
    assert!(from_at_packages >= 15 && from_r5 >= 100, "too few examples: {from_at_packages} + {from_r5}");
    let mut failures = Vec::new();
    for (path, json) in &examples {
        let back = converter
            .to_xml(json, false)
            .and_then(|xml| converter.from_xml(xml.as_bytes()))
            .map(Value::Object);
        match back {
            // serde_json maps compare regardless of key order, numbers by their exact text.
            Ok(back) if back == *json => {}
            Ok(back) => failures.push(format!("{}: differs after the round trip: {back}", path.display())),
            Err(issue) => failures.push(format!("{}: {issue:?}", path.display())),
        }
    }
    assert!(failures.is_empty(), "{} of {} examples fail:\n{}", failures.len(), examples.len(), failures.join("\n"));
}

fn ig_example(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ig-examples").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// XML → JSON → XML → JSON gives the same JSON again.
fn read_stably(converter: &XmlConverter, xml: &[u8]) -> Value {
    let json = Value::Object(converter.from_xml(xml).unwrap_or_else(|e| panic!("{e:?}")));
    let again = converter.from_xml(converter.to_xml(&json, true).unwrap().as_bytes()).unwrap();
    assert_eq!(Value::Object(again), json);
    json
}

#[test]
fn the_ig_xml_examples_read_as_json() {
    let converter = converter();
    let book = read_stably(&converter, &ig_example("Appointment-operationBook-request.xml"));
    let appointment = &book["parameter"][0]["resource"];
    assert_eq!(book["parameter"][0]["name"], "appointment-resource");
    assert_eq!(appointment["resourceType"], "Appointment");
    assert_eq!(appointment["minutesDuration"], 30);
    assert_eq!(appointment["participant"][1]["required"], true);
    assert_eq!(appointment["participant"][1]["actor"]["display"], "Melanie Musterärztin");
    assert_eq!(appointment["serviceType"][0]["concept"]["coding"][0]["code"], "65");

    let hold = read_stably(&converter, &ig_example("Slot-operationHold-request.xml"));
    assert_eq!(hold["parameter"][1]["valueCode"], "busy-tentative");
    // The release example's `code` (for `valueCode`) is carried over as JSON would carry it;
    // such JSON has no XML form.
    let release = Value::Object(converter.from_xml(&ig_example("Slot-operationHoldRelease-request.xml")).unwrap());
    assert_eq!(release["parameter"][1]["code"], "free");
    assert!(converter.to_xml(&release, false).is_err());

    let find = read_stably(&converter, &ig_example("HealthcareService-operationFindHCP-request.xml"));
    let availability = &find["parameter"][2]["valueAvailability"]["availableTime"];
    assert_eq!(availability[1]["daysOfWeek"], serde_json::json!(["tue"]));
    assert_eq!(availability[1]["availableStartTime"], "08:00:00");
    let found = read_stably(&converter, &ig_example("HealthcareService-operationFindHCP-response.xml"));
    assert_eq!(found["resourceType"], "Bundle");
    assert_eq!(found["total"], 3);

    // Faults of the published pages (tests/data/ig-examples/README.md), refused with the reason.
    for (broken, reason) in [
        ("Appointment-operationBook-response.xml", "not well-formed"),
        ("Slot-operationHold-response.xml", "not well-formed"),
        ("Slot-operationHoldRelease-response.xml", "Text is not allowed"),
    ] {
        let issue = converter.from_xml(&ig_example(broken)).unwrap_err();
        assert!(issue.diagnostics.contains(reason), "{broken}: {issue:?}");
    }
}
