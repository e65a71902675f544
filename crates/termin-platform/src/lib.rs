//! Central scheduling platform mode (the AT Scheduling IG's second scenario): Termin as a
//! Scheduling Server towards clients and a Scheduling Client towards the upstream Scheduling
//! Servers it aggregates — practices' systems, hospitals, other platforms in a cascade.
//!
//! Owns: the upstream configuration and clients ([`upstream`]: timeouts, bearer and OAuth 2.0
//! client-credentials tokens), the identity scheme that routes requests by id ([`ids`]: the
//! platform id `NAME.id`), which sources a search goes to ([`Platform::plan`]), fetching and
//! localizing upstream pages, merging pages with stateless cursors ([`merge`]), relaying
//! requests and their answers ([`Platform::relay`]), matching a patient at the target server
//! ([`Platform::patient_at`]), loop detection ([`via`]) and the optional cache of upstream
//! pages ([`cache`]: off by default, so free slots are never older than the request).
//!
//! Depends on `termin-fhir` only; the HTTP glue (which requests go where, the platform's own
//! data as one more source) is `termin-api`'s.

pub mod cache;
pub mod ids;
pub mod merge;
pub mod upstream;
pub mod via;

use merge::{Group, SourcePage};
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue, LOCATION};
use serde_json::{Map, Value, json};
use std::time::Duration;
use termin_fhir::{Issue, IssueCode, ResourceType};
pub use upstream::{Answer, Unreachable, Upstream, UpstreamAuth, UpstreamConfig, UpstreamRequest};

/// Types whose searches fan out to every upstream: the directory and the free slots.
pub const AGGREGATED: [ResourceType; 7] = [
    ResourceType::HealthcareService,
    ResourceType::PractitionerRole,
    ResourceType::Practitioner,
    ResourceType::Organization,
    ResourceType::Location,
    ResourceType::Schedule,
    ResourceType::Slot,
];

/// The Austrian social security number's identifier system, by which patients are matched at
/// the target server.
pub const SVNR_SYSTEM: &str = "urn:oid:1.2.40.0.10.1.4.3.1";

#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// This platform's name in cascade chains ([`via`]); unique among cascaded platforms.
    pub name: String,
    pub upstreams: Vec<UpstreamConfig>,
    /// How long upstream pages of directory searches are reused (zero: not cached).
    pub directory_ttl: Duration,
    /// How long upstream pages of Slot searches and `$findHSP` are reused (zero: not cached;
    /// at most [`cache::MAX_SLOT_TTL`]).
    pub slot_ttl: Duration,
}

pub struct Platform {
    name: String,
    /// Highest priority first, then by name.
    upstreams: Vec<Upstream>,
    http: reqwest::Client,
    cache: cache::PageCache,
    directory_ttl: Duration,
    slot_ttl: Duration,
}

/// Which sources a search goes to, each with its query.
pub struct Plan<'a> {
    /// The platform's own data, if it can match.
    pub local: Option<Vec<(String, String)>>,
    pub upstreams: Vec<(&'a Upstream, Vec<(String, String)>)>,
}

/// A relayed request that got no answer, or an answer the caller must pass on as it is.
#[derive(Debug)]
pub enum RelayError {
    Unreachable(Unreachable),
    Answered(Answer),
}

impl Platform {
    pub fn new(config: PlatformConfig) -> Result<Self, String> {
        if config.slot_ttl > cache::MAX_SLOT_TTL {
            return Err(format!(
                "slot_cache_ttl must be at most {} s: free slots must not be kept beyond a short time",
                cache::MAX_SLOT_TTL.as_secs()
            ));
        }
        let mut upstreams = Vec::new();
        for upstream in config.upstreams {
            let upstream = upstream.checked()?;
            if upstreams.iter().any(|u: &Upstream| u.name() == upstream.name) {
                return Err(format!("upstream name {} is used twice", upstream.name));
            }
            upstreams.push(Upstream::new(upstream));
        }
        upstreams.sort_by(|a, b| b.config.priority.cmp(&a.config.priority).then(a.name().cmp(b.name())));
        let http = reqwest::Client::builder()
            .no_proxy()
            // An upstream's redirect would take the platform's credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the upstream HTTP client: {e}"))?;
        Ok(Platform {
            name: config.name,
            upstreams,
            http,
            cache: cache::PageCache::new(),
            directory_ttl: config.directory_ttl,
            slot_ttl: config.slot_ttl,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn upstreams(&self) -> &[Upstream] {
        &self.upstreams
    }

    pub fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.name() == name)
    }

    /// The upstream owning a platform id, and the id there.
    pub fn owner<'a>(&self, id: &'a str) -> Option<(&Upstream, &'a str)> {
        let upstream = self.upstream(ids::scope_of(id)?)?;
        Some((upstream, ids::unscoped(upstream.name(), id)?))
    }

