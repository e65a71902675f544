//! `HealthcareService/$findHSP`: the active HealthcareServices matching the wanted codes, and
//! their providers — the `providedBy` Organization and the PractitionerRoles offering the
//! service (with their Practitioner and Organization) — filtered by place and time, with the
//! earliest free slot each provider has in the wanted time.
//!
//! What is matched:
//! - services: `healthcareService-reference` (must exist and be active), an inline
//!   HealthcareService (its `type`, `category` and `specialty` codings), or the codes given;
//!   `active` true or absent;
//! - place: wanted places are the given Locations (reference or identifier), plus, for each
//!   zip code area, the Locations whose `address.postalCode` and the Organizations whose
//!   `contact.address.postalCode` start with it (`53` covers 5300–5399). The service's own
//!   Organization matches when the service's `location`/`coverageArea` or that Organization is
//!   a wanted place; a role matches when one of its `location`s or its `organization` is, and a
//!   role naming neither inherits the service's match;
//! - time: wanted `Availability` values are expanded over the next [`PLANNING_HORIZON_DAYS`]
//!   days in the server's time zone; a provider matches when its declared `availability` (the
//!   role's, else the service's) overlaps them, or — declared or not — when it has a free slot
//!   inside them;
//! - free slots: Slots with status free (expired holds count as free) of active Schedules whose
//!   `actor` is the role or its Practitioner (for the Organization: the HealthcareService, or
//!   Schedules whose `serviceType` references it), starting within the horizon.
//!
//! Order: services by their providers' earliest free slot (none last), then name, then id.

pub mod availability;

use crate::{DomainError, ResourceService};
use availability::Interval;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};
use termin_fhir::instant::format_instant;
use termin_fhir::{Issue, IssueCode, ResourceType};
use termin_store::{
    Condition, Filter, IndexKind, RangeEnd, RangePoint, RangeTest, ReferenceMatch, RequestContext, ResourceVersion,
    SearchRequest, SortKey, SortParam, StringMatch, SystemMatch, TokenMatch,
};

/// How far ahead availability and free slots are looked at.
pub const PLANNING_HORIZON_DAYS: i64 = 28;
/// Resources read per internal search (services, roles, schedules of one provider).
const BATCH: usize = 1000;
/// Free slots examined per provider when looking for one inside the wanted time.
const SLOTS_EXAMINED: usize = 200;

/// A Location named by id or by identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationSelector {
    Id(String),
    Identifier { system: Option<String>, value: String },
}

#[derive(Debug, Clone, Default)]
pub struct ProviderQuery {
    pub service_reference: Option<String>,
    pub service_resource: Option<Map<String, Value>>,
    pub categories: Vec<TokenMatch>,
    pub types: Vec<TokenMatch>,
    pub specialties: Vec<TokenMatch>,
    pub locations: Vec<LocationSelector>,
    pub zip_areas: Vec<String>,
    pub availability: Vec<Value>,
}

impl ProviderQuery {
    fn names_a_service(&self) -> bool {
        self.service_reference.is_some()
            || self.service_resource.is_some()
            || !self.categories.is_empty()
            || !self.types.is_empty()
            || !self.specialties.is_empty()
    }
}

/// Where the client wants the service.
#[derive(Debug, Clone, Default)]
struct Places {
    locations: Vec<String>,
    organizations: Vec<String>,
}

/// One matching service and its matching providers, in order.
#[derive(Debug, Clone)]
pub struct ServiceMatch {
    pub service: ResourceVersion,
    /// Organization, PractitionerRole and Practitioner resources, without repeats.
    pub providers: Vec<ResourceVersion>,
    pub earliest_free: Option<Timestamp>,
    /// The sort key: position-independent, so it can serve as a paging cursor.
    pub rank: String,
}

#[derive(Debug, Clone)]
pub struct ProviderMatches {
    pub services: Vec<ServiceMatch>,
    /// Information and warnings for the client (earliest free slots, unmatched zip codes).
    pub notes: Vec<Issue>,
}

fn body(version: &ResourceVersion) -> Map<String, Value> {
    version
        .body
        .as_deref()
        .and_then(crate::scheduling::model::parse_object)
        .unwrap_or_default()
}

