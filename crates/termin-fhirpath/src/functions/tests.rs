//! One test per function group.

use serde_json::{Value, json};

use crate::testing::{TinyModel, calc, eval, eval_error, eval_items, eval_with};
use crate::{EvalContext, EvalError, ReferenceResolver};

fn none() -> Vec<Value> {
    Vec::new()
}

fn practitioner() -> Value {
    json!({
        "resourceType": "Practitioner",
        "id": "d1",
        "extension": [
            {"url": "http://example.org/a", "valueString": "first"},
            {"url": "http://example.org/b", "valueInteger": 2},
            {"url": "http://example.org/a", "valueString": "second"}
        ],
        "active": true,
        "name": [{"family": "Huber", "given": ["Hans", "Peter"], "prefix": ["Dr."]}],
        "qualification": [
            {"code": {"text": "GP"}, "period": {"start": "2000-01-01"}},
            {"code": {"text": "ENT"}, "period": {"start": "2010-01-01", "end": "2015-01-01"}}
        ]
    })
}

#[test]
fn existence_functions() {
    let doctor = practitioner();
    assert_eq!(eval("Practitioner.name.empty()", &doctor), vec![json!(false)]);
    assert_eq!(eval("Practitioner.photo.empty()", &doctor), vec![json!(true)]);
    assert_eq!(eval("Practitioner.name.given.exists()", &doctor), vec![json!(true)]);
    assert_eq!(eval("Practitioner.name.given.exists($this = 'Peter')", &doctor), vec![json!(true)]);
    assert_eq!(eval("Practitioner.name.given.exists($this = 'Paul')", &doctor), vec![json!(false)]);
    assert_eq!(eval("Practitioner.qualification.all(period.start.exists())", &doctor), vec![json!(true)]);
    assert_eq!(eval("Practitioner.qualification.all(period.end.exists())", &doctor), vec![json!(false)]);
    assert_eq!(eval("Practitioner.photo.all(false)", &doctor), vec![json!(true)]);
    assert_eq!(calc("(true | false).allTrue()"), vec![json!(false)]);
    assert_eq!(calc("(true | false).anyTrue()"), vec![json!(true)]);
    assert_eq!(calc("(false | false).allFalse()"), vec![json!(true)]);
    assert_eq!(calc("true.anyFalse()"), vec![json!(false)]);
    assert_eq!(calc("{}.allTrue()"), vec![json!(true)]);
    assert!(matches!(eval_error("(1 | 2).allTrue()", &Value::Null), EvalError::Type(_)));
    assert_eq!(eval("Practitioner.name.given.count()", &doctor), vec![json!(2)]);
    assert_eq!(calc("(1 | 2 | 1).count()"), vec![json!(2)]);
    assert_eq!(calc("(1).combine(1).combine(2).distinct()"), vec![json!(1), json!(2)]);
    assert_eq!(calc("(1).combine(1).isDistinct()"), vec![json!(false)]);
    assert_eq!(calc("(1 | 2).isDistinct()"), vec![json!(true)]);
}

#[test]
fn filtering_and_projection() {
    let doctor = practitioner();
    assert_eq!(eval("Practitioner.qualification.where(period.end.exists()).code.text", &doctor), vec![json!("ENT")]);
    assert_eq!(eval("Practitioner.qualification.select(code.text)", &doctor), vec![json!("GP"), json!("ENT")]);
    assert_eq!(eval("Practitioner.name.select(given | family).count()", &doctor), vec![json!(3)]);
    let tree = json!({"item": [{"id": "1", "item": [{"id": "1.1", "item": [{"id": "1.1.1"}]}]}, {"id": "2"}]});
    assert_eq!(eval("repeat(item).id", &tree), vec![json!("1"), json!("2"), json!("1.1"), json!("1.1.1")]);
    assert_eq!(eval("Practitioner.extension.ofType(Extension).count()", &doctor), vec![json!(0)]);
    assert_eq!(eval("Practitioner.extension.value.ofType(integer)", &doctor), vec![json!(2)]);
    // ofType() accepts FHIR primitives for the System type they convert to; `is` does not.
    assert_eq!(eval("Practitioner.extension.value.ofType(String).count()", &doctor), vec![json!(2)]);
    assert_eq!(eval("Practitioner.extension.value.first() is String", &doctor), vec![json!(false)]);
    let model = TinyModel::new();
    let context = EvalContext::new().with_model(&model);
    let patient = json!({"resourceType": "Patient", "telecom": [{"system": "phone"}], "_birthDate": {"extension": [{"url": "u"}]}});
    assert_eq!(eval_with("Patient.telecom.system.ofType(string)", &context, &patient), vec![json!("phone")]);
    assert_eq!(eval_with("Patient.birthDate.extension.ofType(Extension).url", &context, &patient), vec![json!("u")]);
    assert!(matches!(eval_error("Practitioner.name.where(given)", &doctor), EvalError::NotSingleton { .. }));
}