    /// Which sources a search of `resource_type` goes to. A reference value `Type/NAME.x` (or
    /// `_id=NAME.x`) can only match at upstream `NAME`, an unscoped one (`Type/x`, `_id=x`)
    /// only in the platform's own data; a source is asked when every parameter keeps at least
    /// one value it can match, with the values it cannot left out (and its own prefixes
    /// removed). Without such values, searches of the [`AGGREGATED`] types go
    /// to every source and others stay local.
    pub fn plan(&self, resource_type: ResourceType, pairs: &[(String, String)]) -> Plan<'_> {
        let names_upstream = pairs.iter().any(|(name, value)| {
            value.split(',').any(|v| ids::named_scope(v, name == "_id").is_some_and(|s| self.upstream(s).is_some()))
        });
        if !names_upstream && !AGGREGATED.contains(&resource_type) {
            return Plan { local: Some(pairs.to_vec()), upstreams: Vec::new() };
        }
        let for_source = |source: Option<&Upstream>| -> Option<Vec<(String, String)>> {
            let mut kept = Vec::new();
            for (name, value) in pairs {
                let bare_ids = name == "_id";
                let alternatives: Vec<String> = value
                    .split(',')
                    .filter_map(|v| {
                        let scope = ids::named_scope(v, bare_ids).filter(|s| self.upstream(s).is_some());
                        match (scope, source) {
                            // An upstream's resource matches only there.
                            (Some(scope), Some(upstream)) if upstream.name() == scope => {
                                ids::delocalize_search_value(v, scope, bare_ids)
                            }
                            (Some(_), _) => None,
                            // An unscoped id or reference names the platform's own resource.
                            (None, Some(_)) if ids::is_id_value(v, bare_ids) => None,
                            (None, _) => Some(v.to_owned()),
                        }
                    })
                    .collect();
                if alternatives.is_empty() {
                    return None;
                }
                kept.push((name.clone(), alternatives.join(",")));
            }
            Some(kept)
        };
        Plan {
            local: for_source(None),
            upstreams: self.upstreams.iter().filter_map(|u| Some((u, for_source(Some(u))?))).collect(),
        }
    }

    /// One page of a type search at an upstream, localized.
    pub async fn search_page(
        &self,
        upstream: &Upstream,
        resource_type: ResourceType,
        query: &str,
        via: &[String],
        public_base: &str,
    ) -> Result<SourcePage, Value> {
        let ttl = if resource_type == ResourceType::Slot { self.slot_ttl } else { self.directory_ttl };
        let key = format!("{}\n{resource_type}\n{query}\n{public_base}", upstream.name());
        if let Some(page) = self.cache.get(&key, ttl) {
            return Ok(page);
        }
        let request = UpstreamRequest {
            method: Method::GET,
            path: resource_type.as_str(),
            query: Some(query),
            headers: Vec::new(),
            body: None,
            via,
        };
        let bundle = self.fetch_bundle(upstream, request, public_base).await?;
        let (groups, issues) = merge::search_groups(&bundle);
        let page = SourcePage {
            groups,
            next_query: merge::next_query(&bundle),
            total: bundle.get("total").and_then(Value::as_u64),
            issues: named_issues(upstream.name(), issues),
        };
        self.cache.put(key, &page, ttl);
        Ok(page)
    }

    /// One page of `$findHSP` at an upstream (GET with `query`, or POST of `parameters`),
    /// localized.
    pub async fn find_hsp_page(
        &self,
        upstream: &Upstream,
        query: &str,
        parameters: Option<&Value>,
        via: &[String],
        public_base: &str,
    ) -> Result<SourcePage, Value> {
        let body_text = parameters.map(Value::to_string).unwrap_or_default();
        let key = format!("{}\n$findHSP\n{query}\n{body_text}\n{public_base}", upstream.name());
        if let Some(page) = self.cache.get(&key, self.slot_ttl) {
            return Ok(page);
        }
        let mut body = parameters.cloned();
        if let Some(body) = body.as_mut() {
            ids::delocalize(body, upstream.name());
        }
        let request = UpstreamRequest {
            method: if body.is_some() { Method::POST } else { Method::GET },
            path: "HealthcareService/$findHSP",
            query: Some(query),
            headers: Vec::new(),
            body: body.as_ref(),
            via,
        };
        let bundle = self.fetch_bundle(upstream, request, public_base).await?;
        let mut page = find_hsp_page(&bundle, Some(upstream.name()));
        page.issues = named_issues(upstream.name(), page.issues);
        self.cache.put(key, &page, self.slot_ttl);
        Ok(page)
    }

    /// Sends a request whose answer must be a Bundle; anything else is the issue saying why not.
    async fn fetch_bundle(
        &self,
        upstream: &Upstream,
        request: UpstreamRequest<'_>,
        public_base: &str,
    ) -> Result<Map<String, Value>, Value> {
        let name = upstream.name().to_owned();
        let answer = upstream.send(&self.http, request).await.map_err(|failure| issue_json(&failure.issue))?;
        match answer.body {
            Some(Value::Object(mut bundle)) if answer.status == 200 && bundle.get("resourceType") == Some(&json!("Bundle")) => {
                localize_bundle(&mut bundle, upstream, public_base);
                Ok(bundle)
            }
            body => {
                let told = body
                    .as_ref()
                    .map(merge::outcome_issues)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|i| i["diagnostics"].as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                Err(issue_json(&Issue::warning(
                    IssueCode::Exception,
                    format!("Upstream {name} answered {} and its results are missing: {told}", answer.status),
                )))
            }
        }
    }

    /// Relays a request to the upstream owning what it names: the body loses the upstream's
    /// prefixes on the way there, the answer gains them on the way back (body, `Location`,
    /// `Content-Location`); status and other headers are the upstream's.
    pub async fn relay(
        &self,
        upstream: &Upstream,
        request: UpstreamRequest<'_>,
        public_base: &str,
    ) -> Result<Answer, Unreachable> {
        let mut body = request.body.cloned();
        if let Some(body) = body.as_mut() {
            ids::delocalize(body, upstream.name());
        }
        let mut answer = upstream.send(&self.http, UpstreamRequest { body: body.as_ref(), ..request }).await?;
        if let Some(Value::Object(body)) = answer.body.as_mut() {
            let mut value = Value::Object(std::mem::take(body));
            ids::localize(&mut value, upstream.name(), upstream.base(), public_base);
            if let Value::Object(localized) = value {
                *body = localized;
            }
            match body.get("resourceType").and_then(Value::as_str) {
                Some("Bundle") => {
                    mark_sources(body, upstream);
                    localize_links(body, upstream, public_base);
                }
                Some("OperationOutcome" | "Parameters") | None => {}
                Some(_) => mark_source(body, upstream),
            }
        }
        for header in [LOCATION, reqwest::header::CONTENT_LOCATION] {
            let localized = answer
                .headers
                .get(&header)
                .and_then(|v| v.to_str().ok())
                .and_then(|url| localized_url(url, upstream, public_base))
                .and_then(|url| HeaderValue::from_str(&url).ok());
            if let Some(value) = localized {
                answer.headers.insert(header, value);
            }
        }
        Ok(answer)
    }

    /// The patient's id at `upstream`: matched there by SVNR (else by its first identifier
    /// with system and value) with a conditional create, so the patient is created only when
    /// the target does not know them yet.
    pub async fn patient_at(
        &self,
        upstream: &Upstream,
        patient: &Map<String, Value>,
        via: &[String],
    ) -> Result<String, RelayError> {
        let mut body = patient.clone();
        body.shift_remove("id");
        body.shift_remove("meta");
        let body = Value::Object(body);
        let identifiers: Vec<(&str, &str)> = patient
            .get("identifier")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|i| Some((i.get("system")?.as_str()?, i.get("value")?.as_str()?)))
            .collect();
        let matching = identifiers.iter().find(|(system, _)| *system == SVNR_SYSTEM).or(identifiers.first());
        let mut headers = Vec::new();
        if let Some((system, value)) = matching {
            let mut criteria = form_urlencoded::Serializer::new(String::new());
            criteria.append_pair("identifier", &format!("{system}|{value}"));
            if let Ok(value) = HeaderValue::from_str(&criteria.finish()) {
                headers.push((HeaderName::from_static("if-none-exist"), value));
            }
        }
        let request = UpstreamRequest { method: Method::POST, path: "Patient", query: None, headers, body: Some(&body), via };
        let answer = upstream.send(&self.http, request).await.map_err(RelayError::Unreachable)?;
        let id = answer.body.as_ref().and_then(|b| b.get("id")).and_then(Value::as_str).map(str::to_owned).or_else(|| {
            let location = answer.headers.get(LOCATION)?.to_str().ok()?;
            let literal = termin_fhir::parse_literal(location)?;
            Some(literal.id.to_owned())
        });
        match id {
            Some(id) if matches!(answer.status, 200 | 201) => Ok(id),
            _ => Err(RelayError::Answered(answer)),
        }
    }
}

