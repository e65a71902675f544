//! `HealthcareService/$findHSP`: the active HealthcareServices matching the wanted codes, and
//! their providers — the `providedBy` Organization and the PractitionerRoles offering the
//! service (with their Practitioner and Organization) — filtered by place and time, with the
//! earliest free slot each provider has in the wanted time.
//!
//! What is matched:
//! - services: `healthcareService-reference` (by id or business identifier; must exist, be the
//!   only one with that identifier, and be active), an inline
//!   HealthcareService (its `type`, `category` and `specialty` codings), or the codes given;
//!   `active` true or absent;
//! - place: wanted places are the given Locations (reference or identifier), plus, for each
//!   zip code area, the Locations whose `address.postalCode` and the Organizations whose
//!   `contact.address.postalCode` start with it (`53` covers 5300–5399). The service's own
//!   Organization matches when the service's `location`/`coverageArea` or that Organization is
//!   a wanted place; a role matches when one of its `location`s or its `organization` is, and a
//!   role naming neither inherits the service's match. These place references count when they
//!   are relative (`Location/l1`), as the search index reads them: an absolute URL names a
//!   resource of another server, even with the same id. Near a point (`near`) or a wanted
//!   Location that has a `position`, every Location whose `position` lies within the radius
//!   (great-circle distance) is a wanted place too;
//! - time: wanted `Availability` values are expanded up to the horizon — `availability-until`
//!   when given (at most [`MAX_PLANNING_HORIZON_DAYS`] ahead), else the next
//!   [`PLANNING_HORIZON_DAYS`] days — in the server's time zone; a provider matches when its declared `availability` (the
//!   role's, else the service's) overlaps them, or — declared or not — when it has a free slot
//!   inside them;
//! - free slots: Slots with status free (expired holds count as free) of active Schedules whose
//!   `actor` is the role or its Practitioner (for the Organization: the HealthcareService, or
//!   Schedules whose `serviceType` references it), starting within the horizon.
//!
//! Order: services by their nearest matching provider's distance when a near search gives one
//! (none last), then by their providers' earliest free slot (none last), then name, then id.

pub mod availability;

use crate::DomainError;
use crate::caller::Caller;
use crate::kernel::Kernel;
use availability::Interval;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use termin_fhir::geo::{self as near, Near, Point};
use termin_fhir::instant::format_instant;
use termin_fhir::{Issue, IssueCode, ResourceType};
use termin_store::{
    Comparison, Condition, Filter, IndexKind, Keyset, RangeEnd, RangePoint, RangeTest, ReferenceMatch, ResourceVersion,
    SearchPage, SearchRequest, SortKey, SortParam, StringMatch, SystemMatch, TokenMatch,
};

/// How far ahead availability and free slots are looked at unless the client says.
pub const PLANNING_HORIZON_DAYS: i64 = 28;
/// The furthest ahead a client may ask to look (`availability-until`): the expanded weekly
/// patterns and the slot searches grow with it.
pub const MAX_PLANNING_HORIZON_DAYS: i64 = 90;
/// Resources read per page of an internal search.
const BATCH: usize = 1000;
/// Ids named as alternatives in one internal search, each a bound parameter: well within the
/// databases' limits on parameters per statement.
const IDS_PER_SEARCH: usize = 500;
/// Free slots read per page while looking for one schedule's earliest: the first almost always
/// fits (only its end or the horizon's open end can rule it out), so a page stays small.
const FREE_SLOTS_PER_PROBE: usize = 4;

/// A Location named by id or by identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationSelector {
    Id(String),
    Identifier { system: Option<String>, value: String },
}

/// A business identifier, as a Reference's `identifier` names a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessIdentifier {
    pub system: Option<String>,
    pub value: String,
}

#[derive(Debug, Clone, Default)]
pub struct ProviderQuery {
    pub service_reference: Option<String>,
    pub service_identifier: Option<BusinessIdentifier>,
    pub service_resource: Option<Map<String, Value>>,
    pub categories: Vec<TokenMatch>,
    pub types: Vec<TokenMatch>,
    pub specialties: Vec<TokenMatch>,
    pub locations: Vec<LocationSelector>,
    pub zip_areas: Vec<String>,
    pub availability: Vec<Value>,
    /// Termin's `availability-until`: a date or dateTime ending the search, as given.
    pub until: Option<String>,
    /// Termin's `near`: the point providers should be near.
    pub near: Option<Point>,
    /// How far from `near` and from the wanted Locations' positions counts as near; by default
    /// [`near::DEFAULT_NEAR_RADIUS_KM`].
    pub radius_km: Option<f64>,
}

impl ProviderQuery {
    fn names_a_service(&self) -> bool {
        self.service_reference.is_some()
            || self.service_identifier.is_some()
            || self.service_resource.is_some()
            || !self.categories.is_empty()
            || !self.types.is_empty()
            || !self.specialties.is_empty()
    }
}

/// Where the client wants the service: sets, as a near search or a wide zip area can want
/// thousands of Locations, each looked up per provider.
#[derive(Debug, Clone, Default)]
struct Places {
    locations: HashSet<String>,
    organizations: HashSet<String>,
    /// Of the wanted Locations found near a point, their distance from it in km.
    distances: HashMap<String, f64>,
}

