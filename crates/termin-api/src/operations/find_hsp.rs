//! `HealthcareService/$findHSP`: inputs from the query string (GET) or a Parameters body
//! (POST), the answer as a paged searchset Bundle.

use super::{Answer, Invocation, Operation, param_path, parameter};
use crate::SharedState;
use crate::bundle::{self, SearchMode};
use crate::error::ApiError;
use crate::format::FhirResponse;
use crate::query::query_pairs;
use crate::routes::search::{page_size, page_url, paging_pairs};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use termin_domain::{BusinessIdentifier, EarliestFreeSlot, LocationSelector, ProviderQuery};
use termin_fhir::geo;
use termin_fhir::{Issue, IssueCode, OperationOutcome, Parameters, ResourceType};
use termin_store::{Permission, SystemMatch, TokenMatch};

pub const FIND_HSP: Operation = Operation {
    id: "healthcareService-provider-find",
    code: "findHSP",
    resources: &[ResourceType::HealthcareService],
    instance: false,
    safe: true,
    base: "https://fhir.hl7.at/tc/wg/scheduling/r5/OperationDefinition/healthcareService-provider-find",
    needs_validator: false,
    needs: Some((ResourceType::HealthcareService, Permission::Read)),
    description: "Finds the providers (Organization, PractitionerRole, Practitioner) of the active \
        HealthcareServices matching the wanted codes, near the wanted place, at the wanted time; GET or POST.",
    parameters: definition_parameters,
    handler: |state, call| Box::pin(find_hsp(state, call)),
};

fn definition_parameters() -> Value {
    json!([
        parameter("healthcareService-reference", "in", 0, "1", "Reference",
            "The HealthcareService (a reference, a logical reference by identifier — `system|value` in a GET — \
             or the resource inline as `resource`); it SHALL be active."),
        parameter("healthcareService-category", "in", 0, "1", "string", "Category code as system|code."),
        parameter("healthcareService-type", "in", 0, "1", "string",
            "Type code as system|code (the IG example's `healthcareService-type=system|code` form is read too)."),
        parameter("healthcareService-specialty", "in", 0, "1", "string", "Specialty code as system|code."),
        parameter("healthcareService-location", "in", 0, "*", "Reference", "Wanted Location (reference or identifier)."),
        parameter("healthcareService-zipCodeArea", "in", 0, "*", "string",
            "Wanted zip code area; a prefix covers the area (53 covers 5300-5399)."),
        parameter("healthcareService-availability", "in", 0, "*", "Availability", "Wanted times (POST only)."),
        parameter("availability-until", "in", 0, "1", "dateTime",
            "Termin: how far ahead availability and free slots are looked at (a date includes that day); \
             default 28 days, at most 90 days ahead (else 400)."),
        parameter("near", "in", 0, "1", "string",
            "Termin: latitude|longitude|distance|unit as R5's `near` (unit km, m, [mi_i] or [mi_us], default km; distance \
             default near-distance, else 10 km): providers at Locations whose position lies within the distance, \
             nearest first."),
        parameter("near-distance", "in", 0, "1", "string",
            "Termin: distance|unit around `near` (when it names none) and around each healthcareService-location \
             that has a position (default 10 km): Locations within it are wanted places too, nearest first."),
        parameter("return", "out", 1, "1", "Bundle",
            "searchset: matching HealthcareServices (match), their providers (include) and an OperationOutcome \
             (outcome) naming each provider's earliest free slot in the wanted time. The IG's definition names \
             this output `result` while its example answers with the Bundle itself; Termin answers with the \
             Bundle itself, which FHIR spells as the single out parameter `return`. Termin: each match entry \
             (a HealthcareService) carries, per provider with a free slot, the entry extension \
             https://termin.at/fhir/StructureDefinition/earliest-free-slot with the sub-extensions provider \
             (valueReference), slot (valueReference) and start (valueInstant) — the same as the outcome's notes."),
    ])
}

/// The Bundle entry extension naming a provider's earliest free slot for the matched service.
pub const EARLIEST_FREE_SLOT_URL: &str = "https://termin.at/fhir/StructureDefinition/earliest-free-slot";

/// Carries a POSTed Parameters body in `next` links, so later pages work as GETs on any node.
const PARAMETERS_IN_LINK: &str = "_parameters";

fn bad(parameter: &str, message: String) -> ApiError {
    ApiError::bad_request(Issue::error(IssueCode::Invalid, message).at(param_path(parameter)))
}

/// `system|code`; the IG example's `healthcareService-type=system|code` form is read leniently.
fn token(parameter: &str, value: &str) -> Result<TokenMatch, ApiError> {
    let value = value.strip_prefix(&format!("{parameter}=")).unwrap_or(value);
    match value.split_once('|') {
        Some((system, code)) if !system.is_empty() && !code.is_empty() => Ok(TokenMatch {
            system: SystemMatch::Exactly(system.to_owned()),
            code: Some(code.to_owned()),
        }),
        _ => Err(bad(parameter, format!("{parameter} must be system|code (both parts), got {value:?}"))),
    }
}

