//! `$findHSP` at an upstream that does not implement it (a plain FHIR server): the answer is
//! built from the IG's search sequence — HealthcareServices by their codes (with their
//! Organization and Locations), the PractitionerRoles offering them (with Practitioner,
//! Organization and Locations), the Schedules of those providers, and per Schedule its earliest
//! free Slot (`status=free`, sorted by start, `_count=1`) — into the same Bundle Termin's own
//! `$findHSP` answers: services (match) with the earliest-free-slot entry extension, their
//! providers (include), and an outcome naming each provider's earliest free slot.
//!
//! What a plain server can be asked is less than `$findHSP` can say: the codes, a service
//! reference, zip code areas and Locations (matched against the services', Organizations' and
//! roles' addresses here) and `availability-until` are applied; wanted availability and `near`
//! are not, which the answer says in a warning.

use crate::upstream::{Upstream, UpstreamRequest};
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashSet};
use termin_fhir::{Issue, IssueCode};

/// The entry extension naming a provider's earliest free slot (as Termin's own `$findHSP`).
pub const EARLIEST_FREE_SLOT_URL: &str = "https://termin.at/fhir/StructureDefinition/earliest-free-slot";

/// Results asked for per page of a directory search.
const PAGE: usize = 100;
/// Pages followed per directory search at most: the answer stays bounded for a large upstream
/// (and says so when it stopped early).
const MAX_PAGES: usize = 10;
/// Schedules whose earliest free slot is looked up at most (one Slot search each).
const MAX_SCHEDULES: usize = 200;
/// How far ahead free slots are looked at unless `availability-until` says (as Termin's own).
const HORIZON_DAYS: i64 = 28;

/// What the `$findHSP` inputs ask, as far as searches can express it.
#[derive(Debug, Default, PartialEq)]
pub struct Wanted {
    /// `(search parameter, value)` of the HealthcareService search.
    pub service_search: Vec<(String, String)>,
    pub zip_areas: Vec<String>,
    pub location_ids: Vec<String>,
    pub until: Option<String>,
    /// Inputs that cannot be applied by searching.
    pub ignored: Vec<String>,
}

/// Reads `$findHSP` inputs given as query pairs and, for a POST, the Parameters resource.
pub fn wanted(pairs: &[(String, String)], parameters: Option<&Value>) -> Wanted {
    let mut inputs: Vec<(String, String)> = pairs.to_vec();
    for parameter in parameters.and_then(|p| p["parameter"].as_array()).into_iter().flatten() {
        let Some(name) = parameter["name"].as_str() else {
            continue;
        };
        let value = ["valueString", "valueCode", "valueDate", "valueDateTime"]
            .iter()
            .find_map(|key| parameter[*key].as_str().map(str::to_owned))
            .or_else(|| parameter["valueReference"]["reference"].as_str().map(str::to_owned))
            .or_else(|| {
                let identifier = &parameter["valueReference"]["identifier"];
                let value = identifier["value"].as_str()?;
                Some(format!("{}|{value}", identifier["system"].as_str().unwrap_or_default()))
            });
        match value {
            Some(value) => inputs.push((name.to_owned(), value)),
            None => inputs.push((name.to_owned(), String::new())),
        }
    }
    let mut wanted = Wanted::default();
    for (name, value) in inputs {
        // The IG example's `healthcareService-type=system|code` form, read as Termin reads it.
        let value = value.strip_prefix(&format!("{name}=")).unwrap_or(&value).to_owned();
        match name.as_str() {
            "healthcareService-type" => wanted.service_search.push(("service-type".into(), value)),
            "healthcareService-category" => wanted.service_search.push(("service-category".into(), value)),
            "healthcareService-specialty" => wanted.service_search.push(("specialty".into(), value)),
            "healthcareService-reference" => {
                match termin_fhir::reference_id(&value, termin_fhir::ResourceType::HealthcareService) {
                    Some(id) => wanted.service_search.push(("_id".into(), id.to_owned())),
                    None if value.contains('|') => wanted.service_search.push(("identifier".into(), value)),
                    None => wanted.ignored.push(name),
                }
            }
            "healthcareService-zipCodeArea" => wanted.zip_areas.push(value.trim().to_owned()),
            "healthcareService-location" => {
                match termin_fhir::reference_id(&value, termin_fhir::ResourceType::Location) {
                    Some(id) => wanted.location_ids.push(id.to_owned()),
                    None => wanted.ignored.push(name),
                }
            }
            "availability-until" => wanted.until = Some(value),
            "healthcareService-availability" | "near" | "near-distance" => wanted.ignored.push(name),
            _ => {}
        }
    }
    wanted.ignored.dedup();
    wanted
}