impl Places {
    /// The distance of the nearest of these Locations, when a near search measured one.
    fn distance(&self, locations: &[String]) -> Option<f64> {
        locations.iter().filter_map(|l| self.distances.get(l)).copied().min_by(f64::total_cmp)
    }
}

/// One matching service and its matching providers, in order.
#[derive(Debug, Clone)]
pub struct ServiceMatch {
    pub service: ResourceVersion,
    /// Organization, PractitionerRole and Practitioner resources, without repeats.
    pub providers: Vec<ResourceVersion>,
    pub earliest_free: Option<Timestamp>,
    /// Each provider's earliest free slot in the wanted time; providers without one are absent.
    pub earliest_free_slots: Vec<EarliestFreeSlot>,
    /// The sort key: position-independent, so it can serve as a paging cursor.
    pub rank: String,
}

#[derive(Debug, Clone)]
pub struct ProviderMatches {
    pub services: Vec<ServiceMatch>,
    /// Information and warnings for the client (earliest free slots, unmatched zip codes).
    pub notes: Vec<Issue>,
}

/// A provider's earliest free Slot for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarliestFreeSlot {
    /// `PractitionerRole/id` or `Organization/id`.
    pub provider: String,
    pub slot_id: String,
    pub start: Timestamp,
}

fn body(version: &ResourceVersion) -> Map<String, Value> {
    version.body.as_deref().and_then(crate::model::parse_object).unwrap_or_default()
}

/// The values of an element that may repeat.
fn listed<'a>(resource: &'a Map<String, Value>, element: &str) -> Vec<&'a Value> {
    match resource.get(element) {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(single) => vec![single],
        None => Vec::new(),
    }
}

fn references(resource: &Map<String, Value>, element: &str, target: ResourceType) -> Vec<String> {
    listed(resource, element)
        .into_iter()
        .filter_map(|r| r.get("reference").and_then(Value::as_str))
        .filter_map(|r| crate::model::reference_id(r, target))
        .collect()
}

/// The resources on this server that References point at, as the search index sees them: only
/// relative literal references, since the internal searches name no server base. Used to tell
/// which of the ids a batched search asked for a found resource refers to.
fn local_targets<'a>(references: Vec<&'a Value>) -> impl Iterator<Item = (ResourceType, String)> + 'a {
    references.into_iter().filter_map(|r| {
        let literal = termin_fhir::parse_literal(r.get("reference")?.as_str()?)?;
        let target = literal.resource_type.parse().ok()?;
        literal.base.is_none().then(|| (target, literal.id.to_owned()))
    })
}

/// The ids of the `target` resources on this server an element's References name: relative
/// literal references only, as the search index (and so a search for the wanted places) sees
/// them.
fn local_references(resource: &Map<String, Value>, element: &str, target: ResourceType) -> Vec<String> {
    local_targets(listed(resource, element)).filter(|(named, _)| *named == target).map(|(_, id)| id).collect()
}

fn active_only() -> Condition {
    Condition::Not(Box::new(Condition::TokenAny {
        param: "active".into(),
        alternatives: vec![TokenMatch { system: SystemMatch::Any, code: Some("false".into()) }],
    }))
}

fn local_reference(target: ResourceType, id: &str) -> ReferenceMatch {
    ReferenceMatch::Local { target_type: Some(target.as_str().into()), id: id.into(), version: None }
}

fn refers_to(param: &str, target: ResourceType, ids: &[String]) -> Condition {
    Condition::ReferenceAny {
        param: param.into(),
        alternatives: ids.iter().map(|id| local_reference(target, id)).collect(),
    }
}

/// A Schedule reference parameter that ties a Schedule to a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ScheduleParam {
    Actor,
    ServiceTypeReference,
}

impl ScheduleParam {
    fn name(self) -> &'static str {
        match self {
            ScheduleParam::Actor => "actor",
            ScheduleParam::ServiceTypeReference => "service-type-reference",
        }
    }

    /// The References of a Schedule the parameter indexes.
    fn references(self, schedule: &Map<String, Value>) -> Vec<&Value> {
        match self {
            ScheduleParam::Actor => listed(schedule, "actor"),
            ScheduleParam::ServiceTypeReference => {
                listed(schedule, "serviceType").into_iter().filter_map(|concept| concept.get("reference")).collect()
            }
        }
    }
}

/// A provider's Schedules are those that refer to `target/id` through `param`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ScheduleLink {
    param: ScheduleParam,
    target: ResourceType,
    id: String,
}

/// The Schedules of a service's own Organization: the service's, or ones offering it.
fn operator_schedule_links(service_id: &str) -> Vec<ScheduleLink> {
    [ScheduleParam::Actor, ScheduleParam::ServiceTypeReference]
        .map(|param| ScheduleLink { param, target: ResourceType::HealthcareService, id: service_id.into() })
        .into()
}

/// A free slot: its start and id.
type FreeSlot = (Timestamp, String);

/// The wanted places as search conditions, for the searches to leave out services and roles
/// elsewhere; only when they are few enough to name in one search (a near search or a wide zip
/// area can want thousands, which are then checked in memory only).
struct PlaceConditions {
    locations: Vec<String>,
    organizations: Vec<String>,
}