fn references(resource: &Map<String, Value>, element: &str, target: ResourceType) -> Vec<String> {
    let values: Vec<&Value> = match resource.get(element) {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(single) => vec![single],
        None => Vec::new(),
    };
    values
        .into_iter()
        .filter_map(|r| r.get("reference").and_then(Value::as_str))
        .filter_map(|r| crate::scheduling::model::reference_id(r, target))
        .collect()
}

fn active_only() -> Condition {
    Condition::Not(Box::new(Condition::TokenAny {
        param: "active".into(),
        alternatives: vec![TokenMatch { system: SystemMatch::Any, code: Some("false".into()) }],
    }))
}

fn refers_to(param: &str, target: ResourceType, ids: &[String]) -> Condition {
    Condition::ReferenceAny {
        param: param.into(),
        alternatives: ids
            .iter()
            .map(|id| ReferenceMatch::Local { target_type: Some(target.as_str().into()), id: id.clone(), version: None })
            .collect(),
    }
}

/// The AT service-type ValueSet's canonical URLs, which the IG's `$findHSP` example uses as if
/// they were a code system; read leniently as the code system the ValueSet includes.
const SERVICE_TYPE_VALUE_SETS: [&str; 2] = [
    "https://fhir.hl7.at/tc/wg/scheduling/r5/ValueSet/AtSchedulingServiceType",
    "http://hl7.at/fhir/TC-FHIR-AG-Scheduling-R5/R5/ValueSet/AtSchedulingServiceType",
];
const SERVICE_TYPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/service-type";

fn lenient_service_type(token: &TokenMatch) -> TokenMatch {
    match &token.system {
        SystemMatch::Exactly(system) if SERVICE_TYPE_VALUE_SETS.contains(&system.as_str()) => TokenMatch {
            system: SystemMatch::Exactly(SERVICE_TYPE_SYSTEM.into()),
            code: token.code.clone(),
        },
        _ => token.clone(),
    }
}

fn codings_of(resource: &Map<String, Value>, element: &str) -> Vec<TokenMatch> {
    resource
        .get(element)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|concept| concept["coding"].as_array().into_iter().flatten())
        .filter_map(|coding| {
            let code = coding["code"].as_str()?;
            Some(TokenMatch {
                system: coding["system"].as_str().map_or(SystemMatch::Any, |s| SystemMatch::Exactly(s.into())),
                code: Some(code.into()),
            })
        })
        .collect()
}

impl ResourceService {
    async fn find(
        &self,
        ctx: &RequestContext,
        resource_type: ResourceType,
        conditions: Vec<Condition>,
        sort: Vec<SortKey>,
        count: usize,
    ) -> Result<Vec<ResourceVersion>, DomainError> {
        let request = SearchRequest {
            resource_type,
            filter: Filter { conditions, now: self.clock().now(), server_base: None },
            sort,
            count,
            page: None,
            total: false,
            includes: Vec::new(),
            revincludes: Vec::new(),
        };
        Ok(self.search(ctx, &request).await?.matches)
    }

    async fn read_live(&self, ctx: &RequestContext, resource_type: ResourceType, id: &str) -> Option<ResourceVersion> {
        self.read(ctx, resource_type, id).await.ok()
    }

