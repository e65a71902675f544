//! `$hold`, `$book` and the OperationDefinitions that describe them.

use super::{BaseUrl, resource_type};
use crate::context::Ctx;
use crate::error::ApiError;
use crate::format::{FhirBody, FhirResponse, ResponseFormat};
use crate::operations::{OPERATIONS, find};
use crate::SharedState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use serde_json::{Map, Value, json};
use termin_domain::{BookingStatus, HoldOutcome, SlotSelector};
use termin_fhir::instant::format_instant;
use termin_fhir::{Issue, IssueCode, OperationOutcome, ResourceType};
use termin_store::RequestContext;

pub async fn type_operation(
    State(state): State<SharedState>,
    Ctx(ctx): Ctx,
    Path((type_name, operation)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    format: ResponseFormat,
    base: BaseUrl,
    FhirBody(body): FhirBody,
) -> Result<FhirResponse, ApiError> {
    run(&state, ctx, &type_name, None, &operation, query.as_deref(), format, &base, body).await
}

pub async fn instance_operation(
    State(state): State<SharedState>,
    Ctx(ctx): Ctx,
    Path((type_name, id, operation)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    format: ResponseFormat,
    base: BaseUrl,
    FhirBody(body): FhirBody,
) -> Result<FhirResponse, ApiError> {
    run(&state, ctx, &type_name, Some(id), &operation, query.as_deref(), format, &base, body).await
}

/// `GET [type]/[id]/$operation`: the instance operations that change nothing.
pub async fn instance_get_operation(
    State(state): State<SharedState>,
    Ctx(ctx): Ctx,
    Path((type_name, id, operation)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    format: ResponseFormat,
    base: BaseUrl,
) -> Result<FhirResponse, ApiError> {
    let resource_type = resource_type(&type_name)?;
    match operation.strip_prefix('$').and_then(|code| find(resource_type, code, true)) {
        Some(op) if matches!(op.code, "status" | "events") => {
            super::subscriptions::operation(&state, &ctx, &id, op.code, query.as_deref(), &Map::new(), format, &base).await
        }
        Some(op) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            Issue::error(IssueCode::NotSupported, format!("${} changes state; invoke it with POST", op.code)),
        )),
        None => Err(ApiError::not_found(format!("{operation} is not an operation on an instance of {resource_type}"))),
    }
}

/// Operations that change nothing may also be invoked with GET and query parameters.
pub async fn get_operation(
    state: &SharedState,
    ctx: RequestContext,
    type_name: &str,
    operation: &str,
    query: Option<&str>,
    format: ResponseFormat,
    base: &BaseUrl,
) -> Result<FhirResponse, ApiError> {
    let resource_type = resource_type(type_name)?;
    let op = operation
        .strip_prefix('$')
        .and_then(|code| find(resource_type, code, false))
        .ok_or_else(|| ApiError::not_found(format!("{operation} is not an operation on {resource_type}")))?;
    match op.code {
        "findHSP" => super::find_hsp::find_hsp(state, &ctx, query, None, format, base).await,
        "status" | "events" | "get-ws-binding-token" => Err(ApiError::bad_request(Issue::error(
            IssueCode::NotSupported,
            format!("${} is invoked on Subscription/[id]", op.code),
        ))),
        other => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            Issue::error(IssueCode::NotSupported, format!("${other} changes state; invoke it with POST")),
        )),
    }
}

pub async fn operation_definition(Path(id): Path<String>, format: ResponseFormat) -> Result<FhirResponse, ApiError> {
    let operation = OPERATIONS
        .iter()
        .find(|op| op.id == id)
        .ok_or_else(|| ApiError::not_found(format!("OperationDefinition/{id} is not known")))?;
    Ok(FhirResponse::new(StatusCode::OK, format).json(operation.definition()))
}

