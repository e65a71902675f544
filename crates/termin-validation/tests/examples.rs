//! Acceptance: the official examples are valid.

mod support;

use serde_json::Value;
use support::*;
use termin_validation::Validator;

fn assert_all_valid(validator: &Validator, examples: Vec<(String, Value)>) {
    let mut failures = Vec::new();
    for (name, resource) in examples {
        for error in errors(&validator.validate(&resource)) {
            failures.push(format!("{name}: {error}"));
        }
    }
    assert!(failures.is_empty(), "{} errors:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn at_examples_conform_to_r5_and_their_at_profiles() {
    assert_all_valid(at_validator(), at_examples());
}

#[test]
fn r5_examples_conform_to_r5() {
    assert_all_valid(r5_validator(), r5_examples());
}