    /// Answers `$findHSP`.
    pub async fn find_providers(&self, ctx: &RequestContext, query: &ProviderQuery) -> Result<ProviderMatches, DomainError> {
        if !query.names_a_service() {
            return Err(DomainError::invalid(
                Issue::error(
                    IssueCode::Required,
                    "Say which service: healthcareService-reference (a reference or an inline HealthcareService), \
                     or healthcareService-category, -type or -specialty as system|code",
                )
                .at("Parameters.parameter"),
            ));
        }
        let zone = termin_search::registry().time_zone().clone();
        let now = self.clock().now();
        let until = now + SignedDuration::from_hours(24 * PLANNING_HORIZON_DAYS);
        let wanted: Vec<Interval> = if query.availability.is_empty() {
            vec![(now, until)]
        } else {
            availability::expand(&query.availability, now, until, &zone)
        };
        let mut notes = Vec::new();
        let services = self.matching_services(ctx, query).await?;
        let places = self.wanted_locations(ctx, query, &mut notes).await?;
        let mut matches = Vec::new();
        for service in services {
            let service_body = body(&service);
            let service_places: Vec<String> = references(&service_body, "location", ResourceType::Location)
                .into_iter()
                .chain(references(&service_body, "coverageArea", ResourceType::Location))
                .collect();
            let service_orgs = references(&service_body, "providedBy", ResourceType::Organization);
            let in_place = |locations: &[String], organizations: &[String]| match &places {
                None => true,
                Some(wanted) => {
                    locations.iter().any(|l| wanted.locations.contains(l))
                        || organizations.iter().any(|o| wanted.organizations.contains(o))
                }
            };
            let service_in_place = in_place(&service_places, &service_orgs);
            let mut providers: Vec<(Option<Timestamp>, Vec<ResourceVersion>)> = Vec::new();
            // The PractitionerRoles offering the service.
            let roles = self
                .find(
                    ctx,
                    ResourceType::PractitionerRole,
                    vec![refers_to("service", ResourceType::HealthcareService, std::slice::from_ref(&service.id)), active_only()],
                    Vec::new(),
                    BATCH,
                )
                .await?;
            for role in roles {
                let role_body = body(&role);
                let role_places = references(&role_body, "location", ResourceType::Location);
                let role_orgs = references(&role_body, "organization", ResourceType::Organization);
                let place_ok = if role_places.is_empty() && role_orgs.is_empty() {
                    service_in_place
                } else {
                    in_place(&role_places, &role_orgs)
                };
                if !place_ok {
                    continue;
                }
                let practitioner = references(&role_body, "practitioner", ResourceType::Practitioner);
                let schedules = self
                    .schedules_for(ctx, &[
                        ("actor", ResourceType::PractitionerRole, std::slice::from_ref(&role.id)),
                        ("actor", ResourceType::Practitioner, &practitioner),
                    ])
                    .await?;
                let free = self.earliest_free_slot(ctx, &schedules, &wanted, now, until).await?;
                if !time_fits(&service_body, Some(&role_body), free.as_ref(), query, &wanted, now, until, &zone) {
                    continue;
                }
                note_free(&mut notes, &format!("PractitionerRole/{}", role.id), free.as_ref());
                let mut group = vec![role];
                for id in practitioner {
                    group.extend(self.read_live(ctx, ResourceType::Practitioner, &id).await);
                }
                for id in role_orgs {
                    group.extend(self.read_live(ctx, ResourceType::Organization, &id).await);
                }
                providers.push((free.map(|f| f.0), group));
            }
            // The service's own Organization.
            if service_in_place
                && let Some(org_id) = service_orgs.first()
                && let Some(org) = self.read_live(ctx, ResourceType::Organization, org_id).await
            {
                let this_service = std::slice::from_ref(&service.id);
                let schedules = self
                    .schedules_for(ctx, &[
                        ("actor", ResourceType::HealthcareService, this_service),
                        ("service-type-reference", ResourceType::HealthcareService, this_service),
                    ])
                    .await?;
                let free = self.earliest_free_slot(ctx, &schedules, &wanted, now, until).await?;
                // The operator of a service whose roles serve at the wanted time serves then too.
                let roles_fit = !providers.is_empty();
                if roles_fit || time_fits(&service_body, None, free.as_ref(), query, &wanted, now, until, &zone) {
                    note_free(&mut notes, &format!("Organization/{}", org.id), free.as_ref());
                    providers.push((free.as_ref().map(|f| f.0), vec![org]));
                }
            }
            if providers.is_empty() {
                continue;
            }
            providers.sort_by_key(|(free, group)| (free.is_none(), *free, group[0].id.clone()));
            let earliest_free = providers.iter().filter_map(|(free, _)| *free).min();
            let mut flat: Vec<ResourceVersion> = Vec::new();
            for resource in providers.into_iter().flat_map(|(_, group)| group) {
                if !flat.iter().any(|r| r.resource_type == resource.resource_type && r.id == resource.id) {
                    flat.push(resource);
                }
            }
            let name = service_body.get("name").and_then(Value::as_str).unwrap_or_default().to_lowercase();
            let rank = format!(
                "{}|{}|{name}|{}",
                u8::from(earliest_free.is_none()),
                earliest_free.map(format_instant).unwrap_or_default(),
                service.id
            );
            matches.push(ServiceMatch { service, providers: flat, earliest_free, rank });
        }
        matches.sort_by(|a, b| a.rank.cmp(&b.rank));
        if matches.is_empty() {
            notes.push(Issue::warning(IssueCode::NotFound, "No provider offers the service at the wanted place and time"));
        }
        Ok(ProviderMatches { services: matches, notes })
    }

