//! Central scheduling platform mode (`termin-platform`): which requests leave this server and
//! how their answers come back. One middleware, inside authorization, looks at every routed
//! request when upstreams are configured:
//! - a request carrying this platform in its `X-Termin-Via` chain is refused (508);
//! - searches of the directory types and Slots, and searches naming an upstream's resources,
//!   fan out to the upstreams and to this server's own data (the handler behind the
//!   middleware), merged into one searchset with a platform cursor;
//! - `$findHSP` fans out likewise, merged by earliest free slot;
//! - anything addressed to `Type/NAME.id` (read, update, patch, delete, history, `$hold`), a
//!   `Slot/$hold` naming such a slot and a `$book` of such slots are relayed to upstream `NAME`
//!   and answered with its status, body and headers. Before a relayed `$book`, a patient of
//!   this server is matched or created at the target; a slot with the IG's booking-url
//!   extension is not booked here, the answer (409) names the provider's booking page.
//!
//! Everything else is this server's own.
//!
//! Outside the FHIR API, `POST /platform/notifications/{upstream}` receives the upstreams'
//! Subscription notifications that refresh the directory cache (`termin_platform::hooks`):
//! they carry the platform's secret instead of an access token.
//!
//! The platform acts at the upstreams with its own credentials (a system token, or none), on
//! behalf of its caller: it checks for them what they cannot check for a caller they never
//! see. A caller confined to a patient (a `patient/` token) relays only for that patient: its
//! bookings name only it (as the target's Patient matched by SVNR), and it reads and changes
//! only Appointments and the Patient record that are that patient's at the target; staff
//! tokens (`user/` scopes, confined to their organisations here) reach no upstream's
//! Appointments. Each relayed access to patient data is recorded as an AuditEvent here
//! (naming the upstream's resource by its absolute URL), besides the upstream's own.

use crate::SharedState;
use crate::context::{Ctx, HOLD_TOKEN};
use crate::error::ApiError;
use crate::format::{FhirBody, FhirResponse, JsonPatchBody, ResponseFormat, read_limited};
use crate::query::encode;
use crate::registry::Interaction;
use crate::routes::BaseUrl;
use crate::routes::search::page_size;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use termin_domain::{AuditAction, AuditRecord, Caller};
use termin_fhir::{Issue, IssueCode, OperationOutcome, ResourceType};
use termin_platform::merge::{self, CURSOR_PARAM, MergedPage, Order, Position, SourcePage};
use termin_platform::{Answer, Platform, RelayError, Upstream, UpstreamRequest, ids, via};
use termin_store::{COMPARTMENT_TYPES, OrganisationReach, PatientReach, Permission};
use tokio::task::JoinSet;

/// Headers of the client's request that a relay passes on (the request id too: the upstream's
/// AuditEvent of the access then carries the same id as the platform's).
const RELAYED_REQUEST_HEADERS: [&str; 7] =
    ["if-match", "if-none-match", "if-modified-since", "if-none-exist", "prefer", HOLD_TOKEN, "x-request-id"];

/// Headers of the upstream's answer that a relay passes back.
const RELAYED_ANSWER_HEADERS: [header::HeaderName; 4] =
    [header::ETAG, header::LAST_MODIFIED, header::LOCATION, header::CONTENT_LOCATION];

/// Parameters that shape the page rather than select: never sent upstream as they are.
fn is_page_parameter(name: &str) -> bool {
    matches!(name, "_count" | "_format" | "_pretty" | "_cursor" | CURSOR_PARAM)
}

