//! Mutation suite: broken variants of the official examples must be rejected with the right
//! issue code at the right place, and harmless variants must stay valid.
//!
//! AT examples are validated with the AT profiles enforced, R5 examples against R5 (and what
//! they claim). Each mutation names the issue it expects: code, FHIRPath `expression`, and
//! for invariants the constraint key in the diagnostics.

mod support;

use serde_json::{Value, json};
use support::*;
use termin_fhir::Severity;
use termin_validation::Validator;

struct Mutation {
    name: String,
    resource: Value,
    code: &'static str,
    expression: String,
    /// A text the diagnostics must contain (the invariant key, the slice name).
    mentions: Option<&'static str>,
}

/// An example with where it comes from and the validator it is checked with.
struct Example {
    name: String,
    resource: Value,
    at: bool,
}

fn examples() -> Vec<Example> {
    let at = at_examples().into_iter().map(|(name, resource)| Example { name, resource, at: true });
    let r5 = r5_examples().into_iter().map(|(name, resource)| Example { name, resource, at: false });
    at.chain(r5).collect()
}

fn validator(at: bool) -> &'static Validator {
    if at { at_validator() } else { r5_validator() }
}

fn type_of(resource: &Value) -> &str {
    resource["resourceType"].as_str().unwrap()
}

/// Elements the definitions make required, by type (`AT` only for the AT profiles).
fn required_elements(type_name: &str, at: bool) -> &'static [&'static str] {
    match (type_name, at) {
        ("Slot", _) => &["schedule", "status", "start", "end"],
        ("Appointment", _) => &["status", "participant"],
        ("Schedule", _) => &["actor"],
        ("Patient", true) => &["name", "gender"],
        _ => &[],
    }
}

/// Code elements with a required binding to a value set in the R5 core package.
const REQUIRED_CODES: [(&str, &str); 6] = [
    ("Appointment", "status"),
    ("Slot", "status"),
    ("Location", "status"),
    ("Patient", "gender"),
    ("Practitioner", "gender"),
    ("Location", "mode"),
];