    async fn matching_services(&self, ctx: &RequestContext, query: &ProviderQuery) -> Result<Vec<ResourceVersion>, DomainError> {
        let referenced = match (&query.service_reference, &query.service_resource) {
            (Some(reference), _) => Some(reference.clone()),
            (None, Some(inline)) => inline
                .get("id")
                .and_then(Value::as_str)
                .map(|id| format!("HealthcareService/{id}")),
            _ => None,
        };
        if let Some(reference) = referenced {
            let known = crate::scheduling::model::reference_id(&reference, ResourceType::HealthcareService);
            let found = match &known {
                Some(id) => self.read_live(ctx, ResourceType::HealthcareService, id).await,
                None => None,
            };
            match found {
                Some(service) if crate::scheduling::model::is_active(&body(&service)) => return Ok(vec![service]),
                Some(service) => {
                    return Err(DomainError::unprocessable(
                        Issue::error(IssueCode::BusinessRule, format!("HealthcareService/{} is not active", service.id))
                            .at("Parameters.parameter.where(name = 'healthcareService-reference')"),
                    ));
                }
                // An inline resource unknown here is matched by its codes below.
                None if query.service_resource.is_some() && query.service_reference.is_none() => {}
                None => {
                    return Err(DomainError::unprocessable(
                        Issue::error(IssueCode::NotFound, format!("{reference} is not known to this server"))
                            .at("Parameters.parameter.where(name = 'healthcareService-reference')"),
                    ));
                }
            }
        }
        let mut conditions = vec![active_only()];
        let inline = query.service_resource.as_ref();
        for (param, given, element) in [
            ("service-category", &query.categories, "category"),
            ("service-type", &query.types, "type"),
            ("specialty", &query.specialties, "specialty"),
        ] {
            let mut alternatives: Vec<TokenMatch> = given.iter().map(lenient_service_type).collect();
            if let Some(inline) = inline {
                alternatives.extend(codings_of(inline, element));
            }
            if !alternatives.is_empty() {
                conditions.push(Condition::TokenAny { param: param.into(), alternatives });
            }
        }
        if conditions.len() == 1 {
            return Err(DomainError::invalid(
                Issue::error(IssueCode::Required, "The inline HealthcareService carries no type, category or specialty code")
                    .at("Parameters.parameter.where(name = 'healthcareService-reference')"),
            ));
        }
        self.find(ctx, ResourceType::HealthcareService, conditions, Vec::new(), BATCH).await
    }

    /// The wanted places, or `None` when place does not matter.
    async fn wanted_locations(
        &self,
        ctx: &RequestContext,
        query: &ProviderQuery,
        notes: &mut Vec<Issue>,
    ) -> Result<Option<Places>, DomainError> {
        if query.locations.is_empty() && query.zip_areas.is_empty() {
            return Ok(None);
        }
        let mut wanted = Places::default();
        for selector in &query.locations {
            let found = match selector {
                LocationSelector::Id(id) => self.read_live(ctx, ResourceType::Location, id).await.into_iter().collect(),
                LocationSelector::Identifier { system, value } => {
                    let token = TokenMatch {
                        system: system.clone().map_or(SystemMatch::Any, SystemMatch::Exactly),
                        code: Some(value.clone()),
                    };
                    self.find(
                        ctx,
                        ResourceType::Location,
                        vec![Condition::TokenAny { param: "identifier".into(), alternatives: vec![token] }],
                        Vec::new(),
                        BATCH,
                    )
                    .await?
                }
            };
            if found.is_empty() {
                notes.push(Issue::warning(IssueCode::NotFound, format!("Location {selector:?} is not known here")));
            }
            wanted.locations.extend(found.into_iter().map(|l| l.id));
        }
        for zip in &query.zip_areas {
            let by_zip = || {
                vec![Condition::StringAny {
                    param: "address-postalcode".into(),
                    alternatives: vec![StringMatch::StartsWith(zip.trim().to_lowercase())],
                }]
            };
            let locations = self.find(ctx, ResourceType::Location, by_zip(), Vec::new(), BATCH).await?;
            let organizations = self.find(ctx, ResourceType::Organization, by_zip(), Vec::new(), BATCH).await?;
            if locations.is_empty() && organizations.is_empty() {
                notes.push(Issue::warning(
                    IssueCode::NotFound,
                    format!("zip code {zip} matched no Location and no Organization address"),
                ));
            }
            wanted.locations.extend(locations.into_iter().map(|l| l.id));
            wanted.organizations.extend(organizations.into_iter().map(|o| o.id));
        }
        Ok(Some(wanted))
    }

