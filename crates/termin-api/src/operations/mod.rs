//! The FHIR operations Termin implements. Each lives in its own module, which owns its
//! OperationDefinition, the reading of its inputs and its handler; [`OPERATIONS`] lists them,
//! and the router, the CapabilityStatement and authorization are all built from that list.

mod book;
mod find_hsp;
mod generate_slots;
mod hold;
mod subscription;
mod validate;

use crate::SharedState;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::format::{FhirBody, FhirResponse, ResponseFormat};
use crate::routes::{BaseUrl, resource_type};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{MethodRouter, post};
use serde_json::{Map, Value, json};
use std::future::Future;
use std::pin::Pin;
use termin_domain::Caller;
use termin_store::Permission;
use termin_fhir::{Issue, IssueCode, OperationOutcome, ResourceType};

/// Canonical base of Termin's own definitions (derived from the IG's, with Termin's extras).
const TERMIN_BASE: &str = "https://termin.at/fhir/OperationDefinition";

/// How the documentation of a parameter Termin adds to the definition it derives from starts.
const TERMIN_PARAMETER: &str = "Termin: ";

/// Every operation Termin serves.
pub const OPERATIONS: &[&Operation] = &[
    &hold::HOLD,
    &book::BOOK,
    &find_hsp::FIND_HSP,
    &validate::VALIDATE,
    &generate_slots::GENERATE_SLOTS,
    &subscription::STATUS,
    &subscription::EVENTS,
    &subscription::GET_WS_BINDING_TOKEN,
];

/// The operations anonymous callers may invoke under `--public-booking`.
pub const PUBLIC_BOOKING: [&Operation; 2] = [&hold::HOLD, &book::BOOK];

/// One invocation of an operation, as its handler receives it.
pub struct Invocation {
    pub ctx: Caller,
    /// The `[type]` of the URL; always one of the operation's `resources`.
    pub resource_type: ResourceType,
    /// The `[id]` of an instance-level invocation.
    pub id: Option<String>,
    pub query: Option<String>,
    pub format: ResponseFormat,
    pub base: BaseUrl,
    /// The request body; `None` when invoked with GET.
    pub body: Option<Map<String, Value>>,
}

type Answer = Result<FhirResponse, ApiError>;

/// An operation's handler (a plain function, so that it can sit in a constant).
pub type Handler = fn(SharedState, Invocation) -> Pin<Box<dyn Future<Output = Answer> + Send>>;

pub struct Operation {
    /// The OperationDefinition id, as served at `/fhir/OperationDefinition/[id]`.
    pub id: &'static str,
    /// The name after `$` in URLs.
    pub code: &'static str,
    /// The types it is invoked on (`[type]/$code`).
    pub resources: &'static [ResourceType],
    pub instance: bool,
    /// Whether it changes nothing, so that GET with query parameters invokes it too.
    pub safe: bool,
    /// The definition it is derived from (its `base`): the AT Scheduling IG's own canonical
    /// (R5's for `$validate`), which the CapabilityStatement names as the definition.
    pub base: &'static str,
    /// Only offered when resources are validated (`--packages`).
    pub needs_validator: bool,
    /// The SMART permission a caller needs; `None`: any valid token (it touches no data).
    pub needs: Option<(ResourceType, Permission)>,
    pub description: &'static str,
    pub parameters: fn() -> Value,
    pub handler: Handler,
}

impl Operation {
    pub fn url(&self) -> String {
        format!("{TERMIN_BASE}/{}", self.id)
    }

