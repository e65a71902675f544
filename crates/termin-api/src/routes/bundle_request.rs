//! `POST [base]` with a `batch` or `transaction` Bundle (R5 http.html#transaction).
//!
//! A batch runs each entry as the request it describes, one after another, through the same
//! router a request of its own passes (authorization, audit, scheduling rules, errors): each
//! succeeds or fails alone. A transaction runs its writes in one unit of work of the domain,
//! in the FHIR order (DELETE, POST, PUT, PATCH), with `urn:uuid:`/`urn:oid:` full URLs and
//! conditional references resolved in the whole Bundle; the first failing entry rolls
//! everything back and answers its error, naming the entry. Its reads (GET, HEAD) run after
//! the commit and see what it wrote.

use super::instance::write_response;
use super::type_level::criteria;
use super::{BaseUrl, resource_type};
use crate::auth::authorize_entry;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::format::{FHIR_JSON, FhirBody, FhirResponse, JSON_PATCH, ResponseFormat};
use crate::SharedState;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use termin_domain::{CreateTarget, Transaction, WriteOutcome, WriteTarget};
use termin_fhir::instant::{format_http_date, format_instant, parse_http_date};
use termin_fhir::{Issue, IssueCode, ResourceType};
use termin_store::Permission;
use tower::ServiceExt;

/// The route of batches and transactions: the FHIR base.
pub const PATH: &str = "/fhir";

/// The headers of the Bundle's request that every entry's request carries too (`host`: links
/// and locations are built on it when no base URL is configured).
const SHARED_HEADERS: [&str; 5] = ["host", "authorization", "prefer", "x-request-id", crate::context::HOLD_TOKEN];

/// One `Bundle.entry` as a request.
struct EntryRequest {
    index: usize,
    full_url: Option<String>,
    method: Method,
    /// The URL relative to the base, without a leading `/`.
    url: String,
    resource: Option<Map<String, Value>>,
    /// `request.ifMatch`, `ifNoneMatch`, `ifNoneExist`, `ifModifiedSince` as HTTP headers.
    headers: HeaderMap,
}

impl EntryRequest {
    /// `Bundle.entry[i] (fullUrl …, POST Patient)`: how errors name the entry.
    fn name(&self) -> String {
        let full_url = self.full_url.as_deref().map(|u| format!("fullUrl {u}, ")).unwrap_or_default();
        format!("Bundle.entry[{}] ({full_url}{} {})", self.index, self.method, self.url)
    }

    /// The error of this entry: its status, each issue saying which entry it is about.
    fn error(&self, error: impl Into<ApiError>) -> ApiError {
        let mut error = error.into();
        let name = self.name();
        for issue in &mut error.outcome.issues {
            issue.diagnostics = format!("{name}: {}", issue.diagnostics);
            issue.expression.insert(0, format!("Bundle.entry[{}]", self.index));
        }
        error
    }

    fn path_and_query(&self) -> (&str, Option<&str>) {
        match self.url.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (self.url.as_str(), None),
        }
    }

    fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The kinds of Bundle this endpoint processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Batch,
    Transaction,
}

