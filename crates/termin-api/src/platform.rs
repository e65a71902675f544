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
//!   this server is matched or created at the target.
//!
//! Everything else is this server's own.

use crate::SharedState;
use crate::context::{Ctx, HOLD_TOKEN};
use crate::error::ApiError;
use crate::format::{FhirBody, FhirResponse, JsonPatchBody, ResponseFormat, read_limited};
use crate::query::encode;
use crate::routes::BaseUrl;
use crate::routes::search::page_size;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use termin_fhir::{Issue, IssueCode, OperationOutcome, ResourceType};
use termin_platform::merge::{self, CURSOR_PARAM, MergedPage, Order, Position, SourcePage};
use termin_platform::{Platform, RelayError, UpstreamRequest, ids, via};
use termin_store::Permission;
use tokio::task::JoinSet;

/// Headers of the client's request that a relay passes on.
const RELAYED_REQUEST_HEADERS: [&str; 6] =
    ["if-match", "if-none-match", "if-modified-since", "if-none-exist", "prefer", HOLD_TOKEN];

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
    Relay { name: String, path: String },
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
                self.relay(&incoming, &name, &path, body).await
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
        let kind = Kind::Search(resource_type);
        let count = self.count(&pairs)?;
        match self.fetch_and_merge(&incoming, kind, positions, None, count).await? {
            Merged::Page(merged) => self.searchset(&incoming, &kind.path(), pairs, merged).await,
            Merged::Refused(response) => Ok(response),
        }
    }

    /// Where each source's first page is, or the cursor's positions; `None`: only this server's
    /// own data can match.
    fn positions(&self, resource_type: ResourceType, pairs: &[(String, String)]) -> Result<Option<Vec<Position>>, ApiError> {
        if let Some((_, cursor)) = pairs.iter().find(|(name, _)| name == CURSOR_PARAM) {
            // At most one position per source: a cursor cannot make the platform ask more.
            let positions = merge::decode_cursor(cursor).filter(|positions| {
                let sources: std::collections::HashSet<&str> = positions.iter().map(|p| p.source.as_str()).collect();
                sources.len() == positions.len()
            });
            return positions.map(Some).ok_or_else(|| {
                ApiError::bad_request(
                    Issue::error(IssueCode::Invalid, format!("{CURSOR_PARAM} is not a cursor this platform made")).at(CURSOR_PARAM),
                )
            });
        }
        let count = self.count(pairs)?;
        let selecting: Vec<(String, String)> = pairs.iter().filter(|(name, _)| !is_page_parameter(name)).cloned().collect();
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
            let (platform, via, base, next) = (self.platform.clone(), self.via.clone(), base.clone(), self.next.clone());
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
    async fn searchset(&self, incoming: &Incoming, path: &str, pairs: Vec<(String, String)>, merged: MergedPage) -> Result<Response, ApiError> {
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
        }
        if !issues.is_empty() {
            let outcome = json!({"resourceType": "OperationOutcome", "issue": issues});
            entries.push(json!({"resource": outcome, "search": {"mode": "outcome"}}));
        }
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
        let owner = body
            .as_ref()
            .and_then(termin_fhir::Parameters::read_value)
            .and_then(|p| {
                p.named("slot-reference").find_map(|e| e.get("valueReference")?.get("reference")?.as_str().map(str::to_owned))
            })
            .and_then(|reference| termin_fhir::reference_id(&reference, ResourceType::Slot).map(str::to_owned))
            .and_then(|id| self.platform.owner(&id).map(|(u, _)| u.name().to_owned()));
        match owner {
            Some(name) => self.relay(&incoming, &name, "Slot/$hold", body).await,
            None => Ok(self.local(incoming).await),
        }
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
        let owners: Vec<String> = appointment["slot"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["reference"].as_str())
            .filter_map(|r| termin_fhir::reference_id(r, ResourceType::Slot))
            .map(|id| self.platform.owner(id).map(|(u, _)| u.name().to_owned()).unwrap_or_default())
            .collect();
        let Some(name) = owners.first().filter(|n| !n.is_empty()).cloned() else {
            return Ok(self.local(incoming).await);
        };
        if owners.iter().any(|o| *o != name) {
            return Err(ApiError::bad_request(
                Issue::error(IssueCode::NotSupported, "The Appointment's slots belong to different servers; book them separately")
                    .at("Appointment.slot"),
            ));
        }
        self.patients_to(&incoming, &name, appointment).await?;
        self.relay(&incoming, &name, "Appointment/$book", Some(body)).await
    }

    /// Points the Appointment's references to this server's patients at their records at
    /// upstream `name`, matching or creating them there.
    async fn patients_to(&self, incoming: &Incoming, name: &str, appointment: &mut Value) -> Result<(), ApiError> {
        let upstream = self.platform.upstream(name).ok_or_else(ApiError::internal)?;
        let mut references = Vec::new();
        collect_references(appointment, &mut references);
        let mut parts = incoming.parts.clone();
        let Ok(Ctx(ctx)) = Ctx::from_request_parts(&mut parts, &()).await;
        for reference in references {
            let Some(id) = termin_fhir::reference_id(&reference, ResourceType::Patient) else { continue };
            if self.platform.owner(id).is_some() {
                continue;
            }
            let patient = self.state.domain.resources.read(&ctx, ResourceType::Patient, id).await?;
            let patient = crate::bundle::stored_json(&patient)?.and_then(|p| p.as_object().cloned()).unwrap_or_default();
            let there = match self.platform.patient_at(upstream, &patient, &self.via).await {
                Ok(there) => there,
                Err(RelayError::Unreachable(failure)) => return Err(unreachable(failure)),
                Err(RelayError::Answered(answer)) => {
                    let told = answer.body.as_ref().map(merge::outcome_issues).unwrap_or_default();
                    let told: Vec<&str> = told.iter().filter_map(|i| i["diagnostics"].as_str()).collect();
                    return Err(ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        Issue::error(
                            IssueCode::Exception,
                            format!("Upstream {name} did not accept {reference} ({}): {}", answer.status, told.join("; ")),
                        ),
                    ));
                }
            };
            replace_reference(appointment, &reference, &format!("Patient/{}", ids::scoped(name, &there)));
        }
        Ok(())
    }

    /// Relays the request to upstream `name` at `path` and answers with what it answered.
    async fn relay(&self, incoming: &Incoming, name: &str, path: &str, body: Option<Value>) -> Result<Response, ApiError> {
        let upstream = self.platform.upstream(name).ok_or_else(ApiError::internal)?;
        let base = self.base(incoming).await?;
        let format = Self::format(incoming).await?;
        // The answer's format is the platform's business; everything else is the upstream's.
        let query: Vec<(String, String)> =
            owned_pairs(incoming.parts.uri.query()).into_iter().filter(|(n, _)| n != "_format" && n != "_pretty").collect();
        let query = encode(&query);
        let mut headers: Vec<(header::HeaderName, HeaderValue)> = RELAYED_REQUEST_HEADERS
            .iter()
            .filter_map(|&name| Some((header::HeaderName::from_static(name), incoming.parts.headers.get(name)?.clone())))
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
        let answer = self.platform.relay(upstream, request, &base).await.map_err(unreachable)?;
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