#[test]
fn subsetting() {
    let doctor = practitioner();
    assert_eq!(eval("Practitioner.name.given.first()", &doctor), vec![json!("Hans")]);
    assert_eq!(eval("Practitioner.name.given.last()", &doctor), vec![json!("Peter")]);
    assert_eq!(eval("Practitioner.extension.tail().value", &doctor), vec![json!(2), json!("second")]);
    assert_eq!(eval("Practitioner.extension.skip(2).value", &doctor), vec![json!("second")]);
    assert_eq!(eval("Practitioner.extension.take(1).value", &doctor), vec![json!("first")]);
    assert_eq!(eval("Practitioner.extension.take(0)", &doctor), none());
    assert_eq!(eval("Practitioner.name.family.single()", &doctor), vec![json!("Huber")]);
    assert_eq!(calc("{}.single()"), none());
    let error = eval_error("Practitioner.name.given.single()", &doctor);
    assert_eq!(error.to_string(), "single() expects a single item, but the input has 2 items");
}

#[test]
fn combining() {
    assert_eq!(calc("(1 | 2).union(2 | 3)"), vec![json!(1), json!(2), json!(3)]);
    assert_eq!(calc("(1 | 2).combine(2 | 3)"), vec![json!(1), json!(2), json!(2), json!(3)]);
    assert_eq!(calc("(1 | 2 | 3).intersect(3 | 1)"), vec![json!(1), json!(3)]);
    assert_eq!(calc("(1 | 2 | 3).exclude(2)"), vec![json!(1), json!(3)]);
}

#[test]
fn iif_not_and_has_value() {
    let doctor = practitioner();
    assert_eq!(eval("iif(Practitioner.active, 'yes', 'no')", &doctor), vec![json!("yes")]);
    assert_eq!(eval("iif(Practitioner.gender.exists(), 'yes')", &doctor), none());
    assert_eq!(eval("Practitioner.name.iif(family = 'Huber', given.first())", &doctor), vec![json!("Hans")]);
    assert_eq!(calc("iif({}, 1, 2)"), vec![json!(2)]);
    assert!(matches!(eval_error("Practitioner.name.given.iif(true, 1)", &doctor), EvalError::NotSingleton { .. }));
    assert_eq!(calc("true.not()"), vec![json!(false)]);
    assert_eq!(calc("{}.not()"), none());
    assert_eq!(eval("Practitioner.active.hasValue()", &doctor), vec![json!(true)]);
    assert_eq!(eval("Practitioner.name.hasValue()", &doctor), vec![json!(false)]);
    assert_eq!(eval("Practitioner.name.given.hasValue()", &doctor), vec![json!(false)]);
    assert_eq!(calc("'x'.hasValue()"), vec![json!(true)]);
}

#[test]
fn tree_navigation() {
    let doctor = practitioner();
    assert_eq!(eval("Practitioner.name.children().count()", &doctor), vec![json!(4)]);
    assert_eq!(eval("Practitioner.qualification.descendants().count()", &doctor), vec![json!(9)]);
    // Breadth first: all children before any grandchildren.
    let items = eval_items("Practitioner.qualification.first().descendants()", &EvalContext::new(), &doctor).unwrap();
    let locations: Vec<String> = items.iter().filter_map(|item| item.location()).collect();
    assert_eq!(
        locations,
        [
            "Practitioner.qualification[0].code",
            "Practitioner.qualification[0].period",
            "Practitioner.qualification[0].code.text",
            "Practitioner.qualification[0].period.start"
        ]
    );
    assert_eq!(
        eval("Practitioner.extension('http://example.org/a').value", &doctor),
        vec![json!("first"), json!("second")]
    );
    assert_eq!(eval("Practitioner.extension('http://example.org/none')", &doctor), none());
    assert_eq!(eval("Practitioner.name.trace('names').family", &doctor), vec![json!("Huber")]);
    assert_eq!(eval("Practitioner.name.trace('names', given).count()", &doctor), vec![json!(1)]);
}

