//! What a booking offers: the service types, specialties and HealthcareServices its Slots,
//! their Schedule and the HealthcareServices behind them declare. `$book` refuses an
//! Appointment asking for a `serviceType` or `specialty` the booked time does not offer (the
//! IG's "HealthcareService supported" precondition).

use crate::model;
use crate::DomainError;
use serde_json::{Map, Value};
use termin_fhir::{Issue, IssueCode, ResourceType};

/// One declaration of what is offered: who declares it (for messages) and its codings.
#[derive(Debug, Default, Clone)]
pub(crate) struct Declared {
    pub by: String,
    pub codings: Vec<(Option<String>, String)>,
}

/// What the booked time offers. Each list holds the most specific declaration there is: the
/// Slots' own, else their Schedule's, else the HealthcareServices'. `services` are the ids of
/// the HealthcareServices the Slots or Schedule name (empty: any).
#[derive(Debug, Default)]
pub(crate) struct Offer {
    pub service_types: Declared,
    pub specialties: Declared,
    pub services: Vec<String>,
}

/// `(system, code)` of every coding of a CodeableConcept.
fn codings(concept: &Value) -> Vec<(Option<String>, String)> {
    concept
        .get("coding")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let code = c.get("code").and_then(Value::as_str)?;
            Some((c.get("system").and_then(Value::as_str).map(str::to_owned), code.to_owned()))
        })
        .collect()
}

/// Codings of `serviceType[].concept` (CodeableReference) of a Slot, Schedule or Appointment.
pub(crate) fn service_type_codings(resource: &Map<String, Value>) -> Vec<(Option<String>, String)> {
    list(resource, "serviceType").filter_map(|st| st.get("concept")).flat_map(codings).collect()
}

/// Codings of `element[]` (a list of CodeableConcepts, e.g. `specialty`, HealthcareService `type`).
pub(crate) fn concept_codings(resource: &Map<String, Value>, element: &str) -> Vec<(Option<String>, String)> {
    list(resource, element).flat_map(codings).collect()
}

/// Ids of the HealthcareServices in `serviceType[].reference.reference`.
pub(crate) fn service_references(resource: &Map<String, Value>) -> Vec<String> {
    list(resource, "serviceType")
        .filter_map(|st| st.get("reference")?.get("reference")?.as_str())
        .filter_map(|r| model::reference_id(r, ResourceType::HealthcareService))
        .collect()
}

fn list<'a>(resource: &'a Map<String, Value>, element: &str) -> impl Iterator<Item = &'a Value> + 'a {
    resource.get(element).and_then(Value::as_array).into_iter().flatten()
}

/// The first declaration that lists any coding.
pub(crate) fn most_specific(declarations: impl IntoIterator<Item = Declared>) -> Declared {
    declarations.into_iter().find(|d| !d.codings.is_empty()).unwrap_or_default()
}

/// Codes match when they are equal and the systems are too, or one is absent, or one is a
/// ValueSet URL (the IG's examples code service types with the ValueSet's URL as system).
fn same_coding(a: &(Option<String>, String), b: &(Option<String>, String)) -> bool {
    let lenient = |s: &Option<String>| s.as_deref().is_none_or(|s| s.contains("/ValueSet/"));
    a.1 == b.1 && (a.0 == b.0 || lenient(&a.0) || lenient(&b.0))
}

fn show(codings: &[(Option<String>, String)]) -> String {
    codings
        .iter()
        .map(|(system, code)| match system {
            Some(system) => format!("{system}|{code}"),
            None => code.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn refused(path: String, message: String) -> DomainError {
    DomainError::unprocessable(Issue::error(IssueCode::BusinessRule, message).at(path))
}

/// Each `serviceType` and `specialty` of the Appointment that names codes must share one with
/// what is offered, and each HealthcareService it names must be one the booked time offers.
pub(crate) fn check_offered(appointment: &Map<String, Value>, offer: &Offer) -> Result<(), DomainError> {
    for (index, service_type) in list(appointment, "serviceType").enumerate() {
        if let Some(reference) = service_type.get("reference").and_then(|r| r.get("reference")).and_then(Value::as_str)
            && let Some(id) = model::reference_id(reference, ResourceType::HealthcareService)
            && !offer.services.is_empty()
            && !offer.services.contains(&id)
        {
            return Err(refused(
                format!("Appointment.serviceType[{index}].reference"),
                format!(
                    "HealthcareService/{id} is not the service of the booked time, which offers {}",
                    offer.services.iter().map(|s| format!("HealthcareService/{s}")).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let asked = service_type.get("concept").map(codings).unwrap_or_default();
        check_codes(&asked, &offer.service_types, format!("Appointment.serviceType[{index}]"), "service type")?;
    }
    for (index, specialty) in list(appointment, "specialty").enumerate() {
        check_codes(&codings(specialty), &offer.specialties, format!("Appointment.specialty[{index}]"), "specialty")?;
    }
    Ok(())
}

fn check_codes(asked: &[(Option<String>, String)], offered: &Declared, path: String, what: &str) -> Result<(), DomainError> {
    if asked.is_empty() || offered.codings.is_empty() || asked.iter().any(|a| offered.codings.iter().any(|o| same_coding(a, o))) {
        return Ok(());
    }
    Err(refused(
        path.clone(),
        format!("{path} ({}) is not a {what} {} offers; it offers {}", show(asked), offered.by, show(&offered.codings)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        let Value::Object(map) = value else { panic!("not an object") };
        map
    }

    fn offer(codes: &[(&str, &str)]) -> Offer {
        Offer {
            service_types: Declared {
                by: "Slot/a".into(),
                codings: codes.iter().map(|(s, c)| (Some((*s).to_owned()), (*c).to_owned())).collect(),
            },
            specialties: Declared::default(),
            services: vec!["physio".into()],
        }
    }

    #[test]
    fn service_types_match_by_code_with_lenient_value_set_systems() {
        let ig = "http://hl7.at/fhir/TC-FHIR-AG-Scheduling-R5/R5/ValueSet/AtSchedulingServiceType";
        let asked = |system: &str, code: &str| {
            object(json!({"serviceType": [{"concept": {"coding": [{"system": system, "code": code}]}}]}))
        };
        let offered = offer(&[("http://terminology.hl7.org/CodeSystem/service-type", "65")]);
        assert!(check_offered(&asked(ig, "65"), &offered).is_ok());
        assert!(check_offered(&asked("http://terminology.hl7.org/CodeSystem/service-type", "65"), &offered).is_ok());
        let Err(DomainError::Unprocessable(outcome)) = check_offered(&asked("http://other", "65"), &offered) else {
            panic!("another code system is another code")
        };
        assert_eq!(outcome.issues[0].expression, ["Appointment.serviceType[0]"]);
        assert!(check_offered(&asked(ig, "12"), &offered).is_err());
        // Nothing declared: nothing to check.
        assert!(check_offered(&asked(ig, "12"), &Offer::default()).is_ok());
    }

    #[test]
    fn a_named_service_must_be_the_booked_one() {
        let appointment = object(json!({"serviceType": [{"reference": {"reference": "HealthcareService/surgery"}}]}));
        let Err(DomainError::Unprocessable(outcome)) = check_offered(&appointment, &offer(&[])) else {
            panic!("another service was accepted")
        };
        assert_eq!(outcome.issues[0].expression, ["Appointment.serviceType[0].reference"]);
    }
}