/// Localizes an upstream's Bundle and records each resource's owner in `meta.source`.
fn localize_bundle(bundle: &mut Map<String, Value>, upstream: &Upstream, public_base: &str) {
    let mut value = Value::Object(std::mem::take(bundle));
    ids::localize(&mut value, upstream.name(), upstream.base(), public_base);
    if let Value::Object(map) = value {
        *bundle = map;
    }
    mark_sources(bundle, upstream);
}

/// `meta.source` of each entry's resource (see [`mark_source`]).
fn mark_sources(bundle: &mut Map<String, Value>, upstream: &Upstream) {
    for entry in bundle.get_mut("entry").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(resource) = entry.get_mut("resource").and_then(Value::as_object_mut)
            && resource.get("resourceType").and_then(Value::as_str) != Some("OperationOutcome")
        {
            mark_source(resource, upstream);
        }
    }
}

/// `meta.source` of a localized resource: its absolute URL at the owning server, unless an
/// upstream further down a cascade set it already.
fn mark_source(resource: &mut Map<String, Value>, upstream: &Upstream) {
    let (Some(resource_type), Some(id)) = (
        resource.get("resourceType").and_then(Value::as_str),
        resource.get("id").and_then(Value::as_str).and_then(|id| ids::unscoped(upstream.name(), id)),
    ) else {
        return;
    };
    let source = format!("{}/{resource_type}/{id}", upstream.base());
    let meta = resource.entry("meta").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        meta.entry("source").or_insert(Value::String(source));
    }
}