pub async fn route(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let Some(platform) = state.platform.clone() else {
        return next.run(request).await;
    };
    let incoming = via::chain(request.headers().get_all(via::HEADER).iter().filter_map(|v| v.to_str().ok()));
    let chain = match via::extend(incoming, platform.name()) {
        Ok(chain) => chain,
        Err(refusal) => {
            return ApiError::new(StatusCode::LOOP_DETECTED, Issue::error(IssueCode::Processing, refusal.to_string()))
                .into_response();
        }
    };
    let call = Call { state, platform, via: chain, next };
    match call.dispatch(request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

struct Call {
    state: SharedState,
    platform: Arc<Platform>,
    via: Vec<String>,
    next: Next,
}

/// The merged page, or this server's own refusal of the search, passed on as it is.
enum Merged {
    Page(MergedPage),
    Refused(Response),
}

/// A request taken apart: its head and its body.
struct Incoming {
    parts: Parts,
    body: Bytes,
}

/// What the platform does with a request.
enum Route {
    Search(ResourceType),
    FindHsp,
    Hold,
    Book,
    /// To upstream `name`, at `path` below its base.
    Relay {
        name: String,
        path: String,
    },
    Local,
}

/// Which merged answer is asked for.
#[derive(Clone, Copy)]
enum Kind {
    Search(ResourceType),
    FindHsp,
}

impl Kind {
    fn path(self) -> String {
        match self {
            Kind::Search(resource_type) => format!("/fhir/{resource_type}"),
            Kind::FindHsp => "/fhir/HealthcareService/$findHSP".into(),
        }
    }
}

impl Call {
    fn route(&self, method: &Method, path: &str) -> Route {
        let segments: Vec<&str> = path.strip_prefix("/fhir/").unwrap_or_default().split('/').collect();
        let Some(resource_type) = segments.first().and_then(|t| t.parse::<ResourceType>().ok()) else {
            return Route::Local;
        };
        let (get, post) = (*method == Method::GET, *method == Method::POST);
        match &segments[1..] {
            [] if get => Route::Search(resource_type),
            ["_search"] if post => Route::Search(resource_type),
            ["$findHSP"] if (get || post) && resource_type == ResourceType::HealthcareService => Route::FindHsp,
            ["$hold"] if post && resource_type == ResourceType::Slot => Route::Hold,
            ["$book"] if post && resource_type == ResourceType::Appointment => Route::Book,
            [id, rest @ ..] if !rest.is_empty() || !post => match self.platform.owner(id) {
                Some((upstream, id)) => {
                    let tail: String = rest.iter().map(|s| format!("/{s}")).collect();
                    Route::Relay { name: upstream.name().to_owned(), path: format!("{resource_type}/{id}{tail}") }
                }
                None => Route::Local,
            },
            _ => Route::Local,
        }
    }

    async fn dispatch(self, request: Request) -> Result<Response, ApiError> {
        let route = self.route(request.method(), request.uri().path());
        if matches!(route, Route::Local) {
            return Ok(self.next.run(request).await);
        }
        let (parts, body) = request.into_parts();
        let body = read_limited(Request::from_parts(parts.clone(), body), &self.state.config).await?;
        let incoming = Incoming { parts, body };
        match route {
            Route::Search(resource_type) => self.search(incoming, resource_type).await,
            Route::FindHsp => self.find_hsp(incoming).await,
            Route::Hold => self.hold(incoming).await,
            Route::Book => self.book(incoming).await,
            Route::Relay { name, path } => {
                let body = self.json_body(&incoming).await?;
                self.relay_on_behalf(&incoming, &name, &path, body).await
            }
            Route::Local => Ok(self.local(incoming).await),
        }
    }

    /// The request, unchanged, to this server's own handler.
    async fn local(self, incoming: Incoming) -> Response {
        self.next.run(Request::from_parts(incoming.parts, Body::from(incoming.body))).await
    }

    /// The body as JSON, read as the handlers read it: a resource in FHIR JSON or XML, or a
    /// JSON Patch for PATCH.
    async fn json_body(&self, incoming: &Incoming) -> Result<Option<Value>, ApiError> {
        if incoming.body.is_empty() {
            return Ok(None);
        }
        let request = Request::from_parts(incoming.parts.clone(), Body::from(incoming.body.clone()));
        if incoming.parts.method == Method::PATCH {
            let JsonPatchBody(patch) = JsonPatchBody::from_request(request, &self.state).await?;
            return Ok(Some(patch));
        }
        let FhirBody(resource) = FhirBody::from_request(request, &self.state).await?;
        Ok(Some(Value::Object(resource)))
    }

    async fn base(&self, incoming: &Incoming) -> Result<String, ApiError> {
        let mut parts = incoming.parts.clone();
        Ok(BaseUrl::from_request_parts(&mut parts, &self.state).await?.0)
    }

    async fn format(incoming: &Incoming) -> Result<ResponseFormat, ApiError> {
        let mut parts = incoming.parts.clone();
        ResponseFormat::from_request_parts(&mut parts, &()).await
    }

    /// A page of this server's own search or `$findHSP` (GET of `uri`, or POST of `body`),
    /// run by the handler behind this middleware as the caller.
    async fn local_page(next: Next, parts: &Parts, uri: Uri, body: Option<Bytes>) -> Response {
        let mut request = Request::new(Body::from(body.clone().unwrap_or_default()));
        *request.method_mut() = if body.is_some() { Method::POST } else { Method::GET };
        *request.uri_mut() = uri.clone();
        *request.extensions_mut() = parts.extensions.clone();
        request.extensions_mut().insert(OriginalUri(uri));
        let headers = request.headers_mut();
        for name in [header::AUTHORIZATION, header::HOST, crate::REQUEST_ID] {
            if let Some(value) = parts.headers.get(&name) {
                headers.insert(name, value.clone());
            }
        }
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/fhir+json"));
        if body.is_some() {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+json"));
        }
        next.run(request).await
    }

    async fn search(self, incoming: Incoming, resource_type: ResourceType) -> Result<Response, ApiError> {
        let mut pairs = owned_pairs(incoming.parts.uri.query());
        if incoming.parts.method == Method::POST {
            pairs.extend(form_urlencoded::parse(&incoming.body).map(|(n, v)| (n.into_owned(), v.into_owned())));
        }
        let positions = match self.positions(resource_type, &pairs)? {
            Some(positions) => positions,
            None => return Ok(self.local(incoming).await),
        };
        if positions.iter().any(|p| !p.source.is_empty()) {
            self.check_upstream_search(&incoming, resource_type, &pairs).await?;
        }
        let kind = Kind::Search(resource_type);
        let count = self.count(&pairs)?;
        match self.fetch_and_merge(&incoming, kind, positions, None, count).await? {
            Merged::Page(merged) => self.searchset(&incoming, &kind.path(), pairs, merged).await,
            Merged::Refused(response) => Ok(response),
        }
    }

    /// Where each source's first page is, or the cursor's positions; `None`: only this server's
    /// own data can match.
    fn positions(
        &self,
        resource_type: ResourceType,
        pairs: &[(String, String)],
    ) -> Result<Option<Vec<Position>>, ApiError> {
        if let Some((_, cursor)) = pairs.iter().find(|(name, _)| name == CURSOR_PARAM) {
            // At most one position per source: a cursor cannot make the platform ask more.
            let positions = merge::decode_cursor(cursor).filter(|positions| {
                let sources: std::collections::HashSet<&str> = positions.iter().map(|p| p.source.as_str()).collect();
                sources.len() == positions.len()
            });
            return positions.map(Some).ok_or_else(|| {
                ApiError::bad_request(
                    Issue::error(IssueCode::Invalid, format!("{CURSOR_PARAM} is not a cursor this platform made"))
                        .at(CURSOR_PARAM),
                )
            });
        }
        let count = self.count(pairs)?;
        let selecting: Vec<(String, String)> =
            pairs.iter().filter(|(name, _)| !is_page_parameter(name)).cloned().collect();
        let plan = self.platform.plan(resource_type, &selecting);
        if plan.upstreams.is_empty() {
            return Ok(None);
        }
        let page_query = |mut pairs: Vec<(String, String)>| {
            pairs.push(("_count".into(), count.to_string()));
            encode(&pairs)
        };
        let mut positions = Vec::new();
        if let Some(local) = plan.local {
            positions.push(Position { source: String::new(), query: page_query(local), skip: 0 });
        }
        for (upstream, pairs) in plan.upstreams {
            positions.push(Position { source: upstream.name().to_owned(), query: page_query(pairs), skip: 0 });
        }
        Ok(Some(positions))
    }

    /// A search that goes to upstreams runs there with the platform's credentials, so the
    /// platform checks what the upstream would check for the caller: the types its chains and
    /// `_has` reach must be searchable for it (as locally), and a caller whose reach here is
    /// narrower than every patient's (a patient's or a staff token) may not search patient
    /// data there, directly or through chains and `_has` (which cannot be narrowed there).
    async fn check_upstream_search(
        &self,
        incoming: &Incoming,
        resource_type: ResourceType,
        pairs: &[(String, String)],
    ) -> Result<(), ApiError> {
        let Some(auth) = &self.state.auth else {
            return Ok(());
        };
        let ctx = Self::caller(incoming).await;
        if COMPARTMENT_TYPES.contains(&resource_type)
            && confinement(&ctx, resource_type, Permission::Search, "the upstreams")?.is_some()
        {
            return Err(forbidden(format!(
                "A patient's token searches its {resource_type} resources at this platform only; read the upstreams' ones by id"
            )));
        }
        let selecting: Vec<(String, String)> =
            pairs.iter().filter(|(name, _)| !is_page_parameter(name)).cloned().collect();
        let reaches = |name: &str| name.starts_with("_has:") || name.contains('.');
        if !selecting.iter().any(|(name, _)| reaches(name)) {
            return Ok(());
        }
        let base = self.base(incoming).await?;
        let options = termin_search::SearchOptions {
            server_base: Some(&base),
            now: jiff::Timestamp::now(),
            default_count: self.state.config.default_count,
            max_count: self.state.config.max_count,
            handling: crate::prefer::search_handling(&incoming.parts.headers),
        };
        let parsed = self
            .state
            .domain
            .search_parameters()
            .parse_search(resource_type, &selecting, &options)
            .map_err(crate::routes::search::search_error)?;
        let conditions = &parsed.request.filter.conditions;
        crate::auth::check_reach(auth, ctx.context(), conditions)?;
        let mut reached = Vec::new();
        reached_types(conditions, &mut reached);
        for reached in reached.into_iter().filter(|t| COMPARTMENT_TYPES.contains(t)) {
            confinement(&ctx, reached, Permission::Search, "the upstreams")?.map_or(Ok(()), |_| {
                Err(forbidden(format!(
                    "This search reaches {reached} resources through a chain or _has, which the upstreams cannot narrow to this access token's patient"
                )))
            })?;
        }
        Ok(())
    }

    fn count(&self, pairs: &[(String, String)]) -> Result<usize, ApiError> {
        let query = encode(&pairs.iter().filter(|(name, _)| name == "_count").cloned().collect::<Vec<_>>());
        page_size(Some(&query), self.state.config.default_count, self.state.config.max_count)
    }

    /// Fetches every position's page in parallel (upstreams through the platform, this server's
    /// own through its handler) and merges them. This server's own refusal (a 4xx: the search
    /// itself is wrong) is the answer.
    async fn fetch_and_merge(
        &self,
        incoming: &Incoming,
        kind: Kind,
        positions: Vec<Position>,
        parameters: Option<&Value>,
        count: usize,
    ) -> Result<Merged, ApiError> {
        let base = self.base(incoming).await?;
        let mut tasks = JoinSet::new();
        for (index, position) in positions.iter().enumerate() {
            let position = position.clone();
            let (platform, via, base, next) =
                (self.platform.clone(), self.via.clone(), base.clone(), self.next.clone());
            let parts = incoming.parts.clone();
            // Parameters are POSTed on the first page only; later pages are the sources' next links.
            let parameters = parameters.cloned();
            tasks.spawn(async move {
                let fetched: Result<Result<SourcePage, Value>, Response> = if position.source.is_empty() {
                    let Ok(uri) = format!("{}?{}", kind.path(), position.query).parse::<Uri>() else {
                        return (index, Ok(Err(unknown_source(&position.source))));
                    };
                    let body = parameters.map(|p| Bytes::from(p.to_string()));
                    local_source_page(Self::local_page(next, &parts, uri, body).await, kind).await
                } else {
                    let Some(upstream) = platform.upstream(&position.source) else {
                        return (index, Ok(Err(unknown_source(&position.source))));
                    };
                    Ok(match kind {
                        Kind::FindHsp => {
                            platform.find_hsp_page(upstream, &position.query, parameters.as_ref(), &via, &base).await
                        }
                        Kind::Search(resource_type) => {
                            platform.search_page(upstream, resource_type, &position.query, &via, &base).await
                        }
                    })
                };
                (index, fetched)
            });
        }
        let mut fetched: Vec<Option<Result<SourcePage, Value>>> = vec![None; positions.len()];
        while let Some(joined) = tasks.join_next().await {
            let Ok((index, page)) = joined else {
                return Err(ApiError::internal());
            };
            match page {
                Ok(page) => fetched[index] = Some(page),
                Err(refusal) => return Ok(Merged::Refused(refusal)),
            }
        }
        let pages = positions
            .into_iter()
            .zip(fetched)
            .map(|(position, page)| (position, page.unwrap_or_else(|| Err(unknown_source("")))))
            .collect();
        let order = match kind {
            Kind::Search(_) => Order::Alternate,
            Kind::FindHsp => Order::ByKey,
        };
        Ok(Merged::Page(merge::merge(pages, count, order)))
    }

    /// The merged page as a searchset: next link with the platform cursor, the sources' notes
    /// and failures in one OperationOutcome entry.
    async fn searchset(
        &self,
        incoming: &Incoming,
        path: &str,
        pairs: Vec<(String, String)>,
        merged: MergedPage,
    ) -> Result<Response, ApiError> {
        let base = self.base(incoming).await?;
        let format = Self::format(incoming).await?;
        let endpoint = format!("{}{}", base, path.trim_start_matches("/fhir"));
        let first_page = !pairs.iter().any(|(name, _)| name == CURSOR_PARAM);
        let stable: Vec<(String, String)> = pairs.iter().filter(|(name, _)| name != CURSOR_PARAM).cloned().collect();
        let link = |extra: Option<String>| {
            let mut all = stable.clone();
            if let Some(cursor) = extra {
                all.push((CURSOR_PARAM.into(), cursor));
            }
            if all.is_empty() { endpoint.clone() } else { format!("{endpoint}?{}", encode(&all)) }
        };
        let mut links = vec![json!({"relation": "self", "url": link(None)})];
        if let Some(next) = &merged.next {
            links.push(json!({"relation": "next", "url": link(Some(merge::encode_cursor(next)))}));
        }
        let mut entries = merged.entries;
        let mut issues = merged.issues;
        if let Some(auth) = &self.state.auth {
            // As in a local search: included resources of types the caller may not read are
            // left out, and said so (the upstreams answered the platform, not the caller).
            let mut parts = incoming.parts.clone();
            let Ok(Ctx(ctx)) = Ctx::from_request_parts(&mut parts, &()).await;
            let before = entries.len();
            entries.retain(|entry| {
                let readable = || {
                    entry["resource"]["resourceType"]
                        .as_str()
                        .and_then(|t| t.parse::<ResourceType>().ok())
                        .is_some_and(|t| auth.may(ctx.context(), t, Permission::Read))
                };
                entry["search"]["mode"] != "include" || readable()
            });
            if entries.len() < before {
                issues.push(json!({"severity": "warning", "code": "forbidden", "diagnostics": format!(
                    "{} included resources were left out: the access token does not allow reading their type",
                    before - entries.len()
                )}));
            }
            // Patient data the upstreams added answered the platform's credentials: a caller
            // confined here (a patient's or a staff token) does not see it.
            let before = entries.len();
            entries.retain(|entry| {
                let confined = || {
                    let resource_type =
                        entry["resource"]["resourceType"].as_str().and_then(|t| t.parse::<ResourceType>().ok());
                    let from_upstream =
                        entry["resource"]["id"].as_str().is_some_and(|id| self.platform.owner(id).is_some());
                    resource_type.is_some_and(|t| {
                        COMPARTMENT_TYPES.contains(&t)
                            && from_upstream
                            && !matches!(confinement(&ctx, t, Permission::Read, "the upstreams"), Ok(None))
                    })
                };
                entry["search"]["mode"] != "include" || !confined()
            });
            if entries.len() < before {
                issues.push(json!({"severity": "warning", "code": "forbidden", "diagnostics": format!(
                    "{} included resources of patients at upstreams were left out: this access token reaches them only by id",
                    before - entries.len()
                )}));
            }
        }
        if !issues.is_empty() {
            let outcome = json!({"resourceType": "OperationOutcome", "issue": issues});
            entries.push(json!({"resource": outcome, "search": {"mode": "outcome"}}));
        }
        self.record_upstream_patient_data(incoming, &entries).await;
        let mut bundle = json!({"resourceType": "Bundle", "type": "searchset"});
        if let Some(total) = merged.total.filter(|_| first_page) {
            bundle["total"] = json!(total);
        }
        bundle["link"] = Value::Array(links);
        if !entries.is_empty() {
            bundle["entry"] = Value::Array(entries);
        }
        Ok(FhirResponse::new(StatusCode::OK, format).json(bundle).into_response())
    }

    /// Records the patient data of upstreams a merged page shows (this server's own is
    /// recorded by its handler): one AuditEvent of the search, naming each resource by its
    /// platform id and its absolute URL at its upstream.
    async fn record_upstream_patient_data(&self, incoming: &Incoming, entries: &[Value]) {
        let mut record = AuditRecord::new(AuditAction::Read, "search-type");
        for resource in entries.iter().filter(|e| e["search"]["mode"] != "outcome").map(|e| &e["resource"]) {
            let (Some(type_name), Some(id)) = (resource["resourceType"].as_str(), resource["id"].as_str()) else {
                continue;
            };
            let is_patient_data = type_name
                .parse::<ResourceType>()
                .is_ok_and(|t| COMPARTMENT_TYPES.contains(&t) && t != ResourceType::AuditEvent);
            let Some((upstream, there)) = self.platform.owner(id).filter(|_| is_patient_data) else { continue };
            record.resources.push(format!("{type_name}/{id}"));
            record.resources.push(format!("{}/{type_name}/{there}", upstream.base()));
            let patients = match type_name {
                "Patient" => vec![id.to_owned()],
                _ => termin_platform::appointment_patients(resource),
            };
            for patient in patients {
                if !record.patients.contains(&patient) {
                    record.patients.push(patient);
                }
            }
        }
        if !record.resources.is_empty() {
            self.state.domain.audit_relayed(&Self::caller(incoming).await, record).await;
        }
    }

    async fn find_hsp(self, incoming: Incoming) -> Result<Response, ApiError> {
        let pairs = owned_pairs(incoming.parts.uri.query());
        let parameters = match incoming.parts.method {
            Method::POST => self.json_body(&incoming).await?,
            _ => None,
        };
        let positions = match self.positions(ResourceType::HealthcareService, &pairs)? {
            Some(positions) => positions,
            None => return Ok(self.local(incoming).await),
        };
        let count = self.count(&pairs)?;
        match self.fetch_and_merge(&incoming, Kind::FindHsp, positions, parameters.as_ref(), count).await? {
            Merged::Page(merged) => self.searchset(&incoming, &Kind::FindHsp.path(), pairs, merged).await,
            Merged::Refused(response) => Ok(response),
        }
    }

    /// `Slot/$hold` naming an upstream's slot by `slot-reference` is relayed; others are local.
    async fn hold(self, incoming: Incoming) -> Result<Response, ApiError> {
        // A body the handler cannot read either is the handler's to refuse.
        let body = self.json_body(&incoming).await.ok().flatten();
        let slot = body
            .as_ref()
            .and_then(termin_fhir::Parameters::read_value)
            .and_then(|p| {
                p.named("slot-reference")
                    .find_map(|e| e.get("valueReference")?.get("reference")?.as_str().map(str::to_owned))
            })
            .and_then(|reference| termin_fhir::reference_id(&reference, ResourceType::Slot).map(str::to_owned));
        let Some((upstream, _)) = slot.as_deref().and_then(|id| self.platform.owner(id)) else {
            return Ok(self.local(incoming).await);
        };
        // Recorded like a local `$hold`, which is recorded whether or not it reaches patient data.
        let ctx = Self::caller(&incoming).await;
        let mut record = AuditRecord::new(AuditAction::Execute, "$hold");
        if let Some(slot) = slot {
            record.resources.push(format!("Slot/{slot}"));
        }
        self.relay_recorded(&incoming, &ctx, upstream, "Slot/$hold", body, record).await
    }

    /// `$book` of an upstream's slots is relayed to it, with this server's patients matched or
    /// created there first; a booking of this server's own slots is local.
    async fn book(self, incoming: Incoming) -> Result<Response, ApiError> {
        let Some(mut body) = self.json_body(&incoming).await.ok().flatten() else {
            return Ok(self.local(incoming).await);
        };
        let appointment = match body.get("resourceType").and_then(Value::as_str) {
            Some("Parameters") => body["parameter"]
                .as_array_mut()
                .and_then(|list| list.iter_mut().find(|p| p["name"] == "appointment-resource"))
                .and_then(|p| p.get_mut("resource")),
            _ => Some(&mut body),
        };
        let Some(appointment) = appointment else {
            return Ok(self.local(incoming).await);
        };
        let slots: Vec<String> = appointment["slot"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["reference"].as_str())
            .filter_map(|r| termin_fhir::reference_id(r, ResourceType::Slot))
            .map(str::to_owned)
            .collect();
        let owners: Vec<String> = slots
            .iter()
            .map(|id| self.platform.owner(id).map(|(u, _)| u.name().to_owned()).unwrap_or_default())
            .collect();
        let Some(name) = owners.first().filter(|n| !n.is_empty()).cloned() else {
            return Ok(self.local(incoming).await);
        };
        if owners.iter().any(|o| *o != name) {
            return Err(ApiError::bad_request(
                Issue::error(
                    IssueCode::NotSupported,
                    "The Appointment's slots belong to different servers; book them separately",
                )
                .at("Appointment.slot"),
            ));
        }
        let upstream = self.platform.upstream(&name).ok_or_else(ApiError::internal)?;
        let ctx = Self::caller(&incoming).await;
        let confined = confinement(&ctx, ResourceType::Appointment, Permission::Create, &format!("upstream {name}"))?;
        if let Some(patient) = &confined {
            self.check_booking_for(&ctx, upstream, appointment, patient).await?;
        }
        // The slots' ids at the upstream.
        let slot_ids: Vec<String> =
            slots.iter().filter_map(|id| self.platform.owner(id).map(|(_, there)| there.to_owned())).collect();
        for (index, id) in slot_ids.iter().enumerate() {
            if let Some(url) = self.platform.booking_url(upstream, id, &self.via).await.map_err(unreachable)? {
                let format = Self::format(&incoming).await?;
                let outcome = external_booking(&ids::scoped(&name, id), index, &url);
                return Ok(FhirResponse::new(StatusCode::CONFLICT, format).json(outcome).into_response());
            }
        }
        let mut record = AuditRecord::new(AuditAction::Execute, "$book");
        record.patients = self.patients_to(&ctx, upstream, appointment).await?;
        if let Some(patient) = confined.filter(|p| !record.patients.contains(p)) {
            record.patients.push(patient);
        }
        self.relay_recorded(&incoming, &ctx, upstream, "Appointment/$book", Some(body), record).await
    }

    /// Points the Appointment's references to this server's patients at their records at
    /// `upstream`, matching or creating them there; answers the ids of this server's patients
    /// it named.
    async fn patients_to(
        &self,
        ctx: &Caller,
        upstream: &Upstream,
        appointment: &mut Value,
    ) -> Result<Vec<String>, ApiError> {
        let mut references = Vec::new();
        collect_references(appointment, &mut references);
        let mut own = Vec::new();
        for reference in references {
            let Some(id) = termin_fhir::reference_id(&reference, ResourceType::Patient) else { continue };
            if self.platform.owner(id).is_some() {
                continue;
            }
            let patient = self.own_patient(ctx, id).await?;
            let there = self
                .platform
                .patient_at(upstream, &patient, &self.via)
                .await
                .map_err(|e| relay_error(upstream.name(), &reference, e))?;
            replace_reference(appointment, &reference, &format!("Patient/{}", ids::scoped(upstream.name(), &there)));
            own.push(id.to_owned());
        }
        Ok(own)
    }

    /// This server's Patient `id` as `ctx` may read it (a patient's token: only its own),
    /// without an AuditEvent of its own: the relay it is read for records the access.
    async fn own_patient(&self, ctx: &Caller, id: &str) -> Result<serde_json::Map<String, Value>, ApiError> {
        let patient = self.state.domain.resources.read_unrecorded(ctx, ResourceType::Patient, id).await?;
        Ok(crate::bundle::stored_json(&patient)?.and_then(|p| p.as_object().cloned()).unwrap_or_default())
    }

    /// The ids at `upstream` of this server's Patient `patient` (matched by SVNR, as bookings
    /// match it; none when the target does not know the patient).
    async fn patient_ids_at(&self, ctx: &Caller, upstream: &Upstream, patient: &str) -> Result<Vec<String>, ApiError> {
        let own = self.own_patient(ctx, patient).await?;
        self.platform
            .patient_ids_at(upstream, &own, &self.via)
            .await
            .map_err(|e| relay_error(upstream.name(), &format!("Patient/{patient}"), e))
    }

    /// A caller confined to `patient` books for it alone: every Patient the Appointment names
    /// is that patient (this server's record, or its record at the target), and a subject
    /// given by identifier only is one of the patient's identifiers (it is then named by
    /// reference, so the target matches it by SVNR like any booking through the platform).
    async fn check_booking_for(
        &self,
        ctx: &Caller,
        upstream: &Upstream,
        appointment: &mut Value,
        patient: &str,
    ) -> Result<(), ApiError> {
        if let Some(subject) = appointment.get_mut("subject").and_then(Value::as_object_mut)
            && subject.get("reference").is_none()
            && let Some(identifier) = subject.get("identifier")
        {
            let own = self.own_patient(ctx, patient).await?;
            let known = own
                .get("identifier")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|i| i.get("system") == identifier.get("system") && i.get("value") == identifier.get("value"));
            if !known {
                return Err(other_patient(ResourceType::Appointment, patient));
            }
            subject.insert("reference".into(), json!(format!("Patient/{patient}")));
        }
        let mut theirs: Option<Vec<String>> = None;
        for named in termin_platform::appointment_patients(appointment) {
            if named == patient {
                continue;
            }
            let there = ids::unscoped(upstream.name(), &named)
                .ok_or_else(|| other_patient(ResourceType::Appointment, patient))?;
            if theirs.is_none() {
                theirs = Some(self.patient_ids_at(ctx, upstream, patient).await?);
            }
            if !theirs.as_ref().is_some_and(|t| t.iter().any(|id| id == there)) {
                return Err(other_patient(ResourceType::Appointment, patient));
            }
        }
        Ok(())
    }

    /// A relay of `Type/NAME.id[/...]`: patient data only for callers who may reach it (see the
    /// module documentation), and recorded; the directory and Slots relayed as they are.
    async fn relay_on_behalf(
        &self,
        incoming: &Incoming,
        name: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Response, ApiError> {
        let mut segments = path.split('/');
        let resource_type = segments.next().and_then(|t| t.parse::<ResourceType>().ok());
        let own_id = segments.next().unwrap_or_default();
        let upstream = self.platform.upstream(name).ok_or_else(ApiError::internal)?;
        let ctx = Self::caller(incoming).await;
        let Some(resource_type) = resource_type.filter(|t| COMPARTMENT_TYPES.contains(t)) else {
            // An instance operation (`Slot/a.id/$hold`) is recorded as locally; reads of the
            // directory and Slots are not patient data.
            if let Some(operation) = path.rsplit('/').next().filter(|s| s.starts_with('$')) {
                let mut record = AuditRecord::new(AuditAction::Execute, operation);
                record.resources.push(format!(
                    "{}/{}",
                    path.split('/').next().unwrap_or_default(),
                    ids::scoped(name, own_id)
                ));
                return self.relay_recorded(incoming, &ctx, upstream, path, body, record).await;
            }
            return self.relay(incoming, name, path, body).await;
        };
        let method = &incoming.parts.method;
        let matched = incoming.parts.extensions.get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
        let interaction = Interaction::of(method, &matched);
        let permission = interaction.map_or(
            if *method == Method::GET { Permission::Read } else { Permission::Update },
            Interaction::permission,
        );
        if let Some(patient) = confinement(&ctx, resource_type, permission, &format!("upstream {name}"))? {
            self.check_relay_for(&ctx, upstream, resource_type, own_id, method, body.as_ref(), patient.as_str())
                .await?;
            let (action, code) = crate::audit::action(method, interaction);
            let mut record = AuditRecord::new(action, code);
            record.patients.push(patient);
            record.resources.push(format!("{resource_type}/{}", ids::scoped(name, own_id)));
            return self.relay_recorded(incoming, &ctx, upstream, path, body, record).await;
        }
        if resource_type == ResourceType::AuditEvent {
            // Reading the audit trail is not recorded in it, as here.
            return self.relay(incoming, name, path, body).await;
        }
        let (action, code) = crate::audit::action(method, interaction);
        let mut record = AuditRecord::new(action, code);
        record.resources.push(format!("{resource_type}/{}", ids::scoped(name, own_id)));
        self.relay_recorded(incoming, &ctx, upstream, path, body, record).await
    }

    /// A caller confined to `patient` reaches at `upstream` only that patient's record there
    /// and the Appointments naming it: another Patient is refused (403), another patient's
    /// Appointment is not known to it (404 for reads, 403 for changes, as here). Other patient
    /// data at upstreams is not relayed for it.
    #[allow(clippy::too_many_arguments)]
    async fn check_relay_for(
        &self,
        ctx: &Caller,
        upstream: &Upstream,
        resource_type: ResourceType,
        own_id: &str,
        method: &Method,
        body: Option<&Value>,
        patient: &str,
    ) -> Result<(), ApiError> {
        match resource_type {
            ResourceType::Patient => {
                match self.patient_ids_at(ctx, upstream, patient).await?.iter().any(|id| id == own_id) {
                    true => Ok(()),
                    false => Err(other_patient(resource_type, patient)),
                }
            }
            ResourceType::Appointment => {
                let theirs = self.patient_ids_at(ctx, upstream, patient).await?;
                let current = self
                    .platform
                    .current(upstream, &format!("Appointment/{own_id}"), &self.via)
                    .await
                    .map_err(unreachable)?;
                let belongs = match (current.status, current.body.as_ref(), body) {
                    (200, Some(existing), _) => {
                        termin_platform::appointment_patients(existing).iter().any(|p| theirs.contains(p))
                    }
                    // An update that creates the Appointment names only the patient's record there.
                    (404 | 410, _, Some(new)) if *method == Method::PUT => {
                        let named = termin_platform::appointment_patients(new);
                        !named.is_empty()
                            && named.iter().all(|p| {
                                ids::unscoped(upstream.name(), p).is_some_and(|id| theirs.iter().any(|t| t == id))
                            })
                    }
                    // Nothing there: the upstream answers as it would anyone.
                    _ => true,
                };
                match belongs {
                    true => Ok(()),
                    false if *method == Method::GET => Err(ApiError::not_found(format!(
                        "Appointment/{} is not known",
                        ids::scoped(upstream.name(), own_id)
                    ))),
                    false => Err(other_patient(resource_type, patient)),
                }
            }
            _ => Err(forbidden(format!(
                "Through this platform a patient's token reaches only its Patient record and its Appointments at upstream {}, not its {resource_type} resources",
                upstream.name()
            ))),
        }
    }

    async fn caller(incoming: &Incoming) -> Caller {
        let mut parts = incoming.parts.clone();
        let Ok(Ctx(ctx)) = Ctx::from_request_parts(&mut parts, &()).await;
        ctx
    }

    /// Relays the request to upstream `name` at `path` and answers with what it answered.
    async fn relay(
        &self,
        incoming: &Incoming,
        name: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Response, ApiError> {
        let upstream = self.platform.upstream(name).ok_or_else(ApiError::internal)?;
        let answer = self.send_relay(incoming, upstream, path, body).await?.map_err(unreachable)?;
        Self::respond(incoming, answer).await
    }

    /// [`Call::relay`] that records the access in `record`, completed with the resource the
    /// upstream answered with, its patients and the outcome.
    async fn relay_recorded(
        &self,
        incoming: &Incoming,
        ctx: &Caller,
        upstream: &Upstream,
        path: &str,
        body: Option<Value>,
        mut record: AuditRecord,
    ) -> Result<Response, ApiError> {
        let sent = self.send_relay(incoming, upstream, path, body).await?;
        match &sent {
            Ok(answer) => {
                if !(200..300).contains(&answer.status) {
                    record.denied = Some(answer.status);
                }
                if let Some(resource) = answer.body.as_ref().and_then(answered_resource) {
                    note_answered(&mut record, resource);
                }
            }
            Err(failure) => record.denied = Some(failure.status),
        }
        // Which upstream: each resource's absolute URL there.
        let at_upstream: Vec<String> = record
            .resources
            .iter()
            .filter_map(|label| {
                let (resource_type, id) = label.split_once('/')?;
                Some(format!("{}/{resource_type}/{}", upstream.base(), ids::unscoped(upstream.name(), id)?))
            })
            .collect();
        record.resources.extend(at_upstream);
        self.state.domain.audit_relayed(ctx, record).await;
        Self::respond(incoming, sent.map_err(unreachable)?).await
    }

    /// Sends the request to `upstream` at `path`: its answer, or why there was none.
    async fn send_relay(
        &self,
        incoming: &Incoming,
        upstream: &Upstream,
        path: &str,
        body: Option<Value>,
    ) -> Result<Result<Answer, termin_platform::Unreachable>, ApiError> {
        let base = self.base(incoming).await?;
        // The answer's format is the platform's business; everything else is the upstream's.
        let query: Vec<(String, String)> = owned_pairs(incoming.parts.uri.query())
            .into_iter()
            .filter(|(n, _)| n != "_format" && n != "_pretty")
            .collect();
        let query = encode(&query);
        let mut headers: Vec<(header::HeaderName, HeaderValue)> = RELAYED_REQUEST_HEADERS
            .iter()
            .filter_map(|&name| {
                Some((header::HeaderName::from_static(name), incoming.parts.headers.get(name)?.clone()))
            })
            .collect();
        // Bodies go upstream as FHIR JSON, whatever the client sent; a JSON Patch stays one.
        if incoming.parts.method == Method::PATCH && body.is_some() {
            headers.push((header::CONTENT_TYPE, HeaderValue::from_static(crate::format::JSON_PATCH)));
        }
        let request = UpstreamRequest {
            method: incoming.parts.method.clone(),
            path,
            query: Some(&query),
            headers,
            body: body.as_ref(),
            via: &self.via,
        };
        Ok(self.platform.relay(upstream, request, &base).await)
    }

    /// The upstream's answer in the client's format, with its status and relayed headers.
    async fn respond(incoming: &Incoming, answer: Answer) -> Result<Response, ApiError> {
        let format = Self::format(incoming).await?;
        let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut response = FhirResponse::new(status, format);
        for name in RELAYED_ANSWER_HEADERS {
            if let Some(value) = answer.headers.get(&name).and_then(|v| v.to_str().ok()) {
                response = response.header(name, value);
            }
        }
        if let Some(body) = answer.body {
            response = response.json(body);
        }
        Ok(response.into_response())
    }
}

/// The route of the upstreams' notifications (answers 404 when this server is no platform).
pub fn notifications(state: SharedState) -> axum::Router {
    axum::Router::new().route("/platform/notifications/{upstream}", axum::routing::post(notification)).with_state(state)
}

async fn notification(
    State(state): State<SharedState>,
    axum::extract::Path(upstream): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    use termin_platform::hooks::{Refusal, SECRET_HEADER};
    let secret = headers.get(SECRET_HEADER).and_then(|v| v.to_str().ok());
    let answer = match &state.platform {
        Some(platform) => platform.notified(&upstream, secret, &body),
        None => Err(Refusal::UnknownUpstream),
    };
    match answer {
        Ok(()) => StatusCode::OK.into_response(),
        Err(Refusal::UnknownUpstream) => {
            ApiError::not_found(format!("This server receives no notifications from {upstream:?}")).into_response()
        }
        Err(Refusal::Unauthenticated) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            Issue::error(IssueCode::Login, format!("A notification needs the platform's {SECRET_HEADER} header")),
        )
        .into_response(),
        Err(Refusal::Malformed(why)) => ApiError::bad_request(Issue::error(IssueCode::Invalid, why)).into_response(),
    }
}

/// The types a search's chains and `_has` reach.
fn reached_types(conditions: &[termin_store::Condition], out: &mut Vec<ResourceType>) {
    use termin_store::Condition;
    for condition in conditions {
        match condition {
            Condition::Chain { target_type, condition, .. } => {
                out.push(*target_type);
                reached_types(std::slice::from_ref(&**condition), out);
            }
            Condition::ReferencedBy { source_type, condition, .. } => {
                out.push(*source_type);
                reached_types(std::slice::from_ref(&**condition), out);
            }
            Condition::Not(condition) => reached_types(std::slice::from_ref(&**condition), out),
            Condition::Any(conditions) => reached_types(conditions, out),
            _ => {}
        }
    }
}

/// The patient a caller is confined to for `permission` on `resource_type` `at` an upstream
/// (`None`: it reaches every patient's there, as it does here). Refused (403) where its reach
/// here cannot be carried over: a `patient/` token without a patient, and staff tokens
/// (`user/` scopes), whose reach is their organisations here, for Appointments and the audit
/// trail of an upstream.
fn confinement(
    ctx: &Caller,
    resource_type: ResourceType,
    permission: Permission,
    at: &str,
) -> Result<Option<String>, ApiError> {
    let context = ctx.context();
    match context.patient_reach(resource_type, permission) {
        PatientReach::Only(patient) => return Ok(Some(patient.to_owned())),
        PatientReach::None => {
            return Err(forbidden(format!(
                "The access token has only patient/ scopes for {resource_type} but names no patient (no patient claim), so it reaches no patient's data"
            )));
        }
        PatientReach::All => {}
    }
    match context.organisation_reach(resource_type, permission) {
        OrganisationReach::All => Ok(None),
        OrganisationReach::StaffOf(_) | OrganisationReach::None => Err(forbidden(format!(
            "A staff token (user/ scopes) reaches the {resource_type} resources of its own organisations only: those of this platform, not those at {at}"
        ))),
    }
}

fn forbidden(why: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, Issue::error(IssueCode::Forbidden, why))
}

fn other_patient(resource_type: ResourceType, patient: &str) -> ApiError {
    forbidden(format!(
        "This access token may reach only the {resource_type} resources of Patient/{patient} (its patient compartment), here and at the upstreams"
    ))
}

/// Why the platform could not do what a relay needs at upstream `name` about `what`.
fn relay_error(name: &str, what: &str, error: RelayError) -> ApiError {
    match error {
        RelayError::Unreachable(failure) => unreachable(failure),
        RelayError::Answered(answer) => {
            let told = answer.body.as_ref().map(merge::outcome_issues).unwrap_or_default();
            let told: Vec<&str> = told.iter().filter_map(|i| i["diagnostics"].as_str()).collect();
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                Issue::error(
                    IssueCode::Exception,
                    format!("Upstream {name} did not accept {what} ({}): {}", answer.status, told.join("; ")),
                ),
            )
        }
    }
}