    /// The parameters Termin adds to the definition it derives from (`name (use)`).
    pub fn termin_parameters(&self) -> Vec<String> {
        let parameters = (self.parameters)();
        parameters
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["documentation"].as_str().is_some_and(|d| d.starts_with(TERMIN_PARAMETER)))
            .map(|p| format!("{} ({})", p["name"].as_str().unwrap_or_default(), p["use"].as_str().unwrap_or_default()))
            .collect()
    }

    /// What Termin adds to the base definition, for the served definition and the
    /// CapabilityStatement.
    pub fn additions(&self) -> String {
        let added = self.termin_parameters();
        if added.is_empty() {
            format!("Implements {} as defined", self.base)
        } else {
            format!("Implements {} and adds the parameters {}", self.base, added.join(", "))
        }
    }

    pub fn definition(&self) -> Value {
        json!({
            "resourceType": "OperationDefinition",
            "id": self.id,
            "url": self.url(),
            "name": self.id.replace('-', "_"),
            "title": format!("${} as implemented by Termin", self.code),
            "status": "active",
            "kind": "operation",
            "description": format!("{} {}.", self.description, self.additions()),
            "base": self.base,
            "code": self.code,
            "resource": self.resources.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            "system": false,
            "type": true,
            "instance": self.instance,
            "parameter": (self.parameters)(),
        })
    }

    fn type_path(&self) -> String {
        format!("/fhir/{{type}}/${}", self.code)
    }

    fn instance_path(&self) -> String {
        format!("/fhir/{{type}}/{{id}}/${}", self.code)
    }

    /// Runs the handler once the type is known to be one the operation is defined on.
    async fn invoke(&'static self, state: SharedState, type_name: &str, call: Call) -> Answer {
        let resource_type = self.defined_on(type_name, call.id.is_some())?;
        let invocation = Invocation {
            ctx: call.ctx,
            resource_type,
            id: call.id,
            query: call.query,
            format: call.format,
            base: call.base,
            body: call.body,
        };
        (self.handler)(state, invocation).await
    }

    /// The `[type]` of the URL, if the operation is defined on it.
    fn defined_on(&self, type_name: &str, instance: bool) -> Result<ResourceType, ApiError> {
        let resource_type = resource_type(type_name)?;
        if !self.resources.contains(&resource_type) {
            return Err(not_an_operation(&format!("${}", self.code), resource_type, instance));
        }
        Ok(resource_type)
    }

    /// GET of an operation that changes state: 405, once the type is known to have it.
    fn refuse_get(&self, type_name: &str) -> ApiError {
        match self.defined_on(type_name, false) {
            Ok(_) => ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                Issue::error(IssueCode::NotSupported, format!("${} changes state; invoke it with POST", self.code)),
            ),
            Err(not_here) => not_here,
        }
    }
}

/// What the route handlers extract before the type is checked.
struct Call {
    ctx: Caller,
    id: Option<String>,
    query: Option<String>,
    format: ResponseFormat,
    base: BaseUrl,
    body: Option<Map<String, Value>>,
}

/// Where an operation route leads: an operation, or the answer that none is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    Operation(&'static Operation),
    /// POST on an instance-shaped path that names no operation Termin has.
    Unknown,
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "${}", self.code)
    }
}

