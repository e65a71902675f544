//! Instance and type history, newest first, with keyset paging.

use super::search::{page_size, page_url, paging_pairs};
use super::{BaseUrl, resource_type};
use crate::bundle;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::format::{FhirResponse, ResponseFormat};
use crate::query::query_pairs;
use crate::SharedState;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use termin_domain::DomainError;
use termin_fhir::{Issue, IssueCode, ResourceType};
use termin_store::{HistoryRequest};
use termin_domain::Caller;

pub async fn instance_history(
    State(state): State<SharedState>,
    Ctx(ctx): Ctx,
    Path((type_name, id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    format: ResponseFormat,
    base: BaseUrl,
) -> Result<FhirResponse, ApiError> {
    let resource_type = resource_type(&type_name)?;
    history(&state, &ctx, resource_type, Some(id), uri.query(), format, &base).await
}

pub async fn type_history(
    State(state): State<SharedState>,
    Ctx(ctx): Ctx,
    Path(type_name): Path<String>,
    OriginalUri(uri): OriginalUri,
    format: ResponseFormat,
    base: BaseUrl,
) -> Result<FhirResponse, ApiError> {
    let resource_type = resource_type(&type_name)?;
    history(&state, &ctx, resource_type, None, uri.query(), format, &base).await
}

async fn history(
    state: &SharedState,
    ctx: &Caller,
    resource_type: ResourceType,
    id: Option<String>,
    query: Option<&str>,
    format: ResponseFormat,
    base: &BaseUrl,
) -> Result<FhirResponse, ApiError> {
    let count = page_size(query, state.config.default_count, state.config.max_count)?;
    let before = match query_pairs(query).find(|(name, _)| name == "_cursor") {
        None => None,
        Some((_, value)) => Some(value.parse::<u64>().map_err(|_| {
            ApiError::bad_request(Issue::error(IssueCode::Invalid, "_cursor is not a history position").at("_cursor"))
        })?),
    };
    let since = match query_pairs(query).find(|(name, _)| name == "_since") {
        None => None,
        Some((_, value)) => Some(value.parse::<jiff::Timestamp>().map_err(|_| {
            ApiError::bad_request(
                Issue::error(
                    IssueCode::Invalid,
                    format!("_since must be an instant with a time zone, e.g. 2026-04-07T08:00:00+02:00, not {value:?}"),
                )
                .at("_since"),
            )
        })?),
    };
    let at = match query_pairs(query).find(|(name, _)| name == "_at") {
        None => None,
        Some((_, value)) => {
            let range = termin_search::parse_range(&value, state.domain.search_parameters().time_zone());
            let bounds = range.and_then(|r| r.low.zip(r.high));
            Some(bounds.ok_or_else(|| {
                ApiError::bad_request(
                    Issue::error(
                        IssueCode::Invalid,
                        format!("_at must be a date or dateTime, e.g. 2026-04-07 or 2026-04-07T08:00:00+02:00, not {value:?}"),
                    )
                    .at("_at"),
                )
            })?)
        }
    };
    let page = state
        .domain
        .resources
        .history(
            ctx,
            &HistoryRequest {
                resource_type,
                id: id.clone(),
                only_ids: None,
                count,
                before,
                since,
                at,
            },
        )
        .await?;
    if let Some(id) = &id
        && page.total == 0
    {
        let unknown = || ApiError::not_found(format!("{resource_type}/{id} is not known"));
        match since.or(at.map(|(low, _)| low)) {
            None => return Err(unknown()),
            // Every resource has a first version, even one outside `_since` or `_at`.
            Some(_) => match state.domain.resources.vread(ctx, resource_type, id, 1).await {
                Ok(_) => {}
                Err(DomainError::NotFound(_)) => return Err(unknown()),
                Err(other) => return Err(other.into()),
            },
        }
    }
    let endpoint = match &id {
        Some(id) => format!("{}/{resource_type}/{id}/_history", base.0),
        None => format!("{}/{resource_type}/_history", base.0),
    };
    let pairs = paging_pairs(query);
    let links = bundle::links(
        page_url(&endpoint, &pairs, before.map(|b| b.to_string())),
        page.next_before.map(|next| page_url(&endpoint, &pairs, Some(next.to_string()))),
    );
    let entries = page
        .entries
        .iter()
        .map(|e| bundle::history_entry(&base.0, e))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FhirResponse::new(StatusCode::OK, format).json(bundle::history(page.total, links, entries)))
}