/// The resource an upstream's answer is about: the Appointment of a `$book` answer, or the
/// resource answered; `None` for outcomes and Bundles.
fn answered_resource(body: &Value) -> Option<&Value> {
    match body.get("resourceType")?.as_str()? {
        "Parameters" => body["parameter"].as_array()?.iter().find(|p| p["name"] == "appointment")?.get("resource"),
        "OperationOutcome" | "Bundle" => None,
        _ => Some(body),
    }
}

/// Adds the answered resource (localized: platform ids) to `record`, and its patients: as the
/// record's patients when it names none yet, else as further resources (the patient's record
/// at the target).
fn note_answered(record: &mut AuditRecord, resource: &Value) {
    let (Some(resource_type), Some(id)) = (resource["resourceType"].as_str(), resource["id"].as_str()) else {
        return;
    };
    let mut labels = vec![format!("{resource_type}/{id}")];
    let patients = match resource_type {
        "Patient" => vec![id.to_owned()],
        "Appointment" => termin_platform::appointment_patients(resource),
        _ => Vec::new(),
    };
    if record.patients.is_empty() {
        record.patients = patients;
    } else {
        labels.extend(patients.iter().filter(|p| !record.patients.contains(p)).map(|p| format!("Patient/{p}")));
    }
    for label in labels {
        if !record.resources.contains(&label) && !record.patients.iter().any(|p| label == format!("Patient/{p}")) {
            record.resources.push(label);
        }
    }
}