pub async fn process(
    State(state): State<SharedState>,
    Ctx(ctx): Ctx,
    format: ResponseFormat,
    base: BaseUrl,
    headers: HeaderMap,
    extensions: Extensions,
    FhirBody(bundle): FhirBody,
) -> Result<FhirResponse, ApiError> {
    let kind = match (bundle.get("resourceType").and_then(Value::as_str), bundle.get("type").and_then(Value::as_str)) {
        (Some("Bundle"), Some("batch")) => Kind::Batch,
        (Some("Bundle"), Some("transaction")) => Kind::Transaction,
        (Some("Bundle"), other) => {
            return Err(ApiError::bad_request(
                Issue::error(
                    IssueCode::Value,
                    format!(
                        "POST to the base takes a Bundle of type batch or transaction, not {}",
                        other.map_or("one without a type".to_owned(), |t| format!("{t:?}"))
                    ),
                )
                .at("Bundle.type"),
            ));
        }
        (other, _) => {
            return Err(ApiError::bad_request(Issue::error(
                IssueCode::Invalid,
                format!(
                    "POST to the base takes a batch or transaction Bundle, not a {}",
                    other.unwrap_or("resource without resourceType")
                ),
            )));
        }
    };
    let entries = match bundle.get("entry") {
        None => Vec::new(),
        Some(Value::Array(entries)) => entries.clone(),
        Some(_) => return Err(ApiError::bad_request(Issue::error(IssueCode::Structure, "Bundle.entry must be an array"))),
    };
    let limit = state.config.max_bundle_entries;
    if entries.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Issue::error(
                IssueCode::TooCostly,
                format!("The Bundle has {} entries, more than the limit of {limit}; split it", entries.len()),
            )
            .at("Bundle.entry"),
        ));
    }
    let parsed = entries.iter().enumerate().map(|(index, entry)| parse_entry(index, entry, &base));
    let response_entries = match kind {
        Kind::Batch => {
            let dispatcher = Dispatcher::new(&state, &headers, &extensions);
            let mut answers = Vec::with_capacity(entries.len());
            for entry in parsed {
                let answer = match entry {
                    Ok(entry) => dispatcher.send(&entry).await,
                    Err(error) => error.into_response(),
                };
                answers.push(response_entry(answer, &base).await);
            }
            answers
        }
        Kind::Transaction => {
            let entries = parsed.collect::<Result<Vec<_>, _>>()?;
            let answers = run_transaction(&state, &ctx, &base, &headers, &entries).await?;
            let dispatcher = Dispatcher::new(&state, &headers, &extensions);
            let mut response_entries = Vec::with_capacity(entries.len());
            for (entry, answer) in entries.iter().zip(answers) {
                let answer = match answer {
                    Some(answer) => answer,
                    None => dispatcher.send(entry).await,
                };
                response_entries.push(response_entry(answer, &base).await);
            }
            response_entries
        }
    };
    let kind_code = match kind {
        Kind::Batch => "batch-response",
        Kind::Transaction => "transaction-response",
    };
    let mut response = json!({"resourceType": "Bundle", "type": kind_code});
    if !response_entries.is_empty() {
        response["entry"] = Value::Array(response_entries);
    }
    Ok(FhirResponse::new(StatusCode::OK, format).json(response))
}

/// Reads `Bundle.entry[index]`; a malformed entry is 400 naming it.
fn parse_entry(index: usize, entry: &Value, base: &BaseUrl) -> Result<EntryRequest, ApiError> {
    let invalid = |message: String, at: &str| {
        ApiError::bad_request(Issue::error(IssueCode::Invalid, message).at(format!("Bundle.entry[{index}]{at}")))
    };
    let request = entry.get("request").ok_or_else(|| {
        invalid(format!("Bundle.entry[{index}] has no request (method and url)"), ".request")
    })?;
    let method = match request.get("method").and_then(Value::as_str) {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        Some("POST") => Method::POST,
        Some("PUT") => Method::PUT,
        Some("PATCH") => Method::PATCH,
        Some("DELETE") => Method::DELETE,
        other => {
            return Err(invalid(
                format!("Bundle.entry[{index}].request.method must be GET, HEAD, POST, PUT, PATCH or DELETE, not {other:?}"),
                ".request.method",
            ));
        }
    };
    let written = request.get("url").and_then(Value::as_str).unwrap_or_default();
    let url = written.strip_prefix(base.0.as_str()).unwrap_or(written).trim_start_matches('/').to_owned();
    let path = url.split('?').next().unwrap_or_default();
    if path.is_empty() || path.contains("://") {
        return Err(invalid(
            format!(
                "Bundle.entry[{index}].request.url must name a request relative to this server's base (e.g. Patient/123), \
                 not {written:?}; an entry cannot itself be a batch or transaction"
            ),
            ".request.url",
        ));
    }
    let resource = match entry.get("resource") {
        None => None,
        Some(Value::Object(resource)) => Some(resource.clone()),
        Some(_) => return Err(invalid(format!("Bundle.entry[{index}].resource must be a resource"), ".resource")),
    };
    let mut headers = HeaderMap::new();
    for (element, name) in [
        ("ifMatch", header::IF_MATCH),
        ("ifNoneMatch", header::IF_NONE_MATCH),
        ("ifNoneExist", HeaderName::from_static("if-none-exist")),
        ("ifModifiedSince", header::IF_MODIFIED_SINCE),
    ] {
        let Some(value) = request.get(element).and_then(Value::as_str) else {
            continue;
        };
        // An instant in the Bundle, an HTTP date on the wire.
        let value = match element {
            "ifModifiedSince" => value
                .parse::<jiff::Timestamp>()
                .map(format_http_date)
                .map_err(|_| invalid(format!("ifModifiedSince must be an instant, not {value:?}"), ".request.ifModifiedSince"))?,
            _ => value.to_owned(),
        };
        let value = HeaderValue::from_str(&value)
            .map_err(|_| invalid(format!("request.{element} holds characters a header cannot carry"), ".request"))?;
        headers.insert(name, value);
    }
    Ok(EntryRequest {
        index,
        full_url: entry.get("fullUrl").and_then(Value::as_str).map(str::to_owned),
        method,
        url,
        resource,
        headers,
    })
}

