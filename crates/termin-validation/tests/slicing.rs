//! Profile discriminators with `resolve()` and closed slicing, which the AT profiles do not
//! use: a test package is written with two profiles derived from the R5 snapshots.
//!
//! - `gender-practitioner`: a Practitioner that must state its gender;
//! - `gp-patient`: a Patient whose `generalPractitioner` is closed-sliced by
//!   `profile` on `resolve()`, with one slice for references to a `gender-practitioner`.

mod support;

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use support::*;
use termin_validation::{Definitions, Validator};

const BASE: &str = "http://example.org/fhir/StructureDefinition/";

fn core_snapshot(type_name: &str) -> Value {
    let file = package_cache()
        .join(termin_validation::R5_CORE)
        .join(format!("package/StructureDefinition-{type_name}.json"));
    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}

fn derived(type_name: &str, id: &str, change: impl FnOnce(&mut Vec<Value>)) -> Value {
    let mut definition = core_snapshot(type_name);
    definition["url"] = json!(format!("{BASE}{id}"));
    definition["id"] = json!(id);
    definition["derivation"] = json!("constraint");
    definition["baseDefinition"] = json!(format!("http://hl7.org/fhir/StructureDefinition/{type_name}"));
    change(definition["snapshot"]["element"].as_array_mut().unwrap());
    definition
}

fn test_package() -> PathBuf {
    let practitioner = derived("Practitioner", "gender-practitioner", |elements| {
        let gender = elements.iter_mut().find(|e| e["id"] == "Practitioner.gender").unwrap();
        gender["min"] = json!(1);
    });
    let patient = derived("Patient", "gp-patient", |elements| {
        let index = elements.iter().position(|e| e["id"] == "Patient.generalPractitioner").unwrap();
        elements[index]["slicing"] = json!({"discriminator": [{"type": "profile", "path": "resolve()"}], "rules": "closed"});
        let mut slice = elements[index].clone();
        slice.as_object_mut().unwrap().remove("slicing");
        slice["id"] = json!("Patient.generalPractitioner:stated");
        slice["sliceName"] = json!("stated");
        slice["max"] = json!("1");
        slice["type"] = json!([{"code": "Reference", "targetProfile": [format!("{BASE}gender-practitioner")]}]);
        elements.insert(index + 1, slice);
    });
    let root = std::env::temp_dir().join(format!("termin-validation-slicing-{}", std::process::id()));
    let package = root.join("example.slicing#1.0.0/package");
    std::fs::create_dir_all(&package).unwrap();
    let manifest = json!({"name": "example.slicing", "version": "1.0.0", "dependencies": {"hl7.fhir.r5.core": "5.0.0"}});
    for (file, content) in [
        ("package.json", manifest),
        ("StructureDefinition-gender-practitioner.json", practitioner),
        ("StructureDefinition-gp-patient.json", patient),
    ] {
        std::fs::write(package.join(file), content.to_string()).unwrap();
    }
    root
}

fn patient_with_gp(practitioner: Value) -> Value {
    json!({
        "resourceType": "Patient",
        "contained": [practitioner],
        "generalPractitioner": [{"reference": "#gp"}]
    })
}

#[test]
fn profile_discriminators_resolve_contained_references_and_closed_slicing_rejects_the_rest() {
    let root = test_package();
    let definitions = Definitions::load(std::slice::from_ref(&root), Some(&package_cache())).unwrap();
    let profiles = BTreeMap::from([(termin_fhir::ResourceType::Patient, format!("{BASE}gp-patient"))]);
    let (validator, _) = Validator::new(definitions, profiles).unwrap();

    let stated = patient_with_gp(json!({"resourceType": "Practitioner", "id": "gp", "gender": "female"}));
    assert!(errors(&validator.validate(&stated)).is_empty(), "{:?}", errors(&validator.validate(&stated)));

    let unstated = patient_with_gp(json!({"resourceType": "Practitioner", "id": "gp", "name": [{"family": "X"}]}));
    let outcome = validator.validate(&unstated);
    let closed = outcome
        .issues
        .iter()
        .find(|i| i.code.as_str() == "structure" && i.expression == ["Patient.generalPractitioner[0]"]);
    assert!(closed.is_some_and(|i| i.diagnostics.contains("closed")), "{:?}", errors(&outcome));

    let mut twice = stated.clone();
    twice["generalPractitioner"] = json!([{"reference": "#gp"}, {"reference": "#gp"}]);
    let outcome = validator.validate(&twice);
    assert!(
        errors(&outcome).iter().any(|e| e.starts_with("structure Patient.generalPractitioner ") && e.contains("stated")),
        "{:?}",
        errors(&outcome)
    );
    std::fs::remove_dir_all(root).unwrap();
}