impl PlaceConditions {
    fn of(places: &Places) -> Option<PlaceConditions> {
        let sorted = |ids: &HashSet<String>| ids.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        (places.locations.len() + places.organizations.len() <= IDS_PER_SEARCH).then(|| PlaceConditions {
            locations: sorted(&places.locations),
            organizations: sorted(&places.organizations),
        })
    }

    /// Any of the reference conditions that are not empty; `None` when all are.
    fn any(conditions: impl IntoIterator<Item = Option<Condition>>) -> Option<Condition> {
        let conditions: Vec<Condition> = conditions.into_iter().flatten().collect();
        (!conditions.is_empty()).then_some(Condition::Any(conditions))
    }

    fn refer(param: &str, target: ResourceType, ids: &[String]) -> Option<Condition> {
        (!ids.is_empty()).then(|| refers_to(param, target, ids))
    }

    /// A HealthcareService at a wanted place: its `location` or `coverageArea` is a wanted
    /// Location, or its `providedBy` a wanted Organization.
    fn service(&self) -> Option<Condition> {
        Self::any([
            Self::refer("location", ResourceType::Location, &self.locations),
            Self::refer("coverage-area", ResourceType::Location, &self.locations),
            Self::refer("organization", ResourceType::Organization, &self.organizations),
        ])
    }