/// Sends entries through the FHIR router as requests of their own, with the Bundle request's
/// credentials, preferences and client address.
struct Dispatcher {
    router: axum::Router,
    shared: HeaderMap,
    client: Option<ConnectInfo<SocketAddr>>,
}

impl Dispatcher {
    fn new(state: &SharedState, headers: &HeaderMap, extensions: &Extensions) -> Self {
        let mut shared = HeaderMap::new();
        for name in SHARED_HEADERS {
            for value in headers.get_all(name) {
                shared.append(HeaderName::from_static(name), value.clone());
            }
        }
        Dispatcher {
            router: crate::fhir_api(state.clone()),
            shared,
            client: extensions.get::<ConnectInfo<SocketAddr>>().copied(),
        }
    }

    async fn send(&self, entry: &EntryRequest) -> Response {
        match self.request(entry) {
            Ok(request) => match self.router.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            Err(error) => entry.error(error).into_response(),
        }
    }

    fn request(&self, entry: &EntryRequest) -> Result<Request<Body>, ApiError> {
        let uri = format!("{PATH}/{}", percent_encoding::utf8_percent_encode(&entry.url, URL_UNSAFE));
        let mut request = Request::builder().method(entry.method.clone()).uri(uri.as_str());
        let headers = request.headers_mut().expect("a fresh builder has headers");
        headers.extend(self.shared.clone());
        headers.extend(entry.headers.clone());
        headers.insert(header::ACCEPT, HeaderValue::from_static(FHIR_JSON));
        let body = match (&entry.method, &entry.resource) {
            (&Method::PATCH, Some(resource)) => {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_PATCH));
                Body::from(patch_document(resource)?.to_string())
            }
            (_, Some(resource)) => {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
                Body::from(Value::Object(resource.clone()).to_string())
            }
            (_, None) => Body::empty(),
        };
        let mut request = request.body(body).map_err(|_| {
            ApiError::bad_request(Issue::error(IssueCode::Invalid, format!("request.url {:?} is not a valid URL", entry.url)))
        })?;
        if let Some(client) = &self.client {
            request.extensions_mut().insert(*client);
        }
        Ok(request)
    }
}

/// What an entry's URL may not carry as it is: controls, space and the characters RFC 3986
/// leaves out (`%` stays, for URLs percent-encoded already).
const URL_UNSAFE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A PATCH entry's JSON Patch: FHIR carries it as a Binary (`contentType`
/// `application/json-patch+json`, base64 `data`).
fn patch_document(resource: &Map<String, Value>) -> Result<Value, ApiError> {
    let refuse = |why: &str| {
        ApiError::bad_request(Issue::error(
            IssueCode::NotSupported,
            format!(
                "A PATCH entry carries its JSON Patch as a Binary resource with contentType {JSON_PATCH} and the \
                 document base64-encoded in data; {why}"
            ),
        ))
    };
    if resource.get("resourceType").and_then(Value::as_str) != Some("Binary") {
        return Err(refuse("this entry's resource is not a Binary"));
    }
    if resource.get("contentType").and_then(Value::as_str).map(|t| t.split(';').next().unwrap_or_default().trim())
        != Some(JSON_PATCH)
    {
        return Err(refuse("this Binary has another contentType"));
    }
    let data = resource.get("data").and_then(Value::as_str).unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD.decode(data).map_err(|_| refuse("its data is not base64"))?;
    termin_fhir::json::parse_value(&bytes).map_err(ApiError::bad_request)
}