impl PartialEq for Operation {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Operation {}

const UNKNOWN_TYPE_LEVEL: &str = "/fhir/{type}/{id}";
const UNKNOWN_INSTANCE_LEVEL: &str = "/fhir/{type}/{id}/{operation}";

/// The operation behind a matched route path, whatever the method; `None` for routes that
/// are not operations.
pub fn routed(method: &axum::http::Method, path: &str) -> Option<Routed> {
    let operation = OPERATIONS
        .iter()
        .find(|op| op.type_path() == path || (op.instance && op.instance_path() == path));
    match (operation, path) {
        (Some(op), _) => Some(Routed::Operation(op)),
        (None, UNKNOWN_TYPE_LEVEL | UNKNOWN_INSTANCE_LEVEL) if method == axum::http::Method::POST => Some(Routed::Unknown),
        _ => None,
    }
}

/// The routes of every operation, and the POST routes that answer 404 for unknown ones.
pub fn routes() -> Vec<(String, MethodRouter<SharedState>)> {
    let mut routes = Vec::new();
    for &op in OPERATIONS {
        let type_level = post(
            move |State(state): State<SharedState>,
                  Ctx(ctx): Ctx,
                  Path(type_name): Path<String>,
                  RawQuery(query): RawQuery,
                  format: ResponseFormat,
                  base: BaseUrl,
                  FhirBody(body): FhirBody| async move {
                op.invoke(state, &type_name, Call { ctx, id: None, query, format, base, body: Some(body) }).await
            },
        );
        let type_level = if op.safe {
            type_level.get(
                move |State(state): State<SharedState>,
                      Ctx(ctx): Ctx,
                      Path(type_name): Path<String>,
                      RawQuery(query): RawQuery,
                      format: ResponseFormat,
                      base: BaseUrl| async move {
                    op.invoke(state, &type_name, Call { ctx, id: None, query, format, base, body: None }).await
                },
            )
        } else {
            type_level.get(move |Path(type_name): Path<String>| async move { op.refuse_get(&type_name) })
        };
        routes.push((op.type_path(), type_level));
        if op.instance {
            let instance_level = post(
                move |State(state): State<SharedState>,
                      Ctx(ctx): Ctx,
                      Path((type_name, id)): Path<(String, String)>,
                      RawQuery(query): RawQuery,
                      format: ResponseFormat,
                      base: BaseUrl,
                      FhirBody(body): FhirBody| async move {
                    op.invoke(state, &type_name, Call { ctx, id: Some(id), query, format, base, body: Some(body) })
                        .await
                },
            );
            let instance_level = if op.safe {
                instance_level.get(
                    move |State(state): State<SharedState>,
                          Ctx(ctx): Ctx,
                          Path((type_name, id)): Path<(String, String)>,
                          RawQuery(query): RawQuery,
                          format: ResponseFormat,
                          base: BaseUrl| async move {
                        op.invoke(state, &type_name, Call { ctx, id: Some(id), query, format, base, body: None }).await
                    },
                )
            } else {
                instance_level
            };
            routes.push((op.instance_path(), instance_level));
        }
    }
    routes.push((UNKNOWN_TYPE_LEVEL.to_owned(), post(unknown_type_operation)));
    routes.push((UNKNOWN_INSTANCE_LEVEL.to_owned(), post(unknown_instance_operation)));
    routes
}

fn not_an_operation(name: &str, resource_type: ResourceType, instance: bool) -> ApiError {
    ApiError::not_found(format!(
        "{name} is not an operation on {}{resource_type}",
        if instance { "an instance of " } else { "" }
    ))
}

/// `POST [type]/[name]` where `name` is no operation on any type. The body is read as for
/// an operation, so a malformed one is refused the same way.
async fn unknown_type_operation(Path((type_name, name)): Path<(String, String)>, _: FhirBody) -> ApiError {
    match resource_type(&type_name) {
        Ok(resource_type) => not_an_operation(&name, resource_type, false),
        Err(unknown_type) => unknown_type,
    }
}

/// `POST [type]/[id]/[name]` where `name` is no instance operation.
async fn unknown_instance_operation(
    Path((type_name, _id, name)): Path<(String, String, String)>,
    _: FhirBody,
) -> ApiError {
    match resource_type(&type_name) {
        Ok(resource_type) => not_an_operation(&name, resource_type, true),
        Err(unknown_type) => unknown_type,
    }
}

pub async fn operation_definition(Path(id): Path<String>, format: ResponseFormat) -> Answer {
    let operation = OPERATIONS
        .iter()
        .find(|op| op.id == id)
        .ok_or_else(|| ApiError::not_found(format!("OperationDefinition/{id} is not known")))?;
    Ok(FhirResponse::new(StatusCode::OK, format).json(operation.definition()))
}

/// One `parameter` of an OperationDefinition.
fn parameter(name: &str, use_: &str, min: u32, max: &str, type_: &str, documentation: &str) -> Value {
    json!({"name": name, "use": use_, "min": min, "max": max, "type": type_, "documentation": documentation})
}

/// Where an issue about an input parameter points.
fn param_path(name: &str) -> String {
    format!("Parameters.parameter.where(name = '{name}')")
}

/// The answer of `$hold`, `$book` and `$generate-slots`: a Parameters resource.
fn parameters(entries: Vec<Value>) -> Value {
    json!({"resourceType": "Parameters", "parameter": entries})
}

fn resource_param(name: &str, resource: Value) -> Value {
    // Inserted, not embedded with `json!`, which would rewrite number texts.
    let mut param = Map::new();
    param.insert("name".into(), json!(name));
    param.insert("resource".into(), resource);
    Value::Object(param)
}

/// The `outcome` of `$hold` and `$book`. Each issue's text is also its `details.text`, where
/// the IG's examples put it, and the OperationOutcome's narrative lists them all, so a generic
/// client that shows an outcome's text shows why a request was refused (409) as well.
fn outcome_resource(outcome: &OperationOutcome) -> Value {
    let mut resource = outcome.to_json();
    let mut paragraphs = String::new();
    for issue in resource["issue"].as_array_mut().into_iter().flatten() {
        let text = issue["diagnostics"].as_str().unwrap_or_default().to_owned();
        paragraphs.push_str(&format!("<p>{}</p>", escape_xhtml(&text)));
        issue["details"] = json!({"text": text});
    }
    resource["text"] = json!({
        "status": "generated",
        "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{paragraphs}</div>"),
    });
    resource
}

