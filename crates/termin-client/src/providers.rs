//! The inputs of `HealthcareService/$findHSP` ("Find Healthcare Service Providers"): which
//! service (by reference or codes) and, optionally, where and when it is wanted.

use serde_json::{Value, json};

/// What to ask `$findHSP` for. The server needs at least one service input (`service`,
/// `types`, `categories` or `specialties`). Codes are `system|code`, both parts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderSearch {
    /// `healthcareService-reference`, e.g. `HealthcareService/x`.
    pub service: Option<String>,
    /// `healthcareService-category` codes.
    pub categories: Vec<String>,
    /// `healthcareService-type` codes, e.g. `http://terminology.hl7.org/CodeSystem/service-type|65`.
    pub types: Vec<String>,
    /// `healthcareService-specialty` codes.
    pub specialties: Vec<String>,
    /// `healthcareService-location`: `Location/id`, or a Location identifier as `system|value`.
    pub locations: Vec<String>,
    /// `healthcareService-zipCodeArea`: a postal code or its leading digits (`53` covers 53xx).
    pub zip_areas: Vec<String>,
    /// `healthcareService-availability`: FHIR `Availability` values. Only a POSTed Parameters
    /// body can carry them, so setting any makes [`crate::Client::find_hsp`] POST.
    pub availability: Vec<Value>,
    /// `_count`: page size.
    pub count: Option<u32>,
}

impl ProviderSearch {
    /// Whether the search has to be POSTed (it carries availability windows).
    pub fn needs_post(&self) -> bool {
        !self.availability.is_empty()
    }

    /// The textual inputs as query pairs (the GET form; availability is left out).
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(service) = &self.service {
            pairs.push(("healthcareService-reference", service.clone()));
        }
        for (name, values) in self.repeated() {
            pairs.extend(values.iter().map(|value| (name, value.clone())));
        }
        if let Some(count) = self.count {
            pairs.push(("_count", count.to_string()));
        }
        pairs
    }

    /// Every input as a `Parameters` resource (the POST form); `_count` stays in the URL.
    pub fn to_parameters(&self) -> Value {
        let mut parameters = Vec::new();
        if let Some(service) = &self.service {
            parameters.push(json!({"name": "healthcareService-reference", "valueReference": {"reference": service}}));
        }
        for (name, values) in self.repeated() {
            for value in values {
                parameters.push(match name {
                    "healthcareService-location" => json!({"name": name, "valueReference": location_reference(value)}),
                    _ => json!({"name": name, "valueString": value}),
                });
            }
        }
        for availability in &self.availability {
            parameters.push(json!({"name": "healthcareService-availability", "valueAvailability": availability}));
        }
        json!({"resourceType": "Parameters", "parameter": parameters})
    }

    fn repeated(&self) -> [(&'static str, &[String]); 5] {
        [
            ("healthcareService-category", &self.categories),
            ("healthcareService-type", &self.types),
            ("healthcareService-specialty", &self.specialties),
            ("healthcareService-location", &self.locations),
            ("healthcareService-zipCodeArea", &self.zip_areas),
        ]
    }
}

/// `system|value` names a Location by identifier; anything else is a reference.
fn location_reference(value: &str) -> Value {
    match value.split_once('|') {
        Some((system, identifier)) => json!({"identifier": {"system": system, "value": identifier}}),
        None => json!({"reference": value}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search() -> ProviderSearch {
        ProviderSearch {
            types: vec!["http://terminology.hl7.org/CodeSystem/service-type|65".into()],
            zip_areas: vec!["53".into()],
            locations: vec!["Location/loc".into(), "urn:oid:1.2.3|L7".into()],
            count: Some(5),
            ..ProviderSearch::default()
        }
    }

    #[test]
    fn the_get_form_lists_the_textual_inputs() {
        let search = search();
        assert!(!search.needs_post());
        assert_eq!(
            search.pairs(),
            [
                ("healthcareService-type", "http://terminology.hl7.org/CodeSystem/service-type|65".to_owned()),
                ("healthcareService-location", "Location/loc".to_owned()),
                ("healthcareService-location", "urn:oid:1.2.3|L7".to_owned()),
                ("healthcareService-zipCodeArea", "53".to_owned()),
                ("_count", "5".to_owned()),
            ]
        );
    }

    #[test]
    fn the_post_form_carries_locations_as_references_and_availability_as_is() {
        let window = json!({"availableTime": [{"daysOfWeek": ["mon"], "availableStartTime": "08:00:00"}]});
        let search = ProviderSearch { availability: vec![window.clone()], ..search() };
        assert!(search.needs_post());
        let parameters = search.to_parameters();
        let by_name = |name: &str| -> Vec<Value> {
            parameters["parameter"].as_array().unwrap().iter().filter(|p| p["name"] == name).cloned().collect()
        };
        let locations = by_name("healthcareService-location");
        assert_eq!(locations[0]["valueReference"], json!({"reference": "Location/loc"}));
        assert_eq!(locations[1]["valueReference"], json!({"identifier": {"system": "urn:oid:1.2.3", "value": "L7"}}));
        assert_eq!(by_name("healthcareService-zipCodeArea")[0]["valueString"], "53");
        assert_eq!(by_name("healthcareService-availability")[0]["valueAvailability"], window);
        assert!(by_name("_count").is_empty(), "paging is not an operation input");
    }
}