/// A relayed Bundle's links (an instance history's pages) as the platform's URLs.
fn localize_links(bundle: &mut Map<String, Value>, upstream: &Upstream, public_base: &str) {
    for link in bundle.get_mut("link").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(url) = link.get("url").and_then(Value::as_str).and_then(|u| localized_url(u, upstream, public_base)) {
            link["url"] = Value::String(url);
        }
    }
}

/// `{upstream base}/Type/id[/...]` as the platform's URL of the same thing.
fn localized_url(url: &str, upstream: &Upstream, public_base: &str) -> Option<String> {
    let rest = url.strip_prefix(upstream.base())?.strip_prefix('/')?;
    let mut parts = rest.splitn(3, '/');
    let (resource_type, id) = (parts.next()?, parts.next()?);
    let tail = parts.next().map(|t| format!("/{t}")).unwrap_or_default();
    Some(format!("{public_base}/{resource_type}/{}{tail}", ids::scoped(upstream.name(), id)))
}

fn issue_json(issue: &Issue) -> Value {
    termin_fhir::OperationOutcome::single(issue.clone()).to_json()["issue"][0].clone()
}

/// An upstream's notes, each saying whose it is.
fn named_issues(name: &str, issues: Vec<Value>) -> Vec<Value> {
    issues
        .into_iter()
        .map(|mut issue| {
            if let Some(text) = issue["diagnostics"].as_str() {
                issue["diagnostics"] = json!(format!("Upstream {name}: {text}"));
            }
            issue
        })
        .collect()
}