    /// Conditions for a PractitionerRole at a wanted place (`location` or `organization`), or
    /// offering one of `services` (at a wanted place themselves, whose place a role naming none
    /// inherits); a role meeting any of them may be at a wanted place.
    fn role(&self, services: &[String]) -> Vec<Condition> {
        [
            Self::refer("location", ResourceType::Location, &self.locations),
            Self::refer("organization", ResourceType::Organization, &self.organizations),
            Self::refer("service", ResourceType::HealthcareService, services),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// A PractitionerRole found for a service, and its parsed body.
struct RoleFound {
    role: ResourceVersion,
    body: Map<String, Value>,
}

/// A role offering a matching service at a wanted place.
struct RoleCandidate {
    role: ResourceVersion,
    body: Map<String, Value>,
    practitioners: Vec<String>,
    organizations: Vec<String>,
    /// Its distance from the point of a near search.
    distance: Option<f64>,
}

impl RoleCandidate {
    /// The role's Schedules, and its Practitioner's.
    fn schedule_links(&self) -> Vec<ScheduleLink> {
        let role = ScheduleLink {
            param: ScheduleParam::Actor,
            target: ResourceType::PractitionerRole,
            id: self.role.id.clone(),
        };
        let practitioners = self.practitioners.iter().map(|id| ScheduleLink {
            param: ScheduleParam::Actor,
            target: ResourceType::Practitioner,
            id: id.clone(),
        });
        std::iter::once(role).chain(practitioners).collect()
    }
}

/// A matching service and its providers at a wanted place, before time is looked at.
struct ServiceCandidate {
    service: ResourceVersion,
    body: Map<String, Value>,
    roles: Vec<RoleCandidate>,
    /// The id of the service's own Organization and the distance of the service's Locations,
    /// when the service is at a wanted place.
    operator: Option<(String, Option<f64>)>,
}

/// A matching service's providers that serve at the wanted place and time, with their
/// earliest free slots.
struct Serving {
    service: ResourceVersion,
    body: Map<String, Value>,
    roles: Vec<(RoleCandidate, Option<FreeSlot>)>,
    operator: Option<(String, Option<f64>, Option<FreeSlot>)>,
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
        SystemMatch::Exactly(system) if SERVICE_TYPE_VALUE_SETS.contains(&system.as_str()) => {
            TokenMatch { system: SystemMatch::Exactly(SERVICE_TYPE_SYSTEM.into()), code: token.code.clone() }
        }
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

/// `$findHSP`: which providers offer a service, where and when.
pub struct ProviderService {
    kernel: Arc<Kernel>,
}

impl ProviderService {
    pub(crate) fn over(kernel: Arc<Kernel>) -> Self {
        ProviderService { kernel }
    }

    async fn find_page(
        &self,
        ctx: &Caller,
        resource_type: ResourceType,
        conditions: Vec<Condition>,
        sort: Vec<SortKey>,
        count: usize,
        after: Option<Keyset>,
    ) -> Result<SearchPage, DomainError> {
        let request = SearchRequest {
            resource_type,
            filter: Filter { conditions, now: self.kernel.clock.now(), server_base: None },
            sort,
            count,
            page: after,
            total: false,
            includes: Vec::new(),
            revincludes: Vec::new(),
        };
        self.kernel.search(ctx, &request).await
    }

    async fn find(
        &self,
        ctx: &Caller,
        resource_type: ResourceType,
        conditions: Vec<Condition>,
        sort: Vec<SortKey>,
        count: usize,
    ) -> Result<Vec<ResourceVersion>, DomainError> {
        Ok(self.find_page(ctx, resource_type, conditions, sort, count, None).await?.matches)
    }

    /// Every match, in id order, read page by page.
    async fn find_all(
        &self,
        ctx: &Caller,
        resource_type: ResourceType,
        conditions: Vec<Condition>,
    ) -> Result<Vec<ResourceVersion>, DomainError> {
        let mut found = Vec::new();
        let mut after = None;
        loop {
            let page = self.find_page(ctx, resource_type, conditions.clone(), Vec::new(), BATCH, after).await?;
            found.extend(page.matches);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(found),
            }
        }
    }

    /// The current resource, `None` when it is unknown, deleted or not the caller's to see;
    /// a storage failure is an error, not an absence.
    async fn read_live(
        &self,
        ctx: &Caller,
        resource_type: ResourceType,
        id: &str,
    ) -> Result<Option<ResourceVersion>, DomainError> {
        match self.kernel.read(ctx, resource_type, id).await {
            Ok(version) => Ok(Some(version)),
            Err(DomainError::NotFound(_) | DomainError::Gone(_) | DomainError::Forbidden(_)) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// The current resources with these ids, by id; unknown and deleted ones are left out.
    async fn read_all(
        &self,
        ctx: &Caller,
        resource_type: ResourceType,
        ids: BTreeSet<String>,
    ) -> Result<HashMap<String, ResourceVersion>, DomainError> {
        let ids: Vec<String> = ids.into_iter().collect();
        let mut found = HashMap::new();
        for chunk in ids.chunks(IDS_PER_SEARCH) {
            for version in self.find_all(ctx, resource_type, vec![Condition::IdIn(chunk.to_vec())]).await? {
                found.insert(version.id.clone(), version);
            }
        }
        Ok(found)
    }

    /// Answers `$findHSP`. The providers of all matching services are looked at together, a
    /// few searches in all rather than several per provider.
    pub async fn find_providers(&self, ctx: &Caller, query: &ProviderQuery) -> Result<ProviderMatches, DomainError> {
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
        let zone = self.kernel.search.time_zone().clone();
        let now = self.kernel.clock.now();
        let until = horizon(query.until.as_deref(), now, &zone)?;
        let wanted: Vec<Interval> = if query.availability.is_empty() {
            vec![(now, until)]
        } else {
            availability::expand(&query.availability, now, until, &zone)
        };
        let mut notes = Vec::new();
        let services = self.matching_services(ctx, query).await?;
        let places = self.wanted_locations(ctx, query, &mut notes).await?;
        let candidates = self.placed_providers(ctx, services, places.as_ref()).await?;

        let links: Vec<ScheduleLink> = candidates
            .iter()
            .flat_map(|candidate| {
                let role_links = candidate.roles.iter().flat_map(RoleCandidate::schedule_links);
                let operator_links =
                    candidate.operator.iter().flat_map(|_| operator_schedule_links(&candidate.service.id));
                role_links.chain(operator_links)
            })
            .collect();
        let schedules = self.schedules_linked(ctx, &links).await?;
        let schedule_ids: Vec<String> =
            schedules.values().flatten().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        let earliest_by_schedule = self.earliest_free_slots(ctx, &schedule_ids, &wanted, until).await?;
        let earliest_free = |links: &[ScheduleLink]| -> Option<FreeSlot> {
            links
                .iter()
                .filter_map(|link| schedules.get(link))
                .flatten()
                .filter_map(|schedule| earliest_by_schedule.get(schedule))
                .min()
                .cloned()
        };

        let mut serving = Vec::new();
        for candidate in candidates {
            let fits = |role: Option<&Map<String, Value>>, free: Option<&FreeSlot>| {
                time_fits(&candidate.body, role, free, query, &wanted, now, until, &zone)
            };
            let roles: Vec<(RoleCandidate, Option<FreeSlot>)> = candidate
                .roles
                .into_iter()
                .map(|role| {
                    let free = earliest_free(&role.schedule_links());
                    (role, free)
                })
                .filter(|(role, free)| fits(Some(&role.body), free.as_ref()))
                .collect();
            let operator = candidate.operator.and_then(|(organization, distance)| {
                let free = earliest_free(&operator_schedule_links(&candidate.service.id));
                // The operator of a service whose roles serve at the wanted time serves then too.
                (!roles.is_empty() || fits(None, free.as_ref())).then_some((organization, distance, free))
            });
            serving.push(Serving { service: candidate.service, body: candidate.body, roles, operator });
        }

        let mut practitioner_ids = BTreeSet::new();
        let mut organization_ids = BTreeSet::new();
        for providers in &serving {
            for (role, _) in &providers.roles {
                practitioner_ids.extend(role.practitioners.iter().cloned());
                organization_ids.extend(role.organizations.iter().cloned());
            }
            organization_ids.extend(providers.operator.iter().map(|(id, ..)| id.clone()));
        }
        let practitioners = self.read_all(ctx, ResourceType::Practitioner, practitioner_ids).await?;
        let organizations = self.read_all(ctx, ResourceType::Organization, organization_ids).await?;

        let mut matches = Vec::new();
        for Serving { service, body: service_body, roles, operator } in serving {
            let mut providers: Vec<(Option<u64>, Option<Timestamp>, Vec<ResourceVersion>)> = Vec::new();
            let mut earliest_free_slots = Vec::new();
            for (role, free) in roles {
                note_free(
                    &mut notes,
                    &mut earliest_free_slots,
                    format!("PractitionerRole/{}", role.role.id),
                    free.as_ref(),
                );
                let mut group = vec![role.role];
                group.extend(role.practitioners.iter().filter_map(|id| practitioners.get(id).cloned()));
                group.extend(role.organizations.iter().filter_map(|id| organizations.get(id).cloned()));
                providers.push((role.distance.map(metres), free.map(|f| f.0), group));
            }
            if let Some((organization, distance, free)) = operator
                && let Some(org) = organizations.get(&organization)
            {
                note_free(&mut notes, &mut earliest_free_slots, format!("Organization/{}", org.id), free.as_ref());
                providers.push((distance.map(metres), free.map(|f| f.0), vec![org.clone()]));
            }
            if providers.is_empty() {
                continue;
            }
            providers.sort_by_key(|(distance, free, group)| {
                (distance.is_none(), *distance, free.is_none(), *free, group[0].id.clone())
            });
            let nearest = providers.iter().filter_map(|(distance, ..)| *distance).min();
            let earliest_free = providers.iter().filter_map(|(_, free, _)| *free).min();
            let mut flat: Vec<ResourceVersion> = Vec::new();
            for resource in providers.into_iter().flat_map(|(.., group)| group) {
                if !flat.iter().any(|r| r.resource_type == resource.resource_type && r.id == resource.id) {
                    flat.push(resource);
                }
            }
            let name = service_body.get("name").and_then(Value::as_str).unwrap_or_default().to_lowercase();
            let rank = format!(
                "{}|{:09}|{}|{}|{name}|{}",
                u8::from(nearest.is_none()),
                nearest.unwrap_or_default(),
                u8::from(earliest_free.is_none()),
                earliest_free.map(format_instant).unwrap_or_default(),
                service.id
            );
            matches.push(ServiceMatch { service, providers: flat, earliest_free, earliest_free_slots, rank });
        }
        matches.sort_by(|a, b| a.rank.cmp(&b.rank));
        if matches.is_empty() {
            notes.push(Issue::warning(
                IssueCode::NotFound,
                "No provider offers the service at the wanted place and time",
            ));
        }
        Ok(ProviderMatches { services: matches, notes })
    }

    async fn matching_services(
        &self,
        ctx: &Caller,
        query: &ProviderQuery,
    ) -> Result<Vec<ResourceVersion>, DomainError> {
        if let Some(identifier) = &query.service_identifier {
            return self.service_by_identifier(ctx, identifier).await.and_then(active_service);
        }
        let referenced = match (&query.service_reference, &query.service_resource) {
            (Some(reference), _) => Some(reference.clone()),
            (None, Some(inline)) => {
                inline.get("id").and_then(Value::as_str).map(|id| format!("HealthcareService/{id}"))
            }
            _ => None,
        };
        if let Some(reference) = referenced {
            let known = crate::model::reference_id(&reference, ResourceType::HealthcareService);
            let found = match &known {
                Some(id) => self.read_live(ctx, ResourceType::HealthcareService, id).await?,
                None => None,
            };
            match found {
                Some(service) => return active_service(service),
                // An inline resource unknown here is matched by its codes below.
                None if query.service_resource.is_some() && query.service_reference.is_none() => {}
                None => {
                    return Err(DomainError::unprocessable(
                        Issue::error(IssueCode::NotFound, format!("{reference} is not known to this server"))
                            .at(SERVICE_REFERENCE_INPUT),
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
                Issue::error(
                    IssueCode::Required,
                    "The inline HealthcareService carries no type, category or specialty code",
                )
                .at(SERVICE_REFERENCE_INPUT),
            ));
        }
        self.find(ctx, ResourceType::HealthcareService, conditions, Vec::new(), BATCH).await
    }

    /// The one HealthcareService with this business identifier.
    async fn service_by_identifier(
        &self,
        ctx: &Caller,
        identifier: &BusinessIdentifier,
    ) -> Result<ResourceVersion, DomainError> {
        let token = TokenMatch {
            system: identifier.system.clone().map_or(SystemMatch::Any, SystemMatch::Exactly),
            code: Some(identifier.value.clone()),
        };
        let condition = Condition::TokenAny { param: "identifier".into(), alternatives: vec![token] };
        // Two tell "several" from "one".
        let mut found = self.find(ctx, ResourceType::HealthcareService, vec![condition], Vec::new(), 2).await?;
        let named = match &identifier.system {
            Some(system) => format!("{system}|{}", identifier.value),
            None => identifier.value.clone(),
        };
        let problem = match found.len() {
            1 => return Ok(found.remove(0)),
            0 => Issue::error(IssueCode::NotFound, format!("No HealthcareService has the identifier {named}")),
            _ => Issue::error(
                IssueCode::MultipleMatches,
                format!("Several HealthcareServices have the identifier {named}; name one by reference"),
            ),
        };
        Err(DomainError::unprocessable(problem.at(SERVICE_REFERENCE_INPUT)))
    }

    /// The wanted places, or `None` when place does not matter.
    async fn wanted_locations(
        &self,
        ctx: &Caller,
        query: &ProviderQuery,
        notes: &mut Vec<Issue>,
    ) -> Result<Option<Places>, DomainError> {
        if query.locations.is_empty() && query.zip_areas.is_empty() && query.near.is_none() {
            return Ok(None);
        }
        let radius_km = query.radius_km.unwrap_or(near::DEFAULT_NEAR_RADIUS_KM);
        let mut centres: Vec<Near> = query.near.iter().map(|&centre| Near { centre, radius_km }).collect();
        let mut wanted = Places::default();
        for selector in &query.locations {
            let found = match selector {
                LocationSelector::Id(id) => {
                    self.read_live(ctx, ResourceType::Location, id).await?.into_iter().collect()
                }
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
            centres
                .extend(found.iter().filter_map(|l| near::position(&body(l))).map(|centre| Near { centre, radius_km }));
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
        if !centres.is_empty() {
            // The position index finds the Locations within some radius; the distance decides
            // which centre each is nearest to.
            let areas = centres.iter().map(|&area| Condition::Near { param: "near".into(), area }).collect();
            for location in self.find_all(ctx, ResourceType::Location, vec![Condition::Any(areas)]).await? {
                if let Some(distance) = near::position(&body(&location)).and_then(|at| near::nearest(&centres, at)) {
                    wanted.distances.insert(location.id.clone(), distance);
                    wanted.locations.insert(location.id);
                }
            }
            if query.near.is_some() && wanted.distances.is_empty() {
                notes.push(Issue::warning(
                    IssueCode::NotFound,
                    format!("No Location with a position lies within {radius_km} km"),
                ));
            }
        }
        Ok(Some(wanted))
    }

    /// The roles of the services (and the services' own Organizations) that are at a wanted
    /// place. When the wanted places are few enough to name in a search, the searches ask for
    /// the services at a wanted place and for the roles at one (or of such a service) only, so
    /// that the roles and services elsewhere are neither read nor parsed; the rules below still
    /// decide, the searches only leave out what they cannot match.
    async fn placed_providers(
        &self,
        ctx: &Caller,
        services: Vec<ResourceVersion>,
        places: Option<&Places>,
    ) -> Result<Vec<ServiceCandidate>, DomainError> {
        let in_place = |locations: &[String], organizations: &[String]| match places {
            None => true,
            Some(wanted) => {
                locations.iter().any(|l| wanted.locations.contains(l))
                    || organizations.iter().any(|o| wanted.organizations.contains(o))
            }
        };
        let service_ids: Vec<String> = services.iter().map(|s| s.id.clone()).collect();
        let searched = places.and_then(PlaceConditions::of);
        let services_at_place = match &searched {
            Some(conditions) => Some(self.services_at_place(ctx, &service_ids, conditions).await?),
            None => None,
        };
        let mut roles_of =
            self.roles_offering(ctx, &service_ids, searched.as_ref(), services_at_place.as_ref()).await?;
        let mut candidates = Vec::with_capacity(services.len());
        for service in services {
            let roles_offered = roles_of.remove(&service.id).unwrap_or_default();
            // Neither the service nor any of its roles is at a wanted place: no provider.
            if roles_offered.is_empty() && services_at_place.as_ref().is_some_and(|at| !at.contains(&service.id)) {
                continue;
            }
            let service_body = body(&service);
            let service_places: Vec<String> = local_references(&service_body, "location", ResourceType::Location)
                .into_iter()
                .chain(local_references(&service_body, "coverageArea", ResourceType::Location))
                .collect();
            let service_in_place =
                in_place(&service_places, &local_references(&service_body, "providedBy", ResourceType::Organization));
            let mut roles = Vec::new();
            for RoleFound { role, body: role_body } in roles_offered {
                let organizations = references(&role_body, "organization", ResourceType::Organization);
                let inherits =
                    references(&role_body, "location", ResourceType::Location).is_empty() && organizations.is_empty();
                let role_places = local_references(&role_body, "location", ResourceType::Location);
                let place_ok = if inherits {
                    service_in_place
                } else {
                    in_place(&role_places, &local_references(&role_body, "organization", ResourceType::Organization))
                };
                if place_ok {
                    let practitioners = references(&role_body, "practitioner", ResourceType::Practitioner);
                    let distance =
                        places.and_then(|p| p.distance(if inherits { &service_places } else { &role_places }));
                    roles.push(RoleCandidate { role, body: role_body, practitioners, organizations, distance });
                }
            }
            let operator = references(&service_body, "providedBy", ResourceType::Organization)
                .into_iter()
                .next()
                .filter(|_| service_in_place)
                .map(|organization| (organization, places.and_then(|p| p.distance(&service_places))));
            candidates.push(ServiceCandidate { service, body: service_body, roles, operator });
        }
        Ok(candidates)
    }

    /// Which of these services are at a wanted place by their own `location`, `coverageArea`
    /// or `providedBy`, as the index sees them.
    async fn services_at_place(
        &self,
        ctx: &Caller,
        services: &[String],
        places: &PlaceConditions,
    ) -> Result<HashSet<String>, DomainError> {
        let mut at_place = HashSet::new();
        let Some(at_wanted_place) = places.service() else { return Ok(at_place) };
        for chunk in services.chunks(IDS_PER_SEARCH) {
            let conditions = vec![Condition::IdIn(chunk.to_vec()), at_wanted_place.clone()];
            at_place.extend(
                self.find_all(ctx, ResourceType::HealthcareService, conditions).await?.into_iter().map(|s| s.id),
            );
        }
        Ok(at_place)
    }

    /// The active PractitionerRoles offering each of these services, in id order, each body
    /// parsed once. With place conditions, only the roles at a wanted place and the roles of
    /// `services_at_place` (which may inherit their service's place).
    async fn roles_offering(
        &self,
        ctx: &Caller,
        services: &[String],
        places: Option<&PlaceConditions>,
        services_at_place: Option<&HashSet<String>>,
    ) -> Result<HashMap<String, Vec<RoleFound>>, DomainError> {
        let mut roles_of: HashMap<String, Vec<RoleFound>> = HashMap::new();
        for chunk in services.chunks(IDS_PER_SEARCH) {
            let offering = refers_to("service", ResourceType::HealthcareService, chunk);
            let found = match places {
                None => self.find_all(ctx, ResourceType::PractitionerRole, vec![offering, active_only()]).await?,
                Some(places) => {
                    let inheriting: Vec<String> = chunk
                        .iter()
                        .filter(|id| services_at_place.is_some_and(|at| at.contains(*id)))
                        .cloned()
                        .collect();
                    // One search per kind of place, each led by its (short) list of wanted
                    // places, so that its index drives it rather than the list of services.
                    let mut found = BTreeMap::new();
                    for leading in places.role(&inheriting) {
                        let conditions = vec![leading, offering.clone(), active_only()];
                        for role in self.find_all(ctx, ResourceType::PractitionerRole, conditions).await? {
                            found.insert(role.id.clone(), role);
                        }
                    }
                    found.into_values().collect()
                }
            };
            for role in found {
                let role_body = body(&role);
                let offered: BTreeSet<String> = local_targets(listed(&role_body, "healthcareService"))
                    .filter(|(target, id)| *target == ResourceType::HealthcareService && chunk.contains(id))
                    .map(|(_, id)| id)
                    .collect();
                let offered: Vec<String> = offered.into_iter().collect();
                if let Some((last, others)) = offered.split_last() {
                    for service in others {
                        let found = RoleFound { role: role.clone(), body: role_body.clone() };
                        roles_of.entry(service.clone()).or_default().push(found);
                    }
                    roles_of.entry(last.clone()).or_default().push(RoleFound { role, body: role_body });
                }
            }
        }
        Ok(roles_of)
    }

    /// The active Schedules referring to each link's target through its parameter. Each
    /// parameter gets its own searches, so that its reference index drives them.
    async fn schedules_linked(
        &self,
        ctx: &Caller,
        links: &[ScheduleLink],
    ) -> Result<HashMap<ScheduleLink, Vec<String>>, DomainError> {
        let mut schedules: HashMap<ScheduleLink, Vec<String>> = HashMap::new();
        for param in [ScheduleParam::Actor, ScheduleParam::ServiceTypeReference] {
            let targets: Vec<&ScheduleLink> =
                links.iter().filter(|link| link.param == param).collect::<HashSet<_>>().into_iter().collect();
            for chunk in targets.chunks(IDS_PER_SEARCH) {
                let wanted: HashSet<&ScheduleLink> = chunk.iter().copied().collect();
                let referring = Condition::ReferenceAny {
                    param: param.name().into(),
                    alternatives: chunk.iter().map(|link| local_reference(link.target, &link.id)).collect(),
                };
                for schedule in self.find_all(ctx, ResourceType::Schedule, vec![referring, active_only()]).await? {
                    let named: BTreeSet<(ResourceType, String)> =
                        local_targets(param.references(&body(&schedule))).collect();
                    for (target, id) in named {
                        let link = ScheduleLink { param, target, id };
                        if wanted.contains(&link) {
                            schedules.entry(link).or_default().push(schedule.id.clone());
                        }
                    }
                }
            }
        }
        Ok(schedules)
    }

    /// The earliest free slot inside the wanted time of each of these schedules: per schedule,
    /// one search that the scheduling projection answers with one range of its index, read in
    /// start order and stopped after a few entries, so the cost does not grow with the number
    /// of slots a schedule holds. (One search over all schedules sorted by start read every
    /// slot of all of them: tens of thousands at 1M slots.)
    async fn earliest_free_slots(
        &self,
        ctx: &Caller,
        schedules: &[String],
        wanted: &[Interval],
        until: Timestamp,
    ) -> Result<HashMap<String, FreeSlot>, DomainError> {
        let mut earliest: HashMap<String, FreeSlot> = HashMap::new();
        if wanted.is_empty() {
            return Ok(earliest);
        }
        let bound = |comparison, instant| RangeTest::Bound {
            end: RangeEnd::Low,
            comparison,
            point: RangePoint::Instant(Some(instant)),
        };
        // Only a slot starting inside a wanted interval can lie inside it (the intervals lie
        // within the horizon); its end, and the horizon's open end, are checked below.
        let starts_when_wanted = Condition::RangeAny {
            param: "start".into(),
            kind: IndexKind::Date,
            alternatives: wanted
                .iter()
                .map(|&(from, to)| {
                    RangeTest::All(vec![bound(Comparison::GreaterOrEqual, from), bound(Comparison::LessOrEqual, to)])
                })
                .collect(),
        };
        let free = Condition::TokenAny {
            param: "status".into(),
            alternatives: vec![TokenMatch { system: SystemMatch::Any, code: Some("free".into()) }],
        };
        let by_start =
            SortKey { param: SortParam::Indexed { param: "start".into(), kind: IndexKind::Date }, descending: false };
        for schedule in schedules {
            // One schedule reference and the start: the pair the projection holds.
            let conditions = vec![
                refers_to("schedule", ResourceType::Schedule, std::slice::from_ref(schedule)),
                starts_when_wanted.clone(),
                free.clone(),
            ];
            let mut after = None;
            loop {
                let page = self
                    .find_page(
                        ctx,
                        ResourceType::Slot,
                        conditions.clone(),
                        vec![by_start.clone()],
                        FREE_SLOTS_PER_PROBE,
                        after,
                    )
                    .await?;
                // In start order, the first slot that fits is the schedule's earliest.
                let first_fitting = page.matches.into_iter().find_map(|slot| {
                    let slot_body = body(&slot);
                    let start = crate::model::instant(&slot_body, "start")?;
                    let end = crate::model::instant(&slot_body, "end")?;
                    (start < until && availability::contains(wanted, start, end)).then_some((start, slot.id))
                });
                if let Some(found) = first_fitting {
                    earliest.insert(schedule.clone(), found);
                    break;
                }
                let Some(next) = page.next else { break };
                after = Some(next);
            }
        }
        Ok(earliest)
    }
}

/// Whether a provider can serve at the wanted time: a free slot inside it, or declared
/// availability (the role's, else the service's) overlapping it.
#[allow(clippy::too_many_arguments)]
fn time_fits(
    service: &Map<String, Value>,
    role: Option<&Map<String, Value>>,
    free: Option<&FreeSlot>,
    query: &ProviderQuery,
    wanted: &[Interval],
    now: Timestamp,
    until: Timestamp,
    zone: &jiff::tz::TimeZone,
) -> bool {
    if query.availability.is_empty() || free.is_some() {
        return true;
    }
    let declared =
        role.and_then(|r| r.get("availability")).or_else(|| service.get("availability")).and_then(Value::as_array);
    match declared {
        Some(declared) => availability::overlaps(&availability::expand(declared, now, until, zone), wanted),
        None => false,
    }
}

const SERVICE_REFERENCE_INPUT: &str = "Parameters.parameter.where(name = 'healthcareService-reference')";

/// A service named by the client must be active.
fn active_service(service: ResourceVersion) -> Result<Vec<ResourceVersion>, DomainError> {
    if crate::model::is_active(&body(&service)) {
        return Ok(vec![service]);
    }
    Err(DomainError::unprocessable(
        Issue::error(IssueCode::BusinessRule, format!("HealthcareService/{} is not active", service.id))
            .at(SERVICE_REFERENCE_INPUT),
    ))
}

/// A distance in whole metres, for ordering and the paging cursor.
fn metres(km: f64) -> u64 {
    (km * 1000.0).round() as u64
}

/// The end of the time looked at: `availability-until` (a date ends with that day), or the
/// default horizon.
fn horizon(until: Option<&str>, now: Timestamp, zone: &jiff::tz::TimeZone) -> Result<Timestamp, DomainError> {
    let Some(text) = until else {
        return Ok(now + SignedDuration::from_hours(24 * PLANNING_HORIZON_DAYS));
    };
    let at_input = "Parameters.parameter.where(name = 'availability-until')";
    let Some(end) = availability::period_bound(text.trim(), zone, true) else {
        return Err(DomainError::invalid(
            Issue::error(
                IssueCode::Invalid,
                format!("availability-until must be a FHIR date or dateTime, got {text:?}"),
            )
            .at(at_input),
        ));
    };
    if end <= now {
        return Err(DomainError::invalid(
            Issue::error(IssueCode::Invalid, format!("availability-until {text} is not in the future")).at(at_input),
        ));
    }
    if end > now + SignedDuration::from_hours(24 * MAX_PLANNING_HORIZON_DAYS) {
        return Err(DomainError::invalid(
            Issue::error(
                IssueCode::TooCostly,
                format!("availability-until {text} is more than {MAX_PLANNING_HORIZON_DAYS} days ahead, the furthest this server looks"),
            )
            .at(at_input),
        ));
    }
    Ok(end)
}

/// Records a provider's earliest free slot, for people (a note) and programs (structured).
fn note_free(notes: &mut Vec<Issue>, earliest: &mut Vec<EarliestFreeSlot>, provider: String, free: Option<&FreeSlot>) {
    if let Some((start, slot)) = free {
        notes.push(Issue::information(format!(
            "{provider}: earliest free slot Slot/{slot} at {}",
            format_instant(*start)
        )));
        earliest.push(EarliestFreeSlot { provider, slot_id: slot.clone(), start: *start });
    }
}

#[cfg(test)]
mod tests;