/// Runs the writes of a transaction in one unit of work and commits; answers, per entry in
/// Bundle order, the response of each write (`None` for reads, which run after the commit).
async fn run_transaction(
    state: &SharedState,
    ctx: &termin_domain::Caller,
    base: &BaseUrl,
    headers: &HeaderMap,
    entries: &[EntryRequest],
) -> Result<Vec<Option<Response>>, ApiError> {
    let mut plans = Vec::with_capacity(entries.len());
    for entry in entries {
        let plan = plan(state, base, entry).map_err(|e| entry.error(e))?;
        if let Some((resource_type, permission)) = plan.needs()
            && let Err(error) = authorize_entry(state.auth.as_ref(), ctx.context(), resource_type, permission)
        {
            audit_refusal(state, ctx, entry, resource_type, &plan, &error).await;
            return Err(entry.error(error));
        }
        plans.push(plan);
    }
    let mut tx = state.domain.resources.transaction(ctx).await?;
    let mut answers: Vec<Option<Response>> = (0..entries.len()).map(|_| None).collect();
    // R5 http.html#trules: deletes first, then creates, then updates and patches.
    for (entry, plan) in entries.iter().zip(&plans) {
        if let Plan::Delete { resource_type, id, conditions } = plan {
            let found = match (id, conditions) {
                (Some(id), _) => Some(id.clone()),
                (None, conditions) => {
                    tx.resolve_one(*resource_type, Permission::Delete, conditions).await.map_err(|e| entry.error(e))?
                }
            };
            if let Some(id) = found {
                let if_match = super::if_match(&entry.headers).map_err(|e| entry.error(e))?;
                tx.delete(*resource_type, &id, if_match).await.map_err(|e| entry.error(e))?;
            }
            let deleted = FhirResponse::new(StatusCode::NO_CONTENT, ResponseFormat::default());
            answers[entry.index] = Some(deleted.into_response());
        }
    }
    // Where each create and update goes, so that references to their full URLs can be resolved.
    let mut targets: Vec<Option<Target>> = (0..entries.len()).map(|_| None).collect();
    let mut written: HashSet<(ResourceType, String)> = HashSet::new();
    let mut full_urls: HashMap<String, (ResourceType, String)> = HashMap::new();
    for (entry, plan) in entries.iter().zip(&plans) {
        let (resource_type, target) = match plan {
            Plan::Create { resource_type, if_none_exist } => {
                let target =
                    tx.resolve_create(*resource_type, if_none_exist.as_deref()).await.map_err(|e| entry.error(e))?;
                (*resource_type, Target::Create(target))
            }
            Plan::Update { resource_type, id: Some(id), .. } => (*resource_type, Target::Update(WriteTarget::Id(id.clone()))),
            Plan::Update { resource_type, id: None, conditions } => {
                let body = entry.resource.as_ref().expect("planned with a resource");
                let target =
                    tx.resolve_conditional_update(*resource_type, conditions, body).await.map_err(|e| entry.error(e))?;
                (*resource_type, Target::Update(target))
            }
            Plan::Patch { resource_type, id } => (*resource_type, Target::Update(WriteTarget::Id(id.clone()))),
            Plan::Delete { .. } | Plan::Read => continue,
        };
        let id = target.id().to_owned();
        if !written.insert((resource_type, id.clone())) {
            return Err(entry.error(ApiError::bad_request(Issue::error(
                IssueCode::Duplicate,
                format!("{resource_type}/{id} is written by more than one entry of the transaction"),
            ))));
        }
        if let Some(full_url) = entry.full_url.as_ref().filter(|u| is_local_identifier(u)) {
            full_urls.insert(full_url.clone(), (resource_type, id));
        }
        targets[entry.index] = Some(target);
    }
    for phase in [Phase::Create, Phase::Update, Phase::Patch] {
        for index in write_order(entries, &plans, phase) {
            let (entry, plan) = (&entries[index], &plans[index]);
            let target = targets[entry.index].take().expect("every write has a target");
            let search = state.domain.search_parameters();
            let outcome =
                write(&mut tx, search, base, entry, plan, target, &full_urls).await.map_err(|e| entry.error(e))?;
            answers[entry.index] = Some(write_response(outcome, headers, ResponseFormat::default(), base).into_response());
        }
    }
    tx.commit().await?;
    Ok(answers)
}