#[allow(clippy::too_many_arguments)]
async fn run(
    state: &SharedState,
    ctx: RequestContext,
    type_name: &str,
    id: Option<String>,
    operation: &str,
    query: Option<&str>,
    format: ResponseFormat,
    base: &BaseUrl,
    body: Map<String, Value>,
) -> Result<FhirResponse, ApiError> {
    let resource_type = resource_type(type_name)?;
    let unknown = || {
        ApiError::not_found(format!(
            "{operation} is not an operation on {}{resource_type}",
            if id.is_some() { "an instance of " } else { "" }
        ))
    };
    let code = operation.strip_prefix('$').ok_or_else(unknown)?;
    let op = find(resource_type, code, id.is_some()).ok_or_else(unknown)?;
    if op.code == "validate" {
        return validate(state, resource_type, id.as_deref(), body, query, format).await;
    }
    if op.code == "findHSP" {
        return super::find_hsp::find_hsp(state, &ctx, query, Some(body), format, base).await;
    }
    if matches!(op.code, "status" | "events" | "get-ws-binding-token") {
        let id = id.ok_or_else(|| ApiError::bad_request(Issue::error(IssueCode::NotSupported, format!("${code} is invoked on Subscription/[id]"))))?;
        return super::subscriptions::operation(state, &ctx, &id, op.code, query, &body, format, base).await;
    }
    let input = Input::parse(body, resource_type)?;
    let ctx = ctx.with_hold_tokens(input.strings("hold-token"));
    match op.code {
        "hold" => hold(state, &ctx, id, input, format).await,
        "book" => book(state, &ctx, input, format, base).await,
        other => Err(ApiError::not_found(format!("${other} is not implemented"))),
    }
}

/// The `parameter` entries of a Parameters resource.
struct Input {
    parameters: Vec<Map<String, Value>>,
}

fn param_path(name: &str) -> String {
    format!("Parameters.parameter.where(name = '{name}')")
}

impl Input {
    /// Accepts a Parameters resource; a bare resource of the operation's type is read as
    /// its single resource parameter.
    fn parse(body: Map<String, Value>, resource: ResourceType) -> Result<Self, ApiError> {
        match body.get("resourceType").and_then(Value::as_str) {
            Some("Parameters") => {}
            Some(t) if t == resource.as_str() => {
                return Ok(Input {
                    parameters: vec![Map::from_iter([
                        ("name".to_owned(), json!("appointment-resource")),
                        ("resource".to_owned(), Value::Object(body)),
                    ])],
                });
            }
            other => {
                return Err(ApiError::bad_request(
                    Issue::error(
                        IssueCode::Invalid,
                        format!("The operation takes a Parameters resource, not {}", other.unwrap_or("this body")),
                    )
                    .at("resourceType"),
                ));
            }
        }
        let parameters = body
            .get("parameter")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_object().cloned())
            .collect();
        Ok(Input { parameters })
    }

    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Map<String, Value>> + 'a {
        self.parameters
            .iter()
            .filter(move |p| p.get("name").and_then(Value::as_str) == Some(name))
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.named(name)
            .filter_map(|p| p.get("valueString").and_then(Value::as_str).map(str::to_owned))
            .collect()
    }

    /// A code parameter. The IG's hold-release example writes `code` for `valueCode`;
    /// Termin reads that, and `valueString`, leniently.
    fn code<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.named(name).find_map(|p| {
            ["valueCode", "valueString", "code"]
                .iter()
                .find_map(|key| p.get(*key).and_then(Value::as_str))
        })
    }
}