/// How Termin's `$findHSP` notes a provider's earliest free slot:
/// `Organization/x: earliest free slot Slot/y at 2027-03-22T08:00:00Z`.
const EARLIEST_FREE: &str = ": earliest free slot Slot/";

/// A `$findHSP` answer as groups (each service with the providers that follow it), keyed by the
/// earliest free slot of its providers; `upstream`: the scope the note's references get.
pub fn find_hsp_page(bundle: &Map<String, Value>, upstream: Option<&str>) -> SourcePage {
    let mut earliest: Vec<(String, String)> = Vec::new();
    let mut issues = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    for entry in bundle.get("entry").and_then(Value::as_array).into_iter().flatten() {
        match entry["search"]["mode"].as_str() {
            Some("outcome") => {
                for mut issue in merge::outcome_issues(&entry["resource"]) {
                    let note = issue["diagnostics"].as_str().and_then(earliest_free_note);
                    if let Some((provider, slot, at)) = note.map(|(p, s, a)| (p.to_owned(), s.to_owned(), a.to_owned())) {
                        let scope = |reference: &str| match (upstream, reference.split_once('/')) {
                            (Some(name), Some((t, id))) => format!("{t}/{}", ids::scoped(name, id)),
                            _ => reference.to_owned(),
                        };
                        let (provider, slot) = (scope(&provider), scope(&format!("Slot/{slot}")));
                        issue["diagnostics"] = json!(format!("{provider}: earliest free slot {slot} at {at}"));
                        earliest.push((provider, at));
                    }
                    issues.push(issue);
                }
            }
            Some("include") => match groups.last_mut() {
                Some(group) => group.entries.push(entry.clone()),
                None => groups.push(Group { entries: vec![entry.clone()], key: None }),
            },
            _ => groups.push(Group { entries: vec![entry.clone()], key: None }),
        }
    }
    // A provider already shown with an earlier service is not included again: its service
    // inherits the key before it, which keeps each source's page in its own order.
    let mut previous: Option<String> = None;
    for group in &mut groups {
        let own = group
            .entries
            .iter()
            .skip(1)
            .filter_map(|e| {
                let resource = e.get("resource")?;
                let reference = format!("{}/{}", resource.get("resourceType")?.as_str()?, resource.get("id")?.as_str()?);
                earliest.iter().find(|(provider, _)| *provider == reference).map(|(_, at)| at.clone())
            })
            .min();
        group.key = own.or_else(|| previous.clone());
        previous.clone_from(&group.key);
    }
    SourcePage { groups, next_query: merge::next_query(bundle), total: bundle.get("total").and_then(Value::as_u64), issues }
}