/// The entries of one phase in the order they are written: in Bundle order, except that an
/// entry referring to another's Bundle-local full URL comes after it (a booked Appointment
/// after the Patient it names), as far as the references do not go round in a circle.
fn write_order(entries: &[EntryRequest], plans: &[Plan], phase: Phase) -> Vec<usize> {
    let mut pending: Vec<usize> = (0..entries.len()).filter(|&i| plans[i].phase() == Some(phase)).collect();
    let references: Vec<HashSet<String>> = entries
        .iter()
        .map(|entry| {
            let mut found = HashSet::new();
            if let Some(resource) = &entry.resource {
                collect_local_identifiers(resource, &mut found);
            }
            found
        })
        .collect();
    let mut order = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let waits_for_pending = |i: usize| {
            pending.iter().any(|&other| {
                other != i && entries[other].full_url.as_ref().is_some_and(|url| references[i].contains(url))
            })
        };
        let next = pending.iter().position(|&i| !waits_for_pending(i)).unwrap_or(0);
        order.push(pending.remove(next));
    }
    order
}

/// The Bundle-local identifiers (`urn:uuid:`, `urn:oid:`) anywhere in `resource`.
fn collect_local_identifiers(resource: &Map<String, Value>, found: &mut HashSet<String>) {
    for value in resource.values() {
        match value {
            Value::String(text) if is_local_identifier(text) => {
                found.insert(text.clone());
            }
            Value::Object(inner) => collect_local_identifiers(inner, found),
            Value::Array(items) => {
                for inner in items.iter().filter_map(Value::as_object) {
                    collect_local_identifiers(inner, found);
                }
            }
            _ => {}
        }
    }
}

/// Records a refused entry as the refused request sent alone would be.
async fn audit_refusal(
    state: &SharedState,
    ctx: &termin_domain::Caller,
    entry: &EntryRequest,
    resource_type: ResourceType,
    plan: &Plan,
    error: &ApiError,
) {
    let (action, interaction) = match plan {
        Plan::Create { .. } => (termin_domain::AuditAction::Create, "create"),
        Plan::Update { .. } | Plan::Patch { .. } => (termin_domain::AuditAction::Update, "update"),
        Plan::Delete { .. } | Plan::Read => (termin_domain::AuditAction::Delete, "delete"),
    };
    let mut record = termin_domain::AuditRecord::new(action, interaction);
    if let Some(id) = plan.id() {
        if resource_type == ResourceType::Patient {
            record.patients.push(id.to_owned());
        }
        record.resources.push(format!("{resource_type}/{id}"));
    }
    tracing::info!(entry = %entry.name(), status = error.status.as_u16(), "transaction entry refused");
    state.domain.audit_denied(ctx, record, error.status.as_u16()).await;
}

/// A transaction entry, understood.
enum Plan {
    Create { resource_type: ResourceType, if_none_exist: Option<Vec<termin_store::Condition>> },
    /// `PUT Type/id` (`id`) or `PUT Type?criteria` (`conditions`).
    Update { resource_type: ResourceType, id: Option<String>, conditions: Vec<termin_store::Condition> },
    Patch { resource_type: ResourceType, id: String },
    /// `DELETE Type/id` (`id`) or `DELETE Type?criteria` (`conditions`).
    Delete { resource_type: ResourceType, id: Option<String>, conditions: Vec<termin_store::Condition> },
    /// GET or HEAD: sent through the router after the commit.
    Read,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Create,
    Update,
    Patch,
}