fn owned_pairs(query: Option<&str>) -> Vec<(String, String)> {
    crate::query::query_pairs(query).map(|(n, v)| (n.into_owned(), v.into_owned())).collect()
}

/// The issue for a cursor position this platform cannot ask (a source it does not have, or a
/// query that is no URL query).
fn unknown_source(name: &str) -> Value {
    json!({"severity": "warning", "code": "not-found",
           "diagnostics": format!("The cursor's position at source {name:?} cannot be asked: this platform has no such source or it is not a page this platform made")})
}

/// This server's own page, or its refusal (the response, passed on as it is).
async fn local_source_page(response: Response, kind: Kind) -> Result<Result<SourcePage, Value>, Response> {
    let find_hsp = matches!(kind, Kind::FindHsp);
    let status = response.status();
    if status.is_client_error() {
        return Err(response);
    }
    let bytes = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let bundle = termin_fhir::json::parse_value(&bytes).ok().and_then(|v| v.as_object().cloned());
    Ok(match bundle {
        Some(bundle) if status == StatusCode::OK && find_hsp => Ok(termin_platform::find_hsp_page(&bundle, None)),
        Some(bundle) if status == StatusCode::OK => {
            let (groups, issues) = merge::search_groups(&bundle);
            Ok(SourcePage {
                groups,
                next_query: merge::next_query(&bundle),
                total: bundle.get("total").and_then(Value::as_u64),
                issues,
            })
        }
        _ => Err(json!({"severity": "warning", "code": "exception",
                        "diagnostics": format!("This server's own results are missing: it answered {status}")})),
    })
}