/// `$validate`: the outcome of validating the posted resource (the Parameters `resource`, or
/// the body itself), answered with 200 whatever it says. Nothing is stored.
async fn validate(
    state: &SharedState,
    resource_type: ResourceType,
    id: Option<&str>,
    body: Map<String, Value>,
    query: Option<&str>,
    format: ResponseFormat,
) -> Result<FhirResponse, ApiError> {
    let (resource, mut profile) = if body.get("resourceType").and_then(Value::as_str) == Some("Parameters") {
        let input = Input::parse(body, resource_type)?;
        let resource = input
            .named("resource")
            .find_map(|p| p.get("resource").cloned())
            .ok_or_else(|| {
                ApiError::bad_request(
                    Issue::error(IssueCode::Required, "The resource parameter with the resource to validate is required")
                        .at(param_path("resource")),
                )
            })?;
        let profile = input.named("profile").find_map(|p| {
            ["valueCanonical", "valueUri", "valueString"]
                .iter()
                .find_map(|key| p.get(*key).and_then(Value::as_str))
                .map(str::to_owned)
        });
        (resource, profile)
    } else {
        (Value::Object(body), None)
    };
    if profile.is_none() {
        profile = crate::query::query_pairs(query)
            .find(|(name, _)| name == "profile")
            .map(|(_, value)| value.into_owned());
    }
    if resource.get("resourceType").and_then(Value::as_str) != Some(resource_type.as_str()) {
        return Err(ApiError::bad_request(
            Issue::error(IssueCode::Invalid, format!("$validate on {resource_type} takes a {resource_type}")).at("resourceType"),
        ));
    }
    if let (Some(id), Some(body_id)) = (id, resource.get("id").and_then(Value::as_str))
        && id != body_id
    {
        return Err(ApiError::bad_request(
            Issue::error(IssueCode::Value, format!("The resource id {body_id:?} does not match the id {id:?} in the URL"))
                .at(format!("{resource_type}.id")),
        ));
    }
    let outcome = state
        .service
        .validate(resource, profile)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                Issue::error(
                    IssueCode::NotSupported,
                    "Validation is off on this server: it validates once started with --packages",
                ),
            )
        })?
        .map_err(|why| ApiError::bad_request(Issue::error(IssueCode::NotSupported, why)))?;
    Ok(FhirResponse::new(StatusCode::OK, format).json(outcome.to_json()))
}

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

async fn hold(
    state: &SharedState,
    ctx: &RequestContext,
    path_id: Option<String>,
    input: Input,
    format: ResponseFormat,
) -> Result<FhirResponse, ApiError> {
    let want_hold = match input.code("slot-status") {
        Some("busy-tentative") => true,
        Some("free") => false,
        Some(other) => {
            return Err(ApiError::bad_request(
                Issue::error(
                    IssueCode::CodeInvalid,
                    format!("slot-status must be busy-tentative (hold) or free (release), not {other:?}"),
                )
                .at(param_path("slot-status")),
            ));
        }
        None => {
            return Err(ApiError::bad_request(
                Issue::error(IssueCode::Required, "slot-status is required: busy-tentative or free")
                    .at(param_path("slot-status")),
            ));
        }
    };
    let selector = slot_selector(path_id, &input)?;
    let outcome = state.service.hold_slot(ctx, &selector, want_hold).await?;
    let counted = match &outcome {
        HoldOutcome::Held { .. } => "held",
        HoldOutcome::Released { .. } => "released",
        HoldOutcome::Rejected { .. } => "rejected",
    };
    metrics::counter!("termin_holds_total", "outcome" => counted).increment(1);
    let (status, entries) = match outcome {
        HoldOutcome::Held { slot, held_until, token } => (
            StatusCode::OK,
            vec![
                resource_param("slot", Value::Object(slot)),
                resource_param("outcome", outcome_resource(&OperationOutcome::success("Slot hold completed successfully"))),
                json!({"name": "held-until", "valueDateTime": format_instant(held_until)}),
                json!({"name": "hold-token", "valueString": token}),
            ],
        ),
        HoldOutcome::Released { slot } => (
            StatusCode::OK,
            vec![
                resource_param("slot", Value::Object(slot)),
                resource_param("outcome", outcome_resource(&OperationOutcome::success("Slot hold released successfully"))),
            ],
        ),
        HoldOutcome::Rejected { slot, outcome } => (
            StatusCode::CONFLICT,
            vec![resource_param("slot", Value::Object(slot)), resource_param("outcome", outcome_resource(&outcome))],
        ),
    };
    Ok(FhirResponse::new(status, format).json(parameters(entries)))
}