impl Plan {
    /// The permission the entry needs, as its interaction sent alone would (reads are
    /// authorised when they are sent).
    fn needs(&self) -> Option<(ResourceType, Permission)> {
        match self {
            Plan::Create { resource_type, .. } => Some((*resource_type, Permission::Create)),
            Plan::Update { resource_type, .. } | Plan::Patch { resource_type, .. } => Some((*resource_type, Permission::Update)),
            Plan::Delete { resource_type, .. } => Some((*resource_type, Permission::Delete)),
            Plan::Read => None,
        }
    }

    fn phase(&self) -> Option<Phase> {
        match self {
            Plan::Create { .. } => Some(Phase::Create),
            Plan::Update { .. } => Some(Phase::Update),
            Plan::Patch { .. } => Some(Phase::Patch),
            Plan::Delete { .. } | Plan::Read => None,
        }
    }

    fn id(&self) -> Option<&str> {
        match self {
            Plan::Update { id, .. } | Plan::Delete { id, .. } => id.as_deref(),
            Plan::Patch { id, .. } => Some(id),
            Plan::Create { .. } | Plan::Read => None,
        }
    }
}

/// Where a create or update of a transaction goes.
enum Target {
    Create(CreateTarget),
    Update(WriteTarget),
}

impl Target {
    fn id(&self) -> &str {
        match self {
            Target::Create(target) => target.id(),
            Target::Update(target) => target.id(),
        }
    }
}

/// Understands a transaction entry: its interaction, type, id and criteria.
fn plan(state: &SharedState, base: &BaseUrl, entry: &EntryRequest) -> Result<Plan, ApiError> {
    if matches!(entry.method, Method::GET | Method::HEAD) {
        return Ok(Plan::Read);
    }
    let (path, query) = entry.path_and_query();
    let segments: Vec<&str> = path.split('/').collect();
    let resource_type = resource_type(segments[0])?;
    let search = state.domain.search_parameters();
    let id = match segments.as_slice() {
        [_] => None,
        [_, id] if !id.starts_with('$') && !id.starts_with('_') => Some((*id).to_owned()),
        _ => {
            return Err(ApiError::bad_request(Issue::error(
                IssueCode::NotSupported,
                format!(
                    "A transaction runs create, update, patch, delete and reads; {} {} is not one of them \
                     (operations such as $hold and $book can be sent in a batch)",
                    entry.method, entry.url
                ),
            )));
        }
    };
    let needs_resource = |what: &str| {
        entry.resource.as_ref().map(|_| ()).ok_or_else(|| {
            ApiError::bad_request(
                Issue::error(IssueCode::Required, format!("A {what} entry needs a resource"))
                    .at(format!("Bundle.entry[{}].resource", entry.index)),
            )
        })
    };
    let refuse_if_none_match = |what: &str| match entry.headers.contains_key(header::IF_NONE_MATCH) {
        true => Err(ApiError::bad_request(
            Issue::error(IssueCode::NotSupported, format!("{what} does not take request.ifNoneMatch"))
                .at(format!("Bundle.entry[{}].request.ifNoneMatch", entry.index)),
        )),
        false => Ok(()),
    };
    match (&entry.method, id) {
        (&Method::POST, None) if query.is_none() => {
            needs_resource("create")?;
            let if_none_exist = match entry.header(HeaderName::from_static("if-none-exist")) {
                None => None,
                Some(criteria_text) => Some(criteria(search, resource_type, Some(criteria_text), "ifNoneExist", base)?),
            };
            Ok(Plan::Create { resource_type, if_none_exist })
        }
        (&Method::PUT, Some(id)) => {
            needs_resource("update")?;
            Ok(Plan::Update { resource_type, id: Some(id), conditions: Vec::new() })
        }
        (&Method::PUT, None) => {
            needs_resource("conditional update")?;
            refuse_if_none_match("A conditional update")?;
            let conditions = criteria(search, resource_type, query, "A conditional update", base)?;
            Ok(Plan::Update { resource_type, id: None, conditions })
        }
        (&Method::PATCH, Some(id)) => {
            needs_resource("patch")?;
            Ok(Plan::Patch { resource_type, id })
        }
        (&Method::DELETE, id) => {
            refuse_if_none_match("A delete")?;
            let conditions = match &id {
                Some(_) => Vec::new(),
                None => criteria(search, resource_type, query, "A conditional delete", base)?,
            };
            Ok(Plan::Delete { resource_type, id, conditions })
        }
        (method, _) => Err(ApiError::bad_request(Issue::error(
            IssueCode::NotSupported,
            format!("{method} {} is not an interaction a transaction runs", entry.url),
        ))),
    }
}