fn mutations(example: &Example) -> Vec<Mutation> {
    let resource = &example.resource;
    let type_name = type_of(resource);
    let object = resource.as_object().unwrap();
    let mut out = Vec::new();
    let mut add = |what: String, resource: Value, code: &'static str, expression: String, mentions: Option<&'static str>| {
        out.push(Mutation {
            name: format!("{}: {what}", example.name),
            resource,
            code,
            expression,
            mentions,
        });
    };

    // Missing required elements.
    for element in required_elements(type_name, example.at) {
        if object.contains_key(*element) {
            let mut broken = resource.clone();
            broken.as_object_mut().unwrap().remove(*element);
            // A primitive with only an extension is still present.
            broken.as_object_mut().unwrap().remove(&format!("_{element}"));
            add(format!("without {element}"), broken, "required", format!("{type_name}.{element}"), None);
        }
    }

    // Wrong JSON types, one element at a time.
    for (key, value) in object {
        if key == "resourceType" || key.starts_with('_') || key == "text" {
            continue;
        }
        let wrong = match value {
            Value::String(_) => json!(42),
            Value::Bool(_) => json!("yes"),
            Value::Number(_) => json!("12"),
            Value::Object(_) => json!("an object is expected"),
            Value::Array(_) => json!({"not": "an array"}),
            Value::Null => continue,
        };
        let mut broken = resource.clone();
        broken[key.as_str()] = wrong;
        // A choice element's path carries its type.
        let expression = match key.as_str() {
            "deceasedBoolean" => format!("{type_name}.deceased.ofType(boolean)"),
            "deceasedDateTime" => format!("{type_name}.deceased.ofType(dateTime)"),
            "multipleBirthBoolean" => format!("{type_name}.multipleBirth.ofType(boolean)"),
            "multipleBirthInteger" => format!("{type_name}.multipleBirth.ofType(integer)"),
            _ => format!("{type_name}.{key}"),
        };
        add(format!("{key} of the wrong JSON type"), broken, "structure", expression, None);
    }

    // Unknown elements, at the root and inside the first complex element.
    let mut broken = resource.clone();
    broken["unknownElement"] = json!(true);
    add("unknown root element".into(), broken, "structure", format!("{type_name}.unknownElement"), None);
    if let Some(key) = object.iter().find(|(k, v)| v.is_object() && !k.starts_with('_') && *k != "text" && *k != "meta").map(|(k, _)| k) {
        let mut broken = resource.clone();
        broken[key.as_str()]["madeUp"] = json!("x");
        add(format!("unknown element in {key}"), broken, "structure", format!("{type_name}.{key}.madeUp"), None);
    }

    // Codes outside a required value set.
    for (owner, element) in REQUIRED_CODES {
        if owner == type_name && object.get(element).is_some_and(Value::is_string) {
            let mut broken = resource.clone();
            broken[element] = json!("not-a-code");
            add(format!("{element} outside its value set"), broken, "code-invalid", format!("{type_name}.{element}"), None);
        }
    }

    // Instants without a time-zone offset.
    if matches!(type_name, "Slot" | "Appointment") {
        for element in ["start", "end"] {
            if let Some(text) = object.get(element).and_then(Value::as_str).filter(|t| t.len() >= 19) {
                let mut broken = resource.clone();
                broken[element] = json!(text[..19].to_string());
                add(format!("{element} without offset"), broken, "value", format!("{type_name}.{element}"), None);
            }
        }
    }
    if object.get("meta").is_some_and(Value::is_object) {
        let mut broken = resource.clone();
        broken["meta"]["lastUpdated"] = json!("2025-01-01T10:00:00");
        add("meta.lastUpdated without offset".into(), broken, "value", format!("{type_name}.meta.lastUpdated"), None);
    }

    // Malformed dates.
    if object.get("birthDate").is_some_and(Value::is_string) {
        let mut broken = resource.clone();
        broken["birthDate"] = json!("1980-02-30");
        add("impossible birthDate".into(), broken, "value", format!("{type_name}.birthDate"), None);
    }

    // ele-1: an element without value or children.
    let mut broken = resource.clone();
    broken["meta"] = json!({});
    add("empty meta".into(), broken, "invariant", format!("{type_name}.meta"), Some("ele-1"));

    // ext-1: an extension with both a value and sub-extensions.
    let mut broken = resource.clone();
    let extensions = broken.as_object_mut().unwrap().entry("extension").or_insert_with(|| json!([]));
    let index = extensions.as_array().unwrap().len();
    extensions.as_array_mut().unwrap().push(json!({
        "url": "http://example.org/fhir/StructureDefinition/both",
        "valueString": "v",
        "extension": [{"url": "part", "valueString": "w"}]
    }));
    add("extension with value and extensions".into(), broken, "invariant", format!("{type_name}.extension[{index}]"), Some("ext-1"));

    // An extension used outside its context (slot-encounter-class is for Slot only).
    if example.at && type_name != "Slot" {
        let mut broken = resource.clone();
        let extensions = broken.as_object_mut().unwrap().entry("extension").or_insert_with(|| json!([]));
        let index = extensions.as_array().unwrap().len();
        extensions.as_array_mut().unwrap().push(json!({
            "url": "https://fhir.hl7.at/tc/wg/scheduling/r5/StructureDefinition/slot-encounter-class",
            "valueCodeableConcept": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "VR"}]}
        }));
        add("Slot extension on another type".into(), broken, "structure", format!("{type_name}.extension[{index}]"), Some("not allowed"));
    }

    // pat-1: a contact without any details.
    if type_name == "Patient" {
        let mut broken = resource.clone();
        let contacts = broken.as_object_mut().unwrap().entry("contact").or_insert_with(|| json!([]));
        let index = contacts.as_array().unwrap().len();
        contacts.as_array_mut().unwrap().push(json!({"gender": "female"}));
        add("contact without details".into(), broken, "invariant", format!("Patient.contact[{index}]"), Some("pat-1"));
    }

    // Appointment invariants: start without end.
    if type_name == "Appointment" && object.contains_key("start") && object.contains_key("end") {
        let mut broken = resource.clone();
        broken.as_object_mut().unwrap().remove("end");
        add("start without end".into(), broken, "invariant", "Appointment".into(), Some("app-2"));
    }

    if example.at {
        at_mutations(example, &mut add);
    }
    out
}