/// A Location reference, `system|value` (by identifier), or a bare id.
fn location(value: &str) -> LocationSelector {
    match termin_fhir::reference_id(value, ResourceType::Location) {
        Some(id) => LocationSelector::Id(id.to_owned()),
        None => match value.split_once('|') {
            Some((system, code)) => LocationSelector::Identifier {
                system: (!system.is_empty()).then(|| system.to_owned()),
                value: code.to_owned(),
            },
            None => LocationSelector::Id(value.to_owned()),
        },
    }
}

fn business_identifier(identifier: &Map<String, Value>) -> Result<BusinessIdentifier, ApiError> {
    match identifier.get("value").and_then(Value::as_str) {
        Some(value) if !value.is_empty() => Ok(BusinessIdentifier {
            system: identifier.get("system").and_then(Value::as_str).map(str::to_owned),
            value: value.to_owned(),
        }),
        _ => Err(bad("healthcareService-reference", "the reference's identifier has no value".into())),
    }
}

/// A distance in km from a number and a UCUM unit (see [`geo::DISTANCE_UNITS`]; none: km).
fn kilometres(parameter: &str, distance: &str, unit: &str) -> Result<f64, ApiError> {
    geo::kilometres(distance, unit).map_err(|message| bad(parameter, format!("{parameter}: {message}")))
}

/// Reads one `name = value` input into the query.
fn add_text(query: &mut ProviderQuery, name: &str, value: &str) -> Result<(), ApiError> {
    match name {
        // A reference has no `|`: `system|value` names the service by identifier.
        "healthcareService-reference" => match value.split_once('|') {
            Some((system, identifier)) => {
                query.service_identifier = Some(BusinessIdentifier {
                    system: (!system.is_empty()).then(|| system.to_owned()),
                    value: identifier.to_owned(),
                });
            }
            None => query.service_reference = Some(value.to_owned()),
        },
        "healthcareService-category" => query.categories.push(token(name, value)?),
        "healthcareService-type" => query.types.push(token(name, value)?),
        "healthcareService-specialty" => query.specialties.push(token(name, value)?),
        "healthcareService-location" => query.locations.push(location(value)),
        "healthcareService-zipCodeArea" => query.zip_areas.push(value.trim().to_owned()),
        "availability-until" => query.until = Some(value.to_owned()),
        "near" => {
            let (centre, radius) = geo::parse_near(value).map_err(|message| bad("near", message))?;
            query.near = Some(centre);
            query.radius_km = radius.or(query.radius_km);
        }
        "near-distance" => {
            let (distance, unit) = value.split_once('|').unwrap_or((value, ""));
            // The distance inside `near` wins.
            let radius = kilometres(name, distance, unit)?;
            query.radius_km = query.radius_km.or(Some(radius));
        }
        _ => {}
    }
    Ok(())
}

fn from_parameters(body: &Map<String, Value>) -> Result<ProviderQuery, ApiError> {
    let parameters = Parameters::read(body).ok_or_else(|| {
        ApiError::bad_request(Issue::error(IssueCode::Invalid, "$findHSP takes a Parameters resource").at("resourceType"))
    })?;
    let mut query = ProviderQuery::default();
    for (name, parameter) in parameters.all() {
        match name {
            "healthcareService-reference" => {
                let reference = parameter.get("valueReference");
                if let Some(resource) = parameter.get("resource").and_then(Value::as_object) {
                    query.service_resource = Some(resource.clone());
                } else if let Some(reference) = reference.and_then(|r| r["reference"].as_str()) {
                    query.service_reference = Some(reference.to_owned());
                } else if let Some(identifier) = reference.and_then(|r| r["identifier"].as_object()) {
                    query.service_identifier = Some(business_identifier(identifier)?);
                }
            }
            "healthcareService-location" => {
                let value = parameter.get("valueReference").unwrap_or(&Value::Null);
                if let Some(reference) = value["reference"].as_str() {
                    query.locations.push(location(reference));
                } else if let Some(identifier) = value["identifier"]["value"].as_str() {
                    query.locations.push(LocationSelector::Identifier {
                        system: value["identifier"]["system"].as_str().map(str::to_owned),
                        value: identifier.to_owned(),
                    });
                }
            }
            "healthcareService-availability" => {
                if let Some(availability) = parameter.get("valueAvailability") {
                    query.availability.push(availability.clone());
                }
            }
            _ => {
                let text = ["valueString", "valueCode", "valueDate", "valueDateTime"]
                    .iter()
                    .find_map(|key| parameter.get(*key).and_then(Value::as_str));
                if let Some(text) = text {
                    add_text(&mut query, name, text)?;
                }
            }
        }
    }
    Ok(query)
}

