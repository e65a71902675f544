//! Instance-level interactions: read, vread, update, delete.

use super::{BaseUrl, if_match, resource_type};
use crate::context::Ctx;
use crate::error::ApiError;
use crate::bundle::stored_json;
use crate::format::{FhirBody, FhirResponse, JsonPatchBody, Payload, ResponseFormat};
use crate::summary::{read_summary, summarize};
use crate::prefer::{ReturnPreference, return_preference};
use crate::SharedState;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use termin_domain::{WriteOutcome, WriteStatus};
use termin_fhir::{Issue, IssueCode, OperationOutcome};
use termin_fhir::instant::{format_http_date, parse_http_date};
use termin_search::SummaryMode;
use termin_store::ResourceVersion;

/// A response carrying one resource version with its ETag and Last-Modified.
pub fn resource_response(status: StatusCode, format: ResponseFormat, version: &ResourceVersion) -> FhirResponse {
    let response = FhirResponse::new(status, format)
        .header(header::ETAG, &format!("W/\"{}\"", version.version))
        .header(header::LAST_MODIFIED, &format_http_date(version.last_updated));
    match &version.body {
        Some(body) => response.stored(body.clone()),
        None => response,
    }
}

/// The answer to a create or update, shaped by the client's `Prefer: return=`.
pub fn write_response(
    outcome: WriteOutcome,
    headers: &HeaderMap,
    format: ResponseFormat,
    base: &BaseUrl,
) -> FhirResponse {
    let warnings = outcome.warnings;
    let v = &outcome.version;
    let status = match outcome.status {
        WriteStatus::Created => StatusCode::CREATED,
        WriteStatus::Updated | WriteStatus::Unchanged | WriteStatus::AlreadyExists => StatusCode::OK,
    };
    let mut response = resource_response(status, format, v);
    if outcome.status == WriteStatus::Created {
        let location = format!("{}/{}/{}/_history/{}", base.0, v.resource_type, v.id, v.version);
        response = response.header(header::LOCATION, &location);
    }
    match return_preference(headers) {
        ReturnPreference::Representation => response,
        ReturnPreference::Minimal => {
            response.payload = None;
            response
        }
        ReturnPreference::OperationOutcome => {
            let message = match outcome.status {
                WriteStatus::Created => format!("Created {}/{} version {}", v.resource_type, v.id, v.version),
                WriteStatus::Updated => format!("Updated {}/{} to version {}", v.resource_type, v.id, v.version),
                WriteStatus::Unchanged => format!("{}/{} is unchanged at version {}", v.resource_type, v.id, v.version),
                WriteStatus::AlreadyExists => format!("{}/{} already matches the condition", v.resource_type, v.id),
            };
            let mut outcome = OperationOutcome::success(message);
            outcome.issues.extend(warnings);
            response.json(outcome.to_json())
        }
    }
}