/// A resource's `Type/id`.
fn reference_of(resource: &Map<String, Value>) -> Option<String> {
    Some(format!("{}/{}", resource.get("resourceType")?.as_str()?, resource.get("id")?.as_str()?))
}

fn is_active(resource: &Map<String, Value>) -> bool {
    resource.get("active").and_then(Value::as_bool) != Some(false)
}

/// The `reference` strings of `field` (a Reference or a list of them).
fn references(resource: &Map<String, Value>, field: &str) -> Vec<String> {
    match resource.get(field) {
        Some(Value::Array(list)) => list.iter().filter_map(|r| r["reference"].as_str().map(str::to_owned)).collect(),
        Some(single) => single["reference"].as_str().map(str::to_owned).into_iter().collect(),
        None => Vec::new(),
    }
}

/// The postal codes of a Location (`address`) or an Organization (R5: `contact.address`).
fn postal_codes(resource: &Map<String, Value>) -> Vec<String> {
    let mut addresses: Vec<&Value> = resource.get("address").into_iter().collect();
    addresses.extend(
        resource.get("contact").and_then(Value::as_array).into_iter().flatten().filter_map(|c| c.get("address")),
    );
    addresses
        .into_iter()
        .flat_map(|a| match a {
            Value::Array(list) => list.iter().collect::<Vec<_>>(),
            single => vec![single],
        })
        .filter_map(|a| a["postalCode"].as_str().map(str::to_owned))
        .collect()
}

/// Everything one search found (matches and includes), by `Type/id`, following next links.
struct Found {
    matches: Vec<Map<String, Value>>,
    resources: BTreeMap<String, Map<String, Value>>,
    truncated: bool,
}

/// The sequence's requests to one upstream.
pub(crate) struct Searcher<'a> {
    pub http: &'a reqwest::Client,
    pub upstream: &'a Upstream,
    pub via: &'a [String],
}

