//! Paths, typing, operators and the environment.

use serde_json::{Value, json};

use crate::testing::{TinyModel, calc, eval, eval_error, eval_items, eval_with};
use crate::{EvalContext, EvalError, Expression, Item};

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "p1",
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
        "identifier": [
            {"system": "urn:oid:1.2.40.0.10.1.4.3.1", "value": "1234"},
            {"system": "http://example.org/mrn", "value": "A-1"}
        ],
        "name": [
            {"family": "Muster", "given": ["Anna", null, "Maria"],
             "_given": [null, {"id": "g2", "extension": [{"url": "http://example.org/nick", "valueString": "Anni"}]}, null]},
            {"family": "Beispiel", "given": ["Eva"]}
        ],
        "birthDate": "1970-03",
        "_birthDate": {"extension": [{"url": "http://example.org/time", "valueTime": "10:00:00"}]},
        "_gender": {"extension": [{"url": "http://example.org/unknown-reason", "valueCode": "asked"}]},
        "deceasedDateTime": "2020-01-02T10:00:00+01:00",
        "telecom": [{"system": "phone", "value": "+43 1"}, {"system": "email", "value": "a@example.org"}],
        "contact": [{"name": {"family": "Kontakt"}}]
    })
}

fn appointment() -> Value {
    json!({
        "resourceType": "Appointment",
        "id": "a1",
        "contained": [{"resourceType": "Location", "id": "room"}],
        "status": "booked",
        "start": "2026-01-01T10:00:00+01:00",
        "end": "2026-01-01T10:30:00+01:00",
        "participant": [
            {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
            {"actor": {"reference": "http://example.org/fhir/Practitioner/d1/_history/2"}, "status": "accepted"},
            {"actor": {"reference": "#room"}, "status": "accepted"},
            {"actor": {"display": "somebody"}, "status": "tentative"}
        ]
    })
}

/// A JSON number with exactly this text (decimals keep their scale).
fn number(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn locations(source: &str, input: &Value) -> Vec<String> {
    eval_items(source, &EvalContext::new(), input)
        .unwrap()
        .iter()
        .map(|item| item.location().unwrap_or_default())
        .collect()
}

#[test]
fn a_leading_type_name_matches_the_focus() {
    let patient = patient();
    assert_eq!(eval("Patient.id", &patient), vec![json!("p1")]);
    assert_eq!(eval("Resource.id", &patient), vec![json!("p1")]);
    assert_eq!(eval("DomainResource.text.status", &patient), vec![json!("generated")]);
    assert_eq!(eval("id", &patient), vec![json!("p1")]);
    assert_eq!(eval("Appointment.id", &patient), Vec::<Value>::new());
    assert_eq!(eval("FHIR.Patient.id", &patient), Vec::<Value>::new());
}

#[test]
fn arrays_flatten_and_locations_carry_indexes() {
    let patient = patient();
    assert_eq!(eval("Patient.name.given", &patient), vec![json!("Anna"), Value::Null, json!("Maria"), json!("Eva")]);
    assert_eq!(
        locations("Patient.name.given", &patient),
        vec![
            "Patient.name[0].given[0]",
            "Patient.name[0].given[1]",
            "Patient.name[0].given[2]",
            "Patient.name[1].given[0]"
        ]
    );
    assert_eq!(locations("Patient.birthDate", &patient), vec!["Patient.birthDate"]);
    assert_eq!(eval("Patient.`name`.family", &patient), vec![json!("Muster"), json!("Beispiel")]);
}

#[test]
fn primitives_carry_their_extensions() {
    let patient = patient();
    assert_eq!(eval("Patient.name.given.extension.value", &patient), vec![json!("Anni")]);
    assert_eq!(locations("Patient.name.given.extension", &patient), vec!["Patient.name[0].given[1].extension[0]"]);
    assert_eq!(eval("Patient.name.given[1].id", &patient), vec![json!("g2")]);
    assert_eq!(eval("Patient.birthDate.extension.url", &patient), vec![json!("http://example.org/time")]);
    // A primitive with only an extension is still an element, but it has no value.
    assert_eq!(eval("Patient.gender.exists()", &patient), vec![json!(true)]);
    assert_eq!(eval("Patient.gender.hasValue()", &patient), vec![json!(false)]);
    assert_eq!(eval("Patient.gender.extension.value", &patient), vec![json!("asked")]);
    let items = eval_items("Patient.gender", &EvalContext::new(), &patient).unwrap();
    assert_eq!(items[0].json(), None);
    assert!(items[0].primitive_element().is_some());
}

#[test]
fn choice_elements_are_found_and_typed_by_their_suffix() {
    let patient = patient();
    assert_eq!(eval("Patient.deceased", &patient), vec![json!("2020-01-02T10:00:00+01:00")]);
    assert_eq!(locations("Patient.deceased", &patient), vec!["Patient.deceased"]);
    assert_eq!(eval("Patient.deceased.ofType(dateTime).exists()", &patient), vec![json!(true)]);
    assert_eq!(eval("Patient.deceased is dateTime", &patient), vec![json!(true)]);
    assert_eq!(eval("Patient.deceased is FHIR.dateTime", &patient), vec![json!(true)]);
    assert_eq!(eval("Patient.deceased is boolean", &patient), vec![json!(false)]);
    assert_eq!(eval("Patient.deceased.as(boolean)", &patient), Vec::<Value>::new());
    // A typed dateTime compares as a date-time, not as text.
    assert_eq!(eval("Patient.deceased > @2020-01-02T08:30:00Z", &patient), vec![json!(true)]);
    let items = eval_items("Patient.deceased", &EvalContext::new(), &patient).unwrap();
    assert_eq!(items[0].fhir_type(), Some("dateTime"));
    assert_eq!(items[0].qualified_type().as_deref(), Some("FHIR.dateTime"));
}

#[test]
fn untyped_json_primitives_are_system_values() {
    let patient = patient();
    assert_eq!(eval("Patient.id is String", &patient), vec![json!(true)]);
    assert_eq!(eval("Patient.id is System.String", &patient), vec![json!(true)]);
    assert_eq!(eval("Patient.id is string", &patient), vec![json!(false)]);
    let number = json!({"value": 3, "ratio": 1.5, "flag": true});
    assert_eq!(eval("value is Integer", &number), vec![json!(true)]);
    assert_eq!(eval("ratio is Decimal", &number), vec![json!(true)]);
    assert_eq!(eval("flag.ofType(Boolean)", &number), vec![json!(true)]);
    // Untyped strings are read as dates when compared with one.
    assert_eq!(eval("Patient.birthDate < @1970-04", &patient), vec![json!(true)]);
    assert_eq!(eval("Patient.birthDate = @1970-03-01", &patient), Vec::<Value>::new());
}

#[test]
fn a_type_model_types_ordinary_elements() {
    let model = TinyModel::new();
    let context = EvalContext::new().with_model(&model);
    let appointment = appointment();
    assert_eq!(eval_with("Appointment.start is instant", &context, &appointment), vec![json!(true)]);
    assert_eq!(eval_with("Appointment.start is DateTime", &context, &appointment), vec![json!(false)]);
    assert_eq!(eval_with("Appointment.start.ofType(DateTime).count()", &context, &appointment), vec![json!(1)]);
    assert_eq!(eval_with("Appointment.start < Appointment.end", &context, &appointment), vec![json!(true)]);
    assert_eq!(
        eval_with("Appointment.participant.first() is BackboneElement", &context, &appointment),
        vec![json!(true)]
    );
    assert_eq!(
        eval_with("Appointment.participant.status.ofType(string).count()", &context, &appointment),
        vec![json!(4)]
    );
    let patient = patient();
    assert_eq!(eval_with("Patient.identifier.ofType(Identifier).count()", &context, &patient), vec![json!(2)]);
    assert_eq!(eval_with("Patient.id is String", &context, &patient), vec![json!(true)]);
    assert_eq!(eval_with("Patient.name.given.extension is Extension", &context, &patient), vec![json!(true)]);
    let items = eval_items("Patient.contact.name", &context, &patient).unwrap();
    assert_eq!(items[0].fhir_type(), Some("HumanName"));
    let contact = eval_items("Patient.contact", &context, &patient).unwrap();
    assert_eq!(contact[0].fhir_type(), Some("BackboneElement"));
    // With a model, children() splits choice properties into element name and type.
    let deceased = eval_items("Patient.children().ofType(dateTime)", &context, &patient).unwrap();
    assert_eq!(deceased[0].location().as_deref(), Some("Patient.deceased"));
}

#[test]
fn union_merges_without_duplicates() {
    let patient = patient();
    assert_eq!(
        eval("Patient.telecom.system | Patient.telecom.system | 'fax'", &patient),
        vec![json!("phone"), json!("email"), json!("fax")]
    );
    assert_eq!(calc("(1 | 1.0 | 2).count()"), vec![json!(2)]);
    assert_eq!(calc("{} | {}"), Vec::<Value>::new());
}

#[test]
fn equality_follows_fhirpath_rules() {
    assert_eq!(calc("1 = 1.0"), vec![json!(true)]);
    assert_eq!(calc("'a' = 'A'"), vec![json!(false)]);
    assert_eq!(calc("'a' != 'b'"), vec![json!(true)]);
    assert_eq!(calc("{} = 1"), Vec::<Value>::new());
    assert_eq!(calc("(1 | 2) = (1 | 2)"), vec![json!(true)]);
    assert_eq!(calc("(1 | 2) = (2 | 1)"), vec![json!(false)]);
    assert_eq!(calc("(1 | 2) = 1"), vec![json!(false)]);
    assert_eq!(calc("@2020-01 = @2020-01-01"), Vec::<Value>::new());
    assert_eq!(calc("@2020-01 != @2020-02-01"), vec![json!(true)]);
    assert_eq!(calc("@2020-01-01T10:00:00Z = @2020-01-01T11:00:00+01:00"), vec![json!(true)]);
    assert_eq!(calc("@T10:00 = @T10:00:00"), Vec::<Value>::new());
    assert_eq!(calc("5 'mg' = 5.0 'mg'"), vec![json!(true)]);
    assert_eq!(calc("1 day = 1 'd'"), vec![json!(true)]);
    assert_eq!(calc("5 'mg' = 5 'g'"), Vec::<Value>::new());
    assert_eq!(calc("true = 'true'"), vec![json!(false)]);
    let patient = patient();
    assert_eq!(eval("Patient.name[0].family = Patient.contact.name.family", &patient), vec![json!(false)]);
    assert_eq!(eval("Patient.telecom[0] = Patient.telecom.first()", &patient), vec![json!(true)]);
}

#[test]
fn equivalence_ignores_case_precision_and_order() {
    assert_eq!(calc("'Hello  World' ~ 'hello  world'"), vec![json!(true)]);
    assert_eq!(calc("1.23 ~ 1.2"), vec![json!(true)]);
    assert_eq!(calc("1.26 ~ 1.2"), vec![json!(false)]);
    assert_eq!(calc("{} ~ {}"), vec![json!(true)]);
    assert_eq!(calc("{} ~ 1"), vec![json!(false)]);
    assert_eq!(calc("(1 | 2) ~ (2 | 1)"), vec![json!(true)]);
    assert_eq!(calc("@2020-01 ~ @2020-01-01"), vec![json!(false)]);
    assert_eq!(calc("@2020-01 !~ @2020-01"), vec![json!(false)]);
    assert_eq!(calc("'a' !~ 'b'"), vec![json!(true)]);
}

#[test]
fn comparisons_order_numbers_strings_and_dates() {
    assert_eq!(calc("1 < 2"), vec![json!(true)]);
    assert_eq!(calc("2.5 >= 2"), vec![json!(true)]);
    assert_eq!(calc("'abc' < 'abd'"), vec![json!(true)]);
    assert_eq!(calc("'b' <= 'a'"), vec![json!(false)]);
    assert_eq!(calc("@2020-01-01 > @2019-12-31T23:00:00"), vec![json!(true)]);
    assert_eq!(calc("@2020 < @2020-01"), Vec::<Value>::new());
    assert_eq!(calc("@2019 < @2020-01"), vec![json!(true)]);
    assert_eq!(calc("@T10:00 < @T11"), vec![json!(true)]);
    assert_eq!(calc("5 'mg' < 6 'mg'"), vec![json!(true)]);
    assert_eq!(calc("{} > 1"), Vec::<Value>::new());
    assert!(matches!(eval_error("1 < 'a'", &Value::Null), EvalError::Type(_)));
    assert!(matches!(eval_error("(1 | 2) > 0", &Value::Null), EvalError::NotSingleton { .. }));
}

#[test]
fn logic_is_three_valued() {
    let table = [
        ("true and {}", None),
        ("false and {}", Some(false)),
        ("{} and false", Some(false)),
        ("true or {}", Some(true)),
        ("{} or false", None),
        ("false or false", Some(false)),
        ("true xor false", Some(true)),
        ("true xor true", Some(false)),
        ("true xor {}", None),
        ("false implies {}", Some(true)),
        ("{} implies true", Some(true)),
        ("{} implies false", None),
        ("true implies false", Some(false)),
        ("true implies {}", None),
    ];
    for (source, expected) in table {
        let expected: Vec<Value> = expected.map(Value::Bool).into_iter().collect();
        assert_eq!(calc(source), expected, "{source}");
    }
    // A single non-Boolean item counts as true.
    assert_eq!(calc("'x' and true"), vec![json!(true)]);
    assert!(matches!(eval_error("(true | false) and true", &Value::Null), EvalError::NotSingleton { .. }));
}

#[test]
fn arithmetic_on_numbers_strings_and_quantities() {
    assert_eq!(calc("1 + 2 * 3"), vec![json!(7)]);
    assert_eq!(calc("1.50 + 1"), vec![number("2.50")]);
    assert_eq!(calc("7 / 2"), vec![json!(3.5)]);
    assert_eq!(calc("7 div 2"), vec![json!(3)]);
    assert_eq!(calc("-7 mod 3"), vec![json!(-1)]);
    assert_eq!(calc("5.5 div 2"), vec![json!(2)]);
    assert_eq!(calc("5.5 mod 2"), vec![json!(1.5)]);
    assert_eq!(calc("1 / 0"), Vec::<Value>::new());
    assert_eq!(calc("1 div 0"), Vec::<Value>::new());
    assert_eq!(calc("9223372036854775807 + 1"), Vec::<Value>::new());
    assert_eq!(calc("3 - {}"), Vec::<Value>::new());
    assert_eq!(calc("'a' + 'b'"), vec![json!("ab")]);
    assert_eq!(calc("'a' & {} & 'c'"), vec![json!("ac")]);
    assert_eq!(calc("2 'mg' + 3 'mg'"), vec![json!("5 'mg'")]);
    assert_eq!(calc("-(2 + 3)"), vec![json!(-5)]);
    assert!(matches!(eval_error("'a' + 1", &Value::Null), EvalError::Type(_)));
    assert!(matches!(eval_error("@2020-01-01 + 1 day", &Value::Null), EvalError::Unsupported(_)));
    assert!(matches!(eval_error("-'a'", &Value::Null), EvalError::Type(_)));
}

#[test]
fn membership_operators() {
    let patient = patient();
    assert_eq!(eval("'email' in Patient.telecom.system", &patient), vec![json!(true)]);
    assert_eq!(eval("Patient.telecom.system contains 'fax'", &patient), vec![json!(false)]);
    assert_eq!(calc("{} in (1 | 2)"), Vec::<Value>::new());
    assert_eq!(calc("(1 | 2) contains {}"), Vec::<Value>::new());
    assert_eq!(calc("1 in {}"), vec![json!(false)]);
    assert!(matches!(eval_error("(1 | 2) in (1 | 2)", &Value::Null), EvalError::NotSingleton { .. }));
}

#[test]
fn type_operators_check_singletons() {
    let patient = patient();
    assert_eq!(eval("Patient is Resource", &patient), vec![json!(true)]);
    assert_eq!(eval("Patient.is(DomainResource)", &patient), vec![json!(true)]);
    assert_eq!(eval("(Patient as Patient).id", &patient), vec![json!("p1")]);
    assert_eq!(eval("Patient.as(Appointment)", &patient), Vec::<Value>::new());
    assert_eq!(calc("1 is Integer"), vec![json!(true)]);
    assert_eq!(calc("1 is Decimal"), vec![json!(false)]);
    assert_eq!(calc("@2020 is Date"), vec![json!(true)]);
    assert_eq!(calc("{} is Integer"), Vec::<Value>::new());
    assert!(matches!(eval_error("Patient.name.given is String", &patient), EvalError::NotSingleton { .. }));
}

#[test]
fn indexer_picks_one_item() {
    let patient = patient();
    assert_eq!(eval("Patient.name[1].given", &patient), vec![json!("Eva")]);
    assert_eq!(eval("Patient.name[5]", &patient), Vec::<Value>::new());
    assert_eq!(eval("Patient.name[-1]", &patient), Vec::<Value>::new());
}

#[test]
fn environment_variables() {
    let patient = patient();
    assert_eq!(eval("%resource.id", &patient), vec![json!("p1")]);
    assert_eq!(eval("%rootResource.id", &patient), vec![json!("p1")]);
    assert_eq!(eval("%context.id", &patient), vec![json!("p1")]);
    assert_eq!(calc("%ucum"), vec![json!("http://unitsofmeasure.org")]);
    assert_eq!(calc("%sct & '|' & %loinc"), vec![json!("http://snomed.info/sct|http://loinc.org")]);
    let value = json!("given");
    let context = EvalContext::new().with_constant("limit", vec![Item::from_json(&value)]);
    assert_eq!(eval_with("%limit & '!'", &context, &patient), vec![json!("given!")]);
    assert_eq!(eval_error("%missing", &patient), EvalError::UnknownVariable("missing".to_string()));
    // Evaluating on nodes from an earlier evaluation keeps their locations.
    let context = EvalContext::new().with_resource(&patient);
    let names = eval_items("Patient.name", &context, &patient).unwrap();
    let expression = Expression::parse("given.where($this = %resource.name.given.last())").unwrap();
    let items = crate::evaluate_items(&expression, &context, names).unwrap();
    assert_eq!(items[0].location().as_deref(), Some("Patient.name[1].given[0]"));
}

#[test]
fn this_and_index_in_iterations() {
    let patient = patient();
    assert_eq!(eval("Patient.name.given.where($index = 2)", &patient), vec![json!("Maria")]);
    assert_eq!(eval("Patient.name.select($this.family)", &patient), vec![json!("Muster"), json!("Beispiel")]);
    assert_eq!(eval("Patient.telecom.where(system = 'email').value", &patient), vec![json!("a@example.org")]);
    assert_eq!(eval("$this.id", &patient), vec![json!("p1")]);
}

#[test]
fn an_array_input_is_a_collection() {
    let resources = json!([
        {"resourceType": "Patient", "id": "a"},
        {"resourceType": "Slot", "id": "b"}
    ]);
    assert_eq!(eval("id", &resources), vec![json!("a"), json!("b")]);
    assert_eq!(eval("Slot.id", &resources), vec![json!("b")]);
    assert_eq!(eval("%resource.count()", &resources), vec![json!(0)]);
}

#[test]
fn expressions_are_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Expression>();
    assert_send_sync::<EvalContext<'static>>();
    assert_send_sync::<Item<'static>>();
}