pub async fn read(
    State(state): State<SharedState>,
    Ctx(ctx): Ctx,
    Path((type_name, id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    format: ResponseFormat,
    headers: HeaderMap,
) -> Result<FhirResponse, ApiError> {
    let resource_type = resource_type(&type_name)?;
    let summary = read_summary(uri.query())?;
    let version = state.domain.resources.read(&ctx, resource_type, &id).await?;
    summarized(&state, conditional_read_response(&headers, format, &version), &version, summary)
}

/// A read's response with the resource cut to the `_summary` asked for.
fn summarized(
    state: &SharedState,
    mut response: FhirResponse,
    version: &ResourceVersion,
    summary: Option<SummaryMode>,
) -> Result<FhirResponse, ApiError> {
    if let Some(mode) = summary
        && response.payload.is_some()
        && let Some(resource) = stored_json(version)?
    {
        let search = state.domain.search_parameters();
        response.payload = Some(Payload::Json(summarize(search, version.resource_type, resource, mode)));
    }
    Ok(response)
}

/// A read's answer: `304 Not Modified` (validators, no body) when the client already holds this
/// version, by `If-None-Match` (`W/"n"`, a list, or `*`) or, without that, by
/// `If-Modified-Since` (RFC 9110 §13.1.2–3); the resource otherwise.
fn conditional_read_response(headers: &HeaderMap, format: ResponseFormat, version: &ResourceVersion) -> FhirResponse {
    let current = match headers.get(header::IF_NONE_MATCH) {
        Some(tags) => tags.to_str().unwrap_or_default().split(',').map(str::trim).any(|tag| {
            let opaque = tag.strip_prefix("W/").unwrap_or(tag);
            tag == "*" || opaque.strip_prefix('"').and_then(|t| t.strip_suffix('"')) == Some(&version.version.to_string())
        }),
        None => headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|since| parse_http_date(since.to_str().ok()?))
            .is_some_and(|since| version.last_updated.as_second() <= since.as_second()),
    };
    let mut response = resource_response(StatusCode::OK, format, version);
    if current {
        response.status = StatusCode::NOT_MODIFIED;
        response.payload = None;
    }
    response
}

pub async fn vread(
    State(state): State<SharedState>,
    Ctx(ctx): Ctx,
    Path((type_name, id, version_id)): Path<(String, String, String)>,
    OriginalUri(uri): OriginalUri,
    format: ResponseFormat,
    headers: HeaderMap,
) -> Result<FhirResponse, ApiError> {
    let resource_type = resource_type(&type_name)?;
    let summary = read_summary(uri.query())?;
    let Ok(number) = version_id.parse::<u64>() else {
        return Err(ApiError::not_found(format!("{type_name}/{id} has no version {version_id:?}")));
    };
    let version = state.domain.resources.vread(&ctx, resource_type, &id, number).await?;
    summarized(&state, conditional_read_response(&headers, format, &version), &version, summary)
}

pub async fn update(
    State(state): State<SharedState>,
    Ctx(ctx): Ctx,
    Path((type_name, id)): Path<(String, String)>,
    format: ResponseFormat,
    base: BaseUrl,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<FhirResponse, ApiError> {
    let resource_type = resource_type(&type_name)?;
    let expected = if_match(&headers)?;
    let outcome = if create_only(&headers)? {
        if expected.is_some() {
            return Err(ApiError::bad_request(Issue::error(
                IssueCode::Invalid,
                "If-Match (update that version) and If-None-Match: * (create only) contradict each other",
            )));
        }
        state.domain.resources.create_with_id(&ctx, resource_type, &id, body).await?
    } else {
        state.domain.resources.update(&ctx, resource_type, &id, body, expected).await?
    };
    Ok(write_response(outcome, &headers, format, &base))
}

/// `If-None-Match: *` on a PUT: create the resource only if it does not exist (RFC 9110). An
/// entity tag there would ask for an update unless the resource is at that version, which FHIR
/// does not define: 400.
fn create_only(headers: &HeaderMap) -> Result<bool, ApiError> {
    let Some(value) = headers.get(header::IF_NONE_MATCH) else {
        return Ok(false);
    };
    match value.to_str().unwrap_or_default().trim() {
        "*" => Ok(true),
        other => Err(ApiError::bad_request(Issue::error(
            IssueCode::NotSupported,
            format!("If-None-Match on an update takes only * (create only if the resource does not exist), not {other:?}"),
        ))),
    }
}

pub async fn patch(
    State(state): State<SharedState>,
    Ctx(ctx): Ctx,
    Path((type_name, id)): Path<(String, String)>,
    format: ResponseFormat,
    base: BaseUrl,
    headers: HeaderMap,
    JsonPatchBody(operations): JsonPatchBody,
) -> Result<FhirResponse, ApiError> {
    let resource_type = resource_type(&type_name)?;
    let expected = if_match(&headers)?;
    let outcome = state.domain.resources.patch(&ctx, resource_type, &id, operations, expected).await?;
    Ok(write_response(outcome, &headers, format, &base))
}

pub async fn delete(
    State(state): State<SharedState>,
    Ctx(ctx): Ctx,
    Path((type_name, id)): Path<(String, String)>,
    format: ResponseFormat,
    headers: HeaderMap,
) -> Result<FhirResponse, ApiError> {
    let resource_type = resource_type(&type_name)?;
    let expected = if_match(&headers)?;
    state.domain.resources.delete(&ctx, resource_type, &id, expected).await?;
    Ok(FhirResponse::new(StatusCode::NO_CONTENT, format))
}