impl Searcher<'_> {
    async fn search(&self, resource_type: &str, pairs: &[(String, String)], pages: usize) -> Result<Found, Value> {
        let mut query = {
            let mut serializer = form_urlencoded::Serializer::new(String::new());
            for (name, value) in pairs {
                serializer.append_pair(name, value);
            }
            serializer.finish()
        };
        let mut found = Found { matches: Vec::new(), resources: BTreeMap::new(), truncated: false };
        for page in 0.. {
            let request = UpstreamRequest {
                method: Method::GET,
                path: resource_type,
                query: Some(&query),
                headers: Vec::new(),
                body: None,
                via: self.via,
            };
            let name = self.upstream.name();
            let answer =
                self.upstream.send(self.http, request).await.map_err(|failure| crate::issue_json(&failure.issue))?;
            let bundle = match answer.body {
                Some(Value::Object(bundle)) if answer.status == 200 => bundle,
                _ => {
                    return Err(crate::issue_json(&Issue::warning(
                        IssueCode::Exception,
                        format!(
                            "Upstream {name} answered {} to a {resource_type} search and its providers are missing",
                            answer.status
                        ),
                    )));
                }
            };
            for entry in bundle.get("entry").and_then(Value::as_array).into_iter().flatten() {
                let Some(resource) = entry.get("resource").and_then(Value::as_object) else {
                    continue;
                };
                let Some(reference) = reference_of(resource) else {
                    continue;
                };
                if entry["search"]["mode"] != "include" && entry["search"]["mode"] != "outcome" {
                    found.matches.push(resource.clone());
                }
                found.resources.insert(reference, resource.clone());
            }
            match crate::merge::next_query(&bundle) {
                Some(next) if page + 1 < pages => query = next,
                Some(_) => {
                    found.truncated = true;
                    break;
                }
                None => break,
            }
        }
        Ok(found)
    }

    /// The earliest free slot of a Schedule in `[from, until)`: `(slot id, start)`.
    async fn earliest_free(&self, schedule: &str, from: &str, until: &str) -> Result<Option<(String, String)>, Value> {
        let pairs = [
            ("schedule", schedule.to_owned()),
            ("status", "free".to_owned()),
            ("start", format!("ge{from}")),
            ("start", format!("lt{until}")),
            ("_sort", "start".to_owned()),
            ("_count", "1".to_owned()),
        ]
        .map(|(n, v)| (n.to_owned(), v));
        let found = self.search("Slot", &pairs, 1).await?;
        Ok(found
            .matches
            .first()
            .and_then(|slot| Some((slot.get("id")?.as_str()?.to_owned(), slot.get("start")?.as_str()?.to_owned()))))
    }

    /// The `$findHSP` answer (in the upstream's own ids) for `wanted`, at time `now`.
    pub async fn find_hsp(&self, wanted: &Wanted, now: jiff::Timestamp) -> Result<Map<String, Value>, Value> {
        let name = self.upstream.name();
        let mut notes: Vec<Value> = Vec::new();
        if !wanted.ignored.is_empty() {
            notes.push(crate::issue_json(&Issue::warning(
                IssueCode::NotSupported,
                format!(
                    "Upstream {name} offers no $findHSP and is searched instead; {} not applied there",
                    wanted.ignored.join(", ")
                ),
            )));
        }
        let until = match wanted.until.as_deref() {
            Some(text) => until_instant(text).ok_or_else(|| {
                crate::issue_json(&Issue::warning(
                    IssueCode::Invalid,
                    format!("availability-until {text:?} is not a date or dateTime"),
                ))
            })?,
            None => termin_fhir::instant::format_instant(
                now.checked_add(jiff::SignedDuration::from_hours(24 * HORIZON_DAYS)).unwrap_or(now),
            ),
        };
        let from = termin_fhir::instant::format_instant(now);

        let mut service_pairs = wanted.service_search.clone();
        for include in ["HealthcareService:organization", "HealthcareService:location"] {
            service_pairs.push(("_include".into(), include.into()));
        }
        service_pairs.push(("_count".into(), PAGE.to_string()));
        let found = self.search("HealthcareService", &service_pairs, MAX_PAGES).await?;
        let mut truncated = found.truncated;
        let place_wanted = !wanted.zip_areas.is_empty() || !wanted.location_ids.is_empty();
        let at_wanted_place = |references: &[String], known: &BTreeMap<String, Map<String, Value>>| {
            references.iter().any(|reference| {
                let id = reference.rsplit('/').next().unwrap_or_default();
                (reference.starts_with("Location/") && wanted.location_ids.iter().any(|l| l == id))
                    || known.get(reference).is_some_and(|resource| {
                        postal_codes(resource)
                            .iter()
                            .any(|code| wanted.zip_areas.iter().any(|zip| code.starts_with(zip.as_str())))
                    })
            })
        };
        let services: Vec<Map<String, Value>> = found
            .matches
            .iter()
            .filter(|service| is_active(service))
            .filter(|service| {
                !place_wanted || {
                    let mut places = references(service, "location");
                    places.extend(references(service, "coverageArea"));
                    places.extend(references(service, "providedBy"));
                    at_wanted_place(&places, &found.resources)
                }
            })
            .cloned()
            .collect();
        let mut known = found.resources;
        let mut service_refs = Vec::new();
        for service in &services {
            service_refs.extend(reference_of(service));
        }

        // The roles offering the services, with their practitioners, organizations, locations.
        let mut roles_by_service: BTreeMap<String, Vec<Map<String, Value>>> = BTreeMap::new();
        for chunk in service_refs.chunks(PAGE) {
            let mut pairs = vec![("service".to_owned(), chunk.join(","))];
            for include in
                ["PractitionerRole:practitioner", "PractitionerRole:organization", "PractitionerRole:location"]
            {
                pairs.push(("_include".into(), include.into()));
            }
            pairs.push(("_count".into(), PAGE.to_string()));
            let roles = self.search("PractitionerRole", &pairs, MAX_PAGES).await?;
            truncated |= roles.truncated;
            for role in roles.matches.iter().filter(|r| is_active(r)) {
                let mut places = references(role, "location");
                places.extend(references(role, "organization"));
                for service in references(role, "healthcareService").iter().filter(|s| chunk.contains(s)) {
                    let inherits = places.is_empty();
                    if !place_wanted || inherits || at_wanted_place(&places, &roles.resources) {
                        roles_by_service.entry(service.clone()).or_default().push(role.clone());
                    }
                }
            }
            known.extend(roles.resources);
        }

        // Schedules of the roles (or their practitioners) and of the services themselves.
        let mut actors: Vec<String> = Vec::new();
        for role in roles_by_service.values().flatten() {
            actors.extend(reference_of(role));
            actors.extend(references(role, "practitioner"));
        }
        actors.sort();
        actors.dedup();
        let mut schedules: Vec<Map<String, Value>> = Vec::new();
        let mut seen = HashSet::new();
        for (parameter, values) in
            [("actor", &actors), ("actor", &service_refs), ("service-type-reference", &service_refs)]
        {
            for chunk in values.chunks(PAGE) {
                let pairs = vec![(parameter.to_owned(), chunk.join(",")), ("_count".to_owned(), PAGE.to_string())];
                let found = self.search("Schedule", &pairs, MAX_PAGES).await?;
                truncated |= found.truncated;
                for schedule in found.matches.into_iter().filter(is_active) {
                    if reference_of(&schedule).is_some_and(|r| seen.insert(r)) {
                        schedules.push(schedule);
                    }
                }
            }
        }
        if schedules.len() > MAX_SCHEDULES {
            schedules.truncate(MAX_SCHEDULES);
            truncated = true;
        }
        // Each schedule's earliest free slot: (schedule, slot id, start).
        let mut earliest: Vec<(Map<String, Value>, String, String)> = Vec::new();
        for schedule in schedules {
            let Some(reference) = reference_of(&schedule) else {
                continue;
            };
            if let Some((slot, start)) = self.earliest_free(&reference, &from, &until).await? {
                earliest.push((schedule, slot, instant_key(&start)));
            }
        }
        if truncated {
            notes.push(crate::issue_json(&Issue::warning(
                IssueCode::TooCostly,
                format!("Upstream {name} offers no $findHSP and has more providers than searching it looks at; some are missing"),
            )));
        }

        // Per service: its providers, each with its earliest free slot (the Organization's from
        // the service's own Schedules, a role's from its and its practitioner's).
        let first_of = |matches: &dyn Fn(&Map<String, Value>) -> bool| {
            earliest
                .iter()
                .filter(|(schedule, _, _)| matches(schedule))
                .min_by(|a, b| a.2.cmp(&b.2))
                .map(|(_, slot, start)| (slot.clone(), start.clone()))
        };
        let mut groups: Vec<ServiceGroup> = Vec::new();
        for service in &services {
            let Some(service_ref) = reference_of(service) else {
                continue;
            };
            let mut providers: Vec<Map<String, Value>> = Vec::new();
            let mut firsts: Vec<EarliestFree> = Vec::new();
            let organization = references(service, "providedBy").into_iter().next();
            if let Some(organization) = organization.and_then(|o| known.get(&o).cloned())
                && let Some(reference) = reference_of(&organization)
            {
                if let Some((slot, start)) = first_of(&|schedule| serves(schedule, &service_ref)) {
                    firsts.push(EarliestFree { provider: reference, slot, start });
                }
                providers.push(organization);
            }
            for role in roles_by_service.get(&service_ref).into_iter().flatten() {
                let Some(reference) = reference_of(role) else {
                    continue;
                };
                let role_actors: Vec<String> =
                    std::iter::once(reference.clone()).chain(references(role, "practitioner")).collect();
                let by_role = |schedule: &Map<String, Value>| {
                    references(schedule, "actor").iter().any(|a| role_actors.contains(a))
                };
                if let Some((slot, start)) = first_of(&by_role) {
                    firsts.push(EarliestFree { provider: reference.clone(), slot, start });
                }
                providers.push(role.clone());
                for other in references(role, "practitioner").iter().chain(&references(role, "organization")) {
                    if let Some(resource) = known.get(other) {
                        providers.push(resource.clone());
                    }
                }
            }
            let key = firsts.iter().map(|first| first.start.clone()).min();
            let name = service.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
            let mut entries = vec![json!({"resource": service, "search": {"mode": "match"}})];
            if !firsts.is_empty() {
                entries[0]["extension"] = Value::Array(firsts.iter().map(EarliestFree::extension).collect());
            }
            let mut included = HashSet::new();
            for provider in providers {
                if reference_of(&provider).is_some_and(|r| included.insert(r)) {
                    entries.push(json!({"resource": provider, "search": {"mode": "include"}}));
                }
            }
            groups.push(ServiceGroup { key, name: format!("{name}\n{service_ref}"), entries, firsts });
        }
        // As Termin's own: earliest free slot first (none last), then name, then id.
        groups.sort_by(|a, b| a.key.is_none().cmp(&b.key.is_none()).then(a.key.cmp(&b.key)).then(a.name.cmp(&b.name)));
        let mut entries = Vec::new();
        let mut shown = HashSet::new();
        for ServiceGroup { entries: group, firsts, .. } in groups {
            for entry in group {
                let reference = entry["resource"].as_object().and_then(reference_of).unwrap_or_default();
                // A provider already included with an earlier service is not repeated.
                if entry["search"]["mode"] == "match" || shown.insert(reference) {
                    entries.push(entry);
                }
            }
            for EarliestFree { provider, slot, start } in firsts {
                notes.push(json!({"severity": "information", "code": "informational",
                                  "diagnostics": format!("{provider}: earliest free slot Slot/{slot} at {start}")}));
            }
        }
        let total = entries.iter().filter(|e| e["search"]["mode"] == "match").count();
        if notes.is_empty() {
            notes.push(json!({"severity": "information", "code": "informational",
                              "diagnostics": format!("{total} HealthcareService(s) matched")}));
        }
        entries.push(
            json!({"resource": {"resourceType": "OperationOutcome", "issue": notes}, "search": {"mode": "outcome"}}),
        );
        let mut bundle = Map::new();
        bundle.insert("resourceType".into(), json!("Bundle"));
        bundle.insert("type".into(), json!("searchset"));
        bundle.insert("total".into(), json!(total));
        bundle.insert("entry".into(), Value::Array(entries));
        Ok(bundle)
    }
}