/// The inputs and their re-usable form for `next` links.
fn read_inputs(raw_query: Option<&str>, body: Option<Map<String, Value>>) -> Result<(ProviderQuery, Vec<(String, String)>), ApiError> {
    let carried = query_pairs(raw_query).find(|(name, _)| name == PARAMETERS_IN_LINK).map(|(_, v)| v.into_owned());
    let body = match (body, carried) {
        (Some(body), _) => Some(body),
        (None, Some(encoded)) => {
            let bytes = URL_SAFE_NO_PAD
                .decode(encoded.as_bytes())
                .map_err(|_| bad(PARAMETERS_IN_LINK, "the _parameters value is not a link this server made".into()))?;
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => Some(map),
                _ => return Err(bad(PARAMETERS_IN_LINK, "the _parameters value is not a link this server made".into())),
            }
        }
        (None, None) => None,
    };
    let mut pairs: Vec<(String, String)> = paging_pairs(raw_query)
        .into_iter()
        .filter(|(name, _)| name != PARAMETERS_IN_LINK)
        .collect();
    let query = match body {
        Some(body) => {
            pairs.push((PARAMETERS_IN_LINK.into(), URL_SAFE_NO_PAD.encode(Value::Object(body.clone()).to_string())));
            from_parameters(&body)?
        }
        None => {
            let mut query = ProviderQuery::default();
            for (name, value) in query_pairs(raw_query) {
                add_text(&mut query, &name, &value)?;
            }
            query
        }
    };
    Ok((query, pairs))
}

async fn find_hsp(state: SharedState, call: Invocation) -> Answer {
    let raw_query = call.query.as_deref();
    let base = &call.base;
    let (query, pairs) = read_inputs(raw_query, call.body)?;
    let count = page_size(raw_query, state.config.default_count, state.config.max_count)?;
    let after = query_pairs(raw_query).find(|(name, _)| name == "_cursor").map(|(_, v)| v.into_owned());
    let found = state.domain.providers.find_providers(&call.ctx, &query).await?;
    let total = found.services.len() as u64;
    let remaining: Vec<_> = found
        .services
        .into_iter()
        .filter(|m| after.as_ref().is_none_or(|a| m.rank.as_str() > a.as_str()))
        .collect();
    let more = remaining.len() > count;
    let page = &remaining[..remaining.len().min(count)];
    let mut entries = Vec::new();
    let mut included: Vec<(String, String)> = Vec::new();
    for service_match in page {
        let earliest = service_match.earliest_free_slots.iter().map(earliest_free_slot).collect();
        entries.push(bundle::search_entry(&base.0, &service_match.service, SearchMode::Match).with_extensions(earliest));
        for provider in &service_match.providers {
            let key = (provider.resource_type.to_string(), provider.id.clone());
            if !included.contains(&key) {
                entries.push(bundle::search_entry(&base.0, provider, SearchMode::Include));
                included.push(key);
            }
        }
    }
    let mut notes = found.notes;
    if notes.is_empty() {
        notes.push(Issue::information(format!("{total} HealthcareService(s) matched")));
    }
    entries.push(bundle::outcome_entry(OperationOutcome::new(notes).to_json()));
    let endpoint = format!("{}/HealthcareService/$findHSP", base.0);
    let next = more.then(|| page_url(&endpoint, &pairs, page.last().map(|m| m.rank.clone())));
    let links = bundle::links(page_url(&endpoint, &pairs, after), next);
    Ok(FhirResponse::new(StatusCode::OK, call.format).searchset(bundle::searchset(Some(total), links, entries)))
}

fn earliest_free_slot(earliest: &EarliestFreeSlot) -> Value {
    json!({"url": EARLIEST_FREE_SLOT_URL, "extension": [
        {"url": "provider", "valueReference": {"reference": earliest.provider}},
        {"url": "slot", "valueReference": {"reference": format!("Slot/{}", earliest.slot_id)}},
        {"url": "start", "valueInstant": termin_fhir::instant::format_instant(earliest.start)},
    ]})
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_ig_example_token_form() {
        let t = token("healthcareService-type", "healthcareService-type=urn:vs|65").unwrap();
        assert_eq!(t.system, SystemMatch::Exactly("urn:vs".into()));
        assert_eq!(t.code.as_deref(), Some("65"));
        assert!(token("healthcareService-type", "65").is_err());
    }

    #[test]
    fn posted_parameters_travel_in_next_links() {
        let Value::Object(body) = json!({"resourceType": "Parameters", "parameter": [
            {"name": "healthcareService-zipCodeArea", "valueString": "53"}]}) else { unreachable!() };
        let (_, pairs) = read_inputs(None, Some(body)).unwrap();
        let link = format!("{}={}", pairs[0].0, pairs[0].1);
        let (again, _) = read_inputs(Some(&link), None).unwrap();
        assert_eq!(again.zip_areas, ["53"]);
    }
}