    /// Active Schedules referring through `param` to any of the targets; one search per
    /// parameter, so that each is driven by its reference index.
    async fn schedules_for(
        &self,
        ctx: &RequestContext,
        by: &[(&str, ResourceType, &[String])],
    ) -> Result<Vec<String>, DomainError> {
        let mut ids: Vec<String> = Vec::new();
        for (param, target, targets) in by {
            if targets.is_empty() {
                continue;
            }
            let schedules = self
                .find(ctx, ResourceType::Schedule, vec![refers_to(param, *target, targets), active_only()], Vec::new(), BATCH)
                .await?;
            for schedule in schedules {
                if !ids.contains(&schedule.id) {
                    ids.push(schedule.id);
                }
            }
        }
        Ok(ids)
    }

    /// The first free slot of these schedules inside the wanted time: `(start, slot id)`.
    async fn earliest_free_slot(
        &self,
        ctx: &RequestContext,
        schedules: &[String],
        wanted: &[Interval],
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<(Timestamp, String)>, DomainError> {
        if schedules.is_empty() {
            return Ok(None);
        }
        let starts_within = Condition::RangeAny {
            param: "start".into(),
            kind: IndexKind::Date,
            alternatives: vec![RangeTest::All(vec![
                RangeTest::Bound {
                    end: RangeEnd::Low,
                    comparison: termin_store::Comparison::GreaterOrEqual,
                    point: RangePoint::Instant(Some(now)),
                },
                RangeTest::Bound {
                    end: RangeEnd::Low,
                    comparison: termin_store::Comparison::Less,
                    point: RangePoint::Instant(Some(until)),
                },
            ])],
        };
        let slots = self
            .find(
                ctx,
                ResourceType::Slot,
                vec![
                    refers_to("schedule", ResourceType::Schedule, schedules),
                    Condition::TokenAny {
                        param: "status".into(),
                        alternatives: vec![TokenMatch { system: SystemMatch::Any, code: Some("free".into()) }],
                    },
                    starts_within,
                ],
                vec![SortKey { param: SortParam::Indexed { param: "start".into(), kind: IndexKind::Date }, descending: false }],
                SLOTS_EXAMINED,
            )
            .await?;
        Ok(slots.into_iter().find_map(|slot| {
            let slot_body = body(&slot);
            let start = crate::scheduling::model::instant(&slot_body, "start")?;
            let end = crate::scheduling::model::instant(&slot_body, "end")?;
            availability::contains(wanted, start, end).then_some((start, slot.id))
        }))
    }
}

/// Whether a provider can serve at the wanted time: a free slot inside it, or declared
/// availability (the role's, else the service's) overlapping it.
#[allow(clippy::too_many_arguments)]
fn time_fits(
    service: &Map<String, Value>,
    role: Option<&Map<String, Value>>,
    free: Option<&(Timestamp, String)>,
    query: &ProviderQuery,
    wanted: &[Interval],
    now: Timestamp,
    until: Timestamp,
    zone: &jiff::tz::TimeZone,
) -> bool {
    if query.availability.is_empty() || free.is_some() {
        return true;
    }
    let declared = role
        .and_then(|r| r.get("availability"))
        .or_else(|| service.get("availability"))
        .and_then(Value::as_array);
    match declared {
        Some(declared) => availability::overlaps(&availability::expand(declared, now, until, zone), wanted),
        None => false,
    }
}

fn note_free(notes: &mut Vec<Issue>, provider: &str, free: Option<&(Timestamp, String)>) {
    if let Some((start, slot)) = free {
        notes.push(Issue::information(format!(
            "{provider}: earliest free slot Slot/{slot} at {}",
            format_instant(*start)
        )));
    }
}