/// Whether a Schedule is the service's own: it names the service as actor or serviceType.
fn serves(schedule: &Map<String, Value>, service: &str) -> bool {
    references(schedule, "actor").iter().any(|a| a == service)
        || schedule
            .get("serviceType")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|s| s["reference"]["reference"].as_str() == Some(service))
}

/// An instant as a sortable key (UTC, as Termin's notes give it); text that is no instant
/// sorts as it is.
fn instant_key(text: &str) -> String {
    text.parse::<jiff::Timestamp>().map(termin_fhir::instant::format_instant).unwrap_or_else(|_| text.to_owned())
}

/// `availability-until` as the end of the search: a date includes that day.
fn until_instant(text: &str) -> Option<String> {
    if let Ok(instant) = text.parse::<jiff::Timestamp>() {
        return Some(termin_fhir::instant::format_instant(instant));
    }
    let date: jiff::civil::Date = text.parse().ok()?;
    let next = date.checked_add(jiff::Span::new().days(1)).ok()?;
    Some(format!("{next}T00:00:00Z"))
}

/// A provider's earliest free slot: the provider's `Type/id`, the slot's id, its start.
struct EarliestFree {
    provider: String,
    slot: String,
    start: String,
}

impl EarliestFree {
    /// The match entry's extension, as Termin's own `$findHSP` writes it.
    fn extension(&self) -> Value {
        json!({"url": EARLIEST_FREE_SLOT_URL, "extension": [
            {"url": "provider", "valueReference": {"reference": self.provider}},
            {"url": "slot", "valueReference": {"reference": format!("Slot/{}", self.slot)}},
            {"url": "start", "valueInstant": self.start},
        ]})
    }
}