/// Runs one create, update or patch of a transaction, its references resolved.
async fn write(
    tx: &mut Transaction<'_>,
    search: &'static termin_search::SearchParameters,
    base: &BaseUrl,
    entry: &EntryRequest,
    plan: &Plan,
    target: Target,
    full_urls: &HashMap<String, (ResourceType, String)>,
) -> Result<WriteOutcome, ApiError> {
    let if_match = super::if_match(&entry.headers)?;
    let mut resource = entry.resource.clone().unwrap_or_default();
    resolve_references(tx, search, base, &mut resource, full_urls).await?;
    let outcome = match (plan, target) {
        (Plan::Create { resource_type, .. }, Target::Create(target)) => tx.create(*resource_type, target, resource).await?,
        (Plan::Update { resource_type, .. }, Target::Update(target)) => {
            let create_only = create_only(entry)?;
            if create_only && if_match.is_some() {
                return Err(ApiError::bad_request(Issue::error(
                    IssueCode::Invalid,
                    "ifMatch (update that version) and ifNoneMatch: * (create only) contradict each other",
                )));
            }
            tx.update(*resource_type, target, resource, if_match, create_only).await?
        }
        (Plan::Patch { resource_type, id }, _) => tx.patch(*resource_type, id, patch_document(&resource)?, if_match).await?,
        _ => return Err(ApiError::internal()),
    };
    Ok(outcome)
}

/// `ifNoneMatch: *` on an update: create only if the resource does not exist.
fn create_only(entry: &EntryRequest) -> Result<bool, ApiError> {
    match entry.header(header::IF_NONE_MATCH).map(str::trim) {
        None => Ok(false),
        Some("*") => Ok(true),
        Some(other) => Err(ApiError::bad_request(Issue::error(
            IssueCode::NotSupported,
            format!("ifNoneMatch on an update takes only * (create only if the resource does not exist), not {other:?}"),
        ))),
    }
}

/// Whether a full URL is a Bundle-local identifier that the server replaces with the id it
/// assigns.
fn is_local_identifier(url: &str) -> bool {
    url.starts_with("urn:uuid:") || url.starts_with("urn:oid:")
}

/// Replaces, anywhere in `resource` (extensions and contained resources included), the full
/// URLs of the Bundle's entries by the resources they became: `Type/id` in `reference`
/// elements, the absolute URL in other elements (uri, url, such as `Attachment.url`) and in
/// the narrative's links. A `reference` of the form `Type?criteria` is resolved to its one
/// match (none or several: 412).
async fn resolve_references(
    tx: &mut Transaction<'_>,
    search: &'static termin_search::SearchParameters,
    base: &BaseUrl,
    resource: &mut Map<String, Value>,
    full_urls: &HashMap<String, (ResourceType, String)>,
) -> Result<(), ApiError> {
    let mut conditional = Vec::new();
    replace_full_urls(resource, base, full_urls, &mut conditional)?;
    let mut resolved = HashMap::new();
    for reference in conditional {
        let (type_name, query) = reference.split_once('?').unwrap_or_default();
        let resource_type = resource_type(type_name)?;
        let conditions = criteria(search, resource_type, Some(query), "A conditional reference", base)?;
        let found = tx.resolve_one(resource_type, Permission::Search, &conditions).await?;
        let Some(id) = found else {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                Issue::error(IssueCode::NotFound, format!("The conditional reference {reference:?} matches no {resource_type}")),
            ));
        };
        resolved.insert(reference, format!("{resource_type}/{id}"));
    }
    if !resolved.is_empty() {
        replace_conditional(resource, &resolved);
    }
    Ok(())
}

