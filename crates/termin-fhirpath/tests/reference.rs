//! Compares this evaluator with fhirpath.js, the HL7 reference implementation, on the cases in
//! `tests/fixtures/reference-cases.json` (made by `tools/gen-reference.mjs`; no Node needed
//! here). Every case runs with the R5 type model in `tests/fixtures/r5-type-model.json`, no
//! reference resolver (so `resolve()` uses contained resources and the type fallback, which
//! the generator imitates), and UTC as the local timezone. Cases the generator marked `skip`
//! (where fhirpath.js departs from the specification) are counted and their reasons printed.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::{Map, Value};
use termin_fhirpath::{EvalContext, EvalError, Expression, Item, TypeModel, evaluate, evaluate_items};

struct R5Model(HashMap<String, HashMap<String, String>>);

impl TypeModel for R5Model {
    fn child_type(&self, parent_type: &str, element: &str) -> Option<&str> {
        self.0.get(parent_type)?.get(element).map(String::as_str)
    }
}

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load_model() -> R5Model {
    let Value::Object(types) = fixture("r5-type-model.json") else {
        panic!("the type model is a JSON object");
    };
    R5Model(
        types
            .into_iter()
            .map(|(parent, elements)| {
                let elements = elements
                    .as_object()
                    .expect("elements are an object")
                    .iter()
                    .map(|(name, type_name)| (name.clone(), type_name.as_str().unwrap().to_string()))
                    .collect();
                (parent, elements)
            })
            .collect(),
    )
}

/// Numbers compare by value (fhirpath.js prints `2.5` where we keep `2.50`).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(key, value)| y.get(key).is_some_and(|other| same_json(value, other)))
        }
        _ => a == b,
    }
}

/// Why an actual item differs from an expected one, if it does.
fn item_difference(actual: &Item<'_>, expected: &Map<String, Value>) -> Option<String> {
    let expected_value = &expected["value"];
    let actual_value = actual.to_json();
    if !same_json(&actual_value, expected_value) {
        return Some(format!("value {actual_value} != {expected_value}"));
    }
    if let Some(location) = expected.get("location").and_then(Value::as_str) {
        let actual_location = actual.location();
        if actual_location.as_deref() != Some(location) {
            return Some(format!("location {actual_location:?} != {location}"));
        }
    }
    // fhirpath.js cannot type some nodes (it reports System.Object for every Extension).
    let expected_type = expected["type"].as_str().unwrap_or_default();
    let actual_type = actual.qualified_type();
    if expected_type != "System.Object" && actual_type.as_deref() != Some(expected_type) {
        return Some(format!("type {actual_type:?} != {expected_type}"));
    }
    None
}

