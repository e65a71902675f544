//! Type-level writes: create (optionally conditional), conditional update and conditional delete.

use super::instance::write_response;
use super::{BaseUrl, TypeRequest, if_match};
use crate::error::ApiError;
use crate::format::{FhirBody, FhirResponse};
use crate::query::{is_result_parameter, query_pairs};
use axum::http::{HeaderMap, StatusCode};
use termin_fhir::{Issue, IssueCode, ResourceType};
use termin_search::SearchParameters;
use termin_store::Condition;

/// Parses search criteria (a query string) used as a write condition. Unlike a search,
/// every parameter must be understood: an ignored criterion could select the wrong resource.
pub fn criteria(
    search: &SearchParameters,
    resource_type: ResourceType,
    query: Option<&str>,
    what: &str,
    base: &BaseUrl,
) -> Result<Vec<Condition>, ApiError> {
    let pairs: Vec<(String, String)> = query_pairs(query)
        .filter(|(name, _)| !is_result_parameter(name))
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    if pairs.is_empty() {
        return Err(ApiError::bad_request(Issue::error(
            IssueCode::Required,
            format!("{what} needs search criteria, e.g. identifier=system|value"),
        )));
    }
    search.parse_criteria(resource_type, &pairs, Some(&base.0), jiff::Timestamp::now()).map_err(|e| {
        let issue = Issue::error(super::search::issue_code(&e), format!("{what}: {}", e.message));
        ApiError::bad_request(if e.param.is_empty() { issue } else { issue.at(e.param) })
    })
}

/// Parameters of a create's URL that shape the response rather than the write.
const CREATE_URL_PARAMS: [&str; 2] = ["_format", "_pretty"];

pub async fn create(on: TypeRequest, headers: HeaderMap, FhirBody(body): FhirBody) -> Result<FhirResponse, ApiError> {
    let resource_type = on.resource_type()?;
    let TypeRequest { state, ctx, uri, format, base, .. } = on;
    refuse_criteria_in_url(resource_type, uri.query())?;
    let condition = match headers.get("if-none-exist") {
        None => None,
        Some(value) => Some(criteria(
            state.domain.search_parameters(),
            resource_type,
            Some(value.to_str().unwrap_or_default()),
            "If-None-Exist",
            &base,
        )?),
    };
    let outcome = state.domain.resources.create(&ctx, resource_type, body, condition.as_deref()).await?;
    Ok(write_response(outcome, &headers, format, &base))
}

/// `POST [type]?identifier=...` (fhirpy's `get_or_create` sends it): FHIR defines no query on a
/// create, and ignoring it would create a duplicate where the client meant a conditional create,
/// so it is refused with the header that does what was meant.
fn refuse_criteria_in_url(resource_type: ResourceType, query: Option<&str>) -> Result<(), ApiError> {
    let criteria: Vec<(String, String)> = query_pairs(query)
        .filter(|(name, _)| !CREATE_URL_PARAMS.contains(&name.as_ref()))
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    let Some((first, _)) = criteria.first() else {
        return Ok(());
    };
    let written: Vec<String> = criteria.iter().map(|(name, value)| format!("{name}={value}")).collect();
    Err(ApiError::bad_request(
        Issue::error(
            IssueCode::NotSupported,
            format!(
                "A create takes no search parameters in the URL, and Termin does not guess that they are a \
                 condition. To create the {resource_type} only if none matches, send the criteria in the \
                 If-None-Exist header: If-None-Exist: {} (one match answers 200 with it and creates nothing)",
                written.join("&")
            ),
        )
        .at(first.clone()),
    ))
}

pub async fn conditional_update(
    on: TypeRequest,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<FhirResponse, ApiError> {
    let resource_type = on.resource_type()?;
    let TypeRequest { state, ctx, uri, format, base, .. } = on;
    let conditions =
        criteria(state.domain.search_parameters(), resource_type, uri.query(), "A conditional update", &base)?;
    let expected = if_match(&headers)?;
    let outcome = state.domain.resources.conditional_update(&ctx, resource_type, &conditions, body, expected).await?;
    Ok(write_response(outcome, &headers, format, &base))
}

/// `DELETE [type]?criteria`: deletes what matches, as many as `--conditional-delete` allows;
/// 204 also when nothing matches (as deleting an absent id is).
pub async fn conditional_delete(on: TypeRequest) -> Result<FhirResponse, ApiError> {
    let resource_type = on.resource_type()?;
    let TypeRequest { state, ctx, uri, format, base, .. } = on;
    let conditions =
        criteria(state.domain.search_parameters(), resource_type, uri.query(), "A conditional delete", &base)?;
    state.domain.resources.conditional_delete(&ctx, resource_type, &conditions).await?;
    Ok(FhirResponse::new(StatusCode::NO_CONTENT, format))
}