/// Rules only the AT profiles make.
fn at_mutations(example: &Example, add: &mut impl FnMut(String, Value, &'static str, String, Option<&'static str>)) {
    let resource = &example.resource;
    let type_name = type_of(resource);
    let identifiers = resource.get("identifier").and_then(Value::as_array).cloned().unwrap_or_default();
    let is_ssn = |i: &Value| i.pointer("/type/coding/0/code").and_then(Value::as_str) == Some("SS");
    if let Some(index) = identifiers.iter().position(is_ssn) {
        // The social security number has a fixed system.
        let mut broken = resource.clone();
        broken["identifier"][index]["system"] = json!("urn:oid:1.2.40.0.10.1.4.3.9");
        add("SVNR with another system".into(), broken, "value", format!("Patient.identifier[{index}].system"), Some("1.2.40.0.10.1.4.3.1"));
        // At most one social security number.
        let mut broken = resource.clone();
        let copy = identifiers[index].clone();
        broken["identifier"].as_array_mut().unwrap().push(copy);
        add("two SVNRs".into(), broken, "structure", "Patient.identifier".into(), Some("socialSecurityNumber"));
    }
    let kanr = |i: &Value| i.get("system").and_then(Value::as_str) == Some("urn:oid:1.2.40.0.34.4.10");
    if type_name == "Organization" && identifiers.iter().any(kanr) {
        let mut broken = resource.clone();
        let copy = identifiers.iter().find(|i| kanr(i)).unwrap().clone();
        broken["identifier"].as_array_mut().unwrap().push(copy);
        add("two KANRs".into(), broken, "structure", "Organization.identifier".into(), Some("KANR"));
    }
    // at-addr-1..3: a structured address line needs its text.
    let addresses = resource.get("address").and_then(Value::as_array).cloned().unwrap_or_default();
    if let Some(index) = addresses.iter().position(|a| a.get("_line").is_some()) {
        let mut broken = resource.clone();
        broken["address"][index]["line"] = json!([null]);
        for key in ["at-addr-1", "at-addr-2", "at-addr-3"] {
            add(format!("address line without text ({key})"), broken.clone(), "invariant", format!("{type_name}.address[{index}]"), Some(key));
        }
        let mut broken = resource.clone();
        broken["address"][index]["district"] = json!("Innere Stadt");
        add("district (excluded by at-core-address)".into(), broken, "structure", format!("{type_name}.address[{index}].district"), None);
    }
    // at-ext-gender-1: the gender addition needs gender "other".
    if resource.pointer("/_gender/extension").is_some() {
        let mut broken = resource.clone();
        broken["gender"] = json!("female");
        add("gender addition without gender other".into(), broken, "invariant", "Patient.gender.extension[0].value.ofType(Coding)".into(), Some("at-ext-gender-1"));
    }
    // The Appointment must have a Patient participant (slice min 1).
    if type_name == "Appointment" {
        let mut broken = resource.clone();
        let participants = broken["participant"].as_array_mut().unwrap();
        participants.retain(|p| !p.pointer("/actor/reference").and_then(Value::as_str).is_some_and(|r| r.starts_with("Patient/")));
        add("no Patient participant".into(), broken, "required", "Appointment.participant".into(), Some("HL7ATCorePatient"));
        let mut broken = resource.clone();
        broken["subject"] = json!({"reference": "Practitioner/x"});
        add("subject is not a Patient or Group".into(), broken, "structure", "Appointment.subject".into(), Some("Practitioner"));
    }
    // At most one booking URL on a Slot.
    if type_name == "Slot" {
        let mut broken = resource.clone();
        let extensions = broken.as_object_mut().unwrap().entry("extension").or_insert_with(|| json!([]));
        for _ in 0..2 {
            extensions.as_array_mut().unwrap().push(json!({
                "url": "https://fhir.hl7.at/tc/wg/scheduling/r5/StructureDefinition/appointment-booking-url",
                "valueUri": "https://example.org/book"
            }));
        }
        add("two booking URLs".into(), broken, "structure", "Slot.extension".into(), Some("bookingURL"));
    }
}