/// One matched service: its sort key (earliest free slot), name, entries and providers' slots.
struct ServiceGroup {
    key: Option<String>,
    name: String,
    entries: Vec<Value>,
    firsts: Vec<EarliestFree>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn find_hsp_inputs_become_searches() {
        let parameters = json!({"resourceType": "Parameters", "parameter": [
            {"name": "healthcareService-zipCodeArea", "valueString": "53"},
            {"name": "healthcareService-location", "valueReference": {"reference": "Location/loc-1"}},
            {"name": "healthcareService-availability", "valueAvailability": {}}]});
        let wanted = wanted(
            &pairs(&[
                ("healthcareService-type", "healthcareService-type=urn:st|65"),
                ("healthcareService-reference", "HealthcareService/h1"),
                ("_count", "5"),
            ]),
            Some(&parameters),
        );
        assert_eq!(wanted.service_search, pairs(&[("service-type", "urn:st|65"), ("_id", "h1")]));
        assert_eq!(wanted.zip_areas, ["53"]);
        assert_eq!(wanted.location_ids, ["loc-1"]);
        assert_eq!(wanted.ignored, ["healthcareService-availability"]);
    }

    #[test]
    fn dates_end_after_their_day() {
        assert_eq!(until_instant("2027-03-22").as_deref(), Some("2027-03-23T00:00:00Z"));
        assert_eq!(until_instant("2027-03-22T10:00:00+01:00").as_deref(), Some("2027-03-22T09:00:00.000Z"));
        assert!(until_instant("soon").is_none());
        let organization: Map<String, Value> =
            serde_json::from_value(json!({"contact": [{"address": {"postalCode": "5020"}}]})).unwrap();
        assert_eq!(postal_codes(&organization), ["5020"]);
    }
}