fn escape_xhtml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The body of `$hold` and `$book`: a Parameters resource, or a bare resource of the
/// operation's type (then the operation's resource parameter).
enum StateChangeInput<'a> {
    Parameters(termin_fhir::Parameters<'a>),
    Resource(&'a Map<String, Value>),
}

impl<'a> StateChangeInput<'a> {
    fn read(body: &'a Map<String, Value>, resource: ResourceType) -> Result<Self, ApiError> {
        if let Some(parameters) = termin_fhir::Parameters::read(body) {
            return Ok(StateChangeInput::Parameters(parameters));
        }
        match body.get("resourceType").and_then(Value::as_str) {
            Some(t) if t == resource.as_str() => Ok(StateChangeInput::Resource(body)),
            other => Err(ApiError::bad_request(
                Issue::error(
                    IssueCode::Invalid,
                    format!("The operation takes a Parameters resource, not {}", other.unwrap_or("this body")),
                )
                .at("resourceType"),
            )),
        }
    }

    /// The caller's context with the hold tokens the input carries.
    fn context(&self, ctx: Caller) -> Caller {
        match self {
            StateChangeInput::Parameters(parameters) => {
                ctx.with_hold_tokens(parameters.strings("hold-token").into_iter().map(str::to_owned))
            }
            StateChangeInput::Resource(_) => ctx,
        }
    }

    /// The named parameter's entries (none for a bare resource).
    fn parameters(&self) -> Option<termin_fhir::Parameters<'a>> {
        match self {
            StateChangeInput::Parameters(parameters) => Some(*parameters),
            StateChangeInput::Resource(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    fn at(path: &str) -> Option<Routed> {
        routed(&Method::POST, path)
    }

    #[test]
    fn definitions_name_their_base() {
        for op in OPERATIONS {
            let definition = op.definition();
            assert_eq!(definition["code"], op.code);
            assert!(definition["base"].as_str().unwrap().to_lowercase().ends_with(&op.id.to_lowercase()));
        }
        assert_eq!(at("/fhir/{type}/$hold"), Some(Routed::Operation(&hold::HOLD)));
        assert_eq!(at("/fhir/{type}/{id}/$hold"), Some(Routed::Operation(&hold::HOLD)));
        assert_eq!(at("/fhir/{type}/{id}/$book"), None, "$book is no instance operation");
        assert_eq!(at("/fhir/{type}/{id}/{operation}"), Some(Routed::Unknown));
        assert_eq!(routed(&Method::GET, "/fhir/{type}/{id}"), None, "a read");
        assert_eq!(routed(&Method::GET, "/fhir/{type}/$findHSP"), Some(Routed::Operation(&find_hsp::FIND_HSP)));
    }

    #[test]
    fn termin_additions_are_named() {
        assert_eq!(hold::HOLD.termin_parameters(), ["hold-token (in)", "hold-token (out)"]);
        assert!(hold::HOLD.definition()["description"].as_str().unwrap().contains("adds the parameters hold-token (in)"));
        assert_eq!(find_hsp::FIND_HSP.termin_parameters(), ["availability-until (in)", "near (in)", "near-distance (in)"]);
    }

    #[test]
    fn outcomes_carry_their_text_as_details_and_narrative() {
        let outcome = OperationOutcome::single(Issue::error(IssueCode::Conflict, "Slot/a is held <until> 10:00"));
        let resource = outcome_resource(&outcome);
        assert_eq!(resource["issue"][0]["diagnostics"], "Slot/a is held <until> 10:00");
        assert_eq!(resource["issue"][0]["details"]["text"], "Slot/a is held <until> 10:00");
        assert_eq!(
            resource["text"]["div"],
            "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Slot/a is held &lt;until&gt; 10:00</p></div>"
        );
    }
}