/// Variants that change nothing a definition forbids.
fn valid_variants(example: &Example) -> Vec<(String, Value)> {
    let resource = &example.resource;
    let mut variants = Vec::new();
    let mut with_text = resource.clone();
    with_text["text"] = json!({"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Example</div>"});
    variants.push(("with narrative".to_owned(), with_text));
    let mut with_language = resource.clone();
    with_language["language"] = json!("de-AT");
    variants.push(("with language".to_owned(), with_language));
    let mut without_id = resource.clone();
    without_id.as_object_mut().unwrap().remove("id");
    variants.push(("without id (as in a create)".to_owned(), without_id));
    if type_of(resource) == "Slot" {
        let mut busy = resource.clone();
        busy["status"] = json!("busy-unavailable");
        variants.push(("another status".to_owned(), busy));
    }
    variants
}

#[test]
fn broken_variants_are_rejected_with_the_right_issue() {
    let mut count = 0;
    let mut failures = Vec::new();
    for example in examples() {
        let validator = validator(example.at);
        for mutation in mutations(&example) {
            count += 1;
            let outcome = validator.validate(&mutation.resource);
            let found = outcome.issues.iter().any(|issue| {
                matches!(issue.severity, Severity::Error | Severity::Fatal)
                    && issue.code.as_str() == mutation.code
                    && issue.expression.contains(&mutation.expression)
                    && mutation.mentions.is_none_or(|m| issue.diagnostics.contains(m))
            });
            if !found {
                failures.push(format!(
                    "{}: expected {} at {}{}, got {:?}",
                    mutation.name,
                    mutation.code,
                    mutation.expression,
                    mutation.mentions.map(|m| format!(" mentioning {m}")).unwrap_or_default(),
                    errors(&outcome)
                ));
            }
        }
    }
    assert!(count >= 200, "only {count} mutations were generated");
    assert!(failures.is_empty(), "{} of {count} mutations not caught:\n{}", failures.len(), failures.join("\n"));
    println!("{count} broken variants rejected");
}

#[test]
fn harmless_variants_stay_valid() {
    let mut failures = Vec::new();
    for example in examples() {
        for (what, variant) in valid_variants(&example) {
            let problems = errors(&validator(example.at).validate(&variant));
            if !problems.is_empty() {
                failures.push(format!("{} {what}: {problems:?}", example.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn legacy_canonical_base_in_meta_profile_is_accepted() {
    let (_, mut slot) = at_examples().into_iter().find(|(n, _)| n.contains("Slot-")).unwrap();
    slot["meta"]["profile"] = json!(["http://hl7.at/fhir/TC-FHIR-AG-Scheduling-R5/R5/StructureDefinition/at-scheduling-slot"]);
    let outcome = r5_validator().validate(&slot);
    assert!(errors(&outcome).is_empty(), "{:?}", errors(&outcome));
    assert!(!outcome.issues.iter().any(|i| i.diagnostics.contains("not known")), "{:?}", outcome.issues);
    // The claimed profile is really checked: its slice limits apply.
    let extensions = slot.as_object_mut().unwrap().entry("extension").or_insert_with(|| json!([]));
    for _ in 0..2 {
        extensions.as_array_mut().unwrap().push(json!({
            "url": "https://fhir.hl7.at/tc/wg/scheduling/r5/StructureDefinition/appointment-booking-url",
            "valueUri": "https://example.org/book"
        }));
    }
    assert!(!errors(&r5_validator().validate(&slot)).is_empty());
}