struct OneResource(Value);

impl ReferenceResolver for OneResource {
    fn resolve(&self, reference: &str) -> Option<&Value> {
        (reference == "Patient/p1").then_some(&self.0)
    }
}

#[test]
fn resolve_uses_contained_resources_the_resolver_and_the_type_fallback() {
    let appointment = json!({
        "resourceType": "Appointment",
        "contained": [{"resourceType": "Location", "id": "room", "name": "Room 1"}],
        "participant": [
            {"actor": {"reference": "Patient/p1"}},
            {"actor": {"reference": "https://example.org/fhir/Practitioner/d1/_history/3"}},
            {"actor": {"reference": "#room"}},
            {"actor": {"reference": "urn:uuid:2d4a7b57-0000-4000-8000-000000000000"}},
            {"actor": {"display": "no reference"}}
        ]
    });
    let only_patients = "Appointment.participant.actor.where(resolve() is Patient).reference";
    assert_eq!(eval(only_patients, &appointment), vec![json!("Patient/p1")]);
    assert_eq!(
        eval("Appointment.participant.actor.where(resolve() is Practitioner).reference", &appointment),
        vec![json!("https://example.org/fhir/Practitioner/d1/_history/3")]
    );
    assert_eq!(
        eval("Appointment.participant.actor.resolve().ofType(Location).name", &appointment),
        vec![json!("Room 1")]
    );
    let contained =
        eval_items("Appointment.participant.actor.resolve().ofType(Location)", &EvalContext::new(), &appointment)
            .unwrap();
    assert_eq!(contained[0].location().as_deref(), Some("Appointment.contained[0]"));
    assert_eq!(eval("Appointment.participant.actor.resolve().count()", &appointment), vec![json!(3)]);
    // The fallback stub has a type but no content.
    let stubs =
        eval_items("Appointment.participant.actor.first().resolve()", &EvalContext::new(), &appointment).unwrap();
    assert_eq!((stubs[0].json(), stubs[0].fhir_type(), stubs[0].location()), (None, Some("Patient"), None));
    assert_eq!(calc("'Organization/o1'.resolve() is Organization"), vec![json!(true)]);

    let resolver = OneResource(json!({"resourceType": "Patient", "id": "p1", "gender": "female"}));
    let context = EvalContext::new().with_resolver(&resolver);
    assert_eq!(
        eval_with("Appointment.participant.actor.resolve().ofType(Patient).gender", &context, &appointment),
        vec![json!("female")]
    );
}

#[test]
fn member_of_is_reported_as_unsupported() {
    let error = eval_error("'x'.memberOf('http://example.org/vs')", &Value::Null);
    assert!(matches!(error, EvalError::Unsupported(_)));
}

#[test]
fn html_checks_always_pass() {
    let patient = json!({"resourceType": "Patient", "text": {"div": "<div>anything</div>"}});
    assert_eq!(eval("text.`div`.htmlChecks()", &patient), vec![json!(true)]);
    assert_eq!(eval("text.missing.htmlChecks()", &patient), none());
}

#[test]
fn today_and_now_use_the_context_clock() {
    let now: jiff::ZonedDateTime = "2026-03-04T05:06:07.089+01:00[+01:00]".parse().unwrap();
    let context = EvalContext::new().with_now(now);
    assert_eq!(eval_with("today()", &context, &Value::Null), vec![json!("2026-03-04")]);
    assert_eq!(eval_with("now()", &context, &Value::Null), vec![json!("2026-03-04T05:06:07.089+01:00")]);
    assert_eq!(eval_with("now() > @2026-03-04T04:00:00Z", &context, &Value::Null), vec![json!(true)]);
    // Date-times without timezone are taken to be in the clock's offset.
    assert_eq!(eval_with("@2026-03-04T05:06:07.089 = now()", &context, &Value::Null), vec![json!(true)]);
    assert_eq!(eval_with("today() is Date", &context, &Value::Null), vec![json!(true)]);
}