fn slot_selector(path_id: Option<String>, input: &Input) -> Result<SlotSelector, ApiError> {
    let reference = input
        .named("slot-reference")
        .find_map(|p| p.get("valueReference").and_then(|r| r.get("reference")).and_then(Value::as_str));
    let identifiers: Vec<(Option<String>, String)> = input
        .named("slot-identifier")
        .filter_map(|p| p.get("valueIdentifier"))
        .filter_map(|i| {
            let value = i.get("value").and_then(Value::as_str)?;
            Some((i.get("system").and_then(Value::as_str).map(str::to_owned), value.to_owned()))
        })
        .collect();
    let from_reference = match reference {
        None => None,
        Some(reference) => Some(slot_reference_id(reference).ok_or_else(|| {
            ApiError::bad_request(
                Issue::error(IssueCode::Value, format!("slot-reference {reference:?} is not a reference to a Slot"))
                    .at(param_path("slot-reference")),
            )
        })?),
    };
    match (path_id, from_reference, identifiers.is_empty()) {
        (Some(path), Some(named), _) if path != named => Err(ApiError::bad_request(
            Issue::error(IssueCode::Value, format!("slot-reference names Slot/{named} but the URL names Slot/{path}"))
                .at(param_path("slot-reference")),
        )),
        (Some(id), _, _) | (None, Some(id), _) => Ok(SlotSelector::Id(id)),
        (None, None, false) => Ok(SlotSelector::Identifiers(identifiers)),
        (None, None, true) => Err(ApiError::bad_request(
            Issue::error(IssueCode::Required, "Name the slot with slot-reference or slot-identifier")
                .at("Parameters.parameter"),
        )),
    }
}

/// `Slot/[id]` (also absolute, or with the IG example's `Slt/` typo read leniently).
fn slot_reference_id(reference: &str) -> Option<String> {
    let mut parts = reference.trim_end_matches('/').rsplit('/');
    let id = parts.next()?;
    let type_name = parts.next()?;
    (matches!(type_name, "Slot" | "Slt") && termin_fhir::is_valid_id(id)).then(|| id.to_owned())
}

async fn book(
    state: &SharedState,
    ctx: &RequestContext,
    input: Input,
    format: ResponseFormat,
    base: &BaseUrl,
) -> Result<FhirResponse, ApiError> {
    let appointment = input
        .named("appointment-resource")
        .find_map(|p| p.get("resource").and_then(Value::as_object).cloned())
        .ok_or_else(|| {
            ApiError::bad_request(
                Issue::error(IssueCode::Required, "appointment-resource with the proposed Appointment is required")
                    .at(param_path("appointment-resource")),
            )
        })?;
    let booking = state.service.book(ctx, appointment).await?;
    let (status, counted) = match booking.status {
        BookingStatus::Booked => (StatusCode::CREATED, "booked"),
        BookingStatus::Pending => (StatusCode::ACCEPTED, "pending"),
        BookingStatus::AlreadyBooked => (StatusCode::OK, "repeated"),
        BookingStatus::Rejected => (StatusCode::CONFLICT, "rejected"),
    };
    metrics::counter!("termin_bookings_total", "outcome" => counted).increment(1);
    let mut response = FhirResponse::new(status, format).json(parameters(vec![
        resource_param("appointment", Value::Object(booking.appointment)),
        resource_param("outcome", outcome_resource(&booking.outcome)),
    ]));
    if let Some(version) = &booking.version {
        let location = format!("{}/Appointment/{}/_history/{}", base.0, version.id, version.version);
        response = response
            .header(header::LOCATION, &location)
            .header(header::ETAG, &format!("W/\"{}\"", version.version));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_slot_references_leniently() {
        assert_eq!(slot_reference_id("Slot/a").as_deref(), Some("a"));
        assert_eq!(slot_reference_id("http://h/fhir/Slot/a").as_deref(), Some("a"));
        assert_eq!(slot_reference_id("Slt/a").as_deref(), Some("a"));
        assert_eq!(slot_reference_id("Appointment/a"), None);
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
