//! Helpers shared by the unit tests.

use std::collections::HashMap;

use serde_json::Value;

use crate::{EvalContext, EvalError, Expression, Item, TypeModel, evaluate};

/// A hand-made model covering the elements the tests navigate.
pub(crate) struct TinyModel(HashMap<(&'static str, &'static str), &'static str>);

impl TinyModel {
    pub(crate) fn new() -> TinyModel {
        TinyModel(HashMap::from([
            (("Appointment", "start"), "instant"),
            (("Appointment", "end"), "instant"),
            (("Appointment", "participant"), "Appointment.participant"),
            (("Appointment.participant", "actor"), "Reference"),
            (("Appointment.participant", "status"), "code"),
            (("Patient", "id"), "System.String"),
            (("Patient", "identifier"), "Identifier"),
            (("Patient", "birthDate"), "date"),
            (("Patient", "name"), "HumanName"),
            (("Patient", "contact"), "Patient.contact"),
            (("Patient", "telecom"), "ContactPoint"),
            (("Patient.contact", "name"), "HumanName"),
            (("HumanName", "given"), "string"),
            (("HumanName", "family"), "string"),
            (("Identifier", "system"), "uri"),
            (("Identifier", "value"), "string"),
            (("ContactPoint", "system"), "code"),
            (("ContactPoint", "value"), "string"),
            (("Reference", "reference"), "string"),
            (("Element", "extension"), "Extension"),
            (("Element", "id"), "System.String"),
            (("Extension", "url"), "System.String"),
        ]))
    }
}

impl TypeModel for TinyModel {
    fn child_type(&self, parent_type: &str, element: &str) -> Option<&str> {
        self.0.get(&(parent_type, element)).copied()
    }
}

pub(crate) fn eval_items<'a>(
    source: &str,
    context: &EvalContext<'a>,
    input: &'a Value,
) -> Result<Vec<Item<'a>>, EvalError> {
    let expression = Expression::parse(source).unwrap_or_else(|error| panic!("{source}: {error}"));
    evaluate(&expression, context, input)
}

/// The result as JSON values, without a model.
pub(crate) fn eval(source: &str, input: &Value) -> Vec<Value> {
    eval_with(source, &EvalContext::new(), input)
}

pub(crate) fn eval_with(source: &str, context: &EvalContext<'_>, input: &Value) -> Vec<Value> {
    eval_items(source, context, input)
        .unwrap_or_else(|error| panic!("{source}: {error}"))
        .iter()
        .map(Item::to_json)
        .collect()
}

/// Evaluates an expression that needs no input.
pub(crate) fn calc(source: &str) -> Vec<Value> {
    eval(source, &Value::Null)
}

pub(crate) fn eval_error(source: &str, input: &Value) -> EvalError {
    match eval_items(source, &EvalContext::new(), input) {
        Ok(items) => panic!("{source} should fail but gave {} items", items.len()),
        Err(error) => error,
    }
}