#[test]
fn conversions() {
    assert_eq!(calc("1.toString() & true.toString() & 1.50.toString()"), vec![json!("1true1.50")]);
    assert_eq!(calc("@2020-01.toString()"), vec![json!("2020-01")]);
    assert_eq!(calc("(5 'mg').toString()"), vec![json!("5 'mg'")]);
    assert_eq!(calc("'12'.toInteger() + '-3'.toInteger()"), vec![json!(9)]);
    assert_eq!(calc("'1.5'.toInteger()"), none());
    assert_eq!(calc("true.toInteger()"), vec![json!(1)]);
    assert_eq!(calc("'1.5'.toDecimal() * 2"), vec![serde_json::from_str::<Value>("3.0").unwrap()]);
    assert_eq!(calc("'1.'.toDecimal()"), none());
    assert_eq!(calc("'Yes'.toBoolean()"), vec![json!(true)]);
    assert_eq!(calc("0.toBoolean()"), vec![json!(false)]);
    assert_eq!(calc("'maybe'.toBoolean()"), none());
    assert_eq!(calc("'2020-02-03T10:00:00Z'.toDate()"), vec![json!("2020-02-03")]);
    assert_eq!(calc("'2020-02-03'.toDateTime() is DateTime"), vec![json!(true)]);
    assert_eq!(calc("'10:00'.toTime() < @T11:00"), vec![json!(true)]);
    assert_eq!(calc("'x'.convertsToInteger() | '2'.convertsToInteger()"), vec![json!(false), json!(true)]);
    assert_eq!(calc("'1.0'.convertsToDecimal() and 'a'.convertsToString()"), vec![json!(true)]);
    assert_eq!(
        calc("'t'.convertsToBoolean() and '2020'.convertsToDate() and '2020-13'.convertsToDateTime().not()"),
        vec![json!(true)]
    );
    assert_eq!(calc("'25:00'.convertsToTime()"), vec![json!(false)]);
    assert_eq!(calc("{}.convertsToInteger()"), none());
    assert!(matches!(eval_error("(1 | 2).toString()", &Value::Null), EvalError::NotSingleton { .. }));
}

#[test]
fn string_functions() {
    let cases = [
        ("'abcdef'.startsWith('abc')", json!(true)),
        ("'abcdef'.startsWith('')", json!(true)),
        ("'abcdef'.endsWith('ef')", json!(true)),
        ("'abcdef'.contains('cd')", json!(true)),
        ("'abcdef'.contains('x')", json!(false)),
        ("'Abc'.matches('^[A-Z][a-z]+$')", json!(true)),
        ("'a\nb'.matches('a.b')", json!(true)),
        ("'abc'.matches('b')", json!(true)),
        ("'2020-01-02'.replaceMatches('(\\\\d+)-(\\\\d+)-(\\\\d+)', '$3.$2.$1')", json!("02.01.2020")),
        ("'äbc'.length()", json!(3)),
        ("'abcdef'.substring(2)", json!("cdef")),
        ("'abcdef'.substring(2, 2)", json!("cd")),
        ("'abcdef'.substring(4, 10)", json!("ef")),
        ("'abc'.upper()", json!("ABC")),
        ("'ABC'.lower()", json!("abc")),
        ("'äbcd'.indexOf('cd')", json!(2)),
        ("'abc'.indexOf('x')", json!(-1)),
        ("'abc'.indexOf('')", json!(0)),
        ("'a-b-c'.replace('-', '+')", json!("a+b+c")),
        ("'abc'.replace('', 'x')", json!("xaxbxcx")),
        ("'a,b,,c'.split(',').count()", json!(4)),
        ("'abc'.split('').last()", json!("c")),
        ("('a' | 'b' | 'c').join(', ')", json!("a, b, c")),
        ("('a' | 'b').join()", json!("ab")),
        ("'a'.join(',')", json!("a")),
        ("'  a b  '.trim()", json!("a b")),
    ];
    for (source, expected) in cases {
        assert_eq!(calc(source), vec![expected], "{source}");
    }
    assert_eq!(calc("'abc'.substring(3)"), none());
    assert_eq!(calc("'abc'.substring(-1)"), none());
    assert_eq!(calc("{}.upper()"), none());
    assert_eq!(calc("{}.join(',')"), none());
    assert_eq!(calc("'abc'.startsWith({})"), none());
    assert!(matches!(eval_error("1.upper()", &Value::Null), EvalError::Type(_)));
    assert!(matches!(eval_error("'a'.matches('(' & '')", &Value::Null), EvalError::Type(_)));
    let patient = json!({"resourceType": "Patient", "birthDate": "1970-03-01", "name": [{"given": ["Anna"]}]});
    // String functions also read FHIR primitives stored as JSON strings.
    assert_eq!(eval("Patient.birthDate.startsWith('1970')", &patient), vec![json!(true)]);
    assert_eq!(eval("Patient.name.given.first().length()", &patient), vec![json!(4)]);
}