fn describe(items: &[Item<'_>]) -> String {
    let rendered: Vec<String> = items
        .iter()
        .map(|item| {
            format!(
                "{}:{}@{}",
                item.qualified_type().unwrap_or_default(),
                item.to_json(),
                item.location().unwrap_or_default()
            )
        })
        .collect();
    format!("[{}]", rendered.join(", "))
}

/// Checks one evaluation against the recorded outcome (`expected` items or an `error`).
fn check(actual: Result<Vec<Item<'_>>, EvalError>, recorded: &Map<String, Value>, ordered: bool) -> Result<(), String> {
    if let Some(error) = recorded.get("error") {
        return match actual {
            Err(_) => Ok(()),
            Ok(items) => Err(format!("fhirpath.js failed ({error}) but we returned {}", describe(&items))),
        };
    }
    let actual = actual.map_err(|error| format!("we failed: {error}"))?;
    let expected: Vec<&Map<String, Value>> = recorded["expected"]
        .as_array()
        .expect("expected is an array")
        .iter()
        .map(|entry| entry.as_object().expect("expected entries are objects"))
        .collect();
    let mismatch = || {
        format!(
            "got {} expected {}",
            describe(&actual),
            Value::from(expected.iter().map(|e| Value::Object((*e).clone())).collect::<Vec<_>>())
        )
    };
    if actual.len() != expected.len() {
        return Err(mismatch());
    }
    if ordered {
        for (item, entry) in actual.iter().zip(&expected) {
            if let Some(difference) = item_difference(item, entry) {
                return Err(format!("{difference}; {}", mismatch()));
            }
        }
        return Ok(());
    }
    let mut used = vec![false; expected.len()];
    for item in &actual {
        let partner = expected
            .iter()
            .enumerate()
            .position(|(index, entry)| !used[index] && item_difference(item, entry).is_none());
        match partner {
            Some(index) => used[index] = true,
            None => return Err(mismatch()),
        }
    }
    Ok(())
}

#[test]
fn results_match_fhirpath_js() {
    let model = load_model();
    let reference = fixture("reference-cases.json");
    let resources = reference["resources"].as_object().expect("resources");
    let utc: jiff::ZonedDateTime = "2026-01-01T00:00:00+00:00[+00:00]".parse().unwrap();

    let mut failures = Vec::new();
    let mut evaluations = 0;
    let mut skipped: HashMap<String, usize> = HashMap::new();
    for case in reference["cases"].as_array().expect("cases") {
        let source = case["source"].as_str().unwrap();
        let text = case["expression"].as_str().unwrap();
        let ordered = case["ordered"].as_bool().unwrap();
        let expression = match Expression::parse(text) {
            Ok(expression) => expression,
            Err(error) => {
                failures.push(format!("{source}: {text}: {error}"));
                continue;
            }
        };
        for result in case["results"].as_array().expect("results") {
            let resource_name = result["resource"].as_str().unwrap();
            let resource = &resources[resource_name];
            let context = EvalContext::new().with_model(&model).with_resource(resource).with_now(utc.clone());
            let mut skip = |recorded: &Value| match recorded.get("skip").and_then(Value::as_str) {
                Some(reason) => {
                    *skipped.entry(format!("{source}: {reason}")).or_default() += 1;
                    true
                }
                None => false,
            };
            let mut report = |location: &str, outcome: Result<(), String>| {
                evaluations += 1;
                if let Err(problem) = outcome {
                    failures.push(format!("{source} on {resource_name}{location}\n    {text}\n    {problem}"));
                }
            };
            let Some(contexts) = result.get("contexts").and_then(Value::as_array) else {
                if !skip(result) {
                    let outcome =
                        check(evaluate(&expression, &context, resource), result.as_object().unwrap(), ordered);
                    report("", outcome);
                }
                continue;
            };
            for recorded in contexts {
                if skip(recorded) {
                    continue;
                }
                // The constraint's focus is the node at the recorded location, as typed here.
                let location = recorded["location"].as_str().unwrap();
                let path = Expression::parse(location).expect("locations are FHIRPath paths");
                let focus = evaluate(&path, &context, resource).expect("locations evaluate");
                let at = format!(" at {location}");
                if focus.len() != 1 {
                    report(&at, Err(format!("the location selects {}", describe(&focus))));
                    continue;
                }
                let outcome =
                    check(evaluate_items(&expression, &context, focus), recorded.as_object().unwrap(), ordered);
                report(&at, outcome);
            }
        }
    }
    println!("{evaluations} evaluations compared with fhirpath.js");
    for (reason, count) in &skipped {
        println!("skipped {count}: {reason}");
    }
    assert!(evaluations > 8000, "the fixture lost cases: only {evaluations} evaluations");
    assert!(
        failures.is_empty(),
        "{} of {evaluations} evaluations differ from fhirpath.js:\n{}",
        failures.len(),
        failures.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// The search indexer may run without a model; search parameters must not depend on one.
#[test]
fn search_parameters_give_the_same_values_without_a_model() {
    let reference = fixture("reference-cases.json");
    let resources = reference["resources"].as_object().expect("resources");
    let mut failures = Vec::new();
    let mut compared = 0;
    let sorted = |mut values: Vec<Value>, ordered: bool| {
        if !ordered {
            values.sort_by_key(Value::to_string);
        }
        values
    };
    for case in reference["cases"].as_array().expect("cases") {
        let source = case["source"].as_str().unwrap();
        if !source.starts_with("SearchParameter/") {
            continue;
        }
        let ordered = case["ordered"].as_bool().unwrap();
        let expression = Expression::parse(case["expression"].as_str().unwrap()).unwrap();
        for result in case["results"].as_array().expect("results") {
            let Some(expected) = result.get("expected").and_then(Value::as_array) else {
                continue;
            };
            compared += 1;
            let resource = &resources[result["resource"].as_str().unwrap()];
            let context = EvalContext::new().with_resource(resource);
            let actual = match evaluate(&expression, &context, resource) {
                Ok(items) => sorted(items.iter().map(Item::to_json).collect(), ordered),
                Err(error) => {
                    failures.push(format!("{source}: {error}"));
                    continue;
                }
            };
            let expected = sorted(expected.iter().map(|entry| entry["value"].clone()).collect(), ordered);
            let same = actual.len() == expected.len() && actual.iter().zip(&expected).all(|(a, e)| same_json(a, e));
            if !same {
                failures.push(format!("{source} on {}: got {actual:?} expected {expected:?}", result["resource"]));
            }
        }
    }
    assert!(compared > 2500, "the fixture lost search parameter cases: only {compared}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