/// The string replacements of [`resolve_references`]; collects the conditional references.
fn replace_full_urls(
    object: &mut Map<String, Value>,
    base: &BaseUrl,
    full_urls: &HashMap<String, (ResourceType, String)>,
    conditional: &mut Vec<String>,
) -> Result<(), ApiError> {
    for (key, value) in object.iter_mut() {
        match value {
            Value::String(text) if key == "reference" => {
                if let Some((resource_type, id)) = full_urls.get(text.as_str()) {
                    *text = format!("{resource_type}/{id}");
                } else if is_local_identifier(text) {
                    return Err(ApiError::bad_request(
                        Issue::error(
                            IssueCode::NotFound,
                            format!("The reference {text:?} names no entry of the transaction (no entry has that fullUrl)"),
                        ),
                    ));
                } else if text.contains('?') && !text.contains("://") {
                    conditional.push(text.clone());
                }
            }
            Value::String(text) if key == "div" => {
                for (full_url, (resource_type, id)) in full_urls {
                    if text.contains(full_url.as_str()) {
                        *text = text.replace(&format!("\"{full_url}\""), &format!("\"{}/{resource_type}/{id}\"", base.0));
                    }
                }
            }
            Value::String(text) => {
                if let Some((resource_type, id)) = full_urls.get(text.as_str()) {
                    *text = format!("{}/{resource_type}/{id}", base.0);
                }
            }
            Value::Object(inner) => replace_full_urls(inner, base, full_urls, conditional)?,
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(inner) = item {
                        replace_full_urls(inner, base, full_urls, conditional)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn replace_conditional(object: &mut Map<String, Value>, resolved: &HashMap<String, String>) {
    for (key, value) in object.iter_mut() {
        match value {
            Value::String(text) if key == "reference" => {
                if let Some(reference) = resolved.get(text.as_str()) {
                    *text = reference.clone();
                }
            }
            Value::Object(inner) => replace_conditional(inner, resolved),
            Value::Array(items) => {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    replace_conditional(item, resolved);
                }
            }
            _ => {}
        }
    }
}

/// The `Bundle.entry` answering one entry: `response` (status, location, etag, lastModified,
/// outcome) and the resource returned, from the HTTP response the entry got.
async fn response_entry(response: Response, base: &BaseUrl) -> Value {
    let (parts, body) = response.into_parts();
    let status = parts.status;
    let mut answer = Map::new();
    let reason = status.canonical_reason().map(|r| format!(" {r}")).unwrap_or_default();
    answer.insert("status".into(), json!(format!("{}{reason}", status.as_u16())));
    let header_text = |name: HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(location) = header_text(header::LOCATION) {
        let relative = location.strip_prefix(&format!("{}/", base.0)).map(str::to_owned).unwrap_or(location);
        answer.insert("location".into(), json!(relative));
    }
    if let Some(etag) = header_text(header::ETAG) {
        answer.insert("etag".into(), json!(etag));
    }
    if let Some(modified) = header_text(header::LAST_MODIFIED).and_then(|d| parse_http_date(&d)) {
        answer.insert("lastModified".into(), json!(format_instant(modified)));
    }
    let bytes = http_body_util::BodyExt::collect(body).await.map(|b| b.to_bytes()).unwrap_or_default();
    let payload = match bytes.is_empty() {
        true => None,
        false => termin_fhir::json::parse_value(&bytes).ok(),
    };
    let mut entry = Map::new();
    match payload {
        // Errors, and writes answered as `Prefer: return=OperationOutcome` asked.
        Some(outcome) if outcome["resourceType"] == "OperationOutcome" => {
            answer.insert("outcome".into(), outcome);
        }
        Some(resource) => {
            if let (Some(type_name), Some(id)) = (resource["resourceType"].as_str(), resource["id"].as_str())
                && type_name != "Bundle"
            {
                entry.insert("fullUrl".into(), json!(format!("{}/{type_name}/{id}", base.0)));
            }
            entry.insert("resource".into(), resource);
        }
        None => {}
    }
    entry.insert("response".into(), Value::Object(answer));
    Value::Object(entry)
}
