//! A validation's cost is bounded: a resource with many thousands of faults stops after the
//! first hundred errors, and a validation past its time limit stops and rejects.

mod support;

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use support::*;
use termin_fhir::Severity;
use termin_validation::{Definitions, Validator};

fn patient_with_names(names: Vec<Value>) -> Value {
    json!({"resourceType": "Patient", "name": names})
}

#[test]
fn many_faults_yield_at_most_a_hundred_errors_and_a_note() {
    let outcome = r5_validator().validate(&patient_with_names(vec![json!({}); 20_000]));
    let errors = outcome.issues.iter().filter(|i| i.severity == Severity::Error).count();
    assert!(outcome.has_errors());
    assert!(errors <= 100, "{errors} errors");
    assert!(
        outcome.issues.iter().any(|i| i.diagnostics.contains("stopped after the first 100 errors")),
        "{:?}",
        outcome.issues.last()
    );
}

#[test]
fn a_validation_past_its_time_limit_rejects_the_resource() {
    let definitions = Definitions::load(&[at_packages()], Some(&package_cache())).unwrap();
    let validator = Validator::new(definitions, BTreeMap::new()).unwrap().0.with_time_limit(Duration::ZERO);
    let names = vec![json!({"family": "Huber", "given": ["Anna"]}); 1_000];
    let outcome = validator.validate(&patient_with_names(names.clone()));
    let stopped = outcome.issues.iter().find(|i| i.code.as_str() == "too-costly").expect("a too-costly issue");
    assert_eq!(stopped.severity, Severity::Error);
    // The same resource passes with the default limit.
    assert!(!r5_validator().validate(&patient_with_names(names)).has_errors());
}