fn earliest_free_note(text: &str) -> Option<(&str, &str, &str)> {
    let (provider, rest) = text.split_once(EARLIEST_FREE)?;
    let (slot, at) = rest.split_once(" at ")?;
    Some((provider, slot, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(name: &str, priority: i32) -> UpstreamConfig {
        UpstreamConfig {
            name: name.into(),
            url: format!("http://{name}.example/fhir/"),
            auth: UpstreamAuth::None,
            timeout: Duration::from_secs(1),
            priority,
        }
    }

    fn config(upstreams: Vec<UpstreamConfig>) -> PlatformConfig {
        PlatformConfig { name: "central".into(), upstreams, directory_ttl: Duration::ZERO, slot_ttl: Duration::ZERO }
    }

    fn platform() -> Platform {
        Platform::new(config(vec![upstream("a", 0), upstream("b", 5)])).unwrap()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn upstreams_are_checked_and_ordered_by_priority() {
        let platform = platform();
        assert_eq!(platform.upstreams().iter().map(Upstream::name).collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(platform.upstream("a").unwrap().base(), "http://a.example/fhir");
        assert!(Platform::new(config(vec![upstream("a.b", 0)])).is_err());
        assert!(Platform::new(config(vec![upstream("a", 0), upstream("a", 1)])).is_err());
        let slots_kept_long = PlatformConfig { slot_ttl: Duration::from_secs(61), ..config(vec![upstream("a", 0)]) };
        assert!(Platform::new(slots_kept_long).is_err());
        let (owner, id) = platform.owner("a.x.y").unwrap();
        assert_eq!((owner.name(), id), ("a", "x.y"));
        assert!(platform.owner("c.x").is_none());
    }

    #[test]
    fn searches_go_where_their_references_can_match() {
        let platform = platform();
        let all = platform.plan(ResourceType::Slot, &pairs(&[("status", "free")]));
        assert!(all.local.is_some());
        assert_eq!(all.upstreams.len(), 2);
        let one = platform.plan(ResourceType::Slot, &pairs(&[("schedule", "Schedule/a.s1"), ("status", "free")]));
        assert!(one.local.is_none());
        assert_eq!(one.upstreams.len(), 1);
        assert_eq!(one.upstreams[0].1, pairs(&[("schedule", "Schedule/s1"), ("status", "free")]));
        let mixed = platform.plan(ResourceType::Appointment, &pairs(&[("_id", "a.x,b.y,z")]));
        assert_eq!(mixed.local.unwrap(), pairs(&[("_id", "z")]));
        assert_eq!(mixed.upstreams.iter().map(|(u, p)| (u.name(), p[0].1.as_str())).collect::<Vec<_>>(), [("b", "y"), ("a", "x")]);
        let own = platform.plan(ResourceType::Slot, &pairs(&[("schedule", "Schedule/mine")]));
        assert!(own.local.is_some() && own.upstreams.is_empty(), "an unscoped reference is the platform's own");
        let local = platform.plan(ResourceType::Appointment, &pairs(&[("status", "booked")]));
        assert!(local.local.is_some() && local.upstreams.is_empty());
    }

    #[test]
    fn find_hsp_answers_are_keyed_by_earliest_free_slot() {
        let bundle = json!({"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "HealthcareService", "id": "h1"}, "search": {"mode": "match"}},
            {"resource": {"resourceType": "Organization", "id": "o1"}, "search": {"mode": "include"}},
            {"resource": {"resourceType": "HealthcareService", "id": "h2"}, "search": {"mode": "match"}},
            {"resource": {"resourceType": "OperationOutcome", "issue": [
                {"severity": "information", "code": "informational",
                 "diagnostics": "Organization/o1: earliest free slot Slot/s9 at 2027-03-22T08:00:00Z"}]},
             "search": {"mode": "outcome"}}
        ]});
        let page = find_hsp_page(bundle.as_object().unwrap(), None);
        assert_eq!(page.groups.len(), 2);
        assert_eq!(page.groups[0].entries.len(), 2);
        assert_eq!(page.groups[0].key.as_deref(), Some("2027-03-22T08:00:00Z"));
        assert_eq!(page.groups[1].key.as_deref(), Some("2027-03-22T08:00:00Z"), "inherits");
        let mut localized = bundle.clone();
        ids::localize(&mut localized, "a", "http://a/fhir", "http://p/fhir");
        let page = find_hsp_page(localized.as_object().unwrap(), Some("a"));
        assert_eq!(page.issues[0]["diagnostics"], "Organization/a.o1: earliest free slot Slot/a.s9 at 2027-03-22T08:00:00Z");
        assert_eq!(page.groups[0].key.as_deref(), Some("2027-03-22T08:00:00Z"));
    }
}