/// The answer to `$book` of a Slot its provider books on its own page ("Booking with external
/// provider"): 409, as the slot cannot be booked here, with the page's URL as the issue's
/// `details.text` (and in `diagnostics`) for the client to redirect the user to; nothing is
/// relayed.
fn external_booking(slot: &str, index: usize, url: &str) -> Value {
    json!({"resourceType": "OperationOutcome", "issue": [{
        "severity": "error",
        "code": "business-rule",
        "details": {"text": url},
        "diagnostics": format!(
            "Slot/{slot} is booked with its provider directly, not through this platform: redirect the user to {url}"
        ),
        "expression": [format!("Appointment.slot[{index}]")],
    }]})
}

fn unreachable(failure: termin_platform::Unreachable) -> ApiError {
    let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let issue = Issue { severity: termin_fhir::Severity::Error, ..failure.issue };
    ApiError { status, outcome: OperationOutcome::single(issue) }
}

/// Every `reference` string in `value`.
fn collect_references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("reference", Value::String(r)) if !out.contains(r) => out.push(r.clone()),
                    _ => collect_references(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_references(i, out)),
        _ => {}
    }
}

fn replace_reference(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match child {
                    Value::String(r) if key == "reference" && r == from => *r = to.to_owned(),
                    _ => replace_reference(child, from, to),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| replace_reference(i, from, to)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use termin_store::{RequestContext, Scope, TokenPrincipal};

    fn token(scopes: &str, patient: Option<&str>, fhir_user: Option<&str>) -> Caller {
        let principal = TokenPrincipal {
            subject: "u1".into(),
            client_id: None,
            patient: patient.map(str::to_owned),
            fhir_user: fhir_user.map(str::to_owned),
        };
        Caller::new(RequestContext::anonymous("r").with_token(principal, Scope::parse_all(scopes)))
    }

    #[test]
    fn only_callers_reaching_every_patient_relay_freely() {
        let at = "upstream a";
        let patient = token("patient/*.cruds", Some("p1"), None);
        assert_eq!(
            confinement(&patient, ResourceType::Appointment, Permission::Read, at).unwrap().as_deref(),
            Some("p1")
        );
        assert_eq!(confinement(&patient, ResourceType::Slot, Permission::Update, at).unwrap(), None, "no patient data");
        let no_context = token("patient/*.cruds", None, None);
        assert_eq!(
            confinement(&no_context, ResourceType::Appointment, Permission::Create, at).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        let staff = token("user/*.cruds", None, Some("PractitionerRole/r1"));
        assert_eq!(
            confinement(&staff, ResourceType::Appointment, Permission::Read, at).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(confinement(&staff, ResourceType::Patient, Permission::Read, at).unwrap(), None);
        assert_eq!(
            confinement(&token("system/*.cruds", None, None), ResourceType::Appointment, Permission::Delete, at)
                .unwrap(),
            None
        );
        assert_eq!(
            confinement(&Caller::anonymous("r"), ResourceType::Appointment, Permission::Create, at).unwrap(),
            None
        );
    }

    #[test]
    fn the_record_of_a_relay_names_the_answered_resource_and_its_patients() {
        let booked = json!({"resourceType": "Parameters", "parameter": [
            {"name": "appointment", "resource": {"resourceType": "Appointment", "id": "a.17",
             "subject": {"reference": "Patient/a.9"}, "participant": [{"actor": {"reference": "Patient/a.9"}}]}}]});
        let appointment = answered_resource(&booked).unwrap();
        let mut record = AuditRecord::new(AuditAction::Execute, "$book");
        record.patients.push("p1".into());
        note_answered(&mut record, appointment);
        assert_eq!(record.patients, ["p1"]);
        assert_eq!(record.resources, ["Appointment/a.17", "Patient/a.9"], "the target's record of the patient");
        let mut read = AuditRecord::new(AuditAction::Read, "read");
        note_answered(&mut read, appointment);
        assert_eq!(read.patients, ["a.9"]);
        assert_eq!(read.resources, ["Appointment/a.17"]);
        assert!(answered_resource(&json!({"resourceType": "OperationOutcome"})).is_none());
        assert!(answered_resource(&json!({"resourceType": "Bundle"})).is_none());
    }
}
